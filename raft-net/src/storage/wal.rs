//! The write-ahead log: numbered segment files of CRC-framed records, grouped in batches.
//!
//! A segment starts with an 8-byte magic; then batches, each
//! `[batch length: u32 LE][crc32c(BATCH_SEED ++ batch length bytes): u32 LE][records]`, and
//! each record `[payload length: u32 LE][crc32c(length bytes ++ payload): u32 LE][payload]`.
//! One batch is what the storage thread appends before one `fdatasync`. The payload is the
//! `postcard` encoding of a [`WalRecord`]: one `raft_core::PersistRequest`, or a checkpoint
//! of the whole `DurableState`. Replaying the records in order with `DurableState::apply`
//! rebuilds exactly what the core asked to make durable, hard state included (like etcd's WAL,
//! the hard state is a record, so it is ordered with the log for free).
//!
//! Compaction: once a persisted request carries a snapshot, the storage thread starts a new
//! segment whose first batch is a checkpoint (hard state, snapshot, and the entries after it),
//! syncs it, and only then deletes the older segments. Recovery starts at the last segment that
//! begins with a checkpoint, so a crash at any point of this leaves a complete state.
//!
//! Preallocation: the tail segment is kept zero-filled ahead of its last batch, a mebibyte
//! at a time (never past the segment limit). A batch written over zeros the disk already holds
//! changes no file metadata, so its `fdatasync` is one data write and a cache flush instead of
//! also an inode update: about half the time and CPU of an `fdatasync` after an append. The
//! price is that every log byte is written twice, once as a zero. The zeros after the last
//! batch of the last segment are its end, not damage; a segment is trimmed to its batches
//! (and synced) before the next one is started, so no other segment has such a tail.
//!
//! Recovery tells a torn tail from corruption. A crash can only damage what was written after
//! the last `fdatasync` returned, and a batch is written (by the storage thread or a follower's
//! driver) only after the one before it is synced: so only the **last batch of the last segment** may be damaged, and it
//! is cut as a whole (none of it was acknowledged). It counts as torn when the file ends inside
//! it, when one of its records is incomplete, zeroed or unwritten in whole sectors, or when its
//! header is itself unwritten (zeros) with no intact batch anywhere after it. Everything else
//! stops start-up as corruption, naming the file and byte offset: a bad record in a batch that
//! another batch follows, a record length that points past its batch, a damaged batch header
//! with intact batches after it, anything in an earlier segment. Acknowledged records, hard
//! state included, are never cut with only a warning, with one exception that preallocation
//! brings: damage that zeroes the last segment from inside some batch to its very end looks
//! like a torn last batch over preallocated zeros, and is cut as one. etcd's WAL, which
//! preallocates too, reads zeros the same way (a zero length is the end of the log).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::storage::sync_dir;
use raft_core::{DurableState, PersistRequest};
use serde::{Deserialize, Serialize};

/// Written at the start of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"RAFTWAL2";
/// The magic of the format before batches were framed; such a log is refused by name.
const SEGMENT_MAGIC_V1: &[u8; 8] = b"RAFTWAL1";
/// Length and CRC.
pub const RECORD_HEADER_BYTES: usize = 8;
/// A batch's length and the CRC of that length.
pub const BATCH_HEADER_BYTES: usize = 8;
/// Mixed into a batch header's CRC, so a record header is never mistaken for a batch header.
const BATCH_SEED: &[u8] = b"raft-net WAL batch";
/// No single record may exceed this: a persist request is at most one AppendEntries' worth of
/// entries, a checkpoint at most a snapshot (which the core caps at `snapshot_bytes_max`, 1 GiB)
/// plus the entries after it. A longer length field is garbage.
pub const RECORD_BYTES_MAX: usize = 2 * 1024 * 1024 * 1024 - 1;

/// One record, as read back.
#[derive(Debug, Deserialize)]
pub enum WalRecord {
    Persist(PersistRequest),
    Checkpoint(DurableState),
}

/// One record, as written (borrowing, so writing copies nothing). Same layout as [`WalRecord`].
#[derive(Debug, Serialize)]
pub enum WalRecordRef<'a> {
    Persist(&'a PersistRequest),
    Checkpoint(&'a DurableState),
}
/// A new segment is started once the current one reaches this size.
pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// How far ahead of its last batch the tail segment is zero-filled. A mebibyte of zeros and
/// its sync cost about a millisecond here, once per mebibyte of log.
pub const PREALLOCATE_BYTES: u64 = 1024 * 1024;
/// The zeros that preallocation writes, a piece at a time.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

const SEGMENT_SUFFIX: &str = ".wal";

/// The open tail segment, positioned for appends.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    /// Its cursor is at `len`: batches are written there.
    file: File,
    path: PathBuf,
    sequence: u64,
    /// Where the batches end.
    len: u64,
    /// Where the file ends: zeros from `len` on.
    file_len: u64,
    segment_bytes_max: u64,
    preallocate_bytes: u64,
}

