//! The client API (axum). Every handler turns its request into a request to the driver, waits
//! for the answer, and maps it to a status: `200` only after commit and apply; `307` to the
//! leader (same path) from a follower; `503` when no leader is known or the leader is busy;
//! `409` when the entry was overwritten (a definite failure); `504` when the commit timeout
//! passes first, or the node stops (shutdown, a storage failure) before it learns the fate of a
//! write it took: the outcome is unknown, the entry may still commit. Every error body is
//! `{"error": "..."}`.
//!
//! Routes come in two kinds, each group behind one [`auth::Access`] class (see [`router`]):
//!
//! - the node's own routes, the same for every state machine: status ([`state`]), members
//!   ([`members`]), administration, health and metrics ([`node`]), served with a [`NodeState`]
//!   and answered by the driver's [`NodeRequest`](crate::driver::NodeRequest)s;
//! - the machine's routes, which the machine's service brings (the key-value machine's are in
//!   [`crate::kv`]: keys, log commands, sessions and the seed's compatibility routes). They
//!   reach the driver through a [`service::Handle`](crate::service::Handle) and answer with
//!   the same statuses and [`ApiError`]s.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use raft_core::NodeId;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod body_limits;
mod cross_origin;
pub mod events;
mod h2;
pub mod members;
pub mod node;
pub mod openapi;
mod request_timeout;
pub mod serve;
pub mod state;
mod ui;

use crate::addresses::AddressBook;
use crate::auth::{self, Access};
use crate::config::{HttpLimits, BODY_BYTES_MAX};
use crate::driver::Outcome;
pub use body_limits::WholeBody;
pub use node::NodeState;

/// How long a request that does not wait for a commit may wait for the driver before the node
/// counts as stuck.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request to the driver may have done, for the answer when the driver drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing: a read or a status. A dropped request is a definite `503`.
    None,
    /// A change the driver may have started (a proposal, a membership change, a transfer): once
    /// handed over, a dropped request is `504`, outcome unknown.
    Change,
}

/// A JSON error with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    /// The `Location` header of a redirect.
    location: Option<String>,
}

impl ApiError {
    /// `status` with the body `{"error": message}`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
            location: None,
        }
    }

    /// Adds `field` to the body.
    #[must_use]
    pub fn with(mut self, field: &str, value: Value) -> ApiError {
        if let Value::Object(map) = &mut self.body {
            map.insert(field.to_string(), value);
        }
        self
    }

    /// `400`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// `503`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// `500`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status it answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(value) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

/// A node's HTTP service: its router, behind the limits and the CORS answers that hold for
/// every request.
pub type App = cross_origin::CrossOrigin<Bounded, tower_http::cors::Cors<Bounded>>;

/// The router behind the request's time and body limits.
type Bounded = request_timeout::RequestTimeout<body_limits::BodyLimits<Router>>;

/// What a handler returns.
pub type ApiResult = Result<Response, ApiError>;

