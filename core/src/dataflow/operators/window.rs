//! `window`: keyed event-time windows (tumbling, sliding, session) with aggregates.
//!
//! State per key is the list of its open windows with their accumulators, kept in
//! [`KeyedState`] by key group. A timer per (window end, key) says when to look at a key again;
//! timers live in an ordered map so a watermark fires every due window in end order. Session
//! windows that grow leave stale timers behind, which find nothing due and cost one lookup.

use std::collections::BTreeMap;

use crate::batch::{Batch, Column};
use crate::dataflow::operator::{Operator, OperatorMetrics, Output, TaskError};
use crate::dataflow::operators::accumulate::{eval_args, new_accs, Acc, AggregateSpec};
use crate::dataflow::windowing::{is_late, sessions_meet, sliding_starts, tumbling_start, WindowKind};
use crate::key::{key_group_of, Key, KeySelector};
use crate::limits::BATCH_ROWS_MAX;
use crate::state::KeyedState;
use crate::time::{EventTime, WATERMARK_MIN};
use crate::types::{DataType, EventTimeField};

/// What happens to a record whose every window has fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatePolicy {
    Drop,
    /// Send it to the late side output.
    Route,
}

#[derive(Clone, Debug)]
struct WindowSlot {
    start: EventTime,
    end: EventTime,
    accs: Vec<Acc>,
}

/// The configuration of a window operator, fixed when the job graph is built.
#[derive(Clone, Debug)]
pub struct WindowConfig {
    pub name: String,
    pub kind: WindowKind,
    pub key: KeySelector,
    pub event_time: EventTimeField,
    pub aggregates: Vec<AggregateSpec>,
    pub late: LatePolicy,
    pub max_parallelism: u16,
    /// Output types: key fields, window_start, window_end, then one per aggregate.
    pub output_types: Vec<DataType>,
}

pub struct WindowOperator {
    config: WindowConfig,
    state: KeyedState<Vec<WindowSlot>>,
    timers: BTreeMap<EventTime, Vec<(u16, Key)>>,
    watermark: EventTime,
    hashes: Vec<u64>,
    arg_scratch: Vec<Option<Column>>,
    pending: Batch,
    metrics: OperatorMetrics,
}

impl WindowOperator {
    pub fn new(config: WindowConfig, key_groups: (u16, u16)) -> WindowOperator {
        let pending = Batch::empty(&config.output_types, 0);
        WindowOperator {
            config,
            state: KeyedState::new(key_groups),
            timers: BTreeMap::new(),
            watermark: WATERMARK_MIN,
            hashes: Vec::new(),
            arg_scratch: Vec::new(),
            pending,
            metrics: OperatorMetrics::default(),
        }
    }

    fn eval_error(&self, index: usize, error: crate::expr::EvalError) -> TaskError {
        let expression =
            self.config.aggregates[index].arg.as_ref().map(|a| a.to_string()).unwrap_or_default();
        TaskError::Eval { operator: self.config.name.clone(), expression, error }
    }

    /// Fires every window of `key` due under the current watermark.
    fn fire_key(&mut self, key_group: u16, key: &Key, out: &mut Output) {
        let watermark = self.watermark;
        let Some(slots) = self.state.get_mut(key_group, key) else { return };
        let mut fired = Vec::new();
        slots.retain(|slot| {
            let due = is_late(slot.end, watermark);
            if due {
                fired.push(slot.clone());
            }
            !due
        });
        let now_empty = slots.is_empty();
        if now_empty {
            self.state.remove(key_group, key);
        }
        for slot in fired {
            self.emit(key, &slot, out);
        }
    }

    fn emit(&mut self, key: &Key, slot: &WindowSlot, out: &mut Output) {
        let key_width = self.config.key.fields.len();
        let columns = &mut self.pending.columns;
        self.config.key.push_key(key, &mut columns[..key_width]);
        for (i, value) in [slot.start, slot.end].into_iter().enumerate() {
            match &mut columns[key_width + i] {
                Column::Timestamp(c) => c.push(value),
                other => unreachable!("window bounds into a {} column", other.data_type()),
            }
        }
        for (acc, column) in slot.accs.iter().zip(&mut columns[key_width + 2..]) {
            acc.push_value(column);
        }
        let rows = columns[0].len();
        self.pending = Batch::with_rows(std::mem::take(&mut self.pending.columns), rows);
        if rows >= BATCH_ROWS_MAX {
            self.flush(out);
        }
    }

    fn flush(&mut self, out: &mut Output) {
        if !self.pending.is_empty() {
            let empty = Batch::empty(&self.config.output_types, BATCH_ROWS_MAX.min(1024));
            out.batch(std::mem::replace(&mut self.pending, empty));
        }
    }

    /// Finds or opens the window `[start, end)` of one key; returns its index and whether it is new.
    fn add_to_window(
        slots: &mut Vec<WindowSlot>,
        start: i64,
        end: i64,
        specs: &[AggregateSpec],
    ) -> (usize, bool) {
        if let Some(i) = slots.iter().position(|s| s.start == start) {
            return (i, false);
        }
        slots.push(WindowSlot { start, end, accs: new_accs(specs) });
        (slots.len() - 1, true)
    }

