//! The operator contract: a state machine fed batches and watermarks, emitting into an [`Output`].

use crate::batch::Batch;
use crate::expr::EvalError;
use crate::ids::CheckpointId;
use crate::time::EventTime;
use thiserror::Error;

/// A failure of a running task. Job graphs are type-checked before they run, so what is left are
/// data-dependent failures (division by zero, a source's bad input) and I/O failures of connectors.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TaskError {
    #[error("operator `{operator}`: {error} in `{expression}`")]
    Eval { operator: String, expression: String, error: EvalError },
    #[error("source `{source_name}`: {message}")]
    Source { source_name: String, message: String },
    #[error("sink `{sink}`: {message}")]
    Sink { sink: String, message: String },
    /// A delivery the subtask cannot take (an unknown channel, input after a channel's end):
    /// a driver or peer fault.
    #[error("subtask {subtask}: bad delivery: {message}")]
    Delivery { subtask: String, message: String },
    /// The subtask stopped because another one failed; not a cause of its own.
    #[error("subtask {subtask}: aborted because another subtask failed")]
    Aborted { subtask: String },
}

/// Where an operator puts what it emits: the main stream (batches and watermarks, in order) and
/// the side output for late records.
#[derive(Debug, Default)]
pub struct Output {
    pub(crate) main: Vec<OutputItem>,
    pub(crate) late: Vec<Batch>,
}

/// An item of an operator's main output.
#[derive(Debug, PartialEq)]
pub enum OutputItem {
    Batch(Batch),
    Watermark(EventTime),
}

impl Output {
    pub fn batch(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.main.push(OutputItem::Batch(batch));
        }
    }

    pub fn watermark(&mut self, watermark: EventTime) {
        self.main.push(OutputItem::Watermark(watermark));
    }

    /// Records that arrived behind the watermark, for the late side output.
    pub fn late(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.late.push(batch);
        }
    }

    /// Takes everything emitted so far (used by tests and the chain).
    pub fn take_main(&mut self) -> Vec<OutputItem> {
        std::mem::take(&mut self.main)
    }

    pub fn take_late(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.late)
    }
}

/// Counters of one operator, read by drivers for progress reports and summaries; kept in
/// snapshots, so that a job restored from a checkpoint counts each record once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorMetrics {
    pub records_in: u64,
    pub records_out: u64,
    /// Records dropped because every window they belonged to had already fired.
    pub late_records_dropped: u64,
    /// Records sent to the late side output.
    pub late_records_routed: u64,
    /// Input records a source skipped as malformed (when the job allows skipping).
    pub records_skipped: u64,
}

impl OperatorMetrics {
    /// Adds another subtask's counters of the same vertex.
    pub fn add(&mut self, other: &OperatorMetrics) {
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        self.late_records_dropped += other.late_records_dropped;
        self.late_records_routed += other.late_records_routed;
        self.records_skipped += other.records_skipped;
    }
}

/// A dataflow operator. Drivers call it from one thread at a time; it never blocks and never does
/// I/O (connectors that do I/O implement it in the node crate). The contract:
/// - `on_batch` consumes records and may emit records;
/// - `on_watermark` is called with a non-decreasing watermark (already the minimum over all the
///   subtask's inputs) and must forward it, after anything it fires;
/// - `on_end` is called once, after the final watermark (`WATERMARK_MAX`), when every input ended.
pub trait Operator: Send {
    fn on_batch(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskError>;

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Output) -> Result<(), TaskError> {
        out.watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Output) -> Result<(), TaskError> {
        Ok(())
    }

    /// The operator's state at checkpoint `checkpoint` ([`crate::state::snapshot::encode_state`]),
    /// empty when it keeps none. Called between two inputs, when the checkpoint's barrier has
    /// been aligned. A sink pre-commits here: what it wrote since the previous checkpoint becomes
    /// a pending transaction the returned handle names, committed by
    /// [`Operator::notify_checkpoint_complete`].
    fn snapshot_state(&mut self, _checkpoint: CheckpointId) -> Result<Vec<u8>, TaskError> {
        Ok(Vec::new())
    }

    /// Restores what `snapshot_state` returned, before any input. Bytes come from storage and are
    /// checked: an error names what does not fit.
    fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(format!("a stateless operator was given {} bytes of state", state.len()))
        }
    }

    /// Checkpoint `checkpoint` is complete (durably recorded): a sink commits what it
    /// pre-committed for it and for any earlier checkpoint.
    fn notify_checkpoint_complete(&mut self, _checkpoint: CheckpointId) -> Result<(), TaskError> {
        Ok(())
    }

    /// Counters beyond records in and out (which the chain counts), e.g. late records.
    fn extra_metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }

    /// Checks the operator's internal invariants; run after every step in tests.
    fn assert_invariants(&self) {}
}
