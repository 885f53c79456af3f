//! The ResourceManager's vocabulary: its configuration, the inputs TaskManagers and JobMasters
//! send it, the outputs it emits, the reasons it refuses, and the status it reports.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{AttemptId, JobId, SlotId, TaskManagerId};
use crate::limits::{LABELS_MAX, LABEL_BYTES_MAX};
use crate::time::Instant;

/// The control-protocol version a ResourceManager accepts unless configured otherwise: the one
/// this build speaks.
pub const PROTOCOL_VERSION_DEFAULT: u16 = crate::protocol::PROTOCOL_VERSION;

/// How the ResourceManager watches TaskManagers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceManagerConfig {
    /// How often a TaskManager sends a heartbeat; told to it in [`Output::Registered`].
    pub heartbeat_interval: Duration,
    /// How long after its last heartbeat (or its registration) a TaskManager is declared dead.
    pub heartbeat_timeout: Duration,
    /// The only protocol version a registration may carry.
    pub protocol_version: u16,
}

impl Default for ResourceManagerConfig {
    /// One heartbeat a second, dead after five silent seconds: values for a LAN, where Flink's
    /// 10 s / 50 s would leave a job stalled for most of a minute after a machine fails.
    fn default() -> Self {
        ResourceManagerConfig {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            protocol_version: PROTOCOL_VERSION_DEFAULT,
        }
    }
}

impl ResourceManagerConfig {
    /// Checks the configuration a node read from flags or files before it builds a
    /// ResourceManager (which asserts it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroHeartbeatInterval);
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(ConfigError::TimeoutNotAboveInterval {
                interval: self.heartbeat_interval,
                timeout: self.heartbeat_timeout,
            });
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("heartbeat_interval must be longer than zero")]
    ZeroHeartbeatInterval,
    #[error(
        "heartbeat_timeout ({timeout:?}) must be longer than heartbeat_interval ({interval:?}), \
         or every TaskManager would be declared dead between two heartbeats"
    )]
    TimeoutNotAboveInterval { interval: Duration, timeout: Duration },
}

/// A TaskManager's request to join the cluster with its slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskManagerRegistration {
    pub id: TaskManagerId,
    /// Where other nodes reach it (`host:port`); the ResourceManager only stores and compares it.
    pub address: String,
    pub slots: u16,
    /// Free-form `name = value` pairs (`site = "plant-3"`, `arch = "arm64"`) slot requests place by.
    pub labels: BTreeMap<String, String>,
    pub protocol_version: u16,
}

/// A JobMaster's request for `count` slots for one attempt of its job, all at once, on
/// TaskManagers that carry every `placement` label with the same value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRequest {
    pub job: JobId,
    pub attempt: AttemptId,
    pub count: u16,
    pub placement: BTreeMap<String, String>,
}

/// The number the ResourceManager gives an accepted slot request, in arrival order; it comes
/// back in the grant, so an attempt that makes several requests can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotRequestId(pub u64);

impl fmt::Display for SlotRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request-{}", self.0)
    }
}

/// Who holds an allocated slot: one attempt of one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotOwner {
    pub job: JobId,
    pub attempt: AttemptId,
}

/// An effect of the ResourceManager, drained with `poll_output()`, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Tell TaskManager `tm` it is registered, and how often to send heartbeats.
    Registered { tm: TaskManagerId, heartbeat_interval: Duration },
    /// Tell the TaskManager that registered as `tm` from `address` why it was refused. The address
    /// tells a duplicate id's sender apart from the live TaskManager that owns the id.
    RegistrationRefused { tm: TaskManagerId, address: String, reason: RegistrationRefusal },
    /// Tell the JobMaster of `job` that `request` is granted: `slots` (exactly the requested
    /// count) belong to `attempt` until it releases them. Consecutive slots lie on different
    /// TaskManagers as far as the free slots allow, so subtask i can simply take `slots[i]`.
    SlotsGranted { request: SlotRequestId, job: JobId, attempt: AttemptId, slots: Vec<SlotId> },
    /// Tell the JobMaster of `job` that `attempt` lost `slots` with their TaskManager.
    SlotsLost { job: JobId, attempt: AttemptId, slots: Vec<SlotId> },
    /// TaskManager `id` is gone (heartbeat timeout or disconnection); its slots were released.
    TaskManagerDead { id: TaskManagerId },
}

/// Why a registration was refused; sent back to the TaskManager.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum RegistrationRefusal {
    #[error("protocol version {offered} is not the version {expected} this JobManager speaks")]
    ProtocolVersion { offered: u16, expected: u16 },
    #[error("an address must have 1 to {max} bytes, this one has {bytes}")]
    AddressLength { bytes: usize, max: usize },
    #[error("a TaskManager must offer at least one slot")]
    NoSlots,
    #[error("{slots} slots offered, at most {max} are accepted")]
    TooManySlots { slots: u16, max: u16 },
    #[error("labels: {0}")]
    Labels(#[from] LabelError),
    #[error("the id is held by a live TaskManager at {registered_address}")]
    DuplicateId { registered_address: String },
    #[error("the cluster already has its maximum of {max} TaskManagers")]
    TooManyTaskManagers { max: usize },
}

