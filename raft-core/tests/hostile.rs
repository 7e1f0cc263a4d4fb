//! Hostile but well-formed peer messages: whatever a decoded envelope carries (terms, indexes,
//! sizes and offsets anywhere in the `u64` range, from members or strangers), `step` never
//! panics, never moves the term or the commit index backwards, and never changes a committed
//! entry.

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use raft_core::{
    Action, AppendEntries, AppendEntriesResponse, AppendResult, ConflictHint, Entry, EntryPayload,
    Envelope, Input, InstallSnapshot, InstallSnapshotResponse, LogIndex, Membership, Message, Node,
    NodeId, RequestId, RequestVote, RequestVoteResponse, Role, SnapshotMeta, Term,
};
use support::*;

/// A number from every region a hostile peer might pick: around the node's own state (its log
/// and terms are below 16), at the top of the range, around 2^63, or anywhere.
fn number() -> BoxedStrategy<u64> {
    prop_oneof![
        4 => 0u64..16,
        1 => (0u64..4).prop_map(|d| u64::MAX - d),
        1 => (0u64..4).prop_map(|d| (1u64 << 63) - 2 + d),
        1 => (0u64..4).prop_map(|d| raft_core::ACCEPTED_VALUE_MAX - 2 + d),
        1 => (0u64..4).prop_map(|d| (1u64 << 32) - 2 + d),
        1 => any::<u64>(),
    ]
    .boxed()
}

fn node_id() -> BoxedStrategy<NodeId> {
    prop_oneof![
        6 => (1u64..4).prop_map(NodeId),
        1 => (4u64..8).prop_map(NodeId),
        1 => Just(NodeId(0)),
        1 => any::<u64>().prop_map(NodeId),
    ]
    .boxed()
}

fn payload() -> BoxedStrategy<EntryPayload> {
    let ids = || proptest::collection::btree_set(node_id(), 0..4);
    prop_oneof![
        Just(EntryPayload::Noop),
        proptest::collection::vec(any::<u8>(), 0..4)
            .prop_map(|bytes| EntryPayload::Command(bytes.into())),
        (ids(), ids()).prop_map(|(voters, learners)| EntryPayload::Membership(Membership {
            voters,
            learners,
            ..Membership::default()
        })),
    ]
    .boxed()
}

