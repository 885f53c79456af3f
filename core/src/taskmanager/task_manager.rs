//! The TaskManager's control plane: registration, heartbeats, deployments, cancellation, the
//! reports to the JobManager, queries and invariants. The data plane is in `channels.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::connectors::ConnectorFactory;
use crate::dataflow::credit::{ChannelId, CreditReceiver, CreditSender};
use crate::dataflow::plan::{ChannelAddr, SubtaskId};
use crate::dataflow::subtask::Subtask;
use crate::ids::{AttemptId, CheckpointId, JobId, SlotIndex, TaskManagerId};
use crate::jobmanager::execution_state::ExecutionState;
use crate::jobmanager::resource_manager::TaskManagerRegistration;
use crate::limits::{INPUT_QUEUE_ELEMENTS_MAX, PENDING_CREDIT_CHANNELS_MAX, TASK_MANAGER_ATTEMPTS_KEPT_MAX};
use crate::protocol::messages::{
    DataMessage, Deployment, SnapshotAssembly, SubtaskMetrics, TaskStateReport, ToJobManager, ToTaskManager,
};
use crate::protocol::PROTOCOL_VERSION;
use crate::time::Instant;

use super::attempt::{AttemptRun, JobPlan, Peer, RemoteInput, RemoteOutput, SubtaskRun};
use super::{
    AlignedSource, DeployError, Output, RegistrationStatus, SlotInfo, SlotOccupant, SourceAlignment,
    SubtaskInfo, SubtaskPhase, TaskManagerConfig, TaskManagerCounters, JOB_MANAGER_SILENT_HEARTBEATS,
};

/// (job, attempt, subtask): a subtask running here, and the order `run` serves them in.
pub(super) type SubtaskKey = (JobId, AttemptId, u32);

/// A channel named by its consumer: (job, attempt, consumer subtask, input channel).
pub(super) type ChannelKey = (JobId, AttemptId, u32, u32);

/// The TaskManager role. See the module documentation for the contract.
///
/// Invariants ([`TaskManager::assert_invariants`]): a slot is used by at most one subtask and every
/// running subtask holds its own slot; local queues and channel buffers stay within their bounds;
/// channels exist only inside running subtasks; a cancelled attempt runs nothing.
pub struct TaskManager {
    pub(super) config: TaskManagerConfig,
    pub(super) connectors: Box<dyn ConnectorFactory + Send>,
    pub(super) registration: RegistrationStatus,
    pub(super) next_heartbeat: Option<Instant>,
    /// When the JobManager was last heard from, while connected.
    pub(super) job_manager_heard_at: Option<Instant>,
    pub(super) slots: Vec<Option<SlotOccupant>>,
    pub(super) attempts: BTreeMap<(JobId, AttemptId), AttemptRun>,
    /// Credits that arrived before their producer was deployed here: (sending TaskManager, credits).
    pub(super) pending_credits: BTreeMap<ChannelKey, (TaskManagerId, u32)>,
    /// The subtask `run` served last.
    pub(super) cursor: Option<SubtaskKey>,
    pub(super) outputs: VecDeque<Output>,
    pub(super) counters: TaskManagerCounters,
    pub(super) alignment: Option<Box<dyn SourceAlignment>>,
    /// Snapshots for deployments still to come, by subtask: (checkpoint, chunks so far, whole).
    pub(super) pending_restores: BTreeMap<SubtaskKey, (CheckpointId, SnapshotAssembly, bool)>,
}

impl TaskManager {
    pub fn new(config: TaskManagerConfig, connectors: Box<dyn ConnectorFactory + Send>) -> TaskManager {
        let slots = vec![None; usize::from(config.slots)];
        TaskManager {
            config,
            connectors,
            registration: RegistrationStatus::Disconnected,
            next_heartbeat: None,
            job_manager_heard_at: None,
            slots,
            attempts: BTreeMap::new(),
            pending_credits: BTreeMap::new(),
            pending_restores: BTreeMap::new(),
            cursor: None,
            outputs: VecDeque::new(),
            counters: TaskManagerCounters::default(),
            alignment: None,
        }
    }

    /// Aligns the splits of every event-time source this TaskManager runs with `alignment`.
    pub fn set_source_alignment(&mut self, alignment: Box<dyn SourceAlignment>) {
        self.alignment = Some(alignment);
    }

