//! Which cluster a data dir belongs to.
//!
//! A cluster id is fixed when a cluster is created and recorded in every member's `meta.json`;
//! every datagram carries its sender's (see [`crate::transport`]). A node drops datagrams that
//! name another cluster, so a data dir of another cluster (a copied directory, a cluster
//! rebuilt from a backup, a survivor forced into a new cluster) cannot join this one: it is
//! refused with an error naming both ids instead of mixing two logs.
//!
//! - Bootstrapping a new cluster (`--initial-cluster-state new`): every initial member derives
//!   the same id, without talking to the others, from the initial voters' ids and
//!   `--initial-cluster-token` (etcd's rule, without the addresses: members may know each
//!   other by addresses that differ from the ones they bind, behind a relay or a NAT). Two
//!   clusters with the same member ids need distinct tokens to differ.
//! - A server that joins or returns (`--join`, `--await-join`, `--initial-cluster-state
//!   existing`) starts without one and records the first id a member's datagram carries.
//! - `recover --force-new-cluster` and `snapshot restore` make a new id (see
//!   [`ClusterId::after_forced_recovery`] and [`ClusterId::of_restored_cluster`]).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use raft_core::{Incarnation, NodeId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// BLAKE3 `derive_key` context of cluster ids.
const CONTEXT: &str = "raft-net 2026 cluster id v1";

/// A cluster's id: 64 bits, shown as 16 hex digits. Zero is never an id: on the wire it means
/// "not known yet".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(u64);

impl ClusterId {
    /// The id `value` stands for on the wire; `None` for 0 (unknown).
    #[must_use]
    pub fn from_wire(value: u64) -> Option<ClusterId> {
        (value != 0).then_some(ClusterId(value))
    }

    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id of a cluster bootstrapped with `members` (every initial voter) and `token`: the
    /// same on every member given the same flags.
    #[must_use]
    pub fn of_new_cluster(members: &BTreeSet<NodeId>, token: &str) -> ClusterId {
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
        hasher.update(b"bootstrap");
        for id in members {
            hasher.update(&id.0.to_le_bytes());
        }
        hasher.update(token.as_bytes());
        ClusterId::from_hash(&hasher.finalize())
    }

    /// The id of a cluster seeded from a backup: from the backup's bytes, the members' ids and
    /// `token`, so every member restored from the same file with the same flags agrees, and a
    /// cluster restored from a backup never shares the id of the cluster it was taken from.
    #[must_use]
    pub fn of_restored_cluster(backup: &[u8], members: &[NodeId], token: &str) -> ClusterId {
        let mut sorted = members.to_vec();
        sorted.sort();
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
        hasher.update(b"restore");
        hasher.update(blake3::hash(backup).as_bytes());
        for id in &sorted {
            hasher.update(&id.0.to_le_bytes());
        }
        hasher.update(token.as_bytes());
        ClusterId::from_hash(&hasher.finalize())
    }

    /// The id of the one-voter cluster that `recover --force-new-cluster` makes of a survivor:
    /// new, so that members of the old cluster that come back with their old data dirs are
    /// refused rather than mixed in (they rejoin from empty data dirs).
    #[must_use]
    pub fn after_forced_recovery(
        old: Option<ClusterId>,
        id: NodeId,
        incarnation: Incarnation,
    ) -> ClusterId {
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
        hasher.update(b"force-new-cluster");
        hasher.update(&old.map_or(0, ClusterId::get).to_le_bytes());
        hasher.update(&id.0.to_le_bytes());
        hasher.update(&incarnation.0.to_le_bytes());
        ClusterId::from_hash(&hasher.finalize())
    }

