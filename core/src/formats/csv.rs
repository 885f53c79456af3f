//! CSV records, an RFC 4180 subset: `,` separates fields; a field that starts with `"` is quoted,
//! and in it `""` is a quote and `,` is literal; a record is exactly one line.
//!
//! A `"` inside an unquoted field is kept as a literal character (as Python's `csv` does), since
//! such files are common and the meaning is unambiguous. Spaces around a value are kept for
//! strings and trimmed for every other type.

use std::borrow::Cow;

use crate::batch::{Batch, Column};
use crate::types::{DataType, Schema};

use super::row::{RowStage, Slot};
use super::values::{self, ValueError};
use super::{field_label, quoted_excerpt, schema_field_names, DecodeError};

/// One field of a record as it appears in the line.
struct RawField<'a> {
    /// The field's text; for a quoted field, between the quotes, with `""` not yet resolved.
    text: &'a str,
    /// Byte offset of the field's first character (its opening quote, if quoted).
    start: usize,
    quoted: bool,
    doubled_quotes: bool,
}

impl<'a> RawField<'a> {
    /// The field's value: its text with every `""` read as `"`.
    fn unescaped(&self) -> Cow<'a, str> {
        if self.doubled_quotes {
            Cow::Owned(self.text.replace("\"\"", "\""))
        } else {
            Cow::Borrowed(self.text)
        }
    }
}

/// A line whose quotes do not delimit fields.
enum SplitError {
    /// A quoted field starting at this byte offset has no closing quote on the line.
    Unterminated { start: usize },
    /// Something other than `,` or the line's end follows a closing quote at this byte offset.
    AfterClosingQuote { at: usize },
}

/// The fields of one line, left to right; after an error it yields nothing more.
struct Fields<'a> {
    line: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> Fields<'a> {
    fn new(line: &'a str) -> Fields<'a> {
        Fields { line, pos: 0, done: false }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<RawField<'a>, SplitError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes = self.line.as_bytes();
        let start = self.pos;
        debug_assert!(start <= bytes.len());
        if bytes.get(start) != Some(&b'"') {
            let end = match bytes[start..].iter().position(|&b| b == b',') {
                Some(comma) => {
                    self.pos = start + comma + 1;
                    start + comma
                }
                None => {
                    self.done = true;
                    bytes.len()
                }
            };
            let text = &self.line[start..end];
            return Some(Ok(RawField { text, start, quoted: false, doubled_quotes: false }));
        }

        let mut search = start + 1;
        let mut doubled_quotes = false;
        let close = loop {
            match bytes[search..].iter().position(|&b| b == b'"') {
                None => {
                    self.done = true;
                    return Some(Err(SplitError::Unterminated { start }));
                }
                Some(i) if bytes.get(search + i + 1) == Some(&b'"') => {
                    doubled_quotes = true;
                    search += i + 2;
                }
                Some(i) => break search + i,
            }
        };
        match bytes.get(close + 1) {
            None => self.done = true,
            Some(b',') => self.pos = close + 2,
            Some(_) => {
                self.done = true;
                return Some(Err(SplitError::AfterClosingQuote { at: close + 1 }));
            }
        }
        let text = &self.line[start + 1..close];
        Some(Ok(RawField { text, start, quoted: true, doubled_quotes }))
    }
}

/// The number of fields of `line`, or `None` if its quotes are malformed.
fn count_fields(line: &str) -> Option<usize> {
    let mut count = 0;
    for field in Fields::new(line) {
        field.ok()?;
        count += 1;
    }
    Some(count)
}

fn count_error(expected: usize, found: usize) -> DecodeError {
    let plural = if expected == 1 { "" } else { "s" };
    DecodeError::new(format!("expected {expected} field{plural}, found {found}"))
}

fn split_error(line: &str, label: &str, error: SplitError) -> DecodeError {
    match error {
        SplitError::Unterminated { start } => DecodeError::at(
            line,
            start,
            format!("{label}: the quoted field is not closed (a record is one line; quoted fields cannot span lines)"),
        ),
        SplitError::AfterClosingQuote { at } => {
            let found = line[at..].chars().next().map_or_else(String::new, |c| quoted_excerpt(&c.to_string()));
            DecodeError::at(
                line,
                at,
                format!("{label}: {found} after the closing quote; a quote inside a quoted field is written \"\""),
            )
        }
    }
}

/// Why one field's text is not a value of its type.
enum FieldError {
    Empty,
    Value(ValueError),
}

fn decode_value<'a>(data_type: DataType, field: &RawField<'a>) -> Result<Slot<'a>, FieldError> {
    let text = field.unescaped();
    if data_type == DataType::Str {
        return Ok(Slot::Str(text));
    }
    let text = text.trim_ascii();
    if text.is_empty() {
        return Err(FieldError::Empty);
    }
    let slot = match data_type {
        DataType::Int => Slot::Int(values::parse_int(text).map_err(FieldError::Value)?),
        DataType::Float => Slot::Float(values::parse_float(text).map_err(FieldError::Value)?),
        DataType::Bool => Slot::Bool(values::parse_bool(text).map_err(FieldError::Value)?),
        DataType::Timestamp => Slot::Int(values::parse_time(text).map_err(FieldError::Value)?),
        DataType::Str => unreachable!("strings returned above"),
    };
    Ok(slot)
}

