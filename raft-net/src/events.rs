//! The node's live status, for watchers: `GET /api/v1/events` and the dashboard (`GET /ui`).
//!
//! The driver owns a [`StatusFeed`] and calls [`StatusFeed::publish`] where it already updates
//! its gauges, after every step. The feed compares a handful of scalars and the membership
//! with what it last sent and only builds and sends a new [`NodeStatus`] (on a `watch`
//! channel: watchers always see the latest one, never a queue) when one of them changed.
//! Role, term and leader changes are also kept in a short history inside the status, each with
//! a sequence number, so a watcher that was not scheduled between two changes (a candidate that
//! won its election within one burst of inputs) still sees both.
//!
//! The status carries the log as runs of terms, not entry by entry: a Raft log's terms never
//! decrease along it, and two logs whose last entries have the same index and term are equal
//! (Log Matching, Raft paper §5.3), so the runs are few and only need recomputing when the
//! snapshot or the last entry changes.

use std::collections::VecDeque;

use raft_core::{LogIndex, Membership, Node, NodeId, Role, Term};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

/// Role changes kept in a status for watchers that missed some.
pub const CHANGES_MAX: usize = 32;

/// One node's status as watchers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct NodeStatus {
    pub id: u64,
    /// `LEADER`, `CANDIDATE` or `FOLLOWER`.
    pub role: &'static str,
    /// A follower asking for pre-votes (it has not started an election yet).
    pub pre_candidate: bool,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    /// Entries up to here are compacted into a snapshot.
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The leadership transfer this leader is running, if any.
    pub transfer_target: Option<u64>,
    /// The log after the snapshot as runs of one term: each run's first index and its term,
    /// in index order; a run ends where the next begins, the last at `last_log_index`.
    pub log_terms: Vec<[u64; 2]>,
    /// The latest role, term and leader changes, oldest first (at most [`CHANGES_MAX`]).
    pub changes: Vec<RoleChange>,
}

/// A role, term or leader change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RoleChange {
    /// Counts the changes since the node started: a watcher takes the ones it has not seen.
    pub seq: u64,
    /// Wall-clock milliseconds since the Unix epoch: for drawing a timeline only; no decision
    /// is ever taken on it.
    pub at_ms: u64,
    pub role: &'static str,
    pub pre_candidate: bool,
    pub term: u64,
    pub leader: Option<u64>,
}

/// What the status depends on, cheap to compare after every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    role: Role,
    pre_candidate: bool,
    term: Term,
    leader: Option<NodeId>,
    commit: LogIndex,
    applied: LogIndex,
    last: LogIndex,
    last_term: Term,
    snapshot: LogIndex,
    transfer: Option<NodeId>,
}

impl Key {
    fn of(node: &Node, snapshot_index: LogIndex) -> Key {
        let status = node.status();
        Key {
            role: status.role,
            pre_candidate: node.is_pre_candidate(),
            term: status.term,
            leader: status.leader_id,
            commit: status.commit_index,
            applied: status.applied_index,
            last: status.last_log_index,
            last_term: status.last_log_term,
            snapshot: snapshot_index,
            transfer: node.transfer_target(),
        }
    }

    fn role_part(&self) -> (Role, bool, Term, Option<NodeId>) {
        (self.role, self.pre_candidate, self.term, self.leader)
    }
}

/// The driver's side of the status channel.
#[derive(Debug)]
pub struct StatusFeed {
    sender: watch::Sender<NodeStatus>,
    key: Key,
    membership: Membership,
    changes: VecDeque<RoleChange>,
    next_seq: u64,
}

impl StatusFeed {
    /// A feed starting at `node`'s current status; the node's start is the first entry of its
    /// history.
    #[must_use]
    pub fn new(node: &Node, snapshot_index: LogIndex) -> StatusFeed {
        let key = Key::of(node, snapshot_index);
        let mut changes = VecDeque::new();
        changes.push_back(change(1, &key));
        let membership = node.membership().clone();
        let log_terms = log_terms(node);
        let status = status(node.id(), &key, &membership, &log_terms, &changes);
        StatusFeed {
            sender: watch::Sender::new(status),
            key,
            membership,
            changes,
            next_seq: 2,
        }
    }

