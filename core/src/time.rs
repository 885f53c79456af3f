//! Time as the core sees it: instants given by the driver, and event time in milliseconds.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in processing time, as nanoseconds since an epoch the driver chose. The core never
/// reads a clock: every call that needs the time takes an `Instant` argument.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Event time: milliseconds since the Unix epoch, as carried by timestamp fields.
pub type EventTime = i64;

/// The watermark before any record: nothing is late yet.
pub const WATERMARK_MIN: EventTime = i64::MIN;

/// The watermark at the end of bounded input: every window fires.
pub const WATERMARK_MAX: EventTime = i64::MAX;
