//! The JobManager's roles, as in Apache Flink: the ResourceManager (TaskManagers and their task
//! slots), the JobMaster (one job's attempts, subtasks and restarts), and the per-job execution
//! states the JobMaster tracks.
//!
//! Every role is a sans-IO state machine with the crate's common shape: `handle_*(&mut self, now,
//! input)` applies an input, `poll_output()` drains the effects it caused, `poll_timeout()` says
//! when `handle_timeout(now)` must be called next, and `assert_invariants(&self)` checks the role's
//! invariants (run after every step in tests and in the simulator).

pub mod checkpoint_coordinator;
pub mod execution_state;
pub mod job_manager;
pub mod job_master;
pub mod resource_manager;
mod resource_types;
