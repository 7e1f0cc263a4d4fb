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
