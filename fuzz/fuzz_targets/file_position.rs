//! A file source's read position from checkpoint storage: restoring arbitrary bytes never panics,
//! and a source that accepted them reads on without panicking.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rivulet_core::dataflow::source::{SourcePoll, SourceReader};
use rivulet_core::graph::{BadLinePolicy, FileFormat, FileSourceConfig};
use rivulet_core::types::{DataType, Field, Schema};
use rivulet_core::time::Instant;
use rivulet_node::file_source::FileSource;

/// Three small input files, written once per fuzzing process.
fn input() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rivulet-fuzz-file-position-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let files = [
            ("a.csv", "id,word\n1,one\n2,two\nbad\n3,three\n"),
            ("b.csv", "id,word\n"),
            ("c.csv", "id,word\n4,four\r\n5,five"),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("an input file");
        }
        dir
    })
}

fuzz_target!(|bytes: &[u8]| {
    let config = FileSourceConfig {
        path: input().display().to_string(),
        format: FileFormat::Csv,
        schema: Schema::new(vec![Field::new("id", DataType::Int), Field::new("word", DataType::Str)]),
        header: true,
        bad_lines: BadLinePolicy::Skip,
    };
    let parallelism = 1 + u16::from(bytes.first().copied().unwrap_or(0) % 2);
    let mut source = FileSource::new("lines", config, 0, parallelism).expect("the input exists");
    if source.restore_position(bytes).is_ok() {
        for _ in 0..16 {
            match source.poll(Instant::ZERO) {
                Ok(SourcePoll::Batch(_)) => {}
                Ok(_) | Err(_) => break,
            }
        }
    }
});
