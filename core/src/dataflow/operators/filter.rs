//! `filter`: keeps the records for which a boolean expression holds.

use crate::batch::Batch;
use crate::dataflow::operator::{Operator, Output, TaskError};
use crate::expr::Expr;

pub struct Filter {
    name: String,
    predicate: Expr,
    mask: Vec<bool>,
}

impl Filter {
    pub fn new(name: impl Into<String>, predicate: Expr) -> Filter {
        Filter { name: name.into(), predicate, mask: Vec::new() }
    }
}

impl Operator for Filter {
    fn on_batch(&mut self, mut batch: Batch, out: &mut Output) -> Result<(), TaskError> {
        self.predicate.eval_predicate(&batch, &mut self.mask).map_err(|error| TaskError::Eval {
            operator: self.name.clone(),
            expression: self.predicate.to_string(),
            error,
        })?;
        let kept = self.mask.iter().filter(|&&k| k).count();
        if kept == batch.len() {
            out.batch(batch);
        } else if kept > 0 {
            batch.retain_mask(&self.mask);
            out.batch(batch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Column;
    use crate::types::{DataType, Field, Schema};

    #[test]
    fn keeps_matching_rows_only() {
        let schema = Schema::new(vec![Field::new("v", DataType::Int)]);
        let predicate = crate::expr::parse_and_compile("v % 2 == 0", &schema).unwrap();
        let mut filter = Filter::new("even", predicate);
        let mut out = Output::default();
        filter.on_batch(Batch::new(vec![Column::Int(vec![1, 2, 3, 4, -6])]), &mut out).unwrap();
        filter.on_batch(Batch::new(vec![Column::Int(vec![1, 3])]), &mut out).unwrap();
        let main = out.take_main();
        assert_eq!(main.len(), 1, "an all-dropped batch emits nothing");
        match &main[0] {
            crate::dataflow::operator::OutputItem::Batch(b) => {
                assert_eq!(b.columns[0], Column::Int(vec![2, 4, -6]))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
