//! Symmetry reduction over node ids. When the servers are interchangeable, a state and the
//! same state with the servers' names permuted have the same futures up to those names, and
//! the properties do not name servers, so the search need only explore one of them: the
//! model stores every state in a canonical form, the least of its renamings.
//!
//! **When it is on.** The servers are interchangeable when they run the same configuration
//! but for their ids, including the RNG seed (the model seeds every node alike, so timeouts
//! drawn from a range are drawn alike too: the RNG's position moves with the node it belongs
//! to), the same code (a bug of the catalogue is reintroduced on every node), and no part of
//! the model singles one out. Two parts do, and switch symmetry off:
//! - membership changes (`--changes`): the spare server starts with another configuration,
//!   and the checker's log hashes cover membership entries by the ids they list. Without
//!   changes, the only membership entries record incarnations, and their hashes (voters and
//!   learners: all servers, none) are the same under every renaming;
//! - lease reads (`--lease-reads`): the clock ticks the servers in a fixed order.
//!
//! **Soundness.** `raft_core::Rename` commutes with stepping (`raft-core/tests/rename.rs`),
//! the checker's records are renamed with the nodes (`Checker::renamed`), the network and the
//! budgets do not depend on names, and every property asks about the cluster as a whole (two
//! leaders in one term, two entries at one index), never about a named server. So a state
//! reachable within the bound violates a property exactly when its canonical form does, and
//! the canonical forms reachable are those the reduced search explores. `tests/model_check.rs`
//! shows it: the same bugs are found and the same bounds are clean with and without it.
//!
//! **The canonical form.** Each server gets a signature that no renaming changes (its role,
//! term, log shape, durable state, messages waiting for it); servers are ordered by
//! signature, and among servers with equal signatures every order is tried and the one whose
//! renamed state hashes least wins. Renaming is the expensive part, so it is done only for
//! ties and for orders other than the current one.
//!
//! Counterexamples are found among canonical states, whose names may change from one step to
//! the next; [`RaftModel::real_actions`] turns them back into one run of the real cluster.

use raft_core::{NodeId, NodeRenaming, Rename};

use super::{ClusterState, Frame, ModelAction, Network, NodeSlot, RaftModel};

impl RaftModel {
    /// Why this configuration explores every renaming of each state, or `None` when it
    /// explores one per symmetry class (see the module documentation).
    #[must_use]
    pub fn symmetry_off_reason(&self) -> Option<&'static str> {
        if !self.config.symmetry {
            return Some("--no-symmetry");
        }
        if self.config.max_changes > 0 {
            return Some("membership changes add a server with another configuration");
        }
        if self.config.lease_reads {
            return Some("lease reads tick the servers in a fixed order");
        }
        None
    }

    pub(super) fn symmetric(&self) -> bool {
        self.symmetry_off_reason().is_none()
    }

    /// The canonical form of `state`, and the renaming that makes it from `state`.
    #[must_use]
    pub fn canonical(&self, state: ClusterState) -> (ClusterState, NodeRenaming) {
        let signatures: Vec<u64> = (0..state.slots.len())
            .map(|index| signature(&state, index))
            .collect();
        let mut order: Vec<usize> = (0..state.slots.len()).collect();
        order.sort_by_key(|&index| signatures[index]);
        let orders = orders_within_ties(&order, &signatures);

        let mut best: Option<(u64, ClusterState, NodeRenaming)> = None;
        for order in orders {
            let renaming = renaming_of(&order);
            let candidate = if renaming.is_identity() {
                state.clone()
            } else {
                self.renamed_state(&state, &order, &renaming)
            };
            let hash = fingerprint(&candidate);
            if best.as_ref().is_none_or(|(least, _, _)| hash < *least) {
                best = Some((hash, candidate, renaming));
            }
        }
        match best {
            Some((_, canonical, renaming)) => (canonical, renaming),
            None => (state, NodeRenaming::identity()),
        }
    }

    /// `state` with slot `order[k]` moved to position `k` and every id renamed to match.
    fn renamed_state(
        &self,
        state: &ClusterState,
        order: &[usize],
        renaming: &NodeRenaming,
    ) -> ClusterState {
        let interners = &self.interners;
        let slots = order
            .iter()
            .map(|&index| {
                state.slots[index].rename_with(renaming, |slot| {
                    interners.slots.intern(NodeSlot {
                        id: renaming.id(slot.id),
                        node: slot.node.renamed(renaming),
                        pending: slot
                            .pending
                            .iter()
                            .map(|request| request.renamed(renaming))
                            .collect(),
                        durable: slot.durable.rename_with(renaming, |durable| {
                            interners.durable.intern(durable.renamed(renaming))
                        }),
                    })
                })
            })
            .collect();
        let network = state.network.rename_with(renaming, |network| {
            let mut renamed = Network::default();
            for frame in &network.0 {
                renamed.insert(frame.rename_with(renaming, |frame| {
                    interners
                        .frames
                        .intern(Frame::of(&frame.envelope().renamed(renaming)))
                }));
            }
            interners.networks.intern(renamed)
        });
        ClusterState {
            slots,
            network,
            used: state.used,
            checker: state.checker.rename_with(renaming, |checker| {
                interners.checkers.intern(checker.renamed(renaming))
            }),
            committed_membership: state
                .committed_membership
                .rename_with(renaming, |membership| {
                    interners.memberships.intern(membership.renamed(renaming))
                }),
            clients: state.clients.as_ref().map(|clients| {
                clients.rename_with(renaming, |clients| {
                    interners.histories.intern(clients.renamed(renaming))
                })
            }),
            clock: state.clock,
            // A state with a violation has no successors; its text keeps the names it had.
            violation: state.violation.clone(),
            depth: state.depth,
        }
    }

    /// The actions of a path the search found among canonical states, as one run of the
    /// cluster from its initial state under the names it started with.
    #[must_use]
    pub fn real_actions(&self, actions: &[ModelAction]) -> Vec<ModelAction> {
        if !self.symmetric() {
            return actions.to_vec();
        }
        // Invariant: `canonical` is the real state renamed by `to_canonical`.
        let (mut canonical, mut to_canonical) = self.canonical(self.initial_state());
        let mut real = Vec::with_capacity(actions.len());
        for action in actions {
            real.push(action.renamed(&to_canonical.inverse()));
            self.apply(&mut canonical, action);
            let (next, renaming) = self.canonical(canonical);
            canonical = next;
            to_canonical = to_canonical.then(&renaming);
        }
        real
    }
}

