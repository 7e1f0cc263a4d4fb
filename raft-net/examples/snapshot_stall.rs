//! How long does a snapshot stall a node? Starts a local cluster of a `raft-net` binary, loads
//! `--keys` keys through the leader (the nodes snapshot on their schedule meanwhile, once the
//! log since the last snapshot holds a snapshot's worth of entries, at multiples of
//! `--snapshot-entries`, as they do by default), then asks each node in turn for one more snapshot
//! of the full store, with the cluster idle. Throughout, a probe asks each node's `/healthz` (a round trip through its
//! driver loop) every few milliseconds; the longest answer is how long that node was deaf to
//! its peers and clients. It also reads each node's `raft_driver_busy_seconds` histogram, when
//! the binary exports one.
//!
//! With `--install` it measures the other side instead: one follower is cut off
//! (`/api/v1/admin/isolate`) while the keys are loaded, so the leader compacts past it; once
//! healed, it catches up by installing the leader's snapshot of the full store, and the probe
//! shows how long that stalled it.
//!
//! ```sh
//! cargo build --release -p raft-net
//! cargo run --release -p raft-net --example snapshot_stall -- --bin target/release/raft-net --keys 1000000
//! cargo run --release -p raft-net --example snapshot_stall -- --bin target/release/raft-net --keys 1000000 --install
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use raft_net::cluster::{plan, ClusterArgs, LocalCluster, NodeOptions};
use serde_json::Value;

#[derive(Debug, Parser)]
struct Args {
    /// The `raft-net` binary whose nodes are measured.
    #[arg(long)]
    bin: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    #[arg(long, default_value_t = 128)]
    value_bytes: usize,
    #[arg(long, default_value_t = 64)]
    clients: u64,
    #[arg(long, default_value_t = 10_000)]
    snapshot_entries: u64,
    #[arg(long, default_value_t = 28_000)]
    http_base: u16,
    #[arg(long, default_value_t = 29_000)]
    raft_base: u16,
    /// Let the nodes log to this process's stderr.
    #[arg(long)]
    node_logs: bool,
    /// Measure a follower installing the leader's snapshot instead of nodes taking one.
    #[arg(long)]
    install: bool,
}

