//! Types of text values (CSV fields): which type a column's sampled values all have, and each value cast to its
//! column's type, with those that do not fit kept apart for the rescued-data column instead of becoming nulls.

use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use connector_core::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, StringArray, TimestampMicrosecondArray, new_null_array,
};
use connector_core::arrow::compute::kernels::cast_utils::{Parser, string_to_datetime};
use connector_core::arrow::compute::{CastOptions, cast_with_options};
use connector_core::arrow::datatypes::{DataType, Date32Type, TimeUnit};
use connector_core::arrow::util::display::FormatOptions as DisplayOptions;

use crate::text_values::{DecimalShape, iso_date_days, iso_timestamp_micros};

/// How dates and timestamps are written when not as ISO 8601 (`2026-12-05`, `2026-12-05T10:00:00Z`): strftime
/// patterns (`%d/%m/%Y`, `%d/%m/%Y %H:%M:%S%.f %z`), as DuckDB takes them. A timestamp pattern with a zone
/// (`%z`, `%:z`, `%#z`) makes zoned timestamps, stored in UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeFormats {
    pub date: Option<String>,
    pub timestamp: Option<String>,
}

impl TimeFormats {
    /// Checks each pattern (`option` names its setting in errors).
    pub fn new(date: Option<String>, timestamp: Option<String>) -> Result<Self, String> {
        for (option, pattern) in [("date_format", &date), ("timestamp_format", &timestamp)] {
            if let Some(pattern) = pattern
                && StrftimeItems::new(pattern).any(|item| item == Item::Error)
            {
                return Err(format!(
                    "{option} `{pattern}` is not a strftime pattern; write it as `%d/%m/%Y` or `%Y-%m-%d %H:%M:%S` \
                     (https://docs.rs/chrono/latest/chrono/format/strftime/)"
                ));
            }
        }
        Ok(TimeFormats { date, timestamp })
    }

    fn timestamp_is_zoned(pattern: &str) -> bool {
        pattern.contains("%z") || pattern.contains("%:z") || pattern.contains("%#z") || pattern.contains("%::z")
    }

    /// Days since 1970-01-01 of `value` read with the date pattern.
    fn date(pattern: &str, value: &str) -> Option<i32> {
        let date = NaiveDate::parse_from_str(value, pattern).ok()?;
        i32::try_from(date.signed_duration_since(NaiveDate::default()).num_days()).ok()
    }

    /// Microseconds since the epoch (UTC for a zoned pattern) of `value` read with the timestamp pattern.
    fn timestamp(pattern: &str, value: &str) -> Option<i64> {
        if TimeFormats::timestamp_is_zoned(pattern) {
            Some(DateTime::parse_from_str(value, pattern).ok()?.timestamp_micros())
        } else {
            Some(NaiveDateTime::parse_from_str(value, pattern).ok()?.and_utc().timestamp_micros())
        }
    }

    /// Days since 1970-01-01 of a date value: read with the date pattern if there is one, else as ISO 8601 (or
    /// the other forms arrow reads); `None` when it is not a date so written.
    pub fn date_days(&self, value: &str) -> Option<i32> {
        match &self.date {
            Some(pattern) => TimeFormats::date(pattern, value),
            // arrow's parser also takes a timestamp as its day, dropping the time: such a value is no date.
            None if value.contains([':', 'T']) => None,
            None => iso_date_days(value).or_else(|| Date32Type::parse(value)),
        }
    }

    /// Microseconds since the epoch (UTC) of a timestamp value: read with the timestamp pattern if there is one,
    /// else as ISO 8601 (or the other forms arrow reads, a value without a zone read as UTC).
    pub fn timestamp_micros(&self, value: &str) -> Option<i64> {
        match &self.timestamp {
            Some(pattern) => TimeFormats::timestamp(pattern, value),
            None => iso_timestamp_micros(value)
                .or_else(|| Some(string_to_datetime(&Utc, value).ok()?.naive_utc().and_utc().timestamp_micros())),
        }
    }
}

/// The timestamp type of values with a zone (stored in UTC) or without one.
pub fn timestamp_type(zoned: bool) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, zoned.then(|| Arc::from("UTC")))
}

