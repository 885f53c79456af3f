//! The checkpoint coordinator: one job's checkpoints, run by its JobMaster.
//!
//! # Model
//!
//! Checkpoint ids increase over the job's life, across attempts. At most one checkpoint is in
//! flight. While the current attempt runs (every subtask Running), the coordinator triggers
//! checkpoint n every `interval`, at least `min_pause` after the previous one completed:
//! [`Step::Trigger`], which the JobManager sends to the attempt's TaskManagers, whose sources
//! inject barrier n. Every subtask acknowledges with its snapshot (in chunks). When all have, the
//! checkpoint is *complete but not durable*: [`Step::Persist`] asks the driver to record it, and
//! only when the driver says it is durable ([`CheckpointCoordinator::handle_persisted`]) does it
//! become the latest completed checkpoint, the recovery point, and [`Step::Commit`] lets sinks
//! commit (raft's rule: an effect that depends on a durable write waits for its acknowledgement).
//! A checkpoint that a subtask declines, whose `timeout` passes, or whose attempt fails is
//! aborted; its snapshots are dropped. More than `tolerable_failures` checkpoints in a row that
//! time out, are declined or cannot be stored fail the attempt ([`Step::FailAttempt`]): a job
//! that cannot checkpoint any more would otherwise run on with an ever older recovery point and
//! uncommitted output. Aborts because the attempt ended do not count, nor do savepoints; a
//! completed checkpoint, or a new attempt, starts the count again.
//!
//! A **savepoint** is a checkpoint triggered on request ([`CheckpointCoordinator::request_savepoint`])
//! rather than by the interval: it goes as soon as the attempt runs and no checkpoint is in
//! flight (ignoring `min_pause`), is completed, made durable and committed like any other, and
//! then reported ([`Step::SavepointCompleted`], or [`Step::SavepointFailed`] if it is aborted or
//! the attempt does not run within `timeout`). A job without `[job.checkpoints]` has a
//! coordinator too, one that takes savepoints only.
//!
//! Snapshot chunks are untrusted: chunks for another checkpoint or attempt, for an unknown
//! subtask, out of order or over the size limit are counted and ignored (an ignored chunk leaves
//! the checkpoint incomplete, so it times out).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::graph::CheckpointConfig;
use crate::ids::{AttemptId, CheckpointId};
use crate::protocol::messages::{SnapshotAssembly, SnapshotChunk};
use crate::time::Instant;

/// A checkpoint every subtask acknowledged: its snapshot bytes per subtask, in subtask order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    pub id: CheckpointId,
    pub attempt: AttemptId,
    pub triggered_at: Instant,
    pub completed_at: Instant,
    pub snapshots: Vec<Vec<u8>>,
}

impl CompletedCheckpoint {
    /// Bytes of snapshot data.
    pub fn bytes(&self) -> usize {
        self.snapshots.iter().map(Vec::len).sum()
    }
}

/// What the coordinator asks of its JobMaster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Trigger {
        attempt: AttemptId,
        checkpoint: CheckpointId,
    },
    /// Record the checkpoint durably, then call `handle_persisted`.
    Persist(Arc<CompletedCheckpoint>),
    /// The checkpoint is durable: the attempt's sinks may commit it.
    Commit {
        attempt: AttemptId,
        checkpoint: CheckpointId,
    },
    Aborted {
        checkpoint: CheckpointId,
        reason: String,
    },
    /// The requested savepoint is this checkpoint, now durable and committed.
    SavepointCompleted(Arc<CompletedCheckpoint>),
    /// The requested savepoint was not taken.
    SavepointFailed {
        reason: String,
    },
    /// Too many checkpoints in a row failed: fail the attempt. `subtasks` are those the last
    /// one waited for (none when it could not be stored).
    FailAttempt {
        attempt: AttemptId,
        subtasks: Vec<u32>,
        cause: String,
    },
}

/// Counters of the coordinator's work, and of input it ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointCounters {
    pub triggered: u64,
    pub completed: u64,
    pub aborted: u64,
    pub chunks_ignored: u64,
    /// The last completed checkpoint's duration (trigger to durable), in milliseconds.
    pub last_duration_ms: u64,
    pub last_bytes: u64,
}

