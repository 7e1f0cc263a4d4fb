//! Exhaustive model checking of the real core with [`stateright`]: a small cluster of
//! `raft_core::Node`s, every interleaving of its inputs up to a bound, and the simulator's own
//! [`Checker`] as the safety properties.
//!
//! A state ([`ClusterState`]) is every node (absent while crashed) with its queue of pending
//! `Persist` requests and its durable state, the messages in flight, the checker's history and
//! the budgets used. An action ([`ModelAction`]) is one thing a driver or the world can do next:
//! deliver, duplicate or drop a message, complete a node's oldest pending write, tick a node,
//! crash or restart it, propose a command to a leader, and, behind flags, compact a log or
//! change the membership. Each action steps at most one node, exactly as the simulator does,
//! and the checker runs after the step; a violation is recorded in the state, and the state
//! then has no successors.
//!
//! The network is a set of wire frames: a message sent while an identical one is in flight
//! merges with it (the network lost the copy, which Raft allows), and `Duplicate` delivers a
//! message while keeping it in flight. Messages stay deliverable across a restart of their
//! destination, as datagrams do.

pub mod check;
pub mod clients;
pub mod shared;
mod symmetry;
pub mod trace;

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use raft_core::{
    Action, Config, DurableState, EntryPayload, Envelope, Input, LogIndex, Membership,
    MembershipChange, Node, NodeId, PersistRequest, Reply, RequestId, Role,
};
use stateright::{Model, Property};

use crate::checker::{command_hash, Checker, Observed, StepEffects, Violation};
use clients::ClientHistory;
use shared::{Interner, Shared};

/// A change to every node's code, applied at each start and restart: the bug catalogue's
/// `Node::reintroduce`, named for reports.
#[derive(Clone)]
pub struct Mutation {
    pub name: String,
    pub apply: Arc<dyn Fn(&mut Node) + Send + Sync>,
}

impl fmt::Debug for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mutation").field(&self.name).finish()
    }
}

/// What to model and how far to explore.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Voters of the cluster, `n1..=nN` (2 to 5).
    pub nodes: u64,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub heartbeat_ticks: u32,
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// Actions along one path.
    pub depth: u32,
    /// States where a node's term exceeds this are outside the bound.
    pub max_term: u64,
    pub max_crashes: u8,
    pub max_proposals: u8,
    pub max_duplicates: u8,
    /// Ticks allowed, over all nodes (`None`: as many as the depth allows).
    pub max_ticks: Option<u8>,
    /// Every write completes within the action that asked for it, before anything else
    /// happens: a tighter bound (no interleaving of late writes, and no crash can lose one)
    /// that lets deeper protocol histories, reads and transfers, fit in fewer actions.
    pub instant_persists: bool,
    /// Offer `Drop` actions. Dropping never makes a safety violation reachable that keeping
    /// the message in flight forever would not, but it lets states with stale messages merge
    /// with those without.
    pub drops: bool,
    /// Compactions allowed (0 disables `Compact`).
    pub max_compactions: u8,
    /// Membership changes allowed (0 disables `Change` and the spare server).
    pub max_changes: u8,
    /// Linearizable reads allowed (0 disables `Read` and the client history).
    pub max_reads: u8,
    /// Leadership transfers allowed (0 disables `Transfer`).
    pub max_transfers: u8,
    /// Leader leases (`Config::lease_reads`). Leases assume clocks that run at the same rate,
    /// so with them the servers tick in turn, in a fixed order (any fixed phases), instead of
    /// each whenever it likes.
    pub lease_reads: bool,
    pub mutation: Option<Mutation>,
    /// Explore one state per class of states equal up to the servers' names, where the
    /// configuration allows it (see `symmetry.rs`).
    pub symmetry: bool,
}

impl ModelConfig {
    /// The defaults of `raft-sim check`: pre-vote and check-quorum off (the smallest
    /// elections), heartbeats every tick, elections after two ticks.
    #[must_use]
    pub fn new(nodes: u64) -> ModelConfig {
        ModelConfig {
            nodes,
            pre_vote: false,
            check_quorum: false,
            heartbeat_ticks: 1,
            election_ticks_min: 2,
            election_ticks_max: 2,
            depth: 12,
            max_term: 3,
            max_crashes: 1,
            max_proposals: 2,
            max_duplicates: 1,
            max_ticks: None,
            instant_persists: false,
            drops: true,
            max_compactions: 0,
            max_changes: 0,
            max_reads: 0,
            max_transfers: 0,
            lease_reads: false,
            mutation: None,
            symmetry: true,
        }
    }

