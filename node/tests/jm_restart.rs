//! A JobManager killed and restarted, with real processes on loopback: a JobManager with a data
//! directory and two TaskManagers run a checkpointed, bounded job (a paced generator, keyed 1 s
//! tumbling windows with `count()` and `sum(value)`, a transactional JSON Lines file sink). Once
//! checkpoints have committed, the JobManager is SIGKILLed and a new JobManager process is started
//! on the same data directory and the same listen address. The TaskManagers reconnect by
//! themselves (they cancel what they ran when the JobManager's connection closes, and reconnect
//! with a back-off), the new JobManager takes the job over from its latest checkpoint, and the job
//! runs to its end. Its visible output must then be every window of the whole input, once, each
//! with exactly the generator's count and sum.
//!
//! The assertions do not depend on timing: the waits have generous limits only so that a broken
//! build fails instead of hanging, and the job is paced (about 10 s of input) so that the kill
//! comes while it runs; that it did is checked, not assumed.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{start_job_manager_logged, start_task_manager_logged, toml_path, JobManagerClient, Processes};
use rivulet_core::ids::JobId;
use rivulet_core::jobmanager::execution_state::ExecutionState;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo};

/// The generator: `key = i % KEYS`, `value = (i * 7) % VALUES`, `ts_ms = i / RECORDS_PER_MS`.
const KEYS: u64 = 10;
const VALUES: u64 = 1_000;
const RECORDS_PER_MS: u64 = 10;
const COUNT: u64 = 200_000;
/// Records per second over both source subtasks: the input lasts about 10 s.
const RATE: u64 = 20_000;
const WINDOW_MS: i64 = 1_000;
const WINDOW_RECORDS: u64 = RECORDS_PER_MS * WINDOW_MS as u64;

/// Slots per TaskManager: the job's four subtasks (two chains × parallelism 2) fit on either one.
const SLOTS: u16 = 4;

/// Committed checkpoints to see before the kill.
const CHECKPOINTS_BEFORE_KILL: usize = 2;

const POLL_SLEEP: Duration = Duration::from_millis(50);
/// How long any one awaited condition may take before the test gives up.
const WAIT_MAX: Duration = Duration::from_secs(60);

