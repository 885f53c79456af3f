//! The credit protocol rule by rule, then a sender and a receiver joined by an in-memory wire under
//! random interleavings of their steps.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::batch::{Batch, Column};
use crate::dataflow::plan::SubtaskId;

fn channel() -> ChannelId {
    ChannelId { job: JobId(7), attempt: AttemptId(2), to: ChannelAddr { subtask: SubtaskId(5), channel: 3 } }
}

fn config(credits_max: u32, backlog_max: u32) -> CreditConfig {
    CreditConfig::new(credits_max, backlog_max).expect("a valid test configuration")
}

/// The `i`-th element of a test stream: batches with watermarks between them, all distinct.
fn element(i: u32) -> Element {
    if i % 3 == 2 {
        Element::Watermark(i64::from(i))
    } else {
        Element::Batch(Batch::new(vec![Column::Int(vec![i64::from(i); 1 + i as usize % 4])]))
    }
}

/// A sender and a receiver joined by one wire each way, as the node joins them over a connection.
struct Pair {
    sender: CreditSender,
    receiver: CreditReceiver,
    data: VecDeque<Element>,
    credits: VecDeque<u32>,
    /// Everything pushed, in order, and everything the subtask consumed, in order.
    pushed: Vec<Element>,
    consumed: Vec<Element>,
}

impl Pair {
    /// A channel just opened: the receiver's initial grant is on the wire.
    fn new(config: CreditConfig) -> Pair {
        let receiver = CreditReceiver::new(channel(), config);
        let credits = VecDeque::from([receiver.initial_credit()]);
        let pair = Pair {
            sender: CreditSender::new(channel(), config),
            receiver,
            data: VecDeque::new(),
            credits,
            pushed: Vec::new(),
            consumed: Vec::new(),
        };
        pair.check();
        pair
    }

    /// Pushes `element` if the backlog has room.
    fn push(&mut self, element: Element) -> bool {
        if !self.sender.can_accept() {
            return false;
        }
        self.pushed.push(element.clone());
        self.sender.push(element);
        true
    }

    /// Puts every element the sender may send on the wire.
    fn transmit(&mut self) {
        while let Some(element) = self.sender.poll_send() {
            self.data.push_back(element);
        }
    }

    fn deliver_element(&mut self) -> bool {
        let Some(element) = self.data.pop_front() else { return false };
        self.receiver.on_element(element).expect("an honest sender");
        true
    }

    fn consume(&mut self) -> bool {
        let Some(element) = self.receiver.poll_element() else { return false };
        self.consumed.push(element);
        true
    }

    fn announce(&mut self) -> bool {
        let Some(n) = self.receiver.poll_credit() else { return false };
        self.credits.push_back(n);
        true
    }

    fn deliver_credit(&mut self) -> bool {
        let Some(n) = self.credits.pop_front() else { return false };
        self.sender.on_credit(n).expect("an honest receiver");
        true
    }

    /// Both sides' invariants, and the bounds the protocol exists for.
    fn check(&self) {
        self.sender.assert_invariants();
        self.receiver.assert_invariants();
        let config = self.sender.config();
        assert!(self.sender.backlog_len() <= config.backlog_max());
        assert!(self.receiver.buffered_len() <= config.credits_max());
        // The wire holds only elements with a buffer reserved for them.
        assert!(self.data.len() as u32 + self.receiver.buffered_len() <= config.credits_max());
        let granted: u32 = self.credits.iter().sum::<u32>() + self.sender.credit();
        assert!(granted + self.data.len() as u32 + self.receiver.buffered_len() <= config.credits_max());
        assert!(self.pushed.starts_with(&self.consumed), "consumed out of order or twice");
    }

    /// Runs every side until nothing moves; returns whether anything did.
    fn settle(&mut self) -> bool {
        let mut moved = false;
        loop {
            self.transmit();
            let step = self.deliver_element() | self.consume() | self.announce() | self.deliver_credit();
            self.check();
            if !step {
                return moved;
            }
            moved = true;
        }
    }
}

