//! Keyed state, partitioned by key group.
//!
//! Every keyed operator keeps its per-key values in a [`KeyedState`]: one hash map per key group
//! the subtask owns. Snapshots ([`snapshot`]) write and read entries tagged with their key group,
//! which is what lets a job be restored at another parallelism. The maps use a fixed hasher, never std's randomly
//! seeded one, so iteration order is a function of the input alone.

pub mod savepoint;
pub mod snapshot;

use std::collections::hash_map::Entry;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::key::Key;

/// What keyed state can be keyed by: a [`Key`], or a bare `i64` where an operator knows its key
/// is a single integer field (smaller entries, so more of the state stays in cache).
pub trait StateKey: Hash + Eq + Clone {
    /// Whether cloning this key costs nothing (no allocation).
    fn clone_is_free(&self) -> bool;
}

impl StateKey for Key {
    fn clone_is_free(&self) -> bool {
        matches!(self, Key::Int(_))
    }
}

impl StateKey for i64 {
    fn clone_is_free(&self) -> bool {
        true
    }
}

/// Per-key values of type `V` for the key groups `[start, end)`.
#[derive(Debug)]
pub struct KeyedState<V, K = Key> {
    start: u16,
    groups: Vec<FxHashMap<K, V>>,
    len: usize,
}

impl<V, K: StateKey> KeyedState<V, K> {
    pub fn new(key_groups: (u16, u16)) -> KeyedState<V, K> {
        let (start, end) = key_groups;
        assert!(start < end, "a keyed subtask owns at least one key group");
        KeyedState { start, groups: (start..end).map(|_| FxHashMap::default()).collect(), len: 0 }
    }

    /// The key groups `[start, end)` this state holds.
    pub fn key_groups(&self) -> (u16, u16) {
        (self.start, self.start + self.groups.len() as u16)
    }

    fn index(&self, key_group: u16) -> usize {
        let (start, end) = self.key_groups();
        assert!(
            (start..end).contains(&key_group),
            "key group {key_group} routed to a subtask owning {start}..{end}"
        );
        usize::from(key_group - start)
    }

    fn group_mut(&mut self, key_group: u16) -> &mut FxHashMap<K, V> {
        let index = self.index(key_group);
        &mut self.groups[index]
    }

    pub fn get(&self, key_group: u16, key: &K) -> Option<&V> {
        self.groups.get(usize::from(key_group.checked_sub(self.start)?))?.get(key)
    }

    pub fn get_mut(&mut self, key_group: u16, key: &K) -> Option<&mut V> {
        self.group_mut(key_group).get_mut(key)
    }

    /// The value of `key`, created with `init` if absent.
    pub fn get_or_insert_with(&mut self, key_group: u16, key: &K, init: impl FnOnce() -> V) -> &mut V {
        let index = self.index(key_group);
        let group = &mut self.groups[index];
        if key.clone_is_free() {
            // One probe through the entry API when the key's clone is free.
            return match group.entry(key.clone()) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    self.len += 1;
                    v.insert(init())
                }
            };
        }
        // Composite keys allocate when cloned: probe first, clone only to insert.
        if !group.contains_key(key) {
            group.insert(key.clone(), init());
            self.len += 1;
        }
        group.get_mut(key).expect("inserted above")
    }

    /// Removes every entry, keeping the maps' capacity for reuse.
    pub fn clear(&mut self) {
        for group in &mut self.groups {
            group.clear();
        }
        self.len = 0;
    }

    pub fn remove(&mut self, key_group: u16, key: &K) -> Option<V> {
        let removed = self.group_mut(key_group).remove(key);
        self.len -= usize::from(removed.is_some());
        removed
    }

    /// Keys with a value, over all key groups.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every key group with its entries, in key-group order.
    pub fn iter_groups(&self) -> impl Iterator<Item = (u16, &FxHashMap<K, V>)> {
        self.groups.iter().enumerate().map(move |(i, g)| (self.start + i as u16, g))
    }

    /// Every entry with its key group, group by group: what a snapshot records.
    pub fn entries(&self) -> impl Iterator<Item = (u16, &K, &V)> {
        self.iter_groups().flat_map(|(group, map)| map.iter().map(move |(k, v)| (group, k, v)))
    }

    /// Checks that a restored entry's key group is one this state holds.
    pub fn check_key_group(&self, key_group: u16) -> Result<(), String> {
        let (start, end) = self.key_groups();
        if (start..end).contains(&key_group) {
            Ok(())
        } else {
            Err(format!("the snapshot holds key group {key_group}; this subtask owns {start}..{end}"))
        }
    }

    pub fn assert_invariants(&self) {
        assert_eq!(self.len, self.groups.iter().map(|g| g.len()).sum::<usize>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_live_in_their_key_group() {
        let mut s: KeyedState<i64> = KeyedState::new((4, 8));
        *s.get_or_insert_with(5, &Key::Int(1), || 0) += 3;
        *s.get_or_insert_with(5, &Key::Int(1), || 0) += 4;
        *s.get_or_insert_with(7, &Key::Int(2), || 10) += 1;
        assert_eq!(s.get(5, &Key::Int(1)), Some(&7));
        assert_eq!(s.get(4, &Key::Int(1)), None);
        assert_eq!(s.len(), 2);
        assert_eq!(s.remove(7, &Key::Int(2)), Some(11));
        assert_eq!(s.len(), 1);
        s.assert_invariants();
    }

    #[test]
    #[should_panic(expected = "routed to a subtask")]
    fn a_foreign_key_group_is_a_bug() {
        let mut s: KeyedState<i64> = KeyedState::new((0, 4));
        s.get_or_insert_with(9, &Key::Int(1), || 0);
    }
}
