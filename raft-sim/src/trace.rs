//! The event trace: a running hash of every event (the determinism fingerprint), a ring of the
//! last events for failure reports, and optional sinks that stream every event: the text trace
//! of `replay --trace` (any [`Write`]) and the JSON trace of `--trace-json`
//! ([`crate::trace_json::JsonTrace`]). Events are small structs; text is only produced when
//! someone reads it.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;

use raft_core::{
    DurableState, Envelope, Node, NodeId, PersistId, PersistRequest, Reply, RequestId, Role, Term,
};

use crate::sim::Life;

/// One thing that happened, stamped with its event number and virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    pub seq: u64,
    pub time_ms: u64,
    pub kind: TraceKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceKind {
    Tick {
        node: NodeId,
    },
    Deliver {
        from: NodeId,
        to: NodeId,
        kind: &'static str,
        term: Term,
    },
    Drop {
        from: NodeId,
        to: NodeId,
        kind: &'static str,
        reason: DropReason,
    },
    Persisted {
        node: NodeId,
        persist_id: PersistId,
    },
    Propose {
        node: NodeId,
        request_id: RequestId,
    },
    Reply {
        node: NodeId,
        request_id: RequestId,
        reply: Reply,
    },
    Role {
        node: NodeId,
        role: Role,
        term: Term,
    },
    /// A fault or control action (crash, partition, ...), described in words.
    Control(String),
}

/// Why a message never reached its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// A partition or link cut.
    Cut,
    /// The destination was down, or restarted since the message was sent.
    Down,
    /// Discarded by a scenario's `drop` command.
    Discarded,
}

impl DropReason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Loss => "loss",
            DropReason::Cut => "cut",
            DropReason::Down => "down",
            DropReason::Discarded => "discarded",
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}ms ", self.seq, self.time_ms)?;
        match &self.kind {
            TraceKind::Tick { node } => write!(f, "{node} tick"),
            TraceKind::Deliver {
                from,
                to,
                kind,
                term,
            } => write!(f, "{to} <- {from} {kind} {term}"),
            TraceKind::Drop {
                from,
                to,
                kind,
                reason,
            } => write!(f, "{to} x- {from} {kind} dropped ({})", reason.as_str()),
            TraceKind::Persisted { node, persist_id } => write!(f, "{node} persisted {persist_id}"),
            TraceKind::Propose { node, request_id } => write!(f, "{node} propose {request_id}"),
            TraceKind::Reply {
                node,
                request_id,
                reply,
            } => write!(f, "{node} reply {request_id} {reply:?}"),
            TraceKind::Role { node, role, term } => write!(f, "{node} is {role} in {term}"),
            TraceKind::Control(text) => write!(f, "{text}"),
        }
    }
}

/// What a sink streams besides the events themselves: the state a viewer needs to rebuild the
/// cluster by replaying the trace. Gathering it costs time, so the simulator offers it only
/// when a sink asks ([`TraceSink::wants_detail`]).
#[derive(Clone, Copy, Debug)]
pub enum Detail<'a> {
    /// Who is up and which links are cut or held, before the next event.
    Cluster(&'a ClusterView),
    /// A node after one step, with the log change the step asked to persist.
    Step {
        node: &'a Node,
        persist: Option<&'a PersistRequest>,
    },
    /// A node (re)started: its whole log is what its durable state holds.
    Start {
        node: &'a Node,
        durable: &'a DurableState,
    },
    /// A message handed to the network, arriving at these virtual times (a second for a
    /// duplicate, a third for a stale duplicate).
    Send {
        envelope: &'a Envelope,
        arrive_ms: [Option<u64>; 3],
    },
    /// The checker found an invariant violated: the run stops here.
    Violation {
        invariant: &'static str,
        detail: &'a str,
    },
}

/// The cluster around the nodes: each node's life, the committed membership, and the directed
/// links that are cut or held. Node `i + 1` is at index `i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub lives: Vec<Life>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub cut: Vec<(NodeId, NodeId)>,
    pub held: Vec<(NodeId, NodeId)>,
}

/// Receives every event of a run, in order. Any [`Write`] is a sink for the text trace, one
/// line per event.
pub trait TraceSink {
    fn event(&mut self, event: &TraceEvent);

    /// True when the sink wants [`Detail`]s as well.
    fn wants_detail(&self) -> bool {
        false
    }

    /// `seq` and `time_ms` are those of the latest event.
    fn detail(&mut self, _seq: u64, _time_ms: u64, _detail: Detail<'_>) {}
}

impl<W: Write> TraceSink for W {
    fn event(&mut self, event: &TraceEvent) {
        // A broken pipe (say, `| head`) must not change the run, so write errors are ignored.
        let _ = writeln!(self, "{event}");
    }
}

/// Several sinks as one, each seeing everything in order.
pub struct Tee(pub Vec<Box<dyn TraceSink>>);

impl TraceSink for Tee {
    fn event(&mut self, event: &TraceEvent) {
        for sink in &mut self.0 {
            sink.event(event);
        }
    }

    fn wants_detail(&self) -> bool {
        self.0.iter().any(|sink| sink.wants_detail())
    }

    fn detail(&mut self, seq: u64, time_ms: u64, detail: Detail<'_>) {
        for sink in self.0.iter_mut().filter(|sink| sink.wants_detail()) {
            sink.detail(seq, time_ms, detail);
        }
    }
}

impl fmt::Debug for Tee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tee").field(&self.0).finish()
    }
}

impl fmt::Debug for dyn TraceSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceSink")
            .field("wants_detail", &self.wants_detail())
            .finish_non_exhaustive()
    }
}