/// What recovery found besides the state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: usize,
    /// The torn tail that was cut off: file and the offset it was truncated to.
    pub truncated: Option<(PathBuf, u64)>,
}

/// Appends one framed record for `request` to `buf`.
pub fn encode_record(request: &PersistRequest, buf: &mut Vec<u8>) -> Result<(), StorageError> {
    encode(&WalRecordRef::Persist(request), buf)
}

/// Appends one framed record to `buf`.
pub fn encode(record: &WalRecordRef<'_>, buf: &mut Vec<u8>) -> Result<(), StorageError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    let mut buf_taken = std::mem::take(buf);
    buf_taken = match postcard::to_extend(record, buf_taken) {
        Ok(extended) => extended,
        Err(error) => {
            return Err(StorageError::Encode {
                reason: error.to_string(),
            })
        }
    };
    *buf = buf_taken;
    match record_header(&[&buf[start + RECORD_HEADER_BYTES..]]) {
        Ok(header) => {
            buf[start..start + RECORD_HEADER_BYTES].copy_from_slice(&header);
            Ok(())
        }
        Err(error) => {
            buf.truncate(start);
            Err(error)
        }
    }
}

/// The header (length and CRC) of a record whose payload is `pieces`, one after the other.
fn record_header(pieces: &[&[u8]]) -> Result<[u8; RECORD_HEADER_BYTES], StorageError> {
    let payload_len: usize = pieces.iter().map(|piece| piece.len()).sum();
    if payload_len > RECORD_BYTES_MAX {
        return Err(StorageError::RecordTooLarge {
            len: payload_len,
            max: RECORD_BYTES_MAX,
        });
    }
    // `payload_len <= RECORD_BYTES_MAX < u32::MAX`, checked just above.
    let len_bytes = u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes();
    let crc = pieces
        .iter()
        .fold(crc32c::crc32c(&len_bytes), |crc, piece| {
            crc32c::crc32c_append(crc, piece)
        });
    let mut header = [0; RECORD_HEADER_BYTES];
    header[..4].copy_from_slice(&len_bytes);
    header[4..].copy_from_slice(&crc.to_le_bytes());
    Ok(header)
}

fn record_crc(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload)
}

fn batch_crc(len_bytes: [u8; 4]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(BATCH_SEED), &len_bytes)
}

/// The header of a batch holding `records_len` bytes of records.
pub fn batch_header(records_len: usize) -> Result<[u8; BATCH_HEADER_BYTES], StorageError> {
    let len = u32::try_from(records_len).map_err(|_| StorageError::RecordTooLarge {
        len: records_len,
        max: u32::MAX as usize,
    })?;
    let len_bytes = len.to_le_bytes();
    let mut header = [0; BATCH_HEADER_BYTES];
    header[..4].copy_from_slice(&len_bytes);
    header[4..].copy_from_slice(&batch_crc(len_bytes).to_le_bytes());
    Ok(header)
}

/// A new segment holding one checkpoint, in three pieces: the magic, the batch and record
/// headers and every field before the snapshot's bytes; the snapshot's bytes, where they are;
/// the fields after them. The snapshot is most of a large checkpoint (a store of a million
/// keys is 145 MB), so it is written from its own buffer instead of copied into the record.
struct CheckpointSegment<'a> {
    head: Vec<u8>,
    snapshot: &'a [u8],
    tail: Vec<u8>,
}

impl CheckpointSegment<'_> {
    fn pieces(&self) -> [&[u8]; 3] {
        [&self.head, self.snapshot, &self.tail]
    }
}

/// `state`'s checkpoint segment: byte for byte the magic, a batch header and
/// `encode(&WalRecordRef::Checkpoint(state))`.
fn checkpoint_segment(state: &DurableState) -> Result<CheckpointSegment<'_>, StorageError> {
    let encoding = |error: postcard::Error| StorageError::Encode {
        reason: error.to_string(),
    };
    let records_start = SEGMENT_MAGIC.len() + BATCH_HEADER_BYTES;
    let payload_start = records_start + RECORD_HEADER_BYTES;
    let mut head = Vec::with_capacity(payload_start + 256);
    head.extend_from_slice(SEGMENT_MAGIC);
    head.resize(payload_start, 0);
    let (snapshot, tail) = match &state.snapshot {
        // postcard writes a record as its fields in order: the variant, the hard state, the
        // snapshot (`Some`, its meta, then its bytes as a length and the bytes themselves),
        // the entries.
        Some(snapshot) => {
            let fields = (
                CHECKPOINT_TAG,
                &state.hard_state,
                Some(()),
                &snapshot.meta,
                snapshot.data.len(),
            );
            head = postcard::to_extend(&fields, head).map_err(encoding)?;
            // About the entries' size, so that a long log is not grown and copied again.
            let tail_bytes: usize = state.entries.iter().map(raft_core::Entry::size_bytes).sum();
            let tail = Vec::with_capacity(tail_bytes + 16);
            let tail = postcard::to_extend(&state.entries, tail).map_err(encoding)?;
            (snapshot.data.as_slice(), tail)
        }
        None => {
            head = postcard::to_extend(&WalRecordRef::Checkpoint(state), head).map_err(encoding)?;
            (&[][..], Vec::new())
        }
    };
    let record = record_header(&[&head[payload_start..], snapshot, &tail])?;
    let batch = batch_header(head.len() - records_start + snapshot.len() + tail.len())?;
    head[SEGMENT_MAGIC.len()..records_start].copy_from_slice(&batch);
    head[records_start..payload_start].copy_from_slice(&record);
    Ok(CheckpointSegment {
        head,
        snapshot,
        tail,
    })
}