#[derive(Debug)]
struct Pending {
    id: CheckpointId,
    attempt: AttemptId,
    triggered_at: Instant,
    assemblies: BTreeMap<u32, SnapshotAssembly>,
    snapshots: Vec<Option<Vec<u8>>>,
    /// All acknowledged; waiting for the driver's durable write.
    persisting: bool,
    /// Triggered for a savepoint request.
    savepoint: bool,
}

#[derive(Debug)]
pub struct CheckpointCoordinator {
    config: CheckpointConfig,
    /// Whether checkpoints are triggered every `interval` (the job has `[job.checkpoints]`), or
    /// only for savepoints.
    periodic: bool,
    subtasks: usize,
    next_id: CheckpointId,
    pending: Option<Pending>,
    /// The latest completed (durable) checkpoint, and the one before it.
    latest: Option<Arc<CompletedCheckpoint>>,
    previous: Option<Arc<CompletedCheckpoint>>,
    /// Whether the current attempt runs (every subtask Running).
    running: bool,
    /// When the next periodic checkpoint is due, while the attempt runs.
    next_trigger_at: Option<Instant>,
    /// When a savepoint not yet triggered was requested.
    savepoint_requested_at: Option<Instant>,
    /// Periodic checkpoints of the current attempt that failed since the last one completed.
    failures_in_a_row: u32,
    counters: CheckpointCounters,
    /// The durations (trigger to durable) of the last `RECENT_DURATIONS_MAX` completed checkpoints.
    recent_durations_ms: std::collections::VecDeque<u64>,
}

/// Why a checkpoint is aborted: a failure of its own, waiting on these subtasks (counted towards
/// `tolerable_failures`), or not (its attempt ended, a subtask stopped running).
enum Blame {
    None,
    Subtasks(Vec<u32>),
}

/// Completed checkpoints whose durations a coordinator keeps for its status.
pub const RECENT_DURATIONS_MAX: usize = 64;

impl CheckpointCoordinator {
    /// A coordinator for a job of `subtasks` subtasks, taking checkpoints as `config` says, or
    /// savepoints only without one; `latest` is the checkpoint the job was recovered with (after a
    /// JobManager restart or from a savepoint), ids continue after it.
    pub fn new(
        config: Option<CheckpointConfig>,
        subtasks: usize,
        latest: Option<Arc<CompletedCheckpoint>>,
    ) -> Self {
        let next_id = CheckpointId(latest.as_ref().map_or(1, |c| c.id.0 + 1));
        let periodic = config.is_some();
        let config = config.unwrap_or(CheckpointConfig {
            retained: 1,
            ..CheckpointConfig::every(CheckpointConfig::TIMEOUT_DEFAULT)
        });
        CheckpointCoordinator {
            config,
            periodic,
            subtasks,
            next_id,
            pending: None,
            latest,
            previous: None,
            running: false,
            next_trigger_at: None,
            savepoint_requested_at: None,
            failures_in_a_row: 0,
            counters: CheckpointCounters::default(),
            recent_durations_ms: std::collections::VecDeque::new(),
        }
    }

    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// Whether checkpoints are taken every interval, not only for savepoints.
    pub fn is_periodic(&self) -> bool {
        self.periodic
    }

