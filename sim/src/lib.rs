//! Deterministic simulation of a Rivulet cluster: the node's very drivers (`run_job_manager`,
//! `run_task_manager`, the CLI's client) on turmoil's simulated network and clock.
//!
//! [`simulate`] builds a cluster of one JobManager (`jobmanager:6123`) and two TaskManagers
//! (`tm1`, `tm2`, data port 6124), submits a bounded job from a client host, applies the
//! scenario's faults once the job runs, waits for the job to end and checks its counters against
//! [`run_local`] on the same job file. Everything the simulation does follows from the seed:
//! turmoil's RNG is seeded with it, its epoch is fixed, the drivers race futures with a biased
//! choice and read time only through the runtime seam. A failure names the seed and the command
//! that replays it.

pub mod runtime;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rivulet_core::connectors::BuiltinConnectors;
use rivulet_core::dataflow::local::run_local;
use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::ids::{ClusterId, TaskManagerId};
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo};
use rivulet_node::cluster::client::Client;
use rivulet_node::cluster::{run_job_manager, run_task_manager, JobManagerNodeConfig, TaskManagerNodeConfig};
use rivulet_node::net::{Runtime, HANDSHAKE_TIMEOUT_DEFAULT};

pub use runtime::{FrameTrace, SharedTrace, TurmoilRuntime};

/// The JobManager's host name and address.
pub const JOB_MANAGER: &str = "jobmanager";
pub const JOB_MANAGER_ADDRESS: &str = "jobmanager:6123";
/// The TaskManagers' host names; `tm<n>` runs TaskManager id `n`.
pub const TASK_MANAGERS: [&str; 2] = ["tm1", "tm2"];
/// The host the client runs on.
pub const CLIENT: &str = "client";
/// The environment variable that replaces a test's fixed seed.
pub const SEED_VARIABLE: &str = "RIVULET_SIM_SEED";

const CLUSTER: ClusterId = ClusterId(7);
const JOB_MANAGER_LISTEN: &str = "0.0.0.0:6123";
const DATA_PORT: u16 = 6124;
/// The simulation's wall-clock epoch: fixed, so that nothing depends on when it runs.
const EPOCH_SECS: u64 = 1_700_000_000;
/// How often the client asks for the job's status.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A fault injected once the client has seen the job running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `sim.crash(host)`: the host's software and connections vanish.
    Crash(&'static str),
    /// `sim.bounce(host)`: the host's software starts again.
    Bounce(&'static str),
    /// `turmoil::partition(a, b)`: segments between them are dropped (and streams stall).
    Partition(&'static str, &'static str),
    /// `turmoil::repair(a, b)`.
    Repair(&'static str, &'static str),
}

/// What one simulation runs.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The test that runs this scenario (`file::function`'s function name), for the replay command.
    pub test: &'static str,
    /// The integration-test file (`--test NAME`) the test is in.
    pub test_file: &'static str,
    pub job_file: String,
    pub parallelism: Option<u16>,
    /// Slots per TaskManager, in [`TASK_MANAGERS`]' order.
    pub slots: [u16; 2],
    /// Faults and when to inject each, counted from the first status poll that found the job
    /// running.
    pub faults: Vec<(Duration, Fault)>,
    /// The simulated time after which the run fails as stuck.
    pub duration_limit: Duration,
}

/// What a simulation did: deterministic for a seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub seed: u64,
    /// Every frame every host sent.
    pub frames: FrameTrace,
    /// Simulated time until the client saw the job end.
    pub elapsed: Duration,
    /// The job's last status.
    pub job: JobInfo,
    /// The TaskManagers that ran subtasks when the job was first seen running.
    pub first_placement: Vec<TaskManagerId>,
}

/// A failed simulation: the seed and how to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub test: &'static str,
    pub test_file: &'static str,
    pub message: String,
}

impl Failure {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "{SEED_VARIABLE}={} cargo test -p rivulet-sim --test {} -- --exact {}",
            self.seed, self.test_file, self.test
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation failed with seed {}: {}\n  replay: {}",
            self.seed,
            self.message,
            self.replay_command()
        )
    }
}

impl std::error::Error for Failure {}

/// The seed a test runs with: `RIVULET_SIM_SEED` when set, else the test's fixed seed.
pub fn seed_or(fixed: u64) -> u64 {
    match std::env::var(SEED_VARIABLE) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("{SEED_VARIABLE}={text:?} is not a u64")),
        Err(_) => fixed,
    }
}

