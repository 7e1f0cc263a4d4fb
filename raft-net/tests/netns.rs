//! Three nodes on three hosts: each in its own network namespace with its own address, on one
//! bridge, so faults are the kernel's: a node's link is cut (`ip link set ... down`), a node
//! is killed, its data dir wiped and the node started again with `--initial-cluster-state
//! existing`. Meanwhile one client writes and reads a register and writes a key per step; the
//! history must be linearizable, and every acknowledged write must read back at the end.
//!
//! Needs root and iproute2 (`ip netns`); skipped with a message otherwise (CI runs as root).
//! Every namespace and link it makes has a name unique to the run and is removed when the test
//! ends, failed or not (`Network`'s `Drop`).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::BIN;
use serde_json::Value;

const NODES: u64 = 3;
const RAFT_PORT: u16 = 9000;
const HTTP_PORT: u16 = 8000;
const WAIT: Duration = Duration::from_secs(20);

/// Whether this process runs as root (the namespace commands need it).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .map(|uids| uids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

fn has_ip() -> bool {
    Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs `ip ARGS`; the error names the command.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("ip {}: {error}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The namespaces, links and node processes of one run; all removed on drop.
struct Network {
    tag: String,
    subnet: String,
    namespaces: Vec<String>,
    links: Vec<String>,
    bridge: Option<String>,
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
}

impl Network {
    fn namespace(&self, id: u64) -> String {
        format!("{}n{id}", self.tag)
    }

    fn host_link(&self, id: u64) -> String {
        format!("{}h{id}", self.tag)
    }

    fn addr(&self, id: u64) -> String {
        format!("{}.{id}", self.subnet)
    }

    fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}:{HTTP_PORT}{path}", self.addr(id))
    }

    fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}.log"))
    }

    fn logs(&self) -> String {
        (1..=NODES)
            .map(|id| {
                let log = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
                format!("--- node {id} ---\n{log}")
            })
            .collect()
    }

    /// A bridge, and one namespace per node linked to it by a veth pair, with an address in a
    /// /24 no interface of this host uses; the bridge has `.254` so the test can reach them.
    fn create(tag: String) -> Result<Network, String> {
        let used = Command::new("ip")
            .args(["-4", "-o", "addr"])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
        let seed = u32::from_str_radix(&tag[2..], 16).unwrap_or(0);
        let subnet = (0..250)
            .map(|step| format!("10.213.{}", 1 + (seed + step) % 250))
            .find(|subnet| !used.contains(&format!("{subnet}.")))
            .ok_or("no free 10.213.x.0/24 subnet")?;
        let mut network = Network {
            subnet,
            namespaces: Vec::new(),
            links: Vec::new(),
            bridge: None,
            dir: tempfile::tempdir().map_err(|error| error.to_string())?,
            children: (0..NODES).map(|_| None).collect(),
            tag,
        };
        let bridge = format!("{}b", network.tag);
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        network.bridge = Some(bridge.clone());
        ip(&["link", "set", &bridge, "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.254/24", network.subnet),
            "dev",
            &bridge,
        ])?;
        for id in 1..=NODES {
            let namespace = network.namespace(id);
            let host = network.host_link(id);
            let inside = format!("{}e{id}", network.tag);
            ip(&["netns", "add", &namespace])?;
            network.namespaces.push(namespace.clone());
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inside,
            ])?;
            network.links.push(host.clone());
            ip(&["link", "set", &inside, "netns", &namespace])?;
            ip(&["link", "set", &host, "master", &bridge, "up"])?;
            let cidr = format!("{}/24", network.addr(id));
            ip(&["-n", &namespace, "addr", "add", &cidr, "dev", &inside])?;
            ip(&["-n", &namespace, "link", "set", &inside, "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    /// Starts node `id` inside its namespace.
    fn start(&mut self, id: u64, extra: &[&str]) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("log file");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(id), BIN, "node"])
            .args(["--id", &id.to_string()])
            .args(["--raft-addr", &format!("{}:{RAFT_PORT}", self.addr(id))])
            .args(["--http-addr", &format!("{}:{HTTP_PORT}", self.addr(id))])
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .args(["--admin", "--commit-timeout-ms", "1500"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("RAFT_CLUSTER_KEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        for peer in (1..=NODES).filter(|&peer| peer != id) {
            command.args([
                "--peer",
                &format!(
                    "{peer}={}:{RAFT_PORT}@{}:{HTTP_PORT}",
                    self.addr(peer),
                    self.addr(peer)
                ),
            ]);
        }
        // `ip netns exec` execs the node in place, so the child is the node itself.
        self.children[(id - 1) as usize] = Some(command.spawn().expect("spawn a node"));
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children[(id - 1) as usize].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Cuts (or restores) node `id`'s only link, at the kernel.
    fn set_link(&self, id: u64, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["link", "set", &self.host_link(id), state]).expect("set the link");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for id in 1..=NODES {
            self.kill(id);
        }
        // Deleting a namespace frees its end of a veth pair only once the kernel gets to it;
        // deleting the host end removes both at once.
        for link in &self.links {
            let _ = ip(&["link", "del", link]);
        }
        for namespace in &self.namespaces {
            let _ = ip(&["netns", "del", namespace]);
        }
        if let Some(bridge) = &self.bridge {
            let _ = ip(&["link", "del", bridge]);
        }
    }
}

