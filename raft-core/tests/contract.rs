//! The driver contract of `step` (crate docs, rules 1-5), checked over randomized runs.

mod support;

use proptest::prelude::*;
use raft_core::{
    Action, AppendResult, Config, ConfigError, DurableState, HardState, Input, Node, NodeId,
    RestoreError, Term,
};
use support::*;

/// Rule 4: at most one Persist per step, ids increase by one, and actions come out in the order
/// Persist, Send..., Apply, Reply...
fn check_step_shape(actions: &[Action], last_persist: &mut u64) {
    let rank = |a: &Action| match a {
        Action::Persist(_) => 0,
        Action::Send(_) => 1,
        Action::ApplySnapshot { .. } => 2,
        Action::Apply { .. } => 3,
        Action::Reply { .. } => 4,
    };
    let ranks: Vec<u8> = actions.iter().map(rank).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "action order {ranks:?}"
    );
    let persists: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist(p) => Some(p.persist_id.0),
            _ => None,
        })
        .collect();
    assert!(persists.len() <= 1);
    if let Some(&id) = persists.first() {
        assert_eq!(id, *last_persist + 1);
        *last_persist = id;
    }
}

/// Steps `node` and checks the step's shape; completes its persist at once (checking that step
/// too) and queues every message it sends.
fn step_checked(
    node: &mut Node,
    input: Input,
    last_persist: &mut u64,
    queue: &mut std::collections::VecDeque<raft_core::Envelope>,
) {
    let actions = node.step(input);
    check_step_shape(&actions, last_persist);
    for action in actions {
        match action {
            Action::Send(envelope) => queue.push_back(envelope),
            Action::Persist(request) => {
                let done = Input::PersistDone {
                    persist_id: request.persist_id,
                };
                step_checked(node, done, last_persist, queue);
            }
            _ => {}
        }
    }
}

#[test]
fn each_step_emits_at_most_one_persist_in_order_persist_send_apply_reply() {
    for mut cluster in [Cluster::new(3), Cluster::new(3).with_late_persists(7)] {
        let mut last = std::collections::BTreeMap::new();
        // Drive by hand so every step's actions can be inspected.
        let mut queue = std::collections::VecDeque::new();
        let mut request = 0;
        for round in 0..400 {
            for n in 1..=3u64 {
                let mut inputs = vec![Input::Tick];
                if round % 7 == 0 {
                    request += 1;
                    inputs.push(Input::Propose {
                        request_id: raft_core::RequestId(request),
                        command: vec![round as u8],
                    });
                }
                for input in inputs {
                    let node = cluster.nodes.get_mut(&NodeId(n)).unwrap();
                    step_checked(node, input, last.entry(n).or_insert(0), &mut queue);
                }
            }
            while let Some(envelope) = queue.pop_front() {
                let to = envelope.to;
                let node = cluster.nodes.get_mut(&to).unwrap();
                let input = Input::Receive(envelope);
                step_checked(node, input, last.entry(to.0).or_insert(0), &mut queue);
            }
        }
        assert!(cluster.nodes.values().any(|n| n.commit_index().0 > 10));
    }
}

#[test]
fn persist_done_for_unissued_or_repeated_id_is_ignored() {
    let mut n = node(1, 1);
    let actions = tick_until_candidate(&mut n);
    let id = persist_id(&actions).unwrap();
    let bogus = n.step(Input::PersistDone {
        persist_id: raft_core::PersistId(id.0 + 5),
    });
    assert!(bogus.is_empty());
    assert_eq!(n.role(), raft_core::Role::Candidate);
    let _ = n.step(Input::PersistDone { persist_id: id });
    assert_eq!(n.role(), raft_core::Role::Leader);
    let again = n.step(Input::PersistDone { persist_id: id });
    assert!(again.is_empty());
}

