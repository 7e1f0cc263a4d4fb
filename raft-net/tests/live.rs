//! What the dashboard stands on, with real processes: the event stream reports role, term,
//! commit and membership changes as they happen and ends when its node shuts down; the page is
//! served with a policy that lets it reach the members and nothing else, and the members let
//! pages from each other's origins (and only those) call them.

mod common;

use std::time::{Duration, Instant};

use common::{http, TestCluster};
use serde_json::Value;
use tokio::sync::mpsc;

/// The events of one `GET /api/v1/events` stream, as (name, data), read on a task of its own.
struct Events {
    received: mpsc::UnboundedReceiver<(String, Value)>,
}

impl Events {
    async fn open(url: &str) -> Events {
        let response = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect("the event stream opens");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let (sender, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut response = response;
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    let name = frame
                        .lines()
                        .find_map(|line| line.strip_prefix("event: "))
                        .unwrap_or("message")
                        .to_string();
                    let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: "))
                    else {
                        continue;
                    };
                    let data = serde_json::from_str(data).expect("event data is JSON");
                    if sender.send((name, data)).is_err() {
                        return;
                    }
                }
            }
        });
        Events { received }
    }

    /// The next event named `name` for which `check` holds, within `timeout`.
    async fn until(
        &mut self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.received.recv()).await;
            match next {
                Ok(Some((event, data))) if event == name && check(&data) => return data,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended while waiting for a {name} event"),
                Err(_) => panic!("no matching {name} event within {timeout:?}"),
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_role_term_commit_and_membership_changes_as_they_happen() {
    let cluster = TestCluster::start(3, &[]);
    let (leader, term) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let follower = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let mut watching = Events::open(&cluster.node(follower).url("/api/v1/events")).await;
    let mut watching_leader = Events::open(&cluster.node(leader).url("/api/v1/events")).await;

    // The stream opens with the current status and the counters.
    let first = watching.until("status", WAIT, |_| true).await;
    assert_eq!(first["id"], follower);
    assert_eq!(first["voters"], serde_json::json!([1, 2, 3]));
    let counters = watching.until("metrics", WAIT, |_| true).await;
    assert_eq!(counters["isolated"], false);
    assert!(counters["fsync"]["count"].as_u64().is_some(), "{counters}");

    // A commit.
    let before = first["commit_index"].as_u64().unwrap();
    let (status, _) = common::append(cluster.node(leader), "watched").await;
    assert_eq!(status, 200);
    let committed = watching
        .until("status", WAIT, |s| {
            s["commit_index"].as_u64() > Some(before)
        })
        .await;
    let runs = committed["log_terms"].as_array().unwrap();
    assert_eq!(runs.last().unwrap()[1], committed["term"], "{committed}");

    // Isolating the leader: it says so, and the follower sees a new leader in a higher term.
    let isolate = http()
        .post(cluster.node(leader).url("/api/v1/admin/isolate"))
        .send()
        .await
        .unwrap();
    assert_eq!(isolate.status().as_u16(), 200);
    watching_leader
        .until("metrics", WAIT, |m| m["isolated"] == true)
        .await;
    let elected = watching
        .until("status", WAIT, |s| {
            s["leader"].as_u64().is_some_and(|id| id != leader) && s["term"].as_u64() > Some(term)
        })
        .await;
    let new_leader = elected["leader"].as_u64().unwrap();
    // Every change since the node started is in the history, in order, newest last.
    let changes = elected["changes"].as_array().unwrap();
    let seqs: Vec<u64> = changes.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{seqs:?}"
    );
    let last = changes.last().unwrap();
    assert_eq!(
        (last["term"].clone(), last["leader"].clone()),
        (elected["term"].clone(), elected["leader"].clone())
    );
    let heal = http()
        .post(cluster.node(leader).url("/api/v1/admin/heal"))
        .send()
        .await
        .unwrap();
    assert_eq!(heal.status().as_u16(), 200);

    // A membership change: the old leader leaves.
    let removed = http()
        .delete(
            cluster
                .node(new_leader)
                .url(&format!("/api/v1/members/{leader}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 200, "{:?}", removed.text().await);
    let shrunk = watching
        .until("status", WAIT, |s| {
            s["voters"].as_array().is_some_and(|v| v.len() == 2)
        })
        .await;
    assert!(
        !shrunk["voters"]
            .as_array()
            .unwrap()
            .contains(&Value::from(leader)),
        "{shrunk}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_node_shuts_down_without_holding_it_up() {
    let mut cluster = TestCluster::start(1, &[]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let mut watching = Events::open(&cluster.node(1).url("/api/v1/events")).await;
    watching.until("status", WAIT, |_| true).await;
    let mut child = cluster.nodes[0].child.take().unwrap();
    let stopped = Instant::now();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // The stream ends (the reader's channel closes) well before the 5 s shutdown grace.
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while watching.received.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream was still open 3 s after SIGTERM");
    while child.try_wait().unwrap().is_none() {
        assert!(
            stopped.elapsed() < Duration::from_secs(4),
            "the node took longer than 4 s to stop with a watcher connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_may_reach_the_members_and_only_they_let_it() {
    let mut cluster = TestCluster::new(3, &[]);
    let token_file = cluster.dir.path().join("admin-token");
    std::fs::write(&token_file, "admin-token-for-the-dashboard-test\n").unwrap();
    cluster.extra.extend([
        "--admin-token".to_string(),
        token_file.display().to_string(),
    ]);
    for id in 1..=3 {
        cluster.start_node(id);
    }
    cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let origin = |id: u64| format!("http://{}", cluster.node(id).http_addr);

    let page = http().get(cluster.node(1).url("/ui")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let body = page.text().await.unwrap();
    let connect = csp
        .split(';')
        .find_map(|directive| directive.trim().strip_prefix("connect-src "))
        .expect("a connect-src directive");
    let mut allowed: Vec<&str> = connect.split(' ').collect();
    allowed.sort_unstable();
    let mut expected = vec!["'self'".to_string(), origin(1), origin(2), origin(3)];
    expected.sort();
    assert_eq!(allowed, expected, "{csp}");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !body.contains("admin-token-for-the-dashboard-test"),
        "the page must not carry the token"
    );
    assert!(
        body.contains(r#""admin_token":true"#),
        "the page knows a token is needed"
    );
    for asset in ["/ui/render.js", "/ui/dashboard.js", "/ui/dashboard.css"] {
        let response = http().get(cluster.node(2).url(asset)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{asset}");
    }

    // A page from node 1 may call node 2's admin route with the token (the preflight passes);
    // a page from anywhere else may not.
    let preflight = |from: String| {
        http()
            .request(
                reqwest::Method::OPTIONS,
                cluster.node(2).url("/api/v1/admin/isolate"),
            )
            .header("origin", from)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight(origin(1)).await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string()),
        Some(origin(1))
    );
    let refused = preflight("http://evil.example:8000".to_string())
        .await
        .unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let read = http()
        .get(cluster.node(3).url("/api/v1/state"))
        .header("origin", origin(2))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.headers()["access-control-allow-origin"],
        origin(2).as_str()
    );
    // The admin route still needs the token, whatever the origin.
    let without = http()
        .post(cluster.node(2).url("/api/v1/admin/isolate"))
        .header("origin", origin(1))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status().as_u16(), 401);
}
