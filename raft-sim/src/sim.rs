//! The simulator: a cluster of `raft-core` nodes driven by a discrete-event loop over virtual
//! time, with the network, disk and client models, fault controls, and the checker run after
//! every event.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use raft_core::{
    Action, AppendResult, Config, Entry, EntryPayload, Envelope, Incarnation, Input, LogIndex,
    Membership, MembershipChange, Message, Node, NodeId, PersistRequest, Reply, RequestId, Role,
    Term,
};

use crate::checker::{Checker, Observed, StepEffects, Violation};
use crate::client::{ClientConfig, Clients, FollowUp, Op};
use crate::disk::{Disk, DiskConfig};
use crate::event::{Event, EventQueue};
use crate::machine::{Machine, Machines, SimMachine};
use crate::network::{Network, NetworkConfig, Route};
use crate::rng::{sub_seed, SimRng};
use crate::trace::{ClusterView, Detail, DropReason, Trace, TraceEvent, TraceKind};

/// Everything that shapes a run besides the script or fault schedule.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u64,
    /// Nodes 1..=voters form the initial cluster; the others start with no voters configured
    /// (`Config::voters` empty) and wait to be added through a membership change.
    pub voters: u64,
    pub network: NetworkConfig,
    pub disk: DiskConfig,
    /// Nodes whose disk has a latency of its own instead of `disk`.
    pub node_disk: BTreeMap<NodeId, DiskConfig>,
    pub clients: ClientConfig,
    /// Milliseconds per tick of each node (index 0 is node 1); missing entries use 10 ms.
    /// Different values simulate clock rate skew.
    pub tick_ms: Vec<u64>,
    /// The node configuration template; `id` and `rng_seed` are set per node.
    pub raft: Config,
    /// Events kept for failure reports.
    pub trace_tail: usize,
    /// New leaders crash soon after taking office, now and then.
    pub leader_crash: Option<LeaderCrash>,
    /// A resumed node first gets one tick for each it missed while paused: its driver measures
    /// the time that passed. Without, the ticks are lost, as with a driver that skips missed
    /// ticks, and the node's clock stood still while it was frozen. Lease reads need the
    /// former: a lease assumes every clock runs at nearly the same rate, and a clock that stops
    /// while the leader is frozen lets it serve reads from a lease that ran out long ago.
    pub resume_with_missed_ticks: bool,
    /// Known bugs every node of the run has reintroduced, in every incarnation (the bug
    /// catalogue; empty otherwise).
    #[cfg(feature = "catalogue")]
    pub bugs: Vec<raft_core::bugs::Bug>,
}

impl SimConfig {
    #[must_use]
    pub fn new(seed: u64, nodes: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes,
            voters: nodes,
            network: NetworkConfig::default(),
            disk: DiskConfig::default(),
            node_disk: BTreeMap::new(),
            clients: ClientConfig::default(),
            tick_ms: Vec::new(),
            raft: Config::new(NodeId(1), (1..=nodes.max(1)).map(NodeId)),
            trace_tail: 40,
            leader_crash: None,
            resume_with_missed_ticks: false,
            #[cfg(feature = "catalogue")]
            bugs: Vec::new(),
        }
    }

    /// The default tick length, at which the core's default timeouts mean heartbeats every
    /// 50 ms and elections after 300-600 ms.
    pub const TICK_MS_DEFAULT: u64 = 10;

    #[must_use]
    pub fn tick_ms_of(&self, node: NodeId) -> u64 {
        usize::try_from(node.0)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.tick_ms.get(i).copied())
            .unwrap_or(Self::TICK_MS_DEFAULT)
            .max(1)
    }
}

/// Crashes of new leaders: with `probability`, a node that takes office crashes while the
/// write of its first entry is pending: in the middle of that step (with probability
/// `mid_step`) or within `delay_ms_max` after it; it restarts within `restart_ms_max`.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderCrash {
    pub probability: f64,
    pub mid_step: f64,
    pub delay_ms_max: u64,
    pub restart_ms_max: u64,
}

/// When a crash armed on a node's next `Persist` happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashTiming {
    /// In the middle of carrying out that step: its `Persist` went to the disk (and will be
    /// lost), some of its messages left and the rest never do, its replies are never given.
    /// A driver executes a step's actions one after another, so a process can die between
    /// any two of them.
    MidStep,
    /// This many milliseconds after the step.
    After(u64),
}

/// Why a run stopped early: a safety violation or a liveness failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    pub event: u64,
    pub time_ms: u64,
    pub invariant: &'static str,
    pub detail: String,
    pub trace_tail: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invariant {} violated at event {} ({} ms), seed {}",
            self.invariant, self.event, self.time_ms, self.seed
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(f, "  last {} events:", self.trace_tail.len())?;
        for line in &self.trace_tail {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Messages sent per (sender, message kind): (messages, entries carried).
pub type MessageCounts = BTreeMap<(NodeId, &'static str), (u64, u64)>;

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    NeverStarted,
    Running,
    Paused,
    Crashed,
    Stopped,
}

impl Life {
    /// The name traces use.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Life::NeverStarted => "never_started",
            Life::Running => "running",
            Life::Paused => "paused",
            Life::Crashed => "crashed",
            Life::Stopped => "stopped",
        }
    }
}

#[derive(Debug)]
struct Slot {
    id: NodeId,
    tick_ms: u64,
    node: Option<Node>,
    life: Life,
    /// Inputs that arrived while paused, in arrival order.
    inbox: VecDeque<Input>,
    /// Bumped on every start and crash: messages and disk completions for an older incarnation
    /// are lost.
    incarnation: u64,
    /// Bumped whenever the tick chain must stop (pause, crash, stop).
    tick_generation: u64,
    disk: Disk,
    /// Armed by `crash_after_next_persist`: crash when the next `Persist` is issued, then
    /// restart after the delay given, if any.
    crash_after_persist: Option<(CrashTiming, Option<u64>)>,
    /// When the node was last paused.
    paused_at_ms: u64,
    /// The server's incarnation (`Config::incarnation`): drawn again when its disk is wiped.
    server_incarnation: Incarnation,
    /// How often its disk was wiped.
    wipes: u64,
    /// It starts with no voters configured: a new server, or one that lost its state and was
    /// started as one (raft-net's `--initial-cluster-state existing`).
    as_new_server: bool,
}

/// An error from a control command (bad node id, node in the wrong state, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError(pub String);

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ControlError {}

#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    now_ms: u64,
    events: u64,
    queue: EventQueue,
    slots: Vec<Slot>,
    pub network: Network,
    disk_rng: SimRng,
    workload_rng: SimRng,
    pub clients: Clients,
    checker: Checker,
    trace: Trace,
    failure: Option<Failure>,
    /// Human-readable notes (elections, replies to scenario proposals) for transcripts.
    notes: Option<Vec<String>>,
    /// Messages sent per (sender, kind): (messages, entries carried). Counted only for
    /// transcripts, since a map update per message would slow exploration down.
    sent: Option<MessageCounts>,
    /// AppendEntries rejections and gap reports delivered, counted with `sent`.
    rejects_delivered: u64,
    gaps_delivered: u64,
    /// The latest membership known to be committed (applied by some node, or carried by an
    /// installed snapshot), and the index that set it.
    committed_membership: (LogIndex, Membership),
    /// Membership change requests: the node asked, the change, and its last reply.
    changes: BTreeMap<RequestId, ChangeRecord>,
    /// The buffer `Node::step_into` fills, drained after each step and reused.
    actions: Vec<Action>,
    /// Timed crashes of an older epoch were cancelled.
    crash_epoch: u64,
    /// Draws for the timed faults the simulator makes itself (`SimConfig::leader_crash`).
    fault_rng: SimRng,
    /// Every node's replica of a real state machine, when one runs (`run_machine`); the
    /// simulator's own machine (the log's chain hash) otherwise.
    machines: Option<Box<dyn Machines>>,
}

