//! The JobManager's durable store on disk: LMDB (heed) in `<data-dir>/jobmanager`.
//!
//! Four databases, keys big-endian so that LMDB's order is numeric order:
//!
//! | database | key | value |
//! |---|---|---|
//! | `jobs` | job id (u64) | the [`JobRecord`] of a running job (postcard, behind a format byte) |
//! | `ended` | job id (u64) | an ended job's final [`JobOverview`] (postcard, behind a format byte) |
//! | `checkpoints` | job id, checkpoint id (u64, u64) | [`CheckpointMeta`] (postcard, behind a format byte) |
//! | `snapshots` | job id, checkpoint id, subtask (u64, u64, u32) | the subtask's snapshot bytes (versioned and checksummed by the core) |
//!
//! A checkpoint is written — metadata, every snapshot, and the deletion of checkpoints beyond the
//! job's `retained` — in one write transaction, committed (and synced) before the JobManager
//! acknowledges it: a crash leaves either all of it or none. So is a job's end: its result is
//! recorded, its record and checkpoints deleted, and the results beyond
//! [`ENDED_JOBS_KEPT_MAX`] (the smallest ids) dropped, in one transaction. Everything read back is checked:
//! a record of another format, a checkpoint with a missing snapshot, bytes that do not decode
//! are errors naming the job and checkpoint.

use std::path::Path;
use std::sync::Arc;

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions};
use rivulet_core::ids::{AttemptId, CheckpointId, JobId};
use rivulet_core::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rivulet_core::jobmanager::job_manager::{EndedJob, JobOverview, JobRecord};
use rivulet_core::time::Instant;
use serde::{Deserialize, Serialize};

use crate::checkpoint_store::{CheckpointStore, ENDED_JOBS_KEPT_MAX};

/// The format byte in front of every record this store writes.
const RECORD_FORMAT: u8 = 1;

/// LMDB's map size: the most the store can hold (address space, not disk, until used).
pub const STORE_BYTES_MAX: usize = 64 << 30;

/// What the `checkpoints` database keeps of a checkpoint besides its snapshots.
#[derive(Serialize, Deserialize)]
pub(crate) struct CheckpointMeta {
    pub attempt: u32,
    pub triggered_at_nanos: u64,
    pub completed_at_nanos: u64,
    pub subtasks: u32,
}

pub struct HeedStore {
    env: Env,
    jobs: Database<Bytes, Bytes>,
    ended: Database<Bytes, Bytes>,
    checkpoints: Database<Bytes, Bytes>,
    snapshots: Database<Bytes, Bytes>,
}

fn err(what: &str) -> impl Fn(heed::Error) -> String + '_ {
    move |e| format!("the JobManager store: {what}: {e}")
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT];
    out.extend(postcard::to_stdvec(value).expect("records always encode"));
    out
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, String> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT, body)) => postcard::from_bytes(body)
            .map_err(|e| format!("the JobManager store: {what} does not decode: {e}")),
        Some((format, _)) => {
            Err(format!("the JobManager store: {what} has format {format}, this build reads {RECORD_FORMAT}"))
        }
        None => Err(format!("the JobManager store: {what} is empty")),
    }
}

fn job_key(job: JobId) -> [u8; 8] {
    job.0.to_be_bytes()
}

fn checkpoint_key(job: JobId, checkpoint: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&job.0.to_be_bytes());
    k[8..].copy_from_slice(&checkpoint.to_be_bytes());
    k
}

fn snapshot_key(job: JobId, checkpoint: u64, subtask: u32) -> [u8; 20] {
    let mut k = [0; 20];
    k[..16].copy_from_slice(&checkpoint_key(job, checkpoint));
    k[16..].copy_from_slice(&subtask.to_be_bytes());
    k
}

