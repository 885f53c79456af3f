//! Sources: readers that produce batches, and the watermark generator at the head of a source chain.

use crate::batch::Batch;
use crate::dataflow::operator::TaskError;
use crate::time::{EventTime, Instant, WATERMARK_MIN};
use crate::types::EventTimeField;

/// What a source reader has for its subtask right now.
#[derive(Debug)]
pub enum SourcePoll {
    Batch(Batch),
    /// Nothing now; ask again at `until` (or when the driver likes, if `None`).
    Pending {
        until: Option<Instant>,
    },
    /// Bounded input is exhausted.
    Finished,
}

/// Reads one split of a source. Readers that do I/O live in the node crate; the deterministic
/// generator lives in the core. A reader never blocks for long: it returns `Pending` instead.
pub trait SourceReader: Send {
    fn poll(&mut self, now: Instant) -> Result<SourcePoll, TaskError>;

    /// Malformed input records skipped so far.
    fn records_skipped(&self) -> u64 {
        0
    }

    /// The read position a checkpoint records, from which a restored reader replays; `None` for a
    /// reader that cannot replay, which makes the checkpoint fail.
    fn position(&self) -> Option<Vec<u8>> {
        None
    }

    /// Continues from a position `position` returned (before the first poll).
    fn restore_position(&mut self, _position: &[u8]) -> Result<(), String> {
        Err("this source cannot replay from a checkpoint".to_owned())
    }
}

/// Turns a source's event times into watermarks: `max(event time seen) - out_of_orderness - 1`,
/// never going back. Batches are cut before any record at or behind the watermark that would have
/// followed the record before it, so lateness does not depend on how input was batched: at
/// parallelism 1 it is exactly as if a watermark followed every record.
#[derive(Debug)]
pub struct WatermarkGenerator {
    field: EventTimeField,
    out_of_orderness_ms: i64,
    max_event_time: EventTime,
    emitted: EventTime,
}

/// A piece of a source's output after watermark generation.
#[derive(Debug, PartialEq)]
pub enum SourceItem {
    Batch(Batch),
    Watermark(EventTime),
}

impl WatermarkGenerator {
    pub fn new(field: EventTimeField, out_of_orderness_ms: i64) -> WatermarkGenerator {
        assert!(out_of_orderness_ms >= 0);
        WatermarkGenerator {
            field,
            out_of_orderness_ms,
            max_event_time: WATERMARK_MIN,
            emitted: WATERMARK_MIN,
        }
    }

    fn watermark_for(&self, max_event_time: EventTime) -> EventTime {
        if max_event_time == WATERMARK_MIN {
            WATERMARK_MIN
        } else {
            max_event_time.saturating_sub(self.out_of_orderness_ms).saturating_sub(1)
        }
    }

    /// Splits a batch into batches and watermarks, appending them to `out`.
    pub fn process(&mut self, mut batch: Batch, out: &mut Vec<SourceItem>) {
        // Rows before which a watermark must be emitted, with that watermark.
        let mut cut_rows = Vec::new();
        {
            let ts = batch.columns[self.field.index].as_i64().expect("event time is a timestamp");
            let mut max = self.max_event_time;
            let mut announced = self.emitted;
            for (row, &t) in ts.iter().enumerate() {
                let t = t.saturating_add(self.field.offset_ms);
                let watermark = self.watermark_for(max);
                if t <= watermark && watermark > announced {
                    cut_rows.push((row, watermark));
                    announced = watermark;
                }
                max = max.max(t);
            }
            self.max_event_time = max;
        }
        // Cut from the back so earlier row indexes stay valid.
        let mut pieces = Vec::with_capacity(cut_rows.len() + 1);
        for &(row, watermark) in cut_rows.iter().rev() {
            pieces.push((batch.split_off(row), watermark));
        }
        out.push(SourceItem::Batch(batch));
        for (piece, watermark) in pieces.into_iter().rev() {
            self.emit_watermark(watermark, out);
            out.push(SourceItem::Batch(piece));
        }
        out.retain(|item| !matches!(item, SourceItem::Batch(b) if b.is_empty()));
        self.emit_watermark(self.watermark_for(self.max_event_time), out);
    }

    /// The last watermark emitted.
    pub fn current(&self) -> EventTime {
        self.emitted
    }

    /// What a checkpoint records: the largest event time seen and the last watermark emitted.
    pub fn state(&self) -> (EventTime, EventTime) {
        (self.max_event_time, self.emitted)
    }

    pub fn restore(&mut self, (max_event_time, emitted): (EventTime, EventTime)) {
        self.max_event_time = max_event_time;
        self.emitted = emitted;
    }

    fn emit_watermark(&mut self, watermark: EventTime, out: &mut Vec<SourceItem>) {
        if watermark > self.emitted {
            self.emitted = watermark;
            out.push(SourceItem::Watermark(watermark));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Column;

    fn items(ts: &[i64], ooo: i64) -> Vec<SourceItem> {
        let mut g = WatermarkGenerator::new(EventTimeField { index: 0, offset_ms: 0 }, ooo);
        let mut out = Vec::new();
        g.process(Batch::new(vec![Column::Timestamp(ts.to_vec())]), &mut out);
        out
    }

    fn batch(ts: &[i64]) -> SourceItem {
        SourceItem::Batch(Batch::new(vec![Column::Timestamp(ts.to_vec())]))
    }

    #[test]
    fn in_order_input_gives_one_batch_and_one_watermark() {
        assert_eq!(items(&[1, 5, 9], 2), vec![batch(&[1, 5, 9]), SourceItem::Watermark(6)]);
    }

    #[test]
    fn a_record_behind_the_watermark_is_cut_off_after_that_watermark() {
        // After 10 the watermark is 10 - 2 - 1 = 7; 6 is behind it and must see it first.
        assert_eq!(
            items(&[10, 8, 6, 11], 2),
            vec![batch(&[10, 8]), SourceItem::Watermark(7), batch(&[6, 11]), SourceItem::Watermark(8)]
        );
    }

    #[test]
    fn the_watermark_never_goes_back() {
        let mut g = WatermarkGenerator::new(EventTimeField { index: 0, offset_ms: 0 }, 0);
        let mut out = Vec::new();
        g.process(Batch::new(vec![Column::Timestamp(vec![100])]), &mut out);
        g.process(Batch::new(vec![Column::Timestamp(vec![50])]), &mut out);
        assert_eq!(out, vec![batch(&[100]), SourceItem::Watermark(99), batch(&[50])]);
    }
}
