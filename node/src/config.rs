//! Where a node's settings come from: a flag, else its environment variable, else the TOML file
//! named by `--config` (or `RIVULET_CONFIG`), else the default. And the JobManager's data
//! directory, which a setting names and a lock protects.
//!
//! clap reads flags and environment variables (a flag wins) into `Option`s with no default, so
//! that "not given" stays visible and the file can come between them and the default; the
//! defaults are therefore spelled out in the help text and applied here. The file's keys are the
//! flags' names with `_` for `-`. A key the file may not have is an error naming it, the file, and
//! its line and column: a misspelt key silently ignored would be a setting silently not applied.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rivulet_core::ids::{ClusterId, TaskManagerId};
use rivulet_core::jobfile::line_column;
use rivulet_core::jobmanager::resource_manager::ResourceManagerConfig;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::rest::REST_LISTEN_DEFAULT;

/// Where a JobManager listens for TaskManagers and clients unless configured otherwise.
pub const LISTEN_DEFAULT: &str = "0.0.0.0:6123";
/// Where a TaskManager finds its JobManager unless configured otherwise.
pub const JOB_MANAGER_DEFAULT: &str = "127.0.0.1:6123";
/// Where a TaskManager listens for data connections unless configured otherwise.
pub const DATA_LISTEN_DEFAULT: &str = "0.0.0.0:0";
/// The `rest_listen` value that turns the REST API off.
pub const REST_DISABLED: &str = "none";
/// The most task slots a TaskManager may be configured with.
pub const SLOTS_MAX: u16 = 1024;
/// Bytes of a config file; a settings file is a few hundred.
pub const CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024;
/// The file in a data directory that its JobManager holds locked.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Why a node's settings are unusable. Each message names the offending input.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    Read { path: String, error: io::Error },
    #[error("config file {path} has {bytes} bytes; at most {CONFIG_FILE_BYTES_MAX} are accepted")]
    TooLarge { path: String, bytes: u64 },
    #[error("{path}: line {line}, column {column}: {message}")]
    Parse { path: String, line: usize, column: usize, message: String },
    /// Values each valid alone that do not go together.
    #[error("{0}")]
    Invalid(String),
}

/// `rivulet jobmanager`'s settings as given.
#[derive(Args, Clone, Debug, Default)]
pub struct JobManagerArgs {
    /// A TOML file of settings, keys named as these flags (`rest_listen = "0.0.0.0:8081"`);
    /// flags and environment variables win over it.
    #[arg(long, env = "RIVULET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where to listen for TaskManagers and clients; port 0 picks a free one [default: 0.0.0.0:6123]
    #[arg(long, env = "RIVULET_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Where to serve the REST API the client commands use; port 0 picks a free one, `none`
    /// serves none [default: 127.0.0.1:8081]
    #[arg(long, env = "RIVULET_REST_LISTEN", value_name = "HOST:PORT")]
    pub rest_listen: Option<String>,
    /// The JobManager's own directory: created if missing, locked while the JobManager runs
    /// [default: none, nothing is kept on disk]
    #[arg(long, env = "RIVULET_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// How the data directory keeps jobs and checkpoints: `lmdb` (one LMDB environment in
    /// DIR/jobmanager) or `dir` (plain files in DIR/checkpoints) [default: lmdb]
    #[arg(long, env = "RIVULET_CHECKPOINT_STORE", value_name = "lmdb|dir", value_parser = parse_checkpoint_store)]
    pub checkpoint_store: Option<CheckpointStoreKind>,
    /// The cluster id; nodes of different clusters refuse each other [default: 0]
    #[arg(long, env = "RIVULET_CLUSTER")]
    pub cluster: Option<u64>,
    /// How often TaskManagers send heartbeats, e.g. `500ms`, `1s` [default: 1s]
    #[arg(long, env = "RIVULET_HEARTBEAT_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// How long after its last heartbeat a TaskManager is declared dead [default: 5s]
    #[arg(long, env = "RIVULET_HEARTBEAT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat_timeout: Option<Duration>,
}

/// A JobManager's settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobManagerSettings {
    pub listen: String,
    /// `None`: no REST API.
    pub rest_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub checkpoint_store: CheckpointStoreKind,
    pub cluster: ClusterId,
    /// Its heartbeat settings, validated.
    pub resource_manager: ResourceManagerConfig,
}

