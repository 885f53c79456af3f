//! Timestamps in text: epoch milliseconds, or ISO 8601 / RFC 3339 UTC date-times, converted with
//! a proleptic Gregorian calendar (no time zone database: only explicit offsets).

const MS_PER_SECOND: i64 = 1000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Days from 1970-01-01 to the given proleptic Gregorian date (negative before it).
///
/// Howard Hinnant's `days_from_civil`: years are counted from March, so that the leap day is the
/// last day of the year, and grouped into 400-year eras of 146 097 days. `month` is 1–12, `day`
/// 1–31; the date is not validated.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    debug_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400); // 0..=399
    let month_from_march = i64::from((month + 9) % 12); // March = 0 .. February = 11
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1; // 0..=365
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year; // 0..=146096
    era * 146_097 + day_of_era - 719_468
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses a timestamp: integer milliseconds since the epoch (optionally signed), or one of
/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]`, `YYYY-MM-DD HH:MM:SS[.fff][Z|±HH:MM]`
/// (`T` and `Z` in either case; 1–9 fraction digits, cut to milliseconds; no offset means UTC).
/// Surrounding spaces are not accepted: callers trim where their format allows them.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() >= 10 && bytes[4] == b'-' {
        parse_date_time(bytes)
    } else {
        text.parse::<i64>().ok()
    }
}

/// Reads `N` ASCII digits at `at` as a number.
fn digits<const N: usize>(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at + N)?;
    field.iter().try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
}

fn expect(bytes: &[u8], at: usize, wanted: u8) -> Option<()> {
    (bytes.get(at) == Some(&wanted)).then_some(())
}

fn parse_date_time(bytes: &[u8]) -> Option<i64> {
    let year = i64::from(digits::<4>(bytes, 0)?);
    expect(bytes, 4, b'-')?;
    let month = digits::<2>(bytes, 5)?;
    expect(bytes, 7, b'-')?;
    let day = digits::<2>(bytes, 8)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if bytes.len() == 10 {
        return Some(date_ms);
    }

    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let hour = digits::<2>(bytes, 11)?;
    expect(bytes, 13, b':')?;
    let minute = digits::<2>(bytes, 14)?;
    expect(bytes, 16, b':')?;
    // Leap seconds (:60) are rejected: epoch milliseconds cannot represent them.
    let second = digits::<2>(bytes, 17)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut fraction_ms = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            if at - start < 3 {
                fraction_ms = fraction_ms * 10 + i64::from(bytes[at] - b'0');
            }
            at += 1;
        }
        let count = at - start;
        if !(1..=9).contains(&count) {
            return None;
        }
        for _ in count..3 {
            fraction_ms *= 10;
        }
    }
    let offset_ms = match bytes.get(at) {
        None => 0,
        Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == bytes.len() => {
            let offset_hours = digits::<2>(bytes, at + 1)?;
            expect(bytes, at + 3, b':')?;
            let offset_minutes = digits::<2>(bytes, at + 4)?;
            if offset_hours > 23 || offset_minutes > 59 {
                return None;
            }
            let magnitude = i64::from(offset_hours) * MS_PER_HOUR + i64::from(offset_minutes) * MS_PER_MINUTE;
            if sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        Some(_) => return None,
    };
    let time_ms = i64::from(hour) * MS_PER_HOUR
        + i64::from(minute) * MS_PER_MINUTE
        + i64::from(second) * MS_PER_SECOND
        + fraction_ms;
    // A local time at offset +02:00 is two hours ahead of UTC, so UTC is local minus the offset.
    Some(date_ms + time_ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_civil_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(0, 1, 1), -719_528);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    }

    #[test]
    fn days_from_civil_is_consecutive_across_years() {
        let mut expected = days_from_civil(1890, 1, 1);
        for year in 1890..2110 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), expected, "{year}-{month}-{day}");
                    expected += 1;
                }
            }
        }
    }

    #[test]
    fn parses_iso_date_times() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("2024-02-29T12:34:56.789Z"), Some(1_709_210_096_789));
        assert_eq!(parse_timestamp("2024-02-29t12:34:56.789z"), Some(1_709_210_096_789));
        assert_eq!(parse_timestamp("2024-02-29 12:34:56.789"), Some(1_709_210_096_789));
        assert_eq!(parse_timestamp("2024-02-29T12:34:56.789"), Some(1_709_210_096_789));
        assert_eq!(parse_timestamp("2024-02-29T14:34:56.789+02:00"), Some(1_709_210_096_789));
        assert_eq!(parse_timestamp("2024-02-29T07:04:56.789-05:30"), Some(1_709_210_096_789));
        assert_eq!(parse_timestamp("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.999Z"), Some(-1));
    }

    #[test]
    fn fractions_are_padded_or_cut_to_milliseconds() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.05Z"), Some(1050));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.123456789Z"), Some(1123));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.Z"), None);
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.1234567891Z"), None);
    }

    #[test]
    fn parses_integer_milliseconds() {
        assert_eq!(parse_timestamp("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_timestamp("-5"), Some(-5));
        assert_eq!(parse_timestamp("+5"), Some(5));
        assert_eq!(parse_timestamp("1.5"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn rejects_invalid_dates_and_times() {
        for text in [
            "2024-13-01",
            "2024-00-10",
            "2023-02-29",
            "2024-04-31",
            "2024-01-00",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01T23:59Z",
            "2024-01-01T23:59:59ZZ",
            "2024-01-01T23:59:59+0200",
            "2024-01-01T23:59:59+24:00",
            "2024-01-01T23:59:59 ",
            "2024-01-01X23:59:59",
            "2024-1-01",
            "20x4-01-01",
            "2024-01-01T",
            "-024-01-01",
            "2024-01-01T00:00:00.+01:00",
            "２０２４-01-01",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }
}
