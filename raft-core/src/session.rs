//! Exactly-once commands for any state machine: client sessions (Raft thesis §6.3).
//!
//! [`Sessions`] wraps a [`StateMachine`]. A client opens a session once
//! ([`SessionCommand::Open`]; its id is the index of that entry), then numbers its commands
//! ([`SessionCommand::Numbered`]). The table remembers every session's latest sequence number
//! and its output, so a command retried after a lost reply (possibly committed twice in the
//! log) is applied once and answered with the first output; a command numbered below the
//! latest is refused as stale (applying it now would reorder the client's own commands).
//! Commands outside any session ([`SessionCommand::Plain`]) pass straight through.
//!
//! Sessions expire by log index, never by a local clock: a session with no command for
//! `idle_entries` log indexes is dropped when a later entry is applied, and when the table is
//! full the least recently active session makes room for a new one. Every replica applies the
//! same entries at the same indexes, so every replica expires the same sessions at the same
//! point of the log. The table is part of the snapshot, so a restored replica keeps
//! deduplicating.
//!
//! # Encoding
//!
//! A command is one tag byte, then: `0` the inner machine's command (plain); `1` nothing
//! (open); `2` the client id and the sequence number as postcard varints, then the inner
//! command. Sessions therefore cannot nest: the inner bytes are the inner machine's. A snapshot
//! is the table (postcard's encoding of a map from client id to `(last_seq, last_output,
//! last_index)`), then the inner machine's snapshot.

use alloc::collections::BTreeMap;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt;
use rpds::RedBlackTreeMapSync;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::machine::{varint, BadSnapshot, StateMachine};
use crate::types::LogIndex;

/// How long sessions live and how many are kept. Every replica of a cluster must use the same
/// limits, like every other state machine parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session whose last command is more than this many log indexes behind the entry
    /// being applied expires.
    pub idle_entries: u64,
    /// Sessions kept at most; opening one more expires the least recently active.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle_entries: 1 << 20,
            max_sessions: 1 << 16,
        }
    }
}

/// A command of a machine wrapped in [`Sessions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCommand<C> {
    /// A command outside any session: applied every time it is committed.
    Plain(C),
    /// Opens a client session; its id is the log index of this entry.
    Open,
    /// Command number `seq` of session `client`. Applied only if `seq` is above every number
    /// the session applied before; a repeat of the latest number answers with the first
    /// output.
    Numbered { client: u64, seq: u64, command: C },
}

/// The result of applying a [`SessionCommand`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionOutput<O> {
    /// The inner machine's output: of this application, or replayed for a retry of the
    /// session's latest command.
    Applied(O),
    /// `Open` applied: the new session's id.
    Opened { client: u64 },
    /// A numbered command at or below an earlier one that is not the latest: not applied.
    Stale { last_seq: u64 },
    /// A numbered command of a session that does not exist (never opened, or expired): not
    /// applied. The client cannot tell whether its earlier commands were applied.
    Expired,
    /// The bytes are not a session command (or the inner bytes not an inner command): nothing
    /// changed.
    Invalid,
}

/// One client's deduplication state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session<O> {
    /// The highest sequence number applied; 0 before the first command.
    last_seq: u64,
    /// What that command returned, replayed to a retry of it.
    last_output: Option<O>,
    /// The log index of the session's latest activity (registration or command).
    last_index: u64,
}

/// What the table says about a numbered command before it is applied.
enum Admission<O> {
    /// A new command: apply it, then `record` its output.
    Apply,
    /// The command was applied already: answer with this output again.
    Replay(O),
    Stale {
        last_seq: u64,
    },
    Expired,
}

/// A persistent map, so a snapshot of the table is a pointer copy.
type Table<O> = RedBlackTreeMapSync<u64, Session<O>>;

/// Any machine `M`, made exactly-once for clients that open sessions.
pub struct Sessions<M: StateMachine> {
    machine: M,
    limits: SessionLimits,
    by_client: Table<M::Output>,
    /// (last_index, client) of every session, oldest activity first; derived from
    /// `by_client`, so not in snapshots.
    by_activity: BTreeSet<(u64, u64)>,
}

