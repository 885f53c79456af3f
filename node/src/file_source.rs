//! The file source: reads CSV or JSON Lines files, this subtask's share of them, line by line into
//! batches.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rivulet_core::batch::Batch;
use rivulet_core::dataflow::operator::TaskError;
use rivulet_core::dataflow::source::{SourcePoll, SourceReader};
use rivulet_core::formats::{check_csv_header, decode_line};
use rivulet_core::graph::{BadLinePolicy, FileFormat, FileSourceConfig};
use rivulet_core::limits::{BATCH_ROWS_MAX, INPUT_LINE_BYTES_MAX};
use rivulet_core::time::Instant;
use rivulet_core::types::Schema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::connectors::text_format;

/// The read buffer of each file being read.
const READ_BUFFER_BYTES: usize = 256 * 1024;

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

/// The limit on a file source's position bytes: its file name and five numbers.
pub const FILE_SOURCE_POSITION_BYTES_MAX: usize = FILE_NAME_BYTES_MAX + 64;

/// The longest input file name (its last path component) a file source takes, so that its
/// positions stay within [`FILE_SOURCE_POSITION_BYTES_MAX`]. File systems allow 255 bytes or
/// 255 UTF-16 units (at most 765 bytes of UTF-8).
pub const FILE_NAME_BYTES_MAX: usize = 1024;

/// The format of a file source's position; a restore refuses any other.
pub const FILE_SOURCE_POSITION_VERSION: u16 = 1;

/// Reads this subtask's share of the files (file `i` goes to subtask `i % parallelism`), line by
/// line, into batches.
///
/// Its position ([`SourceReader::position`]) is exact between polls: a batch is cut right after
/// the line that filled it, so the bytes consumed from the current file are exactly the lines
/// handed out (and the blank or skipped lines among them). A restored source seeks there and
/// reads on, with no line lost and none read twice.
pub struct FileSource {
    name: String,
    config: FileSourceConfig,
    files: Vec<PathBuf>,
    /// The index in `files` of the next file to open.
    next_file: usize,
    current: Option<OpenFile>,
    line: Vec<u8>,
    skipped: u64,
    /// Records per batch at most: [`BATCH_ROWS_MAX`] but in tests, which cut small batches.
    batch_rows_max: usize,
}

/// The file a source is reading.
struct OpenFile {
    /// Its index in the source's share.
    index: usize,
    path: PathBuf,
    reader: BufReader<File>,
    /// Lines consumed, the header too.
    line_no: u64,
    /// Bytes consumed as lines from the file's start: what was read ahead into the reader's
    /// buffer is not in it.
    offset: u64,
}

/// What a file source's checkpoint records, postcard-encoded behind its format version
/// ([`FILE_SOURCE_POSITION_VERSION`], a postcard `u16`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FilePosition {
    /// In this subtask's share: the file being read, or the next one to open if none is open
    /// (the share's length once every file was read).
    file_index: u64,
    /// That file's name (its last path component), so that a restore can tell the files changed;
    /// empty past the last file.
    file_name: String,
    /// Bytes of that file consumed by the lines handed out before the position.
    offset: u64,
    /// Lines of that file consumed (the header too): where line numbers in errors go on from.
    line_no: u64,
    /// Malformed records skipped so far by this subtask, in all its files.
    skipped: u64,
}

