//! Tests of the TaskManager role: registration, heartbeats, whole jobs on one and two TaskManagers
//! (against `run_local`), back-pressure, hostile peers, cancellation and malformed deployments.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::*;
use crate::batch::{Batch, Column};
use crate::connectors::BuiltinConnectors;
use crate::dataflow::element::Element;
use crate::dataflow::local::{run_local, Rng};
use crate::dataflow::operator::OperatorMetrics;
use crate::jobfile::{parse_job, ParseOptions};
use crate::jobmanager::execution_state::ExecutionState;
use crate::protocol::messages::{Deployment, SubtaskLocation, TaskStateReport, ToTaskManager};
use crate::protocol::wire_batch::WireElement;
use crate::time::Instant;

/// Subtasks 0 and 1 run `g → f → k` (one chain), subtasks 2 and 3 run `w → out`, fed by hash.
const JOB: &str = r#"
[job]
parallelism = 2

[[source]]
name = "g"
type = "generator"
count = 20_000
keys = 50
event_time = "ts_ms"

[[operator]]
name = "f"
type = "filter"
input = "g"
predicate = "value % 3 != 0"

[[operator]]
name = "k"
type = "key_by"
input = "f"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "tumbling"
size = 10
aggregates = { n = "count()" }

[[sink]]
name = "out"
type = "count"
input = "w"
"#;

fn job_text() -> String {
    JOB.to_owned()
}

const JOB_ID: JobId = JobId(7);
const ATTEMPT: AttemptId = AttemptId(0);
const T0: Instant = Instant::ZERO;

fn config(id: u64, slots: u16, credits: CreditConfig) -> TaskManagerConfig {
    TaskManagerConfig {
        id: TaskManagerId(id),
        data_address: format!("tm-{id}:6124"),
        slots,
        labels: BTreeMap::new(),
        heartbeat_interval: Duration::from_secs(1),
        credits,
    }
}

/// A TaskManager registered with a JobManager at `T0`, its outputs drained.
fn registered(id: u64, slots: u16, credits: CreditConfig) -> TaskManager {
    let mut tm = TaskManager::new(config(id, slots, credits), Box::new(BuiltinConnectors));
    tm.handle_job_manager_connected(T0);
    tm.handle_job_manager_message(T0, ToTaskManager::Registered { heartbeat_interval_ms: 1000 });
    while tm.poll_output().is_some() {}
    tm.assert_invariants();
    tm
}

/// Deployments of every subtask of `JOB`: subtask `i` on TaskManager `placement[i]`, in slot
/// `i % 2` there for two TaskManagers, `i` for one.
fn deployments(placement: &[u64]) -> Vec<Deployment> {
    let locations: Vec<SubtaskLocation> = placement
        .iter()
        .enumerate()
        .map(|(i, &tm)| SubtaskLocation {
            subtask: i as u32,
            task_manager: TaskManagerId(tm),
            address: format!("tm-{tm}:6124"),
        })
        .collect();
    let single = placement.iter().all(|&tm| tm == placement[0]);
    (0..placement.len())
        .map(|i| Deployment {
            job: JOB_ID,
            attempt: ATTEMPT,
            subtask: i as u32,
            slot: SlotIndex(if single { i as u16 } else { (i % 2) as u16 }),
            job_file: job_text(),
            parallelism: None,
            locations: locations.clone(),
            restore_from: None,
        })
        .collect()
}

fn reference_metrics() -> Vec<OperatorMetrics> {
    let graph = parse_job(&job_text(), &ParseOptions::default()).expect("the job parses");
    run_local(&graph, &BuiltinConnectors, 0, 4).expect("the job runs")
}

/// Per-vertex metrics summed over the `Finished` reports, and each subtask's states in order.
fn summarize(reports: &[TaskStateReport]) -> (Vec<OperatorMetrics>, BTreeMap<u32, Vec<ExecutionState>>) {
    let mut metrics = vec![OperatorMetrics::default(); 5];
    let mut states: BTreeMap<u32, Vec<ExecutionState>> = BTreeMap::new();
    for r in reports {
        states.entry(r.subtask).or_default().push(r.state);
        if r.state == ExecutionState::Finished {
            for (v, m) in &r.metrics {
                metrics[*v as usize].add(m);
            }
        }
    }
    (metrics, states)
}

