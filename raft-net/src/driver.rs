//! The driver: one tokio task that owns the `raft_core::Node` outright (no mutex), and the
//! node's replicated state: a [`Replica`] of the service's state machine.
//!
//! It waits on seven sources: a peer datagram, the tick interval, a request from the machine's
//! HTTP routes, one from the node's own routes, a persist completion from the storage thread,
//! a snapshot encoded off the driver and a leader's snapshot restored off the driver. Each
//! but the last turns into exactly one `Input`; the driver calls `step` and carries out the
//! returned actions in order before it looks at the next input (contract rule 1):
//!
//! - `Persist` goes to the storage thread (group commit). Its completion comes back later as
//!   `PersistDone`, reported only after `fdatasync`; the core holds back every message that
//!   depends on it, so the driver never orders anything itself. A follower whose storage thread
//!   is idle writes and syncs the turn's requests itself at the end of the turn and steps
//!   `PersistDone` right away. Meanwhile the driver takes no datagram, tick or request, and
//!   its runtime thread is blocked: on the default one-thread runtime the HTTP routes wait
//!   too, for the write and its fdatasync (at times a segment rotation).
//! - `Send` is encoded and sent as one datagram.
//! - `ApplySnapshot` replaces the machine with the leader's snapshot, restored off the driver
//!   (see below).
//! - `Apply` runs the machine; the outputs are kept for the replies of the same step.
//! - `Reply` answers the HTTP request that proposed the command (or asked for a read: the
//!   machine answers it right then).
//!
//! After the actions, when a snapshot is due (see [`SnapshotSchedule`]: once the log since the
//! last one holds as many bytes as that snapshot, up to a cap, at the node's next multiple of
//! `snapshot_entries`), the driver takes the machine's snapshot, which the
//! [`StateMachine`] contract makes cheap (the key-value store's is a
//! pointer copy), and encodes it on a blocking thread while it goes on stepping; the bytes come
//! back as one more source, and only then does the driver feed `Input::Compact` for the index
//! the snapshot was taken at, so the log (and the WAL) stay bounded without a large store ever
//! stalling heartbeats. One snapshot is encoded at a time.
//!
//! Installing a leader's snapshot is the other way round: decoding and rebuilding a large store
//! takes as long as encoding it (a third of a second for a million keys), so the driver builds an
//! empty machine, restores it from the snapshot's bytes on a blocking thread and goes on stepping:
//! heartbeats, votes, persist completions and datagrams keep flowing. The core already counts the
//! snapshot as applied, so every action that would look at the machine (`Apply`, `Reply`, a later
//! `ApplySnapshot`) waits, in order, until the restored machine is back; then it replaces the old
//! one and the waiting actions run on it, as they would have right after a synchronous restore. No
//! read, apply, reply or snapshot ever sees the old machine as if it were the new one, nor a
//! half-restored one: the new machine is not reachable until its restore finished. A stale read
//! (which promises nothing newer) is answered by the old machine meanwhile, and no snapshot of the
//! machine is taken until the install is done. A crash during the install loses only the restore:
//! the snapshot is persisted by the core's `Persist` of the same step, and recovery restores the
//! machine from whatever snapshot is durable.
//!
//! This is the only place in the system that reads a clock (the tick interval).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use raft_core::{
    Action, BadSnapshot, ChangeRejection, Entry, EntryPayload, Input, LogIndex, Membership,
    MembershipChange, Node, NodeId, PersistId, Reply, RequestId, Role, Snapshot, StateMachine,
    Term,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval, Instant, MissedTickBehavior};

use crate::addresses::AddressBook;
use crate::backup::BackupImage;
use crate::cluster_id::{ClusterId, ClusterIdCell};
use crate::error::{DriverError, StorageError};
use crate::events::{NodeStatus, StatusFeed};
use crate::member_address::check_member_address;
use crate::metrics::{inc, Metrics};
use crate::replica::{NodeOutput, Replica};
use crate::service::Machine;
use crate::snapshot_schedule::{SnapshotPolicy, SnapshotSchedule};
use crate::storage::{self, Meta, PersistCompletion, StorageHandle};
use crate::transport::Transport;

/// Requests queued from HTTP before senders wait.
pub const REQUEST_QUEUE_MAX: usize = 4096;
/// Inputs of one kind taken in a row before the driver looks at the other sources again.
const BURST_MAX: usize = 64;
/// Entries returned by one `/api/v1/state` page at most.
pub const STATE_PAGE_MAX: usize = 10_000;
/// Command bytes one `/api/v1/state` page copies at most (past its first entry): the driver
/// copies a page and HTTP formats it elsewhere, and both stay short next to a heartbeat.
pub const STATE_PAGE_BYTES_MAX: usize = 1024 * 1024;
/// Log entries one page looks at, listed or not (no-ops and membership entries are not).
const STATE_SCAN_MAX: usize = 4 * STATE_PAGE_MAX;

/// What the machine's routes ask of the driver.
pub enum Request<M: StateMachine> {
    /// Propose a command, as the log holds it (tagged, see [`crate::replica`]); answered once
    /// its fate is known.
    Propose {
        command: Vec<u8>,
        respond: oneshot::Sender<Outcome<M::Output>>,
    },
    /// A linearizable read (ReadIndex: answered once leadership is confirmed and the machine
    /// has applied everything committed when the read arrived).
    Read {
        query: M::Query,
        respond: oneshot::Sender<Outcome<M::Answer>>,
    },
    /// This replica's answer, without consulting the leader.
    StaleRead {
        query: M::Query,
        respond: oneshot::Sender<M::Answer>,
    },
}

impl<M: StateMachine> std::fmt::Debug for Request<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Propose { .. } => "Propose",
            Request::Read { .. } => "Read",
            Request::StaleRead { .. } => "StaleRead",
        })
    }
}

/// The proposals and reads of one burst of requests, on their way into the core together.
#[derive(Default)]
struct Burst {
    proposals: Vec<(RequestId, Vec<u8>)>,
    reads: Vec<RequestId>,
}

/// What the node's own routes (status, members, administration) ask of the driver.
#[derive(Debug)]
pub enum NodeRequest {
    /// Propose an encoded node command (a member's addresses); answered once its fate is
    /// known.
    Propose {
        command: Vec<u8>,
        respond: oneshot::Sender<Outcome<()>>,
    },
    /// A single-server membership change.
    ChangeMembership {
        change: MembershipChange,
        respond: oneshot::Sender<Outcome<()>>,
    },
    /// Hand leadership to `to` (Raft thesis §3.10); answered with this node's view right after.
    TransferLeader {
        to: NodeId,
        respond: oneshot::Sender<TransferView>,
    },
    /// A page of the log and the node's status.
    State {
        from: LogIndex,
        limit: usize,
        respond: oneshot::Sender<StatePage>,
    },
    /// Snapshot the machine now and compact the log through the applied index; answered with
    /// the snapshot's index once the core has it, or `None` when nothing was applied since
    /// the latest snapshot.
    Snapshot {
        respond: oneshot::Sender<Option<LogIndex>>,
    },
    /// A backup: the store, its applied index, term and membership, once leadership is
    /// confirmed and everything committed when the request arrived is applied (as for a
    /// linearizable read).
    Backup {
        respond: oneshot::Sender<Outcome<Box<PendingBackup>>>,
    },
}

