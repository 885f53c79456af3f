//! JSON Lines records: one flat JSON object a line, whose keys are exactly the schema's fields.
//!
//! The parser reads a single object of scalar values and rejects nested objects and arrays
//! instead of descending into them, so it never recurses and its work is linear in the line.
//! It is strict: unknown, duplicate and missing keys are errors, as is `null`.

use std::borrow::Cow;

use crate::batch::{Batch, Column};
use crate::types::{DataType, Schema};

use super::row::{RowStage, Slot};
use super::values::{self, ValueError};
use super::{field_label, quoted_excerpt, raw_excerpt, schema_field_names, DecodeError};

/// Why a JSON string is malformed, and at which byte offset.
enum StringError {
    Unterminated,
    ControlCharacter(usize),
    InvalidEscape(usize),
    UnpairedSurrogate(usize),
}

/// A JSON scalar value as read, before it is checked against its field's type.
enum Token<'a> {
    Str(Cow<'a, str>),
    /// A number's text, valid per JSON's grammar; `integer` if it has no fraction or exponent.
    Number {
        text: &'a str,
        integer: bool,
    },
    Bool(bool),
    Null,
}

/// A cursor over one line.
struct Parser<'a> {
    line: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(line: &'a str) -> Parser<'a> {
        Parser { line, bytes: line.as_bytes(), pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn error(&self, at: usize, message: String) -> DecodeError {
        DecodeError::at(self.line, at, message)
    }

    /// What stands at `pos`, for "expected …, found …" messages.
    fn found(&self) -> String {
        match self.line.get(self.pos..).and_then(|rest| rest.chars().next()) {
            Some(c) => quoted_excerpt(&c.to_string()),
            None => "the end of the line".to_owned(),
        }
    }

    /// The end of the token starting at `start`: the next structural character or space.
    fn token_end(&self, start: usize) -> usize {
        let rest = &self.bytes[start..];
        start + rest.iter().position(|b| b" \t\r\n,:{}[]\"".contains(b)).unwrap_or(rest.len())
    }

    /// Reads the string whose opening quote is at `pos`, resolving escapes (borrowing when there
    /// are none), and moves past its closing quote.
    fn string(&mut self) -> Result<Cow<'a, str>, StringError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let open = self.pos;
        let mut at = open + 1;
        loop {
            match self.bytes.get(at) {
                None => return Err(StringError::Unterminated),
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(Cow::Borrowed(&self.line[open + 1..at]));
                }
                Some(b'\\') => break,
                Some(&b) if b < 0x20 => return Err(StringError::ControlCharacter(at)),
                Some(_) => at += 1,
            }
        }
        let mut out = String::with_capacity(at - open + 16);
        let mut run = open + 1; // start of the bytes not yet copied to `out`
        loop {
            match self.bytes.get(at) {
                None => return Err(StringError::Unterminated),
                Some(b'"') => {
                    out.push_str(&self.line[run..at]);
                    self.pos = at + 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    out.push_str(&self.line[run..at]);
                    let (c, len) = self.escape(at)?;
                    out.push(c);
                    at += len;
                    run = at;
                }
                Some(&b) if b < 0x20 => return Err(StringError::ControlCharacter(at)),
                Some(_) => at += 1,
            }
        }
    }

    /// The character of the escape sequence at `at` (a backslash) and the sequence's length.
    fn escape(&self, at: usize) -> Result<(char, usize), StringError> {
        let c = match self.bytes.get(at + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(at),
            _ => return Err(StringError::InvalidEscape(at)),
        };
        Ok((c, 2))
    }

    /// `\uXXXX`, or a UTF-16 surrogate pair `\uD83D\uDE00` of two of them.
    fn unicode_escape(&self, at: usize) -> Result<(char, usize), StringError> {
        let hex4 = |from: usize| -> Option<u32> {
            let digits = self.bytes.get(from..from + 4)?;
            digits.iter().try_fold(0u32, |acc, &b| Some(acc * 16 + char::from(b).to_digit(16)?))
        };
        let high = hex4(at + 2).ok_or(StringError::InvalidEscape(at))?;
        let (code, len) = match high {
            0xD800..=0xDBFF => {
                let low = match self.bytes.get(at + 6..at + 8) {
                    Some(b"\\u") => hex4(at + 8).ok_or(StringError::InvalidEscape(at + 6))?,
                    _ => return Err(StringError::UnpairedSurrogate(at)),
                };
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(StringError::UnpairedSurrogate(at));
                }
                (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
            }
            0xDC00..=0xDFFF => return Err(StringError::UnpairedSurrogate(at)),
            _ => (high, 6),
        };
        let c = char::from_u32(code).expect("a non-surrogate code point below 0x110000 is a char");
        Ok((c, len))
    }

    fn string_error(&self, what: &str, open: usize, error: StringError) -> DecodeError {
        match error {
            StringError::Unterminated => self.error(open, format!("{what}: the string is not closed")),
            StringError::ControlCharacter(at) => {
                let code = self.bytes[at];
                self.error(at, format!("{what}: control character U+{code:04X} in a string must be escaped"))
            }
            StringError::InvalidEscape(at) => {
                // The backslash and the letter after it, or `\u` and up to four more characters.
                let rest = self.line.get(at..).unwrap_or_default();
                let len = if rest.starts_with("\\u") { 6 } else { 2 };
                let sequence: String = rest.chars().take(len).take_while(|&c| c != '"').collect();
                self.error(at, format!("{what}: invalid escape {}", quoted_excerpt(&sequence)))
            }
            StringError::UnpairedSurrogate(at) => {
                self.error(at, format!("{what}: \\u escape of an unpaired UTF-16 surrogate"))
            }
        }
    }

    /// Reads the number at `pos` per JSON's grammar; returns its text and whether it is an
    /// integer (no fraction, no exponent), or `None` with `pos` unmoved if it is malformed.
    fn number(&mut self) -> Option<(&'a str, bool)> {
        let start = self.pos;
        let bytes = self.bytes;
        let digits_from = |mut at: usize| {
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            at
        };
        let mut at = start + usize::from(bytes.get(start) == Some(&b'-'));
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => at = digits_from(at + 1),
            _ => return None,
        }
        let mut integer = true;
        if bytes.get(at) == Some(&b'.') {
            integer = false;
            let end = digits_from(at + 1);
            if end == at + 1 {
                return None;
            }
            at = end;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            integer = false;
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let end = digits_from(at);
            if end == at {
                return None;
            }
            at = end;
        }
        // "01", "1.2.3" and "1x" are one malformed token, not a number and trailing text.
        if bytes.get(at).is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'.') {
            return None;
        }
        self.pos = at;
        Some((&self.line[start..at], integer))
    }

    /// Reads the scalar at `pos`; `label` names the field for syntax errors (made only on error:
    /// this is the hot path).
    fn token(&mut self, label: impl Fn() -> String) -> Result<Token<'a>, DecodeError> {
        let start = self.pos;
        let invalid = |parser: &Parser<'_>, what: &str| {
            let end = parser.token_end(start).max(start + 1);
            let token = raw_excerpt(parser.line.get(start..end).unwrap_or_default());
            parser.error(start, format!("{}: invalid JSON {what} {token}", label()))
        };
        match self.peek() {
            Some(b'"') => self.string().map(Token::Str).map_err(|e| self.string_error(&label(), start, e)),
            Some(b'-' | b'0'..=b'9') => match self.number() {
                Some((text, integer)) => Ok(Token::Number { text, integer }),
                None => Err(invalid(self, "number")),
            },
            Some(b't' | b'f' | b'n') => {
                let rest = &self.bytes[start..];
                let (token, len) = if rest.starts_with(b"true") {
                    (Token::Bool(true), 4)
                } else if rest.starts_with(b"false") {
                    (Token::Bool(false), 5)
                } else if rest.starts_with(b"null") {
                    (Token::Null, 4)
                } else {
                    return Err(invalid(self, "value"));
                };
                self.pos += len;
                Ok(token)
            }
            Some(_) => Err(invalid(self, "value")),
            None => {
                Err(self.error(start, format!("{}: the value is missing at the end of the line", label())))
            }
        }
    }

    /// Reads the value of field `index` at `pos` as the field's type.
    fn value(&mut self, schema: &Schema, index: usize) -> Result<Slot<'a>, DecodeError> {
        let data_type = schema.fields[index].data_type;
        let label = || field_label(schema, index);
        let start = self.pos;
        if let Some(b'{' | b'[') = self.peek() {
            // Rejected rather than skipped: skipping would need a bounded nesting walk, and a
            // nested value can never fill a scalar field anyway.
            let expected = values::expected(data_type);
            let message =
                format!("{}: nested objects and arrays are not supported; expected {expected}", label());
            return Err(self.error(start, message));
        }
        let token = self.token(label)?;
        let slot = match (token, data_type) {
            (Token::Null, _) => {
                return Err(self.error(start, format!("{} is null; fields cannot be null", label())));
            }
            (Token::Str(text), DataType::Str) => Ok(Slot::Str(text)),
            (Token::Str(text), DataType::Timestamp) => values::parse_time(&text).map(Slot::Int),
            (Token::Str(text), DataType::Float) => {
                values::parse_non_finite_float(&text).map(Slot::Float).ok_or(ValueError::Syntax)
            }
            (Token::Number { text, integer: true }, DataType::Int) => values::parse_int(text).map(Slot::Int),
            (Token::Number { text, integer: true }, DataType::Timestamp) => {
                values::parse_int(text).map(Slot::Int).map_err(|_| ValueError::Syntax)
            }
            (Token::Number { text, .. }, DataType::Float) => values::parse_float(text).map(Slot::Float),
            (Token::Bool(value), DataType::Bool) => Ok(Slot::Bool(value)),
            _ => Err(ValueError::Syntax),
        };
        slot.map_err(|error| {
            let excerpt = raw_excerpt(&self.line[start..self.pos]);
            self.error(start, error.message(&label(), &excerpt, data_type))
        })
    }
    /// Reads one `"name": value` member at `pos` into its field's slot and returns the field's
    /// index. `hint` is the field most likely named (the one after the previous member's).
    fn member(&mut self, schema: &Schema, slots: &mut [Slot<'a>], hint: usize) -> Result<usize, DecodeError> {
        let key_start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.error(key_start, format!("expected a field name, found {}", self.found())));
        }
        let key = self.string().map_err(|e| self.string_error("field name", key_start, e))?;
        let index = match schema.fields.get(hint) {
            Some(field) if field.name == key => Some(hint),
            _ => schema.index_of(&key),
        };
        let Some(index) = index else {
            let names = schema_field_names(schema);
            let message = format!("unknown field `{}`; the schema has {names}", raw_excerpt(&key));
            return Err(self.error(key_start, message));
        };
        if !matches!(slots[index], Slot::Empty) {
            return Err(self.error(key_start, format!("duplicate {}", field_label(schema, index))));
        }
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            let message =
                format!("expected ':' after {}, found {}", field_label(schema, index), self.found());
            return Err(self.error(self.pos, message));
        }
        self.pos += 1;
        self.skip_whitespace();
        slots[index] = self.value(schema, index)?;
        Ok(index)
    }
}

