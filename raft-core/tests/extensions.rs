//! The Raft thesis extensions: pre-vote (§9.6), check-quorum and leader stickiness (§6.2,
//! §4.2.3), leadership transfer (§3.10) and ReadIndex reads (§6.4).

mod support;

use raft_core::{
    AppendResult, Input, LogIndex, Message, Node, NodeId, Reply, RequestId, Role, Term,
};
use support::*;

fn production_node(id: u64, voters: u64) -> Node {
    Node::new(production_config(id, voters)).unwrap()
}

fn tick_until_pre_candidate(n: &mut Node) -> Vec<raft_core::Action> {
    for _ in 0..100 {
        let actions = n.step(Input::Tick);
        if n.is_pre_candidate() {
            return actions;
        }
    }
    panic!("never started a pre-vote");
}

#[test]
fn pre_candidate_asks_for_next_term_without_changing_its_own() {
    let mut n = production_node(1, 3);
    let actions = tick_until_pre_candidate(&mut n);
    assert_eq!(n.term(), Term(0));
    assert_eq!(n.role(), Role::Follower);
    assert!(
        persist_id(&actions).is_none(),
        "a pre-vote changes nothing durable"
    );
    let requests = sends(&actions);
    assert_eq!(requests.len(), 2);
    for request in requests {
        assert_eq!(request.term, Term(1));
        assert!(matches!(request.message, Message::PreVote(_)));
    }
}

#[test]
fn pre_vote_majority_starts_a_real_election() {
    let mut n = production_node(1, 3);
    let _ = tick_until_pre_candidate(&mut n);
    let actions = n.step(Input::Receive(envelope(
        2,
        1,
        1,
        Message::PreVoteResponse(raft_core::RequestVoteResponse { vote_granted: true }),
    )));
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.term(), Term(1));
    assert!(sends(&actions)
        .iter()
        .all(|e| matches!(e.message, Message::RequestVote(_))));
}

#[test]
fn pre_vote_granted_only_for_up_to_date_log_and_changes_nothing() {
    let mut n = Node::restore(
        production_config(1, 3),
        raft_core::DurableState {
            hard_state: raft_core::HardState {
                current_term: Term(2),
                voted_for: None,
            },
            snapshot: None,
            entries: vec![entry(1, 2, "a")],
        },
    )
    .unwrap();
    let pre_vote = |last_index, last_term| {
        Input::Receive(envelope(
            2,
            1,
            3,
            Message::PreVote(raft_core::RequestVote {
                last_log_index: LogIndex(last_index),
                last_log_term: Term(last_term),
                leadership_transfer: false,
            }),
        ))
    };
    let stale = n.step(pre_vote(5, 1));
    assert!(matches!(&sends(&stale)[0].message, Message::PreVoteResponse(r) if !r.vote_granted));
    assert_eq!(sends(&stale)[0].term, Term(2), "a refusal carries our term");
    let fresh = n.step(pre_vote(1, 2));
    assert!(matches!(&sends(&fresh)[0].message, Message::PreVoteResponse(r) if r.vote_granted));
    assert_eq!(
        sends(&fresh)[0].term,
        Term(3),
        "a grant carries the pre-vote's term"
    );
    assert_eq!(n.term(), Term(2));
    assert_eq!(n.voted_for(), None);
    assert!(persist_id(&fresh).is_none());
}

#[test]
fn pre_vote_refusal_from_higher_term_makes_pre_candidate_follow_it() {
    let mut n = production_node(1, 3);
    let _ = tick_until_pre_candidate(&mut n);
    let _ = n.step(Input::Receive(envelope(
        2,
        1,
        7,
        Message::PreVoteResponse(raft_core::RequestVoteResponse {
            vote_granted: false,
        }),
    )));
    assert_eq!(n.term(), Term(7));
    assert!(!n.is_pre_candidate());
}