pub(super) fn decode_line(schema: &Schema, line: &str, batch: &mut Batch) -> Result<(), DecodeError> {
    let expected = schema.len();
    let mut stage = RowStage::new(expected);
    if expected == 0 && line.is_empty() {
        // The record of an empty schema is an empty line (which otherwise reads as one field).
        stage.commit(batch);
        return Ok(());
    }
    let slots = stage.slots();
    let mut found = 0;
    for field in Fields::new(line) {
        let field = field.map_err(|e| split_error(line, &field_label(schema, found), e))?;
        if let (Some(slot), Some(spec)) = (slots.get_mut(found), schema.fields.get(found)) {
            match decode_value(spec.data_type, &field) {
                Ok(value) => *slot = value,
                Err(error) => {
                    // A missing or extra field shifts every field after it, so a wrong count is
                    // the better report than the type error it causes.
                    if let Some(total) = count_fields(line).filter(|&total| total != expected) {
                        return Err(count_error(expected, total));
                    }
                    let label = field_label(schema, found);
                    let message = match error {
                        FieldError::Empty => format!("{label} is empty; fields cannot be null"),
                        FieldError::Value(error) => {
                            let text = field.unescaped();
                            error.message(&label, &quoted_excerpt(text.trim_ascii()), spec.data_type)
                        }
                    };
                    return Err(DecodeError::at(line, field.start, message));
                }
            }
        }
        found += 1;
    }
    if found != expected {
        return Err(count_error(expected, found));
    }
    stage.commit(batch);
    Ok(())
}

/// Checks that the header names the schema's fields in order.
pub(super) fn check_header(schema: &Schema, line: &str) -> Result<(), DecodeError> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let expected = schema.len();
    if expected == 0 && line.trim_ascii().is_empty() {
        return Ok(());
    }
    let count_error = |found: usize| {
        let names = schema_field_names(schema);
        let plural = if found == 1 { "" } else { "s" };
        DecodeError::new(format!("the header has {found} field{plural}, expected {expected}: {names}"))
    };
    let mut found = 0;
    for field in Fields::new(line) {
        let field = field.map_err(|e| split_error(line, &format!("header field {}", found + 1), e))?;
        let name = if field.quoted { field.unescaped() } else { Cow::Borrowed(field.text.trim_ascii()) };
        match schema.fields.get(found) {
            Some(spec) if spec.name == name => {}
            Some(spec) => {
                let message = format!(
                    "header field {} is {}, expected {}",
                    found + 1,
                    quoted_excerpt(&name),
                    quoted_excerpt(&spec.name)
                );
                return Err(DecodeError::at(line, field.start, message));
            }
            None => return Err(count_error(count_fields(line).unwrap_or(found + 1))),
        }
        found += 1;
    }
    if found != expected {
        return Err(count_error(found));
    }
    Ok(())
}

/// Whether a string needs quotes to read back as itself (and to look right to other tools).
fn needs_quotes(text: &str, alone: bool) -> bool {
    let bytes = text.as_bytes();
    // The only field of a record quotes an empty or blank value, which would otherwise make a
    // blank line that readers skip.
    (alone && bytes.iter().all(u8::is_ascii_whitespace))
        || bytes.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        || bytes.first().is_some_and(u8::is_ascii_whitespace)
        || bytes.last().is_some_and(u8::is_ascii_whitespace)
}

fn write_string(out: &mut String, text: &str, alone: bool) {
    if !needs_quotes(text, alone) {
        out.push_str(text);
        return;
    }
    out.push('"');
    let mut rest = text;
    while let Some(quote) = rest.find('"') {
        out.push_str(&rest[..=quote]);
        out.push('"');
        rest = &rest[quote + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

pub(super) fn encode_batch(batch: &Batch, out: &mut String) {
    let alone = batch.columns.len() == 1;
    for row in 0..batch.len() {
        for (i, column) in batch.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match column {
                Column::Int(v) | Column::Timestamp(v) => values::write_int(out, v[row]),
                Column::Float(v) => values::write_float(out, v[row]),
                Column::Bool(v) => out.push_str(if v[row] { "true" } else { "false" }),
                Column::Str(v) => write_string(out, v.get(row), alone),
            }
        }
        out.push('\n');
    }
}

pub(super) fn header(schema: &Schema) -> String {
    let mut out = String::new();
    let alone = schema.len() == 1;
    for (i, field) in schema.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, &field.name, alone);
    }
    out.push('\n');
    out
}

#[cfg(test)]
#[path = "csv_tests.rs"]
mod tests;
