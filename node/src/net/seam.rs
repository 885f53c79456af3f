//! The runtime seam: the little the node's driver needs from an async runtime, at the frame level.
//!
//! The driver is written once against [`Runtime`]. Production implements it on smol over real TCP
//! ([`SmolRuntime`](super::SmolRuntime)); the simulator implements it on turmoil, so the
//! simulation runs the very driver that ships. The seam carries whole frames, not bytes: turmoil's
//! streams speak tokio's I/O traits and smol's speak futures-io, and a frame-level seam needs no
//! adapter between them while letting the simulator see, hold or drop whole messages.
//!
//! # The contract every implementation keeps
//! - **Time.** [`Runtime::now`] and [`Runtime::sleep`] use the runtime's clock (virtual under
//!   simulation). Driver code never reads `std::time` itself.
//! - **Frames.** A frame is one payload of at most
//!   [`FRAME_BYTES_MAX`](rivulet_core::limits::FRAME_BYTES_MAX) bytes; on TCP it travels as a 4-byte
//!   big-endian length and the payload (`docs/protocol.md`). Frames arrive whole, in order, or not
//!   at all; a receiver never buffers more than one maximal frame.
//! - **Errors.** A stream that cannot be cut into valid frames (a declared length above the limit,
//!   a close in the middle of a frame) fails with an `io::Error` of kind
//!   [`InvalidData`](io::ErrorKind::InvalidData) (whose inner error is the core's
//!   [`FrameError`](rivulet_core::protocol::FrameError) when the decoder refused the bytes) or
//!   [`UnexpectedEof`](io::ErrorKind::UnexpectedEof). After any error a connection is failed for
//!   good: every later call returns an error again, so no driver resynchronizes on a corrupt stream.
//! - **Close.** `recv` returns `Ok(None)` once the peer has closed cleanly after a whole frame; and
//!   again on every later call.
//! - **Cancellation.** `recv` is cancel-safe: dropping its future loses no bytes, so a driver may
//!   race it against a timer. `send` is not: a `send` dropped before it completes may have written
//!   part of a frame, so the connection then refuses every later `send`.
//! - **Determinism.** Nothing here may draw randomness or spawn threads; a driver that races
//!   futures uses a biased choice (`futures_lite::future::or`, never `race`).

use std::future::Future;
use std::io;
use std::time::Duration;

use rivulet_core::time::Instant;

/// An async runtime as the node's driver sees it: a clock, timers, tasks and frame connections.
///
/// Clones share one runtime (one clock, one executor, one network).
pub trait Runtime: Clone + Send + Sync + 'static {
    type Listener: FrameListener<Connection = Self::Connection>;
    type Connection: FrameConnection;

    /// The runtime's monotonic clock, as the core's [`Instant`] (nanoseconds since an epoch the
    /// runtime chose; clones agree on it).
    fn now(&self) -> Instant;

    /// Completes once `duration` has passed on the runtime's clock.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;

    /// Runs `task` in the background until it completes or the runtime goes away. `name` is for
    /// logs and traces.
    fn spawn(&self, name: &str, task: impl Future<Output = ()> + Send + 'static);

    /// Listens for connections on `address` (`host:port`; port 0 picks a free port, which
    /// [`FrameListener::local_address`] then tells).
    fn listen(&self, address: &str) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Opens a connection to `address` (`host:port`).
    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Connection>> + Send;
}

/// A listening endpoint that hands out frame connections.
pub trait FrameListener: Send + 'static {
    type Connection: FrameConnection;

    /// The next incoming connection and the peer's address (`host:port`, for logs).
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Connection, String)>> + Send;

    /// The address this listener is bound to, with the port resolved (`127.0.0.1:40123`).
    fn local_address(&self) -> io::Result<String>;
}

/// The sending side of a connection: frames out, then a clean close.
pub trait FrameSender: Send + 'static {
    /// Sends `payload` as one frame and waits until the runtime has taken all of it.
    ///
    /// A payload above `FRAME_BYTES_MAX` is refused with [`io::ErrorKind::InvalidInput`] and
    /// nothing is sent. Not cancel-safe (module docs).
    fn send(&mut self, payload: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes this direction after the frames already sent: the peer's `recv` returns them, then
    /// `Ok(None)`. Later `send`s fail.
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// The receiving side of a connection: frames in.
pub trait FrameReceiver: Send + 'static {
    /// The next frame's payload; `Ok(None)` once the peer closed cleanly. Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = io::Result<Option<Vec<u8>>>> + Send;
}

/// A connection carrying frames both ways. Use it whole for a request-and-answer exchange such as
/// the handshake, or split it to read and write from two tasks at once.
pub trait FrameConnection: FrameSender + FrameReceiver {
    type Receiver: FrameReceiver;
    type Sender: FrameSender;

    /// The two directions as independent halves. The connection closes once both are dropped (or
    /// the sender is closed and the receiver dropped).
    fn into_split(self) -> (Self::Receiver, Self::Sender);
}
