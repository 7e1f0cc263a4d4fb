//! The client side of the core: proposals and their replies.

mod support;

use raft_core::{AppendResult, Input, LogIndex, Reply, RequestId, Term};
use support::*;

#[test]
fn propose_on_follower_returns_leader_hint() {
    let mut n = node(1, 3);
    let _ = step_durably(&mut n, append(3, 1, 1, (0, 0), vec![], 0));
    let actions = n.step(Input::Propose {
        request_id: RequestId(1),
        command: b"x".to_vec(),
    });
    assert_eq!(
        replies(&actions),
        vec![(
            RequestId(1),
            Reply::NotLeader {
                leader_hint: Some(id(3))
            }
        )]
    );
}

#[test]
fn propose_on_candidate_returns_no_leader() {
    let mut n = node(1, 3);
    let _ = tick_until_candidate(&mut n);
    let actions = n.step(Input::Propose {
        request_id: RequestId(1),
        command: b"x".to_vec(),
    });
    assert_eq!(
        replies(&actions),
        vec![(RequestId(1), Reply::NotLeader { leader_hint: None })]
    );
}

#[test]
fn propose_on_leader_returns_index_and_term_and_replicates_at_once() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let actions = n.step(Input::Propose {
        request_id: RequestId(5),
        command: b"x".to_vec(),
    });
    assert_eq!(
        replies(&actions),
        vec![(
            RequestId(5),
            Reply::Accepted {
                index: LogIndex(2),
                term: Term(1)
            }
        )]
    );
    assert!(persist_id(&actions).is_some());
}

#[test]
fn busy_when_uncommitted_limit_reached() {
    let mut config = config(1, 3);
    config.uncommitted_entries_max = 3;
    let mut n = raft_core::Node::new(config).unwrap();
    let _ = make_leader(&mut n); // the no-op is uncommitted entry 1
    for i in 0..2 {
        let a = n.step(Input::Propose {
            request_id: RequestId(i),
            command: b"x".to_vec(),
        });
        assert!(matches!(replies(&a)[0].1, Reply::Accepted { .. }));
    }
    let a = n.step(Input::Propose {
        request_id: RequestId(9),
        command: b"x".to_vec(),
    });
    assert_eq!(replies(&a), vec![(RequestId(9), Reply::Busy)]);
}

#[test]
fn overwritten_proposal_reported_dropped_once_another_entry_commits_there() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let _ = n.step(Input::Propose {
        request_id: RequestId(7),
        command: b"lost".to_vec(),
    });
    // A leader of term 2 that never saw entry 2 overwrites it. Another server may still hold
    // the overwritten entry and a later leader could commit it, so nothing is said yet.
    let overwritten = step_durably(
        &mut n,
        append(2, 1, 2, (1, 1), vec![entry(2, 2, "other")], 0),
    );
    assert!(replies(&overwritten).is_empty());
    // Once a different entry commits at index 2, the proposal has definitely failed.
    let committed = step_durably(&mut n, append(2, 1, 2, (2, 2), vec![], 2));
    assert_eq!(
        replies(&committed),
        vec![(
            RequestId(7),
            Reply::Dropped {
                index: LogIndex(2),
                term: Term(1)
            }
        )]
    );
}

#[test]
fn overwritten_proposal_that_a_later_leader_commits_is_reported_committed() {
    // The deposed leader's copy of its entry is overwritten, but the entry survived elsewhere
    // and a later leader commits it: the proposal succeeded.
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let _ = n.step(Input::Propose {
        request_id: RequestId(7),
        command: b"survivor".to_vec(),
    });
    let _ = step_durably(
        &mut n,
        append(2, 1, 2, (1, 1), vec![entry(2, 2, "other")], 0),
    );
    let kept = step_durably(
        &mut n,
        append(
            3,
            1,
            3,
            (1, 1),
            vec![entry(2, 1, "survivor"), noop(3, 3)],
            3,
        ),
    );
    assert_eq!(
        replies(&kept),
        vec![(
            RequestId(7),
            Reply::Committed {
                index: LogIndex(2),
                term: Term(1)
            }
        )]
    );
}

#[test]
fn proposal_of_deposed_leader_still_commits_if_new_leader_keeps_it() {
    let mut n = node(1, 3);
    let actions = make_leader(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let proposed = n.step(Input::Propose {
        request_id: RequestId(7),
        command: b"kept".to_vec(),
    });
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&proposed).unwrap(),
    });
    let _ = n.step(append_response(2, 1, 2, AppendResult::StaleTerm));
    // The new leader of term 2 kept entry 2 and commits it with its own no-op at 3.
    let actions = step_durably(&mut n, append(2, 1, 2, (2, 1), vec![noop(3, 2)], 3));
    assert_eq!(
        replies(&actions),
        vec![(
            RequestId(7),
            Reply::Committed {
                index: LogIndex(2),
                term: Term(1)
            }
        )]
    );
}

#[test]
fn proposal_replaced_by_a_later_terms_proposal_at_its_index_is_dropped() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    for (request, command) in [(1, "a"), (2, "b")] {
        let _ = step_durably(
            &mut n,
            Input::Propose {
                request_id: RequestId(request),
                command: command.as_bytes().to_vec(),
            },
        );
    }
    assert_eq!(n.last_log_index(), LogIndex(3));
    // n2 leads term 2 and replaces n1's whole log with one entry.
    let _ = step_durably(&mut n, append(2, 1, 2, (0, 0), vec![entry(1, 2, "x")], 0));
    assert_eq!(n.last_log_index(), LogIndex(1));
    // n1 leads term 3: its no-op takes index 2, and the next proposal index 3, where "b"
    // (term 1) once was. That entry can never commit now: it is answered, not forgotten.
    let _ = make_leader(&mut n);
    assert_eq!(n.term(), Term(3));
    let actions = n.step(Input::Propose {
        request_id: RequestId(3),
        command: b"c".to_vec(),
    });
    let replies = replies(&actions);
    assert!(
        replies.contains(&(
            RequestId(2),
            Reply::Dropped {
                index: LogIndex(3),
                term: Term(1)
            }
        )),
        "{replies:?}"
    );
    assert!(replies.contains(&(
        RequestId(3),
        Reply::Accepted {
            index: LogIndex(3),
            term: Term(3)
        }
    )));
}