/// One membership change request and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    pub via: NodeId,
    pub change: MembershipChange,
    /// The latest reply: `Accepted` until the final one arrives.
    pub reply: Option<Reply>,
}

/// Membership change requests get ids from their own range, apart from client requests.
const CHANGE_REQUEST_ID_BASE: u64 = 1 << 62;

/// The incarnation of `id` after `wipes` wipes of its disk, from its own sub-seed.
/// Each wipe draws a greater one, as a driver's creation time would be.
fn server_incarnation(seed: u64, id: NodeId, wipes: u64) -> Incarnation {
    let random = sub_seed(seed, "incarnation", id.0 * 1_000_000 + wipes) & ((1 << 48) - 1);
    Incarnation((wipes << 48) | random)
}

impl Sim {
    #[must_use]
    pub fn new(config: SimConfig) -> Sim {
        let seed = config.seed;
        let slots = (1..=config.nodes)
            .map(|id| Slot {
                id: NodeId(id),
                tick_ms: config.tick_ms_of(NodeId(id)),
                node: None,
                life: Life::NeverStarted,
                inbox: VecDeque::new(),
                incarnation: 0,
                tick_generation: 0,
                disk: Disk::with_latency(config.node_disk.get(&NodeId(id)).cloned()),
                crash_after_persist: None,
                paused_at_ms: 0,
                server_incarnation: server_incarnation(seed, NodeId(id), 0),
                wipes: 0,
                as_new_server: false,
            })
            .collect();
        let node_count = usize::try_from(config.nodes).unwrap_or(0);
        Sim {
            network: Network::new(
                config.network.clone(),
                node_count,
                sub_seed(seed, "network", 0),
            ),
            disk_rng: SimRng::new(sub_seed(seed, "disk", 0)),
            workload_rng: SimRng::new(sub_seed(seed, "workload", 0)),
            clients: Clients::new(config.clients.clone(), config.nodes),
            checker: Checker::new(),
            trace: Trace::new(config.trace_tail),
            queue: EventQueue::default(),
            now_ms: 0,
            events: 0,
            slots,
            failure: None,
            notes: None,
            sent: None,
            rejects_delivered: 0,
            gaps_delivered: 0,
            committed_membership: (
                LogIndex::ZERO,
                Membership::new((1..=config.voters).map(NodeId)),
            ),
            changes: BTreeMap::new(),
            actions: Vec::new(),
            crash_epoch: 0,
            fault_rng: SimRng::new(sub_seed(seed, "timed-faults", 0)),
            machines: None,
            config,
        }
    }

    /// Gives every node a replica of a real state machine, made by `make`, instead of the
    /// simulator's own (see [`crate::machine`]): before the first node starts.
    pub fn run_machine<M: SimMachine>(&mut self, make: impl Fn() -> M + 'static) {
        self.set_machine(Machine::new(make));
    }

    /// [`Sim::run_machine`] with a machine already built.
    pub fn set_machine(&mut self, machine: Machine) {
        self.machines = Some(machine.0);
        self.checker.set_machine_snapshots();
    }

    /// Whether the nodes run a machine set by [`Sim::run_machine`] rather than the
    /// simulator's own.
    #[must_use]
    pub fn runs_machine(&self) -> bool {
        self.machines.is_some()
    }

    /// A node's replica of the machine set by [`Sim::run_machine`], in words.
    #[must_use]
    pub fn describe_machine(&self, id: NodeId) -> Option<String> {
        self.machines.as_ref()?.describe(id)
    }

