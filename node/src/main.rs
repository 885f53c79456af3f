//! The `rivulet` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use rivulet_core::graph::{JobGraph, SourceConnector, VertexKind};
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::limits::{JOB_FILE_BYTES_MAX, PARALLELISM_MAX};
use rivulet_node::connectors::{list_input_files, NodeConnectors};
use rivulet_node::progress::{summary, Progress, ProgressMode};
use rivulet_node::runner::{run_job, RunOptions};

#[derive(Parser)]
#[command(name = "rivulet", version, about = "A lightweight stream and batch processing cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job file on an embedded mini-cluster in this process.
    Run {
        /// The job file (TOML).
        job: PathBuf,
        /// Default parallelism of the job's operators (overrides the file's [job] parallelism).
        #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=i64::from(PARALLELISM_MAX)))]
        parallelism: Option<u16>,
        /// Worker threads (default: the machine's cores).
        #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
        /// How to show progress: a live line, log lines, or nothing (default: a live line on a terminal).
        #[arg(long, value_enum)]
        progress: Option<ProgressArg>,
    },
    /// Check a job file and print its plan.
    Validate {
        job: PathBuf,
        #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=i64::from(PARALLELISM_MAX)))]
        parallelism: Option<u16>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ProgressArg {
    Line,
    Log,
    Off,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { job, parallelism } => match load(&job, parallelism) {
            Ok(graph) => {
                print!("{graph}");
                print!("{}", rivulet_node::runner::describe_plan(&graph));
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
        Command::Run { job, parallelism, workers, progress } => {
            let graph = match load(&job, parallelism) {
                Ok(graph) => graph,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(2);
                }
            };
            let mode = match progress {
                None => ProgressMode::auto(),
                Some(ProgressArg::Line) => ProgressMode::Line,
                Some(ProgressArg::Log) => ProgressMode::Log,
                Some(ProgressArg::Off) => ProgressMode::Off,
            };
            let workers = workers
                .map(usize::from)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            run(&graph, workers, mode)
        }
    }
}

fn load(path: &Path, parallelism: Option<u16>) -> Result<JobGraph, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read job file {shown}: {e}"))?;
    if metadata.len() > JOB_FILE_BYTES_MAX as u64 {
        return Err(format!(
            "{shown}: the job file has {} bytes; at most {JOB_FILE_BYTES_MAX} are accepted",
            metadata.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read job file {shown}: {e}"))?;
    let graph = parse_job(&text, &ParseOptions { parallelism }).map_err(|e| format!("{shown}: {e}"))?;
    // Input files are the one thing a job file names that must exist before the job starts.
    for v in graph.vertices() {
        if let VertexKind::Source { connector: SourceConnector::File(config), .. } = &v.kind {
            let files = list_input_files(Path::new(&config.path))
                .map_err(|e| format!("{shown}: source `{}`: {e}", v.name))?;
            if files.is_empty() {
                return Err(format!("{shown}: source `{}`: no input files in {}", v.name, config.path));
            }
        }
    }
    Ok(graph)
}

fn run(graph: &JobGraph, workers: usize, mode: ProgressMode) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    let presses = Arc::new(AtomicU32::new(0));
    {
        let (stop, presses) = (stop.clone(), presses.clone());
        // First Ctrl-C: stop the sources and let the job drain; second: quit at once.
        let _ = ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::Relaxed) > 0 {
                std::process::exit(130);
            }
            eprintln!("\nstopping: sources end, windows fire, sinks commit (Ctrl-C again to quit at once)");
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut progress = Progress::new(graph, mode);
    let result =
        run_job(graph, &NodeConnectors::default(), &RunOptions { workers }, stop, mode.tick(), |h| {
            progress.tick(h)
        });
    progress.finish();
    match result {
        Ok(result) => {
            eprint!("{}", summary(graph, &result));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: job `{}` failed: {e:#}", graph.name);
            ExitCode::FAILURE
        }
    }
}
