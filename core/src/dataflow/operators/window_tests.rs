//! Unit tests of the window operator, driven by hand with small batches and watermarks.
//!
//! Every step runs the operator's `assert_invariants`, which checks that no due window is left
//! open and that a key without open windows keeps no state.

#[path = "window_model_tests.rs"]
mod model;

use crate::batch::{Batch, Column};
use crate::dataflow::operator::{Operator, OperatorMetrics, Output, OutputItem, TaskError};
use crate::dataflow::operators::accumulate::{AggregateKind, AggregateSpec};
use crate::dataflow::operators::window::{LatePolicy, WindowConfig, WindowOperator};
use crate::dataflow::windowing::WindowKind;
use crate::expr::{parse_and_compile, EvalError};
use crate::key::KeySelector;
use crate::limits::BATCH_ROWS_MAX;
use crate::time::{EventTime, WATERMARK_MAX};
use crate::types::{DataType, EventTimeField, Field, Scalar, Schema};

/// One input record: `key: int, name: string, ts: timestamp, v: int, f: float`.
#[derive(Clone, Copy)]
struct Rec<'a> {
    key: i64,
    name: &'a str,
    ts: i64,
    v: i64,
    f: f64,
}

fn rec(key: i64, ts: i64, v: i64) -> Rec<'static> {
    Rec { key, name: "n", ts, v, f: v as f64 / 2.0 }
}

fn named(name: &str, key: i64, ts: i64) -> Rec<'_> {
    Rec { key, name, ts, v: 1, f: 0.5 }
}

fn input_schema() -> Schema {
    let mut schema = Schema::new(vec![
        Field::new("key", DataType::Int),
        Field::new("name", DataType::Str),
        Field::new("ts", DataType::Timestamp),
        Field::new("v", DataType::Int),
        Field::new("f", DataType::Float),
    ]);
    schema.event_time = Some(EventTimeField { index: 2, offset_ms: 0 });
    schema
}

