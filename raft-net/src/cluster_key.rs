//! The cluster key: the 32-byte secret every member authenticates its peer datagrams with.
//!
//! It comes from a file (`--cluster-key-file`: 32 raw bytes, or 64 hex digits such as
//! `openssl rand -hex 32` writes), or is stretched from a passphrase (`--cluster-key`, env
//! `RAFT_CLUSTER_KEY`) with Argon2id, so a passphrase captured datagrams could be checked
//! against costs 64 MiB and three passes of memory-hard work per guess. Every member derives
//! the same key from the same passphrase: the salt is fixed (there is no per-cluster value all
//! members share before they talk), so prefer a key file, whose 256 bits need no stretching.

use std::fmt;
use std::path::Path;

use crate::error::ConfigError;

/// Bytes of a cluster key.
pub const CLUSTER_KEY_BYTES: usize = 32;
/// Argon2id cost: memory in KiB (64 MiB), passes and lanes, RFC 9106's second recommended
/// setting.
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;
const ARGON2_LANES: u32 = 4;
/// Fixed salt: the same passphrase gives the same key on every member.
const ARGON2_SALT: &[u8] = b"raft-net cluster key v1";

/// A cluster key. Its `Debug` output does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; CLUSTER_KEY_BYTES]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<secret>)")
    }
}

impl ClusterKey {
    #[must_use]
    pub fn from_bytes(bytes: [u8; CLUSTER_KEY_BYTES]) -> ClusterKey {
        ClusterKey(bytes)
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; CLUSTER_KEY_BYTES] {
        &self.0
    }

    /// The key in `path`: exactly 32 bytes, or 64 hex digits with optional surrounding
    /// whitespace.
    pub fn from_file(path: &Path) -> Result<ClusterKey, ConfigError> {
        let error = |reason: String| ConfigError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        if let Ok(raw) = <[u8; CLUSTER_KEY_BYTES]>::try_from(bytes.as_slice()) {
            return Ok(ClusterKey(raw));
        }
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| parse_hex(text.trim()))
            .map(ClusterKey)
            .ok_or_else(|| {
                error(format!(
                    "{} bytes, neither 32 raw bytes nor 64 hex digits",
                    bytes.len()
                ))
            })
    }

    /// The key stretched from `passphrase` with Argon2id (64 MiB, 3 passes, 4 lanes, fixed
    /// salt). Deliberately slow: about a tenth of a second at start-up.
    pub fn from_passphrase(passphrase: &str) -> Result<ClusterKey, ConfigError> {
        let kdf = |reason: String| ConfigError::Kdf { reason };
        let params = argon2::Params::new(
            ARGON2_MEMORY_KIB,
            ARGON2_PASSES,
            ARGON2_LANES,
            Some(CLUSTER_KEY_BYTES),
        )
        .map_err(|e| kdf(e.to_string()))?;
        let argon2 =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = [0; CLUSTER_KEY_BYTES];
        argon2
            .hash_password_into(passphrase.as_bytes(), ARGON2_SALT, &mut key)
            .map_err(|e| kdf(e.to_string()))?;
        Ok(ClusterKey(key))
    }
}

fn parse_hex(text: &str) -> Option<[u8; CLUSTER_KEY_BYTES]> {
    if text.len() != 2 * CLUSTER_KEY_BYTES {
        return None;
    }
    let mut key = [0; CLUSTER_KEY_BYTES];
    for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_hold_raw_bytes_or_hex() {
        let dir = tempfile::tempdir().unwrap();
        let raw: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let raw_path = dir.path().join("raw");
        std::fs::write(&raw_path, raw).unwrap();
        assert_eq!(ClusterKey::from_file(&raw_path).unwrap(), ClusterKey(raw));
        let hex: String = raw.iter().map(|byte| format!("{byte:02x}")).collect();
        let hex_path = dir.path().join("hex");
        std::fs::write(&hex_path, format!("{hex}\n")).unwrap();
        assert_eq!(ClusterKey::from_file(&hex_path).unwrap(), ClusterKey(raw));
        for bad in [&b"short"[..], &[b'g'; 64][..], &[0; 33][..], b""] {
            std::fs::write(&raw_path, bad).unwrap();
            let error = ClusterKey::from_file(&raw_path).unwrap_err().to_string();
            assert!(error.contains("32 raw bytes"), "{error}");
        }
        assert!(ClusterKey::from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn passphrases_are_stretched_the_same_way_everywhere() {
        let one = ClusterKey::from_passphrase("sesame").unwrap();
        assert_eq!(one, ClusterKey::from_passphrase("sesame").unwrap());
        assert_ne!(one, ClusterKey::from_passphrase("sesame!").unwrap());
        // Not a plain hash of the passphrase: the KDF's output.
        assert_ne!(one.0, *blake3::hash(b"sesame").as_bytes());
        assert_eq!(format!("{one:?}"), "ClusterKey(<secret>)");
    }
}
