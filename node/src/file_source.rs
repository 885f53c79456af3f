//! The file source: reads CSV or JSON Lines files, this subtask's share of them, line by line into
//! batches.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use rivulet_core::batch::Batch;
use rivulet_core::dataflow::operator::TaskError;
use rivulet_core::dataflow::source::{SourcePoll, SourceReader};
use rivulet_core::formats::{check_csv_header, decode_line};
use rivulet_core::graph::{BadLinePolicy, FileFormat, FileSourceConfig};
use rivulet_core::limits::{BATCH_ROWS_MAX, INPUT_LINE_BYTES_MAX};
use rivulet_core::time::Instant;
use rivulet_core::types::Schema;

use crate::connectors::text_format;

/// The files a file source reads: the path itself, or a directory's visible files sorted by name.
pub fn list_input_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let metadata = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if metadata.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| format!("cannot list {}: {e}", path.display()))? {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with(['.', '_']);
        if !hidden && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Reads this subtask's share of the files (file `i` goes to subtask `i % parallelism`), line by
/// line, into batches.
pub struct FileSource {
    name: String,
    config: FileSourceConfig,
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<(PathBuf, BufReader<File>, u64)>,
    line: Vec<u8>,
    skipped: u64,
}

impl FileSource {
    pub fn new(
        name: &str,
        config: FileSourceConfig,
        index: u16,
        parallelism: u16,
    ) -> Result<FileSource, String> {
        let all = list_input_files(Path::new(&config.path)).map_err(|e| format!("source `{name}`: {e}"))?;
        let files = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % usize::from(parallelism) == usize::from(index))
            .map(|(_, f)| f)
            .collect();
        Ok(FileSource {
            name: name.to_owned(),
            config,
            files,
            next_file: 0,
            current: None,
            line: Vec::new(),
            skipped: 0,
        })
    }

    fn error(&self, message: String) -> TaskError {
        TaskError::Source { source_name: self.name.clone(), message }
    }

    /// Reads the next line into `self.line` (without its line ending); `None` at the end of the
    /// file, `Some(Err(message))` for a line longer than the limit (which is consumed whole).
    fn read_line(&mut self) -> Result<Option<Result<(), String>>, TaskError> {
        let (path, reader, line_no) = self.current.as_mut().expect("a file is open");
        self.line.clear();
        // Up to the limit, its line ending ("\r\n" at most), and one byte to tell a longer line.
        let limit = INPUT_LINE_BYTES_MAX as u64 + 3;
        let read = reader.by_ref().take(limit).read_until(b'\n', &mut self.line);
        let n = read.map_err(|e| TaskError::Source {
            source_name: self.name.clone(),
            message: format!("{}: {e}", path.display()),
        })?;
        if n == 0 {
            return Ok(None);
        }
        *line_no += 1;
        let ended = self.line.last() == Some(&b'\n');
        if ended {
            self.line.pop();
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > INPUT_LINE_BYTES_MAX {
            // Skip the rest of the line, however long, without holding it.
            if !ended {
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let n = reader.by_ref().take(64 * 1024).read_until(b'\n', &mut rest).map_err(|e| {
                        TaskError::Source {
                            source_name: self.name.clone(),
                            message: format!("{}: {e}", path.display()),
                        }
                    })?;
                    if n == 0 || rest.last() == Some(&b'\n') {
                        break;
                    }
                }
            }
            self.line.clear();
            return Ok(Some(Err(format!(
                "{}:{line_no}: the line is longer than {INPUT_LINE_BYTES_MAX} bytes",
                path.display()
            ))));
        }
        Ok(Some(Ok(())))
    }

    /// Applies the bad-line policy to a malformed line.
    fn bad_line(&mut self, message: String) -> Result<(), TaskError> {
        match self.config.bad_lines {
            BadLinePolicy::Fail => Err(self.error(message)),
            BadLinePolicy::Skip => {
                self.skipped += 1;
                Ok(())
            }
        }
    }
}

impl SourceReader for FileSource {
    fn poll(&mut self, _now: Instant) -> Result<SourcePoll, TaskError> {
        let schema: &Schema = &self.config.schema;
        let mut batch = Batch::empty(&schema.data_types(), BATCH_ROWS_MAX);
        while batch.len() < BATCH_ROWS_MAX {
            if self.current.is_none() {
                let Some(path) = self.files.get(self.next_file).cloned() else { break };
                self.next_file += 1;
                let file = File::open(&path)
                    .map_err(|e| self.error(format!("cannot open {}: {e}", path.display())))?;
                self.current = Some((path, BufReader::with_capacity(256 * 1024, file), 0));
                if self.config.format == FileFormat::Csv && self.config.header {
                    // A header that does not match makes the whole file unreadable: it fails the
                    // job whatever the bad-line policy.
                    let header = match self.read_line()? {
                        None => {
                            self.current = None;
                            continue;
                        }
                        Some(Err(message)) => return Err(self.error(message)),
                        Some(Ok(())) => String::from_utf8_lossy(&self.line).into_owned(),
                    };
                    let (path, _, line_no) = self.current.as_ref().expect("open");
                    check_csv_header(&self.config.schema, &header).map_err(|e| {
                        self.error(format!("{}:{line_no}: bad header: {}", path.display(), e.message))
                    })?;
                }
            }
            match self.read_line()? {
                None => {
                    self.current = None;
                    continue;
                }
                Some(Err(message)) => {
                    self.bad_line(message)?;
                    continue;
                }
                Some(Ok(())) => {}
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (path, _, line_no) = self.current.as_ref().expect("open");
            let result = match std::str::from_utf8(&self.line) {
                Ok(text) => {
                    decode_line(text_format(self.config.format), &self.config.schema, text, &mut batch)
                        .map_err(|e| match e.column {
                            Some(c) => format!("{}:{line_no}:{c}: {}", path.display(), e.message),
                            None => format!("{}:{line_no}: {}", path.display(), e.message),
                        })
                }
                Err(e) => {
                    let valid = std::str::from_utf8(&self.line[..e.valid_up_to()]).unwrap_or_default();
                    let column = valid.chars().count() + 1;
                    Err(format!("{}:{line_no}:{column}: the line is not valid UTF-8", path.display()))
                }
            };
            if let Err(message) = result {
                self.bad_line(message)?;
            }
        }
        if batch.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        Ok(SourcePoll::Batch(batch))
    }

    fn records_skipped(&self) -> u64 {
        self.skipped
    }
}
