//! Dense ids for the keys a keyed operator holds, kept by key group.
//!
//! Window panes refer to keys by id (an index into plain vectors) instead of each holding a hash
//! map of its own: a record costs one lookup in one dictionary that stays warm in cache, however
//! many windows are open. Ids are reference-counted by the panes holding them; a key no open pane
//! holds is removed and its id reused, so the dictionary is bounded by the open windows' keys.

use crate::batch::Batch;
use crate::key::{Key, KeySelector};
use crate::state::KeyedState;

#[derive(Debug)]
enum IdMap {
    /// A single integer key field: entries of 16 bytes instead of 32.
    Int(KeyedState<u32, i64>),
    Any(KeyedState<u32, Key>),
}

#[derive(Debug)]
pub struct KeyDictionary {
    map: IdMap,
    keys: Vec<Key>,
    key_groups: Vec<u16>,
    refs: Vec<u32>,
    free: Vec<u32>,
}

impl KeyDictionary {
    /// `int_keys`: every key is a single integer or timestamp field.
    pub fn new(key_groups: (u16, u16), int_keys: bool) -> KeyDictionary {
        let map = if int_keys {
            IdMap::Int(KeyedState::new(key_groups))
        } else {
            IdMap::Any(KeyedState::new(key_groups))
        };
        KeyDictionary { map, keys: Vec::new(), key_groups: Vec::new(), refs: Vec::new(), free: Vec::new() }
    }

    /// One more than the largest id handed out: the length id-indexed vectors need.
    pub fn id_bound(&self) -> usize {
        self.keys.len()
    }

    /// Keys with an id.
    pub fn len(&self) -> usize {
        self.keys.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id of `key`, assigned if new. A new id has no references: take one with `acquire`
    /// before the next `release` of any id, or it may be reused.
    #[inline]
    pub fn id(&mut self, key_group: u16, key: &Key) -> u32 {
        let (keys, key_groups, refs, free) =
            (&mut self.keys, &mut self.key_groups, &mut self.refs, &mut self.free);
        let assign = || match free.pop() {
            Some(id) => {
                keys[id as usize] = key.clone();
                key_groups[id as usize] = key_group;
                id
            }
            None => {
                keys.push(key.clone());
                key_groups.push(key_group);
                refs.push(0);
                u32::try_from(keys.len() - 1).expect("fewer than 2^32 keys in one subtask")
            }
        };
        match (&mut self.map, key) {
            (IdMap::Int(map), Key::Int(v)) => *map.get_or_insert_with(key_group, v, assign),
            (IdMap::Any(map), key) => *map.get_or_insert_with(key_group, key, assign),
            (IdMap::Int(_), other) => unreachable!("an integer-keyed dictionary met {other:?}"),
        }
    }

    /// The ids of the keys of rows `rows` of `batch` (with key groups `key_groups`), into `ids`.
    /// Every key that gets an id here must be acquired before the next `release`.
    pub fn ids_of_rows(
        &mut self,
        selector: &KeySelector,
        batch: &Batch,
        rows: &[u32],
        key_groups: &[u16],
        ids: &mut Vec<u32>,
    ) {
        ids.clear();
        if let (IdMap::Int(map), Some(column)) = (&self.map, selector.single_int_column(batch)) {
            // The common case in a tight loop: integer keys already known.
            let mut all_known = true;
            for (&row, &key_group) in rows.iter().zip(key_groups) {
                match map.get(key_group, &column[row as usize]) {
                    Some(&id) => ids.push(id),
                    None => {
                        all_known = false;
                        break;
                    }
                }
            }
            if all_known {
                return;
            }
            ids.clear();
        }
        for (&row, &key_group) in rows.iter().zip(key_groups) {
            let id = self.id(key_group, &selector.key(batch, row as usize));
            ids.push(id);
        }
    }

    pub fn key(&self, id: u32) -> &Key {
        &self.keys[id as usize]
    }

    pub fn key_group(&self, id: u32) -> u16 {
        self.key_groups[id as usize]
    }

    /// The id of a key restored from a snapshot, whose key group and shape are checked first
    /// (the same rules as `id`, which would panic).
    pub fn restored_id(&mut self, key_group: u16, key: &Key) -> Result<u32, String> {
        match &self.map {
            IdMap::Int(map) => {
                map.check_key_group(key_group)?;
                if !matches!(key, Key::Int(_)) {
                    return Err(format!("key {key:?} in the snapshot of an integer-keyed window"));
                }
            }
            IdMap::Any(map) => map.check_key_group(key_group)?,
        }
        Ok(self.id(key_group, key))
    }

    pub fn acquire(&mut self, id: u32) {
        self.refs[id as usize] += 1;
    }

    /// Drops one reference; the key leaves the dictionary with its last one.
    pub fn release(&mut self, id: u32) {
        let i = id as usize;
        assert!(self.refs[i] > 0, "releasing key id {id} that nobody holds");
        self.refs[i] -= 1;
        if self.refs[i] == 0 {
            let (key, key_group) = (&self.keys[i], self.key_groups[i]);
            let removed = match (&mut self.map, key) {
                (IdMap::Int(map), Key::Int(v)) => map.remove(key_group, v),
                (IdMap::Any(map), key) => map.remove(key_group, key),
                (IdMap::Int(_), other) => unreachable!("an integer-keyed dictionary held {other:?}"),
            };
            assert_eq!(removed, Some(id), "the dictionary maps a key to its id");
            self.free.push(id);
        }
    }

    pub fn assert_invariants(&self) {
        let mapped = match &self.map {
            IdMap::Int(m) => m.len(),
            IdMap::Any(m) => m.len(),
        };
        assert_eq!(mapped, self.len(), "every live id is mapped, and only those");
        for &id in &self.free {
            assert_eq!(self.refs[id as usize], 0, "a free id has no references");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_while_held_and_reused_after() {
        for int_keys in [true, false] {
            let mut d = KeyDictionary::new((0, 4), int_keys);
            let a = d.id(1, &Key::Int(10));
            d.acquire(a);
            let b = d.id(2, &Key::Int(20));
            d.acquire(b);
            assert_eq!(d.id(1, &Key::Int(10)), a);
            assert_eq!(d.key(b), &Key::Int(20));
            d.release(a);
            assert_eq!(d.len(), 1);
            let c = d.id(3, &Key::Int(30));
            assert_eq!(c, a, "a released id is reused");
            d.acquire(c);
            d.assert_invariants();
        }
    }
}