    /// Checks the bounds a model relies on; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=5).contains(&self.nodes) {
            return Err(format!("--nodes must be 2 to 5, got {}", self.nodes));
        }
        if self.depth == 0 {
            return Err("--depth must be at least 1".to_owned());
        }
        if self.lease_reads && !self.check_quorum {
            return Err(
                "--lease-reads needs --check-quorum: the lease rests on followers ignoring vote \
                 requests while they hear from a leader"
                    .to_owned(),
            );
        }
        self.node_config(NodeId(1))
            .validate()
            .map_err(|e| e.to_string())
    }

    /// The spare server membership changes add, if they are on.
    #[must_use]
    pub fn spare(&self) -> Option<NodeId> {
        (self.max_changes > 0).then_some(NodeId(self.nodes + 1))
    }

    fn slot_count(&self) -> usize {
        usize::try_from(self.nodes).unwrap_or(0) + usize::from(self.max_changes > 0)
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        (1..=self.nodes).map(NodeId).collect()
    }

    /// Every node runs the same configuration but for its id (and the spare, which starts
    /// without voters and waits to be added). One RNG seed for all keeps the nodes
    /// interchangeable, which a symmetry reduction would need.
    #[must_use]
    pub fn node_config(&self, id: NodeId) -> Config {
        let voters = if id.0 <= self.nodes {
            self.voters()
        } else {
            BTreeSet::new()
        };
        let mut config = Config::new(id, voters);
        config.heartbeat_interval_ticks = self.heartbeat_ticks;
        config.election_timeout_ticks_min = self.election_ticks_min;
        config.election_timeout_ticks_max = self.election_ticks_max;
        config.pre_vote = self.pre_vote;
        config.check_quorum = self.check_quorum;
        config.lease_reads = self.lease_reads;
        config.rng_seed = 1;
        config
    }
}

/// A message in flight as its wire frame (`raft_core::wire` encoding), so the network is a set
/// with a canonical order; with its destination, so listing what can be delivered decodes
/// nothing.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame {
    pub to: NodeId,
    pub bytes: Vec<u8>,
}

impl Frame {
    fn of(envelope: &Envelope) -> Frame {
        Frame {
            to: envelope.to,
            bytes: raft_core::wire::encode(envelope),
        }
    }

    /// The message; frames are only ever made by `Frame::of`, so they decode.
    #[must_use]
    pub fn envelope(&self) -> Envelope {
        match raft_core::wire::decode(&self.bytes, usize::MAX) {
            Ok(envelope) => envelope,
            Err(error) => panic!("model_frames_decode: {error}"),
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_envelope(&self.envelope()))
    }
}

/// `n1 -> n2 AppendEntries t1 prev i1/t1 [i2 t1] commit i1`: enough to tell two messages apart.
#[must_use]
pub fn describe_envelope(envelope: &Envelope) -> String {
    use raft_core::{AppendResult, Message};
    let detail = match &envelope.message {
        Message::RequestVote(request) | Message::PreVote(request) => format!(
            " last {}/{}{}",
            request.last_log_index,
            request.last_log_term,
            if request.leadership_transfer {
                " transfer"
            } else {
                ""
            }
        ),
        Message::RequestVoteResponse(response) | Message::PreVoteResponse(response) => {
            if response.vote_granted {
                " granted".to_owned()
            } else {
                " refused".to_owned()
            }
        }
        Message::AppendEntries(request) => {
            let entries: Vec<String> = request
                .entries
                .iter()
                .map(|entry| format!("{} {}", entry.index, entry.term))
                .collect();
            format!(
                " prev {}/{} [{}] commit {}",
                request.prev_log_index,
                request.prev_log_term,
                entries.join(", "),
                request.leader_commit
            )
        }
        Message::AppendEntriesResponse(response) => match &response.result {
            AppendResult::Success { match_index } => format!(" match {match_index}"),
            AppendResult::Reject {
                rejected_prev_index,
                ..
            } => format!(" reject {rejected_prev_index}"),
            AppendResult::StaleTerm => " stale".to_owned(),
            AppendResult::Gap {
                log_last_index,
                held_from,
            } => format!(" gap {log_last_index}..{held_from}"),
        },
        Message::InstallSnapshot(request) => format!(
            " through {}/{} at {}",
            request.meta.last_included_index, request.meta.last_included_term, request.offset
        ),
        Message::InstallSnapshotResponse(response) => format!(
            " through {} got {}{}",
            response.last_included_index,
            response.received_bytes,
            if response.installed { " installed" } else { "" }
        ),
        Message::TimeoutNow => String::new(),
    };
    format!(
        "{} -> {} {} {}{detail}",
        envelope.from,
        envelope.to,
        envelope.message.kind(),
        envelope.term
    )
}

