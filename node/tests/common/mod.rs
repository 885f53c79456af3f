//! Helpers shared by the node's integration tests: running a job file's text on the embedded
//! mini-cluster, and writing paths into job files.

// Each test binary compiles its own copy of this module and uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rivulet_core::graph::JobGraph;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_node::local_cluster::{run_on_local_cluster, RunOptions, RunResult};

/// Worker threads of every test run: more than one, so that subtasks really run concurrently.
pub const TEST_WORKERS: usize = 2;

/// The workspace root (where `examples/` is).
pub fn workspace_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).canonicalize().expect("the workspace root exists")
}

/// `path` as a TOML basic string, quoted and escaped.
pub fn toml_path(path: &Path) -> String {
    let text = path.to_str().expect("test paths are UTF-8");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A job file's text with its graph (which it dereferences to).
pub struct TestJob {
    pub text: String,
    pub graph: JobGraph,
}

impl std::ops::Deref for TestJob {
    type Target = JobGraph;

    fn deref(&self) -> &JobGraph {
        &self.graph
    }
}

/// Parses a job file's text; a test's job text must be valid, so a parse error panics with it.
pub fn parse(text: &str) -> TestJob {
    let graph =
        parse_job(text, &ParseOptions::default()).unwrap_or_else(|e| panic!("bad test job: {e}\n{text}"));
    TestJob { text: text.to_owned(), graph }
}

/// Runs a job to its end on the embedded mini-cluster, as `rivulet run` does; the error is the
/// text `rivulet run` prints after "failed: ".
pub fn run(job: &TestJob) -> Result<RunResult, String> {
    run_stoppable(job, Arc::new(AtomicBool::new(false)))
}

/// [`run`], stopped (draining) when `stop` is set.
pub fn run_stoppable(job: &TestJob, stop: Arc<AtomicBool>) -> Result<RunResult, String> {
    let options = RunOptions::new(TEST_WORKERS);
    run_on_local_cluster(&job.text, None, &job.graph, &options, stop, Duration::from_secs(1), |_| {})
        .map_err(|e| format!("{e:#}"))
}

/// The counters of the vertex called `name`.
pub fn metrics_of<'r>(
    graph: &JobGraph,
    result: &'r RunResult,
    name: &str,
) -> &'r rivulet_core::dataflow::operator::OperatorMetrics {
    let vertex = graph.find(name).unwrap_or_else(|| panic!("the job has no vertex `{name}`"));
    &result.metrics[vertex.id.index()]
}

/// The names of the entries of `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Kills every child it holds when dropped, so a failing test leaves no process behind.
pub struct Processes(pub Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The addresses a JobManager printed: its cluster listener, and its REST API if it serves one.
pub struct JobManagerAddresses {
    pub listen: String,
    pub rest: Option<String>,
    /// The child's index in the `Processes` it was started into.
    pub index: usize,
}

/// Starts `rivulet jobmanager` with `args`, listening on free ports unless `args` say otherwise
/// (`--rest-listen none` turns the REST API off), and reads the addresses it prints.
pub fn start_job_manager(processes: &mut Processes, args: &[&str]) -> JobManagerAddresses {
    let mut all: Vec<&str> = Vec::new();
    for (flag, default) in [("--listen", "127.0.0.1:0"), ("--rest-listen", "127.0.0.1:0")] {
        if !args.contains(&flag) {
            all.extend([flag, default]);
        }
    }
    all.extend(args);
    start_job_manager_with_env(processes, &all, &[])
}

/// Starts `rivulet jobmanager` with exactly `args` and the environment variables `env` (no other
/// `RIVULET_*` setting is inherited) and reads the addresses it prints: `listening on HOST:PORT`
/// first, then `rest on HOST:PORT` unless `args` or `env` set the REST listener to `none`.
pub fn start_job_manager_with_env(
    processes: &mut Processes,
    args: &[&str],
    env: &[(&str, &str)],
) -> JobManagerAddresses {
    let rest_disabled = args.windows(2).any(|w| w == ["--rest-listen", "none"])
        || env.iter().any(|&(key, value)| key == "RIVULET_REST_LISTEN" && value == "none");
    let mut command = job_manager_command(args);
    command.envs(env.iter().copied());
    command.stderr(std::process::Stdio::null());
    read_job_manager_addresses(processes, command, rest_disabled)
}

/// `rivulet jobmanager` with exactly `args`: no `RIVULET_*` setting of the test's environment is
/// inherited.
fn job_manager_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rivulet"));
    command.arg("jobmanager").args(args);
    for key in
        ["RIVULET_CONFIG", "RIVULET_LISTEN", "RIVULET_REST_LISTEN", "RIVULET_DATA_DIR", "RIVULET_CLUSTER"]
    {
        command.env_remove(key);
    }
    command
}

