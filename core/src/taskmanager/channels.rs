//! The TaskManager's data plane: data messages from peers, and `run`, which moves elements between
//! subtasks, local queues and credit-paced channels.

use std::time::Duration;

use crate::dataflow::subtask::SourceStatus;
use crate::ids::TaskManagerId;
use crate::jobmanager::execution_state::ExecutionState;
use crate::limits::{PENDING_CREDIT_CHANNELS_MAX, SOURCE_REPOLL_MS};
use crate::protocol::messages::DataMessage;
use crate::protocol::wire_batch::WireElement;
use crate::time::Instant;

use super::task_manager::{SubtaskKey, TaskManager};
use super::Output;

impl TaskManager {
    /// A data message from the peer TaskManager `from`. Elements go to their consumer's receiver,
    /// credits to their producer's sender. Stale data (an unknown or cancelled attempt, a consumer
    /// not running here) is dropped and counted; a protocol violation on a running consumer's
    /// channel fails that consumer with the reason.
    pub fn handle_data_message(&mut self, _now: Instant, from: TaskManagerId, message: DataMessage) {
        match message {
            DataMessage::Element { job, attempt, subtask, channel, element } => {
                let key = (job, attempt, subtask);
                let Some(run) = self.subtask_run(key) else {
                    self.counters.elements_dropped += 1;
                    return;
                };
                let Some(input) = run.receivers.get_mut(&channel) else {
                    self.counters.messages_refused += 1;
                    let error = format!("{job}/{attempt}: an element from {from} on channel {channel} of subtask {subtask}, which has no remote producer");
                    self.end_subtask(key, ExecutionState::Failed, Some(error));
                    return;
                };
                if input.producer.task_manager != from {
                    self.counters.messages_refused += 1;
                    return;
                }
                let id = input.receiver.channel();
                let result = match element.into_element(&input.types) {
                    Ok(element) => input.receiver.on_element(element).map_err(|e| e.to_string()),
                    Err(e) => Err(format!("{id}: refused a batch from {from}: {e}")),
                };
                if let Err(error) = result {
                    self.counters.messages_refused += 1;
                    self.end_subtask(key, ExecutionState::Failed, Some(error));
                }
            }
            DataMessage::Credit { job, attempt, subtask, channel, credits } => {
                self.handle_credit(from, (job, attempt, subtask), channel, credits);
            }
            // The link's liveness is the node's concern; nothing for the role.
            DataMessage::KeepAlive => {}
        }
    }

    /// The data link to or from the peer TaskManager `peer` is gone (a send failed, or the connection
    /// closed): messages on it may have been lost, so every running subtask with a channel to or
    /// from `peer` (a sender whose consumer is there, or a receiver whose producer is) fails with
    /// the cause, and the JobMaster restarts its attempt as for any failure. Subtasks without such a
    /// channel run on; a later message to `peer` goes on a new link.
    pub fn handle_peer_lost(&mut self, _now: Instant, peer: TaskManagerId) {
        let affected: Vec<SubtaskKey> = self
            .attempts
            .iter()
            .flat_map(|(&(job, attempt), a)| a.subtasks.iter().map(move |(&s, run)| ((job, attempt, s), run)))
            .filter(|(_, run)| {
                run.senders.values().any(|o| o.consumer.task_manager == peer)
                    || run.receivers.values().any(|i| i.producer.task_manager == peer)
            })
            .map(|(key, _)| key)
            .collect();
        for key in affected {
            self.end_subtask(key, ExecutionState::Failed, Some(format!("data link to {peer} lost")));
        }
    }

