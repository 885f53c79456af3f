//! Accumulators stored column-wise: one vector per aggregate, one slot per key.
//!
//! A window pane maps each key to a slot index once per record, then every aggregate updates its
//! slots in a tight loop over the batch (`counts[slot] += 1`), with no per-record dispatch on the
//! aggregate's kind. This is the layout that makes keyed windows cost a few nanoseconds per record.

use crate::batch::Column;
use crate::dataflow::operators::accumulate::{Acc, AggregateKind, AggregateSpec, ArgColumn};
use crate::types::DataType;

/// The slots of one aggregate.
#[derive(Clone, Debug)]
pub enum AccColumn {
    Count(Vec<i64>),
    SumInt(Vec<i64>),
    SumFloat(Vec<f64>),
    MinInt(Vec<i64>),
    MaxInt(Vec<i64>),
    MinFloat(Vec<f64>),
    MaxFloat(Vec<f64>),
    AvgInt { sum: Vec<i64>, count: Vec<i64> },
    AvgFloat { sum: Vec<f64>, count: Vec<i64> },
}

impl AccColumn {
    pub fn new(spec: &AggregateSpec) -> AccColumn {
        let float = spec.arg.as_ref().is_some_and(|a| a.data_type() == DataType::Float);
        match (spec.kind, float) {
            (AggregateKind::Count, _) => AccColumn::Count(Vec::new()),
            (AggregateKind::Sum, false) => AccColumn::SumInt(Vec::new()),
            (AggregateKind::Sum, true) => AccColumn::SumFloat(Vec::new()),
            (AggregateKind::Min, false) => AccColumn::MinInt(Vec::new()),
            (AggregateKind::Min, true) => AccColumn::MinFloat(Vec::new()),
            (AggregateKind::Max, false) => AccColumn::MaxInt(Vec::new()),
            (AggregateKind::Max, true) => AccColumn::MaxFloat(Vec::new()),
            (AggregateKind::Avg, false) => AccColumn::AvgInt { sum: Vec::new(), count: Vec::new() },
            (AggregateKind::Avg, true) => AccColumn::AvgFloat { sum: Vec::new(), count: Vec::new() },
        }
    }

    /// Adds one empty slot (the aggregate over no records yet).
    pub fn push_slot(&mut self) {
        match self {
            AccColumn::Count(v) | AccColumn::SumInt(v) => v.push(0),
            AccColumn::SumFloat(v) => v.push(0.0),
            AccColumn::MinInt(v) => v.push(i64::MAX),
            AccColumn::MaxInt(v) => v.push(i64::MIN),
            AccColumn::MinFloat(v) => v.push(f64::INFINITY),
            AccColumn::MaxFloat(v) => v.push(f64::NEG_INFINITY),
            AccColumn::AvgInt { sum, count } => {
                sum.push(0);
                count.push(0);
            }
            AccColumn::AvgFloat { sum, count } => {
                sum.push(0.0);
                count.push(0);
            }
        }
    }

    /// Removes every slot, keeping the capacity for reuse.
    pub fn clear(&mut self) {
        match self {
            AccColumn::Count(v) | AccColumn::SumInt(v) | AccColumn::MinInt(v) | AccColumn::MaxInt(v) => {
                v.clear()
            }
            AccColumn::SumFloat(v) | AccColumn::MinFloat(v) | AccColumn::MaxFloat(v) => v.clear(),
            AccColumn::AvgInt { sum, count } => {
                sum.clear();
                count.clear();
            }
            AccColumn::AvgFloat { sum, count } => {
                sum.clear();
                count.clear();
            }
        }
    }

    /// Adds row `rows[i]` of `arg` to slot `slots[i]`, for every `i`.
    pub fn update(&mut self, slots: &[u32], rows: &[u32], arg: ArgColumn<'_>) {
        debug_assert_eq!(slots.len(), rows.len());
        let pairs = slots.iter().zip(rows).map(|(&s, &r)| (s as usize, r as usize));
        match (self, arg) {
            (AccColumn::Count(c), _) => slots.iter().for_each(|&s| c[s as usize] += 1),
            (AccColumn::SumInt(a), ArgColumn::Int(v)) => {
                pairs.for_each(|(s, r)| a[s] = a[s].wrapping_add(v[r]))
            }
            (AccColumn::SumFloat(a), ArgColumn::Float(v)) => pairs.for_each(|(s, r)| a[s] += v[r]),
            (AccColumn::MinInt(a), ArgColumn::Int(v)) => pairs.for_each(|(s, r)| a[s] = a[s].min(v[r])),
            (AccColumn::MaxInt(a), ArgColumn::Int(v)) => pairs.for_each(|(s, r)| a[s] = a[s].max(v[r])),
            (AccColumn::MinFloat(a), ArgColumn::Float(v)) => pairs.for_each(|(s, r)| {
                if v[r] < a[s] {
                    a[s] = v[r]
                }
            }),
            (AccColumn::MaxFloat(a), ArgColumn::Float(v)) => pairs.for_each(|(s, r)| {
                if v[r] > a[s] {
                    a[s] = v[r]
                }
            }),
            (AccColumn::AvgInt { sum, count }, ArgColumn::Int(v)) => pairs.for_each(|(s, r)| {
                sum[s] = sum[s].wrapping_add(v[r]);
                count[s] += 1;
            }),
            (AccColumn::AvgFloat { sum, count }, ArgColumn::Float(v)) => pairs.for_each(|(s, r)| {
                sum[s] += v[r];
                count[s] += 1;
            }),
            (acc, arg) => unreachable!("type-checked aggregate {acc:?} met argument {arg:?}"),
        }
    }