/// Entries after `prev`: mostly in sequence with non-decreasing terms (what a leader sends),
/// sometimes anything at all.
fn entries() -> BoxedStrategy<(u64, u64, Vec<Entry>)> {
    (
        number(),
        number(),
        proptest::collection::vec((0u64..2, payload(), number()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(prev, prev_term, raw, in_sequence)| {
            let mut term = prev_term;
            let entries = raw
                .into_iter()
                .enumerate()
                .map(|(offset, (step, payload, wild))| {
                    term = term.saturating_add(step);
                    if in_sequence {
                        Entry {
                            index: LogIndex(prev.saturating_add(offset as u64 + 1)),
                            term: Term(term),
                            payload,
                        }
                    } else {
                        Entry {
                            index: LogIndex(wild),
                            term: Term(wild ^ step),
                            payload,
                        }
                    }
                })
                .collect();
            (prev, prev_term, entries)
        })
        .boxed()
}

fn any_message() -> BoxedStrategy<Message> {
    let vote = || {
        (number(), number(), any::<bool>()).prop_map(|(i, t, transfer)| RequestVote {
            last_log_index: LogIndex(i),
            last_log_term: Term(t),
            leadership_transfer: transfer,
        })
    };
    let membership = (
        proptest::collection::btree_set(node_id(), 0..4),
        proptest::collection::btree_set(node_id(), 0..3),
    )
        .prop_map(|(voters, learners)| Membership {
            voters,
            learners,
            ..Membership::default()
        });
    prop_oneof![
        1 => vote().prop_map(Message::RequestVote),
        1 => vote().prop_map(Message::PreVote),
        1 => any::<bool>().prop_map(|g| Message::RequestVoteResponse(RequestVoteResponse { vote_granted: g })),
        1 => any::<bool>().prop_map(|g| Message::PreVoteResponse(RequestVoteResponse { vote_granted: g })),
        3 => (entries(), number(), number()).prop_map(|((prev, prev_term, entries), commit, round)| {
            Message::AppendEntries(AppendEntries {
                prev_log_index: LogIndex(prev),
                prev_log_term: Term(prev_term),
                entries,
                leader_commit: LogIndex(commit),
                read_round: round,
            })
        }),
        2 => (number(), prop_oneof![
            number().prop_map(|m| AppendResult::Success { match_index: LogIndex(m) }),
            (number(), proptest::option::of(number()), number()).prop_map(|(r, t, f)| AppendResult::Reject {
                rejected_prev_index: LogIndex(r),
                hint: ConflictHint { conflict_term: t.map(Term), first_index: LogIndex(f) },
            }),
            Just(AppendResult::StaleTerm),
        ]).prop_map(|(read_round, result)| Message::AppendEntriesResponse(AppendEntriesResponse { read_round, result })),
        1 => Just(Message::TimeoutNow),
        2 => (number(), number(), membership, number(), number(), proptest::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(index, term, membership, total, offset, data)| Message::InstallSnapshot(InstallSnapshot {
                meta: SnapshotMeta { last_included_index: LogIndex(index), last_included_term: Term(term), membership },
                total_bytes: total,
                offset,
                data,
            })),
        1 => (number(), number(), any::<bool>()).prop_map(|(index, received, installed)| {
            Message::InstallSnapshotResponse(InstallSnapshotResponse {
                last_included_index: LogIndex(index),
                received_bytes: received,
                installed,
            })
        }),
    ]
    .boxed()
}

fn any_envelope() -> BoxedStrategy<Envelope> {
    (
        node_id(),
        prop_oneof![8 => Just(NodeId(1)), 1 => node_id()],
        number(),
        any_message(),
    )
        .prop_map(|(from, to, term, message)| Envelope {
            from,
            to,
            term: Term(term),
            incarnation: raft_core::Incarnation(0),
            message,
        })
        .boxed()
}

#[derive(Clone, Debug)]
enum Step {
    Receive(Envelope),
    Tick,
    PersistAll,
    Propose,
    Read,
}

fn step() -> BoxedStrategy<Step> {
    prop_oneof![
        8 => any_envelope().prop_map(Step::Receive),
        2 => Just(Step::Tick),
        2 => Just(Step::PersistAll),
        1 => Just(Step::Propose),
        1 => Just(Step::Read),
    ]
    .boxed()
}

/// Node 1 of three voters in one of the roles a peer can meet it in.
fn start(role: u8) -> Node {
    match role {
        0 => Node::new(production_config(1, 3)).expect("valid config"),
        1 => {
            let mut n = node_with_log(1, 3, 3, &[1, 1, 2, 3, 3]);
            let _ = step_durably(&mut n, append(2, 1, 3, (5, 3), vec![], 3));
            n
        }
        2 => {
            let mut n = node_with_log(1, 3, 3, &[1, 1, 2, 3, 3]);
            let _ = tick_until_candidate(&mut n);
            n
        }
        _ => {
            let mut n = node(1, 3);
            let _ = make_leader(&mut n);
            let _ = step_durably(
                &mut n,
                Input::Propose {
                    request_id: RequestId(1),
                    command: b"x".to_vec(),
                },
            );
            n
        }
    }
}

/// What a correct node never does, whatever it is sent.
#[derive(Default)]
struct Watch {
    term: Term,
    commit: LogIndex,
    committed: BTreeMap<LogIndex, Entry>,
}

impl Watch {
    fn check(&mut self, node: &Node) {
        assert!(node.term() >= self.term, "term moved backwards");
        self.term = node.term();
        assert!(
            node.commit_index() >= self.commit,
            "commit index moved backwards"
        );
        self.commit = node.commit_index();
        for entry in node.entries(LogIndex(1), node.commit_index()) {
            let known = self
                .committed
                .entry(entry.index)
                .or_insert_with(|| entry.clone());
            assert_eq!(known, entry, "committed entry {} changed", entry.index);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_panic_on_any_well_decoded_envelope(role in 0u8..4, steps in proptest::collection::vec(step(), 1..40)) {
        let mut n = start(role);
        let mut watch = Watch::default();
        watch.check(&n);
        let mut request = 100;
        for step in steps {
            let input = match step {
                Step::Receive(envelope) => Input::Receive(envelope),
                Step::Tick => Input::Tick,
                Step::PersistAll => Input::PersistDone { persist_id: n.status().last_persist_issued },
                Step::Propose => {
                    request += 1;
                    Input::Propose { request_id: RequestId(request), command: b"p".to_vec() }
                }
                Step::Read => {
                    request += 1;
                    Input::Read { request_id: RequestId(request) }
                }
            };
            let actions = n.step(input);
            for action in &actions {
                if let Action::Send(envelope) = action {
                    prop_assert_eq!(envelope.from, NodeId(1));
                }
            }
            watch.check(&n);
        }
        let _ = n.role() == Role::Leader;
    }
}

fn follower_of_2() -> Node {
    let mut n = Node::new(production_config(1, 3)).expect("valid config");
    let _ = step_durably(&mut n, append(2, 1, 1, (0, 0), vec![], 0));
    assert_eq!(n.leader_id(), Some(NodeId(2)));
    n
}

fn timeout_now(from: u64, term: u64) -> Input {
    Input::Receive(envelope(from, 1, term, Message::TimeoutNow))
}

#[test]
fn timeout_now_from_the_current_leader_in_its_term_starts_an_election() {
    let mut n = follower_of_2();
    let _ = n.step(timeout_now(2, 1));
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.term(), Term(2));
}

#[test]
fn timeout_now_from_a_stranger_is_ignored() {
    let mut n = follower_of_2();
    let _ = n.step(timeout_now(7, 1));
    let _ = n.step(timeout_now(7, 5));
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.term(), Term(1));
    assert_eq!(n.status().stats.messages_ignored, 2);
}

#[test]
fn timeout_now_from_a_member_that_is_not_the_leader_is_ignored() {
    let mut n = follower_of_2();
    let _ = n.step(timeout_now(3, 1));
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.leader_id(), Some(NodeId(2)));
}

#[test]
fn timeout_now_for_another_term_is_ignored_and_its_term_not_adopted() {
    let mut n = follower_of_2();
    let _ = n.step(timeout_now(2, 2));
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(
        n.term(),
        Term(1),
        "the term of an ignored TimeoutNow is not adopted"
    );
    let _ = n.step(timeout_now(2, u64::MAX));
    assert_eq!(n.term(), Term(1));
}

#[test]
fn timeout_now_does_not_depose_a_leader() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    for from in [2, 3, 7] {
        let _ = n.step(timeout_now(from, 1));
    }
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn message_with_a_term_above_the_accepted_range_is_ignored() {
    let mut n = node(1, 3);
    let _ = step_durably(&mut n, append(2, 1, 1, (0, 0), vec![], 0));
    let max = raft_core::ACCEPTED_VALUE_MAX;
    for term in [max + 1, u64::MAX] {
        let _ = n.step(append(2, 1, term, (0, 0), vec![], 0));
        let _ = n.step(request_vote(3, 1, term, 0, 0));
    }
    assert_eq!(n.term(), Term(1));
    assert_eq!(n.role(), Role::Follower);
    // At the bound itself the term is adopted, and the node can still campaign past it.
    let _ = n.step(append(3, 1, max, (0, 0), vec![], 0));
    assert_eq!(n.term(), Term(max));
    let _ = tick_until_candidate(&mut n);
    assert_eq!(n.term(), Term(max + 1));
}

#[test]
fn install_snapshot_at_the_top_of_the_index_range_is_ignored() {
    let mut n = follower_of_2();
    for index in [u64::MAX, raft_core::ACCEPTED_VALUE_MAX + 1] {
        let _ = n.step(Input::Receive(envelope(
            2,
            1,
            1,
            Message::InstallSnapshot(InstallSnapshot {
                meta: SnapshotMeta {
                    last_included_index: LogIndex(index),
                    last_included_term: Term(1),
                    membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
                },
                total_bytes: 1,
                offset: 0,
                data: vec![7],
            }),
        )));
    }
    assert_eq!(n.commit_index(), LogIndex(0));
    assert_eq!(n.last_log_index(), LogIndex(0));
}

#[test]
fn append_entries_at_the_top_of_the_index_range_is_ignored() {
    let mut n = follower_of_2();
    let top = u64::MAX - 1;
    let _ = n.step(append(
        2,
        1,
        1,
        (top, 1),
        vec![entry(u64::MAX, 1, "x")],
        u64::MAX,
    ));
    assert_eq!(n.last_log_index(), LogIndex(0));
    assert_eq!(n.commit_index(), LogIndex(0));
}

#[test]
fn restore_refuses_values_above_the_accepted_range() {
    let durable = raft_core::DurableState {
        hard_state: raft_core::HardState {
            current_term: Term(u64::MAX),
            voted_for: None,
        },
        snapshot: None,
        entries: Vec::new(),
    };
    let error = Node::restore(config(1, 3), durable).unwrap_err();
    assert!(matches!(
        error,
        raft_core::RestoreError::OutOfRange {
            field: "current_term",
            ..
        }
    ));
}

#[test]
fn reject_hint_beyond_the_leaders_log_is_ignored() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let _ = step_durably(
        &mut n,
        Input::Propose {
            request_id: RequestId(1),
            command: b"x".to_vec(),
        },
    );
    // Node 2 acknowledges everything, so the leader streams to it.
    let _ = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(2),
        },
    ));
    let absurd = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Reject {
            rejected_prev_index: LogIndex(1 << 40),
            hint: ConflictHint {
                conflict_term: None,
                first_index: LogIndex(1 << 40),
            },
        },
    ));
    assert!(
        sends(&absurd).is_empty(),
        "nothing is resent for a reject of an index never sent"
    );
    assert_eq!(n.match_index(NodeId(2)), Some(LogIndex(2)));
    // The follower still gets what the leader appends next.
    let next = n.step(Input::Propose {
        request_id: RequestId(2),
        command: b"y".to_vec(),
    });
    assert!(sends(&next).iter().any(|e| e.to == NodeId(2)
        && matches!(&e.message, Message::AppendEntries(a) if a.prev_log_index == LogIndex(2))));
}

#[test]
fn stranger_cannot_depose_the_live_leader_of_a_follower() {
    let mut n = follower_of_2();
    let _ = n.step(append(9, 1, 5, (0, 0), vec![entry(1, 5, "forged")], 1));
    assert_eq!(n.term(), Term(1));
    assert_eq!(n.leader_id(), Some(NodeId(2)));
    assert_eq!(n.last_log_index(), LogIndex(0));
}

#[test]
fn leader_outside_the_membership_is_followed_once_the_known_leader_is_silent() {
    // A lagging node may not know a leader that was added after its last membership entry.
    let mut n = follower_of_2();
    for _ in 0..production_config(1, 3).election_timeout_ticks_min {
        let _ = n.step(Input::Tick);
    }
    let _ = step_durably(&mut n, append(4, 1, 3, (0, 0), vec![entry(1, 3, "new")], 0));
    assert_eq!(n.term(), Term(3));
    assert_eq!(n.leader_id(), Some(NodeId(4)));
    assert_eq!(n.last_log_index(), LogIndex(1));
}
