//! Messages over a frame connection, and the handshake every cluster connection opens with.
//!
//! The exchange is the core's [`Handshake`] state machine moved by real frames (see
//! `docs/protocol.md`): both sides send a [`Hello`], check the peer's, send a [`Verdict`], and are
//! connected once they receive the peer's `Accepted`. The whole exchange is bounded by a timeout on
//! the runtime's clock, so a silent or slow peer cannot hold a connection (and its buffers) open.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use rivulet_core::protocol::{
    decode_message, encode_frame, FrameError, Handshake, HandshakeError, Hello, PeerRole, Refusal, Remote,
    Verdict, FRAME_HEADER_BYTES, HELLO_MAGIC,
};
use rivulet_core::time::Instant;
use serde::de::DeserializeOwned;
use serde::Serialize;
use smol::future;

use super::seam::{FrameConnection, FrameReceiver, FrameSender, Runtime};

/// How long a handshake may take by default: generous for a slow edge link, short enough that
/// idle half-open connections do not pile up.
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Sends `message` as one frame. An unencodable or oversized message is refused with
/// [`io::ErrorKind::InvalidInput`] (a local bug: nothing was sent, the connection is intact).
pub async fn send_message<S, T>(sender: &mut S, message: &T) -> io::Result<()>
where
    S: FrameSender + ?Sized,
    T: Serialize,
{
    send_message_with(sender, message, &mut Vec::new()).await
}

/// An encoding buffer larger than this (after one large message) is given back after the send.
const SCRATCH_KEPT_BYTES_MAX: usize = 1 << 20;

/// [`send_message`] encoding into `scratch`, a buffer the caller keeps between messages: a writer
/// that streams batches then encodes each into memory that is already there, instead of growing a
/// new buffer (and copying it at every doubling) for every message.
pub async fn send_message_with<S, T>(sender: &mut S, message: &T, scratch: &mut Vec<u8>) -> io::Result<()>
where
    S: FrameSender + ?Sized,
    T: Serialize,
{
    scratch.clear();
    encode_frame(message, scratch).map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let sent = sender.send(&scratch[FRAME_HEADER_BYTES..]).await;
    if scratch.capacity() > SCRATCH_KEPT_BYTES_MAX {
        *scratch = Vec::new();
    }
    sent
}

/// Receives the next frame as a `T`; `Ok(None)` once the peer closed cleanly.
///
/// A frame that is not exactly one `T` is an error of kind [`io::ErrorKind::InvalidData`] holding the
/// core's [`FrameError`]; the protocol then requires closing the connection (`docs/protocol.md`).
pub async fn recv_message<R, T>(receiver: &mut R) -> io::Result<Option<T>>
where
    R: FrameReceiver + ?Sized,
    T: DeserializeOwned,
{
    let Some(payload) = receiver.recv().await? else {
        return Ok(None);
    };
    decode_message(&payload).map(Some).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// Why a handshake did not connect. Every failure means: drop the connection.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// This node refused the peer's hello and sent it `error` as the reason. `peer_reason` is the
    /// peer's own refusal of this node's hello, when it sent one (a cluster mismatch is refused by
    /// both sides), made safe to log.
    RefusedPeer { error: HandshakeError, peer_reason: Option<String> },
    /// The peer refused this node's hello: always [`HandshakeError::Refused`], whose reason is the
    /// peer's text.
    RefusedByPeer(HandshakeError),
    /// A frame of the handshake (`"hello"` or `"verdict"`) did not decode. A malformed hello is
    /// refused like a mismatch before this is returned.
    Malformed { frame: &'static str, error: FrameError },
    /// The peer closed the connection before the handshake completed.
    Closed,
    /// The handshake did not complete within the timeout.
    TimedOut { timeout: Duration },
    /// The connection failed.
    Io(io::Error),
    /// The peer's hello was valid, but this endpoint does not serve its role; `reason` was sent
    /// to it as the refusal.
    RoleRefused { role: PeerRole, reason: String },
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::RefusedPeer { error, peer_reason: None } => {
                write!(f, "refused the peer: {error}")
            }
            HandshakeFailure::RefusedPeer { error, peer_reason: Some(reason) } => {
                write!(f, "refused the peer: {error} (and the peer refused this node: {reason})")
            }
            HandshakeFailure::RefusedByPeer(error) => write!(f, "{error}"),
            HandshakeFailure::Malformed { frame, error } => {
                write!(f, "the peer's {frame} is malformed: {error}")
            }
            HandshakeFailure::Closed => f.write_str("the peer closed the connection during the handshake"),
            HandshakeFailure::TimedOut { timeout } => {
                write!(f, "the handshake did not complete within {} ms", timeout.as_millis())
            }
            HandshakeFailure::Io(error) => write!(f, "the connection failed during the handshake: {error}"),
            HandshakeFailure::RoleRefused { role, reason } => write!(f, "refused a {role}: {reason}"),
        }
    }
}

