//! The cluster commands of the `rivulet` binary: `jobmanager`, `taskmanager` and the client
//! commands `submit`, `list`, `status`, `cancel`, `stop`, `savepoint`, `taskmanagers`, which use
//! the JobManager's REST API (`docs/rest.md`).
//!
//! Exit codes: 0 done; 1 failed (no JobManager, a broken connection, a node that stopped, an
//! answer that makes no sense); 2 bad input (a bad setting or config file, a job file the
//! JobManager refused, an unknown or malformed job id).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use hyper::Method;
use rivulet_core::ids::TaskManagerId;
use rivulet_core::limits::JOB_FILE_BYTES_MAX;
use rivulet_node::checkpoint_store::SharedStore;
use rivulet_node::cluster::{run_job_manager, run_task_manager, JobManagerNodeConfig, TaskManagerNodeConfig};
use rivulet_node::config::{CheckpointStoreKind, DataDir, JobManagerArgs, TaskManagerArgs};
use rivulet_node::dir_store::DirStore;
use rivulet_node::heed_store::HeedStore;
use rivulet_node::net::{Runtime, SmolRuntime, HANDSHAKE_TIMEOUT_DEFAULT};
use rivulet_node::rest::api::{
    parse_job_id, JobDetails, JobList, JobRef, SavepointDetails, SavepointRef, SavepointRequest,
    TaskManagerList,
};
use rivulet_node::rest::client::Reply;
use rivulet_node::rest::router::percent_encode;
use rivulet_node::rest::server::RestServer;
use serde::de::DeserializeOwned;

const BAD_INPUT: u8 = 2;

