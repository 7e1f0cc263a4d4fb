//! Errors from constructors and the wire decoder. `step` never fails.

use core::fmt;

use crate::types::{LogIndex, NodeId, Term};

/// A `Config` value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    ZeroNodeId,
    SelfNotAVoter { id: NodeId },
    ZeroTicks { field: &'static str },
    ElectionRangeEmpty { min: u32, max: u32 },
    ElectionTimeoutNotAboveHeartbeat { election_min: u32, heartbeat: u32 },
    ZeroLimit { field: &'static str },
    LeaseReadsNeedCheckQuorum,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroNodeId => f.write_str("node id 0 is reserved"),
            ConfigError::SelfNotAVoter { id } => write!(f, "node {id} is not in the voter set"),
            ConfigError::ZeroTicks { field } => write!(f, "{field} must be at least 1 tick"),
            ConfigError::ElectionRangeEmpty { min, max } => write!(
                f,
                "election_timeout_ticks_min ({min}) must not exceed election_timeout_ticks_max ({max})"
            ),
            ConfigError::ElectionTimeoutNotAboveHeartbeat {
                election_min,
                heartbeat,
            } => write!(
                f,
                "election_timeout_ticks_min ({election_min}) must exceed heartbeat_interval_ticks ({heartbeat})"
            ),
            ConfigError::ZeroLimit { field } => write!(f, "{field} must be at least 1"),
            ConfigError::LeaseReadsNeedCheckQuorum => f.write_str(
                "lease_reads needs check_quorum: the lease rests on followers ignoring vote requests while they hear from a leader",
            ),
        }
    }
}

/// Durable state that cannot have been produced by this core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreError {
    Config(ConfigError),
    /// Entries must be numbered 1, 2, 3, ... without gaps.
    NonContiguousLog {
        position: usize,
        index: LogIndex,
    },
    /// Entry terms never decrease along the log.
    TermDecreases {
        index: LogIndex,
    },
    /// No entry can carry a term above the current term.
    EntryTermAboveCurrent {
        index: LogIndex,
        term: Term,
        current_term: Term,
    },
    /// A term or index above `ACCEPTED_VALUE_MAX`, which no correct node reaches.
    OutOfRange {
        field: &'static str,
        value: u64,
    },
}

impl From<ConfigError> for RestoreError {
    fn from(error: ConfigError) -> Self {
        RestoreError::Config(error)
    }
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Config(error) => write!(f, "invalid config: {error}"),
            RestoreError::NonContiguousLog { position, index } => write!(
                f,
                "log entry at position {position} has index {index}, expected {}",
                position + 1
            ),
            RestoreError::TermDecreases { index } => {
                write!(f, "log entry {index} has a lower term than its predecessor")
            }
            RestoreError::EntryTermAboveCurrent {
                index,
                term,
                current_term,
            } => write!(
                f,
                "log entry {index} has term {term}, above the current term {current_term}"
            ),
            RestoreError::OutOfRange { field, value } => write!(
                f,
                "{field} is {value}, above the largest accepted value {}",
                crate::types::ACCEPTED_VALUE_MAX
            ),
        }
    }
}

/// Bytes that are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Empty,
    UnsupportedVersion { version: u8 },
    TooLarge { len: usize, max: usize },
    Malformed,
    TrailingBytes { count: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty frame"),
            DecodeError::UnsupportedVersion { version } => {
                write!(f, "unsupported frame version {version}")
            }
            DecodeError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            DecodeError::Malformed => f.write_str("malformed frame body"),
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes after the frame body")
            }
        }
    }
}

impl core::error::Error for ConfigError {}
impl core::error::Error for RestoreError {}
impl core::error::Error for DecodeError {}