/// The keys of a JobManager's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobManagerFile {
    listen: Option<String>,
    rest_listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "checkpoint_store")]
    checkpoint_store: Option<CheckpointStoreKind>,
    cluster: Option<u64>,
    #[serde(default, deserialize_with = "duration")]
    heartbeat_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    heartbeat_timeout: Option<Duration>,
}

impl JobManagerArgs {
    /// The settings: these arguments over the config file (if any) over the defaults.
    pub fn resolve(&self) -> Result<JobManagerSettings, ConfigError> {
        let file = match &self.config {
            Some(path) => read_config::<JobManagerFile>(path)?,
            None => JobManagerFile::default(),
        };
        self.over(file)
    }

    /// These arguments over `file`'s settings over the defaults.
    pub fn over(&self, file: JobManagerFile) -> Result<JobManagerSettings, ConfigError> {
        let defaults = ResourceManagerConfig::default();
        let resource_manager = ResourceManagerConfig {
            heartbeat_interval: self
                .heartbeat_interval
                .or(file.heartbeat_interval)
                .unwrap_or(defaults.heartbeat_interval),
            heartbeat_timeout: self
                .heartbeat_timeout
                .or(file.heartbeat_timeout)
                .unwrap_or(defaults.heartbeat_timeout),
            ..defaults
        };
        resource_manager.validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let rest_listen =
            self.rest_listen.clone().or(file.rest_listen).unwrap_or_else(|| REST_LISTEN_DEFAULT.to_owned());
        Ok(JobManagerSettings {
            listen: self.listen.clone().or(file.listen).unwrap_or_else(|| LISTEN_DEFAULT.to_owned()),
            rest_listen: (!rest_listen.eq_ignore_ascii_case(REST_DISABLED)).then_some(rest_listen),
            data_dir: self
                .data_dir
                .clone()
                .or_else(|| file.data_dir.map(|dir| beside(self.config.as_deref(), dir))),
            checkpoint_store: self.checkpoint_store.or(file.checkpoint_store).unwrap_or_default(),
            cluster: ClusterId(self.cluster.or(file.cluster).unwrap_or(0)),
            resource_manager,
        })
    }
}

/// How a JobManager's data directory keeps jobs and checkpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckpointStoreKind {
    /// One LMDB environment (heed) in `DIR/jobmanager`.
    #[default]
    Lmdb,
    /// Plain files in `DIR/checkpoints`.
    Dir,
}

pub fn parse_checkpoint_store(text: &str) -> Result<CheckpointStoreKind, String> {
    match text {
        "lmdb" => Ok(CheckpointStoreKind::Lmdb),
        "dir" => Ok(CheckpointStoreKind::Dir),
        other => Err(format!("{other:?} is no checkpoint store (lmdb or dir)")),
    }
}

fn checkpoint_store<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<CheckpointStoreKind>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_checkpoint_store(&text).map(Some).map_err(serde::de::Error::custom)
}

/// `rivulet taskmanager`'s settings as given.
#[derive(Args, Clone, Debug, Default)]
pub struct TaskManagerArgs {
    /// A TOML file of settings, keys named as these flags (`jobmanager = "jm:6123"`,
    /// `labels = { tier = "edge" }`); flags and environment variables win over it.
    #[arg(long, env = "RIVULET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The JobManager's address [default: 127.0.0.1:6123]
    #[arg(long = "jobmanager", env = "RIVULET_JOBMANAGER", value_name = "HOST:PORT")]
    pub job_manager: Option<String>,
    /// Where to listen for data connections from other TaskManagers; port 0 picks a free one
    /// [default: 0.0.0.0:0]
    #[arg(long, env = "RIVULET_DATA_LISTEN", value_name = "HOST:PORT")]
    pub data_listen: Option<String>,
    /// The host other TaskManagers reach this one at [default: the listening host, or 127.0.0.1
    /// when listening on all interfaces]
    #[arg(long, env = "RIVULET_DATA_ADVERTISE", value_name = "HOST")]
    pub data_advertise: Option<String>,
    /// Task slots offered: how many subtasks run here at once [default: 1]
    #[arg(long, env = "RIVULET_SLOTS", value_parser = clap::value_parser!(u16).range(1..=i64::from(SLOTS_MAX)))]
    pub slots: Option<u16>,
    /// A placement label `KEY=VALUE` (repeatable), e.g. `--label site=plant-3`; given here, they
    /// replace the config file's `labels`
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// This TaskManager's id, unique in the cluster. Default: derived from the data port and the
    /// process id, so two TaskManagers on one host differ; give one explicitly so that a
    /// restarted TaskManager keeps its id.
    #[arg(long, env = "RIVULET_TM_ID")]
    pub id: Option<u64>,
    /// The cluster id; nodes of different clusters refuse each other [default: 0]
    #[arg(long, env = "RIVULET_CLUSTER")]
    pub cluster: Option<u64>,
}