    /// A credit for the channel `channel` of consumer `consumer`: for its producer's sender if that
    /// runs here, parked if the producer may still be deployed here, dropped otherwise.
    fn handle_credit(&mut self, from: TaskManagerId, consumer: SubtaskKey, channel: u32, credits: u32) {
        let (job, attempt, consumer_subtask) = consumer;
        if let Some(record) = self.attempts.get(&(job, attempt)) {
            if record.canceled {
                self.counters.credits_dropped += 1;
                return;
            }
            if let Some(producers) = &record.producers {
                let producer = producers.get(consumer_subtask as usize).and_then(|c| c.get(channel as usize));
                let Some(&(producer, _)) = producer else {
                    self.counters.messages_refused += 1;
                    return;
                };
                if record.ended.contains(&producer) {
                    // A grant that crossed the end of input on the wire.
                    self.counters.credits_dropped += 1;
                    return;
                }
                if record.subtasks.contains_key(&producer) {
                    self.apply_credit((job, attempt, producer), from, (consumer_subtask, channel), credits);
                    return;
                }
            }
        }
        let key = (job, attempt, consumer_subtask, channel);
        let room = self.pending_credits.len() < PENDING_CREDIT_CHANNELS_MAX;
        match self.pending_credits.get_mut(&key) {
            Some((peer, parked)) if *peer == from => *parked = parked.saturating_add(credits),
            Some(_) => self.counters.messages_refused += 1,
            None if room => {
                self.pending_credits.insert(key, (from, credits));
            }
            None => self.counters.credits_dropped += 1,
        }
    }

    /// Gives `credits` from `from` to the sender of running subtask `producer` towards `target`, and
    /// sends what they allow. A grant the sender refuses fails the producer.
    pub(super) fn apply_credit(
        &mut self,
        producer: SubtaskKey,
        from: TaskManagerId,
        target: (u32, u32),
        credits: u32,
    ) {
        let run = self.subtask_run(producer).expect("a running producer");
        let Some(output) = run.senders.get_mut(&target) else {
            // The consumer's channel is fed by this subtask, but locally: a confused or hostile peer.
            self.counters.messages_refused += 1;
            return;
        };
        if output.consumer.task_manager != from {
            self.counters.messages_refused += 1;
            return;
        }
        if let Err(e) = output.sender.on_credit(credits) {
            self.counters.messages_refused += 1;
            self.end_subtask(producer, ExecutionState::Failed, Some(e.to_string()));
            return;
        }
        self.flush_sender(producer, target);
    }

    /// Puts on the wire every element the sender towards `target` has credit for.
    fn flush_sender(&mut self, producer: SubtaskKey, target: (u32, u32)) {
        let (job, attempt, _) = producer;
        let record = self.attempts.get_mut(&(job, attempt)).expect("a running producer's attempt");
        let run = record.subtasks.get_mut(&producer.2).expect("a running producer");
        let output = run.senders.get_mut(&target).expect("a sender of this subtask");
        while let Some(element) = output.sender.poll_send() {
            self.outputs.push_back(Output::ToTaskManager {
                to: output.consumer.task_manager,
                address: output.consumer.address.clone(),
                message: DataMessage::Element {
                    job,
                    attempt,
                    subtask: target.0,
                    channel: target.1,
                    element: WireElement::from_element(element),
                },
            });
        }
    }

