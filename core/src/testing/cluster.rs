//! An in-memory cluster: one [`JobManager`] and several [`TaskManager`]s exchanging the protocol's
//! messages through FIFO queues (one per direction and pair of nodes, as TCP connections would),
//! driven one event at a time in an order drawn from a seed, with simulated time.
//!
//! Every step either delivers one queued message, lets one TaskManager do a little work, or — when
//! nothing else can happen — moves the clock to the next timer. Time also advances by a fixed tick
//! per step, so heartbeats keep flowing while TaskManagers compute. A crashed TaskManager loses its
//! queues and stops; the JobManager notices through missing heartbeats, as in a real cluster.
//! Every delivered message is folded into a trace hash, so two runs of one seed can be compared.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::connectors::ConnectorFactory;
use crate::dataflow::credit::CreditConfig;
use crate::dataflow::local::Rng;
use crate::ids::{JobId, TaskManagerId};
use crate::jobfile::JobFileError;
use crate::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use crate::jobmanager::job_manager::{self, JobManager, JobManagerConfig, JobOverview};
use crate::protocol::messages::{DataMessage, ToJobManager, ToTaskManager};
use crate::taskmanager::{self, TaskManager, TaskManagerConfig};
use crate::time::Instant;

/// Simulated time that passes with every step.
const TICK: Duration = Duration::from_micros(100);

/// Work a TaskManager does when it is chosen.
const RUN_BUDGET: usize = 8;

struct Host {
    tm: TaskManager,
    alive: bool,
    /// `run` made progress last time (or has not run yet).
    busy: bool,
}

/// The cluster under test.
pub struct InMemoryCluster {
    now: Instant,
    rng: Rng,
    pub jm: JobManager,
    hosts: BTreeMap<TaskManagerId, Host>,
    to_jm: BTreeMap<TaskManagerId, VecDeque<ToJobManager>>,
    to_tm: BTreeMap<TaskManagerId, VecDeque<ToTaskManager>>,
    data: BTreeMap<(TaskManagerId, TaskManagerId), VecDeque<DataMessage>>,
    ended: Vec<(JobId, job_manager::Output)>,
    /// Completed checkpoints "durably" recorded, per job: the last `retained` of each.
    pub checkpoints: BTreeMap<JobId, VecDeque<Arc<CompletedCheckpoint>>>,
    /// The job records the JobManager asked to keep.
    pub records: BTreeMap<JobId, job_manager::JobRecord>,
    /// The ended jobs' overviews it recorded.
    pub results: BTreeMap<JobId, job_manager::JobOverview>,
    /// Savepoint files written, by path (`directory/file_name`).
    pub savepoints: BTreeMap<String, Vec<u8>>,
    trace: u64,
    steps: u64,
}

/// How one TaskManager of the cluster starts.
pub struct TaskManagerSpec {
    pub slots: u16,
    pub labels: BTreeMap<String, String>,
    pub connectors: Box<dyn ConnectorFactory + Send>,
}