/// The longest `/healthz` round trip seen, in microseconds, per node.
type Longest = Arc<Vec<AtomicU64>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let data_dir = std::env::temp_dir().join(format!("snapshot-stall-{}", std::process::id()));
    let specs = plan(&ClusterArgs {
        nodes: 3,
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
    let node_args = vec![
        "--snapshot-entries".to_string(),
        args.snapshot_entries.to_string(),
        "--http-connections-max".to_string(),
        (args.clients + 64).to_string(),
    ];
    let quiet = !args.node_logs;
    let cluster =
        LocalCluster::start(&args.bin, specs, &NodeOptions::default(), &node_args, quiet)?;
    let urls: Vec<String> = cluster.specs.iter().map(|spec| spec.url("http")).collect();
    let result = measure(&args, &urls).await;
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn measure(args: &Args, urls: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let leader = wait_for_leader(&client, urls).await?;
    let longest: Longest = Arc::new(urls.iter().map(|_| AtomicU64::new(0)).collect());
    let probes: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| tokio::spawn(probe(client.clone(), url.clone(), Arc::clone(&longest), i)))
        .collect();

    let follower = urls.iter().position(|url| *url != leader).unwrap_or(0);
    if args.install {
        admin(&client, &urls[follower], "isolate").await?;
    }
    let started = Instant::now();
    let failures = load(&client, &leader, args).await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "loaded {} keys of {} bytes in {elapsed:.1} s ({:.0} writes/s, {failures} retried)",
        args.keys,
        args.value_bytes,
        args.keys as f64 / elapsed
    );
    report(&client, urls, &longest, "during the load").await;
    if args.install {
        install(&client, urls, &leader, follower, &longest).await?;
        for probe in probes {
            probe.abort();
        }
        return Ok(());
    }

    // One node at a time, a few seconds apart: the nodes' own schedule never has them all write
    // a checkpoint of the whole store at once either.
    for (i, url) in urls.iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        for value in longest.iter() {
            value.store(0, Ordering::Relaxed);
        }
        let answer: Value = client
            .post(format!("{url}/api/v1/admin/snapshot"))
            .send()
            .await?
            .json()
            .await?;
        // The probes see the stalls of a snapshot that finishes after the request answered.
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!(
            "node {}: explicit snapshot {answer}; healthz max {:.1} ms on it while it took it (the others: {})",
            i + 1,
            longest[i].load(Ordering::Relaxed) as f64 / 1000.0,
            longest
                .iter()
                .enumerate()
                .filter(|&(other, _)| other != i)
                .map(|(_, value)| format!("{:.1} ms", value.load(Ordering::Relaxed) as f64 / 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    report(&client, urls, &longest, "after the explicit snapshots").await;
    for probe in probes {
        probe.abort();
    }
    Ok(())
}

/// Heals the cut-off `follower` and waits until it has caught up with the leader, which it can
/// only do from the leader's snapshot; then reports the stalls of that.
async fn install(
    client: &reqwest::Client,
    urls: &[String],
    leader: &str,
    follower: usize,
    longest: &Longest,
) -> Result<(), Box<dyn std::error::Error>> {
    let leader_state = node_state(client, leader).await?;
    let commit = leader_state["commit_index"].as_u64().unwrap_or(0);
    println!(
        "leader: commit index {commit}, snapshot index {}; node {} was cut off at applied index {}",
        leader_state["snapshot_index"],
        follower + 1,
        node_state(client, &urls[follower]).await?["applied_index"]
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for value in longest.iter() {
        value.store(0, Ordering::Relaxed);
    }
    let started = Instant::now();
    admin(client, &urls[follower], "heal").await?;
    loop {
        let state = node_state(client, &urls[follower]).await?;
        if state["applied_index"].as_u64().unwrap_or(0) >= commit {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!("node {} did not catch up: {state}", follower + 1).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "node {} caught up in {:.2} s from the leader's snapshot; healthz max {:.1} ms on it (the others: {})",
        follower + 1,
        started.elapsed().as_secs_f64(),
        longest[follower].load(Ordering::Relaxed) as f64 / 1000.0,
        longest
            .iter()
            .enumerate()
            .filter(|&(other, _)| other != follower)
            .map(|(_, value)| format!("{:.1} ms", value.load(Ordering::Relaxed) as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Freeing the store it replaced happens after the catch-up; the probes see that too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    report(client, urls, longest, "after the install").await;
    Ok(())
}

async fn admin(
    client: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let response = client
        .post(format!("{url}/api/v1/admin/{what}"))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("{what} on {url}: {}", response.status()).into());
    }
    Ok(())
}

async fn node_state(
    client: &reqwest::Client,
    url: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(client
        .get(format!("{url}/api/v1/state?limit=0"))
        .send()
        .await?
        .json()
        .await?)
}

/// Asks `url`'s `/healthz` every 5 ms and keeps the longest round trip.
async fn probe(client: reqwest::Client, url: String, longest: Longest, i: usize) {
    loop {
        let sent = Instant::now();
        let _ = client.get(format!("{url}/healthz")).send().await;
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        longest[i].fetch_max(micros, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for_leader(client: &reqwest::Client, urls: &[String]) -> Result<String, String> {
    for _ in 0..150 {
        for url in urls {
            let state = client
                .get(format!("{url}/api/v1/state?limit=0"))
                .send()
                .await;
            if let Ok(state) = state {
                if state
                    .json::<Value>()
                    .await
                    .is_ok_and(|s| s["state"] == "LEADER")
                {
                    return Ok(url.clone());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("no leader within 15 s".to_string())
}

/// PUTs every key once; a write that is not answered 200 is retried (on the leader named by a
/// redirect). Returns how many retries there were.
async fn load(client: &reqwest::Client, leader: &str, args: &Args) -> u64 {
    let value = vec![b'v'; args.value_bytes];
    let retries = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..args.clients)
        .map(|task| {
            let (client, retries, value) = (client.clone(), Arc::clone(&retries), value.clone());
            let (mut target, keys, clients) = (leader.to_string(), args.keys, args.clients);
            tokio::spawn(async move {
                let mut key = task;
                while key < keys {
                    let url = format!("{target}/api/v1/kv/key-{key:07}");
                    match client.put(&url).body(value.clone()).send().await {
                        Ok(response) if response.status() == 200 => key += clients,
                        Ok(response) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            if let Some(location) = response.headers().get("location") {
                                let location = location.to_str().unwrap_or_default();
                                if let Some(at) = location.find("/api/") {
                                    target = location[..at].to_string();
                                }
                            } else {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                        Err(_) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    retries.load(Ordering::Relaxed)
}

/// One line per node: the longest `/healthz` round trip, its term, and the driver's longest
/// turn and long turns (from `/metrics`, when the binary exports them).
async fn report(client: &reqwest::Client, urls: &[String], longest: &Longest, when: &str) {
    println!("{when}:");
    for (i, url) in urls.iter().enumerate() {
        let metrics = match client.get(format!("{url}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| {
            metrics
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|value| value.parse::<f64>().ok())
        };
        let count = value("raft_driver_busy_seconds_count");
        let over = |bound: &str| {
            let within = value(&format!(
                "raft_driver_busy_seconds_bucket{{node=\"{}\",le=\"{bound}\"}}",
                i + 1
            ));
            count
                .zip(within)
                .map_or("-".to_string(), |(count, within)| {
                    format!("{}", count - within)
                })
        };
        let busy = value("raft_driver_busy_seconds_max")
            .map_or("-".to_string(), |max| format!("{:.1} ms", max * 1000.0));
        println!(
            "  node {}: healthz max {:.1} ms; driver busy max {busy}, turns over 10 ms: {}, over 50 ms: {}, over 100 ms: {}; term {}",
            i + 1,
            longest[i].load(Ordering::Relaxed) as f64 / 1000.0,
            over("0.01"),
            over("0.05"),
            over("0.1"),
            value("raft_term").unwrap_or(f64::NAN),
        );
    }
}
