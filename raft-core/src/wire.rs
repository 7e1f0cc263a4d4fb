//! The versioned wire format for peer messages: one version byte, then the `postcard` encoding
//! of an `Envelope`.

use alloc::vec::Vec;

use crate::error::DecodeError;
use crate::message::Envelope;

/// The frame format this build writes and reads.
pub const WIRE_VERSION: u8 = 1;

/// Encodes `envelope` as one frame.
#[must_use]
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut frame = Vec::with_capacity(encoded_len(envelope));
    encode_into(envelope, &mut frame);
    frame
}

/// The length of `envelope`'s frame. Sizing a buffer first walks the message twice but writes
/// it once: an AppendEntries of a few dozen entries would otherwise grow its buffer through
/// eight reallocations, each a copy.
#[must_use]
pub fn encoded_len(envelope: &Envelope) -> usize {
    1 + crate::machine::postcard::encoded_len(envelope)
}

/// Appends `envelope`'s frame to `out`.
pub fn encode_into(envelope: &Envelope, out: &mut Vec<u8>) {
    out.push(WIRE_VERSION);
    // Serializing into a growable Vec cannot fail for these plain data types.
    match postcard::to_extend(envelope, core::mem::take(out)) {
        Ok(extended) => *out = extended,
        Err(error) => panic!("wire_encode_infallible: {error}"),
    }
}

/// Decodes one frame of at most `max_len` bytes. Never panics, whatever the bytes.
pub fn decode(frame: &[u8], max_len: usize) -> Result<Envelope, DecodeError> {
    if frame.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: frame.len(),
            max: max_len,
        });
    }
    let (&version, body) = frame.split_first().ok_or(DecodeError::Empty)?;
    if version != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    let (envelope, rest) =
        postcard::take_from_bytes::<Envelope>(body).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(envelope)
}
