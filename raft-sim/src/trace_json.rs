//! The JSON trace (`--trace-json`): one JSON object per line, for tools and for the HTML
//! viewer ([`crate::viz`]). It is a [`TraceSink`] like the text trace, so it sees the same
//! events in the same order, each as one record with the same `seq` and virtual time; it also
//! asks for [`Detail`]s, which add records of their own (`send`, `step`, `cluster`,
//! `violation`) and the node state after each event, so a reader can rebuild every node's
//! role, term, indexes and log by replaying the records in order.
//!
//! The schema is documented in the crate README.

use std::collections::BTreeMap;
use std::io::Write;

use raft_core::{DurableState, Envelope, Node, PersistRequest};
use serde::{Deserialize, Serialize};

use crate::sim::Life;
use crate::trace::{ClusterView, Detail, TraceEvent, TraceKind, TraceSink};

/// One line of the JSON trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The event number: that of the text trace's `#seq`; detail records carry the number of
    /// the event they follow.
    pub seq: u64,
    /// Virtual milliseconds.
    pub t: u64,
    #[serde(flatten)]
    pub kind: RecordKind,
    /// The node's state after this record, for records about one node that is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NodeState>,
    /// How this record changed the node's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogChange>,
}

/// What a record is about. The first eight kinds mirror the text trace one to one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordKind {
    Tick {
        node: u64,
    },
    Deliver {
        from: u64,
        to: u64,
        #[serde(rename = "type")]
        message: String,
        term: u64,
    },
    /// A message that never reached `to`: lost or cut when sent, or arriving at a link cut
    /// meanwhile or a node down (`reason`: `loss`, `cut`, `down`, `discarded`).
    Drop {
        from: u64,
        to: u64,
        #[serde(rename = "type")]
        message: String,
        reason: String,
    },
    Persisted {
        node: u64,
        persist_id: u64,
    },
    Propose {
        node: u64,
        request: u64,
    },
    Reply {
        node: u64,
        request: u64,
        reply: String,
    },
    Role {
        node: u64,
        role: String,
        term: u64,
    },
    /// A fault or control action (crash, partition, start, compact, ...), in words.
    Control {
        text: String,
    },
    /// A message handed to the network: it arrives at each time in `arrive` (a second for a
    /// duplicate, a later one for a stale duplicate), unless a `drop` record for it comes first. Lost messages get a `drop`
    /// record instead. `size` is its wire size in bytes.
    Send {
        from: u64,
        to: u64,
        #[serde(rename = "type")]
        message: String,
        term: u64,
        size: u64,
        entries: u64,
        arrive: Vec<u64>,
    },
    /// A node step not tied to an event of its own (inputs queued while paused, a control's
    /// input), or a start (with a log `reset`).
    Step {
        node: u64,
    },
    /// Lives, the committed membership, cut and held links (`[from, to]`); written at the
    /// start and whenever they change.
    Cluster {
        lives: Vec<String>,
        voters: Vec<u64>,
        learners: Vec<u64>,
        cut: Vec<[u64; 2]>,
        held: Vec<[u64; 2]>,
    },
    /// The checker's verdict that stopped the run.
    Violation {
        invariant: String,
        detail: String,
    },
}

impl RecordKind {
    /// The node a record is about, when there is one.
    #[must_use]
    pub fn node(&self) -> Option<u64> {
        match self {
            RecordKind::Tick { node }
            | RecordKind::Persisted { node, .. }
            | RecordKind::Propose { node, .. }
            | RecordKind::Reply { node, .. }
            | RecordKind::Role { node, .. }
            | RecordKind::Step { node } => Some(*node),
            RecordKind::Deliver { to, .. } | RecordKind::Drop { to, .. } => Some(*to),
            RecordKind::Send { from, .. } => Some(*from),
            RecordKind::Control { .. }
            | RecordKind::Cluster { .. }
            | RecordKind::Violation { .. } => None,
        }
    }

    /// Kinds whose event is followed by the step it causes: that step's state and log change
    /// go into the same record.
    fn takes_step(&self) -> bool {
        matches!(
            self,
            RecordKind::Tick { .. }
                | RecordKind::Deliver { .. }
                | RecordKind::Persisted { .. }
                | RecordKind::Propose { .. }
        )
    }
}

/// A node's state after a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub term: u64,
    /// `LEADER`, `CANDIDATE` or `FOLLOWER`.
    pub role: String,
    /// A follower campaigning with pre-votes (thesis §9.6), not yet a candidate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pre_candidate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    /// The last log index.
    pub last: u64,
}

