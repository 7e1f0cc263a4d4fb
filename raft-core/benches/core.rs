//! Core throughput: a 3-node cluster driven in one thread with instant persistence (commit
//! with one proposal in flight, with 64 and 256 separate proposals per round, and with one
//! 256-command batch per round), plus the per-message costs of the hottest paths (a
//! follower's heartbeat, the leader's handling of an append response, the wire codec for a
//! 64-entry AppendEntries). Run with `cargo bench -p raft-core --bench core`.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use raft_core::{
    Action, AppendEntries, AppendEntriesResponse, AppendResult, Config, Entry, EntryPayload,
    Envelope, Input, LogIndex, Message, Node, NodeId, RequestId, Role, Term,
};

/// Three nodes, FIFO delivery, persistence completes right after the step that asked for it.
/// The driver reuses one action buffer (`Node::step_into`), as a real driver would.
struct Cluster {
    nodes: Vec<Node>,
    queue: VecDeque<Envelope>,
    committed: u64,
    next_request: u64,
    actions: Vec<Action>,
    /// The index each node last compacted its log through.
    compacted: [LogIndex; 3],
}

impl Cluster {
    fn new() -> Cluster {
        let voters = [NodeId(1), NodeId(2), NodeId(3)];
        let nodes = voters
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, voters);
                config.uncommitted_entries_max = 1 << 20;
                Node::new(config).expect("valid config")
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            queue: VecDeque::new(),
            committed: 0,
            next_request: 0,
            actions: Vec::new(),
            compacted: [LogIndex::ZERO; 3],
        };
        while cluster.nodes[0].role() != Role::Leader {
            cluster.step(0, Input::Tick);
            cluster.deliver();
        }
        cluster
    }

    fn step(&mut self, position: usize, input: Input) {
        let mut next = Some(input);
        while let Some(input) = next.take() {
            let mut actions = std::mem::take(&mut self.actions);
            self.nodes[position].step_into(input, &mut actions);
            for action in actions.drain(..) {
                match action {
                    // Instant persistence: done as soon as this step's actions are carried out.
                    Action::Persist(request) => {
                        next = Some(Input::PersistDone {
                            persist_id: request.persist_id,
                        });
                    }
                    Action::Send(envelope) => self.queue.push_back(envelope),
                    Action::Apply { entries } => {
                        black_box(entries);
                    }
                    Action::ApplySnapshot { snapshot } => {
                        black_box(snapshot);
                    }
                    Action::Reply { reply, .. } => {
                        if matches!(reply, raft_core::Reply::Committed { .. }) {
                            self.committed += 1;
                        }
                    }
                }
            }
            self.actions = actions;
        }
    }

    fn deliver(&mut self) {
        while let Some(envelope) = self.queue.pop_front() {
            let position = (envelope.to.0 - 1) as usize;
            self.step(position, Input::Receive(envelope));
        }
        self.compact_now_and_then();
    }

    /// Keeps the logs short, as a real deployment does: without it a throughput run grows
    /// each log by millions of entries (hundreds of MB), and the timings measure page faults
    /// and reallocation of the ever larger log instead of the steady state.
    fn compact_now_and_then(&mut self) {
        const KEEP_AT_MOST: u64 = 8192;
        for position in 0..self.nodes.len() {
            let applied = self.nodes[position].applied_index();
            if applied.0 - self.compacted[position].0 >= KEEP_AT_MOST {
                self.compacted[position] = applied;
                self.step(
                    position,
                    Input::Compact {
                        index: applied,
                        data: Vec::new(),
                    },
                );
            }
        }
    }

    fn propose(&mut self, command: &[u8]) {
        self.next_request += 1;
        let request_id = RequestId(self.next_request);
        self.step(
            0,
            Input::Propose {
                request_id,
                command: command.to_vec(),
            },
        );
    }
}

impl Cluster {
    /// `count` commands in one `Input::ProposeBatch`.
    fn propose_batch(&mut self, command: &[u8], count: u64) {
        let proposals = (0..count)
            .map(|_| {
                self.next_request += 1;
                (RequestId(self.next_request), command.to_vec())
            })
            .collect();
        self.step(0, Input::ProposeBatch { proposals });
    }
}