/// A [`Sessions`] snapshot: the table and the inner machine's snapshot, both taken in O(1)
/// when the inner machine's is.
pub struct SessionsSnapshot<M: StateMachine> {
    table: Table<M::Output>,
    machine: M::Snapshot,
}

impl<M: StateMachine> fmt::Debug for SessionsSnapshot<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsSnapshot")
            .field("sessions", &self.table.size())
            .finish_non_exhaustive()
    }
}

impl<M: StateMachine + Clone> Clone for Sessions<M> {
    fn clone(&self) -> Self {
        Sessions {
            machine: self.machine.clone(),
            limits: self.limits,
            by_client: self.by_client.clone(),
            by_activity: self.by_activity.clone(),
        }
    }
}

impl<M: StateMachine + fmt::Debug> fmt::Debug for Sessions<M>
where
    M::Output: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("machine", &self.machine)
            .field("limits", &self.limits)
            .field("by_client", &self.by_client)
            .finish_non_exhaustive()
    }
}

impl<M: StateMachine + PartialEq> PartialEq for Sessions<M>
where
    M::Output: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.machine == other.machine
            && self.limits == other.limits
            && self.by_client == other.by_client
    }
}

impl<M: StateMachine + Eq> Eq for Sessions<M> where M::Output: Eq {}

/// Tags of the encoding.
const PLAIN: u8 = 0;
const OPEN: u8 = 1;
const NUMBERED: u8 = 2;

impl<M: StateMachine> Sessions<M>
where
    M::Output: Clone,
{
    /// `machine` with sessions following the default limits.
    pub fn new(machine: M) -> Sessions<M> {
        Sessions::with_limits(machine, SessionLimits::default())
    }

    /// `machine` with sessions following `limits`.
    pub fn with_limits(machine: M, limits: SessionLimits) -> Sessions<M> {
        Sessions {
            machine,
            limits,
            by_client: RedBlackTreeMapSync::new_sync(),
            by_activity: BTreeSet::new(),
        }
    }

    /// The wrapped machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// Number of live client sessions.
    #[must_use]
    pub fn sessions(&self) -> usize {
        self.by_client.size()
    }

    /// Drops every session idle for longer than the limit as of applying `index`.
    fn expire(&mut self, index: u64) {
        while let Some(&(last_index, client)) = self.by_activity.first() {
            if last_index.saturating_add(self.limits.idle_entries) >= index {
                break;
            }
            self.remove(last_index, client);
        }
    }

    fn remove(&mut self, last_index: u64, client: u64) {
        self.by_activity.remove(&(last_index, client));
        self.by_client.remove_mut(&client);
    }

    /// Opens the session whose id is the index of the registering entry.
    fn open(&mut self, index: u64) -> u64 {
        while self.by_client.size() >= self.limits.max_sessions.max(1) {
            let Some(&(last_index, client)) = self.by_activity.first() else {
                break;
            };
            self.remove(last_index, client);
        }
        self.by_client.insert_mut(
            index,
            Session {
                last_seq: 0,
                last_output: None,
                last_index: index,
            },
        );
        self.by_activity.insert((index, index));
        index
    }

    fn admit(&self, client: u64, seq: u64) -> Admission<M::Output> {
        let Some(session) = self.by_client.get(&client) else {
            return Admission::Expired;
        };
        if seq > session.last_seq {
            return Admission::Apply;
        }
        match (&session.last_output, seq == session.last_seq) {
            (Some(output), true) => Admission::Replay(output.clone()),
            _ => Admission::Stale {
                last_seq: session.last_seq,
            },
        }
    }

    /// Records that `client`'s command `seq`, applied at `index`, returned `output`.
    fn record(&mut self, client: u64, seq: u64, index: u64, output: &M::Output) {
        let Some(session) = self.by_client.get_mut(&client) else {
            return;
        };
        let previous = session.last_index;
        session.last_seq = seq;
        session.last_output = Some(output.clone());
        session.last_index = index;
        self.by_activity.remove(&(previous, client));
        self.by_activity.insert((index, client));
    }
}