    /// A receiver of every status from now on (it holds the current one).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<NodeStatus> {
        self.sender.subscribe()
    }

    /// Sends a new status if anything in it changed since the last one.
    pub fn publish(&mut self, node: &Node, snapshot_index: LogIndex) {
        let key = Key::of(node, snapshot_index);
        let membership_changed = *node.membership() != self.membership;
        if key == self.key && !membership_changed {
            return;
        }
        let log_changed = (key.last, key.last_term, key.snapshot)
            != (self.key.last, self.key.last_term, self.key.snapshot);
        let role_changed = key.role_part() != self.key.role_part();
        self.key = key;
        if membership_changed {
            self.membership = node.membership().clone();
        }
        if role_changed {
            self.record_change();
        }
        let (membership, changes) = (&self.membership, &self.changes);
        // In place: most steps change only the indexes, and the status is published after
        // every step, so rebuilding its lists each time was an allocation per write or more.
        self.sender.send_modify(|status| {
            set_scalars(status, &key);
            if membership_changed {
                set_ids(&mut status.voters, &membership.voters);
                set_ids(&mut status.learners, &membership.learners);
            }
            if log_changed {
                fill_log_terms(node, &mut status.log_terms);
            }
            if role_changed {
                status.changes.clear();
                status.changes.extend(changes.iter().cloned());
            }
        });
    }

    fn record_change(&mut self) {
        if self.changes.len() == CHANGES_MAX {
            self.changes.pop_front();
        }
        self.changes.push_back(change(self.next_seq, &self.key));
        self.next_seq += 1;
    }
}

fn change(seq: u64, key: &Key) -> RoleChange {
    let (role, pre_candidate, term, leader) = key.role_part();
    RoleChange {
        seq,
        at_ms: crate::service::wall_clock_ms(),
        role: role.as_str(),
        pre_candidate,
        term: term.0,
        leader: leader.map(|id| id.0),
    }
}

fn status(
    id: NodeId,
    key: &Key,
    membership: &Membership,
    log_terms: &[[u64; 2]],
    changes: &VecDeque<RoleChange>,
) -> NodeStatus {
    let mut status = NodeStatus {
        id: id.0,
        role: key.role.as_str(),
        pre_candidate: false,
        term: 0,
        leader: None,
        commit_index: 0,
        applied_index: 0,
        last_log_index: 0,
        snapshot_index: 0,
        voters: Vec::new(),
        learners: Vec::new(),
        transfer_target: None,
        log_terms: log_terms.to_vec(),
        changes: changes.iter().cloned().collect(),
    };
    set_scalars(&mut status, key);
    set_ids(&mut status.voters, &membership.voters);
    set_ids(&mut status.learners, &membership.learners);
    status
}

fn set_scalars(status: &mut NodeStatus, key: &Key) {
    status.role = key.role.as_str();
    status.pre_candidate = key.pre_candidate;
    status.term = key.term.0;
    status.leader = key.leader.map(|id| id.0);
    status.commit_index = key.commit.0;
    status.applied_index = key.applied.0;
    status.last_log_index = key.last.0;
    status.snapshot_index = key.snapshot.0;
    status.transfer_target = key.transfer.map(|id| id.0);
}

fn set_ids<'a>(list: &mut Vec<u64>, ids: impl IntoIterator<Item = &'a NodeId>) {
    list.clear();
    list.extend(ids.into_iter().map(|id| id.0));
}

/// The runs of equal terms in the log the node holds (after its snapshot): a binary search per
/// run, since terms never decrease along a log.
fn log_terms(node: &Node) -> Vec<[u64; 2]> {
    let mut runs = Vec::new();
    fill_log_terms(node, &mut runs);
    runs
}

