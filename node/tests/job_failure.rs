//! A failed job is reported as failed, with the error that caused it, every time.
//!
//! Each test runs a small failing job many times, because the ways it can go wrong are races
//! between subtasks and the runner: a correct runner passes every round, a racy one fails some.

mod common;

use std::collections::BTreeMap;

use common::{parse, run};

/// Rounds of each test: a race that shows in one run of a hundred still shows here, almost surely.
const ROUNDS: usize = 1000;

/// Runs `text` [`ROUNDS`] times and returns how often each outcome happened, as text.
fn outcomes(text: &str) -> BTreeMap<String, usize> {
    let graph = parse(text);
    let mut outcomes = BTreeMap::new();
    for _ in 0..ROUNDS {
        let outcome = match run(&graph) {
            Ok(result) => format!("succeeded: {:?}", result.metrics),
            Err(e) => e,
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    outcomes
}

#[test]
fn a_job_whose_only_subtask_fails_always_fails() {
    // Generator, map and sink chain into one subtask, which fails on its first record (0 / 0).
    let text = r#"
[[source]]
name = "g"
type = "generator"
count = 1

[[operator]]
name = "divide"
type = "map"
input = "g"
compute = { x = "id / id" }

[[sink]]
name = "out"
type = "count"
input = "divide"
"#;
    let expected = "g -> divide -> out (1/1) failed: operator `divide`: division by zero in `id / id`";
    assert_eq!(outcomes(text), BTreeMap::from([(expected.to_owned(), ROUNDS)]));
}

#[test]
fn a_failed_job_reports_the_error_that_failed_it_not_an_abort() {
    // The map fails in one of its two subtasks (on record 85,715, where value = 5); the three
    // sink subtasks behind the rebalance are aborted.
    let text = r#"
[job]
parallelism = 2

[[source]]
name = "g"
type = "generator"
count = 100000
values = 100000

[[operator]]
name = "divide"
type = "map"
input = "g"
compute = { x = "value / (value - 5)" }

[[sink]]
name = "out"
type = "count"
input = "divide"
parallelism = 3
"#;
    let expected = "g -> divide (1/2) failed: operator `divide`: division by zero in `value / (value - 5)`";
    assert_eq!(outcomes(text), BTreeMap::from([(expected.to_owned(), ROUNDS)]));
}
