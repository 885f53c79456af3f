//! The job graph: sources → transformations → sinks, as a validated DAG.
//!
//! A [`JobGraph`] is only built through [`JobGraphBuilder`], which adds a vertex only after its
//! inputs (so the graph is acyclic by construction), type-checks every vertex against its input
//! schemas, and on `build` checks that every path ends in a sink. A constructed graph is known
//! valid: a running job never meets a type error.

mod builder;
mod restart;

pub use builder::{GraphError, JobGraphBuilder};
pub use restart::RestartStrategy;

use std::collections::BTreeMap;
use std::fmt;

use crate::connectors::generator::GeneratorConfig;
use crate::dataflow::operators::aggregate::AggregateConfig;
use crate::dataflow::operators::map::MapField;
use crate::dataflow::operators::window::WindowConfig;
use crate::expr::Expr;
use crate::key::KeySelector;
use crate::types::{EventTimeField, Schema};

/// Index of a vertex in its job graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VertexId(pub u32);

impl VertexId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Text formats of the file connectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    JsonLines,
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::JsonLines => "jsonl",
        }
    }
}

/// What a file source does with a line it cannot parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadLinePolicy {
    Fail,
    /// Skip it and count it in the source's metrics.
    Skip,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileSourceConfig {
    /// A file, or a directory whose files (sorted by name) are read.
    pub path: String,
    pub format: FileFormat,
    pub schema: Schema,
    /// CSV only: the first line names the columns and is checked against the schema.
    pub header: bool,
    pub bad_lines: BadLinePolicy,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileSinkConfig {
    /// The directory that receives one part file per subtask.
    pub path: String,
    pub format: FileFormat,
    pub header: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceConnector {
    Generator(GeneratorConfig),
    File(FileSourceConfig),
}

impl SourceConnector {
    pub fn name(&self) -> &'static str {
        match self {
            SourceConnector::Generator(_) => "generator",
            SourceConnector::File(_) => "file",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SinkConnector {
    Count,
    Stdout { format: FileFormat },
    File(FileSinkConfig),
}

impl SinkConnector {
    pub fn name(&self) -> &'static str {
        match self {
            SinkConnector::Count => "count",
            SinkConnector::Stdout { .. } => "stdout",
            SinkConnector::File(_) => "file",
        }
    }
}

/// A source's event time: the field it is read from and the bound on its disorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTimeSpec {
    pub field: EventTimeField,
    pub out_of_orderness_ms: i64,
}

#[derive(Clone, Debug)]
pub enum VertexKind {
    Source {
        connector: SourceConnector,
        event_time: Option<EventTimeSpec>,
    },
    Filter {
        predicate: Expr,
    },
    /// Output fields in order, each with its name.
    Map {
        fields: Vec<(String, MapField)>,
    },
    KeyBy {
        key: KeySelector,
    },
    Window(WindowConfig),
    Aggregate(AggregateConfig),
    Union,
    Sink {
        connector: SinkConnector,
    },
}

impl VertexKind {
    pub fn name(&self) -> &'static str {
        match self {
            VertexKind::Source { .. } => "source",
            VertexKind::Filter { .. } => "filter",
            VertexKind::Map { .. } => "map",
            VertexKind::KeyBy { .. } => "key_by",
            VertexKind::Window(_) => "window",
            VertexKind::Aggregate(_) => "aggregate",
            VertexKind::Union => "union",
            VertexKind::Sink { .. } => "sink",
        }
    }

    /// Whether the operator keeps keyed state (and so needs a keyed input).
    pub fn is_keyed(&self) -> bool {
        matches!(self, VertexKind::Window(_) | VertexKind::Aggregate(_))
    }
}

#[derive(Clone, Debug)]
pub struct Vertex {
    pub id: VertexId,
    pub name: String,
    pub kind: VertexKind,
    pub parallelism: u16,
    pub output_schema: Schema,
    /// Labels a TaskManager must carry to run this vertex's subtasks (empty: anywhere).
    pub placement: BTreeMap<String, String>,
}

/// How records travel from the subtasks of one vertex to those of the next.
#[derive(Clone, Debug)]
pub enum Partitioning {
    /// Subtask `i` to subtask `i` (equal parallelism); such edges can be chained.
    Forward,
    /// Batches round-robin over the downstream subtasks.
    Rebalance,
    /// By key hash through key groups, so each key reaches exactly one subtask.
    Hash(KeySelector),
    /// Every record to every downstream subtask.
    Broadcast,
}

impl Partitioning {
    pub fn name(&self) -> &'static str {
        match self {
            Partitioning::Forward => "forward",
            Partitioning::Rebalance => "rebalance",
            Partitioning::Hash(_) => "hash",
            Partitioning::Broadcast => "broadcast",
        }
    }
}

