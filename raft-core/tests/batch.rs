//! `Input::ProposeBatch`: several commands in one step, each answered as if proposed alone.

mod support;

use raft_core::{EntryPayload, Input, LogIndex, Message, NodeId, Reply, RequestId};
use support::*;

fn batch(first: u64, commands: &[&str]) -> Input {
    Input::ProposeBatch {
        proposals: commands
            .iter()
            .zip(first..)
            .map(|(command, id)| (RequestId(id), command.as_bytes().to_vec()))
            .collect(),
    }
}

#[test]
fn a_batch_shares_one_persist_and_one_append_per_follower() {
    for mut cluster in [Cluster::new(3), Cluster::new(3).with_late_persists(7)] {
        let leader = cluster.elect();
        cluster.settle();
        let node = cluster.nodes.get_mut(&leader).expect("leader");
        let first = node.last_log_index().next();
        let term = node.term();
        let actions = node.step(batch(100, &["a", "b", "c"]));

        let accepted: Vec<(RequestId, Reply)> = (0..3)
            .map(|i| {
                let index = LogIndex(first.0 + i);
                (RequestId(100 + i), Reply::Accepted { index, term })
            })
            .collect();
        assert_eq!(replies(&actions), accepted);

        let persists: Vec<_> = actions
            .iter()
            .filter_map(|action| match action {
                raft_core::Action::Persist(request) => Some(request),
                _ => None,
            })
            .collect();
        assert_eq!(persists.len(), 1, "one persist for the whole batch");
        let splice = persists[0].log.as_ref().expect("the batch is persisted");
        assert_eq!(splice.from, first);
        assert_eq!(splice.entries.len(), 3);

        let appends = sends(&actions);
        assert_eq!(appends.len(), 2, "one AppendEntries per follower");
        for envelope in &appends {
            let Message::AppendEntries(request) = &envelope.message else {
                panic!("expected AppendEntries, got {:?}", envelope.message);
            };
            let commands: Vec<&[u8]> = request
                .entries
                .iter()
                .map(|entry| match &entry.payload {
                    EntryPayload::Command(bytes) => bytes.as_ref(),
                    other => panic!("expected a command, got {other:?}"),
                })
                .collect();
            assert_eq!(commands, [b"a", b"b", b"c"]);
        }
    }
}

#[test]
fn every_command_of_a_batch_commits_in_order() {
    for mut cluster in [Cluster::new(3), Cluster::new(3).with_late_persists(7)] {
        let leader = cluster.elect();
        cluster.settle();
        let first = cluster.nodes[&leader].last_log_index().next();
        cluster.step(leader, batch(200, &["x", "y", "z", "w"]));
        cluster.settle();
        for (offset, request) in (200..204).enumerate() {
            let index = LogIndex(first.0 + offset as u64);
            assert!(
                matches!(
                    cluster.reply_to(RequestId(request)),
                    Some(Reply::Committed { index: committed, .. }) if *committed == index
                ),
                "{request}: {:?}",
                cluster.reply_to(RequestId(request))
            );
        }
        // Followers learn the new commit index from the leader's next heartbeat.
        for _ in 0..10 {
            cluster.tick(leader);
        }
        for id in [NodeId(1), NodeId(2), NodeId(3)] {
            let applied = &cluster.applied[&id];
            let tail: Vec<&EntryPayload> = applied[applied.len() - 4..]
                .iter()
                .map(|entry| &entry.payload)
                .collect();
            let expected: Vec<EntryPayload> = ["x", "y", "z", "w"]
                .iter()
                .map(|c| EntryPayload::Command(c.as_bytes().to_vec().into()))
                .collect();
            assert_eq!(
                tail,
                expected.iter().collect::<Vec<_>>(),
                "{id} applied the batch"
            );
        }
    }
}

#[test]
fn a_follower_refuses_every_command_of_a_batch() {
    for mut cluster in [Cluster::new(3), Cluster::new(3).with_late_persists(7)] {
        let leader = cluster.elect();
        cluster.settle();
        let follower = if leader == NodeId(1) {
            NodeId(2)
        } else {
            NodeId(1)
        };
        let actions = cluster
            .nodes
            .get_mut(&follower)
            .expect("follower")
            .step(batch(300, &["p", "q"]));
        let hint = Some(leader);
        assert_eq!(
            replies(&actions),
            vec![
                (RequestId(300), Reply::NotLeader { leader_hint: hint }),
                (RequestId(301), Reply::NotLeader { leader_hint: hint }),
            ]
        );
        assert!(sends(&actions).is_empty());
        assert_eq!(persist_id(&actions), None);
    }
}

#[test]
fn commands_past_the_uncommitted_limit_are_busy() {
    // The leader's own no-op is uncommitted; allow two more entries.
    let mut config = config(1, 3);
    config.uncommitted_entries_max = 3;
    let mut leader = raft_core::Node::new(config).expect("valid config");
    let _ = make_leader(&mut leader);
    let actions = leader.step(batch(400, &["1", "2", "3"]));
    let replies = replies(&actions);
    assert_eq!(replies.len(), 3);
    assert!(matches!(replies[0].1, Reply::Accepted { .. }));
    assert!(matches!(replies[1].1, Reply::Accepted { .. }));
    assert_eq!(replies[2], (RequestId(402), Reply::Busy));
}