#[test]
fn the_receiver_grants_every_buffer_when_the_channel_opens() {
    let receiver = CreditReceiver::new(channel(), config(3, 2));
    assert_eq!(receiver.initial_credit(), 3);
    assert_eq!(receiver.counters().credits_announced, 3);
    receiver.assert_invariants();
    let receiver = CreditReceiver::new(channel(), CreditConfig::default());
    assert_eq!(receiver.initial_credit(), CHANNEL_CREDITS_DEFAULT);
}

#[test]
fn the_sender_sends_nothing_before_it_has_credit() {
    let mut sender = CreditSender::new(channel(), config(2, 3));
    sender.push(element(0));
    assert_eq!(sender.poll_send(), None);
    assert_eq!((sender.backlog_len(), sender.credit()), (1, 0));
    sender.assert_invariants();
}

#[test]
fn the_sender_spends_one_credit_per_element_markers_included() {
    let mut sender = CreditSender::new(channel(), config(2, 4));
    let elements = [element(0), Element::Watermark(9), Element::EndOfInput];
    for e in &elements {
        sender.push(e.clone());
    }
    sender.on_credit(2).unwrap();
    assert_eq!(sender.poll_send(), Some(element(0)));
    assert_eq!(sender.poll_send(), Some(Element::Watermark(9)));
    assert_eq!(sender.poll_send(), None, "the end of input waits for a credit too");
    assert!(!sender.is_drained() && !sender.is_finished());
    sender.on_credit(1).unwrap();
    assert_eq!(sender.poll_send(), Some(Element::EndOfInput));
    assert!(sender.is_drained() && sender.is_finished());
    assert_eq!(sender.credit(), 0);
    assert_eq!(sender.counters().elements_sent, 3);
    sender.assert_invariants();
}

#[test]
fn unspent_credit_waits_for_the_next_element() {
    let mut sender = CreditSender::new(channel(), config(3, 2));
    sender.on_credit(3).unwrap();
    assert_eq!(sender.poll_send(), None, "nothing to send");
    sender.push(element(4));
    assert_eq!(sender.poll_send(), Some(element(4)));
    assert_eq!(sender.credit(), 2);
    sender.assert_invariants();
}

#[test]
fn each_consumed_element_earns_one_credit_back() {
    let mut receiver = CreditReceiver::new(channel(), config(3, 1));
    receiver.on_element(element(0)).unwrap();
    receiver.on_element(element(1)).unwrap();
    assert_eq!(receiver.poll_credit(), None, "nothing consumed yet");
    assert_eq!(receiver.poll_element(), Some(element(0)));
    assert_eq!(receiver.poll_credit(), Some(1));
    assert_eq!(receiver.poll_credit(), None, "announced once");
    assert_eq!(receiver.poll_element(), Some(element(1)));
    assert_eq!(receiver.poll_credit(), Some(1));
    assert_eq!(receiver.poll_element(), None);
    assert_eq!(receiver.counters().credits_announced, 5);
    receiver.assert_invariants();
}

#[test]
fn credits_returned_between_announcements_travel_in_one_grant() {
    let mut receiver = CreditReceiver::new(channel(), config(4, 1));
    for i in 0..4 {
        receiver.on_element(element(i)).unwrap();
    }
    for _ in 0..3 {
        receiver.poll_element().unwrap();
        receiver.assert_invariants();
    }
    assert_eq!(receiver.poll_credit(), Some(3));
    assert_eq!(receiver.poll_credit(), None);
    // The sender accepts the batch as one grant.
    let mut sender = CreditSender::new(channel(), config(4, 1));
    sender.on_credit(1).unwrap();
    sender.on_credit(3).unwrap();
    assert_eq!(sender.credit(), 4);
}