fn task_states(outputs: impl IntoIterator<Item = Output>) -> Vec<TaskStateReport> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::ToJobManager(ToJobManager::TaskState(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn drain(tm: &mut TaskManager) -> Vec<Output> {
    std::iter::from_fn(|| tm.poll_output()).collect()
}

#[test]
fn registration_and_heartbeats_come_at_exact_instants() {
    let mut tm = TaskManager::new(config(3, 2, CreditConfig::DEFAULT), Box::new(BuiltinConnectors));
    assert_eq!(tm.poll_timeout(), None, "no heartbeat before registration");
    tm.handle_job_manager_connected(T0);
    match tm.poll_output() {
        Some(Output::ToJobManager(ToJobManager::Register(r))) => {
            assert_eq!((r.id, r.address.as_str(), r.slots), (TaskManagerId(3), "tm-3:6124", 2));
            assert_eq!(r.protocol_version, crate::protocol::PROTOCOL_VERSION);
        }
        other => panic!("expected a registration, got {other:?}"),
    }
    assert_eq!(tm.poll_timeout(), None, "no heartbeat before the JobManager answers");
    let t1 = Instant::from_nanos(5_000_000);
    tm.handle_job_manager_message(t1, ToTaskManager::Registered { heartbeat_interval_ms: 250 });
    tm.assert_invariants();
    let interval = Duration::from_millis(250);
    assert_eq!(tm.registration(), &RegistrationStatus::Registered { heartbeat_interval: interval });
    assert_eq!(tm.poll_timeout(), Some(t1 + interval));
    tm.handle_timeout(t1 + (interval - Duration::from_nanos(1)));
    assert_eq!(tm.poll_output(), None, "not yet due");
    for k in 1..=3u32 {
        let at = t1 + interval * k;
        assert_eq!(tm.poll_timeout(), Some(at));
        tm.handle_timeout(at);
        assert_eq!(tm.poll_output(), Some(Output::ToJobManager(ToJobManager::Heartbeat)));
        assert_eq!(tm.poll_output(), None);
        tm.assert_invariants();
    }
    tm.handle_job_manager_lost(t1 + interval * 4);
    assert_eq!(tm.poll_timeout(), None, "no heartbeats without a JobManager");
}

#[test]
fn a_refusal_is_remembered_and_the_task_manager_stays_idle() {
    let mut tm = TaskManager::new(config(1, 1, CreditConfig::DEFAULT), Box::new(BuiltinConnectors));
    tm.handle_job_manager_connected(T0);
    drain(&mut tm);
    tm.handle_job_manager_message(T0, ToTaskManager::RegistrationRefused { reason: "no slots".into() });
    assert_eq!(tm.refusal_reason(), Some("no slots"));
    assert_eq!(tm.poll_timeout(), None);
    let deploy = deployments(&[1, 1, 1, 1]).remove(0);
    tm.handle_job_manager_message(T0, ToTaskManager::Deploy(deploy));
    assert_eq!(tm.poll_output(), None, "a refused TaskManager runs nothing");
    assert_eq!(tm.counters().messages_refused, 1);
    assert!(tm.subtasks().is_empty());
    tm.assert_invariants();
}

#[test]
fn one_task_manager_runs_a_whole_job_as_run_local_does() {
    let mut tm = registered(1, 4, CreditConfig::DEFAULT);
    let mut outputs = Vec::new();
    for d in deployments(&[1, 1, 1, 1]) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
        tm.assert_invariants();
        outputs.extend(drain(&mut tm));
    }
    assert!(tm.slots().iter().all(|s| s.occupant.is_some()));
    while tm.run(T0, 16) > 0 {
        tm.assert_invariants();
        outputs.extend(drain(&mut tm));
    }
    outputs.extend(drain(&mut tm));
    assert!(
        outputs.iter().all(|o| matches!(o, Output::ToJobManager(_))),
        "nothing leaves a lone TaskManager"
    );
    let (metrics, states) = summarize(&task_states(outputs));
    for (subtask, s) in &states {
        assert_eq!(s, &[ExecutionState::Running, ExecutionState::Finished], "subtask {subtask}");
    }
    assert_eq!(states.len(), 4);
    assert_eq!(metrics, reference_metrics());
    assert!(tm.slots().iter().all(|s| s.occupant.is_none()), "every slot is free again");
    assert!(tm.subtasks().is_empty());
    assert_eq!(tm.counters(), TaskManagerCounters::default());
}

/// Two TaskManagers whose data messages travel in per-connection FIFO queues, delivered in an
/// order drawn from a seed.
struct Pair {
    tms: Vec<TaskManager>,
    links: BTreeMap<(usize, usize), VecDeque<DataMessage>>,
    reports: Vec<TaskStateReport>,
    trace: Vec<(usize, Output)>,
    rng: Rng,
}

impl Pair {
    fn new(seed: u64, credits: CreditConfig) -> Pair {
        let tms = vec![registered(1, 2, credits), registered(2, 2, credits)];
        Pair { tms, links: BTreeMap::new(), reports: Vec::new(), trace: Vec::new(), rng: Rng::new(seed) }
    }

    fn check(&self) {
        for tm in &self.tms {
            tm.assert_invariants();
        }
    }

    fn collect(&mut self) {
        for i in 0..self.tms.len() {
            while let Some(o) = self.tms[i].poll_output() {
                self.trace.push((i, o.clone()));
                match o {
                    Output::ToJobManager(ToJobManager::TaskState(r)) => self.reports.push(r),
                    Output::ToJobManager(_) => {}
                    Output::ToTaskManager { to, address, message } => {
                        let j = (to.0 - 1) as usize;
                        assert_eq!(address, format!("tm-{}:6124", to.0));
                        self.links.entry((i, j)).or_default().push_back(message);
                    }
                    Output::EndJobFailed { .. } | Output::JobManagerSilent => {}
                }
            }
        }
    }

    fn deploy(&mut self, placement: &[u64]) {
        for d in deployments(placement) {
            let i = (placement[d.subtask as usize] - 1) as usize;
            self.tms[i].handle_job_manager_message(T0, ToTaskManager::Deploy(d));
            self.check();
        }
        self.collect();
    }

    /// Delivers one message from a connection chosen by the seed; false when none is in flight.
    fn deliver_one(&mut self) -> bool {
        let busy: Vec<(usize, usize)> =
            self.links.iter().filter(|(_, q)| !q.is_empty()).map(|(&k, _)| k).collect();
        if busy.is_empty() {
            return false;
        }
        let (from, to) = busy[self.rng.below(busy.len())];
        let message = self.links.get_mut(&(from, to)).and_then(VecDeque::pop_front).expect("busy");
        self.tms[to].handle_data_message(T0, TaskManagerId(from as u64 + 1), message);
        self.check();
        self.collect();
        true
    }

    fn run_to_idle(&mut self) {
        for _ in 0..1_000_000 {
            let mut work = 0;
            for i in 0..self.tms.len() {
                work += self.tms[i].run(T0, 1 + self.rng.below(32));
                self.check();
            }
            self.collect();
            let mut delivered = false;
            for _ in 0..1 + self.rng.below(8) {
                delivered |= self.deliver_one();
            }
            if work == 0 && !delivered {
                return;
            }
        }
        panic!("the pair never went idle");
    }
}

fn run_pair(seed: u64, credits: CreditConfig) -> Pair {
    let mut pair = Pair::new(seed, credits);
    // The source chain on TaskManager 1, the window chain on TaskManager 2.
    pair.deploy(&[1, 1, 2, 2]);
    pair.run_to_idle();
    pair
}

#[test]
fn two_task_managers_run_a_job_across_the_network_as_run_local_does() {
    let reference = reference_metrics();
    for seed in 0..4 {
        for credits in [CreditConfig::DEFAULT, CreditConfig::new(1, 1).unwrap()] {
            let pair = run_pair(seed, credits);
            let (metrics, states) = summarize(&pair.reports);
            assert_eq!(states.len(), 4, "seed {seed}");
            for (subtask, s) in &states {
                assert_eq!(
                    s,
                    &[ExecutionState::Running, ExecutionState::Finished],
                    "seed {seed}, subtask {subtask}"
                );
            }
            assert_eq!(metrics, reference, "seed {seed}, {credits:?}");
            for tm in &pair.tms {
                assert!(tm.subtasks().is_empty() && tm.slots().iter().all(|s| s.occupant.is_none()));
                assert_eq!(tm.counters().messages_refused, 0);
                assert_eq!(tm.counters().elements_dropped, 0);
            }
        }
    }
}

#[test]
fn the_same_inputs_give_the_same_outputs() {
    let credits = CreditConfig::new(2, 1).unwrap();
    let (a, b) = (run_pair(11, credits), run_pair(11, credits));
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.len() > 20, "{} outputs", a.trace.len());
}

