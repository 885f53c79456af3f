//! Connectors that need no I/O: the deterministic generator and the `count` sink, plus the
//! factory seam through which drivers supply the I/O connectors (files, stdout).

pub mod generator;

use crate::dataflow::operators::sink::{CountWriter, SinkWriter};
use crate::dataflow::source::SourceReader;
use crate::graph::{SinkConnector, SourceConnector};
use crate::ids::{AttemptId, CheckpointId, JobId};
use crate::types::Schema;

/// Makes the reader of one source split and the writer of one sink subtask. The node crate
/// implements it for files and stdout and falls back to [`BuiltinConnectors`] for the rest.
pub trait ConnectorFactory {
    fn source_reader(
        &self,
        connector: &SourceConnector,
        vertex_name: &str,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SourceReader>, String>;

    /// Called once when the job has ended: sinks that staged output make it visible if the job
    /// `succeeded`, and discard it otherwise, so a failed job publishes nothing.
    fn end_job(&self, _succeeded: bool) -> Result<(), String> {
        Ok(())
    }

    /// Checkpoint `checkpoint` of this attempt is complete: commit what its sinks pre-committed
    /// for it and earlier ones, including sinks that have finished since (their writers are gone).
    fn commit_checkpoint(&self, _checkpoint: CheckpointId) -> Result<(), String> {
        Ok(())
    }

    /// The factory for one attempt of one job on a TaskManager, when this factory keeps state
    /// per job (as file sinks keep the output they staged): the TaskManager then makes every
    /// subtask of that attempt with it and ends it with the job's outcome — published when the
    /// JobManager says that attempt succeeded, discarded when the attempt is cancelled or another
    /// attempt ended the job. `None` (the default) uses this factory itself for every attempt.
    fn for_attempt(&self, _job: JobId, _attempt: AttemptId) -> Option<Box<dyn ConnectorFactory + Send>> {
        None
    }

    /// `input_schema` is the schema of the records the sink receives.
    fn sink_writer(
        &self,
        connector: &SinkConnector,
        vertex_name: &str,
        input_schema: &Schema,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SinkWriter>, String>;
}

/// The connectors the core can run by itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuiltinConnectors;

impl ConnectorFactory for BuiltinConnectors {
    fn source_reader(
        &self,
        connector: &SourceConnector,
        vertex_name: &str,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SourceReader>, String> {
        match connector {
            SourceConnector::Generator(config) => {
                Ok(Box::new(generator::Generator::new(config.clone(), subtask_index, parallelism)))
            }
            other => {
                Err(format!("source `{vertex_name}`: the {} connector needs a node driver", other.name()))
            }
        }
    }

    fn sink_writer(
        &self,
        connector: &SinkConnector,
        vertex_name: &str,
        _input_schema: &Schema,
        _subtask_index: u16,
        _parallelism: u16,
    ) -> Result<Box<dyn SinkWriter>, String> {
        match connector {
            SinkConnector::Count => Ok(Box::new(CountWriter)),
            other => Err(format!("sink `{vertex_name}`: the {} connector needs a node driver", other.name())),
        }
    }
}
