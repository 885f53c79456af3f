//! The TaskManager node: the core's [`TaskManager`] role on the wire.
//!
//! One task owns the role, as in the JobManager node. Its inputs arrive on one bounded event
//! channel: the JobManager connection's messages (from a task that connects, handshakes and
//! reconnects with a bounded back-off), data messages from peer TaskManagers (one reader task per
//! incoming data connection), and the failures of outgoing data links. After each input the task
//! calls [`TaskManager::run`] round after round while it makes progress, yielding between rounds
//! so the I/O tasks run; then it sleeps until the next event or `poll_timeout`.
//!
//! Data links are opened lazily: the first message for a peer TaskManager opens one connection to
//! the address the role names, which carries every later message to that peer. A peer learns who
//! is sending from the handshake's node name, `tm-<id>`. A link that fails (it cannot connect, a
//! send fails, or the peer closes the connection, as a crashed or restarted peer does) is dropped
//! and the role is told with [`TaskManager::handle_peer_lost`]: messages on it may be lost, so the
//! subtasks with channels to or from that peer fail and their attempt restarts. The next message
//! to the peer opens a new link. Links are numbered, so a late failure of an old link never drops
//! a newer one.

use std::collections::BTreeMap;
use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use rivulet_core::connectors::ConnectorFactory;
use rivulet_core::dataflow::credit::CreditConfig;
use rivulet_core::ids::{ClusterId, TaskManagerId};
use rivulet_core::protocol::messages::{DataMessage, ToJobManager, ToTaskManager};
use rivulet_core::protocol::{Hello, PeerRole, Refusal, Remote};
use rivulet_core::taskmanager::{
    Output, RegistrationStatus, TaskManager, TaskManagerConfig, JOB_MANAGER_SILENT_HEARTBEATS,
};
use rivulet_core::time::Instant;
use smol::future;

use crate::connectors::NodeConnectors;
use crate::net::connection::send_message_with;
use crate::net::{
    handshake_accepting, recv_message, send_message, FrameConnection, FrameListener, FrameReceiver,
    FrameSender, Runtime,
};

/// Events waiting for the TaskManager task; readers wait when it is full.
const EVENTS_QUEUED_MAX: usize = 4096;

/// Control messages waiting for the JobManager connection's writer.
const TO_JOB_MANAGER_QUEUED_MAX: usize = 1024;

/// Data messages waiting for one peer's writer. Credits bound the elements in flight per channel,
/// so this is only reached by a link that cannot send at all; then the owning task waits.
const DATA_LINK_QUEUED_MAX: usize = 16 * 1024;

/// Work units per call of [`TaskManager::run`] before the task looks at its events again.
const RUN_BUDGET: usize = 64;

/// Events taken per round while the role is busy, so that input cannot starve the CPU work.
const EVENTS_PER_ROUND_MAX: usize = 256;

/// The reconnection back-off to the JobManager: doubling from the first to the last.
const RECONNECT_DELAY_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5);

/// Connection attempts to a peer's data address before its link gives up.
const DATA_CONNECT_ATTEMPTS_MAX: u32 = 5;

/// A data link's sender writes a `KeepAlive` after this long without anything else to send.
const DATA_LINK_KEEPALIVE: Duration = Duration::from_secs(1);

/// A data connection on which nothing arrived for this long is given up by its receiver: the
/// link stalled (a one-way cut, a half-open connection) rather than went quiet, since a quiet
/// sender writes keep-alives. The receiver closes it; the sender sees the close and fails the
/// subtasks that use the link, as for any lost link. Credits keep a receiver reading whatever it
/// was sent, so back-pressure never silences a healthy link. Five keep-alive intervals, like the
/// heartbeat timeout of the control connection.
const DATA_LINK_SILENCE_MAX: Duration = Duration::from_secs(5);

