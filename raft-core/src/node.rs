//! The step pipeline and the term logic shared by every role (Figure 2, "All Servers").

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::action::{Action, Reply};
use crate::config::Config;
use crate::error::{ConfigError, RestoreError};
use crate::input::Input;
use crate::log::RaftLog;
use crate::log_entry::Entry;
use crate::membership::Membership;
use crate::message::{
    AppendEntries, AppendEntriesResponse, AppendResult, Envelope, Message, RequestVoteResponse,
};
use crate::persist::{
    DurableState, HardState, LogSplice, PersistRequest, PersistTracker, Snapshot,
};
use crate::progress::Progress;
use crate::timer::ElectionTimer;
use crate::types::{Incarnation, LogIndex, NodeId, PersistId, RequestId, Role, Term};

/// One Raft server. Feed it `Input`s with `step`; carry out the `Action`s it returns.
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) config: Config,
    // Persistent state (Figure 2).
    pub(crate) current_term: Term,
    pub(crate) voted_for: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The latest membership in the log (or snapshot, or initial config), and the index of the
    /// entry that set it (0 when it comes from the config).
    pub(crate) membership: Membership,
    pub(crate) membership_index: LogIndex,
    /// The latest snapshot; the log holds what follows it.
    pub(crate) snapshot: Option<Snapshot>,
    /// Follower: chunks of a snapshot the leader is sending.
    pub(crate) incoming_snapshot: Option<Snapshot>,
    /// Follower: AppendEntries that arrived before the ones they follow.
    pub(crate) early_appends: crate::early_appends::EarlyAppends,
    // Volatile state.
    pub(crate) role: Role,
    pub(crate) leader_id: Option<NodeId>,
    pub(crate) commit_index: LogIndex,
    pub(crate) applied_index: LogIndex,
    pub(crate) election_timer: ElectionTimer,
    pub(crate) heartbeat_elapsed_ticks: u32,
    /// Ticks since this node was constructed (or restored): the clock of leader leases.
    pub(crate) ticks: u64,
    pub(crate) persist: PersistTracker,
    /// Candidate: peers that granted their vote this term.
    pub(crate) votes_granted: BTreeMap<NodeId, Incarnation>,
    /// Candidate: the persist that makes this node's vote for itself durable.
    pub(crate) self_vote_persist: Option<PersistId>,
    /// Pre-candidate: `Some` while asking for pre-votes, with the peers that granted theirs.
    pub(crate) pre_votes_granted: Option<BTreeSet<NodeId>>,
    /// Leader: one entry per other voter.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Leader: ticks since the last check that a quorum is still in touch.
    pub(crate) check_quorum_elapsed_ticks: u32,
    /// Leader: a leadership transfer under way.
    pub(crate) transfer: Option<crate::transfer::Transfer>,
    /// Leader: linearizable reads not yet answered.
    pub(crate) reads: crate::read_index::ReadQueue,
    /// Proposals this node accepted whose fate is not yet reported: index -> (term, request).
    pub(crate) pending_proposals: BTreeMap<LogIndex, (Term, RequestId)>,
    pub(crate) stats: Stats,
    pub(crate) out: StepOutput,
    /// Bugs reintroduced on purpose (the `bug-catalogue` feature); none otherwise.
    #[cfg_attr(not(feature = "bug-catalogue"), allow(dead_code))]
    pub(crate) bugs: crate::bugs::BugSet,
}

/// Counters for traces and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages ignored: addressed elsewhere, from a non-member, from an older term, or
    /// inconsistent with what a correct leader could send.
    pub messages_ignored: u64,
    pub elections_started: u64,
    pub persist_requests: u64,
    /// AppendEntries that arrived before the ones they follow and were held for them.
    pub early_appends_held: u64,
    /// Leader: AppendEntries sent again to fill a gap a follower reported before the requests it
    /// held (`AppendResult::Gap`).
    pub gaps_resent: u64,
    /// Leader: AppendEntries sent again because nothing was acknowledged after the last one
    /// in flight for `Config::tail_resend_ticks`.
    pub tails_resent: u64,
}