/// The HTTP service of one node: the node's own routes (`admin` adds the fault-injection,
/// transfer and snapshot routes) and the machine's `machine` routes, which are served with the
/// client class.
///
/// | group | class | routes |
/// | --- | --- | --- |
/// | node | open | `GET /healthz`, `GET /metrics`, `GET /ui` (the dashboard and its assets) |
/// | node | client | `GET /api/v1/state`, `GET /api/v1/members`, `GET /api/v1/events` |
/// | node | admin | `POST /api/v1/members`, `DELETE /api/v1/members/{id}`, `PUT /api/v1/members/{id}/address`, `GET /join`, `GET /api/v1/backup`; with `admin`: `/api/v1/admin/*`, `/block`, `/unblock` |
/// | machine | client | the key-value machine's: `/api/v1/kv/{key}`, `POST /api/v1/append`, `POST /api/v1/sessions`, `GET /set`, `/get`, `/remove` |
///
/// Every request is also bounded: a body of at most `BODY_BYTES_MAX` (for every route, one
/// that streams its body included; a route's own `DefaultBodyLimit` can only lower it), a
/// pause of at most `limits.body_timeout` between body chunks, `limits.request_timeout` in
/// all (the answer's head: an event stream goes on after it). Pages from members' origins may
/// call every route (CORS, see `ui`).
///
/// `GET /api/v1/openapi.json` (open) describes every route, generated from the handlers'
/// annotations as they are registered (see [`openapi`]).
pub fn router(state: NodeState, machine: OpenApiRouter, admin: bool, limits: &HttpLimits) -> App {
    let tokens = Arc::clone(&state.tokens);
    let cors = ui::cors(&state);
    let node = node::routes(state, admin);
    let (document_route, document_api) = OpenApiRouter::new()
        .routes(routes!(openapi::openapi_json))
        .split_for_parts();
    let mut routers = Router::new();
    let mut apis = Vec::new();
    for (group, access) in [
        (node.open, Access::Open),
        (node.client, Access::Client),
        (node.admin, Access::Admin),
        (machine, Access::Client),
    ] {
        let (router, mut api) = group.split_for_parts();
        openapi::apply_class(&mut api, access, &tokens);
        routers = routers.merge(auth::guard(router, &tokens, access));
        apis.push(api);
    }
    let mut document_api = document_api;
    openapi::apply_class(&mut document_api, Access::Open, &tokens);
    apis.push(document_api);
    let document = openapi::to_json(&openapi::document(apis));
    let routes = routers
        .merge(document_route.with_state(document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Around the router, not inside it (`Router::layer`): inside, axum wraps every route in
    // the layers and boxes it, and clones that box and boxes its future for every request.
    tower::ServiceBuilder::new()
        .layer(cross_origin::CrossOriginLayer(cors))
        .layer(request_timeout::RequestTimeoutLayer::new(
            limits.request_timeout,
        ))
        .layer(body_limits::BodyLimitsLayer::new(body_limits::Limits {
            pause_max: limits.body_timeout,
            bytes_max: BODY_BYTES_MAX,
        }))
        .service(routes)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed for {}", uri.path()),
    )
}

/// Sends a request to the driver and waits for its answer.
pub(crate) async fn ask<R, T>(
    requests: &mpsc::Sender<R>,
    make: impl FnOnce(oneshot::Sender<T>) -> R,
    timeout: Duration,
    effect: Effect,
) -> Result<T, ApiError> {
    let (respond, answer) = oneshot::channel();
    if requests.send(make(respond)).await.is_err() {
        // The driver never saw it: nothing happened.
        return Err(ApiError::unavailable("the node is shutting down"));
    }
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) if effect == Effect::Change => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the node stopped (shutdown or a storage failure) before it learned the outcome; it is unknown: the change may still commit",
        )),
        Ok(Err(_)) => Err(ApiError::unavailable("the node is shutting down")),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "no answer within {} ms; the outcome is unknown: a write may still commit later",
                timeout.as_millis()
            ),
        )),
    }
}

/// Where this node sends a client that asked the wrong member: the leader's same URL.
#[derive(Debug, Clone)]
pub(crate) struct Redirect {
    pub id: NodeId,
    /// Every member's addresses.
    pub addresses: Arc<AddressBook>,
    /// `http` or `https`: the scheme of redirects to other members (all members serve the
    /// same).
    pub scheme: &'static str,
}

