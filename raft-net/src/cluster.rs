//! `raft-net cluster`: N nodes as child processes on localhost, for trying things out and for
//! `raft-net bench`.
//!
//! The admin routes of its nodes need a token: `cluster` generates one into
//! `<data-dir>/admin-token` (owner-only; kept across runs) and prints how to present it.
//!
//! It also serves a small launcher API on 127.0.0.1 (see [`crate::launcher`]) through which
//! the dashboard stops (SIGKILL) and restarts the nodes it started. A node stopped that way is
//! not a node that exited: the others keep running.
//!
//! Its nodes' stdout and stderr come out on its own, every line prefixed with the node's id
//! (`n2 | ...`), so the interleaved logs say who wrote what; a node run alone logs as before.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

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
    /// The launcher API (stop and restart nodes; for the dashboard) listens on
    /// 127.0.0.1:PORT; 0 (the default) picks a free one. Its URL is printed and given to the
    /// nodes, whose dashboards use it.
    #[arg(long, default_value_t = 0)]
    pub launcher_port: u16,
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
    #[error("cannot listen for the launcher API on {addr}: {source} (choose another --launcher-port, or 0 for a free one)")]
    Launcher {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no node {0} in this cluster")]
    UnknownNode(u16),
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
    /// The launcher's URL, for the nodes' dashboards.
    pub launcher_url: Option<String>,
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
        if let Some(url) = &self.launcher_url {
            command.args(["--launcher-url", url]);
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
    exe: PathBuf,
    options: NodeOptions,
    extra: Vec<String>,
    quiet: bool,
    /// One per spec, in the same order; `None` while the node is stopped on request.
    children: Vec<Option<Running>>,
}

/// A started node: its process and the tasks copying its output, prefixed, to ours.
#[derive(Debug)]
struct Running {
    child: Child,
    output: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for the process, then for the last of its output.
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        // Its pipes reach their end once it is gone: every line it wrote gets out.
        for task in self.output.drain(..) {
            let _ = task.await;
        }
        status
    }
}

