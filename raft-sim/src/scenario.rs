//! Scenario scripts: a line-based language that drives a [`Sim`] and produces a transcript a
//! reviewer can read. One command per line, `#` starts a comment; each command has one
//! handler below. The language is documented in the crate README.
//!
//! Setup commands (`cluster`, `latency`, `loss`, `duplicate`, `disk`, `tick`, `config`,
//! `clients`) shape the simulation and must come before the first command that runs it.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use raft_core::kv::{Command as KvCommand, KvStore};
use raft_core::session::{SessionCommand, SessionOutput, Sessions};
use raft_core::StateMachine;
use raft_core::{
    EntryPayload, Envelope, LogIndex, Membership, MembershipChange, Message, NodeId, RequestId,
    Term,
};

use crate::client::Outcome as ClientOutcome;
use crate::machine::{Machine, SimMachine};
use crate::sim::{Life, Sim, SimConfig};
use crate::state::{state_json, status_line};
use crate::trace::TraceSink;

/// The transcript, and the error that stopped the script early, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub transcript: String,
    pub error: Option<String>,
}

/// Runs a whole script. A parse error, a failed expectation (`run until` timing out, a control
/// on a node in the wrong state) or an invariant violation stops it.
#[must_use]
pub fn run_script(text: &str) -> Outcome {
    run_script_traced(text, None)
}

/// [`run_script`], streaming every event of the simulation to `trace`.
#[must_use]
pub fn run_script_traced(text: &str, trace: Option<Box<dyn TraceSink>>) -> Outcome {
    // With the catalogue feature the options have more fields.
    #[cfg_attr(not(feature = "catalogue"), allow(clippy::needless_update))]
    run_script_with(
        text,
        RunOptions {
            trace,
            ..RunOptions::default()
        },
    )
}

/// How to run a script besides its text.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Streams every event of the simulation here.
    pub trace: Option<Box<dyn TraceSink>>,
    /// The state machine every node replicates, instead of the simulator's own (see
    /// [`crate::machine`]).
    pub machine: Option<Machine>,
    /// Bugs every node of the run reintroduces (the bug catalogue).
    #[cfg(feature = "catalogue")]
    pub bugs: Vec<raft_core::bugs::Bug>,
}

/// [`run_script`] with options.
#[must_use]
pub fn run_script_with(text: &str, options: RunOptions) -> Outcome {
    let runner = Runner {
        trace: options.trace,
        machine: options.machine,
        #[cfg(feature = "catalogue")]
        bugs: options.bugs,
        ..Runner::default()
    };
    run(text, runner)
}

/// [`run_script`] with every node running a replica of the machine `make` builds instead of
/// the simulator's own (see [`crate::machine`]): `propose N TEXT` proposes the command
/// [`SimMachine::parse_command`] reads from `TEXT`, replies to it show its output, and
/// `machine N` prints a node's replica.
#[must_use]
pub fn run_machine_script<M: SimMachine>(text: &str, make: impl Fn() -> M + 'static) -> Outcome {
    // With the catalogue feature the options have more fields.
    #[cfg_attr(not(feature = "catalogue"), allow(clippy::needless_update))]
    run_script_with(
        text,
        RunOptions {
            machine: Some(Machine::new(make)),
            ..RunOptions::default()
        },
    )
}

fn run(text: &str, mut runner: Runner) -> Outcome {
    for (number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            if raw.trim_start().starts_with('#') {
                runner.out.push_str(raw.trim());
                runner.out.push('\n');
            }
            continue;
        }
        let _ = writeln!(runner.out, "> {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let result = runner.execute(&words);
        runner.flush_notes();
        let failure = runner.sim.as_ref().and_then(|s| s.failure().cloned());
        if let Some(failure) = failure {
            let _ = write!(runner.out, "VIOLATION {failure}");
            return Outcome {
                transcript: runner.out,
                error: Some(format!(
                    "line {}: invariant {} violated",
                    number + 1,
                    failure.invariant
                )),
            };
        }
        if let Err(error) = result {
            let _ = writeln!(runner.out, "ERROR line {}: {error}", number + 1);
            return Outcome {
                transcript: runner.out,
                error: Some(format!("line {}: {error}", number + 1)),
            };
        }
    }
    Outcome {
        transcript: runner.out,
        error: None,
    }
}

#[derive(Debug, Default)]
struct Runner {
    config: Option<SimConfig>,
    sim: Option<Sim>,
    out: String,
    /// Handed to the simulation when it starts.
    trace: Option<Box<dyn TraceSink>>,
    /// Commands written by `write` so far, so each one's commands get fresh names.
    bulk_writes: u64,
    /// The machine the simulation runs, handed to it when it starts.
    machine: Option<Machine>,
    /// Handed to the simulation's configuration when it starts.
    #[cfg(feature = "catalogue")]
    bugs: Vec<raft_core::bugs::Bug>,
}

type Handled = Result<(), String>;

const RUN_LIMIT_DEFAULT_MS: u64 = 10_000;

/// The most commands one `write` proposes: enough for any compaction story, and a bound on
/// what a typo can make a script do.
const WRITE_COUNT_MAX: u64 = 1_000_000;

