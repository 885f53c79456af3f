//! The catalog of scenarios: each a kind of trouble, with its fault timings drawn from the seed.
//!
//! The timings are bounded by what the cluster is meant to survive and by what can be asserted:
//! the job runs for about three seconds of simulated time once deployed, the JobManager declares
//! a TaskManager dead when it has not heard a heartbeat for five seconds (heartbeats every
//! second), and a job restarts up to three times, a second apart. A fault therefore strikes in the
//! first two seconds of the run (the job is still running) or, for some, in the first 0.6 s after
//! the submission (while it is scheduled and deployed), and a silence shorter than
//! [`SILENCE_UNNOTICED_MAX`] is below the heartbeat timeout with room for the heartbeat interval
//! and the link's latency, so nothing may fail; one longer than [`SILENCE_NOTICED_MIN`] must be
//! noticed.
//!
//! Adding a scenario: add a [`Kind`], its name in [`Kind::name`], and a constructor here that
//! turns explicit parameters into a [`Scenario`] (tests call it with fixed ones); then draw the
//! parameters from the seed in [`Kind::scenario`]. `docs/simulation.md` has the list.

use std::time::Duration;

use rivulet_core::ids::TaskManagerId;

use crate::campaign::{mixed, one_way, single, FaultKind};
use crate::rng::{SeedRng, STREAM_PARAMETERS, STREAM_SCENARIO};
use crate::scenario::{Expect, Failures, Fault, Replay, Scenario, ScheduledFault, Trigger};
use crate::{JOB_MANAGER, TASK_MANAGERS};

/// A keyed window count over a generator limited to 10,000 records per second of simulated time:
/// about 3 s of it without failures.
pub const JOB: &str = r#"
[job]
name = "sim-job"
parallelism = 2

[job.checkpoints]
interval = "300ms"

[[source]]
name = "readings"
type = "generator"
count = 30_000
keys = 5
values = 100
records_per_ms = 10
rate = 10_000
event_time = "ts_ms"
out_of_orderness = "100ms"

[[operator]]
name = "by_key"
type = "key_by"
input = "readings"
key = "key"

[[operator]]
name = "per_second"
type = "window"
input = "by_key"
window = "tumbling"
size = "1s"

[operator.aggregates]
readings = "count()"

[[sink]]
name = "out"
type = "file"
input = "per_second"
path = "out"
format = "jsonl"
"#;

/// The time a run may take besides its faults' own windows: registering, the job itself, a
/// heartbeat timeout, restarts and back-offs, with a wide margin.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(40);

/// The longest silence between a TaskManager and the JobManager that must go unnoticed: the
/// heartbeat timeout (5 s) less the heartbeat interval (1 s) and a margin for latency.
pub const SILENCE_UNNOTICED_MAX: Duration = Duration::from_millis(3_500);

/// The shortest silence that must get a TaskManager declared dead: above the heartbeat timeout.
pub const SILENCE_NOTICED_MIN: Duration = Duration::from_millis(5_500);

/// How long a job may take to finish once the last fault was injected (liveness): a TaskManager
/// declared dead meanwhile reconnects (a back-off of at most 5 s), the job restarts (a back-off
/// of 1 s) from its latest checkpoint and runs its remaining 3 s, with a wide margin. Scenarios
/// whose last fault leaves latency behind add to it.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(30);

