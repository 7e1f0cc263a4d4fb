//! What a binary needs to run nodes: logging, the tokio runtime, shutdown on a signal (or when
//! the launching `cluster` is gone), and [`main`]: the `node` and `cluster` subcommands of
//! `raft-net`, with the same flags, for any [`Service`].
//!
//! A service's binary is then one line:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     raft_net::cli::main(raft_net::kv::KvService::default())
//! }
//! ```

use std::error::Error;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::cluster::ClusterArgs;
use crate::config::NodeArgs;
use crate::error::NodeError;
use crate::service::Service;

/// Logs to stderr through `tracing`; `RUST_LOG` sets the filter (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// A runtime of `threads` worker threads; 1 is a single-threaded runtime.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
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
}

/// Runs one node of `service` with `args` until Ctrl-C or SIGTERM (or until the parent that
/// `--exit-with-parent` names is gone).
pub async fn run_node<S: Service>(service: S, args: NodeArgs) -> Result<(), NodeError> {
    let parent = args.exit_with_parent;
    let config = args.into_config().await?;
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = parent_gone(parent) => {
                tracing::warn!("the parent process is gone: shutting down");
            }
        }
    };
    crate::node::run_service(service, config, shutdown).await
}

#[derive(Debug, Parser)]
#[command(
    about = "A replicated service on raft-net: UDP between peers, HTTP for clients, durable storage"
)]
struct ServiceCli {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Run one node.
    Node(Box<NodeArgs>),
    /// Start N nodes on localhost as child processes; Ctrl-C stops them all.
    Cluster(ClusterArgs),
}

/// The `main` of a service's binary: `node` runs one node of `service`, `cluster` starts a local
/// cluster of this binary's nodes; both take exactly the flags of `raft-net node` and
/// `raft-net cluster`. An error is printed with its causes, and the exit code is 1.
pub fn main<S: Service>(service: S) -> ExitCode {
    let cli = ServiceCli::parse();
    init_logging();
    let threads = match &cli.command {
        ServiceCommand::Node(args) => args.threads,
        ServiceCommand::Cluster(_) => 1,
    };
    let runtime = match runtime(threads) {
        Ok(runtime) => runtime,
        Err(error) => return report(&format!("cannot start the tokio runtime: {error}")),
    };
    let result: Result<(), Box<dyn Error>> = runtime.block_on(async move {
        match cli.command {
            ServiceCommand::Node(args) => Ok(run_node(service, *args).await?),
            ServiceCommand::Cluster(args) => {
                let examples = |curl: &str, url: &str| service.examples(curl, url);
                crate::cluster::run_with_examples(args, examples, shutdown_signal()).await?;
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&causes(error.as_ref())),
    }
}

/// `error` and its sources, as `raft-net` prints them: `outer: inner: ...`.
fn causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn report(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Resolves once `parent` is no longer this process's parent (it exited and the process was
/// re-parented); never without a parent to watch.
pub async fn parent_gone(parent: Option<u32>) {
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
pub async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_prints_with_its_causes() {
        let error = NodeError::Bind {
            what: "the HTTP address",
            addr: "127.0.0.1:8000".parse().expect("an address literal"),
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "in use"),
        };
        // `Bind` shows its source in its own message already, and once more as the cause, as
        // `anyhow`'s `{:#}` prints it for `raft-net`.
        assert_eq!(
            causes(&error),
            "cannot bind the HTTP address 127.0.0.1:8000: in use: in use"
        );
    }
}
