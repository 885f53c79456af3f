//! The `rivulet` binary as a user runs it: the example jobs, `validate`'s plan, and the messages
//! and exit codes of mistakes (2 for a bad job file or command line, 1 for a job that fails).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{file_names, toml_path, workspace_root};

/// Runs `rivulet args…` in `cwd` and returns what it did.
fn rivulet(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot start rivulet {args:?}: {e}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("rivulet writes UTF-8 to stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("rivulet writes UTF-8 to stderr")
}

/// Asserts that `output` is a clean exit with `code`, saying everything on failure.
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert!(!stderr(output).contains("panicked"), "rivulet panicked:\n{}", stderr(output));
}

#[test]
fn the_quick_start_prints_its_windows_and_a_summary() {
    let output = rivulet(&workspace_root(), &["run", "examples/quickstart.toml", "--progress", "off"]);
    assert_exit(&output, 0);

    // 300,000 readings at 10 per event-time millisecond span 30 s: 30 one-second windows for
    // each of the 5 keys. Fields: key, window_start, window_end, readings, total, mean, peak.
    let out = stdout(&output);
    let rows: Vec<Vec<i64>> = out
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 7, "a window row: {line:?}");
            [0, 1, 2, 3, 4, 6].iter().map(|&i| fields[i].parse().expect("an int field")).collect()
        })
        .collect();
    assert_eq!(rows.len(), 150, "window rows:\n{out}");
    let windows: BTreeSet<(i64, i64)> = rows.iter().map(|r| (r[0], r[1])).collect();
    let expected: BTreeSet<(i64, i64)> =
        (0..5).flat_map(|key| (0..30).map(move |second| (key, second * 1000))).collect();
    assert_eq!(windows, expected, "every key and second once");
    assert!(rows.iter().all(|r| r[2] == r[1] + 1000), "windows are one second long");
    // The filter keeps 270,000 readings, and none is late: the generator is in order.
    assert_eq!(rows.iter().map(|r| r[3]).sum::<i64>(), 270_000);

    let err = stderr(&output);
    assert!(err.contains("finished job `quickstart`"), "the summary:\n{err}");
    assert!(err.contains("300,000"), "the summary counts the records:\n{err}");
}

#[test]
fn validate_prints_the_plan() {
    let output = rivulet(&workspace_root(), &["validate", "examples/w2.toml"]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    for line in [
        "job `W2` (max parallelism 128)",
        "  window `windows` ×1 (key: int, window_start: timestamp, window_end: timestamp, count: int, sum: int)",
        "    ← `by_key` by hash",
        "plan: 2 chains, 2 subtasks",
        "  chain 0: g → by_key ×1",
        "  chain 1: windows → count ×1",
    ] {
        assert!(out.lines().any(|l| l == line), "the plan lacks {line:?}:\n{out}");
    }
    assert_eq!(stderr(&output), "");

    let output = rivulet(&workspace_root(), &["validate", "examples/w2.toml", "--parallelism", "4"]);
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(out.contains("plan: 2 chains, 8 subtasks\n  chain 0: g → by_key ×4\n"), "{out}");
}

/// Mistakes in job files and the exact error `rivulet run` gives for each (after `error: `).
const BAD_JOBS: &[(&str, &str)] = &[
    (
        "[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = 10\n\n[[operator]]\nname = \"f\"\n\
         type = \"filter\"\ninput = \"g\"\npredicate = \"vlaue > 3\"\n\n[[sink]]\ntype = \"count\"\n\
         input = \"f\"\n",
        "bad.toml: line 10, column 14: unknown field `vlaue`; the input has fields id, key, value, ts_ms",
    ),
    (
        "[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = \"many\"\n",
        "bad.toml: line 4, column 9: `count`: invalid type: string \"many\", expected an integer",
    ),
    ("[[source]\nname = \"g\"\n", "bad.toml: line 1, column 10: unclosed array table, expected `]`"),
];

#[test]
fn a_bad_job_file_exits_2_naming_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    for (text, message) in BAD_JOBS {
        fs::write(dir.path().join("bad.toml"), text).unwrap();
        for command in ["run", "validate"] {
            let output = rivulet(dir.path(), &[command, "bad.toml"]);
            assert_exit(&output, 2);
            assert_eq!(stderr(&output), format!("error: {message}\n"), "rivulet {command} of:\n{text}");
            assert_eq!(stdout(&output), "");
        }
    }
}

#[test]
fn a_missing_job_file_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = rivulet(dir.path(), &["run", "missing.toml"]);
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: cannot read job file missing.toml: No such file or directory (os error 2)\n"
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn bad_command_lines_exit_2_with_clap_messages() {
    let root = workspace_root();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "examples/w1.toml", "--parallelism", "0"],
            "error: invalid value '0' for '--parallelism <PARALLELISM>': 0 is not in 1..=1024",
        ),
        (
            &["run", "examples/w1.toml", "--workers", "0"],
            "error: invalid value '0' for '--workers <WORKERS>': 0 is not in 1..=1024",
        ),
        (
            &["run", "examples/w1.toml", "--progress", "fast"],
            "error: invalid value 'fast' for '--progress <PROGRESS>'",
        ),
        (
            &["run", "examples/w2.toml", "--checkpoint-store", "dir"],
            "error: the following required arguments were not provided:\n  --data-dir <DIR>",
        ),
        (
            &["run", "examples/w2.toml", "--data-dir", "state", "--checkpoint-store", "s3"],
            "error: invalid value 's3' for '--checkpoint-store <lmdb|dir>': \"s3\" is no checkpoint store",
        ),
        (&["run"], "error: the following required arguments were not provided:"),
        (&["launch", "examples/w1.toml"], "error: unrecognized subcommand 'launch'"),
    ];
    for (args, message) in cases {
        let output = rivulet(&root, args);
        assert_exit(&output, 2);
        let err = stderr(&output);
        assert!(err.starts_with(message), "rivulet {args:?}: expected {message:?}, found:\n{err}");
        assert_eq!(stdout(&output), "", "rivulet {args:?} runs nothing");
    }
}

