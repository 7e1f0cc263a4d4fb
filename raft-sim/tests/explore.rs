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
    // Half the seeds start with 3 to 5 voters and add, promote and remove servers (a change
    // is asked of the leader, and the fault profiles leave fewer moments with one).
    assert!(
        summary.membership_changes > 50,
        "membership changes committed: {summary:?}"
    );
}

/// Regression: a deposed leader whose copy of a pending proposal is overwritten must not answer
/// `Dropped`, because the same entry (same index and term) may survive on other nodes and a
/// later leader may commit it. Seed 9500: n2, leader in t7, accepts r139 at i120; n2 steps
/// down, and in t16 n5 overwrites n2's suffix; later i120 in t7 commits. Only a different entry
/// committed at the index proves a proposal dead. Seeds 2833 and 9186 failed the same way
/// (5 nodes, 10 s of faults).
#[test]
fn seed_9500_dropped_write_later_committed() {
    // The seeds' schedules as they were found: classic faults, no fault profile.
    let classic = ExploreConfig {
        swarm: false,
        ..ExploreConfig::new(5)
    };
    for seed in [9500, 2833, 9186] {
        let report = run_seed(seed, &classic, None);
        assert_eq!(report.failure, None, "seed {seed}");
    }
}

/// Each seed passes with every fault family, and with the schedule it had when it was found
/// (before profiles could narrow the replication window).
fn passes(seeds: &[(u64, u64)]) {
    for &(seed, nodes) in seeds {
        for narrow_windows in [true, false] {
            let config = ExploreConfig {
                narrow_windows,
                ..ExploreConfig::new(nodes)
            };
            let report = run_seed(seed, &config, None);
            assert_eq!(
                report.failure, None,
                "seed {seed}, {nodes} nodes, narrow windows {narrow_windows}"
            );
        }
    }
}

/// Regression: a follower answers a request of an older term with `StaleTerm` in its own term,
/// echoing that request's read round; a leader that restarted since reuses round numbers, and
/// counting the echo confirmed reads no quorum had confirmed (`read_covers_commit`). Seed 78478
/// of 3 nodes fails that way without the fix in `on_append_entries_response`.
#[test]
fn seed_78478_stale_term_answer_confirms_no_read() {
    passes(&[(78478, 3)]);
}

/// Regression: a candidate whose disk is slower than its election timeout never has its vote
/// durable in time to win (contract rule 4); campaigning again anyway only raised the term and
/// deposed whichever leader the others elected, and the cluster stayed leaderless
/// (`liveness_commit`). Now it waits for the write. Seeds 94134 of 3 nodes (a 200-600 ms disk,
/// 7 ms ticks) and 30819 of 5 (a stalled disk) fail without the wait.
#[test]
fn seeds_94134_and_30819_slow_disk_candidate_waits_for_its_vote() {
    passes(&[(94134, 3), (30819, 5)]);
}

/// Regression: a follower held the leader's probe (its `prev_log_index` beyond the log, in a
/// stream the follower had matched) and reported the gap before it; the probing leader
/// ignored gap reports and resent the same probe at every heartbeat, so the follower never
/// caught up (`liveness_catch_up`). A probing leader now probes from where the reported log
/// ends. Found by `explore --seeds 0..20000 --nodes 5`: 16 seeds, among them 14684 (duplicated
/// stale messages), 3781 (partial partitions) and 17841 (a slow disk and loss bursts).
#[test]
fn seeds_14684_3781_and_17841_a_held_probe_is_answered_by_its_gap() {
    passes(&[(14684, 5), (3781, 5), (17841, 5)]);
}

/// Regression: a follower reported a gap once by its ticks and then no more, to spare the
/// leader duplicate resends; when that report was lost, a probing leader resent its held
/// probe at every heartbeat and never heard of the gap (`liveness_catch_up`). A request
/// held already and sent again now reports the gap at once. Found by `explore --seeds
/// 0..20000`: seed 14665 of 5 nodes and 15230 of 3, among four.
#[test]
fn seeds_14665_and_15230_a_resent_held_request_reports_its_gap() {
    passes(&[(14665, 5), (15230, 3)]);
}

