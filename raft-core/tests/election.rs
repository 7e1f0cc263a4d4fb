//! Figure 2 election rules (Raft §5.2, §5.4.1), one test per rule.

mod support;

use raft_core::{AppendResult, Input, Message, Role, Term};
use support::*;

#[test]
fn follower_becomes_candidate_after_election_timeout() {
    let mut n = node(1, 3);
    for _ in 0..9 {
        let _ = n.step(Input::Tick);
        assert_eq!(n.role(), Role::Follower, "min timeout is 10 ticks");
    }
    let _ = tick_until_candidate(&mut n);
    assert_eq!(n.role(), Role::Candidate);
}

#[test]
fn election_timeout_randomized_within_config_range() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let mut config = config(1, 3);
        config.rng_seed = seed;
        let mut n = raft_core::Node::new(config).unwrap();
        let mut ticks = 0;
        while n.role() == Role::Follower {
            let _ = n.step(Input::Tick);
            ticks += 1;
        }
        assert!(
            (10..=20).contains(&ticks),
            "timeout {ticks} outside 10..=20"
        );
        seen.insert(ticks);
    }
    assert!(seen.len() > 3, "timeouts are not randomized: {seen:?}");
}

#[test]
fn candidate_increments_term_and_votes_for_itself() {
    let mut n = node(1, 3);
    let actions = tick_until_candidate(&mut n);
    assert_eq!(n.term(), Term(1));
    assert_eq!(n.voted_for(), Some(id(1)));
    let raft_core::Action::Persist(request) = &actions[0] else {
        panic!("first action persists the new term and vote: {actions:?}");
    };
    let hard_state = request.hard_state.expect("hard state persisted");
    assert_eq!(hard_state.current_term, Term(1));
    assert_eq!(hard_state.voted_for, Some(id(1)));
}

#[test]
fn candidate_requests_votes_from_all_peers_once_its_term_and_vote_are_durable() {
    // Sent earlier, a request could be answered to a campaign that a crash then forgets:
    // restarted in its older term, the node could campaign for the same term again with
    // another log, and a late grant to the forgotten campaign would count for the new one.
    let mut n = node(1, 5);
    let actions = tick_until_candidate(&mut n);
    assert!(sends(&actions).is_empty(), "{actions:?}");
    let durable = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let targets: Vec<u64> = sends(&durable).iter().map(|e| e.to.0).collect();
    assert_eq!(targets, vec![2, 3, 4, 5]);
    assert!(sends(&durable)
        .iter()
        .all(|e| matches!(e.message, Message::RequestVote(_)) && e.term == Term(1)));
}

