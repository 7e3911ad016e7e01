//! MySQL values into Arrow columns. Snapshot rows (binary protocol, session in UTC and utf8mb4) and binlog
//! rows (raw row images) arrive as the same `mysql_async::Value`s except for a few types, which [`Origin`]
//! tells apart: TIMESTAMP (a date in the session's zone vs. seconds since the epoch), ENUM (label vs. index),
//! SET (labels vs. bit mask), YEAR, and text (UTF-8 vs. the column's character set).

use std::fmt;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use connector_core::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use connector_core::arrow::datatypes::DataType;
use connector_core::change_buffer::ColumnRows;
use mysql_async::Value;

use crate::types::{MySqlType, TextEncoding};

/// Where a value comes from; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Snapshot,
    Binlog,
}

/// A value that cannot be represented in its column's Delta type.
#[derive(Debug, Clone)]
pub struct ValueError(String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

/// An empty builder for values of `mysql_type`, with room for `capacity` values (and `value_bytes` bytes of
/// text or binary data).
fn sized_builder(mysql_type: &MySqlType, capacity: usize, value_bytes: usize) -> Builder {
    match mysql_type.arrow_type() {
        DataType::Int8 => Builder::Int8(Int8Builder::with_capacity(capacity)),
        DataType::Int16 => Builder::Int16(Int16Builder::with_capacity(capacity)),
        DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(capacity)),
        DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
        data_type @ DataType::Decimal128(..) => {
            Builder::Decimal(Decimal128Builder::with_capacity(capacity).with_data_type(data_type))
        }
        DataType::Float32 => Builder::Float32(Float32Builder::with_capacity(capacity)),
        DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
        DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
        DataType::Binary => Builder::Binary(BinaryBuilder::with_capacity(capacity, value_bytes)),
        DataType::Date32 => Builder::Date(Date32Builder::with_capacity(capacity)),
        data_type @ DataType::Timestamp(..) => {
            Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_data_type(data_type))
        }
        _ => Builder::Text(StringBuilder::with_capacity(capacity, value_bytes)),
    }
}

fn invalid(mysql_type: &MySqlType, value: &Value) -> ValueError {
    ValueError(format!("{value:?} is not a valid {mysql_type:?} value"))
}

