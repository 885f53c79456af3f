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