/// The kinds of scenario the sweep draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// No faults.
    Normal,
    /// A TaskManager crashes and stays down; the job restarts on the other.
    TmCrash,
    /// A TaskManager crashes and comes back; the job restarts and completes.
    TmBounce,
    /// A TaskManager is cut off from the JobManager for good; declared dead, its work moves.
    TmPartition,
    /// A TaskManager is cut off from the JobManager for a while; it must come back.
    TmPartitionHealed,
    /// Every link of the JobManager gets latency below the heartbeat timeout, for a while or for
    /// good; nothing may fail.
    JmSlow,
    /// Every link of the JobManager gets latency above the heartbeat timeout for a while: the
    /// TaskManagers are declared dead, re-register, and the job restarts.
    JmStall,
    /// The data link between the TaskManagers is held, then released.
    HeldDataLink,
    /// A TaskManager's link to the JobManager is held, then released: below the heartbeat timeout
    /// nothing happens, above it the TaskManager is declared dead and comes back.
    HeldJmLink,
    /// Two or three of the troubles above at once, each of which ends; a patient restart strategy.
    Chaos,
    /// The JobManager crashes and starts again on its durable store: it takes the job over from
    /// its latest checkpoint.
    JmRestart,
    /// A link is cut in one direction only (a TaskManager's to or from the JobManager, or one
    /// TaskManager's data to the other), then repaired.
    OneWayPartition,
    /// The links get latency jitter of up to 0.3-1.5 s for a while: segments of different
    /// connections overtake each other.
    Jitter,
    /// Every checkpoint write of the JobManager's store takes 20-800 ms of simulated time.
    SlowStore,
    /// Every TaskManager holds each checkpoint acknowledgement back for 50-1,500 ms.
    SlowAck,
    /// The JobManager's messages to a TaskManager are cut for a while: a finished job's word to
    /// publish may not reach it until it gives the silent JobManager up and registers again.
    OneWayJmToTm,
    /// One TaskManager's data to the other is cut for a while: the receiver hears nothing, not
    /// even keep-alives, gives the connection up after five seconds, and the attempt restarts.
    OneWayData,
    /// Each seed enables a random subset of the fault kinds and schedules two to four faults of
    /// the enabled kinds, overlapping; slow storage and late acknowledgements for the whole run.
    Mixed,
}

impl Kind {
    pub const ALL: [Kind; 18] = [
        Kind::Normal,
        Kind::TmCrash,
        Kind::TmBounce,
        Kind::TmPartition,
        Kind::TmPartitionHealed,
        Kind::JmSlow,
        Kind::JmStall,
        Kind::HeldDataLink,
        Kind::HeldJmLink,
        Kind::Chaos,
        Kind::JmRestart,
        Kind::OneWayPartition,
        Kind::Jitter,
        Kind::SlowStore,
        Kind::SlowAck,
        Kind::Mixed,
        Kind::OneWayJmToTm,
        Kind::OneWayData,
    ];

