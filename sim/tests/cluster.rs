//! Simulated clusters: a bounded job completes with the single-process runner's counters, with
//! and without failures, and a seed replays exactly. Every failure prints the seed and the
//! command that replays it; `RIVULET_SIM_SEED` replaces a test's fixed seed.

use std::time::Duration;

use rivulet_core::ids::TaskManagerId;
use rivulet_sim::catalog::{
    held_data_link, held_job_manager_link, jm_slow, jm_stall, normal, tm_bounce, tm_crash, tm_partition,
    tm_partition_healed,
};
use rivulet_sim::{run_in_test, seed_or, Outcome, Scenario, Trigger};

const FILE: &str = "cluster";

/// Panics with the seed and the replay command unless `holds`.
fn check(holds: bool, seed: u64, scenario: &Scenario, outcome: &Outcome, what: &str) {
    if !holds {
        let notes: Vec<String> = outcome.notes.iter().map(|n| format!("    {n}")).collect();
        panic!(
            "simulation `{}` with seed {seed}: {what}\n  job: {:?}\n  what happened:\n{}\n  replay: {}",
            scenario.name,
            outcome.job,
            notes.join("\n"),
            scenario.replay_command(seed)
        );
    }
}

#[test]
fn a_bounded_job_completes_with_the_single_process_counters() {
    let s = normal().in_test(FILE, "a_bounded_job_completes_with_the_single_process_counters");
    let seed = seed_or(1);
    let outcome = run_in_test(seed, &s);
    check(outcome.job.attempt == 0 && outcome.job.failures == 0, seed, &s, &outcome, "no restart");
    check(outcome.trace.frames > 0 && outcome.trace.timers > 0, seed, &s, &outcome, "events traced");
}

#[test]
fn a_crashed_task_manager_is_declared_dead_and_the_job_restarts_on_the_other() {
    let test = "a_crashed_task_manager_is_declared_dead_and_the_job_restarts_on_the_other";
    // tm1 can hold the whole job; tm2 holds part of it until it crashes half a second into the run.
    let s = tm_crash(1, Duration::from_millis(500)).in_test(FILE, test);
    let seed = seed_or(2);
    let outcome = run_in_test(seed, &s);
    check(
        outcome.first_placement.contains(&TaskManagerId(2)),
        seed,
        &s,
        &outcome,
        "tm2 ran part of the job first",
    );
    // The scenario's own expectations: at least one failure, the last attempt on tm1 only.
}

/// Found by this simulation (seed 3): after tm2 is bounced, tm1 still held its data link to the
/// crashed tm2 instance; attempt 1's first data message to tm2 failed on it ("Broken pipe") and
/// was dropped with the link, and the job waited forever. Now a data link that fails or closes is
/// dropped and fails the subtasks using it, so their attempt restarts on a new link.
#[test]
fn a_crashed_and_bounced_task_manager_rejoins_and_the_job_completes() {
    let test = "a_crashed_and_bounced_task_manager_rejoins_and_the_job_completes";
    let s = tm_bounce(1, Duration::from_millis(500), Duration::from_millis(500)).in_test(FILE, test);
    let seed = seed_or(3);
    let outcome = run_in_test(seed, &s);
    check(outcome.job.failures >= 1, seed, &s, &outcome, "the crash failed an attempt");
}

#[test]
fn a_partitioned_task_manager_is_declared_dead_and_its_work_rescheduled() {
    let test = "a_partitioned_task_manager_is_declared_dead_and_its_work_rescheduled";
    let s = tm_partition(1, Duration::from_millis(500)).in_test(FILE, test);
    let seed = seed_or(4);
    let outcome = run_in_test(seed, &s);
    check(outcome.job.failures >= 1, seed, &s, &outcome, "the partition failed an attempt");
}

/// 1.2 s each way on every link of the JobManager, from before the TaskManagers register to after
/// the job ends: registration, deployment and reports are slow, but no heartbeat is missed.
#[test]
fn a_slow_job_manager_below_the_heartbeat_timeout_fails_nothing() {
    let test = "a_slow_job_manager_below_the_heartbeat_timeout_fails_nothing";
    let s = jm_slow(Duration::from_millis(1_200), Trigger::Start, Duration::ZERO, None).in_test(FILE, test);
    let seed = seed_or(6);
    let outcome = run_in_test(seed, &s);
    // The scenario expects no failure; it must also have been slow.
    let took = outcome.ended_at - outcome.submitted_at;
    check(took > Duration::from_secs(5), seed, &s, &outcome, "the slow JobManager slowed the job");
}

