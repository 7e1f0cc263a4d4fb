//! Cluster-wide safety invariants (Raft Figure 3 and more), checked after every event.
//!
//! Each event steps exactly one node, so the checker works incrementally: it mirrors every
//! node's log as `(term, chain hash)` pairs, where an entry's chain hash covers the entry and
//! every entry before it. Comparing two chain hashes compares two whole log prefixes in O(1).
//! Global records cover every node past and present: the leader of each term, the chain hash
//! of every `(index, term)` ever written, and the committed log.

use std::collections::BTreeMap;

use raft_core::{
    Entry, EntryPayload, LogIndex, LogSplice, Node, NodeId, Reply, RequestId, Role, Term,
};

/// A broken invariant, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

fn violation(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// Membership and leadership (Raft thesis §4.2.2): only a voter in its own membership becomes
/// leader, or a voter that an entry not yet committed removes (it may still be needed until
/// that entry commits) (`only_voters_lead`); and a leader that its membership excludes steps
/// down once that membership is committed (`removed_leader_steps_down`). Both look only at
/// leaders, and the log scan only at the rare leader outside its own voters.
fn check_leader_membership(node: &Node, before: Observed) -> Result<(), Violation> {
    if node.role() != Role::Leader {
        return Ok(());
    }
    let id = node.id();
    let membership = node.membership();
    if membership.is_voter(id) {
        return Ok(());
    }
    // The entry that removed this node (the oldest of the latest memberships that leave it
    // out: later ones only record incarnations or change other servers), and whether it was a
    // voter before; where the log no longer holds them, they came from a snapshot, which only
    // covers committed entries.
    let mut set_at = LogIndex::ZERO;
    let mut voter_before = None;
    for (index, logged) in node
        .entries(LogIndex::ZERO, node.last_log_index())
        .iter()
        .rev()
        .filter_map(|entry| match &entry.payload {
            EntryPayload::Membership(membership) => Some((entry.index, membership)),
            _ => None,
        })
    {
        if logged.is_voter(id) {
            voter_before = Some(true);
            break;
        }
        set_at = index;
    }
    let voter_before = voter_before.unwrap_or_else(|| {
        node.snapshot_meta().map_or_else(
            || node.config().voters.contains(&id),
            |meta| meta.membership.is_voter(id),
        )
    });
    let elected = before.role != Role::Leader || before.term != node.term();
    if elected && !(set_at > node.commit_index() && voter_before) {
        return violation(
            "only_voters_lead",
            format!(
                "{id} became leader in {} but is not a voter in its membership {membership:?}",
                node.term()
            ),
        );
    }
    if set_at <= node.commit_index() {
        return violation(
            "removed_leader_steps_down",
            format!(
                "{id} still leads in {} after its removal at {set_at} committed (commit index {})",
                node.term(),
                node.commit_index()
            ),
        );
    }
    Ok(())
}

/// What the checker needs to know about a node just before a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    pub role: Role,
    pub term: Term,
    pub commit_index: LogIndex,
    pub last_log_index: LogIndex,
}

impl Observed {
    #[must_use]
    pub fn of(node: &Node) -> Observed {
        Observed {
            role: node.role(),
            term: node.term(),
            commit_index: node.commit_index(),
            last_log_index: node.last_log_index(),
        }
    }
}

/// Everything one step did that the checker reads.
#[derive(Debug, Default)]
pub struct StepEffects<'a> {
    /// The snapshot the step's `Persist` made durable-to-be (index and term), if any.
    pub persisted_snapshot: Option<(LogIndex, Term)>,
    pub splice: Option<&'a LogSplice>,
    /// The snapshot an `Action::ApplySnapshot` installed (index, term, data), if any.
    pub applied_snapshot: Option<(LogIndex, Term, &'a [u8])>,
    pub applied: &'a [Entry],
    pub replies: &'a [(RequestId, Reply)],
}

fn payload_hash(payload: &EntryPayload) -> u64 {
    match payload {
        EntryPayload::Noop => 0x6E6F_6F70,
        EntryPayload::Command(bytes) => command_hash(bytes),
        EntryPayload::Membership(membership) => {
            let mut bytes = Vec::new();
            for (tag, set) in [(b'v', &membership.voters), (b'l', &membership.learners)] {
                bytes.push(tag);
                for id in set {
                    bytes.extend_from_slice(&id.0.to_le_bytes());
                }
            }
            command_hash(&bytes) ^ 0x6D65_6D62
        }
    }
}