    /// The kinds a sweep draws from when not told one: all but those that fail for a known bug
    /// still open (each is listed in `docs/simulation.md` with its replay command); none now.
    pub const DRAWN: [Kind; 18] = [
        Kind::Normal,
        Kind::TmCrash,
        Kind::TmBounce,
        Kind::TmPartition,
        Kind::TmPartitionHealed,
        Kind::JmSlow,
        Kind::JmStall,
        Kind::HeldDataLink,
        Kind::HeldJmLink,
        Kind::Chaos,
        Kind::JmRestart,
        Kind::OneWayPartition,
        Kind::Jitter,
        Kind::SlowStore,
        Kind::SlowAck,
        Kind::Mixed,
        Kind::OneWayData,
        Kind::OneWayJmToTm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Normal => "normal",
            Kind::TmCrash => "tm-crash",
            Kind::TmBounce => "tm-bounce",
            Kind::TmPartition => "tm-partition",
            Kind::TmPartitionHealed => "tm-partition-healed",
            Kind::JmSlow => "jm-slow",
            Kind::JmStall => "jm-stall",
            Kind::HeldDataLink => "held-data-link",
            Kind::HeldJmLink => "held-jm-link",
            Kind::Chaos => "chaos",
            Kind::JmRestart => "jm-restart",
            Kind::OneWayPartition => "one-way-partition",
            Kind::Jitter => "jitter",
            Kind::SlowStore => "slow-store",
            Kind::SlowAck => "slow-ack",
            Kind::Mixed => "mixed",
            Kind::OneWayJmToTm => "one-way-jm-to-tm",
            Kind::OneWayData => "one-way-data",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// One line on what the scenario does, for `rivulet-sim list`.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Normal => "no faults",
            Kind::TmCrash => "a TaskManager crashes and stays down; the job restarts on the other",
            Kind::TmBounce => "a TaskManager crashes and comes back; the job restarts and completes",
            Kind::TmPartition => "a TaskManager is partitioned from the JobManager for good; its work moves",
            Kind::TmPartitionHealed => {
                "a TaskManager is partitioned from the JobManager for 1-10 s; it comes back"
            }
            Kind::JmSlow => "the JobManager's links get 0.2-1.5 s of latency (below the heartbeat timeout)",
            Kind::JmStall => {
                "the JobManager's links get 5.5-8 s of latency for a while: TaskManagers re-register"
            }
            Kind::HeldDataLink => "the TaskManagers' data link is held, then released",
            Kind::HeldJmLink => "a TaskManager's link to the JobManager is held 0.5-10 s, then released",
            Kind::Chaos => "two or three of bounce, held links and JobManager latency at once, all ending",
            Kind::JmRestart => {
                "the JobManager crashes and restarts 0.1-3 s later on its store; the job resumes"
            }
            Kind::OneWayPartition => {
                "a TaskManager's messages to the JobManager are cut 0.5-10 s, then pass again"
            }
            Kind::Jitter => {
                "links get 0.3-1.5 s of latency jitter for a while: segments reorder across connections"
            }
            Kind::SlowStore => "every checkpoint write of the JobManager takes 20-800 ms",
            Kind::SlowAck => "every checkpoint acknowledgement is held back 50-1,500 ms",
            Kind::Mixed => "a random subset of the fault kinds, two to four faults of them at once",
            Kind::OneWayJmToTm => "the JobManager's messages to a TaskManager are cut 0.5-10 s",
            Kind::OneWayData => "one TaskManager's data to the other is cut 0.5-10 s",
        }
    }

    /// The kind the sweep runs for `seed` when not told one: a mixed scenario half the time,
    /// else one of the others.
    pub fn for_seed(seed: u64) -> Kind {
        let mut rng = SeedRng::new(seed, STREAM_SCENARIO);
        if rng.chance(1, 2) {
            return Kind::Mixed;
        }
        let single: Vec<Kind> = Kind::DRAWN.into_iter().filter(|&k| k != Kind::Mixed).collect();
        rng.pick(&single)
    }

    /// This kind's scenario for `seed`: its parameters drawn from the seed.
    pub fn scenario(self, seed: u64) -> Scenario {
        let mut rng = SeedRng::new(seed, STREAM_PARAMETERS);
        // Which TaskManager a fault hits.
        let victim = rng.below(TASK_MANAGERS.len() as u64) as usize;
        // Faults strike while the job runs (it runs for about 3 s), or, a quarter of the time for
        // a fault on one TaskManager, while it is scheduled and deployed.
        let early = matches!(self, Kind::TmCrash | Kind::TmBounce | Kind::TmPartition | Kind::HeldJmLink)
            && rng.chance(1, 4);
        let at = if early { rng.millis(0..=600) } else { rng.millis(0..=2_000) };
        let mut scenario = match self {
            Kind::Normal => normal(),
            Kind::TmCrash => tm_crash(victim, at),
            Kind::TmBounce => tm_bounce(victim, at, rng.millis(100..=4_000)),
            Kind::TmPartition => tm_partition(victim, at),
            Kind::TmPartitionHealed => tm_partition_healed(victim, at, rng.millis(1_000..=10_000)),
            Kind::JmSlow => {
                let latency = rng.millis(200..=1_500);
                // From the start a third of the time (registration and deployment are slow too).
                let (trigger, after) = if rng.chance(1, 3) {
                    (Trigger::Start, rng.millis(0..=3_000))
                } else {
                    (Trigger::Running, at)
                };
                // For good a quarter of the time.
                let lasting = (!rng.chance(1, 4)).then(|| rng.millis(500..=6_000));
                jm_slow(latency, trigger, after, lasting)
            }
            Kind::JmStall => {
                let latency = rng.millis(5_500..=8_000);
                jm_stall(latency, rng.millis(0..=1_500), rng.millis(6_000..=14_000))
            }
            Kind::HeldDataLink => held_data_link(at, rng.millis(100..=8_000)),
            Kind::HeldJmLink => held_job_manager_link(victim, at, rng.millis(500..=10_000)),
            Kind::Chaos => chaos(&mut rng),
            Kind::JmRestart => jm_restart(at, rng.millis(100..=3_000)),
            Kind::OneWayPartition => single(FaultKind::OneWayPartition, &mut rng),
            Kind::Jitter => single(FaultKind::Jitter, &mut rng),
            Kind::SlowStore => single(FaultKind::SlowStore, &mut rng),
            Kind::SlowAck => single(FaultKind::SlowAck, &mut rng),
            Kind::Mixed => mixed(&mut rng),
            Kind::OneWayJmToTm => one_way(self, JOB_MANAGER, TASK_MANAGERS[victim], &mut rng),
            Kind::OneWayData => one_way(self, TASK_MANAGERS[victim], TASK_MANAGERS[1 - victim], &mut rng),
        };
        if early {
            for fault in &mut scenario.faults {
                fault.trigger = Trigger::Submitted;
            }
        }
        scenario.name = self.name().to_owned();
        scenario.replay = Replay::Catalog(self);
        scenario
    }
}

