//! Keyed state, partitioned by key group.
//!
//! Every keyed operator keeps its per-key values in a [`KeyedState`]: one hash map per key group
//! the subtask owns. Snapshots (a later issue) write and read whole key groups, which is what lets
//! a job be restored at another parallelism. The maps use a fixed hasher, never std's randomly
//! seeded one, so iteration order is a function of the input alone.

use crate::key::Key;
use rustc_hash::FxHashMap;

/// Per-key values of type `V` for the key groups `[start, end)`.
#[derive(Debug)]
pub struct KeyedState<V> {
    start: u16,
    groups: Vec<FxHashMap<Key, V>>,
    len: usize,
}

impl<V> KeyedState<V> {
    pub fn new(key_groups: (u16, u16)) -> KeyedState<V> {
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

    fn group_mut(&mut self, key_group: u16) -> &mut FxHashMap<Key, V> {
        let index = self.index(key_group);
        &mut self.groups[index]
    }

    pub fn get(&self, key_group: u16, key: &Key) -> Option<&V> {
        self.groups.get(usize::from(key_group.checked_sub(self.start)?))?.get(key)
    }

    pub fn get_mut(&mut self, key_group: u16, key: &Key) -> Option<&mut V> {
        self.group_mut(key_group).get_mut(key)
    }

    /// The value of `key`, created with `init` if absent.
    pub fn get_or_insert_with(&mut self, key_group: u16, key: &Key, init: impl FnOnce() -> V) -> &mut V {
        // Two lookups on insertion keep the common path (key present) free of a key clone.
        let index = self.index(key_group);
        let group = &mut self.groups[index];
        if !group.contains_key(key) {
            group.insert(key.clone(), init());
            self.len += 1;
        }
        group.get_mut(key).expect("inserted above")
    }

    pub fn remove(&mut self, key_group: u16, key: &Key) -> Option<V> {
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
    pub fn iter_groups(&self) -> impl Iterator<Item = (u16, &FxHashMap<Key, V>)> {
        self.groups.iter().enumerate().map(move |(i, g)| (self.start + i as u16, g))
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
