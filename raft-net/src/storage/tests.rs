use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use raft_core::{
    DurableState, Entry, EntryPayload, HardState, LogIndex, LogSplice, NodeId, PersistId,
    PersistRequest, Term,
};

use super::wal::{
    self, batch_header, encode_record, list_segments, Wal, BATCH_HEADER_BYTES, SEGMENT_MAGIC,
};
use super::*;
use crate::metrics::Metrics;

fn voters() -> BTreeSet<NodeId> {
    [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect()
}

fn creation() -> Creation {
    Creation {
        voters: voters(),
        incarnation: raft_core::Incarnation(1_000),
        cluster_id: None,
    }
}

fn entry(index: u64, term: u64, command: &str) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Command(command.as_bytes().to_vec().into()),
    }
}

/// A realistic sequence: a vote, some appends, a conflicting suffix replaced, a term change.
fn requests() -> Vec<PersistRequest> {
    let hard = |term, voted_for| {
        Some(HardState {
            current_term: Term(term),
            voted_for,
        })
    };
    let splice = |from, entries| {
        Some(LogSplice {
            from: LogIndex(from),
            entries,
        })
    };
    vec![
        PersistRequest {
            persist_id: PersistId(1),
            hard_state: hard(1, Some(NodeId(1))),
            snapshot: None,
            log: None,
        },
        PersistRequest {
            persist_id: PersistId(2),
            hard_state: None,
            snapshot: None,
            log: splice(1, vec![entry(1, 1, "a"), entry(2, 1, "b")]),
        },
        PersistRequest {
            persist_id: PersistId(3),
            hard_state: None,
            snapshot: None,
            log: splice(3, vec![entry(3, 1, "c")]),
        },
        PersistRequest {
            persist_id: PersistId(4),
            hard_state: hard(2, None),
            snapshot: None,
            log: splice(2, vec![entry(2, 2, "B")]),
        },
    ]
}

fn expected(requests: &[PersistRequest]) -> DurableState {
    let mut state = DurableState::default();
    for request in requests {
        state.apply(request);
    }
    state
}

/// Writes `requests` directly as records, one append and sync each, without preallocation:
/// the segment ends where its last batch does (as a log of an earlier version does), so tests
/// can damage its tail by appending to the file.
fn write_records(dir: &Path, requests: &[PersistRequest]) {
    let mut opened = open(dir, NodeId(1), &creation()).unwrap();
    opened.wal.set_preallocate_bytes(0);
    for request in requests {
        let mut buf = Vec::new();
        encode_record(request, &mut buf).unwrap();
        opened.wal.append(&buf).unwrap();
        opened.wal.sync().unwrap();
    }
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let segments = list_segments(&dir.join("wal")).unwrap();
    assert_eq!(segments.len(), 1);
    segments[0].1.clone()
}

/// `records` framed as one batch, as `Wal::append` writes them.
fn batch(records: &[u8]) -> Vec<u8> {
    let mut framed = batch_header(records.len()).unwrap().to_vec();
    framed.extend_from_slice(records);
    framed
}

/// One request as a batch of its own.
fn batch_of(request: &PersistRequest) -> Vec<u8> {
    let mut record = Vec::new();
    encode_record(request, &mut record).unwrap();
    batch(&record)
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn missing_dir_is_initialised() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("does/not/exist");
    let opened = open(&dir, NodeId(1), &creation()).unwrap();
    assert!(opened.created);
    assert_eq!(opened.durable, DurableState::default());
    assert!(dir.join("meta.json").is_file());
    assert_eq!(list_segments(&dir.join("wal")).unwrap().len(), 1);
    drop(opened);
    let reopened = open(&dir, NodeId(1), &creation()).unwrap();
    assert!(!reopened.created);
    assert_eq!(reopened.durable, DurableState::default());
}

#[test]
fn empty_existing_dir_is_initialised() {
    let temp = tempfile::tempdir().unwrap();
    let opened = open(temp.path(), NodeId(2), &creation()).unwrap();
    assert!(opened.created);
    assert_eq!(opened.report.records, 0);
}

/// A fresh data dir in `dir` and its storage thread.
fn storage_thread(
    dir: &Path,
) -> (
    StorageHandle,
    tokio::sync::mpsc::UnboundedReceiver<PersistCompletion>,
) {
    spawn_on(open(dir, NodeId(1), &creation()).unwrap(), true)
}

/// A fresh data dir in `dir` whose log starts a new segment for every batch after the first,
/// and its storage thread; `mirror` as for `spawn_on`.
fn storage_thread_one_batch_per_segment(
    dir: &Path,
    mirror: bool,
) -> (
    StorageHandle,
    tokio::sync::mpsc::UnboundedReceiver<PersistCompletion>,
) {
    let mut opened = open(dir, NodeId(1), &creation()).unwrap();
    opened.wal.set_segment_bytes_max(1);
    spawn_on(opened, mirror)
}

