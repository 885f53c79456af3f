//! What one simulation runs: the cluster's shape, the job, the faults and when they strike, what
//! the run must show, and how a failure is replayed.
//!
//! A scenario is plain data, so the sweep can draw one from a seed ([`crate::catalog`]), a test
//! can write one out by hand, and a failure can print exactly what ran.

use std::fmt;
use std::time::Duration;

use rivulet_core::ids::TaskManagerId;

use crate::catalog::Kind;

/// A fault the harness injects between two simulation steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `sim.crash(host)`: the host's software and connections vanish.
    Crash(&'static str),
    /// `sim.bounce(host)`: the host's software starts again (a crash first if it runs).
    Bounce(&'static str),
    /// `partition(a, b)`: segments between them are dropped, and turmoil's TCP never retransmits,
    /// so the streams across stall for good.
    Partition(&'static str, &'static str),
    /// `repair(a, b)`: new segments pass again.
    Repair(&'static str, &'static str),
    /// `hold(a, b)`: segments between them are queued, not dropped.
    Hold(&'static str, &'static str),
    /// `release(a, b)`: the queued segments are delivered at once, and new ones pass.
    Release(&'static str, &'static str),
    /// Every segment between `a` and `b` sent from now on takes between `min` and
    /// `min + LATENCY_SPREAD` to arrive (turmoil's per-link latency).
    Latency { a: &'static str, b: &'static str, min: Duration },
    /// The link between `a` and `b` gets the simulation's usual latency again.
    NormalLatency(&'static str, &'static str),
    /// `partition_oneway(from, to)`: segments from `from` to `to` are dropped, those the other way
    /// pass. A stream across stalls in that one direction for good (no retransmission).
    PartitionOneway(&'static str, &'static str),
    /// `repair_oneway(from, to)`: segments from `from` to `to` pass again.
    RepairOneway(&'static str, &'static str),
    /// Every segment between `a` and `b` sent from now on takes between nothing and `max`, drawn
    /// per segment: segments of different connections overtake each other (turmoil's TCP puts
    /// the segments of one connection back in order, so each stream stays ordered and only waits).
    Jitter { a: &'static str, b: &'static str, max: Duration },
}

/// A delay drawn per event, uniformly between two bounds, by an application-level fault point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayRange {
    pub min: Duration,
    pub max: Duration,
}

impl fmt::Display for DelayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} to {:?}", self.min, self.max)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash(host) => write!(f, "crash {host}"),
            Fault::Bounce(host) => write!(f, "bounce {host}"),
            Fault::Partition(a, b) => write!(f, "partition {a} | {b}"),
            Fault::Repair(a, b) => write!(f, "repair {a} | {b}"),
            Fault::Hold(a, b) => write!(f, "hold {a} | {b}"),
            Fault::Release(a, b) => write!(f, "release {a} | {b}"),
            Fault::Latency { a, b, min } => write!(f, "latency {a} | {b} from {min:?}"),
            Fault::NormalLatency(a, b) => write!(f, "normal latency {a} | {b}"),
            Fault::PartitionOneway(from, to) => write!(f, "partition {from} -> {to}"),
            Fault::RepairOneway(from, to) => write!(f, "repair {from} -> {to}"),
            Fault::Jitter { a, b, max } => write!(f, "jitter {a} | {b} up to {max:?}"),
        }
    }
}

/// The moment a fault's delay counts from, in the order they come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    /// The start of the simulation (before the TaskManagers register).
    Start,
    /// The client's submission of the job (while it is scheduled and deployed).
    Submitted,
    /// The first status poll that found the job running with every subtask running.
    Running,
}

/// A fault, and when to inject it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledFault {
    pub trigger: Trigger,
    pub after: Duration,
    pub fault: Fault,
}

impl ScheduledFault {
    pub fn running(after: Duration, fault: Fault) -> Self {
        ScheduledFault { trigger: Trigger::Running, after, fault }
    }

    pub fn start(after: Duration, fault: Fault) -> Self {
        ScheduledFault { trigger: Trigger::Start, after, fault }
    }
}

impl fmt::Display for ScheduledFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = match self.trigger {
            Trigger::Start => "the start",
            Trigger::Submitted => "the submission",
            Trigger::Running => "the job running",
        };
        write!(f, "{} {:?} after {since}", self.fault, self.after)
    }
}

/// How many failed attempts the job may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failures {
    /// None: no fault the scenario injects may fail the job (nothing is declared dead).
    Zero,
    /// At least one if the TaskManager ran part of the job when it was first seen running (its
    /// fault must be noticed); any number otherwise.
    AtLeastOneIfPlacedOn(TaskManagerId),
    /// At least one: the fault hits every TaskManager while the job runs.
    AtLeastOne,
    /// No claim (a fault at the edge of a timeout may or may not be noticed).
    Any,
}

