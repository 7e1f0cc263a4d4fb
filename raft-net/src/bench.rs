//! `raft-net bench`: a load generator. It starts a local cluster (or uses `--target`), finds the
//! leader, and runs N keep-alive HTTP clients that each have one request in flight: PUTs of one
//! value (`--workload write`; every write counted was answered 200, i.e. committed on a majority
//! with fsync on), or linearizable GETs of keys it wrote first (`--workload read`).
//!
//! The clients speak HTTP/1.1 through hyper's connection API over plain tokio sockets, or over
//! rustls for an `https://` cluster, and poll each connection in the task that uses it: the
//! load generator shares the machine with the nodes it measures, so every microsecond it
//! spends is taken from them. With `--http2` they share `--connections` HTTP/2 connections
//! instead (prior knowledge, or ALPN on TLS), as etcd's clients share gRPC connections: ten
//! clients per connection unless told. It reports its own CPU time, and reads the nodes' `/metrics`
//! before and after the measured phase to report how many log entries each `fdatasync`
//! carried (writes) or how many datagrams each read cost (reads).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderValue, AUTHORIZATION, HOST};
use hyper::http::uri::{Authority, Scheme};
use hyper::{Method, Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::auth::Token;
use crate::cluster::{plan, ClusterArgs, ClusterError, LocalCluster, NodeOptions};
use crate::config::HttpLimits;
use crate::error::ConfigError;

/// How long to wait for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(15);
/// Latencies above this are clamped in the histogram (microseconds).
const LATENCY_MICROS_MAX: u64 = 120_000_000;
/// Clients per HTTP/2 connection unless `--connections` says otherwise: the share of etcd's
/// benchmark (`--clients 100 --conns 10`).
const CLIENTS_PER_H2_CONNECTION: usize = 10;

/// What the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// PUT a new key per request.
    Write,
    /// Linearizable GETs of the `--keys` keys written before the warm-up.
    Read,
}

impl Workload {
    fn noun(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::Read => "read",
        }
    }
}

