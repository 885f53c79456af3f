//! `aggregate`: a keyed running aggregate without windows. Each record updates its key's
//! accumulators and emits the key's updated aggregates (one output record per input record).

use crate::batch::{Batch, Column};
use crate::dataflow::operator::{Operator, Output, TaskError};
use crate::dataflow::operators::accumulate::{check_restored_accs, eval_args, new_accs, Acc, AggregateSpec};
use crate::ids::CheckpointId;
use crate::key::{key_group_of, Key, KeySelector};
use crate::state::snapshot::{decode_state, encode_state};
use crate::state::KeyedState;
use crate::types::DataType;

#[derive(Clone, Debug)]
pub struct AggregateConfig {
    pub name: String,
    pub key: KeySelector,
    pub aggregates: Vec<AggregateSpec>,
    pub max_parallelism: u16,
    /// The input field carried to the output as its event time, if the input has one.
    pub event_time_input: Option<usize>,
    /// Output types: key fields, then the event-time field if carried, then one per aggregate.
    pub output_types: Vec<DataType>,
}

pub struct AggregateOperator {
    config: AggregateConfig,
    state: KeyedState<Vec<Acc>>,
    hashes: Vec<u64>,
    arg_scratch: Vec<Option<Column>>,
}

impl AggregateOperator {
    pub fn new(config: AggregateConfig, key_groups: (u16, u16)) -> AggregateOperator {
        AggregateOperator {
            config,
            state: KeyedState::new(key_groups),
            hashes: Vec::new(),
            arg_scratch: Vec::new(),
        }
    }
}

