//! Builds the exact batch a Delta table receives: its source columns in Delta order (dropped columns
//! filled with null, narrower incoming types cast up) followed by the metadata columns of its mode.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array,
};
use deltalake::arrow::buffer::BooleanBuffer;
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;

use crate::metadata_column::filled_by_connector;

/// Metadata column values for the rows of a batch, keyed by column name.
#[derive(Debug, Default)]
pub(crate) struct MetadataValues {
    columns: HashMap<&'static str, ArrayRef>,
}

impl MetadataValues {
    pub fn text<S: AsRef<str>>(mut self, name: &'static str, values: impl IntoIterator<Item = Option<S>>) -> Self {
        self.columns.insert(name, Arc::new(values.into_iter().collect::<StringArray>()));
        self
    }

    pub fn flag(mut self, name: &'static str, values: impl IntoIterator<Item = Option<bool>>) -> Self {
        self.columns.insert(name, Arc::new(values.into_iter().collect::<BooleanArray>()));
        self
    }

    pub fn time(mut self, name: &'static str, values: impl IntoIterator<Item = Option<DateTime<Utc>>>) -> Self {
        let micros = values.into_iter().map(|value| value.map(|time| time.timestamp_micros()));
        let array = micros.collect::<TimestampMicrosecondArray>().with_timezone("UTC");
        self.columns.insert(name, Arc::new(array));
        self
    }

    /// `value` on each of `rows` rows (a snapshot's rows share their metadata): one copy per row, where the
    /// per-row forms grow their arrays value by value.
    pub fn same_text(mut self, name: &'static str, value: &str, rows: usize) -> Self {
        self.columns.insert(name, Arc::new(StringArray::new_repeated(value, rows)));
        self
    }

    pub fn same_flag(mut self, name: &'static str, value: bool, rows: usize) -> Self {
        self.columns.insert(name, Arc::new(BooleanArray::new(BooleanBuffer::collect_bool(rows, |_| value), None)));
        self
    }

    pub fn same_number(mut self, name: &'static str, value: i64, rows: usize) -> Self {
        self.columns.insert(name, Arc::new(Int64Array::from_value(value, rows)));
        self
    }

    /// `first`, `first + 1`, … on `rows` rows.
    pub fn counting_from(mut self, name: &'static str, first: i64, rows: usize) -> Self {
        let end = first.saturating_add(i64::try_from(rows).unwrap_or(i64::MAX));
        self.columns.insert(name, Arc::new((first..end).collect::<Int64Array>()));
        self
    }

    pub fn same_time(mut self, name: &'static str, value: DateTime<Utc>, rows: usize) -> Self {
        let array = TimestampMicrosecondArray::from_value(value.timestamp_micros(), rows).with_timezone("UTC");
        self.columns.insert(name, Arc::new(array));
        self
    }
}

/// Aligns `rows` to the Delta table's arrow schema; `extra` columns (merge helpers) are appended after.
pub(crate) fn rows_for_table(
    table_schema: &SchemaRef,
    rows: &RecordBatch,
    metadata: &MetadataValues,
    extra: Vec<(Field, ArrayRef)>,
) -> Result<RecordBatch, ArrowError> {
    let row_count = rows.num_rows();
    let mut fields: Vec<Field> = Vec::with_capacity(table_schema.fields().len() + extra.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
    for field in table_schema.fields() {
        let source = if filled_by_connector(field.name()) {
            metadata.columns.get(field.name().as_str()).cloned()
        } else {
            rows.column_by_name(field.name()).cloned()
        };
        let column = match source {
            Some(array) if array.data_type() == field.data_type() => array,
            Some(array) => cast(&array, field.data_type())?,
            None => new_null_array(field.data_type(), row_count),
        };
        fields.push(field.as_ref().clone().with_nullable(true));
        columns.push(column);
    }
    for (field, column) in extra {
        fields.push(field);
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