/// Per vertex name, the counters of [`run_local`] on the scenario's job.
pub fn expected_counters(scenario: &Scenario) -> Result<BTreeMap<String, OperatorMetrics>, String> {
    let options = ParseOptions { parallelism: scenario.parallelism };
    let graph = parse_job(&scenario.job_file, &options).map_err(|e| format!("the job file: {e}"))?;
    let metrics = run_local(&graph, &BuiltinConnectors, 0, 4).map_err(|e| format!("run_local: {e}"))?;
    Ok(graph.vertices().iter().map(|v| (v.name.clone(), metrics[v.id.index()])).collect())
}

/// What the client host tells the driver loop.
#[derive(Debug, Default)]
struct Observed {
    /// Simulated time of the first poll that found the job running, and its placement.
    running: Option<(Duration, Vec<TaskManagerId>)>,
    /// The job's last status once it ended.
    ended: Option<JobInfo>,
    /// Why the client gave up.
    error: Option<String>,
}

/// Runs `scenario` with `seed`; the trace if the job ended `finished` with the counters
/// [`run_local`] gives.
pub fn simulate(seed: u64, scenario: &Scenario) -> Result<Trace, Failure> {
    let fail =
        |message: String| Failure { seed, test: scenario.test, test_file: scenario.test_file, message };
    init_logging();
    let expected = expected_counters(scenario).map_err(fail)?;

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(scenario.duration_limit)
        .build();
    let trace: SharedTrace = Arc::new(Mutex::new(FrameTrace::new()));

    {
        let trace = trace.clone();
        sim.host(JOB_MANAGER, move || {
            let trace = trace.clone();
            async move {
                // Created inside the host's runtime: its clock is the simulated one.
                let rt = TurmoilRuntime::new(JOB_MANAGER, trace);
                let config = JobManagerNodeConfig::new(JOB_MANAGER_LISTEN, CLUSTER);
                run_job_manager(rt, config, |_| {}).await?;
                Ok(())
            }
        });
    }
    for (index, host) in TASK_MANAGERS.iter().copied().enumerate() {
        let trace = trace.clone();
        let slots = scenario.slots[index];
        sim.host(host, move || {
            let trace = trace.clone();
            let config = TaskManagerNodeConfig {
                job_manager: JOB_MANAGER_ADDRESS.to_owned(),
                data_listen: format!("0.0.0.0:{DATA_PORT}"),
                data_advertise_host: Some(host.to_owned()),
                id: TaskManagerId(index as u64 + 1),
                slots,
                labels: BTreeMap::new(),
                cluster: CLUSTER,
                handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            };
            async move {
                let rt = TurmoilRuntime::new(host, trace);
                run_task_manager(rt, config).await?;
                Ok(())
            }
        });
    }

    let observed = Rc::new(RefCell::new(Observed::default()));
    {
        let (observed, scenario, trace) = (observed.clone(), scenario.clone(), trace.clone());
        sim.client(CLIENT, async move {
            let rt = TurmoilRuntime::new(CLIENT, trace);
            if let Err(error) = run_client(&rt, &scenario, &observed).await {
                observed.borrow_mut().error = Some(error);
            }
            Ok(())
        });
    }

    let mut pending: Vec<(Duration, Fault)> = scenario.faults.clone();
    pending.sort_by_key(|(after, _)| *after);
    pending.reverse();
    loop {
        let finished = sim.step().map_err(|e| {
            let at = sim.elapsed();
            fail(format!("after {at:?} of simulated time: {e}"))
        })?;
        if finished {
            break;
        }
        let running_since = observed.borrow().running.as_ref().map(|(at, _)| *at);
        if let Some(since) = running_since {
            while pending.last().is_some_and(|(after, _)| since + *after <= sim.elapsed()) {
                let (_, fault) = pending.pop().expect("checked above");
                tracing::info!(?fault, elapsed = ?sim.elapsed(), "injecting a fault");
                match fault {
                    Fault::Crash(host) => sim.crash(host),
                    Fault::Bounce(host) => sim.bounce(host),
                    Fault::Partition(a, b) => sim.partition(a, b),
                    Fault::Repair(a, b) => sim.repair(a, b),
                }
            }
        }
    }

    let elapsed = sim.elapsed();
    let observed = observed.take();
    if let Some(error) = observed.error {
        return Err(fail(format!("the client gave up after {elapsed:?}: {error}")));
    }
    let job = observed.ended.ok_or_else(|| fail("the client ended without a final status".to_owned()))?;
    if !pending.is_empty() {
        return Err(fail(format!("the job ended before these faults were injected: {pending:?}")));
    }
    if job.state != "finished" {
        return Err(fail(format!(
            "the job ended {} (last failure: {:?}) after {elapsed:?}",
            job.state, job.last_failure
        )));
    }
    let actual: BTreeMap<String, OperatorMetrics> = job.vertices.iter().cloned().collect();
    if actual != expected {
        return Err(fail(format!("the cluster counted {actual:?}, run_local counted {expected:?}")));
    }
    let frames = trace.lock().expect("the simulation has ended").clone();
    let first_placement = observed.running.map(|(_, p)| p).unwrap_or_default();
    Ok(Trace { seed, frames, elapsed, job, first_placement })
}