/// A TaskManager's settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskManagerSettings {
    pub job_manager: String,
    pub data_listen: String,
    pub data_advertise: Option<String>,
    pub slots: u16,
    pub labels: BTreeMap<String, String>,
    /// `None`: derive one.
    pub id: Option<TaskManagerId>,
    pub cluster: ClusterId,
}

/// The keys of a TaskManager's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskManagerFile {
    jobmanager: Option<String>,
    data_listen: Option<String>,
    data_advertise: Option<String>,
    #[serde(default, deserialize_with = "slots")]
    slots: Option<u16>,
    labels: Option<BTreeMap<String, String>>,
    id: Option<u64>,
    cluster: Option<u64>,
}

impl TaskManagerArgs {
    /// The settings: these arguments over the config file (if any) over the defaults.
    pub fn resolve(&self) -> Result<TaskManagerSettings, ConfigError> {
        let file = match &self.config {
            Some(path) => read_config::<TaskManagerFile>(path)?,
            None => TaskManagerFile::default(),
        };
        Ok(self.over(file))
    }

    /// These arguments over `file`'s settings over the defaults.
    pub fn over(&self, file: TaskManagerFile) -> TaskManagerSettings {
        let labels = match self.labels.is_empty() {
            true => file.labels.unwrap_or_default(),
            false => self.labels.iter().cloned().collect(),
        };
        TaskManagerSettings {
            job_manager: self
                .job_manager
                .clone()
                .or(file.jobmanager)
                .unwrap_or_else(|| JOB_MANAGER_DEFAULT.to_owned()),
            data_listen: self
                .data_listen
                .clone()
                .or(file.data_listen)
                .unwrap_or_else(|| DATA_LISTEN_DEFAULT.to_owned()),
            data_advertise: self.data_advertise.clone().or(file.data_advertise),
            slots: self.slots.or(file.slots).unwrap_or(1),
            labels,
            id: self.id.or(file.id).map(TaskManagerId),
            cluster: ClusterId(self.cluster.or(file.cluster).unwrap_or(0)),
        }
    }
}

/// Reads and parses the config file at `path`.
fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let shown = || path.display().to_string();
    let read = |error| ConfigError::Read { path: shown(), error };
    let file = File::open(path).map_err(read)?;
    let bytes = file.metadata().map_err(read)?.len();
    if bytes > CONFIG_FILE_BYTES_MAX {
        return Err(ConfigError::TooLarge { path: shown(), bytes });
    }
    let mut text = String::new();
    // `take`: the file may grow between the check and the read.
    file.take(CONFIG_FILE_BYTES_MAX).read_to_string(&mut text).map_err(read)?;
    parse_config(path, &text)
}

/// Parses a config file's text; `path` is for messages.
pub fn parse_config<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = line_column(text, offset);
        let message = with_key(text, offset, e.message().trim());
        ConfigError::Parse { path: path.display().to_string(), line, column, message }
    })
}

/// TOML's message, prefixed with the key when it is about a value (`slots = "many"`) and does
/// not name one itself.
fn with_key(text: &str, offset: usize, message: &str) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    match text.get(line_start..offset).and_then(|before| before.split_once('=')) {
        Some((key, rest)) if rest.trim().is_empty() && !key.trim().is_empty() && !message.contains('`') => {
            format!("`{}`: {message}", key.trim())
        }
        _ => message.to_owned(),
    }
}

