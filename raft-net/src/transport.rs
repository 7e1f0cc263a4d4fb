//! Peer messages over UDP: one datagram per message.
//!
//! ```text
//! unkeyed: [magic 0x52 'R'][version 3][flags 0][cluster][raft_core::wire frame]
//! keyed:   [magic][version][flags KEYED][cluster][stamp][raft_core::wire frame][32-byte MAC]
//! notice:  [magic][version][flags KEYED|NOTICE][cluster][stamp][from u64 LE][to u64 LE][MAC]
//! cluster: [sender's cluster id u64 LE, 0 while it knows none]
//! stamp:   [sender epoch u64 LE][receiver epoch u64 LE][counter u64 LE]
//! ```
//!
//! Version 3 added the cluster id (version 2 datagrams are dropped as `undecodable`). A node
//! drops a datagram naming another cluster than its own as `wrong_cluster`, and says so in its
//! log (naming both ids), so a data dir of another cluster never joins this one; a node that
//! knows no cluster id yet (it joined or returned with an empty data dir) records the first
//! one a member's datagram names (see [`crate::cluster_id`]).
//!
//! With a cluster key, the MAC is keyed BLAKE3 over everything before it, with a key derived
//! from the cluster key, and the stamp it covers makes every datagram usable once, by one
//! incarnation of its receiver:
//!
//! - The *sender epoch* grows with every start of the sender (`storage::next_transport_epoch`),
//!   and the *counter* with every datagram it sends to that receiver. The receiver keeps a
//!   [`ReplayWindow`] per sender and drops repeats and anything of an older epoch as
//!   `replayed`. A restarted sender has a higher epoch, so it is never locked out.
//! - The *receiver epoch* is the sender's knowledge of the receiver's own epoch. A receiver
//!   drops datagrams stamped for another of its incarnations as `stale_epoch`: after it
//!   restarts, it has forgotten its windows, but every datagram captured before names its old
//!   epoch, so none of them is ever accepted again. A sender learns a receiver's epoch from the
//!   receiver's own datagrams, and from *notices*: a node announces its epoch to its peers when
//!   it starts, and answers a datagram stamped with a stale epoch with a notice (at most one per
//!   peer every [`NOTICE_INTERVAL`]). Epochs are not secret; only the MAC is.
//!
//! Loss, duplication and reordering are left to Raft's own retries, so sending never waits:
//! a full socket buffer drops the message like the network would. Every inbound datagram that
//! is oversize, undecodable, unauthenticated, replayed, stamped for another incarnation, from
//! an address that is not a peer, or that names the wrong sender or receiver, is dropped and
//! counted; none can panic or stop the node. A datagram never changes the address book, except
//! that a node started with `--await-join` adopts the first stranger that sends it a valid
//! message, once, and only for an id it has no address for.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use raft_core::{wire, Envelope, NodeId};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::addresses::AddressBook;
use crate::cluster_id::{ClusterId, ClusterIdCell};
use crate::cluster_key::ClusterKey;
use crate::metrics::{inc, DropReason, Metrics};
use crate::replay::ReplayWindow;

const MAGIC: u8 = 0x52;
const VERSION: u8 = 3;
const FLAG_KEYED: u8 = 1;
const FLAG_NOTICE: u8 = 2;
/// The flags of a notice (a pattern cannot spell `FLAG_KEYED | FLAG_NOTICE`).
const FLAGS_KEYED_NOTICE: u8 = FLAG_KEYED | FLAG_NOTICE;
/// Magic, version and flags.
const PREFIX_BYTES: usize = 3;
const CLUSTER_BYTES: usize = 8;
const HEADER_BYTES: usize = PREFIX_BYTES + CLUSTER_BYTES;
const STAMP_BYTES: usize = 24;
const MAC_BYTES: usize = 32;
/// A notice's body: the sender's and the receiver's ids.
const NOTICE_BODY_BYTES: usize = 16;
/// Bytes a datagram carries besides the core's wire frame.
pub const DATAGRAM_OVERHEAD_BYTES: usize = HEADER_BYTES + STAMP_BYTES + MAC_BYTES;
/// Socket buffers large enough for a burst of full AppendEntries (the kernel may cap them).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Context string for deriving the MAC key from the cluster key (BLAKE3 `derive_key`).
pub const KEY_CONTEXT: &str = "raft-net 2026 peer datagram MAC v2";
/// A peer gets at most one notice per this interval, however many stale datagrams it sends.
pub const NOTICE_INTERVAL: Duration = Duration::from_millis(50);
/// A member of another cluster is named in the log at most once per this interval.
const WRONG_CLUSTER_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where a keyed datagram stands in the lives of its sender and receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub sender_epoch: u64,
    /// The receiver's epoch as the sender knows it; 0 while it knows none.
    pub receiver_epoch: u64,
    /// Counts the sender's datagrams to this receiver in this epoch, from 1.
    pub counter: u64,
}

