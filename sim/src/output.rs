//! The exactly-once checkers of a job's output: what the cluster committed must be exactly what
//! the reference evaluator computes, and nothing may become visible before its checkpoint is
//! complete.
//!
//! The simulated job writes JSON Lines through the production file sink into a directory of its
//! own run ([`OutputDir`]); the reference is the single-process runner on the same job file with
//! its file sink replaced by a collector ([`expected_lines`]). Output is compared as multisets of
//! lines, and a difference names every lost, duplicated and unexpected record.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_core::batch::Batch;
use rivulet_core::connectors::{BuiltinConnectors, ConnectorFactory};
use rivulet_core::dataflow::local::{run_local, VertexMetrics};
use rivulet_core::dataflow::operators::sink::SinkWriter;
use rivulet_core::dataflow::source::SourceReader;
use rivulet_core::formats::{encode_batch, TextFormat};
use rivulet_core::graph::{JobGraph, SinkConnector, SourceConnector};
use rivulet_core::ids::JobId;
use rivulet_core::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rivulet_core::jobmanager::job_manager::{EndedJob, JobOverview, JobRecord};
use rivulet_core::types::Schema;
use rivulet_node::checkpoint_store::{CheckpointStore, MemoryStore};

use crate::rng::{SeedRng, STREAM_STORE_DELAYS};
use crate::scenario::DelayRange;

/// Differences shown per kind in a report.
const SHOWN_MAX: usize = 8;

/// A run's output directory, removed when dropped.
pub struct OutputDir {
    path: PathBuf,
}

impl OutputDir {
    /// A new, empty directory unique to this process and call.
    pub fn new(seed: u64) -> Result<OutputDir, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("rivulet-sim-{}-{seed}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(OutputDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The reference evaluation of `graph`: the counters per vertex and the lines its file sinks
/// write.
pub fn reference(graph: &JobGraph) -> Result<(VertexMetrics, Vec<String>), String> {
    let collector = Collector::default();
    let metrics = run_local(graph, &collector, 0, 4).map_err(|e| format!("run_local: {e}"))?;
    let lines = collector.lines.lock().expect("run_local has returned").clone();
    Ok((metrics, lines))
}

/// The lines of every visible part file in `dir` (committed or published output).
pub fn committed_lines(dir: &Path) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.starts_with("part-")) {
            let text = fs::read_to_string(entry.path()).map_err(|e| format!("cannot read {name:?}: {e}"))?;
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    Ok(lines)
}

/// Checks the committed output against the expected, naming each difference.
pub fn compare(expected: &[String], actual: &[String]) -> Result<(), String> {
    fn count(lines: &[String]) -> BTreeMap<&str, usize> {
        let mut m: BTreeMap<&str, usize> = BTreeMap::new();
        lines.iter().for_each(|l| *m.entry(l.as_str()).or_default() += 1);
        m
    }
    let (want, got) = (count(expected), count(actual));
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    let mut unexpected = Vec::new();
    for (line, &n) in &want {
        match got.get(line).copied().unwrap_or(0) {
            m if m < n => lost.push(format!("{line} (expected {n}, committed {m})")),
            m if m > n => duplicated.push(format!("{line} (expected {n}, committed {m})")),
            _ => {}
        }
    }
    for (line, &m) in &got {
        if !want.contains_key(line) {
            unexpected.push(format!("{line} (committed {m})"));
        }
    }
    if lost.is_empty() && duplicated.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let show = |kind: &str, v: &[String]| {
        if v.is_empty() {
            return String::new();
        }
        let more = v.len().saturating_sub(SHOWN_MAX);
        let tail = if more > 0 { format!(" … and {more} more") } else { String::new() };
        format!("\n    {} {kind}: {}{tail}", v.len(), v[..v.len().min(SHOWN_MAX)].join("; "))
    };
    Err(format!(
        "the committed output is not exactly the expected output ({} lines expected, {} committed):{}{}{}",
        expected.len(),
        actual.len(),
        show("lost", &lost),
        show("duplicated", &duplicated),
        show("unexpected", &unexpected)
    ))
}

/// Checks that every committed checkpoint part (`part-<i>-<n>.<ext>`) belongs to a checkpoint
/// that completed.
pub fn check_commits(dir: &Path, completed: &BTreeSet<u64>) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("part-") else { continue };
        let Some((_, checkpoint)) = rest.split_once('.').and_then(|(stem, _)| stem.split_once('-')) else {
            continue;
        };
        let Ok(checkpoint) = checkpoint.parse::<u64>() else { continue };
        if !completed.contains(&checkpoint) {
            return Err(format!(
                "{name} was committed, but checkpoint {checkpoint} has not completed (completed: {completed:?})"
            ));
        }
    }
    Ok(())
}

