//! One simulation: build the cluster on turmoil, step it, inject the scenario's faults on time,
//! and judge the result.
//!
//! The harness steps turmoil itself (rather than `run`) so that it can inject a fault between two
//! steps at the simulated time the scenario names. It judges a run by what the client saw: the
//! job must end `finished` within the scenario's simulated-time limit, with every vertex's
//! counters equal to those of the single-process runner on the same job file, with the failures
//! the scenario expects, and without any of the client's checks failing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::graph::VertexKind;
use rivulet_core::ids::TaskManagerId;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::protocol::client::JobInfo;
use rivulet_node::cluster::{run_job_manager, run_task_manager, JobManagerNodeConfig, TaskManagerNodeConfig};
use rivulet_node::net::HANDSHAKE_TIMEOUT_DEFAULT;

use crate::catalog::task_manager_id;
use crate::checks::StatusChecker;
use crate::client::{run_client, ClientPlan, Observed};
use crate::output::{self, OutputDir, RecordingStore, StoreRecord};
use crate::probe::{Probe, SharedProbe};
use crate::runtime::{EventTrace, SharedTrace, TurmoilRuntime};
use crate::scenario::{Failures, Fault, Scenario, ScheduledFault, Trigger};
use crate::{
    Failure, Note, Outcome, CLIENT, CLUSTER, DATA_PORT, EPOCH_SECS, JOB_MANAGER, JOB_MANAGER_LISTEN,
    LATENCY_MAX, LATENCY_MIN, LATENCY_SPREAD, TASK_MANAGERS,
};
use rivulet_node::checkpoint_store::SharedStore;

/// The expected counters of a job, per vertex name, the names of its sources, and the lines its
/// file sinks must commit.
struct Expected {
    counters: BTreeMap<String, OperatorMetrics>,
    sources: Vec<String>,
    lines: Vec<String>,
}

/// The directory the simulated job's file sink writes, under the run's own directory.
const SINK_DIR: &str = "out";

/// Steps between two looks at the output directory for commits ahead of their checkpoint.
const COMMIT_CHECK_STEPS: u64 = 16;

/// Per vertex name, the counters of [`run_local`] on the scenario's job.
fn expected(scenario: &Scenario) -> Result<Expected, String> {
    let options = ParseOptions { parallelism: scenario.parallelism };
    let graph = parse_job(&scenario.job_file, &options).map_err(|e| format!("the job file: {e}"))?;
    let (metrics, lines) = output::reference(&graph)?;
    let counters = graph.vertices().iter().map(|v| (v.name.clone(), metrics[v.id.index()])).collect();
    let sources = (graph.vertices().iter())
        .filter(|v| matches!(v.kind, VertexKind::Source { .. }))
        .map(|v| v.name.clone())
        .collect();
    Ok(Expected { counters, sources, lines })
}

/// Runs `scenario` with `seed`: its outcome if the job finished as the scenario expects.
pub fn simulate(seed: u64, scenario: &Scenario) -> Result<Outcome, Failure> {
    let failure = |message: String, notes: Vec<Note>| Failure {
        seed,
        scenario: scenario.name.clone(),
        replay: scenario.replay_command(seed),
        message: format!(
            "{message}\nthe scenario's faults:\n  {}",
            scenario.fault_list().replace('\n', "\n  ")
        ),
        notes,
    };
    let out = OutputDir::new(seed).map_err(|m| failure(m, Vec::new()))?;
    let expected = expected(scenario).map_err(|m| failure(m, Vec::new()))?;
    let trace: SharedTrace = Arc::new(Mutex::new(EventTrace::new()));
    let observed = Rc::new(RefCell::new(Observed::default()));
    let (store, record) = RecordingStore::new(seed, scenario.store_delay);
    let store = SharedStore(Arc::new(Mutex::new(store)));
    let probe = Probe::shared(seed, scenario.ack_delay);
    let hosts = Hosts { trace: &trace, observed: &observed, store: &store, probe: &probe };
    let mut sim = build(seed, scenario, &expected, &hosts, out.path());

    let mut notes = Vec::new();
    let sink_dir = out.path().join(SINK_DIR);
    let watch = CommitWatch { dir: &sink_dir, record: &record };
    let stepped = step_until_done(&mut sim, scenario, &trace, &observed, &mut notes, &watch);
    let elapsed = sim.elapsed();
    let observed = observed.take();
    notes.extend(observed.notes.iter().cloned());
    // Stable: on a tie the harness's note (a fault) comes before what the client then saw.
    notes.sort_by_key(|n| n.at);
    let (ended_at, job, first_placement) = stepped
        .and_then(|stepped| judge(scenario, &expected, &observed, &stepped, elapsed))
        .and_then(|judged| {
            if let Some(violation) = &record.lock().expect("the simulation has ended").violation {
                return Err(violation.clone());
            }
            if let Some(violation) = &probe.lock().expect("the simulation has ended").violation {
                return Err(violation.clone());
            }
            let committed = output::committed_lines(&sink_dir)?;
            output::compare(&expected.lines, &committed)?;
            Ok(judged)
        })
        .map_err(|m| failure(m, notes.clone()))?;
    let trace = trace.lock().expect("the simulation has ended").clone();
    Ok(Outcome {
        seed,
        scenario: scenario.name.clone(),
        trace,
        elapsed,
        submitted_at: observed.submitted.unwrap_or_default(),
        ended_at,
        job,
        first_placement,
        notes,
    })
}

