//! The reference key-value state machine, shared by the simulator and the network node so both
//! run the same semantics.
//!
//! Log entries carry a [`Command`] encoded with `postcard` ([`Command::encode`]). Applying the same
//! committed entries in the same order to a fresh [`KvStore`] always yields the same store and the
//! same [`Output`]s: there is no clock, no randomness and no hash-ordered collection here.
//! Bytes that are not a valid command (written by a newer build, say) apply as
//! [`Output::Invalid`] and change nothing, so every replica still agrees.
//!
//! A [`Command::SetAddress`] whose addresses [`check_member_address`] refuses (id 0, a Raft
//! address that is not a unicast `IP:port` literal, an HTTP address that is not `host:port`)
//! also applies as [`Output::Invalid`] and changes nothing: the member keeps the address it had.
//! The verdict depends on the entry's bytes alone, so every replica reaches the same one, and a
//! committed entry can never bind a member to an address nobody can send to.
//!
//! Clients that retry writes use sessions ([`Command::OpenSession`], [`Command::InSession`]) so
//! that a retried command is applied once however often it reaches the log.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

mod address;
mod session;

use crate::LogIndex;
pub use address::{check_member_address, AddressError, HTTP_ADDR_BYTES_MAX};
pub use session::SessionLimits;
use session::{Admission, Session, Sessions};

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
    /// that every member can reach a server that joins later. Applied only when
    /// [`check_member_address`] accepts it.
    SetAddress {
        id: u64,
        raft_addr: String,
        http_addr: String,
    },
    /// Opens a client session; its id is the log index of this entry.
    OpenSession,
    /// Command number `seq` of session `client`. Applied only if `seq` is above every number the
    /// session applied before; a repeat of the latest number answers with the first output.
    InSession {
        client: u64,
        seq: u64,
        command: Box<Command>,
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
    /// The entry did not decode as a `Command`, nested sessions, or a `SetAddress` with a
    /// malformed address; nothing changed.
    Invalid,
    /// `OpenSession` applied: the new session's id.
    SessionOpened { client: u64 },
    /// An `InSession` command numbered at or below an earlier one that is not the latest:
    /// not applied.
    StaleSequence { last_seq: u64 },
    /// An `InSession` command of a session that does not exist (never opened, or expired): not
    /// applied. The client cannot tell whether its earlier commands were applied.
    SessionExpired,
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

    /// Whether `bytes` can be an encoded `SetAddress`, from its first byte alone (postcard
    /// writes the variant's index first), so scanning a long log for addresses decodes only the
    /// entries that may hold one.
    #[must_use]
    pub fn may_be_set_address(bytes: &[u8]) -> bool {
        /// `SetAddress` is the fifth variant.
        const SET_ADDRESS_TAG: u8 = 4;
        bytes.first() == Some(&SET_ADDRESS_TAG)
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

/// Bytes of a `u64` as a postcard varint, at most.
const VARINT_BYTES_MAX: usize = 10;

/// Postcard's varint: 7 bits a byte, low bits first, high bit set on all but the last.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Postcard's encoding of a byte string (`str`, `[u8]`): its length, then the bytes.
fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The key-value store: a `BTreeMap`, so iteration order is defined.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<String, Vec<u8>>,
    appended: u64,
    /// Member id -> (Raft address, HTTP address), from `SetAddress`.
    addresses: BTreeMap<u64, (String, String)>,
    sessions: Sessions,
}

/// What `KvStore::snapshot` encodes.
type Image = (
    BTreeMap<String, Vec<u8>>,
    u64,
    BTreeMap<u64, (String, String)>,
    BTreeMap<u64, Session>,
);

impl KvStore {
    /// An empty store with the default session limits.
    #[must_use]
    pub fn new() -> KvStore {
        KvStore::with_session_limits(SessionLimits::default())
    }

    /// An empty store whose sessions follow `limits`.
    #[must_use]
    pub fn with_session_limits(limits: SessionLimits) -> KvStore {
        KvStore {
            sessions: Sessions::new(limits),
            ..KvStore::default()
        }
    }

    /// Applies one committed command (the payload of the command entry at log `index`).
    pub fn apply(&mut self, index: LogIndex, command: &[u8]) -> Output {
        let Some(command) = Command::decode(command) else {
            return Output::Invalid;
        };
        self.apply_command(index, command)
    }

    /// Applies an already decoded command, found at log `index`.
    pub fn apply_command(&mut self, index: LogIndex, command: Command) -> Output {
        self.sessions.expire(index.0);
        match command {
            Command::OpenSession => Output::SessionOpened {
                client: self.sessions.open(index.0),
            },
            Command::InSession {
                client,
                seq,
                command,
            } => match self.sessions.admit(client, seq) {
                Admission::Apply => {
                    // Sessions do not nest: `apply_plain` answers them `Invalid`.
                    let output = self.apply_plain(*command);
                    self.sessions.record(client, seq, index.0, &output);
                    output
                }
                Admission::Replay(output) => output,
                Admission::Stale { last_seq } => Output::StaleSequence { last_seq },
                Admission::Expired => Output::SessionExpired,
            },
            command => self.apply_plain(command),
        }
    }

    fn apply_plain(&mut self, command: Command) -> Output {
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
                if check_member_address(id, &raft_addr, &http_addr).is_err() {
                    return Output::Invalid;
                }
                self.addresses.insert(id, (raft_addr, http_addr));
                Output::AddressSet
            }
            Command::OpenSession | Command::InSession { .. } => Output::Invalid,
        }
    }

    /// Number of live client sessions.
    #[must_use]
    pub fn sessions(&self) -> usize {
        self.sessions.len()
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
    ///
    /// The bytes are postcard's encoding of [`Image`], which `restore` reads; the keys, values
    /// and addresses are written here by hand because serde hands a `Vec<u8>` to postcard one
    /// byte at a time, which made snapshots of a large store stall a node for tens of
    /// milliseconds. `snapshot_bytes_are_the_derived_encoding` pins the two together.
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        let payload: usize = self
            .map
            .iter()
            .map(|(key, value)| key.len() + value.len() + 2 * VARINT_BYTES_MAX)
            .sum();
        let mut out = Vec::with_capacity(payload + 64);
        push_varint(&mut out, self.map.len() as u64);
        for (key, value) in &self.map {
            push_bytes(&mut out, key.as_bytes());
            push_bytes(&mut out, value);
        }
        push_varint(&mut out, self.appended);
        push_varint(&mut out, self.addresses.len() as u64);
        for (&id, (raft, http)) in &self.addresses {
            push_varint(&mut out, id);
            push_bytes(&mut out, raft.as_bytes());
            push_bytes(&mut out, http.as_bytes());
        }
        // Sessions are few and small: the derived encoding appends them.
        match postcard::to_extend(self.sessions.table(), out) {
            Ok(bytes) => bytes,
            Err(error) => panic!("kv_snapshot_infallible: {error}"),
        }
    }

    /// The store a `snapshot` was taken of, with the default session limits; `None` for bytes
    /// that are not a snapshot.
    #[must_use]
    pub fn restore(bytes: &[u8]) -> Option<KvStore> {
        KvStore::restore_with_session_limits(bytes, SessionLimits::default())
    }

    /// The store a `snapshot` was taken of, its sessions following `limits`.
    #[must_use]
    pub fn restore_with_session_limits(bytes: &[u8], limits: SessionLimits) -> Option<KvStore> {
        match postcard::take_from_bytes::<Image>(bytes) {
            Ok(((map, appended, addresses, sessions), [])) => Some(KvStore {
                map,
                appended,
                addresses,
                sessions: Sessions::from_table(limits, sessions),
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
            store.apply(LogIndex(1), &put("a", b"1")),
            Output::Written { replaced: false }
        );
        assert_eq!(
            store.apply(LogIndex(1), &put("a", b"2")),
            Output::Written { replaced: true }
        );
        let read = Command::Read {
            key: "a".to_string(),
        }
        .encode();
        assert_eq!(
            store.apply(LogIndex(1), &read),
            Output::Value(Some(b"2".to_vec()))
        );
        assert_eq!(store.get("a"), Some(&b"2"[..]));
        let delete = Command::Delete {
            key: "a".to_string(),
        }
        .encode();
        assert_eq!(
            store.apply(LogIndex(1), &delete),
            Output::Deleted { existed: true }
        );
        assert_eq!(
            store.apply(LogIndex(1), &delete),
            Output::Deleted { existed: false }
        );
        assert_eq!(store.apply(LogIndex(1), &read), Output::Value(None));
        assert!(store.is_empty());
    }

    #[test]
    fn garbage_is_invalid_and_changes_nothing() {
        let mut store = KvStore::new();
        store.apply(LogIndex(1), &put("a", b"1"));
        let before = store.clone();
        for garbage in [&[][..], &[0xff, 0xff, 0xff][..], &[9, 1, 2][..]] {
            assert_eq!(store.apply(LogIndex(1), garbage), Output::Invalid);
        }
        let mut trailing = put("b", b"2");
        trailing.push(0);
        assert_eq!(store.apply(LogIndex(1), &trailing), Output::Invalid);
        assert_eq!(store, before);
    }

    #[test]
    fn snapshots_restore_the_same_store() {
        let mut store = KvStore::new();
        store.apply(LogIndex(1), &put("b", b"2"));
        store.apply(LogIndex(1), &put("a", b"1"));
        store.apply(
            LogIndex(1),
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
        assert_eq!(
            store.apply(LogIndex(1), &address.encode()),
            Output::AddressSet
        );
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
        let outputs_first: Vec<Output> = log
            .iter()
            .zip(1..)
            .map(|(entry, i)| first.apply(LogIndex(i), entry))
            .collect();
        let outputs_second: Vec<Output> = log
            .iter()
            .zip(1..)
            .map(|(entry, i)| second.apply(LogIndex(i), entry))
            .collect();
        assert_eq!(outputs_first, outputs_second);
        assert_eq!(first, second);
        assert_eq!(first.appended(), 1);
        assert_eq!(first.iter().collect::<Vec<_>>(), vec![("y", &b"2"[..])]);
    }

    fn append_in(client: u64, seq: u64, text: &str) -> Vec<u8> {
        Command::InSession {
            client,
            seq,
            command: Box::new(Command::Append {
                command: text.to_string(),
            }),
        }
        .encode()
    }

    fn open(store: &mut KvStore, index: u64) -> u64 {
        match store.apply(LogIndex(index), &Command::OpenSession.encode()) {
            Output::SessionOpened { client } => client,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    #[test]
    fn session_id_is_the_registering_entry_index() {
        let mut store = KvStore::new();
        assert_eq!(open(&mut store, 7), 7);
        assert_eq!(open(&mut store, 9), 9);
        assert_eq!(store.sessions(), 2);
    }

    #[test]
    fn retried_session_command_is_applied_once() {
        let mut store = KvStore::new();
        let client = open(&mut store, 1);
        let first = store.apply(LogIndex(2), &append_in(client, 1, "x"));
        assert_eq!(first, Output::Appended);
        // The same command committed again (a retry after a lost reply) replays the output.
        assert_eq!(store.apply(LogIndex(3), &append_in(client, 1, "x")), first);
        assert_eq!(store.appended(), 1);
        let put_once = Command::InSession {
            client,
            seq: 2,
            command: Box::new(Command::Put {
                key: "k".to_string(),
                value: b"v".to_vec(),
            }),
        }
        .encode();
        assert_eq!(
            store.apply(LogIndex(4), &put_once),
            Output::Written { replaced: false }
        );
        assert_eq!(
            store.apply(LogIndex(5), &put_once),
            Output::Written { replaced: false },
            "the retry answers exactly as the first application did"
        );
    }

    #[test]
    fn session_command_older_than_the_latest_is_rejected_as_stale() {
        let mut store = KvStore::new();
        let client = open(&mut store, 1);
        store.apply(LogIndex(2), &append_in(client, 1, "a"));
        // Sequence numbers may skip (a client that gave up on a request moves on).
        store.apply(LogIndex(3), &append_in(client, 3, "c"));
        assert_eq!(
            store.apply(LogIndex(4), &append_in(client, 2, "b")),
            Output::StaleSequence { last_seq: 3 }
        );
        assert_eq!(
            store.apply(LogIndex(5), &append_in(client, 1, "a")),
            Output::StaleSequence { last_seq: 3 }
        );
        assert_eq!(store.appended(), 2);
    }

    #[test]
    fn command_of_unknown_session_is_rejected_as_expired() {
        let mut store = KvStore::new();
        assert_eq!(
            store.apply(LogIndex(1), &append_in(42, 1, "x")),
            Output::SessionExpired
        );
        assert_eq!(store.appended(), 0);
    }

    #[test]
    fn nested_sessions_are_invalid() {
        let mut store = KvStore::new();
        let client = open(&mut store, 1);
        let nested = Command::InSession {
            client,
            seq: 1,
            command: Box::new(Command::OpenSession),
        }
        .encode();
        assert_eq!(store.apply(LogIndex(2), &nested), Output::Invalid);
        assert_eq!(store.sessions(), 1);
    }

    #[test]
    fn idle_session_expires_by_log_index() {
        let limits = SessionLimits {
            idle_entries: 10,
            max_sessions: 100,
        };
        let mut store = KvStore::with_session_limits(limits);
        let idle = open(&mut store, 1);
        let busy = open(&mut store, 2);
        store.apply(LogIndex(8), &append_in(busy, 1, "a"));
        // Index 11 is exactly 10 past the idle session's registration: still alive.
        assert_eq!(
            store.apply(LogIndex(11), &append_in(idle, 1, "b")),
            Output::Appended
        );
        store.apply(LogIndex(17), &append_in(busy, 2, "c"));
        // Index 22 is 11 past the idle session's last command (11): it expired first.
        assert_eq!(
            store.apply(LogIndex(22), &append_in(idle, 2, "d")),
            Output::SessionExpired
        );
        assert_eq!(
            store.apply(LogIndex(23), &append_in(busy, 3, "e")),
            Output::Appended
        );
        assert_eq!(store.sessions(), 1);
    }

    #[test]
    fn full_session_table_expires_the_least_recently_active() {
        let limits = SessionLimits {
            idle_entries: 1000,
            max_sessions: 2,
        };
        let mut store = KvStore::with_session_limits(limits);
        let a = open(&mut store, 1);
        let b = open(&mut store, 2);
        store.apply(LogIndex(3), &append_in(a, 1, "x"));
        let c = open(&mut store, 4);
        assert_eq!(store.sessions(), 2);
        assert_eq!(
            store.apply(LogIndex(5), &append_in(b, 1, "y")),
            Output::SessionExpired
        );
        assert_eq!(
            store.apply(LogIndex(6), &append_in(a, 2, "y")),
            Output::Appended
        );
        assert_eq!(
            store.apply(LogIndex(7), &append_in(c, 1, "z")),
            Output::Appended
        );
    }

    #[test]
    fn snapshot_carries_sessions() {
        let limits = SessionLimits {
            idle_entries: 10,
            max_sessions: 100,
        };
        let mut store = KvStore::with_session_limits(limits);
        let client = open(&mut store, 1);
        store.apply(LogIndex(2), &append_in(client, 1, "x"));
        let mut restored = KvStore::restore_with_session_limits(&store.snapshot(), limits)
            .expect("a snapshot restores");
        assert_eq!(restored, store);
        assert_eq!(
            restored.apply(LogIndex(3), &append_in(client, 1, "x")),
            Output::Appended
        );
        assert_eq!(
            restored.appended(),
            1,
            "the retry after a restore is not applied"
        );
        // Expiry continues from the restored activity index.
        assert_eq!(
            restored.apply(LogIndex(13), &append_in(client, 2, "y")),
            Output::SessionExpired
        );
    }

    #[test]
    fn snapshot_bytes_are_the_derived_encoding() {
        let derived = |store: &KvStore| {
            let image = (
                &store.map,
                store.appended,
                &store.addresses,
                store.sessions.table(),
            );
            postcard::to_allocvec(&image).unwrap()
        };
        let mut store = KvStore::new();
        assert_eq!(store.snapshot(), derived(&store));
        for i in 0..300_u32 {
            let value = vec![i as u8; (i as usize * 7) % 300];
            store.apply(
                LogIndex(u64::from(i) + 1),
                &put(&"k".repeat(i as usize % 200 + 1), &value),
            );
        }
        store.apply(
            LogIndex(400),
            &Command::SetAddress {
                id: 300,
                raft_addr: "127.0.0.1:9000".to_string(),
                http_addr: "127.0.0.1:8000".to_string(),
            }
            .encode(),
        );
        let client = open(&mut store, 401);
        store.apply(LogIndex(402), &append_in(client, 1, "x"));
        store.apply(LogIndex(1 << 40), &put("big", b"index"));
        let late = open(&mut store, (1 << 40) + 1);
        store.apply(LogIndex((1 << 40) + 2), &append_in(late, 1, "y"));
        assert!(
            store.sessions() == 1 && store.len() > 200,
            "the old session expired"
        );
        assert_eq!(store.snapshot(), derived(&store));
        assert_eq!(KvStore::restore(&store.snapshot()), Some(store));
    }

    #[test]
    fn set_address_with_a_malformed_address_changes_nothing() {
        let mut store = KvStore::new();
        let set = |raft: &str, http: &str| Command::SetAddress {
            id: 2,
            raft_addr: raft.to_string(),
            http_addr: http.to_string(),
        };
        assert_eq!(
            store.apply(
                LogIndex(1),
                &set("127.0.0.1:9001", "127.0.0.1:8001").encode()
            ),
            Output::AddressSet
        );
        let before = store.clone();
        for bad in [
            set("evil.example:9001", "127.0.0.1:8001"),
            set("0.0.0.0:9001", "127.0.0.1:8001"),
            set("127.0.0.1:9001", "not an address"),
            Command::SetAddress {
                id: 0,
                raft_addr: "127.0.0.1:9001".to_string(),
                http_addr: "127.0.0.1:8001".to_string(),
            },
        ] {
            assert_eq!(store.apply(LogIndex(2), &bad.encode()), Output::Invalid);
            assert_eq!(store, before, "{bad:?}");
        }
        assert_eq!(
            store.addresses().collect::<Vec<_>>(),
            vec![(2, "127.0.0.1:9001", "127.0.0.1:8001")]
        );
    }

    #[test]
    fn set_address_is_told_by_its_first_byte() {
        let address = Command::SetAddress {
            id: u64::MAX,
            raft_addr: "127.0.0.1:65535".to_string(),
            http_addr: "127.0.0.1:8000".to_string(),
        };
        assert!(Command::may_be_set_address(&address.encode()));
        let others = [
            put("k", &[4]),
            Command::Delete {
                key: "k".to_string(),
            }
            .encode(),
            Command::Append {
                command: "c".to_string(),
            }
            .encode(),
            Command::Read {
                key: "k".to_string(),
            }
            .encode(),
            Command::OpenSession.encode(),
            append_in(1, 1, "x"),
        ];
        for other in others {
            assert!(!Command::may_be_set_address(&other), "{other:?}");
        }
    }
}