/// 7 s of latency on the JobManager's links for 10 s: the heartbeats stop arriving in time, both
/// TaskManagers are declared dead, and once the latency is over they re-register and the job
/// restarts and completes.
#[test]
fn a_job_manager_slower_than_the_heartbeat_timeout_loses_and_regains_its_task_managers() {
    let test = "a_job_manager_slower_than_the_heartbeat_timeout_loses_and_regains_its_task_managers";
    let s = jm_stall(Duration::from_secs(7), Duration::from_millis(500), Duration::from_secs(10))
        .in_test(FILE, test);
    let seed = seed_or(7);
    let outcome = run_in_test(seed, &s);
    check(outcome.job.attempt >= 1, seed, &s, &outcome, "the job restarted");
}

/// The data link between the TaskManagers is held for 4 s: the data waits, nothing fails.
#[test]
fn a_held_data_link_delays_the_job_but_fails_nothing() {
    let test = "a_held_data_link_delays_the_job_but_fails_nothing";
    let s = held_data_link(Duration::from_millis(500), Duration::from_secs(4)).in_test(FILE, test);
    let seed = seed_or(8);
    let outcome = run_in_test(seed, &s);
    let took = outcome.ended_at - outcome.submitted_at;
    check(took > Duration::from_secs(4), seed, &s, &outcome, "the job waited for the release");
}

/// Bug 5, fixed (docs/simulation.md): the data link is held for 8 s. The receiving TaskManager
/// hears not even a keep-alive for five seconds, gives the connection up, and the attempt
/// restarts; before the fix the job waited for ever.
#[test]
fn a_data_link_held_past_its_silence_timeout_restarts_the_attempt() {
    let test = "a_data_link_held_past_its_silence_timeout_restarts_the_attempt";
    let s = held_data_link(Duration::from_millis(500), Duration::from_secs(8)).in_test(FILE, test);
    let seed = seed_or(8);
    let outcome = run_in_test(seed, &s);
    check(outcome.job.attempt >= 1, seed, &s, &outcome, "the silent data link restarted the attempt");
}

/// Bug 5 again, as the campaign draws it: one TaskManager's data to the other is cut (seed 0 of
/// `one-way-data` waited for ever before the fix).
#[test]
fn a_data_link_cut_one_way_is_noticed_and_the_job_completes() {
    let s = rivulet_sim::Kind::OneWayData.scenario(0);
    run_in_test(seed_or(0), &s);
}

/// tm2's link to the JobManager is held for 2 s (below the heartbeat timeout: nothing fails),
/// and in another run for 8 s (above it: tm2 is declared dead, comes back when the link is
/// released, and the job restarts).
#[test]
fn a_held_job_manager_link_is_noticed_only_past_the_heartbeat_timeout() {
    let test = "a_held_job_manager_link_is_noticed_only_past_the_heartbeat_timeout";
    let seed = seed_or(9);
    let short =
        held_job_manager_link(1, Duration::from_millis(500), Duration::from_secs(2)).in_test(FILE, test);
    run_in_test(seed, &short);
    let long =
        held_job_manager_link(1, Duration::from_millis(500), Duration::from_secs(8)).in_test(FILE, test);
    let outcome = run_in_test(seed, &long);
    check(
        outcome.first_placement.contains(&TaskManagerId(2)),
        seed,
        &long,
        &outcome,
        "tm2 ran part of the job",
    );
}

