//! The `raft-sim` command: run scenario files, explore random seeds, replay one seed, and
//! turn a run's JSON trace into an HTML viewer.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use raft_sim::explore::{run_seed, run_seed_guarded, ExploreConfig, FaultProfile, Summary};
use raft_sim::trace::{Tee, TraceSink};
use raft_sim::trace_json::{self, JsonTrace, SharedBuffer};
use raft_sim::{scenario, viz};

mod check_command;

#[derive(Debug, Parser)]
#[command(
    name = "raft-sim",
    about = "Deterministic Raft cluster simulator",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario file and print its transcript.
    Run {
        file: PathBuf,
        #[command(flatten)]
        outputs: Outputs,
        #[command(flatten)]
        bugs: BugArgs,
    },
    /// Run a random fault schedule and workload for every seed in a range.
    Explore {
        /// Seeds to run, as START..END (END excluded).
        #[arg(long, value_parser = parse_range, default_value = "0..100")]
        seeds: Range<u64>,
        #[arg(long, default_value_t = 5)]
        nodes: u64,
        /// Virtual milliseconds of fault injection per seed.
        #[arg(long, default_value_t = 10_000)]
        fault_ms: u64,
        #[command(flatten)]
        bugs: BugArgs,
    },
    /// Run one seed exactly as `explore` does, with the same fault profile.
    Replay {
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 5)]
        nodes: u64,
        #[arg(long, default_value_t = 10_000)]
        fault_ms: u64,
        /// Print every event.
        #[arg(long)]
        trace: bool,
        #[command(flatten)]
        outputs: Outputs,
        #[command(flatten)]
        bugs: BugArgs,
    },
    /// Reintroduce each known bug in turn and report what catches it: the seeds `explore`
    /// needs, and the scenarios that stop on it.
    #[cfg(feature = "catalogue")]
    Catalogue {
        /// Seeds to explore per bug and cluster size, as START..END (END excluded); each run
        /// stops at the first failing seed.
        #[arg(long, value_parser = parse_range, default_value = "0..10000")]
        seeds: Range<u64>,
        /// Cluster sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "3,5")]
        nodes: Vec<u64>,
        #[arg(long, default_value_t = 10_000)]
        fault_ms: u64,
        /// The scenario files to run with each bug.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))]
        scenarios: PathBuf,
        /// Only these bugs (repeatable); every bug by default.
        #[command(flatten)]
        only: BugArgs,
    },
    /// Measure replication over a reordering network: a healthy cluster, a random latency per
    /// message, a pipeline of proposals; entries sent per entry committed, rejections,
    /// throughput and commit latency, in virtual time.
    Replication {
        #[arg(long, default_value_t = 5)]
        nodes: u64,
        /// Per-message latency, fixed (`2ms`) or uniform in a range (`1-5ms`); repeatable,
        /// one run each.
        #[arg(long, value_parser = raft_sim::replication::parse_latency, default_value = "1-5ms")]
        latency: Vec<(u64, u64)>,
        #[arg(long, default_value_t = 10_000)]
        proposals: u64,
        /// Proposals awaiting their commit at any time.
        #[arg(long, default_value_t = 100)]
        window: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Probability that a message is lost.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
    },
    /// Model-check the real core: every interleaving of a small cluster up to a bound.
    Check(CheckArgs),
    /// Write the HTML viewer for a JSON trace, or print its summary line.
    Viz {
        /// A trace written by `--trace-json`.
        trace: PathBuf,
        /// The HTML file to write.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print one line: node count, last log indexes, commit indexes, log terms, violation.
        #[arg(long)]
        summary: bool,
    },
}

