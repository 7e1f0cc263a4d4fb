//! Membership changes: learners, promotion, removal, one change at a time (Raft thesis §4).

mod support;

use raft_core::{ChangeRejection, Input, LogIndex, MembershipChange, NodeId, Reply, Role};
use support::*;

fn committed(reply: Option<&Reply>) -> bool {
    matches!(reply, Some(Reply::Committed { .. }))
}

/// Adds `id` as a learner, lets it catch up, and promotes it.
fn grow(c: &mut Cluster, id: NodeId) {
    c.add_node(id);
    let leader = c.leader().expect("a leader");
    let add = c.change(leader, MembershipChange::AddLearner(id));
    c.tick_all(6);
    assert!(committed(c.reply_to(add)), "{:?}", c.reply_to(add));
    let promote = c.change(leader, MembershipChange::PromoteLearner(id));
    c.tick_all(6);
    assert!(committed(c.reply_to(promote)), "{:?}", c.reply_to(promote));
}

#[test]
fn new_node_joins_as_learner_catches_up_and_is_promoted() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        for i in 0..20 {
            let _ = c.propose(leader, &format!("w{i}"));
        }
        c.add_node(NodeId(4));
        let add = c.change(leader, MembershipChange::AddLearner(NodeId(4)));
        c.tick_all(6);
        assert!(committed(c.reply_to(add)));
        assert!(c.nodes[&NodeId(4)]
            .membership()
            .learners
            .contains(&NodeId(4)));
        assert_eq!(c.commands(NodeId(4)).len(), 20);
        let promote = c.change(leader, MembershipChange::PromoteLearner(NodeId(4)));
        c.tick_all(6);
        assert!(committed(c.reply_to(promote)));
        for node in c.nodes.values() {
            assert_eq!(node.membership().voters.len(), 4, "node {}", node.id());
        }
        c.check_safety();
    }
}

#[test]
fn learner_never_counts_toward_quorum_nor_campaigns() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        c.add_node(NodeId(4));
        let _ = c.change(leader, MembershipChange::AddLearner(NodeId(4)));
        c.tick_all(6);
        let voters: Vec<NodeId> = (1..=3).map(NodeId).filter(|&n| n != leader).collect();
        c.isolate(voters[0]);
        c.isolate(voters[1]);
        let before = c.nodes[&leader].commit_index();
        let _ = c.propose(leader, "needs a voter");
        c.tick_all(3);
        assert_eq!(
            c.nodes[&leader].commit_index(),
            before,
            "leader + learner is no majority"
        );
        c.isolate(leader);
        c.tick_all(200);
        assert_ne!(c.nodes[&NodeId(4)].role(), Role::Candidate);
        assert_ne!(c.nodes[&NodeId(4)].role(), Role::Leader);
        assert_eq!(c.nodes[&NodeId(4)].status().stats.elections_started, 0);
    }
}

#[test]
fn one_membership_change_at_a_time() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        c.add_node(NodeId(4));
        c.add_node(NodeId(5));
        let first_leader = leader;
        // Cut the followers so the first change cannot commit.
        let followers: Vec<NodeId> = (1..=3).map(NodeId).filter(|&n| n != leader).collect();
        for &f in &followers {
            c.isolate(f);
        }
        let first = c.change(first_leader, MembershipChange::AddLearner(NodeId(4)));
        assert!(matches!(c.reply_to(first), Some(Reply::Accepted { .. })));
        let second = c.change(first_leader, MembershipChange::AddLearner(NodeId(5)));
        assert_eq!(
            c.reply_to(second),
            Some(&Reply::ChangeRejected {
                reason: ChangeRejection::ChangeInProgress
            })
        );
    }
}

#[test]
fn change_waits_until_leader_commits_an_entry_of_its_term() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n); // its no-op is not committed yet
    let actions = n.step(Input::ChangeMembership {
        request_id: raft_core::RequestId(1),
        change: MembershipChange::AddLearner(NodeId(4)),
    });
    assert_eq!(
        replies(&actions)[0].1,
        Reply::ChangeRejected {
            reason: ChangeRejection::ChangeInProgress
        }
    );
}