/// The length of records announced by a valid batch header at the start of `bytes`; `None`
/// when the header is short or its CRC does not match.
fn read_batch_header(bytes: &[u8]) -> Option<usize> {
    let header = bytes.first_chunk::<BATCH_HEADER_BYTES>()?;
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    (batch_crc(len_bytes) == stored).then_some(u32::from_le_bytes(len_bytes) as usize)
}

pub(super) fn segment_name(sequence: u64) -> String {
    format!("{sequence:020}{SEGMENT_SUFFIX}")
}

/// The segment files in `dir`, and the position of the first one to read: the last that
/// starts with a checkpoint, else the first. From there on they are checked for gaps.
fn segments_from_checkpoint(dir: &Path) -> Result<(Vec<(u64, PathBuf)>, usize), StorageError> {
    let segments = list_segments(dir)?;
    let checkpoint = segments
        .iter()
        .rposition(|(_, path)| starts_with_checkpoint(path));
    let start = checkpoint.unwrap_or(0);
    check_contiguous(dir, &segments[start..], checkpoint.is_some())?;
    Ok((segments, start))
}

/// A segment file that went missing would drop its records silently (a vote, acknowledged
/// entries): the segments replayed must be numbered without gaps, starting at 1 unless the
/// first of them begins with a checkpoint.
fn check_contiguous(
    dir: &Path,
    segments: &[(u64, PathBuf)],
    from_checkpoint: bool,
) -> Result<(), StorageError> {
    let missing = |sequence: u64| StorageError::MissingSegment {
        dir: dir.to_path_buf(),
        missing: segment_name(sequence),
    };
    match segments.first() {
        Some(&(first, _)) if !from_checkpoint && first != 1 => return Err(missing(1)),
        _ => {}
    }
    for pair in segments.windows(2) {
        let expected = pair[0].0 + 1;
        if pair[1].0 != expected {
            return Err(missing(expected));
        }
    }
    Ok(())
}