/// A path from a config file: relative ones are relative to the file's directory, so a file means
/// the same wherever the node is started from.
fn beside(config: Option<&Path>, path: PathBuf) -> PathBuf {
    match config.and_then(Path::parent) {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map(Some).map_err(D::Error::custom)
}

fn slots<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    let slots = i64::deserialize(deserializer)?;
    match u16::try_from(slots) {
        Ok(n) if (1..=SLOTS_MAX).contains(&n) => Ok(Some(n)),
        _ => Err(D::Error::custom(format!("must be from 1 to {SLOTS_MAX}, found {slots}"))),
    }
}

/// A duration as `500ms`, `5s`, `2min` (or `2m`) or `1h`: a whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as \"500ms\", \"5s\", \"2min\" or \"1h\", found {text:?}");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    number.checked_mul(millis_per_unit).map(Duration::from_millis).ok_or_else(bad)
}

/// A `KEY=VALUE` label.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Why a data directory cannot be used.
#[derive(Debug, Error)]
pub enum DataDirError {
    #[error("cannot create the data directory {path}: {error}")]
    Create { path: String, error: io::Error },
    #[error("cannot open the lock file {path}: {error}")]
    Lock { path: String, error: io::Error },
    #[error(
        "the data directory {dir} is in use by another JobManager{holder}: it holds {dir}/{LOCK_FILE_NAME} \
         locked; give each JobManager a directory of its own"
    )]
    InUse { dir: String, holder: String },
}