/// The Arrow builder of one column, chosen once from the column's type.
#[derive(Debug)]
enum Builder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Decimal(Decimal128Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

/// Decodes one column's values into Arrow.
#[derive(Debug)]
pub struct ColumnBuilder {
    mysql_type: MySqlType,
    builder: Builder,
    /// Bytes appended since the last finish (variable-length data plus eight per value): bounds memory.
    bytes: usize,
    /// Values the builder is sized for.
    capacity: usize,
}

/// The change buffer's view of a column builder.
impl ColumnRows for ColumnBuilder {
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    fn finish(&mut self) -> ArrayRef {
        self.bytes = 0;
        let array: ArrayRef = match &mut self.builder {
            Builder::Int8(builder) => Arc::new(builder.finish()),
            Builder::Int16(builder) => Arc::new(builder.finish()),
            Builder::Int32(builder) => Arc::new(builder.finish()),
            Builder::Int64(builder) => Arc::new(builder.finish()),
            Builder::Decimal(builder) => Arc::new(builder.finish()),
            Builder::Float32(builder) => Arc::new(builder.finish()),
            Builder::Float64(builder) => Arc::new(builder.finish()),
            Builder::Boolean(builder) => Arc::new(builder.finish()),
            Builder::Text(builder) => Arc::new(builder.finish()),
            Builder::Binary(builder) => Arc::new(builder.finish()),
            Builder::Date(builder) => Arc::new(builder.finish()),
            Builder::Timestamp(builder) => Arc::new(builder.finish()),
        };
        // Arrow's builders hand their buffers to the array and start the next from nothing; sizing them
        // from this batch's bytes per value saves regrowing (and copying) them value by value.
        let value_bytes = array.to_data().buffers().get(1).map_or(0, |values| values.len());
        let expected_bytes = value_bytes / array.len().max(1) * self.capacity * 9 / 8;
        self.builder = sized_builder(&self.mysql_type, self.capacity, expected_bytes.max(self.capacity * 16));
        array
    }
}

impl ColumnBuilder {
    pub fn new(mysql_type: &MySqlType, capacity: usize) -> Self {
        let builder = sized_builder(mysql_type, capacity, capacity * 16);
        ColumnBuilder { mysql_type: mysql_type.clone(), builder, bytes: 0, capacity }
    }

    fn len(&self) -> usize {
        use connector_core::arrow::array::ArrayBuilder;
        match &self.builder {
            Builder::Int8(builder) => builder.len(),
            Builder::Int16(builder) => builder.len(),
            Builder::Int32(builder) => builder.len(),
            Builder::Int64(builder) => builder.len(),
            Builder::Decimal(builder) => builder.len(),
            Builder::Float32(builder) => builder.len(),
            Builder::Float64(builder) => builder.len(),
            Builder::Boolean(builder) => builder.len(),
            Builder::Text(builder) => builder.len(),
            Builder::Binary(builder) => builder.len(),
            Builder::Date(builder) => builder.len(),
            Builder::Timestamp(builder) => builder.len(),
        }
    }

    /// Appends a value (`None` or `Value::NULL` for NULL).
    pub fn append(&mut self, value: Option<&Value>, origin: Origin) -> Result<(), ValueError> {
        self.bytes += 8;
        let value = match value {
            None | Some(Value::NULL) => return self.append_null(),
            Some(value) => value,
        };
        let mysql_type = &self.mysql_type;
        match (&mut self.builder, mysql_type) {
            (Builder::Text(builder), MySqlType::Text(encoding)) => {
                let Value::Bytes(bytes) = value else { return Err(invalid(mysql_type, value)) };
                self.bytes += bytes.len();
                match (origin, encoding) {
                    (Origin::Binlog, TextEncoding::Other(encoding)) => {
                        builder.append_value(encoding.decode_without_bom_handling(bytes).0)
                    }
                    _ => builder.append_value(utf8_text(bytes)),
                }
            }
            (Builder::Text(builder), MySqlType::Json | MySqlType::Decimal { .. }) => {
                let Value::Bytes(bytes) = value else { return Err(invalid(mysql_type, value)) };
                self.bytes += bytes.len();
                builder.append_value(utf8_text(bytes));
            }
            (Builder::Text(builder), MySqlType::Enum(labels)) => {
                let label = match (origin, value) {
                    (Origin::Binlog, Value::Int(index)) => enum_label(labels, *index as u64),
                    (Origin::Binlog, Value::UInt(index)) => enum_label(labels, *index),
                    (_, Value::Bytes(bytes)) => utf8_text(bytes).into_owned(),
                    _ => return Err(invalid(mysql_type, value)),
                };
                self.bytes += label.len();
                builder.append_value(label);
            }
            (Builder::Text(builder), MySqlType::Set(labels)) => {
                let Value::Bytes(bytes) = value else { return Err(invalid(mysql_type, value)) };
                let text = match origin {
                    Origin::Binlog => set_labels(labels, bytes),
                    Origin::Snapshot => utf8_text(bytes).into_owned(),
                };
                self.bytes += text.len();
                builder.append_value(text);
            }
            (Builder::Text(builder), MySqlType::Time) => {
                let text = time_text(value).ok_or_else(|| invalid(mysql_type, value))?;
                self.bytes += text.len();
                builder.append_value(text);
            }
            (Builder::Binary(builder), MySqlType::Geometry) => {
                // MySQL stores a geometry as a 4-byte SRID followed by the WKB.
                let Value::Bytes(bytes) = value else { return Err(invalid(mysql_type, value)) };
                let wkb = bytes.get(4..).ok_or_else(|| invalid(mysql_type, value))?;
                self.bytes += wkb.len();
                builder.append_value(wkb);
            }
            (Builder::Binary(builder), MySqlType::FixedBinary { length }) => {
                let Value::Bytes(bytes) = value else { return Err(invalid(mysql_type, value)) };
                self.bytes += (*length).max(bytes.len());
                match length.checked_sub(bytes.len()).filter(|missing| *missing > 0) {
                    // The binlog's value lacks the trailing zeros the server pads BINARY(n) with.
                    Some(missing) => builder.append_value([bytes.as_slice(), &vec![0; missing]].concat()),
                    None => builder.append_value(bytes),
                }
            }
            (Builder::Binary(builder), _) => {
                let Value::Bytes(bytes) = value else { return Err(invalid(mysql_type, value)) };
                self.bytes += bytes.len();
                builder.append_value(bytes);
            }
            (Builder::Boolean(builder), MySqlType::Bit { .. }) => {
                builder.append_value(bit_value(value).ok_or_else(|| invalid(mysql_type, value))? != 0)
            }
            (Builder::Int64(builder), MySqlType::Bit { .. }) => {
                let bits = bit_value(value).ok_or_else(|| invalid(mysql_type, value))?;
                builder.append_value(i64::try_from(bits).map_err(|_| invalid(mysql_type, value))?)
            }
            (Builder::Decimal(builder), MySqlType::Bit { .. }) => {
                builder.append_value(i128::from(bit_value(value).ok_or_else(|| invalid(mysql_type, value))?))
            }
            (Builder::Decimal(builder), MySqlType::Integer { .. }) => {
                builder.append_value(integer(value).ok_or_else(|| invalid(mysql_type, value))?)
            }
            (Builder::Decimal(builder), MySqlType::Decimal { scale, .. }) => {
                let Value::Bytes(bytes) = value else { return Err(invalid(mysql_type, value)) };
                let unscaled = decimal_unscaled(bytes, *scale).ok_or_else(|| invalid(mysql_type, value))?;
                builder.append_value(unscaled)
            }
            (Builder::Int8(builder), _) => builder.append_value(narrow(mysql_type, value)?),
            (Builder::Int16(builder), MySqlType::Year) => builder.append_value(year(value, origin)?),
            (Builder::Int16(builder), _) => builder.append_value(narrow(mysql_type, value)?),
            (Builder::Int32(builder), MySqlType::Integer { bytes: 3, unsigned: false }) if origin == Origin::Binlog => {
                builder.append_value(signed_medium(narrow(mysql_type, value)?))
            }
            (Builder::Int32(builder), _) => builder.append_value(narrow(mysql_type, value)?),
            (Builder::Int64(builder), _) => builder.append_value(narrow(mysql_type, value)?),
            (Builder::Float32(builder), _) => match value {
                Value::Float(number) => builder.append_value(*number),
                Value::Double(number) => builder.append_value(*number as f32),
                _ => return Err(invalid(mysql_type, value)),
            },
            (Builder::Float64(builder), _) => match value {
                Value::Double(number) => builder.append_value(*number),
                Value::Float(number) => builder.append_value(f64::from(*number)),
                _ => return Err(invalid(mysql_type, value)),
            },
            (Builder::Date(builder), _) => match date_time(value) {
                Some(Some(moment)) => builder.append_value(days_since_epoch(moment.date())),
                // The zero date '0000-00-00' (and dates with a zero part) is not a date: it lands as null.
                Some(None) => builder.append_null(),
                None => return Err(invalid(mysql_type, value)),
            },
            (Builder::Timestamp(builder), MySqlType::Timestamp) if origin == Origin::Binlog => {
                match epoch_micros(value) {
                    Some(0) => builder.append_null(),
                    Some(micros) => builder.append_value(micros),
                    None => return Err(invalid(mysql_type, value)),
                }
            }
            (Builder::Timestamp(builder), _) => match date_time(value) {
                Some(Some(moment)) => builder.append_value(moment.and_utc().timestamp_micros()),
                Some(None) => builder.append_null(),
                None => return Err(invalid(mysql_type, value)),
            },
            (_, _) => return Err(invalid(mysql_type, value)),
        }
        Ok(())
    }

    fn append_null(&mut self) -> Result<(), ValueError> {
        match &mut self.builder {
            Builder::Int8(builder) => builder.append_null(),
            Builder::Int16(builder) => builder.append_null(),
            Builder::Int32(builder) => builder.append_null(),
            Builder::Int64(builder) => builder.append_null(),
            Builder::Decimal(builder) => builder.append_null(),
            Builder::Float32(builder) => builder.append_null(),
            Builder::Float64(builder) => builder.append_null(),
            Builder::Boolean(builder) => builder.append_null(),
            Builder::Text(builder) => builder.append_null(),
            Builder::Binary(builder) => builder.append_null(),
            Builder::Date(builder) => builder.append_null(),
            Builder::Timestamp(builder) => builder.append_null(),
        }
        Ok(())
    }
}

/// The text of UTF-8 bytes (as the server sends snapshot rows); a stray invalid sequence becomes U+FFFD.
/// Valid text, the usual case, is checked by `str::from_utf8`, several times faster than the lossy decoder.
fn utf8_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Int(number) => Some(i128::from(*number)),
        Value::UInt(number) => Some(i128::from(*number)),
        Value::Bytes(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

fn narrow<T: TryFrom<i128>>(mysql_type: &MySqlType, value: &Value) -> Result<T, ValueError> {
    integer(value).and_then(|number| T::try_from(number).ok()).ok_or_else(|| invalid(mysql_type, value))
}

/// A signed MEDIUMINT from the binlog decoder, which reads the 24 bits without extending their sign.
fn signed_medium(value: i32) -> i32 {
    if value >= 1 << 23 { value - (1 << 24) } else { value }
}

/// YEAR: the snapshot sends the year; the binlog decoder reports 1900 + the stored byte, where 0 is `0000`.
fn year(value: &Value, origin: Origin) -> Result<i16, ValueError> {
    let number = integer(value).ok_or_else(|| invalid(&MySqlType::Year, value))?;
    let number = if origin == Origin::Binlog && number == 1900 { 0 } else { number };
    i16::try_from(number).map_err(|_| invalid(&MySqlType::Year, value))
}

/// A BIT value: big-endian bytes.
fn bit_value(value: &Value) -> Option<u64> {
    match value {
        Value::Bytes(bytes) if bytes.len() <= 8 => {
            Some(bytes.iter().fold(0_u64, |accumulated, byte| (accumulated << 8) | u64::from(*byte)))
        }
        Value::Int(number) => u64::try_from(*number).ok(),
        Value::UInt(number) => Some(*number),
        _ => None,
    }
}

/// `-12.50` at scale 2 → -1250. Exact: the text is MySQL's own rendering of the decimal.
fn decimal_unscaled(text: &[u8], scale: u8) -> Option<i128> {
    let text = std::str::from_utf8(text).ok()?.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if fraction.len() > usize::from(scale) {
        return None;
    }
    let mut unscaled: i128 = 0;
    for digit in
        whole.bytes().chain(fraction.bytes()).chain(std::iter::repeat_n(b'0', usize::from(scale) - fraction.len()))
    {
        if !digit.is_ascii_digit() {
            return None;
        }
        unscaled = unscaled.checked_mul(10)?.checked_add(i128::from(digit - b'0'))?;
    }
    Some(if negative { -unscaled } else { unscaled })
}

fn enum_label(labels: &[String], index: u64) -> String {
    // Index 0 is the empty string MySQL stores for an invalid value in non-strict mode.
    usize::try_from(index)
        .ok()
        .and_then(|index| index.checked_sub(1))
        .and_then(|index| labels.get(index))
        .cloned()
        .unwrap_or_default()
}

/// A SET's bit mask (little-endian bytes, bit i = label i) as MySQL writes it: labels joined by commas.
fn set_labels(labels: &[String], mask: &[u8]) -> String {
    let mut chosen = Vec::new();
    for (index, label) in labels.iter().enumerate() {
        if mask.get(index / 8).is_some_and(|byte| byte & (1 << (index % 8)) != 0) {
            chosen.push(label.as_str());
        }
    }
    chosen.join(",")
}

/// `Some(None)` for a zero date (or one with a zero month or day), `None` for a value that is no date.
fn date_time(value: &Value) -> Option<Option<NaiveDateTime>> {
    match value {
        Value::Date(year, month, day, hour, minute, second, micros) => {
            if *month == 0 || *day == 0 {
                return Some(None);
            }
            let date = NaiveDate::from_ymd_opt(i32::from(*year), u32::from(*month), u32::from(*day))?;
            Some(Some(date.and_hms_micro_opt(u32::from(*hour), u32::from(*minute), u32::from(*second), *micros)?))
        }
        Value::Bytes(text) => {
            let text = std::str::from_utf8(text).ok()?;
            if text.starts_with("0000-00-00") {
                return Some(None);
            }
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|date| date.and_hms_opt(0, 0, 0)))
                .map(Some)
        }
        _ => None,
    }
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
    chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE
}

