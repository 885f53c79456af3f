//! `rivulet run`'s embedded mini-cluster: a JobManager and TaskManagers inside this process,
//! connected by in-memory channels instead of TCP.
//!
//! The roles are the core's own — the same [`JobManager`] and [`TaskManager`] state machines a
//! real cluster runs — so `rivulet run` exercises submission, slot allocation, deployment,
//! credit-based data exchange between TaskManagers, the job's end and the sinks' publication
//! exactly as a cluster does. Only the transport differs: messages travel as values, never
//! encoded, so a job on one machine pays nothing for the cluster it runs on.
//!
//! ```text
//!                       ┌──────────── JobManager (calling thread) ◀── to_jm (every TaskManager)
//!   Deploy, JobEnded ◀──┘                 ▲
//!          │                              │ TaskState, Heartbeat, Metrics
//!          ▼                              │
//!   TaskManager 1 (thread) ◀── Data / Credit ──▶ TaskManager 2 (thread) ...
//! ```
//!
//! Each TaskManager owns one thread and as many slots as the job needs divided by the number of
//! TaskManagers, so the ResourceManager's spreading rule puts the subtasks of every chain on
//! different threads. The channels are unbounded queues, but what can be in them is bounded: data
//! messages by the credits of each channel (a sender never sends without credit), control
//! messages by the number of subtasks and heartbeats.
//!
//! Completed checkpoints go to memory, or — with [`RunOptions::data_dir`] — to the same durable
//! stores a JobManager keeps in its `--data-dir`, written and synced before they count.

use crate::checkpoint_store::{CheckpointStore, MemoryStore};
use crate::config::{CheckpointStoreKind, DataDir};
use crate::dir_store::DirStore;
use crate::heed_store::HeedStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{anyhow, bail, Context, Result};
use rivulet_core::dataflow::credit::CreditConfig;
use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::dataflow::plan::ExecutionPlan;
use rivulet_core::graph::{JobGraph, RestartStrategy};
use rivulet_core::ids::{JobId, TaskManagerId};
use rivulet_core::jobmanager::job_manager::{JobManager, JobManagerConfig, Output as JmOutput};
use rivulet_core::jobmanager::job_master::JobState;
use rivulet_core::jobmanager::resource_manager::ResourceManagerConfig;
use rivulet_core::protocol::messages::{DataMessage, ToJobManager, ToTaskManager};
use rivulet_core::taskmanager::{
    AlignedSource, Output as TmOutput, SourceAlignment, TaskManager, TaskManagerConfig,
};
use rivulet_core::time::{EventTime, Instant};

use crate::alignment::SplitAlignment;
use crate::connectors::NodeConnectors;

/// Work units per call of [`TaskManager::run`] before a TaskManager thread looks at its inbox.
const RUN_BUDGET: usize = 64;

/// Heartbeats inside one process: frequent, so live counters stay fresh for the progress line;
/// the timeout only matters if a TaskManager thread stalls, which would be a bug.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

/// The bounds of channels between TaskManager threads: buffers as deep as the input queue of a local channel,
/// because here a credit comes back in a thread hand-off, not a network round trip.
fn local_credits() -> CreditConfig {
    CreditConfig::new(32, 8).expect("valid credit bounds")
}

/// The longest a waiting thread sleeps before it looks again (a bound, not a tick: inputs and
/// timers wake it earlier).
const IDLE_WAIT_MAX: Duration = Duration::from_millis(100);

/// Keeps the splits of every event-time source together across the mini-cluster's threads (see
/// [`SplitAlignment`]): without it, a split that races ahead fills windows that cannot fire yet.
#[derive(Clone, Default)]
struct SharedAlignment(Arc<Mutex<BTreeMap<AlignedSource, Arc<SplitAlignment>>>>);

impl SourceAlignment for SharedAlignment {
    fn may_advance(&self, source: AlignedSource, split: u16, watermark: EventTime) -> bool {
        let splits = {
            // A panic elsewhere cannot leave the map half-updated: entries are only inserted.
            let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            map.entry(source).or_insert_with(|| Arc::new(SplitAlignment::new(source.splits.into()))).clone()
        };
        splits.publish(usize::from(split), watermark);
        splits.may_advance(usize::from(split))
    }
}

