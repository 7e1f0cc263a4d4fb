//! The `raft-net` binary: `node`, `cluster`, `client` and `bench`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use raft_net::backup::SnapshotArgs;
use raft_net::bench::BenchArgs;
use raft_net::client::ClientArgs;
use raft_net::cluster::ClusterArgs;
use raft_net::config::NodeArgs;
use raft_net::recover::RecoverArgs;
use tracing_subscriber::EnvFilter;

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
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
    let runtime = if threads <= 1 {
        // One thread for the driver and HTTP: on a small machine the hand-offs between worker
        // threads cost more than they buy. The storage thread is separate either way.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => {
                let parent = args.exit_with_parent;
                let config = (*args).into_config().await?;
                let shutdown = async move {
                    tokio::select! {
                        () = shutdown_signal() => {}
                        () = parent_gone(parent) => {
                            tracing::warn!("the parent process is gone: shutting down");
                        }
                    }
                };
                raft_net::node::run(config, shutdown).await?;
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
                println!("{}", report.render(&args));
                Ok(())
            }
            Command::Snapshot(args) => {
                let value = raft_net::backup::run(&args, now_micros()).await?;
                println!("{}", serde_json::to_string_pretty(&value)?);
                Ok(())
            }
            Command::Recover(_) => Ok(()),
        }
    })
}

/// `raft-net recover`: the warning on stderr before anything changes, the report on stdout.
fn recover(args: &RecoverArgs) -> anyhow::Result<()> {
    let plan = raft_net::recover::run(args, now_micros(), |warning| eprintln!("{warning}"))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&plan.report(args.dry_run, &args.data_dir))?
    );
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

/// The wall clock in microseconds since the Unix epoch (0 before it).
fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Resolves once `parent` is no longer this process's parent (it exited and the process was
/// re-parented); never without a parent to watch.
async fn parent_gone(parent: Option<u32>) {
    #[cfg(unix)]
    if let Some(parent) = parent {
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        return;
    }
    let _ = parent;
    std::future::pending::<()>().await;
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