/// The credits of every data channel between TaskManagers: 8 buffers per channel (a batch of
/// four `int` columns is 128 KiB, so 1 MiB per channel at the consumer), the default backlog, and
/// credits returned 4 at a time. Across processes every wait for credit costs thread switches on
/// both sides; with more buffers and grants of half of them, the producer runs ahead by several
/// batches per wake-up. W2-net at parallelism 1 (`docs/benchmarks.md`) went from 18 M to 25 M
/// records/s against the core's default (4 buffers, every credit announced alone). Both ends of a
/// channel must use the same `credits_max`: every TaskManager of a cluster takes this one.
fn data_channel_credits() -> CreditConfig {
    CreditConfig::new(8, CreditConfig::DEFAULT.backlog_max())
        .and_then(|c| c.with_grant_min(4))
        .expect("8 and 4 lie within the limits of limits.rs")
}

/// How the TaskManager node starts.
#[derive(Clone, Debug)]
pub struct TaskManagerNodeConfig {
    /// The JobManager's address (`host:port`).
    pub job_manager: String,
    /// Where to listen for data connections from other TaskManagers (port 0 picks one).
    pub data_listen: String,
    /// The host peers reach the data listener at; by default the listening host, or `127.0.0.1`
    /// when that is a wildcard (`0.0.0.0`, `::`).
    pub data_advertise_host: Option<String>,
    pub id: TaskManagerId,
    pub slots: u16,
    pub labels: BTreeMap<String, String>,
    pub cluster: ClusterId,
    pub handshake_timeout: Duration,
    /// What relative paths in job files (file sources and sinks) resolve against; the working
    /// directory if `None`.
    pub files_root: Option<std::path::PathBuf>,
}

/// What the TaskManager task is told.
enum Event {
    JobManagerConnected {
        writer: Sender<ToJobManager>,
        /// Closed by the TaskManager task to drop a connection the JobManager went silent on
        /// (a partition may keep even its close from arriving).
        give_up: Sender<()>,
    },
    FromJobManager(ToTaskManager),
    JobManagerLost {
        error: Option<String>,
    },
    Data {
        from: TaskManagerId,
        message: DataMessage,
    },
    /// The outgoing link `generation` to a peer failed; the next message to it opens a new one.
    LinkFailed {
        to: TaskManagerId,
        generation: u64,
        error: String,
    },
    /// Incoming data connection number `connection` from a peer passed its handshake: the
    /// peer's newest, whose silence counts.
    DataConnectionOpened {
        from: TaskManagerId,
        connection: u64,
    },
    /// Nothing arrived on incoming data connection `connection` for `DATA_LINK_SILENCE_MAX`: it
    /// was given up, and whatever the peer sent on it may be lost.
    DataConnectionSilent {
        from: TaskManagerId,
        connection: u64,
    },
    ListenerFailed(std::io::Error),
}

