//! Whole jobs on the in-memory cluster: the same results as the single-process runner, the same
//! trace for the same seed, and a TaskManager crash survived by a restart.

use std::collections::BTreeMap;

use super::*;
use crate::connectors::BuiltinConnectors;
use crate::dataflow::local::run_local;
use crate::dataflow::operator::OperatorMetrics;
use crate::jobfile::{parse_job, ParseOptions};
use crate::jobmanager::job_master::JobState;

const JOB: &str = r#"
[job]
name = "windows"
parallelism = 2

[job.restart]
strategy = "fixed-delay"
attempts = 3
delay = "200ms"

[[source]]
name = "g"
type = "generator"
count = 30_000
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

fn cluster(seed: u64, slots: &[u16]) -> InMemoryCluster {
    let specs = slots
        .iter()
        .map(|&slots| TaskManagerSpec {
            slots,
            labels: BTreeMap::new(),
            connectors: Box::new(BuiltinConnectors),
        })
        .collect();
    InMemoryCluster::new(seed, JobManagerConfig::default(), specs)
}

/// Counters per vertex name from the single-process runner.
fn expected() -> BTreeMap<String, OperatorMetrics> {
    let graph = parse_job(JOB, &ParseOptions::default()).unwrap();
    let metrics = run_local(&graph, &BuiltinConnectors, 7, 4).unwrap();
    graph.vertices().iter().map(|v| (v.name.clone(), metrics[v.id.index()])).collect()
}

fn actual(c: &InMemoryCluster, job: JobId) -> BTreeMap<String, OperatorMetrics> {
    c.job(job).unwrap().vertices.into_iter().collect()
}

fn finished(job: JobId) -> job_manager::Output {
    job_manager::Output::JobEnded { job, state: JobState::Finished, cause: None }
}

#[test]
fn a_job_on_two_task_managers_gives_the_single_process_results() {
    let expected = expected();
    assert_eq!(expected["w"].records_out, 50 * 6, "50 keys × 300 ms of event time in 50 ms windows");
    for seed in 0..3 {
        let mut c = cluster(seed, &[2, 2]);
        assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2), "both TaskManagers register");
        let job = c.submit(JOB, None).unwrap();
        assert_eq!(c.run_job(job, 2_000_000), Some(finished(job)), "seed {seed}");
        let hosts: std::collections::BTreeSet<_> =
            c.job(job).unwrap().status.subtasks.iter().map(|s| s.slot.unwrap().task_manager).collect();
        assert_eq!(hosts.len(), 2, "the job ran on both TaskManagers");
        assert_eq!(actual(&c, job), expected, "seed {seed}");
        let tms = c.jm.task_managers();
        assert!(tms.iter().all(|t| t.free_slots == 2), "slots released: {tms:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let run = |seed| {
        let mut c = cluster(seed, &[2, 2]);
        let job = c.submit(JOB, None).unwrap();
        c.run_job(job, 2_000_000).expect("the job ends");
        (c.trace(), c.steps())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0, "another seed orders events differently");
}

#[test]
fn a_crashed_task_manager_is_detected_and_the_job_restarts_on_the_others() {
    let expected = expected();
    for seed in 0..3 {
        let mut c = cluster(seed, &[4, 4]);
        assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2), "both TaskManagers register");
        let job = c.submit(JOB, None).unwrap();
        // Crash a TaskManager that runs part of the job as soon as the job runs.
        assert!(c.run_until(2_000_000, |c| c.job(job).is_some_and(|o| o.status.state == JobState::Running)));
        let victim = c.job(job).unwrap().status.subtasks[0].slot.unwrap().task_manager;
        c.crash(victim);
        assert_eq!(c.run_job(job, 5_000_000), Some(finished(job)), "seed {seed}");
        let status = c.job(job).unwrap().status;
        assert!(status.attempt.0 >= 1, "the job restarted: {status:?}");
        assert!(status.subtasks.iter().all(|s| s.slot.unwrap().task_manager != victim));
        assert_eq!(
            actual(&c, job),
            expected,
            "a restart from the beginning gives the same results (seed {seed})"
        );
    }
}

#[test]
fn a_job_whose_placement_no_task_manager_matches_waits() {
    let placed = JOB.replace("name = \"w\"\n", "name = \"w\"\nplacement = { tier = \"cloud\" }\n");
    let mut c = cluster(5, &[4]);
    let job = c.submit(&placed, None).unwrap();
    c.run_until(100_000, |_| false);
    let status = c.job(job).unwrap().status;
    assert_eq!(status.state, JobState::Created, "still waiting for slots on a cloud TaskManager");
}

#[test]
fn placement_puts_each_chain_on_task_managers_with_its_labels() {
    let placed = JOB
        .replace("name = \"g\"\n", "name = \"g\"\nplacement = { tier = \"edge\" }\n")
        .replace("name = \"w\"\n", "name = \"w\"\nplacement = { tier = \"cloud\" }\n")
        .replace("name = \"out\"\n", "name = \"out\"\nplacement = { tier = \"cloud\" }\n");
    let labelled = |tier: &str| TaskManagerSpec {
        slots: 2,
        labels: BTreeMap::from([("tier".to_owned(), tier.to_owned())]),
        connectors: Box::new(BuiltinConnectors),
    };
    let mut c =
        InMemoryCluster::new(9, JobManagerConfig::default(), vec![labelled("edge"), labelled("cloud")]);
    assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2));
    let job = c.submit(&placed, None).unwrap();
    assert_eq!(c.run_job(job, 2_000_000), Some(finished(job)));
    for s in c.job(job).unwrap().status.subtasks {
        let expected_tm = if s.name.starts_with("g") { TaskManagerId(1) } else { TaskManagerId(2) };
        assert_eq!(s.slot.unwrap().task_manager, expected_tm, "{}", s.name);
    }
    assert_eq!(actual(&c, job), expected());
}
