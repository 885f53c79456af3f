//! `rivulet run` with a data directory (`RunOptions::data_dir`): the embedded mini-cluster
//! records a checkpointed job's completed checkpoints in the durable store of the kind asked for,
//! while the job runs, and deletes them when the job ends; a directory another holder has locked
//! is refused before the job starts.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::{file_names, parse, TEST_WORKERS};
use rivulet_core::ids::JobId;
use rivulet_node::checkpoint_store::CheckpointStore;
use rivulet_node::config::{CheckpointStoreKind, DataDir};
use rivulet_node::heed_store::HeedStore;
use rivulet_node::local_cluster::{run_on_local_cluster, RunOptions};

/// About a second of paced input with a checkpoint every 100 ms: several checkpoints a run.
const CHECKPOINTED: &str = r#"
[job]
name = "checkpointed"
parallelism = 2

[job.checkpoints]
interval = "100ms"

[[source]]
name = "g"
type = "generator"
count = 40_000
rate = 40_000
event_time = "ts_ms"

[[operator]]
name = "by_key"
type = "key_by"
input = "g"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "by_key"
window = "tumbling"
size = "1s"
aggregates = { n = "count()" }

[[sink]]
name = "out"
type = "count"
input = "w"
"#;

/// The mini-cluster's first (and only) job.
const JOB: JobId = JobId(1);

/// How often the watcher looks into the data directory while the job runs.
const TICK: Duration = Duration::from_millis(20);

/// Runs [`CHECKPOINTED`] with its checkpoints in `dir`; the completed checkpoints' count and what
/// `look` returned on each tick.
fn run_in<T>(dir: &Path, kind: CheckpointStoreKind, mut look: impl FnMut() -> T) -> (u64, Vec<T>) {
    let job = parse(CHECKPOINTED);
    let options = RunOptions { data_dir: Some((dir.to_owned(), kind)), ..RunOptions::new(TEST_WORKERS) };
    let mut seen = Vec::new();
    let result = run_on_local_cluster(
        &job.text,
        None,
        &job.graph,
        &options,
        Arc::new(AtomicBool::new(false)),
        TICK,
        |_| seen.push(look()),
    )
    .expect("the job finishes");
    // A checkpoint the store could not take fails the attempt (no failures are tolerated), and
    // the job restarts; the one checkpoint in flight when the input runs out is given up, which
    // happens on a busy machine.
    assert_eq!(result.failures, 0, "no attempt failed");
    let checkpoints = result.checkpoints.expect("the job takes checkpoints");
    assert!(checkpoints.counters.aborted <= 1, "only the last checkpoint may be given up: {checkpoints:?}");
    (checkpoints.counters.completed, seen)
}

#[test]
fn the_directory_store_holds_the_checkpoints_while_the_job_runs() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("state");
    let job_dir = data_dir.join("checkpoints").join(JOB.to_string());
    let (completed, seen) = run_in(&data_dir, CheckpointStoreKind::Dir, || {
        std::fs::read_dir(&job_dir).map_or(0, |entries| {
            entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("chk-")).count()
        })
    });
    assert!(completed >= 2, "about ten checkpoints in a second at 100 ms, found {completed}");
    assert!(seen.iter().any(|&n| n > 0), "a checkpoint was on disk while the job ran: {seen:?}");
    assert!(!job_dir.exists(), "the ended job's checkpoints are deleted");
    assert!(file_names(&data_dir).contains(&"checkpoints".to_owned()));
}

#[test]
fn the_lmdb_store_holds_the_checkpoints_and_forgets_them_at_the_end() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("state");
    let (completed, _) = run_in(&data_dir, CheckpointStoreKind::Lmdb, || ());
    assert!(completed >= 2, "about ten checkpoints in a second at 100 ms, found {completed}");
    assert!(data_dir.join("jobmanager").join("data.mdb").exists(), "the LMDB environment is there");
    // The run has released the directory: it can be locked and its store opened again.
    let _held = DataDir::lock(&data_dir).expect("released after the run");
    let store = HeedStore::open(&data_dir).unwrap();
    assert_eq!(store.checkpoints(JOB).unwrap(), vec![], "the ended job's checkpoints are deleted");
    assert_eq!(store.jobs().unwrap(), vec![]);
}

#[test]
fn a_data_directory_in_use_is_refused_before_the_job_starts() {
    let root = tempfile::tempdir().unwrap();
    let _held = DataDir::lock(root.path()).unwrap();
    let job = parse(CHECKPOINTED);
    let options =
        RunOptions { data_dir: Some((root.path().to_owned(), CheckpointStoreKind::Lmdb)), workers: 1 };
    let error = run_on_local_cluster(
        &job.text,
        None,
        &job.graph,
        &options,
        Arc::new(AtomicBool::new(false)),
        TICK,
        |_| {},
    )
    .unwrap_err();
    let expected = format!("the data directory {} is in use by another JobManager", root.path().display());
    assert!(format!("{error:#}").starts_with(&expected), "{error:#}");
}