/// Which output of a vertex an edge leaves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputTag {
    Main,
    /// A window's late records.
    Late,
}

/// When a job is checkpointed: every `interval` (at least `min_pause` after the previous
/// checkpoint completed), at most one at a time, each given up after `timeout`; the last
/// `retained` completed checkpoints are kept. More than `tolerable_failures` checkpoints in a row
/// that time out, are declined or cannot be stored fail the attempt (Flink's
/// `tolerable-failed-checkpoints`; 0 by default, as there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub min_pause: std::time::Duration,
    pub retained: u16,
    pub tolerable_failures: u32,
}

impl CheckpointConfig {
    pub const TIMEOUT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(600);
    pub const RETAINED_DEFAULT: u16 = 3;

    /// Checkpoints every `interval` with the defaults for the rest.
    pub fn every(interval: std::time::Duration) -> CheckpointConfig {
        CheckpointConfig {
            interval,
            timeout: Self::TIMEOUT_DEFAULT,
            min_pause: std::time::Duration::ZERO,
            retained: Self::RETAINED_DEFAULT,
            tolerable_failures: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Edge {
    pub from: VertexId,
    pub to: VertexId,
    pub output: OutputTag,
    pub partitioning: Partitioning,
}

/// A validated job graph. Vertices are stored in an order where every vertex follows its inputs.
#[derive(Clone, Debug)]
pub struct JobGraph {
    pub name: String,
    pub max_parallelism: u16,
    /// What the JobMaster does when the job fails.
    pub restart: RestartStrategy,
    /// Whether the job file chose `restart` (`[job.restart]`); if not, a cluster may apply its own
    /// default instead.
    pub restart_given: bool,
    /// How often the JobMaster checkpoints the job (`[job.checkpoints]`); `None`: never.
    pub checkpoints: Option<CheckpointConfig>,
    vertices: Vec<Vertex>,
    edges: Vec<Edge>,
}

impl JobGraph {
    pub fn vertices(&self) -> &[Vertex] {
        &self.vertices
    }

    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.index()]
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    pub fn inputs(&self, id: VertexId) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.to == id)
    }

    pub fn outputs(&self, id: VertexId) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.from == id)
    }

    pub fn find(&self, name: &str) -> Option<&Vertex> {
        self.vertices.iter().find(|v| v.name == name)
    }

    /// The schema of a window's late records: its input's.
    pub fn late_schema(&self, window: VertexId) -> &Schema {
        let input = self.inputs(window).next().expect("a window has an input").from;
        &self.vertex(input).output_schema
    }

    /// How an edge really partitions: a forward edge between vertices of different parallelism
    /// cannot pair subtasks one to one, so it rebalances.
    pub fn effective_partitioning(&self, edge: &Edge) -> Partitioning {
        match edge.partitioning {
            Partitioning::Forward
                if self.vertex(edge.from).parallelism != self.vertex(edge.to).parallelism =>
            {
                Partitioning::Rebalance
            }
            ref p => p.clone(),
        }
    }
}

impl fmt::Display for JobGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "job `{}` (max parallelism {})", self.name, self.max_parallelism)?;
        for v in &self.vertices {
            match v.kind {
                VertexKind::Sink { ref connector } => {
                    writeln!(f, "  sink `{}` ×{} ({})", v.name, v.parallelism, connector.name())?
                }
                _ => writeln!(f, "  {} `{}` ×{} {}", v.kind.name(), v.name, v.parallelism, v.output_schema)?,
            }
            if !v.placement.is_empty() {
                let labels: Vec<String> = v.placement.iter().map(|(k, val)| format!("{k}={val}")).collect();
                writeln!(f, "    on TaskManagers labelled {}", labels.join(", "))?;
            }
            for e in self.inputs(v.id) {
                let from = self.vertex(e.from);
                let tag = if e.output == OutputTag::Late { " (late records)" } else { "" };
                writeln!(f, "    ← `{}`{} by {}", from.name, tag, self.effective_partitioning(e).name())?;
            }
        }
        Ok(())
    }
}
