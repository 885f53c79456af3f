//! Expression throughput: typical filters and maps over 1024-row batches of four int columns.
//!
//! ```text
//! cargo run --release -p rivulet-benches --bin expressions
//! ```
//! Prints one JSON object per expression with its cost in nanoseconds per row.

use std::hint::black_box;
use std::time::Instant;

use rivulet_core::batch::{Batch, Column};
use rivulet_core::expr::parse_and_compile;
use rivulet_core::types::{DataType, Field, Schema};

const ROWS: usize = 1024;
const BATCHES: usize = 50_000;

fn main() {
    let schema = Schema::new(["id", "key", "value", "ts_ms"].map(|n| Field::new(n, DataType::Int)).to_vec());
    let column = |mul: i64| Column::Int((0..ROWS as i64).map(|r| r.wrapping_mul(mul) ^ 0x5a5a).collect());
    let batch = Batch::new(vec![column(1), column(7), column(2_654_435_761), column(1000)]);
    let mut flags = Vec::with_capacity(ROWS);
    for text in ["value % 2 == 0", "value % 10 == 3", "value > 1000 and id < 500", "value / id > 3"] {
        let expr = parse_and_compile(text, &schema).expect("a valid filter");
        let start = Instant::now();
        for _ in 0..BATCHES {
            expr.eval_predicate(black_box(&batch), &mut flags).ok();
            black_box(&flags);
        }
        report("filter", text, start);
    }
    for text in ["value * 2", "value", "value * 3 + id - 7", "if(id > 10, value, key)"] {
        let expr = parse_and_compile(text, &schema).expect("a valid map");
        let start = Instant::now();
        for _ in 0..BATCHES {
            black_box(expr.eval(black_box(&batch)).ok());
        }
        report("map", text, start);
    }
}

fn report(kind: &str, text: &str, start: Instant) {
    let ns = start.elapsed().as_nanos() as f64 / (BATCHES * ROWS) as f64;
    println!("{{\"kind\":\"{kind}\",\"expression\":\"{text}\",\"ns_per_row\":{ns:.3}}}");
}
