//! Random exploration: per seed, a random cluster configuration, client workload and fault
//! schedule (with log compaction, leadership transfers and, in half the seeds, membership
//! changes mixed in); then every fault heals and the cluster must elect a leader and commit a new
//! proposal within a bound (the liveness check).

use raft_core::{MembershipChange, NodeId, Role};

use crate::client::{ClientConfig, Outcome};
use crate::disk::DiskConfig;
use crate::network::NetworkConfig;
use crate::rng::{sub_seed, SimRng};
use crate::sim::{Failure, Life, Sim, SimConfig};
use crate::trace::TraceSink;

/// The shape of an exploration run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExploreConfig {
    pub nodes: u64,
    /// How long faults keep being injected, in virtual ms.
    pub fault_ms: u64,
    /// The liveness bound, in election timeouts (of the longest timeout on the slowest clock).
    pub liveness_timeouts: u64,
}

impl ExploreConfig {
    #[must_use]
    pub fn new(nodes: u64) -> ExploreConfig {
        ExploreConfig {
            nodes,
            fault_ms: 10_000,
            liveness_timeouts: 10,
        }
    }
}

/// What one seed did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    pub seed: u64,
    pub events: u64,
    pub sim_ms: u64,
    pub trace_hash: u64,
    /// Membership changes that committed.
    pub membership_changes: u64,
    pub failure: Option<Failure>,
}

impl SeedReport {
    /// True when the failure is a liveness failure rather than a safety violation.
    #[must_use]
    pub fn is_liveness_failure(&self) -> bool {
        self.failure
            .as_ref()
            .is_some_and(|f| f.invariant.starts_with("liveness"))
    }
}

/// The random cluster configuration of `seed`.
#[must_use]
pub fn sim_config(seed: u64, nodes: u64) -> SimConfig {
    let mut rng = SimRng::new(sub_seed(seed, "config", 0));
    let mut config = SimConfig::new(seed, nodes);
    let latency_min = rng.between(1, 3);
    config.network = NetworkConfig {
        latency_ms_min: latency_min,
        latency_ms_max: latency_min + rng.between(0, 20),
        loss: *rng.pick(&[0.0, 0.01, 0.05, 0.1]).unwrap_or(&0.0),
        duplicate: *rng.pick(&[0.0, 0.01, 0.05]).unwrap_or(&0.0),
        ..NetworkConfig::default()
    };
    let disk_min = rng.between(0, 2);
    config.disk = DiskConfig {
        latency_ms_min: disk_min,
        latency_ms_max: disk_min + rng.between(0, 5),
    };
    config.clients = ClientConfig {
        clients: usize::try_from(rng.between(1, 3)).unwrap_or(1),
        read_ratio: *rng.pick(&[0.0, 0.3]).unwrap_or(&0.0),
        ..ClientConfig::default()
    };
    // Both election variants: plain Raft, and with pre-vote and check-quorum (thesis §9.6).
    config.raft.pre_vote = rng.chance(0.5);
    config.raft.check_quorum = rng.chance(0.5);
    // Clock skew: each node's tick takes 8 to 12 ms.
    config.tick_ms = (0..nodes).map(|_| rng.between(8, 12)).collect();
    // With membership changes on, the cluster starts with 3 or more voters; the other nodes
    // run as spares until added. Drawn from their own generator, so the choices above stay.
    if membership_changes(seed) {
        let mut rng = SimRng::new(sub_seed(seed, "membership", 1));
        config.voters = rng.between(3.min(nodes), nodes);
    }
    // Lease reads on half the check-quorum seeds, from their own generator. Their clocks are
    // redrawn within the lease's drift allowance (9 or 10 ms per tick): beyond it the lease is
    // unsafe by design.
    let mut lease_rng = SimRng::new(sub_seed(seed, "lease", 0));
    if config.raft.check_quorum && lease_rng.chance(0.5) {
        config.raft.lease_reads = true;
        config.tick_ms = (0..nodes).map(|_| lease_rng.between(9, 10)).collect();
        debug_assert!(lease_drift_allowed(&config));
    }
    config
}

/// Whether the slowest clock's lease ends before the fastest clock's leader stickiness does:
/// `(election_min - heartbeat)` slow ticks must take less time than `election_min` fast ones.
#[must_use]
pub fn lease_drift_allowed(config: &SimConfig) -> bool {
    let (Some(&fastest), Some(&slowest)) =
        (config.tick_ms.iter().min(), config.tick_ms.iter().max())
    else {
        return true;
    };
    let election = u64::from(config.raft.election_timeout_ticks_min);
    let lease = election.saturating_sub(u64::from(config.raft.heartbeat_interval_ticks));
    lease * slowest < election * fastest
}

/// Whether `seed` mixes membership changes into its workload (half the seeds).
#[must_use]
pub fn membership_changes(seed: u64) -> bool {
    SimRng::new(sub_seed(seed, "membership", 0)).chance(0.5)
}

