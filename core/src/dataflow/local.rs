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
