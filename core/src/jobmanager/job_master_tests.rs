//! Tests of the JobMaster, driven by hand: one rule each, then a property test over random
//! sequences of inputs that checks the invariants after every step and replays for determinism.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::*;
use crate::graph::RestartStrategy;
use crate::ids::{SlotIndex, TaskManagerId};
use crate::jobfile::{parse_job, ParseOptions};

const JOB: JobId = JobId(7);

/// A generator `g` and a count sink `out`, both at parallelism 2, rebalanced so they form two
/// chains: subtasks 0 and 1 run `g`, 2 and 3 run `out`.
fn job_text(restart: &str) -> String {
    format!(
        "[job]\nname = \"t\"\nparallelism = 2\n\n{restart}\n\n\
         [[source]]\nname = \"g\"\ntype = \"generator\"\ncount = 10\n\n\
         [[sink]]\nname = \"out\"\ntype = \"count\"\ninput = \"g\"\npartitioning = \"rebalance\"\n"
    )
}

const FIXED: &str = "[job.restart]\nstrategy = \"fixed-delay\"\nattempts = 2\ndelay = \"500ms\"";
const NONE: &str = "[job.restart]\nstrategy = \"none\"";
const SUBTASKS: u32 = 4;

fn job_master(restart: &str) -> JobMaster {
    let text = job_text(restart);
    let graph = parse_job(&text, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let jm = JobMaster::new(JOB, graph, at_ms(0));
    jm.assert_invariants();
    jm
}

fn at_ms(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn slot(tm: u64, index: u16) -> SlotId {
    SlotId { task_manager: TaskManagerId(tm), slot: SlotIndex(index) }
}

/// The slots attempt `a` is granted: subtask i on TaskManager `10a + i % 2`.
fn slots_for(a: u32) -> Vec<SlotId> {
    (0..SUBTASKS).map(|i| slot(u64::from(10 * a + i % 2), (i / 2) as u16)).collect()
}

fn drain(jm: &mut JobMaster) -> Vec<Output> {
    let outputs = std::iter::from_fn(|| jm.poll_output()).collect();
    jm.assert_invariants();
    outputs
}

fn request(a: u32) -> Output {
    Output::RequestSlots { attempt: AttemptId(a), count: SUBTASKS as u16, placement: Placement::new() }
}

fn states(jm: &JobMaster) -> Vec<ExecutionState> {
    jm.status().subtasks.iter().map(|s| s.state).collect()
}

fn report(jm: &mut JobMaster, ms: u64, a: u32, subtask: u32, state: ExecutionState) {
    jm.handle_task_state(at_ms(ms), AttemptId(a), SubtaskId(subtask), state, None);
}

/// Grants attempt `a` its slots and reports every subtask running; checks the deployments.
fn deploy_and_run(jm: &mut JobMaster, ms: u64, a: u32) {
    jm.handle_slots_granted(at_ms(ms), AttemptId(a), slots_for(a));
    let deploys: Vec<_> = (0..SUBTASKS)
        .map(|i| Output::Deploy {
            attempt: AttemptId(a),
            subtask: SubtaskId(i),
            slot: slots_for(a)[i as usize],
            restore_from: None,
        })
        .collect();
    assert_eq!(drain(jm), deploys);
    assert_eq!(jm.state(), JobState::Running);
    for i in 0..SUBTASKS {
        report(jm, ms, a, i, Running);
    }
    assert_eq!(drain(jm), vec![]);
    assert_eq!(states(jm), vec![Running; SUBTASKS as usize]);
}

#[test]
fn the_happy_path_requests_deploys_and_finishes() {
    let mut jm = job_master("");
    assert_eq!(drain(&mut jm), vec![request(0)]);
    let status = jm.status();
    assert_eq!((status.job, status.name.as_str(), status.state), (JOB, "t", JobState::Created));
    let names: Vec<_> = status.subtasks.iter().map(|s| (s.name.as_str(), s.index, s.parallelism)).collect();
    assert_eq!(names, vec![("g", 0, 2), ("g", 1, 2), ("out", 0, 2), ("out", 1, 2)]);
    assert!(status.subtasks.iter().all(|s| s.state == Created && s.slot.is_none()));
    assert_eq!(jm.poll_timeout(), None);

    deploy_and_run(&mut jm, 10, 0);
    let slots: Vec<_> = jm.status().subtasks.iter().map(|s| s.slot).collect();
    assert_eq!(slots, slots_for(0).into_iter().map(Some).collect::<Vec<_>>());
    for i in 0..SUBTASKS - 1 {
        report(&mut jm, 20, 0, i, Finished);
        assert_eq!(drain(&mut jm), vec![]);
    }
    report(&mut jm, 30, 0, SUBTASKS - 1, Finished);
    assert_eq!(drain(&mut jm), vec![Output::ReleaseSlots { attempt: AttemptId(0) }, Output::JobFinished]);
    let status = jm.status();
    assert_eq!((status.state, status.ended_at, status.failures), (JobState::Finished, Some(at_ms(30)), 0));
    assert_eq!(jm.counters().reports_applied, 2 * u64::from(SUBTASKS));
}

#[test]
fn a_failure_with_fixed_delay_restarts_at_the_exact_instant_with_a_new_attempt() {
    let mut jm = job_master(FIXED);
    drain(&mut jm);
    deploy_and_run(&mut jm, 10, 0);
    report(&mut jm, 20, 0, 2, Finished);
    jm.handle_task_state(at_ms(1000), AttemptId(0), SubtaskId(1), Failed, Some("division by zero".into()));
    assert_eq!(drain(&mut jm), vec![Output::CancelAttempt { attempt: AttemptId(0) }]);
    assert_eq!(states(&jm), vec![Canceling, Failed, Finished, Canceling]);
    assert_eq!(jm.poll_timeout(), Some(at_ms(1500)));
    let status = jm.status();
    assert_eq!(
        (status.state, status.failures, status.restart_at),
        (JobState::Restarting, 1, Some(at_ms(1500)))
    );
    assert_eq!(status.last_failure_cause.as_deref(), Some("g (2/2) failed: division by zero"));
    assert_eq!(status.recent_failures[0].subtask, SubtaskId(1));

    // Consequences of the first failure do not fail the attempt again.
    jm.handle_task_state(at_ms(1100), AttemptId(0), SubtaskId(0), Failed, Some("input closed".into()));
    report(&mut jm, 1100, 0, 3, Canceled);
    assert_eq!(drain(&mut jm), vec![]);
    assert_eq!(jm.status().failures, 1);

    jm.handle_timeout(at_ms(1499));
    assert_eq!(drain(&mut jm), vec![]);
    jm.handle_timeout(at_ms(1500));
    assert_eq!(drain(&mut jm), vec![Output::ReleaseSlots { attempt: AttemptId(0) }, request(1)]);
    let status = jm.status();
    assert_eq!((status.state, status.attempt), (JobState::Restarting, AttemptId(1)));
    assert_eq!((status.attempt_started_at, status.restart_at), (at_ms(1500), None));
    assert!(status.subtasks.iter().all(|s| s.state == Created && s.slot.is_none()));
    assert_eq!(jm.poll_timeout(), None);

    deploy_and_run(&mut jm, 1600, 1);
    assert_eq!(jm.counters().restarts, 1);
}

/// A job tolerating one checkpoint failure in a row: its first timed-out checkpoint is aborted
/// and the job runs on; the second fails the attempt, naming the subtasks it waited for, and the
/// job restarts as its restart strategy says.
#[test]
fn more_failed_checkpoints_in_a_row_than_tolerated_fail_the_attempt_and_the_job_restarts() {
    let checkpoints = "[job.checkpoints]\ninterval = \"1s\"\ntimeout = \"2s\"\ntolerable_failures = 1";
    let mut jm = job_master(&format!("{FIXED}\n\n{checkpoints}"));
    drain(&mut jm);
    deploy_and_run(&mut jm, 0, 0);
    let trigger = |checkpoint| Output::TriggerCheckpoint {
        attempt: AttemptId(0),
        checkpoint: CheckpointId(checkpoint),
    };
    jm.handle_timeout(at_ms(1_000));
    assert_eq!(drain(&mut jm), vec![trigger(1)]);
    jm.handle_timeout(at_ms(3_000));
    let reason = "checkpoint 1 aborted: it timed out after 2s waiting for 4 of 4 subtasks".to_owned();
    assert_eq!(drain(&mut jm), vec![Output::CheckpointAborted { checkpoint: CheckpointId(1), reason }]);
    assert_eq!(jm.state(), JobState::Running, "one failure: tolerated");

    jm.handle_timeout(at_ms(4_000));
    assert_eq!(drain(&mut jm), vec![trigger(2)]);
    for subtask in [0, 1, 3] {
        for chunk in SnapshotChunk::split(JOB, AttemptId(0), subtask, CheckpointId(2), &[1, 2, 3]) {
            jm.handle_checkpoint_chunk(at_ms(4_100), &chunk);
        }
    }
    jm.handle_timeout(at_ms(6_000));
    let reason = "checkpoint 2 aborted: it timed out after 2s waiting for 1 of 4 subtasks".to_owned();
    let outputs = drain(&mut jm);
    assert_eq!(
        outputs,
        vec![
            Output::CheckpointAborted { checkpoint: CheckpointId(2), reason: reason.clone() },
            Output::CancelAttempt { attempt: AttemptId(0) },
        ]
    );
    let status = jm.status();
    assert_eq!((status.state, status.failures), (JobState::Restarting, 1));
    let cause = format!("{reason} (2 checkpoint failures in a row, 1 tolerated); subtasks: out (1/2)");
    assert_eq!(status.last_failure_cause, Some(cause));
    assert_eq!(status.recent_failures[0].subtask, SubtaskId(2));
}

#[test]
fn exponential_backoff_delays_grow_across_repeated_failures_then_the_job_fails() {
    let restart = "[job.restart]\nstrategy = \"exponential-backoff\"\nattempts = 4\ninitial = \"100ms\"\n\
                   max = \"350ms\"\nmultiplier = 2";
    let mut jm = job_master(restart);
    drain(&mut jm);
    let mut now = 0;
    let mut delays = Vec::new();
    for a in 0..4 {
        deploy_and_run(&mut jm, now, a);
        now += 1000;
        report(&mut jm, now, a, 0, Failed);
        let at = jm.poll_timeout().expect("a restart is pending");
        delays.push((at - at_ms(now)).as_millis());
        jm.handle_timeout(at);
        assert_eq!(
            drain(&mut jm),
            vec![
                Output::CancelAttempt { attempt: AttemptId(a) },
                Output::ReleaseSlots { attempt: AttemptId(a) },
                request(a + 1)
            ]
        );
        now = at.as_nanos() / 1_000_000;
    }
    assert_eq!(delays, vec![100, 200, 350, 350]);
    deploy_and_run(&mut jm, now, 4);
    report(&mut jm, now + 1, 4, 3, Failed);
    let outputs = drain(&mut jm);
    assert!(matches!(outputs.last(), Some(Output::JobFailed { .. })), "{outputs:?}");
    assert_eq!(jm.status().failures, 5);
}

#[test]
fn exhausting_the_restarts_fails_the_job_at_once_with_the_cause() {
    let mut jm = job_master("[job.restart]\nstrategy = \"fixed-delay\"\nattempts = 1\ndelay = 0");
    drain(&mut jm);
    deploy_and_run(&mut jm, 0, 0);
    report(&mut jm, 5, 0, 0, Failed);
    assert_eq!(drain(&mut jm), vec![Output::CancelAttempt { attempt: AttemptId(0) }]);
    assert_eq!(jm.poll_timeout(), Some(at_ms(5)), "a zero delay restarts at the failure's instant");
    jm.handle_timeout(at_ms(5));
    drain(&mut jm);
    deploy_and_run(&mut jm, 10, 1);
    jm.handle_task_state(at_ms(20), AttemptId(1), SubtaskId(3), Failed, Some("disk full".into()));
    let cause = "out (2/2) failed: disk full".to_owned();
    assert_eq!(
        drain(&mut jm),
        vec![
            Output::CancelAttempt { attempt: AttemptId(1) },
            Output::ReleaseSlots { attempt: AttemptId(1) },
            Output::JobFailed { cause: cause.clone() },
        ]
    );
    let status = jm.status();
    assert_eq!((status.state, status.failures, status.ended_at), (JobState::Failed, 2, Some(at_ms(20))));
    assert_eq!(status.last_failure_cause, Some(cause));
    assert_eq!(jm.poll_timeout(), None);
    // The TaskManagers' confirmations still show, but change nothing.
    report(&mut jm, 30, 1, 0, Canceled);
    jm.handle_cancel(at_ms(30));
    assert_eq!(drain(&mut jm), vec![]);
    assert_eq!((jm.state(), jm.status().subtasks[0].state), (JobState::Failed, Canceled));
    assert_eq!(jm.counters().cancels_ignored, 1);
}

#[test]
fn without_a_restart_strategy_the_first_failure_fails_the_job() {
    let mut jm = job_master(NONE);
    drain(&mut jm);
    deploy_and_run(&mut jm, 0, 0);
    report(&mut jm, 5, 0, 2, Failed);
    let outputs = drain(&mut jm);
    let cause = "out (1/2) failed: no cause reported".to_owned();
    assert_eq!(outputs.last(), Some(&Output::JobFailed { cause }));
    assert_eq!(jm.state(), JobState::Failed);
}

#[test]
fn lost_slots_fail_their_subtasks_and_the_job_restarts() {
    let mut jm = job_master(FIXED);
    drain(&mut jm);
    deploy_and_run(&mut jm, 0, 0);
    report(&mut jm, 5, 0, 2, Finished);
    // TaskManager 0 held subtasks 0 and 2 (finished: nothing to lose); a stranger's slot is counted.
    jm.handle_slots_lost(at_ms(100), AttemptId(0), vec![slot(0, 0), slot(0, 1), slot(99, 0)]);
    assert_eq!(drain(&mut jm), vec![Output::CancelAttempt { attempt: AttemptId(0) }]);
    assert_eq!(states(&jm), vec![Failed, Canceling, Finished, Canceling]);
    let status = jm.status();
    assert_eq!(
        status.last_failure_cause.as_deref(),
        Some("g (1/2) failed: TaskManager of slot tm-0/slot-0 lost")
    );
    assert_eq!((status.failures, jm.counters().slots_lost_unknown), (1, 1));
    // Losing TaskManager 1 too, while the restart waits, fails the canceling subtasks on it.
    jm.handle_slots_lost(at_ms(200), AttemptId(0), vec![slot(1, 0), slot(1, 1)]);
    assert_eq!(states(&jm), vec![Failed, Failed, Finished, Failed]);
    assert_eq!(jm.status().failures, 1);
    jm.handle_timeout(at_ms(600));
    assert_eq!(drain(&mut jm), vec![Output::ReleaseSlots { attempt: AttemptId(0) }, request(1)]);
    deploy_and_run(&mut jm, 700, 1);
}

#[test]
fn a_user_cancel_stops_every_subtask_then_cancels_the_job() {
    let mut jm = job_master(FIXED);
    drain(&mut jm);
    deploy_and_run(&mut jm, 0, 0);
    report(&mut jm, 5, 0, 0, Finished);
    jm.handle_cancel(at_ms(10));
    assert_eq!(drain(&mut jm), vec![Output::CancelAttempt { attempt: AttemptId(0) }]);
    assert_eq!(states(&jm), vec![Finished, Canceling, Canceling, Canceling]);
    assert_eq!(jm.state(), JobState::Canceling);
    report(&mut jm, 20, 0, 1, Canceled);
    // A failure while canceling is one more stopped subtask, never a restart.
    report(&mut jm, 20, 0, 2, Failed);
    assert_eq!(drain(&mut jm), vec![]);
    report(&mut jm, 30, 0, 3, Canceled);
    assert_eq!(drain(&mut jm), vec![Output::ReleaseSlots { attempt: AttemptId(0) }, Output::JobCanceled]);
    assert_eq!((jm.state(), jm.poll_timeout(), jm.status().failures), (JobState::Canceled, None, 0));
    jm.handle_cancel(at_ms(40));
    assert_eq!((drain(&mut jm), jm.counters().cancels_ignored), (vec![], 1));
}

#[test]
fn a_cancel_while_waiting_for_slots_ends_at_once_and_late_grants_go_back() {
    let mut jm = job_master("");
    drain(&mut jm);
    jm.handle_cancel(at_ms(10));
    assert_eq!(
        drain(&mut jm),
        vec![
            Output::CancelAttempt { attempt: AttemptId(0) },
            Output::ReleaseSlots { attempt: AttemptId(0) },
            Output::JobCanceled,
        ]
    );
    assert_eq!(states(&jm), vec![Canceled; SUBTASKS as usize]);
    jm.handle_slots_granted(at_ms(20), AttemptId(0), slots_for(0));
    assert_eq!(drain(&mut jm), vec![Output::ReleaseSlots { attempt: AttemptId(0) }]);
    assert_eq!(jm.counters().grants_stale, 1);
}

#[test]
fn a_cancel_during_the_restart_delay_drops_the_restart() {
    let mut jm = job_master(FIXED);
    drain(&mut jm);
    deploy_and_run(&mut jm, 0, 0);
    report(&mut jm, 10, 0, 0, Failed);
    drain(&mut jm);
    jm.handle_cancel(at_ms(20));
    assert_eq!((drain(&mut jm), jm.poll_timeout(), jm.state()), (vec![], None, JobState::Canceling));
    for i in 1..SUBTASKS {
        report(&mut jm, 30, 0, i, Canceled);
    }
    assert_eq!(drain(&mut jm), vec![Output::ReleaseSlots { attempt: AttemptId(0) }, Output::JobCanceled]);
    jm.handle_timeout(at_ms(10_000));
    assert_eq!((drain(&mut jm), jm.status().attempt), (vec![], AttemptId(0)));
}

#[test]
fn stale_attempts_are_ignored_and_counted_and_their_grants_go_back() {
    let mut jm = job_master(FIXED);
    drain(&mut jm);
    deploy_and_run(&mut jm, 0, 0);
    report(&mut jm, 10, 0, 0, Failed);
    jm.handle_timeout(at_ms(510));
    drain(&mut jm);
    assert_eq!(jm.status().attempt, AttemptId(1));
    report(&mut jm, 520, 0, 1, Canceled);
    report(&mut jm, 520, 3, 1, Running);
    jm.handle_slots_lost(at_ms(520), AttemptId(0), slots_for(0));
    jm.handle_slots_granted(at_ms(520), AttemptId(0), slots_for(0));
    assert_eq!(drain(&mut jm), vec![Output::ReleaseSlots { attempt: AttemptId(0) }]);
    let c = jm.counters();
    assert_eq!((c.reports_stale, c.losses_stale, c.grants_stale, c.reports_applied), (2, 1, 1, 5));
    assert!(states(&jm).iter().all(|&s| s == Created));
    deploy_and_run(&mut jm, 530, 1);
}

#[test]
fn illegal_transitions_and_unusable_grants_are_ignored_and_counted() {
    let mut jm = job_master(FIXED);
    drain(&mut jm);
    report(&mut jm, 1, 0, 0, Running); // not deployed yet
    report(&mut jm, 1, 0, 0, Canceled); // Created → Canceled is ours to make, not a TaskManager's
    report(&mut jm, 1, 0, 99, Running); // no such subtask
                                        // A grant of the wrong size, or with a slot twice, fits no slot group.
    jm.handle_slots_granted(at_ms(2), AttemptId(0), slots_for(0)[..3].to_vec());
    jm.handle_slots_granted(at_ms(2), AttemptId(0), vec![slot(1, 0); SUBTASKS as usize]);
    assert_eq!((drain(&mut jm), jm.state()), (vec![], JobState::Created));
    deploy_and_run(&mut jm, 3, 0);
    jm.handle_slots_granted(at_ms(4), AttemptId(0), slots_for(1)); // a duplicate grant
    report(&mut jm, 5, 0, 1, Deploying); // backwards
    report(&mut jm, 5, 0, 1, Canceling); // only the JobMaster cancels
    report(&mut jm, 5, 0, 1, Canceled); // Running → Canceled skips Canceling
    report(&mut jm, 5, 0, 2, Finished);
    report(&mut jm, 5, 0, 2, Running); // out of a final state
    report(&mut jm, 5, 0, 2, Failed);
    assert_eq!(drain(&mut jm), vec![]);
    assert_eq!(states(&jm), vec![Running, Running, Finished, Running]);
    let c = jm.counters();
    assert_eq!((c.reports_illegal, c.reports_unknown_subtask, c.grants_unused), (7, 1, 3));
}

#[test]
fn the_failure_history_is_bounded_and_causes_are_cut() {
    let mut jm = job_master("[job.restart]\nstrategy = \"fixed-delay\"\nattempts = 100\ndelay = 1");
    drain(&mut jm);
    let long = "é".repeat(FAILURE_CAUSE_BYTES_MAX);
    for a in 0..(JOB_FAILURES_KEPT_MAX as u32 + 3) {
        let now = u64::from(a) * 10;
        deploy_and_run(&mut jm, now, a);
        jm.handle_task_state(at_ms(now + 1), AttemptId(a), SubtaskId(0), Failed, Some(long.clone()));
        jm.handle_timeout(at_ms(now + 2));
        drain(&mut jm);
    }
    let status = jm.status();
    assert_eq!(status.failures, JOB_FAILURES_KEPT_MAX as u32 + 3);
    assert_eq!(status.recent_failures.len(), JOB_FAILURES_KEPT_MAX);
    assert_eq!(status.recent_failures[0].attempt, AttemptId(3));
    let cause = status.last_failure_cause.expect("failed");
    assert!(
        cause.len() <= FAILURE_CAUSE_BYTES_MAX
            && cause.starts_with("g (1/2) failed: éé")
            && cause.ends_with('…')
    );
}

// ---------------------------------------------------------------- random sequences

/// Which attempt an input names, relative to the current one.
#[derive(Clone, Copy, Debug)]
enum Which {
    Current,
    Previous,
    Next,
}

#[derive(Clone, Debug)]
enum Op {
    /// A grant of fresh slots; `short` gives one too few, `repeat` one slot twice.
    Grant {
        which: Which,
        short: bool,
        repeat: bool,
    },
    /// A report about subtask `subtask % (SUBTASKS + 1)` (the last is unknown); `state` `None` is
    /// the subtask's natural next state, otherwise any state, legal or not.
    Report {
        which: Which,
        subtask: u8,
        state: Option<u8>,
        error: bool,
    },
    /// Loses the slots of the named subtasks (an unassigned one names a stranger's slot).
    Lose {
        which: Which,
        subtasks: Vec<u8>,
    },
    Cancel,
    Advance {
        ms: u64,
    },
    /// Calls `handle_timeout` when the restart is due.
    FireTimer,
}

fn which() -> impl Strategy<Value = Which> {
    prop_oneof![8 => Just(Which::Current), 1 => Just(Which::Previous), 1 => Just(Which::Next)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (which(), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
            .prop_map(|(which, short, repeat)| Op::Grant { which, short, repeat }),
        12 => (which(), any::<u8>(), prop::option::weighted(0.2, 0u8..8), any::<bool>())
            .prop_map(|(which, subtask, state, error)| Op::Report { which, subtask, state, error }),
        1 => (which(), prop::collection::vec(any::<u8>(), 0..3))
            .prop_map(|(which, subtasks)| Op::Lose { which, subtasks }),
        1 => Just(Op::Cancel),
        2 => (0u64..400).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::FireTimer),
    ]
}

const ALL: [ExecutionState; 8] =
    [Created, Scheduled, Deploying, Running, Finished, Canceling, Canceled, Failed];

/// What each step emitted, and the job's state and attempt after it.
type Trace = Vec<(Vec<Output>, JobState, AttemptId)>;

/// Runs `ops` against a fresh JobMaster, checking the invariants and the output rules after every
/// step, and returns the trace.
fn run(restart: &str, ops: &[Op]) -> Trace {
    let mut jm = job_master(restart);
    let mut now = 0u64;
    let mut fresh_tm = 100u64;
    let mut trace: Trace = vec![(drain(&mut jm), jm.state(), AttemptId(0))];
    let mut ended = false;
    for op in ops {
        let current = jm.status().attempt;
        let attempt_of = |which: Which| match which {
            Which::Current => current,
            Which::Previous => AttemptId(current.0.saturating_sub(1)),
            Which::Next => AttemptId(current.0 + 1),
        };
        match op {
            Op::Grant { which, short, repeat } => {
                fresh_tm += 1;
                let mut slots: Vec<_> = (0..SUBTASKS as u16).map(|i| slot(fresh_tm, i)).collect();
                if *short {
                    slots.pop();
                }
                if *repeat {
                    slots[1] = slots[0];
                }
                jm.handle_slots_granted(at_ms(now), attempt_of(*which), slots);
            }
            Op::Report { which, subtask, state, error } => {
                let subtask = u32::from(*subtask) % (SUBTASKS + 1);
                let from = jm.status().subtasks.get(subtask as usize).map_or(Running, |s| s.state);
                let state = match state {
                    Some(k) => ALL[usize::from(*k)],
                    None => match from {
                        Deploying => Running,
                        Running => Finished,
                        Canceling => Canceled,
                        other => other,
                    },
                };
                let error = error.then(|| format!("error at {now}"));
                jm.handle_task_state(at_ms(now), attempt_of(*which), SubtaskId(subtask), state, error);
            }
            Op::Lose { which, subtasks } => {
                let status = jm.status();
                let slots = (subtasks.iter())
                    .map(|&i| {
                        status.subtasks[usize::from(i) % status.subtasks.len()].slot.unwrap_or(slot(1, 99))
                    })
                    .collect();
                jm.handle_slots_lost(at_ms(now), attempt_of(*which), slots);
            }
            Op::Cancel => jm.handle_cancel(at_ms(now)),
            Op::Advance { ms } => {
                now += ms;
                jm.handle_timeout(at_ms(now));
            }
            Op::FireTimer => {
                if let Some(at) = jm.poll_timeout() {
                    assert!(at >= at_ms(now));
                    now = at.as_nanos() / 1_000_000;
                    jm.handle_timeout(at);
                }
            }
        }
        let outputs = drain(&mut jm);
        let (state, attempt) = (jm.state(), jm.status().attempt);
        let (previous_state, previous_attempt) = {
            let last = trace.last().expect("the first entry is pushed before the loop");
            (last.1, last.2)
        };
        assert!(attempt == previous_attempt || attempt.0 == previous_attempt.0 + 1, "attempts go up by one");
        assert!(!previous_state.is_final() || state == previous_state, "{previous_state:?} is final");
        assert_eq!(jm.poll_timeout().is_some(), jm.status().restart_at.is_some());
        assert!(jm.poll_timeout().is_none() || state == JobState::Restarting, "a timer only for a restart");
        for output in &outputs {
            match output {
                Output::Deploy { attempt: a, .. } | Output::RequestSlots { attempt: a, .. } => {
                    assert!(!ended && *a == attempt, "{output:?} after the end or for another attempt")
                }
                Output::CancelAttempt { .. } => assert!(!ended),
                Output::ReleaseSlots { .. } => {}
                // The job of these tests takes no checkpoints.
                Output::TriggerCheckpoint { .. }
                | Output::PersistCheckpoint(_)
                | Output::CommitCheckpoint { .. }
                | Output::CheckpointAborted { .. }
                | Output::SavepointCompleted(_)
                | Output::SavepointFailed { .. } => panic!("{output:?} from a job without checkpoints"),
                Output::JobFinished | Output::JobFailed { .. } | Output::JobCanceled => {
                    assert!(!ended, "the job ends once");
                    ended = true;
                }
            }
        }
        assert_eq!(ended, state.is_final());
        trace.push((outputs, state, attempt));
    }
    trace
}

const STRATEGIES: [&str; 4] = [
    NONE,
    "[job.restart]\nstrategy = \"fixed-delay\"\nattempts = 2\ndelay = 0",
    "[job.restart]\nstrategy = \"fixed-delay\"\nattempts = 3\ndelay = \"100ms\"",
    "[job.restart]\nstrategy = \"exponential-backoff\"\nattempts = 4\ninitial = \"50ms\"\nmax = \"300ms\"",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_keep_the_invariants_and_replay_identically(
        strategy in 0usize..STRATEGIES.len(),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let restart = STRATEGIES[strategy];
        let first = run(restart, &ops);
        let second = run(restart, &ops);
        prop_assert_eq!(first, second);
    }
}

#[test]
fn the_random_inputs_reach_every_job_state() {
    // Guards the generator: a property test that never restarts or finishes proves little.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(op(), 0..80);
    let mut seen = std::collections::BTreeSet::new();
    for case in 0..300 {
        let ops = strategy.new_tree(&mut runner).expect("a tree").current();
        for (_, state, _) in run(STRATEGIES[case % STRATEGIES.len()], &ops) {
            seen.insert(state.name());
        }
    }
    let all = ["canceled", "canceling", "created", "failed", "finished", "restarting", "running"];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all);
}

#[test]
fn the_test_job_carries_the_restart_strategy_of_its_job_file() {
    let jm = job_master(FIXED);
    assert_eq!(
        jm.graph().restart,
        RestartStrategy::FixedDelay { attempts: 2, delay: Duration::from_millis(500) }
    );
}
