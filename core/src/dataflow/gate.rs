//! The input gate of a subtask: tracks each input channel's watermark and end, says when the
//! subtask's own watermark (the minimum over its channels) advances, and aligns checkpoint
//! barriers.
//!
//! # Barrier alignment
//!
//! When barrier n arrives on a channel, that channel is *blocked*: the driver takes nothing more
//! from it (its elements after the barrier belong after checkpoint n) until barrier n has arrived
//! on every channel that has not ended. Then the alignment is complete, every channel is unblocked,
//! and the subtask snapshots its state and forwards the barrier. A barrier of a newer checkpoint
//! during an alignment means the older one can never complete here (the coordinator gave it up):
//! the older alignment is abandoned and the newer one starts. A barrier of a checkpoint at or below
//! the newest one seen is stale and ignored.

use crate::ids::CheckpointId;
use crate::time::{EventTime, WATERMARK_MAX, WATERMARK_MIN};

#[derive(Debug)]
pub struct InputGate {
    watermarks: Vec<EventTime>,
    ended: Vec<bool>,
    open: usize,
    current: EventTime,
    /// Channels that delivered the barrier being aligned (blocked while it is aligned).
    arrived: Vec<bool>,
    /// The checkpoint being aligned, if any.
    aligning: Option<CheckpointId>,
    /// The newest checkpoint whose barrier arrived here (aligned or abandoned).
    newest: Option<CheckpointId>,
    /// Never block a channel: the planted bug `planted-skip-alignment`.
    unaligned: bool,
}

/// What a barrier did to the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierOutcome {
    /// Barrier n has arrived on every open channel: snapshot and forward it.
    Aligned(CheckpointId),
    /// Waiting for barrier n on other channels; this one is blocked.
    Aligning,
    /// A newer barrier ended the alignment of `abandoned`; the newer one is being aligned (or, with
    /// `aligned`, complete at once).
    Superseded { abandoned: CheckpointId, aligned: Option<CheckpointId> },
    /// A barrier of a checkpoint already seen: ignored.
    Stale,
}

/// A channel index outside the gate, or a marker after a channel's end: a peer's mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateError {
    NoSuchChannel(u32),
    AfterEnd(u32),
}

impl InputGate {
    pub fn new(channels: u32) -> InputGate {
        InputGate {
            watermarks: vec![WATERMARK_MIN; channels as usize],
            ended: vec![false; channels as usize],
            open: channels as usize,
            current: WATERMARK_MIN,
            arrived: vec![false; channels as usize],
            aligning: None,
            newest: None,
            unaligned: cfg!(feature = "planted-skip-alignment"),
        }
    }

    fn check(&self, channel: u32) -> Result<usize, GateError> {
        let c = channel as usize;
        match self.ended.get(c) {
            None => Err(GateError::NoSuchChannel(channel)),
            Some(true) => Err(GateError::AfterEnd(channel)),
            Some(false) => Ok(c),
        }
    }

    /// Checks that a batch may arrive on `channel`.
    pub fn on_batch(&self, channel: u32) -> Result<(), GateError> {
        self.check(channel).map(|_| ())
    }

    /// Records a channel's watermark; returns the subtask's new watermark if it advanced.
    /// A watermark lower than the channel's previous one is ignored: watermarks never go back.
    pub fn on_watermark(
        &mut self,
        channel: u32,
        watermark: EventTime,
    ) -> Result<Option<EventTime>, GateError> {
        let c = self.check(channel)?;
        self.watermarks[c] = self.watermarks[c].max(watermark);
        Ok(self.advance())
    }

    /// Records a channel's end; returns the new watermark if it advanced, and whether every
    /// channel has now ended. A channel ends unblocked; [`InputGate::take_aligned`] tells whether
    /// its end completed an alignment (it no longer has a barrier to deliver).
    pub fn on_end(&mut self, channel: u32) -> Result<(Option<EventTime>, bool), GateError> {
        let c = self.check(channel)?;
        self.ended[c] = true;
        self.arrived[c] = false;
        self.watermarks[c] = WATERMARK_MAX;
        self.open -= 1;
        Ok((self.advance(), self.open == 0))
    }

    /// Barrier `checkpoint` arrived on `channel`.
    pub fn on_barrier(
        &mut self,
        channel: u32,
        checkpoint: CheckpointId,
    ) -> Result<BarrierOutcome, GateError> {
        let c = self.check(channel)?;
        let seen =
            self.newest.is_some_and(|n| checkpoint < n || (checkpoint == n && self.aligning.is_none()));
        // A second barrier n on one channel is a producer's fault; it is ignored like a stale one.
        if seen || (self.arrived[c] && self.aligning == Some(checkpoint)) {
            return Ok(BarrierOutcome::Stale);
        }
        let abandoned = match self.aligning {
            Some(old) if old < checkpoint => {
                self.arrived.iter_mut().for_each(|b| *b = false);
                Some(old)
            }
            _ => None,
        };
        self.newest = Some(checkpoint);
        self.aligning = Some(checkpoint);
        self.arrived[c] = true;
        let aligned = self.take_aligned();
        Ok(match (abandoned, aligned) {
            (Some(abandoned), aligned) => BarrierOutcome::Superseded { abandoned, aligned },
            (None, Some(id)) => BarrierOutcome::Aligned(id),
            (None, None) => BarrierOutcome::Aligning,
        })
    }

