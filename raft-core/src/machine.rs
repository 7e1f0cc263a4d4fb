//! The application's replicated state machine, as drivers and the simulator run it.
//!
//! The core replicates opaque command bytes; a [`StateMachine`] gives them meaning. A driver
//! applies every committed command entry ([`Action::Apply`](crate::Action::Apply)) to it in
//! index order, answers reads once the core releases them
//! ([`Reply::ReadReady`](crate::Reply::ReadReady)), hands its snapshots to the core
//! ([`Input::Compact`](crate::Input::Compact)) and restores it from the snapshots the core
//! hands back ([`Action::ApplySnapshot`](crate::Action::ApplySnapshot), and at restart).
//! raft-net's node and raft-sim's simulator are both generic over it; the crate's own machines
//! are [`KvStore`](crate::kv::KvStore) and the exactly-once wrapper
//! [`Sessions`](crate::session::Sessions), which wraps any machine.
//!
//! # The contract
//!
//! 1. **Deterministic.** Applying the same commands at the same indexes to machines in the same
//!    state gives the same outputs and the same state, on every replica: no clock, no
//!    randomness, no hash-ordered iteration, nothing read from outside. The index is the only
//!    notion of time a machine has (sessions expire by it).
//! 2. **Commands travel and are stored as bytes.** [`StateMachine::encode_command`] writes a
//!    command; [`StateMachine::decode_command`] reads it back, and refuses bytes that are not
//!    exactly one command (trailing bytes included). Log entries written by another build, or
//!    proposed by a buggy client, may not decode: [`StateMachine::apply_bytes`] applies such
//!    bytes as [`StateMachine::invalid_output`] and **changes nothing**, so every replica
//!    still agrees. The encoding is part of the machine's durable format: changing it changes
//!    what old logs mean.
//! 3. **Apply** ([`StateMachine::apply`]) takes a committed command and the index of its log
//!    entry, exactly once, in index order (indexes have gaps: no-op and membership entries are
//!    not commands), and returns the output the proposer is told.
//! 4. **Reads** ([`StateMachine::query`]) look at the state without changing it. A
//!    linearizable read runs once the core released it with `ReadReady`, in the same step.
//! 5. **Snapshots are handed over cheaply.** [`StateMachine::snapshot`] returns a picture of
//!    the state as of now that later applies do not change, in O(1) or close (a persistent
//!    map, copy-on-write, a version number): the driver takes it between two steps and
//!    [`StateMachine::encode_snapshot`] turns it into bytes elsewhere (raft-net does so on
//!    another thread), so a large state never stalls heartbeats. The bytes are deterministic:
//!    two replicas at the same index encode the same bytes (the simulator checks this).
//! 6. **Restore** ([`StateMachine::restore`]) replaces the whole state with the one a snapshot's
//!    bytes describe, keeping the machine's configuration (limits and the like, which every
//!    replica must share). Bytes that are not a snapshot are refused with [`BadSnapshot`] and
//!    leave the machine as it was.
//!
//! A machine does not see the log's terms, no-ops or membership entries: those are Raft's.

use alloc::vec::Vec;
use core::fmt;

use crate::types::LogIndex;

/// A deterministic state machine whose commands are replicated as bytes.
pub trait StateMachine {
    /// What clients propose.
    type Command;
    /// What applying one command returns to its proposer.
    type Output;
    /// What a read asks.
    type Query;
    /// What a read answers.
    type Answer;
    /// A picture of the state, taken cheaply on the driver and encoded elsewhere.
    type Snapshot;

    /// Appends the bytes of `command` to `out`.
    fn encode_command(command: &Self::Command, out: &mut Vec<u8>);

    /// The command `bytes` encode; `None` unless they are exactly one command.
    fn decode_command(bytes: &[u8]) -> Option<Self::Command>;

    /// The output of bytes that do not decode, which change nothing.
    fn invalid_output() -> Self::Output;

    /// Applies a committed command, found at log `index`.
    fn apply(&mut self, index: LogIndex, command: Self::Command) -> Self::Output;

    /// Answers a read from the current state.
    fn query(&self, query: &Self::Query) -> Self::Answer;

    /// The state as of now, unaffected by later applies.
    fn snapshot(&self) -> Self::Snapshot;

    /// Appends the bytes of `snapshot` to `out`; the same snapshot always gives the same bytes.
    fn encode_snapshot(snapshot: &Self::Snapshot, out: &mut Vec<u8>);

    /// Replaces the state with the one `bytes` (from `encode_snapshot`) describe; on error the
    /// machine is unchanged.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), BadSnapshot>;

    /// The bytes of `command`.
    fn command_bytes(command: &Self::Command) -> Vec<u8> {
        let mut out = Vec::new();
        Self::encode_command(command, &mut out);
        out
    }

