//! Seed sweeps: many seeds, each a whole simulation, on every core, with a summary and the
//! command that replays each failure.
//!
//! One simulation is single-threaded and deterministic, so seeds run in parallel on plain threads
//! that take the next seed from a shared counter; the report is sorted by seed, so it does not
//! depend on which thread ran what. A seed runs the scenario it is told, or the one
//! [`Kind::for_seed`] picks.
//!
//! A failing seed must not end the sweep. An error is a result like any other; a panic is caught
//! per seed with `catch_unwind` when the build unwinds (tests, dev builds). The release profile
//! aborts on panic, so there the sweep runs every seed in a child process of its own binary
//! (`rivulet-sim run-seed --seed S --scenario NAME`) and reads the outcome from its output: a
//! child that aborts is one failed seed, reported with the end of its stderr.

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::catalog::Kind;
use crate::scenario::replay_command;
use crate::simulate;

/// What a passing seed did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The digest of the run's event trace.
    pub digest: u64,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// Failed attempts of the job.
    pub failures: u32,
}

/// How a sweep runs one seed.
#[derive(Clone, Debug)]
pub enum Runner {
    /// In this process, with `catch_unwind` around each seed: needs a build that unwinds.
    InProcess(fn(u64, Kind) -> Result<RunSummary, String>),
    /// In a child process: `program leading_args… run-seed --seed S --scenario NAME`, which
    /// prints [`format_child_result`]'s line.
    Subprocess { program: PathBuf, leading_args: Vec<String> },
}

impl Runner {
    /// The runner for this build of the binary `program`: in process if panics unwind, else in
    /// child processes.
    pub fn for_this_build(program: PathBuf) -> Runner {
        if cfg!(panic = "unwind") {
            Runner::InProcess(run_seed)
        } else {
            Runner::Subprocess { program, leading_args: Vec::new() }
        }
    }

    fn run(&self, seed: u64, kind: Kind) -> Result<RunSummary, String> {
        match self {
            Runner::InProcess(run) => catch_unwind(AssertUnwindSafe(|| run(seed, kind)))
                .unwrap_or_else(|payload| Err(format!("panicked: {}", panic_message(payload.as_ref())))),
            Runner::Subprocess { program, leading_args } => run_child(program, leading_args, seed, kind),
        }
    }
}

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub seeds: Range<u64>,
    /// The scenario every seed runs, or `None` to let each seed pick.
    pub scenario: Option<Kind>,
    pub threads: usize,
    pub runner: Runner,
}

/// One seed's result.
#[derive(Clone, Debug)]
pub struct SeedReport {
    pub seed: u64,
    pub kind: Kind,
    pub result: Result<RunSummary, String>,
    /// Wall-clock time the seed took.
    pub wall: Duration,
}

impl SeedReport {
    pub fn replay_command(&self) -> String {
        replay_command(self.seed, self.kind)
    }
}

/// A whole sweep's results, by seed.
#[derive(Debug)]
pub struct SweepReport {
    pub seeds: Range<u64>,
    /// The scenario every seed ran, if one was given.
    pub scenario: Option<Kind>,
    pub threads: usize,
    pub reports: Vec<SeedReport>,
    pub wall: Duration,
}

impl SweepReport {
    pub fn failures(&self) -> impl Iterator<Item = &SeedReport> {
        self.reports.iter().filter(|r| r.result.is_err())
    }

    /// A table per scenario, then every failure with its replay command.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let simulated: Duration =
            self.reports.iter().filter_map(|r| r.result.as_ref().ok()).map(|s| s.simulated).sum();
        out += &format!(
            "sweep of seeds {}..{}: {} runs on {} threads in {:.1} s of wall time ({:.0} s simulated)\n",
            self.seeds.start,
            self.seeds.end,
            self.reports.len(),
            self.threads,
            self.wall.as_secs_f64(),
            simulated.as_secs_f64()
        );
        out += &format!(
            "  {:<20} {:>6} {:>7} {:>7} {:>14} {:>12} {:>12}\n",
            "scenario", "runs", "passed", "failed", "with restarts", "sim avg (s)", "wall avg (ms)"
        );
        for kind in Kind::ALL {
            let of_kind: Vec<&SeedReport> = self.reports.iter().filter(|r| r.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            let passed: Vec<&RunSummary> = of_kind.iter().filter_map(|r| r.result.as_ref().ok()).collect();
            let restarted = passed.iter().filter(|s| s.failures > 0).count();
            let sim_avg =
                passed.iter().map(|s| s.simulated.as_secs_f64()).sum::<f64>() / passed.len().max(1) as f64;
            let wall_avg =
                of_kind.iter().map(|r| r.wall.as_secs_f64() * 1e3).sum::<f64>() / of_kind.len() as f64;
            out += &format!(
                "  {:<20} {:>6} {:>7} {:>7} {:>14} {:>12.1} {:>12.0}\n",
                kind.name(),
                of_kind.len(),
                passed.len(),
                of_kind.len() - passed.len(),
                restarted,
                sim_avg,
                wall_avg
            );
        }
        if self.scenario.is_none() {
            let undrawn: Vec<&str> =
                Kind::ALL.iter().filter(|k| !Kind::DRAWN.contains(k)).map(|k| k.name()).collect();
            if !undrawn.is_empty() {
                out += &format!(
                    "  not drawn (they fail for a known open bug; run them with --scenario): {}\n",
                    undrawn.join(", ")
                );
            }
        }
        let failures: Vec<&SeedReport> = self.failures().collect();
        if failures.is_empty() {
            out += "every seed passed\n";
        } else {
            out += &format!("{} seeds failed:\n", failures.len());
            for report in failures {
                out += &describe_failure(report);
            }
        }
        out
    }
}