/// The segment files in `dir`, by sequence number.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if let Ok(sequence) = number.parse::<u64>() {
            segments.push((sequence, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// How a record at some offset failed to read.
enum BadRecord {
    /// Fewer bytes than the record needs: its batch (or the file) ends inside it.
    Incomplete,
    /// Complete but wrong: bad CRC, absurd length or a payload that does not decode.
    Invalid(String),
}

/// Reads the record at `offset` of `bytes` (which end where its batch ends): the record and
/// the offset after it.
fn read_record(bytes: &[u8], offset: usize) -> Result<(WalRecord, usize), BadRecord> {
    let rest = &bytes[offset..];
    let Some((header, body)) = rest.split_first_chunk::<RECORD_HEADER_BYTES>() else {
        return Err(BadRecord::Incomplete);
    };
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let stored_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > RECORD_BYTES_MAX {
        return if len > body.len() {
            Err(BadRecord::Incomplete)
        } else {
            Err(BadRecord::Invalid(format!("record length {len} is absurd")))
        };
    }
    let Some(payload) = body.get(..len) else {
        return Err(BadRecord::Incomplete);
    };
    if record_crc(len_bytes, payload) != stored_crc {
        return Err(BadRecord::Invalid("CRC mismatch".to_string()));
    }
    match postcard::from_bytes::<WalRecord>(payload) {
        Ok(record) => Ok((record, offset + RECORD_HEADER_BYTES + len)),
        Err(error) => Err(BadRecord::Invalid(format!(
            "record passes its CRC but does not decode: {error}"
        ))),
    }
}

/// How a batch at some offset failed to read.
enum BadBatch {
    /// No batch here: the preallocated zeros of the last segment start at this offset.
    End,
    /// The batch could be the last one a crash interrupted: cut it.
    Torn,
    /// Damage that no crash explains, at this offset.
    Corrupt(usize, String),
}

/// Where the bytes of a segment stop being preallocated zeros: after its last non-zero byte in
/// the last segment, at its end in any other (those are trimmed to their batches).
fn zeros_from(bytes: &[u8], is_last: bool) -> usize {
    if is_last {
        bytes
            .iter()
            .rposition(|&byte| byte != 0)
            .map_or(0, |last| last + 1)
    } else {
        bytes.len()
    }
}

/// Reads the batch at `offset` of a segment: its records and the offset after it. `is_last`:
/// this is the last segment, the only one a crash can have left unfinished. `zeros_from`: see
/// [`zeros_from`].
fn read_batch(
    bytes: &[u8],
    offset: usize,
    is_last: bool,
    zeros_from: usize,
) -> Result<(Vec<WalRecord>, usize), BadBatch> {
    let torn_or = |reason: &str| {
        if is_last {
            BadBatch::Torn
        } else {
            BadBatch::Corrupt(offset, reason.to_string())
        }
    };
    let Some(records_len) = read_batch_header(&bytes[offset..]) else {
        // Before the short-header check: the zeros may be fewer than a header.
        if is_last && offset >= zeros_from {
            return Err(BadBatch::End);
        }
        if bytes.len() - offset < BATCH_HEADER_BYTES {
            return Err(torn_or("the segment ends inside a batch header"));
        }
        // A header the crash left unwritten reads as zeros; were it damaged later, the batches
        // written after it would still be intact, and cutting them would lose acknowledged data.
        if is_last && is_unwritten(bytes, offset, offset + BATCH_HEADER_BYTES) {
            if let Some(intact) = intact_batch_after(bytes, offset) {
                return Err(BadBatch::Corrupt(
                    offset,
                    format!(
                        "a damaged batch header, with an intact batch at offset {intact} after it"
                    ),
                ));
            }
            return Err(BadBatch::Torn);
        }
        return Err(BadBatch::Corrupt(
            offset,
            "the batch header fails its CRC".to_string(),
        ));
    };
    let start = offset + BATCH_HEADER_BYTES;
    let Some(end) = start
        .checked_add(records_len)
        .filter(|&end| end <= bytes.len())
    else {
        return Err(torn_or("the segment ends inside a batch"));
    };
    // The last batch of the last segment is the one a crash may have torn; any other batch was
    // synced before the next one was written, so it must read back whole.
    let last_batch = is_last && end >= zeros_from;
    let batch = &bytes[..end];
    let mut records = Vec::new();
    let mut at = start;
    while at < end {
        match read_record(batch, at) {
            Ok((record, next)) => {
                records.push(record);
                at = next;
            }
            Err(bad) => {
                let torn = match &bad {
                    BadRecord::Incomplete => true,
                    BadRecord::Invalid(_) => is_torn(batch, at),
                };
                if last_batch && torn {
                    return Err(BadBatch::Torn);
                }
                let reason = match bad {
                    BadRecord::Incomplete => {
                        "a record's length points past the end of its batch".to_string()
                    }
                    BadRecord::Invalid(reason) => reason,
                };
                return Err(BadBatch::Corrupt(at, reason));
            }
        }
    }
    Ok((records, end))
}

/// The offset of the first intact batch (valid header, every record whole) after `offset`.
/// Only a damaged log is searched, so the cost of trying every offset does not matter.
fn intact_batch_after(bytes: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..bytes.len().saturating_sub(BATCH_HEADER_BYTES - 1)).find(|&candidate| {
        read_batch_header(&bytes[candidate..]).is_some()
            && read_batch(bytes, candidate, false, bytes.len())
                .is_ok_and(|(records, _)| !records.is_empty())
    })
}

/// Where a segment's batches end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentEnd {
    /// At this offset, where the file ends or its preallocated zeros begin.
    Whole(u64),
    /// A torn tail starts at this offset: cut it.
    Torn(u64),
}

/// Replays one segment into `state`: where its batches end.
fn replay_segment(
    path: &Path,
    is_last: bool,
    state: &mut DurableState,
    report: &mut RecoveryReport,
    buf: &mut Vec<u8>,
) -> Result<SegmentEnd, StorageError> {
    // One buffer for every segment: a fresh 64 MiB allocation per segment costs more in page
    // faults than reading the file does.
    buf.clear();
    File::open(path)
        .and_then(|mut file| file.read_to_end(buf))
        .map_err(StorageError::io(path))?;
    let bytes = &buf[..];
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < SEGMENT_MAGIC.len() && is_last && SEGMENT_MAGIC.starts_with(bytes) {
        // A crash while the segment was being created; nothing was ever acknowledged in it.
        return Ok(SegmentEnd::Torn(0));
    }
    if bytes.starts_with(SEGMENT_MAGIC_V1) {
        return Err(StorageError::OldFormat {
            path: path.to_path_buf(),
        });
    }
    if !bytes.starts_with(SEGMENT_MAGIC) {
        return Err(corrupt(0, "missing segment magic".to_string()));
    }
    let zeros_from = zeros_from(bytes, is_last);
    let mut offset = SEGMENT_MAGIC.len();
    while offset < bytes.len() {
        match read_batch(bytes, offset, is_last, zeros_from) {
            Ok((records, next)) => {
                for record in records {
                    match record {
                        WalRecord::Persist(request) => state.apply_owned(request),
                        WalRecord::Checkpoint(checkpoint) => *state = checkpoint,
                    }
                    report.records += 1;
                }
                offset = next;
            }
            Err(BadBatch::End) => break,
            Err(BadBatch::Torn) => return Ok(SegmentEnd::Torn(offset as u64)),
            Err(BadBatch::Corrupt(at, reason)) => return Err(corrupt(at, reason)),
        }
    }
    Ok(SegmentEnd::Whole(offset as u64))
}