    /// A split that ends (finished, failed or cancelled) holds its siblings back no more.
    pub(super) fn release_split(&self, run: &SubtaskRun) {
        if let (Some(alignment), Some((source, split))) = (&self.alignment, run.split) {
            alignment.may_advance(source, split, crate::time::WATERMARK_MAX);
        }
    }

    pub fn id(&self) -> TaskManagerId {
        self.config.id
    }

    /// A (new) JobManager connection is up: register, offering every slot.
    pub fn handle_job_manager_connected(&mut self, now: Instant) {
        self.registration = RegistrationStatus::Registering;
        self.next_heartbeat = None;
        self.job_manager_heard_at = Some(now);
        self.outputs.push_back(Output::ToJobManager(ToJobManager::Register(TaskManagerRegistration {
            id: self.config.id,
            address: self.config.data_address.clone(),
            slots: self.config.slots,
            labels: self.config.labels.clone(),
            protocol_version: PROTOCOL_VERSION,
        })));
    }

    /// The JobManager connection is gone. With no one to report to, every subtask is cancelled
    /// silently and its attempt remembered as cancelled; reports not yet sent are dropped. A new
    /// JobManager learns the slots are free from the registration that follows the reconnection.
    pub fn handle_job_manager_lost(&mut self, _now: Instant) {
        self.registration = RegistrationStatus::Disconnected;
        self.next_heartbeat = None;
        self.job_manager_heard_at = None;
        self.outputs.retain(|o| !matches!(o, Output::ToJobManager(_)));
        // What still runs is canceled. An attempt whose subtasks here have all ended keeps its
        // staged output: the job may have finished while the JobManager's `JobEnded` was lost,
        // and a JobManager answers a registration with the outcomes of the jobs it ended
        // recently, which publishes or discards it then.
        let running: Vec<(JobId, AttemptId)> =
            self.attempts.iter().filter(|(_, a)| !a.subtasks.is_empty()).map(|(&k, _)| k).collect();
        for (job, attempt) in running {
            self.cancel_attempt(job, attempt, false);
        }
    }

    pub fn handle_job_manager_message(&mut self, now: Instant, message: ToTaskManager) {
        if self.job_manager_heard_at.is_some() {
            self.job_manager_heard_at = Some(now);
        }
        match message {
            ToTaskManager::HeartbeatReply => {}
            ToTaskManager::Registered { heartbeat_interval_ms } => {
                if self.registration != RegistrationStatus::Registering {
                    self.counters.messages_refused += 1;
                    return;
                }
                let interval = match heartbeat_interval_ms {
                    0 => self.config.heartbeat_interval,
                    ms => Duration::from_millis(ms),
                }
                .max(Duration::from_millis(1));
                self.registration = RegistrationStatus::Registered { heartbeat_interval: interval };
                self.next_heartbeat = Some(now + interval);
            }
            ToTaskManager::RegistrationRefused { reason } => {
                if self.registration != RegistrationStatus::Registering {
                    self.counters.messages_refused += 1;
                    return;
                }
                self.registration = RegistrationStatus::Refused { reason };
                self.next_heartbeat = None;
            }
            ToTaskManager::Deploy(deployment) => {
                if !matches!(self.registration, RegistrationStatus::Registered { .. }) {
                    self.counters.messages_refused += 1;
                    return;
                }
                self.deploy(deployment);
            }
            ToTaskManager::CancelAttempt { job, attempt } => {
                if !matches!(self.registration, RegistrationStatus::Registered { .. }) {
                    self.counters.messages_refused += 1;
                    return;
                }
                self.cancel_attempt(job, attempt, true);
            }
            ToTaskManager::JobEnded { job, attempt, succeeded } => {
                if !matches!(self.registration, RegistrationStatus::Registered { .. }) {
                    self.counters.messages_refused += 1;
                    return;
                }
                self.job_ended(job, attempt, succeeded);
            }
            ToTaskManager::StopSources { job, attempt } => {
                if !matches!(self.registration, RegistrationStatus::Registered { .. }) {
                    self.counters.messages_refused += 1;
                    return;
                }
                self.stop_sources(job, attempt);
            }
            message if !matches!(self.registration, RegistrationStatus::Registered { .. }) => {
                let _ = message;
                self.counters.messages_refused += 1;
            }
            ToTaskManager::TriggerCheckpoint { job, attempt, checkpoint } => {
                self.trigger_checkpoint(job, attempt, checkpoint)
            }
            ToTaskManager::CheckpointComplete { job, attempt, checkpoint } => {
                self.checkpoint_complete(job, attempt, checkpoint)
            }
            ToTaskManager::RestoreState(chunk) => self.restore_chunk(chunk),
        }
    }

