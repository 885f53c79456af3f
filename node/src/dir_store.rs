//! The JobManager's durable store as plain files in `<data-dir>/checkpoints` (`--checkpoint-store
//! dir`): for a single machine, where a directory one can list, copy and back up is handier than
//! an LMDB environment.
//!
//! ```text
//! <data-dir>/checkpoints/
//!   job-3.record                 a running job's JobRecord (format byte + postcard)
//!   ended/job-2.result           an ended job's final JobOverview (format byte + postcard)
//!   job-3/chk-00000000000000000012/
//!     meta                       attempt, times, subtask count (format byte + postcard)
//!     subtask-0 … subtask-N      each subtask's snapshot bytes (versioned and checksummed by the core)
//! ```
//!
//! Every write is whole or absent after a crash: a record is written under a hidden temporary
//! name, synced and renamed; a checkpoint is built in a hidden `.chk-<id>.writing` directory, each
//! file synced, then renamed to `chk-<id>` and the job's directory synced — only then is it
//! acknowledged — and the checkpoints beyond `retained` are deleted after. A job's end writes its
//! result first (synced, renamed), then deletes its record and checkpoints: a crash between
//! leaves a job that has a result, which counts as ended. Results beyond `ENDED_JOBS_KEPT_MAX`
//! (the smallest ids) are deleted after. Hidden leftovers of a
//! crash are ignored and removed by the next write. Reading checks everything: a missing snapshot,
//! a record of another format, a name that is not the store's are errors naming the file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rivulet_core::ids::{AttemptId, CheckpointId, JobId};
use rivulet_core::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rivulet_core::jobmanager::job_manager::{EndedJob, JobOverview, JobRecord};
use rivulet_core::time::Instant;

use crate::checkpoint_store::{CheckpointStore, ENDED_JOBS_KEPT_MAX};
use crate::heed_store::{decode, encode, CheckpointMeta};

pub struct DirStore {
    root: PathBuf,
}

fn io(what: String) -> impl Fn(std::io::Error) -> String {
    move |e| format!("the JobManager store: {what}: {e}")
}

/// Writes `bytes` to `path` and syncs the file.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file = File::create(path).map_err(io(format!("cannot create {}", path.display())))?;
    file.write_all(bytes).map_err(io(format!("cannot write {}", path.display())))?;
    file.sync_all().map_err(io(format!("cannot sync {}", path.display())))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("cannot sync {}", dir.display())))
}

impl DirStore {
    /// Opens (creating) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<DirStore, String> {
        let root = data_dir.join("checkpoints");
        fs::create_dir_all(&root).map_err(io(format!("cannot create {}", root.display())))?;
        Ok(DirStore { root })
    }

    fn job_dir(&self, job: JobId) -> PathBuf {
        self.root.join(job.to_string())
    }

    fn ended_dir(&self) -> PathBuf {
        self.root.join("ended")
    }

    /// The ended jobs' ids with their result files, ascending; hidden leftovers are skipped.
    fn ended_files(&self) -> Result<Vec<(JobId, PathBuf)>, String> {
        let dir = self.ended_dir();
        fn number(name: &str) -> Option<&str> {
            name.strip_prefix("job-")?.strip_suffix(".result")
        }
        let ids = numbered_entries(&dir, number, "a job's result")?;
        Ok(ids.into_iter().map(|id| (JobId(id), dir.join(format!("{}.result", JobId(id))))).collect())
    }

    /// The job's checkpoint ids, ascending; hidden leftovers are skipped.
    fn checkpoint_ids(&self, job: JobId) -> Result<Vec<u64>, String> {
        numbered_entries(&self.job_dir(job), |n| n.strip_prefix("chk-"), "a checkpoint")
    }

    /// Removes what a crash left half-written in the job's directory.
    fn remove_leftovers(&self, job: JobId) {
        let Ok(entries) = fs::read_dir(self.job_dir(job)) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The numbers `number` finds in the names of `dir`'s entries, ascending (none if `dir` is
/// missing); hidden leftovers are skipped, and any other name is an error naming it as not `what`.
fn numbered_entries(
    dir: &Path,
    number: impl Fn(&str) -> Option<&str>,
    what: &str,
) -> Result<Vec<u64>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("cannot list {}", dir.display()))(e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry.map_err(io(format!("cannot list {}", dir.display())))?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let id = number(&name).and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| {
            format!("the JobManager store: {} holds {name:?}, which is not {what}", dir.display())
        })?;
        ids.push(id);
    }
    ids.sort_unstable();
    Ok(ids)
}

fn checkpoint_name(id: u64) -> String {
    format!("chk-{id:020}")
}

