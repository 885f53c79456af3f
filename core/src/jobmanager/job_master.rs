//! The JobMaster: runs one job. It expands the job graph into subtasks, asks for a slot per
//! subtask, deploys them, tracks every subtask's execution state, and restarts a failed attempt
//! with the job's restart strategy.
//!
//! # Model
//!
//! The job runs as a sequence of *attempts*, numbered from 0. An attempt holds one execution per
//! subtask of the [`ExecutionPlan`], each moving through the [`ExecutionState`]s. An attempt
//! starts with every subtask Created and asks for slots ([`Output::RequestSlots`], one request per
//! *slot group*: the subtasks that share a placement). A grant gives each subtask of its group a
//! slot, in subtask order (Scheduled); once every group is granted, every subtask is deployed
//! ([`Output::Deploy`], Deploying). TaskManagers then report Running, Finished, Canceled or Failed.
//!
//! * Every subtask Finished: the job is Finished.
//! * A subtask Failed (reported, or its TaskManager lost): the attempt fails. Its TaskManagers are
//!   told to cancel it ([`Output::CancelAttempt`]), its live subtasks become Canceling, and the
//!   restart strategy decides. With a delay, the restart timer is set; when it fires, the old
//!   attempt's slots are released and the next attempt starts from the beginning (there are no
//!   checkpoints yet). Without one, the job is Failed at once: it does not wait for the
//!   TaskManagers to confirm the cancellation, because nothing it would learn changes the outcome,
//!   and the user should hear the cause without delay.
//! * A user cancel: the attempt is told to cancel, and the job is Canceled when every subtask has
//!   reached a final state.
//!
//! Neither a restart nor a failed job waits for cancellations to be confirmed before releasing
//! slots: the `CancelAttempt` goes out before the `ReleaseSlots`, so a TaskManager hears it before
//! any deployment into the freed slots, and stops the old subtasks first.
//!
//! When a job ends, its attempt's slots are released ([`Output::ReleaseSlots`]) and then the end
//! is announced ([`Output::JobFinished`], [`Output::JobFailed`] or [`Output::JobCanceled`]);
//! nothing but answers to stale grants follows.
//!
//! # Contract
//!
//! Call a `handle_*` method with the current time (never earlier than a previous call's), drain
//! [`JobMaster::poll_output`], then arm a timer for [`JobMaster::poll_timeout`] and call
//! [`JobMaster::handle_timeout`] when it fires. Every `handle_*` first fires a restart that is due
//! at `now`, so the outcome never depends on whether the driver called `handle_timeout` first.
//!
//! Reports from TaskManagers are untrusted: one about another attempt (stale), an unknown subtask
//! or slot, or a transition [`ExecutionState::can_become`] forbids is ignored and counted
//! ([`JobMaster::counters`]), never applied and never a panic. TaskManagers report only what they
//! can know: Running, Finished, Canceled or Failed, about a subtask deployed to them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::dataflow::plan::{ExecutionPlan, SubtaskId, SubtaskPlan};
use crate::graph::JobGraph;
use crate::ids::{AttemptId, CheckpointId, JobId, SlotId};
use crate::jobmanager::checkpoint_coordinator::{CheckpointCoordinator, CompletedCheckpoint, Step};
use crate::jobmanager::execution_state::ExecutionState::{self, *};
use crate::limits::{FAILURE_CAUSE_BYTES_MAX, JOB_FAILURES_KEPT_MAX, SLOTS_PER_REQUEST_MAX};
use crate::protocol::messages::SnapshotChunk;
use crate::time::Instant;

#[path = "job_master_types.rs"]
mod types;
pub use types::*;

/// Where the job is; [`JobState`] is derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The current attempt waits for slots, is deployed, or runs.
    Live,
    /// The current attempt failed; the next starts at `at`.
    AwaitingRestart {
        at: Instant,
    },
    Canceling,
    Finished,
    Failed,
    Canceled,
}

impl Phase {
    fn is_final(self) -> bool {
        matches!(self, Phase::Finished | Phase::Failed | Phase::Canceled)
    }
}

/// Subtasks that share a placement and so one slot request (at most `SLOTS_PER_REQUEST_MAX`).
#[derive(Clone, Debug)]
struct SlotGroup {
    placement: Placement,
    /// In subtask order.
    subtasks: Vec<SubtaskId>,
}

#[derive(Clone, Copy, Debug)]
struct Execution {
    state: ExecutionState,
    slot: Option<SlotId>,
}

