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

    // Partition the leader: the other two elect a new leader in a higher term.
    let response = http()
        .post(leader.url("/api/v1/admin/isolate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
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

    // msg5 through the old leader is never committed: the answer is 504, never 200.
    let (status, body) = append(leader, "msg5").await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("outcome is unknown"),
        "{body}"
    );
    let old_state = state(leader).await;
    assert_eq!(old_state["state"], "LEADER");
    assert_eq!(old_state["term"].as_u64(), Some(old_term));
    assert_eq!(commands(&old_state, "log"), ["msg1", "msg2"]);
    assert_eq!(commands(&old_state, "uncommitted"), ["msg5"]);

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
