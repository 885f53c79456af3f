//! `rivulet-sim`: seed sweeps and replays of the cluster simulation.
//!
//! ```text
//! cargo run -p rivulet-sim --release -- sweep --seeds 0..1000 [--scenario NAME] [--threads N]
//! cargo run -p rivulet-sim --release -- replay --seed S [--scenario NAME]
//! cargo run -p rivulet-sim --release -- list
//! ```
//!
//! `sweep` prints a summary and, for every failed seed, its scenario, its error and the `replay`
//! command; it exits with status 1 if any seed failed. `replay` runs one seed with the nodes' logs
//! (stamped with simulated time) and the run's notes. `run-seed` is what the sweep runs in a
//! child process per seed when panics abort (the release profile).

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use rivulet_sim::sweep::{self, Runner, SweepConfig};
use rivulet_sim::{logging, simulate, Kind};

#[derive(Parser, Debug)]
#[command(
    name = "rivulet-sim",
    about = "Deterministic simulation of a Rivulet cluster: seed sweeps and replays"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs many seeds on every core and reports each failure with its replay command.
    Sweep {
        /// Seeds: `A..B`, `A..=B` or one seed.
        #[arg(long, default_value = "0..200", value_parser = sweep::parse_seeds)]
        seeds: std::ops::Range<u64>,
        /// Run only this scenario (`list` names them); by default each seed picks one.
        #[arg(long, value_parser = parse_kind)]
        scenario: Option<Kind>,
        /// Threads (by default, one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Runs one seed with a readable trace: the nodes' logs and the run's notes.
    Replay {
        #[arg(long)]
        seed: u64,
        /// The scenario (by default the one the sweep picks for this seed).
        #[arg(long, value_parser = parse_kind)]
        scenario: Option<Kind>,
    },
    /// Lists the scenarios.
    List,
    /// Runs one seed quietly and prints one result line (the sweep's child process).
    #[command(hide = true)]
    RunSeed {
        #[arg(long)]
        seed: u64,
        #[arg(long, value_parser = parse_kind)]
        scenario: Kind,
    },
}

fn parse_kind(name: &str) -> Result<Kind, String> {
    Kind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("no scenario {name:?}; the scenarios are {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Sweep { seeds, scenario, threads } => {
            let threads =
                threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let program = match std::env::current_exe() {
                Ok(program) => program,
                Err(error) => {
                    eprintln!("cannot find this program to run seeds in child processes: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let config = SweepConfig { seeds, scenario, threads, runner: Runner::for_this_build(program) };
            let report = sweep::sweep(&config, |report| {
                if report.result.is_err() {
                    eprint!("{}", sweep::describe_failure(report));
                }
            });
            print!("{}", report.summary());
            if report.failures().next().is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Replay { seed, scenario } => {
            // turmoil's `node` span (in `turmoil::sim`) names the host of every line; its events stay quiet.
            logging::init_for_replay("info,turmoil=warn,turmoil::sim=info");
            let kind = scenario.unwrap_or_else(|| Kind::for_seed(seed));
            let scenario = kind.scenario(seed);
            println!("replaying seed {seed}: {scenario}");
            let began = Instant::now();
            let result = simulate(seed, &scenario);
            let wall = began.elapsed();
            match result {
                Ok(outcome) => {
                    println!("what happened:");
                    for note in &outcome.notes {
                        println!("  {note}");
                    }
                    let took = outcome.ended_at.saturating_sub(outcome.submitted_at);
                    println!(
                        "passed: the job finished after {} failures, {took:?} after its submission",
                        outcome.job.failures
                    );
                    println!(
                        "{:.1} s simulated in {:.0} ms; trace {:?}",
                        outcome.elapsed.as_secs_f64(),
                        wall.as_secs_f64() * 1e3,
                        outcome.trace
                    );
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    println!("what happened:");
                    for note in &failure.notes {
                        println!("  {note}");
                    }
                    println!("{failure}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::List => {
            for kind in Kind::ALL {
                println!("{:<20} {}", kind.name(), kind.describe());
            }
            ExitCode::SUCCESS
        }
        Command::RunSeed { seed, scenario } => match sweep::run_seed(seed, scenario) {
            Ok(summary) => {
                println!("{}", sweep::format_child_result(&summary));
                ExitCode::SUCCESS
            }
            Err(message) => {
                println!("{message}");
                ExitCode::FAILURE
            }
        },
    }
}