#[test]
fn promote_requires_a_caught_up_learner() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        for i in 0..10 {
            let _ = c.propose(leader, &format!("w{i}"));
        }
        c.add_node(NodeId(4));
        c.isolate(NodeId(4));
        let add = c.change(leader, MembershipChange::AddLearner(NodeId(4)));
        c.tick_all(4);
        assert!(committed(c.reply_to(add)));
        let promote = c.change(leader, MembershipChange::PromoteLearner(NodeId(4)));
        assert_eq!(
            c.reply_to(promote),
            Some(&Reply::ChangeRejected {
                reason: ChangeRejection::NotCaughtUp
            })
        );
    }
}

#[test]
fn removed_leader_steps_down_after_committing_its_removal() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        let remove = c.change(leader, MembershipChange::Remove(leader));
        c.tick_all(3);
        assert!(committed(c.reply_to(remove)));
        assert_eq!(c.nodes[&leader].role(), Role::Follower);
        c.crash(leader);
        let next = c.elect();
        assert_ne!(next, leader);
        let _ = c.propose(next, "two voters now");
        c.tick_all(4);
        assert_eq!(c.nodes[&next].membership().voters.len(), 2);
        c.check_safety();
    }
}

#[test]
fn removing_the_last_voter_is_rejected() {
    for mut c in [
        Cluster::production(1),
        Cluster::production(1).with_late_persists(7),
    ] {
        let leader = c.elect();
        c.tick_all(2);
        let remove = c.change(leader, MembershipChange::Remove(leader));
        assert_eq!(
            c.reply_to(remove),
            Some(&Reply::ChangeRejected {
                reason: ChangeRejection::LastVoter
            })
        );
    }
}

#[test]
fn membership_takes_effect_on_append_and_reverts_on_truncation() {
    let mut n = node(1, 3);
    let mut members = raft_core::Membership::new((1..=3).map(NodeId));
    members.learners.insert(NodeId(4));
    let entry = raft_core::Entry {
        index: LogIndex(1),
        term: Term(1),
        payload: raft_core::EntryPayload::Membership(members.clone()),
    };
    let _ = step_durably(&mut n, append(2, 1, 1, (0, 0), vec![entry], 0));
    assert_eq!(n.membership(), &members, "in effect before it commits");
    // A leader of term 2 overwrites it.
    let _ = step_durably(&mut n, append(3, 1, 2, (0, 0), vec![noop(1, 2)], 0));
    assert_eq!(
        n.membership(),
        &raft_core::Membership::new((1..=3).map(NodeId))
    );
}

use raft_core::Term;

#[test]
fn grow_three_to_five_and_shrink_back_while_writing_through_a_partition() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        let mut written = 0;
        let mut write = |c: &mut Cluster, n: usize| {
            for _ in 0..n {
                if let Some(l) = c.leader() {
                    let _ = c.propose(l, &format!("w{written}"));
                    written += 1;
                }
            }
        };
        write(&mut c, 10);
        grow(&mut c, NodeId(4));
        write(&mut c, 10);
        // A partition hits in the middle of the next change: the leader keeps a majority.
        let minority = (1..=4)
            .map(NodeId)
            .find(|&n| n != leader)
            .expect("a follower");
        c.isolate(minority);
        grow(&mut c, NodeId(5));
        write(&mut c, 10);
        c.heal();
        c.tick_all(10);
        for node in c.nodes.values() {
            assert_eq!(node.membership().voters.len(), 5, "node {}", node.id());
        }
        for id in [NodeId(4), NodeId(5)] {
            let l = c.leader().expect("leader");
            let remove = c.change(l, MembershipChange::Remove(id));
            c.tick_all(6);
            assert!(committed(c.reply_to(remove)), "{:?}", c.reply_to(remove));
        }
        write(&mut c, 10);
        c.tick_all(10);
        c.check_safety();
        let l = c.leader().expect("leader");
        assert_eq!(c.nodes[&l].membership().voters.len(), 3);
        assert_eq!(c.commands(l).len(), 40);
    }
}

