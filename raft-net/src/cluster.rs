//! `raft-net cluster`: N nodes as child processes on localhost, for trying things out and for
//! `raft-net bench`.
//!
//! The admin routes of its nodes need a token: `cluster` generates one into
//! `<data-dir>/admin-token` (owner-only; kept across runs) and prints how to present it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};

use crate::auth::Token;
use crate::error::ConfigError;
use crate::kv::KvService;
use crate::service::Service;

/// The admin token's file in the cluster's data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// `raft-net cluster` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Node i serves HTTP on 127.0.0.1:(http-base + i - 1).
    #[arg(long, default_value_t = 8000)]
    pub http_base: u16,
    /// Node i listens for peers on 127.0.0.1:(raft-base + i - 1).
    #[arg(long, default_value_t = 9000)]
    pub raft_base: u16,
    /// Node i keeps its data in `<data-dir>/node<i>`.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Authenticate peer datagrams with a key stretched from this passphrase (passed to
    /// every node).
    #[arg(
        long,
        env = "RAFT_CLUSTER_KEY",
        hide_env_values = true,
        value_name = "PASSPHRASE"
    )]
    pub cluster_key: Option<String>,
    /// Authenticate peer datagrams with the 32-byte key in this file (passed to every node).
    #[arg(long, env = "RAFT_CLUSTER_KEY_FILE", value_name = "FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate (every node; it must name 127.0.0.1).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Flags for every node, after `--` (e.g. `-- --commit-timeout-ms 2000`).
    #[arg(last = true)]
    pub node_args: Vec<String>,
}

/// Why the cluster could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--nodes must be at least 1")]
    NoNodes,
    #[error("ports from base {base} for {nodes} nodes do not fit in 1..=65535")]
    Ports { base: u16, nodes: u16 },
    #[error("cannot find this executable to start the nodes: {0}")]
    Executable(#[source] std::io::Error),
    #[error("cannot start node {id}: {source}")]
    Spawn {
        id: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("node {id} exited with {status}; stopping the others")]
    NodeExited { id: u16, status: ExitStatus },
    #[error("waiting for node {id}: {source}")]
    Wait {
        id: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The security flags every node of a local cluster gets.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    pub cluster_key: Option<String>,
    pub cluster_key_file: Option<PathBuf>,
    pub admin_token: Option<PathBuf>,
    pub client_token: Option<PathBuf>,
    /// Certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl NodeOptions {
    fn apply(&self, command: &mut Command) {
        if let Some(key) = &self.cluster_key {
            command.env("RAFT_CLUSTER_KEY", key);
        }
        let flags = [
            ("--cluster-key-file", &self.cluster_key_file),
            ("--admin-token", &self.admin_token),
            ("--client-token", &self.client_token),
        ];
        for (flag, path) in flags {
            if let Some(path) = path {
                command.arg(flag).arg(path);
            }
        }
        if let Some((cert, key)) = &self.tls {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
        }
    }

    /// `https` with TLS, else `http`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// One planned node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: u16,
    pub raft_addr: String,
    pub http_addr: String,
    pub data_dir: PathBuf,
}

impl NodeSpec {
    /// The node's URL with `scheme` (`http` or `https`).
    #[must_use]
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.http_addr)
    }

    fn peer_flag(&self) -> String {
        format!("{}={}@{}", self.id, self.raft_addr, self.http_addr)
    }
}

/// The nodes `args` describe.
pub fn plan(args: &ClusterArgs) -> Result<Vec<NodeSpec>, ClusterError> {
    if args.nodes == 0 {
        return Err(ClusterError::NoNodes);
    }
    for base in [args.http_base, args.raft_base] {
        if base == 0 || base.checked_add(args.nodes - 1).is_none() {
            return Err(ClusterError::Ports {
                base,
                nodes: args.nodes,
            });
        }
    }
    Ok((1..=args.nodes)
        .map(|id| NodeSpec {
            id,
            raft_addr: format!("127.0.0.1:{}", args.raft_base + id - 1),
            http_addr: format!("127.0.0.1:{}", args.http_base + id - 1),
            data_dir: args.data_dir.join(format!("node{id}")),
        })
        .collect())
}

/// Running child processes; killed when dropped.
#[derive(Debug)]
pub struct LocalCluster {
    pub specs: Vec<NodeSpec>,
    children: Vec<(u16, Child)>,
}