impl InMemoryCluster {
    pub fn new(seed: u64, config: JobManagerConfig, task_managers: Vec<TaskManagerSpec>) -> InMemoryCluster {
        let mut cluster = InMemoryCluster {
            now: Instant::ZERO,
            rng: Rng::new(seed),
            jm: JobManager::new(config),
            hosts: BTreeMap::new(),
            to_jm: BTreeMap::new(),
            to_tm: BTreeMap::new(),
            data: BTreeMap::new(),
            ended: Vec::new(),
            checkpoints: BTreeMap::new(),
            records: BTreeMap::new(),
            results: BTreeMap::new(),
            savepoints: BTreeMap::new(),
            trace: 0xcbf2_9ce4_8422_2325,
            steps: 0,
        };
        for (i, spec) in task_managers.into_iter().enumerate() {
            let id = TaskManagerId(i as u64 + 1);
            let config = TaskManagerConfig {
                id,
                data_address: format!("tm-{}:6124", id.0),
                slots: spec.slots,
                labels: spec.labels,
                heartbeat_interval: Duration::from_secs(1),
                credits: CreditConfig::default(),
            };
            let mut tm = TaskManager::new(config, spec.connectors);
            tm.handle_job_manager_connected(Instant::ZERO);
            cluster.hosts.insert(id, Host { tm, alive: true, busy: true });
        }
        cluster.collect();
        cluster
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// A hash of every message delivered so far, in order.
    pub fn trace(&self) -> u64 {
        self.trace
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn submit(&mut self, job_file: &str, parallelism: Option<u16>) -> Result<JobId, JobFileError> {
        let job = self.jm.submit(self.now, job_file, parallelism)?;
        self.collect();
        Ok(job)
    }

    /// Submits a job to resume from a savepoint file's bytes.
    pub fn submit_from_savepoint(&mut self, job_file: &str, savepoint: &[u8]) -> Result<JobId, String> {
        let savepoint = crate::state::savepoint::decode_savepoint(savepoint).map_err(|e| e.to_string())?;
        let job = self.jm.submit_from_savepoint(self.now, job_file, None, savepoint)?;
        self.collect();
        Ok(job)
    }

    /// Asks a job for a savepoint into `directory`, stopping it after with `stop`.
    pub fn savepoint(&mut self, job: JobId, directory: &str, stop: bool) -> Result<u64, String> {
        let request =
            self.jm.savepoint(self.now, job, directory.to_owned(), stop).map_err(|e| e.to_string())?;
        self.collect();
        Ok(request)
    }

    /// The status of a job (running or ended).
    pub fn job(&self, job: JobId) -> Option<JobOverview> {
        self.jm.job(job).ok()
    }

    /// How jobs ended, in order.
    pub fn ended(&self) -> &[(JobId, job_manager::Output)] {
        &self.ended
    }

    /// The JobManager crashes and a new one starts on its durable records (jobs, retained
    /// checkpoints and ended jobs, which survive): everything in flight to and from it is lost, every
    /// TaskManager loses its connection and connects to the new one.
    pub fn restart_job_manager(&mut self, config: JobManagerConfig) {
        self.to_jm.clear();
        self.to_tm.clear();
        self.jm = JobManager::new(config);
        let jobs = (self.records.values())
            .map(|r| (r.clone(), self.checkpoints.get(&r.job).and_then(|k| k.back().cloned())))
            .collect();
        let ended = self.results.iter().map(|(&job, o)| (job, Ok(o.clone()))).collect();
        for (job, result) in self.jm.recover(self.now, jobs, ended) {
            result.unwrap_or_else(|e| panic!("{job} does not recover: {e}"));
        }
        for host in self.hosts.values_mut().filter(|h| h.alive) {
            host.tm.handle_job_manager_lost(self.now);
            host.tm.handle_job_manager_connected(self.now);
            host.busy = true;
        }
        self.collect();
    }

    /// TaskManager `tm` stops at once, losing everything in flight to and from it.
    pub fn crash(&mut self, tm: TaskManagerId) {
        let host = self.hosts.get_mut(&tm).expect("a TaskManager of this cluster");
        host.alive = false;
        self.to_jm.remove(&tm);
        self.to_tm.remove(&tm);
        self.data.retain(|(from, to), _| *from != tm && *to != tm);
    }

    fn fold(&mut self, what: &str) {
        for b in what.bytes() {
            self.trace = (self.trace ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Moves every node's outputs into the queues.
    fn collect(&mut self) {
        let mut persisted: Vec<(JobId, Arc<CompletedCheckpoint>)> = Vec::new();
        let mut written: Vec<(JobId, u64, String)> = Vec::new();
        loop {
            for (job, checkpoint) in persisted.drain(..) {
                let id = checkpoint.id;
                self.jm.handle_checkpoint_persisted(self.now, job, id, Ok(checkpoint));
            }
            for (job, request, path) in written.drain(..) {
                self.jm.handle_savepoint_written(self.now, job, request, Ok(path));
            }
            self.collect_job_manager(&mut persisted, &mut written);
            if persisted.is_empty() && written.is_empty() {
                break;
            }
        }
        self.collect_task_managers();
    }

    fn collect_job_manager(
        &mut self,
        persisted: &mut Vec<(JobId, Arc<CompletedCheckpoint>)>,
        written: &mut Vec<(JobId, u64, String)>,
    ) {
        while let Some(out) = self.jm.poll_output() {
            match out {
                job_manager::Output::PersistCheckpoint { job, checkpoint, retained } => {
                    let kept = self.checkpoints.entry(job).or_default();
                    kept.push_back(Arc::clone(&checkpoint));
                    while kept.len() > usize::from(retained) {
                        kept.pop_front();
                    }
                    persisted.push((job, checkpoint));
                }
                job_manager::Output::CheckpointAborted { .. } => {}
                job_manager::Output::WriteSavepoint { job, request, directory, file_name, bytes } => {
                    let path = format!("{directory}/{file_name}");
                    self.savepoints.insert(path.clone(), bytes);
                    written.push((job, request, path));
                }
                job_manager::Output::PersistJob(record) => {
                    self.records.insert(record.job, record);
                }
                job_manager::Output::PersistJobResult(overview) => {
                    let job = overview.status.job;
                    self.records.remove(&job);
                    self.checkpoints.remove(&job);
                    self.results.insert(job, *overview);
                }
                job_manager::Output::ToTaskManager { tm, message } => {
                    if self.hosts.get(&tm).is_some_and(|h| h.alive) {
                        self.to_tm.entry(tm).or_default().push_back(message);
                    }
                }
                job_manager::Output::RefuseRegistration { tm, reason, .. } => {
                    if self.hosts.get(&tm).is_some_and(|h| h.alive) {
                        self.to_tm
                            .entry(tm)
                            .or_default()
                            .push_back(ToTaskManager::RegistrationRefused { reason });
                    }
                }
                job_manager::Output::TaskManagerDead { .. } => {}
                ended @ job_manager::Output::JobEnded { job, .. } => self.ended.push((job, ended)),
            }
        }
    }

    fn collect_task_managers(&mut self) {
        for (&id, host) in &mut self.hosts {
            if !host.alive {
                continue;
            }
            while let Some(out) = host.tm.poll_output() {
                match out {
                    taskmanager::Output::ToJobManager(m) => self.to_jm.entry(id).or_default().push_back(m),
                    taskmanager::Output::ToTaskManager { to, message, .. } => {
                        self.data.entry((id, to)).or_default().push_back(message)
                    }
                    taskmanager::Output::EndJobFailed { job, attempt, error, .. } => {
                        panic!("{id}: ending the output of {job}/{attempt} failed: {error}")
                    }
                    // The connections here never go silent, and the JobManager answers every
                    // heartbeat: only a bug brings this.
                    taskmanager::Output::JobManagerSilent => panic!("{id} found the JobManager silent"),
                }
            }
        }
    }

    /// One event; false when nothing at all can happen any more.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        self.now = self.now + TICK;
        // Everything that can happen now, as (kind, index) choices.
        let mut choices: Vec<Choice> = Vec::new();
        choices.extend(self.to_jm.iter().filter(|(_, q)| !q.is_empty()).map(|(&tm, _)| Choice::ToJm(tm)));
        choices.extend(self.to_tm.iter().filter(|(_, q)| !q.is_empty()).map(|(&tm, _)| Choice::ToTm(tm)));
        choices.extend(self.data.iter().filter(|(_, q)| !q.is_empty()).map(|(&pair, _)| Choice::Data(pair)));
        choices.extend(self.hosts.iter().filter(|(_, h)| h.alive && h.busy).map(|(&tm, _)| Choice::Run(tm)));
        if choices.is_empty() {
            // Idle: jump to the next timer, if any.
            let next = self
                .hosts
                .values()
                .filter(|h| h.alive)
                .filter_map(|h| h.tm.poll_timeout())
                .chain(self.jm.poll_timeout())
                .min();
            match next {
                Some(t) => self.now = self.now.max(t),
                None => return false,
            }
        } else {
            let choice = choices[self.rng.below(choices.len())];
            self.apply(choice);
        }
        self.fire_timers();
        self.collect();
        for host in self.hosts.values() {
            if host.alive {
                host.tm.assert_invariants();
            }
        }
        self.jm.assert_invariants();
        true
    }

    fn apply(&mut self, choice: Choice) {
        let now = self.now;
        match choice {
            Choice::ToJm(tm) => {
                let m = self.to_jm.get_mut(&tm).and_then(VecDeque::pop_front).expect("chosen non-empty");
                self.fold(&format!("jm<{}:{m:?}", tm.0));
                self.jm.handle_task_manager_message(now, tm, m);
            }
            Choice::ToTm(tm) => {
                let m = self.to_tm.get_mut(&tm).and_then(VecDeque::pop_front).expect("chosen non-empty");
                self.fold(&format!("tm{}<{m:?}", tm.0));
                let host = self.hosts.get_mut(&tm).expect("queued for a host");
                host.tm.handle_job_manager_message(now, m);
                host.busy = true;
            }
            Choice::Data((from, to)) => {
                let m =
                    self.data.get_mut(&(from, to)).and_then(VecDeque::pop_front).expect("chosen non-empty");
                self.fold(&format!("{}>{}:{}", from.0, to.0, data_kind(&m)));
                if let Some(host) = self.hosts.get_mut(&to).filter(|h| h.alive) {
                    host.tm.handle_data_message(now, from, m);
                    host.busy = true;
                }
            }
            Choice::Run(tm) => {
                let host = self.hosts.get_mut(&tm).expect("a host");
                host.busy = host.tm.run(now, RUN_BUDGET) > 0;
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        if self.jm.poll_timeout().is_some_and(|t| t <= now) {
            self.jm.handle_timeout(now);
        }
        for host in self.hosts.values_mut() {
            if host.alive && host.tm.poll_timeout().is_some_and(|t| t <= now) {
                host.tm.handle_timeout(now);
                host.busy = true;
            }
        }
    }

    /// Steps until `done` holds or `max_steps` pass; returns whether `done` held.
    pub fn run_until(&mut self, max_steps: u64, mut done: impl FnMut(&InMemoryCluster) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    /// Steps until `job` has ended; returns how it ended.
    pub fn run_job(&mut self, job: JobId, max_steps: u64) -> Option<job_manager::Output> {
        self.run_until(max_steps, |c| c.ended.iter().any(|(j, _)| *j == job));
        self.ended.iter().find(|(j, _)| *j == job).map(|(_, o)| o.clone())
    }
}

fn data_kind(m: &DataMessage) -> String {
    match m {
        DataMessage::Element { subtask, channel, element, .. } => {
            let what = match element {
                crate::protocol::wire_batch::WireElement::Batch(b) => format!("batch{}", b.rows),
                crate::protocol::wire_batch::WireElement::Watermark(w) => format!("wm{w}"),
                crate::protocol::wire_batch::WireElement::EndOfInput => "end".to_owned(),
                crate::protocol::wire_batch::WireElement::Barrier(id) => format!("barrier{id}"),
            };
            format!("el{subtask}.{channel}:{what}")
        }
        DataMessage::Credit { subtask, channel, credits, .. } => format!("cr{subtask}.{channel}:{credits}"),
        DataMessage::KeepAlive => "keepalive".to_owned(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Choice {
    ToJm(TaskManagerId),
    ToTm(TaskManagerId),
    Data((TaskManagerId, TaskManagerId)),
    Run(TaskManagerId),
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod checkpoint_tests;
