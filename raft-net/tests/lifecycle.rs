//! A cluster's life through membership changes, with real processes: one node starts alone, two
//! more join, clients write, one member is removed, and a fresh node joins after the log was
//! compacted, so it catches up from a snapshot.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, http, spawn_node, wait_for_state, Process, TestCluster, TestNode};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const SNAPSHOT_ENTRIES: &str = "20";

fn plan(dir: &Path, id: u64) -> TestNode {
    TestNode {
        id,
        raft_addr: format!("127.0.0.1:{}", free_port()),
        http_addr: format!("127.0.0.1:{}", free_port()),
        data_dir: dir.join(format!("node{id}")),
        child: None,
    }
}

fn join(dir: &Path, node: &TestNode, url: &str) -> Process {
    spawn_node(
        dir,
        node,
        &["--join", url, "--snapshot-entries", SNAPSHOT_ENTRIES],
    )
}

async fn voters(url: &str) -> Vec<u64> {
    let state: Value = match http()
        .get(format!("{url}/api/v1/state?limit=0"))
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    state["voters"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

async fn wait_for_voters(url: &str, expected: &[u64], dir: &Path) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = voters(url).await;
        if now == expected {
            return;
        }
        if Instant::now() > deadline {
            let logs: String = (1..=4)
                .map(|id| {
                    let log = std::fs::read_to_string(dir.join(format!("node{id}.log")));
                    format!("--- node {id} ---\n{}", log.unwrap_or_default())
                })
                .collect();
            panic!("voters {now:?}, expected {expected:?}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put(url: &str, key: &str) {
    let response = http()
        .put(format!("{url}/api/v1/kv/{key}"))
        .body(format!("value of {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "PUT {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_grows_loses_a_member_and_a_fresh_node_catches_up_from_a_snapshot() {
    let cluster = TestCluster::start(1, &["--snapshot-entries", SNAPSHOT_ENTRIES]);
    let (leader, _) = cluster.wait_for_leader(&[1], WAIT).await;
    assert_eq!(leader, 1);
    let dir = cluster.dir.path();
    let url = cluster.node(1).url("");

    let two = plan(dir, 2);
    let _two = join(dir, &two, &url);
    wait_for_voters(&url, &[1, 2], dir).await;
    let three = plan(dir, 3);
    let _three = join(dir, &three, &url);
    wait_for_voters(&url, &[1, 2, 3], dir).await;

    for i in 0..30 {
        put(&url, &format!("a{i}")).await;
    }
    let response = http()
        .delete(format!("{url}/api/v1/members/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    wait_for_voters(&url, &[1, 3], dir).await;
    // Enough writes for several snapshots: the prefix a newcomer would need is compacted.
    for i in 0..60 {
        put(&url, &format!("b{i}")).await;
    }
    let leader_view = common::state(cluster.node(1)).await;
    assert!(
        leader_view["snapshot_index"].as_u64() > Some(40),
        "{leader_view}"
    );

    let four = plan(dir, 4);
    let _four = join(dir, &four, &url);
    wait_for_voters(&url, &[1, 3, 4], dir).await;
    put(&url, "after").await;
    let commit = common::state(cluster.node(1)).await["commit_index"]
        .as_u64()
        .unwrap();
    let view = wait_for_state(&four, WAIT, |s| s["applied_index"].as_u64() >= Some(commit)).await;
    assert!(view["snapshot_index"].as_u64() > Some(0), "{view}");
    let log = std::fs::read_to_string(dir.join("node4.log")).unwrap();
    assert!(
        log.contains("installed the leader's snapshot"),
        "node 4 caught up without a snapshot:\n{log}"
    );
    for key in ["a0", "a29", "b0", "b59", "after"] {
        let response = http()
            .get(four.url(&format!("/api/v1/kv/{key}?stale=true")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{key} on node 4");
        assert_eq!(response.text().await.unwrap(), format!("value of {key}"));
    }
    // The removed member is out for good: the cluster commits without it.
    drop(_two);
    put(&url, "without-two").await;
}
