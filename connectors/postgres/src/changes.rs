//! Changes of one table gathered from the stream until they are committed to Delta: rows decoded from
//! pgoutput's binary values into a [`ChangeBuffer`] (operations, transactions, shape changes, and the cells an
//! UPDATE left unchanged, which the Delta writer fills from the table).

use connector_core::change::Operation;
use connector_core::change_buffer::ChangeBuffer;
use connector_core::engine::TableChanges;
use connector_core::error::{Error, Result};
use connector_core::position::Lsn;
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

/// One table's changes read from the stream and not yet committed.
#[derive(Debug)]
pub struct PendingChanges {
    shape: TableShape,
    buffer: ChangeBuffer<ColumnBuilder>,
    /// Transactions that committed before this position are already in the table (its snapshot or an earlier
    /// run) and are skipped as they arrive.
    pub skip_before: Lsn,
}

impl TableChanges for PendingChanges {
    type Columns = ColumnBuilder;

    fn changes(&self) -> &ChangeBuffer<ColumnBuilder> {
        &self.buffer
    }

    fn changes_mut(&mut self) -> &mut ChangeBuffer<ColumnBuilder> {
        &mut self.buffer
    }
}

impl PendingChanges {
    pub fn new(shape: TableShape, skip_before: Lsn) -> Self {
        let buffer = ChangeBuffer::new(shape.schema.clone(), new_builders(&shape));
        PendingChanges { shape, buffer, skip_before }
    }

    pub fn shape(&self) -> &TableShape {
        &self.shape
    }

    /// Appends a row and returns its index; `values[i]` is column `i` of the current shape in binary form,
    /// `None` for NULL.
    pub fn push(&mut self, operation: Operation, values: &[Option<&[u8]>]) -> Result<usize> {
        let id = &self.shape.schema.id;
        for (builder, value) in self.buffer.columns_mut().iter_mut().zip(values) {
            builder.append(*value).map_err(|cause| {
                Error::state(format!("cannot decode a change to {id}")).caused_by(cause).for_table(id)
            })?;
        }
        Ok(self.buffer.row_appended(operation))
    }

    /// Appends an UPDATE whose `unchanged` columns (null in `values`) keep the value they had, which is stored
    /// under the key of row `old_key_row` when the UPDATE changed the key.
    pub fn push_update_with_unchanged(
        &mut self,
        values: &[Option<&[u8]>],
        unchanged: &[usize],
        old_key_row: Option<usize>,
    ) -> Result<()> {
        let row = self.push(Operation::Update, values)?;
        for &column in unchanged {
            self.buffer.mark_unchanged(row, column, old_key_row.unwrap_or(row));
        }
        Ok(())
    }

    /// Appends a TRUNCATE marker (its column values are ignored by the sink).
    pub fn push_truncate(&mut self) -> Result<()> {
        let nulls = vec![None; self.shape.types.len()];
        self.push(Operation::Truncate, &nulls).map(drop)
    }

    /// Switches to a new shape; rows so far keep the old one.
    pub fn reshape(&mut self, shape: TableShape) -> Result<()> {
        self.buffer.reshape(shape.schema.clone(), new_builders(&shape))?;
        self.shape = shape;
        Ok(())
    }
}

fn new_builders(shape: &TableShape) -> Vec<ColumnBuilder> {
    shape.types.iter().map(|pg_type| ColumnBuilder::new(pg_type, 1024)).collect()
}