/// The sector size torn writes are detected in: an append that the crash interrupted leaves
/// whole sectors of the file unwritten, and those read back as zeros.
const SECTOR_BYTES: usize = 512;

/// Whether some sector-aligned piece of `bytes[start..end]` is all zeros: a sector the crash
/// did not write.
fn is_unwritten(bytes: &[u8], start: usize, end: usize) -> bool {
    let end = end.min(bytes.len());
    let mut start = start;
    while start < end {
        let piece_end = ((start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
        if bytes[start..piece_end].iter().all(|&byte| byte == 0) {
            return true;
        }
        start = piece_end;
    }
    false
}

/// Whether the invalid record at `offset` of the last batch (`bytes` ends where the batch
/// does) is a torn write rather than corruption. Writes after the last `fdatasync` may reach
/// the disk partly and in any order, so a crash can leave a record with unwritten (zero)
/// sectors, possibly followed by later records of the same batch. The rule, as in etcd's WAL:
/// the rest of the batch is all zeros, or the record ends exactly where the batch does, or some
/// sector-aligned piece of the record is all zeros. A flipped bit in an otherwise written
/// record is none of these, and stays an error.
fn is_torn(bytes: &[u8], offset: usize) -> bool {
    let tail = &bytes[offset..];
    if tail.iter().all(|&byte| byte == 0) {
        return true;
    }
    let Some(header) = tail.first_chunk::<4>() else {
        return true;
    };
    let record_end = offset
        .saturating_add(RECORD_HEADER_BYTES)
        .saturating_add(u32::from_le_bytes(*header) as usize);
    if record_end == bytes.len() {
        return true;
    }
    is_unwritten(bytes, offset, record_end)
}

impl Wal {
    /// Replays every segment in `dir` (which must exist) and opens the last one for appends,
    /// creating the first segment when there is none.
    pub fn recover(dir: &Path) -> Result<(Wal, DurableState, RecoveryReport), StorageError> {
        let (mut segments, start) = segments_from_checkpoint(dir)?;
        // Segments before the last checkpoint are left over from an interrupted compaction.
        for (_, path) in segments.drain(..start) {
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
        }
        if start > 0 {
            sync_dir(dir)?;
        }
        let mut state = DurableState::default();
        let mut report = RecoveryReport {
            segments: segments.len(),
            ..RecoveryReport::default()
        };
        let Some((last_sequence, last_path)) = segments.last().cloned() else {
            let wal = Wal::create_segment(dir, 1)?;
            return Ok((wal, state, report));
        };
        let mut buf = Vec::new();
        let mut batches_end = 0;
        for (position, (_, path)) in segments.iter().enumerate() {
            let is_last = position + 1 == segments.len();
            batches_end = match replay_segment(path, is_last, &mut state, &mut report, &mut buf)? {
                SegmentEnd::Whole(end) => end,
                SegmentEnd::Torn(offset) => {
                    truncate(path, offset)?;
                    report.truncated = Some((path.clone(), offset));
                    offset
                }
            };
        }
        let wal = Wal::open_segment(dir, last_sequence, &last_path, batches_end)?;
        Ok((wal, state, report))
    }

    /// What recovery of `dir` would give, read without changing any file: a torn tail that
    /// recovery would cut is reported in `truncated` and left out of the state (`recover
    /// --dry-run` must not touch the data dir it reports on).
    pub fn inspect(dir: &Path) -> Result<(DurableState, RecoveryReport), StorageError> {
        let (segments, start) = segments_from_checkpoint(dir)?;
        let segments = &segments[start..];
        let mut state = DurableState::default();
        let mut report = RecoveryReport {
            segments: segments.len(),
            ..RecoveryReport::default()
        };
        let mut buf = Vec::new();
        for (position, (_, path)) in segments.iter().enumerate() {
            let is_last = position + 1 == segments.len();
            if let SegmentEnd::Torn(offset) =
                replay_segment(path, is_last, &mut state, &mut report, &mut buf)?
            {
                report.truncated = Some((path.clone(), offset));
            }
        }
        Ok((state, report))
    }

    /// What this log holds, read back from its segments without changing them. Every record in
    /// them was written by this process and synced, so a torn tail here is an error.
    pub fn replay(&self) -> Result<DurableState, StorageError> {
        let (mut segments, start) = segments_from_checkpoint(&self.dir)?;
        let mut state = DurableState::default();
        let mut report = RecoveryReport::default();
        let mut buf = Vec::new();
        for (_, path) in segments.drain(start..) {
            if let SegmentEnd::Torn(offset) =
                replay_segment(&path, true, &mut state, &mut report, &mut buf)?
            {
                return Err(StorageError::Corrupt {
                    path,
                    offset,
                    reason: "a record this process wrote does not read back".to_string(),
                });
            }
        }
        Ok(state)
    }

    /// Starts a new segment holding one checkpoint of `state`, makes it durable, then deletes
    /// every older segment: they are fully described by the checkpoint.
    pub fn checkpoint(&mut self, state: &DurableState) -> Result<(), StorageError> {
        let segment = checkpoint_segment(state)?;
        // The current segment must be complete on disk: if the new one is torn by a crash,
        // recovery replays the current one, and only a last segment may have a torn tail.
        self.finish()?;
        let next = Wal::create_segment_with(&self.dir, self.sequence + 1, &segment.pieces())?;
        *self = Wal {
            segment_bytes_max: self.segment_bytes_max,
            preallocate_bytes: self.preallocate_bytes,
            ..next
        };
        for (sequence, path) in list_segments(&self.dir)? {
            if sequence < self.sequence {
                fs::remove_file(&path).map_err(StorageError::io(&path))?;
            }
        }
        // No directory sync for the deletions: should a crash bring a deleted segment back,
        // recovery starts at this checkpoint and removes the older segments again.
        Ok(())
    }

    fn create_segment(dir: &Path, sequence: u64) -> Result<Wal, StorageError> {
        Wal::create_segment_with(dir, sequence, &[SEGMENT_MAGIC])
    }

    /// A new segment file holding `contents`, one piece after the other (the magic and
    /// possibly records), durable along with its directory entry.
    fn create_segment_with(
        dir: &Path,
        sequence: u64,
        contents: &[&[u8]],
    ) -> Result<Wal, StorageError> {
        let path = dir.join(segment_name(sequence));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        for piece in contents {
            file.write_all(piece).map_err(StorageError::io(&path))?;
        }
        file.sync_all().map_err(StorageError::io(&path))?;
        // The new name must be durable before anything acknowledged lands in the file.
        sync_dir(dir)?;
        let len = contents.iter().map(|piece| piece.len() as u64).sum();
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            path,
            sequence,
            len,
            file_len: len,
            segment_bytes_max: SEGMENT_BYTES_MAX,
            preallocate_bytes: PREALLOCATE_BYTES,
        })
    }

    /// Opens the last segment, whose batches end at `batches_end` (preallocated zeros may
    /// follow), for appends there.
    fn open_segment(
        dir: &Path,
        sequence: u64,
        path: &Path,
        batches_end: u64,
    ) -> Result<Wal, StorageError> {
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(StorageError::io(path))?;
        let file_len = file.metadata().map_err(StorageError::io(path))?.len();
        let mut len = batches_end;
        if len == 0 {
            // Recovery cut a segment whose creation was torn; give it back its magic.
            file.write_all(SEGMENT_MAGIC)
                .map_err(StorageError::io(path))?;
            file.sync_all().map_err(StorageError::io(path))?;
            len = SEGMENT_MAGIC.len() as u64;
        }
        file.seek(SeekFrom::Start(len))
            .map_err(StorageError::io(path))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            path: path.to_path_buf(),
            sequence,
            len,
            file_len: file_len.max(len),
            segment_bytes_max: SEGMENT_BYTES_MAX,
            preallocate_bytes: PREALLOCATE_BYTES,
        })
    }

    /// Starts a new segment once the current one reaches `bytes` (tests use small values).
    pub fn set_segment_bytes_max(&mut self, bytes: u64) {
        self.segment_bytes_max = bytes;
    }

    /// Zero-fills this far ahead of the last batch (0: never; tests that look at the file's
    /// bytes use it).
    pub fn set_preallocate_bytes(&mut self, bytes: u64) {
        self.preallocate_bytes = bytes;
    }

    /// Appends already framed records as one batch (not yet durable: call `sync`). Recovery
    /// may cut the last batch of the log as a torn write, so only what one `sync` covers may go
    /// in one batch, and a batch must be synced before the next one is appended.
    pub fn append(&mut self, records: &[u8]) -> Result<(), StorageError> {
        let header = batch_header(records.len())?;
        if self.len > SEGMENT_MAGIC.len() as u64 && self.len >= self.segment_bytes_max {
            self.rotate()?;
        }
        write_both(&mut self.file, &header, records).map_err(StorageError::io(&self.path))?;
        self.len += (BATCH_HEADER_BYTES + records.len()) as u64;
        self.file_len = self.file_len.max(self.len);
        if self.len == self.file_len {
            self.preallocate()?;
        }
        Ok(())
    }

    /// Zero-fills the file past the last batch, up to `preallocate_bytes` ahead but not past the
    /// segment limit. The next `sync` makes the zeros durable along with the batch: until
    /// then a crash may keep any part of them, and zeros read as the end of the log anyway.
    ///
    /// Zeros are an optimisation, never a reason to stop: when writing them fails (a full
    /// disk), the segment goes on without them, and so does every later one of this process.
    fn preallocate(&mut self) -> Result<(), StorageError> {
        let target = self
            .len
            .saturating_add(self.preallocate_bytes)
            .min(self.segment_bytes_max.max(self.len));
        if self.file_len >= target {
            return Ok(());
        }
        if let Err(error) = self.write_zeros(target) {
            tracing::warn!(
                path = %self.path.display(),
                %error,
                "cannot preallocate the WAL segment; writing on without preallocation"
            );
            self.preallocate_bytes = 0;
            // Some of the zeros may be in the file: `finish` must know to trim them.
            self.file_len = self
                .file
                .metadata()
                .map_err(StorageError::io(&self.path))?
                .len()
                .max(self.len);
        }
        // Batches go on at the end of the last one, whatever happened above.
        self.file
            .seek(SeekFrom::Start(self.len))
            .map_err(StorageError::io(&self.path))?;
        Ok(())
    }

    fn write_zeros(&mut self, target: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.file_len))?;
        while self.file_len < target {
            let piece = (target - self.file_len).min(ZEROS.len() as u64) as usize;
            self.file.write_all(&ZEROS[..piece])?;
            self.file_len += piece as u64;
        }
        Ok(())
    }

    /// Makes every appended record durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(StorageError::io(&self.path))
    }

    /// Trims the preallocated zeros and makes the segment durable, before a later segment is
    /// started: only the last segment may end in zeros, so recovery can read any zeros in an
    /// earlier one as the damage they are.
    fn finish(&mut self) -> Result<(), StorageError> {
        if self.file_len > self.len {
            self.file
                .set_len(self.len)
                .map_err(StorageError::io(&self.path))?;
            self.file_len = self.len;
            return self.file.sync_all().map_err(StorageError::io(&self.path));
        }
        self.sync()
    }

    fn rotate(&mut self) -> Result<(), StorageError> {
        // The old segment must be complete on disk before records appear in the next one, or a
        // crash could keep a later record and lose an earlier one.
        self.finish()?;
        let next = Wal::create_segment(&self.dir, self.sequence + 1)?;
        *self = Wal {
            segment_bytes_max: self.segment_bytes_max,
            preallocate_bytes: self.preallocate_bytes,
            ..next
        };
        Ok(())
    }

    /// The segment being appended to.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes `head` then `tail`, in one `writev` when the file takes it all (a group commit then
