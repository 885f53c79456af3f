//! Newtypes for every identifier the cluster's roles exchange, so that a slot id can never be
//! passed where a job id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id!(
    /// A job, as the Dispatcher numbers submissions.
    JobId(u64),
    "job-"
);
id!(
    /// A TaskManager (a worker process), chosen by the node from its configuration or at random
    /// at start-up and passed in.
    TaskManagerId(u64),
    "tm-"
);
id!(
    /// One task slot of a TaskManager: the unit of resource a subtask runs in.
    SlotIndex(u16),
    "slot-"
);
id!(
    /// One execution attempt of a job; numbered from 0 and increased on every restart.
    AttemptId(u32),
    "attempt-"
);
id!(
    /// A completed or pending checkpoint.
    CheckpointId(u64),
    "checkpoint-"
);
id!(
    /// A cluster: peers refuse connections from nodes of another cluster.
    ClusterId(u64),
    "cluster-"
);

/// A slot across the cluster: a TaskManager and one of its slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotId {
    pub task_manager: TaskManagerId,
    pub slot: SlotIndex,
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.task_manager, self.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_with_their_kind() {
        assert_eq!(JobId(7).to_string(), "job-7");
        assert_eq!(SlotId { task_manager: TaskManagerId(3), slot: SlotIndex(1) }.to_string(), "tm-3/slot-1");
    }
}
