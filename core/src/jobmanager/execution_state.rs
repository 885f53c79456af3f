//! The states of one subtask's execution attempt, as in Flink, and the transitions between them.
//!
//! ```text
//! Created → Scheduled → Deploying → Running → Finished
//!    │          │           │          │
//!    └──────────┴───────────┴──────────┴──→ Canceling → Canceled
//!                           └──────────┴──→ Failed
//! ```
//! Finished, Canceled and Failed are final. A slot is held from Scheduled until a final state.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExecutionState {
    /// Known to the JobMaster, waiting for a slot.
    Created,
    /// A slot is assigned.
    Scheduled,
    /// The deployment was sent to the TaskManager.
    Deploying,
    /// The TaskManager reported the subtask running.
    Running,
    Finished,
    /// A cancel was sent; waiting for the TaskManager to confirm.
    Canceling,
    Canceled,
    Failed,
}

impl ExecutionState {
    pub fn is_final(self) -> bool {
        matches!(self, ExecutionState::Finished | ExecutionState::Canceled | ExecutionState::Failed)
    }

    /// Whether the attempt holds a slot in this state.
    pub fn holds_slot(self) -> bool {
        matches!(
            self,
            ExecutionState::Scheduled
                | ExecutionState::Deploying
                | ExecutionState::Running
                | ExecutionState::Canceling
        )
    }

    /// Whether `self → next` is a legal transition. Peers' reports that would break it are refused
    /// (a stale or reordered message), never applied.
    pub fn can_become(self, next: ExecutionState) -> bool {
        use ExecutionState::*;
        matches!(
            (self, next),
            (Created, Scheduled)
                | (Scheduled, Deploying)
                | (Deploying, Running)
                | (Running, Finished)
                | (Deploying, Finished)
                | (Created | Scheduled | Deploying | Running, Canceling)
                | (Canceling, Canceled)
                | (Created, Canceled)
                | (Deploying | Running | Canceling, Failed)
        )
    }

    pub fn name(self) -> &'static str {
        use ExecutionState::*;
        match self {
            Created => "created",
            Scheduled => "scheduled",
            Deploying => "deploying",
            Running => "running",
            Finished => "finished",
            Canceling => "canceling",
            Canceled => "canceled",
            Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExecutionState::*;
    use super::*;

    const ALL: [ExecutionState; 8] =
        [Created, Scheduled, Deploying, Running, Finished, Canceling, Canceled, Failed];

    #[test]
    fn final_states_have_no_way_out() {
        for from in ALL.into_iter().filter(|s| s.is_final()) {
            assert!(ALL.iter().all(|&to| !from.can_become(to)), "{from:?} is final");
        }
    }

    #[test]
    fn the_normal_life_is_allowed_and_skipping_ahead_is_not() {
        let life = [Created, Scheduled, Deploying, Running, Finished];
        for pair in life.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{:?} → {:?}", pair[0], pair[1]);
        }
        assert!(!Created.can_become(Running));
        assert!(!Scheduled.can_become(Finished));
        assert!(!Running.can_become(Deploying));
    }

    #[test]
    fn every_live_state_can_be_canceled_and_slots_are_held_in_between() {
        for s in ALL.into_iter().filter(|s| !s.is_final() && *s != Canceling) {
            assert!(s.can_become(Canceling));
        }
        assert!(
            !Created.holds_slot() && Scheduled.holds_slot() && Canceling.holds_slot() && !Failed.holds_slot()
        );
    }
}