/// FNV-1a over the command bytes.
#[must_use]
pub fn command_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for &byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash | 1
}

/// The simulator's state machine is the applied log itself, summarized by its chain hash: a
/// snapshot's data is the chain hash of the last entry it covers.
#[must_use]
pub fn snapshot_data(chain: u64) -> Vec<u8> {
    chain.to_le_bytes().to_vec()
}

fn chain(previous: u64, term: Term, payload: u64) -> u64 {
    let mut hash = previous ^ term.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    hash = (hash ^ payload).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    hash ^ (hash >> 31)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CommittedEntry {
    term: Term,
    chain: u64,
    payload: u64,
    /// The term of the node that first saw the entry committed: at least the term in which it
    /// was committed, so every leader of a later term must hold it (Leader Completeness).
    commit_term: Term,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct NodeRecord {
    up: bool,
    /// The highest term this node ever had in memory, and the highest it ever made durable.
    max_term: Term,
    max_durable_term: Term,
    /// The last index covered by the current incarnation's snapshot (0 without one) and the
    /// chain hash there; compacted entries are committed ones, held in `Checker::committed`.
    base: LogIndex,
    base_chain: u64,
    /// The current incarnation's log after `base` as (term, chain hash): index `i` at position
    /// `i - base - 1`.
    log: Vec<(Term, u64)>,
    commit_index: LogIndex,
    applied_index: LogIndex,
    /// `Some(term)` while this incarnation leads in `term`.
    leading: Option<Term>,
    /// Starts so far: the current incarnation's number.
    incarnation: u64,
}

impl NodeRecord {
    fn last_index(&self) -> LogIndex {
        LogIndex(self.base.0 + self.log.len() as u64)
    }

    fn last_chain(&self) -> u64 {
        self.log.last().map_or(self.base_chain, |&(_, hash)| hash)
    }

    /// The (term, chain hash) at `index`: from the mirror, or from the committed log for
    /// compacted indexes.
    fn at(&self, index: LogIndex, committed: &[CommittedEntry]) -> Option<(Term, u64)> {
        if index <= self.base {
            let entry = committed.get(position(index).checked_sub(1)?)?;
            return Some((entry.term, entry.chain));
        }
        self.log
            .get(position(index) - position(self.base) - 1)
            .copied()
    }
}

/// Node records by id: the checker looks a node up several times per event, so the id is
/// the index into a vector (ids are small), not a key in a tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct NodeRecords(Vec<Option<NodeRecord>>);

impl NodeRecords {
    fn get(&self, id: &NodeId) -> Option<&NodeRecord> {
        self.0.get(usize::try_from(id.0).ok()?)?.as_ref()
    }

    fn get_mut(&mut self, id: &NodeId) -> Option<&mut NodeRecord> {
        self.0.get_mut(usize::try_from(id.0).ok()?)?.as_mut()
    }

    fn or_default(&mut self, id: NodeId) -> &mut NodeRecord {
        let slot = usize::try_from(id.0).unwrap_or(usize::MAX);
        if self.0.len() <= slot {
            self.0.resize_with(slot + 1, || None);
        }
        self.0[slot].get_or_insert_with(NodeRecord::default)
    }

    /// In id order, like the map this replaces.
    fn iter(&self) -> impl Iterator<Item = (NodeId, &NodeRecord)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(id, record)| Some((NodeId(id as u64), record.as_ref()?)))
    }
}

/// The chain hash of every `(index, term)` ever written, for Log Matching. Almost every index
/// is only ever written in one term, so the first term seen at an index sits in a vector by
/// index and only other terms go to a tree: one lookup per appended entry, not a tree walk
/// over every entry ever written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Chains {
    first: Vec<Option<(Term, u64)>>,
    others: BTreeMap<(LogIndex, Term), u64>,
}

impl Chains {
    /// The chain hash known for `(index, term)`, recording `hash` if there is none yet.
    fn known_or_insert(&mut self, index: LogIndex, term: Term, hash: u64) -> u64 {
        let pos = position(index);
        if pos >= self.first.len() {
            // Each node writes indexes in order, so this grows one at a time.
            self.first.resize(pos + 1, None);
        }
        match self.first[pos] {
            None => {
                self.first[pos] = Some((term, hash));
                hash
            }
            Some((first_term, known)) if first_term == term => known,
            Some(_) => *self.others.entry((index, term)).or_insert(hash),
        }
    }
}