/// One server: its node while up, its pending writes (lost in a crash) and its disk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeSlot {
    pub id: NodeId,
    pub node: Option<Node>,
    pub pending: VecDeque<PersistRequest>,
    /// Changes only when a write completes, so steps share it.
    pub durable: Shared<DurableState>,
}

/// The messages in flight: a set of frames, sorted, each shared with every state that has it
/// in flight too.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Network(Vec<Shared<Frame>>);

impl Network {
    pub fn iter(&self) -> impl Iterator<Item = &Frame> {
        self.0.iter().map(|frame| &**frame)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[must_use]
    pub fn contains(&self, frame: &Frame) -> bool {
        self.0.binary_search_by(|f| (**f).cmp(frame)).is_ok()
    }

    fn insert(&mut self, frame: Shared<Frame>) {
        if let Err(position) = self.0.binary_search_by(|f| (**f).cmp(&frame)) {
            self.0.insert(position, frame);
        }
    }

    fn remove(&mut self, frame: &Frame) {
        if let Ok(position) = self.0.binary_search_by(|f| (**f).cmp(frame)) {
            self.0.remove(position);
        }
    }
}

/// One interner per kind of shared part (see [`shared`]).
#[derive(Debug, Default)]
pub struct Interners {
    slots: Interner<NodeSlot>,
    durable: Interner<DurableState>,
    frames: Interner<Frame>,
    networks: Interner<Network>,
    checkers: Interner<Checker>,
    memberships: Interner<Membership>,
    histories: Interner<ClientHistory>,
}

/// Budgets used along the path to a state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Used {
    /// Counted only under a tick budget, so that without one, states differing only in how
    /// often a node ticked without effect stay equal.
    pub ticks: u8,
    pub crashes: u8,
    pub proposals: u8,
    pub duplicates: u8,
    pub compactions: u8,
    pub changes: u8,
    pub reads: u8,
    pub transfers: u8,
    /// A server started an election on a `TimeoutNow` (for the `sometimes` property that
    /// shows transfers are exercised).
    pub transferred: bool,
}

/// One state of the model: a few pointers to parts shared with every state that has an
/// equal part (see [`shared`]).
#[derive(Clone, Debug)]
pub struct ClusterState {
    /// An action steps one node, so a successor makes one new slot, not all.
    pub slots: Vec<Shared<NodeSlot>>,
    pub network: Shared<Network>,
    pub used: Used,
    pub checker: Shared<Checker>,
    /// The latest membership some node applied (or installed with a snapshot): the voters
    /// acknowledged writes must be durable on.
    pub committed_membership: Shared<Membership>,
    /// The client history, with reads on (see [`clients`]).
    pub clients: Option<Shared<ClientHistory>>,
    /// With lease reads, the slot whose turn it is to tick.
    pub clock: u8,
    pub violation: Option<Box<Violation>>,
    /// Actions taken to get here. Not part of the state's identity: breadth-first search
    /// reaches every state first along a shortest path, and the bound cuts paths, not states.
    pub depth: u32,
}

impl ClusterState {
    fn identity(&self) -> impl Hash + PartialEq + '_ {
        (
            &self.slots,
            &self.network,
            self.used,
            &self.checker,
            &self.committed_membership,
            &self.clients,
            self.clock,
            &self.violation,
        )
    }

    /// The node with `id`, while it is up.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.slot(id).and_then(|slot| slot.node.as_ref())
    }

    fn slot(&self, id: NodeId) -> Option<&NodeSlot> {
        self.slots.get(slot_index(id)?).map(|slot| &**slot)
    }
}

fn same<T: PartialEq>(a: T, b: T) -> bool {
    a == b
}

impl PartialEq for ClusterState {
    fn eq(&self, other: &ClusterState) -> bool {
        same(self.identity(), other.identity())
    }
}

impl Eq for ClusterState {}

impl Hash for ClusterState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

fn slot_index(id: NodeId) -> Option<usize> {
    usize::try_from(id.0).ok()?.checked_sub(1)
}

/// One thing that can happen next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ModelAction {
    Tick(NodeId),
    Deliver(Frame),
    /// Deliver a copy; the message stays in flight.
    Duplicate(Frame),
    Drop(Frame),
    /// The node's oldest pending write becomes durable.
    Persist(NodeId),
    Crash(NodeId),
    Restart(NodeId),
    /// A client proposes a new command to a leader.
    Propose(NodeId),
    /// The node compacts its log through its applied index.
    Compact(NodeId),
    Change(NodeId, MembershipChange),
    /// A client asks a leader for a linearizable read.
    Read(NodeId),
    /// A leader is asked to hand leadership to a voter.
    Transfer(NodeId, NodeId),
}