impl<M: StateMachine> StateMachine for Sessions<M>
where
    M::Output: Clone + Serialize + DeserializeOwned,
{
    type Command = SessionCommand<M::Command>;
    type Output = SessionOutput<M::Output>;
    type Query = M::Query;
    type Answer = M::Answer;
    type Snapshot = SessionsSnapshot<M>;

    fn encode_command(command: &Self::Command, out: &mut Vec<u8>) {
        match command {
            SessionCommand::Plain(command) => {
                out.push(PLAIN);
                M::encode_command(command, out);
            }
            SessionCommand::Open => out.push(OPEN),
            SessionCommand::Numbered {
                client,
                seq,
                command,
            } => {
                out.push(NUMBERED);
                varint::push(out, *client);
                varint::push(out, *seq);
                M::encode_command(command, out);
            }
        }
    }

    fn decode_command(bytes: &[u8]) -> Option<Self::Command> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            PLAIN => M::decode_command(rest).map(SessionCommand::Plain),
            OPEN if rest.is_empty() => Some(SessionCommand::Open),
            NUMBERED => {
                let (client, rest) = varint::take(rest)?;
                let (seq, rest) = varint::take(rest)?;
                let command = M::decode_command(rest)?;
                Some(SessionCommand::Numbered {
                    client,
                    seq,
                    command,
                })
            }
            _ => None,
        }
    }

    fn invalid_output() -> Self::Output {
        SessionOutput::Invalid
    }

    fn apply(&mut self, index: LogIndex, command: Self::Command) -> Self::Output {
        self.expire(index.0);
        match command {
            SessionCommand::Plain(command) => {
                SessionOutput::Applied(self.machine.apply(index, command))
            }
            SessionCommand::Open => SessionOutput::Opened {
                client: self.open(index.0),
            },
            SessionCommand::Numbered {
                client,
                seq,
                command,
            } => match self.admit(client, seq) {
                Admission::Apply => {
                    let output = self.machine.apply(index, command);
                    self.record(client, seq, index.0, &output);
                    SessionOutput::Applied(output)
                }
                Admission::Replay(output) => SessionOutput::Applied(output),
                Admission::Stale { last_seq } => SessionOutput::Stale { last_seq },
                Admission::Expired => SessionOutput::Expired,
            },
        }
    }

    fn query(&self, query: &Self::Query) -> Self::Answer {
        self.machine.query(query)
    }

    fn snapshot(&self) -> Self::Snapshot {
        SessionsSnapshot {
            table: self.by_client.clone(),
            machine: self.machine.snapshot(),
        }
    }

    fn encode_snapshot(snapshot: &Self::Snapshot, out: &mut Vec<u8>) {
        // The same bytes as postcard's encoding of a `BTreeMap<u64, Session>`: a length, then
        // the pairs in key order.
        varint::push(out, snapshot.table.size() as u64);
        for (client, session) in &snapshot.table {
            // Serializing plain data into a growable Vec cannot fail.
            match postcard::to_extend(&(client, session), core::mem::take(out)) {
                Ok(bytes) => *out = bytes,
                Err(error) => panic!("session_encode_infallible: {error}"),
            }
        }
        M::encode_snapshot(&snapshot.machine, out);
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), BadSnapshot> {
        let (table, rest) = postcard::take_from_bytes::<BTreeMap<u64, Session<M::Output>>>(bytes)
            .map_err(|_| BadSnapshot)?;
        self.machine.restore(rest)?;
        self.by_activity = table
            .iter()
            .map(|(&client, session)| (session.last_index, client))
            .collect();
        let mut by_client = RedBlackTreeMapSync::new_sync();
        for (client, session) in table {
            by_client.insert_mut(client, session);
        }
        self.by_client = by_client;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Command, KvStore, Output};
    use alloc::string::ToString;
    use alloc::vec;

    type Store = Sessions<KvStore>;

    fn append(text: &str) -> Command {
        Command::Append {
            command: text.to_string(),
        }
    }

    fn append_in(client: u64, seq: u64, text: &str) -> Vec<u8> {
        Store::command_bytes(&SessionCommand::Numbered {
            client,
            seq,
            command: append(text),
        })
    }

    fn open(store: &mut Store, index: u64) -> u64 {
        match store.apply_bytes(
            LogIndex(index),
            &Store::command_bytes(&SessionCommand::Open),
        ) {
            SessionOutput::Opened { client } => client,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    fn appended(store: &Store) -> u64 {
        store.machine().appended()
    }

    #[test]
    fn session_id_is_the_registering_entry_index() {
        let mut store = Store::new(KvStore::new());
        assert_eq!(open(&mut store, 7), 7);
        assert_eq!(open(&mut store, 9), 9);
        assert_eq!(store.sessions(), 2);
    }

    #[test]
    fn retried_session_command_is_applied_once() {
        let mut store = Store::new(KvStore::new());
        let client = open(&mut store, 1);
        let first = store.apply_bytes(LogIndex(2), &append_in(client, 1, "x"));
        assert_eq!(first, SessionOutput::Applied(Output::Appended));
        // The same command committed again (a retry after a lost reply) replays the output.
        assert_eq!(
            store.apply_bytes(LogIndex(3), &append_in(client, 1, "x")),
            first
        );
        assert_eq!(appended(&store), 1);
        let put_once = Store::command_bytes(&SessionCommand::Numbered {
            client,
            seq: 2,
            command: Command::Put {
                key: "k".to_string(),
                value: b"v".to_vec(),
            },
        });
        let written = SessionOutput::Applied(Output::Written { replaced: false });
        assert_eq!(store.apply_bytes(LogIndex(4), &put_once), written);
        assert_eq!(
            store.apply_bytes(LogIndex(5), &put_once),
            written,
            "the retry answers exactly as the first application did"
        );
    }

    #[test]
    fn session_command_older_than_the_latest_is_rejected_as_stale() {
        let mut store = Store::new(KvStore::new());
        let client = open(&mut store, 1);
        store.apply_bytes(LogIndex(2), &append_in(client, 1, "a"));
        // Sequence numbers may skip (a client that gave up on a request moves on).
        store.apply_bytes(LogIndex(3), &append_in(client, 3, "c"));
        assert_eq!(
            store.apply_bytes(LogIndex(4), &append_in(client, 2, "b")),
            SessionOutput::Stale { last_seq: 3 }
        );
        assert_eq!(
            store.apply_bytes(LogIndex(5), &append_in(client, 1, "a")),
            SessionOutput::Stale { last_seq: 3 }
        );
        assert_eq!(appended(&store), 2);
    }

    #[test]
    fn command_of_unknown_session_is_rejected_as_expired() {
        let mut store = Store::new(KvStore::new());
        assert_eq!(
            store.apply_bytes(LogIndex(1), &append_in(42, 1, "x")),
            SessionOutput::Expired
        );
        assert_eq!(appended(&store), 0);
    }

    #[test]
    fn plain_commands_pass_through_every_time() {
        let mut store = Store::new(KvStore::new());
        let plain = Store::command_bytes(&SessionCommand::Plain(append("x")));
        for index in 1..=2 {
            assert_eq!(
                store.apply_bytes(LogIndex(index), &plain),
                SessionOutput::Applied(Output::Appended)
            );
        }
        assert_eq!(appended(&store), 2);
    }

    #[test]
    fn sessions_cannot_nest_and_garbage_changes_nothing() {
        let mut store = Store::new(KvStore::new());
        let client = open(&mut store, 1);
        let before = store.clone();
        // A numbered command whose inner bytes are another session command: the inner bytes
        // are the key-value store's, and an `Open` tag is none of its commands.
        let mut nested = vec![NUMBERED];
        varint::push(&mut nested, client);
        varint::push(&mut nested, 1);
        nested.push(OPEN);
        let mut trailing = Store::command_bytes(&SessionCommand::Open);
        trailing.push(0);
        for garbage in [
            &nested[..],
            &[][..],
            &[3][..],
            &[NUMBERED, 0x80][..],
            &trailing,
        ] {
            assert_eq!(
                store.apply_bytes(LogIndex(2), garbage),
                SessionOutput::Invalid
            );
        }
        assert_eq!(store, before);
        assert_eq!(store.sessions(), 1);
    }

    #[test]
    fn commands_round_trip() {
        for command in [
            SessionCommand::Plain(append("p")),
            SessionCommand::Open,
            SessionCommand::Numbered {
                client: u64::MAX,
                seq: 300,
                command: append("n"),
            },
        ] {
            assert_eq!(
                Store::decode_command(&Store::command_bytes(&command)),
                Some(command)
            );
        }
    }

    #[test]
    fn idle_session_expires_by_log_index() {
        let limits = SessionLimits {
            idle_entries: 10,
            max_sessions: 100,
        };
        let mut store = Store::with_limits(KvStore::new(), limits);
        let idle = open(&mut store, 1);
        let busy = open(&mut store, 2);
        store.apply_bytes(LogIndex(8), &append_in(busy, 1, "a"));
        // Index 11 is exactly 10 past the idle session's registration: still alive.
        assert_eq!(
            store.apply_bytes(LogIndex(11), &append_in(idle, 1, "b")),
            SessionOutput::Applied(Output::Appended)
        );
        store.apply_bytes(LogIndex(17), &append_in(busy, 2, "c"));
        // Index 22 is 11 past the idle session's last command (11): it expired first.
        assert_eq!(
            store.apply_bytes(LogIndex(22), &append_in(idle, 2, "d")),
            SessionOutput::Expired
        );
        assert_eq!(
            store.apply_bytes(LogIndex(23), &append_in(busy, 3, "e")),
            SessionOutput::Applied(Output::Appended)
        );
        assert_eq!(store.sessions(), 1);
    }

    #[test]
    fn full_session_table_expires_the_least_recently_active() {
        let limits = SessionLimits {
            idle_entries: 1000,
            max_sessions: 2,
        };
        let mut store = Store::with_limits(KvStore::new(), limits);
        let a = open(&mut store, 1);
        let b = open(&mut store, 2);
        store.apply_bytes(LogIndex(3), &append_in(a, 1, "x"));
        let c = open(&mut store, 4);
        assert_eq!(store.sessions(), 2);
        assert_eq!(
            store.apply_bytes(LogIndex(5), &append_in(b, 1, "y")),
            SessionOutput::Expired
        );
        assert_eq!(
            store.apply_bytes(LogIndex(6), &append_in(a, 2, "y")),
            SessionOutput::Applied(Output::Appended)
        );
        assert_eq!(
            store.apply_bytes(LogIndex(7), &append_in(c, 1, "z")),
            SessionOutput::Applied(Output::Appended)
        );
    }

    #[test]
    fn snapshot_carries_sessions() {
        let limits = SessionLimits {
            idle_entries: 10,
            max_sessions: 100,
        };
        let mut store = Store::with_limits(KvStore::new(), limits);
        let client = open(&mut store, 1);
        store.apply_bytes(LogIndex(2), &append_in(client, 1, "x"));
        let mut restored = Store::with_limits(KvStore::new(), limits);
        restored
            .restore(&store.snapshot_bytes())
            .expect("a snapshot restores");
        assert_eq!(restored, store);
        assert_eq!(
            restored.apply_bytes(LogIndex(3), &append_in(client, 1, "x")),
            SessionOutput::Applied(Output::Appended)
        );
        assert_eq!(
            appended(&restored),
            1,
            "the retry after a restore is not applied"
        );
        // Expiry continues from the restored activity index.
        assert_eq!(
            restored.apply_bytes(LogIndex(13), &append_in(client, 2, "y")),
            SessionOutput::Expired
        );
    }

    #[test]
    fn snapshot_bytes_are_the_table_then_the_inner_snapshot() {
        let mut store = Store::new(KvStore::new());
        let client = open(&mut store, 1);
        store.apply_bytes(LogIndex(2), &append_in(client, 4, "x"));
        open(&mut store, 3);
        let table: BTreeMap<u64, Session<Output>> = store
            .by_client
            .iter()
            .map(|(&client, session)| (client, session.clone()))
            .collect();
        let mut expected = postcard::to_allocvec(&table).unwrap();
        expected.extend_from_slice(&store.machine().snapshot_bytes());
        assert_eq!(store.snapshot_bytes(), expected);
        // A snapshot whose inner part is damaged is refused and changes nothing.
        let mut damaged = store.snapshot_bytes();
        damaged.push(0);
        let mut kept = store.clone();
        assert_eq!(kept.restore(&damaged), Err(BadSnapshot));
        assert_eq!(kept, store);
    }
}