fn generator_batch(rows: i64) -> Batch {
    let ids: Vec<i64> = (0..rows).collect();
    Batch::new(vec![
        Column::Int(ids.clone()),
        Column::Int(ids.clone()),
        Column::Int(ids.clone()),
        Column::Timestamp(ids),
    ])
}

fn element_to(subtask: u32, channel: u32, element: WireElement) -> DataMessage {
    DataMessage::Element { job: JOB_ID, attempt: ATTEMPT, subtask, channel, element }
}

/// TaskManager 2 with the window chain (subtasks 2 and 3); the source chain is said to be on 1.
fn window_side(credits: CreditConfig) -> TaskManager {
    let mut tm = registered(2, 2, credits);
    for d in deployments(&[1, 1, 2, 2]).into_iter().skip(2) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
        tm.assert_invariants();
    }
    let outputs = drain(&mut tm);
    let credits_sent = outputs.iter().filter(|o| matches!(o, Output::ToTaskManager { .. })).count();
    assert_eq!(credits_sent, 4, "each of two subtasks opens two channels");
    tm
}

fn failure_of(outputs: Vec<Output>, subtask: u32) -> String {
    let failed: Vec<TaskStateReport> =
        task_states(outputs).into_iter().filter(|r| r.state == ExecutionState::Failed).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].subtask, subtask);
    failed[0].error.clone().expect("a failure has a reason")
}

