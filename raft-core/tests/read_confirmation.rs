//! What confirms a read (Raft thesis §6.4, §6.4.1): only answers to requests of the leader's own
//! term. A follower answers a request of an older term with `StaleTerm` in its own term, which
//! may be the leader's current one, echoing the old request's read round. That request may come
//! from an earlier incarnation of the leader, whose round numbers the restarted leader reuses, so
//! the echo says nothing about the current rounds: counted, it would confirm any read, and keep
//! any lease alive, without a quorum.

mod support;

use raft_core::{
    AppendEntriesResponse, AppendResult, Input, LogIndex, Message, Node, Reply, RequestId,
};
use support::*;

/// A leader of three in term 1 whose no-op is committed.
fn leader(lease_reads: bool) -> Node {
    let mut config = production_config(1, 3);
    config.lease_reads = lease_reads;
    let mut n = Node::new(config).unwrap();
    let actions = make_leader(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let _ = n.step(answer(
        2,
        0,
        AppendResult::Success {
            match_index: LogIndex(1),
        },
    ));
    assert_eq!(n.commit_index(), LogIndex(1));
    n
}

/// An answer from `from`, in term 1, echoing `round`.
fn answer(from: u64, round: u64, result: AppendResult) -> Input {
    Input::Receive(envelope(
        from,
        1,
        1,
        Message::AppendEntriesResponse(AppendEntriesResponse {
            read_round: round,
            result,
        }),
    ))
}

fn ready(actions: &[raft_core::Action]) -> bool {
    replies(actions)
        .iter()
        .any(|(_, reply)| matches!(reply, Reply::ReadReady { .. }))
}

#[test]
fn a_stale_term_answer_confirms_no_read_round() {
    let mut n = leader(false);
    let read = n.step(Input::Read {
        request_id: RequestId(1),
    });
    assert!(!ready(&read), "the read waits for its round");
    // n3 answers a request of an older term that carried a far higher round.
    let stale = n.step(answer(3, 99, AppendResult::StaleTerm));
    assert!(!ready(&stale), "a stale answer confirmed the read");
    let confirmed = n.step(answer(
        3,
        1,
        AppendResult::Success {
            match_index: LogIndex(1),
        },
    ));
    assert_eq!(
        replies(&confirmed),
        vec![(RequestId(1), Reply::ReadReady { index: LogIndex(1) })]
    );
}

#[test]
fn a_stale_term_answer_renews_no_lease() {
    let mut n = leader(true);
    // Without an answer to any round of this term there is no lease, even after a stale echo.
    let _ = n.step(answer(2, 99, AppendResult::StaleTerm));
    let _ = n.step(answer(3, 99, AppendResult::StaleTerm));
    let read = n.step(Input::Read {
        request_id: RequestId(1),
    });
    assert!(!ready(&read), "a stale answer granted a lease");
    assert!(!sends(&read).is_empty(), "the read needs a ReadIndex round");
}

/// Thesis §6.4: "the leader can batch": reads that arrive together are all released by one
/// heartbeat round, and each gets its own answer, in order.
#[test]
fn reads_of_one_batch_share_one_confirmation_round() {
    let mut n = leader(false);
    let ids: Vec<RequestId> = (1..=10).map(RequestId).collect();
    let registered = n.step(Input::ReadBatch {
        request_ids: ids.clone(),
    });
    let heartbeats: Vec<_> = sends(&registered)
        .into_iter()
        .filter(|e| matches!(&e.message, Message::AppendEntries(_)))
        .collect();
    assert_eq!(
        heartbeats.len(),
        2,
        "one heartbeat per follower for the batch"
    );
    assert!(heartbeats
        .iter()
        .all(|e| matches!(&e.message, Message::AppendEntries(a) if a.read_round == 1)));
    assert!(!ready(&registered), "the reads wait for their round");
    let confirmed = n.step(answer(
        3,
        1,
        AppendResult::Success {
            match_index: LogIndex(1),
        },
    ));
    let expected: Vec<_> = ids
        .iter()
        .map(|&id| (id, Reply::ReadReady { index: LogIndex(1) }))
        .collect();
    assert_eq!(replies(&confirmed), expected);
}

/// A batch is answered read by read: past the pending-read bound the rest are `Busy`, and a
/// node that is not the leader sends every read of the batch to the leader it knows.
#[test]
fn a_read_batch_answers_each_read_as_if_asked_alone() {
    let mut n = leader(false);
    let max = production_config(1, 3).pending_reads_max as u64;
    let registered = n.step(Input::ReadBatch {
        request_ids: (1..=max + 2).map(RequestId).collect(),
    });
    assert_eq!(
        replies(&registered),
        vec![
            (RequestId(max + 1), Reply::Busy),
            (RequestId(max + 2), Reply::Busy)
        ]
    );
    let mut follower = Node::new(production_config(2, 3)).unwrap();
    let refused = follower.step(Input::ReadBatch {
        request_ids: vec![RequestId(1), RequestId(2)],
    });
    assert_eq!(
        replies(&refused),
        vec![
            (RequestId(1), Reply::NotLeader { leader_hint: None }),
            (RequestId(2), Reply::NotLeader { leader_hint: None })
        ]
    );
}
