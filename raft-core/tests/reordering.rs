//! Replication over a network that reorders and loses AppendEntries: a follower holds an
//! append that overtook the ones before it until they arrive (`early_appends.rs`), so the
//! leader sends nothing twice; a lost append is reported or detected and resent, and the held
//! ones follow it.

mod support;

use raft_core::{
    AppendResult, Config, Envelope, Input, LogIndex, Message, Node, NodeId, RequestId,
};
use support::*;

const LEADER: NodeId = NodeId(1);
const FOLLOWER: NodeId = NodeId(2);

fn to_follower(envelopes: Vec<Envelope>) -> Vec<Envelope> {
    addressed(FOLLOWER, envelopes)
}

fn to_leader(envelopes: Vec<Envelope>) -> Vec<Envelope> {
    addressed(LEADER, envelopes)
}

fn addressed(to: NodeId, envelopes: Vec<Envelope>) -> Vec<Envelope> {
    envelopes
        .into_iter()
        .filter(|envelope| envelope.to == to)
        .collect()
}

/// Delivers `envelopes` to `node` one by one, each write made durable at once; returns what
/// it sent.
fn deliver(node: &mut Node, envelopes: Vec<Envelope>) -> Vec<Envelope> {
    let mut sent = Vec::new();
    for envelope in envelopes {
        sent.extend(sends(&step_durably(node, Input::Receive(envelope))));
    }
    sent
}

fn entries_carried(envelopes: &[Envelope]) -> usize {
    envelopes
        .iter()
        .map(|envelope| match &envelope.message {
            Message::AppendEntries(request) => request.entries.len(),
            _ => 0,
        })
        .sum()
}

fn rejects(envelopes: &[Envelope]) -> usize {
    envelopes
        .iter()
        .filter(|envelope| {
            matches!(&envelope.message, Message::AppendEntriesResponse(response)
                if matches!(response.result, AppendResult::Reject { .. }))
        })
        .count()
}

/// A leader of a 3-node cluster streaming to its follower n2 (which holds the first entry),
/// and that follower.
fn streaming_pair() -> (Node, Node) {
    streaming_pair_with(|config| config)
}

/// The same, both nodes configured by `configure`.
fn streaming_pair_with(configure: impl Fn(Config) -> Config) -> (Node, Node) {
    let node = |id| Node::new(configure(config(id, 3))).expect("valid test config");
    let mut leader = node(1);
    let first = to_follower(sends(&make_leader(&mut leader)));
    let mut follower = node(2);
    let answers = deliver(&mut follower, first);
    let more = to_follower(deliver(&mut leader, answers));
    assert!(more.is_empty(), "nothing more to send: {more:?}");
    assert_eq!(leader.match_index(FOLLOWER), Some(LogIndex(1)));
    (leader, follower)
}

/// Proposes `count` commands one at a time: each goes out in an AppendEntries of its own.
fn propose(leader: &mut Node, count: u64) -> Vec<Envelope> {
    let mut appends = Vec::new();
    for i in 0..count {
        let actions = leader.step(Input::Propose {
            request_id: RequestId(i + 1),
            command: format!("c{i}").into_bytes(),
        });
        appends.extend(to_follower(sends(&actions)));
    }
    assert_eq!(appends.len() as u64, count);
    appends
}

#[test]
fn a_reordered_append_does_not_resend_the_window() {
    let (mut leader, mut follower) = streaming_pair();
    let mut appends = propose(&mut leader, 8);
    // Every append but the last is overtaken by all that were sent after it.
    appends.reverse();
    let answers = deliver(&mut follower, appends);
    assert_eq!(follower.last_log_index(), LogIndex(9));
    assert_eq!(rejects(&answers), 0, "{answers:?}");
    let resent = to_follower(deliver(&mut leader, answers));
    assert_eq!(entries_carried(&resent), 0, "{resent:?}");
    assert_eq!(leader.match_index(FOLLOWER), Some(LogIndex(9)));
    assert_eq!(follower.status().stats.early_appends_held, 7);
}

#[test]
fn a_duplicated_or_late_append_costs_no_resend() {
    let (mut leader, mut follower) = streaming_pair();
    let appends = propose(&mut leader, 4);
    // Each twice, the copies out of order, then every one again long after.
    let mut delivered: Vec<Envelope> = appends.iter().rev().cloned().collect();
    delivered.extend(appends.iter().cloned());
    delivered.extend(appends.iter().rev().cloned());
    let answers = deliver(&mut follower, delivered);
    assert_eq!(follower.last_log_index(), LogIndex(5));
    assert_eq!(rejects(&answers), 0, "{answers:?}");
    let resent = to_follower(deliver(&mut leader, answers));
    assert_eq!(entries_carried(&resent), 0, "{resent:?}");
    assert_eq!(leader.match_index(FOLLOWER), Some(LogIndex(5)));
}

