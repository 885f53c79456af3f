//! The `rivulet` command line.

mod cluster_cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use rivulet_core::graph::{JobGraph, SourceConnector, VertexKind};
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::limits::{JOB_FILE_BYTES_MAX, PARALLELISM_MAX};
use rivulet_node::config::{parse_checkpoint_store, CheckpointStoreKind, JobManagerArgs, TaskManagerArgs};
use rivulet_node::connectors::list_input_files;
use rivulet_node::local_cluster::{run_on_local_cluster, RunOptions};
use rivulet_node::progress::{summary, Progress, ProgressMode};
use rivulet_node::rest::REST_LISTEN_DEFAULT;

#[derive(Parser)]
#[command(name = "rivulet", version, about = "A lightweight stream and batch processing cluster")]
struct Cli {
    /// Log level or filter (`info`, `debug`, `rivulet_node=debug`); `RUST_LOG` when not given.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Where the client commands find the JobManager's REST API.
#[derive(clap::Args)]
struct ClientArgs {
    /// The JobManager's REST API (`rivulet jobmanager --rest-listen`).
    #[arg(long, env = "RIVULET_REST", value_name = "HOST:PORT", default_value = REST_LISTEN_DEFAULT)]
    rest: String,
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
        /// Record the job's completed checkpoints durably in DIR (created if missing, locked for
        /// the run; the layout of a JobManager's --data-dir) instead of in memory. They are
        /// deleted when the job ends; `run` does not resume from them.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// How --data-dir keeps checkpoints: `lmdb` (DIR/jobmanager) or `dir` (plain files in
        /// DIR/checkpoints) [default: lmdb]
        #[arg(long, value_name = "lmdb|dir", value_parser = parse_checkpoint_store, requires = "data_dir")]
        checkpoint_store: Option<CheckpointStoreKind>,
    },
    /// Check a job file and print its plan.
    Validate {
        job: PathBuf,
        #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=i64::from(PARALLELISM_MAX)))]
        parallelism: Option<u16>,
    },
    /// Run a JobManager: accepts TaskManagers and clients, schedules and supervises jobs, serves
    /// the REST API. Prints `listening on HOST:PORT` as its first line of standard output, then
    /// `rest on HOST:PORT` when it serves the REST API.
    ///
    /// Each setting comes from its flag, else its environment variable, else the --config file,
    /// else its default.
    Jobmanager(JobManagerArgs),
    /// Run a TaskManager: offers task slots to the JobManager and runs subtasks in them.
    ///
    /// Each setting comes from its flag, else its environment variable, else the --config file,
    /// else its default.
    Taskmanager(TaskManagerArgs),
    /// Submit a job file to a running JobManager; prints the job id.
    Submit {
        /// The job file (TOML).
        job: PathBuf,
        /// Default parallelism of the job's operators (overrides the file's [job] parallelism).
        #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=i64::from(PARALLELISM_MAX)))]
        parallelism: Option<u16>,
        /// Resume the job from this savepoint file (a path on the JobManager's machine; a
        /// relative one is taken from the current directory).
        #[arg(long, value_name = "PATH")]
        from_savepoint: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the running jobs and the recently ended ones.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a job's state, subtasks and counters.
    Status {
        /// The job id (`3` or `job-3`).
        job: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a running job.
    Cancel {
        /// The job id (`3` or `job-3`).
        job: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a running job. Without --savepoint it drains: its sources end their input, every
    /// window fires, sinks commit, and the job finishes. With --savepoint it takes a savepoint,
    /// prints the file's path, and stops the job right after it (the output up to the savepoint
    /// committed, nothing after it), to be resumed with `submit --from-savepoint`.
    Stop {
        /// The job id (`3` or `job-3`).
        job: String,
        /// Take a savepoint and stop the job after it instead of draining.
        #[arg(long)]
        savepoint: bool,
        /// The savepoint's directory on the JobManager's machine (with --savepoint; a relative
        /// one is taken from the current directory). Default: the JobManager's, under its
        /// --data-dir.
        #[arg(requires = "savepoint")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Take a savepoint of a running job and print its file's path; the job runs on.
    Savepoint {
        /// The job id (`3` or `job-3`).
        job: String,
        /// The directory on the JobManager's machine (a relative one is taken from the current
        /// directory). Default: the JobManager's, under its --data-dir.
        dir: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the registered TaskManagers and their slots.
    Taskmanagers {
        #[command(flatten)]
        client: ClientArgs,
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
    init_logging(cli.log_level.as_deref());
    match cli.command {
        Command::Jobmanager(args) => cluster_cli::job_manager(&args),
        Command::Taskmanager(args) => cluster_cli::task_manager(&args),
        Command::Submit { job, parallelism, from_savepoint, client } => {
            cluster_cli::submit(&client.rest, &job, parallelism, from_savepoint.as_deref())
        }
        Command::List { client } => cluster_cli::list(&client.rest),
        Command::Status { job, client } => cluster_cli::status(&client.rest, &job),
        Command::Cancel { job, client } => cluster_cli::cancel(&client.rest, &job),
        Command::Stop { job, savepoint: false, client, .. } => cluster_cli::stop(&client.rest, &job),
        Command::Stop { job, savepoint: true, dir, client } => {
            cluster_cli::savepoint(&client.rest, &job, dir.as_deref(), true)
        }
        Command::Savepoint { job, dir, client } => {
            cluster_cli::savepoint(&client.rest, &job, dir.as_deref(), false)
        }
        Command::Taskmanagers { client } => cluster_cli::task_managers(&client.rest),
        Command::Validate { job, parallelism } => match load(&job, parallelism) {
            Ok((_, graph)) => {
                print!("{graph}");
                print!("{}", rivulet_node::progress::describe_plan(&graph));
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
        Command::Run { job, parallelism, workers, progress, data_dir, checkpoint_store } => {
            let (text, graph) = match load(&job, parallelism) {
                Ok(loaded) => loaded,
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
            let data_dir = data_dir.map(|dir| (dir, checkpoint_store.unwrap_or_default()));
            run(&text, parallelism, &graph, RunOptions { workers, data_dir }, mode)
        }
    }
}

/// Logs go to standard error, at the level of `--log-level`, else `RUST_LOG`, else `info`.
fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    }
    .unwrap_or_else(|error| {
        eprintln!("warning: bad log filter ({error}); logging at info");
        EnvFilter::new("info")
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Reads and parses a job file: its text and graph.
fn load(path: &Path, parallelism: Option<u16>) -> Result<(String, JobGraph), String> {
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
    Ok((text, graph))
}

fn run(
    text: &str,
    parallelism: Option<u16>,
    graph: &JobGraph,
    options: RunOptions,
    mode: ProgressMode,
) -> ExitCode {
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
        run_on_local_cluster(text, parallelism, graph, &options, stop, mode.tick(), |p| progress.tick(p));
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
