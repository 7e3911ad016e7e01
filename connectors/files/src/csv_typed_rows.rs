//! CSV rows read straight into the table's typed columns: csv-core (the tokenizer arrow's CSV decoder runs, set
//! up the same way) cuts each record into fields, and each field is appended to its column's builder
//! ([`crate::column_builders`]), where arrow's decoder would first build a text column of every field and the
//! table's types be cast from those.
//!
//! A block it does not take (a record with more fields than the header, bytes that are not UTF-8, a value that
//! does not fit where it cannot be rescued) is read by the text decoder ([`crate::csv_rows::block_rows`]),
//! which keeps the surplus fields and names the line.

use std::sync::Arc;

use connector_core::arrow::array::{ArrayRef, RecordBatch};
use connector_core::arrow::datatypes::{Field, Schema, SchemaRef};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use serde_json::Value;

use crate::column_builders::{ColumnBuilder, ColumnKind};
use crate::csv_fields::{CsvFields, Cut};
use crate::csv_rows::{BATCH_ROWS, CsvLayout, UTF8_BOM};
use crate::format_options::CsvDialect;
use crate::rescued_data::{RescuedValues, RowOrigin};
use crate::text_types::TimeFormats;

/// Reads blocks of a CSV file into a table whose columns [`ColumnBuilder`] builds.
#[derive(Debug)]
pub struct TypedCsvRows {
    dialect: CsvDialect,
    table: SchemaRef,
    kinds: Vec<ColumnKind>,
    /// Where each of the file's fields goes, by its place in the header.
    fields: Vec<FieldTarget>,
    /// The table's columns no field of the file fills.
    unfilled: Vec<usize>,
    times: TimeFormats,
}

#[derive(Debug)]
enum FieldTarget {
    Column(usize),
    /// A field the table has no column for: its values are rescued under its name.
    Rescued(String),
}

impl TypedCsvRows {
    /// `None` when a column of `table` is not one [`ColumnBuilder`] builds.
    pub fn new(layout: &CsvLayout, table: &[Field], times: &TimeFormats) -> Option<Self> {
        let kinds = ColumnKind::of_table(table)?;
        let fields: Vec<FieldTarget> = layout
            .schema()
            .fields()
            .iter()
            .map(|field| match table.iter().position(|column| column.name() == field.name()) {
                Some(column) if !matches!(kinds[column], ColumnKind::Rescued) => FieldTarget::Column(column),
                _ => FieldTarget::Rescued(field.name().clone()),
            })
            .collect();
        let unfilled = (0..table.len())
            .filter(|column| {
                !fields.iter().any(|target| matches!(target, FieldTarget::Column(filled) if filled == column))
            })
            .collect();
        Some(TypedCsvRows {
            dialect: layout.dialect().clone(),
            table: Arc::new(Schema::new(table.to_vec())),
            kinds,
            fields,
            unfilled,
            times: times.clone(),
        })
    }

    /// The tokenizer arrow's decoder builds for the dialect (`arrow_csv::reader::Format`).
    fn tokenizer(&self) -> Reader {
        ReaderBuilder::new()
            .delimiter(self.dialect.delimiter)
            .quote(self.dialect.quote)
            .escape(self.dialect.escape)
            .comment(self.dialect.comment)
            .build()
    }

    /// The rows of `block` (whole rows of the file; `first`: the file's first block, which starts with the
    /// header) in the table's columns, `_rescued_data` filled; `None` when the block needs the text decoder.
    pub fn rows_of_block(&self, block: &[u8], first: bool, origin: RowOrigin<'_>) -> Option<Vec<RecordBatch>> {
        match self.rows_cut_in_place(block, first, origin) {
            Ok(rows) => rows,
            Err(Unsupported) => self.rows_cut_by_csv_core(block, first, origin),
        }
    }

    /// [`rows_of_block`](Self::rows_of_block) for blocks [`CsvFields`] cuts: the dialect's (no escape
    /// character, no comment lines) and the block's own (no byte order mark, which csv-core would drop).
    fn rows_cut_in_place(
        &self,
        block: &[u8],
        first: bool,
        origin: RowOrigin<'_>,
    ) -> Result<Option<Vec<RecordBatch>>, Unsupported> {
        if self.dialect.escape.is_some() || self.dialect.comment.is_some() || block.starts_with(UTF8_BOM) {
            return Err(Unsupported);
        }
        let Ok(text) = std::str::from_utf8(block) else { return Ok(None) };
        let mut cutter = CsvFields::new(text, self.dialect.delimiter, self.dialect.quote);
        let (mut fields, mut scratch) = (Vec::with_capacity(self.fields.len()), String::new());
        let Some(mut batches) = BlockBatches::new(self, first, origin) else { return Ok(None) };
        loop {
            match cutter.next_record(&mut fields, &mut scratch) {
                Cut::Record => {}
                Cut::End => return Ok(batches.finish()),
                Cut::Unsupported => return Err(Unsupported),
            }
            // More fields than the header names: the text decoder keeps them.
            if fields.len() > self.fields.len() {
                return Ok(None);
            }
            let values = fields.iter().map(|&span| Some(cutter.field(span, &scratch)));
            if batches.take(values).is_none() {
                return Ok(None);
            }
        }
    }