/// Starts `rivulet jobmanager` with exactly `args` (no `RIVULET_*` setting inherited), its
/// standard error (the log) appended to `log`, and reads the addresses it prints, as
/// [`start_job_manager_with_env`] does.
pub fn start_job_manager_logged(processes: &mut Processes, args: &[&str], log: &Path) -> JobManagerAddresses {
    let rest_disabled = args.windows(2).any(|w| w == ["--rest-listen", "none"]);
    let mut command = job_manager_command(args);
    command.stderr(append_to(log));
    read_job_manager_addresses(processes, command, rest_disabled)
}

/// `log` opened for appending (created if missing), for a child's standard error.
fn append_to(log: &Path) -> std::process::Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open the log {}: {e}", log.display()));
    std::process::Stdio::from(file)
}

/// Spawns a JobManager `command` whose standard error is set, and reads the addresses it prints.
fn read_job_manager_addresses(
    processes: &mut Processes,
    mut command: std::process::Command,
    rest_disabled: bool,
) -> JobManagerAddresses {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = command.stdout(Stdio::piped()).spawn().expect("the JobManager starts");
    let stdout = child.stdout.take().expect("piped");
    processes.0.push(child);
    let index = processes.0.len() - 1;
    let mut lines = BufReader::new(stdout).lines();
    let mut next_line = |prefix: &str| -> String {
        let line = lines.next().unwrap_or_else(|| panic!("the JobManager ended before printing `{prefix}`"));
        let line = line.expect("the JobManager writes UTF-8 lines");
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected `{prefix}ADDRESS`, got {line:?}"))
            .to_owned()
    };
    let listen = next_line("listening on ");
    let rest = (!rest_disabled).then(|| next_line("rest on "));
    JobManagerAddresses { listen, rest, index }
}

/// Starts `rivulet taskmanager` with `slots` slots and id `id` against the JobManager at
/// `job_manager`; returns the child's index in `processes`.
pub fn start_task_manager(processes: &mut Processes, job_manager: &str, id: &str, slots: u16) -> usize {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["taskmanager", "--jobmanager", job_manager, "--data-listen", "127.0.0.1:0"])
        .args(["--slots", &slots.to_string(), "--id", id, "--label", "site=test"])
        .env_remove("RIVULET_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the TaskManager starts");
    processes.0.push(child);
    processes.0.len() - 1
}

/// Starts `rivulet taskmanager` as [`start_task_manager`] does, its log appended to `log`.
pub fn start_task_manager_logged(
    processes: &mut Processes,
    job_manager: &str,
    id: &str,
    slots: u16,
    log: &Path,
) -> usize {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(["taskmanager", "--jobmanager", job_manager, "--data-listen", "127.0.0.1:0"])
        .args(["--slots", &slots.to_string(), "--id", id, "--label", "site=test"])
        .env_remove("RIVULET_CONFIG")
        .stdout(Stdio::null())
        .stderr(append_to(log))
        .spawn()
        .expect("the TaskManager starts");
    processes.0.push(child);
    processes.0.len() - 1
}

/// A blocking client of a JobManager's framed client protocol (what `rivulet-benches` uses):
/// job status as the JobManager has it, without the REST API.
pub struct JobManagerClient {
    client: rivulet_node::cluster::client::Client<rivulet_node::net::SmolRuntime>,
}

impl JobManagerClient {
    /// Connects to the JobManager at `address` (cluster 0); `None` while it does not answer.
    pub fn connect(address: &str) -> Option<JobManagerClient> {
        use rivulet_node::net::{SmolRuntime, HANDSHAKE_TIMEOUT_DEFAULT};
        let rt = SmolRuntime::new();
        let cluster = rivulet_core::ids::ClusterId(0);
        let client = smol::block_on(rivulet_node::cluster::client::Client::connect(
            &rt,
            address,
            cluster,
            HANDSHAKE_TIMEOUT_DEFAULT,
        ))
        .ok()?;
        Some(JobManagerClient { client })
    }

    /// One request and its answer; `None` if the connection failed.
    pub fn request(
        &mut self,
        request: &rivulet_core::protocol::client::ClientRequest,
    ) -> Option<rivulet_core::protocol::client::ClientResponse> {
        smol::block_on(self.client.request(request)).ok()
    }
}