fn batch(recs: &[Rec<'_>]) -> Batch {
    Batch::new(vec![
        Column::Int(recs.iter().map(|r| r.key).collect()),
        Column::Str(recs.iter().map(|r| r.name).collect()),
        Column::Timestamp(recs.iter().map(|r| r.ts).collect()),
        Column::Int(recs.iter().map(|r| r.v).collect()),
        Column::Float(recs.iter().map(|r| r.f).collect()),
    ])
}

/// An aggregate from `output = "function(argument)"`, type-checked against the input schema.
fn spec(output: &str, call: &str) -> AggregateSpec {
    let (function, rest) = call.split_once('(').expect("a call");
    let arg_text = rest.strip_suffix(')').expect("a closing parenthesis").trim();
    let kind = AggregateKind::from_name(function).expect("a known aggregate");
    let arg = (!arg_text.is_empty()).then(|| parse_and_compile(arg_text, &input_schema()).expect("compiles"));
    let output_type = kind.result_type(arg.as_ref().map(|a| a.data_type())).expect("applies");
    AggregateSpec { output_name: output.to_owned(), kind, arg, output_type }
}

/// A window over the key fields `keys` (by name), with output types built as the job file does.
fn config(kind: WindowKind, keys: &[&str], aggregates: &[(&str, &str)], late: LatePolicy) -> WindowConfig {
    let schema = input_schema();
    let fields: Vec<usize> = keys.iter().map(|k| schema.index_of(k).expect("a key field")).collect();
    let types: Vec<DataType> = fields.iter().map(|&f| schema.fields[f].data_type).collect();
    let aggregates: Vec<AggregateSpec> = aggregates.iter().map(|(o, c)| spec(o, c)).collect();
    let mut output_types = types.clone();
    output_types.extend([DataType::Timestamp, DataType::Timestamp]);
    output_types.extend(aggregates.iter().map(|a| a.output_type));
    WindowConfig {
        name: "w".to_owned(),
        kind,
        key: KeySelector::new(fields, types),
        event_time: schema.event_time.expect("the schema has event time"),
        aggregates,
        late,
        max_parallelism: 128,
        output_types,
    }
}

/// Drives one operator and checks its invariants after every step.
struct Harness {
    op: WindowOperator,
    output_types: Vec<DataType>,
    late: Vec<Vec<Scalar>>,
}

impl Harness {
    fn new(config: WindowConfig) -> Harness {
        Harness::with_key_groups(config, (0, 128))
    }

    fn with_key_groups(config: WindowConfig, key_groups: (u16, u16)) -> Harness {
        let output_types = config.output_types.clone();
        let op = WindowOperator::new(config, key_groups);
        op.assert_invariants();
        Harness { op, output_types, late: Vec::new() }
    }

    fn count(kind: WindowKind) -> Harness {
        Harness::new(config(kind, &["key"], &[("n", "count()")], LatePolicy::Drop))
    }

    /// Feeds records; a batch never emits window results, only (maybe) late records.
    fn send(&mut self, recs: &[Rec<'_>]) {
        let mut out = Output::default();
        self.op.on_batch(batch(recs), &mut out).expect("no evaluation error");
        self.op.assert_invariants();
        assert_eq!(out.take_main(), vec![], "records alone fire nothing");
        for b in out.take_late() {
            self.late.extend((0..b.len()).map(|r| b.row(r)));
        }
    }

    /// Advances the watermark; returns the rows fired, in emission order. The watermark itself
    /// must be forwarded once, after the results.
    fn watermark(&mut self, watermark: EventTime) -> Vec<Vec<Scalar>> {
        let mut out = Output::default();
        self.op.on_watermark(watermark, &mut out).expect("watermarks do not fail");
        self.op.assert_invariants();
        let mut items = out.take_main();
        assert_eq!(items.pop(), Some(OutputItem::Watermark(watermark)), "the watermark comes last");
        let mut rows = Vec::new();
        for item in items {
            let OutputItem::Batch(b) = item else { panic!("a second watermark in one step") };
            assert!(!b.is_empty() && b.len() <= BATCH_ROWS_MAX);
            let types: Vec<DataType> = b.columns.iter().map(Column::data_type).collect();
            assert_eq!(types, self.output_types, "results have the configured output types");
            rows.extend((0..b.len()).map(|r| b.row(r)));
        }
        rows
    }

    fn metrics(&self) -> OperatorMetrics {
        self.op.extra_metrics()
    }
}

fn int(v: i64) -> Scalar {
    Scalar::Int(v)
}

fn ts(v: i64) -> Scalar {
    Scalar::Timestamp(v)
}

/// A result row of a count window keyed by one int: `[key, start, end, count]`.
fn counted(key: i64, start: i64, end: i64, n: i64) -> Vec<Scalar> {
    vec![int(key), ts(start), ts(end), int(n)]
}

const TUMBLING_1S: WindowKind = WindowKind::Tumbling { size_ms: 1000 };

// ---------------------------------------------------------------------------------------------
// Tumbling windows and firing.

#[test]
fn tumbling_windows_align_to_the_epoch() {
    let mut h = Harness::count(TUMBLING_1S);
    h.send(&[rec(1, 0, 0), rec(1, 999, 0), rec(1, 1000, 0), rec(1, 2500, 0)]);
    let fired = h.watermark(WATERMARK_MAX);
    assert_eq!(fired, vec![counted(1, 0, 1000, 2), counted(1, 1000, 2000, 1), counted(1, 2000, 3000, 1)]);
}

#[test]
fn tumbling_windows_of_negative_timestamps_floor_towards_minus_infinity() {
    let mut h = Harness::count(TUMBLING_1S);
    h.send(&[rec(1, -1, 0), rec(1, -1000, 0), rec(1, -1001, 0), rec(1, -2000, 0)]);
    let fired = h.watermark(WATERMARK_MAX);
    assert_eq!(fired, vec![counted(1, -2000, -1000, 2), counted(1, -1000, 0, 2)]);
}

#[test]
fn a_window_fires_exactly_when_the_watermark_reaches_its_last_millisecond() {
    let mut h = Harness::count(TUMBLING_1S);
    h.send(&[rec(1, 10, 0)]);
    assert_eq!(h.watermark(500), Vec::<Vec<Scalar>>::new());
    assert_eq!(h.watermark(998), Vec::<Vec<Scalar>>::new(), "not before end - 1");
    assert_eq!(h.watermark(999), vec![counted(1, 0, 1000, 1)]);
}

#[test]
fn each_window_fires_once() {
    let mut h = Harness::count(TUMBLING_1S);
    h.send(&[rec(1, 10, 0), rec(2, 20, 0)]);
    assert_eq!(h.watermark(999).len(), 2);
    assert!(h.watermark(999).is_empty(), "a repeated watermark fires nothing");
    assert!(h.watermark(5000).is_empty());
    assert!(h.watermark(WATERMARK_MAX).is_empty());
}

#[test]
fn a_watermark_jump_fires_every_due_window_in_end_order() {
    let mut h = Harness::count(TUMBLING_1S);
    // Records arrive with their windows out of order, over two keys.
    h.send(&[rec(2, 2100, 0), rec(1, 50, 0), rec(1, 1100, 0), rec(2, 10, 0), rec(3, 9000, 0)]);
    let fired = h.watermark(2999);
    let ends: Vec<&Scalar> = fired.iter().map(|r| &r[2]).collect();
    assert_eq!(ends, vec![&ts(1000), &ts(1000), &ts(2000), &ts(3000)]);
    assert_eq!(fired.len(), 4);
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(3, 9000, 10_000, 1)]);
}