/// costs one write call, as before batches had headers), finishing a short write piece by
/// piece.
fn write_both(file: &mut File, head: &[u8], tail: &[u8]) -> std::io::Result<()> {
    let written = loop {
        match file.write_vectored(&[std::io::IoSlice::new(head), std::io::IoSlice::new(tail)]) {
            Ok(written) => break written,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    };
    if written < head.len() {
        file.write_all(&head[written..])?;
        file.write_all(tail)
    } else {
        file.write_all(&tail[written - head.len()..])
    }
}

/// Whether the segment's first record is an intact checkpoint. Reads only that record, not the
/// whole segment: recovery asks this of every segment.
fn starts_with_checkpoint(path: &Path) -> bool {
    File::open(path).is_ok_and(first_batch_is_checkpoint)
}

/// Whether `segment` starts with the magic and a whole, intact batch (every record passes its
/// CRC and decodes) whose first record is a checkpoint. Only such a checkpoint justifies
/// replaying from this segment without the ones before it: the writer syncs a checkpoint
/// before it deletes older segments, so a torn one means they are still there (and replay must
/// start earlier), or the damage is not a crash's. A checkpoint torn and then cut as the last
/// batch would otherwise leave a log that a second start-up refuses. The length fields are not
/// trusted for allocation: the buffer grows only with the bytes actually read, so a garbage
/// length in a short file costs nothing.
fn first_batch_is_checkpoint(segment: impl Read) -> bool {
    let mut segment = segment;
    let mut head = [0; SEGMENT_MAGIC.len() + BATCH_HEADER_BYTES];
    if segment.read_exact(&mut head).is_err() || !head.starts_with(SEGMENT_MAGIC) {
        return false;
    }
    let Some(batch_len) = read_batch_header(&head[SEGMENT_MAGIC.len()..]) else {
        return false;
    };
    let mut batch = head.to_vec();
    let read = segment.take(batch_len as u64).read_to_end(&mut batch);
    if read.is_err() || batch.len() != head.len() + batch_len {
        return false;
    }
    let first_payload = SEGMENT_MAGIC.len() + BATCH_HEADER_BYTES + RECORD_HEADER_BYTES;
    batch.get(first_payload) == Some(&CHECKPOINT_TAG)
        && read_batch(&batch, SEGMENT_MAGIC.len(), false, batch.len())
            .is_ok_and(|(records, _)| matches!(records.first(), Some(WalRecord::Checkpoint(_))))
}

/// The first payload byte of a `WalRecord::Checkpoint` record.
const CHECKPOINT_TAG: u8 = 1;

fn truncate(path: &Path, offset: u64) -> Result<(), StorageError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io(path))?;
    file.set_len(offset).map_err(StorageError::io(path))?;
    file.sync_all().map_err(StorageError::io(path))
}

