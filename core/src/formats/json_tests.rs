//! Unit tests of the JSON Lines codec.

use crate::batch::Batch;
use crate::formats::{decode_line, encode_batch, DecodeError, TextFormat};
use crate::types::{DataType, Field, Scalar, Schema};

fn schema(fields: &[(&str, DataType)]) -> Schema {
    Schema::new(fields.iter().map(|&(name, t)| Field::new(name, t)).collect())
}

fn events() -> Schema {
    schema(&[
        ("id", DataType::Int),
        ("name", DataType::Str),
        ("ok", DataType::Bool),
        ("ts", DataType::Timestamp),
    ])
}

fn decode(schema: &Schema, line: &str) -> Result<Vec<Scalar>, DecodeError> {
    let mut batch = Batch::empty(&schema.data_types(), 1);
    decode_line(TextFormat::JsonLines, schema, line, &mut batch)?;
    assert_eq!(batch.len(), 1);
    Ok(batch.row(0))
}

fn error(schema: &Schema, line: &str) -> DecodeError {
    let mut batch = Batch::empty(&schema.data_types(), 1);
    let error = decode_line(TextFormat::JsonLines, schema, line, &mut batch).expect_err(line);
    assert_eq!(batch, Batch::empty(&schema.data_types(), 1), "a failed line appends nothing");
    error
}

fn message(schema: &Schema, line: &str) -> String {
    error(schema, line).message
}

fn s(text: &str) -> Scalar {
    Scalar::Str(text.to_owned())
}

fn one(data_type: DataType) -> Schema {
    schema(&[("x", data_type)])
}

