//! Where each member listens: its Raft (UDP) address and its HTTP address.
//!
//! Seeded from `--peer` flags and from what the data dir holds, then kept up to date by the
//! driver as `SetAddress` commands are applied, so a server that joins later is reachable by
//! every member. The transport reads it on every datagram and HTTP for redirects; only the
//! driver writes it, rarely, so a `RwLock` is uncontended.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use raft_core::NodeId;

#[derive(Debug, Default)]
struct Inner {
    raft: BTreeMap<NodeId, SocketAddr>,
    by_raft: HashMap<SocketAddr, NodeId>,
    http: BTreeMap<NodeId, String>,
}

/// The address book, shared by the driver, the transport and HTTP.
#[derive(Debug, Default)]
pub struct AddressBook {
    inner: RwLock<Inner>,
    /// A node waiting to be added (`--await-join`) knows no member yet: it adopts the first
    /// stranger that writes to it (the leader adding it), then the log tells it the rest.
    adopts_stranger: AtomicBool,
}

/// One member's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddress {
    pub raft: SocketAddr,
    pub http: String,
}

impl AddressBook {
    #[must_use]
    pub fn new() -> AddressBook {
        AddressBook::default()
    }

    // A panic while holding the lock cannot leave the maps half-updated in a way that matters
    // (each update is a few inserts), so a poisoned lock is used as is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records (or moves) member `id`.
    pub fn insert(&self, id: NodeId, raft: SocketAddr, http: String) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = inner.raft.insert(id, raft) {
            inner.by_raft.remove(&old);
        }
        inner.by_raft.insert(raft, id);
        inner.http.insert(id, http);
    }

    /// Accept the next stranger as the member it claims to be.
    pub fn adopt_next_stranger(&self) {
        self.adopts_stranger.store(true, Ordering::Relaxed);
    }

    /// Whether a datagram from an unknown address may still be adopted.
    #[must_use]
    pub fn adopts_stranger(&self) -> bool {
        self.adopts_stranger.load(Ordering::Relaxed)
    }

    /// Records the stranger at `raft` as member `id` (its HTTP address comes later, through the
    /// log); only once, only after `adopt_next_stranger`, and never for an id that already has
    /// an address: a datagram never moves a member.
    pub fn adopt(&self, id: NodeId, raft: SocketAddr) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.raft.contains_key(&id) || inner.by_raft.contains_key(&raft) {
            return false;
        }
        if !self.adopts_stranger.swap(false, Ordering::Relaxed) {
            return false;
        }
        inner.raft.insert(id, raft);
        inner.by_raft.insert(raft, id);
        true
    }

    /// Every member with a Raft address, in id order.
    #[must_use]
    pub fn ids(&self) -> Vec<NodeId> {
        self.read().raft.keys().copied().collect()
    }

    #[must_use]
    pub fn raft_addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.read().raft.get(&id).copied()
    }

    /// The member whose Raft address is `addr`.
    #[must_use]
    pub fn id_of(&self, addr: SocketAddr) -> Option<NodeId> {
        self.read().by_raft.get(&addr).copied()
    }

    #[must_use]
    pub fn http_addr(&self, id: NodeId) -> Option<String> {
        self.read().http.get(&id).cloned()
    }

    /// Every HTTP address on record, in id order.
    #[must_use]
    pub fn http_addrs(&self) -> Vec<String> {
        self.read().http.values().cloned().collect()
    }

    #[must_use]
    pub fn get(&self, id: NodeId) -> Option<MemberAddress> {
        let inner = self.read();
        Some(MemberAddress {
            raft: *inner.raft.get(&id)?,
            http: inner.http.get(&id)?.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_a_member_forgets_its_old_address() {
        let book = AddressBook::new();
        let first: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let second: SocketAddr = "127.0.0.1:9101".parse().unwrap();
        book.insert(NodeId(2), first, "127.0.0.1:8001".to_string());
        assert_eq!(book.id_of(first), Some(NodeId(2)));
        book.insert(NodeId(2), second, "127.0.0.1:8101".to_string());
        assert_eq!(book.id_of(first), None);
        assert_eq!(book.id_of(second), Some(NodeId(2)));
        assert_eq!(book.raft_addr(NodeId(2)), Some(second));
        assert_eq!(book.http_addr(NodeId(2)).as_deref(), Some("127.0.0.1:8101"));
    }

    #[test]
    fn adopts_one_stranger_only_when_asked() {
        let book = AddressBook::new();
        let leader: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:9002".parse().unwrap();
        assert!(!book.adopt(NodeId(1), leader));
        book.adopt_next_stranger();
        assert!(book.adopt(NodeId(1), leader));
        assert!(!book.adopt(NodeId(2), other));
        assert_eq!(book.id_of(leader), Some(NodeId(1)));
        assert_eq!(book.id_of(other), None);
        assert_eq!(book.http_addr(NodeId(1)), None);
    }

    #[test]
    fn a_datagram_never_moves_a_known_member() {
        let book = AddressBook::new();
        let real: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let attacker: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        book.insert(NodeId(1), real, "127.0.0.1:8001".to_string());
        book.adopt_next_stranger();
        assert!(!book.adopt(NodeId(1), attacker));
        assert_eq!(book.raft_addr(NodeId(1)), Some(real));
        assert_eq!(book.id_of(attacker), None);
        // A known address cannot be adopted under another id either.
        assert!(!book.adopt(NodeId(5), real));
        assert_eq!(book.id_of(real), Some(NodeId(1)));
        // The adoption is still available for a genuine stranger.
        assert!(book.adopt(NodeId(2), "127.0.0.1:9002".parse().unwrap()));
    }
}