/// Runs a TaskManager until its data listener fails.
pub async fn run_task_manager<R: Runtime>(rt: R, config: TaskManagerNodeConfig) -> std::io::Result<()> {
    let mut listener = rt.listen(&config.data_listen).await?;
    let bound = listener.local_address()?;
    let data_address = advertised(&bound, config.data_advertise_host.as_deref());
    let name = node_name(config.id);
    tracing::info!(tm = %config.id, data_listen = %bound, %data_address, slots = config.slots, labels = ?config.labels, "TaskManager starting");

    let (events_in, events) = async_channel::bounded(EVENTS_QUEUED_MAX);
    let local = Hello::new(config.cluster, PeerRole::TaskManager, name.clone()).expect("a valid node name");
    {
        let (rt2, events_in, local, timeout) =
            (rt.clone(), events_in.clone(), local.clone(), config.handshake_timeout);
        rt.spawn("taskmanager-data-accept", async move {
            for connection in 0.. {
                match listener.accept().await {
                    Ok((conn, peer)) => {
                        let task = serve_data_connection(
                            rt2.clone(),
                            (conn, connection),
                            peer,
                            local.clone(),
                            timeout,
                            events_in.clone(),
                        );
                        rt2.spawn("taskmanager-data-in", task);
                    }
                    Err(error) => {
                        let _ = events_in.send(Event::ListenerFailed(error)).await;
                        return;
                    }
                }
            }
        });
    }
    {
        let task = keep_job_manager_connection(
            rt.clone(),
            config.job_manager.clone(),
            local.clone(),
            config.handshake_timeout,
            events_in.clone(),
        );
        rt.spawn("taskmanager-jobmanager", task);
    }

    let core_config = TaskManagerConfig {
        id: config.id,
        data_address,
        slots: config.slots,
        labels: config.labels.clone(),
        heartbeat_interval: Duration::from_secs(1),
        credits: data_channel_credits(),
    };
    let connectors: Box<dyn ConnectorFactory + Send> =
        Box::new(NodeConnectors::with_root(config.files_root.clone()));
    let mut node = Node {
        rt: rt.clone(),
        tm: TaskManager::new(core_config, connectors),
        local,
        handshake_timeout: config.handshake_timeout,
        to_job_manager: None,
        give_up_job_manager: None,
        links: BTreeMap::new(),
        next_link_generation: 0,
        incoming: BTreeMap::new(),
        events_in,
    };
    let mut busy = false;
    loop {
        // In tests and simulations (debug builds), every step of the role is checked.
        if cfg!(debug_assertions) {
            node.tm.assert_invariants();
        }
        let now = rt.now();
        if node.tm.poll_timeout().is_some_and(|t| t <= now) {
            node.tm.handle_timeout(now);
            busy = true;
        }
        node.flush().await;
        if busy {
            for _ in 0..EVENTS_PER_ROUND_MAX {
                let Ok(event) = events.try_recv() else { break };
                node.apply(rt.now(), event)?;
                node.flush().await;
            }
            busy = node.tm.run(rt.now(), RUN_BUDGET) > 0;
            node.flush().await;
            // Let the readers and writers run between rounds of CPU work.
            future::yield_now().await;
            continue;
        }
        let event = match node.tm.poll_timeout() {
            Some(at) => {
                let wait = at.saturating_duration_since(rt.now());
                // Biased towards events: never a random choice (a simulation replays it exactly).
                future::or(async { events.recv().await.ok() }, async {
                    rt.sleep(wait).await;
                    None
                })
                .await
            }
            None => events.recv().await.ok(),
        };
        if let Some(event) = event {
            node.apply(rt.now(), event)?;
        }
        // Whatever happened, the role may have work now (a source's wake-up time, an input).
        busy = true;
    }
}

/// The TaskManager task's state.
struct Node<R: Runtime> {
    rt: R,
    tm: TaskManager,
    local: Hello,
    handshake_timeout: Duration,
    to_job_manager: Option<Sender<ToJobManager>>,
    /// Closing it makes the JobManager connection's reader give the connection up.
    give_up_job_manager: Option<Sender<()>>,
    /// The outgoing data link to each peer TaskManager.
    links: BTreeMap<TaskManagerId, Link>,
    /// The number the next data link opened gets.
    next_link_generation: u64,
    /// The newest incoming data connection from each peer.
    incoming: BTreeMap<TaskManagerId, u64>,
    events_in: Sender<Event>,
}

/// An outgoing data link: its writer task's queue, and its number among this node's links.
struct Link {
    queue: Sender<DataMessage>,
    generation: u64,
}