    /// Slot `slot` as one accumulator (for a snapshot).
    pub fn get(&self, slot: u32) -> Acc {
        let s = slot as usize;
        match self {
            AccColumn::Count(v) => Acc::Count(v[s]),
            AccColumn::SumInt(v) => Acc::SumInt(v[s]),
            AccColumn::SumFloat(v) => Acc::SumFloat(v[s]),
            AccColumn::MinInt(v) => Acc::MinInt(v[s]),
            AccColumn::MaxInt(v) => Acc::MaxInt(v[s]),
            AccColumn::MinFloat(v) => Acc::MinFloat(v[s]),
            AccColumn::MaxFloat(v) => Acc::MaxFloat(v[s]),
            AccColumn::AvgInt { sum, count } => Acc::AvgInt { sum: sum[s], count: count[s] },
            AccColumn::AvgFloat { sum, count } => Acc::AvgFloat { sum: sum[s], count: count[s] },
        }
    }

    /// Adds a slot holding `acc` (restored from a snapshot); false, adding nothing, if `acc` is
    /// of another kind.
    pub fn push_acc(&mut self, acc: &Acc) -> bool {
        match (self, *acc) {
            (AccColumn::Count(v), Acc::Count(x))
            | (AccColumn::SumInt(v), Acc::SumInt(x))
            | (AccColumn::MinInt(v), Acc::MinInt(x))
            | (AccColumn::MaxInt(v), Acc::MaxInt(x)) => v.push(x),
            (AccColumn::SumFloat(v), Acc::SumFloat(x))
            | (AccColumn::MinFloat(v), Acc::MinFloat(x))
            | (AccColumn::MaxFloat(v), Acc::MaxFloat(x)) => v.push(x),
            (AccColumn::AvgInt { sum, count }, Acc::AvgInt { sum: s, count: c }) => {
                sum.push(s);
                count.push(c);
            }
            (AccColumn::AvgFloat { sum, count }, Acc::AvgFloat { sum: s, count: c }) => {
                sum.push(s);
                count.push(c);
            }
            _ => return false,
        }
        true
    }

    /// Appends the value of slot `slot` to an output column of the aggregate's result type.
    pub fn push_value(&self, slot: u32, column: &mut Column) {
        let s = slot as usize;
        match (self, column) {
            (
                AccColumn::Count(v) | AccColumn::SumInt(v) | AccColumn::MinInt(v) | AccColumn::MaxInt(v),
                Column::Int(c) | Column::Timestamp(c),
            ) => c.push(v[s]),
            (AccColumn::SumFloat(v) | AccColumn::MinFloat(v) | AccColumn::MaxFloat(v), Column::Float(c)) => {
                c.push(v[s])
            }
            (AccColumn::AvgInt { sum, count }, Column::Float(c)) => c.push(sum[s] as f64 / count[s] as f64),
            (AccColumn::AvgFloat { sum, count }, Column::Float(c)) => c.push(sum[s] / count[s] as f64),
            (acc, column) => unreachable!("{acc:?} into a {} column", column.data_type()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflow::operators::accumulate::AggregateKind;
    use crate::types::{Field, Schema};

    fn spec(kind: AggregateKind, arg: Option<&str>) -> AggregateSpec {
        let schema = Schema::new(vec![Field::new("v", DataType::Int)]);
        let arg = arg.map(|a| crate::expr::parse_and_compile(a, &schema).unwrap());
        let output_type = kind.result_type(arg.as_ref().map(|a| a.data_type())).unwrap();
        AggregateSpec { output_name: "x".into(), kind, arg, output_type }
    }

    #[test]
    fn slots_aggregate_their_rows_only() {
        let values = [5i64, -2, 7, 1];
        let mut sum = AccColumn::new(&spec(AggregateKind::Sum, Some("v")));
        let mut min = AccColumn::new(&spec(AggregateKind::Min, Some("v")));
        let mut avg = AccColumn::new(&spec(AggregateKind::Avg, Some("v")));
        for acc in [&mut sum, &mut min, &mut avg] {
            acc.push_slot();
            acc.push_slot();
            acc.update(&[0, 1, 0, 1], &[0, 1, 2, 3], ArgColumn::Int(&values));
        }
        let mut out = Column::Int(Vec::new());
        sum.push_value(0, &mut out);
        sum.push_value(1, &mut out);
        min.push_value(1, &mut out);
        assert_eq!(out, Column::Int(vec![12, -1, -2]));
        let mut out = Column::Float(Vec::new());
        avg.push_value(0, &mut out);
        assert_eq!(out, Column::Float(vec![6.0]));
    }
}