#[test]
fn an_element_without_credit_fails_its_consumer() {
    let mut tm = window_side(CreditConfig::new(1, 1).unwrap());
    let batch = || WireElement::from_element(Element::Batch(generator_batch(3)));
    tm.handle_data_message(T0, TaskManagerId(1), element_to(2, 0, batch()));
    tm.assert_invariants();
    assert!(drain(&mut tm).is_empty(), "the first element had credit");
    // The second arrives before the subtask consumed the first and returned its credit.
    tm.handle_data_message(T0, TaskManagerId(1), element_to(2, 0, batch()));
    tm.assert_invariants();
    let error = failure_of(drain(&mut tm), 2);
    assert!(error.contains("without credit"), "{error}");
    assert_eq!(tm.subtasks().len(), 1, "subtask 3 runs on");
    assert_eq!(tm.slots().iter().filter(|s| s.occupant.is_none()).count(), 1, "the slot is free");
    // More data for the failed consumer is dropped; the run goes on without panicking.
    tm.handle_data_message(T0, TaskManagerId(1), element_to(2, 0, batch()));
    assert_eq!(tm.counters().elements_dropped, 1);
    tm.run(T0, 100);
    tm.assert_invariants();
}

#[test]
fn a_batch_of_the_wrong_schema_or_sender_is_refused() {
    let mut tm = window_side(CreditConfig::DEFAULT);
    let good = WireElement::from_element(Element::Batch(generator_batch(2)));
    // From a TaskManager that does not run the channel's producer: refused, nothing fails.
    tm.handle_data_message(T0, TaskManagerId(9), element_to(3, 1, good));
    assert_eq!(tm.counters().messages_refused, 1);
    assert!(drain(&mut tm).is_empty());
    let bad = WireElement::from_element(Element::Batch(Batch::new(vec![Column::Int(vec![1])])));
    tm.handle_data_message(T0, TaskManagerId(1), element_to(3, 1, bad));
    tm.assert_invariants();
    let error = failure_of(drain(&mut tm), 3);
    assert!(error.contains("refused a batch from tm-1") && error.contains("columns"), "{error}");
    // A channel the subtask does not have.
    tm.handle_data_message(T0, TaskManagerId(1), element_to(2, 5, WireElement::EndOfInput));
    let error = failure_of(drain(&mut tm), 2);
    assert!(error.contains("channel 5"), "{error}");
    assert!(tm.subtasks().is_empty());
    tm.assert_invariants();
}

#[test]
fn cancelling_an_attempt_mid_run_stops_every_subtask_and_drops_later_data() {
    let mut tm = registered(1, 4, CreditConfig::DEFAULT);
    // An unbounded source: the job runs until cancelled.
    let streaming = job_text().replace("count = 20_000\n", "");
    for d in deployments(&[1, 1, 1, 1]) {
        tm.handle_job_manager_message(
            T0,
            ToTaskManager::Deploy(Deployment { job_file: streaming.clone(), ..d }),
        );
    }
    for _ in 0..20 {
        tm.run(T0, 5);
        tm.assert_invariants();
    }
    let before = task_states(drain(&mut tm));
    assert!(before.iter().all(|r| r.state == ExecutionState::Running), "still running after 100 steps");
    tm.handle_job_manager_message(T0, ToTaskManager::CancelAttempt { job: JOB_ID, attempt: ATTEMPT });
    tm.assert_invariants();
    let reports = task_states(drain(&mut tm));
    let canceled: Vec<u32> =
        reports.iter().filter(|r| r.state == ExecutionState::Canceled).map(|r| r.subtask).collect();
    assert_eq!(canceled, vec![0, 1, 2, 3]);
    assert!(reports.iter().any(|r| r.metrics.iter().any(|(_, m)| m.records_out > 0)), "metrics so far");
    assert!(tm.slots().iter().all(|s| s.occupant.is_none()));
    assert_eq!(tm.run(T0, 100), 0, "nothing left to run");
    tm.handle_data_message(T0, TaskManagerId(2), element_to(2, 0, WireElement::EndOfInput));
    tm.handle_data_message(
        T0,
        TaskManagerId(2),
        DataMessage::Credit { job: JOB_ID, attempt: ATTEMPT, subtask: 2, channel: 0, credits: 1 },
    );
    assert_eq!((tm.counters().elements_dropped, tm.counters().credits_dropped), (1, 1));
    // A late deployment of the cancelled attempt is refused.
    tm.handle_job_manager_message(T0, ToTaskManager::Deploy(deployments(&[1, 1, 1, 1]).remove(0)));
    assert!(failure_of(drain(&mut tm), 0).contains("cancelled"));
    tm.assert_invariants();
}