/// The model and the search of `raft-sim check` (see the crate README, "Model checking").
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)]
struct CheckArgs {
    /// Voters in the cluster (2 to 5).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Actions along one path.
    #[arg(long, default_value_t = 12)]
    depth: u32,
    /// Breadth-first search (the default): exhaustive within the bound, shortest counterexample.
    #[arg(long, conflicts_with_all = ["dfs", "random"])]
    bfs: bool,
    /// Depth-first search: little memory, for deeper bounds.
    #[arg(long, conflicts_with = "random")]
    dfs: bool,
    /// Random walks to the depth bound (until --timeout), seeded by this.
    #[arg(long, value_name = "SEED")]
    random: Option<u64>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Run every node with this bug of the catalogue reintroduced (builds with
    /// `--features catalogue`).
    #[arg(long, value_name = "NAME")]
    bug: Option<String>,
    #[arg(long)]
    pre_vote: bool,
    #[arg(long)]
    check_quorum: bool,
    #[arg(long, default_value_t = 1)]
    heartbeat_ticks: u32,
    /// Election timeout in ticks (the minimum, when --election-ticks-max is larger).
    #[arg(long, default_value_t = 2)]
    election_ticks: u32,
    #[arg(long)]
    election_ticks_max: Option<u32>,
    /// States where some node's term is above this are outside the bound.
    #[arg(long, default_value_t = 3)]
    max_term: u64,
    /// Ticks allowed over all nodes (default: as many as the depth allows).
    #[arg(long)]
    ticks: Option<u8>,
    #[arg(long, default_value_t = 1)]
    crashes: u8,
    #[arg(long, default_value_t = 2)]
    proposals: u8,
    #[arg(long, default_value_t = 1)]
    duplicates: u8,
    /// Never drop a message (it may still stay in flight forever).
    #[arg(long)]
    no_drops: bool,
    /// Every write completes within the action that asked for it (a tighter bound that fits
    /// deeper histories).
    #[arg(long)]
    instant_persists: bool,
    /// Log compactions allowed.
    #[arg(long, default_value_t = 0)]
    compactions: u8,
    /// Membership changes allowed (adds a spare server n<nodes+1>).
    #[arg(long, default_value_t = 0)]
    changes: u8,
    /// Linearizable reads allowed (ReadIndex, or leases with --lease-reads); each released
    /// read is checked against the writes acknowledged before it.
    #[arg(long, default_value_t = 0)]
    reads: u8,
    /// Leadership transfers allowed (TimeoutNow).
    #[arg(long, default_value_t = 0)]
    transfers: u8,
    /// Leader leases for reads (needs --check-quorum); the servers then tick in turn.
    #[arg(long)]
    lease_reads: bool,
    /// Explore every renaming of each state instead of one per class of states equal up to
    /// the servers' names.
    #[arg(long)]
    no_symmetry: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Stop once the process uses this much memory (breadth-first search keeps every state of
    /// the frontier).
    #[arg(long, value_name = "GIB", default_value_t = 8)]
    max_memory_gb: u64,
    /// Look for a counterexample to every property instead of stopping at the first.
    #[arg(long)]
    all: bool,
    /// Replay one path, given as the index path a report prints, instead of searching.
    #[arg(long, value_name = "PATH")]
    replay: Option<String>,
    /// Serve stateright's explorer UI on this address instead of searching.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    #[command(flatten)]
    outputs: Outputs,
}

/// Known bugs to reintroduce in every node of a run (the bug catalogue).
#[derive(Clone, Debug, Default, Args)]
struct BugArgs {
    /// Reintroduce this known bug in every node, in every incarnation (repeatable). The
    /// names are those `catalogue` reports.
    #[cfg(feature = "catalogue")]
    #[arg(long = "bug", value_name = "NAME", value_parser = parse_bug)]
    bugs: Vec<raft_core::bugs::Bug>,
}

#[cfg(feature = "catalogue")]
fn parse_bug(name: &str) -> Result<raft_core::bugs::Bug, String> {
    raft_core::bugs::Bug::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = raft_core::bugs::Bug::ALL.iter().map(|b| b.name()).collect();
        format!(
            "no bug {name:?} in the catalogue; known: {}",
            names.join(", ")
        )
    })
}

/// Files a run can write besides its usual output.
#[derive(Debug, Args)]
struct Outputs {
    /// Write the JSON trace here: one JSON object per line, per event.
    #[arg(long, value_name = "OUT.jsonl")]
    trace_json: Option<PathBuf>,
    /// Write the run's HTML viewer here (a single self-contained file).
    #[arg(long, value_name = "OUT.html")]
    html: Option<PathBuf>,
}

impl Outputs {
    /// A JSON trace sink, when some output needs one, and where its records land.
    fn sink(&self) -> Option<(JsonTrace<SharedBuffer>, SharedBuffer)> {
        if self.trace_json.is_none() && self.html.is_none() {
            return None;
        }
        let buffer = SharedBuffer::default();
        Some((JsonTrace::new(buffer.clone()), buffer))
    }

