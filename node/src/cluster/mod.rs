//! The cluster's nodes on the wire: the drivers that put the core's JobManager and TaskManager
//! roles on TCP, generic over the [`Runtime`](crate::net::Runtime) seam, and the client the CLI
//! talks to a JobManager with.

pub mod client;
pub mod jobmanager;
pub mod taskmanager;

pub use jobmanager::{run_job_manager, JobManagerNodeConfig};
pub use taskmanager::{run_task_manager, TaskManagerNodeConfig};
