//! The benchmarks that run real `rivulet` processes on loopback: W2-net (the data plane between
//! two TaskManager processes) and F1 (the footprint of idle nodes); R1 (recovery) is in
//! `recovery.rs`.
//!
//! Each run starts a fresh cluster, so that every run's peak RSS is its own and nothing of one run
//! (open connections, a finished job's history) weighs on the next. Results are JSON lines like the
//! in-process workloads', and each benchmark ends with a summary line of medians.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rivulet_core::ids::JobId;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo};

use crate::nodes::{cpu_seconds, machine_busy_seconds, status_kb, JobManagerClient, Nodes};

/// W2-net's job: W2 with the source and the windows on differently labelled TaskManagers.
const W2_NET_JOB: &str = include_str!("../jobs/w2-net.toml");
const W2_NET_RECORDS: u64 = 20_000_000;
const W2_NET_WINDOW_RESULTS: u64 = 2_000_000;

/// Slots per TaskManager: at parallelism 2 the cloud TaskManager runs two window chains, and
/// either may run the other's subtasks while they are placed.
const W2_NET_SLOTS: u16 = 4;

/// How often the driver asks whether the job has finished; the error this adds to a run's time is
/// at most this.
const STATUS_POLL: Duration = Duration::from_millis(5);

/// A run that takes longer than this has gone wrong.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// How long F1 leaves the nodes idle after the TaskManager registered, before reading their RSS.
const F1_IDLE: Duration = Duration::from_secs(1);

/// Where the nodes' logs go, to read when a run fails: `bench-nodes/` in this program's target
/// directory (`target/bench-nodes/`), whichever node binary runs.
pub fn log_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this program")?;
    let target = exe.parent().and_then(Path::parent).context("this program's target directory")?;
    Ok(target.join("bench-nodes"))
}

/// W2-net at `parallelism`, `runs` times, each on a fresh cluster of a JobManager and two
/// TaskManagers (`tier=edge` for the source, `tier=cloud` for the windows and the sink).
pub fn w2_net(binary: &Path, parallelism: u16, runs: usize) -> Result<()> {
    let mut seconds = Vec::new();
    let mut rss_max = [0u64; 2];
    let mut others_max = 0f64;
    for run in 1..=runs {
        let nodes = Nodes::new(&log_dir()?)?;
        let (jm, address, _) = nodes.start_job_manager(binary)?;
        let (edge, _) = nodes.start_task_manager(binary, &address, 1, W2_NET_SLOTS, &["tier=edge"])?;
        let (cloud, _) = nodes.start_task_manager(binary, &address, 2, W2_NET_SLOTS, &["tier=cloud"])?;
        let mut client = JobManagerClient::connect(&address)?;

        // The driver's own process too: its polling is part of what the run costs the machine.
        let pids = [jm, edge, cloud, std::process::id()];
        let cpu_before = CpuSnapshot::take(&pids)?;
        let started = Instant::now();
        let submit = ClientRequest::Submit {
            job_file: W2_NET_JOB.to_owned(),
            parallelism: Some(parallelism),
            from_savepoint: None,
        };
        let job = match client.request(&submit)? {
            ClientResponse::Submitted { job } => job,
            other => bail!("the JobManager did not take W2-net: {other:?}"),
        };
        let info = wait_for_end(&mut client, job, &nodes)?;
        let elapsed = started.elapsed().as_secs_f64();
        let (cpu, others) = CpuSnapshot::take(&pids)?.since(&cpu_before);
        check_w2_net(&info).with_context(|| format!("W2-net run {run}; logs in {}", nodes.logs()))?;
        let rss = [status_kb(edge, "VmHWM")?, status_kb(cloud, "VmHWM")?];
        drop(nodes);

        println!(
            "{{\"workload\":\"W2-net\",\"parallelism\":{parallelism},\"run\":{run},\"records\":{W2_NET_RECORDS},\
             \"seconds\":{elapsed:.4},\"records_per_second\":{:.0},\"edge_tm_peak_rss_kb\":{},\
             \"cloud_tm_peak_rss_kb\":{},\"window_results\":{W2_NET_WINDOW_RESULTS},\
             \"cpu_seconds\":{{\"edge_tm\":{:.2},\"cloud_tm\":{:.2},\"jobmanager\":{:.2},\"others\":{:.2}}}}}",
            W2_NET_RECORDS as f64 / elapsed,
            rss[0],
            rss[1],
            cpu[1],
            cpu[2],
            cpu[0],
            others,
        );
        seconds.push(elapsed);
        others_max = others_max.max(others);
        rss_max = [rss_max[0].max(rss[0]), rss_max[1].max(rss[1])];
    }
    let median_seconds = median(&mut seconds);
    println!(
        "{{\"summary\":true,\"workload\":\"W2-net\",\"parallelism\":{parallelism},\"runs\":{runs},\
         \"median_seconds\":{median_seconds:.4},\"records_per_second\":{:.0},\
         \"edge_tm_peak_rss_kb_max\":{},\"cloud_tm_peak_rss_kb_max\":{},\"others_cpu_seconds_max\":{others_max:.2}}}",
        W2_NET_RECORDS as f64 / median_seconds,
        rss_max[0],
        rss_max[1]
    );
    Ok(())
}

/// The CPU seconds used so far by some processes, and by the whole machine. Over a run, the
/// machine's time less the run's own processes' is what others ran meanwhile: a run measured on a
/// busy machine shows it.
struct CpuSnapshot {
    processes: Vec<f64>,
    machine: f64,
}

