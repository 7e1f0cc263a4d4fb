//! Bytes shared rather than copied: a command's and a snapshot's.
//!
//! The core hands a command to the driver several times: in the `Persist` that makes it
//! durable, in an AppendEntries to every follower, and in the `Apply` that commits it. A
//! snapshot likewise goes to followers that need it, to storage, and, on a follower, to the
//! state machine. A clone of an entry or a snapshot shares one buffer instead of copying it:
//! the copies cost an allocation and a copy of the bytes each, per entry and per follower, and a
//! state machine's snapshot can be hundreds of megabytes.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes cloned by reference count, read as a `[u8]`. Serialized as a byte string, exactly
/// as a `Vec<u8>` with `crate::byte_string` is, and shown by `Debug` as the `Vec` would be, so
/// neither the wire, the disk nor a trace can tell the two apart.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SharedBytes(Arc<Vec<u8>>);

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl SharedBytes {
    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Appends `bytes`; copies the buffer first only if another holder shares it.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        Arc::make_mut(&mut self.0).extend_from_slice(bytes);
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SharedBytes {
    /// Takes the buffer over without copying it.
    fn from(bytes: Vec<u8>) -> SharedBytes {
        SharedBytes(Arc::new(bytes))
    }
}

impl PartialEq<Vec<u8>> for SharedBytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<[u8]> for SharedBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.0.as_slice() == other
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::byte_string::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SharedBytes, D::Error> {
        crate::byte_string::deserialize(deserializer).map(SharedBytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn clones_share_the_buffer_and_the_encoding_is_a_byte_string() {
        let data = SharedBytes::from(vec![1, 2, 3]);
        let copy = data.clone();
        assert!(core::ptr::eq(data.as_slice(), copy.as_slice()));
        assert_eq!(
            postcard::to_allocvec(&data).unwrap(),
            postcard::to_allocvec(&vec![1_u8, 2, 3]).unwrap()
        );
        let back: SharedBytes =
            postcard::from_bytes(&postcard::to_allocvec(&data).unwrap()).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
        // Growing a shared buffer leaves the other holder's bytes alone.
        let mut grown = copy;
        grown.extend_from_slice(&[4]);
        assert_eq!(grown, vec![1, 2, 3, 4]);
        assert_eq!(data, vec![1, 2, 3]);
    }
}
