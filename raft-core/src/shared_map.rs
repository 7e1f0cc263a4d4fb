//! An ordered map whose snapshot is a reference count: the key-value store's keys.
//!
//! The map is a `BTreeMap` behind an `Arc` (the base). A snapshot shares the base; while it
//! does, changes go to a small overlay (the delta: a value, or `None` for a removed key) instead
//! of copying the base. Once no snapshot holds the base any more, every change folds a few
//! delta entries back into it, so the delta drains within a few hundred changes and the map is a
//! plain `BTreeMap` again. Taking a snapshot is O(1) when the delta is empty (the common case:
//! the driver takes one only after the previous one's encoding dropped it) and O(delta)
//! otherwise; it never copies the base.
//!
//! A persistent tree (structural sharing on every insert) was the first design: its inserts
//! cost two to three times a `BTreeMap`'s on every replica, for every write, to make a
//! snapshot every 10,000 writes cheap; this pays only while a snapshot is held.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::iter::Peekable;

/// Delta entries folded into the base per change once the base is the map's alone: a
/// snapshot's worth of changes drains over a few hundred changes, none of them long.
const FOLD_STEP: usize = 32;

type Base = BTreeMap<String, Vec<u8>>;
type Delta = BTreeMap<String, Option<Vec<u8>>>;

/// The map (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct SharedMap {
    base: Arc<Base>,
    /// Changes made while a snapshot shared the base; empty whenever the base is this map's
    /// alone and folding caught up.
    delta: Delta,
    /// Keys with a value.
    len: usize,
}

/// The map as of one moment, sharing what it can with the live map.
#[derive(Clone, Debug)]
pub(crate) struct MapSnapshot {
    base: Arc<Base>,
    delta: Option<Arc<Delta>>,
    len: usize,
}

