//! The node's I/O connectors: file sources (CSV, JSON Lines; in [`crate::file_source`]), file
//! sinks that publish one part file per subtask atomically on finish (and, with checkpoints, one
//! per checkpoint by two-phase commit), and stdout. Everything else comes from the core.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rivulet_core::batch::Batch;
use rivulet_core::connectors::{BuiltinConnectors, ConnectorFactory};
use rivulet_core::dataflow::operators::sink::SinkWriter;
use rivulet_core::dataflow::source::SourceReader;
use rivulet_core::formats::{csv_header, encode_batch, TextFormat};
use rivulet_core::graph::{FileFormat, FileSinkConfig, FileSourceConfig, SinkConnector, SourceConnector};
use rivulet_core::ids::{AttemptId, JobId};
use rivulet_core::types::Schema;

pub use crate::file_source::{list_input_files, FileSource};

/// Connectors of the node: files and stdout here, the rest from [`BuiltinConnectors`].
/// One instance serves one job: it holds the part files staged by its file sinks until the job
/// ends ([`ConnectorFactory::end_job`]).
///
/// On a TaskManager, each attempt of a job gets its own instance
/// ([`ConnectorFactory::for_attempt`]) whose staging files carry the job and attempt in their
/// names, so attempts never write each other's files and each attempt's output is published or
/// discarded as a whole.
#[derive(Debug, Default)]
pub struct NodeConnectors {
    staged: Arc<Mutex<Vec<StagedFile>>>,
    /// Part files pre-committed for a checkpoint and not yet committed, by every file sink of
    /// this attempt (those that have finished too).
    pending: Arc<Mutex<Vec<PendingFile>>>,
    /// The job and attempt of an attempt's instance; part of every staging file's name.
    attempt: Option<(JobId, AttemptId)>,
    /// What relative paths in job files resolve against (the working directory if `None`).
    root: Option<PathBuf>,
}

impl NodeConnectors {
    /// Connectors whose relative file paths resolve against `root`.
    pub fn with_root(root: Option<PathBuf>) -> NodeConnectors {
        NodeConnectors { root, ..NodeConnectors::default() }
    }

    fn resolve(&self, path: &str) -> String {
        match &self.root {
            Some(root) if Path::new(path).is_relative() => root.join(path).display().to_string(),
            _ => path.to_owned(),
        }
    }
}

/// A part file pre-committed for checkpoint `checkpoint`: closed, synced, under its pending name,
/// waiting for the checkpoint to complete.
#[derive(Debug, Clone)]
struct PendingFile {
    sink: String,
    index: u16,
    checkpoint: u64,
    pending: PathBuf,
    target: PathBuf,
}

impl PendingFile {
    /// Makes the file visible. Idempotent: a file already committed is left as it is.
    fn commit(&self) -> Result<(), String> {
        match fs::rename(&self.pending, &self.target) {
            Ok(()) => Ok(()),
            Err(_) if !self.pending.exists() && self.target.exists() => Ok(()),
            Err(e) => Err(format!("sink `{}`: cannot commit {}: {e}", self.sink, self.target.display())),
        }
    }
}

/// Commits the pending files up to `checkpoint` that `pick` chooses, and forgets them.
fn commit_pending(
    pending: &Mutex<Vec<PendingFile>>,
    checkpoint: u64,
    pick: impl Fn(&PendingFile) -> bool,
) -> Result<(), String> {
    let mut pending = pending.lock().map_err(|_| "a sink panicked")?;
    let mut first_error = None;
    pending.retain(|file| {
        if file.checkpoint > checkpoint || !pick(file) {
            return true;
        }
        match file.commit() {
            Ok(()) => false,
            Err(e) => {
                first_error.get_or_insert(e);
                true
            }
        }
    });
    first_error.map_or(Ok(()), Err)
}

/// A part file written and synced, waiting for the job to succeed.
#[derive(Debug)]
struct StagedFile {
    sink: String,
    staging: PathBuf,
    target: PathBuf,
}

pub(crate) fn text_format(format: FileFormat) -> TextFormat {
    match format {
        FileFormat::Csv => TextFormat::Csv,
        FileFormat::JsonLines => TextFormat::JsonLines,
    }
}

