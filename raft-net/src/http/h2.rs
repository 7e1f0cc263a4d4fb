//! HTTP/2 on the client API: telling it from HTTP/1.1 on a plain connection, and the limits
//! that HTTP/1.1 gets from hyper's header timeout and the kernel's `TCP_USER_TIMEOUT`, which
//! do not reach into a connection that multiplexes requests and has its own flow control.
//!
//! - At most `STREAMS_MAX` requests in flight on a connection. Its first request in flight
//!   uses the connection's own place (every connection holds one of `connections_max`), the
//!   others share a pool of `connections_max` with every other HTTP/2 connection; a request
//!   that finds the pool empty is answered `503` at once, its body unread. So a few
//!   connections full of slow requests cannot turn every other client away.
//! - A request is in flight until its answer's body is done, so an event stream or a long
//!   download keeps its connection open.
//! - The connection is closed (GOAWAY, then one more period for what is in flight) once a
//!   whole period (the header timeout) went by with nothing moving (no request started or
//!   finished, no part of an answer taken) while either no request is in flight, or an answer
//!   waits for the client to take what it was handed: a client whose flow-control window
//!   stays closed cannot hold its answers, and its place, for good. An answer waiting for its
//!   own data (an event stream between two events, a write waiting for its commit) is not
//!   waiting for the client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use hyper::body::{Bytes, Frame, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Requests in flight on one HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const STREAMS_MAX: u32 = 128;
/// Request body bytes a client may send ahead of the handlers, per stream and per connection.
const WINDOW_BYTES: u32 = 1 << 20;
/// Bytes of one request's header block.
const HEADER_LIST_BYTES: u32 = 16 << 10;
/// HTTP/2's connection preface, the first bytes a client sends.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// First and longest pause before looking again at a plain connection whose first bytes are
/// a part of the preface (the rest is nearly always in the same segment).
const PREFACE_RETRY_FIRST: Duration = Duration::from_millis(1);
const PREFACE_RETRY_MAX: Duration = Duration::from_millis(100);

/// hyper's HTTP/2 server with the node's settings, spelled out rather than left to defaults.
pub fn builder() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        .max_concurrent_streams(STREAMS_MAX)
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES)
        .max_header_list_size(HEADER_LIST_BYTES);
    http
}

/// Whether a plain connection opens with HTTP/2's preface; nothing is consumed. An error if
/// it closes first.
pub async fn opens_with_preface(tcp: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; PREFACE.len()];
    let mut retry = PREFACE_RETRY_FIRST;
    loop {
        let n = tcp.peek(&mut first).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if first[..n] != PREFACE[..n] {
            return Ok(false);
        }
        if n == PREFACE.len() {
            return Ok(true);
        }
        // Peeking again at once would find the same bytes: the socket stays readable.
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(PREFACE_RETRY_MAX);
    }
}

/// What the requests of one HTTP/2 connection are doing.
#[derive(Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Requests started or finished, and answers' parts taken by hyper.
    events: AtomicU64,
    /// Answers handed to hyper (their head, or a part of their body) that it has not come
    /// back to since: it comes back once the client's window lets it send more.
    waiting_on_client: AtomicUsize,
    /// Whether the request using the connection's own place is in flight.
    own_place_taken: AtomicBool,
}

impl Activity {
    /// Resolves once the connection should close (see the module's comment), checking every
    /// `period`: after `period` to twice that of nothing moving.
    pub async fn stalled_or_idle(&self, period: Duration) {
        let mut seen = self.events.load(SeqCst);
        loop {
            tokio::time::sleep(period).await;
            // The counts before the events: every change to a count follows its event, so a
            // count read here is never newer than the events read after it.
            let in_flight = self.in_flight.load(SeqCst);
            let waiting = self.waiting_on_client.load(SeqCst);
            let events = self.events.load(SeqCst);
            if events == seen && (in_flight == 0 || waiting > 0) {
                return;
            }
            seen = events;
        }
    }
}