/// The reference evaluator's connectors: the core's, with every file sink collecting lines.
#[derive(Default)]
struct Collector {
    lines: Arc<Mutex<Vec<String>>>,
}

struct CollectWriter {
    schema: Schema,
    lines: Arc<Mutex<Vec<String>>>,
    text: String,
}

impl SinkWriter for CollectWriter {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        self.text.clear();
        encode_batch(TextFormat::JsonLines, &self.schema, batch, &mut self.text);
        self.lines.lock().map_err(|_| "poisoned")?.extend(self.text.lines().map(str::to_owned));
        Ok(())
    }
}

impl ConnectorFactory for Collector {
    fn source_reader(
        &self,
        connector: &SourceConnector,
        vertex_name: &str,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SourceReader>, String> {
        BuiltinConnectors.source_reader(connector, vertex_name, subtask_index, parallelism)
    }

    fn sink_writer(
        &self,
        connector: &SinkConnector,
        vertex_name: &str,
        input_schema: &Schema,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SinkWriter>, String> {
        match connector {
            SinkConnector::File(_) => Ok(Box::new(CollectWriter {
                schema: input_schema.clone(),
                lines: self.lines.clone(),
                text: String::new(),
            })),
            other => {
                BuiltinConnectors.sink_writer(other, vertex_name, input_schema, subtask_index, parallelism)
            }
        }
    }
}

/// The JobManager's checkpoint store in a simulation: in memory, outside the JobManager's host
/// (so it survives the host's crash), recording every checkpoint it was asked to persist so
/// that the harness can check ids only grow and commits follow completion.
pub struct RecordingStore {
    inner: MemoryStore,
    pub record: Arc<Mutex<StoreRecord>>,
    /// How long each checkpoint write takes (slow storage), drawn from `rng`.
    delay: Option<DelayRange>,
    rng: SeedRng,
}

/// What a [`RecordingStore`] saw.
#[derive(Debug, Default)]
pub struct StoreRecord {
    /// Every checkpoint persisted, per job, in order.
    pub persisted: BTreeMap<JobId, Vec<u64>>,
    /// The first violation seen (an id that did not grow).
    pub violation: Option<String>,
    /// Jobs that ended (the JobManager recorded their end): a finished job publishes all
    /// its output, so commits are no longer tied to checkpoints.
    pub ended: BTreeSet<JobId>,
}

impl RecordingStore {
    /// A store whose checkpoint writes take `delay` each (none if `None`), drawn from `seed`.
    pub fn new(seed: u64, delay: Option<DelayRange>) -> (RecordingStore, Arc<Mutex<StoreRecord>>) {
        let record = Arc::new(Mutex::new(StoreRecord::default()));
        let rng = SeedRng::new(seed, STREAM_STORE_DELAYS);
        (RecordingStore { inner: MemoryStore::default(), record: record.clone(), delay, rng }, record)
    }
}

impl CheckpointStore for RecordingStore {
    fn persist(
        &mut self,
        job: JobId,
        checkpoint: &Arc<CompletedCheckpoint>,
        retained: u16,
    ) -> Result<(), String> {
        let mut record = self.record.lock().map_err(|_| "poisoned")?;
        let ids = record.persisted.entry(job).or_default();
        let id = checkpoint.id.0;
        let grew = ids.last().is_none_or(|&last| id > last);
        ids.push(id);
        if !grew && record.violation.is_none() {
            record.violation =
                Some(format!("{job}: checkpoint {id} persisted after a checkpoint with a larger id"));
        }
        drop(record);
        self.inner.persist(job, checkpoint, retained)
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<Arc<CompletedCheckpoint>>, String> {
        self.inner.checkpoints(job)
    }

    fn put_job(&mut self, record: &JobRecord) -> Result<(), String> {
        self.inner.put_job(record)
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, String> {
        self.inner.jobs()
    }

    fn remove_job(&mut self, job: JobId) -> Result<(), String> {
        self.inner.remove_job(job)
    }

    fn end_job(&mut self, ended: &JobOverview) -> Result<(), String> {
        self.record.lock().map_err(|_| "poisoned")?.ended.insert(ended.status.job);
        self.inner.end_job(ended)
    }

    fn ended_jobs(&self) -> Result<Vec<EndedJob>, String> {
        self.inner.ended_jobs()
    }

    fn persist_delay(&mut self) -> Duration {
        match self.delay {
            Some(range) => {
                let (low, high) = (range.min.as_millis() as u64, range.max.as_millis() as u64);
                self.rng.millis(low..=high)
            }
            None => Duration::ZERO,
        }
    }
}
