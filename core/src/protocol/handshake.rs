//! The handshake that opens every cluster connection: who is speaking, which protocol, which cluster.
//!
//! Both sides send a [`Hello`] as their first frame, without waiting for the other. Each checks the
//! peer's hello ([`Handshake::on_hello`]) and answers with a [`Verdict`] as its second frame:
//! `Accepted`, or `Refused` with a [`Refusal`] naming the reason, after which it closes. A side may
//! send protocol messages once it has *received* the peer's `Accepted` ([`Handshake::on_verdict`]).
//!
//! ```text
//!  node A                         node B
//!    | -- Hello ---------------->   |      (both at once)
//!    |   <---------------- Hello -- |
//!    | -- Verdict::Accepted ----->  |      (or Refused(reason), then close)
//!    |   <----- Verdict::Accepted - |
//!    | == protocol messages ====== |
//! ```
//!
//! Why a verdict frame rather than a refusal only when needed: an accepting side goes straight on to
//! protocol messages, so a peer that sometimes received a refusal in their place could not tell which
//! of the two a frame holds — postcard frames carry no type. A fixed second frame makes the refusal
//! decodable, so both sides log the same reason.
//!
//! # Versioning
//! postcard writes no field tags or names: a message is its fields in order. A reader therefore cannot
//! skip a field it does not know, and a changed message is misread or rejected, never partly
//! understood. The protocol version in the hello is the compatibility contract: peers of different
//! versions refuse each other at once with a clear reason, instead of failing later on a message one of
//! them cannot read. Any change to a message's encoding after the handshake bumps
//! [`PROTOCOL_VERSION`]. [`Hello`], [`PeerRole`], [`Verdict`] and [`Refusal`] are frozen for every
//! version, so that nodes of any two versions can still tell each other why they disagree.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::ClusterId;
use crate::limits::{NODE_NAME_BYTES_MAX, REFUSAL_REASON_BYTES_MAX};

/// The first bytes of every hello's payload: they tell a Rivulet peer from anything else.
pub const HELLO_MAGIC: [u8; 4] = *b"RVLT";

/// The version of every message after the handshake; see the module docs. Version 2 (this
/// build) sends batches as column blocks, paces channels between TaskManagers with 8 credits, and
/// adds `JobEnded`, `StopSources`, `HeartbeatReply`, `Metrics` and a job's `waiting_for`: a node
/// of version 1 could not follow it, so the handshake refuses one. Version 3 adds checkpoints:
/// barriers on channels, `TriggerCheckpoint`, `CheckpointState`, `CheckpointDeclined`,
/// `CheckpointComplete`, `RestoreState` and a deployment's `restore_from`. Version 4 adds
/// savepoints and stopping to the client protocol (`Submit`'s `from_savepoint`, `Stop`,
/// `Savepoint`, a job's `checkpoints` and `savepoints`). Version 5 adds `DataMessage::KeepAlive`,
/// which a data link's sender writes when it has been quiet for a while.
pub const PROTOCOL_VERSION: u16 = 5;

/// What a peer is to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRole {
    JobManager,
    TaskManager,
    /// A CLI or another program submitting and controlling jobs.
    Client,
}

impl fmt::Display for PeerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerRole::JobManager => "JobManager",
            PeerRole::TaskManager => "TaskManager",
            PeerRole::Client => "client",
        })
    }
}

/// The first frame each side sends on a connection. Its encoding never changes (module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`HELLO_MAGIC`].
    pub magic: [u8; 4],
    pub protocol_version: u16,
    pub cluster: ClusterId,
    pub role: PeerRole,
    /// The node's name for logs, such as `tm-3` or `jobmanager`; see [`check_node_name`].
    pub node: String,
}

impl Hello {
    /// This node's hello, in this build's protocol version. Fails if `node` is not a valid name.
    pub fn new(cluster: ClusterId, role: PeerRole, node: impl Into<String>) -> Result<Self, HandshakeError> {
        let node = node.into();
        check_node_name(&node)?;
        Ok(Hello { magic: HELLO_MAGIC, protocol_version: PROTOCOL_VERSION, cluster, role, node })
    }
}