#[test]
fn rejoining_partitioned_node_does_not_bump_the_term() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        let term = c.nodes[&leader].term();
        let outsider = NodeId(if leader.0 == 3 { 2 } else { 3 });
        c.isolate(outsider);
        c.tick_all(200);
        assert_eq!(
            c.nodes[&outsider].term(),
            term,
            "pre-votes never reached a quorum"
        );
        c.heal();
        c.tick_all(30);
        assert_eq!(c.leader(), Some(leader));
        assert_eq!(c.nodes[&leader].term(), term);
    }
}

#[test]
fn isolated_leader_steps_down_after_an_election_timeout() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        c.isolate(leader);
        // Peers heard from in the current check-quorum window still count: within two windows.
        for _ in 0..20 {
            c.tick(leader);
        }
        assert_eq!(c.nodes[&leader].role(), Role::Follower);
        assert_eq!(c.nodes[&leader].leader_id(), None);
    }
}

#[test]
fn leader_with_quorum_keeps_leading() {
    for mut c in [
        Cluster::production(5),
        Cluster::production(5).with_late_persists(7),
    ] {
        let leader = c.elect();
        let others: Vec<NodeId> = c.nodes.keys().copied().filter(|&n| n != leader).collect();
        c.isolate(others[0]);
        c.isolate(others[1]);
        c.tick_all(100);
        assert_eq!(c.nodes[&leader].role(), Role::Leader);
    }
}

#[test]
fn follower_in_lease_ignores_vote_requests() {
    let mut n = production_node(1, 3);
    let _ = step_durably(&mut n, append(2, 1, 1, (0, 0), vec![], 0));
    let actions = step_durably(&mut n, request_vote(3, 1, 2, 0, 0));
    assert!(sends(&actions).is_empty());
    assert_eq!(n.term(), Term(1), "the term does not move either");
    // Once the leader has been silent for the minimum election timeout, the lease is over.
    for _ in 0..10 {
        let _ = n.step(Input::Tick);
    }
    let actions = step_durably(&mut n, request_vote(3, 1, 2, 0, 0));
    assert!(
        matches!(&sends(&actions)[0].message, Message::RequestVoteResponse(r) if r.vote_granted)
    );
}

#[test]
fn transfer_vote_request_bypasses_the_lease() {
    let mut n = production_node(1, 3);
    let _ = step_durably(&mut n, append(2, 1, 1, (0, 0), vec![], 0));
    let actions = step_durably(
        &mut n,
        Input::Receive(envelope(
            3,
            1,
            2,
            Message::RequestVote(raft_core::RequestVote {
                last_log_index: LogIndex(0),
                last_log_term: Term(0),
                leadership_transfer: true,
            }),
        )),
    );
    assert!(
        matches!(&sends(&actions)[0].message, Message::RequestVoteResponse(r) if r.vote_granted)
    );
}

#[test]
fn transfer_leader_hands_over_to_the_target() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        for i in 0..5 {
            let _ = c.propose(leader, &format!("w{i}"));
        }
        let target = NodeId(if leader.0 == 1 { 2 } else { 1 });
        c.step(leader, Input::TransferLeader { to: target });
        c.settle();
        c.tick_all(3);
        assert_eq!(c.leader(), Some(target));
        assert_eq!(c.nodes[&leader].role(), Role::Follower);
        c.check_safety();
        assert_eq!(c.commands(target).len(), 5);
    }
}

#[test]
fn transfer_refuses_proposals_and_gives_up_after_an_election_timeout() {
    let mut n = production_node(1, 3);
    let actions = make_leader(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let _ = n.step(Input::TransferLeader { to: NodeId(2) });
    assert_eq!(n.transfer_target(), Some(NodeId(2)));
    let refused = n.step(Input::Propose {
        request_id: RequestId(1),
        command: b"x".to_vec(),
    });
    assert_eq!(replies(&refused), vec![(RequestId(1), Reply::Busy)]);
    // n2 never answers; keep n3 in touch so check-quorum keeps n1 leader.
    for _ in 0..20 {
        let _ = n.step(Input::Tick);
        let _ = n.step(append_response(
            3,
            1,
            1,
            AppendResult::Success {
                match_index: LogIndex(1),
            },
        ));
    }
    assert_eq!(n.transfer_target(), None);
    assert_eq!(n.role(), Role::Leader);
    let accepted = n.step(Input::Propose {
        request_id: RequestId(2),
        command: b"y".to_vec(),
    });
    assert!(matches!(replies(&accepted)[0].1, Reply::Accepted { .. }));
}

#[test]
fn timeout_now_sent_only_once_target_has_the_whole_log() {
    let mut n = production_node(1, 3);
    let _ = make_leader(&mut n);
    let actions = n.step(Input::TransferLeader { to: NodeId(2) });
    assert!(!sends(&actions)
        .iter()
        .any(|e| e.message == Message::TimeoutNow));
    let actions = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(1),
        },
    ));
    assert!(sends(&actions)
        .iter()
        .any(|e| e.to == NodeId(2) && e.message == Message::TimeoutNow));
}

