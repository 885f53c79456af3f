//! `window`: keyed event-time windows (tumbling, sliding, session) with aggregates.
//!
//! Tumbling and sliding windows keep their state in [`PaneStore`] (one pane per window across all
//! keys, aggregates as columns); session windows, which merge per key, in [`SessionStore`]. This
//! file assigns records to windows, decides lateness, and builds the output batches.

use crate::batch::{Batch, Column};
use crate::dataflow::operator::{Operator, OperatorMetrics, Output, TaskError};
use crate::dataflow::operators::accumulate::{eval_args, AggregateSpec};
use crate::dataflow::panes::{PaneSnapshot, PaneStore};
use crate::dataflow::sessions::{SessionStore, SessionsSnapshot};
use crate::dataflow::windowing::{is_late, sliding_starts, tumbling_start, WindowKind};
use crate::ids::CheckpointId;
use crate::key::{Key, KeySelector};
use crate::limits::BATCH_ROWS_MAX;
use crate::state::snapshot::{decode_state, encode_state};
use crate::time::{EventTime, WATERMARK_MIN};
use crate::types::{DataType, EventTimeField};

/// What happens to a record whose every window has fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatePolicy {
    Drop,
    /// Send it to the late side output.
    Route,
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

enum Store {
    Panes(Box<PaneStore>),
    Sessions(SessionStore),
}

/// A window operator's state in a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
struct WindowSnapshot {
    watermark: EventTime,
    late_records_dropped: u64,
    late_records_routed: u64,
    contents: WindowContents,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum WindowContents {
    Panes(Vec<PaneSnapshot>),
    Sessions(Vec<SessionsSnapshot>),
}

pub struct WindowOperator {
    config: WindowConfig,
    store: Store,
    watermark: EventTime,
    hashes: Vec<u64>,
    arg_scratch: Vec<Option<Column>>,
    late_rows: Vec<u32>,
    placed_rows: Vec<u32>,
    key_groups: Vec<u16>,
    ids: Vec<u32>,
    pending: Batch,
    metrics: OperatorMetrics,
}

impl WindowOperator {
    pub fn new(config: WindowConfig, key_groups: (u16, u16)) -> WindowOperator {
        let store = match config.kind {
            WindowKind::Session { gap_ms } => {
                Store::Sessions(SessionStore::new(key_groups, gap_ms, &config.aggregates))
            }
            _ => {
                let int_keys = config.key.types.len() == 1 && config.key.types[0].is_integer_like();
                Store::Panes(Box::new(PaneStore::new(key_groups, int_keys, &config.aggregates)))
            }
        };
        let pending = Batch::empty(&config.output_types, 0);
        WindowOperator {
            config,
            store,
            watermark: WATERMARK_MIN,
            hashes: Vec::new(),
            arg_scratch: Vec::new(),
            late_rows: Vec::new(),
            placed_rows: Vec::new(),
            key_groups: Vec::new(),
            ids: Vec::new(),
            pending,
            metrics: OperatorMetrics::default(),
        }
    }

