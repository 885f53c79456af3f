//! The `rivulet` command line.

mod cluster_cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use rivulet_core::graph::{JobGraph, SourceConnector, VertexKind};
use rivulet_core::ids::ClusterId;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::limits::{JOB_FILE_BYTES_MAX, PARALLELISM_MAX};
use rivulet_node::connectors::{list_input_files, NodeConnectors};
use rivulet_node::progress::{summary, Progress, ProgressMode};
use rivulet_node::runner::{run_job, RunOptions};

#[derive(Parser)]
#[command(name = "rivulet", version, about = "A lightweight stream and batch processing cluster")]
struct Cli {
    /// Log level or filter (`info`, `debug`, `rivulet_node=debug`); `RUST_LOG` when not given.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Where the client commands find the JobManager.
#[derive(clap::Args)]
struct ClientArgs {
    /// The JobManager's address.
    #[arg(long = "jobmanager", env = "RIVULET_JOBMANAGER", default_value = "127.0.0.1:6123")]
    job_manager: String,
    /// The cluster id; the JobManager refuses clients of another cluster.
    #[arg(long, env = "RIVULET_CLUSTER", default_value_t = 0)]
    cluster: u64,
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
    /// Run a JobManager: accepts TaskManagers and clients, schedules and supervises jobs.
    /// Prints `listening on HOST:PORT` as its first line of standard output.
    Jobmanager {
        /// Where to listen for TaskManagers and clients (port 0 picks a free one).
        #[arg(long, env = "RIVULET_LISTEN", default_value = "0.0.0.0:6123")]
        listen: String,
        /// The cluster id; nodes of different clusters refuse each other.
        #[arg(long, env = "RIVULET_CLUSTER", default_value_t = 0)]
        cluster: u64,
    },
    /// Run a TaskManager: offers task slots to the JobManager and runs subtasks in them.
    Taskmanager {
        /// The JobManager's address.
        #[arg(long = "jobmanager", env = "RIVULET_JOBMANAGER", default_value = "127.0.0.1:6123")]
        job_manager: String,
        /// Where to listen for data connections from other TaskManagers (port 0 picks a free one).
        #[arg(long, env = "RIVULET_DATA_LISTEN", default_value = "0.0.0.0:0")]
        data_listen: String,
        /// The host other TaskManagers reach this one at (default: the listening host, or
        /// 127.0.0.1 when listening on all interfaces).
        #[arg(long, env = "RIVULET_DATA_ADVERTISE")]
        data_advertise: Option<String>,
        /// Task slots offered: how many subtasks run here at once.
        #[arg(long, env = "RIVULET_SLOTS", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=1024))]
        slots: u16,
        /// A placement label `KEY=VALUE` (repeatable), e.g. `--label site=plant-3`.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// This TaskManager's id, unique in the cluster. Default: derived from the data port and
        /// the process id, so two TaskManagers on one host differ; give one explicitly so that
        /// a restarted TaskManager keeps its id.
        #[arg(long, env = "RIVULET_TM_ID")]
        id: Option<u64>,
        /// The cluster id; nodes of different clusters refuse each other.
        #[arg(long, env = "RIVULET_CLUSTER", default_value_t = 0)]
        cluster: u64,
    },
    /// Submit a job file to a running JobManager; prints the job id.
    Submit {
        /// The job file (TOML).
        job: PathBuf,
        /// Default parallelism of the job's operators (overrides the file's [job] parallelism).
        #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=i64::from(PARALLELISM_MAX)))]
        parallelism: Option<u16>,
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
        Command::Jobmanager { listen, cluster } => cluster_cli::job_manager(listen, ClusterId(cluster)),
        Command::Taskmanager { job_manager, data_listen, data_advertise, slots, labels, id, cluster } => {
            cluster_cli::task_manager(cluster_cli::TaskManagerArgs {
                job_manager,
                data_listen,
                data_advertise,
                slots,
                labels,
                id,
                cluster: ClusterId(cluster),
            })
        }
        Command::Submit { job, parallelism, client } => {
            cluster_cli::submit(&client.job_manager, ClusterId(client.cluster), &job, parallelism)
        }
        Command::List { client } => cluster_cli::list(&client.job_manager, ClusterId(client.cluster)),
        Command::Status { job, client } => {
            cluster_cli::status(&client.job_manager, ClusterId(client.cluster), &job)
        }
        Command::Cancel { job, client } => {
            cluster_cli::cancel(&client.job_manager, ClusterId(client.cluster), &job)
        }
        Command::Taskmanagers { client } => {
            cluster_cli::task_managers(&client.job_manager, ClusterId(client.cluster))
        }
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

/// A `KEY=VALUE` label.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
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
