//! The JobManager node: the core's [`JobManager`] role on the wire.
//!
//! One task owns the role. Every accepted connection gets a reader task, which runs the handshake
//! and forwards each decoded message into one bounded event channel as `(ConnectionId, Event)`,
//! and a writer task fed by a bounded channel of its own. The owning task applies events with the
//! runtime's time, drains `poll_output` into the writers' channels (never waiting on a slow peer:
//! a peer whose queue is full is disconnected) and sleeps until the next event or `poll_timeout`.
//!
//! ```text
//!  TaskManager / client ─▶ reader task ─┐                      ┌─▶ writer task ─▶ TaskManager
//!  TaskManager / client ─▶ reader task ─┼─▶ events ─▶ JobManager ┼─▶ writer task ─▶ client
//!                                       ┘   (bounded)           └─ (a bounded queue each)
//! ```
//!
//! A TaskManager connection's first message must be `Register`; the id it registers is the
//! connection's for the rest of its life. A closed TaskManager connection is a disconnect for the
//! role, and a TaskManager the role declares dead has its connection closed.
//!
//! Clients inside the process (the REST API, [`crate::rest`]) hold a [`JobManagerHandle`]: each
//! of their requests enters the same event channel with a one-shot reply channel and is answered
//! by the same code as a framed client's, so every way into the JobManager is serialized through
//! the one task that owns the role.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use rivulet_core::ids::{ClusterId, JobId, TaskManagerId};
use rivulet_core::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use rivulet_core::jobmanager::job_manager::{JobManager, JobManagerConfig, Output, SavepointRefused};
use rivulet_core::limits::JOB_FILE_BYTES_MAX;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo, TaskManagerInfo};
use rivulet_core::protocol::messages::{ToJobManager, ToTaskManager};
use rivulet_core::protocol::{Hello, PeerRole, Refusal};
use rivulet_core::time::Instant;
use serde::de::DeserializeOwned;
use smol::future;

use crate::checkpoint_store::SharedStore;
use crate::net::{
    handshake_accepting, recv_message, send_message, FrameConnection, FrameListener, FrameReceiver,
    FrameSender, Runtime, HANDSHAKE_TIMEOUT_DEFAULT,
};

/// Events waiting for the JobManager task; readers wait when it is full.
const EVENTS_QUEUED_MAX: usize = 1024;

/// Messages waiting for one peer's writer. A peer that lets this many pile up is disconnected
/// rather than allowed to hold the JobManager back or grow its memory.
const OUTGOING_QUEUED_MAX: usize = 1024;

/// How the JobManager node starts.
#[derive(Clone, Debug)]
pub struct JobManagerNodeConfig {
    /// Where to listen for TaskManagers and clients (`host:port`; port 0 picks one).
    pub listen: String,
    pub cluster: ClusterId,
    pub job_manager: JobManagerConfig,
    pub handshake_timeout: Duration,
    /// Where completed checkpoints are recorded.
    pub checkpoints: SharedStore,
    /// Where savepoints go when a request names no directory (absolute).
    pub savepoint_dir: Option<PathBuf>,
}

impl JobManagerNodeConfig {
    pub fn new(listen: impl Into<String>, cluster: ClusterId) -> Self {
        JobManagerNodeConfig {
            listen: listen.into(),
            cluster,
            job_manager: JobManagerConfig::default(),
            handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            checkpoints: SharedStore::memory(),
            savepoint_dir: None,
        }
    }
}

/// A connection, numbered by the accept loop in order from 1.
type ConnectionId = u64;

/// The connection id of events that come from no connection: a [`JobManagerHandle`]'s requests
/// and the listener's failure.
const NO_CONNECTION: ConnectionId = 0;

/// What a reader task tells the JobManager task.
enum Event {
    /// The handshake completed; `writer` feeds the connection's writer task.
    Opened {
        role: PeerRole,
        node: String,
        writer: Sender<Outgoing>,
    },
    FromTaskManager(ToJobManager),
    FromClient(ClientRequest),
    /// A request from a [`JobManagerHandle`]; its response goes to `reply` (room for one).
    Local {
        request: ClientRequest,
        reply: Sender<ClientResponse>,
    },
    /// The connection closed or broke (a reason for the log when it broke).
    Closed {
        error: Option<String>,
    },
    /// The listener failed: the node stops.
    ListenerFailed(std::io::Error),
}