/// Checks that `name` is 1 to [`NODE_NAME_BYTES_MAX`] ASCII letters, digits, `-`, `_` or `.`: a
/// peer's name goes into log lines, where control characters or a megabyte of text do harm.
pub fn check_node_name(name: &str) -> Result<(), HandshakeError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > NODE_NAME_BYTES_MAX || !name.chars().all(valid_char) {
        return Err(HandshakeError::InvalidNodeName { name: truncate(name, NODE_NAME_BYTES_MAX) });
    }
    Ok(())
}

/// Why a node refuses a connection, sent in [`Verdict::Refused`] before it closes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: String,
}

impl Refusal {
    /// A refusal for any reason, such as a role this endpoint does not serve; cut to
    /// [`REFUSAL_REASON_BYTES_MAX`] bytes.
    pub fn new(reason: impl Into<String>) -> Self {
        Refusal { reason: truncate(&reason.into(), REFUSAL_REASON_BYTES_MAX) }
    }
}

impl From<&HandshakeError> for Refusal {
    fn from(error: &HandshakeError) -> Self {
        Refusal::new(error.to_string())
    }
}

/// The second frame each side sends: its answer to the peer's hello. Its encoding never changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Accepted,
    Refused(Refusal),
}

impl Verdict {
    /// The verdict to send for the outcome of [`Handshake::on_hello`].
    pub fn answering(checked: &Result<Remote, HandshakeError>) -> Self {
        match checked {
            Ok(_) => Verdict::Accepted,
            Err(error) => Verdict::Refused(Refusal::from(error)),
        }
    }
}

/// The peer of an accepted hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub role: PeerRole,
    /// A valid node name ([`check_node_name`]).
    pub node: String,
}

/// Why a handshake failed: a mismatch found in the peer's hello (send it back as a [`Refusal`]), or
/// the peer's own refusal.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HandshakeError {
    #[error("peer is not a Rivulet node: its hello starts with \"{}\", expected \"RVLT\"", .found.escape_ascii())]
    WrongMagic { found: [u8; 4] },
    #[error("peer speaks protocol version {peer}, this node speaks {local}")]
    VersionMismatch { peer: u16, local: u16 },
    #[error("peer belongs to {peer}, this node to {local}")]
    ClusterMismatch { peer: ClusterId, local: ClusterId },
    #[error(
        "node name {name:?} is not 1 to {max} ASCII letters, digits, '-', '_' or '.'",
        max = NODE_NAME_BYTES_MAX
    )]
    InvalidNodeName { name: String },
    /// The peer refused this node's hello; `reason` is the peer's, made safe to log.
    #[error("{node} refused the connection: {reason}")]
    Refused { node: String, reason: String },
}

/// One side of a connection's handshake, as a sans-IO state machine.
///
/// The driver sends [`outgoing`](Self::outgoing) as its first frame, feeds the peer's first frame to
/// [`on_hello`](Self::on_hello) and sends the resulting [`Verdict`] (`Accepted`, or the error as a
/// [`Refusal`] before closing), then feeds the peer's second frame to
/// [`on_verdict`](Self::on_verdict). Calling them out of this order is a driver bug and panics.
///
/// ```
/// use rivulet_core::ids::ClusterId;
/// use rivulet_core::protocol::{encode_frame, Handshake, Hello, PeerRole, Verdict};
///
/// let mut handshake = Handshake::new(Hello::new(ClusterId(4), PeerRole::TaskManager, "tm-3")?);
/// let mut to_send = Vec::new();
/// encode_frame(handshake.outgoing(), &mut to_send)?;
/// // The peer's hello arrives (decoded with `decode_message::<Hello>`):
/// let checked = handshake.on_hello(Hello::new(ClusterId(4), PeerRole::JobManager, "jobmanager")?);
/// encode_frame(&Verdict::answering(&checked), &mut to_send)?; // and close if `checked` is an error
/// // The peer's verdict arrives (decoded with `decode_message::<Verdict>`):
/// let remote = handshake.on_verdict(Verdict::Accepted)?;
/// assert_eq!((remote.role, remote.node.as_str()), (PeerRole::JobManager, "jobmanager"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Handshake {
    local: Hello,
    state: State,
}

