//! Where a JobManager records completed checkpoints: durably before sinks may commit them.
//!
//! The role says *what* to record ([`Output::PersistCheckpoint`]); the store does it and the
//! driver acknowledges with [`JobManager::handle_checkpoint_persisted`] only after the store said
//! it is done. Two stores: [`MemoryStore`] (the embedded mini-cluster, tests, and the simulator,
//! which keeps one outside a JobManager host so that it survives the host's crash) and the heed
//! (LMDB) store of a JobManager's `--data-dir`.
//!
//! [`Output::PersistCheckpoint`]: rivulet_core::jobmanager::job_manager::Output::PersistCheckpoint
//! [`JobManager::handle_checkpoint_persisted`]: rivulet_core::jobmanager::job_manager::JobManager::handle_checkpoint_persisted

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_core::ids::JobId;
use rivulet_core::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rivulet_core::jobmanager::job_manager::{EndedJob, JobOverview, JobRecord, RecoverableJob};
use rivulet_core::limits::FINISHED_JOBS_MAX;

/// Ended jobs a store keeps the result of: the latest (largest ids), as many as a JobManager's
/// history holds.
pub const ENDED_JOBS_KEPT_MAX: usize = FINISHED_JOBS_MAX;

/// A durable record of completed checkpoints, per job.
pub trait CheckpointStore: Send {
    /// Records `checkpoint` of `job`, then deletes all but the job's last `retained`.
    fn persist(
        &mut self,
        job: JobId,
        checkpoint: &Arc<CompletedCheckpoint>,
        retained: u16,
    ) -> Result<(), String>;

    /// The job's completed checkpoints, oldest first.
    fn checkpoints(&self, job: JobId) -> Result<Vec<Arc<CompletedCheckpoint>>, String>;

    /// Records a running job (replacing its previous record).
    fn put_job(&mut self, record: &JobRecord) -> Result<(), String>;

    /// Every running job recorded, in id order.
    fn jobs(&self) -> Result<Vec<JobRecord>, String>;

    /// Forgets the job's record and checkpoints (what an earlier run left under a reused id).
    fn remove_job(&mut self, job: JobId) -> Result<(), String>;

    /// The job ended: records its final overview, and forgets its record and checkpoints, durably
    /// before it returns. A crash leaves the job either running or ended (possibly with its
    /// record still there, which [`CheckpointStore::recoverable`] then ignores). Keeps the
    /// results of the last [`ENDED_JOBS_KEPT_MAX`] jobs (the largest ids).
    fn end_job(&mut self, ended: &JobOverview) -> Result<(), String>;

    /// The ended jobs recorded, in id order; one whose record cannot be read comes with why.
    fn ended_jobs(&self) -> Result<Vec<EndedJob>, String>;

    /// How long the next checkpoint's durable write takes before it is made, in the driver's
    /// time. The stores here write synchronously (zero); the simulator's store returns a delay,
    /// so that a slow disk takes simulated time without blocking the JobManager's task — and a
    /// crash during the delay loses the write, as it would an unsynced one.
    fn persist_delay(&mut self) -> Duration {
        Duration::ZERO
    }

    /// Every running job recorded with its latest completed checkpoint, and the ended jobs:
    /// what a JobManager starting on this store takes over. A job recorded as ended is not
    /// running, whatever else is left of it.
    fn recoverable(&self) -> Result<(Vec<RecoverableJob>, Vec<EndedJob>), String> {
        let ended = self.ended_jobs()?;
        let mut out = Vec::new();
        for record in self.jobs()? {
            if ended.iter().any(|(job, _)| *job == record.job) {
                continue;
            }
            let latest = self.checkpoints(record.job)?.pop();
            out.push((record, latest));
        }
        Ok((out, ended))
    }
}

/// A store shared between the driver and whoever must see it outlive the driver.
#[derive(Clone)]
pub struct SharedStore(pub Arc<Mutex<dyn CheckpointStore>>);

impl SharedStore {
    pub fn memory() -> SharedStore {
        SharedStore::new(MemoryStore::default())
    }

    pub fn new(store: impl CheckpointStore + 'static) -> SharedStore {
        SharedStore(Arc::new(Mutex::new(store)))
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, dyn CheckpointStore + 'static> {
        // A panic while holding the lock leaves the store as it was after the last complete call.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedStore")
    }
}

/// Checkpoints in memory.
#[derive(Default)]
pub struct MemoryStore {
    jobs: BTreeMap<JobId, VecDeque<Arc<CompletedCheckpoint>>>,
    records: BTreeMap<JobId, JobRecord>,
    ended: BTreeMap<JobId, JobOverview>,
}

impl CheckpointStore for MemoryStore {
    fn persist(
        &mut self,
        job: JobId,
        checkpoint: &Arc<CompletedCheckpoint>,
        retained: u16,
    ) -> Result<(), String> {
        let kept = self.jobs.entry(job).or_default();
        kept.push_back(Arc::clone(checkpoint));
        while kept.len() > usize::from(retained.max(1)) {
            kept.pop_front();
        }
        Ok(())
    }

    fn checkpoints(&self, job: JobId) -> Result<Vec<Arc<CompletedCheckpoint>>, String> {
        Ok(self.jobs.get(&job).map(|k| k.iter().cloned().collect()).unwrap_or_default())
    }

    fn put_job(&mut self, record: &JobRecord) -> Result<(), String> {
        self.records.insert(record.job, record.clone());
        Ok(())
    }

