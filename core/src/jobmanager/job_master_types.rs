//! The JobMaster's vocabulary: the outputs it emits, and the status and counters it reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::dataflow::plan::SubtaskId;
use crate::ids::{AttemptId, CheckpointId, JobId, SlotId};
use crate::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use crate::jobmanager::execution_state::ExecutionState;
use crate::time::Instant;

/// Labels a slot's TaskManager must carry (`name → value`).
pub type Placement = BTreeMap<String, String>;

/// An effect of the JobMaster, drained with `poll_output()`, in the order it happened. The
/// JobManager routes them: slot requests and releases to the ResourceManager, deployments and
/// cancellations to TaskManagers, the job's end to the Dispatcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Ask for `count` slots, all at once, on TaskManagers carrying `placement`.
    RequestSlots {
        attempt: AttemptId,
        count: u16,
        placement: Placement,
    },
    /// Deploy `subtask` of `attempt` into `slot`, restored from `restore_from`'s snapshot of it
    /// ([`JobMaster::restore_point`](super::JobMaster::restore_point)).
    Deploy {
        attempt: AttemptId,
        subtask: SubtaskId,
        slot: SlotId,
        restore_from: Option<CheckpointId>,
    },
    /// Tell the attempt's TaskManagers to take checkpoint `checkpoint` at its sources.
    TriggerCheckpoint {
        attempt: AttemptId,
        checkpoint: CheckpointId,
    },
    /// Every subtask acknowledged the checkpoint: record it durably, then call
    /// [`JobMaster::handle_checkpoint_persisted`](super::JobMaster::handle_checkpoint_persisted).
    PersistCheckpoint(Arc<CompletedCheckpoint>),
    /// The checkpoint is durable: tell the attempt's TaskManagers, whose sinks commit it.
    CommitCheckpoint {
        attempt: AttemptId,
        checkpoint: CheckpointId,
    },
    /// A checkpoint was given up (declined, timed out, its attempt failed): its data can go.
    CheckpointAborted {
        checkpoint: CheckpointId,
        reason: String,
    },
    /// The savepoint asked for with [`JobMaster::request_savepoint`](super::JobMaster::request_savepoint)
    /// is this checkpoint, durable and committed.
    SavepointCompleted(Arc<CompletedCheckpoint>),
    /// The savepoint asked for was not taken.
    SavepointFailed {
        reason: String,
    },
    /// Tell every TaskManager running subtasks of `attempt` to cancel them. Sent once per attempt.
    CancelAttempt {
        attempt: AttemptId,
    },
    /// Every slot `attempt` holds goes back, and its waiting slot requests are dropped.
    ReleaseSlots {
        attempt: AttemptId,
    },
    JobFinished,
    /// The job failed for good: the cause of its last failure.
    JobFailed {
        cause: String,
    },
    JobCanceled,
}

/// The job's state as the CLI and REST show it, derived from the attempt's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JobState {
    /// The first attempt waits for its slots.
    Created,
    /// The current attempt is deployed.
    Running,
    /// An attempt failed: the job waits for its restart, or a restarted attempt for its slots.
    Restarting,
    Finished,
    Failed,
    /// The user canceled; waiting for the subtasks to stop.
    Canceling,
    Canceled,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Finished | JobState::Failed | JobState::Canceled)
    }

    pub fn name(self) -> &'static str {
        match self {
            JobState::Created => "created",
            JobState::Running => "running",
            JobState::Restarting => "restarting",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
            JobState::Canceling => "canceling",
            JobState::Canceled => "canceled",
        }
    }
}

/// One subtask of the current attempt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubtaskStatus {
    pub id: SubtaskId,
    /// The names of the vertices of its chain, head first, joined by ` -> `.
    pub name: String,
    /// Its index among its chain's subtasks, from 0.
    pub index: u16,
    pub parallelism: u16,
    pub state: ExecutionState,
    /// The slot it was given; kept after it ends, to show where it ran.
    pub slot: Option<SlotId>,
}

/// A failure of an attempt: the first subtask failure that ended it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub attempt: AttemptId,
    pub subtask: SubtaskId,
    pub at: Instant,
    /// The subtask and what happened (`out (1/2) failed: …`), at most `FAILURE_CAUSE_BYTES_MAX`.
    pub cause: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobStatus {
    pub job: JobId,
    pub name: String,
    pub state: JobState,
    pub attempt: AttemptId,
    /// Attempts that failed, over the job's life.
    pub failures: u32,
    /// Every subtask of the current attempt, in subtask order.
    pub subtasks: Vec<SubtaskStatus>,
    pub last_failure_cause: Option<String>,
    /// The most recent failures, oldest first: at most `JOB_FAILURES_KEPT_MAX`.
    pub recent_failures: Vec<Failure>,
    pub started_at: Instant,
    pub attempt_started_at: Instant,
    /// When the pending restart is due.
    pub restart_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    /// The job's checkpoints, if it takes any.
    pub checkpoints: Option<CheckpointStatus>,
}

/// Where a job's checkpoints stand.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointStatus {
    pub counters: crate::jobmanager::checkpoint_coordinator::CheckpointCounters,
    /// The latest completed checkpoint: its id and when it completed.
    pub latest: Option<(CheckpointId, Instant)>,
    pub pending: Option<CheckpointId>,
    /// The checkpoint the current attempt was restored from.
    pub restored_from: Option<CheckpointId>,
    /// Durations of the most recent completed checkpoints, oldest first, in milliseconds.
    pub recent_durations_ms: Vec<u64>,
}

/// Counters of what happened, for metrics and for the guard clauses that reject peers' input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobMasterCounters {
    pub reports_applied: u64,
    /// About an attempt other than the current one.
    pub reports_stale: u64,
    pub reports_unknown_subtask: u64,
    /// A transition the subtask's state does not allow, or one a TaskManager cannot report.
    pub reports_illegal: u64,
    /// Grants for an attempt other than the current one, or for one that ended: released again.
    pub grants_stale: u64,
    /// Grants for the current attempt that fit no waiting slot group: kept until the attempt's
    /// slots are released.
    pub grants_unused: u64,
    pub losses_stale: u64,
    /// Lost slots no subtask of the current attempt was given.
    pub slots_lost_unknown: u64,
    /// Cancels of a job already canceling or ended.
    pub cancels_ignored: u64,
    pub restarts: u64,
}