/// The TaskManager id of host `TASK_MANAGERS[index]`.
pub fn task_manager_id(index: usize) -> TaskManagerId {
    TaskManagerId(index as u64 + 1)
}

/// Slots for a scenario where TaskManager `victim` may be lost for good: the other can hold the
/// whole job.
fn slots_surviving(victim: usize) -> [u16; 2] {
    let mut slots = [4, 4];
    slots[victim] = 2;
    slots
}

fn base(name: &str, slots: [u16; 2], faults: Vec<ScheduledFault>, expect: Expect) -> Scenario {
    Scenario {
        name: name.to_owned(),
        replay: Replay::Code,
        job_file: JOB.to_owned(),
        parallelism: None,
        slots,
        faults,
        store_delay: None,
        ack_delay: None,
        enabled: Vec::new(),
        expect,
        liveness_bound: LIVENESS_BOUND,
        duration_limit: SETTLE_LIMIT,
    }
}

pub fn normal() -> Scenario {
    base("normal", [2, 2], Vec::new(), Expect::CLEAN)
}

/// TaskManager `victim` crashes `at` after the job runs and stays down.
pub fn tm_crash(victim: usize, at: Duration) -> Scenario {
    let other = task_manager_id(1 - victim);
    let faults = vec![ScheduledFault::running(at, Fault::Crash(TASK_MANAGERS[victim]))];
    let expect = Expect {
        failures: Failures::AtLeastOneIfPlacedOn(task_manager_id(victim)),
        last_attempt_on: Some(other),
        task_managers_at_end: 1,
    };
    let mut s = base("tm-crash", slots_surviving(victim), faults, expect);
    s.duration_limit += at;
    s
}

/// TaskManager `victim` crashes `at` after the job runs and starts again `down_for` later.
pub fn tm_bounce(victim: usize, at: Duration, down_for: Duration) -> Scenario {
    let host = TASK_MANAGERS[victim];
    let faults = vec![
        ScheduledFault::running(at, Fault::Crash(host)),
        ScheduledFault::running(at + down_for, Fault::Bounce(host)),
    ];
    let expect =
        Expect { failures: Failures::AtLeastOneIfPlacedOn(task_manager_id(victim)), ..Expect::CLEAN };
    let mut s = base("tm-bounce", [2, 2], faults, expect);
    s.duration_limit += at + down_for;
    s
}

/// TaskManager `victim` is partitioned from the JobManager `at` after the job runs, for good.
pub fn tm_partition(victim: usize, at: Duration) -> Scenario {
    let faults = vec![ScheduledFault::running(at, Fault::Partition(TASK_MANAGERS[victim], JOB_MANAGER))];
    let expect = Expect {
        failures: Failures::AtLeastOneIfPlacedOn(task_manager_id(victim)),
        last_attempt_on: Some(task_manager_id(1 - victim)),
        task_managers_at_end: 1,
    };
    let mut s = base("tm-partition", slots_surviving(victim), faults, expect);
    s.duration_limit += at;
    s
}

/// TaskManager `victim` is partitioned from the JobManager `at` after the job runs, and the
/// partition heals `lasting` later. turmoil's TCP does not retransmit, so the connection across
/// stays stalled: the JobManager declares the TaskManager dead, and the TaskManager must notice
/// the silence by itself to reconnect.
pub fn tm_partition_healed(victim: usize, at: Duration, lasting: Duration) -> Scenario {
    let host = TASK_MANAGERS[victim];
    let faults = vec![
        ScheduledFault::running(at, Fault::Partition(host, JOB_MANAGER)),
        ScheduledFault::running(at + lasting, Fault::Repair(host, JOB_MANAGER)),
    ];
    let expect =
        Expect { failures: Failures::AtLeastOneIfPlacedOn(task_manager_id(victim)), ..Expect::CLEAN };
    let mut s = base("tm-partition-healed", slots_surviving(victim), faults, expect);
    s.duration_limit += at + lasting;
    s
}

/// The hosts the JobManager talks to.
const JOB_MANAGER_PEERS: [&str; 3] = [TASK_MANAGERS[0], TASK_MANAGERS[1], crate::CLIENT];

