//! `rivulet` node processes for the benchmarks that need a real cluster (W2-net, F1): finding the
//! binary, starting a JobManager and TaskManagers on loopback, asking the JobManager over the
//! framed client protocol, and reading a process's memory from `/proc`.
//!
//! Every process started here is registered in one list, and [`Nodes`] (a guard) kills and reaps
//! them when dropped. The release profile aborts on panic, which runs no destructors, so a panic
//! hook kills the registered processes too: a failed benchmark never leaves nodes behind holding
//! ports and CPU.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rivulet_core::ids::{ClusterId, TaskManagerId};
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, TaskManagerInfo};
use rivulet_node::cluster::client::Client;
use rivulet_node::net::{SmolRuntime, HANDSHAKE_TIMEOUT_DEFAULT};

/// Every node process started and not yet reaped.
static STARTED: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// How long a node may take to come up before the benchmark gives up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster id the benchmark's nodes and client use.
const CLUSTER: ClusterId = ClusterId(0);

/// Kills every registered process, on drop and (see [`install_panic_hook`]) on panic.
pub struct Nodes {
    /// Where the nodes' standard error goes, one file per node.
    log_dir: PathBuf,
}

impl Nodes {
    /// A guard for the nodes started through it; their logs go to `log_dir` (created, emptied).
    pub fn new(log_dir: &Path) -> Result<Nodes> {
        if log_dir.exists() {
            std::fs::remove_dir_all(log_dir).with_context(|| format!("emptying {}", log_dir.display()))?;
        }
        std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        Ok(Nodes { log_dir: log_dir.to_owned() })
    }

    /// Starts `rivulet jobmanager` on a free loopback port; returns its pid, its address and the
    /// time from the spawn to its `listening on` line (the JobManager's start-up time).
    pub fn start_job_manager(&self, binary: &Path) -> Result<(u32, String, Duration)> {
        let started = Instant::now();
        let mut command = Command::new(binary);
        command.args(["jobmanager", "--listen", "127.0.0.1:0"]);
        // Its REST API on a free port too, so that a JobManager already on the default port (a
        // developer's, a test's) does not stop the benchmark's. An environment variable rather than
        // the flag, so that builds without a REST API (`--rivulet`) still start.
        command.env("RIVULET_REST_LISTEN", "127.0.0.1:0");
        let (pid, stdout) = self.spawn(command, "jobmanager", true)?;
        let stdout = stdout.context("the JobManager's standard output")?;
        // A thread reads the output, so that waiting for the line has a timeout, and so that
        // whatever the JobManager prints later never fills the pipe and blocks it.
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    if let Some(found) = found.take() {
                        let _ = found.send(address.trim().to_owned());
                    }
                }
            }
        });
        match address.recv_timeout(START_TIMEOUT) {
            Ok(address) => Ok((pid, address, started.elapsed())),
            Err(_) => bail!("the JobManager did not start listening; see {}", self.log("jobmanager")),
        }
    }

    /// Starts `rivulet taskmanager` with the given id, slots and labels, and waits until the
    /// JobManager lists it; returns its pid and the time from the spawn to its registration.
    pub fn start_task_manager(
        &self,
        binary: &Path,
        job_manager: &str,
        id: u64,
        slots: u16,
        labels: &[&str],
    ) -> Result<(u32, Duration)> {
        let started = Instant::now();
        let mut command = Command::new(binary);
        command.args(["taskmanager", "--jobmanager", job_manager, "--data-listen", "127.0.0.1:0"]);
        command.args(["--slots", &slots.to_string(), "--id", &id.to_string()]);
        for label in labels {
            command.args(["--label", label]);
        }
        let name = format!("taskmanager-{id}");
        let (pid, _) = self.spawn(command, &name, false)?;
        let mut client = JobManagerClient::connect(job_manager)?;
        loop {
            if client.task_managers()?.iter().any(|tm| tm.id == TaskManagerId(id)) {
                return Ok((pid, started.elapsed()));
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("TaskManager {id} did not register within {START_TIMEOUT:?}; see {}", self.log(&name));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILLs the node process `pid` (started through this guard) and reaps it; returns the
    /// moment just before the signal was sent.
    pub fn kill(&self, pid: u32) -> Result<Instant> {
        let mut started = STARTED.lock().expect("no panic while the list is held");
        let index =
            started.iter().position(|c| c.id() == pid).with_context(|| format!("no node has pid {pid}"))?;
        let mut child = started.swap_remove(index);
        drop(started);
        let at = Instant::now();
        // `Child::kill` is SIGKILL on Unix: the process gets no chance to close anything itself.
        let killed = child.kill();
        // Reaped whether or not the signal went out: a node that already ended is a zombie.
        let reaped = child.wait();
        killed.with_context(|| format!("SIGKILL of {pid}"))?;
        reaped.with_context(|| format!("reaping {pid}"))?;
        Ok(at)
    }

    /// The log file of the node `name`.
    pub fn log(&self, name: &str) -> String {
        self.log_dir.join(format!("{name}.log")).display().to_string()
    }

    /// The directory of the nodes' logs.
    pub fn logs(&self) -> String {
        self.log_dir.display().to_string()
    }

    /// Starts a node; its standard error, and its standard output unless `capture_stdout`, go to
    /// its log file.
    fn spawn(
        &self,
        mut command: Command,
        name: &str,
        capture_stdout: bool,
    ) -> Result<(u32, Option<ChildStdout>)> {
        let log = std::fs::File::create(self.log(name)).context("creating a node's log file")?;
        let stdout = if capture_stdout { Stdio::piped() } else { Stdio::from(log.try_clone()?) };
        command.stdin(Stdio::null()).stdout(stdout).stderr(log);
        let mut child = command.spawn().with_context(|| format!("starting {name}"))?;
        let pid = child.id();
        let stdout = child.stdout.take();
        STARTED.lock().expect("no panic while the list is held").push(child);
        Ok((pid, stdout))
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        kill_started();
    }
}

/// Kills and reaps every node started so far.
fn kill_started() {
    // `try_lock`: a panic while the list is held must not deadlock its own hook.
    if let Ok(mut started) = STARTED.try_lock() {
        for mut child in started.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes a panic kill the started nodes before the process aborts.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_started();
        default(info);
    }));
}