#[test]
fn read_on_follower_returns_not_leader() {
    let mut n = production_node(1, 3);
    let _ = step_durably(&mut n, append(2, 1, 1, (0, 0), vec![], 0));
    let actions = n.step(Input::Read {
        request_id: RequestId(4),
    });
    assert_eq!(
        replies(&actions),
        vec![(
            RequestId(4),
            Reply::NotLeader {
                leader_hint: Some(NodeId(2))
            }
        )]
    );
}

fn ack_round(from: u64, term: u64, round: u64, match_index: u64) -> Input {
    Input::Receive(envelope(
        from,
        1,
        term,
        Message::AppendEntriesResponse(raft_core::AppendEntriesResponse {
            read_round: round,
            result: AppendResult::Success {
                match_index: LogIndex(match_index),
            },
        }),
    ))
}

#[test]
fn read_waits_for_current_term_commit_then_a_quorum_round_then_apply() {
    let mut n = production_node(1, 3);
    let actions = make_leader(&mut n);
    let read = n.step(Input::Read {
        request_id: RequestId(1),
    });
    assert!(
        replies(&read).is_empty(),
        "no entry of this term committed yet"
    );
    assert!(sends(&read).is_empty());
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    // The no-op commits: the read registers in round 1 and heartbeats go out.
    let commit = n.step(ack_round(2, 1, 0, 1));
    assert_eq!(n.commit_index(), LogIndex(1));
    let heartbeats: Vec<_> = sends(&commit)
        .into_iter()
        .filter(|e| matches!(&e.message, Message::AppendEntries(a) if a.read_round == 1))
        .collect();
    assert_eq!(heartbeats.len(), 2);
    assert!(replies(&commit).is_empty(), "leadership not yet confirmed");
    // An answer to an older round does not confirm it; one to round 1 does.
    let old = n.step(ack_round(3, 1, 0, 1));
    assert!(replies(&old).is_empty());
    let confirmed = n.step(ack_round(3, 1, 1, 1));
    assert_eq!(
        replies(&confirmed),
        vec![(RequestId(1), Reply::ReadReady { index: LogIndex(1) })]
    );
}

#[test]
fn single_voter_read_is_answered_at_once() {
    let mut n = production_node(1, 1);
    let mut all = Vec::new();
    while n.role() == Role::Follower {
        all = n.step(Input::Tick);
    }
    while n.role() != Role::Leader
        || n.applied_index() < n.commit_index()
        || n.commit_index() == LogIndex(0)
    {
        let Some(id) = persist_id(&all) else { break };
        all = n.step(Input::PersistDone { persist_id: id });
    }
    let read = n.step(Input::Read {
        request_id: RequestId(3),
    });
    assert_eq!(
        replies(&read),
        vec![(RequestId(3), Reply::ReadReady { index: LogIndex(1) })]
    );
}

#[test]
fn deposed_leader_fails_pending_reads() {
    let mut n = production_node(1, 3);
    let _ = make_leader(&mut n);
    let _ = n.step(Input::Read {
        request_id: RequestId(1),
    });
    let actions = n.step(append(2, 1, 5, (0, 0), vec![], 0));
    assert_eq!(
        replies(&actions),
        vec![(
            RequestId(1),
            Reply::NotLeader {
                leader_hint: Some(NodeId(2))
            }
        )]
    );
}

