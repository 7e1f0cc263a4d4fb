//! The fault mechanics the exploration's profiles use: crashes timed on a node's writes, crashes
//! of new leaders, and a paused node's clock (which lease reads depend on).

use raft_core::{LogIndex, NodeId};
use raft_sim::scenario::run_script;
use raft_sim::sim::{CrashTiming, LeaderCrash, Life, Sim, SimConfig};

fn cluster(config: SimConfig) -> (Sim, NodeId) {
    let mut sim = Sim::new(config);
    for id in sim.node_ids() {
        sim.start(id).expect("a fresh node starts");
    }
    assert!(sim.run_until(3_000, |s| s.current_leader().is_some()));
    let leader = sim.current_leader().expect("a leader");
    sim.run_until_time(sim.now_ms() + 200);
    (sim, leader)
}

fn quiet(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(seed, 3);
    config.clients.clients = 0;
    config
}

#[test]
fn a_crash_in_the_middle_of_a_step_loses_the_write_it_issued() {
    let (mut sim, leader) = cluster(quiet(5));
    let before = sim.durable_summary(leader).expect("a node").1;
    sim.crash_after_next_persist(leader, CrashTiming::MidStep, None)
        .expect("a node");
    sim.propose(leader, "lost").expect("up");
    assert_eq!(sim.life(leader), Ok(Life::Crashed));
    assert_eq!(sim.durable_summary(leader).expect("a node").1, before);
    assert_eq!(sim.pending_writes(leader), Ok(0));
    sim.run_until_time(sim.now_ms() + 1_000);
    assert_eq!(sim.failure(), None);
}

#[test]
fn a_crash_after_a_persist_waits_its_delay() {
    let mut config = quiet(5);
    config.disk.latency_ms_min = 50;
    config.disk.latency_ms_max = 50;
    let (mut sim, leader) = cluster(config);
    sim.crash_after_next_persist(leader, CrashTiming::After(10), Some(500))
        .expect("a node");
    sim.propose(leader, "pending").expect("up");
    assert_eq!(sim.life(leader), Ok(Life::Running));
    assert_eq!(sim.pending_writes(leader), Ok(1));
    sim.run_until_time(sim.now_ms() + 11);
    assert_eq!(
        sim.life(leader),
        Ok(Life::Crashed),
        "crashed with its write pending"
    );
    sim.run_until_time(sim.now_ms() + 500);
    assert_eq!(sim.life(leader), Ok(Life::Running), "and restarted");
    assert_eq!(sim.failure(), None);
}

#[test]
fn new_leaders_crash_when_the_profile_says_so() {
    let mut config = quiet(9);
    config.leader_crash = Some(LeaderCrash {
        probability: 1.0,
        mid_step: 1.0,
        delay_ms_max: 0,
        restart_ms_max: 100_000,
    });
    let mut sim = Sim::new(config);
    for id in sim.node_ids() {
        sim.start(id).expect("a fresh node starts");
    }
    sim.run_until_time(3_000);
    let leaders = sim.checker().leaders().clone();
    assert!(!leaders.is_empty());
    for node in leaders.values() {
        assert_eq!(sim.life(*node), Ok(Life::Crashed), "{node} took office");
    }
    sim.cancel_timed_crashes();
    assert_eq!(sim.failure(), None);
}

#[test]
fn a_resumed_node_gets_the_ticks_it_missed_when_asked() {
    for delivered in [false, true] {
        let mut config = quiet(5);
        config.resume_with_missed_ticks = delivered;
        let (mut sim, leader) = cluster(config);
        let follower = sim
            .node_ids()
            .into_iter()
            .find(|&id| id != leader)
            .expect("a follower");
        sim.collect_notes();
        sim.pause(follower).expect("running");
        sim.run_until_time(sim.now_ms() + 2_000);
        sim.resume(follower).expect("paused");
        // Its queued heartbeats alone keep it following; the missed ticks, stepped first, fire
        // its election timer: it asks for pre-votes (pre-vote is on) before it hears them.
        let pre_votes = sim
            .messages_sent()
            .and_then(|sent| sent.get(&(follower, "PreVote")))
            .map_or(0, |&(messages, _)| messages);
        assert_eq!(pre_votes > 0, delivered, "delivered: {delivered}");
        let node = sim.node(follower).expect("up");
        assert_eq!(
            node.leader_id(),
            Some(leader),
            "it follows its leader again"
        );
        assert!(node.commit_index() >= LogIndex(1));
    }
}

/// The lease is measured in ticks: a leader frozen while cut off that does not get the ticks it
/// missed believes its lease still holds and serves a stale read (`lease-reads-pause.scn` runs
/// with them delivered, and refuses the read).
#[test]
fn a_frozen_leader_without_its_missed_ticks_serves_a_stale_read() {
    let path = format!(
        "{}/scenarios/lease-reads-pause.scn",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("the scenario is readable");
    assert_eq!(run_script(&text).error, None);
    let lost = text.replace("paused-ticks delivered", "paused-ticks lost");
    assert_ne!(lost, text);
    let error = run_script(&lost).error.unwrap_or_default();
    assert!(
        error.contains("invariant read_covers_commit violated"),
        "{error}"
    );
}
