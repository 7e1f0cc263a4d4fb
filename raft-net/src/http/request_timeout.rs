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

use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::ApiError;

/// Answers `504` for a request not answered within `limit`.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeoutLayer {
    limit: Duration,
}

impl RequestTimeoutLayer {
    pub fn new(limit: Duration) -> RequestTimeoutLayer {
        RequestTimeoutLayer { limit }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`RequestTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct RequestTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TimedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        TimedFuture {
            answer: self.inner.call(request),
            deadline: tokio::time::sleep(self.limit),
            limit: self.limit,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, or the timeout's once the deadline passes first.
    pub struct TimedFuture<F> {
        #[pin]
        answer: F,
        #[pin]
        deadline: Sleep,
        limit: Duration,
    }
}

impl<F> Future for TimedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
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
        Poll::Ready(Ok(timed_out(*this.limit).into_response()))
    }
}

/// A request that took longer than the request timeout. Whatever it was doing may still
/// happen (a write in the log commits on its own), so the answer promises nothing.
fn timed_out(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "the request took longer than {} ms; the outcome is unknown: a write may still commit later",
            limit.as_millis()
        ),
    )
}