    fn from_hash(hash: &blake3::Hash) -> ClusterId {
        let mut word = [0; 8];
        word.copy_from_slice(&hash.as_bytes()[..8]);
        // One hash in 2^64 is zero, which means "unknown" on the wire.
        ClusterId(u64::from_le_bytes(word).max(1))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for ClusterId {
    type Err = String;

    fn from_str(text: &str) -> Result<ClusterId, String> {
        if text.len() != 16 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(format!("a cluster id is 16 hex digits, not {text:?}"));
        }
        let value = u64::from_str_radix(text, 16)
            .map_err(|_| format!("a cluster id is 16 hex digits, not {text:?}"))?;
        ClusterId::from_wire(value).ok_or_else(|| "the cluster id 0 is reserved".to_string())
    }
}

impl Serialize for ClusterId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClusterId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ClusterId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The cluster id a running node goes by, shared by the transport (which stamps and checks
/// it), the driver (which records the first one a server without one hears) and HTTP.
#[derive(Debug, Default)]
pub struct ClusterIdCell(AtomicU64);

impl ClusterIdCell {
    #[must_use]
    pub fn new(id: Option<ClusterId>) -> ClusterIdCell {
        ClusterIdCell(AtomicU64::new(id.map_or(0, ClusterId::get)))
    }

    #[must_use]
    pub fn get(&self) -> Option<ClusterId> {
        ClusterId::from_wire(self.0.load(Ordering::Relaxed))
    }

    /// The value datagrams carry: the id, or 0 while it is unknown.
    #[must_use]
    pub fn wire(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Only the driver sets it, once it is durable in `meta.json`.
    pub fn set(&self, id: ClusterId) {
        self.0.store(id.get(), Ordering::Relaxed);
    }

    /// Whether a datagram naming `claimed` may come in: it names this cluster, or its sender
    /// does not know its cluster yet, or this node does not.
    #[must_use]
    pub fn admits(&self, claimed: Option<ClusterId>) -> bool {
        match (self.get(), claimed) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn every_initial_member_derives_the_same_id_and_other_clusters_another() {
        let id = ClusterId::of_new_cluster(&members(&[1, 2, 3]), "");
        assert_eq!(ClusterId::of_new_cluster(&members(&[3, 2, 1]), ""), id);
        assert_ne!(ClusterId::of_new_cluster(&members(&[1, 2, 4]), ""), id);
        assert_ne!(ClusterId::of_new_cluster(&members(&[1, 2]), ""), id);
        assert_ne!(
            ClusterId::of_new_cluster(&members(&[1, 2, 3]), "second"),
            id
        );
    }

    #[test]
    fn restores_and_recoveries_make_new_ids() {
        let ids = [NodeId(1), NodeId(2)];
        let restored = ClusterId::of_restored_cluster(b"backup", &ids, "");
        assert_eq!(
            ClusterId::of_restored_cluster(b"backup", &[NodeId(2), NodeId(1)], ""),
            restored
        );
        assert_ne!(
            ClusterId::of_restored_cluster(b"backup2", &ids, ""),
            restored
        );
        assert_ne!(
            ClusterId::of_restored_cluster(b"backup", &ids, "t"),
            restored
        );
        let old = Some(restored);
        let forced = ClusterId::after_forced_recovery(old, NodeId(1), Incarnation(5));
        assert_ne!(Some(forced), old);
        assert_ne!(
            ClusterId::after_forced_recovery(old, NodeId(1), Incarnation(6)),
            forced
        );
    }

    #[test]
    fn ids_print_and_parse_as_hex_and_zero_is_unknown() {
        let id = ClusterId::from_wire(0x0123_4567_89ab_cdef).unwrap();
        assert_eq!(id.to_string(), "0123456789abcdef");
        assert_eq!("0123456789abcdef".parse::<ClusterId>(), Ok(id));
        for bad in [
            "",
            "0123",
            "0000000000000000",
            "0123456789abcdeg",
            "+123456789abcdef",
        ] {
            assert!(bad.parse::<ClusterId>().is_err(), "{bad}");
        }
        assert_eq!(ClusterId::from_wire(0), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<ClusterId>(&json).unwrap(), id);
    }

    #[test]
    fn a_cell_admits_its_own_cluster_and_unknowns_only() {
        let mine = ClusterId::from_wire(7);
        let theirs = ClusterId::from_wire(8);
        let cell = ClusterIdCell::new(mine);
        assert!(cell.admits(mine));
        assert!(cell.admits(None));
        assert!(!cell.admits(theirs));
        let unknown = ClusterIdCell::new(None);
        assert!(unknown.admits(theirs));
        assert_eq!(unknown.wire(), 0);
        unknown.set(ClusterId::from_wire(8).unwrap());
        assert!(!unknown.admits(mine));
    }
}