impl CheckpointStore for DirStore {
    fn persist(
        &mut self,
        job: JobId,
        checkpoint: &Arc<CompletedCheckpoint>,
        retained: u16,
    ) -> Result<(), String> {
        let job_dir = self.job_dir(job);
        let fresh = !job_dir.exists();
        fs::create_dir_all(&job_dir).map_err(io(format!("cannot create {}", job_dir.display())))?;
        if fresh {
            sync_dir(&self.root)?;
        }
        self.remove_leftovers(job);
        let id = checkpoint.id.0;
        let building = job_dir.join(format!(".{}.writing", checkpoint_name(id)));
        fs::create_dir(&building).map_err(io(format!("cannot create {}", building.display())))?;
        let meta = CheckpointMeta {
            attempt: checkpoint.attempt.0,
            triggered_at_nanos: checkpoint.triggered_at.as_nanos(),
            completed_at_nanos: checkpoint.completed_at.as_nanos(),
            subtasks: u32::try_from(checkpoint.snapshots.len()).map_err(|_| "too many subtasks")?,
        };
        write_synced(&building.join("meta"), &encode(&meta))?;
        for (subtask, bytes) in checkpoint.snapshots.iter().enumerate() {
            write_synced(&building.join(format!("subtask-{subtask}")), bytes)?;
        }
        sync_dir(&building)?;
        let target = job_dir.join(checkpoint_name(id));
        fs::rename(&building, &target).map_err(io(format!("cannot rename into {}", target.display())))?;
        sync_dir(&job_dir)?;
        // Durable from here on; the oldest go.
        let ids = self.checkpoint_ids(job)?;
        let excess = ids.len().saturating_sub(usize::from(retained.max(1)));
        for &old in &ids[..excess] {
            let path = job_dir.join(checkpoint_name(old));
            fs::remove_dir_all(&path).map_err(io(format!("cannot delete {}", path.display())))?;
        }
        Ok(())
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<Arc<CompletedCheckpoint>>, String> {
        let mut out = Vec::new();
        for id in self.checkpoint_ids(job)? {
            let dir = self.job_dir(job).join(checkpoint_name(id));
            let what = format!("{job} checkpoint {id}");
            let read = |name: &str| {
                let path = dir.join(name);
                fs::read(&path).map_err(io(format!("{what}: cannot read {}", path.display())))
            };
            let meta: CheckpointMeta = decode(&read("meta")?, &what)?;
            let snapshots =
                (0..meta.subtasks).map(|s| read(&format!("subtask-{s}"))).collect::<Result<Vec<_>, _>>()?;
            out.push(Arc::new(CompletedCheckpoint {
                id: CheckpointId(id),
                attempt: AttemptId(meta.attempt),
                triggered_at: Instant::from_nanos(meta.triggered_at_nanos),
                completed_at: Instant::from_nanos(meta.completed_at_nanos),
                snapshots,
            }));
        }
        Ok(out)
    }

    fn put_job(&mut self, record: &JobRecord) -> Result<(), String> {
        let name = format!("{}.record", record.job);
        let temporary = self.root.join(format!(".{name}.writing"));
        write_synced(&temporary, &encode(record))?;
        let target = self.root.join(&name);
        fs::rename(&temporary, &target).map_err(io(format!("cannot rename into {}", target.display())))?;
        sync_dir(&self.root)
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, String> {
        let entries = fs::read_dir(&self.root).map_err(io(format!("cannot list {}", self.root.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(format!("cannot list {}", self.root.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".record") {
                continue;
            }
            let bytes = fs::read(entry.path()).map_err(io(format!("cannot read {name}")))?;
            out.push(decode::<JobRecord>(&bytes, &format!("the job record {name}"))?);
        }
        out.sort_by_key(|r| r.job);
        Ok(out)
    }

    fn end_job(&mut self, ended: &JobOverview) -> Result<(), String> {
        let job = ended.status.job;
        let dir = self.ended_dir();
        fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let name = format!("{job}.result");
        let temporary = dir.join(format!(".{name}.writing"));
        write_synced(&temporary, &encode(ended))?;
        let target = dir.join(&name);
        fs::rename(&temporary, &target).map_err(io(format!("cannot rename into {}", target.display())))?;
        sync_dir(&dir)?;
        sync_dir(&self.root)?;
        self.remove_job(job)?;
        let files = self.ended_files()?;
        let excess = files.len().saturating_sub(ENDED_JOBS_KEPT_MAX);
        for (_, path) in &files[..excess] {
            fs::remove_file(path).map_err(io(format!("cannot delete {}", path.display())))?;
        }
        if excess > 0 {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    fn ended_jobs(&self) -> Result<Vec<EndedJob>, String> {
        let mut out = Vec::new();
        for (job, path) in self.ended_files()? {
            let what = format!("the result of {job} ({})", path.display());
            let result = fs::read(&path)
                .map_err(io(format!("cannot read {}", path.display())))
                .and_then(|bytes| decode::<JobOverview>(&bytes, &what));
            out.push((job, result));
        }
        Ok(out)
    }

    fn remove_job(&mut self, job: JobId) -> Result<(), String> {
        let record = self.root.join(format!("{job}.record"));
        match fs::remove_file(&record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("cannot delete {}", record.display()))(e)),
        }
        let dir = self.job_dir(job);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("cannot delete {}", dir.display()))(e)),
        }
        sync_dir(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint_store::contract::{self, checkpoint};

    #[test]
    fn jobs_and_their_last_checkpoints_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        contract::jobs_and_their_last_checkpoints_survive_reopening(dir.path(), |d| {
            DirStore::open(d).unwrap()
        });
    }

    #[test]
    fn what_a_crash_leaves_half_written_is_ignored_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let job = JobId(4);
        let mut store = DirStore::open(dir.path()).unwrap();
        for id in 1..=2 {
            store.persist(job, &checkpoint(id, 3), 2).unwrap();
        }
        // A crash in the middle of writing checkpoint 3 and of a record.
        let root = dir.path().join("checkpoints");
        fs::create_dir(root.join("job-4/.chk-00000000000000000003.writing")).unwrap();
        fs::write(root.join(".job-6.record.writing"), b"half").unwrap();
        let mut store = DirStore::open(dir.path()).unwrap();
        assert!(store.jobs().unwrap().is_empty());
        assert_eq!(store.checkpoints(job).unwrap(), vec![checkpoint(1, 3), checkpoint(2, 3)]);
        store.persist(job, &checkpoint(3, 3), 2).unwrap();
        assert_eq!(store.checkpoints(job).unwrap(), vec![checkpoint(2, 3), checkpoint(3, 3)]);
        assert_eq!(fs::read_dir(root.join("job-4")).unwrap().count(), 2, "the leftover is gone");
    }

    #[test]
    fn ended_jobs_outlive_the_store_and_the_latest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        contract::ended_jobs_outlive_the_store_and_the_latest_are_kept(dir.path(), |d| {
            DirStore::open(d).unwrap()
        });
    }

    #[test]
    fn an_end_cut_short_by_a_crash_leaves_the_job_ended_and_damaged_results_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = DirStore::open(dir.path()).unwrap();
        let job = JobId(3);
        let record = JobRecord {
            job,
            job_file: "[job]\n".into(),
            parallelism: None,
            attempt: AttemptId(0),
            failures: 0,
        };
        store.put_job(&record).unwrap();
        store.persist(job, &checkpoint(1, 2), 2).unwrap();
        // The result was written, then the process died before the record went.
        store.end_job(&contract::ended(3)).unwrap();
        store.put_job(&record).unwrap();
        assert_eq!(store.recoverable().unwrap(), (vec![], vec![(job, Ok(contract::ended(3)))]));
        let ended = dir.path().join("checkpoints/ended");
        fs::write(ended.join(".job-9.result.writing"), b"half").unwrap();
        fs::write(ended.join("job-3.result"), [7, 1]).unwrap();
        let results = store.ended_jobs().unwrap();
        assert_eq!(results.len(), 1, "a hidden leftover is no result: {results:?}");
        let error = results[0].1.as_ref().unwrap_err();
        assert!(error.contains("has format 7"), "{error}");
        fs::write(ended.join("notes.txt"), b"").unwrap();
        let error = store.ended_jobs().unwrap_err();
        assert!(error.contains("\"notes.txt\", which is not a job's result"), "{error}");
    }

    #[test]
    fn damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = DirStore::open(dir.path()).unwrap();
        store.persist(JobId(1), &checkpoint(7, 2), 3).unwrap();
        let chk = dir.path().join("checkpoints/job-1/chk-00000000000000000007");
        fs::remove_file(chk.join("subtask-1")).unwrap();
        let error = store.checkpoints(JobId(1)).unwrap_err();
        assert!(error.contains("job-1 checkpoint 7") && error.contains("subtask-1"), "{error}");
        fs::write(chk.join("meta"), [9, 1, 2]).unwrap();
        let error = store.checkpoints(JobId(1)).unwrap_err();
        assert!(error.contains("format 9"), "{error}");
        fs::create_dir(dir.path().join("checkpoints/job-1/stray")).unwrap();
        let error = store.checkpoints(JobId(1)).unwrap_err();
        assert!(error.contains("\"stray\", which is not a checkpoint"), "{error}");
    }
}
