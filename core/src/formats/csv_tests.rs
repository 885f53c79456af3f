//! Unit tests of the CSV codec.

use crate::batch::Batch;
use crate::formats::{check_csv_header, csv_header, decode_line, encode_batch, DecodeError, TextFormat};
use crate::types::{DataType, Field, Scalar, Schema};

fn schema(fields: &[(&str, DataType)]) -> Schema {
    Schema::new(fields.iter().map(|&(name, t)| Field::new(name, t)).collect())
}

fn orders() -> Schema {
    schema(&[
        ("id", DataType::Int),
        ("name", DataType::Str),
        ("qty", DataType::Float),
        ("ts", DataType::Timestamp),
    ])
}

fn decode(schema: &Schema, line: &str) -> Result<Vec<Scalar>, DecodeError> {
    let mut batch = Batch::empty(&schema.data_types(), 1);
    decode_line(TextFormat::Csv, schema, line, &mut batch)?;
    assert_eq!(batch.len(), 1);
    Ok(batch.row(0))
}

fn error(schema: &Schema, line: &str) -> DecodeError {
    let mut batch = Batch::empty(&schema.data_types(), 1);
    let error = decode_line(TextFormat::Csv, schema, line, &mut batch).expect_err(line);
    assert_eq!(batch, Batch::empty(&schema.data_types(), 1), "a failed line appends nothing");
    error
}

fn message(schema: &Schema, line: &str) -> String {
    error(schema, line).message
}

fn encode(schema: &Schema, rows: &[Vec<Scalar>]) -> String {
    let mut batch = Batch::empty(&schema.data_types(), rows.len());
    rows.iter().for_each(|row| batch.push_row(row));
    let mut out = String::new();
    encode_batch(TextFormat::Csv, schema, &batch, &mut out);
    out
}

fn s(text: &str) -> Scalar {
    Scalar::Str(text.to_owned())
}

#[test]
fn decodes_every_type() {
    let all = schema(&[
        ("i", DataType::Int),
        ("f", DataType::Float),
        ("b", DataType::Bool),
        ("s", DataType::Str),
        ("t", DataType::Timestamp),
    ]);
    let row = decode(&all, "-12,2.5,true,hello,1700000000000").unwrap();
    assert_eq!(
        row,
        vec![
            Scalar::Int(-12),
            Scalar::Float(2.5),
            Scalar::Bool(true),
            s("hello"),
            Scalar::Timestamp(1_700_000_000_000)
        ]
    );
    let row = decode(&all, "+3,1e3,FALSE,,2024-02-29T12:34:56.789Z").unwrap();
    assert_eq!(
        row,
        vec![
            Scalar::Int(3),
            Scalar::Float(1000.0),
            Scalar::Bool(false),
            s(""),
            Scalar::Timestamp(1_709_210_096_789)
        ]
    );
    let row = decode(&all, "0,-inf,1,x,2024-02-29 14:34:56.789").unwrap();
    assert_eq!(row[1], Scalar::Float(f64::NEG_INFINITY));
    assert_eq!(row[2], Scalar::Bool(true));
    assert_eq!(row[4], Scalar::Timestamp(1_709_217_296_789));
    let row = decode(&all, "0,NaN,0,x,1970-01-01").unwrap();
    assert!(matches!(row[1], Scalar::Float(v) if v.is_nan()));
    assert_eq!(row[2], Scalar::Bool(false));
    assert_eq!(row[4], Scalar::Timestamp(0));
    let row = decode(&all, "0,inf,True,x,2024-02-29T14:34:56.789+02:00").unwrap();
    assert_eq!(row[1], Scalar::Float(f64::INFINITY));
    assert_eq!(row[4], Scalar::Timestamp(1_709_210_096_789));
}

#[test]
fn spaces_are_trimmed_for_values_and_kept_for_strings() {
    let row = decode(&orders(), " 7 , padded ,\t1.5 , 1970-01-01T00:00:01Z ").unwrap();
    assert_eq!(row, vec![Scalar::Int(7), s(" padded "), Scalar::Float(1.5), Scalar::Timestamp(1000)]);
    let row = decode(&orders(), "\" 7 \",\" quoted \",\"1.5\",\"5\"").unwrap();
    assert_eq!(row, vec![Scalar::Int(7), s(" quoted "), Scalar::Float(1.5), Scalar::Timestamp(5)]);
}