/// The simulation of `scenario`: a JobManager, the TaskManagers and the client, recording into
/// `trace` and reporting into `observed`.
/// What the hosts of one simulation share with the harness.
struct Hosts<'a> {
    trace: &'a SharedTrace,
    observed: &'a Rc<RefCell<Observed>>,
    store: &'a SharedStore,
    probe: &'a SharedProbe,
}

fn build<'a>(
    seed: u64,
    scenario: &Scenario,
    expected: &Expected,
    hosts: &Hosts<'_>,
    files_root: &std::path::Path,
) -> turmoil::Sim<'a> {
    let (trace, observed) = (hosts.trace, hosts.observed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(scenario.duration_limit)
        .min_message_latency(LATENCY_MIN)
        .max_message_latency(LATENCY_MAX)
        .build();
    add_job_manager(&mut sim, trace, hosts.store);
    for index in 0..TASK_MANAGERS.len() {
        add_task_manager(&mut sim, trace, hosts.probe, index, scenario.slots[index], files_root);
    }
    let (observed, trace) = (observed.clone(), trace.clone());
    let plan = ClientPlan {
        job_file: scenario.job_file.clone(),
        parallelism: scenario.parallelism,
        task_managers_at_end: scenario.expect.task_managers_at_end,
        output: Some((files_root.join(SINK_DIR), expected.lines.len())),
        reconnect: scenario
            .faults
            .iter()
            .any(|f| matches!(f.fault, Fault::Crash(JOB_MANAGER) | Fault::Bounce(JOB_MANAGER))),
    };
    let task_managers = (0..TASK_MANAGERS.len()).map(task_manager_id).collect();
    let checker = StatusChecker::new(expected.counters.clone(), expected.sources.clone(), task_managers);
    sim.client(CLIENT, async move {
        let rt = TurmoilRuntime::new(CLIENT, trace);
        if let Err(error) = run_client(&rt, &plan, checker, &observed).await {
            observed.borrow_mut().error = Some(error);
        }
        Ok(())
    });
    sim
}

/// How stepping a simulation ended: the faults never injected, and when the last one was.
struct Stepped {
    pending: Vec<ScheduledFault>,
    last_fault_at: Option<Duration>,
}

