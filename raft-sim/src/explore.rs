//! Random exploration: per seed, a random cluster configuration, client workload and fault
//! schedule (with log compaction, leadership transfers and, in half the seeds, membership
//! changes mixed in); then every fault heals and the cluster must elect a leader and commit a new
//! proposal within a bound (the liveness check).
//!
//! Swarm testing (as TigerBeetle's VOPR and FoundationDB's simulation do it): each seed also
//! draws its own fault profile ([`FaultProfile`]), a set of fault families switched on for the
//! whole seed (a slow disk, disk stalls, crashes timed while writes are pending, stale
//! duplicates, duplicated `TimeoutNow`, long one-way cuts, flapping partitions, bursts of loss,
//! wide clock skew), so that rare combinations get whole seeds to themselves.

use std::fmt;

use raft_core::{MembershipChange, NodeId, Role};

use crate::client::{ClientConfig, Outcome};
use crate::disk::DiskConfig;
use crate::machine::SimMachine;
use crate::network::NetworkConfig;
use crate::rng::{sub_seed, SimRng};
use crate::sim::{CrashTiming, Failure, LeaderCrash, Life, Sim, SimConfig};
use crate::trace::TraceSink;

/// The shape of an exploration run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExploreConfig {
    pub nodes: u64,
    /// How long faults keep being injected, in virtual ms.
    pub fault_ms: u64,
    /// The liveness bound, in election timeouts (of the longest timeout on the slowest clock).
    pub liveness_timeouts: u64,
    /// Each seed draws its own fault profile; without, every seed runs the classic faults
    /// only (the schedule seeds had before profiles existed).
    pub swarm: bool,
    /// Profiles may narrow the replication window ([`FaultProfile::narrow_windows`]); without,
    /// seeds keep the schedules they had before that family existed.
    pub narrow_windows: bool,
    /// Known bugs every node reintroduces (the bug catalogue).
    #[cfg(feature = "catalogue")]
    pub bugs: Vec<raft_core::bugs::Bug>,
}

impl ExploreConfig {
    #[must_use]
    pub fn new(nodes: u64) -> ExploreConfig {
        ExploreConfig {
            nodes,
            fault_ms: 10_000,
            liveness_timeouts: 10,
            swarm: true,
            narrow_windows: true,
            #[cfg(feature = "catalogue")]
            bugs: Vec::new(),
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
    /// The seed's fault profile.
    pub profile: FaultProfile,
    pub failure: Option<Failure>,
}

/// A seed's fault profile: the fault families it exercises on top of the classic ones (crash,
/// stop, pause, partition, isolation, one-way cut, heal, loss, duplication), drawn from the
/// seed's own `profile` sub-seed, each family on in half the seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultProfile {
    /// One node's disk is this many times slower than the others' (10 to 100).
    pub slow_disk: Option<(NodeId, u64)>,
    /// Now and then a node's disk stalls for 0.1 to 3 s; its writes then complete in order.
    pub disk_stalls: bool,
    /// Now and then a node crashes while its writes are pending (at once if it has some, or
    /// when it issues its next `Persist`: in the middle of that step or within its disk's
    /// latency), and restarts within 150 ms.
    pub crash_pending: bool,
    /// A third of new leaders crash while the write of their first entry is pending: half of
    /// them in the middle of taking office (some of their first messages never leave), the
    /// others within 20 ms; they restart within 150 ms.
    pub leader_crashes: bool,
    /// About 2% of messages are delivered once more 0.1 to 4 s later, to whichever
    /// incarnation of the receiver is up by then.
    pub stale_duplicates: bool,
    /// Every `TimeoutNow` is delivered once more 20 ms to 1 s later, and leaders are asked to
    /// hand over three times as often.
    pub duplicate_timeout_now: bool,
    /// Now and then a one-way cut that lasts 1 to 5 s, whatever other faults heal.
    pub long_cuts: bool,
    /// Now and then a partition that comes and goes every 20 to 200 ms, for 0.5 to 3 s.
    pub flapping: bool,
    /// Now and then a partial partition: each directed link is cut with probability 1/3, so
    /// some nodes hear others that do not hear them, or reach a node another cannot.
    pub partial_partitions: bool,
    /// Now and then 0.1 to 1.5 s of 30% to 90% loss.
    pub loss_bursts: bool,
    /// Now and then 0.3 to 2 s in which clients only read: the log stops growing, so a node
    /// cut off from its leader meanwhile is still up to date when it campaigns, which is when
    /// leader stickiness and leases matter.
    pub read_only_periods: bool,
    /// AppendEntries carry 1 to 4 entries instead of up to 256, so a follower catching up
    /// acknowledges a prefix at a time: a new leader's old entries reach a majority before the
    /// first entry of its own term does (the shape of Raft's Figure 8).
    pub small_batches: bool,
    /// Ticks of 5 to 20 ms instead of 8 to 12, far beyond the lease's drift allowance: only in
    /// seeds without lease reads, which assume bounded drift (see [`lease_drift_allowed`]).
    pub wide_clock_skew: bool,
    /// Now and then a node's disk is wiped: it comes back empty, as a new incarnation started
    /// with no voters, and waits to be re-added. At most a minority of the committed voters is
    /// wiped and not yet re-added at once, whatever else is down.
    pub wipes: bool,
    /// 1 to 8 AppendEntries in flight per follower instead of 64 (`raft-net` runs with 4): a
    /// lost or overtaken append stops the leader's stream sooner, and followers report the gap
    /// once the rest of the window is held. Not with small batches: a follower with a slow
    /// disk then takes a few entries per disk write (5 to 100 times slower than the others'),
    /// and catching up after a fault takes longer than the liveness phase waits. That is the
    /// configuration's throughput, not a fault of the protocol.
    pub narrow_windows: bool,
}

impl FaultProfile {
    /// The profile of a seed with configuration `config`. Wide clock skew needs pre-vote and no
    /// lease reads: lease reads assume bounded drift by design, and in Raft without pre-vote a
    /// node with a stale log and a clock several times faster than the others' bumps the term
    /// before any leader can catch it up, deposing every one: the livelock pre-vote (thesis
    /// §9.6) exists to prevent, not a property plain Raft has.
    #[must_use]
    pub fn draw(seed: u64, config: &SimConfig) -> FaultProfile {
        let nodes = config.nodes;
        let mut rng = SimRng::new(sub_seed(seed, "profile", 0));
        let slow_disk = rng
            .chance(0.5)
            .then(|| (NodeId(rng.between(1, nodes.max(1))), rng.between(10, 100)));
        let mut profile = FaultProfile {
            slow_disk,
            disk_stalls: rng.chance(0.5),
            crash_pending: rng.chance(0.5),
            stale_duplicates: rng.chance(0.5),
            duplicate_timeout_now: rng.chance(0.5),
            long_cuts: rng.chance(0.5),
            flapping: rng.chance(0.5),
            loss_bursts: rng.chance(0.5),
            wide_clock_skew: rng.chance(0.5),
            leader_crashes: rng.chance(0.5),
            small_batches: rng.chance(0.5),
            partial_partitions: rng.chance(0.5),
            read_only_periods: rng.chance(0.5),
            wipes: false,
            narrow_windows: false,
        };
        profile.wide_clock_skew &= config.raft.pre_vote && !config.raft.lease_reads;
        // Drawn from generators of their own, so the families above stay what they were.
        profile.wipes = SimRng::new(sub_seed(seed, "profile", 5)).chance(0.5);
        profile.narrow_windows =
            SimRng::new(sub_seed(seed, "profile", 6)).chance(0.5) && !profile.small_batches;
        profile
    }

