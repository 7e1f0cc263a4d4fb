//! The network model: random latency (which also reorders), loss, duplication, directed link
//! cuts (partitions and isolation are sets of cuts), and links held under manual control by
//! scenarios.

use std::collections::{BTreeMap, VecDeque};

use raft_core::{Envelope, NodeId};

use crate::rng::SimRng;

/// Message behaviour between connected nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a delivered message arrives twice (each copy with its own latency).
    pub duplicate: f64,
    /// Stale duplicates: besides its normal delivery, a message is delivered once more after a
    /// delay in `stale_delay_ms_min..=stale_delay_ms_max`, as a datagram that lingered in the
    /// network would be, to whichever incarnation of the receiver is up by then. With
    /// probability `stale_duplicate`.
    pub stale_duplicate: f64,
    pub stale_delay_ms_min: u64,
    pub stale_delay_ms_max: u64,
    /// The same for `TimeoutNow`, with its own probability and delay range.
    pub stale_timeout_now: f64,
    pub stale_timeout_now_delay_ms_min: u64,
    pub stale_timeout_now_delay_ms_max: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            latency_ms_min: 1,
            latency_ms_max: 5,
            loss: 0.0,
            duplicate: 0.0,
            stale_duplicate: 0.0,
            stale_delay_ms_min: 1_000,
            stale_delay_ms_max: 5_000,
            stale_timeout_now: 0.0,
            stale_timeout_now_delay_ms_min: 1_000,
            stale_timeout_now_delay_ms_max: 5_000,
        }
    }
}

/// What happens to one sent message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Arrives after `first` ms, and a duplicate after `second` ms if set.
    Deliver {
        first: u64,
        second: Option<u64>,
    },
    Cut,
    Lost,
}

#[derive(Debug)]
pub struct Network {
    pub config: NetworkConfig,
    rng: SimRng,
    /// Draws for stale duplicates only, so switching them on leaves every other draw as it was.
    stale_rng: SimRng,
    node_count: usize,
    /// `cut[(from - 1) * n + (to - 1)]`: messages from `from` to `to` are dropped. A flat
    /// matrix, because it is read for every message.
    cut: Vec<bool>,
    /// Links under manual control: arriving messages wait here for `deliver` or `drop`.
    held: BTreeMap<(NodeId, NodeId), VecDeque<Envelope>>,
}

impl Network {
    #[must_use]
    pub fn new(config: NetworkConfig, node_count: usize, seed: u64) -> Network {
        Network {
            config,
            rng: SimRng::new(seed),
            stale_rng: SimRng::new(crate::rng::sub_seed(seed, "stale", 0)),
            node_count,
            cut: vec![false; node_count * node_count],
            held: BTreeMap::new(),
        }
    }

    fn slot(&self, from: NodeId, to: NodeId) -> Option<usize> {
        let from = usize::try_from(from.0).ok()?.checked_sub(1)?;
        let to = usize::try_from(to.0).ok()?.checked_sub(1)?;
        (from < self.node_count && to < self.node_count).then_some(from * self.node_count + to)
    }

    fn nodes(&self) -> impl Iterator<Item = NodeId> {
        (1..=self.node_count as u64).map(NodeId)
    }

    /// Decides the fate of a message sent now.
    pub fn route(&mut self, from: NodeId, to: NodeId) -> Route {
        if self.is_cut(from, to) {
            return Route::Cut;
        }
        if self.rng.chance(self.config.loss) {
            return Route::Lost;
        }
        let first = self
            .rng
            .between(self.config.latency_ms_min, self.config.latency_ms_max);
        let second = self.rng.chance(self.config.duplicate).then(|| {
            self.rng
                .between(self.config.latency_ms_min, self.config.latency_ms_max)
        });
        Route::Deliver { first, second }
    }

    /// For a message just routed for delivery: after how many ms a stale duplicate of it
    /// arrives, if one does.
    pub fn stale_copy(&mut self, timeout_now: bool) -> Option<u64> {
        let config = &self.config;
        let (p, min, max) = if timeout_now {
            (
                config.stale_timeout_now,
                config.stale_timeout_now_delay_ms_min,
                config.stale_timeout_now_delay_ms_max,
            )
        } else {
            (
                config.stale_duplicate,
                config.stale_delay_ms_min,
                config.stale_delay_ms_max,
            )
        };
        self.stale_rng
            .chance(p)
            .then(|| self.stale_rng.between(min, max))
    }