impl Redirect {
    /// The error for an outcome other than success.
    pub(crate) fn failure<T>(&self, outcome: Outcome<T>, uri: &Uri) -> ApiError {
        match outcome {
            Outcome::NotLeader { leader_hint } => self.not_leader(leader_hint, uri),
            Outcome::Busy => ApiError::unavailable("too many requests in flight; retry later"),
            Outcome::Dropped { index, term } => ApiError::new(
                StatusCode::CONFLICT,
                "the entry was overwritten by a new leader and will never commit; it is safe to retry",
            )
            .with("index", json!(index.0))
            .with("term", json!(term.0)),
            Outcome::Unknown { index, term } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "the outcome is unknown: this node learned what happened at the entry's index only through a snapshot",
            )
            .with("index", json!(index.0))
            .with("term", json!(term.0)),
            Outcome::ChangeRejected(reason) => ApiError::new(
                StatusCode::CONFLICT,
                format!("membership change rejected: {reason:?}"),
            ),
            Outcome::Committed { .. } | Outcome::Value(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the node answered a different kind of request",
            ),
        }
    }

    /// `307` to the leader's same URL, or `503` when it (or its address) is unknown.
    pub(crate) fn not_leader(&self, leader_hint: Option<NodeId>, uri: &Uri) -> ApiError {
        let Some(leader) = leader_hint else {
            return ApiError::unavailable("no leader").with("leader", Value::Null);
        };
        let Some(addr) = self
            .addresses
            .http_addr(leader)
            .filter(|_| leader != self.id)
        else {
            return ApiError::unavailable("not the leader, and its HTTP address is unknown")
                .with("leader", json!(leader.0));
        };
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        let location = format!("{}://{addr}{path}", self.scheme);
        let mut error = ApiError::new(StatusCode::TEMPORARY_REDIRECT, "not the leader")
            .with("leader", json!(leader.0))
            .with("location", json!(location));
        error.location = Some(location);
        error
    }
}

