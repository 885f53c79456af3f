//! The TaskManager role: a worker with task slots that runs subtasks, reports their states to the
//! JobManager, heartbeats, and exchanges elements with other TaskManagers under credit-based flow
//! control.
//!
//! # Model
//!
//! The TaskManager is a sans-IO state machine with the crate's common shape. The driver feeds it the
//! JobManager connection's events ([`TaskManager::handle_job_manager_connected`],
//! [`TaskManager::handle_job_manager_message`], [`TaskManager::handle_job_manager_lost`]), data
//! messages from peer TaskManagers ([`TaskManager::handle_data_message`]), the loss of a data link
//! to a peer ([`TaskManager::handle_peer_lost`]) and timeouts
//! ([`TaskManager::handle_timeout`]); it drains [`TaskManager::poll_output`] after each, and calls
//! [`TaskManager::run`] to do the CPU work (moving elements through subtasks) until it returns 0.
//! Then it waits for input or until [`TaskManager::poll_timeout`].
//!
//! ```text
//!   Deploy ─▶ slot + Subtask ─┬─ local producer:  bounded local queue (INPUT_QUEUE_ELEMENTS_MAX)
//!                             └─ remote producer: CreditReceiver ◀══ Element / Credit ══▶ CreditSender
//! ```
//!
//! A channel between two subtasks of one attempt on this TaskManager is a bounded local queue;
//! across TaskManagers it is a [`CreditSender`](crate::dataflow::credit::CreditSender) at the
//! producer and a [`CreditReceiver`](crate::dataflow::credit::CreditReceiver) at the consumer. A
//! subtask with undelivered output (a full local queue, a full sender backlog, or a local consumer
//! not deployed yet) takes no input and polls no source: that is the back-pressure.
//!
//! # Failure and cancellation
//!
//! A subtask that fails (an operator error, or a peer breaking the protocol on one of its channels)
//! reports `Failed` and leaves its slot; the other subtasks of its attempt run on until the
//! JobMaster cancels the attempt, as in Flink. Channels are not resent: when the driver loses a
//! data link to a peer TaskManager ([`TaskManager::handle_peer_lost`]), messages on it may be lost,
//! so every running subtask with a channel to or from that peer fails ("data link to tm-N lost")
//! and its attempt is restarted. A cancelled attempt is remembered (a bounded number
//! of them), so data and credits that arrive for it later are dropped and counted. When the
//! JobManager connection is lost, the TaskManager cancels every subtask without reporting (there is
//! no one to report to), as Flink's TaskManager fails the tasks of a JobManager it lost.

mod attempt;
mod channels;
mod checkpoints;
mod task_manager;

use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;

use crate::dataflow::credit::CreditConfig;
use crate::ids::{AttemptId, JobId, SlotIndex, TaskManagerId};
use crate::protocol::messages::{DataMessage, ToJobManager};

pub use task_manager::TaskManager;

/// Heartbeat intervals without any message from the JobManager (it answers every heartbeat)
/// after which a TaskManager gives its connection up and reconnects: a connection that died
/// silently (a partition, a dropped NAT entry) would otherwise leave it idle for good.
pub const JOB_MANAGER_SILENT_HEARTBEATS: u32 = 5;

/// One source of one attempt, whose splits a [`SourceAlignment`] keeps together in event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlignedSource {
    pub job: JobId,
    pub attempt: AttemptId,
    /// The source's vertex in the job graph.
    pub vertex: u32,
    /// How many splits (subtasks) the source has.
    pub splits: u16,
}

/// Event-time alignment of a source's splits, supplied by a driver whose TaskManagers can share
/// one cheaply (the embedded mini-cluster's threads; [`TaskManager::set_source_alignment`]).
/// A split that runs far ahead of its source's slowest split only opens windows that cannot fire
/// yet, so window state grows with the skew: a split the alignment holds back is not polled, and
/// asked again [`ALIGNMENT_REPOLL_MICROS`] later. Without one, splits run freely.
pub trait SourceAlignment: Send {
    /// Split `split` of `source` has emitted `watermark` (`WATERMARK_MAX` once it has ended): may
    /// it produce more now?
    fn may_advance(&self, source: AlignedSource, split: u16, watermark: crate::time::EventTime) -> bool;
}