/// The JobMaster role. See the module documentation for its model and contract.
#[derive(Debug)]
pub struct JobMaster {
    job: JobId,
    graph: JobGraph,
    plan: ExecutionPlan,
    /// Per chain: its vertices' names joined by ` -> `.
    chain_names: Vec<String>,
    groups: Vec<SlotGroup>,
    /// The latest time given to a `handle_*` call.
    now: Instant,
    phase: Phase,
    attempt: AttemptId,
    /// The current attempt's executions, indexed by `SubtaskId`.
    executions: Vec<Execution>,
    /// Which subtask of the current attempt was given each slot.
    slot_owners: BTreeMap<SlotId, SubtaskId>,
    /// Per slot group: whether the current attempt's request was granted.
    granted: Vec<bool>,
    /// Whether the current attempt was deployed (every group granted).
    deployed: bool,
    cancel_sent: bool,
    released: bool,
    failures: u32,
    recent_failures: VecDeque<Failure>,
    started_at: Instant,
    attempt_started_at: Instant,
    ended_at: Option<Instant>,
    outputs: VecDeque<Output>,
    counters: JobMasterCounters,
    /// The checkpoint coordinator, for a job with `[job.checkpoints]`.
    checkpoints: Option<CheckpointCoordinator>,
    /// The checkpoint the current attempt restores from.
    restore: Option<Arc<CompletedCheckpoint>>,
}

impl JobMaster {
    /// Starts `job`: attempt 0 with every subtask Created, asking for their slots.
    pub fn new(job: JobId, graph: JobGraph, now: Instant) -> JobMaster {
        JobMaster::recover(job, graph, now, None, None)
    }

    /// Starts `job` from a completed checkpoint (recovered by a restarted JobManager, or a
    /// savepoint): its first attempt restores every subtask from it, and checkpoint ids continue
    /// after it. A job a restarted JobManager takes over (`prior`: the last attempt the previous
    /// JobManager started, and the failures it had counted) continues with the next attempt, and
    /// the loss of its JobManager counts as one more failure: attempt numbers never repeat, so
    /// TaskManagers never mistake the new attempt's data for the old one's.
    pub fn recover(
        job: JobId,
        graph: JobGraph,
        now: Instant,
        from: Option<Arc<CompletedCheckpoint>>,
        prior: Option<(AttemptId, u32)>,
    ) -> JobMaster {
        let plan = ExecutionPlan::new(&graph);
        assert!(!plan.subtasks.is_empty(), "a valid job graph has a source and a sink");
        let chain_names = plan.chain_names(&graph);
        let groups = slot_groups(&graph, &plan);
        let subtasks = plan.subtasks.len();
        if let Some(c) = &from {
            assert_eq!(c.snapshots.len(), subtasks, "a checkpoint of this job's plan");
        }
        // Every job has a coordinator: one without `[job.checkpoints]` takes savepoints only.
        let checkpoints = Some(CheckpointCoordinator::new(graph.checkpoints, subtasks, from.clone()));
        let mut jm = JobMaster {
            job,
            graph,
            plan,
            chain_names,
            groups,
            now,
            phase: Phase::Live,
            attempt: AttemptId(0),
            executions: Vec::new(),
            slot_owners: BTreeMap::new(),
            granted: Vec::new(),
            deployed: false,
            cancel_sent: false,
            released: false,
            failures: 0,
            recent_failures: VecDeque::new(),
            started_at: now,
            attempt_started_at: now,
            ended_at: None,
            outputs: VecDeque::new(),
            counters: JobMasterCounters::default(),
            checkpoints,
            restore: from,
        };
        if let Some((last, failures)) = prior {
            jm.attempt = AttemptId(last.0.saturating_add(1));
            jm.counters.restarts = u64::from(jm.attempt.0);
            jm.failures = failures.saturating_add(1).max(jm.attempt.0);
            let cause = match &jm.restore {
                Some(c) => format!("the JobManager restarted; the job resumes from checkpoint {}", c.id.0),
                None => "the JobManager restarted; the job starts again from the beginning".to_owned(),
            };
            let subtask = SubtaskId(0);
            jm.recent_failures.push_back(Failure { attempt: last, subtask, at: now, cause });
        }
        jm.start_attempt(now);
        jm
    }

    /// The current attempt and the failures counted so far: what a JobManager records, so that
    /// one restarted after it continues the numbering.
    pub fn attempt_and_failures(&self) -> (AttemptId, u32) {
        (self.attempt, self.failures)
    }

    /// The checkpoint the current attempt's subtasks restore from, if any.
    pub fn restore_point(&self) -> Option<&Arc<CompletedCheckpoint>> {
        self.restore.as_ref()
    }