    fn jobs(&self) -> Result<Vec<JobRecord>, String> {
        Ok(self.records.values().cloned().collect())
    }

    fn remove_job(&mut self, job: JobId) -> Result<(), String> {
        self.jobs.remove(&job);
        self.records.remove(&job);
        Ok(())
    }

    fn end_job(&mut self, ended: &JobOverview) -> Result<(), String> {
        let job = ended.status.job;
        self.ended.insert(job, ended.clone());
        while self.ended.len() > ENDED_JOBS_KEPT_MAX {
            self.ended.pop_first();
        }
        self.remove_job(job)
    }

    fn ended_jobs(&self) -> Result<Vec<EndedJob>, String> {
        Ok(self.ended.iter().map(|(&job, o)| (job, Ok(o.clone()))).collect())
    }
}

/// What every durable store must do, as tests the stores run against themselves.
#[cfg(test)]
pub(crate) mod contract {
    use std::path::Path;

    use rivulet_core::ids::{AttemptId, CheckpointId};
    use rivulet_core::time::Instant;

    use super::*;

    /// Checkpoint `id` of `subtasks` subtasks with distinct snapshot bytes.
    pub fn checkpoint(id: u64, subtasks: usize) -> Arc<CompletedCheckpoint> {
        Arc::new(CompletedCheckpoint {
            id: CheckpointId(id),
            attempt: AttemptId(2),
            triggered_at: Instant::from_nanos(10 * id),
            completed_at: Instant::from_nanos(10 * id + 5),
            snapshots: (0..subtasks).map(|s| vec![s as u8; 3 + s]).collect(),
        })
    }

    /// A job's record and its last `retained` checkpoints, whole, outlive the store being closed
    /// and opened again on `dir`; removing a job leaves the other jobs' checkpoints.
    pub fn jobs_and_their_last_checkpoints_survive_reopening<S: CheckpointStore>(
        dir: &Path,
        open: impl Fn(&Path) -> S,
    ) {
        let (job, other) = (JobId(4), JobId(5));
        let record = JobRecord {
            job,
            job_file: "[job]\n".into(),
            parallelism: Some(2),
            attempt: AttemptId(3),
            failures: 3,
        };
        {
            let mut store = open(dir);
            store.put_job(&record).unwrap();
            for id in 1..=4 {
                store.persist(job, &checkpoint(id, 3), 2).unwrap();
            }
            store.persist(other, &checkpoint(9, 1), 2).unwrap();
        }
        let mut store = open(dir);
        assert_eq!(store.jobs().unwrap(), vec![record.clone()]);
        assert_eq!(
            store.checkpoints(job).unwrap(),
            vec![checkpoint(3, 3), checkpoint(4, 3)],
            "the last two, whole"
        );
        assert_eq!(store.recoverable().unwrap(), (vec![(record, Some(checkpoint(4, 3)))], vec![]));
        store.remove_job(job).unwrap();
        assert!(store.jobs().unwrap().is_empty() && store.checkpoints(job).unwrap().is_empty());
        assert_eq!(store.checkpoints(other).unwrap(), vec![checkpoint(9, 1)], "another job's stay");
    }

    /// A job's final overview, as the JobManager gives it for a canceled job, under id `job`.
    pub fn ended(job: u64) -> JobOverview {
        use rivulet_core::jobmanager::job_manager::{JobManager, JobManagerConfig};
        let text = "[job]\nname = \"e\"\n[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = 1\n\
                    [[sink]]\ntype = \"count\"\ninput = \"g\"\n";
        let mut jm = JobManager::new(JobManagerConfig::default());
        let id = jm.submit(Instant::ZERO, text, None).unwrap();
        jm.cancel(Instant::from_nanos(7), id).unwrap();
        let mut overview = jm.job(id).unwrap();
        overview.status.job = JobId(job);
        overview
    }

    /// Ending a job records its overview and forgets its record and checkpoints, for good; only
    /// the results of the last `ENDED_JOBS_KEPT_MAX` jobs are kept.
    pub fn ended_jobs_outlive_the_store_and_the_latest_are_kept<S: CheckpointStore>(
        dir: &Path,
        open: impl Fn(&Path) -> S,
    ) {
        let job = JobId(4);
        let record = JobRecord {
            job,
            job_file: "[job]\n".into(),
            parallelism: None,
            attempt: AttemptId(1),
            failures: 1,
        };
        {
            let mut store = open(dir);
            store.put_job(&record).unwrap();
            store.persist(job, &checkpoint(1, 2), 2).unwrap();
            store.end_job(&ended(4)).unwrap();
        }
        let mut store = open(dir);
        assert!(store.jobs().unwrap().is_empty() && store.checkpoints(job).unwrap().is_empty());
        assert_eq!(store.ended_jobs().unwrap(), vec![(job, Ok(ended(4)))]);
        assert_eq!(store.recoverable().unwrap(), (vec![], vec![(job, Ok(ended(4)))]));
        let last = 4 + ENDED_JOBS_KEPT_MAX as u64;
        for id in 5..=last {
            store.end_job(&ended(id)).unwrap();
        }
        drop(store);
        let store = open(dir);
        let kept: Vec<JobId> = store.ended_jobs().unwrap().into_iter().map(|(job, _)| job).collect();
        let expected: Vec<JobId> = (5..=last).map(JobId).collect();
        assert_eq!(kept, expected, "the latest {ENDED_JOBS_KEPT_MAX}, in id order");
    }
}