impl fmt::Display for ModelAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelAction::Tick(id) => write!(f, "tick {id}"),
            ModelAction::Deliver(frame) => write!(f, "deliver {frame:?}"),
            ModelAction::Duplicate(frame) => write!(f, "duplicate {frame:?}"),
            ModelAction::Drop(frame) => write!(f, "drop {frame:?}"),
            ModelAction::Persist(id) => write!(f, "persist {id}"),
            ModelAction::Crash(id) => write!(f, "crash {id}"),
            ModelAction::Restart(id) => write!(f, "restart {id}"),
            ModelAction::Propose(id) => write!(f, "propose {id}"),
            ModelAction::Compact(id) => write!(f, "compact {id}"),
            ModelAction::Change(id, change) => {
                write!(f, "change {id} {}", crate::sim::describe_change(*change))
            }
            ModelAction::Read(id) => write!(f, "read {id}"),
            ModelAction::Transfer(id, to) => write!(f, "transfer {id} to {to}"),
        }
    }
}

/// The command a model client proposes as its `n`th request: unique, so the checker can tell
/// which write a reply is about.
#[must_use]
pub fn command(request_id: RequestId) -> Vec<u8> {
    format!("c{}", request_id.0).into_bytes()
}

/// Membership change requests and reads get ids apart from proposals.
const CHANGE_REQUEST_ID_BASE: u64 = 1 << 62;
const READ_REQUEST_ID_BASE: u64 = 1_000;

/// What one step of one node did, for traces.
#[derive(Clone, Debug, Default)]
pub struct StepRecord {
    pub node: Option<NodeId>,
    /// The write this step asked for.
    pub persist: Option<PersistRequest>,
    /// The write a `Persist` action made durable, before its `PersistDone` step (with instant
    /// persists, the first write the action completed).
    pub completed: Option<PersistRequest>,
    pub sends: Vec<Envelope>,
    pub replies: Vec<(RequestId, Reply)>,
    pub role_before: Option<(Role, raft_core::Term)>,
}

/// The model of a cluster running the real core.
#[derive(Clone, Debug)]
pub struct RaftModel {
    pub config: ModelConfig,
    interners: Arc<Interners>,
}

impl RaftModel {
    #[must_use]
    pub fn new(config: ModelConfig) -> RaftModel {
        RaftModel {
            config,
            interners: Arc::default(),
        }
    }

    fn set_slot(&self, state: &mut ClusterState, index: usize, slot: NodeSlot) {
        state.slots[index] = self.interners.slots.intern(slot);
    }

    fn set_checker(&self, state: &mut ClusterState, checker: Checker) {
        state.checker = self.interners.checkers.intern(checker);
    }

    fn set_committed_membership(&self, state: &mut ClusterState, membership: Membership) {
        if *state.committed_membership != membership {
            state.committed_membership = self.interners.memberships.intern(membership);
        }
    }

    fn violate(state: &mut ClusterState, violation: Violation) {
        state.violation = Some(Box::new(violation));
    }

    fn start_node(&self, state: &mut ClusterState, index: usize) {
        let mut slot = (*state.slots[index]).clone();
        let config = self.config.node_config(slot.id);
        let fresh = *slot.durable == DurableState::default();
        let node = if fresh {
            Node::new(config).map_err(|e| e.to_string())
        } else {
            Node::restore(config, (*slot.durable).clone()).map_err(|e| e.to_string())
        };
        let mut node = match node {
            Ok(node) => node,
            Err(error) => {
                RaftModel::violate(
                    state,
                    Violation {
                        invariant: "durable_state_restores",
                        detail: format!("{} cannot restart: {error}", slot.id),
                    },
                );
                return;
            }
        };
        if let Some(mutation) = &self.config.mutation {
            (mutation.apply)(&mut node);
        }
        let snapshot = slot.durable.snapshot.as_ref();
        let mut checker = (*state.checker).clone();
        let started = checker.on_start(
            &node,
            snapshot.map(|s| (s.meta.last_included_index, s.meta.last_included_term)),
        );
        self.set_checker(state, checker);
        if let Err(violation) = started {
            RaftModel::violate(state, violation);
        }
        if let Some(snapshot) = snapshot {
            self.set_committed_membership(state, snapshot.meta.membership.clone());
        }
        slot.node = Some(node);
        self.set_slot(state, index, slot);
    }