    /// Writes the files once the run is over (and has dropped the sink).
    fn write(&self, buffer: Option<SharedBuffer>, title: &str) -> Result<(), String> {
        let Some(buffer) = buffer else {
            return Ok(());
        };
        let bytes = buffer.contents();
        if let Some(path) = &self.trace_json {
            write_file(path, &bytes)?;
        }
        if let Some(path) = &self.html {
            let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
            let records = trace_json::parse(&text)?;
            write_file(path, viz::render_html(&records, title).as_bytes())?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("expected START..END, got {text:?}"))?;
    let start: u64 = start
        .parse()
        .map_err(|e| format!("bad start {start:?}: {e}"))?;
    let end: u64 = end.parse().map_err(|e| format!("bad end {end:?}: {e}"))?;
    if end <= start {
        return Err(format!("empty range {text}"));
    }
    Ok(start..end)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            file,
            outputs,
            bugs,
        } => run(&file, &outputs, bugs),
        Command::Explore {
            seeds,
            nodes,
            fault_ms,
            bugs,
        } => explore(seeds, &explore_config(nodes, fault_ms, bugs)),
        Command::Replay {
            seed,
            nodes,
            fault_ms,
            trace,
            outputs,
            bugs,
        } => replay(
            seed,
            &explore_config(nodes, fault_ms, bugs),
            trace,
            &outputs,
        ),
        #[cfg(feature = "catalogue")]
        Command::Catalogue {
            seeds,
            nodes,
            fault_ms,
            scenarios,
            only,
        } => catalogue(seeds, &nodes, fault_ms, &scenarios, only),
        Command::Replication {
            nodes,
            latency,
            proposals,
            window,
            seed,
            loss,
        } => replication(nodes, &latency, (proposals, window, loss), seed),
        Command::Check(args) => check_command::run(&args),
        Command::Viz {
            trace,
            output,
            summary,
        } => viz_command(&trace, output.as_deref(), summary),
    }
}

