//! Records (JSON objects) into Arrow rows of a stream's columns; see [`crate::schema`] for the type mapping.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use connector_core::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use connector_core::arrow::datatypes::DataType;
use connector_core::error::{Error, Result};
use connector_core::schema::{Column, TableSchema};
use serde_json::Value;

use crate::schema::incompatible_value;
use crate::stream::RecordChange;

/// The rows of `changes`, one per change, with `schema`'s columns. Fields without a column are left out.
pub fn record_batch(schema: &TableSchema, changes: &[RecordChange]) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.columns.len());
    for column in &schema.columns {
        arrays.push(column_array(schema, column, changes)?);
    }
    RecordBatch::try_new(schema.arrow_schema(), arrays)
        .map_err(|cause| Error::state(format!("cannot assemble the rows of {}", schema.id)).caused_by(cause))
}

fn column_array(schema: &TableSchema, column: &Column, changes: &[RecordChange]) -> Result<ArrayRef> {
    let values = changes.iter().map(|change| change.record.get(&column.name).filter(|value| !value.is_null()));
    let invalid = |value: &Value| incompatible_value(&schema.id, column, value);
    Ok(match &column.data_type {
        DataType::Utf8 => {
            let mut builder = StringBuilder::with_capacity(changes.len(), changes.len() * 16);
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(Value::String(text)) => builder.append_value(text),
                    Some(other) => builder.append_value(other.to_string()),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Int64 => {
            let mut builder = Int64Builder::with_capacity(changes.len());
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(value) => builder.append_value(integer(value).ok_or_else(|| invalid(value))?),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Float64 => {
            let mut builder = Float64Builder::with_capacity(changes.len());
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(value) => builder.append_value(value.as_f64().ok_or_else(|| invalid(value))?),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Boolean => {
            let mut builder = BooleanBuilder::with_capacity(changes.len());
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(value) => builder.append_value(value.as_bool().ok_or_else(|| invalid(value))?),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Timestamp(_, zone) => {
            let mut builder = TimestampMicrosecondBuilder::with_capacity(changes.len());
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(value) => builder.append_value(timestamp(value).ok_or_else(|| invalid(value))?),
                }
            }
            Arc::new(builder.finish().with_timezone_opt(zone.clone()))
        }
        DataType::Date32 => {
            let mut builder = Date32Builder::with_capacity(changes.len());
            for value in values {
                match value {
                    None => builder.append_null(),
                    Some(value) => builder.append_value(date(value).ok_or_else(|| invalid(value))?),
                }
            }
            Arc::new(builder.finish())
        }
        other => {
            return Err(Error::schema(
                &schema.id,
                format!("{}: column `{}` has type {other}, which API records cannot fill", schema.id, column.name),
            ));
        }
    })
}

/// Integers, also written as a float without fraction (`3.0`) or as decimal text (`"42"`).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number.as_f64().filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15).map(|float| float as i64)
        }),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// Microseconds since the epoch, from RFC 3339 text, ISO 8601 text with an offset without colon (Salesforce:
/// `2024-05-01T10:00:00.000+0000`), epoch seconds, or epoch milliseconds as text (HubSpot).
pub fn timestamp(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .map(|time| time.with_timezone(&Utc).timestamp_micros())
            .ok()
            .or_else(|| text.parse::<i64>().ok().map(|millis| millis.saturating_mul(1000))),
        Value::Number(number) => number.as_i64().map(|seconds| seconds.saturating_mul(1_000_000)),
        _ => None,
    }
}

/// Days since the epoch, from `YYYY-MM-DD` text.
pub fn date(value: &Value) -> Option<i32> {
    let day = NaiveDate::parse_from_str(value.as_str()?, "%Y-%m-%d").ok()?;
    i32::try_from(day.signed_duration_since(NaiveDate::default()).num_days()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::timestamp_type;
    use connector_core::arrow::util::display::array_value_to_string;
    use connector_core::change::Operation;
    use connector_core::schema::TableId;
    use serde_json::json;

    fn schema() -> TableSchema {
        TableSchema::new(
            TableId::new("svc", "things"),
            vec![
                Column::new("id", DataType::Int64, "int64"),
                Column::new("name", DataType::Utf8, "inferred"),
                Column::new("score", DataType::Float64, "inferred"),
                Column::new("ok", DataType::Boolean, "inferred"),
                Column::new("at", timestamp_type(), "timestamp"),
            ],
            vec!["id".into()],
        )
        .expect("schema")
    }

    fn changes(values: Vec<Value>) -> Vec<RecordChange> {
        values
            .into_iter()
            .map(|value| RecordChange::upsert(Operation::Update, value.as_object().cloned().expect("object")))
            .collect()
    }

    #[test]
    fn saas_records_become_rows_of_the_stream_columns() {
        let rows = record_batch(
            &schema(),
            &changes(vec![
                json!({"id": 1, "name": {"first": "Ada"}, "score": 2, "ok": true, "at": "2024-05-01T10:00:00Z"}),
                json!({"id": "2", "name": "Bo", "at": 1714557600, "extra": [1]}),
            ]),
        )
        .expect("rows");
        let shown: Vec<String> = (0..rows.num_rows())
            .map(|row| {
                rows.columns()
                    .iter()
                    .map(|array| array_value_to_string(array, row).expect("show"))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        assert_eq!(shown, vec!["1|{\"first\":\"Ada\"}|2.0|true|2024-05-01T10:00:00Z", "2|Bo|||2024-05-01T10:00:00Z"]);
    }

    #[test]
    fn saas_a_value_its_column_cannot_hold_names_the_field_and_the_fix() {
        let error = record_batch(&schema(), &changes(vec![json!({"id": 1, "score": "high"})])).expect_err("text");
        let message = error.to_string();
        assert!(message.contains("field `score` holds \"high\""), "{message}");
        assert!(message.contains("score = \"string\""), "{message}");
    }

    #[test]
    fn saas_timestamps_read_rfc3339_salesforce_offsets_and_epochs() {
        let expected = Some(1_714_557_600_000_000);
        assert_eq!(timestamp(&json!("2024-05-01T10:00:00Z")), expected);
        assert_eq!(timestamp(&json!("2024-05-01T10:00:00.000+0000")), expected);
        assert_eq!(timestamp(&json!("2024-05-01T12:00:00.000+0200")), expected);
        assert_eq!(timestamp(&json!("1714557600000")), expected);
        assert_eq!(timestamp(&json!(1_714_557_600)), expected);
        assert_eq!(timestamp(&json!("yesterday")), None);
    }

    #[test]
    fn saas_dates_are_days_since_the_epoch() {
        assert_eq!(date(&json!("1970-01-02")), Some(1));
        assert_eq!(date(&json!("2024-05-01")), Some(19_844));
        assert_eq!(date(&json!("1969-12-31")), Some(-1));
        assert_eq!(date(&json!("05/01/2024")), None);
        assert_eq!(date(&json!(3)), None);
    }
}
