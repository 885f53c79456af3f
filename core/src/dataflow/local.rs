//! A deterministic, single-threaded runner of a whole job: every subtask in one loop, connected by
//! bounded in-memory queues, scheduled in an order drawn from a seed.
//!
//! Tests use it to check the engine against a reference and to explore interleavings (each seed is
//! another schedule); the simulator will use it for the data plane. Time is simulated: when every
//! runnable subtask waits on its source's clock, the clock jumps to the earliest wake-up.

use std::collections::VecDeque;

use crate::connectors::ConnectorFactory;
use crate::dataflow::element::Element;
use crate::dataflow::operator::{OperatorMetrics, TaskError};
use crate::dataflow::plan::{ExecutionPlan, SubtaskId};
use crate::dataflow::subtask::{SourceStatus, Subtask};
use crate::graph::JobGraph;
use crate::time::Instant;

/// A small, seedable generator (xorshift64*): deterministic and good enough for scheduling.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(crate::key::mix64(seed) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Per-vertex counters of a finished local run, in vertex order.
pub type VertexMetrics = Vec<OperatorMetrics>;

/// Runs `graph` to completion with input queues of `queue_capacity` elements, scheduling by `seed`.
pub fn run_local(
    graph: &JobGraph,
    connectors: &dyn ConnectorFactory,
    seed: u64,
    queue_capacity: usize,
) -> Result<VertexMetrics, TaskError> {
    assert!(queue_capacity >= 1);
    let plan = ExecutionPlan::new(graph);
    let mut subtasks = Vec::new();
    for sp in &plan.subtasks {
        let subtask = Subtask::new(graph, &plan, sp.id, connectors)
            .map_err(|message| TaskError::Source { source_name: graph.name.clone(), message })?;
        subtasks.push(subtask);
    }
    let mut queues: Vec<VecDeque<(u32, Element)>> = subtasks.iter().map(|_| VecDeque::new()).collect();
    // An element taken from a subtask's outbox that did not fit downstream waits here.
    let mut held: Vec<Option<(SubtaskId, u32, Element)>> = subtasks.iter().map(|_| None).collect();
    let mut sleeping_until: Vec<Option<Instant>> = vec![None; subtasks.len()];
    let mut rng = Rng::new(seed);
    let mut now = Instant::ZERO;
    loop {
        let runnable: Vec<usize> = (0..subtasks.len())
            .filter(|&i| {
                let s = &subtasks[i];
                if let Some((to, _, _)) = &held[i] {
                    return queues[to.index()].len() < queue_capacity;
                }
                if s.pending_output() > 0 {
                    return true;
                }
                if s.is_finished() {
                    return false;
                }
                if s.is_source() {
                    return sleeping_until[i].is_none_or(|t| t <= now);
                }
                !queues[i].is_empty()
            })
            .collect();
        if runnable.is_empty() {
            if subtasks.iter().all(|s| s.is_finished() && s.pending_output() == 0)
                && held.iter().all(Option::is_none)
            {
                break;
            }
            let wake = sleeping_until.iter().flatten().copied().min();
            match wake {
                Some(t) if t > now => {
                    now = t;
                    continue;
                }
                _ => panic!("the local run is stuck: no subtask can move (a bug in the engine or the plan)"),
            }
        }
        let i = runnable[rng.below(runnable.len())];
        // Deliver as much output as fits downstream.
        loop {
            let next = held[i]
                .take()
                .or_else(|| subtasks[i].poll_output().map(|o| (o.to.subtask, o.to.channel, o.element)));
            let Some((to, channel, element)) = next else { break };
            if queues[to.index()].len() >= queue_capacity {
                held[i] = Some((to, channel, element));
                break;
            }
            queues[to.index()].push_back((channel, element));
        }
        if held[i].is_some() || subtasks[i].pending_output() > 0 || subtasks[i].is_finished() {
            continue;
        }
        if subtasks[i].is_source() {
            sleeping_until[i] = None;
            if let SourceStatus::Pending(until) = subtasks[i].poll_source(now)? {
                sleeping_until[i] = Some(until.unwrap_or(now + std::time::Duration::from_millis(1)));
            }
        } else if let Some((channel, element)) = queues[i].pop_front() {
            subtasks[i].handle_element(channel, element)?;
        }
        subtasks[i].assert_invariants();
    }
    let mut metrics = vec![OperatorMetrics::default(); graph.vertices().len()];
    for s in &subtasks {
        for (v, m) in s.metrics() {
            metrics[v.index()].add(&m);
        }
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::BuiltinConnectors;
    use crate::jobfile::{parse_job, ParseOptions};

    fn graph(text: &str) -> JobGraph {
        parse_job(text, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn metrics_by_name(graph: &JobGraph, metrics: &VertexMetrics) -> Vec<(String, OperatorMetrics)> {
        graph.vertices().iter().map(|v| (v.name.clone(), metrics[v.id.index()])).collect()
    }

    fn metric(graph: &JobGraph, metrics: &VertexMetrics, name: &str) -> OperatorMetrics {
        metrics[graph.find(name).expect("a vertex").id.index()]
    }

    /// Three source subtasks, a chained filter, a key_by feeding both a window (2 subtasks) and a
    /// running aggregate (4 subtasks), and a union of a second branch.
    const JOB: &str = r#"
[job]
parallelism = 3

[[source]]
name = "g"
type = "generator"
count = 30_000
keys = 97
records_per_ms = 10
event_time = "ts_ms"

[[operator]]
name = "f"
type = "filter"
input = "g"
predicate = "value % 3 != 0"

[[operator]]
name = "k"
type = "key_by"
input = "f"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "sliding"
size = 50
slide = 20
parallelism = 2
aggregates = { n = "count()", s = "sum(value)" }

[[operator]]
name = "a"
type = "aggregate"
input = "k"
parallelism = 4
aggregates = { n = "count()" }

[[operator]]
name = "big"
type = "filter"
input = "g"
predicate = "value > 900"
partitioning = "rebalance"

[[operator]]
name = "small"
type = "filter"
input = "g"
predicate = "value < 10"

[[operator]]
name = "u"
type = "union"
input = ["big", "small"]
parallelism = 2

[[sink]]
name = "windows"
type = "count"
input = "w"

[[sink]]
name = "running"
type = "count"
input = "a"

[[sink]]
name = "merged"
type = "count"
input = "u"
"#;

    #[test]
    fn every_schedule_and_queue_size_gives_the_same_metrics() {
        let g = graph(JOB);
        let first = run_local(&g, &BuiltinConnectors, 0, 1).expect("the job runs");
        for capacity in [1, 2, 16] {
            for seed in 0..8 {
                let m = run_local(&g, &BuiltinConnectors, seed, capacity).expect("the job runs");
                assert_eq!(
                    metrics_by_name(&g, &m),
                    metrics_by_name(&g, &first),
                    "seed {seed}, queue capacity {capacity}"
                );
            }
        }
        let m = |name| metric(&g, &first, name);
        assert_eq!(m("g").records_out, 30_000);
        // value = (i * 7) % 1000 takes each of 0..1000 thirty times; 666 of them are kept.
        let kept = m("f").records_out;
        assert_eq!(kept, 666 * 30);
        assert_eq!((m("k").records_in, m("w").records_in, m("a").records_in), (kept, kept, kept));
        assert_eq!(m("a").records_out, kept, "one update per record");
        assert_eq!(m("running").records_in, kept);
        assert_eq!(m("windows").records_in, m("w").records_out);
        assert_eq!(m("w").late_records_dropped, 0, "in-order sources make no late records");
        assert_eq!(m("merged").records_in, m("big").records_out + m("small").records_out);
        assert!(m("w").records_out > 0 && m("big").records_out > 0 && m("small").records_out > 0);
    }

    #[test]
    fn a_rate_limited_generator_finishes_under_simulated_time() {
        // 20,000 records at 1,000 per second take 20 simulated seconds and no real ones.
        let g = graph(
            r#"
[job]
parallelism = 2

[[source]]
name = "g"
type = "generator"
count = 20_000
rate = 1_000
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
aggregates = { n = "count()" }

[[sink]]
name = "out"
type = "count"
input = "w"
"#,
        );
        let m = run_local(&g, &BuiltinConnectors, 7, 4).expect("the job runs");
        assert_eq!(metric(&g, &m, "g").records_out, 20_000);
        // Each of the 10,000 keys appears twice, 100 ms apart: every record is alone in its window.
        assert_eq!(metric(&g, &m, "w").records_out, 20_000);
        assert_eq!(metric(&g, &m, "out").records_in, 20_000);
        assert_eq!(run_local(&g, &BuiltinConnectors, 8, 1).unwrap(), m, "another schedule, the same run");
    }

    #[test]
    fn a_failing_operator_ends_the_run_with_its_error() {
        let g = graph(
            r#"
[[source]]
name = "g"
type = "generator"
count = 100

[[operator]]
name = "m"
type = "map"
input = "g"
compute = { q = "value / (key - key)" }

[[sink]]
type = "count"
input = "m"
"#,
        );
        match run_local(&g, &BuiltinConnectors, 0, 4) {
            Err(TaskError::Eval { operator, .. }) => assert_eq!(operator, "m"),
            other => panic!("expected the map's division by zero, got {other:?}"),
        }
    }

    #[test]
    fn a_connector_the_core_cannot_run_is_an_error() {
        let g = graph(
            r#"
[[source]]
name = "f"
type = "file"
path = "in.csv"
format = "csv"
schema = { x = "int" }

[[sink]]
type = "count"
input = "f"
"#,
        );
        match run_local(&g, &BuiltinConnectors, 0, 4) {
            Err(TaskError::Source { message, .. }) => assert!(message.contains("node driver"), "{message}"),
            other => panic!("expected a connector error, got {other:?}"),
        }
    }

    #[test]
    fn the_scheduling_rng_is_seeded_and_stays_in_range() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..64).map(|_| rng.below(7)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        assert!(draw(5).iter().all(|&x| x < 7));
        // Seed 0 is a valid seed (xorshift must not start from zero).
        assert!(draw(0).iter().any(|&x| x != 0));
    }
}