/// A node of a [`LocalCluster`] as the launcher reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LaunchedNode {
    pub id: u16,
    pub http_addr: String,
    pub raft_addr: String,
    /// False once stopped through the launcher (until restarted).
    pub running: bool,
    pub pid: Option<u32>,
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
        let mut cluster = LocalCluster {
            children: Vec::with_capacity(specs.len()),
            specs,
            exe: exe.to_path_buf(),
            options: options.clone(),
            extra: extra.to_vec(),
            quiet,
        };
        for position in 0..cluster.specs.len() {
            let child = cluster.spawn(position)?;
            cluster.children.push(Some(child));
        }
        Ok(cluster)
    }

    fn spawn(&self, position: usize) -> Result<Running, ClusterError> {
        let spec = &self.specs[position];
        let mut command = Command::new(&self.exe);
        command
            .arg("node")
            .args(["--id", &spec.id.to_string()])
            .args(["--raft-addr", &spec.raft_addr])
            .args(["--http-addr", &spec.http_addr])
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .arg("--admin")
            .args(["--exit-with-parent", &std::process::id().to_string()]);
        self.options.apply(&mut command);
        command
            .args(&self.extra)
            .kill_on_drop(true)
            .stdin(Stdio::null());
        for peer in self.specs.iter().filter(|peer| peer.id != spec.id) {
            command.args(["--peer", &peer.peer_flag()]);
        }
        if self.quiet {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = command.spawn().map_err(|source| ClusterError::Spawn {
            id: spec.id,
            source,
        })?;
        let prefix = self.prefix(spec.id);
        let mut output = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            output.push(copy_lines(stdout, prefix.clone(), std::io::stdout()));
        }
        if let Some(stderr) = child.stderr.take() {
            output.push(copy_lines(stderr, prefix, std::io::stderr()));
        }
        Ok(Running { child, output })
    }

    /// `n7 | `, the id padded to the widest id so the lines' own text stays aligned.
    fn prefix(&self, id: u16) -> Vec<u8> {
        let widest = self.specs.iter().map(|spec| spec.id).max().unwrap_or(id);
        let width = widest.to_string().len();
        format!("n{id:<width$} | ").into_bytes()
    }

    fn position(&self, id: u16) -> Result<usize, ClusterError> {
        self.specs
            .iter()
            .position(|spec| spec.id == id)
            .ok_or(ClusterError::UnknownNode(id))
    }

    /// Each running node's id and process id.
    #[must_use]
    pub fn pids(&self) -> Vec<(u16, u32)> {
        self.specs
            .iter()
            .zip(&self.children)
            .filter_map(|(spec, running)| Some((spec.id, running.as_ref()?.child.id()?)))
            .collect()
    }

    /// Every node, running or stopped.
    #[must_use]
    pub fn nodes(&self) -> Vec<LaunchedNode> {
        self.specs
            .iter()
            .zip(&self.children)
            .map(|(spec, running)| LaunchedNode {
                id: spec.id,
                http_addr: spec.http_addr.clone(),
                raft_addr: spec.raft_addr.clone(),
                running: running.is_some(),
                pid: running.as_ref().and_then(|running| running.child.id()),
            })
            .collect()
    }

    /// Kills node `id` with SIGKILL (no chance to clean up, as in a crash) and waits for it.
    /// It stays stopped, without stopping the cluster, until [`LocalCluster::restart`].
    pub async fn kill(&mut self, id: u16) -> Result<LaunchedNode, ClusterError> {
        let position = self.position(id)?;
        if let Some(mut running) = self.children[position].take() {
            // Already exited is fine: it is stopped either way.
            let _ = running.child.start_kill();
            running
                .wait()
                .await
                .map_err(|source| ClusterError::Wait { id, source })?;
        }
        Ok(self.nodes().swap_remove(position))
    }

    /// Starts node `id` again from its data dir (killing it first if it is running).
    pub async fn restart(&mut self, id: u16) -> Result<LaunchedNode, ClusterError> {
        let position = self.position(id)?;
        self.kill(id).await?;
        let child = self.spawn(position)?;
        self.children[position] = Some(child);
        Ok(self.nodes().swap_remove(position))
    }

    /// A node that exited on its own (not stopped through the launcher), with its status.
    pub fn exited(&mut self) -> Result<Option<(u16, ExitStatus)>, ClusterError> {
        for (spec, running) in self.specs.iter().zip(&mut self.children) {
            let Some(running) = running else { continue };
            match running.child.try_wait() {
                Ok(Some(status)) => return Ok(Some((spec.id, status))),
                Ok(None) => {}
                Err(source) => {
                    return Err(ClusterError::Wait {
                        id: spec.id,
                        source,
                    })
                }
            }
        }
        Ok(None)
    }

    /// Resolves when any node exits on its own, with its id and status.
    pub async fn any_exit(&mut self) -> Result<(u16, ExitStatus), ClusterError> {
        loop {
            if let Some(exited) = self.exited()? {
                return Ok(exited);
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Kills every node and waits for it (and the last of its output).
    pub async fn stop(mut self) {
        for running in self.children.iter_mut().flatten() {
            // Already exited is fine; the node's durable state is on disk either way.
            let _ = running.child.start_kill();
        }
        for running in self.children.iter_mut().flatten() {
            let _ = running.wait().await;
        }
    }
}

/// Copies every line of a node's `pipe` to `out` (our stdout or stderr) behind `prefix`,
/// until the pipe ends.
fn copy_lines<R, W>(pipe: R, prefix: Vec<u8>, out: W) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: Write + Send + 'static,
{
    tokio::spawn(async move {
        let _ = prefix_lines(BufReader::new(pipe), &prefix, out).await;
    })
}

/// Writes each line of `input` to `out` behind `prefix`, one `write_all` per line (which
/// `Stdout` and `Stderr` make under their lock) so that lines of different nodes never mix; a
/// last line without its newline gets one. Bytes go through as they are (a log line need not be
/// UTF-8). Gives up, dropping the rest, once writing fails (no one reads our output any more).
async fn prefix_lines<R, W>(mut input: R, prefix: &[u8], mut out: W) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        line.extend_from_slice(prefix);
        if input.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        out.write_all(&line)?;
        out.flush()?;
    }
}

