//! Credit-based flow control of one data-plane channel: a [`CreditSender`] at the upstream subtask
//! and a [`CreditReceiver`] at the downstream input channel, as Flink runs it between TaskManagers.
//!
//! # Model
//!
//! A channel carries elements (batches, watermarks, the end of input) from one upstream subtask to
//! one input channel of a downstream subtask. The receiver owns `credits_max` buffers for it, one
//! element each. A *credit* is the receiver's promise of one free buffer: the sender puts an element
//! on the wire only while it holds a credit, and spends one per element — markers included, so they
//! stay in order with the data and count against the same memory. The receiver grants all its
//! buffers when the channel opens, and one credit back every time its subtask consumes an element.
//! Credits returned between two announcements travel together in one grant, and a receiver holds
//! them back until it has [`CreditConfig::grant_min`] of them: a producer that waits for credit is
//! then woken once per `grant_min` elements, not once per element, and the credit messages shrink by
//! as much (across processes, each wake-up is a round of thread switches; see `docs/benchmarks.md`).
//! Holding credits back never deadlocks a channel: a sender with no credit and nothing on the wire
//! means that every one of the `credits_max ≥ grant_min` buffers is at the receiver, so once its
//! subtask has consumed what they hold, they are all returned credits, and announced.
//!
//! ```text
//!              push ─▶ backlog ─poll_send─▶ ══ Data ══▶ on_element ─▶ buffers ─poll_element─▶ subtask
//!   CreditSender  (≤ backlog_max)                                  (≤ credits_max)   CreditReceiver
//!              on_credit ◀══════════════ Credit(n) ══════════════ poll_credit ◀─ one per consumed
//! ```
//!
//! So every element is held in a bounded place: the sender's backlog, the wire, or the receiver's
//! buffers, and the wire and the buffers together never hold more than `credits_max`. When the
//! downstream subtask stops consuming, credits stop coming back, the sender's backlog fills, and
//! [`CreditSender::can_accept`] turns false: that is the back-pressure on the upstream subtask. At
//! the receiver the conservation law is exact: buffered elements + credits granted and not yet used
//! + credits earned and not yet announced = `credits_max`, at every step.
//!
//! # Contract
//!
//! Both sides are pure state machines; the node carries their effects. It sends
//! [`CreditReceiver::initial_credit`] once when the channel opens, then whatever
//! [`CreditReceiver::poll_credit`] returns, and each element [`CreditSender::poll_send`] returns, each
//! in its own frame on one ordered connection. Both ends are configured with the same
//! [`CreditConfig`]. A channel belongs to one attempt of one job ([`ChannelId`]): frames of another
//! attempt are stale and never reach these state machines.
//!
//! Grants and elements come from a remote peer, so a violation of the protocol (a grant beyond the
//! receiver's buffers, an element without credit or after the end) is refused with a [`CreditError`]
//! and a counter, and leaves the state unchanged; the node then fails the attempt, since the peer can
//! no longer be trusted. Misuse by the local subtask (pushing into a full backlog, or after the end)
//! is a bug and panics.

use std::collections::VecDeque;
use std::fmt;

use thiserror::Error;

use crate::dataflow::element::Element;
use crate::dataflow::plan::ChannelAddr;
use crate::ids::{AttemptId, JobId};
use crate::limits::{
    CHANNEL_BACKLOG_DEFAULT, CHANNEL_BACKLOG_MAX, CHANNEL_CREDITS_DEFAULT, CHANNEL_CREDITS_MAX,
};

/// One channel of the data plane: the input channel `to` of a downstream subtask, in one attempt of
/// one job. The plan gives every input channel exactly one producer, so this names both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelId {
    pub job: JobId,
    pub attempt: AttemptId,
    pub to: ChannelAddr,
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} channel {} of subtask {}",
            self.job, self.attempt, self.to.channel, self.to.subtask.0
        )
    }
}

