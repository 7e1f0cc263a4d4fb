//! The reference key-value state machine, shared by the simulator and the network node so both
//! run the same semantics.
//!
//! Log entries carry a [`Command`] encoded with `postcard` ([`Command::encode`]). Applying the same
//! committed entries in the same order to a fresh [`KvStore`] always yields the same store and the
//! same [`Output`]s: there is no clock, no randomness and no hash-ordered collection here.
//! Bytes that are not a valid command (written by a newer build, say) apply as
//! [`Output::Invalid`] and change nothing, so every replica still agrees.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One state machine command, as stored in a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets `key` to `value`.
    Put { key: String, value: Vec<u8> },
    /// Removes `key`.
    Delete { key: String },
    /// A free-form log message (the seed API's `{"command": "msg1"}`); changes no key.
    Append { command: String },
    /// Reads `key` at this point of the log. Committing a read through the log is what makes it
    /// linearizable: its result reflects every write committed before it.
    Read { key: String },
    /// Cluster metadata: where member `id` listens for peers and for clients. Replicated so
    /// that every member can reach a server that joins later.
    SetAddress {
        id: u64,
        raft_addr: String,
        http_addr: String,
    },
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
    /// `SetAddress` applied.
    AddressSet,
    /// The entry did not decode as a `Command`; nothing changed.
    Invalid,
}

impl Command {
    /// The bytes to propose for this command.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Serializing into a growable Vec cannot fail for these plain data types.
        match postcard::to_allocvec(self) {
            Ok(bytes) => bytes,
            Err(error) => panic!("kv_encode_infallible: {error}"),
        }
    }

    /// Decodes a command; `None` for bytes that are not exactly one command.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Command> {
        match postcard::take_from_bytes::<Command>(bytes) {
            Ok((command, [])) => Some(command),
            _ => None,
        }
    }
}

/// The key-value store: a `BTreeMap`, so iteration order is defined.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, Vec<u8>>,
    appended: u64,
    /// Member id -> (Raft address, HTTP address), from `SetAddress`.
    addresses: BTreeMap<u64, (String, String)>,
}

/// What `KvStore::snapshot` encodes.
type Image = (
    BTreeMap<String, Vec<u8>>,
    u64,
    BTreeMap<u64, (String, String)>,
);

impl KvStore {
    #[must_use]
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// Applies one committed command (the payload of a command entry).
    pub fn apply(&mut self, command: &[u8]) -> Output {
        let Some(command) = Command::decode(command) else {
            return Output::Invalid;
        };
        self.apply_command(command)
    }

    /// Applies an already decoded command.
    pub fn apply_command(&mut self, command: Command) -> Output {
        match command {
            Command::Put { key, value } => Output::Written {
                replaced: self.map.insert(key, value).is_some(),
            },
            Command::Delete { key } => Output::Deleted {
                existed: self.map.remove(&key).is_some(),
            },
            Command::Append { .. } => {
                self.appended += 1;
                Output::Appended
            }
            Command::Read { key } => Output::Value(self.map.get(&key).cloned()),
            Command::SetAddress {
                id,
                raft_addr,
                http_addr,
            } => {
                self.addresses.insert(id, (raft_addr, http_addr));
                Output::AddressSet
            }
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
        self.map.is_empty()
    }

    /// Number of `Append` commands applied.
    #[must_use]
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// The whole store as bytes, for `Input::Compact`. Deterministic: the same store always
    /// gives the same bytes.
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        let image = (&self.map, self.appended, &self.addresses);
        // Serializing into a growable Vec cannot fail for these plain data types.
        match postcard::to_allocvec(&image) {
            Ok(bytes) => bytes,
            Err(error) => panic!("kv_snapshot_infallible: {error}"),
        }
    }

    /// The store a `snapshot` was taken of; `None` for bytes that are not a snapshot.
    #[must_use]
    pub fn restore(bytes: &[u8]) -> Option<KvStore> {
        match postcard::take_from_bytes::<Image>(bytes) {
            Ok(((map, appended, addresses), [])) => Some(KvStore {
                map,
                appended,
                addresses,
            }),
            _ => None,
        }
    }

