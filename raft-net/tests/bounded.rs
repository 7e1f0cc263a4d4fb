//! Under an endless stream of writes, snapshots keep every node's data dir and memory bounded:
//! the log (on disk and in memory) holds at most about one snapshot interval of entries or one
//! snapshot's worth of commands, whichever is more, and the WAL keeps only the checkpoint of the
//! latest snapshot (the key-value store's image) and the segments written since. The writes overwrite a fixed set of keys, so the store stays the same
//! size while the log, uncompacted, would grow with every write.
//!
//! `cargo test` makes `RAFT_BOUNDED_WRITES` writes (5,000 by default); the full run makes
//! 100,000 with a release build:
//! `RAFT_BOUNDED_WRITES=100000 cargo test --release -p raft-net --test bounded -- --nocapture`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{http, state, TestCluster};

const WAIT: Duration = Duration::from_secs(20);
const SNAPSHOT_ENTRIES: u64 = 250;
const SEGMENT_BYTES: u64 = 4096;
const KEYS: usize = 1000;
const CLIENTS: usize = 32;
const VALUE: &str = "value-0123456789";

fn writes() -> usize {
    std::env::var("RAFT_BOUNDED_WRITES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5_000)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Resident memory of a process, from /proc (Linux).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_data_dir_and_memory_bounded() {
    let writes = writes();
    let cluster = TestCluster::start(
        3,
        &[
            "--snapshot-entries",
            &SNAPSHOT_ENTRIES.to_string(),
            "--wal-segment-bytes",
            &SEGMENT_BYTES.to_string(),
        ],
    );
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let url = cluster.node(leader).url("");
    let client = http();
    let mut tasks = Vec::new();
    for task in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for i in (task..writes).step_by(CLIENTS) {
                let response = client
                    .put(format!("{url}/api/v1/kv/key-{:06}", i % KEYS))
                    .body(VALUE)
                    .send()
                    .await
                    .expect("PUT");
                assert_eq!(response.status().as_u16(), 200, "PUT key-{i:06}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }

    let leader_state = state(cluster.node(leader)).await;
    let commit = leader_state["commit_index"].as_u64().unwrap();
    assert!(commit >= writes as u64);
    for node in &cluster.nodes {
        let view =
            common::wait_for_state(node, WAIT, |s| s["applied_index"].as_u64() >= Some(commit))
                .await;
        let in_memory =
            view["last_log_index"].as_u64().unwrap() - view["snapshot_index"].as_u64().unwrap();
        let wal = dir_bytes(&node.data_dir.join("wal"));
        let total = dir_bytes(&node.data_dir);
        let rss = node
            .child
            .as_ref()
            .and_then(|child| rss_bytes(child.id()))
            .unwrap_or(0);
        eprintln!(
            "node {}: {writes} writes, {in_memory} entries in the log, WAL {wal} B, data dir {total} B, RSS {rss} B",
            node.id
        );
        // A snapshot is due once the entries applied since the last one add up to it (the
        // store's image: each key and value with a few bytes of framing, and the members'
        // addresses), at the node's next multiple of the interval. Every entry counts its key,
        // its value and a 24-byte header allowance; the store (1,000 keys) outweighs an
        // interval of entries (250), so here it is the bytes that the snapshots wait for.
        let store_bytes = KEYS as u64 * (10 + VALUE.len() as u64 + 4);
        let snapshot_bytes = store_bytes + 1024;
        let entry_bytes = 24 + 10 + VALUE.len() as u64;
        assert!(snapshot_bytes > SNAPSHOT_ENTRIES * entry_bytes);
        let between_snapshots = snapshot_bytes.div_ceil(entry_bytes) + SNAPSHOT_ENTRIES;
        // The leader may run up to one interval past that, plus what is in flight; a follower
        // installs or takes snapshots at the same pace.
        let log_bound = between_snapshots + SNAPSHOT_ENTRIES;
        assert!(
            in_memory <= log_bound,
            "node {}: {in_memory} entries held in memory (bound {log_bound})",
            node.id
        );
        // The WAL holds the latest checkpoint and those entries, in a few segments; without
        // compaction it would hold every write (each record more than 50 bytes).
        let wal_bound = snapshot_bytes + log_bound * 64 + 3 * SEGMENT_BYTES;
        assert!(
            writes as u64 * 50 > 2 * wal_bound,
            "{writes} writes are too few to tell a bounded WAL from a full one"
        );
        assert!(wal <= wal_bound, "node {}: WAL of {wal} bytes", node.id);
        assert!(
            total <= wal + 16 * 1024,
            "node {}: data dir of {total} bytes besides the WAL",
            node.id
        );
        if rss > 0 {
            let ceiling = 64 * 1024 * 1024;
            assert!(rss <= ceiling, "node {}: RSS of {rss} bytes", node.id);
        }
    }
}