impl NodeState {
    fn of(node: &Node) -> NodeState {
        NodeState {
            term: node.term().0,
            role: node.role().as_str().to_owned(),
            pre_candidate: node.is_pre_candidate(),
            leader: node.leader_id().map(|id| id.0),
            commit: node.commit_index().0,
            applied: node.applied_index().0,
            last: node.last_log_index().0,
        }
    }
}

/// A change to one node's log, applied in field order: `reset` empties it (a start from
/// durable state, which `snapshot`, `from` and `terms` then describe); `snapshot` `[index,
/// term]` drops the entries it covers (all of them when the log does not hold that entry) and
/// starts the log after it; `from` removes every entry at or after it, and `terms` are
/// appended from there (one term per entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChange {
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<[u64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<u64>,
}

impl LogChange {
    /// The change a persist request makes: the core persists exactly what it changed in its
    /// in-memory log.
    fn of_persist(request: &PersistRequest) -> Option<LogChange> {
        let snapshot = request
            .snapshot
            .as_ref()
            .map(|s| [s.meta.last_included_index.0, s.meta.last_included_term.0]);
        let splice = request.log.as_ref();
        if snapshot.is_none() && splice.is_none() {
            return None;
        }
        Some(LogChange {
            reset: false,
            snapshot,
            from: splice.map(|s| s.from.0),
            terms: splice
                .map(|s| s.entries.iter().map(|e| e.term.0).collect())
                .unwrap_or_default(),
        })
    }

    fn of_durable(durable: &DurableState) -> LogChange {
        let snapshot = durable
            .snapshot
            .as_ref()
            .map(|s| [s.meta.last_included_index.0, s.meta.last_included_term.0]);
        LogChange {
            reset: true,
            snapshot,
            from: Some(durable.first_index().0),
            terms: durable.entries.iter().map(|e| e.term.0).collect(),
        }
    }
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(value: &bool) -> bool {
    !*value
}

/// Streams the JSON trace to a writer, one record per line. A record about a node is held
/// back until the step that event causes has happened, so it carries the state after it; the
/// last record is written when the sink is dropped, i.e. when the simulation ends. Write errors
/// are ignored, as for the text trace: collect into memory to report them.
pub struct JsonTrace<W: Write> {
    out: W,
    pending: Option<Record>,
    /// The latest state of each node, by id, for records that cause no step.
    states: BTreeMap<u64, NodeState>,
    /// The latest cluster view written.
    cluster: Option<ClusterView>,
}

impl<W: Write> std::fmt::Debug for JsonTrace<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonTrace")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<W: Write> JsonTrace<W> {
    pub fn new(out: W) -> JsonTrace<W> {
        JsonTrace {
            out,
            pending: None,
            states: BTreeMap::new(),
            cluster: None,
        }
    }

    fn is_up(&self, node: u64) -> bool {
        let life = self.cluster.as_ref().and_then(|c| {
            usize::try_from(node)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| c.lives.get(i).copied())
        });
        matches!(life, Some(Life::Running | Life::Paused))
    }

    fn flush_pending(&mut self) {
        let Some(mut record) = self.pending.take() else {
            return;
        };
        if record.state.is_none() {
            if let Some(node) = record.kind.node().filter(|&n| self.is_up(n)) {
                record.state = self.states.get(&node).cloned();
            }
        }
        self.write(&record);
    }

    fn write(&mut self, record: &Record) {
        // Serializing these plain structs cannot fail; a failing writer is ignored (see above).
        let _ = serde_json::to_writer(&mut self.out, record);
        let _ = self.out.write_all(b"\n");
    }

    fn emit(&mut self, record: Record) {
        self.flush_pending();
        self.write(&record);
    }

    fn step(&mut self, seq: u64, t: u64, node: &Node, log: Option<LogChange>) {
        let id = node.id().0;
        let state = NodeState::of(node);
        self.states.insert(id, state.clone());
        if let Some(pending) = &mut self.pending {
            let takes = pending.kind.takes_step()
                && pending.kind.node() == Some(id)
                && pending.state.is_none()
                && pending.log.is_none();
            if takes {
                pending.state = Some(state);
                pending.log = log;
                return;
            }
        }
        self.emit(Record {
            seq,
            t,
            kind: RecordKind::Step { node: id },
            state: Some(state),
            log,
        });
    }
}

impl<W: Write> Drop for JsonTrace<W> {
    fn drop(&mut self) {
        self.flush_pending();
        let _ = self.out.flush();
    }
}

