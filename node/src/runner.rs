//! The embedded mini-cluster: every subtask of a job as a task on a pool of worker threads,
//! connected by bounded queues.
//!
//! Each subtask has one input queue of [`INPUT_QUEUE_ELEMENTS_MAX`] elements shared by all its
//! producers; a producer whose consumer's queue is full waits (back-pressure), so memory stays
//! bounded whatever the speeds. The subtasks themselves are the core's sans-IO state machines;
//! this module only moves their output, feeds them input and the clock, and publishes counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{anyhow, Context, Result};
use rivulet_core::connectors::ConnectorFactory;
use rivulet_core::dataflow::element::Element;
use rivulet_core::dataflow::operator::{OperatorMetrics, TaskError};
use rivulet_core::dataflow::plan::ExecutionPlan;
use rivulet_core::dataflow::subtask::{SourceStatus, Subtask};
use rivulet_core::graph::{JobGraph, VertexId};
use rivulet_core::limits::INPUT_QUEUE_ELEMENTS_MAX;
use rivulet_core::time::Instant;

use crate::alignment::SplitAlignment;

/// Source batches a subtask handles before it yields its worker thread to other tasks.
const SOURCE_BATCHES_PER_YIELD: u32 = 32;

/// A source split paused by event-time alignment first yields to its worker's other subtasks this
/// many times, then sleeps [`PAUSE_SLEEP`] between checks.
const PAUSE_YIELDS_BEFORE_SLEEP: u32 = 64;
const PAUSE_SLEEP: Duration = Duration::from_micros(200);

type Message = (u32, Element);

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Worker threads (at least 1).
    pub workers: usize,
}

/// Live counters of one chained operator in one subtask, written by its worker thread.
#[derive(Debug, Default)]
pub struct StageCounters {
    pub vertex: u32,
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub late_records_dropped: AtomicU64,
    pub late_records_routed: AtomicU64,
    pub records_skipped: AtomicU64,
}

