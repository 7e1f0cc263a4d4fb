//! The HTTP server: accepts connections (plain or TLS), serves each with hyper's HTTP/1.1 or
//! HTTP/2 connection under the node's limits, and shuts down gracefully within a deadline.
//!
//! - HTTP/2 is chosen by ALPN on TLS, and by its connection preface on plain TCP (prior
//!   knowledge: no `Upgrade` from HTTP/1.1). It lets one connection carry many clients'
//!   requests, and their answers, in one read and one write.
//! - At most `connections_max` connections at once: beyond that a new connection is closed
//!   as soon as it is accepted (and counted), so the kernel backlog does not fill up with
//!   clients waiting behind idle ones.
//! - hyper's `header_read_timeout`: a request head must arrive whole within `header_timeout`.
//!   hyper starts that clock whenever a connection waits for a request, so it is also the idle
//!   timeout of a keep-alive connection, and a slowloris head is cut after it. A TLS handshake,
//!   and the first bytes of a plain connection (HTTP/1.1 or HTTP/2?), get the same time.
//! - HTTP/2: at most `H2_STREAMS_MAX` requests in flight on a connection, and at most
//!   `connections_max` on all HTTP/2 connections together (the most that HTTP/1.1 connections
//!   can carry); a request beyond that is answered `503` at once, its body unread. A
//!   connection with no request in flight for `header_timeout` (checked every
//!   `header_timeout`) is closed, as an idle HTTP/1.1 connection is; a request's answer stuck
//!   behind a client's closed flow-control window does not count as one in flight.
//! - The layers around the router (see `router`) bound the time between two body chunks and
//!   the time of a whole request.
//! - A client that stops reading its answers cannot park a connection on a blocked write:
//!   `TCP_USER_TIMEOUT` (Linux) makes the kernel drop a connection whose sent data stays
//!   unacknowledged, zero-window probes included, for the header timeout.
//! - On shutdown the listener closes, idle connections close at once, requests in flight get
//!   `shutdown_grace` to finish; whatever is still open then is dropped, so no client can hold
//!   the process.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{ApiError, App};
use axum::response::IntoResponse;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::HttpLimits;
use crate::metrics::{inc, Metrics};

/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// Requests in flight on one HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const H2_STREAMS_MAX: u32 = 128;
/// HTTP/2's connection preface, the first bytes a client sends.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Pause before looking again at a plain connection whose first bytes are a part of HTTP/2's
/// preface: the rest is usually in the same segment, so this is rare.
const PREFACE_RETRY: Duration = Duration::from_millis(1);

/// Serves `app` on `listener` until `shutdown` resolves, then drains within the grace period.
pub async fn serve(
    listener: TcpListener,
    app: App,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS_MAX);
    let h2_requests = Arc::new(Semaphore::new(limits.connections_max));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow with every connection.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "HTTP accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            inc(&metrics.http_connections_refused);
            tracing::debug!(%peer, "HTTP connection limit reached; closing a new connection");
            drop(tcp);
            continue;
        };
        // Responses are small and written once; Nagle's algorithm would only delay them.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        #[cfg(target_os = "linux")]
        if let Err(error) =
            socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(limits.header_timeout))
        {
            tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
        }
        let service = TowerToHyperService::new(app.clone());
        let protocols = Protocols {
            http1: http.clone(),
            http2: h2.clone(),
            h2_requests: Arc::clone(&h2_requests),
            header_timeout: limits.header_timeout,
        };
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let open = OpenConnection::new(Arc::clone(&metrics));
        connections.spawn(async move {
            let _open = (permit, open);
            let result = match tls {
                None => {
                    let timeout = protocols.header_timeout;
                    match tokio::time::timeout(timeout, opens_with_h2_preface(&tcp)).await {
                        Ok(Ok(h2)) => protocols.serve(tcp, h2, service, watcher).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "HTTP connection closed before a request");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "no request on an HTTP connection in time");
                            return;
                        }
                    }
                }
                Some(acceptor) => {
                    let Some(stream) =
                        handshake(&acceptor, tcp, protocols.header_timeout).await
                    else {
                        return;
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    protocols.serve(stream, h2, service, watcher).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open after the shutdown grace period; closing them"
        );
    }
    // Dropping the set aborts whatever is left.
    connections.shutdown().await;
    Ok(())
}

/// How a connection is served, in either protocol.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// Requests in flight on all HTTP/2 connections.
    h2_requests: Arc<Semaphore>,
    header_timeout: Duration,
}

type Service = TowerToHyperService<App>;

impl Protocols {
    async fn serve<I>(
        self,
        io: I,
        h2: bool,
        service: Service,
        watcher: Watcher,
    ) -> Result<(), hyper::Error>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if !h2 {
            return watcher
                .watch(self.http1.serve_connection(TokioIo::new(io), service))
                .await;
        }
        let activity = Arc::new(Activity::default());
        let streams: H2Streams<Service> = H2Streams {
            inner: service,
            activity: Arc::clone(&activity),
            permits: self.h2_requests,
        };
        let connection = watcher.watch(self.http2.serve_connection(TokioIo::new(io), streams));
        tokio::select! {
            result = connection => result,
            () = activity.idle_for(self.header_timeout) => Ok(()),
        }
    }
}

/// Whether a plain connection opens with HTTP/2's preface; nothing is consumed. An error if
/// it closes first.
async fn opens_with_h2_preface(tcp: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; H2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut first).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if first[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // Peeking again at once would find the same bytes: the socket stays readable.
        tokio::time::sleep(PREFACE_RETRY).await;
    }
}

/// The requests of one HTTP/2 connection: how many are in flight, and how many have started
/// or finished.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    events: AtomicU64,
}