    /// Applies a committed entry's bytes: decoded and applied, or
    /// [`invalid_output`](StateMachine::invalid_output) with nothing changed.
    fn apply_bytes(&mut self, index: LogIndex, bytes: &[u8]) -> Self::Output {
        match Self::decode_command(bytes) {
            Some(command) => self.apply(index, command),
            None => Self::invalid_output(),
        }
    }

    /// The current state's snapshot, encoded (the simulator and tests take it in one go).
    fn snapshot_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        Self::encode_snapshot(&self.snapshot(), &mut out);
        out
    }
}

/// A state machine whose commands and snapshots are `serde` values: implementing this
/// implements [`StateMachine`], with [`postcard`]'s encoding for both (a command or a snapshot
/// whose bytes hold anything but exactly one value does not decode).
///
/// `Snapshot` is what [`StateMachine::snapshot`] hands over, so it must be cheap to take (an
/// `Arc` of the state, with serde's `rc` feature, is the simplest copy-on-write); its bytes
/// are written off the driver and decode back to a `Snapshot` for [`SerdeMachine::restore`].
pub trait SerdeMachine {
    /// What clients propose.
    type Command: serde::Serialize + serde::de::DeserializeOwned;
    /// What applying one command returns to its proposer.
    type Output;
    /// What a read asks.
    type Query;
    /// What a read answers.
    type Answer;
    /// A picture of the state, as its bytes encode it.
    type Snapshot: serde::Serialize + serde::de::DeserializeOwned;

    /// The output of bytes that do not decode, which change nothing.
    fn invalid_output() -> Self::Output;

    /// Applies a committed command, found at log `index`.
    fn apply(&mut self, index: LogIndex, command: Self::Command) -> Self::Output;

    /// Answers a read from the current state.
    fn query(&self, query: &Self::Query) -> Self::Answer;

    /// The state as of now, unaffected by later applies, in O(1) or close.
    fn snapshot(&self) -> Self::Snapshot;

    /// Replaces the state with `snapshot`'s.
    fn restore(&mut self, snapshot: Self::Snapshot);
}

impl<M: SerdeMachine> StateMachine for M {
    type Command = M::Command;
    type Output = M::Output;
    type Query = M::Query;
    type Answer = M::Answer;
    type Snapshot = M::Snapshot;

    fn encode_command(command: &M::Command, out: &mut Vec<u8>) {
        out.reserve(postcard::encoded_len(command));
        postcard::encode(command, out);
    }

    fn decode_command(bytes: &[u8]) -> Option<M::Command> {
        postcard::decode(bytes)
    }

    fn invalid_output() -> M::Output {
        M::invalid_output()
    }

    fn apply(&mut self, index: LogIndex, command: M::Command) -> M::Output {
        SerdeMachine::apply(self, index, command)
    }

    fn query(&self, query: &M::Query) -> M::Answer {
        SerdeMachine::query(self, query)
    }

    fn snapshot(&self) -> M::Snapshot {
        SerdeMachine::snapshot(self)
    }

    fn encode_snapshot(snapshot: &M::Snapshot, out: &mut Vec<u8>) {
        postcard::encode(snapshot, out);
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), BadSnapshot> {
        SerdeMachine::restore(self, postcard::decode(bytes).ok_or(BadSnapshot)?);
        Ok(())
    }
}

/// Bytes that are not a snapshot of this machine (another build's, or damaged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSnapshot;

impl fmt::Display for BadSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the bytes are not a snapshot of this state machine")
    }
}

/// The encoding contract for a machine whose commands and snapshots are `serde` types:
/// postcard bytes, and a decoder that refuses anything but exactly one value.
///
/// ```
/// use raft_core::machine::postcard;
///
/// let mut out = Vec::new();
/// postcard::encode(&("lock", 7_u64), &mut out);
/// assert_eq!(postcard::decode::<(String, u64)>(&out), Some(("lock".to_string(), 7)));
/// out.push(0);
/// assert_eq!(postcard::decode::<(String, u64)>(&out), None, "trailing bytes");
/// ```
pub mod postcard {
    use alloc::vec::Vec;
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    /// Appends postcard's encoding of `value` to `out`.
    ///
    /// # Panics
    ///
    /// If `value`'s `Serialize` fails, which postcard's own types never do (a hand-written
    /// impl may, and a machine that cannot encode its commands is a bug).
    pub fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
        match ::postcard::to_extend(value, core::mem::take(out)) {
            Ok(bytes) => *out = bytes,
            Err(error) => panic!("machine_encoding_infallible: {error}"),
        }
    }

    /// The length of postcard's encoding of `value` (0 if its `Serialize` fails), for sizing a
    /// buffer before [`encode`]: a command that carries a value would otherwise grow its
    /// buffer through several reallocations, each a copy (about 1,600 instructions for 256
    /// bytes). Sizing walks the value once more, which a large snapshot need not pay.
    #[must_use]
    pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
        ::postcard::serialize_with_flavor::<T, ::postcard::ser_flavors::Size, usize>(
            value,
            ::postcard::ser_flavors::Size::default(),
        )
        .unwrap_or(0)
    }

    /// The value `bytes` encode, if they are exactly one (trailing bytes refused).
    #[must_use]
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
        match ::postcard::take_from_bytes(bytes) {
            Ok((value, [])) => Some(value),
            _ => None,
        }
    }
}

