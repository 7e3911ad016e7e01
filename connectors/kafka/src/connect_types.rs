//! Kafka Connect's logical types, as Debezium writes them in JSON with the schema wrapper: a field's schema
//! `name` says what its plain value means (`io.debezium.time.Date` is an `int32` of days since 1970,
//! `org.apache.kafka.connect.data.Decimal` the base64 bytes of an unscaled integer). Read as plain JSON they
//! would land as numbers and base64 text; here each becomes the text the JSON reader reads into the column type
//! the schema declares (a date, a timestamp, an exact decimal), and the declared types pin the columns.
//!
//! Debezium's documentation lists the names ("Temporal types", "Decimal types" of each connector); a name not
//! listed here keeps its plain value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveTime};
use connector_core::arrow::datatypes::{DataType, TimeUnit};
use serde_json::{Map, Value};

/// Digits a Delta decimal holds at most.
const MAX_DECIMAL_PRECISION: u64 = 38;

/// What a field's plain value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalType {
    /// Days since 1970-01-01 (`io.debezium.time.Date`, Connect's `Date`).
    Date,
    /// A wall-clock date and time without zone, as a count since 1970 of `unit`s (`io.debezium.time.Timestamp`
    /// in milliseconds, `MicroTimestamp`, `NanoTimestamp`; Connect's `Timestamp` in milliseconds).
    Timestamp(TimeUnit),
    /// A time of day, as a count of `unit`s since midnight (`io.debezium.time.Time`, `MicroTime`, `NanoTime`;
    /// Connect's `Time`): Delta has no time type, so it lands as text `HH:MM:SS.ffffff`.
    TimeOfDay(TimeUnit),
    /// An instant as ISO 8601 text with its offset (`io.debezium.time.ZonedTimestamp`): already text, typed.
    ZonedTimestamp,
    /// An exact decimal: base64 bytes of a big-endian two's-complement unscaled integer, `scale` digits after
    /// the point (Connect's `Decimal`, Debezium's `decimal.handling.mode = precise`).
    Decimal { precision: u8, scale: i8 },
    /// A decimal whose scale varies by value (`io.debezium.data.VariableScaleDecimal`, a struct of `scale` and
    /// `value`): lands as its exact text, since no one decimal type holds every scale.
    VariableScaleDecimal,
}

impl LogicalType {
    /// The logical type a Connect field schema names, if it is one of those above.
    pub fn of(field_schema: &Map<String, Value>) -> Option<LogicalType> {
        let name = field_schema.get("name")?.as_str()?;
        Some(match name {
            "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => LogicalType::Date,
            "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => {
                LogicalType::Timestamp(TimeUnit::Millisecond)
            }
            "io.debezium.time.MicroTimestamp" => LogicalType::Timestamp(TimeUnit::Microsecond),
            "io.debezium.time.NanoTimestamp" => LogicalType::Timestamp(TimeUnit::Nanosecond),
            "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => {
                LogicalType::TimeOfDay(TimeUnit::Millisecond)
            }
            "io.debezium.time.MicroTime" => LogicalType::TimeOfDay(TimeUnit::Microsecond),
            "io.debezium.time.NanoTime" => LogicalType::TimeOfDay(TimeUnit::Nanosecond),
            "io.debezium.time.ZonedTimestamp" => LogicalType::ZonedTimestamp,
            "org.apache.kafka.connect.data.Decimal" => {
                let parameters = field_schema.get("parameters").and_then(Value::as_object);
                let parameter = |key: &str| {
                    parameters.and_then(|parameters| parameters.get(key)).and_then(|value| match value {
                        // Connect writes parameters as strings.
                        Value::String(text) => text.parse::<i64>().ok(),
                        other => other.as_i64(),
                    })
                };
                let scale = i8::try_from(parameter("scale")?).ok()?;
                // Without a declared precision (PostgreSQL's unconstrained `numeric`), the widest decimal.
                let precision = parameter("connect.decimal.precision").map_or(Some(MAX_DECIMAL_PRECISION), |p| {
                    u64::try_from(p).ok().filter(|p| *p <= MAX_DECIMAL_PRECISION)
                });
                match precision {
                    Some(precision) if scale >= 0 && i64::from(scale) <= precision as i64 => {
                        LogicalType::Decimal { precision: precision as u8, scale }
                    }
                    // Wider than Delta's decimals, or a negative scale: exact text.
                    _ => LogicalType::VariableScaleDecimal,
                }
            }
            "io.debezium.data.VariableScaleDecimal" => LogicalType::VariableScaleDecimal,
            _ => return None,
        })
    }

    /// The column type values of this type land in.
    pub fn column_type(self) -> DataType {
        match self {
            LogicalType::Date => DataType::Date32,
            LogicalType::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
            LogicalType::ZonedTimestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            LogicalType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            LogicalType::TimeOfDay(_) | LogicalType::VariableScaleDecimal => DataType::Utf8,
        }
    }

    /// `value` (not null) as the text the column reads; `Err` with the reason when it is not a value of this
    /// type (it is then kept as it is, and rescued by the column).
    pub fn text_of(self, value: &Value) -> Result<String, String> {
        match self {
            LogicalType::Date => {
                let days = integer(value)?;
                let date = i32::try_from(days)
                    .ok()
                    .and_then(|days| NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?))
                    .ok_or_else(|| format!("{days} days from 1970 is no date"))?;
                Ok(date.format("%Y-%m-%d").to_string())
            }
            LogicalType::Timestamp(unit) => {
                let count = integer(value)?;
                let micros = in_micros(count, unit);
                let time = DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| format!("{count} is no timestamp"))?
                    .naive_utc();
                Ok(time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
            }
            LogicalType::TimeOfDay(unit) => {
                let count = integer(value)?;
                let micros = in_micros(count, unit);
                let seconds = u32::try_from(micros.div_euclid(1_000_000)).ok();
                let time = seconds
                    .and_then(|seconds| {
                        let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
                        NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos)
                    })
                    .ok_or_else(|| format!("{count} is no time of day"))?;
                Ok(time.format("%H:%M:%S%.6f").to_string())
            }
            LogicalType::ZonedTimestamp => value.as_str().map(str::to_string).ok_or_else(|| "not text".to_string()),
            LogicalType::Decimal { scale, .. } => decimal_text(value, i64::from(scale)),
            LogicalType::VariableScaleDecimal => {
                let fields = value.as_object().ok_or("not a struct of `scale` and `value`")?;
                let scale = fields.get("scale").and_then(Value::as_i64).ok_or("no `scale`")?;
                decimal_text(fields.get("value").ok_or("no `value`")?, scale)
            }
        }
    }
}

