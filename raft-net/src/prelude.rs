//! What a service of its own (see the README, "Build your own replicated service") usually
//! needs, in one `use raft_net::prelude::*;`: the machine traits, the service trait and its
//! handle, the extractors and answers of the node's HTTP conventions, and the routing and
//! OpenAPI pieces its routes are built with.

pub use axum::extract::State;
pub use axum::http::{StatusCode, Uri};
pub use raft_core::{LogIndex, SerdeMachine, StateMachine};
pub use utoipa_axum::{router::OpenApiRouter, routes};

pub use crate::http::openapi::ErrorBody;
pub use crate::http::{ApiError, ApiResult};
pub use crate::service::{
    json_ok, wall_clock_ms, Committed, Handle, Json, Path, Query, ReadFailures, Service,
    WriteFailures,
};
