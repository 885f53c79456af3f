//! The node's [`Runtime`] seam on turmoil: simulated time, the host's tokio runtime, and frames
//! over turmoil's simulated TCP.
//!
//! Framing is the production runtime's (`rivulet_node::net::SmolRuntime`): a 4-byte big-endian
//! length and the payload, cut out of the byte stream by the core's [`FrameDecoder`] with reads
//! never larger than the decoder's room. Every frame a host sends and every timer it sets is also
//! recorded in the shared [`EventTrace`], so that two runs of one seed can be compared event by
//! event.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_core::time::Instant;
use rivulet_node::net::framing::{FrameReadState, FrameWriteState, SplitConnection};
use rivulet_node::net::{FrameListener, FrameReceiver, FrameSender, Runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::probe::{Channel, Probe, SharedProbe};
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};

/// A digest of everything that happened in a simulation, in order: every frame a host sent,
/// every timer a host set, and every fault the harness injected.
///
/// turmoil runs the hosts one after another on one thread, so the order is the simulation's own
/// and a run replayed from the same seed must produce the same digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTrace {
    /// Frames sent.
    pub frames: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Timers set (`Runtime::sleep`).
    pub timers: u64,
    /// Faults injected.
    pub faults: u64,
    /// FNV-1a over every event: its kind, host, simulated nanoseconds and contents.
    pub digest: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// What an event is, first in its digest input, so that no two kinds of event hash alike.
const EVENT_FRAME: u8 = 1;
const EVENT_TIMER: u8 = 2;
const EVENT_FAULT: u8 = 3;

impl Default for EventTrace {
    fn default() -> Self {
        Self::new()
    }
}

impl EventTrace {
    pub fn new() -> Self {
        EventTrace { frames: 0, bytes: 0, timers: 0, faults: 0, digest: FNV_OFFSET }
    }

    fn absorb(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.digest ^= u64::from(b);
            self.digest = self.digest.wrapping_mul(FNV_PRIME);
        }
    }

    fn absorb_event(&mut self, kind: u8, host: &str, at: Duration, contents: &[u8]) {
        self.absorb(&[kind]);
        self.absorb(host.as_bytes());
        self.absorb(&[0]);
        self.absorb(&u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).to_le_bytes());
        self.absorb(&(contents.len() as u64).to_le_bytes());
        self.absorb(contents);
    }

    /// Records one frame `host` sent at simulated time `at`.
    pub fn record_frame(&mut self, host: &str, at: Duration, payload: &[u8]) {
        self.frames += 1;
        self.bytes += payload.len() as u64;
        self.absorb_event(EVENT_FRAME, host, at, payload);
    }

    /// Records a timer of `duration` that `host` set at simulated time `at`.
    pub fn record_timer(&mut self, host: &str, at: Duration, duration: Duration) {
        self.timers += 1;
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.absorb_event(EVENT_TIMER, host, at, &nanos.to_le_bytes());
    }

    /// Records a fault the harness injected at simulated time `at`.
    pub fn record_fault(&mut self, at: Duration, fault: &str) {
        self.faults += 1;
        self.absorb_event(EVENT_FAULT, "harness", at, fault.as_bytes());
    }
}

/// The trace every host of one simulation records into.
pub type SharedTrace = Arc<Mutex<EventTrace>>;

/// The [`Runtime`] on turmoil, for one simulated host. Create it inside the host's closure (so
/// that its clock starts with the host's software).
#[derive(Clone)]
pub struct TurmoilRuntime {
    host: Arc<str>,
    /// `now()` counts from here (tokio's paused clock: simulated time).
    start: tokio::time::Instant,
    trace: SharedTrace,
    probe: SharedProbe,
}

impl fmt::Debug for TurmoilRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurmoilRuntime").field("host", &self.host).finish_non_exhaustive()
    }
}

impl TurmoilRuntime {
    /// A runtime for the host named `host`, recording its frames into `trace`. Must be called on
    /// the host's runtime.
    pub fn new(host: &str, trace: SharedTrace) -> Self {
        Self::with_probe(host, trace, Probe::shared(0, None))
    }

    /// A runtime for `host` whose TaskManager connections are seen by `probe` (`crate::probe`).
    pub fn with_probe(host: &str, trace: SharedTrace, probe: SharedProbe) -> Self {
        TurmoilRuntime { host: host.into(), start: tokio::time::Instant::now(), trace, probe }
    }

    /// The host this runtime serves.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn connection(&self, stream: TcpStream, channel: Channel) -> TurmoilConnection {
        let (read, write) = stream.into_split();
        let probe =
            ConnectionProbe { host: self.host.clone(), channel, probe: self.probe.clone(), frames: 0 };
        SplitConnection::from_halves(
            TurmoilFrameReceiver { stream: read, state: FrameReadState::default(), probe: probe.clone() },
            TurmoilFrameSender {
                stream: write,
                state: FrameWriteState::default(),
                host: self.host.clone(),
                trace: self.trace.clone(),
                probe,
            },
        )
    }
}

