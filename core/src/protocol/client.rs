//! Messages between a client (the CLI, the REST gateway) and the JobManager, protocol version 4.
//! A client connection carries [`ClientRequest`]s one way and one [`ClientResponse`] per request
//! the other way, in order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dataflow::operator::OperatorMetrics;
use crate::ids::{JobId, TaskManagerId};
use crate::jobmanager::execution_state::ExecutionState;
use crate::jobmanager::job_manager::{JobOverview, SavepointState, SavepointStatus};
use crate::jobmanager::resource_manager::TaskManagerStatus;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Run a job file; `parallelism` replaces the file's default parallelism. With
    /// `from_savepoint` (the path of a savepoint file on the JobManager's machine), the job
    /// resumes from that savepoint.
    Submit {
        job_file: String,
        parallelism: Option<u16>,
        from_savepoint: Option<String>,
    },
    ListJobs,
    JobStatus {
        job: JobId,
    },
    Cancel {
        job: JobId,
    },
    /// Stop the job by draining it: its sources end their input, windows fire, sinks commit.
    Stop {
        job: JobId,
    },
    /// Take a savepoint of the job into `directory` (absolute, on the JobManager's machine; the
    /// JobManager's default directory without one); with `stop`, stop the job once it is written.
    Savepoint {
        job: JobId,
        directory: Option<String>,
        stop: bool,
    },
    TaskManagers,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientResponse {
    Submitted {
        job: JobId,
    },
    /// The job file does not validate: the error names its line and column.
    SubmitRefused {
        error: String,
    },
    Jobs {
        jobs: Vec<JobInfo>,
    },
    Job {
        job: JobInfo,
    },
    CancelRequested {
        job: JobId,
    },
    StopRequested {
        job: JobId,
    },
    /// The savepoint was asked for; its progress is the job's `savepoints` entry `request`.
    SavepointTriggered {
        job: JobId,
        request: u64,
    },
    SavepointRefused {
        job: JobId,
        error: String,
    },
    UnknownJob {
        job: JobId,
    },
    TaskManagers {
        task_managers: Vec<TaskManagerInfo>,
    },
}

/// A job as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub job: JobId,
    pub name: String,
    /// `created`, `running`, `restarting`, `finished`, `failed`, `canceling` or `canceled`.
    pub state: String,
    pub attempt: u32,
    pub failures: u32,
    pub last_failure: Option<String>,
    pub subtasks: Vec<SubtaskInfo>,
    /// Per vertex, in the job graph's order: its name and counters.
    pub vertices: Vec<(String, OperatorMetrics)>,
    /// Slots the job waits for: (labels the TaskManagers must carry, slots at once).
    pub waiting_for: Vec<(BTreeMap<String, String>, u16)>,
    /// Its checkpoints, if it takes any (or took a savepoint, or was resumed from one).
    pub checkpoints: Option<Box<CheckpointInfo>>,
    /// Its most recent savepoint requests, oldest first.
    pub savepoints: Vec<SavepointInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointInfo {
    pub request: u64,
    /// `in-progress`, `completed` or `failed`.
    pub state: String,
    pub directory: String,
    pub stop: bool,
    /// The checkpoint it is, once that completed.
    pub checkpoint: Option<u64>,
    /// The file written, and its size.
    pub path: Option<String>,
    pub bytes: u64,
    /// Why it failed.
    pub error: Option<String>,
}

