//! `raft-net cluster` starts its nodes (admin routes behind the token it generates, client
//! routes open) and takes them down with it, even when it is killed with SIGKILL and cannot
//! clean up.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_stop_when_the_cluster_command_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, raft_port) = (free_port(), free_port());
    let mut cluster = Command::new(BIN)
        .args(["cluster", "--nodes", "1"])
        .args(["--http-base", &http_port.to_string()])
        .args(["--raft-base", &raft_port.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{http_port}/healthz");
    let answers = || async { http().get(&url).send().await.is_ok() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers().await {
        assert!(Instant::now() < deadline, "the node never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Client writes need no token; admin routes need the token the command wrote.
    let base = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = http()
            .put(format!("{base}/api/v1/kv/greeting"))
            .body("hello")
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no write answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let isolate = format!("{base}/api/v1/admin/isolate");
    let response = http().post(&isolate).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let heal = format!("{base}/api/v1/admin/heal");
    let response = http()
        .post(&heal)
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    cluster.kill().unwrap();
    cluster.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers().await {
        assert!(
            Instant::now() < deadline,
            "the node outlived its cluster command"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `raft-net cluster` prints its dashboard's URL, and its launcher API (behind the admin
/// token, on 127.0.0.1) stops a node with SIGKILL and restarts it, without taking the cluster
/// down; the nodes' pages may call it, other pages may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_stops_and_restarts_the_nodes_it_started() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    let http_base = common::free_port_run(3);
    let raft_base = common::free_port_run(3);
    let mut cluster = Command::new(BIN)
        .args(["cluster", "--nodes", "3", "--launcher-port", "0"])
        .args(["--http-base", &http_base.to_string()])
        .args(["--raft-base", &raft_base.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(cluster.stdout.take().unwrap());
    let mut dashboard = None;
    let mut launcher = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("Dashboard (every node serves it): ") {
            dashboard = Some(url.to_string());
        }
        if let Some(url) = line
            .trim()
            .strip_prefix("stop (SIGKILL) and restart go through this launcher: ")
        {
            launcher = Some(url.to_string());
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert_eq!(dashboard, Some(format!("http://127.0.0.1:{http_base}/ui")));
    let launcher = launcher.expect("the launcher's URL is printed");
    assert!(launcher.starts_with("http://127.0.0.1:"), "{launcher}");
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let token = token.trim();
    let node_url = |id: u16| format!("http://127.0.0.1:{}", http_base + id - 1);
    let answers = |id: u16| async move {
        http()
            .get(format!("{}/healthz", node_url(id)))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in 1..=3 {
        while !answers(id).await {
            assert!(Instant::now() < deadline, "node {id} never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The page knows where the launcher is, and may connect to it.
    let page = http()
        .get(format!("{}/ui", node_url(1)))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains(&launcher), "{csp}");

    let nodes = format!("{launcher}/launcher/v1/nodes");
    assert_eq!(
        http().get(&nodes).send().await.unwrap().status().as_u16(),
        401
    );
    let wrong = http()
        .get(&nodes)
        .bearer_auth("not-the-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);
    let listed: serde_json::Value = http()
        .get(&nodes)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let running: Vec<bool> = listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["running"] == true)
        .collect();
    assert_eq!(running, [true, true, true], "{listed}");

    let stop = http()
        .post(format!("{nodes}/2/stop"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status().as_u16(), 200);
    let stopped: serde_json::Value = stop.json().await.unwrap();
    assert_eq!(
        (stopped["id"].clone(), stopped["running"].clone()),
        (2.into(), false.into())
    );
    assert!(!answers(2).await, "node 2 still answers after stop");
    // Stopping a node is not a node exiting: the cluster and the others keep running.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        cluster.try_wait().unwrap().is_none(),
        "the cluster command exited"
    );
    assert!(answers(1).await && answers(3).await);

    let restart = http()
        .post(format!("{nodes}/n2/restart"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers(2).await {
        assert!(
            Instant::now() < deadline,
            "node 2 never answered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unknown = http()
        .post(format!("{nodes}/9/stop"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let error: serde_json::Value = unknown.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("no node 9"),
        "{error}"
    );

    // CORS: the nodes' pages, and only they.
    let preflight = |origin: String| {
        http()
            .request(reqwest::Method::OPTIONS, format!("{nodes}/1/stop"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight(node_url(3)).await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        node_url(3).as_str()
    );
    let refused = preflight("http://127.0.0.1:1".to_string()).await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    cluster.kill().unwrap();
    cluster.wait().unwrap();
}

/// Each line a node of `raft-net cluster` logs comes out prefixed with the node's id, its
/// own text unchanged behind the prefix.
#[test]
fn the_nodes_log_lines_say_which_node_wrote_them() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    let http_base = common::free_port_run(2);
    let raft_base = common::free_port_run(2);
    let mut cluster = Command::new(BIN)
        .args(["cluster", "--nodes", "2"])
        .args(["--http-base", &http_base.to_string()])
        .args(["--raft-base", &raft_base.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(cluster.stderr.take().unwrap());
    // Killed however the test ends: its nodes stop once it is gone.
    let cluster = KillOnDrop(cluster);
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            if lines.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut recovered = [false, false];
    let mut seen = Vec::new();
    while recovered != [true, true] {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = received.recv_timeout(left) else {
            panic!(
                "no 'storage recovered' line of each node in:\n{}",
                seen.join("\n")
            );
        };
        for id in 1..=2 {
            let Some(text) = line.strip_prefix(&format!("n{id} | ")) else {
                continue;
            };
            // The node's own line, as it logs it alone: level, target, message, fields.
            if text.contains(" INFO raft_net::node: storage recovered") {
                assert!(text.contains(&format!(" id=n{id} ")), "{line}");
                recovered[id - 1] = true;
            }
        }
        seen.push(line);
    }
    assert!(
        seen.iter()
            .all(|line| line.starts_with("n1 | ") || line.starts_with("n2 | ")),
        "a node's line without its prefix:\n{}",
        seen.join("\n")
    );
    drop(cluster);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
