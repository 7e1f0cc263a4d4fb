//! Equality and hashing of whole nodes, for explicit-state model checking: a checker that
//! explores every interleaving of inputs stores each state it has seen by its hash and must
//! recognise a state reached again along another path.
//!
//! Two nodes are equal when they are in the same protocol state: every `step` with the same
//! input gives both the same actions and leaves them equal again. That covers the durable state
//! (term, vote, log, snapshot), the volatile protocol state (role, indexes, timers, progress,
//! votes, pending reads, proposals and held messages), the configuration, the reintroduced
//! bugs, and the RNG's position. It leaves out what can never change a step's result:
//! - `stats`, counters for traces and metrics;
//! - `ticks` without `Config::lease_reads`, the only feature that reads it;
//! - the RNG's position when the election timeout range is a single value (see `timer.rs`);
//! - the step's staging buffers, which are empty between steps;
//! - the order of held messages that wait for the same persist: they are released together,
//!   in one step, so their order is only the order of that step's `Send` actions (a candidate
//!   holds its vote requests in peer id order, which a renaming of the ids would change).
//!
//! The `Hash` is deterministic (no addresses, no random state), so equal nodes hash alike in
//! every process; which hash function turns it into a number is the caller's choice.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::hash::{Hash, Hasher};

use crate::message::Envelope;
use crate::node::Node;
use crate::persist::PersistTracker;
use crate::types::{NodeId, PersistId};

impl Node {
    /// The fields that decide this node's behaviour, as tuples of at most 12 (the largest
    /// tuples `Hash` and `PartialEq` cover). Destructuring names every field, so a new field
    /// cannot be left out by accident: it must be added here or explicitly ignored.
    fn behaviour(&self) -> impl Hash + PartialEq + '_ {
        let Node {
            config,
            current_term,
            voted_for,
            log,
            membership,
            membership_index,
            snapshot,
            incoming_snapshot,
            early_appends,
            role,
            leader_id,
            commit_index,
            applied_index,
            election_timer,
            heartbeat_elapsed_ticks,
            ticks,
            persist,
            votes_granted,
            self_vote_persist,
            pre_votes_granted,
            progress,
            check_quorum_elapsed_ticks,
            transfer,
            reads,
            pending_proposals,
            stats: _,
            out: _,
            bugs,
        } = self;
        let lease_ticks = config.lease_reads.then_some(*ticks);
        let PersistTracker {
            last_issued,
            durable,
            in_flight,
            durable_index,
            held,
        } = persist;
        let persist = (
            last_issued,
            durable,
            in_flight,
            durable_index,
            HeldMessages(held),
        );
        (
            (
                config,
                current_term,
                voted_for,
                log,
                membership,
                membership_index,
                snapshot,
                incoming_snapshot,
            ),
            (
                role,
                leader_id,
                commit_index,
                applied_index,
                election_timer,
                heartbeat_elapsed_ticks,
                lease_ticks,
                persist,
            ),
            (
                votes_granted,
                self_vote_persist,
                pre_votes_granted,
                progress,
                check_quorum_elapsed_ticks,
                transfer,
                reads,
                pending_proposals,
                bugs,
                early_appends,
            ),
        )
    }
}

/// Held messages as a sequence of sets, one per persist id (see the module documentation):
/// compared and hashed in (persist id, destination) order, ties in the order they were held.
struct HeldMessages<'a>(&'a VecDeque<(PersistId, Envelope)>);

impl HeldMessages<'_> {
    fn key(held: &(PersistId, Envelope)) -> (PersistId, NodeId) {
        (held.0, held.1.to)
    }

    /// Calls `f` with the messages in canonical order; sorts a copy only when the queue is
    /// not in that order already (the common case holds one message, or none).
    fn in_order<R>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = &(PersistId, Envelope)>) -> R,
    ) -> R {
        if self.0.iter().is_sorted_by_key(HeldMessages::key) {
            return f(&mut self.0.iter());
        }
        let mut sorted: Vec<&(PersistId, Envelope)> = self.0.iter().collect();
        sorted.sort_by_key(|held| HeldMessages::key(held));
        f(&mut sorted.into_iter())
    }
}

impl PartialEq for HeldMessages<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.in_order(|mine| other.in_order(|theirs| mine.eq(theirs)))
    }
}

impl Hash for HeldMessages<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        self.in_order(|held| held.for_each(|message| message.hash(state)));
    }
}

/// Equal protocol state (see the module documentation): not every counter is equal.
impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        // Both sides have the same opaque type, the tuple `behaviour` builds.
        same(self.behaviour(), other.behaviour())
    }
}

