//! Changes of one table gathered from the stream until they are committed to Delta: rows decoded from
//! pgoutput's binary values into a [`ChangeBuffer`] (operations, transactions, shape changes), and the cells
//! an UPDATE left unchanged, which are filled from the table when the rows are applied.

use chrono::{DateTime, Utc};
use connector_core::arrow::array::RecordBatch;
use connector_core::change::{ChangeBatch, Operation};
use connector_core::change_buffer::{ChangeBuffer, TakenRows};
use connector_core::error::{Error, Result};
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::TableSchema;

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

/// A cell an UPDATE left unchanged (a TOASTed value the server did not send): the value it keeps is the one
/// stored under the key of `key_row`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnchangedCell {
    pub row: usize,
    pub column: String,
    /// The UPDATE's own row; or, when the UPDATE changed the key, the delete of the old key pushed just before
    /// it, since the value is still stored under the old key.
    pub key_row: usize,
}

/// One table's changes read from the stream and not yet committed.
#[derive(Debug)]
pub struct PendingChanges {
    shape: TableShape,
    buffer: ChangeBuffer<ColumnBuilder>,
    /// Cells an UPDATE left unchanged, in row order.
    unchanged: Vec<UnchangedCell>,
}

/// Closed transactions taken from a table's pending changes, ready to become a change batch once the
/// unchanged cells are filled.
#[derive(Debug)]
pub struct TakenChanges {
    pub taken: TakenRows,
    pub unchanged: Vec<UnchangedCell>,
}

impl TakenChanges {
    fn new(taken: TakenRows, unchanged: Vec<UnchangedCell>) -> Self {
        TakenChanges { taken, unchanged }
    }

    /// The change batch, with `rows` (the taken rows with their unchanged cells filled) as its rows.
    pub fn into_batch(self, rows: RecordBatch) -> Result<(TableSchema, ChangeBatch)> {
        TakenRows { rows, ..self.taken }.into_batch()
    }
}

impl PendingChanges {
    pub fn new(shape: TableShape) -> Self {
        let buffer = ChangeBuffer::new(shape.schema.clone(), new_builders(&shape));
        PendingChanges { shape, buffer, unchanged: Vec::new() }
    }

    pub fn shape(&self) -> &TableShape {
        &self.shape
    }

    pub fn buffered_bytes(&self) -> usize {
        self.buffer.buffered_bytes()
    }

    /// Appends a row and returns its index; `values[i]` is column `i` of the current shape in binary form,
    /// `None` for NULL.
    pub fn push(&mut self, operation: Operation, values: &[Option<&[u8]>]) -> Result<usize> {
        let row = self.buffer.rows();
        let id = &self.shape.schema.id;
        for (builder, value) in self.buffer.columns_mut().iter_mut().zip(values) {
            builder.append(*value).map_err(|cause| {
                Error::state(format!("cannot decode a change to {id}")).caused_by(cause).for_table(id)
            })?;
        }
        self.buffer.row_appended(operation);
        Ok(row)
    }

    /// Appends an UPDATE whose `unchanged` columns (null in `values`) keep the value they had, which is stored
    /// under the key of row `old_key_row` when the UPDATE changed the key (see [`UnchangedCell::key_row`]).
    pub fn push_update_with_unchanged(
        &mut self,
        values: &[Option<&[u8]>],
        unchanged: &[usize],
        old_key_row: Option<usize>,
    ) -> Result<()> {
        let row = self.push(Operation::Update, values)?;
        for &column in unchanged {
            let column = self.shape.schema.columns[column].name.clone();
            self.unchanged.push(UnchangedCell { row, column, key_row: old_key_row.unwrap_or(row) });
        }
        Ok(())
    }

    /// Appends a TRUNCATE marker (its column values are ignored by the sink).
    pub fn push_truncate(&mut self) -> Result<()> {
        let nulls = vec![None; self.shape.types.len()];
        self.push(Operation::Truncate, &nulls).map(drop)
    }

    /// Whether rows arrived since the last [`close_transaction`](Self::close_transaction).
    pub fn has_open_rows(&self) -> bool {
        self.buffer.open_rows() > 0
    }

    /// Closes the current transaction's rows at its commit position.
    pub fn close_transaction(&mut self, end: Lsn, commit_time: DateTime<Utc>) {
        self.buffer.close_transaction(SourcePosition::Postgres { lsn: end }, commit_time);
    }

    /// Switches to a new shape; rows so far keep the old one.
    pub fn reshape(&mut self, shape: TableShape) -> Result<()> {
        self.buffer.reshape(shape.schema.clone(), new_builders(&shape))?;
        self.shape = shape;
        Ok(())
    }

    /// Takes every closed transaction as one batch (and the schema it is expressed in), leaving nothing
    /// pending. Must not be called with rows of an open transaction.
    pub fn take_batch(&mut self) -> Result<Option<TakenChanges>> {
        let taken = self.buffer.take_closed()?;
        let unchanged = std::mem::take(&mut self.unchanged);
        Ok(taken.map(|taken| TakenChanges::new(taken, unchanged)))
    }

    /// Takes the closed transactions and, separately, the rows of the open one so far (as a transaction at
    /// `open` — its commit LSN and time — that the caller applies as a part). The open transaction's next
    /// rows start a new part.
    pub fn take_with_open_part(
        &mut self,
        (lsn, commit_time): (Lsn, DateTime<Utc>),
    ) -> Result<(Option<TakenChanges>, Option<TakenChanges>)> {
        let closed_rows = self.buffer.rows() - self.buffer.open_rows();
        let (closed, open) = self.buffer.take_with_open_part((SourcePosition::Postgres { lsn }, commit_time))?;
        let mut unchanged = std::mem::take(&mut self.unchanged);
        // A key change's delete and update are one transaction's rows, so both sides of a cell stay together.
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
        Ok((
            closed.map(|taken| TakenChanges::new(taken, unchanged)),
            open.map(|taken| TakenChanges::new(taken, open_unchanged)),
        ))
    }
}

fn new_builders(shape: &TableShape) -> Vec<ColumnBuilder> {
    shape.types.iter().map(|pg_type| ColumnBuilder::new(pg_type, 1024)).collect()
}
