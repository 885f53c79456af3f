//! The JobManager driven by hand, with TaskManagers played by the test: submit → slots →
//! deployments → reports → end, failures and restarts, a TaskManager's death.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::jobmanager::execution_state::ExecutionState;
use crate::jobmanager::resource_manager::TaskManagerRegistration;
use crate::protocol::PROTOCOL_VERSION;

const JOB: &str = r#"
[job]
name = "t"
parallelism = 2

[job.restart]
strategy = "fixed-delay"
attempts = 2
delay = "500ms"

[[source]]
name = "g"
type = "generator"
count = 100

[[operator]]
name = "f"
type = "filter"
input = "g"
predicate = "value > 3"
partitioning = "rebalance"

[[sink]]
type = "count"
input = "f"
"#;

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn register(jm: &mut JobManager, now: Instant, id: u64, slots: u16) {
    let registration = TaskManagerRegistration {
        id: TaskManagerId(id),
        address: format!("10.0.0.{id}:6124"),
        slots,
        labels: BTreeMap::new(),
        protocol_version: PROTOCOL_VERSION,
    };
    jm.handle_task_manager_message(now, TaskManagerId(id), ToJobManager::Register(registration));
}

fn drain(jm: &mut JobManager) -> Vec<Output> {
    jm.assert_invariants();
    std::iter::from_fn(|| jm.poll_output()).collect()
}

fn deployments(outputs: &[Output]) -> Vec<(TaskManagerId, Deployment)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToTaskManager { tm, message: ToTaskManager::Deploy(d) } => Some((*tm, d.clone())),
            _ => None,
        })
        .collect()
}

fn report(
    jm: &mut JobManager,
    now: Instant,
    tm: TaskManagerId,
    d: &Deployment,
    state: ExecutionState,
    error: Option<&str>,
) {
    let report = TaskStateReport {
        job: d.job,
        attempt: d.attempt,
        subtask: d.subtask,
        state,
        error: error.map(str::to_owned),
        metrics: vec![(0, OperatorMetrics { records_out: 50, ..Default::default() })],
    };
    jm.handle_task_manager_message(now, tm, ToJobManager::TaskState(report));
}

#[test]
fn a_job_is_deployed_over_the_task_managers_and_finishes() {
    let mut jm = JobManager::new(JobManagerConfig::default());
    register(&mut jm, at(0), 1, 2);
    register(&mut jm, at(0), 2, 2);
    let registered = drain(&mut jm);
    assert_eq!(registered.len(), 2, "{registered:?}");
    let job = jm.submit(at(1), JOB, None).unwrap();
    let out = drain(&mut jm);
    let deploys = deployments(&out);
    assert_eq!(deploys.len(), 4, "two chains at parallelism 2: {out:?}");
    let hosts: BTreeSet<TaskManagerId> = deploys.iter().map(|(tm, _)| *tm).collect();
    assert_eq!(hosts.len(), 2, "subtasks spread over both TaskManagers");
    for (_, d) in &deploys {
        assert_eq!(d.locations.len(), 4, "every deployment knows where all subtasks run");
        assert_eq!(d.job_file, JOB);
    }
    assert_eq!(jm.job(job).unwrap().status.state, JobState::Running);
    for (tm, d) in &deploys {
        report(&mut jm, at(2), *tm, d, ExecutionState::Running, None);
    }
    for (tm, d) in &deploys {
        report(&mut jm, at(3), *tm, d, ExecutionState::Finished, None);
    }
    let out = drain(&mut jm);
    let ended = |tm| Output::ToTaskManager {
        tm: TaskManagerId(tm),
        message: ToTaskManager::JobEnded { job, attempt: AttemptId(0), succeeded: true },
    };
    let overview = jm.job(job).unwrap();
    assert_eq!(
        out,
        vec![
            Output::PersistJobResult(Box::new(overview.clone())),
            ended(1),
            ended(2),
            Output::JobEnded { job, state: JobState::Finished, cause: None }
        ],
        "the outcome is recorded, then every TaskManager hears it, then the driver"
    );
    assert_eq!(overview.status.state, JobState::Finished);
    assert_eq!(overview.vertices[0].1.records_out, 200, "latest counters of the four subtasks");
    assert!(jm.task_managers().iter().all(|t| t.free_slots == 2), "slots released");
}

