//! The benchmark program: runs the workloads of `shared/workloads.md` and prints one JSON object
//! per line.
//!
//! ```text
//! cargo run --release -p rivulet-benches                      # everything below, 3 runs each
//! cargo run --release -p rivulet-benches -- --runs 5 w2       # only W2
//! cargo run --release -p rivulet-benches -- --runs 5 w2-ckpt  # W2x10 and W2x10-ckpt, interleaved
//! cargo run --release -p rivulet-benches -- w2-net -p 1       # W2-net at parallelism 1
//! cargo run --release -p rivulet-benches -- f1                # F1: footprint of idle nodes
//! cargo run --release -p rivulet-benches -- r1 --runs 5       # R1: recovery after a SIGKILL
//! target/release/rivulet-benches w2-net --rivulet PATH        # W2-net of another rivulet build
//! ```
//!
//! W1 and W2 run in-process: each run is a child process (the program re-runs itself with
//! `--child`), so that its peak RSS (`VmHWM`) is its own. A run's time is the job's wall time from
//! the start of its subtasks to the end of the last one; the summary line of a configuration gives
//! the median. W2-ckpt compares W2x10 (W2 on ten times the records) with W2x10-ckpt in
//! alternating runs (see `checkpoint_overhead.rs`). W2-net, F1 and R1 start real `rivulet` node processes on loopback (see `cluster.rs`
//! and `recovery.rs`).

mod checkpoint_overhead;
mod cluster;
mod nodes;
mod recovery;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rivulet_core::graph::VertexKind;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_node::config::CheckpointStoreKind;
use rivulet_node::local_cluster::{run_on_local_cluster, RunOptions};

struct Workload {
    name: &'static str,
    job: &'static str,
    /// The generator's count: the job file's own, or a longer run of the same job.
    records: u64,
    /// Checkpoints every this often (`[job.checkpoints] interval`), for W2-ckpt.
    checkpoint_interval: Option<&'static str>,
    /// Checkpoints recorded durably (the LMDB store in a temporary `--data-dir`), as W2-ckpt
    /// defines them, instead of in the mini-cluster's memory.
    durable_checkpoints: bool,
}

const W2: &str = include_str!("../../examples/w2.toml");

/// The generator line of `examples/w2.toml`, which the longer W2 variants replace.
const W2_COUNT_LINE: &str = "count = 20_000_000";
const W2_RECORDS: u64 = 20_000_000;

/// W2 on ten times the records (about 6–10 s here), so that a 1 s interval takes several
/// checkpoints; the same count with and without them, so that the two compare.
const W2X10_RECORDS: u64 = 10 * W2_RECORDS;

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "W1",
        job: include_str!("../../examples/w1.toml"),
        records: 50_000_000,
        checkpoint_interval: None,
        durable_checkpoints: false,
    },
    Workload {
        name: "W2",
        job: W2,
        records: W2_RECORDS,
        checkpoint_interval: None,
        durable_checkpoints: false,
    },
    // W2 ends within about a second here, too soon for a checkpoint every 1 s: every 100 ms, in
    // memory, shows the engine's side of a checkpoint on the original W2.
    Workload {
        name: "W2-ckpt-100ms",
        job: W2,
        records: W2_RECORDS,
        checkpoint_interval: Some("100ms"),
        durable_checkpoints: false,
    },
    // W2-ckpt as the workload defines it — every 1 s, to durable storage — on the longer W2x10,
    // beside W2x10 without checkpoints (`w2-ckpt` runs the two in alternation).
    Workload {
        name: "W2x10",
        job: W2,
        records: W2X10_RECORDS,
        checkpoint_interval: None,
        durable_checkpoints: false,
    },
    Workload {
        name: "W2x10-ckpt",
        job: W2,
        records: W2X10_RECORDS,
        checkpoint_interval: Some("1s"),
        durable_checkpoints: true,
    },
];

/// The workload called `name` (as `WORKLOADS` spells it).
fn workload(name: &str) -> &'static Workload {
    WORKLOADS.iter().find(|w| w.name == name).expect("a workload of WORKLOADS")
}

/// The workload's job file, with its record count and checkpoint interval.
fn job_text(w: &Workload) -> String {
    let mut job = w.job.to_owned();
    if w.job == W2 && w.records != W2_RECORDS {
        assert!(job.contains(W2_COUNT_LINE), "examples/w2.toml's generator has {W2_COUNT_LINE}");
        job = job.replacen(W2_COUNT_LINE, &format!("count = {}", w.records), 1);
    }
    if let Some(interval) = w.checkpoint_interval {
        let table = format!("[job.checkpoints]\ninterval = \"{interval}\"\n\n[[source]]");
        assert!(job.contains("[[source]]"), "the workload has a source");
        job = job.replacen("[[source]]", &table, 1);
    }
    job
}

