//! `GET /ui`: the live dashboard, and the cross-origin rules that let it reach every member.
//!
//! The page and its assets are compiled into the binary; the page fetches nothing but this
//! cluster's own API. It draws with the simulator's run-viewer renderer
//! (`raft-sim/viz/render.js`, shared as source: the node does not depend on the simulator), so
//! a real cluster and a simulated one look the same.
//!
//! The page talks to every member directly (its `/api/v1/events`, its admin routes), so a
//! member that is stopped or isolated does not take the page down with it. That needs two
//! things from every node:
//! - a Content-Security-Policy whose `connect-src` lists the members' HTTP origins (and the
//!   launcher's), so nothing else can be reached from the page;
//! - CORS answers that let the page, loaded from one member, read another member's answers:
//!   allowed only for origins that are members' HTTP addresses on record, so no other web page
//!   can read them or send the requests a browser preflights (JSON bodies, tokens).
//!
//! The server never embeds a token in the page: whoever uses the buttons types it in.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::NodeState;
use crate::addresses::AddressBook;
use crate::auth::Access;

const PAGE: &str = include_str!("../../ui/dashboard.html");
const SCRIPT: &str = include_str!("../../ui/dashboard.js");
const STYLE: &str = include_str!("../../ui/dashboard.css");
/// The run viewer's node and log drawing, shared with the simulator's page.
const RENDER: &str = include_str!("../../../raft-sim/viz/render.js");

/// How long a browser may reuse a preflight answer.
const CORS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The page and its assets (open: they hold no data; the page asks the API for that).
pub(super) fn routes() -> OpenApiRouter<NodeState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(render_js))
        .routes(routes!(dashboard_js))
        .routes(routes!(dashboard_css))
}

/// The drawing the dashboard shares with the simulator's run viewer.
#[utoipa::path(get, path = "/ui/render.js", tag = "live",
    responses((status = 200, description = "the renderer", content_type = "text/javascript", body = String)))]
async fn render_js() -> Response {
    asset(RENDER, "text/javascript").await
}

/// The dashboard's script.
#[utoipa::path(get, path = "/ui/dashboard.js", tag = "live",
    responses((status = 200, description = "the script", content_type = "text/javascript", body = String)))]
async fn dashboard_js() -> Response {
    asset(SCRIPT, "text/javascript").await
}

/// The dashboard's style.
#[utoipa::path(get, path = "/ui/dashboard.css", tag = "live",
    responses((status = 200, description = "the style", content_type = "text/css", body = String)))]
async fn dashboard_css() -> Response {
    asset(STYLE, "text/css").await
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The HTTP origins of every member on record, with this node's scheme (all members serve the
/// same).
fn member_origins(addresses: &AddressBook, scheme: &str) -> Vec<String> {
    addresses
        .http_addrs()
        .into_iter()
        .map(|addr| format!("{scheme}://{addr}"))
        .collect()
}

/// The page's Content-Security-Policy: its own scripts and styles only, no frames, no forms,
/// and connections to the members and the launcher only.
fn content_security_policy(state: &NodeState) -> String {
    let mut connect = vec!["'self'".to_string()];
    connect.extend(member_origins(&state.addresses, state.scheme));
    connect.extend(state.live.launcher.iter().cloned());
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; connect-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        connect.join(" ")
    )
}

/// The live dashboard: every member's role, term, log and counters, and buttons for the seed
/// story (they take the admin token typed into the page).
#[utoipa::path(get, path = "/ui", tag = "live",
    responses((status = 200, description = "the page (Content-Security-Policy: connections to the members and the launcher only)",
        content_type = "text/html", body = String)))]
async fn page(State(state): State<NodeState>) -> Response {
    let config = json!({
        "id": state.id.0,
        "scheme": state.scheme,
        "launcher": state.live.launcher,
        "admin_token": !state.tokens.is_open(Access::Admin),
        "client_token": !state.tokens.is_open(Access::Client),
    });
    // Inside a `<script type="application/json">` block nothing may close the block.
    let config = config.to_string().replace('<', "\\u003c");
    let body = PAGE.replace("{{CONFIG}}", &config);
    let csp = content_security_policy(&state);
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    // Member addresses passed `check_member_address` (host:port, no spaces or separators) and
    // the launcher's is a parsed origin, so the policy is a valid header value; should it not
    // be, the page is served without one rather than not at all, and says so in the log.
    match HeaderValue::from_str(&csp) {
        Ok(value) => {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        Err(error) => {
            tracing::warn!(%error, "dashboard Content-Security-Policy is not a valid header")
        }
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// CORS for the whole API: a page from another member's origin may call this node (with the
/// token it was given) and read the answers; no other origin may.
pub(super) fn cors(state: &NodeState) -> CorsLayer {
    let addresses = std::sync::Arc::clone(&state.addresses);
    let scheme = state.scheme;
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|origin| {
                member_origins(&addresses, scheme)
                    .iter()
                    .any(|member| member == origin)
            })
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(CORS_MAX_AGE)
}
