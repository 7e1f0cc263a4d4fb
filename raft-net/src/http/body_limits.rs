//! The limits on a request body, in one wrapper: at most `bytes_max` bytes (beyond that the
//! body fails with `http_body_util`'s length limit error, which axum's extractors answer
//! `413`), and a pause of at most `pause_max` between two chunks (beyond that it fails with
//! [`BodyTimedOut`], `408`).
//!
//! It replaces axum's `DefaultBodyLimit` (whose extractors wrap and box every body once more)
//! and `tower_http`'s `RequestBodyTimeout`, which arms a timer before every read of the body.
//! The timer here is armed only when a read finds no data yet: a small body arrives with its
//! request head, so most requests never touch the timer wheel. Together that was about 5% of
//! the leader's instructions per write (`bench/instructions/leader.sh`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Frame, SizeHint};
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::ApiError;
use crate::config::BODY_BYTES_MAX;

/// What a request body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest pause between two chunks.
    pub pause_max: Duration,
    /// The most bytes in all.
    pub bytes_max: usize,
}

/// Fails a request body that breaks its [`Limits`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitsLayer {
    limits: Limits,
}

impl BodyLimitsLayer {
    pub fn new(limits: Limits) -> BodyLimitsLayer {
        BodyLimitsLayer { limits }
    }
}

impl<S> Layer<S> for BodyLimitsLayer {
    type Service = BodyLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimits {
            inner,
            limits: self.limits,
        }
    }
}

/// The service of [`BodyLimitsLayer`].
#[derive(Debug, Clone)]
pub struct BodyLimits<S> {
    inner: S,
    limits: Limits,
}

impl<S, B> Service<Request<B>> for BodyLimits<S>
where
    S: Service<Request<Body>>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    /// The body becomes axum's `Body` here, boxed once; the router then takes it as it is.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let limits = self.limits;
        let mut request = request.map(|body| Body::new(LimitedBody::new(body, limits)));
        // The limit above holds for every extractor; axum's own would wrap the body again.
        DefaultBodyLimit::disable().apply(&mut request);
        self.inner.call(request)
    }
}

/// The error of a body that paused for longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimedOut {
    pub limit: Duration,
}

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no request body data arrived for {} ms",
            self.limit.as_millis()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

pin_project_lite::pin_project! {
    /// A body whose reads fail once it has exceeded `bytes_max` (`http_body_util`'s
    /// `Limited`, unboxed), or once one has waited `pause_max` for data.
    pub struct LimitedBody<B> {
        #[pin]
        body: Limited<B>,
        // Armed by the first read that finds no data, dropped by the next one that does.
        #[pin]
        pause: Option<Sleep>,
        pause_max: Duration,
    }
}

impl<B> LimitedBody<B> {
    pub fn new(body: B, limits: Limits) -> LimitedBody<B> {
        LimitedBody {
            body: Limited::new(body, limits.bytes_max),
            pause: None,
            pause_max: limits.pause_max,
        }
    }
}

impl<B> hyper::body::Body for LimitedBody<B>
where
    B: hyper::body::Body,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        // Its error over the limit is the one axum's extractors answer `413`.
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            this.pause.set(None);
            return Poll::Ready(frame);
        }
        if this.pause.is_none() {
            this.pause.set(Some(tokio::time::sleep(*this.pause_max)));
        }
        let expired = this
            .pause
            .as_pin_mut()
            .is_some_and(|pause| pause.poll(cx).is_ready());
        if expired {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut {
                limit: *this.pause_max,
            }))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request's whole body, refused as every route with a body refuses one: `413` over the size
/// limit, `408` when it stops arriving for longer than the pause limit, `400` when reading it
/// fails otherwise.
///
/// axum's `Bytes` extractor reads the same bytes through `http_body_util`'s `Collect`, a queue
/// of the chunks that it then joins. A small body arrives as one chunk, which this takes as it
/// is: about 550 instructions less per write at the leader (`bench/instructions/leader.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for WholeBody {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, _: &S) -> Result<WholeBody, ApiError> {
        let mut body = request.into_body();
        let mut first: Option<Bytes> = None;
        let mut joined: Option<Vec<u8>> = None;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(refusal)?.into_data() else {
                continue; // trailers: nothing a route reads
            };
            match (&mut joined, &first) {
                (Some(joined), _) => joined.extend_from_slice(&data),
                (None, None) => first = Some(data),
                (None, Some(head)) => {
                    let mut both = Vec::with_capacity(head.len() + data.len());
                    both.extend_from_slice(head);
                    both.extend_from_slice(&data);
                    joined = Some(both);
                }
            }
        }
        Ok(WholeBody(match joined {
            Some(joined) => Bytes::from(joined),
            None => first.unwrap_or_default(),
        }))
    }
}

