//! The postcard encoding of WAL records, with byte strings written and read as whole slices.
//!
//! `raft_core`'s types derive serde, and serde sees a `Vec<u8>` as a sequence: postcard then
//! writes and reads a command, or a snapshot of megabytes, one byte call at a time. postcard
//! encodes a sequence of bytes and a byte string identically (a varint length, then the bytes),
//! so these mirror types produce exactly the bytes the derived impls do (a test checks it) while
//! copying byte strings in one go. The on-disk format is unchanged.

use std::fmt;

use raft_core::{
    DurableState, Entry, EntryPayload, HardState, LogIndex, LogSplice, Membership, PersistId,
    PersistRequest, Snapshot, SnapshotMeta, Term,
};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte string, written as one slice.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[derive(Serialize)]
enum PayloadRef<'a> {
    Noop,
    Command(Bytes<'a>),
    Membership(&'a Membership),
}

#[derive(Serialize)]
struct EntryRef<'a> {
    index: LogIndex,
    term: Term,
    payload: PayloadRef<'a>,
}

struct EntriesRef<'a>(&'a [Entry]);

impl Serialize for EntriesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|entry| EntryRef {
            index: entry.index,
            term: entry.term,
            payload: match &entry.payload {
                EntryPayload::Noop => PayloadRef::Noop,
                EntryPayload::Command(bytes) => PayloadRef::Command(Bytes(bytes)),
                EntryPayload::Membership(membership) => PayloadRef::Membership(membership),
            },
        }))
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    meta: &'a SnapshotMeta,
    data: Bytes<'a>,
}

impl<'a> SnapshotRef<'a> {
    fn new(snapshot: &'a Snapshot) -> SnapshotRef<'a> {
        SnapshotRef {
            meta: &snapshot.meta,
            data: Bytes(&snapshot.data),
        }
    }
}

#[derive(Serialize)]
struct SpliceRef<'a> {
    from: LogIndex,
    entries: EntriesRef<'a>,
}

#[derive(Serialize)]
pub(super) struct RequestRef<'a> {
    persist_id: PersistId,
    hard_state: Option<HardState>,
    snapshot: Option<SnapshotRef<'a>>,
    log: Option<SpliceRef<'a>>,
}

#[derive(Serialize)]
pub(super) struct DurableRef<'a> {
    hard_state: HardState,
    snapshot: Option<SnapshotRef<'a>>,
    entries: EntriesRef<'a>,
}

/// A record as written; variant order as in `WalRecord`.
#[derive(Serialize)]
pub(super) enum RecordRef<'a> {
    Persist(RequestRef<'a>),
    Checkpoint(DurableRef<'a>),
}

impl<'a> RecordRef<'a> {
    pub(super) fn persist(request: &'a PersistRequest) -> RecordRef<'a> {
        RecordRef::Persist(RequestRef {
            persist_id: request.persist_id,
            hard_state: request.hard_state,
            snapshot: request.snapshot.as_ref().map(SnapshotRef::new),
            log: request.log.as_ref().map(|splice| SpliceRef {
                from: splice.from,
                entries: EntriesRef(&splice.entries),
            }),
        })
    }

    pub(super) fn checkpoint(state: &'a DurableState) -> RecordRef<'a> {
        RecordRef::Checkpoint(DurableRef {
            hard_state: state.hard_state,
            snapshot: state.snapshot.as_ref().map(SnapshotRef::new),
            entries: EntriesRef(&state.entries),
        })
    }
}

/// A byte string, read as one slice.
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteBuf, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = ByteBuf;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(bytes.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(bytes))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

#[derive(Deserialize)]
enum PayloadDe {
    Noop,
    Command(ByteBuf),
    Membership(Membership),
}

#[derive(Deserialize)]
struct EntryDe {
    index: LogIndex,
    term: Term,
    payload: PayloadDe,
}

impl From<EntryDe> for Entry {
    fn from(entry: EntryDe) -> Entry {
        Entry {
            index: entry.index,
            term: entry.term,
            payload: match entry.payload {
                PayloadDe::Noop => EntryPayload::Noop,
                PayloadDe::Command(ByteBuf(bytes)) => EntryPayload::Command(bytes),
                PayloadDe::Membership(membership) => EntryPayload::Membership(membership),
            },
        }
    }
}

/// Entries, converted as they are read.
struct EntriesDe(Vec<Entry>);

impl<'de> Deserialize<'de> for EntriesDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EntriesDe, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = EntriesDe;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a sequence of entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EntriesDe, A::Error> {
                // The length comes from the record, which may be garbage that passed its CRC
                // by chance: grow with what is actually read, from a bounded start.
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = seq.next_element::<EntryDe>()? {
                    entries.push(Entry::from(entry));
                }
                Ok(EntriesDe(entries))
            }
        }
        deserializer.deserialize_seq(EntriesVisitor)
    }
}

