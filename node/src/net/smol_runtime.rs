//! The production runtime: the [`Runtime`] seam on smol, with frames over real TCP.
//!
//! Frames are cut out of the byte stream by the core's `FrameDecoder` (through [`super::framing`]), fed from a fixed read
//! buffer and never more than the decoder has room for, so one connection buffers at most one
//! maximal frame and its header however fast or hostile the peer is.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rivulet_core::time::Instant;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Timer};
use tracing::Instrument;

use super::framing::{FrameReadState, FrameWriteState, SplitConnection};
use super::seam::{FrameListener, FrameReceiver, FrameSender, Runtime};

/// The [`Runtime`] on smol: tasks on smol's global executor (or one given), timers from
/// `async-io`, TCP with `TCP_NODELAY`.
#[derive(Clone, Debug)]
pub struct SmolRuntime {
    /// `now()` counts from here; clones share it, so they agree on the time.
    epoch: std::time::Instant,
    /// Where `spawn` puts tasks; smol's global executor when `None`.
    executor: Option<Arc<Executor<'static>>>,
}

impl SmolRuntime {
    /// A runtime spawning onto smol's global executor.
    pub fn new() -> Self {
        SmolRuntime { epoch: std::time::Instant::now(), executor: None }
    }

    /// A runtime spawning onto `executor`; the caller runs it (e.g. `block_on(executor.run(..))`).
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        SmolRuntime { epoch: std::time::Instant::now(), executor: Some(executor) }
    }
}

impl Default for SmolRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime for SmolRuntime {
    type Listener = SmolListener;
    type Connection = SmolConnection;

    fn now(&self) -> Instant {
        // u64 nanoseconds last 584 years of uptime.
        Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    async fn sleep(&self, duration: Duration) {
        Timer::after(duration).await;
    }

    fn spawn(&self, name: &str, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let task = task.instrument(tracing::debug_span!("task", name));
        match &self.executor {
            Some(executor) => executor.spawn(task).detach(),
            None => smol::spawn(task).detach(),
        }
    }

    async fn listen(&self, address: &str) -> io::Result<SmolListener> {
        Ok(SmolListener { listener: TcpListener::bind(address).await? })
    }

    async fn connect(&self, address: &str) -> io::Result<SmolConnection> {
        SmolConnection::new(TcpStream::connect(address).await?)
    }
}

/// A TCP listener handing out [`SmolConnection`]s.
#[derive(Debug)]
pub struct SmolListener {
    listener: TcpListener,
}

impl FrameListener for SmolListener {
    type Connection = SmolConnection;

    async fn accept(&mut self) -> io::Result<(SmolConnection, String)> {
        let (stream, peer) = self.listener.accept().await?;
        Ok((SmolConnection::new(stream)?, peer.to_string()))
    }

    fn local_address(&self) -> io::Result<String> {
        Ok(self.listener.local_addr()?.to_string())
    }
}

/// Frames both ways over one TCP stream.
pub type SmolConnection = SplitConnection<SmolFrameReceiver, SmolFrameSender>;

impl SmolConnection {
    /// Wraps a connected stream, setting `TCP_NODELAY`: frames are whole messages, and a control
    /// message waiting for Nagle's timer is latency for nothing.
    pub fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(SplitConnection::from_halves(
            SmolFrameReceiver { stream: stream.clone(), state: FrameReadState::default() },
            SmolFrameSender { stream, state: FrameWriteState::default() },
        ))
    }
}

/// The receiving half of a [`SmolConnection`].
pub struct SmolFrameReceiver {
    stream: TcpStream,
    state: FrameReadState,
}

impl fmt::Debug for SmolFrameReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolFrameReceiver")
            .field("stream", &self.stream)
            .field("buffered_bytes", &self.state.buffered_bytes())
            .field("failed", &self.state.is_failed())
            .finish()
    }
}

