//! Progress reports while a job runs, and the summary when it ends.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::dataflow::plan::ExecutionPlan;
use rivulet_core::graph::{JobGraph, VertexId, VertexKind};

use crate::local_cluster::{JobProgress, RunResult};

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `12_300_000.0` → `12.3 M`.
pub fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2} G", x / 1e9),
        x if x >= 1e6 => format!("{:.1} M", x / 1e6),
        x if x >= 1e3 => format!("{:.1} k", x / 1e3),
        x => format!("{x:.0} "),
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A live line, rewritten in place (on a terminal).
    Line,
    /// A log line now and then (when the output is not a terminal).
    Log,
    Off,
}

impl ProgressMode {
    pub fn auto() -> ProgressMode {
        if std::io::stderr().is_terminal() {
            ProgressMode::Line
        } else {
            ProgressMode::Log
        }
    }

    /// How often the mini-cluster should call [`Progress::tick`].
    pub fn tick(self) -> Duration {
        match self {
            ProgressMode::Line => Duration::from_millis(250),
            ProgressMode::Log | ProgressMode::Off => Duration::from_secs(2),
        }
    }
}

/// Tracks rates between ticks and prints the progress line.
pub struct Progress<'g> {
    graph: &'g JobGraph,
    mode: ProgressMode,
    last: Option<(Instant, Vec<OperatorMetrics>)>,
}

impl<'g> Progress<'g> {
    pub fn new(graph: &'g JobGraph, mode: ProgressMode) -> Progress<'g> {
        Progress { graph, mode, last: None }
    }

    pub fn tick(&mut self, progress: &JobProgress<'_>) {
        if self.mode == ProgressMode::Off {
            return;
        }
        let now = Instant::now();
        let metrics = progress.metrics.to_vec();
        let mut line = format!("[{:>6.1}s]", progress.started.elapsed().as_secs_f64());
        for (v, m) in self.graph.vertices().iter().zip(&metrics) {
            let previous =
                self.last.as_ref().map(|(t, ms)| (now.duration_since(*t).as_secs_f64(), ms[v.id.index()]));
            let (count, rate) = match v.kind {
                VertexKind::Source { .. } => {
                    (m.records_out, previous.map(|(dt, p)| (m.records_out - p.records_out) as f64 / dt))
                }
                _ => (m.records_in, previous.map(|(dt, p)| (m.records_in - p.records_in) as f64 / dt)),
            };
            let _ = write!(line, " {} {}", v.name, si(count as f64).trim_end());
            if let Some(rate) = rate {
                let _ = write!(line, " ({}rec/s)", si(rate));
            }
        }
        self.last = Some((now, metrics));
        let mut err = std::io::stderr().lock();
        let _ = match self.mode {
            ProgressMode::Line => write!(err, "\r\x1b[2K{}", truncate(&line, 160)),
            _ => writeln!(err, "{line}"),
        };
        let _ = err.flush();
    }

    /// Ends the live line so that what follows starts on a fresh line.
    pub fn finish(&self) {
        if self.mode == ProgressMode::Line && self.last.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

fn truncate(line: &str, width: usize) -> &str {
    match line.char_indices().nth(width) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// The table printed when a job ends.
pub fn summary(graph: &JobGraph, result: &RunResult) -> String {
    let mut out = String::new();
    let secs = result.elapsed.as_secs_f64();
    let _ = writeln!(out, "finished job `{}` in {secs:.3} s", graph.name);
    let _ = writeln!(
        out,
        "  {:<20} {:<10} {:>4} {:>15} {:>15} {:>10}",
        "vertex", "kind", "par", "records in", "records out", "late"
    );
    let mut source_records = 0;
    for (v, m) in graph.vertices().iter().zip(&result.metrics) {
        let (records_in, records_out) = match v.kind {
            VertexKind::Source { .. } => {
                source_records += m.records_out;
                ("-".to_owned(), thousands(m.records_out))
            }
            VertexKind::Sink { .. } => (thousands(m.records_in), "-".to_owned()),
            _ => (thousands(m.records_in), thousands(m.records_out)),
        };
        let late = m.late_records_dropped + m.late_records_routed;
        let late = if matches!(v.kind, VertexKind::Window(_)) { thousands(late) } else { String::new() };
        let _ = writeln!(
            out,
            "  {:<20} {:<10} {:>4} {:>15} {:>15} {:>10}",
            v.name,
            v.kind.name(),
            v.parallelism,
            records_in,
            records_out,
            late
        );
        if m.records_skipped > 0 {
            let noun = plural(m.records_skipped, "record");
            let _ =
                writeln!(out, "  {:<20} skipped {} malformed input {noun}", "", thousands(m.records_skipped));
        }
    }
    let _ = write!(out, "{} {} in {secs:.3} s", thousands(source_records), plural(source_records, "record"));
    if secs >= 0.001 {
        let rate = si(source_records as f64 / secs);
        let _ =
            write!(out, ": {}records/s", rate.replace(" k", " k ").replace(" M", " M ").replace(" G", " G "));
    }
    out.push('\n');
    out
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

/// The chains and subtasks a job runs as, for `rivulet validate`.
pub fn describe_plan(graph: &JobGraph) -> String {
    let plan = ExecutionPlan::new(graph);
    let mut out = format!("plan: {} chains, {} subtasks\n", plan.chains.len(), plan.subtasks.len());
    for (i, chain) in plan.chains.iter().enumerate() {
        let names: Vec<&str> =
            chain.vertices.iter().map(|&v: &VertexId| graph.vertex(v).name.as_str()).collect();
        let _ = writeln!(out, "  chain {i}: {} ×{}", names.join(" → "), chain.parallelism);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2_000_000), "2,000,000");
    }

    #[test]
    fn si_scales() {
        assert_eq!(si(12_300_000.0), "12.3 M");
        assert_eq!(si(950.0), "950 ");
    }
}
