//! Real processes on loopback: a JobManager and two TaskManagers run a bounded job submitted with
//! `rivulet submit`, and its counters match what `rivulet run` reports for the same job. The
//! client commands reach the JobManager through its REST API (`--rest`).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{start_job_manager, start_task_manager, Processes};

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");

/// Status polls before the test gives up (with the sleep below: about a minute).
const STATUS_POLLS_MAX: usize = 600;
const POLL_SLEEP: Duration = Duration::from_millis(100);

const JOB: &str = r#"
[job]
name = "cluster-test"
parallelism = 2

[[source]]
name = "readings"
type = "generator"
count = 20_000
keys = 5
values = 100
records_per_ms = 10
event_time = "ts_ms"
out_of_orderness = "100ms"

[[operator]]
name = "by_key"
type = "key_by"
input = "readings"
key = "key"

[[operator]]
name = "per_second"
type = "window"
input = "by_key"
window = "tumbling"
size = "1s"

[operator.aggregates]
readings = "count()"

[[sink]]
name = "count"
type = "count"
input = "per_second"
"#;

fn rivulet(args: &[&str]) -> Output {
    Command::new(RIVULET).args(args).env_remove("RIVULET_REST").output().expect("rivulet runs")
}

/// Starts a JobManager on free ports; its cluster address (for TaskManagers) and its REST address
/// (for the client commands).
fn start_cluster_job_manager(processes: &mut Processes) -> (String, String) {
    let addresses = start_job_manager(processes, &[]);
    (addresses.listen, addresses.rest.expect("the REST API is on by default"))
}

/// Per vertex, (records in, records out) from `rivulet run`'s summary; `None` where it shows `-`
/// (a source's input, a sink's output).
fn run_counters(job: &Path) -> Vec<(String, Option<u64>, Option<u64>)> {
    let out = rivulet(&["run", job.to_str().unwrap(), "--progress", "off"]);
    assert!(out.status.success(), "rivulet run: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let number = |s: &str| (s != "-").then(|| s.replace(',', "").parse::<u64>().unwrap());
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("vertex"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), number(f[3]), number(f[4]))
        })
        .collect()
}

