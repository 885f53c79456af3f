//! Mixed scenarios: each seed enables a random subset of the fault kinds and schedules several
//! faults of the enabled kinds, overlapping, so that rare combinations (a JobManager restart
//! during a held data link and a TaskManager bounce, a one-way partition under slow storage) get
//! their turn in a sweep. Each fault kind is also a scenario of its own ([`single`]).
//!
//! Every fault drawn here ends (a bounced host starts again, a held or cut link is released or
//! repaired, latency goes back to normal), so the job must finish with the exact result within
//! the liveness bound after the last fault, and both TaskManagers must be back.
//!
//! Adding a fault kind: a variant of [`FaultKind`], its name, and its episode in
//! [`FaultKind::episode`] (the faults that open and close it, and what it adds to the limits).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::catalog::{patient_job, Kind, LIVENESS_BOUND, SETTLE_LIMIT};
use crate::rng::SeedRng;
use crate::scenario::{DelayRange, Expect, Failures, Fault, Replay, Scenario, ScheduledFault};
use crate::{CLIENT, JOB_MANAGER, TASK_MANAGERS};

/// The kinds of fault a mixed scenario enables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A TaskManager crashes and starts again 0.1-4 s later.
    Bounce,
    /// A TaskManager's link to the JobManager is held 0.5-10 s.
    HeldJmLink,
    /// The TaskManagers' data link is held 0.1-8 s.
    HeldDataLink,
    /// The JobManager's links get 0.2-1.5 s of latency for 0.5-6 s (below the heartbeat timeout).
    JmSlow,
    /// The JobManager's links get 5.5-8 s of latency for 6-14 s (above it).
    JmStall,
    /// The JobManager crashes and starts again on its store 0.1-3 s later.
    JmRestart,
    /// One direction of a link is cut for 0.5-10 s.
    OneWayPartition,
    /// Links get 0-(0.3-1.5 s) of latency per segment for 0.5-6 s: segments reorder across
    /// connections.
    Jitter,
    /// Every checkpoint write takes 20-800 ms (the whole run).
    SlowStore,
    /// Every checkpoint acknowledgement is held back 50-1,000 ms (the whole run).
    SlowAck,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Bounce,
        FaultKind::HeldJmLink,
        FaultKind::HeldDataLink,
        FaultKind::JmSlow,
        FaultKind::JmStall,
        FaultKind::JmRestart,
        FaultKind::OneWayPartition,
        FaultKind::Jitter,
        FaultKind::SlowStore,
        FaultKind::SlowAck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Bounce => "bounce",
            FaultKind::HeldJmLink => "held-jm-link",
            FaultKind::HeldDataLink => "held-data-link",
            FaultKind::JmSlow => "jm-slow",
            FaultKind::JmStall => "jm-stall",
            FaultKind::JmRestart => "jm-restart",
            FaultKind::OneWayPartition => "one-way-partition",
            FaultKind::Jitter => "jitter",
            FaultKind::SlowStore => "slow-store",
            FaultKind::SlowAck => "slow-ack",
        }
    }

    /// Whether the kind is a setting of the whole run rather than an episode with a start and end.
    fn is_setting(self) -> bool {
        matches!(self, FaultKind::SlowStore | FaultKind::SlowAck)
    }
}

/// Faults drawn so far, with what constrains the next ones.
struct Plan {
    faults: Vec<ScheduledFault>,
    store_delay: Option<DelayRange>,
    ack_delay: Option<DelayRange>,
    duration_limit: Duration,
    liveness_bound: Duration,
    /// Host pairs held, and cut one way: turmoil does not support both on one pair.
    held: BTreeSet<(&'static str, &'static str)>,
    cut: BTreeSet<(&'static str, &'static str)>,
    /// Hosts crashed by an episode: one crash per host.
    crashed: BTreeSet<&'static str>,
    /// The direction a one-way partition cuts, if not a TaskManager's to the JobManager.
    one_way: Option<(&'static str, &'static str)>,
}

const JOB_MANAGER_PEERS: [&str; 3] = [TASK_MANAGERS[0], TASK_MANAGERS[1], CLIENT];