    /// [`rows_of_block`](Self::rows_of_block) with csv-core cutting the records.
    fn rows_cut_by_csv_core(&self, block: &[u8], first: bool, origin: RowOrigin<'_>) -> Option<Vec<RecordBatch>> {
        let mut tokenizer = self.tokenizer();
        let mut input = block;
        let mut record = vec![0_u8; 64 * 1024];
        let mut ends = vec![0_usize; self.fields.len()];
        let mut batches = BlockBatches::new(self, first, origin)?;
        loop {
            let (mut written, mut fields) = (0, 0);
            loop {
                let (result, read, wrote, ended) =
                    tokenizer.read_record(input, &mut record[written..], &mut ends[fields..]);
                input = &input[read..];
                written += wrote;
                fields += ended;
                match result {
                    ReadRecordResult::Record => break,
                    ReadRecordResult::End => return batches.finish(),
                    ReadRecordResult::InputEmpty => {}
                    ReadRecordResult::OutputFull => record.resize(record.len() * 2, 0),
                    // More fields than the header names.
                    ReadRecordResult::OutputEndsFull => return None,
                }
            }
            let text = std::str::from_utf8(&record[..written]).ok()?;
            let mut start = 0;
            let values = ends[..fields].iter().map(|&end| {
                // A field boundary inside a character: bytes that were not UTF-8 around a delimiter.
                let value = text.get(start..end);
                start = end;
                value
            });
            batches.take(values)?;
        }
    }
}

/// The batches of one block, filled a record at a time whichever tokenizer cut the records.
struct BlockBatches<'r> {
    rows: &'r TypedCsvRows,
    origin: RowOrigin<'r>,
    /// The header, first in the file's first block, is no row.
    skip_header: bool,
    batch: BatchBuilder,
    full: Vec<RecordBatch>,
}

impl<'r> BlockBatches<'r> {
    fn new(rows: &'r TypedCsvRows, first: bool, origin: RowOrigin<'r>) -> Option<Self> {
        let skip_header = first && rows.dialect.header;
        Some(BlockBatches { rows, origin, skip_header, batch: BatchBuilder::new(rows)?, full: Vec::new() })
    }

    /// Takes a record's values; `None` when the block needs the text decoder.
    fn take<'t>(&mut self, values: impl Iterator<Item = Option<&'t str>>) -> Option<()> {
        if std::mem::take(&mut self.skip_header) {
            return Some(());
        }
        self.batch.append(self.rows, values)?;
        if self.batch.rows == BATCH_ROWS {
            let full = std::mem::replace(&mut self.batch, BatchBuilder::new(self.rows)?);
            self.full.extend(full.finish(self.rows, self.origin)?);
        }
        Some(())
    }

    /// Every batch of the block; `None` when the block needs the text decoder.
    fn finish(mut self) -> Option<Vec<RecordBatch>> {
        self.full.extend(self.batch.finish(self.rows, self.origin)?);
        Some(self.full)
    }
}

/// A block [`CsvFields`] leaves to csv-core.
struct Unsupported;

/// The columns of one batch being built.
struct BatchBuilder {
    columns: Vec<ColumnBuilder>,
    rescued: RescuedValues,
    rows: usize,
}

impl BatchBuilder {
    fn new(rows: &TypedCsvRows) -> Option<Self> {
        Some(BatchBuilder {
            columns: ColumnBuilder::for_columns(&rows.kinds, BATCH_ROWS)?,
            rescued: RescuedValues::new(BATCH_ROWS),
            rows: 0,
        })
    }