    /// Every member address recorded by `SetAddress`: id, Raft address, HTTP address.
    pub fn addresses(&self) -> impl Iterator<Item = (u64, &str, &str)> {
        self.addresses
            .iter()
            .map(|(&id, (raft, http))| (id, raft.as_str(), http.as_str()))
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.map
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn put(key: &str, value: &[u8]) -> Vec<u8> {
        Command::Put {
            key: key.to_string(),
            value: value.to_vec(),
        }
        .encode()
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
            assert_eq!(Command::decode(&command.encode()), Some(command));
        }
    }

    #[test]
    fn put_read_delete() {
        let mut store = KvStore::new();
        assert_eq!(
            store.apply(&put("a", b"1")),
            Output::Written { replaced: false }
        );
        assert_eq!(
            store.apply(&put("a", b"2")),
            Output::Written { replaced: true }
        );
        let read = Command::Read {
            key: "a".to_string(),
        }
        .encode();
        assert_eq!(store.apply(&read), Output::Value(Some(b"2".to_vec())));
        assert_eq!(store.get("a"), Some(&b"2"[..]));
        let delete = Command::Delete {
            key: "a".to_string(),
        }
        .encode();
        assert_eq!(store.apply(&delete), Output::Deleted { existed: true });
        assert_eq!(store.apply(&delete), Output::Deleted { existed: false });
        assert_eq!(store.apply(&read), Output::Value(None));
        assert!(store.is_empty());
    }

    #[test]
    fn garbage_is_invalid_and_changes_nothing() {
        let mut store = KvStore::new();
        store.apply(&put("a", b"1"));
        let before = store.clone();
        for garbage in [&[][..], &[0xff, 0xff, 0xff][..], &[9, 1, 2][..]] {
            assert_eq!(store.apply(garbage), Output::Invalid);
        }
        let mut trailing = put("b", b"2");
        trailing.push(0);
        assert_eq!(store.apply(&trailing), Output::Invalid);
        assert_eq!(store, before);
    }

    #[test]
    fn snapshots_restore_the_same_store() {
        let mut store = KvStore::new();
        store.apply(&put("b", b"2"));
        store.apply(&put("a", b"1"));
        store.apply(
            &Command::Append {
                command: "m".to_string(),
            }
            .encode(),
        );
        let address = Command::SetAddress {
            id: 4,
            raft_addr: "127.0.0.1:9003".to_string(),
            http_addr: "127.0.0.1:8003".to_string(),
        };
        assert_eq!(store.apply(&address.encode()), Output::AddressSet);
        let bytes = store.snapshot();
        assert_eq!(KvStore::restore(&bytes), Some(store.clone()));
        let restored = KvStore::restore(&bytes).unwrap();
        assert_eq!(
            restored.addresses().collect::<Vec<_>>(),
            vec![(4, "127.0.0.1:9003", "127.0.0.1:8003")]
        );
        assert_eq!(
            KvStore::restore(&KvStore::new().snapshot()),
            Some(KvStore::new())
        );
        assert_eq!(KvStore::restore(&bytes[..bytes.len() - 1]), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(KvStore::restore(&longer), None);
    }

    #[test]
    fn replay_is_deterministic() {
        let log = [
            put("x", b"1"),
            Command::Append {
                command: "m".to_string(),
            }
            .encode(),
            put("y", b"2"),
            Command::Delete {
                key: "x".to_string(),
            }
            .encode(),
        ];
        let mut first = KvStore::new();
        let mut second = KvStore::new();
        let outputs_first: Vec<Output> = log.iter().map(|entry| first.apply(entry)).collect();
        let outputs_second: Vec<Output> = log.iter().map(|entry| second.apply(entry)).collect();
        assert_eq!(outputs_first, outputs_second);
        assert_eq!(first, second);
        assert_eq!(first.appended(), 1);
        assert_eq!(first.iter().collect::<Vec<_>>(), vec![("y", &b"2"[..])]);
    }
}