/// A snapshot of a node's state for display and checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub leader_id: Option<NodeId>,
    pub commit_index: LogIndex,
    pub applied_index: LogIndex,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
    /// The last log index known durable on this node.
    pub durable_index: LogIndex,
    pub last_persist_issued: PersistId,
    pub last_persist_durable: PersistId,
    pub messages_held: usize,
    pub stats: Stats,
}

/// What the current step has produced so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepOutput {
    pub(crate) hard_state_dirty: bool,
    /// A snapshot this step adopted: to persist, and to apply when it came from the leader.
    pub(crate) snapshot_to_persist: Option<Snapshot>,
    pub(crate) snapshot_to_apply: Option<Snapshot>,
    /// The lowest log index this step changed.
    pub(crate) unstable_from: Option<LogIndex>,
    pub(crate) requests: Vec<Envelope>,
    pub(crate) responses: Vec<Envelope>,
    pub(crate) replies: Vec<(RequestId, Reply)>,
}

impl Node {
    /// A node with empty durable state: term 0, no vote, empty log.
    pub fn new(config: Config) -> Result<Node, ConfigError> {
        config.validate()?;
        Ok(Node::from_parts(
            config,
            HardState::default(),
            RaftLog::default(),
        ))
    }

    /// A node restarted from what its earlier incarnation made durable.
    pub fn restore(config: Config, durable: DurableState) -> Result<Node, RestoreError> {
        config.validate()?;
        let current_term = durable.hard_state.current_term;
        let (snapshot_index, snapshot_term) =
            durable
                .snapshot
                .as_ref()
                .map_or((LogIndex::ZERO, Term::ZERO), |snapshot| {
                    (
                        snapshot.meta.last_included_index,
                        snapshot.meta.last_included_term,
                    )
                });
        for (field, value) in [
            ("current_term", current_term.0),
            ("snapshot last_included_index", snapshot_index.0),
            ("snapshot last_included_term", snapshot_term.0),
        ] {
            if value > crate::types::ACCEPTED_VALUE_MAX {
                return Err(RestoreError::OutOfRange { field, value });
            }
        }
        if snapshot_term > current_term {
            return Err(RestoreError::EntryTermAboveCurrent {
                index: snapshot_index,
                term: snapshot_term,
                current_term,
            });
        }
        let mut previous_term = snapshot_term;
        for (position, entry) in durable.entries.iter().enumerate() {
            if entry.index != LogIndex(snapshot_index.0 + position as u64 + 1) {
                return Err(RestoreError::NonContiguousLog {
                    position,
                    index: entry.index,
                });
            }
            if entry.term < previous_term {
                return Err(RestoreError::TermDecreases { index: entry.index });
            }
            if entry.term > current_term {
                return Err(RestoreError::EntryTermAboveCurrent {
                    index: entry.index,
                    term: entry.term,
                    current_term,
                });
            }
            previous_term = entry.term;
        }
        let log = RaftLog::new(snapshot_index, snapshot_term, durable.entries);
        let mut node = Node::from_parts(config, durable.hard_state, log);
        // The driver restores its state machine from the snapshot: everything in it is applied.
        node.commit_index = snapshot_index;
        node.applied_index = snapshot_index;
        node.snapshot = durable.snapshot;
        node.recompute_membership();
        Ok(node)
    }

    fn from_parts(config: Config, hard_state: HardState, log: RaftLog) -> Node {
        let election_timer = ElectionTimer::new(
            config.rng_seed,
            config.election_timeout_ticks_min,
            config.election_timeout_ticks_max,
        );
        Node {
            current_term: hard_state.current_term,
            voted_for: hard_state.voted_for,
            persist: PersistTracker::new(log.last_index()),
            membership: Membership::new(config.voters.iter().copied()),
            membership_index: LogIndex::ZERO,
            log,
            snapshot: None,
            incoming_snapshot: None,
            early_appends: crate::early_appends::EarlyAppends::default(),
            role: Role::Follower,
            leader_id: None,
            commit_index: LogIndex::ZERO,
            applied_index: LogIndex::ZERO,
            election_timer,
            heartbeat_elapsed_ticks: 0,
            ticks: 0,
            votes_granted: BTreeMap::new(),
            self_vote_persist: None,
            pre_votes_granted: None,
            progress: BTreeMap::new(),
            check_quorum_elapsed_ticks: 0,
            transfer: None,
            reads: crate::read_index::ReadQueue::default(),
            pending_proposals: BTreeMap::new(),
            stats: Stats::default(),
            out: StepOutput::default(),
            bugs: crate::bugs::BugSet::default(),
            config,
        }
    }

