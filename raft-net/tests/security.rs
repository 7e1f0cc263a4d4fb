//! What an attacker on the same network tries: moving a member to its own address, admin
//! routes without the token, replaying captured datagrams, a damaged log; and TLS for the API.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{append, free_port, http, metric, spawn_node, Process, TestCluster, TestNode, BIN};
use raft_core::{Message, NodeId};
use raft_net::cluster_key::ClusterKey;
use raft_net::transport::{Codec, Opened};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

async fn members(url: &str) -> Value {
    http()
        .get(format!("{url}/api/v1/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A member's Raft address in a `/api/v1/members` answer.
fn raft_addr_of(members: &Value, id: u64) -> Option<String> {
    members["members"]
        .as_array()?
        .iter()
        .find(|member| member["id"] == id)
        .and_then(|member| member["raft_addr"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hijacking_a_member_is_refused_and_the_cluster_keeps_its_quorum() {
    let mut cluster = TestCluster::start(3, &[]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let mut followers = [1, 2, 3].into_iter().filter(|&id| id != leader);
    let (target, other) = (followers.next().unwrap(), followers.next().unwrap());
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.set_nonblocking(true).unwrap();
    let attacker_addr = attacker.local_addr().unwrap();
    let leader_url = cluster.node(leader).url("");
    let client = http();
    let real_raft = cluster.node(target).raft_addr.clone();
    let real_http = cluster.node(target).http_addr.clone();

    // The member's id with the attacker's address, through the API and the seed's GET.
    let response = client
        .post(format!("{leader_url}/api/v1/members"))
        .json(&json!({ "id": target, "raft_addr": attacker_addr.to_string(), "http_addr": "127.0.0.1:1" }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already a member"),
        "{body}"
    );
    let response = client
        .get(format!(
            "{leader_url}/join?nodeId=n{target}&raftPort={}&httpPort=1",
            attacker_addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
    // A new id at the member's address would take its datagrams as the new id's.
    let response = client
        .post(format!("{leader_url}/api/v1/members"))
        .json(&json!({ "id": 9, "raft_addr": real_raft, "http_addr": "127.0.0.1:2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
    // The explicit route moves members only on a node with an admin token.
    let response = client
        .put(format!("{leader_url}/api/v1/members/{target}/address"))
        .json(&json!({ "raft_addr": attacker_addr.to_string(), "http_addr": "127.0.0.1:1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // Adding the member again at its real addresses is what a retried join does: fine.
    let response = client
        .post(format!("{leader_url}/api/v1/members"))
        .json(&json!({ "id": target, "raft_addr": real_raft, "http_addr": real_http }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    for id in [1, 2, 3] {
        let members = members(&cluster.node(id).url("")).await;
        assert_eq!(
            raft_addr_of(&members, target).as_deref(),
            Some(real_raft.as_str()),
            "{members}"
        );
    }
    // The quorum still includes the target at its real address: with the third member down,
    // the leader and the target commit.
    cluster.kill(other);
    let (status, body) = append(cluster.node(leader), "after the attempts").await;
    assert_eq!(status, 200, "{body}\n{}", cluster.logs());
    let mut buf = [0; 64];
    assert!(
        attacker.recv_from(&mut buf).is_err(),
        "the attacker heard from the cluster"
    );
}

fn write_token(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

async fn wait_healthy_leader(url: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(response) = http().get(format!("{url}/healthz")).send().await {
            let health: Value = response.json().await.unwrap_or_default();
            if health["state"] == "LEADER" {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no leader at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every route that changes membership, leadership, snapshots or fault injection.
const ADMIN_ROUTES: [(&str, &str); 14] = [
    ("POST", "/api/v1/members"),
    ("DELETE", "/api/v1/members/5"),
    ("PUT", "/api/v1/members/1/address"),
    ("GET", "/join?nodeId=n5&raftPort=9999&httpPort=8999"),
    ("POST", "/api/v1/admin/transfer-leader?to=1"),
    ("POST", "/api/v1/admin/snapshot"),
    ("POST", "/api/v1/admin/isolate"),
    ("POST", "/api/v1/admin/heal"),
    ("POST", "/api/v1/admin/block"),
    ("POST", "/api/v1/admin/unblock"),
    ("GET", "/block"),
    ("POST", "/block"),
    ("GET", "/unblock"),
    ("POST", "/unblock"),
];

/// Reads and writes of the replicated state.
const CLIENT_ROUTES: [(&str, &str); 8] = [
    ("GET", "/api/v1/state"),
    ("GET", "/api/v1/members"),
    ("POST", "/api/v1/append"),
    ("PUT", "/api/v1/kv/k"),
    ("DELETE", "/api/v1/kv/k"),
    ("POST", "/api/v1/sessions"),
    ("GET", "/set?key=k&value=v"),
    ("GET", "/remove?key=k"),
];

async fn status_of(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
) -> (u16, bool) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, url).body("{\"command\":\"x\"}");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let challenged = response.headers().contains_key("www-authenticate");
    (response.status().as_u16(), challenged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_needs_the_admin_token() {
    let mut cluster = TestCluster::new(1, &[]);
    let admin = write_token(cluster.dir.path(), "admin", "admin-token-for-the-test-0001");
    let client_token = write_token(cluster.dir.path(), "client", "client-token-for-the-test-01");
    for (flag, path) in [("--admin-token", &admin), ("--client-token", &client_token)] {
        cluster.extra.push(flag.to_string());
        cluster.extra.push(path.display().to_string());
    }
    cluster.start_node(1);
    let url = cluster.node(1).url("");
    wait_healthy_leader(&url).await;
    let client = http();
    for (method, path) in ADMIN_ROUTES {
        let route = format!("{url}{path}");
        let (status, challenged) = status_of(&client, method, &route, None).await;
        assert_eq!((status, challenged), (401, true), "{method} {path}");
        let wrong = status_of(&client, method, &route, Some("not-the-token-0123456")).await;
        assert_eq!(wrong.0, 403, "{method} {path}");
        let client_only = status_of(
            &client,
            method,
            &route,
            Some("client-token-for-the-test-01"),
        )
        .await;
        assert_eq!(
            client_only.0, 403,
            "{method} {path}: the client token is not an admin token"
        );
    }
    for (method, path) in CLIENT_ROUTES {
        let route = format!("{url}{path}");
        assert_eq!(
            status_of(&client, method, &route, None).await.0,
            401,
            "{method} {path}"
        );
        let wrong = status_of(&client, method, &route, Some("not-the-token-0123456")).await;
        assert_eq!(wrong.0, 403, "{method} {path}");
        for token in [
            "client-token-for-the-test-01",
            "admin-token-for-the-test-0001",
        ] {
            let (status, _) = status_of(&client, method, &route, Some(token)).await;
            assert!(status < 300, "{method} {path} with a token: {status}");
        }
    }
    for path in ["/healthz", "/metrics"] {
        assert_eq!(
            status_of(&client, "GET", &format!("{url}{path}"), None)
                .await
                .0,
            200
        );
    }
    // With the admin token the routes work; the address of the one member moves to where it
    // already is.
    let node = cluster.node(1);
    let response = client
        .put(format!("{url}/api/v1/members/1/address"))
        .bearer_auth("admin-token-for-the-test-0001")
        .json(&json!({ "raft_addr": node.raft_addr, "http_addr": node.http_addr }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // `raft-net client` presents the token from its file.
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("client")
            .args(["--server", &url])
            .args(args)
            .current_dir(cluster.dir.path())
            .env_remove("RAFT_ADMIN_TOKEN_FILE")
            .env_remove("RAFT_CLIENT_TOKEN_FILE")
            .output()
            .unwrap()
    };
    let admin_flag = admin.display().to_string();
    let client_flag = client_token.display().to_string();
    let output = run(&["--client-token", &client_flag, "put", "k", "v"]);
    assert!(output.status.success(), "{output:?}");
    let output = run(&["--client-token", &client_flag, "snapshot"]);
    assert!(!output.status.success(), "the client token took a snapshot");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("403"),
        "{output:?}"
    );
    let output = run(&["--admin-token", &admin_flag, "snapshot"]);
    assert!(output.status.success(), "{output:?}");
    let output = run(&["get", "k"]);
    assert!(!output.status.success(), "a read without a token");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("401"),
        "{output:?}"
    );
}

/// Forwards datagrams between two nodes that know each other by the relay's addresses, and
/// keeps what it forwarded: an attacker on the path.
struct Relay {
    /// Node 1 sends to "node 2" here; replays to node 1 leave from here.
    toward_two: Arc<UdpSocket>,
    /// Node 2 sends to "node 1" here; replays to node 2 leave from here.
    toward_one: Arc<UdpSocket>,
    /// Datagrams node 1 sent to node 2, and node 2 to node 1.
    from_one: Arc<Mutex<Vec<Vec<u8>>>>,
    from_two: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(one: &str, two: &str) -> Relay {
        let toward_two = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let toward_one = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let relay = Relay {
            toward_two,
            toward_one,
            from_one: Arc::default(),
            from_two: Arc::default(),
            stop: Arc::default(),
        };
        let forward = |inbound: &Arc<UdpSocket>,
                       outbound: &Arc<UdpSocket>,
                       to: String,
                       kept: &Arc<Mutex<Vec<Vec<u8>>>>,
                       stop: &Arc<AtomicBool>| {
            let (inbound, outbound, kept, stop) = (
                Arc::clone(inbound),
                Arc::clone(outbound),
                Arc::clone(kept),
                Arc::clone(stop),
            );
            inbound
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            std::thread::spawn(move || {
                let mut buf = vec![0; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, _)) = inbound.recv_from(&mut buf) {
                        kept.lock().unwrap().push(buf[..len].to_vec());
                        let _ = outbound.send_to(&buf[..len], &to);
                    }
                }
            });
        };
        forward(
            &relay.toward_two,
            &relay.toward_one,
            two.to_string(),
            &relay.from_one,
            &relay.stop,
        );
        forward(
            &relay.toward_one,
            &relay.toward_two,
            one.to_string(),
            &relay.from_two,
            &relay.stop,
        );
        relay
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn state_of(node: &TestNode) -> Value {
    common::state(node).await
}

/// The follower's counters that a replay could move.
/// The follower's state once it follows `leader_id` and has committed the leader's last entry,
/// so that only a replay could move it: a heartbeat may still be due to carry that commit (on a
/// slow machine, the commit of the first entry of a leader elected again after the writes).
async fn settled(follower: &TestNode, leader: &TestNode, leader_id: u64) -> Value {
    let last = state_of(leader).await["last_log_index"].as_u64().unwrap();
    common::wait_for_state(follower, WAIT, |state| {
        state["commit_index"].as_u64() >= Some(last) && state["leader"] == leader_id
    })
    .await;
    state_of(follower).await
}

async fn follower_counters(node: &TestNode, id: u64) -> (u64, u64, u64) {
    let reason =
        |reason: &str| format!("raft_datagrams_dropped_total{{node=\"{id}\",reason=\"{reason}\"}}");
    (
        metric(node, &format!("raft_datagrams_in_total{{node=\"{id}\"}}")).await,
        metric(node, &reason("replayed")).await,
        metric(node, &reason("stale_epoch")).await,
    )
}

/// Sends `datagram` 1,000 times from `socket` to `to`, in bursts the socket buffer takes.
async fn replay_1000(socket: &UdpSocket, datagram: &[u8], to: &str) {
    for _ in 0..10 {
        for _ in 0..100 {
            socket.send_to(datagram, to).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_datagram_replayed_1000_times_changes_nothing() {
    const PASSPHRASE: &str = "correct horse battery staple";
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<TestNode> = (1..=2)
        .map(|id| TestNode {
            id,
            raft_addr: format!("127.0.0.1:{}", free_port()),
            http_addr: format!("127.0.0.1:{}", free_port()),
            data_dir: dir.path().join(format!("node{id}")),
            child: None,
        })
        .collect();
    let relay = Relay::start(&nodes[0].raft_addr, &nodes[1].raft_addr);
    // Each node knows the other at the relay's address.
    let peer_of = |id: u64| match id {
        1 => format!(
            "2={}@{}",
            relay.toward_two.local_addr().unwrap(),
            nodes[1].http_addr
        ),
        _ => format!(
            "1={}@{}",
            relay.toward_one.local_addr().unwrap(),
            nodes[0].http_addr
        ),
    };
    let start = |id: u64| {
        spawn_node(
            dir.path(),
            &nodes[(id - 1) as usize],
            &["--peer", &peer_of(id), "--cluster-key", PASSPHRASE],
        )
    };
    let mut processes: Vec<Option<Process>> = vec![Some(start(1)), Some(start(2))];
    let leader = wait_leader(&nodes).await;
    let follower = 3 - leader;
    for i in 0..5 {
        let (status, body) = append(&nodes[(leader - 1) as usize], &format!("entry {i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let leader_node = &nodes[(leader - 1) as usize];
    let follower_node = &nodes[(follower - 1) as usize];

    // The last AppendEntries that carried entries from the leader to the follower.
    let key = ClusterKey::from_passphrase(PASSPHRASE).unwrap();
    let codec = Codec::new(NodeId(follower), Some(&key), 48 * 1024);
    let captured_list = if leader == 1 {
        &relay.from_one
    } else {
        &relay.from_two
    };
    let captured = captured_list
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|datagram| {
            matches!(
                codec.open(datagram, Some(NodeId(leader))),
                Ok(Opened::Message { envelope, .. })
                    if matches!(&envelope.message, Message::AppendEntries(append) if !append.entries.is_empty())
            )
        })
        .cloned()
        .expect("an AppendEntries with entries went through the relay");
    // Replays reach the follower from the address it knows the leader by.
    let (replayer, follower_real) = if leader == 1 {
        (&relay.toward_one, follower_node.raft_addr.clone())
    } else {
        (&relay.toward_two, follower_node.raft_addr.clone())
    };

    let before = settled(follower_node, leader_node, leader).await;
    let (accepted, replayed, _) = follower_counters(follower_node, follower).await;
    replay_1000(replayer, &captured, &follower_real).await;
    let deadline = Instant::now() + WAIT;
    let (accepted_after, replayed_after) = loop {
        let (accepted_now, replayed_now, _) = follower_counters(follower_node, follower).await;
        if replayed_now >= replayed + 1000 || Instant::now() > deadline {
            break (accepted_now, replayed_now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        replayed_after - replayed,
        1000,
        "every replay dropped and counted"
    );
    assert!(
        accepted_after - accepted < 1000,
        "only heartbeats were accepted meanwhile ({} datagrams)",
        accepted_after - accepted
    );
    let after = state_of(follower_node).await;
    for field in ["term", "commit_index", "last_log_index", "leader"] {
        assert_eq!(before[field], after[field], "{field}: {before} / {after}");
    }

    // The follower restarts: it forgot its windows, but the capture names its old epoch.
    processes[(follower - 1) as usize] = None;
    processes[(follower - 1) as usize] = Some(start(follower));
    let before = settled(follower_node, leader_node, leader).await;
    let (accepted, _, stale) = follower_counters(follower_node, follower).await;
    replay_1000(replayer, &captured, &follower_real).await;
    let deadline = Instant::now() + WAIT;
    let (accepted_after, stale_after) = loop {
        let (accepted_now, _, stale_now) = follower_counters(follower_node, follower).await;
        if stale_now >= stale + 1000 || Instant::now() > deadline {
            break (accepted_now, stale_now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        stale_after - stale >= 1000,
        "replays after a restart dropped as stale"
    );
    assert!(accepted_after - accepted < 1000);
    let after = state_of(follower_node).await;
    for field in ["term", "commit_index", "last_log_index", "leader"] {
        assert_eq!(before[field], after[field], "{field}: {before} / {after}");
    }

    // The leader restarts with a new epoch: it is not locked out, the cluster writes again.
    processes[(leader - 1) as usize] = None;
    processes[(leader - 1) as usize] = Some(start(leader));
    let leader = wait_leader(&nodes).await;
    let (status, body) = append(&nodes[(leader - 1) as usize], "after the restarts").await;
    assert_eq!(status, 200, "{body}");
    drop(processes);
}

/// The id of the node that leads (by asking each).
async fn wait_leader(nodes: &[TestNode]) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        for node in nodes {
            if let Some(state) = common::try_state(node).await {
                if state["state"] == "LEADER" {
                    return node.id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_length_field_in_the_last_segment_refuses_start_up() {
    let mut cluster = TestCluster::start(1, &[]);
    cluster.wait_for_leader(&[1], WAIT).await;
    for i in 0..5 {
        let (status, body) = append(cluster.node(1), &format!("w{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    cluster.kill(1);
    let wal = cluster.node(1).data_dir.join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    segments.sort();
    let last = segments.last().unwrap().clone();
    let mut bytes = std::fs::read(&last).unwrap();
    // The first record's length (after the 8-byte magic and its batch's 8-byte header) now
    // points past the end of the file; batches acknowledged after it follow.
    let past = u32::try_from(bytes.len() + 1000).unwrap();
    bytes[16..20].copy_from_slice(&past.to_le_bytes());
    std::fs::write(&last, &bytes).unwrap();

    cluster.start_node(1);
    let child = cluster.nodes[0].child.as_mut().unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node started on a corrupt log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let log = cluster.log(1);
    assert!(log.contains("corrupt write-ahead log"), "{log}");
    assert!(log.contains(&last.display().to_string()), "{log}");
    assert!(log.contains("byte offset 16"), "{log}");
    // Refusing left the log as it was.
    assert_eq!(std::fs::read(&last).unwrap(), bytes);
}

/// A self-signed certificate for 127.0.0.1, as PEM files in `dir`: (certificate, key).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

fn https_client(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `count` consecutive ports, each free for TCP and UDP.
fn free_port_run(count: u16) -> u16 {
    loop {
        let base = free_port();
        if base.checked_add(count).is_none() {
            continue;
        }
        let free = (base..base + count).all(|port| {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        });
        if free {
            return base;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_client_bench_and_a_join_with_the_admin_token() {
    let mut cluster = TestCluster::new(3, &[]);
    let (cert, key) = self_signed(cluster.dir.path());
    let token = write_token(cluster.dir.path(), "admin", "admin-token-of-the-tls-test");
    for (flag, path) in [
        ("--tls-cert", &cert),
        ("--tls-key", &key),
        ("--admin-token", &token),
    ] {
        cluster.extra.push(flag.to_string());
        cluster.extra.push(path.display().to_string());
    }
    for id in 1..=3 {
        cluster.start_node(id);
    }
    let https = https_client(&cert);
    let url = |id: u64| format!("https://{}", cluster.node(id).http_addr);
    let deadline = Instant::now() + WAIT;
    let leader = 'found: loop {
        for id in 1..=3 {
            if let Ok(response) = https.get(format!("{}/healthz", url(id))).send().await {
                let health: Value = response.json().await.unwrap_or_default();
                if health["state"] == "LEADER" {
                    break 'found id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let follower = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    // A client that offers HTTP/2 by ALPN gets it.
    let health = https
        .get(format!("{}/healthz", url(leader)))
        .send()
        .await
        .unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    // Plain HTTP to an HTTPS port gets no answer.
    let plain = http()
        .get(format!("http://{}/healthz", cluster.node(leader).http_addr))
        .send()
        .await;
    assert!(plain.map_or(true, |response| !response.status().is_success()));

    // The client follows the follower's https redirect to the leader.
    let client = |args: &[&str]| {
        Command::new(BIN)
            .arg("client")
            .args(["--server", &url(follower)])
            .args(["--ca-cert", &cert.display().to_string()])
            .args(args)
            .current_dir(cluster.dir.path())
            .env_remove("RAFT_ADMIN_TOKEN_FILE")
            .output()
            .unwrap()
    };
    let output = client(&["put", "over-tls", "yes"]);
    assert!(output.status.success(), "{output:?}");
    let output = client(&["get", "over-tls"]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("\"yes\""),
        "{output:?}"
    );

    // A node joins over HTTPS through the follower, presenting the admin token.
    let joiner = TestNode {
        id: 4,
        raft_addr: format!("127.0.0.1:{}", free_port()),
        http_addr: format!("127.0.0.1:{}", free_port()),
        data_dir: cluster.dir.path().join("node4"),
        child: None,
    };
    let join_flags = [
        "--join".to_string(),
        url(follower),
        "--ca-cert".to_string(),
        cert.display().to_string(),
        "--admin-token".to_string(),
        token.display().to_string(),
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ];
    let join_flags: Vec<&str> = join_flags.iter().map(String::as_str).collect();
    let _joined = spawn_node(cluster.dir.path(), &joiner, &join_flags);
    let deadline = Instant::now() + WAIT;
    loop {
        let state: Value = https
            .get(format!("{}/api/v1/state?limit=0", url(leader)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if state["voters"].as_array().unwrap().contains(&json!(4)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 never joined\n{}",
            std::fs::read_to_string(cluster.dir.path().join("node4.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The load generator speaks TLS to a running cluster, HTTP/1.1 and HTTP/2...
    for http2 in [&[][..], &["--http2"]] {
        let output = Command::new(BIN)
            .args(["bench", "--target", &url(leader)])
            .args(["--ca-cert", &cert.display().to_string()])
            .args(["--clients", "4", "--ops", "200", "--warmup", "20"])
            .args(http2)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{http2:?} {output:?}");
        assert!(
            stdout.contains("200 committed") && stdout.contains("(0 errors)"),
            "{http2:?} {stdout}"
        );
    }
    // ...and to the HTTPS cluster it starts itself.
    let http_base = free_port_run(3).to_string();
    let raft_base = free_port_run(3).to_string();
    let output = Command::new(BIN)
        .args([
            "bench",
            "--http-base",
            &http_base,
            "--raft-base",
            &raft_base,
        ])
        .args(["--tls-cert", &cert.display().to_string()])
        .args(["--tls-key", &key.display().to_string()])
        .args(["--clients", "2", "--ops", "100", "--warmup", "10"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("100 committed") && stdout.contains("(0 errors)"),
        "{stdout}"
    );
}
