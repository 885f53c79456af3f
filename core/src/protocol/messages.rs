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
use crate::ids::{AttemptId, CheckpointId, JobId, SlotIndex, TaskManagerId};
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
    /// A chunk of a subtask's snapshot for a checkpoint; the last chunk (`offset + bytes.len()
    /// == total`) is the subtask's acknowledgement of the checkpoint.
    CheckpointState(SnapshotChunk),
    /// A subtask could not take the checkpoint (a source that cannot replay, a sink that could not
    /// pre-commit): the checkpoint is aborted.
    CheckpointDeclined {
        job: JobId,
        attempt: AttemptId,
        subtask: u32,
        checkpoint: CheckpointId,
        reason: String,
    },
}

/// A piece of a subtask's snapshot bytes (`encode_snapshot`), at most `SNAPSHOT_CHUNK_BYTES_MAX`,
/// sent in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub job: JobId,
    pub attempt: AttemptId,
    pub subtask: u32,
    pub checkpoint: CheckpointId,
    /// Where the chunk starts in the snapshot, and the snapshot's whole length.
    pub offset: u64,
    pub total: u64,
    pub bytes: Vec<u8>,
}

impl SnapshotChunk {
    /// Whether this is the last chunk.
    pub fn is_last(&self) -> bool {
        self.offset.saturating_add(self.bytes.len() as u64) == self.total
    }

    /// `snapshot` cut into chunks for `subtask` of `attempt`.
    pub fn split(
        job: JobId,
        attempt: AttemptId,
        subtask: u32,
        checkpoint: CheckpointId,
        snapshot: &[u8],
    ) -> Vec<SnapshotChunk> {
        let total = snapshot.len() as u64;
        let pieces: Vec<&[u8]> = if snapshot.is_empty() {
            vec![&[]]
        } else {
            snapshot.chunks(crate::limits::SNAPSHOT_CHUNK_BYTES_MAX).collect()
        };
        let mut offset = 0;
        pieces
            .into_iter()
            .map(|piece| {
                let chunk =
                    SnapshotChunk { job, attempt, subtask, checkpoint, offset, total, bytes: piece.to_vec() };
                offset += piece.len() as u64;
                chunk
            })
            .collect()
    }
}

/// Assembles a snapshot from its chunks, in order, refusing one that breaks the order or grows
/// past `SUBTASK_SNAPSHOT_BYTES_MAX`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotAssembly {
    bytes: Vec<u8>,
    total: u64,
}

impl SnapshotAssembly {
    /// Adds a chunk; `Ok(true)` once the snapshot is whole.
    pub fn push(&mut self, chunk: &SnapshotChunk) -> Result<bool, String> {
        if chunk.total > crate::limits::SUBTASK_SNAPSHOT_BYTES_MAX as u64 {
            return Err(format!(
                "a snapshot of {} bytes is over the limit of {}",
                chunk.total,
                crate::limits::SUBTASK_SNAPSHOT_BYTES_MAX
            ));
        }
        if chunk.bytes.len() > crate::limits::SNAPSHOT_CHUNK_BYTES_MAX {
            return Err(format!("a snapshot chunk of {} bytes is over the limit", chunk.bytes.len()));
        }
        if chunk.offset != self.bytes.len() as u64 || (!self.bytes.is_empty() && chunk.total != self.total) {
            return Err(format!(
                "a snapshot chunk at offset {} of {} after {} of {} bytes",
                chunk.offset,
                chunk.total,
                self.bytes.len(),
                self.total
            ));
        }
        if chunk.offset + chunk.bytes.len() as u64 > chunk.total {
            return Err(format!("a snapshot chunk runs past the snapshot's {} bytes", chunk.total));
        }
        self.total = chunk.total;
        self.bytes.extend_from_slice(&chunk.bytes);
        Ok(self.bytes.len() as u64 == self.total)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
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
    /// Take checkpoint `checkpoint`: every source subtask of the attempt running here snapshots
    /// its state and sends the barrier downstream.
    TriggerCheckpoint {
        job: JobId,
        attempt: AttemptId,
        checkpoint: CheckpointId,
    },
    /// Checkpoint `checkpoint` is complete and durably recorded: the attempt's sinks commit what
    /// they pre-committed for it (and for earlier ones).
    CheckpointComplete {
        job: JobId,
        attempt: AttemptId,
        checkpoint: CheckpointId,
    },
    /// A chunk of the snapshot a subtask is to be restored from, sent before its `Deploy` (whose
    /// `restore_from` names the checkpoint).
    RestoreState(SnapshotChunk),
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
    /// The checkpoint the subtask starts from; its snapshot came before in `RestoreState` chunks.
    pub restore_from: Option<CheckpointId>,
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
    /// Nothing: a link's sender writes it after a second without anything else to send, so that
    /// the receiver can tell a quiet link from a stalled one (`DATA_LINK_SILENCE_MAX`).
    KeepAlive,
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
            restore_from: Some(CheckpointId(3)),
        }));
        let checkpoint = CheckpointId(5);
        round_trip(&ToTaskManager::TriggerCheckpoint { job, attempt, checkpoint });
        round_trip(&ToTaskManager::CheckpointComplete { job, attempt, checkpoint });
        for chunk in SnapshotChunk::split(job, attempt, 1, checkpoint, &[1, 2, 3]) {
            round_trip(&ToTaskManager::RestoreState(chunk.clone()));
            round_trip(&ToJobManager::CheckpointState(chunk));
        }
        round_trip(&ToJobManager::CheckpointDeclined {
            job,
            attempt,
            subtask: 0,
            checkpoint,
            reason: "no".into(),
        });
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
    fn snapshots_travel_in_bounded_chunks_and_reassemble_in_order_only() {
        let limit = crate::limits::SNAPSHOT_CHUNK_BYTES_MAX;
        let snapshot: Vec<u8> = (0..limit * 2 + 5).map(|i| i as u8).collect();
        let chunks = SnapshotChunk::split(JobId(1), AttemptId(0), 2, CheckpointId(1), &snapshot);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.bytes.len() <= limit));
        let mut assembly = SnapshotAssembly::default();
        assert_eq!(assembly.push(&chunks[0]), Ok(false));
        assert!(assembly.clone().push(&chunks[2]).is_err(), "out of order");
        assert_eq!(assembly.push(&chunks[1]), Ok(false));
        assert_eq!(assembly.push(&chunks[2]), Ok(true));
        assert_eq!(assembly.into_bytes(), snapshot);
        let empty = SnapshotChunk::split(JobId(1), AttemptId(0), 2, CheckpointId(1), &[]);
        assert_eq!(SnapshotAssembly::default().push(&empty[0]), Ok(true));
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
