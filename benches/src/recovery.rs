//! R1: recovery after a SIGKILL of a TaskManager, with the output checked exactly-once.
//!
//! Every run starts a fresh cluster of `rivulet` processes on loopback: a JobManager, two
//! TaskManagers of 3 slots that the job fills, and, once the job runs, a standby TaskManager with
//! 3 free slots. The job is W2 unbounded at 200,000 records/s at parallelism 2 (a generator chain
//! and a window → file sink chain per subtask, checkpointed, restarted without delay by default),
//! with one addition, a probe: a second generator at 2,000 records/s whose records, padded to
//! about 250 bytes of JSON, go to a second file sink (`probe → padded → probe_files`, one chain
//! per subtask). W2's windows reach their sink only when the watermark passes a window's end —
//! 500 ms of wall time apart at this rate, so up to 500 ms after the restore depending on where
//! the restore point lies in its window — while the probe's records reach its sink as soon as the
//! restored sources run: it shows when records flow through the restored job again, whatever the
//! windows' phase.
//!
//! After the job has committed checkpoints, one busy TaskManager is SIGKILLed, and the driver polls
//! (every [`POLL`]) the JobManager's job status and the sinks' directories for these moments, each
//! measured from the moment before the signal:
//!
//! * `noticed`: the job's status first shows the failure (another state or a later attempt);
//! * `running`: the JobManager reports a later attempt with every subtask running;
//! * `output`: the new attempt's records reach the probe's sink (a staging file of that attempt
//!   holds bytes, or a part file of a checkpoint newer than any before the kill exists);
//! * `window_output`: the same for the windows' sink;
//! * `commit`: a part file of a checkpoint newer than any before the kill is committed (visible),
//!   in either sink.
//!
//! Then the job is cancelled and its committed output checked. Windows: every (key, window) at
//! most once, each window's count and sum exactly the generator's, per key a gap-free run of
//! windows from the first, and every key of one sink subtask with the same number of windows (a
//! subtask commits all that it fired up to a checkpoint; W2's every key has records in every
//! window) — so at most `parallelism` distinct per-key window counts. Probe: every id at most
//! once, and per sink subtask exactly the ids of its generator subtask's first blocks (a generator
//! deals blocks of `BATCH_ROWS_MAX` ids round-robin to its subtasks), each block whole.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rivulet_core::ids::{JobId, TaskManagerId};
use rivulet_core::jobmanager::execution_state::ExecutionState;
use rivulet_core::limits::BATCH_ROWS_MAX;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo};

use crate::cluster::{log_dir, median};
use crate::nodes::{JobManagerClient, Nodes};

/// W2's generator (`shared/workloads.md`): `key = i % KEYS`, `value = (i * 7) % VALUES`,
/// `ts_ms = i / RECORDS_PER_MS`.
const KEYS: u64 = 10_000;
const VALUES: u64 = 1_000;
const RECORDS_PER_MS: u64 = 100;
const WINDOW_MS: i64 = 1_000;
const WINDOW_RECORDS: u64 = RECORDS_PER_MS * WINDOW_MS as u64;
/// R1's rate, over both source subtasks: two windows of event time per second.
const RATE: u64 = 200_000;
const PARALLELISM: u16 = 2;
/// The probe's generator: 1 % of W2's rate. Each subtask emits a block of `BATCH_ROWS_MAX` records
/// at once when it starts (or is restored), then one every 4 s.
const PROBE_RATE: u64 = 2_000;
/// A string the probe adds to every record, so that one block of its JSON lines (about 1 MB) is
/// more than the file sink buffers (256 KiB) and reaches the staging file as soon as it is written.
const PROBE_PAD_BYTES: usize = 200;
/// Slots of each TaskManager: the two busy ones hold three subtasks each (W2's two chains and the
/// probe's), the standby as many.
const SLOTS: u16 = 3;

