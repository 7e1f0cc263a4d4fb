//! Byte-driven harnesses for the `decode_datagram` and `wal_recover` fuzz targets, shared with
//! ordinary `cargo test` (which replays the checked-in corpus and generated inputs on stable).
//! Each body turns arbitrary bytes into inputs for the real decoder or the real recovery code
//! and panics on any broken property, so a panic is a finding.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use raft_core::{
    Config, DurableState, Entry, EntryPayload, Envelope, HardState, LogIndex, LogSplice,
    Membership, Message, Node, NodeId, PersistId, PersistRequest, Snapshot, SnapshotMeta, Term,
};

use crate::cluster_id::ClusterIdCell;
use crate::cluster_key::ClusterKey;
use crate::config::DATAGRAM_BYTES_MAX_DEFAULT;
use crate::metrics::DropReason;
use crate::storage::wal::{self, list_segments, WalRecordRef, SEGMENT_MAGIC};
use crate::storage::{self, Wal};
use crate::transport::{Codec, Opened, Stamp, KEY_CONTEXT};

/// Reads small numbers off the input; once it is exhausted every read is zero.
struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    fn below(&mut self, bound: u64) -> u64 {
        u64::from(self.byte()) % bound.max(1)
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// Up to `len` raw bytes.
    fn take(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        taken
    }
}

// ---------------------------------------------------------------------------------------------
// decode_datagram

/// The sender every fuzzed datagram is attributed to, and the node that opens it.
const SENDER: NodeId = NodeId(1);
const RECEIVER: NodeId = NodeId(2);
/// The cluster key of the keyed modes.
const CLUSTER_KEY: [u8; 32] = *b"fuzz cluster key, thirty-two by.";
/// The stamp of the datagrams the body signs.
const STAMP: Stamp = Stamp {
    sender_epoch: 7,
    receiver_epoch: 9,
    counter: 1,
};

/// Arbitrary bytes into the peer datagram decoder (`Codec::open`). The first byte picks the
/// mode: 0, the rest is a datagram for a node without a cluster key; 1, the same for a node
/// with one; 2, the rest is a wire frame that the body signs with the right key, so the keyed
/// decoder gets past the MAC, and it must then agree with the unkeyed decoder on the same frame.
///
/// Properties: `open` returns a message, a notice or a drop reason and never panics; what it
/// returns is addressed from the attributed sender to this node; re-sealing a message and
/// opening the result gives the same message and stamp; and the variable-length data it carries
/// totals at most the input length, so no length prefix was trusted beyond the bytes that back
/// it.
pub fn decode_datagram(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = ClusterKey::from_bytes(CLUSTER_KEY);
    let plain = Codec::new(RECEIVER, None, DATAGRAM_BYTES_MAX_DEFAULT);
    let keyed = Codec::new(RECEIVER, Some(&key), DATAGRAM_BYTES_MAX_DEFAULT);
    match mode % 3 {
        0 => drop(check_open(&plain, None, rest)),
        1 => drop(check_open(&keyed, Some(&key), rest)),
        _ => {
            let signed = check_open(&keyed, Some(&key), &signed_datagram(rest));
            let unsigned = check_open(&plain, None, &unsigned_datagram(rest));
            match (signed, unsigned) {
                (Ok(signed), Ok(unsigned)) => {
                    assert_eq!(signed, unsigned, "keyed and plain differ")
                }
                // The MAC makes the keyed datagram longer, so only it may be oversize.
                (Err(DropReason::Oversize), _) => {}
                (Err(signed), Err(unsigned)) => {
                    assert_eq!(
                        signed, unsigned,
                        "keyed and plain drop for different reasons"
                    );
                }
                (signed, unsigned) => {
                    panic!("keyed and plain disagree: {signed:?} against {unsigned:?}")
                }
            }
        }
    }
}

