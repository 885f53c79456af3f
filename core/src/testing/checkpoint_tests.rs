//! Checkpoints on the in-memory cluster: a job checkpoints while it runs, and after a
//! TaskManager crash it resumes from its latest completed checkpoint with every record counted
//! exactly once (counters are part of the snapshots, so they equal a run without failures only if
//! nothing was lost or replayed twice).

use std::collections::BTreeMap;

use super::*;
use crate::connectors::BuiltinConnectors;
use crate::dataflow::local::run_local;
use crate::dataflow::operator::OperatorMetrics;
use crate::jobfile::{parse_job, ParseOptions};
use crate::jobmanager::job_master::JobState;

const JOB: &str = r#"
[job]
name = "checkpointed"
parallelism = 2

[job.checkpoints]
interval = "20ms"

[job.restart]
strategy = "fixed-delay"
attempts = 3
delay = "50ms"

[[source]]
name = "g"
type = "generator"
count = 60_000
rate = 200_000
keys = 50
event_time = "ts_ms"

[[operator]]
name = "k"
type = "key_by"
input = "g"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "tumbling"
size = "50ms"
aggregates = { n = "count()", total = "sum(value)" }

[[sink]]
name = "out"
type = "count"
input = "w"
"#;

fn cluster(seed: u64) -> InMemoryCluster {
    let spec =
        || TaskManagerSpec { slots: 4, labels: BTreeMap::new(), connectors: Box::new(BuiltinConnectors) };
    InMemoryCluster::new(seed, JobManagerConfig::default(), vec![spec(), spec()])
}

fn expected() -> BTreeMap<String, OperatorMetrics> {
    let graph = parse_job(JOB, &ParseOptions::default()).unwrap();
    let metrics = run_local(&graph, &BuiltinConnectors, 7, 4).unwrap();
    graph.vertices().iter().map(|v| (v.name.clone(), metrics[v.id.index()])).collect()
}

fn finished(job: JobId) -> job_manager::Output {
    job_manager::Output::JobEnded { job, state: JobState::Finished, cause: None }
}

fn completed(c: &InMemoryCluster, job: JobId) -> u64 {
    c.job(job).and_then(|o| o.status.checkpoints).map_or(0, |s| s.counters.completed)
}

#[test]
fn a_running_job_completes_checkpoints_with_a_snapshot_of_every_subtask() {
    let mut c = cluster(3);
    assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2));
    let job = c.submit(JOB, None).unwrap();
    assert!(c.run_until(5_000_000, |c| completed(c, job) >= 3), "three checkpoints complete");
    let kept = &c.checkpoints[&job];
    assert_eq!(kept.len(), 3, "the last `retained` (3) are kept");
    assert!(kept.iter().zip(kept.iter().skip(1)).all(|(a, b)| a.id < b.id), "ids only grow");
    let subtasks = c.job(job).unwrap().status.subtasks.len();
    assert!(kept.iter().all(|k| k.snapshots.len() == subtasks && k.snapshots.iter().all(|s| !s.is_empty())));
    assert_eq!(c.run_job(job, 10_000_000), Some(finished(job)));
    let actual: BTreeMap<String, OperatorMetrics> = c.job(job).unwrap().vertices.into_iter().collect();
    assert_eq!(actual, expected());
}

#[test]
fn after_a_crash_the_job_resumes_from_its_latest_checkpoint_and_counts_every_record_once() {
    let expected = expected();
    for seed in 0..4 {
        let mut c = cluster(seed);
        assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2));
        let job = c.submit(JOB, None).unwrap();
        assert!(c.run_until(5_000_000, |c| completed(c, job) >= 2), "seed {seed}: two checkpoints");
        let victim = c.job(job).unwrap().status.subtasks[0].slot.unwrap().task_manager;
        c.crash(victim);
        assert_eq!(c.run_job(job, 20_000_000), Some(finished(job)), "seed {seed}");
        let status = c.job(job).unwrap().status;
        assert!(status.attempt.0 >= 1, "seed {seed}: the job restarted");
        let restored = status.checkpoints.as_ref().and_then(|s| s.restored_from);
        assert!(restored.is_some(), "seed {seed}: the restart restored a checkpoint: {status:?}");
        let actual: BTreeMap<String, OperatorMetrics> = c.job(job).unwrap().vertices.into_iter().collect();
        assert_eq!(actual, expected, "seed {seed}: restored from {restored:?}");
    }
}

#[test]
fn a_restarted_job_manager_takes_the_job_over_from_its_latest_checkpoint() {
    let expected = expected();
    for seed in 0..4 {
        let mut c = cluster(seed);
        assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2));
        let job = c.submit(JOB, None).unwrap();
        assert!(c.run_until(5_000_000, |c| completed(c, job) >= 2), "seed {seed}: two checkpoints");
        let before = c.job(job).unwrap().status.attempt;
        c.restart_job_manager(JobManagerConfig::default());
        let status = c.job(job).expect("the job was recovered").status;
        assert!(status.attempt > before, "seed {seed}: the recovered job runs a new attempt");
        assert!(status.checkpoints.as_ref().and_then(|s| s.restored_from).is_some(), "seed {seed}");
        assert_eq!(c.run_job(job, 20_000_000), Some(finished(job)), "seed {seed}");
        let actual: BTreeMap<String, OperatorMetrics> = c.job(job).unwrap().vertices.into_iter().collect();
        assert_eq!(actual, expected, "seed {seed}");
        let next = c.submit(JOB, None).unwrap();
        assert!(next.0 > job.0, "new job ids follow the recovered ones");
    }
}