#[test]
fn messages_for_other_nodes_or_from_strangers_are_ignored() {
    use raft_core::{
        AppendEntries, AppendEntriesResponse, ConflictHint, InstallSnapshot,
        InstallSnapshotResponse, Membership, Message, RequestVote, RequestVoteResponse,
        SnapshotMeta,
    };
    // A stranger's log is older than this node's: a vote request from outside the membership
    // counts only when it comes from a voter added since or one an uncommitted entry removes
    // (see the test below and the membership tests).
    let vote = RequestVote {
        last_log_index: raft_core::LogIndex(0),
        last_log_term: Term(0),
        leadership_transfer: true,
    };
    let every_kind = [
        Message::RequestVote(vote.clone()),
        Message::PreVote(vote),
        Message::RequestVoteResponse(RequestVoteResponse { vote_granted: true }),
        Message::PreVoteResponse(RequestVoteResponse { vote_granted: true }),
        Message::AppendEntries(AppendEntries {
            prev_log_index: raft_core::LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![entry(1, 5, "forged")],
            leader_commit: raft_core::LogIndex(1),
            read_round: 0,
        }),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            read_round: 0,
            result: AppendResult::Reject {
                rejected_prev_index: raft_core::LogIndex(0),
                hint: ConflictHint {
                    conflict_term: None,
                    first_index: raft_core::LogIndex(1),
                },
            },
        }),
        Message::TimeoutNow,
        Message::InstallSnapshot(InstallSnapshot {
            meta: SnapshotMeta {
                last_included_index: raft_core::LogIndex(3),
                last_included_term: Term(5),
                membership: Membership::new([NodeId(1), NodeId(9)]),
            },
            total_bytes: 1,
            offset: 0,
            data: vec![1],
        }),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            last_included_index: raft_core::LogIndex(3),
            received_bytes: 1,
            installed: true,
        }),
    ];
    // A follower that hears from its leader, n2: messages of every kind addressed to another
    // node, claiming to come from itself, or (in a higher term) from a stranger change nothing.
    let mut n = node_with_log(1, 3, 1, &[1]);
    let _ = step_durably(&mut n, append(2, 1, 1, (1, 1), vec![], 0));
    let before = n.status();
    let mut ignored = before.stats.messages_ignored;
    for message in every_kind {
        for (from, to) in [(2, 9), (1, 1), (9, 1)] {
            let actions = n.step(Input::Receive(envelope(from, to, 5, message.clone())));
            assert!(
                actions.is_empty(),
                "{} from n{from} to n{to}: {actions:?}",
                message.kind()
            );
            ignored += 1;
            assert_eq!(
                n.status().stats.messages_ignored,
                ignored,
                "{}",
                message.kind()
            );
        }
    }
    assert_eq!(n.term(), Term(1));
    assert_eq!(n.leader_id(), Some(NodeId(2)));
    assert_eq!(n.last_log_index(), raft_core::LogIndex(1));
    assert_eq!(n.voted_for(), before.voted_for);
}

#[test]
fn forged_append_that_would_truncate_committed_entries_is_ignored() {
    let mut n = node_with_log(1, 3, 1, &[1, 1, 1]);
    let _ = step_durably(&mut n, append(2, 1, 1, (3, 1), vec![], 3));
    assert_eq!(n.commit_index().0, 3);
    let actions = step_durably(
        &mut n,
        append(3, 1, 2, (1, 1), vec![entry(2, 2, "evil")], 3),
    );
    assert!(sends(&actions).is_empty());
    assert_eq!(n.entry(raft_core::LogIndex(2)).unwrap().term, Term(1));
}

#[test]
fn config_rejects_invalid_values_with_typed_errors() {
    let base = config(1, 3);
    let mut c = base.clone();
    c.heartbeat_interval_ticks = 0;
    assert_eq!(
        Node::new(c).unwrap_err(),
        ConfigError::ZeroTicks {
            field: "heartbeat_interval_ticks"
        }
    );
    let mut c = base.clone();
    c.election_timeout_ticks_min = 30;
    c.election_timeout_ticks_max = 20;
    assert!(matches!(
        Node::new(c),
        Err(ConfigError::ElectionRangeEmpty { .. })
    ));
    let mut c = base.clone();
    c.election_timeout_ticks_min = 2;
    assert!(matches!(
        Node::new(c),
        Err(ConfigError::ElectionTimeoutNotAboveHeartbeat { .. })
    ));
    // No voters: a node waiting to be added to an existing cluster.
    let mut c = base.clone();
    c.voters.clear();
    assert!(Node::new(c).is_ok());
    let c = Config::new(NodeId(7), [NodeId(1), NodeId(2)]);
    assert_eq!(
        Node::new(c).unwrap_err(),
        ConfigError::SelfNotAVoter { id: NodeId(7) }
    );
    let c = Config::new(NodeId(0), [NodeId(0)]);
    assert_eq!(Node::new(c).unwrap_err(), ConfigError::ZeroNodeId);
    let mut c = base;
    c.inflight_appends_max = 0;
    assert!(matches!(Node::new(c), Err(ConfigError::ZeroLimit { .. })));
}

#[test]
fn restore_rejects_state_this_core_cannot_have_written() {
    let gap = DurableState {
        hard_state: HardState {
            current_term: Term(2),
            voted_for: None,
        },
        snapshot: None,
        entries: vec![entry(1, 1, "a"), entry(3, 1, "b")],
    };
    assert!(matches!(
        Node::restore(config(1, 3), gap),
        Err(RestoreError::NonContiguousLog { position: 1, .. })
    ));
    let decreasing = DurableState {
        hard_state: HardState {
            current_term: Term(2),
            voted_for: None,
        },
        snapshot: None,
        entries: vec![entry(1, 2, "a"), entry(2, 1, "b")],
    };
    assert!(matches!(
        Node::restore(config(1, 3), decreasing),
        Err(RestoreError::TermDecreases { .. })
    ));
    let future = DurableState {
        hard_state: HardState {
            current_term: Term(1),
            voted_for: None,
        },
        snapshot: None,
        entries: vec![entry(1, 2, "a")],
    };
    assert!(matches!(
        Node::restore(config(1, 3), future),
        Err(RestoreError::EntryTermAboveCurrent { .. })
    ));
}