pub fn job_manager(args: &JobManagerArgs) -> ExitCode {
    let settings = match args.resolve() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    // Held until the process ends: two JobManagers never share a data directory.
    let _data_dir = match settings.data_dir.as_deref().map(DataDir::lock).transpose() {
        Ok(data_dir) => data_dir,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = JobManagerNodeConfig::new(settings.listen, settings.cluster);
    config.job_manager.resource_manager = settings.resource_manager;
    config.savepoint_dir =
        _data_dir.as_ref().and_then(|d| std::path::absolute(d.path().join("savepoints")).ok());
    // With a data directory, jobs and checkpoints outlive the process: a JobManager started on it
    // again takes the running jobs over. Without one they live in memory.
    if let Some(data_dir) = &_data_dir {
        let opened = match settings.checkpoint_store {
            CheckpointStoreKind::Lmdb => HeedStore::open(data_dir.path()).map(SharedStore::new),
            CheckpointStoreKind::Dir => DirStore::open(data_dir.path()).map(SharedStore::new),
        };
        match opened {
            Ok(store) => config.checkpoints = store,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rt = SmolRuntime::new();
    let result = smol::block_on(async {
        let rest = match &settings.rest_listen {
            Some(address) => Some(
                RestServer::bind(address)
                    .await
                    .map_err(|e| format!("cannot serve the REST API on {address}: {e}"))?,
            ),
            None => None,
        };
        run_job_manager(rt.clone(), config, |ready| {
            // The first line of standard output, for scripts and tests that listen on port 0.
            println!("listening on {}", ready.address);
            if let Some(rest) = rest {
                println!("rest on {}", rest.local_address());
                rt.spawn("rest", rest.serve(rt.clone(), ready.handle));
            }
            let _ = std::io::stdout().flush();
        })
        .await
        .map_err(|e| format!("the JobManager stopped: {e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

pub fn task_manager(args: &TaskManagerArgs) -> ExitCode {
    let settings = match args.resolve() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let id =
        settings.id.unwrap_or_else(|| TaskManagerId(default_id(&settings.data_listen, std::process::id())));
    let config = TaskManagerNodeConfig {
        job_manager: settings.job_manager,
        data_listen: settings.data_listen,
        data_advertise_host: settings.data_advertise,
        id,
        slots: settings.slots,
        labels: settings.labels,
        cluster: settings.cluster,
        handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
        files_root: None,
    };
    match smol::block_on(run_task_manager(SmolRuntime::new(), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the TaskManager stopped: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A TaskManager id from its data address and process id (FNV-1a, cut to 31 bits so it stays
/// short in logs): TaskManagers on one host differ by pid, on different hosts by address.
fn default_id(data_listen: &str, pid: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data_listen.bytes().chain(pid.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash & 0x7fff_ffff).max(1)
}

/// One exchange with the REST API at `rest`; the answer whatever its status, or the exit code of
/// a failure (already reported).
fn request(rest: &str, method: Method, path: &str, body: Vec<u8>) -> Result<Reply, ExitCode> {
    // `http://host:port/` as a browser shows it means `host:port` too.
    let address = rest.strip_prefix("http://").unwrap_or(rest).trim_end_matches('/');
    smol::block_on(rivulet_node::rest::client::request(address, method, path, body)).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

/// The answer's JSON document, or the exit code of a failure (already reported).
fn document<T: DeserializeOwned>(reply: &Reply) -> Result<T, ExitCode> {
    reply.json().map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

/// An answer the command has no meaning for: a failure.
fn unexpected(reply: &Reply) -> ExitCode {
    eprintln!("error: the JobManager answered {}: {}", reply.status, reply.error_message());
    ExitCode::FAILURE
}

pub fn submit(rest: &str, path: &Path, parallelism: Option<u16>, from_savepoint: Option<&Path>) -> ExitCode {
    let shown = path.display();
    let job_file = match std::fs::metadata(path).and_then(|m| {
        if m.len() > JOB_FILE_BYTES_MAX as u64 {
            Err(std::io::Error::other(format!(
                "the job file has {} bytes; at most {JOB_FILE_BYTES_MAX} are accepted",
                m.len()
            )))
        } else {
            std::fs::read_to_string(path)
        }
    }) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read job file {shown}: {error}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let mut query = Vec::new();
    if let Some(p) = parallelism {
        query.push(format!("parallelism={p}"));
    }
    if let Some(savepoint) = from_savepoint {
        let Some(savepoint) = absolute(savepoint) else { return ExitCode::from(BAD_INPUT) };
        query.push(format!("savepoint={}", percent_encode(&savepoint)));
    }
    let target = if query.is_empty() { "/jobs".to_owned() } else { format!("/jobs?{}", query.join("&")) };
    let reply = match request(rest, Method::POST, &target, job_file.into_bytes()) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    match reply.status {
        200 | 201 => match document::<JobRef>(&reply) {
            Ok(job) => {
                println!("{}", job.id);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        400 | 413 => {
            eprintln!("error: {shown}: {}", reply.error_message());
            ExitCode::from(BAD_INPUT)
        }
        _ => unexpected(&reply),
    }
}

pub fn list(rest: &str) -> ExitCode {
    let reply = match request(rest, Method::GET, "/jobs", Vec::new()) {
        Ok(reply) if reply.status == 200 => reply,
        Ok(reply) => return unexpected(&reply),
        Err(code) => return code,
    };
    let list = match document::<JobList>(&reply) {
        Ok(list) => list,
        Err(code) => return code,
    };
    println!("{:<10} {:<11} {:>7} {:>8}  name", "job", "state", "attempt", "failures");
    for job in list.jobs {
        println!("{:<10} {:<11} {:>7} {:>8}  {}", job.id, job.state, job.attempt, job.failures, job.name);
    }
    ExitCode::SUCCESS
}

/// `3` or `job-3`, as the job's path segment (`job-3`).
fn job_segment(text: &str) -> Result<String, ExitCode> {
    parse_job_id(text).map(|job| job.to_string()).ok_or_else(|| {
        eprintln!("error: {text:?} is not a job id (expected a number such as 3 or job-3)");
        ExitCode::from(BAD_INPUT)
    })
}

pub fn status(rest: &str, job: &str) -> ExitCode {
    let job = match job_segment(job) {
        Ok(job) => job,
        Err(code) => return code,
    };
    let reply = match request(rest, Method::GET, &format!("/jobs/{job}"), Vec::new()) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    match reply.status {
        200 => match document::<JobDetails>(&reply) {
            Ok(details) => {
                print!("{}", describe(&details));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        404 => {
            eprintln!("error: the JobManager knows no {job}");
            ExitCode::from(BAD_INPUT)
        }
        _ => unexpected(&reply),
    }
}

/// A job's status as `rivulet status` prints it. The first line is `job-N STATE`, so scripts can
/// wait for a state with `head -1`.
fn describe(job: &JobDetails) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", job.id, job.state);
    let _ = writeln!(out, "  name:     {}", job.name);
    let _ = writeln!(out, "  attempt:  {}", job.attempt);
    let _ = writeln!(out, "  failures: {}", job.failures);
    if let Some(cause) = &job.last_failure {
        let _ = writeln!(out, "  last failure: {cause}");
    }
    if let Some(c) = &job.checkpoints {
        let latest = c.latest.map_or("none".to_owned(), |id| id.to_string());
        let _ =
            write!(out, "  checkpoints: {} completed, {} aborted, latest {latest}", c.completed, c.aborted);
        if c.latest.is_some() {
            let _ = write!(out, " ({} ms, {} bytes)", c.last_duration_ms, c.last_bytes);
        }
        if let Some(id) = c.restored_from {
            let _ = write!(out, ", restored from {id}");
        }
        let _ = writeln!(out);
    }
    for s in &job.savepoints {
        let what = match (&s.path, &s.error) {
            (Some(path), _) => path.clone(),
            (None, Some(error)) => error.clone(),
            (None, None) => s.directory.clone(),
        };
        let _ = writeln!(out, "  savepoint {}: {} {what}", s.request, s.state);
    }
    for wait in &job.waiting_for {
        let on = if wait.labels.is_empty() {
            "any TaskManagers".to_owned()
        } else {
            let labels: Vec<String> = wait.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("TaskManagers labelled {}", labels.join(","))
        };
        let _ = writeln!(out, "  waiting for {} free slots on {on}", wait.slots);
    }
    let _ = writeln!(out, "  {:<20} {:>15} {:>15} {:>10}", "vertex", "records in", "records out", "late");
    for v in &job.vertices {
        let late = v.late_records_dropped + v.late_records_routed;
        let _ = writeln!(out, "  {:<20} {:>15} {:>15} {:>10}", v.name, v.records_in, v.records_out, late);
    }
    let _ = writeln!(out, "  {:<24} {:<10} taskmanager", "subtask", "state");
    for t in &job.subtasks {
        let subtask = format!("{} ({}/{})", t.name, u32::from(t.index) + 1, t.parallelism);
        let _ =
            writeln!(out, "  {:<24} {:<10} {}", subtask, t.state, t.taskmanager.as_deref().unwrap_or("-"));
    }
    out
}

pub fn cancel(rest: &str, job: &str) -> ExitCode {
    let job = match job_segment(job) {
        Ok(job) => job,
        Err(code) => return code,
    };
    let reply = match request(rest, Method::POST, &format!("/jobs/{job}/cancel"), Vec::new()) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    match reply.status {
        200 | 202 => {
            println!("cancelling {job}");
            ExitCode::SUCCESS
        }
        // 404: never submitted (or forgotten); 409: already ended.
        404 | 409 => {
            eprintln!("error: the JobManager knows no running {job}");
            ExitCode::from(BAD_INPUT)
        }
        _ => unexpected(&reply),
    }
}

/// `path` made absolute against the current directory, as text; `None` (reported) if it cannot
/// be, or is not UTF-8.
fn absolute(path: &Path) -> Option<String> {
    match std::path::absolute(path) {
        Ok(path) => match path.to_str() {
            Some(text) => Some(text.to_owned()),
            None => {
                eprintln!("error: {} is not UTF-8", path.display());
                None
            }
        },
        Err(error) => {
            eprintln!("error: {}: {error}", path.display());
            None
        }
    }
}

pub fn stop(rest: &str, job: &str) -> ExitCode {
    let job = match job_segment(job) {
        Ok(job) => job,
        Err(code) => return code,
    };
    let reply = match request(rest, Method::POST, &format!("/jobs/{job}/stop"), Vec::new()) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    match reply.status {
        200 | 202 => {
            println!("stopping {job}: its sources end their input");
            ExitCode::SUCCESS
        }
        404 | 409 => {
            eprintln!("error: the JobManager knows no running {job}");
            ExitCode::from(BAD_INPUT)
        }
        _ => unexpected(&reply),
    }
}

/// How often `savepoint` asks whether the savepoint is written.
const SAVEPOINT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// `rivulet savepoint` and `rivulet stop --savepoint`: asks for the savepoint, waits until it is
/// written (or failed), and prints its path.
pub fn savepoint(rest: &str, job: &str, dir: Option<&Path>, stop: bool) -> ExitCode {
    let job = match job_segment(job) {
        Ok(job) => job,
        Err(code) => return code,
    };
    let directory = match dir.map(absolute) {
        Some(None) => return ExitCode::from(BAD_INPUT),
        Some(Some(dir)) => Some(dir),
        None => None,
    };
    let body = serde_json::to_vec(&SavepointRequest { directory, stop }).expect("a request encodes");
    let reply = match request(rest, Method::POST, &format!("/jobs/{job}/savepoints"), body) {
        Ok(reply) => reply,
        Err(code) => return code,
    };
    let triggered = match reply.status {
        202 => match document::<SavepointRef>(&reply) {
            Ok(triggered) => triggered,
            Err(code) => return code,
        },
        404 => {
            eprintln!("error: the JobManager knows no running {job}");
            return ExitCode::from(BAD_INPUT);
        }
        409 => {
            eprintln!("error: {}", reply.error_message());
            return ExitCode::from(BAD_INPUT);
        }
        _ => return unexpected(&reply),
    };
    let path = format!("/jobs/{job}/savepoints/{}", triggered.request);
    loop {
        let reply = match request(rest, Method::GET, &path, Vec::new()) {
            Ok(reply) if reply.status == 200 => reply,
            Ok(reply) => return unexpected(&reply),
            Err(code) => return code,
        };
        let details = match document::<SavepointDetails>(&reply) {
            Ok(details) => details,
            Err(code) => return code,
        };
        match details.state.as_str() {
            "in-progress" => std::thread::sleep(SAVEPOINT_POLL),
            "completed" => {
                // The path alone on standard output, for scripts; the rest on standard error.
                println!("{}", details.path.as_deref().unwrap_or_default());
                let checkpoint = details.checkpoint.unwrap_or_default();
                let then = if stop { "; the job stops" } else { "" };
                eprintln!(
                    "savepoint of {job} written (checkpoint {checkpoint}, {} bytes){then}",
                    details.bytes
                );
                return ExitCode::SUCCESS;
            }
            _ => {
                let why = details.error.as_deref().unwrap_or("no reason given");
                eprintln!("error: the savepoint of {job} failed: {why}");
                return ExitCode::FAILURE;
            }
        }
    }
}

pub fn task_managers(rest: &str) -> ExitCode {
    let reply = match request(rest, Method::GET, "/taskmanagers", Vec::new()) {
        Ok(reply) if reply.status == 200 => reply,
        Ok(reply) => return unexpected(&reply),
        Err(code) => return code,
    };
    let list = match document::<TaskManagerList>(&reply) {
        Ok(list) => list,
        Err(code) => return code,
    };
    println!("{:<14} {:<22} {:>5} {:>5}  labels", "taskmanager", "data address", "slots", "free");
    for tm in list.taskmanagers {
        let labels: Vec<String> = tm.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<14} {:<22} {:>5} {:>5}  {}",
            tm.id,
            tm.address,
            tm.slots,
            tm.free_slots,
            labels.join(",")
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_differ_by_process_and_address() {
        let a = default_id("0.0.0.0:0", 100);
        assert_ne!(a, default_id("0.0.0.0:0", 101));
        assert_ne!(a, default_id("10.0.0.1:0", 100));
        assert!(a >= 1);
    }

    #[test]
    fn job_ids_become_path_segments() {
        assert_eq!(job_segment("3").ok().as_deref(), Some("job-3"));
        assert_eq!(job_segment("job-3").ok().as_deref(), Some("job-3"));
        assert!(job_segment("x").is_err());
        assert!(job_segment("3/cancel").is_err());
    }
}