/// `raft-net bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Nodes in the local cluster (ignored with --target).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Requests in total (measured).
    #[arg(long, default_value_t = 20_000)]
    pub ops: usize,
    /// Requests before the measured ones (connections, allocator and page cache warm up).
    #[arg(long, default_value_t = 2_000)]
    pub warmup: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    pub value_bytes: usize,
    /// `write`: each request PUTs a new key; `read`: each one is a linearizable GET of one of
    /// the `--keys` keys, written before the warm-up.
    #[arg(long, value_enum, default_value_t = Workload::Write)]
    pub workload: Workload,
    /// Keys written before a read workload (the reads ask them in turn).
    #[arg(long, default_value_t = 1_000)]
    pub keys: usize,
    /// Use a running cluster at this URL (any member) instead of starting one.
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, default_value_t = 18_000)]
    pub http_base: u16,
    #[arg(long, default_value_t = 19_000)]
    pub raft_base: u16,
    /// Data dir of the local cluster (a fresh temporary one by default, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Speak HTTP/2 (prior knowledge on http://, ALPN on https://), the clients sharing
    /// `--connections` connections.
    #[arg(long)]
    pub http2: bool,
    /// HTTP/2 connections the clients share, in turn (default: one per ten clients).
    #[arg(long, requires = "http2")]
    pub connections: Option<usize>,
    /// Runtime threads of the load generator (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Start the local cluster with HTTPS, this PEM certificate (it must name 127.0.0.1)...
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// ...and this key.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Trust this PEM certificate for an https:// --target (default: --tls-cert).
    #[arg(long, env = "RAFT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Present the token in FILE with every request (and require it on a local cluster).
    #[arg(long, env = "RAFT_CLIENT_TOKEN_FILE", value_name = "FILE")]
    pub client_token: Option<PathBuf>,
    /// Flags for every node of the local cluster, after `--`.
    #[arg(last = true)]
    pub node_args: Vec<String>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("no leader elected within {0:?}")]
    NoLeader(Duration),
    #[error("--clients, --ops and --connections must be at least 1")]
    Empty,
    #[error("--workload read needs --keys of at least 1")]
    NoKeys,
    #[error("histogram: {0}")]
    Histogram(String),
    #[error("the leader's URL {0} is not http://HOST:PORT or https://HOST:PORT")]
    BadUrl(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to the leader at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{failed} of the {keys} writes of the keys to read failed")]
    Preload { failed: u64, keys: usize },
    #[error("cannot start a node on {addr} (choose other --http-base and --raft-base)")]
    PortInUse {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One node's counters (from its `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Log entries written to the WAL.
    pub entries: u64,
    /// `fdatasync` calls of group commits.
    pub fsyncs: u64,
    /// Datagrams sent to peers.
    pub datagrams: u64,
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// Requests answered as they should be: 200 (and for a read, the whole value).
    pub answered: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub histogram: Histogram<u64>,
    /// CPU seconds (user, system) this process used during the measured phase.
    pub cpu: (f64, f64),
    /// Per node URL: its counters' growth over the measured phase, when `/metrics` answered.
    pub counters: BTreeMap<String, NodeCounters>,
    /// Per node of a local cluster: CPU seconds used during the measured phase.
    pub node_cpu: Vec<(u16, f64)>,
    /// The id of the node that was loaded, when it is one of `node_cpu`'s.
    pub leader: Option<u16>,
}

impl Report {
    /// Answered requests (writes or reads) per second.
    #[must_use]
    pub fn per_second(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The summary printed at the end.
    #[must_use]
    pub fn render(&self, args: &BenchArgs) -> String {
        use std::fmt::Write;
        let ms = |quantile: f64| self.histogram.value_at_quantile(quantile) as f64 / 1000.0;
        let noun = self.workload.noun();
        let (asked, done) = match self.workload {
            Workload::Write => (format!("writes of {} bytes", args.value_bytes), "committed"),
            Workload::Read => (
                format!(
                    "linearizable reads of {} keys of {} bytes",
                    args.keys, args.value_bytes
                ),
                "answered",
            ),
        };
        let mut out = format!(
            "{} clients, {} {asked} (after {} warm-up {noun}s): {} {done} in {:.2} s = {:.0} {noun}s/s ({} errors)\n",
            args.clients,
            args.ops,
            args.warmup,
            self.answered,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.errors,
        );
        let _ = write!(
            out,
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             load generator CPU: {:.2} s user + {:.2} s system = {:.1} us per {noun}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            self.histogram.max() as f64 / 1000.0,
            self.cpu.0,
            self.cpu.1,
            (self.cpu.0 + self.cpu.1) * 1e6 / (self.answered.max(1) as f64),
        );
        for (url, counters) in &self.counters {
            match self.workload {
                Workload::Write => {
                    let per_fsync = counters.entries as f64 / counters.fsyncs.max(1) as f64;
                    let _ = write!(
                        out,
                        "\n{url}: {} entries in {} fsyncs = {per_fsync:.1} entries per fsync",
                        counters.entries, counters.fsyncs
                    );
                }
                Workload::Read => {
                    let per_read = counters.datagrams as f64 / self.answered.max(1) as f64;
                    let _ = write!(
                        out,
                        "\n{url}: {} datagrams sent = {per_read:.2} per read, {} log entries written",
                        counters.datagrams, counters.entries
                    );
                }
            }
        }
        if !self.node_cpu.is_empty() {
            let per_op = |seconds: f64| seconds * 1e6 / self.answered.max(1) as f64;
            let nodes: Vec<String> = self
                .node_cpu
                .iter()
                .map(|&(id, seconds)| {
                    let role = if self.leader == Some(id) {
                        " (leader)"
                    } else {
                        ""
                    };
                    format!(
                        "node {id}{role} {seconds:.2} s = {:.1} us per {noun}",
                        per_op(seconds)
                    )
                })
                .collect();
            let _ = write!(out, "\nnode CPU: {}", nodes.join(", "));
        }
        if self.workload == Workload::Read {
            out.push_str(
                "\nreads: linearizable GETs (ReadIndex on the leader: the datagrams it sent per read count the heartbeats that confirmed them)",
            );
        }
        out
    }
}

/// How the clients reach the cluster: TLS trust and the token they present.
#[derive(Debug, Clone)]
struct Access {
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<Token>,
}

/// Runs the benchmark, starting and stopping a local cluster unless `--target` is given.
pub async fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    if args.clients == 0 || args.ops == 0 || args.connections == Some(0) {
        return Err(BenchError::Empty);
    }
    let ca = args.ca_cert.clone().or_else(|| args.tls_cert.clone());
    let token = args
        .client_token
        .as_deref()
        .map(Token::from_file)
        .transpose()?;
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &token {
        let value = reqwest::header::HeaderValue::from_str(&token.bearer())
            .map_err(|error| ConfigError::Tls(error.to_string()))?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = crate::tls::reqwest_builder(ca.as_deref())?
        .tcp_nodelay(true)
        .default_headers(headers)
        .build()?;
    let access = Access {
        tls: ca.as_deref().map(crate::tls::client_config).transpose()?,
        token,
    };
    if let Some(target) = &args.target {
        let leader = find_leader(&client, std::slice::from_ref(target)).await?;
        let urls = member_urls(&client, &leader, scheme_of(&leader))
            .await
            .unwrap_or_else(|| vec![leader.clone()]);
        return load(&client, &access, &leader, &urls, &[], args).await;
    }
    let (data_dir, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("raft-net-bench-{}", std::process::id())),
            true,
        ),
    };
    let specs = plan(&ClusterArgs {
        nodes: args.nodes,
        http_base: args.http_base,
        raft_base: args.raft_base,
        data_dir: data_dir.clone(),
        cluster_key: None,
        cluster_key_file: None,
        tls_cert: None,
        tls_key: None,
        launcher_port: 0,
        node_args: Vec::new(),
    })?;
    let options = NodeOptions {
        client_token: args.client_token.clone(),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        ..NodeOptions::default()
    };
    let scheme = options.scheme();
    let exe = std::env::current_exe().map_err(ClusterError::Executable)?;
    let mut node_args = args.node_args.clone();
    // The clients' connections, plus a few for status and metrics, must fit under the
    // nodes' connection limit.
    if !node_args
        .iter()
        .any(|arg| arg.starts_with("--http-connections-max"))
    {
        let limit = HttpLimits::default().connections_max.max(args.clients + 64);
        node_args.extend(["--http-connections-max".to_string(), limit.to_string()]);
    }
    // Nodes that cannot bind exit, and the bench would measure whoever holds the ports.
    ports_free(&specs)?;
    let mut cluster = LocalCluster::start(&exe, specs, &options, &node_args, true)?;
    let urls: Vec<String> = cluster.specs.iter().map(|spec| spec.url(scheme)).collect();
    let pids = cluster.pids();
    let result = match find_leader(&client, &urls).await {
        Ok(leader) => load(&client, &access, &leader, &urls, &pids, args)
            .await
            .map(|report| Report {
                leader: cluster
                    .specs
                    .iter()
                    .find(|spec| spec.url(scheme) == leader)
                    .map(|spec| spec.id),
                ..report
            }),
        Err(error) => Err(error),
    };
    let result = match cluster.exited() {
        Ok(Some((id, status))) => Err(ClusterError::NodeExited { id, status }.into()),
        Ok(None) => result,
        Err(error) => Err(error.into()),
    };
    cluster.stop().await;
    if temporary {
        std::fs::remove_dir_all(&data_dir).map_err(|source| BenchError::DataDir {
            path: data_dir,
            source,
        })?;
    }
    result
}