impl<R: Runtime> Node<R> {
    fn apply(&mut self, now: Instant, event: Event) -> std::io::Result<()> {
        match event {
            Event::JobManagerConnected { writer, give_up } => {
                self.to_job_manager = Some(writer);
                self.give_up_job_manager = Some(give_up);
                self.tm.handle_job_manager_connected(now);
            }
            Event::FromJobManager(message) => {
                let before = self.tm.registration().clone();
                if let ToTaskManager::Deploy(d) = &message {
                    tracing::info!(job = %d.job, attempt = %d.attempt, subtask = d.subtask, slot = %d.slot, "deploying a subtask");
                }
                if let ToTaskManager::CancelAttempt { job, attempt } = &message {
                    tracing::info!(%job, %attempt, "cancelling an attempt");
                }
                self.tm.handle_job_manager_message(now, message);
                let after = self.tm.registration();
                if *after != before {
                    match after {
                        RegistrationStatus::Registered { heartbeat_interval } => {
                            tracing::info!(
                                heartbeat_interval_ms = heartbeat_interval.as_millis() as u64,
                                "registered with the JobManager"
                            );
                        }
                        RegistrationStatus::Refused { reason } => {
                            tracing::error!(%reason, "the JobManager refused the registration; idle until it reconnects");
                        }
                        _ => {}
                    }
                }
            }
            Event::JobManagerLost { error } => {
                match error {
                    Some(error) => {
                        tracing::warn!(%error, "lost the JobManager; its subtasks here are cancelled")
                    }
                    None => tracing::warn!(
                        "the JobManager closed the connection; its subtasks here are cancelled"
                    ),
                }
                self.to_job_manager = None;
                self.give_up_job_manager = None;
                self.tm.handle_job_manager_lost(now);
            }
            Event::Data { from, message } => self.tm.handle_data_message(now, from, message),
            Event::LinkFailed { to, generation, error } => {
                // A late failure of a link already replaced: the newer link is not touched.
                if self.links.get(&to).is_none_or(|link| link.generation != generation) {
                    tracing::debug!(peer = %to, generation, %error, "an old data link failed");
                    return Ok(());
                }
                tracing::warn!(peer = %to, generation, %error, "data link failed; failing the subtasks that use it");
                if let Some(link) = self.links.remove(&to) {
                    link.queue.close();
                }
                self.tm.handle_peer_lost(now, to);
            }
            Event::DataConnectionOpened { from, connection } => {
                self.incoming.insert(from, connection);
            }
            Event::DataConnectionSilent { from, connection } => {
                // An older connection the peer replaced (its close lost) fails nothing.
                if self.incoming.get(&from) == Some(&connection) {
                    tracing::warn!(peer = %from, "data from the peer stalled; failing the subtasks it feeds");
                    self.incoming.remove(&from);
                    self.tm.handle_peer_lost(now, from);
                }
            }
            Event::ListenerFailed(error) => return Err(error),
        }
        Ok(())
    }

    /// Carries out every output of the role.
    async fn flush(&mut self) {
        while let Some(output) = self.tm.poll_output() {
            match output {
                Output::ToJobManager(message) => {
                    if let ToJobManager::TaskState(report) = &message {
                        match &report.error {
                            Some(error) => {
                                tracing::warn!(job = %report.job, attempt = %report.attempt, subtask = report.subtask, state = ?report.state, %error, "subtask failed")
                            }
                            None => {
                                tracing::debug!(job = %report.job, attempt = %report.attempt, subtask = report.subtask, state = ?report.state, "subtask state")
                            }
                        }
                    }
                    let Some(writer) = &self.to_job_manager else { continue };
                    if let Err(TrySendError::Full(_)) = writer.try_send(message) {
                        tracing::warn!("the JobManager is not reading its messages; reconnecting");
                        writer.close();
                    }
                }
                Output::JobManagerSilent => {
                    tracing::warn!(
                        "no word from the JobManager for {JOB_MANAGER_SILENT_HEARTBEATS} heartbeat intervals; \
                         its subtasks here are cancelled; reconnecting"
                    );
                    if let Some(give_up) = self.give_up_job_manager.take() {
                        give_up.close();
                    }
                    if let Some(writer) = self.to_job_manager.take() {
                        writer.close();
                    }
                }
                Output::EndJobFailed { job, attempt, published, error } => {
                    let what = if published { "publish" } else { "discard" };
                    tracing::error!(%job, %attempt, %error, "cannot {what} the output the job's sinks staged");
                }
                Output::ToTaskManager { to, address, message } => {
                    let link = self.links.entry(to).or_insert_with(|| {
                        let generation = self.next_link_generation;
                        self.next_link_generation += 1;
                        let (sender, queue) = async_channel::bounded(DATA_LINK_QUEUED_MAX);
                        let task = run_data_link(
                            self.rt.clone(),
                            DataLinkTarget { to, generation, address },
                            self.local.clone(),
                            self.handshake_timeout,
                            queue,
                            self.events_in.clone(),
                        );
                        self.rt.spawn("taskmanager-data-out", task);
                        Link { queue: sender, generation }
                    });
                    // A closed queue means the link failed: its `LinkFailed` is on its way and
                    // fails the sender of this message.
                    match link.queue.try_send(message) {
                        Ok(()) | Err(TrySendError::Closed(_)) => {}
                        Err(TrySendError::Full(message)) => {
                            tracing::debug!(peer = %to, "data link queue full; waiting");
                            let _ = link.queue.send(message).await;
                        }
                    }
                }
            }
        }
    }
}

