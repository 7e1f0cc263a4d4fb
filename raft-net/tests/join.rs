//! `raft-net node --join`: a new server joins a running cluster as a learner, catches up, is
//! promoted to voter, and survives a restart.

mod common;

use std::time::Duration;

use common::{free_port, http, spawn_node, wait_for_state, Process, TestCluster, TestNode};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn start_joiner(cluster: &TestCluster, node: &TestNode, join_url: &str) -> Process {
    spawn_node(cluster.dir.path(), node, &["--join", join_url])
}

async fn voters(url: &str) -> Vec<u64> {
    let Ok(response) = http()
        .get(format!("{url}/api/v1/state?limit=0"))
        .send()
        .await
    else {
        return Vec::new();
    };
    let state: Value = response.json().await.unwrap_or_default();
    state["voters"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_joins_catches_up_and_votes() {
    let cluster = TestCluster::start(3, &[]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let client = http();
    let leader_url = cluster.node(leader).url("");
    for i in 0..20 {
        let response = client
            .put(format!("{leader_url}/api/v1/kv/before-{i}"))
            .body(format!("v{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    let joiner = TestNode {
        id: 4,
        raft_addr: format!("127.0.0.1:{}", free_port()),
        http_addr: format!("127.0.0.1:{}", free_port()),
        data_dir: cluster.dir.path().join("node4"),
        child: None,
    };
    // Join through a follower: it redirects to the leader.
    let follower = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let mut child = start_joiner(&cluster, &joiner, &cluster.node(follower).url(""));
    let deadline = std::time::Instant::now() + WAIT;
    while !voters(&leader_url).await.contains(&4) {
        let log = std::fs::read_to_string(cluster.dir.path().join("node4.log")).unwrap_or_default();
        assert!(
            std::time::Instant::now() < deadline,
            "node 4 never became a voter\n{log}"
        );
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "node 4 exited\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The new voter has the old data and takes part in new writes.
    let response = client
        .put(format!("{leader_url}/api/v1/kv/after"))
        .body("joined")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let commit = common::state(cluster.node(leader)).await["commit_index"]
        .as_u64()
        .unwrap();
    wait_for_state(&joiner, WAIT, |s| {
        s["applied_index"].as_u64().unwrap() >= commit
    })
    .await;
    for key in ["before-0", "before-19", "after"] {
        let response = client
            .get(joiner.url(&format!("/api/v1/kv/{key}?stale=true")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{key}");
    }
    // Every member now knows where node 4 is.
    let members: Value = client
        .get(cluster.node(follower).url("/api/v1/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let four = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["id"] == 4)
        .cloned()
        .unwrap_or_default();
    assert_eq!(four["voter"], true, "{members}");
    assert_eq!(four["http_addr"].as_str(), Some(joiner.http_addr.as_str()));

    // Restart: the data dir is not empty, so it does not join again; it just catches up.
    drop(child);
    let child = start_joiner(&cluster, &joiner, &cluster.node(follower).url(""));
    let response = client
        .put(format!("{leader_url}/api/v1/kv/after-restart"))
        .body("yes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let commit = common::state(cluster.node(leader)).await["commit_index"]
        .as_u64()
        .unwrap();
    wait_for_state(&joiner, WAIT, |s| {
        s["applied_index"].as_u64().unwrap() >= commit
    })
    .await;
    let response = client
        .get(joiner.url("/api/v1/kv/after-restart?stale=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "yes");
    drop(child);
}

/// The seed KV store's flow: a node started empty waits, and `GET /join?nodeId=&raftPort=` on a
/// member adds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_join_alias_adds_a_waiting_node() {
    join_a_waiting_node(false).await;
}

/// The same with a cluster key: the waiting node drops the leader's first datagrams (stamped
/// for no epoch of it), tells the leader its epoch, and adopts it on the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_node_adopts_its_leader_through_the_cluster_key() {
    join_a_waiting_node(true).await;
}

async fn join_a_waiting_node(keyed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cluster.key");
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    let key_file = key_file.display().to_string();
    let key_flags: Vec<&str> = if keyed {
        vec!["--cluster-key-file", &key_file]
    } else {
        Vec::new()
    };
    let cluster = TestCluster::start(1, &key_flags);
    let (leader, _) = cluster.wait_for_leader(&[1], WAIT).await;
    let leader_url = cluster.node(leader).url("");
    let raft_port = free_port();
    let http_port = free_port();
    let waiting = TestNode {
        id: 4,
        raft_addr: format!("127.0.0.1:{raft_port}"),
        http_addr: format!("127.0.0.1:{http_port}"),
        data_dir: cluster.dir.path().join("node4"),
        child: None,
    };
    let mut waiting_flags = vec!["--await-join"];
    waiting_flags.extend(&key_flags);
    let child = spawn_node(cluster.dir.path(), &waiting, &waiting_flags);
    // It does not elect itself while it waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let alone = common::state(&waiting).await;
    assert_eq!(alone["state"], "FOLLOWER", "{alone}");
    assert_eq!(alone["term"], 0, "{alone}");

    let response = http()
        .get(format!(
            "{leader_url}/join?nodeId=n4&raftPort={raft_port}&httpPort={http_port}"
        ))
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}\n{}", cluster.logs(), cluster.log(4)));
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["voter"], true, "{body}");
    assert_eq!(voters(&leader_url).await, vec![1, 4]);
    let response = http()
        .get(format!("{leader_url}/set?key=a&value=b"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    wait_for_state(&waiting, WAIT, |s| s["voters"] == serde_json::json!([1, 4])).await;

    let response = http()
        .get(format!("{leader_url}/join?nodeId=n5&raftPort=80"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400, "no httpPort below 1000");
    drop(child);
}