    /// Ends the input of the attempt's sources running here; what they emitted drains normally.
    fn stop_sources(&mut self, job: JobId, attempt: AttemptId) {
        let Some(record) = self.attempts.get_mut(&(job, attempt)) else { return };
        let mut failed = Vec::new();
        for (&subtask, run) in &mut record.subtasks {
            if run.subtask.is_source() && !run.subtask.is_finished() {
                run.wake = None;
                if let Err(error) = run.subtask.end_source() {
                    failed.push((subtask, error.to_string()));
                }
            }
        }
        for (subtask, error) in failed {
            self.end_subtask((job, attempt, subtask), ExecutionState::Failed, Some(error));
        }
    }

    /// Publishes the output `attempt` staged here if the job `succeeded`, and discards the output
    /// of the job's other attempts. Subtasks of the job still running (which a correct JobManager
    /// never leaves) are cancelled first.
    fn job_ended(&mut self, job: JobId, attempt: AttemptId, succeeded: bool) {
        let attempts: Vec<AttemptId> = self
            .attempts
            .range((job, AttemptId(0))..)
            .take_while(|(k, _)| k.0 == job)
            .map(|(k, _)| k.1)
            .collect();
        for a in attempts {
            if !self.attempts[&(job, a)].subtasks.is_empty() {
                self.cancel_attempt(job, a, false);
            }
            self.end_output(job, a, succeeded && a == attempt);
        }
    }

    /// Ends the attempt's staged output: published or discarded. Once only: the connectors go.
    pub(super) fn end_output(&mut self, job: JobId, attempt: AttemptId, publish: bool) {
        let Some(connectors) = self.attempts.get_mut(&(job, attempt)).and_then(|r| r.connectors.take())
        else {
            return;
        };
        if let Err(error) = connectors.end_job(publish) {
            self.outputs.push_back(Output::EndJobFailed { job, attempt, published: publish, error });
        }
    }