/// The fate of a proposal (`T`: the machine's output) or a read (`T`: its answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Committed and applied; `output` is what the state machine returned.
    Committed {
        index: LogIndex,
        term: Term,
        output: T,
    },
    NotLeader {
        leader_hint: Option<NodeId>,
    },
    Busy,
    /// Appended, then overwritten by a new leader: it will never commit.
    Dropped {
        index: LogIndex,
        term: Term,
    },
    /// This node learned the entry's fate only through a snapshot: it may or may not have been
    /// applied.
    Unknown {
        index: LogIndex,
        term: Term,
    },
    /// A linearizable read's answer.
    Value(T),
    /// The membership change cannot be made (now).
    ChangeRejected(ChangeRejection),
}

/// The node's status and a page of its log's command entries, as the driver copies them for
/// `GET /api/v1/state` (which formats them away from the driver).
#[derive(Debug, Clone)]
pub struct StatePage {
    pub id: u64,
    pub term: u64,
    pub state: &'static str,
    pub leader: Option<u64>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    /// Entries up to here are compacted into a snapshot and no longer listed.
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// This server's incarnation.
    pub incarnation: u64,
    /// The cluster this node belongs to, once known.
    pub cluster_id: Option<ClusterId>,
    /// The incarnation the membership records for each member, where it records one.
    pub incarnations: Vec<(u64, u64)>,
    /// Learners that were voters until they came back as a new incarnation.
    pub returning: Vec<u64>,
    /// Command entries from the page's start, in index order.
    pub entries: Vec<Entry>,
    /// The `from` of the next page, when this one was cut short.
    pub next: Option<u64>,
}

/// What a leadership transfer request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferView {
    /// The node this one knows as leader (itself, while the transfer runs).
    pub leader: Option<NodeId>,
    /// The transfer under way, if the request started one (or one was already running).
    pub target: Option<NodeId>,
}

/// A request waiting for its answer.
enum Waiter<M: StateMachine> {
    /// A machine command: answered with the machine's output.
    Proposal(oneshot::Sender<Outcome<M::Output>>),
    /// A read: the machine answers `query` once the core releases it.
    Read {
        query: M::Query,
        respond: oneshot::Sender<Outcome<M::Answer>>,
    },
    /// A node command or a membership change: answered with its fate alone.
    Node(oneshot::Sender<Outcome<()>>),
    /// A backup: taken once the core releases it, like a read.
    Backup(oneshot::Sender<Outcome<Box<PendingBackup>>>),
}

/// What the data dir says about this node, and the cluster id the node goes by.
#[derive(Debug)]
pub struct Identity {
    pub data_dir: PathBuf,
    pub meta: Meta,
    pub cluster: Arc<ClusterIdCell>,
}

impl Identity {
    /// A server without a cluster id (it joined or returned from an empty data dir) takes the
    /// one the first message it accepts names, durably, before it acts on that message.
    fn learn(&mut self, claimed: Option<ClusterId>) -> Result<(), StorageError> {
        let (None, Some(id)) = (self.meta.cluster_id, claimed) else {
            return Ok(());
        };
        let meta = Meta {
            cluster_id: Some(id),
            ..self.meta.clone()
        };
        storage::write_meta(&self.data_dir, &meta)?;
        self.meta = meta;
        self.cluster.set(id);
        tracing::info!(cluster = %id, "recorded the cluster id a member named");
        Ok(())
    }
}

/// A backup as the driver hands it over: everything but the state's bytes, and the state's
/// snapshot, which [`PendingBackup::finish`] encodes away from the driver.
pub struct PendingBackup {
    image: BackupImage,
    encode: Box<dyn FnOnce() -> Vec<u8> + Send>,
}

impl std::fmt::Debug for PendingBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingBackup")
            .field("index", &self.image.index)
            .finish_non_exhaustive()
    }
}

impl PendingBackup {
    /// The backup with its bytes: O(state), so not on the driver's thread.
    #[must_use]
    pub fn finish(self) -> BackupImage {
        let mut image = self.image;
        image.data = (self.encode)();
        tracing::info!(
            index = image.index.0,
            bytes = image.data.len(),
            "backup encoded"
        );
        image
    }
}

/// A snapshot being encoded off the driver.
struct Encoding {
    /// The applied index it was taken at.
    index: LogIndex,
    /// Snapshot requests answered when it is in the core.
    waiters: Vec<oneshot::Sender<Option<LogIndex>>>,
    /// A request came after it was taken, when more had been applied: take another one
    /// right after, for the waiters.
    again: bool,
}

/// An encoded snapshot coming back to the driver: the index it was taken at and its bytes.
type Encoded = (LogIndex, Vec<u8>);

/// A leader's snapshot being restored off the driver.
struct Installing {
    bytes: usize,
    /// The actions the core emitted since (but `Persist` and `Send`), in order: they run once
    /// the restored machine is in place.
    deferred: Vec<Action>,
    /// Snapshot requests, answered once the machine is at the core's applied index again.
    snapshot_requests: Vec<oneshot::Sender<Option<LogIndex>>>,
}

/// A restored machine coming back to the driver: the snapshot's index, and the machine (or
/// the error: the bytes were not a snapshot of this machine).
type Restored<M> = (LogIndex, Result<Replica<M>, BadSnapshot>);

/// Builds the service's empty machine, to restore a snapshot into.
pub type MachineFactory<M> = Box<dyn Fn() -> M + Send>;

