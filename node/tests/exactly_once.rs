//! Exactly-once output through TaskManager failures, with real processes on loopback: a JobManager
//! and two TaskManagers run a checkpointed job (a paced generator, keyed 1 s tumbling windows with
//! `count()` and `sum(value)`, a transactional JSON Lines file sink) while the TaskManagers are
//! SIGKILLed one after the other, each replaced by a fresh process with the same id. Every restart
//! resumes from the latest completed checkpoint, so the visible part files must hold every window
//! once, with exactly the generator's count and sum.
//!
//! The unbounded job is then stopped with `rivulet stop` (a drain: its sources end their input,
//! the final watermark fires every open window, and the finished job publishes the rest): per
//! key, a gap-free run of windows from the first must be there, once, each exact but the last
//! ones, which the stop cut short. A bounded twin of the job ends by itself; there every window of
//! the whole input must be there, once, exact.
//!
//! Savepoints: a job is stopped with `rivulet stop --savepoint` (its committed output is then
//! exactly the savepoint's, a gap-free run of exact windows), resumed with `rivulet submit
//! --from-savepoint` as a new job writing into the same directory, and drained: together the two
//! jobs' output holds every window once.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{start_job_manager, start_task_manager, toml_path, Processes};

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

/// The generator's settings (the job file spells them out; `values` is the default).
const KEYS: u64 = 10;
const VALUES: u64 = 1_000;
const RECORDS_PER_MS: u64 = 10;
/// Records per second over both source subtasks: two windows of event time per second.
const RATE: u64 = 20_000;
/// Records per 1 s window, over all keys.
const WINDOW_RECORDS: u64 = RECORDS_PER_MS * 1_000;
const WINDOW_MS: i64 = 1_000;

/// The bounded twin's records: about 20 s of input at [`RATE`], more with the replays.
const BOUNDED_COUNT: u64 = 400_000;

/// Kills per run (each followed by a restart from a checkpoint).
const KILLS_UNBOUNDED: usize = 3;
const KILLS_BOUNDED: usize = 2;

/// Slots per TaskManager: the job's four subtasks (two chains × parallelism 2) fit on either one.
const SLOTS: u16 = 4;

/// When a kill comes.
#[derive(Clone, Copy, Debug)]
enum KillMoment {
    /// This long after the previous checkpoint was seen committed.
    AfterCommit(Duration),
    /// As soon as a sink subtask is seen to have pre-committed a new checkpoint (its pending part
    /// file appears), at the TaskManager of a sink subtask that has not: sometimes before the
    /// checkpoint completes (which takes milliseconds), else just after its commit.
    MidCheckpoint,
}

/// The moments of the kills, in turn.
const KILL_MOMENTS: [KillMoment; 3] = [
    KillMoment::MidCheckpoint,
    KillMoment::AfterCommit(Duration::from_millis(500)),
    KillMoment::MidCheckpoint,
];

/// How long a mid-checkpoint kill watches for a pre-commit (a few checkpoint intervals).
const MID_CHECKPOINT_WATCH: Duration = Duration::from_secs(5);

const POLL_SLEEP: Duration = Duration::from_millis(100);
/// How long any one awaited condition may take before the test gives up.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// The two tests start three processes each; one at a time keeps them off each other's cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn job_text(out_dir: &Path, count: Option<u64>) -> String {
    let count = count.map(|c| format!("count = {c}\n")).unwrap_or_default();
    format!(
        r#"
[job]
name = "exactly-once"
parallelism = 2

[job.checkpoints]
interval = "1s"

[job.restart]
strategy = "fixed-delay"
attempts = 10
delay = "200ms"

[[source]]
name = "readings"
type = "generator"
{count}rate = {RATE}
keys = {KEYS}
values = {VALUES}
records_per_ms = {RECORDS_PER_MS}
event_time = "ts_ms"

[[operator]]
name = "by_key"
type = "key_by"
input = "readings"
key = "key"

[[operator]]
name = "per_second"
type = "window"
input = "by_key"
window = "tumbling"
size = "1s"

[operator.aggregates]
n = "count()"
total = "sum(value)"

[[sink]]
name = "files"
type = "file"
input = "per_second"
path = {path}
format = "jsonl"
"#,
        path = toml_path(out_dir),
    )
}

