//! Byte-driven harnesses shared by the `cargo fuzz` targets and ordinary `cargo test`: the same
//! body runs under libFuzzer on nightly and over a checked-in corpus plus generated inputs on
//! stable. Each body turns arbitrary bytes into a sequence of inputs and panics on any broken
//! property, so a panic is a finding.

use alloc::collections::BTreeMap;

use crate::action::Action;
use crate::config::Config;
use crate::input::Input;
use crate::log_entry::{Entry, EntryPayload};
use crate::membership::{Membership, MembershipChange};
use crate::message::{
    AppendEntries, AppendEntriesResponse, AppendResult, ConflictHint, Envelope, InstallSnapshot,
    InstallSnapshotResponse, Message, RequestVote, RequestVoteResponse,
};
use crate::node::Node;
use crate::persist::SnapshotMeta;
use crate::types::{Incarnation, LogIndex, NodeId, PersistId, RequestId, Term};

/// Reads small numbers off a fuzz input; once it is exhausted every read is zero. Shared by
/// the fuzz bodies of the other crates.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    #[must_use]
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u8) -> u64 {
        u64::from(self.byte() % bound.max(1))
    }

    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number from anywhere in the `u64` range, most often small: below 12 (around a fuzzed
    /// node's own state), sometimes at the top of the range, around the largest value a node
    /// accepts, around 2^63, or any eight bytes.
    pub fn wide(&mut self) -> u64 {
        let selector = self.byte();
        let offset = u64::from(self.byte() % 4);
        match selector % 16 {
            12 => u64::MAX - offset,
            13 => (crate::types::ACCEPTED_VALUE_MAX - 2).saturating_add(offset),
            14 => (1 << 63) + offset,
            15 => (0..8).fold(0, |value, _| (value << 8) | u64::from(self.byte())),
            small => u64::from(small),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Arbitrary peer messages, forged, stale, duplicated and out of order, straight into one node
/// of a 3-5 voter cluster (node 1), with ticks, proposals, reads, compactions, membership
/// changes and persistence completions mixed in. The node must never panic, never move its
/// term backwards, never grant two votes in one term, never change or lose a committed entry,
/// and must apply entries exactly once, in order.
pub fn single_node_messages(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let voters = 3 + bytes.below(3);
    let mut config = Config::new(NodeId(1), (1..=voters).map(NodeId));
    config.heartbeat_interval_ticks = 1 + bytes.below(3) as u32;
    config.election_timeout_ticks_min = config.heartbeat_interval_ticks + 1 + bytes.below(4) as u32;
    config.election_timeout_ticks_max = config.election_timeout_ticks_min + bytes.below(4) as u32;
    config.pre_vote = bytes.flag();
    config.check_quorum = bytes.flag();
    config.snapshot_chunk_bytes_max = 1 + bytes.below(8) as usize;
    config.rng_seed = u64::from(bytes.byte());
    let Ok(mut node) = Node::new(config) else {
        return;
    };
    let mut checker = NodeChecker::default();
    let mut next_request = 0;
    while !bytes.is_empty() {
        let input = match bytes.below(10) {
            0 | 1 => Input::Tick,
            2 if bytes.flag() => {
                next_request += 1;
                Input::Propose {
                    request_id: RequestId(next_request),
                    command: alloc::vec![bytes.byte()],
                }
            }
            2 => {
                let proposals = (0..bytes.below(4))
                    .map(|_| {
                        next_request += 1;
                        (RequestId(next_request), alloc::vec![bytes.byte()])
                    })
                    .collect();
                Input::ProposeBatch { proposals }
            }
            3 => Input::PersistDone {
                persist_id: PersistId(
                    node.status()
                        .last_persist_issued
                        .0
                        .saturating_sub(bytes.below(3)),
                ),
            },
            4 => match bytes.below(2) {
                0 => {
                    next_request += 1;
                    Input::Read {
                        request_id: RequestId(next_request),
                    }
                }
                _ => Input::ReadBatch {
                    request_ids: (0..bytes.below(4))
                        .map(|_| {
                            next_request += 1;
                            RequestId(next_request)
                        })
                        .collect(),
                },
            },
            5 => Input::Compact {
                index: LogIndex(node.applied_index().0.saturating_sub(bytes.below(3))),
                data: alloc::vec![bytes.byte(); bytes.below(20) as usize],
            },
            6 => {
                next_request += 1;
                let id = NodeId(1 + bytes.below(7));
                let change = match bytes.below(3) {
                    0 => MembershipChange::AddLearner(id),
                    1 => MembershipChange::PromoteLearner(id),
                    _ => MembershipChange::Remove(id),
                };
                Input::ChangeMembership {
                    request_id: RequestId(next_request),
                    change,
                }
            }
            7 => Input::TransferLeader {
                to: NodeId(bytes.below(7)),
            },
            _ => Input::Receive(arbitrary_envelope(&mut bytes, node.term())),
        };
        let actions = node.step(input);
        checker.check(&node, &actions);
    }
}

/// A peer message as a member or a stranger might send it: terms, indexes, sizes and offsets
/// mostly near the node's own state, now and then anywhere in the `u64` range.
fn arbitrary_envelope(bytes: &mut Bytes<'_>, current: Term) -> Envelope {
    let from = NodeId(match bytes.below(16) {
        15 => bytes.wide(),
        id => id % 8,
    });
    let to = NodeId(if bytes.below(8) == 0 { 2 } else { 1 });
    let term = Term(match bytes.below(16) {
        15 => bytes.wide(),
        near => (current.0.saturating_add(near % 4)).saturating_sub(1),
    });
    let index = |bytes: &mut Bytes<'_>| LogIndex(bytes.wide());
    let small_term = |bytes: &mut Bytes<'_>| {
        Term(match bytes.below(8) {
            7 => bytes.wide(),
            term => term % 6,
        })
    };
    let message = match bytes.below(10) {
        0 => Message::RequestVote(RequestVote {
            last_log_index: index(bytes),
            last_log_term: small_term(bytes),
            leadership_transfer: bytes.flag(),
        }),
        1 => Message::PreVote(RequestVote {
            last_log_index: index(bytes),
            last_log_term: small_term(bytes),
            leadership_transfer: bytes.flag(),
        }),
        2 => Message::RequestVoteResponse(RequestVoteResponse {
            vote_granted: bytes.flag(),
        }),
        3 => Message::PreVoteResponse(RequestVoteResponse {
            vote_granted: bytes.flag(),
        }),
        4 | 5 => {
            let prev_log_index = index(bytes);
            let prev_log_term = small_term(bytes);
            let count = bytes.below(4);
            let mut entry_term = prev_log_term;
            let entries = (1..=count)
                .map(|offset| {
                    entry_term = Term(entry_term.0.saturating_add(bytes.below(2)));
                    let payload = match bytes.below(4) {
                        0 => EntryPayload::Noop,
                        1 => EntryPayload::Membership(Membership::new(
                            (1..=3 + bytes.below(3)).map(NodeId),
                        )),
                        _ => EntryPayload::Command(alloc::vec![bytes.byte()].into()),
                    };
                    Entry {
                        index: LogIndex(prev_log_index.0.saturating_add(offset)),
                        term: entry_term,
                        payload,
                    }
                })
                .collect();
            Message::AppendEntries(AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit: index(bytes),
                read_round: bytes.wide(),
            })
        }
        6 => Message::AppendEntriesResponse(AppendEntriesResponse {
            read_round: bytes.wide(),
            result: match bytes.below(4) {
                0 => AppendResult::Success {
                    match_index: index(bytes),
                },
                1 => AppendResult::Reject {
                    rejected_prev_index: index(bytes),
                    hint: ConflictHint {
                        conflict_term: bytes.flag().then(|| small_term(bytes)),
                        first_index: index(bytes),
                    },
                },
                2 => AppendResult::StaleTerm,
                _ => AppendResult::Gap {
                    log_last_index: index(bytes),
                    held_from: index(bytes),
                },
            },
        }),
        7 => {
            let total_bytes = bytes.wide();
            Message::InstallSnapshot(InstallSnapshot {
                meta: SnapshotMeta {
                    last_included_index: index(bytes),
                    last_included_term: small_term(bytes),
                    membership: Membership::new((1..=3).map(NodeId)),
                },
                total_bytes,
                offset: bytes.wide(),
                data: alloc::vec![bytes.byte(); bytes.below(8) as usize],
            })
        }
        8 => Message::InstallSnapshotResponse(InstallSnapshotResponse {
            last_included_index: index(bytes),
            received_bytes: bytes.wide(),
            installed: bytes.flag(),
        }),
        _ => Message::TimeoutNow,
    };
    // Mostly the incarnation every node of the fuzzed cluster has, sometimes another one: a
    // member that lost its state, or a late message from before it did.
    let incarnation = Incarnation(match bytes.below(8) {
        7 => bytes.wide(),
        other => u64::from(other == 6),
    });
    Envelope {
        from,
        to,
        term,
        incarnation,
        message,
    }
}

/// Properties of one node's observable behaviour across steps.
#[derive(Default)]
struct NodeChecker {
    last_term: Term,
    vote_in_term: BTreeMap<Term, NodeId>,
    /// Every entry this node ever reported committed, by index.
    committed: BTreeMap<LogIndex, Entry>,
    last_commit: LogIndex,
    applied: LogIndex,
    last_persist: PersistId,
}

impl NodeChecker {
    fn check(&mut self, node: &Node, actions: &[Action]) {
        assert!(node.term() >= self.last_term, "term moved backwards");
        self.last_term = node.term();
        if let Some(vote) = node.voted_for() {
            let first = *self.vote_in_term.entry(node.term()).or_insert(vote);
            assert_eq!(first, vote, "two votes granted in term {}", node.term());
        }
        assert!(
            node.commit_index() >= self.last_commit,
            "commit index moved backwards"
        );
        self.last_commit = node.commit_index();
        for entry in node.entries(LogIndex(1), node.commit_index()) {
            let known = self
                .committed
                .entry(entry.index)
                .or_insert_with(|| entry.clone());
            assert_eq!(known, entry, "committed entry {} changed", entry.index);
        }
        for action in actions {
            match action {
                Action::Persist(request) => {
                    assert_eq!(request.persist_id, self.last_persist.next(), "persist ids");
                    self.last_persist = request.persist_id;
                }
                Action::ApplySnapshot { snapshot } => {
                    assert!(snapshot.meta.last_included_index > self.applied);
                    self.applied = snapshot.meta.last_included_index;
                }
                Action::Apply { entries } => {
                    for entry in entries {
                        assert_eq!(entry.index, self.applied.next(), "applied out of order");
                        self.applied = entry.index;
                        if let Some(known) = self.committed.get(&entry.index) {
                            assert_eq!(known, entry, "applied entry differs from committed one");
                        }
                    }
                }
                Action::Send(_) | Action::Reply { .. } => {}
            }
        }
    }
}
