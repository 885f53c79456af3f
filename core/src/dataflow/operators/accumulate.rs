//! Aggregate functions (`count`, `sum`, `min`, `max`, `avg`) as accumulators, shared by the window
//! and the running-aggregate operators.

use crate::batch::{Batch, Column};
use crate::dataflow::operator::TaskError;
use crate::expr::Expr;
use crate::types::DataType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateKind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

impl AggregateKind {
    pub fn from_name(name: &str) -> Option<AggregateKind> {
        Some(match name {
            "count" => AggregateKind::Count,
            "sum" => AggregateKind::Sum,
            "min" => AggregateKind::Min,
            "max" => AggregateKind::Max,
            "avg" => AggregateKind::Avg,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AggregateKind::Count => "count",
            AggregateKind::Sum => "sum",
            AggregateKind::Min => "min",
            AggregateKind::Max => "max",
            AggregateKind::Avg => "avg",
        }
    }

    /// The result type for an argument type, or `None` if the function does not apply to it.
    pub fn result_type(self, arg: Option<DataType>) -> Option<DataType> {
        match (self, arg) {
            (AggregateKind::Count, None) => Some(DataType::Int),
            (AggregateKind::Sum, Some(t @ (DataType::Int | DataType::Float))) => Some(t),
            (
                AggregateKind::Min | AggregateKind::Max,
                Some(t @ (DataType::Int | DataType::Float | DataType::Timestamp)),
            ) => Some(t),
            (AggregateKind::Avg, Some(DataType::Int | DataType::Float)) => Some(DataType::Float),
            _ => None,
        }
    }
}

/// One output field computed by an aggregate function.
#[derive(Clone, Debug)]
pub struct AggregateSpec {
    pub output_name: String,
    pub kind: AggregateKind,
    /// The argument (none for `count()`).
    pub arg: Option<Expr>,
    pub output_type: DataType,
}

/// The running state of one aggregate. Integer sums wrap like Java's `long`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Acc {
    Count(i64),
    SumInt(i64),
    SumFloat(f64),
    MinInt(i64),
    MaxInt(i64),
    MinFloat(f64),
    MaxFloat(f64),
    AvgInt { sum: i64, count: i64 },
    AvgFloat { sum: f64, count: i64 },
}

impl Acc {
    pub fn new(spec: &AggregateSpec) -> Acc {
        let arg_float = spec.arg.as_ref().is_some_and(|a| a.data_type() == DataType::Float);
        match (spec.kind, arg_float) {
            (AggregateKind::Count, _) => Acc::Count(0),
            (AggregateKind::Sum, false) => Acc::SumInt(0),
            (AggregateKind::Sum, true) => Acc::SumFloat(0.0),
            (AggregateKind::Min, false) => Acc::MinInt(i64::MAX),
            (AggregateKind::Min, true) => Acc::MinFloat(f64::INFINITY),
            (AggregateKind::Max, false) => Acc::MaxInt(i64::MIN),
            (AggregateKind::Max, true) => Acc::MaxFloat(f64::NEG_INFINITY),
            (AggregateKind::Avg, false) => Acc::AvgInt { sum: 0, count: 0 },
            (AggregateKind::Avg, true) => Acc::AvgFloat { sum: 0.0, count: 0 },
        }
    }

    /// Adds row `row` of the argument column.
    #[inline]
    pub fn update(&mut self, arg: ArgColumn<'_>, row: usize) {
        match (self, arg) {
            (Acc::Count(c), _) => *c += 1,
            (Acc::SumInt(s), ArgColumn::Int(v)) => *s = s.wrapping_add(v[row]),
            (Acc::SumFloat(s), ArgColumn::Float(v)) => *s += v[row],
            (Acc::MinInt(m), ArgColumn::Int(v)) => *m = (*m).min(v[row]),
            (Acc::MaxInt(m), ArgColumn::Int(v)) => *m = (*m).max(v[row]),
            (Acc::MinFloat(m), ArgColumn::Float(v)) => {
                if v[row] < *m {
                    *m = v[row]
                }
            }
            (Acc::MaxFloat(m), ArgColumn::Float(v)) => {
                if v[row] > *m {
                    *m = v[row]
                }
            }
            (Acc::AvgInt { sum, count }, ArgColumn::Int(v)) => {
                *sum = sum.wrapping_add(v[row]);
                *count += 1;
            }
            (Acc::AvgFloat { sum, count }, ArgColumn::Float(v)) => {
                *sum += v[row];
                *count += 1;
            }
            (acc, arg) => unreachable!("type-checked aggregate {acc:?} met argument {arg:?}"),
        }
    }