#[test]
fn a_grant_beyond_the_receivers_buffers_is_refused_and_changes_nothing() {
    let mut sender = CreditSender::new(channel(), config(4, 2));
    assert_eq!(
        sender.on_credit(5),
        Err(CreditError::ExcessCredit { channel: channel(), granted: 5, credit: 0, credits_max: 4 })
    );
    sender.on_credit(3).unwrap();
    assert!(matches!(sender.on_credit(2), Err(CreditError::ExcessCredit { credit: 3, .. })));
    assert!(matches!(sender.on_credit(u32::MAX), Err(CreditError::ExcessCredit { .. })), "no overflow");
    assert_eq!(sender.on_credit(0), Err(CreditError::EmptyGrant { channel: channel() }));
    assert_eq!(sender.credit(), 3);
    assert_eq!(sender.counters().grants_refused, 4);
    assert_eq!(sender.counters().credits_received, 3);
    sender.assert_invariants();
    sender.on_credit(1).unwrap();
    assert_eq!(sender.credit(), 4, "a grant up to the limit is fine");
}

#[test]
fn an_element_without_credit_is_refused_and_changes_nothing() {
    let mut receiver = CreditReceiver::new(channel(), config(2, 1));
    receiver.on_element(element(0)).unwrap();
    receiver.on_element(element(1)).unwrap();
    let refused = receiver.on_element(Element::Watermark(8));
    assert_eq!(
        refused,
        Err(CreditError::ElementWithoutCredit {
            channel: channel(),
            element: "watermark 8".to_owned(),
            credits_max: 2,
        })
    );
    assert_eq!(receiver.buffered_len(), 2);
    assert_eq!(receiver.counters().elements_refused, 1);
    receiver.assert_invariants();
    // Consuming frees a buffer, but the sender may use it only once the credit is announced.
    receiver.poll_element().unwrap();
    assert!(receiver.on_element(element(2)).is_err(), "the credit is not announced yet");
    assert_eq!(receiver.poll_credit(), Some(1));
    receiver.on_element(element(2)).unwrap();
    receiver.assert_invariants();
}

#[test]
fn an_element_after_the_end_of_input_is_refused() {
    let mut receiver = CreditReceiver::new(channel(), config(3, 1));
    receiver.on_element(Element::EndOfInput).unwrap();
    let refused = receiver.on_element(element(0));
    assert_eq!(
        refused,
        Err(CreditError::ElementAfterEnd { channel: channel(), element: "a batch of 1 rows".to_owned() })
    );
    assert!(receiver.on_element(Element::EndOfInput).is_err(), "a second end too");
    assert_eq!(receiver.poll_element(), Some(Element::EndOfInput));
    assert!(receiver.is_finished());
    assert!(receiver.on_element(Element::Watermark(1)).is_err(), "and after the end was consumed");
    assert_eq!(receiver.counters().elements_refused, 3);
    receiver.assert_invariants();
}

#[test]
fn no_credit_is_announced_once_the_end_of_input_arrived() {
    let mut receiver = CreditReceiver::new(channel(), config(3, 1));
    receiver.on_element(element(0)).unwrap();
    receiver.poll_element().unwrap();
    receiver.on_element(Element::EndOfInput).unwrap();
    assert_eq!(receiver.poll_credit(), None, "the earned credit is useless now");
    receiver.poll_element().unwrap();
    assert_eq!(receiver.poll_credit(), None);
    receiver.assert_invariants();
}

#[test]
fn credits_crossing_the_end_on_the_wire_are_accepted_within_the_limit() {
    let mut pair = Pair::new(config(2, 2));
    pair.deliver_credit();
    pair.push(element(0));
    pair.transmit();
    pair.deliver_element();
    pair.consume();
    pair.announce(); // one credit on its way back …
    pair.push(Element::EndOfInput);
    pair.transmit(); // … while the end goes out
    assert!(pair.sender.is_finished());
    pair.deliver_credit();
    assert_eq!(pair.sender.credit(), 1);
    pair.check();
    assert!(pair.sender.on_credit(2).is_err(), "still bounded by the receiver's buffers");
}