#[test]
fn restore_recovers_term_vote_and_log() {
    let mut n = node(1, 3);
    let mut durable = DurableState::default();
    for input in [
        request_vote(2, 1, 3, 0, 0),
        append(2, 1, 3, (0, 0), vec![entry(1, 3, "a"), entry(2, 3, "b")], 0),
    ] {
        for action in n.step(input) {
            if let Action::Persist(p) = action {
                durable.apply(&p);
            }
        }
    }
    let restored = Node::restore(config(1, 3), durable).unwrap();
    assert_eq!(restored.term(), Term(3));
    assert_eq!(restored.voted_for(), Some(NodeId(2)));
    assert_eq!(restored.last_log_index().0, 2);
    assert_eq!(
        restored.commit_index().0,
        0,
        "commit index is volatile (Figure 2)"
    );
}

proptest! {
    /// Arbitrary message sequences from peers never panic the node, never move its term back,
    /// and never let it grant two different votes in one term.
    #[test]
    fn arbitrary_peer_messages_keep_node_invariants(
        ops in proptest::collection::vec((0u8..5, 1u64..4, 0u64..6, 0u64..8, 0u64..6, 0u64..4), 1..120)
    ) {
        let mut n = node(1, 3);
        let mut votes: std::collections::BTreeMap<u64, u64> = Default::default();
        let mut last_term = 0;
        for (kind, from, term, index, log_term, commit) in ops {
            let from = if from == 1 { 2 } else { from };
            let input = match kind {
                0 => request_vote(from, 1, term, index, log_term),
                1 => vote_response(from, 1, term, index % 2 == 0),
                2 => {
                    let entries = (0..(index % 3)).map(|i| entry(index + i + 1, log_term.max(term.min(log_term + 1)), "x")).collect();
                    append(from, 1, term, (index, log_term), entries, commit)
                }
                3 => Input::Tick,
                _ => append_response(from, 1, term, raft_core::AppendResult::Success { match_index: raft_core::LogIndex(index) }),
            };
            let _ = step_durably(&mut n, input);
            prop_assert!(n.term().0 >= last_term);
            last_term = n.term().0;
            if let Some(v) = n.voted_for() {
                let previous = votes.insert(n.term().0, v.0);
                prop_assert!(previous.is_none() || previous == Some(v.0));
            }
        }
    }
}

#[test]
fn forged_appends_with_malformed_entries_are_ignored_and_counted() {
    let cases = [
        // Indexes out of sequence after prev.
        vec![entry(1, 1, "a"), entry(3, 1, "b")],
        // Terms decreasing along the entries.
        vec![entry(1, 2, "a"), entry(2, 1, "b")],
        // An entry from a term above the sender's.
        vec![entry(1, 5, "a")],
    ];
    for entries in cases {
        let mut n = node(1, 3);
        let actions = step_durably(&mut n, append(2, 1, 2, (0, 0), entries.clone(), 0));
        assert!(sends(&actions).is_empty(), "{entries:?}");
        assert_eq!(n.last_log_index().0, 0, "{entries:?}");
        assert_eq!(n.status().stats.messages_ignored, 1, "{entries:?}");
    }
}

#[test]
fn forged_same_term_messages_to_a_leader_are_ignored_and_counted() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let before = n.status().stats.messages_ignored;
    // A second leader in the same term, and a same-term StaleTerm, cannot come from correct
    // peers.
    let a = n.step(append(2, 1, 1, (0, 0), vec![], 0));
    let b = n.step(append_response(2, 1, 1, AppendResult::StaleTerm));
    assert!(sends(&a).is_empty() && sends(&b).is_empty());
    assert_eq!(n.role(), raft_core::Role::Leader);
    assert_eq!(n.status().stats.messages_ignored, before + 2);
}

#[test]
fn forged_acknowledgement_beyond_the_leaders_log_is_ignored_and_counted() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let before = n.status().stats.messages_ignored;
    let _ = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: raft_core::LogIndex(99),
        },
    ));
    assert_eq!(n.match_index(NodeId(2)), Some(raft_core::LogIndex(0)));
    assert_eq!(n.status().stats.messages_ignored, before + 1);
}

#[test]
fn vote_request_from_a_newer_voter_outside_the_membership_is_processed() {
    // Raft thesis §4.1: a voter added after this node's latest membership entry holds that
    // entry, which this node lacks, and may need this node's vote to be elected.
    let mut n = node_with_log(1, 3, 1, &[1]);
    let actions = step_durably(&mut n, request_vote(5, 1, 2, 2, 1));
    assert!(sends(&actions).iter().any(|e| e.to == NodeId(5)
        && matches!(&e.message, raft_core::Message::RequestVoteResponse(r) if r.vote_granted)));
    assert_eq!(n.voted_for(), Some(NodeId(5)));
    // One whose log is older (a server removed while it was away) is ignored.
    let mut n = node_with_log(1, 3, 1, &[1]);
    let actions = step_durably(&mut n, request_vote(5, 1, 2, 0, 0));
    assert!(actions.is_empty());
    assert_eq!(n.term(), Term(1));
}
