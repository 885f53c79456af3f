//! A checkpointed job reading files resumes from its latest checkpoint after a TaskManager crash
//! with every input record in its output exactly once; on `rivulet run`'s mini-cluster it takes
//! its checkpoints as it reads.
//!
//! The job runs on the core's deterministic in-memory cluster (simulated time, a seeded order of
//! events) with the node's connectors, so the file source and the transactional file sink do
//! real file I/O: the file source's positions are what the restored attempt reads on from, and
//! the sink's two-phase commit keeps the output of the crashed attempt after the checkpoint out.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rivulet_core::connectors::ConnectorFactory;
use rivulet_core::dataflow::local::run_local;
use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::graph::VertexKind;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rivulet_core::jobmanager::job_manager::{self, JobManagerConfig};
use rivulet_core::jobmanager::job_master::JobState;
use rivulet_core::state::snapshot::decode_snapshot;
use rivulet_core::testing::cluster::{InMemoryCluster, TaskManagerSpec};
use rivulet_node::connectors::NodeConnectors;

use common::toml_path;

/// Input files, records per file, and every how many records a malformed line is.
const FILES: u64 = 6;
const RECORDS_PER_FILE: u64 = 30_000;
const BAD_EVERY: u64 = 997;

/// Writes the input: record `id` has `key = id % 10`; a malformed line follows every
/// [`BAD_EVERY`]th record, and the last line of every other file has no newline. Returns the ids.
fn write_input(dir: &Path) -> Vec<i64> {
    write_input_of(dir, RECORDS_PER_FILE)
}

/// [`write_input`] with `records_per_file` records per file.
fn write_input_of(dir: &Path, records_per_file: u64) -> Vec<i64> {
    let mut ids = Vec::new();
    for file in 0..FILES {
        let mut text = String::from("id,key\n");
        for i in 0..records_per_file {
            let id = file * records_per_file + i;
            text.push_str(&format!("{id},{}\n", id % 10));
            ids.push(id as i64);
            if id.is_multiple_of(BAD_EVERY) {
                text.push_str("not a number,1\n");
            }
        }
        if !file.is_multiple_of(2) {
            text.pop();
        }
        std::fs::write(dir.join(format!("part-{file:02}.csv")), text).unwrap();
    }
    ids
}

fn job_text(input: &Path, output: &Path) -> String {
    job_text_every(input, output, "2ms")
}

fn job_text_every(input: &Path, output: &Path, interval: &str) -> String {
    format!(
        r#"
[job]
name = "files-checkpointed"
parallelism = 2

[job.checkpoints]
interval = "{interval}"

[job.restart]
strategy = "fixed-delay"
attempts = 3
delay = "50ms"

[[source]]
name = "lines"
type = "file"
path = {input}
format = "csv"
bad_lines = "skip"

[source.schema]
id = "int"
key = "int"

[[operator]]
name = "by_key"
type = "key_by"
input = "lines"
key = "key"

[[sink]]
name = "files"
type = "file"
input = "by_key"
path = {output}
format = "jsonl"
"#,
        input = toml_path(input),
        output = toml_path(output),
    )
}

fn cluster(seed: u64) -> InMemoryCluster {
    let spec = || TaskManagerSpec {
        slots: 4,
        labels: BTreeMap::new(),
        connectors: Box::new(NodeConnectors::default()) as Box<dyn ConnectorFactory + Send>,
    };
    InMemoryCluster::new(seed, JobManagerConfig::default(), vec![spec(), spec()])
}

/// The read positions of the source subtasks in `checkpoint`, in subtask order.
fn source_positions(checkpoint: &CompletedCheckpoint) -> Vec<Vec<u8>> {
    (checkpoint.snapshots.iter())
        .filter_map(|bytes| decode_snapshot(bytes).expect("a whole snapshot").source)
        .map(|source| source.position)
        .collect()
}

/// The ids in the visible (committed) part files of `dir`, sorted.
fn output_ids(dir: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(record["id"].as_i64().expect("an id"));
        }
    }
    ids.sort_unstable();
    ids
}

