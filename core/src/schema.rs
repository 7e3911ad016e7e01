//! The shape of a source table as the engine sees it: Arrow types already chosen by the connector's own
//! `schema.rs` type mapping, plus the primary key.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};
use crate::metadata_column::{METADATA_PREFIX, filled_by_connector};
pub use crate::table_id::TableId;

/// One source column and the Arrow type it lands as.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    /// The type as the source declares it (`numeric(12,2)`, `varchar(40)`), kept for messages and status.
    pub source_type: String,
    /// What rows older than the column hold in it, should the Delta table not have the column yet.
    pub earlier_rows: EarlierRows,
}

impl Column {
    pub fn new(name: impl Into<String>, data_type: DataType, source_type: impl Into<String>) -> Self {
        Column { name: name.into(), data_type, source_type: source_type.into(), earlier_rows: EarlierRows::Null }
    }

    pub fn with_earlier_rows(mut self, earlier_rows: EarlierRows) -> Self {
        self.earlier_rows = earlier_rows;
        self
    }
}

/// The value that rows predating a column hold in it. PostgreSQL 11+ (`attmissingval`) and MySQL/MariaDB
/// (instant ADD COLUMN) give a column added with a default that value in every existing row without writing
/// a row change, so the log never shows it: the sink writes it into the rows it holds in the commit that adds
/// the column to the Delta table.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum EarlierRows {
    /// No default: the rows hold null.
    #[default]
    Null,
    Value(ScalarValue),
    /// The source gave the rows values its log does not show and the catalog cannot tell (a volatile default
    /// such as `random()` rewrote the table): why. The table is copied again from the source.
    Unknown(String),
}

impl EarlierRows {
    /// The first value of `array` (the source's own decoding of the default).
    pub fn from_array(array: &ArrayRef) -> Result<Self> {
        if array.is_empty() || array.is_null(0) {
            return Ok(EarlierRows::Null);
        }
        ScalarValue::try_from_array(array, 0)
            .map(EarlierRows::Value)
            .map_err(|cause| Error::state("internal: cannot hold a column default as a value").caused_by(cause))
    }

    /// A default the source catalog gives as text (`42`, `2024-01-31`, `pending`), read as `data_type`; text that
    /// does not read as the type is `Unknown`, so a value is never guessed.
    pub fn from_text(text: &str, data_type: &DataType) -> Self {
        let text: ArrayRef = Arc::new(StringArray::from(vec![text]));
        match cast(&text, data_type) {
            Ok(array) if !array.is_null(0) => match ScalarValue::try_from_array(&array, 0) {
                Ok(value) => EarlierRows::Value(value),
                Err(cause) => EarlierRows::Unknown(format!("its default cannot be held as a value ({cause})")),
            },
            _ => EarlierRows::Unknown(format!("its default is not a literal of type {data_type}")),
        }
    }
}

/// A source table: columns in source order and the key that identifies a row (empty: no key).
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub id: TableId,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

impl TableSchema {
    /// Checks what the sink relies on: unique column names, key columns that exist, no reserved prefix.
    pub fn new(id: TableId, columns: Vec<Column>, primary_key: Vec<String>) -> Result<Self> {
        let schema = TableSchema { id, columns, primary_key };
        for (index, column) in schema.columns.iter().enumerate() {
            if filled_by_connector(&column.name) {
                return Err(Error::schema(
                    &schema.id,
                    format!(
                        "column `{}` of {} starts with `{METADATA_PREFIX}`, the prefix reserved for the \
                         connector's metadata columns; rename the column in the source or leave it out of the pipeline",
                        column.name, schema.id
                    ),
                ));
            }
            if schema.columns[..index].iter().any(|earlier| earlier.name == column.name) {
                return Err(Error::schema(
                    &schema.id,
                    format!("{} has two columns named `{}`", schema.id, column.name),
                ));
            }
        }
        for key in &schema.primary_key {
            if schema.column_index(key).is_none() {
                return Err(Error::schema(&schema.id, format!("key column `{key}` is not a column of {}", schema.id)));
            }
        }
        Ok(schema)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }

    pub fn has_key(&self) -> bool {
        !self.primary_key.is_empty()
    }

    /// The Arrow schema of the source columns. Every field is nullable: a source constraint can be dropped
    /// at any time, and a Delta column cannot become nullable later without rewriting files.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|column| Field::new(&column.name, column.data_type.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefix_is_rejected_with_the_column_name() {
        let id = TableId::new("public", "orders");
        let columns = vec![Column::new("_cdc_op", DataType::Utf8, "text")];
        let error = TableSchema::new(id, columns, vec![]).expect_err("reserved prefix");
        assert!(error.to_string().contains("`_cdc_op`"), "{error}");
    }

    #[test]
    fn key_must_name_a_column() {
        let id = TableId::new("public", "orders");
        let columns = vec![Column::new("id", DataType::Int64, "bigint")];
        let error = TableSchema::new(id, columns, vec!["order_id".into()]).expect_err("unknown key");
        assert!(error.to_string().contains("order_id"), "{error}");
    }

    #[test]
    fn defaults_given_as_text_read_as_the_column_type_or_are_unknown() {
        assert_eq!(EarlierRows::from_text("42", &DataType::Int32), EarlierRows::Value(ScalarValue::Int32(Some(42))));
        assert_eq!(
            EarlierRows::from_text("pending", &DataType::Utf8),
            EarlierRows::Value(ScalarValue::Utf8(Some("pending".into())))
        );
        assert!(matches!(EarlierRows::from_text("current_timestamp()", &DataType::Int64), EarlierRows::Unknown(_)));
    }
}