/// Why a file source cannot continue from a position it was given.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PositionError {
    #[error(
        "the position has {found} bytes, more than the {FILE_SOURCE_POSITION_BYTES_MAX} a file \
         source's position may have"
    )]
    TooLong { found: usize },
    #[error("the position does not decode: {message}")]
    Decode { message: String },
    #[error(
        "file source position format version {found}; this build reads version \
         {FILE_SOURCE_POSITION_VERSION}"
    )]
    Version { found: u16 },
    #[error("the position has {found} bytes after its end")]
    Trailing { found: usize },
    #[error("the position is in file {index} of this subtask's share, which has {files} files")]
    FileIndex { index: u64, files: usize },
    #[error(
        "the position is in file {index} `{found}`, but file {index} of this subtask's share is \
         `{expected}`: the input files changed since the checkpoint"
    )]
    FileName { index: u64, found: String, expected: String },
    #[error(
        "the position is past the last file ({files}) but has file name `{file_name}`, offset \
         {offset} and line {line_no}"
    )]
    PastTheEnd { files: usize, file_name: String, offset: u64, line_no: u64 },
    #[error("the position's {line_no} lines do not fit its {offset} bytes of `{file_name}`")]
    Lines { file_name: String, offset: u64, line_no: u64 },
    #[error(
        "the position's offset {offset} is past the end of {path} ({length} bytes): the file \
         changed since the checkpoint"
    )]
    Offset { path: String, offset: u64, length: u64 },
    #[error(
        "the position's offset {offset} in {path} is not at the start of a line: the file changed \
         since the checkpoint"
    )]
    NotLineStart { path: String, offset: u64 },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl FilePosition {
    fn encode(&self) -> Vec<u8> {
        let bytes =
            postcard::to_stdvec(&(FILE_SOURCE_POSITION_VERSION, self)).expect("a position always encodes");
        assert!(
            bytes.len() <= FILE_SOURCE_POSITION_BYTES_MAX,
            "file names are checked when the source is made"
        );
        bytes
    }

    /// Decodes [`FilePosition::encode`]'s bytes, which come from checkpoint storage: the length
    /// first, then the version, then the rest, which must be all of the bytes.
    fn decode(bytes: &[u8]) -> Result<FilePosition, PositionError> {
        if bytes.len() > FILE_SOURCE_POSITION_BYTES_MAX {
            return Err(PositionError::TooLong { found: bytes.len() });
        }
        let decode = |e: postcard::Error| PositionError::Decode { message: e.to_string() };
        let (version, body) = postcard::take_from_bytes::<u16>(bytes).map_err(decode)?;
        if version != FILE_SOURCE_POSITION_VERSION {
            return Err(PositionError::Version { found: version });
        }
        let (position, rest) = postcard::take_from_bytes::<FilePosition>(body).map_err(decode)?;
        if !rest.is_empty() {
            return Err(PositionError::Trailing { found: rest.len() });
        }
        Ok(position)
    }
}

/// The name of `path` that positions record: its last component.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