/// The bounds of one channel, valid by construction: `credits_max` in `1..=CHANNEL_CREDITS_MAX`,
/// `backlog_max` in `1..=CHANNEL_BACKLOG_MAX` and `grant_min` in `1..=credits_max`. Credits and
/// elements are counted in `u32`, the unit of a credit grant on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditConfig {
    credits_max: u32,
    backlog_max: u32,
    grant_min: u32,
}

/// A [`CreditConfig`] outside the limits of `limits.rs`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CreditConfigError {
    #[error("credits_max is {0}, expected 1 to {max}", max = CHANNEL_CREDITS_MAX)]
    CreditsMax(u32),
    #[error("backlog_max is {0}, expected 1 to {max}", max = CHANNEL_BACKLOG_MAX)]
    BacklogMax(u32),
    #[error("grant_min is {grant_min}, expected 1 to credits_max ({credits_max})")]
    GrantMin { grant_min: u32, credits_max: u32 },
}

impl CreditConfig {
    /// [`CHANNEL_CREDITS_DEFAULT`] buffers and [`CHANNEL_BACKLOG_DEFAULT`] backlog places; every
    /// returned credit is announced at once.
    pub const DEFAULT: CreditConfig = CreditConfig {
        credits_max: CHANNEL_CREDITS_DEFAULT,
        backlog_max: CHANNEL_BACKLOG_DEFAULT,
        grant_min: 1,
    };

    /// Zero of either would deadlock the channel by construction, so both start at 1. Returned
    /// credits are announced at once (`grant_min` 1; see [`CreditConfig::with_grant_min`]).
    pub fn new(credits_max: u32, backlog_max: u32) -> Result<CreditConfig, CreditConfigError> {
        if !(1..=CHANNEL_CREDITS_MAX).contains(&credits_max) {
            return Err(CreditConfigError::CreditsMax(credits_max));
        }
        if !(1..=CHANNEL_BACKLOG_MAX).contains(&backlog_max) {
            return Err(CreditConfigError::BacklogMax(backlog_max));
        }
        Ok(CreditConfig { credits_max, backlog_max, grant_min: 1 })
    }

    /// This configuration with receivers that announce returned credits only once they have
    /// `grant_min` of them (module documentation). Above `credits_max` a receiver would never
    /// announce anything, and 0 means nothing.
    pub fn with_grant_min(self, grant_min: u32) -> Result<CreditConfig, CreditConfigError> {
        if !(1..=self.credits_max).contains(&grant_min) {
            return Err(CreditConfigError::GrantMin { grant_min, credits_max: self.credits_max });
        }
        Ok(CreditConfig { grant_min, ..self })
    }

    /// Elements the receiver buffers at most: the credits it grants when the channel opens.
    pub fn credits_max(self) -> u32 {
        self.credits_max
    }

    /// Elements the sender keeps waiting for credit before it refuses more.
    pub fn backlog_max(self) -> u32 {
        self.backlog_max
    }

    /// Returned credits a receiver collects before it announces them.
    pub fn grant_min(self) -> u32 {
        self.grant_min
    }
}

impl Default for CreditConfig {
    fn default() -> CreditConfig {
        CreditConfig::DEFAULT
    }
}

/// A violation of the credit protocol by the peer at the other end of `channel`. Each is fatal for
/// the channel's attempt; the refused input has changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CreditError {
    #[error(
        "{channel}: the receiver granted {granted} credits while the sender held {credit}, \
         more than its {credits_max} buffers"
    )]
    ExcessCredit { channel: ChannelId, granted: u32, credit: u32, credits_max: u32 },
    #[error("{channel}: the receiver granted 0 credits, expected at least 1")]
    EmptyGrant { channel: ChannelId },
    #[error("{channel}: the sender sent {element} without credit: all {credits_max} buffers are taken")]
    ElementWithoutCredit { channel: ChannelId, element: String, credits_max: u32 },
    #[error("{channel}: the sender sent {element} after the end of input")]
    ElementAfterEnd { channel: ChannelId, element: String },
}

