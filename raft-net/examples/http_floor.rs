//! What one write's HTTP exchange costs a server on this machine when the server does nothing
//! else: the floor under a node's CPU per write. It answers `raft-net bench --target` as a
//! leader would, at three depths of the node's own HTTP stack, with no Raft, no disk and no
//! state machine behind it:
//!
//! - `raw`: tokio's sockets and nothing else (a minimal HTTP/1.1 framing of its own): the
//!   kernel's TCP work for one request and one answer, and tokio's event loop;
//! - `hyper`: hyper's HTTP/1.1 connection, configured as the node configures it (header read
//!   timeout, keep-alive, `TCP_NODELAY`), answering from a `service_fn`;
//! - `axum`: and an axum router with the node's route for a write (`PUT /api/v1/kv/{key}`,
//!   the key as a path parameter, the body as bytes, a JSON answer).
//! - `hyper-h2`, `axum-h2`: the same two over hyper's HTTP/2 connection (prior knowledge, no
//!   upgrade): what multiplexing several clients' requests over one connection, as etcd's
//!   clients do over gRPC, saves. Load them with `bench --http2`, or with a lighter HTTP/2
//!   client such as `h2load` (Debian: nghttp2-client), which sends `POST` unless told: every
//!   mode takes a `POST` to the write's path for a write.
//!
//! Every mode serves on a one-thread runtime, as the node does, and answers
//! `GET /api/v1/state` with `{"state":"LEADER"}` so that `bench` takes it for a leader; a write
//! gets a 37-byte JSON answer, the size of the node's, after `--answer-delay-us` (a node's
//! commit latency, so that the answers come at a node's pace). Its CPU per write, after
//! `bench`'s warm-up, is printed when `--requests` writes are answered (or on Ctrl-C):
//!
//! ```sh
//! cargo build --release -p raft-net --bin raft-net
//! cargo build --release -p raft-net --example http_floor
//! target/release/examples/http_floor --mode raw --answer-delay-us 3000 --requests 52000 &
//! target/release/raft-net bench --target http://127.0.0.1:18500 --clients 100 --ops 50000 --value-bytes 256
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::{get, put};
use axum::Router;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use raft_net::bench::self_cpu;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Raw,
    Hyper,
    Axum,
    HyperH2,
    AxumH2,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value = "127.0.0.1:18500")]
    addr: SocketAddr,
    /// Stop and print the CPU figures after this many writes (0: only on Ctrl-C).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Writes before the measured ones (`bench`'s warm-up): the CPU figure starts after them.
    #[arg(long, default_value_t = 2000)]
    warmup: u64,
    /// Hold each write's answer this long, as a node holds it until the write commits (100
    /// clients and 4 ms: at most 25,000 writes/s).
    #[arg(long, default_value_t = 0)]
    answer_delay_us: u64,
}

/// The `raft-net` binary's allocator, so that the floor is the node's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const STATE: &[u8] = br#"{"state":"LEADER"}"#;
const WRITTEN: &[u8] = br#"{"index":3,"term":1,"replaced":false}"#;
/// The node's header read timeout (`--http-header-timeout-ms`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight on one HTTP/2 connection.
const H2_STREAMS_MAX: u32 = 256;

/// Writes answered, the CPU time when the warm-up's were, and a wake-up once `--requests` are.
struct Tally {
    writes: AtomicU64,
    delay: Duration,
    warmup: u64,
    limit: u64,
    measured_from: Mutex<Option<(f64, f64)>>,
    done: Notify,
}

