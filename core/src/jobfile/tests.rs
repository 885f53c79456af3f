//! Tests of job files: a good file builds the expected graph; bad ones are in the catalog
//! (`core/tests/bad-jobs/`) with their exact errors.

use std::time::Duration;

use super::{line_column, parse_job, ParseOptions};
use crate::graph::{Partitioning, RestartStrategy, VertexKind};

const PIPELINE: &str = r#"
[job]
name = "t"
parallelism = 3

[[source]]
name = "g"
type = "generator"
count = 10
event_time = "ts_ms"

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
size = "2s"
parallelism = 2
aggregates = { n = "count()" }

[[sink]]
type = "count"
input = "w"
"#;

#[test]
fn a_pipeline_builds_with_its_parallelism_and_partitioning() {
    let g = parse_job(PIPELINE, &ParseOptions::default()).unwrap();
    assert_eq!(g.name, "t");
    let parallelism: Vec<u16> = g.vertices().iter().map(|v| v.parallelism).collect();
    assert_eq!(parallelism, vec![3, 3, 2, 3]);
    let w = g.find("w").unwrap();
    let edge = g.inputs(w.id).next().unwrap();
    assert!(matches!(edge.partitioning, Partitioning::Hash(_)));
    match &w.kind {
        VertexKind::Window(c) => {
            assert_eq!(c.kind, crate::dataflow::windowing::WindowKind::Tumbling { size_ms: 2000 })
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(g.restart, RestartStrategy::default());
}

#[test]
fn the_command_line_parallelism_replaces_the_job_default_only() {
    let g = parse_job(PIPELINE, &ParseOptions { parallelism: Some(1) }).unwrap();
    let parallelism: Vec<u16> = g.vertices().iter().map(|v| v.parallelism).collect();
    assert_eq!(parallelism, vec![1, 1, 2, 1]);
}

#[test]
fn restart_strategies_are_read_from_the_job_section() {
    let with = |table: &str| {
        PIPELINE.replace("parallelism = 3\n", &format!("parallelism = 3\n\n[job.restart]\n{table}\n"))
    };
    let g = parse_job(&with("strategy = \"none\""), &ParseOptions::default()).unwrap();
    assert_eq!(g.restart, RestartStrategy::None);
    let g = parse_job(
        &with("strategy = \"fixed-delay\"\nattempts = 5\ndelay = \"250ms\""),
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(g.restart, RestartStrategy::FixedDelay { attempts: 5, delay: Duration::from_millis(250) });
    let text = with(
        "strategy = \"exponential-backoff\"\nattempts = 8\ninitial = \"50ms\"\nmax = \"5s\"\nmultiplier = 3",
    );
    let g = parse_job(&text, &ParseOptions::default()).unwrap();
    assert_eq!(
        g.restart,
        RestartStrategy::ExponentialBackoff {
            attempts: 8,
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            multiplier: 3
        }
    );
    let err = parse_job(&with("strategy = \"sometimes\""), &ParseOptions::default()).unwrap_err();
    assert_eq!(
        err.message,
        "unknown restart strategy `sometimes`; expected \"none\", \"fixed-delay\" or \"exponential-backoff\""
    );
    let err = parse_job(&with("strategy = \"none\"\ndelay = \"1s\""), &ParseOptions::default()).unwrap_err();
    assert_eq!(err.message, "`delay` does not apply to the none restart strategy");
}

#[test]
fn line_and_column_count_characters_from_one() {
    let text = "ab\ncé d\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 3), (2, 1));
    assert_eq!(line_column(text, text.find('d').unwrap()), (2, 4));
    assert_eq!(line_column(text, 10_000), (3, 1));
}

#[test]
fn placement_restricts_vertices_and_breaks_chains_between_placements() {
    let text = r#"
[[source]]
name = "g"
type = "generator"
count = 10
placement = { tier = "edge", site = "plant-7" }

[[operator]]
name = "f"
type = "filter"
input = "g"
predicate = "true"
placement = { tier = "edge", site = "plant-7" }

[[operator]]
name = "m"
type = "map"
input = "f"
keep = ["id"]
placement = { tier = "cloud" }

[[sink]]
type = "count"
input = "m"
placement = { tier = "cloud" }
"#;
    let g = parse_job(text, &ParseOptions::default()).unwrap();
    let labels = |name: &str| g.find(name).unwrap().placement.clone();
    assert_eq!(labels("g").get("site").map(String::as_str), Some("plant-7"));
    assert_eq!(labels("f"), labels("g"));
    assert_eq!(labels("m").get("tier").map(String::as_str), Some("cloud"));
    let plan = crate::dataflow::plan::ExecutionPlan::new(&g);
    let chains: Vec<Vec<&str>> =
        plan.chains.iter().map(|c| c.vertices.iter().map(|&v| g.vertex(v).name.as_str()).collect()).collect();
    assert_eq!(chains, vec![vec!["g", "f"], vec!["m", "sink1"]]);
}

#[test]
fn the_checkpoint_settings_take_their_values_or_the_defaults() {
    let with = |settings: &str| {
        let text = format!("[job.checkpoints]\ninterval = \"1s\"\n{settings}\n{PIPELINE}");
        parse_job(&text, &ParseOptions::default()).unwrap().checkpoints.unwrap()
    };
    let defaults = with("");
    assert_eq!(defaults, crate::graph::CheckpointConfig::every(Duration::from_secs(1)));
    assert_eq!(
        (defaults.timeout, defaults.retained, defaults.tolerable_failures),
        (Duration::from_secs(600), 3, 0)
    );
    let given = with("timeout = \"30s\"\nmin_pause = \"200ms\"\nretained = 5\ntolerable_failures = 2");
    assert_eq!(
        (given.timeout, given.min_pause, given.retained, given.tolerable_failures),
        (Duration::from_secs(30), Duration::from_millis(200), 5, 2)
    );
}
