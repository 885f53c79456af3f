//! The catalog of malformed input files: `tests/bad-data/` holds one file per kind of mistake, and
//! [`CATALOG`] the exact error a file source → count sink job must fail with when it reads it, and
//! what it counts when it skips malformed lines instead (`bad_lines = "skip"`).
//!
//! Every catalog file has the schema `id int, name string, qty int, ts timestamp`. A too-long line
//! is generated here rather than committed, as it takes more than a mebibyte.

mod common;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use common::{metrics_of, parse, run, toml_path};
use rivulet_core::limits::INPUT_LINE_BYTES_MAX;
use rivulet_node::progress::summary;

/// One malformed input file and what reading it must give.
struct Case {
    /// The file's name in `tests/bad-data/`; its extension is its format (`csv` or `jsonl`).
    file: &'static str,
    /// The whole error of a job that fails on the file; `{file}` stands for the file's path.
    message: &'static str,
    /// What a job with `bad_lines = "skip"` does with the file.
    skip: Skip,
}

/// What `bad_lines = "skip"` gives.
enum Skip {
    /// The job succeeds, skipping this many lines and passing the good ones on.
    Counts { skipped: u64, records: u64 },
    /// The job fails with the same error as without skipping: the file as a whole is unreadable.
    Fails,
}

/// The subtask a catalog job runs as: its source and sink, chained.
const SUBTASK: &str = "in -> out (1/1) failed: source `in`";

const CATALOG: &[Case] = &[
    Case {
        file: "csv-wrong-field-count.csv",
        message: "{file}:4: expected 4 fields, found 5",
        skip: Skip::Counts { skipped: 2, records: 4 },
    },
    Case {
        file: "csv-not-an-int.csv",
        message: "{file}:4:8: field `qty`: \"five\" is not an int",
        skip: Skip::Counts { skipped: 1, records: 3 },
    },
    Case {
        file: "csv-bad-timestamp.csv",
        message: "{file}:3:9: field `ts`: \"2024-02-30T08:00:01Z\" is not a timestamp \
                  (milliseconds or ISO 8601 date-time)",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "csv-unterminated-quote.csv",
        message: "{file}:3:3: field `name`: the quoted field is not closed (a record is one line; \
                  quoted fields cannot span lines)",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "csv-header-mismatch.csv",
        message: "{file}:1: bad header: header field 3 is \"quantity\", expected \"qty\"",
        skip: Skip::Fails,
    },
    Case {
        file: "csv-invalid-utf8.csv",
        message: "{file}:3:5: the line is not valid UTF-8",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "jsonl-missing-field.jsonl",
        message: "{file}:2: missing field `qty`",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "jsonl-unknown-field.jsonl",
        message: "{file}:2:30: unknown field `price`; the schema has id, name, qty, ts",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "jsonl-wrong-type.jsonl",
        message: "{file}:2:28: field `qty`: \"4\" is not an int",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "jsonl-null.jsonl",
        message: "{file}:2:16: field `name` is null; fields cannot be null",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "jsonl-invalid-json.jsonl",
        message: "{file}:2:16: field `name`: invalid JSON value bob",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
    Case {
        file: "jsonl-trailing-garbage.jsonl",
        message: "{file}:2:59: unexpected \"x\" after the JSON object",
        skip: Skip::Counts { skipped: 1, records: 2 },
    },
];

fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-data")
}

/// A job that reads `path` (CSV or JSON Lines by its extension) into a count sink.
fn job(path: &Path, bad_lines: &str) -> String {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => "csv",
        Some("jsonl") => "jsonl",
        other => panic!("{}: unknown format {other:?}", path.display()),
    };
    format!(
        r#"
[[source]]
name = "in"
type = "file"
path = {path}
format = "{format}"
bad_lines = "{bad_lines}"

[source.schema]
id = "int"
name = "string"
qty = "int"
ts = "timestamp"

[[sink]]
name = "out"
type = "count"
input = "in"
"#,
        path = toml_path(path),
    )
}

/// The full error a catalog job fails with, for an expectation whose `{file}` is `path`.
fn full_message(message: &str, path: &Path) -> String {
    format!("{SUBTASK}: {}", message.replace("{file}", &path.display().to_string()))
}

/// Runs a job over `path` with policy `bad_lines` and returns how its error differs from
/// `message`, if it does.
fn check_fails(path: &Path, bad_lines: &str, message: &str) -> Option<String> {
    let name = path.file_name().expect("a file").to_string_lossy().into_owned();
    let expected = full_message(message, path);
    match run(&parse(&job(path, bad_lines))) {
        Ok(_) => Some(format!("{name} ({bad_lines}): the job succeeded; expected: {expected}")),
        Err(actual) if actual != expected => {
            Some(format!("{name} ({bad_lines}):\n  expected: {expected}\n  actual:   {actual}"))
        }
        Err(_) => None,
    }
}

