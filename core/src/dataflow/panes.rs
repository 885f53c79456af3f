//! Window panes: the state of non-merging (tumbling and sliding) windows.
//!
//! A pane is one window `[start, end)` across all keys. Keys are ids from one [`KeyDictionary`]
//! shared by all panes (kept by key group); a pane maps key ids to slots with a plain vector, and
//! keeps its aggregates as columns of slots. Records are first mapped to slots, then each
//! aggregate updates its slots in one loop per batch. A watermark fires whole panes in end order,
//! and a fired pane's memory is reused by the next one.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::dataflow::key_dictionary::KeyDictionary;
use crate::dataflow::operators::acc_columns::AccColumn;
use crate::dataflow::operators::accumulate::{Acc, AggregateSpec, ArgColumn};
use crate::key::{Key, KeySelector};
use crate::time::EventTime;

const NO_SLOT: u32 = u32::MAX;

/// One open pane in a snapshot: its window and, per key, the key group, key and accumulators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaneSnapshot {
    pub start: EventTime,
    pub end: EventTime,
    pub slots: Vec<(u16, Key, Vec<Acc>)>,
}

#[derive(Debug)]
pub struct Pane {
    pub start: EventTime,
    pub end: EventTime,
    /// Slot of each key id (`NO_SLOT` if the key has no record in this window).
    slot_of: Vec<u32>,
    /// Key id of each slot, in the order keys first arrived.
    key_ids: Vec<u32>,
    accs: Vec<AccColumn>,
    /// Records mapped to slots but not yet aggregated: `(slot, row)` of the current batch.
    pending_slots: Vec<u32>,
    pending_rows: Vec<u32>,
}

impl Pane {
    pub fn accs(&self) -> &[AccColumn] {
        &self.accs
    }
}

#[derive(Debug)]
pub struct PaneStore {
    keys: KeyDictionary,
    template: Vec<AccColumn>,
    /// Open panes, ordered by end then start. A pane is identified by its start (all windows of
    /// an operator have one size; ends that saturate at the end of time may coincide).
    panes: VecDeque<Pane>,
    /// Starts of the panes with pending records.
    dirty: Vec<EventTime>,
    spare: Option<Pane>,
    /// The index of the pane used last (a hint, checked before use).
    last: usize,
}

impl PaneStore {
    pub fn new(key_groups: (u16, u16), int_keys: bool, specs: &[AggregateSpec]) -> PaneStore {
        PaneStore {
            keys: KeyDictionary::new(key_groups, int_keys),
            template: specs.iter().map(AccColumn::new).collect(),
            panes: VecDeque::new(),
            dirty: Vec::new(),
            spare: None,
            last: 0,
        }
    }

    /// The key ids of rows that `add` will place in a window (see [`KeyDictionary::ids_of_rows`]).
    pub fn key_ids(
        &mut self,
        selector: &KeySelector,
        batch: &Batch,
        rows: &[u32],
        key_groups: &[u16],
        ids: &mut Vec<u32>,
    ) {
        self.keys.ids_of_rows(selector, batch, rows, key_groups, ids);
    }

    fn pane_index(&mut self, start: EventTime, end: EventTime) -> usize {
        if self.panes.get(self.last).is_some_and(|p| p.start == start) {
            return self.last;
        }
        self.last = self.find_or_open(start, end);
        self.last
    }

    fn find_or_open(&mut self, start: EventTime, end: EventTime) -> usize {
        // In-order input hits the newest pane, so search from the back.
        if let Some(i) = self.panes.iter().rposition(|p| (p.end, p.start) <= (end, start)) {
            if self.panes[i].start == start {
                return i;
            }
        }
        let pane = match self.spare.take() {
            Some(mut p) => {
                p.start = start;
                p.end = end;
                p
            }
            None => Pane {
                start,
                end,
                slot_of: Vec::new(),
                key_ids: Vec::new(),
                accs: self.template.clone(),
                pending_slots: Vec::new(),
                pending_rows: Vec::new(),
            },
        };
        let at = self.panes.partition_point(|p| (p.end, p.start) < (end, start));
        self.panes.insert(at, pane);
        at
    }

    /// Places row `row`, whose key has id `key_id`, in the window `[start, end)`; `apply`
    /// aggregates it.
    #[inline]
    pub fn add(&mut self, start: EventTime, end: EventTime, key_id: u32, row: u32) {
        let index = self.pane_index(start, end);
        let pane = &mut self.panes[index];
        let id = key_id as usize;
        if id >= pane.slot_of.len() {
            pane.slot_of.resize(self.keys.id_bound().max(id + 1), NO_SLOT);
        }
        let mut slot = pane.slot_of[id];
        if slot == NO_SLOT {
            slot = pane.key_ids.len() as u32;
            pane.slot_of[id] = slot;
            pane.key_ids.push(key_id);
            pane.accs.iter_mut().for_each(AccColumn::push_slot);
            self.keys.acquire(key_id);
        }
        if pane.pending_rows.is_empty() {
            self.dirty.push(start);
        }
        pane.pending_slots.push(slot);
        pane.pending_rows.push(row);
    }

