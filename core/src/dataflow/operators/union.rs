//! `union`: merges streams of one schema. The subtask's input gate already interleaves the
//! inputs' batches and takes the minimum of their watermarks, so the operator only passes through.

use crate::batch::Batch;
use crate::dataflow::operator::{Operator, Output, TaskError};

#[derive(Default)]
pub struct Union;

impl Operator for Union {
    fn on_batch(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskError> {
        out.batch(batch);
        Ok(())
    }
}