/// The size check every proposal passes: one entry must fit one datagram.
pub(crate) fn check_command_size(command: &[u8], command_bytes_max: usize) -> Result<(), ApiError> {
    if command.len() > command_bytes_max {
        return Err(ApiError::bad_request(format!(
            "the command is {} bytes encoded; the limit is {} bytes (one entry must fit one datagram)",
            command.len(),
            command_bytes_max
        )));
    }
    Ok(())
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::Tokens;
    use crate::driver::{NodeRequest, Request};
    use crate::kv::KvMachine;
    use crate::metrics::Metrics;
    use crate::service::Handle;
    use axum::body::Body;
    use std::sync::atomic::AtomicBool;
    use tower::ServiceExt;

    fn test_status() -> crate::events::NodeStatus {
        let node = raft_core::Node::new(raft_core::Config::new(NodeId(1), [NodeId(1)])).unwrap();
        let feed = crate::events::StatusFeed::new(&node, raft_core::LogIndex(0));
        let status = feed.subscribe().borrow().clone();
        status
    }

    /// A node's router (with the key-value machine's routes) over the two request channels.
    pub(crate) fn router_over(
        requests: mpsc::Sender<Request<KvMachine>>,
        node_requests: mpsc::Sender<NodeRequest>,
        tokens: Tokens,
        admin: bool,
        limits: &HttpLimits,
    ) -> App {
        let addresses = Arc::new(AddressBook::new());
        let state = NodeState {
            id: NodeId(1),
            requests: node_requests,
            addresses: Arc::clone(&addresses),
            commit_timeout: Duration::from_secs(5),
            command_bytes_max: 1024,
            isolated: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::default()),
            tokens: Arc::new(tokens),
            scheme: "http",
            describe: crate::service::describe_entry::<crate::kv::KvService>,
            live: events::Live::detached(test_status()),
        };
        let kv = Handle::new(
            requests,
            NodeId(1),
            addresses,
            "http",
            Duration::from_secs(5),
            1024,
        );
        router(state, crate::kv::routes(kv), admin, limits)
    }

    /// A router whose driver drops every request it takes, or holds it forever (on tasks of
    /// their own).
    fn app(limits: HttpLimits, tokens: Tokens, hold: bool) -> App {
        let (requests, mut received) = mpsc::channel::<Request<KvMachine>>(8);
        let (node_requests, mut node_received) = mpsc::channel::<NodeRequest>(8);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(request) = received.recv().await {
                if hold {
                    held.push(request);
                }
            }
        });
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(request) = node_received.recv().await {
                if hold {
                    held.push(request);
                }
            }
        });
        router_over(requests, node_requests, tokens, true, &limits)
    }

    /// The OpenAPI document a node with `tokens` (and `--admin`) serves.
    pub(crate) async fn document(tokens: Tokens) -> Value {
        let (requests, _) = mpsc::channel(1);
        let (node_requests, _) = mpsc::channel(1);
        let app = router_over(
            requests,
            node_requests,
            tokens,
            true,
            &HttpLimits::default(),
        );
        let (status, document) = call(&app, "GET", "/api/v1/openapi.json", None).await;
        assert_eq!(status, 200);
        document
    }

    /// Every (method, path) of a document, with its operation.
    pub(crate) fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut all = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                all.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
        all
    }

    #[tokio::test]
    async fn the_document_gives_every_route_its_class_tokens_and_error_body() {
        let admin = auth::Token::parse("admin-secret-0123456789").unwrap();
        let document = document(Tokens::new(Some(&admin), None)).await;
        assert_eq!(document["openapi"], "3.1.0");
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["admin_token"]["scheme"], "bearer");
        assert_eq!(schemes["client_token"]["scheme"], "bearer");
        let operations = operations(&document);
        assert!(operations.len() >= 30, "{}", operations.len());
        for (method, path, operation) in &operations {
            let class = operation["x-access-class"].as_str().unwrap_or_default();
            let responses = operation["responses"].as_object().unwrap();
            // The admin class is enforced on this node, the client class is not.
            match class {
                "admin" => {
                    assert_eq!(
                        operation["security"],
                        json!([{ "admin_token": [] }]),
                        "{method} {path}"
                    );
                    assert!(
                        responses.contains_key("401") && responses.contains_key("403"),
                        "{method} {path}"
                    );
                }
                "client" | "open" => {
                    assert!(operation.get("security").is_none(), "{method} {path}")
                }
                other => panic!("{method} {path}: class {other:?}"),
            }
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path}"
            );
            assert!(responses.contains_key("504"), "{method} {path}");
            for (status, response) in responses
                .iter()
                .filter(|(status, _)| !status.starts_with('2'))
            {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
            let compatibility = operation["tags"] == json!([openapi::SEED_COMPATIBILITY]);
            assert_eq!(
                operation.get("x-seed-compatibility") == Some(&json!(true)),
                compatibility,
                "{method} {path}"
            );
        }
        let compatibility: Vec<String> = operations
            .iter()
            .filter(|(_, _, operation)| operation.get("x-seed-compatibility").is_some())
            .map(|(method, path, _)| format!("{method} {path}"))
            .collect();
        assert_eq!(
            compatibility,
            [
                "GET /block",
                "POST /block",
                "GET /get",
                "GET /join",
                "GET /remove",
                "GET /set",
                "GET /unblock",
                "POST /unblock"
            ]
        );
        // With a client token, the client routes take it or the admin token.
        let client = auth::Token::parse("client-secret-0123456789").unwrap();
        let guarded = super::tests::document(Tokens::new(Some(&admin), Some(&client))).await;
        let state = &guarded["paths"]["/api/v1/state"]["get"];
        assert_eq!(
            state["security"],
            json!([{ "client_token": [] }, { "admin_token": [] }])
        );
        // The same node serves the same bytes.
        assert_eq!(
            document,
            super::tests::document(Tokens::new(Some(&admin), None)).await
        );
    }

    async fn call(app: &App, method: &str, uri: &str, auth: Option<&str>) -> (u16, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let request = request.body(Body::from("value")).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The node stopped (shutdown, a storage failure) with the request taken: a write may be
    /// in the log, so its answer must not say it failed.
    #[tokio::test]
    async fn a_write_whose_waiter_is_dropped_is_answered_504_outcome_unknown() {
        let app = app(HttpLimits::default(), Tokens::default(), false);
        let (status, body) = call(&app, "PUT", "/api/v1/kv/k", None).await;
        assert_eq!(status, 504, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("unknown"),
            "{body}"
        );
        let (status, body) = call(&app, "POST", "/api/v1/admin/transfer-leader?to=2", None).await;
        assert_eq!(status, 504, "{body}");
        // A read changes nothing: a definite 503.
        let (status, body) = call(&app, "GET", "/api/v1/kv/k", None).await;
        assert_eq!(status, 503, "{body}");
    }

    /// A write the driver never takes: nothing can have happened, so `503` is definite.
    #[tokio::test]
    async fn a_write_the_driver_never_took_is_503() {
        let (requests, received) = mpsc::channel(8);
        drop(received);
        let (node_requests, node_received) = mpsc::channel(8);
        drop(node_received);
        let app = router_over(
            requests,
            node_requests,
            Tokens::default(),
            false,
            &HttpLimits::default(),
        );
        let (status, body) = call(&app, "PUT", "/api/v1/kv/k", None).await;
        assert_eq!(status, 503, "{body}");
    }

    /// CORS sees only requests with an `Origin` (every cross-origin request a browser makes):
    /// others get no `Vary` header, and a preflight is still answered by CORS.
    #[tokio::test]
    async fn cors_handles_only_requests_that_carry_an_origin() {
        let app = app(HttpLimits::default(), Tokens::default(), false);
        let send = |origin: Option<&str>, method: &str| {
            let mut request = axum::http::Request::builder()
                .method(method)
                .uri("/api/v1/state");
            if let Some(origin) = origin {
                request = request
                    .header(header::ORIGIN, origin)
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET");
            }
            app.clone().oneshot(request.body(Body::empty()).unwrap())
        };
        let plain = send(None, "GET").await.unwrap();
        assert!(plain.headers().get(header::VARY).is_none());
        let cross = send(Some("http://elsewhere.example"), "GET").await.unwrap();
        assert!(cross.headers().get(header::VARY).is_some());
        assert!(cross
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
        let preflight = send(Some("http://elsewhere.example"), "OPTIONS")
            .await
            .unwrap();
        assert_eq!(preflight.status(), StatusCode::OK);
        assert!(preflight.headers().get(header::VARY).is_some());
    }

    #[tokio::test]
    async fn a_request_over_the_request_timeout_is_504() {
        let limits = HttpLimits {
            request_timeout: Duration::from_millis(100),
            ..HttpLimits::default()
        };
        let app = app(limits, Tokens::default(), true);
        let (status, body) = call(&app, "PUT", "/api/v1/kv/k", None).await;
        assert_eq!(status, 504, "{body}");
        assert!(body["error"].as_str().unwrap().contains("100 ms"), "{body}");
    }

    #[tokio::test]
    async fn route_groups_carry_their_access_class() {
        let admin = auth::Token::parse("admin-secret-0123456789").unwrap();
        let client = auth::Token::parse("client-secret-0123456789").unwrap();
        let app = app(
            HttpLimits::default(),
            Tokens::new(Some(&admin), Some(&client)),
            false,
        );
        for (method, uri) in [
            ("POST", "/api/v1/admin/isolate"),
            ("POST", "/api/v1/members"),
            ("DELETE", "/api/v1/members/2"),
            ("PUT", "/api/v1/members/2/address"),
            ("GET", "/join?nodeId=2&raftPort=9001"),
            ("GET", "/block"),
        ] {
            assert_eq!(call(&app, method, uri, None).await.0, 401, "{method} {uri}");
            let (status, _) = call(&app, method, uri, Some(&client.bearer())).await;
            assert_eq!(status, 403, "{method} {uri}");
        }
        let (status, _) = call(&app, "POST", "/api/v1/admin/heal", Some(&admin.bearer())).await;
        assert_eq!(status, 200);
        for (method, uri) in [
            ("GET", "/api/v1/state"),
            ("GET", "/api/v1/events"),
            ("PUT", "/api/v1/kv/k"),
            ("GET", "/set?key=a&value=b"),
        ] {
            assert_eq!(call(&app, method, uri, None).await.0, 401, "{method} {uri}");
            let (status, _) = call(&app, method, uri, Some("Bearer wrong-token-0123456789")).await;
            assert_eq!(status, 403, "{method} {uri}");
        }
        // Unknown paths are still 404, whatever the token.
        assert_eq!(call(&app, "GET", "/nowhere", None).await.0, 404);
        assert_eq!(call(&app, "GET", "/metrics", None).await.0, 200);
        // The dashboard holds no data: open, like the metrics.
        for asset in [
            "/ui",
            "/ui/render.js",
            "/ui/dashboard.js",
            "/ui/dashboard.css",
        ] {
            assert_eq!(call(&app, "GET", asset, None).await.0, 200, "{asset}");
        }
    }
}
