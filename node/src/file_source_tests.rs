//! The file source's positions: a source restored at any batch boundary reads on exactly as if it
//! had never stopped, and a damaged position is refused with an error, never a panic.

use super::*;
use rivulet_core::types::{DataType, Field};

/// Input files with the awkward cases: CRLF, blank and malformed lines, an empty file, a file of
/// only a header, lines over the length limit (one ended by a newline, one by the end of the file),
/// and last lines without a newline.
fn input_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let long = |c: char| c.to_string().repeat(INPUT_LINE_BYTES_MAX + 100);
    let files = [
        ("a.csv", "id,word\n1,one\n2,two\r\n\n3,three\nx,bad\n4,four\n   \n5,five".to_owned()),
        ("b.csv", String::new()),
        ("c.csv", "id,word\n".to_owned()),
        ("d.csv", "id,word\n6,six\n7,seven\nbad line\n8,eight\n9,nine\n10,ten\n".to_owned()),
        ("e.csv", "id,word\n11,eleven".to_owned()),
        ("f.csv", format!("id,word\n12,twelve\n13,{}\n14,fourteen\n15,{}", long('x'), long('y'))),
        ("g.csv", "id,word\n16,sixteen\n17,seventeen\n18,eighteen\n19,nineteen\n".to_owned()),
    ];
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn config(dir: &Path) -> FileSourceConfig {
    FileSourceConfig {
        path: dir.display().to_string(),
        format: FileFormat::Csv,
        schema: Schema::new(vec![Field::new("id", DataType::Int), Field::new("word", DataType::Str)]),
        header: true,
        bad_lines: BadLinePolicy::Skip,
    }
}

fn source(dir: &Path, index: u16, parallelism: u16, rows: usize) -> FileSource {
    FileSource::new("lines", config(dir), index, parallelism).unwrap().with_batch_rows_max(rows)
}

fn next_batch(source: &mut FileSource) -> Option<Batch> {
    match source.poll(Instant::ZERO).unwrap() {
        SourcePoll::Batch(batch) => Some(batch),
        SourcePoll::Finished => None,
        SourcePoll::Pending { .. } => panic!("a file source never waits"),
    }
}

fn drain(source: &mut FileSource) -> Vec<Batch> {
    std::iter::from_fn(|| next_batch(source)).collect()
}

#[test]
fn a_source_restored_at_any_batch_boundary_reads_on_as_if_it_had_not_stopped() {
    let dir = input_dir();
    for parallelism in [1u16, 2, 3] {
        for index in 0..parallelism {
            for rows in [1, 2, 3, 5, BATCH_ROWS_MAX] {
                let context = format!("subtask {index} of {parallelism}, batches of {rows}");
                let mut whole = source(dir.path(), index, parallelism, rows);
                let batches = drain(&mut whole);
                for cut in 0..=batches.len() {
                    let mut first = source(dir.path(), index, parallelism, rows);
                    let head: Vec<Batch> = (0..cut).map(|_| next_batch(&mut first).unwrap()).collect();
                    assert_eq!(head, batches[..cut], "{context}");
                    let position = first.position().expect("a file source has a position");
                    assert!(position.len() <= FILE_SOURCE_POSITION_BYTES_MAX);

                    let mut restored = source(dir.path(), index, parallelism, rows);
                    restored
                        .restore_position(&position)
                        .unwrap_or_else(|e| panic!("{context}, cut {cut}: {e}"));
                    assert_eq!(restored.position(), Some(position), "{context}, cut {cut}: where it was");
                    assert_eq!(restored.records_skipped(), first.records_skipped(), "{context}, cut {cut}");
                    let tail = drain(&mut restored);
                    assert_eq!(tail, batches[cut..], "{context}, cut {cut}");
                    assert_eq!(restored.records_skipped(), whole.records_skipped(), "{context}, cut {cut}");
                }
            }
        }
    }
}

#[test]
fn the_whole_input_is_read_once_with_the_malformed_and_overlong_lines_skipped() {
    let dir = input_dir();
    let mut all = source(dir.path(), 0, 1, BATCH_ROWS_MAX);
    let ids: Vec<i64> =
        drain(&mut all).iter().flat_map(|b| b.columns[0].as_i64().unwrap().to_vec()).collect();
    let expected: Vec<i64> = (1..=19).filter(|&i| i != 13 && i != 15).collect();
    assert_eq!(ids, expected);
    // `x,bad`, `bad line` and the two lines over the limit.
    assert_eq!(all.records_skipped(), 4);
}

#[test]
fn the_position_counts_the_bytes_of_the_lines_handed_out_not_those_read_ahead() {
    let dir = input_dir();
    let mut s = source(dir.path(), 0, 1, 2);
    next_batch(&mut s).unwrap();
    let position = FilePosition::decode(&s.position().unwrap()).unwrap();
    // The header and the records 1 and 2 ("2,two\r\n" ends the batch).
    let expected = FilePosition {
        file_index: 0,
        file_name: "a.csv".to_owned(),
        offset: "id,word\n1,one\n2,two\r\n".len() as u64,
        line_no: 3,
        skipped: 0,
    };
    assert_eq!(position, expected);
}