    /// Appends a record of `values` (at most one per header field; `None` for one that is not text).
    fn append<'t>(&mut self, rows: &TypedCsvRows, mut values: impl Iterator<Item = Option<&'t str>>) -> Option<()> {
        for target in &rows.fields {
            // A record with fewer fields than the header leaves the rest null.
            let value = match values.next() {
                Some(value) => {
                    let value = value?;
                    let null = value.is_empty() || rows.dialect.null_value.as_deref() == Some(value);
                    (!null).then_some(value)
                }
                None => None,
            };
            match (target, value) {
                (FieldTarget::Column(column), None) => self.columns[*column].append_null(),
                (FieldTarget::Column(column), Some(value)) => {
                    if !self.columns[*column].append_text(value, &rows.times) {
                        self.rescued.keep(self.rows, rows.table.field(*column).name(), Value::String(value.into()));
                    }
                }
                (FieldTarget::Rescued(name), Some(value)) => {
                    self.rescued.keep(self.rows, name, Value::String(value.into()))
                }
                (FieldTarget::Rescued(_), None) => {}
            }
        }
        for &column in &rows.unfilled {
            self.columns[column].append_null();
        }
        self.rows += 1;
        Some(())
    }

    /// The batch, if it has rows; `None` when a value must be rescued and cannot be.
    fn finish(mut self, rows: &TypedCsvRows, origin: RowOrigin<'_>) -> Option<Option<RecordBatch>> {
        if self.rows == 0 {
            return Some(None);
        }
        self.rescued.truncate(self.rows);
        let mut columns: Vec<ArrayRef> = self.columns.into_iter().map(ColumnBuilder::finish).collect::<Option<_>>()?;
        let table: Vec<Field> = rows.table.fields().iter().map(|field| field.as_ref().clone()).collect();
        self.rescued.place_in(&mut columns, &table, origin).ok()?;
        Some(Some(RecordBatch::try_new(rows.table.clone(), columns).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use connector_core::arrow::datatypes::{DataType, TimeUnit};

    use super::*;
    use crate::csv_rows::{BlockRows, block_rows};
    use crate::format_options::FormatOptions;
    use crate::rescued_data::RESCUED_DATA;

    fn dialect() -> CsvDialect {
        let options = FormatOptions { null_value: Some("NA".into()), ..FormatOptions::default() };
        options.csv_dialect(false).expect("the default dialect")
    }

    fn table() -> Vec<Field> {
        vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("amount", DataType::Decimal128(6, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("missing", DataType::Int64, true),
            Field::new(RESCUED_DATA, DataType::Utf8, true),
        ]
    }

    /// The rows of `csv` by the one-pass reader (`None` if it leaves them) and by the text decoder.
    async fn both_readers(csv: &str, dialect: &CsvDialect, strict: bool) -> (Option<Vec<RecordBatch>>, BlockRows) {
        let mut bytes = csv.as_bytes();
        let layout = CsvLayout::open(&mut bytes, dialect).await.expect("header").expect("not empty");
        let origin = RowOrigin { file_path: "f.csv", first_row: 0, strict };
        let typed = TypedCsvRows::new(&layout, &table(), &dialect.times).expect("scalar table");
        let one_pass = typed.rows_of_block(bytes, true, origin);
        let text = block_rows(&layout, None, bytes, true, &table(), &dialect.times, "f.csv", strict).expect("rows");
        (one_pass, text)
    }

    #[tokio::test]
    async fn the_one_pass_reader_reads_what_the_text_decoder_reads() {
        let csv = concat!(
            "id,name,score,ok,amount,day,at,extra\n",
            "1,\"a, \"\"quoted\"\"\nname\",1.5,true,12.5,2026-12-05,2026-12-05T10:00:00Z,x\n",
            "2,,NA,YES,-0.01,,2026-12-05 10:00:00.5+02:00,\n",
            "x,b,nope,maybe,1.239,2026-02-30,yesterday,NA\n",
            "3000000000,é,1e3,0,7,1999-01-31,2026-12-05T10:00:00\n",
            "4,short\n",
            "\n",
            "5,last,2,f,3.10,2000-02-29,2000-02-29 23:59:59",
        );
        let (one_pass, text) = both_readers(csv, &dialect(), false).await;
        let BlockRows::Rows(expected) = text else { panic!("the text decoder rescues") };
        assert_eq!(one_pass.expect("taken"), expected);
        // A quote inside an unquoted field: csv-core cuts the block, by its own rules.
        let odd_quotes = "id,name,score\n1,12\" pipe,2\n2,\"a\"b,3\n";
        let (one_pass, text) = both_readers(odd_quotes, &dialect(), false).await;
        let BlockRows::Rows(expected) = text else { panic!("the text decoder rescues") };
        assert_eq!(one_pass.expect("taken"), expected);
    }

    #[tokio::test]
    async fn blocks_it_cannot_read_whole_go_to_the_text_decoder() {
        let surplus = "id,name\n1,a,surplus\n";
        assert!(both_readers(surplus, &dialect(), false).await.0.is_none(), "more fields than the header");
        let unfit = "id,name\n1,a\nx,b\n";
        let (one_pass, text) = both_readers(unfit, &dialect(), true).await;
        assert!(one_pass.is_none(), "strict mode: the text decoder names the row");
        assert!(matches!(text, BlockRows::Unfit { rows_before: 0, .. }));
    }
}
