//! kill -9 of the leader under a stream of writes; restart it with the same data dir. Every
//! write that was answered 200 must be on every node afterwards, and the restarted node must
//! catch up.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{state, wait_for_state, TestCluster, BIN};

const WAIT: Duration = Duration::from_secs(15);
const WRITERS: usize = 4;

/// Writes `key-N` = `value-N` until `stop`, trying each node in turn (following redirects);
/// records the keys that got a 200.
async fn writer(
    urls: Vec<String>,
    writer: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut target = 0;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{writer}-{n}");
        let url = format!("{}/api/v1/kv/{key}", urls[target % urls.len()]);
        match client.put(url).body(format!("value-{key}")).send().await {
            Ok(response) if response.status().as_u16() == 200 => {
                acked.lock().unwrap().push(key);
                n += 1;
            }
            _ => {
                // Unknown outcome or no leader: move on to another node and a fresh key, so
                // a late commit of this one cannot be confused with a later acknowledgement.
                target += 1;
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_of_the_leader() {
    let mut cluster = TestCluster::start(3, &["--commit-timeout-ms", "2000"]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|node| node.url("")).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            // Start every writer at the leader so the kill lands mid-stream.
            let mut urls = urls.clone();
            urls.rotate_left((leader - 1) as usize);
            tokio::spawn(writer(urls, w, Arc::clone(&stop), Arc::clone(&acked)))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    let before_kill = acked.lock().unwrap().len();
    assert!(
        before_kill > 0,
        "no write succeeded before the kill\n{}",
        cluster.logs()
    );
    cluster.kill(leader);
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    cluster.wait_for_leader(&others, WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for handle in writers {
        handle.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > before_kill,
        "no write succeeded after the kill"
    );

    // The data dir refuses to start under another id.
    let output = std::process::Command::new(BIN)
        .args([
            "node",
            "--id",
            "9",
            "--raft-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&cluster.node(leader).data_dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("belongs to node n"), "{stderr}");

    // Restart the old leader from its data dir: it recovers and catches up.
    cluster.start_node(leader);
    let (_, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let mut target_commit = 0;
    for node in &cluster.nodes {
        let state = wait_for_state(node, WAIT, |s| {
            s["state"] == "LEADER" || s["leader"].is_u64()
        })
        .await;
        target_commit = target_commit.max(state["commit_index"].as_u64().unwrap());
    }
    let client = common::http();
    for node in &cluster.nodes {
        wait_for_state(node, WAIT, |s| {
            s["applied_index"].as_u64().unwrap() >= target_commit
        })
        .await;
        for key in &acked {
            let url = node.url(&format!("/api/v1/kv/{key}?stale=true"));
            let response = client.get(url).send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                200,
                "acknowledged write {key} missing on node {}",
                node.id
            );
            assert_eq!(response.text().await.unwrap(), format!("value-{key}"));
        }
    }
    let restarted = state(cluster.node(leader)).await;
    assert!(restarted["applied_index"].as_u64().unwrap() >= target_commit);
    assert!(
        cluster.log(leader).contains("storage recovered"),
        "{}",
        cluster.log(leader)
    );
}
