//! Compaction end to end: a follower that missed more than the leader keeps in its log catches
//! up through InstallSnapshot, and a node restarts from its snapshot checkpoint.

mod common;

use std::time::Duration;

use common::{http, state, wait_for_state, TestCluster};

const WAIT: Duration = Duration::from_secs(15);
const WRITES: usize = 120;
/// Values large enough that the snapshot (about 120 KB) needs several InstallSnapshot chunks.
const VALUE_BYTES: usize = 1000;

fn value(key: &str) -> String {
    format!("value-{key}-{}", "v".repeat(VALUE_BYTES))
}

async fn put(client: &reqwest::Client, url: &str, key: &str) {
    let response = client
        .put(format!("{url}/api/v1/kv/{key}"))
        .body(value(key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "PUT {key}");
}

async fn assert_all_keys(client: &reqwest::Client, url: &str, node: u64) {
    for i in 0..WRITES {
        let key = format!("k{i}");
        let response = client
            .get(format!("{url}/api/v1/kv/{key}?stale=true"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{key} on node {node}");
        assert_eq!(response.text().await.unwrap(), value(&key));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot_and_restarts_from_it() {
    let mut cluster = TestCluster::start(3, &["--snapshot-entries", "25"]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let lagging = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let client = http();
    let leader_url = cluster.node(leader).url("");
    let lagging_url = cluster.node(lagging).url("");

    let response = client
        .post(format!("{lagging_url}/api/v1/admin/isolate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let lagging_last = state(cluster.node(lagging)).await["last_log_index"]
        .as_u64()
        .unwrap();
    for i in 0..WRITES {
        put(&client, &leader_url, &format!("k{i}")).await;
    }
    let leader_state = state(cluster.node(leader)).await;
    let snapshot_index = leader_state["snapshot_index"].as_u64().unwrap();
    assert!(
        snapshot_index > lagging_last + 25,
        "the leader compacted its log beyond the lagging follower's ({lagging_last}): {leader_state}"
    );

    let response = client
        .post(format!("{lagging_url}/api/v1/admin/heal"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let commit = leader_state["commit_index"].as_u64().unwrap();
    wait_for_state(cluster.node(lagging), WAIT, |s| {
        s["applied_index"].as_u64().unwrap() >= commit
    })
    .await;
    assert!(
        cluster
            .log(lagging)
            .contains("installed the leader's snapshot"),
        "{}",
        cluster.log(lagging)
    );
    assert_all_keys(&client, &lagging_url, lagging).await;

    // kill -9 and restart: the node comes back from its checkpoint, snapshot included.
    cluster.kill(lagging);
    cluster.start_node(lagging);
    let restarted = wait_for_state(cluster.node(lagging), WAIT, |s| {
        s["applied_index"].as_u64().unwrap() >= commit
    })
    .await;
    assert!(
        restarted["snapshot_index"].as_u64().unwrap() > 0,
        "{restarted}"
    );
    assert_all_keys(&client, &lagging_url, lagging).await;
    let segments = std::fs::read_dir(cluster.node(lagging).data_dir.join("wal"))
        .unwrap()
        .count();
    assert!(segments <= 2, "old segments were dropped: {segments}");
}
