//! At parallelism 1, lateness is a fixed function of the input order: the engine drops exactly the
//! records a per-record evaluation drops (a watermark after every record), whatever the batch sizes
//! and the schedule, and fires the same windows with the same contents.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use rivulet_core::batch::{Batch, Column};
use rivulet_core::connectors::{BuiltinConnectors, ConnectorFactory};
use rivulet_core::dataflow::local::run_local;
use rivulet_core::dataflow::operator::TaskError;
use rivulet_core::dataflow::operators::sink::SinkWriter;
use rivulet_core::dataflow::source::{SourcePoll, SourceReader};
use rivulet_core::graph::{SinkConnector, SourceConnector};
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::time::Instant;
use rivulet_core::types::{Scalar, Schema};

struct Input {
    rows: Vec<(i64, i64)>,
    batch_rows: usize,
    output: Arc<Mutex<Vec<Batch>>>,
}

struct Reader {
    rows: Vec<(i64, i64)>,
    next: usize,
    batch_rows: usize,
}

impl SourceReader for Reader {
    fn poll(&mut self, _now: Instant) -> Result<SourcePoll, TaskError> {
        if self.next >= self.rows.len() {
            return Ok(SourcePoll::Finished);
        }
        let end = (self.next + self.batch_rows).min(self.rows.len());
        let part = &self.rows[self.next..end];
        self.next = end;
        Ok(SourcePoll::Batch(Batch::new(vec![
            Column::Int(part.iter().map(|r| r.0).collect()),
            Column::Timestamp(part.iter().map(|r| r.1).collect()),
        ])))
    }
}

struct Collect(Arc<Mutex<Vec<Batch>>>);

impl SinkWriter for Collect {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        self.0.lock().unwrap().push(batch.clone());
        Ok(())
    }
}

impl ConnectorFactory for Input {
    fn source_reader(
        &self,
        c: &SourceConnector,
        n: &str,
        i: u16,
        p: u16,
    ) -> Result<Box<dyn SourceReader>, String> {
        match c {
            SourceConnector::File(_) => {
                Ok(Box::new(Reader { rows: self.rows.clone(), next: 0, batch_rows: self.batch_rows }))
            }
            other => BuiltinConnectors.source_reader(other, n, i, p),
        }
    }

    fn sink_writer(
        &self,
        c: &SinkConnector,
        n: &str,
        s: &Schema,
        i: u16,
        p: u16,
    ) -> Result<Box<dyn SinkWriter>, String> {
        match c {
            SinkConnector::File(_) => Ok(Box::new(Collect(self.output.clone()))),
            other => BuiltinConnectors.sink_writer(other, n, s, i, p),
        }
    }
}

fn job(size: i64, slide: i64, bound: i64) -> String {
    format!(
        r#"
[[source]]
name = "src"
type = "file"
path = "mem:"
format = "csv"
event_time = "ts"
out_of_orderness = {bound}
[source.schema]
key = "int"
ts = "timestamp"

[[operator]]
name = "k"
type = "key_by"
input = "src"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "sliding"
size = {size}
slide = {slide}
aggregates = {{ n = "count()" }}

[[sink]]
type = "file"
path = "mem:"
format = "csv"
input = "w"
"#
    )
}

/// Per record: the watermark before it is `max(ts before) - bound - 1`; a window fires when the
/// watermark reaches its last millisecond; a record is late when it belongs to windows and all of
/// them have fired, or to none and is behind the watermark.
fn reference(rows: &[(i64, i64)], size: i64, slide: i64, bound: i64) -> (u64, Vec<String>) {
    let mut open: BTreeMap<(i64, i64), i64> = BTreeMap::new(); // (key, start) → count
    let mut fired = Vec::new();
    let mut late = 0;
    let mut max = i64::MIN;
    for &(key, ts) in rows {
        let watermark = if max == i64::MIN { i64::MIN } else { max - bound - 1 };
        let starts: Vec<i64> =
            (0..).map(|i| ts.div_euclid(slide) * slide - i * slide).take_while(|&s| s + size > ts).collect();
        let live: Vec<i64> = starts.iter().copied().filter(|&s| s + size - 1 > watermark).collect();
        if (!starts.is_empty() && live.is_empty()) || (starts.is_empty() && ts <= watermark) {
            late += 1;
        }
        for s in live {
            *open.entry((key, s)).or_default() += 1;
        }
        max = max.max(ts);
        let watermark = max - bound - 1;
        let due: Vec<(i64, i64)> = open.keys().copied().filter(|&(_, s)| s + size - 1 <= watermark).collect();
        for k in due {
            let n = open.remove(&k).unwrap();
            fired.push(format!(
                "{:?}",
                [Scalar::Int(k.0), Scalar::Timestamp(k.1), Scalar::Timestamp(k.1 + size), Scalar::Int(n)]
            ));
        }
    }
    for ((key, s), n) in open {
        fired.push(format!(
            "{:?}",
            [Scalar::Int(key), Scalar::Timestamp(s), Scalar::Timestamp(s + size), Scalar::Int(n)]
        ));
    }
    fired.sort();
    (late, fired)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lateness_at_parallelism_one_does_not_depend_on_batching(
        rows in prop::collection::vec((0i64..4, 0i64..200), 0..200),
        (size, slide) in (1i64..30).prop_flat_map(|size| (Just(size), 1i64..=size + 5)),
        bound in 0i64..10,
        batch_rows in 1usize..64,
        seed in any::<u64>(),
    ) {
        let graph = parse_job(&job(size, slide, bound), &ParseOptions { parallelism: Some(1) }).unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let input = Input { rows: rows.clone(), batch_rows, output: output.clone() };
        let metrics = run_local(&graph, &input, seed, 2).unwrap();
        let late = metrics[graph.find("w").unwrap().id.index()].late_records_dropped;
        let mut fired: Vec<String> = output
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| (0..b.len()).map(|r| format!("{:?}", b.row(r))).collect::<Vec<_>>())
            .collect();
        fired.sort();
        let (expected_late, expected_fired) = reference(&rows, size, slide, bound);
        prop_assert_eq!(late, expected_late);
        prop_assert_eq!(fired, expected_fired);
    }
}
