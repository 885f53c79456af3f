//! Job files: the TOML text that declares a job, parsed into a validated [`JobGraph`].
//!
//! Every mistake is one [`JobFileError`] naming the line and column, the field, and what was
//! expected. `docs/job-files.md` is the reference for the format.

mod build;
mod raw;

use std::fmt;

use crate::graph::JobGraph;
use crate::limits::JOB_FILE_BYTES_MAX;

/// A mistake in a job file, with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for JobFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for JobFileError {}

/// Settings that come from outside the file (the command line).
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// Replaces the job's default parallelism; vertices with their own `parallelism` keep it.
    pub parallelism: Option<u16>,
}

/// Parses and validates a job file.
pub fn parse_job(text: &str, options: &ParseOptions) -> Result<JobGraph, JobFileError> {
    if text.len() > JOB_FILE_BYTES_MAX {
        return Err(JobFileError {
            line: 1,
            column: 1,
            message: format!(
                "the job file has {} bytes; at most {JOB_FILE_BYTES_MAX} are accepted",
                text.len()
            ),
        });
    }
    let raw: raw::RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        error_at(text, offset, toml_message(text, offset, e.message()))
    })?;
    build::build(text, &raw, options)
}

/// TOML's message, with the key it is about when the error points at a value (`count = "many"`).
fn toml_message(text: &str, offset: usize, message: &str) -> String {
    let message = message.trim().replace("expected i64", "expected an integer");
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    match before.split_once('=') {
        Some((key, rest)) if rest.trim().is_empty() && !key.trim().is_empty() && !message.contains('`') => {
            format!("`{}`: {message}", key.trim())
        }
        _ => message,
    }
}

/// The 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn error_at(text: &str, offset: usize, message: String) -> JobFileError {
    let (line, column) = line_column(text, offset);
    JobFileError { line, column, message }
}

#[cfg(test)]
mod tests;