#[test]
fn the_final_watermark_fires_windows_at_the_far_end_of_time() {
    let mut h = Harness::count(TUMBLING_1S);
    let far = i64::MAX - 10;
    h.send(&[rec(1, far, 0), rec(1, -5_000_000_000_000, 0)]);
    assert_eq!(h.watermark(i64::MAX - 1000).len(), 1, "only the early window is due");
    let fired = h.watermark(WATERMARK_MAX);
    let start = far - far.rem_euclid(1000);
    // The last window's end does not fit in an i64: it saturates.
    assert_eq!(fired, vec![counted(1, start, i64::MAX, 1)]);
}

#[test]
fn results_are_split_into_batches_of_at_most_the_batch_limit() {
    let mut h = Harness::count(TUMBLING_1S);
    let keys = BATCH_ROWS_MAX as i64 + 100;
    let recs: Vec<Rec<'_>> = (0..keys).map(|k| rec(k, 5, 0)).collect();
    h.send(&recs);
    let fired = h.watermark(999); // `watermark` checks each batch's size
    assert_eq!(fired.len(), keys as usize);
    let mut seen: Vec<i64> = fired.iter().map(|r| if let Scalar::Int(k) = r[0] { k } else { -1 }).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..keys).collect::<Vec<_>>());
}

#[test]
fn an_event_time_offset_shifts_the_assigned_window() {
    // A cascaded window reads `window_end` with an offset of -1: end 1000 is event time 999.
    let mut c = config(TUMBLING_1S, &["key"], &[("n", "count()")], LatePolicy::Drop);
    c.event_time.offset_ms = -1;
    let mut h = Harness::new(c);
    h.send(&[rec(1, 1000, 0), rec(1, 2000, 0)]);
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 0, 1000, 1), counted(1, 1000, 2000, 1)]);
}

// ---------------------------------------------------------------------------------------------
// Sliding windows.

#[test]
fn a_sliding_record_counts_in_every_window_that_holds_it() {
    let mut h = Harness::count(WindowKind::Sliding { size_ms: 10, slide_ms: 5 });
    h.send(&[rec(1, 7, 0), rec(1, 12, 0)]);
    let fired = h.watermark(WATERMARK_MAX);
    assert_eq!(fired, vec![counted(1, 0, 10, 1), counted(1, 5, 15, 2), counted(1, 10, 20, 1)]);
}