/// What a writer task sends.
enum Outgoing {
    ToTaskManager(ToTaskManager),
    ToClient(ClientResponse),
    /// Close the sending direction after what is queued; the peer then closes its side.
    Close,
}

struct Connection {
    node: String,
    writer: Sender<Outgoing>,
    /// The TaskManager registered on this connection.
    task_manager: Option<TaskManagerId>,
}

/// What [`run_job_manager`] hands its `ready` callback.
pub struct JobManagerReady {
    /// The address the node listens on, with the port resolved.
    pub address: String,
    /// For clients inside this process.
    pub handle: JobManagerHandle,
}

/// A client of the JobManager inside its own process. Clones share the event channel; requests
/// wait while it is full, like a framed client's.
#[derive(Clone)]
pub struct JobManagerHandle {
    events: Sender<(ConnectionId, Event)>,
}

/// The JobManager task has ended, so a [`JobManagerHandle`]'s request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobManagerStopped;

impl std::fmt::Display for JobManagerStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the JobManager has stopped")
    }
}

impl std::error::Error for JobManagerStopped {}

impl JobManagerHandle {
    /// Sends `request` to the JobManager task and waits for its response.
    pub async fn request(&self, request: ClientRequest) -> Result<ClientResponse, JobManagerStopped> {
        let (reply, response) = async_channel::bounded(1);
        self.events
            .send((NO_CONNECTION, Event::Local { request, reply }))
            .await
            .map_err(|_| JobManagerStopped)?;
        response.recv().await.map_err(|_| JobManagerStopped)
    }
}

/// Runs a JobManager until the listener fails. `ready` is called once the node accepts
/// connections, with the bound address and a handle for clients inside this process.
pub async fn run_job_manager<R: Runtime>(
    rt: R,
    config: JobManagerNodeConfig,
    ready: impl FnOnce(JobManagerReady),
) -> std::io::Result<()> {
    let mut listener = rt.listen(&config.listen).await?;
    let address = listener.local_address()?;
    tracing::info!(%address, cluster = %config.cluster, "JobManager listening");
    let (events_in, events) = async_channel::bounded(EVENTS_QUEUED_MAX);
    ready(JobManagerReady { address, handle: JobManagerHandle { events: events_in.clone() } });

    let accept_rt = rt.clone();
    let (cluster, handshake_timeout) = (config.cluster, config.handshake_timeout);
    rt.spawn("jobmanager-accept", async move {
        let mut next: ConnectionId = 0;
        loop {
            match listener.accept().await {
                Ok((conn, peer)) => {
                    next += 1;
                    let (rt, events_in) = (accept_rt.clone(), events_in.clone());
                    let task = serve_connection(rt, conn, next, peer, cluster, handshake_timeout, events_in);
                    accept_rt.spawn("jobmanager-connection", task);
                }
                Err(error) => {
                    let _ = events_in.send((NO_CONNECTION, Event::ListenerFailed(error))).await;
                    return;
                }
            }
        }
    });

    let mut node = Node {
        jm: JobManager::new(config.job_manager),
        connections: BTreeMap::new(),
        tms: BTreeMap::new(),
        store: config.checkpoints,
        savepoint_dir: config.savepoint_dir,
        delayed_persists: VecDeque::new(),
    };
    node.recover(rt.now());
    loop {
        let deadline = node.jm.poll_timeout().into_iter().chain(node.persist_due()).min();
        let next = match deadline {
            Some(at) => {
                let wait = at.saturating_duration_since(rt.now());
                // Biased towards events: never a random choice (a simulation replays it exactly).
                future::or(async { Some(events.recv().await) }, async {
                    rt.sleep(wait).await;
                    None
                })
                .await
            }
            None => Some(events.recv().await),
        };
        let now = rt.now();
        node.persist_delayed(now);
        match next {
            None if node.jm.poll_timeout().is_some_and(|at| at <= now) => node.jm.handle_timeout(now),
            None => {}
            Some(Ok((_, Event::ListenerFailed(error)))) => return Err(error),
            Some(Ok((conn, event))) => node.apply(now, conn, event),
            Some(Err(_)) => unreachable!("the accept loop holds a sender until it reports its failure"),
        }
        node.flush(now);
        node.jm.assert_invariants();
    }
}