#[test]
fn stale_leader_never_serves_a_read_in_a_cluster() {
    let mut c = Cluster::with_config(3, |id, n| {
        let mut config = production_config(id, n);
        config.check_quorum = false;
        config
    });
    let old = c.elect();
    let _ = c.propose(old, "v1");
    c.tick_all(3);
    c.isolate(old);
    let new = loop {
        c.tick_all(1);
        if let Some(l) = c.leader() {
            if l != old {
                break l;
            }
        }
    };
    let _ = c.propose(new, "v2");
    // The old leader still believes it leads (check-quorum is off) but cannot confirm a read.
    assert_eq!(c.nodes[&old].role(), Role::Leader);
    c.step(
        old,
        Input::Read {
            request_id: RequestId(99),
        },
    );
    c.tick_all(20);
    assert!(!c
        .replies
        .iter()
        .any(|(_, r, reply)| *r == RequestId(99) && matches!(reply, Reply::ReadReady { .. })));
}

#[test]
fn pre_vote_for_the_receivers_own_term_is_refused() {
    // A pre-vote asks about the term after the sender's; if that is no newer than ours, the
    // sender is behind and must not be encouraged to campaign.
    let mut n = Node::restore(
        production_config(1, 3),
        raft_core::DurableState {
            hard_state: raft_core::HardState {
                current_term: Term(3),
                voted_for: None,
            },
            snapshot: None,
            entries: vec![],
        },
    )
    .unwrap();
    let actions = n.step(Input::Receive(envelope(
        2,
        1,
        3,
        Message::PreVote(raft_core::RequestVote {
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            leadership_transfer: false,
        }),
    )));
    assert!(matches!(&sends(&actions)[0].message, Message::PreVoteResponse(r) if !r.vote_granted));
}

#[test]
fn pre_vote_refusal_in_the_pre_candidates_own_term_keeps_it_campaigning() {
    let mut n = production_node(1, 3);
    let _ = tick_until_pre_candidate(&mut n);
    let _ = n.step(Input::Receive(envelope(
        2,
        1,
        0,
        Message::PreVoteResponse(raft_core::RequestVoteResponse {
            vote_granted: false,
        }),
    )));
    assert!(
        n.is_pre_candidate(),
        "a refusal from its own term teaches it nothing"
    );
    let _ = n.step(Input::Receive(envelope(
        3,
        1,
        1,
        Message::PreVoteResponse(raft_core::RequestVoteResponse { vote_granted: true }),
    )));
    assert_eq!(n.role(), Role::Candidate);
}

fn lease_node(id: u64, voters: u64) -> Node {
    let mut config = production_config(id, voters);
    config.lease_reads = true;
    Node::new(config).unwrap()
}