/// The storage thread of `opened`; `mirror`: whether it is given the log's state.
fn spawn_on(
    opened: Opened,
    mirror: bool,
) -> (
    StorageHandle,
    tokio::sync::mpsc::UnboundedReceiver<PersistCompletion>,
) {
    let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = spawn_writer(
        opened.wal,
        mirror.then_some(opened.durable),
        done_tx,
        Arc::new(Metrics::default()),
    )
    .unwrap();
    (handle, done_rx)
}

#[test]
fn round_trip_through_the_storage_thread() {
    let temp = tempfile::tempdir().unwrap();
    let (mut handle, mut done_rx) = storage_thread(temp.path());
    for request in requests() {
        handle.persist(request).unwrap();
    }
    let mut highest = PersistId(0);
    while highest < PersistId(4) {
        let done = done_rx.blocking_recv().unwrap().unwrap();
        assert!(
            done > highest,
            "completions are reported in increasing order"
        );
        highest = done;
    }
    handle.shutdown();
    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&requests()));
    assert_eq!(reopened.report.records, 4);
    assert_eq!(reopened.report.truncated, None);
}

/// Requests written inline and requests handed to the thread, alternately, recover as one log
/// in order, record by record; a request is written inline only while the thread has nothing
/// unreported.
#[test]
fn inline_writes_and_the_threads_writes_make_one_log() {
    let temp = tempfile::tempdir().unwrap();
    let (mut handle, mut done_rx) = storage_thread(temp.path());
    let mut all = requests().into_iter();

    handle.queue(all.next().unwrap());
    assert_eq!(handle.write_inline().unwrap().unwrap(), PersistId(1));
    handle.reported(PersistId(1));
    handle.persist(all.next().unwrap()).unwrap();
    handle.queue(all.next().unwrap());
    assert!(
        handle.write_inline().is_none(),
        "the thread has not reported 2"
    );
    assert_eq!(done_rx.blocking_recv().unwrap().unwrap(), PersistId(2));
    handle.reported(PersistId(2));
    assert_eq!(handle.write_inline().unwrap().unwrap(), PersistId(3));
    handle.reported(PersistId(3));
    handle.queue(all.next().unwrap());
    assert_eq!(handle.write_inline().unwrap().unwrap(), PersistId(4));
    handle.shutdown();

    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&requests()));
    assert_eq!(reopened.report.records, 4);
}

/// Once a write has failed, the log's end is unknown: nothing is written behind it, inline or by
/// the thread, even when the disk takes writes again, and what was reported durable before the
/// failure is what recovers.
#[test]
fn after_a_failed_write_nothing_is_written_behind_it() {
    let temp = tempfile::tempdir().unwrap();
    // Every batch after the first starts a new segment, so a file in the next segment's place
    // makes the next write fail as a full or failing disk would.
    let (mut handle, mut done_rx) = storage_thread_one_batch_per_segment(temp.path(), true);
    let mut all = requests().into_iter();

    handle.queue(all.next().unwrap());
    assert_eq!(handle.write_inline().unwrap().unwrap(), PersistId(1));
    handle.reported(PersistId(1));

    let blocker = temp.path().join("wal").join(wal::segment_name(2));
    fs::write(&blocker, b"").unwrap();
    handle.queue(all.next().unwrap());
    let failed = handle.write_inline().unwrap();
    assert!(matches!(failed, Err(StorageError::Io { .. })), "{failed:?}");

    // The disk takes writes again; the log still refuses them.
    fs::remove_file(&blocker).unwrap();
    handle.queue(all.next().unwrap());
    let inline = handle.write_inline().unwrap();
    assert!(
        matches!(inline, Err(StorageError::EarlierWriteFailed)),
        "{inline:?}"
    );
    handle.persist(all.next().unwrap()).unwrap();
    let threaded = done_rx.blocking_recv().unwrap();
    assert!(
        matches!(threaded, Err(StorageError::EarlierWriteFailed)),
        "{threaded:?}"
    );
    assert!(
        done_rx.blocking_recv().is_none(),
        "a thread whose write failed reports nothing more"
    );
    handle.shutdown();

    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&requests()[..1]));
    assert_eq!(reopened.report.records, 1);
}

/// A batch carrying a snapshot is checkpointed by the thread, never inline.
#[test]
fn a_snapshot_is_never_written_inline() {
    let temp = tempfile::tempdir().unwrap();
    let (mut handle, mut done_rx) = storage_thread(temp.path());
    let mut all = requests();
    all.push(snapshot_request(5, 1, 1));
    for request in all.clone() {
        handle.queue(request);
    }
    assert!(handle.write_inline().is_none());
    handle.flush().unwrap();
    assert_eq!(done_rx.blocking_recv().unwrap().unwrap(), PersistId(5));
    handle.shutdown();

    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&all));
}

#[test]
fn torn_tail_is_truncated() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all);
    let segment = only_segment(temp.path());
    let good_len = fs::metadata(&segment).unwrap().len();
    // Half of a fifth batch: the crash hit in the middle of an append.
    let torn = batch_of(&all[1]);
    append_raw(&segment, &torn[..torn.len() / 2]);

    let opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(opened.durable, expected(&all));
    assert_eq!(opened.report.truncated, Some((segment.clone(), good_len)));
    assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);
}

