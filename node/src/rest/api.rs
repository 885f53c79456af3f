//! The JSON documents of the REST API, shared by the server (which makes them from the client
//! protocol's answers) and the CLI (which reads them back).
//!
//! They are their own types rather than serde views of the core's: the API is a contract with
//! programs outside the project, so a field renamed inside the core must not rename a field on
//! the wire. Ids travel as their display form (`"job-3"`, `"tm-1"`), as people read and type
//! them. Readers ignore fields they do not know, so fields can be added compatibly.

use std::collections::BTreeMap;

use rivulet_core::ids::JobId;
use rivulet_core::protocol::client::{CheckpointInfo, JobInfo, SavepointInfo, TaskManagerInfo};
use serde::{Deserialize, Serialize};

/// `GET /overview`: the cluster in numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub taskmanagers: usize,
    pub slots_total: u64,
    pub slots_available: u64,
    /// Jobs not yet ended: created, running, restarting or canceling.
    pub jobs_running: usize,
    pub jobs_finished: usize,
    pub jobs_canceled: usize,
    pub jobs_failed: usize,
    /// The JobManager's `rivulet` version.
    pub version: String,
}

impl Overview {
    pub fn new(jobs: &[JobInfo], task_managers: &[TaskManagerInfo]) -> Overview {
        let count = |state: &str| jobs.iter().filter(|j| j.state == state).count();
        let (finished, canceled, failed) = (count("finished"), count("canceled"), count("failed"));
        Overview {
            taskmanagers: task_managers.len(),
            slots_total: task_managers.iter().map(|tm| u64::from(tm.slots)).sum(),
            slots_available: task_managers.iter().map(|tm| u64::from(tm.free_slots)).sum(),
            jobs_running: jobs.len() - finished - canceled - failed,
            jobs_finished: finished,
            jobs_canceled: canceled,
            jobs_failed: failed,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// `GET /jobs`: running jobs, then recently ended ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    /// `created`, `running`, `restarting`, `finished`, `failed`, `canceling` or `canceled`.
    pub state: String,
    pub attempt: u32,
    pub failures: u32,
}

impl JobSummary {
    pub fn new(job: &JobInfo) -> JobSummary {
        JobSummary {
            id: job.job.to_string(),
            name: job.name.clone(),
            state: job.state.clone(),
            attempt: job.attempt,
            failures: job.failures,
        }
    }
}

/// `GET /jobs/{id}`: a job's state, its counters per vertex and its subtasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetails {
    pub id: String,
    pub name: String,
    pub state: String,
    pub attempt: u32,
    pub failures: u32,
    /// Why the latest failure happened, if the job ever failed.
    pub last_failure: Option<String>,
    /// In the job graph's order.
    pub vertices: Vec<VertexCounters>,
    pub subtasks: Vec<SubtaskDetails>,
    /// Slot requests the cluster cannot grant yet (empty once the job is deployed).
    pub waiting_for: Vec<SlotWait>,
    /// Its checkpoints, if it takes any (or took a savepoint, or was resumed from one).
    #[serde(default)]
    pub checkpoints: Option<CheckpointDetails>,
    /// Its most recent savepoint requests, oldest first.
    #[serde(default)]
    pub savepoints: Vec<SavepointDetails>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointDetails {
    pub completed: u64,
    pub aborted: u64,
    /// The latest completed checkpoint's id.
    pub latest: Option<u64>,
    /// The checkpoint in flight.
    pub pending: Option<u64>,
    /// The checkpoint (or savepoint) the current attempt was restored from.
    pub restored_from: Option<u64>,
    /// The latest completed checkpoint's duration (trigger to durable) and size.
    pub last_duration_ms: u64,
    pub last_bytes: u64,
}

impl CheckpointDetails {
    pub fn new(c: &CheckpointInfo) -> CheckpointDetails {
        CheckpointDetails {
            completed: c.completed,
            aborted: c.aborted,
            latest: c.latest,
            pending: c.pending,
            restored_from: c.restored_from,
            last_duration_ms: c.last_duration_ms,
            last_bytes: c.last_bytes,
        }
    }
}

/// `GET /jobs/{id}/savepoints/{n}`, and each of a job's `savepoints`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointDetails {
    /// The job's savepoint requests are numbered from 1.
    pub request: u64,
    /// `in-progress`, `completed` or `failed`.
    pub state: String,
    pub directory: String,
    /// The job stops once the savepoint is written.
    pub stop: bool,
    /// The checkpoint the savepoint is, once that completed.
    pub checkpoint: Option<u64>,
    /// The savepoint file, once written.
    pub path: Option<String>,
    pub bytes: u64,
    /// Why it failed.
    pub error: Option<String>,
}

impl SavepointDetails {
    pub fn new(s: &SavepointInfo) -> SavepointDetails {
        SavepointDetails {
            request: s.request,
            state: s.state.clone(),
            directory: s.directory.clone(),
            stop: s.stop,
            checkpoint: s.checkpoint,
            path: s.path.clone(),
            bytes: s.bytes,
            error: s.error.clone(),
        }
    }
}

/// `POST /jobs/{id}/savepoints`'s body; an empty body takes the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavepointRequest {
    /// An absolute directory on the JobManager's machine; the JobManager's default without one.
    #[serde(default)]
    pub directory: Option<String>,
    /// Stop the job once the savepoint is written.
    #[serde(default)]
    pub stop: bool,
}

