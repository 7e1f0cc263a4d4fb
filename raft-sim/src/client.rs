//! The client model: clients propose commands (and ask for linearizable reads) to the node
//! they believe leads, follow
//! `NotLeader` hints, retry after `Busy`, `Dropped` or a timeout, and every invocation and
//! response is recorded in a history. Like the core it is sans-IO: it says what to send and
//! when to wake up; the simulator does the rest.

use std::collections::BTreeMap;

use raft_core::{LogIndex, NodeId, Reply, RequestId, Term};

use crate::checker::command_hash;

#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    pub clients: usize,
    /// Pause between one operation's success and the next invocation.
    pub think_ms_min: u64,
    pub think_ms_max: u64,
    /// A request with no final reply after this long is abandoned and retried elsewhere.
    pub timeout_ms: u64,
    /// Pause before retrying after a rejection without a usable hint.
    pub backoff_ms: u64,
    /// The share of operations that are reads rather than writes.
    pub read_ratio: f64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            clients: 2,
            think_ms_min: 5,
            think_ms_max: 50,
            timeout_ms: 1000,
            backoff_ms: 50,
            read_ratio: 0.0,
        }
    }
}

/// How an invocation ended, as far as the client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Pending,
    Committed {
        index: LogIndex,
        term: Term,
    },
    /// A read served once the node had applied through `index`.
    Read {
        index: LogIndex,
    },
    NotLeader,
    Busy,
    Dropped,
    /// The node learned the entry's fate only from a snapshot: it may or may not be applied.
    Unknown,
    /// A reply that does not fit the request (a read answer to a write, a membership answer).
    Unexpected,
    TimedOut,
}

/// One invocation and its response.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// `None` for proposals made directly by a scenario.
    pub client: Option<usize>,
    pub request_id: RequestId,
    /// The command written, as text for transcripts; empty for a read.
    pub command: String,
    /// `checker::command_hash` of the bytes proposed (of no bytes for a read): what the checker
    /// matches acknowledgements against.
    pub payload_hash: u64,
    pub read: bool,
    pub node: NodeId,
    pub invoked_ms: u64,
    pub accepted: Option<(LogIndex, Term)>,
    pub outcome: Outcome,
    pub completed_ms: Option<u64>,
}

/// A request to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub node: NodeId,
    pub request_id: RequestId,
    pub op: Op,
}

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Write(Vec<u8>),
    Read,
}

/// What a client wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowUp {
    Nothing,
    /// Wake `client` after `ms` to invoke (a new operation or a retry).
    Wake {
        client: usize,
        ms: u64,
    },
}

#[derive(Clone, Debug)]
struct ClientState {
    believed_leader: NodeId,
    outstanding: Option<RequestId>,
}

#[derive(Debug)]
pub struct Clients {
    pub config: ClientConfig,
    node_count: u64,
    clients: Vec<ClientState>,
    history: Vec<Record>,
    by_request: BTreeMap<RequestId, usize>,
    next_request_id: u64,
    /// Clients invoke only while active; outstanding requests still complete.
    pub active: bool,
}

impl Clients {
    #[must_use]
    pub fn new(config: ClientConfig, node_count: u64) -> Clients {
        let clients = (0..config.clients)
            .map(|c| ClientState {
                believed_leader: NodeId(c as u64 % node_count.max(1) + 1),
                outstanding: None,
            })
            .collect();
        Clients {
            config,
            node_count,
            clients,
            history: Vec::new(),
            by_request: BTreeMap::new(),
            next_request_id: 1,
            active: false,
        }
    }

    #[must_use]
    pub fn count(&self) -> usize {
        self.clients.len()
    }

    #[must_use]
    pub fn history(&self) -> &[Record] {
        &self.history
    }

    #[must_use]
    pub fn record(&self, request_id: RequestId) -> Option<&Record> {
        self.by_request.get(&request_id).map(|&i| &self.history[i])
    }

