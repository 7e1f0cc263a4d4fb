//! The `step_sequence` fuzz body, shared by the `cargo fuzz` target and `cargo test`: arbitrary
//! bytes become a cluster configuration and a sequence of operations (time passing, proposals,
//! partitions, one-way cuts, crashes, restarts, pauses, compactions, leadership transfers,
//! forced campaigns and membership changes) run in the simulator with every safety checker
//! on. A violation panics with the checker's report.

use raft_core::fuzzing::Bytes;
use raft_core::{MembershipChange, NodeId};

use crate::sim::{Life, Sim, SimConfig};

/// Runs the operations the bytes describe and returns the simulator, so tests can see what the
/// run did; panics on any invariant violation.
pub fn step_sequence(data: &[u8]) -> Sim {
    let mut bytes = Bytes::new(data);
    let nodes = 3 + bytes.below(3);
    // Up to two spare servers start outside the cluster, so additions have someone to add.
    let spares = bytes.below(3);
    let seed = u64::from(bytes.byte()) << 8 | u64::from(bytes.byte());
    let mut config = SimConfig::new(seed, nodes);
    config.voters = nodes - spares;
    config.network.latency_ms_max = 1 + bytes.below(30);
    config.network.loss = f64::from(u8::try_from(bytes.below(4)).unwrap_or(0)) * 0.05;
    config.network.duplicate = f64::from(u8::try_from(bytes.below(3)).unwrap_or(0)) * 0.05;
    config.raft.pre_vote = bytes.flag();
    config.raft.check_quorum = bytes.flag();
    config.raft.snapshot_chunk_bytes_max = 1 + bytes.below(8) as usize;
    config.clients.read_ratio = if bytes.flag() { 0.3 } else { 0.0 };
    config.tick_ms = (0..nodes).map(|_| 5 + bytes.below(15)).collect();
    let mut sim = Sim::new(config);
    let ids: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
    for &id in &ids {
        // A fresh simulator starts every node; failure is impossible here.
        let _ = sim.start(id);
    }
    if bytes.flag() {
        sim.start_clients();
    }
    let mut proposals = 0;
    while !bytes.is_empty() && sim.failure().is_none() {
        let node = ids[usize::try_from(bytes.below(5)).unwrap_or(0) % ids.len()];
        let other = ids[usize::try_from(bytes.below(5)).unwrap_or(0) % ids.len()];
        // Control operations may be refused (a node already down, not the leader, a change
        // already in flight...): that is part of the input space, not a finding.
        match bytes.below(16) {
            0..=3 => {
                let until = sim.now_ms() + 10 * (1 + bytes.below(50));
                sim.run_until_time(until);
            }
            4 => {
                proposals += 1;
                let _ = sim.propose(node, &format!("f{proposals}"));
            }
            5 => sim.network.isolate(node),
            6 => sim.network.cut_one_way(node, other),
            7 => sim.network.heal(),
            8 => match sim.life(node) {
                Ok(Life::Crashed | Life::Stopped) => {
                    let _ = sim.start(node);
                }
                Ok(Life::Paused) => {
                    let _ = sim.resume(node);
                }
                _ => {
                    let _ = if bytes.flag() {
                        sim.crash(node)
                    } else {
                        sim.pause(node)
                    };
                }
            },
            9 => {
                let _ = sim.compact(node);
            }
            10 => {
                let _ = sim.transfer_leadership(node);
            }
            11 => {
                let _ = sim.campaign(node);
            }
            op => {
                let change = match op {
                    12 | 13 => MembershipChange::AddLearner(node),
                    14 => MembershipChange::PromoteLearner(node),
                    _ => MembershipChange::Remove(node),
                };
                // Half through the leader, which can act on it, half through any node, which
                // mostly must refuse.
                let via = if bytes.flag() {
                    other
                } else {
                    sim.current_leader().unwrap_or(other)
                };
                let _ = sim.change_membership(via, change);
            }
        }
    }
    if let Some(failure) = sim.failure() {
        panic!("{failure}");
    }
    sim
}