impl ConnectorFactory for NodeConnectors {
    fn for_attempt(&self, job: JobId, attempt: AttemptId) -> Option<Box<dyn ConnectorFactory + Send>> {
        Some(Box::new(NodeConnectors {
            staged: Arc::default(),
            pending: Arc::default(),
            attempt: Some((job, attempt)),
            root: self.root.clone(),
        }))
    }

    fn commit_checkpoint(&self, checkpoint: rivulet_core::ids::CheckpointId) -> Result<(), String> {
        commit_pending(&self.pending, checkpoint.0, |_| true)
    }

    /// A successful attempt publishes everything it wrote: its pre-committed files too (a
    /// checkpoint still pending when the job finished is aborted, but its output belongs to the
    /// finished job). A failed or cancelled attempt leaves its pre-committed files for the attempt
    /// restored after it, which commits those of its checkpoint and deletes the rest.
    fn end_job(&self, succeeded: bool) -> Result<(), String> {
        let mut first_error = None;
        if succeeded {
            if let Err(e) = commit_pending(&self.pending, u64::MAX, |_| true) {
                first_error.get_or_insert(e);
            }
        }
        let staged = std::mem::take(&mut *self.staged.lock().map_err(|_| "a sink panicked")?);
        let mut dirs = std::collections::BTreeSet::new();
        for file in staged {
            let result = if succeeded {
                fs::rename(&file.staging, &file.target).map_err(|e| {
                    format!("sink `{}`: cannot publish {}: {e}", file.sink, file.target.display())
                })
            } else {
                fs::remove_file(&file.staging).map_err(|e| {
                    format!("sink `{}`: cannot remove {}: {e}", file.sink, file.staging.display())
                })
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
            if succeeded {
                dirs.insert(file.target.parent().map(Path::to_owned).unwrap_or_default());
            }
        }
        // Staging files that earlier attempts of the job left behind in the same directories (a
        // TaskManager killed before it could discard its own) go with the publication.
        if let Some((job, attempt)) = self.attempt {
            for dir in &dirs {
                remove_superseded_staging(dir, job, attempt);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn source_reader(
        &self,
        connector: &SourceConnector,
        vertex_name: &str,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SourceReader>, String> {
        match connector {
            SourceConnector::File(config) => {
                let config = FileSourceConfig { path: self.resolve(&config.path), ..config.clone() };
                Ok(Box::new(FileSource::new(vertex_name, config, subtask_index, parallelism)?))
            }
            other => BuiltinConnectors.source_reader(other, vertex_name, subtask_index, parallelism),
        }
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
            SinkConnector::Stdout { format } => Ok(Box::new(StdoutSink::new(input_schema.clone(), *format))),
            SinkConnector::File(config) => Ok(Box::new(FileSink::new(
                vertex_name,
                &FileSinkConfig { path: self.resolve(&config.path), ..config.clone() },
                input_schema.clone(),
                subtask_index,
                self.attempt,
                self.staged.clone(),
                self.pending.clone(),
            )?)),
            other => {
                BuiltinConnectors.sink_writer(other, vertex_name, input_schema, subtask_index, parallelism)
            }
        }
    }
}

/// Removes `dir`'s staging files of `job`'s attempts before `attempt`
/// (`.part-<i>.<ext>.job-<j>.attempt-<a>.inprogress`). Best effort: what cannot be listed or
/// removed stays, hidden by its leading dot.
fn remove_superseded_staging(dir: &Path, job: JobId, attempt: AttemptId) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let infix = format!(".{job}.attempt-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(".part-").and_then(|r| r.strip_suffix(".inprogress")) else {
            continue;
        };
        let Some((_, number)) = rest.rsplit_once(&infix) else { continue };
        if number.parse::<u32>().is_ok_and(|a| a < attempt.0) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes a subtask's records to `<dir>/.part-<i>.<ext>.inprogress`. At the end of its input the
/// file is synced and staged; it is renamed to `part-<i>.<ext>` only when the whole job has
/// succeeded, so readers never see partial output and a failed job publishes none.
///
/// With checkpoints the sink is transactional: at checkpoint n it closes and syncs the file
/// written since the previous checkpoint (if it holds any record), renames it to its pending name
/// `.part-<i>-<n>.<ext>.<job>.pending`, and starts a new one; when checkpoint n completes, the
/// pending files up to n are renamed to `part-<i>-<n>.<ext>`. A sink restored from checkpoint n
/// commits the pending files its handle names and deletes this subtask's pending files of later
/// checkpoints, whose records the restored job writes again.
pub struct FileSink {
    name: String,
    schema: Schema,
    format: TextFormat,
    config: FileSinkConfig,
    index: u16,
    job: String,
    staging: PathBuf,
    target: PathBuf,
    writer: Option<BufWriter<File>>,
    /// Records written to the current file.
    rows: u64,
    text: String,
    staged: Arc<Mutex<Vec<StagedFile>>>,
    pending: Arc<Mutex<Vec<PendingFile>>>,
}

/// What a file sink's checkpoint records: the checkpoint, the checkpoints whose pending part
/// files were not committed yet when it was taken, and the job whose name those files carry (a
/// job resumed from a savepoint is another job than the one that wrote them).
#[derive(serde::Serialize, serde::Deserialize)]
struct FileSinkHandle {
    checkpoint: u64,
    pending: Vec<u64>,
    job: String,
}

impl FileSink {
    fn new(
        name: &str,
        config: &FileSinkConfig,
        schema: Schema,
        index: u16,
        attempt: Option<(JobId, AttemptId)>,
        staged: Arc<Mutex<Vec<StagedFile>>>,
        pending: Arc<Mutex<Vec<PendingFile>>>,
    ) -> Result<FileSink, String> {
        let dir = Path::new(&config.path);
        fs::create_dir_all(dir)
            .map_err(|e| format!("sink `{name}`: cannot create {}: {e}", dir.display()))?;
        let ext = config.format.name();
        let staging = match attempt {
            Some((job, attempt)) => dir.join(format!(".part-{index}.{ext}.{job}.{attempt}.inprogress")),
            None => dir.join(format!(".part-{index}.{ext}.inprogress")),
        };
        let target = dir.join(format!("part-{index}.{ext}"));
        let mut sink = FileSink {
            name: name.to_owned(),
            format: text_format(config.format),
            schema,
            config: config.clone(),
            index,
            job: attempt.map_or_else(|| "local".to_owned(), |(job, _)| job.to_string()),
            staging,
            target,
            writer: None,
            rows: 0,
            text: String::new(),
            staged,
            pending,
        };
        sink.open()?;
        Ok(sink)
    }

    /// Starts a new file at the staging path.
    fn open(&mut self) -> Result<(), String> {
        let name = &self.name;
        let file = File::create(&self.staging)
            .map_err(|e| format!("sink `{name}`: cannot create {}: {e}", self.staging.display()))?;
        let mut writer = BufWriter::with_capacity(256 * 1024, file);
        if self.config.format == FileFormat::Csv && self.config.header {
            writer
                .write_all(csv_header(&self.schema).as_bytes())
                .map_err(|e| format!("sink `{name}`: {e}"))?;
        }
        self.writer = Some(writer);
        self.rows = 0;
        Ok(())
    }

    /// This subtask's pending file of `checkpoint`, as job `job` names it.
    fn pending_file(&self, job: &str, checkpoint: u64) -> PendingFile {
        let (dir, ext, index) = (Path::new(&self.config.path), self.config.format.name(), self.index);
        PendingFile {
            sink: self.name.clone(),
            index,
            checkpoint,
            pending: dir.join(format!(".part-{index}-{checkpoint}.{ext}.{job}.pending")),
            target: dir.join(format!("part-{index}-{checkpoint}.{ext}")),
        }
    }

    /// Deletes this subtask's pending files of job `job` of checkpoints after `checkpoint`.
    fn discard_pending_after(&self, job: &str, checkpoint: u64) {
        let (dir, ext, index) = (Path::new(&self.config.path), self.config.format.name(), self.index);
        let Ok(entries) = fs::read_dir(dir) else { return };
        let prefix = format!(".part-{index}-");
        let suffix = format!(".{ext}.{job}.pending");
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix(&prefix)?.strip_suffix(&suffix)) else {
                continue;
            };
            if id.parse::<u64>().is_ok_and(|id| id > checkpoint) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl SinkWriter for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        self.text.clear();
        encode_batch(self.format, &self.schema, batch, &mut self.text);
        let writer = self.writer.as_mut().ok_or("write after finish")?;
        self.rows += batch.len() as u64;
        writer.write_all(self.text.as_bytes()).map_err(|e| format!("{}: {e}", self.staging.display()))
    }

    fn pre_commit(&mut self, checkpoint: rivulet_core::ids::CheckpointId) -> Result<Vec<u8>, String> {
        if self.rows > 0 {
            let writer = self.writer.take().ok_or("pre-commit after finish")?;
            let file =
                writer.into_inner().map_err(|e| format!("{}: {}", self.staging.display(), e.error()))?;
            file.sync_all().map_err(|e| format!("{}: {e}", self.staging.display()))?;
            let pending = self.pending_file(&self.job, checkpoint.0);
            fs::rename(&self.staging, &pending.pending)
                .map_err(|e| format!("cannot pre-commit {}: {e}", pending.pending.display()))?;
            self.pending.lock().map_err(|_| "a sink panicked")?.push(pending);
            self.open()?;
        }
        let mine: Vec<u64> = (self.pending.lock().map_err(|_| "a sink panicked")?.iter())
            .filter(|p| p.sink == self.name && p.index == self.index)
            .map(|p| p.checkpoint)
            .collect();
        Ok(rivulet_core::state::snapshot::encode_state(&FileSinkHandle {
            checkpoint: checkpoint.0,
            pending: mine,
            job: self.job.clone(),
        }))
    }

    fn commit(&mut self, checkpoint: rivulet_core::ids::CheckpointId) -> Result<(), String> {
        let (name, index) = (self.name.clone(), self.index);
        commit_pending(&self.pending, checkpoint.0, |p| p.sink == name && p.index == index)
    }

    fn restore(&mut self, handle: &[u8]) -> Result<(), String> {
        let handle: FileSinkHandle = rivulet_core::state::snapshot::decode_state(handle, "file sink")?;
        for &checkpoint in &handle.pending {
            self.pending_file(&handle.job, checkpoint).commit()?;
        }
        // Later pending files of the job that wrote the checkpoint (another one, for a job
        // resumed from a savepoint) and of this job's earlier attempts hold records the restored
        // job writes again.
        self.discard_pending_after(&handle.job, handle.checkpoint);
        if handle.job != self.job {
            self.discard_pending_after(&self.job, handle.checkpoint);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        let writer = self.writer.take().ok_or("finished twice")?;
        let file = writer.into_inner().map_err(|e| format!("{}: {}", self.staging.display(), e.error()))?;
        file.sync_all().map_err(|e| format!("{}: {e}", self.staging.display()))?;
        let staged = StagedFile {
            sink: self.name.clone(),
            staging: self.staging.clone(),
            target: self.target.clone(),
        };
        self.staged.lock().map_err(|_| "a sink panicked")?.push(staged);
        Ok(())
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Not finished: the run failed or was abandoned, so its partial output goes away.
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.staging);
        }
    }
}

/// Prints records to stdout, one line each.
pub struct StdoutSink {
    schema: Schema,
    format: TextFormat,
    text: String,
}

impl StdoutSink {
    pub fn new(schema: Schema, format: FileFormat) -> StdoutSink {
        StdoutSink { schema, format: text_format(format), text: String::new() }
    }
}

impl SinkWriter for StdoutSink {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        self.text.clear();
        encode_batch(self.format, &self.schema, batch, &mut self.text);
        std::io::stdout().lock().write_all(self.text.as_bytes()).map_err(|e| format!("stdout: {e}"))
    }

    fn finish(&mut self) -> Result<(), String> {
        std::io::stdout().flush().map_err(|e| format!("stdout: {e}"))
    }
}

#[cfg(test)]
mod staging_tests {
    use super::*;

    #[test]
    fn publishing_removes_only_the_staging_files_of_the_jobs_earlier_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            ".part-0.csv.job-1.attempt-0.inprogress",
            ".part-1.csv.job-1.attempt-0.inprogress",
            ".part-1.csv.job-1.attempt-2.inprogress",
            ".part-0.csv.job-11.attempt-0.inprogress",
            ".part-0.csv.inprogress",
            "part-0.csv",
        ];
        for name in names {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        remove_superseded_staging(dir.path(), JobId(1), AttemptId(1));
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".part-0.csv.inprogress",
                ".part-0.csv.job-11.attempt-0.inprogress",
                ".part-1.csv.job-1.attempt-2.inprogress",
                "part-0.csv"
            ]
        );
    }
}
