//! The JobManager's REST API on a real `rivulet jobmanager` process: every route, the answers to
//! mistakes and to hostile input (which must leave the JobManager answering), and where the
//! JobManager's settings come from (flags, environment, config file) and its data directory lock.
//!
//! Nothing here waits for time to pass: waits are bounded polls of a state the JobManager reports.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{start_job_manager, start_task_manager, Processes};
use hyper::Method;
use rivulet_node::rest::api::{
    ErrorBody, JobDetails, JobList, JobRef, Overview, SavepointDetails, SavepointRef, TaskManagerList,
};
use rivulet_node::rest::client::{self, Reply};
use serde::de::DeserializeOwned;

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

/// Polls before a test gives up on a state (with the sleep below: about a minute).
const POLLS_MAX: usize = 600;
const POLL_SLEEP: Duration = Duration::from_millis(100);

/// A bounded job that finishes in moments.
const SHORT_JOB: &str =
    "[job]\nname = \"short\"\n\n[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = 1000\n\n\
                         [[sink]]\nname = \"count\"\ntype = \"count\"\ninput = \"g\"\n";

/// A job that runs for hours: something to cancel.
const LONG_JOB: &str =
    "[job]\nname = \"long\"\n\n[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = 1_000_000_000\n\
                        rate = 10\n\n[[sink]]\nname = \"count\"\ntype = \"count\"\ninput = \"g\"\n";

