//! The model checker over the real core: a small bound is clean and reaches a committed
//! command, a reintroduced bug is found, and counterexamples replay and open in the viewer.

use std::sync::Arc;

use raft_core::bugs::Bug;
use raft_sim::model::check::{self, CheckOptions, Strategy};
use raft_sim::model::trace::{render_json, render_text, replay};
use raft_sim::model::{ModelConfig, Mutation, RaftModel};
use raft_sim::{trace_json, viz};

/// Tight budgets: one election term, no duplicates or drops.
fn tight(depth: u32) -> ModelConfig {
    let mut config = ModelConfig::new(3);
    config.depth = depth;
    config.max_term = 1;
    config.max_duplicates = 0;
    config.drops = false;
    config
}

fn with_bug(mut config: ModelConfig, bug: Bug) -> ModelConfig {
    config.mutation = Some(Mutation {
        name: bug.name().to_owned(),
        apply: Arc::new(move |node| node.reintroduce(bug)),
    });
    config
}

#[test]
fn a_small_bound_is_clean_and_every_fault_is_explored() {
    // The default model (drops, a duplicate, a crash, two proposals, terms up to 3) to 8
    // actions, breadth first: every state within the bound.
    let mut config = ModelConfig::new(3);
    config.depth = 8;
    let report = check::run(RaftModel::new(config), &CheckOptions::new(Strategy::Bfs));
    assert_eq!(report.stopped_by, None);
    assert_eq!(report.violations().count(), 0, "{:?}", report.discoveries);
    assert_eq!(report.depth, 8);
    assert!(report.unique_states > 10_000, "{}", report.unique_states);
}

#[test]
fn a_command_commits_within_a_small_bound() {
    // One election (two ticks), a proposal, its replication and the writes on both sides:
    // the model is not vacuous.
    let mut config = tight(15);
    config.max_ticks = Some(2);
    config.max_crashes = 0;
    config.max_proposals = 1;
    let report = check::run(RaftModel::new(config), &CheckOptions::new(Strategy::Bfs));
    assert_eq!(report.violations().count(), 0, "{:?}", report.discoveries);
    let example = report
        .discoveries
        .iter()
        .find(|d| d.property == "a command commits")
        .expect("a command commits within 15 actions");
    assert!(!example.violation);
    assert_eq!(
        example.actions.len(),
        15,
        "breadth first finds a shortest one"
    );
}

#[test]
fn leading_before_the_own_vote_is_durable_is_found_and_replays() {
    // The bound: one term, four ticks (two elections of one node), one crash, two proposals.
    let mut config = with_bug(tight(18), Bug::LeadBeforeDurableVote);
    config.max_ticks = Some(4);
    let model = RaftModel::new(config);
    let report = check::run(model.clone(), &CheckOptions::new(Strategy::Dfs));
    let violation = check::shortest_violation(&report).expect("the bug is found");
    assert_eq!(violation.property, "election safety");
    assert_eq!(violation.actions.len(), 18);

    // The counterexample replays to the same violation, from its index path too.
    let steps = replay(&model, &violation.actions).expect("the path replays");
    let last = steps.last().and_then(|s| s.state.violation.clone());
    assert_eq!(
        last.map(|v| v.invariant),
        Some("election_safety_across_restarts")
    );
    let again = check::actions_of_index_path(&model, &violation.index_path).expect("parses");
    assert_eq!(again, violation.actions);
    let text = render_text(&steps);
    assert!(text.contains("crash n"), "{text}");
    assert!(
        text.contains("violated election_safety_across_restarts"),
        "{text}"
    );

    // The viewer opens its JSON trace, and its summary names the violation.
    let json = String::from_utf8(render_json(&model, &steps)).expect("utf-8");
    let records = trace_json::parse(&json).expect("a JSON trace");
    let replayed = viz::replay(&records).expect("the viewer replays it");
    assert!(viz::summary(&replayed).ends_with("violation=election_safety_across_restarts"));
    // (Without the bug the same bound is clean; it takes minutes, so the README reports it.)
}

#[test]
fn a_path_from_another_model_is_refused() {
    let model = RaftModel::new(tight(4));
    assert!(check::actions_of_index_path(&model, "0/99").is_err());
    assert!(check::actions_of_index_path(&model, "1/0").is_err());
    assert!(check::actions_of_index_path(&model, "0/x").is_err());
}