/// A request in flight on its connection, until its answer's body is done or dropped.
struct InFlight {
    activity: Arc<Activity>,
    /// Its place in the shared pool; `None` for the connection's own place.
    pooled: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    /// A place for a new request, if there is one.
    fn start(activity: &Arc<Activity>, pool: &Arc<Semaphore>) -> Option<InFlight> {
        activity.events.fetch_add(1, SeqCst);
        let pooled = if activity
            .own_place_taken
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
        {
            None
        } else {
            Some(Arc::clone(pool).try_acquire_owned().ok()?)
        };
        activity.in_flight.fetch_add(1, SeqCst);
        Some(InFlight {
            activity: Arc::clone(activity),
            pooled,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.events.fetch_add(1, SeqCst);
        self.activity.in_flight.fetch_sub(1, SeqCst);
        if self.pooled.is_none() {
            self.activity.own_place_taken.store(false, SeqCst);
        }
    }
}

/// An answer's body that keeps its request in flight and tells when hyper takes its parts.
/// hyper hands a whole data frame to h2, which holds what the client's window does not let
/// out yet; so a large frame (a backup) is cut into `SLICE_BYTES` slices, and hyper comes back
/// for the next one only when the last has gone out: each slice is a sign of progress, and the
/// request stays in flight until the last.
struct Tracked {
    inner: Body,
    /// What is left of a data frame larger than a slice.
    rest: Bytes,
    /// Handed to hyper and not come back to yet (the head counts as the first part).
    handed: bool,
    in_flight: InFlight,
}

/// The largest data frame handed to hyper at once.
const SLICE_BYTES: usize = 64 << 10;

impl Tracked {
    fn new(inner: Body, in_flight: InFlight) -> Tracked {
        let mut tracked = Tracked {
            inner,
            rest: Bytes::new(),
            handed: false,
            in_flight,
        };
        tracked.hand_over();
        tracked
    }

    fn hand_over(&mut self) {
        self.handed = true;
        let activity = &self.in_flight.activity;
        // The event first: a check that sees the count also sees that something moved.
        activity.events.fetch_add(1, SeqCst);
        activity.waiting_on_client.fetch_add(1, SeqCst);
    }

    fn came_back(&mut self) {
        if self.handed {
            self.handed = false;
            let activity = &self.in_flight.activity;
            activity.events.fetch_add(1, SeqCst);
            activity.waiting_on_client.fetch_sub(1, SeqCst);
        }
    }

    fn slice(&mut self) -> Frame<Bytes> {
        let slice = if self.rest.len() > SLICE_BYTES {
            self.rest.split_to(SLICE_BYTES)
        } else {
            std::mem::take(&mut self.rest)
        };
        self.hand_over();
        Frame::data(slice)
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        this.came_back();
        if !this.rest.is_empty() {
            return Poll::Ready(Some(Ok(this.slice())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    this.rest = data;
                    Poll::Ready(Some(Ok(this.slice())))
                }
                Err(trailers) => {
                    this.hand_over();
                    Poll::Ready(Some(Ok(trailers)))
                }
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.came_back();
    }
}

/// The node's service for the streams of one HTTP/2 connection, under the limits above.
pub struct Streams<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
    /// Places shared by all HTTP/2 connections.
    pub pool: Arc<Semaphore>,
}

type Answer = Response<Body>;

impl<S, B> hyper::service::Service<Request<B>> for Streams<S>
where
    S: hyper::service::Service<Request<B>, Response = Answer>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Answer;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, S::Error>> + Send>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let Some(in_flight) = InFlight::start(&self.activity, &self.pool) else {
            let busy = ApiError::unavailable("too many HTTP/2 requests in flight; try again");
            return Box::pin(std::future::ready(Ok(busy.into_response())));
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await?;
            Ok(answer.map(|body| Body::new(Tracked::new(body, in_flight))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::service::Service as _;
    use std::convert::Infallible;

    type Empty = http_body_util::Empty<Bytes>;
    type Held = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    /// Answers `200` with `body` once `release` has a permit to take.
    fn held(
        release: Arc<Semaphore>,
        body: fn() -> Body,
    ) -> impl hyper::service::Service<Request<Empty>, Response = Answer, Error = Infallible, Future = Held>
    {
        hyper::service::service_fn(move |_: Request<Empty>| {
            let release = Arc::clone(&release);
            Box::pin(async move {
                release.acquire().await.expect("never closed").forget();
                Ok::<_, Infallible>(Response::new(body()))
            }) as Held
        })
    }

    fn streams(
        release: &Arc<Semaphore>,
        body: fn() -> Body,
        pool: usize,
    ) -> Streams<
        impl hyper::service::Service<
            Request<Empty>,
            Response = Answer,
            Error = Infallible,
            Future = Held,
        >,
    > {
        Streams {
            inner: held(Arc::clone(release), body),
            activity: Arc::new(Activity::default()),
            pool: Arc::new(Semaphore::new(pool)),
        }
    }

    fn request() -> Request<Empty> {
        Request::new(Empty::new())
    }

    #[tokio::test]
    async fn http2_requests_beyond_the_connections_place_and_the_pool_are_answered_503_at_once() {
        let release = Arc::new(Semaphore::new(0));
        let streams = streams(&release, Body::empty, 2);
        let first = tokio::spawn(streams.call(request()));
        let second = tokio::spawn(streams.call(request()));
        let third = tokio::spawn(streams.call(request()));
        let refused = streams.call(request()).await.unwrap();
        assert_eq!(refused.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(streams.activity.in_flight.load(SeqCst), 3);
        assert_eq!(streams.pool.available_permits(), 0);

        release.add_permits(3);
        for answer in [first, second, third] {
            let answer = answer.await.unwrap().unwrap();
            assert_eq!(answer.status(), hyper::StatusCode::OK);
            // In flight until its body is done.
            assert!(streams.activity.in_flight.load(SeqCst) > 0);
            answer.into_body().collect().await.unwrap();
        }
        assert_eq!(streams.activity.in_flight.load(SeqCst), 0);
        assert_eq!(streams.activity.waiting_on_client.load(SeqCst), 0);
        assert_eq!(streams.pool.available_permits(), 2);
        assert!(!streams.activity.own_place_taken.load(SeqCst));
        // A request dropped before its answer gives its place back too.
        let dropped = streams.call(request());
        let pooled = streams.call(request());
        assert_eq!(streams.pool.available_permits(), 1);
        drop((dropped, pooled));
        assert_eq!(streams.pool.available_permits(), 2);
        assert_eq!(streams.activity.in_flight.load(SeqCst), 0);
        assert!(!streams.activity.own_place_taken.load(SeqCst));
    }

    #[tokio::test]
    async fn a_connection_keeps_its_own_place_when_the_pool_is_empty() {
        let release = Arc::new(Semaphore::new(0));
        let streams = streams(&release, Body::empty, 0);
        let first = tokio::spawn(streams.call(request()));
        let refused = streams.call(request()).await.unwrap();
        assert_eq!(refused.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
        release.add_permits(1);
        let answer = first.await.unwrap().unwrap();
        assert_eq!(answer.status(), hyper::StatusCode::OK);
        drop(answer);
        release.add_permits(1);
        let again = streams.call(request()).await.unwrap();
        assert_eq!(again.status(), hyper::StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_is_idle_only_with_nothing_in_flight_for_a_whole_period() {
        let period = Duration::from_secs(10);
        let release = Arc::new(Semaphore::new(0));
        let streams = streams(&release, Body::empty, 4);
        let first = tokio::spawn(streams.call(request()));
        let idle = tokio::spawn({
            let activity = Arc::clone(&streams.activity);
            async move { activity.stalled_or_idle(period).await }
        });
        // A handler working for a minute: not idle.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!idle.is_finished());
        // It finishes just before a check: the client has a whole period for the next one.
        tokio::time::sleep(period - Duration::from_millis(1)).await;
        release.add_permits(1);
        first
            .await
            .unwrap()
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        tokio::time::sleep(period / 2).await;
        assert!(!idle.is_finished());
        // Another one starts and finishes within that period.
        release.add_permits(1);
        let answer = streams.call(request()).await.unwrap();
        answer.into_body().collect().await.unwrap();
        tokio::time::sleep(period).await;
        assert!(!idle.is_finished());
        // Then nothing: idle within two periods.
        tokio::time::sleep(period * 2).await;
        assert!(idle.is_finished());
    }

    /// A body that never ends and yields nothing: an event stream with no events.
    fn silent() -> Body {
        Body::from_stream(futures_util::stream::pending::<Result<Bytes, Infallible>>())
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_stream_keeps_its_connection_and_an_answer_the_client_does_not_take_does_not()
    {
        let period = Duration::from_secs(10);
        let release = Arc::new(Semaphore::new(1));
        let streams = streams(&release, silent, 4);
        let answer = streams.call(request()).await.unwrap();
        let closing = tokio::spawn({
            let activity = Arc::clone(&streams.activity);
            async move { activity.stalled_or_idle(period).await }
        });
        // hyper sends the head and polls the body, which waits for events: kept open.
        let mut body = answer.into_body();
        let waiting = tokio::time::timeout(Duration::from_millis(1), body.frame()).await;
        assert!(waiting.is_err());
        tokio::time::sleep(period * 10).await;
        assert!(
            !closing.is_finished(),
            "an event stream's connection was closed"
        );
        drop(body);

        // An answer whose head went out and whose body hyper never polls: the client's window
        // is closed. Closed within two periods.
        release.add_permits(1);
        let stuck = streams.call(request()).await.unwrap();
        let closing = tokio::spawn({
            let activity = Arc::clone(&streams.activity);
            async move { activity.stalled_or_idle(period).await }
        });
        tokio::time::sleep(period * 2 + Duration::from_millis(1)).await;
        assert!(
            closing.is_finished(),
            "a stalled answer kept its connection"
        );
        drop(stuck);
    }

    #[tokio::test]
    async fn a_large_answer_is_handed_over_in_slices_and_stays_in_flight_until_the_last() {
        let release = Arc::new(Semaphore::new(1));
        let streams = streams(&release, || Body::from(vec![7u8; 200 << 10]), 4);
        let answer = streams.call(request()).await.unwrap();
        let mut body = answer.into_body();
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(200 << 10));
        let mut slices = Vec::new();
        while let Some(frame) = body.frame().await {
            slices.push(frame.unwrap().into_data().unwrap().len());
            assert_eq!(streams.activity.in_flight.load(SeqCst), 1);
            assert_eq!(streams.activity.waiting_on_client.load(SeqCst), 1);
        }
        assert_eq!(slices, [64 << 10, 64 << 10, 64 << 10, 8 << 10]);
        drop(body);
        assert_eq!(streams.activity.in_flight.load(SeqCst), 0);
        assert_eq!(streams.activity.waiting_on_client.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn the_http2_preface_is_told_from_an_http1_request_without_consuming_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (sent, h2) in [
            (PREFACE, true),
            (&b"PUT /api/v1/kv/k HTTP/1.1\r\n"[..], false),
            (&b"PRI * HTTP/1.1\r\n"[..], false),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            // The first bytes, then the rest: the preface may arrive in pieces.
            let (head, tail) = sent.split_at(7);
            client.write_all(head).await.unwrap();
            let told = tokio::spawn(async move {
                let h2 = opens_with_preface(&server).await.unwrap();
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
        assert!(opens_with_preface(&server).await.is_err());
    }
}
