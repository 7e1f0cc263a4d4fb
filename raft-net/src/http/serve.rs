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
//! - HTTP/2 has limits of its own, for requests in flight and for idle or stalled connections
//!   (see `h2`), with the header timeout as their period.
//! - The layers around the router (see `router`) bound the time between two body chunks and
//!   the time of a whole request.
//! - A client that stops reading its answers cannot park a connection on a blocked write:
//!   `TCP_USER_TIMEOUT` (Linux) makes the kernel drop a connection whose sent data stays
//!   unacknowledged, zero-window probes included, for the header timeout.
//! - On shutdown the listener closes, idle connections and connections still in their TLS
//!   handshake or first bytes close at once, HTTP/2 connections send GOAWAY, requests in
//!   flight get `shutdown_grace` to finish; whatever is still open then is dropped, so no
//!   client can hold the process.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::{h2, App};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::HttpLimits;
use crate::metrics::{inc, Metrics};

/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

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
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let http2 = h2::builder();
    let h2_pool = Arc::new(Semaphore::new(limits.connections_max));
    let (stopping, stop) = watch::channel(false);
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
            http2: http2.clone(),
            h2_pool: Arc::clone(&h2_pool),
            header_timeout: limits.header_timeout,
            shutdown_grace: limits.shutdown_grace,
        };
        let tls = tls.clone();
        let open = OpenConnection::new(Arc::clone(&metrics));
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _open = (permit, open);
            let timeout = protocols.header_timeout;
            let result = match tls {
                None => {
                    let first = tokio::time::timeout(timeout, h2::opens_with_preface(&tcp));
                    let h2 = match until_stopped(first, &mut stop).await {
                        Some(Ok(Ok(h2))) => h2,
                        Some(Ok(Err(error))) => {
                            tracing::debug!(%peer, %error, "HTTP connection closed before a request");
                            return;
                        }
                        Some(Err(_)) => {
                            tracing::debug!(%peer, "no request on an HTTP connection in time");
                            return;
                        }
                        None => return,
                    };
                    protocols.serve(tcp, h2, service, stop).await
                }
                Some(acceptor) => {
                    let Some(Some(stream)) =
                        until_stopped(handshake(&acceptor, tcp, timeout), &mut stop).await
                    else {
                        return;
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    protocols.serve(stream, h2, service, stop).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    // Every connection is asked to close: those that have not begun a protocol end now, the
    // others once what they have in flight is answered.
    let _ = stopping.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drained)
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

/// `work`'s outcome, or `None` once shutdown has begun.
async fn until_stopped<T>(
    work: impl Future<Output = T>,
    stop: &mut watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        _ = stop.wait_for(|stopping| *stopping) => None,
    }
}

/// How a connection is served, in either protocol.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// The places shared by the requests of all HTTP/2 connections.
    h2_pool: Arc<Semaphore>,
    header_timeout: Duration,
    shutdown_grace: Duration,
}

type Service = TowerToHyperService<App>;

impl Protocols {
    async fn serve<I>(
        self,
        io: I,
        h2: bool,
        service: Service,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), hyper::Error>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let stopped = async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        };
        if !h2 {
            let connection = self.http1.serve_connection(TokioIo::new(io), service);
            return close_gracefully_after(connection, stopped, self.shutdown_grace).await;
        }
        let activity = Arc::new(h2::Activity::default());
        let streams = h2::Streams {
            inner: service,
            activity: Arc::clone(&activity),
            pool: self.h2_pool,
        };
        let connection = self.http2.serve_connection(TokioIo::new(io), streams);
        let closing = async {
            tokio::select! {
                () = activity.stalled_or_idle(self.header_timeout) => {}
                () = stopped => {}
            }
        };
        // An idle or stalled connection gets one more period; on shutdown the server's grace
        // bounds it too.
        close_gracefully_after(connection, closing, self.header_timeout).await
    }
}

/// Serves `connection` until it ends or `closing` resolves; then asks it to close gracefully
/// (HTTP/1.1: once the request in flight is answered, at once when idle; HTTP/2: GOAWAY, the
/// requests in flight answered) and drops it if it has not within `then`.
async fn close_gracefully_after<C>(
    connection: C,
    closing: impl Future<Output = ()>,
    then: Duration,
) -> Result<(), hyper::Error>
where
    C: GracefulConnection<Error = hyper::Error>,
{
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result,
        () = closing => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::time::timeout(then, connection)
        .await
        .unwrap_or(Ok(()))
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
