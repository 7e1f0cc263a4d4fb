//! The `raft-net` binary: `node`, `cluster`, `client` and `bench`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use raft_net::bench::BenchArgs;
use raft_net::cli::{init_logging, run_node, runtime, shutdown_signal};
use raft_net::client::ClientArgs;
use raft_net::cluster::ClusterArgs;
use raft_net::config::NodeArgs;
use raft_net::kv::KvService;

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
        Command::Cluster(_) | Command::Client(_) => 1,
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
                println!("{}", report.render(&args));
                Ok(())
            }
        }
    })
}