impl SavepointInfo {
    pub fn from_status(s: &SavepointStatus) -> SavepointInfo {
        let mut info = SavepointInfo {
            request: s.request,
            state: s.state.name().to_owned(),
            directory: s.directory.clone(),
            stop: s.stop,
            checkpoint: None,
            path: None,
            bytes: 0,
            error: None,
        };
        match &s.state {
            SavepointState::Triggered => {}
            SavepointState::Writing { checkpoint, bytes } => {
                (info.checkpoint, info.bytes) = (Some(checkpoint.0), *bytes)
            }
            SavepointState::Completed { checkpoint, path, bytes } => {
                (info.checkpoint, info.path, info.bytes) = (Some(checkpoint.0), Some(path.clone()), *bytes)
            }
            SavepointState::Failed { cause } => info.error = Some(cause.clone()),
        }
        info
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubtaskInfo {
    pub name: String,
    pub index: u16,
    pub parallelism: u16,
    pub state: ExecutionState,
    pub task_manager: Option<TaskManagerId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskManagerInfo {
    pub id: TaskManagerId,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub slots: u16,
    pub free_slots: u16,
}

impl JobInfo {
    pub fn from_overview(overview: &JobOverview) -> JobInfo {
        let s = &overview.status;
        JobInfo {
            job: s.job,
            name: s.name.clone(),
            state: s.state.name().to_owned(),
            attempt: s.attempt.0,
            failures: s.failures,
            last_failure: s.last_failure_cause.clone(),
            subtasks: s
                .subtasks
                .iter()
                .map(|t| SubtaskInfo {
                    name: t.name.clone(),
                    index: t.index,
                    parallelism: t.parallelism,
                    state: t.state,
                    task_manager: t.slot.map(|slot| slot.task_manager),
                })
                .collect(),
            vertices: overview.vertices.clone(),
            waiting_for: overview.waiting_for.iter().map(|w| (w.placement.clone(), w.slots)).collect(),
            checkpoints: s.checkpoints.as_ref().map(|c| {
                Box::new(CheckpointInfo {
                    completed: c.counters.completed,
                    aborted: c.counters.aborted,
                    latest: c.latest.map(|(id, _)| id.0),
                    pending: c.pending.map(|id| id.0),
                    restored_from: c.restored_from.map(|id| id.0),
                    last_duration_ms: c.counters.last_duration_ms,
                    last_bytes: c.counters.last_bytes,
                })
            }),
            savepoints: overview.savepoints.iter().map(SavepointInfo::from_status).collect(),
        }
    }
}

impl TaskManagerInfo {
    pub fn from_status(status: &TaskManagerStatus) -> TaskManagerInfo {
        TaskManagerInfo {
            id: status.id,
            address: status.address.clone(),
            labels: status.labels.clone(),
            slots: status.slots.len() as u16,
            free_slots: status.free_slots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobmanager::job_manager::{JobManager, JobManagerConfig};
    use crate::protocol::{decode_message, encode_frame, FRAME_HEADER_BYTES};
    use crate::time::Instant;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(m: &T) {
        let mut bytes = Vec::new();
        encode_frame(m, &mut bytes).unwrap();
        assert_eq!(&decode_message::<T>(&bytes[FRAME_HEADER_BYTES..]).unwrap(), m);
    }

    #[test]
    fn requests_and_responses_round_trip() {
        round_trip(&ClientRequest::Submit {
            job_file: "[[source]]".into(),
            parallelism: Some(2),
            from_savepoint: Some("/sp/savepoint-job-1-3.rvsp".into()),
        });
        round_trip(&ClientRequest::Savepoint { job: JobId(3), directory: None, stop: true });
        round_trip(&ClientRequest::Stop { job: JobId(3) });
        round_trip(&ClientRequest::ListJobs);
        round_trip(&ClientRequest::Cancel { job: JobId(3) });
        let mut jm = JobManager::new(JobManagerConfig::default());
        let text = "[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = 5\n\n[[sink]]\ntype = \"count\"\ninput = \"g\"\n";
        let job = jm.submit(Instant::ZERO, text, None).unwrap();
        let info = JobInfo::from_overview(&jm.job(job).unwrap());
        assert_eq!(info.state, "created");
        assert_eq!(info.vertices.len(), 2);
        round_trip(&ClientResponse::Jobs { jobs: vec![info] });
        round_trip(&ClientResponse::SubmitRefused { error: "line 1, column 1: …".into() });
    }
}
