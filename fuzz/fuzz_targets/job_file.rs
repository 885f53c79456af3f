//! A job file's text: parsing and validating arbitrary text never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_core::jobfile::{parse_job, ParseOptions};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = parse_job(text, &ParseOptions::default());
        let _ = parse_job(text, &ParseOptions { parallelism: Some(3) });
    }
});