    /// Asks for a savepoint: a checkpoint triggered as soon as the attempt runs and no other is
    /// in flight. One savepoint at a time.
    pub fn request_savepoint(&mut self, now: Instant) -> Result<(), &'static str> {
        if self.savepoint_requested_at.is_some() || self.pending.as_ref().is_some_and(|p| p.savepoint) {
            return Err("a savepoint of the job is already in progress");
        }
        self.savepoint_requested_at = Some(now);
        Ok(())
    }

    /// Whether a completed checkpoint is being made durable.
    pub fn persisting(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.persisting)
    }

    pub fn counters(&self) -> CheckpointCounters {
        self.counters
    }

    /// Durations of the most recent completed checkpoints, oldest first, in milliseconds.
    pub fn recent_durations_ms(&self) -> Vec<u64> {
        self.recent_durations_ms.iter().copied().collect()
    }

    /// The checkpoint a restarted attempt restores from. (The planted bug
    /// `planted-stale-restore` returns the one before it.)
    pub fn restore_point(&self) -> Option<Arc<CompletedCheckpoint>> {
        if cfg!(feature = "planted-stale-restore") && self.previous.is_some() {
            return self.previous.clone();
        }
        self.latest.clone()
    }

    pub fn latest(&self) -> Option<&Arc<CompletedCheckpoint>> {
        self.latest.as_ref()
    }

    /// The checkpoint in flight, if any.
    pub fn pending(&self) -> Option<CheckpointId> {
        self.pending.as_ref().map(|p| p.id)
    }

    /// The attempt is running (every subtask Running) or not: checkpoints are triggered only
    /// while it is. A change of attempt aborts the checkpoint in flight.
    pub fn set_running(&mut self, now: Instant, attempt: AttemptId, running: bool, steps: &mut Vec<Step>) {
        if let Some(p) = &self.pending {
            if p.attempt != attempt || (!running && !p.persisting) {
                let reason =
                    if p.attempt != attempt { "its attempt ended" } else { "a subtask is no longer running" };
                self.abort(now, reason, Blame::None, steps);
            }
        }
        if running != self.running {
            self.running = running;
            if running {
                self.failures_in_a_row = 0;
            }
            // A restored attempt keeps the schedule of the checkpoints before it: its first one
            // is due an interval after the latest was triggered (at once if that has passed), so
            // a failure does not push the next commit a whole interval away. Times of a
            // checkpoint recovered from another process's store are bounded to the interval.
            let due = |latest: Option<&Arc<CompletedCheckpoint>>| {
                let after_latest =
                    latest.map_or(now + self.config.interval, |l| l.triggered_at + self.config.interval);
                after_latest.clamp(now, now + self.config.interval)
            };
            self.next_trigger_at = (running && self.periodic).then(|| due(self.latest.as_ref()));
        }
    }

    /// When `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.pending {
            Some(p) if !p.persisting => Some(p.triggered_at + self.config.timeout),
            Some(_) => None,
            None if self.running => self.next_trigger_at.into_iter().chain(self.savepoint_requested_at).min(),
            // A savepoint waiting for the attempt to run gives up after the timeout.
            None => self.savepoint_requested_at.map(|at| at + self.config.timeout),
        }
    }

    /// Triggers a checkpoint or savepoint that is due, or aborts one that timed out.
    pub fn handle_timeout(&mut self, now: Instant, attempt: AttemptId, steps: &mut Vec<Step>) {
        if let Some(p) = &self.pending {
            if !p.persisting && p.triggered_at + self.config.timeout <= now {
                let waited_for: Vec<u32> =
                    (0..p.snapshots.len() as u32).filter(|&i| p.snapshots[i as usize].is_none()).collect();
                let reason = format!(
                    "it timed out after {:?} waiting for {} of {} subtasks",
                    self.config.timeout,
                    waited_for.len(),
                    p.snapshots.len()
                );
                self.abort(now, &reason, Blame::Subtasks(waited_for), steps);
            }
            return;
        }
        if !self.running {
            if self.savepoint_requested_at.is_some_and(|at| at + self.config.timeout <= now) {
                self.savepoint_requested_at = None;
                let reason = format!("the job did not run within {:?}", self.config.timeout);
                steps.push(Step::SavepointFailed { reason });
            }
            return;
        }
        let savepoint = self.savepoint_requested_at.is_some_and(|at| at <= now);
        if savepoint || self.next_trigger_at.is_some_and(|at| at <= now) {
            let checkpoint = self.next_id;
            self.next_id = CheckpointId(checkpoint.0 + 1);
            if savepoint {
                self.savepoint_requested_at = None;
            } else {
                self.next_trigger_at = None;
            }
            self.pending = Some(Pending {
                id: checkpoint,
                attempt,
                triggered_at: now,
                assemblies: BTreeMap::new(),
                snapshots: vec![None; self.subtasks],
                persisting: false,
                savepoint,
            });
            self.counters.triggered += 1;
            steps.push(Step::Trigger { attempt, checkpoint });
        }
    }

    /// A chunk of a subtask's snapshot. The last chunk of the last subtask completes the
    /// checkpoint: it goes to the driver to be made durable.
    pub fn handle_chunk(&mut self, now: Instant, chunk: &SnapshotChunk, steps: &mut Vec<Step>) {
        let Some(p) = self
            .pending
            .as_mut()
            .filter(|p| p.id == chunk.checkpoint && p.attempt == chunk.attempt && !p.persisting)
        else {
            self.counters.chunks_ignored += 1;
            return;
        };
        let index = chunk.subtask as usize;
        if index >= p.snapshots.len() || p.snapshots[index].is_some() {
            self.counters.chunks_ignored += 1;
            return;
        }
        let assembly = p.assemblies.entry(chunk.subtask).or_default();
        match assembly.push(chunk) {
            Ok(false) => {}
            Ok(true) => {
                let bytes = p.assemblies.remove(&chunk.subtask).expect("pushed above").into_bytes();
                p.snapshots[index] = Some(bytes);
            }
            Err(_) => {
                p.assemblies.remove(&chunk.subtask);
                self.counters.chunks_ignored += 1;
                return;
            }
        }
        if p.snapshots.iter().all(Option::is_some) {
            p.persisting = true;
            let completed = CompletedCheckpoint {
                id: p.id,
                attempt: p.attempt,
                triggered_at: p.triggered_at,
                completed_at: now,
                snapshots: p.snapshots.iter_mut().map(|s| s.take().expect("all acknowledged")).collect(),
            };
            steps.push(Step::Persist(Arc::new(completed)));
        }
    }

    /// Subtask `subtask` declined the checkpoint: it is aborted.
    pub fn handle_declined(
        &mut self,
        now: Instant,
        attempt: AttemptId,
        subtask: u32,
        checkpoint: CheckpointId,
        reason: &str,
        steps: &mut Vec<Step>,
    ) {
        if self.pending.as_ref().is_some_and(|p| p.id == checkpoint && p.attempt == attempt && !p.persisting)
        {
            let blame = Blame::Subtasks(vec![subtask]);
            self.abort(now, &format!("a subtask declined it: {reason}"), blame, steps);
        }
    }

    /// The driver recorded `checkpoint` durably (`Ok`), or could not (`Err`): it is now the
    /// latest completed checkpoint and its sinks may commit, or it is aborted.
    pub fn handle_persisted(
        &mut self,
        now: Instant,
        checkpoint: CheckpointId,
        persisted: Result<Arc<CompletedCheckpoint>, String>,
        steps: &mut Vec<Step>,
    ) {
        if !self.pending.as_ref().is_some_and(|p| p.id == checkpoint && p.persisting) {
            return;
        }
        let pending = self.pending.take().expect("checked above");
        match persisted {
            Ok(completed) => {
                assert_eq!(completed.id, checkpoint);
                assert!(self.latest.as_ref().is_none_or(|l| l.id < checkpoint), "checkpoint ids only grow");
                self.counters.completed += 1;
                if !pending.savepoint {
                    self.failures_in_a_row = 0;
                }
                self.counters.last_duration_ms =
                    (now.saturating_duration_since(pending.triggered_at)).as_millis() as u64;
                self.counters.last_bytes = completed.bytes() as u64;
                if self.recent_durations_ms.len() == RECENT_DURATIONS_MAX {
                    self.recent_durations_ms.pop_front();
                }
                self.recent_durations_ms.push_back(self.counters.last_duration_ms);
                self.previous = self.latest.replace(completed.clone());
                if self.periodic && self.running && self.next_trigger_at.is_none() {
                    let after_pause = now + self.config.min_pause;
                    let after_interval = pending.triggered_at + self.config.interval;
                    self.next_trigger_at = Some(after_pause.max(after_interval));
                }
                steps.push(Step::Commit { attempt: pending.attempt, checkpoint });
                if pending.savepoint {
                    steps.push(Step::SavepointCompleted(completed));
                }
            }
            Err(error) => {
                self.pending = Some(pending);
                let reason = format!("it could not be stored: {error}");
                self.abort(now, &reason, Blame::Subtasks(Vec::new()), steps);
            }
        }
    }

    /// Gives up the checkpoint in flight; the next periodic one is due an interval from now. A
    /// failure of the checkpoint itself (`blame`) counts towards `tolerable_failures`.
    fn abort(&mut self, now: Instant, reason: &str, blame: Blame, steps: &mut Vec<Step>) {
        let p = self.pending.take().expect("a checkpoint in flight");
        self.counters.aborted += 1;
        let reason = format!("checkpoint {} aborted: {reason}", p.id.0);
        if self.periodic && self.running && self.next_trigger_at.is_none() {
            self.next_trigger_at = Some(now + self.config.interval);
        }
        if p.savepoint {
            steps.push(Step::SavepointFailed { reason: reason.clone() });
        }
        let fail = match blame {
            Blame::Subtasks(subtasks) if !p.savepoint => {
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                let tolerated = self.config.tolerable_failures;
                (self.failures_in_a_row > tolerated).then(|| {
                    let in_a_row = self.failures_in_a_row;
                    self.failures_in_a_row = 0;
                    let cause = format!(
                        "{reason} ({in_a_row} checkpoint failure{} in a row, {tolerated} tolerated)",
                        if in_a_row == 1 { "" } else { "s" }
                    );
                    Step::FailAttempt { attempt: p.attempt, subtasks, cause }
                })
            }
            _ => None,
        };
        steps.push(Step::Aborted { checkpoint: p.id, reason });
        steps.extend(fail);
    }

    pub fn assert_invariants(&self) {
        if let Some(p) = &self.pending {
            assert!(p.id < self.next_id, "a pending checkpoint's id was handed out");
            assert!(self.latest.as_ref().is_none_or(|l| l.id < p.id), "ids only grow");
            assert!(!p.savepoint || self.savepoint_requested_at.is_none(), "one savepoint at a time");
            assert_eq!(p.snapshots.len(), self.subtasks);
        }
        if let (Some(l), Some(prev)) = (&self.latest, &self.previous) {
            assert!(prev.id < l.id);
        }
        assert!(self.periodic || self.next_trigger_at.is_none(), "no periodic checkpoints without a config");
        assert!(self.running || self.next_trigger_at.is_none(), "checkpoints only while the attempt runs");
        assert!(self
            .latest
            .as_ref()
            .is_none_or(|l| l.id < self.next_id && l.snapshots.len() == self.subtasks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at_ms(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    fn latest(triggered_ms: u64) -> Option<Arc<CompletedCheckpoint>> {
        Some(Arc::new(CompletedCheckpoint {
            id: CheckpointId(4),
            attempt: AttemptId(0),
            triggered_at: at_ms(triggered_ms),
            completed_at: at_ms(triggered_ms + 5),
            snapshots: vec![vec![1]],
        }))
    }

    /// When the first checkpoint of an attempt that starts running at 10.5 s is due.
    fn first_due(latest: Option<Arc<CompletedCheckpoint>>) -> Option<Instant> {
        let config = CheckpointConfig::every(Duration::from_secs(1));
        let mut c = CheckpointCoordinator::new(Some(config), 1, latest);
        let mut steps = Vec::new();
        c.set_running(at_ms(10_500), AttemptId(1), true, &mut steps);
        assert!(steps.is_empty());
        c.assert_invariants();
        c.poll_timeout()
    }

    #[test]
    fn a_restored_attempt_keeps_the_schedule_of_the_checkpoints_before_it() {
        assert_eq!(first_due(None), Some(at_ms(11_500)), "a fresh job: an interval after it runs");
        assert_eq!(first_due(latest(10_200)), Some(at_ms(11_200)), "an interval after the latest");
        assert_eq!(first_due(latest(5_000)), Some(at_ms(10_500)), "at once when that has passed");
        assert_eq!(first_due(latest(90_000)), Some(at_ms(11_500)), "another process's clock: bounded");
    }

    /// A coordinator of two subtasks, checkpointing every second with a 2 s timeout, tolerating
    /// `tolerable` failures in a row, its attempt 0 running from time 0.
    fn tolerating(tolerable: u32) -> CheckpointCoordinator {
        let config = CheckpointConfig {
            timeout: Duration::from_secs(2),
            tolerable_failures: tolerable,
            ..CheckpointConfig::every(Duration::from_secs(1))
        };
        let mut c = CheckpointCoordinator::new(Some(config), 2, None);
        let mut steps = Vec::new();
        c.set_running(at_ms(0), AttemptId(0), true, &mut steps);
        assert!(steps.is_empty());
        c
    }

    /// Triggers the checkpoint due at `due_ms`; subtask 0 acknowledges it.
    fn trigger(c: &mut CheckpointCoordinator, due_ms: u64) -> CheckpointId {
        assert_eq!(c.poll_timeout(), Some(at_ms(due_ms)));
        let mut steps = Vec::new();
        c.handle_timeout(at_ms(due_ms), AttemptId(0), &mut steps);
        let [Step::Trigger { checkpoint, .. }] = steps[..] else { panic!("{steps:?}") };
        for chunk in SnapshotChunk::split(crate::ids::JobId(1), AttemptId(0), 0, checkpoint, &[7; 10]) {
            c.handle_chunk(at_ms(due_ms + 1), &chunk, &mut steps);
        }
        assert_eq!(steps.len(), 1, "subtask 1 has not acknowledged: {steps:?}");
        checkpoint
    }

    /// Lets the checkpoint triggered at `due_ms` time out; returns the steps after its abort.
    fn time_out(c: &mut CheckpointCoordinator, due_ms: u64) -> Vec<Step> {
        let checkpoint = trigger(c, due_ms);
        let mut steps = Vec::new();
        c.handle_timeout(at_ms(due_ms + 2_000), AttemptId(0), &mut steps);
        c.assert_invariants();
        let reason =
            format!("checkpoint {} aborted: it timed out after 2s waiting for 1 of 2 subtasks", checkpoint.0);
        assert_eq!(steps.remove(0), Step::Aborted { checkpoint, reason });
        steps
    }

    /// Completes the checkpoint due at `due_ms` (subtask 1 acknowledges, the store records it).
    fn complete(c: &mut CheckpointCoordinator, due_ms: u64) {
        let checkpoint = trigger(c, due_ms);
        let mut steps = Vec::new();
        for chunk in SnapshotChunk::split(crate::ids::JobId(1), AttemptId(0), 1, checkpoint, &[8; 10]) {
            c.handle_chunk(at_ms(due_ms + 2), &chunk, &mut steps);
        }
        let Some(Step::Persist(completed)) = steps.pop() else { panic!("{steps:?}") };
        c.handle_persisted(at_ms(due_ms + 3), checkpoint, Ok(completed), &mut steps);
        assert_eq!(steps, vec![Step::Commit { attempt: AttemptId(0), checkpoint }]);
    }

    #[test]
    fn more_checkpoint_failures_in_a_row_than_tolerated_fail_the_attempt_naming_the_subtasks_waited_for() {
        let mut c = tolerating(2);
        assert_eq!(time_out(&mut c, 1_000), vec![], "one failure: tolerated");
        // Aborted at 3 s: the next is due an interval later.
        assert_eq!(time_out(&mut c, 4_000), vec![], "two: tolerated");
        let cause = "checkpoint 3 aborted: it timed out after 2s waiting for 1 of 2 subtasks \
                     (3 checkpoint failures in a row, 2 tolerated)"
            .to_owned();
        assert_eq!(
            time_out(&mut c, 7_000),
            vec![Step::FailAttempt { attempt: AttemptId(0), subtasks: vec![1], cause }]
        );

        // Without tolerance the first decline fails the attempt, naming the subtask that declined.
        let mut c = tolerating(0);
        let checkpoint = trigger(&mut c, 1_000);
        let mut steps = Vec::new();
        c.handle_declined(at_ms(1_500), AttemptId(0), 1, checkpoint, "no position", &mut steps);
        let reason = "checkpoint 1 aborted: a subtask declined it: no position".to_owned();
        let cause = format!("{reason} (1 checkpoint failure in a row, 0 tolerated)");
        assert_eq!(
            steps,
            vec![
                Step::Aborted { checkpoint, reason },
                Step::FailAttempt { attempt: AttemptId(0), subtasks: vec![1], cause }
            ]
        );
        c.assert_invariants();
    }

    #[test]
    fn a_completed_checkpoint_or_a_new_attempt_starts_the_count_again() {
        let mut c = tolerating(1);
        assert_eq!(time_out(&mut c, 1_000), vec![]);
        complete(&mut c, 4_000);
        assert_eq!(time_out(&mut c, 5_000), vec![], "the completed one reset the count");
        assert!(matches!(time_out(&mut c, 8_000)[..], [Step::FailAttempt { .. }]), "two in a row");

        let mut c = tolerating(1);
        assert_eq!(time_out(&mut c, 1_000), vec![]);
        let mut steps = Vec::new();
        c.set_running(at_ms(3_500), AttemptId(0), false, &mut steps);
        c.set_running(at_ms(3_600), AttemptId(1), true, &mut steps);
        assert_eq!(steps, vec![]);
        assert_eq!(c.poll_timeout(), Some(at_ms(4_600)), "none completed: an interval after it runs");
        let mut steps = Vec::new();
        c.handle_timeout(at_ms(4_600), AttemptId(1), &mut steps);
        c.handle_timeout(at_ms(6_600), AttemptId(1), &mut steps);
        assert!(
            matches!(steps[..], [Step::Trigger { .. }, Step::Aborted { .. }]),
            "a new attempt, a new count: {steps:?}"
        );
    }

    #[test]
    fn aborts_of_an_ending_attempt_and_failed_savepoints_are_not_counted_but_a_failed_store_is() {
        let mut c = tolerating(0);
        trigger(&mut c, 1_000);
        let mut steps = Vec::new();
        c.set_running(at_ms(1_500), AttemptId(0), false, &mut steps);
        assert!(matches!(steps[..], [Step::Aborted { .. }]), "a subtask stopped running: {steps:?}");

        let mut c = tolerating(0);
        c.request_savepoint(at_ms(500)).unwrap();
        let mut steps = Vec::new();
        c.handle_timeout(at_ms(500), AttemptId(0), &mut steps);
        c.handle_timeout(at_ms(2_500), AttemptId(0), &mut steps);
        assert!(
            matches!(steps[..], [Step::Trigger { .. }, Step::SavepointFailed { .. }, Step::Aborted { .. }]),
            "{steps:?}"
        );

        let mut c = tolerating(0);
        let checkpoint = trigger(&mut c, 1_000);
        let mut steps = Vec::new();
        for chunk in SnapshotChunk::split(crate::ids::JobId(1), AttemptId(0), 1, checkpoint, &[8; 10]) {
            c.handle_chunk(at_ms(1_002), &chunk, &mut steps);
        }
        steps.clear();
        c.handle_persisted(at_ms(1_003), checkpoint, Err("disk full".into()), &mut steps);
        let reason = "checkpoint 1 aborted: it could not be stored: disk full".to_owned();
        let cause = format!("{reason} (1 checkpoint failure in a row, 0 tolerated)");
        assert_eq!(
            steps,
            vec![
                Step::Aborted { checkpoint, reason },
                Step::FailAttempt { attempt: AttemptId(0), subtasks: vec![], cause }
            ]
        );
        c.assert_invariants();
    }

    #[test]
    fn a_savepoint_goes_as_soon_as_the_attempt_runs_and_a_job_without_checkpoints_takes_only_savepoints() {
        let mut c = CheckpointCoordinator::new(None, 1, None);
        let mut steps = Vec::new();
        c.set_running(at_ms(0), AttemptId(0), true, &mut steps);
        assert_eq!(c.poll_timeout(), None, "no periodic checkpoints");
        c.request_savepoint(at_ms(7)).unwrap();
        assert_eq!(c.request_savepoint(at_ms(8)), Err("a savepoint of the job is already in progress"));
        assert_eq!(c.poll_timeout(), Some(at_ms(7)));
        c.handle_timeout(at_ms(9), AttemptId(0), &mut steps);
        assert_eq!(steps, vec![Step::Trigger { attempt: AttemptId(0), checkpoint: CheckpointId(1) }]);
        c.assert_invariants();
    }
}
