//! What the harness sees of the messages the nodes exchange, and an application-level fault point,
//! at the frame seam of [`crate::runtime`].
//!
//! Every connection a TaskManager opens is known by what it connects to: the JobManager (control
//! messages: `ToJobManager` out, `ToTaskManager` in) or another TaskManager's data port (data
//! messages out). The first frame each way is the handshake; every later frame is decoded with the
//! core's codec and looked at, never changed:
//!
//! * **watermarks never go back**: on every data channel — one attempt of one job, into one input
//!   channel of one consumer subtask — each watermark a producer sends is at least the one it
//!   sent before. A new attempt's channels start afresh: an attempt restored from a checkpoint
//!   legitimately starts again from the checkpoint's watermark, below what the failed attempt had
//!   reached. (Channels between subtasks of one TaskManager do not cross the seam and are not seen.)
//! * **one JobMaster acts for a job**: the deployments each TaskManager receives for a job never
//!   go back to an older attempt. A JobManager restarted on its store continues with the next
//!   attempt, and a TaskManager must never be handed work of an attempt older than one it was
//!   already given — as a stale JobManager incarnation, or a message of one delayed past a
//!   newer attempt's, would hand it.
//! * **every completed checkpoint is a consistent cut**: the probe assembles the snapshots the
//!   TaskManagers send, and when the JobManager announces checkpoint n complete it adds up the
//!   counters each snapshot recorded per vertex. Barriers follow the records before them, and a
//!   subtask snapshots only once every input delivered the barrier, so along every edge the
//!   consumers must have taken in exactly what the producers had emitted: a vertex's records in
//!   equal its inputs' records out (late records routed, for a late side output). A subtask that
//!   let records from beyond a barrier into its snapshot, or lost some, breaks the sum.
//!
//! The fault point: with [`Probe::ack_delay`] set, a TaskManager holds the last chunk of each
//! snapshot it sends — its acknowledgement of the checkpoint — back for a drawn delay before
//! writing it. The connection is ordered, so what the TaskManager sends after it waits as well.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::dataflow::plan::ExecutionPlan;
use rivulet_core::graph::OutputTag;
use rivulet_core::ids::{AttemptId, CheckpointId, JobId};
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::protocol::decode_message;
use rivulet_core::protocol::messages::{
    DataMessage, Deployment, SnapshotAssembly, SnapshotChunk, ToJobManager, ToTaskManager,
};
use rivulet_core::protocol::wire_batch::WireElement;
use rivulet_core::state::snapshot::decode_snapshot;

use crate::rng::{SeedRng, STREAM_ACK_DELAYS};
use crate::scenario::DelayRange;

/// What a connection carries, as far as the probe is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A TaskManager's connection to the JobManager.
    Control,
    /// A TaskManager's outgoing data link to another TaskManager.
    Data,
    /// Anything else (accepted connections, the client's): not looked at.
    Other,
}

impl Channel {
    /// What a connection `host` opens to `address` carries.
    pub fn of(host: &str, address: &str) -> Channel {
        let is_task_manager = crate::TASK_MANAGERS.contains(&host);
        if !is_task_manager {
            Channel::Other
        } else if address == crate::JOB_MANAGER_ADDRESS {
            Channel::Control
        } else if address.ends_with(&format!(":{}", crate::DATA_PORT)) {
            Channel::Data
        } else {
            Channel::Other
        }
    }
}

/// The key of one data channel: job, attempt, consumer subtask, input channel.
type ChannelKey = (JobId, AttemptId, u32, u32);

/// One checkpoint's snapshots as the TaskManagers send them.
#[derive(Debug, Default)]
struct Cut {
    assemblies: BTreeMap<u32, SnapshotAssembly>,
    /// Per subtask whose snapshot is complete: its counters per vertex.
    counters: BTreeMap<u32, Vec<(u32, OperatorMetrics)>>,
}

/// What the cut check needs of a job: its vertices' names, its edges (producer, consumer, from
/// the late side output) and how many subtasks it has.
#[derive(Debug)]
struct JobShape {
    names: Vec<String>,
    edges: Vec<(u32, u32, bool)>,
    subtasks: usize,
}

/// Checkpoints whose snapshots the probe assembles at once; older ones are given up.
const CUTS_MAX: usize = 32;