/// Fails when another process listens on a node's HTTP (TCP) or Raft (UDP) address.
fn ports_free(specs: &[crate::cluster::NodeSpec]) -> Result<(), BenchError> {
    for spec in specs {
        std::net::TcpListener::bind(&spec.http_addr).map_err(|source| BenchError::PortInUse {
            addr: spec.http_addr.clone(),
            source,
        })?;
        std::net::UdpSocket::bind(&spec.raft_addr).map_err(|source| BenchError::PortInUse {
            addr: spec.raft_addr.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Polls every URL's state until one reports itself leader; returns its URL.
async fn find_leader(client: &reqwest::Client, urls: &[String]) -> Result<String, BenchError> {
    let deadline = Instant::now() + LEADER_WAIT;
    while Instant::now() < deadline {
        for url in urls {
            let state = client
                .get(format!("{url}/api/v1/state?limit=0"))
                .send()
                .await;
            let Ok(response) = state else { continue };
            let Ok(state) = response.json::<Value>().await else {
                continue;
            };
            if state["state"] == "LEADER" {
                return Ok(url.clone());
            }
            if let Some(leader) = leader_url(client, url, &state, scheme_of(url)).await {
                return Ok(leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NoLeader(LEADER_WAIT))
}

/// `https` for an `https://` URL, else `http`: other members are reached the same way.
fn scheme_of(url: &str) -> &'static str {
    if url.starts_with("https://") {
        "https"
    } else {
        "http"
    }
}

async fn members(client: &reqwest::Client, url: &str) -> Option<Vec<Value>> {
    let members: Value = client
        .get(format!("{url}/api/v1/members"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    members["members"].as_array().cloned()
}

/// The leader's URL from a follower's view of the members, when it names a leader.
async fn leader_url(
    client: &reqwest::Client,
    url: &str,
    state: &Value,
    scheme: &str,
) -> Option<String> {
    let leader = state["leader"].as_u64()?;
    members(client, url)
        .await?
        .iter()
        .find(|member| member["id"].as_u64() == Some(leader))
        .and_then(|member| member["http_addr"].as_str())
        .map(|addr| format!("{scheme}://{addr}"))
}

/// Every member's URL, as the node at `url` knows them.
async fn member_urls(client: &reqwest::Client, url: &str, scheme: &str) -> Option<Vec<String>> {
    let urls: Vec<String> = members(client, url)
        .await?
        .iter()
        .filter_map(|member| member["http_addr"].as_str())
        .map(|addr| format!("{scheme}://{addr}"))
        .collect();
    (!urls.is_empty()).then_some(urls)
}

/// Reads one node's counters from its `/metrics`.
async fn node_counters(client: &reqwest::Client, url: &str) -> Option<NodeCounters> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(NodeCounters {
        entries: metric_value(&text, "raft_persist_entries_total")?,
        fsyncs: metric_value(&text, "raft_persist_batches_total")?,
        datagrams: metric_value(&text, "raft_datagrams_out_total")?,
    })
}

/// The value of an unlabelled-by-reason metric line `name{...} value` in Prometheus text.
fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = rest.strip_prefix('{').map_or(Some(rest), |labelled| {
                labelled.split_once('}').map(|(_, value)| value)
            })?;
            rest.trim().parse().ok()
        })
}

async fn all_counters(client: &reqwest::Client, urls: &[String]) -> BTreeMap<String, NodeCounters> {
    let mut counters = BTreeMap::new();
    for url in urls {
        if let Some(found) = node_counters(client, url).await {
            counters.insert(url.clone(), found);
        }
    }
    counters
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
        .map_err(|error| BenchError::Histogram(error.to_string()))
}

/// The histogram of the clients' latencies (microseconds), built once the clock is stopped.
fn histogram_of(latencies: &[Vec<u32>]) -> Result<Histogram<u64>, BenchError> {
    let mut histogram = histogram()?;
    for &micros in latencies.iter().flatten() {
        histogram.saturating_record(u64::from(micros));
    }
    Ok(histogram)
}

/// Whether an `http://host:port` or `https://host:port` URL is TLS, and its `host:port`.
fn authority(url: &str) -> Result<(bool, String), BenchError> {
    let (tls, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("http://").unwrap_or(url)),
    };
    if !tls && !url.starts_with("http://") {
        return Err(BenchError::BadUrl(url.to_string()));
    }
    let authority = Some(rest.trim_end_matches('/'))
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .ok_or_else(|| BenchError::BadUrl(url.to_string()))?;
    Ok((tls, authority.to_string()))
}

/// The warm-up, then the measured phase, with counters read around the latter.
async fn load(
    client: &reqwest::Client,
    access: &Access,
    leader: &str,
    urls: &[String],
    pids: &[(u16, u32)],
    args: &BenchArgs,
) -> Result<Report, BenchError> {
    if args.workload == Workload::Read && args.keys == 0 {
        return Err(BenchError::NoKeys);
    }
    let (tls, addr) = authority(leader)?;
    let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
    let tls = match (tls, &access.tls) {
        (false, _) => None,
        (true, Some(config)) if args.http2 => {
            let mut config = (**config).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            Some(Arc::new(config))
        }
        (true, Some(config)) => Some(Arc::clone(config)),
        (true, None) => {
            return Err(ConfigError::Tls(format!(
                "{leader} is https: give --ca-cert (or --tls-cert) to trust its certificate"
            ))
            .into())
        }
    };
    let header = |value: &str| {
        HeaderValue::from_str(value).map_err(|error| ConfigError::Tls(error.to_string()))
    };
    let http2 = if args.http2 {
        let authority = Authority::try_from(addr.as_str())
            .map_err(|_| BenchError::BadUrl(leader.to_string()))?;
        Some(H2Target { scheme, authority })
    } else {
        None
    };
    let endpoint = Arc::new(Endpoint {
        host: header(&addr)?,
        http2,
        addr,
        tls,
        authorization: access
            .token
            .as_ref()
            .map(|token| header(&token.bearer()))
            .transpose()?,
        read_buffer: answer_bytes_max(args.value_bytes),
    });
    let value = Bytes::from(bytes_value(args.value_bytes));
    let mut connections = Vec::with_capacity(args.clients);
    if args.http2 {
        let shared = args
            .connections
            .unwrap_or_else(|| args.clients.div_ceil(CLIENTS_PER_H2_CONNECTION))
            .min(args.clients);
        let mut opened = Vec::with_capacity(shared);
        for _ in 0..shared {
            opened.push(Connection::open(Arc::clone(&endpoint)).await?);
        }
        for client in 0..args.clients {
            connections.push(opened[client % shared].share());
        }
    } else {
        for _ in 0..args.clients {
            connections.push(Connection::open(Arc::clone(&endpoint)).await?);
        }
    }
    let measured = match args.workload {
        Workload::Write => Op::Put { prefix: "bench" },
        Workload::Read => {
            let (preloaded, _, failed) = phase(connections, Op::Preload, args.keys, &value).await;
            if failed > 0 {
                return Err(BenchError::Preload {
                    failed,
                    keys: args.keys,
                });
            }
            connections = preloaded;
            Op::Get { keys: args.keys }
        }
    };
    let warmup = match measured {
        Op::Put { .. } => Op::Put { prefix: "warmup" },
        other => other,
    };
    let (connections, _, _) = phase(connections, warmup, args.warmup, &value).await;
    let before = all_counters(client, urls).await;
    let nodes_before: Vec<Option<f64>> = pids.iter().map(|&(_, pid)| cpu_seconds(pid)).collect();
    let cpu_before = self_cpu();
    let started = Instant::now();
    let (_, latencies, errors) = phase(connections, measured, args.ops, &value).await;
    let elapsed = started.elapsed();
    let cpu_after = self_cpu();
    let total = histogram_of(&latencies)?;
    let node_cpu = pids
        .iter()
        .zip(nodes_before)
        .filter_map(|(&(id, pid), before)| Some((id, cpu_seconds(pid)? - before?)))
        .collect();
    let after = all_counters(client, urls).await;
    let counters = after
        .into_iter()
        .filter_map(|(url, after)| {
            let before = before.get(&url)?;
            Some((
                url,
                NodeCounters {
                    entries: after.entries.saturating_sub(before.entries),
                    fsyncs: after.fsyncs.saturating_sub(before.fsyncs),
                    datagrams: after.datagrams.saturating_sub(before.datagrams),
                },
            ))
        })
        .collect();
    let cpu = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => (after.0 - before.0, after.1 - before.1),
        _ => (f64::NAN, f64::NAN),
    };
    Ok(Report {
        workload: args.workload,
        answered: total.len(),
        errors,
        elapsed,
        histogram: total,
        cpu,
        counters,
        node_cpu,
        leader: None,
    })
}

/// What one phase's requests are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// PUT the value to a key of its own, `{prefix}-{client}-{n}`.
    Put { prefix: &'static str },
    /// PUT the value to `key-{i}`, every `i` below the phase's request count once.
    Preload,
    /// GET `key-{i}`, `i` going round the `keys` preloaded ones; answered right only with the
    /// whole value.
    Get { keys: usize },
}

impl Op {
    /// The path of the `op`-th request of client `task` of `clients`.
    fn path(self, path: &mut String, task: usize, op: usize, clients: usize) {
        use std::fmt::Write;
        path.clear();
        // Client `task` takes every `clients`-th key from `task` on, so the clients share the
        // keys without overlap.
        let _ = match self {
            Op::Put { prefix } => write!(path, "/api/v1/kv/{prefix}-{task}-{op}"),
            Op::Preload => write!(path, "/api/v1/kv/key-{}", task + op * clients),
            Op::Get { keys } => write!(path, "/api/v1/kv/key-{}", (task + op * clients) % keys),
        };
    }

    fn method(self) -> Method {
        match self {
            Op::Put { .. } | Op::Preload => Method::PUT,
            Op::Get { .. } => Method::GET,
        }
    }
}

/// Runs `ops` requests spread over the connections (one task each); gives the connections back
/// with the latencies of the requests answered right (microseconds, one list per client), and
/// the count of the others.
///
/// A client keeps a plain list rather than a histogram of its own: a histogram of this range
/// and precision is 147 KB, so 1000 clients zeroed 147 MB before their first request and
/// merged them after their last, inside the measured time (about 0.15 s of a 6 s run).
async fn phase(
    connections: Vec<Connection>,
    what: Op,
    ops: usize,
    value: &Bytes,
) -> (Vec<Connection>, Vec<Vec<u32>>, u64) {
    let clients = connections.len();
    let mut tasks = Vec::with_capacity(clients);
    for (task, mut connection) in connections.into_iter().enumerate() {
        let share = ops / clients + usize::from(task < ops % clients);
        let value = value.clone();
        let mut latencies = Vec::with_capacity(share);
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            let mut path = String::with_capacity(64);
            let (method, body, expected) = match what {
                Op::Get { .. } => (what.method(), Bytes::new(), Some(value.len())),
                _ => (what.method(), value, None),
            };
            for op in 0..share {
                what.path(&mut path, task, op, clients);
                let sent = Instant::now();
                match connection.send(method.clone(), &path, body.clone()).await {
                    Ok((200, len)) if expected.is_none_or(|expected| expected == len) => {
                        let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                        latencies.push(micros.max(1));
                    }
                    Ok(_) | Err(_) => errors += 1,
                }
            }
            (connection, latencies, errors)
        }));
    }
    let mut all = Vec::with_capacity(clients);
    let mut errors = 0;
    let mut connections = Vec::with_capacity(clients);
    for task in tasks {
        match task.await {
            Ok((connection, latencies, task_errors)) => {
                all.push(latencies);
                errors += task_errors;
                connections.push(connection);
            }
            // A panicked client task is a bug in this file; count it as an error.
            Err(_) => errors += 1,
        }
    }
    (connections, all, errors)
}

