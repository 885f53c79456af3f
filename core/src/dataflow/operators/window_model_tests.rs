//! The window operator against a naive model, over seeded pseudo-random records and watermarks:
//! every watermark must fire exactly the windows the model fires, with the same aggregates, and
//! the operator must drop exactly the records the model calls late.

use std::collections::BTreeMap;

use super::{batch, config, rec, Harness};
use crate::dataflow::local::Rng;
use crate::dataflow::operators::window::LatePolicy;
use crate::dataflow::windowing::WindowKind;
use crate::time::WATERMARK_MAX;
use crate::types::Scalar;

/// `(key, start, end)` → `(count, sum)`.
type Windows = BTreeMap<(i64, i64, i64), (i64, i64)>;

struct Model {
    kind: WindowKind,
    watermark: i64,
    open: Windows,
    dropped: u64,
}

impl Model {
    fn add(&mut self, key: i64, ts: i64, v: i64) {
        let late = |end: i64, watermark: i64| end - 1 <= watermark;
        match self.kind {
            WindowKind::Tumbling { size_ms } => self.add_fixed(key, ts, v, size_ms, size_ms),
            WindowKind::Sliding { size_ms, slide_ms } => self.add_fixed(key, ts, v, size_ms, slide_ms),
            WindowKind::Session { gap_ms } => {
                let (mut start, mut end, mut count, mut sum) = (ts, ts + gap_ms, 1, v);
                let mut joined = false;
                // Merge with every open session of the key that meets the growing one.
                while let Some(&(k, s, e)) =
                    self.open.keys().find(|&&(k, s, e)| k == key && s <= end && start <= e)
                {
                    let (c, x) = self.open.remove(&(k, s, e)).expect("found above");
                    (start, end, count, sum, joined) = (start.min(s), end.max(e), count + c, sum + x, true);
                }
                if !joined && late(end, self.watermark) {
                    self.dropped += 1;
                } else {
                    self.open.insert((key, start, end), (count, sum));
                }
            }
        }
    }

    fn add_fixed(&mut self, key: i64, ts: i64, v: i64, size: i64, slide: i64) {
        let starts: Vec<i64> =
            (0..).map(|i| ts.div_euclid(slide) * slide - i * slide).take_while(|&s| s > ts - size).collect();
        let open: Vec<i64> = starts.iter().copied().filter(|&s| s + size - 1 > self.watermark).collect();
        // Late as in Flink: every window it belongs to has fired, or (in a gap between sliding
        // windows) it belongs to none and is behind the watermark.
        if (!starts.is_empty() && open.is_empty()) || (starts.is_empty() && ts <= self.watermark) {
            self.dropped += 1;
        }
        for s in open {
            let w = self.open.entry((key, s, s + size)).or_default();
            *w = (w.0 + 1, w.1 + v);
        }
    }

    fn fire(&mut self, watermark: i64) -> Vec<Vec<Scalar>> {
        self.watermark = watermark;
        let due: Vec<_> = self.open.keys().copied().filter(|&(_, _, e)| e - 1 <= watermark).collect();
        let mut rows: Vec<Vec<Scalar>> = due
            .into_iter()
            .map(|k| {
                let (count, sum) = self.open.remove(&k).expect("due");
                let (key, start, end) = k;
                let ts = Scalar::Timestamp;
                vec![Scalar::Int(key), ts(start), ts(end), Scalar::Int(count), Scalar::Int(sum)]
            })
            .collect();
        sort(&mut rows);
        rows
    }
}

fn sort(rows: &mut [Vec<Scalar>]) {
    rows.sort_by_key(|r| format!("{r:?}"));
}

/// Runs one seed; returns the records dropped as late and the windows fired.
fn run(kind: WindowKind, seed: u64) -> (u64, usize) {
    let c = config(kind, &["key"], &[("n", "count()"), ("s", "sum(v)")], LatePolicy::Drop);
    let mut h = Harness::new(c);
    let mut model = Model { kind, watermark: i64::MIN, open: Windows::new(), dropped: 0 };
    let mut rng = Rng::new(seed);
    let (mut max_ts, mut watermark, mut windows) = (-50i64, i64::MIN, 0);
    for step in 0..60 {
        let rows = 1 + rng.below(6);
        let recs: Vec<_> = (0..rows)
            .map(|_| {
                let ts = max_ts + rng.below(12) as i64 - 8;
                max_ts = max_ts.max(ts);
                rec(rng.below(4) as i64, ts, rng.below(100) as i64)
            })
            .collect();
        for r in &recs {
            model.add(r.key, r.ts, r.v);
        }
        h.send(&recs);
        assert_eq!(h.metrics().late_records_dropped, model.dropped, "{kind:?} seed {seed} step {step}");
        if rng.below(3) == 0 {
            watermark = watermark.max(max_ts - rng.below(10) as i64);
            let mut fired = h.watermark(watermark);
            sort(&mut fired);
            windows += fired.len();
            assert_eq!(fired, model.fire(watermark), "{kind:?} seed {seed} step {step}: {:?}", batch(&recs));
        }
    }
    let mut fired = h.watermark(WATERMARK_MAX);
    sort(&mut fired);
    assert_eq!(fired, model.fire(WATERMARK_MAX), "{kind:?} seed {seed} at the end");
    (model.dropped, windows + fired.len())
}

#[test]
fn every_window_kind_fires_what_a_naive_model_fires() {
    let kinds = [
        WindowKind::Tumbling { size_ms: 10 },
        WindowKind::Sliding { size_ms: 10, slide_ms: 5 },
        WindowKind::Sliding { size_ms: 10, slide_ms: 3 },
        WindowKind::Sliding { size_ms: 4, slide_ms: 10 },
        WindowKind::Session { gap_ms: 5 },
        WindowKind::Session { gap_ms: 1 },
    ];
    for kind in kinds {
        let (mut dropped, mut windows) = (0, 0);
        for seed in 0..40 {
            let (d, w) = run(kind, seed);
            (dropped, windows) = (dropped + d, windows + w);
        }
        // The inputs must exercise lateness and firing, or the comparison proves little.
        assert!(dropped > 0 && windows > 40, "{kind:?}: {dropped} dropped, {windows} windows");
    }
}
