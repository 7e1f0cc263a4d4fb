//! Snapshots and log compaction (Raft §7): compaction, chunked InstallSnapshot, recovery.

mod support;

use raft_core::{
    Action, DurableState, HardState, Input, InstallSnapshot, LogIndex, Message, Node, NodeId,
    PersistId, PersistRequest, Reply, RequestId, Snapshot, SnapshotMeta, Term,
};
use support::*;

fn snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included_index: LogIndex(index),
            last_included_term: Term(term),
            membership: raft_core::Membership::new((1..=3).map(NodeId)),
        },
        data: data.to_vec().into(),
    }
}

#[test]
fn compact_drops_log_prefix_and_persists_snapshot() {
    let mut n = node(1, 3);
    let _ = step_durably(
        &mut n,
        append(
            2,
            1,
            1,
            (0, 0),
            (1..=5).map(|i| entry(i, 1, "x")).collect(),
            4,
        ),
    );
    assert_eq!(n.applied_index(), LogIndex(4));
    let actions = n.step(Input::Compact {
        index: LogIndex(3),
        data: b"state@3".to_vec(),
    });
    let Some(Action::Persist(request)) = actions.first() else {
        panic!("compaction is persisted: {actions:?}");
    };
    assert_eq!(request.snapshot, Some(snapshot(3, 1, b"state@3")));
    assert!(n.entry(LogIndex(3)).is_none());
    assert_eq!(n.entry(LogIndex(4)).unwrap().index, LogIndex(4));
    assert_eq!(n.last_log_index(), LogIndex(5));
}

#[test]
fn compact_beyond_applied_or_behind_snapshot_is_ignored() {
    let mut n = node(1, 3);
    let _ = step_durably(
        &mut n,
        append(
            2,
            1,
            1,
            (0, 0),
            (1..=5).map(|i| entry(i, 1, "x")).collect(),
            2,
        ),
    );
    assert!(n
        .step(Input::Compact {
            index: LogIndex(4),
            data: vec![]
        })
        .is_empty());
    let _ = n.step(Input::Compact {
        index: LogIndex(2),
        data: vec![],
    });
    assert!(n
        .step(Input::Compact {
            index: LogIndex(1),
            data: vec![]
        })
        .is_empty());
}

#[test]
fn durable_state_keeps_suffix_only_when_it_matches_the_snapshot() {
    let mut durable = DurableState {
        hard_state: HardState::default(),
        snapshot: None,
        entries: (1..=5).map(|i| entry(i, 1, "x")).collect(),
    };
    let request = |snapshot| PersistRequest {
        persist_id: PersistId(1),
        hard_state: None,
        snapshot: Some(snapshot),
        log: None,
    };
    durable.apply(&request(snapshot(3, 1, b"a")));
    assert_eq!(durable.first_index(), LogIndex(4));
    assert_eq!(durable.entries.len(), 2);
    durable.apply(&request(snapshot(4, 2, b"b")));
    assert!(durable.entries.is_empty(), "entry 4 has term 1, not 2");
    assert_eq!(durable.first_index(), LogIndex(5));
}

#[test]
fn restore_from_snapshot_and_suffix() {
    let durable = DurableState {
        hard_state: HardState {
            current_term: Term(2),
            voted_for: None,
        },
        snapshot: Some(snapshot(10, 2, b"s")),
        entries: vec![entry(11, 2, "a"), entry(12, 2, "b")],
    };
    let n = Node::restore(config(1, 3), durable.clone()).unwrap();
    assert_eq!(n.applied_index(), LogIndex(10));
    assert_eq!(n.commit_index(), LogIndex(10));
    assert_eq!(n.last_log_index(), LogIndex(12));
    let mut gap = durable;
    gap.entries.remove(0);
    assert!(Node::restore(config(1, 3), gap).is_err());
}

#[test]
fn follower_acknowledges_append_that_starts_inside_its_snapshot() {
    let durable = DurableState {
        hard_state: HardState {
            current_term: Term(2),
            voted_for: None,
        },
        snapshot: Some(snapshot(10, 2, b"s")),
        entries: vec![],
    };
    let mut n = Node::restore(config(1, 3), durable).unwrap();
    let entries = (9..=12).map(|i| entry(i, 2, "x")).collect();
    let actions = step_durably(&mut n, append(2, 1, 2, (8, 2), entries, 12));
    assert!(matches!(
        &sends(&actions)[0].message,
        Message::AppendEntriesResponse(r)
            if r.result == raft_core::AppendResult::Success { match_index: LogIndex(12) }
    ));
    assert_eq!(n.last_log_index(), LogIndex(12));
    assert_eq!(n.applied_index(), LogIndex(12));
}