/// A name prefix no other run uses now: the process id and the clock, five hex digits.
fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let mixed = (std::process::id().wrapping_mul(2_654_435_761)) ^ nanos;
    format!("rn{:05x}", mixed & 0xf_ffff)
}

/// One operation of the client's history, in the order it ran (one at a time).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// A write of the register, acknowledged (`true`) or of unknown outcome.
    Write { value: String, acked: bool },
    /// A linearizable read of the register that answered.
    Read { value: Option<String> },
}

/// Checks a sequential history of a register whose writes all have distinct values: each read
/// returns what the latest acknowledged write before it set, or a write of unknown outcome
/// that may have taken effect since (once: a value read and then overwritten cannot return).
fn check_register(history: &[Op]) -> Result<(), String> {
    let mut current: Option<String> = None;
    let mut possible: BTreeSet<Option<String>> = [None].into_iter().collect();
    let mut pending: BTreeSet<String> = BTreeSet::new();
    for (position, op) in history.iter().enumerate() {
        match op {
            Op::Write { value, acked: true } => {
                pending.remove(value);
                current = Some(value.clone());
                possible = [current.clone()].into_iter().collect();
            }
            Op::Write {
                value,
                acked: false,
            } => {
                pending.insert(value.clone());
            }
            Op::Read { value } => {
                let allowed = possible.contains(value)
                    || value.as_ref().is_some_and(|value| pending.contains(value));
                if !allowed {
                    return Err(format!(
                        "op {position}: read {value:?}; the register holds {current:?} or one of {pending:?}"
                    ));
                }
                if let Some(value) = value {
                    pending.remove(value);
                }
                current = value.clone();
                possible = [current.clone()].into_iter().collect();
            }
        }
    }
    Ok(())
}

/// How a request ended.
enum Answer {
    Ok(u16, String),
    /// No answer, or `504`: a write may or may not have taken effect.
    Unknown,
    /// A definite refusal (no leader, busy, overwritten).
    Refused,
}

async fn request(request: reqwest::RequestBuilder) -> Answer {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            match status {
                200 | 404 => Answer::Ok(status, body),
                504 => Answer::Unknown,
                _ => Answer::Refused,
            }
        }
        Err(_) => Answer::Unknown,
    }
}