/// The JobManager task's state: the role and the connections.
struct Node {
    jm: JobManager,
    connections: BTreeMap<ConnectionId, Connection>,
    /// The connection each registered TaskManager is on.
    tms: BTreeMap<TaskManagerId, ConnectionId>,
    store: SharedStore,
    savepoint_dir: Option<PathBuf>,
    /// Checkpoints whose durable write waits for the store's [`persist_delay`], in the order
    /// they came, with the time each is made: held here, they vanish with a crash.
    ///
    /// [`persist_delay`]: crate::checkpoint_store::CheckpointStore::persist_delay
    delayed_persists: VecDeque<(Instant, JobId, Arc<CompletedCheckpoint>, u16)>,
}

impl Node {
    /// When the next delayed checkpoint write is due.
    fn persist_due(&self) -> Option<Instant> {
        self.delayed_persists.front().map(|&(at, ..)| at)
    }

    /// Makes the delayed checkpoint writes that are due, in order, and tells the role of each.
    fn persist_delayed(&mut self, now: Instant) {
        while self.persist_due().is_some_and(|at| at <= now) {
            let (_, job, checkpoint, retained) = self.delayed_persists.pop_front().expect("one is due");
            self.persist(now, job, checkpoint, retained);
        }
        self.flush(now);
    }

    fn persist(&mut self, now: Instant, job: JobId, checkpoint: Arc<CompletedCheckpoint>, retained: u16) {
        let result = self.store.lock().persist(job, &checkpoint, retained);
        match &result {
            Ok(()) => {
                tracing::debug!(%job, checkpoint = %checkpoint.id, bytes = checkpoint.bytes(), "checkpoint recorded")
            }
            Err(error) => {
                tracing::warn!(%job, checkpoint = %checkpoint.id, %error, "checkpoint not recorded")
            }
        }
        let id = checkpoint.id;
        self.jm.handle_checkpoint_persisted(now, job, id, result.map(|()| checkpoint));
    }

    /// Takes over the jobs a previous JobManager recorded in the store, and its ended jobs.
    fn recover(&mut self, now: Instant) {
        let recoverable = self.store.lock().recoverable();
        match recoverable {
            Ok((jobs, ended)) if jobs.is_empty() && ended.is_empty() => {}
            Ok((jobs, ended)) => {
                for (job, result) in &ended {
                    if let Err(error) = result {
                        tracing::warn!(%job, %error, "an ended job's result cannot be read; its id stays taken");
                    }
                }
                if !ended.is_empty() {
                    tracing::info!(jobs = ended.len(), "ended jobs recovered");
                }
                for (job, result) in self.jm.recover(now, jobs, ended) {
                    match result {
                        Ok(()) => tracing::info!(%job, "job recovered"),
                        Err(error) => tracing::error!(%job, %error, "a recorded job cannot be recovered"),
                    }
                }
                self.flush(now);
            }
            Err(error) => tracing::error!(%error, "the recorded jobs cannot be read"),
        }
    }

    fn apply(&mut self, now: Instant, conn: ConnectionId, event: Event) {
        match event {
            Event::Opened { role, node, writer } => {
                tracing::debug!(connection = conn, %role, %node, "connection opened");
                self.connections.insert(conn, Connection { node, writer, task_manager: None });
            }
            Event::FromTaskManager(message) => self.on_task_manager_message(now, conn, message),
            Event::FromClient(request) => {
                let response = self.answer(now, request);
                self.send(conn, Outgoing::ToClient(response));
            }
            Event::Local { request, reply } => {
                // Room for exactly this one response; a requester that went away is no error.
                let _ = reply.try_send(self.answer(now, request));
            }
            Event::Closed { error } => self.closed(now, conn, error),
            Event::ListenerFailed(_) => unreachable!("handled by the main loop"),
        }
    }