/// A failed seed: its seed, scenario, error and replay command.
pub fn describe_failure(report: &SeedReport) -> String {
    let error = report.result.as_ref().err().map(String::as_str).unwrap_or("passed");
    let error = error.trim_end().replace('\n', "\n      ");
    format!(
        "  seed {} (scenario {}): {error}\n    replay: {}\n",
        report.seed,
        report.kind.name(),
        report.replay_command()
    )
}

/// Runs the sweep; `on_report` sees each seed's report as it comes (in no particular order).
pub fn sweep(config: &SweepConfig, on_report: impl Fn(&SeedReport) + Sync) -> SweepReport {
    assert!(config.threads >= 1, "a sweep needs a thread");
    let started = Instant::now();
    let next = AtomicU64::new(config.seeds.start);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..config.threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= config.seeds.end {
                    return;
                }
                let kind = config.scenario.unwrap_or_else(|| Kind::for_seed(seed));
                let began = Instant::now();
                let result = config.runner.run(seed, kind);
                let report = SeedReport { seed, kind, result, wall: began.elapsed() };
                on_report(&report);
                reports.lock().expect("no thread panics holding the reports").push(report);
            });
        }
    });
    let mut reports = reports.into_inner().expect("every thread has ended");
    reports.sort_by_key(|r| r.seed);
    SweepReport {
        seeds: config.seeds.clone(),
        scenario: config.scenario,
        threads: config.threads,
        reports,
        wall: started.elapsed(),
    }
}

/// Runs catalog scenario `kind` with `seed` in this thread.
pub fn run_seed(seed: u64, kind: Kind) -> Result<RunSummary, String> {
    match simulate(seed, &kind.scenario(seed)) {
        Ok(outcome) => Ok(RunSummary {
            digest: outcome.trace.digest,
            simulated: outcome.elapsed,
            failures: outcome.job.failures,
        }),
        Err(failure) => Err(failure.message),
    }
}

/// The first line a `run-seed` child prints for a passing seed.
pub fn format_child_result(summary: &RunSummary) -> String {
    format!(
        "ok digest={:016x} simulated_ns={} failures={}",
        summary.digest,
        summary.simulated.as_nanos(),
        summary.failures
    )
}

/// Reads [`format_child_result`]'s line back.
pub fn parse_child_result(line: &str) -> Option<RunSummary> {
    let mut fields = line.strip_prefix("ok ")?.split(' ');
    let mut value = |name: &str| fields.next()?.strip_prefix(name)?.strip_prefix('=');
    let digest = u64::from_str_radix(value("digest")?, 16).ok()?;
    let simulated = Duration::from_nanos(value("simulated_ns")?.parse().ok()?);
    let failures = value("failures")?.parse().ok()?;
    Some(RunSummary { digest, simulated, failures })
}

/// Lines of a child's stderr kept in the report of a child that crashed.
const CHILD_STDERR_LINES_KEPT: usize = 20;

fn run_child(
    program: &PathBuf,
    leading_args: &[String],
    seed: u64,
    kind: Kind,
) -> Result<RunSummary, String> {
    let output = Command::new(program)
        .args(leading_args)
        .args(["run-seed", "--seed", &seed.to_string(), "--scenario", kind.name()])
        .env_remove(crate::LOG_VARIABLE)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        return stdout
            .lines()
            .next()
            .and_then(parse_child_result)
            .ok_or_else(|| format!("the child printed no result: {stdout:?}"));
    }
    if output.status.code() == Some(1) && !stdout.trim().is_empty() {
        // A failed simulation: the child printed what failed.
        return Err(stdout.trim_end().to_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(CHILD_STDERR_LINES_KEPT)..].join("\n");
    Err(format!("the child crashed ({}); its stderr ends:\n{tail}", output.status))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Reads a seed range: `A..B`, `A..=B`, or one seed `A`.
pub fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let number =
        |s: &str| s.trim().parse::<u64>().map_err(|e| format!("{s:?} in {text:?} is not a seed: {e}"));
    let range = if let Some((a, b)) = text.split_once("..=") {
        number(a)?..number(b)?.checked_add(1).ok_or("the range ends past u64::MAX")?
    } else if let Some((a, b)) = text.split_once("..") {
        number(a)?..number(b)?
    } else {
        let seed = number(text)?;
        seed..seed.checked_add(1).ok_or("the seed is u64::MAX")?
    };
    if range.is_empty() {
        return Err(format!("{text:?} holds no seed"));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse() {
        assert_eq!(parse_seeds("0..200"), Ok(0..200));
        assert_eq!(parse_seeds("5..=7"), Ok(5..8));
        assert_eq!(parse_seeds("42"), Ok(42..43));
        assert!(parse_seeds("7..7").is_err());
        assert!(parse_seeds("a..b").is_err());
    }

    #[test]
    fn child_results_round_trip() {
        let summary =
            RunSummary { digest: 0xdead_beef, simulated: Duration::from_millis(4_321), failures: 2 };
        assert_eq!(parse_child_result(&format_child_result(&summary)), Some(summary));
        assert_eq!(parse_child_result("ok digest=zz"), None);
    }
}
