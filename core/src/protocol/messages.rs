//! The messages of protocol version 2, after the handshake. Each connection carries one
//! direction's enum per frame:
//!
//! | connection | direction | enum |
//! |---|---|---|
//! | TaskManager → JobManager | TaskManager to JobManager | [`ToJobManager`] |
//! | | JobManager to TaskManager | [`ToTaskManager`] |
//! | TaskManager → TaskManager | both ways | [`DataMessage`] |
//!
//! postcard encodes an enum variant by its position: variants are only ever appended, and any
//! other change is a new protocol version.

use serde::{Deserialize, Serialize};

use crate::dataflow::operator::OperatorMetrics;
use crate::ids::{AttemptId, JobId, SlotIndex, TaskManagerId};
use crate::jobmanager::execution_state::ExecutionState;
use crate::jobmanager::resource_manager::TaskManagerRegistration;
use crate::protocol::wire_batch::WireElement;

/// From a TaskManager to the JobManager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToJobManager {
    /// The first message: the TaskManager offers its slots.
    Register(TaskManagerRegistration),
    /// Sent every heartbeat interval; silence for the heartbeat timeout means the TaskManager died.
    Heartbeat,
    /// A subtask changed state (and its counters so far).
    TaskState(TaskStateReport),
    /// The counters of the subtasks running here, sent with every heartbeat so that status
    /// queries show a running job's progress (at most one entry per slot).
    Metrics(Vec<SubtaskMetrics>),
}

/// A running subtask's counters per chained vertex (vertex index, counters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubtaskMetrics {
    pub job: JobId,
    pub attempt: AttemptId,
    pub subtask: u32,
    pub metrics: Vec<(u32, OperatorMetrics)>,
}

/// A subtask's new state, reported by the TaskManager running it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStateReport {
    pub job: JobId,
    pub attempt: AttemptId,
    /// The subtask's index in the job's execution plan.
    pub subtask: u32,
    pub state: ExecutionState,
    /// Why it failed, when `state` is `Failed`.
    pub error: Option<String>,
    /// Counters per chained vertex (vertex index, counters).
    pub metrics: Vec<(u32, OperatorMetrics)>,
}

/// From the JobManager to a TaskManager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToTaskManager {
    Registered {
        heartbeat_interval_ms: u64,
    },
    RegistrationRefused {
        reason: String,
    },
    /// Run one subtask of a job in one of this TaskManager's slots.
    Deploy(Deployment),
    /// Stop every subtask of the attempt; each reports `Canceled` (or `Finished`/`Failed` if it
    /// ended first).
    CancelAttempt {
        job: JobId,
        attempt: AttemptId,
    },
    /// The job has ended; sent to every registered TaskManager. Output staged by `attempt` is
    /// published if `succeeded`; output staged by any other attempt of the job is discarded.
    JobEnded {
        job: JobId,
        attempt: AttemptId,
        succeeded: bool,
    },
    /// Stop the job, draining: the attempt's sources end their input here as if it were
    /// exhausted, so windows fire, sinks write the rest, and the job finishes.
    StopSources {
        job: JobId,
        attempt: AttemptId,
    },
    /// The answer to every heartbeat of a registered TaskManager: a TaskManager that hears
    /// nothing from its JobManager for several heartbeat intervals reconnects.
    HeartbeatReply,
}

/// Everything a TaskManager needs to run a subtask. The job travels as its job file's text: the
/// TaskManager parses it again (deterministically, to the same graph and plan) instead of the
/// wire carrying compiled expressions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub job: JobId,
    pub attempt: AttemptId,
    pub subtask: u32,
    pub slot: SlotIndex,
    pub job_file: String,
    pub parallelism: Option<u16>,
    /// Where every subtask of the attempt runs, for the data connections.
    pub locations: Vec<SubtaskLocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskLocation {
    pub subtask: u32,
    pub task_manager: TaskManagerId,
    /// The TaskManager's data address (`host:port`).
    pub address: String,
}

