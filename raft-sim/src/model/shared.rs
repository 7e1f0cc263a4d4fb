//! Hash-consing for the parts of model states: every state that holds a value equal to one
//! already made holds the same allocation, and each value's hash is computed once.
//!
//! Breadth-first search keeps its whole frontier in memory, and most of a state is equal to
//! a part of many other states: a node that ticked in one state is often the very node that
//! ticked in a sibling, and the messages in flight recur across thousands of states. Sharing
//! them makes a state a handful of pointers, and hashing a state (the search's fingerprint)
//! hashes those pointers' cached hashes instead of walking every node's log.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

use raft_core::NodeRenaming;

/// A value shared by every state that holds an equal one, with its hash.
pub struct Shared<T>(Arc<Entry<T>>);

struct Entry<T> {
    hash: u64,
    value: T,
    /// The value under renamings of node ids asked for before (symmetry reduction renames
    /// the same parts again and again): weak, so a renamed value no state holds is freed.
    renamed: Mutex<Vec<(NodeRenaming, Weak<Entry<T>>)>>,
}

impl<T> Entry<T> {
    fn new(hash: u64, value: T) -> Arc<Entry<T>> {
        Arc::new(Entry {
            hash,
            value,
            renamed: Mutex::new(Vec::new()),
        })
    }
}

impl<T> Shared<T> {
    /// The hash of the value (of the interner's fixed-key hasher).
    #[must_use]
    pub fn hash_value(&self) -> u64 {
        self.0.hash
    }

    /// True when both are the same allocation (equal values made through one interner are).
    #[must_use]
    pub fn ptr_eq(a: &Shared<T>, b: &Shared<T>) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The value renamed by `renaming`: `rename` makes it the first time, later calls find it.
    pub fn rename_with(
        &self,
        renaming: &NodeRenaming,
        rename: impl FnOnce(&T) -> Shared<T>,
    ) -> Shared<T> {
        if renaming.is_identity() {
            return self.clone();
        }
        let mut memo = lock(&self.0.renamed);
        let known = memo
            .iter()
            .find(|(r, _)| r == renaming)
            .and_then(|(_, weak)| weak.upgrade());
        if let Some(entry) = known {
            return Shared(entry);
        }
        let renamed = rename(&self.0.value);
        memo.retain(|(_, weak)| weak.strong_count() > 0);
        memo.push((renaming.clone(), Arc::downgrade(&renamed.0)));
        renamed
    }
}

/// A panic while holding one of these locks leaves what it guards consistent (every operation
/// on it is a single insert, lookup or sweep), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Shared<T>) -> bool {
        Shared::ptr_eq(self, other)
            || (self.0.hash == other.0.hash && self.0.value == other.0.value)
    }
}

impl<T: Eq> Eq for Shared<T> {}

/// The cached hash: consistent with `Eq`, since equal values hash alike.
impl<T> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

/// Shards of the table, so search threads seldom wait for each other.
const SHARDS: usize = 16;

/// Makes [`Shared`] values: an equal value made before and still held by some state is
/// returned instead of a new allocation. The table holds weak references, swept as it grows,
/// so a value no state holds any more is freed.
pub struct Interner<T> {
    hasher: ahash::RandomState,
    shards: Vec<Mutex<Shard<T>>>,
}

struct Shard<T> {
    table: HashMap<u64, Weak<Entry<T>>, BuildU64>,
    /// Sweep dead references once the table reaches this size.
    sweep_at: usize,
}

impl<T> fmt::Debug for Interner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interner").finish_non_exhaustive()
    }
}

impl<T: Hash + Eq> Default for Interner<T> {
    fn default() -> Interner<T> {
        Interner::new()
    }
}

/// The hasher of every cached hash. Fixed keys: hashes, and so the search's fingerprints, are
/// the same in every run.
#[must_use]
pub fn fixed_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    )
}

impl<T: Hash + Eq> Interner<T> {
    #[must_use]
    pub fn new() -> Interner<T> {
        Interner {
            hasher: fixed_hasher(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        table: HashMap::with_hasher(BuildU64),
                        sweep_at: 1024,
                    })
                })
                .collect(),
        }
    }

    /// The shared value equal to `value`.
    pub fn intern(&self, value: T) -> Shared<T> {
        let hash = self.hasher.hash_one(&value);
        let shard = &self.shards[(hash as usize) % SHARDS];
        let mut shard = lock(shard);
        if let Some(existing) = shard.table.get(&hash).and_then(Weak::upgrade) {
            if existing.value == value {
                return Shared(existing);
            }
            // Two values with one hash: the newer is simply not shared.
            return Shared(Entry::new(hash, value));
        }
        let entry = Entry::new(hash, value);
        shard.table.insert(hash, Arc::downgrade(&entry));
        if shard.table.len() >= shard.sweep_at {
            shard.table.retain(|_, weak| weak.strong_count() > 0);
            shard.sweep_at = (shard.table.len() * 2).max(1024);
        }
        Shared(entry)
    }
}

/// The table's keys are already hashes.
#[derive(Clone, Copy, Default)]
struct BuildU64;

impl BuildHasher for BuildU64 {
    type Hasher = U64Hasher;

    fn build_hasher(&self) -> U64Hasher {
        U64Hasher(0)
    }
}

#[derive(Default)]
struct U64Hasher(u64);

impl Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_allocation_and_are_freed_with_their_last_holder() {
        let interner = Interner::new();
        let a = interner.intern(vec![1, 2, 3]);
        let b = interner.intern(vec![1, 2, 3]);
        let c = interner.intern(vec![4]);
        assert!(Shared::ptr_eq(&a, &b));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.hash_value(), b.hash_value());
        let weak = Arc::downgrade(&a.0);
        drop((a, b));
        assert_eq!(weak.strong_count(), 0);
        let again = interner.intern(vec![1, 2, 3]);
        assert_eq!(*again, vec![1, 2, 3]);
    }
}