/// The header and stamp a sealing codec writes before the frame, taken from a real datagram so
/// they cannot drift.
fn header(key: Option<&ClusterKey>) -> Vec<u8> {
    let envelope = Envelope {
        from: SENDER,
        to: RECEIVER,
        term: Term(1),
        incarnation: raft_core::Incarnation(0),
        message: Message::TimeoutNow,
    };
    let frame = raft_core::wire::encode(&envelope);
    let sealed = Codec::new(SENDER, key, DATAGRAM_BYTES_MAX_DEFAULT).seal(&envelope, STAMP);
    // A TimeoutNow is a few bytes, far below the default limit.
    let sealed = sealed.expect("a TimeoutNow fits in a datagram");
    // What follows the frame is the MAC, when keyed.
    let mac = if key.is_some() { blake3::OUT_LEN } else { 0 };
    sealed[..sealed.len() - frame.len() - mac].to_vec()
}

fn unsigned_datagram(frame: &[u8]) -> Vec<u8> {
    let mut datagram = header(None);
    datagram.extend_from_slice(frame);
    datagram
}

/// `frame` framed, stamped and MACed the way a node with `CLUSTER_KEY` seals it.
fn signed_datagram(frame: &[u8]) -> Vec<u8> {
    let mut datagram = header(Some(&ClusterKey::from_bytes(CLUSTER_KEY)));
    datagram.extend_from_slice(frame);
    let key = blake3::derive_key(KEY_CONTEXT, &CLUSTER_KEY);
    let mac = blake3::keyed_hash(&key, &datagram);
    datagram.extend_from_slice(mac.as_bytes());
    datagram
}

/// Opens `datagram` and checks the properties; the envelope of a message (a notice checked and
/// dropped is `Misaddressed`, so the keyed and plain decoders can be compared).
fn check_open(
    codec: &Codec,
    key: Option<&ClusterKey>,
    datagram: &[u8],
) -> Result<Envelope, DropReason> {
    let (envelope, stamp, cluster) = match codec.open(datagram, Some(SENDER))? {
        Opened::Message {
            envelope,
            stamp,
            cluster,
        } => (envelope, stamp, cluster),
        Opened::Notice { from, to, .. } => {
            assert_eq!((from, to), (SENDER, RECEIVER), "misaddressed notice");
            return Err(DropReason::Misaddressed);
        }
    };
    assert_eq!(
        (envelope.from, envelope.to),
        (SENDER, RECEIVER),
        "misaddressed envelope"
    );
    assert_eq!(stamp.is_some(), key.is_some(), "a stamp exactly when keyed");
    let carried = carried_bytes(&envelope.message);
    assert!(
        carried <= datagram.len(),
        "a {}-byte datagram decoded into {carried} bytes of data",
        datagram.len()
    );
    let resealed = Codec::new(SENDER, key, DATAGRAM_BYTES_MAX_DEFAULT)
        .with_cluster(std::sync::Arc::new(ClusterIdCell::new(cluster)))
        .seal(&envelope, stamp.unwrap_or_default())
        .unwrap_or_else(|| panic!("a decoded envelope no longer fits: {envelope:?}"));
    assert_eq!(
        codec.open(&resealed, Some(SENDER)),
        Ok(Opened::Message {
            envelope: envelope.clone(),
            stamp,
            cluster,
        }),
        "re-sealed envelope opens differently"
    );
    Ok(envelope)
}