    /// One step of the node in slot `index`, the routing of its actions, and every checker.
    fn step(&self, state: &mut ClusterState, index: usize, input: Input) -> StepRecord {
        let mut record = StepRecord::default();
        let mut slot = (*state.slots[index]).clone();
        let Some(node) = slot.node.as_mut() else {
            return record;
        };
        let id = node.id();
        record.node = Some(id);
        let before = Observed::of(node);
        record.role_before = Some((before.role, before.term));
        let on_timeout_now = matches!(
            &input,
            Input::Receive(Envelope {
                message: raft_core::Message::TimeoutNow,
                ..
            })
        );
        let stepped = catch_unwind(AssertUnwindSafe(|| node.step(input)));
        let actions = match stepped {
            Ok(actions) => actions,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                RaftModel::violate(
                    state,
                    Violation {
                        invariant: "node_invariant",
                        detail: format!("{id} panicked: {message}"),
                    },
                );
                return record;
            }
        };
        let mut applied = Vec::new();
        let mut applied_snapshot = None;
        for action in actions {
            match action {
                Action::Persist(request) => record.persist = Some(request),
                Action::Send(envelope) => record.sends.push(envelope),
                Action::Apply { entries } => applied.extend(entries),
                Action::ApplySnapshot { snapshot } => applied_snapshot = Some(snapshot),
                Action::Reply { request_id, reply } => record.replies.push((request_id, reply)),
            }
        }
        for entry in &applied {
            if let EntryPayload::Membership(membership) = &entry.payload {
                self.set_committed_membership(state, membership.clone());
            }
        }
        if let Some(snapshot) = &applied_snapshot {
            self.set_committed_membership(state, snapshot.meta.membership.clone());
        }
        let persist = record.persist.as_ref();
        let effects = StepEffects {
            persisted_snapshot: persist
                .and_then(|p| p.snapshot.as_ref())
                .map(|s| (s.meta.last_included_index, s.meta.last_included_term)),
            splice: persist.and_then(|p| p.log.as_ref()),
            applied_snapshot: applied_snapshot.as_ref().map(|s| {
                (
                    s.meta.last_included_index,
                    s.meta.last_included_term,
                    s.data.as_slice(),
                )
            }),
            applied: &applied,
            replies: &record.replies,
        };
        let commands = |request_id: RequestId| {
            (request_id.0 < READ_REQUEST_ID_BASE).then(|| command_hash(&command(request_id)))
        };
        let mut checker = (*state.checker).clone();
        let checked = checker.after_step(node, before, &effects, commands);
        self.set_checker(state, checker);
        if let Err(violation) = checked {
            RaftModel::violate(state, violation);
        }
        if on_timeout_now && before.role != Role::Candidate && node.role() == Role::Candidate {
            state.used.transferred = true;
        }
        if let Some(request) = &record.persist {
            slot.pending.push_back(request.clone());
        }
        self.set_slot(state, index, slot);
        self.record_replies(state, &record.replies);
        if !record.sends.is_empty() {
            let mut network = (*state.network).clone();
            for envelope in &record.sends {
                network.insert(self.interners.frames.intern(Frame::of(envelope)));
            }
            state.network = self.interners.networks.intern(network);
        }
        record
    }

    /// The client history learns of each reply (and checks it).
    fn record_replies(&self, state: &mut ClusterState, replies: &[(RequestId, Reply)]) {
        let Some(clients) = &state.clients else {
            return;
        };
        if replies.is_empty() {
            return;
        }
        let mut clients = (**clients).clone();
        let mut checked = Ok(());
        for (request_id, reply) in replies {
            checked = checked.and(clients.on_reply(*request_id, reply));
        }
        state.clients = Some(self.interners.histories.intern(clients));
        if let Err(violation) = checked {
            if state.violation.is_none() {
                RaftModel::violate(state, violation);
            }
        }
    }

    /// A client invokes an operation at `id` (`command`: `None` for a read).
    fn record_invocation(
        &self,
        state: &mut ClusterState,
        request_id: RequestId,
        id: NodeId,
        command: Option<&[u8]>,
    ) {
        if let Some(clients) = &state.clients {
            let mut clients = (**clients).clone();
            clients.invoke(request_id, id, command);
            state.clients = Some(self.interners.histories.intern(clients));
        }
    }

    fn remove_frame(&self, state: &mut ClusterState, frame: &Frame) {
        let mut network = (*state.network).clone();
        network.remove(frame);
        state.network = self.interners.networks.intern(network);
    }

    /// Applies `action` to `state`; the record says what the step it caused did.
    pub fn apply(&self, state: &mut ClusterState, action: &ModelAction) -> StepRecord {
        state.depth += 1;
        let record = match action {
            ModelAction::Tick(id) => {
                if self.config.max_ticks.is_some() {
                    state.used.ticks += 1;
                }
                if self.config.lease_reads {
                    let next = slot_index(*id).map_or(0, |index| index + 1);
                    state.clock = u8::try_from(next % state.slots.len()).unwrap_or(0);
                }
                self.step_id(state, *id, Input::Tick)
            }
            ModelAction::Deliver(frame) => {
                self.remove_frame(state, frame);
                self.step_id(state, frame.to, Input::Receive(frame.envelope()))
            }
            ModelAction::Duplicate(frame) => {
                state.used.duplicates += 1;
                self.step_id(state, frame.to, Input::Receive(frame.envelope()))
            }
            ModelAction::Drop(frame) => {
                self.remove_frame(state, frame);
                StepRecord::default()
            }
            ModelAction::Persist(id) => self.persist(state, *id),
            ModelAction::Crash(id) => {
                self.crash(state, *id);
                StepRecord::default()
            }
            ModelAction::Restart(id) => {
                if let Some(index) = slot_index(*id) {
                    self.start_node(state, index);
                }
                StepRecord::default()
            }
            ModelAction::Propose(id) => {
                state.used.proposals += 1;
                let request_id = RequestId(u64::from(state.used.proposals));
                let command = command(request_id);
                self.record_invocation(state, request_id, *id, Some(&command));
                self.step_id(
                    state,
                    *id,
                    Input::Propose {
                        request_id,
                        command,
                    },
                )
            }
            ModelAction::Read(id) => {
                state.used.reads += 1;
                let request_id = RequestId(READ_REQUEST_ID_BASE + u64::from(state.used.reads));
                self.record_invocation(state, request_id, *id, None);
                self.step_id(state, *id, Input::Read { request_id })
            }
            ModelAction::Transfer(id, to) => {
                state.used.transfers += 1;
                self.step_id(state, *id, Input::TransferLeader { to: *to })
            }
            ModelAction::Compact(id) => {
                state.used.compactions += 1;
                let index = state.node(*id).map_or(LogIndex::ZERO, Node::applied_index);
                let data = state.checker.snapshot_at(index).unwrap_or_default();
                self.step_id(state, *id, Input::Compact { index, data })
            }
            ModelAction::Change(id, change) => {
                state.used.changes += 1;
                let request_id = RequestId(CHANGE_REQUEST_ID_BASE + u64::from(state.used.changes));
                let input = Input::ChangeMembership {
                    request_id,
                    change: *change,
                };
                self.step_id(state, *id, input)
            }
        };
        let mut record = record;
        if self.config.instant_persists {
            self.complete_writes(state, &mut record);
        }
        if state.violation.is_none() {
            self.check_acked_durable(state);
        }
        record
    }

    /// With instant persists: completes every pending write (and those the completions ask
    /// for), folding what those steps sent and replied into `record`.
    fn complete_writes(&self, state: &mut ClusterState, record: &mut StepRecord) {
        while state.violation.is_none() {
            let Some(id) = state
                .slots
                .iter()
                .find(|slot| !slot.pending.is_empty())
                .map(|slot| slot.id)
            else {
                return;
            };
            let done = self.persist(state, id);
            record.completed = record.completed.take().or(done.completed);
            record.sends.extend(done.sends);
            record.replies.extend(done.replies);
        }
    }

    fn step_id(&self, state: &mut ClusterState, id: NodeId, input: Input) -> StepRecord {
        match slot_index(id).filter(|&i| i < state.slots.len()) {
            Some(index) => self.step(state, index, input),
            None => StepRecord::default(),
        }
    }

    fn persist(&self, state: &mut ClusterState, id: NodeId) -> StepRecord {
        let Some(index) = slot_index(id).filter(|&i| i < state.slots.len()) else {
            return StepRecord::default();
        };
        let mut slot = (*state.slots[index]).clone();
        let Some(request) = slot.pending.pop_front() else {
            return StepRecord::default();
        };
        let mut durable = (*slot.durable).clone();
        durable.apply_owned(request.clone());
        let term = durable.hard_state.current_term;
        slot.durable = self.interners.durable.intern(durable);
        self.set_slot(state, index, slot);
        let mut checker = (*state.checker).clone();
        checker.on_durable_term(id, term);
        self.set_checker(state, checker);
        let mut record = self.step(
            state,
            index,
            Input::PersistDone {
                persist_id: request.persist_id,
            },
        );
        record.completed = Some(request);
        record
    }

    fn crash(&self, state: &mut ClusterState, id: NodeId) {
        let Some(index) = slot_index(id).filter(|&i| i < state.slots.len()) else {
            return;
        };
        state.used.crashes += 1;
        let mut slot = (*state.slots[index]).clone();
        slot.node = None;
        slot.pending.clear();
        let term = slot.durable.hard_state.current_term;
        self.set_slot(state, index, slot);
        let mut checker = (*state.checker).clone();
        checker.on_durable_term(id, term);
        checker.on_crash(id);
        self.set_checker(state, checker);
    }

    fn check_acked_durable(&self, state: &mut ClusterState) {
        let voters = if state.committed_membership.voters.is_empty() {
            self.config.voters()
        } else {
            state.committed_membership.voters.clone()
        };
        let slots = &state.slots;
        let durable = |id: NodeId| {
            slot_index(id)
                .and_then(|i| slots.get(i))
                .map(|s| &*s.durable)
        };
        if let Err(violation) = state
            .checker
            .check_acked_durable_on_majority(&voters, durable)
        {
            RaftModel::violate(state, violation);
        }
    }

    /// The state every run starts from: every node fresh and up, nothing in flight.
    #[must_use]
    pub fn initial_state(&self) -> ClusterState {
        let durable = self.interners.durable.intern(DurableState::default());
        let slots = (1..=self.config.slot_count() as u64)
            .map(|id| {
                self.interners.slots.intern(NodeSlot {
                    id: NodeId(id),
                    node: None,
                    pending: VecDeque::new(),
                    durable: durable.clone(),
                })
            })
            .collect();
        let mut state = ClusterState {
            slots,
            network: self.interners.networks.intern(Network::default()),
            used: Used::default(),
            checker: self.interners.checkers.intern(Checker::new()),
            committed_membership: self.interners.memberships.intern(Membership::default()),
            clients: (self.config.max_reads > 0)
                .then(|| self.interners.histories.intern(ClientHistory::default())),
            clock: 0,
            violation: None,
            depth: 0,
        };
        for index in 0..state.slots.len() {
            self.start_node(&mut state, index);
        }
        state
    }

    fn node_actions(&self, state: &ClusterState, slot: &NodeSlot, actions: &mut Vec<ModelAction>) {
        let id = slot.id;
        let Some(node) = &slot.node else {
            actions.push(ModelAction::Restart(id));
            return;
        };
        // Depth-first search tries the last action first: faults last, progress first.
        if state.used.crashes < self.config.max_crashes {
            actions.push(ModelAction::Crash(id));
        }
        let may_tick = self
            .config
            .max_ticks
            .is_none_or(|max| state.used.ticks < max);
        if may_tick && (!self.config.lease_reads || self.ticks_next(state) == Some(id)) {
            actions.push(ModelAction::Tick(id));
        }
        // A follower only answers a proposal or a read `NotLeader`, which changes nothing.
        let leads = node.role() == Role::Leader;
        if leads && state.used.proposals < self.config.max_proposals {
            actions.push(ModelAction::Propose(id));
        }
        if leads && state.used.reads < self.config.max_reads {
            actions.push(ModelAction::Read(id));
        }
        if leads && state.used.transfers < self.config.max_transfers {
            for &to in &node.membership().voters {
                if to != id {
                    actions.push(ModelAction::Transfer(id, to));
                }
            }
        }
        if !slot.pending.is_empty() {
            actions.push(ModelAction::Persist(id));
        }
        let snapshot_index = slot
            .durable
            .snapshot
            .as_ref()
            .map_or(LogIndex::ZERO, |s| s.meta.last_included_index);
        if state.used.compactions < self.config.max_compactions
            && node.applied_index() > snapshot_index
        {
            actions.push(ModelAction::Compact(id));
        }
        if leads && state.used.changes < self.config.max_changes {
            self.change_actions(node, actions);
        }
    }

    /// With lease reads, the server whose turn it is to tick: the first one up from the clock's
    /// slot on (a crashed server's clock stops, and the others keep their turns).
    fn ticks_next(&self, state: &ClusterState) -> Option<NodeId> {
        let count = state.slots.len();
        (0..count)
            .map(|offset| (usize::from(state.clock) + offset) % count)
            .map(|index| &state.slots[index])
            .find(|slot| slot.node.is_some())
            .map(|slot| slot.id)
    }

    /// Single-server changes a leader may be asked for: add the spare as a learner, promote
    /// it, or remove any server.
    fn change_actions(&self, leader: &Node, actions: &mut Vec<ModelAction>) {
        let id = leader.id();
        let membership = leader.membership();
        if let Some(spare) = self.config.spare() {
            if !membership.contains(spare) {
                actions.push(ModelAction::Change(id, MembershipChange::AddLearner(spare)));
            } else if membership.learners.contains(&spare) {
                actions.push(ModelAction::Change(
                    id,
                    MembershipChange::PromoteLearner(spare),
                ));
            }
        }
        for &server in membership.voters.iter().chain(&membership.learners) {
            actions.push(ModelAction::Change(id, MembershipChange::Remove(server)));
        }
    }
}

