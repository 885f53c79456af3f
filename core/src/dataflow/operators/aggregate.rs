//! `aggregate`: a keyed running aggregate without windows. Each record updates its key's
//! accumulators and emits the key's updated aggregates (one output record per input record).

use crate::batch::{Batch, Column};
use crate::dataflow::operator::{Operator, Output, TaskError};
use crate::dataflow::operators::accumulate::{eval_args, new_accs, Acc, AggregateSpec};
use crate::key::{key_group_of, KeySelector};
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
        let args = eval_args(&config.aggregates, &batch, &mut self.arg_scratch).map_err(|(i, error)| {
            TaskError::Eval {
                operator: config.name.clone(),
                expression: config.aggregates[i].arg.as_ref().map(|a| a.to_string()).unwrap_or_default(),
                error,
            }
        })?;
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

    fn assert_invariants(&self) {
        self.state.assert_invariants();
    }
}