impl Stamp {
    fn write(&self, out: &mut Vec<u8>) {
        for value in [self.sender_epoch, self.receiver_epoch, self.counter] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn read(bytes: &[u8; STAMP_BYTES]) -> Stamp {
        let word = |at: usize| {
            let mut value = [0; 8];
            value.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(value)
        };
        Stamp {
            sender_epoch: word(0),
            receiver_epoch: word(8),
            counter: word(16),
        }
    }
}

/// What a datagram held, once framing, MAC and addressing are checked; `cluster` is the
/// sender's cluster id (`None` while it knows none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A Raft message; its stamp when the datagram was keyed.
    Message {
        envelope: Envelope,
        stamp: Option<Stamp>,
        cluster: Option<ClusterId>,
    },
    /// A peer announcing its epoch (`stamp.sender_epoch`).
    Notice {
        from: NodeId,
        to: NodeId,
        stamp: Stamp,
        cluster: Option<ClusterId>,
    },
}

impl Opened {
    #[must_use]
    pub fn cluster(&self) -> Option<ClusterId> {
        match self {
            Opened::Message { cluster, .. } | Opened::Notice { cluster, .. } => *cluster,
        }
    }

    /// The sender it names.
    #[must_use]
    pub fn from(&self) -> NodeId {
        match self {
            Opened::Message { envelope, .. } => envelope.from,
            Opened::Notice { from, .. } => *from,
        }
    }
}

/// A message the transport let in, and the cluster its sender named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub envelope: Envelope,
    pub cluster: Option<ClusterId>,
}

/// Framing, authentication and sender checks; no I/O and no memory of earlier datagrams, so it
/// is easy to test. Replay checks are the [`Transport`]'s.
#[derive(Debug, Clone)]
pub struct Codec {
    id: NodeId,
    key: Option<[u8; 32]>,
    datagram_bytes_max: usize,
    /// The cluster id sealed datagrams carry.
    cluster: Arc<ClusterIdCell>,
}

impl Codec {
    #[must_use]
    pub fn new(id: NodeId, cluster_key: Option<&ClusterKey>, datagram_bytes_max: usize) -> Codec {
        Codec {
            id,
            key: cluster_key.map(|key| blake3::derive_key(KEY_CONTEXT, key.as_bytes())),
            datagram_bytes_max,
            cluster: Arc::new(ClusterIdCell::new(None)),
        }
    }

    /// Seals datagrams with the cluster id in `cluster` (unknown by default).
    #[must_use]
    pub fn with_cluster(mut self, cluster: Arc<ClusterIdCell>) -> Codec {
        self.cluster = cluster;
        self
    }

    /// The cluster id this codec seals with.
    #[must_use]
    pub fn cluster(&self) -> &ClusterIdCell {
        &self.cluster
    }

    fn write_header(&self, flags: u8, out: &mut Vec<u8>) {
        out.extend_from_slice(&[MAGIC, VERSION, flags]);
        out.extend_from_slice(&self.cluster.wire().to_le_bytes());
    }

    /// Whether datagrams are authenticated (and stamped).
    #[must_use]
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The datagram for `envelope`, or `None` when it would exceed the limit. `stamp` is used
    /// only with a key.
    #[must_use]
    pub fn seal(&self, envelope: &Envelope, stamp: Stamp) -> Option<Vec<u8>> {
        // The frame is encoded in place, behind the header: one buffer, sized once.
        let mut datagram =
            Vec::with_capacity(DATAGRAM_OVERHEAD_BYTES + wire::encoded_len(envelope));
        match &self.key {
            None => self.write_header(0, &mut datagram),
            Some(_) => {
                self.write_header(FLAG_KEYED, &mut datagram);
                stamp.write(&mut datagram);
            }
        }
        wire::encode_into(envelope, &mut datagram);
        self.sign(&mut datagram);
        (datagram.len() <= self.datagram_bytes_max).then_some(datagram)
    }

    /// A notice from this node to `to` announcing `stamp.sender_epoch`; `None` without a key.
    #[must_use]
    pub fn seal_notice(&self, to: NodeId, stamp: Stamp) -> Option<Vec<u8>> {
        self.key.as_ref()?;
        let mut datagram = Vec::with_capacity(DATAGRAM_OVERHEAD_BYTES + NOTICE_BODY_BYTES);
        self.write_header(FLAGS_KEYED_NOTICE, &mut datagram);
        stamp.write(&mut datagram);
        datagram.extend_from_slice(&self.id.0.to_le_bytes());
        datagram.extend_from_slice(&to.0.to_le_bytes());
        self.sign(&mut datagram);
        Some(datagram)
    }

    fn sign(&self, datagram: &mut Vec<u8>) {
        if let Some(key) = &self.key {
            let mac = blake3::keyed_hash(key, datagram);
            datagram.extend_from_slice(mac.as_bytes());
        }
    }