impl std::error::Error for HandshakeFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeFailure::RefusedPeer { error, .. } | HandshakeFailure::RefusedByPeer(error) => {
                Some(error)
            }
            HandshakeFailure::Malformed { error, .. } => Some(error),
            HandshakeFailure::Io(error) => Some(error),
            HandshakeFailure::Closed
            | HandshakeFailure::TimedOut { .. }
            | HandshakeFailure::RoleRefused { .. } => None,
        }
    }
}

/// Runs the handshake on a fresh connection: sends `local`, checks the peer's hello, exchanges
/// verdicts. `Ok` is the peer, once both sides accepted; the connection then carries protocol
/// messages.
///
/// Everything is bounded by `timeout` on `runtime`'s clock. When this node refuses the peer, it
/// still reads the peer's verdict (within the timeout) so that a mutual refusal reports both
/// reasons, and then closes its sending direction; the caller drops the connection on any `Err`.
pub async fn handshake<R, C>(
    runtime: &R,
    conn: &mut C,
    local: Hello,
    timeout: Duration,
) -> Result<Remote, HandshakeFailure>
where
    R: Runtime,
    C: FrameConnection,
{
    handshake_accepting(runtime, conn, local, timeout, |_| Ok(())).await
}

/// [`handshake`] for an endpoint that serves only some peers: `accept` sees the peer of a valid
/// hello and may refuse it (by role, say) with a reason that is sent as this node's verdict.
pub async fn handshake_accepting<R, C>(
    runtime: &R,
    conn: &mut C,
    local: Hello,
    timeout: Duration,
    accept: impl FnOnce(&Remote) -> Result<(), Refusal>,
) -> Result<Remote, HandshakeFailure>
where
    R: Runtime,
    C: FrameConnection,
{
    let deadline = runtime.now() + timeout;
    let mut handshake = Handshake::new(local);

    let hello = handshake.outgoing().clone();
    step(runtime, deadline, timeout, send_message(conn, &hello)).await?;

    let peer_hello = match within(runtime, deadline, conn.recv()).await {
        None => return Err(HandshakeFailure::TimedOut { timeout }),
        Some(Ok(None)) => return Err(HandshakeFailure::Closed),
        Some(Ok(Some(payload))) => decode_hello(&payload),
        Some(Err(error)) => match not_a_hello_frame(&error) {
            // The stream cannot be read any further; refuse and leave.
            Some(refusal) => {
                refuse(runtime, deadline, conn, &refusal).await;
                return Err(HandshakeFailure::RefusedPeer { error: refusal, peer_reason: None });
            }
            None => return Err(HandshakeFailure::Io(error)),
        },
    };

    let checked = match peer_hello {
        PeerHello::Decoded(hello) => handshake.on_hello(hello),
        PeerHello::Refused(error) => Err(error),
        PeerHello::Malformed(error) => {
            let reason = Refusal::new(format!("malformed hello: {error}"));
            refuse_with(runtime, deadline, conn, reason).await;
            return Err(HandshakeFailure::Malformed { frame: "hello", error });
        }
    };
    if let Err(error) = checked {
        refuse(runtime, deadline, conn, &error).await;
        let peer_reason = peer_refusal(runtime, deadline, conn).await;
        return Err(HandshakeFailure::RefusedPeer { error, peer_reason });
    }
    if let Ok(peer) = &checked {
        if let Err(refusal) = accept(peer) {
            let (role, reason) = (peer.role, refusal.reason.clone());
            refuse_with(runtime, deadline, conn, refusal).await;
            return Err(HandshakeFailure::RoleRefused { role, reason });
        }
    }

    step(runtime, deadline, timeout, send_message(conn, &Verdict::Accepted)).await?;
    let payload = step(runtime, deadline, timeout, conn.recv()).await?.ok_or(HandshakeFailure::Closed)?;
    let verdict = decode_message::<Verdict>(&payload)
        .map_err(|error| HandshakeFailure::Malformed { frame: "verdict", error })?;
    handshake.on_verdict(verdict).map_err(HandshakeFailure::RefusedByPeer)
}

