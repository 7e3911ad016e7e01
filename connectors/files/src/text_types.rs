//! Types of text values (CSV fields): which type a column's sampled values all have, and each value cast to its
//! column's type, with those that do not fit kept apart for the rescued-data column instead of becoming nulls.

use std::sync::Arc;

use connector_core::arrow::array::{Array, ArrayRef, StringArray};
use connector_core::arrow::compute::{CastOptions, cast_with_options};
use connector_core::arrow::datatypes::{DataType, TimeUnit};
use connector_core::arrow::util::display::FormatOptions as DisplayOptions;

/// The timestamp type of values with a zone (stored in UTC) or without one.
pub fn timestamp_type(zoned: bool) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, zoned.then(|| Arc::from("UTC")))
}

/// The narrowest type every non-null value of `values` parses as: a 64-bit integer, a double, a boolean, a date,
/// a timestamp (with zone when every value has one), else text.
pub fn infer_text_type(values: &StringArray) -> DataType {
    if values.null_count() == values.len() {
        return DataType::Utf8;
    }
    let all = |check: fn(&str) -> bool| values.iter().flatten().all(check);
    let candidates = [DataType::Int64, DataType::Float64, DataType::Boolean, DataType::Date32];
    for candidate in candidates {
        if candidate == DataType::Boolean
            && !all(|value| matches!(value.to_ascii_lowercase().as_str(), "true" | "false"))
        {
            continue;
        }
        if candidate == DataType::Date32 && !all(looks_like_date) {
            continue;
        }
        if parses_every_value(values, &candidate) {
            return candidate;
        }
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

/// The wider of two inferred types: integers widen to doubles, anything else that differs to text.
pub fn wider_text_type(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (a, b) if a == b => a.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => DataType::Float64,
        (DataType::Date32, DataType::Timestamp(_, zone)) | (DataType::Timestamp(_, zone), DataType::Date32) => {
            timestamp_type(zone.is_some())
        }
        _ => DataType::Utf8,
    }
}

fn parses_every_value(values: &StringArray, data_type: &DataType) -> bool {
    let strict = CastOptions { safe: false, format_options: DisplayOptions::default() };
    cast_with_options(values, data_type, &strict).is_ok()
}

/// `values` as `data_type`, and which rows held a value that does not parse as it (a null in the result, where
/// the text was not null): those values are rescued, not lost.
pub fn cast_text(values: &StringArray, data_type: &DataType) -> (ArrayRef, Vec<usize>) {
    if data_type == &DataType::Utf8 {
        return (Arc::new(values.clone()), Vec::new());
    }
    let lenient = CastOptions { safe: true, format_options: DisplayOptions::default() };
    let cast = match cast_with_options(values, data_type, &lenient) {
        Ok(cast) => cast,
        // A type text cannot be cast to at all: every value is rescued.
        Err(_) => {
            let rows = (0..values.len()).filter(|&row| values.is_valid(row)).collect();
            return (connector_core::arrow::array::new_null_array(data_type, values.len()), rows);
        }
    };
    let unfit = if cast.null_count() == values.null_count() {
        Vec::new()
    } else {
        (0..values.len()).filter(|&row| values.is_valid(row) && cast.is_null(row)).collect()
    };
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
    fn a_columns_type_is_the_narrowest_every_sampled_value_parses_as() {
        let cases: &[(&[Option<&str>], DataType)] = &[
            (&[Some("1"), None, Some("-42")], DataType::Int64),
            (&[Some("1"), Some("2.5"), Some("1e3")], DataType::Float64),
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
            assert_eq!(&infer_text_type(&strings(values)), expected, "{values:?}");
        }
    }

    #[test]
    fn values_that_do_not_parse_as_their_columns_type_are_named_not_nulled() {
        let (cast, unfit) = cast_text(&strings(&[Some("1"), Some("x"), None, Some("3")]), &DataType::Int64);
        assert_eq!(unfit, vec![1]);
        assert_eq!((cast.len(), cast.null_count()), (4, 2));
    }
}