    /// Aggregates every pending record; `args` are the aggregates' argument columns of the batch
    /// the pending rows index into.
    pub fn apply(&mut self, args: &[ArgColumn<'_>]) {
        for start in self.dirty.drain(..) {
            let pane = self.panes.iter_mut().find(|p| p.start == start).expect("a dirty pane is open");
            for (acc, arg) in pane.accs.iter_mut().zip(args) {
                acc.update(&pane.pending_slots, &pane.pending_rows, *arg);
            }
            pane.pending_slots.clear();
            pane.pending_rows.clear();
        }
    }

    /// Fires every pane whose last millisecond the watermark has reached, in end order, handing
    /// each key with its slot to `emit`.
    pub fn fire(&mut self, watermark: EventTime, mut emit: impl FnMut(&Pane, &Key, u32)) {
        assert!(self.dirty.is_empty(), "apply pending records before firing");
        while self.panes.front().is_some_and(|p| p.end - 1 <= watermark) {
            let mut pane = self.panes.pop_front().expect("checked above");
            for (slot, &id) in pane.key_ids.iter().enumerate() {
                emit(&pane, self.keys.key(id), slot as u32);
            }
            for &id in &pane.key_ids {
                pane.slot_of[id as usize] = NO_SLOT;
                self.keys.release(id);
            }
            pane.key_ids.clear();
            pane.accs.iter_mut().for_each(AccColumn::clear);
            self.spare = Some(pane);
        }
    }

    /// Every open pane, for a snapshot (between batches: nothing is pending).
    pub fn snapshot(&self) -> Vec<PaneSnapshot> {
        assert!(self.dirty.is_empty(), "snapshots are taken between batches");
        (self.panes.iter())
            .map(|p| PaneSnapshot {
                start: p.start,
                end: p.end,
                slots: (p.key_ids.iter().enumerate())
                    .map(|(slot, &id)| {
                        let accs = p.accs.iter().map(|a| a.get(slot as u32)).collect();
                        (self.keys.key_group(id), self.keys.key(id).clone(), accs)
                    })
                    .collect(),
            })
            .collect()
    }

    /// Opens the panes of a snapshot in an empty store. Each pane, key group, key and accumulator
    /// is checked: a pane given twice, a key twice in a pane, a key group of another subtask or
    /// accumulators of another kind are errors.
    pub fn restore(&mut self, panes: Vec<PaneSnapshot>) -> Result<(), String> {
        assert!(self.panes.is_empty(), "restored into an empty store");
        for snapshot in panes {
            if snapshot.start >= snapshot.end {
                return Err(format!(
                    "a pane [{}, {}) in the snapshot is empty",
                    snapshot.start, snapshot.end
                ));
            }
            if self.panes.iter().any(|p| p.start == snapshot.start) {
                return Err(format!("the pane starting at {} appears twice in the snapshot", snapshot.start));
            }
            let index = self.find_or_open(snapshot.start, snapshot.end);
            for (key_group, key, accs) in snapshot.slots {
                let id = self.keys.restored_id(key_group, &key)?;
                let pane = &mut self.panes[index];
                if id as usize >= pane.slot_of.len() {
                    pane.slot_of.resize(self.keys.id_bound().max(id as usize + 1), NO_SLOT);
                }
                if pane.slot_of[id as usize] != NO_SLOT {
                    return Err(format!("key {key:?} appears twice in the pane at {}", snapshot.start));
                }
                if accs.len() != pane.accs.len() {
                    return Err(format!(
                        "{} accumulators in the snapshot for {} aggregates",
                        accs.len(),
                        pane.accs.len()
                    ));
                }
                for (column, acc) in pane.accs.iter_mut().zip(&accs) {
                    if !column.push_acc(acc) {
                        return Err(format!("accumulator {acc:?} does not fit the aggregate {column:?}"));
                    }
                }
                pane.slot_of[id as usize] = pane.key_ids.len() as u32;
                pane.key_ids.push(id);
                self.keys.acquire(id);
            }
        }
        self.last = 0;
        Ok(())
    }

    pub fn assert_invariants(&self, watermark: EventTime) {
        self.keys.assert_invariants();
        for pair in self.panes.iter().collect::<Vec<_>>().windows(2) {
            assert!(
                (pair[0].end, pair[0].start) < (pair[1].end, pair[1].start),
                "panes are ordered, one per start"
            );
        }
        for p in &self.panes {
            assert!(p.end - 1 > watermark, "a due pane was not fired");
            assert!(p.start < p.end);
            assert!(p.pending_rows.is_empty(), "pending records are applied within the batch");
            for (slot, &id) in p.key_ids.iter().enumerate() {
                assert_eq!(p.slot_of[id as usize], slot as u32, "slots and key ids agree");
            }
        }
    }
}