    // ---- read-only view ----

    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Events processed so far (ticks, deliveries, disk completions, client arrivals).
    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }

    #[must_use]
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.trace.hash()
    }

    pub fn trace_mut(&mut self) -> &mut Trace {
        &mut self.trace
    }

    #[must_use]
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    #[must_use]
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.slots.iter().map(|s| s.id).collect()
    }

    /// The running (or paused) node with this id.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.slot(id).ok().and_then(|s| s.node.as_ref())
    }

    pub fn life(&self, id: NodeId) -> Result<Life, ControlError> {
        self.slot(id).map(|s| s.life)
    }

    /// Ids of nodes that are running or paused.
    #[must_use]
    pub fn up_nodes(&self) -> Vec<NodeId> {
        self.slots
            .iter()
            .filter(|s| s.node.is_some())
            .map(|s| s.id)
            .collect()
    }

    /// The leader of the highest term among up members of the committed membership, if that
    /// term has one. Servers outside it are left out: a removed server that never learned of
    /// its removal may campaign in ever higher terms, and the members rightly ignore it.
    #[must_use]
    pub fn current_leader(&self) -> Option<NodeId> {
        let members = &self.committed_membership.1;
        let nodes = self
            .slots
            .iter()
            .filter(|s| members.contains(s.id))
            .filter_map(|s| s.node.as_ref());
        let max_term = nodes.clone().map(Node::term).max()?;
        nodes
            .filter(|n| n.term() == max_term && n.role() == Role::Leader)
            .map(Node::id)
            .next()
    }

    /// True when every running member of the committed membership has committed `index`.
    #[must_use]
    pub fn committed_everywhere(&self, index: LogIndex) -> bool {
        let members = &self.committed_membership.1;
        let mut running = self
            .slots
            .iter()
            .filter(|s| s.life == Life::Running && members.contains(s.id))
            .filter_map(|s| s.node.as_ref())
            .peekable();
        running.peek().is_some() && running.all(|n| n.commit_index() >= index)
    }

    /// True when every member of the committed membership is running, all their logs end at
    /// the same index, and every one has committed and applied all of it. Servers outside the
    /// membership (never added, or removed) are not expected to follow.
    #[must_use]
    pub fn converged(&self) -> bool {
        let members = &self.committed_membership.1;
        let mut nodes = Vec::with_capacity(self.slots.len());
        for slot in self.slots.iter().filter(|s| members.contains(s.id)) {
            match (&slot.node, slot.life) {
                (Some(node), Life::Running) => nodes.push(node),
                _ => return false,
            }
        }
        let Some(last) = nodes.first().map(|n| n.last_log_index()) else {
            return false;
        };
        nodes.iter().all(|n| {
            n.last_log_index() == last && n.commit_index() == last && n.applied_index() == last
        })
    }

    /// Starts collecting notes and message counts for a transcript.
    pub fn collect_notes(&mut self) {
        self.notes = Some(Vec::new());
        self.sent = Some(BTreeMap::new());
    }

    /// Messages sent so far per (sender, kind) as (messages, entries carried), when collected.
    #[must_use]
    pub fn messages_sent(&self) -> Option<&MessageCounts> {
        self.sent.as_ref()
    }

    /// AppendEntries rejections delivered to their leader so far, when collected.
    #[must_use]
    pub fn append_rejects_delivered(&self) -> Option<u64> {
        self.sent.as_ref().map(|_| self.rejects_delivered)
    }

    /// Gap reports (`AppendResult::Gap`) delivered to their leader so far, when collected.
    #[must_use]
    pub fn append_gaps_delivered(&self) -> Option<u64> {
        self.sent.as_ref().map(|_| self.gaps_delivered)
    }

    pub fn take_notes(&mut self) -> Vec<String> {
        self.notes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn note(&mut self, text: impl FnOnce() -> String) {
        if let Some(notes) = &mut self.notes {
            notes.push(text());
        }
    }

    fn slot(&self, id: NodeId) -> Result<&Slot, ControlError> {
        usize::try_from(id.0)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.slots.get(i))
            .ok_or_else(|| {
                ControlError(format!(
                    "no node {id} in a {}-node cluster",
                    self.slots.len()
                ))
            })
    }

    fn index_of(&self, id: NodeId) -> Result<usize, ControlError> {
        self.slot(id)?;
        // `slot` succeeded, so the id is 1..=len.
        Ok(usize::try_from(id.0 - 1).unwrap_or(0))
    }

    fn record(&mut self, kind: TraceKind) {
        if self.trace.detailed() {
            // Controls change lives and links before or after recording themselves, so the
            // view is offered before every event; sinks keep only changes.
            let view = self.cluster_view();
            self.trace
                .detail(self.events, self.now_ms, Detail::Cluster(&view));
        }
        self.trace.record(TraceEvent {
            seq: self.events,
            time_ms: self.now_ms,
            kind,
        });
    }

    fn fail(&mut self, violation: Violation) {
        if self.failure.is_some() {
            return;
        }
        if self.trace.detailed() {
            let detail = Detail::Violation {
                invariant: violation.invariant,
                detail: &violation.detail,
            };
            self.trace.detail(self.events, self.now_ms, detail);
        }
        self.failure = Some(Failure {
            seed: self.config.seed,
            event: self.events,
            time_ms: self.now_ms,
            invariant: violation.invariant,
            detail: violation.detail,
            trace_tail: self.trace.tail_lines(),
        });
    }

    /// Reports a liveness failure found by a driver of the simulation.
    pub fn fail_liveness(&mut self, invariant: &'static str, detail: String) {
        self.fail(Violation { invariant, detail });
    }

    /// The end-of-run checks: every acknowledged write is applied on a majority of the
    /// committed membership's voters, no write reported dropped was committed, and the client
    /// history is linearizable.
    pub fn check_history(&mut self) {
        let voters = self.committed_membership.1.voters.clone();
        let result = self
            .checker
            .check_acked_applied_on_majority(&voters)
            .and_then(|()| self.checker.check_dropped_not_committed())
            .and_then(|()| crate::history::check_linearizable(self.clients.history()));
        if let Err(violation) = result {
            self.fail(violation);
        }
    }

    // ---- the event loop ----

    /// Processes the next event if it is due by `deadline_ms`; false when there is none.
    pub fn step_event(&mut self, deadline_ms: u64) -> bool {
        if self.failure.is_some() || self.queue.peek_time().is_none_or(|t| t > deadline_ms) {
            return false;
        }
        let Some((time_ms, event)) = self.queue.pop() else {
            return false;
        };
        self.now_ms = self.now_ms.max(time_ms);
        self.dispatch(event);
        true
    }

    /// Runs every event up to `deadline_ms`, then sets the clock there.
    pub fn run_until_time(&mut self, deadline_ms: u64) {
        while self.step_event(deadline_ms) {}
        if self.failure.is_none() {
            self.now_ms = self.now_ms.max(deadline_ms);
        }
    }

    /// Runs until `done` holds (checked before and after each event) or `deadline_ms` passes.
    pub fn run_until(&mut self, deadline_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.step_event(deadline_ms) {
                if self.failure.is_none() {
                    self.now_ms = self.now_ms.max(deadline_ms);
                }
                return false;
            }
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick { node, generation } => self.on_tick(node, generation),
            Event::Deliver {
                envelope,
                incarnation,
            } => self.on_deliver(envelope, incarnation),
            Event::DiskDone {
                node,
                persist_id,
                incarnation,
            } => {
                let Ok(i) = self.index_of(node) else { return };
                let slot = &mut self.slots[i];
                if slot.incarnation != incarnation || slot.disk.is_held() {
                    // Lost to a crash, or held: `release_disk` completes held writes.
                    return;
                }
                if let Some(until) = slot.disk.stalled_until(self.now_ms) {
                    let event = Event::DiskDone {
                        node,
                        persist_id,
                        incarnation,
                    };
                    self.queue.push(until, event);
                    return;
                }
                self.complete_write(i, persist_id);
            }
            Event::Crash {
                node,
                incarnation,
                restart_after_ms,
                epoch,
            } => {
                if epoch == self.crash_epoch {
                    self.on_timed_crash(node, incarnation, restart_after_ms);
                }
            }
            Event::Restart { node } => {
                if self.life(node) == Ok(Life::Crashed) {
                    let _ = self.start(node);
                }
            }
            Event::ClientWake { client } => self.on_client_wake(client),
            Event::ClientArrive { invocation } => {
                let Ok(i) = self.index_of(invocation.node) else {
                    return;
                };
                if self.slots[i].node.is_none() {
                    return;
                }
                self.events += 1;
                self.record(TraceKind::Propose {
                    node: invocation.node,
                    request_id: invocation.request_id,
                });
                let request_id = invocation.request_id;
                let input = match invocation.op {
                    Op::Write(command) => Input::Propose {
                        request_id,
                        command,
                    },
                    Op::Read => {
                        self.checker.on_read_received(request_id);
                        Input::Read { request_id }
                    }
                };
                self.input(i, input);
            }
            Event::ClientTimeout { request_id } => {
                let follow_up = self.clients.on_timeout(request_id, self.now_ms);
                self.follow_up(follow_up);
            }
        }
    }

    /// Completes the writes of node `i` up to `persist_id` and tells the node.
    fn complete_write(&mut self, i: usize, persist_id: raft_core::PersistId) {
        let slot = &mut self.slots[i];
        if !slot.disk.complete(persist_id) {
            return;
        }
        let node = slot.id;
        let term = slot.disk.durable.hard_state.current_term;
        self.checker.on_durable_term(node, term);
        self.events += 1;
        self.record(TraceKind::Persisted { node, persist_id });
        self.input(i, Input::PersistDone { persist_id });
    }

    /// Node `i` just took office: with `SimConfig::leader_crash`, maybe crash it soon.
    fn maybe_crash_new_leader(&mut self, i: usize) {
        let Some(crash) = &self.config.leader_crash else {
            return;
        };
        if !self.fault_rng.chance(crash.probability) {
            return;
        }
        // Taking office always writes the new term's no-op, so the crash is armed on that
        // write: in the middle of this very step, or soon after it.
        let timing = if self.fault_rng.chance(crash.mid_step) {
            CrashTiming::MidStep
        } else {
            CrashTiming::After(self.fault_rng.between(0, crash.delay_ms_max))
        };
        let restart_after_ms = self.fault_rng.between(1, crash.restart_ms_max);
        self.slots[i].crash_after_persist = Some((timing, Some(restart_after_ms)));
    }

    /// `id` dies while carrying out a step whose `Persist` it has just issued: a random
    /// prefix of the step's messages leaves, the rest and its replies never do.
    fn crash_mid_step(&mut self, id: NodeId, sends: Vec<Envelope>, restart_after_ms: Option<u64>) {
        let total = sends.len();
        let sent = usize::try_from(self.fault_rng.between(0, total as u64)).unwrap_or(total);
        for envelope in sends.into_iter().take(sent) {
            self.send(envelope);
        }
        self.record(TraceKind::Control(format!(
            "{id} crashes after issuing its Persist, with {sent} of {total} messages sent"
        )));
        let _ = self.crash(id);
        if let Some(ms) = restart_after_ms {
            self.queue
                .push(self.now_ms + ms, Event::Restart { node: id });
        }
    }

    /// A crash armed by [`Sim::crash_after_next_persist`] is due.
    fn on_timed_crash(&mut self, node: NodeId, incarnation: u64, restart_after_ms: Option<u64>) {
        let Ok(i) = self.index_of(node) else { return };
        let slot = &self.slots[i];
        if slot.incarnation != incarnation || slot.node.is_none() {
            return;
        }
        let pending = slot.disk.pending_count();
        self.record(TraceKind::Control(format!(
            "{node} crashes with {pending} writes pending"
        )));
        let _ = self.crash(node);
        if let Some(ms) = restart_after_ms {
            self.queue.push(self.now_ms + ms, Event::Restart { node });
        }
    }

    fn on_tick(&mut self, node: NodeId, generation: u64) {
        let Ok(i) = self.index_of(node) else { return };
        let slot = &self.slots[i];
        if slot.tick_generation != generation || slot.life != Life::Running {
            return;
        }
        let next = self.now_ms + slot.tick_ms;
        self.queue.push(next, Event::Tick { node, generation });
        self.events += 1;
        self.record(TraceKind::Tick { node });
        self.step_node(i, Input::Tick);
    }

    fn on_deliver(&mut self, envelope: Envelope, incarnation: Option<u64>) {
        let (from, to) = (envelope.from, envelope.to);
        let kind = envelope.message.kind();
        let Ok(i) = self.index_of(to) else { return };
        let slot = &self.slots[i];
        if incarnation.is_some_and(|sent_to| sent_to != slot.incarnation) || slot.node.is_none() {
            self.record(TraceKind::Drop {
                from,
                to,
                kind,
                reason: DropReason::Down,
            });
            return;
        }
        // A partition made while the message was in flight still stops it.
        if self.network.is_cut(from, to) {
            self.record(TraceKind::Drop {
                from,
                to,
                kind,
                reason: DropReason::Cut,
            });
            return;
        }
        if self.network.is_held(from, to) {
            self.network.push_held(envelope);
            return;
        }
        self.deliver_now(i, envelope);
    }

    fn deliver_now(&mut self, i: usize, envelope: Envelope) {
        self.events += 1;
        if self.sent.is_some() {
            if let Message::AppendEntriesResponse(response) = &envelope.message {
                match response.result {
                    AppendResult::Reject { .. } => self.rejects_delivered += 1,
                    AppendResult::Gap { .. } => self.gaps_delivered += 1,
                    AppendResult::Success { .. } | AppendResult::StaleTerm => {}
                }
            }
        }
        self.record(TraceKind::Deliver {
            from: envelope.from,
            to: envelope.to,
            kind: envelope.message.kind(),
            term: envelope.term,
        });
        self.input(i, Input::Receive(envelope));
    }

    /// Feeds an input to a running node, or queues it on a paused one.
    fn input(&mut self, i: usize, input: Input) {
        match self.slots[i].life {
            Life::Running => self.step_node(i, input),
            Life::Paused => self.slots[i].inbox.push_back(input),
            Life::NeverStarted | Life::Crashed | Life::Stopped => {}
        }
    }

    /// One `step`, then action routing, then every checker.
    fn step_node(&mut self, i: usize, input: Input) {
        let Some(node) = self.slots[i].node.as_mut() else {
            return;
        };
        let id = node.id();
        let before = Observed::of(node);
        let mut actions = std::mem::take(&mut self.actions);
        node.step_into(input, &mut actions);
        let mut persist: Option<PersistRequest> = None;
        let mut sends = Vec::new();
        let mut applied: Vec<Entry> = Vec::new();
        let mut applied_snapshot = None;
        let mut replies: Vec<(RequestId, Reply)> = Vec::new();
        for action in actions.drain(..) {
            match action {
                Action::Persist(request) => persist = Some(request),
                Action::Send(envelope) => sends.push(envelope),
                // A step applies at most once; take its entries without copying them.
                Action::Apply { entries } if applied.is_empty() => applied = entries,
                Action::Apply { entries } => applied.extend(entries),
                Action::ApplySnapshot { snapshot } => applied_snapshot = Some(snapshot),
                Action::Reply { request_id, reply } => replies.push((request_id, reply)),
            }
        }
        self.actions = actions;
        observe_committed_membership(
            &mut self.committed_membership,
            &applied,
            applied_snapshot.as_ref(),
        );
        let effects = StepEffects {
            persisted_snapshot: persist
                .as_ref()
                .and_then(|p| p.snapshot.as_ref())
                .map(|s| (s.meta.last_included_index, s.meta.last_included_term)),
            splice: persist.as_ref().and_then(|p| p.log.as_ref()),
            applied_snapshot: applied_snapshot.as_ref().map(|s| {
                (
                    s.meta.last_included_index,
                    s.meta.last_included_term,
                    s.data.as_slice(),
                )
            }),
            applied: &applied,
            replies: &replies,
        };
        let clients = &self.clients;
        let commands = |request_id| clients.record(request_id).map(|r| r.payload_hash);
        let mut result = self.checker.after_step(node, before, &effects, commands);
        if let (Ok(()), Some(machines)) = (&result, &mut self.machines) {
            let installed = effects
                .applied_snapshot
                .map(|(index, _, data)| (index, data));
            result = machines.after_step(id, installed, &applied);
        }
        if self.trace.detailed() {
            let persist = persist.as_ref();
            let detail = Detail::Step { node, persist };
            self.trace.detail(self.events, self.now_ms, detail);
        }
        let (role, term) = (node.role(), node.term());
        if role != before.role || (role != Role::Follower && term != before.term) {
            self.record(TraceKind::Role {
                node: id,
                role,
                term,
            });
            if role == Role::Leader {
                self.note(|| format!("{id} became LEADER in {term}"));
                self.maybe_crash_new_leader(i);
            }
        }
        if let Err(violation) = result {
            self.fail(violation);
            return;
        }
        if let Some(request) = persist {
            let persist_id = request.persist_id;
            let done = self.slots[i].disk.submit(
                request,
                self.now_ms,
                &self.config.disk,
                &mut self.disk_rng,
            );
            let incarnation = self.slots[i].incarnation;
            self.queue.push(
                done,
                Event::DiskDone {
                    node: id,
                    persist_id,
                    incarnation,
                },
            );
            match self.slots[i].crash_after_persist.take() {
                Some((CrashTiming::After(delay_ms), restart_after_ms)) => {
                    let crash = Event::Crash {
                        node: id,
                        incarnation,
                        restart_after_ms,
                        epoch: self.crash_epoch,
                    };
                    self.queue.push(self.now_ms + delay_ms, crash);
                }
                Some((CrashTiming::MidStep, restart_after_ms)) => {
                    self.crash_mid_step(id, sends, restart_after_ms);
                    return;
                }
                None => {}
            }
        }
        for envelope in sends {
            self.send(envelope);
        }
        for (request_id, reply) in replies {
            self.on_reply(id, request_id, reply);
        }
    }

    fn send(&mut self, envelope: Envelope) {
        let (from, to) = (envelope.from, envelope.to);
        let kind = envelope.message.kind();
        if let Some(sent) = &mut self.sent {
            let entries = match &envelope.message {
                Message::AppendEntries(request) => request.entries.len() as u64,
                _ => 0,
            };
            let count = sent.entry((from, kind)).or_default();
            count.0 += 1;
            count.1 += entries;
        }
        let reason = match self.network.route(from, to) {
            Route::Deliver { first, second } => {
                let stale = self
                    .network
                    .stale_copy(matches!(envelope.message, Message::TimeoutNow));
                if self.trace.detailed() {
                    let now = self.now_ms;
                    let at = |ms: Option<u64>| ms.map(|ms| now + ms);
                    let arrive_ms = [Some(now + first), at(second), at(stale)];
                    let detail = Detail::Send {
                        envelope: &envelope,
                        arrive_ms,
                    };
                    self.trace.detail(self.events, now, detail);
                }
                let incarnation = self.slot(to).ok().map(|s| s.incarnation);
                if let Some(stale) = stale {
                    let copy = Event::Deliver {
                        envelope: envelope.clone(),
                        incarnation: None,
                    };
                    self.queue.push(self.now_ms + stale, copy);
                }
                if let Some(second) = second {
                    let copy = Event::Deliver {
                        envelope: envelope.clone(),
                        incarnation,
                    };
                    self.queue.push(self.now_ms + second, copy);
                }
                self.queue.push(
                    self.now_ms + first,
                    Event::Deliver {
                        envelope,
                        incarnation,
                    },
                );
                return;
            }
            Route::Cut => DropReason::Cut,
            Route::Lost => DropReason::Loss,
        };
        self.record(TraceKind::Drop {
            from,
            to,
            kind,
            reason,
        });
    }

    fn on_reply(&mut self, node: NodeId, request_id: RequestId, reply: Reply) {
        if let Some(record) = self.changes.get_mut(&request_id) {
            let change = record.change;
            record.reply = Some(reply.clone());
            self.note(|| {
                format!(
                    "{node} replied to {}: {}",
                    describe_change(change),
                    describe_reply(&reply)
                )
            });
            self.record(TraceKind::Reply {
                node,
                request_id,
                reply,
            });
            return;
        }
        let direct = self
            .clients
            .record(request_id)
            .is_some_and(|r| r.client.is_none());
        if direct && !matches!(reply, Reply::Accepted { .. }) {
            let output = match (&self.machines, &reply) {
                (Some(machines), Reply::Committed { index, .. }) => machines.output(*index),
                _ => None,
            };
            self.note(|| match output {
                Some(output) => format!(
                    "{node} replied to {request_id}: {} -> {output}",
                    describe_reply(&reply)
                ),
                None => format!("{node} replied to {request_id}: {}", describe_reply(&reply)),
            });
        }
        let think = self.workload_rng.between(
            self.clients.config.think_ms_min,
            self.clients.config.think_ms_max,
        );
        let follow_up = self
            .clients
            .on_reply(request_id, &reply, self.now_ms, think);
        self.record(TraceKind::Reply {
            node,
            request_id,
            reply,
        });
        self.follow_up(follow_up);
    }

    fn follow_up(&mut self, follow_up: FollowUp) {
        if let FollowUp::Wake { client, ms } = follow_up {
            self.queue
                .push(self.now_ms + ms, Event::ClientWake { client });
        }
    }

    fn on_client_wake(&mut self, client: usize) {
        let read = self.workload_rng.chance(self.clients.config.read_ratio);
        let invocation = match &self.machines {
            Some(machines) => {
                let write = |client, n| machines.workload(client, n);
                self.clients.invoke_with(client, self.now_ms, read, write)
            }
            None => self.clients.invoke(client, self.now_ms, read),
        };
        let Some(invocation) = invocation else {
            return;
        };
        let timeout = self.now_ms + self.clients.config.timeout_ms;
        self.queue.push(
            timeout,
            Event::ClientTimeout {
                request_id: invocation.request_id,
            },
        );
        // Clients reach every node directly: partitions are between servers.
        self.queue
            .push(self.now_ms + 1, Event::ClientArrive { invocation });
    }

    // ---- controls (faults and scenario commands) ----

    /// Starts a node: fresh the first time, else restored from its durable state.
    pub fn start(&mut self, id: NodeId) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        let slot = &mut self.slots[i];
        if slot.node.is_some() {
            return Err(ControlError(format!("{id} is already up")));
        }
        slot.incarnation += 1;
        slot.tick_generation += 1;
        slot.inbox.clear();
        let mut config = self.config.raft.clone();
        config.id = id;
        config.incarnation = slot.server_incarnation;
        config.voters = if id.0 <= self.config.voters && !slot.as_new_server {
            (1..=self.config.voters).map(NodeId).collect()
        } else {
            // A server outside the initial cluster waits to be added.
            std::collections::BTreeSet::new()
        };
        config.rng_seed = sub_seed(
            self.config.seed,
            "node",
            id.0 * 1_000_000 + slot.incarnation,
        );
        let restored = slot.life != Life::NeverStarted;
        let node = if restored {
            Node::restore(config, slot.disk.durable.clone())
                .map_err(|e| ControlError(format!("{id} cannot restore: {e}")))?
        } else {
            Node::new(config).map_err(|e| ControlError(format!("{id} config: {e}")))?
        };
        #[cfg(feature = "catalogue")]
        let node = {
            let mut node = node;
            for &bug in &self.config.bugs {
                node.reintroduce(bug);
            }
            node
        };
        let snapshot = slot
            .disk
            .durable
            .snapshot
            .as_ref()
            .map(|s| (s.meta.last_included_index, s.meta.last_included_term));
        let mut result = self.checker.on_start(&node, snapshot);
        if let (Ok(()), Some(machines)) = (&result, &mut self.machines) {
            let durable = slot.disk.durable.snapshot.as_ref();
            let snapshot = durable.map(|s| (s.meta.last_included_index, s.data.as_slice()));
            result = machines.start(id, snapshot);
        }
        slot.node = Some(node);
        slot.life = Life::Running;
        let (tick_ms, generation) = (slot.tick_ms, slot.tick_generation);
        // A random phase, so nodes with equal tick lengths do not tick in lockstep.
        let phase = self.workload_rng.between(1, tick_ms);
        self.queue.push(
            self.now_ms + phase,
            Event::Tick {
                node: id,
                generation,
            },
        );
        let verb = if restored { "restart" } else { "start" };
        self.record(TraceKind::Control(format!("{verb} {id}")));
        if self.trace.detailed() {
            let slot = &self.slots[i];
            if let Some(node) = &slot.node {
                let durable = &slot.disk.durable;
                let detail = Detail::Start { node, durable };
                self.trace.detail(self.events, self.now_ms, detail);
            }
        }
        if let Err(violation) = result {
            self.fail(violation);
        }
        Ok(())
    }

    fn take_down(&mut self, id: NodeId, life: Life) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        let slot = &mut self.slots[i];
        if slot.node.is_none() {
            return Err(ControlError(format!("{id} is not up")));
        }
        slot.crash_after_persist = None;
        if life == Life::Stopped {
            // A clean shutdown finishes its writes; a crash loses them.
            slot.disk.flush();
        } else {
            slot.disk.crash();
        }
        let term = slot.disk.durable.hard_state.current_term;
        slot.node = None;
        slot.life = life;
        slot.inbox.clear();
        slot.incarnation += 1;
        slot.tick_generation += 1;
        self.checker.on_durable_term(id, term);
        self.checker.on_crash(id);
        if let Some(machines) = &mut self.machines {
            machines.stop(id);
        }
        let verb = if life == Life::Stopped {
            "stop"
        } else {
            "crash"
        };
        self.record(TraceKind::Control(format!("{verb} {id}")));
        Ok(())
    }

    /// Kills a node: volatile state and unfinished writes are lost.
    pub fn crash(&mut self, id: NodeId) -> Result<(), ControlError> {
        self.take_down(id, Life::Crashed)
    }

    /// The node's disk is lost (replaced, wiped): it crashes if up, and starts again with empty
    /// durable state, as a new incarnation configured with no voters, so it waits to be re-added
    /// (`raft_core`'s `incarnation.rs`).
    pub fn wipe(&mut self, id: NodeId) -> Result<(), ControlError> {
        self.wipe_with(id, true)
    }

    /// `wipe`, but the node starts with the configuration it had (an operator restarting a
    /// replaced disk with the same flags): a member of the initial cluster still believes it is
    /// one, and only the incarnations the membership records tell it apart.
    pub fn wipe_keeping_config(&mut self, id: NodeId) -> Result<(), ControlError> {
        self.wipe_with(id, false)
    }

    fn wipe_with(&mut self, id: NodeId, as_new_server: bool) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        if self.slots[i].node.is_some() {
            self.take_down(id, Life::Crashed)?;
        }
        let seed = self.config.seed;
        let slot = &mut self.slots[i];
        slot.wipes += 1;
        slot.as_new_server |= as_new_server;
        slot.server_incarnation = server_incarnation(seed, id, slot.wipes);
        slot.disk.wipe();
        self.checker.on_wipe(id);
        let how = if as_new_server { "" } else { " keep-voters" };
        self.record(TraceKind::Control(format!("wipe {id}{how}")));
        self.start(id)
    }

    /// True while `id` lost its state and the committed membership does not yet record its
    /// new incarnation as a voter (it has not been re-added).
    #[must_use]
    pub fn is_wiped_and_not_readded(&self, id: NodeId) -> bool {
        self.slot(id).is_ok_and(|slot| {
            slot.wipes > 0
                && self.committed_membership.1.incarnation_of(id) != Some(slot.server_incarnation)
        })
    }

    /// True when `id` is a voter whose current incarnation the committed membership, or the
    /// latest membership of some node, does not record: the window before every leader heard
    /// it, in which a lost disk cannot be told from a first start (`raft_core`'s
    /// `incarnation.rs`).
    #[must_use]
    pub fn is_unrecorded_voter(&self, id: NodeId) -> bool {
        let Ok(slot) = self.slot(id) else {
            return false;
        };
        let unrecorded = |membership: &Membership| {
            membership.is_voter(id)
                && membership.incarnation_of(id) != Some(slot.server_incarnation)
        };
        unrecorded(&self.committed_membership.1) || self.latest_memberships().iter().any(unrecorded)
    }

    /// Every node's latest membership: a running node's own, a down node's from its disk.
    #[must_use]
    pub fn latest_memberships(&self) -> Vec<Membership> {
        self.slots
            .iter()
            .filter_map(|slot| match &slot.node {
                Some(node) => Some(node.membership().clone()),
                None => {
                    let durable = &slot.disk.durable;
                    durable
                        .entries
                        .iter()
                        .rev()
                        .find_map(|entry| match &entry.payload {
                            EntryPayload::Membership(membership) => Some(membership.clone()),
                            _ => None,
                        })
                        .or_else(|| {
                            durable
                                .snapshot
                                .as_ref()
                                .map(|snapshot| snapshot.meta.membership.clone())
                        })
                }
            })
            .collect()
    }

    /// Shuts a node down cleanly: pending writes complete first.
    pub fn stop(&mut self, id: NodeId) -> Result<(), ControlError> {
        self.take_down(id, Life::Stopped)
    }

    /// Freezes a node: no ticks; messages, client requests and disk completions queue up.
    pub fn pause(&mut self, id: NodeId) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        let slot = &mut self.slots[i];
        if slot.life != Life::Running {
            return Err(ControlError(format!("{id} is not running")));
        }
        slot.life = Life::Paused;
        slot.tick_generation += 1;
        slot.paused_at_ms = self.now_ms;
        self.record(TraceKind::Control(format!("pause {id}")));
        Ok(())
    }

    /// Unfreezes a node: the ticks it missed first (with `SimConfig::resume_with_missed_ticks`),
    /// then the inputs queued meanwhile, in order; then ticks resume.
    pub fn resume(&mut self, id: NodeId) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        if self.slots[i].life != Life::Paused {
            return Err(ControlError(format!("{id} is not paused")));
        }
        self.slots[i].life = Life::Running;
        self.record(TraceKind::Control(format!("resume {id}")));
        if self.config.resume_with_missed_ticks {
            let slot = &self.slots[i];
            let missed = (self.now_ms - slot.paused_at_ms) / slot.tick_ms;
            for _ in 0..missed {
                if self.failure.is_some() {
                    break;
                }
                self.events += 1;
                self.record(TraceKind::Tick { node: id });
                self.step_node(i, Input::Tick);
            }
        }
        // Each queued input was counted as an event when it arrived.
        while let Some(input) = self.slots[i].inbox.pop_front() {
            if self.failure.is_some() {
                break;
            }
            self.step_node(i, input);
        }
        let slot = &self.slots[i];
        let (tick_ms, generation) = (slot.tick_ms, slot.tick_generation);
        self.queue.push(
            self.now_ms + tick_ms,
            Event::Tick {
                node: id,
                generation,
            },
        );
        Ok(())
    }

    /// Gives `id`'s disk a write latency of its own (a slower or faster device than the rest).
    pub fn set_disk_latency(
        &mut self,
        id: NodeId,
        latency: DiskConfig,
    ) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        self.record(TraceKind::Control(format!(
            "disk {id} {}..{} ms",
            latency.latency_ms_min, latency.latency_ms_max
        )));
        self.slots[i].disk.latency = Some(latency);
        Ok(())
    }

    /// `id`'s writes stay pending until [`Sim::release_disk`]; a crash meanwhile loses them.
    pub fn hold_disk(&mut self, id: NodeId) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        self.record(TraceKind::Control(format!("hold disk {id}")));
        self.slots[i].disk.hold();
        Ok(())
    }

    /// Ends a hold: the writes still pending complete now, in order, each reported to the node.
    /// Returns how many completed.
    pub fn release_disk(&mut self, id: NodeId) -> Result<usize, ControlError> {
        let i = self.index_of(id)?;
        self.record(TraceKind::Control(format!("release disk {id}")));
        let pending = self.slots[i].disk.release();
        for &persist_id in &pending {
            if self.failure.is_some() {
                break;
            }
            self.complete_write(i, persist_id);
        }
        Ok(pending.len())
    }

    /// `id`'s disk completes no write for `ms` from now; writes due meanwhile complete then,
    /// in order.
    pub fn stall_disk(&mut self, id: NodeId, ms: u64) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        self.record(TraceKind::Control(format!("stall disk {id} for {ms} ms")));
        self.slots[i].disk.stall_until(self.now_ms + ms);
        Ok(())
    }

    /// Ends every disk stall: the writes that were waiting on one complete now, in order.
    pub fn end_disk_stalls(&mut self) {
        let now = self.now_ms;
        for slot in &mut self.slots {
            if let Some(persist_id) = slot.disk.end_stall(now) {
                let event = Event::DiskDone {
                    node: slot.id,
                    persist_id,
                    incarnation: slot.incarnation,
                };
                self.queue.push(now, event);
            }
        }
    }

    /// The write latency of `id`'s disk: its own, or the cluster's.
    pub fn disk_latency(&self, id: NodeId) -> Result<DiskConfig, ControlError> {
        let slot = self.slot(id)?;
        Ok(slot
            .disk
            .latency
            .clone()
            .unwrap_or_else(|| self.config.disk.clone()))
    }

    /// Writes `id` issued that are not durable yet.
    pub fn pending_writes(&self, id: NodeId) -> Result<usize, ControlError> {
        Ok(self.slot(id)?.disk.pending_count())
    }

    /// Crashes `id` when it issues its next `Persist` request, at `timing` (while that write
    /// is pending, when the delay is below the disk's latency), and restarts it
    /// `restart_after_ms` after the crash, if given.
    pub fn crash_after_next_persist(
        &mut self,
        id: NodeId,
        timing: CrashTiming,
        restart_after_ms: Option<u64>,
    ) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        self.slots[i].crash_after_persist = Some((timing, restart_after_ms));
        Ok(())
    }

    /// Restarts `id` `ms` from now if it is crashed then.
    pub fn restart_after(&mut self, id: NodeId, ms: u64) -> Result<(), ControlError> {
        self.index_of(id)?;
        self.queue
            .push(self.now_ms + ms, Event::Restart { node: id });
        Ok(())
    }

    /// Armed and scheduled timed crashes never happen (the fault phase is over).
    pub fn cancel_timed_crashes(&mut self) {
        self.crash_epoch += 1;
        self.config.leader_crash = None;
        for slot in &mut self.slots {
            slot.crash_after_persist = None;
        }
    }

    /// Ticks one node until its election timeout fires (it becomes a candidate, or a
    /// pre-candidate with pre-vote on), bounded by the longest election timeout. Lets a script
    /// choose who campaigns.
    pub fn campaign(&mut self, id: NodeId) -> Result<(), ControlError> {
        let i = self.index_of(id)?;
        if self.slots[i].life != Life::Running {
            return Err(ControlError(format!("{id} is not running")));
        }
        let bound = u64::from(self.config.raft.election_timeout_ticks_max) + 1;
        // With pre-vote on, the timeout first makes the node a pre-candidate.
        let elections = |sim: &Sim| {
            sim.node(id).map_or(0, |n| {
                n.status().stats.elections_started + u64::from(n.is_pre_candidate())
            })
        };
        let start = elections(self);
        for _ in 0..bound {
            if elections(self) > start || self.failure.is_some() {
                break;
            }
            self.events += 1;
            self.record(TraceKind::Tick { node: id });
            self.step_node(i, Input::Tick);
        }
        if elections(self) == start {
            return Err(ControlError(format!(
                "{id} did not start an election (is it the leader?)"
            )));
        }
        Ok(())
    }

    /// Asks `id` to compact its log through its applied index, handing it the simulated state
    /// machine's snapshot there (the committed log's chain hash). Returns the index.
    pub fn compact(&mut self, id: NodeId) -> Result<LogIndex, ControlError> {
        let i = self.index_of(id)?;
        let Some(node) = self.slots[i].node.as_ref() else {
            return Err(ControlError(format!("{id} is not up")));
        };
        let index = node.applied_index();
        let data = match &self.machines {
            Some(machines) => {
                let data = machines.snapshot(id, index).map_err(ControlError)?;
                if let Err(violation) = machines.check_snapshot(id, index, &data) {
                    self.fail(violation);
                    return Err(ControlError(format!("{id}'s snapshot is not its machine")));
                }
                data
            }
            None => self
                .checker
                .snapshot_at(index)
                .ok_or_else(|| ControlError(format!("{id} has applied nothing to compact")))?,
        };
        self.events += 1;
        self.record(TraceKind::Control(format!("compact {id} through {index}")));
        self.input(i, Input::Compact { index, data });
        Ok(index)
    }

    /// Asks the current leader to hand leadership to `to` (Raft thesis §3.10). Returns the
    /// leader asked.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<NodeId, ControlError> {
        self.index_of(to)?;
        let leader = self
            .current_leader()
            .ok_or_else(|| ControlError("there is no leader to transfer from".to_owned()))?;
        let i = self.index_of(leader)?;
        self.events += 1;
        self.record(TraceKind::Control(format!("transfer {leader} -> {to}")));
        self.input(i, Input::TransferLeader { to });
        Ok(leader)
    }

    /// Proposes `command` directly to `node`, as a scenario does: its bytes, or the command of
    /// the machine set by [`Sim::run_machine`] that the text stands for.
    pub fn propose(&mut self, node: NodeId, command: &str) -> Result<RequestId, ControlError> {
        let bytes = match &self.machines {
            Some(machines) => machines.parse(command).map_err(ControlError)?,
            None => command.as_bytes().to_vec(),
        };
        self.propose_bytes(node, command, bytes)
    }

    /// Proposes the `n`th command a script or a check makes up (a scenario's `write`, a
    /// liveness probe) to `node`: the text `text`, or, with a machine set by
    /// [`Sim::run_machine`], its [`SimMachine::workload_command`] numbered `n` for a client one
    /// past the last.
    pub fn propose_generated(
        &mut self,
        node: NodeId,
        text: &str,
        n: u64,
    ) -> Result<RequestId, ControlError> {
        match &self.machines {
            Some(machines) => {
                let (label, bytes) = machines.workload(self.clients.count(), n);
                self.propose_bytes(node, &label, bytes)
            }
            None => self.propose(node, text),
        }
    }

    /// Proposes `command` (shown as `label`) directly to `node`.
    pub fn propose_bytes(
        &mut self,
        node: NodeId,
        label: &str,
        command: Vec<u8>,
    ) -> Result<RequestId, ControlError> {
        let i = self.index_of(node)?;
        if self.slots[i].node.is_none() {
            return Err(ControlError(format!("{node} is not up")));
        }
        let request_id = self
            .clients
            .invoke_direct(node, label, &command, self.now_ms);
        self.events += 1;
        self.record(TraceKind::Propose { node, request_id });
        self.input(
            i,
            Input::Propose {
                request_id,
                command,
            },
        );
        Ok(request_id)
    }

    /// Asks `node` for a linearizable read, as a scenario does; the reply is noted.
    pub fn read(&mut self, node: NodeId) -> Result<RequestId, ControlError> {
        let i = self.index_of(node)?;
        if self.slots[i].node.is_none() {
            return Err(ControlError(format!("{node} is not up")));
        }
        let request_id = self.clients.invoke_direct_read(node, self.now_ms);
        self.events += 1;
        self.record(TraceKind::Propose { node, request_id });
        self.checker.on_read_received(request_id);
        self.input(i, Input::Read { request_id });
        Ok(request_id)
    }

    /// Asks `via` to make one membership change. Its replies (`Accepted`, then `Committed`, or
    /// a refusal) are recorded in [`Sim::change`] and noted in transcripts.
    pub fn change_membership(
        &mut self,
        via: NodeId,
        change: MembershipChange,
    ) -> Result<RequestId, ControlError> {
        let i = self.index_of(via)?;
        if self.slots[i].node.is_none() {
            return Err(ControlError(format!("{via} is not up")));
        }
        let request_id = RequestId(CHANGE_REQUEST_ID_BASE + self.changes.len() as u64);
        self.changes.insert(
            request_id,
            ChangeRecord {
                via,
                change,
                reply: None,
            },
        );
        self.events += 1;
        self.record(TraceKind::Control(format!(
            "{} via {via}",
            describe_change(change)
        )));
        self.input(i, Input::ChangeMembership { request_id, change });
        Ok(request_id)
    }

    /// A membership change request and its latest reply.
    #[must_use]
    pub fn change(&self, request_id: RequestId) -> Option<&ChangeRecord> {
        self.changes.get(&request_id)
    }

    /// Every membership change request so far, in the order they were made.
    pub fn changes(&self) -> impl Iterator<Item = &ChangeRecord> {
        self.changes.values()
    }

    /// Membership changes that committed so far.
    #[must_use]
    pub fn membership_changes_committed(&self) -> u64 {
        self.changes
            .values()
            .filter(|c| matches!(c.reply, Some(Reply::Committed { .. })))
            .count() as u64
    }

    /// The latest membership known to be committed, and the index that set it.
    #[must_use]
    pub fn committed_membership(&self) -> (LogIndex, &Membership) {
        (self.committed_membership.0, &self.committed_membership.1)
    }

    /// Starts the client workload: every client begins invoking.
    pub fn start_clients(&mut self) {
        self.clients.active = true;
        for client in 0..self.clients.count() {
            let ms = self
                .workload_rng
                .between(0, self.clients.config.think_ms_max);
            self.queue
                .push(self.now_ms + ms, Event::ClientWake { client });
        }
    }

    /// Stops new invocations; outstanding requests still complete or time out.
    pub fn stop_clients(&mut self) {
        self.clients.active = false;
    }

    /// Delivers up to `count` messages waiting on the held link `from -> to`, now.
    pub fn deliver_held(
        &mut self,
        from: NodeId,
        to: NodeId,
        count: usize,
    ) -> Result<usize, ControlError> {
        let i = self.index_of(to)?;
        self.index_of(from)?;
        let messages = self.network.take_held(from, to, count);
        let delivered = messages.len();
        for envelope in messages {
            if self.slots[i].node.is_none() || self.failure.is_some() {
                break;
            }
            self.deliver_now(i, envelope);
        }
        Ok(delivered)
    }

    /// Discards every message waiting on the held link `from -> to`.
    pub fn drop_held(&mut self, from: NodeId, to: NodeId) -> Result<usize, ControlError> {
        self.index_of(to)?;
        self.index_of(from)?;
        let count = self.network.held_count(from, to);
        for envelope in self.network.take_held(from, to, count) {
            self.record(TraceKind::Drop {
                from,
                to,
                kind: envelope.message.kind(),
                reason: DropReason::Discarded,
            });
        }
        Ok(count)
    }

    /// Records a control action in the trace.
    pub fn record_control(&mut self, text: String) {
        self.record(TraceKind::Control(text));
    }

    /// The entries a running node has applied, from its log; an error once it has
    /// compacted any of them away (the simulated snapshots do not hold a state machine).
    pub fn applied_entries(&self, id: NodeId) -> Result<Vec<Entry>, ControlError> {
        let slot = self.slot(id)?;
        let node = slot
            .node
            .as_ref()
            .ok_or_else(|| ControlError(format!("{id} is not up")))?;
        let applied = node.applied_index();
        let entries = node.entries(LogIndex(1), applied);
        if entries.len() as u64 != applied.0 {
            return Err(ControlError(format!(
                "{id} compacted its log: its applied entries are gone"
            )));
        }
        Ok(entries.to_vec())
    }

    /// Lives, committed membership and cut or held links, for trace sinks that draw the cluster.
    #[cold]
    fn cluster_view(&self) -> ClusterView {
        let ids = self.node_ids();
        let links = || ids.iter().flat_map(|&a| ids.iter().map(move |&b| (a, b)));
        let membership = &self.committed_membership.1;
        ClusterView {
            lives: self.slots.iter().map(|s| s.life).collect(),
            voters: membership.voters.iter().copied().collect(),
            learners: membership.learners.iter().copied().collect(),
            cut: links()
                .filter(|&(a, b)| a != b && self.network.is_cut(a, b))
                .collect(),
            held: links()
                .filter(|&(a, b)| self.network.is_held(a, b))
                .collect(),
        }
    }

    /// A node's durable term and log length, for status lines of nodes that are down.
    pub fn durable_summary(&self, id: NodeId) -> Result<(Term, usize), ControlError> {
        let slot = self.slot(id)?;
        Ok((
            slot.disk.durable.hard_state.current_term,
            slot.disk.durable.entries.len(),
        ))
    }
}

