//! Deterministic simulation of a Rivulet cluster: the node's very drivers (`run_job_manager`,
//! `run_task_manager`, the CLI's client) on turmoil's simulated network and clock.
//!
//! [`simulate`] builds a cluster of one JobManager (`jobmanager:6123`) and two TaskManagers
//! (`tm1`, `tm2`, data port 6124), submits a bounded job from a client host, injects the
//! scenario's faults on time, waits for the job to end and checks it against the single-process
//! runner on the same job file. Everything a simulation does follows from its seed: turmoil's RNG
//! is seeded with it, its epoch is fixed, the drivers race futures with a biased choice and read
//! time only through the runtime seam, and the harness draws its own choices from separate streams
//! of the seed. A failure names the seed and the command that replays it.
//!
//! * [`runtime`]: the node's runtime seam on turmoil, and the trace of every event.
//! * [`scenario`]: what a run does and must show; [`catalog`]: the scenarios the sweep draws.
//! * [`harness`]: one run; [`client`]: the client host; [`checks`]: what the client checks.
//! * [`sweep`]: many seeds on every core, each run isolated; [`logging`]: readable traces.

pub mod campaign;
pub mod catalog;
pub mod checks;
pub mod client;
pub mod harness;
pub mod logging;
pub mod output;
pub mod probe;
pub mod rng;
pub mod runtime;
pub mod scenario;
pub mod sweep;

use std::fmt;
use std::time::Duration;

use rivulet_core::ids::{ClusterId, TaskManagerId};
use rivulet_core::protocol::client::JobInfo;

pub use catalog::Kind;
pub use harness::simulate;
pub use runtime::{EventTrace, SharedTrace, TurmoilRuntime};
pub use scenario::{DelayRange, Expect, Failures, Fault, Replay, Scenario, ScheduledFault, Trigger};

/// The JobManager's host name and address.
pub const JOB_MANAGER: &str = "jobmanager";
pub const JOB_MANAGER_ADDRESS: &str = "jobmanager:6123";
/// The TaskManagers' host names; `tm<n>` runs TaskManager id `n`.
pub const TASK_MANAGERS: [&str; 2] = ["tm1", "tm2"];
/// The host the client runs on.
pub const CLIENT: &str = "client";
/// The environment variable that replaces a test's fixed seed.
pub const SEED_VARIABLE: &str = "RIVULET_SIM_SEED";
/// The environment variable that turns on the nodes' logs (an `EnvFilter` directive).
pub const LOG_VARIABLE: &str = "RIVULET_SIM_LOG";

const CLUSTER: ClusterId = ClusterId(7);
const JOB_MANAGER_LISTEN: &str = "0.0.0.0:6123";
const DATA_PORT: u16 = 6124;
/// The simulation's wall-clock epoch: fixed, so that nothing depends on when it runs.
const EPOCH_SECS: u64 = 1_700_000_000;

/// The usual latency of a simulated link: turmoil's defaults, set explicitly so that a link whose
/// latency a fault changed can be given them back.
pub const LATENCY_MIN: Duration = Duration::ZERO;
pub const LATENCY_MAX: Duration = Duration::from_millis(100);
/// The spread of a link's latency under [`Fault::Latency`].
pub const LATENCY_SPREAD: Duration = Duration::from_millis(100);

/// Something that happened in a run, for the trace a replay prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Simulated time.
    pub at: Duration,
    pub text: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>9.3}s  {}", self.at.as_secs_f64(), self.text)
    }
}

/// What a successful simulation did: deterministic for a seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub seed: u64,
    pub scenario: String,
    /// Every frame, timer and fault, digested.
    pub trace: EventTrace,
    /// Simulated time until the client was done.
    pub elapsed: Duration,
    /// Simulated time of the submission, and of the first status that showed the job ended.
    pub submitted_at: Duration,
    pub ended_at: Duration,
    /// The job's last status.
    pub job: JobInfo,
    /// The TaskManagers that ran subtasks when the job was first seen running.
    pub first_placement: Vec<TaskManagerId>,
    pub notes: Vec<Note>,
}

/// A failed simulation: the seed, what failed, and how to replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    /// The scenario's name.
    pub scenario: String,
    /// The command that replays this run.
    pub replay: String,
    pub message: String,
    /// What happened up to the failure.
    pub notes: Vec<Note>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation `{}` failed with seed {}: {}\n  replay: {}",
            self.scenario, self.seed, self.message, self.replay
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

/// Runs `scenario` with `seed` in a test, logging as `RIVULET_SIM_LOG` says; a failure panics
/// with the seed, the replay command and what happened.
pub fn run_in_test(seed: u64, scenario: &Scenario) -> Outcome {
    logging::init_for_tests();
    match simulate(seed, scenario) {
        Ok(outcome) => outcome,
        Err(failure) => {
            let notes: Vec<String> = failure.notes.iter().map(|n| format!("    {n}")).collect();
            panic!("{failure}\n  what happened:\n{}", notes.join("\n"))
        }
    }
}