    /// The latest completed checkpoint.
    pub fn latest_checkpoint(&self) -> Option<&Arc<CompletedCheckpoint>> {
        self.checkpoints.as_ref().and_then(|c| c.latest())
    }

    /// Asks for a savepoint: a checkpoint taken as soon as the current (or, while the job
    /// restarts, the next) attempt runs, reported with [`Output::SavepointCompleted`] or
    /// [`Output::SavepointFailed`]. Refused for a job that is ending or ended, and while another
    /// savepoint is in progress.
    pub fn request_savepoint(&mut self, now: Instant) -> Result<(), String> {
        self.advance_to(now);
        if !matches!(self.phase, Phase::Live | Phase::AwaitingRestart { .. }) {
            return Err(format!("the job is {}", self.state().name()));
        }
        let mut result = Ok(());
        self.coordinate(now, |c, _| result = c.request_savepoint(now).map_err(str::to_owned));
        result
    }

    /// A chunk of a subtask's snapshot for a checkpoint.
    pub fn handle_checkpoint_chunk(&mut self, now: Instant, chunk: &SnapshotChunk) {
        self.coordinate(now, |c, steps| c.handle_chunk(now, chunk, steps));
    }

    /// Subtask `subtask` declined checkpoint `checkpoint`.
    pub fn handle_checkpoint_declined(
        &mut self,
        now: Instant,
        attempt: AttemptId,
        subtask: u32,
        checkpoint: CheckpointId,
        reason: &str,
    ) {
        self.coordinate(now, |c, steps| c.handle_declined(now, attempt, subtask, checkpoint, reason, steps));
    }

    /// The driver recorded the checkpoint of [`Output::PersistCheckpoint`] durably, or could not.
    pub fn handle_checkpoint_persisted(
        &mut self,
        now: Instant,
        checkpoint: CheckpointId,
        persisted: Result<Arc<CompletedCheckpoint>, String>,
    ) {
        self.coordinate(now, |c, steps| c.handle_persisted(now, checkpoint, persisted, steps));
    }

    /// Moves time to `now`, gives an input to the coordinator (if the job takes checkpoints),
    /// carries out its steps, and drives it on. A restart that waited for a durable write may go
    /// once the write is acknowledged, so time is applied again after the input.
    fn coordinate(&mut self, now: Instant, input: impl FnOnce(&mut CheckpointCoordinator, &mut Vec<Step>)) {
        self.advance_to(now);
        let mut steps = Vec::new();
        if let Some(c) = &mut self.checkpoints {
            input(c, &mut steps);
        }
        self.apply_steps(now, steps);
        self.advance_to(now);
        self.drive_checkpoints(now);
    }

