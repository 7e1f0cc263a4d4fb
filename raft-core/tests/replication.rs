//! Figure 2 AppendEntries rules (Raft §5.3) and the leader's replication, one test per rule.

mod support;

use raft_core::{
    Action, AppendResult, ConflictHint, EntryPayload, Input, LogIndex, Message, Role, Term,
};
use support::*;

fn only_response(actions: &[Action]) -> AppendResult {
    let sent = sends(actions);
    assert_eq!(sent.len(), 1, "{actions:?}");
    match &sent[0].message {
        Message::AppendEntriesResponse(response) => response.result.clone(),
        other => panic!("expected an append response, got {other:?}"),
    }
}

/// A leader of term 1 in a 3-node cluster whose no-op n2 has acknowledged, so it streams
/// (pipelines) to n2.
fn leader_streaming_to_n2() -> raft_core::Node {
    leader_streaming_to_n2_with(config(1, 3))
}

fn leader_streaming_to_n2_with(config: raft_core::Config) -> raft_core::Node {
    let mut n = raft_core::Node::new(config).expect("valid test config");
    let _ = make_leader(&mut n);
    let _ = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(1),
        },
    ));
    n
}

#[test]
fn leader_appends_an_entry_of_its_term_on_election() {
    // Raft §5.4.2, §8: a no-op, or, while incarnations are missing from the membership, a
    // membership entry recording them that changes no quorum (see `incarnation.rs`).
    let mut n = node(1, 3);
    let actions = make_leader(&mut n);
    assert_eq!(n.last_log_index(), LogIndex(1));
    let first = n.entry(LogIndex(1)).unwrap();
    assert_eq!(first.term, n.term());
    let EntryPayload::Membership(recorded) = &first.payload else {
        panic!("a fresh cluster records incarnations first: {first:?}");
    };
    assert_eq!(recorded.voters, n.config().voters);
    assert!(recorded.learners.is_empty());
    // Its own incarnation, and node 2's, whose vote elected it (node 3 was not heard yet).
    assert_eq!(
        recorded.incarnations.keys().copied().collect::<Vec<_>>(),
        vec![raft_core::NodeId(1), raft_core::NodeId(2)]
    );
    let appends = sends(&actions);
    assert_eq!(appends.len(), 2);
    for envelope in appends {
        let Message::AppendEntries(request) = envelope.message else {
            panic!("expected AppendEntries");
        };
        assert_eq!(request.entries.len(), 1);
    }
}

#[test]
fn rejects_append_when_prev_log_missing_with_last_index_hint() {
    // An empty request (a probe): one with entries would be held for the ones before it
    // (`tests/reordering.rs`).
    let mut n = node_with_log(1, 3, 2, &[1, 1]);
    let actions = step_durably(&mut n, append(2, 1, 2, (5, 2), vec![], 0));
    assert_eq!(
        only_response(&actions),
        AppendResult::Reject {
            rejected_prev_index: LogIndex(5),
            hint: ConflictHint {
                conflict_term: None,
                first_index: LogIndex(3),
            },
        }
    );
    assert_eq!(n.last_log_index(), LogIndex(2));
}

#[test]
fn rejects_append_on_prev_term_mismatch_with_conflict_term_hint() {
    let mut n = node_with_log(1, 3, 3, &[1, 2, 2, 2]);
    let actions = step_durably(&mut n, append(2, 1, 3, (4, 3), vec![], 0));
    assert_eq!(
        only_response(&actions),
        AppendResult::Reject {
            rejected_prev_index: LogIndex(4),
            hint: ConflictHint {
                conflict_term: Some(Term(2)),
                first_index: LogIndex(2),
            },
        }
    );
}

