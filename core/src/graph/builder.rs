//! Builds a [`JobGraph`] one vertex at a time, checking each against its inputs.

use std::collections::BTreeMap;

use thiserror::Error;

use super::{
    CheckpointConfig, Edge, EventTimeSpec, JobGraph, OutputTag, Partitioning, RestartStrategy, SinkConnector,
    SourceConnector, Vertex, VertexId, VertexKind,
};
use crate::connectors::generator::GeneratorConfig;
use crate::dataflow::operators::map::MapField;
use crate::dataflow::operators::window::LatePolicy;
use crate::limits::{MAX_PARALLELISM_LIMIT, PARALLELISM_MAX, VERTICES_MAX};
use crate::types::{DataType, EventTimeField, Field, Schema};

/// A structural mistake in a job graph. The job-file layer adds the line and column.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct GraphError {
    /// The vertex the mistake is about, if any.
    pub vertex: Option<String>,
    pub message: String,
}

fn err(vertex: &str, message: impl Into<String>) -> GraphError {
    GraphError { vertex: Some(vertex.to_owned()), message: message.into() }
}

pub struct JobGraphBuilder {
    name: String,
    restart: RestartStrategy,
    restart_given: bool,
    checkpoints: Option<CheckpointConfig>,
    default_parallelism: u16,
    max_parallelism: u16,
    vertices: Vec<Vertex>,
    edges: Vec<Edge>,
}

impl JobGraphBuilder {
    pub fn new(
        name: &str,
        default_parallelism: u16,
        max_parallelism: u16,
    ) -> Result<JobGraphBuilder, GraphError> {
        if !(1..=MAX_PARALLELISM_LIMIT).contains(&max_parallelism) {
            return Err(GraphError {
                vertex: None,
                message: format!(
                    "max_parallelism must be between 1 and {MAX_PARALLELISM_LIMIT}, found {max_parallelism}"
                ),
            });
        }
        check_parallelism("job", default_parallelism, max_parallelism)?;
        Ok(JobGraphBuilder {
            name: name.to_owned(),
            restart: RestartStrategy::default(),
            restart_given: false,
            checkpoints: None,
            default_parallelism,
            max_parallelism,
            vertices: Vec::new(),
            edges: Vec::new(),
        })
    }

    pub fn max_parallelism(&self) -> u16 {
        self.max_parallelism
    }

    /// Restricts a vertex to TaskManagers carrying `labels`. Set it before adding the vertex's
    /// consumers: a `key_by` takes its input's placement when it is added.
    pub fn set_placement(&mut self, id: VertexId, labels: BTreeMap<String, String>) {
        assert!(
            !matches!(self.vertex(id).kind, VertexKind::KeyBy { .. }),
            "a key_by runs where its input runs"
        );
        self.vertices[id.index()].placement = labels;
    }

    /// Sets when the job is checkpointed (default: never).
    pub fn set_checkpoints(&mut self, checkpoints: CheckpointConfig) {
        self.checkpoints = Some(checkpoints);
    }

    /// Sets what the JobMaster does when the job fails (default: three restarts a second apart).
    pub fn set_restart(&mut self, restart: RestartStrategy) {
        self.restart = restart;
        self.restart_given = true;
    }

