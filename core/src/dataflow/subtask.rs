//! A subtask: one parallel instance of a chain, as a sans-IO state machine.
//!
//! The driver owns the queues and the clock. Its loop is:
//! 1. deliver everything [`Subtask::poll_output`] returns (waiting while a downstream queue is full:
//!    that wait is the back-pressure);
//! 2. if the subtask has a source, call [`Subtask::poll_source`] with the current time; otherwise
//!    hand it the next input element with [`Subtask::handle_element`];
//! 3. stop when [`Subtask::is_finished`].
//!
//! Any driver can run a subtask unchanged: the embedded runner's threads, the TaskManager's
//! network driver, or the simulator.
//!
//! # Checkpoints
//!
//! A source subtask takes checkpoint n when the driver calls [`Subtask::trigger_checkpoint`];
//! any other when barrier n has arrived on all its open input channels (the [`InputGate`] aligns
//! them; while it does, [`Subtask::is_channel_blocked`] tells the driver which channels to hold
//! back). Taking a checkpoint snapshots every chained operator in chain order (a sink
//! pre-commits), queues the snapshot for [`Subtask::poll_snapshot`], and sends barrier n
//! downstream after everything emitted before it. [`Subtask::restore`] loads a snapshot into a
//! new subtask before its first input; [`Subtask::notify_checkpoint_complete`] lets sinks commit.

use std::collections::VecDeque;

use crate::connectors::ConnectorFactory;
use crate::dataflow::element::Element;
use crate::dataflow::gate::{BarrierOutcome, GateError, InputGate};
use crate::dataflow::operator::{Operator, OperatorMetrics, Output, OutputItem, TaskError};
use crate::dataflow::operators::aggregate::AggregateOperator;
use crate::dataflow::operators::filter::Filter;
use crate::dataflow::operators::key_by::KeyBy;
use crate::dataflow::operators::map::{Map, MapField};
use crate::dataflow::operators::sink::Sink;
use crate::dataflow::operators::union::Union;
use crate::dataflow::operators::window::WindowOperator;
use crate::dataflow::plan::{ExecutionPlan, SubtaskId};
use crate::dataflow::source::{SourceItem, SourcePoll, SourceReader, WatermarkGenerator};
use crate::dataflow::writer::{Outgoing, OutputWriter};
use crate::graph::{JobGraph, OutputTag, VertexId, VertexKind};
use crate::ids::CheckpointId;
use crate::key::key_group_range;
use crate::state::snapshot::{OperatorSnapshot, SourceSnapshot, SubtaskSnapshot};
use crate::time::{Instant, WATERMARK_MAX};

/// What a source subtask did on a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// It produced output; poll again after delivering it.
    Emitted,
    /// Nothing to do until the given instant (or until the driver decides, if `None`).
    Pending(Option<Instant>),
    /// Its input is exhausted and the end has been sent downstream.
    Finished,
}

struct Stage {
    vertex: VertexId,
    op: Box<dyn Operator>,
    metrics: OperatorMetrics,
}

struct SourceHead {
    reader: Box<dyn SourceReader>,
    watermarks: Option<WatermarkGenerator>,
    items: Vec<SourceItem>,
}

pub struct Subtask {
    id: SubtaskId,
    name: String,
    source: Option<SourceHead>,
    stages: Vec<Stage>,
    gate: InputGate,
    writers: Vec<OutputWriter>,
    outbox: VecDeque<Outgoing>,
    finished: bool,
    /// Snapshots taken and not yet collected by the driver.
    snapshots: VecDeque<SubtaskSnapshot>,
    /// Whether any input or poll has happened (a restore must come first).
    started: bool,
}

/// Passes records through; stands in for a source at the head of its chain so that the source's
/// records are counted like any operator's.
struct PassThrough;

impl Operator for PassThrough {
    fn on_batch(&mut self, batch: crate::batch::Batch, out: &mut Output) -> Result<(), TaskError> {
        out.batch(batch);
        Ok(())
    }
}