#[test]
fn full_length_tail_with_bad_crc_is_truncated() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all[..3]);
    let segment = only_segment(temp.path());
    let good_len = fs::metadata(&segment).unwrap().len();
    let mut torn = batch_of(&all[3]);
    let last = torn.len() - 1;
    torn[last] ^= 0xff;
    append_raw(&segment, &torn);

    let opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(opened.durable, expected(&all[..3]));
    assert_eq!(opened.report.truncated, Some((segment, good_len)));
}

/// Zeros after the last batch are where preallocation stopped, or sectors a crash left
/// unwritten: either way the log ends there, and appends go on from there.
#[test]
fn a_zeroed_tail_is_the_end_of_the_log() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all[..3]);
    let segment = only_segment(temp.path());
    let good_len = fs::metadata(&segment).unwrap().len();
    append_raw(&segment, &[0; 100]);
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(opened.durable, expected(&all[..3]));
    assert_eq!(opened.report.truncated, None);
    append_synced(&mut opened.wal, &all[3]);
    drop(opened);
    let bytes = fs::read(&segment).unwrap();
    let last = batch_of(&all[3]);
    assert_eq!(
        &bytes[good_len as usize..good_len as usize + last.len()],
        &last[..]
    );
    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&all));
}

fn append_synced(wal: &mut Wal, request: &PersistRequest) {
    let mut buf = Vec::new();
    encode_record(request, &mut buf).unwrap();
    wal.append(&buf).unwrap();
    wal.sync().unwrap();
}

/// Where the batches of a segment written from `requests` end.
fn batches_len(requests: &[PersistRequest]) -> usize {
    SEGMENT_MAGIC.len()
        + requests
            .iter()
            .map(|request| batch_of(request).len())
            .sum::<usize>()
}

/// Preallocation stops at the segment limit and batches stop anywhere inside the zeros, so
/// fewer zeros than a batch header may follow the last batch: still the end of the log, for
/// recovery and for the storage thread reading its own log back (found in review: such a
/// tail read as a torn header, and the read-back refused it).
#[test]
fn a_zero_tail_shorter_than_a_batch_header_is_the_end_of_the_log() {
    let all = requests();
    for zeros in 1..BATCH_HEADER_BYTES {
        let temp = tempfile::tempdir().unwrap();
        write_records(temp.path(), &all);
        let segment = only_segment(temp.path());
        append_raw(&segment, &vec![0; zeros]);
        let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
        assert_eq!(reopened.durable, expected(&all), "{zeros} zeros");
        assert_eq!(reopened.report.truncated, None, "{zeros} zeros");
        assert_eq!(
            reopened.wal.replay().unwrap(),
            expected(&all),
            "{zeros} zeros"
        );
    }
}

/// The tail segment is zero-filled ahead of its last batch, so that a batch's `fdatasync`
/// changes no file metadata; a restart reads the zeros as the end, cuts nothing, and appends
/// over them.
#[test]
fn the_tail_segment_is_preallocated_and_recovers_without_a_cut() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    for request in &all[..2] {
        append_synced(&mut opened.wal, request);
    }
    drop(opened);
    let segment = only_segment(temp.path());
    let file_len = fs::metadata(&segment).unwrap().len();
    // The first batch reached the end of the file and set the zeros ahead; the second went
    // over them.
    let first_end = batches_len(&all[..1]) as u64;
    assert_eq!(file_len, first_end + wal::PREALLOCATE_BYTES);

    let mut reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&all[..2]));
    assert_eq!(reopened.report.truncated, None);
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        file_len,
        "nothing cut"
    );
    for request in &all[2..] {
        append_synced(&mut reopened.wal, request);
    }
    drop(reopened);
    let bytes = fs::read(&segment).unwrap();
    let mut written = SEGMENT_MAGIC.to_vec();
    for request in &all {
        written.extend_from_slice(&batch_of(request));
    }
    assert_eq!(&bytes[..written.len()], &written[..]);
    assert!(bytes[written.len()..].iter().all(|&byte| byte == 0));
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        file_len,
        "the zeros were used"
    );
    let again = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(again.durable, expected(&all));
}

/// A crash while the last batch was written may leave any of its sectors unwritten (zeros),
/// and the file shorter than what was written: whichever, recovery keeps exactly the batches
/// before it. The zeros after a batch no longer tell that it is the last one, so this is
/// checked sector by sector, for a batch written over preallocated zeros and for one that
/// grows the file (and sets the next zeros ahead).
#[test]
fn every_crash_inside_the_preallocated_tail_keeps_the_batches_before_it() {
    let all = requests_with_a_big_second();
    let first_end = batches_len(&all[..1]) as u64;
    // Over zeros already there; growing the file past a short zone of zeros.
    for preallocate in [8192, 100] {
        crash_images_of_the_last_batch(&all[..2], preallocate);
    }
    assert!(batches_len(&all[..2]) as u64 > first_end + 100);
}