/// How often the driver asks the JobManager and lists the sink's directory after the kill: the
/// error this adds to each figure is at most this (plus the time a status request takes).
const POLL: Duration = Duration::from_millis(2);
/// How long the job runs after its first commit before the kill window opens.
const WARM_UP: Duration = Duration::from_secs(2);
/// The kill comes at a moment spread over this much after the warm-up: two windows of event time
/// at [`RATE`], and a whole number of checkpoint intervals of 1 s, 500 ms, 200 ms or 100 ms.
const KILL_SPREAD: Duration = Duration::from_secs(1);
/// Any one awaited condition taking longer than this has gone wrong.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// One configuration of R1.
pub struct R1 {
    /// `[job.checkpoints] interval`.
    pub checkpoint_interval: Duration,
    /// `[job.restart] delay` of the fixed-delay strategy.
    pub restart_delay: Duration,
}

fn job_text(r1: &R1, out_dir: &Path) -> String {
    let path = out_dir.to_str().expect("the benchmark's paths are UTF-8");
    format!(
        r#"
[job]
name = "r1"
parallelism = {PARALLELISM}

[job.checkpoints]
interval = "{interval}ms"

[job.restart]
strategy = "fixed-delay"
attempts = 1000
delay = "{delay}ms"

[[source]]
name = "g"
type = "generator"
rate = {RATE}
keys = {KEYS}
values = {VALUES}
records_per_ms = {RECORDS_PER_MS}
event_time = "ts_ms"

[[operator]]
name = "by_key"
type = "key_by"
input = "g"
key = "key"

[[operator]]
name = "windows"
type = "window"
input = "by_key"
window = "tumbling"
size = "1s"
aggregates = {{ n = "count()", total = "sum(value)" }}

[[sink]]
name = "files"
type = "file"
input = "windows"
path = "{path}/windows"
format = "jsonl"

[[source]]
name = "probe"
type = "generator"
rate = {PROBE_RATE}

[[operator]]
name = "padded"
type = "map"
input = "probe"
compute = {{ pad = "'{pad}'" }}

[[sink]]
name = "probe_files"
type = "file"
input = "padded"
path = "{path}/probe"
format = "jsonl"
"#,
        interval = r1.checkpoint_interval.as_millis(),
        pad = "x".repeat(PROBE_PAD_BYTES),
        delay = r1.restart_delay.as_millis(),
    )
}

/// The three figures of one kill, from the moment before the SIGKILL.
struct Recovery {
    /// The JobManager's status first shows the failure (another state, or a later attempt).
    noticed: Duration,
    running: Duration,
    output: Duration,
    window_output: Duration,
    commit: Duration,
}

impl Recovery {
    const NAMES: [&str; 5] = ["noticed", "running", "output", "window_output", "commit"];

    fn figures(&self) -> [Duration; 5] {
        [self.noticed, self.running, self.output, self.window_output, self.commit]
    }
}

/// R1 in one configuration, `runs` kills, each on a fresh cluster.
pub fn r1(binary: &Path, config: &R1, runs: usize) -> Result<()> {
    let name = format!(
        "R1-ckpt-{}ms-restart-{}ms",
        config.checkpoint_interval.as_millis(),
        config.restart_delay.as_millis()
    );
    let mut figures: [Vec<f64>; 5] = Default::default();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for run in 1..=runs {
        let nodes = Nodes::new(&log_dir()?)?;
        let out_dir = tempfile_dir(&name, run)?;
        let (recovery, committed, victim) = one_kill(binary, config, run, &nodes, &out_dir)
            .with_context(|| format!("{name} run {run}; node logs in {}", nodes.logs()))?;
        drop(nodes);
        let _ = std::fs::remove_dir_all(&out_dir);
        let mut line =
            format!("{{\"workload\":\"R1\",\"config\":\"{name}\",\"run\":{run},\"killed\":\"{victim}\"");
        for (what, d) in Recovery::NAMES.iter().zip(recovery.figures()) {
            line += &format!(",\"{what}_ms\":{:.1}", ms(d));
        }
        println!(
            "{line},\"windows_committed\":{},\"probe_records_committed\":{},\"exactly_once\":true}}",
            committed.0, committed.1
        );
        for (list, d) in figures.iter_mut().zip(recovery.figures()) {
            list.push(ms(d));
        }
    }
    let mut line = format!("{{\"summary\":true,\"workload\":\"R1\",\"config\":\"{name}\",\"runs\":{runs}");
    for (what, list) in Recovery::NAMES.iter().zip(&mut figures) {
        let max = list.iter().copied().fold(0f64, f64::max);
        line += &format!(",\"{what}_ms_p50\":{:.1},\"{what}_ms_max\":{max:.1}", median(list));
    }
    println!("{line},\"exactly_once\":true}}");
    Ok(())
}