/// What a TaskManager thread is told.
enum TmInput {
    FromJobManager(ToTaskManager),
    Data {
        from: TaskManagerId,
        message: DataMessage,
    },
    /// The job has ended and its `JobEnded` was delivered before this: finish and return.
    Shutdown,
}

/// A running job's progress, for the watcher of [`run_on_local_cluster`].
#[derive(Debug)]
pub struct JobProgress<'a> {
    pub started: StdInstant,
    /// Per vertex, in the graph's vertex order: counters summed over the subtasks' latest reports.
    pub metrics: &'a [OperatorMetrics],
}

/// The outcome of a finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub elapsed: Duration,
    /// Per vertex, in the graph's vertex order.
    pub metrics: Vec<OperatorMetrics>,
    /// Attempts that failed and were restarted before the job finished.
    pub failures: u32,
    /// The job's checkpoints, for a job that takes them.
    pub checkpoints: Option<rivulet_core::jobmanager::job_master::CheckpointStatus>,
}

/// How the mini-cluster is laid out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// TaskManagers, one thread each (at least 1).
    pub workers: usize,
    /// Where the JobManager records completed checkpoints: `None` in memory; else a directory,
    /// created if missing and locked for the run, holding the store of that kind (the layout of a
    /// JobManager's `--data-dir`). A checkpoint counts only once it is written and synced there;
    /// the job's checkpoints are deleted when it ends. `rivulet run` never resumes from them.
    pub data_dir: Option<(PathBuf, CheckpointStoreKind)>,
}

impl RunOptions {
    /// `workers` TaskManagers, checkpoints in memory.
    pub fn new(workers: usize) -> RunOptions {
        RunOptions { workers, data_dir: None }
    }
}

/// The checkpoint store of a run, and the lock on its directory (held while the store is open).
fn open_store(options: &RunOptions) -> Result<(Box<dyn CheckpointStore>, Option<DataDir>)> {
    let Some((path, kind)) = &options.data_dir else { return Ok((Box::new(MemoryStore::default()), None)) };
    let dir = DataDir::lock(path)?;
    let store: Box<dyn CheckpointStore> = match kind {
        CheckpointStoreKind::Lmdb => Box::new(HeedStore::open(dir.path()).map_err(|e| anyhow!(e))?),
        CheckpointStoreKind::Dir => Box::new(DirStore::open(dir.path()).map_err(|e| anyhow!(e))?),
    };
    Ok((store, Some(dir)))
}

