//! The write-ahead log: numbered segment files of CRC-framed records.
//!
//! A segment starts with an 8-byte magic; then records, each
//! `[payload length: u32 LE][crc32c(length bytes ++ payload): u32 LE][payload]`. The payload is
//! the `postcard` encoding of one `raft_core::PersistRequest`; replaying the records in order
//! with `DurableState::apply` rebuilds exactly what the core asked to make durable, hard state
//! included (like etcd's WAL, the hard state is a record, so it is ordered with the log for
//! free).
//!
//! Recovery tells a torn tail from corruption: only the last record of the last segment may be
//! incomplete or fail its CRC (a crash while appending), or the tail may be zeros (a file
//! extended but not written). That tail is truncated. Any other bad record stops start-up with
//! the file and offset, because acknowledged data after it would otherwise be silently lost.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use raft_core::{DurableState, PersistRequest};

use crate::error::StorageError;
use crate::storage::sync_dir;

/// Written at the start of every segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"RAFTWAL1";
/// Length and CRC.
pub const RECORD_HEADER_BYTES: usize = 8;
/// No single record may exceed this (a persist request is at most one AppendEntries' worth of
/// entries, far below it); a longer length field is garbage.
pub const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A new segment is started once the current one reaches this size.
pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;

const SEGMENT_SUFFIX: &str = ".wal";

/// The open tail segment, positioned for appends.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    sequence: u64,
    len: u64,
    segment_bytes_max: u64,
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
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    let mut buf_taken = std::mem::take(buf);
    buf_taken = match postcard::to_extend(request, buf_taken) {
        Ok(extended) => extended,
        Err(error) => {
            return Err(StorageError::Encode {
                reason: error.to_string(),
            })
        }
    };
    *buf = buf_taken;
    let payload_len = buf.len() - start - RECORD_HEADER_BYTES;
    if payload_len > RECORD_BYTES_MAX {
        buf.truncate(start);
        return Err(StorageError::RecordTooLarge {
            len: payload_len,
            max: RECORD_BYTES_MAX,
        });
    }
    // `payload_len <= RECORD_BYTES_MAX < u32::MAX`, checked just above.
    let len_bytes = u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes();
    let crc = record_crc(len_bytes, &buf[start + RECORD_HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&len_bytes);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn record_crc(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload)
}

fn segment_name(sequence: u64) -> String {
    format!("{sequence:020}{SEGMENT_SUFFIX}")
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
    /// Fewer bytes than the record needs: the file ends inside it.
    Incomplete,
    /// Complete but wrong: bad CRC, absurd length or a payload that does not decode.
    Invalid(String),
}

/// Reads the record at `offset`: the request and the offset after it.
fn read_record(bytes: &[u8], offset: usize) -> Result<(PersistRequest, usize), BadRecord> {
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
    match postcard::from_bytes::<PersistRequest>(payload) {
        Ok(request) => Ok((request, offset + RECORD_HEADER_BYTES + len)),
        Err(error) => Err(BadRecord::Invalid(format!(
            "record passes its CRC but does not decode: {error}"
        ))),
    }
}

/// Replays one segment into `state`. Returns the offset of a torn tail to cut, if any.
fn replay_segment(
    path: &Path,
    is_last: bool,
    state: &mut DurableState,
    report: &mut RecoveryReport,
) -> Result<Option<u64>, StorageError> {
    let bytes = fs::read(path).map_err(StorageError::io(path))?;
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < SEGMENT_MAGIC.len() && is_last && SEGMENT_MAGIC.starts_with(&bytes) {
        // A crash while the segment was being created; nothing was ever acknowledged in it.
        return Ok(Some(0));
    }
    if !bytes.starts_with(SEGMENT_MAGIC) {
        return Err(corrupt(0, "missing segment magic".to_string()));
    }
    let mut offset = SEGMENT_MAGIC.len();
    while offset < bytes.len() {
        match read_record(&bytes, offset) {
            Ok((request, next)) => {
                state.apply(&request);
                report.records += 1;
                offset = next;
            }
            Err(bad) => {
                let tail = &bytes[offset..];
                let torn = match &bad {
                    BadRecord::Incomplete => true,
                    BadRecord::Invalid(_) => {
                        tail.iter().all(|&byte| byte == 0) || ends_at_eof(tail)
                    }
                };
                if is_last && torn {
                    return Ok(Some(offset as u64));
                }
                let reason = match bad {
                    BadRecord::Incomplete => "the segment ends inside a record".to_string(),
                    BadRecord::Invalid(reason) => reason,
                };
                return Err(corrupt(offset, reason));
            }
        }
    }
    Ok(None)
}

