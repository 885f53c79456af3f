//! What the harness sees of the messages the nodes exchange, and an application-level fault point,
//! at the frame seam of [`crate::runtime`].
//!
//! Every connection a TaskManager opens is known by what it connects to: the JobManager (control
//! messages: `ToJobManager` out, `ToTaskManager` in) or another TaskManager's data port (data
//! messages out). The first frame each way is the handshake; every later frame is decoded with the
//! core's codec and looked at, never changed:
//!
//! * **watermarks never go back**: on every data channel — one attempt of one job, into one input
//!   channel of one consumer subtask — each watermark a producer sends is at least the one it
//!   sent before. A new attempt's channels start afresh: an attempt restored from a checkpoint
//!   legitimately starts again from the checkpoint's watermark, below what the failed attempt had
//!   reached. (Channels between subtasks of one TaskManager do not cross the seam and are not seen.)
//! * **one JobMaster acts for a job**: the deployments each TaskManager receives for a job never
//!   go back to an older attempt. A JobManager restarted on its store continues with the next
//!   attempt, and a TaskManager must never be handed work of an attempt older than one it was
//!   already given — as a stale JobManager incarnation, or a message of one delayed past a
//!   newer attempt's, would hand it.
//!
//! The fault point: with [`Probe::ack_delay`] set, a TaskManager holds the last chunk of each
//! snapshot it sends — its acknowledgement of the checkpoint — back for a drawn delay before
//! writing it. The connection is ordered, so what the TaskManager sends after it waits as well.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivulet_core::ids::{AttemptId, JobId};
use rivulet_core::protocol::decode_message;
use rivulet_core::protocol::messages::{DataMessage, ToJobManager, ToTaskManager};
use rivulet_core::protocol::wire_batch::WireElement;

use crate::rng::{SeedRng, STREAM_ACK_DELAYS};
use crate::scenario::DelayRange;

/// What a connection carries, as far as the probe is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A TaskManager's connection to the JobManager.
    Control,
    /// A TaskManager's outgoing data link to another TaskManager.
    Data,
    /// Anything else (accepted connections, the client's): not looked at.
    Other,
}

impl Channel {
    /// What a connection `host` opens to `address` carries.
    pub fn of(host: &str, address: &str) -> Channel {
        let is_task_manager = crate::TASK_MANAGERS.contains(&host);
        if !is_task_manager {
            Channel::Other
        } else if address == crate::JOB_MANAGER_ADDRESS {
            Channel::Control
        } else if address.ends_with(&format!(":{}", crate::DATA_PORT)) {
            Channel::Data
        } else {
            Channel::Other
        }
    }
}

/// The key of one data channel: job, attempt, consumer subtask, input channel.
type ChannelKey = (JobId, AttemptId, u32, u32);

/// The probe every host of one simulation shares.
#[derive(Debug)]
pub struct Probe {
    ack_delay: Option<DelayRange>,
    rng: SeedRng,
    /// The last watermark sent on each data channel.
    watermarks: BTreeMap<ChannelKey, i64>,
    /// The newest attempt of each job each TaskManager was told to deploy.
    deployed: BTreeMap<(String, JobId), AttemptId>,
    /// The first violation seen.
    pub violation: Option<String>,
    pub watermarks_seen: u64,
    pub deployments_seen: u64,
    pub acks_delayed: u64,
}

/// The probe shared by a simulation's hosts.
pub type SharedProbe = Arc<Mutex<Probe>>;

impl Probe {
    pub fn new(seed: u64, ack_delay: Option<DelayRange>) -> Probe {
        Probe {
            ack_delay,
            rng: SeedRng::new(seed, STREAM_ACK_DELAYS),
            watermarks: BTreeMap::new(),
            deployed: BTreeMap::new(),
            violation: None,
            watermarks_seen: 0,
            deployments_seen: 0,
            acks_delayed: 0,
        }
    }

    pub fn shared(seed: u64, ack_delay: Option<DelayRange>) -> SharedProbe {
        Arc::new(Mutex::new(Probe::new(seed, ack_delay)))
    }

    fn violate(&mut self, message: String) {
        if self.violation.is_none() {
            self.violation = Some(message);
        }
    }

