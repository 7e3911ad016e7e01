//! Changes of one table gathered from a source's stream until they are committed to Delta: the rows, in the
//! source's own column builders, each row's operation and the transaction spans, in commit order.
//!
//! A table's shape can change mid-batch (ALTER TABLE while streaming). Rows decoded before the change are
//! sealed into a segment of the old shape; what is taken aligns every segment to the union of the shapes (a
//! dropped column is kept, null from then on; a widened one is cast: [`crate::shape_change`]).
//!
//! The database sources decode values their own way (PostgreSQL's binary format, MySQL's row values) into
//! builders that implement [`ColumnRows`]; the bookkeeping here is theirs in common.
//!
//! A source may not send every value of an updated row (PostgreSQL leaves unchanged TOASTed values out): such
//! a cell is marked [`UnchangedCell`], and the Delta writer fills it from the row it stores.

use chrono::{DateTime, Utc};

use crate::arrow::array::{ArrayRef, RecordBatch};
use crate::change::{ChangeBatch, Operation, TransactionSpan};
use crate::error::{Error, Result};
use crate::position::SourcePosition;
use crate::schema::TableSchema;
use crate::shape_change::assemble_segments;

/// A source's builder of one column's values.
pub trait ColumnRows {
    /// The values appended so far as an array, leaving the builder empty for more.
    fn finish(&mut self) -> ArrayRef;
    fn is_empty(&self) -> bool;
    /// Memory the values appended so far take.
    fn buffered_bytes(&self) -> usize;
}

/// A cell of an UPDATE whose value the source did not send: the row keeps the value it has, which is stored
/// under the key of `key_row`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnchangedCell {
    pub row: usize,
    pub column: String,
    /// The UPDATE's own row; or, when the UPDATE changed the key, the delete of the old key pushed just before
    /// it, since the value is still stored under the old key.
    pub key_row: usize,
}

/// Rows taken from a [`ChangeBuffer`]: the schema they are in, the rows, their operations and transactions,
/// and the cells to fill from the stored rows.
#[derive(Debug)]
pub struct TakenRows {
    pub schema: TableSchema,
    pub rows: RecordBatch,
    pub operations: Vec<Operation>,
    pub spans: Vec<TransactionSpan>,
    /// Cells the source left out (null in `rows`), in row order.
    pub unchanged: Vec<UnchangedCell>,
}

impl TakenRows {
    /// The change batch, for rows without unchanged cells (the Delta writer fills those first).
    pub fn into_batch(self) -> Result<(TableSchema, ChangeBatch)> {
        if !self.unchanged.is_empty() {
            return Err(Error::state(format!("internal: changes of {} still have unchanged cells", self.schema.id)));
        }
        let batch = ChangeBatch::new(&self.schema, self.rows, self.operations, self.spans)?;
        Ok((self.schema, batch))
    }
}

#[derive(Debug)]
pub struct ChangeBuffer<C> {
    schema: TableSchema,
    columns: Vec<C>,
    /// Rows of earlier shapes, in order.
    segments: Vec<(TableSchema, RecordBatch)>,
    operations: Vec<Operation>,
    spans: Vec<TransactionSpan>,
    /// Rows appended since the last transaction span closed.
    open_rows: usize,
    unchanged: Vec<UnchangedCell>,
}

impl<C: ColumnRows> ChangeBuffer<C> {
    /// An empty buffer for rows of `schema`, one builder per column.
    pub fn new(schema: TableSchema, columns: Vec<C>) -> Self {
        ChangeBuffer {
            schema,
            columns,
            segments: Vec::new(),
            operations: Vec::new(),
            spans: Vec::new(),
            open_rows: 0,
            unchanged: Vec::new(),
        }
    }

    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// The builders to append a row's values to; [`row_appended`](Self::row_appended) then counts the row.
    pub fn columns_mut(&mut self) -> &mut [C] {
        &mut self.columns
    }

    /// Counts the row appended to the builders; returns its index.
    pub fn row_appended(&mut self, operation: Operation) -> usize {
        self.operations.push(operation);
        self.open_rows += 1;
        self.operations.len() - 1
    }