    /// Tells the coordinator whether the attempt runs, and fires what is due.
    fn drive_checkpoints(&mut self, now: Instant) {
        let running =
            self.phase == Phase::Live && self.deployed && self.executions.iter().all(|e| e.state == Running);
        let mut steps = Vec::new();
        if let Some(c) = &mut self.checkpoints {
            c.set_running(now, self.attempt, running, &mut steps);
            if running || c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now, self.attempt, &mut steps);
            }
        }
        self.apply_steps(now, steps);
    }

    fn apply_steps(&mut self, now: Instant, steps: Vec<Step>) {
        for step in steps {
            self.outputs.push_back(match step {
                Step::FailAttempt { attempt, subtasks, cause } => {
                    if attempt == self.attempt && self.phase == Phase::Live {
                        self.checkpoints_failed_attempt(now, &subtasks, cause);
                    }
                    continue;
                }
                Step::Trigger { attempt, checkpoint } => Output::TriggerCheckpoint { attempt, checkpoint },
                Step::Persist(completed) => Output::PersistCheckpoint(completed),
                Step::Commit { attempt, checkpoint } => Output::CommitCheckpoint { attempt, checkpoint },
                Step::Aborted { checkpoint, reason } => Output::CheckpointAborted { checkpoint, reason },
                Step::SavepointCompleted(completed) => Output::SavepointCompleted(completed),
                Step::SavepointFailed { reason } => Output::SavepointFailed { reason },
            });
        }
    }

    /// Whether a checkpoint is being made durable: a restart waits for it, so that the restore
    /// point is never a checkpoint that becomes superseded the moment it is chosen.
    fn persisting(&self) -> bool {
        self.checkpoints.as_ref().is_some_and(CheckpointCoordinator::persisting)
    }

    pub fn job(&self) -> JobId {
        self.job
    }

    pub fn graph(&self) -> &JobGraph {
        &self.graph
    }

    pub fn plan(&self) -> &ExecutionPlan {
        &self.plan
    }

    pub fn counters(&self) -> &JobMasterCounters {
        &self.counters
    }

    // ---------------------------------------------------------------- inputs

    /// The ResourceManager granted `slots` to `attempt`. For the current attempt they go to the
    /// first waiting slot group of that size, in subtask order; when every group has its slots,
    /// every subtask is deployed. A grant for another attempt, or for one that ended, is released
    /// again. A grant that fits no waiting group (a duplicate, the wrong size, a slot given twice)
    /// is counted and left to go back with the attempt's other slots.
    pub fn handle_slots_granted(&mut self, now: Instant, attempt: AttemptId, slots: Vec<SlotId>) {
        self.grant(now, attempt, None, slots);
    }

    /// Like [`JobMaster::handle_slots_granted`], for the request made with `placement`: the slots
    /// go to a waiting group of that placement (groups of different placements may have one size).
    pub fn handle_slots_granted_for(
        &mut self,
        now: Instant,
        attempt: AttemptId,
        placement: &Placement,
        slots: Vec<SlotId>,
    ) {
        self.grant(now, attempt, Some(placement), slots);
    }

    fn grant(&mut self, now: Instant, attempt: AttemptId, placement: Option<&Placement>, slots: Vec<SlotId>) {
        self.advance_to(now);
        if attempt != self.attempt || self.released {
            self.counters.grants_stale += 1;
            self.outputs.push_back(Output::ReleaseSlots { attempt });
            return;
        }
        let Some(group) = self.waiting_group_for(&slots, placement) else {
            self.counters.grants_unused += 1;
            return;
        };
        for (&subtask, &slot) in self.groups[group].subtasks.iter().zip(&slots) {
            let execution = &mut self.executions[subtask.index()];
            assert!(execution.state.can_become(Scheduled), "a waiting group's subtasks are Created");
            *execution = Execution { state: Scheduled, slot: Some(slot) };
            assert!(self.slot_owners.insert(slot, subtask).is_none(), "the grant's slots were checked free");
        }
        self.granted[group] = true;
        if self.granted.iter().all(|&g| g) {
            self.deploy();
        }
        self.drive_checkpoints(now);
    }

    /// A TaskManager reports that `subtask` of `attempt` reached `state`, with the error that
    /// failed it.
    pub fn handle_task_state(
        &mut self,
        now: Instant,
        attempt: AttemptId,
        subtask: SubtaskId,
        state: ExecutionState,
        error: Option<String>,
    ) {
        self.apply_task_state(now, attempt, subtask, state, error);
        self.drive_checkpoints(now);
    }

    // Applies it; the caller then drives the checkpoints.
    fn apply_task_state(
        &mut self,
        now: Instant,
        attempt: AttemptId,
        subtask: SubtaskId,
        state: ExecutionState,
        error: Option<String>,
    ) {
        self.advance_to(now);
        if attempt != self.attempt {
            self.counters.reports_stale += 1;
            return;
        }
        let Some(execution) = self.executions.get_mut(subtask.index()) else {
            self.counters.reports_unknown_subtask += 1;
            return;
        };
        if !reportable(execution.state, state) {
            self.counters.reports_illegal += 1;
            return;
        }
        execution.state = state;
        self.counters.reports_applied += 1;
        match state {
            Finished if self.phase == Phase::Live && self.executions.iter().all(|e| e.state == Finished) => {
                self.end(now, Phase::Finished, Output::JobFinished);
            }
            Failed => {
                let detail = error.unwrap_or_else(|| "no cause reported".to_owned());
                let cause = self.cause(subtask, &detail);
                self.subtask_failed(now, subtask, cause);
            }
            Canceled => self.settle_cancel(now),
            _ => {}
        }
    }

    /// The ResourceManager reports that `attempt` lost `slots` with their TaskManager: the
    /// subtasks deployed there failed, and so the attempt.
    pub fn handle_slots_lost(&mut self, now: Instant, attempt: AttemptId, slots: Vec<SlotId>) {
        self.apply_slots_lost(now, attempt, slots);
        self.drive_checkpoints(now);
    }

    // Applies it; the caller then drives the checkpoints.
    fn apply_slots_lost(&mut self, now: Instant, attempt: AttemptId, slots: Vec<SlotId>) {
        self.advance_to(now);
        if attempt != self.attempt || self.released {
            self.counters.losses_stale += 1;
            return;
        }
        let mut first_failure = None;
        for slot in slots {
            let Some(&subtask) = self.slot_owners.get(&slot) else {
                self.counters.slots_lost_unknown += 1;
                continue;
            };
            let execution = &mut self.executions[subtask.index()];
            match execution.state {
                Deploying | Running | Canceling => execution.state = Failed,
                // Not deployed yet: nothing ran there, but the attempt cannot run without the slot.
                Scheduled => {}
                // It ended before its TaskManager did.
                Finished | Canceled | Failed => continue,
                Created => unreachable!("a Created subtask has no slot"),
            }
            if first_failure.is_none() {
                first_failure =
                    Some((subtask, self.cause(subtask, &format!("TaskManager of slot {slot} lost"))));
            }
        }
        if let Some((subtask, cause)) = first_failure {
            self.subtask_failed(now, subtask, cause);
        }
    }

    /// The user cancels the job: no restart follows. A job already canceling or ended is left
    /// as it is (and the cancel counted).
    pub fn handle_cancel(&mut self, now: Instant) {
        self.apply_cancel(now);
        self.drive_checkpoints(now);
    }

    // Applies it; the caller then drives the checkpoints.
    fn apply_cancel(&mut self, now: Instant) {
        self.advance_to(now);
        match self.phase {
            Phase::Live => self.cancel_attempt(),
            // The failed attempt was told to cancel already; the restart is dropped.
            Phase::AwaitingRestart { .. } => {}
            Phase::Canceling | Phase::Finished | Phase::Failed | Phase::Canceled => {
                self.counters.cancels_ignored += 1;
                return;
            }
        }
        self.phase = Phase::Canceling;
        self.settle_cancel(now);
    }

    /// Fires the restart if it is due at `now`, and what the checkpoint coordinator has due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_to(now);
        self.drive_checkpoints(now);
    }

    // ---------------------------------------------------------------- outputs

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the pending restart, or the coordinator's next checkpoint or timeout, is due:
    /// `handle_timeout` must be called then. A restart waiting for a durable write has no
    /// timeout: the write's acknowledgement fires it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let restart = match self.phase {
            Phase::AwaitingRestart { at } if !self.persisting() => Some(at),
            _ => None,
        };
        let checkpoint = match self.phase {
            Phase::Live => self.checkpoints.as_ref().and_then(|c| c.poll_timeout()),
            _ => None,
        };
        restart.into_iter().chain(checkpoint).min()
    }

    // ---------------------------------------------------------------- queries

    pub fn state(&self) -> JobState {
        match self.phase {
            Phase::Live if self.deployed => JobState::Running,
            Phase::Live if self.counters.restarts == 0 => JobState::Created,
            Phase::Live | Phase::AwaitingRestart { .. } => JobState::Restarting,
            Phase::Canceling => JobState::Canceling,
            Phase::Finished => JobState::Finished,
            Phase::Failed => JobState::Failed,
            Phase::Canceled => JobState::Canceled,
        }
    }

    pub fn status(&self) -> JobStatus {
        JobStatus {
            job: self.job,
            name: self.graph.name.clone(),
            state: self.state(),
            attempt: self.attempt,
            failures: self.failures,
            subtasks: (self.plan.subtasks.iter().zip(&self.executions))
                .map(|(plan, execution)| SubtaskStatus {
                    id: plan.id,
                    name: self.chain_names[plan.chain].clone(),
                    index: plan.index,
                    parallelism: self.plan.chains[plan.chain].parallelism,
                    state: execution.state,
                    slot: execution.slot,
                })
                .collect(),
            last_failure_cause: self.recent_failures.back().map(|f| f.cause.clone()),
            recent_failures: self.recent_failures.iter().cloned().collect(),
            started_at: self.started_at,
            attempt_started_at: self.attempt_started_at,
            restart_at: match self.phase {
                Phase::AwaitingRestart { at } => Some(at),
                _ => None,
            },
            ended_at: self.ended_at,
            // A job without `[job.checkpoints]` shows them once it has taken a savepoint or was
            // resumed from one.
            checkpoints: (self.checkpoints.as_ref())
                .filter(|c| c.is_periodic() || c.counters().triggered > 0 || self.restore.is_some())
                .map(|c| CheckpointStatus {
                    counters: c.counters(),
                    latest: c.latest().map(|l| (l.id, l.completed_at)),
                    pending: c.pending(),
                    restored_from: self.restore.as_ref().map(|r| r.id),
                    recent_durations_ms: c.recent_durations_ms(),
                }),
        }
    }

    // ---------------------------------------------------------------- internals

    /// Moves time to `now` and restarts if the restart is due.
    fn advance_to(&mut self, now: Instant) {
        assert!(now >= self.now, "time went back from {:?} to {now:?}", self.now);
        self.now = now;
        if let Phase::AwaitingRestart { at } = self.phase {
            if at <= now && !self.persisting() {
                self.restart(now);
            }
        }
    }

    /// Starts the current attempt: every subtask Created, a slot request per slot group.
    fn start_attempt(&mut self, now: Instant) {
        let created = Execution { state: Created, slot: None };
        self.executions = vec![created; self.plan.subtasks.len()];
        self.slot_owners.clear();
        self.granted = vec![false; self.groups.len()];
        (self.deployed, self.cancel_sent, self.released) = (false, false, false);
        self.phase = Phase::Live;
        self.attempt_started_at = now;
        for group in &self.groups {
            let count = u16::try_from(group.subtasks.len()).expect("groups are cut at SLOTS_PER_REQUEST_MAX");
            let placement = group.placement.clone();
            self.outputs.push_back(Output::RequestSlots { attempt: self.attempt, count, placement });
        }
    }

    fn restart(&mut self, now: Instant) {
        assert!(matches!(self.phase, Phase::AwaitingRestart { .. }));
        self.release();
        self.attempt = AttemptId(self.attempt.0.checked_add(1).expect("a restart is refused at the last id"));
        self.counters.restarts += 1;
        if let Some(c) = &self.checkpoints {
            if let Some(point) = c.restore_point() {
                self.restore = Some(point);
            }
        }
        self.start_attempt(now);
    }

    /// The first waiting slot group `slots` can be given to: one of the same size, if the slots
    /// are distinct and given to no other subtask of this attempt.
    fn waiting_group_for(&self, slots: &[SlotId], placement: Option<&Placement>) -> Option<usize> {
        if self.phase != Phase::Live || self.deployed {
            return None;
        }
        let mut distinct: Vec<SlotId> = slots.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != slots.len() || slots.iter().any(|s| self.slot_owners.contains_key(s)) {
            return None;
        }
        (0..self.groups.len()).find(|&g| {
            !self.granted[g]
                && self.groups[g].subtasks.len() == slots.len()
                && placement.is_none_or(|p| *p == self.groups[g].placement)
        })
    }

    /// Deploys every subtask, in subtask order, into the slot it was given.
    fn deploy(&mut self) {
        for (i, execution) in self.executions.iter_mut().enumerate() {
            assert!(execution.state.can_become(Deploying), "every group was granted");
            execution.state = Deploying;
            let slot = execution.slot.expect("a Scheduled subtask has a slot");
            let subtask = SubtaskId(u32::try_from(i).expect("subtask ids are u32"));
            let restore_from = self.restore.as_ref().map(|r| r.id);
            self.outputs.push_back(Output::Deploy { attempt: self.attempt, subtask, slot, restore_from });
        }
        self.deployed = true;
    }

    /// `subtask` failed with `cause`. While the attempt is live, that fails it; while canceling,
    /// it is one more subtask stopped; after the attempt failed, it is a consequence of that.
    fn subtask_failed(&mut self, now: Instant, subtask: SubtaskId, cause: String) {
        match self.phase {
            Phase::Live => self.fail_attempt(now, subtask, cause),
            Phase::Canceling => self.settle_cancel(now),
            Phase::AwaitingRestart { .. } | Phase::Finished | Phase::Failed | Phase::Canceled => {}
        }
    }

    fn fail_attempt(&mut self, now: Instant, subtask: SubtaskId, cause: String) {
        self.failures = self.failures.saturating_add(1);
        if self.recent_failures.len() == JOB_FAILURES_KEPT_MAX {
            self.recent_failures.pop_front();
        }
        let failure = Failure { attempt: self.attempt, subtask, at: now, cause: cause.clone() };
        self.recent_failures.push_back(failure);
        self.cancel_attempt();
        let delay = self.graph.restart.delay_before_restart(self.failures);
        match delay.filter(|_| self.attempt.0 < u32::MAX) {
            Some(delay) => self.phase = Phase::AwaitingRestart { at: now + delay },
            None => self.end(now, Phase::Failed, Output::JobFailed { cause }),
        }
    }

    /// Tells the TaskManagers to cancel the attempt (once) and moves every live subtask towards
    /// Canceled: straight there if it never reached a TaskManager, to Canceling otherwise.
    fn cancel_attempt(&mut self) {
        if !self.cancel_sent {
            self.cancel_sent = true;
            self.outputs.push_back(Output::CancelAttempt { attempt: self.attempt });
        }
        for execution in &mut self.executions {
            let steps: &[ExecutionState] = match execution.state {
                Created => &[Canceled],
                Scheduled => &[Canceling, Canceled],
                Deploying | Running => &[Canceling],
                Canceling | Finished | Canceled | Failed => &[],
            };
            for &next in steps {
                assert!(execution.state.can_become(next), "{:?} → {next:?}", execution.state);
                execution.state = next;
            }
        }
    }

    /// Ends a user cancel once every subtask has stopped.
    fn settle_cancel(&mut self, now: Instant) {
        if self.phase == Phase::Canceling && self.executions.iter().all(|e| e.state.is_final()) {
            self.end(now, Phase::Canceled, Output::JobCanceled);
        }
    }

    /// Ends the job: releases the attempt's slots, then announces `end`.
    fn end(&mut self, now: Instant, phase: Phase, end: Output) {
        assert!(phase.is_final() && !self.phase.is_final(), "a job ends once");
        self.release();
        self.phase = phase;
        self.ended_at = Some(now);
        self.outputs.push_back(end);
    }

    fn release(&mut self) {
        assert!(!self.released, "{} is released once", self.attempt);
        self.released = true;
        self.outputs.push_back(Output::ReleaseSlots { attempt: self.attempt });
    }

    /// Too many checkpoints in a row failed (`cause`), the last waiting for `subtasks`: the
    /// attempt fails and restarts as the restart strategy says.
    fn checkpoints_failed_attempt(&mut self, now: Instant, subtasks: &[u32], cause: String) {
        let known: Vec<SubtaskId> =
            subtasks.iter().map(|&s| SubtaskId(s)).filter(|s| s.index() < self.plan.subtasks.len()).collect();
        let mut names: Vec<String> = known.iter().take(4).map(|&s| self.subtask_name(s)).collect();
        if known.len() > names.len() {
            names.push(format!("{} more", known.len() - names.len()));
        }
        let cause = if names.is_empty() { cause } else { format!("{cause}; subtasks: {}", names.join(", ")) };
        let subtask = known.first().copied().unwrap_or(SubtaskId(0));
        self.fail_attempt(now, subtask, cut(cause, FAILURE_CAUSE_BYTES_MAX));
    }

    /// `out (1/2)`.
    fn subtask_name(&self, subtask: SubtaskId) -> String {
        let plan = &self.plan.subtasks[subtask.index()];
        let chain = &self.plan.chains[plan.chain];
        format!("{} ({}/{})", self.chain_names[plan.chain], plan.index + 1, chain.parallelism)
    }

    /// `out (1/2) failed: detail`, cut to `FAILURE_CAUSE_BYTES_MAX`.
    fn cause(&self, subtask: SubtaskId, detail: &str) -> String {
        cut(format!("{} failed: {detail}", self.subtask_name(subtask)), FAILURE_CAUSE_BYTES_MAX)
    }

    // ---------------------------------------------------------------- invariants

    /// Panics if the job's bookkeeping is inconsistent: run after every step in tests and in the
    /// simulator.
    pub fn assert_invariants(&self) {
        if let Some(c) = &self.checkpoints {
            c.assert_invariants();
        }
        assert_eq!(self.executions.len(), self.plan.subtasks.len());
        assert_eq!(self.granted.len(), self.groups.len());
        let mut grouped: Vec<SubtaskId> =
            self.groups.iter().flat_map(|g| g.subtasks.iter().copied()).collect();
        grouped.sort_unstable();
        assert!(grouped.iter().enumerate().all(|(i, s)| s.index() == i), "groups partition the subtasks");
        assert!(self
            .groups
            .iter()
            .all(|g| (1..=usize::from(SLOTS_PER_REQUEST_MAX)).contains(&g.subtasks.len())));
        // Slots: every slot-holding subtask has one, and no two subtasks share one (the owner
        // index maps each given slot back to the one subtask holding it).
        let mut given = 0;
        for (i, e) in self.executions.iter().enumerate() {
            assert!(!e.state.holds_slot() || e.slot.is_some(), "subtask {i} is {:?} without a slot", e.state);
            assert!(e.state != Created || e.slot.is_none(), "a Created subtask has no slot");
            if let Some(slot) = e.slot {
                assert_eq!(self.slot_owners.get(&slot).map(|s| s.index()), Some(i), "{slot} has one subtask");
                given += 1;
            }
        }
        assert_eq!(given, self.slot_owners.len());
        // Attempts are numbered by restarts; each restart follows a failure.
        assert_eq!(u64::from(self.attempt.0), self.counters.restarts);
        assert!(self.failures >= self.attempt.0 && self.failures - self.attempt.0 <= 1);
        assert!(self.recent_failures.len() <= JOB_FAILURES_KEPT_MAX.min(self.failures as usize));
        for f in &self.recent_failures {
            assert!(
                f.attempt <= self.attempt && f.at <= self.now && f.cause.len() <= FAILURE_CAUSE_BYTES_MAX
            );
        }
        assert!(self.started_at <= self.attempt_started_at && self.attempt_started_at <= self.now);
        assert_eq!(self.ended_at.is_some(), self.phase.is_final());
        assert_eq!(self.released, self.phase.is_final(), "an attempt's slots go back when the job ends");
        assert!(!self.deployed || self.granted.iter().all(|&g| g));
        let live = |e: &Execution| matches!(e.state, Created | Scheduled | Deploying | Running);
        match self.phase {
            Phase::Live => {
                assert!(!self.cancel_sent);
                assert!(!self.executions.iter().all(|e| e.state == Finished), "a finished job ended");
                for (i, e) in self.executions.iter().enumerate() {
                    let expected: &[ExecutionState] = if self.deployed {
                        &[Deploying, Running, Finished]
                    } else if self.granted[self.group_of(i)] {
                        &[Scheduled]
                    } else {
                        &[Created]
                    };
                    assert!(expected.contains(&e.state), "subtask {i} is {:?} in a live attempt", e.state);
                }
            }
            Phase::AwaitingRestart { at } => {
                // Due at `now` only when set by this step with a zero delay: `advance_to` fires due ones.
                assert!(at >= self.now, "a due restart fired");
                assert!(self.cancel_sent && self.failures >= 1);
                assert!(!self.executions.iter().any(live));
            }
            Phase::Canceling => {
                assert!(self.cancel_sent && !self.executions.iter().any(live));
                assert!(self.executions.iter().any(|e| e.state == Canceling), "a settled cancel ended");
            }
            Phase::Finished => assert!(self.executions.iter().all(|e| e.state == Finished)),
            Phase::Failed => {
                assert!(self.cancel_sent && self.failures >= 1 && !self.recent_failures.is_empty());
                assert!(!self.executions.iter().any(live));
            }
            Phase::Canceled => assert!(self.executions.iter().all(|e| e.state.is_final())),
        }
    }

    fn group_of(&self, subtask: usize) -> usize {
        self.groups.iter().position(|g| g.subtasks.iter().any(|s| s.index() == subtask)).expect("grouped")
    }
}