#[test]
fn decodes_every_type_in_any_key_order() {
    let row = decode(&events(), r#"{"id":1,"name":"a\"b","ok":true,"ts":1700000000000}"#).unwrap();
    assert_eq!(
        row,
        vec![Scalar::Int(1), s("a\"b"), Scalar::Bool(true), Scalar::Timestamp(1_700_000_000_000)]
    );
    let line = " {\t\"ts\" : \"2024-02-29T12:34:56.789Z\" , \"ok\":false,\"name\":\"\",\"id\":-7 } ";
    let row = decode(&events(), line).unwrap();
    assert_eq!(row, vec![Scalar::Int(-7), s(""), Scalar::Bool(false), Scalar::Timestamp(1_709_210_096_789)]);
}

#[test]
fn floats_accept_any_number_and_non_finite_names() {
    let f = one(DataType::Float);
    for (line, value) in [
        (r#"{"x":1}"#, 1.0),
        (r#"{"x":-0.5}"#, -0.5),
        (r#"{"x":1e3}"#, 1000.0),
        (r#"{"x":2.5E-1}"#, 0.25),
        (r#"{"x":"inf"}"#, f64::INFINITY),
        (r#"{"x":"-inf"}"#, f64::NEG_INFINITY),
    ] {
        assert_eq!(decode(&f, line).unwrap(), vec![Scalar::Float(value)], "{line}");
    }
    assert_eq!(decode(&f, r#"{"x":-0.0}"#).unwrap(), vec![Scalar::Float(-0.0)]);
    assert!(matches!(decode(&f, r#"{"x":"NaN"}"#).unwrap()[0], Scalar::Float(v) if v.is_nan()));
    assert_eq!(message(&f, r#"{"x":"1.5"}"#), "field `x`: \"1.5\" is not a float");
}

#[test]
fn strings_resolve_every_escape() {
    let text = one(DataType::Str);
    let row = decode(&text, r#"{"x":"q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u65e5 \ud83e\udd80"}"#).unwrap();
    assert_eq!(row, vec![s("q\" b\\ s/ \u{8}\u{c}\n\r\t Aé日 🦀")]);
    assert_eq!(decode(&text, "{\"x\":\"日本 🦀\"}").unwrap(), vec![s("日本 🦀")]);
    assert_eq!(decode(&text, r#"{"\u0078":"k"}"#).unwrap(), vec![s("k")]);
}

#[test]
fn string_errors() {
    let text = one(DataType::Str);
    let err = error(&text, r#"{"x":"a\qb"}"#);
    assert_eq!(err.message, r#"field `x`: invalid escape "\\q""#);
    assert_eq!(err.column, Some(8));
    assert_eq!(message(&text, r#"{"x":"\u12"}"#), r#"field `x`: invalid escape "\\u12""#);
    assert_eq!(message(&text, r#"{"x":"\ud83e"}"#), "field `x`: \\u escape of an unpaired UTF-16 surrogate");
    assert_eq!(
        message(&text, r#"{"x":"\ud83e\u0041"}"#),
        "field `x`: \\u escape of an unpaired UTF-16 surrogate"
    );
    assert_eq!(message(&text, r#"{"x":"\udd80"}"#), "field `x`: \\u escape of an unpaired UTF-16 surrogate");
    assert_eq!(
        message(&text, "{\"x\":\"a\tb\"}"),
        "field `x`: control character U+0009 in a string must be escaped"
    );
    assert_eq!(message(&text, r#"{"x":"abc"#), "field `x`: the string is not closed");
    assert_eq!(message(&text, r#"{"x":"abc\"#), "field `x`: invalid escape \"\\\\\"");
    assert_eq!(message(&text, r#"{"x\z":1}"#), r#"field name: invalid escape "\\z""#);
}

#[test]
fn int_and_timestamp_fields_take_integers_only() {
    let id = schema(&[("id", DataType::Int)]);
    assert_eq!(decode(&id, r#"{"id":-9223372036854775808}"#).unwrap(), vec![Scalar::Int(i64::MIN)]);
    let err = error(&id, r#"{"id":1.5}"#);
    assert_eq!(err.message, "field `id`: 1.5 is not an int");
    assert_eq!(err.column, Some(7));
    assert_eq!(message(&id, r#"{"id":1e2}"#), "field `id`: 1e2 is not an int");
    assert_eq!(message(&id, r#"{"id":"12"}"#), "field `id`: \"12\" is not an int");
    assert_eq!(message(&id, r#"{"id":true}"#), "field `id`: true is not an int");
    assert_eq!(
        message(&id, r#"{"id":9223372036854775808}"#),
        "field `id`: 9223372036854775808 is not an int (out of the 64-bit range)"
    );
    let ts = schema(&[("ts", DataType::Timestamp)]);
    assert_eq!(decode(&ts, r#"{"ts":"1970-01-01"}"#).unwrap(), vec![Scalar::Timestamp(0)]);
    assert_eq!(decode(&ts, r#"{"ts":-1}"#).unwrap(), vec![Scalar::Timestamp(-1)]);
    assert_eq!(
        message(&ts, r#"{"ts":"2024-13-01"}"#),
        "field `ts`: \"2024-13-01\" is not a timestamp (milliseconds or ISO 8601 date-time)"
    );
    assert_eq!(
        message(&ts, r#"{"ts":1.5}"#),
        "field `ts`: 1.5 is not a timestamp (milliseconds or ISO 8601 date-time)"
    );
}

#[test]
fn bools_and_strings_are_not_coerced() {
    assert_eq!(message(&one(DataType::Bool), r#"{"x":1}"#), "field `x`: 1 is not a bool");
    assert_eq!(message(&one(DataType::Bool), r#"{"x":"true"}"#), "field `x`: \"true\" is not a bool");
    assert_eq!(message(&one(DataType::Str), r#"{"x":12}"#), "field `x`: 12 is not a string");
    assert_eq!(message(&one(DataType::Str), r#"{"x":false}"#), "field `x`: false is not a string");
}

#[test]
fn key_errors() {
    assert_eq!(message(&events(), r#"{"id":1,"name":"a","ok":true}"#), "missing field `ts`");
    let err = error(&events(), r#"{"id":1,"foo":2}"#);
    assert_eq!(err.message, "unknown field `foo`; the schema has id, name, ok, ts");
    assert_eq!(err.column, Some(9));
    assert_eq!(message(&events(), r#"{"id":1,"id":2}"#), "duplicate field `id`");
    assert_eq!(message(&one(DataType::Int), r#"{"x":null}"#), "field `x` is null; fields cannot be null");
    assert_eq!(
        message(&one(DataType::Int), r#"{"x":{"y":1}}"#),
        "field `x`: nested objects and arrays are not supported; expected an int"
    );
    assert_eq!(
        message(&one(DataType::Str), r#"{"x":[1,2]}"#),
        "field `x`: nested objects and arrays are not supported; expected a string"
    );
}

#[test]
fn syntax_errors() {
    let x = one(DataType::Int);
    assert_eq!(message(&x, ""), "expected a JSON object, found the end of the line");
    assert_eq!(message(&x, "[1]"), "expected a JSON object, found \"[\"");
    assert_eq!(
        message(&x, r#"{"x":1"#),
        "expected ',' or '}' after the value of field `x`, found the end of the line"
    );
    assert_eq!(message(&x, r#"{"x":1,}"#), "expected a field name, found \"}\"");
    assert_eq!(message(&x, r#"{"x" 1}"#), "expected ':' after field `x`, found \"1\"");
    assert_eq!(message(&x, r#"{"x":1} x"#), "unexpected \"x\" after the JSON object");
    assert_eq!(message(&x, r#"{"x":1}{"x":2}"#), "unexpected \"{\" after the JSON object");
    assert_eq!(message(&x, r#"{"x":01}"#), "field `x`: invalid JSON number 01");
    assert_eq!(message(&x, r#"{"x":-}"#), "field `x`: invalid JSON number -");
    assert_eq!(message(&x, r#"{"x":1.}"#), "field `x`: invalid JSON number 1.");
    assert_eq!(message(&x, r#"{"x":tru}"#), "field `x`: invalid JSON value tru");
    assert_eq!(message(&x, r#"{"x":+1}"#), "field `x`: invalid JSON value +1");
    assert_eq!(message(&x, r#"{"x":}"#), "field `x`: invalid JSON value }");
    assert_eq!(message(&x, r#"{"x":"#), "field `x`: the value is missing at the end of the line");
    assert_eq!(message(&x, r#"{"x":truex}"#), "field `x`: true is not an int");
    assert_eq!(
        message(&one(DataType::Bool), r#"{"x":truex}"#),
        "expected ',' or '}' after the value of field `x`, found \"x\""
    );
    assert_eq!(message(&x, "{\"x\":é}"), "field `x`: invalid JSON value é");
}

#[test]
fn encodes_every_type_with_escapes() {
    let all = schema(&[
        ("id", DataType::Int),
        ("name", DataType::Str),
        ("ok", DataType::Bool),
        ("ts", DataType::Timestamp),
        ("f", DataType::Float),
    ]);
    let mut batch = Batch::empty(&all.data_types(), 4);
    let rows = [
        vec![
            Scalar::Int(1),
            s("a\"b"),
            Scalar::Bool(true),
            Scalar::Timestamp(1_700_000_000_000),
            Scalar::Float(1.0),
        ],
        vec![
            Scalar::Int(-2),
            s("\\ \n\r\t\u{8}\u{c}\u{1}\u{1f}é🦀"),
            Scalar::Bool(false),
            Scalar::Timestamp(-1),
            Scalar::Float(f64::NAN),
        ],
        vec![
            Scalar::Int(0),
            s(""),
            Scalar::Bool(false),
            Scalar::Timestamp(0),
            Scalar::Float(f64::NEG_INFINITY),
        ],
        vec![Scalar::Int(0), s("/"), Scalar::Bool(false), Scalar::Timestamp(0), Scalar::Float(-1.5e-300)],
    ];
    rows.iter().for_each(|row| batch.push_row(row));
    let mut out = String::new();
    encode_batch(TextFormat::JsonLines, &all, &batch, &mut out);
    assert_eq!(
        out,
        "{\"id\":1,\"name\":\"a\\\"b\",\"ok\":true,\"ts\":1700000000000,\"f\":1.0}\n\
         {\"id\":-2,\"name\":\"\\\\ \\n\\r\\t\\b\\f\\u0001\\u001fé🦀\",\"ok\":false,\"ts\":-1,\"f\":\"NaN\"}\n\
         {\"id\":0,\"name\":\"\",\"ok\":false,\"ts\":0,\"f\":\"-inf\"}\n\
         {\"id\":0,\"name\":\"/\",\"ok\":false,\"ts\":0,\"f\":-1.5e-300}\n"
    );
    for line in out.lines() {
        let mut back = Batch::empty(&all.data_types(), 1);
        decode_line(TextFormat::JsonLines, &all, line, &mut back).unwrap();
    }
}

#[test]
fn keys_are_escaped_when_encoded() {
    let odd = schema(&[("a\"b", DataType::Int), ("日\n", DataType::Bool)]);
    let mut batch = Batch::empty(&odd.data_types(), 1);
    batch.push_row(&[Scalar::Int(3), Scalar::Bool(true)]);
    let mut out = String::new();
    encode_batch(TextFormat::JsonLines, &odd, &batch, &mut out);
    assert_eq!(out, "{\"a\\\"b\":3,\"日\\n\":true}\n");
    assert_eq!(decode(&odd, out.trim_end()).unwrap(), vec![Scalar::Int(3), Scalar::Bool(true)]);
}
