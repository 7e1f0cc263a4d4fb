//! The `raft-sim` command: run scenario files, explore random seeds, replay one seed, and
//! turn a run's JSON trace into an HTML viewer.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use raft_sim::explore::{run_seed, ExploreConfig, Summary};
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
    },
    /// Run one seed exactly as `explore` does.
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
    /// Log compactions allowed.
    #[arg(long, default_value_t = 0)]
    compactions: u8,
    /// Membership changes allowed (adds a spare server n<nodes+1>).
    #[arg(long, default_value_t = 0)]
    changes: u8,
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
        Command::Run { file, outputs } => run(&file, &outputs),
        Command::Explore {
            seeds,
            nodes,
            fault_ms,
        } => explore(seeds, nodes, fault_ms),
        Command::Replay {
            seed,
            nodes,
            fault_ms,
            trace,
            outputs,
        } => replay(seed, nodes, fault_ms, trace, &outputs),
        Command::Check(args) => check_command::run(&args),
        Command::Viz {
            trace,
            output,
            summary,
        } => viz_command(&trace, output.as_deref(), summary),
    }
}

fn run(file: &Path, outputs: &Outputs) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("cannot read {}: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    let (sink, buffer) = outputs.sink().unzip();
    let outcome = scenario::run_script_traced(&text, sink.map(|s| Box::new(s) as _));
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

fn replay_command(seed: u64, nodes: u64, fault_ms: u64) -> String {
    format!("cargo run -p raft-sim --release -- replay --seed {seed} --nodes {nodes} --fault-ms {fault_ms} --trace")
}

fn explore(seeds: Range<u64>, nodes: u64, fault_ms: u64) -> ExitCode {
    let config = ExploreConfig {
        fault_ms,
        ..ExploreConfig::new(nodes)
    };
    let total = seeds.end - seeds.start;
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut failed = Vec::new();
    let mut stderr = std::io::stderr();
    let mut drawn = usize::MAX;
    for seed in seeds {
        let report = run_seed(seed, &config, None);
        summary.add(&report);
        if let Some(failure) = &report.failure {
            let _ = write!(stderr, "\r\x1b[K");
            eprintln!("seed {seed} FAILED: {failure}");
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
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    for seed in failed {
        println!("replay: {}", replay_command(seed, nodes, fault_ms));
    }
    ExitCode::FAILURE
}

fn replay(seed: u64, nodes: u64, fault_ms: u64, trace: bool, outputs: &Outputs) -> ExitCode {
    let config = ExploreConfig {
        fault_ms,
        ..ExploreConfig::new(nodes)
    };
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
    let report = run_seed(seed, &config, sink);
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
