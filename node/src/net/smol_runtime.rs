//! The production runtime: the [`Runtime`] seam on smol, with frames over real TCP.
//!
//! Frames are cut out of the byte stream by the core's [`FrameDecoder`], fed from a fixed read
//! buffer and never more than the decoder has room for, so one connection buffers at most one
//! maximal frame and its header however fast or hostile the peer is.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rivulet_core::limits::FRAME_BYTES_MAX;
use rivulet_core::protocol::{FrameDecoder, FRAME_HEADER_BYTES};
use rivulet_core::time::Instant;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Timer};
use tracing::Instrument;

use super::seam::{FrameConnection, FrameListener, FrameReceiver, FrameSender, Runtime};

/// Bytes read from the socket at a time. Reads never exceed the decoder's room either.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A sender keeps its frame buffer for the next send unless it grew past this (one large message
/// should not pin megabytes to an idle connection).
const SEND_BUFFER_KEPT_BYTES_MAX: usize = 1 << 20;

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
#[derive(Debug)]
pub struct SmolConnection {
    receiver: SmolFrameReceiver,
    sender: SmolFrameSender,
}

impl SmolConnection {
    /// Wraps a connected stream, setting `TCP_NODELAY`: frames are whole messages, and a control
    /// message waiting for Nagle's timer is latency for nothing.
    pub fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(SmolConnection {
            receiver: SmolFrameReceiver {
                stream: stream.clone(),
                decoder: FrameDecoder::new(),
                read_buffer: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
                failure: None,
            },
            sender: SmolFrameSender { stream, frame: Vec::new(), failure: None, closed: false },
        })
    }
}

impl FrameSender for SmolConnection {
    async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.sender.send(payload).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.sender.close().await
    }
}

impl FrameReceiver for SmolConnection {
    async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.receiver.recv().await
    }
}

impl FrameConnection for SmolConnection {
    type Receiver = SmolFrameReceiver;
    type Sender = SmolFrameSender;

    fn into_split(self) -> (SmolFrameReceiver, SmolFrameSender) {
        (self.receiver, self.sender)
    }
}

/// An error remembered so that every later call on a failed half returns it again.
#[derive(Clone, Debug)]
struct Failure {
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn of(error: &io::Error) -> Self {
        Failure { kind: error.kind(), message: error.to_string() }
    }

    fn to_error(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

/// The receiving half of a [`SmolConnection`].
pub struct SmolFrameReceiver {
    stream: TcpStream,
    decoder: FrameDecoder,
    read_buffer: Box<[u8]>,
    /// An I/O error or a close in the middle of a frame. Framing errors live in the decoder,
    /// which stays failed by itself.
    failure: Option<Failure>,
}

impl fmt::Debug for SmolFrameReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolFrameReceiver")
            .field("stream", &self.stream)
            .field("buffered_bytes", &self.decoder.buffered_bytes())
            .field("failed", &(self.failure.is_some() || self.decoder.is_failed()))
            .finish()
    }
}

impl FrameReceiver for SmolFrameReceiver {
    async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        // Cancel-safe: bytes move from the socket into the decoder without an await in between.
        loop {
            if let Some(failure) = &self.failure {
                return Err(failure.to_error());
            }
            match self.decoder.next_frame() {
                Ok(Some(payload)) => return Ok(Some(payload)),
                Ok(None) => {}
                Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
            }
            let room = self.decoder.push_capacity().min(self.read_buffer.len());
            assert!(room > 0, "a decoder that returned no frame has room for at least one byte");
            let read = match self.stream.read(&mut self.read_buffer[..room]).await {
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.failure = Some(Failure::of(&error));
                    return Err(error);
                }
            };
            if read == 0 {
                let partial_bytes = self.decoder.buffered_bytes();
                if partial_bytes == 0 {
                    return Ok(None);
                }
                let error = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the peer closed the connection in the middle of a frame ({partial_bytes} bytes of it arrived)"),
                );
                self.failure = Some(Failure::of(&error));
                return Err(error);
            }
            self.decoder.push(&self.read_buffer[..read]);
        }
    }
}

/// The sending half of a [`SmolConnection`].
#[derive(Debug)]
pub struct SmolFrameSender {
    stream: TcpStream,
    /// The frame being written: header and payload in one buffer, so a small frame leaves in one
    /// segment.
    frame: Vec<u8>,
    failure: Option<Failure>,
    closed: bool,
}

impl FrameSender for SmolFrameSender {
    async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        if let Some(failure) = &self.failure {
            return Err(failure.to_error());
        }
        if self.closed {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "this node closed the connection"));
        }
        if payload.len() > FRAME_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a payload of {} bytes is above the frame limit of {FRAME_BYTES_MAX} bytes",
                    payload.len()
                ),
            ));
        }
        let length = u32::try_from(payload.len()).expect("FRAME_BYTES_MAX fits a u32 (limits.rs)");
        self.frame.clear();
        self.frame.reserve(FRAME_HEADER_BYTES + payload.len());
        self.frame.extend_from_slice(&length.to_be_bytes());
        self.frame.extend_from_slice(payload);
        // Failed until the whole frame is written: if this future is dropped half-way, the stream
        // may end in part of a frame, and no later frame could be read correctly after it.
        self.failure = Some(Failure {
            kind: io::ErrorKind::Other,
            message: "an earlier send was cancelled part-way through a frame".to_owned(),
        });
        let written = self.stream.write_all(&self.frame).await;
        if self.frame.capacity() > SEND_BUFFER_KEPT_BYTES_MAX {
            self.frame = Vec::new();
        }
        match written {
            Ok(()) => {
                self.failure = None;
                Ok(())
            }
            Err(error) => {
                self.failure = Some(Failure::of(&error));
                Err(error)
            }
        }
    }

    async fn close(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        // Shuts down the write direction: the peer reads what was sent, then end of stream.
        self.stream.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
