//! Three- and five-node clusters wired together by hand: election, replication, leader change,
//! catch-up of a lagging follower, and determinism.

mod support;

use raft_core::NodeId;
use raft_core::{LogIndex, Reply, Role};
use support::*;

/// Each scenario runs with Figure 2 alone and with the default extensions (pre-vote,
/// check-quorum), each with writes completing at once and completing late, racing the
/// messages (votes, acknowledgements and elections then wait on the disk).
macro_rules! in_every_mode {
    ($($scenario:ident),* $(,)?) => {
        $(mod $scenario {
            #[test]
            fn figure2() {
                super::$scenario(super::Cluster::new);
            }
            #[test]
            fn production() {
                super::$scenario(super::Cluster::production);
            }
            #[test]
            fn figure2_late_persists() {
                super::$scenario(super::Cluster::new_late);
            }
            #[test]
            fn production_late_persists() {
                super::$scenario(super::Cluster::production_late);
            }
        })*
    };
}

in_every_mode!(
    three_nodes_elect_one_leader_and_replicate,
    five_nodes_survive_leader_crash_and_elect_a_new_leader,
    lagging_follower_catches_up_after_partition_heals,
    isolated_leader_is_replaced_and_its_uncommitted_entry_dropped,
    restarted_node_recovers_and_reapplies_committed_log,
    same_seed_gives_the_same_action_sequence,
);

fn three_nodes_elect_one_leader_and_replicate(new_cluster: fn(u64) -> Cluster) {
    let mut c = new_cluster(3);
    let leader = c.elect();
    for i in 0..10 {
        let _ = c.propose(leader, &format!("cmd{i}"));
    }
    c.tick_all(4);
    c.check_safety();
    for id in 1..=3 {
        assert_eq!(c.commands(NodeId(id)).len(), 10, "node {id}");
    }
    let leaders = c
        .nodes
        .values()
        .filter(|n| n.role() == Role::Leader)
        .count();
    assert_eq!(leaders, 1);
    let committed: Vec<_> = c
        .replies
        .iter()
        .filter(|(_, _, r)| matches!(r, Reply::Committed { .. }))
        .collect();
    assert_eq!(committed.len(), 10);
}

fn five_nodes_survive_leader_crash_and_elect_a_new_leader(new_cluster: fn(u64) -> Cluster) {
    let mut c = new_cluster(5);
    let first = c.elect();
    let _ = c.propose(first, "before");
    c.tick_all(4);
    c.crash(first);
    let second = c.elect();
    assert_ne!(first, second);
    assert!(c.nodes[&second].term() > c.nodes[&first].term());
    let _ = c.propose(second, "after");
    c.tick_all(4);
    c.check_safety();
    for (&id, _) in c.nodes.iter().filter(|(id, _)| **id != first) {
        assert_eq!(c.commands(id), vec!["before", "after"], "node {id}");
    }
}

fn lagging_follower_catches_up_after_partition_heals(new_cluster: fn(u64) -> Cluster) {
    let mut c = new_cluster(3);
    let leader = c.elect();
    let lagging = NodeId(if leader.0 == 3 { 2 } else { 3 });
    c.isolate(lagging);
    for i in 0..600 {
        let _ = c.propose(leader, &format!("w{i}"));
    }
    c.tick_all(5);
    assert_eq!(c.commands(lagging).len(), 0);
    c.heal();
    c.tick_all(60);
    c.check_safety();
    assert_eq!(
        c.leader(),
        Some(leader),
        "a healed follower rejoins without an election"
    );
    assert_eq!(c.commands(lagging).len(), 600);
}

fn isolated_leader_is_replaced_and_its_uncommitted_entry_dropped(new_cluster: fn(u64) -> Cluster) {
    let mut c = new_cluster(3);
    let old = c.elect();
    let _ = c.propose(old, "msg1");
    c.tick_all(4);
    c.isolate(old);
    let orphan = c.propose(old, "msg5");
    let new = {
        let mut found = None;
        for _ in 0..200 {
            c.tick_all(1);
            if let Some(l) = c.leader() {
                if l != old {
                    found = Some(l);
                    break;
                }
            }
        }
        found.expect("a new leader")
    };
    let _ = c.propose(new, "msg3");
    c.tick_all(4);
    c.heal();
    c.tick_all(30);
    c.check_safety();
    assert_eq!(c.nodes[&old].role(), Role::Follower);
    for id in 1..=3 {
        assert_eq!(c.commands(NodeId(id)), vec!["msg1", "msg3"]);
    }
    assert!(c
        .replies
        .iter()
        .any(|(_, r, reply)| *r == orphan && matches!(reply, Reply::Dropped { .. })));
}

fn restarted_node_recovers_and_reapplies_committed_log(new_cluster: fn(u64) -> Cluster) {
    let mut c = new_cluster(3);
    let leader = c.elect();
    for i in 0..5 {
        let _ = c.propose(leader, &format!("v{i}"));
    }
    c.tick_all(4);
    let follower = NodeId(if leader.0 == 1 { 2 } else { 1 });
    c.crash(follower);
    let _ = c.propose(leader, "while-down");
    c.tick_all(4);
    c.restart(follower);
    c.tick_all(10);
    c.check_safety();
    assert_eq!(c.commands(follower).len(), 6);
    assert!(c.nodes[&follower].commit_index() >= LogIndex(7));
}

fn same_seed_gives_the_same_action_sequence(new_cluster: fn(u64) -> Cluster) {
    let run = || {
        let mut c = new_cluster(5);
        let leader = c.elect();
        for i in 0..20 {
            let _ = c.propose(leader, &format!("x{i}"));
        }
        c.crash(leader);
        let _ = c.elect();
        c.tick_all(10);
        c.trace.clone()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.len() > 1000);
}