/// Applied entries and installed snapshots are committed: the latest membership among them is
/// the committed membership (state machine safety makes every node agree on it).
fn observe_committed_membership(
    committed: &mut (LogIndex, Membership),
    applied: &[Entry],
    snapshot: Option<&raft_core::Snapshot>,
) {
    if let Some(snapshot) = snapshot {
        let index = snapshot.meta.last_included_index;
        if index > committed.0 {
            *committed = (index, snapshot.meta.membership.clone());
        }
    }
    for entry in applied {
        if let EntryPayload::Membership(membership) = &entry.payload {
            if entry.index > committed.0 {
                *committed = (entry.index, membership.clone());
            }
        }
    }
}

/// A membership change in words, for transcripts.
#[must_use]
pub fn describe_change(change: MembershipChange) -> String {
    match change {
        MembershipChange::AddLearner(id) => format!("add learner {id}"),
        MembershipChange::PromoteLearner(id) => format!("promote {id}"),
        MembershipChange::Remove(id) => format!("remove {id}"),
    }
}

/// A reply in words, for transcripts.
#[must_use]
pub fn describe_reply(reply: &Reply) -> String {
    match reply {
        Reply::Accepted { index, term } => format!("accepted at {index} in {term}"),
        Reply::Committed { index, term } => format!("committed at {index} in {term}"),
        Reply::NotLeader {
            leader_hint: Some(hint),
        } => format!("not leader (try {hint})"),
        Reply::NotLeader { leader_hint: None } => "not leader (no hint)".to_owned(),
        Reply::Busy => "busy".to_owned(),
        Reply::Dropped { index, term } => format!("dropped (was at {index} in {term})"),
        Reply::Unknown { index, term } => {
            format!("unknown (covered by a snapshot at {index} in {term})")
        }
        Reply::ReadReady { index } => format!("read ready at {index}"),
        Reply::ChangeRejected { reason } => format!("change rejected: {reason:?}"),
    }
}
