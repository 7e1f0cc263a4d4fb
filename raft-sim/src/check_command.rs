//! `raft-sim check`: build the model from the flags, search, print the figures and any
//! counterexample, write its JSON trace and viewer.

use std::process::ExitCode;
use std::time::Duration;

use raft_sim::model::check::{self, CheckOptions, CheckReport, Discovery, Strategy};
use raft_sim::model::trace::{render_json, render_text, replay};
use raft_sim::model::{ModelConfig, Mutation, RaftModel};
use raft_sim::{trace_json, viz};

use crate::{write_file, CheckArgs};

pub fn run(args: &CheckArgs) -> ExitCode {
    let model = match model_of(args) {
        Ok(model) => model,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    println!("model:    {}", describe_model(&model.config));
    match model.symmetry_off_reason() {
        None => {
            println!("symmetry: on, one state per class of states equal up to the servers' names")
        }
        Some(reason) => println!("symmetry: off ({reason})"),
    }
    if let Some(address) = &args.serve {
        println!("explorer: http://{address}/");
        let _ = stateright::Model::checker(model).serve(address.as_str());
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &args.replay {
        return replay_path(args, &model, path);
    }
    let strategy = strategy_of(args);
    let options = CheckOptions {
        strategy,
        threads: args.threads,
        stop_at_first_violation: !args.all,
        timeout: args.timeout.map(Duration::from_secs),
        memory_limit_bytes: Some(args.max_memory_gb.saturating_mul(1 << 30)),
        progress: Some(Duration::from_secs(10)),
    };
    println!(
        "search:   {}, {} thread(s)",
        describe_strategy(strategy),
        args.threads.max(1)
    );
    let report = check::run(model.clone(), &options);
    print_figures(&report);
    let Some(violation) = check::shortest_violation(&report) else {
        return ExitCode::SUCCESS;
    };
    match print_counterexample(args, &model, violation) {
        Ok(()) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
    }
}

fn strategy_of(args: &CheckArgs) -> Strategy {
    match (args.dfs, args.random) {
        (_, Some(seed)) => Strategy::Random { seed },
        (true, None) => Strategy::Dfs,
        (false, None) => Strategy::Bfs,
    }
}

fn describe_strategy(strategy: Strategy) -> String {
    match strategy {
        Strategy::Bfs => "breadth first".to_owned(),
        Strategy::Dfs => "depth first".to_owned(),
        Strategy::Random { seed } => format!("random walks, seed {seed}"),
    }
}

fn model_of(args: &CheckArgs) -> Result<RaftModel, String> {
    let mut config = ModelConfig::new(args.nodes);
    config.pre_vote = args.pre_vote;
    config.check_quorum = args.check_quorum;
    config.heartbeat_ticks = args.heartbeat_ticks;
    config.election_ticks_min = args.election_ticks;
    config.election_ticks_max = args.election_ticks_max.unwrap_or(args.election_ticks);
    config.depth = args.depth;
    config.max_term = args.max_term;
    config.max_crashes = args.crashes;
    config.max_proposals = args.proposals;
    config.max_duplicates = args.duplicates;
    config.max_ticks = args.ticks;
    config.drops = !args.no_drops;
    config.instant_persists = args.instant_persists;
    config.max_compactions = args.compactions;
    config.max_changes = args.changes;
    config.symmetry = !args.no_symmetry;
    config.max_reads = args.reads;
    config.max_transfers = args.transfers;
    config.lease_reads = args.lease_reads;
    config.mutation = args.bug.as_deref().map(mutation).transpose()?;
    config.validate()?;
    Ok(RaftModel::new(config))
}

#[cfg(feature = "catalogue")]
fn mutation(name: &str) -> Result<Mutation, String> {
    use raft_core::bugs::Bug;
    let bug = Bug::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Bug::ALL.iter().map(|bug| bug.name()).collect();
        format!(
            "no bug {name:?} in the catalogue; it has: {}",
            names.join(", ")
        )
    })?;
    Ok(Mutation {
        name: bug.name().to_owned(),
        apply: std::sync::Arc::new(move |node| node.reintroduce(bug)),
    })
}

#[cfg(not(feature = "catalogue"))]
fn mutation(name: &str) -> Result<Mutation, String> {
    Err(format!(
        "--bug {name}: this build has no bug catalogue; build with `--features catalogue`"
    ))
}

