//! Snapshots: what a subtask holds at a checkpoint, as versioned, checksummed bytes.
//!
//! A [`SubtaskSnapshot`] has the source's read position and watermark (for a source subtask) and,
//! per chained operator, its counters and its own state (keyed state by key group, window
//! contents and timers, a sink's pre-commit handle). Operators encode their own state with
//! [`encode_state`]; the whole snapshot travels and is stored as [`encode_snapshot`]'s bytes:
//!
//! ```text
//! "RVSN" | format version (u16 LE) | body length (u64 LE) | FNV-1a 64 of the body (u64 LE) | body (postcard)
//! ```
//!
//! Snapshot bytes come back from storage and from the network, so decoding trusts nothing: a
//! wrong magic, another format version, a short or long body, a checksum mismatch or a body that
//! does not decode are each a [`SnapshotError`] naming what was wrong.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::dataflow::operator::OperatorMetrics;
use crate::ids::CheckpointId;
use crate::time::EventTime;

/// The format of [`encode_snapshot`]'s bytes; a reader refuses any other.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 2;
const MAGIC: [u8; 4] = *b"RVSN";
pub(crate) const HEADER_BYTES: usize = 4 + 2 + 8 + 8;

/// One subtask's state at a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubtaskSnapshot {
    pub checkpoint: CheckpointId,
    /// For a source subtask: its reader's position and its watermark generator.
    pub source: Option<SourceSnapshot>,
    /// The watermark the subtask's input gate had forwarded (its channels' minimum): a restored
    /// gate forwards nothing below it, so watermarks never go back across a restore.
    pub input_watermark: EventTime,
    /// Per chained operator, in chain order.
    pub operators: Vec<OperatorSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// The reader's position, in the reader's own encoding.
    pub position: Vec<u8>,
    /// The watermark generator's largest event time seen and last watermark emitted.
    pub watermarks: Option<(EventTime, EventTime)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// The operator's vertex in the job graph.
    pub vertex: u32,
    /// Its counters, so that a restored job counts every record once.
    pub metrics: OperatorMetrics,
    /// Its own state ([`encode_state`]); empty for a stateless operator.
    pub state: Vec<u8>,
}