fn run(file: &Path, outputs: &Outputs, bugs: BugArgs) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("cannot read {}: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    let (sink, buffer) = outputs.sink().unzip();
    #[cfg(not(feature = "catalogue"))]
    let BugArgs {} = bugs;
    let options = scenario::RunOptions {
        trace: sink.map(|s| Box::new(s) as _),
        machine: None,
        #[cfg(feature = "catalogue")]
        bugs: bugs.bugs,
    };
    let outcome = scenario::run_script_with(&text, options);
    print!("{}", outcome.transcript);
    let title = format!("raft-sim run {}", file.display());
    if let Err(error) = outputs.write(buffer, &title) {
        eprintln!("{error}");
        return ExitCode::from(2);
    }
    if let Some(error) = outcome.error {
        eprintln!("{}: {error}", file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn explore_config(nodes: u64, fault_ms: u64, bugs: BugArgs) -> ExploreConfig {
    #[cfg(not(feature = "catalogue"))]
    let BugArgs {} = bugs;
    ExploreConfig {
        fault_ms,
        #[cfg(feature = "catalogue")]
        bugs: bugs.bugs,
        ..ExploreConfig::new(nodes)
    }
}

/// The command that replays `seed` as `config` ran it.
fn replay_command(seed: u64, config: &ExploreConfig) -> String {
    #[cfg_attr(not(feature = "catalogue"), allow(unused_mut))]
    let (mut features, mut bugs) = (String::new(), String::new());
    #[cfg(feature = "catalogue")]
    if !config.bugs.is_empty() {
        features.push_str(" --features catalogue");
        for bug in &config.bugs {
            bugs.push_str(" --bug ");
            bugs.push_str(bug.name());
        }
    }
    format!(
        "cargo run -p raft-sim --release{features} -- replay --seed {seed} --nodes {} --fault-ms {}{bugs} --trace",
        config.nodes, config.fault_ms
    )
}

fn explore(seeds: Range<u64>, config: &ExploreConfig) -> ExitCode {
    let total = seeds.end - seeds.start;
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut failed = Vec::new();
    let mut stderr = std::io::stderr();
    let mut drawn = usize::MAX;
    for seed in seeds {
        let report = run_seed_guarded(seed, config);
        summary.add(&report);
        if let Some(failure) = &report.failure {
            let _ = write!(stderr, "\r\x1b[K");
            eprintln!(
                "seed {seed} FAILED (profile: {}): {failure}",
                report.profile
            );
            failed.push(seed);
        }
        let done = summary.seeds;
        // Redraw only when the bar or the failure count changes, to keep stderr small.
        let width = 30;
        let filled = usize::try_from(done * width / total).unwrap_or(0);
        if filled == drawn && report.failure.is_none() && done != total {
            continue;
        }
        drawn = filled;
        let _ = write!(
            stderr,
            "\r[{}{}] {done}/{total} seeds, {} failed",
            "#".repeat(filled),
            " ".repeat(usize::try_from(width).unwrap_or(0) - filled),
            failed.len()
        );
    }
    let _ = writeln!(stderr);
    let seconds = started.elapsed().as_secs_f64();
    println!("seeds run:          {}", summary.seeds);
    println!("violations:         {}", summary.violations);
    println!("liveness failures:  {}", summary.liveness_failures);
    println!(
        "membership changes: {} committed",
        summary.membership_changes
    );
    println!(
        "simulated time:     {:.1} s",
        summary.sim_ms as f64 / 1000.0
    );
    println!("events:             {}", summary.events);
    let (events_per_second, simulated_per_second) = summary.rates(seconds);
    println!("events per second:  {events_per_second:.0} (wall {seconds:.2} s, one thread)");
    println!("simulated s/wall s: {simulated_per_second:.0}");
    println!("profile mix (seeds with each fault family on):");
    let percent = |count: u64| count as f64 * 100.0 / summary.seeds.max(1) as f64;
    for (name, count) in FaultProfile::FAMILIES.iter().zip(summary.profile_mix) {
        println!("  {name:<22} {count:>7} ({:.1}%)", percent(count));
    }
    let classic = summary.classic_seeds;
    println!(
        "  {:<22} {classic:>7} ({:.1}%)",
        "none (classic only)",
        percent(classic)
    );
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    for seed in failed {
        println!("replay: {}", replay_command(seed, config));
    }
    ExitCode::FAILURE
}

fn replay(seed: u64, config: &ExploreConfig, trace: bool, outputs: &Outputs) -> ExitCode {
    let (nodes, fault_ms) = (config.nodes, config.fault_ms);
    let mut sinks: Vec<Box<dyn TraceSink>> = Vec::new();
    if trace {
        sinks.push(Box::new(std::io::stdout()));
    }
    let (json, buffer) = outputs.sink().unzip();
    if let Some(json) = json {
        sinks.push(Box::new(json));
    }
    let sink: Option<Box<dyn TraceSink>> = match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Box::new(Tee(sinks))),
    };
    let report = run_seed(seed, config, sink);
    let title = format!("raft-sim replay --seed {seed} --nodes {nodes} --fault-ms {fault_ms}");
    if let Err(error) = outputs.write(buffer, &title) {
        eprintln!("{error}");
        return ExitCode::from(2);
    }
    // Output may go to a closed pipe (`| head`); that must not turn into a panic.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "seed {seed}: {} events, {} ms simulated, trace hash {:016x}",
        report.events, report.sim_ms, report.trace_hash
    );
    let _ = writeln!(out, "profile: {}", report.profile);
    match report.failure {
        None => {
            let _ = writeln!(out, "ok");
            ExitCode::SUCCESS
        }
        Some(failure) => {
            let _ = writeln!(out, "{failure}");
            ExitCode::FAILURE
        }
    }
}