/// Steps the simulation until the client is done, injecting each fault of the scenario once it
/// is due. The faults not injected, or why the simulation stopped.
fn step_until_done(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    trace: &SharedTrace,
    observed: &Rc<RefCell<Observed>>,
    notes: &mut Vec<Note>,
    watch: &CommitWatch<'_>,
) -> Result<Stepped, String> {
    let mut pending: Vec<ScheduledFault> = scenario.faults.clone();
    let mut last_fault_at = None;
    let mut steps = 0u64;
    loop {
        match sim.step() {
            Ok(true) => return Ok(Stepped { pending, last_fault_at }),
            Ok(false) => {}
            Err(e) => return Err(format!("after {:?} of simulated time: {e}", sim.elapsed())),
        }
        steps += 1;
        if steps.is_multiple_of(COMMIT_CHECK_STEPS) && observed.borrow().ended.is_none() {
            watch.check().map_err(|e| format!("after {:?} of simulated time: {e}", sim.elapsed()))?;
        }
        let (submitted, running) = {
            let o = observed.borrow();
            (o.submitted, o.running.as_ref().map(|(at, _)| *at))
        };
        let due_at = |f: &ScheduledFault| {
            let since = match f.trigger {
                Trigger::Start => Some(Duration::ZERO),
                Trigger::Submitted => submitted,
                Trigger::Running => running,
            };
            since.map(|since| since + f.after)
        };
        // Every fault now due, in the order they fell due (and the scenario's order on a tie).
        let now = sim.elapsed();
        let mut due: Vec<(Duration, usize)> = (pending.iter().enumerate())
            .filter_map(|(i, f)| due_at(f).filter(|at| *at <= now).map(|at| (at, i)))
            .collect();
        if due.is_empty() {
            continue;
        }
        due.sort();
        for &(_, i) in &due {
            let fault = &pending[i].fault;
            tracing::info!(%fault, elapsed = ?now, "injecting a fault");
            trace
                .lock()
                .expect("no host holds the trace between steps")
                .record_fault(now, &fault.to_string());
            notes.push(Note { at: now, text: format!("harness: {fault}") });
            inject(sim, fault);
            last_fault_at = Some(now);
            observed.borrow_mut().last_fault_at = Some(now);
        }
        let injected: Vec<usize> = due.iter().map(|&(_, i)| i).collect();
        pending = (pending.into_iter().enumerate())
            .filter(|(i, _)| !injected.contains(i))
            .map(|(_, f)| f)
            .collect();
    }
}

/// Looks at a run's output directory while the job runs: every committed checkpoint part must
/// belong to a checkpoint the JobManager recorded as complete.
struct CommitWatch<'a> {
    dir: &'a std::path::Path,
    record: &'a Mutex<StoreRecord>,
}

impl CommitWatch<'_> {
    fn check(&self) -> Result<(), String> {
        let record = self.record.lock().expect("no host holds the store between steps");
        if !record.ended.is_empty() {
            return Ok(());
        }
        let completed: std::collections::BTreeSet<u64> =
            record.persisted.values().flatten().copied().collect();
        output::check_commits(self.dir, &completed)
    }
}

/// Judges a run the client has finished: when the job ended, its last status and its first
/// placement, if it ended as the scenario expects.
fn judge(
    scenario: &Scenario,
    expected: &Expected,
    observed: &Observed,
    stepped: &Stepped,
    elapsed: Duration,
) -> Result<(Duration, JobInfo, Vec<TaskManagerId>), String> {
    let pending = &stepped.pending;
    if let Some(error) = &observed.error {
        return Err(format!("the client failed after {elapsed:?}: {error}"));
    }
    let Some((ended_at, job)) = observed.ended.clone() else {
        return Err("the client ended without a final status".to_owned());
    };
    let never: Vec<String> = pending.iter().filter(|f| opens(&f.fault)).map(|f| f.to_string()).collect();
    if !never.is_empty() {
        return Err(format!("the job ended before these faults were injected: {never:?}"));
    }
    if job.state != "finished" {
        let cause = &job.last_failure;
        return Err(format!("the job ended {} (last failure: {cause:?}) after {ended_at:?}", job.state));
    }
    let quiet_since = stepped.last_fault_at.unwrap_or(Duration::ZERO);
    if ended_at > quiet_since + scenario.liveness_bound {
        return Err(format!(
            "liveness: the job finished {:?} after the last fault (at {quiet_since:?}), beyond the bound of \
             {:?}",
            ended_at - quiet_since,
            scenario.liveness_bound
        ));
    }
    let actual: BTreeMap<String, OperatorMetrics> = job.vertices.iter().cloned().collect();
    if actual != expected.counters {
        return Err(format!("the cluster counted {actual:?}, run_local counted {:?}", expected.counters));
    }
    let first_placement = observed.running.clone().map(|(_, p)| p).unwrap_or_default();
    let failures_ok = match scenario.expect.failures {
        Failures::Zero => job.failures == 0,
        Failures::AtLeastOne => job.failures >= 1,
        Failures::AtLeastOneIfPlacedOn(tm) => job.failures >= 1 || !first_placement.contains(&tm),
        Failures::Any => true,
    };
    if !failures_ok {
        return Err(format!(
            "expected {:?} with the job first placed on {first_placement:?}; it finished after {} \
             failures (last: {:?})",
            scenario.expect.failures, job.failures, job.last_failure
        ));
    }
    if let Some(tm) = scenario.expect.last_attempt_on {
        if job.subtasks.iter().any(|s| s.task_manager != Some(tm)) {
            return Err(format!("the last attempt should run on {tm} only: {:?}", job.subtasks));
        }
    }
    Ok((ended_at, job, first_placement))
}