    pub fn find(&self, name: &str) -> Option<&Vertex> {
        self.vertices.iter().find(|v| v.name == name)
    }

    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.index()]
    }

    /// The schema records leave `id` with on output `tag`.
    pub fn output_schema(&self, id: VertexId, tag: OutputTag) -> &Schema {
        match tag {
            OutputTag::Main => &self.vertices[id.index()].output_schema,
            OutputTag::Late => {
                let input = self.edges.iter().find(|e| e.to == id).expect("a window has an input").from;
                &self.vertices[input.index()].output_schema
            }
        }
    }

    /// Adds a vertex fed by `inputs`. `partitioning` overrides the default for its input edges
    /// (hash after a `key_by`, forward at equal parallelism, rebalance otherwise).
    pub fn add(
        &mut self,
        name: &str,
        kind: VertexKind,
        parallelism: Option<u16>,
        inputs: &[(VertexId, OutputTag)],
        partitioning: Option<Partitioning>,
    ) -> Result<VertexId, GraphError> {
        if self.vertices.len() >= VERTICES_MAX {
            return Err(err(
                name,
                format!("a job holds at most {VERTICES_MAX} sources, operators and sinks"),
            ));
        }
        if self.find(name).is_some() {
            return Err(err(name, format!("the name `{name}` is used twice")));
        }
        let input_schemas: Vec<&Schema> =
            inputs.iter().map(|&(id, tag)| self.output_schema(id, tag)).collect();
        self.check_inputs(name, &kind, inputs)?;
        let output_schema = self.output_schema_of(name, &kind, &input_schemas, inputs)?;
        let mut parallelism = parallelism.unwrap_or(self.default_parallelism);
        check_parallelism(name, parallelism, self.max_parallelism)?;
        if let VertexKind::KeyBy { .. } = kind {
            // A key_by only marks the stream: it runs in its input's subtasks.
            parallelism = self.vertex(inputs[0].0).parallelism;
        }
        for &(from, _) in inputs {
            if partitioning.is_some() && matches!(self.vertex(from).kind, VertexKind::KeyBy { .. }) {
                return Err(err(
                    name,
                    format!(
                        "the edge after key_by `{}` is partitioned by key; remove `partitioning`",
                        self.vertex(from).name
                    ),
                ));
            }
        }
        let id = VertexId(self.vertices.len() as u32);
        for &(from, output) in inputs {
            let partitioning = match (&partitioning, &self.vertex(from).kind) {
                (Some(p), _) => p.clone(),
                (None, VertexKind::KeyBy { key }) => Partitioning::Hash(key.clone()),
                (None, _) => Partitioning::Forward,
            };
            self.edges.push(Edge { from, to: id, output, partitioning });
        }
        // A key_by runs in its input's subtasks, so it runs where its input runs.
        let placement = match kind {
            VertexKind::KeyBy { .. } => self.vertex(inputs[0].0).placement.clone(),
            _ => BTreeMap::new(),
        };
        self.vertices.push(Vertex { id, name: name.to_owned(), kind, parallelism, output_schema, placement });
        Ok(id)
    }

    fn check_inputs(
        &self,
        name: &str,
        kind: &VertexKind,
        inputs: &[(VertexId, OutputTag)],
    ) -> Result<(), GraphError> {
        let what = kind.name();
        match (kind, inputs.len()) {
            (VertexKind::Source { .. }, 0) => {}
            (VertexKind::Source { .. }, _) => return Err(err(name, "a source takes no input")),
            (_, 0) => return Err(err(name, format!("a {what} needs an input"))),
            (VertexKind::Union, _) => {}
            (_, 1) => {}
            (_, n) => {
                return Err(err(
                    name,
                    format!("a {what} takes one input, found {n}; merge streams with a union first"),
                ))
            }
        }
        for &(from, tag) in inputs {
            let upstream = self.vertex(from);
            if let VertexKind::Sink { .. } = upstream.kind {
                return Err(err(name, format!("`{}` is a sink and has no output to read", upstream.name)));
            }
            if tag == OutputTag::Late {
                match &upstream.kind {
                    VertexKind::Window(w) if w.late == LatePolicy::Route => {}
                    VertexKind::Window(_) => {
                        return Err(err(
                            name,
                            format!(
                                "window `{}` drops late records; set late = \"route\" to read `{}.late`",
                                upstream.name, upstream.name
                            ),
                        ))
                    }
                    _ => {
                        return Err(err(
                            name,
                            format!(
                                "only windows have a late output; `{}` is a {}",
                                upstream.name,
                                upstream.kind.name()
                            ),
                        ))
                    }
                }
            }
        }
        if kind.is_keyed() {
            let upstream = self.vertex(inputs[0].0);
            let VertexKind::KeyBy { key: upstream_key } = &upstream.kind else {
                return Err(err(
                    name,
                    format!(
                        "a {what} needs a keyed input: put a key_by before it (its input `{}` is a {})",
                        upstream.name,
                        upstream.kind.name()
                    ),
                ));
            };
            let key = match kind {
                VertexKind::Window(w) => &w.key,
                VertexKind::Aggregate(a) => &a.key,
                _ => unreachable!(),
            };
            assert_eq!(key.fields, upstream_key.fields, "a keyed operator keys by its key_by's fields");
        }
        Ok(())
    }

    fn output_schema_of(
        &self,
        name: &str,
        kind: &VertexKind,
        inputs: &[&Schema],
        ids: &[(VertexId, OutputTag)],
    ) -> Result<Schema, GraphError> {
        Ok(match kind {
            VertexKind::Source { connector, event_time } => {
                let mut schema = match connector {
                    SourceConnector::Generator(_) => GeneratorConfig::schema(),
                    SourceConnector::File(f) => f.schema.clone(),
                };
                if let Some(EventTimeSpec { field, out_of_orderness_ms }) = event_time {
                    assert!(schema.fields[field.index].data_type.is_integer_like());
                    assert!(*out_of_orderness_ms >= 0);
                    schema.event_time = Some(*field);
                }
                schema
            }
            VertexKind::Filter { predicate } => {
                assert_eq!(
                    predicate.data_type(),
                    DataType::Bool,
                    "filter predicates are type-checked as bool"
                );
                inputs[0].clone()
            }
            VertexKind::KeyBy { key } => {
                for (&f, &t) in key.fields.iter().zip(&key.types) {
                    assert_eq!(inputs[0].fields[f].data_type, t);
                }
                inputs[0].clone()
            }
            VertexKind::Union => {
                for (schema, &(id, _)) in inputs.iter().zip(ids).skip(1) {
                    if schema.fields != inputs[0].fields {
                        return Err(err(
                            name,
                            format!(
                                "a union needs inputs of one schema: `{}` has {} but `{}` has {}",
                                self.vertex(ids[0].0).name,
                                inputs[0],
                                self.vertex(id).name,
                                schema
                            ),
                        ));
                    }
                }
                let mut schema = inputs[0].clone();
                if inputs.iter().any(|s| s.event_time != schema.event_time) {
                    schema.event_time = None;
                }
                schema
            }
            VertexKind::Map { fields } => {
                let mut schema = Schema::new(Vec::new());
                for (out_index, (field_name, field)) in fields.iter().enumerate() {
                    if schema.index_of(field_name).is_some() {
                        return Err(err(name, format!("the output field `{field_name}` is defined twice")));
                    }
                    let data_type = match field {
                        MapField::Input(i) => {
                            if inputs[0].event_time.is_some_and(|et| et.index == *i)
                                && schema.event_time.is_none()
                            {
                                schema.event_time = Some(EventTimeField {
                                    index: out_index,
                                    offset_ms: inputs[0].event_time.unwrap().offset_ms,
                                });
                            }
                            inputs[0].fields[*i].data_type
                        }
                        MapField::Computed(e) => e.data_type(),
                    };
                    schema.fields.push(Field::new(field_name.clone(), data_type));
                }
                schema
            }
            VertexKind::Window(w) => {
                let input = inputs[0];
                assert_eq!(Some(w.event_time), input.event_time, "a window reads its input's event time");
                let mut fields: Vec<Field> = w.key.fields.iter().map(|&f| input.fields[f].clone()).collect();
                fields.push(Field::new("window_start", DataType::Timestamp));
                fields.push(Field::new("window_end", DataType::Timestamp));
                fields.extend(w.aggregates.iter().map(|a| Field::new(a.output_name.clone(), a.output_type)));
                check_unique(name, &fields)?;
                assert_eq!(fields.iter().map(|f| f.data_type).collect::<Vec<_>>(), w.output_types);
                let window_end = w.key.fields.len() + 1;
                Schema { fields, event_time: Some(EventTimeField { index: window_end, offset_ms: -1 }) }
            }
            VertexKind::Aggregate(a) => {
                let input = inputs[0];
                let mut fields: Vec<Field> = a.key.fields.iter().map(|&f| input.fields[f].clone()).collect();
                let mut event_time = None;
                if let Some(ts) = a.event_time_input {
                    assert_eq!(input.event_time.map(|e| e.index), Some(ts));
                    event_time = Some(EventTimeField {
                        index: fields.len(),
                        offset_ms: input.event_time.unwrap().offset_ms,
                    });
                    fields.push(Field::new(input.fields[ts].name.clone(), DataType::Timestamp));
                }
                fields.extend(a.aggregates.iter().map(|s| Field::new(s.output_name.clone(), s.output_type)));
                check_unique(name, &fields)?;
                assert_eq!(fields.iter().map(|f| f.data_type).collect::<Vec<_>>(), a.output_types);
                Schema { fields, event_time }
            }
            VertexKind::Sink { connector } => {
                if let SinkConnector::File(f) = connector {
                    if f.path.is_empty() {
                        return Err(err(name, "a file sink needs a `path`"));
                    }
                }
                Schema::default()
            }
        })
    }

    /// Checks that every path ends in a sink, and returns the graph.
    pub fn build(self) -> Result<JobGraph, GraphError> {
        if self.vertices.is_empty() {
            return Err(GraphError {
                vertex: None,
                message: "the job has no sources, operators or sinks".into(),
            });
        }
        if !self.vertices.iter().any(|v| matches!(v.kind, VertexKind::Sink { .. })) {
            return Err(GraphError {
                vertex: None,
                message: "the job has no sink: its results would go nowhere".into(),
            });
        }
        for v in &self.vertices {
            let has_output = self.edges.iter().any(|e| e.from == v.id && e.output == OutputTag::Main);
            if !has_output && !matches!(v.kind, VertexKind::Sink { .. }) {
                return Err(err(
                    &v.name,
                    format!(
                        "the output of {} `{}` goes nowhere: no operator or sink reads it",
                        v.kind.name(),
                        v.name
                    ),
                ));
            }
        }
        Ok(JobGraph {
            name: self.name,
            max_parallelism: self.max_parallelism,
            restart: self.restart,
            restart_given: self.restart_given,
            checkpoints: self.checkpoints,
            vertices: self.vertices,
            edges: self.edges,
        })
    }
}

fn check_parallelism(name: &str, parallelism: u16, max_parallelism: u16) -> Result<(), GraphError> {
    let limit = max_parallelism.min(PARALLELISM_MAX);
    if parallelism == 0 || parallelism > limit {
        return Err(err(name, format!("parallelism must be between 1 and {limit}, found {parallelism}")));
    }
    Ok(())
}

fn check_unique(name: &str, fields: &[Field]) -> Result<(), GraphError> {
    for (i, f) in fields.iter().enumerate() {
        if fields[..i].iter().any(|g| g.name == f.name) {
            return Err(err(name, format!("the output field `{}` is defined twice", f.name)));
        }
    }
    Ok(())
}
