//! Servers that lost their durable state come back as new incarnations (see the core's
//! `incarnation.rs`): they never vote on what they forgot, leaders forget what the old
//! incarnation told them, and the cluster re-adds them through ordinary membership changes.

mod support;

use raft_core::{
    Config, Entry, EntryPayload, Incarnation, Input, LogIndex, Membership, Message, Node, NodeId,
    RequestVote, Role, Term,
};
use support::*;

fn recorded(voters: &[(u64, u64)]) -> Membership {
    let mut membership = Membership::new(voters.iter().map(|&(id, _)| NodeId(id)));
    for &(id, incarnation) in voters {
        membership
            .incarnations
            .insert(NodeId(id), Incarnation(incarnation));
    }
    membership
}

fn membership_entry(index: u64, term: u64, membership: Membership) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Membership(membership),
    }
}

fn vote_request_from(from: u64, incarnation: u64, term: u64) -> Input {
    let mut envelope = envelope(
        from,
        1,
        term,
        Message::RequestVote(RequestVote {
            last_log_index: LogIndex(5),
            last_log_term: Term(5),
            leadership_transfer: false,
        }),
    );
    envelope.incarnation = Incarnation(incarnation);
    Input::Receive(envelope)
}

fn granted(actions: &[raft_core::Action]) -> bool {
    sends(actions)
        .iter()
        .any(|e| matches!(&e.message, Message::RequestVoteResponse(r) if r.vote_granted))
}

/// Node 1 in incarnation `me`, started with no voters (a server that lost its state), whose
/// log now says the cluster is n1..n3 with n1 recorded as `recorded_me`.
fn restarted_with_log(me: u64, recorded_me: u64) -> Node {
    let mut config = config(1, 3);
    config.voters.clear();
    config.incarnation = Incarnation(me);
    let mut n = Node::new(config).unwrap();
    let membership = recorded(&[(1, recorded_me), (2, 20), (3, 30)]);
    let _ = step_durably(
        &mut n,
        append(2, 1, 1, (0, 0), vec![membership_entry(1, 1, membership)], 1),
    );
    assert_eq!(n.last_log_index(), LogIndex(1));
    n
}

#[test]
fn server_that_lost_its_state_never_campaigns_before_it_is_re_added() {
    // Its membership records n1 as incarnation 10; this is incarnation 11.
    let mut n = restarted_with_log(11, 10);
    for _ in 0..100 {
        let _ = n.step(Input::Tick);
    }
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.status().stats.elections_started, 0);
    // The same server in the recorded incarnation campaigns.
    let mut same = restarted_with_log(10, 10);
    let _ = tick_until_candidate(&mut same);
}

#[test]
fn promoted_server_votes_before_its_log_shows_the_promotion() {
    // Its log still records incarnation 10, but a leader may have promoted incarnation 11
    // since: it answers, and only a candidate whose membership records 11 counts the vote
    // (`vote_from_an_incarnation_other_than_the_recorded_one_does_not_count`). Refusing would
    // leave the cluster one voter short until a leader it cannot help elect tells it.
    let mut n = restarted_with_log(11, 10);
    assert!(granted(&step_durably(&mut n, vote_request_from(3, 30, 2))));
}

#[test]
fn new_server_votes_only_once_its_incarnation_is_recorded() {
    // Started with no voters: not recorded yet means not known, unlike a member of the initial
    // cluster.
    let mut config = config(1, 3);
    config.voters.clear();
    config.incarnation = Incarnation(7);
    let mut n = Node::new(config).unwrap();
    let unrecorded = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
    let _ = step_durably(
        &mut n,
        append(2, 1, 1, (0, 0), vec![membership_entry(1, 1, unrecorded)], 1),
    );
    assert!(!granted(&step_durably(&mut n, vote_request_from(3, 0, 2))));
    // A member of the initial cluster with nothing recorded votes.
    let mut initial = node(1, 3);
    assert!(granted(&step_durably(
        &mut initial,
        vote_request_from(3, 0, 2)
    )));
}

#[test]
fn vote_from_an_incarnation_other_than_the_recorded_one_does_not_count() {
    let membership = recorded(&[(1, 0), (2, 20), (3, 30)]);
    let durable = raft_core::DurableState {
        hard_state: raft_core::HardState {
            current_term: Term(1),
            voted_for: None,
        },
        snapshot: None,
        entries: vec![membership_entry(1, 1, membership)],
    };
    let mut n = Node::restore(config(1, 3), durable).unwrap();
    let actions = tick_until_candidate(&mut n);
    let _ = n.step(Input::PersistDone {
        persist_id: persist_id(&actions).unwrap(),
    });
    let term = n.term().0;
    let mut wiped = envelope(
        2,
        1,
        term,
        Message::RequestVoteResponse(raft_core::RequestVoteResponse { vote_granted: true }),
    );
    wiped.incarnation = Incarnation(21);
    let _ = n.step(Input::Receive(wiped.clone()));
    assert_eq!(
        n.role(),
        Role::Candidate,
        "a vote from n2's new incarnation speaks for nobody"
    );
    wiped.incarnation = Incarnation(20);
    let _ = n.step(Input::Receive(wiped));
    assert_eq!(n.role(), Role::Leader);
}

