//! The storage thread: group commit of persist requests.
//!
//! The driver hands every `Action::Persist` over a channel and never waits. The thread takes
//! whatever has queued up (one request or thousands), appends them in order, calls `fdatasync`
//! once for the whole batch, and only then reports the highest `persist_id` of the batch. Since
//! `Input::PersistDone` is cumulative, one report covers the batch, and the core releases the
//! acknowledgements that depend on it (contract rule 3) only after the data is on disk.
//!
//! A follower's driver may instead write a batch itself ([`StorageHandle::write_inline`]):
//! its acknowledgement waits for the fsync either way, and the hand-off to the thread and back
//! costs two wake-ups per round trip. The log and its mirror sit behind one mutex shared by
//! both paths, and the driver writes only once the thread has reported everything handed to
//! it, so the log stays in `persist_id` order and at most one batch is ever unsynced.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use raft_core::{DurableState, PersistId, PersistRequest};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::StorageError;
use crate::metrics::Metrics;
use crate::storage::wal::{encode_record, Wal};

/// Persist requests per batch, so one fsync never waits behind an unbounded queue.
pub const BATCH_REQUESTS_MAX: usize = 4096;
/// Encoded bytes per batch.
pub const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What the storage thread reports: every request up to this id is durable, or the write failed
/// (after which nothing more is ever reported: a node that cannot write must stop).
pub type PersistCompletion = Result<PersistId, StorageError>;

/// The driver's end of the storage thread.
#[derive(Debug)]
pub struct StorageHandle {
    requests: mpsc::Sender<Vec<PersistRequest>>,
    thread: Option<thread::JoinHandle<()>>,
    /// Requests held back by `queue` until `flush` or `write_inline`.
    queued: Vec<PersistRequest>,
    /// The log and its mirror, shared with the thread; see `write_inline`.
    writer: Arc<Mutex<Writer>>,
    /// The highest id handed to the thread.
    handed: PersistId,
    /// The highest id the driver has been told is durable.
    reported: PersistId,
}

impl StorageHandle {
    /// Hands a request to the thread now, behind every earlier one (queued ones included).
    pub fn persist(&mut self, request: PersistRequest) -> Result<(), StorageError> {
        self.queue(request);
        self.flush()
    }

    /// Holds a request back until `flush`. The driver queues the requests of a burst of inputs
    /// and hands them over together: one wake-up of the thread, and the burst lands in one
    /// group commit instead of being split by a thread that woke at its first request.
    pub fn queue(&mut self, request: PersistRequest) {
        self.queued.push(request);
    }

    /// Hands every queued request to the thread.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        let Some(last) = self.queued.last() else {
            return Ok(());
        };
        self.handed = last.persist_id;
        self.requests
            .send(std::mem::take(&mut self.queued))
            .map_err(|_| StorageError::ThreadGone)
    }

    /// Records that every request up to `persist_id` is durable (the driver has stepped the
    /// thread's completion for it).
    pub fn reported(&mut self, persist_id: PersistId) {
        self.reported = self.reported.max(persist_id);
    }

    /// Writes and syncs the queued requests on the caller's thread, when that keeps the log in
    /// order: the thread has reported everything handed to it, so it is idle and no earlier
    /// write is in flight. `None` when there is nothing to write, the thread is still busy, or
    /// a queued request carries a snapshot (a checkpoint rewrites the whole state: that stays
    /// off the caller's thread). A follower acknowledges only after its fsync either way;
    /// writing it here spares two thread wake-ups per round trip, at the price of the caller
    /// doing nothing else until the write (at times a segment rotation) and its sync are done.
    pub fn write_inline(&mut self) -> Option<PersistCompletion> {
        if self.queued.is_empty()
            || self.handed > self.reported
            || self.queued.iter().any(|request| request.snapshot.is_some())
        {
            return None;
        }
        let requests = std::mem::take(&mut self.queued);
        Some(write_shared(&self.writer, requests, || None))
    }

    /// Stops the thread after it has written everything queued.
    pub fn shutdown(mut self) {
        // A thread that is already gone has reported why.
        let _ = self.flush();
        let (sender, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.requests, sender));
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

/// Starts the storage thread writing to `wal`; completions go to `done`. `durable`, when given,
/// is what `wal` holds; without it, the thread reads the log back the first time a checkpoint
/// needs it (a restart with a long log then skips copying it).
pub fn spawn_writer(
    wal: Wal,
    durable: Option<DurableState>,
    done: UnboundedSender<PersistCompletion>,
    metrics: Arc<Metrics>,
) -> Result<StorageHandle, StorageError> {
    let (requests, receiver) = mpsc::channel();
    let path = wal.path().to_path_buf();
    let writer = Arc::new(Mutex::new(Writer {
        wal,
        durable,
        buf: Vec::with_capacity(64 * 1024),
        batch: Vec::new(),
        metrics,
        failed: false,
    }));
    let shared = Arc::clone(&writer);
    let thread = thread::Builder::new()
        .name("raft-storage".to_string())
        .spawn(move || run(&shared, &receiver, &done))
        .map_err(StorageError::io(path))?;
    Ok(StorageHandle {
        requests,
        thread: Some(thread),
        queued: Vec::new(),
        writer,
        handed: PersistId(0),
        reported: PersistId(0),
    })
}