#[derive(Deserialize)]
struct SnapshotDe {
    meta: SnapshotMeta,
    data: ByteBuf,
}

impl From<SnapshotDe> for Snapshot {
    fn from(snapshot: SnapshotDe) -> Snapshot {
        Snapshot {
            meta: snapshot.meta,
            data: snapshot.data.0,
        }
    }
}

#[derive(Deserialize)]
struct SpliceDe {
    from: LogIndex,
    entries: EntriesDe,
}

#[derive(Deserialize)]
pub(super) struct RequestDe {
    persist_id: PersistId,
    hard_state: Option<HardState>,
    snapshot: Option<SnapshotDe>,
    log: Option<SpliceDe>,
}

#[derive(Deserialize)]
pub(super) struct DurableDe {
    hard_state: HardState,
    snapshot: Option<SnapshotDe>,
    entries: EntriesDe,
}

/// A record as read; converted into `WalRecord`.
#[derive(Deserialize)]
pub(super) enum RecordDe {
    Persist(RequestDe),
    Checkpoint(DurableDe),
}

impl From<RecordDe> for super::wal::WalRecord {
    fn from(record: RecordDe) -> super::wal::WalRecord {
        use super::wal::WalRecord;
        match record {
            RecordDe::Persist(request) => WalRecord::Persist(PersistRequest {
                persist_id: request.persist_id,
                hard_state: request.hard_state,
                snapshot: request.snapshot.map(Snapshot::from),
                log: request.log.map(|splice| LogSplice {
                    from: splice.from,
                    entries: splice.entries.0,
                }),
            }),
            RecordDe::Checkpoint(state) => WalRecord::Checkpoint(DurableState {
                hard_state: state.hard_state,
                snapshot: state.snapshot.map(Snapshot::from),
                entries: state.entries.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::NodeId;

    /// The records' encoding as serde derives it from the core's types: the format on disk.
    #[derive(Serialize)]
    enum Derived<'a> {
        Persist(&'a PersistRequest),
        Checkpoint(&'a DurableState),
    }

    #[derive(Deserialize, Debug, PartialEq)]
    enum DerivedOwned {
        Persist(PersistRequest),
        Checkpoint(DurableState),
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                index: LogIndex(4),
                term: Term(2),
                payload: EntryPayload::Noop,
            },
            Entry {
                index: LogIndex(5),
                term: Term(2),
                payload: EntryPayload::Command((0..=255).collect()),
            },
            Entry {
                index: LogIndex(6),
                term: Term(3),
                payload: EntryPayload::Membership(Membership::new([NodeId(1), NodeId(2)])),
            },
            Entry {
                index: LogIndex(7),
                term: Term(3),
                payload: EntryPayload::Command(Vec::new()),
            },
        ]
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                last_included_index: LogIndex(3),
                last_included_term: Term(2),
                membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
            },
            data: vec![7; 300],
        }
    }

    #[test]
    fn encodes_exactly_like_the_derived_impls_and_decodes_back() {
        let requests = [
            PersistRequest {
                persist_id: PersistId(9),
                hard_state: Some(HardState {
                    current_term: Term(3),
                    voted_for: Some(NodeId(2)),
                }),
                snapshot: Some(snapshot()),
                log: Some(LogSplice {
                    from: LogIndex(4),
                    entries: entries(),
                }),
            },
            PersistRequest {
                persist_id: PersistId(1),
                hard_state: None,
                snapshot: None,
                log: None,
            },
        ];
        for request in &requests {
            let ours = postcard::to_allocvec(&RecordRef::persist(request)).unwrap();
            let derived = postcard::to_allocvec(&Derived::Persist(request)).unwrap();
            assert_eq!(ours, derived);
            let back: RecordDe = postcard::from_bytes(&ours).unwrap();
            match super::super::wal::WalRecord::from(back) {
                super::super::wal::WalRecord::Persist(decoded) => assert_eq!(&decoded, request),
                other => panic!("decoded {other:?}"),
            }
            assert_eq!(
                postcard::from_bytes::<DerivedOwned>(&ours).unwrap(),
                DerivedOwned::Persist(request.clone())
            );
        }
        for state in [
            DurableState::default(),
            DurableState {
                hard_state: HardState {
                    current_term: Term(5),
                    voted_for: None,
                },
                snapshot: Some(snapshot()),
                entries: entries(),
            },
        ] {
            let ours = postcard::to_allocvec(&RecordRef::checkpoint(&state)).unwrap();
            let derived = postcard::to_allocvec(&Derived::Checkpoint(&state)).unwrap();
            assert_eq!(ours, derived);
            let back: RecordDe = postcard::from_bytes(&ours).unwrap();
            match super::super::wal::WalRecord::from(back) {
                super::super::wal::WalRecord::Checkpoint(decoded) => assert_eq!(decoded, state),
                other => panic!("decoded {other:?}"),
            }
        }
    }
}