/// The narrowest type every non-null value of `values` parses as: a 64-bit integer, a decimal (numbers written
/// with a point, exact in at most 38 digits: amounts stay exact), a double, a boolean, a date, a timestamp (with
/// zone when every value has one), else text.
pub fn infer_text_type(values: &StringArray, formats: &TimeFormats) -> DataType {
    if values.null_count() == values.len() {
        return DataType::Utf8;
    }
    let all = |check: fn(&str) -> bool| values.iter().flatten().all(check);
    if !parses_every_value(values, &DataType::Int64)
        && let Some(decimal) = values.iter().flatten().try_fold(DecimalDigits::default(), DecimalDigits::with)
        && let Some(decimal) = decimal.data_type()
    {
        return decimal;
    }
    let candidates = [DataType::Int64, DataType::Float64, DataType::Boolean, DataType::Date32];
    for candidate in candidates {
        if candidate == DataType::Boolean
            && !all(|value| matches!(value.to_ascii_lowercase().as_str(), "true" | "false"))
        {
            continue;
        }
        if candidate == DataType::Date32
            && let Some(pattern) = &formats.date
        {
            if values.iter().flatten().all(|value| TimeFormats::date(pattern, value).is_some()) {
                return candidate;
            }
            continue;
        }
        if candidate == DataType::Date32 && !all(looks_like_date) {
            continue;
        }
        if parses_every_value(values, &candidate) {
            return candidate;
        }
    }
    if let Some(pattern) = &formats.timestamp {
        if values.iter().flatten().all(|value| TimeFormats::timestamp(pattern, value).is_some()) {
            return timestamp_type(TimeFormats::timestamp_is_zoned(pattern));
        }
        return DataType::Utf8;
    }
    if all(looks_like_timestamp) {
        let zoned = all(has_zone);
        let candidate = timestamp_type(zoned);
        if (zoned || values.iter().flatten().all(|value| !has_zone(value))) && parses_every_value(values, &candidate) {
            return candidate;
        }
    }
    DataType::Utf8
}

/// The wider of two inferred types: integers and decimals widen to decimals that hold both (to doubles past 38
/// digits), numbers to doubles, anything else that differs to text.
pub fn wider_text_type(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (a, b) if a == b => a.clone(),
        (DataType::Decimal128(..) | DataType::Int64, DataType::Decimal128(..) | DataType::Int64) => {
            let digits = |data_type: &DataType| match data_type {
                DataType::Decimal128(precision, scale) => {
                    DecimalDigits { whole: (*precision as i8 - *scale) as u8, fraction: *scale as u8 }
                }
                _ => DecimalDigits { whole: INT64_DIGITS, fraction: 0 },
            };
            let (a, b) = (digits(a), digits(b));
            let both = DecimalDigits { whole: a.whole.max(b.whole), fraction: a.fraction.max(b.fraction) };
            both.data_type().unwrap_or(DataType::Float64)
        }
        (DataType::Int64 | DataType::Decimal128(..), DataType::Float64)
        | (DataType::Float64, DataType::Int64 | DataType::Decimal128(..)) => DataType::Float64,
        (DataType::Date32, DataType::Timestamp(_, zone)) | (DataType::Timestamp(_, zone), DataType::Date32) => {
            timestamp_type(zone.is_some())
        }
        _ => DataType::Utf8,
    }
}

/// Digits any 64-bit integer needs.
const INT64_DIGITS: u8 = 19;

/// The digits decimal values need, before and after the point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DecimalDigits {
    whole: u8,
    fraction: u8,
}

impl DecimalDigits {
    /// Widened to hold `value`; `None` when it is not a plain decimal number (`-12.50`, `.5`, `3`; not `1e3`).
    fn with(self, value: &str) -> Option<Self> {
        let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
            return None;
        }
        let whole = whole.trim_start_matches('0').len().max(1);
        Some(DecimalDigits {
            whole: self.whole.max(u8::try_from(whole).ok()?),
            fraction: self.fraction.max(u8::try_from(fraction.len()).ok()?),
        })
    }

    /// The decimal type holding them; `None` past 38 digits, the most a Delta decimal holds.
    fn data_type(self) -> Option<DataType> {
        let precision = self.whole.checked_add(self.fraction)?;
        (precision <= 38).then_some(DataType::Decimal128(precision, self.fraction as i8))
    }
}

fn every_value(values: &StringArray) -> Vec<usize> {
    (0..values.len()).filter(|&row| values.is_valid(row)).collect()
}

fn parses_every_value(values: &StringArray, data_type: &DataType) -> bool {
    let strict = CastOptions { safe: false, format_options: DisplayOptions::default() };
    cast_with_options(values, data_type, &strict).is_ok()
}

/// A boolean written as text: `true`/`false`, `t`/`f`, `yes`/`no`, `y`/`n`, `on`/`off` or `1`/`0`, in any case,
/// spaces around it aside.
pub fn boolean_text(value: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "t", "yes", "y", "on"];
    const FALSE: [&str; 5] = ["false", "f", "no", "n", "off"];
    let value = value.trim();
    if value == "1" || TRUE.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Some(true)
    } else if value == "0" || FALSE.iter().any(|word| value.eq_ignore_ascii_case(word)) {
        Some(false)
    } else {
        None
    }
}