/// Bytes and members in `message`: everything whose count came from a length prefix.
fn carried_bytes(message: &Message) -> usize {
    let members = |membership: &Membership| membership.voters.len() + membership.learners.len();
    match message {
        Message::AppendEntries(append) => append
            .entries
            .iter()
            .map(|entry| {
                1 + match &entry.payload {
                    EntryPayload::Noop => 0,
                    EntryPayload::Command(command) => command.len(),
                    EntryPayload::Membership(membership) => members(membership),
                }
            })
            .sum(),
        Message::InstallSnapshot(install) => install.data.len() + members(&install.meta.membership),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// wal_recover

/// The node every fuzzed data dir belongs to, and its initial voters.
const NODE: NodeId = NodeId(1);

fn voters() -> BTreeSet<NodeId> {
    [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect()
}

fn creation() -> storage::Creation {
    storage::Creation {
        voters: voters(),
        incarnation: raft_core::Incarnation(1),
        cluster_id: None,
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "raft-net-fuzz-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from a killed earlier process with the same pid would skew the layout.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(path.join("wal")).expect("the temp dir is writable");
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Arbitrary bytes as a data dir, into start-up recovery. The first byte picks the mode:
///
/// - even: the bytes lay out up to six files among the names the storage uses (`meta.json`, its
///   temporary, segments by sequence number, odd spellings of them, an unrelated file), each
///   holding raw bytes, a metadata document, or a segment of records whose payloads come from
///   the input and whose CRCs the body computes (so the decoder behind the CRC is reached).
///   Start-up (`storage::open`, then `Node::restore`, as `node.rs` does) must either fail with a
///   `StorageError` or give a clean state: entries contiguous after the snapshot, terms never
///   decreasing and never above the current term; opening the dir again gives the same state.
/// - odd: a real log is written through the write path (append, sync, checkpoint on a
///   snapshot, rotation), then the last segment is cut and bytes of any segment are flipped.
///   Recovery must fail, or give exactly the state after some prefix of the written requests.
pub fn wal_recover(data: &[u8]) {
    let mut bytes = Bytes { data };
    if bytes.byte() % 2 == 0 {
        arbitrary_layout(&mut bytes);
    } else {
        mutated_log(&mut bytes);
    }
}

/// Where a file of the arbitrary layout goes.
const FILE_NAMES: [&str; 9] = [
    "meta.json",
    "meta.json.tmp",
    "wal/00000000000000000001.wal",
    "wal/00000000000000000002.wal",
    "wal/00000000000000000003.wal",
    "wal/1.wal",
    "wal/+2.wal",
    "wal/00000000000000000001.wal.tmp",
    "wal/notes.txt",
];

fn arbitrary_layout(bytes: &mut Bytes<'_>) {
    let scratch = Scratch::new();
    let files = 1 + bytes.below(6);
    for _ in 0..files {
        let name = FILE_NAMES[bytes.below(FILE_NAMES.len() as u64) as usize];
        let contents = match bytes.below(4) {
            0 => {
                let len = usize::from(bytes.byte());
                bytes.take(len).to_vec()
            }
            1 => meta_document(bytes),
            _ => segment(bytes),
        };
        fs::write(scratch.path.join(name), contents).expect("the temp dir is writable");
    }
    let Some(state) = start_up(&scratch.path) else {
        return;
    };
    assert_clean(&state);
    let again = start_up(&scratch.path).expect("a dir that opened once opens again");
    assert_eq!(again, state, "a second recovery gives another state");
}

/// Opens the dir and restores a node from it, as `node.rs` does; `None` on a storage error.
fn start_up(dir: &Path) -> Option<DurableState> {
    let opened = storage::open(dir, NODE, &creation()).ok()?;
    let mut config = Config::new(NODE, opened.meta.voters.clone());
    config.incarnation = opened.meta.incarnation;
    Node::restore(config, opened.durable.clone()).ok()?;
    Some(opened.durable)
}

/// The properties `Node::restore` relies on, checked independently of it.
fn assert_clean(state: &DurableState) {
    let (mut previous_index, mut previous_term) =
        state
            .snapshot
            .as_ref()
            .map_or((LogIndex(0), Term(0)), |snapshot| {
                (
                    snapshot.meta.last_included_index,
                    snapshot.meta.last_included_term,
                )
            });
    assert!(
        previous_term <= state.hard_state.current_term,
        "snapshot term above current"
    );
    for entry in &state.entries {
        assert_eq!(entry.index, previous_index.next(), "entries not contiguous");
        assert!(entry.term >= previous_term, "entry terms decrease");
        assert!(
            entry.term <= state.hard_state.current_term,
            "entry term above current"
        );
        (previous_index, previous_term) = (entry.index, entry.term);
    }
}

fn meta_document(bytes: &mut Bytes<'_>) -> Vec<u8> {
    let (format, node_id, voters) = match bytes.below(6) {
        0 => (3, 1, "[1,2,3]"),
        1 => (2, 2, "[1,2,3]"),
        2 => (2, 1, "[1,2]"),
        3 => (1, 1, "[1,2,3]"),
        _ => (2, 1, "[1,2,3]"),
    };
    let cluster = match bytes.below(3) {
        0 => "null",
        1 => r#""00000000000000ff""#,
        _ => r#""zz""#,
    };
    format!(
        r#"{{"format":{format},"node_id":{node_id},"voters":{voters},"incarnation":{},"cluster_id":{cluster}}}"#,
        bytes.below(3)
    )
    .into_bytes()
}

/// A segment: usually the magic, then batches of records framed with correct CRCs around
/// payloads that are raw input bytes or well-formed records built from the input, then maybe a
/// raw tail.
fn segment(bytes: &mut Bytes<'_>) -> Vec<u8> {
    let mut contents = if bytes.below(8) == 0 {
        SEGMENT_MAGIC[..bytes.below(8) as usize].to_vec()
    } else {
        SEGMENT_MAGIC.to_vec()
    };
    for _ in 0..bytes.below(6) {
        let mut records = Vec::new();
        for _ in 0..1 + bytes.below(2) {
            match bytes.below(4) {
                0 => {
                    let len = usize::from(bytes.byte());
                    let payload = bytes.take(len).to_vec();
                    frame_raw(&payload, &mut records);
                }
                1 => {
                    let state = arbitrary_state(bytes);
                    wal::encode(&WalRecordRef::Checkpoint(&state), &mut records)
                        .expect("a small checkpoint encodes");
                }
                _ => {
                    let request = arbitrary_request(bytes);
                    wal::encode_record(&request, &mut records).expect("a small request encodes");
                }
            }
        }
        let header = wal::batch_header(records.len()).expect("a small batch has a header");
        contents.extend_from_slice(&header);
        contents.extend_from_slice(&records);
    }
    if bytes.flag() {
        let len = usize::from(bytes.byte());
        contents.extend_from_slice(bytes.take(len));
    }
    contents
}

/// Frames `payload` as a record with a correct length and CRC, as `wal::encode` does.
fn frame_raw(payload: &[u8], out: &mut Vec<u8>) {
    let len_bytes = u32::try_from(payload.len())
        .expect("payloads here are under 256 bytes")
        .to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Any shape at all: indices, terms and payloads straight from the input, sane or not.
fn arbitrary_entries(bytes: &mut Bytes<'_>) -> Vec<Entry> {
    (0..bytes.below(4))
        .map(|_| Entry {
            index: LogIndex(bytes.below(8)),
            term: Term(bytes.below(4)),
            payload: match bytes.below(3) {
                0 => EntryPayload::Noop,
                1 => EntryPayload::Membership(Membership::new(
                    (0..bytes.below(4)).map(|_| NodeId(bytes.below(5))),
                )),
                _ => EntryPayload::Command(vec![bytes.byte(); bytes.below(4) as usize].into()),
            },
        })
        .collect()
}

fn arbitrary_snapshot(bytes: &mut Bytes<'_>) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included_index: LogIndex(bytes.below(8)),
            last_included_term: Term(bytes.below(4)),
            membership: Membership::new((0..bytes.below(4)).map(|_| NodeId(bytes.below(5)))),
        },
        data: vec![bytes.byte(); bytes.below(4) as usize].into(),
    }
}

fn arbitrary_hard_state(bytes: &mut Bytes<'_>) -> HardState {
    HardState {
        current_term: Term(bytes.below(4)),
        voted_for: bytes.flag().then(|| NodeId(bytes.below(5))),
    }
}

fn arbitrary_request(bytes: &mut Bytes<'_>) -> PersistRequest {
    PersistRequest {
        persist_id: PersistId(bytes.below(8)),
        hard_state: bytes.flag().then(|| arbitrary_hard_state(bytes)),
        snapshot: bytes.flag().then(|| arbitrary_snapshot(bytes)),
        log: bytes.flag().then(|| LogSplice {
            from: LogIndex(bytes.below(8)),
            entries: arbitrary_entries(bytes),
        }),
    }
}

fn arbitrary_state(bytes: &mut Bytes<'_>) -> DurableState {
    DurableState {
        hard_state: arbitrary_hard_state(bytes),
        snapshot: bytes.flag().then(|| arbitrary_snapshot(bytes)),
        entries: arbitrary_entries(bytes),
    }
}

fn mutated_log(bytes: &mut Bytes<'_>) {
    let scratch = Scratch::new();
    let opened = storage::open(&scratch.path, NODE, &creation()).expect("a fresh dir opens");
    let mut wal = opened.wal;
    wal.set_segment_bytes_max(64 + 64 * bytes.below(8));
    // Preallocation off, short, or up to the segment limit (the default).
    match bytes.below(3) {
        0 => wal.set_preallocate_bytes(0),
        1 => wal.set_preallocate_bytes(1 + bytes.below(64)),
        _ => {}
    }
    let written = write_log(&mut wal, bytes);
    drop(wal);
    let wal_dir = scratch.path.join("wal");
    let segments = list_segments(&wal_dir).expect("the wal dir lists");
    let mutations = bytes.below(4);
    for _ in 0..mutations {
        mutate(&segments, bytes);
    }
    match Wal::recover(&wal_dir) {
        Ok((wal, state, _)) => {
            assert!(
                written.contains(&state),
                "recovery produced a state that was never written: {state:?}"
            );
            if mutations == 0 {
                assert_eq!(Some(&state), written.last(), "an intact log lost data");
            }
            // The storage thread reads its log back before its first checkpoint.
            match wal.replay() {
                Ok(replayed) => assert_eq!(replayed, state, "the read-back differs"),
                Err(error) => panic!("a recovered log does not read back: {error}"),
            }
        }
        Err(error) => assert!(mutations > 0, "an intact log fails to recover: {error}"),
    }
}

/// Writes a valid sequence of requests the way the storage thread does (append, sync, and a
/// checkpoint after a snapshot); returns the state after each prefix, the empty one first.
fn write_log(wal: &mut Wal, bytes: &mut Bytes<'_>) -> Vec<DurableState> {
    let mut state = DurableState::default();
    let mut written = vec![state.clone()];
    let mut persist_id = PersistId(0);
    for _ in 0..1 + bytes.below(8) {
        persist_id = persist_id.next();
        let request = valid_request(&state, persist_id, bytes);
        let mut buf = Vec::new();
        wal::encode_record(&request, &mut buf).expect("a small request encodes");
        wal.append(&buf).expect("append to the temp dir");
        wal.sync().expect("sync in the temp dir");
        state.apply(&request);
        if request.snapshot.is_some() {
            wal.checkpoint(&state).expect("checkpoint in the temp dir");
        }
        written.push(state.clone());
    }
    written
}

/// A request a core could issue after `state`: a term change, an append or overwrite of a
/// suffix, or a snapshot of a prefix.
fn valid_request(
    state: &DurableState,
    persist_id: PersistId,
    bytes: &mut Bytes<'_>,
) -> PersistRequest {
    let mut request = PersistRequest {
        persist_id,
        hard_state: None,
        snapshot: None,
        log: None,
    };
    let mut term = state.hard_state.current_term;
    if term == Term(0) || bytes.below(4) == 0 {
        term = Term(term.0 + 1);
        request.hard_state = Some(HardState {
            current_term: term,
            voted_for: bytes.flag().then(|| NodeId(1 + bytes.below(3))),
        });
    }
    let first = state.first_index();
    let last = LogIndex(first.0 + state.entries.len() as u64 - 1);
    if bytes.below(4) == 0 && !state.entries.is_empty() {
        let through = &state.entries[bytes.below(state.entries.len() as u64) as usize];
        request.snapshot = Some(Snapshot {
            meta: SnapshotMeta {
                last_included_index: through.index,
                last_included_term: through.term,
                membership: Membership::new(voters()),
            },
            data: vec![bytes.byte(); bytes.below(16) as usize].into(),
        });
        return request;
    }
    // Splice somewhere from the first entry to just after the last one.
    let from = LogIndex(first.0 + bytes.below(last.0 + 2 - first.0));
    let mut entry_term = from
        .0
        .checked_sub(first.0 + 1)
        .and_then(|position| state.entries.get(position as usize))
        .map_or_else(
            || {
                state
                    .snapshot
                    .as_ref()
                    .map_or(Term(0), |s| s.meta.last_included_term)
            },
            |entry| entry.term,
        );
    let entries = (0..1 + bytes.below(3))
        .map(|offset| {
            entry_term = Term((entry_term.0 + bytes.below(2)).clamp(1, term.0));
            Entry {
                index: LogIndex(from.0 + offset),
                term: entry_term,
                payload: EntryPayload::Command(vec![bytes.byte(); bytes.below(24) as usize].into()),
            }
        })
        .collect();
    request.log = Some(LogSplice { from, entries });
    request
}

/// Cuts the last segment somewhere, or flips a byte of any segment.
fn mutate(segments: &[(u64, PathBuf)], bytes: &mut Bytes<'_>) {
    let Some((_, last)) = segments.last() else {
        return;
    };
    let which = bytes.below(segments.len() as u64) as usize;
    let cut = bytes.flag();
    let path = if cut { last } else { &segments[which].1 };
    let Ok(mut contents) = fs::read(path) else {
        return;
    };
    let position =
        (usize::from(bytes.byte()) << 8 | usize::from(bytes.byte())) % (contents.len() + 1);
    if cut {
        // A crash: the file ends early, or what follows some point was never written (zeros).
        if bytes.flag() {
            contents.truncate(position);
        } else {
            contents[position..].fill(0);
        }
    } else if bytes.flag() {
        // A sector that never reached the disk.
        let sector = position / 512 * 512;
        let end = (sector + 512).min(contents.len());
        contents[sector..end].fill(0);
    } else if let Some(byte) = contents.get_mut(position) {
        *byte ^= bytes.byte().max(1);
    }
    fs::write(path, contents).expect("rewrite a segment in the temp dir");
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::RequestVote;

    #[test]
    fn signed_datagrams_match_seal() {
        let envelope = Envelope {
            from: SENDER,
            to: RECEIVER,
            term: Term(4),
            incarnation: raft_core::Incarnation(0),
            message: Message::PreVote(RequestVote {
                last_log_index: LogIndex(9),
                last_log_term: Term(3),
                leadership_transfer: true,
            }),
        };
        let frame = raft_core::wire::encode(&envelope);
        let key = ClusterKey::from_bytes(CLUSTER_KEY);
        let sealed = Codec::new(SENDER, Some(&key), DATAGRAM_BYTES_MAX_DEFAULT)
            .seal(&envelope, STAMP)
            .unwrap();
        assert_eq!(signed_datagram(&frame), sealed);
        let plain = Codec::new(SENDER, None, DATAGRAM_BYTES_MAX_DEFAULT)
            .seal(&envelope, STAMP)
            .unwrap();
        assert_eq!(unsigned_datagram(&frame), plain);
    }
}