fn describe_model(config: &ModelConfig) -> String {
    let on = |flag: bool| if flag { "on" } else { "off" };
    format!(
        "{} nodes, pre-vote {}, check-quorum {}, heartbeat {} tick(s), election {}..={} ticks; \
         lease reads {}; bounds: depth {}, term {}, ticks {}, crashes {}, proposals {}, \
         duplicates {}, drops {}, instant persists {}, compactions {}, membership changes {}, \
         reads {}, transfers {}; bug: {}",
        config.nodes,
        on(config.pre_vote),
        on(config.check_quorum),
        config.heartbeat_ticks,
        config.election_ticks_min,
        config.election_ticks_max,
        on(config.lease_reads),
        config.depth,
        config.max_term,
        config
            .max_ticks
            .map_or_else(|| "any".to_owned(), |ticks| ticks.to_string()),
        config.max_crashes,
        config.max_proposals,
        config.max_duplicates,
        on(config.drops),
        on(config.instant_persists),
        config.max_compactions,
        config.max_changes,
        config.max_reads,
        config.max_transfers,
        config.mutation.as_ref().map_or("none", |m| m.name.as_str()),
    )
}

fn print_figures(report: &CheckReport) {
    println!("states generated: {}", report.states);
    println!("unique states:    {}", report.unique_states);
    println!("depth reached:    {}", report.depth);
    println!("time:             {:.2} s", report.elapsed.as_secs_f64());
    println!("states/s:         {:.0}", report.states_per_second());
    match report.stopped_by {
        None => println!("complete:         yes, the search ended by itself"),
        Some(reason) => println!("complete:         NO, stopped by {reason}"),
    }
    for discovery in &report.discoveries {
        let kind = if discovery.violation {
            "VIOLATED"
        } else {
            "example found"
        };
        println!(
            "property:         {} {kind} ({} actions)",
            discovery.property,
            discovery.actions.len()
        );
    }
    if report.violations().next().is_none() {
        println!("violations:       none");
    }
}

fn print_counterexample(
    args: &CheckArgs,
    model: &RaftModel,
    discovery: &Discovery,
) -> Result<(), String> {
    println!(
        "counterexample to \"{}\" ({} actions):",
        discovery.property,
        discovery.actions.len()
    );
    let steps = replay(model, &discovery.actions)?;
    print!("{}", render_text(&steps));
    println!(
        "replay:   {} --replay {}",
        command_line(args),
        discovery.index_path
    );
    write_outputs(args, model, &steps, discovery.property)
}

fn replay_path(args: &CheckArgs, model: &RaftModel, path: &str) -> ExitCode {
    let result = check::actions_of_index_path(model, path)
        .and_then(|actions| replay(model, &actions))
        .and_then(|steps| {
            print!("{}", render_text(&steps));
            write_outputs(args, model, &steps, "replay")?;
            Ok(steps
                .last()
                .is_some_and(|step| step.state.violation.is_some()))
        });
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
    }
}

fn write_outputs(
    args: &CheckArgs,
    model: &RaftModel,
    steps: &[raft_sim::model::trace::TracedStep],
    what: &str,
) -> Result<(), String> {
    if args.outputs.trace_json.is_none() && args.outputs.html.is_none() {
        return Ok(());
    }
    let bytes = render_json(model, steps);
    if let Some(path) = &args.outputs.trace_json {
        write_file(path, &bytes)?;
        println!("trace:    {}", path.display());
    }
    if let Some(path) = &args.outputs.html {
        let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
        let records = trace_json::parse(&text)?;
        let title = format!("raft-sim check: {what}");
        write_file(path, viz::render_html(&records, &title).as_bytes())?;
        println!("viewer:   {}", path.display());
    }
    Ok(())
}

/// The flags that define the model, as a command line that rebuilds it.
fn command_line(args: &CheckArgs) -> String {
    let mut line = format!(
        "raft-sim check --nodes {} --depth {} --heartbeat-ticks {} --election-ticks {} \
         --max-term {} --crashes {} --proposals {} --duplicates {} --compactions {} --changes {} \
         --reads {} --transfers {}",
        args.nodes,
        args.depth,
        args.heartbeat_ticks,
        args.election_ticks,
        args.max_term,
        args.crashes,
        args.proposals,
        args.duplicates,
        args.compactions,
        args.changes,
        args.reads,
        args.transfers
    );
    if let Some(ticks) = args.ticks {
        line.push_str(&format!(" --ticks {ticks}"));
    }
    if let Some(max) = args.election_ticks_max {
        line.push_str(&format!(" --election-ticks-max {max}"));
    }
    for (flag, on) in [
        ("--pre-vote", args.pre_vote),
        ("--check-quorum", args.check_quorum),
        ("--lease-reads", args.lease_reads),
        ("--no-drops", args.no_drops),
        ("--instant-persists", args.instant_persists),
        ("--no-symmetry", args.no_symmetry),
    ] {
        if on {
            line.push(' ');
            line.push_str(flag);
        }
    }
    if let Some(bug) = &args.bug {
        line.push_str(&format!(" --bug {bug}"));
    }
    line
}
