//! The disk-loss story on real processes (the simulator's `disk-loss.scn`): A and B hold a
//! write C lacks; B's disk is replaced and B comes back with `--initial-cluster-state
//! existing`; A dies. B and C are a majority of the voters, yet they must not elect a leader
//! without the write, acknowledge a write or serve a read; once A returns, the cluster
//! recovers with the write everywhere, and the leader re-adds B as a voter in its new
//! incarnation, with no operator command.

mod common;

use std::time::{Duration, Instant};

use common::{
    admin_post, get, member, members, put, try_state, wait_for_state, TestCluster, TestNode,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Polls `node`'s `/api/v1/members` until `check` holds.
async fn wait_for_members(
    cluster: &TestCluster,
    id: u64,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = members(cluster.node(id)).await;
        if check(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "node {id}: {what} never held; last: {now}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether every one of `ids` is a voter with a recorded incarnation in `members`.
fn all_recorded(members: &Value, ids: &[u64]) -> bool {
    ids.iter().all(|&id| {
        let member = member(members, id);
        member["voter"] == true && member["incarnation"].is_u64()
    })
}

async fn wait_for_value(node: &TestNode, key: &str, value: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(node, key, true).await;
        if status == 200 && body == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {}: {key} is {status} {body:?}, expected {value:?}",
            node.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_and_a_dead_leader_never_cost_an_acknowledged_write() {
    let mut cluster = TestCluster::start(3, &["--commit-timeout-ms", "1500"]);
    let (a, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != a).collect();
    let (b, c) = (followers[0], followers[1]);
    assert_eq!(put(cluster.node(a), "x", "1").await, 200);
    // Before the story starts, C's membership records every member's first incarnation (the
    // first leader records them as it hears them). Before that, a wiped initial member
    // restarted as one (`--initial-cluster-state new`) is the core's documented window.
    wait_for_members(&cluster, c, "every incarnation recorded", |m| {
        all_recorded(m, &[1, 2, 3])
    })
    .await;
    let before = members(cluster.node(a)).await;
    let b_first = member(&before, b)["incarnation"].as_u64().unwrap();
    let cluster_id = before["cluster_id"].as_str().unwrap().to_string();

    // C is cut off; y commits on A and B.
    admin_post(cluster.node(c), "/api/v1/admin/isolate").await;
    assert_eq!(put(cluster.node(a), "y", "2").await, 200);

    // B's disk is replaced: it comes back empty, as a returning server; A dies; C returns.
    cluster.kill(b);
    std::fs::remove_dir_all(&cluster.node(b).data_dir).unwrap();
    cluster.start_node_with(b, &["--initial-cluster-state", "existing"]);
    cluster.kill(a);
    admin_post(cluster.node(c), "/api/v1/admin/heal").await;
    let returned = wait_for_state(cluster.node(b), WAIT, |s| s["incarnation"].is_u64()).await;
    let b_second = returned["incarnation"].as_u64().unwrap();
    assert!(b_second > b_first, "{b_second} after {b_first}");
    assert!(returned["voters"].as_array().unwrap().is_empty());

    // B and C are two of the three voters, and C lacks y: over many election timeouts,
    // neither leads, no write is acknowledged, no read served.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        for id in [b, c] {
            if let Some(state) = try_state(cluster.node(id)).await {
                assert_ne!(state["state"], "LEADER", "node {id}: {state}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(put(cluster.node(c), "z", "3").await, 200);
    assert_ne!(get(cluster.node(c), "x", false).await.0, 200);
    assert_ne!(get(cluster.node(b), "x", false).await.0, 200);
    // B learned the cluster's id from C's datagrams.
    let b_state = try_state(cluster.node(b)).await.unwrap();
    assert_eq!(b_state["cluster_id"], cluster_id.as_str(), "{b_state}");
    let meta = raft_net::storage::read_meta(&cluster.node(b).data_dir)
        .unwrap()
        .unwrap();
    assert_eq!(
        meta.cluster_id.map(|id| id.to_string()).as_deref(),
        Some(cluster_id.as_str()),
        "recorded in meta.json"
    );
    assert!(meta.voters.is_empty());

    // A returns: it leads with y, and re-adds B in its new incarnation.
    cluster.start_node(a);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    assert_ne!(leader, b);
    for id in [a, b, c] {
        wait_for_value(cluster.node(id), "y", "2").await;
        wait_for_value(cluster.node(id), "x", "1").await;
    }
    let after = wait_for_members(&cluster, leader, "B re-added in its new incarnation", |m| {
        let member = member(m, b);
        member["voter"] == true && member["incarnation"] == b_second
    })
    .await;
    assert_eq!(member(&after, b)["returning"], false, "{after}");
    assert_eq!(put(cluster.node(leader), "after", "4").await, 200);
    for id in [a, b, c] {
        wait_for_value(cluster.node(id), "after", "4").await;
    }
    assert!(
        cluster.log(b).contains("recorded the cluster id"),
        "{}",
        cluster.log(b)
    );
}
