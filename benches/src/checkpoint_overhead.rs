//! W2-ckpt: the cost of checkpoints, read from a job run without and with them in alternation.
//!
//! The two workloads run the same job on the same records; one takes checkpoints. Runs alternate
//! (plain, checkpointed, plain, …) so that a slow spell of a shared machine falls on both sides
//! rather than on one configuration's block of runs. Each run's line is printed as it comes; the
//! summary gives both medians and the overhead `1 − median(checkpointed) / median(plain)`, and,
//! less sensitive to drift, the median over the pairs of `1 − checkpointed / plain`; and the same
//! for CPU time, which another process's load on the machine disturbs less than wall time.

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::cluster::median;
use crate::{checkpoint_durations, run_child, Workload};

/// What one run's JSON line says.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    records_per_second: f64,
    /// CPU time of the whole run (all threads).
    cpu_seconds: f64,
    /// Completed checkpoints, their durations (the most recent ones the JobManager keeps, in
    /// milliseconds) and the size of the last, for a run that takes them.
    checkpoints: u64,
    durations_ms: Vec<u64>,
    bytes_last: u64,
}

impl Run {
    fn parse(line: &str) -> Result<Run> {
        let value: Value = serde_json::from_str(line).with_context(|| format!("a run's line: {line}"))?;
        let number = |name: &str| value.get(name).and_then(Value::as_u64);
        let records = number("records").with_context(|| format!("no records in {line}"))?;
        let seconds =
            value.get("seconds").and_then(Value::as_f64).with_context(|| format!("no seconds in {line}"))?;
        ensure!(seconds > 0.0, "a run of no time: {line}");
        Ok(Run {
            records_per_second: records as f64 / seconds,
            cpu_seconds: value.get("cpu_seconds").and_then(Value::as_f64).unwrap_or(0.0),
            checkpoints: number("checkpoints").unwrap_or(0),
            durations_ms: checkpoint_durations(line),
            bytes_last: number("checkpoint_bytes_last").unwrap_or(0),
        })
    }
}

/// The overhead in percent of running at `checkpointed` instead of `plain` records/s.
fn overhead_percent(plain: f64, checkpointed: f64) -> f64 {
    100.0 * (1.0 - checkpointed / plain)
}

/// The summary of `runs` pairs of runs, as one JSON object.
fn summary(plain: &Workload, checkpointed: &Workload, parallelism: u16, runs: &[(Run, Run)]) -> Value {
    let plain_rps: Vec<f64> = runs.iter().map(|(p, _)| p.records_per_second).collect();
    let ckpt_rps: Vec<f64> = runs.iter().map(|(_, c)| c.records_per_second).collect();
    let mut paired: Vec<f64> =
        runs.iter().map(|(p, c)| overhead_percent(p.records_per_second, c.records_per_second)).collect();
    let mut durations: Vec<u64> = runs.iter().flat_map(|(_, c)| c.durations_ms.iter().copied()).collect();
    durations.sort_unstable();
    // `median` sorts its list: the per-run figures stay in run order for the summary.
    let (plain_median, ckpt_median) = (median(&mut plain_rps.clone()), median(&mut ckpt_rps.clone()));
    let plain_cpu: Vec<f64> = runs.iter().map(|(p, _)| p.cpu_seconds).collect();
    let ckpt_cpu: Vec<f64> = runs.iter().map(|(_, c)| c.cpu_seconds).collect();
    let (plain_cpu_median, ckpt_cpu_median) = (median(&mut plain_cpu.clone()), median(&mut ckpt_cpu.clone()));
    let round = |x: f64| (x * 10.0).round() / 10.0;
    serde_json::json!({
        "summary": true,
        "comparison": "W2-ckpt",
        "plain": plain.name,
        "checkpointed": checkpointed.name,
        "records": plain.records,
        "checkpoint_interval": checkpointed.checkpoint_interval,
        "checkpoint_store": if checkpointed.durable_checkpoints { "lmdb" } else { "memory" },
        "parallelism": parallelism,
        "runs": runs.len(),
        "plain_records_per_second": plain_rps.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "checkpointed_records_per_second": ckpt_rps.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "plain_median": plain_median.round(),
        "checkpointed_median": ckpt_median.round(),
        "overhead_percent": round(overhead_percent(plain_median, ckpt_median)),
        "paired_overhead_percent_median": round(median(&mut paired)),
        "plain_cpu_seconds": plain_cpu,
        "checkpointed_cpu_seconds": ckpt_cpu,
        // Extra CPU time per record, in percent of the plain run's.
        "cpu_overhead_percent": round(100.0 * (ckpt_cpu_median / plain_cpu_median - 1.0)),
        "checkpoints_per_run": runs.iter().map(|(_, c)| c.checkpoints).collect::<Vec<_>>(),
        "checkpoint_ms_p50": durations.get(durations.len() / 2),
        "checkpoint_ms_max": durations.last(),
        "checkpoint_bytes_last": runs.last().map(|(_, c)| c.bytes_last),
    })
}

