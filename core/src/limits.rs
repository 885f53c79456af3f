//! Every limit of the engine, as named constants whose relations are checked at compile time.

/// Rows a batch holds at most. Sources cut their output at this size; partitioners flush at it.
pub const BATCH_ROWS_MAX: usize = 4096;

/// Elements (batches, watermarks, end markers) a subtask's input queue holds before its producers
/// are back-pressured. With full batches this bounds each queue to a few megabytes.
pub const INPUT_QUEUE_ELEMENTS_MAX: usize = 16;

/// The default number of key groups: the largest parallelism keyed state can later be rescaled to.
pub const MAX_PARALLELISM_DEFAULT: u16 = 128;

/// The largest maximum parallelism a job may declare.
pub const MAX_PARALLELISM_LIMIT: u16 = 32_768;

/// The largest parallelism of one operator.
pub const PARALLELISM_MAX: u16 = 1024;

/// Vertices (sources, operators, sinks) a job graph may hold.
pub const VERTICES_MAX: usize = 1024;

/// Bytes of a job file accepted for parsing.
pub const JOB_FILE_BYTES_MAX: usize = 1 << 20;

/// Bytes of one expression's text.
pub const EXPRESSION_BYTES_MAX: usize = 16 * 1024;

/// Bytes of one line of a CSV or JSON Lines input file.
pub const INPUT_LINE_BYTES_MAX: usize = 1 << 20;

/// Aggregates one window or aggregate operator computes.
pub const AGGREGATES_MAX: usize = 64;

/// Sliding windows one record may belong to (`size / slide`): each costs work per record.
pub const WINDOWS_PER_RECORD_MAX: i64 = 1_000;

/// Finished jobs' summaries the embedded runner keeps (for the later Dispatcher's history).
pub const FINISHED_JOBS_MAX: usize = 256;

const _: () = assert!(BATCH_ROWS_MAX >= 64 && BATCH_ROWS_MAX <= u32::MAX as usize);
const _: () = assert!(INPUT_QUEUE_ELEMENTS_MAX >= 2);
const _: () = assert!(MAX_PARALLELISM_DEFAULT <= MAX_PARALLELISM_LIMIT);
const _: () = assert!(PARALLELISM_MAX <= MAX_PARALLELISM_LIMIT);
const _: () = assert!(EXPRESSION_BYTES_MAX <= JOB_FILE_BYTES_MAX);

/// TaskManagers one ResourceManager registers at most.
pub const TASK_MANAGERS_MAX: usize = 1024;

/// Task slots one TaskManager may offer.
pub const SLOTS_PER_TASK_MANAGER_MAX: u16 = 256;

/// Labels a TaskManager may carry, and placement labels a slot request may name.
pub const LABELS_MAX: usize = 16;

/// Bytes of one label's name, and of one label's value.
pub const LABEL_BYTES_MAX: usize = 64;

/// Bytes of the address a TaskManager registers with (`host:port`).
pub const TASK_MANAGER_ADDRESS_BYTES_MAX: usize = 256;

/// Slot requests waiting at the ResourceManager for free slots.
pub const PENDING_SLOT_REQUESTS_MAX: usize = 1024;

/// Slots one slot request may ask for.
pub const SLOTS_PER_REQUEST_MAX: u16 = 4096;

const _: () = assert!(SLOTS_PER_TASK_MANAGER_MAX >= 1);
const _: () = assert!(LABELS_MAX >= 1 && LABEL_BYTES_MAX >= 8);
const _: () = assert!(TASK_MANAGERS_MAX * SLOTS_PER_TASK_MANAGER_MAX as usize <= u32::MAX as usize);
// A request for the largest parallelism must be expressible, and every expressible request must
// fit a full cluster, or it could wait forever by construction.
const _: () = assert!(PARALLELISM_MAX <= SLOTS_PER_REQUEST_MAX);
const _: () =
    assert!(SLOTS_PER_REQUEST_MAX as usize <= TASK_MANAGERS_MAX * SLOTS_PER_TASK_MANAGER_MAX as usize);

/// Completed checkpoints a job may keep (`[job.checkpoints] retained`).
pub const CHECKPOINTS_RETAINED_MAX: u16 = 100;

/// Bytes of snapshot data in one `CheckpointState` or `RestoreState` message: snapshots travel
/// in chunks of this size, so a large state never needs one large frame.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 1 << 20;

/// Bytes of one subtask's snapshot: what a JobManager assembles from chunks, or a TaskManager
/// from a restore, is refused beyond it.
pub const SUBTASK_SNAPSHOT_BYTES_MAX: usize = 1 << 30;

/// Bytes of a savepoint file: a JobManager reads none larger.
pub const SAVEPOINT_BYTES_MAX: u64 = 2 << 30;

/// Savepoints whose outcome a job keeps for its status (the most recent ones).
pub const SAVEPOINTS_KEPT_MAX: usize = 16;