fn call(rest: &str, method: Method, target: &str, body: &str) -> Reply {
    smol::block_on(client::request(rest, method.clone(), target, body.as_bytes().to_vec()))
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

fn get<T: DeserializeOwned>(rest: &str, target: &str) -> T {
    let reply = call(rest, Method::GET, target, "");
    assert_eq!(reply.status, 200, "GET {target}: {}", String::from_utf8_lossy(&reply.body));
    reply.json().unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// Asserts an error answer: its status, and that its `error` contains `needle`.
fn assert_error(reply: &Reply, status: u16, needle: &str) {
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status, status, "{body}");
    let error: ErrorBody = reply.json().unwrap_or_else(|e| panic!("an error body as JSON: {e}: {body}"));
    assert!(error.error.contains(needle), "{needle:?} not in {:?}", error.error);
}

/// Polls `GET /jobs/{id}` until the job's state is `state`.
fn wait_for_state(rest: &str, job: &str, state: &str) -> JobDetails {
    for _ in 0..POLLS_MAX {
        let details: JobDetails = get(rest, &format!("/jobs/{job}"));
        if details.state == state {
            return details;
        }
        std::thread::sleep(POLL_SLEEP);
    }
    panic!("{job} did not become {state} after {POLLS_MAX} polls");
}

/// Sends `bytes` on a fresh connection and returns all that comes back until the server closes
/// it (nothing if it closed without answering). A well-formed request must ask for
/// `Connection: close`; with `hang_up`, the client closes its sending side after `bytes`, as a
/// peer that goes away in the middle of a request does.
fn raw_exchange_with(rest: &str, bytes: &[u8], hang_up: bool) -> String {
    let mut stream = TcpStream::connect(rest).expect("the REST API accepts connections");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = stream.write_all(bytes);
    if hang_up {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn raw_exchange(rest: &str, bytes: &[u8]) -> String {
    raw_exchange_with(rest, bytes, false)
}

#[test]
fn every_route_answers_with_json() {
    let mut processes = Processes(Vec::new());
    let jm = start_job_manager(&mut processes, &[]);
    let rest = jm.rest.clone().unwrap();
    start_task_manager(&mut processes, &jm.listen, "7", 2);
    for poll in 0.. {
        let list: TaskManagerList = get(&rest, "/taskmanagers");
        if list.taskmanagers.len() == 1 {
            let tm = &list.taskmanagers[0];
            assert_eq!((tm.id.as_str(), tm.slots), ("tm-7", 2));
            assert_eq!(tm.labels.get("site").map(String::as_str), Some("test"));
            assert!(tm.address.starts_with("127.0.0.1:"), "{}", tm.address);
            break;
        }
        assert!(poll < POLLS_MAX, "the TaskManager did not register");
        std::thread::sleep(POLL_SLEEP);
    }

    let overview: Overview = get(&rest, "/overview");
    assert_eq!((overview.taskmanagers, overview.slots_total, overview.jobs_running), (1, 2, 0));
    assert_eq!(overview.version, env!("CARGO_PKG_VERSION"));

    // Submit: 201 and the new job's id.
    let reply = call(&rest, Method::POST, "/jobs?parallelism=2", SHORT_JOB);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json::<JobRef>().unwrap(), JobRef { id: "job-1".into() });

    let list: JobList = get(&rest, "/jobs");
    assert_eq!(list.jobs.len(), 1);
    assert_eq!((list.jobs[0].id.as_str(), list.jobs[0].name.as_str()), ("job-1", "short"));

    let details = wait_for_state(&rest, "job-1", "finished");
    assert_eq!(details.id, "job-1");
    assert_eq!(details.vertices.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["g", "count"]);
    assert_eq!(details.vertices[0].records_out, 1000);
    assert_eq!(details.vertices[1].records_in, 1000);
    assert_eq!(details.subtasks.len(), 2, "parallelism 2, one chain");
    assert!(details
        .subtasks
        .iter()
        .all(|t| t.state == "finished" && t.taskmanager.as_deref() == Some("tm-7")));
    // The numeric form of an id names the same job.
    assert_eq!(get::<JobDetails>(&rest, "/jobs/1").id, "job-1");

    // An ended job cannot be cancelled: 409, naming its state.
    assert_error(
        &call(&rest, Method::POST, "/jobs/job-1/cancel", ""),
        409,
        "job-1 is not running: it is finished",
    );

    // A running job can: 202, then it ends canceled.
    let reply = call(&rest, Method::POST, "/jobs", LONG_JOB);
    let long = reply.json::<JobRef>().unwrap().id;
    wait_for_state(&rest, &long, "running");
    let reply = call(&rest, Method::POST, &format!("/jobs/{long}/cancel"), "");
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json::<JobRef>().unwrap().id, long);
    wait_for_state(&rest, &long, "canceled");

    let overview: Overview = get(&rest, "/overview");
    assert_eq!((overview.jobs_running, overview.jobs_finished, overview.jobs_canceled), (0, 1, 1));
}

#[test]
fn mistakes_get_4xx_with_a_json_error_naming_them() {
    let mut processes = Processes(Vec::new());
    let rest = start_job_manager(&mut processes, &[]).rest.unwrap();

    assert_error(&call(&rest, Method::GET, "/jobs/job-42", ""), 404, "no job job-42");
    assert_error(&call(&rest, Method::POST, "/jobs/42/cancel", ""), 404, "no job job-42");
    assert_error(&call(&rest, Method::GET, "/jobs/job-x", ""), 400, "\"job-x\" is not a job id");
    assert_error(&call(&rest, Method::GET, "/jobz", ""), 404, "no route /jobz");
    assert_error(&call(&rest, Method::DELETE, "/jobs/3", ""), 405, "DELETE /jobs/3 is not served");
    assert_error(&call(&rest, Method::GET, "/jobs/3/cancel", ""), 405, "takes POST");
    assert_error(&call(&rest, Method::POST, "/jobs?parallelism=0", SHORT_JOB), 400, "`parallelism` must be");
    assert_error(&call(&rest, Method::POST, "/jobs?p=2", SHORT_JOB), 400, "unknown query parameter \"p\"");
    assert_error(&call(&rest, Method::POST, "/jobs", ""), 400, "the body is empty");
    // A job file the JobManager refuses: its message, with line and column.
    let bad = "[[source]]\nname = \"g\"\ntype = \"generator\"\ncount = \"many\"\n";
    assert_error(
        &call(&rest, Method::POST, "/jobs", bad),
        400,
        "line 4, column 9: `count`: invalid type: string \"many\", expected an integer",
    );

    // 405 carries the methods the route takes.
    let answer = raw_exchange(
        &rest,
        b"PUT /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("allow: get, post\r\n"), "{answer}");
    // 201 carries where the new job is.
    let request = format!(
        "POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{SHORT_JOB}",
        SHORT_JOB.len()
    );
    let answer = raw_exchange(&rest, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("location: /jobs/job-1\r\n"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("content-type: application/json\r\n"), "{answer}");
    assert!(answer.ends_with("{\"id\":\"job-1\"}"), "{answer}");
}

#[test]
fn hostile_requests_are_refused_and_the_job_manager_keeps_answering() {
    let mut processes = Processes(Vec::new());
    let rest = start_job_manager(&mut processes, &[]).rest.unwrap();

    // A body declared larger than a job file may be: 413 before a byte of it is read.
    let answer = raw_exchange(
        &rest,
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("at most 1048576 are accepted"), "{answer}");
    // A chunked body that turns out larger: 413 too.
    let chunk = "x".repeat(0x10000);
    let mut request =
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..17 {
        request.extend_from_slice(format!("10000\r\n{chunk}\r\n").as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(&rest, &request);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A body that is not text.
    let answer = raw_exchange(
        &rest,
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n\xff\xfe",
    );
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("not UTF-8"), "{answer}");
    // Not HTTP at all: 400 or a closed connection.
    for garbage in
        [&b"GARBAGE\r\n\r\n"[..], b"\x00\x01\x02\x03\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\r\n\r\n\r\n"]
    {
        let answer = raw_exchange_with(&rest, garbage, true);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{garbage:?}: {answer}");
    }
    // A head larger than the limit: 431 or a closed connection.
    let huge = format!(
        "GET /overview HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Filler: {}\r\n\r\n",
        "y".repeat(64 * 1024)
    );
    let answer = raw_exchange(&rest, huge.as_bytes());
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A conflicting framing (both lengths): refused.
    let answer = raw_exchange(
        &rest,
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    );
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{answer}");
    // A connection closed in the middle of a head.
    assert_eq!(raw_exchange_with(&rest, b"GET /overv", true), "");

    // Still serving, and nothing was submitted by any of that.
    let overview: Overview = get(&rest, "/overview");
    assert_eq!(overview.jobs_running + overview.jobs_failed + overview.jobs_finished, 0);
    // Keep-alive: two requests on one connection.
    let answer = raw_exchange(
        &rest,
        b"GET /jobs HTTP/1.1\r\nHost: x\r\n\r\nGET /taskmanagers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert!(processes.0[0].try_wait().unwrap().is_none(), "the JobManager is alive");
}

fn rivulet_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(RIVULET);
    command
        .args(args)
        .env_remove("RIVULET_CONFIG")
        .env_remove("RIVULET_REST_LISTEN")
        .env_remove("RIVULET_LISTEN");
    for (key, value) in env {
        command.env(key, value);
    }
    command.stdin(Stdio::null()).output().expect("rivulet runs")
}

#[test]
fn flags_beat_the_environment_which_beats_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jm.toml");
    // Addresses nothing can listen on, so a JobManager that used one would fail at once.
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nrest_listen = \"not-an-address\"\n").unwrap();
    let config = config.to_str().unwrap();

    let mut processes = Processes(Vec::new());
    // The environment's REST address wins over the file's.
    let jm = common::start_job_manager_with_env(
        &mut processes,
        &["--config", config],
        &[("RIVULET_REST_LISTEN", "127.0.0.1:0")],
    );
    assert!(jm.rest.is_some());
    // The flag wins over the environment.
    let jm = common::start_job_manager_with_env(
        &mut processes,
        &["--config", config, "--rest-listen", "127.0.0.1:0"],
        &[("RIVULET_REST_LISTEN", "also-not-an-address")],
    );
    let overview: Overview = get(jm.rest.as_deref().unwrap(), "/overview");
    assert_eq!(overview.taskmanagers, 0);
    // With only the file, its value is used: and it fails, naming it.
    let out = rivulet_with(&["jobmanager", "--config", config], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: cannot serve the REST API on not-an-address"), "{stderr}");
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jm.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nrest_port = 8081\n").unwrap();
    let out = rivulet_with(&["jobmanager", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("error: {}: line 2, column 1: unknown field `rest_port`", config.display());
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    // The same for a TaskManager's file, found through the environment.
    std::fs::write(&config, "slots = 2\nlabel = { tier = \"edge\" }\n").unwrap();
    let out = rivulet_with(&["taskmanager"], &[("RIVULET_CONFIG", config.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2, column 1: unknown field `label`"), "{stderr}");
}

#[test]
fn two_job_managers_never_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("jm-data");
    let data = data_dir.to_str().unwrap();
    let mut processes = Processes(Vec::new());
    let first = start_job_manager(&mut processes, &["--data-dir", data]);
    assert!(data_dir.join("LOCK").is_file(), "created with its lock file");
    let out = rivulet_with(
        &["jobmanager", "--listen", "127.0.0.1:0", "--rest-listen", "none", "--data-dir", data],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pid = processes.0[first.index].id();
    let expected = format!("error: the data directory {data} is in use by another JobManager (pid {pid})");
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "it never listened");

    // Once the first is gone (however it ended), the directory is free again.
    processes.0[first.index].kill().unwrap();
    processes.0[first.index].wait().unwrap();
    let second = start_job_manager(&mut processes, &["--data-dir", data, "--rest-listen", "none"]);
    assert!(second.rest.is_none());
}

#[test]
fn every_cluster_command_has_help() {
    for (command, flags) in [
        (
            "jobmanager",
            &[
                "--listen",
                "--rest-listen",
                "--data-dir",
                "--config",
                "--heartbeat-timeout",
                "--checkpoint-store",
                "RIVULET_DATA_DIR",
            ][..],
        ),
        ("taskmanager", &["--jobmanager", "--slots", "--label", "--config", "RIVULET_CONFIG"]),
        ("submit", &["--rest", "--parallelism", "--from-savepoint", "RIVULET_REST"]),
        ("list", &["--rest"]),
        ("status", &["--rest"]),
        ("cancel", &["--rest"]),
        ("stop", &["--rest", "--savepoint", "[DIR]"]),
        ("savepoint", &["--rest", "[DIR]"]),
        ("taskmanagers", &["--rest"]),
    ] {
        let out = rivulet_with(&[command, "--help"], &[]);
        assert_eq!(out.status.code(), Some(0), "{command} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            assert!(help.contains(flag), "`rivulet {command} --help` lacks {flag}:\n{help}");
        }
    }
}

#[test]
fn savepoints_and_stops_over_rest_and_their_mistakes() {
    let mut processes = Processes(Vec::new());
    let addresses = start_job_manager(&mut processes, &[]);
    let rest = addresses.rest.unwrap();
    start_task_manager(&mut processes, &addresses.listen, "1", 2);
    for poll in 0.. {
        if !get::<TaskManagerList>(&rest, "/taskmanagers").taskmanagers.is_empty() {
            break;
        }
        assert!(poll < POLLS_MAX, "the TaskManager did not register");
        std::thread::sleep(POLL_SLEEP);
    }
    let job: JobRef = call(&rest, Method::POST, "/jobs", LONG_JOB).json().unwrap();
    let job = job.id;
    wait_for_state(&rest, &job, "running");
    let savepoints = |body: &str| call(&rest, Method::POST, &format!("/jobs/{job}/savepoints"), body);

    // No directory, and this JobManager has no data directory for a default one.
    assert_error(&savepoints(""), 409, "no directory was given");
    assert_error(&savepoints(r#"{"directory": "relative/dir"}"#), 409, "not an absolute path");
    assert_error(&savepoints(r#"{"dir": "/tmp"}"#), 400, "unknown field `dir`");
    assert_error(&savepoints("{"), 400, "the savepoint request is not valid");
    assert_error(
        &call(&rest, Method::GET, &format!("/jobs/{job}/savepoints/1"), ""),
        404,
        "no savepoint request 1",
    );
    assert_error(&call(&rest, Method::POST, "/jobs/job-9/savepoints", ""), 404, "no job job-9");

    // A savepoint of a job without [job.checkpoints]: taken, written, and the job runs on.
    let dir = tempfile::tempdir().unwrap();
    let body = format!(r#"{{"directory": {:?}}}"#, dir.path().to_str().unwrap());
    let reply = savepoints(&body);
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    let triggered: SavepointRef = reply.json().unwrap();
    assert_eq!(triggered, SavepointRef { id: job.clone(), request: 1 });
    let target = format!("/jobs/{job}/savepoints/1");
    let details = (0..POLLS_MAX)
        .map(|_| {
            std::thread::sleep(POLL_SLEEP);
            get::<SavepointDetails>(&rest, &target)
        })
        .find(|d| d.state != "in-progress")
        .expect("the savepoint ends");
    assert_eq!(details.state, "completed", "{details:?}");
    let path = details.path.clone().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), details.bytes);
    let status: JobDetails = get(&rest, &format!("/jobs/{job}"));
    assert_eq!(status.state, "running");
    assert_eq!(status.savepoints, vec![details.clone()]);
    assert_eq!(status.checkpoints.map(|c| (c.completed, c.latest)), Some((1, details.checkpoint)));

    // Resuming: a job that does not fit the savepoint, files that are not one.
    let encoded = rivulet_node::rest::router::percent_encode(&path);
    let other = LONG_JOB.replace("name = \"count\"", "name = \"tally\"");
    let target = format!("/jobs?savepoint={encoded}");
    assert_error(
        &call(&rest, Method::POST, &target, &other),
        400,
        "runs `g -> count`; this job's runs `g -> tally`",
    );
    let missing = format!("/jobs?savepoint={}", dir.path().join("none.rvsp").display());
    assert_error(&call(&rest, Method::POST, &missing, LONG_JOB), 400, "cannot read the savepoint");
    assert_error(&call(&rest, Method::POST, "/jobs?savepoint=x.rvsp", LONG_JOB), 400, "not absolute");
    std::fs::write(dir.path().join("junk.rvsp"), b"RVSP but not really").unwrap();
    let junk = format!("/jobs?savepoint={}", dir.path().join("junk.rvsp").display());
    assert_error(
        &call(&rest, Method::POST, &junk, LONG_JOB),
        400,
        "junk.rvsp: the savepoint has 19 bytes, fewer than its 22-byte header",
    );
    let reply = call(&rest, Method::POST, &format!("/jobs?savepoint={encoded}"), LONG_JOB);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    let resumed = reply.json::<JobRef>().unwrap().id;
    let details = wait_for_state(&rest, &resumed, "running");
    assert_eq!(details.checkpoints.and_then(|c| c.restored_from), status.savepoints[0].checkpoint);

    // Stop drains: the job finishes. Then it is no longer running.
    for job in [&job, &resumed] {
        let reply = call(&rest, Method::POST, &format!("/jobs/{job}/stop"), "");
        assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
        wait_for_state(&rest, job, "finished");
        assert_error(&call(&rest, Method::POST, &format!("/jobs/{job}/stop"), ""), 409, "is not running");
        assert_error(&savepoints_of(&rest, job), 409, "is not running");
    }
}

fn savepoints_of(rest: &str, job: &str) -> Reply {
    call(rest, Method::POST, &format!("/jobs/{job}/savepoints"), "")
}
