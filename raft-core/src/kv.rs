//! The reference key-value state machine: one [`StateMachine`] implementation, shared by the
//! simulator and the network node so both run the same semantics.
//!
//! Log entries carry a [`Command`] encoded with `postcard` ([`KvStore::command_bytes`]).
//! Applying the same committed entries in the same order to a fresh [`KvStore`] always yields the
//! same store and the same [`Output`]s: there is no clock, no randomness and no hash-ordered
//! collection here. Bytes that are not a valid command (written by a newer build, say) apply as
//! [`Output::Invalid`] and change nothing, so every replica still agrees.
//!
//! The store's map shares itself with its snapshots (a `BTreeMap` behind a reference count,
//! with a small overlay of the changes made while a snapshot holds it), so a [`KvSnapshot`] is
//! taken between two steps without copying the store, and encoding it (O(n)) happens wherever
//! the driver likes while the store goes on applying.
//!
//! Clients that retry writes wrap the store in [`Sessions`](crate::session::Sessions) (raft-net's
//! key-value service does): exactly-once is a wrapper for any machine, not a key-value
//! feature. Earlier builds had sessions and member addresses among the key-value commands;
//! both moved out (sessions to the wrapper, addresses to raft-net's node commands), so a log
//! written by those builds reads differently.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

use crate::machine::{self, varint, BadSnapshot, StateMachine};
use crate::shared_map::{MapSnapshot, SharedMap};
use crate::LogIndex;

/// One state machine command, as stored in a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets `key` to `value`.
    Put {
        key: String,
        #[serde(with = "crate::byte_string")]
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete { key: String },
    /// A free-form log message (the seed API's `{"command": "msg1"}`); changes no key.
    Append { command: String },
    /// Reads `key` at this point of the log. Committing a read through the log is what makes it
    /// linearizable: its result reflects every write committed before it.
    Read { key: String },
}

/// The result of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// `Put` applied; `replaced` tells whether the key held a value before.
    Written { replaced: bool },
    /// `Delete` applied; `existed` tells whether the key held a value before.
    Deleted { existed: bool },
    /// `Append` applied.
    Appended,
    /// `Read` applied: the value at that point of the log.
    Value(Option<Vec<u8>>),
    /// The entry did not decode as a `Command`; nothing changed.
    Invalid,
}

/// The key-value store: an ordered map, so iteration order is defined.
#[derive(Clone)]
pub struct KvStore {
    map: SharedMap,
    appended: u64,
}

impl PartialEq for KvStore {
    /// The same keys and values and the same number of appends, however the map shares itself.
    fn eq(&self, other: &KvStore) -> bool {
        self.appended == other.appended
            && self.map.len() == other.map.len()
            && self.map.iter().eq(other.map.iter())
    }
}

impl Eq for KvStore {}

impl fmt::Debug for KvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Keys<'a>(&'a SharedMap);
        impl fmt::Debug for Keys<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter()).finish()
            }
        }
        f.debug_struct("KvStore")
            .field("map", &Keys(&self.map))
            .field("appended", &self.appended)
            .finish()
    }
}

/// The store as of one point of the log, shared with the store until it changes.
#[derive(Clone, Debug)]
pub struct KvSnapshot {
    map: MapSnapshot,
    appended: u64,
}

/// What a snapshot's bytes hold: postcard's encoding of this, written by hand (see
/// [`KvStore::encode_snapshot`]).
type Image = (alloc::collections::BTreeMap<String, Vec<u8>>, u64);

impl Default for KvStore {
    fn default() -> Self {
        KvStore::new()
    }
}

impl KvStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> KvStore {
        KvStore {
            map: SharedMap::default(),
            appended: 0,
        }
    }

    /// The current value of `key` on this replica (not linearizable on its own).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Number of keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Number of `Append` commands applied.
    #[must_use]
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.map
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_slice()))
    }
}

impl StateMachine for KvStore {
    type Command = Command;
    type Output = Output;
    /// A key.
    type Query = String;
    /// Its value, if any.
    type Answer = Option<Vec<u8>>;
    type Snapshot = KvSnapshot;

    fn encode_command(command: &Command, out: &mut Vec<u8>) {
        out.reserve(machine::postcard::encoded_len(command));
        machine::postcard::encode(command, out);
    }

    fn decode_command(bytes: &[u8]) -> Option<Command> {
        machine::postcard::decode(bytes)
    }

    fn invalid_output() -> Output {
        Output::Invalid
    }