/// `Clone`, `Eq` and `Hash` let a model checker carry the checker in each explored state: the
/// records are the history the invariants read, so two states with different histories differ.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Checker {
    nodes: NodeRecords,
    leaders: BTreeMap<Term, NodeId>,
    chains: Chains,
    committed: Vec<CommittedEntry>,
    /// Writes a client was told are committed: (index, request).
    acked: Vec<(LogIndex, RequestId)>,
    /// Writes a client was told were dropped: (index, term, request).
    dropped: Vec<(LogIndex, Term, RequestId)>,
    /// Every leadership so far: the node and incarnation that took office in each term.
    leaderships: BTreeMap<Term, (NodeId, u64)>,
    /// Reads that reached a node: how long the committed log was then.
    reads_received: BTreeMap<RequestId, usize>,
    /// Snapshots hold a real machine's state (`Sim::run_machine`), which `crate::machine`
    /// checks, rather than the chain hash `snapshot_data` writes.
    machine_snapshots: bool,
}

fn position(index: LogIndex) -> usize {
    // Log indexes come from in-memory logs, so they fit in usize.
    usize::try_from(index.0).unwrap_or(usize::MAX)
}

impl Checker {
    #[must_use]
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Snapshots hold a real machine's state from now on: their bytes are checked by
    /// `crate::machine`, not against the chain hash.
    pub fn set_machine_snapshots(&mut self) {
        self.machine_snapshots = true;
    }

    /// Whether `data` is the simulator's own snapshot of the committed prefix whose chain hash
    /// is `chain` (always, when a real machine's snapshots are checked elsewhere).
    fn is_snapshot_of(&self, data: &[u8], chain: u64) -> bool {
        self.machine_snapshots || data == snapshot_data(chain)
    }

    /// Every leader so far, by term.
    #[must_use]
    pub fn leaders(&self) -> &BTreeMap<Term, NodeId> {
        &self.leaders
    }

    #[must_use]
    pub fn committed_len(&self) -> usize {
        self.committed.len()
    }

    #[must_use]
    pub fn acked(&self) -> &[(LogIndex, RequestId)] {
        &self.acked
    }

    /// A node (re)started, from `snapshot` (index and term) if its durable state has one:
    /// mirror its log and check it against everything seen so far.
    pub fn on_start(
        &mut self,
        node: &Node,
        snapshot: Option<(LogIndex, Term)>,
    ) -> Result<(), Violation> {
        let id = node.id();
        let record = self.nodes.or_default(id);
        if node.term() < record.max_durable_term {
            return violation(
                "term_monotonic",
                format!(
                    "{id} restarted in {} below its durable {}",
                    node.term(),
                    record.max_durable_term
                ),
            );
        }
        record.up = true;
        record.incarnation += 1;
        record.log.clear();
        record.base = LogIndex::ZERO;
        record.base_chain = 0;
        record.commit_index = node.commit_index();
        record.applied_index = node.applied_index();
        record.leading = None;
        // A term adopted in memory but never made durable is legitimately forgotten by a
        // crash (the core counts its own vote only once durable); the durable term is the
        // floor across restarts, checked above.
        record.max_term = node.term();
        if let Some((index, term)) = snapshot {
            self.rebase(id, index, term)?;
        }
        let first = self
            .nodes
            .get(&id)
            .map_or(LogIndex(1), |record| record.base.next());
        let entries = node.entries(first, node.last_log_index());
        self.append_entries(id, entries)
    }

    /// The log of `id` now starts after a snapshot through `index` in `term`: everything up to
    /// there must be committed, and the mirror keeps what follows only if it agrees.
    fn rebase(&mut self, id: NodeId, index: LogIndex, term: Term) -> Result<(), Violation> {
        let Some(known) = position(index)
            .checked_sub(1)
            .and_then(|pos| self.committed.get(pos).copied())
        else {
            return violation(
                "snapshot_only_committed",
                format!("{id} holds a snapshot through {index}, beyond the committed log"),
            );
        };
        if known.term != term {
            return violation(
                "snapshot_only_committed",
                format!(
                    "{id} holds a snapshot through {index} in {term}, but {index} was committed in {}",
                    known.term
                ),
            );
        }
        let Some(record) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        let held = record.at(index, &self.committed);
        if index > record.base && held == Some((term, known.chain)) {
            let drop = position(index) - position(record.base);
            record.log.drain(..drop);
        } else if index > record.base {
            record.log.clear();
        } else {
            return Ok(());
        }
        record.base = index;
        record.base_chain = known.chain;
        Ok(())
    }