#[test]
fn learner_added_after_compaction_catches_up_from_a_snapshot_with_the_membership() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        for i in 0..30 {
            let _ = c.propose(leader, &format!("w{i}"));
        }
        c.tick_all(3);
        for id in (1..=3).map(NodeId) {
            c.compact(id);
        }
        grow(&mut c, NodeId(4));
        assert_eq!(c.commands(NodeId(4)).len(), 30);
        assert_eq!(c.nodes[&NodeId(4)].membership().voters.len(), 4);
        c.check_safety();
    }
}

#[test]
fn timeout_now_moves_neither_a_leader_nor_a_learner() {
    let mut leader = node(1, 3);
    let _ = make_leader(&mut leader);
    let _ = leader.step(Input::Receive(envelope(
        2,
        1,
        1,
        raft_core::Message::TimeoutNow,
    )));
    assert_eq!(leader.role(), Role::Leader);

    // A node outside the voters (configured to wait to be added) never campaigns, even when
    // the leader it follows asks it to.
    let mut config = config(4, 3);
    config.id = NodeId(4);
    config.voters.clear();
    let mut learner = raft_core::Node::new(config).unwrap();
    let _ = step_durably(&mut learner, append(1, 4, 1, (0, 0), vec![], 0));
    let _ = learner.step(Input::Receive(envelope(
        1,
        4,
        1,
        raft_core::Message::TimeoutNow,
    )));
    assert_eq!(learner.role(), Role::Follower);
    assert_eq!(learner.term(), Term(1));
}

/// A log of term 1 whose first entry makes n1, n2, n3 voters and whose second, not yet
/// committed, removes n1.
fn n1_removed_by_an_uncommitted_entry() -> raft_core::DurableState {
    let membership_entry = |index: u64, ids: &[u64]| raft_core::Entry {
        index: raft_core::LogIndex(index),
        term: Term(1),
        payload: raft_core::EntryPayload::Membership(raft_core::Membership::new(
            ids.iter().copied().map(NodeId),
        )),
    };
    raft_core::DurableState {
        hard_state: raft_core::HardState {
            current_term: Term(1),
            voted_for: None,
        },
        snapshot: None,
        entries: vec![
            membership_entry(1, &[1, 2, 3]),
            membership_entry(2, &[2, 3]),
        ],
    }
}

#[test]
fn voter_removed_by_an_uncommitted_entry_still_campaigns() {
    // Raft thesis §4.2.2: a server not in its latest membership still starts elections while
    // the entry that removed it is uncommitted, as it may still be needed.
    let durable = n1_removed_by_an_uncommitted_entry();
    let mut removed = raft_core::Node::restore(config(1, 3), durable.clone()).unwrap();
    assert!(!removed.membership().is_voter(NodeId(1)));
    let _ = tick_until_candidate(&mut removed);
    assert_eq!(removed.term(), Term(2));
    // Once the removal is committed, it no longer campaigns.
    let mut gone = raft_core::Node::restore(config(1, 3), durable).unwrap();
    let _ = step_durably(&mut gone, append(2, 1, 1, (2, 1), vec![], 2));
    assert_eq!(gone.commit_index(), raft_core::LogIndex(2));
    for _ in 0..200 {
        let _ = gone.step(Input::Tick);
    }
    assert_eq!(gone.status().stats.elections_started, 0);
}

#[test]
fn voter_removed_by_an_uncommitted_entry_can_win_the_new_memberships_votes() {
    // Raft thesis §4.2.2 and §4.1: the removed voter still campaigns while its removal is
    // uncommitted, so the new membership's voters, whose logs hold the same removal, must
    // answer it; ignored, it would take the old voters' votes every term and never win.
    let durable = n1_removed_by_an_uncommitted_entry();
    let mut voter = raft_core::Node::restore(config(3, 3), durable).unwrap();
    assert!(!voter.membership().contains(NodeId(1)));
    let actions = step_durably(&mut voter, request_vote(1, 3, 2, 2, 1));
    assert!(sends(&actions).iter().any(|e| e.to == NodeId(1)
        && matches!(&e.message, raft_core::Message::RequestVoteResponse(r) if r.vote_granted)));
    assert_eq!(voter.voted_for(), Some(NodeId(1)));
}
