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

use crate::csv_blocks::most_fields;
use crate::csv_typed_rows::TypedCsvRows;
use crate::format_options::CsvDialect;
use crate::rescued_data::{RESCUED_DATA, RescuedValues, RowOrigin};
use crate::text_types::{TimeFormats, cast_text};

/// Rows decoded at once: large enough that casting and Parquet encoding work on long runs, small enough that a
/// batch of wide rows stays a few MiB.
pub(crate) const BATCH_ROWS: usize = 16 * 1024;

pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How a CSV file's rows are read: its columns (text, named by its header) and its dialect.
#[derive(Debug)]
pub struct CsvLayout {
    schema: SchemaRef,
    format: CsvFormat,
    null_value: Option<Scalar<StringArray>>,
    dialect: CsvDialect,
}

impl CsvLayout {
    /// Reads the names in the header of `reader`'s file (or counts its first line's fields) without consuming
    /// them, after skipping a byte order mark; `None` for an empty file.
    pub async fn open<R: AsyncBufRead + Unpin>(
        reader: &mut R,
        dialect: &CsvDialect,
    ) -> Result<Option<Self>, ArrowError> {
        let mut head = reader.fill_buf().await.map_err(|cause| ArrowError::ExternalError(Box::new(cause)))?;
        // A UTF-8 byte order mark (as spreadsheets write) is not part of the first column's name.
        if head.starts_with(UTF8_BOM) {
            reader.consume(UTF8_BOM.len());
            head = reader.fill_buf().await.map_err(|cause| ArrowError::ExternalError(Box::new(cause)))?;
        }
        if head.is_empty() {
            return Ok(None);
        }
        let mut format =
            CsvFormat::default().with_delimiter(dialect.delimiter).with_quote(dialect.quote).with_truncated_rows(true);
        if let Some(escape) = dialect.escape {
            format = format.with_escape(escape);
        }
        if let Some(comment) = dialect.comment {
            format = format.with_comment(comment);
        }
        let (inferred, _) = format.clone().with_header(dialect.header).infer_schema(Cursor::new(head), Some(0))?;
        let names = column_names(inferred.fields().iter().map(|field| field.name().as_str()), dialect.header);
        let schema = Arc::new(Schema::new(
            names.into_iter().map(|name| Field::new(name, DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        let null_value = dialect.null_value.as_deref().map(StringArray::new_scalar);
        Ok(Some(CsvLayout { schema, format, null_value, dialect: dialect.clone() }))
    }

    /// A decoder of the file's rows; `at_start`: of rows from the file's start, the header first.
    fn decoder(&self, at_start: bool) -> Decoder {
        let format = self.format.clone().with_header(at_start && self.dialect.header);
        ReaderBuilder::new(self.schema.clone()).with_format(format).with_batch_size(BATCH_ROWS).build_decoder()
    }

    /// The text rows of `block`, whole rows of the file ([`crate::csv_blocks`]); `first`: the file's first
    /// block, which starts with the header.
    pub fn text_rows_of_block(&self, block: &[u8], first: bool) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut decoder = self.decoder(first);
        let mut batches = Vec::new();
        let (mut rest, mut ended) = (block, false);
        loop {
            if !rest.is_empty() {
                let decoded = decoder.decode(rest)?;
                rest = &rest[decoded..];
            } else if !ended {
                // Empty input ends the block: a last row without a line break is complete.
                decoder.decode(&[])?;
                ended = true;
            }
            if decoder.capacity() == 0 || ended {
                if let Some(batch) = decoder.flush()? {
                    batches.push(self.with_nulls(batch)?);
                }
                if ended {
                    return Ok(batches);
                }
            }
        }
    }

    /// [`text_rows_of_block`](Self::text_rows_of_block), keeping lines with more fields than the header: when
    /// arrow's decoder refuses the block for them, it is decoded again with a text column for each surplus
    /// field, named `_c<index>` (Spark's name for a column without a name), which the table does not have, so
    /// that their values are rescued rather than the file refused. The common case pays nothing.
    pub fn tolerant_text_rows(&self, block: &[u8], first: bool) -> Result<Vec<RecordBatch>, ArrowError> {
        match self.text_rows_of_block(block, first) {
            Err(ArrowError::CsvError(message)) if message.contains("incorrect number of fields") => {
                let widest = most_fields(&self.dialect, block);
                if widest <= self.schema.fields().len() {
                    return Err(ArrowError::CsvError(message));
                }
                self.widened(widest).text_rows_of_block(block, first)
            }
            decoded => decoded,
        }
    }

    /// The layout with text columns up to `fields`, named `_c<index>` (suffixed if the header took the name).
    fn widened(&self, fields: usize) -> CsvLayout {
        let mut columns: Vec<Field> = self.schema.fields().iter().map(|field| field.as_ref().clone()).collect();
        for index in columns.len()..fields {
            let mut name = format!("_c{index}");
            while columns.iter().any(|column| column.name() == &name) {
                name.push_str("_surplus");
            }
            columns.push(Field::new(name, DataType::Utf8, true));
        }
        CsvLayout {
            schema: Arc::new(Schema::new(columns)),
            format: self.format.clone(),
            null_value: self.null_value.clone(),
            dialect: self.dialect.clone(),
        }
    }

    /// `batch` with the null value (`--null-value`) made null.
    fn with_nulls(&self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        let Some(null_value) = &self.null_value else { return Ok(batch) };
        let columns = batch
            .columns()
            .iter()
            .map(|column| nullif(column, &eq(column, null_value)?))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(batch.schema(), columns)
    }

    /// The file's columns, all text.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn dialect(&self) -> &CsvDialect {
        &self.dialect
    }

    /// `cause` (an error decoding a block whose first row is `first_row` of the file) with its line number
    /// counted from the file's start, as a decoder reading the whole file would count it.
    pub fn in_file(&self, cause: ArrowError, first_row: u64, first: bool) -> ArrowError {
        const LINE: &str = "for line ";
        let ArrowError::CsvError(message) = &cause else { return cause };
        let Some(at) = message.find(LINE).map(|at| at + LINE.len()) else { return cause };
        let digits = message[at..].bytes().take_while(u8::is_ascii_digit).count();
        let Ok(line) = message[at..at + digits].parse::<u64>() else { return cause };
        let before = if first { 0 } else { first_row + u64::from(self.dialect.header) };
        ArrowError::CsvError(format!("{}{}{}", &message[..at], line + before, &message[at + digits..]))
    }
}

/// The rows of a block of a CSV file in the table's columns, parsed away from the file's reader.
#[derive(Debug)]
pub enum BlockRows {
    /// Every row, cast.
    Rows(Vec<RecordBatch>),
    /// A batch with a value that does not fit (strict mode, or a table without `_rescued_data`), as text: the
    /// reader casts it again knowing where its rows are in the file, to name the row.
    Unfit { text: RecordBatch, rows_before: u64 },
}

/// Parses `block` into the table's columns: straight into them where `typed` (the one-pass reader of the
/// file, if its table's types allow one) takes the block, else as text ([`CsvLayout::text_rows_of_block`]) cast
/// to them ([`text_rows_for_table`]).
#[allow(clippy::too_many_arguments)]
pub fn block_rows(
    layout: &CsvLayout,
    typed: Option<&TypedCsvRows>,
    block: &[u8],
    first: bool,
    table: &[Field],
    formats: &TimeFormats,
    file_path: &str,
    strict: bool,
) -> Result<BlockRows, ArrowError> {
    // The rows' numbers only name a row that does not fit, which the text decoder names.
    let origin = RowOrigin { file_path, first_row: 0, strict };
    if let Some(rows) = typed.and_then(|typed| typed.rows_of_block(block, first, origin)) {
        return Ok(BlockRows::Rows(rows));
    }
    let mut rows = Vec::new();
    let mut rows_before = 0;
    for text in layout.tolerant_text_rows(block, first)? {
        match text_rows_for_table(&text, table, formats, origin) {
            Ok(batch) => rows.push(batch),
            Err(_) => return Ok(BlockRows::Unfit { text, rows_before }),
        }
        rows_before += text.num_rows() as u64;
    }
    Ok(BlockRows::Rows(rows))
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
