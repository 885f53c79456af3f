//! `key_by`: declares the key of a stream. Records pass unchanged; the edge leaving a `key_by`
//! partitions by the key's hash through key groups, so each key reaches one subtask downstream.

use crate::batch::Batch;
use crate::dataflow::operator::{Operator, Output, TaskError};

#[derive(Default)]
pub struct KeyBy;

impl Operator for KeyBy {
    fn on_batch(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskError> {
        out.batch(batch);
        Ok(())
    }
}
