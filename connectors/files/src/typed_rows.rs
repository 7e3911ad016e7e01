//! Rows of formats whose columns have types of their own (Parquet, Avro; text's one string) as the table's
//! columns.

use std::sync::Arc;

use connector_core::arrow::array::{Array, ArrayRef, RecordBatch, new_null_array};
use connector_core::arrow::compute::cast;
use connector_core::arrow::datatypes::{Field, Schema};
use connector_core::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use crate::rescued_data::{RescuedValues, RowOrigin};

/// Rows of a file with its own types as the table's source columns: each cast to its column's type, missing ones null, and
/// the values of columns the table lacks kept in `_rescued_data` (as text).
pub fn typed_rows_for_table(rows: &RecordBatch, table: &[Field], origin: RowOrigin<'_>) -> Result<RecordBatch, String> {
    let count = rows.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.len());
    for field in table {
        let column = match rows.column_by_name(field.name()) {
            None => new_null_array(field.data_type(), count),
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => cast(column, field.data_type()).map_err(|cause| {
                format!(
                    "column `{}` of {} is {}, which does not convert to the table's {}: {cause}",
                    field.name(),
                    origin.file_path,
                    column.data_type(),
                    field.data_type()
                )
            })?,
        };
        columns.push(column);
    }
    let mut rescued = RescuedValues::new(count);
    for (index, field) in rows.schema().fields().iter().enumerate() {
        if table.iter().any(|column| column.name() == field.name()) {
            continue;
        }
        let options = FormatOptions::default().with_null("");
        let formatter = ArrayFormatter::try_new(rows.column(index).as_ref(), &options)
            .map_err(|cause| format!("internal: {cause}"))?;
        for row in (0..count).filter(|&row| rows.column(index).is_valid(row)) {
            rescued.keep(row, field.name(), Value::String(formatter.value(row).to_string()));
        }
    }
    rescued.place_in(&mut columns, table, origin)?;
    RecordBatch::try_new(Arc::new(Schema::new(table.to_vec())), columns).map_err(|cause| format!("internal: {cause}"))
}
