//! Checks of what a client can see of a job, applied to every status the simulated client polls.
//!
//! The core's roles assert their own invariants after every step; these look from the outside,
//! over the wire, at properties a user relies on: a job's attempt and failure counts only grow,
//! and stay in step with each other; an ended job stays ended, with the same result, however often
//! it is asked; a finished job has every subtask finished; an attempt's counters only grow and a
//! source never emits more than it holds. A violation ends the run as a failure.

use std::collections::BTreeMap;

use rivulet_core::dataflow::operator::OperatorMetrics;
use rivulet_core::ids::TaskManagerId;
use rivulet_core::jobmanager::execution_state::ExecutionState;
use rivulet_core::protocol::client::JobInfo;

/// The states a job reports.
const JOB_STATES: [&str; 7] =
    ["created", "running", "restarting", "finished", "failed", "canceling", "canceled"];

/// Whether a job in `state` has ended.
pub fn is_final(state: &str) -> bool {
    matches!(state, "finished" | "failed" | "canceled")
}

/// Checks a sequence of one job's statuses.
#[derive(Debug)]
pub struct StatusChecker {
    /// The expected counters of the whole job, per vertex name.
    expected: BTreeMap<String, OperatorMetrics>,
    /// The names of the source vertices.
    sources: Vec<String>,
    /// The TaskManagers that exist.
    task_managers: Vec<TaskManagerId>,
    last: Option<JobInfo>,
}

impl StatusChecker {
    pub fn new(
        expected: BTreeMap<String, OperatorMetrics>,
        sources: Vec<String>,
        task_managers: Vec<TaskManagerId>,
    ) -> Self {
        StatusChecker { expected, sources, task_managers, last: None }
    }

    /// Checks the next status polled.
    pub fn observe(&mut self, info: &JobInfo) -> Result<(), String> {
        self.check_alone(info)?;
        if let Some(last) = self.last.take() {
            check_step(&last, info)?;
            self.check_counters(&last, info)?;
        }
        self.last = Some(info.clone());
        Ok(())
    }

    /// What holds of any one status.
    fn check_alone(&self, info: &JobInfo) -> Result<(), String> {
        if !JOB_STATES.contains(&info.state.as_str()) {
            return Err(format!("unknown job state {:?}", info.state));
        }
        if info.failures < info.attempt || info.failures > info.attempt + 1 {
            return Err(format!(
                "attempt {} after {} failures: each attempt after the first follows one failure",
                info.attempt, info.failures
            ));
        }
        if info.state == "finished" && info.subtasks.iter().any(|s| s.state != ExecutionState::Finished) {
            return Err(format!("the job is finished with subtasks not finished: {:?}", info.subtasks));
        }
        if let Some(s) =
            info.subtasks.iter().find(|s| s.task_manager.is_some_and(|tm| !self.task_managers.contains(&tm)))
        {
            return Err(format!(
                "subtask {}#{} is placed on an unknown TaskManager {:?}",
                s.name, s.index, s.task_manager
            ));
        }
        for (name, metrics) in &info.vertices {
            let Some(expected) = self.expected.get(name) else {
                return Err(format!("counters for an unknown vertex {name:?}"));
            };
            if self.sources.contains(name) && metrics.records_out > expected.records_out {
                return Err(format!(
                    "source {name} emitted {} records in attempt {}; it holds {}",
                    metrics.records_out, info.attempt, expected.records_out
                ));
            }
        }
        Ok(())
    }

    /// An attempt's counters only grow: the JobManager shows the current attempt's counters
    /// (zeros until its first report), never an earlier attempt's.
    fn check_counters(&mut self, last: &JobInfo, info: &JobInfo) -> Result<(), String> {
        if info.attempt != last.attempt {
            return Ok(());
        }
        for ((name, before), (_, now)) in last.vertices.iter().zip(&info.vertices) {
            let grew = now.records_in >= before.records_in
                && now.records_out >= before.records_out
                && now.late_records_dropped >= before.late_records_dropped
                && now.late_records_routed >= before.late_records_routed
                && now.records_skipped >= before.records_skipped;
            if grew {
                continue;
            }
            return Err(format!(
                "vertex {name}'s counters went back within attempt {}: {before:?}, then {now:?}",
                info.attempt
            ));
        }
        Ok(())
    }
}

/// What holds from one status of a job to the next.
fn check_step(last: &JobInfo, info: &JobInfo) -> Result<(), String> {
    if info.job != last.job {
        return Err(format!("asked for job {}, got job {}", last.job, info.job));
    }
    if info.attempt < last.attempt || info.failures < last.failures {
        return Err(format!(
            "went back from attempt {} after {} failures to attempt {} after {}",
            last.attempt, last.failures, info.attempt, info.failures
        ));
    }
    if is_final(&last.state) && info != last {
        return Err(format!("the job ended {}, then reported {info:?}", last.state));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rivulet_core::ids::JobId;

    use super::*;

    fn info(state: &str, attempt: u32, failures: u32, out: u64) -> JobInfo {
        let metrics = OperatorMetrics { records_out: out, ..OperatorMetrics::default() };
        JobInfo {
            job: JobId(1),
            name: "j".to_owned(),
            state: state.to_owned(),
            attempt,
            failures,
            last_failure: None,
            subtasks: Vec::new(),
            vertices: vec![("src".to_owned(), metrics)],
            waiting_for: Vec::new(),
            checkpoints: None,
            savepoints: Vec::new(),
        }
    }

    fn checker() -> StatusChecker {
        let expected = OperatorMetrics { records_out: 10, ..OperatorMetrics::default() };
        StatusChecker::new(
            [("src".to_owned(), expected)].into(),
            vec!["src".to_owned()],
            vec![TaskManagerId(1)],
        )
    }

    #[test]
    fn a_well_behaved_job_passes() {
        let mut c = checker();
        for i in [info("created", 0, 0, 0), info("running", 0, 0, 4), info("restarting", 0, 1, 4)] {
            c.observe(&i).unwrap();
        }
        // Attempt 1 starts from zero.
        for i in [info("running", 1, 1, 0), info("running", 1, 1, 2), info("finished", 1, 1, 10)] {
            c.observe(&i).unwrap();
        }
        for i in [info("finished", 1, 1, 10), info("finished", 1, 1, 10)] {
            c.observe(&i).unwrap();
        }
    }

    #[test]
    fn each_checker_can_fail() {
        let cases: [(&[JobInfo], &str); 7] = [
            (&[info("sleeping", 0, 0, 0)], "unknown job state"),
            (&[info("running", 1, 0, 0)], "each attempt after the first"),
            (&[info("running", 0, 0, 11)], "emitted 11 records"),
            (&[info("running", 1, 1, 0), info("running", 0, 1, 0)], "went back"),
            (&[info("finished", 0, 0, 10), info("running", 0, 0, 10)], "the job ended finished"),
            (&[info("running", 0, 0, 5), info("running", 0, 0, 4)], "went back within attempt 0"),
            (&[info("running", 1, 1, 5), info("running", 1, 1, 1)], "went back within attempt 1"),
        ];
        for (statuses, message) in cases {
            let mut c = checker();
            let error = statuses.iter().map(|i| c.observe(i)).find_map(Result::err);
            let error = error.unwrap_or_else(|| panic!("{statuses:?} passed"));
            assert!(error.contains(message), "{error:?} does not say {message:?}");
        }
    }
}
