//! Clients that hold connections without finishing requests: they are cut off by the header
//! timeout and the connection limit, and neither writes nor heartbeats wait for them.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{http, metric, TestCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);
/// The header timeout the nodes run with, in milliseconds.
const HEADER_TIMEOUT_MS: u64 = 5000;

/// A client that sends a request head one byte at a time and never finishes it; resolves with
/// how long the server kept the connection open.
async fn slowloris(addr: String) -> Duration {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let dribble = async move {
        if writer
            .write_all(b"PUT /api/v1/kv/slow HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"x").await.is_err() {
                return;
            }
        }
    };
    let closed = async {
        let mut buf = [0; 256];
        // The server's answer (a 408, or nothing), then the end of the stream.
        while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = closed => {}
        () = dribble => {
            // Writing failed: the server closed; nothing more to wait for.
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_a_slowloris_do_not_stop_writes_or_heartbeats() {
    let header_timeout = HEADER_TIMEOUT_MS.to_string();
    let mut cluster = TestCluster::start(
        3,
        &[
            "--http-header-timeout-ms",
            &header_timeout,
            "--http-connections-max",
            "600",
        ],
    );
    let (leader, term) = cluster.wait_for_leader(&[1, 2, 3], WAIT).await;
    let addr = cluster.node(leader).http_addr.clone();

    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(&addr).expect("an idle connection"))
        .collect();
    let slow = tokio::spawn(slowloris(addr.clone()));

    // Writes commit while the connections are held.
    let client = http();
    for i in 0..20 {
        let response = client
            .put(cluster.node(leader).url(&format!("/api/v1/kv/k{i}")))
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    // Beyond the limit, connections are closed as soon as they are accepted.
    let extra: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    // A closed connection reads as the end of the stream; an open one would block.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = extra
        .iter()
        .filter(|stream| {
            let mut stream = *stream;
            stream.set_nonblocking(true).unwrap();
            matches!(stream.read(&mut [0; 1]), Ok(0))
        })
        .count();
    drop(extra);
    assert!(
        refused >= 50,
        "only {refused} connections over the limit were closed"
    );
    let counted = metric(
        cluster.node(leader),
        &format!("raft_http_connections_refused_total{{node=\"{leader}\"}}"),
    )
    .await;
    assert!(counted >= 50, "{counted} refused connections counted");

    // The slowloris and the idle connections are cut after the header timeout.
    let limit = Duration::from_millis(HEADER_TIMEOUT_MS + 3000);
    let held = tokio::time::timeout(limit, slow)
        .await
        .expect("a slowloris held its connection past the header timeout")
        .unwrap();
    assert!(held < limit, "a slowloris held its connection {held:?}");
    let mut sample = &idle[0];
    sample
        .set_read_timeout(Some(Duration::from_millis(HEADER_TIMEOUT_MS)))
        .unwrap();
    assert!(
        matches!(sample.read(&mut [0; 1]), Ok(0)),
        "an idle connection was left open"
    );
    drop(idle);

    // Heartbeats went on all along: no member timed out and started an election.
    for id in 1..=3 {
        let state = common::state(cluster.node(id)).await;
        assert_eq!(state["term"], term, "node {id}: {state}");
        assert_eq!(state["leader"], leader, "node {id}: {state}");
    }

    // Shutdown is not held up by a client that never finishes its request.
    let slow = tokio::spawn(slowloris(addr.clone()));
    let _idle = TcpStream::connect(&addr).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let child = cluster.nodes[(leader - 1) as usize].child.as_mut().unwrap();
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the node did not stop within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}\n{}", cluster.log(leader));
    assert!(
        started.elapsed() < limit,
        "shutdown took {:?}",
        started.elapsed()
    );
    slow.abort();
}

/// A client that asks for a large answer and never reads it: the write blocks on a zero
/// window, and the kernel drops the connection after the header timeout (`TCP_USER_TIMEOUT`)
/// instead of leaving it parked for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_keep_its_connection() {
    let cluster = TestCluster::start(1, &["--http-header-timeout-ms", "1000"]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let node = cluster.node(1);
    // More than the kernel buffers between the two sockets hold.
    common::write_a_6_mb_state_page(node).await;
    // Each query comes on a connection of its own, counted too.
    let others = || async {
        metric(node, "raft_http_connections_open{node=\"1\"}")
            .await
            .saturating_sub(1)
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = node.http_addr.parse().unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    std::io::Write::write_all(
        &mut stalled,
        b"GET /api/v1/state?limit=10000 HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(others().await, 1, "the stalled reader's connection is open");
    let started = Instant::now();
    while others().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a client that never reads kept its connection"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stalled);
}

/// A request body that stops arriving is answered `408` once it has paused for the body
/// timeout, and the node goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408() {
    let cluster = TestCluster::start(1, &["--http-body-timeout-ms", "500"]);
    cluster.wait_for_leader(&[1], WAIT).await;
    let node = cluster.node(1);
    let mut stream = tokio::net::TcpStream::connect(&node.http_addr)
        .await
        .unwrap();
    stream
        .write_all(b"PUT /api/v1/kv/stalled HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("no answer to a stalled body within 10 s")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        waited >= Duration::from_millis(400),
        "answered after {waited:?}"
    );
    // The key was not written, and the node still answers.
    let client = http();
    let response = client
        .get(node.url("/api/v1/kv/stalled"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}