#[cfg(test)]
mod checkpoint_probe_tests {
    use super::*;

    /// A segment reader that refuses reads into buffers far larger than the file.
    struct Small<'a>(&'a [u8]);

    impl Read for Small<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            assert!(
                buf.len() <= 1 << 20,
                "a {}-byte read for a short file",
                buf.len()
            );
            self.0.read(buf)
        }
    }

    /// A checkpoint written in pieces is the segment `encode` would make in one buffer, for
    /// snapshots whose length takes one, two and three varint bytes, and without one.
    #[test]
    fn a_checkpoint_in_pieces_is_the_record_encode_makes() {
        use raft_core::{
            Entry, EntryPayload, HardState, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta,
            Term,
        };
        let entries = |from: u64| -> Vec<Entry> {
            (from..from + 3)
                .map(|index| Entry {
                    index: LogIndex(index),
                    term: Term(7),
                    payload: EntryPayload::Command(vec![index as u8; 300].into()),
                })
                .collect()
        };
        let hard_state = HardState {
            current_term: Term(7),
            voted_for: Some(NodeId(2)),
        };
        let mut states = vec![DurableState {
            hard_state,
            snapshot: None,
            entries: entries(1),
        }];
        for len in [0, 1, 127, 128, 20_000] {
            states.push(DurableState {
                hard_state,
                snapshot: Some(Snapshot {
                    meta: SnapshotMeta {
                        last_included_index: LogIndex(40),
                        last_included_term: Term(6),
                        membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
                    },
                    data: (0..len).map(|byte| byte as u8).collect::<Vec<u8>>().into(),
                }),
                entries: if len == 1 { Vec::new() } else { entries(41) },
            });
        }
        for state in &states {
            let mut record = Vec::new();
            encode(&WalRecordRef::Checkpoint(state), &mut record).unwrap();
            let mut expected = SEGMENT_MAGIC.to_vec();
            expected.extend_from_slice(&batch_header(record.len()).unwrap());
            expected.extend_from_slice(&record);
            let segment = checkpoint_segment(state).unwrap();
            assert_eq!(segment.pieces().concat(), expected);
            assert_eq!(
                segment.snapshot.len(),
                state
                    .snapshot
                    .as_ref()
                    .map_or(0, |snapshot| snapshot.data.len()),
                "the snapshot's bytes are their own piece"
            );
            assert!(first_batch_is_checkpoint(Small(&expected)));
        }
    }

    /// Found by the `wal_recover` fuzz target (`crash-checkpoint-length-allocation`): a segment
    /// whose first length field claims a gigabyte made recovery allocate it before reading.
    #[test]
    fn a_huge_first_length_allocates_nothing() {
        let mut segment = SEGMENT_MAGIC.to_vec();
        segment.extend_from_slice(&batch_header(u32::MAX as usize).unwrap());
        segment.extend_from_slice(&(1_u32 << 30).to_le_bytes());
        segment.extend_from_slice(&[0, 0, 0, 0, CHECKPOINT_TAG, 1, 2, 3]);
        assert!(!first_batch_is_checkpoint(Small(&segment)));
        let mut record = Vec::new();
        encode(
            &WalRecordRef::Checkpoint(&DurableState::default()),
            &mut record,
        )
        .unwrap();
        let mut checkpoint = SEGMENT_MAGIC.to_vec();
        checkpoint.extend_from_slice(&batch_header(record.len()).unwrap());
        checkpoint.extend_from_slice(&record);
        assert!(first_batch_is_checkpoint(Small(&checkpoint)));
        checkpoint.pop();
        assert!(!first_batch_is_checkpoint(Small(&checkpoint)));
    }
}