/// The thread's body: one batch per wake-up, reported after its sync, with the lock released
/// first so that a caller that has seen the report finds the writer free.
fn run(
    writer: &Mutex<Writer>,
    receiver: &mpsc::Receiver<Vec<PersistRequest>>,
    done: &UnboundedSender<PersistCompletion>,
) {
    while let Ok(first) = receiver.recv() {
        let completion = write_shared(writer, first, || receiver.try_recv().ok());
        let failed = completion.is_err();
        if done.send(completion).is_err() || failed {
            // The driver is gone, or the disk failed: writing on could reorder or hide the loss.
            return;
        }
    }
}

/// `Writer::write` under the lock. A poisoned lock means the other side (the thread, or the
/// driver inside an inline write) panicked while it wrote: the log's end is unknown.
fn write_shared(
    writer: &Mutex<Writer>,
    first: Vec<PersistRequest>,
    more: impl FnMut() -> Option<Vec<PersistRequest>>,
) -> PersistCompletion {
    match writer.lock() {
        Ok(mut writer) => writer.write(first, more),
        Err(_) => Err(StorageError::ThreadGone),
    }
}

/// The log and what it holds. `durable` mirrors the log (once known), so that a checkpoint can
/// be written when a snapshot lets the older segments go.
#[derive(Debug)]
struct Writer {
    wal: Wal,
    durable: Option<DurableState>,
    buf: Vec<u8>,
    batch: Vec<PersistRequest>,
    metrics: Arc<Metrics>,
    /// A write failed: the log's end is unknown, so nothing may be written behind it.
    failed: bool,
}

impl Writer {
    /// Writes `first` and whatever `more` yields while the batch has room, as one group commit,
    /// and returns the highest id written once it is synced.
    fn write(
        &mut self,
        first: Vec<PersistRequest>,
        mut more: impl FnMut() -> Option<Vec<PersistRequest>>,
    ) -> PersistCompletion {
        if self.failed {
            return Err(StorageError::EarlierWriteFailed);
        }
        let Self {
            wal,
            durable,
            buf,
            batch,
            metrics,
            failed,
        } = self;
        buf.clear();
        batch.clear();
        let mut result = take(first, batch, buf);
        while result.is_ok() && batch.len() < BATCH_REQUESTS_MAX && buf.len() < BATCH_BYTES_MAX {
            let Some(next) = more() else { break };
            result = take(next, batch, buf);
        }
        let entries: u64 = batch
            .iter()
            .filter_map(|request| request.log.as_ref())
            .map(|splice| splice.entries.len() as u64)
            .sum();
        let compact = batch.iter().any(|request| request.snapshot.is_some());
        if compact && durable.is_none() && result.is_ok() {
            // The log holds everything before this batch (it is all synced).
            match wal.replay() {
                Ok(state) => *durable = Some(state),
                Err(error) => result = Err(error),
            }
        }
        if let Some(durable) = durable.as_mut() {
            for request in batch.iter() {
                durable.apply(request);
            }
        }
        if result.is_ok() {
            result = match (compact, durable.as_ref()) {
                // The batch goes into a checkpoint that starts a new segment instead of into
                // the current one: the snapshot is written and synced once, not twice, and the
                // group commits queued behind it wait for one sync instead of several.
                (true, Some(durable)) => checkpoint(wal, durable, metrics),
                _ => write_batch(wal, buf, metrics),
            };
        }
        metrics
            .persist_requests
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        metrics
            .persist_entries
            .fetch_add(entries, std::sync::atomic::Ordering::Relaxed);
        *failed = result.is_err();
        let last = batch
            .last()
            .map_or(PersistId(0), |request| request.persist_id);
        result.map(|()| last)
    }
}

/// Encodes `requests` onto `buf` and moves them into `batch`.
fn take(
    requests: Vec<PersistRequest>,
    batch: &mut Vec<PersistRequest>,
    buf: &mut Vec<u8>,
) -> Result<(), StorageError> {
    let mut result = Ok(());
    for request in requests {
        // A batch that carries a snapshot is written as one checkpoint, not as these records:
        // encoding it (the snapshot's bytes among it) would be thrown away.
        let compacting =
            request.snapshot.is_some() || batch.iter().any(|taken| taken.snapshot.is_some());
        if compacting {
            buf.clear();
        } else if result.is_ok() {
            result = encode_record(&request, buf);
        }
        batch.push(request);
    }
    result
}

fn checkpoint(
    wal: &mut Wal,
    durable: &DurableState,
    metrics: &Metrics,
) -> Result<(), StorageError> {
    let started = Instant::now();
    wal.checkpoint(durable)?;
    metrics.observe_fsync(started.elapsed());
    crate::metrics::inc(&metrics.persist_batches);
    Ok(())
}

fn write_batch(wal: &mut Wal, buf: &[u8], metrics: &Metrics) -> Result<(), StorageError> {
    wal.append(buf)?;
    let started = Instant::now();
    wal.sync()?;
    metrics.observe_fsync(started.elapsed());
    crate::metrics::inc(&metrics.persist_batches);
    metrics
        .persist_bytes
        .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}
