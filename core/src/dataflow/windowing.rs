//! Event-time window assignment, with Flink's semantics.
//!
//! A window is `[start, end)` in event-time milliseconds. It fires once, when the watermark reaches
//! `end - 1` (its last millisecond), and is late from then on.

use crate::time::EventTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Back-to-back windows of `size_ms`, aligned to the epoch: `start = ts - floor_mod(ts, size)`.
    Tumbling { size_ms: i64 },
    /// Windows of `size_ms` starting at every multiple of `slide_ms` (negative starts included).
    Sliding { size_ms: i64, slide_ms: i64 },
    /// Per key, records closer than `gap_ms` form one window; windows that overlap or touch merge.
    Session { gap_ms: i64 },
}

impl WindowKind {
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Tumbling { .. } => "tumbling",
            WindowKind::Sliding { .. } => "sliding",
            WindowKind::Session { .. } => "session",
        }
    }
}

/// The start of the tumbling window of `size` that holds `ts`.
#[inline]
pub fn tumbling_start(ts: EventTime, size: i64) -> EventTime {
    // Near i64::MIN the true start is not representable; the earliest time stands in for it.
    ts.saturating_sub(ts.rem_euclid(size))
}

/// The starts of every sliding window holding `ts`, latest first.
pub fn sliding_starts(ts: EventTime, size: i64, slide: i64) -> impl Iterator<Item = EventTime> {
    let last = tumbling_start(ts, slide);
    // A window `[s, s + size)` holds `ts` when `s + size > ts` (saturating near the end of time).
    let mut next = Some(last).filter(|&s| s.saturating_add(size) > ts);
    std::iter::from_fn(move || {
        let start = next?;
        next = start.checked_sub(slide).filter(|&s| s.saturating_add(size) > ts);
        Some(start)
    })
}

/// Whether the window ending (exclusively) at `end` has fired under `watermark`.
#[inline]
pub fn is_late(end: EventTime, watermark: EventTime) -> bool {
    end - 1 <= watermark
}

/// Whether two windows `[a_start, a_end)` and `[b_start, b_end)` overlap or touch, so that session
/// windows holding them merge.
#[inline]
pub fn sessions_meet(a_start: i64, a_end: i64, b_start: i64, b_end: i64) -> bool {
    a_start <= b_end && b_start <= a_end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_floors_negative_timestamps() {
        assert_eq!(tumbling_start(0, 1000), 0);
        assert_eq!(tumbling_start(999, 1000), 0);
        assert_eq!(tumbling_start(1000, 1000), 1000);
        assert_eq!(tumbling_start(-1, 1000), -1000);
        assert_eq!(tumbling_start(-1000, 1000), -1000);
    }

    #[test]
    fn sliding_windows_cover_the_timestamp() {
        let starts: Vec<_> = sliding_starts(7, 10, 5).collect();
        assert_eq!(starts, vec![5, 0]);
        let starts: Vec<_> = sliding_starts(0, 10, 5).collect();
        assert_eq!(starts, vec![0, -5]);
        let starts: Vec<_> = sliding_starts(-3, 10, 4).collect();
        assert_eq!(starts, vec![-4, -8, -12]);
        for s in sliding_starts(-3, 10, 4) {
            assert!(s <= -3 && -3 < s + 10);
        }
        // A slide larger than the size leaves gaps: some timestamps are in no window.
        assert_eq!(sliding_starts(7, 5, 10).count(), 0);
        assert_eq!(sliding_starts(12, 5, 10).collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn a_window_is_late_from_its_last_millisecond() {
        assert!(!is_late(1000, 998));
        assert!(is_late(1000, 999));
    }

    #[test]
    fn touching_sessions_meet() {
        assert!(sessions_meet(0, 10, 10, 20));
        assert!(!sessions_meet(0, 10, 11, 20));
        assert!(sessions_meet(5, 8, 0, 20));
    }
}