/// How often `cluster` looks for nodes that exited.
const EXIT_POLL: std::time::Duration = std::time::Duration::from_millis(200);

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
    let token = Token::load_or_generate(&token_path)?;
    let launcher_addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.launcher_port));
    let listener = tokio::net::TcpListener::bind(launcher_addr)
        .await
        .map_err(|source| ClusterError::Launcher {
            addr: launcher_addr,
            source,
        })?;
    let launcher_addr = listener
        .local_addr()
        .map_err(|source| ClusterError::Launcher {
            addr: launcher_addr,
            source,
        })?;
    let options = NodeOptions {
        cluster_key: args.cluster_key.clone().filter(|key| !key.is_empty()),
        cluster_key_file: args.cluster_key_file.clone(),
        admin_token: Some(token_path.clone()),
        client_token: None,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        launcher_url: Some(format!("http://{launcher_addr}")),
    };
    let cluster = LocalCluster::start(&exe, specs, &options, &args.node_args, false)?;
    print_usage(
        &cluster.specs,
        &args.data_dir,
        &token_path,
        &options,
        &examples,
    );
    let scheme = options.scheme();
    let origins = cluster.specs.iter().map(|spec| spec.url(scheme)).collect();
    let cluster = std::sync::Arc::new(tokio::sync::Mutex::new(cluster));
    let (stop_launcher, launcher_stopped) = tokio::sync::oneshot::channel::<()>();
    let launcher = tokio::spawn(crate::launcher::serve(
        listener,
        std::sync::Arc::clone(&cluster),
        token,
        origins,
        async move {
            let _ = launcher_stopped.await;
        },
    ));
    let result = tokio::select! {
        () = shutdown => Ok(()),
        exited = watch_exits(&cluster) => match exited {
            Ok((id, status)) => Err(ClusterError::NodeExited { id, status }),
            Err(error) => Err(error),
        },
    };
    let _ = stop_launcher.send(());
    if let Ok(Err(error)) = launcher.await {
        eprintln!("the launcher API stopped with an error: {error}");
    }
    let cluster = std::sync::Arc::try_unwrap(cluster)
        .map(tokio::sync::Mutex::into_inner)
        .ok();
    eprintln!("stopping the nodes");
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    result
}

/// Resolves when a node exits on its own; the lock is held only while looking.
async fn watch_exits(
    cluster: &tokio::sync::Mutex<LocalCluster>,
) -> Result<(u16, ExitStatus), ClusterError> {
    loop {
        if let Some(exited) = cluster.lock().await.exited()? {
            return Ok(exited);
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
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
    println!();
    println!("Dashboard (every node serves it): {first}/ui");
    println!(
        "  its buttons need the admin token: paste the output of `cat {}` into the page",
        token.display()
    );
    if let Some(launcher) = &options.launcher_url {
        println!("  stop (SIGKILL) and restart go through this launcher: {launcher}");
    }
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
            launcher_port: 0,
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

    #[tokio::test]
    async fn every_line_gets_the_prefix_and_none_is_lost() {
        let mut input = Vec::new();
        for i in 0..1000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        input.extend_from_slice(b"\xff not UTF-8\n\nno newline at the end");
        let mut writes = Writes::default();
        prefix_lines(&input[..], b"n2 | ", &mut writes)
            .await
            .unwrap();
        let mut expected: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("n2 | line {i}\n").into_bytes())
            .collect();
        expected.extend([
            b"n2 | \xff not UTF-8\n".to_vec(),
            b"n2 | \n".to_vec(),
            b"n2 | no newline at the end\n".to_vec(),
        ]);
        // One write per line, the whole line.
        assert_eq!(writes.0, expected);
    }

    /// Every `write` call's bytes.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn prefixes_align_to_the_widest_id() {
        let cluster = |nodes| LocalCluster {
            specs: plan(&args(nodes, 8000)).unwrap(),
            exe: PathBuf::new(),
            options: NodeOptions::default(),
            extra: Vec::new(),
            quiet: true,
            children: Vec::new(),
        };
        assert_eq!(cluster(3).prefix(2), b"n2 | ");
        assert_eq!(cluster(12).prefix(2), b"n2  | ");
        assert_eq!(cluster(12).prefix(12), b"n12 | ");
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
