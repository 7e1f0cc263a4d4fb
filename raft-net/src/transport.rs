//! Peer messages over UDP: one datagram per message.
//!
//! ```text
//! [magic 0x52 'R'][version 1][flags][raft_core::wire frame][32-byte MAC if flags & KEYED]
//! ```
//!
//! The MAC is keyed BLAKE3 over everything before it, with a key derived from `--cluster-key`.
//! Loss, duplication and reordering are left to Raft's own retries, so sending never waits:
//! a full socket buffer drops the message like the network would. Every inbound datagram that
//! is oversize, undecodable, unauthenticated, from an address that is not a peer, or that names
//! the wrong sender or receiver, is dropped and counted; none can panic or stop the node.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use raft_core::{wire, Envelope, NodeId};
use tokio::net::UdpSocket;

use crate::addresses::AddressBook;
use crate::metrics::{inc, DropReason, Metrics};

const MAGIC: u8 = 0x52;
const VERSION: u8 = 1;
const FLAG_KEYED: u8 = 1;
const HEADER_BYTES: usize = 3;
const MAC_BYTES: usize = 32;
/// Bytes a datagram carries besides the core's wire frame.
pub const DATAGRAM_OVERHEAD_BYTES: usize = HEADER_BYTES + MAC_BYTES;
/// Socket buffers large enough for a burst of full AppendEntries (the kernel may cap them).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Context string for deriving the MAC key from the cluster key (BLAKE3 `derive_key`).
const KEY_CONTEXT: &str = "raft-net 2026 peer datagram MAC v1";

/// Framing, authentication and sender checks; no I/O, so it is easy to test.
#[derive(Debug, Clone)]
pub struct Codec {
    id: NodeId,
    key: Option<[u8; 32]>,
    datagram_bytes_max: usize,
}

impl Codec {
    #[must_use]
    pub fn new(id: NodeId, cluster_key: Option<&str>, datagram_bytes_max: usize) -> Codec {
        Codec {
            id,
            key: cluster_key.map(|key| blake3::derive_key(KEY_CONTEXT, key.as_bytes())),
            datagram_bytes_max,
        }
    }

    /// The datagram for `envelope`, or `None` when it would exceed the limit.
    #[must_use]
    pub fn seal(&self, envelope: &Envelope) -> Option<Vec<u8>> {
        let frame = wire::encode(envelope);
        let mut datagram = Vec::with_capacity(DATAGRAM_OVERHEAD_BYTES + frame.len());
        let flags = if self.key.is_some() { FLAG_KEYED } else { 0 };
        datagram.extend_from_slice(&[MAGIC, VERSION, flags]);
        datagram.extend_from_slice(&frame);
        if let Some(key) = &self.key {
            let mac = blake3::keyed_hash(key, &datagram);
            datagram.extend_from_slice(mac.as_bytes());
        }
        (datagram.len() <= self.datagram_bytes_max).then_some(datagram)
    }

    /// The envelope in a datagram from member `sender` (known by its source address; `None`
    /// for a stranger, taken as who it claims to be), or why it must be dropped.
    pub fn open(&self, datagram: &[u8], sender: Option<NodeId>) -> Result<Envelope, DropReason> {
        if datagram.len() > self.datagram_bytes_max {
            return Err(DropReason::Oversize);
        }
        let Some((&[magic, version, flags], rest)) = datagram.split_first_chunk::<HEADER_BYTES>()
        else {
            return Err(DropReason::Undecodable);
        };
        if magic != MAGIC || version != VERSION {
            return Err(DropReason::Undecodable);
        }
        let frame = match (&self.key, flags) {
            (None, 0) => rest,
            (Some(key), FLAG_KEYED) => {
                let Some(signed_len) = datagram
                    .len()
                    .checked_sub(MAC_BYTES)
                    .filter(|&len| len >= HEADER_BYTES)
                else {
                    return Err(DropReason::Unauthenticated);
                };
                let Ok(mac) = <[u8; MAC_BYTES]>::try_from(&datagram[signed_len..]) else {
                    return Err(DropReason::Unauthenticated);
                };
                // `blake3::Hash` equality is constant time.
                if blake3::keyed_hash(key, &datagram[..signed_len]) != blake3::Hash::from_bytes(mac)
                {
                    return Err(DropReason::Unauthenticated);
                }
                &datagram[HEADER_BYTES..signed_len]
            }
            _ => return Err(DropReason::Unauthenticated),
        };
        let envelope =
            wire::decode(frame, self.datagram_bytes_max).map_err(|_| DropReason::Undecodable)?;
        let sender = sender.unwrap_or(envelope.from);
        if envelope.from != sender || envelope.from == self.id || envelope.to != self.id {
            return Err(DropReason::Misaddressed);
        }
        Ok(envelope)
    }
}

