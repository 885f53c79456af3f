//! Property tests: every encoding round-trips, and no input makes a decoder panic.

use proptest::prelude::*;

use crate::batch::Batch;
use crate::formats::{check_csv_header, csv_header, decode_line, encode_batch, TextFormat};
use crate::types::{DataType, Field, Scalar, Schema};

fn data_type() -> impl Strategy<Value = DataType> {
    prop_oneof![
        Just(DataType::Int),
        Just(DataType::Float),
        Just(DataType::Bool),
        Just(DataType::Str),
        Just(DataType::Timestamp),
    ]
}

/// Names that need quoting in CSV and escaping in JSON; the index suffix keeps them unique.
fn schema() -> impl Strategy<Value = Schema> {
    prop::collection::vec((data_type(), "[a-z_ ,\"\\\\é\n]{0,4}"), 1..=6).prop_map(|fields| {
        let fields = fields.into_iter().enumerate().map(|(i, (t, name))| Field::new(format!("{name}{i}"), t));
        Schema::new(fields.collect())
    })
}

/// Strings with separators, quotes, escapes, spaces, unicode and control characters; CSV cannot
/// carry a line break (a record is one line), JSON Lines can.
fn string(line_breaks: bool) -> BoxedStrategy<String> {
    let alphabet = if line_breaks {
        "[a-c ,\"\\\\\t\r\n\u{0}-\u{1f}é日🦀\u{2028}]{0,12}"
    } else {
        "[a-c ,\"\\\\\t\r\u{0}-\u{9}\u{b}-\u{1f}é日🦀\u{2028}]{0,12}"
    };
    prop_oneof![alphabet, any::<String>().prop_filter("one line", move |s| line_breaks || !s.contains('\n'))]
        .boxed()
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        any::<i32>().prop_map(f64::from),
    ]
}

fn value(data_type: DataType, line_breaks: bool) -> BoxedStrategy<Scalar> {
    match data_type {
        DataType::Int => any::<i64>().prop_map(Scalar::Int).boxed(),
        DataType::Float => float().prop_map(Scalar::Float).boxed(),
        DataType::Bool => any::<bool>().prop_map(Scalar::Bool).boxed(),
        DataType::Str => string(line_breaks).prop_map(Scalar::Str).boxed(),
        DataType::Timestamp => any::<i64>().prop_map(Scalar::Timestamp).boxed(),
    }
}

fn schema_and_rows(line_breaks: bool) -> impl Strategy<Value = (Schema, Vec<Vec<Scalar>>)> {
    schema().prop_flat_map(move |schema| {
        let row: Vec<_> = schema.fields.iter().map(|f| value(f.data_type, line_breaks)).collect();
        (Just(schema), prop::collection::vec(row, 0..8))
    })
}

/// Equality with floats compared bitwise, except that every NaN equals every NaN.
fn same(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Float(x), Scalar::Float(y)) => (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn round_trip(format: TextFormat, schema: &Schema, rows: &[Vec<Scalar>]) -> Result<(), TestCaseError> {
    let mut batch = Batch::empty(&schema.data_types(), rows.len());
    rows.iter().for_each(|row| batch.push_row(row));
    let mut text = String::new();
    encode_batch(format, schema, &batch, &mut text);
    prop_assert!(text.ends_with('\n') || rows.is_empty());
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    prop_assert_eq!(lines.len(), rows.len(), "one line a row: {:?}", text);

    let mut decoded = Batch::empty(&schema.data_types(), rows.len());
    for line in &lines {
        // The node's reader skips blank lines, so no encoded record may be blank.
        prop_assert!(!line.bytes().all(|b| b.is_ascii_whitespace()), "blank record {:?}", line);
        if let Err(e) = decode_line(format, schema, line, &mut decoded) {
            return Err(TestCaseError::fail(format!("{line:?}: {e}")));
        }
    }
    prop_assert_eq!(decoded.len(), rows.len());
    for (i, row) in rows.iter().enumerate() {
        let back = decoded.row(i);
        let equal = row.iter().zip(&back).all(|(a, b)| same(a, b));
        prop_assert!(equal, "row {} {:?} came back as {:?} from {:?}", i, row, back, lines[i]);
    }
    Ok(())
}

/// A line made of the characters that steer the parsers, to reach deep paths more often than
/// arbitrary strings do.
fn tricky_line() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\\u".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("[".to_owned()),
        Just("\"a\"".to_owned()),
        Just("\"b\":".to_owned()),
        Just("-".to_owned()),
        Just(".".to_owned()),
        Just("e".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("2024-02-29T12:34:56.789+02:00".to_owned()),
        Just("\\ud83e".to_owned()),
        Just("\\udd80".to_owned()),
        "[0-9a-fA-F]{1,4}",
        "[ \t\r\n]",
        "[é日🦀\u{0}-\u{1f}]",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn fuzz_schema() -> Schema {
    Schema::new(vec![
        Field::new("a", DataType::Int),
        Field::new("b", DataType::Str),
        Field::new("c", DataType::Float),
        Field::new("d", DataType::Timestamp),
        Field::new("e", DataType::Bool),
    ])
}

/// Decodes `line` in both formats: never a panic, and a row is appended exactly on success.
fn decode_never_panics(schema: &Schema, line: &str) -> Result<(), TestCaseError> {
    for format in [TextFormat::Csv, TextFormat::JsonLines] {
        let mut batch = Batch::empty(&schema.data_types(), 1);
        let result = decode_line(format, schema, line, &mut batch);
        prop_assert_eq!(batch.len(), usize::from(result.is_ok()));
        prop_assert!(batch.columns.iter().all(|c| c.len() == batch.len()));
        if let Err(e) = result {
            let column = e.column.unwrap_or(1);
            prop_assert!(
                column >= 1 && column <= line.chars().count() + 1,
                "column {} of {:?}",
                column,
                line
            );
        }
    }
    let _ = check_csv_header(schema, line);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn csv_round_trips((schema, rows) in schema_and_rows(false)) {
        round_trip(TextFormat::Csv, &schema, &rows)?;
        // A header, like a record, is one line: names with line breaks cannot be read back.
        if !schema.fields.iter().any(|f| f.name.contains('\n')) {
            let header = csv_header(&schema);
            let line = header.strip_suffix('\n').expect("the header ends its line");
            prop_assert!(check_csv_header(&schema, line).is_ok(), "{:?}", header);
        }
    }

    #[test]
    fn json_lines_round_trips((schema, rows) in schema_and_rows(true)) {
        round_trip(TextFormat::JsonLines, &schema, &rows)?;
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(line in any::<String>()) {
        decode_never_panics(&fuzz_schema(), &line)?;
    }

    #[test]
    fn decoding_tricky_text_never_panics(line in tricky_line()) {
        decode_never_panics(&fuzz_schema(), &line)?;
        decode_never_panics(&Schema::new(vec![Field::new("a", DataType::Str)]), &line)?;
        decode_never_panics(&Schema::new(vec![]), &line)?;
    }
}