fn job_text(out_dir: &Path) -> String {
    format!(
        r#"
[job]
name = "jm-restart"
parallelism = 2

[job.checkpoints]
interval = "300ms"

[job.restart]
strategy = "fixed-delay"
attempts = 10
delay = "200ms"

[[source]]
name = "readings"
type = "generator"
count = {COUNT}
rate = {RATE}
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

/// Polls `probe` until it gives a value; panics with `what` and `describe()` after [`WAIT_MAX`].
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

/// A client of the JobManager at one address that connects again when its connection fails (as
/// it does when the JobManager is replaced). Shared by a wait's probe and its failure message,
/// hence the cell.
struct Client {
    address: String,
    client: RefCell<Option<JobManagerClient>>,
}

impl Client {
    fn new(address: &str) -> Client {
        Client { address: address.to_owned(), client: RefCell::new(None) }
    }

    /// The answer to `request`, or `None` while the JobManager does not answer.
    fn request(&self, request: &ClientRequest) -> Option<ClientResponse> {
        let mut client = self.client.borrow_mut();
        if client.is_none() {
            *client = JobManagerClient::connect(&self.address);
        }
        let answer = client.as_mut()?.request(request);
        if answer.is_none() {
            *client = None;
        }
        answer
    }

    fn status(&self, job: JobId) -> Option<JobInfo> {
        match self.request(&ClientRequest::JobStatus { job })? {
            ClientResponse::Job { job } => Some(job),
            _ => None,
        }
    }

    fn registered_task_managers(&self) -> Option<usize> {
        match self.request(&ClientRequest::TaskManagers)? {
            ClientResponse::TaskManagers { task_managers } => Some(task_managers.len()),
            _ => None,
        }
    }
}

fn running(info: &JobInfo) -> bool {
    info.state == "running"
        && !info.subtasks.is_empty()
        && info.subtasks.iter().all(|s| s.state == ExecutionState::Running)
}

fn describe(info: Option<JobInfo>) -> String {
    match info {
        Some(info) => format!(
            "{} {}: attempt {}, failures {}, last failure {:?}, subtasks {:?}",
            info.job,
            info.state,
            info.attempt,
            info.failures,
            info.last_failure,
            info.subtasks.iter().map(|s| (&s.name, s.index, s.state, s.task_manager)).collect::<Vec<_>>()
        ),
        None => "no answer from the JobManager".to_owned(),
    }
}

/// The visible files of `dir` (the file sink's committed and published part files), sorted.
fn visible_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Every file of `dir`, hidden ones too, for failure messages.
fn all_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The checkpoints of the committed part files `part-<i>-<n>.jsonl` in `dir`, distinct, sorted.
fn committed_checkpoints(dir: &Path) -> Vec<u64> {
    let mut checkpoints: Vec<u64> = visible_files(dir)
        .iter()
        .filter_map(|name| {
            let stem = name.strip_prefix("part-")?.strip_suffix(".jsonl")?;
            stem.split_once('-')?.1.parse().ok()
        })
        .collect();
    checkpoints.sort_unstable();
    checkpoints.dedup();
    checkpoints
}

/// What the generator puts in window `window` of `key`: (records, sum of `value`).
fn expected_window(key: u64, window: u64) -> (u64, u64) {
    let end = COUNT.min((window + 1) * WINDOW_RECORDS);
    (window * WINDOW_RECORDS + key..end)
        .step_by(KEYS as usize)
        .fold((0, 0), |(n, total), i| (n + 1, total + (i * 7) % VALUES))
}

/// Every window result of the visible files, by (key, window start): (n, total, file). Panics on
/// a window written twice.
fn read_windows(dir: &Path) -> BTreeMap<(u64, i64), (u64, u64, String)> {
    let mut windows = BTreeMap::new();
    for name in visible_files(dir) {
        assert!(
            name.starts_with("part-") && name.ends_with(".jsonl"),
            "{name}: a visible file that is no part file"
        );
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        for (line_no, line) in text.lines().enumerate() {
            let at = format!("{name}:{}: {line}", line_no + 1);
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: not JSON ({e})"));
            let int =
                |field: &str| value[field].as_i64().unwrap_or_else(|| panic!("{at}: no integer `{field}`"));
            let (key, start) = (int("key") as u64, int("window_start"));
            assert_eq!(int("window_end") - start, WINDOW_MS, "{at}: not a 1 s window");
            let result = (int("n") as u64, int("total") as u64, name.clone());
            if let Some(first) = windows.insert((key, start), result) {
                panic!("key {key} window {start} written twice (duplicated output): in {} and {at}", first.2);
            }
        }
    }
    windows
}

#[test]
fn a_job_manager_restarted_on_its_data_directory_resumes_the_job_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, out_dir) = (dir.path().join("jobmanager-data"), dir.path().join("out"));
    let job_file = job_text(&out_dir);
    let jm_log = dir.path().join("jobmanager.log");
    let logs = || {
        let mut text = String::new();
        for log in ["jobmanager", "taskmanager-1", "taskmanager-2"] {
            let path = dir.path().join(format!("{log}.log"));
            let body = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = body.lines().rev().take(25).collect();
            text += &format!(
                "--- {log}.log (last lines)\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        text
    };

    let mut processes = Processes(Vec::new());
    let data = data_dir.to_str().expect("test paths are UTF-8");
    let first = start_job_manager_logged(
        &mut processes,
        &["--listen", "127.0.0.1:0", "--rest-listen", "none", "--data-dir", data],
        &jm_log,
    );
    let address = first.listen.clone();
    for id in ["1", "2"] {
        let log = dir.path().join(format!("taskmanager-{id}.log"));
        start_task_manager_logged(&mut processes, &address, id, SLOTS, &log);
    }
    let client = Client::new(&address);
    wait_for(
        "both TaskManagers to register",
        || (client.registered_task_managers() == Some(2)).then_some(()),
        logs,
    );
    let job =
        match client.request(&ClientRequest::Submit { job_file, parallelism: None, from_savepoint: None }) {
            Some(ClientResponse::Submitted { job }) => job,
            other => panic!("the JobManager did not take the job: {other:?}"),
        };
    wait_for(
        "the job to run and commit checkpoints",
        || {
            let info = client.status(job)?;
            (running(&info) && committed_checkpoints(&out_dir).len() >= CHECKPOINTS_BEFORE_KILL).then_some(())
        },
        || format!("{}\nfiles {:?}\n{}", describe(client.status(job)), all_files(&out_dir), logs()),
    );
    let before = client.status(job).expect("the JobManager answers");
    assert!(
        running(&before),
        "the job runs when its JobManager is killed: {}",
        describe(Some(before.clone()))
    );

    // SIGKILL: the JobManager gets no chance to close anything.
    let killed = &mut processes.0[first.index];
    killed.kill().expect("SIGKILL the JobManager");
    killed.wait().expect("reap the JobManager");
    let killed_at = Instant::now();
    let committed_at_kill =
        *committed_checkpoints(&out_dir).last().expect("checkpoints committed before the kill");
    eprintln!(
        "killed the JobManager at attempt {}, checkpoints {:?} committed",
        before.attempt,
        committed_checkpoints(&out_dir)
    );

    let second = start_job_manager_logged(
        &mut processes,
        &["--listen", &address, "--rest-listen", "none", "--data-dir", data],
        &jm_log,
    );
    assert_eq!(second.listen, address, "the new JobManager listens where the old one did");
    let listening_after = killed_at.elapsed();
    wait_for(
        "both TaskManagers to register with the new JobManager",
        || (client.registered_task_managers() == Some(2)).then_some(()),
        logs,
    );
    let resumed = wait_for(
        "the new JobManager to run the job's next attempt",
        || {
            let info = client.status(job)?;
            (info.attempt > before.attempt && (running(&info) || info.state == "finished")).then_some(info)
        },
        || format!("{}\n{}", describe(client.status(job)), logs()),
    );
    // For the reader of the test's output only: no assertion depends on these times.
    eprintln!(
        "after the kill: the new JobManager listened at {listening_after:?}, the job ran again at {:?}\nresumed: {}",
        killed_at.elapsed(),
        describe(Some(resumed.clone()))
    );
    let ended = wait_for(
        "the job to end",
        || {
            client
                .status(job)
                .filter(|info| matches!(info.state.as_str(), "finished" | "failed" | "canceled"))
        },
        || format!("{}\n{}", describe(client.status(job)), logs()),
    );
    assert_eq!(ended.state, "finished", "{}\n{}", describe(Some(ended.clone())), logs());

    // The JobManager's loss is the job's one failure, and the job resumed from a checkpoint at
    // least as new as every one whose output was committed before the kill (a checkpoint is
    // recorded durably before its sinks are told to commit).
    let cause = ended.last_failure.clone().unwrap_or_default();
    let resumed_from: u64 = cause
        .strip_prefix("the JobManager restarted; the job resumes from checkpoint ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!("the job's failure is the JobManager's restart: {}", describe(Some(ended.clone())))
        });
    assert_eq!(ended.failures, 1, "{}", describe(Some(ended.clone())));
    assert!(
        resumed_from >= committed_at_kill,
        "resumed from checkpoint {resumed_from}, but checkpoint {committed_at_kill} had committed output"
    );

    // The TaskManagers publish the final parts when they hear that the job ended.
    wait_for(
        "the final parts to be published",
        || {
            let files = visible_files(&out_dir);
            (0..2).all(|i| files.contains(&format!("part-{i}.jsonl"))).then_some(())
        },
        || format!("{:?}\n{}", all_files(&out_dir), logs()),
    );
    let windows = read_windows(&out_dir);
    let window_count = COUNT.div_ceil(WINDOW_RECORDS);
    let mut problems = Vec::new();
    for key in 0..KEYS {
        for window in 0..window_count {
            let start = window as i64 * WINDOW_MS;
            let expected = expected_window(key, window);
            match windows.get(&(key, start)) {
                None => problems.push(format!("key {key} window {start}: missing (lost output)")),
                Some((n, total, file)) if (*n, *total) != expected => problems.push(format!(
                    "key {key} window {start}: n={n} total={total} in {file}, expected {expected:?}"
                )),
                Some(_) => {}
            }
        }
    }
    for (&(key, start), (n, _, file)) in &windows {
        if key >= KEYS || start < 0 || start % WINDOW_MS != 0 || (start / WINDOW_MS) as u64 >= window_count {
            problems.push(format!("key {key} window {start}: unexpected (n={n}, in {file})"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} wrong window(s) of {} read:\n{}\nfiles: {:?}",
        problems.len(),
        windows.len(),
        problems.iter().take(40).cloned().collect::<Vec<_>>().join("\n"),
        all_files(&out_dir)
    );
    eprintln!("{} windows, each once and exact, in {:?}", windows.len(), visible_files(&out_dir));

    // The end is recorded too: a third JobManager on the directory shows the job as it ended and
    // hands the next job a new id.
    let killed = &mut processes.0[second.index];
    killed.kill().expect("SIGKILL the second JobManager");
    killed.wait().expect("reap the second JobManager");
    let third = start_job_manager_logged(
        &mut processes,
        &["--listen", &address, "--rest-listen", "none", "--data-dir", data],
        &jm_log,
    );
    assert_eq!(third.listen, address);
    let recorded = wait_for("the third JobManager to answer for the job", || client.status(job), logs);
    assert_eq!(
        (recorded.state.as_str(), recorded.attempt, recorded.failures, &recorded.last_failure),
        ("finished", ended.attempt, ended.failures, &ended.last_failure),
        "{}",
        describe(Some(recorded.clone()))
    );
    let next_file = job_text(&dir.path().join("out-next"));
    match client.request(&ClientRequest::Submit {
        job_file: next_file,
        parallelism: None,
        from_savepoint: None,
    }) {
        Some(ClientResponse::Submitted { job: next }) => assert!(next.0 > job.0, "{next} reuses an id"),
        other => panic!("the third JobManager did not take a job: {other:?}"),
    }
}