/// The probe every host of one simulation shares.
#[derive(Debug)]
pub struct Probe {
    ack_delay: Option<DelayRange>,
    rng: SeedRng,
    /// The last watermark sent on each data channel.
    watermarks: BTreeMap<ChannelKey, i64>,
    /// The newest attempt of each job each TaskManager was told to deploy.
    deployed: BTreeMap<(String, JobId), AttemptId>,
    /// Each job's shape, from its first deployment.
    shapes: BTreeMap<JobId, JobShape>,
    /// The checkpoints whose snapshots are on their way.
    cuts: BTreeMap<(JobId, AttemptId, CheckpointId), Cut>,
    /// The first violation seen.
    pub violation: Option<String>,
    pub cuts_checked: u64,
    pub watermarks_seen: u64,
    pub deployments_seen: u64,
    pub acks_delayed: u64,
}

/// The probe shared by a simulation's hosts.
pub type SharedProbe = Arc<Mutex<Probe>>;

impl Probe {
    pub fn new(seed: u64, ack_delay: Option<DelayRange>) -> Probe {
        Probe {
            ack_delay,
            rng: SeedRng::new(seed, STREAM_ACK_DELAYS),
            watermarks: BTreeMap::new(),
            deployed: BTreeMap::new(),
            shapes: BTreeMap::new(),
            cuts: BTreeMap::new(),
            violation: None,
            cuts_checked: 0,
            watermarks_seen: 0,
            deployments_seen: 0,
            acks_delayed: 0,
        }
    }

    pub fn shared(seed: u64, ack_delay: Option<DelayRange>) -> SharedProbe {
        Arc::new(Mutex::new(Probe::new(seed, ack_delay)))
    }

    fn violate(&mut self, message: String) {
        if self.violation.is_none() {
            self.violation = Some(message);
        }
    }

    /// A frame `host` is about to send on a connection carrying `channel`: how long to hold it.
    pub fn on_send(&mut self, host: &str, channel: Channel, payload: &[u8]) -> Duration {
        match channel {
            Channel::Data => {
                if let Ok(DataMessage::Element {
                    job,
                    attempt,
                    subtask,
                    channel,
                    element: WireElement::Watermark(w),
                }) = decode_message::<DataMessage>(payload)
                {
                    self.on_watermark(host, (job, attempt, subtask, channel), w);
                }
                Duration::ZERO
            }
            Channel::Control => {
                let Ok(ToJobManager::CheckpointState(chunk)) = decode_message::<ToJobManager>(payload) else {
                    return Duration::ZERO;
                };
                self.on_chunk(&chunk);
                match self.ack_delay {
                    Some(range) if chunk.is_last() => {
                        self.acks_delayed += 1;
                        let (low, high) = (range.min.as_millis() as u64, range.max.as_millis() as u64);
                        self.rng.millis(low..=high)
                    }
                    _ => Duration::ZERO,
                }
            }
            Channel::Other => Duration::ZERO,
        }
    }

    fn on_watermark(&mut self, host: &str, key: ChannelKey, watermark: i64) {
        self.watermarks_seen += 1;
        let (job, attempt, subtask, channel) = key;
        match self.watermarks.insert(key, watermark) {
            Some(before) if watermark < before => self.violate(format!(
                "a watermark went back: {host} sent watermark {watermark} after {before} on {job}/{attempt} \
                 channel {channel} of subtask {subtask}"
            )),
            _ => {}
        }
    }

    /// A chunk of a subtask's snapshot on its way to the JobManager.
    fn on_chunk(&mut self, chunk: &SnapshotChunk) {
        let key = (chunk.job, chunk.attempt, chunk.checkpoint);
        if !self.cuts.contains_key(&key) && self.cuts.len() == CUTS_MAX {
            self.cuts.pop_first();
        }
        let cut = self.cuts.entry(key).or_default();
        let assembly = cut.assemblies.entry(chunk.subtask).or_default();
        match assembly.push(chunk) {
            Ok(false) => {}
            Ok(true) => {
                let bytes = cut.assemblies.remove(&chunk.subtask).expect("pushed above").into_bytes();
                match decode_snapshot(&bytes) {
                    Ok(snapshot) => {
                        let counters = snapshot.operators.iter().map(|o| (o.vertex, o.metrics)).collect();
                        cut.counters.insert(chunk.subtask, counters);
                    }
                    Err(e) => self.violate(format!(
                        "a TaskManager sent a snapshot it cannot decode itself: subtask {} of {}/{} \
                         checkpoint {}: {e}",
                        chunk.subtask, chunk.job, chunk.attempt, chunk.checkpoint.0
                    )),
                }
            }
            Err(_) => {
                cut.assemblies.remove(&chunk.subtask);
            }
        }
    }