    /// Feeds one input and returns every action it causes, in the order
    /// Persist, Send..., Apply, Reply... (see the crate documentation for the contract).
    #[must_use]
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        self.step_into(input, &mut actions);
        actions
    }

    /// [`Node::step`], appending the actions to `actions` instead of returning a new Vec: a
    /// driver that drains and reuses one buffer makes no allocation for the actions of a step.
    pub fn step_into(&mut self, input: Input, actions: &mut Vec<Action>) {
        match input {
            Input::Tick => self.on_tick(),
            Input::Receive(envelope) => self.on_receive(envelope),
            Input::Propose {
                request_id,
                command,
            } => self.on_propose(core::iter::once((request_id, command))),
            Input::ProposeBatch { proposals } => self.on_propose(proposals),
            Input::PersistDone { persist_id } => self.on_persist_done(persist_id),
            Input::Read { request_id } => self.on_reads(&[request_id]),
            Input::ReadBatch { request_ids } => self.on_reads(&request_ids),
            Input::TransferLeader { to } => self.on_transfer_leader(to),
            Input::Compact { index, data } => self.on_compact(index, data),
            Input::ChangeMembership { request_id, change } => {
                self.on_change_membership(request_id, change);
            }
        }
        self.finish_step(actions);
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        match self.role {
            Role::Leader => {
                self.heartbeat_elapsed_ticks += 1;
                if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
                    self.heartbeat_elapsed_ticks = 0;
                    self.on_heartbeat_timeout();
                }
                self.check_quorum_elapsed_ticks += 1;
                if self.check_quorum_elapsed_ticks >= self.config.election_timeout_ticks_min {
                    self.check_quorum_elapsed_ticks = 0;
                    self.on_check_quorum_timeout();
                }
                self.tick_transfer();
                self.resend_quiet_tails();
            }
            Role::Follower | Role::Candidate => {
                self.maybe_report_append_gap();
                if self.election_timer.tick() {
                    self.on_election_timeout();
                }
            }
        }
    }

    fn on_receive(&mut self, envelope: Envelope) {
        if !envelope.is_within_accepted_range() {
            self.stats.messages_ignored += 1;
            return;
        }
        let Envelope {
            from,
            to,
            term,
            incarnation,
            message,
        } = envelope;
        if to != self.config.id
            || from == self.config.id
            || !self.accepts_messages_from(from, &message)
        {
            self.stats.messages_ignored += 1;
            return;
        }
        if (term > self.current_term && self.ignores_higher_term_in_lease(from, &message))
            || (message == Message::TimeoutNow && !self.honours_timeout_now(from, term))
        {
            self.stats.messages_ignored += 1;
            return;
        }
        // Pre-votes ask about a future term: they change no one's term (Raft thesis §9.6).
        match message {
            Message::PreVote(request) => {
                return self.on_pre_vote(from, incarnation, term, &request)
            }
            Message::PreVoteResponse(response) => {
                return self.on_pre_vote_response(from, incarnation, term, response)
            }
            _ => {}
        }
        if term > self.current_term {
            // Figure 2, All Servers: "If RPC request or response contains term T > currentTerm:
            // set currentTerm = T, convert to follower".
            let leader = matches!(message, Message::AppendEntries(_)).then_some(from);
            self.become_follower(term, leader);
        } else if term < self.current_term {
            self.on_stale_term_message(from, &message);
            return;
        }
        if self.role == Role::Leader && !self.on_peer_incarnation(from, incarnation) {
            self.stats.messages_ignored += 1;
            return;
        }
        if let Some(progress) = self.progress.get_mut(&from) {
            progress.recent_active = true;
        }
        match message {
            Message::RequestVote(request) => self.on_request_vote(from, incarnation, &request),
            Message::RequestVoteResponse(response) => {
                self.on_request_vote_response(from, incarnation, response);
            }
            Message::AppendEntries(request) => self.on_append_entries(from, request),
            Message::AppendEntriesResponse(response) => {
                self.on_append_entries_response(from, response);
            }
            Message::TimeoutNow => self.on_timeout_now(),
            Message::InstallSnapshot(request) => self.on_install_snapshot(from, request),
            Message::InstallSnapshotResponse(response) => {
                self.on_install_snapshot_response(from, &response);
            }
            Message::PreVote(_) | Message::PreVoteResponse(_) => {}
        }
    }

    /// Members may send anything. A node outside this node's membership may be a leader whose
    /// log adds this node (or a newer membership) that this node has not seen yet, so its
    /// replication is accepted; but it cannot be a candidate this node should vote for, nor
    /// hand it leadership.
    ///
    /// A vote request from outside the membership is processed when the candidate's log is at
    /// least as up-to-date as this node's (thesis §4.1: servers process vote requests "without
    /// consulting their current configurations"): a voter added after this node's latest
    /// membership entry holds that entry, which this node lacks, and may need this node's vote
    /// to be elected; a voter that an uncommitted entry removes holds that entry like this node
    /// does, and still campaigns until it commits, so ignoring it would let it take the votes
    /// of the old membership's voters without ever winning. A server removed while it was away
    /// lacks the entry that removed it, so it cannot disrupt this node.
    ///
    /// A voter that only an uncommitted entry here removes is still a voter of the committed
    /// membership, and its vote requests are processed whatever its log: this node takes its
    /// term and refuses the vote by the log rule. Ignored, it would leave this node a term
    /// behind it at every election, so that this node, which may be the only one able to win,
    /// campaigns each time for a term the other voters already voted in.
    fn accepts_messages_from(&self, from: NodeId, message: &Message) -> bool {
        if self.membership.contains(from) {
            return true;
        }
        match message {
            Message::AppendEntries(_) | Message::InstallSnapshot(_) => true,
            Message::RequestVote(request) | Message::PreVote(request) => {
                self.log
                    .is_up_to_date(request.last_log_index, request.last_log_term)
                    || self.is_committed_voter(from)
            }
            _ => false,
        }
    }

    /// Whether `id` is a voter of the membership at this node's commit index (its latest
    /// membership may be newer, and not yet committed).
    fn is_committed_voter(&self, id: NodeId) -> bool {
        self.membership_index > self.commit_index
            && self.membership_at(self.commit_index).0.is_voter(id)
    }

    /// Leader stickiness (Raft thesis §4.2.3): while this node hears from a live leader, vote
    /// requests for a higher term are ignored, unless the leader itself asked for the election.
    /// Replication from a higher term is ignored too when its sender is outside this node's
    /// membership: a leader this node has not heard of yet can only exist once the leader it
    /// hears from has lost its quorum, so it waits at most an election timeout, while a
    /// stranger cannot depose a live leader's followers with a made-up term.
    fn ignores_higher_term_in_lease(&self, from: NodeId, message: &Message) -> bool {
        match message {
            Message::RequestVote(request) | Message::PreVote(request) => {
                let sticky = !crate::bugs::reintroduced!(self, LeaseWithoutStickiness);
                sticky
                    && self.config.check_quorum
                    && !request.leadership_transfer
                    && self.is_in_leader_lease()
            }
            Message::AppendEntries(_) | Message::InstallSnapshot(_) => {
                !self.membership.contains(from)
                    && self.role == Role::Follower
                    && self
                        .leader_id
                        .is_some_and(|leader| self.membership.contains(leader))
                    && self.election_timer.elapsed_ticks < self.config.election_timeout_ticks_min
            }
            _ => false,
        }
    }

    /// Leadership transfer (thesis §3.10): a leader sends `TimeoutNow` to a voter that holds
    /// its whole log, in its own term. Honoured only then: from this node's current leader, a
    /// voter, in the current term. Any other `TimeoutNow` (a stranger's, an old leader's, a
    /// replayed or forged one) would let its sender depose a healthy leader, bypassing leader
    /// stickiness and breaking the premise of lease reads.
    fn honours_timeout_now(&self, from: NodeId, term: Term) -> bool {
        term == self.current_term && self.leader_id == Some(from) && self.membership.is_voter(from)
    }

    /// True while a leader is known to be alive: this node leads, or it heard from its leader
    /// less than the minimum election timeout ago. With lease reads, a node that just started
    /// also counts as having heard from a leader: before a restart it may have acknowledged one
    /// whose lease is still running.
    pub(crate) fn is_in_leader_lease(&self) -> bool {
        let min = self.config.election_timeout_ticks_min;
        match self.role {
            Role::Leader => true,
            Role::Candidate => false,
            Role::Follower => {
                (self.leader_id.is_some() && self.election_timer.elapsed_ticks < min)
                    || (self.config.lease_reads && self.ticks < u64::from(min))
            }
        }
    }

    /// Requests from an older term are answered with our term so the sender steps down;
    /// responses from an older term are dropped.
    fn on_stale_term_message(&mut self, from: NodeId, message: &Message) {
        self.stats.messages_ignored += 1;
        match message {
            Message::RequestVote(_) => self.respond(
                from,
                Message::RequestVoteResponse(RequestVoteResponse {
                    vote_granted: false,
                }),
            ),
            Message::AppendEntries(AppendEntries { read_round, .. }) => self.respond(
                from,
                Message::AppendEntriesResponse(AppendEntriesResponse {
                    read_round: *read_round,
                    result: AppendResult::StaleTerm,
                }),
            ),
            // A stale snapshot sender learns our term from any reply.
            Message::InstallSnapshot(_) => self.respond(
                from,
                Message::AppendEntriesResponse(AppendEntriesResponse {
                    read_round: 0,
                    result: AppendResult::StaleTerm,
                }),
            ),
            Message::RequestVoteResponse(_)
            | Message::AppendEntriesResponse(_)
            | Message::PreVote(_)
            | Message::PreVoteResponse(_)
            | Message::InstallSnapshotResponse(_)
            | Message::TimeoutNow => {}
        }
    }

    fn on_persist_done(&mut self, persist_id: PersistId) {
        if !self.persist.mark_durable(persist_id) {
            self.stats.messages_ignored += 1;
            return;
        }
        match self.role {
            Role::Candidate => self.maybe_win_election(),
            Role::Leader => self.maybe_advance_commit(),
            Role::Follower => {}
        }
    }

    /// One `Propose`, or the commands of a `ProposeBatch` in order.
    fn on_propose(&mut self, proposals: impl IntoIterator<Item = (RequestId, Vec<u8>)>) {
        if self.role != Role::Leader {
            let leader_hint = self.leader_id;
            for (request_id, _) in proposals {
                self.reply(request_id, Reply::NotLeader { leader_hint });
            }
            return;
        }
        self.propose_as_leader(proposals);
    }

    /// Figure 2, All Servers: "If commitIndex > lastApplied: increment lastApplied, apply
    /// `log[lastApplied]` to state machine", restricted to entries this node has made durable.
    fn take_entries_to_apply(&mut self) -> Vec<Entry> {
        let target = self.commit_index.min(self.persist.durable_index());
        if target <= self.applied_index {
            return Vec::new();
        }
        let entries = self.log.slice(self.applied_index.next(), target).to_vec();
        self.applied_index = target;
        while let Some(entry) = self.pending_proposals.first_entry() {
            if *entry.key() > target {
                break;
            }
            let index = *entry.key();
            let (term, request_id) = entry.remove();
            // An index and a term name one entry (Log Matching): the proposal committed exactly
            // when the committed entry at its index has its term.
            let reply = if self.log.term_at(index) == Some(term) {
                Reply::Committed { index, term }
            } else {
                Reply::Dropped { index, term }
            };
            self.out.replies.push((request_id, reply));
        }
        entries
    }

    fn finish_step(&mut self, actions: &mut Vec<Action>) {
        // The staging buffers are drained, not replaced, so their capacity is reused across
        // steps: a step that produces nothing allocates nothing.
        let staged = self.out.requests.len() + self.out.responses.len();
        if actions.capacity() == 0 && staged > 0 {
            // A fresh Vec from `step`: one exact allocation is cheaper than the growth path.
            *actions = Vec::with_capacity(2 + staged);
        } else {
            actions.reserve(staged);
        }
        if let Some(request) = self.take_persist_request() {
            actions.push(Action::Persist(request));
        }
        actions.extend(self.out.requests.drain(..).map(Action::Send));
        // A vote request waited for its campaign's term to be durable; if the campaign ended
        // meanwhile (it won on this very write, or a higher term came), it is moot.
        let campaigning_in = (self.role == Role::Candidate).then_some(self.current_term);
        self.persist.release(|envelope| {
            let moot = matches!(envelope.message, Message::RequestVote(_))
                && campaigning_in != Some(envelope.term);
            if !moot {
                actions.push(Action::Send(envelope));
            }
        });
        for response in self.out.responses.drain(..) {
            if let Some(envelope) = self.persist.hold_until_durable(response) {
                actions.push(Action::Send(envelope));
            }
        }
        if let Some(snapshot) = self.out.snapshot_to_apply.take() {
            actions.push(Action::ApplySnapshot { snapshot });
        }
        let entries = self.take_entries_to_apply();
        if !entries.is_empty() {
            actions.push(Action::Apply { entries });
        }
        self.release_ready_reads();
        actions.extend(
            self.out
                .replies
                .drain(..)
                .map(|(request_id, reply)| Action::Reply { request_id, reply }),
        );
        crate::invariants::check_node(self);
    }

    fn take_persist_request(&mut self) -> Option<PersistRequest> {
        let hard_state = core::mem::take(&mut self.out.hard_state_dirty).then_some(HardState {
            current_term: self.current_term,
            voted_for: self.voted_for,
        });
        let snapshot = self.out.snapshot_to_persist.take();
        let log = self.out.unstable_from.take().map(|from| LogSplice {
            from,
            entries: self.log.slice(from, self.log.last_index()).to_vec(),
        });
        if hard_state.is_none() && snapshot.is_none() && log.is_none() {
            return None;
        }
        self.stats.persist_requests += 1;
        let persist_id = self.persist.issue(self.log.last_index());
        Some(PersistRequest {
            persist_id,
            hard_state,
            snapshot,
            log,
        })
    }

    // ---- helpers shared by the roles ----

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        if term > self.current_term {
            self.current_term = term;
            self.voted_for = None;
            self.out.hard_state_dirty = true;
        }
        if self.role == Role::Leader {
            self.on_leadership_lost(leader);
        }
        self.role = Role::Follower;
        self.leader_id = leader;
        // Held requests belong to the stream of one leader in one term.
        if !crate::bugs::reintroduced!(self, EarlyAppendsOutliveTheirTerm) {
            self.early_appends.clear();
        }
        self.votes_granted.clear();
        self.self_vote_persist = None;
        self.pre_votes_granted = None;
        self.progress.clear();
        // Figure 2 restarts the election timer only on hearing from a current leader or on
        // granting a vote (the caller does that); a mere higher term must not, or candidates
        // with stale logs could keep every up-to-date server from ever campaigning. A leader's
        // timer was not running, so it starts afresh.
        if leader.is_some() || was_leader {
            self.election_timer.reset();
        }
    }

    pub(crate) fn send_request(&mut self, to: NodeId, message: Message) {
        let envelope = self.envelope(to, message);
        self.push_request(envelope);
    }

    pub(crate) fn push_request(&mut self, envelope: Envelope) {
        self.out.requests.push(envelope);
    }

    /// Responses certify durable state, so they wait for every persist issued so far.
    pub(crate) fn respond(&mut self, to: NodeId, message: Message) {
        self.send_when_durable(to, message);
    }

    /// Sends `message` once every persist issued so far is durable: the messages that certify
    /// durable state (responses, and a candidate's vote requests, which certify its term).
    pub(crate) fn send_when_durable(&mut self, to: NodeId, message: Message) {
        let envelope = self.envelope(to, message);
        self.push_response(envelope);
    }

    pub(crate) fn push_response(&mut self, envelope: Envelope) {
        self.out.responses.push(envelope);
    }

    pub(crate) fn envelope(&self, to: NodeId, message: Message) -> Envelope {
        Envelope {
            from: self.config.id,
            to,
            term: self.current_term,
            incarnation: self.config.incarnation,
            message,
        }
    }

    pub(crate) fn reply(&mut self, request_id: RequestId, reply: Reply) {
        self.out.replies.push((request_id, reply));
    }

    pub(crate) fn mark_hard_state_dirty(&mut self) {
        self.out.hard_state_dirty = true;
    }

    pub(crate) fn next_persist_id(&self) -> PersistId {
        self.persist.last_issued().next()
    }

    pub(crate) fn append_to_log(&mut self, entry: Entry) {
        let index = entry.index;
        self.on_membership_appended(&entry);
        self.log.append(entry);
        self.mark_log_unstable_from(index);
    }

    /// Removes the log suffix from `from` on (never a committed entry). Proposals there stay
    /// pending: another server may still hold the same entry and a later leader may commit it,
    /// so their fate is known only once their index commits (see `take_entries_to_apply`).
    pub(crate) fn truncate_log_from(&mut self, from: LogIndex) {
        assert!(
            from > self.commit_index,
            "committed_entries_never_truncated: truncate from {from} with commit {}",
            self.commit_index
        );
        self.log.truncate_from(from);
        if self.membership_index >= from {
            self.recompute_membership();
        }
        self.persist.on_truncate(from);
        self.mark_log_unstable_from(from);
    }

    pub(crate) fn mark_log_unstable_from(&mut self, index: LogIndex) {
        let from = self.out.unstable_from.map_or(index, |from| from.min(index));
        self.out.unstable_from = Some(from);
    }

    /// Runs this node with `bug` reintroduced, to show that a checker catches it. Testing
    /// only: the bug breaks the Raft safety rule it is named after.
    #[cfg(feature = "bug-catalogue")]
    pub fn reintroduce(&mut self, bug: crate::bugs::Bug) {
        self.bugs.insert(bug);
    }

    // ---- read-only view ----

    #[must_use]
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// This server's incarnation (`Config::incarnation`).
    #[must_use]
    pub fn incarnation(&self) -> Incarnation {
        self.config.incarnation
    }

    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    #[must_use]
    pub fn term(&self) -> Term {
        self.current_term
    }

    #[must_use]
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    #[must_use]
    pub fn leader_id(&self) -> Option<NodeId> {
        self.leader_id
    }

    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    #[must_use]
    pub fn last_log_index(&self) -> LogIndex {
        self.log.last_index()
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The membership this node follows: the latest one in its log.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The entry at `index`, if the log holds it.
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The entries with indexes in `from..=to` that the log holds.
    #[must_use]
    pub fn entries(&self, from: LogIndex, to: LogIndex) -> &[Entry] {
        self.log.slice(from, to)
    }

    /// Where this node's latest snapshot ends, and the membership as of that point.
    #[must_use]
    pub fn snapshot_meta(&self) -> Option<&crate::persist::SnapshotMeta> {
        self.snapshot.as_ref().map(|snapshot| &snapshot.meta)
    }

    /// The peer a leadership transfer is handing over to, while one is under way.
    #[must_use]
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.as_ref().map(|transfer| transfer.to)
    }

    /// True while this node is asking for pre-votes (it is still a follower of its term).
    #[must_use]
    pub fn is_pre_candidate(&self) -> bool {
        self.pre_votes_granted.is_some()
    }

    /// The leader's `match_index` for `peer`; `None` on a non-leader or for an unknown peer.
    #[must_use]
    pub fn match_index(&self, peer: NodeId) -> Option<LogIndex> {
        if peer == self.config.id && self.role == Role::Leader {
            return Some(self.persist.durable_index());
        }
        self.progress
            .get(&peer)
            .map(|progress| progress.match_index)
    }

    #[must_use]
    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: self.role,
            term: self.current_term,
            voted_for: self.voted_for,
            leader_id: self.leader_id,
            commit_index: self.commit_index,
            applied_index: self.applied_index,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            durable_index: self.persist.durable_index(),
            last_persist_issued: self.persist.last_issued(),
            last_persist_durable: self.persist.durable(),
            messages_held: self.persist.held_count(),
            stats: self.stats,
        }
    }
}