impl Subtask {
    /// Instantiates subtask `id` of `plan`, taking I/O connectors from `connectors`.
    pub fn new(
        graph: &JobGraph,
        plan: &ExecutionPlan,
        id: SubtaskId,
        connectors: &dyn ConnectorFactory,
    ) -> Result<Subtask, String> {
        let sp = &plan.subtasks[id.index()];
        let chain = &plan.chains[sp.chain];
        let (index, parallelism) = (sp.index, chain.parallelism);
        let mut source = None;
        let mut stages = Vec::new();
        for &vid in &chain.vertices {
            let v = graph.vertex(vid);
            let key_groups = || key_group_range(index, parallelism, graph.max_parallelism);
            let op: Box<dyn Operator> = match &v.kind {
                VertexKind::Source { connector, event_time } => {
                    let reader = connectors.source_reader(connector, &v.name, index, parallelism)?;
                    let watermarks =
                        event_time.map(|et| WatermarkGenerator::new(et.field, et.out_of_orderness_ms));
                    source = Some(SourceHead { reader, watermarks, items: Vec::new() });
                    Box::new(PassThrough)
                }
                VertexKind::Filter { predicate } => Box::new(Filter::new(&v.name, predicate.clone())),
                VertexKind::Map { fields } => {
                    let input = graph.inputs(vid).next().expect("a map has an input").from;
                    let width = graph.vertex(input).output_schema.len();
                    Box::new(Map::new(
                        &v.name,
                        width,
                        fields.iter().map(|(_, f)| f.clone()).collect::<Vec<MapField>>(),
                    ))
                }
                VertexKind::KeyBy { .. } => Box::new(KeyBy),
                VertexKind::Union => Box::new(Union),
                VertexKind::Window(config) => Box::new(WindowOperator::new(config.clone(), key_groups())),
                VertexKind::Aggregate(config) => {
                    Box::new(AggregateOperator::new(config.clone(), key_groups()))
                }
                VertexKind::Sink { connector } => {
                    let edge = graph.inputs(vid).next().expect("a sink has an input");
                    let input_schema = match edge.output {
                        OutputTag::Main => graph.vertex(edge.from).output_schema.clone(),
                        OutputTag::Late => graph.late_schema(edge.from).clone(),
                    };
                    let writer =
                        connectors.sink_writer(connector, &v.name, &input_schema, index, parallelism)?;
                    Box::new(Sink::new(&v.name, writer))
                }
            };
            stages.push(Stage { vertex: vid, op, metrics: OperatorMetrics::default() });
        }
        let writers =
            sp.writers.iter().map(|w| OutputWriter::new(w.clone(), graph.max_parallelism, index)).collect();
        let names: Vec<&str> = chain.vertices.iter().map(|&v| graph.vertex(v).name.as_str()).collect();
        Ok(Subtask {
            id,
            name: format!("{} ({}/{})", names.join(" → "), index + 1, parallelism),
            source,
            stages,
            gate: InputGate::new(sp.input_channels),
            writers,
            outbox: VecDeque::new(),
            finished: false,
            snapshots: VecDeque::new(),
            started: false,
        })
    }

    pub fn id(&self) -> SubtaskId {
        self.id
    }

    /// A readable name: the chain's vertices and this subtask's index.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_source(&self) -> bool {
        self.source.is_some()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// For a source with event time: the watermark it has emitted so far (the maximum once it has
    /// finished). Drivers use it to keep the splits of one source aligned in event time.
    pub fn source_watermark(&self) -> Option<crate::time::EventTime> {
        let generator = self.source.as_ref()?.watermarks.as_ref()?;
        Some(if self.finished { WATERMARK_MAX } else { generator.current() })
    }

    /// The vertex of the chain's head (its source, for a source subtask).
    pub fn head_vertex(&self) -> VertexId {
        self.stages[0].vertex
    }

    /// The next element to deliver downstream.
    pub fn poll_output(&mut self) -> Option<Outgoing> {
        self.outbox.pop_front()
    }

    /// Elements waiting for delivery.
    pub fn pending_output(&self) -> usize {
        self.outbox.len()
    }

