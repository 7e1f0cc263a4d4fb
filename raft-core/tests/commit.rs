//! The commit rule (Figure 2, Figure 8) and applying (exactly once, in order, when durable).

mod support;

use raft_core::{AppendResult, Input, LogIndex, Reply, RequestId, Term};
use support::*;

fn ack(from: u64, term: u64, index: u64) -> Input {
    append_response(
        from,
        1,
        term,
        AppendResult::Success {
            match_index: LogIndex(index),
        },
    )
}

#[test]
fn follower_commit_is_min_of_leader_commit_and_last_new_entry() {
    // The follower holds 5 stale entries beyond what this request covers: its commit index must
    // stop at the last entry the request vouched for, not at its own last index.
    let mut n = node_with_log(1, 3, 1, &[1, 1, 1, 1, 1]);
    let _ = step_durably(&mut n, append(2, 1, 2, (1, 1), vec![entry(2, 1, "e2")], 9));
    assert_eq!(n.commit_index(), LogIndex(2));
    let _ = step_durably(&mut n, append(2, 1, 2, (2, 1), vec![], 9));
    assert_eq!(
        n.commit_index(),
        LogIndex(2),
        "a heartbeat vouches for nothing past prev"
    );
}

#[test]
fn follower_commit_never_decreases() {
    let mut n = node_with_log(1, 3, 1, &[1, 1, 1]);
    let _ = step_durably(&mut n, append(2, 1, 1, (3, 1), vec![], 3));
    assert_eq!(n.commit_index(), LogIndex(3));
    let _ = step_durably(&mut n, append(2, 1, 1, (1, 1), vec![], 1));
    assert_eq!(n.commit_index(), LogIndex(3));
}

#[test]
fn never_commits_previous_term_entry_by_counting_replicas() {
    // Figure 8: the leader of term 4 holds an entry of term 2 at index 2. Even when every
    // follower has it, it must not be committed until an entry of term 4 is.
    let mut n = node_with_log(1, 5, 3, &[1, 2]);
    let actions = make_leader(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    assert_eq!(n.term(), Term(4));
    for peer in 2..=5 {
        let _ = n.step(ack(peer, 4, 2));
    }
    assert_eq!(n.commit_index(), LogIndex::ZERO, "entry 2 is from term 2");
    let _ = n.step(ack(2, 4, 3));
    let _ = n.step(ack(3, 4, 3));
    assert_eq!(
        n.commit_index(),
        LogIndex(3),
        "the term-4 no-op commits 1..=3"
    );
}

#[test]
fn leader_counts_own_match_only_when_durable() {
    let mut n = node(1, 3);
    let actions = make_leader(&mut n);
    let noop_persist = persist_id(&actions).unwrap();
    let _ = n.step(ack(2, 1, 1));
    assert_eq!(
        n.commit_index(),
        LogIndex::ZERO,
        "leader's own copy not durable yet"
    );
    let _ = n.step(Input::PersistDone {
        persist_id: noop_persist,
    });
    assert_eq!(n.commit_index(), LogIndex(1));
}

#[test]
fn leader_commits_with_follower_majority_before_own_write() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let _ = n.step(ack(2, 1, 1));
    let actions = n.step(ack(3, 1, 1));
    assert_eq!(n.commit_index(), LogIndex(1));
    assert!(
        applied(&actions).is_empty(),
        "applies only what it made durable itself"
    );
}

#[test]
fn applies_only_committed_and_durable_entries() {
    let mut n = node(1, 3);
    let first = n.step(append(
        2,
        1,
        1,
        (0, 0),
        vec![entry(1, 1, "a"), entry(2, 1, "b")],
        2,
    ));
    assert_eq!(n.commit_index(), LogIndex(2));
    assert!(applied(&first).is_empty());
    let done = n.step(Input::PersistDone {
        persist_id: persist_id(&first).unwrap(),
    });
    assert_eq!(applied(&done).len(), 2);
    assert_eq!(n.applied_index(), LogIndex(2));
}

#[test]
fn applies_each_entry_once_in_order() {
    let mut n = node(1, 3);
    let mut all = Vec::new();
    all.extend(applied(&step_durably(
        &mut n,
        append(2, 1, 1, (0, 0), vec![entry(1, 1, "a")], 0),
    )));
    all.extend(applied(&step_durably(
        &mut n,
        append(2, 1, 1, (1, 1), vec![entry(2, 1, "b"), entry(3, 1, "c")], 1),
    )));
    all.extend(applied(&step_durably(
        &mut n,
        append(2, 1, 1, (3, 1), vec![], 3),
    )));
    all.extend(applied(&step_durably(
        &mut n,
        append(2, 1, 1, (3, 1), vec![], 3),
    )));
    let indexes: Vec<u64> = all.iter().map(|e| e.index.0).collect();
    assert_eq!(indexes, vec![1, 2, 3]);
}

#[test]
fn proposal_committed_reported_once_after_its_apply() {
    let mut n = node(1, 3);
    let actions = make_leader(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let proposed = n.step(Input::Propose {
        request_id: RequestId(9),
        command: b"x".to_vec(),
    });
    assert_eq!(
        replies(&proposed),
        vec![(
            RequestId(9),
            Reply::Accepted {
                index: LogIndex(2),
                term: Term(1)
            }
        )]
    );
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&proposed).unwrap(),
    });
    let committed = n.step(ack(2, 1, 2));
    let position_apply = committed
        .iter()
        .position(|a| matches!(a, raft_core::Action::Apply { .. }))
        .expect("applied");
    let position_reply = committed
        .iter()
        .position(|a| matches!(a, raft_core::Action::Reply { .. }))
        .expect("replied");
    assert!(position_apply < position_reply);
    assert_eq!(
        replies(&committed),
        vec![(
            RequestId(9),
            Reply::Committed {
                index: LogIndex(2),
                term: Term(1)
            }
        )]
    );
    let again = n.step(ack(3, 1, 2));
    assert!(replies(&again).is_empty());
}
