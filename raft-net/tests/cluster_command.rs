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