/// Runs one seed: faults, then heal, then the liveness check.
#[must_use]
pub fn run_seed(
    seed: u64,
    explore: &ExploreConfig,
    trace: Option<Box<dyn TraceSink>>,
) -> SeedReport {
    let mut sim = Sim::new(sim_config(seed, explore.nodes));
    if let Some(sink) = trace {
        sim.trace_mut().stream_to(sink);
    }
    for id in sim.node_ids() {
        // Every id comes from the cluster itself, so starting a never-started node succeeds.
        let _ = sim.start(id);
    }
    sim.start_clients();
    inject_faults(&mut sim, seed, explore.fault_ms);
    if sim.failure().is_none() {
        heal_all(&mut sim);
        check_liveness(&mut sim, explore);
    }
    SeedReport {
        seed,
        events: sim.events(),
        sim_ms: sim.now_ms(),
        trace_hash: sim.trace_hash(),
        membership_changes: sim.membership_changes_committed(),
        failure: sim.failure().cloned(),
    }
}

fn inject_faults(sim: &mut Sim, seed: u64, fault_ms: u64) {
    let mut rng = SimRng::new(sub_seed(seed, "faults", 0));
    let mut membership_rng =
        membership_changes(seed).then(|| SimRng::new(sub_seed(seed, "membership", 2)));
    loop {
        let next = sim.now_ms() + rng.between(20, 400);
        sim.run_until_time(next.min(fault_ms));
        if sim.failure().is_some() || next >= fault_ms {
            return;
        }
        random_fault(sim, &mut rng);
        // Now and then a node snapshots its state machine and compacts its log, so lagging
        // and restarted nodes also catch up through InstallSnapshot.
        if rng.chance(0.3) {
            let running = nodes_in(sim, &[Life::Running]);
            if let Some(&id) = rng.pick(&running) {
                let _ = sim.compact(id);
            }
        }
        // And now and then the leader is asked to hand over to another node.
        if rng.chance(0.1) {
            if let Some(&to) = rng.pick(&sim.node_ids()) {
                let _ = sim.transfer_leadership(to);
            }
        }
        if let Some(membership_rng) = &mut membership_rng {
            if membership_rng.chance(0.2) {
                random_membership_change(sim, membership_rng);
            }
        }
    }
}

/// One membership change, asked of the current leader as it sees the membership: add a spare
/// node as a learner, promote a learner, or remove a voter (never below 3 voters). Refusals
/// (a change in flight, a learner not caught up) are part of the exercise.
fn random_membership_change(sim: &mut Sim, rng: &mut SimRng) {
    let Some(leader) = sim.current_leader() else {
        return;
    };
    let Some(membership) = sim.node(leader).map(|n| n.membership().clone()) else {
        return;
    };
    let spares: Vec<NodeId> = sim
        .node_ids()
        .into_iter()
        .filter(|&id| !membership.contains(id))
        .collect();
    let learners: Vec<NodeId> = membership.learners.iter().copied().collect();
    let voters: Vec<NodeId> = membership.voters.iter().copied().collect();
    let mut options = Vec::new();
    if let Some(&id) = rng.pick(&spares) {
        options.push(MembershipChange::AddLearner(id));
    }
    if let Some(&id) = rng.pick(&learners) {
        options.push(MembershipChange::PromoteLearner(id));
    }
    if voters.len() > 3 {
        if let Some(&id) = rng.pick(&voters) {
            options.push(MembershipChange::Remove(id));
        }
    }
    if let Some(&change) = rng.pick(&options) {
        let _ = sim.change_membership(leader, change);
    }
}

fn nodes_in(sim: &Sim, lives: &[Life]) -> Vec<NodeId> {
    sim.node_ids()
        .into_iter()
        .filter(|&id| sim.life(id).is_ok_and(|life| lives.contains(&life)))
        .collect()
}

/// One fault, chosen among those that apply to the cluster as it is now. Control errors
/// cannot happen: every choice is made from nodes in the right state. Crashes and pauses are
/// kept to a minority of the committed voters most of the time, so the cluster spends most of
/// the run able to make progress (and so exercises replication, not just elections); now and
/// then a majority goes down too, to exercise recovery from durable state alone.
fn random_fault(sim: &mut Sim, rng: &mut SimRng) {
    let ids = sim.node_ids();
    let running = nodes_in(sim, &[Life::Running]);
    let down = nodes_in(sim, &[Life::Crashed, Life::Stopped]);
    let paused = nodes_in(sim, &[Life::Paused]);
    let voters = &sim.committed_membership().1.voters;
    let voters_out = down
        .iter()
        .chain(&paused)
        .filter(|id| voters.contains(id))
        .count();
    let minority = voters.len().saturating_sub(1) / 2;
    let may_take_down = voters_out < minority.max(1) || rng.chance(0.1);
    match rng.below(10) {
        0 if may_take_down => {
            if let Some(&id) = rng.pick(&running) {
                let _ = sim.crash(id);
            }
        }
        1 if may_take_down => {
            if let Some(&id) = rng.pick(&running) {
                let _ = sim.stop(id);
            }
        }
        2 if may_take_down => {
            if let Some(&id) = rng.pick(&running) {
                let _ = sim.pause(id);
            }
        }
        0..=4 => {
            if let Some(&id) = rng.pick(&down) {
                let _ = sim.start(id);
            } else if let Some(&id) = rng.pick(&paused) {
                let _ = sim.resume(id);
            }
        }
        5 | 6 => {
            let side: Vec<NodeId> = ids.iter().copied().filter(|_| rng.chance(0.5)).collect();
            sim.record_control(format!("partition {side:?} from the rest"));
            sim.network.partition(&[side]);
        }
        7 => {
            let (Some(&from), Some(&to)) = (rng.pick(&ids), rng.pick(&ids)) else {
                return;
            };
            if rng.chance(0.5) {
                sim.record_control(format!("isolate {from}"));
                sim.network.isolate(from);
            } else {
                sim.record_control(format!("cut {from} -> {to}"));
                sim.network.cut_one_way(from, to);
            }
        }
        _ => {
            sim.record_control("heal network".to_owned());
            sim.network.heal();
        }
    }
}

