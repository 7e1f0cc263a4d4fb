//! Exactly-once writes through client sessions (`POST /api/v1/sessions`, `?client_id=&seq=`),
//! and `POST /api/v1/admin/snapshot`, against a real three-node cluster.

mod common;

use std::time::Duration;

use common::{http, state, TestCluster};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_session_write_is_applied_once() {
    let cluster = TestCluster::start(3, &[]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let node = cluster.node(leader);
    let client = http();

    let (status, opened) = send(client.post(node.url("/api/v1/sessions"))).await;
    assert_eq!(status, 200, "{opened}");
    let id = opened["client_id"].as_u64().expect("a client id");
    assert_eq!(
        Some(id),
        opened["index"].as_u64(),
        "the id is the entry's index"
    );

    let put = |seq: u64, value: &str| {
        client
            .put(node.url(&format!("/api/v1/kv/k?client_id={id}&seq={seq}")))
            .body(value.to_string())
    };
    let (status, first) = send(put(1, "one")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["replaced"], false);
    let (status, second) = send(put(2, "two")).await;
    assert_eq!((status, &second["replaced"]), (200, &Value::Bool(true)));

    // A retry of the latest write (its reply lost, say) commits again but is not applied
    // again: it answers as the first time did.
    let (status, retried) = send(put(2, "two")).await;
    assert_eq!((status, &retried["replaced"]), (200, &Value::Bool(true)));
    // A straggler of an older write is refused, not applied over the newer value.
    let (status, stale) = send(put(1, "one")).await;
    assert_eq!(status, 409, "{stale}");
    assert_eq!(stale["last_seq"], 2);
    let value = client
        .get(node.url("/api/v1/kv/k"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(value, "two");

    // Appends count: four appends with two retries leave two applied.
    for seq in [3, 3, 4, 4] {
        let (status, body) = send(
            client
                .post(node.url(&format!("/api/v1/append?client_id={id}&seq={seq}")))
                .header("content-type", "application/json")
                .body(format!(r#"{{"command":"m{seq}"}}"#)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let listed = common::commands(&state(node).await, "log");
    assert_eq!(
        listed.iter().filter(|c| c.starts_with('m')).count(),
        4,
        "the log holds every copy: {listed:?}"
    );

    let (status, body) = send(
        client
            .put(node.url("/api/v1/kv/k?client_id=999999&seq=1"))
            .body("x"),
    )
    .await;
    assert_eq!(status, 410, "{body}");
    assert!(body["error"].as_str().unwrap().contains("session"));
    for query in [
        format!("client_id={id}"),
        format!("client_id={id}&seq=0"),
        "seq=1".into(),
    ] {
        let url = node.url(&format!("/api/v1/kv/k?{query}"));
        let (status, body) = send(client.put(url).body("x")).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_snapshot_compacts_the_log() {
    let cluster = TestCluster::start(3, &[]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let node = cluster.node(leader);
    let client = http();
    for i in 0..10 {
        let response = client
            .put(node.url(&format!("/api/v1/kv/key-{i}")))
            .body(format!("value-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let applied = state(node).await["applied_index"].as_u64().unwrap();
    let (status, body) = send(client.post(node.url("/api/v1/admin/snapshot"))).await;
    assert_eq!(status, 200, "{body}");
    let index = body["snapshot_index"].as_u64().unwrap();
    assert!(index >= applied, "{index} < {applied}");
    let after = state(node).await;
    assert_eq!(after["snapshot_index"].as_u64(), Some(index), "{after}");
    // Nothing new applied: nothing to snapshot.
    let (status, body) = send(client.post(node.url("/api/v1/admin/snapshot"))).await;
    assert_eq!(status, 409, "{body}");
    // The compacted store still serves every key.
    for i in [0, 9] {
        let value = client
            .get(node.url(&format!("/api/v1/kv/key-{i}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(value, format!("value-{i}"));
    }
}