/// Whether a TaskManager may report `from → to`: a transition the state allows, to a state only a
/// TaskManager knows, about a subtask deployed to it.
fn reportable(from: ExecutionState, to: ExecutionState) -> bool {
    matches!(from, Deploying | Running | Canceling)
        && matches!(to, Running | Finished | Canceled | Failed)
        && from.can_become(to)
}

/// The slot groups of a plan: subtasks by placement, in placement order, each cut into requests
/// of at most `SLOTS_PER_REQUEST_MAX` slots.
fn slot_groups(graph: &JobGraph, plan: &ExecutionPlan) -> Vec<SlotGroup> {
    let mut by_placement: BTreeMap<Placement, Vec<SubtaskId>> = BTreeMap::new();
    for subtask in &plan.subtasks {
        by_placement.entry(placement_of(graph, plan, subtask)).or_default().push(subtask.id);
    }
    let mut groups = Vec::new();
    for (placement, subtasks) in by_placement {
        for chunk in subtasks.chunks(usize::from(SLOTS_PER_REQUEST_MAX)) {
            groups.push(SlotGroup { placement: placement.clone(), subtasks: chunk.to_vec() });
        }
    }
    groups
}

/// The labels the TaskManager of `subtask`'s slot must carry. Today every subtask may run
/// anywhere; per-operator placement (its chain's vertices' placements, merged) belongs here.
/// The labels a subtask's TaskManager must carry: its chain's. A chain never mixes placements
/// (the plan does not chain vertices of different placement), so its head's placement is all of it.
fn placement_of(graph: &JobGraph, plan: &ExecutionPlan, subtask: &SubtaskPlan) -> Placement {
    let head = plan.chains[subtask.chain].vertices[0];
    graph.vertex(head).placement.clone()
}

/// `s` cut to at most `max` bytes at a character boundary, ending in `…` when cut.
fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

#[cfg(test)]
#[path = "job_master_tests.rs"]
mod tests;