    fn on_task_manager_message(&mut self, now: Instant, conn: ConnectionId, message: ToJobManager) {
        let Some(connection) = self.connections.get(&conn) else { return };
        let tm = match (&message, connection.task_manager) {
            (ToJobManager::Register(registration), None) => {
                let tm = registration.id;
                tracing::info!(
                    %tm,
                    node = %connection.node,
                    address = %registration.address,
                    slots = registration.slots,
                    labels = ?registration.labels,
                    "TaskManager registering"
                );
                // A TaskManager registering on a new connection while its old one still stands
                // has lost everything it ran (a TaskManager cancels its subtasks whenever it
                // loses its JobManager connection): the old registration ends first, so its
                // slots and subtasks count as lost rather than as still running.
                if let Some(old) = self.tms.get(&tm).copied().filter(|&old| old != conn) {
                    tracing::warn!(%tm, "TaskManager reconnected; what it ran before is lost");
                    self.tms.remove(&tm);
                    self.send(old, Outgoing::Close);
                    self.jm.handle_task_manager_disconnected(now, tm);
                    self.flush(now);
                }
                self.jm.handle_task_manager_message(now, tm, message);
                self.registered(now, conn, tm);
                return;
            }
            (_, Some(tm)) if !matches!(message, ToJobManager::Register(_)) => tm,
            _ => {
                tracing::warn!(connection = conn, node = %connection.node, "protocol violation: a TaskManager must register first and only once");
                self.send(conn, Outgoing::Close);
                return;
            }
        };
        if self.tms.get(&tm) != Some(&conn) {
            // A connection the id has moved away from: its messages are stale.
            return;
        }
        if let ToJobManager::TaskState(report) = &message {
            tracing::debug!(%tm, job = %report.job, attempt = %report.attempt, subtask = report.subtask, state = ?report.state, "task state");
        }
        self.jm.handle_task_manager_message(now, tm, message);
    }

    /// Carries out the outputs of a registration of `tm` on `conn`. A refusal is answered on
    /// `conn`, which then closes; otherwise the id is this connection's from now on (a
    /// reconnecting TaskManager replaces its old connection) before the role's answer is sent.
    fn registered(&mut self, now: Instant, conn: ConnectionId, tm: TaskManagerId) {
        let mut outputs = Vec::new();
        while let Some(output) = self.jm.poll_output() {
            outputs.push(output);
        }
        let refused =
            outputs.iter().any(|o| matches!(o, Output::RefuseRegistration { tm: t, .. } if *t == tm));
        if !refused {
            if let Some(old) = self.tms.insert(tm, conn) {
                if old != conn {
                    self.send(old, Outgoing::Close);
                }
            }
            if let Some(c) = self.connections.get_mut(&conn) {
                c.task_manager = Some(tm);
            }
        }
        for output in outputs {
            match output {
                Output::RefuseRegistration { tm: refused_tm, address, reason } if refused_tm == tm => {
                    tracing::warn!(%tm, %address, %reason, "registration refused");
                    let message = ToTaskManager::RegistrationRefused { reason };
                    self.send(conn, Outgoing::ToTaskManager(message));
                    self.send(conn, Outgoing::Close);
                }
                other => self.dispatch(now, other),
            }
        }
    }

    fn closed(&mut self, now: Instant, conn: ConnectionId, error: Option<String>) {
        let Some(connection) = self.connections.remove(&conn) else { return };
        match &error {
            Some(error) => tracing::warn!(node = %connection.node, %error, "connection failed"),
            None => tracing::debug!(node = %connection.node, "connection closed"),
        }
        if let Some(tm) = connection.task_manager {
            if self.tms.get(&tm) == Some(&conn) {
                self.tms.remove(&tm);
                tracing::warn!(%tm, "TaskManager disconnected");
                self.jm.handle_task_manager_disconnected(now, tm);
            }
        }
    }

