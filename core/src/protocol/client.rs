//! Messages between a client (the CLI, the REST gateway) and the JobManager, protocol version 2.
//! A client connection carries [`ClientRequest`]s one way and one [`ClientResponse`] per request
//! the other way, in order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dataflow::operator::OperatorMetrics;
use crate::ids::{JobId, TaskManagerId};
use crate::jobmanager::execution_state::ExecutionState;
use crate::jobmanager::job_manager::JobOverview;
use crate::jobmanager::resource_manager::TaskManagerStatus;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Run a job file; `parallelism` replaces the file's default parallelism.
    Submit {
        job_file: String,
        parallelism: Option<u16>,
    },
    ListJobs,
    JobStatus {
        job: JobId,
    },
    Cancel {
        job: JobId,
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
        round_trip(&ClientRequest::Submit { job_file: "[[source]]".into(), parallelism: Some(2) });
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