fn crash_images_of_the_last_batch(all: &[PersistRequest], preallocate: u64) {
    const SECTOR: usize = 512;
    let temp = tempfile::tempdir().unwrap();
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    opened.wal.set_preallocate_bytes(preallocate);
    for request in all {
        append_synced(&mut opened.wal, request);
    }
    drop(opened);
    let segment = only_segment(temp.path());
    let original = fs::read(&segment).unwrap();
    let last = all.len() - 1;
    let (last_start, end) = (batches_len(&all[..last]), batches_len(all));
    assert!(original.len() > end && end - last_start > 4 * SECTOR);
    let recovered = |bytes: &[u8]| {
        fs::write(&segment, bytes).unwrap();
        let opened = open(temp.path(), NodeId(1), &creation()).unwrap();
        assert!(opened.report.truncated.is_none() || bytes != original);
        // What it read back is also what the storage thread reads back later.
        assert_eq!(opened.wal.replay().unwrap(), opened.durable);
        opened.durable
    };
    let before = expected(&all[..last]);
    assert_eq!(recovered(&original), expected(all));
    let sectors: Vec<usize> = std::iter::once(last_start)
        .chain((last_start / SECTOR + 1..).map(|sector| sector * SECTOR))
        .take_while(|&start| start < end)
        .collect();
    for &start in &sectors {
        let mut bytes = original.clone();
        bytes[start..].fill(0);
        assert_eq!(
            recovered(&bytes),
            before,
            "zeros from {start}, {preallocate}"
        );
        let mut bytes = original.clone();
        bytes[start..((start / SECTOR + 1) * SECTOR).min(end)].fill(0);
        assert_eq!(
            recovered(&bytes),
            before,
            "the sector at {start}, {preallocate}"
        );
        assert_eq!(
            recovered(&original[..start]),
            before,
            "cut at {start}, {preallocate}"
        );
    }
    for cut in end..original.len() {
        assert_eq!(
            recovered(&original[..cut]),
            expected(all),
            "cut at {cut}, {preallocate}"
        );
    }
}

/// Only the last segment may end in zeros: a segment is trimmed to its batches before the next
/// one starts (a checkpoint can start one at any length), so zeros at the end of an earlier
/// segment stay corruption, never a quiet end that would hide lost batches.
#[test]
fn a_segment_is_trimmed_to_its_batches_before_the_next_starts() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    append_synced(&mut opened.wal, &all[0]);
    // Zeros are ahead of the first batch now; the next append starts a new segment.
    opened.wal.set_segment_bytes_max(1);
    for request in &all[1..] {
        append_synced(&mut opened.wal, request);
    }
    drop(opened);
    let segments = list_segments(&temp.path().join("wal")).unwrap();
    assert_eq!(segments.len(), all.len());
    for ((_, path), request) in segments.iter().zip(&all).take(all.len() - 1) {
        let len = fs::metadata(path).unwrap().len() as usize;
        assert_eq!(len, SEGMENT_MAGIC.len() + batch_of(request).len());
    }
    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&all));
    drop(reopened);
    append_raw(&segments[0].1, &[0; 100]);
    let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
    assert!(
        matches!(error, StorageError::Corrupt { ref path, .. } if *path == segments[0].1),
        "{error}"
    );
}

#[test]
fn corruption_before_the_tail_is_refused_with_file_and_offset() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all);
    let segment = only_segment(temp.path());
    let mut bytes = fs::read(&segment).unwrap();
    // Flip a payload byte of the second record; two good batches follow it.
    let second_offset = SEGMENT_MAGIC.len() + batch_of(&all[0]).len() + BATCH_HEADER_BYTES;
    bytes[second_offset + 10] ^= 0x40;
    fs::write(&segment, &bytes).unwrap();

    let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
    match &error {
        StorageError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &segment);
            assert_eq!(*offset, second_offset as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&segment.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("offset {second_offset}")),
        "{message}"
    );
    // Refusing must not have modified the file.
    assert_eq!(fs::read(&segment).unwrap(), bytes);
}

#[test]
fn another_node_id_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    write_records(temp.path(), &requests());
    let error = open(temp.path(), NodeId(2), &creation()).unwrap_err();
    assert!(
        matches!(
            error,
            StorageError::NodeIdMismatch {
                on_disk: NodeId(1),
                requested: NodeId(2),
                ..
            }
        ),
        "{error:?}"
    );
    let other_voters = Creation {
        voters: [NodeId(1), NodeId(2)].into_iter().collect(),
        ..creation()
    };
    let error = open(temp.path(), NodeId(1), &other_voters).unwrap_err();
    assert!(
        matches!(error, StorageError::VotersMismatch { .. }),
        "{error:?}"
    );
}

#[test]
fn segments_without_metadata_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    write_records(temp.path(), &requests());
    fs::remove_file(temp.path().join("meta.json")).unwrap();
    let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
    assert!(
        matches!(error, StorageError::MissingMeta { .. }),
        "{error:?}"
    );
}

