//! The pause allowed between two chunks of a request body: a body that stops arriving for
//! longer fails with [`BodyTimedOut`], which the extractors' rejection turns into `408`.
//!
//! Unlike `tower_http`'s `RequestBodyTimeout`, which arms a timer before every read of the
//! body, the timer here is armed only when a read finds no data yet. A small body arrives with
//! its request head, so most requests never touch the timer wheel (a registration and a
//! removal per read, two reads per request, were about 2% of the leader's instructions per
//! write).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use hyper::body::{Frame, SizeHint};
use tokio::time::Sleep;
use tower::{Layer, Service};

/// Fails a request body that pauses for longer than `limit` between two chunks.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeoutLayer {
    limit: Duration,
}

impl BodyTimeoutLayer {
    pub fn new(limit: Duration) -> BodyTimeoutLayer {
        BodyTimeoutLayer { limit }
    }
}

impl<S> Layer<S> for BodyTimeoutLayer {
    type Service = BodyTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyTimeout {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`BodyTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct BodyTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request<Body>> for BodyTimeout<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let limit = self.limit;
        self.inner
            .call(request.map(|body| Body::new(TimedBody::new(body, limit))))
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
    /// A body whose reads fail once one has waited `limit` for data.
    pub struct TimedBody<B> {
        #[pin]
        body: B,
        // Armed by the first read that finds no data, dropped by the next one that does.
        #[pin]
        pause: Option<Sleep>,
        limit: Duration,
    }
}

impl<B> TimedBody<B> {
    pub fn new(body: B, limit: Duration) -> TimedBody<B> {
        TimedBody {
            body,
            pause: None,
            limit,
        }
    }
}

impl<B> hyper::body::Body for TimedBody<B>
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
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            this.pause.set(None);
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.pause.is_none() {
            this.pause.set(Some(tokio::time::sleep(*this.limit)));
        }
        let expired = this
            .pause
            .as_pin_mut()
            .is_some_and(|pause| pause.poll(cx).is_ready());
        if expired {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut { limit: *this.limit }))));
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

/// Whether `error`, or an error it was caused by, is a [`BodyTimedOut`].
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<BodyTimedOut>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::Bytes;
    use http_body_util::BodyExt;
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

    fn fed() -> (mpsc::Sender<Bytes>, Fed) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Fed(rx))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_pauses_for_longer_than_the_limit_fails() {
        let (tx, body) = fed();
        let mut body = std::pin::pin!(TimedBody::new(body, Duration::from_millis(100)));
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"a"));
        let started = tokio::time::Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(timed_out(&*error), "{error}");
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn each_chunk_restarts_the_pause_allowed() {
        let (tx, body) = fed();
        let body = TimedBody::new(body, Duration::from_millis(100));
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

    #[tokio::test(start_paused = true)]
    async fn a_body_already_there_arms_no_timer() {
        let body = TimedBody::new(
            http_body_util::Full::new(Bytes::from_static(b"abc")),
            Duration::from_millis(100),
        );
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"abc"));
        assert!(body.pause.is_none());
        assert!(body.frame().await.is_none());
    }
}
