//! Unit tests of the subtask state machine, driven by hand: sources polled, elements delivered.

use super::*;
use crate::batch::{Batch, Column};
use crate::connectors::BuiltinConnectors;
use crate::dataflow::plan::ChannelAddr;
use crate::jobfile::{parse_job, ParseOptions};
use crate::time::{EventTime, WATERMARK_MAX};

fn graph(text: &str) -> JobGraph {
    parse_job(text, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn subtask(graph: &JobGraph, id: u32) -> Subtask {
    let plan = ExecutionPlan::new(graph);
    Subtask::new(graph, &plan, SubtaskId(id), &BuiltinConnectors).expect("builtin connectors")
}

/// Everything the subtask has for delivery, checking that it all goes to `to`.
fn drain(s: &mut Subtask, to: ChannelAddr) -> Vec<Element> {
    s.assert_invariants();
    std::iter::from_fn(|| s.poll_output())
        .map(|o| {
            assert_eq!(o.to, to);
            o.element
        })
        .collect()
}

/// Elements as `B<rows>`, `W<watermark>` and `End`, for readable comparisons.
fn show(elements: &[Element]) -> Vec<String> {
    elements
        .iter()
        .map(|e| match e {
            Element::Batch(b) => format!("B{}", b.len()),
            Element::Watermark(WATERMARK_MAX) => "Wmax".to_owned(),
            Element::Watermark(w) => format!("W{w}"),
            Element::EndOfInput => "End".to_owned(),
            Element::Barrier(id) => format!("|{}", id.0),
        })
        .collect()
}

/// Generator records (`id, key, value, ts_ms`) of `(key, ts)`, each with value 1.
fn records(rows: &[(i64, EventTime)]) -> Element {
    Element::Batch(Batch::new(vec![
        Column::Int((0..rows.len() as i64).collect()),
        Column::Int(rows.iter().map(|r| r.0).collect()),
        Column::Int(vec![1; rows.len()]),
        Column::Timestamp(rows.iter().map(|r| r.1).collect()),
    ]))
}

fn metrics_of(graph: &JobGraph, s: &Subtask, name: &str) -> OperatorMetrics {
    let id = graph.find(name).expect("a vertex").id;
    s.metrics().find(|(v, _)| *v == id).expect("in this chain").1
}

/// `g` (2 subtasks: 0, 1) → key_by → window `w` (1 subtask: 2) → by rebalance to a count sink
/// (subtask 3, or 4 with a late sink at 3), so that the window's output can be observed.
fn windowed_job(late: &str) -> JobGraph {
    let late_sink = if late == "route" {
        "[[sink]]\nname = \"late\"\ntype = \"count\"\ninput = \"w.late\"\nparallelism = 1\n"
    } else {
        ""
    };
    graph(&format!(
        r#"
[job]
parallelism = 2

[[source]]
name = "g"
type = "generator"
count = 10_000
event_time = "ts_ms"

[[operator]]
name = "k"
type = "key_by"
input = "g"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "tumbling"
size = 10
late = "{late}"
parallelism = 1
aggregates = {{ n = "count()" }}

{late_sink}
[[sink]]
name = "out"
type = "count"
input = "w"
parallelism = 1
partitioning = "rebalance"
"#
    ))
}

fn sink_addr(graph: &JobGraph) -> ChannelAddr {
    let plan = ExecutionPlan::new(graph);
    let chain = &plan.chains[plan.chain_of(graph.find("out").unwrap().id)];
    ChannelAddr { subtask: chain.first_subtask, channel: 0 }
}

#[test]
fn a_source_chain_emits_batches_then_watermarks_then_end_of_input() {
    let g = graph(
        r#"
[[source]]
name = "g"
type = "generator"
count = 10_000
event_time = "ts_ms"

[[operator]]
name = "even"
type = "filter"
input = "g"
predicate = "id % 2 == 0"

[[operator]]
name = "k"
type = "key_by"
input = "even"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "tumbling"
size = 10
aggregates = { n = "count()" }

[[sink]]
name = "out"
type = "count"
input = "w"
"#,
    );
    let mut s = subtask(&g, 0);
    assert!(s.is_source());
    let to = ChannelAddr { subtask: SubtaskId(1), channel: 0 };
    let mut sent = Vec::new();
    let mut polls = 0;
    while !s.is_finished() {
        let status = s.poll_source(Instant::ZERO).expect("the generator does not fail");
        sent.extend(drain(&mut s, to));
        polls += 1;
        assert_eq!(status == SourceStatus::Finished, s.is_finished());
        assert_ne!(status, SourceStatus::Pending(None), "an unthrottled generator never waits");
    }
    assert_eq!(polls, 4, "three batches of at most 4096 records, then the end");
    // 100 records per millisecond: the batches end at 40 ms, 81 ms and 99 ms.
    assert_eq!(show(&sent), ["B2048", "W39", "B2048", "W80", "B904", "W98", "Wmax", "End"]);
    let m = |name| metrics_of(&g, &s, name);
    assert_eq!((m("g").records_in, m("g").records_out), (10_000, 10_000));
    assert_eq!((m("even").records_in, m("even").records_out), (10_000, 5_000));
    assert_eq!((m("k").records_in, m("k").records_out), (5_000, 5_000));
}

#[test]
fn a_subtask_watermark_is_the_minimum_over_its_channels() {
    let g = windowed_job("drop");
    let mut s = subtask(&g, 2);
    assert!(!s.is_source());
    let to = sink_addr(&g);
    s.handle_element(0, records(&[(1, 5), (2, 15)])).unwrap();
    assert!(drain(&mut s, to).is_empty(), "a window emits on watermarks only");
    s.handle_element(0, Element::Watermark(9)).unwrap();
    assert!(drain(&mut s, to).is_empty(), "channel 1 has no watermark yet");
    s.handle_element(1, Element::Watermark(3)).unwrap();
    assert_eq!(show(&drain(&mut s, to)), ["W3"]);
    s.handle_element(1, Element::Watermark(20)).unwrap();
    assert_eq!(show(&drain(&mut s, to)), ["B1", "W9"], "[0, 10) fires at min(9, 20)");
    s.handle_element(0, Element::Watermark(8)).unwrap();
    assert!(drain(&mut s, to).is_empty(), "a channel's watermark never goes back");
    s.handle_element(0, Element::EndOfInput).unwrap();
    assert_eq!(show(&drain(&mut s, to)), ["B1", "W20"], "an ended channel no longer holds back");
    assert!(!s.is_finished());
    s.handle_element(1, Element::EndOfInput).unwrap();
    assert_eq!(show(&drain(&mut s, to)), ["Wmax", "End"]);
    assert!(s.is_finished());
    let w = metrics_of(&g, &s, "w");
    assert_eq!((w.records_in, w.records_out, w.late_records_dropped), (2, 2, 0));
}

#[test]
fn the_end_of_every_channel_fires_all_windows_then_sends_end_of_input() {
    let g = windowed_job("drop");
    let mut s = subtask(&g, 2);
    let to = sink_addr(&g);
    s.handle_element(1, records(&[(1, 5), (1, 7), (2, 1_000_000), (3, -40)])).unwrap();
    s.handle_element(1, Element::EndOfInput).unwrap();
    s.handle_element(0, Element::EndOfInput).unwrap();
    let sent = drain(&mut s, to);
    assert_eq!(show(&sent), ["B3", "Wmax", "End"]);
    let Element::Batch(b) = &sent[0] else { unreachable!() };
    assert_eq!(b.columns[3], Column::Int(vec![1, 2, 1]), "counts in window-end order");
    assert!(s.is_finished());
}

#[test]
fn late_records_leave_through_the_late_writer_and_are_counted() {
    let g = windowed_job("route");
    let plan = ExecutionPlan::new(&g);
    let late_to = ChannelAddr {
        subtask: plan.chains[plan.chain_of(g.find("late").unwrap().id)].first_subtask,
        channel: 0,
    };
    let mut s = subtask(&g, 2);
    s.handle_element(0, Element::Watermark(100)).unwrap();
    s.handle_element(1, Element::Watermark(100)).unwrap();
    s.poll_output().expect("the watermark goes to the sink");
    s.handle_element(1, records(&[(1, 5), (1, 150), (2, 99)])).unwrap();
    let o = s.poll_output().expect("late records");
    assert_eq!(o.to, late_to);
    assert_eq!(show(&[o.element]), ["B2"]);
    assert!(s.poll_output().is_none());
    let w = metrics_of(&g, &s, "w");
    assert_eq!((w.records_in, w.late_records_routed, w.late_records_dropped), (3, 2, 0));
}

#[test]
fn a_delivery_on_an_unknown_channel_or_after_its_end_is_an_error() {
    let g = windowed_job("drop");
    let mut s = subtask(&g, 2);
    let bad = |r: Result<(), TaskError>, what: &str| match r {
        Err(TaskError::Delivery { message, .. }) => assert!(message.contains(what), "{message}"),
        other => panic!("expected a bad delivery ({what}), got {other:?}"),
    };
    bad(s.handle_element(2, records(&[(1, 1)])), "channel 2 does not exist");
    bad(s.handle_element(7, Element::Watermark(1)), "channel 7 does not exist");
    bad(s.handle_element(u32::MAX, Element::EndOfInput), "does not exist");
    s.handle_element(0, Element::EndOfInput).unwrap();
    bad(s.handle_element(0, records(&[(1, 1)])), "input on channel 0 after its end");
    bad(s.handle_element(0, Element::Watermark(5)), "input on channel 0 after its end");
    bad(s.handle_element(0, Element::EndOfInput), "input on channel 0 after its end");
    s.assert_invariants();
    // The other channel still works, and the rejected deliveries changed nothing.
    s.handle_element(1, Element::EndOfInput).unwrap();
    assert!(s.is_finished());
    assert_eq!(metrics_of(&g, &s, "w").records_in, 0);
    // A source subtask has no input channels at all.
    let mut source = subtask(&g, 0);
    bad(source.handle_element(0, Element::Watermark(1)), "channel 0 does not exist");
}

#[test]
fn a_delivery_after_every_channel_ended_is_an_error_not_a_panic() {
    let g = windowed_job("drop");
    let mut s = subtask(&g, 2);
    s.handle_element(0, Element::EndOfInput).unwrap();
    s.handle_element(1, Element::EndOfInput).unwrap();
    assert!(s.is_finished());
    assert!(s.handle_element(1, Element::EndOfInput).is_err());
    assert!(s.handle_element(0, records(&[(1, 1)])).is_err());
}

#[test]
fn ending_a_source_early_sends_the_final_watermark_and_end_once() {
    let g = windowed_job("drop");
    let mut s = subtask(&g, 1);
    let plan = ExecutionPlan::new(&g);
    assert_eq!(s.poll_source(Instant::ZERO).unwrap(), SourceStatus::Emitted);
    let first = std::iter::from_fn(|| s.poll_output()).count();
    assert!(first > 0);
    s.end_source().unwrap();
    s.end_source().unwrap();
    let sent: Vec<Outgoing> = std::iter::from_fn(|| s.poll_output()).collect();
    // The window subtask gets the markers on the channel of source subtask 1.
    let expected = plan.subtasks[1].writers[0].targets.clone();
    assert_eq!(expected, vec![ChannelAddr { subtask: SubtaskId(2), channel: 1 }]);
    assert_eq!(
        sent,
        vec![
            Outgoing { to: expected[0], element: Element::Watermark(WATERMARK_MAX) },
            Outgoing { to: expected[0], element: Element::EndOfInput },
        ]
    );
    assert!(s.is_finished());
    assert_eq!(s.name(), "g → k (2/2)");
}
