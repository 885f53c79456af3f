//! The simulated client host: the node's own client, doing what a user would — wait for the
//! TaskManagers, submit the job, poll its status until it ends — and checking every answer.
//!
//! It tells the harness what it saw through [`Observed`] (the host runs on the harness's thread,
//! between its steps): when the job first ran and where, how it ended, and notes for the trace.
//! Once the job has ended it keeps asking for a while: the status must not change, the job list
//! must show it ended, and every TaskManager must get its slots back.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rivulet_core::ids::TaskManagerId;
use rivulet_core::jobmanager::execution_state::ExecutionState;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse, JobInfo};
use rivulet_node::cluster::client::Client;
use rivulet_node::net::{Runtime, HANDSHAKE_TIMEOUT_DEFAULT};

use crate::checks::{is_final, StatusChecker};
use crate::runtime::TurmoilRuntime;
use crate::{Note, CLUSTER, JOB_MANAGER_ADDRESS, TASK_MANAGERS};

/// How often the client asks for the job's status.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Status polls after the job ended, each of which must repeat the final status.
const POLLS_AFTER_END: u32 = 5;

/// How long after the job ended the TaskManagers may take to be registered with every slot free:
/// long enough for a fault window still open (at most 12 s after the job ran) to close and for a
/// TaskManager to reconnect (a back-off of at most 5 s).
const SETTLED_LIMIT: Duration = Duration::from_secs(20);

/// Connection attempts to the JobManager before the client gives up.
const CONNECT_ATTEMPTS_MAX: u32 = 50;

/// What the client host tells the harness.
#[derive(Debug, Default)]
pub struct Observed {
    /// Simulated time of the submission.
    pub submitted: Option<Duration>,
    /// Simulated time of the first poll that found the job running with every subtask running,
    /// and the TaskManagers running them.
    pub running: Option<(Duration, Vec<TaskManagerId>)>,
    /// The job's status once it ended, and when the client saw it.
    pub ended: Option<(Duration, JobInfo)>,
    /// Why the client gave up, or what check failed.
    pub error: Option<String>,
    /// What happened, for the trace a replay prints.
    pub notes: Vec<Note>,
    /// Simulated time of the last fault the harness injected.
    pub last_fault_at: Option<Duration>,
}