/// Why snapshot (or savepoint) bytes were refused; `what` names the kind of bytes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SnapshotError {
    #[error("the {what} has {found} bytes, fewer than its {HEADER_BYTES}-byte header")]
    TooShort { what: &'static str, found: usize },
    #[error("the bytes are not a Rivulet {what} (magic {found:02x?})")]
    Magic { what: &'static str, found: [u8; 4] },
    #[error("{what} format version {found}; this build reads version {expected}")]
    Version { what: &'static str, found: u16, expected: u16 },
    #[error("the {what}'s body has {found} bytes; its header says {expected}")]
    Length { what: &'static str, found: usize, expected: u64 },
    #[error("the {what}'s checksum is {found:016x}; its header says {expected:016x}: the data is damaged")]
    Checksum { what: &'static str, found: u64, expected: u64 },
    #[error("the {what} does not decode: {message}")]
    Decode { what: &'static str, message: String },
}

/// FNV-1a over 64 bits: cheap, stable, and enough to tell damaged bytes from whole ones (it is no
/// defence against an adversary, which the cluster's handshake is for).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The framing snapshots and savepoints share: magic, format version, body length, checksum.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Envelope {
    pub magic: [u8; 4],
    pub version: u16,
    /// What the bytes are, for errors: "snapshot", "savepoint".
    pub what: &'static str,
}

impl Envelope {
    /// `value` postcard-encoded behind the header, in one buffer.
    pub fn seal<T: Serialize + ?Sized>(&self, value: &T) -> Vec<u8> {
        let mut out = postcard::to_extend(value, vec![0u8; HEADER_BYTES]).expect("a snapshot always encodes");
        let body_len = (out.len() - HEADER_BYTES) as u64;
        let sum = checksum(&out[HEADER_BYTES..]);
        out[0..4].copy_from_slice(&self.magic);
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6..14].copy_from_slice(&body_len.to_le_bytes());
        out[14..22].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// The value `seal` wrote, every part of the header checked first.
    pub fn open<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, SnapshotError> {
        let what = self.what;
        if bytes.len() < HEADER_BYTES {
            return Err(SnapshotError::TooShort { what, found: bytes.len() });
        }
        let magic: [u8; 4] = bytes[0..4].try_into().expect("4 bytes");
        if magic != self.magic {
            return Err(SnapshotError::Magic { what, found: magic });
        }
        let version = u16::from_le_bytes(bytes[4..6].try_into().expect("2 bytes"));
        if version != self.version {
            return Err(SnapshotError::Version { what, found: version, expected: self.version });
        }
        let length = u64::from_le_bytes(bytes[6..14].try_into().expect("8 bytes"));
        let expected = u64::from_le_bytes(bytes[14..22].try_into().expect("8 bytes"));
        let body = &bytes[HEADER_BYTES..];
        if body.len() as u64 != length {
            return Err(SnapshotError::Length { what, found: body.len(), expected: length });
        }
        let found = checksum(body);
        if found != expected {
            return Err(SnapshotError::Checksum { what, found, expected });
        }
        postcard::from_bytes(body).map_err(|e| SnapshotError::Decode { what, message: e.to_string() })
    }
}

const SNAPSHOT: Envelope = Envelope { magic: MAGIC, version: SNAPSHOT_FORMAT_VERSION, what: "snapshot" };

pub fn encode_snapshot(snapshot: &SubtaskSnapshot) -> Vec<u8> {
    SNAPSHOT.seal(snapshot)
}

pub fn decode_snapshot(bytes: &[u8]) -> Result<SubtaskSnapshot, SnapshotError> {
    SNAPSHOT.open(bytes)
}

/// An operator's or reader's state as bytes (postcard).
pub fn encode_state<T: Serialize>(state: &T) -> Vec<u8> {
    postcard::to_stdvec(state).expect("operator state always encodes")
}

/// The state `encode_state` wrote; `what` names it in the error.
pub fn decode_state<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("the {what} state in the snapshot does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> SubtaskSnapshot {
        SubtaskSnapshot {
            checkpoint: CheckpointId(7),
            source: Some(SourceSnapshot { position: vec![1, 2, 3], watermarks: Some((100, 89)) }),
            input_watermark: i64::MIN,
            operators: vec![OperatorSnapshot {
                vertex: 2,
                metrics: OperatorMetrics { records_in: 5, ..Default::default() },
                state: encode_state(&vec![(3u16, 4i64)]),
            }],
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_damage_is_named() {
        let bytes = encode_snapshot(&sample());
        assert_eq!(decode_snapshot(&bytes), Ok(sample()));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(decode_snapshot(&flipped), Err(SnapshotError::Checksum { .. })));
        let mut version = bytes.clone();
        version[4] = 9;
        assert!(matches!(decode_snapshot(&version), Err(SnapshotError::Version { found: 9, .. })));
        assert!(matches!(decode_snapshot(&bytes[..bytes.len() - 1]), Err(SnapshotError::Length { .. })));
        assert_eq!(decode_snapshot(b"RVS"), Err(SnapshotError::TooShort { what: "snapshot", found: 3 }));
        assert!(matches!(decode_snapshot(&[0u8; 40]), Err(SnapshotError::Magic { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_snapshot(&bytes);
            let mut framed = encode_snapshot(&sample())[..HEADER_BYTES].to_vec();
            framed[6..14].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            framed[14..22].copy_from_slice(&checksum(&bytes).to_le_bytes());
            framed.extend_from_slice(&bytes);
            let _ = decode_snapshot(&framed);
        }
    }
}