    /// Each chained vertex with its counters.
    pub fn metrics(&self) -> impl Iterator<Item = (VertexId, OperatorMetrics)> + '_ {
        self.stages
            .iter()
            .map(|s| {
                let mut m = s.metrics;
                m.add(&s.op.extra_metrics());
                (s.vertex, m)
            })
            .enumerate()
            .map(|(position, (vertex, mut m))| {
                if position == 0 {
                    if let Some(head) = &self.source {
                        m.records_skipped += head.reader.records_skipped();
                    }
                }
                (vertex, m)
            })
    }

    /// Whether the driver must hold back input channel `channel`: it delivered the barrier of a
    /// checkpoint that other channels have not yet.
    #[inline]
    pub fn is_channel_blocked(&self, channel: u32) -> bool {
        self.gate.is_blocked(channel)
    }

    /// A snapshot taken and not collected yet, oldest first.
    pub fn poll_snapshot(&mut self) -> Option<SubtaskSnapshot> {
        self.snapshots.pop_front()
    }

    /// Takes checkpoint `checkpoint` at a source subtask: snapshots, then sends the barrier
    /// downstream. A finished source has nothing to take (the coordinator does not trigger jobs
    /// with finished subtasks).
    pub fn trigger_checkpoint(&mut self, checkpoint: CheckpointId) -> Result<(), TaskError> {
        assert!(self.source.is_some(), "trigger_checkpoint on a subtask without a source");
        if self.finished {
            return Ok(());
        }
        self.take_checkpoint(checkpoint)
    }

    fn take_checkpoint(&mut self, checkpoint: CheckpointId) -> Result<(), TaskError> {
        let source = match &self.source {
            Some(head) => {
                let position = head.reader.position().ok_or_else(|| TaskError::Source {
                    source_name: self.name.clone(),
                    message: "the source cannot record a read position, so the job cannot be checkpointed"
                        .into(),
                })?;
                Some(SourceSnapshot { position, watermarks: head.watermarks.as_ref().map(|w| w.state()) })
            }
            None => None,
        };
        let mut operators = Vec::with_capacity(self.stages.len());
        for stage in &mut self.stages {
            let state = stage.op.snapshot_state(checkpoint)?;
            operators.push(OperatorSnapshot { vertex: stage.vertex.0, metrics: stage.metrics, state });
        }
        let input_watermark = self.gate.watermark();
        self.snapshots.push_back(SubtaskSnapshot { checkpoint, source, input_watermark, operators });
        for w in &mut self.writers {
            w.write_marker(&Element::Barrier(checkpoint), &mut self.outbox);
        }
        Ok(())
    }

    /// Loads `snapshot` (taken by this subtask's predecessor in an earlier attempt) before any
    /// input. Everything is checked against this subtask's chain; an error names what does not fit.
    pub fn restore(&mut self, snapshot: &SubtaskSnapshot) -> Result<(), String> {
        assert!(!self.started, "a subtask is restored before its first input");
        if snapshot.operators.len() != self.stages.len()
            || snapshot.operators.iter().zip(&self.stages).any(|(o, s)| o.vertex != s.vertex.0)
        {
            let found: Vec<u32> = snapshot.operators.iter().map(|o| o.vertex).collect();
            let expected: Vec<u32> = self.stages.iter().map(|s| s.vertex.0).collect();
            return Err(format!("the snapshot is of vertices {found:?}, this subtask runs {expected:?}"));
        }
        match (&mut self.source, &snapshot.source) {
            (Some(head), Some(source)) => {
                head.reader.restore_position(&source.position)?;
                match (&mut head.watermarks, source.watermarks) {
                    (Some(generator), Some(state)) => generator.restore(state),
                    (None, None) => {}
                    _ => return Err("the snapshot's source event time does not match the job's".into()),
                }
            }
            (None, None) => {}
            _ => return Err("the snapshot's source does not match this subtask's".into()),
        }
        for (stage, saved) in self.stages.iter_mut().zip(&snapshot.operators) {
            stage.op.restore_state(&saved.state)?;
            stage.metrics = saved.metrics;
        }
        self.gate.restore_watermark(snapshot.input_watermark);
        Ok(())
    }

    /// Checkpoint `checkpoint` is complete: sinks commit what they pre-committed up to it.
    pub fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), TaskError> {
        for stage in &mut self.stages {
            stage.op.notify_checkpoint_complete(checkpoint)?;
        }
        Ok(())
    }

    /// Handles one element from input channel `channel`. A malformed delivery (unknown channel,
    /// anything after a channel's end) is a driver or peer bug, reported as an error.
    pub fn handle_element(&mut self, channel: u32, element: Element) -> Result<(), TaskError> {
        self.started = true;
        let gate_error = |e: GateError| TaskError::Delivery {
            subtask: self.name.clone(),
            message: match e {
                GateError::NoSuchChannel(c) => format!("channel {c} does not exist"),
                GateError::AfterEnd(c) => format!("input on channel {c} after its end"),
            },
        };
        match element {
            Element::Batch(batch) => {
                self.gate.on_batch(channel).map_err(gate_error)?;
                self.push_through(0, vec![OutputItem::Batch(batch)])
            }
            Element::Watermark(w) => match self.gate.on_watermark(channel, w).map_err(gate_error)? {
                Some(advanced) => self.push_through(0, vec![OutputItem::Watermark(advanced)]),
                None => Ok(()),
            },
            Element::Barrier(checkpoint) => {
                match self.gate.on_barrier(channel, checkpoint).map_err(gate_error)? {
                    BarrierOutcome::Aligned(id) | BarrierOutcome::Superseded { aligned: Some(id), .. } => {
                        self.take_checkpoint(id)
                    }
                    BarrierOutcome::Aligning
                    | BarrierOutcome::Superseded { aligned: None, .. }
                    | BarrierOutcome::Stale => Ok(()),
                }
            }
            Element::EndOfInput => {
                let (advanced, all_ended) = self.gate.on_end(channel).map_err(gate_error)?;
                if let Some(w) = advanced {
                    self.push_through(0, vec![OutputItem::Watermark(w)])?;
                }
                // The channel that ended was the last one an alignment waited for.
                if let Some(id) = self.gate.take_aligned() {
                    self.take_checkpoint(id)?;
                }
                if all_ended {
                    self.finish()?;
                }
                Ok(())
            }
        }
    }

    /// Asks the source for its next batch and runs it through the chain.
    pub fn poll_source(&mut self, now: Instant) -> Result<SourceStatus, TaskError> {
        assert!(!self.finished, "polled after the subtask finished");
        self.started = true;
        let head = self.source.as_mut().expect("poll_source on a subtask without a source");
        match head.reader.poll(now)? {
            SourcePoll::Batch(batch) => {
                let items = match &mut head.watermarks {
                    Some(generator) => {
                        head.items.clear();
                        generator.process(batch, &mut head.items);
                        head.items
                            .drain(..)
                            .map(|item| match item {
                                SourceItem::Batch(b) => OutputItem::Batch(b),
                                SourceItem::Watermark(w) => OutputItem::Watermark(w),
                            })
                            .collect()
                    }
                    None => vec![OutputItem::Batch(batch)],
                };
                self.push_through(0, items)?;
                Ok(SourceStatus::Emitted)
            }
            SourcePoll::Pending { until } => Ok(SourceStatus::Pending(until)),
            SourcePoll::Finished => {
                self.push_through(0, vec![OutputItem::Watermark(WATERMARK_MAX)])?;
                self.finish()?;
                Ok(SourceStatus::Finished)
            }
        }
    }

    /// Ends a source early (the job is being stopped): the final watermark and the end marker
    /// go downstream as if the input were exhausted, so windows fire and sinks commit.
    pub fn end_source(&mut self) -> Result<(), TaskError> {
        assert!(self.source.is_some(), "end_source on a subtask without a source");
        if !self.finished {
            self.push_through(0, vec![OutputItem::Watermark(WATERMARK_MAX)])?;
            self.finish()?;
        }
        Ok(())
    }

    /// Runs items through stages `from..`, routing late records and the last stage's output to
    /// the writers.
    fn push_through(&mut self, from: usize, items: Vec<OutputItem>) -> Result<(), TaskError> {
        let mut current = items;
        for position in from..self.stages.len() {
            if current.is_empty() {
                return Ok(());
            }
            let stage = &mut self.stages[position];
            let mut out = Output::default();
            for item in current {
                match item {
                    OutputItem::Batch(b) => {
                        stage.metrics.records_in += b.len() as u64;
                        stage.op.on_batch(b, &mut out)?;
                    }
                    OutputItem::Watermark(w) => stage.op.on_watermark(w, &mut out)?,
                }
            }
            stage.metrics.records_out += out
                .main
                .iter()
                .map(|i| match i {
                    OutputItem::Batch(b) => b.len() as u64,
                    OutputItem::Watermark(_) => 0,
                })
                .sum::<u64>();
            for late in out.take_late() {
                self.write(position, OutputTag::Late, OutputItem::Batch(late));
            }
            current = out.take_main();
        }
        let last = self.stages.len() - 1;
        for item in current {
            self.write(last, OutputTag::Main, item);
        }
        Ok(())
    }

    fn write(&mut self, position: usize, tag: OutputTag, item: OutputItem) {
        let mut targets = self
            .writers
            .iter_mut()
            .filter(|w| w.plan().chain_position == position && w.plan().output == tag)
            .peekable();
        match item {
            OutputItem::Batch(batch) => {
                // The last writer takes the batch itself; the others a copy.
                while let Some(w) = targets.next() {
                    if targets.peek().is_some() {
                        w.write_batch(batch.clone(), &mut self.outbox);
                    } else {
                        w.write_batch(batch, &mut self.outbox);
                        break;
                    }
                }
            }
            OutputItem::Watermark(wm) => {
                for w in targets {
                    w.write_marker(&Element::Watermark(wm), &mut self.outbox);
                }
            }
        }
    }

    /// Ends every stage in chain order, then sends the end marker downstream.
    fn finish(&mut self) -> Result<(), TaskError> {
        for position in 0..self.stages.len() {
            let mut out = Output::default();
            self.stages[position].op.on_end(&mut out)?;
            for late in out.take_late() {
                self.write(position, OutputTag::Late, OutputItem::Batch(late));
            }
            let main = out.take_main();
            if position + 1 < self.stages.len() {
                self.push_through(position + 1, main)?;
            } else {
                for item in main {
                    self.write(position, OutputTag::Main, item);
                }
            }
        }
        for w in &mut self.writers {
            w.write_marker(&Element::EndOfInput, &mut self.outbox);
        }
        self.finished = true;
        Ok(())
    }

    pub fn assert_invariants(&self) {
        for s in &self.stages {
            s.op.assert_invariants();
        }
        if self.finished {
            assert!(self.gate.all_ended() || self.source.is_some());
        }
    }
}

#[cfg(test)]
#[path = "subtask_tests.rs"]
mod tests;
