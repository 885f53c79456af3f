//! Restart strategies: how long a JobMaster waits before restarting a failed job, and when it
//! gives up. Configured per job (`[job.restart]` in the job file).

use std::time::Duration;

/// When and how often a failed job is restarted.
#[derive(Clone, Debug, PartialEq)]
pub enum RestartStrategy {
    /// A failure fails the job.
    None,
    /// Wait `delay` before each restart, at most `attempts` restarts.
    FixedDelay { attempts: u32, delay: Duration },
    /// Wait `initial`, then `multiplier` times longer after each further failure, never longer than
    /// `max`; at most `attempts` restarts.
    ExponentialBackoff { attempts: u32, initial: Duration, max: Duration, multiplier: u32 },
}

impl Default for RestartStrategy {
    /// Three restarts one second apart: enough to ride out a TaskManager that dies and is replaced.
    fn default() -> Self {
        RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_secs(1) }
    }
}

impl RestartStrategy {
    /// The delay before the restart that follows failure number `failures` (1 for the first), or
    /// `None` if the job must fail instead.
    pub fn delay_before_restart(&self, failures: u32) -> Option<Duration> {
        assert!(failures >= 1, "asked for a restart before any failure");
        match *self {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => (failures <= attempts).then_some(delay),
            RestartStrategy::ExponentialBackoff { attempts, initial, max, multiplier } => {
                if failures > attempts {
                    return None;
                }
                let factor = u64::from(multiplier).saturating_pow(failures - 1);
                let nanos = u64::try_from(initial.as_nanos()).unwrap_or(u64::MAX).saturating_mul(factor);
                Some(Duration::from_nanos(nanos).min(max))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            RestartStrategy::None => "none",
            RestartStrategy::FixedDelay { .. } => "fixed-delay",
            RestartStrategy::ExponentialBackoff { .. } => "exponential-backoff",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fixed_delay_restarts_a_bounded_number_of_times() {
        let s = RestartStrategy::FixedDelay { attempts: 2, delay: 500 * MS };
        assert_eq!(s.delay_before_restart(1), Some(500 * MS));
        assert_eq!(s.delay_before_restart(2), Some(500 * MS));
        assert_eq!(s.delay_before_restart(3), None);
    }

    #[test]
    fn exponential_backoff_grows_to_its_cap() {
        let s = RestartStrategy::ExponentialBackoff {
            attempts: 10,
            initial: 100 * MS,
            max: 1000 * MS,
            multiplier: 2,
        };
        let delays: Vec<_> = (1..=6).map(|f| s.delay_before_restart(f).unwrap().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(s.delay_before_restart(11), None);
        // Huge failure counts saturate instead of overflowing.
        let s = RestartStrategy::ExponentialBackoff {
            attempts: u32::MAX,
            initial: MS,
            max: 60_000 * MS,
            multiplier: 10,
        };
        assert_eq!(s.delay_before_restart(1_000), Some(60_000 * MS));
    }

    #[test]
    fn no_restart_strategy_fails_at_once() {
        assert_eq!(RestartStrategy::None.delay_before_restart(1), None);
    }
}
