//! CSV (and TSV) files: decoded by arrow's CSV decoder as text columns named by the header, then each column
//! cast to its table column's type, values that do not parse rescued ([`crate::text_types`]).

use std::io::Cursor;
use std::sync::Arc;

use connector_core::arrow::array::{Array, ArrayRef, RecordBatch, Scalar, StringArray, new_null_array};
use connector_core::arrow::compute::kernels::cmp::eq;
use connector_core::arrow::compute::nullif;
use connector_core::arrow::csv::ReaderBuilder;
use connector_core::arrow::csv::reader::{Decoder, Format as CsvFormat};
use connector_core::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use connector_core::arrow::error::ArrowError;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::format_options::CsvDialect;
use crate::rescued_data::{RESCUED_DATA, RescuedValues, RowOrigin};
use crate::text_types::{TimeFormats, cast_text};

/// Rows decoded at once: large enough that casting and Parquet encoding work on long runs, small enough that a
/// batch of wide rows stays a few MiB.
const BATCH_ROWS: usize = 16 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A CSV file's rows as text columns, a batch at a time.
pub struct CsvBatches<R> {
    reader: R,
    decoder: Decoder,
    schema: SchemaRef,
    null_value: Option<Scalar<StringArray>>,
}

impl<R> std::fmt::Debug for CsvBatches<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvBatches").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl<R: AsyncBufRead + Unpin> CsvBatches<R> {
    /// Reads the header (or counts the first line's fields); `None` for an empty file.
    pub async fn open(mut reader: R, dialect: &CsvDialect) -> Result<Option<Self>, ArrowError> {
        let mut head = reader.fill_buf().await.map_err(|cause| ArrowError::ExternalError(Box::new(cause)))?;
        // A UTF-8 byte order mark (as spreadsheets write) is not part of the first column's name.
        if head.starts_with(UTF8_BOM) {
            reader.consume(UTF8_BOM.len());
            head = reader.fill_buf().await.map_err(|cause| ArrowError::ExternalError(Box::new(cause)))?;
        }
        if head.is_empty() {
            return Ok(None);
        }
        let mut format = CsvFormat::default()
            .with_header(dialect.header)
            .with_delimiter(dialect.delimiter)
            .with_quote(dialect.quote)
            .with_truncated_rows(true);
        if let Some(escape) = dialect.escape {
            format = format.with_escape(escape);
        }
        if let Some(comment) = dialect.comment {
            format = format.with_comment(comment);
        }
        let (inferred, _) = format.clone().infer_schema(Cursor::new(head), Some(0))?;
        let names = column_names(inferred.fields().iter().map(|field| field.name().as_str()), dialect.header);
        let schema = Arc::new(Schema::new(
            names.into_iter().map(|name| Field::new(name, DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        let decoder =
            ReaderBuilder::new(schema.clone()).with_format(format).with_batch_size(BATCH_ROWS).build_decoder();
        let null_value = dialect.null_value.as_deref().map(StringArray::new_scalar);
        Ok(Some(CsvBatches { reader, decoder, schema, null_value }))
    }

    /// The next rows, as text columns named by the header; `None` at the end of the file.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        loop {
            let buffer = self.reader.fill_buf().await.map_err(|cause| ArrowError::ExternalError(Box::new(cause)))?;
            let decoded = self.decoder.decode(buffer)?;
            self.reader.consume(decoded);
            if decoded == 0 || self.decoder.capacity() == 0 {
                break;
            }
        }
        let Some(batch) = self.decoder.flush()? else { return Ok(None) };
        match &self.null_value {
            None => Ok(Some(batch)),
            Some(null_value) => {
                let columns = batch
                    .columns()
                    .iter()
                    .map(|column| nullif(column, &eq(column, null_value)?))
                    .collect::<Result<Vec<_>, _>>()?;
                RecordBatch::try_new(batch.schema(), columns).map(Some)
            }
        }
    }

    /// The file's columns, all text.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Column names from a header: an empty name becomes `_c<index>` (Spark's name for a column without one), a
/// repeated one gets its index appended; without a header every column is `_c<index>`.
fn column_names<'a>(header: impl Iterator<Item = &'a str>, has_header: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (index, name) in header.enumerate() {
        let name = name.trim();
        let name = if !has_header || name.is_empty() { format!("_c{index}") } else { name.to_string() };
        let name = if names.contains(&name) { format!("{name}_{index}") } else { name };
        names.push(name);
    }
    names
}

/// Text columns of a file as the table's source columns (`table`): each cast to its column's type, missing ones
/// null, and every value that does not fit (a type it does not parse as, a column the table lacks) kept in
/// `_rescued_data`. Fails only when something must be rescued and the table has no rescued-data column.
pub fn text_rows_for_table(
    text: &RecordBatch,
    table: &[Field],
    formats: &TimeFormats,
    origin: RowOrigin<'_>,
) -> Result<RecordBatch, String> {
    let rows = text.num_rows();
    let mut rescued = RescuedValues::new(rows);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.len());
    for field in table {
        if field.name() == RESCUED_DATA {
            columns.push(new_null_array(&DataType::Utf8, rows));
            continue;
        }
        match text.column_by_name(field.name()) {
            None => columns.push(new_null_array(field.data_type(), rows)),
            Some(values) => {
                let values =
                    values.as_any().downcast_ref::<StringArray>().ok_or("internal: a text column is not text")?;
                let (cast, unfit) = cast_text(values, field.data_type(), formats);
                for row in unfit {
                    rescued.keep(row, field.name(), Value::String(values.value(row).to_string()));
                }
                columns.push(cast);
            }
        }
    }
    for (index, field) in text.schema().fields().iter().enumerate() {
        if table.iter().any(|column| column.name() == field.name()) {
            continue;
        }
        let values = text.column(index).as_any().downcast_ref::<StringArray>().ok_or("internal: not text")?;
        for row in (0..rows).filter(|&row| values.is_valid(row)) {
            rescued.keep(row, field.name(), Value::String(values.value(row).to_string()));
        }
    }
    rescued.place_in(&mut columns, table, origin)?;
    let schema = Arc::new(Schema::new(table.to_vec()));
    RecordBatch::try_new(schema, columns).map_err(|cause| format!("internal: {cause}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_made_usable_column_names() {
        let names = column_names(["id", "", "id", " amount "].into_iter(), true);
        assert_eq!(names, ["id", "_c1", "id_2", "amount"]);
        assert_eq!(column_names(["column_1", "column_2"].into_iter(), false), ["_c0", "_c1"]);
    }
}
