//! Operator recovery on real processes: a lost quorum recovered with `recover
//! --force-new-cluster` (dry run first), an old member on its old data dir refused by the new
//! cluster, the cluster grown back to three; and a backup saved with `snapshot save` from a
//! running cluster seeding a new one with `snapshot restore`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    get, member, members, put, spawn_node, state, wait_for_state, TestCluster, TestNode, BIN,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const KEYS: usize = 30;

/// Every file under `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                all.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    all
}

fn copy_dir(from: &Path, to: &Path) {
    for (path, bytes) in files(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

/// Runs the binary; its stdout as JSON (`Null` when it is not) and its stderr.
fn run(args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("RAFT_ADMIN_TOKEN_FILE")
        .env_remove("RAFT_VOLUME_DIR")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.success(),
        json,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn wait_for_voters(node: &TestNode, expected: &[u64], logs: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = members(node).await;
        let voters: Vec<u64> = now["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|member| member["voter"] == true)
            .filter_map(|member| member["id"].as_u64())
            .collect();
        if voters == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "voters {voters:?}, expected {expected:?}: {now}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_log(log: impl Fn() -> String, needles: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = log();
        if needles.iter().all(|needle| text.contains(needle)) {
            return;
        }
        assert!(Instant::now() < deadline, "{needles:?} not in\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every key of `0..KEYS` (and no other) reads back on `node`, linearizably or not.
async fn check_keys(node: &TestNode, stale: bool) {
    let deadline = Instant::now() + WAIT;
    for i in 0..KEYS {
        loop {
            let (status, body) = get(node, &format!("k{i}"), stale).await;
            if status == 200 {
                assert_eq!(body, format!("v{i}"), "node {}", node.id);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: k{i} answers {status}",
                node.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_forced_into_a_new_cluster_keeps_what_it_had_and_grows_back_to_three() {
    let mut cluster = TestCluster::start(3, &[]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    for i in 0..KEYS {
        let status = put(cluster.node(leader), &format!("k{i}"), &format!("v{i}")).await;
        assert_eq!(status, 200, "k{i}");
    }
    let commit = state(cluster.node(leader)).await["commit_index"]
        .as_u64()
        .unwrap();
    wait_for_state(cluster.node(1), WAIT, |s| {
        s["applied_index"].as_u64() >= Some(commit)
    })
    .await;
    for id in 1..=3 {
        cluster.kill(id);
    }
    // Two disks are lost for good; a copy of node 3's stands for a member that comes back later
    // on its old data dir.
    let old_three = cluster.dir.path().join("old-node3");
    copy_dir(&cluster.node(3).data_dir, &old_three);
    for id in [2, 3] {
        std::fs::remove_dir_all(&cluster.node(id).data_dir).unwrap();
    }
    let survivor = cluster.node(1).data_dir.clone();

    let (ok, _, stderr) = run(&["recover", "--data-dir", path(&survivor)]);
    assert!(!ok && stderr.contains("--force-new-cluster"), "{stderr}");
    let untouched = files(&survivor);
    let (ok, dry, stderr) = run(&[
        "recover",
        "--data-dir",
        path(&survivor),
        "--force-new-cluster",
        "--dry-run",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("WARNING") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["membership_before"]["voters"],
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(dry["membership_after"]["voters"], serde_json::json!([1]));
    assert!(dry["last_index"].as_u64() >= Some(commit), "{dry}");
    assert!(dry["entries_past_known_commit"].is_u64(), "{dry}");
    assert!(
        files(&survivor) == untouched,
        "the dry run changed the data dir"
    );

    let (ok, done, stderr) = run(&[
        "recover",
        "--data-dir",
        path(&survivor),
        "--force-new-cluster",
    ]);
    assert!(ok && stderr.contains("WARNING"), "{stderr}");
    assert_eq!(done["last_index"], dry["last_index"]);
    let old_id = done["cluster_id_before"].as_str().unwrap().to_string();
    let new_id = done["cluster_id_after"].as_str().unwrap().to_string();
    assert_ne!(old_id, new_id);

    // The survivor alone: a one-voter cluster holding everything it had.
    let dir = cluster.dir.path().to_path_buf();
    let one = spawn_node(&dir, cluster.node(1), &["--admin"]);
    cluster.wait_for_leader(&[1], WAIT).await;
    check_keys(cluster.node(1), false).await;
    let view = members(cluster.node(1)).await;
    assert_eq!(view["cluster_id"], new_id.as_str(), "{view}");
    assert_eq!(
        member(&view, 1)["incarnation"],
        done["incarnation_after"],
        "{view}"
    );

    // Node 3 on its old data dir, with its old flags, belongs to the old cluster: refused.
    let stale = TestNode {
        data_dir: old_three,
        child: None,
        ..clone_node(cluster.node(3))
    };
    let peers = [
        format!(
            "1={}@{}",
            cluster.node(1).raft_addr,
            cluster.node(1).http_addr
        ),
        format!(
            "2={}@{}",
            cluster.node(2).raft_addr,
            cluster.node(2).http_addr
        ),
    ];
    let old = spawn_node(&dir, &stale, &["--peer", &peers[0], "--peer", &peers[1]]);
    let log_of = |id: u64| {
        let path = dir.join(format!("node{id}.log"));
        move || std::fs::read_to_string(&path).unwrap_or_default()
    };
    let refusal = format!("belongs to cluster {old_id}, this node's data dir to cluster {new_id}");
    wait_for_log(
        log_of(1),
        &["refusing datagrams of another cluster", &refusal],
    )
    .await;
    wait_for_voters(cluster.node(1), &[1], log_of(1)).await;
    drop(old);

    // Nodes 2 and 3 join as new servers from empty data dirs.
    let url = cluster.node(1).url("");
    let two = spawn_node(&dir, cluster.node(2), &["--join", &url]);
    wait_for_voters(cluster.node(1), &[1, 2], log_of(2)).await;
    let three = spawn_node(&dir, cluster.node(3), &["--join", &url]);
    wait_for_voters(cluster.node(1), &[1, 2, 3], log_of(3)).await;
    for id in 1..=3 {
        check_keys(cluster.node(id), true).await;
        let state = state(cluster.node(id)).await;
        assert_eq!(state["cluster_id"], new_id.as_str(), "node {id}: {state}");
    }
    assert_eq!(put(cluster.node(1), "after", "growth").await, 200);
    drop((one, two, three));
}

fn clone_node(node: &TestNode) -> TestNode {
    TestNode {
        id: node.id,
        raft_addr: node.raft_addr.clone(),
        http_addr: node.http_addr.clone(),
        data_dir: node.data_dir.clone(),
        child: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_saved_from_a_running_cluster_seeds_a_new_one() {
    let temp = tempfile::tempdir().unwrap();
    let token = temp.path().join("admin-token");
    std::fs::write(&token, "backup-test-admin-token-0123456789\n").unwrap();
    let token_flag = path(&token).to_string();
    let cluster = TestCluster::start(3, &["--admin-token", &token_flag]);
    let (leader, _) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    for i in 0..KEYS {
        let status = put(cluster.node(leader), &format!("k{i}"), &format!("v{i}")).await;
        assert_eq!(status, 200, "k{i}");
    }
    let follower = if leader == 1 { 2 } else { 1 };
    let server = cluster.node(follower).url("");
    let file = temp.path().join("backup.raftbak");

    // The admin token is required, and a follower redirects to the leader.
    let (ok, _, stderr) = run(&["snapshot", "save", path(&file), "--server", &server]);
    assert!(!ok && stderr.contains("401"), "{stderr}");
    assert!(!file.exists());
    let (ok, saved, stderr) = run(&[
        "snapshot",
        "save",
        path(&file),
        "--server",
        &server,
        "--admin-token",
        &token_flag,
    ]);
    assert!(ok, "{stderr}");
    let original = state(cluster.node(leader)).await;
    assert_eq!(saved["cluster_id"], original["cluster_id"], "{saved}");
    assert_eq!(saved["voters"], serde_json::json!([1, 2, 3]));
    // Every acknowledged write is in it: the leader applied them all before it took it.
    assert!(saved["index"].as_u64() >= Some(KEYS as u64), "{saved}");
    assert_eq!(
        put(cluster.node(leader), "later", "not in the backup").await,
        200
    );
    drop(cluster);

    // A new one-node cluster from the file.
    let node = TestNode {
        id: 1,
        raft_addr: format!("127.0.0.1:{}", common::free_port()),
        http_addr: format!("127.0.0.1:{}", common::free_port()),
        data_dir: temp.path().join("restored"),
        child: None,
    };
    let (ok, restored, stderr) = run(&[
        "snapshot",
        "restore",
        path(&file),
        "--data-dir",
        path(&node.data_dir),
        "--id",
        "1",
    ]);
    assert!(ok, "{stderr}");
    assert_ne!(restored["cluster_id"], saved["cluster_id"], "{restored}");
    assert_eq!(restored["from_cluster_id"], saved["cluster_id"]);
    assert_eq!(restored["voters"], serde_json::json!([1]));
    let (ok, _, stderr) = run(&[
        "snapshot",
        "restore",
        path(&file),
        "--data-dir",
        path(&node.data_dir),
        "--id",
        "1",
    ]);
    assert!(!ok && stderr.contains("already holds"), "{stderr}");
    let mut damaged = std::fs::read(&file).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    let bad = temp.path().join("damaged.raftbak");
    std::fs::write(&bad, damaged).unwrap();
    let (ok, _, stderr) = run(&[
        "snapshot",
        "restore",
        path(&bad),
        "--data-dir",
        path(&temp.path().join("other")),
        "--id",
        "1",
    ]);
    assert!(!ok && stderr.contains("checksum"), "{stderr}");

    let process = spawn_node(temp.path(), &node, &[]);
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(state) = common::try_state(&node).await {
            if state["state"] == "LEADER" {
                assert_eq!(state["cluster_id"], restored["cluster_id"], "{state}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the restored node never leads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check_keys(&node, false).await;
    assert_eq!(get(&node, "later", false).await.0, 404);
    assert_eq!(put(&node, "new", "cluster").await, 200);
    drop(process);
}