/// How an error names an element: its kind and size, never its records.
fn describe(element: &Element) -> String {
    match element {
        Element::Batch(batch) => format!("a batch of {} rows", batch.len()),
        Element::Watermark(w) => format!("watermark {w}"),
        Element::EndOfInput => "the end of input".to_owned(),
        Element::Barrier(id) => format!("the barrier of {id}"),
    }
}

/// Totals of a [`CreditSender`], for metrics; the invariants balance them against its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreditSenderCounters {
    pub elements_pushed: u64,
    pub elements_sent: u64,
    /// Credits granted by the receiver, the initial grant included.
    pub credits_received: u64,
    /// Grants refused as protocol violations.
    pub grants_refused: u64,
}

/// The upstream end of a channel: a bounded backlog of elements, sent as the receiver's credits
/// allow. See the module documentation for the protocol.
#[derive(Debug)]
pub struct CreditSender {
    channel: ChannelId,
    config: CreditConfig,
    /// Pushed, not yet sent, in order; at most `backlog_max`.
    backlog: VecDeque<Element>,
    /// Credits granted and not yet spent; at most `credits_max`.
    credit: u32,
    end_pushed: bool,
    end_sent: bool,
    counters: CreditSenderCounters,
}

impl CreditSender {
    /// A sender with an empty backlog and no credit: it sends nothing before the receiver's initial
    /// grant arrives.
    pub fn new(channel: ChannelId, config: CreditConfig) -> CreditSender {
        CreditSender {
            channel,
            config,
            backlog: VecDeque::with_capacity(config.backlog_max as usize),
            credit: 0,
            end_pushed: false,
            end_sent: false,
            counters: CreditSenderCounters::default(),
        }
    }

    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    pub fn config(&self) -> CreditConfig {
        self.config
    }

    pub fn counters(&self) -> CreditSenderCounters {
        self.counters
    }

    /// Whether the backlog has room for one more element. When it has not, the subtask must wait
    /// (back-pressure) until credits arrive and [`CreditSender::poll_send`] frees a place.
    pub fn can_accept(&self) -> bool {
        self.backlog_len() < self.config.backlog_max
    }

    /// Elements pushed and not yet sent.
    pub fn backlog_len(&self) -> u32 {
        u32::try_from(self.backlog.len()).expect("the backlog holds at most backlog_max elements")
    }

    /// Credits granted and not yet spent.
    pub fn credit(&self) -> u32 {
        self.credit
    }

    /// Queues `element` for sending. The caller must have checked [`CreditSender::can_accept`], and
    /// nothing may follow the end of input: either mistake is a bug in the local subtask.
    pub fn push(&mut self, element: Element) {
        assert!(
            self.can_accept(),
            "{}: pushed into a full backlog of {}",
            self.channel,
            self.config.backlog_max
        );
        assert!(!self.end_pushed, "{}: pushed {} after the end of input", self.channel, describe(&element));
        self.end_pushed = matches!(element, Element::EndOfInput);
        self.backlog.push_back(element);
        self.counters.elements_pushed += 1;
    }

    /// Adds `n` credits granted by the receiver. A grant of nothing, or one that would leave the
    /// sender holding more credits than the receiver has buffers, breaks the protocol and is
    /// refused. Credits may still arrive after the end was sent (they crossed it on the wire); they
    /// are counted and never used.
    pub fn on_credit(&mut self, n: u32) -> Result<(), CreditError> {
        if n == 0 {
            self.counters.grants_refused += 1;
            return Err(CreditError::EmptyGrant { channel: self.channel });
        }
        // `credit <= credits_max` holds, so the subtraction cannot wrap and `n` may be anything.
        if n > self.config.credits_max - self.credit {
            self.counters.grants_refused += 1;
            return Err(CreditError::ExcessCredit {
                channel: self.channel,
                granted: n,
                credit: self.credit,
                credits_max: self.config.credits_max,
            });
        }
        self.credit += n;
        self.counters.credits_received += u64::from(n);
        Ok(())
    }