/// The client host: waits for both TaskManagers, submits the job and polls its status until it
/// ends, noting when it first runs.
async fn run_client(
    rt: &TurmoilRuntime,
    scenario: &Scenario,
    observed: &Rc<RefCell<Observed>>,
) -> Result<(), String> {
    let mut client = connect(rt).await?;
    loop {
        match request(&mut client, &ClientRequest::TaskManagers).await? {
            ClientResponse::TaskManagers { task_managers } if task_managers.len() == TASK_MANAGERS.len() => {
                break
            }
            ClientResponse::TaskManagers { .. } => rt.sleep(POLL_INTERVAL).await,
            other => return Err(format!("asked for the TaskManagers, got {other:?}")),
        }
    }
    let submit =
        ClientRequest::Submit { job_file: scenario.job_file.clone(), parallelism: scenario.parallelism };
    let job = match request(&mut client, &submit).await? {
        ClientResponse::Submitted { job } => job,
        other => return Err(format!("submitted the job, got {other:?}")),
    };
    loop {
        let info = match request(&mut client, &ClientRequest::JobStatus { job }).await? {
            ClientResponse::Job { job } => job,
            other => return Err(format!("asked for the job's status, got {other:?}")),
        };
        if matches!(info.state.as_str(), "finished" | "failed" | "canceled") {
            observed.borrow_mut().ended = Some(info);
            return Ok(());
        }
        let all_running = !info.subtasks.is_empty()
            && info
                .subtasks
                .iter()
                .all(|s| s.state == rivulet_core::jobmanager::execution_state::ExecutionState::Running);
        if info.state == "running" && all_running && observed.borrow().running.is_none() {
            let mut placement: Vec<TaskManagerId> =
                info.subtasks.iter().filter_map(|s| s.task_manager).collect();
            placement.sort();
            placement.dedup();
            let at = turmoil::sim_elapsed().unwrap_or_default();
            observed.borrow_mut().running = Some((at, placement));
        }
        rt.sleep(POLL_INTERVAL).await;
    }
}

/// Connects to the JobManager, retrying while it is not listening yet.
async fn connect(rt: &TurmoilRuntime) -> Result<Client<TurmoilRuntime>, String> {
    const ATTEMPTS_MAX: u32 = 50;
    let mut last = String::new();
    for _ in 0..ATTEMPTS_MAX {
        match Client::connect(rt, JOB_MANAGER_ADDRESS, CLUSTER, HANDSHAKE_TIMEOUT_DEFAULT).await {
            Ok(client) => return Ok(client),
            Err(error) => last = error.to_string(),
        }
        rt.sleep(POLL_INTERVAL).await;
    }
    Err(format!("cannot connect to the JobManager after {ATTEMPTS_MAX} attempts: {last}"))
}

async fn request(
    client: &mut Client<TurmoilRuntime>,
    request: &ClientRequest,
) -> Result<ClientResponse, String> {
    client.request(request).await.map_err(|e| format!("{request:?}: {e}"))
}

/// Logs to the test's output when `RIVULET_SIM_LOG` is set (an `EnvFilter` directive).
fn init_logging() {
    if let Ok(filter) = std::env::var("RIVULET_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .without_time()
            .with_test_writer()
            .try_init();
    }
}