/// [`log_terms`] into `runs`, reusing its allocation.
fn fill_log_terms(node: &Node, runs: &mut Vec<[u64; 2]>) {
    runs.clear();
    let mut rest = node.entries(LogIndex(1), node.last_log_index());
    while let Some(first) = rest.first() {
        runs.push([first.index.0, first.term.0]);
        let term = first.term;
        // At least the first entry is in its own run, so the loop always advances.
        let end = rest.partition_point(|entry| entry.term <= term).max(1);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Action, Config, Input, RequestId};

    /// Steps a one-node cluster, reporting every persist done at once, and publishes after
    /// each step, as the driver does.
    fn drive(node: &mut Node, feed: &mut StatusFeed, input: Input) {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            for action in node.step(input) {
                if let Action::Persist(request) = action {
                    inputs.push(Input::PersistDone {
                        persist_id: request.persist_id,
                    });
                }
            }
            feed.publish(node, LogIndex(0));
            // Updated in place, the status must be the one built from scratch.
            let rebuilt = status(
                node.id(),
                &feed.key,
                &feed.membership,
                &log_terms(node),
                &feed.changes,
            );
            assert_eq!(*feed.sender.borrow(), rebuilt);
        }
    }

    #[test]
    fn a_status_is_sent_on_every_change_and_only_then() {
        let mut node = Node::new(Config::new(NodeId(1), [NodeId(1)])).unwrap();
        let mut feed = StatusFeed::new(&node, LogIndex(0));
        let mut status = feed.subscribe();
        assert_eq!(status.borrow().role, "FOLLOWER");
        assert_eq!(status.borrow().voters, vec![1]);
        status.mark_unchanged();
        let mut elected = false;
        for _ in 0..1000 {
            drive(&mut node, &mut feed, Input::Tick);
            if node.role() == Role::Leader && node.commit_index() >= LogIndex(1) {
                elected = true;
                break;
            }
        }
        assert!(elected, "a one-node cluster elects itself");
        assert!(status.has_changed().unwrap());
        let leader = status.borrow_and_update().clone();
        assert_eq!((leader.role, leader.leader), ("LEADER", Some(1)));
        assert_eq!(leader.log_terms, vec![[1, leader.term]]);
        // The history holds every step of the way, in order, even though the watcher looked
        // only once.
        let roles: Vec<&str> = leader.changes.iter().map(|change| change.role).collect();
        assert_eq!(roles.first(), Some(&"FOLLOWER"));
        assert_eq!(roles.last(), Some(&"LEADER"));
        assert!(roles.contains(&"CANDIDATE"), "{roles:?}");
        let seqs: Vec<u64> = leader.changes.iter().map(|change| change.seq).collect();
        assert!(
            seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{seqs:?}"
        );

        // A tick that changes nothing sends nothing.
        feed.publish(&node, LogIndex(0));
        assert!(!status.has_changed().unwrap());

        drive(
            &mut node,
            &mut feed,
            Input::Propose {
                request_id: RequestId(1),
                command: b"x".to_vec(),
            },
        );
        let appended = status.borrow_and_update().clone();
        assert_eq!(appended.last_log_index, 2);
        assert_eq!(appended.commit_index, 2);
        assert_eq!(appended.changes, leader.changes, "no role change");

        drive(
            &mut node,
            &mut feed,
            Input::ChangeMembership {
                request_id: RequestId(2),
                change: raft_core::MembershipChange::AddLearner(NodeId(4)),
            },
        );
        let grown = status.borrow_and_update().clone();
        assert_eq!((grown.voters, grown.learners), (vec![1], vec![4]));
        assert_eq!(grown.last_log_index, 3);
    }

    #[test]
    fn log_terms_are_runs_of_one_term() {
        use raft_core::{DurableState, Entry, EntryPayload, HardState};
        let entry = |index: u64, term: u64| Entry {
            index: LogIndex(index),
            term: Term(term),
            payload: EntryPayload::Noop,
        };
        let durable = DurableState {
            hard_state: HardState {
                current_term: Term(5),
                ..HardState::default()
            },
            entries: vec![
                entry(1, 1),
                entry(2, 1),
                entry(3, 2),
                entry(4, 4),
                entry(5, 4),
                entry(6, 4),
                entry(7, 5),
            ],
            ..DurableState::default()
        };
        let node = Node::restore(Config::new(NodeId(1), [NodeId(1)]), durable).unwrap();
        assert_eq!(log_terms(&node), vec![[1, 1], [3, 2], [4, 4], [7, 5]]);
        let empty = Node::new(Config::new(NodeId(1), [NodeId(1)])).unwrap();
        assert!(log_terms(&empty).is_empty());
    }
}
