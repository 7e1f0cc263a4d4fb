//! Removing a member through the HTTP API changes the voter set through the log.

mod common;

use std::time::Duration;

use common::{append, http, TestCluster};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_no_longer_counts() {
    let mut cluster = TestCluster::start(3, &[]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let removed = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let client = http();

    let (status, body) = append(cluster.node(leader), "before").await;
    assert_eq!(status, 200, "{body}");
    let response = client
        .delete(
            cluster
                .node(leader)
                .url(&format!("/api/v1/members/{removed}")),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"].as_u64(), Some(removed));

    let members: Value = client
        .get(cluster.node(leader).url("/api/v1/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{members}");
    assert!(!ids.contains(&removed), "{members}");

    // Removing it again is refused; the two remaining voters commit without it.
    let response = client
        .delete(
            cluster
                .node(leader)
                .url(&format!("/api/v1/members/{removed}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
    cluster.kill(removed);
    let (status, body) = append(cluster.node(leader), "after").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request() {
    let cluster = TestCluster::start(3, &[]);
    let (leader, term) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let target = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let client = http();
    let response = client
        .post(
            cluster
                .node(leader)
                .url(&format!("/api/v1/admin/transfer-leader?to={target}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let (new_leader, new_term) = cluster.wait_for_leader(&[target], WAIT).await;
    assert_eq!(new_leader, target);
    assert!(new_term > term);
    let (status, body) = append(cluster.node(target), "after transfer").await;
    assert_eq!(status, 200, "{body}");
}