    /// The next element to put on the wire, spending one credit; `None` while the backlog is empty
    /// or the sender has no credit.
    pub fn poll_send(&mut self) -> Option<Element> {
        if self.credit == 0 {
            return None;
        }
        let element = self.backlog.pop_front()?;
        self.credit -= 1;
        self.counters.elements_sent += 1;
        if matches!(element, Element::EndOfInput) {
            assert!(self.backlog.is_empty(), "nothing is pushed after the end of input");
            self.end_sent = true;
        }
        Some(element)
    }

    /// Whether everything pushed so far has been sent.
    pub fn is_drained(&self) -> bool {
        self.backlog.is_empty()
    }

    /// Whether the end of input has been sent: the sender's work on this channel is done.
    pub fn is_finished(&self) -> bool {
        self.end_sent
    }

    pub fn assert_invariants(&self) {
        let c = &self.counters;
        assert!(self.backlog_len() <= self.config.backlog_max, "{}: backlog over its bound", self.channel);
        assert!(self.credit <= self.config.credits_max, "{}: more credit than buffers", self.channel);
        assert_eq!(c.elements_pushed - c.elements_sent, self.backlog.len() as u64, "{}: lost", self.channel);
        // Never sent without credit: every element sent spent one credit received.
        assert_eq!(c.credits_received - c.elements_sent, u64::from(self.credit), "{}", self.channel);
        // An element is acknowledged when the credit its buffer returns arrives: every grant beyond
        // the receiver's initial `credits_max` acknowledges one. So the unacknowledged elements —
        // on the wire or in the receiver's buffers — never outnumber the buffers.
        let acknowledged = c.credits_received.saturating_sub(u64::from(self.config.credits_max));
        assert!(c.elements_sent - acknowledged <= u64::from(self.config.credits_max), "{}", self.channel);
        let ends = self.backlog.iter().filter(|e| matches!(e, Element::EndOfInput)).count();
        if self.end_sent {
            assert!(self.end_pushed && self.backlog.is_empty(), "{}: sent after the end", self.channel);
        } else if self.end_pushed {
            assert!(matches!(self.backlog.back(), Some(Element::EndOfInput)), "{}", self.channel);
            assert_eq!(ends, 1, "{}: one end of input, last", self.channel);
        } else {
            assert_eq!(ends, 0, "{}: an end of input that was not pushed", self.channel);
        }
    }
}

/// Totals of a [`CreditReceiver`], for metrics; the invariants balance them against its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreditReceiverCounters {
    /// Credits granted to the sender, the initial grant included.
    pub credits_announced: u64,
    pub elements_received: u64,
    pub elements_consumed: u64,
    /// Elements refused as protocol violations.
    pub elements_refused: u64,
}

/// The downstream end of a channel: `credits_max` buffers, granted to the sender as credits and
/// handed to the subtask in arrival order. See the module documentation for the protocol.
#[derive(Debug)]
pub struct CreditReceiver {
    channel: ChannelId,
    credits_max: u32,
    /// Announce returned credits once at least this many are waiting; in `1..=credits_max`.
    grant_min: u32,
    /// Received, not yet consumed, in order; at most `credits_max`.
    buffers: VecDeque<Element>,
    /// Credits earned by consumed elements and not yet announced.
    credits_unannounced: u32,
    end_received: bool,
    counters: CreditReceiverCounters,
}

impl CreditReceiver {
    /// A receiver with every buffer free and granted: the node announces
    /// [`CreditReceiver::initial_credit`] once when the channel opens.
    pub fn new(channel: ChannelId, config: CreditConfig) -> CreditReceiver {
        CreditReceiver {
            channel,
            credits_max: config.credits_max(),
            grant_min: config.grant_min(),
            buffers: VecDeque::with_capacity(config.credits_max() as usize),
            credits_unannounced: 0,
            end_received: false,
            counters: CreditReceiverCounters {
                credits_announced: u64::from(config.credits_max()),
                ..CreditReceiverCounters::default()
            },
        }
    }

    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    pub fn counters(&self) -> CreditReceiverCounters {
        self.counters
    }