#[test]
fn elements_arrive_in_the_order_they_were_pushed() {
    let mut pair = Pair::new(config(2, 3));
    for i in 0..20 {
        while !pair.push(element(i)) {
            assert!(pair.settle(), "stuck at element {i}");
        }
    }
    pair.push(Element::EndOfInput);
    pair.settle();
    assert_eq!(pair.consumed, pair.pushed);
}

#[test]
fn the_end_of_input_drains_the_backlog_and_finishes_both_sides() {
    let mut pair = Pair::new(config(1, 4));
    for i in 0..3 {
        assert!(pair.push(element(i)));
    }
    assert!(pair.push(Element::EndOfInput));
    assert!(!pair.sender.can_accept());
    assert!(!pair.sender.is_drained());
    pair.settle();
    assert!(pair.sender.is_drained() && pair.sender.is_finished());
    assert!(pair.receiver.is_finished());
    assert!(pair.data.is_empty() && pair.credits.is_empty());
    assert_eq!(pair.consumed.last(), Some(&Element::EndOfInput));
    assert_eq!(pair.consumed, pair.pushed);
}

#[test]
fn a_receiver_that_never_consumes_stops_the_sender_after_credits_max_plus_backlog_max() {
    for (credits_max, backlog_max) in [(1, 1), (4, 4), (2, 7), (CHANNEL_CREDITS_MAX, CHANNEL_BACKLOG_MAX)] {
        let mut pair = Pair::new(config(credits_max, backlog_max));
        pair.deliver_credit();
        let mut accepted = 0;
        while pair.push(element(accepted)) {
            accepted += 1;
            pair.transmit();
            while pair.deliver_element() {}
            pair.check();
        }
        assert_eq!(accepted, credits_max + backlog_max);
        assert_eq!(pair.receiver.buffered_len(), credits_max, "every buffer is full");
        assert_eq!(pair.sender.backlog_len(), backlog_max, "and the backlog");
        assert_eq!(pair.receiver.poll_credit(), None, "nothing consumed, nothing returned");
        // One consumed element lets exactly one more in.
        pair.consume();
        pair.announce();
        pair.deliver_credit();
        pair.transmit();
        assert!(pair.push(element(accepted)));
        assert!(!pair.push(element(accepted + 1)));
        pair.check();
    }
}

#[test]
#[should_panic(expected = "full backlog")]
fn pushing_into_a_full_backlog_is_a_bug() {
    let mut sender = CreditSender::new(channel(), config(1, 1));
    sender.push(element(0));
    sender.push(element(1));
}

#[test]
#[should_panic(expected = "after the end of input")]
fn pushing_after_the_end_of_input_is_a_bug() {
    let mut sender = CreditSender::new(channel(), config(1, 2));
    sender.push(Element::EndOfInput);
    sender.push(element(0));
}

#[test]
fn a_configuration_outside_the_limits_is_refused() {
    assert_eq!(CreditConfig::new(0, 1), Err(CreditConfigError::CreditsMax(0)));
    assert_eq!(
        CreditConfig::new(CHANNEL_CREDITS_MAX + 1, 1),
        Err(CreditConfigError::CreditsMax(CHANNEL_CREDITS_MAX + 1))
    );
    assert_eq!(CreditConfig::new(1, 0), Err(CreditConfigError::BacklogMax(0)));
    assert_eq!(
        CreditConfig::new(1, CHANNEL_BACKLOG_MAX + 1),
        Err(CreditConfigError::BacklogMax(CHANNEL_BACKLOG_MAX + 1))
    );
    let c = config(CHANNEL_CREDITS_MAX, CHANNEL_BACKLOG_MAX);
    assert_eq!((c.credits_max(), c.backlog_max()), (CHANNEL_CREDITS_MAX, CHANNEL_BACKLOG_MAX));
    assert_eq!(
        CreditConfigError::CreditsMax(0).to_string(),
        format!("credits_max is 0, expected 1 to {CHANNEL_CREDITS_MAX}")
    );
}

