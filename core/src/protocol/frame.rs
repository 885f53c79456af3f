//! Length-prefixed frames: how messages are cut out of a connection's byte stream.
//!
//! A frame is a 4-byte big-endian payload length followed by that many payload bytes; the payload is
//! one message encoded with postcard. Lengths above [`FRAME_BYTES_MAX`] are refused as soon as the
//! header arrives, so a peer can never make a node buffer more than one maximal frame.
//!
//! ```text
//! +----------------+-----------------------------------+
//! | length: u32 BE | payload: `length` postcard bytes  |
//! +----------------+-----------------------------------+
//! ```
//!
//! Every error here means the byte stream can no longer be trusted: the node logs it and closes the
//! connection. The [`FrameDecoder`] therefore stays failed after its first error.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::limits::FRAME_BYTES_MAX;

/// Bytes of the frame header: the payload length as a big-endian `u32`.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Bytes a [`FrameDecoder`] buffers at most: one maximal frame and its header.
const DECODER_BUFFER_BYTES_MAX: usize = FRAME_HEADER_BYTES + FRAME_BYTES_MAX;

/// Why a frame could not be encoded or decoded. Each is fatal for the connection it came from.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The peer declared a payload longer than the limit; refused before its body is read.
    #[error("the peer declared a frame of {length} bytes, above the limit of {max} bytes")]
    TooLarge { length: usize, max: usize },
    /// A local message encodes to more than the limit (a bug or a message that must be split).
    #[error("the message encodes to more than {max} bytes, the frame limit")]
    MessageTooLarge { max: usize },
    /// A payload is not exactly one valid encoding of the expected message.
    #[error("malformed message: {message}")]
    Malformed { message: String },
    /// serde refused to encode a local message (e.g. a sequence of unknown length).
    #[error("cannot encode the message: {message}")]
    Unencodable { message: String },
}

/// Appends one frame holding `message` to `out`.
///
/// On error `out` is left as it was. Encoding stops as soon as the payload passes
/// [`FRAME_BYTES_MAX`], so an oversized message costs no more than the limit in memory.
pub fn encode_frame<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let frame_start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let payload_start = out.len();
    let flavor = BoundedVec { out: &mut *out, payload_start };
    if let Err(error) = postcard::serialize_with_flavor(message, flavor) {
        out.truncate(frame_start);
        return Err(match error {
            postcard::Error::SerializeBufferFull => FrameError::MessageTooLarge { max: FRAME_BYTES_MAX },
            other => FrameError::Unencodable { message: other.to_string() },
        });
    }
    let payload_bytes = out.len() - payload_start;
    assert!(payload_bytes <= FRAME_BYTES_MAX, "the bounded flavor stops at the limit");
    let header = u32::try_from(payload_bytes).expect("FRAME_BYTES_MAX fits a u32 (limits.rs)");
    out[frame_start..payload_start].copy_from_slice(&header.to_be_bytes());
    Ok(())
}

/// A postcard output that appends to a `Vec` and fails once the payload would pass the limit.
struct BoundedVec<'a> {
    out: &'a mut Vec<u8>,
    payload_start: usize,
}

impl BoundedVec<'_> {
    fn check_room(&self, additional: usize) -> postcard::Result<()> {
        let payload_bytes = self.out.len() - self.payload_start;
        if additional > FRAME_BYTES_MAX - payload_bytes {
            return Err(postcard::Error::SerializeBufferFull);
        }
        Ok(())
    }
}

impl postcard::ser_flavors::Flavor for BoundedVec<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.check_room(data.len())?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.check_room(1)?;
        self.out.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes one message from a frame's payload. The payload must hold exactly one message: trailing
/// bytes, a truncated message, an unknown enum tag or invalid UTF-8 are [`FrameError::Malformed`].
pub fn decode_message<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let malformed = |detail: String| FrameError::Malformed {
        message: format!("{}: {detail} (payload of {} bytes)", short_type_name::<T>(), payload.len()),
    };
    match postcard::take_from_bytes::<T>(payload) {
        Ok((message, [])) => Ok(message),
        Ok((_, rest)) => Err(malformed(format!("{} trailing bytes after the message", rest.len()))),
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            Err(malformed("the payload ends in the middle of the message".to_owned()))
        }
        Err(postcard::Error::SerdeDeCustom) => {
            Err(malformed("an invalid value, such as an unknown enum tag".to_owned()))
        }
        Err(other) => Err(malformed(other.to_string())),
    }
}