/// Faults that give every link of the JobManager `latency` (or the usual one back, if `None`).
fn job_manager_latency(trigger: Trigger, after: Duration, latency: Option<Duration>) -> Vec<ScheduledFault> {
    JOB_MANAGER_PEERS
        .iter()
        .map(|&peer| {
            let fault = match latency {
                Some(min) => Fault::Latency { a: JOB_MANAGER, b: peer, min },
                None => Fault::NormalLatency(JOB_MANAGER, peer),
            };
            ScheduledFault { trigger, after, fault }
        })
        .collect()
}

/// The JobManager answers `latency` late (every link of it, both ways) from `after` the
/// `trigger`, for `lasting` or for good. Below the heartbeat timeout: nothing may fail.
pub fn jm_slow(latency: Duration, trigger: Trigger, after: Duration, lasting: Option<Duration>) -> Scenario {
    assert!(
        latency + crate::LATENCY_SPREAD <= SILENCE_UNNOTICED_MAX,
        "jm_slow stays below the heartbeat timeout"
    );
    let mut faults = job_manager_latency(trigger, after, Some(latency));
    if let Some(lasting) = lasting {
        faults.extend(job_manager_latency(trigger, after + lasting, None));
    }
    let mut s = base("jm-slow", [2, 2], faults, Expect::CLEAN);
    // Every exchange with the JobManager takes up to two latencies more.
    s.duration_limit += after + lasting.unwrap_or(SETTLE_LIMIT) + 10 * latency;
    s.liveness_bound += 10 * latency;
    s
}

/// The JobManager answers `latency` late — above the heartbeat timeout — from `after` the job
/// runs, for `lasting`: the TaskManagers are declared dead and come back once it is over.
pub fn jm_stall(latency: Duration, after: Duration, lasting: Duration) -> Scenario {
    assert!(latency >= SILENCE_NOTICED_MIN, "jm_stall exceeds the heartbeat timeout");
    let trigger = Trigger::Running;
    let mut faults = job_manager_latency(trigger, after, Some(latency));
    faults.extend(job_manager_latency(trigger, after + lasting, None));
    let expect = Expect { failures: Failures::AtLeastOne, ..Expect::CLEAN };
    let mut s = base("jm-stall", [2, 2], faults, expect);
    s.duration_limit += after + lasting + 2 * latency;
    // Segments sent just before the latency ended still take it.
    s.liveness_bound += latency;
    s
}

/// The JobManager crashes `at` after the job runs and starts again `down_for` later, on the
/// store that outlives it (jobs and checkpoints recorded before the crash).
pub fn jm_restart(at: Duration, down_for: Duration) -> Scenario {
    let faults = vec![
        ScheduledFault::running(at, Fault::Crash(JOB_MANAGER)),
        ScheduledFault::running(at + down_for, Fault::Bounce(JOB_MANAGER)),
    ];
    let expect = Expect { failures: Failures::AtLeastOne, ..Expect::CLEAN };
    let mut s = base("jm-restart", [2, 2], faults, expect);
    s.duration_limit += at + down_for;
    s
}

/// The data link between the TaskManagers is held `at` after the job runs, for `lasting`. A data
/// connection silent for five seconds is given up (keep-alives every second), so the silence
/// bounds of the heartbeat apply: below them the hold goes unnoticed, above them it fails the
/// attempt (the job cannot finish while its data is held, so the silence is certain).
pub fn held_data_link(at: Duration, lasting: Duration) -> Scenario {
    let [a, b] = TASK_MANAGERS;
    let faults = vec![
        ScheduledFault::running(at, Fault::Hold(a, b)),
        ScheduledFault::running(at + lasting, Fault::Release(a, b)),
    ];
    let failures = silence_failures(lasting, Failures::AtLeastOne);
    let mut s = base("held-data-link", [2, 2], faults, Expect { failures, ..Expect::CLEAN });
    s.duration_limit += at + lasting;
    s
}

/// The failures a silence of `lasting` makes: none below the unnoticed bound, `noticed` above the
/// noticed one, no claim between.
fn silence_failures(lasting: Duration, noticed: Failures) -> Failures {
    if lasting <= SILENCE_UNNOTICED_MAX {
        Failures::Zero
    } else if lasting >= SILENCE_NOTICED_MIN {
        noticed
    } else {
        Failures::Any
    }
}

