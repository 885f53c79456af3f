//! The Rivulet node: drives the deterministic core with threads, a clock, files and signals.
//!
//! - [`runner`] runs a job on an embedded mini-cluster inside one process (`rivulet run`);
//! - [`net`] is the network layer: the runtime seam, smol over TCP, the connection handshake;
//! - [`connectors`] supplies the I/O connectors (files, stdout) the core cannot have;
//! - [`progress`] turns counters into the live progress line and the final summary.

pub mod alignment;
pub mod connectors;
pub mod net;
pub mod progress;
pub mod runner;