    /// Adds a record at `ts` to the sessions of one key; returns the index of its (merged) session
    /// and whether a timer must be set for it.
    fn add_to_session(
        slots: &mut Vec<WindowSlot>,
        ts: i64,
        gap: i64,
        specs: &[AggregateSpec],
    ) -> (usize, bool) {
        let (mut start, mut end) = (ts, ts.saturating_add(gap));
        let mut accs = None::<Vec<Acc>>;
        let mut merged_ends = Vec::new();
        let mut i = 0;
        while i < slots.len() {
            let s = &slots[i];
            if sessions_meet(s.start, s.end, start, end) {
                let merged = slots.swap_remove(i);
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
        let accs = accs.unwrap_or_else(|| new_accs(specs));
        slots.push(WindowSlot { start, end, accs });
        (slots.len() - 1, needs_timer)
    }
}

impl Operator for WindowOperator {
    fn on_batch(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskError> {
        let args = match eval_args(&self.config.aggregates, &batch, &mut self.arg_scratch) {
            Ok(args) => args,
            Err((i, e)) => {
                let error = self.eval_error(i, e);
                return Err(error);
            }
        };
        let ts_column =
            batch.columns[self.config.event_time.index].as_i64().expect("event time is a timestamp");
        let offset = self.config.event_time.offset_ms;
        self.config.key.hashes(&batch, &mut self.hashes);
        let mut late_rows: Vec<u32> = Vec::new();
        for (row, &raw_ts) in ts_column.iter().enumerate() {
            let ts = raw_ts.saturating_add(offset);
            let key_group = key_group_of(self.hashes[row], self.config.max_parallelism);
            let key = self.config.key.key(&batch, row);
            let mut placed = false;
            match self.config.kind {
                WindowKind::Tumbling { size_ms } => {
                    let start = tumbling_start(ts, size_ms);
                    let end = start.saturating_add(size_ms);
                    if !is_late(end, self.watermark) {
                        placed = true;
                        let slots = self.state.get_or_insert_with(key_group, &key, Vec::new);
                        let (i, created) = Self::add_to_window(slots, start, end, &self.config.aggregates);
                        slots[i].accs.iter_mut().zip(&args).for_each(|(acc, arg)| acc.update(*arg, row));
                        if created {
                            self.timers.entry(end - 1).or_default().push((key_group, key));
                        }
                    }
                }
                WindowKind::Sliding { size_ms, slide_ms } => {
                    // With a slide longer than the size, a record may fall in no window at all:
                    // it is dropped, but it is not late (as in Flink).
                    placed = sliding_starts(ts, size_ms, slide_ms).next().is_none();
                    for start in sliding_starts(ts, size_ms, slide_ms) {
                        let end = start.saturating_add(size_ms);
                        if is_late(end, self.watermark) {
                            continue;
                        }
                        placed = true;
                        let slots = self.state.get_or_insert_with(key_group, &key, Vec::new);
                        let (i, created) = Self::add_to_window(slots, start, end, &self.config.aggregates);
                        slots[i].accs.iter_mut().zip(&args).for_each(|(acc, arg)| acc.update(*arg, row));
                        if created {
                            self.timers.entry(end - 1).or_default().push((key_group, key.clone()));
                        }
                    }
                }
                WindowKind::Session { gap_ms } => {
                    // A session that merges with an open one is never late: open sessions end after
                    // the watermark. A lone new session is late when its own end has passed.
                    let joins_open = self.state.get(key_group, &key).is_some_and(|slots| {
                        slots.iter().any(|s| sessions_meet(s.start, s.end, ts, ts.saturating_add(gap_ms)))
                    });
                    if joins_open || !is_late(ts.saturating_add(gap_ms), self.watermark) {
                        placed = true;
                        let slots = self.state.get_or_insert_with(key_group, &key, Vec::new);
                        let (i, needs_timer) =
                            Self::add_to_session(slots, ts, gap_ms, &self.config.aggregates);
                        slots[i].accs.iter_mut().zip(&args).for_each(|(acc, arg)| acc.update(*arg, row));
                        if needs_timer {
                            let end = slots[i].end;
                            self.timers.entry(end - 1).or_default().push((key_group, key));
                        }
                    }
                }
            }
            if !placed {
                late_rows.push(row as u32);
            }
        }
        if !late_rows.is_empty() {
            match self.config.late {
                LatePolicy::Drop => self.metrics.late_records_dropped += late_rows.len() as u64,
                LatePolicy::Route => {
                    self.metrics.late_records_routed += late_rows.len() as u64;
                    let mut late = Batch::empty(
                        &batch.columns.iter().map(Column::data_type).collect::<Vec<_>>(),
                        late_rows.len(),
                    );
                    late.extend_rows(&batch, &late_rows);
                    out.late(late);
                }
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Output) -> Result<(), TaskError> {
        assert!(watermark >= self.watermark, "watermarks never go back");
        self.watermark = watermark;
        while let Some(entry) = self.timers.first_entry() {
            if *entry.key() > watermark {
                break;
            }
            for (key_group, key) in entry.remove() {
                self.fire_key(key_group, &key, out);
            }
        }
        self.flush(out);
        out.watermark(watermark);
        Ok(())
    }

    fn extra_metrics(&self) -> OperatorMetrics {
        self.metrics
    }

    fn assert_invariants(&self) {
        self.state.assert_invariants();
        for (_, group) in self.state.iter_groups() {
            for slots in group.values() {
                assert!(!slots.is_empty(), "a key without open windows keeps no state");
                for s in slots {
                    assert!(s.start < s.end);
                    assert!(!is_late(s.end, self.watermark), "a due window was not fired");
                }
            }
        }
    }
}
