//! Readable traces: the nodes' `tracing` logs stamped with simulated time (the host's name comes
//! from turmoil's `node` span), on when `RIVULET_SIM_LOG` holds an `EnvFilter` directive.
//!
//! Wall-clock stamps would say nothing about a simulation that runs a minute of simulated time in
//! a fraction of a second; simulated time lines the logs up with the notes and the faults.

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

use crate::LOG_VARIABLE;

/// Stamps a log line with the simulated time, or `-` outside a host.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimulatedTime;

impl FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match turmoil::sim_elapsed() {
            Some(at) => write!(w, "{:>9.3}s", at.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}

/// In tests: logs to the test's output when `RIVULET_SIM_LOG` is set.
pub fn init_for_tests() {
    if let Ok(filter) = std::env::var(LOG_VARIABLE) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_timer(SimulatedTime)
            .with_test_writer()
            .try_init();
    }
}

/// In a replay: logs to stderr with `RIVULET_SIM_LOG`'s filter, or `default_filter`.
pub fn init_for_replay(default_filter: &str) {
    let filter = std::env::var(LOG_VARIABLE).unwrap_or_else(|_| default_filter.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_timer(SimulatedTime)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
