//! The model checker over the real core: a small bound is clean and reaches a committed
//! command, a reintroduced bug is found, and counterexamples replay and open in the viewer.

use std::sync::Arc;

use raft_core::bugs::Bug;
use raft_core::NodeId;
use raft_sim::model::check::{self, CheckOptions, Strategy};
use raft_sim::model::trace::{render_json, render_text, replay};
use raft_sim::model::{ModelAction, ModelConfig, Mutation, RaftModel};
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
    // The default model (drops, a duplicate, a crash, two proposals, terms up to 3) to 10
    // actions, breadth first: every state within the bound, with and without symmetry.
    let mut config = ModelConfig::new(3);
    config.depth = 10;
    let reduced = check::run(
        RaftModel::new(config.clone()),
        &CheckOptions::new(Strategy::Bfs),
    );
    config.symmetry = false;
    let full = check::run(RaftModel::new(config), &CheckOptions::new(Strategy::Bfs));
    for report in [&reduced, &full] {
        assert_eq!(report.stopped_by, None);
        assert_eq!(report.violations().count(), 0, "{:?}", report.discoveries);
        assert_eq!(report.depth, 10);
    }
    assert!(full.unique_states > 100_000, "{}", full.unique_states);
    // Three interchangeable servers: close to 3! = 6 renamings of almost every state.
    let factor = full.unique_states as f64 / reduced.unique_states as f64;
    assert!((5.0..=6.0).contains(&factor), "{factor}");
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

/// The bound each bug of the catalogue is found within, the property it breaks, and the
/// length of its shortest counterexample (breadth first; depth first finds one that short
/// within this bound).
fn catalogue_bound(bug: Bug) -> (ModelConfig, &'static str, usize) {
    match bug {
        // One term, four ticks (two elections of one node), one crash: a leader on two peer
        // votes whose own vote is not yet durable crashes, forgets its term, and takes office
        // in the same term again (`election_safety_across_restarts`, checked before the two
        // logs could differ).
        Bug::LeadBeforeDurableVote => {
            let mut config = tight(17);
            config.max_ticks = Some(4);
            (config, "election safety", 17)
        }
        _ => unreachable!("{} has no bound: add it here", bug.name()),
    }
}

#[test]
fn every_bug_of_the_catalogue_is_found_with_and_without_symmetry() {
    for &bug in &[Bug::LeadBeforeDurableVote] {
        let (config, property, length) = catalogue_bound(bug);
        for symmetry in [true, false] {
            let mut config = with_bug(config.clone(), bug);
            config.symmetry = symmetry;
            let model = RaftModel::new(config);
            let report = check::run(model.clone(), &CheckOptions::new(Strategy::Dfs));
            let name = format!("{}, symmetry {symmetry}", bug.name());
            let violation =
                check::shortest_violation(&report).unwrap_or_else(|| panic!("{name}: not found"));
            assert_eq!(violation.property, property, "{name}");
            assert_eq!(violation.actions.len(), length, "{name}");

            // The path is a run of the real cluster under its own names (symmetry explores
            // renamed states): it replays to the violation, from its index path too.
            let steps = replay(&model, &violation.actions).expect("the path replays");
            let invariant = steps
                .last()
                .and_then(|s| s.state.violation.as_ref())
                .map(|v| v.invariant)
                .unwrap_or_else(|| panic!("{name}: the replay ends without a violation"));
            let again =
                check::actions_of_index_path(&model, &violation.index_path).expect("parses");
            assert_eq!(again, violation.actions, "{name}");
            let text = render_text(&steps);
            assert!(text.contains(&format!("violated {invariant}")), "{text}");

            // The viewer opens its JSON trace, and its summary names the violation.
            let json = String::from_utf8(render_json(&model, &steps)).expect("utf-8");
            let records = trace_json::parse(&json).expect("a JSON trace");
            let replayed = viz::replay(&records).expect("the viewer replays it");
            let summary = viz::summary(&replayed);
            assert!(
                summary.ends_with(&format!("violation={invariant}")),
                "{summary}"
            );
        }
    }
    // (Without the bugs the same bounds are clean; that takes minutes, so the README reports
    // it.)
}

#[test]
fn reads_are_served_and_transfers_start_elections_within_a_small_bound() {
    // Writes complete at once, so a ReadIndex round (election, the leader's no-op committed,
    // a heartbeat round) and a transfer (an election, TimeoutNow) fit in ten actions.
    let mut config = tight(10);
    config.max_term = 2;
    config.max_crashes = 0;
    config.max_proposals = 0;
    config.max_reads = 1;
    config.max_transfers = 1;
    config.check_quorum = true;
    config.instant_persists = true;
    let mut options = CheckOptions::new(Strategy::Bfs);
    options.stop_at_first_violation = false;
    let report = check::run(RaftModel::new(config), &options);
    assert_eq!(report.stopped_by, None);
    assert_eq!(report.violations().count(), 0, "{:?}", report.discoveries);
    for property in ["a read is served", "a server campaigns on TimeoutNow"] {
        assert!(
            report.discoveries.iter().any(|d| d.property == property),
            "{property}: {:?}",
            report.discoveries
        );
    }
}

#[test]
fn with_lease_reads_the_servers_tick_in_turn() {
    let mut config = ModelConfig::new(3);
    config.check_quorum = true;
    config.lease_reads = true;
    let model = RaftModel::new(config);
    assert!(model.symmetry_off_reason().is_some());
    let ticks = |state: &raft_sim::model::ClusterState| {
        let mut actions = Vec::new();
        stateright::Model::actions(&model, state, &mut actions);
        actions
            .into_iter()
            .filter_map(|action| match action {
                ModelAction::Tick(id) => Some(id.0),
                _ => None,
            })
            .collect::<Vec<u64>>()
    };
    let mut state = model.initial_state();
    let mut order = Vec::new();
    for _ in 0..4 {
        let [id] = ticks(&state)[..] else {
            panic!("one server's turn: {:?}", ticks(&state));
        };
        order.push(id);
        model.apply(&mut state, &ModelAction::Tick(NodeId(id)));
    }
    assert_eq!(order, [1, 2, 3, 1]);
    // A crashed server's turn passes to the next one up.
    model.apply(&mut state, &ModelAction::Crash(NodeId(2)));
    assert_eq!(ticks(&state), [3]);
}

#[test]
fn a_path_from_another_model_is_refused() {
    let model = RaftModel::new(tight(4));
    assert!(check::actions_of_index_path(&model, "0/99").is_err());
    assert!(check::actions_of_index_path(&model, "1/0").is_err());
    assert!(check::actions_of_index_path(&model, "0/x").is_err());
}