    /// `id` lost its disk: it starts again from nothing, as a new incarnation, so no durable
    /// term bounds its next start. Everything else it ever did (entries committed, terms led)
    /// stays on record: no committed entry may be lost because of it.
    pub fn on_wipe(&mut self, id: NodeId) {
        self.nodes.or_default(id).max_durable_term = Term::ZERO;
    }

    pub fn on_crash(&mut self, id: NodeId) {
        if let Some(record) = self.nodes.get_mut(&id) {
            record.up = false;
            record.log.clear();
            record.leading = None;
        }
    }

    /// A persist of `id` became durable with `term` as its hard state term, if it had one.
    pub fn on_durable_term(&mut self, id: NodeId, term: Term) {
        let record = self.nodes.or_default(id);
        record.max_durable_term = record.max_durable_term.max(term);
    }

    /// Appends entries to the mirror of `id`, checking Log Matching for each.
    fn append_entries(&mut self, id: NodeId, entries: &[Entry]) -> Result<(), Violation> {
        let Some(record) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        for entry in entries {
            let expected = record.last_index().next();
            if entry.index != expected {
                return violation(
                    "log_contiguous",
                    format!("{id} wrote {} where {expected} was next", entry.index),
                );
            }
            let hash = chain(
                record.last_chain(),
                entry.term,
                payload_hash(&entry.payload),
            );
            record.log.push((entry.term, hash));
            let known = self.chains.known_or_insert(entry.index, entry.term, hash);
            if known != hash {
                return violation(
                    "log_matching",
                    format!(
                        "{id} holds an entry at {} in {} whose log prefix differs from another log's entry with the same index and term",
                        entry.index, entry.term
                    ),
                );
            }
        }
        Ok(())
    }

    /// Checks everything after one step of `node`; `before` was observed just before it.
    pub fn after_step(
        &mut self,
        node: &Node,
        before: Observed,
        effects: &StepEffects<'_>,
        commands: impl Fn(RequestId) -> Option<u64>,
    ) -> Result<(), Violation> {
        let id = node.id();
        self.check_log(node, before, effects)?;
        self.check_term_and_leader(node, before)?;
        self.check_leads_term_once(node, before)?;
        check_leader_membership(node, before)?;
        self.check_commit(node)?;
        self.check_applied_snapshot(id, effects.applied_snapshot)?;
        self.check_applied(node, effects.applied)?;
        self.check_replies(id, effects.replies, commands)
    }

    fn check_log(
        &mut self,
        node: &Node,
        before: Observed,
        effects: &StepEffects<'_>,
    ) -> Result<(), Violation> {
        let id = node.id();
        if let Some((index, term)) = effects.persisted_snapshot {
            self.rebase(id, index, term)?;
        }
        if let Some(splice) = effects.splice {
            let same_leader = before.role == Role::Leader
                && node.role() == Role::Leader
                && before.term == node.term();
            if same_leader && splice.from <= before.last_log_index {
                return violation(
                    "leader_append_only",
                    format!(
                        "leader {id} in {} rewrote its log from {} (last index was {})",
                        node.term(),
                        splice.from,
                        before.last_log_index
                    ),
                );
            }
            let Some(record) = self.nodes.get_mut(&id) else {
                return Ok(());
            };
            if splice.from <= record.base || splice.from > record.last_index().next() {
                return violation(
                    "log_contiguous",
                    format!(
                        "{id} persisted a splice from {}, outside {}..={}",
                        splice.from,
                        record.base.next(),
                        record.last_index().next()
                    ),
                );
            }
            record
                .log
                .truncate(position(splice.from) - position(record.base) - 1);
            self.append_entries(id, &splice.entries)?;
        }
        let last = node.last_log_index();
        let mirrored = self.nodes.get(&id).map(|record| {
            let term = record.at(record.last_index(), &self.committed).map(|e| e.0);
            (record.last_index(), term)
        });
        let actual_term = node.entry(last).map(|entry| entry.term);
        let consistent = mirrored.is_some_and(|(index, term)| {
            index == last && (actual_term.is_none() || term == actual_term)
        });
        if !consistent {
            return violation(
                "persist_covers_log_changes",
                format!(
                    "{id}'s log ends at {last} in {actual_term:?}, but its persist requests describe {mirrored:?}"
                ),
            );
        }
        Ok(())
    }