/// A benchmark the command line can select.
#[derive(Clone, Copy)]
enum Benchmark {
    InProcess(&'static Workload),
    /// W2x10 and W2x10-ckpt in alternating runs.
    W2Ckpt,
    W2Net,
    F1,
    R1,
}

/// R1's checkpoint intervals unless `--checkpoint-interval` names others: the workload's 1 s, and
/// a shorter one (the first commit after recovery waits for the next checkpoint).
const R1_CHECKPOINT_INTERVALS: [Duration; 2] = [Duration::from_secs(1), Duration::from_millis(200)];

/// R1's restart delay unless `--restart-delay` says otherwise: none, so that the figures show how
/// fast the engine itself recovers (the job-file default of the fixed-delay strategy is 1 s).
const R1_RESTART_DELAY: Duration = Duration::ZERO;

/// A duration as the job files write it: `200ms`, `1s`.
fn parse_duration(text: &str) -> Result<Duration> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 =
        digits.parse().with_context(|| format!("`{text}`: expected a duration such as 200ms or 1s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => bail!("`{text}`: expected a duration such as 200ms or 1s"),
    }
}

const USAGE: &str = "usage: rivulet-benches [--runs N] [--parallelism|-p N] [--rivulet PATH] \
     [--checkpoint-interval D[,D..]] [--restart-delay D] [w1] [w2] [w2-ckpt] [w2-net] [f1] [r1]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    nodes::install_panic_hook();
    let mut runs = 3usize;
    let mut parallelisms = vec![1u16, 2];
    let mut rivulet: Option<PathBuf> = None;
    let mut checkpoint_intervals = R1_CHECKPOINT_INTERVALS.to_vec();
    let mut restart_delay = R1_RESTART_DELAY;
    let mut selected: Vec<Benchmark> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => {
                runs = args.get(i + 1).and_then(|r| r.parse().ok()).context("--runs needs a number")?;
                if runs == 0 {
                    bail!("--runs needs at least 1");
                }
                i += 1;
            }
            "--parallelism" | "-p" => {
                let p =
                    args.get(i + 1).and_then(|p| p.parse().ok()).context("--parallelism needs a number")?;
                parallelisms = vec![p];
                i += 1;
            }
            "--rivulet" => {
                rivulet = Some(PathBuf::from(args.get(i + 1).context("--rivulet needs a path")?));
                i += 1;
            }
            "--checkpoint-interval" => {
                let list = args.get(i + 1).context("--checkpoint-interval needs durations")?;
                checkpoint_intervals = list.split(',').map(parse_duration).collect::<Result<_>>()?;
                i += 1;
            }
            "--restart-delay" => {
                restart_delay = parse_duration(args.get(i + 1).context("--restart-delay needs a duration")?)?;
                i += 1;
            }
            "w2-net" | "W2-net" | "W2-NET" => selected.push(Benchmark::W2Net),
            "r1" | "R1" => selected.push(Benchmark::R1),
            "w2-ckpt" | "W2-ckpt" => selected.push(Benchmark::W2Ckpt),
            "f1" | "F1" => selected.push(Benchmark::F1),
            name => match WORKLOADS.iter().find(|w| w.name.eq_ignore_ascii_case(name)) {
                Some(w) => selected.push(Benchmark::InProcess(w)),
                None => bail!("unknown benchmark `{name}`\n{USAGE}"),
            },
        }
        i += 1;
    }
    if selected.is_empty() {
        selected = ["W1", "W2", "W2-ckpt-100ms"].map(|name| Benchmark::InProcess(workload(name))).into();
        selected.extend([Benchmark::W2Ckpt, Benchmark::W2Net, Benchmark::F1, Benchmark::R1]);
    }
    let needs_nodes = selected.iter().any(|b| !matches!(b, Benchmark::InProcess(_) | Benchmark::W2Ckpt));
    let binary = if needs_nodes { Some(nodes::rivulet_binary(rivulet.as_deref())?) } else { None };
    let binary = || binary.as_deref().expect("found above when a benchmark needs nodes");
    for benchmark in selected {
        match benchmark {
            Benchmark::InProcess(w) => {
                for &parallelism in &parallelisms {
                    in_process(w, parallelism, runs)?;
                }
            }
            Benchmark::W2Ckpt => {
                for &parallelism in &parallelisms {
                    checkpoint_overhead::compare(
                        workload("W2x10"),
                        workload("W2x10-ckpt"),
                        parallelism,
                        runs,
                    )?;
                }
            }
            Benchmark::W2Net => {
                for &parallelism in &parallelisms {
                    cluster::w2_net(binary(), parallelism, runs)?;
                }
            }
            Benchmark::F1 => cluster::f1(binary(), runs)?,
            Benchmark::R1 => {
                for &checkpoint_interval in &checkpoint_intervals {
                    let config = recovery::R1 { checkpoint_interval, restart_delay };
                    recovery::r1(binary(), &config, runs)?;
                }
            }
        }
    }
    Ok(())
}