/// What no renaming changes about the server in slot `index`: its own state with ids reduced
/// to "itself", "another" or "none", and how many messages wait for it.
fn signature(state: &ClusterState, index: usize) -> u64 {
    let slot = &state.slots[index];
    let id = slot.id;
    let relation = |other: Option<NodeId>| match other {
        None => 0u8,
        Some(other) if other == id => 1,
        Some(_) => 2,
    };
    let node = slot.node.as_ref().map(|node| {
        let status = node.status();
        (
            status.role,
            status.term,
            relation(status.voted_for),
            relation(status.leader_id),
            status.commit_index,
            status.applied_index,
            status.last_log_index,
            status.last_log_term,
            status.durable_index,
            status.last_persist_issued,
            status.last_persist_durable,
            status.messages_held,
        )
    });
    let durable = &slot.durable;
    let waiting = state.network.iter().filter(|frame| frame.to == id).count();
    super::shared::fixed_hasher().hash_one((
        node,
        slot.pending.len(),
        durable.hard_state.current_term,
        relation(durable.hard_state.voted_for),
        durable.entries.len(),
        durable
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included_index),
        waiting,
    ))
}

/// Every order of the slots that sorts them by signature: `sorted` with each run of equal
/// signatures permuted every way.
fn orders_within_ties(sorted: &[usize], signatures: &[u64]) -> Vec<Vec<usize>> {
    let mut orders = vec![Vec::with_capacity(sorted.len())];
    let mut start = 0;
    while start < sorted.len() {
        let signature = signatures[sorted[start]];
        let end = sorted[start..]
            .iter()
            .position(|&index| signatures[index] != signature)
            .map_or(sorted.len(), |length| start + length);
        let group = &sorted[start..end];
        let permutations = permutations(group);
        orders = orders
            .into_iter()
            .flat_map(|prefix| {
                permutations.iter().map(move |permutation| {
                    let mut order = prefix.clone();
                    order.extend_from_slice(permutation);
                    order
                })
            })
            .collect();
        start = end;
    }
    orders
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (position, &first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(position);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

/// The renaming that gives the server in slot `order[k]` the id of slot `k`.
fn renaming_of(order: &[usize]) -> NodeRenaming {
    let pairs = order
        .iter()
        .enumerate()
        .map(|(position, &index)| (slot_id(index), slot_id(position)));
    match NodeRenaming::new(pairs) {
        Ok(renaming) => renaming,
        // `order` is a permutation of the slot indices, so this is a permutation of their ids.
        Err(error) => panic!("model_order_is_a_permutation: {error}"),
    }
}

fn slot_id(index: usize) -> NodeId {
    NodeId(index as u64 + 1)
}

/// The hash of a whole state, to choose among its renamings.
fn fingerprint(state: &ClusterState) -> u64 {
    super::shared::fixed_hasher().hash_one(state)
}

impl ModelAction {
    fn renamed(&self, renaming: &NodeRenaming) -> ModelAction {
        let frame = |frame: &Frame| Frame::of(&frame.envelope().renamed(renaming));
        match self {
            ModelAction::Tick(id) => ModelAction::Tick(renaming.id(*id)),
            ModelAction::Deliver(f) => ModelAction::Deliver(frame(f)),
            ModelAction::Duplicate(f) => ModelAction::Duplicate(frame(f)),
            ModelAction::Drop(f) => ModelAction::Drop(frame(f)),
            ModelAction::Persist(id) => ModelAction::Persist(renaming.id(*id)),
            ModelAction::Crash(id) => ModelAction::Crash(renaming.id(*id)),
            ModelAction::Restart(id) => ModelAction::Restart(renaming.id(*id)),
            ModelAction::Propose(id) => ModelAction::Propose(renaming.id(*id)),
            ModelAction::Compact(id) => ModelAction::Compact(renaming.id(*id)),
            ModelAction::Change(id, change) => {
                ModelAction::Change(renaming.id(*id), change.renamed(renaming))
            }
            ModelAction::Read(id) => ModelAction::Read(renaming.id(*id)),
            ModelAction::Transfer(id, to) => {
                ModelAction::Transfer(renaming.id(*id), renaming.id(*to))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use stateright::Model;

    fn every_renaming() -> Vec<(Vec<usize>, NodeRenaming)> {
        permutations(&[0, 1, 2])
            .into_iter()
            .map(|order| {
                let renaming = renaming_of(&order);
                (order, renaming)
            })
            .collect()
    }

    /// Random walks through the model with reads, transfers, compaction and a timeout range:
    /// at every state, each renaming of it has the same canonical form, and stepping commutes
    /// with renaming.
    #[test]
    fn canonical_forms_do_not_depend_on_names() {
        let mut config = ModelConfig::new(3);
        config.max_compactions = 1;
        config.max_reads = 1;
        config.max_transfers = 1;
        config.check_quorum = true;
        config.election_ticks_max = 3;
        let model = RaftModel::new(config);
        let renamings = every_renaming();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % bound as u64).unwrap_or(0)
        };
        let mut checked = 0;
        for _ in 0..40 {
            let mut state = model.initial_state();
            for _ in 0..30 {
                let mut actions = Vec::new();
                model.actions(&state, &mut actions);
                if actions.is_empty() {
                    break;
                }
                let action = actions[next(actions.len())].clone();
                let canonical = fingerprint(&model.canonical(state.clone()).0);
                let mut stepped = state.clone();
                model.apply(&mut stepped, &action);
                let stepped = fingerprint(&model.canonical(stepped).0);
                for (order, renaming) in &renamings {
                    // `order` moves slot order[k] to k: the inverse renaming's order.
                    let renamed = model.renamed_state(&state, order, renaming);
                    assert_eq!(fingerprint(&model.canonical(renamed.clone()).0), canonical);
                    let mut renamed_stepped = renamed;
                    model.apply(&mut renamed_stepped, &action.renamed(renaming));
                    assert_eq!(
                        fingerprint(&model.canonical(renamed_stepped).0),
                        stepped,
                        "{action} under {renaming:?}"
                    );
                    checked += 1;
                }
                model.apply(&mut state, &action);
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn a_renaming_moves_each_slot_to_its_new_id() {
        let model = RaftModel::new(ModelConfig::new(3));
        let mut state = model.initial_state();
        model.apply(&mut state, &ModelAction::Tick(NodeId(1)));
        model.apply(&mut state, &ModelAction::Tick(NodeId(1)));
        let order = [2, 0, 1];
        let renaming = renaming_of(&order);
        assert_eq!(renaming.id(NodeId(3)), NodeId(1));
        let renamed = model.renamed_state(&state, &order, &renaming);
        for (position, slot) in renamed.slots.iter().enumerate() {
            assert_eq!(slot.id, slot_id(position));
            assert_eq!(slot.node.as_ref().map(raft_core::Node::id), Some(slot.id));
        }
        let candidate = renamed.node(NodeId(2)).expect("up");
        assert_eq!(candidate.role(), raft_core::Role::Candidate);
        assert!(renamed
            .network
            .iter()
            .all(|frame| frame.envelope().from == NodeId(2)));
    }
}