impl HeedStore {
    /// Opens (creating if missing) the store in `<data_dir>/jobmanager`.
    pub fn open(data_dir: &Path) -> Result<HeedStore, String> {
        let dir = data_dir.join("jobmanager");
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut options = EnvOpenOptions::new();
        options.map_size(STORE_BYTES_MAX);
        options.max_dbs(4);
        // SAFETY: LMDB requires that an environment is not opened twice in one process and that
        // its files are not changed under it: the data directory is locked by this process
        // (`DataDir`) and the node opens the store once.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(&dir) }
            .map_err(|e| format!("cannot open the store in {}: {e}", dir.display()))?;
        let mut wtxn = env.write_txn().map_err(err("opening"))?;
        let jobs = env.create_database(&mut wtxn, Some("jobs")).map_err(err("opening jobs"))?;
        let ended = env.create_database(&mut wtxn, Some("ended")).map_err(err("opening ended"))?;
        let checkpoints =
            env.create_database(&mut wtxn, Some("checkpoints")).map_err(err("opening checkpoints"))?;
        let snapshots =
            env.create_database(&mut wtxn, Some("snapshots")).map_err(err("opening snapshots"))?;
        wtxn.commit().map_err(err("opening"))?;
        Ok(HeedStore { env, jobs, ended, checkpoints, snapshots })
    }

    /// The ids of the job's checkpoints, ascending.
    fn checkpoint_ids(&self, txn: &heed::RoTxn<'_>, job: JobId) -> Result<Vec<u64>, String> {
        let mut ids = Vec::new();
        for entry in self.checkpoints.prefix_iter(txn, &job_key(job)).map_err(err("listing checkpoints"))? {
            let (key, _) = entry.map_err(err("listing checkpoints"))?;
            let id: [u8; 8] = key
                .get(8..16)
                .and_then(|k| k.try_into().ok())
                .ok_or("the JobManager store: a malformed checkpoint key")?;
            ids.push(u64::from_be_bytes(id));
        }
        Ok(ids)
    }

    fn delete_checkpoint(&self, wtxn: &mut heed::RwTxn<'_>, job: JobId, id: u64) -> Result<(), String> {
        self.checkpoints.delete(wtxn, &checkpoint_key(job, id)).map_err(err("deleting a checkpoint"))?;
        let prefix = checkpoint_key(job, id);
        let mut keys = Vec::new();
        for entry in self.snapshots.prefix_iter(wtxn, &prefix).map_err(err("deleting snapshots"))? {
            keys.push(entry.map_err(err("deleting snapshots"))?.0.to_vec());
        }
        for key in keys {
            self.snapshots.delete(wtxn, &key).map_err(err("deleting snapshots"))?;
        }
        Ok(())
    }
}