/// The worker threads of every in-process run: the machine's cores.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One run of an in-process workload in a child process; its JSON line, printed.
fn run_child(w: &Workload, parallelism: u16) -> Result<String> {
    let exe = std::env::current_exe().context("locating this program")?;
    let out = Command::new(&exe)
        .args(["--child", w.name, &parallelism.to_string(), &workers().to_string()])
        .output()
        .context("running a benchmark child")?;
    if !out.status.success() {
        bail!("{} at parallelism {parallelism} failed: {}", w.name, String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8(out.stdout).context("child output")?;
    print!("{line}");
    Ok(line)
}

/// An in-process workload at one parallelism: `runs` child processes, then a summary line.
fn in_process(w: &Workload, parallelism: u16, runs: usize) -> Result<()> {
    let workers = workers();
    let mut results = Vec::new();
    let mut durations: Vec<u64> = Vec::new();
    for _ in 0..runs {
        let line = run_child(w, parallelism)?;
        results.push(parse_run(&line)?);
        durations.extend(checkpoint_durations(&line));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (seconds, _, window_results) = results[results.len() / 2];
    let rss_max = results.iter().map(|r| r.1).max().unwrap_or(0);
    durations.sort_unstable();
    let checkpoints = match (durations.get(durations.len() / 2), durations.last()) {
        (Some(p50), Some(max)) if w.checkpoint_interval.is_some() => format!(
            ",\"checkpoints\":{},\"checkpoint_ms_p50\":{p50},\"checkpoint_ms_max\":{max}",
            durations.len()
        ),
        _ if w.checkpoint_interval.is_some() => ",\"checkpoints\":0".to_owned(),
        _ => String::new(),
    };
    println!(
        "{{\"summary\":true,\"workload\":\"{}\",\"parallelism\":{parallelism},\"workers\":{workers},\"runs\":{runs},\
         \"median_seconds\":{seconds:.4},\"records_per_second\":{:.0},\"peak_rss_kb_max\":{rss_max},\"window_results\":{window_results}{checkpoints}}}",
        w.name,
        w.records as f64 / seconds
    );
    Ok(())
}

/// The checkpoint durations (ms) a run's JSON line lists.
fn checkpoint_durations(line: &str) -> Vec<u64> {
    let Some(start) = line.find("\"checkpoint_ms\":[") else { return Vec::new() };
    let rest = &line[start + 17..];
    let list = &rest[..rest.find(']').unwrap_or(0)];
    list.split(',').filter_map(|d| d.trim().parse().ok()).collect()
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
    let job = job_text(w);
    let graph = parse_job(&job, &ParseOptions { parallelism: Some(parallelism) })?;
    // A fresh data directory per run, as `rivulet run --data-dir` takes it (on the machine's
    // disk: /tmp is not a tmpfs here), removed after the run.
    let data_dir = w
        .durable_checkpoints
        .then(|| std::env::temp_dir().join(format!("rivulet-bench-{}-{}", w.name, std::process::id())));
    if let Some(dir) = &data_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let options = RunOptions {
        data_dir: data_dir.clone().map(|dir| (dir, CheckpointStoreKind::Lmdb)),
        ..RunOptions::new(workers)
    };
    // The embedded mini-cluster of `rivulet run`: a JobManager and TaskManagers in this process.
    let result = run_on_local_cluster(
        &job,
        Some(parallelism),
        &graph,
        &options,
        Arc::new(AtomicBool::new(false)),
        Duration::from_secs(3600),
        |_| {},
    );
    if let Some(dir) = &data_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let result = result?;
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
    let checkpoints = match &result.checkpoints {
        Some(c) => format!(
            ",\"checkpoint_store\":\"{}\",\"checkpoints\":{},\"checkpoint_ms\":{:?},\"checkpoint_bytes_last\":{}",
            if w.durable_checkpoints { "lmdb" } else { "memory" },
            c.counters.completed,
            c.recent_durations_ms,
            c.counters.last_bytes
        ),
        None => String::new(),
    };
    println!(
        "{{\"workload\":\"{}\",\"parallelism\":{parallelism},\"workers\":{workers},\"records\":{},\"seconds\":{seconds:.4},\
         \"records_per_second\":{:.0},\"cpu_seconds\":{:.2},\"peak_rss_kb\":{},\"window_results\":{window_results}{checkpoints}}}",
        w.name,
        w.records,
        w.records as f64 / seconds,
        cpu_seconds(),
        peak_rss_kb()
    );
    Ok(())
}

/// The CPU time (user and system, all threads) this process has used so far, from /proc (0 where
/// /proc is not available). On a shared machine it varies less than wall time: another process
/// that takes a core delays a run but does not add to its CPU time.
fn cpu_seconds() -> f64 {
    /// The unit of /proc's times (`USER_HZ`), 100 on every Linux architecture we run on.
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // After the command name in parentheses (which may hold spaces): state is the first field,
    // utime the 12th and stime the 13th.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / TICKS_PER_SECOND
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