/// One step of the exchange: an I/O error or the passing of the deadline fails the handshake.
async fn step<R: Runtime, T>(
    runtime: &R,
    deadline: Instant,
    timeout: Duration,
    task: impl Future<Output = io::Result<T>>,
) -> Result<T, HandshakeFailure> {
    match within(runtime, deadline, task).await {
        Some(result) => result.map_err(HandshakeFailure::Io),
        None => Err(HandshakeFailure::TimedOut { timeout }),
    }
}

/// `task`'s output, or `None` if `deadline` on `runtime`'s clock passes first. The choice is biased
/// towards `task` (never random), so a simulation replays it exactly.
async fn within<R: Runtime, T>(runtime: &R, deadline: Instant, task: impl Future<Output = T>) -> Option<T> {
    let remaining = deadline.saturating_duration_since(runtime.now());
    future::or(async { Some(task.await) }, async {
        runtime.sleep(remaining).await;
        None
    })
    .await
}

enum PeerHello {
    Decoded(Hello),
    /// Not a Rivulet peer: refused with the core's reason.
    Refused(HandshakeError),
    /// A Rivulet magic, but not a valid hello.
    Malformed(FrameError),
}

/// The peer's first payload as a hello. A payload that fails to decode is told apart by its first
/// bytes: without the magic the peer is not a Rivulet node at all.
fn decode_hello(payload: &[u8]) -> PeerHello {
    match decode_message::<Hello>(payload) {
        Ok(hello) => PeerHello::Decoded(hello),
        Err(error) => match payload.first_chunk::<4>() {
            Some(found) if *found != HELLO_MAGIC => {
                PeerHello::Refused(HandshakeError::WrongMagic { found: *found })
            }
            _ => PeerHello::Malformed(error),
        },
    }
}

/// If the first frame failed because its header announced more than a frame may hold, the peer
/// is not a Rivulet node: a hello is a few dozen bytes. Such a peer (an HTTP client, say) is told so
/// with the bytes its stream starts with, which are exactly the refused length.
fn not_a_hello_frame(error: &io::Error) -> Option<HandshakeError> {
    let frame_error = error.get_ref()?.downcast_ref::<FrameError>()?;
    let FrameError::TooLarge { length, .. } = frame_error else {
        return None;
    };
    let header = u32::try_from(*length).ok()?;
    Some(HandshakeError::WrongMagic { found: header.to_be_bytes() })
}

/// Sends `error` as this node's refusal and closes this direction, best effort: the connection is
/// being given up anyway. The peer's bytes can still be read.
async fn refuse<R: Runtime, C: FrameConnection>(
    runtime: &R,
    deadline: Instant,
    conn: &mut C,
    error: &HandshakeError,
) {
    refuse_with(runtime, deadline, conn, Refusal::from(error)).await;
}

async fn refuse_with<R: Runtime, C: FrameConnection>(
    runtime: &R,
    deadline: Instant,
    conn: &mut C,
    refusal: Refusal,
) {
    let verdict = Verdict::Refused(refusal);
    if let Some(Err(error)) = within(runtime, deadline, send_message(conn, &verdict)).await {
        tracing::debug!(%error, "could not send the refusal");
    }
    if let Some(Err(error)) = within(runtime, deadline, conn.close()).await {
        tracing::debug!(%error, "could not close after the refusal");
    }
}

/// The peer's verdict after this node refused it: its own refusal's reason, if it refused too.
async fn peer_refusal<R: Runtime, C: FrameConnection>(
    runtime: &R,
    deadline: Instant,
    conn: &mut C,
) -> Option<String> {
    let payload = within(runtime, deadline, conn.recv()).await?.ok()??;
    match decode_message::<Verdict>(&payload).ok()? {
        Verdict::Accepted => None,
        Verdict::Refused(refusal) => Some(loggable(&refusal.reason)),
    }
}

/// A peer's free text made safe for a log line: control characters replaced, cut to the refusal
/// limit (the core does the same for the refusals it decodes itself).
fn loggable(text: &str) -> String {
    let printable: String =
        text.chars().map(|c| if c.is_control() { char::REPLACEMENT_CHARACTER } else { c }).collect();
    Refusal::new(printable).reason
}
