//! The OpenAPI 3.1 description of the HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! Nothing here lists routes: every route is registered through `utoipa_axum`'s `routes!`
//! from its handler's `#[utoipa::path]` annotation, which carries the method, the path, the
//! parameters, the body and the statuses, so the router and the document cannot disagree.
//! What this module adds is what a route's group decides rather than its handler:
//!
//! - the access class of the group (`x-access-class`: `open`, `client` or `admin`) and, where
//!   this node enforces it, the bearer-token security requirement with its `401` and `403`;
//! - the answers any route can give: `504` when a request outlasts the request timeout, and,
//!   for a route with a request body, `400`, `408` and `413` from reading it;
//! - the security schemes, the shared schemas and the document's info.
//!
//! The seed's compatibility routes carry the tag [`SEED_COMPATIBILITY`] and
//! `x-seed-compatibility: true`. The document describes the node that serves it: its admin
//! routes only with `--admin`, its token requirements as configured.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::ToSchema;

use crate::auth::{Access, Tokens};

/// The tag of the seed KV store's compatibility routes.
pub const SEED_COMPATIBILITY: &str = "seed compatibility";
/// The security scheme of the admin token.
pub const ADMIN_TOKEN: &str = "admin_token";
/// The security scheme of the client token.
pub const CLIENT_TOKEN: &str = "client_token";

/// Every error answer: `{"error": "..."}`, sometimes with more fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
    /// On a `307` or a `503` of a write or an admin request: the leader this node knows
    /// (`null` when it knows none).
    pub leader: Option<u64>,
    /// On a `307`: the same URL on the leader (also the `Location` header).
    pub location: Option<String>,
    /// On a `409` (overwritten) or `504` (learned through a snapshot): the entry's index.
    pub index: Option<u64>,
    /// With `index`: the entry's term.
    pub term: Option<u64>,
    /// On a `409` of a session write: the session's latest applied sequence number.
    pub last_seq: Option<u64>,
    /// On a `409` of a membership request: the member already at that Raft address.
    pub member: Option<u64>,
    /// On a `409` of a membership request: the node that is already a member elsewhere.
    pub id: Option<u64>,
}

pub(crate) fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// Every operation of a path item.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn class_name(access: Access) -> &'static str {
    match access {
        Access::Open => "open",
        Access::Client => "client",
        Access::Admin => "admin",
    }
}

/// Marks every operation of `api` with its group's class and what that class means on a node
/// with `tokens`.
pub(super) fn apply_class(api: &mut OpenApi, access: Access, tokens: &Tokens) {
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            let compatibility = operation
                .tags
                .iter()
                .flatten()
                .any(|tag| tag == SEED_COMPATIBILITY);
            let mut extensions = ExtensionsBuilder::new().add("x-access-class", class_name(access));
            if compatibility {
                extensions = extensions.add("x-seed-compatibility", true);
            }
            operation
                .extensions
                .get_or_insert_with(Default::default)
                .merge(extensions.build());
            let responses = &mut operation.responses.responses;
            if operation.request_body.is_some() {
                for (status, what) in [
                    ("400", "the request is malformed (the message says how)"),
                    (
                        "408",
                        "the body did not arrive in time (--http-body-timeout-ms between chunks)",
                    ),
                    ("413", "the body exceeds 1 MiB"),
                ] {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(what));
                }
            }
            responses.entry("504".to_string()).or_insert_with(|| {
                error_response(
                    "the request took longer than --http-request-timeout-ms (or the driver did not answer in time); the outcome is unknown",
                )
            });
            if tokens.is_open(access) {
                continue;
            }
            let schemes: &[&str] = match access {
                Access::Open => &[],
                Access::Client => &[CLIENT_TOKEN, ADMIN_TOKEN],
                Access::Admin => &[ADMIN_TOKEN],
            };
            operation.security = Some(
                schemes
                    .iter()
                    .map(|scheme| SecurityRequirement::new(*scheme, Vec::<String>::new()))
                    .collect(),
            );
            responses.insert(
                "401".to_string(),
                error_response("no `Authorization: Bearer <token>` header"),
            );
            responses.insert(
                "403".to_string(),
                error_response("the token does not grant this route"),
            );
        }
    }
}

/// The document for the groups' descriptions: info, security schemes, shared schemas.
pub(super) fn document(groups: Vec<OpenApi>) -> OpenApi {
    let mut api = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("raft-net")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A Raft node's HTTP API: the node's own routes (status, members, administration, the live dashboard) and its state machine's (the key-value store). Writes answer 200 only once committed on a majority and applied; followers answer 307 to the leader; 503 and 504 are the documented failures of an unavailable or slow cluster (504: outcome unknown). Routes tagged `seed compatibility` keep the seed KV store's clients working.",
                ))
                .build(),
        )
        .build();
    for group in groups {
        api.merge(group);
    }
    let components = api.components.get_or_insert_with(Default::default);
    for (name, description) in [
        (
            ADMIN_TOKEN,
            "the token in the node's --admin-token file: membership, leadership, snapshots, fault injection (and everything a client may do)",
        ),
        (
            CLIENT_TOKEN,
            "the token in the node's --client-token file: reads and writes",
        ),
    ] {
        components.add_security_scheme(
            name,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            ),
        );
    }
    add_schema::<ErrorBody>(components);
    // What the event stream's events carry.
    add_schema::<crate::events::NodeStatus>(components);
    add_schema::<super::events::LiveMetrics>(components);
    api
}

/// `T`'s schema, and those it refers to, in `components`.
fn add_schema<T: ToSchema>(components: &mut utoipa::openapi::Components) {
    let mut schemas = Vec::new();
    T::schemas(&mut schemas);
    schemas.push((T::name().into_owned(), T::schema()));
    components.schemas.extend(schemas);
}

/// The document as served: JSON with its object keys in order, so the same build and flags
/// always give the same bytes.
pub(super) fn to_json(api: &OpenApi) -> Arc<str> {
    // Serializing these types cannot fail: no maps with non-string keys, no custom
    // serializers that refuse.
    let mut value = serde_json::to_value(api).unwrap_or_else(|error| {
        serde_json::json!({ "error": format!("the OpenAPI document did not serialize: {error}") })
    });
    unsigned_formats(&mut value);
    Arc::from(value.to_string())
}

/// utoipa (5.5, and 6.0 alike) writes the unsigned integer formats in kebab case
/// (`u-int64`); the name tools know is `uint64`.
fn unsigned_formats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(format)) = map.get_mut("format") {
                if let Some(bits) = format.strip_prefix("u-int") {
                    *format = format!("uint{bits}");
                }
            }
            map.values_mut().for_each(unsigned_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unsigned_formats),
        _ => {}
    }
}

/// This document: the routes this node serves, with their parameters, bodies, statuses and
/// token requirements.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "node",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
pub(super) async fn openapi_json(State(document): State<Arc<str>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}