    /// If an alignment is in progress and every open channel has delivered its barrier: ends it
    /// (unblocking every channel) and returns its checkpoint.
    pub fn take_aligned(&mut self) -> Option<CheckpointId> {
        let id = self.aligning?;
        if (0..self.ended.len()).all(|c| self.ended[c] || self.arrived[c]) {
            self.aligning = None;
            self.arrived.iter_mut().for_each(|b| *b = false);
            return Some(id);
        }
        None
    }

    /// Whether the driver must hold back `channel`'s input: it delivered the barrier being aligned.
    /// (With the planted bug `planted-skip-alignment`, never: records after a barrier then reach
    /// the operators before the snapshot, which the simulation's checkers must catch.)
    #[inline]
    pub fn is_blocked(&self, channel: u32) -> bool {
        !self.unaligned && self.arrived.get(channel as usize).copied().unwrap_or(false)
    }

    /// The checkpoint being aligned, if any.
    pub fn aligning(&self) -> Option<CheckpointId> {
        self.aligning
    }

    fn advance(&mut self) -> Option<EventTime> {
        let min = self.watermarks.iter().copied().min().unwrap_or(WATERMARK_MAX);
        (min > self.current).then(|| {
            self.current = min;
            min
        })
    }

    pub fn watermark(&self) -> EventTime {
        self.current
    }

    /// Starts a restored gate at the watermark it had forwarded when the snapshot was taken.
    pub fn restore_watermark(&mut self, watermark: EventTime) {
        self.current = self.current.max(watermark);
    }

    pub fn all_ended(&self) -> bool {
        self.open == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_minimum_over_channels() {
        let mut g = InputGate::new(2);
        assert_eq!(g.on_watermark(0, 10), Ok(None));
        assert_eq!(g.on_watermark(1, 5), Ok(Some(5)));
        assert_eq!(g.on_watermark(1, 20), Ok(Some(10)));
        assert_eq!(g.on_watermark(1, 3), Ok(None), "a lower watermark is ignored");
        assert_eq!(g.on_end(0), Ok((Some(20), false)));
        assert_eq!(g.on_end(1), Ok((Some(WATERMARK_MAX), true)));
    }

    #[test]
    fn a_barrier_blocks_its_channel_until_every_open_channel_delivered_it() {
        let mut g = InputGate::new(3);
        let (one, two) = (CheckpointId(1), CheckpointId(2));
        assert_eq!(g.on_barrier(0, one), Ok(BarrierOutcome::Aligning));
        assert!(g.is_blocked(0) || cfg!(feature = "planted-skip-alignment"));
        assert!(!g.is_blocked(1));
        assert_eq!(g.on_barrier(0, one), Ok(BarrierOutcome::Stale), "twice on one channel");
        g.on_end(2).unwrap();
        assert_eq!(g.take_aligned(), None);
        assert_eq!(g.on_barrier(1, one), Ok(BarrierOutcome::Aligned(one)));
        assert!(!g.is_blocked(0) && !g.is_blocked(1));
        assert_eq!(g.on_barrier(1, one), Ok(BarrierOutcome::Stale), "after its alignment");
        assert_eq!(g.on_barrier(0, two), Ok(BarrierOutcome::Aligning));
        assert_eq!(g.aligning(), Some(two));
    }

    #[test]
    fn a_newer_barrier_abandons_the_older_alignment_and_an_end_can_complete_one() {
        let mut g = InputGate::new(2);
        g.on_barrier(0, CheckpointId(3)).unwrap();
        assert_eq!(
            g.on_barrier(1, CheckpointId(4)),
            Ok(BarrierOutcome::Superseded { abandoned: CheckpointId(3), aligned: None })
        );
        assert!(!g.is_blocked(0));
        assert_eq!(g.on_barrier(0, CheckpointId(3)), Ok(BarrierOutcome::Stale));
        g.on_end(0).unwrap();
        assert_eq!(g.take_aligned(), Some(CheckpointId(4)));
    }

    #[test]
    fn markers_after_the_end_or_off_the_gate_are_errors() {
        let mut g = InputGate::new(1);
        assert_eq!(g.on_watermark(3, 1), Err(GateError::NoSuchChannel(3)));
        g.on_end(0).unwrap();
        assert_eq!(g.on_batch(0), Err(GateError::AfterEnd(0)));
    }
}
