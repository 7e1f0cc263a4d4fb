//! Running a real state machine in the simulator.
//!
//! By default the simulated nodes replicate the simulator's own machine: the applied log
//! itself, summarized by its chain hash (see [`crate::checker`]). [`Sim::run_machine`]
//! gives every node a replica of any [`StateMachine`] instead: each node applies its committed
//! entries to its own replica, compaction hands the core that replica's snapshot, and an
//! installed snapshot (or the durable one at a restart) restores it. After every event the
//! checker below verifies, on top of everything [`crate::checker`] checks, that the machines
//! agree:
//!
//! - `machine_output_agreement`: every node's output at an applied index is the one the first
//!   node to apply that index got;
//! - `machine_snapshot_agreement`: every node's encoded snapshot after applying an index (any
//!   entry: a no-op too) is the same bytes (compared by hash), and so is every snapshot
//!   installed for that index;
//! - `machine_snapshot_restores`: a snapshot's bytes restore, and the restored machine encodes
//!   the same bytes again; and a node's own snapshot, when it compacts, restores a machine
//!   equal (`PartialEq`) to the replica it was taken from, so a snapshot cannot leave part of
//!   the state out.
//!
//! A machine's own crate runs scenarios ([`crate::scenario::run_machine_script`]) and
//! exploration ([`crate::explore::run_machine_seed`]) with it by implementing [`SimMachine`]:
//! how a scenario's `propose N TEXT` line reads as a command, and what the simulated clients
//! write. raft-net's `examples/locks` does; its simulator test is the worked example.
//!
//! Taking and encoding a snapshot after every applied entry costs O(state) per entry: the
//! checks are meant for the small states of tests and scenarios.
//!
//! [`Sim::run_machine`]: crate::sim::Sim::run_machine

use std::fmt;

use raft_core::{Entry, EntryPayload, LogIndex, NodeId, StateMachine};

use crate::checker::{command_hash, Violation};

/// A state machine the simulator can drive: the [`StateMachine`] contract, plus how scripts and
/// simulated clients make its commands. `PartialEq` compares whole states: a snapshot, restored,
/// must equal the machine it was taken from.
pub trait SimMachine:
    StateMachine<Command: fmt::Debug, Output: Clone + PartialEq + fmt::Debug>
    + PartialEq
    + fmt::Debug
    + 'static
{
    /// The command a scenario's `propose N TEXT` line stands for, or why `text` is none.
    fn parse_command(text: &str) -> Result<Self::Command, String>;

    /// A command simulated client `client` writes; `n` is unique to it (the request's number,
    /// or a number past every request's for a liveness probe, whose `client` is one past the
    /// last client), so commands can be told apart.
    fn workload_command(client: usize, n: u64) -> Self::Command;
}

/// A state machine for a simulation to run ([`Sim::set_machine`](crate::sim::Sim::set_machine),
/// [`RunOptions::machine`](crate::scenario::RunOptions::machine)): every node gets a replica
/// made by the function it was built from.
pub struct Machine(pub(crate) Box<dyn Machines>);