    fn check_term_and_leader(&mut self, node: &Node, before: Observed) -> Result<(), Violation> {
        let id = node.id();
        let term = node.term();
        let Some(record) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        if term < record.max_term {
            return violation(
                "term_monotonic",
                format!("{id} went from {} back to {term}", record.max_term),
            );
        }
        record.max_term = term;
        if node.role() != Role::Leader {
            record.leading = None;
            return Ok(());
        }
        record.leading = Some(term);
        let leader = *self.leaders.entry(term).or_insert(id);
        if leader != id {
            return violation(
                "election_safety",
                format!("{id} and {leader} both lead in {term}"),
            );
        }
        if before.role != Role::Leader || before.term != term {
            self.check_new_leader_complete(id, term)?;
        }
        Ok(())
    }

    /// Election safety counted over restarts: a term has one leadership, one node in one
    /// incarnation, so one log. A node that took office, crashed before its term was durable,
    /// restarted in the old term and won the same term again would lead it twice, with a log
    /// that may differ from the first (`election_safety` sees only one node there).
    fn check_leads_term_once(&mut self, node: &Node, before: Observed) -> Result<(), Violation> {
        let term = node.term();
        let elected =
            node.role() == Role::Leader && (before.role != Role::Leader || before.term != term);
        if !elected {
            return Ok(());
        }
        let id = node.id();
        let incarnation = self.nodes.get(&id).map_or(0, |record| record.incarnation);
        match self.leaderships.entry(term) {
            std::collections::btree_map::Entry::Vacant(vacant) => {
                vacant.insert((id, incarnation));
                Ok(())
            }
            std::collections::btree_map::Entry::Occupied(first) => {
                let (first_id, first_incarnation) = *first.get();
                violation(
                    "election_safety_across_restarts",
                    format!(
                        "{id} (incarnation {incarnation}) took office in {term}, which {first_id} (incarnation {first_incarnation}) already led"
                    ),
                )
            }
        }
    }

    /// Leader Completeness at election time: the new leader of `term` holds every entry
    /// committed before `term`. The chain hash of the last such entry covers all earlier ones.
    fn check_new_leader_complete(&self, id: NodeId, term: Term) -> Result<(), Violation> {
        let Some(last) = self.committed.iter().rposition(|e| e.commit_term < term) else {
            return Ok(());
        };
        let expected = self.committed[last];
        let index = LogIndex(last as u64 + 1);
        let held = self
            .nodes
            .get(&id)
            .and_then(|record| record.at(index, &self.committed));
        if held.map(|(_, hash)| hash) != Some(expected.chain) {
            return violation(
                "leader_completeness",
                format!(
                    "{id} became leader in {term} without the committed log up to i{} (committed in {})",
                    last + 1,
                    expected.commit_term
                ),
            );
        }
        Ok(())
    }

