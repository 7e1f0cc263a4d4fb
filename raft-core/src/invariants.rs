//! Invariants of a single node, asserted at the end of every step.

use crate::node::Node;
use crate::types::Role;

pub(crate) fn check_node(node: &Node) {
    let last_index = node.log.last_index();
    assert!(
        node.commit_index <= last_index,
        "commit_within_log: commit {} > last {last_index}",
        node.commit_index
    );
    assert!(
        node.applied_index <= node.commit_index,
        "applied_within_commit: applied {} > commit {}",
        node.applied_index,
        node.commit_index
    );
    assert!(
        node.persist.durable_index() <= last_index,
        "durable_within_log"
    );
    assert!(
        node.applied_index >= node.log.snapshot_index(),
        "snapshot_is_applied: applied {} < snapshot {}",
        node.applied_index,
        node.log.snapshot_index()
    );
    assert!(
        node.log.last_term() <= node.current_term,
        "log_term_within_current_term"
    );
    // The bug that keeps them across terms is left to the simulator's checkers to catch.
    if !node.early_appends.held.is_empty()
        && !crate::bugs::reintroduced!(node, EarlyAppendsOutliveTheirTerm)
    {
        let stream = node.leader_id.map(|leader| (node.current_term, leader));
        assert!(
            node.role == Role::Follower && stream.is_some() && node.early_appends.stream == stream,
            "early_appends_from_the_current_leader"
        );
    }
    match node.role {
        Role::Leader => {
            assert_eq!(node.leader_id, Some(node.config.id), "leader_knows_itself");
            assert_eq!(
                node.voted_for,
                Some(node.config.id),
                "leader_voted_for_itself"
            );
        }
        Role::Candidate => {
            assert_eq!(
                node.voted_for,
                Some(node.config.id),
                "candidate_voted_for_itself"
            );
            assert!(node.progress.is_empty(), "only_leaders_track_progress");
        }
        Role::Follower => assert!(node.progress.is_empty(), "only_leaders_track_progress"),
    }
}