/// A three-node cluster whose leader committed `x` with everyone up.
fn cluster_with(command: &str) -> (Cluster, NodeId) {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let _ = c.propose(leader, command);
    c.tick_all(4);
    c.settle();
    (c, leader)
}

#[test]
fn first_leader_records_every_voters_incarnation() {
    let (c, leader) = cluster_with("x");
    let membership = c.nodes[&leader].membership();
    assert_eq!(
        membership.incarnations.keys().copied().collect::<Vec<_>>(),
        vec![NodeId(1), NodeId(2), NodeId(3)]
    );
    for node in c.nodes.values() {
        assert_eq!(node.membership(), membership, "{}", node.id());
    }
}

#[test]
fn leader_demotes_a_voter_that_lost_its_state_and_promotes_it_once_caught_up() {
    for as_new_server in [false, true] {
        let (mut c, leader) = cluster_with("x");
        let wiped = NodeId(if leader.0 == 3 { 2 } else { 3 });
        let old = c.nodes[&leader].membership().incarnation_of(wiped).unwrap();
        if as_new_server {
            c.wipe_as_new_server(wiped);
        } else {
            c.wipe(wiped);
        }
        let new = c.nodes[&wiped].incarnation();
        assert_ne!(old, new);
        c.tick_all(20);
        c.settle();
        let membership = c.nodes[&leader].membership().clone();
        assert!(
            membership.voters.contains(&wiped),
            "re-added as a voter: {membership:?}"
        );
        assert_eq!(membership.incarnation_of(wiped), Some(new));
        assert!(membership.returning.is_empty() && membership.learners.is_empty());
        assert_eq!(
            c.commands(wiped),
            vec!["x"],
            "it caught up before its promotion"
        );
        // The log shows the ordinary path: demoted to a returning learner, then promoted.
        let log = c.nodes[&leader].entries(LogIndex(1), c.nodes[&leader].last_log_index());
        let demoted = log.iter().any(|e| {
            matches!(&e.payload,
        EntryPayload::Membership(m) if m.returning.contains(&wiped) && m.learners.contains(&wiped))
        });
        assert!(demoted, "{}", describe_entries(log));
        let _ = c.propose(leader, "y");
        c.tick_all(4);
        c.settle();
        c.check_safety();
        assert_eq!(c.commands(wiped), vec!["x", "y"]);
    }
}

#[test]
fn wiped_follower_plus_lagging_follower_cannot_elect_a_leader_without_a_committed_entry() {
    // A and B hold an entry C lacks; B's disk is replaced; A dies. B (empty) and C (lagging)
    // are a majority of the voters, but B's vote does not count for its old incarnation (and
    // started as a new server, it does not vote at all), so nothing is elected without A.
    for as_new_server in [false, true] {
        let (mut c, a) = cluster_with("before");
        let others: Vec<NodeId> = (1..=3).map(NodeId).filter(|&id| id != a).collect();
        let (b, lagging) = (others[0], others[1]);
        c.isolate(lagging);
        let _ = c.propose(a, "only on a and b");
        c.tick_all(4);
        c.settle();
        assert!(
            c.commands(b).contains(&"only on a and b".to_string()),
            "committed by a and b"
        );
        if as_new_server {
            c.wipe_as_new_server(b);
        } else {
            c.wipe(b);
        }
        c.crash(a);
        c.heal();
        c.tick_all(300);
        c.settle();
        for id in [b, lagging] {
            assert_ne!(
                c.nodes[&id].role(),
                Role::Leader,
                "{id} leads without the committed entry"
            );
        }
        assert!(!c.commands(lagging).contains(&"only on a and b".to_string()));
        // A returns: the cluster recovers with the entry.
        c.restart(a);
        c.tick_all(100);
        c.settle();
        let leader = c.leader().expect("a leader once a is back");
        let _ = c.propose(leader, "after");
        c.tick_all(10);
        c.settle();
        c.check_safety();
        for id in [a, b, lagging] {
            assert_eq!(
                c.commands(id),
                vec!["before", "only on a and b", "after"],
                "{id}"
            );
        }
    }
}

