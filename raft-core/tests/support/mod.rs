//! Shared helpers: hand-built messages for single-node tests and a small in-memory cluster
//! driver with FIFO delivery, instant persistence and link cuts.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use raft_core::{
    Action, AppendEntries, AppendEntriesResponse, AppendResult, Config, DurableState, Entry,
    EntryPayload, Envelope, Input, LogIndex, Message, Node, NodeId, PersistId, Reply, RequestId,
    RequestVote, RequestVoteResponse, Role, Term,
};

/// Figure 2 exactly: the thesis extensions (pre-vote, check-quorum) off.
pub fn config(id: u64, voters: u64) -> Config {
    let mut config = production_config(id, voters);
    config.pre_vote = false;
    config.check_quorum = false;
    config
}

/// The defaults, with short timeouts.
pub fn production_config(id: u64, voters: u64) -> Config {
    let mut config = Config::new(NodeId(id), (1..=voters).map(NodeId));
    config.heartbeat_interval_ticks = 2;
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.rng_seed = 1000 + id;
    config
}

pub fn node(id: u64, voters: u64) -> Node {
    Node::new(config(id, voters)).expect("valid test config")
}

pub fn entry(index: u64, term: u64, command: &str) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Command(command.as_bytes().to_vec().into()),
    }
}

pub fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Noop,
    }
}

/// A node whose durable state holds `terms` as its log (entry i+1 has term terms[i]).
pub fn node_with_log(id: u64, voters: u64, current_term: u64, terms: &[u64]) -> Node {
    let entries = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| entry(i as u64 + 1, t, &format!("e{}", i + 1)))
        .collect();
    let durable = DurableState {
        hard_state: raft_core::HardState {
            current_term: Term(current_term),
            voted_for: None,
        },
        snapshot: None,
        entries,
    };
    Node::restore(config(id, voters), durable).expect("valid durable state")
}

pub fn envelope(from: u64, to: u64, term: u64, message: Message) -> Envelope {
    Envelope {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        incarnation: raft_core::Incarnation(0),
        message,
    }
}

pub fn request_vote(from: u64, to: u64, term: u64, last_index: u64, last_term: u64) -> Input {
    Input::Receive(envelope(
        from,
        to,
        term,
        Message::RequestVote(RequestVote {
            last_log_index: LogIndex(last_index),
            last_log_term: Term(last_term),
            leadership_transfer: false,
        }),
    ))
}

pub fn vote_response(from: u64, to: u64, term: u64, granted: bool) -> Input {
    Input::Receive(envelope(
        from,
        to,
        term,
        Message::RequestVoteResponse(RequestVoteResponse {
            vote_granted: granted,
        }),
    ))
}

pub fn append(
    from: u64,
    to: u64,
    term: u64,
    prev: (u64, u64),
    entries: Vec<Entry>,
    commit: u64,
) -> Input {
    Input::Receive(envelope(
        from,
        to,
        term,
        Message::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(commit),
            read_round: 0,
        }),
    ))
}

pub fn append_response(from: u64, to: u64, term: u64, result: AppendResult) -> Input {
    Input::Receive(envelope(
        from,
        to,
        term,
        Message::AppendEntriesResponse(AppendEntriesResponse {
            read_round: 0,
            result,
        }),
    ))
}

pub fn sends(actions: &[Action]) -> Vec<Envelope> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send(envelope) => Some(envelope.clone()),
            _ => None,
        })
        .collect()
}

pub fn persist_id(actions: &[Action]) -> Option<PersistId> {
    actions.iter().find_map(|action| match action {
        Action::Persist(request) => Some(request.persist_id),
        _ => None,
    })
}

pub fn replies(actions: &[Action]) -> Vec<(RequestId, Reply)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Reply { request_id, reply } => Some((*request_id, reply.clone())),
            _ => None,
        })
        .collect()
}