fn gap_reports(envelopes: &[Envelope]) -> Vec<(LogIndex, LogIndex)> {
    envelopes
        .iter()
        .filter_map(|envelope| match &envelope.message {
            Message::AppendEntriesResponse(response) => match response.result {
                AppendResult::Gap {
                    log_last_index,
                    held_from,
                } => Some((log_last_index, held_from)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn a_lost_append_is_reported_by_the_follower_after_a_whole_tick() {
    let (mut leader, mut follower) = streaming_pair();
    let mut appends = propose(&mut leader, 8);
    let _lost = appends.remove(0);
    assert!(deliver(&mut follower, appends).is_empty());
    // The first tick may fall right after the later appends arrived, before the lost one
    // could have: only a gap found by two ticks in a row is reported.
    assert!(to_leader(sends(&follower.step(Input::Tick))).is_empty());
    let report = to_leader(sends(&follower.step(Input::Tick)));
    // The log ends at 1; the first append held follows on from 2.
    assert_eq!(
        gap_reports(&report),
        [(LogIndex(1), LogIndex(2))],
        "{report:?}"
    );
    assert_eq!(rejects(&report), 0, "{report:?}");
    // The leader sends again only the entry in between, and the held appends follow it.
    let resent = to_follower(deliver(&mut leader, report));
    assert_eq!(
        (resent.len(), entries_carried(&resent)),
        (1, 1),
        "{resent:?}"
    );
    let answers = deliver(&mut follower, resent);
    assert_eq!(follower.last_log_index(), LogIndex(9));
    let _ = deliver(&mut leader, answers);
    assert_eq!(leader.match_index(FOLLOWER), Some(LogIndex(9)));
    assert_eq!(leader.status().stats.gaps_resent, 1);
}

#[test]
fn a_lost_append_is_reported_at_once_when_report_at_later_ones_are_held() {
    let (mut leader, mut follower) = streaming_pair();
    let report_at = follower.config().early_appends_gap_report_at as u64;
    // Two appends lost, far apart: entry 2, and the one report_at appends later.
    let mut appends = propose(&mut leader, 2 * report_at + 1);
    let second_lost = appends.remove(report_at as usize);
    let _first_lost = appends.remove(0);
    let mut answers = Vec::new();
    for (held, append) in appends.into_iter().enumerate() {
        let sent = deliver(&mut follower, vec![append]);
        let reports = gap_reports(&sent);
        if held + 1 == report_at as usize {
            // As many later appends as `report_at` overtook it: more likely lost than late.
            assert_eq!(reports, [(LogIndex(1), LogIndex(2))], "{sent:?}");
        } else {
            assert!(reports.is_empty(), "after {} held: {sent:?}", held + 1);
        }
        answers.extend(sent);
    }
    let resent = to_follower(deliver(&mut leader, answers));
    assert_eq!(entries_carried(&resent), 1, "{resent:?}");
    // The resent entry fills the first gap; the held appends follow it up to the second gap,
    // and as many as `report_at` are still held beyond that: a new gap, reported at once.
    let answers = deliver(&mut follower, resent);
    let second = LogIndex(second_lost_prev(&second_lost));
    assert_eq!(follower.last_log_index(), second);
    assert_eq!(
        gap_reports(&answers),
        [(second, second.next())],
        "{answers:?}"
    );
    let resent = to_follower(deliver(&mut leader, answers));
    assert_eq!(entries_carried(&resent), 1, "{resent:?}");
    let answers = deliver(&mut follower, resent);
    let last = LogIndex(2 * report_at + 2);
    assert_eq!(follower.last_log_index(), last);
    let _ = deliver(&mut leader, answers);
    assert_eq!(leader.match_index(FOLLOWER), Some(last));
    assert_eq!(leader.status().stats.gaps_resent, 2);
}

#[test]
fn a_lost_append_is_reported_once_the_rest_of_the_leaders_window_is_held() {
    // Four appends in flight at most: beyond a lost one, the leader sends three and waits.
    let (mut leader, mut follower) = streaming_pair_with(|config| Config {
        inflight_appends_max: 4,
        ..config
    });
    let mut appends = propose(&mut leader, 4);
    let _lost = appends.remove(0);
    let answers = deliver(&mut follower, appends);
    assert_eq!(
        gap_reports(&answers),
        [(LogIndex(1), LogIndex(2))],
        "{answers:?}"
    );
    let resent = to_follower(deliver(&mut leader, answers));
    assert_eq!(entries_carried(&resent), 1, "{resent:?}");
    let _ = deliver(&mut leader, deliver(&mut follower, resent));
    assert_eq!(leader.match_index(FOLLOWER), Some(LogIndex(5)));
}

#[test]
fn a_gap_of_several_lost_appends_is_resent_in_one_go() {
    // One entry per message: two appends lost in a row make a gap two messages long.
    let (mut leader, mut follower) = streaming_pair_with(|config| Config {
        append_entries_max: 1,
        ..config
    });
    let report_at = follower.config().early_appends_gap_report_at as u64;
    let mut appends = propose(&mut leader, report_at + 2);
    appends.drain(..2);
    let answers = deliver(&mut follower, appends);
    assert_eq!(
        gap_reports(&answers),
        [(LogIndex(1), LogIndex(3))],
        "{answers:?}"
    );
    let resent = to_follower(deliver(&mut leader, answers));
    assert_eq!(
        (resent.len(), entries_carried(&resent)),
        (2, 2),
        "{resent:?}"
    );
    // Both arrive, the held appends follow, and nothing is left to report.
    let answers = deliver(&mut follower, resent);
    assert!(gap_reports(&answers).is_empty(), "{answers:?}");
    let last = LogIndex(report_at + 3);
    assert_eq!(follower.last_log_index(), last);
    let _ = deliver(&mut leader, answers);
    assert_eq!(leader.match_index(FOLLOWER), Some(last));
}

#[test]
fn a_probing_leader_whose_probe_was_held_probes_from_where_the_follower_log_ends() {
    // A new leader with five entries probes its followers from the end of its log.
    let mut leader = node_with_log(1, 3, 1, &[1, 1, 1, 1, 1]);
    let probes = to_follower(sends(&make_leader(&mut leader)));
    let Some(Message::AppendEntries(probe)) = probes.first().map(|e| &e.message) else {
        panic!("a probe: {probes:?}");
    };
    let probe_prev = probe.prev_log_index;
    let term = leader.term().0;
    let gap = |log_last_index, held_from| {
        append_response(
            2,
            1,
            term,
            AppendResult::Gap {
                log_last_index: LogIndex(log_last_index),
                held_from: LogIndex(held_from),
            },
        )
    };
    // The follower's log ends at 2 and it holds the probe: probe again from 3.
    let sent = to_follower(sends(&leader.step(gap(2, probe_prev.0))));
    let prevs: Vec<LogIndex> = sent
        .iter()
        .filter_map(|envelope| match &envelope.message {
            Message::AppendEntries(request) => Some(request.prev_log_index),
            _ => None,
        })
        .collect();
    assert_eq!(prevs, [LogIndex(2)], "{sent:?}");
    // A report of a log that reaches the probe's start (a stale one) changes nothing.
    let sent = to_follower(sends(&leader.step(gap(probe_prev.0, probe_prev.0 + 1))));
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn a_held_append_sent_again_reports_the_gap_before_it() {
    let (mut leader, mut follower) = streaming_pair();
    let mut appends = propose(&mut leader, 3);
    let _lost = appends.remove(0);
    let again = appends[1].clone();
    assert!(deliver(&mut follower, appends).is_empty());
    // The leader sends the last one again: it has not heard of the gap.
    let answers = deliver(&mut follower, vec![again]);
    assert_eq!(
        gap_reports(&answers),
        [(LogIndex(1), LogIndex(2))],
        "{answers:?}"
    );
}

fn second_lost_prev(envelope: &Envelope) -> u64 {
    let Message::AppendEntries(request) = &envelope.message else {
        unreachable!("an append");
    };
    request.prev_log_index.0
}

#[test]
fn a_lost_append_is_resent_after_a_heartbeat_round() {
    // The heartbeat's stall detection alone, without the tail resends below.
    let (mut leader, mut follower) = streaming_pair_with(|config| Config {
        tail_resend_ticks: 0,
        ..config
    });
    let mut appends = propose(&mut leader, 8);
    let _lost = appends.remove(0);
    assert!(deliver(&mut follower, appends).is_empty());
    // Even if the follower's report is lost too, the leader's heartbeats find no progress for
    // a whole interval and resend from the follower's match index.
    let mut resent = Vec::new();
    for _ in 0..2 * leader.config().heartbeat_interval_ticks {
        resent.extend(
            to_follower(sends(&leader.step(Input::Tick)))
                .into_iter()
                .filter(|envelope| entries_carried(std::slice::from_ref(envelope)) > 0),
        );
    }
    assert_eq!(resent.len(), 1, "{resent:?}");
    let Message::AppendEntries(request) = &resent[0].message else {
        unreachable!("an append");
    };
    assert_eq!(request.prev_log_index, LogIndex(1));
    let answers = deliver(&mut follower, resent);
    assert_eq!(follower.last_log_index(), LogIndex(9));
    let _ = deliver(&mut leader, answers);
    assert_eq!(leader.match_index(FOLLOWER), Some(LogIndex(9)));
}

#[test]
fn held_appends_of_a_deposed_leader_are_never_applied() {
    let (mut leader, mut follower) = streaming_pair();
    let mut appends = propose(&mut leader, 2);
    let lost = appends.remove(0);
    assert!(
        deliver(&mut follower, appends).is_empty(),
        "entry 3 is held"
    );
    // A new leader (n3, term 2) holds entry 2 of term 1 and its own entry 3 of term 2; the
    // follower takes both and acknowledges them.
    let Message::AppendEntries(lost) = lost.message else {
        unreachable!("an append");
    };
    let entries = vec![lost.entries[0].clone(), noop(3, 2)];
    let answers = sends(&step_durably(
        &mut follower,
        append(3, 2, 2, (1, 1), entries, 0),
    ));
    assert!(answers.iter().any(|envelope| matches!(
        &envelope.message,
        Message::AppendEntriesResponse(response)
            if response.result == AppendResult::Success { match_index: LogIndex(3) }
    )));
    // The held entry 3 of term 1 follows on from entry 2 too, but it belongs to the deposed
    // leader's term: handled now, it would overwrite the entry just acknowledged.
    assert_eq!(follower.last_log_index(), LogIndex(3));
    assert_eq!(follower.entry(LogIndex(3)).map(|e| e.term.0), Some(2));
}

/// Heartbeats as often as by default, less often than tails are resent.
fn default_heartbeats(config: Config) -> Config {
    let defaults = Config::new(config.id, config.voters.iter().copied());
    Config {
        heartbeat_interval_ticks: defaults.heartbeat_interval_ticks,
        ..config
    }
}

#[test]
fn a_lost_last_append_is_sent_again_after_tail_resend_ticks() {
    let (mut leader, mut follower) = streaming_pair_with(default_heartbeats);
    let ticks = leader.config().tail_resend_ticks;
    assert!(ticks < leader.config().heartbeat_interval_ticks);
    // One write at a time: nothing follows the lost append, so nothing is held or reported.
    let _lost = propose(&mut leader, 1);
    let mut resent = Vec::new();
    for tick in 1..=ticks {
        resent = to_follower(sends(&leader.step(Input::Tick)));
        assert_eq!(
            entries_carried(&resent) > 0,
            tick == ticks,
            "tick {tick}: {resent:?}"
        );
    }
    assert_eq!(entries_carried(&resent), 1, "{resent:?}");
    let answers = deliver(&mut follower, resent);
    let _ = deliver(&mut leader, answers);
    assert_eq!(leader.match_index(FOLLOWER), Some(LogIndex(2)));
    assert_eq!(leader.status().stats.tails_resent, 1);
}

#[test]
fn a_slow_follower_gets_its_last_append_again_and_keeps_its_window() {
    let (mut leader, mut follower) = streaming_pair_with(default_heartbeats);
    let ticks = leader.config().tail_resend_ticks;
    let appends = propose(&mut leader, 3);
    // The follower has them, but its disk has not made them durable yet: no answer.
    for append in appends {
        let _ = follower.step(Input::Receive(append));
    }
    let mut resent = Vec::new();
    for _ in 0..ticks {
        resent = to_follower(sends(&leader.step(Input::Tick)));
    }
    // Only the last append again, not the window (the follower answers the copy too, once
    // its disk has made the entries durable).
    assert_eq!(entries_carried(&resent), 1, "{resent:?}");
    let Message::AppendEntries(request) = &resent[0].message else {
        unreachable!("an append");
    };
    assert_eq!(request.prev_log_index, LogIndex(3));
    // Once per append: however long the disk takes, no more copies.
    for _ in 0..ticks {
        let again = to_follower(sends(&leader.step(Input::Tick)));
        assert_eq!(entries_carried(&again), 0, "{again:?}");
    }
    // More writes still stream at once: the leader kept its window.
    assert_eq!(propose(&mut leader, 1).len(), 1);
}