    fn answer(&mut self, now: Instant, request: ClientRequest) -> ClientResponse {
        match request {
            ClientRequest::Submit { job_file, parallelism, from_savepoint } => {
                if job_file.len() > JOB_FILE_BYTES_MAX {
                    let error = format!(
                        "the job file has {} bytes; at most {JOB_FILE_BYTES_MAX} are accepted",
                        job_file.len()
                    );
                    return ClientResponse::SubmitRefused { error };
                }
                let submitted = match from_savepoint {
                    None => self.jm.submit(now, &job_file, parallelism).map_err(|e| e.to_string()),
                    Some(path) => {
                        let path = Path::new(&path);
                        if !path.is_absolute() {
                            let error = format!("the savepoint path {} is not absolute", path.display());
                            return ClientResponse::SubmitRefused { error };
                        }
                        match crate::savepoint_file::read_savepoint(path) {
                            Ok(savepoint) => {
                                tracing::info!(path = %path.display(), checkpoint = %savepoint.checkpoint, "resuming from a savepoint");
                                self.jm.submit_from_savepoint(now, &job_file, parallelism, savepoint)
                            }
                            Err(error) => Err(error),
                        }
                    }
                };
                match submitted {
                    Ok(job) => {
                        let name = self.jm.job(job).map(|o| o.status.name).unwrap_or_default();
                        tracing::info!(%job, %name, ?parallelism, "job submitted");
                        ClientResponse::Submitted { job }
                    }
                    Err(error) => {
                        tracing::info!(%error, "job refused");
                        ClientResponse::SubmitRefused { error }
                    }
                }
            }
            ClientRequest::ListJobs => {
                ClientResponse::Jobs { jobs: self.jm.jobs().iter().map(JobInfo::from_overview).collect() }
            }
            ClientRequest::JobStatus { job } => match self.jm.job(job) {
                Ok(overview) => ClientResponse::Job { job: JobInfo::from_overview(&overview) },
                Err(_) => ClientResponse::UnknownJob { job },
            },
            ClientRequest::Cancel { job } => match self.jm.cancel(now, job) {
                Ok(()) => {
                    tracing::info!(%job, "job cancellation requested");
                    ClientResponse::CancelRequested { job }
                }
                Err(_) => ClientResponse::UnknownJob { job },
            },
            ClientRequest::Stop { job } => match self.jm.stop(now, job) {
                Ok(()) => {
                    tracing::info!(%job, "job stop requested: its sources end their input");
                    ClientResponse::StopRequested { job }
                }
                Err(_) => ClientResponse::UnknownJob { job },
            },
            ClientRequest::Savepoint { job, directory, stop } => {
                if self.jm.job(job).map_or(true, |o| o.status.state.is_final()) {
                    return ClientResponse::UnknownJob { job };
                }
                let directory = match directory.map(PathBuf::from).or_else(|| self.savepoint_dir.clone()) {
                    Some(dir) if dir.is_absolute() => dir.display().to_string(),
                    Some(dir) => {
                        let error =
                            format!("the savepoint directory {} is not an absolute path", dir.display());
                        return ClientResponse::SavepointRefused { job, error };
                    }
                    None => {
                        let error = "no directory was given and this JobManager has no default one (it \
                                     has one, <data-dir>/savepoints, when started with --data-dir)"
                            .to_owned();
                        return ClientResponse::SavepointRefused { job, error };
                    }
                };
                match self.jm.savepoint(now, job, directory.clone(), stop) {
                    Ok(request) => {
                        tracing::info!(%job, request, %directory, stop, "savepoint requested");
                        ClientResponse::SavepointTriggered { job, request }
                    }
                    Err(SavepointRefused::UnknownJob(_)) => ClientResponse::UnknownJob { job },
                    Err(error) => ClientResponse::SavepointRefused { job, error: error.to_string() },
                }
            }
            ClientRequest::TaskManagers => ClientResponse::TaskManagers {
                task_managers: self.jm.task_managers().iter().map(TaskManagerInfo::from_status).collect(),
            },
        }
    }

    /// Carries out every output of the role.
    fn flush(&mut self, now: Instant) {
        while let Some(output) = self.jm.poll_output() {
            self.dispatch(now, output);
        }
    }

    fn dispatch(&mut self, now: Instant, output: Output) {
        match output {
            Output::PersistCheckpoint { job, checkpoint, retained } => {
                let delay = self.store.lock().persist_delay();
                if delay.is_zero() && self.delayed_persists.is_empty() {
                    self.persist(now, job, checkpoint, retained);
                } else {
                    // After the writes already waiting: a store's writes are made in order.
                    let after = self.delayed_persists.back().map_or(now, |&(at, ..)| at.max(now));
                    self.delayed_persists.push_back((after + delay, job, checkpoint, retained));
                }
            }
            Output::PersistJob(record) => {
                if let Err(error) = self.store.lock().put_job(&record) {
                    // The job runs on; a JobManager restarted on this store would not find it.
                    tracing::warn!(job = %record.job, %error, "the job could not be recorded");
                }
            }
            Output::CheckpointAborted { job, checkpoint, reason } => {
                tracing::info!(%job, %checkpoint, %reason, "checkpoint aborted");
            }
            Output::WriteSavepoint { job, request, directory, file_name, bytes } => {
                let written =
                    crate::savepoint_file::write_savepoint(Path::new(&directory), &file_name, &bytes);
                match &written {
                    Ok(path) => {
                        tracing::info!(%job, request, %path, bytes = bytes.len(), "savepoint written")
                    }
                    Err(error) => tracing::warn!(%job, request, %error, "savepoint not written"),
                }
                self.jm.handle_savepoint_written(now, job, request, written);
            }
            Output::ToTaskManager { tm, message } => match self.tms.get(&tm) {
                Some(&conn) => {
                    if let ToTaskManager::Deploy(d) = &message {
                        tracing::debug!(%tm, job = %d.job, attempt = %d.attempt, subtask = d.subtask, "deploying");
                    }
                    self.send(conn, Outgoing::ToTaskManager(message));
                }
                None => tracing::debug!(%tm, "no connection for a message to a TaskManager; dropped"),
            },
            Output::RefuseRegistration { tm, address, reason } => {
                // Registrations are answered where they are handled (`flush_refusals`).
                tracing::warn!(%tm, %address, %reason, "registration refused after the fact");
            }
            Output::TaskManagerDead { tm } => {
                tracing::warn!(%tm, "TaskManager declared dead; closing its connection");
                if let Some(conn) = self.tms.remove(&tm) {
                    self.send(conn, Outgoing::Close);
                }
            }
            Output::PersistJobResult(ended) => {
                if let Err(error) = self.store.lock().end_job(&ended) {
                    // A JobManager restarted on this store would run the job again.
                    tracing::warn!(job = %ended.status.job, %error, "the job's end could not be recorded");
                }
            }
            Output::JobEnded { job, state, cause } => match cause {
                Some(cause) => tracing::info!(%job, state = state.name(), %cause, "job ended"),
                None => tracing::info!(%job, state = state.name(), "job ended"),
            },
        }
    }