/// A binlog TIMESTAMP: seconds since the epoch, with `.ffffff` when it has fractions.
fn epoch_micros(value: &Value) -> Option<i64> {
    match value {
        Value::Bytes(text) => {
            let text = std::str::from_utf8(text).ok()?;
            let (seconds, fraction) = text.split_once('.').unwrap_or((text, "0"));
            let seconds: i64 = seconds.parse().ok()?;
            let micros: i64 = format!("{fraction:0<6}").get(..6)?.parse().ok()?;
            seconds.checked_mul(1_000_000)?.checked_add(micros)
        }
        Value::Int(seconds) => seconds.checked_mul(1_000_000),
        _ => None,
    }
}

/// TIME as `[-]HH:MM:SS[.ffffff]`, hours beyond 24 kept (TIME is a duration up to 838 hours).
fn time_text(value: &Value) -> Option<String> {
    match value {
        Value::Time(negative, days, hours, minutes, seconds, micros) => {
            let hours = u64::from(*days) * 24 + u64::from(*hours);
            let sign = if *negative { "-" } else { "" };
            let mut text = format!("{sign}{hours:02}:{minutes:02}:{seconds:02}");
            if *micros != 0 {
                text.push_str(&format!(".{micros:06}"));
            }
            Some(text)
        }
        Value::Bytes(text) => Some(String::from_utf8_lossy(text).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(decimal_unscaled(b"-12.5", 2), Some(-1250));
        assert_eq!(
            decimal_unscaled(b"99999999999999999999999999999999.999999", 6),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert_eq!(decimal_unscaled(b"1.234", 2), None);
    }

    #[test]
    fn binlog_mediumints_keep_their_sign() {
        assert_eq!(signed_medium(8_388_608), -8_388_608);
        assert_eq!(signed_medium(16_777_215), -1);
        assert_eq!(signed_medium(8_388_607), 8_388_607);
    }

    #[test]
    fn sets_and_enums_become_labels() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|label| label.to_string()).collect();
        assert_eq!(set_labels(&labels, &[0b101]), "a,c");
        assert_eq!(enum_label(&labels, 2), "b");
        assert_eq!(enum_label(&labels, 0), "");
    }

    #[test]
    fn times_keep_long_durations_and_fractions() {
        assert_eq!(time_text(&Value::Time(true, 34, 22, 59, 59, 500_000)).as_deref(), Some("-838:59:59.500000"));
        assert_eq!(time_text(&Value::Time(false, 0, 7, 5, 0, 0)).as_deref(), Some("07:05:00"));
    }

    #[test]
    fn binlog_timestamps_are_epoch_seconds() {
        assert_eq!(epoch_micros(&Value::Bytes(b"1700000000.25".to_vec())), Some(1_700_000_000_250_000));
        assert_eq!(epoch_micros(&Value::Bytes(b"1700000000".to_vec())), Some(1_700_000_000_000_000));
    }
}