fn replication(
    nodes: u64,
    latencies: &[(u64, u64)],
    (proposals, window, loss): (u64, usize, f64),
    seed: u64,
) -> ExitCode {
    if !(0.0..1.0).contains(&loss) {
        eprintln!("--loss must be at least 0 and below 1, got {loss}");
        return ExitCode::from(2);
    }
    use raft_sim::replication::{run, ReplicationConfig};
    for (i, &(min, max)) in latencies.iter().enumerate() {
        let config = ReplicationConfig {
            proposals,
            window,
            loss,
            ..ReplicationConfig::new(seed, nodes, min, max)
        };
        if i > 0 {
            println!();
        }
        match run(&config) {
            Ok(report) => println!("{report}"),
            Err(error) => {
                eprintln!("replication run failed: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn viz_command(trace: &Path, output: Option<&Path>, summary: bool) -> ExitCode {
    if output.is_none() && !summary {
        eprintln!("nothing to do: give -o OUT.html, --summary, or both");
        return ExitCode::from(2);
    }
    let result = std::fs::read_to_string(trace)
        .map_err(|e| format!("cannot read {}: {e}", trace.display()))
        .and_then(|text| trace_json::parse(&text).map_err(|e| format!("{}: {e}", trace.display())))
        .and_then(|records| {
            let replayed =
                viz::replay(&records).map_err(|e| format!("{}: {e}", trace.display()))?;
            if let Some(output) = output {
                let title = format!("raft-sim {}", trace.display());
                write_file(output, viz::render_html(&records, &title).as_bytes())?;
            }
            if summary {
                println!("{}", viz::summary(&replayed));
            }
            Ok(())
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
    }
}

/// The scenario files of `dir`, as (file name, text), by name.
#[cfg(feature = "catalogue")]
fn read_scenarios(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut scenarios = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|ext| ext == "scn") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let name = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            scenarios.push((name, text));
        }
    }
    scenarios.sort();
    Ok(scenarios)
}

#[cfg(feature = "catalogue")]
fn catalogue(
    seeds: Range<u64>,
    nodes: &[u64],
    fault_ms: u64,
    dir: &Path,
    only: BugArgs,
) -> ExitCode {
    use raft_core::bugs::Bug;
    use raft_sim::catalogue::{explore_until_caught, scenarios_stopped};

    let scenarios = match read_scenarios(dir) {
        Ok(scenarios) => scenarios,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let bugs = if only.bugs.is_empty() {
        Bug::ALL.to_vec()
    } else {
        only.bugs
    };
    // A bug can break an assertion in the core; that panic is the seed's failure, recorded
    // as such, so its message would only clutter the table.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let mut header = String::from("| bug |");
    let mut rule = String::from("| --- |");
    for n in nodes {
        header.push_str(&format!(" explore --nodes {n} |"));
        rule.push_str(" --- |");
    }
    println!(
        "seeds {}..{}, {fault_ms} ms of faults per seed",
        seeds.start, seeds.end
    );
    println!();
    println!("{header} scenarios that stop |");
    println!("{rule} --- |");
    let mut uncaught = Vec::new();
    for bug in bugs {
        let mut row = format!("| `{}` |", bug.name());
        let mut caught = false;
        for &n in nodes {
            let mut stderr = std::io::stderr();
            let found = explore_until_caught(bug, n, seeds.clone(), fault_ms, |done| {
                if done % 50 == 0 {
                    let _ = write!(stderr, "\r\x1b[K{} --nodes {n}: {done} seeds", bug.name());
                }
            });
            let _ = write!(stderr, "\r\x1b[K");
            let cell = match found {
                Some(hit) => {
                    caught = true;
                    format!(
                        " {} (seed {}: `{}`) |",
                        plural(hit.seeds_run, "seed"),
                        hit.seed,
                        hit.invariant
                    )
                }
                None => format!(
                    " not caught in {} |",
                    plural(seeds.end - seeds.start, "seed")
                ),
            };
            row.push_str(&cell);
        }
        let stops = scenarios_stopped(bug, &scenarios);
        caught |= stops.iter().any(|stop| stop.invariant.is_some());
        let cell: Vec<String> = stops
            .iter()
            .map(|stop| match &stop.invariant {
                Some(invariant) => format!("{} (`{invariant}`)", stop.scenario),
                None => format!("{} (an expectation)", stop.scenario),
            })
            .collect();
        let cell = if cell.is_empty() {
            "none".to_owned()
        } else {
            cell.join(", ")
        };
        println!("{row} {cell} |");
        if !caught {
            uncaught.push(bug.name());
        }
    }
    println!();
    println!("wall time: {:.0} s", started.elapsed().as_secs_f64());
    if uncaught.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!("not caught: {}", uncaught.join(", "));
    ExitCode::FAILURE
}

#[cfg(feature = "catalogue")]
fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