impl Observed {
    fn note(&mut self, text: String) {
        self.notes.push(Note { at: now(), text });
    }
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// What the client does.
#[derive(Debug)]
pub struct ClientPlan {
    pub job_file: String,
    pub parallelism: Option<u16>,
    /// The file sink's directory and the lines it must commit: the client waits for them to be
    /// visible before it is done.
    pub output: Option<(std::path::PathBuf, usize)>,
    /// How many TaskManagers must be registered, every slot free, after the job ended.
    pub task_managers_at_end: usize,
    /// The JobManager may restart: a broken connection is reconnected (otherwise it fails the run).
    pub reconnect: bool,
}

/// Reconnections a client whose JobManager restarts may make.
const RECONNECTS_MAX: u32 = 8;

/// The client host's whole life; an error ends the run as a failure.
pub async fn run_client(
    rt: &TurmoilRuntime,
    plan: &ClientPlan,
    mut checker: StatusChecker,
    observed: &Rc<RefCell<Observed>>,
) -> Result<(), String> {
    let mut client = connect(rt).await?;
    wait_for_task_managers(rt, &mut client).await?;
    let submit = ClientRequest::Submit {
        job_file: plan.job_file.clone(),
        parallelism: plan.parallelism,
        from_savepoint: None,
    };
    let job = match request(&mut client, &submit).await? {
        ClientResponse::Submitted { job } => job,
        other => return Err(format!("submitted the job, got {other:?}")),
    };
    {
        let mut o = observed.borrow_mut();
        o.submitted = Some(now());
        o.note(format!("client: submitted {job}"));
    }
    let mut session = Session { client, reconnect: plan.reconnect, reconnects: 0 };
    let mut last: Option<JobInfo> = None;
    let final_info = loop {
        let info = job_status(rt, &mut session, job, observed).await?;
        checker.observe(&info)?;
        note_changes(observed, last.as_ref(), &info);
        if is_final(&info.state) {
            observed.borrow_mut().ended = Some((now(), info.clone()));
            break info;
        }
        let all_running =
            !info.subtasks.is_empty() && info.subtasks.iter().all(|s| s.state == ExecutionState::Running);
        if info.state == "running" && all_running && observed.borrow().running.is_none() {
            let mut placement: Vec<TaskManagerId> =
                info.subtasks.iter().filter_map(|s| s.task_manager).collect();
            placement.sort();
            placement.dedup();
            let mut o = observed.borrow_mut();
            o.running = Some((now(), placement.clone()));
            o.note(format!("client: every subtask runs, on {placement:?}"));
        }
        last = Some(info);
        rt.sleep(POLL_INTERVAL).await;
    };

    // A JobManager restarted since recovers the ended job from its store: it must answer the same.
    for _ in 0..POLLS_AFTER_END {
        rt.sleep(POLL_INTERVAL).await;
        checker.observe(&job_status(rt, &mut session, job, observed).await?)?;
    }
    match session.ask(rt, &ClientRequest::ListJobs, observed).await? {
        ClientResponse::Jobs { jobs } if jobs.len() == 1 && jobs[0] == final_info => {}
        other => {
            return Err(format!("listed the jobs after {job} ended {}, got {other:?}", final_info.state))
        }
    }
    wait_until_settled(rt, &mut session, plan.task_managers_at_end, observed).await?;
    if let Some((dir, lines)) = &plan.output {
        wait_for_output(rt, dir, *lines, observed).await;
    }
    Ok(())
}

/// How long after the TaskManagers settled, and after the last fault, the job's committed output
/// may take to be visible: a sink publishes once the JobManager's word that the job finished
/// reaches it, which may wait behind a slow link's segments, or for a TaskManager cut off from the
/// JobManager to give it up and register again once the cut is repaired (a connection attempt of
/// 3 s after a back-off of at most 5 s).
const OUTPUT_VISIBLE_LIMIT: Duration = Duration::from_secs(10);

/// Waits until the sink's directory holds `lines` committed lines, for at most
/// [`OUTPUT_VISIBLE_LIMIT`] after the TaskManagers settled and after the last fault; the harness
/// then compares them exactly.
async fn wait_for_output(
    rt: &TurmoilRuntime,
    dir: &std::path::Path,
    lines: usize,
    observed: &Rc<RefCell<Observed>>,
) {
    let since = now();
    loop {
        let committed = crate::output::committed_lines(dir).map(|l| l.len()).unwrap_or(0);
        if committed >= lines {
            return;
        }
        let last_fault_at = observed.borrow().last_fault_at.unwrap_or_default();
        if now() > since.max(last_fault_at) + OUTPUT_VISIBLE_LIMIT {
            observed.borrow_mut().note(format!(
                "client: {committed} of {lines} lines committed {OUTPUT_VISIBLE_LIMIT:?} after the TaskManagers \
                 settled and the last fault"
            ));
            return;
        }
        rt.sleep(POLL_INTERVAL).await;
    }
}

/// The client's connection to the JobManager; with `reconnect`, a request that fails on a broken
/// connection is asked again on a new one (at most [`RECONNECTS_MAX`] times in all). Only
/// questions go through it: a submission is never repeated.
struct Session {
    client: Client<TurmoilRuntime>,
    reconnect: bool,
    reconnects: u32,
}

impl Session {
    async fn ask(
        &mut self,
        rt: &TurmoilRuntime,
        question: &ClientRequest,
        observed: &Rc<RefCell<Observed>>,
    ) -> Result<ClientResponse, String> {
        loop {
            match request(&mut self.client, question).await {
                Ok(response) => return Ok(response),
                Err(error) if self.reconnect && self.reconnects < RECONNECTS_MAX => {
                    self.reconnects += 1;
                    observed
                        .borrow_mut()
                        .note(format!("client: lost the JobManager ({error}); reconnecting"));
                    rt.sleep(POLL_INTERVAL).await;
                    self.client = connect(rt).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Connects to the JobManager, retrying while it is not listening yet.
async fn connect(rt: &TurmoilRuntime) -> Result<Client<TurmoilRuntime>, String> {
    let mut last = String::new();
    for _ in 0..CONNECT_ATTEMPTS_MAX {
        match Client::connect(rt, JOB_MANAGER_ADDRESS, CLUSTER, HANDSHAKE_TIMEOUT_DEFAULT).await {
            Ok(client) => return Ok(client),
            Err(error) => last = error.to_string(),
        }
        rt.sleep(POLL_INTERVAL).await;
    }
    Err(format!("cannot connect to the JobManager after {CONNECT_ATTEMPTS_MAX} attempts: {last}"))
}

async fn wait_for_task_managers(
    rt: &TurmoilRuntime,
    client: &mut Client<TurmoilRuntime>,
) -> Result<(), String> {
    loop {
        match request(client, &ClientRequest::TaskManagers).await? {
            ClientResponse::TaskManagers { task_managers } if task_managers.len() == TASK_MANAGERS.len() => {
                return Ok(())
            }
            ClientResponse::TaskManagers { .. } => rt.sleep(POLL_INTERVAL).await,
            other => return Err(format!("asked for the TaskManagers, got {other:?}")),
        }
    }
}

/// Waits until `count` TaskManagers are registered, each with all its slots free.
async fn wait_until_settled(
    rt: &TurmoilRuntime,
    session: &mut Session,
    count: usize,
    observed: &Rc<RefCell<Observed>>,
) -> Result<(), String> {
    let since = now();
    loop {
        let task_managers = match session.ask(rt, &ClientRequest::TaskManagers, observed).await? {
            ClientResponse::TaskManagers { task_managers } => task_managers,
            other => return Err(format!("asked for the TaskManagers, got {other:?}")),
        };
        let busy: Vec<_> = task_managers.iter().filter(|tm| tm.free_slots != tm.slots).collect();
        if busy.is_empty() && task_managers.len() == count {
            let ids: Vec<TaskManagerId> = task_managers.iter().map(|tm| tm.id).collect();
            observed.borrow_mut().note(format!("client: every slot free on {ids:?}"));
            return Ok(());
        }
        if now() - since > SETTLED_LIMIT {
            return Err(format!(
                "{SETTLED_LIMIT:?} after the job ended, {count} TaskManagers should be registered with \
                 every slot free: {task_managers:?}"
            ));
        }
        rt.sleep(POLL_INTERVAL).await;
    }
}

async fn job_status(
    rt: &TurmoilRuntime,
    session: &mut Session,
    job: rivulet_core::ids::JobId,
    observed: &Rc<RefCell<Observed>>,
) -> Result<JobInfo, String> {
    match session.ask(rt, &ClientRequest::JobStatus { job }, observed).await? {
        ClientResponse::Job { job } => Ok(job),
        other => Err(format!("asked for the status of {job}, got {other:?}")),
    }
}

/// Notes what changed in the job's status (its state, attempt or failures).
fn note_changes(observed: &Rc<RefCell<Observed>>, last: Option<&JobInfo>, info: &JobInfo) {
    let changed =
        last.is_none_or(|l| (&l.state, l.attempt, l.failures) != (&info.state, info.attempt, info.failures));
    if changed {
        let cause = info.last_failure.as_deref().map(|c| format!(" (last failure: {c})")).unwrap_or_default();
        observed.borrow_mut().note(format!(
            "client: job {} attempt {} after {} failures{cause}",
            info.state, info.attempt, info.failures
        ));
    }
}

async fn request(
    client: &mut Client<TurmoilRuntime>,
    request: &ClientRequest,
) -> Result<ClientResponse, String> {
    client.request(request).await.map_err(|e| format!("{request:?}: {e}"))
}
