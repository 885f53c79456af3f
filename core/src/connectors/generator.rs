//! The deterministic generator `G(N)` of the benchmark workloads, in a general form.
//!
//! Record `i` has `id = i`, `key = i % keys`, `value = (i * 7) % values`,
//! `ts_ms = start_ms + i / records_per_ms`. The records are cut into blocks of
//! [`BATCH_ROWS_MAX`]; subtask `j` of `p` produces blocks `j, j + p, j + 2p, …`, so every subtask's
//! event time advances at the same pace and the job's watermark (their minimum) keeps up. The
//! position (the next block) is all the state needed to replay from any point.

use std::time::Duration;

use crate::batch::{Batch, Column};
use crate::dataflow::operator::TaskError;
use crate::dataflow::source::{SourcePoll, SourceReader};
use crate::limits::BATCH_ROWS_MAX;
use crate::time::Instant;
use crate::types::{DataType, Field, Schema};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Records in all (bounded), or `None` for an unbounded stream.
    pub count: Option<u64>,
    /// Records per second over all subtasks, or `None` for as fast as possible.
    pub rate_per_second: Option<u64>,
    pub keys: u64,
    pub values: u64,
    pub records_per_ms: u64,
    pub start_ms: i64,
}

impl GeneratorConfig {
    /// The workloads' `G(N)`.
    pub fn workload(count: u64) -> GeneratorConfig {
        GeneratorConfig {
            count: Some(count),
            rate_per_second: None,
            keys: 10_000,
            values: 1_000,
            records_per_ms: 100,
            start_ms: 0,
        }
    }

    /// The generator's fixed schema; `ts_ms` is a timestamp.
    pub fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int),
            Field::new("key", DataType::Int),
            Field::new("value", DataType::Int),
            Field::new("ts_ms", DataType::Timestamp),
        ])
    }
}

pub struct Generator {
    config: GeneratorConfig,
    subtask_index: u64,
    parallelism: u64,
    /// The next block this subtask produces.
    next_block: u64,
    emitted: u64,
    started: Option<Instant>,
}

impl Generator {
    pub fn new(config: GeneratorConfig, subtask_index: u16, parallelism: u16) -> Generator {
        assert!(subtask_index < parallelism);
        assert!(config.keys > 0 && config.values > 0 && config.records_per_ms > 0);
        Generator {
            config,
            subtask_index: u64::from(subtask_index),
            parallelism: u64::from(parallelism),
            next_block: u64::from(subtask_index),
            emitted: 0,
            started: None,
        }
    }

    /// The replay position: the index of the next block this subtask produces.
    pub fn position(&self) -> u64 {
        self.next_block
    }

    /// Resumes at a position taken from [`Generator::position`].
    pub fn seek(&mut self, block: u64) {
        assert_eq!(block % self.parallelism, self.subtask_index, "a position of another subtask");
        self.next_block = block;
    }

    fn block(&self, first: u64, rows: usize) -> Batch {
        let c = &self.config;
        let ids: Vec<i64> = (first..first + rows as u64).map(|i| i as i64).collect();
        // Each column is filled on its own in runs, with a division once per block rather than
        // once per record, so the loops stay simple enough to vectorize.
        let mut keys = Vec::with_capacity(rows);
        fill_cycle(&mut keys, first % c.keys, c.keys, rows);
        let mut values = Vec::with_capacity(rows);
        let step = 7 % c.values;
        let mut value = ((u128::from(first) * 7) % u128::from(c.values)) as u64;
        for _ in 0..rows {
            values.push(value as i64);
            value += step;
            if value >= c.values {
                value -= c.values;
            }
        }
        let mut ts = Vec::with_capacity(rows);
        let (mut ms, mut in_ms) = (first / c.records_per_ms, first % c.records_per_ms);
        while ts.len() < rows {
            let run = ((c.records_per_ms - in_ms) as usize).min(rows - ts.len());
            let t = c.start_ms.wrapping_add(ms as i64);
            ts.extend(std::iter::repeat_n(t, run));
            in_ms = 0;
            ms += 1;
        }
        Batch::new(vec![Column::Int(ids), Column::Int(keys), Column::Int(values), Column::Timestamp(ts)])
    }
}

/// Appends `rows` values counting up from `start` and wrapping to 0 at `modulus`.
fn fill_cycle(out: &mut Vec<i64>, start: u64, modulus: u64, rows: usize) {
    let mut next = start;
    while out.len() < rows {
        let run = ((modulus - next) as usize).min(rows - out.len());
        out.extend((next..next + run as u64).map(|v| v as i64));
        next = 0;
    }
}

