//! Scalar values as text, shared by both formats: parsing with the messages that name what was
//! expected, and float printing that round-trips.

use std::fmt::Write;
use std::num::IntErrorKind;

use crate::types::DataType;

use super::timestamp::parse_timestamp;

/// What a field of `data_type` must look like, for "… is not <expected>" messages.
pub(super) fn expected(data_type: DataType) -> &'static str {
    match data_type {
        DataType::Int => "an int",
        DataType::Float => "a float",
        DataType::Bool => "a bool",
        DataType::Str => "a string",
        DataType::Timestamp => "a timestamp (milliseconds or ISO 8601 date-time)",
    }
}

/// Why a text did not parse, for the caller to phrase with the field's name and the excerpt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ValueError {
    /// Not of the expected type: "… is not an int".
    Syntax,
    /// An integer outside `i64`: "… is not an int (out of the 64-bit range)".
    OutOfRange,
}

impl ValueError {
    /// The message for field label `field` (such as "field `qty`") and offending text `excerpt`.
    pub(super) fn message(&self, field: &str, excerpt: &str, data_type: DataType) -> String {
        let expected = expected(data_type);
        match self {
            ValueError::Syntax => format!("{field}: {excerpt} is not {expected}"),
            ValueError::OutOfRange => {
                format!("{field}: {excerpt} is not {expected} (out of the 64-bit range)")
            }
        }
    }
}

pub(super) fn parse_int(text: &str) -> Result<i64, ValueError> {
    text.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => ValueError::OutOfRange,
        _ => ValueError::Syntax,
    })
}

/// Rust's `f64` syntax: decimals, exponents, `NaN`, `inf`, `infinity`, any case.
pub(super) fn parse_float(text: &str) -> Result<f64, ValueError> {
    text.parse::<f64>().map_err(|_| ValueError::Syntax)
}

/// The names of the floats JSON has no numbers for; JSON Lines writes them as strings.
pub(super) fn parse_non_finite_float(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "inf" | "+inf" | "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// `true`/`false` in any case, or `1`/`0`.
pub(super) fn parse_bool(text: &str) -> Result<bool, ValueError> {
    if text.eq_ignore_ascii_case("true") || text == "1" {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") || text == "0" {
        Ok(false)
    } else {
        Err(ValueError::Syntax)
    }
}

pub(super) fn parse_time(text: &str) -> Result<i64, ValueError> {
    parse_timestamp(text).ok_or(ValueError::Syntax)
}

/// Writes a float so that it parses back to the same `f64` (all NaNs become the one `NaN`).
///
/// Finite values use `{:?}`: the shortest round-trip digits, always with a `.` or an exponent
/// (`1.0`, `-0.0`, `1e300`), which is also valid JSON. Non-finite values are `NaN`, `inf`, `-inf`.
pub(super) fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "inf" } else { "-inf" });
    } else {
        write!(out, "{value:?}").expect("writing to a String cannot fail");
    }
}

pub(super) fn write_int(out: &mut String, value: i64) {
    // A hand-rolled formatter: `write!` costs a formatting call per value, and sinks write
    // mostly integers and timestamps.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits are UTF-8"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_int("-42"), Ok(-42));
        assert_eq!(parse_int("+7"), Ok(7));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), Err(ValueError::OutOfRange));
        assert_eq!(parse_int("12x"), Err(ValueError::Syntax));
        assert_eq!(parse_int(""), Err(ValueError::Syntax));
        assert_eq!(parse_int("1.0"), Err(ValueError::Syntax));
    }

    #[test]
    fn floats() {
        assert_eq!(parse_float("1e3"), Ok(1000.0));
        assert_eq!(parse_float("-inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_float("inf"), Ok(f64::INFINITY));
        assert!(parse_float("NaN").unwrap().is_nan());
        assert_eq!(parse_float("-0.0").map(f64::to_bits), Ok((-0.0f64).to_bits()));
        assert_eq!(parse_float("1,5"), Err(ValueError::Syntax));
        assert_eq!(parse_non_finite_float("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_non_finite_float("1.5"), None);
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("False"), Ok(false));
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(parse_bool("yes"), Err(ValueError::Syntax));
    }

    #[test]
    fn floats_print_for_round_trip() {
        for value in [0.0, -0.0, 1.0, 0.1, -2.5e-300, 1e300, f64::MAX, f64::MIN_POSITIVE, 5e-324, 123456.789]
        {
            let mut out = String::new();
            write_float(&mut out, value);
            assert_eq!(out.parse::<f64>().map(f64::to_bits), Ok(value.to_bits()), "{out}");
        }
        let mut out = String::new();
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0] {
            write_float(&mut out, value);
            out.push(' ');
        }
        assert_eq!(out, "NaN inf -inf 1.0 ");
    }

    #[test]
    fn ints_print_like_display() {
        for value in [0, 1, -1, 9, 10, -10, 1_700_000_000_000, i64::MAX, i64::MIN] {
            let mut out = String::new();
            write_int(&mut out, value);
            assert_eq!(out, value.to_string());
        }
    }
}