#[test]
fn truncates_conflicting_suffix_and_appends() {
    let mut n = node_with_log(1, 3, 3, &[1, 2, 2]);
    let actions = step_durably(
        &mut n,
        append(2, 1, 3, (1, 1), vec![entry(2, 3, "a"), entry(3, 3, "b")], 0),
    );
    assert_eq!(
        only_response(&actions),
        AppendResult::Success {
            match_index: LogIndex(3)
        }
    );
    assert_eq!(n.entry(LogIndex(2)).unwrap().term, Term(3));
    let Action::Persist(request) = &actions[0] else {
        panic!("truncation persisted first");
    };
    let splice = request.log.as_ref().expect("log splice");
    assert_eq!(splice.from, LogIndex(2));
    assert_eq!(splice.entries.len(), 2);
}

#[test]
fn ignores_duplicate_append_without_truncating() {
    let mut n = node_with_log(1, 3, 1, &[1, 1, 1, 1]);
    // A delayed copy of an earlier request covering only entry 2 must not cut entries 3 and 4.
    let actions = step_durably(&mut n, append(2, 1, 1, (1, 1), vec![entry(2, 1, "e2")], 0));
    assert_eq!(
        only_response(&actions),
        AppendResult::Success {
            match_index: LogIndex(2)
        }
    );
    assert_eq!(n.last_log_index(), LogIndex(4));
    assert!(
        persist_id(&actions).is_none(),
        "nothing changed, nothing to persist"
    );
}

#[test]
fn append_ack_withheld_until_persisted() {
    let mut n = node(1, 3);
    let actions = n.step(append(2, 1, 1, (0, 0), vec![entry(1, 1, "a")], 0));
    assert!(
        sends(&actions).is_empty(),
        "ack sent before the entry was durable"
    );
    let released = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    assert_eq!(
        only_response(&released),
        AppendResult::Success {
            match_index: LogIndex(1)
        }
    );
}

#[test]
fn heartbeat_ack_waits_for_earlier_pending_persist() {
    let mut n = node(1, 3);
    let first = n.step(append(2, 1, 1, (0, 0), vec![entry(1, 1, "a")], 0));
    // A heartbeat arriving while entry 1 is still being written must not certify it early.
    let heartbeat = n.step(append(2, 1, 1, (1, 1), vec![], 0));
    assert!(sends(&heartbeat).is_empty());
    let released = n.step(Input::PersistDone {
        persist_id: persist_id(&first).unwrap(),
    });
    assert_eq!(sends(&released).len(), 2);
}

#[test]
fn append_entries_carries_prev_entry_term_not_leader_term() {
    // The leader of term 3 holds entries of terms 1 and 2; its appends name their terms.
    let mut n = node_with_log(1, 3, 2, &[1, 2]);
    let _ = make_leader(&mut n);
    assert_eq!(n.term(), Term(3));
    let _ = n.step(append_response(
        2,
        1,
        3,
        AppendResult::Reject {
            rejected_prev_index: LogIndex(2),
            hint: ConflictHint {
                conflict_term: None,
                first_index: LogIndex(2),
            },
        },
    ));
    let actions = n.step(Input::Tick);
    let actions = [actions, n.step(Input::Tick)].concat();
    let to_two: Vec<_> = sends(&actions)
        .into_iter()
        .filter(|e| e.to == id(2))
        .collect();
    let Message::AppendEntries(request) = &to_two[0].message else {
        panic!("expected AppendEntries");
    };
    assert_eq!(request.prev_log_index, LogIndex(1));
    assert_eq!(request.prev_log_term, Term(1));
}

#[test]
fn leader_backs_up_next_index_by_whole_term_using_hint() {
    // Leader log terms [1,1,1,4,4,4]; follower has [1,1,1,2,2,2,2,2] (term 2 unknown to leader).
    let mut n = node_with_log(1, 3, 4, &[1, 1, 1, 4, 4, 4]);
    let _ = make_leader(&mut n); // term 5, noop at 7
    let actions = n.step(append_response(
        2,
        1,
        5,
        AppendResult::Reject {
            rejected_prev_index: LogIndex(6),
            hint: ConflictHint {
                conflict_term: Some(Term(2)),
                first_index: LogIndex(4),
            },
        },
    ));
    let Message::AppendEntries(request) = &sends(&actions)[0].message else {
        panic!("expected a retry");
    };
    assert_eq!(
        request.prev_log_index,
        LogIndex(3),
        "skips the whole term-2 run"
    );

    // When the follower's conflicting term exists on the leader, resume after its last entry.
    let mut n = node_with_log(1, 3, 4, &[1, 1, 2, 2, 4, 4]);
    let _ = make_leader(&mut n);
    let actions = n.step(append_response(
        2,
        1,
        5,
        AppendResult::Reject {
            rejected_prev_index: LogIndex(6),
            hint: ConflictHint {
                conflict_term: Some(Term(2)),
                first_index: LogIndex(3),
            },
        },
    ));
    let Message::AppendEntries(request) = &sends(&actions)[0].message else {
        panic!("expected a retry");
    };
    assert_eq!(request.prev_log_index, LogIndex(4));
}

