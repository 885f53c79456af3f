//! The embedded mini-cluster: every subtask of a job as a task on a pool of worker threads,
//! connected by bounded queues.
//!
//! Each subtask has one input queue of [`INPUT_QUEUE_ELEMENTS_MAX`] elements shared by all its
//! producers; a producer whose consumer's queue is full waits (back-pressure), so memory stays
//! bounded whatever the speeds. The subtasks themselves are the core's sans-IO state machines;
//! this module only moves their output, feeds them input and the clock, and publishes counters.

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

/// Source batches a subtask handles before it yields its worker thread to other tasks.
const SOURCE_BATCHES_PER_YIELD: u32 = 32;

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
    let executor = Arc::new(smol::Executor::new());
    let (result_tx, result_rx) = async_channel::unbounded::<(String, Result<(), TaskError>)>();
    let epoch = handle.started;
    for ((subtask, receiver), mine) in subtasks.into_iter().zip(receivers).zip(subtask_counters) {
        let driver = Driver {
            subtask,
            receiver,
            senders: senders.clone(),
            counters: mine,
            stop: stop.clone(),
            failed: failed.clone(),
            epoch,
        };
        let result_tx = result_tx.clone();
        let remaining = handle.remaining.clone();
        executor
            .spawn(async move {
                let name = driver.subtask.name().to_owned();
                let result = driver.run().await;
                remaining.fetch_sub(1, Ordering::Relaxed);
                // The receiver outlives every task; a failed send means the run is over anyway.
                let _ = result_tx.send((name, result)).await;
            })
            .detach();
    }
    drop(result_tx);
    drop(senders);

    let (shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
    let first_error = std::thread::scope(|scope| -> Result<Option<String>> {
        for i in 0..options.workers.max(1) {
            let executor = executor.clone();
            let shutdown = shutdown_rx.clone();
            std::thread::Builder::new()
                .name(format!("rivulet-worker-{i}"))
                .spawn_scoped(scope, move || smol::block_on(executor.run(shutdown.recv())))
                .context("starting a worker thread")?;
        }
        let mut first_error = None;
        let mut results = 0;
        let total = handle.remaining();
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
                    if let Err(e) = result {
                        if first_error.is_none() {
                            first_error = Some(format!("subtask {name} failed: {e}"));
                            failed.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Some(Err(_)) => break,
                None => {
                    watch(&handle);
                    next_tick = StdInstant::now() + tick;
                }
            }
        }
        drop(shutdown_tx);
        Ok(first_error)
    })?;
    if let Some(error) = first_error {
        return Err(anyhow!(error));
    }
    Ok(RunResult {
        elapsed: handle.started.elapsed(),
        metrics: handle.metrics_by_vertex(graph.vertices().len()),
    })
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
        TaskError::Source {
            source_name: self.subtask.name().to_owned(),
            message: "aborted: another subtask failed".into(),
        }
    }

    async fn run(mut self) -> Result<(), TaskError> {
        let result = self.run_inner().await;
        self.publish();
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
        loop {
            self.deliver().await?;
            if self.subtask.is_finished() {
                return Ok(());
            }
            if self.failed.load(Ordering::Relaxed) {
                return Err(self.aborted());
            }
            if self.subtask.is_source() {
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
                        if batches % SOURCE_BATCHES_PER_YIELD == 0 {
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