/// Runs a job over `path` with `bad_lines = "skip"` and returns how its counts and summary
/// differ from `skipped` malformed lines and `records` good ones.
fn check_skips(path: &Path, skipped: u64, records: u64) -> Vec<String> {
    let name = path.file_name().expect("a file").to_string_lossy().into_owned();
    let graph = parse(&job(path, "skip"));
    let result = match run(&graph) {
        Ok(result) => result,
        Err(actual) => return vec![format!("{name} (skip): the job failed: {actual}")],
    };
    let mut failures = Vec::new();
    let source = metrics_of(&graph, &result, "in");
    let sink = metrics_of(&graph, &result, "out");
    if (source.records_skipped, sink.records_in) != (skipped, records) {
        failures.push(format!(
            "{name} (skip): {} skipped and {} records; expected {skipped} and {records}",
            source.records_skipped, sink.records_in
        ));
    }
    let noun = if skipped == 1 { "record" } else { "records" };
    let line = format!("skipped {skipped} malformed input {noun}");
    let text = summary(&graph, &result);
    if !text.contains(&line) {
        failures.push(format!("{name} (skip): the summary lacks `{line}`:\n{text}"));
    }
    failures
}

#[test]
fn the_catalog_lists_every_bad_data_file() {
    let dir = catalog_dir();
    let mut on_disk: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    on_disk.sort();
    let mut listed: Vec<String> = CATALOG.iter().map(|c| c.file.to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every file in {} has one catalog entry, and no more", dir.display());
}

#[test]
fn every_bad_data_file_fails_the_job_with_its_exact_error() {
    let dir = catalog_dir();
    let mut failures = Vec::new();
    for case in CATALOG {
        let path = dir.join(case.file);
        failures.extend(check_fails(&path, "fail", case.message));
        if let Skip::Fails = case.skip {
            failures.extend(check_fails(&path, "skip", case.message));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_data_file_is_skipped_and_counted_when_skipping() {
    let dir = catalog_dir();
    let mut failures = Vec::new();
    for case in CATALOG {
        if let Skip::Counts { skipped, records } = case.skip {
            failures.extend(check_skips(&dir.join(case.file), skipped, records));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A CSV file of the catalog's schema whose third line has `name_bytes` bytes of name and
/// `line_ending` after it: its length is `name_bytes + LONG_LINE_OVERHEAD`.
fn write_long_line_file(dir: &Path, name_bytes: usize, line_ending: &str) -> PathBuf {
    let path = dir.join("long-line.csv");
    let mut file = fs::File::create(&path).unwrap();
    write!(file, "id,name,qty,ts{line_ending}1,anna,3,0{line_ending}").unwrap();
    write!(file, "2,{},4,1{line_ending}", "n".repeat(name_bytes)).unwrap();
    write!(file, "3,cleo,5,2{line_ending}").unwrap();
    path
}

/// Bytes of the long line other than its name: `2,` and `,4,1`.
const LONG_LINE_OVERHEAD: usize = 6;

#[test]
fn a_line_longer_than_the_limit_fails_the_job_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_long_line_file(dir.path(), INPUT_LINE_BYTES_MAX, "\n");
    let message = format!("{{file}}:3: the line is longer than {INPUT_LINE_BYTES_MAX} bytes");
    assert_eq!(check_fails(&path, "fail", &message), None);
}

#[test]
fn a_line_of_exactly_the_limit_is_read() {
    let dir = tempfile::tempdir().unwrap();
    for line_ending in ["\n", "\r\n"] {
        let path = write_long_line_file(dir.path(), INPUT_LINE_BYTES_MAX - LONG_LINE_OVERHEAD, line_ending);
        let graph = parse(&job(&path, "fail"));
        let result = run(&graph).unwrap_or_else(|e| panic!("line ending {line_ending:?}: {e}"));
        assert_eq!(metrics_of(&graph, &result, "out").records_in, 3, "line ending {line_ending:?}");
    }
}

#[test]
fn a_line_one_byte_over_the_limit_fails_whatever_its_line_ending() {
    let dir = tempfile::tempdir().unwrap();
    let message = format!("{{file}}:3: the line is longer than {INPUT_LINE_BYTES_MAX} bytes");
    for line_ending in ["\n", "\r\n"] {
        let path =
            write_long_line_file(dir.path(), INPUT_LINE_BYTES_MAX - LONG_LINE_OVERHEAD + 1, line_ending);
        assert_eq!(check_fails(&path, "fail", &message), None, "line ending {line_ending:?}");
    }
}

#[test]
fn a_line_longer_than_the_limit_is_skipped_when_skipping() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_long_line_file(dir.path(), INPUT_LINE_BYTES_MAX, "\n");
    let failures = check_skips(&path, 1, 2);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