impl Runner {
    fn execute(&mut self, words: &[&str]) -> Handled {
        let (&command, args) = words.split_first().ok_or("empty command")?;
        match command {
            "cluster" => self.cmd_cluster(args),
            "latency" => self.cmd_latency(args),
            "loss" => self.cmd_loss(args),
            "duplicate" => self.cmd_duplicate(args),
            "disk" => self.cmd_disk(args),
            "hold-disk" => self.cmd_hold_disk(args),
            "release-disk" => self.cmd_release_disk(args),
            "tick" => self.cmd_tick(args),
            "config" => self.cmd_config(args),
            "clients" => self.cmd_clients(args),
            "paused-ticks" => self.cmd_paused_ticks(args),
            "start" => self.each_node(args, Sim::start),
            "restart" => self.cmd_restart(args),
            "stop" => self.each_node(args, Sim::stop),
            "crash" => self.each_node(args, Sim::crash),
            "wipe" => match args {
                [.., "keep-voters"] => {
                    self.each_node(&args[..args.len() - 1], Sim::wipe_keeping_config)
                }
                _ => self.each_node(args, Sim::wipe),
            },
            "pause" => self.each_node(args, Sim::pause),
            "resume" => self.each_node(args, Sim::resume),
            "campaign" => self.each_node(args, Sim::campaign),
            "partition" => self.cmd_partition(args),
            "isolate" => self.cmd_isolate(args),
            "rejoin" => self.cmd_rejoin(args),
            "cut" => self.cmd_cut(args),
            "uncut" => self.cmd_uncut(args),
            "heal" => self.cmd_heal(args),
            "hold" => self.cmd_hold(args),
            "deliver" => self.cmd_deliver(args),
            "drop" => self.cmd_drop(args),
            "release" => self.cmd_release(args),
            "propose" => self.cmd_propose(args),
            "read" => self.cmd_read(args),
            "open-session" => self.cmd_open_session(args),
            "session-append" => self.cmd_session_append(args),
            "kv" => self.cmd_kv(args),
            "write" => self.cmd_write(args),
            "compact" => self.cmd_compact(args),
            "transfer" => self.cmd_transfer(args),
            "add-learner" => self.cmd_change(args, "add-learner", MembershipChange::AddLearner),
            "promote" => self.cmd_change(args, "promote", MembershipChange::PromoteLearner),
            "remove" => self.cmd_change(args, "remove", MembershipChange::Remove),
            "members" => self.cmd_members(args),
            "check" => self.cmd_check(args),
            "workload" => self.cmd_workload(args),
            "run" => self.cmd_run(args),
            "state" => self.cmd_state(args),
            "status" => self.cmd_status(args),
            "leaders" => self.cmd_leaders(args),
            "messages" => self.cmd_messages(args),
            "machine" => self.cmd_machine(args),
            other => Err(format!("unknown command {other:?}")),
        }
    }

    fn flush_notes(&mut self) {
        if let Some(sim) = &mut self.sim {
            for note in sim.take_notes() {
                let _ = writeln!(self.out, "  {note}");
            }
        }
    }

    fn say(&mut self, text: impl AsRef<str>) {
        self.flush_notes();
        let _ = writeln!(self.out, "  {}", text.as_ref());
    }

    // ---- setup ----

    fn setup(&mut self) -> Result<&mut SimConfig, String> {
        if self.sim.is_some() {
            return Err("setup commands must come before the simulation starts".to_owned());
        }
        self.config
            .as_mut()
            .ok_or_else(|| "the script must begin with `cluster N`".to_owned())
    }

    fn cmd_cluster(&mut self, args: &[&str]) -> Handled {
        if self.config.is_some() {
            return Err("`cluster` may appear only once".to_owned());
        }
        const USAGE: &str = "usage: cluster N [voters V] [seed S]";
        let (n, mut rest) = args.split_first().ok_or(USAGE)?;
        let nodes = parse_u64(n)?;
        if !(1..=64).contains(&nodes) {
            return Err(format!("a cluster has 1 to 64 nodes, not {nodes}"));
        }
        let (mut voters, mut seed) = (nodes, 0);
        while let [key, value, more @ ..] = rest {
            match *key {
                "voters" => voters = parse_u64(value)?,
                "seed" => seed = parse_u64(value)?,
                _ => return Err(USAGE.to_owned()),
            }
            rest = more;
        }
        if !rest.is_empty() {
            return Err(USAGE.to_owned());
        }
        if !(1..=nodes).contains(&voters) {
            return Err(format!("1 to {nodes} initial voters, not {voters}"));
        }
        let mut config = SimConfig::new(seed, nodes);
        config.voters = voters;
        self.config = Some(config);
        Ok(())
    }

    fn cmd_latency(&mut self, args: &[&str]) -> Handled {
        let (min, max) = parse_range(one(args, "latency MIN..MAX (ms)")?)?;
        self.network_setting(|c| {
            c.latency_ms_min = min;
            c.latency_ms_max = max;
        })
    }

    fn cmd_loss(&mut self, args: &[&str]) -> Handled {
        let p = parse_probability(one(args, "loss P")?)?;
        self.network_setting(|c| c.loss = p)
    }

    fn cmd_duplicate(&mut self, args: &[&str]) -> Handled {
        let p = parse_probability(one(args, "duplicate P")?)?;
        self.network_setting(|c| c.duplicate = p)
    }

    /// Network settings may change mid-run too.
    fn network_setting(&mut self, change: impl Fn(&mut crate::network::NetworkConfig)) -> Handled {
        if let Some(sim) = &mut self.sim {
            change(&mut sim.network.config);
            return Ok(());
        }
        change(&mut self.setup()?.network);
        Ok(())
    }

    /// `disk MIN..MAX` sets every disk's latency (setup only); `disk N MIN..MAX` one node's,
    /// at setup or mid-run.
    fn cmd_disk(&mut self, args: &[&str]) -> Handled {
        const USAGE: &str = "usage: disk MIN..MAX | disk N MIN..MAX (ms)";
        let (node, range) = match args {
            [range] => (None, range),
            [node, range] => (Some(parse_node(node)?), range),
            _ => return Err(USAGE.to_owned()),
        };
        let (min, max) = parse_range(range)?;
        let latency = crate::disk::DiskConfig {
            latency_ms_min: min,
            latency_ms_max: max,
        };
        let Some(node) = node else {
            self.setup()?.disk = latency;
            return Ok(());
        };
        if let Some(sim) = &mut self.sim {
            return sim
                .set_disk_latency(node, latency)
                .map_err(|e| e.to_string());
        }
        let config = self.setup()?;
        if node.0 == 0 || node.0 > config.nodes {
            return Err(format!("no node {node}"));
        }
        config.node_disk.insert(node, latency);
        Ok(())
    }

    fn cmd_hold_disk(&mut self, args: &[&str]) -> Handled {
        let node = parse_node(one(args, "hold-disk N")?)?;
        let sim = self.sim()?;
        sim.hold_disk(node).map_err(|e| e.to_string())
    }

    fn cmd_release_disk(&mut self, args: &[&str]) -> Handled {
        let node = parse_node(one(args, "release-disk N")?)?;
        let released = self.sim()?.release_disk(node).map_err(|e| e.to_string())?;
        self.say(format!("{node} completed {released} held writes"));
        Ok(())
    }

