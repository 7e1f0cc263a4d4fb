//! Snapshots of the exact actions of key transitions, so any change to the protocol's
//! observable behaviour shows up in review.

mod support;

use raft_core::{AppendResult, Input, LogIndex};
use support::*;

#[test]
fn election_won() {
    let mut n = node(1, 3);
    let mut text = String::from("## timeout\n");
    text += &describe(&tick_until_candidate(&mut n));
    text += "## own term and vote durable: the vote requests go out\n";
    text += &describe(&n.step(Input::PersistDone {
        persist_id: raft_core::PersistId(1),
    }));
    text += "## vote from n2: a majority\n";
    text += &describe(&n.step(vote_response(2, 1, 1, true)));
    insta::assert_snapshot!(text);
}

#[test]
fn append_conflict_resolved() {
    // The new leader of term 3 holds [1,1,3]; the follower holds [1,2,2,2] from a deposed leader.
    let mut leader = node_with_log(1, 3, 2, &[1, 1]);
    let mut follower = node_with_log(2, 3, 2, &[1, 2, 2, 2]);
    let mut text = String::new();
    let mut inflight = make_leader(&mut leader);
    for round in 0..6 {
        let messages: Vec<_> = sends(&inflight)
            .into_iter()
            .filter(|e| e.to.0 == 2 || e.to.0 == 1)
            .collect();
        if messages.is_empty() {
            break;
        }
        inflight = Vec::new();
        for envelope in messages {
            let target = if envelope.to.0 == 2 {
                &mut follower
            } else {
                &mut leader
            };
            text += &format!("## round {round}: deliver to {}\n", envelope.to);
            let actions = step_durably(target, Input::Receive(envelope));
            text += &describe(&actions);
            inflight.extend(actions);
        }
    }
    assert_eq!(follower.entry(LogIndex(3)).unwrap().term.0, 3);
    assert_eq!(follower.last_log_index(), LogIndex(3));
    insta::assert_snapshot!(text);
}

#[test]
fn leader_stepping_down() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let _ = n.step(Input::Propose {
        request_id: raft_core::RequestId(1),
        command: b"pending".to_vec(),
    });
    let mut text = String::from("## response from a higher term\n");
    text += &describe(&n.step(append_response(2, 1, 4, AppendResult::StaleTerm)));
    text += "## new leader overwrites the pending entry\n";
    text += &describe(&step_durably(
        &mut n,
        append(3, 1, 4, (1, 1), vec![noop(2, 4)], 2),
    ));
    insta::assert_snapshot!(text);
}