fn chunk(meta: SnapshotMeta, data: &[u8], offset: u64, len: usize, total: u64) -> Input {
    Input::Receive(envelope(
        2,
        1,
        3,
        Message::InstallSnapshot(InstallSnapshot {
            meta,
            total_bytes: total,
            offset,
            data: data[offset as usize..offset as usize + len].to_vec(),
        }),
    ))
}

#[test]
fn follower_installs_snapshot_from_chunks_and_withholds_the_ack_until_durable() {
    let mut n = node_with_log(1, 3, 2, &[1, 1, 2, 2]);
    let _ = n.step(Input::Propose {
        request_id: RequestId(1),
        command: vec![],
    });
    let data = b"0123456789";
    let meta = SnapshotMeta {
        last_included_index: LogIndex(20),
        last_included_term: Term(3),
        membership: raft_core::Membership::new((1..=3).map(NodeId)),
    };
    let first = step_durably(&mut n, chunk(meta.clone(), data, 0, 4, 10));
    assert!(matches!(
        &sends(&first)[0].message,
        Message::InstallSnapshotResponse(r) if r.received_bytes == 4 && !r.installed
    ));
    // A duplicate of the first chunk changes nothing.
    let again = step_durably(&mut n, chunk(meta.clone(), data, 0, 4, 10));
    assert!(matches!(
        &sends(&again)[0].message,
        Message::InstallSnapshotResponse(r) if r.received_bytes == 4
    ));
    let last = n.step(chunk(meta.clone(), data, 4, 6, 10));
    assert!(
        sends(&last).is_empty(),
        "installed is only said once durable"
    );
    let applied: Vec<_> = last
        .iter()
        .filter_map(|a| match a {
            Action::ApplySnapshot { snapshot } => Some(snapshot.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(applied, vec![snapshot(20, 3, data)]);
    assert_eq!(n.applied_index(), LogIndex(20));
    assert_eq!(n.last_log_index(), LogIndex(20));
    let done = n.step(Input::PersistDone {
        persist_id: persist_id(&last).unwrap(),
    });
    assert!(matches!(
        &sends(&done)[0].message,
        Message::InstallSnapshotResponse(r) if r.installed
    ));
}

/// A three-node cluster whose leader committed `writes` entries while one follower was cut
/// off (still cut off on return): (cluster, leader, that follower).
fn follower_cut_off_for(
    writes: usize,
    make_config: fn(u64, u64) -> raft_core::Config,
) -> (Cluster, NodeId, NodeId) {
    let mut c = Cluster::with_config(3, make_config);
    let leader = c.elect();
    let lagging = NodeId(if leader.0 == 3 { 2 } else { 3 });
    c.isolate(lagging);
    for i in 0..writes {
        let _ = c.propose(leader, &format!("w{i}"));
    }
    c.tick_all(2);
    (c, leader, lagging)
}

#[test]
fn lagging_follower_restored_from_a_chunked_snapshot_after_losing_10000_entries() {
    let (mut c, leader, lagging) = follower_cut_off_for(10_000, |id, n| {
        let mut config = production_config(id, n);
        config.snapshot_chunk_bytes_max = 4096;
        config
    });
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        if id != lagging {
            c.compact(id);
        }
    }
    c.heal();
    c.tick_all(20);
    c.check_safety();
    assert_eq!(c.commands(lagging).len(), 10_000);
    let chunks = c.trace.matches("InstallSnapshot through").count();
    assert!(chunks > 10, "sent in {chunks} chunks");
    // The restored follower keeps replicating normally afterwards.
    let _ = c.propose(leader, "after");
    c.tick_all(4);
    assert_eq!(
        c.commands(lagging).last().map(String::as_str),
        Some("after")
    );
}

#[test]
fn restarted_node_recovers_from_its_snapshot() {
    for mut c in [
        Cluster::production(3),
        Cluster::production(3).with_late_persists(7),
    ] {
        let leader = c.elect();
        for i in 0..50 {
            let _ = c.propose(leader, &format!("w{i}"));
        }
        c.tick_all(3);
        let follower = NodeId(if leader.0 == 1 { 2 } else { 1 });
        c.compact(follower);
        // The snapshot must be durable before the crash for the restart to find it.
        c.settle();
        c.crash(follower);
        c.restart(follower);
        assert_eq!(c.commands(follower).len(), 50);
        c.tick_all(5);
        c.check_safety();
    }
}

#[test]
fn proposal_covered_by_an_installed_snapshot_is_reported_unknown() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let _ = n.step(Input::Propose {
        request_id: RequestId(5),
        command: b"maybe".to_vec(),
    });
    let meta = SnapshotMeta {
        last_included_index: LogIndex(4),
        last_included_term: Term(3),
        membership: raft_core::Membership::new((1..=3).map(NodeId)),
    };
    let actions = step_durably(&mut n, chunk(meta.clone(), b"xyz", 0, 3, 3));
    assert_eq!(
        replies(&actions),
        vec![(
            RequestId(5),
            Reply::Unknown {
                index: LogIndex(2),
                term: Term(1)
            }
        )]
    );
}

#[test]
fn snapshot_claiming_a_term_above_the_senders_is_ignored() {
    // Found by fuzzing: a forged snapshot ending in a future term must not enter the log.
    let mut n = node(1, 3);
    let meta = SnapshotMeta {
        last_included_index: LogIndex(3),
        last_included_term: Term(9),
        membership: raft_core::Membership::new((1..=3).map(NodeId)),
    };
    let actions = step_durably(&mut n, chunk(meta, b"abc", 0, 3, 3));
    assert!(sends(&actions).is_empty());
    assert_eq!(n.last_log_index(), LogIndex(0));
    assert_eq!(n.status().stats.messages_ignored, 1);
}

#[test]
fn append_contradicting_the_snapshot_boundary_is_ignored_and_counted() {
    let durable = DurableState {
        hard_state: HardState {
            current_term: Term(2),
            voted_for: None,
        },
        snapshot: Some(snapshot(10, 2, b"s")),
        entries: vec![],
    };
    let mut n = Node::restore(config(1, 3), durable).unwrap();
    // Entry 10 is committed in the snapshot with term 2; a request claiming term 1 there is forged.
    let entries = (9..=11).map(|i| entry(i, 1, "x")).collect();
    let actions = step_durably(&mut n, append(2, 1, 2, (8, 1), entries, 11));
    assert!(sends(&actions).is_empty());
    assert_eq!(n.last_log_index(), LogIndex(10));
    assert_eq!(n.status().stats.messages_ignored, 1);
}

#[test]
fn duplicate_snapshot_answer_does_not_duplicate_the_next_chunk() {
    let (mut c, leader, lagging) = follower_cut_off_for(10, |id, n| {
        let mut config = production_config(id, n);
        config.snapshot_chunk_bytes_max = 4;
        config
    });
    c.compact(leader);
    let chunk_offsets = |actions: &[Action]| -> Vec<u64> {
        sends(actions)
            .into_iter()
            .filter_map(|envelope| match envelope.message {
                Message::InstallSnapshot(request) if envelope.to == lagging => Some(request.offset),
                _ => None,
            })
            .collect()
    };
    let node = c.nodes.get_mut(&leader).unwrap();
    let term = node.term().0;
    let mut first = Vec::new();
    for _ in 0..20 {
        first = chunk_offsets(&node.step(Input::Tick));
        if !first.is_empty() {
            break;
        }
    }
    assert_eq!(first, vec![0], "the snapshot starts at byte 0");
    let snapshot_index = node.commit_index();
    let answer = |received_bytes| {
        Input::Receive(envelope(
            lagging.0,
            leader.0,
            term,
            Message::InstallSnapshotResponse(raft_core::InstallSnapshotResponse {
                last_included_index: snapshot_index,
                received_bytes,
                installed: false,
            }),
        ))
    };
    assert_eq!(chunk_offsets(&node.step(answer(4))), vec![4]);
    // The same answer again (the follower got chunk 0 twice): chunk 4 is already in flight.
    assert_eq!(chunk_offsets(&node.step(answer(4))), Vec::<u64>::new());
    assert_eq!(chunk_offsets(&node.step(answer(8))), vec![8]);
}