    /// The JobManager announced checkpoint `checkpoint` of the attempt complete: the snapshots
    /// must form a consistent cut (checked once, with every subtask's snapshot seen).
    fn on_complete(&mut self, job: JobId, attempt: AttemptId, checkpoint: CheckpointId) {
        let Some(cut) = self.cuts.remove(&(job, attempt, checkpoint)) else { return };
        self.cuts.retain(|&(j, _, c), _| j != job || c > checkpoint);
        let Some(shape) = self.shapes.get(&job) else { return };
        if cut.counters.len() != shape.subtasks {
            return;
        }
        self.cuts_checked += 1;
        let mut totals = vec![OperatorMetrics::default(); shape.names.len()];
        for (vertex, m) in cut.counters.values().flatten() {
            let Some(t) = totals.get_mut(*vertex as usize) else { continue };
            t.records_in += m.records_in;
            t.records_out += m.records_out;
            t.late_records_routed += m.late_records_routed;
        }
        for (v, name) in shape.names.iter().enumerate() {
            let inputs: Vec<&(u32, u32, bool)> = shape.edges.iter().filter(|e| e.1 as usize == v).collect();
            if inputs.is_empty() {
                continue;
            }
            let emitted: u64 = (inputs.iter())
                .map(|&&(from, _, late)| {
                    let t = &totals[from as usize];
                    if late {
                        t.late_records_routed
                    } else {
                        t.records_out
                    }
                })
                .sum();
            let taken = totals[v].records_in;
            if taken != emitted {
                self.violate(format!(
                    "checkpoint {} of {job}/{attempt} is not a consistent cut: `{name}` had taken in {taken} \
                     records, its inputs had emitted {emitted}",
                    checkpoint.0
                ));
                return;
            }
        }
    }

    /// Learns a job's shape from a deployment (the job file parses to the same plan everywhere).
    fn learn_shape(&mut self, deployment: &Deployment) {
        if self.shapes.contains_key(&deployment.job) {
            return;
        }
        let options = ParseOptions { parallelism: deployment.parallelism };
        let Ok(graph) = parse_job(&deployment.job_file, &options) else { return };
        let plan = ExecutionPlan::new(&graph);
        let names = graph.vertices().iter().map(|v| v.name.clone()).collect();
        let edges = graph.edges().iter().map(|e| (e.from.0, e.to.0, e.output == OutputTag::Late)).collect();
        self.shapes.insert(deployment.job, JobShape { names, edges, subtasks: plan.subtasks.len() });
    }

    /// A frame `host` received on a connection carrying `channel`.
    pub fn on_receive(&mut self, host: &str, channel: Channel, payload: &[u8]) {
        if channel != Channel::Control {
            return;
        }
        let deployment = match decode_message::<ToTaskManager>(payload) {
            Ok(ToTaskManager::Deploy(deployment)) => deployment,
            Ok(ToTaskManager::CheckpointComplete { job, attempt, checkpoint }) => {
                return self.on_complete(job, attempt, checkpoint);
            }
            _ => return,
        };
        self.learn_shape(&deployment);
        self.deployments_seen += 1;
        let key = (host.to_owned(), deployment.job);
        let newest = self.deployed.entry(key).or_insert(deployment.attempt);
        if deployment.attempt < *newest {
            let newest = *newest;
            self.violate(format!(
                "two JobMasters acted for {}: {host} was told to deploy subtask {} of {} after it was \
                 given {newest}",
                deployment.job, deployment.subtask, deployment.attempt
            ));
        } else {
            *newest = deployment.attempt;
        }
    }
}

#[cfg(test)]
mod tests {
    use rivulet_core::protocol::encode_frame;
    use rivulet_core::protocol::FRAME_HEADER_BYTES;

    use super::*;