/// A JobManager's data directory, held exclusively: the lock on its `LOCK` file lasts as long as
/// this value (the operating system also releases it when the process dies, however it dies, so
/// a crashed JobManager leaves no stale lock behind).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates `path` if missing and locks it, or says which process holds it.
    pub fn lock(path: &Path) -> Result<DataDir, DataDirError> {
        let shown = path.display().to_string();
        std::fs::create_dir_all(path).map_err(|error| DataDirError::Create { path: shown.clone(), error })?;
        let lock_path = path.join(LOCK_FILE_NAME);
        let lock_error = |error| DataDirError::Lock { path: lock_path.display().to_string(), error };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(lock_error)?;
        // `File::try_lock` (an advisory `flock` on Unix, stable since Rust 1.89): the OS releases
        // it however the process ends, so a crashed JobManager leaves no stale lock behind.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.take(32).read_to_string(&mut holder);
                let holder = match holder.trim() {
                    pid if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
                        format!(" (pid {pid})")
                    }
                    _ => String::new(),
                };
                return Err(DataDirError::InUse { dir: shown, holder });
            }
            Err(TryLockError::Error(error)) => return Err(lock_error(error)),
        }
        // The holder's pid, for the message of the next one to try; the lock is what counts.
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(lock_error)?;
        Ok(DataDir { path: path.to_owned(), _lock: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Node,
    }

    #[derive(clap::Subcommand)]
    enum Node {
        Jobmanager(JobManagerArgs),
        Taskmanager(TaskManagerArgs),
    }

    fn job_manager_args(args: &[&str]) -> JobManagerArgs {
        let argv = ["rivulet", "jobmanager"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}")).command {
            Node::Jobmanager(args) => args,
            Node::Taskmanager(_) => unreachable!(),
        }
    }

    fn task_manager_args(args: &[&str]) -> TaskManagerArgs {
        let argv = ["rivulet", "taskmanager"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}")).command {
            Node::Taskmanager(args) => args,
            Node::Jobmanager(_) => unreachable!(),
        }
    }

    fn jm_file(text: &str) -> JobManagerFile {
        parse_config(Path::new("jm.toml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_error<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        parse_config::<T>(Path::new("node.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let settings = job_manager_args(&[]).over(JobManagerFile::default()).unwrap();
        assert_eq!(
            settings,
            JobManagerSettings {
                listen: "0.0.0.0:6123".into(),
                rest_listen: Some("127.0.0.1:8081".into()),
                data_dir: None,
                checkpoint_store: CheckpointStoreKind::Lmdb,
                cluster: ClusterId(0),
                resource_manager: ResourceManagerConfig::default(),
            }
        );
        let settings = task_manager_args(&[]).over(TaskManagerFile::default());
        assert_eq!(
            (settings.job_manager.as_str(), settings.data_listen.as_str()),
            ("127.0.0.1:6123", "0.0.0.0:0")
        );
        assert_eq!((settings.slots, settings.id, settings.cluster), (1, None, ClusterId(0)));
    }

    #[test]
    fn the_file_overrides_defaults_and_flags_override_the_file() {
        let file = "listen = \"10.0.0.1:7000\"\nrest_listen = \"none\"\ncluster = 7\n\
                    heartbeat_interval = \"200ms\"\nheartbeat_timeout = \"2s\"\ndata_dir = \"state\"\n\
                    checkpoint_store = \"dir\"\n";
        let settings = job_manager_args(&[]).over(jm_file(file)).unwrap();
        assert_eq!(settings.checkpoint_store, CheckpointStoreKind::Dir);
        let lmdb = job_manager_args(&["--checkpoint-store", "lmdb"]).over(jm_file(file)).unwrap();
        assert_eq!(lmdb.checkpoint_store, CheckpointStoreKind::Lmdb, "the flag wins");
        assert_eq!(settings.listen, "10.0.0.1:7000");
        assert_eq!(settings.rest_listen, None, "`none` turns the REST API off");
        assert_eq!(settings.cluster, ClusterId(7));
        assert_eq!(settings.resource_manager.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(settings.resource_manager.heartbeat_timeout, Duration::from_secs(2));
        assert_eq!(settings.data_dir, Some(PathBuf::from("state")));

        let flags =
            ["--listen", "127.0.0.1:0", "--rest-listen", "127.0.0.1:0", "--heartbeat-timeout", "1min"];
        let settings = job_manager_args(&flags).over(jm_file(file)).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:0");
        assert_eq!(settings.rest_listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(settings.resource_manager.heartbeat_timeout, Duration::from_secs(60));
        assert_eq!(
            settings.resource_manager.heartbeat_interval,
            Duration::from_millis(200),
            "the file's, still"
        );
        assert_eq!(settings.cluster, ClusterId(7));
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_the_file() {
        let args = job_manager_args(&["--config", "/etc/rivulet/jm.toml"]);
        let settings = args.over(jm_file("data_dir = \"state\"")).unwrap();
        assert_eq!(settings.data_dir, Some(PathBuf::from("/etc/rivulet/state")));
        let settings = args.over(jm_file("data_dir = \"/var/lib/rivulet\"")).unwrap();
        assert_eq!(settings.data_dir, Some(PathBuf::from("/var/lib/rivulet")));
        // A flag's path is the caller's, relative to the working directory.
        let args = job_manager_args(&["--config", "/etc/rivulet/jm.toml", "--data-dir", "here"]);
        assert_eq!(args.over(jm_file("data_dir = \"state\"")).unwrap().data_dir, Some(PathBuf::from("here")));
    }

    #[test]
    fn task_manager_flags_override_the_file_labels_as_a_whole() {
        let file = "jobmanager = \"jm:6123\"\nslots = 4\nlabels = { tier = \"edge\", site = \"plant-3\" }\n\
                    data_listen = \"0.0.0.0:6124\"\ndata_advertise = \"10.3.0.17\"\nid = 101\ncluster = 2\n";
        let file = || parse_config::<TaskManagerFile>(Path::new("tm.toml"), file).unwrap();
        let settings = task_manager_args(&[]).over(file());
        assert_eq!(settings.job_manager, "jm:6123");
        assert_eq!(settings.slots, 4);
        assert_eq!(settings.labels.get("tier").map(String::as_str), Some("edge"));
        assert_eq!(settings.labels.len(), 2);
        assert_eq!(settings.data_advertise.as_deref(), Some("10.3.0.17"));
        assert_eq!((settings.id, settings.cluster), (Some(TaskManagerId(101)), ClusterId(2)));

        let settings =
            task_manager_args(&["--slots", "2", "--label", "tier=cloud", "--id", "5"]).over(file());
        assert_eq!((settings.slots, settings.id), (2, Some(TaskManagerId(5))));
        assert_eq!(settings.labels, BTreeMap::from([("tier".to_owned(), "cloud".to_owned())]));
        assert_eq!(settings.data_listen, "0.0.0.0:6124", "the file's, still");
    }

    #[test]
    fn unknown_keys_are_named_with_file_line_and_column() {
        let message = parse_error::<JobManagerFile>("listen = \"0.0.0.0:6123\"\nrest_port = 8081\n");
        assert!(
            message.starts_with("node.toml: line 2, column 1: unknown field `rest_port`, expected one of"),
            "{message}"
        );
        assert!(message.contains("`rest_listen`"), "the message lists the keys: {message}");
        let message = parse_error::<TaskManagerFile>("slot = 4\n");
        assert!(message.starts_with("node.toml: line 1, column 1: unknown field `slot`"), "{message}");
    }

    #[test]
    fn bad_values_are_named_with_their_key() {
        assert_eq!(
            parse_error::<JobManagerFile>("heartbeat_interval = \"soon\"\n"),
            "node.toml: line 1, column 22: `heartbeat_interval`: expected a duration such as \"500ms\", \"5s\", \
             \"2min\" or \"1h\", found \"soon\""
        );
        assert_eq!(
            parse_error::<TaskManagerFile>("slots = 0\n"),
            "node.toml: line 1, column 9: `slots`: must be from 1 to 1024, found 0"
        );
        let message = parse_error::<JobManagerFile>("cluster = \"seven\"\n");
        assert!(
            message.starts_with("node.toml: line 1, column 11: `cluster`: invalid type: string"),
            "{message}"
        );
        let message = parse_error::<JobManagerFile>("checkpoint_store = \"s3\"\n");
        assert!(
            message.ends_with("`checkpoint_store`: \"s3\" is no checkpoint store (lmdb or dir)"),
            "{message}"
        );
        let message = parse_error::<JobManagerFile>("listen = \n");
        assert!(message.starts_with("node.toml: line 1, column"), "{message}");
    }

    #[test]
    fn heartbeats_that_do_not_fit_together_are_refused() {
        let error =
            job_manager_args(&["--heartbeat-interval", "5s"]).over(JobManagerFile::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("heartbeat_timeout (5s) must be longer than heartbeat_interval (5s)"),
            "{error}"
        );
        let error =
            job_manager_args(&["--heartbeat-interval", "0ms"]).over(JobManagerFile::default()).unwrap_err();
        assert_eq!(error.to_string(), "heartbeat_interval must be longer than zero");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in
            ["", "5", "s", "5 s", "-1s", "1.5s", "5sec", "99999999999999999999h", "18446744073709551615h"]
        {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        // On the command line too.
        let error =
            Cli::try_parse_from(["rivulet", "jobmanager", "--heartbeat-timeout", "soon"]).err().unwrap();
        assert!(error.to_string().contains("expected a duration such as"), "{error}");
    }

    #[test]
    fn a_data_dir_is_created_and_held_by_one_holder_at_a_time() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        let held = DataDir::lock(&dir).unwrap();
        assert_eq!(held.path(), dir);
        let pid = std::fs::read_to_string(dir.join(LOCK_FILE_NAME)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // A second open file description conflicts even within one process.
        let error = DataDir::lock(&dir).unwrap_err().to_string();
        let expected = format!(
            "the data directory {} is in use by another JobManager (pid {})",
            dir.display(),
            pid.trim()
        );
        assert!(error.starts_with(&expected), "{error}");
        drop(held);
        DataDir::lock(&dir).expect("free again once the holder is gone");
    }

    #[test]
    fn a_missing_or_huge_config_file_is_named() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing.toml");
        let args = JobManagerArgs { config: Some(missing.clone()), ..JobManagerArgs::default() };
        let error = args.resolve().unwrap_err().to_string();
        assert!(error.starts_with(&format!("cannot read config file {}: ", missing.display())), "{error}");
        let huge = root.path().join("huge.toml");
        std::fs::write(&huge, "#".repeat(CONFIG_FILE_BYTES_MAX as usize + 1)).unwrap();
        let args = TaskManagerArgs { config: Some(huge.clone()), ..TaskManagerArgs::default() };
        let error = args.resolve().unwrap_err().to_string();
        assert_eq!(
            error,
            format!("config file {} has 65537 bytes; at most 65536 are accepted", huge.display())
        );
    }
}