/// Bug 1, fixed (docs/simulation.md): tm2 is partitioned from the JobManager for 8 s. The
/// JobManager declares it dead (and closes its connection: the close is lost in the partition) and
/// the job finishes on tm1. tm2's connection to the JobManager stalled (turmoil's TCP does not
/// retransmit a dropped segment); it used to wait on it for ever, and now gives the silent
/// JobManager up after five heartbeat intervals and registers again once the partition heals.
#[test]
fn a_task_manager_comes_back_after_a_healed_partition() {
    let test = "a_task_manager_comes_back_after_a_healed_partition";
    let s = tm_partition_healed(1, Duration::from_millis(500), Duration::from_secs(8)).in_test(FILE, test);
    run_in_test(seed_or(10), &s);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let test = "the_same_seed_gives_the_same_trace";
    let s = tm_crash(1, Duration::from_millis(500)).in_test(FILE, test);
    let seed = seed_or(5);
    let (first, second) = (run_in_test(seed, &s), run_in_test(seed, &s));
    check(first == second, seed, &s, &second, &format!("replayed differently: first {first:?}"));
    let other = run_in_test(seed + 1, &s);
    check(other.job.vertices == first.job.vertices, seed + 1, &s, &other, "another seed, the same counters");
    check(other.trace.digest != first.trace.digest, seed + 1, &s, &other, "another seed, another trace");
}

/// Bug 4, fixed (docs/simulation.md), found by the one-way partitions: the JobManager's
/// messages to tm1 are cut 1.6 s into the run (tm1's own messages still arrive). Every subtask
/// reports finished, so the job finishes — but the JobManager's word that tm1's file sink may
/// publish its pre-committed output never reaches tm1. It used to be lost with six windows of
/// tm1's output; now tm1 keeps the staged output when it gives the silent JobManager up, and the
/// JobManager repeats the job's outcome when tm1 registers again.
#[test]
fn a_finished_jobs_output_is_committed_on_a_task_manager_that_missed_the_job_managers_messages() {
    let s = rivulet_sim::Kind::OneWayJmToTm.scenario(132);
    run_in_test(seed_or(132), &s);
}

/// The JobManager's messages to tm1 are cut for 9.8 s, from just before the job finishes: tm1
/// publishes its output only after it gave the silent JobManager up and registered again once
/// the cut was repaired, long after the TaskManagers looked settled to the client (seed 237 of
/// `one-way-jm-to-tm` failed while the client waited only 10 s from then).
#[test]
fn output_held_through_a_long_one_way_cut_is_published_after_the_repair() {
    let s = rivulet_sim::Kind::OneWayJmToTm.scenario(237);
    run_in_test(seed_or(237), &s);
}

/// Bug 4 again, without a partition (mixed, seed 520 of the 2,000-seed sweep): the JobManager
/// stalls (7.3 s of latency) just as the job finishes at 4.0 s; both TaskManagers give the silent
/// JobManager up at 5.2 s and cancel what they hold — the finished job's staged output with it,
/// since the JobManager's word to publish it is still in flight. Nothing is committed.
#[test]
fn a_finished_jobs_output_survives_a_job_manager_stall_at_the_end() {
    let s = rivulet_sim::Kind::Mixed.scenario(520);
    run_in_test(seed_or(520), &s);
}

/// Bug 7: the JobManager's messages to tm1 are cut from just before the job finishes (as seed 132
/// of `one-way-jm-to-tm`), and the JobManager crashes 0.6 s after the job ended and starts again
/// on its store. The new JobManager knew nothing of the ended job: tm1, registering with it once
/// the cut was repaired, never heard the outcome, and its staged output was never published (and
/// new jobs would have been handed the ended job's id). Now the end is recorded in the store
/// before the TaskManagers hear it, and the successor repeats it to tm1 and shows the job ended.
#[test]
fn a_finished_jobs_output_is_published_after_the_job_manager_restarts_past_its_end() {
    use rivulet_sim::{Fault, ScheduledFault, JOB_MANAGER};
    let test = "a_finished_jobs_output_is_published_after_the_job_manager_restarts_past_its_end";
    let mut s = rivulet_sim::Kind::OneWayJmToTm.scenario(132);
    s.faults.push(ScheduledFault::running(Duration::from_millis(3_000), Fault::Crash(JOB_MANAGER)));
    s.faults.push(ScheduledFault::running(Duration::from_millis(3_500), Fault::Bounce(JOB_MANAGER)));
    s.faults.sort_by_key(|f| f.after);
    let s = s.in_test(FILE, test);
    let seed = seed_or(132);
    let outcome = run_in_test(seed, &s);
    let restarted = outcome.notes.iter().any(|n| n.text.contains("lost the JobManager"));
    check(restarted, seed, &s, &outcome, "the client saw the JobManager go after the job ended");
}
