//! Text formats of the file connectors: CSV (an RFC 4180 subset) and JSON Lines.
//!
//! The codecs are pure: the caller reads files, splits them into lines and adds the file name and
//! line number to error messages; here one `&str` line becomes one row of a [`Batch`], and a batch
//! becomes text. Every field is non-null, so an empty CSV field (for a non-string type) or a JSON
//! `null` is an error rather than a missing value.
//!
//! Decoding is fuzz-safe: any line yields `Ok` or a [`DecodeError`], never a panic, and no parser
//! recurses (JSON values are flat: nested objects and arrays are rejected, not descended into).
//! A failed line leaves the batch untouched, because a row is staged whole (module `row`) before
//! it is appended.
//!
//! Both formats share one value syntax (module `values`): integers, Rust's `f64` syntax, booleans,
//! and timestamps as epoch milliseconds or ISO 8601 UTC date-times ([`parse_timestamp`]).

mod csv;
mod json;
mod row;
mod timestamp;
mod values;

#[cfg(test)]
mod proptests;

use crate::batch::Batch;
use crate::types::Schema;

pub use timestamp::{days_from_civil, parse_timestamp};

/// The text formats a file source reads and a file sink writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    Csv,
    JsonLines,
}

/// Why one line could not be decoded. The message names the field and the offending text; the
/// caller prefixes it with the file name and line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// 1-based character column in the line where the problem is, if known.
    pub column: Option<usize>,
    pub message: String,
}

impl DecodeError {
    fn new(message: String) -> DecodeError {
        DecodeError { column: None, message }
    }

    /// An error at byte offset `at` of `line`, reported as a 1-based character column.
    fn at(line: &str, at: usize, message: String) -> DecodeError {
        DecodeError { column: Some(char_column(line, at)), message }
    }
}

/// Parses one line (without its trailing `'\n'` or `"\r\n"`; a trailing `'\r'` is tolerated and
/// stripped) into one row appended to `batch`, whose columns match `schema`.
///
/// On error nothing is appended: the batch stays consistent, all columns of the same length.
///
/// # Panics
/// If `batch` does not have one column of the right type per schema field (a caller bug).
pub fn decode_line(
    format: TextFormat,
    schema: &Schema,
    line: &str,
    batch: &mut Batch,
) -> Result<(), DecodeError> {
    assert_eq!(
        batch.columns.len(),
        schema.len(),
        "decode_line: the batch's columns differ from the schema's fields"
    );
    let line = line.strip_suffix('\r').unwrap_or(line);
    let rows_before = batch.len();
    let result = match format {
        TextFormat::Csv => csv::decode_line(schema, line, batch),
        TextFormat::JsonLines => json::decode_line(schema, line, batch),
    };
    debug_assert_eq!(batch.len(), rows_before + usize::from(result.is_ok()));
    result
}

/// Checks a CSV header line against the schema: the same field names in the same order. The error
/// names the first mismatch. A leading byte-order mark and spaces around unquoted names are ignored.
pub fn check_csv_header(schema: &Schema, line: &str) -> Result<(), DecodeError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    csv::check_header(schema, line)
}

/// Appends every row of `batch` to `out`, one line each terminated by `'\n'`.
///
/// Floats are written so that they parse back to the same `f64`; NaN and the infinities are
/// written as `NaN`, `inf` and `-inf` (as JSON strings in JSON Lines, since JSON has no such
/// numbers). Timestamps are written as epoch milliseconds.
///
/// CSV quotes a string that contains `,` `"` `\n` or `\r`, as RFC 4180 says, so other tools read
/// it right; but a string with a line break then spans two lines, which [`decode_line`] (one line,
/// one record) cannot read back. JSON Lines escapes line breaks and round-trips every string.
///
/// # Panics
/// If `batch` does not have one column of the right type per schema field (a caller bug).
pub fn encode_batch(format: TextFormat, schema: &Schema, batch: &Batch, out: &mut String) {
    assert_eq!(
        batch.columns.len(),
        schema.len(),
        "encode_batch: the batch's columns differ from the schema's fields"
    );
    match format {
        TextFormat::Csv => csv::encode_batch(batch, out),
        TextFormat::JsonLines => json::encode_batch(schema, batch, out),
    }
}

/// The CSV header line: the field names, quoted where needed, `'\n'`-terminated.
pub fn csv_header(schema: &Schema) -> String {
    csv::header(schema)
}