fn same<T: PartialEq>(a: T, b: T) -> bool {
    a == b
}

impl Eq for Node {}

/// Consistent with `PartialEq`: equal nodes hash alike.
impl Hash for Node {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.behaviour().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;
    use core::hash::{Hash, Hasher};

    use crate::action::Action;
    use crate::config::Config;
    use crate::input::Input;
    use crate::node::Node;
    use crate::types::{NodeId, Role};

    /// FNV-1a: a fixed hash function, so the test does not depend on a seeded one.
    struct Fnv(u64);

    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }

        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
    }

    fn hash(node: &Node) -> u64 {
        let mut hasher = Fnv(0xCBF2_9CE4_8422_2325);
        node.hash(&mut hasher);
        hasher.finish()
    }

    fn config(min: u32, max: u32) -> Config {
        let mut config = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        config.heartbeat_interval_ticks = 1;
        config.election_timeout_ticks_min = min;
        config.election_timeout_ticks_max = max;
        config.pre_vote = false;
        config
    }

    /// Ticks until the node campaigns; returns the actions of that step.
    fn campaign(node: &mut Node) -> Vec<Action> {
        for _ in 0..=node.config.election_timeout_ticks_max {
            let actions = node.step(Input::Tick);
            if node.role() == Role::Candidate {
                return actions;
            }
        }
        panic!("no election within the longest timeout");
    }

    #[test]
    fn equal_nodes_reached_by_different_paths_are_equal_and_hash_alike() {
        let mut a = Node::new(config(3, 3)).expect("valid");
        let mut b = a.clone();
        assert_eq!(a, b);
        let _ = campaign(&mut a);
        let _ = campaign(&mut b);
        // A message for another node changes only a counter.
        let stray = crate::message::Envelope {
            from: NodeId(2),
            to: NodeId(9),
            term: crate::types::Term(1),
            incarnation: crate::types::Incarnation(0),
            message: crate::message::Message::TimeoutNow,
        };
        let _ = b.step(Input::Receive(stray));
        assert_ne!(a.stats, b.stats);
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn protocol_state_tells_nodes_apart() {
        let fresh = Node::new(config(3, 3)).expect("valid");
        let mut ticked = fresh.clone();
        let _ = ticked.step(Input::Tick);
        assert_ne!(fresh, ticked, "the election timer advanced");
        assert_ne!(hash(&fresh), hash(&ticked));
        let mut candidate = fresh.clone();
        let actions = campaign(&mut candidate);
        let Some(Action::Persist(request)) = actions.first() else {
            panic!("a candidate persists its term and vote: {actions:?}");
        };
        let mut voted = candidate.clone();
        let _ = voted.step(Input::PersistDone {
            persist_id: request.persist_id,
        });
        assert_ne!(candidate, voted, "the own vote became durable");
        assert_ne!(hash(&candidate), hash(&voted));
    }

    #[test]
    fn the_rng_position_counts_only_when_timeouts_are_drawn_from_a_range() {
        // Two nodes whose timers were reset a different number of times but stand at the same
        // tick of the same timeout.
        let reset_twice = |config: Config| {
            let mut node = Node::new(config).expect("valid");
            node.election_timer.reset();
            node
        };
        let fixed = Node::new(config(3, 3)).expect("valid");
        assert_eq!(fixed, reset_twice(config(3, 3)));
        assert_eq!(hash(&fixed), hash(&reset_twice(config(3, 3))));
        let ranged = Node::new(config(3, 9)).expect("valid");
        let mut other = reset_twice(config(3, 9));
        other.election_timer.timeout_ticks = ranged.election_timer.timeout_ticks;
        assert_ne!(ranged, other, "the next draw may differ");
    }

    #[test]
    fn held_messages_waiting_for_one_persist_are_a_set() {
        // A candidate holds its vote requests until its term is durable: one per peer, in peer
        // order, all released by the same persist.
        let mut candidate = Node::new(config(3, 3)).expect("valid");
        let _ = campaign(&mut candidate);
        let held: Vec<_> = candidate.persist.held.iter().cloned().collect();
        assert_eq!(held.len(), 2, "{held:?}");
        let mut reordered = candidate.clone();
        reordered.persist.held = held.iter().rev().cloned().collect();
        assert_eq!(candidate, reordered);
        assert_eq!(hash(&candidate), hash(&reordered));
        // Messages waiting for different persists are released at different times.
        let mut later = reordered.clone();
        later.persist.held[0].0 = later.persist.held[0].0.next();
        assert_ne!(reordered, later);
        assert_ne!(hash(&reordered), hash(&later));
    }
}