#[test]
fn stale_reject_does_not_move_next_index_back() {
    let mut n = leader_streaming_to_n2();
    let actions = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Reject {
            rejected_prev_index: LogIndex(0),
            hint: ConflictHint {
                conflict_term: None,
                first_index: LogIndex(1),
            },
        },
    ));
    assert!(sends(&actions).is_empty());
    assert_eq!(n.match_index(id(2)), Some(LogIndex(1)));
}

#[test]
fn leader_pipelines_up_to_inflight_limit() {
    let mut config = config(1, 3);
    config.inflight_appends_max = 3;
    let mut n = raft_core::Node::new(config).unwrap();
    let _ = make_leader(&mut n);
    // Move follower 2 into streaming mode.
    let _ = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(1),
        },
    ));
    let mut to_two = 0;
    for i in 0..10 {
        let actions = n.step(Input::Propose {
            request_id: raft_core::RequestId(i),
            command: b"x".to_vec(),
        });
        to_two += sends(&actions).iter().filter(|e| e.to == id(2)).count();
    }
    assert_eq!(to_two, 3, "at most 3 appends in flight");
    // One ack frees the window: the rest goes out batched.
    let actions = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(4),
        },
    ));
    let batch = sends(&actions);
    let Message::AppendEntries(request) = &batch[0].message else {
        panic!("expected an append");
    };
    assert_eq!(request.prev_log_index, LogIndex(4));
    assert_eq!(
        request.entries.len(),
        7,
        "queued proposals batched in one message"
    );
}

#[test]
fn append_respects_byte_limit() {
    let mut config = config(1, 3);
    config.append_bytes_max = 300;
    let mut n = raft_core::Node::new(config).unwrap();
    let _ = make_leader(&mut n);
    for i in 0..10 {
        let _ = n.step(Input::Propose {
            request_id: raft_core::RequestId(i),
            command: vec![7; 100],
        });
    }
    // Follower 2 is still probing: a heartbeat resends from next_index within the byte budget.
    let _ = n.step(Input::Tick);
    let actions = n.step(Input::Tick);
    let Message::AppendEntries(request) = &sends(&actions)[0].message else {
        panic!("expected an append");
    };
    let bytes: usize = request.entries.iter().map(|e| e.size_bytes()).sum();
    assert!(bytes <= 300, "{bytes} bytes in one message");
    assert!(!request.entries.is_empty());
}

#[test]
fn slow_follower_is_not_sent_the_log_again() {
    // Heartbeats alone: the last append's resend (`tail_resend_ticks`) has tests of its own.
    let mut n = leader_streaming_to_n2_with(raft_core::Config {
        tail_resend_ticks: 0,
        ..config(1, 3)
    });
    let _ = n.step(Input::Propose {
        request_id: raft_core::RequestId(1),
        command: b"x".to_vec(),
    });
    // Acks keep arriving: heartbeats stay empty instead of repeating entries in flight.
    let _ = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(1),
        },
    ));
    let _ = n.step(Input::Propose {
        request_id: raft_core::RequestId(2),
        command: b"y".to_vec(),
    });
    let _ = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(2),
        },
    ));
    let _ = n.step(Input::Tick);
    let actions = n.step(Input::Tick);
    for envelope in sends(&actions).into_iter().filter(|e| e.to == id(2)) {
        let Message::AppendEntries(request) = envelope.message else {
            panic!("expected heartbeat");
        };
        assert!(request.entries.is_empty());
    }
}