/// The answer to a body whose reading failed with `error`.
fn refusal(error: axum::Error) -> ApiError {
    let error = error.into_inner();
    if caused_by::<BodyTimedOut>(&*error) {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, error.to_string())
    } else if caused_by::<LengthLimitError>(&*error) {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {BODY_BYTES_MAX} bytes"),
        )
    } else {
        ApiError::bad_request(format!("failed to read the request body: {error}"))
    }
}

/// Whether `error`, or an error it was caused by, is an `E`: the rejection of an extractor
/// that read a body wraps the body's error.
pub fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<E>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::sync::mpsc;

    /// A body fed by hand: each message is the next chunk.
    struct Fed(mpsc::Receiver<Bytes>);

    impl hyper::body::Body for Fed {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    fn limits(pause_ms: u64, bytes_max: usize) -> Limits {
        Limits {
            pause_max: Duration::from_millis(pause_ms),
            bytes_max,
        }
    }

    fn fed() -> (mpsc::Sender<Bytes>, Fed) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Fed(rx))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_pauses_for_longer_than_the_limit_fails() {
        let (tx, body) = fed();
        let mut body = std::pin::pin!(LimitedBody::new(body, limits(100, 1024)));
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"a"));
        let started = tokio::time::Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(caused_by::<BodyTimedOut>(&*error), "{error}");
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn each_chunk_restarts_the_pause_allowed() {
        let (tx, body) = fed();
        let body = LimitedBody::new(body, limits(100, 1024));
        let feeder = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(80)).await;
                tx.send(Bytes::from_static(b"ab")).await.unwrap();
            }
        });
        let whole = body.collect().await.unwrap().to_bytes();
        assert_eq!(whole.len(), 10);
        feeder.await.unwrap();
    }

    /// Outside a runtime, where creating a timer panics: a body whose data is there never
    /// creates one.
    #[test]
    fn a_body_already_there_arms_no_timer() {
        let body = LimitedBody::new(
            http_body_util::Full::new(Bytes::from_static(b"abc")),
            limits(100, 1024),
        );
        let mut body = std::pin::pin!(body);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(Some(Ok(first))) = hyper::body::Body::poll_frame(body.as_mut(), &mut cx)
        else {
            panic!("the data was there");
        };
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"abc"));
        assert!(matches!(
            hyper::body::Body::poll_frame(body.as_mut(), &mut cx),
            Poll::Ready(None)
        ));
    }

    /// A wake-up without data (the task polled again for another reason) does not restart the
    /// pause: the deadline holds from the first read that found nothing.
    #[tokio::test(start_paused = true)]
    async fn polls_without_data_do_not_move_the_deadline() {
        let (tx, body) = fed();
        let mut body = std::pin::pin!(LimitedBody::new(body, limits(100, 1024)));
        let mut poll = || {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match hyper::body::Body::poll_frame(body.as_mut(), &mut cx) {
                Poll::Pending => None,
                Poll::Ready(frame) => Some(frame),
            }
        };
        assert!(poll().is_none());
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(poll().is_none());
        tokio::time::advance(Duration::from_millis(60)).await;
        let Some(Some(Err(error))) = poll() else {
            panic!("the pause outlasted its limit");
        };
        assert!(caused_by::<BodyTimedOut>(&*error), "{error}");
        drop(tx);
    }

    /// What the node answers a body that breaks a limit, through the extractor its handlers
    /// use.
    async fn answer_to(
        body: impl hyper::body::Body<Data = Bytes, Error = std::io::Error> + Send + 'static,
        limits: Limits,
    ) -> StatusCode {
        use axum::extract::FromRequest;
        WholeBody::from_request(limited(body, limits), &())
            .await
            .unwrap_err()
            .status()
    }

    /// A request whose body is `body` under `limits`, as the layer hands it on.
    fn limited(
        body: impl hyper::body::Body<Data = Bytes, Error = std::io::Error> + Send + 'static,
        limits: Limits,
    ) -> Request<Body> {
        Request::new(Body::new(LimitedBody::new(body, limits)))
    }

    /// The whole body, whichever chunks it came in; one chunk is handed on without a copy.
    #[tokio::test]
    async fn the_whole_body_is_every_chunk_in_order() {
        use axum::extract::FromRequest;
        async fn whole(chunks: &[&'static [u8]]) -> Bytes {
            let (tx, body) = fed();
            for &chunk in chunks {
                tx.send(Bytes::from_static(chunk)).await.unwrap();
            }
            drop(tx);
            let request = limited(body, limits(100, 1024));
            WholeBody::from_request(request, &()).await.unwrap().0
        }
        assert_eq!(whole(&[]).await, Bytes::new());
        let one: &'static [u8] = b"one chunk";
        assert_eq!(whole(&[one]).await.as_ptr(), one.as_ptr());
        assert_eq!(whole(&[b"ab", b"", b"cd", b"e"]).await, &b"abcde"[..]);
        assert_eq!(whole(&[b"", b"ab"]).await, &b"ab"[..]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_over_the_limit_is_answered_413_and_a_stalled_one_408() {
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"abcdef")).await.unwrap();
        assert_eq!(answer_to(body, limits(100, 5)).await, 413);
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(answer_to(body, limits(100, 1024)).await, 408);
        drop(tx);
    }

    /// A service's JSON bodies get the same answers as the node's own routes.
    #[tokio::test(start_paused = true)]
    async fn the_json_extractor_of_services_answers_as_the_node_does() {
        use crate::service::Json;
        use axum::extract::FromRequest;
        async fn extract(
            body: impl hyper::body::Body<Data = Bytes, Error = std::io::Error> + Send + 'static,
            limits: Limits,
        ) -> Result<serde_json::Value, StatusCode> {
            Json::<serde_json::Value>::from_request(limited(body, limits), &())
                .await
                .map(|Json(value)| value)
                .map_err(|error| error.status())
        }
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"{\"a\": 1}")).await.unwrap();
        drop(tx);
        let value = extract(body, limits(100, 1024)).await;
        assert_eq!(value, Ok(serde_json::json!({"a": 1})));
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"{\"a\"")).await.unwrap();
        drop(tx);
        assert_eq!(
            extract(body, limits(100, 1024)).await,
            Err(StatusCode::BAD_REQUEST)
        );
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"[1, 2, 3]")).await.unwrap();
        assert_eq!(
            extract(body, limits(100, 5)).await,
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"[1,")).await.unwrap();
        assert_eq!(
            extract(body, limits(100, 1024)).await,
            Err(StatusCode::REQUEST_TIMEOUT)
        );
        drop(tx);
    }

    /// Through the layer, its limit is the only one: axum's extractors would otherwise cut a
    /// body at their own 2 MB default.
    #[tokio::test]
    async fn the_layer_sets_the_only_limit_of_a_body() {
        use crate::service::Json;
        use tower::ServiceExt;
        let route = axum::Router::new().route(
            "/",
            axum::routing::post(|Json(value): Json<serde_json::Value>| async move {
                value.as_str().map_or(0, str::len).to_string()
            }),
        );
        let app = BodyLimitsLayer::new(limits(1000, 4 << 20)).layer(route);
        let send = |len: usize| {
            let body = format!("\"{}\"", "a".repeat(len));
            let request = Request::post("/").body(Body::from(body)).unwrap();
            app.clone().oneshot(request)
        };
        let response = send(3 << 20).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(answer, (3 << 20).to_string().as_bytes());
        let response = send(5 << 20).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_over_the_limit_fails_once_it_passes_it() {
        let (tx, body) = fed();
        let mut body = std::pin::pin!(LimitedBody::new(body, limits(100, 5)));
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tx.send(Bytes::from_static(b"de")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tx.send(Bytes::from_static(b"f")).await.unwrap();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(
            caused_by::<http_body_util::LengthLimitError>(&*error),
            "{error}"
        );
    }
}
