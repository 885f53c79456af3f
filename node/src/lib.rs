//! The Rivulet node: drives the deterministic core with threads, a clock, files and signals.
//!
//! - [`cluster`] puts the JobManager and TaskManager roles on TCP (`rivulet jobmanager`, `taskmanager`, the client commands);
//! - [`runner`] runs a job on an embedded mini-cluster inside one process (`rivulet run`);
//! - [`net`] is the network layer: the runtime seam, smol over TCP, the connection handshake;
//! - [`connectors`] supplies the I/O connectors (files, stdout) the core cannot have;
//! - [`progress`] turns counters into the live progress line and the final summary.

pub mod alignment;
pub mod cluster;
pub mod connectors;
pub mod net;
pub mod progress;
pub mod runner;
