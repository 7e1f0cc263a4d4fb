//! The simulator under membership changes: nodes outside the initial cluster, change requests,
//! and the checks that count quorums over the committed membership rather than every node.

use std::collections::BTreeSet;

use raft_core::{MembershipChange, NodeId, Reply, RequestId};
use raft_sim::sim::{Sim, SimConfig};

fn sim(nodes: u64, voters: u64) -> Sim {
    let mut config = SimConfig::new(7, nodes);
    config.voters = voters;
    config.clients.clients = 0;
    let mut sim = Sim::new(config);
    for id in sim.node_ids() {
        sim.start(id).expect("a fresh node starts");
    }
    sim
}

fn run(sim: &mut Sim, ms: u64) {
    let until = sim.now_ms() + ms;
    sim.run_until_time(until);
    assert_eq!(sim.failure(), None);
}

fn committed(sim: &Sim, request: RequestId) -> bool {
    matches!(
        sim.change(request).and_then(|c| c.reply.as_ref()),
        Some(Reply::Committed { .. })
    )
}

fn set(ids: &[u64]) -> BTreeSet<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

#[test]
fn nodes_outside_the_initial_cluster_wait_and_follow_once_added() {
    let mut sim = sim(3, 1);
    run(&mut sim, 2_000);
    assert_eq!(sim.current_leader(), Some(NodeId(1)));
    for id in [NodeId(2), NodeId(3)] {
        let node = sim.node(id).expect("up");
        assert_eq!(node.status().stats.elections_started, 0, "{id} waits");
        assert!(node.membership().voters.is_empty());
    }
    // Only members are expected to follow: n1 alone has converged.
    assert!(sim.converged());
    let add = sim
        .change_membership(NodeId(1), MembershipChange::AddLearner(NodeId(2)))
        .expect("n1 is up");
    assert!(matches!(
        sim.change(add).and_then(|c| c.reply.as_ref()),
        Some(Reply::Accepted { .. })
    ));
    run(&mut sim, 300);
    assert!(committed(&sim, add));
    assert_eq!(sim.committed_membership().1.learners, set(&[2]));
    assert!(sim.converged(), "the learner caught up");
    let promote = sim
        .change_membership(NodeId(1), MembershipChange::PromoteLearner(NodeId(2)))
        .expect("n1 is up");
    run(&mut sim, 300);
    assert!(committed(&sim, promote));
    assert_eq!(sim.committed_membership().1.voters, set(&[1, 2]));
    assert_eq!(sim.membership_changes_committed(), 2);
}

#[test]
fn a_change_sent_to_a_follower_is_refused_with_the_leader_hint() {
    let mut sim = sim(3, 3);
    run(&mut sim, 2_000);
    let leader = sim.current_leader().expect("a leader");
    let follower = sim
        .node_ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("three nodes");
    let request = sim
        .change_membership(follower, MembershipChange::Remove(leader))
        .expect("up");
    assert_eq!(
        sim.change(request).and_then(|c| c.reply.clone()),
        Some(Reply::NotLeader {
            leader_hint: Some(leader)
        })
    );
}

#[test]
fn applied_on_majority_counts_the_committed_voters_only() {
    let mut sim = sim(3, 1);
    run(&mut sim, 2_000);
    sim.propose(NodeId(1), "x").expect("n1 is up");
    run(&mut sim, 100);
    // n1 alone is the cluster: one of one voters applied the write.
    sim.check_history();
    assert_eq!(sim.failure(), None);
    let checker = sim.checker();
    assert!(checker.check_acked_applied_on_majority(&set(&[1])).is_ok());
    let error = checker
        .check_acked_applied_on_majority(&set(&[1, 2, 3]))
        .expect_err("n2 and n3 never applied it");
    assert_eq!(error.invariant, "acknowledged_write_applied_on_majority");
}

#[test]
fn a_removed_server_campaigning_alone_does_not_hide_the_leader() {
    let mut config = SimConfig::new(11, 3);
    config.clients.clients = 0;
    config.raft.pre_vote = false;
    config.raft.check_quorum = false;
    let mut sim = Sim::new(config);
    for id in sim.node_ids() {
        sim.start(id).expect("a fresh node starts");
    }
    run(&mut sim, 2_000);
    let leader = sim.current_leader().expect("a leader");
    let removed = sim
        .node_ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("three nodes");
    // The removed server never hears of its removal, and keeps campaigning.
    sim.network.isolate(removed);
    let request = sim
        .change_membership(leader, MembershipChange::Remove(removed))
        .expect("up");
    run(&mut sim, 3_000);
    assert!(committed(&sim, request));
    let stale = sim.node(removed).expect("up");
    let leader_term = sim.node(leader).expect("up").term();
    assert!(stale.term() > leader_term, "it campaigned alone");
    assert!(stale.membership().voters.contains(&removed));
    // Back on the network, the members ignore its vote requests: the leader stays.
    sim.network.rejoin(removed);
    run(&mut sim, 2_000);
    assert_eq!(sim.current_leader(), Some(leader));
    assert!(
        sim.converged(),
        "the removed server is not expected to follow"
    );
}
