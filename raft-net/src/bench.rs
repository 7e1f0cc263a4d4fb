//! `raft-net bench`: a load generator. It starts a local cluster (or uses `--target`), finds the
//! leader, and runs N keep-alive HTTP clients that each PUT one value at a time. Every write
//! counted was answered 200, i.e. committed on a majority with fsync on.
//!
//! The clients speak just enough HTTP/1.1 by hand (one request, one response with a
//! `Content-Length` body) over plain tokio sockets, or over rustls for an `https://` cluster:
//! the load generator shares the machine with the nodes it measures, so every microsecond it
//! spends is taken from them. It reports its own CPU time, and reads the nodes' `/metrics`
//! before and after the measured phase to report how many log entries each `fdatasync`
//! carried.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
/// A response head longer than this is refused (ours are a few hundred bytes).
const RESPONSE_HEAD_MAX: usize = 16 * 1024;

/// `raft-net bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Nodes in the local cluster (ignored with --target).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Writes in total (measured).
    #[arg(long, default_value_t = 20_000)]
    pub ops: usize,
    /// Writes before the measured ones (connections, allocator and page cache warm up).
    #[arg(long, default_value_t = 2_000)]
    pub warmup: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    pub value_bytes: usize,
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
    #[error("--clients and --ops must be at least 1")]
    Empty,
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
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One node's persistence counters (from its `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistCounters {
    /// Log entries written to the WAL.
    pub entries: u64,
    /// `fdatasync` calls of group commits.
    pub fsyncs: u64,
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub writes: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub histogram: Histogram<u64>,
    /// CPU seconds (user, system) this process used during the measured phase.
    pub cpu: (f64, f64),
    /// Per node URL: persistence counters over the measured phase, when `/metrics` answered.
    pub persist: BTreeMap<String, PersistCounters>,
    /// Per node of a local cluster: CPU seconds used during the measured phase.
    pub node_cpu: Vec<(u16, f64)>,
}