#[test]
fn rotation_spreads_records_over_segments_and_recovers_them() {
    let temp = tempfile::tempdir().unwrap();
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    opened.wal.set_segment_bytes_max(64);
    let mut all = Vec::new();
    for index in 1..=20 {
        let request = PersistRequest {
            persist_id: PersistId(index),
            hard_state: (index == 1).then_some(HardState {
                current_term: Term(1),
                voted_for: None,
            }),
            snapshot: None,
            log: Some(LogSplice {
                from: LogIndex(index),
                entries: vec![entry(index, 1, "value")],
            }),
        };
        let mut buf = Vec::new();
        encode_record(&request, &mut buf).unwrap();
        opened.wal.append(&buf).unwrap();
        all.push(request);
    }
    opened.wal.sync().unwrap();
    drop(opened);
    assert!(list_segments(&temp.path().join("wal")).unwrap().len() > 2);
    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, expected(&all));
    assert_eq!(reopened.durable.entries.len(), 20);
}

/// A data dir whose WAL holds each of `requests()` in a segment of its own.
fn one_request_per_segment() -> (tempfile::TempDir, Vec<(u64, std::path::PathBuf)>) {
    let temp = tempfile::tempdir().unwrap();
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    opened.wal.set_segment_bytes_max(1);
    for request in &requests() {
        let mut buf = Vec::new();
        encode_record(request, &mut buf).unwrap();
        opened.wal.append(&buf).unwrap();
    }
    opened.wal.sync().unwrap();
    drop(opened);
    let segments = list_segments(&temp.path().join("wal")).unwrap();
    assert_eq!(segments.len(), 4);
    (temp, segments)
}

#[test]
fn a_missing_segment_refuses_start_up_naming_it() {
    let (temp, segments) = one_request_per_segment();
    // One from the middle, then (on a copy) the first: both lose acknowledged records.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(temp.path(), copy.path());
    fs::remove_file(&segments[1].1).unwrap();
    let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
    assert!(
        matches!(error, StorageError::MissingSegment { ref missing, .. } if missing == "00000000000000000002.wal"),
        "{error}"
    );
    let first = copy
        .path()
        .join("wal")
        .join(segments[0].1.file_name().unwrap());
    fs::remove_file(first).unwrap();
    let error = open(copy.path(), NodeId(1), &creation()).unwrap_err();
    assert!(
        matches!(error, StorageError::MissingSegment { ref missing, .. } if missing == "00000000000000000001.wal"),
        "{error}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_bad_record_at_the_end_of_an_earlier_segment_is_corruption() {
    let (temp, segments) = one_request_per_segment();
    let first = &segments[0].1;
    let mut bytes = fs::read(first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(first, &bytes).unwrap();
    let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
    assert!(matches!(error, StorageError::Corrupt { ref path, .. } if path == first));
}

#[test]
fn unwritten_sector_inside_the_last_batch_is_a_torn_write() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all[..1]);
    let segment = only_segment(temp.path());
    let good_len = fs::metadata(&segment).unwrap().len() as usize;
    // One unsynced batch: a large record, then a small one. The crash kept the small record but
    // not one sector in the middle of the large one.
    let big = PersistRequest {
        persist_id: PersistId(2),
        hard_state: None,
        snapshot: None,
        log: Some(LogSplice {
            from: LogIndex(1),
            entries: vec![entry(1, 1, &"x".repeat(4000))],
        }),
    };
    let mut records = Vec::new();
    encode_record(&big, &mut records).unwrap();
    encode_record(&all[2], &mut records).unwrap();
    append_raw(&segment, &batch(&records));
    let mut bytes = fs::read(&segment).unwrap();
    let sector = (good_len / 512 + 2) * 512;
    bytes[sector..sector + 512].fill(0);
    fs::write(&segment, &bytes).unwrap();

    let opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(opened.durable, expected(&all[..1]));
    assert_eq!(opened.report.truncated, Some((segment, good_len as u64)));
}

fn snapshot_request(persist_id: u64, index: u64, term: u64) -> PersistRequest {
    PersistRequest {
        persist_id: PersistId(persist_id),
        hard_state: None,
        snapshot: Some(raft_core::Snapshot {
            meta: raft_core::SnapshotMeta {
                last_included_index: LogIndex(index),
                last_included_term: Term(term),
                membership: raft_core::Membership::new(voters()),
            },
            data: b"state machine image".to_vec().into(),
        }),
        log: None,
    }
}

#[test]
fn a_snapshot_checkpoints_the_log_and_drops_older_segments() {
    checkpoint_drops_older_segments(true);
}

/// The storage thread started without a copy of the log reads it back for its checkpoint.
#[test]
fn a_checkpoint_without_a_mirror_reads_the_log_back() {
    checkpoint_drops_older_segments(false);
}

