//! Elections on a disk slower than the election timeout. A candidate leads only once its own
//! term and vote are durable (contract rule 4), so it waits for that write rather than starting
//! another election: one more would only start one more write the disk is no quicker to finish,
//! and, raising the term, depose whichever leader the others elect meanwhile.

mod support;

use raft_core::{Input, Role, Term};
use support::*;

#[test]
fn candidate_waits_for_its_own_vote_instead_of_campaigning_again() {
    let mut n = node(1, 3);
    let campaign = tick_until_candidate(&mut n);
    for _ in 0..200 {
        let actions = n.step(Input::Tick);
        assert!(sends(&actions).is_empty(), "no new election");
    }
    assert_eq!(n.term(), Term(1));
    assert_eq!(n.status().stats.elections_started, 1);
    let _ = n.step(vote_response(2, 1, 1, true));
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&campaign).unwrap(),
    });
    assert_eq!(n.role(), Role::Leader, "the vote granted meanwhile counts");
}

#[test]
fn candidate_with_a_durable_vote_campaigns_again_after_a_split_vote() {
    let mut n = node(1, 3);
    let campaign = tick_until_candidate(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&campaign).unwrap(),
    });
    let _ = n.step(vote_response(2, 1, 1, false));
    let _ = n.step(vote_response(3, 1, 1, false));
    let again = tick_until_candidate_in(&mut n, Term(2));
    let asked = n.step(Input::PersistDone {
        persist_id: persist_id(&again).unwrap(),
    });
    assert!(
        !sends(&asked).is_empty(),
        "asks for votes in term 2 once it is durable"
    );
    assert_eq!(n.status().stats.elections_started, 2);
}

/// Ticks until the node is a candidate in `term`; returns that step's actions.
fn tick_until_candidate_in(n: &mut raft_core::Node, term: Term) -> Vec<raft_core::Action> {
    for _ in 0..1000 {
        let actions = n.step(Input::Tick);
        if n.role() == Role::Candidate && n.term() == term {
            return actions;
        }
    }
    panic!("never campaigned in {term}");
}