impl Model for RaftModel {
    type State = ClusterState;
    type Action = ModelAction;

    fn init_states(&self) -> Vec<ClusterState> {
        let state = self.initial_state();
        if self.symmetric() {
            return vec![self.canonical(state).0];
        }
        vec![state]
    }

    fn actions(&self, state: &ClusterState, actions: &mut Vec<ModelAction>) {
        if state.violation.is_some() || state.depth >= self.config.depth {
            return;
        }
        for slot in &state.slots {
            self.node_actions(state, slot, actions);
        }
        for frame in state.network.iter() {
            if state.node(frame.to).is_some() {
                actions.push(ModelAction::Deliver(frame.clone()));
                if state.used.duplicates < self.config.max_duplicates {
                    actions.push(ModelAction::Duplicate(frame.clone()));
                }
            }
            if self.config.drops {
                actions.push(ModelAction::Drop(frame.clone()));
            }
        }
    }

    fn next_state(&self, state: &ClusterState, action: ModelAction) -> Option<ClusterState> {
        let mut next = state.clone();
        self.apply(&mut next, &action);
        if self.symmetric() {
            return Some(self.canonical(next).0);
        }
        Some(next)
    }

    fn within_boundary(&self, state: &ClusterState) -> bool {
        state
            .slots
            .iter()
            .filter_map(|slot| slot.node.as_ref())
            .all(|node| node.term().0 <= self.config.max_term)
    }

