//! The input gate of a subtask: tracks each input channel's watermark and end, and says when the
//! subtask's own watermark (the minimum over its channels) advances.

use crate::time::{EventTime, WATERMARK_MAX, WATERMARK_MIN};

#[derive(Debug)]
pub struct InputGate {
    watermarks: Vec<EventTime>,
    ended: Vec<bool>,
    open: usize,
    current: EventTime,
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
    /// channel has now ended.
    pub fn on_end(&mut self, channel: u32) -> Result<(Option<EventTime>, bool), GateError> {
        let c = self.check(channel)?;
        self.ended[c] = true;
        self.watermarks[c] = WATERMARK_MAX;
        self.open -= 1;
        Ok((self.advance(), self.open == 0))
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
    fn markers_after_the_end_or_off_the_gate_are_errors() {
        let mut g = InputGate::new(1);
        assert_eq!(g.on_watermark(3, 1), Err(GateError::NoSuchChannel(3)));
        g.on_end(0).unwrap();
        assert_eq!(g.on_batch(0), Err(GateError::AfterEnd(0)));
    }
}
