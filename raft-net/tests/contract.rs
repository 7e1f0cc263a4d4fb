//! What schemathesis found where the API and its OpenAPI document disagreed
//! (tests/schemathesis.sh), kept as tests against a real node: the document now says what the
//! node does, and the node does what the document says.

mod common;

use std::time::Duration;

use common::{http, TestCluster};
use serde_json::{json, Value};

async fn document(cluster: &TestCluster) -> Value {
    let response = http()
        .get(cluster.node(1).url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

fn parameter<'a>(document: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    document["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

async fn status(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = http().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Found: `from=9223372036854775808` was answered 200 while the document said int64. Log
/// indexes are u64: the document says uint64, and the largest one is an empty page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_documented_as_the_unsigned_integers_the_node_takes() {
    let cluster = TestCluster::start(1, &[]);
    cluster.wait_for_leader(&[1], Duration::from_secs(15)).await;
    let document = document(&cluster).await;
    let from = parameter(&document, "/api/v1/state", "get", "from");
    assert_eq!(from["schema"]["format"], "uint64", "{from}");
    let (code, state) = status(
        reqwest::Method::GET,
        cluster
            .node(1)
            .url(&format!("/api/v1/state?from={}", u64::MAX)),
        None,
    )
    .await;
    assert_eq!(code, 200, "{state}");
    assert_eq!(state["log"], json!([]));
    assert_eq!(state["next"], Value::Null);
    // One past u64 is not an index: a 400, as the format says.
    let (code, _) = status(
        reqwest::Method::GET,
        cluster
            .node(1)
            .url("/api/v1/state?from=18446744073709551616"),
        None,
    )
    .await;
    assert_eq!(code, 400);
}

/// Found: `?to=` with nothing after it and a valid body was refused (400, "invalid node id").
/// An empty `to` is no target: the body names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_transfer_query_leaves_the_target_to_the_body() {
    let cluster = TestCluster::start(3, &[]);
    let (leader, _) = cluster
        .wait_for_leader(&[1, 2, 3], Duration::from_secs(15))
        .await;
    let to = if leader == 1 { 2 } else { 1 };
    let (code, body) = status(
        reqwest::Method::POST,
        cluster
            .node(leader)
            .url("/api/v1/admin/transfer-leader?to="),
        Some(json!({ "to": to })),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["transferring_to"], to);
    // Neither a query nor a body: a 400 that says what is expected.
    let (code, body) = status(
        reqwest::Method::POST,
        cluster
            .node(leader)
            .url("/api/v1/admin/transfer-leader?to="),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("?to="), "{body}");
}

/// Found: the seed routes' `key` (and `/set`'s `value`) were documented as optional, session
/// numbers as any integer, member ids as any string, while the node refuses the requests that
/// leave them out or give 0. The document now requires and bounds them, and the node still
/// refuses what the document rules out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_document_requires_the_node_refuses_without() {
    let cluster = TestCluster::start(1, &[]);
    cluster.wait_for_leader(&[1], Duration::from_secs(15)).await;
    let document = document(&cluster).await;
    for (path, name) in [
        ("/get", "key"),
        ("/set", "key"),
        ("/set", "value"),
        ("/remove", "key"),
    ] {
        assert_eq!(
            parameter(&document, path, "get", name)["required"],
            true,
            "{path} {name}"
        );
    }
    assert_eq!(
        parameter(&document, "/api/v1/append", "post", "seq")["schema"]["minimum"],
        1
    );
    let id = parameter(&document, "/api/v1/members/{id}", "delete", "id");
    let pattern = id["schema"]["pattern"].as_str().unwrap();
    assert_eq!(pattern, "^n?[0-9]*[1-9][0-9]*$");
    let node = cluster.node(1);
    for (method, url) in [
        (reqwest::Method::GET, node.url("/get?value=x")),
        (reqwest::Method::GET, node.url("/set?key=k")),
        (reqwest::Method::GET, node.url("/remove")),
        (
            reqwest::Method::DELETE,
            node.url("/api/v1/kv/k?client_id=1&seq=0"),
        ),
        (reqwest::Method::DELETE, node.url("/api/v1/members/0")),
        (reqwest::Method::DELETE, node.url("/api/v1/members/n00")),
    ] {
        let (code, body) = status(method.clone(), url.clone(), None).await;
        assert_eq!(code, 400, "{method} {url}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}