    /// Marks column `column` of row `row` (an UPDATE) as left out by the source: it keeps the value stored under
    /// the key of row `key_row` (see [`UnchangedCell::key_row`]).
    pub fn mark_unchanged(&mut self, row: usize, column: usize, key_row: usize) {
        let column = self.schema.columns[column].name.clone();
        self.unchanged.push(UnchangedCell { row, column, key_row });
    }

    /// Rows buffered, of closed and open transactions.
    pub fn rows(&self) -> usize {
        self.operations.len()
    }

    /// Rows of the open transaction (appended since the last [`close_transaction`](Self::close_transaction)).
    pub fn open_rows(&self) -> usize {
        self.open_rows
    }

    pub fn buffered_bytes(&self) -> usize {
        self.columns.iter().map(ColumnRows::buffered_bytes).sum::<usize>()
            + self.segments.iter().map(|(_, rows)| rows.get_array_memory_size()).sum::<usize>()
    }

    /// Closes the open transaction's rows at its commit position.
    /// Returns the transaction's rows.
    pub fn close_transaction(&mut self, position: SourcePosition, commit_time: DateTime<Utc>) -> usize {
        let rows = std::mem::take(&mut self.open_rows);
        if rows > 0 {
            self.spans.push(TransactionSpan { end_row: self.operations.len(), position, commit_time });
        }
        rows
    }

    /// Switches to a new shape; rows so far keep the old one.
    pub fn reshape(&mut self, schema: TableSchema, columns: Vec<C>) -> Result<()> {
        if self.columns.first().is_some_and(|column| !column.is_empty()) {
            let rows = self.finish_columns()?;
            self.segments.push((self.schema.clone(), rows));
        }
        self.schema = schema;
        self.columns = columns;
        Ok(())
    }

