//! The runtime-independent part of a framed connection: turning the bytes a stream delivers into
//! frames, turning a payload into the bytes to write, and remembering failures, so that every
//! runtime (smol in production, turmoil in the simulator) frames identically and only supplies the
//! reads and writes.
//!
//! A receiver loops: [`FrameReadState::next_result`] gives a result to return or asks for bytes; the
//! runtime reads into [`FrameReadState::read_buffer`] and hands the outcome to
//! [`FrameReadState::on_read`]. Reads never exceed what the core's `FrameDecoder` has room for, so a
//! connection holds at most one maximal frame plus its header. A sender calls
//! [`FrameWriteState::begin`], writes the bytes it returns in full, then [`FrameWriteState::finish`].

use std::io;

use rivulet_core::limits::FRAME_BYTES_MAX;
use rivulet_core::protocol::{FrameDecoder, FRAME_HEADER_BYTES};

use super::seam::{FrameConnection, FrameReceiver, FrameSender};

/// Bytes read from a stream at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A send buffer that grew beyond this (for one large frame) is given back afterwards.
const SEND_BUFFER_KEPT_BYTES_MAX: usize = 1 << 20;

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

/// The receiving side's state.
pub struct FrameReadState {
    decoder: FrameDecoder,
    read_buffer: Box<[u8]>,
    /// An I/O error or a close in the middle of a frame. Framing errors live in the decoder, which
    /// stays failed by itself.
    failure: Option<Failure>,
}

impl Default for FrameReadState {
    fn default() -> Self {
        FrameReadState {
            decoder: FrameDecoder::new(),
            read_buffer: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            failure: None,
        }
    }
}

impl FrameReadState {
    /// `Some` result to return (a frame, a clean end, or an error), or `None`: read more bytes.
    pub fn next_result(&mut self) -> Option<io::Result<Option<Vec<u8>>>> {
        if let Some(failure) = &self.failure {
            return Some(Err(failure.to_error()));
        }
        match self.decoder.next_frame() {
            Ok(Some(payload)) => Some(Ok(Some(payload))),
            Ok(None) => None,
            Err(error) => Some(Err(io::Error::new(io::ErrorKind::InvalidData, error))),
        }
    }

    /// Where to read the next bytes: never more than the decoder has room for.
    pub fn read_buffer(&mut self) -> &mut [u8] {
        let room = self.decoder.push_capacity().min(self.read_buffer.len());
        assert!(room > 0, "a decoder that returned no frame has room for at least one byte");
        &mut self.read_buffer[..room]
    }

    /// Takes a read's outcome: `Some` result to return, or `None` to go on with `next_result`.
    /// Interrupted reads are retried; the end of the stream is a clean close only between frames.
    pub fn on_read(&mut self, read: io::Result<usize>) -> Option<io::Result<Option<Vec<u8>>>> {
        let read = match read {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return None,
            Err(error) => {
                self.failure = Some(Failure::of(&error));
                return Some(Err(error));
            }
        };
        if read == 0 {
            let partial_bytes = self.decoder.buffered_bytes();
            if partial_bytes == 0 {
                return Some(Ok(None));
            }
            let error = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the peer closed the connection in the middle of a frame ({partial_bytes} bytes of it arrived)"
                ),
            );
            self.failure = Some(Failure::of(&error));
            return Some(Err(error));
        }
        self.decoder.push(&self.read_buffer[..read]);
        None
    }

    pub fn buffered_bytes(&self) -> usize {
        self.decoder.buffered_bytes()
    }

    pub fn is_failed(&self) -> bool {
        self.failure.is_some() || self.decoder.is_failed()
    }
}

/// The sending side's state.
#[derive(Debug, Default)]
pub struct FrameWriteState {
    /// The frame being written: header and payload in one buffer, so a small frame leaves in one
    /// segment.
    frame: Vec<u8>,
    failure: Option<Failure>,
    closed: bool,
}

impl FrameWriteState {
    /// Checks that a frame may be sent and builds it; the bytes to write in full. Until `finish`,
    /// the sender counts as failed: a send dropped half-way leaves part of a frame on the stream,
    /// after which no frame could be read correctly.
    pub fn begin(&mut self, payload: &[u8]) -> io::Result<&[u8]> {
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
        self.failure = Some(Failure {
            kind: io::ErrorKind::Other,
            message: "an earlier send was cancelled part-way through a frame".to_owned(),
        });
        Ok(&self.frame)
    }

    /// Takes the outcome of writing the frame `begin` returned.
    pub fn finish(&mut self, written: io::Result<()>) -> io::Result<()> {
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

    /// Marks the write direction closed; false if it already was (nothing to do).
    pub fn close(&mut self) -> bool {
        !std::mem::replace(&mut self.closed, true)
    }
}

/// A connection made of an independent receiving and sending half: every runtime's connection.
#[derive(Debug)]
pub struct SplitConnection<R, S> {
    receiver: R,
    sender: S,
}

impl<R, S> SplitConnection<R, S> {
    pub fn from_halves(receiver: R, sender: S) -> Self {
        SplitConnection { receiver, sender }
    }
}

impl<R: FrameReceiver, S: FrameSender> FrameSender for SplitConnection<R, S> {
    async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.sender.send(payload).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.sender.close().await
    }
}

impl<R: FrameReceiver, S: FrameSender> FrameReceiver for SplitConnection<R, S> {
    async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.receiver.recv().await
    }
}

impl<R: FrameReceiver, S: FrameSender> FrameConnection for SplitConnection<R, S> {
    type Receiver = R;
    type Sender = S;

    fn into_split(self) -> (R, S) {
        (self.receiver, self.sender)
    }
}