impl LocalCluster {
    /// Starts every node of `specs` with `exe` (this binary). `options` and the `extra` flags
    /// go to every node.
    pub fn start(
        exe: &Path,
        specs: Vec<NodeSpec>,
        options: &NodeOptions,
        extra: &[String],
        quiet: bool,
    ) -> Result<LocalCluster, ClusterError> {
        let mut children = Vec::new();
        for spec in &specs {
            let mut command = Command::new(exe);
            command
                .arg("node")
                .args(["--id", &spec.id.to_string()])
                .args(["--raft-addr", &spec.raft_addr])
                .args(["--http-addr", &spec.http_addr])
                .arg("--data-dir")
                .arg(&spec.data_dir)
                .arg("--admin")
                .args(["--exit-with-parent", &std::process::id().to_string()]);
            options.apply(&mut command);
            command.args(extra).kill_on_drop(true).stdin(Stdio::null());
            for peer in specs.iter().filter(|peer| peer.id != spec.id) {
                command.args(["--peer", &peer.peer_flag()]);
            }
            if quiet {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
            let child = command.spawn().map_err(|source| ClusterError::Spawn {
                id: spec.id,
                source,
            })?;
            children.push((spec.id, child));
        }
        Ok(LocalCluster { specs, children })
    }

    /// Each running node's id and process id.
    #[must_use]
    pub fn pids(&self) -> Vec<(u16, u32)> {
        self.children
            .iter()
            .filter_map(|(id, child)| Some((*id, child.id()?)))
            .collect()
    }

    /// Resolves when any node exits, with its id and status.
    pub async fn any_exit(&mut self) -> Result<(u16, ExitStatus), ClusterError> {
        loop {
            for (id, child) in &mut self.children {
                match child.try_wait() {
                    Ok(Some(status)) => return Ok((*id, status)),
                    Ok(None) => {}
                    Err(source) => return Err(ClusterError::Wait { id: *id, source }),
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Kills every node and waits for it.
    pub async fn stop(mut self) {
        for (_, child) in &mut self.children {
            // Already exited is fine; the node's durable state is on disk either way.
            let _ = child.start_kill();
        }
        for (_, child) in &mut self.children {
            let _ = child.wait().await;
        }
    }
}

/// `raft-net cluster`: start, print how to use it (the key-value routes among it), stop
/// everything on `shutdown`.
pub async fn run(
    args: ClusterArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClusterError> {
    let kv = KvService::default();
    run_with_examples(args, |curl, url| kv.examples(curl, url), shutdown).await
}

/// [`run`] for any service: `examples(curl, url)` are the lines that show its own routes.
pub async fn run_with_examples(
    args: ClusterArgs,
    examples: impl Fn(&str, &str) -> Vec<String>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClusterError> {
    let exe = std::env::current_exe().map_err(ClusterError::Executable)?;
    let specs = plan(&args)?;
    let token_path = args.data_dir.join(ADMIN_TOKEN_FILE);
    Token::load_or_generate(&token_path)?;
    let options = NodeOptions {
        cluster_key: args.cluster_key.clone().filter(|key| !key.is_empty()),
        cluster_key_file: args.cluster_key_file.clone(),
        admin_token: Some(token_path.clone()),
        client_token: None,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
    };
    let mut cluster = LocalCluster::start(&exe, specs, &options, &args.node_args, false)?;
    print_usage(
        &cluster.specs,
        &args.data_dir,
        &token_path,
        &options,
        &examples,
    );
    let result = tokio::select! {
        () = shutdown => Ok(()),
        exited = cluster.any_exit() => match exited {
            Ok((id, status)) => Err(ClusterError::NodeExited { id, status }),
            Err(error) => Err(error),
        },
    };
    eprintln!("stopping {} nodes", cluster.specs.len());
    cluster.stop().await;
    result
}

fn print_usage(
    specs: &[NodeSpec],
    data_dir: &Path,
    token: &Path,
    options: &NodeOptions,
    examples: &dyn Fn(&str, &str) -> Vec<String>,
) {
    println!(
        "raft-net cluster: {} nodes, data in {}",
        specs.len(),
        data_dir.display()
    );
    let scheme = options.scheme();
    for spec in specs {
        println!(
            "  node {}  {}  (raft {})",
            spec.id,
            spec.url(scheme),
            spec.raft_addr
        );
    }
    let first = specs
        .first()
        .map(|spec| spec.url(scheme))
        .unwrap_or_default();
    let curl = match &options.tls {
        Some((cert, _)) => format!("curl --cacert {}", cert.display()),
        None => "curl".to_string(),
    };
    println!();
    println!("Try (followers redirect to the leader; -L follows):");
    println!("  {curl} -s {first}/api/v1/state");
    for line in examples(&curl, &first) {
        println!("  {line}");
    }
    println!("  {curl} -s {first}/metrics");
    println!();
    println!(
        "Admin routes (membership, leadership, snapshots, isolate/heal) need the token in {}:",
        token.display()
    );
    println!(
        "  {curl} -s -X POST -H \"Authorization: Bearer $(cat {})\" {first}/api/v1/admin/isolate   # and /heal",
        token.display()
    );
    let ca = match &options.tls {
        Some((cert, _)) => format!(" --ca-cert {}", cert.display()),
        None => String::new(),
    };
    println!(
        "  raft-net client --server {first}{ca} --admin-token {} members",
        token.display()
    );
    println!("Ctrl-C stops every node.");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, base: u16) -> ClusterArgs {
        ClusterArgs {
            nodes,
            http_base: base,
            raft_base: 9000,
            data_dir: PathBuf::from("d"),
            cluster_key: None,
            cluster_key_file: None,
            tls_cert: None,
            tls_key: None,
            node_args: Vec::new(),
        }
    }

    #[test]
    fn plans_ports_and_dirs() {
        let specs = plan(&args(3, 8000)).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[2].http_addr, "127.0.0.1:8002");
        assert_eq!(specs[2].raft_addr, "127.0.0.1:9002");
        assert_eq!(specs[2].data_dir, PathBuf::from("d/node3"));
        assert_eq!(specs[0].peer_flag(), "1=127.0.0.1:9000@127.0.0.1:8000");
    }

    #[test]
    fn refuses_impossible_plans() {
        assert!(matches!(plan(&args(0, 8000)), Err(ClusterError::NoNodes)));
        assert!(matches!(
            plan(&args(3, 65534)),
            Err(ClusterError::Ports { .. })
        ));
    }
}