impl StageCounters {
    fn publish(&self, m: &OperatorMetrics) {
        self.records_in.store(m.records_in, Ordering::Relaxed);
        self.records_out.store(m.records_out, Ordering::Relaxed);
        self.late_records_dropped.store(m.late_records_dropped, Ordering::Relaxed);
        self.late_records_routed.store(m.late_records_routed, Ordering::Relaxed);
        self.records_skipped.store(m.records_skipped, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> OperatorMetrics {
        OperatorMetrics {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            late_records_dropped: self.late_records_dropped.load(Ordering::Relaxed),
            late_records_routed: self.late_records_routed.load(Ordering::Relaxed),
            records_skipped: self.records_skipped.load(Ordering::Relaxed),
        }
    }
}

/// What a running job shares with whoever watches it.
#[derive(Debug)]
pub struct JobHandle {
    pub counters: Vec<Arc<StageCounters>>,
    /// Set to stop the sources: they end their input, and the job drains and finishes.
    pub stop: Arc<AtomicBool>,
    remaining: Arc<AtomicUsize>,
    pub started: StdInstant,
}

impl JobHandle {
    /// Counters summed per vertex, in vertex order.
    pub fn metrics_by_vertex(&self, vertices: usize) -> Vec<OperatorMetrics> {
        let mut out = vec![OperatorMetrics::default(); vertices];
        for c in &self.counters {
            out[c.vertex as usize].add(&c.snapshot());
        }
        out
    }

    /// Subtasks still running.
    pub fn remaining(&self) -> usize {
        self.remaining.load(Ordering::Relaxed)
    }
}

/// The outcome of a finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub elapsed: Duration,
    /// Per vertex, in the graph's vertex order.
    pub metrics: Vec<OperatorMetrics>,
}

/// Runs a job to completion on `options.workers` threads. `watch` is called on the calling thread
/// about every `tick` while the job runs (for progress reports).
pub fn run_job(
    graph: &JobGraph,
    connectors: &dyn ConnectorFactory,
    options: &RunOptions,
    stop: Arc<AtomicBool>,
    tick: Duration,
    mut watch: impl FnMut(&JobHandle),
) -> Result<RunResult> {
    let plan = ExecutionPlan::new(graph);
    let mut subtasks = Vec::with_capacity(plan.subtasks.len());
    for sp in &plan.subtasks {
        subtasks.push(Subtask::new(graph, &plan, sp.id, connectors).map_err(|e| anyhow!(e))?);
    }
    let (senders, receivers): (Vec<_>, Vec<_>) =
        subtasks.iter().map(|_| async_channel::bounded::<Message>(INPUT_QUEUE_ELEMENTS_MAX)).unzip();
    let senders = Arc::new(senders);
    let mut counters = Vec::new();
    let mut subtask_counters = Vec::new();
    for subtask in &subtasks {
        let mine: Vec<Arc<StageCounters>> = subtask
            .metrics()
            .map(|(v, _)| Arc::new(StageCounters { vertex: v.0, ..Default::default() }))
            .collect();
        counters.extend(mine.iter().cloned());
        subtask_counters.push(mine);
    }
    let handle = JobHandle {
        counters,
        stop: stop.clone(),
        remaining: Arc::new(AtomicUsize::new(subtasks.len())),
        started: StdInstant::now(),
    };
    let failed = Arc::new(AtomicBool::new(false));
    let (result_tx, result_rx) = async_channel::unbounded::<(String, Result<(), TaskError>)>();
    let epoch = handle.started;
    // Each subtask stays on one worker thread for the whole run, so its state stays in that
    // core's caches; subtask i goes to worker i % workers, which spreads every chain's subtasks.
    let workers = options.workers.max(1);
    let total = subtasks.len();
    let mut assigned: Vec<Vec<Driver>> = (0..workers).map(|_| Vec::new()).collect();
    let mut alignments: BTreeMap<VertexId, Arc<SplitAlignment>> = BTreeMap::new();
    for (i, ((subtask, receiver), mine)) in
        subtasks.into_iter().zip(receivers).zip(subtask_counters).enumerate()
    {
        let alignment = subtask.source_watermark().map(|_| {
            let vertex = subtask.head_vertex();
            let splits = usize::from(graph.vertex(vertex).parallelism);
            let shared = alignments.entry(vertex).or_insert_with(|| Arc::new(SplitAlignment::new(splits)));
            (shared.clone(), usize::from(plan.subtasks[i].index))
        });
        assigned[i % workers].push(Driver {
            alignment,
            subtask,
            receiver,
            senders: senders.clone(),
            counters: mine,
            stop: stop.clone(),
            failed: failed.clone(),
            epoch,
        });
    }
    drop(senders);

    let first_error = std::thread::scope(|scope| -> Result<Option<String>> {
        for (i, drivers) in assigned.into_iter().enumerate() {
            let result_tx = result_tx.clone();
            let remaining = handle.remaining.clone();
            std::thread::Builder::new()
                .name(format!("rivulet-worker-{i}"))
                .spawn_scoped(scope, move || run_worker(drivers, &result_tx, &remaining))
                .context("starting a worker thread")?;
        }
        drop(result_tx);
        // The cause of a failure is the first error that is not another subtask's abort.
        let mut cause: Option<String> = None;
        let mut aborted: Option<String> = None;
        let mut results = 0;
        let mut next_tick = StdInstant::now() + tick;
        while results < total {
            let wait = next_tick.saturating_duration_since(StdInstant::now());
            match smol::block_on(async {
                smol::future::or(async { Some(result_rx.recv().await) }, async {
                    smol::Timer::after(wait).await;
                    None
                })
                .await
            }) {
                Some(Ok((name, result))) => {
                    results += 1;
                    match result {
                        Ok(()) => {}
                        Err(e @ TaskError::Aborted { .. }) => {
                            aborted.get_or_insert_with(|| e.to_string());
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            cause.get_or_insert_with(|| format!("subtask {name} failed: {e}"));
                        }
                    }
                }
                // Every worker has ended: all results are in.
                Some(Err(_)) => break,
                None => {
                    watch(&handle);
                    next_tick = StdInstant::now() + tick;
                }
            }
        }
        assert_eq!(results, total, "every subtask reports its result");
        Ok(cause.or(aborted))
    })?;
    // Sinks publish their staged output only when every subtask has succeeded.
    let ended = connectors.end_job(first_error.is_none());
    if let Some(error) = first_error {
        return Err(anyhow!(error));
    }
    ended.map_err(|e| anyhow!(e))?;
    Ok(RunResult {
        elapsed: handle.started.elapsed(),
        metrics: handle.metrics_by_vertex(graph.vertices().len()),
    })
}

/// Runs a worker thread's subtasks to completion on a single-threaded executor.
fn run_worker(
    drivers: Vec<Driver>,
    results: &async_channel::Sender<(String, Result<(), TaskError>)>,
    remaining: &AtomicUsize,
) {
    let executor = smol::LocalExecutor::new();
    let tasks: Vec<_> = drivers
        .into_iter()
        .map(|driver| {
            executor.spawn(async move {
                let name = driver.subtask.name().to_owned();
                let result = driver.run().await;
                remaining.fetch_sub(1, Ordering::Relaxed);
                // The receiver outlives every worker; a failed send means the run is over anyway.
                let _ = results.send((name, result)).await;
            })
        })
        .collect();
    smol::block_on(executor.run(async {
        for task in tasks {
            task.await;
        }
    }));
}

/// Runs one subtask: moves its output to the downstream queues, feeds it input or polls its
/// source, and publishes its counters.
struct Driver {
    subtask: Subtask,
    receiver: async_channel::Receiver<Message>,
    senders: Arc<Vec<async_channel::Sender<Message>>>,
    counters: Vec<Arc<StageCounters>>,
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    epoch: StdInstant,
    /// For a split of a source with event time: its source's alignment and its split index.
    alignment: Option<(Arc<SplitAlignment>, usize)>,
}

impl Driver {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn publish(&self) {
        for ((_, m), c) in self.subtask.metrics().zip(&self.counters) {
            c.publish(&m);
        }
    }

