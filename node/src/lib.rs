//! The Rivulet node: drives the deterministic core with threads, a clock, files and signals.
//!
//! - [`cluster`] puts the JobManager and TaskManager roles on TCP (`rivulet jobmanager`, `taskmanager`, the client commands);
//! - [`rest`] is the JobManager's REST API (JSON over HTTP) and the client the CLI uses it with;
//! - [`config`] gathers a node's settings from flags, environment variables and a TOML file;
//! - [`local_cluster`] runs a job on an embedded mini-cluster inside one process (`rivulet run`):
//!   a JobManager and TaskManagers on threads, connected in memory;
//! - [`alignment`] keeps the splits of a source together in event time across those threads;
//! - [`net`] is the network layer: the runtime seam, smol over TCP, the connection handshake;
//! - [`savepoint_file`] writes and reads savepoint files;
//! - [`connectors`] supplies the I/O connectors (files, stdout) the core cannot have, the file
//!   source among them in [`file_source`];
//! - [`progress`] turns counters into the live progress line and the final summary.

pub mod alignment;
pub mod checkpoint_store;
pub mod cluster;
pub mod config;
pub mod connectors;
pub mod dir_store;
pub mod file_source;
pub mod heed_store;
pub mod local_cluster;
pub mod net;
pub mod progress;
pub mod rest;
pub mod savepoint_file;