/// Where the clients send their requests.
#[derive(Debug)]
struct Endpoint {
    /// `host:port`.
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The `Host` header of every request.
    host: HeaderValue,
    /// The `Authorization` header value, with a token.
    authorization: Option<HeaderValue>,
    /// Bytes of hyper's read buffer: room for a whole answer (larger ones take more reads).
    read_buffer: usize,
    /// Set for HTTP/2: what every request's URI carries besides its path.
    http2: Option<H2Target>,
}

#[derive(Debug)]
struct H2Target {
    scheme: Scheme,
    authority: Authority,
}

/// A plain or TLS byte stream.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Io = TokioIo<Box<dyn Stream>>;

/// An open connection.
// The HTTP/1.1 connection stays inline rather than boxed: it is polled for every request.
#[allow(clippy::large_enum_variant)]
enum Link {
    /// hyper's request handle and the connection future that does the reading and writing,
    /// polled by the one client that uses it.
    Http1 {
        sender: http1::SendRequest<Full<Bytes>>,
        /// `None` once it has finished (the server closed the connection, or it failed).
        connection: Option<http1::Connection<Io, Full<Bytes>>>,
    },
    /// A handle to a connection that runs in a task of its own, shared by several clients.
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Link {
    /// Whether to drop it after a request: an HTTP/1.1 connection after any error (it may be
    /// in the middle of an answer), a shared HTTP/2 connection only once it is closed (an
    /// error of one stream leaves the others, and the connection, as they were).
    fn spent(&self, failed: bool) -> bool {
        match self {
            Link::Http1 { sender, connection } => {
                failed || connection.is_none() || sender.is_closed()
            }
            Link::Http2(sender) => sender.is_closed(),
        }
    }
}

/// A client's connection, with one request of its own in flight at a time: a keep-alive
/// HTTP/1.1 connection of its own, or a share of an HTTP/2 one.
struct Connection {
    endpoint: Arc<Endpoint>,
    link: Option<Link>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.endpoint.addr)
            .field("connected", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection {
    async fn open(endpoint: Arc<Endpoint>) -> Result<Connection, BenchError> {
        let mut connection = Connection {
            endpoint,
            link: None,
        };
        connection.link =
            Some(
                connect(&connection.endpoint)
                    .await
                    .map_err(|source| BenchError::Connect {
                        addr: connection.endpoint.addr.clone(),
                        source,
                    })?,
            );
        Ok(connection)
    }

    /// Another client of the same HTTP/2 connection (of a new one if this one has none).
    fn share(&self) -> Connection {
        let link = match &self.link {
            Some(Link::Http2(sender)) => Some(Link::Http2(sender.clone())),
            _ => None,
        };
        Connection {
            endpoint: Arc::clone(&self.endpoint),
            link,
        }
    }

    /// Sends `method path` with `body`; the response's status and the length of its body. An
    /// I/O or protocol error, or a connection the server closed, drops the connection (the
    /// next request reconnects; on HTTP/2, to a connection of its own).
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> std::io::Result<(u16, usize)> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = match &self.endpoint.http2 {
            None => Uri::try_from(path).map_err(protocol)?,
            // HTTP/2 carries the scheme and authority in the request's pseudo-headers.
            Some(target) => Uri::builder()
                .scheme(target.scheme.clone())
                .authority(target.authority.clone())
                .path_and_query(path)
                .build()
                .map_err(protocol)?,
        };
        let headers = request.headers_mut();
        if self.endpoint.http2.is_none() {
            headers.insert(HOST, self.endpoint.host.clone());
        }
        if let Some(authorization) = &self.endpoint.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        // The link stays in place: hyper's connection state is large, and moving it out and
        // back for every request cost about 3% of this client's instructions.
        let link = match &mut self.link {
            Some(link) => link,
            None => self.link.insert(connect(&self.endpoint).await?),
        };
        let answer = exchange(link, request).await;
        if link.spent(answer.is_err()) {
            self.link = None;
        }
        answer
    }
}

/// A new connection to `endpoint`, TLS included.
async fn connect(endpoint: &Endpoint) -> std::io::Result<Link> {
    let tcp = TcpStream::connect(&endpoint.addr).await?;
    tcp.set_nodelay(true)?;
    let stream: Box<dyn Stream> = match &endpoint.tls {
        None => Box::new(tcp),
        Some(config) => {
            let connector = TlsConnector::from(Arc::clone(config));
            let host = endpoint
                .addr
                .rsplit_once(':')
                .map_or(endpoint.addr.as_str(), |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(host.to_string())
                .map_err(|error| protocol(format!("server name {host}: {error}")))?;
            Box::new(connector.connect(name, tcp).await?)
        }
    };
    if endpoint.http2.is_some() {
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(protocol)?;
        // It ends when the server closes it or every handle is dropped.
        tokio::spawn(connection);
        return Ok(Link::Http2(sender));
    }
    // One contiguous write per request (head and body copied together, as small as they
    // are) instead of a `writev` of both. A read buffer of the answer's size: hyper's default
    // starts at 8 KiB, and it takes a new one for every answer (the last one's body still
    // holds the old), which the allocator serves from its slabs rather than its cache.
    let (sender, connection) = http1::Builder::new()
        .writev(false)
        .read_buf_exact_size(Some(endpoint.read_buffer))
        .handshake(TokioIo::new(stream))
        .await
        .map_err(protocol)?;
    Ok(Link::Http1 {
        sender,
        connection: Some(connection),
    })
}

/// Sends `request` on `link` and reads the whole response, polling the connection in the same
/// task: a task of its own per connection would add two wake-ups per request, each a cost the
/// measured nodes pay on this shared machine.
async fn exchange(link: &mut Link, request: Request<Full<Bytes>>) -> std::io::Result<(u16, usize)> {
    let (sender, connection) = match link {
        Link::Http1 { sender, connection } => (sender, connection),
        Link::Http2(sender) => {
            sender.ready().await.map_err(protocol)?;
            let response = sender.send_request(request).await.map_err(protocol)?;
            return answer_of(response).await;
        }
    };
    let answer = async {
        sender.ready().await.map_err(protocol)?;
        let response = sender.send_request(request).await.map_err(protocol)?;
        answer_of(response).await
    };
    tokio::pin!(answer);
    let Some(running) = connection else {
        return Err(std::io::ErrorKind::NotConnected.into());
    };
    tokio::select! {
        biased;
        answer = &mut answer => return answer,
        // Closed by the server (`connection: close`) or failed: what it read is handed over
        // already, and dropping it ends the request with an error if it is still waiting.
        _ = running => {}
    }
    *connection = None;
    answer.await
}

/// The status of `response` and the length of its whole body.
async fn answer_of(
    response: hyper::Response<hyper::body::Incoming>,
) -> std::io::Result<(u16, usize)> {
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.map_err(protocol)?.data_ref() {
            len += data.len();
        }
    }
    Ok((status, len))
}

/// The read buffer for answers carrying at most `value_bytes` (a GET's value): hyper refuses an
/// answer whose head does not fit in it, a longer body only takes more reads.
fn answer_bytes_max(value_bytes: usize) -> usize {
    const HEAD_BYTES_MAX: usize = 2048;
    const BUFFER_BYTES_MAX: usize = 64 * 1024;
    value_bytes
        .saturating_add(HEAD_BYTES_MAX)
        .min(BUFFER_BYTES_MAX)
}

fn protocol(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
}

/// CPU seconds (user, system) this process has used: the counters `getrusage(RUSAGE_SELF)`
/// reports, read from `/proc` (safe code only).
pub fn self_cpu() -> Option<(f64, f64)> {
    proc_cpu("/proc/self/stat")
}

/// User plus system CPU seconds of process `pid`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    proc_cpu(&format!("/proc/{pid}/stat")).map(|(user, system)| user + system)
}