#[test]
fn a_failed_subtask_cancels_the_attempt_and_the_job_restarts_after_the_delay() {
    let mut jm = JobManager::new(JobManagerConfig::default());
    register(&mut jm, at(0), 1, 4);
    drain(&mut jm);
    let job = jm.submit(at(0), JOB, None).unwrap();
    let deploys = deployments(&drain(&mut jm));
    let (tm, d) = &deploys[1];
    report(&mut jm, at(10), *tm, d, ExecutionState::Failed, Some("operator `f`: division by zero"));
    let out = drain(&mut jm);
    assert!(
        out.contains(&Output::ToTaskManager {
            tm: TaskManagerId(1),
            message: ToTaskManager::CancelAttempt { job, attempt: AttemptId(0) }
        }),
        "{out:?}"
    );
    assert_eq!(jm.job(job).unwrap().status.state, JobState::Restarting);
    assert_eq!(jm.poll_timeout(), Some(at(510)));
    jm.handle_timeout(at(510));
    let redeployed = deployments(&drain(&mut jm));
    assert_eq!(redeployed.len(), 4);
    assert!(redeployed.iter().all(|(_, d)| d.attempt == AttemptId(1)));
    assert!(jm.job(job).unwrap().status.last_failure_cause.unwrap().contains("division by zero"));
}

#[test]
fn a_silent_task_manager_dies_and_its_work_moves_to_another() {
    let mut config = JobManagerConfig::default();
    config.resource_manager.heartbeat_timeout = Duration::from_secs(5);
    let mut jm = JobManager::new(config);
    register(&mut jm, at(0), 1, 4);
    drain(&mut jm);
    let job = jm.submit(at(0), JOB, None).unwrap();
    assert_eq!(deployments(&drain(&mut jm)).len(), 4);
    // A second TaskManager joins and keeps sending heartbeats; the first stays silent.
    register(&mut jm, at(1_000), 2, 4);
    drain(&mut jm);
    for s in 1..=6 {
        jm.handle_task_manager_message(at(s * 1_000), TaskManagerId(2), ToJobManager::Heartbeat);
    }
    // TaskManager 1 dies at 5 s; the restart is due 500 ms later and happens with the
    // heartbeat at 6 s (inputs apply the timeouts due before them).
    let out = drain(&mut jm);
    assert!(out.contains(&Output::TaskManagerDead { tm: TaskManagerId(1) }), "{out:?}");
    let redeployed = deployments(&out);
    assert_eq!(jm.job(job).unwrap().status.attempt, AttemptId(1));
    assert_eq!(redeployed.len(), 4);
    assert!(
        redeployed.iter().all(|(tm, _)| *tm == TaskManagerId(2)),
        "the work moved to the live TaskManager"
    );
}

#[test]
fn a_job_waits_for_slots_and_can_be_canceled_while_waiting() {
    let mut jm = JobManager::new(JobManagerConfig::default());
    let job = jm.submit(at(0), JOB, None).unwrap();
    assert!(deployments(&drain(&mut jm)).is_empty(), "no TaskManager yet");
    assert_eq!(jm.job(job).unwrap().status.state, JobState::Created);
    jm.cancel(at(5), job).unwrap();
    let out = drain(&mut jm);
    let recorded = Output::PersistJobResult(Box::new(jm.job(job).unwrap()));
    assert_eq!(out, vec![recorded, Output::JobEnded { job, state: JobState::Canceled, cause: None }]);
    assert_eq!(jm.cancel(at(6), JobId(99)), Err(UnknownJob(JobId(99))));
    // Slots appearing later are not taken by the canceled job.
    register(&mut jm, at(7), 1, 4);
    assert!(deployments(&drain(&mut jm)).is_empty());
}

