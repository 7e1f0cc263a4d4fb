//! HTTP/2 on the client API: prior knowledge on plain TCP, the same routes, tokens and limits
//! as HTTP/1.1, and connections that do nothing are closed as idle HTTP/1.1 ones are.

mod common;

use std::time::{Duration, Instant};

use common::{TestCluster, BIN};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);
const HEADER_TIMEOUT_MS: u64 = 1000;

/// hyper's HTTP/2 client on a connection of its own to `addr`, with this stream window, and
/// the task that runs the connection (it ends when the server closes it).
async fn h2_connection(
    addr: &str,
    stream_window: Option<u32>,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(stream_window)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    (sender, tokio::spawn(connection))
}

/// Waits for the server to close `connection`: one to `timeouts` header timeouts after `since`.
async fn closed_after_one_header_timeout_and_within(
    timeouts: u64,
    connection: tokio::task::JoinHandle<Result<(), hyper::Error>>,
    since: Instant,
    what: &str,
) {
    let limit = Duration::from_millis(timeouts * HEADER_TIMEOUT_MS + 1500);
    tokio::time::timeout(limit, connection)
        .await
        .unwrap_or_else(|_| panic!("{what} was left open"))
        .unwrap()
        .ok();
    let open = since.elapsed();
    assert!(
        open >= Duration::from_millis(HEADER_TIMEOUT_MS - 100),
        "{what} was closed after {open:?} only"
    );
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_writes_reads_and_needs_the_token() {
    let cluster = TestCluster::new(1, &[]);
    let token = cluster.dir.path().join("client-token");
    std::fs::write(&token, "client-token-of-the-h2-test").unwrap();
    let mut cluster = cluster;
    cluster.extra = vec!["--client-token".into(), token.display().to_string()];
    cluster.start_node(1);
    let node = cluster.node(1);
    let client = h2_client();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(response) = client.get(node.url("/healthz")).send().await {
            let health: serde_json::Value = response.json().await.unwrap_or_default();
            if health["state"] == "LEADER" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no leader\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let refused = client
        .put(node.url("/api/v1/kv/greeting"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.version(), reqwest::Version::HTTP_2);
    assert_eq!(refused.status(), 401, "a write without the token");

    let written = client
        .put(node.url("/api/v1/kv/greeting"))
        .bearer_auth("client-token-of-the-h2-test")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(written.version(), reqwest::Version::HTTP_2);
    assert_eq!(written.status(), 200, "{}", written.text().await.unwrap());
    let read = client
        .get(node.url("/api/v1/kv/greeting"))
        .bearer_auth("client-token-of-the-h2-test")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), "hello");

    // A body over the limit gets the same 413 as over HTTP/1.1.
    let large = client
        .put(node.url("/api/v1/kv/large"))
        .bearer_auth("client-token-of-the-h2-test")
        .body(vec![b'x'; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 413);

    // The load generator shares two connections among its clients.
    let output = std::process::Command::new(BIN)
        .args(["bench", "--target", &node.url(""), "--http2"])
        .args(["--clients", "20", "--connections", "2"])
        .args(["--ops", "200", "--warmup", "20"])
        .env("RAFT_CLIENT_TOKEN_FILE", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("200 committed") && stdout.contains("(0 errors)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_header_timeout() {
    let timeout = HEADER_TIMEOUT_MS.to_string();
    let cluster = TestCluster::start(1, &["--http-header-timeout-ms", &timeout]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let (mut sender, connection) = h2_connection(&cluster.node(1).http_addr, None).await;
    let request = hyper::Request::builder()
        .uri(cluster.node(1).url("/api/v1/kv/idle"))
        .method("PUT")
        .body(Full::new(Bytes::from_static(b"v")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    // One to two timeouts without a request; GOAWAY ends it at once.
    let what = "an idle HTTP/2 connection";
    closed_after_one_header_timeout_and_within(2, connection, Instant::now(), what).await;
    assert!(sender.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_inside_the_http2_preface_is_cut_off() {
    let timeout = HEADER_TIMEOUT_MS.to_string();
    let cluster = TestCluster::start(1, &["--http-header-timeout-ms", &timeout]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let mut tcp = tokio::net::TcpStream::connect(&cluster.node(1).http_addr)
        .await
        .unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let started = Instant::now();
    let limit = Duration::from_millis(HEADER_TIMEOUT_MS + 1500);
    let read = tokio::time::timeout(limit, tcp.read(&mut [0; 64]))
        .await
        .expect("a connection stuck in the preface was left open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(HEADER_TIMEOUT_MS - 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_over_http2_outlives_the_idle_timeout() {
    let timeout = HEADER_TIMEOUT_MS.to_string();
    let cluster = TestCluster::start(1, &["--http-header-timeout-ms", &timeout]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let mut events = h2_client()
        .get(cluster.node(1).url("/api/v1/events"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(events.version(), reqwest::Version::HTTP_2);
    assert_eq!(events.status(), 200);
    // Three idle periods and more: the stream is still open (reading it does not end).
    let open_for = Duration::from_millis(3 * HEADER_TIMEOUT_MS + 500);
    let read = tokio::time::timeout(open_for, async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(read.is_err(), "the event stream ended within {open_for:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_does_not_read_its_answer_loses_its_connection() {
    let timeout = HEADER_TIMEOUT_MS.to_string();
    let cluster = TestCluster::start(1, &["--http-header-timeout-ms", &timeout]);
    cluster.wait_for_leader(&[1], WAIT).await;
    // A window of 1 KiB that it never opens further: the answer (the OpenAPI document, tens
    // of kilobytes) cannot be sent whole.
    let (mut sender, connection) = h2_connection(&cluster.node(1).http_addr, Some(1024)).await;
    let request = hyper::Request::builder()
        .uri(cluster.node(1).url("/api/v1/openapi.json"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    // Idle or stalled after one to two timeouts, then a timeout for the answer after GOAWAY.
    let what = "the connection of a client that does not read";
    closed_after_one_header_timeout_and_within(3, connection, Instant::now(), what).await;
    drop(response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_read_slowly_over_http2_arrives_whole() {
    let timeout = HEADER_TIMEOUT_MS.to_string();
    let cluster = TestCluster::start(1, &["--http-header-timeout-ms", &timeout]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let node = cluster.node(1);
    common::write_a_6_mb_state_page(node).await;
    let (mut sender, _connection) = h2_connection(&node.http_addr, Some(64 << 10)).await;
    let request = hyper::Request::builder()
        .uri(node.url("/api/v1/state?limit=10000"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let expected = response
        .headers()
        .get("content-length")
        .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
    let mut body = response.into_body();
    // Slowly for more than three idle periods, then at full speed.
    let started = Instant::now();
    let slow_for = Duration::from_millis(3 * HEADER_TIMEOUT_MS + 500);
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().into_data().map_or(0, |data| data.len());
        if started.elapsed() < slow_for {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        started.elapsed() >= slow_for,
        "read in {:?}",
        started.elapsed()
    );
    assert!(received > 3_000_000, "{received} bytes");
    if let Some(expected) = expected {
        assert_eq!(received, expected);
    }
}