impl From<&TraceKind> for RecordKind {
    fn from(kind: &TraceKind) -> RecordKind {
        match kind {
            TraceKind::Tick { node } => RecordKind::Tick { node: node.0 },
            TraceKind::Deliver {
                from,
                to,
                kind,
                term,
            } => RecordKind::Deliver {
                from: from.0,
                to: to.0,
                message: (*kind).to_owned(),
                term: term.0,
            },
            TraceKind::Drop {
                from,
                to,
                kind,
                reason,
            } => RecordKind::Drop {
                from: from.0,
                to: to.0,
                message: (*kind).to_owned(),
                reason: reason.as_str().to_owned(),
            },
            TraceKind::Persisted { node, persist_id } => RecordKind::Persisted {
                node: node.0,
                persist_id: persist_id.0,
            },
            TraceKind::Propose { node, request_id } => RecordKind::Propose {
                node: node.0,
                request: request_id.0,
            },
            TraceKind::Reply {
                node,
                request_id,
                reply,
            } => RecordKind::Reply {
                node: node.0,
                request: request_id.0,
                reply: format!("{reply:?}"),
            },
            TraceKind::Role { node, role, term } => RecordKind::Role {
                node: node.0,
                role: role.as_str().to_owned(),
                term: term.0,
            },
            TraceKind::Control(text) => RecordKind::Control { text: text.clone() },
        }
    }
}

fn send_record(envelope: &Envelope, arrive_ms: [Option<u64>; 3]) -> RecordKind {
    let entries = match &envelope.message {
        raft_core::Message::AppendEntries(request) => request.entries.len() as u64,
        _ => 0,
    };
    RecordKind::Send {
        from: envelope.from.0,
        to: envelope.to.0,
        message: envelope.message.kind().to_owned(),
        term: envelope.term.0,
        size: raft_core::wire::encode(envelope).len() as u64,
        entries,
        arrive: arrive_ms.into_iter().flatten().collect(),
    }
}

fn cluster_record(view: &ClusterView) -> RecordKind {
    let ids = |ids: &[raft_core::NodeId]| ids.iter().map(|id| id.0).collect();
    let links = |links: &[(raft_core::NodeId, raft_core::NodeId)]| {
        links.iter().map(|(a, b)| [a.0, b.0]).collect()
    };
    RecordKind::Cluster {
        lives: view.lives.iter().map(|&l| l.as_str().to_owned()).collect(),
        voters: ids(&view.voters),
        learners: ids(&view.learners),
        cut: links(&view.cut),
        held: links(&view.held),
    }
}

impl<W: Write> TraceSink for JsonTrace<W> {
    fn event(&mut self, event: &TraceEvent) {
        self.flush_pending();
        self.pending = Some(Record {
            seq: event.seq,
            t: event.time_ms,
            kind: RecordKind::from(&event.kind),
            state: None,
            log: None,
        });
    }

    fn wants_detail(&self) -> bool {
        true
    }

    fn detail(&mut self, seq: u64, t: u64, detail: Detail<'_>) {
        let record = |kind| Record {
            seq,
            t,
            kind,
            state: None,
            log: None,
        };
        match detail {
            Detail::Cluster(view) => {
                if self.cluster.as_ref() != Some(view) {
                    self.cluster = Some(view.clone());
                    self.emit(record(cluster_record(view)));
                }
            }
            Detail::Step { node, persist } => {
                self.step(seq, t, node, persist.and_then(LogChange::of_persist));
            }
            Detail::Start { node, durable } => {
                self.step(seq, t, node, Some(LogChange::of_durable(durable)));
            }
            Detail::Send {
                envelope,
                arrive_ms,
            } => self.emit(record(send_record(envelope, arrive_ms))),
            Detail::Violation { invariant, detail } => self.emit(record(RecordKind::Violation {
                invariant: invariant.to_owned(),
                detail: detail.to_owned(),
            })),
        }
    }
}