#[test]
fn bad_submissions_and_registrations_are_refused() {
    let mut jm = JobManager::new(JobManagerConfig::default());
    let err = jm.submit(at(0), "[[source]]\nname = 3\n", None).unwrap_err();
    assert_eq!(err.line, 2);
    let mut registration = TaskManagerRegistration {
        id: TaskManagerId(5),
        address: "h:1".into(),
        slots: 1,
        labels: BTreeMap::new(),
        protocol_version: PROTOCOL_VERSION,
    };
    jm.handle_task_manager_message(at(1), TaskManagerId(6), ToJobManager::Register(registration.clone()));
    assert!(matches!(drain(&mut jm)[..], [Output::RefuseRegistration { .. }]));
    registration.slots = 0;
    jm.handle_task_manager_message(at(2), TaskManagerId(5), ToJobManager::Register(registration));
    match &drain(&mut jm)[..] {
        [Output::RefuseRegistration { reason, .. }] => {
            assert!(reason.contains("at least one slot"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

/// Runs `JOB` to its end on TaskManagers 1 and 2 (two slots each, registered); the outputs of
/// its end.
fn run_to_the_end(jm: &mut JobManager, now: Instant) -> (JobId, Vec<Output>) {
    let job = jm.submit(now, JOB, None).unwrap();
    let deploys = deployments(&drain(jm));
    for state in [ExecutionState::Running, ExecutionState::Finished] {
        for (tm, d) in &deploys {
            report(jm, now, *tm, d, state, None);
        }
    }
    (job, drain(jm))
}

#[test]
fn a_successor_on_the_recorded_results_repeats_the_outcomes_and_never_reuses_an_id() {
    let mut jm = JobManager::new(JobManagerConfig::default());
    register(&mut jm, at(0), 1, 2);
    register(&mut jm, at(0), 2, 2);
    drain(&mut jm);
    let (first, out) = run_to_the_end(&mut jm, at(1));
    let (second, out2) = run_to_the_end(&mut jm, at(2));
    let results: Vec<EndedJob> = out
        .iter()
        .chain(&out2)
        .filter_map(|o| match o {
            Output::PersistJobResult(overview) => Some((overview.status.job, Ok((**overview).clone()))),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2, "each end is recorded once");
    // The JobManager crashes before the TaskManagers heard the outcomes. Its successor holds the
    // second result and only the id of the first (another build's record, say).
    let mut successor = JobManager::new(JobManagerConfig::default());
    let recovered =
        successor.recover(at(5), Vec::new(), vec![(first, Err("another format".into())), results[1].clone()]);
    assert!(recovered.is_empty(), "no running job to take over");
    assert_eq!(successor.job(second), Ok(results[1].1.clone().unwrap()), "the history as it ended");
    assert_eq!(successor.job(first), Err(UnknownJob(first)));
    register(&mut successor, at(6), 1, 2);
    let out = drain(&mut successor);
    let repeated = ToTaskManager::JobEnded { job: second, attempt: AttemptId(0), succeeded: true };
    assert!(
        out.contains(&Output::ToTaskManager { tm: TaskManagerId(1), message: repeated }),
        "a TaskManager registering hears the recorded outcome: {out:?}"
    );
    let next = successor.submit(at(7), JOB, None).unwrap();
    assert_eq!(next, JobId(second.0 + 1), "new ids follow every recorded one");
    // A result filed under another job's id joins no history.
    let mut other = JobManager::new(JobManagerConfig::default());
    let mut wrong = results[1].1.clone().unwrap();
    wrong.status.job = JobId(99);
    other.recover(at(5), Vec::new(), vec![(second, Ok(wrong))]);
    assert!(other.jobs().is_empty());
    assert_eq!(other.submit(at(6), JOB, None), Ok(JobId(second.0 + 1)));
    // A job recorded both as running and as ended ended: it is not run again.
    let mut again = JobManager::new(JobManagerConfig::default());
    let record = JobRecord {
        job: second,
        job_file: JOB.to_owned(),
        parallelism: None,
        attempt: AttemptId(0),
        failures: 0,
    };
    let recovered = again.recover(at(5), vec![(record, None)], vec![results[1].clone()]);
    assert!(recovered.is_empty(), "{recovered:?}");
    assert_eq!(again.jobs().len(), 1);
    assert!(again.job(second).unwrap().status.state.is_final());
}

#[test]
fn the_history_of_ended_jobs_is_bounded() {
    let config = JobManagerConfig { finished_jobs_max: 2, ..JobManagerConfig::default() };
    let mut jm = JobManager::new(config);
    let ids: Vec<JobId> = (0..3).map(|i| jm.submit(at(i), JOB, None).unwrap()).collect();
    for (i, id) in ids.iter().enumerate() {
        jm.cancel(at(10 + i as u64), *id).unwrap();
    }
    drain(&mut jm);
    assert_eq!(jm.job(ids[0]), Err(UnknownJob(ids[0])), "the oldest ended job is forgotten");
    assert_eq!(jm.jobs().len(), 2);
}

#[test]
fn live_counters_come_from_the_host_of_the_current_attempt_only() {
    let mut jm = JobManager::new(JobManagerConfig::default());
    register(&mut jm, at(0), 1, 2);
    register(&mut jm, at(0), 2, 2);
    drain(&mut jm);
    let job = jm.submit(at(1), JOB, None).unwrap();
    let deploys = deployments(&drain(&mut jm));
    let (host, d) = deploys[0].clone();
    let other = if host == TaskManagerId(1) { TaskManagerId(2) } else { TaskManagerId(1) };
    let live = |attempt, records_out| {
        ToJobManager::Metrics(vec![SubtaskMetrics {
            job,
            attempt,
            subtask: d.subtask,
            metrics: vec![(0, OperatorMetrics { records_out, ..Default::default() })],
        }])
    };
    jm.handle_task_manager_message(at(2), host, live(d.attempt, 40));
    assert_eq!(jm.job(job).unwrap().vertices[0].1.records_out, 40, "the host's report counts");
    jm.handle_task_manager_message(at(3), other, live(d.attempt, 1000));
    jm.handle_task_manager_message(at(3), host, live(AttemptId(5), 1000));
    assert_eq!(jm.job(job).unwrap().vertices[0].1.records_out, 40, "another TaskManager or attempt does not");
    jm.handle_task_manager_message(at(4), host, live(d.attempt, 70));
    assert_eq!(jm.job(job).unwrap().vertices[0].1.records_out, 70, "the latest report replaces the last");
    drain(&mut jm);
}

#[test]
fn a_job_whose_placement_no_task_manager_meets_says_what_it_waits_for() {
    let mut jm = JobManager::new(JobManagerConfig::default());
    register(&mut jm, at(0), 1, 4);
    drain(&mut jm);
    let text = JOB.replace(
        "partitioning = \"rebalance\"",
        "partitioning = \"rebalance\"\nplacement = { tier = \"cloud\" }",
    );
    let job = jm.submit(at(1), &text, None).unwrap();
    drain(&mut jm);
    let waiting = jm.job(job).unwrap().waiting_for;
    let cloud = BTreeMap::from([("tier".to_owned(), "cloud".to_owned())]);
    assert!(waiting.iter().any(|w| w.placement == cloud && w.slots == 2), "{waiting:?}");
    // A TaskManager with the label arrives: the job is deployed and waits for nothing.
    let registration = TaskManagerRegistration {
        id: TaskManagerId(2),
        address: "10.0.0.2:6124".into(),
        slots: 4,
        labels: cloud.clone(),
        protocol_version: PROTOCOL_VERSION,
    };
    jm.handle_task_manager_message(at(2), TaskManagerId(2), ToJobManager::Register(registration));
    drain(&mut jm);
    assert_eq!(jm.job(job).unwrap().waiting_for, Vec::new());
}
