//! Changes of one table gathered from the binlog until they are committed to Delta: rows decoded from the
//! binlog's values into a [`ChangeBuffer`], which keeps the operations, transactions and shape changes.

use connector_core::change::Operation;
use connector_core::change_buffer::ChangeBuffer;
use connector_core::engine::TableChanges;
use connector_core::error::{Error, Result};
use connector_core::schema::TableSchema;
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
    /// Whether rows of `other` decode alike into the same columns: names and source types, down to ENUM labels
    /// and BINARY lengths, which decoding needs even where the Delta type stays the same.
    pub fn same_columns(&self, other: &TableShape) -> bool {
        self.schema.columns.len() == other.schema.columns.len()
            && self.schema.columns.iter().zip(&other.schema.columns).all(|(left, right)| left.name == right.name)
            && self.types == other.types
    }
}

/// One table's changes read from the binlog and not yet committed.
#[derive(Debug)]
pub struct PendingChanges {
    shape: TableShape,
    buffer: ChangeBuffer<ColumnBuilder>,
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
    pub fn new(shape: TableShape) -> Self {
        let buffer = ChangeBuffer::new(shape.schema.clone(), new_builders(&shape));
        PendingChanges { shape, buffer }
    }

    pub fn shape(&self) -> &TableShape {
        &self.shape
    }

    /// Appends a row of the current shape (`values[i]` is column `i`; `None` for NULL).
    pub fn push(&mut self, operation: Operation, values: &[Option<&Value>], origin: Origin) -> Result<()> {
        let id = &self.shape.schema.id;
        let columns = self.buffer.columns_mut();
        if values.len() != columns.len() {
            return Err(Error::state(format!(
                "a change to {id} has {} columns, its table map {}",
                values.len(),
                columns.len()
            )));
        }
        for ((builder, value), column) in columns.iter_mut().zip(values).zip(&self.shape.schema.columns) {
            builder.append(*value, origin).map_err(|cause| {
                Error::state(format!("cannot decode column `{}` of a change to {id}", column.name))
                    .caused_by(cause)
                    .for_table(id)
            })?;
        }
        self.buffer.row_appended(operation);
        Ok(())
    }

    /// Appends a TRUNCATE marker (its column values are ignored by the sink).
    pub fn push_truncate(&mut self) -> Result<()> {
        let nulls = vec![None; self.shape.types.len()];
        self.push(Operation::Truncate, &nulls, Origin::Binlog)
    }

    /// Switches to a new shape; rows so far keep the old one.
    pub fn reshape(&mut self, shape: TableShape) -> Result<()> {
        self.buffer.reshape(shape.schema.clone(), new_builders(&shape))?;
        self.shape = shape;
        Ok(())
    }
}

fn new_builders(shape: &TableShape) -> Vec<ColumnBuilder> {
    shape.types.iter().map(|mysql_type| ColumnBuilder::new(mysql_type, 1024)).collect()
}