fn rivulet(args: &[&str]) -> Output {
    Command::new(RIVULET).args(args).env_remove("RIVULET_REST").output().expect("rivulet runs")
}

/// Polls `probe` until it gives a value; panics with `what` and the last `describe()` after
/// [`WAIT_MAX`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>, describe: impl Fn() -> String) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what} after {WAIT_MAX:?}\n{}", describe());
        std::thread::sleep(POLL_SLEEP);
    }
}

/// A job's state as `rivulet status` shows it.
struct Status {
    state: String,
    attempt: u32,
    /// Per subtask, (label such as `per_second -> files (1/2)`, state, TaskManager or `-`).
    subtasks: Vec<(String, String, String)>,
    text: String,
}

impl Status {
    fn running(&self) -> bool {
        self.state == "running" && !self.subtasks.is_empty() && self.subtasks.iter().all(|s| s.1 == "running")
    }

    fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.subtasks.iter().map(|s| s.2.clone()).filter(|h| h != "-").collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The TaskManager of the file sink's subtask `index` (from 0).
    fn sink_host(&self, index: u16) -> Option<&str> {
        let suffix = format!("files ({}/2)", index + 1);
        self.subtasks.iter().find(|s| s.0.ends_with(&suffix)).map(|s| s.2.as_str()).filter(|h| *h != "-")
    }
}

/// A JobManager and the TaskManagers `tm-1` and `tm-2`, which the test kills and restarts.
struct Cluster {
    processes: Processes,
    job_manager: String,
    rest: String,
    /// Per TaskManager id (`"1"`), its live process's index in `processes`.
    task_managers: BTreeMap<String, usize>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// A cluster whose JobManager runs with `job_manager_args`.
    fn start_with(job_manager_args: &[&str]) -> Cluster {
        let mut processes = Processes(Vec::new());
        let addresses = start_job_manager(&mut processes, job_manager_args);
        let (job_manager, rest) = (addresses.listen, addresses.rest.expect("the REST API is on by default"));
        let mut cluster = Cluster { processes, job_manager, rest, task_managers: BTreeMap::new() };
        for id in ["1", "2"] {
            cluster.start_task_manager(id);
        }
        wait_for(
            "both TaskManagers to register",
            || (cluster.addresses().len() == 2).then_some(()),
            || cluster.task_manager_list(),
        );
        cluster
    }

    fn start_task_manager(&mut self, id: &str) {
        let index = start_task_manager(&mut self.processes, &self.job_manager, id, SLOTS);
        self.task_managers.insert(id.to_owned(), index);
    }

    /// SIGKILLs TaskManager `id`'s process and reaps it.
    fn kill(&mut self, id: &str) {
        let child = &mut self.processes.0[self.task_managers[id]];
        child.kill().expect("SIGKILL the TaskManager");
        let _ = child.wait();
    }

