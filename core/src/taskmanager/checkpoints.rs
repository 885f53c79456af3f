//! The TaskManager's part in checkpoints: triggering them at sources, sending snapshots to the
//! JobManager in chunks, committing sinks when a checkpoint completes, and holding the snapshots
//! deployments are restored from.

use crate::dataflow::subtask::Subtask;
use crate::ids::{AttemptId, CheckpointId, JobId};
use crate::jobmanager::execution_state::ExecutionState;
use crate::limits::PENDING_RESTORES_MAX;
use crate::protocol::messages::{SnapshotAssembly, SnapshotChunk, ToJobManager};
use crate::state::snapshot::{decode_snapshot, encode_snapshot};

use super::task_manager::{SubtaskKey, TaskManager};
use super::{DeployError, Output};

impl TaskManager {
    /// Every source subtask of the attempt running here takes checkpoint `checkpoint`. One that
    /// cannot (its source cannot replay, say) declines it; one that fails doing so fails.
    pub(super) fn trigger_checkpoint(&mut self, job: JobId, attempt: AttemptId, checkpoint: CheckpointId) {
        let Some(record) = self.attempts.get_mut(&(job, attempt)) else { return };
        let sources: Vec<u32> =
            record.subtasks.iter().filter(|(_, r)| r.subtask.is_source()).map(|(&s, _)| s).collect();
        for subtask in sources {
            let key = (job, attempt, subtask);
            let run = self.subtask_run(key).expect("listed above");
            match run.subtask.trigger_checkpoint(checkpoint) {
                Ok(()) => self.send_snapshots(key),
                Err(e) => {
                    let reason = e.to_string();
                    let message =
                        ToJobManager::CheckpointDeclined { job, attempt, subtask, checkpoint, reason };
                    self.outputs.push_back(Output::ToJobManager(message));
                }
            }
        }
    }

    /// Sends the snapshots subtask `key` has taken, in chunks.
    pub(super) fn send_snapshots(&mut self, key: SubtaskKey) {
        let (job, attempt, subtask) = key;
        while let Some(snapshot) = self.subtask_run(key).and_then(|r| r.subtask.poll_snapshot()) {
            let bytes = encode_snapshot(&snapshot);
            for chunk in SnapshotChunk::split(job, attempt, subtask, snapshot.checkpoint, &bytes) {
                self.outputs.push_back(Output::ToJobManager(ToJobManager::CheckpointState(chunk)));
            }
        }
    }

    /// Checkpoint `checkpoint` of the attempt is complete: its subtasks here commit. A sink that
    /// cannot commit fails its subtask (the JobMaster restarts from the checkpoint, and the
    /// restored sink commits it again).
    pub(super) fn checkpoint_complete(&mut self, job: JobId, attempt: AttemptId, checkpoint: CheckpointId) {
        let Some(record) = self.attempts.get_mut(&(job, attempt)) else { return };
        let mut failed = Vec::new();
        for (&subtask, run) in &mut record.subtasks {
            if let Err(e) = run.subtask.notify_checkpoint_complete(checkpoint) {
                failed.push((subtask, e.to_string()));
            }
        }
        if let Some(connectors) = &record.connectors {
            // Sinks that finished before the notice commit through their factory.
            if let Err(e) = connectors.commit_checkpoint(checkpoint) {
                self.outputs.push_back(Output::EndJobFailed { job, attempt, published: true, error: e });
            }
        }
        for (subtask, error) in failed {
            self.end_subtask((job, attempt, subtask), ExecutionState::Failed, Some(error));
        }
    }

    /// A chunk of the snapshot a coming deployment restores from. Chunks that break the order, or
    /// too many pending restores, are refused and counted: the deployment then fails.
    pub(super) fn restore_chunk(&mut self, chunk: SnapshotChunk) {
        let key = (chunk.job, chunk.attempt, chunk.subtask);
        if !self.pending_restores.contains_key(&key) && self.pending_restores.len() >= PENDING_RESTORES_MAX {
            self.counters.messages_refused += 1;
            return;
        }
        let entry = self
            .pending_restores
            .entry(key)
            .or_insert_with(|| (chunk.checkpoint, SnapshotAssembly::default(), false));
        if entry.0 != chunk.checkpoint || entry.2 {
            *entry = (chunk.checkpoint, SnapshotAssembly::default(), false);
        }
        match entry.1.push(&chunk) {
            Ok(whole) => entry.2 = whole,
            Err(_) => {
                self.counters.messages_refused += 1;
                self.pending_restores.remove(&key);
            }
        }
    }

    /// Restores a deployed subtask from the snapshot its chunks brought.
    pub(super) fn restore_subtask(
        &mut self,
        key: SubtaskKey,
        checkpoint: CheckpointId,
        subtask: &mut Subtask,
    ) -> Result<(), DeployError> {
        let missing = || DeployError::Restore(format!("the snapshot of {checkpoint} did not arrive whole"));
        let (id, assembly, whole) = self.pending_restores.remove(&key).ok_or_else(missing)?;
        if id != checkpoint || !whole {
            return Err(missing());
        }
        let snapshot =
            decode_snapshot(&assembly.into_bytes()).map_err(|e| DeployError::Restore(e.to_string()))?;
        if snapshot.checkpoint != checkpoint {
            return Err(DeployError::Restore(format!(
                "the snapshot is of {}, not {checkpoint}",
                snapshot.checkpoint
            )));
        }
        subtask.restore(&snapshot).map_err(DeployError::Restore)
    }
}