#[derive(Debug)]
enum State {
    AwaitingHello,
    AwaitingVerdict(Remote),
    Established(Remote),
    Failed(HandshakeError),
}

impl Handshake {
    /// # Panics
    /// If `local` is not a hello of this build (build it with [`Hello::new`]).
    pub fn new(local: Hello) -> Self {
        assert_eq!(local.magic, HELLO_MAGIC, "a local hello carries the magic");
        assert_eq!(local.protocol_version, PROTOCOL_VERSION, "a local hello speaks this build's version");
        assert!(check_node_name(&local.node).is_ok(), "a local hello has a valid node name");
        Handshake { local, state: State::AwaitingHello }
    }

    /// The hello to send as the first frame.
    pub fn outgoing(&self) -> &Hello {
        &self.local
    }

    /// Checks the peer's hello. `Ok` means send [`Verdict::Accepted`] and wait for the peer's
    /// verdict; `Err` means send the error as a [`Refusal`] and close. [`Verdict::answering`] turns
    /// the result into the verdict to send.
    pub fn on_hello(&mut self, remote: Hello) -> Result<Remote, HandshakeError> {
        assert!(matches!(self.state, State::AwaitingHello), "on_hello once, first: {:?}", self.state);
        let checked = self.check(&remote).map(|()| Remote { role: remote.role, node: remote.node });
        self.state = match &checked {
            Ok(peer) => State::AwaitingVerdict(peer.clone()),
            Err(error) => State::Failed(error.clone()),
        };
        checked
    }

    fn check(&self, remote: &Hello) -> Result<(), HandshakeError> {
        // The magic first: without it the other fields mean nothing.
        if remote.magic != HELLO_MAGIC {
            return Err(HandshakeError::WrongMagic { found: remote.magic });
        }
        if remote.protocol_version != self.local.protocol_version {
            return Err(HandshakeError::VersionMismatch {
                peer: remote.protocol_version,
                local: self.local.protocol_version,
            });
        }
        if remote.cluster != self.local.cluster {
            return Err(HandshakeError::ClusterMismatch { peer: remote.cluster, local: self.local.cluster });
        }
        check_node_name(&remote.node)
    }

    /// Takes the peer's verdict on this node's hello. `Ok` means the connection is established.
    pub fn on_verdict(&mut self, verdict: Verdict) -> Result<Remote, HandshakeError> {
        let State::AwaitingVerdict(remote) = &self.state else {
            panic!("on_verdict only after an accepted hello: {:?}", self.state);
        };
        match verdict {
            Verdict::Accepted => {
                let remote = remote.clone();
                self.state = State::Established(remote.clone());
                Ok(remote)
            }
            Verdict::Refused(refusal) => {
                let error =
                    HandshakeError::Refused { node: remote.node.clone(), reason: loggable(&refusal.reason) };
                self.state = State::Failed(error.clone());
                Err(error)
            }
        }
    }

    /// The peer, once both sides have accepted.
    pub fn established(&self) -> Option<&Remote> {
        match &self.state {
            State::Established(remote) => Some(remote),
            _ => None,
        }
    }

