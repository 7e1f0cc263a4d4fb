//! Leadership transfer (Raft thesis §3.10): bring the target up to date, then tell it to start
//! an election at once with `TimeoutNow`. Proposals are refused meanwhile so the target can
//! catch up; the transfer is abandoned after an election timeout.

use crate::message::Message;
use crate::node::Node;
use crate::types::{NodeId, Role};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Transfer {
    pub(crate) to: NodeId,
    pub(crate) elapsed_ticks: u32,
}

impl Node {
    pub(crate) fn on_transfer_leader(&mut self, to: NodeId) {
        let valid =
            self.role == Role::Leader && to != self.config.id && self.membership.is_voter(to);
        if !valid {
            self.stats.messages_ignored += 1;
            return;
        }
        if self
            .transfer
            .as_ref()
            .is_some_and(|transfer| transfer.to == to)
        {
            return;
        }
        self.transfer = Some(Transfer {
            to,
            elapsed_ticks: 0,
        });
        self.send_append(to, false);
        self.maybe_send_timeout_now(to);
    }

    /// Sends `TimeoutNow` once `peer`, the transfer target, holds the leader's whole log. Called
    /// on every acknowledgement from it, so a lost `TimeoutNow` is sent again.
    pub(crate) fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let is_target = self
            .transfer
            .as_ref()
            .is_some_and(|transfer| transfer.to == peer);
        let caught_up = self
            .progress
            .get(&peer)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if is_target && caught_up {
            self.forfeit_lease();
            self.send_request(peer, Message::TimeoutNow);
        }
    }

    pub(crate) fn tick_transfer(&mut self) {
        if let Some(transfer) = &mut self.transfer {
            transfer.elapsed_ticks += 1;
            if transfer.elapsed_ticks >= self.config.election_timeout_ticks_max {
                self.transfer = None;
            }
        }
    }
}