#[test]
fn errors_name_the_channel_and_the_offending_input() {
    let excess = CreditError::ExcessCredit { channel: channel(), granted: 5, credit: 1, credits_max: 4 };
    assert_eq!(
        excess.to_string(),
        "job-7/attempt-2 channel 3 of subtask 5: the receiver granted 5 credits while the sender held 1, \
         more than its 4 buffers"
    );
    let mut receiver = CreditReceiver::new(channel(), config(1, 1));
    receiver.on_element(Element::Watermark(3)).unwrap();
    let refused = receiver.on_element(Element::EndOfInput).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "job-7/attempt-2 channel 3 of subtask 5: the sender sent the end of input without credit: \
         all 1 buffers are taken"
    );
}

/// One step of the random interleaving.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The upstream subtask pushes its next element, if the backlog has room.
    Push,
    /// The upstream subtask pushes the end of input (once; later pushes are skipped).
    End,
    /// The sender puts what its credit allows on the wire.
    Transmit,
    /// The oldest element on the wire reaches the receiver.
    DeliverElement,
    /// The downstream subtask consumes one element.
    Consume,
    /// The receiver puts its returned credits on the wire.
    Announce,
    /// The oldest grant on the wire reaches the sender.
    DeliverCredit,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Push),
        1 => Just(Step::End),
        4 => Just(Step::Transmit),
        4 => Just(Step::DeliverElement),
        3 => Just(Step::Consume),
        3 => Just(Step::Announce),
        3 => Just(Step::DeliverCredit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the interleaving: every element arrives once and in order, neither side holds
    /// more than its bound, the invariants hold after every step, and once the upstream stops
    /// pushing and the downstream keeps consuming, everything drains.
    #[test]
    fn random_interleavings_deliver_everything_once_in_order_within_bounds(
        credits_max in 1u32..=5,
        backlog_max in 1u32..=5,
        steps in prop::collection::vec(step(), 0..300),
    ) {
        let mut pair = Pair::new(config(credits_max, backlog_max));
        let mut next = 0;
        for step in steps {
            let ended = pair.pushed.last() == Some(&Element::EndOfInput);
            match step {
                Step::Push if !ended => {
                    if pair.push(element(next)) {
                        next += 1;
                    } else {
                        prop_assert_eq!(pair.sender.backlog_len(), backlog_max, "refused with room");
                    }
                }
                Step::End if !ended => {
                    pair.push(Element::EndOfInput);
                }
                Step::Push | Step::End => {}
                Step::Transmit => pair.transmit(),
                Step::DeliverElement => {
                    pair.deliver_element();
                }
                Step::Consume => {
                    pair.consume();
                }
                Step::Announce => {
                    pair.announce();
                }
                Step::DeliverCredit => {
                    pair.deliver_credit();
                }
            }
            pair.check();
        }
        // Stop pushing data; end the stream, waiting for room as a subtask would.
        let mut rounds = 0;
        while pair.pushed.last() != Some(&Element::EndOfInput) {
            if !pair.push(Element::EndOfInput) {
                prop_assert!(pair.settle(), "deadlock: the backlog is full and nothing moves");
            }
            rounds += 1;
            prop_assert!(rounds <= 2, "one settle frees the backlog");
        }
        pair.settle();
        prop_assert!(pair.sender.is_finished() && pair.receiver.is_finished(), "not drained");
        prop_assert!(pair.data.is_empty() && pair.credits.is_empty());
        prop_assert_eq!(&pair.consumed, &pair.pushed);
        prop_assert_eq!(pair.receiver.counters().elements_received, pair.pushed.len() as u64);
        prop_assert_eq!(pair.receiver.poll_credit(), None);
    }
}
