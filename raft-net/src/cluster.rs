//! `raft-net cluster`: N nodes as child processes on localhost, for trying things out and for
//! `raft-net bench`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};

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
    /// Node i keeps its data in <data-dir>/node<i>.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Authenticate peer datagrams with this key (passed to every node).
    #[arg(long, env = "RAFT_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,
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
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
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
    /// Starts every node of `specs` with `exe` (this binary). `extra` flags go to every node.
    pub fn start(
        exe: &Path,
        specs: Vec<NodeSpec>,
        cluster_key: Option<&str>,
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
                .args(["--exit-with-parent", &std::process::id().to_string()])
                .args(extra)
                .kill_on_drop(true)
                .stdin(Stdio::null());
            for peer in specs.iter().filter(|peer| peer.id != spec.id) {
                command.args(["--peer", &peer.peer_flag()]);
            }
            if let Some(key) = cluster_key {
                command.env("RAFT_CLUSTER_KEY", key);
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

/// `raft-net cluster`: start, print how to use it, stop everything on `shutdown`.
pub async fn run(
    args: ClusterArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClusterError> {
    let exe = std::env::current_exe().map_err(ClusterError::Executable)?;
    let specs = plan(&args)?;
    let mut cluster = LocalCluster::start(
        &exe,
        specs,
        args.cluster_key.as_deref(),
        &args.node_args,
        false,
    )?;
    print_usage(&cluster.specs, &args.data_dir);
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

fn print_usage(specs: &[NodeSpec], data_dir: &Path) {
    println!(
        "raft-net cluster: {} nodes, data in {}",
        specs.len(),
        data_dir.display()
    );
    for spec in specs {
        println!(
            "  node {}  {}  (raft {})",
            spec.id,
            spec.url(),
            spec.raft_addr
        );
    }
    let first = specs.first().map(NodeSpec::url).unwrap_or_default();
    println!();
    println!("Try (followers redirect to the leader; -L follows):");
    println!("  curl -s {first}/api/v1/state");
    println!("  curl -sL -X POST {first}/api/v1/append -H 'Content-Type: application/json' -d '{{\"command\":\"msg1\"}}'");
    println!("  curl -sL -X PUT {first}/api/v1/kv/greeting -d 'hello'");
    println!("  curl -sL {first}/api/v1/kv/greeting");
    println!("  curl -s -X POST {first}/api/v1/admin/isolate   # and /heal");
    println!("  curl -s {first}/metrics");
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