/// `tm-<id>`: a TaskManager's node name in handshakes, which its peers parse back.
pub fn node_name(id: TaskManagerId) -> String {
    format!("tm-{}", id.0)
}

/// The TaskManager a node name `tm-<id>` names.
pub fn parse_node_name(name: &str) -> Option<TaskManagerId> {
    let digits = name.strip_prefix("tm-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(TaskManagerId)
}

/// The data address peers are told: `bound` with its host replaced by `host`, or by `127.0.0.1`
/// when `bound`'s host is a wildcard.
fn advertised(bound: &str, host: Option<&str>) -> String {
    let (bound_host, port) = bound.rsplit_once(':').unwrap_or((bound, "0"));
    let host = match host {
        Some(host) => host.to_owned(),
        None if matches!(bound_host, "0.0.0.0" | "[::]" | "::") => "127.0.0.1".to_owned(),
        None => bound_host.to_owned(),
    };
    format!("{host}:{port}")
}

/// Keeps a connection to the JobManager: connects, handshakes, forwards its messages, and
/// reconnects with a doubling back-off when it closes.
async fn keep_job_manager_connection<R: Runtime>(
    rt: R,
    address: String,
    local: Hello,
    timeout: Duration,
    events: Sender<Event>,
) {
    let mut delay = RECONNECT_DELAY_FIRST;
    loop {
        let accept = |remote: &Remote| match remote.role {
            PeerRole::JobManager => Ok(()),
            _ => Err(Refusal::new("expected a JobManager")),
        };
        let connected = connect_within(&rt, &address, local.clone(), timeout, accept).await;
        match connected {
            Ok(conn) => {
                tracing::info!(jobmanager = %address, "connected to the JobManager");
                delay = RECONNECT_DELAY_FIRST;
                let (mut receiver, sender) = conn.into_split();
                let (writer, queue) = async_channel::bounded(TO_JOB_MANAGER_QUEUED_MAX);
                rt.spawn("taskmanager-jobmanager-writer", write_all(sender, queue));
                let (give_up, given_up) = async_channel::bounded::<()>(1);
                if events.send(Event::JobManagerConnected { writer, give_up }).await.is_err() {
                    return;
                }
                let error = loop {
                    // Biased towards the connection; `recv` is cancel-safe.
                    let next = future::or(
                        async { Some(recv_message::<_, ToTaskManager>(&mut receiver).await) },
                        async {
                            let _ = given_up.recv().await;
                            None
                        },
                    )
                    .await;
                    let Some(next) = next else {
                        break Some("the JobManager went silent".to_owned());
                    };
                    match next {
                        Ok(Some(message)) => {
                            if events.send(Event::FromJobManager(message)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break None,
                        Err(error) => break Some(error.to_string()),
                    }
                };
                if events.send(Event::JobManagerLost { error }).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(jobmanager = %address, %error, retry_ms = delay.as_millis() as u64, "cannot reach the JobManager");
            }
        }
        rt.sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_DELAY_MAX);
    }
}

/// Sends every queued message until the queue closes or the connection fails, then closes.
async fn write_all<T: serde::Serialize>(mut sender: impl FrameSender, queue: Receiver<T>) {
    while let Ok(message) = queue.recv().await {
        if let Err(error) = send_message(&mut sender, &message).await {
            tracing::debug!(%error, "could not send; the reader sees the connection close");
            return;
        }
    }
    let _ = sender.close().await;
}

/// An incoming data connection: the handshake names the sending TaskManager, then every data
/// message goes to the TaskManager task.
async fn serve_data_connection<R: Runtime>(
    rt: R,
    (mut conn, connection): (R::Connection, u64),
    peer: String,
    local: Hello,
    timeout: Duration,
    events: Sender<Event>,
) {
    let accept = |remote: &Remote| match (remote.role, parse_node_name(&remote.node)) {
        (PeerRole::TaskManager, Some(_)) => Ok(()),
        _ => Err(Refusal::new("the data port serves TaskManagers named tm-<id> only")),
    };
    let remote = match handshake_accepting(&rt, &mut conn, local, timeout, accept).await {
        Ok(remote) => remote,
        Err(failure) => {
            tracing::warn!(%peer, %failure, "data connection refused");
            return;
        }
    };
    let from = parse_node_name(&remote.node).expect("accepted names parse");
    tracing::debug!(peer = %from, connection, "data connection from a peer");
    if events.send(Event::DataConnectionOpened { from, connection }).await.is_err() {
        return;
    }
    loop {
        let silence = async {
            rt.sleep(DATA_LINK_SILENCE_MAX).await;
            None
        };
        let received = future::or(async { Some(recv_message::<_, DataMessage>(&mut conn).await) }, silence);
        match received.await {
            Some(Ok(Some(DataMessage::KeepAlive))) => {}
            Some(Ok(Some(message))) => {
                if events.send(Event::Data { from, message }).await.is_err() {
                    return;
                }
            }
            Some(Ok(None)) => return,
            Some(Err(error)) => {
                tracing::warn!(peer = %from, %error, "data connection failed");
                return;
            }
            // Dropping the connection closes it, which the sender hears (if its direction
            // still carries anything); the subtasks here that it fed fail.
            None => {
                tracing::warn!(
                    peer = %from,
                    connection,
                    silence_ms = DATA_LINK_SILENCE_MAX.as_millis() as u64,
                    "nothing arrived on a data connection, keep-alives included; giving it up"
                );
                let _ = events.send(Event::DataConnectionSilent { from, connection }).await;
                return;
            }
        }
    }
}

/// Where an outgoing data link goes, and its number.
struct DataLinkTarget {
    to: TaskManagerId,
    generation: u64,
    address: String,
}

/// An outgoing data link: connects (a few attempts), handshakes, then sends every queued message
/// until the queue closes. It reports `LinkFailed` when it cannot connect, a send fails, or the
/// peer closes the connection (a peer never sends on it, so any frame or end it reads means the
/// connection is gone); messages still queued are then lost.
async fn run_data_link<R: Runtime>(
    rt: R,
    target: DataLinkTarget,
    local: Hello,
    timeout: Duration,
    queue: Receiver<DataMessage>,
    events: Sender<Event>,
) {
    let DataLinkTarget { to, generation, address } = target;
    let failed = |error: String| {
        queue.close();
        events.send(Event::LinkFailed { to, generation, error })
    };
    let mut delay = RECONNECT_DELAY_FIRST;
    let mut last_error = String::new();
    for attempt in 1..=DATA_CONNECT_ATTEMPTS_MAX {
        let accept = |remote: &Remote| match parse_node_name(&remote.node) {
            Some(id) if id == to && remote.role == PeerRole::TaskManager => Ok(()),
            _ => Err(Refusal::new(format!("expected {}", node_name(to)))),
        };
        let connected = connect_within(&rt, &address, local.clone(), timeout, accept).await;
        match connected {
            Ok(conn) => {
                tracing::debug!(peer = %to, %address, generation, "data link open");
                let (mut receiver, mut sender) = conn.into_split();
                // Batches are encoded into one buffer kept for the link's life.
                let mut scratch = Vec::new();
                loop {
                    // Biased towards the queue; `recv` is cancel-safe, so watching the receiving
                    // half while waiting for a message loses nothing. A second without a message
                    // sends a keep-alive.
                    let quiet = async {
                        rt.sleep(DATA_LINK_KEEPALIVE).await;
                        Some(Ok(DataMessage::KeepAlive))
                    };
                    let queued = async { queue.recv().await.ok().map(Ok) };
                    let closed = async { Some(Err(watch_closed(&mut receiver).await)) };
                    let next = future::or(future::or(queued, closed), quiet).await;
                    match next {
                        Some(Ok(message)) => {
                            // A send blocked on a stalled connection still hears the receiver
                            // give it up; the frame cut short there goes with the connection.
                            let send = async {
                                send_message_with(&mut sender, &message, &mut scratch)
                                    .await
                                    .map_err(|e| e.to_string())
                            };
                            let watched = async { Err(watch_closed(&mut receiver).await) };
                            if let Err(error) = future::or(send, watched).await {
                                let _ = failed(error).await;
                                return;
                            }
                        }
                        Some(Err(error)) => {
                            let _ = failed(error).await;
                            return;
                        }
                        None => break,
                    }
                }
                let _ = sender.close().await;
                return;
            }
            Err(error) => {
                tracing::debug!(peer = %to, %address, attempt, %error, "cannot open a data link");
                last_error = error;
            }
        }
        rt.sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_DELAY_MAX);
    }
    let _ = failed(format!("cannot connect to {address}: {last_error}")).await;
}

/// Waits for the receiving half of an outgoing data link to end: a peer never sends on it, so
/// any frame or end means the connection is gone. Returns why.
async fn watch_closed(receiver: &mut impl FrameReceiver) -> String {
    match receiver.recv().await {
        Ok(None) => "the peer closed the connection".to_owned(),
        Ok(Some(_)) => "the peer sent a frame on a data link".to_owned(),
        Err(error) => error.to_string(),
    }
}

/// How long a connection attempt, handshake included, may take before it is given up and made
/// again (or the handshake timeout, if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to `address` and runs the handshake. An attempt whose answers are dropped (a
/// black-holed or one-way-cut link) would wait for the operating system's SYN retries, for
/// minutes, or for the handshake timeout; it is given up after [`CONNECT_TIMEOUT`] and the caller
/// tries again, so a link that comes back is used within seconds.
async fn connect_within<R: Runtime>(
    rt: &R,
    address: &str,
    local: Hello,
    timeout: Duration,
    accept: impl FnOnce(&Remote) -> Result<(), Refusal>,
) -> Result<R::Connection, String> {
    let limit = timeout.min(CONNECT_TIMEOUT);
    let attempt = async {
        let mut conn = rt.connect(address).await.map_err(|e| e.to_string())?;
        handshake_accepting(rt, &mut conn, local, limit, accept).await.map_err(|f| f.to_string())?;
        Ok(conn)
    };
    let expired = async {
        rt.sleep(limit).await;
        Err(format!("no connection within {limit:?}"))
    };
    future::or(attempt, expired).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        assert_eq!(parse_node_name(&node_name(TaskManagerId(42))), Some(TaskManagerId(42)));
        assert_eq!(parse_node_name("tm-"), None);
        assert_eq!(parse_node_name("tm-+1"), None);
        assert_eq!(parse_node_name("jobmanager"), None);
    }

    #[test]
    fn a_wildcard_listener_advertises_loopback_unless_told() {
        assert_eq!(advertised("0.0.0.0:4000", None), "127.0.0.1:4000");
        assert_eq!(advertised("0.0.0.0:4000", Some("edge-7.local")), "edge-7.local:4000");
        assert_eq!(advertised("10.0.0.5:4000", None), "10.0.0.5:4000");
    }
}