impl CheckpointStore for HeedStore {
    fn persist(
        &mut self,
        job: JobId,
        checkpoint: &Arc<CompletedCheckpoint>,
        retained: u16,
    ) -> Result<(), String> {
        let mut wtxn = self.env.write_txn().map_err(err("writing a checkpoint"))?;
        let id = checkpoint.id.0;
        let meta = CheckpointMeta {
            attempt: checkpoint.attempt.0,
            triggered_at_nanos: checkpoint.triggered_at.as_nanos(),
            completed_at_nanos: checkpoint.completed_at.as_nanos(),
            subtasks: u32::try_from(checkpoint.snapshots.len()).map_err(|_| "too many subtasks")?,
        };
        self.checkpoints
            .put(&mut wtxn, &checkpoint_key(job, id), &encode(&meta))
            .map_err(err("writing a checkpoint"))?;
        for (subtask, bytes) in checkpoint.snapshots.iter().enumerate() {
            let key = snapshot_key(job, id, subtask as u32);
            self.snapshots.put(&mut wtxn, &key, bytes).map_err(err("writing a snapshot"))?;
        }
        let ids = self.checkpoint_ids(&wtxn, job)?;
        let excess = ids.len().saturating_sub(usize::from(retained.max(1)));
        for &old in &ids[..excess] {
            self.delete_checkpoint(&mut wtxn, job, old)?;
        }
        wtxn.commit().map_err(err("committing a checkpoint"))
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<Arc<CompletedCheckpoint>>, String> {
        let rtxn = self.env.read_txn().map_err(err("reading checkpoints"))?;
        let mut out = Vec::new();
        for id in self.checkpoint_ids(&rtxn, job)? {
            let what = format!("{job} checkpoint {id}");
            let meta =
                self.checkpoints.get(&rtxn, &checkpoint_key(job, id)).map_err(err("reading a checkpoint"))?;
            let meta: CheckpointMeta = decode(meta.ok_or_else(|| format!("{what} vanished"))?, &what)?;
            let mut snapshots = Vec::with_capacity(meta.subtasks as usize);
            for subtask in 0..meta.subtasks {
                let bytes = self
                    .snapshots
                    .get(&rtxn, &snapshot_key(job, id, subtask))
                    .map_err(err("reading a snapshot"))?;
                let bytes = bytes.ok_or_else(|| {
                    format!("the JobManager store: {what} lacks the snapshot of subtask {subtask}")
                })?;
                snapshots.push(bytes.to_vec());
            }
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
        let mut wtxn = self.env.write_txn().map_err(err("writing a job"))?;
        self.jobs.put(&mut wtxn, &job_key(record.job), &encode(record)).map_err(err("writing a job"))?;
        wtxn.commit().map_err(err("committing a job"))
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, String> {
        let rtxn = self.env.read_txn().map_err(err("reading jobs"))?;
        let mut out = Vec::new();
        for entry in self.jobs.iter(&rtxn).map_err(err("reading jobs"))? {
            let (key, value) = entry.map_err(err("reading jobs"))?;
            let record: JobRecord = decode(value, &format!("the job record {key:02x?}"))?;
            out.push(record);
        }
        Ok(out)
    }

    fn remove_job(&mut self, job: JobId) -> Result<(), String> {
        let mut wtxn = self.env.write_txn().map_err(err("removing a job"))?;
        self.forget(&mut wtxn, job)?;
        wtxn.commit().map_err(err("removing a job"))
    }

    fn end_job(&mut self, ended: &JobOverview) -> Result<(), String> {
        let job = ended.status.job;
        let mut wtxn = self.env.write_txn().map_err(err("ending a job"))?;
        self.ended.put(&mut wtxn, &job_key(job), &encode(ended)).map_err(err("recording an ended job"))?;
        let kept = self.ended.len(&wtxn).map_err(err("counting ended jobs"))?;
        for _ in ENDED_JOBS_KEPT_MAX as u64..kept {
            let oldest = self.ended.first(&wtxn).map_err(err("finding the oldest ended job"))?;
            let Some((key, _)) = oldest else { break };
            let key = key.to_vec();
            self.ended.delete(&mut wtxn, &key).map_err(err("dropping the oldest ended job"))?;
        }
        self.forget(&mut wtxn, job)?;
        wtxn.commit().map_err(err("ending a job"))
    }

    fn ended_jobs(&self) -> Result<Vec<EndedJob>, String> {
        let rtxn = self.env.read_txn().map_err(err("reading ended jobs"))?;
        let mut out = Vec::new();
        for entry in self.ended.iter(&rtxn).map_err(err("reading ended jobs"))? {
            let (key, value) = entry.map_err(err("reading ended jobs"))?;
            let id: [u8; 8] =
                key.try_into().map_err(|_| "the JobManager store: a malformed ended-job key")?;
            let job = JobId(u64::from_be_bytes(id));
            out.push((job, decode(value, &format!("the result of {job}"))));
        }
        Ok(out)
    }
}

impl HeedStore {
    /// Deletes the job's record and checkpoints in `wtxn`.
    fn forget(&self, wtxn: &mut heed::RwTxn<'_>, job: JobId) -> Result<(), String> {
        self.jobs.delete(wtxn, &job_key(job)).map_err(err("removing a job"))?;
        for id in self.checkpoint_ids(wtxn, job)? {
            self.delete_checkpoint(wtxn, job, id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint_store::contract;

    #[test]
    fn jobs_and_their_last_checkpoints_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        contract::jobs_and_their_last_checkpoints_survive_reopening(dir.path(), |d| {
            HeedStore::open(d).unwrap()
        });
    }

    #[test]
    fn ended_jobs_outlive_the_store_and_the_latest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        contract::ended_jobs_outlive_the_store_and_the_latest_are_kept(dir.path(), |d| {
            HeedStore::open(d).unwrap()
        });
    }

    #[test]
    fn an_ended_job_of_another_format_keeps_its_id_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = HeedStore::open(dir.path()).unwrap();
        store.end_job(&contract::ended(3)).unwrap();
        let mut wtxn = store.env.write_txn().unwrap();
        store.ended.put(&mut wtxn, &job_key(JobId(3)), &[7, 1, 2]).unwrap();
        wtxn.commit().unwrap();
        let ended = store.ended_jobs().unwrap();
        assert_eq!(ended.len(), 1);
        let (job, result) = &ended[0];
        assert_eq!(*job, JobId(3));
        let error = result.as_ref().unwrap_err();
        assert!(error.contains("the result of job-3 has format 7"), "{error}");
    }
}