pub(super) fn decode_line(schema: &Schema, line: &str, batch: &mut Batch) -> Result<(), DecodeError> {
    let mut parser = Parser::new(line);
    let mut stage = RowStage::new(schema.len());
    let slots = stage.slots();

    parser.skip_whitespace();
    if parser.peek() != Some(b'{') {
        return Err(parser.error(parser.pos, format!("expected a JSON object, found {}", parser.found())));
    }
    parser.pos += 1;
    parser.skip_whitespace();
    if parser.peek() == Some(b'}') {
        parser.pos += 1;
    } else {
        // Keys usually come in schema order: try the field after the previous one first.
        let mut hint = 0;
        loop {
            let index = parser.member(schema, slots, hint)?;
            hint = index + 1;
            parser.skip_whitespace();
            match parser.peek() {
                Some(b',') => {
                    parser.pos += 1;
                    parser.skip_whitespace();
                }
                Some(b'}') => {
                    parser.pos += 1;
                    break;
                }
                _ => {
                    let label = field_label(schema, index);
                    let message =
                        format!("expected ',' or '}}' after the value of {label}, found {}", parser.found());
                    return Err(parser.error(parser.pos, message));
                }
            }
        }
    }
    parser.skip_whitespace();
    if parser.pos != line.len() {
        return Err(parser.error(parser.pos, format!("unexpected {} after the JSON object", parser.found())));
    }
    if let Some(missing) = slots.iter().position(|slot| matches!(slot, Slot::Empty)) {
        return Err(DecodeError::new(format!("missing {}", field_label(schema, missing))));
    }
    stage.commit(batch);
    Ok(())
}

