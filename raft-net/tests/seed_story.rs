//! The first seed's README story, end to end over HTTP, with `/admin/isolate` standing in for
//! `docker network disconnect`.

mod common;

use std::time::Duration;

use common::{append, commands, http, state, wait_for_state, TestCluster};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_story_over_http() {
    let cluster = TestCluster::start(3, &["--commit-timeout-ms", "1500"]);
    let (old_leader, old_term) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let leader = cluster.node(old_leader);

    // msg1 and msg2 through the leader: replicated and committed everywhere.
    for msg in ["msg1", "msg2"] {
        let (status, body) = append(leader, msg).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["index"].as_u64().is_some(), "{body}");
    }
    for node in &cluster.nodes {
        wait_for_state(node, WAIT, |s| commands(s, "log") == ["msg1", "msg2"]).await;
    }

    // A follower redirects writes to the leader's same URL.
    let follower = cluster.nodes.iter().find(|n| n.id != old_leader).unwrap();
    let response = http()
        .post(follower.url("/api/v1/append"))
        .body(r#"{"command":"redirected"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 307);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        leader.url("/api/v1/append")
    );

    // Partition the leader. It still believes it leads for a moment, and appends msg5 sent
    // to it right away; with no quorum that entry can never commit, so the answer is 504
    // (outcome unknown), never 200. (With check-quorum the old leader steps down after an
    // election timeout, so msg5 is sent first here; the seed README sends it after msg3/msg4.)
    let response = http()
        .post(leader.url("/api/v1/admin/isolate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let old_url = leader.url("");
    let msg5 = tokio::spawn(async move {
        let response = http()
            .post(format!("{old_url}/api/v1/append"))
            .body(r#"{"command":"msg5"}"#)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    });

    // The other two elect a new leader in a higher term.
    let others: Vec<u64> = [1, 2, 3]
        .into_iter()
        .filter(|&id| id != old_leader)
        .collect();
    let (new_leader, new_term) = cluster.wait_for_leader(&others, WAIT).await;
    assert!(new_term > old_term, "new term {new_term} after {old_term}");
    let new = cluster.node(new_leader);

    // msg3 and msg4 through the new leader.
    for msg in ["msg3", "msg4"] {
        let (status, body) = append(new, msg).await;
        assert_eq!(status, 200, "{body}");
    }

    let (status, body) = msg5.await.unwrap();
    let old_state = state(leader).await;
    assert_eq!(old_state["term"].as_u64(), Some(old_term));
    assert_eq!(commands(&old_state, "log"), ["msg1", "msg2"]);
    match status {
        // The usual case: appended by the old leader, never committed.
        504 => {
            let error = body["error"].as_str().unwrap();
            assert!(error.contains("outcome is unknown"), "{body}");
            assert_eq!(commands(&old_state, "uncommitted"), ["msg5"]);
        }
        // A very slow machine: check-quorum deposed the old leader before msg5 arrived.
        503 => assert!(commands(&old_state, "uncommitted").is_empty()),
        other => panic!("msg5 through the old leader answered {other}: {body}"),
    }

    // A write to the cut-off node now fails at once or times out: never 200.
    let (status, body) = append(leader, "msg6").await;
    assert!([307, 503, 504].contains(&status), "{status} {body}");

    // Heal: msg5 is replaced by the new leader's entries; every node holds msg1..msg4.
    let response = http()
        .post(leader.url("/api/v1/admin/heal"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let expected = ["msg1", "msg2", "msg3", "msg4"];
    for node in &cluster.nodes {
        let state = wait_for_state(node, WAIT, |s| {
            commands(s, "log") == expected && commands(s, "uncommitted").is_empty()
        })
        .await;
        assert!(state["term"].as_u64().unwrap() >= new_term);
    }
    let healed = state(leader).await;
    assert_eq!(healed["state"], "FOLLOWER");
    assert_eq!(healed["leader"].as_u64(), Some(new_leader));
}
