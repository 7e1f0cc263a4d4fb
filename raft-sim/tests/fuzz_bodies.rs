//! The `step_sequence` fuzz body on stable: over the checked-in corpus and generated inputs.

use std::collections::BTreeSet;

use proptest::prelude::*;
use raft_core::NodeId;

#[test]
fn step_sequence_corpus() {
    let dir = format!(
        "{}/../fuzz/corpus/step_sequence",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    assert!(!files.is_empty(), "the corpus is checked in");
    for path in files {
        let data = std::fs::read(&path).expect("corpus file readable");
        raft_sim::fuzzing::step_sequence(&data);
    }
}

/// The body reaches membership changes: an input that adds spare n4 as a learner, promotes it
/// and removes n1, each through the leader, ends with exactly those three changes committed.
#[test]
fn step_sequence_changes_membership() {
    let header = [
        2, // 5 nodes
        2, // 2 spares: n1..n3 are the initial voters
        0, 0, // seed
        0, 0, 0, // 1 ms latency, no loss, no duplication
        1, 1, // pre-vote, check-quorum
        0, 0, // 1-byte snapshot chunks, no reads
        0, 0, 0, 0, 0, // 5 ms ticks
        0, // no client workload
    ];
    let run = [0, 0, 0, 49]; // 500 ms
    let add_n4 = [3, 0, 12, 0];
    let promote_n4 = [3, 0, 14, 0];
    let remove_n1 = [0, 0, 15, 0];
    let data: Vec<u8> = [
        &header[..],
        &run,
        &add_n4,
        &run,
        &promote_n4,
        &run,
        &remove_n1,
        &run,
        &run,
    ]
    .concat();
    let sim = raft_sim::fuzzing::step_sequence(&data);
    assert_eq!(sim.membership_changes_committed(), 3);
    let voters: BTreeSet<NodeId> = [2, 3, 4].into_iter().map(NodeId).collect();
    assert_eq!(sim.committed_membership().1.voters, voters);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn step_sequence_generated(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        raft_sim::fuzzing::step_sequence(&data);
    }
}