/// Writes `text` as a JSON string: quotes, backslashes and control characters escaped.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    let bytes = text.as_bytes();
    let mut run = 0; // start of the bytes not yet copied to `out`
    for (at, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[run..at]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        run = at + 1;
    }
    out.push_str(&text[run..]);
    out.push('"');
}

pub(super) fn encode_batch(schema: &Schema, batch: &Batch, out: &mut String) {
    // Each field's `{"name":` or `,"name":`, escaped once per batch.
    let prefixes: Vec<String> = schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let mut prefix = String::from(if i == 0 { "{" } else { "," });
            write_string(&mut prefix, &field.name);
            prefix.push(':');
            prefix
        })
        .collect();
    for row in 0..batch.len() {
        if prefixes.is_empty() {
            out.push('{');
        }
        for (prefix, column) in prefixes.iter().zip(&batch.columns) {
            out.push_str(prefix);
            match column {
                Column::Int(v) | Column::Timestamp(v) => values::write_int(out, v[row]),
                Column::Float(v) if v[row].is_finite() => values::write_float(out, v[row]),
                Column::Float(v) => {
                    // JSON has no NaN or infinities; they travel as strings that decode back.
                    out.push('"');
                    values::write_float(out, v[row]);
                    out.push('"');
                }
                Column::Bool(v) => out.push_str(if v[row] { "true" } else { "false" }),
                Column::Str(v) => write_string(out, v.get(row)),
            }
        }
        out.push_str("}\n");
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