    /// Does up to `budget` steps of CPU work and returns how many it did; 0 means nothing can move
    /// until new input arrives or [`TaskManager::poll_timeout`] passes. A step is one subtask's turn:
    /// deliver its pending output, then take one input element or poll its source once. Subtasks
    /// take turns round robin in (job, attempt, subtask) order, so the work is a function of the
    /// state alone.
    pub fn run(&mut self, now: Instant, budget: usize) -> usize {
        let mut steps = 0;
        while steps < budget {
            let keys: Vec<SubtaskKey> = self
                .attempts
                .iter()
                .flat_map(|(&(job, attempt), a)| a.subtasks.keys().map(move |&s| (job, attempt, s)))
                .collect();
            let start = self.cursor.map_or(0, |c| keys.partition_point(|&k| k <= c));
            let mut progressed = false;
            for &key in keys[start..].iter().chain(&keys[..start]) {
                if steps >= budget {
                    break;
                }
                self.cursor = Some(key);
                if self.subtask_run(key).is_some() && self.step(now, key) {
                    steps += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        steps
    }

    /// One subtask's turn; whether it did anything.
    fn step(&mut self, now: Instant, key: SubtaskKey) -> bool {
        let delivered = self.deliver(key);
        let Some(run) = self.attempts.get_mut(&(key.0, key.1)).and_then(|a| a.subtasks.get_mut(&key.2))
        else {
            return true;
        };
        if run.is_blocked() {
            // A blocked subtask moves again when its output does (credit or room arriving is an
            // input, which makes the driver run it), not when its timer fires. A wake-up time that
            // passes meanwhile is dropped: kept, it would stay the TaskManager's next timeout, in
            // the past, and a driver that sleeps until that timeout would spin instead.
            if run.wake.is_some_and(|at| at <= now) {
                run.wake = None;
            }
            return delivered;
        }
        if run.subtask.is_finished() {
            if run.is_done() {
                self.end_subtask(key, ExecutionState::Finished, None);
                return true;
            }
            return delivered;
        }
        let result = if run.subtask.is_source() {
            if run.wake.is_some_and(|at| at > now) {
                return delivered;
            }
            run.wake = None;
            if let (Some(alignment), Some((source, split))) = (&self.alignment, run.split) {
                let watermark = run.subtask.source_watermark().expect("aligned splits have event time");
                if !alignment.may_advance(source, split, watermark) {
                    run.wake = Some(now + Duration::from_micros(super::ALIGNMENT_REPOLL_MICROS));
                    return delivered;
                }
            }
            match run.subtask.poll_source(now) {
                Ok(SourceStatus::Pending(until)) => {
                    // Always strictly later, so an idle TaskManager's timeout is in the future.
                    let repoll = now + Duration::from_millis(SOURCE_REPOLL_MS);
                    run.wake = Some(until.filter(|&at| at > now).unwrap_or(repoll));
                    return delivered;
                }
                Ok(SourceStatus::Emitted | SourceStatus::Finished) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            let Some((channel, element, credit)) = run.next_input() else { return delivered };
            let result = run.subtask.handle_element(channel, element).map_err(|e| e.to_string());
            if let Some((peer, credits)) = credit {
                let message =
                    DataMessage::Credit { job: key.0, attempt: key.1, subtask: key.2, channel, credits };
                self.send_data(peer, message);
            }
            self.send_snapshots(key);
            result
        };
        if let Err(error) = result {
            self.end_subtask(key, ExecutionState::Failed, Some(error));
        }
        true
    }

    /// Moves the subtask's pending output to local queues and senders while they have room;
    /// whether anything moved.
    fn deliver(&mut self, key: SubtaskKey) -> bool {
        let (job, attempt, subtask) = key;
        let mut moved = false;
        loop {
            let record = self.attempts.get_mut(&(job, attempt)).expect("a running subtask's attempt");
            let run = record.subtasks.get_mut(&subtask).expect("a running subtask");
            let Some(out) = run.held.take().or_else(|| run.subtask.poll_output()) else { break };
            let target = (out.to.subtask.0, out.to.channel);
            if let Some(output) = run.senders.get_mut(&target) {
                if !output.sender.can_accept() {
                    run.held = Some(out);
                    break;
                }
                output.sender.push(out.element);
                self.flush_sender(key, target);
                moved = true;
                continue;
            }
            if let Some(consumer) = record.subtasks.get_mut(&target.0) {
                if consumer.can_queue_locally(target.1) {
                    consumer.local_queue.push_back((target.1, out.element));
                    moved = true;
                    continue;
                }
            } else if record.ended.contains(&target.0) {
                // The consumer failed here: its input goes nowhere until the attempt is cancelled.
                self.counters.outputs_discarded += 1;
                moved = true;
                continue;
            }
            // A full queue, or a consumer not deployed yet: wait.
            let run = record.subtasks.get_mut(&subtask).expect("a running subtask");
            run.held = Some(out);
            break;
        }
        moved
    }
}
