//! `map`: computes the output fields of each record from its input fields.

use crate::batch::{Batch, Column};
use crate::dataflow::operator::{Operator, Output, TaskError};
use crate::expr::Expr;

/// Where one output field comes from.
#[derive(Clone, Debug)]
pub enum MapField {
    /// An input field, passed through (moved, not copied, when used once).
    Input(usize),
    Computed(Expr),
}

pub struct Map {
    name: String,
    fields: Vec<MapField>,
    /// How many output fields take each input field; a column used once is moved.
    uses: Vec<usize>,
}

impl Map {
    pub fn new(name: impl Into<String>, input_width: usize, fields: Vec<MapField>) -> Map {
        let mut uses = vec![0; input_width];
        for f in &fields {
            if let MapField::Input(i) = f {
                uses[*i] += 1;
            }
        }
        Map { name: name.into(), fields, uses }
    }
}

impl Operator for Map {
    fn on_batch(&mut self, mut batch: Batch, out: &mut Output) -> Result<(), TaskError> {
        let rows = batch.len();
        // Computed fields read the input as it came, so evaluate them before moving any column.
        let mut computed = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            if let MapField::Computed(expr) = f {
                computed.push(expr.eval(&batch).map_err(|error| TaskError::Eval {
                    operator: self.name.clone(),
                    expression: expr.to_string(),
                    error,
                })?);
            }
        }
        let mut computed = computed.into_iter();
        let mut remaining = self.uses.clone();
        let mut columns = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let column = match f {
                MapField::Input(i) => {
                    remaining[*i] -= 1;
                    if remaining[*i] == 0 {
                        std::mem::replace(&mut batch.columns[*i], Column::Bool(Vec::new()))
                    } else {
                        batch.columns[*i].clone()
                    }
                }
                MapField::Computed(_) => computed.next().expect("one column per computed field"),
            };
            columns.push(column);
        }
        out.batch(Batch::with_rows(columns, rows));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflow::operator::OutputItem;
    use crate::types::{DataType, Field, Schema};

    #[test]
    fn keeps_replaces_and_adds_fields() {
        let schema = Schema::new(vec![Field::new("a", DataType::Int), Field::new("b", DataType::Int)]);
        let doubled = crate::expr::parse_and_compile("a * 2", &schema).unwrap();
        let mut map =
            Map::new("m", 2, vec![MapField::Computed(doubled), MapField::Input(1), MapField::Input(1)]);
        let mut out = Output::default();
        map.on_batch(Batch::new(vec![Column::Int(vec![1, 2]), Column::Int(vec![7, 8])]), &mut out).unwrap();
        let expected =
            Batch::new(vec![Column::Int(vec![2, 4]), Column::Int(vec![7, 8]), Column::Int(vec![7, 8])]);
        assert_eq!(out.take_main(), vec![OutputItem::Batch(expected)]);
    }
}