    /// Queues `message` for a connection's writer without waiting. A peer too slow to take its
    /// messages is disconnected.
    fn send(&mut self, conn: ConnectionId, message: Outgoing) {
        let Some(connection) = self.connections.get(&conn) else { return };
        match connection.writer.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(node = %connection.node, "peer is not reading its messages; disconnecting");
                connection.writer.close();
            }
        }
    }
}

/// A connection's reader task: the handshake, then every message into the event channel. Spawns
/// the connection's writer task.
async fn serve_connection<R: Runtime>(
    rt: R,
    mut conn: R::Connection,
    id: ConnectionId,
    peer: String,
    cluster: ClusterId,
    handshake_timeout: Duration,
    events: Sender<(ConnectionId, Event)>,
) {
    let local = Hello::new(cluster, PeerRole::JobManager, "jobmanager").expect("a valid node name");
    let accept = |remote: &rivulet_core::protocol::Remote| match remote.role {
        PeerRole::TaskManager | PeerRole::Client => Ok(()),
        PeerRole::JobManager => Err(Refusal::new("a JobManager serves TaskManagers and clients only")),
    };
    let remote = match handshake_accepting(&rt, &mut conn, local, handshake_timeout, accept).await {
        Ok(remote) => remote,
        Err(failure) => {
            tracing::warn!(%peer, %failure, "handshake failed");
            return;
        }
    };
    let (mut receiver, sender) = conn.into_split();
    let (writer, queue) = async_channel::bounded(OUTGOING_QUEUED_MAX);
    rt.spawn("jobmanager-writer", write_connection(sender, queue, remote.node.clone()));
    let opened = Event::Opened { role: remote.role, node: remote.node.clone(), writer };
    if events.send((id, opened)).await.is_err() {
        return;
    }
    let error = match remote.role {
        PeerRole::TaskManager => forward(&mut receiver, id, &events, Event::FromTaskManager).await,
        _ => forward(&mut receiver, id, &events, Event::FromClient).await,
    };
    let _ = events.send((id, Event::Closed { error })).await;
}

/// Forwards every message of type `T` until the connection closes; the error if it broke.
async fn forward<T: DeserializeOwned>(
    receiver: &mut impl FrameReceiver,
    id: ConnectionId,
    events: &Sender<(ConnectionId, Event)>,
    wrap: impl Fn(T) -> Event,
) -> Option<String> {
    loop {
        match recv_message::<_, T>(receiver).await {
            Ok(Some(message)) => {
                if events.send((id, wrap(message))).await.is_err() {
                    return None;
                }
            }
            Ok(None) => return None,
            Err(error) => return Some(error.to_string()),
        }
    }
}

async fn write_connection(mut sender: impl FrameSender, queue: Receiver<Outgoing>, node: String) {
    while let Ok(message) = queue.recv().await {
        let sent = match &message {
            Outgoing::ToTaskManager(m) => send_message(&mut sender, m).await,
            Outgoing::ToClient(m) => send_message(&mut sender, m).await,
            Outgoing::Close => break,
        };
        if let Err(error) = sent {
            tracing::debug!(%node, %error, "could not send; the reader sees the connection close");
            return;
        }
    }
    let _ = sender.close().await;
}