impl Tally {
    async fn wrote(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let writes = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if writes == self.warmup {
            *self.measured_from.lock().expect("never poisoned") = self_cpu();
        }
        if writes == self.limit {
            self.done.notify_one();
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.addr).await?;
        let tally = Arc::new(Tally {
            writes: AtomicU64::new(0),
            delay: Duration::from_micros(args.answer_delay_us),
            warmup: args.warmup,
            limit: args.requests,
            measured_from: Mutex::new(if args.warmup == 0 { self_cpu() } else { None }),
            done: Notify::new(),
        });
        let serving = tokio::spawn(accept(listener, args.mode, Arc::clone(&tally)));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = tally.done.notified() => {}
        }
        serving.abort();
        let writes = tally
            .writes
            .load(Ordering::Relaxed)
            .saturating_sub(args.warmup);
        let started = *tally.measured_from.lock().expect("never poisoned");
        if let (Some((user0, sys0)), Some((user1, sys1)), true) = (started, self_cpu(), writes > 0)
        {
            let per = |seconds: f64| seconds * 1e6 / writes as f64;
            println!(
                "{:?}: {writes} writes, {:.1} us user + {:.1} us system = {:.1} us per write",
                args.mode,
                per(user1 - user0),
                per(sys1 - sys0),
                per(user1 - user0 + sys1 - sys0)
            );
        }
        Ok(())
    })
}

async fn accept(listener: TcpListener, mode: Mode, tally: Arc<Tally>) {
    let router = Router::new()
        .route("/api/v1/state", get(|| async { STATE }))
        .route("/api/v1/kv/{key}", put(write).post(write))
        .with_state(Arc::clone(&tally));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tally = Arc::clone(&tally);
        match mode {
            Mode::Raw => {
                tokio::spawn(raw(tcp, tally));
            }
            Mode::Hyper => {
                let service =
                    hyper::service::service_fn(move |request| answer(request, Arc::clone(&tally)));
                tokio::spawn(connection(tcp, service));
            }
            Mode::Axum => {
                let service = TowerToHyperService::new(router.clone());
                tokio::spawn(connection(tcp, service));
            }
            Mode::HyperH2 => {
                let service =
                    hyper::service::service_fn(move |request| answer(request, Arc::clone(&tally)));
                tokio::spawn(connection_h2(tcp, service));
            }
            Mode::AxumH2 => {
                let service = TowerToHyperService::new(router.clone());
                tokio::spawn(connection_h2(tcp, service));
            }
        }
    }
}

async fn write(
    axum::extract::State(tally): axum::extract::State<Arc<Tally>>,
    Path(key): Path<String>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    std::hint::black_box((key, body));
    tally.wrote().await;
    ([(hyper::header::CONTENT_TYPE, "application/json")], WRITTEN)
}

async fn connection<S>(tcp: TcpStream, service: S)
where
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<axum::body::Body>,
        > + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
}

async fn connection_h2<S>(tcp: TcpStream, service: S)
where
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<axum::body::Body>,
        > + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS_MAX);
    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    tally: Arc<Tally>,
) -> Result<Response<axum::body::Body>, Infallible> {
    let write = request.method() == Method::PUT || request.method() == Method::POST;
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes());
    std::hint::black_box(body.ok());
    let content: &'static [u8] = if write {
        tally.wrote().await;
        WRITTEN
    } else {
        STATE
    };
    Ok(Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::new(Full::new(Bytes::from_static(
            content,
        ))))
        .expect("a static answer is a valid response"))
}

/// HTTP/1.1 reduced to what `bench` sends: a head, a `content-length` body, keep-alive.
async fn raw(mut tcp: TcpStream, tally: Arc<Tally>) {
    let mut buf = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(256);
    loop {
        let (head, body) = loop {
            if let Some(framed) = frame(&buf) {
                break framed;
            }
            buf.reserve(4096);
            match tcp.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let write = buf.starts_with(b"PUT ");
        buf.drain(..head + body);
        let content = if write {
            tally.wrote().await;
            WRITTEN
        } else {
            STATE
        };
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", content.len()).as_bytes());
        out.extend_from_slice(content);
        if tcp.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// The head's length and the body's, once both are in `buf`.
fn frame(buf: &[u8]) -> Option<(usize, usize)> {
    let head = buf.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
    let body = String::from_utf8_lossy(&buf[..head])
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    (buf.len() >= head + body).then_some((head, body))
}
