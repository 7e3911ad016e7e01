//! Records (JSON objects) into Arrow rows of a stream's columns; see [`crate::schema`] for the type mapping.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use connector_core::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use connector_core::arrow::datatypes::DataType;
use connector_core::error::{Error, Result};
use connector_core::schema::TableSchema;
use serde_json::Value;

use crate::schema::incompatible_value;
use crate::stream::RecordChange;

/// The rows of `changes`, one per change, with `schema`'s columns. Fields without a column are left out.
///
/// Records are walked once each, their fields found by a hash of the column names: looking every column up in
/// every record (a B-tree search of string compares each) cost more than the rest of the sync.
pub fn record_batch(schema: &TableSchema, changes: &[RecordChange]) -> Result<RecordBatch> {
    let mut builders = schema
        .columns
        .iter()
        .map(|column| {
            ColumnBuilder::new(&column.data_type, changes.len()).ok_or_else(|| {
                Error::schema(
                    &schema.id,
                    format!(
                        "{}: column `{}` has type {}, which API records cannot fill",
                        schema.id, column.name, column.data_type
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let position: HashMap<&str, usize> =
        schema.columns.iter().enumerate().map(|(index, column)| (column.name.as_str(), index)).collect();
    let mut row: Vec<Option<&Value>> = vec![None; builders.len()];
    for change in changes {
        row.fill(None);
        for (name, value) in &change.record {
            if let Some(&index) = position.get(name.as_str())
                && !value.is_null()
            {
                row[index] = Some(value);
            }
        }
        for ((builder, value), column) in builders.iter_mut().zip(&row).zip(&schema.columns) {
            builder.append(*value).map_err(|value| incompatible_value(&schema.id, column, value))?;
        }
    }
    let arrays: Vec<ArrayRef> = builders.into_iter().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(schema.arrow_schema(), arrays)
        .map_err(|cause| Error::state(format!("cannot assemble the rows of {}", schema.id)).caused_by(cause))
}

/// One column being filled, by the Arrow type it holds.
enum ColumnBuilder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
}

impl ColumnBuilder {
    /// `None` for a type records cannot fill.
    fn new(data_type: &DataType, rows: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 16)),
            DataType::Int64 => ColumnBuilder::Integer(Int64Builder::with_capacity(rows)),
            DataType::Float64 => ColumnBuilder::Float(Float64Builder::with_capacity(rows)),
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
            DataType::Timestamp(_, zone) => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows), zone.clone())
            }
            _ => return None,
        })
    }

    /// Appends `value` (`None`: null), or gives it back when the column cannot hold it.
    fn append<'a>(&mut self, value: Option<&'a Value>) -> std::result::Result<(), &'a Value> {
        let Some(value) = value else {
            match self {
                ColumnBuilder::Text(builder) => builder.append_null(),
                ColumnBuilder::Integer(builder) => builder.append_null(),
                ColumnBuilder::Float(builder) => builder.append_null(),
                ColumnBuilder::Boolean(builder) => builder.append_null(),
                ColumnBuilder::Date(builder) => builder.append_null(),
                ColumnBuilder::Timestamp(builder, _) => builder.append_null(),
            }
            return Ok(());
        };
        match self {
            ColumnBuilder::Text(builder) => match value {
                Value::String(text) => builder.append_value(text),
                other => builder.append_value(other.to_string()),
            },
            ColumnBuilder::Integer(builder) => builder.append_value(integer(value).ok_or(value)?),
            ColumnBuilder::Float(builder) => builder.append_value(value.as_f64().ok_or(value)?),
            ColumnBuilder::Boolean(builder) => builder.append_value(value.as_bool().ok_or(value)?),
            ColumnBuilder::Date(builder) => builder.append_value(date(value).ok_or(value)?),
            ColumnBuilder::Timestamp(builder, _) => builder.append_value(timestamp(value).ok_or(value)?),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Text(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Integer(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Float(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Boolean(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Date(mut builder) => Arc::new(builder.finish()),
            ColumnBuilder::Timestamp(mut builder, zone) => Arc::new(builder.finish().with_timezone_opt(zone)),
        }
    }
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
    use connector_core::schema::{Column, TableId};
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
