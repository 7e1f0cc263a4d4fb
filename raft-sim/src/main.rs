//! The `raft-sim` command: run scenario files, explore random seeds, replay one seed.

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use raft_sim::explore::{run_seed, ExploreConfig, Summary};
use raft_sim::scenario;

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
    Run { file: PathBuf },
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
    },
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
        Command::Run { file } => run(&file),
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
        } => replay(seed, nodes, fault_ms, trace),
    }
}

fn run(file: &PathBuf) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("cannot read {}: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    let outcome = scenario::run_script(&text);
    print!("{}", outcome.transcript);
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

fn replay(seed: u64, nodes: u64, fault_ms: u64, trace: bool) -> ExitCode {
    let config = ExploreConfig {
        fault_ms,
        ..ExploreConfig::new(nodes)
    };
    let sink: Option<Box<dyn Write>> = trace.then(|| Box::new(std::io::stdout()) as Box<dyn Write>);
    let report = run_seed(seed, &config, sink);
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