#[test]
fn candidate_counts_own_vote_only_after_persist() {
    let mut n = node(1, 3);
    let actions = tick_until_candidate(&mut n);
    let _ = n.step(vote_response(2, 1, 1, true));
    assert_eq!(
        n.role(),
        Role::Candidate,
        "one durable vote of three is not a majority"
    );
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn single_voter_elects_itself_once_vote_is_durable() {
    let mut n = node(1, 1);
    let actions = tick_until_candidate(&mut n);
    assert_eq!(n.role(), Role::Candidate);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn candidate_wins_with_majority_of_votes() {
    let mut n = node(1, 5);
    let actions = tick_until_candidate(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let _ = n.step(vote_response(2, 1, 1, true));
    let _ = n.step(vote_response(3, 1, 1, false));
    assert_eq!(n.role(), Role::Candidate);
    let _ = n.step(vote_response(3, 1, 1, true));
    assert_eq!(n.role(), Role::Leader);
}

#[test]
fn duplicate_votes_from_one_peer_count_once() {
    let mut n = node(1, 5);
    let actions = tick_until_candidate(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    for _ in 0..3 {
        let _ = n.step(vote_response(2, 1, 1, true));
    }
    assert_eq!(n.role(), Role::Candidate);
}

#[test]
fn grants_vote_once_per_term() {
    let mut n = node(1, 3);
    let a = step_durably(&mut n, request_vote(2, 1, 1, 0, 0));
    assert!(matches!(
        &sends(&a)[0].message,
        Message::RequestVoteResponse(r) if r.vote_granted
    ));
    let b = step_durably(&mut n, request_vote(3, 1, 1, 0, 0));
    assert!(matches!(
        &sends(&b)[0].message,
        Message::RequestVoteResponse(r) if !r.vote_granted
    ));
    // The same candidate asking again (a retransmission) gets the same answer.
    let c = step_durably(&mut n, request_vote(2, 1, 1, 0, 0));
    assert!(matches!(
        &sends(&c)[0].message,
        Message::RequestVoteResponse(r) if r.vote_granted
    ));
}

#[test]
fn rejects_vote_for_candidate_with_stale_log() {
    // Last term lower: stale even though longer.
    let mut n = node_with_log(1, 3, 3, &[1, 3]);
    let a = step_durably(&mut n, request_vote(2, 1, 4, 5, 2));
    assert!(matches!(&sends(&a)[0].message, Message::RequestVoteResponse(r) if !r.vote_granted));
    // Same last term, shorter log: stale.
    let mut n = node_with_log(1, 3, 3, &[1, 3, 3]);
    let b = step_durably(&mut n, request_vote(2, 1, 4, 2, 3));
    assert!(matches!(&sends(&b)[0].message, Message::RequestVoteResponse(r) if !r.vote_granted));
    assert_eq!(n.voted_for(), None);
}

#[test]
fn grants_vote_to_candidate_with_up_to_date_log() {
    let mut n = node_with_log(1, 3, 3, &[1, 3, 3]);
    let a = step_durably(&mut n, request_vote(2, 1, 4, 3, 3));
    assert!(matches!(&sends(&a)[0].message, Message::RequestVoteResponse(r) if r.vote_granted));
    let mut n = node_with_log(1, 3, 3, &[1, 3, 3]);
    let b = step_durably(&mut n, request_vote(2, 1, 4, 1, 4));
    assert!(matches!(&sends(&b)[0].message, Message::RequestVoteResponse(r) if r.vote_granted));
}

#[test]
fn vote_response_withheld_until_persisted() {
    let mut n = node(1, 3);
    let actions = n.step(request_vote(2, 1, 1, 0, 0));
    assert!(
        sends(&actions).is_empty(),
        "vote sent before it was durable"
    );
    let persist = persist_id(&actions).expect("vote persisted");
    let released = n.step(Input::PersistDone {
        persist_id: persist,
    });
    assert!(matches!(
        &sends(&released)[0].message,
        Message::RequestVoteResponse(r) if r.vote_granted
    ));
}

#[test]
fn steps_down_on_higher_term_in_any_message() {
    let mut leader = node(1, 3);
    let _ = make_leader(&mut leader);
    let _ = leader.step(vote_response(2, 1, 7, false));
    assert_eq!(leader.role(), Role::Follower);
    assert_eq!(leader.term(), Term(7));
    assert_eq!(leader.voted_for(), None);

    let mut candidate = node(1, 3);
    let _ = tick_until_candidate(&mut candidate);
    let _ = candidate.step(append_response(2, 1, 5, raft_core::AppendResult::StaleTerm));
    assert_eq!(candidate.role(), Role::Follower);
    assert_eq!(candidate.term(), Term(5));
}

#[test]
fn answers_stale_term_request_with_current_term() {
    let mut n = node_with_log(1, 3, 5, &[]);
    let actions = n.step(request_vote(2, 1, 4, 9, 4));
    let reply = &sends(&actions)[0];
    assert_eq!(reply.term, Term(5));
    assert!(matches!(&reply.message, Message::RequestVoteResponse(r) if !r.vote_granted));
    let actions = n.step(append(2, 1, 4, (0, 0), vec![], 0));
    assert!(matches!(
        &sends(&actions)[0].message,
        Message::AppendEntriesResponse(r) if r.result == AppendResult::StaleTerm
    ));
    assert_eq!(n.term(), Term(5));
}

#[test]
fn granting_a_vote_resets_the_election_timer() {
    let mut n = node(1, 3);
    for _ in 0..9 {
        let _ = n.step(Input::Tick);
    }
    let _ = step_durably(&mut n, request_vote(2, 1, 1, 0, 0));
    for _ in 0..9 {
        let _ = n.step(Input::Tick);
        assert_eq!(n.role(), Role::Follower);
    }
}

#[test]
fn candidate_steps_down_on_append_from_leader_of_same_term() {
    let mut n = node(1, 3);
    let _ = tick_until_candidate(&mut n);
    let _ = n.step(append(2, 1, 1, (0, 0), vec![], 0));
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.leader_id(), Some(id(2)));
}

#[test]
fn leader_sends_heartbeats_every_interval() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let first = n.step(Input::Tick);
    assert!(sends(&first).is_empty());
    let second = n.step(Input::Tick);
    let heartbeats = sends(&second);
    assert_eq!(heartbeats.len(), 2);
    assert!(heartbeats
        .iter()
        .all(|e| matches!(e.message, Message::AppendEntries(_))));
}

#[test]
fn same_seed_same_election_timeouts() {
    let run = |seed: u64| {
        let mut config = config(1, 3);
        config.rng_seed = seed;
        let mut n = raft_core::Node::new(config).unwrap();
        let mut ticks = Vec::new();
        for _ in 0..5 {
            let mut t = 0;
            let term = n.term();
            while n.term() == term {
                // Durably: a candidate waits for its own vote before it campaigns again.
                let _ = step_durably(&mut n, Input::Tick);
                t += 1;
            }
            ticks.push(t);
        }
        ticks
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn refused_higher_term_vote_does_not_restart_the_election_timer() {
    // A candidate with a stale log keeps asking with ever higher terms; the up-to-date node
    // refuses each time and must still campaign at the very tick an undisturbed twin does.
    let mut twin = node_with_log(1, 3, 1, &[1]);
    let undisturbed = (1..=20)
        .find(|_| {
            let _ = twin.step(Input::Tick);
            twin.role() == Role::Candidate
        })
        .expect("the election timeout is at most 20 ticks");
    let mut n = node_with_log(1, 3, 1, &[1]);
    for tick in 1..=20 {
        let term = n.term().0 + 1;
        let actions = step_durably(&mut n, request_vote(2, 1, term, 0, 0));
        assert!(matches!(
            &sends(&actions)[0].message,
            Message::RequestVoteResponse(r) if !r.vote_granted
        ));
        let _ = n.step(Input::Tick);
        if n.role() == Role::Candidate {
            assert_eq!(tick, undisturbed, "the refusals moved the election timeout");
            return;
        }
    }
    panic!("refused vote requests kept the node from ever campaigning");
}

#[test]
fn candidate_leads_only_once_its_own_term_and_vote_are_durable() {
    let mut n = node(1, 3);
    let actions = tick_until_candidate(&mut n);
    let votes = [
        n.step(vote_response(2, 1, 1, true)),
        n.step(vote_response(3, 1, 1, true)),
    ];
    assert_eq!(
        n.role(),
        Role::Candidate,
        "every peer granted, but the candidate's own term 1 and vote are not yet durable"
    );
    assert!(
        votes.iter().flat_map(|a| sends(a)).next().is_none(),
        "nothing is sent as leader of a term the disk has not recorded"
    );
    let won = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    assert_eq!(n.role(), Role::Leader, "the votes granted meanwhile count");
    assert!(sends(&won)
        .iter()
        .any(|e| matches!(e.message, Message::AppendEntries(_))));
}

#[test]
fn timeout_now_candidate_leads_only_once_its_own_term_and_vote_are_durable() {
    let mut n = node(1, 3);
    let _ = step_durably(&mut n, append(2, 1, 1, (0, 0), vec![], 0));
    let actions = n.step(Input::Receive(envelope(2, 1, 1, Message::TimeoutNow)));
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.term(), Term(2));
    let _ = n.step(vote_response(2, 1, 2, true));
    let _ = n.step(vote_response(3, 1, 2, true));
    assert_eq!(n.role(), Role::Candidate, "term 2 is not durable yet");
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    assert_eq!(n.role(), Role::Leader);
}