    fn task_manager_list(&self) -> String {
        let out = rivulet(&["taskmanagers", "--rest", &self.rest]);
        assert!(out.status.success(), "rivulet taskmanagers: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Per registered TaskManager (`tm-1`), its data address.
    fn addresses(&self) -> BTreeMap<String, String> {
        self.task_manager_list()
            .lines()
            .filter(|l| l.starts_with("tm-"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_owned(), f[1].to_owned())
            })
            .collect()
    }

    fn submit(&self, job_file: &Path) -> String {
        let out = rivulet(&["submit", job_file.to_str().unwrap(), "--rest", &self.rest]);
        assert!(out.status.success(), "rivulet submit: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn submit_from_savepoint(&self, job_file: &Path, savepoint: &str) -> String {
        let job_file = job_file.to_str().unwrap();
        let out = rivulet(&["submit", "--from-savepoint", savepoint, job_file, "--rest", &self.rest]);
        assert!(
            out.status.success(),
            "rivulet submit --from-savepoint: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `rivulet savepoint JOB [DIR]` or `rivulet stop --savepoint JOB [DIR]`: the savepoint's path.
    fn savepoint(&self, job: &str, dir: Option<&Path>, stop: bool) -> String {
        let mut args: Vec<&str> =
            if stop { vec!["stop", "--savepoint", job] } else { vec!["savepoint", job] };
        args.extend(dir.map(|d| d.to_str().unwrap()));
        let out =
            Command::new(RIVULET).args(&args).args(["--rest", &self.rest]).output().expect("rivulet runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rivulet {args:?}: {stderr}");
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(Path::new(&path).is_file(), "{path} is a savepoint file ({stderr})");
        path
    }

    /// `rivulet stop JOB`: a drain.
    fn stop(&self, job: &str) {
        let out = rivulet(&["stop", job, "--rest", &self.rest]);
        assert!(out.status.success(), "rivulet stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn status(&self, job: &str) -> Status {
        let out = rivulet(&["status", job, "--rest", &self.rest]);
        assert!(out.status.success(), "rivulet status: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let state = text.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("").to_owned();
        let attempt = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("attempt:"))
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no attempt in the status:\n{text}"));
        let subtasks = text
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("subtask"))
            .skip(1)
            .map(|l| {
                let mut f: Vec<&str> = l.split_whitespace().collect();
                let tm = f.pop().unwrap_or_default().to_owned();
                let state = f.pop().unwrap_or_default().to_owned();
                (f.join(" "), state, tm)
            })
            .collect();
        Status { state, attempt, subtasks, text }
    }

    /// Kills a TaskManager that runs a part of the job at `moment`, waits for the job to restart,
    /// replaces the TaskManager with a fresh process under the same id, and waits until the new
    /// attempt runs and has completed a checkpoint of its own. The victim is the other
    /// TaskManager than last time where both run subtasks, or (mid-checkpoint) one whose sink
    /// subtask has not pre-committed yet, so that the checkpoint cannot complete.
    fn kill_one(&mut self, job: &str, out_dir: &Path, moment: KillMoment, previous: Option<&str>) -> String {
        let before = self.status(job);
        assert!(before.running(), "the job runs before a kill:\n{}", before.text);
        let hosts = before.hosts();
        let previous = previous.map(|v| format!("tm-{v}"));
        let mut victim = hosts
            .iter()
            .find(|h| Some(h.as_str()) != previous.as_deref())
            .or(hosts.first())
            .unwrap_or_else(|| panic!("no subtask has a TaskManager:\n{}", before.text))
            .clone();
        let mut seen = String::new();
        match moment {
            KillMoment::AfterCommit(delay) => std::thread::sleep(delay),
            KillMoment::MidCheckpoint => {
                let base = checkpoint_parts(out_dir).iter().map(|p| p.1).max();
                let deadline = Instant::now() + MID_CHECKPOINT_WATCH;
                loop {
                    let parts = checkpoint_parts(out_dir);
                    let new: Vec<&(u16, u64, bool)> = parts.iter().filter(|p| Some(p.1) > base).collect();
                    if let Some(&&(_, checkpoint, _)) = new.first() {
                        let done: Vec<u16> = new.iter().filter(|p| p.1 == checkpoint).map(|p| p.0).collect();
                        if let Some(host) =
                            (0..2).find(|i| !done.contains(i)).and_then(|i| before.sink_host(i))
                        {
                            victim = host.to_owned();
                        }
                        seen = format!(
                            " with checkpoint {checkpoint} pre-committed by sinks {done:?} ({new:?})"
                        );
                        break;
                    }
                    if Instant::now() > deadline {
                        seen = " (no pre-commit seen: killed anyway)".to_owned();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let id = victim.strip_prefix("tm-").expect("TaskManager ids are tm-N").to_owned();
        let victim = victim.as_str();
        self.kill(&id);
        eprintln!(
            "killed {victim}{seen} (attempt {}, on {hosts:?}); then: {:?}",
            before.attempt,
            checkpoint_parts(out_dir).iter().rev().take(4).collect::<Vec<_>>()
        );
        // The JobManager sees the connection close: it declares the TaskManager dead, and the
        // attempt fails.
        wait_for(
            "the JobManager to notice the kill",
            || {
                let now = self.status(job);
                let noticed = now.attempt > before.attempt || now.state != "running";
                (noticed && !self.addresses().contains_key(victim)).then_some(())
            },
            || format!("{}{}", self.status(job).text, self.task_manager_list()),
        );
        self.start_task_manager(&id);
        wait_for(
            "the fresh TaskManager to register",
            || self.addresses().contains_key(victim).then_some(()),
            || self.task_manager_list(),
        );
        let restarted = wait_for(
            "the job to run again",
            || Some(self.status(job)).filter(|s| s.running() && s.attempt > before.attempt),
            || self.status(job).text,
        );
        let committed = last_committed_checkpoint(out_dir);
        wait_for(
            "a checkpoint of the restarted attempt to commit",
            || (last_committed_checkpoint(out_dir) > committed).then_some(()),
            || format!("last committed: {committed:?}\n{}", self.status(job).text),
        );
        let after = self.status(job);
        assert!(
            after.running() && after.attempt == restarted.attempt,
            "the restarted attempt runs on:\n{}",
            after.text
        );
        eprintln!(
            "attempt {} runs on {:?}; checkpoint {:?} committed",
            after.attempt,
            after.hosts(),
            last_committed_checkpoint(out_dir)
        );
        id
    }

    /// Waits for the job to end; its last status.
    fn wait_for_end(&self, job: &str) -> Status {
        wait_for(
            "the job to end",
            || {
                Some(self.status(job))
                    .filter(|s| matches!(s.state.as_str(), "finished" | "failed" | "canceled"))
            },
            || self.status(job).text,
        )
    }
}

/// The visible part files of `dir` with their checkpoint: `part-<i>-<n>.jsonl` (committed at
/// checkpoint n) or `part-<i>.jsonl` (published when the job finished, `None`).
fn visible_parts(dir: &Path) -> Vec<(String, Option<u64>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut parts: Vec<(String, Option<u64>)> = entries
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .map(|name| {
            let stem = name
                .strip_prefix("part-")
                .and_then(|n| n.strip_suffix(".jsonl"))
                .unwrap_or_else(|| panic!("{name}: a visible file that is no part file"));
            let checkpoint = stem.split_once('-').map(|(_, n)| {
                n.parse().unwrap_or_else(|_| panic!("{name}: no checkpoint number in the part file's name"))
            });
            (name, checkpoint)
        })
        .collect();
    parts.sort();
    parts
}

/// The file sink's part files of checkpoints in `dir`, hidden pending ones too: (subtask,
/// checkpoint, committed), sorted by checkpoint.
fn checkpoint_parts(dir: &Path) -> Vec<(u16, u64, bool)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut parts: Vec<(u16, u64, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (stem, committed) = match name.strip_prefix('.') {
                // `.part-<i>-<n>.jsonl.<job>.pending`
                Some(hidden) => (hidden.strip_suffix(".pending")?.split_once(".jsonl.")?.0.to_owned(), false),
                None => (name.strip_suffix(".jsonl")?.to_owned(), true),
            };
            let (index, checkpoint) = stem.strip_prefix("part-")?.split_once('-')?;
            Some((index.parse().ok()?, checkpoint.parse().ok()?, committed))
        })
        .collect();
    parts.sort_by_key(|&(index, checkpoint, committed)| (checkpoint, index, committed));
    parts
}

fn last_committed_checkpoint(dir: &Path) -> Option<u64> {
    visible_parts(dir).iter().filter_map(|p| p.1).max()
}

/// One window result: (count, sum of `value`), and the file it came from.
struct WindowResult {
    n: u64,
    total: u64,
    file: String,
}

/// Every window result of the visible part files, by (key, window_start); panics on a window that
/// appears twice, naming both files.
fn read_windows(dir: &Path) -> BTreeMap<(u64, i64), WindowResult> {
    let mut windows: BTreeMap<(u64, i64), WindowResult> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (name, _) in visible_parts(dir) {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        for (line_no, line) in text.lines().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}:{}: not JSON ({e}): {line}", line_no + 1));
            let int = |field: &str| -> i64 {
                match &value[field] {
                    serde_json::Value::Number(n) => n.as_i64(),
                    _ => None,
                }
                .unwrap_or_else(|| panic!("{name}:{}: no integer `{field}`: {line}", line_no + 1))
            };
            let (key, start, end) = (int("key") as u64, int("window_start"), int("window_end"));
            assert_eq!(end - start, WINDOW_MS, "{name}:{}: not a 1 s window: {line}", line_no + 1);
            let result = WindowResult { n: int("n") as u64, total: int("total") as u64, file: name.clone() };
            if let Some(first) = windows.get(&(key, start)) {
                duplicates.push(format!(
                    "key {key} window {start}: in {} (n={}) and again in {name}:{} ({line})",
                    first.file,
                    first.n,
                    line_no + 1
                ));
            } else {
                windows.insert((key, start), result);
            }
        }
    }
    assert!(
        duplicates.is_empty(),
        "{} window(s) written twice (duplicated output), the first:\n{}\nfiles: {:?}",
        duplicates.len(),
        duplicates[..duplicates.len().min(40)].join("\n"),
        all_files(dir)
    );
    windows
}

/// Every file of `dir`, hidden ones too, with its size.
fn all_files(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), size)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What the generator puts in window `window` (by index, from 0) of `key` when it produces
/// `count` records (`None`: unbounded): (records, sum of `value`).
fn expected_window(key: u64, window: u64, count: Option<u64>) -> (u64, u64) {
    let first = window * WINDOW_RECORDS;
    let end = count.map_or(first + WINDOW_RECORDS, |c| c.min(first + WINDOW_RECORDS));
    // The first record of the window with this key, then every KEYS-th.
    let start = first + (key + KEYS - first % KEYS) % KEYS;
    (start..end).step_by(KEYS as usize).fold((0, 0), |(n, total), i| (n + 1, total + (i * 7) % VALUES))
}

/// Checks every (key, window) of `windows` in `0..windows_per_key[key]` against the generator, and
/// that there is no other; the assertion lists the missing, extra and wrong windows.
fn check_windows(
    dir: &Path,
    windows: &BTreeMap<(u64, i64), WindowResult>,
    windows_per_key: &BTreeMap<u64, u64>,
    count: Option<u64>,
    context: &str,
) {
    let mut problems = Vec::new();
    for (&key, &expected_windows) in windows_per_key {
        for w in 0..expected_windows {
            let start = w as i64 * WINDOW_MS;
            let (n, total) = expected_window(key, w, count);
            match windows.get(&(key, start)) {
                None => problems.push(format!("key {key} window {start}: missing (lost output)")),
                Some(r) if (r.n, r.total) != (n, total) => problems.push(format!(
                    "key {key} window {start}: n={} total={} in {}, expected n={n} total={total}",
                    r.n, r.total, r.file
                )),
                Some(_) => {}
            }
        }
    }
    for (&(key, start), r) in windows {
        let in_range = windows_per_key
            .get(&key)
            .is_some_and(|&w| start >= 0 && start % WINDOW_MS == 0 && ((start / WINDOW_MS) as u64) < w);
        if !in_range {
            problems.push(format!("key {key} window {start}: unexpected (n={}, in {})", r.n, r.file));
        }
    }
    // Keep the message readable: the first problems are the telling ones.
    let shown: Vec<&str> = problems.iter().take(40).map(String::as_str).collect();
    assert!(
        problems.is_empty(),
        "{} wrong window(s) of {} read, {context}\n{}\nfiles: {:?}",
        problems.len(),
        windows.len(),
        shown.join("\n"),
        all_files(dir)
    );
}

/// The windows per key of `windows`: one more than the largest window index seen.
fn windows_per_key(windows: &BTreeMap<(u64, i64), WindowResult>) -> BTreeMap<u64, u64> {
    let mut per_key: BTreeMap<u64, u64> = (0..KEYS).map(|k| (k, 0)).collect();
    for &(key, start) in windows.keys() {
        let w = per_key.entry(key).or_default();
        *w = (*w).max((start / WINDOW_MS) as u64 + 1);
    }
    per_key
}

/// Checks the output of a drained unbounded job: per key, windows `0..w` without a gap, each
/// exact except the last two, which the stop may have cut short (the sources' blocks interleave,
/// so the two source subtasks stop a little apart): those hold at most the full window.
fn check_drained(dir: &Path, windows: &BTreeMap<(u64, i64), WindowResult>, context: &str) {
    let per_key = windows_per_key(windows);
    assert!(per_key.values().all(|&w| w > 0), "every key has windows: {per_key:?}");
    let mut exact = BTreeMap::new();
    let mut problems = Vec::new();
    for (&key, &w) in &per_key {
        for i in w.saturating_sub(2)..w {
            let start = i as i64 * WINDOW_MS;
            let (n, total) = expected_window(key, i, None);
            if let Some(r) = windows.get(&(key, start)) {
                if r.n > n || r.total > total || r.n == 0 {
                    problems.push(format!(
                        "key {key} window {start}: n={} total={} in {}, more than the full n={n} total={total}",
                        r.n, r.total, r.file
                    ));
                }
            }
        }
        exact.insert(key, w.saturating_sub(2));
    }
    assert!(problems.is_empty(), "{context}\n{}", problems.join("\n"));
    let cut: BTreeMap<(u64, i64), WindowResult> = windows
        .iter()
        .filter(|((key, start), _)| ((*start / WINDOW_MS) as u64) < exact[key])
        .map(|(k, r)| (*k, WindowResult { n: r.n, total: r.total, file: r.file.clone() }))
        .collect();
    // The windows before the last two: present, once, exact.
    check_windows(dir, &cut, &exact, None, context);
    // And the last two present too (a gap there is lost output).
    for (&key, &w) in &per_key {
        for i in w.saturating_sub(2)..w {
            assert!(
                windows.contains_key(&(key, i as i64 * WINDOW_MS)),
                "key {key} window {i} missing: {context}"
            );
        }
    }
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the cluster, submits the job, waits for its first committed checkpoint and kills
/// `kills` times; the cluster, the job's id and the output directory.
fn run_with_kills(dir: &Path, count: Option<u64>, kills: usize) -> (Cluster, String, std::path::PathBuf) {
    run_with_kills_on(Cluster::start(), dir, count, kills)
}

fn run_with_kills_on(
    mut cluster: Cluster,
    dir: &Path,
    count: Option<u64>,
    kills: usize,
) -> (Cluster, String, std::path::PathBuf) {
    let out_dir = dir.join("out");
    let job_path = dir.join("job.toml");
    std::fs::write(&job_path, job_text(&out_dir, count)).unwrap();
    let job = cluster.submit(&job_path);
    wait_for(
        "the job to run and commit its first checkpoint",
        || (cluster.status(&job).running() && last_committed_checkpoint(&out_dir).is_some()).then_some(()),
        || cluster.status(&job).text,
    );
    let mut victim: Option<String> = None;
    for kill in 0..kills {
        let moment = KILL_MOMENTS[kill % KILL_MOMENTS.len()];
        victim = Some(cluster.kill_one(&job, &out_dir, moment, victim.as_deref()));
    }
    (cluster, job, out_dir)
}

#[test]
fn an_unbounded_job_commits_every_window_once_through_task_manager_kills() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, job, out_dir) = run_with_kills(dir.path(), None, KILLS_UNBOUNDED);

    cluster.stop(&job);
    let status = cluster.wait_for_end(&job);
    assert_eq!(status.state, "finished", "a drained job finishes:\n{}", status.text);
    assert!(status.attempt as usize >= KILLS_UNBOUNDED, "every kill restarted the job:\n{}", status.text);
    wait_for_final_parts(&out_dir);
    let windows = read_windows(&out_dir);
    eprintln!(
        "{} windows in {} part files; windows per key {:?}",
        windows.len(),
        visible_parts(&out_dir).len(),
        windows_per_key(&windows)
    );
    check_drained(&out_dir, &windows, &format!("after stopping {job}:\n{}", status.text));
}

/// Waits until the TaskManagers have published both sink subtasks' final parts (once they hear
/// that the job finished).
fn wait_for_final_parts(out_dir: &Path) {
    wait_for(
        "the final parts to be published",
        || {
            let parts = visible_parts(out_dir);
            (0..2).all(|i| parts.iter().any(|p| p.0 == format!("part-{i}.jsonl"))).then_some(())
        },
        || format!("{:?}", all_files(out_dir)),
    );
}

#[test]
fn a_job_stopped_with_a_savepoint_resumes_from_it_as_a_new_job_with_every_window_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // The JobManager keeps its checkpoints as plain files, and savepoints by default under its
    // data directory.
    let data_dir = dir.path().join("jobmanager");
    let data_arg = data_dir.to_str().unwrap();
    let cluster = Cluster::start_with(&["--data-dir", data_arg, "--checkpoint-store", "dir"]);
    let (cluster, job, out_dir) = run_with_kills_on(cluster, dir.path(), None, 1);
    let stored = data_dir.join("checkpoints").join(&job);
    let holds_checkpoints = std::fs::read_dir(&stored)
        .is_ok_and(|mut d| d.any(|e| e.unwrap().file_name().to_string_lossy().starts_with("chk-")));
    assert!(holds_checkpoints, "the directory store holds the job's checkpoints in {}", stored.display());
    let savepoints = dir.path().join("savepoints");

    // A savepoint leaves the job running.
    let first = cluster.savepoint(&job, Some(&savepoints), false);
    assert!(first.starts_with(savepoints.to_str().unwrap()), "{first}");
    assert!(cluster.status(&job).running(), "the job runs on after a savepoint");
    let committed = last_committed_checkpoint(&out_dir);
    wait_for(
        "a checkpoint after the savepoint",
        || (last_committed_checkpoint(&out_dir) > committed).then_some(()),
        || cluster.status(&job).text,
    );

    // Stopping with a savepoint: the output is exactly the savepoint's.
    let second = cluster.savepoint(&job, None, true);
    let default_dir = data_dir.join("savepoints");
    assert!(second.starts_with(default_dir.to_str().unwrap()), "the default directory: {second}");
    let status = cluster.wait_for_end(&job);
    assert_eq!(status.state, "canceled", "{}", status.text);
    assert!(status.text.contains(&second), "the status names the savepoint:\n{}", status.text);
    assert!(!stored.exists(), "an ended job's checkpoints are deleted");
    let parts = visible_parts(&out_dir);
    assert!(parts.iter().all(|p| p.1.is_some()), "a stopped job published no final part: {parts:?}");
    let windows = read_windows(&out_dir);
    let at_savepoint = windows_per_key(&windows);
    check_windows(&out_dir, &windows, &at_savepoint, None, &format!("after stopping {job} at {second}"));

    // A new job resumes from the savepoint, writes into the same directory, and is drained.
    let job_path = dir.path().join("job.toml");
    let resumed = cluster.submit_from_savepoint(&job_path, &second);
    assert_ne!(resumed, job);
    let committed = last_committed_checkpoint(&out_dir);
    wait_for(
        "the resumed job to commit a checkpoint",
        || {
            (cluster.status(&resumed).running() && last_committed_checkpoint(&out_dir) > committed)
                .then_some(())
        },
        || cluster.status(&resumed).text,
    );
    let status = cluster.status(&resumed);
    // `savepoint-job-1-6.rvsp`: the savepoint is checkpoint 6.
    let savepoint_checkpoint: u64 = (second.rsplit_once('-').and_then(|(_, n)| n.strip_suffix(".rvsp")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{second}: no checkpoint in the savepoint's name"));
    assert!(
        parts.iter().filter_map(|p| p.1).all(|c| c <= savepoint_checkpoint),
        "nothing after the savepoint: {parts:?}"
    );
    assert!(
        status.text.contains(&format!("restored from {savepoint_checkpoint}")),
        "the resumed job restored checkpoint {savepoint_checkpoint}:\n{}",
        status.text
    );
    cluster.stop(&resumed);
    let status = cluster.wait_for_end(&resumed);
    assert_eq!(status.state, "finished", "{}", status.text);
    wait_for_final_parts(&out_dir);
    let windows = read_windows(&out_dir);
    let after = windows_per_key(&windows);
    assert!(
        after.iter().all(|(k, w)| *w > at_savepoint[k]),
        "the resumed job went on: {at_savepoint:?} → {after:?}"
    );
    check_drained(&out_dir, &windows, &format!("after resuming from {second} and stopping {resumed}"));
}

#[test]
fn a_bounded_job_finishes_with_every_window_once_through_task_manager_kills() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, job, out_dir) = run_with_kills(dir.path(), Some(BOUNDED_COUNT), KILLS_BOUNDED);

    let status = cluster.wait_for_end(&job);
    assert_eq!(status.state, "finished", "{}", status.text);
    assert!(status.attempt as usize >= KILLS_BOUNDED, "every kill restarted the job:\n{}", status.text);
    wait_for_final_parts(&out_dir);
    let windows = read_windows(&out_dir);
    let windows_per_key: BTreeMap<u64, u64> =
        (0..KEYS).map(|k| (k, BOUNDED_COUNT.div_ceil(WINDOW_RECORDS))).collect();
    let files = all_files(&out_dir);
    let hidden: Vec<&(String, u64)> = files.iter().filter(|f| f.0.starts_with('.')).collect();
    eprintln!("{} windows in {} files; hidden files left: {hidden:?}", windows.len(), files.len());
    check_windows(
        &out_dir,
        &windows,
        &windows_per_key,
        Some(BOUNDED_COUNT),
        &format!("after {job} finished:\n{}", status.text),
    );
}