    /// What a datagram from member `sender` holds (the sender is known by its source address;
    /// `None` for a stranger, taken as who it claims to be), or why it must be dropped.
    pub fn open(&self, datagram: &[u8], sender: Option<NodeId>) -> Result<Opened, DropReason> {
        if datagram.len() > self.datagram_bytes_max {
            return Err(DropReason::Oversize);
        }
        let Some((&[magic, version, flags], rest)) = datagram.split_first_chunk::<PREFIX_BYTES>()
        else {
            return Err(DropReason::Undecodable);
        };
        if magic != MAGIC || version != VERSION {
            return Err(DropReason::Undecodable);
        }
        let Some(cluster) = rest.first_chunk::<CLUSTER_BYTES>() else {
            return Err(DropReason::Undecodable);
        };
        let cluster = ClusterId::from_wire(u64::from_le_bytes(*cluster));
        let (body, stamp) = match (&self.key, flags) {
            (None, 0) => (&datagram[HEADER_BYTES..], None),
            (Some(key), FLAG_KEYED | FLAGS_KEYED_NOTICE) => {
                let (body, stamp) = Self::verify(key, datagram)?;
                (body, Some(stamp))
            }
            _ => return Err(DropReason::Unauthenticated),
        };
        if flags & FLAG_NOTICE != 0 {
            let Some(stamp) = stamp else {
                return Err(DropReason::Unauthenticated);
            };
            let Ok(ids) = <[u8; NOTICE_BODY_BYTES]>::try_from(body) else {
                return Err(DropReason::Undecodable);
            };
            let id = |at: usize| {
                let mut value = [0; 8];
                value.copy_from_slice(&ids[at..at + 8]);
                NodeId(u64::from_le_bytes(value))
            };
            let (from, to) = (id(0), id(8));
            self.check_addressing(from, to, sender)?;
            return Ok(Opened::Notice {
                from,
                to,
                stamp,
                cluster,
            });
        }
        let envelope =
            wire::decode(body, self.datagram_bytes_max).map_err(|_| DropReason::Undecodable)?;
        self.check_addressing(envelope.from, envelope.to, sender)?;
        Ok(Opened::Message {
            envelope,
            stamp,
            cluster,
        })
    }

    /// The body and stamp of a keyed datagram whose MAC is right.
    fn verify<'a>(key: &[u8; 32], datagram: &'a [u8]) -> Result<(&'a [u8], Stamp), DropReason> {
        let Some(signed_len) = datagram
            .len()
            .checked_sub(MAC_BYTES)
            .filter(|&len| len >= HEADER_BYTES + STAMP_BYTES)
        else {
            return Err(DropReason::Unauthenticated);
        };
        let Ok(mac) = <[u8; MAC_BYTES]>::try_from(&datagram[signed_len..]) else {
            return Err(DropReason::Unauthenticated);
        };
        // `blake3::Hash` equality is constant time.
        if blake3::keyed_hash(key, &datagram[..signed_len]) != blake3::Hash::from_bytes(mac) {
            return Err(DropReason::Unauthenticated);
        }
        let Some(stamp) = datagram[HEADER_BYTES..].first_chunk::<STAMP_BYTES>() else {
            return Err(DropReason::Unauthenticated);
        };
        Ok((
            &datagram[HEADER_BYTES + STAMP_BYTES..signed_len],
            Stamp::read(stamp),
        ))
    }

    fn check_addressing(
        &self,
        from: NodeId,
        to: NodeId,
        sender: Option<NodeId>,
    ) -> Result<(), DropReason> {
        let sender = sender.unwrap_or(from);
        if from != sender || from == self.id || to != self.id {
            return Err(DropReason::Misaddressed);
        }
        Ok(())
    }
}

/// What this node knows of one peer, for stamping and checking keyed datagrams.
#[derive(Debug, Default)]
struct PeerEpochs {
    /// The peer's epoch, as learned from its datagrams; 0 while unknown.
    epoch: u64,
    /// Datagrams sent to the peer in this node's epoch.
    sent: u64,
    /// Which of the peer's datagrams this node accepted.
    window: ReplayWindow,
    last_notice: Option<Instant>,
    /// When a datagram of this peer naming another cluster was last logged.
    last_wrong_cluster_log: Option<Instant>,
}

