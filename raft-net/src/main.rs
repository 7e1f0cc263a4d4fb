//! The `raft-net` binary: `node`, `cluster`, `client` and `bench`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use raft_net::backup::SnapshotArgs;
use raft_net::bench::BenchArgs;
use raft_net::cli::{init_logging, run_node, runtime, shutdown_signal};
use raft_net::client::ClientArgs;
use raft_net::cluster::ClusterArgs;
use raft_net::config::NodeArgs;
use raft_net::kv::KvService;
use raft_net::recover::RecoverArgs;

/// jemalloc instead of glibc's malloc. A write's request passes through allocations of more
/// than 1 KiB (hyper's 8 KiB read buffer, the router's boxed handler future), which glibc
/// serves from its bins rather than its per-thread cache, often consolidating the freed small
/// chunks first: glibc's malloc and free were 17% of the leader's driver thread at 100 clients
/// (`perf record -e cpu-clock -t <tid>`). raft-net/README.md has the measurements.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "raft-net",
    version,
    about = "A Raft node: UDP between peers, HTTP for clients, durable storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node.
    Node(Box<NodeArgs>),
    /// Start N nodes on localhost as child processes; Ctrl-C stops them all.
    Cluster(ClusterArgs),
    /// Send one request to a cluster, following leader redirects; prints JSON or a table.
    Client(ClientArgs),
    /// Measure committed writes/s and latency against a local (or --target) cluster.
    Bench(BenchArgs),
    /// Rewrite a stopped node's data dir after a lost quorum: --force-new-cluster makes it the
    /// only voter of a new cluster (--dry-run shows what it keeps).
    Recover(RecoverArgs),
    /// Backups: `save FILE` from a running cluster, `restore FILE --data-dir D` to seed a new
    /// cluster.
    Snapshot(SnapshotArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let threads = match &cli.command {
        Command::Node(args) => args.threads,
        Command::Bench(args) => args.threads,
        Command::Recover(args) => return recover(args),
        Command::Cluster(_) | Command::Client(_) | Command::Snapshot(_) => 1,
    };
    let runtime = runtime(threads).context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => {
                run_node(KvService::default(), *args).await?;
                Ok(())
            }
            Command::Cluster(args) => {
                raft_net::cluster::run(args, shutdown_signal()).await?;
                Ok(())
            }
            Command::Client(args) => {
                raft_net::client::run(&args, &mut std::io::stdout()).await?;
                Ok(())
            }
            Command::Bench(args) => {
                let report = raft_net::bench::run(&args).await?;
                print_out(&report.render(&args))?;
                Ok(())
            }
            Command::Snapshot(args) => {
                let value = raft_net::backup::run(&args, now_micros()).await?;
                print_out(&serde_json::to_string_pretty(&value)?)?;
                Ok(())
            }
            Command::Recover(_) => Ok(()),
        }
    })
}

/// `raft-net recover`: the warning on stderr before anything changes, the report on stdout.
fn recover(args: &RecoverArgs) -> anyhow::Result<()> {
    let plan = raft_net::recover::run(args, now_micros(), |warning| eprintln!("{warning}"))?;
    print_out(&serde_json::to_string_pretty(
        &plan.report(args.dry_run, &args.data_dir),
    )?)?;
    if args.dry_run {
        eprintln!("dry run: nothing was changed");
    } else {
        eprintln!(
            "done: start the node again without --peer; it is the only voter of cluster {}",
            plan.cluster_id_after
        );
    }
    Ok(())
}

/// Writes `text` and a newline to stdout. A reader that went away (`| head`) is no error: the
/// output was for it alone.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// The wall clock in microseconds since the Unix epoch (0 before it).
fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}