fn checkpoint_drops_older_segments(mirror: bool) {
    let temp = tempfile::tempdir().unwrap();
    let (mut handle, mut done_rx) = storage_thread_one_batch_per_segment(temp.path(), mirror);
    let mut all = requests();
    // Entries 1 (term 1) and 2 (term 2) exist after the fourth request; snapshot through 1.
    all.push(snapshot_request(5, 1, 1));
    all.push(PersistRequest {
        persist_id: PersistId(6),
        hard_state: None,
        snapshot: None,
        log: Some(LogSplice {
            from: LogIndex(3),
            entries: vec![entry(3, 2, "after")],
        }),
    });
    for request in all.clone() {
        handle.persist(request).unwrap();
        // One request per batch, so the segments really rotate before the checkpoint.
        done_rx.blocking_recv().unwrap().unwrap();
    }
    handle.shutdown();
    let segments = list_segments(&temp.path().join("wal")).unwrap();
    assert!(
        segments.len() <= 2,
        "segments before the checkpoint are deleted: {segments:?}"
    );
    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    let want = expected(&all);
    assert_eq!(want.first_index(), LogIndex(2));
    assert_eq!(reopened.durable, want);
}

#[test]
fn leftover_segments_before_a_checkpoint_are_ignored_and_removed() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all);
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    let mut state = opened.durable.clone();
    state.apply(&snapshot_request(5, 2, 2));
    opened.wal.checkpoint(&state).unwrap();
    drop(opened);
    // As if the crash came before the old segment was deleted: put a copy of it back.
    let wal_dir = temp.path().join("wal");
    let segments = list_segments(&wal_dir).unwrap();
    assert_eq!(segments.len(), 1);
    let mut old = Vec::new();
    old.extend_from_slice(SEGMENT_MAGIC);
    for request in &all {
        old.extend_from_slice(&batch_of(request));
    }
    fs::write(wal_dir.join("00000000000000000001.wal"), &old).unwrap();

    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(reopened.durable, state);
    assert_eq!(list_segments(&wal_dir).unwrap().len(), 1);
}

/// A checkpoint torn by a crash starts nothing: the segments before it are still there (the
/// writer deletes them only once the checkpoint is synced), so replay starts from them and the
/// torn batch is cut; without them the damage is no crash's and start-up refuses. Either way a
/// second start-up finds what the first left (found by the `wal_recover` fuzz target: a cut
/// checkpoint left a log the next start-up refused).
#[test]
fn a_torn_checkpoint_is_not_where_replay_starts() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all);
    let mut opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    let mut state = opened.durable.clone();
    state.apply(&snapshot_request(5, 2, 2));
    opened.wal.checkpoint(&state).unwrap();
    drop(opened);
    let wal_dir = temp.path().join("wal");
    let checkpoint = only_segment(temp.path());
    let torn_len = fs::metadata(&checkpoint).unwrap().len() - 3;
    let tear = |path: &Path| {
        let file = fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(torn_len).unwrap();
    };

    let without_predecessor = tempfile::tempdir().unwrap();
    copy_dir(temp.path(), without_predecessor.path());
    tear(
        &without_predecessor
            .path()
            .join("wal")
            .join(checkpoint.file_name().unwrap()),
    );
    for _ in 0..2 {
        let error = open(without_predecessor.path(), NodeId(1), &creation()).unwrap_err();
        assert!(
            matches!(error, StorageError::MissingSegment { ref missing, .. } if missing == "00000000000000000001.wal"),
            "{error}"
        );
    }

    tear(&checkpoint);
    let mut old = Vec::new();
    old.extend_from_slice(SEGMENT_MAGIC);
    for request in &all {
        old.extend_from_slice(&batch_of(request));
    }
    fs::write(wal_dir.join("00000000000000000001.wal"), &old).unwrap();
    let first = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(
        first.durable,
        expected(&all),
        "the state before the checkpoint"
    );
    drop(first);
    let second = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(second.durable, expected(&all));
}

/// A crash can cut the file at any byte, and a disk can flip any bit: recovery must never panic,
/// must never invent state, and must only ever lose the unsynced tail.
#[test]
fn every_truncation_and_every_bit_flip_is_handled() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all);
    let segment = only_segment(temp.path());
    let original = fs::read(&segment).unwrap();
    // The state after each whole record, by the offset where that record ends.
    let mut boundaries = vec![(SEGMENT_MAGIC.len(), DurableState::default())];
    let mut offset = SEGMENT_MAGIC.len();
    for (count, request) in all.iter().enumerate() {
        offset += batch_of(request).len();
        boundaries.push((offset, expected(&all[..=count])));
    }
    let prefix_states: Vec<&DurableState> = boundaries.iter().map(|(_, state)| state).collect();

    for cut in SEGMENT_MAGIC.len()..original.len() {
        fs::write(&segment, &original[..cut]).unwrap();
        let opened = open(temp.path(), NodeId(1), &creation()).unwrap();
        // The longest whole-batch prefix within the cut survives, nothing else.
        let (_, want) = boundaries
            .iter()
            .rev()
            .find(|(end, _)| *end <= cut)
            .unwrap();
        assert_eq!(&opened.durable, want, "cut at {cut}");
    }
    for position in 0..original.len() {
        for bit in [0x01, 0x80] {
            let mut damaged = original.clone();
            damaged[position] ^= bit;
            fs::write(&segment, &damaged).unwrap();
            match open(temp.path(), NodeId(1), &creation()) {
                // Only a torn last record may be dropped: the state is a prefix.
                Ok(opened) => assert!(
                    prefix_states.contains(&&opened.durable),
                    "flip at {position} produced a state that was never written"
                ),
                Err(StorageError::Corrupt { path, offset, .. }) => {
                    assert_eq!(path, segment);
                    assert!(offset as usize <= position, "flip at {position}");
                }
                Err(other) => panic!("flip at {position}: {other}"),
            }
        }
    }
}