/// `POST /jobs/{id}/savepoints`'s answer: the request to follow at `/jobs/{id}/savepoints/{n}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointRef {
    pub id: String,
    pub request: u64,
}

/// Slots a job waits for: `slots` at once, on TaskManagers whose labels include `labels` (any
/// TaskManager when it is empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotWait {
    pub labels: BTreeMap<String, String>,
    pub slots: u16,
}

/// One vertex's counters, summed over its subtasks' latest reports in the current attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexCounters {
    pub name: String,
    pub records_in: u64,
    pub records_out: u64,
    pub late_records_dropped: u64,
    pub late_records_routed: u64,
    pub records_skipped: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskDetails {
    /// The chain's name (`g → by_key`).
    pub name: String,
    /// From 0.
    pub index: u16,
    pub parallelism: u16,
    /// `created`, `scheduled`, `deploying`, `running`, `finished`, `canceling`, `canceled`, `failed`.
    pub state: String,
    /// The TaskManager it runs on (`tm-1`), once it has a slot.
    pub taskmanager: Option<String>,
}

impl JobDetails {
    pub fn new(job: &JobInfo) -> JobDetails {
        JobDetails {
            id: job.job.to_string(),
            name: job.name.clone(),
            state: job.state.clone(),
            attempt: job.attempt,
            failures: job.failures,
            last_failure: job.last_failure.clone(),
            waiting_for: job
                .waiting_for
                .iter()
                .map(|(labels, slots)| SlotWait { labels: labels.clone(), slots: *slots })
                .collect(),
            vertices: job
                .vertices
                .iter()
                .map(|(name, m)| VertexCounters {
                    name: name.clone(),
                    records_in: m.records_in,
                    records_out: m.records_out,
                    late_records_dropped: m.late_records_dropped,
                    late_records_routed: m.late_records_routed,
                    records_skipped: m.records_skipped,
                })
                .collect(),
            subtasks: job
                .subtasks
                .iter()
                .map(|t| SubtaskDetails {
                    name: t.name.clone(),
                    index: t.index,
                    parallelism: t.parallelism,
                    state: format!("{:?}", t.state).to_lowercase(),
                    taskmanager: t.task_manager.map(|tm| tm.to_string()),
                })
                .collect(),
            checkpoints: job.checkpoints.as_deref().map(CheckpointDetails::new),
            savepoints: job.savepoints.iter().map(SavepointDetails::new).collect(),
        }
    }
}

/// `GET /taskmanagers`: the registered TaskManagers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskManagerList {
    pub taskmanagers: Vec<TaskManagerDetails>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskManagerDetails {
    pub id: String,
    /// Where other TaskManagers reach its data port.
    pub address: String,
    pub slots: u16,
    pub free_slots: u16,
    pub labels: BTreeMap<String, String>,
}

impl TaskManagerDetails {
    pub fn new(tm: &TaskManagerInfo) -> TaskManagerDetails {
        TaskManagerDetails {
            id: tm.id.to_string(),
            address: tm.address.clone(),
            slots: tm.slots,
            free_slots: tm.free_slots,
            labels: tm.labels.clone(),
        }
    }
}

/// The answer naming one job: `POST /jobs` (submitted), `POST /jobs/{id}/cancel` (cancelling) and
/// `POST /jobs/{id}/stop` (stopping).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub id: String,
}

/// Every 4xx and 5xx answer's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong, naming the offending input.
    pub error: String,
}

/// A job id as people write it: `job-3` or `3`.
pub fn parse_job_id(text: &str) -> Option<JobId> {
    let digits = text.strip_prefix("job-").unwrap_or(text);
    // Digits only: `u64::from_str` would also take a sign.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(JobId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_parse_with_or_without_prefix() {
        assert_eq!(parse_job_id("3"), Some(JobId(3)));
        assert_eq!(parse_job_id("job-3"), Some(JobId(3)));
        for bad in ["", "job-", "x", "job-x", "+3", "-3", "job--3", "3 ", "99999999999999999999999"] {
            assert_eq!(parse_job_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_overview_counts_jobs_by_state_and_slots() {
        let job = |id: u64, state: &str| JobInfo {
            job: JobId(id),
            name: "j".into(),
            state: state.into(),
            attempt: 0,
            failures: 0,
            last_failure: None,
            subtasks: Vec::new(),
            vertices: Vec::new(),
            waiting_for: Vec::new(),
            checkpoints: None,
            savepoints: Vec::new(),
        };
        let tm = |id: u64, slots: u16, free_slots: u16| TaskManagerInfo {
            id: rivulet_core::ids::TaskManagerId(id),
            address: "127.0.0.1:1".into(),
            labels: BTreeMap::new(),
            slots,
            free_slots,
        };
        let jobs = [job(1, "running"), job(2, "finished"), job(3, "canceling"), job(4, "failed")];
        let overview = Overview::new(&jobs, &[tm(1, 4, 1), tm(2, 2, 2)]);
        assert_eq!((overview.taskmanagers, overview.slots_total, overview.slots_available), (2, 6, 3));
        assert_eq!(
            (overview.jobs_running, overview.jobs_finished, overview.jobs_canceled, overview.jobs_failed),
            (2, 1, 0, 1)
        );
    }
}