    /// Folds another accumulator of the same aggregate into this one (session windows merging).
    pub fn merge(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) | (Acc::SumInt(a), Acc::SumInt(b)) => *a = a.wrapping_add(*b),
            (Acc::SumFloat(a), Acc::SumFloat(b)) => *a += b,
            (Acc::MinInt(a), Acc::MinInt(b)) => *a = (*a).min(*b),
            (Acc::MaxInt(a), Acc::MaxInt(b)) => *a = (*a).max(*b),
            (Acc::MinFloat(a), Acc::MinFloat(b)) => {
                if *b < *a {
                    *a = *b
                }
            }
            (Acc::MaxFloat(a), Acc::MaxFloat(b)) => {
                if *b > *a {
                    *a = *b
                }
            }
            (Acc::AvgInt { sum, count }, Acc::AvgInt { sum: s, count: c }) => {
                *sum = sum.wrapping_add(*s);
                *count += c;
            }
            (Acc::AvgFloat { sum, count }, Acc::AvgFloat { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (a, b) => unreachable!("merging different aggregates {a:?} and {b:?}"),
        }
    }

    /// Appends the aggregate's current value to an output column of its result type.
    pub fn push_value(&self, column: &mut Column) {
        match (self, column) {
            (
                Acc::Count(v) | Acc::SumInt(v) | Acc::MinInt(v) | Acc::MaxInt(v),
                Column::Int(c) | Column::Timestamp(c),
            ) => c.push(*v),
            (Acc::SumFloat(v) | Acc::MinFloat(v) | Acc::MaxFloat(v), Column::Float(c)) => c.push(*v),
            (Acc::AvgInt { sum, count }, Column::Float(c)) => c.push(*sum as f64 / *count as f64),
            (Acc::AvgFloat { sum, count }, Column::Float(c)) => c.push(*sum / *count as f64),
            (acc, column) => unreachable!("{acc:?} into a {} column", column.data_type()),
        }
    }
}

/// An aggregate's argument values for one batch, borrowed when the argument is a plain field.
#[derive(Clone, Copy, Debug)]
pub enum ArgColumn<'a> {
    None,
    Int(&'a [i64]),
    Float(&'a [f64]),
}

/// Evaluates the arguments of `specs` over a batch. Field arguments are borrowed from the batch;
/// computed ones are evaluated into `scratch`, which the result then borrows. A failure names
/// `operator` and the argument's expression.
pub fn eval_args<'a>(
    operator: &str,
    specs: &[AggregateSpec],
    batch: &'a Batch,
    scratch: &'a mut Vec<Option<Column>>,
) -> Result<Vec<ArgColumn<'a>>, TaskError> {
    scratch.clear();
    for spec in specs {
        let computed = match &spec.arg {
            Some(arg) if arg.as_field().is_none() => Some(arg.eval(batch).map_err(|error| {
                TaskError::Eval { operator: operator.to_owned(), expression: arg.to_string(), error }
            })?),
            _ => None,
        };
        scratch.push(computed);
    }
    let scratch: &'a Vec<Option<Column>> = scratch;
    Ok(specs
        .iter()
        .zip(scratch.iter())
        .map(|(spec, computed)| {
            let column = match (&spec.arg, computed) {
                (None, _) => return ArgColumn::None,
                (Some(_), Some(c)) => c,
                (Some(arg), None) => &batch.columns[arg.as_field().expect("field argument")],
            };
            match column {
                Column::Int(v) | Column::Timestamp(v) => ArgColumn::Int(v),
                Column::Float(v) => ArgColumn::Float(v),
                other => unreachable!("type-checked aggregate argument is {}", other.data_type()),
            }
        })
        .collect())
}

pub fn new_accs(specs: &[AggregateSpec]) -> Vec<Acc> {
    specs.iter().map(Acc::new).collect()
}

/// Checks accumulators restored from a snapshot against the operator's aggregates: one each, of
/// the kind each aggregate keeps.
pub fn check_restored_accs(specs: &[AggregateSpec], accs: &[Acc]) -> Result<(), String> {
    let fits = accs.len() == specs.len()
        && specs
            .iter()
            .zip(accs)
            .all(|(s, a)| std::mem::discriminant(&Acc::new(s)) == std::mem::discriminant(a));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "accumulators {accs:?} do not fit the aggregates {:?}",
            specs.iter().map(|s| &s.output_name).collect::<Vec<_>>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_sums_wrap_and_avg_is_a_double() {
        let mut s = Acc::SumInt(i64::MAX);
        s.update(ArgColumn::Int(&[1]), 0);
        assert_eq!(s, Acc::SumInt(i64::MIN));
        let mut a = Acc::AvgInt { sum: 0, count: 0 };
        a.update(ArgColumn::Int(&[1, 2]), 0);
        a.update(ArgColumn::Int(&[1, 2]), 1);
        let mut out = Column::Float(Vec::new());
        a.push_value(&mut out);
        assert_eq!(out, Column::Float(vec![1.5]));
    }

    #[test]
    fn merge_combines_partial_accumulators() {
        let mut a = Acc::MinFloat(2.0);
        a.merge(&Acc::MinFloat(-1.0));
        assert_eq!(a, Acc::MinFloat(-1.0));
        let mut c = Acc::AvgFloat { sum: 1.0, count: 1 };
        c.merge(&Acc::AvgFloat { sum: 3.0, count: 2 });
        assert_eq!(c, Acc::AvgFloat { sum: 4.0, count: 3 });
    }
}