/// The last fault heals: every node is up and running, every link restored, loss off.
fn heal_all(sim: &mut Sim) {
    sim.record_control("heal everything".to_owned());
    sim.network.heal();
    sim.network.config.loss = 0.0;
    for id in nodes_in(sim, &[Life::Paused]) {
        let _ = sim.resume(id);
    }
    for id in nodes_in(sim, &[Life::Crashed, Life::Stopped]) {
        let _ = sim.start(id);
    }
}

/// After healing: a leader within the bound, a new proposal committed within the bound, every
/// node caught up to it, and the history checks.
fn check_liveness(sim: &mut Sim, explore: &ExploreConfig) {
    let config = sim.config();
    let slowest_tick = sim
        .node_ids()
        .into_iter()
        .map(|id| config.tick_ms_of(id))
        .max()
        .unwrap_or(SimConfig::TICK_MS_DEFAULT);
    let bound = explore.liveness_timeouts
        * u64::from(config.raft.election_timeout_ticks_max)
        * slowest_tick;
    let deadline = sim.now_ms() + bound;
    let Some(index) = commit_marker(sim, deadline) else {
        if sim.failure().is_none() {
            let detail = format!("no new proposal committed within {bound} ms after healing");
            sim.fail_liveness("liveness_commit", detail);
        }
        return;
    };
    // With no new writes, every node must converge on one fully applied log, which holds every
    // write acknowledged before or after the marker.
    sim.stop_clients();
    let deadline = sim.now_ms() + bound;
    if !sim.run_until(deadline, Sim::converged) {
        if sim.failure().is_none() {
            let detail = format!(
                "the marker committed at {index}, but the nodes did not converge on one applied log within {bound} ms"
            );
            sim.fail_liveness("liveness_catch_up", detail);
        }
        return;
    }
    sim.check_history();
}

/// Proposes a marker to the leader until it commits; returns its index.
fn commit_marker(sim: &mut Sim, deadline: u64) -> Option<raft_core::LogIndex> {
    let mut attempt = 0;
    while sim.failure().is_none() {
        if !sim.run_until(deadline, |s| s.current_leader().is_some()) {
            return None;
        }
        let leader = sim.current_leader()?;
        attempt += 1;
        let request = sim.propose(leader, &format!("liveness-{attempt}")).ok()?;
        let decided = |s: &Sim| {
            s.clients
                .record(request)
                .is_some_and(|r| !matches!(r.outcome, Outcome::Pending))
                || s.node(leader).is_none_or(|n| n.role() != Role::Leader)
        };
        if !sim.run_until(deadline, decided) {
            return None;
        }
        if let Some(Outcome::Committed { index, .. }) =
            sim.clients.record(request).map(|r| r.outcome)
        {
            return Some(index);
        }
        // Not committed (rejected, dropped, or leadership moved): wait a little, then retry.
        let pause = sim.now_ms() + 10;
        sim.run_until_time(pause.min(deadline));
    }
    None
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub seeds: u64,
    pub violations: u64,
    pub liveness_failures: u64,
    pub events: u64,
    pub sim_ms: u64,
    pub membership_changes: u64,
}

impl Summary {
    /// Simulated events per wall-clock second and simulated seconds per wall-clock second,
    /// for seeds that took `wall_seconds` to run (on one thread).
    #[must_use]
    pub fn rates(&self, wall_seconds: f64) -> (f64, f64) {
        let wall = wall_seconds.max(1e-9);
        (
            self.events as f64 / wall,
            self.sim_ms as f64 / 1000.0 / wall,
        )
    }

    pub fn add(&mut self, report: &SeedReport) {
        self.seeds += 1;
        self.membership_changes += report.membership_changes;
        self.events += report.events;
        self.sim_ms += report.sim_ms;
        if report.is_liveness_failure() {
            self.liveness_failures += 1;
        } else if report.failure.is_some() {
            self.violations += 1;
        }
    }
}