/// `values` as `data_type`, and which rows held a value that does not parse as it (a null in the result, where
/// the text was not null): those values are rescued, not lost.
pub fn cast_text(values: &StringArray, data_type: &DataType, formats: &TimeFormats) -> (ArrayRef, Vec<usize>) {
    if data_type == &DataType::Utf8 {
        return (Arc::new(values.clone()), Vec::new());
    }
    match data_type {
        DataType::Boolean => {
            let flags: BooleanArray = values.iter().map(|value| boolean_text(value?)).collect();
            return with_unfit(values, Arc::new(flags));
        }
        DataType::Date32 => {
            let dates: Date32Array = values.iter().map(|value| formats.date_days(value?)).collect();
            return with_unfit(values, Arc::new(dates));
        }
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            let times: TimestampMicrosecondArray =
                values.iter().map(|value| formats.timestamp_micros(value?)).collect();
            return with_unfit(values, Arc::new(times.with_timezone_opt(zone.clone())));
        }
        DataType::Decimal128(precision, scale)
            if let Some(shape) = u8::try_from(*scale).ok().and_then(|scale| DecimalShape::new(*precision, scale)) =>
        {
            let decimals: Decimal128Array = values.iter().map(|value| shape.value(value?)).collect();
            return match decimals.with_precision_and_scale(*precision, *scale) {
                Ok(decimals) => with_unfit(values, Arc::new(decimals)),
                Err(_) => (new_null_array(data_type, values.len()), every_value(values)),
            };
        }
        _ => {}
    }
    let lenient = CastOptions { safe: true, format_options: DisplayOptions::default() };
    let cast = match cast_with_options(values, data_type, &lenient) {
        Ok(cast) => cast,
        // A type text cannot be cast to at all: every value is rescued.
        Err(_) => return (new_null_array(data_type, values.len()), every_value(values)),
    };
    with_unfit(values, cast)
}

/// `cast` (of `values`) and the rows whose text it could not read.
fn with_unfit(values: &StringArray, cast: ArrayRef) -> (ArrayRef, Vec<usize>) {
    if cast.null_count() == values.null_count() {
        return (cast, Vec::new());
    }
    let unfit = (0..values.len()).filter(|&row| values.is_valid(row) && cast.is_null(row)).collect();
    (cast, unfit)
}

fn looks_like_date(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-'
}

fn looks_like_timestamp(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() >= 16 && bytes[4] == b'-' && bytes[7] == b'-' && matches!(bytes[10], b'T' | b' ')
}

