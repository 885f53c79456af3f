//! The file sink publishes its output atomically: a part file per subtask appears, complete, when
//! the job succeeds, and a failed job leaves neither part files nor staging files behind. JSON Lines
//! output reads back through a file source unchanged.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::{file_names, metrics_of, parse, run, toml_path};

/// Records of the generator in the sink tests: several full batches per subtask.
const RECORDS: u64 = 50_000;

/// A generator → map → file sink job; `map` is the map's `compute` table (an inline TOML table).
fn generator_to_files(
    dir: &Path,
    format: &str,
    parallelism: u16,
    count: u64,
    values: u64,
    map: &str,
) -> String {
    format!(
        r#"
[job]
name = "to-files"
parallelism = {parallelism}

[[source]]
name = "g"
type = "generator"
count = {count}
values = {values}

[[operator]]
name = "divide"
type = "map"
input = "g"
compute = {map}

[[sink]]
name = "out"
type = "file"
input = "divide"
path = {path}
format = "{format}"
"#,
        path = toml_path(dir),
    )
}

/// The lines of every part file in `dir` (without CSV headers), sorted; panics on any other file.
fn part_file_lines(dir: &Path, format: &str, parallelism: u16) -> Vec<String> {
    let expected: Vec<String> = (0..parallelism).map(|i| format!("part-{i}.{format}")).collect();
    assert_eq!(file_names(dir), expected, "{}: only the part files, no staging files", dir.display());
    let mut lines = Vec::new();
    for name in expected {
        let text = fs::read_to_string(dir.join(&name)).unwrap();
        let mut file_lines = text.lines();
        if format == "csv" {
            assert_eq!(file_lines.next(), Some("id,key,value,ts_ms,x"), "{name}: the header");
        }
        lines.extend(file_lines.map(str::to_owned));
    }
    lines.sort();
    lines
}

#[test]
fn a_successful_run_leaves_exactly_the_part_files() {
    for (format, parallelism) in [("csv", 1), ("csv", 2), ("jsonl", 1), ("jsonl", 3)] {
        let dir = tempfile::tempdir().unwrap();
        let graph = parse(&generator_to_files(
            dir.path(),
            format,
            parallelism,
            RECORDS,
            1000,
            r#"{ x = "value % 7" }"#,
        ));
        let result = run(&graph).unwrap_or_else(|e| panic!("{format} ×{parallelism}: {e}"));
        assert_eq!(metrics_of(&graph, &result, "out").records_in, RECORDS);

        let lines = part_file_lines(dir.path(), format, parallelism);
        assert_eq!(lines.len() as u64, RECORDS, "{format} ×{parallelism}");
        // Every record once: the ids are 0..RECORDS.
        let ids: BTreeSet<u64> = lines
            .iter()
            .map(|line| {
                let id = match format {
                    "csv" => line.split(',').next(),
                    _ => line.strip_prefix("{\"id\":").and_then(|rest| rest.split(',').next()),
                };
                id.and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("no id in {line:?}"))
            })
            .collect();
        assert_eq!(ids, (0..RECORDS).collect(), "{format} ×{parallelism}");
    }
}

/// With `values = 100_000` the generator's `value` is 5 first at record 85,715 (7 × 85,715 =
/// 600,005), so `value / (value - 5)` fails there, after the sink has written many batches.
const FAILING_VALUES: u64 = 100_000;
const FAILING_COUNT: u64 = 100_000;
const FAILING_MAP: &str = r#"{ x = "value / (value - 5)" }"#;

#[test]
fn a_failed_run_leaves_no_part_files_and_no_staging_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = generator_to_files(dir.path(), "csv", 1, FAILING_COUNT, FAILING_VALUES, FAILING_MAP);
    // All three vertices chain into one subtask.
    let error = run(&parse(&text)).err();
    assert_eq!(
        error.as_deref(),
        Some("g -> divide -> out (1/1) failed: operator `divide`: division by zero in `value / (value - 5)`")
    );
    assert_eq!(file_names(dir.path()), Vec::<String>::new(), "nothing is left in {}", dir.path().display());
}

#[test]
fn a_failed_run_behind_a_rebalance_leaves_no_part_files() {
    let dir = tempfile::tempdir().unwrap();
    // Source and map at parallelism 2, the sink at 3: the sink's input is rebalanced, so a sink
    // subtask cannot end before every map subtask has, and the failing one never does.
    let text = generator_to_files(dir.path(), "jsonl", 2, FAILING_COUNT, FAILING_VALUES, FAILING_MAP)
        .replace("input = \"divide\"", "input = \"divide\"\nparallelism = 3");
    // Which error the job reports is `job_failure.rs`'s concern; here only its files are.
    run(&parse(&text)).expect_err("the job divides by zero");
    assert_eq!(file_names(dir.path()), Vec::<String>::new(), "nothing is left in {}", dir.path().display());
}

#[test]
fn a_failed_job_publishes_no_part_files_even_from_sinks_that_finished() {
    let dir = tempfile::tempdir().unwrap();
    // Two independent pipelines: ten records to files, which end at once, and the failing map.
    let text = format!(
        r#"
[[source]]
name = "few"
type = "generator"
count = 10

[[sink]]
name = "files"
type = "file"
input = "few"
path = {path}
format = "csv"

[[source]]
name = "g"
type = "generator"
count = {FAILING_COUNT}
values = {FAILING_VALUES}

[[operator]]
name = "divide"
type = "map"
input = "g"
compute = {FAILING_MAP}

[[sink]]
name = "out"
type = "count"
input = "divide"
"#,
        path = toml_path(dir.path()),
    );
    run(&parse(&text)).expect_err("the job divides by zero");
    assert_eq!(file_names(dir.path()), Vec::<String>::new(), "nothing is left in {}", dir.path().display());
}

#[test]
fn json_lines_output_reads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("written");
    let reread = dir.path().join("reread");
    // Strings with every character JSON escapes, non-ASCII text, and floats of all sizes.
    let map = r#"{ x = "value % 7", label = '''if(value % 3 == 0, 'a "quoted", comma\nnew line\ttab \\ ü ☃', 'plain')''', ratio = "to_float(value) / 3.0 - 1e-3 * id" }"#;
    let graph = parse(&generator_to_files(&written, "jsonl", 2, RECORDS, 1000, map));
    run(&graph).unwrap();

    let schema = r#"
id = "int"
key = "int"
value = "int"
ts_ms = "timestamp"
x = "int"
label = "string"
ratio = "float""#;
    let read_back = format!(
        r#"
[job]
name = "read-back"
parallelism = 2

[[source]]
name = "files"
type = "file"
path = {written}
format = "jsonl"

[source.schema]{schema}

[[sink]]
name = "again"
type = "file"
input = "files"
path = {reread}
format = "jsonl"
"#,
        written = toml_path(&written),
        reread = toml_path(&reread),
    );
    let read_graph = parse(&read_back);
    let result = run(&read_graph).unwrap();
    assert_eq!(metrics_of(&read_graph, &result, "files").records_out, RECORDS);
    assert_eq!(metrics_of(&read_graph, &result, "files").records_skipped, 0);
    assert_eq!(metrics_of(&read_graph, &result, "again").records_in, RECORDS);

    // Written again, every record is the same line: nothing was lost or changed on the way.
    let first = part_file_lines(&written, "jsonl", 2);
    assert!(first.iter().any(|line| line.contains(r#""label":"a \"quoted\", comma\nnew line\ttab \\ ü ☃""#)));
    assert_eq!(part_file_lines(&reread, "jsonl", 2), first);
}
