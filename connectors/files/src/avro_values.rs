//! Avro values Delta has no type for, as text: times of day, durations, uuids, decimals wider than 38 digits, and
//! values of unions of several types (JSON).

use apache_avro::Decimal;
use apache_avro::Schema;
use apache_avro::types::Value;
use chrono::{DateTime, NaiveTime, SecondsFormat};
use num_bigint::BigInt;
use serde_json::{Map, Value as Json};

use crate::avro_types::JsonShape;

/// A decimal's unscaled digits.
pub fn decimal_digits(decimal: &Decimal) -> BigInt {
    BigInt::from(decimal.clone())
}

/// A decimal's digits with its scale as text: `12345` of scale 2 is `123.45`.
pub fn decimal_text(decimal: &Decimal, scale: usize) -> String {
    let digits = decimal_digits(decimal);
    let sign = if digits.sign() == num_bigint::Sign::Minus { "-" } else { "" };
    let magnitude = digits.magnitude().to_string();
    if scale == 0 {
        return format!("{sign}{magnitude}");
    }
    let padded = format!("{magnitude:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// A time of day in `unit_per_second` units since midnight, as `HH:MM:SS.fff`; out of range, the number.
fn time_text(since_midnight: i64, units_per_second: i64) -> String {
    let seconds = since_midnight.div_euclid(units_per_second);
    let nanos = since_midnight.rem_euclid(units_per_second) * (1_000_000_000 / units_per_second);
    let time = u32::try_from(seconds)
        .ok()
        .zip(u32::try_from(nanos).ok())
        .and_then(|(seconds, nanos)| NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos));
    match time {
        Some(time) if units_per_second == 1000 => time.format("%H:%M:%S%.3f").to_string(),
        Some(time) => time.format("%H:%M:%S%.6f").to_string(),
        None => since_midnight.to_string(),
    }
}

/// The text of a value stored in a string column; `None` when the value is of no kind such a column holds.
pub fn avro_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::String(text) | Value::Enum(_, text) => text.clone(),
        Value::Uuid(uuid) => uuid.to_string(),
        Value::TimeMillis(millis) => time_text(i64::from(*millis), 1000),
        Value::TimeMicros(micros) => time_text(*micros, 1_000_000),
        // ISO 8601, as Avro's duration is months, days and milliseconds.
        Value::Duration(duration) => {
            let millis = u32::from(duration.millis());
            format!(
                "P{}M{}DT{}.{:03}S",
                u32::from(duration.months()),
                u32::from(duration.days()),
                millis / 1000,
                millis % 1000
            )
        }
        Value::BigDecimal(decimal) => decimal.to_string(),
        _ => return None,
    })
}

/// `value` as JSON text, as its schema (`shape`) says.
pub fn avro_json(value: &Value, shape: &JsonShape) -> Result<String, String> {
    Ok(json_of(value, Some(&shape.schema), shape).to_string())
}

/// `schema` with a reference to a named type replaced by the type.
fn resolved<'a>(schema: Option<&'a Schema>, shape: &'a JsonShape) -> Option<&'a Schema> {
    match schema? {
        Schema::Ref { name } => shape.names.get(name),
        other => Some(other),
    }
}

/// `value` as JSON: records and maps as objects, bytes as Avro's JSON encoding writes them (a character per
/// byte), decimals as strings (exact), times as ISO 8601 strings.
fn json_of(value: &Value, schema: Option<&Schema>, shape: &JsonShape) -> Json {
    let schema = resolved(schema, shape);
    let micros = |micros: i64| {
        DateTime::from_timestamp_micros(micros)
            .map_or_else(|| Json::from(micros), |at| Json::String(at.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
    };
    let local_micros = |micros: i64| {
        DateTime::from_timestamp_micros(micros).map_or_else(
            || Json::from(micros),
            |at| Json::String(at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        )
    };
    match value {
        Value::Null => Json::Null,
        Value::Boolean(flag) => Json::Bool(*flag),
        Value::Int(number) => Json::from(*number),
        Value::Long(number) => Json::from(*number),
        // JSON has no NaN or infinities: those are strings.
        Value::Float(number) => serde_json::Number::from_f64(f64::from(*number))
            .map_or_else(|| Json::String(number.to_string()), Json::Number),
        Value::Double(number) => {
            serde_json::Number::from_f64(*number).map_or_else(|| Json::String(number.to_string()), Json::Number)
        }
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => {
            Json::String(bytes.iter().map(|&byte| char::from(byte)).collect())
        }
        Value::Union(branch, inner) => {
            let variant = match schema {
                Some(Schema::Union(union)) => usize::try_from(*branch).ok().and_then(|at| union.variants().get(at)),
                _ => None,
            };
            json_of(inner, variant, shape)
        }
        Value::Array(items) => {
            let item_schema = match schema {
                Some(Schema::Array(array)) => Some(array.items.as_ref()),
                _ => None,
            };
            Json::Array(items.iter().map(|item| json_of(item, item_schema, shape)).collect())
        }
        Value::Map(entries) => {
            let value_schema = match schema {
                Some(Schema::Map(map)) => Some(map.types.as_ref()),
                _ => None,
            };
            let mut object: Vec<(&String, &Value)> = entries.iter().collect();
            object.sort_by_key(|(key, _)| *key);
            Json::Object(
                object.into_iter().map(|(key, value)| (key.clone(), json_of(value, value_schema, shape))).collect(),
            )
        }
        Value::Record(fields) => {
            let record = match schema {
                Some(Schema::Record(record)) => Some(record),
                _ => None,
            };
            let field_schema = |name: &str| {
                record
                    .and_then(|record| record.lookup.get(name).and_then(|&at| record.fields.get(at)))
                    .map(|field| &field.schema)
            };
            let object: Map<String, Json> =
                fields.iter().map(|(name, value)| (name.clone(), json_of(value, field_schema(name), shape))).collect();
            Json::Object(object)
        }
        Value::Decimal(decimal) => {
            let scale = match schema {
                Some(Schema::Decimal(decimal)) => decimal.scale,
                _ => 0,
            };
            Json::String(decimal_text(decimal, scale))
        }
        Value::Date(days) => DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
            .map_or_else(|| Json::from(*days), |at| Json::String(at.format("%Y-%m-%d").to_string())),
        Value::TimestampMillis(millis) => micros(millis.saturating_mul(1000)),
        Value::TimestampMicros(value) => micros(*value),
        Value::TimestampNanos(nanos) => micros(nanos.div_euclid(1000)),
        Value::LocalTimestampMillis(millis) => local_micros(millis.saturating_mul(1000)),
        Value::LocalTimestampMicros(value) => local_micros(*value),
        Value::LocalTimestampNanos(nanos) => local_micros(nanos.div_euclid(1000)),
        other => avro_text(other).map_or(Json::Null, Json::String),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit_at_their_scale() {
        let decimal = |unscaled: i64| Decimal::from(unscaled.to_be_bytes().to_vec());
        assert_eq!(decimal_text(&decimal(12345), 2), "123.45");
        assert_eq!(decimal_text(&decimal(-5), 3), "-0.005");
        assert_eq!(decimal_text(&decimal(7), 0), "7");
    }

    #[test]
    fn times_and_durations_are_iso_text() {
        assert_eq!(avro_text(&Value::TimeMillis(3_723_004)).as_deref(), Some("01:02:03.004"));
        assert_eq!(avro_text(&Value::TimeMicros(1)).as_deref(), Some("00:00:00.000001"));
        assert_eq!(avro_text(&Value::Long(1)), None, "a number is not text");
    }
}