    /// Sends the heartbeat when it is due. Sources that asked to be polled later need nothing here:
    /// the next [`TaskManager::run`] polls every source whose instant has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.job_manager_deadline().is_some_and(|at| at <= now) {
            self.handle_job_manager_lost(now);
            self.outputs.push_back(Output::JobManagerSilent);
            return;
        }
        if let (Some(at), RegistrationStatus::Registered { heartbeat_interval }) =
            (self.next_heartbeat, &self.registration)
        {
            if at <= now {
                self.outputs.push_back(Output::ToJobManager(ToJobManager::Heartbeat));
                let running = self.running_metrics();
                if !running.is_empty() {
                    self.outputs.push_back(Output::ToJobManager(ToJobManager::Metrics(running)));
                }
                self.next_heartbeat = Some(now + *heartbeat_interval);
            }
        }
    }

    /// The counters of every subtask running here, for the JobManager's status view.
    fn running_metrics(&self) -> Vec<SubtaskMetrics> {
        let mut out = Vec::new();
        for (&(job, attempt), record) in &self.attempts {
            for (&subtask, run) in &record.subtasks {
                out.push(SubtaskMetrics { job, attempt, subtask, metrics: metrics_of(&run.subtask) });
            }
        }
        out
    }

    /// When the JobManager's silence makes it lost: while registered, that many heartbeat
    /// intervals after it was last heard from.
    fn job_manager_deadline(&self) -> Option<Instant> {
        match (&self.registration, self.job_manager_heard_at) {
            (RegistrationStatus::Registered { heartbeat_interval }, Some(at)) => {
                Some(at + *heartbeat_interval * JOB_MANAGER_SILENT_HEARTBEATS)
            }
            _ => None,
        }
    }

    /// The next heartbeat, the JobManager's silence deadline, or the earliest instant a waiting
    /// source wants to be polled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wakes = self.attempts.values().flat_map(|a| a.subtasks.values()).filter_map(|r| r.wake);
        self.next_heartbeat.into_iter().chain(self.job_manager_deadline()).chain(wakes).min()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn deploy(&mut self, deployment: Deployment) {
        let (job, attempt, subtask) = (deployment.job, deployment.attempt, deployment.subtask);
        match self.start(deployment) {
            Ok(()) => {
                self.report(job, attempt, subtask, ExecutionState::Running, None, Vec::new());
                self.open_channels((job, attempt, subtask));
            }
            Err(e) => {
                // A job parsed for this deployment alone is not kept: it is cached only while running.
                if let Some(record) = self.attempts.get_mut(&(job, attempt)) {
                    if record.subtasks.is_empty() {
                        record.job = None;
                    }
                }
                self.counters.deployments_refused += 1;
                self.report(job, attempt, subtask, ExecutionState::Failed, Some(e.to_string()), Vec::new());
            }
        }
        self.forget_old_attempts();
    }

    /// Checks a deployment and instantiates its subtask with its channels, taking the slot. Nothing
    /// changes when it fails, except that the attempt may now be known (with its parsed job).
    fn start(&mut self, d: Deployment) -> Result<(), DeployError> {
        let slot = usize::from(d.slot.0);
        if slot >= self.slots.len() {
            return Err(DeployError::NoSuchSlot { slot: d.slot.0, slots: self.config.slots });
        }
        if let Some(o) = self.slots[slot] {
            return Err(DeployError::SlotBusy {
                slot: d.slot.0,
                job: o.job,
                attempt: o.attempt,
                subtask: o.subtask,
            });
        }
        let record = self.attempts.entry((d.job, d.attempt)).or_default();
        if record.canceled {
            return Err(DeployError::AttemptCanceled);
        }
        if record.subtasks.contains_key(&d.subtask) || record.ended.contains(&d.subtask) {
            return Err(DeployError::AlreadyDeployed { subtask: d.subtask });
        }
        if record.job.is_none() {
            let parsed = JobPlan::parse(&d.job_file, d.parallelism)?;
            record.producers = Some(parsed.producers());
            record.job = Some(parsed);
        }
        if record.connectors.is_none() {
            record.connectors = self.connectors.for_attempt(d.job, d.attempt);
        }
        let job = record.job.as_ref().expect("parsed above");
        let producers = record.producers.as_ref().expect("set with the job");
        let count = job.plan.subtasks.len();
        let Some(sp) = job.plan.subtasks.get(d.subtask as usize) else {
            return Err(DeployError::NoSuchSubtask { subtask: d.subtask, count });
        };
        let locations: BTreeMap<u32, Peer> = d
            .locations
            .iter()
            .map(|l| (l.subtask, Peer { task_manager: l.task_manager, address: l.address.clone() }))
            .collect();
        let locate = |peer: u32| {
            locations.get(&peer).cloned().ok_or(DeployError::NoLocation { subtask: peer, of: d.subtask })
        };
        let me = self.config.id;
        let mut receivers = BTreeMap::new();
        for channel in 0..sp.input_channels {
            let (producer, writer) = producers[d.subtask as usize][channel as usize];
            let peer = locate(producer)?;
            if peer.task_manager == me {
                continue;
            }
            let id = ChannelId {
                job: d.job,
                attempt: d.attempt,
                to: ChannelAddr { subtask: SubtaskId(d.subtask), channel },
            };
            let receiver = CreditReceiver::new(id, self.config.credits);
            let types = job.channel_types(producer, writer);
            receivers.insert(channel, RemoteInput { receiver, types, producer: peer });
        }
        let mut senders = BTreeMap::new();
        for target in sp.writers.iter().flat_map(|w| &w.targets) {
            let peer = locate(target.subtask.0)?;
            if peer.task_manager != me {
                let id = ChannelId { job: d.job, attempt: d.attempt, to: *target };
                let sender = CreditSender::new(id, self.config.credits);
                senders.insert((target.subtask.0, target.channel), RemoteOutput { sender, consumer: peer });
            }
        }
        let connectors = record.connectors.as_deref().unwrap_or(&*self.connectors);
        let mut subtask = Subtask::new(&job.graph, &job.plan, SubtaskId(d.subtask), connectors)
            .map_err(DeployError::Instantiate)?;
        let sp_index = sp.index;
        let source_splits =
            subtask.source_watermark().map(|_| job.graph.vertex(subtask.head_vertex()).parallelism);
        if let Some(checkpoint) = d.restore_from {
            self.restore_subtask((d.job, d.attempt, d.subtask), checkpoint, &mut subtask)?;
        }
        let record = self.attempts.get_mut(&(d.job, d.attempt)).expect("entered above");
        let split = source_splits.map(|splits| {
            let source =
                AlignedSource { job: d.job, attempt: d.attempt, vertex: subtask.head_vertex().0, splits };
            (source, sp_index)
        });
        let run = SubtaskRun {
            split,
            subtask,
            slot: d.slot,
            local_queue: VecDeque::with_capacity(INPUT_QUEUE_ELEMENTS_MAX),
            parked: BTreeMap::new(),
            receivers,
            senders,
            held: None,
            wake: None,
            input_cursor: 0,
        };
        record.subtasks.insert(d.subtask, run);
        self.slots[slot] = Some(SlotOccupant { job: d.job, attempt: d.attempt, subtask: d.subtask });
        Ok(())
    }

    /// Opens a new subtask's remote channels: grants every input channel's buffers to its producer,
    /// and hands its senders the credits that arrived before it was deployed.
    fn open_channels(&mut self, key: SubtaskKey) {
        let (job, attempt, subtask) = key;
        let run = self.subtask_run(key).expect("just deployed");
        let grants: Vec<(u32, Peer, u32)> = run
            .receivers
            .iter()
            .map(|(&channel, input)| (channel, input.producer.clone(), input.receiver.initial_credit()))
            .collect();
        let targets: Vec<(u32, u32)> = run.senders.keys().copied().collect();
        for (channel, peer, credits) in grants {
            self.send_data(peer, DataMessage::Credit { job, attempt, subtask, channel, credits });
        }
        for (to_subtask, channel) in targets {
            if let Some((from, credits)) = self.pending_credits.remove(&(job, attempt, to_subtask, channel)) {
                self.apply_credit(key, from, (to_subtask, channel), credits);
            }
        }
    }

    /// Cancels every subtask of the attempt (reporting `Canceled` if `report`), frees their slots
    /// and channels, and remembers the attempt as cancelled so its late data is dropped.
    pub(super) fn cancel_attempt(&mut self, job: JobId, attempt: AttemptId, report: bool) {
        let record = self.attempts.entry((job, attempt)).or_default();
        record.canceled = true;
        record.job = None;
        let runs = std::mem::take(&mut record.subtasks);
        record.ended.extend(runs.keys().copied());
        for (subtask, run) in runs {
            self.release_split(&run);
            self.slots[usize::from(run.slot.0)] = None;
            if report {
                let metrics = metrics_of(&run.subtask);
                self.report(job, attempt, subtask, ExecutionState::Canceled, None, metrics);
            }
        }
        self.pending_credits.retain(|&(j, a, _, _), _| (j, a) != (job, attempt));
        self.end_output(job, attempt, false);
        self.forget_old_attempts();
    }

    /// Ends a subtask in a final state: reports it with its metrics, frees its slot and channels.
    pub(super) fn end_subtask(&mut self, key: SubtaskKey, state: ExecutionState, error: Option<String>) {
        let (job, attempt, subtask) = key;
        let record = self.attempts.get_mut(&(job, attempt)).expect("a running subtask's attempt");
        let run = record.subtasks.remove(&subtask).expect("a running subtask");
        record.ended.insert(subtask);
        if record.subtasks.is_empty() {
            record.job = None;
        }
        self.release_split(&run);
        self.slots[usize::from(run.slot.0)] = None;
        let metrics = metrics_of(&run.subtask);
        self.report(job, attempt, subtask, state, error, metrics);
        self.forget_old_attempts();
    }

    /// Keeps at most `TASK_MANAGER_ATTEMPTS_KEPT_MAX` attempts with nothing running here, forgetting
    /// the oldest (by job and attempt number) with their parked credits.
    fn forget_old_attempts(&mut self) {
        let idle: Vec<(JobId, AttemptId)> =
            self.attempts.iter().filter(|(_, a)| a.subtasks.is_empty()).map(|(&k, _)| k).collect();
        let excess = idle.len().saturating_sub(TASK_MANAGER_ATTEMPTS_KEPT_MAX);
        for key in idle.into_iter().take(excess) {
            // Output the JobManager never ended: the job can no longer publish it from here.
            self.end_output(key.0, key.1, false);
            self.attempts.remove(&key);
            self.pending_credits.retain(|&(j, a, _, _), _| (j, a) != key);
        }
    }

    pub(super) fn report(
        &mut self,
        job: JobId,
        attempt: AttemptId,
        subtask: u32,
        state: ExecutionState,
        error: Option<String>,
        metrics: Vec<(u32, crate::dataflow::operator::OperatorMetrics)>,
    ) {
        let report = TaskStateReport { job, attempt, subtask, state, error, metrics };
        self.outputs.push_back(Output::ToJobManager(ToJobManager::TaskState(report)));
    }

    pub(super) fn send_data(&mut self, peer: Peer, message: DataMessage) {
        self.outputs.push_back(Output::ToTaskManager {
            to: peer.task_manager,
            address: peer.address,
            message,
        });
    }

    pub(super) fn subtask_run(&mut self, (job, attempt, subtask): SubtaskKey) -> Option<&mut SubtaskRun> {
        self.attempts.get_mut(&(job, attempt))?.subtasks.get_mut(&subtask)
    }

    pub fn registration(&self) -> &RegistrationStatus {
        &self.registration
    }

    /// Why the JobManager refused this TaskManager, if it did.
    pub fn refusal_reason(&self) -> Option<&str> {
        match &self.registration {
            RegistrationStatus::Refused { reason } => Some(reason),
            _ => None,
        }
    }

    pub fn counters(&self) -> TaskManagerCounters {
        self.counters
    }

    /// Every slot, free or used, in slot order.
    pub fn slots(&self) -> Vec<SlotInfo> {
        (0..self.config.slots)
            .map(|i| SlotInfo { slot: SlotIndex(i), occupant: self.slots[usize::from(i)] })
            .collect()
    }

    /// Every subtask running here, by (job, attempt, subtask).
    pub fn subtasks(&self) -> Vec<SubtaskInfo> {
        let mut infos = Vec::new();
        for (&(job, attempt), record) in &self.attempts {
            for (&subtask, run) in &record.subtasks {
                infos.push(SubtaskInfo {
                    occupant: SlotOccupant { job, attempt, subtask },
                    slot: run.slot,
                    phase: if run.subtask.is_finished() {
                        SubtaskPhase::Draining
                    } else {
                        SubtaskPhase::Running
                    },
                });
            }
        }
        infos
    }

    pub fn assert_invariants(&self) {
        let mut used = 0;
        for (&(job, attempt), record) in &self.attempts {
            assert!(!record.canceled || record.subtasks.is_empty(), "{job}/{attempt}: cancelled yet running");
            assert_eq!(
                record.job.is_some(),
                !record.subtasks.is_empty(),
                "{job}/{attempt}: job cached iff running"
            );
            for (&subtask, run) in &record.subtasks {
                used += 1;
                assert!(
                    !record.ended.contains(&subtask),
                    "{job}/{attempt} subtask {subtask} ended and running"
                );
                let slot = usize::from(run.slot.0);
                assert!(slot < self.slots.len(), "a subtask in a slot this TaskManager lacks");
                assert_eq!(
                    self.slots[slot],
                    Some(SlotOccupant { job, attempt, subtask }),
                    "slot {slot}'s owner"
                );
                assert!(run.local_queue.len() <= INPUT_QUEUE_ELEMENTS_MAX, "a local queue over its bound");
                let plan = &record.job.as_ref().expect("cached while running").plan;
                let sp = &plan.subtasks[subtask as usize];
                for (&channel, input) in &run.receivers {
                    assert!(channel < sp.input_channels, "a receiver for a channel the subtask lacks");
                    input.receiver.assert_invariants();
                }
                for output in run.senders.values() {
                    let to = output.sender.channel().to;
                    assert!(sp.writers.iter().any(|w| w.targets.contains(&to)), "a sender to no target");
                    output.sender.assert_invariants();
                }
                run.subtask.assert_invariants();
            }
        }
        // Pair assertion: every used slot is owned by a running subtask, and no two share one.
        assert_eq!(self.slots.iter().flatten().count(), used, "slots and running subtasks disagree");
        assert!(self.pending_credits.len() <= PENDING_CREDIT_CHANNELS_MAX, "too many parked credits");
        for &(job, attempt, consumer, channel) in self.pending_credits.keys() {
            let Some(record) = self.attempts.get(&(job, attempt)) else { continue };
            assert!(!record.canceled, "credits parked for a cancelled attempt");
            let producer =
                record.producers.as_ref().and_then(|p| p.get(consumer as usize)?.get(channel as usize));
            if let Some((producer, _)) = producer {
                assert!(!record.subtasks.contains_key(producer), "credits parked for a running sender");
            }
        }
    }
}

/// A subtask's counters per chained vertex, as reports carry them.
fn metrics_of(subtask: &Subtask) -> Vec<(u32, crate::dataflow::operator::OperatorMetrics)> {
    subtask.metrics().map(|(v, m)| (v.0, m)).collect()
}