    /// The names of the families switched on, for the summary's profile mix.
    #[must_use]
    pub fn families(&self) -> Vec<&'static str> {
        [
            (self.slow_disk.is_some(), "slow-disk"),
            (self.disk_stalls, "disk-stalls"),
            (self.crash_pending, "crash-pending"),
            (self.leader_crashes, "leader-crashes"),
            (self.stale_duplicates, "stale-duplicates"),
            (self.duplicate_timeout_now, "duplicate-timeout-now"),
            (self.long_cuts, "long-cuts"),
            (self.flapping, "flapping"),
            (self.partial_partitions, "partial-partitions"),
            (self.loss_bursts, "loss-bursts"),
            (self.read_only_periods, "read-only-periods"),
            (self.small_batches, "small-batches"),
            (self.wide_clock_skew, "wide-clock-skew"),
            (self.wipes, "wipes"),
            (self.narrow_windows, "narrow-windows"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// Every family name, in the order [`FaultProfile::families`] lists them.
    pub const FAMILIES: [&'static str; 15] = [
        "slow-disk",
        "disk-stalls",
        "crash-pending",
        "leader-crashes",
        "stale-duplicates",
        "duplicate-timeout-now",
        "long-cuts",
        "flapping",
        "partial-partitions",
        "loss-bursts",
        "read-only-periods",
        "small-batches",
        "wide-clock-skew",
        "wipes",
        "narrow-windows",
    ];

    /// The seed's configuration changes: the slow disk, stale duplicates, the wide skew (its
    /// ticks drawn from the profile's own generator, `profile` sub-seed 2).
    pub fn apply(&self, seed: u64, config: &mut SimConfig) {
        if let Some((node, factor)) = self.slow_disk {
            let disk = &config.disk;
            let slow = DiskConfig {
                latency_ms_min: disk.latency_ms_min.max(1) * factor,
                latency_ms_max: disk.latency_ms_max.max(1) * factor,
            };
            config.node_disk.insert(node, slow);
        }
        let network = &mut config.network;
        if self.stale_duplicates {
            network.stale_duplicate = 0.02;
            network.stale_delay_ms_min = 100;
            network.stale_delay_ms_max = 4_000;
        }
        if self.duplicate_timeout_now {
            network.stale_timeout_now = 1.0;
            network.stale_timeout_now_delay_ms_min = 20;
            network.stale_timeout_now_delay_ms_max = 1_000;
        }
        if self.leader_crashes {
            config.leader_crash = Some(LeaderCrash {
                probability: 0.3,
                mid_step: 0.5,
                delay_ms_max: 20,
                restart_ms_max: 150,
            });
        }
        if self.small_batches {
            let mut rng = SimRng::new(sub_seed(seed, "profile", 3));
            config.raft.append_entries_max = usize::try_from(rng.between(1, 4)).unwrap_or(1);
        }
        if self.wide_clock_skew {
            let mut rng = SimRng::new(sub_seed(seed, "profile", 2));
            config.tick_ms = (0..config.nodes).map(|_| rng.between(5, 20)).collect();
        }
        if self.narrow_windows {
            let mut rng = SimRng::new(sub_seed(seed, "profile", 7));
            config.raft.inflight_appends_max = usize::try_from(rng.between(1, 8)).unwrap_or(1);
        }
    }
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families = self.families();
        if families.is_empty() {
            return f.write_str("classic faults only");
        }
        for (i, family) in families.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(family)?;
            if let (&"slow-disk", Some((node, factor))) = (family, self.slow_disk) {
                write!(f, "({node} x{factor})")?;
            }
        }
        Ok(())
    }
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
        // A paused leader's clock must not stand still either.
        config.resume_with_missed_ticks = true;
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

/// The profile `explore` gives `seed`: drawn when `explore.swarm`, else none.
#[must_use]
pub fn seed_profile(seed: u64, explore: &ExploreConfig) -> FaultProfile {
    if !explore.swarm {
        return FaultProfile::default();
    }
    let mut profile = FaultProfile::draw(seed, &sim_config(seed, explore.nodes));
    profile.narrow_windows &= explore.narrow_windows;
    profile
}

/// Runs one seed: faults, then heal, then the liveness check.
#[must_use]
pub fn run_seed(
    seed: u64,
    explore: &ExploreConfig,
    trace: Option<Box<dyn TraceSink>>,
) -> SeedReport {
    run(seed, explore, trace, |_| {})
}

/// [`run_seed`] with every node running a replica of the machine `make` builds, and the
/// simulated clients writing its [`SimMachine::workload_command`]s: the machine checks of
/// [`crate::machine`] run after every event too.
#[must_use]
pub fn run_machine_seed<M: SimMachine>(
    seed: u64,
    explore: &ExploreConfig,
    trace: Option<Box<dyn TraceSink>>,
    make: impl Fn() -> M + 'static,
) -> SeedReport {
    run(seed, explore, trace, |sim| sim.run_machine(make))
}

fn run(
    seed: u64,
    explore: &ExploreConfig,
    trace: Option<Box<dyn TraceSink>>,
    machine: impl FnOnce(&mut Sim),
) -> SeedReport {
    let mut config = sim_config(seed, explore.nodes);
    let profile = seed_profile(seed, explore);
    profile.apply(seed, &mut config);
    #[cfg(feature = "catalogue")]
    {
        config.bugs.clone_from(&explore.bugs);
    }
    let mut sim = Sim::new(config);
    machine(&mut sim);
    if let Some(sink) = trace {
        sim.trace_mut().stream_to(sink);
    }
    for id in sim.node_ids() {
        // Every id comes from the cluster itself, so starting a never-started node succeeds.
        let _ = sim.start(id);
    }
    sim.start_clients();
    let mut swarm = Swarm::new(seed, &profile, &sim);
    inject_faults(&mut sim, &mut swarm, seed, explore.fault_ms);
    if sim.failure().is_none() {
        swarm.end(&mut sim);
        heal_all(&mut sim);
        check_liveness(&mut sim, explore);
    }
    SeedReport {
        seed,
        events: sim.events(),
        sim_ms: sim.now_ms(),
        trace_hash: sim.trace_hash(),
        membership_changes: sim.membership_changes_committed(),
        profile,
        failure: sim.failure().cloned(),
    }
}

/// [`run_seed`], with a panic (a broken assertion in the core or in the simulator) reported as
/// the seed's failure, invariant `panic`, instead of ending the process.
#[must_use]
pub fn run_seed_guarded(seed: u64, explore: &ExploreConfig) -> SeedReport {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_seed(seed, explore, None)
    }));
    run.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        SeedReport {
            seed,
            events: 0,
            sim_ms: 0,
            trace_hash: 0,
            membership_changes: 0,
            profile: seed_profile(seed, explore),
            failure: Some(Failure {
                seed,
                event: 0,
                time_ms: 0,
                invariant: "panic",
                detail: message.to_owned(),
                trace_tail: Vec::new(),
            }),
        }
    })
}

