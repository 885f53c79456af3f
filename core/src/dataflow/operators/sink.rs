//! Sinks: the operator at the end of a chain that hands records to a [`SinkWriter`].
//!
//! Writers that do I/O (files, stdout) live in the node crate; the core has the `count` writer
//! and an in-memory collector for tests and simulation.

use crate::batch::Batch;
use crate::dataflow::operator::{Operator, Output, TaskError};

/// Receives a sink's records. `finish` is called once, at the end of bounded input; a writer that
/// stages output (a file part) makes it visible only then.
pub trait SinkWriter: Send {
    fn write(&mut self, batch: &Batch) -> Result<(), String>;
    fn finish(&mut self) -> Result<(), String> {
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
}
