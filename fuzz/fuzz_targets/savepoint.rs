//! A savepoint file: decoding arbitrary bytes never panics, and a decoded savepoint is checked
//! against a job's plan without panicking either.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rivulet_core::graph::JobGraph;
use rivulet_core::jobfile::{parse_job, ParseOptions};
use rivulet_core::state::savepoint::decode_savepoint;

const JOB: &str = "[job]\nname = \"f\"\nparallelism = 2\n\n[[source]]\nname = \"g\"\ntype = \"generator\"\n\
                   count = 5\n\n[[sink]]\nname = \"out\"\ntype = \"count\"\ninput = \"g\"\n";

fn graph() -> &'static JobGraph {
    static GRAPH: OnceLock<JobGraph> = OnceLock::new();
    GRAPH.get_or_init(|| parse_job(JOB, &ParseOptions::default()).expect("the fuzz job parses"))
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(savepoint) = decode_savepoint(bytes) {
        let _ = savepoint.check_plan(graph());
    }
});