/// A client connection to a JobManager, blocking.
pub struct JobManagerClient {
    client: Client<SmolRuntime>,
}

impl JobManagerClient {
    pub fn connect(address: &str) -> Result<JobManagerClient> {
        let rt = SmolRuntime::new();
        let client = smol::block_on(Client::connect(&rt, address, CLUSTER, HANDSHAKE_TIMEOUT_DEFAULT))
            .with_context(|| format!("connecting to the JobManager at {address}"))?;
        Ok(JobManagerClient { client })
    }

    pub fn request(&mut self, request: &ClientRequest) -> Result<ClientResponse> {
        Ok(smol::block_on(self.client.request(request))?)
    }

    pub fn task_managers(&mut self) -> Result<Vec<TaskManagerInfo>> {
        match self.request(&ClientRequest::TaskManagers)? {
            ClientResponse::TaskManagers { task_managers } => Ok(task_managers),
            other => bail!("unexpected answer to a TaskManagers request: {other:?}"),
        }
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (the benchmark needs Linux's /proc)"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The `rivulet` binary: `given` (`--rivulet PATH`, to measure another build), else the one of the
/// same build profile as this program, built first when this program runs under cargo
/// (`cargo run -p rivulet-benches` does not build the node binary).
pub fn rivulet_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(binary) = given {
        return Ok(binary.to_owned());
    }
    let exe = std::env::current_exe().context("locating this program")?;
    let dir = exe.parent().context("this program's directory")?;
    let binary = dir.join("rivulet");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("release");
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "-p", "rivulet-node", "--bin", "rivulet"]);
        match profile {
            "debug" => {}
            "release" => {
                command.arg("--release");
            }
            other => {
                command.args(["--profile", other]);
            }
        }
        let status = command.status().context("building the rivulet binary")?;
        if !status.success() {
            bail!("building the rivulet binary failed");
        }
    }
    if !binary.exists() {
        bail!("{} does not exist: build it with `cargo build --release`", binary.display());
    }
    Ok(binary)
}

/// Linux's `USER_HZ`, the unit of the CPU times in `/proc`: 100 on every architecture Rivulet runs
/// on (the kernel fixes it for user space, whatever its internal tick rate).
const USER_HZ: f64 = 100.0;

/// CPU time (user and system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: the fields follow the last `)`.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / USER_HZ),
        _ => bail!("unexpected /proc/{pid}/stat: {stat}"),
    }
}

/// CPU time the whole machine has been busy (all cores, everything but idle and I/O wait), in
/// seconds: compared with a run's own processes, it tells whether something else ran meanwhile.
pub fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().filter(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|t| t.parse().unwrap_or(0)).collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((total - idle) as f64 / USER_HZ)
}