    fn check_commit(&mut self, node: &Node) -> Result<(), Violation> {
        let id = node.id();
        let commit = node.commit_index();
        let Some(record) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        if commit < record.commit_index {
            return violation(
                "commit_monotonic",
                format!(
                    "{id} commit index went from {} to {commit}",
                    record.commit_index
                ),
            );
        }
        let from = position(record.commit_index);
        record.commit_index = commit;
        let upto = position(commit);
        for pos in from..upto {
            let index = LogIndex(pos as u64 + 1);
            let held = self
                .nodes
                .get(&id)
                .and_then(|r| r.at(index, &self.committed));
            let Some((term, hash)) = held else {
                return violation(
                    "commit_within_log",
                    format!("{id} committed i{} beyond its log", pos + 1),
                );
            };
            match self.committed.get(pos) {
                Some(known) if known.chain != hash => {
                    return violation(
                        "state_machine_safety",
                        format!(
                            "{id} committed i{} in {term}, but i{} was already committed in {} with a different log prefix",
                            pos + 1,
                            pos + 1,
                            known.term
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    let payload = node
                        .entry(index)
                        .map_or(0, |entry| payload_hash(&entry.payload));
                    self.committed.push(CommittedEntry {
                        term,
                        chain: hash,
                        payload,
                        commit_term: node.term(),
                    });
                    self.check_leaders_hold(pos, node.term())?;
                }
            }
        }
        Ok(())
    }

    /// Leader Completeness for a newly committed entry: every current leader of a later term
    /// already holds it.
    fn check_leaders_hold(&self, pos: usize, commit_term: Term) -> Result<(), Violation> {
        let expected = self.committed[pos].chain;
        for (id, record) in self.nodes.iter() {
            let Some(term) = record.leading else { continue };
            if term <= commit_term {
                continue;
            }
            let index = LogIndex(pos as u64 + 1);
            if record.at(index, &self.committed).map(|e| e.1) != Some(expected) {
                return violation(
                    "leader_completeness",
                    format!(
                        "i{} was committed in {commit_term}, but {id}, leader in {term}, does not hold it",
                        pos + 1
                    ),
                );
            }
        }
        Ok(())
    }

    /// An installed snapshot holds a committed prefix, and its data is the one the simulator's
    /// state machine wrote for that prefix (its chain hash, see [`snapshot_data`]).
    fn check_applied_snapshot(
        &mut self,
        id: NodeId,
        applied: Option<(LogIndex, Term, &[u8])>,
    ) -> Result<(), Violation> {
        let Some((index, term, data)) = applied else {
            return Ok(());
        };
        let known = position(index)
            .checked_sub(1)
            .and_then(|pos| self.committed.get(pos));
        let Some(known) = known.filter(|known| known.term == term) else {
            return violation(
                "snapshot_only_committed",
                format!(
                    "{id} installed a snapshot through {index} in {term}, which is not committed"
                ),
            );
        };
        if !self.is_snapshot_of(data, known.chain) {
            return violation(
                "state_machine_safety",
                format!("{id} installed a snapshot through {index} whose state differs from the committed log's"),
            );
        }
        if let Some(record) = self.nodes.get_mut(&id) {
            record.applied_index = record.applied_index.max(index);
        }
        Ok(())
    }

    /// The state machine as of the committed log through `index`, for `Input::Compact`.
    #[must_use]
    pub fn snapshot_at(&self, index: LogIndex) -> Option<Vec<u8>> {
        let pos = position(index).checked_sub(1)?;
        self.committed
            .get(pos)
            .map(|entry| snapshot_data(entry.chain))
    }

    /// State Machine Safety: every applied entry is the committed entry at its index, applied
    /// once, in order, so all applied sequences are prefixes of the committed log.
    fn check_applied(&mut self, node: &Node, applied: &[Entry]) -> Result<(), Violation> {
        let id = node.id();
        let Some(record) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        for entry in applied {
            if entry.index != record.applied_index.next() {
                return violation(
                    "apply_in_order_once",
                    format!(
                        "{id} applied {} after {}",
                        entry.index, record.applied_index
                    ),
                );
            }
            let pos = position(entry.index).saturating_sub(1);
            let Some(known) = self.committed.get(pos) else {
                return violation(
                    "apply_only_committed",
                    format!("{id} applied {} before anyone committed it", entry.index),
                );
            };
            let previous = pos.checked_sub(1).map_or(0, |p| self.committed[p].chain);
            if chain(previous, entry.term, payload_hash(&entry.payload)) != known.chain {
                return violation(
                    "state_machine_safety",
                    format!(
                        "{id} applied {} in {}, which differs from the committed entry in {}",
                        entry.index, entry.term, known.term
                    ),
                );
            }
            record.applied_index = entry.index;
        }
        Ok(())
    }

    /// A `Committed` reply names the committed entry that holds the client's command.
    fn check_replies(
        &mut self,
        id: NodeId,
        replies: &[(RequestId, Reply)],
        commands: impl Fn(RequestId) -> Option<u64>,
    ) -> Result<(), Violation> {
        for &(request_id, ref reply) in replies {
            let (index, term) = match *reply {
                Reply::Committed { index, term } => (index, term),
                Reply::ReadReady { index } => {
                    self.check_read_ready(id, index, request_id)?;
                    self.check_read_covers_commit(id, index, request_id)?;
                    continue;
                }
                Reply::Dropped { index, term } => {
                    self.dropped.push((index, term, request_id));
                    self.check_dropped(index, term, request_id)?;
                    continue;
                }
                _ => continue,
            };
            let known = position(index)
                .checked_sub(1)
                .and_then(|pos| self.committed.get(pos));
            let matches = known.is_some_and(|known| {
                known.term == term && commands(request_id).is_none_or(|hash| hash == known.payload)
            });
            if !matches {
                return violation(
                    "acknowledged_write_committed",
                    format!(
                        "{id} told {request_id} its write committed at {index} in {term}, but the committed log holds something else there"
                    ),
                );
            }
            self.acked.push((index, request_id));
        }
        Ok(())
    }

    /// A write reported dropped at (index, term) is not the committed entry there: by Log
    /// Matching, an entry with the same index and term would be that very write.
    fn check_dropped(
        &self,
        index: LogIndex,
        term: Term,
        request_id: RequestId,
    ) -> Result<(), Violation> {
        let committed = position(index)
            .checked_sub(1)
            .and_then(|pos| self.committed.get(pos));
        if committed.is_some_and(|entry| entry.term == term) {
            return violation(
                "dropped_write_not_committed",
                format!("{request_id} was reported dropped, but its entry {index} in {term} is committed"),
            );
        }
        Ok(())
    }

    /// A read is released only once the node has applied through its read index, which is
    /// committed (ReadIndex, Raft thesis §6.4).
    fn check_read_ready(
        &self,
        id: NodeId,
        index: LogIndex,
        request_id: RequestId,
    ) -> Result<(), Violation> {
        let applied = self
            .nodes
            .get(&id)
            .map_or(LogIndex::ZERO, |record| record.applied_index);
        if index > applied || position(index) > self.committed.len() {
            return violation(
                "read_after_apply",
                format!(
                    "{id} released read {request_id} at {index} with only {applied} applied and {} committed",
                    self.committed.len()
                ),
            );
        }
        Ok(())
    }

    /// A read reached a node: whatever is committed by now, its answer must cover.
    pub fn on_read_received(&mut self, request_id: RequestId) {
        self.reads_received.insert(request_id, self.committed.len());
    }

    /// A read's index covers every entry committed anywhere before the read reached its node.
    /// ReadIndex guarantees it: a leader's commit index, once it has committed an entry of its
    /// term, covers everything committed before, and a read is released only once a quorum
    /// confirmed no newer leader had yet taken over (or the lease proves it). A stale leader
    /// serving a read shows here as soon as a newer leader has committed anything, without
    /// waiting for a client to have seen that commit (`linearizable_history`).
    fn check_read_covers_commit(
        &self,
        id: NodeId,
        index: LogIndex,
        request_id: RequestId,
    ) -> Result<(), Violation> {
        let Some(&committed) = self.reads_received.get(&request_id) else {
            return Ok(());
        };
        if position(index) < committed {
            return violation(
                "read_covers_commit",
                format!(
                    "{id} released read {request_id} at {index}, but i{committed} was committed before the read reached it"
                ),
            );
        }
        Ok(())
    }

    /// No write reported dropped was committed later.
    pub fn check_dropped_not_committed(&self) -> Result<(), Violation> {
        for &(index, term, request_id) in &self.dropped {
            self.check_dropped(index, term, request_id)?;
        }
        Ok(())
    }

    /// Every acknowledged write is applied on a majority of `voters` (the committed
    /// membership's voters, not every simulated node); called once the cluster has healed and
    /// caught up.
    pub fn check_acked_applied_on_majority(
        &self,
        voters: &std::collections::BTreeSet<NodeId>,
    ) -> Result<(), Violation> {
        let majority = voters.len() / 2 + 1;
        for &(index, request_id) in &self.acked {
            let applied = self
                .nodes
                .iter()
                .filter(|(id, record)| {
                    voters.contains(id) && record.up && record.applied_index >= index
                })
                .count();
            if applied < majority {
                return violation(
                    "acknowledged_write_applied_on_majority",
                    format!(
                        "{request_id} was acknowledged at {index} but only {applied} of {} voters applied it",
                        voters.len()
                    ),
                );
            }
        }
        Ok(())
    }

    /// Every acknowledged write is durable on a majority of `voters`: the durable log of each
    /// (`durable` gives it, `None` for a node that has none) holds the committed prefix through
    /// the write's index, or a snapshot of a committed prefix that covers it. Unlike the check
    /// above it holds in every state, crashes and lost writes included, so a model checker can
    /// ask it after every step.
    pub fn check_acked_durable_on_majority<'d>(
        &self,
        voters: &std::collections::BTreeSet<NodeId>,
        durable: impl Fn(NodeId) -> Option<&'d raft_core::DurableState>,
    ) -> Result<(), Violation> {
        let Some(&(index, request_id)) = self.acked.iter().max_by_key(|(index, _)| *index) else {
            return Ok(());
        };
        // A durable log holding the committed prefix through the highest acknowledged index
        // holds every lower one too, so that write is the one to check.
        let Some(expected) = position(index)
            .checked_sub(1)
            .and_then(|pos| self.committed.get(pos))
        else {
            return violation(
                "acknowledged_write_durable_on_majority",
                format!("{request_id} was acknowledged at {index}, beyond the committed log"),
            );
        };
        let holding = voters
            .iter()
            .filter(|&&id| {
                durable(id).is_some_and(|state| self.durable_holds(state, index, expected.chain))
            })
            .count();
        if holding <= voters.len() / 2 {
            return violation(
                "acknowledged_write_durable_on_majority",
                format!(
                    "{request_id} was acknowledged at {index} but only {holding} of {} voters hold it durably",
                    voters.len()
                ),
            );
        }
        Ok(())
    }

    /// Whether `state` holds the committed prefix through `index`, whose chain hash is `chain`.
    fn durable_holds(&self, state: &raft_core::DurableState, index: LogIndex, chain: u64) -> bool {
        let (base, mut hash) = match &state.snapshot {
            None => (LogIndex::ZERO, 0),
            Some(snapshot) => {
                let base = snapshot.meta.last_included_index;
                let known = position(base)
                    .checked_sub(1)
                    .and_then(|pos| self.committed.get(pos));
                // Only a snapshot of the committed prefix (see `snapshot_data`) counts.
                match known {
                    Some(known) if self.is_snapshot_of(&snapshot.data, known.chain) => {
                        (base, known.chain)
                    }
                    _ => return false,
                }
            }
        };
        if index <= base {
            return true;
        }
        let wanted = position(index) - position(base);
        if state.entries.len() < wanted {
            return false;
        }
        for entry in &state.entries[..wanted] {
            hash = self::chain(hash, entry.term, payload_hash(&entry.payload));
        }
        hash == chain
    }
}

/// Symmetry reduction in model checking: the same history under other node names.
impl Checker {
    /// This history with every node id renamed. Chain hashes cover membership entries by the
    /// ids they list and are kept as they are, so the result is the history of the renamed
    /// cluster only when no log ever held a membership entry.
    #[must_use]
    pub fn renamed(&self, renaming: &raft_core::NodeRenaming) -> Checker {
        let Checker {
            nodes,
            leaders,
            chains,
            committed,
            acked,
            dropped,
            leaderships,
            reads_received,
            machine_snapshots,
        } = self;
        let mut renamed = NodeRecords::default();
        for (id, record) in nodes.iter() {
            *renamed.or_default(renaming.id(id)) = record.clone();
        }
        Checker {
            nodes: renamed,
            leaders: leaders
                .iter()
                .map(|(&term, &id)| (term, renaming.id(id)))
                .collect(),
            chains: chains.clone(),
            committed: committed.clone(),
            acked: acked.clone(),
            dropped: dropped.clone(),
            leaderships: leaderships
                .iter()
                .map(|(&term, &(id, starts))| (term, (renaming.id(id), starts)))
                .collect(),
            // Request ids and lengths: no node ids.
            reads_received: reads_received.clone(),
            machine_snapshots: *machine_snapshots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Sim, SimConfig};
    use raft_core::MembershipChange;

    /// A leader that has just appended its own removal: still leading, no longer a voter.
    fn leader_removing_itself() -> (Sim, NodeId) {
        let mut config = SimConfig::new(3, 3);
        config.clients.clients = 0;
        let mut sim = Sim::new(config);
        for id in sim.node_ids() {
            sim.start(id).expect("a fresh node starts");
        }
        sim.run_until_time(2_000);
        let leader = sim.current_leader().expect("a leader");
        for id in sim.node_ids() {
            if id != leader {
                sim.network.isolate(id);
            }
        }
        sim.change_membership(leader, MembershipChange::Remove(leader))
            .expect("the leader is up");
        sim.run_until_time(2_050);
        assert_eq!(sim.failure(), None);
        (sim, leader)
    }

    #[test]
    fn a_leader_outside_its_voters_is_checked() {
        let (sim, leader) = leader_removing_itself();
        let node = sim.node(leader).expect("up");
        assert_eq!(node.role(), Role::Leader);
        assert!(!node.membership().is_voter(leader));
        // Its removal is not committed: it may go on leading.
        let same = Observed::of(node);
        assert!(check_leader_membership(node, same).is_ok());
        // It may also have just been elected: a voter until its removal commits (thesis
        // §4.2.2).
        let elected = Observed {
            role: Role::Candidate,
            ..same
        };
        assert!(check_leader_membership(node, elected).is_ok());
    }
}