/// Postcard's varint, the integer encoding machines here use: 7 bits a byte, low bits first,
/// the high bit set on all but the last byte.
pub mod varint {
    use alloc::vec::Vec;

    /// Bytes of a `u64` at most.
    pub const BYTES_MAX: usize = 10;

    /// Appends `value`.
    pub fn push(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Reads one value from the front of `bytes`: it and the rest, or `None` for a varint that
    /// is cut short or does not fit a `u64`.
    #[must_use]
    pub fn take(bytes: &[u8]) -> Option<(u64, &[u8])> {
        let mut value: u64 = 0;
        for (i, &byte) in bytes.iter().enumerate().take(BYTES_MAX) {
            let bits = u64::from(byte & 0x7f);
            // The tenth byte holds the top bit of a u64 only.
            if i == BYTES_MAX - 1 && bits > 1 {
                return None;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Some((value, &bytes[i + 1..]));
            }
        }
        None
    }

    /// Appends `bytes` with its length in front (postcard's byte string).
    pub fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        push(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn varints_round_trip_and_match_postcard() {
            for value in [
                0,
                1,
                127,
                128,
                300,
                u64::from(u32::MAX),
                u64::MAX - 1,
                u64::MAX,
            ] {
                let mut out = Vec::new();
                push(&mut out, value);
                assert_eq!(out, postcard::to_allocvec(&value).unwrap());
                assert_eq!(take(&out), Some((value, &[][..])));
            }
            assert_eq!(take(&[]), None);
            assert_eq!(take(&[0x80]), None, "cut short");
            assert_eq!(take(&[0xff; 10]), None, "beyond 64 bits");
            assert_eq!(
                take(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
                None
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sum of the numbers proposed.
    #[derive(Debug, Default, PartialEq)]
    struct Sum(u64);

    impl SerdeMachine for Sum {
        type Command = u64;
        type Output = Option<u64>;
        type Query = ();
        type Answer = u64;
        type Snapshot = u64;

        fn invalid_output() -> Option<u64> {
            None
        }

        fn apply(&mut self, _: LogIndex, command: u64) -> Option<u64> {
            self.0 += command;
            Some(self.0)
        }

        fn query(&self, (): &()) -> u64 {
            self.0
        }

        fn snapshot(&self) -> u64 {
            self.0
        }

        fn restore(&mut self, snapshot: u64) {
            self.0 = snapshot;
        }
    }

    #[test]
    fn a_serde_machine_is_a_state_machine_in_postcards_encoding() {
        let mut sum = Sum::default();
        let five = Sum::command_bytes(&5);
        assert_eq!(five, ::postcard::to_allocvec(&5_u64).unwrap());
        assert_eq!(sum.apply_bytes(LogIndex(1), &five), Some(5));
        // Trailing bytes, or none: no command, nothing changed.
        let mut longer = five.clone();
        longer.push(0);
        assert_eq!(sum.apply_bytes(LogIndex(2), &longer), None);
        assert_eq!(sum.apply_bytes(LogIndex(2), &[]), None);
        assert_eq!(StateMachine::query(&sum, &()), 5);
        let bytes = sum.snapshot_bytes();
        let mut restored = Sum::default();
        StateMachine::restore(&mut restored, &bytes).unwrap();
        assert_eq!(restored, sum);
        assert_eq!(
            StateMachine::restore(&mut restored, &[0xff]),
            Err(BadSnapshot)
        );
        assert_eq!(restored, sum, "a refused snapshot changes nothing");
    }

    #[test]
    fn encoded_len_is_the_length_encode_writes() {
        let command = crate::kv::Command::Put {
            key: "k".repeat(130),
            value: alloc::vec![7; 300],
        };
        let mut out = alloc::vec![1, 2];
        postcard::encode(&command, &mut out);
        assert_eq!(postcard::encoded_len(&command), out.len() - 2);
        assert_eq!(postcard::encoded_len(&("lock", 7_u64)), 6);
    }
}