    #[must_use]
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.slot(from, to).is_some_and(|slot| self.cut[slot])
    }

    fn set_cut(&mut self, from: NodeId, to: NodeId, cut: bool) {
        if from == to {
            return;
        }
        if let Some(slot) = self.slot(from, to) {
            self.cut[slot] = cut;
        }
    }

    /// Cuts `from -> to` only: `to` still reaches `from`.
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.set_cut(from, to, true);
    }

    pub fn restore_one_way(&mut self, from: NodeId, to: NodeId) {
        self.set_cut(from, to, false);
    }

    /// Splits the cluster: nodes in different groups cannot talk either way. Nodes in no group
    /// form one more group together.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        let group_of = |node: NodeId| {
            groups
                .iter()
                .position(|group| group.contains(&node))
                .unwrap_or(groups.len())
        };
        let nodes: Vec<NodeId> = self.nodes().collect();
        for &a in &nodes {
            for &b in &nodes {
                let apart = group_of(a) != group_of(b);
                self.set_cut(a, b, apart);
            }
        }
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&mut self, node: NodeId) {
        let nodes: Vec<NodeId> = self.nodes().collect();
        for other in nodes {
            self.set_cut(node, other, true);
            self.set_cut(other, node, true);
        }
    }

    /// Restores every link to and from `node`.
    pub fn rejoin(&mut self, node: NodeId) {
        let nodes: Vec<NodeId> = self.nodes().collect();
        for other in nodes {
            self.set_cut(node, other, false);
            self.set_cut(other, node, false);
        }
    }

    /// Restores every link. Held links stay held: they are a scenario's explicit choice.
    pub fn heal(&mut self) {
        self.cut.fill(false);
    }

    #[must_use]
    pub fn has_cuts(&self) -> bool {
        self.cut.iter().any(|&cut| cut)
    }

    /// Puts `from -> to` under manual control.
    pub fn hold(&mut self, from: NodeId, to: NodeId) {
        self.held.entry((from, to)).or_default();
    }

    #[must_use]
    pub fn is_held(&self, from: NodeId, to: NodeId) -> bool {
        !self.held.is_empty() && self.held.contains_key(&(from, to))
    }

    pub fn push_held(&mut self, envelope: Envelope) {
        self.held
            .entry((envelope.from, envelope.to))
            .or_default()
            .push_back(envelope);
    }

    /// Takes up to `count` waiting messages of a held link, oldest first.
    pub fn take_held(&mut self, from: NodeId, to: NodeId, count: usize) -> Vec<Envelope> {
        let Some(queue) = self.held.get_mut(&(from, to)) else {
            return Vec::new();
        };
        let count = count.min(queue.len());
        queue.drain(..count).collect()
    }

    /// The messages waiting on a held link, oldest first.
    pub fn held(&self, from: NodeId, to: NodeId) -> impl Iterator<Item = &Envelope> {
        self.held.get(&(from, to)).into_iter().flatten()
    }

    /// Messages waiting on a held link.
    #[must_use]
    pub fn held_count(&self, from: NodeId, to: NodeId) -> usize {
        self.held.get(&(from, to)).map_or(0, VecDeque::len)
    }

    /// Ends manual control of a link, returning the messages still waiting.
    pub fn release(&mut self, from: NodeId, to: NodeId) -> Vec<Envelope> {
        self.held
            .remove(&(from, to))
            .map(Vec::from)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: u64) -> NodeId {
        NodeId(id)
    }

    #[test]
    fn partition_cuts_both_ways_between_groups_only() {
        let mut net = Network::new(NetworkConfig::default(), 5, 1);
        net.partition(&[vec![n(1), n(2)], vec![n(3)]]);
        assert!(!net.is_cut(n(1), n(2)));
        assert!(net.is_cut(n(1), n(3)) && net.is_cut(n(3), n(1)));
        // 4 and 5 are in no group: together, apart from the rest.
        assert!(!net.is_cut(n(4), n(5)));
        assert!(net.is_cut(n(4), n(3)) && net.is_cut(n(2), n(5)));
        net.heal();
        assert!(!net.has_cuts());
    }

    #[test]
    fn one_way_cut_leaves_the_reverse_link() {
        let mut net = Network::new(NetworkConfig::default(), 3, 1);
        net.cut_one_way(n(1), n(2));
        assert_eq!(net.route(n(1), n(2)), Route::Cut);
        assert!(matches!(net.route(n(2), n(1)), Route::Deliver { .. }));
    }

    #[test]
    fn isolate_and_rejoin() {
        let mut net = Network::new(NetworkConfig::default(), 3, 1);
        net.isolate(n(2));
        assert!(net.is_cut(n(2), n(1)) && net.is_cut(n(3), n(2)));
        assert!(!net.is_cut(n(1), n(3)));
        net.rejoin(n(2));
        assert!(!net.has_cuts());
    }

    #[test]
    fn certain_loss_and_duplication() {
        let config = NetworkConfig {
            loss: 1.0,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 2, 1);
        assert_eq!(net.route(n(1), n(2)), Route::Lost);
        net.config.loss = 0.0;
        net.config.duplicate = 1.0;
        assert!(matches!(
            net.route(n(1), n(2)),
            Route::Deliver {
                second: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn stale_copies_come_late_and_only_when_switched_on() {
        let mut net = Network::new(NetworkConfig::default(), 2, 1);
        assert_eq!(net.stale_copy(false), None);
        assert_eq!(net.stale_copy(true), None);
        net.config.stale_timeout_now = 1.0;
        assert_eq!(net.stale_copy(false), None);
        let delay = net.stale_copy(true).expect("a TimeoutNow copy");
        assert!((1_000..=5_000).contains(&delay));
    }
}
