//! Changes of one table gathered from the stream until they are committed to Delta: Arrow column builders,
//! the operation of each row and the transaction spans, in source commit order.
//!
//! A table's shape can change mid-batch (ALTER TABLE while streaming). Rows decoded before the change are
//! sealed into a segment of the old shape; the batch handed to the sink aligns every segment to the union of
//! the shapes (a dropped column is kept, filled with null from then on; a widened one is cast).

use chrono::{DateTime, Utc};
use connector_core::arrow::array::{ArrayRef, RecordBatch};
use connector_core::change::{ChangeBatch, Operation, TransactionSpan};
use connector_core::error::{Error, Result};
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::TableSchema;
use connector_core::shape_change::assemble_segments;

use crate::codec::ColumnBuilder;
use crate::schema::PgType;

/// The decoding shape of a table at some point of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TableShape {
    pub schema: TableSchema,
    pub types: Vec<PgType>,
    /// Type OID and typmod per column, as Relation messages describe them: a change means a new shape.
    pub wire_types: Vec<(u32, i32)>,
}

#[derive(Debug)]
pub struct PendingChanges {
    shape: TableShape,
    builders: Vec<ColumnBuilder>,
    /// Rows of earlier shapes, in order.
    segments: Vec<(TableSchema, RecordBatch)>,
    operations: Vec<Operation>,
    spans: Vec<TransactionSpan>,
    /// Rows appended since the last transaction span closed.
    open_rows: usize,
    /// Cells an UPDATE left unchanged (TOASTed values the server did not send): row and column name.
    unchanged: Vec<(usize, String)>,
}

/// Closed transactions taken from a table's pending changes, ready to become a change batch once the
/// unchanged cells are filled.
#[derive(Debug)]
pub struct TakenChanges {
    pub schema: TableSchema,
    pub rows: RecordBatch,
    pub operations: Vec<Operation>,
    pub spans: Vec<TransactionSpan>,
    pub unchanged: Vec<(usize, String)>,
}

impl TakenChanges {
    pub fn into_batch(self, rows: RecordBatch) -> Result<(TableSchema, ChangeBatch)> {
        let batch = ChangeBatch::new(&self.schema, rows, self.operations, self.spans)?;
        Ok((self.schema, batch))
    }
}

impl PendingChanges {
    pub fn new(shape: TableShape) -> Self {
        let builders = shape.types.iter().map(|pg_type| ColumnBuilder::new(pg_type, 1024)).collect();
        PendingChanges {
            shape,
            builders,
            segments: Vec::new(),
            operations: Vec::new(),
            spans: Vec::new(),
            open_rows: 0,
            unchanged: Vec::new(),
        }
    }

    pub fn shape(&self) -> &TableShape {
        &self.shape
    }

    pub fn buffered_bytes(&self) -> usize {
        self.builders.iter().map(ColumnBuilder::buffered_bytes).sum::<usize>()
            + self.segments.iter().map(|(_, rows)| rows.get_array_memory_size()).sum::<usize>()
    }

    /// Appends a row; `values[i]` is column `i` of the current shape in binary form, `None` for NULL.
    pub fn push(&mut self, operation: Operation, values: &[Option<&[u8]>]) -> Result<()> {
        for (builder, value) in self.builders.iter_mut().zip(values) {
            builder.append(*value).map_err(|cause| {
                Error::state(format!("cannot decode a change to {}", self.shape.schema.id))
                    .caused_by(cause)
                    .for_table(&self.shape.schema.id)
            })?;
        }
        self.operations.push(operation);
        self.open_rows += 1;
        Ok(())
    }

    /// Appends an UPDATE whose `unchanged` columns (null in `values`) keep the value they had.
    pub fn push_update_with_unchanged(&mut self, values: &[Option<&[u8]>], unchanged: &[usize]) -> Result<()> {
        let row = self.operations.len();
        self.push(Operation::Update, values)?;
        for &column in unchanged {
            self.unchanged.push((row, self.shape.schema.columns[column].name.clone()));
        }
        Ok(())
    }

    /// Appends a TRUNCATE marker (its column values are ignored by the sink).
    pub fn push_truncate(&mut self) -> Result<()> {
        let nulls = vec![None; self.builders.len()];
        self.push(Operation::Truncate, &nulls)
    }

