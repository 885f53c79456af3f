//! The benchmark program: runs the workloads of `shared/workloads.md` in-process and prints one
//! JSON object per line.
//!
//! ```text
//! cargo run --release -p rivulet-benches                  # W1 and W2 at parallelism 1 and 2, 3 runs each
//! cargo run --release -p rivulet-benches -- --runs 5 w2   # only W2
//! ```
//!
//! Each run is a child process (the program re-runs itself with `--child`), so that its peak
//! RSS (`VmHWM`) is its own. A run's time is the job's wall time from the start of its
//! subtasks to the end of the last one; the summary line of a configuration gives the median.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rivulet_core::graph::VertexKind;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_node::connectors::NodeConnectors;
use rivulet_node::runner::{run_job, RunOptions};

struct Workload {
    name: &'static str,
    job: &'static str,
    records: u64,
}

const WORKLOADS: &[Workload] = &[
    Workload { name: "W1", job: include_str!("../../examples/w1.toml"), records: 50_000_000 },
    Workload { name: "W2", job: include_str!("../../examples/w2.toml"), records: 20_000_000 },
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let mut runs = 3usize;
    let mut selected: Vec<&Workload> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => {
                runs = args.get(i + 1).and_then(|r| r.parse().ok()).context("--runs needs a number")?;
                i += 1;
            }
            name => match WORKLOADS.iter().find(|w| w.name.eq_ignore_ascii_case(name)) {
                Some(w) => selected.push(w),
                None => bail!("unknown workload `{name}`; known: W1, W2 (and --runs N)"),
            },
        }
        i += 1;
    }
    if selected.is_empty() {
        selected = WORKLOADS.iter().collect();
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exe = std::env::current_exe().context("locating this program")?;
    for w in selected {
        for parallelism in [1u16, 2] {
            let mut results = Vec::new();
            for _ in 0..runs {
                let out = Command::new(&exe)
                    .args(["--child", w.name, &parallelism.to_string(), &workers.to_string()])
                    .output()
                    .context("running a benchmark child")?;
                if !out.status.success() {
                    bail!(
                        "{} at parallelism {parallelism} failed: {}",
                        w.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let line = String::from_utf8(out.stdout).context("child output")?;
                print!("{line}");
                results.push(parse_run(&line)?);
            }
            results.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (seconds, _, window_results) = results[results.len() / 2];
            let rss_max = results.iter().map(|r| r.1).max().unwrap_or(0);
            println!(
                "{{\"summary\":true,\"workload\":\"{}\",\"parallelism\":{parallelism},\"workers\":{workers},\"runs\":{runs},\
                 \"median_seconds\":{seconds:.4},\"records_per_second\":{:.0},\"peak_rss_kb_max\":{rss_max},\"window_results\":{window_results}}}",
                w.name,
                w.records as f64 / seconds
            );
        }
    }
    Ok(())
}

/// (seconds, peak RSS in KiB, window results) of one run's JSON line.
fn parse_run(line: &str) -> Result<(f64, u64, u64)> {
    let field = |name: &str| -> Result<&str> {
        let start = line.find(&format!("\"{name}\":")).with_context(|| format!("no {name} in {line}"))?
            + name.len()
            + 3;
        let rest = &line[start..];
        Ok(&rest[..rest.find([',', '}']).unwrap_or(rest.len())])
    };
    Ok((field("seconds")?.parse()?, field("peak_rss_kb")?.parse()?, field("window_results")?.parse()?))
}

fn child(args: &[String]) -> Result<()> {
    let [name, parallelism, workers] = args else { bail!("usage: --child WORKLOAD PARALLELISM WORKERS") };
    let w = WORKLOADS.iter().find(|w| w.name == name).context("unknown workload")?;
    let parallelism: u16 = parallelism.parse()?;
    let workers: usize = workers.parse()?;
    let graph = parse_job(w.job, &ParseOptions { parallelism: Some(parallelism) })?;
    let result = run_job(
        &graph,
        &NodeConnectors::default(),
        &RunOptions { workers },
        Arc::new(AtomicBool::new(false)),
        Duration::from_secs(3600),
        |_| {},
    )?;
    let source_records: u64 = graph
        .vertices()
        .iter()
        .zip(&result.metrics)
        .filter(|(v, _)| matches!(v.kind, VertexKind::Source { .. }))
        .map(|(_, m)| m.records_out)
        .sum();
    assert_eq!(source_records, w.records, "the workload's source emits every record");
    let window_results: u64 = graph
        .vertices()
        .iter()
        .zip(&result.metrics)
        .filter(|(v, _)| matches!(v.kind, VertexKind::Window(_)))
        .map(|(_, m)| m.records_out)
        .sum();
    let seconds = result.elapsed.as_secs_f64();
    println!(
        "{{\"workload\":\"{}\",\"parallelism\":{parallelism},\"workers\":{workers},\"records\":{},\"seconds\":{seconds:.4},\
         \"records_per_second\":{:.0},\"peak_rss_kb\":{},\"window_results\":{window_results}}}",
        w.name,
        w.records,
        w.records as f64 / seconds,
        peak_rss_kb()
    );
    Ok(())
}

/// The process's peak resident set size, from /proc (0 where /proc is not available).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
