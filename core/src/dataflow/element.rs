//! What flows on a channel between subtasks: batches, and in-band progress markers.

use crate::batch::Batch;
use crate::ids::CheckpointId;
use crate::time::EventTime;

/// One element of a stream. Watermarks and the end marker travel in order with the data, so a
/// consumer sees them exactly after the records that preceded them.
#[derive(Clone, Debug, PartialEq)]
pub enum Element {
    Batch(Batch),
    /// No record with an event time at or below this will follow on this channel.
    Watermark(EventTime),
    /// The channel's producer has finished; nothing follows.
    EndOfInput,
    /// Checkpoint barrier: everything before it on this channel belongs to the checkpoint's
    /// state, everything after it to what follows the checkpoint.
    Barrier(CheckpointId),
}

impl Element {
    /// Records carried (0 for markers).
    pub fn rows(&self) -> usize {
        match self {
            Element::Batch(b) => b.len(),
            _ => 0,
        }
    }
}