/// Per vertex, (records in, records out) from `rivulet status`.
fn status_counters(status: &str) -> Vec<(String, u64, u64)> {
    status
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("vertex"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("subtask"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

/// Polls `rivulet status` until the job's state is no longer running; the last status.
fn wait_for_end(rest: &str, job: &str) -> String {
    for _ in 0..STATUS_POLLS_MAX {
        let out = rivulet(&["status", job, "--rest", rest]);
        assert!(out.status.success(), "rivulet status: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let state = text.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("");
        if matches!(state, "finished" | "failed" | "canceled") {
            return text;
        }
        std::thread::sleep(POLL_SLEEP);
    }
    panic!("{job} did not end after {STATUS_POLLS_MAX} polls");
}

#[test]
fn a_job_submitted_to_a_cluster_counts_what_run_counts() {
    let dir = tempfile::tempdir().unwrap();
    let job_path = dir.path().join("job.toml");
    std::fs::write(&job_path, JOB).unwrap();
    let job_file = job_path.to_str().unwrap();

    let mut processes = Processes(Vec::new());
    let (job_manager, rest) = start_cluster_job_manager(&mut processes);
    start_task_manager(&mut processes, &job_manager, "1", 2);
    start_task_manager(&mut processes, &job_manager, "2", 2);

    // Both TaskManagers offer their slots before the job asks for four of them.
    for poll in 0.. {
        let out = rivulet(&["taskmanagers", "--rest", &rest]);
        let listed = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("tm-")).count();
        if listed == 2 {
            break;
        }
        assert!(poll < STATUS_POLLS_MAX, "the TaskManagers did not register");
        std::thread::sleep(POLL_SLEEP);
    }

    let out = rivulet(&["submit", job_file, "--rest", &rest, "--parallelism", "2"]);
    assert!(out.status.success(), "rivulet submit: {}", String::from_utf8_lossy(&out.stderr));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(job, "job-1");

    let status = wait_for_end(&rest, &job);
    assert!(status.starts_with("job-1 finished"), "{status}");
    let expected = run_counters(&job_path);
    assert_eq!(expected.len(), 4, "the run summary lists every vertex");
    assert_eq!(status_counters(&status).len(), expected.len(), "{status}");
    // The same counters wherever `run` shows one.
    let reported: Vec<(String, Option<u64>, Option<u64>)> = status_counters(&status)
        .into_iter()
        .zip(&expected)
        .map(|((name, records_in, records_out), (_, shown_in, shown_out))| {
            (name, shown_in.map(|_| records_in), shown_out.map(|_| records_out))
        })
        .collect();
    assert_eq!(reported, expected, "{status}");
    // Both TaskManagers ran a part of it.
    assert!(status.contains("tm-1") && status.contains("tm-2"), "{status}");
}

#[test]
fn a_bad_job_file_is_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let job_path = dir.path().join("bad.toml");
    std::fs::write(&job_path, "[[source]]\nname = \"g\"\ntype = \"no-such-type\"\n").unwrap();
    let mut processes = Processes(Vec::new());
    let (_, rest) = start_cluster_job_manager(&mut processes);
    let out = rivulet(&["submit", job_path.to_str().unwrap(), "--rest", &rest]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.starts_with(&format!("error: {}: ", job_path.display())), "{stderr}");
    assert!(stderr.contains("no-such-type"), "the JobManager's message names the mistake: {stderr}");
    let out = rivulet(&["status", "42", "--rest", &rest]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: the JobManager knows no job-42\n");
    let out = rivulet(&["cancel", "job-42", "--rest", &rest]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: the JobManager knows no running job-42\n");
    let out = rivulet(&["status", "forty-two", "--rest", &rest]);
    assert_eq!(out.status.code(), Some(2));
    // The REST address may be written as a URL.
    let out = rivulet(&["list", "--rest", &format!("http://{rest}/")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("job "));
}

#[test]
fn no_job_manager_is_exit_code_1() {
    // A port nothing listens on: bind one, then let it go.
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let out = rivulet(&["list", "--rest", &address]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.starts_with(&format!("error: cannot connect to the JobManager's REST API at {address}: ")),
        "{stderr}"
    );
    // The same with the address from the environment.
    let out = Command::new(RIVULET).args(["taskmanagers"]).env("RIVULET_REST", &address).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_task_manager_killed_mid_job_is_replaced_by_a_restart_on_the_other() {
    // The same job, paced so that it is still running when a TaskManager dies, with its windows
    // also written to files.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let file_sink = format!(
        "\n[[sink]]\nname = \"files\"\ntype = \"file\"\ninput = \"per_second\"\npath = {}\nformat = \"jsonl\"\n",
        common::toml_path(&out_dir)
    );
    let paced = JOB.replace("count = 20_000\n", "count = 30_000\nrate = 10_000\n") + &file_sink;
    let job_path = dir.path().join("paced.toml");
    std::fs::write(&job_path, &paced).unwrap();

    let mut processes = Processes(Vec::new());
    let (job_manager, rest) = start_cluster_job_manager(&mut processes);
    start_task_manager(&mut processes, &job_manager, "1", 8);
    let victim = start_task_manager(&mut processes, &job_manager, "2", 8);
    for poll in 0.. {
        let out = rivulet(&["taskmanagers", "--rest", &rest]);
        if String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("tm-")).count() == 2 {
            break;
        }
        assert!(poll < STATUS_POLLS_MAX, "the TaskManagers did not register");
        std::thread::sleep(POLL_SLEEP);
    }
    let out = rivulet(&["submit", job_path.to_str().unwrap(), "--rest", &rest]);
    assert!(out.status.success(), "rivulet submit: {}", String::from_utf8_lossy(&out.stderr));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // Wait until the job runs on both TaskManagers, then SIGKILL the second.
    for poll in 0.. {
        let out = rivulet(&["status", &job, "--rest", &rest]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.starts_with(&format!("{job} running")) && text.contains("tm-2") {
            break;
        }
        assert!(poll < STATUS_POLLS_MAX, "the job did not start: {text}");
        std::thread::sleep(POLL_SLEEP);
    }
    processes.0[victim].kill().expect("SIGKILL the TaskManager");
    let _ = processes.0[victim].wait();

    let status = wait_for_end(&rest, &job);
    assert!(status.starts_with(&format!("{job} finished")), "{status}");
    // The closed connections tell the JobManager and the survivor at once (whichever reports
    // first names the cause); the job restarted on the survivor.
    let cause = status.lines().find(|l| l.trim_start().starts_with("last failure:")).unwrap_or_default();
    assert!(status.contains("attempt:  1") && cause.contains("tm-2"), "{status}");
    let subtask_lines: Vec<&str> =
        status.lines().skip_while(|l| !l.trim_start().starts_with("subtask")).skip(1).collect();
    assert!(!subtask_lines.is_empty() && subtask_lines.iter().all(|l| l.ends_with("tm-1")), "{status}");
    // Each TaskManager publishes its part once it hears that the job ended (just after the status
    // says so). Exactly the final attempt's parts are there: the killed TaskManager's staging file
    // went with the publication.
    let windows = status_counters(&status).iter().find(|v| v.0 == "per_second").map(|v| v.2).unwrap();
    for poll in 0.. {
        let names = common::file_names(&out_dir);
        if names == ["part-0.jsonl", "part-1.jsonl"] {
            break;
        }
        assert!(poll < STATUS_POLLS_MAX, "the output was not published: {names:?}");
        std::thread::sleep(POLL_SLEEP);
    }
    let lines: usize = ["part-0.jsonl", "part-1.jsonl"]
        .iter()
        .map(|p| std::fs::read_to_string(out_dir.join(p)).unwrap().lines().count())
        .sum();
    assert_eq!(lines as u64, windows, "every window result once, none twice");
    // The restarted attempt ran from the beginning: the same counters as `rivulet run`.
    let expected = run_counters(&job_path);
    let reported: Vec<(String, Option<u64>, Option<u64>)> = status_counters(&status)
        .into_iter()
        .zip(&expected)
        .map(|((name, records_in, records_out), (_, shown_in, shown_out))| {
            (name, shown_in.map(|_| records_in), shown_out.map(|_| records_out))
        })
        .collect();
    assert_eq!(reported, expected, "{status}");
}
