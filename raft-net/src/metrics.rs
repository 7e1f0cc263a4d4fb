//! Counters and gauges shared by the driver, the transport, the storage thread and HTTP, rendered
//! as Prometheus text. Plain atomics: every writer is a single place in the code, and readers
//! only need a recent value.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft_core::Role;

/// Why an inbound datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The source address is not a configured peer.
    UnknownSender,
    /// Larger than the datagram limit.
    Oversize,
    /// Bad header, unsupported version, or a frame the wire decoder refused.
    Undecodable,
    /// Missing or wrong MAC while a cluster key is set.
    Unauthenticated,
    /// The envelope names another sender or receiver than the socket addresses say.
    Misaddressed,
    /// The node is isolated by the admin API.
    Isolated,
    /// Keyed and authentic, but already accepted once, older than the sender's window, or of
    /// an earlier incarnation of the sender.
    Replayed,
    /// Keyed and authentic, but stamped for another incarnation of this node (sent before this
    /// node restarted, or by a peer that has not learned its new epoch yet).
    StaleEpoch,
    /// Names another cluster id than this node's: a data dir of another cluster.
    WrongCluster,
}

impl DropReason {
    const ALL: [DropReason; 9] = [
        DropReason::UnknownSender,
        DropReason::Oversize,
        DropReason::Undecodable,
        DropReason::Unauthenticated,
        DropReason::Misaddressed,
        DropReason::Isolated,
        DropReason::Replayed,
        DropReason::StaleEpoch,
        DropReason::WrongCluster,
    ];

    fn label(self) -> &'static str {
        match self {
            DropReason::UnknownSender => "unknown_sender",
            DropReason::Oversize => "oversize",
            DropReason::Undecodable => "undecodable",
            DropReason::Unauthenticated => "unauthenticated",
            DropReason::Misaddressed => "misaddressed",
            DropReason::Isolated => "isolated",
            DropReason::Replayed => "replayed",
            DropReason::StaleEpoch => "stale_epoch",
            DropReason::WrongCluster => "wrong_cluster",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the fsync latency histogram, in microseconds.
const FSYNC_BUCKETS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Every metric the node exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub term: AtomicU64,
    /// 0 follower, 1 candidate, 2 leader.
    pub role: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub last_log_index: AtomicU64,
    pub proposals: AtomicU64,
    pub proposals_committed: AtomicU64,
    pub proposals_dropped: AtomicU64,
    pub proposals_rejected: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    /// Outbound messages that could not be sent (too large, or a socket error).
    pub datagrams_send_failed: AtomicU64,
    /// Epoch notices sent to and received from peers (keyed transport only).
    pub notices_sent: AtomicU64,
    pub notices_received: AtomicU64,
    /// HTTP connections closed at once because the connection limit was reached.
    pub http_connections_refused: AtomicU64,
    /// HTTP connections open now.
    pub http_connections_open: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    pub persist_batches: AtomicU64,
    pub persist_requests: AtomicU64,
    /// Log entries written (a request carries zero or more).
    pub persist_entries: AtomicU64,
    pub persist_bytes: AtomicU64,
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_MICROS.len()],
    fsync_count: AtomicU64,
    fsync_sum_micros: AtomicU64,
}

fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

