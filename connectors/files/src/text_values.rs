//! Single text values read as decimals, dates and timestamps in their common shapes, by hand: arrow's general
//! cast formats every decimal into a padded string before parsing it (a third of a CSV load's time went there),
//! and reads each timestamp's offset through a time-zone database. Shapes these do not cover go to arrow's
//! parser ([`crate::text_types::cast_text`]), so what is accepted only grows.

/// Decimals of one type: `precision` digits, `scale` of them after the point.
#[derive(Debug, Clone, Copy)]
pub struct DecimalShape {
    scale: u8,
    /// 10 to the precision: the first unscaled value too wide.
    bound: i128,
}

impl DecimalShape {
    /// `None` past 38 digits, which no decimal holds.
    pub fn new(precision: u8, scale: u8) -> Option<Self> {
        Some(DecimalShape { scale, bound: 10_i128.checked_pow(u32::from(precision))? })
    }

    /// `value` as the unscaled integer of a decimal of this shape: a plain decimal number (`-12.50`, `+.5`,
    /// `3`, `100.`). `None` when it is not one, when it would round (more fraction digits than the scale,
    /// trailing zeros aside) or when it has more digits than the precision holds.
    pub fn value(self, value: &str) -> Option<i128> {
        let bytes = value.as_bytes();
        let (negative, digits) = match bytes.first()? {
            b'-' => (true, &bytes[1..]),
            b'+' => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let (whole, fraction) = match digits.iter().position(|&byte| byte == b'.') {
            Some(point) => (&digits[..point], &digits[point + 1..]),
            None => (digits, &digits[digits.len()..]),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let kept = fraction.len().min(usize::from(self.scale));
        if !fraction[kept..].iter().all(|&byte| byte == b'0') {
            return None;
        }
        // Eighteen digits at a time in 64 bits, where most values end: 128-bit arithmetic costs several times
        // more per digit.
        let mut unscaled: i128 = 0;
        let mut digits = whole.iter().chain(&fraction[..kept]).peekable();
        while digits.peek().is_some() {
            let (mut part, mut width) = (0_u64, 0_u32);
            for &byte in digits.by_ref().take(18) {
                if !byte.is_ascii_digit() {
                    return None;
                }
                part = part * 10 + u64::from(byte - b'0');
                width += 1;
            }
            unscaled = unscaled.checked_mul(10_i128.pow(width))?.checked_add(i128::from(part))?;
        }
        unscaled = unscaled.checked_mul(10_i128.checked_pow((usize::from(self.scale) - kept) as u32)?)?;
        if unscaled >= self.bound {
            return None;
        }
        Some(if negative { -unscaled } else { unscaled })
    }
}

/// Days since 1970-01-01 of a date written `YYYY-MM-DD`; `None` for any other shape or a day not in the
/// calendar.
pub fn iso_date_days(value: &str) -> Option<i32> {
    let bytes = value.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    days_since_epoch(number(&bytes[0..4])?, number(&bytes[5..7])?, number(&bytes[8..10])?)
}

/// Microseconds since the epoch (UTC) of a timestamp written `YYYY-MM-DD[T ]HH:MM:SS[.ffffff]` with an optional
/// zone (`Z`, `+HH:MM`, `+HHMM`, `+HH`); a timestamp without a zone is read as UTC, as arrow reads it. `None`
/// for any other shape (more than six fraction digits, a named zone, a leap second) or a time not in the
/// calendar.
pub fn iso_timestamp_micros(value: &str) -> Option<i64> {
    let bytes = value.as_bytes();
    if bytes.len() < 19 || !matches!(bytes[10], b'T' | b't' | b' ') || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let days = iso_date_days(value.get(..10)?)?;
    let (hour, minute, second) = (number(&bytes[11..13])?, number(&bytes[14..16])?, number(&bytes[17..19])?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &bytes[19..];
    let mut micros = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|byte| byte.is_ascii_digit()).count();
        if digits == 0 || digits > 6 {
            return None;
        }
        micros = number(&fraction[..digits])? * 10_i64.pow(6 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (hours, minutes) = match zone {
                [h1, h2] => (number(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => (number(&[*h1, *h2])?, number(&[*m1, *m2])?),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let seconds = i64::from(days) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    seconds.checked_mul(1_000_000)?.checked_add(micros)
}

/// The decimal number of ASCII digits (at most 18 of them).
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0_i64, |number, &byte| byte.is_ascii_digit().then(|| number * 10 + i64::from(byte - b'0')))
}

/// Days from 1970-01-01 to a day of the proleptic Gregorian calendar, counted through 400-year eras of 146,097
/// days each (the civil-to-days method of Howard Hinnant's date algorithms).
fn days_since_epoch(year: i64, month: i64, day: i64) -> Option<i32> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    i32::try_from(era * 146_097 + day_of_era - 719_468).ok()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate};

    use super::*;

    fn decimal_value(value: &str, precision: u8, scale: u8) -> Option<i128> {
        DecimalShape::new(precision, scale).expect("shape").value(value)
    }

    #[test]
    fn plain_decimals_are_read_exactly_and_others_refused() {
        assert_eq!(decimal_value("12.50", 5, 2), Some(1250));
        assert_eq!(decimal_value("-0.125", 5, 3), Some(-125));
        assert_eq!(decimal_value("+.5", 4, 1), Some(5));
        assert_eq!(decimal_value("100.", 4, 1), Some(1000));
        assert_eq!(decimal_value("3", 4, 1), Some(30));
        assert_eq!(decimal_value("2.500", 5, 2), Some(250), "trailing zeros past the scale are exact");
        assert_eq!(decimal_value("1.255", 5, 2), None, "would round");
        assert_eq!(decimal_value("1000.0", 5, 2), None, "more digits than the precision");
        assert_eq!(decimal_value("999.99", 5, 2), Some(99999));
        let most = "9".repeat(38);
        assert_eq!(decimal_value(&most, 38, 0), Some(10_i128.pow(38) - 1));
        assert_eq!(decimal_value(&format!("{most}9"), 38, 0), None);
        assert_eq!(decimal_value(&format!("-{most}"), 38, 0), Some(1 - 10_i128.pow(38)));
        assert_eq!(decimal_value("0.47000000000000003", 19, 17), Some(47_000_000_000_000_003));
        assert_eq!(decimal_value("123456789012345678901.5", 23, 2), Some(12_345_678_901_234_567_890_150));
        for refused in ["", "-", ".", "1e3", "1.2.3", " 1", "1,5", "x", "1.5x"] {
            assert_eq!(decimal_value(refused, 10, 2), None, "{refused:?}");
        }
    }

    #[test]
    fn iso_dates_and_timestamps_match_chrono() {
        for date in ["1970-01-01", "2026-12-05", "2000-02-29", "1969-12-31", "0001-01-01", "9999-12-31"] {
            let expected = NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
            let days = expected.signed_duration_since(NaiveDate::default()).num_days();
            assert_eq!(iso_date_days(date).map(i64::from), Some(days), "{date}");
        }
        for refused in ["2026-02-29", "2026-13-01", "2026-00-10", "2026-1-01", "2026/01/01", "2026-01-32"] {
            assert_eq!(iso_date_days(refused), None, "{refused}");
        }
        for (text, rfc3339) in [
            ("2026-12-05T10:00:00Z", "2026-12-05T10:00:00Z"),
            ("2026-12-05 10:00:00", "2026-12-05T10:00:00Z"),
            ("2026-12-05T10:00:00.123456+0000", "2026-12-05T10:00:00.123456Z"),
            ("2026-12-05T10:00:00.5+02:00", "2026-12-05T10:00:00.5+02:00"),
            ("1969-12-31T23:59:59.9-05", "1969-12-31T23:59:59.9-05:00"),
        ] {
            let expected = DateTime::parse_from_rfc3339(rfc3339).expect("timestamp").timestamp_micros();
            assert_eq!(iso_timestamp_micros(text), Some(expected), "{text}");
        }
        for other in [
            "2026-12-05T10:00",
            "2026-12-05T24:00:00",
            "2026-12-05T10:00:60",
            "2026-12-05T10:00:00.1234567",
            "2026-12-05T10:00:00 Europe/Paris",
            "2026-12-05T10:00:00+2",
        ] {
            assert_eq!(iso_timestamp_micros(other), None, "{other}");
        }
    }
}
