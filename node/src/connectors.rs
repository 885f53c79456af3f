//! The node's I/O connectors: file sources (CSV, JSON Lines), file sinks that publish one part
//! file per subtask atomically on finish, and stdout. Everything else comes from the core.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rivulet_core::batch::Batch;
use rivulet_core::connectors::{BuiltinConnectors, ConnectorFactory};
use rivulet_core::dataflow::operator::TaskError;
use rivulet_core::dataflow::operators::sink::SinkWriter;
use rivulet_core::dataflow::source::{SourcePoll, SourceReader};
use rivulet_core::formats::{check_csv_header, csv_header, decode_line, encode_batch, TextFormat};
use rivulet_core::graph::{
    BadLinePolicy, FileFormat, FileSinkConfig, FileSourceConfig, SinkConnector, SourceConnector,
};
use rivulet_core::limits::{BATCH_ROWS_MAX, INPUT_LINE_BYTES_MAX};
use rivulet_core::time::Instant;
use rivulet_core::types::Schema;

/// Connectors of the node: files and stdout here, the rest from [`BuiltinConnectors`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeConnectors;

fn text_format(format: FileFormat) -> TextFormat {
    match format {
        FileFormat::Csv => TextFormat::Csv,
        FileFormat::JsonLines => TextFormat::JsonLines,
    }
}

impl ConnectorFactory for NodeConnectors {
    fn source_reader(
        &self,
        connector: &SourceConnector,
        vertex_name: &str,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SourceReader>, String> {
        match connector {
            SourceConnector::File(config) => {
                Ok(Box::new(FileSource::new(vertex_name, config.clone(), subtask_index, parallelism)?))
            }
            other => BuiltinConnectors.source_reader(other, vertex_name, subtask_index, parallelism),
        }
    }

    fn sink_writer(
        &self,
        connector: &SinkConnector,
        vertex_name: &str,
        input_schema: &Schema,
        subtask_index: u16,
        parallelism: u16,
    ) -> Result<Box<dyn SinkWriter>, String> {
        match connector {
            SinkConnector::Stdout { format } => Ok(Box::new(StdoutSink::new(input_schema.clone(), *format))),
            SinkConnector::File(config) => {
                Ok(Box::new(FileSink::new(vertex_name, config, input_schema.clone(), subtask_index)?))
            }
            other => {
                BuiltinConnectors.sink_writer(other, vertex_name, input_schema, subtask_index, parallelism)
            }
        }
    }
}

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

    /// Reads the next line into `self.line` (without its line ending); false at the end of the file.
    fn read_line(&mut self) -> Result<bool, TaskError> {
        let (path, reader, line_no) = self.current.as_mut().expect("a file is open");
        self.line.clear();
        let limit = INPUT_LINE_BYTES_MAX as u64 + 2;
        let n = reader.by_ref().take(limit).read_until(b'\n', &mut self.line);
        let n = n.map_err(|e| TaskError::Source {
            source_name: self.name.clone(),
            message: format!("{}: {e}", path.display()),
        })?;
        if n == 0 {
            return Ok(false);
        }
        *line_no += 1;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        } else if n as u64 == limit {
            let message = format!(
                "{}:{}: the line is longer than {INPUT_LINE_BYTES_MAX} bytes",
                path.display(),
                line_no
            );
            return Err(self.error(message));
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(true)
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
                    if !self.read_line()? {
                        self.current = None;
                        continue;
                    }
                    let (path, _, line_no) = self.current.as_ref().expect("open");
                    let text = String::from_utf8_lossy(&self.line);
                    check_csv_header(&self.config.schema, &text).map_err(|e| {
                        self.error(format!("{}:{line_no}: bad header: {}", path.display(), e.message))
                    })?;
                }
            }
            if !self.read_line()? {
                self.current = None;
                continue;
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
                Err(e) => Err(format!("{}:{line_no}: the line is not UTF-8 ({e})", path.display())),
            };
            if let Err(message) = result {
                match self.config.bad_lines {
                    BadLinePolicy::Fail => return Err(self.error(message)),
                    BadLinePolicy::Skip => self.skipped += 1,
                }
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

/// Writes a subtask's records to `<dir>/.part-<i>.<ext>.inprogress`, renamed to `part-<i>.<ext>`
/// when the input ends: readers never see a partial part file, and a failed run leaves none.
pub struct FileSink {
    name: String,
    schema: Schema,
    format: TextFormat,
    staging: PathBuf,
    target: PathBuf,
    writer: Option<BufWriter<File>>,
    text: String,
}

impl FileSink {
    pub fn new(name: &str, config: &FileSinkConfig, schema: Schema, index: u16) -> Result<FileSink, String> {
        let dir = Path::new(&config.path);
        fs::create_dir_all(dir)
            .map_err(|e| format!("sink `{name}`: cannot create {}: {e}", dir.display()))?;
        let ext = config.format.name();
        let staging = dir.join(format!(".part-{index}.{ext}.inprogress"));
        let target = dir.join(format!("part-{index}.{ext}"));
        let file = File::create(&staging)
            .map_err(|e| format!("sink `{name}`: cannot create {}: {e}", staging.display()))?;
        let mut writer = BufWriter::with_capacity(256 * 1024, file);
        let format = text_format(config.format);
        if config.format == FileFormat::Csv && config.header {
            writer.write_all(csv_header(&schema).as_bytes()).map_err(|e| format!("sink `{name}`: {e}"))?;
        }
        Ok(FileSink {
            name: name.to_owned(),
            schema,
            format,
            staging,
            target,
            writer: Some(writer),
            text: String::new(),
        })
    }
}

impl SinkWriter for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        self.text.clear();
        encode_batch(self.format, &self.schema, batch, &mut self.text);
        let writer = self.writer.as_mut().ok_or("write after finish")?;
        writer.write_all(self.text.as_bytes()).map_err(|e| format!("{}: {e}", self.staging.display()))
    }

    fn finish(&mut self) -> Result<(), String> {
        let writer = self.writer.take().ok_or("finished twice")?;
        let file = writer.into_inner().map_err(|e| format!("{}: {}", self.staging.display(), e.error()))?;
        file.sync_all().map_err(|e| format!("{}: {e}", self.staging.display()))?;
        fs::rename(&self.staging, &self.target)
            .map_err(|e| format!("sink `{}`: cannot publish {}: {e}", self.name, self.target.display()))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Not finished: the run failed or was abandoned, so its partial output goes away.
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.staging);
        }
    }
}

/// Prints records to stdout, one line each.
pub struct StdoutSink {
    schema: Schema,
    format: TextFormat,
    text: String,
}

impl StdoutSink {
    pub fn new(schema: Schema, format: FileFormat) -> StdoutSink {
        StdoutSink { schema, format: text_format(format), text: String::new() }
    }
}

impl SinkWriter for StdoutSink {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        self.text.clear();
        encode_batch(self.format, &self.schema, batch, &mut self.text);
        std::io::stdout().lock().write_all(self.text.as_bytes()).map_err(|e| format!("stdout: {e}"))
    }

    fn finish(&mut self) -> Result<(), String> {
        std::io::stdout().flush().map_err(|e| format!("stdout: {e}"))
    }
}