impl Metrics {
    pub fn count_dropped(&self, reason: DropReason) {
        add(&self.dropped[reason.slot()], 1);
    }

    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.slot()].load(Ordering::Relaxed)
    }

    pub fn observe_fsync(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        for (bucket, &bound) in self.fsync_buckets.iter().zip(&FSYNC_BUCKETS_MICROS) {
            if micros <= bound {
                add(bucket, 1);
            }
        }
        add(&self.fsync_count, 1);
        add(&self.fsync_sum_micros, micros);
    }

    pub fn set_role(&self, role: Role) {
        let value = match role {
            Role::Follower => 0,
            Role::Candidate => 1,
            Role::Leader => 2,
        };
        self.role.store(value, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self, node_id: u64) -> String {
        let mut out = String::with_capacity(4096);
        let label = format!("node=\"{node_id}\"");
        let gauges: [(&str, &str, &AtomicU64); 6] = [
            ("raft_term", "Current term.", &self.term),
            (
                "raft_role",
                "Role: 0 follower, 1 candidate, 2 leader.",
                &self.role,
            ),
            ("raft_commit_index", "Commit index.", &self.commit_index),
            ("raft_applied_index", "Applied index.", &self.applied_index),
            (
                "raft_last_log_index",
                "Last log index.",
                &self.last_log_index,
            ),
            (
                "raft_http_connections_open",
                "HTTP connections open now.",
                &self.http_connections_open,
            ),
        ];
        for (name, help, value) in gauges {
            metric(&mut out, name, help, "gauge", &label, value);
        }
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "raft_proposals_total",
                "Proposals handed to the core.",
                &self.proposals,
            ),
            (
                "raft_proposals_committed_total",
                "Proposals committed and applied.",
                &self.proposals_committed,
            ),
            (
                "raft_proposals_dropped_total",
                "Accepted proposals that a new leader overwrote.",
                &self.proposals_dropped,
            ),
            (
                "raft_proposals_rejected_total",
                "Proposals refused (not leader or busy).",
                &self.proposals_rejected,
            ),
            (
                "raft_datagrams_in_total",
                "Peer datagrams accepted.",
                &self.datagrams_in,
            ),
            (
                "raft_datagrams_out_total",
                "Peer datagrams sent.",
                &self.datagrams_out,
            ),
            (
                "raft_datagrams_send_failed_total",
                "Peer messages that could not be sent.",
                &self.datagrams_send_failed,
            ),
            (
                "raft_epoch_notices_sent_total",
                "Epoch notices sent to peers (cluster key only).",
                &self.notices_sent,
            ),
            (
                "raft_epoch_notices_received_total",
                "Epoch notices received from peers (cluster key only).",
                &self.notices_received,
            ),
            (
                "raft_http_connections_refused_total",
                "HTTP connections closed on accept: the connection limit was reached.",
                &self.http_connections_refused,
            ),
            (
                "raft_persist_batches_total",
                "Group commits (one fdatasync each).",
                &self.persist_batches,
            ),
            (
                "raft_persist_requests_total",
                "Persist requests written.",
                &self.persist_requests,
            ),
            (
                "raft_persist_entries_total",
                "Log entries written to the write-ahead log.",
                &self.persist_entries,
            ),
            (
                "raft_persist_bytes_total",
                "Bytes appended to the write-ahead log.",
                &self.persist_bytes,
            ),
        ];
        for (name, help, value) in counters {
            metric(&mut out, name, help, "counter", &label, value);
        }
        self.render_dropped(&mut out, &label);
        self.render_fsync(&mut out, &label);
        out
    }

    fn render_dropped(&self, out: &mut String, label: &str) {
        let name = "raft_datagrams_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Inbound peer datagrams dropped, by reason."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "{name}{{{label},reason=\"{}\"}} {}",
                reason.label(),
                self.dropped(reason)
            );
        }
    }

    fn render_fsync(&self, out: &mut String, label: &str) {
        let name = "raft_fsync_seconds";
        let _ = writeln!(out, "# HELP {name} Write-ahead log fdatasync latency.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bucket, bound) in self.fsync_buckets.iter().zip(FSYNC_BUCKETS_MICROS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{label},le=\"{}\"}} {}",
                bound as f64 / 1e6,
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.fsync_count.load(Ordering::Relaxed);
        let sum = self.fsync_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}}} {count}");
    }
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, label: &str, value: &AtomicU64) {
    // Writing into a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name}{{{label}}} {}", value.load(Ordering::Relaxed));
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    add(counter, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_histogram_is_cumulative() {
        let metrics = Metrics::default();
        metrics.observe_fsync(Duration::from_micros(300));
        metrics.observe_fsync(Duration::from_millis(2));
        let text = metrics.render(1);
        assert!(text.contains("raft_fsync_seconds_bucket{node=\"1\",le=\"0.00025\"} 0"));
        assert!(text.contains("raft_fsync_seconds_bucket{node=\"1\",le=\"0.0005\"} 1"));
        assert!(text.contains("raft_fsync_seconds_bucket{node=\"1\",le=\"0.0025\"} 2"));
        assert!(text.contains("raft_fsync_seconds_count{node=\"1\"} 2"));
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let metrics = Metrics::default();
        metrics.count_dropped(DropReason::Oversize);
        metrics.count_dropped(DropReason::Oversize);
        let text = metrics.render(2);
        assert!(text.contains("raft_datagrams_dropped_total{node=\"2\",reason=\"oversize\"} 2"));
        assert!(text.contains("raft_datagrams_dropped_total{node=\"2\",reason=\"isolated\"} 0"));
    }
}