/// A writer into shared memory: the simulation owns the sink, the caller reads what it wrote
/// once the simulation has ended (and dropped the sink).
#[derive(Clone, Debug, Default)]
pub struct SharedBuffer(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl SharedBuffer {
    /// Everything written so far.
    #[must_use]
    pub fn contents(&self) -> Vec<u8> {
        self.0.borrow().clone()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses a JSON trace, one record per non-empty line.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", number + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(role: &str) -> NodeState {
        NodeState {
            term: 3,
            role: role.to_owned(),
            pre_candidate: role == "FOLLOWER",
            leader: (role != "CANDIDATE").then_some(2),
            commit: 5,
            applied: 4,
            last: 7,
        }
    }

    /// One record of every kind, with and without state and log changes.
    fn samples() -> Vec<Record> {
        let kinds = vec![
            RecordKind::Tick { node: 1 },
            RecordKind::Deliver {
                from: 2,
                to: 1,
                message: "AppendEntries".to_owned(),
                term: 3,
            },
            RecordKind::Drop {
                from: 1,
                to: 3,
                message: "RequestVoteResponse".to_owned(),
                reason: "cut".to_owned(),
            },
            RecordKind::Persisted {
                node: 2,
                persist_id: 17,
            },
            RecordKind::Propose {
                node: 2,
                request: 1 << 62,
            },
            RecordKind::Reply {
                node: 2,
                request: 9,
                reply: "Committed { index: LogIndex(4), term: Term(3) }".to_owned(),
            },
            RecordKind::Role {
                node: 3,
                role: "LEADER".to_owned(),
                term: 4,
            },
            RecordKind::Control {
                text: "partition [n1] from the rest </script> \"quoted\"\n".to_owned(),
            },
            RecordKind::Send {
                from: 1,
                to: 2,
                message: "AppendEntries".to_owned(),
                term: 3,
                size: 57,
                entries: 2,
                arrive: vec![12, 15],
            },
            RecordKind::Step { node: 3 },
            RecordKind::Cluster {
                lives: vec!["running".to_owned(), "paused".to_owned()],
                voters: vec![1, 2],
                learners: vec![3],
                cut: vec![[1, 2], [2, 1]],
                held: vec![[2, 3]],
            },
            RecordKind::Violation {
                invariant: "election_safety".to_owned(),
                detail: "two leaders in t3".to_owned(),
            },
        ];
        // The match is exhaustive, so a new kind cannot be left out of the samples.
        for kind in &kinds {
            match kind {
                RecordKind::Tick { .. }
                | RecordKind::Deliver { .. }
                | RecordKind::Drop { .. }
                | RecordKind::Persisted { .. }
                | RecordKind::Propose { .. }
                | RecordKind::Reply { .. }
                | RecordKind::Role { .. }
                | RecordKind::Control { .. }
                | RecordKind::Send { .. }
                | RecordKind::Step { .. }
                | RecordKind::Cluster { .. }
                | RecordKind::Violation { .. } => {}
            }
        }
        let mut records = Vec::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let seq = i as u64 * 3;
            records.push(Record {
                seq,
                t: seq * 7,
                kind: kind.clone(),
                state: None,
                log: None,
            });
            records.push(Record {
                seq,
                t: seq * 7 + 1,
                kind,
                state: Some(state(["LEADER", "CANDIDATE", "FOLLOWER"][i % 3])),
                log: Some(LogChange {
                    reset: i % 2 == 0,
                    snapshot: (i % 3 == 0).then_some([4, 2]),
                    from: Some(5),
                    terms: vec![2, 3, 3],
                }),
            });
        }
        records.push(Record {
            seq: 99,
            t: 1000,
            kind: RecordKind::Step { node: 1 },
            state: None,
            log: Some(LogChange {
                from: Some(3),
                ..LogChange::default()
            }),
        });
        records
    }

    #[test]
    fn every_kind_round_trips() {
        for record in samples() {
            let line = serde_json::to_string(&record).expect("serializes");
            assert!(!line.contains('\n'), "one line per record: {line}");
            let back: Record = serde_json::from_str(&line).expect("deserializes");
            assert_eq!(back, record, "{line}");
        }
    }

    #[test]
    fn parse_reads_lines_and_names_the_bad_one() {
        let lines: Vec<String> = samples()
            .iter()
            .map(|r| serde_json::to_string(r).expect("serializes"))
            .collect();
        let text = lines.join("\n") + "\n\n";
        assert_eq!(parse(&text).expect("parses"), samples());
        let error = parse("{\"seq\":1,\"t\":0,\"kind\":\"tick\",\"node\":1}\n{\"seq\":2}\n")
            .expect_err("a record without a kind");
        assert!(error.starts_with("line 2:"), "{error}");
        assert!(parse("{\"seq\":1,\"t\":0,\"kind\":\"nope\"}").is_err());
    }

    #[test]
    fn field_names_are_stable() {
        let record = Record {
            seq: 4,
            t: 10,
            kind: RecordKind::Deliver {
                from: 2,
                to: 1,
                message: "AppendEntries".to_owned(),
                term: 3,
            },
            state: Some(state("LEADER")),
            log: Some(LogChange {
                from: Some(7),
                terms: vec![3],
                ..LogChange::default()
            }),
        };
        assert_eq!(
            serde_json::to_string(&record).expect("serializes"),
            r#"{"seq":4,"t":10,"kind":"deliver","from":2,"to":1,"type":"AppendEntries","term":3,"state":{"term":3,"role":"LEADER","leader":2,"commit":5,"applied":4,"last":7},"log":{"from":7,"terms":[3]}}"#
        );
    }
}