/// TaskManager `victim`'s link to the JobManager is held `at` after the job runs, for `lasting`.
pub fn held_job_manager_link(victim: usize, at: Duration, lasting: Duration) -> Scenario {
    let host = TASK_MANAGERS[victim];
    let faults = vec![
        ScheduledFault::running(at, Fault::Hold(host, JOB_MANAGER)),
        ScheduledFault::running(at + lasting, Fault::Release(host, JOB_MANAGER)),
    ];
    let failures = silence_failures(lasting, Failures::AtLeastOneIfPlacedOn(task_manager_id(victim)));
    let expect = Expect { failures, ..Expect::CLEAN };
    let mut s = base("held-jm-link", slots_surviving(victim), faults, expect);
    s.duration_limit += at + lasting;
    s
}

/// `JOB` with room for many restarts: a chaos scenario may fail it more often than the default
/// strategy (three restarts) allows, and giving up is not what it tests.
pub(crate) fn patient_job() -> String {
    let restart = "\n[job.restart]\nstrategy = \"fixed-delay\"\nattempts = 20\ndelay = \"1s\"\n";
    let job = JOB.replacen("parallelism = 2\n", &format!("parallelism = 2\n{restart}"), 1);
    assert!(job.contains(restart), "JOB's [job] table ends with its parallelism");
    job
}

/// Two or three troubles drawn from `rng`, each starting in the first two seconds of the run
/// and each ending: a TaskManager bounced, a held link to the JobManager or between the
/// TaskManagers, the JobManager slow below or above the heartbeat timeout. Whatever the
/// overlaps, the job must finish with the right counters and both TaskManagers come back.
fn chaos(rng: &mut SeedRng) -> Scenario {
    let mut faults = Vec::new();
    let mut limit = SETTLE_LIMIT;
    let mut slow_tail = Duration::ZERO;
    let episodes = 2 + rng.below(2);
    for _ in 0..episodes {
        let at = rng.millis(0..=2_000);
        let victim = TASK_MANAGERS[rng.below(2) as usize];
        let (opened, closed, lasting) = match rng.below(5) {
            0 => {
                let down = rng.millis(100..=4_000);
                (vec![Fault::Crash(victim)], vec![Fault::Bounce(victim)], down)
            }
            1 => (
                vec![Fault::Hold(victim, JOB_MANAGER)],
                vec![Fault::Release(victim, JOB_MANAGER)],
                rng.millis(500..=10_000),
            ),
            2 => {
                let [a, b] = TASK_MANAGERS;
                (vec![Fault::Hold(a, b)], vec![Fault::Release(a, b)], rng.millis(100..=8_000))
            }
            slow => {
                let (latency, lasting) = if slow == 3 {
                    (rng.millis(200..=1_500), rng.millis(500..=6_000))
                } else {
                    (rng.millis(5_500..=8_000), rng.millis(6_000..=14_000))
                };
                let opened = JOB_MANAGER_PEERS
                    .iter()
                    .map(|&b| Fault::Latency { a: JOB_MANAGER, b, min: latency })
                    .collect();
                let closed =
                    JOB_MANAGER_PEERS.iter().map(|&b| Fault::NormalLatency(JOB_MANAGER, b)).collect();
                limit += 2 * latency;
                slow_tail = slow_tail.max(latency);
                (opened, closed, lasting)
            }
        };
        faults.extend(opened.into_iter().map(|f| ScheduledFault::running(at, f)));
        faults.extend(closed.into_iter().map(|f| ScheduledFault::running(at + lasting, f)));
        limit += at + lasting;
    }
    let slots = rng.pick(&[[2, 2], [4, 4], [2, 4], [4, 2]]);
    let mut s = base("chaos", slots, faults, Expect { failures: Failures::Any, ..Expect::CLEAN });
    s.job_file = patient_job();
    s.duration_limit = limit;
    s.liveness_bound += slow_tail;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_kind_is_drawn() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        let drawn: std::collections::BTreeSet<Kind> = (0..200).map(Kind::for_seed).collect();
        assert_eq!(drawn.len(), Kind::DRAWN.len());
    }

    #[test]
    fn a_seed_gives_one_scenario() {
        for kind in Kind::ALL {
            let (a, b) = (kind.scenario(11), kind.scenario(11));
            assert_eq!(a.faults, b.faults);
            assert_eq!(a.replay, Replay::Catalog(kind));
        }
    }
}
