//! The replication measurement: a healthy cluster whose only fault is a random latency per
//! message (so messages overtake one another), a leader kept busy by a pipeline of proposals,
//! and the cost of replicating them: entries sent per entry committed per follower (1.0 is a
//! leader that never resends), AppendEntries sent, rejections, commits per virtual second and
//! commit latency. Every figure is in virtual time and deterministic: the same configuration
//! gives the same report, byte for byte.

use std::collections::VecDeque;
use std::fmt;

use raft_core::{NodeId, RequestId};

use crate::client::Outcome;
use crate::sim::{Sim, SimConfig};

/// One measurement run.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicationConfig {
    pub seed: u64,
    pub nodes: u64,
    /// Each message's latency is drawn from `latency_ms_min..=latency_ms_max`.
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Commands to commit.
    pub proposals: u64,
    /// Proposals awaiting their commit at any time: the next goes to the leader as soon as
    /// one commits.
    pub window: usize,
    /// Probability that a message is lost (0 for a reordering network only).
    pub loss: f64,
}

impl ReplicationConfig {
    #[must_use]
    pub fn new(seed: u64, nodes: u64, latency_ms_min: u64, latency_ms_max: u64) -> Self {
        ReplicationConfig {
            seed,
            nodes,
            latency_ms_min,
            latency_ms_max,
            proposals: 10_000,
            window: 100,
            loss: 0.0,
        }
    }
}

/// Parses a latency as `2ms` (fixed) or `1-5ms` (uniform in the range), `ms` optional.
pub fn parse_latency(text: &str) -> Result<(u64, u64), String> {
    let bare = text.strip_suffix("ms").unwrap_or(text);
    let number = |part: &str| {
        part.parse::<u64>()
            .map_err(|e| format!("bad latency {text:?}: {e}"))
    };
    let (min, max) = match bare.split_once('-') {
        Some((min, max)) => (number(min)?, number(max)?),
        None => {
            let fixed = number(bare)?;
            (fixed, fixed)
        }
    };
    if min > max {
        return Err(format!("empty latency range {text:?}"));
    }
    Ok((min, max))
}

/// Percentiles of the commit latency, in virtual ms: from the proposal reaching the leader to
/// its `Committed` reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyPercentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl LatencyPercentiles {
    fn of(mut samples: Vec<u64>) -> LatencyPercentiles {
        samples.sort_unstable();
        // Nearest rank: the smallest sample with at least that share of samples at or below.
        let at = |per_mille: usize| {
            let rank = (samples.len() * per_mille).div_ceil(1000).max(1);
            samples.get(rank - 1).copied().unwrap_or(0)
        };
        LatencyPercentiles {
            p50: at(500),
            p90: at(900),
            p99: at(990),
            max: at(1000),
        }
    }
}

/// What one run measured, from the first proposal until every follower holds every entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicationReport {
    pub config: ReplicationConfig,
    pub followers: u64,
    /// Entries the leader sent in AppendEntries, over all followers.
    pub entries_sent: u64,
    /// AppendEntries the leader sent, heartbeats included.
    pub append_messages: u64,
    /// AppendEntries rejections the leader received.
    pub rejects: u64,
    /// Gap reports the leader received: a follower held requests beyond a missing one.
    pub gap_reports: u64,
    /// Virtual ms from the first proposal to the last commit.
    pub commit_ms: u64,
    pub latency_ms: LatencyPercentiles,
    /// Events of the whole run, election included.
    pub events: u64,
    pub trace_hash: u64,
}

impl ReplicationReport {
    /// Entries sent per entry committed per follower: 1.0 when nothing is sent twice.
    #[must_use]
    pub fn entries_per_entry_per_follower(&self) -> f64 {
        let needed = self.config.proposals * self.followers;
        self.entries_sent as f64 / needed.max(1) as f64
    }

    /// Commits per virtual second.
    #[must_use]
    pub fn commits_per_second(&self) -> f64 {
        self.config.proposals as f64 * 1000.0 / self.commit_ms.max(1) as f64
    }
}

impl fmt::Display for ReplicationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let latency = if c.latency_ms_min == c.latency_ms_max {
            format!("{} ms fixed", c.latency_ms_min)
        } else {
            format!("{}-{} ms random", c.latency_ms_min, c.latency_ms_max)
        };
        let loss = if c.loss > 0.0 {
            format!(", loss {}", c.loss)
        } else {
            String::new()
        };
        writeln!(
            f,
            "nodes {}, latency {latency}{loss}, {} proposals, window {}, seed {}",
            c.nodes, c.proposals, c.window, c.seed
        )?;
        writeln!(
            f,
            "entries sent per entry per follower: {:.3} ({} entries to {} followers)",
            self.entries_per_entry_per_follower(),
            self.entries_sent,
            self.followers
        )?;
        writeln!(f, "AppendEntries sent:  {}", self.append_messages)?;
        writeln!(f, "rejects received:    {}", self.rejects)?;
        writeln!(f, "gap reports:         {}", self.gap_reports)?;
        writeln!(
            f,
            "throughput:          {:.0} commits per virtual s ({} ms)",
            self.commits_per_second(),
            self.commit_ms
        )?;
        let l = self.latency_ms;
        writeln!(
            f,
            "commit latency ms:   p50 {} p90 {} p99 {} max {}",
            l.p50, l.p90, l.p99, l.max
        )?;
        write!(
            f,
            "events:              {} (trace hash {:016x})",
            self.events, self.trace_hash
        )
    }
}

