//! Counterexamples as people and tools read them: the numbered action list with what each step
//! did, and the JSON trace the run viewer opens ([`crate::trace_json`]), one event per action at
//! one virtual millisecond per action.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use raft_core::{Envelope, HardState, PersistRequest};

use super::{describe_envelope, ClusterState, Frame, ModelAction, RaftModel, StepRecord};
use crate::sim::{describe_reply, Life};
use crate::trace::{ClusterView, Detail, DropReason, TraceEvent, TraceKind, TraceSink};
use crate::trace_json::{JsonTrace, SharedBuffer};

/// One action of a path and what it did.
#[derive(Clone, Debug)]
pub struct TracedStep {
    pub action: ModelAction,
    pub record: StepRecord,
    /// The state after the action.
    pub state: ClusterState,
}

/// Replays `actions` from the model's initial state; stops early if one is not enabled (a path
/// from another model configuration).
pub fn replay(model: &RaftModel, actions: &[ModelAction]) -> Result<Vec<TracedStep>, String> {
    let mut state = model.initial_state();
    let mut steps = Vec::with_capacity(actions.len());
    for (number, action) in actions.iter().enumerate() {
        let mut enabled = Vec::new();
        stateright::Model::actions(model, &state, &mut enabled);
        if !enabled.contains(action) {
            return Err(format!(
                "action {} ({action}) is not possible in the state the earlier ones reach",
                number + 1
            ));
        }
        let record = model.apply(&mut state, action);
        steps.push(TracedStep {
            action: action.clone(),
            record,
            state: state.clone(),
        });
    }
    Ok(steps)
}

fn describe_persist(request: &PersistRequest) -> String {
    let mut parts = Vec::new();
    if let Some(HardState {
        current_term,
        voted_for,
    }) = request.hard_state
    {
        let vote = voted_for.map_or_else(|| "none".to_owned(), |id| id.to_string());
        parts.push(format!("term {current_term} vote {vote}"));
    }
    if let Some(snapshot) = &request.snapshot {
        parts.push(format!(
            "snapshot through {}/{}",
            snapshot.meta.last_included_index, snapshot.meta.last_included_term
        ));
    }
    if let Some(splice) = &request.log {
        let entries: Vec<String> = splice
            .entries
            .iter()
            .map(|entry| format!("{} {}", entry.index, entry.term))
            .collect();
        parts.push(format!("log from {} [{}]", splice.from, entries.join(", ")));
    }
    format!("{} {}", request.persist_id, parts.join(", "))
}

/// The numbered action list: each action, then what its step did (indented), then the
/// violation the last state records, if any.
#[must_use]
pub fn render_text(steps: &[TracedStep]) -> String {
    let mut out = String::new();
    for (number, step) in steps.iter().enumerate() {
        let _ = writeln!(out, "{:>3}. {}", number + 1, step.action);
        let record = &step.record;
        let Some(id) = record.node else { continue };
        if let Some(request) = &record.completed {
            let _ = writeln!(out, "       {id} durable {}", describe_persist(request));
        }
        if let Some(request) = &record.persist {
            let _ = writeln!(out, "       {id} writes {}", describe_persist(request));
        }
        if let (Some((role, term)), Some(node)) = (record.role_before, step.state.node(id)) {
            if node.role() != role || node.term() != term {
                let _ = writeln!(out, "       {id} is {} in {}", node.role(), node.term());
            }
        }
        for envelope in &record.sends {
            let _ = writeln!(out, "       sends {}", describe_envelope(envelope));
        }
        for (request_id, reply) in &record.replies {
            let _ = writeln!(
                out,
                "       replies {request_id}: {}",
                describe_reply(reply)
            );
        }
    }
    if let Some(violation) = steps.last().and_then(|step| step.state.violation.as_ref()) {
        let _ = writeln!(
            out,
            "  violated {}: {}",
            violation.invariant, violation.detail
        );
    }
    out
}

/// The JSON trace of a path (see [`crate::trace_json`]): `raft-sim viz` draws it.
#[must_use]
pub fn render_json(model: &RaftModel, steps: &[TracedStep]) -> Vec<u8> {
    let buffer = SharedBuffer::default();
    {
        let mut sink = JsonTrace::new(buffer.clone());
        let initial = model.initial_state();
        let view = |state: &ClusterState| ClusterView {
            lives: state
                .slots
                .iter()
                .map(|slot| {
                    if slot.node.is_some() {
                        Life::Running
                    } else {
                        Life::Crashed
                    }
                })
                .collect(),
            voters: state.committed_or(model).voters.iter().copied().collect(),
            learners: state.committed_or(model).learners.iter().copied().collect(),
            cut: Vec::new(),
            held: Vec::new(),
        };
        sink.detail(0, 0, Detail::Cluster(&view(&initial)));
        for slot in &initial.slots {
            let Some(node) = &slot.node else { continue };
            sink.event(&TraceEvent {
                seq: 0,
                time_ms: 0,
                kind: TraceKind::Control(format!("start {}", slot.id)),
            });
            let detail = Detail::Start {
                node,
                durable: &slot.durable,
            };
            sink.detail(0, 0, detail);
        }
        let arrivals = arrivals(steps);
        for (number, step) in steps.iter().enumerate() {
            let seq = number as u64 + 1;
            sink.detail(seq, seq, Detail::Cluster(&view(&step.state)));
            emit_step(&mut sink, seq, step, &arrivals);
        }
    }
    buffer.contents()
}

impl ClusterState {
    fn committed_or(&self, model: &RaftModel) -> raft_core::Membership {
        if self.committed_membership.voters.is_empty() {
            raft_core::Membership::new(model.config.voters())
        } else {
            (*self.committed_membership).clone()
        }
    }
}