/// The 1-based character column of byte offset `at` in `line` (clamped to the line's end).
fn char_column(line: &str, at: usize) -> usize {
    let bytes = &line.as_bytes()[..at.min(line.len())];
    // Count the bytes that start a character: this needs no char boundary at `at`.
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count() + 1
}

/// Characters of offending input quoted in an error message at most, so that a 1 MiB line does
/// not become a 1 MiB message.
const EXCERPT_CHARS_MAX: usize = 64;

/// `text` shortened to [`EXCERPT_CHARS_MAX`] characters, with `…` marking a cut.
fn shorten(text: &str) -> (&str, &'static str) {
    match text.char_indices().nth(EXCERPT_CHARS_MAX) {
        Some((cut, _)) => (&text[..cut], "…"),
        None => (text, ""),
    }
}

/// A field's text for an error message: quoted and escaped as Rust does, shortened if long.
fn quoted_excerpt(text: &str) -> String {
    let (text, cut) = shorten(text);
    format!("{text:?}{cut}")
}

/// Raw source text (such as a JSON token) for an error message, shortened if long.
fn raw_excerpt(text: &str) -> String {
    let (text, cut) = shorten(text);
    format!("{text}{cut}")
}

/// How a field is named in messages: by name when the schema has it, by 1-based position beyond.
fn field_label(schema: &Schema, index: usize) -> String {
    match schema.fields.get(index) {
        Some(field) => format!("field `{}`", raw_excerpt(&field.name)),
        None => format!("field {}", index + 1),
    }
}

/// Field names listed in a message at most.
const LISTED_FIELDS_MAX: usize = 32;

/// The schema's field names for a message: "id, key, value, ts".
fn schema_field_names(schema: &Schema) -> String {
    let mut names: Vec<String> =
        schema.fields.iter().take(LISTED_FIELDS_MAX).map(|f| raw_excerpt(&f.name)).collect();
    if schema.len() > LISTED_FIELDS_MAX {
        names.push(format!("… ({} in all)", schema.len()));
    }
    if names.is_empty() {
        return "no fields".to_owned();
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DataType, Field, Scalar};

    #[test]
    fn char_column_counts_characters_not_bytes() {
        assert_eq!(char_column("abc", 0), 1);
        assert_eq!(char_column("héllo", 3), 3);
        assert_eq!(char_column("日本,x", 7), 4);
        assert_eq!(char_column("ab", 99), 3);
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "x".repeat(1000);
        let excerpt = quoted_excerpt(&long);
        assert_eq!(excerpt.chars().count(), EXCERPT_CHARS_MAX + 3);
        assert!(excerpt.ends_with("\"…"));
        assert_eq!(quoted_excerpt("a\"b"), r#""a\"b""#);
        assert_eq!(raw_excerpt("1.5"), "1.5");
    }

    #[test]
    fn trailing_carriage_return_is_stripped_for_both_formats() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int), Field::new("s", DataType::Str)]);
        let mut batch = Batch::empty(&schema.data_types(), 4);
        decode_line(TextFormat::Csv, &schema, "1,a\r", &mut batch).unwrap();
        decode_line(TextFormat::JsonLines, &schema, "{\"id\":2,\"s\":\"b\"}\r", &mut batch).unwrap();
        assert_eq!(batch.row(0), vec![Scalar::Int(1), Scalar::Str("a".into())]);
        assert_eq!(batch.row(1), vec![Scalar::Int(2), Scalar::Str("b".into())]);
        check_csv_header(&schema, "id,s\r").unwrap();
    }

    #[test]
    fn empty_schema_round_trips_as_empty_records() {
        let schema = Schema::new(vec![]);
        let mut batch = Batch::with_rows(vec![], 0);
        decode_line(TextFormat::Csv, &schema, "", &mut batch).unwrap();
        decode_line(TextFormat::JsonLines, &schema, " { } ", &mut batch).unwrap();
        assert_eq!(batch.len(), 2);
        let mut out = String::new();
        encode_batch(TextFormat::Csv, &schema, &batch, &mut out);
        encode_batch(TextFormat::JsonLines, &schema, &batch, &mut out);
        assert_eq!(out, "\n\n{}\n{}\n");
        assert_eq!(csv_header(&schema), "\n");
        let err = decode_line(TextFormat::Csv, &schema, "x", &mut batch).unwrap_err();
        assert_eq!(err.message, "expected 0 fields, found 1");
    }
}