#[test]
fn sliding_windows_of_negative_timestamps_start_below_zero() {
    let mut h = Harness::count(WindowKind::Sliding { size_ms: 10, slide_ms: 4 });
    h.send(&[rec(1, -3, 0)]);
    let fired = h.watermark(WATERMARK_MAX);
    assert_eq!(fired, vec![counted(1, -12, -2, 1), counted(1, -8, 2, 1), counted(1, -4, 6, 1)]);
}

#[test]
fn a_sliding_record_in_a_gap_between_windows_is_dropped_and_late_only_behind_the_watermark() {
    // Windows [0,5), [10,15), …: a record at 7 is in none of them.
    let mut h = Harness::count(WindowKind::Sliding { size_ms: 5, slide_ms: 10 });
    h.send(&[rec(1, 7, 0), rec(1, 12, 0), rec(1, -6, 0)]);
    assert_eq!(h.metrics().late_records_dropped, 0);
    assert_eq!(h.watermark(WATERMARK_MAX - 1), vec![counted(1, -10, -5, 1), counted(1, 10, 15, 1)]);
    // As in Flink, a record in no window that is behind the watermark counts as late.
    let mut h = Harness::count(WindowKind::Sliding { size_ms: 5, slide_ms: 10 });
    h.watermark(20);
    h.send(&[rec(1, 17, 0), rec(1, 27, 0)]);
    assert_eq!(h.metrics().late_records_dropped, 1);
}

#[test]
fn a_sliding_record_whose_first_windows_fired_still_counts_in_the_open_ones() {
    let mut h = Harness::count(WindowKind::Sliding { size_ms: 10, slide_ms: 5 });
    h.send(&[rec(1, 3, 0)]);
    assert_eq!(h.watermark(9), vec![counted(1, -5, 5, 1), counted(1, 0, 10, 1)]);
    // 7 belongs to [0,10) (fired) and [5,15) (open): it is not late.
    h.send(&[rec(1, 7, 0)]);
    assert_eq!(h.metrics().late_records_dropped, 0);
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 5, 15, 1)]);
}

#[test]
fn a_sliding_record_behind_all_its_windows_is_dropped_and_counted() {
    let mut h = Harness::count(WindowKind::Sliding { size_ms: 10, slide_ms: 5 });
    h.watermark(14);
    h.send(&[rec(1, 5, 0), rec(1, 10, 0)]);
    assert_eq!(h.metrics().late_records_dropped, 1, "5 is only in [0,10) and [5,15)");
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 10, 20, 1)]);
}

// ---------------------------------------------------------------------------------------------
// Session windows.

const SESSION_10: WindowKind = WindowKind::Session { gap_ms: 10 };

#[test]
fn records_closer_than_the_gap_form_one_session() {
    let mut h = Harness::count(SESSION_10);
    h.send(&[rec(1, 0, 0), rec(1, 5, 0), rec(1, 30, 0)]);
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 0, 15, 2), counted(1, 30, 40, 1)]);
}

#[test]
fn touching_sessions_merge_while_the_first_is_open() {
    let mut h = Harness::count(SESSION_10);
    h.send(&[rec(1, 0, 0)]);
    assert!(h.watermark(8).is_empty());
    // [0,10) and [10,20) touch: one session [0,20).
    h.send(&[rec(1, 10, 0)]);
    assert!(h.watermark(9).is_empty(), "the merged session ends at 20");
    assert!(h.watermark(18).is_empty());
    assert_eq!(h.watermark(19), vec![counted(1, 0, 20, 2)]);
}

#[test]
fn a_record_touching_a_fired_session_starts_a_new_one() {
    let mut h = Harness::count(SESSION_10);
    h.send(&[rec(1, 0, 0)]);
    assert_eq!(h.watermark(9), vec![counted(1, 0, 10, 1)]);
    h.send(&[rec(1, 10, 0)]);
    assert_eq!(h.metrics().late_records_dropped, 0);
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 10, 20, 1)]);
}

