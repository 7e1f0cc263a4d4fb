//! Scenarios that reproduce known raft-core bugs. They are ignored so the suite stays green
//! while the core is being fixed; run them with
//! `cargo test -p raft-sim --test core_bugs -- --ignored`, and once one passes, move its file
//! to `scenarios/` so it becomes a snapshot test.

use raft_sim::scenario::run_script;

fn run(name: &str) {
    let path = format!("{}/scenarios/core-bugs/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("scenario files are readable");
    let outcome = run_script(&text);
    assert_eq!(outcome.error, None, "{}", outcome.transcript);
}

#[test]
#[ignore = "raft-core bug: a refused higher-term RequestVote restarts the election timer"]
fn denied_vote_resets_timer() {
    run("denied-vote-resets-timer.scn");
}
