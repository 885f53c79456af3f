//! The seed sweep, through the code the `rivulet-sim` binary runs: a small sweep passes and
//! replays seed for seed, in this process and in child processes alike; a seed that panics or
//! aborts is one failure in the report, not the end of the sweep; and the harness's checks can
//! fail.

use std::path::PathBuf;
use std::time::Duration;

use rivulet_sim::catalog::{tm_crash, Kind};
use rivulet_sim::sweep::{run_seed, sweep, RunSummary, Runner, SweepConfig, SweepReport};
use rivulet_sim::{seed_or, simulate, Failures};

/// Seeds in the small sweep: enough to draw most scenarios, cheap enough for `cargo test`.
const SEEDS: u64 = 20;

fn run(seeds: std::ops::Range<u64>, scenario: Option<Kind>, runner: Runner) -> SweepReport {
    let config = SweepConfig { seeds, scenario, threads: 2, runner };
    sweep(&config, |_| {})
}

fn digests(report: &SweepReport) -> Vec<(u64, Result<RunSummary, String>)> {
    report.reports.iter().map(|r| (r.seed, r.result.clone())).collect()
}

#[test]
fn a_small_sweep_passes_and_replays_seed_for_seed() {
    let start = seed_or(0);
    let first = run(start..start + SEEDS, None, Runner::InProcess(run_seed));
    assert!(first.failures().next().is_none(), "{}", first.summary());
    assert_eq!(first.reports.len() as u64, SEEDS);
    let second = run(start..start + SEEDS, None, Runner::InProcess(run_seed));
    assert_eq!(
        digests(&first),
        digests(&second),
        "a seed replayed differently on another thread; compare two replays of it, e.g. `cargo run -p \
         rivulet-sim --release -- replay --seed S`"
    );
}

/// The binary's child-process path (the one a release build takes): the same results as in
/// process, seed for seed.
#[test]
fn child_processes_give_the_in_process_results() {
    let program = PathBuf::from(env!("CARGO_BIN_EXE_rivulet-sim"));
    let runner = Runner::Subprocess { program, leading_args: Vec::new() };
    let seeds = 100..104;
    let children = run(seeds.clone(), Some(Kind::TmBounce), runner);
    let here = run(seeds, Some(Kind::TmBounce), Runner::InProcess(run_seed));
    assert!(children.failures().next().is_none(), "{}", children.summary());
    assert_eq!(
        digests(&children),
        digests(&here),
        "a seed ran differently in a child process; replay it with `cargo run -p rivulet-sim --release -- \
         replay --seed S --scenario tm-bounce`"
    );
}

/// Seed 3 panics inside turmoil in the middle of a simulation (a fault on a host that does not
/// exist), unwinding through the live simulation; the seeds after it on the same thread must
/// still run. (A panic inside a simulated host does not unwind: turmoil returns it as the
/// step's error, which the harness reports as a failure.)
fn panics_on_seed_3(seed: u64, kind: Kind) -> Result<RunSummary, String> {
    if seed == 3 {
        let mut sim = turmoil::Builder::new().rng_seed(seed).build();
        sim.client("client", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        });
        sim.step().map_err(|e| e.to_string())?;
        sim.partition("client", "no-such-host");
    }
    run_seed(seed, kind)
}

#[test]
fn a_panicking_seed_is_one_failure_with_its_replay_command() {
    let report = sweep(
        &SweepConfig {
            seeds: 0..8,
            scenario: Some(Kind::Normal),
            threads: 1,
            runner: Runner::InProcess(panics_on_seed_3),
        },
        |_| {},
    );
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1, "{}", report.summary());
    assert_eq!(failures[0].seed, 3);
    let summary = report.summary();
    assert!(summary.contains("panicked: "), "{summary}");
    assert!(
        summary.contains("cargo run -p rivulet-sim --release -- replay --seed 3 --scenario normal"),
        "{summary}"
    );
}

#[test]
fn an_aborting_child_is_one_failure() {
    // A child that aborts as a panicking release build does.
    let runner = Runner::Subprocess {
        program: PathBuf::from("sh"),
        leading_args: vec![
            "-c".to_owned(),
            "echo 'about to abort' >&2; kill -ABRT $$".to_owned(),
            "sh".to_owned(),
        ],
    };
    let report = run(0..2, Some(Kind::Normal), runner);
    assert_eq!(report.failures().count(), 2, "{}", report.summary());
    let summary = report.summary();
    assert!(summary.contains("the child crashed") && summary.contains("about to abort"), "{summary}");
}

/// Planted wrong expectations: each check of the harness fails, naming the seed and the replay.
#[test]
fn the_harness_checks_can_fail() {
    let seed = 2;
    let mut no_failures = tm_crash(1, Duration::from_millis(500));
    no_failures.expect.failures = Failures::Zero;
    let mut three_task_managers = tm_crash(1, Duration::from_millis(500));
    three_task_managers.expect.task_managers_at_end = 3;
    let mut too_short = tm_crash(1, Duration::from_millis(500));
    too_short.duration_limit = Duration::from_secs(2);
    let cases = [
        (no_failures, "expected Zero"),
        (three_task_managers, "3 TaskManagers should be registered"),
        (too_short, "Ran for duration"),
    ];
    for (scenario, message) in cases {
        let failure = match simulate(seed, &scenario) {
            Ok(outcome) => panic!("{} passed with seed {seed}: {outcome:?}", scenario.name),
            Err(failure) => failure,
        };
        let text = failure.to_string();
        assert!(text.contains(message), "{text:?} does not say {message:?}");
        assert!(text.contains("with seed 2") && text.contains("replay: "), "{text}");
    }
}
