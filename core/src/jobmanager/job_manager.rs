//! The JobManager: the Dispatcher's job registry, the ResourceManager, and one JobMaster per job,
//! with the routing between them, as one sans-IO role.
//!
//! The Dispatcher's part lives here: jobs are submitted as job-file text, validated, given the
//! next [`JobId`], and handed to a new [`JobMaster`]; ended jobs move to a bounded history. The
//! routing moves every effect of one role to the role it is for — slot requests and releases to
//! the ResourceManager, grants and losses to the JobMaster of their job, deployments and
//! cancellations to TaskManagers — until nothing moves, inside each `handle_*` call. What leaves
//! the process comes out of [`JobManager::poll_output`].
//!
//! Contract: call `handle_*` with the current time (never going back), drain `poll_output`, arm a
//! timer for `poll_timeout` and call `handle_timeout` when it fires.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::dataflow::operator::OperatorMetrics;
use crate::dataflow::plan::{ExecutionPlan, SubtaskId};
use crate::graph::RestartStrategy;
use crate::ids::{AttemptId, CheckpointId, JobId, TaskManagerId};
use crate::jobfile::{parse_job, JobFileError, ParseOptions};
use crate::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use crate::jobmanager::job_master::{self, JobMaster, JobState, JobStatus, Placement};
use crate::jobmanager::resource_manager::{
    self, ResourceManager, ResourceManagerConfig, SlotRequest, SlotRequestId, TaskManagerStatus,
};
use crate::limits::{FINISHED_JOBS_MAX, SAVEPOINTS_KEPT_MAX};
use crate::protocol::messages::{
    Deployment, SnapshotChunk, SubtaskLocation, SubtaskMetrics, TaskStateReport, ToJobManager, ToTaskManager,
};
use crate::state::savepoint::{encode_savepoint, Savepoint};
use crate::time::Instant;

/// An effect of the JobManager for its driver.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `message` to TaskManager `tm`.
    ToTaskManager { tm: TaskManagerId, message: ToTaskManager },
    /// Answer the registration of `tm` from `address` with a refusal, on the connection it came
    /// from (the id may belong to another, live TaskManager), then close that connection.
    RefuseRegistration { tm: TaskManagerId, address: String, reason: String },
    /// TaskManager `tm` was declared dead: close its connection.
    TaskManagerDead { tm: TaskManagerId },
    /// A job ended.
    JobEnded { job: JobId, state: JobState, cause: Option<String> },
    /// Record the job's completed checkpoint durably (keeping the job's last `retained`), then
    /// call [`JobManager::handle_checkpoint_persisted`]. Sinks commit only after that.
    PersistCheckpoint { job: JobId, checkpoint: Arc<CompletedCheckpoint>, retained: u16 },
    /// A checkpoint of the job was given up; anything stored for it can go.
    CheckpointAborted { job: JobId, checkpoint: CheckpointId, reason: String },
    /// Write savepoint `request` of the job: `bytes` (a savepoint file) into `directory` (an
    /// absolute path on the JobManager's machine) as `file_name`, durably, then call
    /// [`JobManager::handle_savepoint_written`].
    WriteSavepoint { job: JobId, request: u64, directory: String, file_name: String, bytes: Vec<u8> },
    /// Record (or update) a running job durably before carrying out the outputs after this one:
    /// a JobManager restarted on the same store takes the job over ([`JobManager::recover`]).
    PersistJob(JobRecord),
    /// The job ended: durably, and before carrying out the outputs after this one, forget its
    /// record and checkpoints and record its final overview (keeping the last
    /// `FINISHED_JOBS_MAX`). The TaskManagers hear the outcome only after it: a JobManager
    /// restarted on the same store neither runs the job again (its output published twice) nor
    /// forgets it (output a TaskManager staged left unpublished), and hands new job ids out after it.
    PersistJobResult(Box<JobOverview>),
}

/// What a store holds of an ended job for [`JobManager::recover`]: its final overview, or why its
/// record cannot be read (written by another build, say): new job ids still follow its id.
pub type EndedJob = (JobId, Result<JobOverview, String>);

/// A recorded job with its latest completed checkpoint: what a restarted JobManager takes over.
pub type RecoverableJob = (JobRecord, Option<Arc<CompletedCheckpoint>>);

/// What a JobManager records about a running job: enough for a successor to take it over.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub job: JobId,
    pub job_file: String,
    pub parallelism: Option<u16>,
    /// The latest attempt started, and the failures counted by then.
    pub attempt: AttemptId,
    pub failures: u32,
}