fn inject_faults(sim: &mut Sim, swarm: &mut Swarm, seed: u64, fault_ms: u64) {
    let mut rng = SimRng::new(sub_seed(seed, "faults", 0));
    let mut membership_rng =
        membership_changes(seed).then(|| SimRng::new(sub_seed(seed, "membership", 2)));
    loop {
        let next = sim.now_ms() + rng.between(20, 400);
        swarm.run_until(sim, next.min(fault_ms));
        if sim.failure().is_some() || next >= fault_ms {
            return;
        }
        random_fault(sim, &mut rng);
        swarm.fault(sim);
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
                // Only next to wipes does the slow disk count as a lost voter.
                let slow = swarm
                    .profile
                    .slow_disk
                    .filter(|_| swarm.profile.wipes)
                    .map(|(node, _)| node);
                random_membership_change(sim, membership_rng, slow);
            }
        }
    }
}

/// The profile's faults while they run: what is active, and the profile's own generator
/// (`profile` sub-seed 1), so its draws never shift the classic fault schedule's.
#[derive(Debug)]
struct Swarm {
    profile: FaultProfile,
    rng: SimRng,
    /// The seed's loss probability, restored after a burst.
    base_loss: f64,
    burst_until_ms: Option<u64>,
    /// The seed's share of reads, restored after a read-only period.
    base_read_ratio: f64,
    read_only_until_ms: Option<u64>,
    /// One-way cuts (from, to) that last until the time given.
    long_cuts: Vec<(NodeId, NodeId, u64)>,
    flap: Option<Flap>,
}