#[test]
fn the_checkpoint_tag_matches_the_record_encoding() {
    let mut buf = Vec::new();
    super::wal::encode(
        &super::wal::WalRecordRef::Checkpoint(&DurableState::default()),
        &mut buf,
    )
    .unwrap();
    assert_eq!(buf[super::wal::RECORD_HEADER_BYTES], 1);
    let mut persist = Vec::new();
    encode_record(&requests()[0], &mut persist).unwrap();
    assert_eq!(persist[super::wal::RECORD_HEADER_BYTES], 0);
}

/// Offsets of the batches in a segment written by `write_records`: one batch per request.
fn batch_offsets(requests: &[PersistRequest]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = SEGMENT_MAGIC.len();
    for request in requests {
        offsets.push(offset);
        offset += batch_of(request).len();
    }
    offsets
}

fn assert_corrupt_at(dir: &Path, segment: &Path, want_offset: usize) {
    let before = fs::read(segment).unwrap();
    let error = open(dir, NodeId(1), &creation()).unwrap_err();
    match &error {
        StorageError::Corrupt { path, offset, .. } => {
            assert_eq!(path, segment, "{error}");
            assert_eq!(*offset, want_offset as u64, "{error}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&segment.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("offset {want_offset}")),
        "{message}"
    );
    assert_eq!(
        fs::read(segment).unwrap(),
        before,
        "refusing changed the file"
    );
}

/// A hard state and entries, then more batches: a request big enough that whole sectors lie
/// inside its record.
fn requests_with_a_big_second() -> Vec<PersistRequest> {
    let mut all = requests();
    all[1].log = Some(LogSplice {
        from: LogIndex(1),
        entries: vec![entry(1, 1, &"x".repeat(3000)), entry(2, 1, "b")],
    });
    all
}

/// The torn-tail rule cuts at most the last batch: a sector of zeros inside a batch that other
/// batches follow was synced before them, so it is damage, and the vote and entries after it
/// were acknowledged.
#[test]
fn a_zeroed_sector_in_a_batch_before_the_last_is_corruption() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests_with_a_big_second();
    write_records(temp.path(), &all);
    let segment = only_segment(temp.path());
    let offsets = batch_offsets(&all);
    let mut bytes = fs::read(&segment).unwrap();
    let sector = (offsets[1] / 512 + 2) * 512;
    assert!(
        sector + 512 < offsets[2],
        "the sector lies inside the second batch"
    );
    bytes[sector..sector + 512].fill(0);
    fs::write(&segment, &bytes).unwrap();
    assert_corrupt_at(temp.path(), &segment, offsets[1] + BATCH_HEADER_BYTES);
}

/// A record length that points past the end of the file, in a batch that others follow, is not
/// an incomplete write: the records after it were acknowledged.
#[test]
fn a_length_field_pointing_past_the_file_is_corruption() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all);
    let segment = only_segment(temp.path());
    let offsets = batch_offsets(&all);
    let mut bytes = fs::read(&segment).unwrap();
    let record = offsets[1] + BATCH_HEADER_BYTES;
    bytes[record..record + 4].copy_from_slice(&(1_u32 << 24).to_le_bytes());
    fs::write(&segment, &bytes).unwrap();
    assert_corrupt_at(temp.path(), &segment, record);
}

/// A batch header that reads as unwritten is a torn write only if nothing intact follows it.
#[test]
fn a_zeroed_batch_header_with_batches_after_it_is_corruption() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all);
    let segment = only_segment(temp.path());
    let offsets = batch_offsets(&all);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[offsets[2]..offsets[2] + BATCH_HEADER_BYTES].fill(0);
    fs::write(&segment, &bytes).unwrap();
    assert_corrupt_at(temp.path(), &segment, offsets[2]);

    // The same header zeroed in the last batch: nothing follows, so it is the torn tail.
    let temp = tempfile::tempdir().unwrap();
    write_records(temp.path(), &all[..3]);
    let segment = only_segment(temp.path());
    let mut bytes = fs::read(&segment).unwrap();
    bytes[offsets[2]..offsets[2] + BATCH_HEADER_BYTES].fill(0);
    fs::write(&segment, &bytes).unwrap();
    let opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(opened.durable, expected(&all[..2]));
    assert_eq!(opened.report.truncated, Some((segment, offsets[2] as u64)));
}

