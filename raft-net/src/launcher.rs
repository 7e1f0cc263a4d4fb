//! The launcher API of `raft-net cluster`: stop (SIGKILL) and restart the nodes it started,
//! for the dashboard's buttons.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /launcher/v1/nodes` | `200 {"nodes":[{"id","http_addr","raft_addr","running","pid"}]}` |
//! | `POST /launcher/v1/nodes/{id}/stop` | `200` the node, stopped: killed with SIGKILL, as in a crash |
//! | `POST /launcher/v1/nodes/{id}/restart` | `200` the node, running again from its data dir |
//!
//! It listens on 127.0.0.1 only and every route needs the cluster's admin token (`401`
//! without, `403` with another); unknown ids are `404`. Pages from the nodes' origins may call
//! it (CORS), no others. Errors are `{"error": "..."}` like the nodes' own.

use std::future::Future;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{self, Access, Token, Tokens};
use crate::cluster::{ClusterError, LaunchedNode, LocalCluster};

type Shared = Arc<Mutex<LocalCluster>>;

/// Serves the launcher API on `listener` until `shutdown` resolves. `origins` are the nodes'
/// HTTP origins (`http://127.0.0.1:8000`, ...): the pages allowed to call it.
pub async fn serve(
    listener: TcpListener,
    cluster: Shared,
    token: Token,
    origins: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(cluster, &token, origins))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The launcher's routes, behind `token`.
pub fn router(cluster: Shared, token: &Token, origins: Vec<String>) -> Router {
    let tokens = Arc::new(Tokens::new(Some(token), None));
    let routes = Router::new()
        .route("/launcher/v1/nodes", get(nodes))
        .route("/launcher/v1/nodes/{id}/stop", post(stop))
        .route("/launcher/v1/nodes/{id}/restart", post(restart));
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origins.iter().any(|allowed| allowed == origin))
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    auth::guard(routes, &tokens, Access::Admin)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such launcher route") })
        .layer(cors)
        .with_state(cluster)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A refused launcher request: its status and message.
#[derive(Debug)]
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

impl From<ClusterError> for Refused {
    fn from(cluster_error: ClusterError) -> Refused {
        let status = match cluster_error {
            ClusterError::UnknownNode(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refused(status, cluster_error.to_string())
    }
}

async fn nodes(State(cluster): State<Shared>) -> Response {
    let nodes = cluster.lock().await.nodes();
    Json(json!({ "nodes": nodes })).into_response()
}

fn node_id(id: Result<Path<String>, PathRejection>) -> Result<u16, Refused> {
    let Path(id) =
        id.map_err(|rejection| Refused(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let digits = id.strip_prefix('n').unwrap_or(&id);
    digits
        .parse()
        .map_err(|_| Refused(StatusCode::BAD_REQUEST, format!("invalid node id {id:?}")))
}

async fn stop(
    State(cluster): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<LaunchedNode>, Refused> {
    let id = node_id(id)?;
    let node = cluster.lock().await.kill(id).await?;
    tracing::warn!(node = id, "stopped (SIGKILL) through the launcher");
    Ok(Json(node))
}

async fn restart(
    State(cluster): State<Shared>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<LaunchedNode>, Refused> {
    let id = node_id(id)?;
    let node = cluster.lock().await.restart(id).await?;
    tracing::warn!(node = id, "restarted through the launcher");
    Ok(Json(node))
}