/// utime and stime of a `/proc/<pid>/stat` file, in seconds (Linux reports them in clock ticks
/// of 1/100 s to user space).
fn proc_cpu(path: &str) -> Option<(f64, f64)> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may contain spaces; fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are the 12th and 13th after the name.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user / TICKS_PER_SECOND, system / TICKS_PER_SECOND))
}

fn bytes_value(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every request on a connection with `answer`, closing the
    /// connection after `per_connection` requests; it counts the connections it accepted.
    async fn server(
        answer: &'static str,
        per_connection: usize,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for _ in 0..per_connection {
                        // Every request of these tests is a head and a 3-byte body.
                        while !buf.windows(4).any(|window| window == b"\r\n\r\n") {
                            if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        while buf.len() < end + 3 {
                            if socket.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        buf.drain(..end + 3);
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn endpoint(addr: &str) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            addr: addr.to_string(),
            tls: None,
            host: HeaderValue::from_str(addr).unwrap(),
            authorization: None,
            read_buffer: answer_bytes_max(0),
            http2: None,
        })
    }

    /// Three PUTs on one `Connection` to a server that answers each with `response`, up to
    /// `per_connection` per connection: each answer's status and body length, and how many
    /// connections the server accepted.
    async fn three_puts(
        response: &'static str,
        per_connection: usize,
    ) -> (Vec<(u16, usize)>, usize) {
        let (addr, accepted) = server(response, per_connection).await;
        let mut connection = Connection::open(endpoint(&addr)).await.unwrap();
        let mut answers = Vec::new();
        for _ in 0..3 {
            let answer = connection
                .send(Method::PUT, "/api/v1/kv/k", Bytes::from_static(b"abc"))
                .await
                .unwrap();
            answers.push(answer);
        }
        (answers, accepted.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_connection_is_kept_alive_between_requests() {
        let (answers, accepted) =
            three_puts("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", 3).await;
        assert_eq!(answers, vec![(200, 5); 3]);
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_opened_again() {
        let (answers, accepted) = three_puts(
            "HTTP/1.1 307 Temporary Redirect\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            1,
        )
        .await;
        assert_eq!(answers, vec![(307, 0); 3]);
        assert_eq!(accepted, 3);
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_read_buffer_is_read_whole() {
        let body = "x".repeat(3 * answer_bytes_max(0));
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (answers, accepted) = three_puts(Box::leak(response.into_boxed_str()), 3).await;
        assert_eq!(answers, vec![(200, body.len()); 3]);
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn a_broken_answer_is_an_error() {
        let (addr, _) = server("SPDY 200\r\n\r\n", 1).await;
        let mut connection = Connection::open(endpoint(&addr)).await.unwrap();
        let answer = connection
            .send(Method::PUT, "/api/v1/kv/k", Bytes::from_static(b"abc"))
            .await;
        assert!(answer.is_err(), "{answer:?}");
    }

    #[test]
    fn clients_share_the_keys_without_overlap() {
        let mut seen = Vec::new();
        let mut path = String::new();
        let clients = 3;
        for task in 0..clients {
            let share = 10 / clients + usize::from(task < 10 % clients);
            for op in 0..share {
                Op::Preload.path(&mut path, task, op, clients);
                seen.push(path.clone());
            }
        }
        seen.sort();
        let mut expected: Vec<String> = (0..10).map(|i| format!("/api/v1/kv/key-{i}")).collect();
        expected.sort();
        assert_eq!(seen, expected);
        Op::Get { keys: 4 }.path(&mut path, 2, 3, clients);
        assert_eq!(path, "/api/v1/kv/key-3");
        Op::Put { prefix: "bench" }.path(&mut path, 2, 3, clients);
        assert_eq!(path, "/api/v1/kv/bench-2-3");
    }

    #[test]
    fn the_histogram_holds_every_clients_latencies() {
        let latencies = vec![vec![1, 2_000, 3_000], vec![], vec![40_000]];
        let histogram = histogram_of(&latencies).unwrap();
        assert_eq!(histogram.len(), 4);
        assert_eq!(histogram.min(), 1);
        assert!(histogram.equivalent(histogram.max(), 40_000));
        assert!(histogram.equivalent(histogram.value_at_quantile(0.5), 2_000));
    }

    #[test]
    fn reads_metric_values() {
        let text = "# HELP raft_persist_entries_total x\n# TYPE raft_persist_entries_total counter\n\
                    raft_persist_entries_total{node=\"1\"} 1234\nraft_persist_batches_total{node=\"1\"} 56\n\
                    raft_datagrams_out_total 78\n";
        assert_eq!(metric_value(text, "raft_persist_entries_total"), Some(1234));
        assert_eq!(metric_value(text, "raft_persist_batches_total"), Some(56));
        assert_eq!(metric_value(text, "raft_datagrams_out_total"), Some(78));
        assert_eq!(metric_value(text, "raft_missing"), None);
    }

    #[test]
    fn authority_of_urls() {
        assert_eq!(
            authority("http://127.0.0.1:8000").unwrap(),
            (false, "127.0.0.1:8000".to_string())
        );
        assert_eq!(
            authority("http://127.0.0.1:8000/").unwrap(),
            (false, "127.0.0.1:8000".to_string())
        );
        assert_eq!(authority("https://x:1").unwrap(), (true, "x:1".to_string()));
        assert!(authority("http://x:1/path").is_err());
        assert!(authority("ftp://x:1").is_err());
        assert!(authority("x:1").is_err());
    }

    #[test]
    fn the_summary_gives_each_nodes_cpu_per_write_and_names_the_leader() {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let args = <Command as clap::Parser>::parse_from(["bench", "--clients", "100"]).bench;
        let report = Report {
            workload: Workload::Write,
            answered: 50_000,
            errors: 0,
            elapsed: Duration::from_secs(2),
            histogram: histogram().unwrap(),
            cpu: (0.25, 0.25),
            counters: BTreeMap::new(),
            node_cpu: vec![(1, 0.5), (2, 1.0), (3, 0.45)],
            leader: Some(2),
        };
        let text = report.render(&args);
        assert!(
            text.contains(
                "node CPU: node 1 0.50 s = 10.0 us per write, node 2 (leader) 1.00 s = 20.0 us per write, node 3 0.45 s = 9.0 us per write"
            ),
            "{text}"
        );
        assert!(text.contains("= 25000 writes/s"), "{text}");
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let (user, system) = self_cpu().unwrap();
        assert!(user >= 0.0 && system >= 0.0);
    }
}
