//! What a TaskManager keeps per attempt and per running subtask: the parsed job (cached while any
//! subtask of the attempt runs here), the subtasks' channels, and the record of ended subtasks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::connectors::ConnectorFactory;
use crate::dataflow::credit::{CreditReceiver, CreditSender};
use crate::dataflow::element::Element;
use crate::dataflow::plan::ExecutionPlan;
use crate::dataflow::subtask::Subtask;
use crate::dataflow::writer::Outgoing;
use crate::graph::{JobGraph, OutputTag};
use crate::ids::{SlotIndex, TaskManagerId};
use crate::jobfile::{parse_job, ParseOptions};
use crate::limits::INPUT_QUEUE_ELEMENTS_MAX;
use crate::time::Instant;
use crate::types::DataType;

use super::DeployError;

/// A job file parsed for one attempt, with the producer of every input channel.
pub(super) struct JobPlan {
    pub graph: JobGraph,
    pub plan: ExecutionPlan,
}

impl JobPlan {
    pub fn parse(text: &str, parallelism: Option<u16>) -> Result<JobPlan, DeployError> {
        let graph = parse_job(text, &ParseOptions { parallelism })
            .map_err(|e| DeployError::JobFile(e.to_string()))?;
        let plan = ExecutionPlan::new(&graph);
        Ok(JobPlan { graph, plan })
    }

    /// For every subtask and input channel, the producing subtask and which of its writers feeds it.
    /// The plan gives every channel exactly one producer (checked by `ExecutionPlan::new`).
    pub fn producers(&self) -> Vec<Vec<(u32, usize)>> {
        let mut producers: Vec<Vec<(u32, usize)>> =
            self.plan.subtasks.iter().map(|s| vec![(u32::MAX, 0); s.input_channels as usize]).collect();
        for s in &self.plan.subtasks {
            for (w, writer) in s.writers.iter().enumerate() {
                for t in &writer.targets {
                    producers[t.subtask.index()][t.channel as usize] = (s.id.0, w);
                }
            }
        }
        producers
    }

    /// The types of the elements on a channel fed by writer `writer` of subtask `producer`: the
    /// output schema of the vertex the edge leaves, or a window's input schema for its late output.
    pub fn channel_types(&self, producer: u32, writer: usize) -> Vec<DataType> {
        let sp = &self.plan.subtasks[producer as usize];
        let w = &sp.writers[writer];
        let vertex = self.plan.chains[sp.chain].vertices[w.chain_position];
        match w.output {
            OutputTag::Main => self.graph.vertex(vertex).output_schema.data_types(),
            OutputTag::Late => self.graph.late_schema(vertex).data_types(),
        }
    }
}

/// A peer TaskManager at the other end of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Peer {
    pub task_manager: TaskManagerId,
    pub address: String,
}

/// An input channel fed by a subtask on another TaskManager.
pub(super) struct RemoteInput {
    pub receiver: CreditReceiver,
    /// The schema every batch on this channel must have.
    pub types: Vec<DataType>,
    pub producer: Peer,
}

/// An output channel to a subtask on another TaskManager.
pub(super) struct RemoteOutput {
    pub sender: CreditSender,
    pub consumer: Peer,
}

/// An input element for a subtask: its channel, the element, and for a remote channel the credit
/// its consumption returns to the producer's TaskManager.
pub(super) type Input = (u32, Element, Option<(Peer, u32)>);

/// One subtask running in one slot, with its channels.
pub(super) struct SubtaskRun {
    pub subtask: Subtask,
    pub slot: SlotIndex,
    /// Elements from producers on this TaskManager, with their channel; at most
    /// `INPUT_QUEUE_ELEMENTS_MAX`.
    pub local_queue: VecDeque<(u32, Element)>,
    /// Elements taken from the local queue for a channel the subtask blocked while it aligns a
    /// checkpoint's barrier, by channel, in order; at most `INPUT_QUEUE_ELEMENTS_MAX` each. They
    /// come before anything of their channel still in the local queue.
    pub parked: BTreeMap<u32, VecDeque<Element>>,
    /// Input channels whose producer is remote, by channel.
    pub receivers: BTreeMap<u32, RemoteInput>,
    /// Output channels whose consumer is remote, by the consumer's (subtask, channel).
    pub senders: BTreeMap<(u32, u32), RemoteOutput>,
    /// An element taken from the subtask's outbox that its destination could not take yet.
    pub held: Option<Outgoing>,
    /// For a source that had nothing: when to poll it again.
    pub wake: Option<Instant>,
    /// Which input to take from next: 0 is the local queue, `1 + i` the `i`-th receiver.
    pub input_cursor: usize,
    /// For a split of a source with event time: its source and split index, for alignment.
    pub split: Option<(super::AlignedSource, u16)>,
}