fn savepoint_state(c: &InMemoryCluster, job: JobId, request: u64) -> job_manager::SavepointState {
    let overview = c.job(job).unwrap();
    overview.savepoints.iter().find(|s| s.request == request).expect("the request is kept").state.clone()
}

#[test]
fn a_job_stopped_with_a_savepoint_resumes_from_it_on_another_cluster_counting_every_record_once() {
    let expected = expected();
    for seed in 0..3 {
        let mut c = cluster(seed);
        assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2));
        let job = c.submit(JOB, None).unwrap();
        assert!(c.run_until(5_000_000, |c| completed(c, job) >= 1), "seed {seed}: a checkpoint");
        let request = c.savepoint(job, "/savepoints", true).unwrap();
        let error = c.savepoint(job, "/savepoints", false).unwrap_err();
        assert!(error.contains("already in progress"), "seed {seed}: {error}");
        let ended = c.run_job(job, 20_000_000);
        let cause = match ended {
            Some(job_manager::Output::JobEnded { state: JobState::Canceled, cause: Some(cause), .. }) => {
                cause
            }
            other => panic!("seed {seed}: the job was not stopped: {other:?}"),
        };
        let job_manager::SavepointState::Completed { checkpoint, path, bytes } =
            savepoint_state(&c, job, request)
        else {
            panic!("seed {seed}: {:?}", savepoint_state(&c, job, request));
        };
        assert!(cause.contains(&path), "seed {seed}: {cause}");
        assert!(checkpoint.0 >= 2, "seed {seed}: the savepoint follows the periodic checkpoints");
        let file = c.savepoints[&path].clone();
        assert_eq!(file.len() as u64, bytes);
        let stopped: BTreeMap<String, OperatorMetrics> = c.job(job).unwrap().vertices.into_iter().collect();
        assert!(stopped["g"].records_out < expected["g"].records_out, "seed {seed}: stopped mid-way");

        // Another cluster, which never saw the job: the file is all it needs.
        let mut other = cluster(seed + 100);
        assert!(other.run_until(100_000, |c| c.jm.task_managers().len() == 2));
        let resumed = other.submit_from_savepoint(JOB, &file).unwrap();
        let status = other.job(resumed).unwrap().status;
        assert_eq!(status.checkpoints.and_then(|s| s.restored_from), Some(checkpoint), "seed {seed}");
        assert_eq!(other.checkpoints[&resumed].back().map(|c| c.id), Some(checkpoint), "recorded at once");
        assert_eq!(other.run_job(resumed, 20_000_000), Some(finished(resumed)), "seed {seed}");
        let actual: BTreeMap<String, OperatorMetrics> =
            other.job(resumed).unwrap().vertices.into_iter().collect();
        assert_eq!(actual, expected, "seed {seed}: resumed from savepoint {checkpoint:?}");
    }
}

#[test]
fn a_savepoint_of_a_job_without_checkpoints_leaves_it_running_and_a_mismatched_job_is_refused() {
    let plain = JOB.replace("[job.checkpoints]\ninterval = \"20ms\"\n", "");
    let mut c = cluster(5);
    assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2));
    let job = c.submit(&plain, None).unwrap();
    assert!(c.run_until(5_000_000, |c| c.job(job).unwrap().status.state == JobState::Running));
    assert!(c.job(job).unwrap().status.checkpoints.is_none(), "no checkpoints shown before a savepoint");
    let request = c.savepoint(job, "/sp", false).unwrap();
    assert!(c.run_until(5_000_000, |c| savepoint_state(c, job, request).name() != "in-progress"));
    let job_manager::SavepointState::Completed { checkpoint, path, .. } = savepoint_state(&c, job, request)
    else {
        panic!("{:?}", savepoint_state(&c, job, request));
    };
    assert_eq!(checkpoint.0, 1);
    let status = c.job(job).unwrap().status;
    assert_eq!(status.checkpoints.map(|s| s.counters.completed), Some(1), "only the savepoint");
    assert_eq!(c.run_job(job, 20_000_000), Some(finished(job)), "the job ran on to its end");
    let actual: BTreeMap<String, OperatorMetrics> = c.job(job).unwrap().vertices.into_iter().collect();
    assert_eq!(actual, expected());
    assert!(c.savepoint(job, "/sp", false).unwrap_err().contains("no running job"));

    let file = c.savepoints[&path].clone();
    let error = c.submit_from_savepoint(&plain, &file[..file.len() - 1]).unwrap_err();
    assert!(error.contains("savepoint's body has"), "{error}");
    let wider = plain.replace("parallelism = 2", "parallelism = 3");
    let error = c.submit_from_savepoint(&wider, &file).unwrap_err();
    assert!(error.contains("parallelism 2") && error.contains("at 3"), "{error}");
}