/// 1970-01-01 counted in days from 0001-01-01 (chrono's day numbering).
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn integer(value: &Value) -> Result<i64, String> {
    value.as_i64().ok_or_else(|| format!("{value} is not an integer"))
}

/// A count of `unit`s in microseconds (nanoseconds truncated: Delta keeps microseconds).
fn in_micros(count: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => count.saturating_mul(1_000_000),
        TimeUnit::Millisecond => count.saturating_mul(1000),
        TimeUnit::Microsecond => count,
        TimeUnit::Nanosecond => count.div_euclid(1000),
    }
}

/// The decimal text of base64 bytes holding a big-endian two's-complement unscaled integer, with `scale`
/// digits after the point (a negative scale adds zeros).
fn decimal_text(value: &Value, scale: i64) -> Result<String, String> {
    let encoded = value.as_str().ok_or_else(|| format!("{value} is not base64 text"))?;
    let bytes = BASE64.decode(encoded).map_err(|cause| format!("`{encoded}` is not base64: {cause}"))?;
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(format!("{} bytes are no decimal this reader holds (1 to 16)", bytes.len()));
    }
    // Sign-extend to 16 bytes.
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    let unscaled = i128::from_be_bytes(wide);
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        let zeros = usize::try_from(-scale).map_err(|_| "scale out of range".to_string())?;
        let zeros = if unscaled == 0 { 0 } else { zeros };
        return Ok(format!("{sign}{digits}{}", "0".repeat(zeros)));
    }
    let scale = usize::try_from(scale).map_err(|_| "scale out of range".to_string())?;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    Ok(format!("{sign}{whole}.{fraction}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn logical(schema: Value) -> LogicalType {
        LogicalType::of(schema.as_object().expect("object")).expect("a logical type")
    }

    #[test]
    fn debezium_temporal_values_read_as_dates_timestamps_and_times() {
        let date = logical(json!({"type": "int32", "name": "io.debezium.time.Date"}));
        assert_eq!(date.text_of(&json!(20_793)), Ok("2026-12-06".into()));
        assert_eq!(date.text_of(&json!(-1)), Ok("1969-12-31".into()));
        assert_eq!(date.column_type(), DataType::Date32);
        let millis = logical(json!({"type": "int64", "name": "io.debezium.time.Timestamp"}));
        assert_eq!(millis.text_of(&json!(1_796_556_245_123_i64)), Ok("2026-12-06T11:24:05.123000".into()));
        let micros = logical(json!({"type": "int64", "name": "io.debezium.time.MicroTimestamp"}));
        assert_eq!(micros.text_of(&json!(-1)), Ok("1969-12-31T23:59:59.999999".into()));
        let nanos = logical(json!({"type": "int64", "name": "io.debezium.time.NanoTimestamp"}));
        assert_eq!(nanos.text_of(&json!(1_500)), Ok("1970-01-01T00:00:00.000001".into()));
        assert_eq!(micros.column_type(), DataType::Timestamp(TimeUnit::Microsecond, None));
        let time = logical(json!({"type": "int64", "name": "io.debezium.time.MicroTime"}));
        assert_eq!(time.text_of(&json!(45_296_000_001_i64)), Ok("12:34:56.000001".into()));
        let zoned = logical(json!({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}));
        assert_eq!(zoned.text_of(&json!("2026-12-06T11:24:05.5Z")), Ok("2026-12-06T11:24:05.5Z".into()));
        assert!(date.text_of(&json!("soon")).is_err(), "not a value of the type: kept and rescued");
    }

    #[test]
    fn decimals_read_exactly_at_their_scale() {
        let amount = logical(json!({
            "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2", "connect.decimal.precision": "10"}
        }));
        assert_eq!(amount.column_type(), DataType::Decimal128(10, 2));
        // 12345 = 0x3039; -1 = 0xff; 5 = 0x05.
        assert_eq!(amount.text_of(&json!("MDk=")), Ok("123.45".into()));
        assert_eq!(amount.text_of(&json!("/w==")), Ok("-0.01".into()));
        assert_eq!(amount.text_of(&json!("BQ==")), Ok("0.05".into()));
        let unconstrained = logical(
            json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "0"}}),
        );
        assert_eq!(unconstrained.column_type(), DataType::Decimal128(38, 0));
        let variable = logical(json!({"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"}));
        assert_eq!(variable.text_of(&json!({"scale": 3, "value": "MDk="})), Ok("12.345".into()));
        assert_eq!(variable.column_type(), DataType::Utf8);
        assert!(amount.text_of(&json!("not base64!")).is_err());
        assert!(
            LogicalType::of(json!({"type": "string", "name": "io.debezium.data.Json"}).as_object().expect("object"))
                .is_none()
        );
    }
}