/// A partition that comes and goes.
#[derive(Debug)]
struct Flap {
    side: Vec<NodeId>,
    period_ms: u64,
    next_ms: u64,
    until_ms: u64,
    apart: bool,
}

impl Swarm {
    fn new(seed: u64, profile: &FaultProfile, sim: &Sim) -> Swarm {
        Swarm {
            profile: profile.clone(),
            rng: SimRng::new(sub_seed(seed, "profile", 1)),
            base_loss: sim.network.config.loss,
            burst_until_ms: None,
            base_read_ratio: sim.clients.config.read_ratio,
            read_only_until_ms: None,
            long_cuts: Vec::new(),
            flap: None,
        }
    }

    /// The next time something the profile started changes (a burst or a long cut ends, a
    /// flapping partition turns).
    fn next_change_ms(&self) -> Option<u64> {
        let cuts = self.long_cuts.iter().map(|&(_, _, until)| until);
        let flap = self.flap.as_ref().map(|flap| flap.next_ms);
        cuts.chain(flap)
            .chain(self.burst_until_ms)
            .chain(self.read_only_until_ms)
            .min()
    }

    /// Runs the simulation to `deadline_ms`, making the profile's changes at their times.
    fn run_until(&mut self, sim: &mut Sim, deadline_ms: u64) {
        loop {
            let next = self.next_change_ms().filter(|&at| at < deadline_ms);
            let Some(at) = next else {
                sim.run_until_time(deadline_ms);
                return;
            };
            sim.run_until_time(at);
            if sim.failure().is_some() {
                return;
            }
            self.change(sim, at);
        }
    }

    /// Everything due at `now_ms`.
    fn change(&mut self, sim: &mut Sim, now_ms: u64) {
        if self.burst_until_ms.is_some_and(|until| until <= now_ms) {
            self.burst_until_ms = None;
            sim.record_control("loss burst ends".to_owned());
            sim.network.config.loss = self.base_loss;
        }
        if self.read_only_until_ms.is_some_and(|until| until <= now_ms) {
            self.read_only_until_ms = None;
            sim.record_control("read-only period ends".to_owned());
            sim.clients.config.read_ratio = self.base_read_ratio;
        }
        let (ended, kept): (Vec<_>, Vec<_>) = self
            .long_cuts
            .iter()
            .partition(|&&(_, _, until)| until <= now_ms);
        self.long_cuts = kept;
        for (from, to, _) in ended {
            sim.record_control(format!("long cut {from} -> {to} ends"));
            sim.network.restore_one_way(from, to);
        }
        let Some(flap) = &mut self.flap else { return };
        if flap.next_ms > now_ms {
            return;
        }
        if flap.until_ms <= now_ms {
            sim.record_control("flapping ends: heal network".to_owned());
            sim.network.heal();
            self.flap = None;
            self.reapply_long_cuts(sim);
            return;
        }
        flap.apart = !flap.apart;
        flap.next_ms = now_ms + flap.period_ms;
        if flap.apart {
            sim.record_control(format!("flap: partition {:?} from the rest", flap.side));
            sim.network.partition(std::slice::from_ref(&flap.side));
        } else {
            sim.record_control("flap: heal network".to_owned());
            sim.network.heal();
        }
        self.reapply_long_cuts(sim);
    }