#[test]
fn a_record_between_two_sessions_merges_them_with_their_aggregates() {
    let aggs = [("n", "count()"), ("s", "sum(v)"), ("lo", "min(v)"), ("hi", "max(v)"), ("m", "avg(v)")];
    let mut h = Harness::new(config(SESSION_10, &["key"], &aggs, LatePolicy::Drop));
    h.send(&[rec(1, 0, 4), rec(1, 20, -2), rec(1, 23, 9)]); // [0,10) and [20,33)
    h.send(&[rec(1, 10, 1)]); // [10,20) touches both
    h.send(&[rec(1, 5, 6)]);
    let fired = h.watermark(WATERMARK_MAX);
    let expected = vec![int(1), ts(0), ts(33), int(5), int(18), int(-2), int(9), Scalar::Float(18.0 / 5.0)];
    assert_eq!(fired, vec![expected]);
}

#[test]
fn sessions_merge_the_same_way_whatever_the_arrival_order() {
    let times = [0, 20, 10, 43, 34];
    let mut results = Vec::new();
    for rotation in 0..times.len() {
        let mut h = Harness::count(SESSION_10);
        for i in 0..times.len() {
            h.send(&[rec(1, times[(i + rotation) % times.len()], 0)]);
        }
        results.push(h.watermark(WATERMARK_MAX));
    }
    for r in &results {
        // [0,30) from 0, 10, 20 and [34,53) from 34 and 43.
        assert_eq!(r, &vec![counted(1, 0, 30, 3), counted(1, 34, 53, 2)]);
    }
}

#[test]
fn a_grown_session_does_not_fire_at_its_old_end() {
    let mut h = Harness::count(SESSION_10);
    h.send(&[rec(1, 0, 0)]);
    h.send(&[rec(1, 5, 0)]);
    assert!(h.watermark(9).is_empty(), "the stale timer at 9 finds nothing due");
    assert_eq!(h.watermark(14), vec![counted(1, 0, 15, 2)]);
    assert!(h.watermark(WATERMARK_MAX).is_empty());
}

#[test]
fn a_record_behind_the_watermark_that_joins_an_open_session_is_kept() {
    let mut h = Harness::count(SESSION_10);
    h.send(&[rec(1, 5, 0)]);
    h.watermark(12);
    // On its own [0,10) would be late, but it meets the open [5,15).
    h.send(&[rec(1, 0, 0)]);
    assert_eq!(h.metrics().late_records_dropped, 0);
    assert_eq!(h.watermark(14), vec![counted(1, 0, 15, 2)]);
}

#[test]
fn a_lone_session_record_behind_the_watermark_is_dropped_and_counted() {
    let mut h = Harness::count(SESSION_10);
    h.watermark(100);
    h.send(&[rec(1, 50, 0), rec(1, 91, 0), rec(1, 92, 0), rec(1, 90, 0)]);
    // [50,60), [90,100) and [91,101) are late on their own (101 - 1 <= 100); [92,102) is not,
    // and 90 then meets it.
    assert_eq!(h.metrics().late_records_dropped, 2);
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 90, 102, 2)]);
}

#[test]
fn sessions_of_different_keys_never_merge() {
    let mut h = Harness::count(SESSION_10);
    h.send(&[rec(1, 0, 0), rec(2, 5, 0), rec(1, 12, 0)]);
    let mut fired = h.watermark(WATERMARK_MAX);
    fired.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(fired, vec![counted(1, 0, 10, 1), counted(1, 12, 22, 1), counted(2, 5, 15, 1)]);
}

// ---------------------------------------------------------------------------------------------
// Lateness.

#[test]
fn a_record_behind_every_window_is_dropped_and_counted() {
    let mut h = Harness::count(TUMBLING_1S);
    h.send(&[rec(1, 500, 0)]);
    assert_eq!(h.watermark(999).len(), 1);
    h.send(&[rec(1, 500, 0), rec(1, 999, 0), rec(1, 1000, 0)]);
    assert_eq!(h.metrics().late_records_dropped, 2);
    assert_eq!(h.metrics().late_records_routed, 0);
    assert!(h.late.is_empty(), "dropping routes nothing");
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 1000, 2000, 1)]);
}

