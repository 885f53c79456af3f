//! Savepoints: a completed checkpoint of a job as one self-contained, portable file.
//!
//! A savepoint holds everything a job needs to resume elsewhere: the checkpoint's id, every
//! subtask's snapshot bytes (each still versioned and checksummed on its own), the shape of the
//! plan it was taken from (each subtask's chain name, index and parallelism), and, for the
//! reader's information, the job's name and job file. Nothing in it refers to the cluster that
//! wrote it, so a copy of the file resumes the job on any cluster:
//!
//! ```text
//! "RVSP" | format version (u16 LE) | body length (u64 LE) | FNV-1a 64 of the body (u64 LE) | body (postcard)
//! ```
//!
//! A savepoint file is untrusted input: decoding checks the envelope like a snapshot's, and a job
//! resumes from it only if its plan has exactly the savepoint's shape ([`Savepoint::check_plan`]);
//! each subtask's snapshot is checked again when the subtask restores it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dataflow::plan::ExecutionPlan;
use crate::graph::JobGraph;
use crate::ids::{AttemptId, CheckpointId};
use crate::jobmanager::checkpoint_coordinator::CompletedCheckpoint;
use crate::state::snapshot::{Envelope, SnapshotError};
use crate::time::Instant;

/// The format of a savepoint file; a reader refuses any other.
pub const SAVEPOINT_FORMAT_VERSION: u16 = 1;

const SAVEPOINT: Envelope =
    Envelope { magic: *b"RVSP", version: SAVEPOINT_FORMAT_VERSION, what: "savepoint" };

/// One subtask of the plan a savepoint was taken from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskShape {
    /// Its chain's vertex names, head first, joined by ` -> `.
    pub chain: String,
    pub index: u16,
    pub parallelism: u16,
}

/// A savepoint as read from a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Savepoint {
    pub job_name: String,
    /// The job file of the job it was taken from (informational: a resumed job brings its own).
    pub job_file: String,
    pub checkpoint: CheckpointId,
    /// Per subtask of the plan, in subtask order.
    pub shape: Vec<SubtaskShape>,
    /// Per subtask, in subtask order: its snapshot bytes.
    pub snapshots: Vec<Vec<u8>>,
}

/// What [`encode_savepoint`] writes: [`Savepoint`]'s fields, borrowed.
#[derive(Serialize)]
struct SavepointRef<'a> {
    job_name: &'a str,
    job_file: &'a str,
    checkpoint: CheckpointId,
    shape: &'a [SubtaskShape],
    snapshots: &'a [Vec<u8>],
}

/// The shape of `graph`'s plan: what a savepoint of it records and a resumed job must match.
pub fn plan_shape(graph: &JobGraph) -> Vec<SubtaskShape> {
    let plan = ExecutionPlan::new(graph);
    let names = plan.chain_names(graph);
    (plan.subtasks.iter())
        .map(|s| SubtaskShape {
            chain: names[s.chain].clone(),
            index: s.index,
            parallelism: plan.chains[s.chain].parallelism,
        })
        .collect()
}

/// The savepoint file of `checkpoint`, a checkpoint of the job `graph` (with job file `job_file`).
pub fn encode_savepoint(graph: &JobGraph, job_file: &str, checkpoint: &CompletedCheckpoint) -> Vec<u8> {
    let shape = plan_shape(graph);
    assert_eq!(shape.len(), checkpoint.snapshots.len(), "a checkpoint of this job's plan");
    SAVEPOINT.seal(&SavepointRef {
        job_name: &graph.name,
        job_file,
        checkpoint: checkpoint.id,
        shape: &shape,
        snapshots: &checkpoint.snapshots,
    })
}

/// The savepoint in a file's bytes, or what is wrong with them.
pub fn decode_savepoint(bytes: &[u8]) -> Result<Savepoint, SnapshotError> {
    let savepoint: Savepoint = SAVEPOINT.open(bytes)?;
    if savepoint.shape.len() != savepoint.snapshots.len() {
        return Err(SnapshotError::Decode {
            what: "savepoint",
            message: format!(
                "it describes {} subtasks but holds {} snapshots",
                savepoint.shape.len(),
                savepoint.snapshots.len()
            ),
        });
    }
    Ok(savepoint)
}

