//! A layer (CORS) applied only to requests that carry an `Origin` header.
//!
//! Browsers send `Origin` with every cross-origin request, preflights included, so CORS
//! answers are unchanged for the pages it is for. Every other client (`curl`, the CLI, load
//! generators, other services) skips the layer: no header map built and no `Vary` header
//! written per request, which was a measurable share of the leader's CPU per write. Such an
//! answer carries no `Vary: origin`; no route's answer is cacheable (no validators, no
//! `Cache-Control`), so no cache can hand it to a page in place of a CORS answer, and if one
//! did, the page would be refused it (no `Access-Control-Allow-Origin`), never shown it.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{header, Request};
use futures_util::future::Either;
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

/// Wraps a service so that `layer` sees only requests with an `Origin` header.
#[derive(Debug, Clone)]
pub struct CrossOriginLayer<L>(pub L);

impl<L: Layer<S>, S: Clone> Layer<S> for CrossOriginLayer<L> {
    type Service = CrossOrigin<S, L::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOrigin {
            plain: inner.clone(),
            layered: Arc::new(self.0.layer(inner)),
        }
    }
}

/// The service of [`CrossOriginLayer`]: the same inner service, with and without the layer.
/// The server clones its service for every request; the layered one is shared and cloned only
/// for a request that goes through it (cloning CORS's settings allocates).
#[derive(Debug, Clone)]
pub struct CrossOrigin<S, W> {
    plain: S,
    layered: Arc<W>,
}

impl<S, W, B> Service<Request<B>> for CrossOrigin<S, W>
where
    S: Service<Request<B>>,
    W: Service<Request<B>, Response = S::Response, Error = S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Oneshot<W, Request<B>>>;

    /// The layered service is made ready with each request it takes (`oneshot`).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.headers().contains_key(header::ORIGIN) {
            Either::Right(W::clone(&self.layered).oneshot(request))
        } else {
            Either::Left(self.plain.call(request))
        }
    }
}
