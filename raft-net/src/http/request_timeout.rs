//! The whole-request time limit: a request whose answer (its head) is not ready within the
//! limit is answered `504` by the node, whatever the handler was doing.
//!
//! This is `tower::timeout` with the answer built in: tower's error has to pass through
//! axum's `HandleErrorLayer`, which boxes every request's future, for every request, to turn
//! the rare timeout into a response.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::Request;
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tower::{Layer, Service};

/// Answers `timed_out(limit)` for a request not answered within `limit`.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeoutLayer<A> {
    limit: Duration,
    timed_out: A,
}

impl<A> RequestTimeoutLayer<A> {
    pub fn new(limit: Duration, timed_out: A) -> RequestTimeoutLayer<A> {
        RequestTimeoutLayer { limit, timed_out }
    }
}

impl<S, A: Clone> Layer<S> for RequestTimeoutLayer<A> {
    type Service = RequestTimeout<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            limit: self.limit,
            timed_out: self.timed_out.clone(),
        }
    }
}

/// The service of [`RequestTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct RequestTimeout<S, A> {
    inner: S,
    limit: Duration,
    timed_out: A,
}

impl<S, A, R, B> Service<Request<B>> for RequestTimeout<S, A>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
    A: Fn(Duration) -> R + Clone,
    R: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TimedFuture<S::Future, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        TimedFuture {
            answer: self.inner.call(request),
            deadline: tokio::time::sleep(self.limit),
            limit: self.limit,
            timed_out: self.timed_out.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, or the timeout's once the deadline passes first.
    pub struct TimedFuture<F, A> {
        #[pin]
        answer: F,
        #[pin]
        deadline: Sleep,
        limit: Duration,
        timed_out: A,
    }
}

impl<F, A, R> Future for TimedFuture<F, A>
where
    F: Future<Output = Result<Response, Infallible>>,
    A: Fn(Duration) -> R,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.answer.poll(cx) {
            return Poll::Ready(answer);
        }
        if this.deadline.poll(cx).is_pending() {
            return Poll::Pending;
        }
        let answer = (this.timed_out)(*this.limit).into_response();
        Poll::Ready(Ok(answer))
    }
}
