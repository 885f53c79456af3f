//! The cluster's wire protocol: how JobManager, TaskManagers and clients talk over a byte stream.
//!
//! Sans-IO like the rest of the core: the node reads bytes from TCP and hands them to a
//! [`FrameDecoder`], and writes the bytes [`encode_frame`] produces. Nothing here owns a socket.
//!
//! - [`frame`]: length-prefixed frames (a 4-byte big-endian length, then a postcard payload of at most
//!   [`FRAME_BYTES_MAX`](crate::limits::FRAME_BYTES_MAX) bytes) and message decoding;
//! - [`client`]: what clients (the CLI, REST) ask the JobManager and what it answers;
//! - [`messages`]: what TaskManagers and the JobManager say after the handshake (version 2);
//! - [`wire_batch`]: record batches and stream elements on the wire, checked on arrival;
//! - [`handshake`]: the `Hello` and `Verdict` every connection opens with, which check the magic, the
//!   protocol version and the cluster before any other message is read.
//!
//! Every connection starts with the handshake; each message after it is one frame. postcard frames
//! carry neither field tags nor type names, so both sides must agree on what each frame holds: the
//! handshake's [`PROTOCOL_VERSION`] is that agreement.

pub mod client;
pub mod frame;
pub mod handshake;
pub mod messages;
pub mod wire_batch;

pub use frame::{decode_message, encode_frame, FrameDecoder, FrameError, FRAME_HEADER_BYTES};
pub use handshake::{
    check_node_name, Handshake, HandshakeError, Hello, PeerRole, Refusal, Remote, Verdict, HELLO_MAGIC,
    PROTOCOL_VERSION,
};
