//! The execution plan: a job graph expanded into chains and subtasks, with the channels between them.
//!
//! A vertex joins its input's chain when the edge between them is forward (equal parallelism), it
//! has no other input, its input feeds nothing else, and both have the same placement: then records pass from one operator to
//! the next as a function call, with no queue and no copy. Each chain runs as `parallelism`
//! subtasks. A subtask's input channels are numbered per incoming edge: one channel for a forward
//! edge, one per upstream subtask otherwise.

use std::fmt;

use crate::graph::{JobGraph, OutputTag, Partitioning, VertexId, VertexKind};

/// Index of a subtask in its execution plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
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

    /// Each chain's name: its vertices' names, head first, joined by ` -> `.
    pub fn chain_names(&self, graph: &JobGraph) -> Vec<String> {
        (self.chains.iter())
            .map(|c| {
                c.vertices.iter().map(|&v| graph.vertex(v).name.as_str()).collect::<Vec<_>>().join(" -> ")
            })
            .collect()
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
                    && graph.vertex(edge.from).placement == v.placement
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobfile::{parse_job, ParseOptions};

    fn graph(text: &str) -> JobGraph {
        parse_job(text, &ParseOptions::default()).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The plan (checked by `assert_invariants` in `new`) and its chains as vertex names.
    fn plan(graph: &JobGraph) -> (ExecutionPlan, Vec<Vec<String>>) {
        let plan = ExecutionPlan::new(graph);
        let names = plan
            .chains
            .iter()
            .map(|c| c.vertices.iter().map(|&v| graph.vertex(v).name.clone()).collect())
            .collect();
        (plan, names)
    }

    /// A generator `g` with event time and `parallelism`, then the rest of the job.
    fn job(parallelism: u16, rest: &str) -> String {
        format!(
            "[job]\nparallelism = {parallelism}\n\n[[source]]\nname = \"g\"\ntype = \"generator\"\n\
             count = 100\nevent_time = \"ts_ms\"\n\n{rest}"
        )
    }

    const KEYED_WINDOW: &str = r#"
[[operator]]
name = "k"
type = "key_by"
input = "g"
key = "key"

[[operator]]
name = "w"
type = "window"
input = "k"
window = "tumbling"
size = 10
aggregates = { n = "count()" }
"#;

    fn addr(subtask: u32, channel: u32) -> ChannelAddr {
        ChannelAddr { subtask: SubtaskId(subtask), channel }
    }

    #[test]
    fn forward_operators_at_equal_parallelism_run_in_one_chain() {
        let g = graph(&job(
            2,
            r#"
[[operator]]
name = "f"
type = "filter"
input = "g"
predicate = "value > 1"

[[operator]]
name = "m"
type = "map"
input = "f"
compute = { x = "value * 2" }

[[sink]]
name = "out"
type = "count"
input = "m"
"#,
        ));
        let (plan, chains) = plan(&g);
        assert_eq!(chains, vec![vec!["g", "f", "m", "out"]]);
        assert_eq!(plan.subtasks.len(), 2);
        for (i, s) in plan.subtasks.iter().enumerate() {
            assert_eq!((s.chain, s.index, s.input_channels), (0, i as u16, 0));
            assert!(s.writers.is_empty(), "nothing leaves a chain that ends in a sink");
        }
        assert_eq!(plan.chain_of(g.find("m").unwrap().id), 0);
    }

    #[test]
    fn key_by_joins_its_input_chain_and_its_hash_edge_starts_a_new_one() {
        let g = graph(&job(3, &format!("{KEYED_WINDOW}\n{}", sink("w", ""))));
        let (plan, chains) = plan(&g);
        assert_eq!(chains, vec![vec!["g", "k"], vec!["w", "out"]]);
        assert_eq!(plan.chains[1].first_subtask, SubtaskId(3));
        for source in &plan.subtasks[..3] {
            let [w] = source.writers.as_slice() else { panic!("one writer: {:?}", source.writers) };
            assert_eq!(w.chain_position, 1, "the edge leaves the key_by, second in the chain");
            assert!(matches!(w.partitioning, Partitioning::Hash(_)));
            // Every window subtask, on the channel numbered by this source subtask.
            let channel = u32::from(source.index);
            assert_eq!(w.targets, vec![addr(3, channel), addr(4, channel), addr(5, channel)]);
        }
        for window in &plan.subtasks[3..] {
            assert_eq!(window.input_channels, 3, "one channel per upstream subtask");
            assert!(window.writers.is_empty());
        }
    }

    /// A count sink `out` reading `input`, with extra settings.
    fn sink(input: &str, extra: &str) -> String {
        format!("[[sink]]\nname = \"out\"\ntype = \"count\"\ninput = \"{input}\"\n{extra}\n")
    }

    #[test]
    fn a_parallelism_mismatch_turns_forward_into_rebalance_and_breaks_the_chain() {
        let filter = "[[operator]]\nname = \"f\"\ntype = \"filter\"\ninput = \"g\"\npredicate = \"true\"\n\
                      parallelism = 3\n\n";
        let g = graph(&job(2, &format!("{filter}{}", sink("f", "parallelism = 3"))));
        let (plan, chains) = plan(&g);
        assert_eq!(chains, vec![vec!["g"], vec!["f", "out"]]);
        for source in &plan.subtasks[..2] {
            let [w] = source.writers.as_slice() else { panic!("one writer") };
            assert!(matches!(w.partitioning, Partitioning::Rebalance));
            let c = u32::from(source.index);
            assert_eq!(w.targets, vec![addr(2, c), addr(3, c), addr(4, c)]);
        }
        assert!(plan.subtasks[2..].iter().all(|s| s.input_channels == 2));
    }

    #[test]
    fn an_explicit_rebalance_or_broadcast_breaks_the_chain_at_equal_parallelism() {
        let (_, chains) = plan(&graph(&job(2, &sink("g", "partitioning = \"forward\""))));
        assert_eq!(chains, vec![vec!["g", "out"]]);
        for partitioning in ["rebalance", "broadcast"] {
            let rest = sink("g", &format!("partitioning = \"{partitioning}\""));
            let (plan, chains) = plan(&graph(&job(2, &rest)));
            assert_eq!(chains, vec![vec!["g"], vec!["out"]], "{partitioning}");
            let w = &plan.subtasks[1].writers[0];
            assert_eq!(w.partitioning.name(), partitioning);
            assert_eq!(w.targets, vec![addr(2, 1), addr(3, 1)]);
            assert_eq!(plan.subtasks[2].input_channels, 2);
        }
    }

    #[test]
    fn a_vertex_with_two_consumers_is_chained_with_neither() {
        let rest = r#"
[[operator]]
name = "a"
type = "filter"
input = "g"
predicate = "value > 1"

[[operator]]
name = "b"
type = "filter"
input = "g"
predicate = "value < 1"

[[sink]]
name = "sa"
type = "count"
input = "a"

[[sink]]
name = "sb"
type = "count"
input = "b"
"#;
        let (plan, chains) = plan(&graph(&job(2, rest)));
        assert_eq!(chains, vec![vec!["g"], vec!["a", "sa"], vec!["b", "sb"]]);
        for source in &plan.subtasks[..2] {
            let i = u32::from(source.index);
            let targets: Vec<_> = source.writers.iter().map(|w| w.targets.clone()).collect();
            // Forward edges: subtask i to subtask i, on the single channel of each edge.
            assert_eq!(targets, vec![vec![addr(2 + i, 0)], vec![addr(4 + i, 0)]]);
            assert!(source.writers.iter().all(|w| matches!(w.partitioning, Partitioning::Forward)));
        }
        assert!(plan.subtasks[2..].iter().all(|s| s.input_channels == 1));
    }

    #[test]
    fn a_union_is_a_chain_head_with_one_channel_range_per_input() {
        let rest = r#"
[[source]]
name = "h"
type = "generator"
count = 100
event_time = "ts_ms"
parallelism = 3

[[operator]]
name = "u"
type = "union"
input = ["g", "h"]

[[sink]]
name = "out"
type = "count"
input = "u"
"#;
        let (plan, chains) = plan(&graph(&job(2, rest)));
        assert_eq!(chains, vec![vec!["g"], vec!["h"], vec!["u", "out"]]);
        // u's subtasks are 5 and 6: channel 0 from g (forward), channels 1..4 from h (rebalance).
        assert!(plan.subtasks[5..].iter().all(|s| s.input_channels == 4));
        for i in 0..2u32 {
            assert_eq!(plan.subtasks[i as usize].writers[0].targets, vec![addr(5 + i, 0)]);
        }
        for j in 0..3u32 {
            let w = &plan.subtasks[2 + j as usize].writers[0];
            assert!(matches!(w.partitioning, Partitioning::Rebalance));
            assert_eq!(w.targets, vec![addr(5, 1 + j), addr(6, 1 + j)]);
        }
    }

    #[test]
    fn a_union_of_a_stream_with_itself_gets_a_channel_per_edge() {
        let rest = format!(
            "[[operator]]\nname = \"u\"\ntype = \"union\"\ninput = [\"g\", \"g\"]\n\n{}",
            sink("u", "")
        );
        let (plan, chains) = plan(&graph(&job(2, &rest)));
        assert_eq!(chains, vec![vec!["g"], vec!["u", "out"]]);
        for source in &plan.subtasks[..2] {
            let i = u32::from(source.index);
            let targets: Vec<_> = source.writers.iter().map(|w| w.targets.clone()).collect();
            assert_eq!(targets, vec![vec![addr(2 + i, 0)], vec![addr(2 + i, 1)]]);
        }
        assert!(plan.subtasks[2..].iter().all(|s| s.input_channels == 2));
    }

    #[test]
    fn a_late_output_leaves_a_chained_window_through_its_own_writer() {
        let window = KEYED_WINDOW.replace("size = 10", "size = 10\nlate = \"route\"");
        let rest = format!(
            "{window}\n[[sink]]\nname = \"out\"\ntype = \"count\"\ninput = \"w\"\n\n\
             [[sink]]\nname = \"late\"\ntype = \"count\"\ninput = \"w.late\"\n"
        );
        let (plan, chains) = plan(&graph(&job(2, &rest)));
        assert_eq!(chains, vec![vec!["g", "k"], vec!["w", "out"], vec!["late"]]);
        for window in &plan.subtasks[2..4] {
            let [w] = window.writers.as_slice() else { panic!("one writer: the late edge") };
            assert_eq!((w.chain_position, w.output), (0, OutputTag::Late));
            assert!(matches!(w.partitioning, Partitioning::Forward));
            assert_eq!(w.targets, vec![addr(4 + u32::from(window.index), 0)]);
        }
    }

    #[test]
    fn every_example_job_has_one_producer_per_channel_at_any_parallelism() {
        let examples = [
            include_str!("../../../examples/quickstart.toml"),
            include_str!("../../../examples/sales_batch.toml"),
            include_str!("../../../examples/w1.toml"),
            include_str!("../../../examples/w2.toml"),
        ];
        for text in examples {
            for p in 1..=5 {
                let g = parse_job(text, &ParseOptions { parallelism: Some(p) }).expect("a valid example");
                let plan = ExecutionPlan::new(&g); // asserts its invariants
                let subtasks: u32 = plan.chains.iter().map(|c| u32::from(c.parallelism)).sum();
                assert_eq!(plan.subtasks.len() as u32, subtasks);
                for v in g.vertices() {
                    assert_eq!(plan.chains[plan.chain_of(v.id)].parallelism, v.parallelism);
                }
            }
        }
    }

    #[test]
    fn a_keyed_operator_reads_a_hash_partitioned_input_whatever_the_job_file_says() {
        for partitioning in ["forward", "rebalance", "broadcast"] {
            let window =
                KEYED_WINDOW.replace("size = 10", &format!("size = 10\npartitioning = \"{partitioning}\""));
            let text = job(2, &format!("{window}\n{}", sink("w", "")));
            // Either the job file is refused, or the edge into the window stays hash partitioned.
            let Ok(g) = parse_job(&text, &ParseOptions::default()) else { continue };
            let (plan, chains) = plan(&g);
            assert_eq!(chains, vec![vec!["g", "k"], vec!["w", "out"]], "{partitioning}");
            let w = &plan.subtasks[0].writers[0];
            assert!(
                matches!(w.partitioning, Partitioning::Hash(_)),
                "{partitioning}: {}",
                w.partitioning.name()
            );
        }
    }
}