fn pair(a: &'static str, b: &'static str) -> (&'static str, &'static str) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Plan {
    fn new() -> Plan {
        Plan {
            faults: Vec::new(),
            store_delay: None,
            ack_delay: None,
            duration_limit: SETTLE_LIMIT,
            liveness_bound: LIVENESS_BOUND,
            held: BTreeSet::new(),
            cut: BTreeSet::new(),
            crashed: BTreeSet::new(),
            one_way: None,
        }
    }

    /// Faults `opened` at `at` after the job runs and `closed` `lasting` later.
    fn window(&mut self, at: Duration, lasting: Duration, opened: Vec<Fault>, closed: Vec<Fault>) {
        self.faults.extend(opened.into_iter().map(|f| ScheduledFault::running(at, f)));
        self.faults.extend(closed.into_iter().map(|f| ScheduledFault::running(at + lasting, f)));
        self.duration_limit += at + lasting;
    }

    fn latency(&mut self, at: Duration, lasting: Duration, min: Duration) {
        let opened = JOB_MANAGER_PEERS.iter().map(|&b| Fault::Latency { a: JOB_MANAGER, b, min }).collect();
        let closed = JOB_MANAGER_PEERS.iter().map(|&b| Fault::NormalLatency(JOB_MANAGER, b)).collect();
        self.window(at, lasting, opened, closed);
        self.duration_limit += 2 * min;
    }

    /// Draws one episode of `kind` from `rng`; false if it cannot join the faults drawn so far.
    fn add(&mut self, kind: FaultKind, rng: &mut SeedRng) -> bool {
        let at = rng.millis(0..=2_000);
        let victim = TASK_MANAGERS[rng.below(2) as usize];
        let [tm1, tm2] = TASK_MANAGERS;
        match kind {
            FaultKind::Bounce | FaultKind::JmRestart => {
                let (host, down) = if kind == FaultKind::Bounce {
                    (victim, rng.millis(100..=4_000))
                } else {
                    (JOB_MANAGER, rng.millis(100..=3_000))
                };
                if !self.crashed.insert(host) {
                    return false;
                }
                self.window(at, down, vec![Fault::Crash(host)], vec![Fault::Bounce(host)]);
            }
            FaultKind::HeldJmLink | FaultKind::HeldDataLink => {
                let (a, b, lasting) = if kind == FaultKind::HeldJmLink {
                    (victim, JOB_MANAGER, rng.millis(500..=10_000))
                } else {
                    (tm1, tm2, rng.millis(100..=8_000))
                };
                if self.cut.contains(&pair(a, b)) || !self.held.insert(pair(a, b)) {
                    return false;
                }
                self.window(at, lasting, vec![Fault::Hold(a, b)], vec![Fault::Release(a, b)]);
            }
            FaultKind::JmSlow => {
                let latency = rng.millis(200..=1_500);
                self.latency(at, rng.millis(500..=6_000), latency);
            }
            FaultKind::JmStall => {
                let latency = rng.millis(5_500..=8_000);
                self.latency(at, rng.millis(6_000..=14_000), latency);
                self.liveness_bound = self.liveness_bound.max(LIVENESS_BOUND + latency);
            }
            FaultKind::OneWayPartition => {
                // A TaskManager's messages to the JobManager, the JobManager's to it, or its data
                // to the other TaskManager, a third of the seeds each.
                let other = if victim == tm1 { tm2 } else { tm1 };
                let drawn = match rng.below(3) {
                    0 => (victim, JOB_MANAGER),
                    1 => (JOB_MANAGER, victim),
                    _ => (victim, other),
                };
                let (from, to) = self.one_way.unwrap_or(drawn);
                if self.held.contains(&pair(from, to)) {
                    return false;
                }
                self.cut.insert(pair(from, to));
                let lasting = rng.millis(500..=10_000);
                self.window(
                    at,
                    lasting,
                    vec![Fault::PartitionOneway(from, to)],
                    vec![Fault::RepairOneway(from, to)],
                );
            }
            FaultKind::Jitter => {
                let max = rng.millis(300..=1_500);
                let links: Vec<(&'static str, &'static str)> = match rng.below(3) {
                    0 => vec![(tm1, tm2)],
                    1 => JOB_MANAGER_PEERS.iter().map(|&b| (JOB_MANAGER, b)).collect(),
                    _ => std::iter::once((tm1, tm2))
                        .chain(JOB_MANAGER_PEERS.iter().map(|&b| (JOB_MANAGER, b)))
                        .collect(),
                };
                let opened = links.iter().map(|&(a, b)| Fault::Jitter { a, b, max }).collect();
                let closed = links.iter().map(|&(a, b)| Fault::NormalLatency(a, b)).collect();
                self.window(at, rng.millis(500..=6_000), opened, closed);
                self.duration_limit += 4 * max;
            }
            FaultKind::SlowStore => {
                let max = rng.millis(20..=800);
                self.store_delay = Some(DelayRange { min: Duration::from_millis(20).min(max), max });
                self.duration_limit += Duration::from_secs(10);
            }
            FaultKind::SlowAck => {
                let max = rng.millis(50..=1_000);
                self.ack_delay = Some(DelayRange { min: Duration::from_millis(50).min(max), max });
                self.duration_limit += Duration::from_secs(10);
            }
        }
        true
    }

    fn scenario(self, kind: Kind, slots: [u16; 2], expect: Expect, job_file: String) -> Scenario {
        Scenario {
            name: kind.name().to_owned(),
            replay: Replay::Catalog(kind),
            job_file,
            parallelism: None,
            slots,
            faults: self.faults,
            store_delay: self.store_delay,
            ack_delay: self.ack_delay,
            enabled: Vec::new(),
            expect,
            liveness_bound: self.liveness_bound,
            duration_limit: self.duration_limit,
        }
    }
}