#[test]
fn quoting_edge_cases() {
    let one = schema(&[("a", DataType::Str), ("b", DataType::Str)]);
    assert_eq!(decode(&one, r#""a,b","c""d""#).unwrap(), vec![s("a,b"), s("c\"d")]);
    assert_eq!(decode(&one, "\"\"\"\",\"\"").unwrap(), vec![s("\""), s("")]);
    assert_eq!(decode(&one, r#""",x"#).unwrap(), vec![s(""), s("x")]);
    assert_eq!(decode(&one, r#"say "hi",5'10""#).unwrap(), vec![s("say \"hi\""), s("5'10\"")]);
    assert_eq!(decode(&one, r#""a""""b",-"#).unwrap(), vec![s("a\"\"b"), s("-")]);
    assert_eq!(decode(&one, ",").unwrap(), vec![s(""), s("")]);
    assert_eq!(decode(&one, " \"a\",b").unwrap(), vec![s(" \"a\""), s("b")]);
    assert_eq!(decode(&one, "\"tab\there\",\u{1}").unwrap(), vec![s("tab\there"), s("\u{1}")]);
}

#[test]
fn unicode_strings() {
    let one = schema(&[("a", DataType::Str), ("n", DataType::Int)]);
    assert_eq!(decode(&one, "日本語 🦀,1").unwrap(), vec![s("日本語 🦀"), Scalar::Int(1)]);
    assert_eq!(decode(&one, "\"é,ü\",2").unwrap(), vec![s("é,ü"), Scalar::Int(2)]);
    let err = error(&one, "日本,x");
    assert_eq!(err.column, Some(4));
}

#[test]
fn field_count_errors() {
    assert_eq!(message(&orders(), "1,a,2.0"), "expected 4 fields, found 3");
    assert_eq!(message(&orders(), "1,a,2.0,5,6"), "expected 4 fields, found 5");
    assert_eq!(message(&orders(), ""), "expected 4 fields, found 1");
    assert_eq!(message(&schema(&[("x", DataType::Int)]), "1,2"), "expected 1 field, found 2");
    // A type error caused by a missing field reports the count instead.
    assert_eq!(message(&orders(), "x,2.0,5"), "expected 4 fields, found 3");
    assert_eq!(error(&orders(), "1,a").column, None);
}

#[test]
fn value_errors_name_the_field_and_the_text() {
    let items = schema(&[
        ("id", DataType::Int),
        ("qty", DataType::Int),
        ("ok", DataType::Bool),
        ("ts", DataType::Timestamp),
    ]);
    let err = error(&items, "1,12x,true,0");
    assert_eq!(err.message, "field `qty`: \"12x\" is not an int");
    assert_eq!(err.column, Some(3));
    assert_eq!(message(&items, "1, 12x ,true,0"), "field `qty`: \"12x\" is not an int");
    assert_eq!(message(&items, "1,2,yes,0"), "field `ok`: \"yes\" is not a bool");
    assert_eq!(
        message(&items, "1,2,true,2024-13-01"),
        "field `ts`: \"2024-13-01\" is not a timestamp (milliseconds or ISO 8601 date-time)"
    );
    assert_eq!(
        message(&items, "99999999999999999999,2,true,0"),
        "field `id`: \"99999999999999999999\" is not an int (out of the 64-bit range)"
    );
    assert_eq!(message(&items, "1,,true,0"), "field `qty` is empty; fields cannot be null");
    assert_eq!(message(&items, "1,  ,true,0"), "field `qty` is empty; fields cannot be null");
    assert_eq!(message(&items, "1,2,true,\"\""), "field `ts` is empty; fields cannot be null");
    assert_eq!(message(&orders(), "1,a,1.2.3,0"), "field `qty`: \"1.2.3\" is not a float");
}

#[test]
fn malformed_quotes() {
    let err = error(&orders(), "1,\"open,2.0,0");
    assert_eq!(
        err.message,
        "field `name`: the quoted field is not closed (a record is one line; quoted fields cannot span lines)"
    );
    assert_eq!(err.column, Some(3));
    let err = error(&orders(), "1,\"a\"b,2.0,0");
    assert_eq!(
        err.message,
        "field `name`: \"b\" after the closing quote; a quote inside a quoted field is written \"\""
    );
    assert_eq!(err.column, Some(6));
    assert_eq!(
        message(&orders(), "1,a,2.0,0,\"x"),
        "field 5: the quoted field is not closed (a record is one line; quoted fields cannot span lines)"
    );
}

#[test]
fn encodes_every_type() {
    let all = schema(&[
        ("i", DataType::Int),
        ("f", DataType::Float),
        ("b", DataType::Bool),
        ("s", DataType::Str),
        ("t", DataType::Timestamp),
    ]);
    let rows = [
        vec![
            Scalar::Int(-1),
            Scalar::Float(1.0),
            Scalar::Bool(true),
            s("plain"),
            Scalar::Timestamp(1_700_000_000_000),
        ],
        vec![Scalar::Int(0), Scalar::Float(f64::NAN), Scalar::Bool(false), s("a,b"), Scalar::Timestamp(-1)],
        vec![
            Scalar::Int(i64::MIN),
            Scalar::Float(f64::INFINITY),
            Scalar::Bool(false),
            s("say \"hi\""),
            Scalar::Timestamp(0),
        ],
        vec![
            Scalar::Int(i64::MAX),
            Scalar::Float(f64::NEG_INFINITY),
            Scalar::Bool(true),
            s(" pad"),
            Scalar::Timestamp(0),
        ],
        vec![Scalar::Int(1), Scalar::Float(-0.0), Scalar::Bool(true), s(""), Scalar::Timestamp(0)],
        vec![
            Scalar::Int(1),
            Scalar::Float(1e300),
            Scalar::Bool(true),
            s("two\nlines\r"),
            Scalar::Timestamp(0),
        ],
    ];
    assert_eq!(
        encode(&all, &rows),
        "-1,1.0,true,plain,1700000000000\n\
         0,NaN,false,\"a,b\",-1\n\
         -9223372036854775808,inf,false,\"say \"\"hi\"\"\",0\n\
         9223372036854775807,-inf,true,\" pad\",0\n\
         1,-0.0,true,,0\n\
         1,1e300,true,\"two\nlines\r\",0\n"
    );
}

#[test]
fn a_lone_empty_or_blank_string_is_quoted() {
    let one = schema(&[("s", DataType::Str)]);
    assert_eq!(encode(&one, &[vec![s("")], vec![s("x")], vec![s("\u{c}")]]), "\"\"\nx\n\"\u{c}\"\n");
    assert_eq!(decode(&one, "\"\"").unwrap(), vec![s("")]);
}

#[test]
fn header_round_trip_and_mismatches() {
    let schema = orders();
    let header = csv_header(&schema);
    assert_eq!(header, "id,name,qty,ts\n");
    check_csv_header(&schema, header.trim_end()).unwrap();
    check_csv_header(&schema, "\u{feff}id, name ,\"qty\",ts\r").unwrap();
    let err = check_csv_header(&schema, "id,key,qty,ts").unwrap_err();
    assert_eq!(err.message, "header field 2 is \"key\", expected \"name\"");
    assert_eq!(err.column, Some(4));
    assert_eq!(
        check_csv_header(&schema, "id,name,qty").unwrap_err().message,
        "the header has 3 fields, expected 4: id, name, qty, ts"
    );
    assert_eq!(
        check_csv_header(&schema, "id,name,qty,ts,extra,more").unwrap_err().message,
        "the header has 6 fields, expected 4: id, name, qty, ts"
    );
    assert_eq!(
        check_csv_header(&schema, "id,\"name").unwrap_err().message,
        "header field 2: the quoted field is not closed (a record is one line; quoted fields cannot span lines)"
    );
    let odd = Schema::new(vec![Field::new("a,b", DataType::Int), Field::new(" c\"", DataType::Int)]);
    let header = csv_header(&odd);
    assert_eq!(header, "\"a,b\",\" c\"\"\"\n");
    check_csv_header(&odd, header.trim_end()).unwrap();
}