#[test]
fn malformed_deployments_report_failed_with_the_reason() {
    let mut tm = registered(1, 2, CreditConfig::DEFAULT);
    let base = deployments(&[1, 1, 1, 1]).remove(0);
    let cases = [
        (
            Deployment { job_file: "[[source]]\nname = 3\n".into(), attempt: AttemptId(5), ..base.clone() },
            "does not parse",
        ),
        (Deployment { subtask: 99, ..base.clone() }, "subtask 99 does not exist: the plan has 4"),
        (Deployment { slot: SlotIndex(5), ..base.clone() }, "slot 5 does not exist"),
        (Deployment { locations: Vec::new(), ..base.clone() }, "no location"),
    ];
    for (deployment, reason) in cases {
        let subtask = deployment.subtask;
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(deployment));
        tm.assert_invariants();
        let error = failure_of(drain(&mut tm), subtask);
        assert!(error.contains(reason), "{error} should say {reason}");
    }
    tm.handle_job_manager_message(T0, ToTaskManager::Deploy(base.clone()));
    assert_eq!(task_states(drain(&mut tm))[0].state, ExecutionState::Running);
    let busy = Deployment { subtask: 1, ..base.clone() };
    tm.handle_job_manager_message(T0, ToTaskManager::Deploy(busy));
    let error = failure_of(drain(&mut tm), 1);
    assert!(error.contains("slot 0 is in use by job-7/attempt-0 subtask 0"), "{error}");
    tm.handle_job_manager_message(T0, ToTaskManager::Deploy(Deployment { slot: SlotIndex(1), ..base }));
    assert!(failure_of(drain(&mut tm), 0).contains("already deployed"));
    assert_eq!(tm.counters().deployments_refused, 6);
    assert_eq!(tm.subtasks().len(), 1);
    tm.assert_invariants();
}

#[test]
fn a_local_consumer_back_pressures_its_producer() {
    // Only the source chain runs here; its local consumers are not deployed yet, so it stops after
    // filling its outbox, and resumes once they arrive.
    let mut tm = registered(1, 4, CreditConfig::DEFAULT);
    let all = deployments(&[1, 1, 1, 1]);
    tm.handle_job_manager_message(T0, ToTaskManager::Deploy(all[0].clone()));
    let mut steps = 0;
    while tm.run(T0, 8) > 0 {
        steps += 1;
        tm.assert_invariants();
        assert!(steps < 1000, "a producer without a consumer must stop");
    }
    for d in all.into_iter().skip(1) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    while tm.run(T0, 8) > 0 {
        tm.assert_invariants();
    }
    let (metrics, _) = summarize(&task_states(drain(&mut tm)));
    assert_eq!(metrics, reference_metrics());
}

