//! Helpers shared by the node's integration tests: running a job file's text on the embedded
//! mini-cluster, and writing paths into job files.

// Each test binary compiles its own copy of this module and uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rivulet_core::graph::JobGraph;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_node::connectors::NodeConnectors;
use rivulet_node::runner::{run_job, RunOptions, RunResult};

/// Worker threads of every test run: more than one, so that subtasks really run concurrently.
pub const TEST_WORKERS: usize = 2;

/// The workspace root (where `examples/` is).
pub fn workspace_root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).canonicalize().expect("the workspace root exists")
}

/// `path` as a TOML basic string, quoted and escaped.
pub fn toml_path(path: &Path) -> String {
    let text = path.to_str().expect("test paths are UTF-8");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Parses a job file's text; a test's job text must be valid, so a parse error panics with it.
pub fn parse(text: &str) -> JobGraph {
    parse_job(text, &ParseOptions::default()).unwrap_or_else(|e| panic!("bad test job: {e}\n{text}"))
}

/// Runs a parsed job to its end; the error is the text `rivulet run` prints after "failed: ".
pub fn run(graph: &JobGraph) -> Result<RunResult, String> {
    let stop = Arc::new(AtomicBool::new(false));
    run_job(
        graph,
        &NodeConnectors::default(),
        &RunOptions { workers: TEST_WORKERS },
        stop,
        Duration::from_secs(1),
        |_| {},
    )
    .map_err(|e| format!("{e:#}"))
}

/// The counters of the vertex called `name`.
pub fn metrics_of<'r>(
    graph: &JobGraph,
    result: &'r RunResult,
    name: &str,
) -> &'r rivulet_core::dataflow::operator::OperatorMetrics {
    let vertex = graph.find(name).unwrap_or_else(|| panic!("the job has no vertex `{name}`"));
    &result.metrics[vertex.id.index()]
}

/// The names of the entries of `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