/// Runs the job file `job_file` (already parsed into `graph` with `parallelism`) on a mini-cluster
/// of `options.workers` TaskManagers, until it ends. Setting `stop` stops the job, draining: its
/// sources end their input and the job finishes normally. `watch` is called on the calling thread
/// about every `tick` while the job runs.
pub fn run_on_local_cluster(
    job_file: &str,
    parallelism: Option<u16>,
    graph: &JobGraph,
    options: &RunOptions,
    stop: Arc<AtomicBool>,
    tick: Duration,
    mut watch: impl FnMut(&JobProgress<'_>),
) -> Result<RunResult> {
    // No more TaskManagers than the widest operator has subtasks: at parallelism 1 a job's chains
    // share one thread and hand batches over in memory, where a second thread would only add
    // thread hand-offs on every batch and credit.
    let widest = graph.vertices().iter().map(|v| usize::from(v.parallelism)).max().unwrap_or(1);
    let workers = options.workers.clamp(1, widest.max(1));
    let subtasks = ExecutionPlan::new(graph).subtasks.len();
    let slots = u16::try_from(subtasks.div_ceil(workers)).context("too many subtasks for one TaskManager")?;
    // Opened before the run's clock starts: its time includes no store set-up.
    let (store, _data_dir) = open_store(options)?;
    let started = StdInstant::now();
    let clock = move || Instant::from_nanos(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));

    let (to_jm, from_tms) = mpsc::channel::<(TaskManagerId, ToJobManager)>();
    let ids: Vec<TaskManagerId> = (1..=workers as u64).map(TaskManagerId).collect();
    let (inboxes, receivers): (BTreeMap<TaskManagerId, Sender<TmInput>>, Vec<Receiver<TmInput>>) = ids
        .iter()
        .map(|&id| {
            let (tx, rx) = mpsc::channel();
            ((id, tx), rx)
        })
        .unzip();

    let alignment = SharedAlignment::default();
    std::thread::scope(|scope| -> Result<RunResult> {
        let mut threads = Vec::new();
        for (&id, inbox) in ids.iter().zip(receivers) {
            let host = TaskManagerThread {
                id,
                inbox,
                to_jm: to_jm.clone(),
                peers: inboxes.clone(),
                alignment: alignment.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("rivulet-tm-{}", id.0))
                .spawn_scoped(scope, move || host.run(slots, clock))
                .context("starting a TaskManager thread")?;
            threads.push(thread);
        }
        drop(to_jm);
        let mut jm = JobManagerHost::new(from_tms, inboxes, clock, store);
        let outcome = jm.run_job(job_file, parallelism, graph, workers, &stop, tick, started, &mut watch);
        // Every TaskManager has its `JobEnded` queued before this, so each publishes or discards
        // its sinks' output first.
        jm.shut_down();
        let mut errors = Vec::new();
        for thread in threads {
            match thread.join() {
                Ok(mut e) => errors.append(&mut e),
                Err(_) => errors.push("a TaskManager thread panicked".to_owned()),
            }
        }
        let metrics = outcome?;
        if let Some(error) = errors.into_iter().next() {
            bail!(error);
        }
        let status = jm.jm.jobs().into_iter().next().map(|o| o.status);
        let failures = status.as_ref().map_or(0, |s| s.failures);
        let checkpoints = status.and_then(|s| s.checkpoints);
        Ok(RunResult { elapsed: started.elapsed(), metrics, failures, checkpoints })
    })
}

/// The JobManager role on the calling thread.
struct JobManagerHost<C> {
    jm: JobManager,
    from_tms: Receiver<(TaskManagerId, ToJobManager)>,
    inboxes: BTreeMap<TaskManagerId, Sender<TmInput>>,
    clock: C,
    ended: Option<(JobId, JobState, Option<String>)>,
    checkpoints: Box<dyn CheckpointStore>,
}