    fn cmd_tick(&mut self, args: &[&str]) -> Handled {
        let [node, ms] = args else {
            return Err("usage: tick NODE MS".to_owned());
        };
        let node = parse_u64(node)?;
        let ms = parse_duration(ms)?.max(1);
        let config = self.setup()?;
        if node == 0 || node > config.nodes {
            return Err(format!("no node {node}"));
        }
        let nodes = usize::try_from(config.nodes).map_err(|e| e.to_string())?;
        config.tick_ms.resize(nodes, SimConfig::TICK_MS_DEFAULT);
        config.tick_ms[usize::try_from(node - 1).map_err(|e| e.to_string())?] = ms;
        Ok(())
    }

    fn cmd_config(&mut self, args: &[&str]) -> Handled {
        let [key, value] = args else {
            return Err("usage: config KEY VALUE".to_owned());
        };
        let value = parse_u64(value)?;
        let flag = |value: u64| match value {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("{key} takes 0 or 1, not {other}")),
        };
        let raft = &mut self.setup()?.raft;
        let small = || u32::try_from(value).map_err(|e| e.to_string());
        let large = || usize::try_from(value).map_err(|e| e.to_string());
        match *key {
            "heartbeat_interval_ticks" => raft.heartbeat_interval_ticks = small()?,
            "election_timeout_ticks_min" => raft.election_timeout_ticks_min = small()?,
            "election_timeout_ticks_max" => raft.election_timeout_ticks_max = small()?,
            "append_entries_max" => raft.append_entries_max = large()?,
            "append_bytes_max" => raft.append_bytes_max = large()?,
            "inflight_appends_max" => raft.inflight_appends_max = large()?,
            "uncommitted_entries_max" => raft.uncommitted_entries_max = large()?,
            "pending_reads_max" => raft.pending_reads_max = large()?,
            "snapshot_chunk_bytes_max" => raft.snapshot_chunk_bytes_max = large()?,
            "snapshot_bytes_max" => raft.snapshot_bytes_max = value,
            "pre_vote" => raft.pre_vote = flag(value)?,
            "check_quorum" => raft.check_quorum = flag(value)?,
            "lease_reads" => raft.lease_reads = flag(value)?,
            other => return Err(format!("unknown config key {other:?}")),
        }
        raft.validate().map_err(|e| e.to_string())
    }

    /// `paused-ticks lost|delivered`: whether a resumed node gets the ticks it missed.
    fn cmd_paused_ticks(&mut self, args: &[&str]) -> Handled {
        let delivered = match one(args, "paused-ticks lost|delivered")? {
            "lost" => false,
            "delivered" => true,
            other => {
                return Err(format!(
                    "paused-ticks takes lost or delivered, not {other:?}"
                ))
            }
        };
        self.setup()?.resume_with_missed_ticks = delivered;
        Ok(())
    }

    fn cmd_clients(&mut self, args: &[&str]) -> Handled {
        let usage = || "usage: clients N [reads PERCENT]".to_owned();
        let (count, reads) = match args {
            [count] => (count, None),
            [count, "reads", percent] => (count, Some(parse_u64(percent)?)),
            _ => return Err(usage()),
        };
        let count = usize::try_from(parse_u64(count)?).map_err(|e| e.to_string())?;
        let clients = &mut self.setup()?.clients;
        clients.clients = count;
        if let Some(percent) = reads {
            if percent > 100 {
                return Err(format!("reads takes a percentage, not {percent}"));
            }
            clients.read_ratio = percent as f64 / 100.0;
        }
        Ok(())
    }

    // ---- nodes ----

    fn sim(&mut self) -> Result<&mut Sim, String> {
        if self.sim.is_none() {
            #[cfg_attr(not(feature = "catalogue"), allow(unused_mut))]
            let mut config = self
                .config
                .take()
                .ok_or("the script must begin with `cluster N`")?;
            #[cfg(feature = "catalogue")]
            {
                config.bugs.clone_from(&self.bugs);
            }
            let mut sim = Sim::new(config);
            if let Some(machine) = self.machine.take() {
                sim.set_machine(machine);
            }
            sim.collect_notes();
            if let Some(sink) = self.trace.take() {
                sim.trace_mut().stream_to(sink);
            }
            self.sim = Some(sim);
        }
        self.sim.as_mut().ok_or_else(|| "no simulation".to_owned())
    }

    fn each_node(
        &mut self,
        args: &[&str],
        control: fn(&mut Sim, NodeId) -> Result<(), crate::sim::ControlError>,
    ) -> Handled {
        if args.is_empty() {
            return Err("expected one or more node ids".to_owned());
        }
        let sim = self.sim()?;
        let nodes = args
            .iter()
            .map(|a| parse_target(sim, a))
            .collect::<Result<Vec<_>, _>>()?;
        for node in nodes {
            control(sim, node).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// `restart N...`, or `restart` alone for every crashed or stopped node.
    fn cmd_restart(&mut self, args: &[&str]) -> Handled {
        let sim = self.sim()?;
        let down = |sim: &Sim, node| {
            sim.life(node)
                .is_ok_and(|life| matches!(life, Life::Crashed | Life::Stopped))
        };
        let nodes = if args.is_empty() {
            let all = sim.node_ids();
            all.into_iter().filter(|&n| down(sim, n)).collect()
        } else {
            args.iter()
                .map(|a| parse_node(a))
                .collect::<Result<Vec<_>, _>>()?
        };
        for &node in &nodes {
            check_nodes(sim, [node].iter())?;
            if !down(sim, node) {
                return Err(format!("{node} is not down, so it cannot restart"));
            }
        }
        for &node in &nodes {
            sim.start(node).map_err(|e| e.to_string())?;
        }
        for node in nodes {
            self.say(format!("restarted {node}"));
        }
        Ok(())
    }

    // ---- network ----

    fn cmd_partition(&mut self, args: &[&str]) -> Handled {
        if args.len() < 2 {
            return Err("usage: partition A,B C,D ... (two or more groups)".to_owned());
        }
        let groups = args
            .iter()
            .map(|group| {
                group
                    .split(',')
                    .map(parse_node)
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sim = self.sim()?;
        check_nodes(sim, groups.iter().flatten())?;
        sim.record_control(format!("partition {}", args.join(" ")));
        sim.network.partition(&groups);
        Ok(())
    }

    fn cmd_isolate(&mut self, args: &[&str]) -> Handled {
        let node = parse_node(one(args, "isolate N")?)?;
        let sim = self.sim()?;
        check_nodes(sim, [node].iter())?;
        sim.record_control(format!("isolate {node}"));
        sim.network.isolate(node);
        Ok(())
    }

    fn cmd_rejoin(&mut self, args: &[&str]) -> Handled {
        let node = parse_node(one(args, "rejoin N")?)?;
        let sim = self.sim()?;
        check_nodes(sim, [node].iter())?;
        sim.record_control(format!("rejoin {node}"));
        sim.network.rejoin(node);
        Ok(())
    }

    fn cmd_cut(&mut self, args: &[&str]) -> Handled {
        let (from, to) = link(args, "cut FROM TO")?;
        let sim = self.sim()?;
        check_nodes(sim, [from, to].iter())?;
        sim.record_control(format!("cut {from} -> {to}"));
        sim.network.cut_one_way(from, to);
        Ok(())
    }

    fn cmd_uncut(&mut self, args: &[&str]) -> Handled {
        let (from, to) = link(args, "uncut FROM TO")?;
        let sim = self.sim()?;
        check_nodes(sim, [from, to].iter())?;
        sim.record_control(format!("uncut {from} -> {to}"));
        sim.network.restore_one_way(from, to);
        Ok(())
    }

    fn cmd_heal(&mut self, args: &[&str]) -> Handled {
        no_args(args, "heal")?;
        let sim = self.sim()?;
        sim.record_control("heal".to_owned());
        sim.network.heal();
        Ok(())
    }

    fn cmd_hold(&mut self, args: &[&str]) -> Handled {
        let (from, to) = link(args, "hold FROM TO")?;
        let sim = self.sim()?;
        check_nodes(sim, [from, to].iter())?;
        sim.network.hold(from, to);
        Ok(())
    }

    fn cmd_deliver(&mut self, args: &[&str]) -> Handled {
        let (link_args, count) = match args {
            [a, b] => ([*a, *b], 1),
            [a, b, "all"] => ([*a, *b], usize::MAX),
            [a, b, n] => (
                [*a, *b],
                usize::try_from(parse_u64(n)?).map_err(|e| e.to_string())?,
            ),
            _ => return Err("usage: deliver FROM TO [COUNT|all]".to_owned()),
        };
        let (from, to) = link(&link_args, "deliver FROM TO")?;
        let sim = self.sim()?;
        if !sim.network.is_held(from, to) {
            return Err(format!("link {from} -> {to} is not held"));
        }
        let chunks = describe_chunks(sim.network.held(from, to).take(count));
        let delivered = sim
            .deliver_held(from, to, count)
            .map_err(|e| e.to_string())?;
        let waiting = sim.network.held_count(from, to);
        self.say(format!(
            "delivered {delivered}, {waiting} still held{chunks}"
        ));
        Ok(())
    }

    fn cmd_drop(&mut self, args: &[&str]) -> Handled {
        let (from, to) = link(args, "drop FROM TO")?;
        let sim = self.sim()?;
        let chunks = describe_chunks(sim.network.held(from, to));
        let dropped = sim.drop_held(from, to).map_err(|e| e.to_string())?;
        self.say(format!("dropped {dropped}{chunks}"));
        Ok(())
    }

    fn cmd_release(&mut self, args: &[&str]) -> Handled {
        let (from, to) = link(args, "release FROM TO")?;
        let sim = self.sim()?;
        let waiting = sim.network.held_count(from, to);
        sim.deliver_held(from, to, waiting)
            .map_err(|e| e.to_string())?;
        sim.network.release(from, to);
        Ok(())
    }

    // ---- clients ----

    fn cmd_propose(&mut self, args: &[&str]) -> Handled {
        let [target, command @ ..] = args else {
            return Err("usage: propose N|leader COMMAND".to_owned());
        };
        if command.is_empty() {
            return Err("usage: propose N|leader COMMAND".to_owned());
        }
        let command = command.join(" ");
        let sim = self.sim()?;
        let node = parse_target(sim, target)?;
        let request = sim.propose(node, &command).map_err(|e| e.to_string())?;
        self.report_proposal(node, &command, request)
    }

    fn cmd_read(&mut self, args: &[&str]) -> Handled {
        let target = one(args, "read N|leader")?;
        let sim = self.sim()?;
        let node = parse_target(sim, target)?;
        let request = sim.read(node).map_err(|e| e.to_string())?;
        let pending = sim
            .clients
            .record(request)
            .is_none_or(|r| r.outcome == ClientOutcome::Pending);
        if pending && sim.failure().is_none() {
            self.say(format!("{node} has not answered read {request} yet"));
        }
        Ok(())
    }

    /// Says how `node` first answered a proposal; an immediate refusal is printed as a note,
    /// like every later outcome.
    fn report_proposal(&mut self, node: NodeId, label: &str, request: RequestId) -> Handled {
        let record = self
            .sim()?
            .clients
            .record(request)
            .map(|r| (r.accepted, r.outcome));
        match record {
            Some((Some((index, term)), _)) => {
                self.say(format!("{node} accepted {label:?} at {index} in {term}"));
            }
            Some((None, ClientOutcome::Pending)) | None => {
                self.say(format!("{node} has not answered {label:?} yet"));
            }
            Some((None, _)) => {}
        }
        Ok(())
    }

    /// Proposes a key-value command in the session wrapper (see `raft_core::kv` and
    /// `raft_core::session`) under a readable label.
    /// The simulation, for the commands that speak the key-value store's language: only
    /// while the nodes run the simulator's own machine (whose commands are any bytes).
    fn kv_sim(&mut self) -> Result<&mut Sim, String> {
        let sim = self.sim()?;
        if sim.runs_machine() {
            return Err("the nodes run a machine of their own: `open-session`, `session-append` and `kv` speak the key-value store's commands".to_owned());
        }
        Ok(sim)
    }

    fn propose_kv(
        &mut self,
        target: &str,
        label: &str,
        command: &SessionCommand<KvCommand>,
    ) -> Handled {
        let sim = self.kv_sim()?;
        let node = parse_target(sim, target)?;
        let request = sim
            .propose_bytes(node, label, Sessions::<KvStore>::command_bytes(command))
            .map_err(|e| e.to_string())?;
        self.report_proposal(node, label, request)
    }

    fn cmd_open_session(&mut self, args: &[&str]) -> Handled {
        let target = one(args, "open-session N|leader")?;
        self.propose_kv(target, "open session", &SessionCommand::Open)
    }

    fn cmd_session_append(&mut self, args: &[&str]) -> Handled {
        let usage = "usage: session-append N|leader CLIENT SEQ TEXT";
        let [target, client, seq, text @ ..] = args else {
            return Err(usage.to_owned());
        };
        if text.is_empty() {
            return Err(usage.to_owned());
        }
        let (client, seq, text) = (parse_u64(client)?, parse_u64(seq)?, text.join(" "));
        let label = format!("session {client}#{seq} append {text}");
        let command = SessionCommand::Numbered {
            client,
            seq,
            command: KvCommand::Append { command: text },
        };
        self.propose_kv(target, &label, &command)
    }

    /// Replays a node's applied entries through the key-value store (with sessions) and prints
    /// what it holds.
    fn cmd_kv(&mut self, args: &[&str]) -> Handled {
        let sim = self.kv_sim()?;
        let node = parse_target(sim, one(args, "kv N|leader")?)?;
        let entries = sim.applied_entries(node).map_err(|e| e.to_string())?;
        let mut store = Sessions::new(KvStore::new());
        let mut refused = 0;
        for entry in &entries {
            if let EntryPayload::Command(bytes) = &entry.payload {
                if matches!(
                    store.apply_bytes(entry.index, bytes),
                    SessionOutput::Stale { .. } | SessionOutput::Expired
                ) {
                    refused += 1;
                }
            }
        }
        self.say(format!(
            "{node} kv after {} applied entries: {} appends applied, {} keys, {} sessions, {refused} session commands refused",
            entries.len(),
            store.machine().appended(),
            store.machine().len(),
            store.sessions(),
        ));
        Ok(())
    }

    /// `machine N|leader`: the node's replica of the scenario's own machine.
    fn cmd_machine(&mut self, args: &[&str]) -> Handled {
        let sim = self.sim()?;
        let node = parse_target(sim, one(args, "machine N|leader")?)?;
        let described = sim.describe_machine(node).ok_or_else(|| {
            format!("{node} runs no machine of its own (the scenario runs the simulator's; see raft_sim::scenario::run_machine_script), or is down")
        })?;
        self.say(format!("{node} machine {described}"));
        Ok(())
    }

    /// `write N|leader COUNT [within D]`: proposes COUNT commands `wK` to one node at once,
    /// runs until each has its final reply (or the limit passes) and prints one summary
    /// instead of a line per reply, so a script can write thousands of entries readably.
    fn cmd_write(&mut self, args: &[&str]) -> Handled {
        const USAGE: &str = "usage: write N|leader COUNT [within D]";
        let (target, count, limit) = match args {
            [target, count] => (*target, *count, RUN_LIMIT_DEFAULT_MS),
            [target, count, "within", d] => (*target, *count, parse_duration(d)?),
            _ => return Err(USAGE.to_owned()),
        };
        let count = parse_u64(count)?;
        if !(1..=WRITE_COUNT_MAX).contains(&count) {
            return Err(format!(
                "write 1 to {WRITE_COUNT_MAX} commands, not {count}"
            ));
        }
        let first = self.bulk_writes + 1;
        let sim = self.sim()?;
        let node = parse_target(sim, target)?;
        // Notes of earlier commands were flushed; everything from here on is this command's.
        let mut notes = sim.take_notes();
        let start = sim.now_ms();
        let mut requests = Vec::new();
        for k in first..first + count {
            let request = sim
                .propose_generated(node, &format!("w{k}"), k)
                .map_err(|e| e.to_string())?;
            requests.push(request);
            if sim.failure().is_some() {
                break;
            }
        }
        let answered = |sim: &Sim, request| {
            sim.clients
                .record(request)
                .is_some_and(|r| r.outcome != ClientOutcome::Pending)
        };
        // Replies come mostly in order, so a cursor keeps the check cheap per event.
        let mut cursor = 0;
        sim.run_until(start + limit, |sim| {
            while requests.get(cursor).is_some_and(|&r| answered(sim, r)) {
                cursor += 1;
            }
            cursor == requests.len()
        });
        self.bulk_writes += requests.len() as u64;
        let sim = self.sim()?;
        notes.extend(sim.take_notes());
        let elapsed = sim.now_ms() - start;
        let summary = summarize_writes(sim, &requests);
        // The per-reply notes of these writes are what the summary replaces.
        let ours: BTreeSet<String> = requests.iter().map(ToString::to_string).collect();
        let prefix = format!("{node} replied to ");
        let own_reply = |note: &str| {
            note.strip_prefix(&prefix)
                .and_then(|rest| rest.split_once(": "))
                .is_some_and(|(request, _)| ours.contains(request))
        };
        for note in notes.into_iter().filter(|note| !own_reply(note)) {
            let _ = writeln!(self.out, "  {note}");
        }
        let last = first + requests.len() as u64 - 1;
        self.say(format!(
            "{node} took w{first}..w{last}: {summary}, after {elapsed} ms"
        ));
        Ok(())
    }

    fn cmd_compact(&mut self, args: &[&str]) -> Handled {
        let target = one(args, "compact N|leader")?;
        let sim = self.sim()?;
        let node = parse_target(sim, target)?;
        let index = sim.compact(node).map_err(|e| e.to_string())?;
        self.say(format!("{node} compacts its log through {index}"));
        Ok(())
    }

    fn cmd_transfer(&mut self, args: &[&str]) -> Handled {
        let to = parse_node(one(args, "transfer N")?)?;
        let sim = self.sim()?;
        let leader = sim.transfer_leadership(to).map_err(|e| e.to_string())?;
        self.say(format!("{leader} asked to hand leadership to {to}"));
        Ok(())
    }

    /// `add-learner N via M`, `promote N via M`, `remove N via M`: the reply, and the final
    /// outcome later, are printed as notes.
    fn cmd_change(
        &mut self,
        args: &[&str],
        name: &str,
        change: fn(NodeId) -> MembershipChange,
    ) -> Handled {
        let [target, "via", via] = args else {
            return Err(format!("usage: {name} N via M|leader"));
        };
        let target = parse_node(target)?;
        let sim = self.sim()?;
        sim.life(target).map_err(|e| e.to_string())?;
        let via = parse_target(sim, via)?;
        let request = sim
            .change_membership(via, change(target))
            .map_err(|e| e.to_string())?;
        if sim.change(request).is_some_and(|c| c.reply.is_none()) {
            self.say(format!("{via} has not answered yet"));
        }
        Ok(())
    }

    /// Each node's own view of the membership (the latest in its log), and the committed one.
    fn cmd_members(&mut self, args: &[&str]) -> Handled {
        let nodes = self.selected(args)?;
        let sim = self.sim()?;
        let mut lines = Vec::new();
        for id in nodes {
            let line = match sim.node(id) {
                Some(node) => format!("{id} {}", describe_membership(node.membership())),
                None => format!("{id} down"),
            };
            lines.push(line);
        }
        let (index, committed) = sim.committed_membership();
        lines.push(format!(
            "committed at {index}: {}",
            describe_membership(committed)
        ));
        for line in lines {
            self.say(line);
        }
        Ok(())
    }

    /// The end-of-run checks over the history so far: every acknowledged write applied on a
    /// majority of the committed voters, no dropped write committed, linearizability.
    fn cmd_check(&mut self, args: &[&str]) -> Handled {
        no_args(args, "check")?;
        let sim = self.sim()?;
        sim.check_history();
        if sim.failure().is_none() {
            self.say("history checks passed");
        }
        Ok(())
    }

    fn cmd_workload(&mut self, args: &[&str]) -> Handled {
        let sim = self.sim()?;
        match args {
            ["start"] => sim.start_clients(),
            ["stop"] => sim.stop_clients(),
            ["summary"] => {
                let (committed, rejected, timed_out, pending) = sim.clients.summary();
                self.say(format!(
                    "client requests: {committed} committed, {rejected} rejected (not leader, busy or dropped), {timed_out} timed out or unknown, {pending} pending"
                ));
            }
            _ => return Err("usage: workload start|stop|summary".to_owned()),
        }
        Ok(())
    }

    // ---- time ----

    fn cmd_run(&mut self, args: &[&str]) -> Handled {
        match args {
            [duration] => {
                let ms = parse_duration(duration)?;
                let sim = self.sim()?;
                let deadline = sim.now_ms() + ms;
                sim.run_until_time(deadline);
                Ok(())
            }
            ["until", condition @ ..] => self.run_until(condition),
            _ => Err("usage: run DURATION | run until leader [N] [within D] | run until committed INDEX [within D]".to_owned()),
        }
    }

    fn run_until(&mut self, condition: &[&str]) -> Handled {
        let (condition, limit) = match condition {
            [rest @ .., "within", d] => (rest, parse_duration(d)?),
            rest => (rest, RUN_LIMIT_DEFAULT_MS),
        };
        let sim = self.sim()?;
        let start = sim.now_ms();
        let deadline = start + limit;
        let reached = match condition {
            ["leader"] => sim.run_until(deadline, |s| s.current_leader().is_some()),
            ["leader", nodes] => {
                let nodes = nodes
                    .split(',')
                    .map(parse_node)
                    .collect::<Result<Vec<_>, _>>()?;
                sim.run_until(deadline, |s| {
                    s.current_leader()
                        .is_some_and(|leader| nodes.contains(&leader))
                })
            }
            ["committed", index] => {
                let index = LogIndex(parse_u64(index)?);
                sim.run_until(deadline, |s| s.committed_everywhere(index))
            }
            ["converged"] => sim.run_until(deadline, Sim::converged),
            _ => {
                return Err(
                    "unknown condition: use `leader [N,...]`, `committed INDEX` or `converged`"
                        .to_owned(),
                )
            }
        };
        let elapsed = sim.now_ms() - start;
        if sim.failure().is_some() {
            return Ok(());
        }
        if !reached {
            return Err(format!("condition not reached within {limit} ms"));
        }
        let now = sim.now_ms();
        self.say(format!("reached after {elapsed} ms (at {now} ms)"));
        Ok(())
    }

    // ---- output ----

    fn selected(&mut self, args: &[&str]) -> Result<Vec<NodeId>, String> {
        let sim = self.sim()?;
        if args.is_empty() {
            return Ok(sim.node_ids());
        }
        let nodes = args
            .iter()
            .map(|a| parse_node(a))
            .collect::<Result<Vec<_>, _>>()?;
        check_nodes(sim, nodes.iter())?;
        Ok(nodes)
    }

    fn cmd_state(&mut self, args: &[&str]) -> Handled {
        self.print_nodes(args, state_json)
    }

    fn cmd_status(&mut self, args: &[&str]) -> Handled {
        self.print_nodes(args, status_line)
    }

    fn print_nodes(&mut self, args: &[&str], show: fn(&raft_core::Node) -> String) -> Handled {
        let nodes = self.selected(args)?;
        let sim = self.sim()?;
        let mut lines = Vec::new();
        for id in nodes {
            let life = sim.life(id).map_err(|e| e.to_string())?;
            let line = match (sim.node(id), life) {
                (Some(node), Life::Paused) => format!("{id} (paused) {}", show(node)),
                (Some(node), _) => format!("{id} {}", show(node)),
                (None, Life::NeverStarted) => format!("{id} down (never started)"),
                (None, life) => {
                    let (term, entries) = sim.durable_summary(id).map_err(|e| e.to_string())?;
                    let how = if life == Life::Stopped {
                        "stopped"
                    } else {
                        "crashed"
                    };
                    format!("{id} down ({how}; durable: {term}, {entries} entries)")
                }
            };
            lines.push(line);
        }
        for line in lines {
            self.say(line);
        }
        Ok(())
    }

    /// Messages sent so far, per node and kind, with the entries AppendEntries carried.
    fn cmd_messages(&mut self, args: &[&str]) -> Handled {
        let nodes = self.selected(args)?;
        let sim = self.sim()?;
        let sent = sim.messages_sent().cloned().unwrap_or_default();
        let mut lines = Vec::new();
        for node in nodes {
            let kinds: Vec<String> = sent
                .range((node, "")..)
                .take_while(|((from, _), _)| *from == node)
                .map(|((_, kind), (count, entries))| {
                    if *entries > 0 {
                        format!("{kind} {count} ({entries} entries)")
                    } else {
                        format!("{kind} {count}")
                    }
                })
                .collect();
            let text = if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            };
            lines.push(format!("{node} sent {text}"));
        }
        for line in lines {
            self.say(line);
        }
        Ok(())
    }

    fn cmd_leaders(&mut self, args: &[&str]) -> Handled {
        no_args(args, "leaders")?;
        let sim = self.sim()?;
        let text = sim
            .checker()
            .leaders()
            .iter()
            .map(|(term, node)| format!("{term}:{node}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.say(format!("leaders by term: {text}"));
        Ok(())
    }
}

/// The InstallSnapshot chunks among `messages`, as `: snapshot i9 t1 bytes 0..4 of 8; ...`,
/// or nothing. Only chunks are named: their byte ranges are what a reader follows through a
/// snapshot transfer, and other messages keep the plain count.
fn describe_chunks<'a>(messages: impl Iterator<Item = &'a Envelope>) -> String {
    let chunks: Vec<String> = messages
        .filter_map(|envelope| match &envelope.message {
            Message::InstallSnapshot(chunk) => Some(format!(
                "snapshot {} {} bytes {}..{} of {}",
                chunk.meta.last_included_index,
                chunk.meta.last_included_term,
                chunk.offset,
                chunk.offset + chunk.data.len() as u64,
                chunk.total_bytes
            )),
            _ => None,
        })
        .collect();
    if chunks.is_empty() {
        String::new()
    } else {
        format!(": {}", chunks.join("; "))
    }
}

fn describe_membership(membership: &Membership) -> String {
    let list = |set: &std::collections::BTreeSet<NodeId>| {
        let ids: Vec<String> = set.iter().map(ToString::to_string).collect();
        format!("[{}]", ids.join(","))
    };
    let returning = if membership.returning.is_empty() {
        String::new()
    } else {
        format!(" (returning {})", list(&membership.returning))
    };
    format!(
        "voters {} learners {}{returning}",
        list(&membership.voters),
        list(&membership.learners)
    )
}

/// The outcomes of a `write`'s requests: committed (with their index range and terms), then
/// refused, unknown and still pending when there are any.
fn summarize_writes(sim: &Sim, requests: &[raft_core::RequestId]) -> String {
    let (mut committed, mut refused, mut unknown, mut pending) = (0, 0, 0, 0);
    let mut indexes: Option<(LogIndex, LogIndex)> = None;
    let mut terms = BTreeSet::<Term>::new();
    for record in requests.iter().filter_map(|&r| sim.clients.record(r)) {
        match record.outcome {
            ClientOutcome::Committed { index, term } => {
                committed += 1;
                terms.insert(term);
                indexes = Some(indexes.map_or((index, index), |(low, high)| {
                    (low.min(index), high.max(index))
                }));
            }
            ClientOutcome::NotLeader | ClientOutcome::Busy | ClientOutcome::Dropped => {
                refused += 1;
            }
            ClientOutcome::Pending => pending += 1,
            ClientOutcome::Unknown
            | ClientOutcome::Unexpected
            | ClientOutcome::TimedOut
            | ClientOutcome::Read { .. } => unknown += 1,
        }
    }
    let placed = match indexes {
        Some((low, high)) => {
            let terms: Vec<String> = terms.iter().map(ToString::to_string).collect();
            format!(" at {low}..{high} in {}", terms.join(","))
        }
        None => String::new(),
    };
    let mut parts = vec![format!("{committed} committed{placed}")];
    for (count, what) in [
        (refused, "refused (not leader, busy or dropped)"),
        (unknown, "with an unknown outcome"),
        (pending, "pending"),
    ] {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    parts.join(", ")
}

// ---- argument parsing ----

fn one<'a>(args: &[&'a str], usage: &str) -> Result<&'a str, String> {
    match args {
        [only] => Ok(only),
        _ => Err(format!("usage: {usage}")),
    }
}

fn no_args(args: &[&str], usage: &str) -> Handled {
    if args.is_empty() {
        Ok(())
    } else {
        Err(format!("usage: {usage} (no arguments)"))
    }
}

fn link(args: &[&str], usage: &str) -> Result<(NodeId, NodeId), String> {
    match args {
        [from, to] => Ok((parse_node(from)?, parse_node(to)?)),
        _ => Err(format!("usage: {usage}")),
    }
}

fn check_nodes<'a>(sim: &Sim, nodes: impl Iterator<Item = &'a NodeId>) -> Handled {
    for &node in nodes {
        sim.life(node).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn parse_u64(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("expected a non-negative number, got {text:?}"))
}

fn parse_node(text: &str) -> Result<NodeId, String> {
    let id = parse_u64(text.trim_start_matches('n'))?;
    if id == 0 {
        return Err("node ids start at 1".to_owned());
    }
    Ok(NodeId(id))
}

/// A node id, or `leader` for the current leader.
fn parse_target(sim: &Sim, text: &str) -> Result<NodeId, String> {
    if text == "leader" {
        return sim
            .current_leader()
            .ok_or_else(|| "there is no leader".to_owned());
    }
    parse_node(text)
}

/// `250ms`, `2s` or a bare number of milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000)
    } else {
        (text, 1)
    };
    parse_u64(number)?
        .checked_mul(scale)
        .ok_or_else(|| format!("duration {text} is too long"))
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (min, max) = text
        .split_once("..")
        .ok_or_else(|| format!("expected MIN..MAX, got {text:?}"))?;
    let (min, max) = (parse_duration(min)?, parse_duration(max)?);
    if min > max {
        return Err(format!("empty range {text}"));
    }
    Ok((min, max))
}

fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .parse()
        .map_err(|_| format!("expected a probability, got {text:?}"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("probability {p} is not within 0..1"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_an_error_with_a_line_number() {
        let outcome = run_script("cluster 3\nstart 1\nfrobnicate 2\n");
        assert_eq!(
            outcome.error.as_deref(),
            Some("line 3: unknown command \"frobnicate\"")
        );
        let outcome = run_script("start 1\n");
        assert!(outcome.error.is_some_and(|e| e.contains("cluster N")));
        let outcome = run_script("cluster 3\nstart 9\n");
        assert!(outcome
            .error
            .is_some_and(|e| e.starts_with("line 2: no node n9")));
        let outcome = run_script("cluster 3\nloss 2\n");
        assert!(outcome.error.is_some_and(|e| e.contains("not within")));
        let outcome = run_script("cluster 3\nstart 1\nrun until leader within 10ms\n");
        assert!(outcome.error.is_some_and(|e| e.contains("not reached")));
    }

    #[test]
    fn membership_commands_check_their_arguments() {
        let error = |script: &str| run_script(script).error.unwrap_or_default();
        assert!(error("cluster 3 voters 4\n").contains("1 to 3 initial voters"));
        assert!(error("cluster 3 voters 0\n").contains("1 to 3 initial voters"));
        assert!(error("cluster 3 voters\n").contains("usage: cluster"));
        assert!(error("cluster 3 seed 1 color 2\n").contains("usage: cluster"));
        let running = "cluster 3 seed 5 voters 1\nstart 1\nrun until leader\n";
        assert!(error(&format!("{running}add-learner 2 to 1\n")).contains("usage: add-learner"));
        assert!(error(&format!("{running}promote 9 via 1\n")).contains("no node n9"));
        assert!(error(&format!("{running}remove 2 via 3\n")).contains("n3 is not up"));
        let outcome = run_script(&format!(
            "{running}run 50ms\nadd-learner 2 via leader\nadd-learner 3 via 1\nmembers 1\n\
             run 50ms\nremove 1 via 1\nmembers 1\n"
        ));
        assert_eq!(outcome.error, None);
        for expected in [
            "n1 replied to add learner n2: accepted at i2 in t1",
            "n1 replied to add learner n3: change rejected: ChangeInProgress",
            "n1 voters [n1] learners [n2]\n  committed at i1: voters [n1] learners []",
            "n1 replied to add learner n2: committed at i2 in t1",
            "n1 replied to remove n1: change rejected: LastVoter",
            "committed at i2: voters [n1] learners [n2]",
        ] {
            assert!(outcome.transcript.contains(expected), "{expected}");
        }
    }

    #[test]
    fn write_summarizes_instead_of_printing_each_reply() {
        let error = |script: &str| run_script(script).error.unwrap_or_default();
        let running = "cluster 3 seed 1\nstart 1 2 3\ncampaign 1\nrun until leader 1\n";
        assert!(error(&format!("{running}write leader\n")).contains("usage: write"));
        assert!(error(&format!("{running}write leader 0\n")).contains("not 0"));
        assert!(error(&format!("{running}write 9 3\n")).contains("no node n9"));
        let outcome = run_script(&format!(
            "{running}write leader 300\nwrite 2 2\nwrite 1 1 within 0ms\nrun 200ms\ncheck\n"
        ));
        assert_eq!(outcome.error, None);
        // Only the write still pending when its command ended has its reply printed.
        assert_eq!(outcome.transcript.matches("replied to").count(), 1);
        for expected in [
            "n1 took w1..w300: 300 committed at i2..i301 in t1, after ",
            "n2 took w301..w302: 0 committed, 2 refused (not leader, busy or dropped), after 0 ms",
            "n1 took w303..w303: 0 committed, 1 pending, after 0 ms",
            "n1 replied to r303: committed at i303 in t1",
            "history checks passed",
        ] {
            assert!(outcome.transcript.contains(expected), "{expected}");
        }
    }

    #[test]
    fn disk_commands_control_one_node() {
        let outcome = run_script(
            "cluster 3 seed 1\nconfig pre_vote 0\nlatency 1..1\ndisk 1..1\ndisk 3 40..40\n\
             start 1 2 3\nhold-disk 1\ncampaign 1\nrun 50ms\nstatus 1\nrelease-disk 1\n\
             status 1\ndisk 2 5..5\nrun until leader 1 within 1s\nrun until converged\n",
        );
        assert_eq!(outcome.error, None, "{}", outcome.transcript);
        let transcript = &outcome.transcript;
        // n1 waits for its held vote, asks for votes once the write completes, then leads.
        let held = transcript.find("n1 CANDIDATE t1").expect("a candidate");
        let release = transcript.find("> release-disk 1").expect("released");
        let leads = transcript.find("n1 became LEADER in t1").expect("leads");
        assert!(held < release && release < leads, "{transcript}");
        assert!(transcript.contains("n1 completed 1 held writes"));
        let error = |script: &str| run_script(script).error.unwrap_or_default();
        assert!(error("cluster 3\ndisk 9 1..2\n").contains("no node n9"));
        assert!(error("cluster 3\ndisk 1 2 3\n").contains("usage: disk"));
        assert!(error("cluster 3\nstart 1\nhold-disk 7\n").contains("no node n7"));
        assert!(error("cluster 3\nstart 1\ndisk 1..2\n").contains("before the simulation"));
        assert!(error("cluster 3\npaused-ticks sometimes\n").contains("lost or delivered"));
    }

    #[test]
    fn deliver_and_drop_name_snapshot_chunks() {
        let outcome = run_script(
            "cluster 3 seed 1\nconfig snapshot_chunk_bytes_max 3\nstart 1 2 3\ncampaign 1\n\
             run until leader 1\ncrash 3\nwrite leader 20\ncompact leader\nhold 1 3\n\
             restart 3\nrun 60ms\ndrop 1 3\nrun 60ms\ndeliver 1 3\nrelease 1 3\n\
             run until converged\n",
        );
        assert_eq!(outcome.error, None, "{}", outcome.transcript);
        for expected in [
            "dropped 1: snapshot i22 t1 bytes 0..3 of 8",
            "delivered 1, 0 still held: snapshot i22 t1 bytes 0..3 of 8",
        ] {
            assert!(outcome.transcript.contains(expected), "{expected}");
        }
        let error = run_script("cluster 3\nconfig snapshot_chunk_bytes_max 0\n").error;
        assert!(error.is_some_and(|e| e.contains("snapshot_chunk_bytes_max")));
    }

    #[test]
    fn durations_and_ranges() {
        assert_eq!(parse_duration("2s"), Ok(2000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("7"), Ok(7));
        assert!(parse_duration("x").is_err());
        assert_eq!(parse_range("1..5"), Ok((1, 5)));
        assert!(parse_range("5..1").is_err());
    }
}