    fn flush(&mut self, out: &mut Output) {
        if !self.pending.is_empty() {
            let empty = Batch::empty(&self.config.output_types, BATCH_ROWS_MAX.min(1024));
            out.batch(std::mem::replace(&mut self.pending, empty));
        }
    }
}

/// Appends one window result (key, bounds, aggregates via `push_aggs`) to `pending`, flushing it
/// to `out` when full.
fn emit_row(
    config: &WindowConfig,
    pending: &mut Batch,
    out: &mut Output,
    key: &Key,
    start: EventTime,
    end: EventTime,
    push_aggs: impl FnOnce(&mut [Column]),
) {
    let key_width = config.key.fields.len();
    let mut columns = std::mem::take(&mut pending.columns);
    config.key.push_key(key, &mut columns[..key_width]);
    for (i, value) in [start, end].into_iter().enumerate() {
        match &mut columns[key_width + i] {
            Column::Timestamp(c) => c.push(value),
            other => unreachable!("window bounds into a {} column", other.data_type()),
        }
    }
    push_aggs(&mut columns[key_width + 2..]);
    let rows = columns[0].len();
    *pending = Batch::with_rows(columns, rows);
    if rows >= BATCH_ROWS_MAX {
        let empty = Batch::empty(&config.output_types, BATCH_ROWS_MAX.min(1024));
        out.batch(std::mem::replace(pending, empty));
    }
}

impl Operator for WindowOperator {
    fn on_batch(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskError> {
        let config = &self.config;
        let args = eval_args(&config.name, &config.aggregates, &batch, &mut self.arg_scratch)?;
        let ts_column =
            batch.columns[config.event_time.index].as_i64().expect("event time is a timestamp or int");
        let offset = config.event_time.offset_ms;
        let watermark = self.watermark;
        config.key.key_groups(&batch, config.max_parallelism, &mut self.hashes, &mut self.key_groups);
        self.late_rows.clear();
        match &mut self.store {
            Store::Panes(panes) => {
                // Pass 1: lateness. A record is late when every window it belongs to has fired.
                let (size_ms, slide_ms) = match config.kind {
                    WindowKind::Tumbling { size_ms } => (size_ms, size_ms),
                    WindowKind::Sliding { size_ms, slide_ms } => (size_ms, slide_ms),
                    WindowKind::Session { .. } => unreachable!("sessions use the session store"),
                };
                self.placed_rows.clear();
                for (row, &raw_ts) in ts_column.iter().enumerate() {
                    let ts = raw_ts.saturating_add(offset);
                    // The latest window holding `ts` is the last to fire. A record in no window
                    // at all (a gap between sliding windows) is late if it is behind the
                    // watermark, and dropped either way (as in Flink).
                    let latest = tumbling_start(ts, slide_ms);
                    if latest.saturating_add(size_ms) <= ts {
                        if ts <= watermark {
                            self.late_rows.push(row as u32);
                        }
                        continue;
                    }
                    if is_late(latest.saturating_add(size_ms), watermark) {
                        self.late_rows.push(row as u32);
                    } else {
                        self.placed_rows.push(row as u32);
                    }
                }
                // Pass 2: key ids, in one tight loop over the batch.
                let key_groups: Vec<u16> =
                    self.placed_rows.iter().map(|&r| self.key_groups[r as usize]).collect();
                panes.key_ids(&config.key, &batch, &self.placed_rows, &key_groups, &mut self.ids);
                // Pass 3: slots in every live window, then the aggregates.
                for (&row, &id) in self.placed_rows.iter().zip(&self.ids) {
                    let ts = ts_column[row as usize].saturating_add(offset);
                    for start in sliding_starts(ts, size_ms, slide_ms) {
                        let end = start.saturating_add(size_ms);
                        if !is_late(end, watermark) {
                            panes.add(start, end, id, row);
                        }
                    }
                }
                panes.apply(&args);
            }
            Store::Sessions(sessions) => {
                for (row, &raw_ts) in ts_column.iter().enumerate() {
                    let ts = raw_ts.saturating_add(offset);
                    let key_group = self.key_groups[row];
                    let key = config.key.key(&batch, row);
                    if !sessions.add(watermark, ts, key_group, &key, &args, row) {
                        self.late_rows.push(row as u32);
                    }
                }
            }
        }
        if !self.late_rows.is_empty() {
            let late_count = self.late_rows.len() as u64;
            match config.late {
                LatePolicy::Drop => self.metrics.late_records_dropped += late_count,
                LatePolicy::Route => {
                    self.metrics.late_records_routed += late_count;
                    let types: Vec<DataType> = batch.columns.iter().map(Column::data_type).collect();
                    let mut late = Batch::empty(&types, self.late_rows.len());
                    late.extend_rows(&batch, &self.late_rows);
                    out.late(late);
                }
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Output) -> Result<(), TaskError> {
        assert!(watermark >= self.watermark, "watermarks never go back");
        self.watermark = watermark;
        let (config, pending) = (&self.config, &mut self.pending);
        match &mut self.store {
            Store::Panes(panes) => panes.fire(watermark, |pane, key, slot| {
                emit_row(config, pending, out, key, pane.start, pane.end, |columns| {
                    for (acc, column) in pane.accs().iter().zip(columns) {
                        acc.push_value(slot, column);
                    }
                });
            }),
            Store::Sessions(sessions) => sessions.fire(watermark, |key, session| {
                emit_row(config, pending, out, key, session.start, session.end, |columns| {
                    for (acc, column) in session.accs.iter().zip(columns) {
                        acc.push_value(column);
                    }
                });
            }),
        }
        self.flush(out);
        out.watermark(watermark);
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint: CheckpointId) -> Result<Vec<u8>, TaskError> {
        let contents = match &self.store {
            Store::Panes(panes) => WindowContents::Panes(panes.snapshot()),
            Store::Sessions(sessions) => WindowContents::Sessions(sessions.snapshot()),
        };
        Ok(encode_state(&WindowSnapshot {
            watermark: self.watermark,
            late_records_dropped: self.metrics.late_records_dropped,
            late_records_routed: self.metrics.late_records_routed,
            contents,
        }))
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        let what = format!("window `{}`", self.config.name);
        let snapshot: WindowSnapshot = decode_state(state, &what)?;
        let watermark = snapshot.watermark;
        match (&mut self.store, snapshot.contents) {
            (Store::Panes(store), WindowContents::Panes(panes)) => {
                if let Some(p) = panes.iter().find(|p| p.end.saturating_sub(1) <= watermark) {
                    return Err(format!(
                        "{what}: pane [{}, {}) is due at watermark {watermark}",
                        p.start, p.end
                    ));
                }
                store.restore(panes).map_err(|e| format!("{what}: {e}"))?;
            }
            (Store::Sessions(store), WindowContents::Sessions(sessions)) => {
                store.restore(watermark, sessions).map_err(|e| format!("{what}: {e}"))?;
            }
            _ => return Err(format!("{what}: the snapshot holds another kind of window")),
        }
        self.watermark = watermark;
        self.metrics.late_records_dropped = snapshot.late_records_dropped;
        self.metrics.late_records_routed = snapshot.late_records_routed;
        Ok(())
    }

    fn extra_metrics(&self) -> OperatorMetrics {
        self.metrics
    }

    fn assert_invariants(&self) {
        match &self.store {
            Store::Panes(panes) => panes.assert_invariants(self.watermark),
            Store::Sessions(sessions) => sessions.assert_invariants(self.watermark),
        }
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