impl Runtime for TurmoilRuntime {
    type Listener = TurmoilListener;
    type Connection = TurmoilConnection;

    fn now(&self) -> Instant {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        Instant::from_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }

    async fn sleep(&self, duration: Duration) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        self.trace
            .lock()
            .expect("no host panics while holding the trace")
            .record_timer(&self.host, at, duration);
        tokio::time::sleep(duration).await;
    }

    fn spawn(&self, _name: &str, task: impl std::future::Future<Output = ()> + Send + 'static) {
        // Onto the host's `LocalSet`, where turmoil runs the host's software: a crash drops it with
        // every task, in spawn order. (`tokio::spawn` would put tasks in the runtime's sharded
        // task list, sharded by a process-global task id: a crash would then drop them, and
        // close their connections, in an order that depends on what ran before in the process.)
        drop(tokio::task::spawn_local(task));
    }

    async fn listen(&self, address: &str) -> io::Result<TurmoilListener> {
        Ok(TurmoilListener { listener: TcpListener::bind(address).await?, runtime: self.clone() })
    }

    async fn connect(&self, address: &str) -> io::Result<TurmoilConnection> {
        let stream = TcpStream::connect(address).await?;
        Ok(self.connection(stream, Channel::of(&self.host, address)))
    }
}

/// A simulated TCP listener handing out [`TurmoilConnection`]s.
pub struct TurmoilListener {
    listener: TcpListener,
    runtime: TurmoilRuntime,
}

impl FrameListener for TurmoilListener {
    type Connection = TurmoilConnection;

    async fn accept(&mut self) -> io::Result<(TurmoilConnection, String)> {
        let (stream, peer) = self.listener.accept().await?;
        Ok((self.runtime.connection(stream, Channel::Other), peer.to_string()))
    }

    fn local_address(&self) -> io::Result<String> {
        Ok(self.listener.local_addr()?.to_string())
    }
}

/// Frames both ways over one simulated TCP stream.
pub type TurmoilConnection = SplitConnection<TurmoilFrameReceiver, TurmoilFrameSender>;

/// The receiving half of a [`TurmoilConnection`]: the node's framing over turmoil's stream.
pub struct TurmoilFrameReceiver {
    stream: OwnedReadHalf,
    state: FrameReadState,
    probe: ConnectionProbe,
}

/// One direction of a connection as the probe sees it: the first frame is the handshake.
#[derive(Clone)]
struct ConnectionProbe {
    host: Arc<str>,
    channel: Channel,
    probe: SharedProbe,
    frames: u64,
}

impl ConnectionProbe {
    fn probe(&mut self) -> Option<std::sync::MutexGuard<'_, Probe>> {
        self.frames += 1;
        (self.channel != Channel::Other && self.frames > 1)
            .then(|| self.probe.lock().expect("no host panics while holding the probe"))
    }
}

impl FrameReceiver for TurmoilFrameReceiver {
    async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        // Cancel-safe: bytes move from the stream into the decoder without an await in between.
        loop {
            if let Some(done) = self.state.next_result() {
                if let Ok(Some(payload)) = &done {
                    let (host, channel) = (self.probe.host.clone(), self.probe.channel);
                    if let Some(mut probe) = self.probe.probe() {
                        probe.on_receive(&host, channel, payload);
                    }
                }
                return done;
            }
            let read = self.stream.read(self.state.read_buffer()).await;
            if let Some(done) = self.state.on_read(read) {
                return done;
            }
        }
    }
}

/// The sending half of a [`TurmoilConnection`]; it records every frame it sends in the trace.
pub struct TurmoilFrameSender {
    stream: OwnedWriteHalf,
    state: FrameWriteState,
    host: Arc<str>,
    trace: SharedTrace,
    probe: ConnectionProbe,
}

impl FrameSender for TurmoilFrameSender {
    async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let channel = self.probe.channel;
        let hold = self.probe.probe().map_or(Duration::ZERO, |mut p| p.on_send(&self.host, channel, payload));
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        let frame = self.state.begin(payload)?;
        let at = turmoil::sim_elapsed().unwrap_or_default();
        self.trace
            .lock()
            .expect("no host panics while holding the trace")
            .record_frame(&self.host, at, payload);
        let written = self.stream.write_all(frame).await;
        self.state.finish(written)
    }

    async fn close(&mut self) -> io::Result<()> {
        if !self.state.close() {
            return Ok(());
        }
        self.stream.shutdown().await
    }
}