impl CpuSnapshot {
    fn take(pids: &[u32]) -> Result<CpuSnapshot> {
        let processes = pids.iter().map(|&pid| cpu_seconds(pid)).collect::<Result<Vec<f64>>>()?;
        Ok(CpuSnapshot { processes, machine: machine_busy_seconds()? })
    }

    /// The CPU seconds each process used since `earlier`, and what everything else used meanwhile.
    fn since(&self, earlier: &CpuSnapshot) -> (Vec<f64>, f64) {
        let used: Vec<f64> = self.processes.iter().zip(&earlier.processes).map(|(a, b)| a - b).collect();
        let others = self.machine - earlier.machine - used.iter().sum::<f64>();
        (used, others)
    }
}

/// Polls the job's status until it ends; its final status.
fn wait_for_end(client: &mut JobManagerClient, job: JobId, nodes: &Nodes) -> Result<JobInfo> {
    let started = Instant::now();
    loop {
        let info = match client.request(&ClientRequest::JobStatus { job })? {
            ClientResponse::Job { job } => job,
            other => bail!("unexpected answer to a status request: {other:?}"),
        };
        match info.state.as_str() {
            "finished" => return Ok(info),
            "failed" | "canceled" => bail!(
                "{job} ended {}: {}; logs in {}",
                info.state,
                info.last_failure.as_deref().unwrap_or("no cause given"),
                nodes.logs()
            ),
            _ if started.elapsed() > JOB_TIMEOUT => {
                bail!("{job} did not finish within {JOB_TIMEOUT:?}; logs in {}", nodes.logs())
            }
            _ => std::thread::sleep(STATUS_POLL),
        }
    }
}

/// A run only counts if it did W2-net's work, the way W2-net places it.
fn check_w2_net(info: &JobInfo) -> Result<()> {
    ensure!(info.attempt == 0 && info.failures == 0, "the job restarted ({} failures)", info.failures);
    let records_out = |vertex: &str| {
        info.vertices.iter().find(|(name, _)| name == vertex).map(|(_, m)| m.records_out).unwrap_or(0)
    };
    ensure!(records_out("g") == W2_NET_RECORDS, "the source emitted {} records", records_out("g"));
    ensure!(
        records_out("windows") == W2_NET_WINDOW_RESULTS,
        "the windows emitted {} results, expected {W2_NET_WINDOW_RESULTS}",
        records_out("windows")
    );
    let task_managers = |prefix: &str| {
        let mut tms: Vec<_> =
            info.subtasks.iter().filter(|t| t.name.starts_with(prefix)).map(|t| t.task_manager).collect();
        tms.dedup();
        tms
    };
    let (sources, windows) = (task_managers("g"), task_managers("windows"));
    ensure!(
        sources.iter().all(|tm| !windows.contains(tm)),
        "the source ran on {sources:?} and the windows on {windows:?}: not in different processes"
    );
    Ok(())
}

/// F1, `runs` times: the binary's size, then per run a fresh JobManager and TaskManager, their
/// start-up times, and their RSS after [`F1_IDLE`] of idleness.
pub fn f1(binary: &Path, runs: usize) -> Result<()> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    // A stripped ELF binary has no symbol table section.
    let stripped = !bytes.windows(b".symtab".len()).any(|w| w == b".symtab");
    println!(
        "{{\"workload\":\"F1\",\"binary\":\"{}\",\"binary_bytes\":{},\"stripped\":{stripped}}}",
        binary.display(),
        bytes.len()
    );
    let mut figures: [Vec<f64>; 4] = Default::default();
    for run in 1..=runs {
        let nodes = Nodes::new(&log_dir()?)?;
        let (jm, address, jm_startup) = nodes.start_job_manager(binary)?;
        let (tm, tm_startup) = nodes.start_task_manager(binary, &address, 1, 2, &[])?;
        std::thread::sleep(F1_IDLE);
        let (jm_rss, tm_rss) = (status_kb(jm, "VmRSS")?, status_kb(tm, "VmRSS")?);
        drop(nodes);
        let (jm_ms, tm_ms) = (jm_startup.as_secs_f64() * 1e3, tm_startup.as_secs_f64() * 1e3);
        println!(
            "{{\"workload\":\"F1\",\"run\":{run},\"jobmanager_startup_ms\":{jm_ms:.1},\
             \"taskmanager_startup_ms\":{tm_ms:.1},\"jobmanager_idle_rss_kb\":{jm_rss},\
             \"taskmanager_idle_rss_kb\":{tm_rss}}}"
        );
        for (list, value) in figures.iter_mut().zip([jm_ms, tm_ms, jm_rss as f64, tm_rss as f64]) {
            list.push(value);
        }
    }
    let [jm_ms, tm_ms, jm_rss, tm_rss] = figures.each_mut().map(|list| median(list));
    println!(
        "{{\"summary\":true,\"workload\":\"F1\",\"runs\":{runs},\"binary_bytes\":{},\"stripped\":{stripped},\
         \"jobmanager_startup_ms\":{jm_ms:.1},\"taskmanager_startup_ms\":{tm_ms:.1},\
         \"jobmanager_idle_rss_kb\":{jm_rss:.0},\"taskmanager_idle_rss_kb\":{tm_rss:.0}}}",
        bytes.len()
    );
    Ok(())
}

/// The median of a non-empty list (the upper one of an even count).
pub fn median(values: &mut [f64]) -> f64 {
    assert!(!values.is_empty(), "at least one run");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
