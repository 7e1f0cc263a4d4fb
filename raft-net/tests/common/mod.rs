//! Real `raft-net node` processes on 127.0.0.1 with free ports, and HTTP helpers.

#![allow(dead_code)]

use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_raft-net");

/// A port nobody listens on right now (TCP and UDP both free, so it can serve either), and
/// never one this test process was given before: the system may hand out a port it just
/// freed again, and two nodes of one cluster given the same one cannot both start.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port)
        {
            return port;
        }
    }
}

/// The first of `count` consecutive ports that are all free (TCP and UDP) right now.
pub fn free_port_run(count: u16) -> u16 {
    loop {
        let base = free_port();
        let Some(last) = base.checked_add(count - 1) else {
            continue;
        };
        let all_free = (base..=last).all(|port| {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
                && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        });
        if all_free {
            return base;
        }
    }
}

#[derive(Debug)]
pub struct TestNode {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }
}

/// A cluster of node processes, killed on drop.
#[derive(Debug)]
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
    pub extra: Vec<String>,
    /// Peers that are not processes of this cluster (test sockets posing as nodes).
    pub foreign_peers: Vec<String>,
}

impl TestCluster {
    /// Plans `n` nodes; `extra` flags go to every node. Nothing is started yet.
    pub fn new(n: u64, extra: &[&str]) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = (1..=n)
            .map(|id| TestNode {
                id,
                raft_addr: format!("127.0.0.1:{}", free_port()),
                http_addr: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node{id}")),
                child: None,
            })
            .collect();
        TestCluster {
            dir,
            nodes,
            extra: extra.iter().map(|flag| (*flag).to_string()).collect(),
            foreign_peers: Vec::new(),
        }
    }

    /// Starts every node.
    pub fn start(n: u64, extra: &[&str]) -> TestCluster {
        let mut cluster = TestCluster::new(n, extra);
        for id in 1..=n {
            cluster.start_node(id);
        }
        cluster
    }

    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn command(&self, id: u64) -> Command {
        let node = self.node(id);
        let mut command = Command::new(BIN);
        command
            .arg("node")
            .args(["--id", &id.to_string()])
            .args(["--raft-addr", &node.raft_addr])
            .args(["--http-addr", &node.http_addr])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--admin")
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .env_remove("RAFT_CLUSTER_KEY")
            .stdin(Stdio::null());
        for peer in self.nodes.iter().filter(|peer| peer.id != id) {
            command.args([
                "--peer",
                &format!("{}={}@{}", peer.id, peer.raft_addr, peer.http_addr),
            ]);
        }
        for peer in &self.foreign_peers {
            command.args(["--peer", peer]);
        }
        command
    }

    pub fn start_node(&mut self, id: u64) {
        let log_path = self.dir.path().join(format!("node{id}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let err = log.try_clone().expect("clone log");
        let child = self
            .command(id)
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn raft-net node");
        self.nodes[(id - 1) as usize].child = Some(child);
    }

    /// Starts node `id` with `extra` flags on top of the cluster's.
    pub fn start_node_with(&mut self, id: u64, extra: &[&str]) {
        let saved = self.extra.clone();
        self.extra
            .extend(extra.iter().map(|flag| (*flag).to_string()));
        self.start_node(id);
        self.extra = saved;
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[(id - 1) as usize].child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{id}.log"))).unwrap_or_default()
    }

    /// Waits for a leader among `among` (by asking each node); returns its id and term.
    pub async fn wait_for_leader(&self, among: &[u64], timeout: Duration) -> (u64, u64) {
        let deadline = Instant::now() + timeout;
        loop {
            for &id in among {
                if let Some(state) = try_state(self.node(id)).await {
                    if state["state"] == "LEADER" {
                        return (id, state["term"].as_u64().unwrap_or(0));
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {among:?} within {timeout:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- node {} ---\n{}", node.id, self.log(node.id)))
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A node process started outside a `TestCluster` (one that joins later), killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `node` with no `--peer` and with `flags`, logging to `node{id}.log` in `dir`.
pub fn spawn_node(dir: &std::path::Path, node: &TestNode, flags: &[&str]) -> Process {
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join(format!("node{}.log", node.id)))
        .expect("log file");
    Command::new(BIN)
        .arg("node")
        .args(["--id", &node.id.to_string()])
        .args(["--raft-addr", &node.raft_addr])
        .args(["--http-addr", &node.http_addr])
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(flags)
        .env("RUST_LOG", "info")
        .env_remove("RAFT_CLUSTER_KEY")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .map(Process)
        .expect("spawn raft-net node")
}

/// An HTTP client that does not follow redirects (tests look at the 307s).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn try_state(node: &TestNode) -> Option<Value> {
    let response = http()
        .get(node.url("/api/v1/state"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

pub async fn state(node: &TestNode) -> Value {
    try_state(node).await.expect("state")
}

/// The `command` strings of the `log` (or `uncommitted`) list of a state.
pub fn commands(state: &Value, list: &str) -> Vec<String> {
    state[list]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| entry["command"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls until `check` holds for the node's state.
pub async fn wait_for_state(
    node: &TestNode,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(state) = try_state(node).await {
            if check(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never reached the expected state; last: {state}",
                node.id
            );
        } else {
            assert!(
                Instant::now() < deadline,
                "node {} is not answering",
                node.id
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POST /api/v1/append; the status and JSON body.
pub async fn append(node: &TestNode, command: &str) -> (u16, Value) {
    let response = http()
        .post(node.url("/api/v1/append"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "command": command }).to_string())
        .send()
        .await
        .expect("append request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn metric(node: &TestNode, line_prefix: &str) -> u64 {
    let text = http()
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(line_prefix))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{text}"))
}

/// `PUT /api/v1/kv/{key}` with `value`; the status (0 when no answer came).
pub async fn put(node: &TestNode, key: &str, value: &str) -> u16 {
    match http()
        .put(node.url(&format!("/api/v1/kv/{key}")))
        .body(value.to_string())
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Writes 25 values of 40,000 control bytes, which JSON escapes six to one: `GET
/// /api/v1/state?limit=10000` then answers with a page of about 6 MB, in one piece.
pub async fn write_a_6_mb_state_page(node: &TestNode) {
    let client = http();
    for i in 0..25 {
        let response = client
            .put(node.url(&format!("/api/v1/kv/big{i}")))
            .body(vec![1u8; 40_000])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
}

/// `GET /api/v1/kv/{key}` (linearizable unless `stale`); the status (0 when no answer came)
/// and the body.
pub async fn get(node: &TestNode, key: &str, stale: bool) -> (u16, String) {
    let query = if stale { "?stale=true" } else { "" };
    match http()
        .get(node.url(&format!("/api/v1/kv/{key}{query}")))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// `POST` to an admin route without a body; panics unless it answers 2xx.
pub async fn admin_post(node: &TestNode, path: &str) {
    let response = http()
        .post(node.url(path))
        .send()
        .await
        .expect("admin request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

/// `GET /api/v1/members` of `node`, or `Null`.
pub async fn members(node: &TestNode) -> Value {
    match http().get(node.url("/api/v1/members")).send().await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// The member `id` of a `/api/v1/members` answer.
pub fn member(members: &Value, id: u64) -> Value {
    members["members"]
        .as_array()
        .and_then(|all| all.iter().find(|member| member["id"] == id).cloned())
        .unwrap_or(Value::Null)
}