/// Whether `fault` starts trouble (rather than ending it). A scenario whose job ended before a
/// trouble-ending fault is fine; one whose trouble never started tested nothing.
fn opens(fault: &Fault) -> bool {
    match fault {
        Fault::Crash(_)
        | Fault::Partition(..)
        | Fault::Hold(..)
        | Fault::Latency { .. }
        | Fault::PartitionOneway(..)
        | Fault::Jitter { .. } => true,
        Fault::Bounce(_)
        | Fault::Repair(..)
        | Fault::Release(..)
        | Fault::NormalLatency(..)
        | Fault::RepairOneway(..) => false,
    }
}

fn inject(sim: &mut turmoil::Sim<'_>, fault: &Fault) {
    match *fault {
        Fault::Crash(host) => sim.crash(host),
        Fault::Bounce(host) => sim.bounce(host),
        Fault::Partition(a, b) => sim.partition(a, b),
        Fault::Repair(a, b) => sim.repair(a, b),
        Fault::Hold(a, b) => sim.hold(a, b),
        Fault::Release(a, b) => sim.release(a, b),
        Fault::Latency { a, b, min } => {
            sim.set_link_latency(a, b, min);
            sim.set_link_max_message_latency(a, b, min + LATENCY_SPREAD);
        }
        Fault::NormalLatency(a, b) => {
            sim.set_link_latency(a, b, LATENCY_MIN);
            sim.set_link_max_message_latency(a, b, LATENCY_MAX);
        }
        Fault::PartitionOneway(from, to) => sim.partition_oneway(from, to),
        Fault::RepairOneway(from, to) => sim.repair_oneway(from, to),
        Fault::Jitter { a, b, max } => {
            sim.set_link_latency(a, b, Duration::ZERO);
            sim.set_link_max_message_latency(a, b, max);
        }
    }
}

fn add_job_manager(sim: &mut turmoil::Sim<'_>, trace: &SharedTrace, store: &SharedStore) {
    let (trace, store) = (trace.clone(), store.clone());
    sim.host(JOB_MANAGER, move || {
        let (trace, store) = (trace.clone(), store.clone());
        async move {
            // Created inside the host's runtime: its clock is the simulated one.
            let rt = TurmoilRuntime::new(JOB_MANAGER, trace);
            let mut config = JobManagerNodeConfig::new(JOB_MANAGER_LISTEN, CLUSTER);
            // The store lives outside the host, so that it outlives a crash of it.
            config.checkpoints = store;
            run_job_manager(rt, config, |_| {}).await?;
            Ok(())
        }
    });
}

fn add_task_manager(
    sim: &mut turmoil::Sim<'_>,
    trace: &SharedTrace,
    probe: &SharedProbe,
    index: usize,
    slots: u16,
    files_root: &std::path::Path,
) {
    let host = TASK_MANAGERS[index];
    let (trace, probe) = (trace.clone(), probe.clone());
    let files_root = files_root.to_owned();
    sim.host(host, move || {
        let (trace, probe) = (trace.clone(), probe.clone());
        let config = TaskManagerNodeConfig {
            job_manager: crate::JOB_MANAGER_ADDRESS.to_owned(),
            data_listen: format!("0.0.0.0:{DATA_PORT}"),
            data_advertise_host: Some(host.to_owned()),
            id: task_manager_id(index),
            slots,
            labels: BTreeMap::new(),
            cluster: CLUSTER,
            handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            // The run's own directory: the job file names `out`, the same in every run, so that
            // a seed's frames (which carry the job file) are the same in every run.
            files_root: Some(files_root.clone()),
        };
        async move {
            let rt = TurmoilRuntime::with_probe(host, trace, probe);
            run_task_manager(rt, config).await?;
            Ok(())
        }
    });
}
