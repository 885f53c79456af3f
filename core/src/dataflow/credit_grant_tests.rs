//! Receivers that hold returned credits back (`grant_min` > 1); the rules of every channel are in
//! `credit_tests.rs`.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::batch::{Batch, Column};
use crate::dataflow::plan::SubtaskId;

fn channel() -> ChannelId {
    ChannelId { job: JobId(1), attempt: AttemptId(0), to: ChannelAddr { subtask: SubtaskId(0), channel: 0 } }
}

fn batch(i: u32) -> Element {
    Element::Batch(Batch::new(vec![Column::Int(vec![i64::from(i)])]))
}

#[test]
fn returned_credits_wait_until_there_are_grant_min_of_them() {
    let config = CreditConfig::new(4, 4).unwrap().with_grant_min(3).unwrap();
    assert_eq!(config.grant_min(), 3);
    let mut receiver = CreditReceiver::new(channel(), config);
    assert_eq!(receiver.initial_credit(), 4, "the opening grant is every buffer, whatever grant_min");
    for i in 0..4 {
        receiver.on_element(batch(i)).unwrap();
    }
    for _ in 0..2 {
        receiver.poll_element().unwrap();
        assert_eq!(receiver.poll_credit(), None, "fewer than grant_min returned");
    }
    receiver.poll_element().unwrap();
    assert_eq!(receiver.poll_credit(), Some(3));
    receiver.poll_element().unwrap();
    assert_eq!(receiver.poll_credit(), None);
    receiver.assert_invariants();
}

#[test]
fn grant_min_must_lie_between_1_and_credits_max() {
    let config = CreditConfig::new(4, 1).unwrap();
    assert_eq!(config.grant_min(), 1);
    assert_eq!(config.with_grant_min(4).map(CreditConfig::grant_min), Ok(4));
    for bad in [0, 5] {
        assert_eq!(
            config.with_grant_min(bad),
            Err(CreditConfigError::GrantMin { grant_min: bad, credits_max: 4 })
        );
    }
    assert_eq!(
        config.with_grant_min(5).unwrap_err().to_string(),
        "grant_min is 5, expected 1 to credits_max (4)"
    );
}

proptest! {
    /// A producer that pushes whenever it can and a consumer that takes elements in random
    /// steps: whatever `grant_min`, everything arrives in order and nothing deadlocks.
    #[test]
    fn held_back_credits_never_stall_a_channel(
        credits_max in 1u32..=6,
        backlog_max in 1u32..=4,
        grant_min_seed in 0u32..6,
        steps in prop::collection::vec(0u8..5, 0..200),
        total in 0u32..40,
    ) {
        let grant_min = 1 + grant_min_seed % credits_max;
        let config = CreditConfig::new(credits_max, backlog_max).unwrap().with_grant_min(grant_min).unwrap();
        let (mut sender, mut receiver) = (CreditSender::new(channel(), config), CreditReceiver::new(channel(), config));
        let (mut data, mut credits) = (VecDeque::new(), VecDeque::from([receiver.initial_credit()]));
        let (mut pushed, mut consumed) = (0u32, Vec::new());
        // Random steps, then every step in turn until nothing moves: the channel must drain.
        let settle = std::iter::repeat_n([0u8, 1, 2, 3, 4], 4 * (total as usize + 2) + 8).flatten();
        for step in steps.into_iter().chain(settle) {
            match step {
                0 if pushed <= total && sender.can_accept() => {
                    sender.push(if pushed == total { Element::EndOfInput } else { batch(pushed) });
                    pushed += 1;
                }
                1 => data.extend(std::iter::from_fn(|| sender.poll_send())),
                2 => if let Some(e) = data.pop_front() { receiver.on_element(e).unwrap() },
                3 => {
                    consumed.extend(receiver.poll_element());
                    credits.extend(receiver.poll_credit());
                }
                4 => if let Some(n) = credits.pop_front() { sender.on_credit(n).unwrap() },
                _ => {}
            }
            sender.assert_invariants();
            receiver.assert_invariants();
        }
        prop_assert!(sender.is_finished() && receiver.is_finished(), "the channel stalled");
        let expected: Vec<Element> = (0..total).map(batch).chain([Element::EndOfInput]).collect();
        prop_assert_eq!(consumed, expected);
    }
}