/// Regression of the simulator's model: a lease seed's paused leader gets the ticks it missed
/// when it resumes. With its clock stood still it served reads from an expired lease
/// (`read_covers_commit`): seeds 4584 of 3 nodes and 18487 of 5.
#[test]
fn seeds_4584_and_18487_paused_lease_holder_sees_the_time_that_passed() {
    passes(&[(4584, 3), (18487, 5)]);
}

/// Regression of the liveness phase: in plain Raft a removed server that never learned of its
/// removal keeps deposing leaders through members that have not learned of it either, so it is
/// shut down once its removal commits. Seeds 2042 and 3624 of 5 nodes never converge otherwise
/// (`liveness_catch_up`).
#[test]
fn seeds_2042_and_3624_removed_servers_are_shut_down_in_plain_raft() {
    passes(&[(2042, 5), (3624, 5)]);
}

/// Regression: a voter removed by an uncommitted entry campaigns until it commits, and the new
/// membership's voters, whose logs hold the same removal, ignored its vote requests as coming
/// from outside their membership. Each term it took the old voters' votes and never won, and
/// the new voters never heard its terms: no leader for the whole liveness phase
/// (`liveness_commit`). Seed 30202 of 5 nodes fails that way when only a strictly newer log
/// is heard from outside the membership.
#[test]
fn seed_30202_removed_voter_is_heard_by_the_new_membership() {
    passes(&[(30202, 5)]);
}

/// Regression: the follow-up of seed 30202. The voter that an uncommitted entry removes has the
/// shorter log this time: a leader proposed the removal and was cut off, the rest committed
/// without it, and a wiped voter's vote no longer counts. The removed voter cannot win without
/// the old leader, whose log is ahead; the old leader ignored its vote requests (from outside
/// its membership, with a log behind), so it never learned their terms and campaigned each
/// time for a term the last voter had already voted in (`liveness_commit`, seed 51284 of 5
/// nodes, found by `explore --seeds 0..100000 --nodes 5`).
#[test]
fn seed_51284_a_voter_removed_only_by_an_uncommitted_entry_is_heard() {
    passes(&[(51284, 5)]);
}

/// Regression: a candidate sent vote requests to its voters only. A server it still listed as
/// a returning learner was a voter again in its own, newer log, and the only one that could
/// win; it never heard the candidate's terms and campaigned each time for a term the
/// candidate had already voted in (`liveness_commit`, seed 102895 of 3 nodes, found by
/// `explore --seeds 100000..200000 --nodes 3`). Learners now hear the term too.
#[test]
fn seed_102895_a_candidates_learners_hear_its_term() {
    passes(&[(102895, 3)]);
}

/// Regression of the checker: a leader whose log holds only its own removal, the membership
/// before it being in its snapshot, was judged against its boot configuration
/// (`only_voters_lead`, a false alarm). Seeds 22051 and 47358 of 5 nodes.
#[test]
fn seeds_22051_and_47358_snapshot_membership_is_the_one_before_a_removal() {
    passes(&[(22051, 5), (47358, 5)]);
}

/// Regression: a leader cut off since before a voter's disk was replaced counted the new,
/// empty incarnation's acknowledgements towards its commits; with the voter that committed
/// another entry at the same index gone, it committed a stale entry of its own
/// (`state_machine_safety`). Seed 13799 of 3 nodes, with wipes.
#[test]
fn seed_13799_replaced_incarnation_acknowledges_nothing() {
    passes(&[(13799, 3)]);
}

/// Regression: a voter removed by an uncommitted entry that entries recording incarnations
/// follow is the same removed voter: both the core (whether it may still campaign) and the
/// checker (`only_voters_lead`) looked only at the membership before the latest entry, which
/// already left it out. Seeds 2454 and 5525 of 5 nodes.
#[test]
fn seeds_2454_and_5525_removal_followed_by_records_still_lets_the_removed_voter_campaign() {
    passes(&[(2454, 5), (5525, 5)]);
}

/// Regression of the fault model: a removal asked of a paused leader waited in its inbox while
/// two voters were wiped, then took effect with half the remaining voters lost, beyond what any
/// cluster survives (`liveness_commit`). Wipes now count the memberships that queued changes
/// would make. Seed 39130 of 5 nodes.
#[test]
fn seed_39130_no_wipe_beyond_a_minority_of_a_queued_membership() {
    passes(&[(39130, 5)]);
}
