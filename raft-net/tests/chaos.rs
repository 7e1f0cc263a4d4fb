//! A short randomized fault run against real processes: writers PUT unique keys through random
//! nodes while nodes are isolated, healed, killed with SIGKILL, restarted, and asked to hand
//! over leadership; snapshots are frequent. Afterwards every write that got a 200 must be on
//! every node, and the nodes' logs must agree wherever they overlap.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, wait_for_state, TestCluster};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const FAULT_PHASE: Duration = Duration::from_secs(8);
const WRITERS: usize = 3;

/// xorshift64: the fault schedule is fixed by the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn writer(
    urls: Vec<String>,
    writer: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{writer}-{n}");
        let value = format!("value-{key}");
        let url = format!("{}/api/v1/kv/{key}", urls[n % urls.len()]);
        n += 1;
        match client.put(url).body(value.clone()).send().await {
            Ok(response) if response.status().as_u16() == 200 => {
                acked.lock().unwrap().insert(key, value);
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn post(url: String) {
    // Faults are best effort: the node may be down.
    let _ = http()
        .post(url)
        .timeout(Duration::from_secs(1))
        .send()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_random_faults() {
    let mut cluster = TestCluster::start(
        3,
        &["--snapshot-entries", "50", "--commit-timeout-ms", "1000"],
    );
    cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|node| node.url("")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut urls = urls.clone();
            urls.rotate_left(w);
            tokio::spawn(writer(urls, w, Arc::clone(&stop), Arc::clone(&acked)))
        })
        .collect();

    let mut rng = Rng(0x5eed_0004);
    let mut dead: Option<u64> = None;
    let started = Instant::now();
    while started.elapsed() < FAULT_PHASE {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(400))).await;
        let id = 1 + rng.below(3);
        let url = cluster.node(id).url("");
        match rng.below(10) {
            0..=2 => post(format!("{url}/api/v1/admin/isolate")).await,
            3..=5 => post(format!("{url}/api/v1/admin/heal")).await,
            6 if dead.is_none() => {
                cluster.kill(id);
                dead = Some(id);
            }
            6 | 7 => {
                if let Some(id) = dead.take() {
                    cluster.start_node(id);
                }
            }
            _ => {
                let to = 1 + rng.below(3);
                post(format!("{url}/api/v1/admin/transfer-leader?to={to}")).await;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for handle in writers {
        handle.await.unwrap();
    }
    if let Some(id) = dead.take() {
        cluster.start_node(id);
    }
    for node in &cluster.nodes {
        wait_for_state(node, WAIT, |_| true).await;
        post(node.url("/api/v1/admin/heal")).await;
    }

    // Liveness after healing, then safety: every acknowledged write everywhere.
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let response = http()
        .put(cluster.node(leader).url("/api/v1/kv/final"))
        .body("done")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let commit = common::state(cluster.node(leader)).await["commit_index"]
        .as_u64()
        .unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few writes succeeded: {}",
        acked.len()
    );
    let client = http();
    let mut logs = Vec::new();
    for node in &cluster.nodes {
        wait_for_state(node, WAIT, |s| {
            s["applied_index"].as_u64().unwrap() >= commit
        })
        .await;
        for (key, value) in &acked {
            let response = client
                .get(node.url(&format!("/api/v1/kv/{key}?stale=true")))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                200,
                "{key} lost on node {}",
                node.id
            );
            assert_eq!(&response.text().await.unwrap(), value);
        }
        let state: Value = client
            .get(node.url("/api/v1/state?limit=10000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let log: BTreeMap<u64, (u64, String)> = state["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let index = entry["index"].as_u64().unwrap();
                let term = entry["term"].as_u64().unwrap();
                (
                    index,
                    (term, entry["command"].as_str().unwrap().to_string()),
                )
            })
            .collect();
        logs.push(log);
    }
    for (a, first) in logs.iter().enumerate() {
        for second in &logs[a + 1..] {
            for (index, entry) in first {
                if let Some(other) = second.get(index) {
                    assert_eq!(entry, other, "logs disagree at index {index}");
                }
            }
        }
    }
}