    /// Long cuts outlast whatever healed the network meanwhile.
    fn reapply_long_cuts(&self, sim: &mut Sim) {
        for &(from, to, _) in &self.long_cuts {
            sim.network.cut_one_way(from, to);
        }
    }

    /// After each classic fault: maybe one more fault of each family the profile has on.
    fn fault(&mut self, sim: &mut Sim) {
        let running = nodes_in(sim, &[Life::Running]);
        if self.profile.disk_stalls && self.rng.chance(0.2) {
            if let Some(&id) = self.rng.pick(&running) {
                let ms = self.rng.between(100, 3_000);
                let _ = sim.stall_disk(id, ms);
            }
        }
        if self.profile.crash_pending && self.rng.chance(0.3) {
            self.crash_pending(sim, &running);
        }
        if self.profile.duplicate_timeout_now && self.rng.chance(0.2) {
            if let Some(&to) = self.rng.pick(&sim.node_ids()) {
                let _ = sim.transfer_leadership(to);
            }
        }
        if self.profile.long_cuts && self.rng.chance(0.15) {
            self.start_long_cut(sim);
        }
        if self.profile.flapping && self.flap.is_none() && self.rng.chance(0.1) {
            self.start_flapping(sim);
        }
        if self.profile.partial_partitions && self.rng.chance(0.2) {
            self.partial_partition(sim);
        }
        let now = sim.now_ms();
        if self.profile.read_only_periods
            && self.read_only_until_ms.is_none()
            && self.rng.chance(0.15)
        {
            let until = now + self.rng.between(300, 2_000);
            sim.record_control(format!("clients only read until {until} ms"));
            sim.clients.config.read_ratio = 1.0;
            self.read_only_until_ms = Some(until);
        }
        if self.profile.loss_bursts && self.burst_until_ms.is_none() && self.rng.chance(0.15) {
            let loss = *self.rng.pick(&[0.3, 0.6, 0.9]).unwrap_or(&0.3);
            let until = now + self.rng.between(100, 1_500);
            sim.record_control(format!("loss burst {loss} until {until} ms"));
            sim.network.config.loss = loss;
            self.burst_until_ms = Some(until);
        }
        if self.profile.wipes && self.rng.chance(0.1) {
            self.wipe(sim);
        }
        self.reapply_long_cuts(sim);
    }

    fn start_long_cut(&mut self, sim: &mut Sim) {
        let ids = sim.node_ids();
        let from = self.rng.pick(&ids).copied();
        let to = self.rng.pick(&ids).copied();
        if let (Some(from), Some(to)) = (from, to.filter(|&to| Some(to) != from)) {
            let until = sim.now_ms() + self.rng.between(1_000, 5_000);
            sim.record_control(format!("long cut {from} -> {to} until {until} ms"));
            self.long_cuts.push((from, to, until));
        }
    }

