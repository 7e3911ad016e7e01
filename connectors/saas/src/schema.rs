//! Stream schemas: the columns a service documents, widened with the fields records bring.
//!
//! JSON values map to Arrow types as follows, and a column keeps the type of the first non-null value seen:
//!
//! | JSON                      | Arrow                          |
//! |---------------------------|--------------------------------|
//! | `true` / `false`          | `Boolean`                      |
//! | integer                   | `Int64`                        |
//! | other number              | `Float64`                      |
//! | string                    | `Utf8`                         |
//! | object, list              | `Utf8` holding the JSON text   |
//!
//! Declared columns may also be `Timestamp(µs, UTC)`, read from RFC 3339 text or epoch seconds, or `Date32`, read
//! from `YYYY-MM-DD` text. A field first seen after the table exists becomes a new column (the Delta schema
//! grows); a field holding a value its column cannot hold stops the stream with the name of the field and how to
//! declare it.

use std::collections::HashSet;
use std::sync::Arc;

use connector_core::arrow::datatypes::{DataType, Field, TimeUnit};
use connector_core::error::{Error, Result};
use connector_core::metadata_column::METADATA_PREFIX;
use connector_core::schema::{Column, TableId, TableSchema};
use serde_json::Value;

use crate::excerpt::excerpt;
use crate::stream::{RecordChange, StreamShape};

/// The Arrow type of timestamps: microseconds in UTC, like the other connectors.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// The type a column takes from a JSON value; `None` for null, which says nothing.
pub fn type_of_value(value: &Value) -> Option<DataType> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(DataType::Boolean),
        Value::Number(number) if number.is_i64() => Some(DataType::Int64),
        Value::Number(_) => Some(DataType::Float64),
        Value::String(_) | Value::Array(_) | Value::Object(_) => Some(DataType::Utf8),
    }
}

/// Parses a column type as users write it in declarative streams.
pub fn parse_type_name(name: &str) -> Option<DataType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "string" | "text" | "json" => DataType::Utf8,
        "int" | "integer" | "int64" | "bigint" | "long" => DataType::Int64,
        "double" | "float" | "float64" | "number" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "timestamp" | "datetime" => timestamp_type(),
        "date" => DataType::Date32,
        _ => return None,
    })
}

/// A user-facing name of an Arrow type this crate produces.
pub fn type_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Utf8 => "string",
        DataType::Int64 => "int64",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Timestamp(..) => "timestamp",
        DataType::Date32 => "date",
        _ => "other",
    }
}

/// The columns of one stream's table as known so far.
#[derive(Debug, Clone)]
pub struct StreamSchema {
    id: TableId,
    columns: Vec<Column>,
    /// The names of `columns`, looked up for every field of every record.
    names: HashSet<String>,
    key: Vec<String>,
    declared_only: bool,
}

impl StreamSchema {
    /// Declared columns first, then those the Delta table already has (`existing`, from earlier syncs).
    pub fn new(id: TableId, shape: &StreamShape, existing: &[Field]) -> Self {
        let mut columns = shape.declared.clone();
        for field in existing {
            if !field.name().starts_with(METADATA_PREFIX) && !columns.iter().any(|column| column.name == *field.name())
            {
                columns.push(Column::new(field.name(), field.data_type().clone(), "inferred"));
            }
        }
        let names = columns.iter().map(|column| column.name.clone()).collect();
        StreamSchema { id, columns, names, key: shape.key.clone(), declared_only: shape.declared_only }
    }

    /// Adds a column for every field first seen in `changes`; returns whether any was added.
    pub fn observe(&mut self, changes: &[RecordChange]) -> bool {
        if self.declared_only {
            return false;
        }
        let before = self.columns.len();
        for change in changes {
            for (name, value) in &change.record {
                if name.starts_with(METADATA_PREFIX) || self.names.contains(name) {
                    continue;
                }
                if let Some(data_type) = type_of_value(value) {
                    self.names.insert(name.clone());
                    self.columns.push(Column::new(name, data_type, "inferred"));
                }
            }
        }
        self.columns.len() > before
    }

    pub fn table_schema(&self) -> Result<TableSchema> {
        TableSchema::new(self.id.clone(), self.columns.clone(), self.key.clone())
    }

    pub fn id(&self) -> &TableId {
        &self.id
    }
}

/// The error for a value its column cannot hold.
pub fn incompatible_value(id: &TableId, column: &Column, value: &Value) -> Error {
    let shown = excerpt(value.to_string(), 60);
    Error::schema(
        id,
        format!(
            "{id}: field `{}` holds {shown}, which its {} column (from {}) cannot hold; declare the field's type in \
             the stream's `columns` (for example `{} = \"string\"`) and resync the stream",
            column.name,
            type_name(&column.data_type),
            if column.source_type == "inferred" { "earlier records" } else { "the stream's declaration" },
            column.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::change::Operation;
    use serde_json::json;

    #[test]
    fn saas_incompatible_value_message_cuts_long_text_on_a_character_boundary() {
        let id = TableId::new("rest", "items");
        let column = Column::new("count", connector_core::arrow::datatypes::DataType::Int64, "int64");
        // `"` then two-byte characters: byte 60 falls inside one.
        let error = incompatible_value(&id, &column, &json!("é".repeat(50)));
        assert!(error.to_string().contains("field `count` holds \"ééé"), "{error}");
        assert!(error.to_string().contains('…'), "{error}");
    }

    fn change(value: Value) -> RecordChange {
        RecordChange::upsert(Operation::Update, value.as_object().cloned().expect("object"))
    }

    #[test]
    fn saas_fields_become_columns_typed_by_their_first_value() {
        let shape = StreamShape {
            name: "customers".into(),
            key: vec!["id".into()],
            declared: vec![Column::new("id", DataType::Utf8, "string")],
            declared_only: false,
            modified: None,
        };
        let existing = [Field::new("email", DataType::Utf8, true), Field::new("_cdc_op", DataType::Utf8, true)];
        let mut schema = StreamSchema::new(TableId::new("stripe", "customers"), &shape, &existing);
        let added = schema.observe(&[
            change(json!({"id": "cus_1", "balance": 10, "nickname": null, "address": {"city": "Oslo"}})),
            change(json!({"id": "cus_2", "rate": 1.5, "nickname": "n", "live": true})),
        ]);
        assert!(added);
        let table = schema.table_schema().expect("valid");
        let columns: Vec<_> = table.columns.iter().map(|c| (c.name.as_str(), type_name(&c.data_type))).collect();
        assert_eq!(
            columns,
            vec![
                ("id", "string"),
                ("email", "string"),
                ("address", "string"),
                ("balance", "int64"),
                ("live", "boolean"),
                ("nickname", "string"),
                ("rate", "double")
            ]
        );
        assert!(!schema.observe(&[change(json!({"id": "cus_3", "balance": 3}))]));
    }
}