/// What a run must show besides finishing with the expected counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub failures: Failures,
    /// The only TaskManager the last attempt may run on (the other is gone for good).
    pub last_attempt_on: Option<TaskManagerId>,
    /// How many TaskManagers must be registered, with every slot free, once the job has ended
    /// and the faults are over: a TaskManager that was cut off must find its way back.
    pub task_managers_at_end: usize,
}

impl Expect {
    /// No failures, placed anywhere, both TaskManagers registered at the end.
    pub const CLEAN: Expect =
        Expect { failures: Failures::Zero, last_attempt_on: None, task_managers_at_end: 2 };
}

/// How a failed run is replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// A scenario of the catalog, drawn from the seed: the binary replays it.
    Catalog(Kind),
    /// An integration test in `sim/tests/<file>.rs` that reads its seed from `RIVULET_SIM_SEED`.
    Test { file: &'static str, test: &'static str },
    /// Built in code that is neither: rerun that code with the seed.
    Code,
}

/// What one simulation runs.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// A name for reports: the catalog's name or the test's.
    pub name: String,
    pub replay: Replay,
    pub job_file: String,
    pub parallelism: Option<u16>,
    /// Slots per TaskManager, in [`crate::TASK_MANAGERS`]' order.
    pub slots: [u16; 2],
    pub faults: Vec<ScheduledFault>,
    /// Slow checkpoint storage: every checkpoint the JobManager persists takes this long (drawn
    /// per checkpoint) before it is durable and acknowledged, for the whole run.
    pub store_delay: Option<DelayRange>,
    /// Late checkpoint acknowledgements: every TaskManager holds the last chunk of each snapshot
    /// (its acknowledgement) back this long before writing it to the JobManager, for the whole
    /// run — and what it sends after it on that connection waits too.
    pub ack_delay: Option<DelayRange>,
    /// The kinds of fault this run's seed enabled (a mixed scenario), for reports.
    pub enabled: Vec<&'static str>,
    pub expect: Expect,
    /// How long the job may take to end after the last fault was injected (every fault that ends
    /// has ended then): past it the run fails for liveness.
    pub liveness_bound: Duration,
    /// The simulated time within which the job must have ended and been checked; past it the
    /// run fails as stuck.
    pub duration_limit: Duration,
}

impl Scenario {
    /// This scenario as run by `test` in `sim/tests/<file>.rs`, which is how it is replayed.
    pub fn in_test(mut self, file: &'static str, test: &'static str) -> Self {
        self.name = test.to_owned();
        self.replay = Replay::Test { file, test };
        self
    }

    /// The command that replays this scenario with `seed`.
    pub fn replay_command(&self, seed: u64) -> String {
        match self.replay {
            Replay::Catalog(kind) => replay_command(seed, kind),
            Replay::Test { file, test } => {
                format!(
                    "{}={seed} cargo test -p rivulet-sim --test {file} -- --exact {test} --include-ignored",
                    crate::SEED_VARIABLE
                )
            }
            Replay::Code => format!("run scenario `{}` again with seed {seed}", self.name),
        }
    }
}

/// The command that replays catalog scenario `kind` with `seed`, with its trace.
pub fn replay_command(seed: u64, kind: Kind) -> String {
    format!("cargo run -p rivulet-sim --release -- replay --seed {seed} --scenario {}", kind.name())
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (slots {:?}", self.name, self.slots)?;
        if !self.enabled.is_empty() {
            write!(f, "; enabled [{}]", self.enabled.join(", "))?;
        }
        if let Some(delay) = self.store_delay {
            write!(f, "; checkpoint writes take {delay}")?;
        }
        if let Some(delay) = self.ack_delay {
            write!(f, "; checkpoint acknowledgements held {delay}")?;
        }
        for fault in &self.faults {
            write!(f, "; {fault}")?;
        }
        write!(
            f,
            "; expect {:?}; ended within {:?} of the last fault; limit {:?})",
            self.expect, self.liveness_bound, self.duration_limit
        )
    }
}

impl Scenario {
    /// The scenario's faults, one a line, for a failure report.
    pub fn fault_list(&self) -> String {
        let mut lines = Vec::new();
        if !self.enabled.is_empty() {
            lines.push(format!("enabled fault kinds: {}", self.enabled.join(", ")));
        }
        if let Some(delay) = self.store_delay {
            lines.push(format!("every checkpoint write takes {delay}"));
        }
        if let Some(delay) = self.ack_delay {
            lines.push(format!("every checkpoint acknowledgement is held {delay}"));
        }
        lines.extend(self.faults.iter().map(|f| f.to_string()));
        if lines.is_empty() {
            lines.push("no faults".to_owned());
        }
        lines.join("\n")
    }
}