    /// A partition of a random side (never empty, never everyone) that comes and goes.
    fn start_flapping(&mut self, sim: &mut Sim) {
        let ids = sim.node_ids();
        let mut side: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|_| self.rng.chance(0.5))
            .collect();
        if side.is_empty() || side.len() == ids.len() {
            side = self.rng.pick(&ids).copied().into_iter().collect();
        }
        let now = sim.now_ms();
        let period_ms = self.rng.between(20, 200);
        let until_ms = now + self.rng.between(500, 3_000);
        sim.record_control(format!(
            "flapping {side:?} every {period_ms} ms until {until_ms} ms"
        ));
        self.flap = Some(Flap {
            side,
            period_ms,
            next_ms: now,
            until_ms,
            apart: false,
        });
    }

    /// Every directed link cut with probability 1/3, in place of the cuts before.
    fn partial_partition(&mut self, sim: &mut Sim) {
        let ids = sim.node_ids();
        let mut cuts = Vec::new();
        for &from in &ids {
            for &to in &ids {
                if from != to && self.rng.chance(1.0 / 3.0) {
                    cuts.push((from, to));
                }
            }
        }
        sim.record_control(format!("partial partition: cut {cuts:?}"));
        sim.network.heal();
        for (from, to) in cuts {
            sim.network.cut_one_way(from, to);
        }
    }

    /// Wipes one node's disk, keeping at most a minority of the voters wiped and not yet
    /// re-added, in the committed membership and in every node's latest one (a change in
    /// flight must be able to commit). A voter is wiped only once the committed membership
    /// records its incarnation: before that, a replaced disk looks like a first start to
    /// everyone, the one window the incarnations cannot close (`raft_core`'s `incarnation.rs`).
    fn wipe(&mut self, sim: &mut Sim) {
        // A disk slower than the election timeout makes its voter's votes come too late to
        // count: it is as lost as a wiped one until the faults end, so it counts against the
        // minority too (and is never the one wiped, or nobody would be left to elect).
        let slow = self.profile.slow_disk.map(|(node, _)| node);
        let impaired = |id: NodeId| sim.is_wiped_and_not_readded(id) || Some(id) == slow;
        let mut memberships = vec![sim.committed_membership().1.clone()];
        memberships.extend(sim.latest_memberships());
        // A change asked of a paused leader waits in its inbox: count what it would make.
        memberships.extend(
            sim.changes()
                .filter(|record| record.reply.is_none())
                .filter_map(|record| {
                    let node = sim.node(record.via)?;
                    node.membership().changed(record.change).ok()
                }),
        );
        let may_lose = |id: NodeId| {
            memberships.iter().all(|membership| {
                let voters = &membership.voters;
                let lost = voters.iter().filter(|&&voter| impaired(voter)).count()
                    + usize::from(voters.contains(&id));
                lost <= voters.len().saturating_sub(1) / 2
            })
        };
        let candidates: Vec<NodeId> = nodes_in(sim, &[Life::Running, Life::Crashed, Life::Stopped])
            .into_iter()
            .filter(|&id| !impaired(id) && !sim.is_unrecorded_voter(id) && may_lose(id))
            .collect();
        if let Some(&id) = self.rng.pick(&candidates) {
            let _ = sim.wipe(id);
        }
    }

    /// A crash while writes are pending: a node with writes in flight crashes now, or a
    /// random node crashes right after its next `Persist`, within its disk's latency. Either
    /// restarts soon, as a supervised process would, so the crash lands in the middle of
    /// whatever the node was doing and its peers have not moved on yet.
    fn crash_pending(&mut self, sim: &mut Sim, running: &[NodeId]) {
        let restart_after_ms = self.rng.between(1, 150);
        let writing: Vec<NodeId> = running
            .iter()
            .copied()
            .filter(|&id| sim.pending_writes(id).is_ok_and(|n| n > 0))
            .collect();
        if self.rng.chance(0.5) {
            if let Some(&id) = self.rng.pick(&writing) {
                let pending = sim.pending_writes(id).unwrap_or(0);
                sim.record_control(format!("{id} crashes with {pending} writes pending"));
                let _ = sim.crash(id);
                let _ = sim.restart_after(id, restart_after_ms);
                return;
            }
        }
        let Some(&id) = self.rng.pick(running) else {
            return;
        };
        let timing = if self.rng.chance(0.5) {
            CrashTiming::MidStep
        } else {
            let latency = sim.disk_latency(id).map_or(0, |disk| disk.latency_ms_max);
            CrashTiming::After(self.rng.between(0, latency.saturating_sub(1)))
        };
        let _ = sim.crash_after_next_persist(id, timing, Some(restart_after_ms));
    }

    /// The fault phase is over: stalls, bursts, long cuts, flapping and timed crashes end (the
    /// slow disk stays: it is the node's hardware).
    fn end(&mut self, sim: &mut Sim) {
        sim.cancel_timed_crashes();
        sim.end_disk_stalls();
        sim.network.config.loss = self.base_loss;
        self.burst_until_ms = None;
        sim.clients.config.read_ratio = self.base_read_ratio;
        self.read_only_until_ms = None;
        self.long_cuts.clear();
        self.flap = None;
    }
}