/// A torn last batch is cut whole: its first record, though intact, was never acknowledged
/// either, and cutting at the batch keeps the rule simple to state.
#[test]
fn a_torn_last_batch_is_cut_whole() {
    let temp = tempfile::tempdir().unwrap();
    let all = requests();
    write_records(temp.path(), &all[..2]);
    let segment = only_segment(temp.path());
    let good_len = fs::metadata(&segment).unwrap().len();
    let mut records = Vec::new();
    encode_record(&all[2], &mut records).unwrap();
    encode_record(&all[3], &mut records).unwrap();
    let framed = batch(&records);
    append_raw(&segment, &framed[..framed.len() - 3]);
    let opened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert_eq!(opened.durable, expected(&all[..2]));
    assert_eq!(opened.report.truncated, Some((segment, good_len)));
}

#[test]
fn a_segment_of_the_old_format_is_refused_by_name() {
    let temp = tempfile::tempdir().unwrap();
    write_records(temp.path(), &requests());
    let segment = only_segment(temp.path());
    let mut bytes = fs::read(&segment).unwrap();
    bytes[..8].copy_from_slice(b"RAFTWAL1");
    fs::write(&segment, &bytes).unwrap();
    let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
    assert!(
        matches!(error, StorageError::OldFormat { ref path } if *path == segment),
        "{error}"
    );
}

#[test]
fn transport_epochs_grow_with_every_start() {
    let temp = tempfile::tempdir().unwrap();
    let first = next_transport_epoch(temp.path(), 1_000).unwrap();
    assert_eq!(first, 1_000);
    // A clock that went backwards still gives a higher epoch than the last start's.
    let second = next_transport_epoch(temp.path(), 10).unwrap();
    assert_eq!(second, 1_001);
    assert_eq!(next_transport_epoch(temp.path(), 5_000).unwrap(), 5_000);
    fs::write(temp.path().join("transport-epoch"), "garbage").unwrap();
    assert!(matches!(
        next_transport_epoch(temp.path(), 1),
        Err(StorageError::BadMeta { .. })
    ));
}

#[test]
fn a_data_dir_keeps_what_it_was_created_with_whatever_later_flags_say() {
    let temp = tempfile::tempdir().unwrap();
    let cluster_id = crate::cluster_id::ClusterId::from_wire(0xabc);
    let created = Creation {
        voters: voters(),
        incarnation: raft_core::Incarnation(5),
        cluster_id,
    };
    let opened = open(temp.path(), NodeId(1), &created).unwrap();
    assert!(opened.created);
    assert_eq!(opened.meta.incarnation, raft_core::Incarnation(5));
    drop(opened);
    // A restart with --initial-cluster-state existing (no voters) at a later time: the data
    // dir is not new, so it is the same incarnation of the same initial member.
    let later = Creation {
        voters: BTreeSet::new(),
        incarnation: raft_core::Incarnation(9),
        cluster_id: None,
    };
    let reopened = open(temp.path(), NodeId(1), &later).unwrap();
    assert!(!reopened.created);
    assert_eq!(
        reopened.meta,
        Meta {
            node_id: NodeId(1),
            voters: voters(),
            incarnation: raft_core::Incarnation(5),
            cluster_id,
        }
    );
}

#[test]
fn a_server_created_without_voters_restarts_under_the_flags_of_an_initial_member() {
    let temp = tempfile::tempdir().unwrap();
    let returning = Creation {
        voters: BTreeSet::new(),
        incarnation: raft_core::Incarnation(5),
        cluster_id: None,
    };
    drop(open(temp.path(), NodeId(1), &returning).unwrap());
    let reopened = open(temp.path(), NodeId(1), &creation()).unwrap();
    assert!(reopened.meta.voters.is_empty(), "{:?}", reopened.meta);
    // The cluster id it learns is kept.
    let learned = Meta {
        cluster_id: crate::cluster_id::ClusterId::from_wire(77),
        ..reopened.meta.clone()
    };
    write_meta(temp.path(), &learned).unwrap();
    assert_eq!(read_meta(temp.path()).unwrap(), Some(learned));
}

#[test]
fn metadata_of_the_earlier_format_is_refused_by_name() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(
        temp.path().join("meta.json"),
        r#"{"format":1,"node_id":1,"voters":[1,2,3]}"#,
    )
    .unwrap();
    let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
    assert!(matches!(error, StorageError::OldMeta { .. }), "{error:?}");
    assert!(error.to_string().contains("earlier raft-net"), "{error}");
    for bad in [
        r#"{"format":2,"node_id":1,"voters":[2,3],"incarnation":1,"cluster_id":null}"#,
        r#"{"format":2,"node_id":0,"voters":[],"incarnation":1,"cluster_id":null}"#,
        r#"{"format":2,"node_id":1,"voters":[1],"incarnation":1,"cluster_id":"xyz"}"#,
        r#"{"format":2,"node_id":1,"voters":[1]}"#,
    ] {
        fs::write(temp.path().join("meta.json"), bad).unwrap();
        let error = open(temp.path(), NodeId(1), &creation()).unwrap_err();
        assert!(
            matches!(error, StorageError::BadMeta { .. }),
            "{bad}: {error:?}"
        );
    }
}