impl SubtaskRun {
    /// Whether the subtask must deliver output before it may take input or poll its source.
    pub fn is_blocked(&self) -> bool {
        self.held.is_some() || self.subtask.pending_output() > 0
    }

    /// Whether everything is done: operators ended, output delivered, every remote channel's end
    /// sent.
    pub fn is_done(&self) -> bool {
        self.subtask.is_finished()
            && !self.is_blocked()
            && self.senders.values().all(|o| o.sender.is_finished())
    }

    /// Whether a local producer may queue one more element on `channel`.
    pub fn can_queue_locally(&self, channel: u32) -> bool {
        self.local_queue.len() < INPUT_QUEUE_ELEMENTS_MAX
            && self.parked.get(&channel).is_none_or(|p| p.len() < INPUT_QUEUE_ELEMENTS_MAX)
    }

    /// The next element of the local queue whose channel is not blocked, parking those of blocked
    /// channels on the way; parked elements of channels unblocked since come first.
    fn next_local(&mut self) -> Option<(u32, Element)> {
        let subtask = &self.subtask;
        if let Some((&channel, parked)) =
            self.parked.iter_mut().find(|(&c, _)| !subtask.is_channel_blocked(c))
        {
            let element = parked.pop_front().expect("parked queues are never left empty");
            if parked.is_empty() {
                self.parked.remove(&channel);
            }
            return Some((channel, element));
        }
        while let Some((channel, element)) = self.local_queue.pop_front() {
            if !self.subtask.is_channel_blocked(channel) {
                return Some((channel, element));
            }
            self.parked.entry(channel).or_default().push_back(element);
        }
        None
    }

    /// The next input element, round robin over the local queue and the receivers, skipping
    /// channels blocked by a barrier alignment; for a remote channel also the credit the consumed
    /// element returns to its producer.
    pub fn next_input(&mut self) -> Option<Input> {
        let sources = 1 + self.receivers.len();
        for i in 0..sources {
            let source = (self.input_cursor + i) % sources;
            if source == 0 {
                if let Some((channel, element)) = self.next_local() {
                    self.input_cursor = 1;
                    return Some((channel, element, None));
                }
                continue;
            }
            let (&channel, input) = self.receivers.iter_mut().nth(source - 1).expect("in range");
            if self.subtask.is_channel_blocked(channel) {
                continue;
            }
            if let Some(element) = input.receiver.poll_element() {
                self.input_cursor = source + 1;
                let credit = input.receiver.poll_credit().map(|n| (input.producer.clone(), n));
                return Some((channel, element, credit));
            }
        }
        None
    }
}

/// Everything this TaskManager knows about one attempt of a job.
#[derive(Default)]
pub(super) struct AttemptRun {
    /// The parsed job; `Some` while any subtask of the attempt runs here.
    pub job: Option<JobPlan>,
    /// For every subtask and channel, its producer; kept after `job` is freed, so late credits for
    /// ended producers are recognized.
    pub producers: Option<Vec<Vec<(u32, usize)>>>,
    pub subtasks: BTreeMap<u32, SubtaskRun>,
    /// Subtasks that ran here and reached a final state.
    pub ended: BTreeSet<u32>,
    pub canceled: bool,
    /// The connectors of this attempt, when the factory keeps state per attempt (staged sink
    /// output): ended with the job's outcome, or discarded with the attempt.
    pub connectors: Option<Box<dyn ConnectorFactory + Send>>,
}
