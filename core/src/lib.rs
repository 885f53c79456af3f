//! Rivulet's deterministic core: the dataflow engine, job graphs and job files.
//!
//! Nothing here does I/O, starts a thread, reads a clock or draws OS randomness: drivers pass
//! time in and carry effects out. That is what lets the same code run in the embedded runner,
//! on a TaskManager, and under the deterministic simulator.
//!
//! The layers, each depending only on those above it:
//! - [`types`], [`batch`], [`expr`]: schemas, columnar batches, vectorized expressions;
//! - [`key`], [`state`]: keys, key groups, keyed state;
//! - [`dataflow`]: operators, subtasks and the execution plan;
//! - [`graph`], [`jobfile`]: validated job graphs and the TOML job files that describe them.

pub mod batch;
pub mod connectors;
pub mod dataflow;
pub mod expr;
pub mod formats;
pub mod graph;
pub mod ids;
pub mod jobfile;
pub mod jobmanager;
pub mod key;
pub mod limits;
pub mod protocol;
pub mod state;
pub mod taskmanager;
pub mod testing;
pub mod time;
pub mod types;