    fn format_action(&self, action: &ModelAction) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties: Vec<Property<Self>> = vec![
            Property::always("election safety", |_, s| holds(s, ELECTION_SAFETY)),
            Property::always("log matching", |_, s| holds(s, LOG_MATCHING)),
            Property::always("leader completeness", |_, s| holds(s, LEADER_COMPLETENESS)),
            Property::always("state machine safety", |_, s| {
                holds(s, STATE_MACHINE_SAFETY)
            }),
            Property::always("commit and term monotonic", |_, s| holds(s, MONOTONIC)),
            Property::always("acknowledged writes durable", |_, s| {
                holds(s, ACKNOWLEDGED_WRITES)
            }),
            Property::always("node invariants", |_, s| holds(s, NODE_INVARIANTS)),
            Property::always("other checker invariants", |_, s: &ClusterState| {
                s.violation
                    .as_ref()
                    .is_none_or(|v| GROUPS.iter().any(|group| group.contains(&v.invariant)))
            }),
        ];
        properties.push(Property::always("linearizable history", |_, s| {
            holds(s, LINEARIZABLE)
        }));
        properties.push(Property::sometimes(
            "a command commits",
            |_, s: &ClusterState| !s.checker.acked().is_empty(),
        ));
        if self.config.max_reads > 0 {
            properties.push(Property::sometimes(
                "a read is served",
                |_, s: &ClusterState| s.clients.as_ref().is_some_and(|c| c.read_served),
            ));
        }
        if self.config.max_transfers > 0 {
            properties.push(Property::sometimes(
                "a server campaigns on TimeoutNow",
                |_, s: &ClusterState| s.used.transferred,
            ));
        }
        properties
    }
}