    fn apply(&mut self, _index: LogIndex, command: Command) -> Output {
        match command {
            Command::Put { key, value } => Output::Written {
                replaced: self.map.insert(key, value),
            },
            Command::Delete { key } => Output::Deleted {
                existed: self.map.remove(&key),
            },
            Command::Append { .. } => {
                self.appended += 1;
                Output::Appended
            }
            Command::Read { key } => Output::Value(self.map.get(&key).cloned()),
        }
    }

    fn query(&self, key: &String) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }

    fn snapshot(&self) -> KvSnapshot {
        KvSnapshot {
            map: self.map.snapshot(),
            appended: self.appended,
        }
    }

    /// Postcard's encoding of `Image`, which `restore` reads; written by hand because serde
    /// hands a `Vec<u8>` to postcard one byte at a time, which made snapshots of a large store
    /// take tens of milliseconds more. `snapshot_bytes_are_the_derived_encoding` pins the two
    /// together.
    fn encode_snapshot(snapshot: &KvSnapshot, out: &mut Vec<u8>) {
        let payload: usize = snapshot
            .map
            .iter()
            .map(|(key, value)| key.len() + value.len() + 2 * varint::BYTES_MAX)
            .sum();
        out.reserve(payload + 2 * varint::BYTES_MAX);
        varint::push(out, snapshot.map.len() as u64);
        for (key, value) in snapshot.map.iter() {
            varint::push_bytes(out, key.as_bytes());
            varint::push_bytes(out, value);
        }
        varint::push(out, snapshot.appended);
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), BadSnapshot> {
        let ((entries, appended), rest) =
            postcard::take_from_bytes::<Image>(bytes).map_err(|_| BadSnapshot)?;
        if !rest.is_empty() {
            return Err(BadSnapshot);
        }
        *self = KvStore {
            map: SharedMap::from_map(entries),
            appended,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn put(key: &str, value: &[u8]) -> Vec<u8> {
        KvStore::command_bytes(&Command::Put {
            key: key.to_string(),
            value: value.to_vec(),
        })
    }

    fn restored(bytes: &[u8]) -> Option<KvStore> {
        let mut store = KvStore::new();
        store.restore(bytes).ok().map(|()| store)
    }

    #[test]
    fn commands_round_trip() {
        let commands = [
            Command::Put {
                key: "k".to_string(),
                value: vec![0, 1, 2],
            },
            Command::Delete {
                key: "k".to_string(),
            },
            Command::Append {
                command: "msg1".to_string(),
            },
            Command::Read {
                key: "k".to_string(),
            },
        ];
        for command in commands {
            assert_eq!(
                KvStore::decode_command(&KvStore::command_bytes(&command)),
                Some(command)
            );
        }
    }

    #[test]
    fn put_read_delete() {
        let mut store = KvStore::new();
        assert_eq!(
            store.apply_bytes(LogIndex(1), &put("a", b"1")),
            Output::Written { replaced: false }
        );
        assert_eq!(
            store.apply_bytes(LogIndex(1), &put("a", b"2")),
            Output::Written { replaced: true }
        );
        let read = KvStore::command_bytes(&Command::Read {
            key: "a".to_string(),
        });
        assert_eq!(
            store.apply_bytes(LogIndex(1), &read),
            Output::Value(Some(b"2".to_vec()))
        );
        assert_eq!(store.get("a"), Some(&b"2"[..]));
        assert_eq!(store.query(&"a".to_string()), Some(b"2".to_vec()));
        let delete = KvStore::command_bytes(&Command::Delete {
            key: "a".to_string(),
        });
        assert_eq!(
            store.apply_bytes(LogIndex(1), &delete),
            Output::Deleted { existed: true }
        );
        assert_eq!(
            store.apply_bytes(LogIndex(1), &delete),
            Output::Deleted { existed: false }
        );
        assert_eq!(store.apply_bytes(LogIndex(1), &read), Output::Value(None));
        assert!(store.is_empty());
    }

    #[test]
    fn garbage_is_invalid_and_changes_nothing() {
        let mut store = KvStore::new();
        store.apply_bytes(LogIndex(1), &put("a", b"1"));
        let before = store.clone();
        for garbage in [&[][..], &[0xff, 0xff, 0xff][..], &[9, 1, 2][..]] {
            assert_eq!(store.apply_bytes(LogIndex(1), garbage), Output::Invalid);
        }
        let mut trailing = put("b", b"2");
        trailing.push(0);
        assert_eq!(store.apply_bytes(LogIndex(1), &trailing), Output::Invalid);
        assert_eq!(store, before);
    }

    #[test]
    fn snapshots_restore_the_same_store() {
        let mut store = KvStore::new();
        store.apply_bytes(LogIndex(1), &put("b", b"2"));
        store.apply_bytes(LogIndex(1), &put("a", b"1"));
        store.apply_bytes(
            LogIndex(1),
            &KvStore::command_bytes(&Command::Append {
                command: "m".to_string(),
            }),
        );
        let bytes = store.snapshot_bytes();
        assert_eq!(restored(&bytes), Some(store.clone()));
        assert_eq!(
            restored(&KvStore::new().snapshot_bytes()),
            Some(KvStore::new())
        );
        assert_eq!(restored(&bytes[..bytes.len() - 1]), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(restored(&longer), None);
        // A refused snapshot leaves the store as it was.
        let mut kept = store.clone();
        assert_eq!(kept.restore(&longer), Err(BadSnapshot));
        assert_eq!(kept, store);
    }

    #[test]
    fn a_snapshot_is_unaffected_by_later_applies() {
        let mut store = KvStore::new();
        store.apply_bytes(LogIndex(1), &put("a", b"1"));
        let snapshot = store.snapshot();
        let mut expected = Vec::new();
        KvStore::encode_snapshot(&snapshot, &mut expected);
        store.apply_bytes(LogIndex(2), &put("a", b"2"));
        store.apply_bytes(LogIndex(3), &put("b", b"3"));
        let mut later = Vec::new();
        KvStore::encode_snapshot(&snapshot, &mut later);
        assert_eq!(later, expected);
        assert_eq!(restored(&later).unwrap().get("a"), Some(&b"1"[..]));
        assert_eq!(store.get("a"), Some(&b"2"[..]));
    }

    #[test]
    fn replay_is_deterministic() {
        let log = [
            put("x", b"1"),
            KvStore::command_bytes(&Command::Append {
                command: "m".to_string(),
            }),
            put("y", b"2"),
            KvStore::command_bytes(&Command::Delete {
                key: "x".to_string(),
            }),
        ];
        let mut first = KvStore::new();
        let mut second = KvStore::new();
        let outputs_first: Vec<Output> = log
            .iter()
            .zip(1..)
            .map(|(entry, i)| first.apply_bytes(LogIndex(i), entry))
            .collect();
        let outputs_second: Vec<Output> = log
            .iter()
            .zip(1..)
            .map(|(entry, i)| second.apply_bytes(LogIndex(i), entry))
            .collect();
        assert_eq!(outputs_first, outputs_second);
        assert_eq!(first, second);
        assert_eq!(first.snapshot_bytes(), second.snapshot_bytes());
        assert_eq!(first.appended(), 1);
        assert_eq!(first.iter().collect::<Vec<_>>(), vec![("y", &b"2"[..])]);
    }

    #[test]
    fn snapshot_bytes_are_the_derived_encoding() {
        let derived = |store: &KvStore| {
            let map: alloc::collections::BTreeMap<String, Vec<u8>> = store
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_vec()))
                .collect();
            postcard::to_allocvec(&(map, store.appended)).unwrap()
        };
        let mut store = KvStore::new();
        assert_eq!(store.snapshot_bytes(), derived(&store));
        for i in 0..300_u32 {
            let value = vec![i as u8; (i as usize * 7) % 300];
            store.apply_bytes(
                LogIndex(u64::from(i) + 1),
                &put(&"k".repeat(i as usize % 200 + 1), &value),
            );
        }
        store.apply_bytes(
            LogIndex(400),
            &KvStore::command_bytes(&Command::Append {
                command: "x".to_string(),
            }),
        );
        store.apply_bytes(LogIndex(1 << 40), &put("big", b"index"));
        assert!(store.len() > 200);
        assert_eq!(store.snapshot_bytes(), derived(&store));
        assert_eq!(restored(&store.snapshot_bytes()), Some(store));
    }

    #[test]
    fn command_bytes_are_the_derived_encoding_of_every_variant() {
        // The byte-string serde of `Put`'s value writes what the derived encoding of a
        // `Vec<u8>` would, so logs keep one format.
        #[derive(Serialize)]
        enum Derived {
            Put { key: String, value: Vec<u8> },
        }
        let value = vec![7_u8; 300];
        assert_eq!(
            put("k", &value),
            postcard::to_allocvec(&Derived::Put {
                key: "k".to_string(),
                value
            })
            .unwrap()
        );
    }
}