fn propose_commit(c: &mut Criterion) {
    let command = [7u8; 16];
    let mut group = c.benchmark_group("three_nodes");
    group.throughput(Throughput::Elements(1));
    group.bench_function("propose_to_commit_1_in_flight", |b| {
        let mut cluster = Cluster::new();
        b.iter(|| {
            let before = cluster.committed;
            cluster.propose(&command);
            cluster.deliver();
            assert_eq!(cluster.committed, before + 1);
        });
    });
    for batch in [64u64, 256] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(format!("propose_{batch}_then_commit"), |b| {
            let mut cluster = Cluster::new();
            b.iter(|| {
                let before = cluster.committed;
                for _ in 0..batch {
                    cluster.propose(&command);
                }
                cluster.deliver();
                assert_eq!(cluster.committed, before + batch);
            });
        });
    }
    // The same 256 commands as one batch: one append, one persist and one AppendEntries per
    // follower carry them all.
    let batch = 256u64;
    group.throughput(Throughput::Elements(batch));
    group.bench_function(format!("propose_batch_{batch}_then_commit"), |b| {
        let mut cluster = Cluster::new();
        b.iter(|| {
            let before = cluster.committed;
            cluster.propose_batch(&command, batch);
            cluster.deliver();
            assert_eq!(cluster.committed, before + batch);
        });
    });
    group.finish();
}

fn follower_with_log() -> Node {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let mut follower = Node::new(Config::new(NodeId(2), voters)).expect("valid config");
    let entries = (1..=10)
        .map(|i| Entry {
            index: LogIndex(i),
            term: Term(1),
            payload: EntryPayload::Noop,
        })
        .collect();
    let _ = follower.step(Input::Receive(Envelope {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        incarnation: raft_core::Incarnation(0),
        message: Message::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries,
            leader_commit: LogIndex(0),
            read_round: 0,
        }),
    }));
    let _ = follower.step(Input::PersistDone {
        persist_id: raft_core::PersistId(1),
    });
    assert_eq!(
        follower.status().last_persist_durable,
        raft_core::PersistId(1)
    );
    follower
}

fn single_steps(c: &mut Criterion) {
    let heartbeat = Input::Receive(Envelope {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        incarnation: raft_core::Incarnation(0),
        message: Message::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(10),
            prev_log_term: Term(1),
            entries: Vec::new(),
            leader_commit: LogIndex(10),
            read_round: 0,
        }),
    });
    let mut follower = follower_with_log();
    c.bench_function("follower_step_heartbeat", |b| {
        b.iter(|| black_box(follower.step(heartbeat.clone())));
    });
    // The same with the driver's action buffer reused: no allocation at all.
    let mut actions = Vec::new();
    c.bench_function("follower_step_into_heartbeat", |b| {
        b.iter(|| {
            follower.step_into(heartbeat.clone(), &mut actions);
            black_box(&actions);
            actions.clear();
        });
    });

    let mut cluster = Cluster::new();
    for _ in 0..100 {
        cluster.propose(b"x");
    }
    cluster.deliver();
    let ack = Input::Receive(Envelope {
        from: NodeId(2),
        to: NodeId(1),
        term: cluster.nodes[0].term(),
        incarnation: raft_core::Incarnation(0),
        message: Message::AppendEntriesResponse(AppendEntriesResponse {
            read_round: 0,
            result: AppendResult::Success {
                match_index: cluster.nodes[0].last_log_index(),
            },
        }),
    });
    c.bench_function("leader_step_append_response", |b| {
        b.iter(|| black_box(cluster.nodes[0].step(ack.clone())));
    });
    c.bench_function("leader_step_into_append_response", |b| {
        b.iter(|| {
            cluster.nodes[0].step_into(ack.clone(), &mut actions);
            black_box(&actions);
            actions.clear();
        });
    });
}

fn wire(c: &mut Criterion) {
    let envelope = Envelope {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        incarnation: raft_core::Incarnation(0),
        message: Message::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(1000),
            prev_log_term: Term(3),
            entries: (1001..1065)
                .map(|i| Entry {
                    index: LogIndex(i),
                    term: Term(3),
                    payload: EntryPayload::Command(vec![42; 128].into()),
                })
                .collect(),
            leader_commit: LogIndex(999),
            read_round: 0,
        }),
    };
    let frame = raft_core::wire::encode(&envelope);
    c.bench_function("encode_append_64x128B", |b| {
        b.iter(|| black_box(raft_core::wire::encode(black_box(&envelope))));
    });
    c.bench_function("decode_append_64x128B", |b| {
        b.iter_batched(
            || frame.clone(),
            |frame| black_box(raft_core::wire::decode(&frame, usize::MAX)),
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, propose_commit, single_steps, wire);
criterion_main!(benches);
