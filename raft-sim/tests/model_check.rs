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

/// Where the model checker finds one bug of the catalogue: the smallest bound found (budgets
/// cut to what the bug needs), the search that finds it, and the property it breaks. Breadth
/// first, the bound's depth is the length of the shortest counterexample; where breadth first
/// does not reach that depth in minutes, depth first finds one within the bound. The README's
/// bug catalogue gives the same bounds as `raft-sim check` command lines.
struct Found {
    config: ModelConfig,
    strategy: Strategy,
    property: &'static str,
}

/// What the model checker makes of each bug: found within a bound, or not found in the
/// bounds searched, with why (see the README's bug catalogue for the figures).
enum Fit {
    Found(Found),
    NotFound(&'static str),
}

/// One election term, no duplicates, no drops, no crashes, `ticks` ticks, `proposals`
/// proposals, to `depth` actions.
fn bound(depth: u32, ticks: u8, proposals: u8) -> ModelConfig {
    let mut config = tight(depth);
    config.max_ticks = Some(ticks);
    config.max_crashes = 0;
    config.max_proposals = proposals;
    config
}

fn bfs(config: ModelConfig, property: &'static str) -> Fit {
    Fit::Found(Found {
        config,
        strategy: Strategy::Bfs,
        property,
    })
}

fn dfs(config: ModelConfig, property: &'static str) -> Fit {
    Fit::Found(Found {
        config,
        strategy: Strategy::Dfs,
        property,
    })
}

fn catalogue_fit(bug: Bug) -> Fit {
    match bug {
        // Two elections of one node and a crash between them: a leader on two peer votes whose
        // own vote is not yet durable crashes, forgets its term, and takes office in the same
        // term again (`election_safety_across_restarts`, before the logs can differ).
        Bug::LeadBeforeDurableVote => {
            let mut config = bound(15, 4, 2);
            config.max_crashes = 1;
            bfs(config, "election safety")
        }
        Bug::VoteRequestBeforeDurableTerm => Fit::NotFound(
            "needs a crash that loses a campaign's term, a second campaign in that term with \
             another log and more terms for the log to change: beyond the bounds searched",
        ),
        Bug::CommitEarlierTerm => Fit::NotFound(
            "Figure 8 in three servers takes four terms, a crash and about 30 actions: beyond \
             the bounds searched",
        ),
        // Every AppendEntries of the model carries the leader's log to its end (no flow-control
        // limit), so a follower's stale suffix conflicts with the leader's own entry and is
        // cut before the commit index moves.
        Bug::FollowerCommitPastNewEntries => Fit::NotFound(
            "needs an AppendEntries cut short of the leader's last entry (exploration draws \
             append_entries_max 1..4; the model keeps the default)",
        ),
        // Two candidates in one term and a crash: a voter's grant goes out before its vote is
        // durable, the voter crashes, forgets the vote and grants it again to the other one.
        Bug::VoteBeforeDurable => {
            let mut config = bound(12, 4, 0);
            config.max_crashes = 1;
            bfs(config, "election safety")
        }
        // Three terms with instant writes: n1 leads t1 alone, n3 leads t2 and replicates to n2,
        // n2 leads t3 and appends after its t2 entry to n1, which holds a t1 entry there.
        Bug::AppendIgnoresPrevLogTerm => {
            let mut config = bound(14, 6, 0);
            config.max_term = 3;
            config.instant_persists = true;
            bfs(config, "log matching")
        }
        // One election and a change with instant writes: the leader removes itself and keeps
        // leading once the removal commits.
        Bug::RemovedLeaderKeepsLeading => {
            let mut config = bound(13, 2, 0);
            config.instant_persists = true;
            config.max_changes = 1;
            bfs(config, "election safety")
        }
        // Two terms with instant writes: a write commits on two servers, the second leads the
        // next term without having heard of the commit and serves a read at its old commit
        // index.
        Bug::ReadWithoutTermCommit => {
            let mut config = bound(16, 4, 1);
            config.max_term = 2;
            config.instant_persists = true;
            config.max_reads = 1;
            dfs(config, "linearizable history")
        }
        Bug::LeaseWithoutStickiness => Fit::NotFound(
            "needs a lease, an election the stale leader does not hear of and a commit in the \
             new term, with the servers ticking in turn: beyond the bounds searched",
        ),
        // One term, a compaction, instant writes: the leader compacts while its snapshot and
        // the entries it covers are both on their way to a follower, which applies the entries,
        // then installs the snapshot over them and applies its last entry again.
        Bug::SnapshotOverNewerLog => {
            let mut config = bound(14, 5, 1);
            config.instant_persists = true;
            config.max_compactions = 1;
            bfs(config, "state machine safety")
        }
        // Two terms with instant writes: a voter grants a candidate that lacks the entry the
        // first leader committed.
        Bug::VoteForStaleLog => {
            let mut config = tight(10);
            config.max_term = 2;
            config.max_crashes = 0;
            config.max_proposals = 1;
            config.instant_persists = true;
            bfs(config, "leader completeness")
        }
        // One election, one proposal: a follower acknowledges the entry before it is durable,
        // the leader commits and answers the client while one disk holds the write.
        Bug::AckBeforeDurable => bfs(bound(14, 2, 1), "acknowledged writes durable"),
        // Two terms and a crash: the leader commits its first entry on one follower's copy
        // before its own write completes, a follower applies it, the leader crashes and loses
        // it, and the third server is elected with the leader's vote.
        Bug::LeaderCountsUndurableSelf => {
            let mut config = bound(17, 5, 0);
            config.max_term = 2;
            config.max_crashes = 1;
            bfs(config, "leader completeness")
        }
        // One election, a read: released before the leader applied the entry it waits for.
        Bug::ReadBeforeApply => {
            let mut config = bound(15, 2, 1);
            config.max_reads = 1;
            bfs(config, "state machine safety")
        }
        Bug::EarlyAppendsOutliveTheirTerm => Fit::NotFound(
            "needs an append held across an election, the new leader's entry at its index, a \
             crash of that leader and a third term: three terms and two crashes, beyond the \
             bounds searched (`scenarios/early-appends-new-leader.scn` has the schedule)",
        ),
        _ => panic!("{}: no bound and no reason it does not fit", bug.name()),
    }
}

/// The bugs whose bound is searched in seconds, with the bug and without: every `cargo test`
/// runs them. The others run in the ignored test below (minutes).
const QUICK: &[Bug] = &[
    Bug::VoteBeforeDurable,
    Bug::AckBeforeDurable,
    Bug::ReadBeforeApply,
    Bug::RemovedLeaderKeepsLeading,
    Bug::VoteForStaleLog,
];

/// `bug` is found within its bound by its search with symmetry, and, for a bound searched
/// breadth first, depth first without symmetry too (breadth first finds a shortest
/// counterexample, as long as the bound's depth; a bound that needs depth first takes minutes
/// with symmetry already, and about six times as many states without); the counterexample
/// replays, from its index path too, and opens in the viewer; and the same bound without the
/// bug is clean (exhaustively, breadth first; depth first does not revisit a state first met
/// along a longer path, so it may stop short).
fn check_found(bug: Bug, found: &Found) {
    let depth = found.config.depth as usize;
    let mut searches = vec![(true, found.strategy)];
    if found.strategy == Strategy::Bfs {
        searches.push((false, Strategy::Dfs));
    }
    for (symmetry, strategy) in searches {
        let mut config = with_bug(found.config.clone(), bug);
        config.symmetry = symmetry;
        let model = RaftModel::new(config);
        let report = check::run(model.clone(), &CheckOptions::new(strategy));
        let name = format!("{}, symmetry {symmetry}", bug.name());
        let violation =
            check::shortest_violation(&report).unwrap_or_else(|| panic!("{name}: not found"));
        assert_eq!(violation.property, found.property, "{name}");
        let length = violation.actions.len();
        if strategy == Strategy::Bfs {
            assert_eq!(length, depth, "{name}: the shortest counterexample");
        } else {
            assert!(length <= depth, "{name}: {length}");
        }

        // The path is a run of the real cluster under its own names (symmetry explores
        // renamed states): it replays to the violation, from its index path too.
        let steps = replay(&model, &violation.actions).expect("the path replays");
        let invariant = steps
            .last()
            .and_then(|s| s.state.violation.as_ref())
            .map(|v| v.invariant)
            .unwrap_or_else(|| panic!("{name}: the replay ends without a violation"));
        let again = check::actions_of_index_path(&model, &violation.index_path).expect("parses");
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
    let clean = check::run(
        RaftModel::new(found.config.clone()),
        &CheckOptions::new(found.strategy),
    );
    assert_eq!(clean.stopped_by, None, "{}", bug.name());
    assert_eq!(
        clean.violations().count(),
        0,
        "{} without the bug: {:?}",
        bug.name(),
        clean.discoveries
    );
}

#[test]
fn every_bug_of_the_catalogue_has_a_bound_or_a_reason_it_does_not_fit() {
    let mut found = 0;
    for &bug in Bug::ALL {
        match catalogue_fit(bug) {
            Fit::Found(bound) => {
                bound.config.validate().expect("a valid bound");
                found += 1;
            }
            Fit::NotFound(reason) => assert!(!reason.is_empty()),
        }
    }
    for bug in QUICK {
        let quick = matches!(
            catalogue_fit(*bug),
            Fit::Found(Found {
                strategy: Strategy::Bfs,
                ..
            })
        );
        assert!(quick, "{}: breadth first", bug.name());
    }
    assert!(found >= QUICK.len());
}

#[test]
fn the_quick_bugs_are_found_with_and_without_symmetry_and_their_bounds_are_clean() {
    for &bug in QUICK {
        if let Fit::Found(found) = catalogue_fit(bug) {
            check_found(bug, &found);
        }
    }
}

/// About nine minutes: `cargo test -p raft-sim --test model_check -- --ignored` (the test
/// profile builds the core, the simulator and stateright optimized).
#[test]
#[ignore = "minutes: cargo test -p raft-sim --test model_check -- --ignored"]
fn every_bug_of_the_catalogue_that_fits_is_found_and_its_bound_is_clean() {
    for &bug in Bug::ALL {
        if QUICK.contains(&bug) {
            continue;
        }
        if let Fit::Found(found) = catalogue_fit(bug) {
            check_found(bug, &found);
        }
    }
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

/// Delivers what is in flight, first frame first, until nothing is (writes complete at once).
fn settle(model: &RaftModel, state: &mut raft_sim::model::ClusterState) {
    for _ in 0..200 {
        let Some(frame) = state.network.iter().next().cloned() else {
            return;
        };
        model.apply(state, &ModelAction::Deliver(frame));
    }
    panic!("the network does not settle");
}

#[test]
fn the_spare_server_joins_through_a_snapshot_and_is_promoted() {
    // `--changes` adds a spare server n4 that starts with no voters; `--compactions` lets a
    // node compact through its applied index. A leader that compacted its log before n4 joined
    // can only catch n4 up with a snapshot.
    let mut config = ModelConfig::new(3);
    config.instant_persists = true;
    config.max_proposals = 1;
    config.max_compactions = 1;
    config.max_changes = 2;
    config.depth = 1_000;
    let model = RaftModel::new(config);
    assert_eq!(model.config.spare(), Some(NodeId(4)));
    assert!(model.symmetry_off_reason().is_some());
    let (n1, n4) = (NodeId(1), NodeId(4));
    let mut state = model.initial_state();
    assert!(state.node(n4).expect("up").membership().voters.is_empty());
    for action in [ModelAction::Tick(n1), ModelAction::Tick(n1)] {
        model.apply(&mut state, &action);
    }
    settle(&model, &mut state);
    model.apply(&mut state, &ModelAction::Propose(n1));
    settle(&model, &mut state);
    // A heartbeat tells the followers the proposal committed.
    model.apply(&mut state, &ModelAction::Tick(n1));
    settle(&model, &mut state);
    let leader = state.node(n1).expect("up");
    assert_eq!(leader.role(), raft_core::Role::Leader);
    let applied = leader.applied_index();
    assert!(applied.0 >= 2, "{applied}");
    model.apply(&mut state, &ModelAction::Compact(n1));
    let change = |change| ModelAction::Change(n1, change);
    model.apply(
        &mut state,
        &change(raft_core::MembershipChange::AddLearner(n4)),
    );
    settle(&model, &mut state);
    let spare = state.node(n4).expect("up");
    let installed = spare.snapshot_meta().map(|meta| meta.last_included_index);
    assert_eq!(installed, Some(applied), "n4 installed n1's snapshot");
    model.apply(&mut state, &ModelAction::Tick(n1));
    settle(&model, &mut state);
    model.apply(
        &mut state,
        &change(raft_core::MembershipChange::PromoteLearner(n4)),
    );
    settle(&model, &mut state);
    model.apply(&mut state, &ModelAction::Tick(n1));
    settle(&model, &mut state);
    for id in [n1, n4] {
        let node = state.node(id).expect("up");
        assert!(node.membership().voters.contains(&n4), "{id}");
    }
    assert!(state.violation.is_none(), "{:?}", state.violation);
    assert_eq!(state.used.changes, 2);
    assert_eq!(state.used.compactions, 1);
}