    /// Whether rows arrived since the last [`close_transaction`](Self::close_transaction).
    pub fn has_open_rows(&self) -> bool {
        self.open_rows > 0
    }

    /// Closes the current transaction's rows at its commit position.
    pub fn close_transaction(&mut self, end: Lsn, commit_time: DateTime<Utc>) {
        if self.open_rows == 0 {
            return;
        }
        self.open_rows = 0;
        self.spans.push(TransactionSpan {
            end_row: self.operations.len(),
            position: SourcePosition::Postgres { lsn: end },
            commit_time,
        });
    }

    /// Switches to a new shape; rows so far keep the old one.
    pub fn reshape(&mut self, shape: TableShape) -> Result<()> {
        if self.builders.first().is_some_and(|builder| !builder.is_empty()) {
            let rows = self.finish_builders()?;
            self.segments.push((self.shape.schema.clone(), rows));
        }
        self.builders = shape.types.iter().map(|pg_type| ColumnBuilder::new(pg_type, 1024)).collect();
        self.shape = shape;
        Ok(())
    }

    fn finish_builders(&mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        let schema = &self.shape.schema;
        if arrays.is_empty() {
            return Err(Error::schema(&schema.id, format!("{} has no columns to capture", schema.id)));
        }
        RecordBatch::try_new(schema.arrow_schema(), arrays).map_err(|cause| {
            Error::schema(&schema.id, format!("decoded changes of {} do not match its schema", schema.id))
                .caused_by(cause)
        })
    }

    /// Takes every closed transaction as one batch (and the schema it is expressed in), leaving nothing
    /// pending. Must not be called with rows of an open transaction.
    pub fn take_batch(&mut self) -> Result<Option<TakenChanges>> {
        if self.open_rows > 0 {
            return Err(Error::state(format!(
                "internal: {} has changes of an unfinished transaction",
                self.shape.schema.id
            )));
        }
        Ok(self.take_everything(None)?.0)
    }

    /// Takes the closed transactions and, separately, the rows of the open one so far (as a transaction at
    /// `open` — its commit LSN and time — that the caller applies as a part). The open transaction's next
    /// rows start a new part.
    pub fn take_with_open_part(
        &mut self,
        open: (Lsn, DateTime<Utc>),
    ) -> Result<(Option<TakenChanges>, Option<TakenChanges>)> {
        self.take_everything(Some(open))
    }

    fn take_everything(
        &mut self,
        open: Option<(Lsn, DateTime<Utc>)>,
    ) -> Result<(Option<TakenChanges>, Option<TakenChanges>)> {
        if self.operations.is_empty() {
            return Ok((None, None));
        }
        let current = self.finish_builders()?;
        let mut segments = std::mem::take(&mut self.segments);
        segments.push((self.shape.schema.clone(), current));
        let (schema, rows) = assemble_segments(&segments)?;
        let mut operations = std::mem::take(&mut self.operations);
        let spans = std::mem::take(&mut self.spans);
        let mut unchanged = std::mem::take(&mut self.unchanged);
        let closed_rows = operations.len() - self.open_rows;
        let mut open_part = None;
        if let (Some((lsn, commit_time)), true) = (open, self.open_rows > 0) {
            let open_rows = self.open_rows;
            self.open_rows = 0;
            let open_unchanged = unchanged
                .iter()
                .filter(|(row, _)| *row >= closed_rows)
                .map(|(row, column)| (row - closed_rows, column.clone()))
                .collect();
            unchanged.retain(|(row, _)| *row < closed_rows);
            open_part = Some(TakenChanges {
                schema: schema.clone(),
                rows: rows.slice(closed_rows, open_rows),
                operations: operations.split_off(closed_rows),
                spans: vec![TransactionSpan {
                    end_row: open_rows,
                    position: SourcePosition::Postgres { lsn },
                    commit_time,
                }],
                unchanged: open_unchanged,
            });
        }
        let closed = (closed_rows > 0).then(|| TakenChanges {
            schema,
            rows: rows.slice(0, closed_rows),
            operations,
            spans,
            unchanged,
        });
        Ok((closed, open_part))
    }
}
