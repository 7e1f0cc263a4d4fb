//! Snapshots and log compaction (Raft §7): the application compacts the log behind a snapshot
//! of its state machine; the leader streams the snapshot in chunks to a follower that needs
//! entries it no longer has; the follower installs it once complete.

use alloc::vec::Vec;

use crate::action::Reply;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, Message};
use crate::node::Node;
use crate::persist::{Snapshot, SnapshotMeta};
use crate::progress::ReplicationState;
use crate::shared_bytes::SharedBytes;
use crate::types::{LogIndex, NodeId, Role};

impl Node {
    pub(crate) fn on_compact(&mut self, index: LogIndex, data: Vec<u8>) {
        let Some(term) = self.log.term_at(index) else {
            self.stats.messages_ignored += 1;
            return;
        };
        if index <= self.log.snapshot_index() || index > self.applied_index {
            self.stats.messages_ignored += 1;
            return;
        }
        let (membership, _) = self.membership_at(index);
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_included_index: index,
                last_included_term: term,
                membership,
            },
            data: data.into(),
        };
        self.log.compact_to(index, term);
        self.out.snapshot_to_persist = Some(snapshot.clone());
        self.snapshot = Some(snapshot);
    }

    /// Sends `peer` the next chunk of the current snapshot from `offset`.
    pub(crate) fn send_snapshot_chunk(&mut self, peer: NodeId, offset: u64) {
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let total_bytes = snapshot.data.len() as u64;
        // A chunk offset only means something for the snapshot it was sent from.
        let resuming = self.progress.get(&peer).is_some_and(|progress| {
            matches!(
                progress.state,
                ReplicationState::Snapshot { last_included_index, .. }
                    if last_included_index == snapshot.meta.last_included_index
            )
        });
        let offset = if resuming { offset } else { 0 };
        let start = usize::try_from(offset.min(total_bytes)).unwrap_or(snapshot.data.len());
        let end = start
            .saturating_add(self.config.snapshot_chunk_bytes_max)
            .min(snapshot.data.len());
        let last_included_index = snapshot.meta.last_included_index;
        let request = InstallSnapshot {
            meta: snapshot.meta.clone(),
            total_bytes,
            offset: start as u64,
            data: snapshot.data[start..end].to_vec(),
        };
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.state = ReplicationState::Snapshot {
                last_included_index,
                offset: start as u64,
                paused: true,
            };
            progress.inflight.clear();
        }
        self.send_request(peer, Message::InstallSnapshot(request));
    }

    pub(crate) fn on_install_snapshot(&mut self, leader: NodeId, request: InstallSnapshot) {
        if !self.accept_leader(leader) {
            return;
        }
        let index = request.meta.last_included_index;
        if index <= self.commit_index && !crate::bugs::reintroduced!(self, SnapshotOverNewerLog) {
            // Everything it covers is already committed here.
            self.respond_snapshot(leader, index, request.total_bytes, true);
            return;
        }
        let forged = request.meta.last_included_term > self.current_term;
        if forged || request.total_bytes > self.config.snapshot_bytes_max {
            self.stats.messages_ignored += 1;
            return;
        }
        let incoming = self
            .incoming_snapshot
            .take()
            .filter(|incoming| incoming.meta == request.meta)
            .unwrap_or(Snapshot {
                meta: request.meta.clone(),
                data: SharedBytes::default(),
            });
        let mut incoming = incoming;
        if request.offset == incoming.data.len() as u64 {
            incoming.data.extend_from_slice(&request.data);
        }
        let received = incoming.data.len() as u64;
        if received > request.total_bytes {
            self.stats.messages_ignored += 1;
            return;
        }
        if received < request.total_bytes {
            self.incoming_snapshot = Some(incoming);
            self.respond_snapshot(leader, index, received, false);
            return;
        }
        self.install_snapshot(incoming);
        self.respond_snapshot(leader, index, received, true);
    }

    /// Adopts a complete snapshot from the leader: the log keeps what follows it only if it
    /// agrees with the snapshot's last entry (Raft §7).
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.last_included_index;
        let term = snapshot.meta.last_included_term;
        let keeps_suffix = self.log.term_at(index) == Some(term);
        // Proposals the snapshot covers: only the one at its last index can be told apart by
        // term; for the others the snapshot does not say which entries it applied. Proposals
        // after it stay pending until their index commits.
        let after = self.pending_proposals.split_off(&index.next());
        let covered = core::mem::replace(&mut self.pending_proposals, after);
        for (proposal_index, (proposal_term, request_id)) in covered {
            let reply = match (proposal_index == index, proposal_term == term) {
                (true, true) => Reply::Committed {
                    index: proposal_index,
                    term: proposal_term,
                },
                (true, false) => Reply::Dropped {
                    index: proposal_index,
                    term: proposal_term,
                },
                (false, _) => Reply::Unknown {
                    index: proposal_index,
                    term: proposal_term,
                },
            };
            self.reply(request_id, reply);
        }
        self.log.compact_to(index, term);
        if !keeps_suffix {
            self.persist.on_truncate(index.next());
        }
        self.snapshot = Some(snapshot.clone());
        self.recompute_membership();
        self.commit_index = self.commit_index.max(index);
        self.applied_index = index;
        self.incoming_snapshot = None;
        self.out.snapshot_to_persist = Some(snapshot.clone());
        self.out.snapshot_to_apply = Some(snapshot);
    }

    fn respond_snapshot(
        &mut self,
        leader: NodeId,
        last_included_index: LogIndex,
        received: u64,
        installed: bool,
    ) {
        self.respond(
            leader,
            Message::InstallSnapshotResponse(InstallSnapshotResponse {
                last_included_index,
                received_bytes: received,
                installed,
            }),
        );
    }

    pub(crate) fn on_install_snapshot_response(
        &mut self,
        follower: NodeId,
        response: &InstallSnapshotResponse,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.progress.get_mut(&follower) else {
            return;
        };
        let ReplicationState::Snapshot {
            last_included_index,
            offset,
            paused,
        } = progress.state
        else {
            return;
        };
        if response.last_included_index != last_included_index {
            return;
        }
        if !response.installed && paused && response.received_bytes == offset {
            // An answer to the chunk before the one in flight (a duplicate, when a resend
            // crossed the first answer). Sending the chunk in flight again would duplicate
            // every later chunk too; the heartbeat resends it if it was lost.
            self.stats.messages_ignored += 1;
            return;
        }
        if response.installed {
            let index = last_included_index;
            progress.match_index = progress.match_index.max(index);
            progress.advanced_since_heartbeat = true;
            progress.become_probe(progress.match_index.next());
            self.maybe_advance_commit();
            self.send_append(follower, true);
        } else {
            self.send_snapshot_chunk(follower, response.received_bytes);
        }
    }
}