/// One fault of `kind`: a scenario of its own. A cut link may get a TaskManager declared dead;
/// jitter, slow storage and late acknowledgements stay below the heartbeat timeout and must fail
/// nothing.
pub fn single(kind: FaultKind, rng: &mut SeedRng) -> Scenario {
    single_cut(kind, None, rng)
}

/// A one-way partition of the direction `from` → `to` (a scenario of its own).
pub fn one_way(kind: Kind, from: &'static str, to: &'static str, rng: &mut SeedRng) -> Scenario {
    let mut s = single_cut(FaultKind::OneWayPartition, Some((from, to)), rng);
    s.name = kind.name().to_owned();
    s.replay = Replay::Catalog(kind);
    s
}

fn single_cut(kind: FaultKind, cut: Option<(&'static str, &'static str)>, rng: &mut SeedRng) -> Scenario {
    let mut plan = Plan::new();
    plan.one_way = cut;
    assert!(plan.add(kind, rng), "one fault always fits");
    let failures = match kind {
        FaultKind::Jitter | FaultKind::SlowStore | FaultKind::SlowAck => Failures::Zero,
        _ => Failures::Any,
    };
    let catalog = match kind {
        FaultKind::OneWayPartition => Kind::OneWayPartition,
        FaultKind::Jitter => Kind::Jitter,
        FaultKind::SlowStore => Kind::SlowStore,
        FaultKind::SlowAck => Kind::SlowAck,
        _ => Kind::Mixed,
    };
    let mut s = plan.scenario(catalog, [2, 2], Expect { failures, ..Expect::CLEAN }, patient_job());
    s.enabled = vec![kind.name()];
    s
}

/// A mixed scenario: each fault kind enabled with probability one half (at least one), then two
/// to four episodes drawn from the enabled kinds that are episodes, and the enabled settings for
/// the whole run.
pub fn mixed(rng: &mut SeedRng) -> Scenario {
    let mut enabled: Vec<FaultKind> = FaultKind::ALL.into_iter().filter(|_| rng.chance(1, 2)).collect();
    if enabled.is_empty() {
        enabled.push(rng.pick(&FaultKind::ALL));
    }
    let mut plan = Plan::new();
    for &setting in enabled.iter().filter(|k| k.is_setting()) {
        plan.add(setting, rng);
    }
    let episodes: Vec<FaultKind> = enabled.iter().copied().filter(|k| !k.is_setting()).collect();
    if !episodes.is_empty() {
        for _ in 0..2 + rng.below(3) {
            let kind = rng.pick(&episodes);
            plan.add(kind, rng);
        }
    }
    let slots = rng.pick(&[[2, 2], [4, 4], [2, 4], [4, 2]]);
    let expect = Expect { failures: Failures::Any, ..Expect::CLEAN };
    let mut s = plan.scenario(Kind::Mixed, slots, expect, patient_job());
    s.enabled = enabled.iter().map(|k| k.name()).collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::STREAM_PARAMETERS;

    #[test]
    fn seeds_enable_different_subsets_and_replay() {
        let draw = |seed| mixed(&mut SeedRng::new(seed, STREAM_PARAMETERS));
        let subsets: BTreeSet<Vec<&str>> = (0..100).map(|seed| draw(seed).enabled).collect();
        assert!(subsets.len() > 50, "{} subsets", subsets.len());
        assert_eq!(draw(7).faults, draw(7).faults);
        assert_eq!(draw(7).fault_list(), draw(7).fault_list());
    }

    #[test]
    fn one_way_partitions_and_holds_never_share_a_pair() {
        for seed in 0..500 {
            let s = mixed(&mut SeedRng::new(seed, STREAM_PARAMETERS));
            let held: BTreeSet<_> = (s.faults.iter())
                .filter_map(|f| if let Fault::Hold(a, b) = f.fault { Some(pair(a, b)) } else { None })
                .collect();
            let cut = s.faults.iter().filter_map(|f| match f.fault {
                Fault::PartitionOneway(a, b) => Some(pair(a, b)),
                _ => None,
            });
            for p in cut {
                assert!(!held.contains(&p), "seed {seed}: {p:?} held and cut");
            }
        }
    }
}