/// A fresh, empty output directory for one run, under the system's temporary directory.
fn tempfile_dir(name: &str, run: usize) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("rivulet-{name}-{}-{run}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// One run: the cluster, the job, the kill, the figures, the cancel and the check; the figures,
/// the number of committed windows and the killed TaskManager.
fn one_kill(
    binary: &Path,
    config: &R1,
    run: usize,
    nodes: &Nodes,
    out_dir: &Path,
) -> Result<(Recovery, (usize, usize), TaskManagerId)> {
    let (_, address, _) = nodes.start_job_manager(binary)?;
    let mut pids = BTreeMap::new();
    for id in [1, 2] {
        pids.insert(TaskManagerId(id), nodes.start_task_manager(binary, &address, id, SLOTS, &[])?.0);
    }
    let mut client = JobManagerClient::connect(&address)?;
    let submit = ClientRequest::Submit {
        job_file: job_text(config, out_dir),
        parallelism: None,
        from_savepoint: None,
    };
    let job = match client.request(&submit)? {
        ClientResponse::Submitted { job } => job,
        other => bail!("the JobManager did not take R1's job: {other:?}"),
    };
    let info = wait_until(&mut client, job, "the job to run", |info| all_running(info, 0))?;
    let busy = hosts(&info);
    ensure!(busy.len() == 2, "the job should run on both TaskManagers, runs on {busy:?}");
    // The standby registers once the job runs, so that the job's first attempt leaves it free.
    nodes.start_task_manager(binary, &address, 3, SLOTS, &[])?;

    let (windows_dir, probe_dir) = (out_dir.join("windows"), out_dir.join("probe"));
    let deadline = Instant::now() + WAIT_MAX;
    while last_checkpoint(&windows_dir, true).is_none() {
        ensure!(Instant::now() < deadline, "no checkpoint committed within {WAIT_MAX:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Kill at a different moment of the checkpoint and window cycles in each run: the phases
    // 0.37, 0.74, 0.11, ... of KILL_SPREAD after the warm-up. (Waiting for a commit first would
    // bias the kill: only checkpoints whose sinks hold output commit a part file.)
    let phase = (run * 37 % 100) as u32;
    std::thread::sleep(WARM_UP + KILL_SPREAD * phase / 100);

    let before = status(&mut client, job)?;
    ensure!(all_running(&before, before.attempt), "the job runs before the kill");
    let victim = hosts(&before)[run % 2];
    let newest_before =
        [&windows_dir, &probe_dir].iter().filter_map(|d| last_checkpoint(d, false)).max().unwrap_or(0);
    let killed_at = nodes.kill(pids[&victim])?;
    let since = Since { attempt: before.attempt, checkpoint: newest_before, killed_at };
    let recovery = watch_recovery(&mut client, job, &since, &probe_dir, &windows_dir)?;

    // Both sinks have committed output of the restored attempt before the job is cancelled.
    let deadline = Instant::now() + WAIT_MAX;
    while ![&windows_dir, &probe_dir].iter().all(|d| last_checkpoint(d, true) > Some(newest_before)) {
        ensure!(Instant::now() < deadline, "the restored attempt committed nothing within {WAIT_MAX:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    // End the job and check what it committed.
    match client.request(&ClientRequest::Cancel { job })? {
        ClientResponse::CancelRequested { .. } => {}
        other => bail!("the JobManager did not cancel {job}: {other:?}"),
    }
    let ended = wait_until(&mut client, job, "the job to be cancelled", |info| {
        matches!(info.state.as_str(), "canceled" | "failed" | "finished")
    })?;
    ensure!(ended.state == "canceled", "{job} ended {}: {:?}", ended.state, ended.last_failure);
    let windows = check_windows(&windows_dir, newest_before).context("the windows' committed output")?;
    let probe = check_probe(&probe_dir, newest_before).context("the probe's committed output")?;
    Ok((recovery, (windows, probe), victim))
}

/// What was there before the kill: the job's attempt and the newest checkpoint of any part file
/// (pending or committed), and the moment just before the signal.
struct Since {
    attempt: u32,
    checkpoint: u64,
    killed_at: Instant,
}

/// Polls the JobManager and the sinks' directories from the kill until every moment is seen.
fn watch_recovery(
    client: &mut JobManagerClient,
    job: JobId,
    since: &Since,
    probe_dir: &Path,
    windows_dir: &Path,
) -> Result<Recovery> {
    let mut seen: [Option<Duration>; 5] = [None; 5];
    loop {
        let info = status(client, job)?;
        let now = since.killed_at.elapsed();
        let (probe, windows) = (sink_files(probe_dir), sink_files(windows_dir));
        let new_output =
            |files: &[SinkFile]| files.iter().any(|f| f.is_new_output(since.attempt, since.checkpoint));
        let committed = probe
            .iter()
            .chain(&windows)
            .any(|f| f.committed && f.checkpoint.is_some_and(|n| n > since.checkpoint));
        let happened = [
            info.attempt > since.attempt || info.state != "running",
            info.attempt > since.attempt && all_running(&info, info.attempt),
            new_output(&probe),
            new_output(&windows),
            committed,
        ];
        for (moment, happened) in seen.iter_mut().zip(happened) {
            if moment.is_none() && happened {
                *moment = Some(now);
            }
        }
        if let [Some(noticed), Some(running), Some(output), Some(window_output), Some(commit)] = seen {
            return Ok(Recovery { noticed, running, output, window_output, commit });
        }
        ensure!(
            now < WAIT_MAX,
            "no recovery within {WAIT_MAX:?}: seen {:?} of {:?}; status {}: attempt {}, {:?}",
            seen,
            Recovery::NAMES,
            info.state,
            info.attempt,
            info.last_failure
        );
        std::thread::sleep(POLL);
    }
}

fn status(client: &mut JobManagerClient, job: JobId) -> Result<JobInfo> {
    match client.request(&ClientRequest::JobStatus { job })? {
        ClientResponse::Job { job } => Ok(job),
        other => bail!("unexpected answer to a status request: {other:?}"),
    }
}

/// Polls the job's status every 5 ms until `done` holds; the status that satisfied it.
fn wait_until(
    client: &mut JobManagerClient,
    job: JobId,
    what: &str,
    done: impl Fn(&JobInfo) -> bool,
) -> Result<JobInfo> {
    let started = Instant::now();
    loop {
        let info = status(client, job)?;
        if done(&info) {
            return Ok(info);
        }
        ensure!(
            started.elapsed() < WAIT_MAX,
            "gave up waiting for {what}: {} attempt {} ({:?})",
            info.state,
            info.attempt,
            info.last_failure
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the job runs attempt `attempt` with every subtask running.
fn all_running(info: &JobInfo, attempt: u32) -> bool {
    info.state == "running"
        && info.attempt == attempt
        && !info.subtasks.is_empty()
        && info.subtasks.iter().all(|s| s.state == ExecutionState::Running)
}

/// The TaskManagers the job's subtasks run on, sorted.
fn hosts(info: &JobInfo) -> Vec<TaskManagerId> {
    let mut hosts: Vec<TaskManagerId> = info.subtasks.iter().filter_map(|s| s.task_manager).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// A file the file sink wrote (`node/src/connectors.rs`): a staging file of an attempt, a pending
/// or a committed part file of a checkpoint.
struct SinkFile {
    name: String,
    /// The sink subtask of a part file.
    index: Option<u16>,
    /// Of a staging file `.part-<i>.jsonl.job-<j>.attempt-<a>.inprogress`.
    attempt: Option<u32>,
    /// Of a part file `part-<i>-<n>.jsonl` or `.part-<i>-<n>.jsonl.job-<j>.pending`.
    checkpoint: Option<u64>,
    committed: bool,
    bytes: u64,
}

impl SinkFile {
    fn parse(name: &str, bytes: u64) -> Option<SinkFile> {
        let file = |index, attempt, checkpoint, committed| SinkFile {
            name: name.to_owned(),
            index,
            attempt,
            checkpoint,
            committed,
            bytes,
        };
        if let Some(hidden) = name.strip_prefix(".part-") {
            if let Some(rest) = hidden.strip_suffix(".inprogress") {
                let attempt = rest.rsplit_once(".attempt-")?.1.parse().ok()?;
                return Some(file(None, Some(attempt), None, false));
            }
            let stem = hidden.strip_suffix(".pending")?.split_once(".jsonl.")?.0;
            let (index, checkpoint) = stem.split_once('-')?;
            return Some(file(Some(index.parse().ok()?), None, Some(checkpoint.parse().ok()?), false));
        }
        let stem = name.strip_prefix("part-")?.strip_suffix(".jsonl")?;
        let (index, checkpoint) = match stem.split_once('-') {
            Some((index, checkpoint)) => (index, Some(checkpoint.parse().ok()?)),
            None => (stem, None),
        };
        Some(file(Some(index.parse().ok()?), None, checkpoint, true))
    }

    /// Written by an attempt after `attempt_before`: records in its staging file, or a part file
    /// of a checkpoint after `newest_before` (checkpoint ids grow across attempts).
    fn is_new_output(&self, attempt_before: u32, newest_before: u64) -> bool {
        let staged = self.attempt.is_some_and(|a| a > attempt_before) && self.bytes > 0;
        staged || self.checkpoint.is_some_and(|n| n > newest_before)
    }
}

fn sink_files(dir: &Path) -> Vec<SinkFile> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            SinkFile::parse(&name, e.metadata().map_or(0, |m| m.len()))
        })
        .collect()
}

/// The newest checkpoint of a part file in `dir`: committed ones only, or pending ones too.
fn last_checkpoint(dir: &Path, committed_only: bool) -> Option<u64> {
    sink_files(dir).iter().filter(|f| f.committed || !committed_only).filter_map(|f| f.checkpoint).max()
}

/// What the generator puts in window `window` of `key`: (records, sum of `value`).
fn expected_window(key: u64, window: u64) -> (u64, u64) {
    let first = window * WINDOW_RECORDS + key;
    (first..(window + 1) * WINDOW_RECORDS)
        .step_by(KEYS as usize)
        .fold((0, 0), |(n, total), i| (n + 1, total + (i * 7) % VALUES))
}

/// The committed part files of a cancelled run's sink; some must be of a checkpoint after
/// `newest_before` (output of the restored attempt).
fn committed_parts(dir: &Path, newest_before: u64) -> Result<Vec<SinkFile>> {
    let parts: Vec<SinkFile> = sink_files(dir).into_iter().filter(|f| f.committed).collect();
    ensure!(parts.iter().all(|f| f.checkpoint.is_some()), "a cancelled job published a final part");
    ensure!(
        parts.iter().any(|f| f.checkpoint > Some(newest_before)),
        "nothing the restored attempt wrote was committed"
    );
    Ok(parts)
}

/// The JSON Lines of a part file, each with its place for messages.
fn read_lines(dir: &Path, part: &SinkFile) -> Result<Vec<(serde_json::Value, String)>> {
    let text =
        std::fs::read_to_string(dir.join(&part.name)).with_context(|| format!("reading {}", part.name))?;
    text.lines()
        .enumerate()
        .map(|(line_no, line)| {
            let at = format!("{}:{}: {line}", part.name, line_no + 1);
            let value: serde_json::Value = serde_json::from_str(line).with_context(|| at.clone())?;
            Ok((value, at))
        })
        .collect()
}

/// An integer field of a JSON line.
fn int(value: &serde_json::Value, field: &str, at: &str) -> Result<i64> {
    value[field].as_i64().with_context(|| format!("no integer `{field}` in {at}"))
}

/// Checks the windows' committed output (see the module's doc); the number of windows.
fn check_windows(dir: &Path, newest_before: u64) -> Result<usize> {
    let parts = committed_parts(dir, newest_before)?;
    let mut windows: BTreeMap<(u64, i64), (u64, u64, &str)> = BTreeMap::new();
    for part in &parts {
        for (value, at) in read_lines(dir, part)? {
            let int = |field: &str| int(&value, field, &at);
            let (key, start, end) = (int("key")? as u64, int("window_start")?, int("window_end")?);
            ensure!(
                end - start == WINDOW_MS && start % WINDOW_MS == 0 && start >= 0,
                "not a 1 s window: {at}"
            );
            let result = (int("n")? as u64, int("total")? as u64, part.name.as_str());
            if let Some(first) = windows.insert((key, start), result) {
                bail!("key {key} window {start} written twice: in {} and in {at}", first.2);
            }
        }
    }
    let mut per_key: BTreeMap<u64, u64> = BTreeMap::new();
    for (&(key, start), &(n, total, file)) in &windows {
        let window = (start / WINDOW_MS) as u64;
        let expected = expected_window(key, window);
        ensure!(
            (n, total) == expected,
            "key {key} window {start} in {file}: n={n} total={total}, expected {expected:?}"
        );
        let next = per_key.entry(key).or_insert(0);
        ensure!(*next == window, "key {key}: window {start} follows {next} windows (lost output)");
        *next += 1;
    }
    ensure!(per_key.len() as u64 == KEYS, "{} keys of {KEYS} have committed windows", per_key.len());
    let mut counts: Vec<u64> = per_key.values().copied().collect();
    counts.sort_unstable();
    counts.dedup();
    ensure!(
        counts.len() <= usize::from(PARALLELISM),
        "keys have {counts:?} windows: more distinct counts than sink subtasks (lost output)"
    );
    Ok(windows.len())
}

/// Checks the probe's committed output (see the module's doc); the number of its records.
fn check_probe(dir: &Path, newest_before: u64) -> Result<usize> {
    let parts = committed_parts(dir, newest_before)?;
    let block_rows = BATCH_ROWS_MAX as u64;
    let parallelism = u64::from(PARALLELISM);
    let mut per_subtask: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for part in &parts {
        let index = part.index.context("a part file names its subtask")?;
        for (value, at) in read_lines(dir, part)? {
            let id = int(&value, "id", &at)? as u64;
            ensure!(
                id / block_rows % parallelism == u64::from(index),
                "{at}: a record of another subtask's block"
            );
            per_subtask.entry(index).or_default().push(id);
        }
    }
    let mut total = 0;
    for (index, ids) in &mut per_subtask {
        ids.sort_unstable();
        // Subtask `index`'s ids from the first: those of its blocks, whole blocks.
        ensure!(
            (ids.len() as u64).is_multiple_of(block_rows),
            "subtask {index}: {} ids, not whole blocks",
            ids.len()
        );
        let expected = (0..).filter(|id| id / block_rows % parallelism == u64::from(*index)).take(ids.len());
        for (got, want) in ids.iter().zip(expected) {
            ensure!(*got == want, "subtask {index}: id {got} where {want} was due (lost or repeated output)");
        }
        total += ids.len();
    }
    ensure!(
        per_subtask.len() == usize::from(PARALLELISM),
        "records of subtasks {:?} only",
        per_subtask.keys()
    );
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_file_names_parse() {
        let f = SinkFile::parse(".part-1.jsonl.job-1.attempt-2.inprogress", 5).unwrap();
        assert_eq!((f.index, f.attempt, f.checkpoint, f.committed), (None, Some(2), None, false));
        let f = SinkFile::parse(".part-0-7.jsonl.job-1.pending", 5).unwrap();
        assert_eq!((f.index, f.attempt, f.checkpoint, f.committed), (Some(0), None, Some(7), false));
        let f = SinkFile::parse("part-1-7.jsonl", 5).unwrap();
        assert_eq!((f.index, f.attempt, f.checkpoint, f.committed), (Some(1), None, Some(7), true));
        let f = SinkFile::parse("part-1.jsonl", 5).unwrap();
        assert_eq!((f.index, f.attempt, f.checkpoint, f.committed), (Some(1), None, None, true));
        assert!(SinkFile::parse("other", 5).is_none());
    }

    #[test]
    fn expected_windows_follow_the_generator() {
        // Key 3, window 0: records 3, 10_003, ..., 90_003.
        let values: u64 = (0..10).map(|j| (3 + j * 10_000) * 7 % 1_000).sum();
        assert_eq!(expected_window(3, 0), (10, values));
    }
}