impl Savepoint {
    /// Whether a job of `graph` can resume from this savepoint: its plan must have the same
    /// subtasks (chains by name, in order, each at the same parallelism). The error names the
    /// first difference.
    pub fn check_plan(&self, graph: &JobGraph) -> Result<(), String> {
        let ours = plan_shape(graph);
        for (i, (theirs, ours)) in self.shape.iter().zip(&ours).enumerate() {
            if theirs.chain != ours.chain {
                return Err(format!(
                    "subtask {i} of the savepoint runs `{}`; this job's runs `{}`",
                    theirs.chain, ours.chain
                ));
            }
            if theirs.parallelism != ours.parallelism {
                return Err(format!(
                    "`{}` ran at parallelism {} when the savepoint was taken; this job runs it at {} \
                     (restoring at another parallelism is not supported yet)",
                    ours.chain, theirs.parallelism, ours.parallelism
                ));
            }
        }
        if self.shape.len() != ours.len() {
            return Err(format!(
                "the savepoint has {} subtasks; this job's plan has {}",
                self.shape.len(),
                ours.len()
            ));
        }
        Ok(())
    }

    /// The savepoint as the completed checkpoint a resumed job's first attempt restores from.
    pub fn into_checkpoint(self, now: Instant) -> Arc<CompletedCheckpoint> {
        Arc::new(CompletedCheckpoint {
            id: self.checkpoint,
            attempt: AttemptId(0),
            triggered_at: now,
            completed_at: now,
            snapshots: self.snapshots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobfile::{parse_job, ParseOptions};
    use proptest::prelude::*;

    const JOB: &str =
        "[job]\nname = \"sp\"\nparallelism = 2\n\n[[source]]\nname = \"g\"\ntype = \"generator\"\n\
                       count = 5\n\n[[sink]]\nname = \"out\"\ntype = \"count\"\ninput = \"g\"\n";

    fn graph(parallelism: Option<u16>) -> JobGraph {
        parse_job(JOB, &ParseOptions { parallelism }).unwrap()
    }

    fn checkpoint(subtasks: usize) -> CompletedCheckpoint {
        CompletedCheckpoint {
            id: CheckpointId(12),
            attempt: AttemptId(3),
            triggered_at: Instant::ZERO,
            completed_at: Instant::ZERO,
            snapshots: (0..subtasks).map(|i| vec![i as u8; i + 1]).collect(),
        }
    }

    #[test]
    fn a_savepoint_round_trips_and_checks_the_plan_it_resumes() {
        let g = graph(None);
        let subtasks = plan_shape(&g).len();
        let bytes = encode_savepoint(&g, JOB, &checkpoint(subtasks));
        let savepoint = decode_savepoint(&bytes).unwrap();
        assert_eq!(savepoint.checkpoint, CheckpointId(12));
        assert_eq!(savepoint.job_name, "sp");
        assert_eq!(savepoint.job_file, JOB);
        assert_eq!(savepoint.snapshots, checkpoint(subtasks).snapshots);
        assert_eq!(savepoint.check_plan(&g), Ok(()));
        let error = savepoint.check_plan(&graph(Some(3))).unwrap_err();
        assert!(error.contains("parallelism 2") && error.contains("runs it at 3"), "{error}");
        let renamed = parse_job(&JOB.replace("\"out\"", "\"sink\""), &ParseOptions::default()).unwrap();
        assert!(savepoint.check_plan(&renamed).unwrap_err().contains("`g -> sink`"));
        let restored = savepoint.into_checkpoint(Instant::ZERO);
        assert_eq!((restored.id, restored.snapshots.len()), (CheckpointId(12), subtasks));
    }

    #[test]
    fn damaged_or_foreign_files_are_named() {
        let g = graph(None);
        let bytes = encode_savepoint(&g, JOB, &checkpoint(plan_shape(&g).len()));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let error = decode_savepoint(&flipped).unwrap_err().to_string();
        assert!(error.starts_with("the savepoint's checksum"), "{error}");
        let error = decode_savepoint(b"RVSN\x01\x00").unwrap_err().to_string();
        assert_eq!(error, "the savepoint has 6 bytes, fewer than its 22-byte header");
        let snapshot = crate::state::snapshot::encode_snapshot(&crate::state::snapshot::SubtaskSnapshot {
            checkpoint: CheckpointId(1),
            source: None,
            input_watermark: 0,
            operators: Vec::new(),
        });
        assert!(matches!(decode_savepoint(&snapshot), Err(SnapshotError::Magic { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_savepoint(&bytes);
            let mut framed = SAVEPOINT.seal(&0u8)[..crate::state::snapshot::HEADER_BYTES].to_vec();
            framed[6..14].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            framed[14..22].copy_from_slice(&crate::state::snapshot::checksum(&bytes).to_le_bytes());
            framed.extend_from_slice(&bytes);
            if let Ok(savepoint) = decode_savepoint(&framed) {
                let _ = savepoint.check_plan(&graph(None));
            }
        }
    }
}
