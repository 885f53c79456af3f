//! Event-time alignment of a source's splits.
//!
//! The watermark downstream of a source is the minimum over its splits. A split that runs ahead
//! adds nothing to it: its records only open windows that cannot fire until the slowest split
//! catches up, so window state grows with the skew. Each split therefore pauses while its
//! watermark is more than [`SPLIT_DRIFT_MAX_MS`] ahead of the slowest split of the same source
//! (as Flink's watermark alignment does). Only splits of one source are aligned: different
//! sources may live in unrelated event-time ranges. Pausing cannot deadlock: the slowest split
//! never waits on alignment, and consumers read whatever input is available.

use std::sync::atomic::{AtomicI64, Ordering};

use rivulet_core::time::{EventTime, WATERMARK_MIN};

/// How far (in event time) a split may run ahead of its source's slowest split.
pub const SPLIT_DRIFT_MAX_MS: i64 = 1_000;

/// The current watermarks of one source's splits, shared by their drivers.
#[derive(Debug)]
pub struct SplitAlignment {
    watermarks: Vec<AtomicI64>,
}

impl SplitAlignment {
    pub fn new(splits: usize) -> SplitAlignment {
        SplitAlignment { watermarks: (0..splits).map(|_| AtomicI64::new(WATERMARK_MIN)).collect() }
    }

    pub fn publish(&self, split: usize, watermark: EventTime) {
        self.watermarks[split].store(watermark, Ordering::Relaxed);
    }

    /// Whether `split` may produce more: it is not too far ahead of the slowest split.
    pub fn may_advance(&self, split: usize) -> bool {
        let min = self.watermarks.iter().map(|w| w.load(Ordering::Relaxed)).min().unwrap_or(WATERMARK_MIN);
        self.watermarks[split].load(Ordering::Relaxed) <= min.saturating_add(SPLIT_DRIFT_MAX_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_pauses_only_while_too_far_ahead() {
        let a = SplitAlignment::new(2);
        assert!(a.may_advance(0) && a.may_advance(1));
        a.publish(0, 5_000);
        assert!(!a.may_advance(0), "split 1 has not started yet");
        assert!(a.may_advance(1), "the slowest split never waits");
        a.publish(1, 4_500);
        assert!(a.may_advance(0));
        a.publish(1, i64::MAX);
        assert!(a.may_advance(0), "a finished split holds nobody back");
    }
}