impl Report {
    #[must_use]
    pub fn writes_per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The summary printed at the end.
    #[must_use]
    pub fn render(&self, args: &BenchArgs) -> String {
        use std::fmt::Write;
        let ms = |quantile: f64| self.histogram.value_at_quantile(quantile) as f64 / 1000.0;
        let mut out = format!(
            "{} clients, {} writes of {} bytes (after {} warm-up writes): {} committed in {:.2} s = {:.0} writes/s ({} errors)\n\
             latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             load generator CPU: {:.2} s user + {:.2} s system = {:.1} us per write",
            args.clients,
            args.ops,
            args.value_bytes,
            args.warmup,
            self.writes,
            self.elapsed.as_secs_f64(),
            self.writes_per_second(),
            self.errors,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            self.histogram.max() as f64 / 1000.0,
            self.cpu.0,
            self.cpu.1,
            (self.cpu.0 + self.cpu.1) * 1e6 / (self.writes.max(1) as f64),
        );
        for (url, counters) in &self.persist {
            let per_fsync = counters.entries as f64 / counters.fsyncs.max(1) as f64;
            let _ = write!(
                out,
                "\n{url}: {} entries in {} fsyncs = {per_fsync:.1} entries per fsync",
                counters.entries, counters.fsyncs
            );
        }
        if !self.node_cpu.is_empty() {
            let nodes: Vec<String> = self
                .node_cpu
                .iter()
                .map(|(id, seconds)| format!("node {id} {seconds:.2} s"))
                .collect();
            let _ = write!(out, "\nnode CPU: {}", nodes.join(", "));
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
    if args.clients == 0 || args.ops == 0 {
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
        let scheme = if leader.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        let urls = member_urls(&client, &leader, scheme)
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
    let cluster = LocalCluster::start(&exe, specs, &options, &node_args, true)?;
    let urls: Vec<String> = cluster.specs.iter().map(|spec| spec.url(scheme)).collect();
    let pids = cluster.pids();
    let result = match find_leader(&client, &urls).await {
        Ok(leader) => load(&client, &access, &leader, &urls, &pids, args).await,
        Err(error) => Err(error),
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
            let scheme = if url.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            if let Some(leader) = leader_url(client, url, &state, scheme).await {
                return Ok(leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NoLeader(LEADER_WAIT))
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

/// Reads one node's persistence counters from its `/metrics`.
async fn persist_counters(client: &reqwest::Client, url: &str) -> Option<PersistCounters> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(PersistCounters {
        entries: metric_value(&text, "raft_persist_entries_total")?,
        fsyncs: metric_value(&text, "raft_persist_batches_total")?,
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

async fn all_counters(
    client: &reqwest::Client,
    urls: &[String],
) -> BTreeMap<String, PersistCounters> {
    let mut counters = BTreeMap::new();
    for url in urls {
        if let Some(found) = persist_counters(client, url).await {
            counters.insert(url.clone(), found);
        }
    }
    counters
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
        .map_err(|error| BenchError::Histogram(error.to_string()))
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
    let (tls, addr) = authority(leader)?;
    let tls = match (tls, &access.tls) {
        (false, _) => None,
        (true, Some(config)) => Some(Arc::clone(config)),
        (true, None) => {
            return Err(ConfigError::Tls(format!(
                "{leader} is https: give --ca-cert (or --tls-cert) to trust its certificate"
            ))
            .into())
        }
    };
    let endpoint = Arc::new(Endpoint {
        addr,
        tls,
        authorization: access.token.as_ref().map(Token::bearer),
    });
    let value = bytes_value(args.value_bytes);
    let mut connections = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        connections.push(Connection::open(Arc::clone(&endpoint)).await?);
    }
    let (connections, _, _) = phase(connections, "warmup", args.warmup, &value).await?;
    let before = all_counters(client, urls).await;
    let nodes_before: Vec<Option<f64>> = pids.iter().map(|&(_, pid)| cpu_seconds(pid)).collect();
    let cpu_before = self_cpu();
    let started = Instant::now();
    let (_, total, errors) = phase(connections, "bench", args.ops, &value).await?;
    let elapsed = started.elapsed();
    let cpu_after = self_cpu();
    let node_cpu = pids
        .iter()
        .zip(nodes_before)
        .filter_map(|(&(id, pid), before)| Some((id, cpu_seconds(pid)? - before?)))
        .collect();
    let after = all_counters(client, urls).await;
    let persist = after
        .into_iter()
        .filter_map(|(url, after)| {
            let before = before.get(&url)?;
            Some((
                url,
                PersistCounters {
                    entries: after.entries.saturating_sub(before.entries),
                    fsyncs: after.fsyncs.saturating_sub(before.fsyncs),
                },
            ))
        })
        .collect();
    let cpu = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => (after.0 - before.0, after.1 - before.1),
        _ => (f64::NAN, f64::NAN),
    };
    Ok(Report {
        writes: total.len(),
        errors,
        elapsed,
        histogram: total,
        cpu,
        persist,
        node_cpu,
    })
}

/// Runs `ops` writes spread over the connections (one task each); gives the connections back
/// with the merged latency histogram and the error count.
async fn phase(
    connections: Vec<Connection>,
    prefix: &'static str,
    ops: usize,
    value: &[u8],
) -> Result<(Vec<Connection>, Histogram<u64>, u64), BenchError> {
    let clients = connections.len();
    let mut tasks = Vec::with_capacity(clients);
    for (task, mut connection) in connections.into_iter().enumerate() {
        let share = ops / clients + usize::from(task < ops % clients);
        let value = value.to_vec();
        let mut histogram = histogram()?;
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            let mut path = String::with_capacity(64);
            for op in 0..share {
                use std::fmt::Write;
                path.clear();
                let _ = write!(path, "/api/v1/kv/{prefix}-{task}-{op}");
                let sent = Instant::now();
                match connection.put(&path, &value).await {
                    Ok(200) => {
                        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                        histogram.saturating_record(micros.max(1));
                    }
                    Ok(_) | Err(_) => errors += 1,
                }
            }
            (connection, histogram, errors)
        }));
    }
    let mut total = histogram()?;
    let mut errors = 0;
    let mut connections = Vec::with_capacity(clients);
    for task in tasks {
        match task.await {
            Ok((connection, histogram, task_errors)) => {
                total
                    .add(&histogram)
                    .map_err(|error| BenchError::Histogram(error.to_string()))?;
                errors += task_errors;
                connections.push(connection);
            }
            // A panicked client task is a bug in this file; count it as an error.
            Err(_) => errors += 1,
        }
    }
    Ok((connections, total, errors))
}

/// Where the clients send their writes.
#[derive(Debug)]
struct Endpoint {
    /// `host:port`.
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The `Authorization` header value, with a token.
    authorization: Option<String>,
}

/// A plain or TLS byte stream.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One keep-alive HTTP/1.1 connection that sends a request and reads its response at a time.
struct Connection {
    endpoint: Arc<Endpoint>,
    stream: Option<Box<dyn Stream>>,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.endpoint.addr)
            .field("connected", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection {
    async fn open(endpoint: Arc<Endpoint>) -> Result<Connection, BenchError> {
        let mut connection = Connection {
            endpoint,
            stream: None,
            request: Vec::with_capacity(1024),
            buf: Vec::with_capacity(4096),
        };
        connection
            .connect()
            .await
            .map_err(|source| BenchError::Connect {
                addr: connection.endpoint.addr.clone(),
                source,
            })?;
        Ok(connection)
    }

    async fn connect(&mut self) -> std::io::Result<()> {
        let tcp = TcpStream::connect(&self.endpoint.addr).await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &self.endpoint.tls {
            None => Box::new(tcp),
            Some(config) => {
                let connector = TlsConnector::from(Arc::clone(config));
                let host = self
                    .endpoint
                    .addr
                    .rsplit_once(':')
                    .map_or(self.endpoint.addr.as_str(), |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = ServerName::try_from(host.to_string())
                    .map_err(|error| protocol(&format!("server name {host}: {error}")))?;
                Box::new(connector.connect(name, tcp).await?)
            }
        };
        self.stream = Some(stream);
        Ok(())
    }

    /// PUTs `body` to `path`; the response status. An I/O or protocol error drops the
    /// connection (the next request reconnects).
    async fn put(&mut self, path: &str, body: &[u8]) -> std::io::Result<u16> {
        use std::io::Write;
        self.request.clear();
        write!(
            self.request,
            "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
            self.endpoint.addr,
            body.len()
        )?;
        if let Some(authorization) = &self.endpoint.authorization {
            write!(self.request, "authorization: {authorization}\r\n")?;
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(body);
        if self.stream.is_none() {
            self.connect().await?;
        }
        let Some(mut stream) = self.stream.take() else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        let (status, keep) = exchange(&mut stream, &self.request, &mut self.buf).await?;
        if keep {
            self.stream = Some(stream);
        }
        Ok(status)
    }
}

/// Writes `request` and reads one response into `buf`: its status, and whether the connection
/// stays open.
async fn exchange(
    stream: &mut Box<dyn Stream>,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    stream.write_all(request).await?;
    // A TLS stream buffers what it writes; a TCP stream's flush does nothing.
    stream.flush().await?;
    buf.clear();
    loop {
        if let Some(head) = parse_head(buf)? {
            while buf.len() < head.len + head.body {
                read_more(stream, buf).await?;
            }
            return Ok((head.status, !head.close));
        }
        if buf.len() > RESPONSE_HEAD_MAX {
            return Err(protocol("response head too long"));
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut Box<dyn Stream>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn protocol(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the head, blank line included.
    len: usize,
    /// Bytes of the body (`Content-Length`).
    body: usize,
    /// The server will close the connection.
    close: bool,
}

/// The response head at the start of `buf`, once it is complete. Only `Content-Length` bodies
/// are understood: every answer of the node has one.
fn parse_head(buf: &[u8]) -> std::io::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| protocol("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| protocol("bad status line"))?;
    let mut body = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(protocol("bad header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body = Some(value.parse().map_err(|_| protocol("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(protocol("chunked responses are not supported"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let body = body.ok_or_else(|| protocol("response without content-length"))?;
    Ok(Some(Head {
        status,
        len: end + 4,
        body,
        close,
    }))
}

/// CPU seconds (user, system) this process has used: the counters `getrusage(RUSAGE_SELF)`
/// reports, read from `/proc` (safe code only).
fn self_cpu() -> Option<(f64, f64)> {
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

    #[test]
    fn parses_response_heads() {
        let response =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 5\r\n\r\n{}abc";
        let head = parse_head(response).unwrap().unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                len: response.len() - 5,
                body: 5,
                close: false
            }
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        let closing =
            b"HTTP/1.1 307 Temporary Redirect\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let head = parse_head(closing).unwrap().unwrap();
        assert_eq!((head.status, head.close), (307, true));
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"SPDY 200\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn reads_metric_values() {
        let text = "# HELP raft_persist_entries_total x\n# TYPE raft_persist_entries_total counter\n\
                    raft_persist_entries_total{node=\"1\"} 1234\nraft_persist_batches_total{node=\"1\"} 56\n";
        assert_eq!(metric_value(text, "raft_persist_entries_total"), Some(1234));
        assert_eq!(metric_value(text, "raft_persist_batches_total"), Some(56));
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
    fn own_cpu_time_is_readable() {
        let (user, system) = self_cpu().unwrap();
        assert!(user >= 0.0 && system >= 0.0);
    }
}