    async fn deliver(&mut self) -> Result<(), TaskError> {
        while let Some(out) = self.subtask.poll_output() {
            let sender = &self.senders[out.to.subtask.index()];
            if sender.send((out.to.channel, out.element)).await.is_err() {
                // The consumer is gone: only possible once the job has failed elsewhere.
                return Err(self.aborted());
            }
        }
        Ok(())
    }

    fn aborted(&self) -> TaskError {
        TaskError::Aborted { subtask: self.subtask.name().to_owned() }
    }

    async fn run(mut self) -> Result<(), TaskError> {
        let result = self.run_inner().await;
        self.publish();
        if let Some((alignment, split)) = &self.alignment {
            // Finished or failed, this split holds nobody back any more.
            alignment.publish(*split, rivulet_core::time::WATERMARK_MAX);
        }
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
            // Closing every queue wakes the subtasks waiting on one, and they end too.
            for sender in self.senders.iter() {
                sender.close();
            }
        }
        result
    }

    async fn run_inner(&mut self) -> Result<(), TaskError> {
        let mut batches = 0u32;
        let mut paused = 0u32;
        loop {
            self.deliver().await?;
            if self.subtask.is_finished() {
                return Ok(());
            }
            if self.failed.load(Ordering::Relaxed) {
                return Err(self.aborted());
            }
            if self.subtask.is_source() {
                if let Some((alignment, split)) = &self.alignment {
                    alignment.publish(
                        *split,
                        self.subtask.source_watermark().expect("aligned sources have event time"),
                    );
                    if !alignment.may_advance(*split) && !self.stop.load(Ordering::Relaxed) {
                        paused += 1;
                        if paused < PAUSE_YIELDS_BEFORE_SLEEP {
                            smol::future::yield_now().await;
                        } else {
                            smol::Timer::after(PAUSE_SLEEP).await;
                        }
                        continue;
                    }
                    paused = 0;
                }
                let status = if self.stop.load(Ordering::Relaxed) {
                    self.subtask.end_source()?;
                    SourceStatus::Finished
                } else {
                    let now = self.now();
                    self.subtask.poll_source(now)?
                };
                match status {
                    SourceStatus::Emitted => {
                        batches += 1;
                        if batches.is_multiple_of(SOURCE_BATCHES_PER_YIELD) {
                            self.publish();
                            smol::future::yield_now().await;
                        }
                    }
                    SourceStatus::Pending(until) => {
                        self.publish();
                        let wait = until
                            .map_or(Duration::from_millis(1), |t| t.saturating_duration_since(self.now()));
                        smol::Timer::after(wait.min(Duration::from_millis(100))).await;
                    }
                    SourceStatus::Finished => {}
                }
            } else {
                let Ok((channel, element)) = self.receiver.recv().await else {
                    return Err(self.aborted());
                };
                self.subtask.handle_element(channel, element)?;
                self.publish();
            }
        }
    }
}

/// The chains and subtasks a job runs as, for `rivulet validate`.
pub fn describe_plan(graph: &JobGraph) -> String {
    use std::fmt::Write as _;
    let plan = ExecutionPlan::new(graph);
    let mut out = format!("plan: {} chains, {} subtasks\n", plan.chains.len(), plan.subtasks.len());
    for (i, chain) in plan.chains.iter().enumerate() {
        let names: Vec<&str> =
            chain.vertices.iter().map(|&v: &VertexId| graph.vertex(v).name.as_str()).collect();
        let _ = writeln!(out, "  chain {i}: {} ×{}", names.join(" → "), chain.parallelism);
    }
    out
}