/// Between TaskManagers: the records of a channel, and the credits that pace them. A channel is
/// named by its consumer: (job, attempt, consumer subtask, input channel).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataMessage {
    /// One element for the consumer's input channel; it spends one credit.
    Element { job: JobId, attempt: AttemptId, subtask: u32, channel: u32, element: WireElement },
    /// The consumer can take `credits` more elements on this channel.
    Credit { job: JobId, attempt: AttemptId, subtask: u32, channel: u32, credits: u32 },
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::batch::{Batch, Column};
    use crate::dataflow::element::Element;
    use crate::protocol::{decode_message, encode_frame, FrameDecoder};

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(message: &T) {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).unwrap();
        let mut decoder = FrameDecoder::new();
        // Byte by byte, as a slow network would deliver it.
        let mut payload = None;
        for b in &bytes {
            decoder.push(std::slice::from_ref(b));
            if let Some(p) = decoder.next_frame().unwrap() {
                payload = Some(p);
            }
        }
        let back: T = decode_message(&payload.expect("a whole frame")).unwrap();
        assert_eq!(&back, message);
    }

    #[test]
    fn every_message_round_trips() {
        let (job, attempt) = (JobId(4), AttemptId(1));
        round_trip(&ToJobManager::Register(TaskManagerRegistration {
            id: TaskManagerId(9),
            address: "10.0.0.7:6124".into(),
            slots: 2,
            labels: BTreeMap::from([("tier".to_owned(), "edge".to_owned())]),
            protocol_version: 1,
        }));
        round_trip(&ToJobManager::Heartbeat);
        round_trip(&ToJobManager::Metrics(vec![SubtaskMetrics {
            job,
            attempt,
            subtask: 1,
            metrics: vec![(2, OperatorMetrics { records_in: 7, ..Default::default() })],
        }]));
        round_trip(&ToJobManager::TaskState(TaskStateReport {
            job,
            attempt,
            subtask: 3,
            state: ExecutionState::Failed,
            error: Some("operator `m`: division by zero".into()),
            metrics: vec![(0, OperatorMetrics { records_in: 5, records_out: 4, ..Default::default() })],
        }));
        round_trip(&ToTaskManager::Registered { heartbeat_interval_ms: 1000 });
        round_trip(&ToTaskManager::RegistrationRefused { reason: "no slots".into() });
        round_trip(&ToTaskManager::Deploy(Deployment {
            job,
            attempt,
            subtask: 0,
            slot: SlotIndex(1),
            job_file: "[[source]]\nname = \"g\"\n".into(),
            parallelism: Some(2),
            locations: vec![SubtaskLocation {
                subtask: 0,
                task_manager: TaskManagerId(9),
                address: "h:1".into(),
            }],
        }));
        round_trip(&ToTaskManager::CancelAttempt { job, attempt });
        round_trip(&ToTaskManager::JobEnded { job, attempt, succeeded: true });
        round_trip(&ToTaskManager::StopSources { job, attempt });
        round_trip(&ToTaskManager::HeartbeatReply);
        let batch = Batch::new(vec![Column::Int(vec![1, 2, 3])]);
        round_trip(&DataMessage::Element {
            job,
            attempt,
            subtask: 2,
            channel: 1,
            element: WireElement::from_element(Element::Batch(batch)),
        });
        round_trip(&DataMessage::Credit { job, attempt, subtask: 2, channel: 1, credits: 4 });
    }

    #[test]
    fn a_message_of_another_kind_is_refused_not_misread() {
        let mut bytes = Vec::new();
        encode_frame(&ToTaskManager::CancelAttempt { job: JobId(1), attempt: AttemptId(0) }, &mut bytes)
            .unwrap();
        let payload = &bytes[crate::protocol::FRAME_HEADER_BYTES..];
        // Variant 3 of ToTaskManager is not a variant of ToJobManager.
        assert!(decode_message::<ToJobManager>(payload).is_err());
    }
}
