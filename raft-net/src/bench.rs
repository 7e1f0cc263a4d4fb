//! `raft-net bench`: a load generator. It starts a local cluster (or uses `--target`), finds the
//! leader, and runs N keep-alive HTTP clients that each PUT their share of the writes one at a
//! time. Every write counted was answered 200, i.e. committed on a majority with fsync on.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::Value;

use crate::cluster::{plan, ClusterArgs, ClusterError, LocalCluster};

/// How long to wait for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(15);
/// Latencies above this are clamped in the histogram (microseconds).
const LATENCY_MICROS_MAX: u64 = 120_000_000;

/// `raft-net bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Nodes in the local cluster (ignored with --target).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Writes in total.
    #[arg(long, default_value_t = 20_000)]
    pub ops: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    pub value_bytes: usize,
    /// Use a running cluster at this URL instead of starting one.
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
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub writes: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub histogram: Histogram<u64>,
}

impl Report {
    #[must_use]
    pub fn writes_per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The summary printed at the end.
    #[must_use]
    pub fn render(&self, args: &BenchArgs) -> String {
        let ms = |quantile: f64| self.histogram.value_at_quantile(quantile) as f64 / 1000.0;
        format!(
            "{} clients, {} writes of {} bytes: {} committed in {:.2} s = {:.0} writes/s ({} errors)\n\
             latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            args.clients,
            args.ops,
            args.value_bytes,
            self.writes,
            self.elapsed.as_secs_f64(),
            self.writes_per_second(),
            self.errors,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            self.histogram.max() as f64 / 1000.0,
        )
    }
}

/// Runs the benchmark, starting and stopping a local cluster unless `--target` is given.
pub async fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    if args.clients == 0 || args.ops == 0 {
        return Err(BenchError::Empty);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .tcp_nodelay(true)
        .build()?;
    if let Some(target) = &args.target {
        let leader = find_leader(&client, std::slice::from_ref(target)).await?;
        return load(&client, &leader, args).await;
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
        node_args: Vec::new(),
    })?;
    let exe = std::env::current_exe().map_err(ClusterError::Executable)?;
    let cluster = LocalCluster::start(&exe, specs, None, &args.node_args, true)?;
    let urls: Vec<String> = cluster.specs.iter().map(|spec| spec.url()).collect();
    let result = match find_leader(&client, &urls).await {
        Ok(leader) => load(&client, &leader, args).await,
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
            if let Some(leader) = leader_url(client, url, &state).await {
                return Ok(leader);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NoLeader(LEADER_WAIT))
}

/// The leader's URL from a follower's view of the members, when it names a leader.
async fn leader_url(client: &reqwest::Client, url: &str, state: &Value) -> Option<String> {
    let leader = state["leader"].as_u64()?;
    let members: Value = client
        .get(format!("{url}/api/v1/members"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    members["members"]
        .as_array()?
        .iter()
        .find(|member| member["id"].as_u64() == Some(leader))
        .and_then(|member| member["http_addr"].as_str())
        .map(|addr| format!("http://{addr}"))
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
        .map_err(|error| BenchError::Histogram(error.to_string()))
}

async fn load(
    client: &reqwest::Client,
    leader: &str,
    args: &BenchArgs,
) -> Result<Report, BenchError> {
    let value = bytes_value(args.value_bytes);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.clients {
        let share = args.ops / args.clients + usize::from(task < args.ops % args.clients);
        let client = client.clone();
        let base = format!("{leader}/api/v1/kv/bench-{task}-");
        let value = value.clone();
        let mut histogram = histogram()?;
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            for op in 0..share {
                let sent = Instant::now();
                let response = client
                    .put(format!("{base}{op}"))
                    .body(value.clone())
                    .send()
                    .await;
                let ok = match response {
                    Ok(response) => {
                        response.status() == StatusCode::OK && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    histogram.saturating_record(micros.max(1));
                } else {
                    errors += 1;
                }
            }
            (histogram, errors)
        }));
    }
    let mut total = histogram()?;
    let mut errors = 0;
    for task in tasks {
        // A panicked client task is a bug in this file; count its share as errors.
        match task.await {
            Ok((histogram, task_errors)) => {
                total
                    .add(&histogram)
                    .map_err(|error| BenchError::Histogram(error.to_string()))?;
                errors += task_errors;
            }
            Err(_) => errors += 1,
        }
    }
    Ok(Report {
        writes: total.len(),
        errors,
        elapsed: started.elapsed(),
        histogram: total,
    })
}

fn bytes_value(len: usize) -> Bytes {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}
