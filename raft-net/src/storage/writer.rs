//! The storage thread: group commit of persist requests.
//!
//! The driver hands every `Action::Persist` over a channel and never waits. The thread takes
//! whatever has queued up (one request or thousands), appends them in order, calls `fdatasync`
//! once for the whole batch, and only then reports the highest `persist_id` of the batch. Since
//! `Input::PersistDone` is cumulative, one report covers the batch, and the core releases the
//! acknowledgements that depend on it (contract rule 3) only after the data is on disk.

use std::sync::mpsc;
use std::sync::Arc;
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
    /// Requests held back by `queue` until `flush`.
    queued: Vec<PersistRequest>,
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
        if self.queued.is_empty() {
            return Ok(());
        }
        self.requests
            .send(std::mem::take(&mut self.queued))
            .map_err(|_| StorageError::ThreadGone)
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
    let thread = thread::Builder::new()
        .name("raft-storage".to_string())
        .spawn(move || run(wal, durable, &receiver, &done, &metrics))
        .map_err(StorageError::io(path))?;
    Ok(StorageHandle {
        requests,
        thread: Some(thread),
        queued: Vec::new(),
    })
}

/// The thread's body. `durable` mirrors what the log holds (once known), so that a checkpoint can
/// be written when a snapshot lets the older segments go.
fn run(
    mut wal: Wal,
    mut durable: Option<DurableState>,
    receiver: &mpsc::Receiver<Vec<PersistRequest>>,
    done: &UnboundedSender<PersistCompletion>,
    metrics: &Metrics,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut batch = Vec::new();
    while let Ok(first) = receiver.recv() {
        buf.clear();
        batch.clear();
        let mut result = take(first, &mut batch, &mut buf);
        while result.is_ok() && batch.len() < BATCH_REQUESTS_MAX && buf.len() < BATCH_BYTES_MAX {
            let Ok(next) = receiver.try_recv() else { break };
            result = take(next, &mut batch, &mut buf);
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
                Ok(state) => durable = Some(state),
                Err(error) => result = Err(error),
            }
        }
        if let Some(durable) = &mut durable {
            for request in &batch {
                durable.apply(request);
            }
        }
        if result.is_ok() {
            result = match (compact, &durable) {
                // The batch goes into a checkpoint that starts a new segment instead of into
                // the current one: the snapshot is written and synced once, not twice, and the
                // group commits queued behind it wait for one sync instead of several.
                (true, Some(durable)) => checkpoint(&mut wal, durable, metrics),
                _ => write_batch(&mut wal, &buf, metrics),
            };
        }
        metrics
            .persist_requests
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        metrics
            .persist_entries
            .fetch_add(entries, std::sync::atomic::Ordering::Relaxed);
        let last = batch
            .last()
            .map_or(PersistId(0), |request| request.persist_id);
        let failed = result.is_err();
        if done.send(result.map(|()| last)).is_err() || failed {
            // The driver is gone, or the disk failed: writing on could reorder or hide the loss.
            return;
        }
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