#[test]
fn a_job_that_fails_while_running_exits_1_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let job = "[job]\nname = \"divide\"\n\n[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = 10\n\n\
               [[operator]]\nname = \"ratio\"\ntype = \"map\"\ninput = \"g\"\ncompute = { r = \"id / (id - 3)\" }\n\n\
               [[sink]]\nname = \"out\"\ntype = \"count\"\ninput = \"ratio\"\n";
    fs::write(dir.path().join("divide.toml"), job).unwrap();
    let output = rivulet(dir.path(), &["run", "divide.toml", "--progress", "off"]);
    assert_exit(&output, 1);
    assert_eq!(
        stderr(&output),
        "error: job `divide` failed: g -> ratio -> out (1/1) failed: operator `ratio`: \
         division by zero in `id / (id - 3)`\n"
    );
}

/// Days from 1970-01-01 to a date, counted the long way (this test's own calendar).
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = |y: i64, m: i64| match m {
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => 31,
    };
    let years: i64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let months: i64 = (1..month).map(|m| month_days(year, m)).sum();
    years + months + day - 1
}

/// The hour an ISO 8601 UTC time `YYYY-MM-DDTHH:MM:SSZ` falls in, as epoch milliseconds.
fn hour_start_ms(time: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| -> i64 {
        time.get(range).and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("a time: {time:?}"))
    };
    assert!(time.len() == 20 && time.ends_with('Z'), "a UTC time: {time:?}");
    (days_since_epoch(number(0..4), number(5..7), number(8..10)) * 24 + number(11..13)) * 3_600_000
}

/// Per region and hour of `examples/data/sales.csv`: the orders and the largest quantity.
fn expected_sales_report(sales: &str) -> BTreeMap<(String, i64), (u64, i64)> {
    let mut lines = sales.lines();
    assert_eq!(lines.next(), Some("order_id,region,product,quantity,unit_price,ordered_at"));
    let mut report: BTreeMap<(String, i64), (u64, i64)> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 6, "a sales record: {line:?}");
        let quantity: i64 = fields[3].parse().unwrap();
        let entry = report.entry((fields[1].to_owned(), hour_start_ms(fields[5]))).or_insert((0, i64::MIN));
        entry.0 += 1;
        entry.1 = entry.1.max(quantity);
    }
    report
}

/// Runs `examples/sales_batch.toml` at `parallelism` with its output in `out_dir`; returns the
/// data rows of its part files.
fn run_sales_batch(work_dir: &Path, out_dir: &Path, parallelism: u16) -> BTreeSet<String> {
    let root = workspace_root();
    let text = fs::read_to_string(root.join("examples/sales_batch.toml")).unwrap();
    let (source_path, sink_path) = ("\"examples/data/sales.csv\"", "\"target/rivulet-out/sales-by-region\"");
    assert!(text.contains(source_path) && text.contains(sink_path), "the example's paths moved");
    let text = text
        .replace(source_path, &toml_path(&root.join("examples/data/sales.csv")))
        .replace(sink_path, &toml_path(out_dir));
    let job = work_dir.join(format!("sales-{parallelism}.toml"));
    fs::write(&job, text).unwrap();

    let p = parallelism.to_string();
    let output = rivulet(work_dir, &["run", job.to_str().unwrap(), "--parallelism", &p, "--progress", "off"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "", "the report goes to files");
    assert!(stderr(&output).contains("finished job `sales-by-region`"), "{}", stderr(&output));
    assert!(stderr(&output).contains("600 records in"), "{}", stderr(&output));

    let parts: Vec<String> = (0..parallelism).map(|i| format!("part-{i}.csv")).collect();
    assert_eq!(file_names(out_dir), parts, "×{parallelism}: the part files, and no staging files");
    let mut rows = BTreeSet::new();
    for part in parts {
        let text = fs::read_to_string(out_dir.join(&part)).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("region,window_start,window_end,orders,revenue,biggest,avg_price"));
        for line in lines {
            assert!(rows.insert(line.to_owned()), "×{parallelism}: {line:?} twice");
        }
    }
    rows
}

#[test]
fn the_sales_batch_gives_the_same_report_at_any_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let at_1 = run_sales_batch(dir.path(), &dir.path().join("out-1"), 1);
    let at_2 = run_sales_batch(dir.path(), &dir.path().join("out-2"), 2);
    assert_eq!(at_1, at_2);

    let sales = fs::read_to_string(workspace_root().join("examples/data/sales.csv")).unwrap();
    let expected = expected_sales_report(&sales);
    let actual: BTreeMap<(String, i64), (u64, i64)> = at_1
        .iter()
        .map(|row| {
            let f: Vec<&str> = row.split(',').collect();
            assert_eq!(f.len(), 7, "a report row: {row:?}");
            let start: i64 = f[1].parse().unwrap();
            assert_eq!(f[2].parse::<i64>().unwrap(), start + 3_600_000, "an hour: {row:?}");
            ((f[0].to_owned(), start), (f[3].parse().unwrap(), f[5].parse().unwrap()))
        })
        .collect();
    assert_eq!(actual.len(), at_1.len(), "one row per region and hour");
    assert_eq!(actual, expected);
}