#[derive(Clone, Debug)]
pub struct JobManagerConfig {
    pub resource_manager: ResourceManagerConfig,
    /// Ended jobs whose status is kept.
    pub finished_jobs_max: usize,
    /// The restart strategy of a job whose file sets none.
    pub restart_default: RestartStrategy,
}

impl Default for JobManagerConfig {
    fn default() -> Self {
        JobManagerConfig {
            resource_manager: ResourceManagerConfig::default(),
            finished_jobs_max: FINISHED_JOBS_MAX,
            restart_default: RestartStrategy::default(),
        }
    }
}

/// A job as the CLI and REST show it: its JobMaster's status and the latest counters per vertex.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobOverview {
    pub status: JobStatus,
    pub submitted_at: Instant,
    /// Per vertex (in the job graph's order): name and counters summed over its subtasks' latest
    /// reports in the current attempt.
    pub vertices: Vec<(String, OperatorMetrics)>,
    /// The slot requests of the current attempt the cluster has not granted yet: what the job is
    /// waiting for (empty once it is deployed, and for an ended job).
    pub waiting_for: Vec<SlotWait>,
    /// Its most recent savepoint requests, oldest first.
    pub savepoints: Vec<SavepointStatus>,
}

/// A savepoint asked of a job, and how far it got.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavepointStatus {
    /// The job's savepoint requests are numbered from 1.
    pub request: u64,
    /// Where its file goes (absolute, on the JobManager's machine).
    pub directory: String,
    /// The job stops once the savepoint is written (`rivulet stop --savepoint`).
    pub stop: bool,
    pub state: SavepointState,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SavepointState {
    /// Asked for; its checkpoint is not complete yet.
    Triggered,
    /// Its checkpoint is complete and committed; its file (`bytes` long) is being written.
    Writing {
        checkpoint: CheckpointId,
        bytes: u64,
    },
    Completed {
        checkpoint: CheckpointId,
        path: String,
        bytes: u64,
    },
    Failed {
        cause: String,
    },
}

impl SavepointState {
    pub fn name(&self) -> &'static str {
        match self {
            SavepointState::Triggered | SavepointState::Writing { .. } => "in-progress",
            SavepointState::Completed { .. } => "completed",
            SavepointState::Failed { .. } => "failed",
        }
    }
}

/// Why a savepoint was not asked of a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SavepointRefused {
    #[error("no running job {0}")]
    UnknownJob(JobId),
    #[error("no savepoint of {job}: {reason}")]
    Refused { job: JobId, reason: String },
}

/// Slots a job waits for: `slots` of them at once, on TaskManagers whose labels include
/// `placement` (any TaskManager when it is empty).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotWait {
    pub placement: Placement,
    pub slots: u16,
}

struct RunningJob {
    master: JobMaster,
    job_file: String,
    parallelism: Option<u16>,
    submitted_at: Instant,
    /// Latest counters reported by each subtask of the current attempt.
    metrics: BTreeMap<u32, Vec<(u32, OperatorMetrics)>>,
    metrics_attempt: AttemptId,
    /// Why the JobManager itself stopped the job, if it did.
    end_cause: Option<String>,
    /// The attempt and placement of each slot request waiting for its grant.
    requests: BTreeMap<SlotRequestId, (AttemptId, Placement, u16)>,
    /// Stopped by [`JobManager::stop`]: every attempt's sources are told to end.
    stopping: bool,
    /// The attempt last recorded with [`Output::PersistJob`].
    recorded_attempt: Option<AttemptId>,
    /// The most recent savepoint requests (at most `SAVEPOINTS_KEPT_MAX`), oldest first.
    savepoints: VecDeque<SavepointStatus>,
}

impl RunningJob {
    /// The savepoint request whose checkpoint is in flight (one at a time).
    fn triggered_savepoint(&mut self) -> Option<&mut SavepointStatus> {
        self.savepoints.iter_mut().find(|s| s.state == SavepointState::Triggered)
    }

    /// Keeps a subtask's latest counters: a newer attempt's first report drops the older
    /// attempt's, and a report of an older attempt (or without counters) changes nothing.
    fn record_metrics(&mut self, attempt: AttemptId, subtask: u32, metrics: Vec<(u32, OperatorMetrics)>) {
        if attempt > self.metrics_attempt {
            self.metrics.clear();
            self.metrics_attempt = attempt;
        }
        if attempt == self.metrics_attempt && !metrics.is_empty() {
            self.metrics.insert(subtask, metrics);
        }
    }
}