/// Keeps the fingerprint, the tail and, when asked, full streams.
pub struct Trace {
    hash: u64,
    tail: VecDeque<TraceEvent>,
    tail_max: usize,
    sink: Option<Box<dyn TraceSink>>,
    detailed: bool,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("hash", &self.hash)
            .field("tail_len", &self.tail.len())
            .field("streaming", &self.sink.is_some())
            .field("detailed", &self.detailed)
            .finish()
    }
}

impl Trace {
    #[must_use]
    pub fn new(tail_max: usize) -> Trace {
        Trace {
            hash: 0xCBF2_9CE4_8422_2325,
            tail: VecDeque::with_capacity(tail_max),
            tail_max,
            sink: None,
            detailed: false,
        }
    }

    /// Streams every later event to `sink` (a writer gets the text trace; see [`Tee`] for
    /// several sinks).
    pub fn stream_to(&mut self, sink: Box<dyn TraceSink>) {
        self.detailed = sink.wants_detail();
        self.sink = Some(sink);
    }

    /// True when some sink wants [`Detail`]s: the simulator gathers them only then.
    #[must_use]
    pub fn detailed(&self) -> bool {
        self.detailed
    }

    // Kept out of line: the simulator's hot paths only test `detailed`.
    #[cold]
    #[inline(never)]
    pub fn detail(&mut self, seq: u64, time_ms: u64, detail: Detail<'_>) {
        if let Some(sink) = self.sink.as_mut().filter(|_| self.detailed) {
            sink.detail(seq, time_ms, detail);
        }
    }

    pub fn record(&mut self, event: TraceEvent) {
        self.hash_event(&event);
        if let Some(sink) = &mut self.sink {
            sink.event(&event);
        }
        if self.tail_max == 0 {
            return;
        }
        if self.tail.len() == self.tail_max {
            self.tail.pop_front();
        }
        self.tail.push_back(event);
    }

    /// The fingerprint of every event recorded so far.
    #[must_use]
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The last events, oldest first, as text.
    #[must_use]
    pub fn tail_lines(&self) -> Vec<String> {
        self.tail.iter().map(ToString::to_string).collect()
    }

    fn mix(&mut self, word: u64) {
        // FNV-style multiply-xor on whole words: stable across platforms and Rust versions,
        // unlike std's `DefaultHasher`.
        self.hash = (self.hash ^ word).wrapping_mul(0x0000_0100_0000_01B3);
        self.hash ^= self.hash >> 29;
    }

    fn mix_str(&mut self, text: &str) {
        self.mix(text.len() as u64);
        for chunk in text.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    /// Field by field: formatting each reply with `Debug` just to hash it took about 6% of
    /// an exploration run.
    fn mix_reply(&mut self, reply: &Reply) {
        let (tag, a, b) = match *reply {
            Reply::Accepted { index, term } => (1, index.0, term.0),
            Reply::Committed { index, term } => (2, index.0, term.0),
            Reply::NotLeader { leader_hint } => (
                3,
                u64::from(leader_hint.is_some()),
                leader_hint.map_or(0, |id| id.0),
            ),
            Reply::Busy => (4, 0, 0),
            Reply::ChangeRejected { reason } => (5, reason as u64, 0),
            Reply::ReadReady { index } => (6, index.0, 0),
            Reply::Dropped { index, term } => (7, index.0, term.0),
            Reply::Unknown { index, term } => (8, index.0, term.0),
        };
        self.mix(tag);
        self.mix(a);
        self.mix(b);
    }

    fn hash_event(&mut self, event: &TraceEvent) {
        self.mix(event.seq);
        self.mix(event.time_ms);
        match &event.kind {
            TraceKind::Tick { node } => {
                self.mix(1);
                self.mix(node.0);
            }
            TraceKind::Deliver {
                from,
                to,
                kind,
                term,
            } => {
                self.mix(2);
                self.mix(from.0);
                self.mix(to.0);
                self.mix_str(kind);
                self.mix(term.0);
            }
            TraceKind::Drop {
                from,
                to,
                kind,
                reason,
            } => {
                self.mix(3);
                self.mix(from.0);
                self.mix(to.0);
                self.mix_str(kind);
                self.mix_str(reason.as_str());
            }
            TraceKind::Persisted { node, persist_id } => {
                self.mix(4);
                self.mix(node.0);
                self.mix(persist_id.0);
            }
            TraceKind::Propose { node, request_id } => {
                self.mix(5);
                self.mix(node.0);
                self.mix(request_id.0);
            }
            TraceKind::Reply {
                node,
                request_id,
                reply,
            } => {
                self.mix(6);
                self.mix(node.0);
                self.mix(request_id.0);
                self.mix_reply(reply);
            }
            TraceKind::Role { node, role, term } => {
                self.mix(7);
                self.mix(node.0);
                self.mix_str(role.as_str());
                self.mix(term.0);
            }
            TraceKind::Control(text) => {
                self.mix(8);
                self.mix_str(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(seq: u64, node: u64) -> TraceEvent {
        TraceEvent {
            seq,
            time_ms: seq * 10,
            kind: TraceKind::Tick { node: NodeId(node) },
        }
    }

    #[test]
    fn tail_keeps_the_last_events() {
        let mut trace = Trace::new(2);
        for seq in 1..=5 {
            trace.record(tick(seq, 1));
        }
        assert_eq!(trace.tail_lines(), ["#4 40ms n1 tick", "#5 50ms n1 tick"]);
    }

    #[test]
    fn hash_depends_on_every_field() {
        let mut a = Trace::new(0);
        let mut b = Trace::new(0);
        a.record(tick(1, 1));
        b.record(tick(1, 2));
        assert_ne!(a.hash(), b.hash());
        let mut c = Trace::new(0);
        c.record(tick(1, 1));
        assert_eq!(a.hash(), c.hash());
    }
}