/// The node's UDP socket and its peers.
#[derive(Debug)]
pub struct Transport {
    socket: UdpSocket,
    codec: Codec,
    addresses: Arc<AddressBook>,
    /// Set by the admin API: every datagram in and out is dropped.
    isolated: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Transport {
    /// Binds `addr` with large socket buffers.
    pub fn bind(
        addr: SocketAddr,
        codec: Codec,
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

    /// Checks and decodes a received datagram; `None` (counted) when it must be dropped.
    pub fn accept(&self, datagram: &[u8], from: SocketAddr) -> Option<Envelope> {
        if self.isolated.load(Ordering::Relaxed) {
            self.metrics.count_dropped(DropReason::Isolated);
            return None;
        }
        let sender = self.addresses.id_of(from);
        if sender.is_none() && !self.addresses.adopts_stranger() {
            tracing::debug!(%from, len = datagram.len(), "dropped a datagram from a stranger");
            self.metrics.count_dropped(DropReason::UnknownSender);
            return None;
        }
        match self.codec.open(datagram, sender) {
            Ok(envelope) => {
                if sender.is_none() && self.addresses.adopt(envelope.from, from) {
                    tracing::info!(member = %envelope.from, raft = %from, "contacted by a member");
                }
                inc(&self.metrics.datagrams_in);
                Some(envelope)
            }
            Err(reason) => {
                tracing::debug!(%from, ?reason, len = datagram.len(), "dropped a datagram");
                self.metrics.count_dropped(reason);
                None
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
        let Some(datagram) = self.codec.seal(envelope) else {
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

    #[test]
    fn round_trip_with_and_without_key() {
        for key in [None, Some("secret")] {
            let sender = Codec::new(NodeId(1), key, 1024);
            let receiver = Codec::new(NodeId(2), key, 1024);
            let datagram = sender.seal(&vote_request(1, 2)).unwrap();
            let opened = receiver.open(&datagram, Some(FROM_1));
            assert_eq!(opened, Ok(vote_request(1, 2)));
        }
    }

    #[test]
    fn wrong_or_missing_key_is_unauthenticated() {
        let receiver = Codec::new(NodeId(2), Some("secret"), 1024);
        let from = FROM_1;
        for sender_key in [None, Some("guess")] {
            let sender = Codec::new(NodeId(1), sender_key, 1024);
            let datagram = sender.seal(&vote_request(1, 2)).unwrap();
            assert_eq!(
                receiver.open(&datagram, Some(from)),
                Err(DropReason::Unauthenticated)
            );
        }
        let keyed = Codec::new(NodeId(1), Some("secret"), 1024);
        let mut tampered = keyed.seal(&vote_request(1, 2)).unwrap();
        tampered[5] ^= 1;
        assert_eq!(
            receiver.open(&tampered, Some(from)),
            Err(DropReason::Unauthenticated)
        );
        assert_eq!(
            receiver.open(&[MAGIC, VERSION, FLAG_KEYED], Some(from)),
            Err(DropReason::Unauthenticated)
        );
    }

    #[test]
    fn garbage_oversize_and_spoofed_senders_are_dropped() {
        let codec = Codec::new(NodeId(2), None, 64);
        let from = FROM_1;
        let good = Codec::new(NodeId(1), None, 64)
            .seal(&vote_request(1, 2))
            .unwrap();
        assert_eq!(codec.open(&good, Some(from)), Ok(vote_request(1, 2)));
        assert_eq!(
            codec.open(&good, Some(NodeId(2))),
            Err(DropReason::Misaddressed)
        );
        assert_eq!(codec.open(&[0; 65], Some(from)), Err(DropReason::Oversize));
        for garbage in [
            &[][..],
            &[MAGIC][..],
            &[MAGIC, 9, 0, 1][..],
            &[MAGIC, VERSION, 0, 1, 2, 3][..],
        ] {
            assert_eq!(
                codec.open(garbage, Some(from)),
                Err(DropReason::Undecodable)
            );
        }
        // A peer claiming to be another node, or a message for someone else.
        let spoofed = Codec::new(NodeId(1), None, 64)
            .seal(&vote_request(3, 2))
            .unwrap();
        assert_eq!(
            codec.open(&spoofed, Some(from)),
            Err(DropReason::Misaddressed)
        );
        let elsewhere = Codec::new(NodeId(1), None, 64)
            .seal(&vote_request(1, 5))
            .unwrap();
        assert_eq!(
            codec.open(&elsewhere, Some(from)),
            Err(DropReason::Misaddressed)
        );
    }

    #[test]
    fn seal_refuses_messages_over_the_limit() {
        let codec = Codec::new(NodeId(1), Some("k"), 40);
        assert_eq!(codec.seal(&vote_request(1, 2)), None);
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
        for key in [None, Some("k")] {
            let codec = Codec::new(NodeId(2), key, 2048);
            let valid = Codec::new(NodeId(1), key, 2048)
                .seal(&vote_request(1, 2))
                .unwrap();
            for _ in 0..20_000 {
                let len = (next() % 120) as usize;
                let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                let _ = codec.open(&random, Some(FROM_1));
                let mut mutated = valid.clone();
                let position = (next() as usize) % mutated.len();
                mutated[position] = next() as u8;
                mutated.truncate(mutated.len() - (next() % 3) as usize);
                if let Ok(envelope) = codec.open(&mutated, Some(FROM_1)) {
                    // Without a key, a mutation may still decode; it must be well-addressed.
                    // With one, only an unchanged datagram passes.
                    assert!(key.is_none() || mutated == valid);
                    assert_eq!((envelope.from, envelope.to), (NodeId(1), NodeId(2)));
                }
            }
        }
    }
}
