//! The execution plan: a job graph expanded into chains and subtasks, with the channels between them.
//!
//! A vertex joins its input's chain when the edge between them is forward (equal parallelism), it
//! has no other input, and its input feeds nothing else: then records pass from one operator to
//! the next as a function call, with no queue and no copy. Each chain runs as `parallelism`
//! subtasks. A subtask's input channels are numbered per incoming edge: one channel for a forward
//! edge, one per upstream subtask otherwise.

use std::fmt;

use crate::graph::{JobGraph, OutputTag, Partitioning, VertexId, VertexKind};

/// Index of a subtask in its execution plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubtaskId(pub u32);

impl SubtaskId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Operators that run together in one subtask, head first.
#[derive(Clone, Debug)]
pub struct ChainPlan {
    pub vertices: Vec<VertexId>,
    pub parallelism: u16,
    /// The first subtask of this chain; its subtasks are numbered consecutively.
    pub first_subtask: SubtaskId,
}

/// An input channel of a subtask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelAddr {
    pub subtask: SubtaskId,
    pub channel: u32,
}

/// One output of a subtask: the records of one edge leaving its chain.
#[derive(Clone, Debug)]
pub struct WriterPlan {
    /// Position in the chain of the vertex the edge leaves.
    pub chain_position: usize,
    pub output: OutputTag,
    pub partitioning: Partitioning,
    /// Downstream channels, in downstream subtask order.
    pub targets: Vec<ChannelAddr>,
}

#[derive(Clone, Debug)]
pub struct SubtaskPlan {
    pub id: SubtaskId,
    pub chain: usize,
    /// This subtask's index among its chain's `parallelism` subtasks.
    pub index: u16,
    pub input_channels: u32,
    pub writers: Vec<WriterPlan>,
}

#[derive(Clone, Debug)]
pub struct ExecutionPlan {
    pub chains: Vec<ChainPlan>,
    pub subtasks: Vec<SubtaskPlan>,
}

impl ExecutionPlan {
    pub fn new(graph: &JobGraph) -> ExecutionPlan {
        let chain_of = assign_chains(graph);
        let chain_count = chain_of.iter().max().map_or(0, |&c| c + 1);
        let mut chains: Vec<ChainPlan> = (0..chain_count)
            .map(|_| ChainPlan { vertices: Vec::new(), parallelism: 0, first_subtask: SubtaskId(0) })
            .collect();
        for v in graph.vertices() {
            let chain = &mut chains[chain_of[v.id.index()]];
            chain.vertices.push(v.id);
            chain.parallelism = v.parallelism;
        }
        let mut next = 0u32;
        for chain in &mut chains {
            chain.first_subtask = SubtaskId(next);
            next += u32::from(chain.parallelism);
        }
        // Channel numbering: per chain head, each incoming edge takes a contiguous range.
        let mut input_channels = vec![0u32; chains.len()];
        let mut edge_base = vec![0u32; graph.edges().len()];
        for (e, edge) in graph.edges().iter().enumerate() {
            if is_chained(graph, &chain_of, e) {
                continue;
            }
            let to_chain = chain_of[edge.to.index()];
            edge_base[e] = input_channels[to_chain];
            input_channels[to_chain] += match graph.effective_partitioning(edge) {
                Partitioning::Forward => 1,
                _ => u32::from(graph.vertex(edge.from).parallelism),
            };
        }
        let mut subtasks = Vec::new();
        for (c, chain) in chains.iter().enumerate() {
            for index in 0..chain.parallelism {
                let mut writers = Vec::new();
                for (position, &v) in chain.vertices.iter().enumerate() {
                    for (e, edge) in graph.edges().iter().enumerate() {
                        if edge.from != v || is_chained(graph, &chain_of, e) {
                            continue;
                        }
                        let partitioning = graph.effective_partitioning(edge);
                        let target_chain = &chains[chain_of[edge.to.index()]];
                        let targets = match partitioning {
                            Partitioning::Forward => vec![ChannelAddr {
                                subtask: SubtaskId(target_chain.first_subtask.0 + u32::from(index)),
                                channel: edge_base[e],
                            }],
                            _ => (0..target_chain.parallelism)
                                .map(|j| ChannelAddr {
                                    subtask: SubtaskId(target_chain.first_subtask.0 + u32::from(j)),
                                    channel: edge_base[e] + u32::from(index),
                                })
                                .collect(),
                        };
                        writers.push(WriterPlan {
                            chain_position: position,
                            output: edge.output,
                            partitioning,
                            targets,
                        });
                    }
                }
                subtasks.push(SubtaskPlan {
                    id: SubtaskId(chain.first_subtask.0 + u32::from(index)),
                    chain: c,
                    index,
                    input_channels: input_channels[c],
                    writers,
                });
            }
        }
        let plan = ExecutionPlan { chains, subtasks };
        plan.assert_invariants();
        plan
    }

    pub fn assert_invariants(&self) {
        for (i, s) in self.subtasks.iter().enumerate() {
            assert_eq!(s.id.index(), i, "subtasks are numbered in order");
        }
        // Every input channel of every subtask has exactly one producer.
        let mut producers: Vec<Vec<u32>> =
            self.subtasks.iter().map(|s| vec![0; s.input_channels as usize]).collect();
        for s in &self.subtasks {
            for w in &s.writers {
                for t in &w.targets {
                    producers[t.subtask.index()][t.channel as usize] += 1;
                }
            }
        }
        assert!(producers.iter().flatten().all(|&n| n == 1), "a channel without exactly one producer");
    }

    /// The chain a vertex runs in.
    pub fn chain_of(&self, vertex: VertexId) -> usize {
        self.chains.iter().position(|c| c.vertices.contains(&vertex)).expect("every vertex is in a chain")
    }
}

fn is_chained(graph: &JobGraph, chain_of: &[usize], edge: usize) -> bool {
    let e = &graph.edges()[edge];
    chain_of[e.from.index()] == chain_of[e.to.index()]
}

fn assign_chains(graph: &JobGraph) -> Vec<usize> {
    let mut chain_of: Vec<usize> = Vec::with_capacity(graph.vertices().len());
    let mut chains = 0;
    for v in graph.vertices() {
        let inputs: Vec<_> = graph.inputs(v.id).collect();
        let chained_to = match inputs.as_slice() {
            [edge]
                if edge.output == OutputTag::Main
                    && matches!(graph.effective_partitioning(edge), Partitioning::Forward)
                    && graph.outputs(edge.from).filter(|e| e.output == OutputTag::Main).count() == 1
                    && !matches!(v.kind, VertexKind::Source { .. }) =>
            {
                Some(chain_of[edge.from.index()])
            }
            _ => None,
        };
        chain_of.push(chained_to.unwrap_or_else(|| {
            chains += 1;
            chains - 1
        }));
    }
    chain_of
}

impl fmt::Display for ExecutionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} chains, {} subtasks", self.chains.len(), self.subtasks.len())
    }
}
