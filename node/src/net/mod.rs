//! The node's network layer: the runtime seam, its smol implementation, and connections that
//! carry the core's protocol.
//!
//! - [`seam`]: the [`Runtime`] trait (clock, timers, tasks, frame connections) the driver is
//!   written against, so production (smol) and the simulator (turmoil) run the same driver;
//! - [`smol_runtime`]: [`SmolRuntime`], frames over real TCP;
//! - [`connection`]: the handshake over any frame connection, and typed message helpers.

pub mod connection;
pub mod framing;
pub mod seam;
pub mod smol_runtime;

pub use connection::{
    handshake, handshake_accepting, recv_message, send_message, HandshakeFailure, HANDSHAKE_TIMEOUT_DEFAULT,
};
pub use seam::{FrameConnection, FrameListener, FrameReceiver, FrameSender, Runtime};
pub use smol_runtime::{SmolConnection, SmolFrameReceiver, SmolFrameSender, SmolListener, SmolRuntime};
