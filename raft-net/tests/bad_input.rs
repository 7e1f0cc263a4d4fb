//! Bad input over HTTP and UDP: clear errors, and the node keeps serving.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{http, metric, TestCluster};
use raft_core::{Envelope, LogIndex, Message, NodeId, RequestVote, Term};
use raft_net::cluster_key::ClusterKey;
use raft_net::transport::{Codec, Opened, Stamp};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

async fn status_and_error(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    (
        status,
        body["error"].as_str().expect("an error field").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_clear_json_errors() {
    let cluster = TestCluster::start(1, &[]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let node = cluster.node(1);
    let client = http();

    let response = client
        .post(node.url("/api/v1/append"))
        .body("{\"command\": ")
        .send()
        .await
        .unwrap();
    let (status, error) = status_and_error(response).await;
    assert_eq!(status, 400);
    assert!(error.contains("malformed JSON"), "{error}");

    let response = client
        .put(node.url("/api/v1/kv/big"))
        .body(vec![b'x'; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    let (status, error) = status_and_error(response).await;
    assert_eq!(status, 413);
    assert!(error.contains("1048576"), "{error}");

    let long_key = "k".repeat(1025);
    let response = client
        .put(node.url(&format!("/api/v1/kv/{long_key}")))
        .body("v")
        .send()
        .await
        .unwrap();
    let (status, error) = status_and_error(response).await;
    assert_eq!(status, 400);
    assert!(error.contains("1024"), "{error}");

    // Under the body limit but over what one datagram can carry.
    let response = client
        .put(node.url("/api/v1/kv/wide"))
        .body(vec![b'x'; 60 * 1024])
        .send()
        .await
        .unwrap();
    let (status, error) = status_and_error(response).await;
    assert_eq!(status, 400);
    assert!(error.contains("datagram"), "{error}");

    let response = client.get(node.url("/no/such/route")).send().await.unwrap();
    assert_eq!(status_and_error(response).await.0, 404);
    let response = client
        .get(node.url("/api/v1/state?from=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(response).await.0, 400);
    let response = client
        .get(node.url("/api/v1/kv/missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_error(response).await,
        (404, "key not found".to_string())
    );

    // Still serving: a write and a linearizable read.
    let response = client
        .put(node.url("/api/v1/kv/alive"))
        .body("yes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = client
        .get(node.url("/api/v1/kv/alive"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "yes");
    let response = client.get(node.url("/get?key=alive")).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["value"], "yes");
}

fn vote_request() -> Envelope {
    Envelope {
        from: NodeId(2),
        to: NodeId(1),
        term: Term(1),
        incarnation: raft_core::Incarnation(0),
        message: Message::RequestVote(RequestVote {
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            leadership_transfer: false,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_are_dropped_counted_and_harmless() {
    // Node 1's only peer is a socket of this test, so the test can speak for "node 2".
    let fake_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake_peer.local_addr().unwrap();
    let key = ClusterKey::from_bytes(*b"garbage datagrams test key 32 b.");
    let mut cluster = TestCluster::new(1, &[]);
    let key_file = cluster.dir.path().join("cluster.key");
    std::fs::write(&key_file, key.as_bytes()).unwrap();
    cluster.extra.push("--cluster-key-file".to_string());
    cluster.extra.push(key_file.display().to_string());
    cluster
        .foreign_peers
        .push(format!("2={fake_addr}@127.0.0.1:1"));
    cluster.start_node(1);
    let node = cluster.node(1);
    let raft_addr = node.raft_addr.as_str();
    let client = http();
    let deadline = std::time::Instant::now() + WAIT;
    while client.get(node.url("/healthz")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Node 1 announced its epoch to its peers when it started: "node 2" needs it to stamp
    // datagrams node 1 accepts.
    let codec = Codec::new(NodeId(2), Some(&key), 48 * 1024);
    fake_peer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0; 2048];
    let epoch = loop {
        let (len, _) = fake_peer.recv_from(&mut buf).expect("node 1's notice");
        if let Ok(Opened::Notice { stamp, .. }) = codec.open(&buf[..len], Some(NodeId(1))) {
            break stamp.sender_epoch;
        }
    };
    let stamp = Stamp {
        sender_epoch: 1,
        receiver_epoch: epoch,
        counter: 1,
    };
    let unkeyed = Codec::new(NodeId(2), None, 48 * 1024)
        .seal(&vote_request(), stamp)
        .unwrap();
    let keyed = codec.seal(&vote_request(), stamp).unwrap();
    stranger.send_to(&keyed, raft_addr).unwrap();
    fake_peer
        .send_to(b"\x52\x03\x01\0\0\0\0\0\0\0\0garbage", raft_addr)
        .unwrap();
    fake_peer.send_to(&unkeyed, raft_addr).unwrap();
    fake_peer.send_to(&[0x52; 60_000], raft_addr).unwrap();
    fake_peer.send_to(&[], raft_addr).unwrap();
    fake_peer.send_to(&keyed, raft_addr).unwrap();

    let prefix =
        |reason: &str| format!("raft_datagrams_dropped_total{{node=\"1\",reason=\"{reason}\"}}");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let accepted = metric(node, "raft_datagrams_in_total{node=\"1\"}").await;
        let unknown = metric(node, &prefix("unknown_sender")).await;
        let unauthenticated = metric(node, &prefix("unauthenticated")).await;
        let oversize = metric(node, &prefix("oversize")).await;
        if accepted >= 1 && unknown >= 1 && unauthenticated >= 2 && oversize >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "in {accepted} unknown {unknown} unauthenticated {unauthenticated} oversize {oversize}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The authenticated vote request was answered (a vote for "node 2" in term 1).
    loop {
        // Node 1 also campaigns on its own (its vote requests arrive here too); look for the
        // answer to ours.
        let (len, from) = fake_peer.recv_from(&mut buf).expect("a reply from node 1");
        assert_eq!(from.to_string(), raft_addr);
        let opened = codec
            .open(&buf[..len], Some(NodeId(1)))
            .expect("authenticated datagrams");
        let Opened::Message { envelope, .. } = opened else {
            continue;
        };
        assert_eq!(envelope.from, NodeId(1));
        if matches!(envelope.message, Message::RequestVoteResponse(_)) {
            break;
        }
    }

    let response = client.get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
}