/// True when the record at the start of `tail` claims to end exactly at the end of the file: a
/// write that reached its full length but not all its bytes, the classic torn append.
fn ends_at_eof(tail: &[u8]) -> bool {
    let Some(header) = tail.first_chunk::<4>() else {
        return true;
    };
    let len = u32::from_le_bytes(*header) as usize;
    RECORD_HEADER_BYTES + len == tail.len()
}

impl Wal {
    /// Replays every segment in `dir` (which must exist) and opens the last one for appends,
    /// creating the first segment when there is none.
    pub fn recover(dir: &Path) -> Result<(Wal, DurableState, RecoveryReport), StorageError> {
        let segments = list_segments(dir)?;
        let mut state = DurableState::default();
        let mut report = RecoveryReport {
            segments: segments.len(),
            ..RecoveryReport::default()
        };
        let Some((last_sequence, last_path)) = segments.last().cloned() else {
            let wal = Wal::create_segment(dir, 1)?;
            return Ok((wal, state, report));
        };
        for (position, (_, path)) in segments.iter().enumerate() {
            let is_last = position + 1 == segments.len();
            if let Some(offset) = replay_segment(path, is_last, &mut state, &mut report)? {
                truncate(path, offset)?;
                report.truncated = Some((path.clone(), offset));
            }
        }
        let wal = Wal::open_segment(dir, last_sequence, &last_path)?;
        Ok((wal, state, report))
    }

    fn create_segment(dir: &Path, sequence: u64) -> Result<Wal, StorageError> {
        let path = dir.join(segment_name(sequence));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        file.write_all(SEGMENT_MAGIC)
            .map_err(StorageError::io(&path))?;
        file.sync_all().map_err(StorageError::io(&path))?;
        // The new name must be durable before anything acknowledged lands in the file.
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            path,
            sequence,
            len: SEGMENT_MAGIC.len() as u64,
            segment_bytes_max: SEGMENT_BYTES_MAX,
        })
    }

    fn open_segment(dir: &Path, sequence: u64, path: &Path) -> Result<Wal, StorageError> {
        let mut file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(StorageError::io(path))?;
        let mut len = file.metadata().map_err(StorageError::io(path))?.len();
        if len == 0 {
            // Recovery cut a segment whose creation was torn; give it back its magic.
            file.write_all(SEGMENT_MAGIC)
                .map_err(StorageError::io(path))?;
            file.sync_all().map_err(StorageError::io(path))?;
            len = SEGMENT_MAGIC.len() as u64;
        }
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            path: path.to_path_buf(),
            sequence,
            len,
            segment_bytes_max: SEGMENT_BYTES_MAX,
        })
    }

    /// Starts a new segment once the current one reaches `bytes` (tests use small values).
    pub fn set_segment_bytes_max(&mut self, bytes: u64) {
        self.segment_bytes_max = bytes;
    }

    /// Appends already framed records (not yet durable: call `sync`).
    pub fn append(&mut self, records: &[u8]) -> Result<(), StorageError> {
        if self.len > SEGMENT_MAGIC.len() as u64 && self.len >= self.segment_bytes_max {
            self.rotate()?;
        }
        self.file
            .write_all(records)
            .map_err(StorageError::io(&self.path))?;
        self.len += records.len() as u64;
        Ok(())
    }

    /// Makes every appended record durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(StorageError::io(&self.path))
    }

    fn rotate(&mut self) -> Result<(), StorageError> {
        // The old segment must be complete on disk before records appear in the next one, or a
        // crash could keep a later record and lose an earlier one.
        self.sync()?;
        let next = Wal::create_segment(&self.dir, self.sequence + 1)?;
        *self = Wal {
            segment_bytes_max: self.segment_bytes_max,
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

fn truncate(path: &Path, offset: u64) -> Result<(), StorageError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io(path))?;
    file.set_len(offset).map_err(StorageError::io(path))?;
    file.sync_all().map_err(StorageError::io(path))
}