#[test]
fn a_record_behind_the_watermark_in_an_open_window_is_not_late() {
    let mut h = Harness::count(TUMBLING_1S);
    h.watermark(900);
    h.send(&[rec(1, 100, 0)]);
    assert_eq!(h.metrics(), OperatorMetrics::default());
    assert_eq!(h.watermark(999), vec![counted(1, 0, 1000, 1)]);
}

#[test]
fn late_records_are_routed_whole_and_in_order_under_the_route_policy() {
    let mut h = Harness::new(config(TUMBLING_1S, &["key"], &[("n", "count()")], LatePolicy::Route));
    h.watermark(999);
    let recs = [rec(1, 1500, 3), named("late-a", 7, 20), rec(2, 2000, 4), named("late-b", 8, 999)];
    h.send(&recs);
    let late =
        |r: Rec<'_>| vec![int(r.key), Scalar::Str(r.name.into()), ts(r.ts), int(r.v), Scalar::Float(r.f)];
    assert_eq!(h.late, vec![late(recs[1]), late(recs[3])]);
    assert_eq!(h.metrics().late_records_routed, 2);
    assert_eq!(h.metrics().late_records_dropped, 0);
    assert_eq!(h.watermark(WATERMARK_MAX), vec![counted(1, 1000, 2000, 1), counted(2, 2000, 3000, 1)]);
}

// ---------------------------------------------------------------------------------------------
// Aggregates, keys and the output schema.

#[test]
fn integer_aggregates_over_one_window() {
    let aggs = [("n", "count()"), ("s", "sum(v)"), ("lo", "min(v)"), ("hi", "max(v)"), ("m", "avg(v)")];
    let mut h = Harness::new(config(TUMBLING_1S, &["key"], &aggs, LatePolicy::Drop));
    h.send(&[rec(1, 1, 7), rec(1, 2, -3)]);
    h.send(&[rec(1, 3, 2)]);
    let fired = h.watermark(999);
    assert_eq!(
        fired,
        vec![vec![int(1), ts(0), ts(1000), int(3), int(6), int(-3), int(7), Scalar::Float(2.0)]]
    );
}

#[test]
fn float_aggregates_keep_float_types() {
    let aggs = [("s", "sum(f)"), ("lo", "min(f)"), ("hi", "max(f)"), ("m", "avg(f)")];
    let mut h = Harness::new(config(TUMBLING_1S, &["key"], &aggs, LatePolicy::Drop));
    h.send(&[rec(1, 1, 3), rec(1, 2, -1), rec(1, 3, 4)]); // f = 1.5, -0.5, 2.0
    let f = Scalar::Float;
    assert_eq!(h.watermark(999), vec![vec![int(1), ts(0), ts(1000), f(3.0), f(-0.5), f(2.0), f(1.0)]]);
}

#[test]
fn aggregates_of_computed_arguments_and_timestamps() {
    let aggs = [("s", "sum(v * 10 + 1)"), ("first", "min(ts)"), ("last", "max(ts)"), ("m", "avg(v * 1.0)")];
    let mut h = Harness::new(config(TUMBLING_1S, &["key"], &aggs, LatePolicy::Drop));
    h.send(&[rec(1, 300, 1), rec(1, 100, 2), rec(1, 200, 4)]);
    let fired = h.watermark(999);
    let expected = vec![int(1), ts(0), ts(1000), int(73), ts(100), ts(300), Scalar::Float(7.0 / 3.0)];
    assert_eq!(fired, vec![expected]);
}

#[test]
fn a_failing_aggregate_argument_is_an_error_naming_the_operator_and_expression() {
    let mut h = Harness::new(config(TUMBLING_1S, &["key"], &[("q", "sum(v / (key - 1))")], LatePolicy::Drop));
    let mut out = Output::default();
    let err = h.op.on_batch(batch(&[rec(1, 0, 5)]), &mut out).unwrap_err();
    match err {
        TaskError::Eval { operator, expression, error } => {
            assert_eq!(operator, "w");
            assert!(expression.contains("key - 1"), "{expression}");
            assert_eq!(error, EvalError::DivisionByZero);
        }
        other => panic!("expected an evaluation error, got {other:?}"),
    }
    h.op.assert_invariants();
}

