//! A few hundred random seeds of 3- and 5-node clusters under faults: no safety violation and
//! no liveness failure. Thousands more run from the CLI (`raft-sim explore`).

use raft_sim::explore::{run_seed, ExploreConfig, Summary};

fn explore(nodes: u64, seeds: std::ops::Range<u64>, fault_ms: u64) -> Summary {
    let config = ExploreConfig {
        fault_ms,
        ..ExploreConfig::new(nodes)
    };
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    for seed in seeds {
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
    assert_eq!(summary.seeds, 200);
    assert!(summary.events > 100_000, "seeds did real work: {summary:?}");
}
