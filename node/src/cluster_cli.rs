//! The cluster commands of the `rivulet` binary: `jobmanager`, `taskmanager` and the client
//! commands `submit`, `list`, `status`, `cancel`, `taskmanagers`.
//!
//! Exit codes: 0 done; 1 failed (no JobManager, a broken connection, a node that stopped);
//! 2 bad input (a job file the JobManager refused, an unknown or malformed job id).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use rivulet_core::ids::{ClusterId, JobId, TaskManagerId};
use rivulet_core::limits::JOB_FILE_BYTES_MAX;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo};
use rivulet_node::cluster::client::Client;
use rivulet_node::cluster::{run_job_manager, run_task_manager, JobManagerNodeConfig, TaskManagerNodeConfig};
use rivulet_node::net::{SmolRuntime, HANDSHAKE_TIMEOUT_DEFAULT};

const BAD_INPUT: u8 = 2;

pub fn job_manager(listen: String, cluster: ClusterId) -> ExitCode {
    let config = JobManagerNodeConfig::new(listen, cluster);
    let result = smol::block_on(run_job_manager(SmolRuntime::new(), config, |address| {
        // The first line of standard output, for scripts and tests that listen on port 0.
        println!("listening on {address}");
        let _ = std::io::stdout().flush();
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the JobManager stopped: {error}");
            ExitCode::FAILURE
        }
    }
}

pub struct TaskManagerArgs {
    pub job_manager: String,
    pub data_listen: String,
    pub data_advertise: Option<String>,
    pub slots: u16,
    pub labels: Vec<(String, String)>,
    pub id: Option<u64>,
    pub cluster: ClusterId,
}

pub fn task_manager(args: TaskManagerArgs) -> ExitCode {
    let id = TaskManagerId(args.id.unwrap_or_else(|| default_id(&args.data_listen, std::process::id())));
    let config = TaskManagerNodeConfig {
        job_manager: args.job_manager,
        data_listen: args.data_listen,
        data_advertise_host: args.data_advertise,
        id,
        slots: args.slots,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        cluster: args.cluster,
        handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
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

/// Sends one request; the response, or the exit code of a failure (already reported).
fn request(address: &str, cluster: ClusterId, request: ClientRequest) -> Result<ClientResponse, ExitCode> {
    let rt = SmolRuntime::new();
    smol::block_on(async {
        let mut client = Client::connect(&rt, address, cluster, HANDSHAKE_TIMEOUT_DEFAULT).await?;
        client.request(&request).await
    })
    .map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

fn unexpected(response: &ClientResponse) -> ExitCode {
    eprintln!("error: unexpected response from the JobManager: {response:?}");
    ExitCode::FAILURE
}

pub fn submit(address: &str, cluster: ClusterId, path: &Path, parallelism: Option<u16>) -> ExitCode {
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
    match request(address, cluster, ClientRequest::Submit { job_file, parallelism }) {
        Ok(ClientResponse::Submitted { job }) => {
            println!("{job}");
            ExitCode::SUCCESS
        }
        Ok(ClientResponse::SubmitRefused { error }) => {
            eprintln!("error: {shown}: {error}");
            ExitCode::from(BAD_INPUT)
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
}

pub fn list(address: &str, cluster: ClusterId) -> ExitCode {
    match request(address, cluster, ClientRequest::ListJobs) {
        Ok(ClientResponse::Jobs { jobs }) => {
            println!("{:<10} {:<11} {:>7} {:>8}  name", "job", "state", "attempt", "failures");
            for job in jobs {
                println!(
                    "{:<10} {:<11} {:>7} {:>8}  {}",
                    job.job.to_string(),
                    job.state,
                    job.attempt,
                    job.failures,
                    job.name
                );
            }
            ExitCode::SUCCESS
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
}

/// `3` or `job-3`.
fn parse_job_id(text: &str) -> Result<JobId, ExitCode> {
    text.strip_prefix("job-").unwrap_or(text).parse().map(JobId).map_err(|_| {
        eprintln!("error: {text:?} is not a job id (expected a number such as 3 or job-3)");
        ExitCode::from(BAD_INPUT)
    })
}

pub fn status(address: &str, cluster: ClusterId, job: &str) -> ExitCode {
    let job = match parse_job_id(job) {
        Ok(job) => job,
        Err(code) => return code,
    };
    match request(address, cluster, ClientRequest::JobStatus { job }) {
        Ok(ClientResponse::Job { job }) => {
            print!("{}", describe(&job));
            ExitCode::SUCCESS
        }
        Ok(ClientResponse::UnknownJob { job }) => {
            eprintln!("error: the JobManager knows no {job}");
            ExitCode::from(BAD_INPUT)
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
}

/// A job's status as `rivulet status` prints it. The first line is `job-N STATE`, so scripts can
/// wait for a state with `head -1`.
fn describe(job: &JobInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", job.job, job.state);
    let _ = writeln!(out, "  name:     {}", job.name);
    let _ = writeln!(out, "  attempt:  {}", job.attempt);
    let _ = writeln!(out, "  failures: {}", job.failures);
    if let Some(cause) = &job.last_failure {
        let _ = writeln!(out, "  last failure: {cause}");
    }
    let _ = writeln!(out, "  {:<20} {:>15} {:>15} {:>10}", "vertex", "records in", "records out", "late");
    for (name, m) in &job.vertices {
        let late = m.late_records_dropped + m.late_records_routed;
        let _ = writeln!(out, "  {:<20} {:>15} {:>15} {:>10}", name, m.records_in, m.records_out, late);
    }
    let _ = writeln!(out, "  {:<24} {:<10} taskmanager", "subtask", "state");
    for t in &job.subtasks {
        let subtask = format!("{} ({}/{})", t.name, t.index + 1, t.parallelism);
        let tm = t.task_manager.map_or_else(|| "-".to_owned(), |tm| tm.to_string());
        let _ = writeln!(out, "  {:<24} {:<10} {}", subtask, format!("{:?}", t.state).to_lowercase(), tm);
    }
    out
}

pub fn cancel(address: &str, cluster: ClusterId, job: &str) -> ExitCode {
    let job = match parse_job_id(job) {
        Ok(job) => job,
        Err(code) => return code,
    };
    match request(address, cluster, ClientRequest::Cancel { job }) {
        Ok(ClientResponse::CancelRequested { job }) => {
            println!("cancelling {job}");
            ExitCode::SUCCESS
        }
        Ok(ClientResponse::UnknownJob { job }) => {
            eprintln!("error: the JobManager knows no running {job}");
            ExitCode::from(BAD_INPUT)
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
}

pub fn task_managers(address: &str, cluster: ClusterId) -> ExitCode {
    match request(address, cluster, ClientRequest::TaskManagers) {
        Ok(ClientResponse::TaskManagers { task_managers }) => {
            println!("{:<14} {:<22} {:>5} {:>5}  labels", "taskmanager", "data address", "slots", "free");
            for tm in task_managers {
                let labels: Vec<String> = tm.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{:<14} {:<22} {:>5} {:>5}  {}",
                    tm.id.to_string(),
                    tm.address,
                    tm.slots,
                    tm.free_slots,
                    labels.join(",")
                );
            }
            ExitCode::SUCCESS
        }
        Ok(other) => unexpected(&other),
        Err(code) => code,
    }
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
    fn job_ids_parse_with_or_without_prefix() {
        assert_eq!(parse_job_id("3").ok(), Some(JobId(3)));
        assert_eq!(parse_job_id("job-3").ok(), Some(JobId(3)));
        assert!(parse_job_id("x").is_err());
    }
}