/// The leader's AppendEntries so far: (messages, entries carried).
fn appends_sent(sim: &Sim, leader: NodeId) -> (u64, u64) {
    sim.messages_sent()
        .and_then(|sent| sent.get(&(leader, "AppendEntries")).copied())
        .unwrap_or_default()
}

/// Runs the measurement; an error when the cluster does not behave as a healthy one must
/// (no leader, a change of leader, a rejected proposal, no progress within the bound).
pub fn run(config: &ReplicationConfig) -> Result<ReplicationReport, String> {
    if config.nodes < 2 || config.window == 0 || config.proposals == 0 {
        return Err("needs at least 2 nodes, a window and a proposal".to_owned());
    }
    let mut sim_config = SimConfig::new(config.seed, config.nodes);
    sim_config.network.latency_ms_min = config.latency_ms_min;
    sim_config.network.latency_ms_max = config.latency_ms_max;
    sim_config.network.loss = config.loss;
    sim_config.clients.clients = 0;
    let mut sim = Sim::new(sim_config);
    for id in sim.node_ids() {
        sim.start(id).map_err(|e| e.to_string())?;
    }
    sim.collect_notes();
    let ready = sim.run_until(10_000, |s| s.current_leader().is_some() && s.converged());
    let leader = match sim.current_leader() {
        Some(leader) if ready => leader,
        _ => return Err("no leader with every follower caught up within 10 s".to_owned()),
    };
    let (messages_before, entries_before) = appends_sent(&sim, leader);
    let rejects_before = sim.append_rejects_delivered().unwrap_or(0);
    let gaps_before = sim.append_gaps_delivered().unwrap_or(0);
    let started_ms = sim.now_ms();
    // Generous: a healthy cluster commits thousands of entries per virtual second.
    let deadline_ms = started_ms + 60_000 + config.proposals * 10;
    let mut outstanding: VecDeque<RequestId> = VecDeque::new();
    let mut latencies = Vec::new();
    let mut proposed = 0;
    let mut last_commit_ms = started_ms;
    while latencies.len() < usize::try_from(config.proposals).unwrap_or(usize::MAX) {
        while outstanding.len() < config.window && proposed < config.proposals {
            let command = format!("w{proposed}");
            let id = sim
                .propose_bytes(leader, &command, command.clone().into_bytes())
                .map_err(|e| e.to_string())?;
            outstanding.push_back(id);
            proposed += 1;
        }
        if !sim.step_event(deadline_ms) {
            return Err(match sim.failure() {
                Some(failure) => failure.to_string(),
                None => format!(
                    "{} of {} committed in time",
                    latencies.len(),
                    config.proposals
                ),
            });
        }
        if sim.current_leader() != Some(leader) {
            return Err(format!(
                "leader {leader} lost office at {} ms",
                sim.now_ms()
            ));
        }
        while let Some(&id) = outstanding.front() {
            let Some(record) = sim.clients.record(id) else {
                return Err(format!("no record of request {id:?}"));
            };
            match (record.outcome, record.completed_ms) {
                (Outcome::Pending, _) => break,
                (Outcome::Committed { .. }, Some(done_ms)) => {
                    latencies.push(done_ms - record.invoked_ms);
                    last_commit_ms = done_ms;
                    outstanding.pop_front();
                }
                (outcome, _) => return Err(format!("request {id:?} ended {outcome:?}")),
            }
        }
    }
    // Count what catching up every follower costs too: resends there are resends as well.
    if !sim.run_until(deadline_ms, Sim::converged) {
        return Err("the followers did not catch up".to_owned());
    }
    if let Some(failure) = sim.failure() {
        return Err(failure.to_string());
    }
    let (messages_after, entries_after) = appends_sent(&sim, leader);
    Ok(ReplicationReport {
        config: config.clone(),
        followers: config.nodes - 1,
        entries_sent: entries_after - entries_before,
        append_messages: messages_after - messages_before,
        rejects: sim.append_rejects_delivered().unwrap_or(0) - rejects_before,
        gap_reports: sim.append_gaps_delivered().unwrap_or(0) - gaps_before,
        commit_ms: last_commit_ms - started_ms,
        latency_ms: LatencyPercentiles::of(latencies),
        events: sim.events(),
        trace_hash: sim.trace_hash(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_parse_fixed_and_ranged() {
        assert_eq!(parse_latency("2ms"), Ok((2, 2)));
        assert_eq!(parse_latency("1-20ms"), Ok((1, 20)));
        assert_eq!(parse_latency("3"), Ok((3, 3)));
        assert!(parse_latency("5-1ms").is_err());
        assert!(parse_latency("fast").is_err());
    }

    #[test]
    fn percentiles_pick_ranks() {
        let p = LatencyPercentiles::of((1..=100).rev().collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50, 90, 99, 100));
        assert_eq!(
            LatencyPercentiles::of(Vec::new()),
            LatencyPercentiles::default()
        );
    }
}
