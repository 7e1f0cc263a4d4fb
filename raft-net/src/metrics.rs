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

/// Upper bounds of the latency histograms (fsync, driver busy), in microseconds.
const BUCKETS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// The fsync latency histogram in a few numbers, for the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FsyncSummary {
    pub count: u64,
    pub mean_micros: Option<u64>,
    /// The upper bound of the bucket holding the median.
    pub p50_le_micros: Option<u64>,
    /// The upper bound of the bucket holding the 99th percentile.
    pub p99_le_micros: Option<u64>,
}

/// A latency histogram in Prometheus' cumulative form, with the largest value seen.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_MICROS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    max_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        for (bucket, &bound) in self.buckets.iter().zip(&BUCKETS_MICROS) {
            if micros <= bound {
                add(bucket, 1);
            }
        }
        add(&self.count, 1);
        add(&self.sum_micros, micros);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS_MICROS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{label},le=\"{}\"}} {}",
                bound as f64 / 1e6,
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}}} {count}");
    }

    fn max_seconds(&self) -> f64 {
        self.max_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// How many, their mean, and the bucket bounds within which the median and the 99th
    /// percentile fall (`None` past the last bucket, or before the first observation).
    fn summary(&self) -> FsyncSummary {
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed);
        let quantile_bound = |quantile: f64| {
            if count == 0 {
                return None;
            }
            // The smallest bucket holding at least that share of the observations.
            let needed = (count as f64 * quantile).ceil() as u64;
            self.buckets
                .iter()
                .zip(BUCKETS_MICROS)
                .find(|(bucket, _)| bucket.load(Ordering::Relaxed) >= needed)
                .map(|(_, bound)| bound)
        };
        FsyncSummary {
            count,
            mean_micros: sum.checked_div(count),
            p50_le_micros: quantile_bound(0.5),
            p99_le_micros: quantile_bound(0.99),
        }
    }
}

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
    fsync: Histogram,
    /// Wall time of each turn of the driver loop: one wake-up, its inputs and every action
    /// they caused. The longest one is how long the node was deaf to its peers.
    driver_busy: Histogram,
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

    /// Inbound datagrams dropped, whatever the reason.
    #[must_use]
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL
            .iter()
            .map(|&reason| self.dropped(reason))
            .sum()
    }

    /// The fsyncs so far, in a few numbers.
    #[must_use]
    pub fn fsync_summary(&self) -> FsyncSummary {
        self.fsync.summary()
    }

    pub fn observe_fsync(&self, elapsed: Duration) {
        self.fsync.observe(elapsed);
    }

    /// One turn of the driver loop took `elapsed`.
    pub fn observe_driver_busy(&self, elapsed: Duration) {
        self.driver_busy.observe(elapsed);
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
        self.fsync.render(
            &mut out,
            "raft_fsync_seconds",
            "Write-ahead log fdatasync latency.",
            &label,
        );
        self.driver_busy.render(
            &mut out,
            "raft_driver_busy_seconds",
            "Wall time of each turn of the driver loop (one wake-up and every action it caused).",
            &label,
        );
        let name = "raft_driver_busy_seconds_max";
        let _ = writeln!(
            out,
            "# HELP {name} The longest turn of the driver loop since the node started: how long it was deaf to peers and clients at worst."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name}{{{label}}} {}", self.driver_busy.max_seconds());
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
    fn the_fsync_summary_names_the_buckets_of_its_quantiles() {
        let metrics = Metrics::default();
        assert_eq!(
            metrics.fsync_summary(),
            FsyncSummary {
                count: 0,
                mean_micros: None,
                p50_le_micros: None,
                p99_le_micros: None
            }
        );
        for _ in 0..98 {
            metrics.observe_fsync(Duration::from_micros(200));
        }
        metrics.observe_fsync(Duration::from_millis(3));
        metrics.observe_fsync(Duration::from_secs(2));
        let summary = metrics.fsync_summary();
        assert_eq!(summary.count, 100);
        assert_eq!(
            summary.mean_micros,
            Some((98 * 200 + 3_000 + 2_000_000) / 100)
        );
        assert_eq!(summary.p50_le_micros, Some(250));
        assert_eq!(summary.p99_le_micros, Some(5_000));
        metrics.count_dropped(DropReason::Isolated);
        metrics.count_dropped(DropReason::Replayed);
        assert_eq!(metrics.dropped_total(), 2);
    }

    #[test]
    fn driver_busy_keeps_its_longest_turn() {
        let metrics = Metrics::default();
        metrics.observe_driver_busy(Duration::from_millis(30));
        metrics.observe_driver_busy(Duration::from_micros(50));
        let text = metrics.render(1);
        assert!(text.contains("raft_driver_busy_seconds_max{node=\"1\"} 0.03\n"));
        assert!(text.contains("raft_driver_busy_seconds_bucket{node=\"1\",le=\"0.0001\"} 1"));
        assert!(text.contains("raft_driver_busy_seconds_count{node=\"1\"} 2"));
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