/// One membership change, asked of the current leader as it sees the membership: add a spare
/// node as a learner, promote a learner, or remove a voter (never below 3 voters, and never
/// leaving half the voters on the slow disk or wiped). While a wiped node is not re-added, no
/// change is asked at all, as an operator waits for the cluster to heal before reconfiguring
/// it: a removal committed meanwhile could leave half the voters lost, beyond what a cluster
/// survives. Refusals (a change in flight, a learner not caught up) are part of the exercise.
fn random_membership_change(sim: &mut Sim, rng: &mut SimRng, slow: Option<NodeId>) {
    let Some(leader) = sim.current_leader() else {
        return;
    };
    if sim
        .node_ids()
        .into_iter()
        .any(|id| sim.is_wiped_and_not_readded(id))
    {
        return;
    }
    let Some(membership) = sim.node(leader).map(|n| n.membership().clone()) else {
        return;
    };
    let spares: Vec<NodeId> = sim
        .node_ids()
        .into_iter()
        .filter(|&id| !membership.contains(id))
        .collect();
    let learners: Vec<NodeId> = membership.learners.iter().copied().collect();
    let impaired = |id: NodeId| sim.is_wiped_and_not_readded(id) || Some(id) == slow;
    let removable = |id: NodeId| {
        let left = membership.voters.len() - 1;
        let lost = membership
            .voters
            .iter()
            .filter(|&&voter| voter != id && impaired(voter))
            .count();
        lost <= left.saturating_sub(1) / 2
    };
    let voters: Vec<NodeId> = membership
        .voters
        .iter()
        .copied()
        .filter(|&id| removable(id))
        .collect();
    let mut options = Vec::new();
    if let Some(&id) = rng.pick(&spares) {
        options.push(MembershipChange::AddLearner(id));
    }
    if let Some(&id) = rng.pick(&learners) {
        options.push(MembershipChange::PromoteLearner(id));
    }
    if membership.voters.len() > 3 {
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

/// The last fault heals: every node is up and running, every link restored, loss off; except
/// the servers [`shut_down_removed`] keeps down.
fn heal_all(sim: &mut Sim) {
    sim.record_control("heal everything".to_owned());
    sim.network.heal();
    sim.network.config.loss = 0.0;
    for id in nodes_in(sim, &[Life::Paused]) {
        let _ = sim.resume(id);
    }
    let removed = removed_in_plain_raft(sim);
    for id in nodes_in(sim, &[Life::Crashed, Life::Stopped]) {
        if !removed.contains(&id) {
            let _ = sim.start(id);
        }
    }
    shut_down_removed(sim);
}

/// In plain Raft (neither pre-vote nor check-quorum), servers removed for good are shut down,
/// as an operator would, as soon as their removal is known committed: a removed server that
/// never learned of its removal keeps campaigning, and nothing in plain Raft stops a member
/// that has not learned of it either from adopting its ever higher terms and deposing each new
/// leader. Raft thesis §4.2.3 answers that with leader stickiness, which comes with
/// check-quorum here; pre-vote stops such a candidate too (its pre-votes find no majority among
/// the members).
fn shut_down_removed(sim: &mut Sim) {
    for id in removed_in_plain_raft(sim) {
        if matches!(sim.life(id), Ok(Life::Running | Life::Paused)) {
            let _ = sim.stop(id);
        }
    }
}

fn removed_in_plain_raft(sim: &Sim) -> Vec<NodeId> {
    let raft = &sim.config().raft;
    if raft.pre_vote || raft.check_quorum {
        return Vec::new();
    }
    removed_for_good(sim)
}

/// `Sim::run_until` for the liveness phase: removed servers are shut down as soon as their
/// removal commits (see [`shut_down_removed`]).
fn run_healed(sim: &mut Sim, deadline_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
    let mut committed = sim.committed_membership().0;
    loop {
        if done(sim) {
            return true;
        }
        if !sim.step_event(deadline_ms) {
            if sim.failure().is_none() {
                sim.run_until_time(deadline_ms);
            }
            return false;
        }
        let now_committed = sim.committed_membership().0;
        if now_committed != committed {
            committed = now_committed;
            shut_down_removed(sim);
        }
    }
}

/// Servers outside the committed membership whose last membership change that may take
/// effect is their removal (a refused or dropped request never enters a log; an accepted one
/// may still commit, and the committed membership shows whether it did).
fn removed_for_good(sim: &Sim) -> Vec<NodeId> {
    use raft_core::Reply;
    let mut last = std::collections::BTreeMap::new();
    let may_take_effect = |reply: &Option<Reply>| {
        !matches!(
            reply,
            Some(
                Reply::ChangeRejected { .. }
                    | Reply::NotLeader { .. }
                    | Reply::Busy
                    | Reply::Dropped { .. }
            )
        )
    };
    for record in sim
        .changes()
        .filter(|record| may_take_effect(&record.reply))
    {
        let id = match record.change {
            MembershipChange::AddLearner(id)
            | MembershipChange::PromoteLearner(id)
            | MembershipChange::Remove(id) => id,
        };
        last.insert(id, record);
    }
    let members = sim.committed_membership().1;
    last.into_iter()
        .filter(|(id, record)| {
            matches!(record.change, MembershipChange::Remove(_)) && !members.contains(*id)
        })
        .map(|(id, _)| id)
        .collect()
}

/// After healing: a leader within the bound, a new proposal committed within the bound, every
/// node caught up to it, and the history checks.
/// Each node's role, term, log and latest membership (with the incarnations it records, and
/// the node's own), one line per node: what a liveness failure left behind.
fn node_summaries(sim: &Sim) -> String {
    let mut lines = Vec::new();
    for id in sim.node_ids() {
        let line = match sim.node(id) {
            Some(node) => {
                let membership = node.membership();
                let list = |ids: &std::collections::BTreeSet<NodeId>| {
                    ids.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let recorded: Vec<String> = membership
                    .incarnations
                    .iter()
                    .map(|(id, incarnation)| format!("{id}@{}", incarnation.0))
                    .collect();
                format!(
                    "  {id}@{} {:?} t{} voted {:?} commit i{} last i{}; voters [{}] learners [{}] returning [{}] recorded [{}]",
                    node.incarnation().0,
                    node.role(),
                    node.term().0,
                    node.voted_for().map(|v| v.0),
                    node.commit_index().0,
                    node.last_log_index().0,
                    list(&membership.voters),
                    list(&membership.learners),
                    list(&membership.returning),
                    recorded.join(" ")
                )
            }
            None => format!("  {id} down"),
        };
        lines.push(line);
    }
    lines.join("\n")
}

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
            let detail = format!(
                "no new proposal committed within {bound} ms after healing\n{}",
                node_summaries(sim)
            );
            sim.fail_liveness("liveness_commit", detail);
        }
        return;
    };
    // With no new writes, every node must converge on one fully applied log, which holds every
    // write acknowledged before or after the marker.
    sim.stop_clients();
    let deadline = sim.now_ms() + bound;
    if !run_healed(sim, deadline, Sim::converged) {
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
        if !run_healed(sim, deadline, |s| s.current_leader().is_some()) {
            return None;
        }
        let leader = sim.current_leader()?;
        attempt += 1;
        let probe = format!("liveness-{attempt}");
        let request = sim
            .propose_generated(leader, &probe, u64::MAX - attempt)
            .ok()?;
        let decided = |s: &Sim| {
            s.clients
                .record(request)
                .is_some_and(|r| !matches!(r.outcome, Outcome::Pending))
                || s.node(leader).is_none_or(|n| n.role() != Role::Leader)
        };
        if !run_healed(sim, deadline, decided) {
            return None;
        }
        if let Some(Outcome::Committed { index, .. }) =
            sim.clients.record(request).map(|r| r.outcome)
        {
            return Some(index);
        }
        // Not committed (rejected, dropped, or leadership moved): wait a little, then retry.
        let pause = sim.now_ms() + 10;
        run_healed(sim, pause.min(deadline), |_| false);
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
    /// Seeds per fault family ([`FaultProfile::FAMILIES`] order), and seeds with none.
    pub profile_mix: [u64; FaultProfile::FAMILIES.len()],
    pub classic_seeds: u64,
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
        let families = report.profile.families();
        if families.is_empty() {
            self.classic_seeds += 1;
        }
        for (count, name) in self.profile_mix.iter_mut().zip(FaultProfile::FAMILIES) {
            *count += u64::from(families.contains(&name));
        }
        if report.is_liveness_failure() {
            self.liveness_failures += 1;
        } else if report.failure.is_some() {
            self.violations += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_family() -> FaultProfile {
        FaultProfile {
            slow_disk: Some((NodeId(2), 30)),
            disk_stalls: true,
            crash_pending: true,
            leader_crashes: true,
            stale_duplicates: true,
            duplicate_timeout_now: true,
            long_cuts: true,
            flapping: true,
            partial_partitions: true,
            loss_bursts: true,
            read_only_periods: true,
            small_batches: true,
            wide_clock_skew: true,
            wipes: true,
            narrow_windows: true,
        }
    }

    #[test]
    fn families_are_named_in_one_order() {
        assert_eq!(every_family().families(), FaultProfile::FAMILIES);
        assert!(FaultProfile::default().families().is_empty());
        assert_eq!(FaultProfile::default().to_string(), "classic faults only");
        assert!(every_family()
            .to_string()
            .starts_with("slow-disk(n2 x30) disk-stalls "));
    }

    #[test]
    fn a_seed_draws_its_own_profile_and_leases_keep_their_clocks() {
        let explore = ExploreConfig::new(5);
        let profiles: Vec<FaultProfile> = (0..200).map(|s| seed_profile(s, &explore)).collect();
        assert_eq!(
            profiles[7],
            seed_profile(7, &explore),
            "same seed, same profile"
        );
        for family in FaultProfile::FAMILIES {
            let on = profiles
                .iter()
                .filter(|p| p.families().contains(&family))
                .count();
            assert!((40..=160).contains(&on), "{family} on in {on} of 200 seeds");
        }
        for seed in 0..200 {
            let config = sim_config(seed, 5);
            if config.raft.lease_reads {
                assert!(!profiles[seed as usize].wide_clock_skew, "seed {seed}");
            }
        }
        let classic = ExploreConfig {
            swarm: false,
            ..explore
        };
        assert_eq!(seed_profile(7, &classic), FaultProfile::default());
    }

    #[test]
    fn a_profile_shapes_the_configuration() {
        let mut config = sim_config(3, 5);
        let before = config.clone();
        every_family().apply(3, &mut config);
        let slow = &config.node_disk[&NodeId(2)];
        assert_eq!(slow.latency_ms_max, before.disk.latency_ms_max.max(1) * 30);
        assert!(config.network.stale_duplicate > 0.0 && config.network.stale_timeout_now > 0.0);
        assert!(config.leader_crash.is_some());
        assert!((1..=4).contains(&config.raft.append_entries_max));
        assert!(config.tick_ms.iter().all(|ms| (5..=20).contains(ms)));
        // Nothing the profile does not touch moves.
        assert_eq!(config.network.latency_ms_min, before.network.latency_ms_min);
        assert_eq!(config.raft.pre_vote, before.raft.pre_vote);
    }
}