impl FileSource {
    pub fn new(
        name: &str,
        config: FileSourceConfig,
        index: u16,
        parallelism: u16,
    ) -> Result<FileSource, String> {
        let all = list_input_files(Path::new(&config.path)).map_err(|e| format!("source `{name}`: {e}"))?;
        let files: Vec<PathBuf> = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % usize::from(parallelism) == usize::from(index))
            .map(|(_, f)| f)
            .collect();
        if let Some(long) = files.iter().find(|f| file_name(f).len() > FILE_NAME_BYTES_MAX) {
            return Err(format!(
                "source `{name}`: the name of {} is longer than {FILE_NAME_BYTES_MAX} bytes",
                long.display()
            ));
        }
        Ok(FileSource {
            name: name.to_owned(),
            config,
            files,
            next_file: 0,
            current: None,
            line: Vec::new(),
            skipped: 0,
            batch_rows_max: BATCH_ROWS_MAX,
        })
    }

    /// Cuts batches of at most `rows` records, to test many batch boundaries with little input.
    #[cfg(test)]
    pub(crate) fn with_batch_rows_max(mut self, rows: usize) -> FileSource {
        assert!((1..=BATCH_ROWS_MAX).contains(&rows));
        self.batch_rows_max = rows;
        self
    }

    fn error(&self, message: String) -> TaskError {
        TaskError::Source { source_name: self.name.clone(), message }
    }

    /// The position between polls (see [`FilePosition`]).
    fn file_position(&self) -> FilePosition {
        let (index, offset, line_no) = match &self.current {
            Some(open) => (open.index, open.offset, open.line_no),
            None => (self.next_file, 0, 0),
        };
        FilePosition {
            file_index: index as u64,
            file_name: self.files.get(index).map(|f| file_name(f)).unwrap_or_default(),
            offset,
            line_no,
            skipped: self.skipped,
        }
    }

    /// Continues from `position`, checked against this subtask's share of the files.
    fn restore(&mut self, position: &FilePosition) -> Result<(), PositionError> {
        let files = self.files.len();
        let index = usize::try_from(position.file_index)
            .ok()
            .filter(|&i| i <= files)
            .ok_or(PositionError::FileIndex { index: position.file_index, files })?;
        let Some(path) = self.files.get(index) else {
            // Past the last file: nothing is left to read.
            if !position.file_name.is_empty() || position.offset != 0 || position.line_no != 0 {
                return Err(PositionError::PastTheEnd {
                    files,
                    file_name: position.file_name.clone(),
                    offset: position.offset,
                    line_no: position.line_no,
                });
            }
            (self.next_file, self.skipped) = (files, position.skipped);
            return Ok(());
        };
        let expected = file_name(path);
        if position.file_name != expected {
            return Err(PositionError::FileName {
                index: position.file_index,
                found: position.file_name.clone(),
                expected,
            });
        }
        // Every line has at least its line ending, but the last, which has at least a byte.
        if position.line_no > position.offset || (position.offset > 0) != (position.line_no > 0) {
            return Err(PositionError::Lines {
                file_name: expected,
                offset: position.offset,
                line_no: position.line_no,
            });
        }
        if position.offset == 0 {
            // Not opened yet: it is opened, and its header checked, as it would have been.
            (self.next_file, self.skipped) = (index, position.skipped);
            return Ok(());
        }
        let io = |e: std::io::Error| PositionError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut file = File::open(path).map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        if position.offset > length {
            return Err(PositionError::Offset {
                path: path.display().to_string(),
                offset: position.offset,
                length,
            });
        }
        // Lines are consumed up to and with their line ending, or to the end of the file.
        if position.offset < length {
            let mut before = [0u8; 1];
            file.seek(SeekFrom::Start(position.offset - 1)).map_err(io)?;
            file.read_exact(&mut before).map_err(io)?;
            if before[0] != b'\n' {
                return Err(PositionError::NotLineStart {
                    path: path.display().to_string(),
                    offset: position.offset,
                });
            }
        }
        file.seek(SeekFrom::Start(position.offset)).map_err(io)?;
        self.current = Some(OpenFile {
            index,
            path: path.clone(),
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            line_no: position.line_no,
            offset: position.offset,
        });
        (self.next_file, self.skipped) = (index + 1, position.skipped);
        Ok(())
    }

    /// Reads the next line into `self.line` (without its line ending); `None` at the end of the
    /// file, `Some(Err(message))` for a line longer than the limit (which is consumed whole).
    fn read_line(&mut self) -> Result<Option<Result<(), String>>, TaskError> {
        let open = self.current.as_mut().expect("a file is open");
        let (path, reader) = (&open.path, &mut open.reader);
        let io = |e: std::io::Error| TaskError::Source {
            source_name: self.name.clone(),
            message: format!("{}: {e}", path.display()),
        };
        self.line.clear();
        // Up to the limit, its line ending ("\r\n" at most), and one byte to tell a longer line.
        let limit = INPUT_LINE_BYTES_MAX as u64 + 3;
        let n = reader.by_ref().take(limit).read_until(b'\n', &mut self.line).map_err(io)?;
        if n == 0 {
            return Ok(None);
        }
        open.offset += n as u64;
        open.line_no += 1;
        let line_no = open.line_no;
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
                    let n = reader.by_ref().take(64 * 1024).read_until(b'\n', &mut rest).map_err(io)?;
                    open.offset += n as u64;
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
        let mut batch = Batch::empty(&schema.data_types(), self.batch_rows_max);
        // The batch is cut right after the line that fills it, so that the position between
        // polls is exact.
        while batch.len() < self.batch_rows_max {
            if self.current.is_none() {
                let index = self.next_file;
                let Some(path) = self.files.get(index).cloned() else { break };
                self.next_file += 1;
                let file = File::open(&path)
                    .map_err(|e| self.error(format!("cannot open {}: {e}", path.display())))?;
                let reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
                self.current = Some(OpenFile { index, path, reader, line_no: 0, offset: 0 });
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
                    let open = self.current.as_ref().expect("open");
                    check_csv_header(&self.config.schema, &header).map_err(|e| {
                        self.error(format!(
                            "{}:{}: bad header: {}",
                            open.path.display(),
                            open.line_no,
                            e.message
                        ))
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
            let open = self.current.as_ref().expect("open");
            let (path, line_no) = (open.path.display(), open.line_no);
            let result = match std::str::from_utf8(&self.line) {
                Ok(text) => {
                    decode_line(text_format(self.config.format), &self.config.schema, text, &mut batch)
                        .map_err(|e| match e.column {
                            Some(c) => format!("{path}:{line_no}:{c}: {}", e.message),
                            None => format!("{path}:{line_no}: {}", e.message),
                        })
                }
                Err(e) => {
                    let valid = std::str::from_utf8(&self.line[..e.valid_up_to()]).unwrap_or_default();
                    let column = valid.chars().count() + 1;
                    Err(format!("{path}:{line_no}:{column}: the line is not valid UTF-8"))
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

    /// The versioned [`FilePosition`]: the file being read, its name, the bytes and lines of it
    /// consumed, and the records skipped.
    fn position(&self) -> Option<Vec<u8>> {
        Some(self.file_position().encode())
    }

    /// Checks `position` (bytes from checkpoint storage) against this subtask's share of the
    /// files and seeks to it; an error names what does not fit.
    fn restore_position(&mut self, position: &[u8]) -> Result<(), String> {
        assert!(
            self.current.is_none() && self.next_file == 0 && self.skipped == 0,
            "a source is restored before its first poll"
        );
        FilePosition::decode(position)
            .and_then(|p| self.restore(&p))
            .map_err(|e| format!("source `{}`: cannot continue from the checkpoint: {e}", self.name))
    }
}

#[cfg(test)]
#[path = "file_source_tests.rs"]
mod tests;
