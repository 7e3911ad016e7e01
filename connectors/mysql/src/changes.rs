//! Changes of one table gathered from the binlog until they are committed to Delta: Arrow column builders,
//! the operation of each row and the transaction spans, in binlog order. Rows decoded before an ALTER TABLE
//! are sealed in a segment of the old shape and aligned to the union of the shapes when taken.

use chrono::{DateTime, Utc};
use connector_core::arrow::array::{ArrayRef, RecordBatch};
use connector_core::change::{ChangeBatch, Operation, TransactionSpan};
use connector_core::error::{Error, Result};
use connector_core::position::{BinlogPosition, SourcePosition};
use connector_core::schema::TableSchema;
use connector_core::shape_change::assemble_segments;
use mysql_async::Value;

use crate::codec::{ColumnBuilder, Origin};
use crate::types::MySqlType;

/// The decoding shape of a table at some point of the binlog.
#[derive(Debug, Clone, PartialEq)]
pub struct TableShape {
    pub schema: TableSchema,
    pub types: Vec<MySqlType>,
}

impl TableShape {
    /// Whether rows of `other` decode into the same columns (names and Delta types).
    pub fn same_columns(&self, other: &TableShape) -> bool {
        self.schema.columns.len() == other.schema.columns.len()
            && self.schema.columns.iter().zip(&other.schema.columns).all(|(left, right)| left.name == right.name)
            && self.types.iter().zip(&other.types).all(|(left, right)| left.same_column_as(right))
    }
}

#[derive(Debug)]
pub struct PendingChanges {
    shape: TableShape,
    builders: Vec<ColumnBuilder>,
    segments: Vec<(TableSchema, RecordBatch)>,
    operations: Vec<Operation>,
    spans: Vec<TransactionSpan>,
    open_rows: usize,
}

impl PendingChanges {
    pub fn new(shape: TableShape) -> Self {
        let builders = new_builders(&shape);
        PendingChanges {
            shape,
            builders,
            segments: Vec::new(),
            operations: Vec::new(),
            spans: Vec::new(),
            open_rows: 0,
        }
    }

    pub fn shape(&self) -> &TableShape {
        &self.shape
    }

    pub fn buffered_bytes(&self) -> usize {
        self.builders.iter().map(ColumnBuilder::buffered_bytes).sum::<usize>()
            + self.segments.iter().map(|(_, rows)| rows.get_array_memory_size()).sum::<usize>()
    }

    /// Appends a row of the current shape (`values[i]` is column `i`; `None` for NULL).
    pub fn push(&mut self, operation: Operation, values: &[Option<&Value>], origin: Origin) -> Result<()> {
        if values.len() != self.builders.len() {
            return Err(Error::state(format!(
                "a change to {} has {} columns, its table map {}",
                self.shape.schema.id,
                values.len(),
                self.builders.len()
            )));
        }
        for ((builder, value), column) in self.builders.iter_mut().zip(values).zip(&self.shape.schema.columns) {
            builder.append(*value, origin).map_err(|cause| {
                Error::state(format!("cannot decode column `{}` of a change to {}", column.name, self.shape.schema.id))
                    .caused_by(cause)
                    .for_table(&self.shape.schema.id)
            })?;
        }
        self.operations.push(operation);
        self.open_rows += 1;
        Ok(())
    }

    /// Appends a TRUNCATE marker (its column values are ignored by the sink).
    pub fn push_truncate(&mut self) -> Result<()> {
        let nulls = vec![None; self.builders.len()];
        self.push(Operation::Truncate, &nulls, Origin::Binlog)
    }

    pub fn has_open_rows(&self) -> bool {
        self.open_rows > 0
    }

    /// Closes the open transaction's rows at its commit position.
    pub fn close_transaction(&mut self, position: &BinlogPosition, commit_time: DateTime<Utc>) {
        if self.open_rows == 0 {
            return;
        }
        self.open_rows = 0;
        self.spans.push(TransactionSpan {
            end_row: self.operations.len(),
            position: SourcePosition::Binlog(position.clone()),
            commit_time,
        });
    }

    /// Switches to a new shape; rows so far keep the old one.
    pub fn reshape(&mut self, shape: TableShape) -> Result<()> {
        if self.builders.first().is_some_and(|builder| !builder.is_empty()) {
            let rows = self.finish_builders()?;
            self.segments.push((self.shape.schema.clone(), rows));
        }
        self.builders = new_builders(&shape);
        self.shape = shape;
        Ok(())
    }

    fn finish_builders(&mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        let schema = &self.shape.schema;
        RecordBatch::try_new(schema.arrow_schema(), arrays).map_err(|cause| {
            Error::schema(&schema.id, format!("decoded changes of {} do not match its schema", schema.id))
                .caused_by(cause)
        })
    }

    /// Takes every closed transaction as one batch and the schema it is expressed in. Must not be called with
    /// rows of an open transaction.
    pub fn take_batch(&mut self) -> Result<Option<(TableSchema, ChangeBatch)>> {
        if self.open_rows > 0 {
            return Err(Error::state(format!(
                "internal: {} has changes of an unfinished transaction",
                self.shape.schema.id
            )));
        }
        Ok(self.take_everything(None)?.0)
    }

    /// Takes the closed transactions and, apart, the open transaction's rows so far as a part at `open` (where
    /// the transaction began: parts keep the table's cursor, so the position only labels the rows).
    pub fn take_with_open_part(&mut self, open: &BinlogPosition) -> Result<(Taken, Taken)> {
        self.take_everything(Some(open))
    }

    fn take_everything(&mut self, open: Option<&BinlogPosition>) -> Result<(Taken, Taken)> {
        if self.operations.is_empty() {
            return Ok((None, None));
        }
        let current = self.finish_builders()?;
        let mut segments = std::mem::take(&mut self.segments);
        segments.push((self.shape.schema.clone(), current));
        let (schema, rows) = assemble_segments(&segments)?;
        let mut operations = std::mem::take(&mut self.operations);
        let spans = std::mem::take(&mut self.spans);
        let closed_rows = operations.len() - self.open_rows;
        let mut open_part = None;
        if let (Some(position), true) = (open, self.open_rows > 0) {
            let open_rows = std::mem::take(&mut self.open_rows);
            let span = TransactionSpan {
                end_row: open_rows,
                position: SourcePosition::Binlog(position.clone()),
                commit_time: Utc::now(),
            };
            let part_operations = operations.split_off(closed_rows);
            let batch = ChangeBatch::new(&schema, rows.slice(closed_rows, open_rows), part_operations, vec![span])?;
            open_part = Some((schema.clone(), batch));
        }
        let closed = if closed_rows > 0 {
            Some((schema.clone(), ChangeBatch::new(&schema, rows.slice(0, closed_rows), operations, spans)?))
        } else {
            None
        };
        Ok((closed, open_part))
    }
}

/// A batch taken from pending changes, with the schema it is expressed in.
pub type Taken = Option<(TableSchema, ChangeBatch)>;

fn new_builders(shape: &TableShape) -> Vec<ColumnBuilder> {
    shape.types.iter().map(|mysql_type| ColumnBuilder::new(mysql_type, 1024)).collect()
}