impl Operator for AggregateOperator {
    fn on_batch(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskError> {
        let rows = batch.len();
        let config = &self.config;
        let args = eval_args(&config.name, &config.aggregates, &batch, &mut self.arg_scratch)?;
        config.key.hashes(&batch, &mut self.hashes);
        let mut output = Batch::empty(&config.output_types, rows);
        let key_width = config.key.fields.len();
        let carried = usize::from(config.event_time_input.is_some());
        for row in 0..rows {
            let key = config.key.key(&batch, row);
            let key_group = key_group_of(self.hashes[row], config.max_parallelism);
            let accs = self.state.get_or_insert_with(key_group, &key, || new_accs(&config.aggregates));
            accs.iter_mut().zip(&args).for_each(|(acc, arg)| acc.update(*arg, row));
            config.key.push_key(&key, &mut output.columns[..key_width]);
            if let Some(ts_field) = config.event_time_input {
                let ts = batch.columns[ts_field].as_i64().expect("event time is a timestamp")[row];
                match &mut output.columns[key_width] {
                    Column::Timestamp(c) => c.push(ts),
                    other => unreachable!("event time into a {} column", other.data_type()),
                }
            }
            for (acc, column) in accs.iter().zip(&mut output.columns[key_width + carried..]) {
                acc.push_value(column);
            }
        }
        out.batch(Batch::with_rows(output.columns, rows));
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint: CheckpointId) -> Result<Vec<u8>, TaskError> {
        let entries: Vec<(u16, &Key, &Vec<Acc>)> = self.state.entries().collect();
        Ok(encode_state(&entries))
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        let entries: Vec<(u16, Key, Vec<Acc>)> = decode_state(state, "aggregate")?;
        for (key_group, key, accs) in entries {
            self.state.check_key_group(key_group)?;
            check_restored_accs(&self.config.aggregates, &accs)?;
            let slot = self.state.get_or_insert_with(key_group, &key, Vec::new);
            if !slot.is_empty() {
                return Err(format!("key {key:?} appears twice in the snapshot"));
            }
            *slot = accs;
        }
        Ok(())
    }

    fn assert_invariants(&self) {
        self.state.assert_invariants();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflow::operator::OutputItem;
    use crate::dataflow::operators::accumulate::AggregateKind;
    use crate::expr::{parse_and_compile, EvalError};
    use crate::types::{EventTimeField, Field, Scalar, Schema};

    /// `key: int, name: string, ts: timestamp, v: int, f: float`, event time `ts`.
    fn input_schema() -> Schema {
        let mut schema = Schema::new(vec![
            Field::new("key", DataType::Int),
            Field::new("name", DataType::Str),
            Field::new("ts", DataType::Timestamp),
            Field::new("v", DataType::Int),
            Field::new("f", DataType::Float),
        ]);
        schema.event_time = Some(EventTimeField { index: 2, offset_ms: 0 });
        schema
    }

    /// Rows of `(key, name, ts, v)`; `f` is `v / 4`.
    fn batch(rows: &[(i64, &str, i64, i64)]) -> Batch {
        Batch::new(vec![
            Column::Int(rows.iter().map(|r| r.0).collect()),
            Column::Str(rows.iter().map(|r| r.1).collect()),
            Column::Timestamp(rows.iter().map(|r| r.2).collect()),
            Column::Int(rows.iter().map(|r| r.3).collect()),
            Column::Float(rows.iter().map(|r| r.3 as f64 / 4.0).collect()),
        ])
    }

    fn spec(output: &str, kind: AggregateKind, arg: Option<&str>) -> AggregateSpec {
        let arg = arg.map(|a| parse_and_compile(a, &input_schema()).expect("compiles"));
        let output_type = kind.result_type(arg.as_ref().map(|a| a.data_type())).expect("applies");
        AggregateSpec { output_name: output.to_owned(), kind, arg, output_type }
    }

    /// An operator keyed by `keys`, built as the job file builds it (carrying event time unless
    /// it is part of the key or `carry` is false).
    fn operator(keys: &[&str], aggregates: Vec<AggregateSpec>, carry: bool) -> AggregateOperator {
        let schema = input_schema();
        let fields: Vec<usize> = keys.iter().map(|k| schema.index_of(k).expect("a field")).collect();
        let types: Vec<DataType> = fields.iter().map(|&f| schema.fields[f].data_type).collect();
        let event_time_input = Some(2).filter(|i| carry && !fields.contains(i));
        let mut output_types = types.clone();
        if event_time_input.is_some() {
            output_types.push(DataType::Timestamp);
        }
        output_types.extend(aggregates.iter().map(|a| a.output_type));
        let config = AggregateConfig {
            name: "agg".to_owned(),
            key: KeySelector::new(fields, types),
            aggregates,
            max_parallelism: 128,
            event_time_input,
            output_types,
        };
        AggregateOperator::new(config, (0, 128))
    }

    fn count_and_sum() -> Vec<AggregateSpec> {
        vec![spec("n", AggregateKind::Count, None), spec("s", AggregateKind::Sum, Some("v"))]
    }

    /// Runs one batch; returns the output rows, checking invariants and that exactly one batch
    /// (or none, for no input) with the configured types came out.
    fn run(op: &mut AggregateOperator, input: Batch) -> Vec<Vec<Scalar>> {
        let rows_in = input.len();
        let mut out = Output::default();
        op.on_batch(input, &mut out).expect("no evaluation error");
        op.assert_invariants();
        assert!(out.take_late().is_empty(), "an aggregate has no late output");
        let items = out.take_main();
        if rows_in == 0 {
            assert!(items.is_empty(), "no input, no output");
            return Vec::new();
        }
        let [OutputItem::Batch(b)] = items.as_slice() else { panic!("one batch per batch: {items:?}") };
        let types: Vec<DataType> = b.columns.iter().map(Column::data_type).collect();
        assert_eq!(types, op.config.output_types);
        assert_eq!(b.len(), rows_in, "one output row per input row");
        (0..b.len()).map(|r| b.row(r)).collect()
    }

    fn int(v: i64) -> Scalar {
        Scalar::Int(v)
    }

    fn ts(v: i64) -> Scalar {
        Scalar::Timestamp(v)
    }

    #[test]
    fn every_record_emits_its_keys_updated_aggregates() {
        let mut op = operator(&["key"], count_and_sum(), false);
        let out = run(&mut op, batch(&[(1, "", 0, 10), (2, "", 0, 5), (1, "", 0, 20), (1, "", 0, -1)]));
        assert_eq!(
            out,
            vec![
                vec![int(1), int(1), int(10)],
                vec![int(2), int(1), int(5)],
                vec![int(1), int(2), int(30)],
                vec![int(1), int(3), int(29)],
            ]
        );
    }

    #[test]
    fn each_key_keeps_its_own_state_across_batches() {
        let mut op = operator(&["key"], count_and_sum(), false);
        run(&mut op, batch(&[(1, "", 0, 1), (2, "", 0, 100)]));
        let out = run(&mut op, batch(&[(2, "", 0, 1), (3, "", 0, 7), (1, "", 0, 1)]));
        assert_eq!(
            out,
            vec![vec![int(2), int(2), int(101)], vec![int(3), int(1), int(7)], vec![int(1), int(2), int(2)]]
        );
    }

    #[test]
    fn the_event_time_field_is_carried_between_the_key_and_the_aggregates() {
        let mut op = operator(&["key"], count_and_sum(), true);
        let out = run(&mut op, batch(&[(1, "", 500, 10), (1, "", 300, 1)]));
        // Each row carries its own record's event time, not the key's latest.
        assert_eq!(out, vec![vec![int(1), ts(500), int(1), int(10)], vec![int(1), ts(300), int(2), int(11)]]);
    }

    #[test]
    fn an_event_time_field_in_the_key_is_not_carried_twice() {
        let mut op = operator(&["ts"], vec![spec("n", AggregateKind::Count, None)], true);
        assert_eq!(op.config.event_time_input, None);
        let out = run(&mut op, batch(&[(1, "", 500, 0), (2, "", 500, 0)]));
        assert_eq!(out, vec![vec![ts(500), int(1)], vec![ts(500), int(2)]]);
    }

    #[test]
    fn min_max_and_avg_of_ints_and_floats() {
        let specs = vec![
            spec("lo", AggregateKind::Min, Some("v")),
            spec("hi", AggregateKind::Max, Some("f")),
            spec("m", AggregateKind::Avg, Some("v")),
            spec("mf", AggregateKind::Avg, Some("f * 2.0")),
            spec("last", AggregateKind::Max, Some("ts")),
        ];
        let mut op = operator(&["key"], specs, false);
        let out = run(&mut op, batch(&[(1, "", 10, 4), (1, "", 5, -8), (1, "", 7, 6)]));
        let f = Scalar::Float;
        assert_eq!(
            out,
            vec![
                vec![int(1), int(4), f(1.0), f(4.0), f(2.0), ts(10)],
                vec![int(1), int(-8), f(1.0), f(-2.0), f(-1.0), ts(10)],
                vec![int(1), int(-8), f(1.5), f(2.0 / 3.0), f(1.0 / 3.0), ts(10)],
            ]
        );
    }

    #[test]
    fn string_and_multi_field_keys_group_by_every_field() {
        let mut op = operator(&["name", "key"], vec![spec("n", AggregateKind::Count, None)], false);
        let out = run(&mut op, batch(&[(1, "a", 0, 0), (2, "a", 0, 0), (1, "b", 0, 0), (1, "a", 0, 0)]));
        let s = |v: &str| Scalar::Str(v.into());
        assert_eq!(
            out,
            vec![
                vec![s("a"), int(1), int(1)],
                vec![s("a"), int(2), int(1)],
                vec![s("b"), int(1), int(1)],
                vec![s("a"), int(1), int(2)],
            ]
        );
    }

    #[test]
    fn watermarks_pass_through_and_empty_batches_emit_nothing() {
        let mut op = operator(&["key"], count_and_sum(), true);
        assert!(run(&mut op, batch(&[])).is_empty());
        let mut out = Output::default();
        op.on_watermark(42, &mut out).unwrap();
        assert_eq!(out.take_main(), vec![OutputItem::Watermark(42)]);
    }

    #[test]
    fn a_failing_argument_is_an_error_and_leaves_the_state_unchanged() {
        let specs =
            vec![spec("n", AggregateKind::Count, None), spec("q", AggregateKind::Sum, Some("v / key"))];
        let mut op = operator(&["key"], specs, false);
        let mut out = Output::default();
        let err = op.on_batch(batch(&[(1, "", 0, 1), (0, "", 0, 1)]), &mut out).unwrap_err();
        assert_eq!(
            err,
            TaskError::Eval {
                operator: "agg".into(),
                expression: op.config.aggregates[1].arg.as_ref().unwrap().to_string(),
                error: EvalError::DivisionByZero,
            }
        );
        op.assert_invariants();
        // The failed batch counted nothing: key 1 starts from scratch.
        assert_eq!(run(&mut op, batch(&[(1, "", 0, 6)])), vec![vec![int(1), int(1), int(6)]]);
    }
}