#[test]
fn string_keys_group_by_value() {
    let mut h = Harness::new(config(TUMBLING_1S, &["name"], &[("n", "count()")], LatePolicy::Drop));
    h.send(&[named("b", 1, 10), named("a", 2, 20), named("b", 3, 30), named("", 4, 40)]);
    let mut fired = h.watermark(999);
    fired.sort_by_key(|r| format!("{r:?}"));
    let row = |s: &str, n| vec![Scalar::Str(s.into()), ts(0), ts(1000), int(n)];
    assert_eq!(fired, vec![row("", 1), row("a", 1), row("b", 2)]);
}

#[test]
fn multi_field_keys_come_first_in_key_order_then_bounds_then_aggregates() {
    // The key is (name, key): the output starts with name, then key, whatever the input order.
    let c = config(TUMBLING_1S, &["name", "key"], &[("n", "count()"), ("s", "sum(v)")], LatePolicy::Drop);
    assert_eq!(
        c.output_types,
        [
            DataType::Str,
            DataType::Int,
            DataType::Timestamp,
            DataType::Timestamp,
            DataType::Int,
            DataType::Int
        ]
    );
    let mut h = Harness::new(c);
    let r = |name, key, v| Rec { key, name, ts: 5, v, f: 0.0 };
    h.send(&[r("x", 1, 1), r("x", 2, 10), r("y", 1, 100), r("x", 1, 1000)]);
    let mut fired = h.watermark(999);
    fired.sort_by_key(|r| format!("{r:?}"));
    let row =
        |name: &str, key, n, s| vec![Scalar::Str(name.into()), int(key), ts(0), ts(1000), int(n), int(s)];
    assert_eq!(fired, vec![row("x", 1, 2, 1001), row("x", 2, 1, 10), row("y", 1, 1, 100)]);
}

#[test]
fn keys_across_many_key_groups_are_kept_apart() {
    let mut h = Harness::new(config(TUMBLING_1S, &["key"], &[("s", "sum(v)")], LatePolicy::Drop));
    let recs: Vec<Rec<'_>> = (0..1000).map(|i| rec(i % 250, i, i)).collect();
    h.send(&recs);
    let fired = h.watermark(999);
    assert_eq!(fired.len(), 250);
    for row in fired {
        let Scalar::Int(k) = row[0] else { panic!("an int key") };
        // Key k holds k, k + 250, k + 500, k + 750.
        assert_eq!(row[3], int(4 * k + 1500));
    }
}

#[test]
fn a_key_group_range_smaller_than_all_groups_holds_only_its_own_keys() {
    // A subtask owning key groups 0..64 of 128 gets, after hash partitioning, only its keys.
    let c = config(TUMBLING_1S, &["key"], &[("n", "count()")], LatePolicy::Drop);
    let mut h = Harness::with_key_groups(c, (0, 64));
    let owned: Vec<i64> = (0..200)
        .filter(|&k| crate::key::key_group_of(crate::key::Key::Int(k).stable_hash(), 128) < 64)
        .collect();
    let recs: Vec<Rec<'_>> = owned.iter().map(|&k| rec(k, 1, 0)).collect();
    h.send(&recs);
    assert_eq!(h.watermark(WATERMARK_MAX).len(), owned.len());
}

#[test]
fn a_record_at_the_smallest_timestamp_does_not_overflow_window_assignment() {
    for kind in [TUMBLING_1S, WindowKind::Sliding { size_ms: 1000, slide_ms: 300 }] {
        let mut h = Harness::count(kind);
        // An untrusted input file may hold any i64 as a timestamp.
        h.send(&[rec(1, i64::MIN, 0), rec(1, i64::MIN + 1, 0)]);
        let fired = h.watermark(WATERMARK_MAX);
        let placed: usize =
            fired.iter().map(|r| if let Scalar::Int(n) = r[3] { n as usize } else { 0 }).sum();
        assert!(placed > 0 || h.metrics().late_records_dropped == 2, "{kind:?}: {fired:?}");
    }
}
