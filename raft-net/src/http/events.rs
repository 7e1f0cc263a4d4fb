//! `GET /api/v1/events`: a server-sent event stream of this node's status.
//!
//! - `event: status` with a [`NodeStatus`] when the stream opens and whenever the role, term,
//!   leader, an index, the snapshot or the membership changes (the latest status only: a
//!   watcher that falls behind skips to the newest; role changes it missed are in the
//!   status's `changes`);
//! - `event: metrics` with a [`LiveMetrics`] when the stream opens and every second after:
//!   datagrams, fsync latency, whether the node is isolated.
//!
//! The stream ends when the node shuts down (so a watcher never holds up the server's
//! graceful shutdown) or its driver stops.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::watch;

use super::NodeState;
use crate::events::NodeStatus;
use crate::metrics::{FsyncSummary, Metrics};

/// How often the stream sends the counters.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// What the live routes (`/api/v1/events`, `/ui`) need besides the rest of [`NodeState`].
#[derive(Clone, Debug)]
pub struct Live {
    /// The driver's status feed.
    pub status: watch::Receiver<NodeStatus>,
    /// Becomes `true` when the node starts shutting down.
    pub closing: watch::Receiver<bool>,
    /// The URL of the `raft-net cluster` launcher that started this node, if any: the
    /// dashboard offers stop and restart through it.
    pub launcher: Option<String>,
}

impl Live {
    /// A `Live` whose driver and shutdown signal are gone already (for tests of other routes):
    /// its event stream ends after the first status.
    #[must_use]
    pub fn detached(status: NodeStatus) -> Live {
        Live {
            status: watch::channel(status).1,
            closing: watch::channel(false).1,
            launcher: None,
        }
    }
}

/// The counters of an `event: metrics`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LiveMetrics {
    pub isolated: bool,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Inbound datagrams dropped, whatever the reason (`/metrics` has them by reason).
    pub datagrams_dropped: u64,
    pub datagrams_send_failed: u64,
    pub persist_batches: u64,
    pub persist_entries: u64,
    pub fsync: FsyncSummary,
    pub http_connections_open: u64,
}

impl LiveMetrics {
    #[must_use]
    pub fn read(metrics: &Metrics, isolated: &AtomicBool) -> LiveMetrics {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        LiveMetrics {
            isolated: isolated.load(Ordering::Relaxed),
            datagrams_in: load(&metrics.datagrams_in),
            datagrams_out: load(&metrics.datagrams_out),
            datagrams_dropped: metrics.dropped_total(),
            datagrams_send_failed: load(&metrics.datagrams_send_failed),
            persist_batches: load(&metrics.persist_batches),
            persist_entries: load(&metrics.persist_entries),
            fsync: metrics.fsync_summary(),
            http_connections_open: load(&metrics.http_connections_open),
        }
    }
}

/// Where one stream is.
struct Cursor {
    status: watch::Receiver<NodeStatus>,
    closing: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    isolated: Arc<AtomicBool>,
    ticks: tokio::time::Interval,
    /// The status to send before waiting for changes: the one current when the stream opened.
    first: Option<NodeStatus>,
}

impl Cursor {
    fn metrics_event(&self) -> Event {
        event("metrics", &LiveMetrics::read(&self.metrics, &self.isolated))
    }

    async fn next(&mut self) -> Option<Event> {
        if let Some(status) = self.first.take() {
            return Some(event("status", &status));
        }
        if *self.closing.borrow() {
            return None;
        }
        let tick = tokio::select! {
            changed = self.status.changed() => {
                // The driver stopped: the stream ends.
                changed.ok()?;
                false
            }
            _ = self.ticks.tick() => true,
            _ = self.closing.wait_for(|closing| *closing) => return None,
        };
        if tick {
            return Some(self.metrics_event());
        }
        let status = self.status.borrow_and_update().clone();
        Some(event("status", &status))
    }
}

fn event(name: &str, data: &impl Serialize) -> Event {
    let event = Event::default().event(name);
    match serde_json::to_string(data) {
        Ok(json) => event.data(json),
        // The types above serialize infallibly (no maps with non-string keys, no custom
        // serializers); should that change, the watcher sees why instead of a gap.
        Err(error) => event.data(format!("{{\"error\":\"{error}\"}}")),
    }
}

/// A server-sent event stream of this node's status: `event: status` (a `NodeStatus`) when it
/// opens and on every change of role, term, leader, indexes, snapshot or membership;
/// `event: metrics` (a `LiveMetrics`) when it opens and every second. It ends when the node
/// shuts down.
#[utoipa::path(get, path = "/api/v1/events", tag = "live",
    responses((status = 200, description = "`text/event-stream`: `status` events carry a NodeStatus, `metrics` events a LiveMetrics (both in the components)",
        content_type = "text/event-stream", body = String)))]
pub(super) async fn events(State(state): State<NodeState>) -> Response {
    let mut status = state.live.status.clone();
    let first = status.borrow_and_update().clone();
    let mut ticks = tokio::time::interval(METRICS_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once: the counters follow the first status right away.
    let cursor = Cursor {
        status,
        closing: state.live.closing.clone(),
        metrics: Arc::clone(&state.metrics),
        isolated: Arc::clone(&state.isolated),
        ticks,
        first: Some(first),
    };
    let stream = futures_util::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        Some((Ok::<Event, Infallible>(event), cursor))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies must not buffer the stream.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    response
}
