//! The catalog of bad job files: each file in `tests/bad-jobs/` starts with `# expect: <error>`, the
//! exact error `parse_job` must give for it. `RIVULET_BLESS=1 cargo test -p rivulet-core --test
//! job_catalog` rewrites the expectations from the current errors (review the diff!).

use std::fs;
use std::path::Path;

use rivulet_core::jobfile::{parse_job, ParseOptions};

#[test]
fn every_bad_job_file_gives_its_exact_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-jobs");
    let bless = std::env::var_os("RIVULET_BLESS").is_some();
    let mut files: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 25, "the catalog lost files");
    let mut failures = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        let expected = first
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{} lacks `# expect: `", path.display()));
        let actual = match parse_job(&text, &ParseOptions::default()) {
            Ok(_) => "(no error)".to_owned(),
            Err(e) => e.to_string(),
        };
        if bless {
            fs::write(&path, format!("# expect: {actual}\n{rest}")).unwrap();
        } else if actual != expected {
            failures.push(format!("{}:\n  expected: {expected}\n  actual:   {actual}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_job_file_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = fs::read_to_string(&path).unwrap();
            if let Err(e) = parse_job(&text, &ParseOptions::default()) {
                panic!("{}: {e}", path.display());
            }
            count += 1;
        }
    }
    assert!(count >= 4);
}