impl Activity {
    /// Resolves once a whole `period`, checked every `period`, went by with no request in
    /// flight and none started or finished: after `period` to twice that of idleness.
    async fn idle_for(&self, period: Duration) {
        let mut seen = self.events.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(period).await;
            let events = self.events.load(Ordering::Relaxed);
            if events == seen && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            seen = events;
        }
    }
}

/// Counts a request in flight on its connection, and holds its share of the HTTP/2 requests.
struct InFlight {
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.activity.events.fetch_add(1, Ordering::Relaxed);
    }
}

/// The node's service for the streams of one HTTP/2 connection, under the limits above.
struct H2Streams<S> {
    inner: S,
    activity: Arc<Activity>,
    permits: Arc<Semaphore>,
}

type Answer = Response<axum::body::Body>;

impl<S, B> hyper::service::Service<Request<B>> for H2Streams<S>
where
    S: hyper::service::Service<Request<B>, Response = Answer>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Answer;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, S::Error>> + Send>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        self.activity.events.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            let busy = ApiError::unavailable("too many HTTP/2 requests in flight; try again");
            return Box::pin(std::future::ready(Ok(busy.into_response())));
        };
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight {
            activity: Arc::clone(&self.activity),
            _permit: permit,
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let _in_flight = in_flight;
            answer.await
        })
    }
}

/// Counts an open connection in `raft_http_connections_open` while it lives.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> OpenConnection {
        metrics
            .http_connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0
            .http_connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::service::Service as _;
    use std::convert::Infallible;

    type Body = http_body_util::Empty<hyper::body::Bytes>;

    /// Answers `200` when `release` has a permit to take, and waits for one until then.
    fn held(
        release: Arc<Semaphore>,
    ) -> impl hyper::service::Service<
        Request<Body>,
        Response = Answer,
        Error = Infallible,
        Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>,
    > {
        hyper::service::service_fn(move |_: Request<Body>| {
            let release = Arc::clone(&release);
            Box::pin(async move {
                release.acquire().await.expect("never closed").forget();
                Ok::<_, Infallible>(Response::new(axum::body::Body::empty()))
            }) as Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>
        })
    }

    #[tokio::test]
    async fn http2_requests_beyond_the_limit_are_answered_503_at_once() {
        let release = Arc::new(Semaphore::new(0));
        let permits = Arc::new(Semaphore::new(2));
        let activity = Arc::new(Activity::default());
        let streams = H2Streams {
            inner: held(Arc::clone(&release)),
            activity: Arc::clone(&activity),
            permits: Arc::clone(&permits),
        };
        let first = tokio::spawn(streams.call(Request::new(Body::new())));
        let second = tokio::spawn(streams.call(Request::new(Body::new())));
        let refused = streams.call(Request::new(Body::new())).await.unwrap();
        assert_eq!(refused.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 2);
        assert_eq!(activity.events.load(Ordering::Relaxed), 3);

        release.add_permits(2);
        assert_eq!(
            first.await.unwrap().unwrap().status(),
            hyper::StatusCode::OK
        );
        assert_eq!(
            second.await.unwrap().unwrap().status(),
            hyper::StatusCode::OK
        );
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(permits.available_permits(), 2);
        // A request dropped before its answer gives its share back too.
        let dropped = streams.call(Request::new(Body::new()));
        assert_eq!(permits.available_permits(), 1);
        drop(dropped);
        assert_eq!(permits.available_permits(), 2);
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_is_idle_only_with_no_request_in_flight_for_a_whole_period() {
        let period = Duration::from_secs(10);
        let activity = Arc::new(Activity::default());
        let release = Arc::new(Semaphore::new(0));
        let streams = H2Streams {
            inner: held(Arc::clone(&release)),
            activity: Arc::clone(&activity),
            permits: Arc::new(Semaphore::new(4)),
        };
        let first = tokio::spawn(streams.call(Request::new(Body::new())));
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.idle_for(period).await }
        });
        // A request in flight for a minute: not idle.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!idle.is_finished());
        // It finishes just before a check: the client has a whole period for the next one.
        tokio::time::sleep(period - Duration::from_millis(1)).await;
        release.add_permits(1);
        first.await.unwrap().unwrap();
        tokio::time::sleep(period / 2).await;
        assert!(!idle.is_finished());
        // Another one starts and finishes within that period.
        release.add_permits(1);
        streams.call(Request::new(Body::new())).await.unwrap();
        tokio::time::sleep(period).await;
        assert!(!idle.is_finished());
        // Then nothing: idle within two periods.
        tokio::time::sleep(period * 2).await;
        assert!(idle.is_finished());
    }

    #[tokio::test]
    async fn the_http2_preface_is_told_from_an_http1_request_without_consuming_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (sent, h2) in [
            (H2_PREFACE, true),
            (&b"PUT /api/v1/kv/k HTTP/1.1\r\n"[..], false),
            (&b"PRI * HTTP/1.1\r\n"[..], false),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            // The first half, then the rest: the preface may arrive in pieces.
            let (head, tail) = sent.split_at(7);
            client.write_all(head).await.unwrap();
            let told = tokio::spawn(async move {
                let h2 = opens_with_h2_preface(&server).await.unwrap();
                let mut first = vec![0; 7];
                server.read_exact(&mut first).await.unwrap();
                (h2, first)
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(tail).await.unwrap();
            let (told_h2, first) = told.await.unwrap();
            assert_eq!(told_h2, h2, "{:?}", String::from_utf8_lossy(sent));
            assert_eq!(first, head);
        }
        // A client that closes before sending anything.
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(client);
        assert!(opens_with_h2_preface(&server).await.is_err());
    }
}
