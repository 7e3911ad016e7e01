//! Rows decoded under different shapes of one table (ALTER TABLE while streaming) brought to one schema, so a
//! batch that spans the change reaches the sink whole: a dropped column is kept, filled with null from then on;
//! a widened one is cast.

use std::sync::Arc;

use deltalake::arrow::array::{RecordBatch, new_null_array};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Field, Schema};
use deltalake::arrow::error::ArrowError;

use deltalake::arrow::compute::concat_batches;

use crate::error::{Error, Result};
use crate::schema::{Column, TableSchema};

/// Rows sealed under successive shapes of a table (the last one current), as one batch in the union of the
/// shapes, with that schema.
pub fn assemble_segments(segments: &[(TableSchema, RecordBatch)]) -> Result<(TableSchema, RecordBatch)> {
    let Some((current, _)) = segments.last() else {
        return Err(Error::state("internal: no rows to assemble"));
    };
    let schema = union_schema(current, segments.iter().map(|(schema, _)| schema))?;
    let arrow_schema = schema.arrow_schema();
    let mut aligned = Vec::with_capacity(segments.len());
    for (_, rows) in segments {
        aligned.push(align_rows(&arrow_schema, rows).map_err(|cause| {
            Error::schema(&schema.id, format!("changes of {} cannot take its new shape", schema.id)).caused_by(cause)
        })?);
    }
    let rows = concat_batches(&arrow_schema, &aligned)
        .map_err(|cause| Error::state(format!("cannot assemble changes of {}", schema.id)).caused_by(cause))?;
    Ok((schema, rows))
}

/// The current schema plus columns that only earlier shapes have (dropped since), so no value is lost.
pub fn union_schema<'a>(
    current: &TableSchema,
    earlier: impl IntoIterator<Item = &'a TableSchema>,
) -> Result<TableSchema> {
    let mut columns: Vec<Column> = current.columns.clone();
    for schema in earlier {
        for column in &schema.columns {
            if !columns.iter().any(|known| known.name == column.name) {
                columns.push(column.clone());
            }
        }
    }
    TableSchema::new(current.id.clone(), columns, current.primary_key.clone())
}

/// `rows` in `schema`: columns by name, cast where their type changed, null where `rows` lacks them.
pub fn align_rows(schema: &Arc<Schema>, rows: &RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field: &Arc<Field>| match rows.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => cast(column, field.data_type()),
            None => Ok(new_null_array(field.data_type(), rows.num_rows())),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}
