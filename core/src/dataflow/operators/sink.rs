//! Sinks: the operator at the end of a chain that hands records to a [`SinkWriter`].
//!
//! Writers that do I/O (files, stdout) live in the node crate; the core has the `count` writer
//! and an in-memory collector for tests and simulation.

use crate::batch::Batch;
use crate::dataflow::operator::{Operator, Output, TaskError};
use crate::ids::CheckpointId;

/// Receives a sink's records. `finish` is called once, at the end of bounded input; a writer that
/// stages output (a file part) makes it visible only then (when the job has succeeded).
///
/// # Two-phase commit
///
/// With checkpoints, a transactional writer pre-commits at each checkpoint: `pre_commit(n)` makes
/// what it wrote since the previous checkpoint a pending transaction (for a file sink, a closed
/// part file under a pending name) and returns a handle that names it; the handle is part of the
/// checkpoint. `commit(n)` makes every transaction pre-committed for checkpoints up to `n` visible,
/// once the coordinator has recorded checkpoint `n` as complete. After a failure, a new writer is
/// given the handle of the checkpoint the job restarts from with `restore`: it commits that
/// handle's transactions (the notice may have been lost in the crash) and discards everything
/// staged after them. `commit` and `restore` are idempotent. A writer that is not transactional
/// (stdout, count) keeps the defaults: its output may repeat after a restart.
pub trait SinkWriter: Send {
    fn write(&mut self, batch: &Batch) -> Result<(), String>;
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn pre_commit(&mut self, _checkpoint: CheckpointId) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    fn commit(&mut self, _checkpoint: CheckpointId) -> Result<(), String> {
        Ok(())
    }

    fn restore(&mut self, _handle: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// The `count` sink: discards records; the chain's records-in counter is the count.
#[derive(Default)]
pub struct CountWriter;

impl SinkWriter for CountWriter {
    fn write(&mut self, _batch: &Batch) -> Result<(), String> {
        Ok(())
    }
}

pub struct Sink {
    name: String,
    writer: Box<dyn SinkWriter>,
}

impl Sink {
    pub fn new(name: impl Into<String>, writer: Box<dyn SinkWriter>) -> Sink {
        Sink { name: name.into(), writer }
    }
}

impl Operator for Sink {
    fn on_batch(&mut self, batch: Batch, _out: &mut Output) -> Result<(), TaskError> {
        self.writer.write(&batch).map_err(|message| TaskError::Sink { sink: self.name.clone(), message })
    }

    fn on_watermark(&mut self, _watermark: i64, _out: &mut Output) -> Result<(), TaskError> {
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Output) -> Result<(), TaskError> {
        self.writer.finish().map_err(|message| TaskError::Sink { sink: self.name.clone(), message })
    }

    fn snapshot_state(&mut self, checkpoint: CheckpointId) -> Result<Vec<u8>, TaskError> {
        let error = |message| TaskError::Sink { sink: self.name.clone(), message };
        let handle = self.writer.pre_commit(checkpoint).map_err(error)?;
        if cfg!(feature = "planted-early-commit") {
            // Planted bug: commit before the checkpoint is complete. Output of a checkpoint that
            // never completes stays visible and is written again after the restart.
            self.writer.commit(checkpoint).map_err(error)?;
        }
        Ok(handle)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.writer.restore(state).map_err(|e| format!("sink `{}`: {e}", self.name))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), TaskError> {
        if cfg!(feature = "planted-early-commit") {
            return Ok(()); // committed at pre-commit already
        }
        self.writer.commit(checkpoint).map_err(|message| TaskError::Sink { sink: self.name.clone(), message })
    }
}