#[test]
fn credits_that_arrive_before_their_producer_is_deployed_are_kept() {
    let mut pair = Pair::new(3, CreditConfig::new(1, 1).unwrap());
    let all = deployments(&[1, 1, 2, 2]);
    // The consumers first: their initial credits reach TaskManager 1 before its deployments.
    for d in all[2..].iter().cloned() {
        pair.tms[1].handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    pair.collect();
    while pair.deliver_one() {}
    assert_eq!(pair.tms[0].counters().credits_dropped, 0);
    for d in all[..2].iter().cloned() {
        pair.tms[0].handle_job_manager_message(T0, ToTaskManager::Deploy(d));
        pair.check();
    }
    pair.collect();
    pair.run_to_idle();
    let (metrics, _) = summarize(&pair.reports);
    assert_eq!(metrics, reference_metrics());
}

#[test]
fn losing_a_peer_fails_every_subtask_with_a_channel_to_or_from_it() {
    let mut pair = Pair::new(5, CreditConfig::DEFAULT);
    // An unbounded source: every subtask is still running when the link is lost.
    let streaming = job_text().replace("count = 20_000\n", "");
    let placement = [1, 1, 2, 2];
    for d in deployments(&placement) {
        let i = (placement[d.subtask as usize] - 1) as usize;
        let d = Deployment { job_file: streaming.clone(), ..d };
        pair.tms[i].handle_job_manager_message(T0, ToTaskManager::Deploy(d));
        pair.check();
    }
    pair.collect();
    for _ in 0..50 {
        for i in 0..2 {
            pair.tms[i].run(T0, 8);
            pair.check();
        }
        pair.collect();
        pair.deliver_one();
    }
    assert!(pair.reports.iter().all(|r| r.state == ExecutionState::Running), "{:?}", pair.reports);
    // A peer no channel involves: nothing fails.
    pair.tms[0].handle_peer_lost(T0, TaskManagerId(9));
    pair.check();
    assert!(drain(&mut pair.tms[0]).iter().all(|o| !matches!(o, Output::ToJobManager(_))));
    assert_eq!(pair.tms[0].subtasks().len(), 2);
    // tm-1 loses its link to tm-2: both source subtasks send to tm-2, and fail.
    pair.tms[0].handle_peer_lost(T0, TaskManagerId(2));
    pair.check();
    let failed = task_states(drain(&mut pair.tms[0]));
    assert_eq!(failed.iter().map(|r| r.subtask).collect::<Vec<_>>(), vec![0, 1], "{failed:?}");
    for r in &failed {
        assert_eq!(r.state, ExecutionState::Failed);
        assert_eq!(r.error.as_deref(), Some("data link to tm-2 lost"));
    }
    assert!(pair.tms[0].subtasks().is_empty());
    assert!(pair.tms[0].slots().iter().all(|s| s.occupant.is_none()), "the slots are free");
    // tm-2 loses tm-1: the window subtasks' producers are there.
    pair.tms[1].handle_peer_lost(T0, TaskManagerId(1));
    pair.check();
    let failed = task_states(drain(&mut pair.tms[1]));
    assert_eq!(failed.iter().map(|r| r.subtask).collect::<Vec<_>>(), vec![2, 3], "{failed:?}");
    assert!(failed.iter().all(|r| r.error.as_deref() == Some("data link to tm-1 lost")));
    // Nothing runs on, and losing the peer again changes nothing.
    pair.tms[0].handle_peer_lost(T0, TaskManagerId(2));
    assert_eq!(pair.tms[0].run(T0, 100), 0);
    assert!(drain(&mut pair.tms[0]).is_empty());
    pair.check();
}

/// A factory that keeps state per attempt and records how each attempt's output ended.
#[derive(Clone, Default)]
struct StagingConnectors {
    attempt: Option<(JobId, AttemptId)>,
    ended: std::sync::Arc<std::sync::Mutex<Vec<(JobId, AttemptId, bool)>>>,
}

impl crate::connectors::ConnectorFactory for StagingConnectors {
    fn source_reader(
        &self,
        connector: &crate::graph::SourceConnector,
        vertex_name: &str,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn crate::dataflow::source::SourceReader>, String> {
        BuiltinConnectors.source_reader(connector, vertex_name, subtask_index, parallelism)
    }

    fn sink_writer(
        &self,
        connector: &crate::graph::SinkConnector,
        vertex_name: &str,
        input_schema: &crate::types::Schema,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn crate::dataflow::operators::sink::SinkWriter>, String> {
        assert!(self.attempt.is_some(), "sinks are made by the attempt's own factory");
        BuiltinConnectors.sink_writer(connector, vertex_name, input_schema, subtask_index, parallelism)
    }

    fn end_job(&self, succeeded: bool) -> Result<(), String> {
        let (job, attempt) = self.attempt.expect("only an attempt's factory is ended");
        self.ended.lock().expect("no panics while held").push((job, attempt, succeeded));
        Ok(())
    }

    fn for_attempt(
        &self,
        job: JobId,
        attempt: AttemptId,
    ) -> Option<Box<dyn crate::connectors::ConnectorFactory + Send>> {
        Some(Box::new(StagingConnectors { attempt: Some((job, attempt)), ended: self.ended.clone() }))
    }
}

#[test]
fn staged_output_is_published_for_the_ending_attempt_and_discarded_for_others() {
    let connectors = StagingConnectors::default();
    let ended = connectors.ended.clone();
    let mut tm = TaskManager::new(config(1, 4, CreditConfig::DEFAULT), Box::new(connectors));
    tm.handle_job_manager_connected(T0);
    tm.handle_job_manager_message(T0, ToTaskManager::Registered { heartbeat_interval_ms: 1000 });
    drain(&mut tm);
    // Attempt 0 starts and is cancelled: its output is discarded at once.
    for d in deployments(&[1, 1, 1, 1]) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    tm.handle_job_manager_message(T0, ToTaskManager::CancelAttempt { job: JOB_ID, attempt: ATTEMPT });
    tm.assert_invariants();
    assert_eq!(ended.lock().unwrap().as_slice(), &[(JOB_ID, ATTEMPT, false)]);
    // Attempt 1 runs to the end; nothing is published before the JobManager says the job ended.
    let next = AttemptId(1);
    for mut d in deployments(&[1, 1, 1, 1]) {
        d.attempt = next;
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    while tm.run(T0, 16) > 0 {}
    drain(&mut tm);
    assert_eq!(ended.lock().unwrap().len(), 1, "finished, not yet published");
    let end = ToTaskManager::JobEnded { job: JOB_ID, attempt: next, succeeded: true };
    tm.handle_job_manager_message(T0, end.clone());
    tm.assert_invariants();
    assert_eq!(ended.lock().unwrap().as_slice(), &[(JOB_ID, ATTEMPT, false), (JOB_ID, next, true)]);
    // A repeated end changes nothing: each attempt's output ends once.
    tm.handle_job_manager_message(T0, end);
    assert_eq!(ended.lock().unwrap().len(), 2);
    assert_eq!(tm.poll_output(), None);
}

#[test]
fn finished_output_outlives_the_job_manager_connection_until_the_outcome_comes_again() {
    let connectors = StagingConnectors::default();
    let ended = connectors.ended.clone();
    let mut tm = TaskManager::new(config(1, 4, CreditConfig::DEFAULT), Box::new(connectors));
    tm.handle_job_manager_connected(T0);
    tm.handle_job_manager_message(T0, ToTaskManager::Registered { heartbeat_interval_ms: 1000 });
    for d in deployments(&[1, 1, 1, 1]) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    while tm.run(T0, 16) > 0 {}
    drain(&mut tm);
    // Every subtask here finished; the JobManager's `JobEnded` is lost with its connection.
    tm.handle_job_manager_lost(T0);
    tm.assert_invariants();
    assert!(ended.lock().unwrap().is_empty(), "the staged output is kept, not discarded");
    tm.handle_job_manager_connected(T0);
    tm.handle_job_manager_message(T0, ToTaskManager::Registered { heartbeat_interval_ms: 1000 });
    // The JobManager answers the registration with the outcomes of the jobs it ended.
    tm.handle_job_manager_message(
        T0,
        ToTaskManager::JobEnded { job: JOB_ID, attempt: ATTEMPT, succeeded: true },
    );
    assert_eq!(ended.lock().unwrap().as_slice(), &[(JOB_ID, ATTEMPT, true)]);
}

#[test]
fn a_job_that_ended_while_its_subtasks_run_here_cancels_them_and_publishes_nothing() {
    let connectors = StagingConnectors::default();
    let ended = connectors.ended.clone();
    let mut tm = TaskManager::new(config(1, 4, CreditConfig::DEFAULT), Box::new(connectors));
    tm.handle_job_manager_connected(T0);
    tm.handle_job_manager_message(T0, ToTaskManager::Registered { heartbeat_interval_ms: 1000 });
    for d in deployments(&[1, 1, 1, 1]) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    drain(&mut tm);
    tm.handle_job_manager_message(
        T0,
        ToTaskManager::JobEnded { job: JOB_ID, attempt: ATTEMPT, succeeded: false },
    );
    tm.assert_invariants();
    assert!(tm.subtasks().is_empty());
    assert!(tm.slots().iter().all(|s| s.occupant.is_none()));
    assert_eq!(ended.lock().unwrap().as_slice(), &[(JOB_ID, ATTEMPT, false)]);
}

#[test]
fn a_job_manager_silent_for_five_heartbeats_is_given_up_and_its_subtasks_stop() {
    let mut tm = registered(1, 4, CreditConfig::DEFAULT);
    for d in deployments(&[1, 1, 1, 1]) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    drain(&mut tm);
    let interval = Duration::from_secs(1);
    // Answered heartbeats keep the connection.
    for k in 1..=10u32 {
        let at = T0 + interval * k;
        tm.handle_timeout(at);
        assert!(drain(&mut tm).contains(&Output::ToJobManager(ToJobManager::Heartbeat)));
        tm.handle_job_manager_message(at, ToTaskManager::HeartbeatReply);
        tm.assert_invariants();
    }
    assert!(matches!(tm.registration(), RegistrationStatus::Registered { .. }));
    // Then silence: the deadline is five intervals after the last reply.
    let last = T0 + interval * 10;
    let deadline = last + interval * JOB_MANAGER_SILENT_HEARTBEATS;
    while let Some(at) = tm.poll_timeout().filter(|&at| at < deadline) {
        tm.handle_timeout(at);
        assert!(!drain(&mut tm).contains(&Output::JobManagerSilent), "silent too early, at {at:?}");
    }
    assert_eq!(tm.poll_timeout(), Some(deadline));
    tm.handle_timeout(deadline);
    let out = drain(&mut tm);
    assert!(out.contains(&Output::JobManagerSilent), "{out:?}");
    assert_eq!(tm.registration(), &RegistrationStatus::Disconnected);
    assert!(tm.subtasks().is_empty(), "a TaskManager without a JobManager runs nothing");
    tm.assert_invariants();
}

/// An alignment that holds every split back while `hold` is set, and records what it was told.
#[derive(Clone, Default)]
struct Gate {
    hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(AlignedSource, u16, i64)>>>,
}

impl SourceAlignment for Gate {
    fn may_advance(&self, source: AlignedSource, split: u16, watermark: crate::time::EventTime) -> bool {
        self.seen.lock().unwrap().push((source, split, watermark));
        !self.hold.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[test]
fn a_split_its_alignment_holds_back_is_not_polled_until_it_may_advance() {
    let gate = Gate::default();
    gate.hold.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut tm = registered(1, 4, CreditConfig::DEFAULT);
    tm.set_source_alignment(Box::new(gate.clone()));
    for d in deployments(&[1, 1, 1, 1]) {
        tm.handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    drain(&mut tm);
    // Held: the sources are asked, not polled, and come back after the re-poll delay.
    assert_eq!(tm.run(T0, 64), 0);
    let asked = gate.seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "each of the two splits asks once: {asked:?}");
    assert!(asked.iter().all(|(s, _, _)| s.job == JOB_ID && s.splits == 2 && s.vertex == 0));
    let repoll = T0 + Duration::from_micros(ALIGNMENT_REPOLL_MICROS);
    assert_eq!(tm.poll_timeout(), Some(repoll));
    // Released: the job runs to the end as without alignment, and each split that ends says so.
    gate.hold.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut outputs = Vec::new();
    while tm.run(repoll, 16) > 0 {
        outputs.extend(drain(&mut tm));
    }
    outputs.extend(drain(&mut tm));
    let (metrics, _) = summarize(&task_states(outputs));
    assert_eq!(metrics, reference_metrics());
    let seen = gate.seen.lock().unwrap();
    for split in 0..2 {
        assert!(seen.contains(&(seen[0].0, split, crate::time::WATERMARK_MAX)), "split {split} released");
    }
    tm.assert_invariants();
}

/// Found by the simulation (a held data link with one credit per channel; docs/simulation.md): a
/// paced source that was waiting for its next batch when a checkpoint's barrier came, and whose
/// barrier then waited for credit, kept its passed wake-up time as the TaskManager's next
/// timeout, so a driver that sleeps until `poll_timeout` never slept — it spun on
/// `handle_timeout` and `run` without doing anything (in a simulation, simulated time then never
/// advanced). An idle TaskManager's next timeout must lie in the future.
#[test]
fn a_source_blocked_on_credit_does_not_ask_for_a_timeout_in_the_past() {
    let paced = job_text()
        .replacen("event_time = \"ts_ms\"", "event_time = \"ts_ms\"\nrate = 40_000", 1)
        .replacen("count = 20_000", "count = 1_000_000", 1);
    assert_ne!(paced, job_text(), "the source paced");
    let mut pair = Pair::new(5, CreditConfig::new(1, 1).unwrap());
    let placement = [1, 1, 2, 2];
    for mut d in deployments(&placement) {
        d.job_file = paced.clone();
        let i = (placement[d.subtask as usize] - 1) as usize;
        pair.tms[i].handle_job_manager_message(T0, ToTaskManager::Deploy(d));
    }
    pair.collect();
    let mut checkpoint = 0;
    for ms in 0..3_000 {
        let now = T0 + Duration::from_millis(ms);
        if ms % 30 == 0 {
            // A barrier reaches the sources every 30 ms, whatever they are doing.
            checkpoint += 1;
            let trigger = ToTaskManager::TriggerCheckpoint {
                job: JOB_ID,
                attempt: ATTEMPT,
                checkpoint: crate::ids::CheckpointId(checkpoint),
            };
            pair.tms[0].handle_job_manager_message(now, trigger);
        }
        for tm in &mut pair.tms {
            if tm.poll_timeout().is_some_and(|at| at <= now) {
                tm.handle_timeout(now);
            }
            while tm.run(now, 8) > 0 {}
            tm.assert_invariants();
            let next = tm.poll_timeout();
            assert!(next.is_none_or(|at| at > now), "idle at {now:?}, the next timeout is {next:?}");
        }
        pair.collect();
        // From 0.5 s on, the consumers' credits stop coming back (a held link).
        let held = ms >= 500;
        for ((from, to), queue) in &mut pair.links {
            if held && *from == 1 {
                continue;
            }
            while let Some(message) = queue.pop_front() {
                pair.tms[*to].handle_data_message(now, TaskManagerId(*from as u64 + 1), message);
            }
        }
        pair.collect();
    }
}