/// Restores a TaskManager holds for deployments that have not arrived yet.
pub const PENDING_RESTORES_MAX: usize = 1024;

/// Bytes of one frame's payload on a cluster connection, control messages and data batches alike.
/// A decoder buffers at most one such frame per connection, so this bounds its memory.
pub const FRAME_BYTES_MAX: usize = 8 << 20;

/// Bytes of a node's name in its hello (`tm-3`, `jobmanager`): it appears in every log line about the
/// peer, so it is short and printable.
pub const NODE_NAME_BYTES_MAX: usize = 64;

/// Bytes of the reason a node gives when it refuses a connection; longer reasons are cut.
pub const REFUSAL_REASON_BYTES_MAX: usize = 1024;

// A snapshot chunk fits a frame with room for the message around it.
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX * 2 <= FRAME_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX <= SUBTASK_SNAPSHOT_BYTES_MAX);
// The frame header holds the payload length in a u32.
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);
// A submission carries its whole job file in one frame, with room for the rest of the message.
const _: () = assert!(JOB_FILE_BYTES_MAX < FRAME_BYTES_MAX);
// A fixed-width value (integer, float, bool, timestamp) takes at most 10 bytes in postcard (a 64-bit
// varint), so a full batch of window results — every aggregate plus the key and the window bounds —
// fits in one frame unless it holds strings: only string columns make the data plane split a batch.
const _: () = assert!(BATCH_ROWS_MAX * (AGGREGATES_MAX + 3) * 10 <= FRAME_BYTES_MAX);
const _: () = assert!(NODE_NAME_BYTES_MAX + REFUSAL_REASON_BYTES_MAX < FRAME_BYTES_MAX);

/// Elements one channel's receiver buffers at most: the credits it may have granted its sender and
/// not yet got back. Both ends of a channel must be configured with the same value.
pub const CHANNEL_CREDITS_MAX: u32 = 32;

/// The credits a channel's receiver grants unless configured otherwise: a few buffers per channel, as
/// Flink's exclusive buffers, so a batch can be in flight while the consumer works on another.
pub const CHANNEL_CREDITS_DEFAULT: u32 = 4;

/// Elements one channel's sender keeps waiting for credit before it back-pressures its subtask.
pub const CHANNEL_BACKLOG_MAX: u32 = 32;

/// The backlog a channel's sender keeps unless configured otherwise.
pub const CHANNEL_BACKLOG_DEFAULT: u32 = 4;

// With no credit nothing is ever sent, and with no backlog nothing is ever accepted: either would
// deadlock a channel by construction.
const _: () = assert!(1 <= CHANNEL_CREDITS_DEFAULT && CHANNEL_CREDITS_DEFAULT <= CHANNEL_CREDITS_MAX);
const _: () = assert!(1 <= CHANNEL_BACKLOG_DEFAULT && CHANNEL_BACKLOG_DEFAULT <= CHANNEL_BACKLOG_MAX);
// One channel holds at most its backlog and its receiver's buffers, each element at most a frame:
// a hard ceiling of 1 GiB per channel, whatever the configuration.
const _: () =
    assert!((CHANNEL_CREDITS_MAX as usize + CHANNEL_BACKLOG_MAX as usize) * FRAME_BYTES_MAX <= 1 << 30);

/// Failures a JobMaster keeps in its job's status, the most recent ones; it counts all of them.
pub const JOB_FAILURES_KEPT_MAX: usize = 16;

/// Bytes of one failure cause a JobMaster keeps: a TaskManager's error text is cut to this.
pub const FAILURE_CAUSE_BYTES_MAX: usize = 4096;

const _: () = assert!(JOB_FAILURES_KEPT_MAX >= 1 && FAILURE_CAUSE_BYTES_MAX >= 256);
// A job's status with every kept failure fits in one frame to the client, with room to spare.
const _: () = assert!(JOB_FAILURES_KEPT_MAX * FAILURE_CAUSE_BYTES_MAX <= FRAME_BYTES_MAX / 4);

/// Attempts a TaskManager remembers without running any of their subtasks (cancelled or ended), so
/// late data and credits for them are recognized as stale and dropped. The oldest are forgotten.
pub const TASK_MANAGER_ATTEMPTS_KEPT_MAX: usize = 64;

/// Channels whose credits a TaskManager parks because their producer is not (yet) deployed there:
/// the consumer may open a channel before the producer's deployment arrives. Beyond this, credits
/// are dropped and counted.
pub const PENDING_CREDIT_CHANNELS_MAX: usize = 4096;

/// Milliseconds a TaskManager waits before polling again a source that had nothing and named no
/// instant to come back.
pub const SOURCE_REPOLL_MS: u64 = 1;

const _: () = assert!(TASK_MANAGER_ATTEMPTS_KEPT_MAX >= 1 && PENDING_CREDIT_CHANNELS_MAX >= 1);
const _: () = assert!(SOURCE_REPOLL_MS >= 1);