impl FrameReceiver for SmolFrameReceiver {
    async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        // Cancel-safe: bytes move from the socket into the decoder without an await in between.
        loop {
            if let Some(done) = self.state.next_result() {
                return done;
            }
            let read = self.stream.read(self.state.read_buffer()).await;
            if let Some(done) = self.state.on_read(read) {
                return done;
            }
        }
    }
}

/// The sending half of a [`SmolConnection`].
#[derive(Debug)]
pub struct SmolFrameSender {
    stream: TcpStream,
    state: FrameWriteState,
}

impl FrameSender for SmolFrameSender {
    async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let frame = self.state.begin(payload)?;
        let written = self.stream.write_all(frame).await;
        self.state.finish(written)
    }

    async fn close(&mut self) -> io::Result<()> {
        if !self.state.close() {
            return Ok(());
        }
        // Shuts down the write direction: the peer reads what was sent, then end of stream.
        self.stream.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_core::limits::FRAME_BYTES_MAX;

    /// A connected pair: (the accepted side as a frame connection, the raw client stream).
    async fn raw_pair() -> (SmolConnection, TcpStream) {
        let runtime = SmolRuntime::new();
        let mut listener = runtime.listen("127.0.0.1:0").await.unwrap();
        let address = listener.local_address().unwrap();
        let client = TcpStream::connect(address.as_str()).await.unwrap();
        let (server, _peer) = listener.accept().await.unwrap();
        (server, client)
    }

    #[test]
    fn frames_arrive_whole_whatever_the_segmentation() {
        smol::block_on(async {
            let (mut server, mut client) = raw_pair().await;
            // Two frames written one byte at a time, then a third in one write.
            let mut bytes = Vec::new();
            for payload in [&b"first"[..], &b""[..], &b"third"[..]] {
                bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
                bytes.extend_from_slice(payload);
            }
            let split = 4 + 5 + 4;
            for byte in &bytes[..split] {
                client.write_all(std::slice::from_ref(byte)).await.unwrap();
            }
            client.write_all(&bytes[split..]).await.unwrap();
            assert_eq!(server.recv().await.unwrap().as_deref(), Some(&b"first"[..]));
            assert_eq!(server.recv().await.unwrap().as_deref(), Some(&b""[..]));
            assert_eq!(server.recv().await.unwrap().as_deref(), Some(&b"third"[..]));
        });
    }

    #[test]
    fn a_close_in_the_middle_of_a_frame_is_an_error_not_a_clean_close() {
        smol::block_on(async {
            let (mut server, mut client) = raw_pair().await;
            client.write_all(&[0, 0, 0, 10, b'a', b'b']).await.unwrap();
            drop(client);
            let error = server.recv().await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            assert!(error.to_string().contains("middle of a frame"), "{error}");
            // And it stays failed.
            assert_eq!(server.recv().await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn a_payload_above_the_limit_is_not_sent() {
        smol::block_on(async {
            let (mut server, client) = raw_pair().await;
            let error = server.send(&vec![0; FRAME_BYTES_MAX + 1]).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            // Nothing went out, and the connection still works.
            server.send(b"fine").await.unwrap();
            let mut client = SmolConnection::new(client).unwrap();
            assert_eq!(client.recv().await.unwrap().as_deref(), Some(&b"fine"[..]));
        });
    }

    #[test]
    fn a_maximal_frame_passes() {
        smol::block_on(async {
            let (mut server, client) = raw_pair().await;
            let mut client = SmolConnection::new(client).unwrap();
            let payload = vec![7; FRAME_BYTES_MAX];
            let (sent, received) = smol::future::zip(server.send(&payload), client.recv()).await;
            sent.unwrap();
            assert_eq!(received.unwrap().map(|p| p.len()), Some(FRAME_BYTES_MAX));
        });
    }

    #[test]
    fn the_clock_is_monotonic_and_shared_by_clones() {
        let runtime = SmolRuntime::new();
        let clone = runtime.clone();
        let (a, b) = (runtime.now(), clone.now());
        assert!(b >= a);
    }
}