    fn finish_columns(&mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnRows::finish).collect();
        let schema = &self.schema;
        if arrays.is_empty() {
            return Err(Error::schema(&schema.id, format!("{} has no columns to capture", schema.id)));
        }
        RecordBatch::try_new(schema.arrow_schema(), arrays).map_err(|cause| {
            Error::schema(&schema.id, format!("decoded changes of {} do not match its schema", schema.id))
                .caused_by(cause)
        })
    }

    /// Takes every closed transaction, leaving nothing buffered. Must not be called with rows of an open
    /// transaction.
    pub fn take_closed(&mut self) -> Result<Option<TakenRows>> {
        if self.open_rows > 0 {
            return Err(Error::state(format!("internal: {} has changes of an unfinished transaction", self.schema.id)));
        }
        Ok(self.take_everything(None)?.0)
    }

    /// Takes the closed transactions and, apart, the open transaction's rows so far as a transaction at `open`
    /// (a position and commit time labelling the part). The open transaction's next rows start a new part.
    pub fn take_with_open_part(
        &mut self,
        open: (SourcePosition, DateTime<Utc>),
    ) -> Result<(Option<TakenRows>, Option<TakenRows>)> {
        self.take_everything(Some(open))
    }

    fn take_everything(
        &mut self,
        open: Option<(SourcePosition, DateTime<Utc>)>,
    ) -> Result<(Option<TakenRows>, Option<TakenRows>)> {
        if self.operations.is_empty() {
            return Ok((None, None));
        }
        let current = self.finish_columns()?;
        let mut segments = std::mem::take(&mut self.segments);
        segments.push((self.schema.clone(), current));
        let (schema, rows) = assemble_segments(&segments)?;
        let mut operations = std::mem::take(&mut self.operations);
        let spans = std::mem::take(&mut self.spans);
        let closed_rows = operations.len() - self.open_rows;
        let mut unchanged = std::mem::take(&mut self.unchanged);
        let mut open_part = None;
        if let (Some((position, commit_time)), true) = (open, self.open_rows > 0) {
            let open_rows = std::mem::take(&mut self.open_rows);
            // A key change's delete and update are rows of one transaction, so both sides of a cell stay together.
            let open_unchanged = unchanged
                .iter()
                .filter(|cell| cell.row >= closed_rows)
                .map(|cell| UnchangedCell {
                    row: cell.row - closed_rows,
                    column: cell.column.clone(),
                    key_row: cell.key_row - closed_rows,
                })
                .collect();
            unchanged.retain(|cell| cell.row < closed_rows);
            open_part = Some(TakenRows {
                schema: schema.clone(),
                rows: rows.slice(closed_rows, open_rows),
                operations: operations.split_off(closed_rows),
                spans: vec![TransactionSpan { end_row: open_rows, position, commit_time }],
                unchanged: open_unchanged,
            });
        }
        let closed = (closed_rows > 0).then(|| TakenRows {
            schema,
            rows: rows.slice(0, closed_rows),
            operations,
            spans,
            unchanged,
        });
        Ok((closed, open_part))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::arrow::array::{Array, ArrayBuilder, Int64Array, Int64Builder};
    use crate::arrow::datatypes::DataType;
    use crate::position::Lsn;
    use crate::schema::{Column, TableId};

    #[derive(Default)]
    struct Numbers(Int64Builder);

    impl ColumnRows for Numbers {
        fn finish(&mut self) -> ArrayRef {
            Arc::new(self.0.finish())
        }

        fn is_empty(&self) -> bool {
            self.0.len() == 0
        }

        fn buffered_bytes(&self) -> usize {
            self.0.len() * 8
        }
    }

    fn schema(columns: &[&str]) -> TableSchema {
        let columns = columns.iter().map(|name| Column::new(*name, DataType::Int64, "bigint")).collect();
        TableSchema::new(TableId::new("shop", "t"), columns, vec!["id".into()]).expect("a schema")
    }

    fn append(buffer: &mut ChangeBuffer<Numbers>, values: &[i64]) {
        for (column, value) in buffer.columns_mut().iter_mut().zip(values) {
            column.0.append_value(*value);
        }
        buffer.row_appended(Operation::Insert);
    }

    fn at(lsn: u64) -> SourcePosition {
        SourcePosition::Postgres { lsn: Lsn(lsn) }
    }

    fn ids(taken: &TakenRows) -> Vec<i64> {
        let column = taken.rows.column(0).as_any().downcast_ref::<Int64Array>().expect("ids");
        column.values().to_vec()
    }

    #[test]
    fn the_open_transaction_is_taken_apart_and_its_next_rows_start_a_new_part() {
        let mut buffer = ChangeBuffer::new(schema(&["id"]), vec![Numbers::default()]);
        append(&mut buffer, &[1]);
        append(&mut buffer, &[2]);
        buffer.close_transaction(at(10), Utc::now());
        append(&mut buffer, &[3]);
        assert_eq!((buffer.rows(), buffer.open_rows()), (3, 1));
        assert!(buffer.take_closed().is_err(), "rows of an open transaction cannot be taken as closed");

        let (closed, open) = buffer.take_with_open_part((at(20), Utc::now())).expect("taken");
        let (closed, open) = (closed.expect("closed rows"), open.expect("an open part"));
        assert_eq!((ids(&closed), closed.spans.len(), closed.spans[0].end_row), (vec![1, 2], 1, 2));
        assert_eq!((ids(&open), open.spans[0].position.clone()), (vec![3], at(20)));
        assert_eq!(buffer.rows(), 0);

        append(&mut buffer, &[4]);
        buffer.close_transaction(at(30), Utc::now());
        let rest = buffer.take_closed().expect("taken").expect("the rest of the transaction");
        assert_eq!((ids(&rest), rest.spans[0].end_row), (vec![4], 1));
        assert!(buffer.take_closed().expect("nothing left").is_none());
    }

    #[test]
    fn rows_of_an_earlier_shape_are_aligned_to_the_new_one() {
        let mut buffer = ChangeBuffer::new(schema(&["id"]), vec![Numbers::default()]);
        append(&mut buffer, &[1]);
        buffer.reshape(schema(&["id", "added"]), vec![Numbers::default(), Numbers::default()]).expect("reshaped");
        append(&mut buffer, &[2, 20]);
        buffer.close_transaction(at(10), Utc::now());
        let taken = buffer.take_closed().expect("taken").expect("rows");
        assert_eq!(taken.schema.columns.len(), 2);
        assert_eq!(ids(&taken), vec![1, 2]);
        let added = taken.rows.column(1);
        assert!(added.is_null(0) && !added.is_null(1), "the earlier row has no value for the added column");
    }
}