/// `runs` pairs of `plain` then `checkpointed` at `parallelism`, each run's line, then the summary.
pub fn compare(plain: &Workload, checkpointed: &Workload, parallelism: u16, runs: usize) -> Result<()> {
    assert_eq!(plain.records, checkpointed.records, "the two runs compare only on the same records");
    assert!(plain.checkpoint_interval.is_none() && checkpointed.checkpoint_interval.is_some());
    let mut pairs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let p = Run::parse(&run_child(plain, parallelism)?)?;
        let c = Run::parse(&run_child(checkpointed, parallelism)?)?;
        pairs.push((p, c));
    }
    println!("{}", summary(plain, checkpointed, parallelism, &pairs));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_line_gives_its_rate_and_checkpoints() {
        let line = r#"{"workload":"W2x10-ckpt","parallelism":1,"workers":2,"records":200,"seconds":2.0000,"records_per_second":100,"cpu_seconds":3.5,"peak_rss_kb":1,"window_results":0,"checkpoint_store":"lmdb","checkpoints":3,"checkpoint_ms":[4, 9, 5],"checkpoint_bytes_last":1234}"#;
        let run = Run::parse(line).unwrap();
        assert_eq!(
            run,
            Run {
                records_per_second: 100.0,
                cpu_seconds: 3.5,
                checkpoints: 3,
                durations_ms: vec![4, 9, 5],
                bytes_last: 1234
            }
        );
        let plain = r#"{"workload":"W2x10","records":300,"seconds":1.5}"#;
        assert_eq!(Run::parse(plain).unwrap().checkpoints, 0);
        assert!(Run::parse(r#"{"records":3,"seconds":0}"#).is_err());
    }

    #[test]
    fn the_summary_takes_medians_and_the_overhead_of_them() {
        let run = |rps: f64, durations_ms: Vec<u64>| Run {
            records_per_second: rps,
            cpu_seconds: 2.0 * 100.0 / rps,
            checkpoints: durations_ms.len() as u64,
            durations_ms,
            bytes_last: 7,
        };
        let pairs = vec![
            (run(100.0, vec![]), run(97.0, vec![5, 6])),
            (run(80.0, vec![]), run(80.0, vec![9])),
            (run(90.0, vec![]), run(81.0, vec![4])),
        ];
        let plain = crate::workload("W2x10");
        let ckpt = crate::workload("W2x10-ckpt");
        let s = summary(plain, ckpt, 2, &pairs);
        assert_eq!(s["plain_median"], 90.0);
        assert_eq!(s["checkpointed_median"], 81.0);
        assert_eq!(s["overhead_percent"], 10.0);
        assert_eq!(s["paired_overhead_percent_median"], 3.0, "of 3 %, 0 % and 10 %");
        assert_eq!(s["cpu_overhead_percent"], 11.1, "2.469 s against 2.222 s");
        assert_eq!(s["checkpoints_per_run"], serde_json::json!([2, 1, 1]));
        assert_eq!(s["checkpoint_ms_p50"], 6, "the upper middle of 4, 5, 6, 9");
        assert_eq!(s["checkpoint_ms_max"], 9);
        assert_eq!(s["checkpoint_store"], "lmdb");
        assert_eq!(s["records"], 200_000_000);
    }
}
