//! The bug catalogue's quick entries (`raft-sim catalogue` runs the whole catalogue, which
//! takes minutes): a known bug switched on in every node must make the scenario written for it,
//! or a handful of explored seeds, fail; with the correct code they pass.

use raft_core::bugs::Bug;
use raft_sim::explore::{run_seed, ExploreConfig};
use raft_sim::scenario::{run_script, run_script_with, Outcome, RunOptions};

fn scenario(name: &str) -> String {
    let path = format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run_with_bug(text: &str, bug: Bug) -> Outcome {
    run_script_with(
        text,
        RunOptions {
            bugs: vec![bug],
            ..RunOptions::default()
        },
    )
}

/// Issue 12's trace, and its variant through a leadership transfer: with the candidate leading
/// only once its own vote is durable they run to the end; without, the candidate leads the
/// same term twice.
#[test]
fn leading_before_the_own_vote_is_durable_is_caught_by_its_scenarios() {
    for name in [
        "leader-before-durable-vote.scn",
        "leader-before-durable-vote-transfer.scn",
    ] {
        let text = scenario(name);
        assert_eq!(
            run_script(&text).error,
            None,
            "{name} with the correct core"
        );
        let buggy = run_with_bug(&text, Bug::LeadBeforeDurableVote);
        let error = buggy.error.unwrap_or_default();
        assert!(
            error.contains("invariant election_safety_across_restarts violated"),
            "{name}: {error}\n{}",
            buggy.transcript
        );
    }
}

/// Votes for candidates with a less up-to-date log are found within a few explored seeds, by
/// the safety checkers (not as a liveness failure).
#[test]
fn voting_for_a_stale_log_is_caught_by_exploration() {
    let buggy = ExploreConfig {
        fault_ms: 5_000,
        bugs: vec![Bug::VoteForStaleLog],
        ..ExploreConfig::new(3)
    };
    let failures: Vec<&'static str> = (0..40)
        .filter_map(|seed| run_seed(seed, &buggy, None).failure)
        .map(|failure| failure.invariant)
        .collect();
    assert!(!failures.is_empty(), "no seed caught the bug");
    assert!(
        failures
            .iter()
            .all(|invariant| !invariant.starts_with("liveness")),
        "{failures:?}"
    );
}