impl SourceReader for Generator {
    fn poll(&mut self, now: Instant) -> Result<SourcePoll, TaskError> {
        let first = self.next_block.saturating_mul(BATCH_ROWS_MAX as u64);
        let rows = match self.config.count {
            Some(count) if first >= count => return Ok(SourcePoll::Finished),
            Some(count) => (count - first).min(BATCH_ROWS_MAX as u64) as usize,
            None => BATCH_ROWS_MAX,
        };
        if let Some(rate) = self.config.rate_per_second.filter(|&r| r > 0) {
            let started = *self.started.get_or_insert(now);
            // This subtask's share of the rate; it may emit `emitted` records by
            // `started + emitted / share` seconds.
            let share = (rate as f64 / self.parallelism as f64).max(1e-9);
            let due = started + Duration::from_secs_f64(self.emitted as f64 / share);
            if due > now {
                return Ok(SourcePoll::Pending { until: Some(due) });
            }
        }
        let batch = self.block(first, rows);
        self.next_block += self.parallelism;
        self.emitted += rows as u64;
        Ok(SourcePoll::Batch(batch))
    }

    fn position(&self) -> Option<Vec<u8>> {
        Some(self.next_block.to_le_bytes().to_vec())
    }

    /// A restored generator paces its rate from its first poll again.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), String> {
        let bytes: [u8; 8] = position
            .try_into()
            .map_err(|_| format!("a generator position is 8 bytes, the snapshot has {}", position.len()))?;
        let block = u64::from_le_bytes(bytes);
        if block % self.parallelism != self.subtask_index {
            return Err(format!(
                "block {block} is not one of subtask {} of {}",
                self.subtask_index, self.parallelism
            ));
        }
        self.next_block = block;
        (self.emitted, self.started) = (0, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(g: &mut Generator) -> Vec<Batch> {
        let mut out = Vec::new();
        while let SourcePoll::Batch(b) = g.poll(Instant::ZERO).unwrap() {
            out.push(b);
        }
        out
    }

    #[test]
    fn produces_the_workload_records() {
        let mut g = Generator::new(GeneratorConfig::workload(10_005), 0, 1);
        let batches = drain(&mut g);
        let rows: usize = batches.iter().map(Batch::len).sum();
        assert_eq!(rows, 10_005);
        let mut i = 0u64;
        for b in &batches {
            for r in 0..b.len() {
                let row = b.row(r);
                assert_eq!(row[0], crate::types::Scalar::Int(i as i64));
                assert_eq!(row[1], crate::types::Scalar::Int((i % 10_000) as i64));
                assert_eq!(row[2], crate::types::Scalar::Int(((i * 7) % 1_000) as i64));
                assert_eq!(row[3], crate::types::Scalar::Timestamp((i / 100) as i64));
                i += 1;
            }
        }
    }

    #[test]
    fn subtasks_split_the_records_between_them() {
        let mut ids = Vec::new();
        for j in 0..3 {
            let mut g = Generator::new(GeneratorConfig::workload(20_000), j, 3);
            for b in drain(&mut g) {
                ids.extend(b.columns[0].as_i64().unwrap().iter().copied());
            }
        }
        ids.sort_unstable();
        assert_eq!(ids, (0..20_000).collect::<Vec<i64>>());
    }

    #[test]
    fn a_rate_limit_paces_the_output() {
        let mut config = GeneratorConfig::workload(100_000);
        config.rate_per_second = Some(BATCH_ROWS_MAX as u64);
        let mut g = Generator::new(config, 0, 1);
        assert!(matches!(g.poll(Instant::ZERO).unwrap(), SourcePoll::Batch(_)));
        match g.poll(Instant::ZERO).unwrap() {
            SourcePoll::Pending { until: Some(t) } => assert_eq!(t, Instant::from_nanos(1_000_000_000)),
            other => panic!("expected to wait, got {other:?}"),
        }
        let later = Instant::from_nanos(1_000_000_000);
        assert!(matches!(g.poll(later).unwrap(), SourcePoll::Batch(_)));
    }

    #[test]
    fn replays_from_a_position() {
        let mut a = Generator::new(GeneratorConfig::workload(50_000), 1, 2);
        drain(&mut a);
        let mut b = Generator::new(GeneratorConfig::workload(50_000), 1, 2);
        let first: Vec<Batch> = (0..2)
            .map(|_| match b.poll(Instant::ZERO).unwrap() {
                SourcePoll::Batch(x) => x,
                _ => unreachable!(),
            })
            .collect();
        let pos = b.position();
        let rest = drain(&mut b);
        let mut c = Generator::new(GeneratorConfig::workload(50_000), 1, 2);
        c.seek(pos);
        assert_eq!(drain(&mut c), rest);
        assert_eq!(first.len(), 2);
    }
}