    /// Why the handshake failed, if it did: the connection is to be closed.
    pub fn failure(&self) -> Option<&HandshakeError> {
        match &self.state {
            State::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// A peer's free text made safe for a log line: cut to the limit, control characters replaced.
fn loggable(text: &str) -> String {
    // Replace first and cut after: a replacement character is longer than what it replaces. The
    // peer's text is at most a frame, so the copy is bounded.
    let printable: String =
        text.chars().map(|c| if c.is_control() { char::REPLACEMENT_CHARACTER } else { c }).collect();
    truncate(&printable, REFUSAL_REASON_BYTES_MAX)
}

/// `text` cut to at most `bytes_max` bytes at a character boundary, with `…` marking a cut.
fn truncate(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let ellipsis = '…';
    assert!(bytes_max >= ellipsis.len_utf8());
    let mut end = bytes_max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text[..end].to_owned();
    cut.push(ellipsis);
    assert!(cut.len() <= bytes_max);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{decode_message, encode_frame, FrameDecoder};

    fn hello(cluster: u64, role: PeerRole, node: &str) -> Hello {
        Hello::new(ClusterId(cluster), role, node).unwrap()
    }

    /// Runs the handshake between two nodes through real frames, as two drivers would.
    fn connect(a: Hello, b: Hello) -> (Result<Remote, HandshakeError>, Result<Remote, HandshakeError>) {
        let (mut a, mut b) = (Handshake::new(a), Handshake::new(b));
        // The hellos cross, then the verdicts.
        let (hello_to_b, hello_to_a) = (through_frame(a.outgoing()), through_frame(b.outgoing()));
        let (a_checked, b_checked) = (a.on_hello(hello_to_a), b.on_hello(hello_to_b));
        let verdict_to_b = through_frame(&Verdict::answering(&a_checked));
        let verdict_to_a = through_frame(&Verdict::answering(&b_checked));
        // A refusing side closes without reading the peer's verdict.
        (
            a_checked.and_then(|_| a.on_verdict(verdict_to_a)),
            b_checked.and_then(|_| b.on_verdict(verdict_to_b)),
        )
    }

    fn through_frame<T: Serialize + serde::de::DeserializeOwned>(message: &T) -> T {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        decode_message(&decoder.next_frame().unwrap().unwrap()).unwrap()
    }

    #[test]
    fn matching_peers_connect() {
        let (jm, tm) =
            connect(hello(4, PeerRole::JobManager, "jobmanager"), hello(4, PeerRole::TaskManager, "tm-3"));
        assert_eq!(jm, Ok(Remote { role: PeerRole::TaskManager, node: "tm-3".to_owned() }));
        assert_eq!(tm, Ok(Remote { role: PeerRole::JobManager, node: "jobmanager".to_owned() }));
    }

    #[test]
    fn the_handshake_is_established_only_after_the_peers_verdict() {
        let mut side = Handshake::new(hello(4, PeerRole::Client, "cli"));
        assert!(side.on_hello(hello(4, PeerRole::JobManager, "jobmanager")).is_ok());
        assert_eq!(side.established(), None);
        side.on_verdict(Verdict::Accepted).unwrap();
        assert_eq!(side.established().map(|r| r.node.as_str()), Some("jobmanager"));
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let mut newer = hello(4, PeerRole::TaskManager, "tm-3");
        newer.protocol_version = PROTOCOL_VERSION + 1;
        let mut side = Handshake::new(hello(4, PeerRole::JobManager, "jobmanager"));
        let error = side.on_hello(newer).unwrap_err();
        let expected = format!(
            "peer speaks protocol version {}, this node speaks {PROTOCOL_VERSION}",
            PROTOCOL_VERSION + 1
        );
        assert_eq!(error.to_string(), expected);
        assert_eq!(side.failure(), Some(&error));
    }

    #[test]
    fn another_cluster_is_refused_by_both_sides() {
        let (jm, tm) =
            connect(hello(4, PeerRole::JobManager, "jobmanager"), hello(9, PeerRole::TaskManager, "tm-3"));
        assert_eq!(jm.unwrap_err().to_string(), "peer belongs to cluster-9, this node to cluster-4");
        assert_eq!(tm.unwrap_err().to_string(), "peer belongs to cluster-4, this node to cluster-9");
    }

    #[test]
    fn a_wrong_magic_is_refused() {
        let mut stranger = hello(4, PeerRole::Client, "cli");
        stranger.magic = *b"GET ";
        let mut side = Handshake::new(hello(4, PeerRole::JobManager, "jobmanager"));
        assert_eq!(
            side.on_hello(stranger).unwrap_err().to_string(),
            "peer is not a Rivulet node: its hello starts with \"GET \", expected \"RVLT\""
        );
    }

    #[test]
    fn an_invalid_peer_node_name_is_refused() {
        let mut side = Handshake::new(hello(4, PeerRole::JobManager, "jobmanager"));
        let mut peer = hello(4, PeerRole::TaskManager, "tm-3");
        peer.node = "tm-3\nERROR forged log line".to_owned();
        assert_eq!(
            side.on_hello(peer).unwrap_err().to_string(),
            "node name \"tm-3\\nERROR forged log line\" is not 1 to 64 ASCII letters, digits, '-', '_' or '.'"
        );
    }

    #[test]
    fn node_names_are_short_and_printable() {
        assert!(check_node_name("edge-01.site_a").is_ok());
        assert!(check_node_name(&"n".repeat(NODE_NAME_BYTES_MAX)).is_ok());
        assert!(check_node_name("").is_err());
        assert!(check_node_name("tm 3").is_err());
        assert!(check_node_name("tm-ß").is_err());
        let HandshakeError::InvalidNodeName { name } = check_node_name(&"n".repeat(10_000)).unwrap_err()
        else {
            unreachable!()
        };
        assert!(name.len() <= NODE_NAME_BYTES_MAX && name.ends_with('…'));
    }

    #[test]
    fn a_refused_side_logs_the_refusers_reason() {
        // The JobManager serves only clients on this endpoint: a refusal of its own making.
        let mut tm = Handshake::new(hello(4, PeerRole::TaskManager, "tm-3"));
        tm.on_hello(hello(4, PeerRole::JobManager, "jobmanager")).unwrap();
        let refusal = through_frame(&Verdict::Refused(Refusal::new("this endpoint serves clients only")));
        assert_eq!(
            tm.on_verdict(refusal).unwrap_err().to_string(),
            "jobmanager refused the connection: this endpoint serves clients only"
        );
        assert_eq!(tm.established(), None);
        assert!(matches!(tm.failure(), Some(HandshakeError::Refused { .. })));
    }

    #[test]
    fn a_peers_reason_is_made_safe_to_log() {
        let mut side = Handshake::new(hello(4, PeerRole::TaskManager, "tm-3"));
        side.on_hello(hello(4, PeerRole::JobManager, "jobmanager")).unwrap();
        let reason = format!("bad\r\nforged{}", "x".repeat(1 << 20));
        let HandshakeError::Refused { reason, .. } =
            side.on_verdict(Verdict::Refused(Refusal { reason })).unwrap_err()
        else {
            unreachable!()
        };
        assert!(reason.starts_with("bad\u{FFFD}\u{FFFD}forged"));
        assert!(reason.len() <= REFUSAL_REASON_BYTES_MAX);
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(100), 10);
        assert!(cut.len() <= 10 && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn the_hello_encoding_is_frozen() {
        let mut bytes = Vec::new();
        encode_frame(&hello(4, PeerRole::TaskManager, "tm-3"), &mut bytes).unwrap();
        // Magic, version 5, cluster 4, role 1 (TaskManager), name length 4, name.
        assert_eq!(bytes[4..], [b'R', b'V', b'L', b'T', 5, 4, 1, 4, b't', b'm', b'-', b'3']);
        let mut bytes = Vec::new();
        encode_frame(&Verdict::Refused(Refusal::new("no")), &mut bytes).unwrap();
        assert_eq!(bytes[4..], [1, 2, b'n', b'o']);
    }

    #[test]
    #[should_panic(expected = "on_verdict only after an accepted hello")]
    fn a_verdict_before_the_hello_is_a_driver_bug() {
        let mut side = Handshake::new(hello(4, PeerRole::Client, "cli"));
        let _ = side.on_verdict(Verdict::Accepted);
    }
}