/// The client: writes the register and one fresh key per step, reads the register, trying
/// the nodes in turn (redirects followed); records the register's history and the keys whose
/// writes were acknowledged.
async fn client(
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Op>>>,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut target = 0;
    let mut step = 0;
    while !stop.load(Ordering::Relaxed) {
        step += 1;
        let url = &urls[target % urls.len()];
        let value = format!("v{step}");
        let write = http
            .put(format!("{url}/api/v1/kv/register"))
            .body(value.clone());
        let moved = match request(write).await {
            Answer::Ok(_, _) => {
                history
                    .lock()
                    .unwrap()
                    .push(Op::Write { value, acked: true });
                false
            }
            Answer::Unknown => {
                history.lock().unwrap().push(Op::Write {
                    value,
                    acked: false,
                });
                true
            }
            Answer::Refused => true,
        };
        let key = format!("k{step}");
        let put = http
            .put(format!("{url}/api/v1/kv/{key}"))
            .body(format!("value {step}"));
        if let Answer::Ok(200, _) = request(put).await {
            acked.lock().unwrap().push(key);
        }
        let read = http.get(format!("{url}/api/v1/kv/register"));
        match request(read).await {
            Answer::Ok(200, body) => history.lock().unwrap().push(Op::Read { value: Some(body) }),
            Answer::Ok(_, _) => history.lock().unwrap().push(Op::Read { value: None }),
            Answer::Unknown | Answer::Refused => {}
        }
        if moved {
            target += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn state(network: &Network, id: u64) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(network.url(id, "/api/v1/state?limit=0"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

async fn wait_for_leader(network: &Network, among: &[u64]) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        for &id in among {
            if let Some(state) = state(network, id).await {
                if state["state"] == "LEADER" {
                    return id;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader among {among:?}\n{}",
            network.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader's view of member `id`: voter, and the incarnation recorded for it.
async fn wait_for_voter(network: &Network, id: u64, incarnation: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = wait_for_leader(network, &[1, 2, 3]).await;
        let members: Value = match reqwest::Client::new()
            .get(network.url(leader, "/api/v1/members"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let back = members["members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["id"] == id && m["voter"] == true && m["incarnation"] == incarnation);
        if back {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} never came back as a voter in incarnation {incarnation}: {members}\n{}",
            network.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_survive_cut_links_and_a_wiped_disk_with_a_linearizable_history() {
    if !is_root() || !has_ip() {
        eprintln!(
            "SKIPPED three_hosts_survive_cut_links_and_a_wiped_disk_with_a_linearizable_history: \
             it needs root and iproute2 (ip netns) to build network namespaces; CI runs it as root"
        );
        return;
    }
    let mut network = Network::create(unique_tag()).unwrap_or_else(|error| {
        panic!("cannot build the test network (running as root with iproute2): {error}")
    });
    for id in 1..=NODES {
        network.start(id, &[]);
    }
    let first = wait_for_leader(&network, &[1, 2, 3]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let urls: Vec<String> = (1..=NODES).map(|id| network.url(id, "")).collect();
    let load = tokio::spawn(client(
        urls,
        Arc::clone(&stop),
        Arc::clone(&history),
        Arc::clone(&acked),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The leader's link goes down: the other two elect a leader and go on.
    network.set_link(first, false);
    let others: Vec<u64> = (1..=NODES).filter(|&id| id != first).collect();
    let second = wait_for_leader(&network, &others).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    network.set_link(first, true);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // A follower's disk is replaced: killed, wiped, started as a returning server.
    let wiped = (1..=NODES)
        .find(|&id| id != second && id != first)
        .unwrap_or(first);
    network.kill(wiped);
    std::fs::remove_dir_all(network.data_dir(wiped)).unwrap();
    network.start(wiped, &["--initial-cluster-state", "existing"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // The leader's link goes down again, perhaps before the wiped node is back as a voter:
    // then the two left cannot elect anyone (the empty one does not vote), which is safe.
    let leader = wait_for_leader(&network, &[1, 2, 3]).await;
    network.set_link(leader, false);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    network.set_link(leader, true);

    // Everything heals: the wiped node is a voter again, in its new incarnation.
    let incarnation = {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(state) = state(&network, wiped).await {
                break state["incarnation"].as_u64().unwrap();
            }
            assert!(Instant::now() < deadline, "node {wiped} does not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait_for_voter(&network, wiped, incarnation).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    let mut history = history.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "too few acknowledged writes ({}) for the test to mean anything\n{}",
        acked.len(),
        network.logs()
    );
    // A final read through the leader belongs to the history too.
    let leader = wait_for_leader(&network, &[1, 2, 3]).await;
    let http = reqwest::Client::new();
    let response = http
        .get(network.url(leader, "/api/v1/kv/register"))
        .send()
        .await
        .unwrap();
    let found = response.status().as_u16() == 200;
    let body = response.text().await.unwrap();
    history.push(Op::Read {
        value: found.then_some(body),
    });
    check_register(&history).unwrap_or_else(|error| {
        panic!(
            "not linearizable: {error}\nhistory: {history:?}\n{}",
            network.logs()
        )
    });

    // No acknowledged write is lost: each reads back through the leader, and from every
    // replica once it has caught up.
    let commit = state(&network, leader).await.unwrap()["commit_index"]
        .as_u64()
        .unwrap();
    for id in 1..=NODES {
        let deadline = Instant::now() + WAIT;
        while state(&network, id)
            .await
            .is_none_or(|state| state["applied_index"].as_u64() < Some(commit))
        {
            assert!(Instant::now() < deadline, "node {id} does not catch up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for key in &acked {
        let step = key.trim_start_matches('k');
        for (id, query) in [(leader, "")]
            .into_iter()
            .chain((1..=NODES).map(|id| (id, "?stale=true")))
        {
            let response = http
                .get(network.url(id, &format!("/api/v1/kv/{key}{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                200,
                "acknowledged write {key} missing on node {id}"
            );
            assert_eq!(response.text().await.unwrap(), format!("value {step}"));
        }
    }
    drop(network);
}

#[test]
fn the_register_checker_refuses_what_a_register_cannot_do() {
    let write = |value: &str, acked: bool| Op::Write {
        value: value.to_string(),
        acked,
    };
    let read = |value: Option<&str>| Op::Read {
        value: value.map(str::to_string),
    };
    // An unknown write may land later, once; an acknowledged one must be seen.
    let fine = [
        read(None),
        write("a", true),
        read(Some("a")),
        write("b", false),
        read(Some("a")),
        write("c", true),
        read(Some("b")),
        read(Some("b")),
        write("d", true),
        read(Some("d")),
    ];
    check_register(&fine).unwrap();
    for bad in [
        vec![write("a", true), read(None)],
        vec![write("a", true), write("b", true), read(Some("a"))],
        vec![
            write("a", false),
            read(Some("a")),
            write("b", true),
            read(Some("a")),
        ],
        vec![read(Some("never written"))],
        vec![write("a", true), read(Some("a")), read(None)],
    ] {
        assert!(check_register(&bad).is_err(), "{bad:?}");
    }
}