/// How soon a split held back by its [`SourceAlignment`] is asked again.
pub const ALIGNMENT_REPOLL_MICROS: u64 = 200;

/// How a TaskManager starts.
#[derive(Clone, Debug)]
pub struct TaskManagerConfig {
    pub id: TaskManagerId,
    /// Where peers reach this TaskManager's data plane (`host:port`).
    pub data_address: String,
    pub slots: u16,
    pub labels: BTreeMap<String, String>,
    /// The heartbeat interval used when the JobManager's `Registered` names none (0).
    pub heartbeat_interval: Duration,
    /// The bounds of every channel; both ends of a channel must use the same.
    pub credits: CreditConfig,
}

/// An effect for the driver to carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    ToJobManager(ToJobManager),
    /// A data message to the TaskManager `to`, reachable at `address`.
    ToTaskManager {
        to: TaskManagerId,
        address: String,
        message: DataMessage,
    },
    /// The JobManager has been silent for [`JOB_MANAGER_SILENT_HEARTBEATS`] heartbeat intervals:
    /// the TaskManager treated it as lost (as [`TaskManager::handle_job_manager_lost`]); the
    /// driver closes the connection and connects again.
    JobManagerSilent,
    /// Publishing (`published`) or discarding the output an attempt's sinks staged failed: the
    /// driver reports it (the job's outcome does not change any more).
    EndJobFailed {
        job: JobId,
        attempt: AttemptId,
        published: bool,
        error: String,
    },
}

/// Where the TaskManager stands with the JobManager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationStatus {
    /// No JobManager connection.
    Disconnected,
    /// Registration sent, no answer yet.
    Registering,
    /// Registered; heartbeating every `heartbeat_interval`.
    Registered { heartbeat_interval: Duration },
    /// The JobManager refused the registration; the TaskManager stays idle.
    Refused { reason: String },
}

/// Counts of input the TaskManager dropped or refused instead of applying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskManagerCounters {
    /// Elements for a subtask not running here, or for an unknown or cancelled attempt.
    pub elements_dropped: u64,
    /// Credits for a sender that is not here (ended, cancelled, or too many parked).
    pub credits_dropped: u64,
    /// Messages that broke the protocol: wrong sender, unknown channel, deployments while not
    /// registered.
    pub messages_refused: u64,
    /// Deployments reported `Failed` before their subtask started.
    pub deployments_refused: u64,
    /// Subtasks whose output went nowhere because their consumer here had failed; their elements.
    pub outputs_discarded: u64,
}

/// Who uses one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotOccupant {
    pub job: JobId,
    pub attempt: AttemptId,
    pub subtask: u32,
}

/// One slot of this TaskManager: free (`None`) or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot: SlotIndex,
    pub occupant: Option<SlotOccupant>,
}

/// Where a subtask running here is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubtaskPhase {
    /// Taking input or polling its source.
    Running,
    /// Its operators are done; its last output is still being delivered.
    Draining,
}

/// A subtask running on this TaskManager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubtaskInfo {
    pub occupant: SlotOccupant,
    pub slot: SlotIndex,
    pub phase: SubtaskPhase,
}

/// Why a deployment was refused; reported as the subtask's `Failed` error text.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DeployError {
    #[error("the job file does not parse: {0}")]
    JobFile(String),
    #[error("subtask {subtask} does not exist: the plan has {count} subtasks")]
    NoSuchSubtask { subtask: u32, count: usize },
    #[error("slot {slot} does not exist: this TaskManager has {slots} slots")]
    NoSuchSlot { slot: u16, slots: u16 },
    #[error("slot {slot} is in use by {job}/{attempt} subtask {subtask}")]
    SlotBusy { slot: u16, job: JobId, attempt: AttemptId, subtask: u32 },
    #[error("subtask {subtask} of this attempt is already deployed here")]
    AlreadyDeployed { subtask: u32 },
    #[error("the attempt was cancelled on this TaskManager")]
    AttemptCanceled,
    #[error("the deployment names no location for subtask {subtask}, a peer of subtask {of}")]
    NoLocation { subtask: u32, of: u32 },
    #[error("the subtask cannot start: {0}")]
    Instantiate(String),
    #[error("the subtask cannot be restored: {0}")]
    Restore(String),
}

#[cfg(test)]
mod task_manager_tests;