impl Machine {
    /// Replicas of the machine `make` builds, one for each node (a fresh one at every start).
    pub fn new<M: SimMachine>(make: impl Fn() -> M + 'static) -> Machine {
        Machine(Box::new(Replicas::new(make)))
    }
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One node's replica and how far it has applied.
#[derive(Debug)]
struct Replica<M> {
    machine: M,
    applied: LogIndex,
}

/// Every node's replica of `M`, and what the first replica to reach each index had there.
pub(crate) struct Replicas<M: SimMachine> {
    make: Box<dyn Fn() -> M>,
    /// By node id (index 0 unused); `None` while the node is down.
    replicas: Vec<Option<Replica<M>>>,
    /// By log index: the output of the command there.
    outputs: Vec<Option<M::Output>>,
    /// By log index: the hash of the encoded snapshot right after applying it.
    snapshots: Vec<Option<u64>>,
}

impl<M: SimMachine> fmt::Debug for Replicas<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicas")
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

fn slot(id: NodeId) -> usize {
    // Node ids are small: the simulator numbers its nodes from 1.
    usize::try_from(id.0).unwrap_or(usize::MAX)
}

/// A machine's `Debug` form, cut short: a failure report names the difference, not the whole
/// state.
fn abridged(machine: &impl fmt::Debug) -> String {
    const CHARS_MAX: usize = 300;
    let text = format!("{machine:?}");
    match text.char_indices().nth(CHARS_MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn violation(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// What the simulator asks of the machines, whatever their type.
pub(crate) trait Machines: fmt::Debug {
    /// A node (re)starts: a fresh replica, restored from `snapshot` (index and bytes) when its
    /// durable state has one.
    fn start(&mut self, id: NodeId, snapshot: Option<(LogIndex, &[u8])>) -> Result<(), Violation>;
    /// A node went down: its replica is gone with its memory.
    fn stop(&mut self, id: NodeId);
    /// What one step of `id` applied: an installed snapshot, then entries.
    fn after_step(
        &mut self,
        id: NodeId,
        snapshot: Option<(LogIndex, &[u8])>,
        entries: &[Entry],
    ) -> Result<(), Violation>;
    /// The encoded snapshot of `id`'s replica, which must have applied through `index`.
    fn snapshot(&self, id: NodeId, index: LogIndex) -> Result<Vec<u8>, String>;
    /// Checks that `data`, `id`'s snapshot through `index`, restores a machine equal to the
    /// replica it was taken from.
    fn check_snapshot(&self, id: NodeId, index: LogIndex, data: &[u8]) -> Result<(), Violation>;
    /// The bytes of the command `text` stands for.
    fn parse(&self, text: &str) -> Result<Vec<u8>, String>;
    /// The bytes of simulated client `client`'s `n`th command, and how it reads.
    fn workload(&self, client: usize, n: u64) -> (String, Vec<u8>);
    /// The output of the command at `index`, in words, once some node applied it.
    fn output(&self, index: LogIndex) -> Option<String>;
    /// `id`'s replica in words.
    fn describe(&self, id: NodeId) -> Option<String>;
}

impl<M: SimMachine> Replicas<M> {
    pub(crate) fn new(make: impl Fn() -> M + 'static) -> Replicas<M> {
        Replicas {
            make: Box::new(make),
            replicas: Vec::new(),
            outputs: Vec::new(),
            snapshots: Vec::new(),
        }
    }

    fn replica_mut(&mut self, id: NodeId) -> Option<&mut Replica<M>> {
        self.replicas.get_mut(slot(id))?.as_mut()
    }

    /// Records the hash of the snapshot `id` has at `index`, or checks it against the one
    /// recorded.
    fn agree_on_snapshot(
        &mut self,
        id: NodeId,
        index: LogIndex,
        hash: u64,
    ) -> Result<(), Violation> {
        let position = usize::try_from(index.0).unwrap_or(usize::MAX);
        if self.snapshots.len() <= position {
            self.snapshots.resize(position + 1, None);
        }
        match self.snapshots[position] {
            None => {
                self.snapshots[position] = Some(hash);
                Ok(())
            }
            Some(known) if known == hash => Ok(()),
            Some(_) => violation(
                "machine_snapshot_agreement",
                format!("{id}'s machine at {index} encodes a snapshot that differs from another node's at {index}"),
            ),
        }
    }

    fn agree_on_output(
        &mut self,
        id: NodeId,
        index: LogIndex,
        output: M::Output,
    ) -> Result<(), Violation> {
        let position = usize::try_from(index.0).unwrap_or(usize::MAX);
        if self.outputs.len() <= position {
            self.outputs.resize(position + 1, None);
        }
        match &self.outputs[position] {
            None => {
                self.outputs[position] = Some(output);
                Ok(())
            }
            Some(known) if *known == output => Ok(()),
            Some(known) => violation(
                "machine_output_agreement",
                format!("{id} applied {index} with output {output:?}, another node with {known:?}"),
            ),
        }
    }

    /// Restores `id`'s replica from a snapshot through `index`, and checks that it encodes the
    /// same bytes again and agrees with every other snapshot at `index`.
    fn restore(&mut self, id: NodeId, index: LogIndex, data: &[u8]) -> Result<(), Violation> {
        let mut machine = (self.make)();
        if machine.restore(data).is_err() {
            return violation(
                "machine_snapshot_restores",
                format!("{id} cannot restore its machine from the snapshot through {index}"),
            );
        }
        if command_hash(&machine.snapshot_bytes()) != command_hash(data) {
            return violation(
                "machine_snapshot_restores",
                format!(
                    "{id}'s machine restored from the snapshot through {index} encodes other bytes"
                ),
            );
        }
        self.agree_on_snapshot(id, index, command_hash(data))?;
        let position = slot(id);
        if self.replicas.len() <= position {
            self.replicas.resize_with(position + 1, || None);
        }
        self.replicas[position] = Some(Replica {
            machine,
            applied: index,
        });
        Ok(())
    }
}

impl<M: SimMachine> Machines for Replicas<M> {
    fn start(&mut self, id: NodeId, snapshot: Option<(LogIndex, &[u8])>) -> Result<(), Violation> {
        match snapshot {
            Some((index, data)) => self.restore(id, index, data),
            None => {
                let position = slot(id);
                if self.replicas.len() <= position {
                    self.replicas.resize_with(position + 1, || None);
                }
                self.replicas[position] = Some(Replica {
                    machine: (self.make)(),
                    applied: LogIndex::ZERO,
                });
                Ok(())
            }
        }
    }

    fn stop(&mut self, id: NodeId) {
        if let Some(replica) = self.replicas.get_mut(slot(id)) {
            *replica = None;
        }
    }

    fn after_step(
        &mut self,
        id: NodeId,
        snapshot: Option<(LogIndex, &[u8])>,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        if let Some((index, data)) = snapshot {
            self.restore(id, index, data)?;
        }
        for entry in entries {
            let Some(replica) = self.replica_mut(id) else {
                return Ok(());
            };
            replica.applied = entry.index;
            let output = match &entry.payload {
                EntryPayload::Command(bytes) => {
                    Some(replica.machine.apply_bytes(entry.index, bytes))
                }
                // No-ops and membership entries are Raft's: the machine never sees them, but a
                // snapshot may be taken (or installed) at their index too.
                _ => None,
            };
            let hash = command_hash(&replica.machine.snapshot_bytes());
            if let Some(output) = output {
                self.agree_on_output(id, entry.index, output)?;
            }
            self.agree_on_snapshot(id, entry.index, hash)?;
        }
        Ok(())
    }

    fn snapshot(&self, id: NodeId, index: LogIndex) -> Result<Vec<u8>, String> {
        let replica = self
            .replicas
            .get(slot(id))
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("{id} has no machine"))?;
        if replica.applied != index {
            return Err(format!(
                "{id}'s machine applied through {}, not {index}",
                replica.applied
            ));
        }
        Ok(replica.machine.snapshot_bytes())
    }

    fn check_snapshot(&self, id: NodeId, index: LogIndex, data: &[u8]) -> Result<(), Violation> {
        let Some(replica) = self.replicas.get(slot(id)).and_then(Option::as_ref) else {
            return Ok(());
        };
        let mut restored = (self.make)();
        if restored.restore(data).is_err() {
            return violation(
                "machine_snapshot_restores",
                format!("{id}'s own snapshot through {index} does not restore"),
            );
        }
        if restored != replica.machine {
            return violation(
                "machine_snapshot_restores",
                format!(
                    "{id}'s snapshot through {index} restores {} instead of {}",
                    abridged(&restored),
                    abridged(&replica.machine)
                ),
            );
        }
        Ok(())
    }

    fn parse(&self, text: &str) -> Result<Vec<u8>, String> {
        M::parse_command(text).map(|command| M::command_bytes(&command))
    }

    fn workload(&self, client: usize, n: u64) -> (String, Vec<u8>) {
        let command = M::workload_command(client, n);
        (format!("{command:?}"), M::command_bytes(&command))
    }

    fn output(&self, index: LogIndex) -> Option<String> {
        let position = usize::try_from(index.0).ok()?;
        let output = self.outputs.get(position)?.as_ref()?;
        Some(format!("{output:?}"))
    }

    fn describe(&self, id: NodeId) -> Option<String> {
        let replica = self.replicas.get(slot(id))?.as_ref()?;
        Some(format!("at {}: {:?}", replica.applied, replica.machine))
    }
}