pub struct JobManager {
    config: JobManagerConfig,
    resources: ResourceManager,
    jobs: BTreeMap<JobId, RunningJob>,
    finished: VecDeque<JobOverview>,
    next_job: u64,
    now: Instant,
    outbox: VecDeque<Output>,
}

/// A job id that is neither running nor in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no job {0}")]
pub struct UnknownJob(pub JobId);

impl JobManager {
    pub fn new(config: JobManagerConfig) -> JobManager {
        assert!(config.finished_jobs_max >= 1);
        let resources = ResourceManager::new(config.resource_manager);
        JobManager {
            config,
            resources,
            jobs: BTreeMap::new(),
            finished: VecDeque::new(),
            next_job: 1,
            now: Instant::ZERO,
            outbox: VecDeque::new(),
        }
    }

    /// Moves time to `now`, first applying every timeout due by then (so an input's outcome
    /// does not depend on whether the driver called `handle_timeout` before it).
    fn advance(&mut self, now: Instant) {
        assert!(now >= self.now, "time never goes back");
        self.now = now;
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.resources.handle_timeout(now);
            for entry in self.jobs.values_mut() {
                if entry.master.poll_timeout().is_some_and(|t| t <= now) {
                    entry.master.handle_timeout(now);
                }
            }
            self.route(now);
        }
    }

    /// Submits a job file's text; a job that does not validate is refused with the error.
    pub fn submit(
        &mut self,
        now: Instant,
        job_file: &str,
        parallelism: Option<u16>,
    ) -> Result<JobId, JobFileError> {
        self.advance(now);
        let mut graph = parse_job(job_file, &ParseOptions { parallelism })?;
        if !graph.restart_given {
            graph.restart = self.config.restart_default.clone();
        }
        let job = JobId(self.next_job);
        self.next_job += 1;
        let master = JobMaster::new(job, graph, now);
        self.insert_job(now, master, job_file, parallelism);
        Ok(job)
    }

    fn insert_job(&mut self, now: Instant, master: JobMaster, job_file: &str, parallelism: Option<u16>) {
        let (job, attempt) = (master.job(), master.attempt_and_failures().0);
        let entry = RunningJob {
            master,
            job_file: job_file.to_owned(),
            parallelism,
            submitted_at: now,
            metrics: BTreeMap::new(),
            metrics_attempt: attempt,
            end_cause: None,
            requests: BTreeMap::new(),
            stopping: false,
            recorded_attempt: None,
            savepoints: VecDeque::new(),
        };
        self.jobs.insert(job, entry);
        self.route(now);
    }

    /// Takes over the jobs a previous JobManager recorded on the same store, each with its latest
    /// completed checkpoint: each continues with its next attempt, restored from that checkpoint
    /// (from the beginning without one), once TaskManagers have registered again. A record whose
    /// job file no longer parses (another version) is refused with the error. The `ended` jobs it
    /// recorded join the history as they ended (their times are the previous JobManager's): a
    /// TaskManager that registers hears their outcomes, so output it staged for one is published
    /// or discarded. A job recorded as ended is not taken over even if its running record is
    /// still there (a store that removes it after recording the end). New job ids follow the
    /// largest recovered one, running or ended.
    pub fn recover(
        &mut self,
        now: Instant,
        jobs: Vec<RecoverableJob>,
        mut ended: Vec<EndedJob>,
    ) -> Vec<(JobId, Result<(), JobFileError>)> {
        self.advance(now);
        ended.sort_by_key(|(job, _)| *job);
        let ended_ids: BTreeSet<JobId> = ended.iter().map(|(job, _)| *job).collect();
        for (job, overview) in ended {
            self.next_job = self.next_job.max(job.0.saturating_add(1));
            let known = self.jobs.contains_key(&job) || self.finished.iter().any(|o| o.status.job == job);
            match overview {
                Ok(o) if o.status.job == job && o.status.state.is_final() && !known => self.remember_ended(o),
                _ => {}
            }
        }
        let mut results = Vec::new();
        for (record, latest) in jobs.into_iter().filter(|(r, _)| !ended_ids.contains(&r.job)) {
            self.next_job = self.next_job.max(record.job.0.saturating_add(1));
            let options = ParseOptions { parallelism: record.parallelism };
            let result = parse_job(&record.job_file, &options).map(|mut graph| {
                if !graph.restart_given {
                    graph.restart = self.config.restart_default.clone();
                }
                let latest =
                    latest.filter(|c| c.snapshots.len() == ExecutionPlan::new(&graph).subtasks.len());
                let prior = Some((record.attempt, record.failures));
                let master = JobMaster::recover(record.job, graph, now, latest, prior);
                self.insert_job(now, master, &record.job_file, record.parallelism);
            });
            results.push((record.job, result));
        }
        results
    }

    /// Submits a job file's text to resume from `savepoint`: its first attempt restores every
    /// subtask from the savepoint's snapshots and its sources replay from the positions recorded
    /// there. The job's plan must have the savepoint's shape; the error says where it differs.
    /// The savepoint is recorded as the job's first checkpoint, so a JobManager restarted before
    /// the job completes one of its own resumes it from the savepoint too.
    pub fn submit_from_savepoint(
        &mut self,
        now: Instant,
        job_file: &str,
        parallelism: Option<u16>,
        savepoint: Savepoint,
    ) -> Result<JobId, String> {
        self.advance(now);
        let mut graph = parse_job(job_file, &ParseOptions { parallelism }).map_err(|e| e.to_string())?;
        savepoint.check_plan(&graph).map_err(|e| format!("the job cannot resume from the savepoint: {e}"))?;
        if !graph.restart_given {
            graph.restart = self.config.restart_default.clone();
        }
        let retained = graph.checkpoints.map_or(1, |c| c.retained);
        let job = JobId(self.next_job);
        self.next_job += 1;
        let from = savepoint.into_checkpoint(now);
        let master = JobMaster::recover(job, graph, now, Some(from.clone()), None);
        self.insert_job(now, master, job_file, parallelism);
        self.outbox.push_back(Output::PersistCheckpoint { job, checkpoint: from, retained });
        Ok(job)
    }

    /// Asks a running job for a savepoint into `directory` (absolute, on this JobManager's
    /// machine); with `stop`, the job is stopped once it is written (its output up to the
    /// savepoint committed, nothing after it). Returns the request's number, for
    /// [`JobManager::job`]'s `savepoints`.
    pub fn savepoint(
        &mut self,
        now: Instant,
        job: JobId,
        directory: String,
        stop: bool,
    ) -> Result<u64, SavepointRefused> {
        self.advance(now);
        let entry = self.jobs.get_mut(&job).ok_or(SavepointRefused::UnknownJob(job))?;
        if entry.stopping {
            let reason = "it is being stopped".to_owned();
            return Err(SavepointRefused::Refused { job, reason });
        }
        entry.master.request_savepoint(now).map_err(|reason| SavepointRefused::Refused { job, reason })?;
        let request = entry.savepoints.back().map_or(1, |s| s.request + 1);
        if entry.savepoints.len() == SAVEPOINTS_KEPT_MAX {
            entry.savepoints.pop_front();
        }
        entry.savepoints.push_back(SavepointStatus {
            request,
            directory,
            stop,
            state: SavepointState::Triggered,
        });
        self.route(now);
        Ok(request)
    }

    /// The driver wrote savepoint `request`'s file at the path given (`Ok`), or could not. A
    /// savepoint that stops its job stops it now.
    pub fn handle_savepoint_written(
        &mut self,
        now: Instant,
        job: JobId,
        request: u64,
        written: Result<String, String>,
    ) {
        self.advance(now);
        let Some(entry) = self.jobs.get_mut(&job) else { return };
        let Some(savepoint) = entry.savepoints.iter_mut().find(|s| s.request == request) else { return };
        let SavepointState::Writing { checkpoint, bytes } = savepoint.state else { return };
        match written {
            Ok(path) => {
                if savepoint.stop {
                    entry.end_cause = Some(format!("stopped with a savepoint at {path}"));
                    entry.master.handle_cancel(now);
                }
                savepoint.state = SavepointState::Completed { checkpoint, path, bytes };
            }
            Err(cause) => savepoint.state = SavepointState::Failed { cause },
        }
        self.route(now);
    }

    /// Asks a running job to stop; its subtasks are canceled.
    pub fn cancel(&mut self, now: Instant, job: JobId) -> Result<(), UnknownJob> {
        self.advance(now);
        let entry = self.jobs.get_mut(&job).ok_or(UnknownJob(job))?;
        entry.master.handle_cancel(now);
        self.resources.handle_job_cancelled(now, job);
        self.route(now);
        Ok(())
    }

    /// Stops a running job, draining (Flink's `stop`): the sources of its current attempt end their
    /// input, and the job then finishes as a bounded job does. An attempt deployed later (after a
    /// failure) is stopped as soon as it is deployed.
    pub fn stop(&mut self, now: Instant, job: JobId) -> Result<(), UnknownJob> {
        self.advance(now);
        let entry = self.jobs.get_mut(&job).ok_or(UnknownJob(job))?;
        entry.stopping = true;
        let status = entry.master.status();
        let hosts: BTreeSet<TaskManagerId> =
            status.subtasks.iter().filter_map(|s| s.slot.map(|slot| slot.task_manager)).collect();
        for tm in hosts {
            let message = ToTaskManager::StopSources { job, attempt: status.attempt };
            self.outbox.push_back(Output::ToTaskManager { tm, message });
        }
        self.route(now);
        Ok(())
    }

    /// A message from TaskManager `from` (for a registration, the id it registers as).
    pub fn handle_task_manager_message(&mut self, now: Instant, from: TaskManagerId, message: ToJobManager) {
        self.advance(now);
        match message {
            ToJobManager::Register(registration) => {
                if registration.id != from {
                    self.outbox.push_back(Output::RefuseRegistration {
                        tm: from,
                        address: registration.address,
                        reason: format!("registered as {} on a connection of {from}", registration.id),
                    });
                } else {
                    self.resources.handle_registration(now, registration);
                }
            }
            // A heartbeat from a TaskManager the ResourceManager does not know is dropped: the
            // connection of a dead TaskManager is closed by `TaskManagerDead`.
            ToJobManager::Heartbeat => {
                if self.resources.handle_heartbeat(now, from).is_ok() {
                    let message = ToTaskManager::HeartbeatReply;
                    self.outbox.push_back(Output::ToTaskManager { tm: from, message });
                }
            }
            ToJobManager::TaskState(report) => self.task_state(now, report),
            ToJobManager::Metrics(reports) => {
                for report in reports {
                    self.running_metrics(from, report);
                }
            }
            ToJobManager::CheckpointState(chunk) => {
                if self.is_host(chunk.job, chunk.subtask, from) {
                    if let Some(entry) = self.jobs.get_mut(&chunk.job) {
                        entry.master.handle_checkpoint_chunk(now, &chunk);
                    }
                }
            }
            ToJobManager::CheckpointDeclined { job, attempt, subtask, checkpoint, reason } => {
                if self.is_host(job, subtask, from) {
                    if let Some(entry) = self.jobs.get_mut(&job) {
                        entry.master.handle_checkpoint_declined(now, attempt, subtask, checkpoint, &reason);
                    }
                }
            }
        }
        self.route(now);
    }

    /// Whether TaskManager `tm` runs `subtask` of the job's current attempt: snapshots are
    /// accepted only from there.
    fn is_host(&self, job: JobId, subtask: u32, tm: TaskManagerId) -> bool {
        let Some(entry) = self.jobs.get(&job) else { return false };
        let status = entry.master.status();
        status.subtasks.get(subtask as usize).and_then(|s| s.slot).is_some_and(|s| s.task_manager == tm)
    }

    /// The driver recorded the job's checkpoint durably (`Ok`) or could not.
    pub fn handle_checkpoint_persisted(
        &mut self,
        now: Instant,
        job: JobId,
        checkpoint: CheckpointId,
        persisted: Result<Arc<CompletedCheckpoint>, String>,
    ) {
        self.advance(now);
        if let Some(entry) = self.jobs.get_mut(&job) {
            entry.master.handle_checkpoint_persisted(now, checkpoint, persisted);
        }
        self.route(now);
    }

    fn task_state(&mut self, now: Instant, report: TaskStateReport) {
        let Some(entry) = self.jobs.get_mut(&report.job) else { return };
        entry.record_metrics(report.attempt, report.subtask, report.metrics);
        entry.master.handle_task_state(
            now,
            report.attempt,
            SubtaskId(report.subtask),
            report.state,
            report.error,
        );
    }

    /// Live counters of a running subtask: kept when they come from the TaskManager the subtask
    /// runs on, for the current attempt (a late report of an old attempt is ignored).
    fn running_metrics(&mut self, from: TaskManagerId, report: SubtaskMetrics) {
        let Some(entry) = self.jobs.get_mut(&report.job) else { return };
        let status = entry.master.status();
        let host = status.subtasks.get(report.subtask as usize).and_then(|s| s.slot).map(|s| s.task_manager);
        if report.attempt != status.attempt || host != Some(from) || report.metrics.is_empty() {
            return;
        }
        entry.record_metrics(report.attempt, report.subtask, report.metrics);
    }

    /// The connection to TaskManager `tm` closed: it is dead for the cluster.
    pub fn handle_task_manager_disconnected(&mut self, now: Instant, tm: TaskManagerId) {
        self.advance(now);
        // An unknown TaskManager's connection closing changes nothing.
        let _ = self.resources.handle_disconnect(now, tm);
        self.route(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let masters = self.jobs.values().filter_map(|e| e.master.poll_timeout());
        masters.chain(self.resources.poll_timeout()).min()
    }

    /// Moves effects between the roles until none is left, queueing what leaves the process.
    fn route(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(out) = self.resources.poll_output() {
                moved = true;
                self.route_resource_output(now, out);
            }
            let jobs: Vec<JobId> = self.jobs.keys().copied().collect();
            for job in jobs {
                while let Some(out) = self.jobs.get_mut(&job).and_then(|e| e.master.poll_output()) {
                    moved = true;
                    self.route_job_output(now, job, out);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn route_resource_output(&mut self, now: Instant, out: resource_manager::Output) {
        use resource_manager::Output as Rm;
        match out {
            Rm::Registered { tm, heartbeat_interval } => {
                self.outbox.push_back(Output::ToTaskManager {
                    tm,
                    message: ToTaskManager::Registered {
                        heartbeat_interval_ms: u64::try_from(heartbeat_interval.as_millis())
                            .unwrap_or(u64::MAX),
                    },
                });
                // A TaskManager registering again may hold the staged output of a job that ended
                // while it could not hear it: the outcomes of the recently ended jobs go again.
                for ended in &self.finished {
                    let (job, attempt) = (ended.status.job, ended.status.attempt);
                    let succeeded = ended.status.state == JobState::Finished;
                    let message = ToTaskManager::JobEnded { job, attempt, succeeded };
                    self.outbox.push_back(Output::ToTaskManager { tm, message });
                }
            }
            Rm::RegistrationRefused { tm, address, reason } => {
                self.outbox.push_back(Output::RefuseRegistration { tm, address, reason: reason.to_string() })
            }
            Rm::SlotsGranted { request, job, attempt, slots } => match self.jobs.get_mut(&job) {
                Some(entry) => match entry.requests.remove(&request) {
                    Some((_, placement, _)) => {
                        entry.master.handle_slots_granted_for(now, attempt, &placement, slots)
                    }
                    None => entry.master.handle_slots_granted(now, attempt, slots),
                },
                // The job ended while its request waited: the slots go straight back.
                None => {
                    let _released = self.resources.handle_release(now, job, attempt);
                }
            },
            Rm::SlotsLost { job, attempt, slots } => {
                if let Some(entry) = self.jobs.get_mut(&job) {
                    entry.master.handle_slots_lost(now, attempt, slots);
                }
            }
            Rm::TaskManagerDead { id } => self.outbox.push_back(Output::TaskManagerDead { tm: id }),
        }
    }

    fn route_job_output(&mut self, now: Instant, job: JobId, out: job_master::Output) {
        use job_master::Output as Jm;
        match out {
            Jm::RequestSlots { attempt, count, placement } => {
                let entry = self.jobs.get_mut(&job).expect("the job of a live JobMaster");
                if entry.recorded_attempt.is_none_or(|a| a < attempt) {
                    entry.recorded_attempt = Some(attempt);
                    let (attempt, failures) = entry.master.attempt_and_failures();
                    let record = JobRecord {
                        job,
                        job_file: entry.job_file.clone(),
                        parallelism: entry.parallelism,
                        attempt,
                        failures,
                    };
                    self.outbox.push_back(Output::PersistJob(record));
                }
                let request = SlotRequest { job, attempt, count, placement: placement.clone() };
                let slots = count;
                match self.resources.handle_slot_request(now, request) {
                    Ok(id) => {
                        let entry = self.jobs.get_mut(&job).expect("the job of a live JobMaster");
                        entry.requests.insert(id, (attempt, placement, slots));
                    }
                    Err(e) => {
                        // A request the cluster can never serve (too large, too many waiting): the
                        // job cannot run, so it is canceled with the reason kept in the history.
                        let entry = self.jobs.get_mut(&job).expect("the job of a live JobMaster");
                        entry.end_cause = Some(format!("slot request refused: {e}"));
                        entry.master.handle_cancel(now);
                    }
                }
            }
            Jm::Deploy { attempt, subtask, slot, restore_from } => {
                let entry = &self.jobs[&job];
                let locations = self.locations(&entry.master);
                if let (Some(checkpoint), Some(point)) = (restore_from, entry.master.restore_point()) {
                    assert_eq!(
                        point.id, checkpoint,
                        "a deployment restores from its attempt's restore point"
                    );
                    let snapshot = &point.snapshots[subtask.index()];
                    for chunk in SnapshotChunk::split(job, attempt, subtask.0, checkpoint, snapshot) {
                        let message = ToTaskManager::RestoreState(chunk);
                        self.outbox.push_back(Output::ToTaskManager { tm: slot.task_manager, message });
                    }
                }
                let deployment = Deployment {
                    job,
                    attempt,
                    subtask: subtask.0,
                    slot: slot.slot,
                    job_file: entry.job_file.clone(),
                    parallelism: entry.parallelism,
                    locations,
                    restore_from,
                };
                self.outbox.push_back(Output::ToTaskManager {
                    tm: slot.task_manager,
                    message: ToTaskManager::Deploy(deployment),
                });
                if entry.stopping {
                    let message = ToTaskManager::StopSources { job, attempt };
                    self.outbox.push_back(Output::ToTaskManager { tm: slot.task_manager, message });
                }
            }
            Jm::CancelAttempt { attempt } => {
                for tm in self.hosts(job) {
                    self.outbox.push_back(Output::ToTaskManager {
                        tm,
                        message: ToTaskManager::CancelAttempt { job, attempt },
                    });
                }
            }
            Jm::TriggerCheckpoint { attempt, checkpoint } => {
                for tm in self.hosts(job) {
                    let message = ToTaskManager::TriggerCheckpoint { job, attempt, checkpoint };
                    self.outbox.push_back(Output::ToTaskManager { tm, message });
                }
            }
            Jm::CommitCheckpoint { attempt, checkpoint } => {
                // Every registered TaskManager: one that ran the attempt's sinks may have lost
                // them since, but still hold their pre-committed output.
                for tm in self.resources.task_manager_ids() {
                    let message = ToTaskManager::CheckpointComplete { job, attempt, checkpoint };
                    self.outbox.push_back(Output::ToTaskManager { tm, message });
                }
            }
            Jm::PersistCheckpoint(checkpoint) => {
                let retained = self.jobs[&job].master.graph().checkpoints.map_or(1, |c| c.retained);
                self.outbox.push_back(Output::PersistCheckpoint { job, checkpoint, retained });
            }
            Jm::CheckpointAborted { checkpoint, reason } => {
                self.outbox.push_back(Output::CheckpointAborted { job, checkpoint, reason });
            }
            Jm::ReleaseSlots { attempt } => {
                // Releasing drops the attempt's waiting requests too.
                if let Some(entry) = self.jobs.get_mut(&job) {
                    entry.requests.retain(|_, (a, _, _)| *a != attempt);
                }
                let _released = self.resources.handle_release(now, job, attempt);
            }
            Jm::SavepointCompleted(checkpoint) => {
                let entry = self.jobs.get_mut(&job).expect("the job of a live JobMaster");
                let file_name = format!("savepoint-{job}-{}.rvsp", checkpoint.id.0);
                // The coordinator takes a savepoint only for a request, which is this one.
                let bytes = encode_savepoint(entry.master.graph(), &entry.job_file, &checkpoint);
                let Some(savepoint) = entry.triggered_savepoint() else { return };
                savepoint.state =
                    SavepointState::Writing { checkpoint: checkpoint.id, bytes: bytes.len() as u64 };
                let (request, directory) = (savepoint.request, savepoint.directory.clone());
                self.outbox.push_back(Output::WriteSavepoint { job, request, directory, file_name, bytes });
            }
            Jm::SavepointFailed { reason } => {
                let entry = self.jobs.get_mut(&job).expect("the job of a live JobMaster");
                if let Some(savepoint) = entry.triggered_savepoint() {
                    savepoint.state = SavepointState::Failed { cause: reason };
                }
            }
            Jm::JobFinished => self.end_job(job, JobState::Finished, None),
            Jm::JobFailed { cause } => self.end_job(job, JobState::Failed, Some(cause)),
            Jm::JobCanceled => {
                let cause = self.jobs.get_mut(&job).and_then(|e| e.end_cause.take());
                self.end_job(job, JobState::Canceled, cause)
            }
        }
    }

    /// The TaskManagers the job's current attempt has subtasks on.
    fn hosts(&self, job: JobId) -> BTreeSet<TaskManagerId> {
        (self.jobs[&job].master.status().subtasks.iter())
            .filter_map(|s| s.slot.map(|slot| slot.task_manager))
            .collect()
    }

    /// Where every subtask of the job's current attempt runs (those with a slot).
    fn locations(&self, master: &JobMaster) -> Vec<SubtaskLocation> {
        master
            .status()
            .subtasks
            .iter()
            .filter_map(|s| {
                let slot = s.slot?;
                let tm = self.resources.task_manager(slot.task_manager)?;
                Some(SubtaskLocation { subtask: s.id.0, task_manager: tm.id, address: tm.address })
            })
            .collect()
    }

    fn end_job(&mut self, job: JobId, state: JobState, cause: Option<String>) {
        let mut entry = self.jobs.remove(&job).expect("a job ends once");
        for savepoint in &mut entry.savepoints {
            if matches!(savepoint.state, SavepointState::Triggered | SavepointState::Writing { .. }) {
                let cause = format!("the job ended ({}) before the savepoint was written", state.name());
                savepoint.state = SavepointState::Failed { cause };
            }
        }
        let overview = overview(&entry);
        self.outbox.push_back(Output::PersistJobResult(Box::new(overview.clone())));
        // Every registered TaskManager hears the outcome, not only the current attempt's hosts:
        // one that ran an earlier attempt may still hold that attempt's staged output.
        let (attempt, succeeded) = (overview.status.attempt, state == JobState::Finished);
        for tm in self.resources.task_manager_ids() {
            let message = ToTaskManager::JobEnded { job, attempt, succeeded };
            self.outbox.push_back(Output::ToTaskManager { tm, message });
        }
        self.remember_ended(overview);
        self.outbox.push_back(Output::JobEnded { job, state, cause });
    }

    /// Keeps an ended job's overview in the bounded history.
    fn remember_ended(&mut self, overview: JobOverview) {
        if self.finished.len() == self.config.finished_jobs_max {
            self.finished.pop_front();
        }
        self.finished.push_back(overview);
    }

    /// Every job, running ones first, then the history, each in id order.
    pub fn jobs(&self) -> Vec<JobOverview> {
        let mut out: Vec<JobOverview> = self.jobs.values().map(overview).collect();
        let mut ended: Vec<JobOverview> = self.finished.iter().cloned().collect();
        ended.sort_by_key(|o| o.status.job);
        out.extend(ended);
        out
    }

    pub fn job(&self, job: JobId) -> Result<JobOverview, UnknownJob> {
        if let Some(entry) = self.jobs.get(&job) {
            return Ok(overview(entry));
        }
        self.finished.iter().find(|o| o.status.job == job).cloned().ok_or(UnknownJob(job))
    }

    pub fn task_managers(&self) -> Vec<TaskManagerStatus> {
        self.resources.task_managers()
    }

    pub fn assert_invariants(&self) {
        self.resources.assert_invariants();
        for (id, entry) in &self.jobs {
            assert_eq!(entry.master.job(), *id);
            assert!(!entry.master.state().is_final(), "an ended job leaves the running set");
            entry.master.assert_invariants();
        }
        assert!(self.finished.len() <= self.config.finished_jobs_max, "the history is bounded");
        assert!(self.finished.iter().all(|o| o.status.state.is_final()));
    }
}

fn overview(entry: &RunningJob) -> JobOverview {
    let graph = entry.master.graph();
    let status = entry.master.status();
    let mut vertices: Vec<(String, OperatorMetrics)> =
        graph.vertices().iter().map(|v| (v.name.clone(), OperatorMetrics::default())).collect();
    // The counters are the current attempt's: a restarted job shows zeros until its new
    // attempt's first report, never the failed attempt's counts.
    let current = (entry.metrics_attempt == status.attempt).then_some(&entry.metrics);
    for reports in current.into_iter().flat_map(|m| m.values()) {
        for (vertex, m) in reports {
            if let Some((_, total)) = vertices.get_mut(*vertex as usize) {
                total.add(m);
            }
        }
    }
    let waiting_for = entry
        .requests
        .values()
        .filter(|(attempt, _, _)| *attempt == status.attempt)
        .map(|(_, placement, slots)| SlotWait { placement: placement.clone(), slots: *slots })
        .collect();
    let savepoints = entry.savepoints.iter().cloned().collect();
    JobOverview { status, submitted_at: entry.submitted_at, vertices, waiting_for, savepoints }
}

#[cfg(test)]
#[path = "job_manager_tests.rs"]
mod tests;