/// The node's UDP socket and its peers.
#[derive(Debug)]
pub struct Transport {
    socket: UdpSocket,
    codec: Codec,
    /// This node's own epoch (unique to this start of the process).
    epoch: u64,
    peers: Mutex<BTreeMap<NodeId, PeerEpochs>>,
    /// When a stranger (`--await-join`) was last sent a notice.
    last_stranger_notice: Mutex<Option<Instant>>,
    /// When a stranger's datagram naming another cluster was last logged (one clock for all
    /// strangers: their claimed ids cannot be allowed to grow a map).
    last_stranger_wrong_cluster_log: Mutex<Option<Instant>>,
    addresses: Arc<AddressBook>,
    /// Set by the admin API: every datagram in and out is dropped.
    isolated: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Transport {
    /// Binds `addr` with large socket buffers. `epoch` must exceed every epoch this node had
    /// before (see `storage::next_transport_epoch`).
    pub fn bind(
        addr: SocketAddr,
        codec: Codec,
        epoch: u64,
        addresses: Arc<AddressBook>,
        isolated: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Transport> {
        let domain = socket2::Domain::for_address(addr);
        let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
        // Larger buffers absorb bursts of appends; the kernel caps them at its maximum, which
        // is fine: a smaller buffer only means more loss for Raft to retry.
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        Ok(Transport {
            socket,
            codec,
            epoch,
            peers: Mutex::new(BTreeMap::new()),
            last_stranger_notice: Mutex::new(None),
            last_stranger_wrong_cluster_log: Mutex::new(None),
            addresses,
            isolated,
            metrics,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits for the next datagram (cancel safe). `buf` must hold one more byte than the
    /// datagram limit so oversize datagrams can be told apart.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// The next datagram if one is already queued.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.try_recv_from(buf)
    }

    /// A buffer sized for `recv`.
    #[must_use]
    pub fn recv_buffer(&self) -> Vec<u8> {
        vec![0; self.codec.datagram_bytes_max + 1]
    }

    // Each use is a few field updates; a panic cannot leave them half done in a way that
    // matters, so a poisoned lock is used as is.
    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, PeerEpochs>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells every peer in `ids` this node's epoch, so their first datagrams to it are not
    /// dropped as stamped for an earlier incarnation. Nothing to do without a key. Waits until
    /// the new socket is writable: sends never wait, so before that they would be lost.
    pub async fn announce(&self, ids: impl IntoIterator<Item = NodeId>) {
        if !self.codec.is_keyed() {
            return;
        }
        if let Err(error) = self.socket.writable().await {
            tracing::debug!(%error, "the Raft socket does not become writable");
            return;
        }
        for id in ids {
            if let Some(addr) = self.addresses.raft_addr(id) {
                self.send_notice(id, addr, 0);
            }
        }
    }

    /// Checks and decodes a received datagram; `None` (counted) when it must be dropped or
    /// was a notice. The caller records the cluster id of what it accepts when it has none.
    pub fn accept(&self, datagram: &[u8], from: SocketAddr) -> Option<Received> {
        if self.isolated.load(Ordering::Relaxed) {
            self.metrics.count_dropped(DropReason::Isolated);
            return None;
        }
        let sender = self.addresses.id_of(from);
        if sender.is_none() && !self.addresses.adopts_stranger() {
            tracing::debug!(%from, len = datagram.len(), "dropped a datagram from a stranger");
            // A member of another cluster that knows this node (a member of an old cluster on
            // its old data dir, say) is told apart, so that the log says why it is refused.
            let reason = match self.codec.open(datagram, None) {
                Ok(opened) if !self.codec.cluster().admits(opened.cluster()) => {
                    let mut last = self
                        .last_stranger_wrong_cluster_log
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    self.log_wrong_cluster(&opened, from, &mut last);
                    DropReason::WrongCluster
                }
                _ => DropReason::UnknownSender,
            };
            self.metrics.count_dropped(reason);
            return None;
        }
        let mut cluster = None;
        let opened = self.codec.open(datagram, sender).and_then(|opened| {
            cluster = opened.cluster();
            self.check_cluster(&opened, from)?;
            self.check_stamp(opened, from, sender.is_none())
        });
        match opened {
            Ok(Some(envelope)) => {
                if sender.is_none() {
                    // A stranger's message counts only if it is the one adoption.
                    if !self.addresses.adopt(envelope.from, from) {
                        self.metrics.count_dropped(DropReason::UnknownSender);
                        return None;
                    }
                    tracing::info!(member = %envelope.from, raft = %from, "contacted by a member");
                }
                inc(&self.metrics.datagrams_in);
                Some(Received { envelope, cluster })
            }
            Ok(None) => None,
            Err(reason) => {
                tracing::debug!(%from, ?reason, len = datagram.len(), "dropped a datagram");
                self.metrics.count_dropped(reason);
                None
            }
        }
    }

    /// Refuses a datagram that names another cluster than this node's, and says so in the log
    /// (at most once per peer every `WRONG_CLUSTER_LOG_INTERVAL`): the operator must learn
    /// that a data dir of another cluster is talking to this one.
    fn check_cluster(&self, opened: &Opened, from: SocketAddr) -> Result<(), DropReason> {
        if self.codec.cluster().admits(opened.cluster()) {
            return Ok(());
        }
        let mut peers = self.peers();
        let state = peers.entry(opened.from()).or_default();
        self.log_wrong_cluster(opened, from, &mut state.last_wrong_cluster_log);
        Err(DropReason::WrongCluster)
    }

    /// Names both clusters in the log, unless `last` says it was done within
    /// `WRONG_CLUSTER_LOG_INTERVAL`.
    fn log_wrong_cluster(&self, opened: &Opened, from: SocketAddr, last: &mut Option<Instant>) {
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < WRONG_CLUSTER_LOG_INTERVAL) {
            return;
        }
        *last = Some(now);
        let peer = opened.from();
        let show = |id: Option<ClusterId>| id.map_or_else(String::new, |id| id.to_string());
        let theirs = show(opened.cluster());
        let mine = show(self.codec.cluster().get());
        tracing::error!(
            member = %peer,
            raft = %from,
            their_cluster = %theirs,
            this_cluster = %mine,
            "refusing datagrams of another cluster: {peer} at {from} belongs to cluster {theirs}, this node's data dir to cluster {mine}; a data dir of one cluster cannot join another (start the node that is in the wrong cluster from an empty data dir, with --initial-cluster-state existing or --join, to rejoin as a new server)"
        );
    }

    /// The replay and epoch checks of a keyed datagram that passed the codec; notices are
    /// consumed here (`Ok(None)`).
    fn check_stamp(
        &self,
        opened: Opened,
        from: SocketAddr,
        stranger: bool,
    ) -> Result<Option<Envelope>, DropReason> {
        let (peer, stamp, envelope) = match opened {
            Opened::Message {
                envelope,
                stamp: None,
                ..
            } => return Ok(Some(envelope)),
            Opened::Message {
                envelope,
                stamp: Some(stamp),
                ..
            } => (envelope.from, stamp, Some(envelope)),
            Opened::Notice {
                from: peer, stamp, ..
            } => (peer, stamp, None),
        };
        let mut peers = self.peers();
        let state = peers.entry(peer).or_default();
        // Learning a peer's epoch only ever moves it forward, so an old datagram replayed
        // cannot make this node stamp for a dead incarnation.
        state.epoch = state.epoch.max(stamp.sender_epoch);
        let stale = stamp.receiver_epoch != self.epoch;
        let Some(envelope) = envelope else {
            inc(&self.metrics.notices_received);
            drop(peers);
            if stale {
                // The peer does not know this incarnation yet.
                self.maybe_notice(peer, from, stranger);
            }
            return Ok(None);
        };
        if stale {
            drop(peers);
            self.maybe_notice(peer, from, stranger);
            return Err(DropReason::StaleEpoch);
        }
        if !state.window.accept(stamp.sender_epoch, stamp.counter) {
            return Err(DropReason::Replayed);
        }
        Ok(Some(envelope))
    }

    /// Sends `peer` a notice, unless one went to it less than `NOTICE_INTERVAL` ago. A member
    /// is answered at its address in the book; a stranger (only while this node waits to be
    /// adopted) at the address the datagram came from.
    fn maybe_notice(&self, peer: NodeId, from: SocketAddr, stranger: bool) {
        let now = Instant::now();
        let recent =
            |last: Option<Instant>| last.is_some_and(|at| now.duration_since(at) < NOTICE_INTERVAL);
        let (addr, peer_epoch) = {
            let mut peers = self.peers();
            let state = peers.entry(peer).or_default();
            let mut stranger_notice = self
                .last_stranger_notice
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let last = if stranger {
                &mut *stranger_notice
            } else {
                &mut state.last_notice
            };
            if recent(*last) {
                return;
            }
            let addr = if stranger {
                Some(from)
            } else {
                self.addresses.raft_addr(peer)
            };
            let Some(addr) = addr else { return };
            *last = Some(now);
            (addr, state.epoch)
        };
        if !self.send_notice(peer, addr, peer_epoch) {
            // Not sent: let the next stale datagram try again.
            let mut peers = self.peers();
            let state = peers.entry(peer).or_default();
            if stranger {
                *self
                    .last_stranger_notice
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
            } else {
                state.last_notice = None;
            }
        }
    }

    /// Sends a notice of this node's epoch; whether it left.
    fn send_notice(&self, peer: NodeId, addr: SocketAddr, peer_epoch: u64) -> bool {
        let stamp = Stamp {
            sender_epoch: self.epoch,
            receiver_epoch: peer_epoch,
            counter: 0,
        };
        let Some(datagram) = self.codec.seal_notice(peer, stamp) else {
            return false;
        };
        match self.socket.try_send_to(&datagram, addr) {
            Ok(_) => {
                inc(&self.metrics.notices_sent);
                true
            }
            Err(error) => {
                tracing::debug!(%addr, %error, "notice not sent");
                inc(&self.metrics.datagrams_send_failed);
                false
            }
        }
    }

    /// Sends one message without waiting; failures count as loss.
    pub fn send(&self, envelope: &Envelope) {
        if self.isolated.load(Ordering::Relaxed) {
            return;
        }
        let Some(addr) = self.addresses.raft_addr(envelope.to) else {
            inc(&self.metrics.datagrams_send_failed);
            return;
        };
        let stamp = if self.codec.is_keyed() {
            let mut peers = self.peers();
            let state = peers.entry(envelope.to).or_default();
            state.sent += 1;
            Stamp {
                sender_epoch: self.epoch,
                receiver_epoch: state.epoch,
                counter: state.sent,
            }
        } else {
            Stamp::default()
        };
        let Some(datagram) = self.codec.seal(envelope, stamp) else {
            tracing::warn!(to = %envelope.to, kind = envelope.message.kind(), "message exceeds the datagram limit; not sent");
            inc(&self.metrics.datagrams_send_failed);
            return;
        };
        match self.socket.try_send_to(&datagram, addr) {
            Ok(_) => inc(&self.metrics.datagrams_out),
            Err(error) => {
                tracing::debug!(%addr, %error, "datagram not sent");
                inc(&self.metrics.datagrams_send_failed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Message, RequestVote, Term};

    fn vote_request(from: u64, to: u64) -> Envelope {
        Envelope {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(3),
            incarnation: raft_core::Incarnation(0),
            message: Message::RequestVote(RequestVote {
                last_log_index: raft_core::LogIndex(7),
                last_log_term: Term(2),
                leadership_transfer: false,
            }),
        }
    }

    const FROM_1: NodeId = NodeId(1);
    const STAMP: Stamp = Stamp {
        sender_epoch: 11,
        receiver_epoch: 22,
        counter: 33,
    };

    fn key(text: &str) -> ClusterKey {
        ClusterKey::from_bytes(*blake3::hash(text.as_bytes()).as_bytes())
    }

    fn message(
        opened: Result<Opened, DropReason>,
    ) -> Result<(Envelope, Option<Stamp>), DropReason> {
        match opened? {
            Opened::Message {
                envelope, stamp, ..
            } => Ok((envelope, stamp)),
            Opened::Notice { .. } => panic!("a notice"),
        }
    }

    #[test]
    fn round_trip_with_and_without_key() {
        let secret = key("secret");
        for key in [None, Some(&secret)] {
            let sender = Codec::new(NodeId(1), key, 1024);
            let receiver = Codec::new(NodeId(2), key, 1024);
            let datagram = sender.seal(&vote_request(1, 2), STAMP).unwrap();
            let stamp = key.map(|_| STAMP);
            assert_eq!(
                message(receiver.open(&datagram, Some(FROM_1))),
                Ok((vote_request(1, 2), stamp))
            );
        }
    }

    #[test]
    fn wrong_or_missing_key_is_unauthenticated() {
        let secret = key("secret");
        let guess = key("guess");
        let receiver = Codec::new(NodeId(2), Some(&secret), 1024);
        let from = FROM_1;
        for sender_key in [None, Some(&guess)] {
            let sender = Codec::new(NodeId(1), sender_key, 1024);
            let datagram = sender.seal(&vote_request(1, 2), STAMP).unwrap();
            assert_eq!(
                receiver.open(&datagram, Some(from)),
                Err(DropReason::Unauthenticated)
            );
        }
        let keyed = Codec::new(NodeId(1), Some(&secret), 1024);
        let sealed = keyed.seal(&vote_request(1, 2), STAMP).unwrap();
        // Any byte changed, the stamp's included, breaks the MAC.
        for position in [
            2,
            HEADER_BYTES,
            HEADER_BYTES + 9,
            HEADER_BYTES + STAMP_BYTES + 1,
        ] {
            let mut tampered = sealed.clone();
            tampered[position] ^= 1;
            assert_eq!(
                receiver.open(&tampered, Some(from)),
                Err(DropReason::Unauthenticated),
                "byte {position}"
            );
        }
        assert_eq!(
            receiver.open(
                &[MAGIC, VERSION, FLAG_KEYED, 0, 0, 0, 0, 0, 0, 0, 0],
                Some(from)
            ),
            Err(DropReason::Unauthenticated)
        );
    }

    #[test]
    fn notices_carry_the_epoch_and_are_addressed() {
        let secret = key("secret");
        let sender = Codec::new(NodeId(1), Some(&secret), 1024);
        let receiver = Codec::new(NodeId(2), Some(&secret), 1024);
        let notice = sender.seal_notice(NodeId(2), STAMP).unwrap();
        assert_eq!(
            receiver.open(&notice, Some(FROM_1)),
            Ok(Opened::Notice {
                from: NodeId(1),
                to: NodeId(2),
                stamp: STAMP,
                cluster: None,
            })
        );
        // From the address of another member, or for another node.
        assert_eq!(
            receiver.open(&notice, Some(NodeId(3))),
            Err(DropReason::Misaddressed)
        );
        let elsewhere = sender.seal_notice(NodeId(5), STAMP).unwrap();
        assert_eq!(
            receiver.open(&elsewhere, Some(FROM_1)),
            Err(DropReason::Misaddressed)
        );
        assert_eq!(
            Codec::new(NodeId(1), None, 1024).seal_notice(NodeId(2), STAMP),
            None
        );
    }

    #[test]
    fn garbage_oversize_and_spoofed_senders_are_dropped() {
        let codec = Codec::new(NodeId(2), None, 64);
        let from = FROM_1;
        let good = Codec::new(NodeId(1), None, 64)
            .seal(&vote_request(1, 2), STAMP)
            .unwrap();
        assert_eq!(
            message(codec.open(&good, Some(from))),
            Ok((vote_request(1, 2), None))
        );
        assert_eq!(
            codec.open(&good, Some(NodeId(2))),
            Err(DropReason::Misaddressed)
        );
        assert_eq!(codec.open(&[0; 65], Some(from)), Err(DropReason::Oversize));
        for garbage in [
            &[][..],
            &[MAGIC][..],
            &[MAGIC, 9, 0, 1][..],
            &[MAGIC, 1, 0, 1][..],
            &[MAGIC, VERSION, 0, 1, 2, 3][..],
        ] {
            assert_eq!(
                codec.open(garbage, Some(from)),
                Err(DropReason::Undecodable)
            );
        }
        // A peer claiming to be another node, or a message for someone else.
        let spoofed = Codec::new(NodeId(1), None, 64)
            .seal(&vote_request(3, 2), STAMP)
            .unwrap();
        assert_eq!(
            codec.open(&spoofed, Some(from)),
            Err(DropReason::Misaddressed)
        );
        let elsewhere = Codec::new(NodeId(1), None, 64)
            .seal(&vote_request(1, 5), STAMP)
            .unwrap();
        assert_eq!(
            codec.open(&elsewhere, Some(from)),
            Err(DropReason::Misaddressed)
        );
    }

    #[test]
    fn seal_refuses_messages_over_the_limit() {
        let codec = Codec::new(NodeId(1), Some(&key("k")), 60);
        assert_eq!(codec.seal(&vote_request(1, 2), STAMP), None);
    }

    /// Random bytes and mutated real datagrams: `open` returns a verdict, never panics.
    #[test]
    fn arbitrary_datagrams_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            // xorshift64: a fixed sequence, so a failure reproduces.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let secret = key("k");
        for key in [None, Some(&secret)] {
            let codec = Codec::new(NodeId(2), key, 2048);
            let sender = Codec::new(NodeId(1), key, 2048);
            let valid = [
                sender.seal(&vote_request(1, 2), STAMP).unwrap(),
                sender
                    .seal_notice(NodeId(2), STAMP)
                    .unwrap_or_else(|| sender.seal(&vote_request(1, 2), STAMP).unwrap()),
            ];
            for round in 0..20_000 {
                let len = (next() % 120) as usize;
                let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                let _ = codec.open(&random, Some(FROM_1));
                let original = &valid[round % 2];
                let mut mutated = original.clone();
                let position = (next() as usize) % mutated.len();
                mutated[position] = next() as u8;
                mutated.truncate(mutated.len() - (next() % 3) as usize);
                if let Ok(opened) = codec.open(&mutated, Some(FROM_1)) {
                    // Without a key, a mutation may still decode; it must be well-addressed.
                    // With one, only an unchanged datagram passes.
                    assert!(key.is_none() || mutated == *original);
                    let (from, to) = match opened {
                        Opened::Message { envelope, .. } => (envelope.from, envelope.to),
                        Opened::Notice { from, to, .. } => (from, to),
                    };
                    assert_eq!((from, to), (NodeId(1), NodeId(2)));
                }
            }
        }
    }

    #[tokio::test]
    async fn datagrams_of_another_cluster_are_refused_and_unknown_ones_let_in() {
        let cluster = |value: u64| Arc::new(ClusterIdCell::new(ClusterId::from_wire(value)));
        let bind = |id: u64, cell: Arc<ClusterIdCell>, metrics: Arc<Metrics>| {
            let codec = Codec::new(NodeId(id), None, 2048).with_cluster(cell);
            Transport::bind(
                "127.0.0.1:0".parse().unwrap(),
                codec,
                1,
                Arc::new(AddressBook::new()),
                Arc::new(AtomicBool::new(false)),
                metrics,
            )
            .unwrap()
        };
        let metrics = Arc::new(Metrics::default());
        let mine = bind(2, cluster(7), Arc::clone(&metrics));
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        mine.addresses
            .insert(NodeId(1), from, "127.0.0.1:2".to_string());
        let sealed_by = |value: u64| {
            Codec::new(NodeId(1), None, 2048)
                .with_cluster(cluster(value))
                .seal(&vote_request(1, 2), STAMP)
                .unwrap()
        };
        assert_eq!(mine.accept(&sealed_by(8), from), None);
        assert_eq!(metrics.dropped(DropReason::WrongCluster), 1);
        let own = mine.accept(&sealed_by(7), from).unwrap();
        assert_eq!(own.cluster, ClusterId::from_wire(7));
        // A stranger of another cluster (a member of an old cluster that still knows this
        // node) is told from any other stranger.
        let stranger: SocketAddr = "127.0.0.1:3".parse().unwrap();
        assert_eq!(mine.accept(&sealed_by(8), stranger), None);
        assert_eq!(metrics.dropped(DropReason::WrongCluster), 2);
        assert_eq!(mine.accept(&sealed_by(7), stranger), None);
        assert_eq!(metrics.dropped(DropReason::UnknownSender), 1);
        // A sender that knows no cluster yet (a server that joined) is let in.
        let unknown = mine.accept(&sealed_by(0), from).unwrap();
        assert_eq!(unknown.cluster, None);
        // A node that knows none lets anything in, and hands the caller what it named.
        let new = bind(2, cluster(0), Arc::new(Metrics::default()));
        new.addresses
            .insert(NodeId(1), from, "127.0.0.1:2".to_string());
        let learned = new.accept(&sealed_by(8), from).unwrap();
        assert_eq!(learned.cluster, ClusterId::from_wire(8));
        assert_eq!(metrics.dropped(DropReason::WrongCluster), 2);
        // Datagrams carry the sealer's id, right after magic, version and flags.
        assert_eq!(
            &sealed_by(9)[PREFIX_BYTES..HEADER_BYTES],
            &9u64.to_le_bytes()
        );
    }

    /// Two transports on loopback sockets, each knowing the other.
    struct Pair {
        one: Transport,
        two: Transport,
        two_metrics: Arc<Metrics>,
    }

    fn pair(secret: &ClusterKey, epochs: (u64, u64)) -> Pair {
        let bind = |id: u64, epoch: u64, metrics: Arc<Metrics>| {
            let codec = Codec::new(NodeId(id), Some(secret), 2048);
            let addresses = Arc::new(AddressBook::new());
            let transport = Transport::bind(
                "127.0.0.1:0".parse().unwrap(),
                codec,
                epoch,
                Arc::clone(&addresses),
                Arc::new(AtomicBool::new(false)),
                metrics,
            )
            .unwrap();
            (transport, addresses)
        };
        let two_metrics = Arc::new(Metrics::default());
        let (one, one_book) = bind(1, epochs.0, Arc::new(Metrics::default()));
        let (two, two_book) = bind(2, epochs.1, Arc::clone(&two_metrics));
        let one_addr = one.local_addr().unwrap();
        let two_addr = two.local_addr().unwrap();
        for book in [&one_book, &two_book] {
            book.insert(NodeId(1), one_addr, "127.0.0.1:1".to_string());
            book.insert(NodeId(2), two_addr, "127.0.0.1:2".to_string());
        }
        Pair {
            one,
            two,
            two_metrics,
        }
    }

    /// Receives what `transport` got within a short while: the messages it accepted, and the
    /// raw datagrams that carried them.
    async fn drain(transport: &Transport) -> (Vec<Envelope>, Vec<(Vec<u8>, SocketAddr)>) {
        let mut buf = transport.recv_buffer();
        let mut accepted = Vec::new();
        let mut raw = Vec::new();
        while let Ok(Ok((len, from))) =
            tokio::time::timeout(Duration::from_millis(100), transport.recv(&mut buf)).await
        {
            if let Some(received) = transport.accept(&buf[..len], from) {
                accepted.push(received.envelope);
                raw.push((buf[..len].to_vec(), from));
            }
        }
        (accepted, raw)
    }

    #[tokio::test]
    async fn epochs_are_learned_replays_and_stale_epochs_dropped() {
        let secret = key("replay");
        let pair = pair(&secret, (100, 200));
        pair.one.socket.writable().await.unwrap();
        pair.two.socket.writable().await.unwrap();
        // Before any notice, node 1 stamps for an unknown epoch: dropped, answered by a notice.
        pair.one.send(&vote_request(1, 2));
        let (accepted, _) = drain(&pair.two).await;
        assert!(accepted.is_empty());
        assert_eq!(pair.two_metrics.dropped(DropReason::StaleEpoch), 1);
        let (accepted, _) = drain(&pair.one).await;
        assert!(accepted.is_empty(), "the notice is not a message");
        // Now node 1 knows node 2's epoch.
        pair.one.send(&vote_request(1, 2));
        let (accepted, raw) = drain(&pair.two).await;
        assert_eq!(accepted, vec![vote_request(1, 2)]);
        let (captured, from) = raw[0].clone();
        for _ in 0..1000 {
            assert_eq!(pair.two.accept(&captured, from), None);
        }
        assert_eq!(pair.two_metrics.dropped(DropReason::Replayed), 1000);
        assert_eq!(pair.two_metrics.datagrams_in.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn restarts_lock_out_neither_side_and_old_datagrams_stay_dead() {
        let secret = key("restart");
        let first = pair(&secret, (100, 200));
        first.one.announce([NodeId(2)]).await;
        first.two.announce([NodeId(1)]).await;
        drain(&first.two).await;
        drain(&first.one).await;
        first.one.send(&vote_request(1, 2));
        let (accepted, raw) = drain(&first.two).await;
        assert_eq!(
            accepted.len(),
            1,
            "announced epochs make the first datagram count"
        );
        let (captured, _) = raw[0].clone();

        // Node 2 restarts (a new epoch, windows forgotten): the captured datagram names its
        // old epoch, however often it comes.
        let second = pair(&secret, (100, 201));
        let one_addr = second.one.local_addr().unwrap();
        second.two.socket.writable().await.unwrap();
        for _ in 0..10 {
            assert_eq!(second.two.accept(&captured, one_addr), None);
        }
        assert_eq!(second.two_metrics.dropped(DropReason::StaleEpoch), 10);

        // Node 1 restarts with a higher epoch and counters from 1 again: accepted once node 2
        // has its notice; node 1's previous incarnation is refused from then on.
        second.one.announce([NodeId(2)]).await;
        drain(&second.two).await;
        drain(&second.one).await;
        second.one.send(&vote_request(1, 2));
        let (accepted, _) = drain(&second.two).await;
        assert_eq!(accepted.len(), 1);
        let restarted = pair(&secret, (101, 201));
        let notice = restarted
            .one
            .codec
            .seal_notice(
                NodeId(2),
                Stamp {
                    sender_epoch: 101,
                    receiver_epoch: 201,
                    counter: 0,
                },
            )
            .unwrap();
        assert_eq!(second.two.accept(&notice, one_addr), None);
        let newer = restarted
            .one
            .codec
            .seal(
                &vote_request(1, 2),
                Stamp {
                    sender_epoch: 101,
                    receiver_epoch: 201,
                    counter: 1,
                },
            )
            .unwrap();
        assert_eq!(
            second.two.accept(&newer, one_addr).map(|r| r.envelope),
            Some(vote_request(1, 2))
        );
        let older = second
            .one
            .codec
            .seal(
                &vote_request(1, 2),
                Stamp {
                    sender_epoch: 100,
                    receiver_epoch: 201,
                    counter: 50,
                },
            )
            .unwrap();
        assert_eq!(second.two.accept(&older, one_addr), None);
        assert_eq!(second.two_metrics.dropped(DropReason::Replayed), 1);
    }
}