#[test]
fn after_a_crash_a_file_source_job_resumes_from_its_checkpoint_with_every_record_once() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut expected_ids = write_input(&input);
    expected_ids.sort_unstable();
    let bad_lines = (0..FILES * RECORDS_PER_FILE).filter(|id| id.is_multiple_of(BAD_EVERY)).count() as u64;

    // The counters of a run without failures, as a checkpointed run must end with them.
    let reference = job_text(&input, &scratch.path().join("reference"));
    let graph = parse_job(&reference, &ParseOptions::default()).unwrap();
    let metrics = run_local(&graph, &NodeConnectors::default(), 7, 4).unwrap();
    let expected: BTreeMap<String, OperatorMetrics> =
        graph.vertices().iter().map(|v| (v.name.clone(), metrics[v.id.index()])).collect();
    assert_eq!(expected["lines"].records_skipped, bad_lines);
    assert_eq!(expected["lines"].records_out, expected_ids.len() as u64);

    // Where each source subtask starts.
    let initial: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let vertex = graph.find("lines").unwrap();
            let VertexKind::Source { connector, .. } = &vertex.kind else { panic!("a source") };
            let reader = NodeConnectors::default().source_reader(connector, "lines", i, 2).unwrap();
            reader.position().unwrap()
        })
        .collect();

    for seed in 0..3 {
        let output = scratch.path().join(format!("out-{seed}"));
        let text = job_text(&input, &output);
        let mut c = cluster(seed);
        assert!(c.run_until(100_000, |c| c.jm.task_managers().len() == 2));
        let job = c.submit(&text, None).unwrap();
        // A checkpoint whose source positions are inside the input, not at its start.
        let inside = |c: &InMemoryCluster| {
            let latest = c.checkpoints.get(&job).and_then(|k| k.back());
            latest.is_some_and(|checkpoint| {
                let positions = source_positions(checkpoint);
                positions.len() == 2 && positions.iter().zip(&initial).all(|(p, i)| p != i)
            })
        };
        assert!(c.run_until(5_000_000, inside), "seed {seed}: a checkpoint inside the input");
        assert_eq!(
            c.job(job).unwrap().status.state,
            JobState::Running,
            "seed {seed}: the crash comes mid-way"
        );
        let victim = c.job(job).unwrap().status.subtasks[0].slot.unwrap().task_manager;
        c.crash(victim);
        let ended = c.run_job(job, 50_000_000);
        assert_eq!(
            ended,
            Some(job_manager::Output::JobEnded { job, state: JobState::Finished, cause: None }),
            "seed {seed}"
        );
        let status = c.job(job).unwrap().status;
        assert!(status.attempt.0 >= 1, "seed {seed}: the job restarted");
        let restored = status.checkpoints.as_ref().and_then(|s| s.restored_from);
        assert!(restored.is_some(), "seed {seed}: the restart restored a checkpoint: {status:?}");
        let actual: BTreeMap<String, OperatorMetrics> = c.job(job).unwrap().vertices.into_iter().collect();
        assert_eq!(actual, expected, "seed {seed}: restored from {restored:?}");
        // The TaskManagers publish the sinks' last part files when the job's end reaches them.
        let published = |_: &InMemoryCluster| (0..2).all(|i| output.join(format!("part-{i}.jsonl")).exists());
        assert!(c.run_until(1_000_000, published), "seed {seed}: the final part files are published");
        let ids = output_ids(&output);
        let distinct = {
            let mut d = ids.clone();
            d.dedup();
            d.len()
        };
        assert!(
            ids == expected_ids,
            "seed {seed}: {} records in the output, {distinct} distinct, {} expected",
            ids.len(),
            expected_ids.len()
        );
    }
}

#[test]
fn on_the_mini_cluster_a_file_source_job_completes_checkpoints_and_writes_every_record_once() {
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Enough input for the job to outlast a few checkpoint intervals on a fast machine.
    let mut expected_ids = write_input_of(&input, 8 * RECORDS_PER_FILE);
    expected_ids.sort_unstable();
    let output = scratch.path().join("out");
    let job = common::parse(&job_text_every(&input, &output, "1ms"));
    let result = common::run(&job).unwrap();
    let checkpoints = result.checkpoints.expect("the job takes checkpoints");
    assert!(checkpoints.counters.completed >= 1, "{checkpoints:?}");
    assert_eq!(output_ids(&output), expected_ids);
    let parts = common::file_names(&output);
    assert!(parts.iter().any(|p| p.starts_with("part-0-") || p.starts_with("part-1-")), "{parts:?}");
}