    fn new_record(
        &mut self,
        client: Option<usize>,
        node: NodeId,
        command: Option<(String, &[u8])>,
        now_ms: u64,
    ) -> RequestId {
        let read = command.is_none();
        let (command, payload) = command.unwrap_or_default();
        let payload_hash = command_hash(payload);
        let request_id = RequestId(self.next_request_id);
        self.next_request_id += 1;
        self.by_request.insert(request_id, self.history.len());
        self.history.push(Record {
            client,
            request_id,
            read,
            command,
            payload_hash,
            node,
            invoked_ms: now_ms,
            accepted: None,
            outcome: Outcome::Pending,
            completed_ms: None,
        });
        request_id
    }

    /// Records a proposal of `payload` (shown as `label`) that a scenario sends straight to
    /// `node`.
    pub fn invoke_direct(
        &mut self,
        node: NodeId,
        label: &str,
        payload: &[u8],
        now_ms: u64,
    ) -> RequestId {
        self.new_record(None, node, Some((label.to_owned(), payload)), now_ms)
    }

    /// Records a linearizable read that a scenario sends straight to `node`.
    pub fn invoke_direct_read(&mut self, node: NodeId, now_ms: u64) -> RequestId {
        self.new_record(None, node, None, now_ms)
    }

    /// Client `client` woke up: a new invocation (a read if `read`), unless it is inactive or
    /// still waiting. A write is the text `c<client>-<n>`.
    pub fn invoke(&mut self, client: usize, now_ms: u64, read: bool) -> Option<Invocation> {
        self.invoke_with(client, now_ms, read, |client, n| {
            let command = format!("c{}-{n}", client + 1);
            let bytes = command.clone().into_bytes();
            (command, bytes)
        })
    }

    /// [`Clients::invoke`], with a write made by `write(client, n)` (`n` is unique across
    /// clients): its text for transcripts and its bytes.
    pub fn invoke_with(
        &mut self,
        client: usize,
        now_ms: u64,
        read: bool,
        write: impl FnOnce(usize, u64) -> (String, Vec<u8>),
    ) -> Option<Invocation> {
        let state = self.clients.get(client)?;
        if !self.active || state.outstanding.is_some() {
            return None;
        }
        let node = state.believed_leader;
        let command = (!read).then(|| write(client, self.next_request_id));
        let recorded = command
            .as_ref()
            .map(|(text, bytes)| (text.clone(), bytes.as_slice()));
        let request_id = self.new_record(Some(client), node, recorded, now_ms);
        self.clients[client].outstanding = Some(request_id);
        let op = command.map_or(Op::Read, |(_, bytes)| Op::Write(bytes));
        Some(Invocation {
            node,
            request_id,
            op,
        })
    }

    fn next_node(&self, node: NodeId) -> NodeId {
        NodeId(node.0 % self.node_count.max(1) + 1)
    }

    /// A node answered `request_id`.
    pub fn on_reply(
        &mut self,
        request_id: RequestId,
        reply: &Reply,
        now_ms: u64,
        think_ms: u64,
    ) -> FollowUp {
        let Some(&position) = self.by_request.get(&request_id) else {
            return FollowUp::Nothing;
        };
        let record = &mut self.history[position];
        let node = record.node;
        let outcome = match *reply {
            Reply::Accepted { index, term } => {
                record.accepted = Some((index, term));
                return FollowUp::Nothing;
            }
            Reply::Committed { index, term } => Outcome::Committed { index, term },
            Reply::NotLeader { .. } => Outcome::NotLeader,
            Reply::Busy => Outcome::Busy,
            Reply::Dropped { .. } => Outcome::Dropped,
            Reply::Unknown { .. } => Outcome::Unknown,
            Reply::ReadReady { index } if record.read => Outcome::Read { index },
            Reply::ReadReady { .. } | Reply::ChangeRejected { .. } => Outcome::Unexpected,
        };
        // A late answer after a timeout still goes in the history: the client was told.
        if record.outcome == Outcome::Pending || record.outcome == Outcome::TimedOut {
            record.outcome = outcome;
            record.completed_ms = Some(now_ms);
        }
        let Some(client) = record.client else {
            return FollowUp::Nothing;
        };
        if self.clients[client].outstanding != Some(request_id) {
            return FollowUp::Nothing;
        }
        self.clients[client].outstanding = None;
        let backoff = self.config.backoff_ms;
        let (leader, wait) = match *reply {
            Reply::Committed { .. } | Reply::ReadReady { .. } => (node, think_ms),
            Reply::NotLeader {
                leader_hint: Some(hint),
            } if hint != node => (hint, 0),
            Reply::NotLeader { .. } => (self.next_node(node), backoff),
            _ => (node, backoff),
        };
        self.clients[client].believed_leader = leader;
        FollowUp::Wake { client, ms: wait }
    }