#[test]
fn lost_appends_are_resent_after_a_silent_heartbeat_interval() {
    let mut n = leader_streaming_to_n2();
    let _ = n.step(Input::Propose {
        request_id: raft_core::RequestId(1),
        command: b"x".to_vec(),
    });
    // The append carrying entry 2 is lost; two heartbeat intervals later it is resent.
    let mut resent = false;
    for _ in 0..4 {
        for envelope in sends(&n.step(Input::Tick)) {
            if let Message::AppendEntries(request) = envelope.message {
                resent |= envelope.to == id(2) && request.entries.len() == 1;
            }
        }
    }
    assert!(resent);
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn appends_in_flight_less_than_an_interval_are_not_resent() {
    let mut n = leader_streaming_to_n2();
    let _ = n.step(Input::Tick);
    let _ = n.step(Input::Propose {
        request_id: raft_core::RequestId(1),
        command: b"x".to_vec(),
    });
    // The heartbeat right after the send finds the append young: it sends an empty heartbeat.
    let actions = n.step(Input::Tick);
    let to_two: Vec<_> = sends(&actions)
        .into_iter()
        .filter(|e| e.to == id(2))
        .collect();
    assert_eq!(to_two.len(), 1);
    let Message::AppendEntries(request) = &to_two[0].message else {
        panic!("expected heartbeat");
    };
    assert!(request.entries.is_empty());
}

#[test]
fn duplicated_rejection_at_the_match_index_is_stale() {
    // The follower acknowledged entry 1, so a rejection of prev index 1 can only be an old
    // duplicate: the leader keeps streaming instead of probing again.
    let mut n = leader_streaming_to_n2();
    let actions = n.step(append_response(
        2,
        1,
        1,
        AppendResult::Reject {
            rejected_prev_index: LogIndex(1),
            hint: ConflictHint {
                conflict_term: None,
                first_index: LogIndex(1),
            },
        },
    ));
    assert!(sends(&actions).is_empty());
    assert_eq!(n.match_index(id(2)), Some(LogIndex(1)));
}

/// A command is one buffer from proposal to apply: the leader's `Persist`, its AppendEntries
/// and its `Apply` hold that buffer rather than copies of it.
#[test]
fn a_command_is_shared_by_its_persist_its_append_and_its_apply() {
    fn command_of(entries: &[raft_core::Entry]) -> raft_core::SharedBytes {
        match &entries.last().expect("an entry").payload {
            EntryPayload::Command(bytes) => bytes.clone(),
            other => panic!("expected a command, got {other:?}"),
        }
    }
    let mut n = leader_streaming_to_n2();
    let actions = n.step(Input::Propose {
        request_id: raft_core::RequestId(1),
        command: b"one buffer".to_vec(),
    });
    let persisted = actions
        .iter()
        .find_map(|action| match action {
            Action::Persist(request) => request.log.as_ref(),
            _ => None,
        })
        .expect("the proposal is persisted");
    let appended = sends(&actions)
        .into_iter()
        .find_map(|envelope| match envelope.message {
            Message::AppendEntries(request) if envelope.to == id(2) => Some(request.entries),
            _ => None,
        })
        .expect("the proposal is sent to n2");
    let persist_id = persist_id(&actions).expect("a persist");
    let mut committed = n.step(Input::PersistDone { persist_id });
    committed.extend(n.step(append_response(
        2,
        1,
        1,
        AppendResult::Success {
            match_index: LogIndex(2),
        },
    )));
    let applied = applied(&committed);

    let buffer = command_of(&persisted.entries);
    assert_eq!(buffer.as_slice(), b"one buffer");
    assert!(std::ptr::eq(
        buffer.as_slice(),
        command_of(&appended).as_slice()
    ));
    assert!(std::ptr::eq(
        buffer.as_slice(),
        command_of(&applied).as_slice()
    ));
}