/// What is wrong with a set of labels (a TaskManager's labels or a request's placement).
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum LabelError {
    #[error("{labels} labels, at most {max} are accepted")]
    TooMany { labels: usize, max: usize },
    #[error("a label name must not be empty")]
    EmptyName,
    #[error("label name `{name}` has {bytes} bytes, at most {max} are accepted")]
    NameTooLong { name: String, bytes: usize, max: usize },
    #[error("the value of label `{name}` has {bytes} bytes, at most {max} are accepted")]
    ValueTooLong { name: String, bytes: usize, max: usize },
}

/// Checks `labels` against [`LABELS_MAX`] and [`LABEL_BYTES_MAX`].
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), LabelError> {
    if labels.len() > LABELS_MAX {
        return Err(LabelError::TooMany { labels: labels.len(), max: LABELS_MAX });
    }
    for (name, value) in labels {
        if name.is_empty() {
            return Err(LabelError::EmptyName);
        }
        if name.len() > LABEL_BYTES_MAX {
            return Err(LabelError::NameTooLong {
                name: prefix(name, LABEL_BYTES_MAX),
                bytes: name.len(),
                max: LABEL_BYTES_MAX,
            });
        }
        if value.len() > LABEL_BYTES_MAX {
            return Err(LabelError::ValueTooLong {
                name: name.clone(),
                bytes: value.len(),
                max: LABEL_BYTES_MAX,
            });
        }
    }
    Ok(())
}

/// The first `max` bytes of `s` (at a character boundary) followed by `…`, so an error message
/// names an oversized input without repeating all of it.
fn prefix(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Why a slot request was refused; returned to the JobMaster that made it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SlotRequestError {
    #[error("a slot request must ask for at least one slot")]
    ZeroSlots,
    #[error("{count} slots requested, at most {max} may be requested at once")]
    TooManySlots { count: u16, max: u16 },
    #[error("placement: {0}")]
    Placement(#[from] LabelError),
    #[error("{max} slot requests are already waiting")]
    TooManyPending { max: usize },
}

/// A heartbeat or disconnection named a TaskManager that is not registered (never was, or was
/// declared dead). The driver should tell it to register again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{0} is not registered")]
pub struct UnknownTaskManager(pub TaskManagerId);

/// What a release freed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    pub slots: usize,
    pub pending_requests_dropped: usize,
}

/// One slot as the REST API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotStatus {
    pub id: SlotId,
    /// `None` while the slot is free.
    pub owner: Option<SlotOwner>,
}

/// One live TaskManager as the REST API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskManagerStatus {
    pub id: TaskManagerId,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    /// Every slot in index order.
    pub slots: Vec<SlotStatus>,
    pub free_slots: u16,
    pub registered_at: Instant,
    pub last_heartbeat: Instant,
    /// When it will be declared dead unless it sends a heartbeat first.
    pub heartbeat_deadline: Instant,
}

/// A slot request that is waiting, and what it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequestStatus {
    pub request: SlotRequestId,
    pub job: JobId,
    pub attempt: AttemptId,
    pub count: u16,
    pub placement: BTreeMap<String, String>,
    /// The placement labels no live TaskManager carries: the request waits at least until one
    /// with them registers. Empty when only capacity is missing.
    pub missing_labels: BTreeMap<String, String>,
    /// Live TaskManagers that carry every placement label.
    pub matching_task_managers: u32,
    /// Free slots on those TaskManagers: always fewer than `count`, or it would have been granted.
    pub matching_free_slots: u32,
    pub waiting_since: Instant,
}

/// Counters of what happened, for metrics and for the guard clauses that reject peers' input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceManagerCounters {
    pub registrations: u64,
    /// A live TaskManager registered again unchanged (a retry whose answer was lost).
    pub registrations_repeated: u64,
    pub registrations_refused: u64,
    /// A live TaskManager registered again from its address with other slots or labels: it
    /// restarted with a new configuration, and its old registration was dropped.
    pub task_managers_replaced: u64,
    pub task_managers_timed_out: u64,
    pub task_managers_disconnected: u64,
    pub heartbeats_from_unknown: u64,
    pub slot_requests_refused: u64,
    pub slot_requests_dropped: u64,
    pub slots_granted: u64,
    pub slots_released: u64,
    pub slots_lost: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_a_lan_and_valid() {
        let config = ResourceManagerConfig::default();
        assert_eq!(config.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(config.heartbeat_timeout, Duration::from_secs(5));
        assert_eq!(config.validate(), Ok(()));
        let bad = ResourceManagerConfig { heartbeat_timeout: Duration::from_secs(1), ..config };
        assert!(matches!(bad.validate(), Err(ConfigError::TimeoutNotAboveInterval { .. })));
        let bad = ResourceManagerConfig { heartbeat_interval: Duration::ZERO, ..config };
        assert_eq!(bad.validate(), Err(ConfigError::ZeroHeartbeatInterval));
    }

    #[test]
    fn oversized_label_names_are_cut_at_a_char_boundary_in_errors() {
        let name = "é".repeat(LABEL_BYTES_MAX); // two bytes each
        let labels = BTreeMap::from([(name.clone(), "v".to_owned())]);
        let Err(LabelError::NameTooLong { name: shown, bytes, max }) = check_labels(&labels) else {
            panic!("expected NameTooLong");
        };
        assert_eq!((bytes, max), (2 * LABEL_BYTES_MAX, LABEL_BYTES_MAX));
        assert_eq!(shown, format!("{}…", "é".repeat(LABEL_BYTES_MAX / 2)));
        assert_eq!(
            check_labels(&BTreeMap::from([(String::new(), "v".to_owned())])),
            Err(LabelError::EmptyName)
        );
    }
}