pub fn applied(actions: &[Action]) -> Vec<Entry> {
    actions
        .iter()
        .flat_map(|action| match action {
            Action::Apply { entries } => entries.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Steps `input`, then reports the step's persist (if any) done; returns both steps' actions.
pub fn step_durably(node: &mut Node, input: Input) -> Vec<Action> {
    let mut actions = node.step(input);
    if let Some(persist_id) = persist_id(&actions) {
        actions.extend(node.step(Input::PersistDone { persist_id }));
    }
    actions
}

/// Ticks until the node starts an election; returns that step's actions.
pub fn tick_until_candidate(node: &mut Node) -> Vec<Action> {
    for _ in 0..1000 {
        let actions = node.step(Input::Tick);
        if node.role() == Role::Candidate {
            return actions;
        }
    }
    panic!("node never started an election");
}

/// Makes `node` (a fresh member of an n-voter cluster) leader with a durable vote, answering
/// its pre-votes and votes from its peers; returns the actions of the step that made it leader.
pub fn make_leader(node: &mut Node) -> Vec<Action> {
    let id = node.id().0;
    let peers: Vec<u64> = node
        .config()
        .voters
        .iter()
        .map(|n| n.0)
        .filter(|&n| n != id)
        .collect();
    let mut actions = Vec::new();
    for _ in 0..1000 {
        actions = node.step(Input::Tick);
        if node.role() != Role::Follower || node.is_pre_candidate() {
            break;
        }
    }
    for &peer in &peers {
        if !node.is_pre_candidate() {
            break;
        }
        let next_term = node.term().0 + 1;
        actions = node.step(Input::Receive(envelope(
            peer,
            id,
            next_term,
            Message::PreVoteResponse(RequestVoteResponse { vote_granted: true }),
        )));
    }
    assert_eq!(node.role(), Role::Candidate);
    let term = node.term().0;
    let mut out = node.step(Input::PersistDone {
        persist_id: persist_id(&actions).expect("candidate persists its vote"),
    });
    for peer in peers {
        if node.role() == Role::Leader {
            break;
        }
        out = node.step(vote_response(peer, id, term, true));
    }
    assert_eq!(node.role(), Role::Leader);
    out
}

/// One line per action, for snapshots a reviewer can read.
pub fn describe(actions: &[Action]) -> String {
    let mut text = String::new();
    for action in actions {
        match action {
            Action::Persist(request) => {
                let _ = write!(text, "persist {}", request.persist_id);
                if let Some(hs) = request.hard_state {
                    let vote = hs.voted_for.map_or("-".to_string(), |v| v.to_string());
                    let _ = write!(text, " term={} vote={vote}", hs.current_term);
                }
                if let Some(snapshot) = &request.snapshot {
                    let _ = write!(
                        text,
                        " snapshot={}/{}",
                        snapshot.meta.last_included_index, snapshot.meta.last_included_term
                    );
                }
                if let Some(splice) = &request.log {
                    let _ = write!(
                        text,
                        " log[{}..]={}",
                        splice.from,
                        describe_entries(&splice.entries)
                    );
                }
            }
            Action::Send(envelope) => {
                let _ = write!(
                    text,
                    "send {}->{} {} {}",
                    envelope.from,
                    envelope.to,
                    envelope.term,
                    describe_message(&envelope.message)
                );
            }
            Action::Apply { entries } => {
                let _ = write!(text, "apply {}", describe_entries(entries));
            }
            Action::ApplySnapshot { snapshot } => {
                let _ = write!(
                    text,
                    "apply-snapshot through {}/{} ({} bytes)",
                    snapshot.meta.last_included_index,
                    snapshot.meta.last_included_term,
                    snapshot.data.len()
                );
            }
            Action::Reply { request_id, reply } => {
                let _ = write!(text, "reply {request_id} {reply:?}");
            }
        }
        text.push('\n');
    }
    text
}

pub fn describe_entries(entries: &[Entry]) -> String {
    let cells: Vec<String> = entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Noop => format!("{}:{}:noop", e.index.0, e.term.0),
            EntryPayload::Command(c) => {
                format!("{}:{}:{}", e.index.0, e.term.0, String::from_utf8_lossy(c))
            }
            EntryPayload::Membership(m) => {
                let ids = |set: &std::collections::BTreeSet<NodeId>| {
                    set.iter()
                        .map(|id| id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let recorded: Vec<String> = m
                    .incarnations
                    .iter()
                    .map(|(id, incarnation)| format!("{id}@{}", incarnation.0))
                    .collect();
                format!(
                    "{}:{}:voters={};learners={};recorded={}{}",
                    e.index.0,
                    e.term.0,
                    ids(&m.voters),
                    ids(&m.learners),
                    recorded.join(","),
                    if m.returning.is_empty() {
                        String::new()
                    } else {
                        format!(";returning={}", ids(&m.returning))
                    }
                )
            }
        })
        .collect();
    format!("[{}]", cells.join(" "))
}

pub fn describe_message(message: &Message) -> String {
    match message {
        Message::RequestVote(m) => {
            format!("RequestVote last={}/{}", m.last_log_index, m.last_log_term)
        }
        Message::RequestVoteResponse(m) => {
            format!("RequestVoteResponse granted={}", m.vote_granted)
        }
        Message::AppendEntries(m) => format!(
            "AppendEntries prev={}/{} commit={} entries={}",
            m.prev_log_index,
            m.prev_log_term,
            m.leader_commit,
            describe_entries(&m.entries)
        ),
        Message::AppendEntriesResponse(m) => {
            format!(
                "AppendEntriesResponse round={} {:?}",
                m.read_round, m.result
            )
        }
        Message::PreVote(m) => format!("PreVote last={}/{}", m.last_log_index, m.last_log_term),
        Message::PreVoteResponse(m) => format!("PreVoteResponse granted={}", m.vote_granted),
        Message::TimeoutNow => "TimeoutNow".to_string(),
        Message::InstallSnapshot(m) => format!(
            "InstallSnapshot through {}/{} bytes {}..{} of {}",
            m.meta.last_included_index,
            m.meta.last_included_term,
            m.offset,
            m.offset + m.data.len() as u64,
            m.total_bytes
        ),
        Message::InstallSnapshotResponse(m) => format!(
            "InstallSnapshotResponse through {} received {} installed={}",
            m.last_included_index, m.received_bytes, m.installed
        ),
    }
}

/// Nodes wired together by hand: messages are delivered in FIFO order, links can be cut, and
/// persistence completes right after each step or, with `with_late_persists`, late and out of
/// step with the messages.
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub durable: BTreeMap<NodeId, DurableState>,
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub replies: Vec<(NodeId, RequestId, Reply)>,
    pub down: BTreeSet<NodeId>,
    pub cut: BTreeSet<(NodeId, NodeId)>,
    queue: VecDeque<Envelope>,
    pub trace: String,
    next_request: u64,
    make_config: fn(u64, u64) -> Config,
    late_persists: Option<LatePersists>,
}

/// Persist requests wait in each node's queue; while messages are delivered, a seeded coin
/// decides at every turn whether some node's oldest write completes or a message arrives, and
/// which message (any of those in flight, so they are also reordered). Acknowledgements, votes
/// and elections race with the disk, and writes may still be pending when `deliver_all`
/// returns, so a crash can lose them: `settle` completes everything.
struct LatePersists {
    rng: u64,
    pending: BTreeMap<NodeId, VecDeque<raft_core::PersistRequest>>,
}

impl LatePersists {
    /// xorshift64*: enough to interleave deterministically.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Cluster {
    /// Figure 2 nodes.
    pub fn new(size: u64) -> Cluster {
        Cluster::with_config(size, config)
    }

    /// Nodes with the default configuration: pre-vote and check-quorum on.
    pub fn production(size: u64) -> Cluster {
        Cluster::with_config(size, production_config)
    }

    /// `Cluster::new` with writes completing late (`with_late_persists`).
    pub fn new_late(size: u64) -> Cluster {
        Cluster::new(size).with_late_persists(size)
    }

    /// `Cluster::production` with writes completing late (`with_late_persists`).
    pub fn production_late(size: u64) -> Cluster {
        Cluster::production(size).with_late_persists(size)
    }

    pub fn with_config(size: u64, make_config: fn(u64, u64) -> Config) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        Cluster {
            make_config,
            nodes: ids
                .iter()
                .map(|&id| {
                    (
                        id,
                        Node::new(make_config(id.0, size)).expect("valid config"),
                    )
                })
                .collect(),
            durable: ids
                .iter()
                .map(|&id| (id, DurableState::default()))
                .collect(),
            applied: ids.iter().map(|&id| (id, Vec::new())).collect(),
            replies: Vec::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            queue: VecDeque::new(),
            trace: String::new(),
            next_request: 1,
            late_persists: None,
        }
    }

    /// Persistence completes late and messages arrive in any order: see `LatePersists`.
    pub fn with_late_persists(mut self, seed: u64) -> Cluster {
        self.late_persists = Some(LatePersists {
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            pending: BTreeMap::new(),
        });
        self
    }

    /// True when writes complete late.
    pub fn has_late_persists(&self) -> bool {
        self.late_persists.is_some()
    }

    /// Completes `id`'s oldest pending write.
    fn complete_persist(&mut self, id: NodeId) {
        let Some(late) = &mut self.late_persists else {
            return;
        };
        let Some(request) = late.pending.get_mut(&id).and_then(VecDeque::pop_front) else {
            return;
        };
        self.durable.get_mut(&id).expect("known").apply(&request);
        self.step(
            id,
            Input::PersistDone {
                persist_id: request.persist_id,
            },
        );
    }

    pub fn step(&mut self, id: NodeId, input: Input) {
        if self.down.contains(&id) {
            return;
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        let actions = node.step(input);
        let _ = write!(self.trace, "{}", describe(&actions));
        let mut done = None;
        for action in actions {
            match action {
                Action::Persist(request) => match &mut self.late_persists {
                    Some(late) => late.pending.entry(id).or_default().push_back(request),
                    None => {
                        self.durable.get_mut(&id).expect("known").apply(&request);
                        done = Some(request.persist_id);
                    }
                },
                Action::Send(envelope) => self.queue.push_back(envelope),
                Action::Apply { entries } => {
                    let applied = self.applied.get_mut(&id).expect("known");
                    for entry in entries {
                        assert_eq!(entry.index.0, applied.len() as u64 + 1, "apply in order");
                        applied.push(entry);
                    }
                }
                Action::ApplySnapshot { snapshot } => {
                    let restored: Vec<Entry> =
                        postcard::from_bytes(&snapshot.data).expect("snapshot of applied entries");
                    self.applied.insert(id, restored);
                }
                Action::Reply { request_id, reply } => self.replies.push((id, request_id, reply)),
            }
        }
        if let Some(persist_id) = done {
            self.step(id, Input::PersistDone { persist_id });
        }
    }

    /// Delivers queued messages until none are left (messages over cut links are lost). With
    /// late persists, pending writes complete in between, in a seeded order, and some may still
    /// be pending at the end.
    pub fn deliver_all(&mut self) {
        let mut budget = 100_000;
        loop {
            let mut next_message = 0;
            if let Some(late) = &mut self.late_persists {
                let writers: Vec<NodeId> = late
                    .pending
                    .iter()
                    .filter(|(_, queue)| !queue.is_empty())
                    .map(|(&id, _)| id)
                    .collect();
                let write_now = match (writers.is_empty(), self.queue.is_empty()) {
                    (true, _) => false,
                    // Nothing in flight: stop now and then with writes still pending.
                    (false, true) => late.next() % 4 != 0,
                    (false, false) => late.next() % 2 == 0,
                };
                if write_now {
                    let pick = late.next() as usize % writers.len();
                    self.complete_persist(writers[pick]);
                    continue;
                }
                if !self.queue.is_empty() {
                    next_message = late.next() as usize % self.queue.len();
                }
            }
            let Some(envelope) = self.queue.remove(next_message) else {
                return;
            };
            budget -= 1;
            assert!(budget > 0, "message storm");
            if self.down.contains(&envelope.to) || self.cut.contains(&(envelope.from, envelope.to))
            {
                continue;
            }
            self.step(envelope.to, Input::Receive(envelope));
        }
    }

    /// Completes every pending write and delivers everything that follows, until nothing is
    /// in flight and nothing pending (a no-op when writes complete at once).
    pub fn settle(&mut self) {
        loop {
            let writers: Vec<NodeId> = self.late_persists.as_ref().map_or_else(Vec::new, |late| {
                late.pending
                    .iter()
                    .filter(|(_, queue)| !queue.is_empty())
                    .map(|(&id, _)| id)
                    .collect()
            });
            if writers.is_empty() && self.queue.is_empty() {
                return;
            }
            for id in writers {
                self.complete_persist(id);
            }
            self.deliver_all();
        }
    }

    pub fn tick(&mut self, id: NodeId) {
        self.step(id, Input::Tick);
        self.deliver_all();
    }

    pub fn tick_all(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.step(id, Input::Tick);
            }
            self.deliver_all();
        }
    }

    /// Ticks everyone until exactly one live node leads; returns it.
    pub fn elect(&mut self) -> NodeId {
        for _ in 0..500 {
            self.tick_all(1);
            if let Some(leader) = self.leader() {
                return leader;
            }
        }
        panic!("no leader elected");
    }

    pub fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(id, n)| !self.down.contains(id) && n.role() == Role::Leader)
            .map(|(id, _)| *id)
            .collect();
        // Stale leaders of older terms may remain while partitioned; take the newest.
        leaders.into_iter().max_by_key(|id| self.nodes[id].term())
    }

    pub fn propose(&mut self, via: NodeId, command: &str) -> RequestId {
        let request_id = RequestId(self.next_request);
        self.next_request += 1;
        self.step(
            via,
            Input::Propose {
                request_id,
                command: command.as_bytes().to_vec(),
            },
        );
        self.deliver_all();
        request_id
    }

    /// Starts a new node with no voters configured: it waits for a leader to add it.
    pub fn add_node(&mut self, id: NodeId) {
        let mut config = (self.make_config)(id.0, 1);
        config.id = id;
        config.voters.clear();
        self.nodes
            .insert(id, Node::new(config).expect("valid config"));
        self.durable.insert(id, DurableState::default());
        self.applied.insert(id, Vec::new());
    }

    /// Asks `via` to change the membership; returns the request id.
    pub fn change(&mut self, via: NodeId, change: raft_core::MembershipChange) -> RequestId {
        let request_id = RequestId(self.next_request);
        self.next_request += 1;
        self.step(via, Input::ChangeMembership { request_id, change });
        self.deliver_all();
        request_id
    }

    /// The last reply to `request_id`.
    pub fn reply_to(&self, request_id: RequestId) -> Option<&Reply> {
        self.replies
            .iter()
            .rev()
            .find(|(_, r, _)| *r == request_id)
            .map(|(_, _, reply)| reply)
    }

    /// Compacts `id`'s log through everything it applied; the snapshot is its applied entries.
    pub fn compact(&mut self, id: NodeId) {
        let index = self.nodes[&id].applied_index();
        let data = postcard::to_allocvec(&self.applied[&id]).expect("entries encode");
        self.step(id, Input::Compact { index, data });
    }

    pub fn isolate(&mut self, id: NodeId) {
        for &other in self.nodes.keys() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// A crash loses the writes that had not completed.
    pub fn crash(&mut self, id: NodeId) {
        self.down.insert(id);
        if let Some(late) = &mut self.late_persists {
            late.pending.remove(&id);
        }
    }

    pub fn restart(&mut self, id: NodeId) {
        self.down.remove(&id);
        let durable = self.durable[&id].clone();
        let config = self.nodes[&id].config().clone();
        let node = Node::restore(config, durable.clone()).expect("durable state restores");
        self.nodes.insert(id, node);
        let applied = durable.snapshot.as_ref().map_or_else(Vec::new, |snapshot| {
            postcard::from_bytes(&snapshot.data).expect("snapshot of applied entries")
        });
        self.applied.insert(id, applied);
    }

    /// The node's disk is lost: it restarts with empty durable state as a new incarnation and
    /// the same configuration (the operator started it again with the same flags).
    pub fn wipe(&mut self, id: NodeId) {
        self.wipe_with(id, false);
    }

    /// `wipe`, restarting it with no voters configured, as a server that knows it lost its
    /// state and waits to be re-added.
    pub fn wipe_as_new_server(&mut self, id: NodeId) {
        self.wipe_with(id, true);
    }

    fn wipe_with(&mut self, id: NodeId, clear_voters: bool) {
        self.crash(id);
        self.down.remove(&id);
        let mut config = self.nodes[&id].config().clone();
        if clear_voters {
            config.voters.clear();
        }
        config.incarnation = raft_core::Incarnation(config.incarnation.0.wrapping_add(1_000));
        self.nodes
            .insert(id, Node::new(config).expect("valid config"));
        self.durable.insert(id, DurableState::default());
        self.applied.insert(id, Vec::new());
    }

    pub fn commands(&self, id: NodeId) -> Vec<String> {
        self.applied[&id]
            .iter()
            .filter_map(|e| match &e.payload {
                EntryPayload::Command(c) => Some(String::from_utf8_lossy(c).into_owned()),
                EntryPayload::Noop | EntryPayload::Membership(_) => None,
            })
            .collect()
    }

    /// Checks log matching and state machine safety across all nodes.
    pub fn check_safety(&self) {
        let nodes: Vec<&Node> = self.nodes.values().collect();
        for a in &nodes {
            for b in &nodes {
                // Compare what both still hold: compaction drops committed prefixes.
                let common = a.commit_index().min(b.commit_index());
                for index in 1..=common.0 {
                    let (x, y) = (a.entry(LogIndex(index)), b.entry(LogIndex(index)));
                    if let (Some(x), Some(y)) = (x, y) {
                        assert_eq!(
                            x,
                            y,
                            "committed entries of {} and {} differ",
                            a.id(),
                            b.id()
                        );
                    }
                }
            }
        }
        let applied: Vec<&Vec<Entry>> = self.applied.values().collect();
        for a in &applied {
            for b in &applied {
                let n = a.len().min(b.len());
                assert_eq!(a[..n], b[..n], "applied sequences diverge");
            }
        }
    }
}

pub const fn id(n: u64) -> NodeId {
    NodeId(n)
}