/// When each message sent along the path arrives: the step numbers of the deliveries of its
/// frame after it was sent (a copy stays in flight after a duplicate), or the end of the path
/// for a message still in flight there. Keyed by (sending step, position among its sends).
fn arrivals(steps: &[TracedStep]) -> BTreeMap<(usize, usize), Vec<u64>> {
    let mut arrivals = BTreeMap::new();
    let end = steps.len() as u64 + 1;
    for (sent_at, step) in steps.iter().enumerate() {
        for (position, envelope) in step.record.sends.iter().enumerate() {
            let frame = Frame::of(envelope);
            let mut times = Vec::new();
            for (later, next) in steps.iter().enumerate().skip(sent_at + 1) {
                match &next.action {
                    ModelAction::Duplicate(f) if *f == frame => times.push(later as u64 + 1),
                    ModelAction::Deliver(f) if *f == frame => {
                        times.push(later as u64 + 1);
                        break;
                    }
                    ModelAction::Drop(f) if *f == frame => break,
                    _ => {}
                }
            }
            if times.is_empty() {
                times.push(end);
            }
            arrivals.insert((sent_at, position), times);
        }
    }
    arrivals
}

fn emit_step(
    sink: &mut JsonTrace<SharedBuffer>,
    seq: u64,
    step: &TracedStep,
    arrivals: &BTreeMap<(usize, usize), Vec<u64>>,
) {
    let event = |kind| TraceEvent {
        seq,
        time_ms: seq,
        kind,
    };
    let deliver = |frame: &Frame| {
        let envelope = frame.envelope();
        TraceKind::Deliver {
            from: envelope.from,
            to: envelope.to,
            kind: envelope.message.kind(),
            term: envelope.term,
        }
    };
    match &step.action {
        ModelAction::Tick(node) => sink.event(&event(TraceKind::Tick { node: *node })),
        ModelAction::Deliver(frame) | ModelAction::Duplicate(frame) => {
            sink.event(&event(deliver(frame)));
        }
        ModelAction::Drop(frame) => {
            let envelope = frame.envelope();
            sink.event(&event(TraceKind::Drop {
                from: envelope.from,
                to: envelope.to,
                kind: envelope.message.kind(),
                reason: DropReason::Loss,
            }));
        }
        ModelAction::Persist(node) => {
            let persist_id = step
                .record
                .completed
                .as_ref()
                .map_or(raft_core::PersistId(0), |p| p.persist_id);
            sink.event(&event(TraceKind::Persisted {
                node: *node,
                persist_id,
            }));
        }
        ModelAction::Propose(node) => {
            let request_id = raft_core::RequestId(u64::from(step.state.used.proposals));
            sink.event(&event(TraceKind::Propose {
                node: *node,
                request_id,
            }));
        }
        ModelAction::Crash(_)
        | ModelAction::Restart(_)
        | ModelAction::Compact(_)
        | ModelAction::Change(..)
        | ModelAction::Read(_)
        | ModelAction::Transfer(..) => {
            sink.event(&event(TraceKind::Control(step.action.to_string())));
        }
    }
    if let ModelAction::Restart(id) = step.action {
        if let Some(slot) = step.state.slots.iter().find(|slot| slot.id == id) {
            if let Some(node) = &slot.node {
                let detail = Detail::Start {
                    node,
                    durable: &slot.durable,
                };
                sink.detail(seq, seq, detail);
            }
        }
    }
    emit_effects(sink, seq, step, arrivals);
}

fn emit_effects(
    sink: &mut JsonTrace<SharedBuffer>,
    seq: u64,
    step: &TracedStep,
    arrivals: &BTreeMap<(usize, usize), Vec<u64>>,
) {
    let record = &step.record;
    let Some(id) = record.node else {
        emit_violation(sink, seq, step);
        return;
    };
    if let Some(node) = step.state.node(id) {
        let persist = record.persist.as_ref();
        sink.detail(seq, seq, Detail::Step { node, persist });
        if let Some((role, term)) = record.role_before {
            let changed = node.role() != role
                || (node.role() != raft_core::Role::Follower && node.term() != term);
            if changed {
                sink.event(&TraceEvent {
                    seq,
                    time_ms: seq,
                    kind: TraceKind::Role {
                        node: id,
                        role: node.role(),
                        term: node.term(),
                    },
                });
            }
        }
    }
    let sent_at = usize::try_from(seq - 1).unwrap_or(0);
    for (position, envelope) in record.sends.iter().enumerate() {
        emit_send(sink, seq, envelope, arrivals.get(&(sent_at, position)));
    }
    for (request_id, reply) in &record.replies {
        sink.event(&TraceEvent {
            seq,
            time_ms: seq,
            kind: TraceKind::Reply {
                node: id,
                request_id: *request_id,
                reply: reply.clone(),
            },
        });
    }
    emit_violation(sink, seq, step);
}

fn emit_send(
    sink: &mut JsonTrace<SharedBuffer>,
    seq: u64,
    envelope: &Envelope,
    arrive: Option<&Vec<u64>>,
) {
    let times = arrive.map_or(&[][..], Vec::as_slice);
    // The trace records at most three arrivals per send (a message, its duplicate and a
    // stale duplicate).
    let arrive_ms = [
        times.first().copied(),
        times.get(1).copied(),
        times.get(2).copied(),
    ];
    sink.detail(
        seq,
        seq,
        Detail::Send {
            envelope,
            arrive_ms,
        },
    );
}

fn emit_violation(sink: &mut JsonTrace<SharedBuffer>, seq: u64, step: &TracedStep) {
    if let Some(violation) = &step.state.violation {
        let detail = Detail::Violation {
            invariant: violation.invariant,
            detail: &violation.detail,
        };
        sink.detail(seq, seq, detail);
    }
}