/// Whether a timestamp names its zone: `Z`, or an offset such as `+02:00` or `-0500` after the time.
fn has_zone(value: &str) -> bool {
    let time = value.get(11..).unwrap_or_default();
    time.ends_with('Z') || time.ends_with('z') || time.contains('+') || time.contains('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[Option<&str>]) -> StringArray {
        values.iter().copied().collect()
    }

    #[test]
    fn booleans_are_read_from_their_usual_words_in_any_case_and_nothing_else() {
        for truthy in ["true", "TRUE", " t ", "Yes", "y", "ON", "1"] {
            assert_eq!(boolean_text(truthy), Some(true), "{truthy}");
        }
        for falsy in ["false", "F", "no", "N", "off", "0"] {
            assert_eq!(boolean_text(falsy), Some(false), "{falsy}");
        }
        for neither in ["", "2", "yess", "truth", "-1", "0.0", "nope"] {
            assert_eq!(boolean_text(neither), None, "{neither}");
        }
    }

    #[test]
    fn a_date_column_refuses_a_value_with_a_time_rather_than_drop_the_time() {
        let iso = TimeFormats::default();
        assert_eq!(iso.date_days("1970-01-02"), Some(1));
        for timed in ["2026-12-05 10:30:00", "2026-12-05T10:30:00", "2026-12-05T10:30:00Z"] {
            assert_eq!(iso.date_days(timed), None, "{timed}");
        }
        let pattern = TimeFormats { date: Some("%d/%m/%Y".into()), timestamp: None };
        assert_eq!(pattern.date_days("02/01/1970"), Some(1));
        assert_eq!(pattern.date_days("02/01/1970 10:30"), None);
    }

    #[test]
    fn a_columns_type_is_the_narrowest_every_sampled_value_parses_as() {
        let cases: &[(&[Option<&str>], DataType)] = &[
            (&[Some("1"), None, Some("-42")], DataType::Int64),
            (&[Some("1"), Some("2.5"), Some("1e3")], DataType::Float64),
            (&[Some("12.50"), Some("-0.125"), Some("3"), None], DataType::Decimal128(5, 3)),
            (&[Some(".5"), Some("100.")], DataType::Decimal128(4, 1)),
            (&[Some("1.00000000000000000000000000000000000001"), Some("1.5")], DataType::Float64),
            (&[Some("true"), Some("FALSE")], DataType::Boolean),
            (&[Some("2026-12-05"), Some("1999-01-31")], DataType::Date32),
            (&[Some("2026-12-05 10:00:00"), Some("2026-12-05T10:00:00.123456")], timestamp_type(false)),
            (&[Some("2026-12-05T10:00:00Z"), Some("2026-12-05T10:00:00+02:00")], timestamp_type(true)),
            (&[Some("2026-12-05T10:00:00Z"), Some("2026-12-05T10:00:00")], DataType::Utf8),
            (&[Some("1"), Some("one")], DataType::Utf8),
            (&[Some("0"), Some("1")], DataType::Int64),
            (&[None, None], DataType::Utf8),
        ];
        for (values, expected) in cases {
            assert_eq!(&infer_text_type(&strings(values), &TimeFormats::default()), expected, "{values:?}");
        }
    }

    #[test]
    fn decimals_widen_to_hold_both_sides_and_past_38_digits_become_doubles() {
        assert_eq!(
            wider_text_type(&DataType::Decimal128(5, 2), &DataType::Decimal128(4, 3)),
            DataType::Decimal128(6, 3)
        );
        assert_eq!(wider_text_type(&DataType::Int64, &DataType::Decimal128(4, 2)), DataType::Decimal128(21, 2));
        assert_eq!(wider_text_type(&DataType::Decimal128(38, 30), &DataType::Int64), DataType::Float64);
        assert_eq!(wider_text_type(&DataType::Decimal128(4, 2), &DataType::Float64), DataType::Float64);
    }

    #[test]
    fn a_decimal_value_that_would_round_is_rescued_not_rounded() {
        let values = strings(&[Some("1.25"), Some("1.255"), Some("2.500"), Some("x")]);
        let (cast, unfit) = cast_text(&values, &DataType::Decimal128(5, 2), &TimeFormats::default());
        assert_eq!(unfit, vec![1, 3]);
        assert_eq!((cast.null_count(), cast.is_valid(2)), (2, true));
        let (cast, unfit) = cast_text(
            &strings(&[Some(".5"), Some("100."), Some("-3")]),
            &DataType::Decimal128(4, 1),
            &TimeFormats::default(),
        );
        assert_eq!((unfit, cast.null_count()), (vec![], 0), "every form inference takes casts");
    }

    #[test]
    fn values_that_do_not_parse_as_their_columns_type_are_named_not_nulled() {
        let (cast, unfit) =
            cast_text(&strings(&[Some("1"), Some("x"), None, Some("3")]), &DataType::Int64, &TimeFormats::default());
        assert_eq!(unfit, vec![1]);
        assert_eq!((cast.len(), cast.null_count()), (4, 2));
    }

    #[test]
    fn dates_and_timestamps_in_the_patterns_given_are_inferred_and_read_others_rescued() {
        let formats = TimeFormats::new(Some("%d/%m/%Y".into()), Some("%d/%m/%Y %H:%M:%S%.f %z".into())).expect("ok");
        let dates = strings(&[Some("05/12/2026"), Some("31/01/1999")]);
        assert_eq!(infer_text_type(&dates, &formats), DataType::Date32);
        let times = strings(&[Some("05/12/2026 10:00:00.5 +0200"), Some("05/12/2026 23:59:59 -0100")]);
        assert_eq!(infer_text_type(&times, &formats), timestamp_type(true));
        let (cast, unfit) =
            cast_text(&strings(&[Some("05/12/2026"), Some("2026-12-05"), None]), &DataType::Date32, &formats);
        assert_eq!(unfit, vec![1], "ISO is not the pattern: rescued");
        let days = cast.as_any().downcast_ref::<Date32Array>().expect("dates");
        assert_eq!(days.value(0), 20792, "2026-12-05");
        let (cast, unfit) = cast_text(&times, &timestamp_type(true), &formats);
        let micros = cast.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("timestamps");
        assert_eq!((unfit.len(), micros.value(0)), (0, 1_796_457_600_500_000), "08:00:00.5 UTC");
        let local = TimeFormats::new(None, Some("%Y%m%d %H%M".into())).expect("ok");
        assert_eq!(infer_text_type(&strings(&[Some("20261205 1000")]), &local), timestamp_type(false));
        let error = TimeFormats::new(Some("%Q".into()), None).expect_err("not a pattern");
        assert!(error.starts_with("date_format `%Q` is not a strftime pattern"), "{error}");
    }
}
