//! Stopping an unbounded job: the sources end their input, the final watermark fires every open
//! window, sinks finish, and the run ends cleanly (what Ctrl-C does in `rivulet run`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{metrics_of, parse, TEST_WORKERS};
use rivulet_core::graph::VertexKind;
use rivulet_node::local_cluster::{run_on_local_cluster, RunOptions};

const UNBOUNDED: &str = r#"
[job]
name = "forever"
parallelism = 2

[[source]]
name = "g"
type = "generator"
event_time = "ts_ms"
keys = 50

[[operator]]
name = "k"
type = "key_by"
input = "g"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "tumbling"
size = "1s"
aggregates = { n = "count()" }

[[sink]]
name = "out"
type = "count"
input = "w"
"#;

#[test]
fn stopping_an_unbounded_job_drains_it_and_fires_every_window() {
    let graph = parse(UNBOUNDED);
    let source = graph.find("g").unwrap().id;
    assert!(matches!(graph.vertex(source).kind, VertexKind::Source { .. }));
    let stop = Arc::new(AtomicBool::new(false));
    let trigger = stop.clone();
    let options = RunOptions::new(TEST_WORKERS);
    let result =
        run_on_local_cluster(&graph.text, None, &graph, &options, stop, Duration::from_millis(5), move |p| {
            // Stop once the source has produced a good number of records.
            if p.metrics[0].records_out >= 1_000_000 {
                trigger.store(true, Ordering::Relaxed);
            }
        })
        .expect("a stopped job ends cleanly");
    let (g, w, out) = (
        metrics_of(&graph, &result, "g"),
        metrics_of(&graph, &result, "w"),
        metrics_of(&graph, &result, "out"),
    );
    assert!(g.records_out >= 1_000_000);
    assert_eq!(w.records_in, g.records_out, "every record produced reached the window");
    assert_eq!(w.late_records_dropped, 0);
    // Every key has one result per second of event time that held any of its records: all open
    // windows fired at the end. The two splits (on two TaskManagers, aligned in event time) stop
    // up to the alignment drift (1 s) apart, so the records produced need not be a contiguous
    // prefix.
    let seconds = g.records_out.div_ceil(100_000);
    assert!(
        w.records_out >= 50 * (seconds - 1) && w.records_out <= 50 * (seconds + 2),
        "{} results",
        w.records_out
    );
    assert_eq!(w.records_out % 50, 0, "each second of event time has a result for every key");
    assert_eq!(out.records_in, w.records_out);
}

#[test]
fn ctrl_c_stops_rivulet_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("forever.toml");
    std::fs::write(&job, UNBOUNDED).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["run", job.to_str().unwrap(), "--progress", "log"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.starts_with('['), "a progress line comes first: {first}");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    for line in stderr.lines() {
        rest.push_str(&line.unwrap());
        rest.push('\n');
    }
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}: {rest}");
    assert!(rest.contains("stopping: sources end"), "{rest}");
    assert!(rest.contains("finished job `forever`"), "{rest}");
}