impl SharedMap {
    pub(crate) fn from_map(map: Base) -> SharedMap {
        SharedMap {
            len: map.len(),
            base: Arc::new(map),
            delta: Delta::new(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Vec<u8>> {
        match self.delta.get(key) {
            Some(change) => change.as_ref(),
            None => self.base.get(key),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Folds up to `FOLD_STEP` delta entries into the base, if no snapshot holds it.
    fn fold(&mut self) {
        if self.delta.is_empty() {
            return;
        }
        let Some(base) = Arc::get_mut(&mut self.base) else {
            return;
        };
        for _ in 0..FOLD_STEP {
            let Some((key, change)) = self.delta.pop_first() else {
                return;
            };
            match change {
                Some(value) => base.insert(key, value),
                None => base.remove(&key),
            };
        }
    }

    /// The base, to change in place: when no snapshot holds it and the delta is empty.
    fn own_base(&mut self) -> Option<&mut Base> {
        self.fold();
        if !self.delta.is_empty() {
            return None;
        }
        Arc::get_mut(&mut self.base)
    }

    /// Sets `key` to `value`; whether it had a value before.
    pub(crate) fn insert(&mut self, key: String, value: Vec<u8>) -> bool {
        let replaced = match self.own_base() {
            Some(base) => base.insert(key, value).is_some(),
            None => {
                let replaced = self.get(&key).is_some();
                self.delta.insert(key, Some(value));
                replaced
            }
        };
        self.len += usize::from(!replaced);
        replaced
    }

    /// Removes `key`; whether it had a value.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let existed = match self.own_base() {
            Some(base) => base.remove(key).is_some(),
            None => {
                let existed = self.get(key).is_some();
                if existed {
                    self.delta.insert(key.into(), None);
                }
                existed
            }
        };
        self.len -= usize::from(existed);
        existed
    }

    pub(crate) fn iter(&self) -> Merged<'_> {
        merged(&self.base, Some(&self.delta))
    }

    /// The map as of now, unaffected by later changes.
    pub(crate) fn snapshot(&self) -> MapSnapshot {
        MapSnapshot {
            base: Arc::clone(&self.base),
            delta: (!self.delta.is_empty()).then(|| Arc::new(self.delta.clone())),
            len: self.len,
        }
    }
}

impl MapSnapshot {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> Merged<'_> {
        merged(&self.base, self.delta.as_deref())
    }
}

fn merged<'a>(base: &'a Base, delta: Option<&'a Delta>) -> Merged<'a> {
    Merged {
        base: base.iter().peekable(),
        delta: delta.map(|delta| delta.iter().peekable()),
    }
}

/// The keys with a value, in key order: the base overlaid with the delta.
pub(crate) struct Merged<'a> {
    base: Peekable<alloc::collections::btree_map::Iter<'a, String, Vec<u8>>>,
    delta: Option<Peekable<alloc::collections::btree_map::Iter<'a, String, Option<Vec<u8>>>>>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = (&'a String, &'a Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(delta) = &mut self.delta else {
                return self.base.next();
            };
            let order = match (self.base.peek(), delta.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((base_key, _)), Some((delta_key, _))) => base_key.cmp(delta_key),
            };
            if order == Ordering::Less {
                return self.base.next();
            }
            if order == Ordering::Equal {
                // The delta's change replaces the base's value.
                self.base.next();
            }
            if let Some((key, Some(value))) = delta.next() {
                return Some((key, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u8),
        Remove(u8),
        /// Take a snapshot and keep it (up to a few at once).
        Hold,
        /// Drop the oldest snapshot held.
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..40u8, any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0..40u8).prop_map(Op::Remove),
            1 => Just(Op::Hold),
            1 => Just(Op::Release),
        ]
    }

    fn key(k: u8) -> String {
        format!("k{k:02}")
    }

    fn contents<'a>(entries: impl Iterator<Item = (&'a String, &'a Vec<u8>)>) -> Base {
        entries.map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    proptest! {
        /// The map behaves as a `BTreeMap` whatever snapshots are held, and every snapshot
        /// keeps the contents it was taken with.
        #[test]
        fn a_shared_map_is_a_btreemap_and_its_snapshots_do_not_move(
            ops in proptest::collection::vec(op(), 0..300)
        ) {
            let mut map = SharedMap::default();
            let mut model = Base::new();
            let mut held: Vec<(MapSnapshot, Base)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let replaced = map.insert(key(k), vec![v]);
                        prop_assert_eq!(replaced, model.insert(key(k), vec![v]).is_some());
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(map.remove(&key(k)), model.remove(&key(k)).is_some());
                    }
                    Op::Hold if held.len() < 3 => held.push((map.snapshot(), model.clone())),
                    Op::Hold => {}
                    Op::Release if !held.is_empty() => drop(held.remove(0)),
                    Op::Release => {}
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(contents(map.iter()), model.clone());
                for k in 0..40 {
                    prop_assert_eq!(map.get(&key(k)), model.get(&key(k)));
                }
                for (snapshot, then) in &held {
                    prop_assert_eq!(snapshot.len(), then.len());
                    prop_assert_eq!(&contents(snapshot.iter()), then);
                }
            }
        }
    }

    #[test]
    fn the_delta_drains_once_no_snapshot_holds_the_base() {
        let mut map = SharedMap::default();
        let snapshot = map.snapshot();
        for k in 0..200u32 {
            map.insert(format!("{k:03}"), vec![1]);
        }
        assert_eq!(
            map.delta.len(),
            200,
            "the base was shared: every change waits"
        );
        drop(snapshot);
        // Each change folds FOLD_STEP entries; seven changes drain 200.
        for k in 0..7u32 {
            map.insert(format!("{k:03}"), vec![2]);
        }
        assert!(map.delta.is_empty());
        assert_eq!(map.base.len(), 200);
        assert_eq!(map.len(), 200);
        assert_eq!(map.get("000"), Some(&vec![2]));
        assert_eq!(map.get("199"), Some(&vec![1]));
    }
}