    /// The grant that opens the channel: every buffer.
    pub fn initial_credit(&self) -> u32 {
        self.credits_max
    }

    /// Elements received and not yet consumed.
    pub fn buffered_len(&self) -> u32 {
        u32::try_from(self.buffers.len()).expect("the buffers hold at most credits_max elements")
    }

    /// Credits the sender holds or has in flight as elements: granted and not yet used.
    fn credits_outstanding(&self) -> u64 {
        self.counters.credits_announced - self.counters.elements_received
    }

    /// Takes an element from the wire into a buffer. An element after the end of input, or beyond
    /// the credits granted, breaks the protocol and is refused.
    pub fn on_element(&mut self, element: Element) -> Result<(), CreditError> {
        if self.end_received {
            self.counters.elements_refused += 1;
            return Err(CreditError::ElementAfterEnd { channel: self.channel, element: describe(&element) });
        }
        if self.credits_outstanding() == 0 {
            self.counters.elements_refused += 1;
            return Err(CreditError::ElementWithoutCredit {
                channel: self.channel,
                element: describe(&element),
                credits_max: self.credits_max,
            });
        }
        self.end_received = matches!(element, Element::EndOfInput);
        self.buffers.push_back(element);
        self.counters.elements_received += 1;
        Ok(())
    }

    /// Hands the oldest buffered element to the subtask, freeing its buffer: one credit to return.
    pub fn poll_element(&mut self) -> Option<Element> {
        let element = self.buffers.pop_front()?;
        self.counters.elements_consumed += 1;
        self.credits_unannounced += 1;
        Some(element)
    }

    /// The credits to announce to the sender: everything returned since the last announcement, in
    /// one grant. `None` while fewer than `grant_min` are waiting, and always once the end of input
    /// has arrived, since the sender has nothing left to send.
    pub fn poll_credit(&mut self) -> Option<u32> {
        if self.end_received || self.credits_unannounced < self.grant_min {
            return None;
        }
        let n = std::mem::take(&mut self.credits_unannounced);
        self.counters.credits_announced += u64::from(n);
        Some(n)
    }

    /// Whether the subtask has consumed the end of input: nothing more will arrive or be handed out.
    pub fn is_finished(&self) -> bool {
        self.end_received && self.buffers.is_empty()
    }

    pub fn assert_invariants(&self) {
        let c = &self.counters;
        assert!((1..=self.credits_max).contains(&self.grant_min), "{}: grant_min", self.channel);
        assert!(self.buffered_len() <= self.credits_max, "{}: buffers over their bound", self.channel);
        assert!(c.elements_received <= c.credits_announced, "{}: received without credit", self.channel);
        assert_eq!(c.elements_received - c.elements_consumed, self.buffers.len() as u64, "{}", self.channel);
        // Conservation of buffers: each is holding an element, promised to the sender, or free and
        // waiting for its credit to be announced.
        let accounted =
            self.buffers.len() as u64 + self.credits_outstanding() + u64::from(self.credits_unannounced);
        assert_eq!(accounted, u64::from(self.credits_max), "{}: buffers not conserved", self.channel);
        let ends = self.buffers.iter().filter(|e| matches!(e, Element::EndOfInput)).count();
        if self.end_received {
            let last = self.buffers.back();
            assert!(last.is_none_or(|e| matches!(e, Element::EndOfInput)), "{}: after the end", self.channel);
            assert!(ends <= 1, "{}: one end of input, last", self.channel);
        } else {
            assert_eq!(ends, 0, "{}: an end of input that was not received", self.channel);
        }
    }
}

#[cfg(test)]
#[path = "credit_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "credit_grant_tests.rs"]
mod grant_min_tests;