    fn payload(message: &DataMessage) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).expect("a small message");
        bytes.split_off(FRAME_HEADER_BYTES)
    }

    fn watermark(attempt: u32, w: i64) -> Vec<u8> {
        payload(&DataMessage::Element {
            job: JobId(1),
            attempt: AttemptId(attempt),
            subtask: 2,
            channel: 0,
            element: WireElement::Watermark(w),
        })
    }

    #[test]
    fn a_watermark_that_goes_back_within_an_attempt_is_a_violation() {
        let mut probe = Probe::new(1, None);
        probe.on_send("tm1", Channel::Data, &watermark(0, 10));
        probe.on_send("tm1", Channel::Data, &watermark(0, 10));
        probe.on_send("tm1", Channel::Data, &watermark(0, 20));
        // A new attempt restarts from its checkpoint's watermark.
        probe.on_send("tm1", Channel::Data, &watermark(1, 5));
        assert_eq!(probe.violation, None);
        assert_eq!(probe.watermarks_seen, 4);
        probe.on_send("tm1", Channel::Data, &watermark(1, 4));
        let violation = probe.violation.expect("went back");
        assert!(violation.contains("watermark 4 after 5"), "{violation}");
    }

    fn to_job_manager(message: &ToJobManager) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).expect("a small message");
        bytes.split_off(FRAME_HEADER_BYTES)
    }

    fn to_task_manager(message: &ToTaskManager) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).expect("a small message");
        bytes.split_off(FRAME_HEADER_BYTES)
    }

    /// Sends the snapshots of checkpoint `n` of the simulation's job (4 subtasks: readings and
    /// by_key chained, per_second and out chained) with `taken` records into `per_second` on
    /// each of its subtasks, then announces it complete.
    fn checkpoint(probe: &mut Probe, n: u64, taken: [u64; 2]) {
        use rivulet_core::state::snapshot::{encode_snapshot, OperatorSnapshot, SubtaskSnapshot};
        let metrics =
            |records_in, records_out| OperatorMetrics { records_in, records_out, ..Default::default() };
        let operator = |vertex, metrics| OperatorSnapshot { vertex, metrics, state: Vec::new() };
        let checkpoint = CheckpointId(n);
        for subtask in 0..4u32 {
            let operators = if subtask < 2 {
                vec![operator(0, metrics(100, 100)), operator(1, metrics(100, 100))]
            } else {
                let taken = taken[subtask as usize - 2];
                vec![operator(2, metrics(taken, 1)), operator(3, metrics(1, 0))]
            };
            let snapshot = SubtaskSnapshot { checkpoint, source: None, input_watermark: 0, operators };
            let bytes = encode_snapshot(&snapshot);
            for chunk in SnapshotChunk::split(JobId(1), AttemptId(0), subtask, checkpoint, &bytes) {
                probe.on_send(
                    "tm1",
                    Channel::Control,
                    &to_job_manager(&ToJobManager::CheckpointState(chunk)),
                );
            }
        }
        let complete = ToTaskManager::CheckpointComplete { job: JobId(1), attempt: AttemptId(0), checkpoint };
        probe.on_receive("tm1", Channel::Control, &to_task_manager(&complete));
    }

    #[test]
    fn a_completed_checkpoint_whose_snapshots_are_not_a_consistent_cut_is_a_violation() {
        let mut probe = Probe::new(1, None);
        let deployment = Deployment {
            job: JobId(1),
            attempt: AttemptId(0),
            subtask: 0,
            slot: rivulet_core::ids::SlotIndex(0),
            job_file: crate::catalog::JOB.to_owned(),
            parallelism: None,
            locations: Vec::new(),
            restore_from: None,
        };
        probe.on_receive("tm1", Channel::Control, &to_task_manager(&ToTaskManager::Deploy(deployment)));
        checkpoint(&mut probe, 1, [120, 80]);
        assert_eq!((probe.violation.as_deref(), probe.cuts_checked), (None, 1), "200 emitted, 200 taken in");
        checkpoint(&mut probe, 2, [120, 81]);
        let violation = probe.violation.expect("one record from beyond the barrier");
        assert!(
            violation.contains("`per_second` had taken in 201 records, its inputs had emitted 200"),
            "{violation}"
        );
    }

    #[test]
    fn channels_are_known_by_what_they_connect_to() {
        assert_eq!(Channel::of("tm1", "jobmanager:6123"), Channel::Control);
        assert_eq!(Channel::of("tm1", "tm2:6124"), Channel::Data);
        assert_eq!(Channel::of("client", "jobmanager:6123"), Channel::Other);
    }
}