    /// A frame `host` is about to send on a connection carrying `channel`: how long to hold it.
    pub fn on_send(&mut self, host: &str, channel: Channel, payload: &[u8]) -> Duration {
        match channel {
            Channel::Data => {
                if let Ok(DataMessage::Element {
                    job,
                    attempt,
                    subtask,
                    channel,
                    element: WireElement::Watermark(w),
                }) = decode_message::<DataMessage>(payload)
                {
                    self.on_watermark(host, (job, attempt, subtask, channel), w);
                }
                Duration::ZERO
            }
            Channel::Control => match (self.ack_delay, decode_message::<ToJobManager>(payload)) {
                (Some(range), Ok(ToJobManager::CheckpointState(chunk))) if chunk.is_last() => {
                    self.acks_delayed += 1;
                    let (low, high) = (range.min.as_millis() as u64, range.max.as_millis() as u64);
                    self.rng.millis(low..=high)
                }
                _ => Duration::ZERO,
            },
            Channel::Other => Duration::ZERO,
        }
    }

    fn on_watermark(&mut self, host: &str, key: ChannelKey, watermark: i64) {
        self.watermarks_seen += 1;
        let (job, attempt, subtask, channel) = key;
        match self.watermarks.insert(key, watermark) {
            Some(before) if watermark < before => self.violate(format!(
                "a watermark went back: {host} sent watermark {watermark} after {before} on {job}/{attempt} \
                 channel {channel} of subtask {subtask}"
            )),
            _ => {}
        }
    }

    /// A frame `host` received on a connection carrying `channel`.
    pub fn on_receive(&mut self, host: &str, channel: Channel, payload: &[u8]) {
        if channel != Channel::Control {
            return;
        }
        let Ok(ToTaskManager::Deploy(deployment)) = decode_message::<ToTaskManager>(payload) else {
            return;
        };
        self.deployments_seen += 1;
        let key = (host.to_owned(), deployment.job);
        let newest = self.deployed.entry(key).or_insert(deployment.attempt);
        if deployment.attempt < *newest {
            let newest = *newest;
            self.violate(format!(
                "two JobMasters acted for {}: {host} was told to deploy subtask {} of {} after it was \
                 given {newest}",
                deployment.job, deployment.subtask, deployment.attempt
            ));
        } else {
            *newest = deployment.attempt;
        }
    }
}

#[cfg(test)]
mod tests {
    use rivulet_core::protocol::encode_frame;
    use rivulet_core::protocol::FRAME_HEADER_BYTES;

    use super::*;

    fn payload(message: &DataMessage) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).expect("a small message");
        bytes.split_off(FRAME_HEADER_BYTES)
    }

    fn watermark(attempt: u32, w: i64) -> Vec<u8> {
        payload(&DataMessage::Element {
            job: JobId(1),
            attempt: AttemptId(attempt),
            subtask: 2,
            channel: 0,
            element: WireElement::Watermark(w),
        })
    }

    #[test]
    fn a_watermark_that_goes_back_within_an_attempt_is_a_violation() {
        let mut probe = Probe::new(1, None);
        probe.on_send("tm1", Channel::Data, &watermark(0, 10));
        probe.on_send("tm1", Channel::Data, &watermark(0, 10));
        probe.on_send("tm1", Channel::Data, &watermark(0, 20));
        // A new attempt restarts from its checkpoint's watermark.
        probe.on_send("tm1", Channel::Data, &watermark(1, 5));
        assert_eq!(probe.violation, None);
        assert_eq!(probe.watermarks_seen, 4);
        probe.on_send("tm1", Channel::Data, &watermark(1, 4));
        let violation = probe.violation.expect("went back");
        assert!(violation.contains("watermark 4 after 5"), "{violation}");
    }

    #[test]
    fn channels_are_known_by_what_they_connect_to() {
        assert_eq!(Channel::of("tm1", "jobmanager:6123"), Channel::Control);
        assert_eq!(Channel::of("tm1", "tm2:6124"), Channel::Data);
        assert_eq!(Channel::of("client", "jobmanager:6123"), Channel::Other);
    }
}