/// The checker's invariants, grouped into the model's `always` properties. A violation of an
/// invariant named in no group (a checker added later) fails "other checker invariants".
const ELECTION_SAFETY: &[&str] = &[
    "election_safety",
    "election_safety_across_restarts",
    "only_voters_lead",
    "removed_leader_steps_down",
];
const LOG_MATCHING: &[&str] = &[
    "log_matching",
    "log_contiguous",
    "leader_append_only",
    "persist_covers_log_changes",
];
const LEADER_COMPLETENESS: &[&str] = &["leader_completeness"];
const STATE_MACHINE_SAFETY: &[&str] = &[
    "state_machine_safety",
    "apply_in_order_once",
    "apply_only_committed",
    "snapshot_only_committed",
    "read_after_apply",
    "read_covers_commit",
];
const MONOTONIC: &[&str] = &["commit_monotonic", "term_monotonic", "commit_within_log"];
const ACKNOWLEDGED_WRITES: &[&str] = &[
    "acknowledged_write_committed",
    "acknowledged_write_durable_on_majority",
    "dropped_write_not_committed",
];
const NODE_INVARIANTS: &[&str] = &["node_invariant", "durable_state_restores"];
const LINEARIZABLE: &[&str] = &["linearizable_history"];
const GROUPS: &[&[&str]] = &[
    ELECTION_SAFETY,
    LOG_MATCHING,
    LEADER_COMPLETENESS,
    STATE_MACHINE_SAFETY,
    MONOTONIC,
    ACKNOWLEDGED_WRITES,
    NODE_INVARIANTS,
    LINEARIZABLE,
];

fn holds(state: &ClusterState, group: &[&str]) -> bool {
    state
        .violation
        .as_ref()
        .is_none_or(|violation| !group.contains(&violation.invariant))
}