impl<C: Fn() -> Instant> JobManagerHost<C> {
    fn new(
        from_tms: Receiver<(TaskManagerId, ToJobManager)>,
        inboxes: BTreeMap<TaskManagerId, Sender<TmInput>>,
        clock: C,
        checkpoints: Box<dyn CheckpointStore>,
    ) -> Self {
        let config = JobManagerConfig {
            resource_manager: ResourceManagerConfig {
                heartbeat_interval: HEARTBEAT_INTERVAL,
                heartbeat_timeout: HEARTBEAT_TIMEOUT,
                ..ResourceManagerConfig::default()
            },
            // A job run once on one machine fails at its first error, as Flink's mini-cluster
            // does without checkpoints; a job file may still ask for restarts.
            restart_default: RestartStrategy::None,
            ..JobManagerConfig::default()
        };
        JobManagerHost { jm: JobManager::new(config), from_tms, inboxes, clock, ended: None, checkpoints }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_job(
        &mut self,
        job_file: &str,
        parallelism: Option<u16>,
        graph: &JobGraph,
        workers: usize,
        stop: &AtomicBool,
        tick: Duration,
        started: StdInstant,
        watch: &mut impl FnMut(&JobProgress<'_>),
    ) -> Result<Vec<OperatorMetrics>> {
        // Every TaskManager first, so that the slots of the job spread over all of them.
        while self.jm.task_managers().len() < workers {
            self.step(IDLE_WAIT_MAX)?;
        }
        let job = self.jm.submit((self.clock)(), job_file, parallelism).map_err(|e| anyhow!(e))?;
        // Job ids start again in every run: what an earlier run that did not end cleanly left
        // under this id in a durable store goes before this job's first checkpoint.
        self.checkpoints.remove_job(job).map_err(|e| anyhow!(e))?;
        self.route();
        let mut stopping = false;
        let mut next_tick = StdInstant::now() + tick;
        while self.ended.is_none() {
            if !stopping && stop.load(Ordering::Relaxed) {
                stopping = true;
                // Unknown only if it has just ended, which the loop sees next.
                let _ = self.jm.stop((self.clock)(), job);
                self.route();
            }
            let until_tick = next_tick.saturating_duration_since(StdInstant::now());
            self.step(until_tick.min(IDLE_WAIT_MAX))?;
            if StdInstant::now() >= next_tick {
                let overview = self.jm.job(job).map_err(|e| anyhow!(e))?;
                let metrics: Vec<OperatorMetrics> = overview.vertices.iter().map(|(_, m)| *m).collect();
                watch(&JobProgress { started, metrics: &metrics });
                next_tick = StdInstant::now() + tick;
            }
        }
        let (_, state, cause) = self.ended.take().expect("the loop ran until the job ended");
        let overview = self.jm.job(job).map_err(|e| anyhow!(e))?;
        debug_assert_eq!(overview.vertices.len(), graph.vertices().len());
        match state {
            JobState::Finished => Ok(overview.vertices.into_iter().map(|(_, m)| m).collect()),
            _ => Err(anyhow!(cause.unwrap_or_else(|| format!("the job ended {state:?}")))),
        }
    }

    /// Waits up to `wait` for a TaskManager's message or a timer, applies it, and routes outputs.
    fn step(&mut self, wait: Duration) -> Result<()> {
        let now = (self.clock)();
        let wait = match self.jm.poll_timeout() {
            Some(at) => wait.min(at.saturating_duration_since(now)),
            None => wait,
        };
        let message =
            if wait.is_zero() { Err(RecvTimeoutError::Timeout) } else { self.from_tms.recv_timeout(wait) };
        match message {
            Ok((from, message)) => self.jm.handle_task_manager_message((self.clock)(), from, message),
            Err(RecvTimeoutError::Timeout) => self.jm.handle_timeout((self.clock)()),
            Err(RecvTimeoutError::Disconnected) => bail!("every TaskManager thread has stopped"),
        }
        if cfg!(debug_assertions) {
            self.jm.assert_invariants();
        }
        self.route();
        Ok(())
    }

    fn route(&mut self) {
        while let Some(output) = self.jm.poll_output() {
            match output {
                JmOutput::ToTaskManager { tm, message } => self.send(tm, message),
                JmOutput::RefuseRegistration { tm, reason, .. } => {
                    self.send(tm, ToTaskManager::RegistrationRefused { reason })
                }
                JmOutput::TaskManagerDead { tm } => {
                    tracing::error!(%tm, "a TaskManager thread missed its heartbeats");
                }
                // Nothing takes the mini-cluster's jobs over (and its job ids start again in every
                // run): an ended job's record and checkpoints go, and no result is kept.
                JmOutput::PersistJobResult(ended) => {
                    let job = ended.status.job;
                    if let Err(error) = self.checkpoints.remove_job(job) {
                        tracing::warn!(%job, %error, "the ended job's checkpoints could not be deleted");
                    }
                }
                JmOutput::JobEnded { job, state, cause } => self.ended = Some((job, state, cause)),
                JmOutput::PersistCheckpoint { job, checkpoint, retained } => {
                    let result = self.checkpoints.persist(job, &checkpoint, retained);
                    let (now, id) = ((self.clock)(), checkpoint.id);
                    self.jm.handle_checkpoint_persisted(now, job, id, result.map(|()| checkpoint));
                }
                // One process: the job ends with it, nothing takes it over.
                JmOutput::PersistJob(_) => {}
                JmOutput::WriteSavepoint { job, request, directory, file_name, bytes } => {
                    let written =
                        crate::savepoint_file::write_savepoint(Path::new(&directory), &file_name, &bytes);
                    self.jm.handle_savepoint_written((self.clock)(), job, request, written);
                }
                JmOutput::CheckpointAborted { job, checkpoint, reason } => {
                    tracing::info!(%job, %checkpoint, %reason, "checkpoint aborted");
                }
            }
        }
    }

    fn send(&self, tm: TaskManagerId, message: ToTaskManager) {
        if let Some(inbox) = self.inboxes.get(&tm) {
            // A TaskManager thread that has gone is reported when it is joined.
            let _ = inbox.send(TmInput::FromJobManager(message));
        }
    }

    fn shut_down(&mut self) {
        for inbox in self.inboxes.values() {
            let _ = inbox.send(TmInput::Shutdown);
        }
    }
}

/// One TaskManager role on its own thread.
struct TaskManagerThread {
    id: TaskManagerId,
    inbox: Receiver<TmInput>,
    to_jm: Sender<(TaskManagerId, ToJobManager)>,
    peers: BTreeMap<TaskManagerId, Sender<TmInput>>,
    alignment: SharedAlignment,
}

impl TaskManagerThread {
    /// Runs until shut down; the errors its sinks met publishing or discarding output.
    fn run(self, slots: u16, clock: impl Fn() -> Instant) -> Vec<String> {
        let config = TaskManagerConfig {
            id: self.id,
            data_address: format!("local-{}", self.id.0),
            slots,
            labels: BTreeMap::new(),
            heartbeat_interval: HEARTBEAT_INTERVAL,
            credits: local_credits(),
        };
        let mut tm = TaskManager::new(config, Box::new(NodeConnectors::default()));
        tm.set_source_alignment(Box::new(self.alignment.clone()));
        let mut errors = Vec::new();
        tm.handle_job_manager_connected(clock());
        self.route(&mut tm, &mut errors);
        loop {
            // Everything that has arrived, then a round of work.
            let mut shutdown = false;
            while let Ok(input) = self.inbox.try_recv() {
                shutdown |= self.apply(&mut tm, clock(), input);
            }
            if shutdown {
                self.route(&mut tm, &mut errors);
                return errors;
            }
            let now = clock();
            if tm.poll_timeout().is_some_and(|at| at <= now) {
                tm.handle_timeout(now);
            }
            let worked = tm.run(now, RUN_BUDGET);
            if cfg!(debug_assertions) {
                tm.assert_invariants();
            }
            if self.route(&mut tm, &mut errors) {
                tm.handle_job_manager_connected(clock());
                self.route(&mut tm, &mut errors);
            }
            if worked > 0 {
                continue;
            }
            let wait = tm.poll_timeout().map_or(IDLE_WAIT_MAX, |at| at.saturating_duration_since(clock()));
            match self.inbox.recv_timeout(wait.min(IDLE_WAIT_MAX)) {
                Ok(input) => {
                    if self.apply(&mut tm, clock(), input) {
                        self.route(&mut tm, &mut errors);
                        return errors;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The JobManager side has gone without a shutdown: it failed; stop too.
                Err(RecvTimeoutError::Disconnected) => return errors,
            }
        }
    }

    /// Applies one input; whether it was the shutdown.
    fn apply(&self, tm: &mut TaskManager, now: Instant, input: TmInput) -> bool {
        match input {
            TmInput::FromJobManager(message) => tm.handle_job_manager_message(now, message),
            TmInput::Data { from, message } => tm.handle_data_message(now, from, message),
            TmInput::Shutdown => return true,
        }
        false
    }

    /// Moves the TaskManager's outputs on; whether it found the JobManager silent.
    fn route(&self, tm: &mut TaskManager, errors: &mut Vec<String>) -> bool {
        let mut silent = false;
        while let Some(output) = tm.poll_output() {
            match output {
                TmOutput::ToJobManager(message) => {
                    let _ = self.to_jm.send((self.id, message));
                }
                TmOutput::ToTaskManager { to, message, .. } => {
                    if let Some(peer) = self.peers.get(&to) {
                        let _ = peer.send(TmInput::Data { from: self.id, message });
                    }
                }
                // Never here: the JobManager answers every heartbeat over channels that cannot
                // go silent. Registering again is what a reconnection would do.
                TmOutput::JobManagerSilent => {
                    tracing::error!(tm = %self.id, "the in-process JobManager went silent; registering again");
                    silent = true;
                }
                TmOutput::EndJobFailed { job, attempt, published, error } => {
                    let what = if published { "publish" } else { "discard" };
                    errors.push(format!("{job} {attempt}: cannot {what} the sinks' output: {error}"));
                }
            }
        }
        silent
    }
}