/// Everything the driver task owns.
pub struct Driver<M: StateMachine> {
    node: Node,
    identity: Identity,
    replica: Replica<M>,
    transport: Arc<Transport>,
    addresses: Arc<AddressBook>,
    storage: StorageHandle,
    metrics: Arc<Metrics>,
    waiters: HashMap<RequestId, Waiter<M>>,
    next_request_id: u64,
    /// Outputs of the entries applied in the current step, for its `Committed` replies.
    /// In index order (an `Apply` is contiguous); only kept while some request waits.
    step_outputs: Vec<(LogIndex, NodeOutput<M::Output>)>,
    last_seen: (Role, Term, Option<NodeId>),
    /// The membership last logged.
    last_membership: Membership,
    /// When the next snapshot is due; it knows the latest one taken or installed.
    schedule: SnapshotSchedule,
    /// The index of the latest snapshot the core holds: the log is compacted up to it.
    snapshot_index: LogIndex,
    /// The snapshot being encoded, if any.
    encoding: Option<Encoding>,
    encoded_tx: mpsc::UnboundedSender<Encoded>,
    encoded_rx: Option<mpsc::UnboundedReceiver<Encoded>>,
    /// Builds an empty machine for a leader's snapshot.
    fresh_machine: MachineFactory<M>,
    /// The leader's snapshot being restored, if any.
    installing: Option<Installing>,
    restored_tx: mpsc::UnboundedSender<Restored<M>>,
    restored_rx: Option<mpsc::UnboundedReceiver<Restored<M>>>,
    /// The status for watchers (`GET /api/v1/events`), sent where the gauges are updated.
    feed: StatusFeed,
}

impl<M: StateMachine> std::fmt::Debug for Driver<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("node", &self.node.id())
            .field("waiters", &self.waiters.len())
            .field("snapshot_index", &self.snapshot_index)
            .finish_non_exhaustive()
    }
}