#[test]
fn a_source_with_no_files_or_at_its_end_has_a_position_that_restores() {
    let dir = input_dir();
    // Seven files, ten subtasks: subtask 9 has none.
    let empty = source(dir.path(), 9, 10, 2);
    let position = empty.position().unwrap();
    let mut restored = source(dir.path(), 9, 10, 2);
    restored.restore_position(&position).unwrap();
    assert!(drain(&mut restored).is_empty());

    // Read to the end: a restore there reads nothing more.
    let mut done = source(dir.path(), 1, 10, 2);
    assert_eq!(drain(&mut done).len(), 0, "file b.csv is empty");
    let mut restored = source(dir.path(), 1, 10, 2);
    restored.restore_position(&done.position().unwrap()).unwrap();
    assert!(drain(&mut restored).is_empty());
}

/// A position two batches into `a.csv` (of subtask 0 of 1), decoded.
fn sample(dir: &Path) -> FilePosition {
    let mut s = source(dir, 0, 1, 2);
    next_batch(&mut s).unwrap();
    next_batch(&mut s).unwrap();
    FilePosition::decode(&s.position().unwrap()).unwrap()
}

fn restore_error(dir: &Path, bytes: &[u8]) -> String {
    source(dir, 0, 1, 2).restore_position(bytes).expect_err("a damaged position is refused")
}

#[test]
fn a_position_of_another_format_version_is_refused() {
    let dir = input_dir();
    let bytes = postcard::to_stdvec(&(FILE_SOURCE_POSITION_VERSION + 1, sample(dir.path()))).unwrap();
    let error = restore_error(dir.path(), &bytes);
    assert!(error.contains("format version 2; this build reads version 1"), "{error}");
}

#[test]
fn truncated_overlong_and_padded_positions_are_refused() {
    let dir = input_dir();
    let bytes = sample(dir.path()).encode();
    for len in 0..bytes.len() {
        let error = restore_error(dir.path(), &bytes[..len]);
        assert!(error.contains("does not decode"), "{len} bytes: {error}");
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(restore_error(dir.path(), &padded).contains("1 bytes after its end"));
    let huge = vec![0u8; FILE_SOURCE_POSITION_BYTES_MAX + 1];
    assert!(restore_error(dir.path(), &huge).contains("more than"));
}

#[test]
fn a_position_that_does_not_fit_the_files_is_refused_naming_what_is_wrong() {
    let dir = input_dir();
    let a_length = fs::metadata(dir.path().join("a.csv")).unwrap().len();
    let good = sample(dir.path());
    let cases: [(&str, FilePosition); 6] = [
        ("share, which has 7 files", FilePosition { file_index: 8, ..good.clone() }),
        (
            "file 0 of this subtask's share is `a.csv`",
            FilePosition { file_name: "z.csv".into(), ..good.clone() },
        ),
        ("past the end of", FilePosition { offset: a_length + 1, line_no: a_length + 1, ..good.clone() }),
        ("not at the start of a line", FilePosition { offset: good.offset - 1, ..good.clone() }),
        ("lines do not fit", FilePosition { line_no: good.offset + 1, ..good.clone() }),
        ("past the last file", FilePosition { file_index: 7, file_name: "a.csv".into(), ..good.clone() }),
    ];
    for (expected, position) in cases {
        let error = restore_error(dir.path(), &position.encode());
        assert!(error.contains(expected), "{position:?}: expected `{expected}` in: {error}");
        assert!(error.starts_with("source `lines`: cannot continue from the checkpoint: "), "{error}");
    }
    // The same file name at another index is another file of the share.
    let mut other = source(dir.path(), 0, 2, 2);
    let error = other.restore_position(&FilePosition { file_index: 1, ..good }.encode()).unwrap_err();
    assert!(error.contains("is `c.csv`"), "{error}");
}

/// A tiny deterministic generator for damaged bytes (xorshift64*).
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_and_mutated_positions_never_panic_and_a_restored_source_reads_on() {
    let dir = input_dir();
    let good = sample(dir.path()).encode();
    let mut rng = Bytes(0x5eed);
    for round in 0..3_000 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let mut b = good.clone();
            let at = (rng.next() % b.len() as u64) as usize;
            b[at] ^= 1 << (rng.next() % 8);
            b
        } else {
            (0..rng.next() % 40).map(|_| rng.next() as u8).collect()
        };
        let mut s = source(dir.path(), 0, 1, 2);
        if s.restore_position(&bytes).is_ok() {
            // Whatever it took, it reads on without panicking (a seek into the middle of a line
            // is refused, so what it reads are whole lines).
            drain(&mut s);
        }
    }
}
