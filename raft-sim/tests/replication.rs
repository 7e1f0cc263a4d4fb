//! Replication over a reordering network stays cheap: a follower holds an AppendEntries that
//! overtook the ones before it instead of rejecting it, so the leader sends each entry once.
//! Counts on deterministic runs (`raft-sim replication` prints the same figures), not timings.

use raft_sim::replication::{run, ReplicationConfig, ReplicationReport};

fn measure(latency_ms_min: u64, latency_ms_max: u64, loss: f64) -> ReplicationReport {
    let config = ReplicationConfig {
        proposals: 2_000,
        loss,
        ..ReplicationConfig::new(1, 5, latency_ms_min, latency_ms_max)
    };
    run(&config).unwrap_or_else(|error| panic!("{config:?}: {error}"))
}

#[test]
fn a_reordering_network_costs_at_most_a_fifth_more_entries_than_a_fixed_latency() {
    let fixed = measure(2, 2, 0.0);
    assert_eq!(fixed.entries_sent, 2_000 * 4, "{fixed}");
    assert_eq!(fixed.rejects, 0, "{fixed}");
    for (min, max) in [(1, 5), (1, 20)] {
        let reordered = measure(min, max, 0.0);
        let ratio = reordered.entries_per_entry_per_follower();
        assert!(ratio <= 1.2, "{reordered}");
    }
}

#[test]
fn a_lossy_reordering_network_resends_little_more_than_it_lost() {
    // One message in a thousand lost, in both directions: about 1 % more entries would do.
    let lossy = measure(1, 5, 0.001);
    assert!(lossy.entries_per_entry_per_follower() <= 1.2, "{lossy}");
}

#[test]
fn the_same_seed_gives_the_same_report() {
    assert_eq!(measure(1, 5, 0.0), measure(1, 5, 0.0));
}