#[test]
fn acknowledgement_from_a_replaced_incarnation_counts_for_no_quorum() {
    // n2 answers from a new incarnation that holds what this leader sent it since, but forgot
    // what it promised before: its acknowledgement commits nothing and confirms no read.
    let ack = |from: u64, incarnation: u64, match_index: u64| {
        let mut envelope = envelope(
            from,
            1,
            1,
            Message::AppendEntriesResponse(raft_core::AppendEntriesResponse {
                read_round: 0,
                result: raft_core::AppendResult::Success {
                    match_index: LogIndex(match_index),
                },
            }),
        );
        envelope.incarnation = Incarnation(incarnation);
        Input::Receive(envelope)
    };
    let mut n = node(1, 3);
    let actions = make_leader(&mut n);
    if let Some(persist_id) = persist_id(&actions) {
        let _ = n.step(Input::PersistDone { persist_id });
    }
    let last = n.last_log_index().0;
    assert!(last >= 1);
    let _ = n.step(ack(2, 5, last));
    assert_eq!(n.commit_index(), LogIndex(0), "a replaced voter counted");
    let _ = n.step(ack(3, 0, last));
    assert_eq!(n.commit_index(), LogIndex(last));
}

#[test]
fn late_message_from_a_replaced_incarnation_is_ignored() {
    let mut n = node(1, 3);
    let _ = make_leader(&mut n);
    let ack = |incarnation: u64, match_index: u64| {
        let mut envelope = envelope(
            2,
            1,
            1,
            Message::AppendEntriesResponse(raft_core::AppendEntriesResponse {
                read_round: 0,
                result: raft_core::AppendResult::Success {
                    match_index: LogIndex(match_index),
                },
            }),
        );
        envelope.incarnation = Incarnation(incarnation);
        Input::Receive(envelope)
    };
    // n2 was recorded as incarnation 0 by this leader's first entry; it then answers from a
    // new incarnation with nothing, and a late acknowledgement of its old self arrives.
    assert_eq!(
        n.membership().incarnation_of(NodeId(2)),
        Some(Incarnation(0))
    );
    let _ = n.step(ack(0, 1));
    assert_eq!(n.match_index(NodeId(2)), Some(LogIndex(1)));
    let _ = n.step(ack(5, 0));
    assert_eq!(
        n.match_index(NodeId(2)),
        Some(LogIndex(0)),
        "the new incarnation holds nothing"
    );
    let ignored = n.status().stats.messages_ignored;
    let _ = n.step(ack(0, 1));
    assert_eq!(n.match_index(NodeId(2)), Some(LogIndex(0)));
    assert_eq!(n.status().stats.messages_ignored, ignored + 1);
}

#[test]
fn config_incarnation_is_what_the_node_sends() {
    let mut config: Config = config(1, 3);
    config.incarnation = Incarnation(42);
    let mut n = Node::new(config).unwrap();
    let actions = tick_until_candidate(&mut n);
    assert!(sends(&actions)
        .iter()
        .all(|e| e.incarnation == Incarnation(42)));
    assert_eq!(n.incarnation(), Incarnation(42));
}

#[test]
fn a_survivor_forced_to_a_single_voter_commits_everything_it_holds() {
    // n1 of three holds two entries, the second never committed; the other two are gone.
    let durable = raft_core::DurableState {
        hard_state: raft_core::HardState {
            current_term: Term(3),
            voted_for: Some(NodeId(2)),
        },
        snapshot: None,
        entries: vec![entry(1, 1, "committed"), entry(2, 3, "uncommitted")],
    };
    let forced = durable.forced_to_single_voter(NodeId(1), Incarnation(9));
    assert_eq!(forced.hard_state.current_term, Term(4));
    assert_eq!(forced.entries.len(), 3);
    let mut config = config(1, 3);
    config.incarnation = Incarnation(9);
    let mut n = Node::restore(config, forced).unwrap();
    assert_eq!(n.membership().voters.len(), 1);
    let mut applied = Vec::new();
    let mut inputs = vec![Input::Tick];
    for _ in 0..1000 {
        let input = inputs.pop().unwrap_or(Input::Tick);
        let actions = n.step(input);
        if let Some(persist_id) = persist_id(&actions) {
            inputs.push(Input::PersistDone { persist_id });
        }
        applied.extend(applied_commands(&actions));
        if n.role() == Role::Leader && n.applied_index() == n.last_log_index() {
            break;
        }
    }
    assert_eq!(n.role(), Role::Leader);
    assert_eq!(applied, vec!["committed", "uncommitted"]);
}

fn applied_commands(actions: &[raft_core::Action]) -> Vec<String> {
    applied(actions)
        .into_iter()
        .filter_map(|e| match e.payload {
            EntryPayload::Command(c) => Some(String::from_utf8_lossy(&c).into_owned()),
            _ => None,
        })
        .collect()
}