/// A leader of three (heartbeats every 2 ticks, elections after 10: an 8-tick lease) whose
/// no-op is committed and whose first heartbeat round, started `ticks_ago` ticks before the
/// end, was acknowledged by n2.
fn leader_with_lease(ticks_ago: u32) -> Node {
    let mut n = lease_node(1, 3);
    let actions = make_leader(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let _ = n.step(ack_round(2, 1, 0, 1));
    assert_eq!(n.commit_index(), LogIndex(1));
    // The heartbeat timeout starts round 1; n2 answers it at once.
    let _ = n.step(Input::Tick);
    let heartbeat = n.step(Input::Tick);
    assert!(sends(&heartbeat)
        .iter()
        .any(|e| matches!(&e.message, Message::AppendEntries(a) if a.read_round == 1)));
    let _ = n.step(ack_round(2, 1, 1, 1));
    for _ in 0..ticks_ago {
        let _ = n.step(Input::Tick);
    }
    n
}

fn read_at_once(n: &mut Node, request: u64) -> bool {
    let actions = n.step(Input::Read {
        request_id: RequestId(request),
    });
    let answered =
        replies(&actions) == vec![(RequestId(request), Reply::ReadReady { index: LogIndex(1) })];
    assert!(
        !answered || sends(&actions).is_empty(),
        "a lease read needs no round"
    );
    answered
}

#[test]
fn lease_read_is_served_without_a_round_while_the_lease_holds() {
    let mut n = leader_with_lease(0);
    assert!(read_at_once(&mut n, 1));
    let mut n = leader_with_lease(7);
    assert!(read_at_once(&mut n, 1), "the last tick of the lease");
}

#[test]
fn lease_read_needs_a_round_once_the_lease_expires() {
    let mut n = leader_with_lease(8);
    assert_eq!(n.role(), Role::Leader);
    let actions = n.step(Input::Read {
        request_id: RequestId(1),
    });
    assert!(replies(&actions).is_empty());
    assert!(
        !sends(&actions).is_empty(),
        "the read falls back to a ReadIndex round"
    );
    let round = sends(&actions)
        .iter()
        .find_map(|e| match &e.message {
            Message::AppendEntries(a) => Some(a.read_round),
            _ => None,
        })
        .unwrap();
    // A fresh acknowledgement confirms the read and renews the lease.
    let round = n.step(ack_round(3, 1, round, 1));
    assert_eq!(
        replies(&round),
        vec![(RequestId(1), Reply::ReadReady { index: LogIndex(1) })]
    );
    assert!(read_at_once(&mut n, 2));
}

#[test]
fn lease_reads_are_off_by_default() {
    // A leader whose read round was just acknowledged by a quorum: with lease reads on, that
    // proves a lease and the next read is answered at once; with the defaults it is not.
    let after_a_confirmed_read = |mut n: Node| {
        let actions = make_leader(&mut n);
        let _ = n.step(Input::PersistDone {
            persist_id: persist_id(&actions).unwrap(),
        });
        let _ = n.step(ack_round(2, 1, 0, 1));
        let read = n.step(Input::Read {
            request_id: RequestId(1),
        });
        assert!(sends(&read)
            .iter()
            .any(|e| matches!(&e.message, Message::AppendEntries(a) if a.read_round == 1)));
        let confirmed = n.step(ack_round(2, 1, 1, 1));
        assert_eq!(
            replies(&confirmed),
            vec![(RequestId(1), Reply::ReadReady { index: LogIndex(1) })]
        );
        n
    };
    assert!(read_at_once(
        &mut after_a_confirmed_read(lease_node(1, 3)),
        2
    ));
    assert!(!read_at_once(
        &mut after_a_confirmed_read(production_node(1, 3)),
        2
    ));
}

#[test]
fn leader_forfeits_its_lease_once_it_sends_timeout_now() {
    let mut n = leader_with_lease(0);
    let _ = n.step(Input::TransferLeader { to: NodeId(2) });
    let timeout_now = n.step(ack_round(2, 1, 1, 1));
    assert!(sends(&timeout_now)
        .iter()
        .any(|e| matches!(e.message, Message::TimeoutNow)));
    assert!(!read_at_once(&mut n, 1));
}

#[test]
fn restarted_node_with_lease_reads_ignores_vote_requests_for_an_election_timeout() {
    // Before the restart it may have acknowledged a leader whose lease is still running.
    let mut n = lease_node(1, 3);
    let actions = step_durably(&mut n, request_vote(3, 1, 2, 0, 0));
    assert!(sends(&actions).is_empty());
    assert_eq!(n.term(), Term(0));
    for _ in 0..10 {
        let _ = n.step(Input::Tick);
    }
    let actions = step_durably(&mut n, request_vote(3, 1, 2, 0, 0));
    assert!(
        matches!(&sends(&actions)[0].message, Message::RequestVoteResponse(r) if r.vote_granted)
    );
    // Without lease reads a fresh node votes at once.
    let mut plain = production_node(1, 3);
    let actions = step_durably(&mut plain, request_vote(3, 1, 2, 0, 0));
    assert!(
        matches!(&sends(&actions)[0].message, Message::RequestVoteResponse(r) if r.vote_granted)
    );
}

#[test]
fn lease_reads_require_check_quorum() {
    let mut config = production_config(1, 3);
    config.lease_reads = true;
    config.check_quorum = false;
    assert_eq!(
        Node::new(config).err(),
        Some(raft_core::ConfigError::LeaseReadsNeedCheckQuorum)
    );
}