impl<M: Machine> Driver<M> {
    /// `replica` must be the replicated state as of the node's restored snapshot (empty
    /// without one); `fresh_machine` builds the empty machine a leader's snapshot is restored
    /// into (the service's, with the same configuration).
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: Node,
        identity: Identity,
        replica: Replica<M>,
        fresh_machine: MachineFactory<M>,
        addresses: Arc<AddressBook>,
        transport: Arc<Transport>,
        storage: StorageHandle,
        metrics: Arc<Metrics>,
        snapshot_policy: SnapshotPolicy,
        snapshot_bytes: usize,
    ) -> Driver<M> {
        let last_seen = (node.role(), node.term(), node.leader_id());
        let last_membership = node.membership().clone();
        let snapshot_index = node.applied_index();
        let schedule =
            SnapshotSchedule::new(node.id(), snapshot_policy, snapshot_index, snapshot_bytes);
        let (encoded_tx, encoded_rx) = mpsc::unbounded_channel();
        let (restored_tx, restored_rx) = mpsc::unbounded_channel();
        let feed = StatusFeed::new(&node, snapshot_index);
        Driver {
            node,
            identity,
            replica,
            transport,
            addresses,
            storage,
            metrics,
            waiters: HashMap::new(),
            next_request_id: 1,
            step_outputs: Vec::new(),
            last_seen,
            last_membership,
            schedule,
            snapshot_index,
            encoding: None,
            encoded_tx,
            encoded_rx: Some(encoded_rx),
            fresh_machine,
            installing: None,
            restored_tx,
            restored_rx: Some(restored_rx),
            feed,
        }
    }

    /// The node's status from now on, as it changes.
    #[must_use]
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<NodeStatus> {
        self.feed.subscribe()
    }

    /// Runs until a request channel closes (the HTTP side is gone) or storage fails.
    pub async fn run(
        mut self,
        tick: std::time::Duration,
        mut requests: mpsc::Receiver<Request<M>>,
        mut node_requests: mpsc::Receiver<NodeRequest>,
        mut persisted: mpsc::UnboundedReceiver<PersistCompletion>,
    ) -> Result<(), DriverError> {
        let mut ticks = interval(tick);
        // Missed ticks are not replayed in a burst: a stalled process must not fire elections
        // the moment it resumes.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let transport = Arc::clone(&self.transport);
        let mut buf = transport.recv_buffer();
        // The driver holds a sender of each itself, so these channels never close.
        let (Some(mut encoded), Some(mut restored)) =
            (self.encoded_rx.take(), self.restored_rx.take())
        else {
            return Ok(());
        };
        self.publish();
        let result = loop {
            // When the turn began: the wake-up, not the wait before it.
            let turn: Instant;
            tokio::select! {
                completion = persisted.recv() => {
                    turn = Instant::now();
                    match completion {
                        Some(Ok(persist_id)) => self.on_persisted(persist_id)?,
                        Some(Err(error)) => break Err(error.into()),
                        None => break Err(StorageError::ThreadGone.into()),
                    }
                }
                received = transport.recv(&mut buf) => {
                    turn = Instant::now();
                    match received {
                        Ok((len, from)) => self.on_datagram(&buf[..len], from)?,
                        Err(error) => tracing::debug!(%error, "UDP receive failed"),
                    }
                    for _ in 1..BURST_MAX {
                        let Ok((len, from)) = transport.try_recv(&mut buf) else { break };
                        self.on_datagram(&buf[..len], from)?;
                    }
                }
                _ = ticks.tick() => {
                    turn = Instant::now();
                    self.step(Input::Tick)?;
                }
                request = requests.recv() => {
                    turn = Instant::now();
                    let Some(request) = request else { break Ok(()) };
                    // Proposals of a burst enter the core as one batch: one AppendEntries per
                    // follower carries them all, instead of one datagram per proposal; its
                    // reads share one confirmation round.
                    let mut batch = Burst::default();
                    self.on_request(request, &mut batch)?;
                    for _ in 1..BURST_MAX {
                        let Ok(request) = requests.try_recv() else { break };
                        self.on_request(request, &mut batch)?;
                    }
                    self.flush_burst(&mut batch)?;
                }
                request = node_requests.recv() => {
                    turn = Instant::now();
                    let Some(request) = request else { break Ok(()) };
                    self.on_node_request(request)?;
                }
                Some((index, data)) = encoded.recv() => {
                    turn = Instant::now();
                    self.on_encoded(index, data)?;
                }
                Some((index, machine)) = restored.recv() => {
                    turn = Instant::now();
                    self.on_restored(index, machine)?;
                }
            }
            if let Err(error) = self.persist_inline() {
                break Err(error);
            }
            // Everything else the inputs of this iteration asked to persist goes to the storage
            // thread together, before the loop waits again.
            if let Err(error) = self.storage.flush() {
                break Err(error.into());
            }
            self.metrics.observe_driver_busy(turn.elapsed());
        };
        self.storage.shutdown();
        result
    }

    fn on_datagram(
        &mut self,
        datagram: &[u8],
        from: std::net::SocketAddr,
    ) -> Result<(), DriverError> {
        match self.transport.accept(datagram, from) {
            Some(received) => {
                self.identity.learn(received.cluster)?;
                self.step(Input::Receive(received.envelope))
            }
            None => Ok(()),
        }
    }

    /// Handles one request; proposals and reads are gathered in `batch`, which enters the core
    /// before any other request. Reads and proposals of one burst are concurrent (none has
    /// been answered), so the reads may go first.
    fn on_request(&mut self, request: Request<M>, batch: &mut Burst) -> Result<(), DriverError> {
        match request {
            Request::Propose { command, respond } => {
                let request_id = self.wait(Waiter::Proposal(respond));
                inc(&self.metrics.proposals);
                batch.proposals.push((request_id, command));
                Ok(())
            }
            Request::Read { query, respond } => {
                let request_id = self.wait(Waiter::Read { query, respond });
                batch.reads.push(request_id);
                Ok(())
            }
            Request::StaleRead { query, respond } => {
                self.flush_burst(batch)?;
                let _ = respond.send(self.replica.query(&query));
                Ok(())
            }
        }
    }

    fn flush_burst(&mut self, batch: &mut Burst) -> Result<(), DriverError> {
        if !batch.reads.is_empty() {
            self.step(Input::ReadBatch {
                request_ids: std::mem::take(&mut batch.reads),
            })?;
        }
        if !batch.proposals.is_empty() {
            self.step(Input::ProposeBatch {
                proposals: std::mem::take(&mut batch.proposals),
            })?;
        }
        Ok(())
    }

    fn on_node_request(&mut self, request: NodeRequest) -> Result<(), DriverError> {
        match request {
            NodeRequest::Propose { command, respond } => {
                let request_id = self.wait(Waiter::Node(respond));
                inc(&self.metrics.proposals);
                self.step(Input::ProposeBatch {
                    proposals: vec![(request_id, command)],
                })
            }
            NodeRequest::ChangeMembership { change, respond } => {
                let request_id = self.wait(Waiter::Node(respond));
                self.step(Input::ChangeMembership { request_id, change })
            }
            NodeRequest::State {
                from,
                limit,
                respond,
            } => {
                // The client may have given up; nothing to do then.
                let _ = respond.send(self.state_page(from, limit));
                Ok(())
            }
            NodeRequest::TransferLeader { to, respond } => {
                self.step(Input::TransferLeader { to })?;
                let view = TransferView {
                    leader: self.node.leader_id(),
                    target: self.node.transfer_target(),
                };
                let _ = respond.send(view);
                Ok(())
            }
            NodeRequest::Backup { respond } => {
                let request_id = self.wait(Waiter::Backup(respond));
                self.step(Input::Read { request_id })
            }
            NodeRequest::Snapshot { respond } => {
                let applied = self.node.applied_index();
                match &mut self.encoding {
                    Some(encoding) => {
                        encoding.again |= applied > encoding.index;
                        encoding.waiters.push(respond);
                    }
                    None if self.installing.is_some() => {
                        if let Some(installing) = &mut self.installing {
                            installing.snapshot_requests.push(respond);
                        }
                    }
                    None if applied <= self.schedule.last() => {
                        let _ = respond.send(None);
                    }
                    None => {
                        self.take_snapshot(applied);
                        if let Some(encoding) = &mut self.encoding {
                            encoding.waiters.push(respond);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn wait(&mut self, waiter: Waiter<M>) -> RequestId {
        let request_id = RequestId(self.next_request_id);
        self.next_request_id += 1;
        self.waiters.insert(request_id, waiter);
        request_id
    }

    /// Every request up to `persist_id` is durable.
    fn on_persisted(&mut self, persist_id: PersistId) -> Result<(), DriverError> {
        self.storage.reported(persist_id);
        self.step(Input::PersistDone { persist_id })
    }

    /// A follower writes what this turn asked to persist itself, when its storage thread is
    /// idle (see `StorageHandle::write_inline`): the acknowledgement leaves in the same turn.
    /// A leader hands its writes over: it sends its AppendEntries before its own fsync, and a
    /// driver blocked in that fsync would leave the followers' acknowledgements and the next
    /// requests waiting.
    fn persist_inline(&mut self) -> Result<(), DriverError> {
        while self.node.role() == Role::Follower {
            let Some(completion) = self.storage.write_inline() else {
                break;
            };
            self.on_persisted(completion?)?;
        }
        Ok(())
    }

    /// One input, then every action it caused, in order; then a snapshot if one is due.
    fn step(&mut self, input: Input) -> Result<(), DriverError> {
        self.execute(input)?;
        self.maybe_snapshot();
        Ok(())
    }

    /// Takes a snapshot if one is due, none is being encoded, and the machine is at the core's
    /// applied index (no leader's snapshot is being restored).
    fn maybe_snapshot(&mut self) {
        let applied = self.node.applied_index();
        if self.schedule.is_due(applied) && self.encoding.is_none() && self.installing.is_none() {
            self.take_snapshot(applied);
        }
    }

    /// Takes the machine's snapshot at `applied` (its current state), which is cheap, and
    /// encodes it on a blocking thread; the bytes come back through `encoded`.
    fn take_snapshot(&mut self, applied: LogIndex) {
        let snapshot = self.replica.snapshot();
        self.schedule.taken(applied);
        self.encoding = Some(Encoding {
            index: applied,
            waiters: Vec::new(),
            again: false,
        });
        let done = self.encoded_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut data = Vec::new();
            Replica::<M>::encode_snapshot(&snapshot, &mut data);
            // Released before the bytes reach the driver, so a machine that shares its state
            // with its snapshot (the key-value store) has it to itself again by then.
            drop(snapshot);
            // The driver is gone when this fails; nothing waits for the bytes then.
            let _ = done.send((applied, data));
        });
    }

    /// A snapshot's bytes are ready: the core compacts the log behind them (unless it has a
    /// newer snapshot by now, from the leader), and the requests that waited are answered.
    fn on_encoded(&mut self, index: LogIndex, data: Vec<u8>) -> Result<(), DriverError> {
        tracing::info!(index = index.0, bytes = data.len(), "taking a snapshot");
        self.schedule.encoded(index, data.len());
        let encoding = self.encoding.take();
        self.execute(Input::Compact { index, data })?;
        self.snapshot_index = self.snapshot_index.max(index);
        let Some(encoding) = encoding else {
            return Ok(());
        };
        let applied = self.node.applied_index();
        if encoding.again && applied > index {
            if let Some(installing) = &mut self.installing {
                // The machine is not at `applied` yet: these requests wait for the install.
                installing.snapshot_requests.extend(encoding.waiters);
                return Ok(());
            }
            self.take_snapshot(applied);
            if let Some(next) = &mut self.encoding {
                next.waiters = encoding.waiters;
            }
            return Ok(());
        }
        for waiter in encoding.waiters {
            let _ = waiter.send(Some(index));
        }
        Ok(())
    }

    fn execute(&mut self, input: Input) -> Result<(), DriverError> {
        let actions = self.node.step(input);
        for action in actions {
            self.run_action(action);
        }
        self.step_outputs.clear();
        self.publish();
        Ok(())
    }

    fn run_action(&mut self, action: Action) {
        match action {
            // Handed to the storage thread at the end of the loop iteration (`flush`).
            Action::Persist(request) => self.storage.queue(request),
            Action::Send(envelope) => self.transport.send(&envelope),
            action if self.installing.is_some() => {
                if let Some(installing) = &mut self.installing {
                    installing.deferred.push(action);
                }
            }
            Action::ApplySnapshot { snapshot } => self.install(snapshot),
            Action::Apply { entries } => self.apply(entries),
            Action::Reply { request_id, reply } => self.on_reply(request_id, reply),
        }
    }

    /// Restores an empty machine from the leader's `snapshot` on a blocking thread; the
    /// machine comes back through `restored`.
    fn install(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.last_included_index;
        self.snapshot_index = self.snapshot_index.max(index);
        self.schedule.installed(index, snapshot.data.len());
        self.installing = Some(Installing {
            bytes: snapshot.data.len(),
            deferred: Vec::new(),
            snapshot_requests: Vec::new(),
        });
        let mut replica = Replica::new((self.fresh_machine)());
        let done = self.restored_tx.clone();
        tracing::info!(
            index = index.0,
            bytes = snapshot.data.len(),
            "installing the leader's snapshot"
        );
        tokio::task::spawn_blocking(move || {
            let restored = replica.restore(&snapshot.data).map(|()| replica);
            // The driver is gone when this fails; nothing waits for the machine then.
            let _ = done.send((index, restored));
        });
    }

    /// The leader's snapshot is restored: the machine replaces the old one, and the actions
    /// that waited for it run on it, in the order the core emitted them.
    fn on_restored(
        &mut self,
        index: LogIndex,
        restored: Result<Replica<M>, BadSnapshot>,
    ) -> Result<(), DriverError> {
        // The data came from a leader's snapshot of the same machine; anything else means the
        // cluster runs incompatible builds, and going on would diverge from the other
        // replicas.
        let replica = restored.map_err(|_| DriverError::BadSnapshot { index })?;
        let Some(installing) = self.installing.take() else {
            return Ok(());
        };
        let old = std::mem::replace(&mut self.replica, replica);
        // Freeing a large store takes about as long as building it.
        tokio::task::spawn_blocking(move || drop(old));
        self.learn_replica_addresses();
        tracing::info!(
            index = index.0,
            bytes = installing.bytes,
            "installed the leader's snapshot"
        );
        // A backup is taken at the core's applied index, which the machine reaches only
        // once every waiting action ran.
        let mut backups = Vec::new();
        for action in installing.deferred {
            match action {
                Action::Reply { request_id, .. }
                    if self.installing.is_none()
                        && matches!(self.waiters.get(&request_id), Some(Waiter::Backup(_))) =>
                {
                    backups.push(action);
                }
                action => self.run_action(action),
            }
        }
        for action in backups {
            self.run_action(action);
        }
        self.step_outputs.clear();
        for respond in installing.snapshot_requests {
            self.on_node_request(NodeRequest::Snapshot { respond })?;
        }
        self.maybe_snapshot();
        self.publish();
        Ok(())
    }

    /// The member addresses the machine's replica records (from a snapshot): peers (and
    /// redirects) can reach them.
    fn learn_replica_addresses(&self) {
        let addresses: Vec<(u64, String, String)> = self
            .replica
            .addresses()
            .map(|(id, raft, http)| (id, raft.to_string(), http.to_string()))
            .collect();
        for (id, raft, http) in addresses {
            self.learn_address(id, &raft, http);
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            // What the entry costs the log, its header included: tiny commands that build a
            // large state still add up.
            self.schedule.applied(entry.index, entry.size_bytes());
            if let EntryPayload::Command(bytes) = &entry.payload {
                let output = self.replica.apply_bytes(entry.index, bytes);
                match output {
                    NodeOutput::Invalid => tracing::warn!(
                        index = %entry.index,
                        "applied an entry that is not a valid command (or a member address that is not usable); it changed nothing"
                    ),
                    NodeOutput::AddressSet => self.learn_set_address(bytes),
                    NodeOutput::Machine(_) => {}
                }
                // Only this node's own proposals get a `Committed` reply; a follower catching up
                // on a long log has no one to hand outputs to.
                if !self.waiters.is_empty() {
                    self.step_outputs.push((entry.index, output));
                }
            }
        }
    }

    /// A committed `SetAddress` (the replica accepted its addresses): peers (and redirects)
    /// can reach that member from now on.
    fn learn_set_address(&self, command: &[u8]) {
        if let Some(crate::replica::NodeCommand::SetAddress {
            id,
            raft_addr,
            http_addr,
        }) = Replica::<M>::decode_command(command)
        {
            self.learn_address(id, &raft_addr, http_addr);
        }
    }

    fn learn_address(&self, id: u64, raft_addr: &str, http_addr: String) {
        let Ok(raft) = check_member_address(id, raft_addr, &http_addr) else {
            return;
        };
        let id = NodeId(id);
        let known = self.addresses.get(id);
        let new = known.is_none_or(|known| known.raft != raft || known.http != http_addr);
        if id != self.node.id() && new {
            tracing::info!(member = %id, raft = %raft, http = %http_addr, "member address");
            self.addresses.insert(id, raft, http_addr);
        }
    }

    /// The output the step recorded for the entry at `index`, taken out.
    fn take_output(&mut self, index: LogIndex) -> Option<NodeOutput<M::Output>> {
        let position = self
            .step_outputs
            .binary_search_by_key(&index, |(at, _)| *at)
            .ok()?;
        Some(std::mem::replace(
            &mut self.step_outputs[position].1,
            NodeOutput::Invalid,
        ))
    }

    fn on_reply(&mut self, request_id: RequestId, reply: Reply) {
        if matches!(reply, Reply::Accepted { .. }) {
            // The fate follows in a later step.
            return;
        }
        let Some(waiter) = self.waiters.remove(&request_id) else {
            return;
        };
        let fate = match reply {
            Reply::Accepted { .. } => return,
            Reply::Committed { index, term } => {
                inc(&self.metrics.proposals_committed);
                Outcome::Committed {
                    index,
                    term,
                    output: (),
                }
            }
            Reply::NotLeader { leader_hint } => {
                inc(&self.metrics.proposals_rejected);
                Outcome::NotLeader { leader_hint }
            }
            Reply::Busy => {
                inc(&self.metrics.proposals_rejected);
                Outcome::Busy
            }
            Reply::Dropped { index, term } => {
                inc(&self.metrics.proposals_dropped);
                Outcome::Dropped { index, term }
            }
            Reply::Unknown { index, term } => Outcome::Unknown { index, term },
            Reply::ChangeRejected { reason } => Outcome::ChangeRejected(reason),
            Reply::ReadReady { .. } => Outcome::Value(()),
        };
        // The client may have timed out already; its answer was then 504.
        match waiter {
            Waiter::Node(respond) => {
                let _ = respond.send(fate);
            }
            Waiter::Proposal(respond) => {
                let outcome = carrying(fate, |index| match self.take_output(index) {
                    Some(NodeOutput::Machine(output)) => output,
                    // The entry at the proposal's index is the proposal, which the handle
                    // encoded as a machine command; nothing else can be recorded there.
                    _ => M::invalid_output(),
                });
                let _ = respond.send(outcome);
            }
            Waiter::Read { query, respond } => {
                // The machine has applied through the read index: it answers now, in this
                // step.
                let outcome = carrying(fate, |_| self.replica.query(&query));
                let _ = respond.send(outcome);
            }
            Waiter::Backup(respond) => {
                let outcome = carrying(fate, |_| Box::new(self.backup()));
                let _ = respond.send(outcome);
            }
        }
    }

    /// The replicated state as of the applied index, with that index, its term and the
    /// membership there: its snapshot is taken now, and encoded by whoever finishes the backup.
    fn backup(&self) -> PendingBackup {
        let node = &self.node;
        let applied = node.applied_index();
        let snapshot = node.snapshot_meta();
        let first = snapshot.map_or(LogIndex(1), |meta| meta.last_included_index.next());
        let logged = node.entries(first, applied);
        let term = logged
            .last()
            .map(|entry| entry.term)
            .or_else(|| snapshot.map(|meta| meta.last_included_term))
            .unwrap_or(Term(0));
        // The membership of the latest membership entry applied, else the snapshot's, else
        // the initial voters'.
        let membership = logged
            .iter()
            .rev()
            .find_map(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => Some(membership.clone()),
                _ => None,
            })
            .or_else(|| snapshot.map(|meta| meta.membership.clone()))
            .unwrap_or_else(|| Membership::new(node.config().voters.iter().copied()));
        tracing::info!(index = applied.0, "backup taken");
        let snapshot = self.replica.snapshot();
        PendingBackup {
            image: BackupImage {
                cluster_id: self.identity.meta.cluster_id,
                index: applied,
                term,
                membership,
                data: Vec::new(),
            },
            encode: Box::new(move || {
                let mut data = Vec::new();
                Replica::<M>::encode_snapshot(&snapshot, &mut data);
                data
            }),
        }
    }

    /// Updates the gauges and logs role, term and leader changes.
    fn publish(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let node = &self.node;
        let seen = (node.role(), node.term(), node.leader_id());
        if seen != self.last_seen {
            let leader = seen
                .2
                .map_or_else(|| "none".to_string(), |id| id.to_string());
            tracing::info!(role = %seen.0, term = seen.1.0, %leader, "role/term change");
            self.last_seen = seen;
        }
        // Comparing two small sets per step; a change is rare and worth a line.
        if *node.membership() != self.last_membership {
            let membership = node.membership().clone();
            tracing::info!(
                voters = ?membership.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
                learners = ?membership.learners.iter().map(|id| id.0).collect::<Vec<_>>(),
                "membership change"
            );
            self.last_membership = membership;
        }
        self.metrics.set_role(node.role());
        self.metrics.term.store(node.term().0, Relaxed);
        self.metrics
            .commit_index
            .store(node.commit_index().0, Relaxed);
        self.metrics
            .applied_index
            .store(node.applied_index().0, Relaxed);
        self.metrics
            .last_log_index
            .store(node.last_log_index().0, Relaxed);
        self.feed.publish(node, self.snapshot_index);
    }

    /// Copies the status and at most `limit` command entries from `from` on, within
    /// `STATE_PAGE_BYTES_MAX` bytes of commands and `STATE_SCAN_MAX` entries looked at, so a
    /// page never holds the driver (and its heartbeats) for long.
    fn state_page(&self, from: LogIndex, limit: usize) -> StatePage {
        let node = &self.node;
        let mut page = StatePage {
            id: node.id().0,
            term: node.term().0,
            state: node.role().as_str(),
            leader: node.leader_id().map(|id| id.0),
            commit_index: node.commit_index().0,
            applied_index: node.applied_index().0,
            last_log_index: node.last_log_index().0,
            snapshot_index: self.snapshot_index.0,
            voters: node.membership().voters.iter().map(|id| id.0).collect(),
            learners: node.membership().learners.iter().map(|id| id.0).collect(),
            incarnation: node.incarnation().0,
            cluster_id: self.identity.meta.cluster_id,
            incarnations: node
                .membership()
                .incarnations
                .iter()
                .map(|(id, incarnation)| (id.0, incarnation.0))
                .collect(),
            returning: node.membership().returning.iter().map(|id| id.0).collect(),
            entries: Vec::new(),
            next: None,
        };
        let limit = limit.min(STATE_PAGE_MAX);
        if limit > 0 {
            let from = LogIndex(from.0.max(1));
            let entries = node.entries(from, node.last_log_index());
            (page.entries, page.next) = page_of(entries, limit, STATE_PAGE_BYTES_MAX);
        }
        page
    }
}

/// The fate the core told (`fate`, without a value) for a waiter that gets `value` with it:
/// the output of the command committed at an index, or a read's answer (`value` then gets
/// `LogIndex::ZERO`, unused).
fn carrying<T>(fate: Outcome<()>, value: impl FnOnce(LogIndex) -> T) -> Outcome<T> {
    match fate {
        Outcome::Committed {
            index,
            term,
            output: (),
        } => Outcome::Committed {
            index,
            term,
            output: value(index),
        },
        Outcome::Value(()) => Outcome::Value(value(LogIndex::ZERO)),
        Outcome::NotLeader { leader_hint } => Outcome::NotLeader { leader_hint },
        Outcome::Busy => Outcome::Busy,
        Outcome::Dropped { index, term } => Outcome::Dropped { index, term },
        Outcome::Unknown { index, term } => Outcome::Unknown { index, term },
        Outcome::ChangeRejected(reason) => Outcome::ChangeRejected(reason),
    }
}

/// The command entries of one state page from the start of `entries`: at most `limit` of them
/// and `bytes_max` bytes of commands (one more than that when the first alone is larger),
/// looking at no more than `STATE_SCAN_MAX` entries; and the index to continue from, when some
/// entries were not looked at.
fn page_of(entries: &[Entry], limit: usize, bytes_max: usize) -> (Vec<Entry>, Option<u64>) {
    let mut page: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    for (scanned, entry) in entries.iter().enumerate() {
        if scanned == STATE_SCAN_MAX {
            return (page, Some(entry.index.0));
        }
        let EntryPayload::Command(command) = &entry.payload else {
            continue;
        };
        let full = page.len() == limit || (!page.is_empty() && bytes + command.len() > bytes_max);
        if full {
            return (page, Some(entry.index.0));
        }
        bytes += command.len();
        page.push(entry.clone());
    }
    (page, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(index: u64, len: usize) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            payload: EntryPayload::Command(vec![b'x'; len].into()),
        }
    }

    #[test]
    fn state_pages_are_bounded_in_entries_bytes_and_scanning() {
        let log: Vec<Entry> = (1..=100).map(|index| command(index, 1000)).collect();
        let (page, next) = page_of(&log, 10, STATE_PAGE_BYTES_MAX);
        assert_eq!((page.len(), next), (10, Some(11)));
        // 4,500 bytes hold four 1,000-byte commands.
        let (page, next) = page_of(&log, 50, 4500);
        assert_eq!((page.len(), next), (4, Some(5)));
        // A command larger than the budget still makes a page of its own, so paging advances.
        let (page, next) = page_of(&log[7..], 50, 10);
        assert_eq!((page.len(), next), (1, Some(9)));
        let (page, next) = page_of(&log, STATE_PAGE_MAX, STATE_PAGE_BYTES_MAX);
        assert_eq!((page.len(), next), (100, None));
        // A long run of entries that are not commands is not scanned to its end.
        let mut noops: Vec<Entry> = (1..=STATE_SCAN_MAX as u64 + 5)
            .map(|index| Entry {
                index: LogIndex(index),
                term: Term(1),
                payload: EntryPayload::Noop,
            })
            .collect();
        noops.push(command(STATE_SCAN_MAX as u64 + 6, 1));
        let (page, next) = page_of(&noops, 10, STATE_PAGE_BYTES_MAX);
        assert_eq!((page.len(), next), (0, Some(STATE_SCAN_MAX as u64 + 1)));
    }

    mod install {
        use std::sync::atomic::AtomicBool;

        use raft_core::kv::Command;
        use raft_core::session::SessionCommand;
        use raft_core::{
            AppendEntries, Config, Envelope, Incarnation, InstallSnapshot, Message, SnapshotMeta,
        };

        use super::*;
        use crate::kv::{KvMachine, KvService};
        use crate::service::Service;
        use crate::storage::{spawn_writer, Creation};
        use crate::transport::Codec;

        const LEADER: NodeId = NodeId(2);

        /// The driver of node 1, a follower of node 2 (which the test plays), on `dir`, with
        /// snapshots off.
        fn follower(
            dir: &std::path::Path,
        ) -> (
            Driver<KvMachine>,
            mpsc::UnboundedReceiver<PersistCompletion>,
        ) {
            follower_snapshotting(dir, 0)
        }

        /// Same, taking snapshots on the schedule of `snapshot_entries`.
        fn follower_snapshotting(
            dir: &std::path::Path,
            snapshot_entries: u64,
        ) -> (
            Driver<KvMachine>,
            mpsc::UnboundedReceiver<PersistCompletion>,
        ) {
            let voters = [NodeId(1), LEADER];
            let creation = Creation {
                voters: voters.into_iter().collect(),
                incarnation: Incarnation(1),
                cluster_id: None,
            };
            let opened = storage::open(dir, NodeId(1), &creation).expect("a fresh data dir");
            let mut config = Config::new(NodeId(1), voters);
            config.incarnation = opened.meta.incarnation;
            let node = Node::restore(config, opened.durable).expect("a fresh state");
            let metrics = Arc::new(Metrics::default());
            let addresses = Arc::new(AddressBook::new());
            let transport = Transport::bind(
                "127.0.0.1:0".parse().expect("an address literal"),
                Codec::new(NodeId(1), None, 60_000),
                1,
                Arc::clone(&addresses),
                Arc::new(AtomicBool::new(false)),
                Arc::clone(&metrics),
            )
            .expect("a free UDP port");
            let (done, persisted) = mpsc::unbounded_channel();
            let storage = spawn_writer(opened.wal, None, done, Arc::clone(&metrics))
                .expect("the storage thread");
            let identity = Identity {
                data_dir: dir.to_path_buf(),
                meta: opened.meta,
                cluster: Arc::new(ClusterIdCell::new(None)),
            };
            let machine = || KvService::default().machine();
            let driver = Driver::new(
                node,
                identity,
                Replica::new(machine()),
                Box::new(machine),
                addresses,
                Arc::new(transport),
                storage,
                metrics,
                SnapshotPolicy {
                    entries: snapshot_entries,
                    log_bytes_max: u64::MAX,
                },
                0,
            );
            (driver, persisted)
        }

        fn put(key: &str, value: &str) -> Vec<u8> {
            crate::replica::machine_command_bytes::<KvMachine>(&SessionCommand::Plain(
                Command::Put {
                    key: key.to_string(),
                    value: value.as_bytes().to_vec(),
                },
            ))
        }

        fn from_leader(message: Message) -> Input {
            Input::Receive(Envelope {
                from: LEADER,
                to: NodeId(1),
                term: Term(1),
                incarnation: Incarnation(1),
                message,
            })
        }

        /// Steps every completion the storage thread reports until `persist_id`-free silence.
        async fn persist(
            driver: &mut Driver<KvMachine>,
            persisted: &mut mpsc::UnboundedReceiver<PersistCompletion>,
        ) {
            driver
                .storage
                .flush()
                .expect("the storage thread takes requests");
            let done = persisted.recv().await.expect("a completion");
            let persist_id = done.expect("the write succeeds");
            driver.on_persisted(persist_id).expect("a step");
        }

        fn append(index: u64, key: &str) -> Input {
            from_leader(Message::AppendEntries(AppendEntries {
                prev_log_index: LogIndex(index - 1),
                prev_log_term: Term(if index == 1 { 0 } else { 1 }),
                entries: vec![Entry {
                    index: LogIndex(index),
                    term: Term(1),
                    payload: EntryPayload::Command(put(key, "1").into()),
                }],
                leader_commit: LogIndex(0),
                read_round: 0,
            }))
        }

        /// A follower writes a turn's requests itself only once its storage thread has
        /// reported everything handed to it: a write of its own before that could land in the
        /// log ahead of the thread's, and its cumulative report would cover the thread's too.
        #[tokio::test]
        async fn a_follower_writes_inline_only_behind_what_its_storage_thread_reported() {
            let dir = tempfile::tempdir().expect("a temp dir");
            let (mut driver, mut persisted) = follower(dir.path());
            driver.step(append(1, "a")).expect("a step");
            driver
                .storage
                .flush()
                .expect("the storage thread takes requests");

            driver.step(append(2, "b")).expect("a step");
            driver.persist_inline().expect("no write fails");
            assert_eq!(driver.node.status().durable_index, LogIndex(0));

            let done = persisted.recv().await.expect("a completion");
            driver
                .on_persisted(done.expect("the write succeeds"))
                .expect("a step");
            assert_eq!(driver.node.status().durable_index, LogIndex(1));
            driver.persist_inline().expect("no write fails");
            assert_eq!(driver.node.status().durable_index, LogIndex(2));
            assert!(
                persisted.try_recv().is_err(),
                "entry 2 was written inline, not by the thread"
            );
        }

        /// The leader's snapshot is restored off the driver: until it is back, the machine
        /// the driver reads is the old one, whole, and the entries committed after the
        /// snapshot wait; then they apply to the restored machine, in order, and only then is
        /// a snapshot of the machine taken.
        #[tokio::test]
        async fn a_leaders_snapshot_is_restored_off_the_driver_and_later_entries_wait_for_it() {
            let dir = tempfile::tempdir().expect("a temp dir");
            let (mut driver, mut persisted) = follower(dir.path());
            // The leader's machine at index 5: a = 1.
            let mut leader = Replica::new(KvService::default().machine());
            leader.apply_bytes(LogIndex(3), &put("a", "1"));
            let data = leader.snapshot_bytes();
            let meta = SnapshotMeta {
                last_included_index: LogIndex(5),
                last_included_term: Term(1),
                membership: Membership::new([NodeId(1), LEADER]),
            };
            let install = InstallSnapshot {
                meta,
                total_bytes: data.len() as u64,
                offset: 0,
                data,
            };
            driver
                .step(from_leader(Message::InstallSnapshot(install)))
                .expect("a step");
            persist(&mut driver, &mut persisted).await;
            assert!(driver.installing.is_some());
            assert_eq!(driver.replica.query(&"a".to_string()), None);

            // Entry 6 (a = 2) commits and is durable while the snapshot is being restored.
            let append = AppendEntries {
                prev_log_index: LogIndex(5),
                prev_log_term: Term(1),
                entries: vec![Entry {
                    index: LogIndex(6),
                    term: Term(1),
                    payload: EntryPayload::Command(put("a", "2").into()),
                }],
                leader_commit: LogIndex(6),
                read_round: 0,
            };
            driver
                .step(from_leader(Message::AppendEntries(append)))
                .expect("a step");
            persist(&mut driver, &mut persisted).await;
            assert_eq!(driver.node.applied_index(), LogIndex(6));
            // The old machine, untouched: neither the snapshot nor entry 6 is in it.
            assert_eq!(driver.replica.query(&"a".to_string()), None);
            let (snapshot_tx, mut snapshot_rx) = oneshot::channel();
            driver
                .on_node_request(NodeRequest::Snapshot {
                    respond: snapshot_tx,
                })
                .expect("a request");
            assert!(driver.encoding.is_none(), "no snapshot of the old machine");
            assert!(
                snapshot_rx.try_recv().is_err(),
                "answered only after the install"
            );

            let mut restored = driver.restored_rx.take().expect("the receiver");
            let (index, machine) = restored.recv().await.expect("the restored machine");
            assert_eq!(index, LogIndex(5));
            driver
                .on_restored(index, machine)
                .expect("a valid snapshot");
            assert!(driver.installing.is_none());
            // The snapshot, then entry 6 on top of it.
            assert_eq!(driver.replica.query(&"a".to_string()), Some(b"2".to_vec()));
            assert_eq!(driver.encoding.as_ref().map(|e| e.index), Some(LogIndex(6)));
            drop(snapshot_rx);
        }

        /// A store that grows by every write is snapshotted ever more rarely: each snapshot
        /// waits until the entries applied since add up to the one before.
        #[tokio::test]
        async fn a_growing_store_is_snapshotted_once_the_log_holds_the_last_snapshots_size() {
            let dir = tempfile::tempdir().expect("a temp dir");
            let every = 20;
            let (mut driver, mut persisted) = follower_snapshotting(dir.path(), every);
            let mut encoded = driver.encoded_rx.take().expect("the receiver");
            let value = "v".repeat(100);
            let mut taken = Vec::new();
            for index in 1..=400 {
                let append = AppendEntries {
                    prev_log_index: LogIndex(index - 1),
                    prev_log_term: Term(u64::from(index > 1)),
                    entries: vec![Entry {
                        index: LogIndex(index),
                        term: Term(1),
                        payload: EntryPayload::Command(put(&format!("key-{index}"), &value).into()),
                    }],
                    leader_commit: LogIndex(index),
                    read_round: 0,
                };
                driver
                    .step(from_leader(Message::AppendEntries(append)))
                    .expect("a step");
                persist(&mut driver, &mut persisted).await;
                if driver.encoding.is_some() {
                    let (at, data) = encoded.recv().await.expect("the snapshot's bytes");
                    driver.on_encoded(at, data).expect("a step");
                    taken.push(at.0);
                }
            }
            assert_eq!(driver.node.applied_index(), LogIndex(400));
            // Every 20 entries alone would be 20 snapshots; each one here waits for about
            // as many entries as the store held at the one before.
            assert!(taken.len() >= 4 && taken.len() <= 7, "{taken:?}");
            for pair in taken.windows(2) {
                assert!(pair[1] - pair[0] >= every, "{taken:?}");
                assert!(pair[1] >= pair[0] * 3 / 2, "{taken:?}");
            }
            assert_eq!(driver.snapshot_index, LogIndex(*taken.last().expect("one")));
        }

        #[tokio::test]
        async fn bytes_that_are_no_snapshot_of_the_machine_stop_the_driver() {
            let dir = tempfile::tempdir().expect("a temp dir");
            let (mut driver, mut persisted) = follower(dir.path());
            let install = InstallSnapshot {
                meta: SnapshotMeta {
                    last_included_index: LogIndex(5),
                    last_included_term: Term(1),
                    membership: Membership::new([NodeId(1), LEADER]),
                },
                total_bytes: 3,
                offset: 0,
                data: vec![0xff; 3],
            };
            driver
                .step(from_leader(Message::InstallSnapshot(install)))
                .expect("a step");
            persist(&mut driver, &mut persisted).await;
            let mut restored = driver.restored_rx.take().expect("the receiver");
            let (index, machine) = restored.recv().await.expect("the restore's result");
            assert!(matches!(
                driver.on_restored(index, machine),
                Err(DriverError::BadSnapshot { index: LogIndex(5) })
            ));
        }
    }
}
