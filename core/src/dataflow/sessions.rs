//! Session windows: per key, the open sessions with their accumulators, merged as records arrive.
//!
//! Each open session has a timer at its last millisecond, in an ordered map. A session that grows
//! gets a new timer and leaves its old one behind; a stale timer finds nothing due and costs one
//! lookup.

use std::collections::BTreeMap;

use crate::dataflow::operators::accumulate::{check_restored_accs, new_accs, Acc, AggregateSpec, ArgColumn};
use crate::dataflow::windowing::{is_late, sessions_meet};
use crate::key::Key;
use crate::state::KeyedState;
use crate::time::EventTime;

#[derive(Clone, Debug)]
pub struct Session {
    pub start: EventTime,
    pub end: EventTime,
    pub accs: Vec<Acc>,
}

/// One key's open sessions in a snapshot: key group, key, and `(start, end, accumulators)` each.
pub type SessionsSnapshot = (u16, Key, Vec<(EventTime, EventTime, Vec<Acc>)>);

#[derive(Debug)]
pub struct SessionStore {
    gap_ms: i64,
    specs: Vec<AggregateSpec>,
    state: KeyedState<Vec<Session>>,
    timers: BTreeMap<EventTime, Vec<(u16, Key)>>,
}

impl SessionStore {
    pub fn new(key_groups: (u16, u16), gap_ms: i64, specs: &[AggregateSpec]) -> SessionStore {
        assert!(gap_ms > 0);
        SessionStore {
            gap_ms,
            specs: specs.to_vec(),
            state: KeyedState::new(key_groups),
            timers: BTreeMap::new(),
        }
    }

    /// Adds row `row` (event time `ts`) of `key`; returns false, adding nothing, if the record is
    /// late: it joins no open session and its own session `[ts, ts + gap)` has already fired.
    pub fn add(
        &mut self,
        watermark: EventTime,
        ts: EventTime,
        key_group: u16,
        key: &Key,
        args: &[ArgColumn<'_>],
        row: usize,
    ) -> bool {
        let end = ts.saturating_add(self.gap_ms);
        // Open sessions end after the watermark, so a record that joins one is never late.
        let joins_open = self
            .state
            .get(key_group, key)
            .is_some_and(|sessions| sessions.iter().any(|s| sessions_meet(s.start, s.end, ts, end)));
        if !joins_open && is_late(end, watermark) {
            return false;
        }
        let sessions = self.state.get_or_insert_with(key_group, key, Vec::new);
        let (index, needs_timer) = merge_into(sessions, ts, end, &self.specs);
        let session = &mut sessions[index];
        session.accs.iter_mut().zip(args).for_each(|(acc, arg)| acc.update(*arg, row));
        if needs_timer {
            self.timers.entry(session.end - 1).or_default().push((key_group, key.clone()));
        }
        true
    }

    /// Fires every session due under `watermark`, in timer order, handing each to `emit`.
    pub fn fire(&mut self, watermark: EventTime, mut emit: impl FnMut(&Key, &Session)) {
        while let Some(entry) = self.timers.first_entry() {
            if *entry.key() > watermark {
                break;
            }
            for (key_group, key) in entry.remove() {
                let Some(sessions) = self.state.get_mut(key_group, &key) else { continue };
                let mut due = Vec::new();
                sessions.retain(|s| {
                    let fired = is_late(s.end, watermark);
                    if fired {
                        due.push(s.clone());
                    }
                    !fired
                });
                if sessions.is_empty() {
                    self.state.remove(key_group, &key);
                }
                due.sort_by_key(|s| s.start);
                for s in &due {
                    emit(&key, s);
                }
            }
        }
    }

    /// Every key's open sessions `(start, end, accumulators)`, with its key group: a snapshot.
    pub fn snapshot(&self) -> Vec<SessionsSnapshot> {
        (self.state.entries())
            .map(|(group, key, sessions)| {
                let list = sessions.iter().map(|s| (s.start, s.end, s.accs.clone())).collect();
                (group, key.clone(), list)
            })
            .collect()
    }

    /// Restores a snapshot into an empty store, with a timer at each session's last millisecond.
    /// Sessions are checked: non-empty, not meeting one another, accumulators of the right kinds,
    /// key groups of this subtask, no key twice, none due under `watermark`.
    pub fn restore(&mut self, watermark: EventTime, snapshot: Vec<SessionsSnapshot>) -> Result<(), String> {
        assert!(self.state.is_empty(), "restored into an empty store");
        for (key_group, key, list) in snapshot {
            self.state.check_key_group(key_group)?;
            if list.is_empty() || self.state.get(key_group, &key).is_some() {
                return Err(format!("key {key:?} has no sessions or appears twice in the snapshot"));
            }
            let mut sessions = Vec::with_capacity(list.len());
            for (start, end, accs) in list {
                check_restored_accs(&self.specs, &accs)?;
                let meets = sessions.iter().any(|s: &Session| sessions_meet(s.start, s.end, start, end));
                if start >= end || is_late(end, watermark) || meets {
                    return Err(format!(
                        "key {key:?}: session [{start}, {end}) cannot be open at watermark {watermark}"
                    ));
                }
                self.timers.entry(end - 1).or_default().push((key_group, key.clone()));
                sessions.push(Session { start, end, accs });
            }
            *self.state.get_or_insert_with(key_group, &key, Vec::new) = sessions;
        }
        Ok(())
    }

    pub fn assert_invariants(&self, watermark: EventTime) {
        self.state.assert_invariants();
        for (_, group) in self.state.iter_groups() {
            for sessions in group.values() {
                assert!(!sessions.is_empty(), "a key without open sessions keeps no state");
                for (i, s) in sessions.iter().enumerate() {
                    assert!(s.start < s.end || s.end == EventTime::MAX, "a session is never empty");
                    assert!(!is_late(s.end, watermark), "a due session was not fired");
                    for t in &sessions[i + 1..] {
                        assert!(
                            !sessions_meet(s.start, s.end, t.start, t.end),
                            "open sessions that meet are merged"
                        );
                    }
                }
            }
        }
    }
}

/// Merges the window `[start, end)` into a key's sessions; returns the index of the session that
/// now holds it and whether that session needs a timer (its end is new).
fn merge_into(sessions: &mut Vec<Session>, start: i64, end: i64, specs: &[AggregateSpec]) -> (usize, bool) {
    let (mut start, mut end) = (start, end);
    let mut accs = None::<Vec<Acc>>;
    let mut merged_ends = Vec::new();
    let mut i = 0;
    while i < sessions.len() {
        let s = &sessions[i];
        if sessions_meet(s.start, s.end, start, end) {
            let merged = sessions.swap_remove(i);
            merged_ends.push(merged.end);
            start = start.min(merged.start);
            end = end.max(merged.end);
            match &mut accs {
                None => accs = Some(merged.accs),
                Some(a) => a.iter_mut().zip(&merged.accs).for_each(|(x, y)| x.merge(y)),
            }
            // The grown session may now meet sessions already passed over: look again.
            i = 0;
        } else {
            i += 1;
        }
    }
    // Every open session has a pending timer at its end; a new end needs a new one.
    let needs_timer = !merged_ends.contains(&end);
    sessions.push(Session { start, end, accs: accs.unwrap_or_else(|| new_accs(specs)) });
    (sessions.len() - 1, needs_timer)
}