/// `rivulet_core::protocol::handshake::Hello` → `Hello`, for error messages.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let without_generics = full.split('<').next().unwrap_or(full);
    without_generics.rsplit("::").next().unwrap_or(without_generics)
}

/// Cuts frames out of a connection's byte stream as it arrives, in any chunk sizes.
///
/// The driver pushes what it read — at most [`FrameDecoder::push_capacity`] bytes at a time — and
/// then calls [`FrameDecoder::next_frame`] until it returns `Ok(None)`. That keeps the buffer within
/// one maximal frame plus its header whatever the peer sends. The decoder never allocates ahead of
/// the bytes that arrived: a declared length is a claim, not a reservation.
///
/// After an error the decoder is failed for good: `push` ignores its input and `next_frame` returns
/// the same error again, so a driver cannot resynchronize on a corrupt stream by mistake.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Received bytes; those before `start` are already consumed.
    buffer: Vec<u8>,
    start: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bytes the next [`push`](Self::push) may carry. After `next_frame` has returned
    /// `Ok(None)` this is at least 1, because what remains buffered is a frame still incomplete.
    pub fn push_capacity(&self) -> usize {
        DECODER_BUFFER_BYTES_MAX - self.buffered_bytes()
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Appends bytes received from the peer.
    ///
    /// # Panics
    /// If `bytes` is longer than [`push_capacity`](Self::push_capacity): the driver must drain
    /// complete frames before pushing more, or a fast peer would grow the buffer without bound.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        assert!(
            bytes.len() <= self.push_capacity(),
            "pushed {} bytes into a frame decoder with room for {}: drain next_frame first",
            bytes.len(),
            self.push_capacity()
        );
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
        self.assert_invariants();
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed, or the error that
    /// failed the stream (now and on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let available = &self.buffer[self.start..];
        let Some(header) = available.first_chunk::<FRAME_HEADER_BYTES>() else {
            return Ok(None);
        };
        let length = u32::from_be_bytes(*header) as usize;
        if length > FRAME_BYTES_MAX {
            let error = FrameError::TooLarge { length, max: FRAME_BYTES_MAX };
            self.fail(error.clone());
            return Err(error);
        }
        let Some(payload) = available[FRAME_HEADER_BYTES..].get(..length) else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.start += FRAME_HEADER_BYTES + length;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.assert_invariants();
        Ok(Some(payload))
    }

    /// Whether an error has failed the stream.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn fail(&mut self, error: FrameError) {
        self.failed = Some(error);
        // Nothing buffered will ever be read again.
        self.buffer = Vec::new();
        self.start = 0;
    }

    fn assert_invariants(&self) {
        assert!(self.start <= self.buffer.len());
        assert!(self.buffered_bytes() <= DECODER_BUFFER_BYTES_MAX);
        assert!(self.failed.is_none() || self.buffer.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Position {
        split: u32,
        offset: u64,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum TestMessage {
        Ping,
        Text(String),
        Numbers(Vec<i64>),
        Nested { name: String, positions: Vec<Position>, parent: Option<Box<TestMessage>> },
        Bytes(Vec<u8>),
    }

    fn test_message() -> impl Strategy<Value = TestMessage> {
        let position = (any::<u32>(), any::<u64>()).prop_map(|(split, offset)| Position { split, offset });
        let leaf = prop_oneof![
            Just(TestMessage::Ping),
            ".{0,40}".prop_map(TestMessage::Text),
            prop::collection::vec(any::<i64>(), 0..50).prop_map(TestMessage::Numbers),
            prop::collection::vec(any::<u8>(), 0..300).prop_map(TestMessage::Bytes),
        ];
        leaf.prop_recursive(3, 16, 4, move |inner| {
            (".{0,20}", prop::collection::vec(position.clone(), 0..8), prop::option::of(inner)).prop_map(
                |(name, positions, parent)| TestMessage::Nested {
                    name,
                    positions,
                    parent: parent.map(Box::new),
                },
            )
        })
    }

    fn encode_all(messages: &[TestMessage]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for message in messages {
            encode_frame(message, &mut bytes).expect("test messages are small");
        }
        bytes
    }

    /// Pushes `bytes` in the given chunk sizes (cycled), draining frames after every push.
    fn decode_in_chunks(bytes: &[u8], chunk_sizes: &[usize]) -> Result<Vec<TestMessage>, FrameError> {
        let mut decoder = FrameDecoder::new();
        let mut messages = Vec::new();
        let mut rest = bytes;
        let mut sizes = chunk_sizes.iter().copied().cycle();
        while !rest.is_empty() {
            let size = sizes.next().unwrap_or(1).clamp(1, decoder.push_capacity()).min(rest.len());
            let (chunk, remaining) = rest.split_at(size);
            decoder.push(chunk);
            rest = remaining;
            while let Some(payload) = decoder.next_frame()? {
                messages.push(decode_message(&payload)?);
            }
            assert!(decoder.push_capacity() >= 1, "a drained decoder always has room");
        }
        assert_eq!(decoder.buffered_bytes(), 0, "every byte belongs to a complete frame");
        Ok(messages)
    }

    #[test]
    fn frame_layout_is_a_big_endian_length_then_the_payload() {
        let mut bytes = vec![0xAA];
        encode_frame(&TestMessage::Text("hi".to_owned()), &mut bytes).unwrap();
        // Tag 1 (Text), length 2, "hi".
        assert_eq!(bytes, [0xAA, 0, 0, 0, 4, 1, 2, b'h', b'i']);
    }

    #[test]
    fn frames_round_trip_whole_and_byte_by_byte() {
        let messages = vec![
            TestMessage::Ping,
            TestMessage::Text("tm-3 ⟶ jobmanager".to_owned()),
            TestMessage::Numbers(vec![i64::MIN, -1, 0, 1, i64::MAX]),
            TestMessage::Nested {
                name: "source".to_owned(),
                positions: vec![Position { split: 0, offset: 17 }, Position { split: 9, offset: u64::MAX }],
                parent: Some(Box::new(TestMessage::Bytes(vec![0; 1000]))),
            },
            TestMessage::Text(String::new()),
        ];
        let bytes = encode_all(&messages);
        assert_eq!(decode_in_chunks(&bytes, &[bytes.len()]).unwrap(), messages);
        assert_eq!(decode_in_chunks(&bytes, &[1]).unwrap(), messages);
    }

    #[test]
    fn an_empty_payload_is_a_frame() {
        let mut bytes = Vec::new();
        encode_frame(&(), &mut bytes).unwrap();
        assert_eq!(bytes, [0, 0, 0, 0]);
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame(), Ok(Some(Vec::new())));
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn a_message_above_the_limit_is_an_error_and_leaves_the_output_alone() {
        let mut out = vec![1, 2, 3];
        let huge = TestMessage::Bytes(vec![7; FRAME_BYTES_MAX]);
        assert_eq!(encode_frame(&huge, &mut out), Err(FrameError::MessageTooLarge { max: FRAME_BYTES_MAX }));
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn a_message_of_exactly_the_limit_fits() {
        // A `Vec<u8>` of n bytes encodes as its varint length and the bytes.
        let varint_bytes = 4; // FRAME_BYTES_MAX needs 24 bits: four 7-bit groups.
        let message = vec![7u8; FRAME_BYTES_MAX - varint_bytes];
        let mut out = Vec::new();
        encode_frame(&message, &mut out).unwrap();
        assert_eq!(out.len(), FRAME_HEADER_BYTES + FRAME_BYTES_MAX);
        let mut decoder = FrameDecoder::new();
        assert_eq!(decoder.push_capacity(), out.len());
        decoder.push(&out);
        let payload = decoder.next_frame().unwrap().unwrap();
        assert_eq!(decode_message::<Vec<u8>>(&payload).unwrap(), message);
    }

    #[test]
    fn a_too_large_length_fails_before_its_body_arrives() {
        let mut decoder = FrameDecoder::new();
        let length = FRAME_BYTES_MAX as u32 + 1;
        decoder.push(&length.to_be_bytes()[..3]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(&length.to_be_bytes()[3..]);
        let expected = FrameError::TooLarge { length: FRAME_BYTES_MAX + 1, max: FRAME_BYTES_MAX };
        assert_eq!(decoder.next_frame(), Err(expected.clone()));
        assert_eq!(
            expected.to_string(),
            "the peer declared a frame of 8388609 bytes, above the limit of 8388608 bytes"
        );
    }

    #[test]
    fn a_failed_decoder_stays_failed() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&u32::MAX.to_be_bytes());
        let error = decoder.next_frame().unwrap_err();
        assert!(decoder.is_failed());
        let mut valid = Vec::new();
        encode_frame(&TestMessage::Ping, &mut valid).unwrap();
        decoder.push(&valid);
        assert_eq!(decoder.next_frame(), Err(error.clone()));
        assert_eq!(decoder.next_frame(), Err(error));
        assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn frames_are_returned_before_a_later_too_large_header() {
        let mut bytes = encode_all(&[TestMessage::Ping]);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert!(decoder.next_frame().unwrap().is_some());
        assert!(matches!(decoder.next_frame(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    #[should_panic(expected = "drain next_frame first")]
    fn pushing_past_the_capacity_is_a_driver_bug() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&vec![0; DECODER_BUFFER_BYTES_MAX + 1]);
    }

    #[test]
    fn a_truncated_payload_is_malformed() {
        let mut bytes = Vec::new();
        encode_frame(&TestMessage::Text("hello".to_owned()), &mut bytes).unwrap();
        let payload = &bytes[FRAME_HEADER_BYTES..bytes.len() - 1];
        assert_eq!(
            decode_message::<TestMessage>(payload).unwrap_err().to_string(),
            "malformed message: TestMessage: the payload ends in the middle of the message \
             (payload of 6 bytes)"
        );
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut bytes = Vec::new();
        encode_frame(&TestMessage::Ping, &mut bytes).unwrap();
        let mut payload = bytes[FRAME_HEADER_BYTES..].to_vec();
        payload.extend_from_slice(&[0, 0]);
        assert_eq!(
            decode_message::<TestMessage>(&payload).unwrap_err().to_string(),
            "malformed message: TestMessage: 2 trailing bytes after the message (payload of 3 bytes)"
        );
    }

    #[test]
    fn an_unknown_enum_tag_is_malformed() {
        let error = decode_message::<TestMessage>(&[5]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed message: TestMessage: an invalid value, such as an unknown enum tag \
             (payload of 1 bytes)"
        );
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let error = decode_message::<TestMessage>(&[1, 2, 0xFF, 0xFE]).unwrap_err();
        assert!(matches!(error, FrameError::Malformed { .. }), "{error}");
    }

    #[test]
    fn a_huge_declared_sequence_length_does_not_allocate_it() {
        // Numbers with a declared length of 2^63 elements and no elements.
        let payload = [2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(matches!(decode_message::<TestMessage>(&payload), Err(FrameError::Malformed { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn frames_in_random_chunks_give_the_same_messages_in_order(
            messages in prop::collection::vec(test_message(), 0..20),
            chunk_sizes in prop::collection::vec(1usize..64, 1..20),
        ) {
            let bytes = encode_all(&messages);
            prop_assert_eq!(decode_in_chunks(&bytes, &chunk_sizes).unwrap(), messages.clone());
            prop_assert_eq!(decode_in_chunks(&bytes, &[1]).unwrap(), messages);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..2000),
            chunk_sizes in prop::collection::vec(1usize..300, 1..10),
        ) {
            let mut decoder = FrameDecoder::new();
            let mut sizes = chunk_sizes.iter().copied().cycle();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let size = sizes.next().unwrap_or(1).min(rest.len()).min(decoder.push_capacity());
                decoder.push(&rest[..size]);
                rest = &rest[size..];
                loop {
                    match decoder.next_frame() {
                        Ok(Some(payload)) => {
                            let _ = decode_message::<TestMessage>(&payload);
                            let _ = decode_message::<Vec<String>>(&payload);
                        }
                        Ok(None) => break,
                        Err(error) => {
                            prop_assert!(decoder.is_failed());
                            prop_assert_eq!(decoder.next_frame(), Err(error));
                            break;
                        }
                    }
                }
            }
        }

        #[test]
        fn huge_declared_lengths_fail_at_once(
            length in (FRAME_BYTES_MAX as u32 + 1)..=u32::MAX,
            body in prop::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut decoder = FrameDecoder::new();
            decoder.push(&length.to_be_bytes());
            decoder.push(&body);
            prop_assert_eq!(
                decoder.next_frame(),
                Err(FrameError::TooLarge { length: length as usize, max: FRAME_BYTES_MAX })
            );
        }

        #[test]
        fn arbitrary_payloads_decode_or_are_malformed(payload in prop::collection::vec(any::<u8>(), 0..500)) {
            for result in [
                decode_message::<TestMessage>(&payload).map(|_| ()),
                decode_message::<Position>(&payload).map(|_| ()),
                decode_message::<(String, Vec<u64>)>(&payload).map(|_| ()),
            ] {
                if let Err(error) = result {
                    prop_assert!(matches!(error, FrameError::Malformed { .. }), "{}", error);
                }
            }
        }
    }
}