    /// The timeout of `request_id` fired.
    pub fn on_timeout(&mut self, request_id: RequestId, now_ms: u64) -> FollowUp {
        let Some(&position) = self.by_request.get(&request_id) else {
            return FollowUp::Nothing;
        };
        let record = &mut self.history[position];
        let Some(client) = record.client else {
            return FollowUp::Nothing;
        };
        if self.clients[client].outstanding != Some(request_id) {
            return FollowUp::Nothing;
        }
        record.outcome = Outcome::TimedOut;
        record.completed_ms = Some(now_ms);
        let node = record.node;
        self.clients[client].outstanding = None;
        self.clients[client].believed_leader = self.next_node(node);
        FollowUp::Wake { client, ms: 0 }
    }

    /// Counts of each outcome, for transcripts: (committed writes and served reads, rejected,
    /// indeterminate (timed out or unknown), pending).
    #[must_use]
    pub fn summary(&self) -> (usize, usize, usize, usize) {
        let mut counts = (0, 0, 0, 0);
        for record in self.history.iter().filter(|r| r.client.is_some()) {
            match record.outcome {
                Outcome::Committed { .. } | Outcome::Read { .. } => counts.0 += 1,
                Outcome::NotLeader | Outcome::Busy | Outcome::Dropped => counts.1 += 1,
                Outcome::TimedOut | Outcome::Unknown | Outcome::Unexpected => counts.2 += 1,
                Outcome::Pending => counts.3 += 1,
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Clients {
        let mut clients = Clients::new(ClientConfig::default(), 3);
        clients.active = true;
        clients
    }

    #[test]
    fn follows_leader_hint_and_records_history() {
        let mut c = clients();
        let first = c.invoke(0, 0, false).expect("idle client invokes");
        assert_eq!(first.node, NodeId(1));
        assert!(
            c.invoke(0, 1, false).is_none(),
            "one outstanding request at a time"
        );
        let hint = Reply::NotLeader {
            leader_hint: Some(NodeId(3)),
        };
        assert_eq!(
            c.on_reply(first.request_id, &hint, 2, 10),
            FollowUp::Wake { client: 0, ms: 0 }
        );
        let second = c.invoke(0, 2, false).expect("retry");
        assert_eq!(second.node, NodeId(3));
        let committed = Reply::Committed {
            index: LogIndex(2),
            term: Term(1),
        };
        assert_eq!(
            c.on_reply(second.request_id, &committed, 9, 10),
            FollowUp::Wake { client: 0, ms: 10 }
        );
        assert_eq!(c.history()[0].outcome, Outcome::NotLeader);
        assert_eq!(
            c.history()[1].outcome,
            Outcome::Committed {
                index: LogIndex(2),
                term: Term(1)
            }
        );
        assert_eq!(c.summary(), (1, 1, 0, 0));
    }

    #[test]
    fn timeout_moves_to_the_next_node() {
        let mut c = clients();
        let first = c.invoke(0, 0, false).expect("invoke");
        assert_eq!(
            c.on_timeout(first.request_id, 1000),
            FollowUp::Wake { client: 0, ms: 0 }
        );
        assert_eq!(c.invoke(0, 1000, false).map(|i| i.node), Some(NodeId(2)));
        // A stale timeout of the old request changes nothing.
        assert_eq!(c.on_timeout(first.request_id, 1001), FollowUp::Nothing);
    }
}
