//! A streamed table's changes not yet committed, in the column builders of its current decoding shape: the
//! source decodes each value straight into its column's builder (no row in between), and a new shape (a column
//! added, a type changed) starts new builders while the rows so far keep theirs.

use crate::change::Operation;
use crate::change_buffer::{ChangeBuffer, ColumnRows};
use crate::engine::TableChanges;
use crate::error::{Error, Result};
use crate::schema::TableSchema;

/// What a source knows of a table at some point of its stream to decode its values: the columns and their
/// source types, which make the builders.
pub trait DecodingShape: Send + 'static {
    type Columns: ColumnRows + Send;

    fn schema(&self) -> &TableSchema;

    /// Empty builders for this shape's columns, in order.
    fn new_columns(&self) -> Vec<Self::Columns>;
}

/// One table's changes, in the builders of shape `S`, with the source's own state of the table (`T`).
#[derive(Debug)]
pub struct ShapedChanges<S: DecodingShape, T = ()> {
    shape: S,
    buffer: ChangeBuffer<S::Columns>,
    /// What the source keeps beside the changes (PostgreSQL: the position before which they are skipped).
    pub state: T,
}

impl<S: DecodingShape, T: Send + 'static> TableChanges for ShapedChanges<S, T> {
    type Columns = S::Columns;

    fn changes(&self) -> &ChangeBuffer<S::Columns> {
        &self.buffer
    }

    fn changes_mut(&mut self) -> &mut ChangeBuffer<S::Columns> {
        &mut self.buffer
    }
}

impl<S: DecodingShape, T> ShapedChanges<S, T> {
    pub fn new(shape: S, state: T) -> Self {
        let buffer = ChangeBuffer::new(shape.schema().clone(), shape.new_columns());
        ShapedChanges { shape, buffer, state }
    }

    pub fn shape(&self) -> &S {
        &self.shape
    }

    /// Appends a row and returns its index: `append` decodes `values[i]` into column `i`'s builder.
    pub fn push<V, E>(
        &mut self,
        operation: Operation,
        values: &[V],
        mut append: impl FnMut(&mut S::Columns, &V) -> std::result::Result<(), E>,
    ) -> Result<usize>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let schema = self.shape.schema();
        let id = &schema.id;
        let columns = self.buffer.columns_mut();
        if values.len() != columns.len() {
            return Err(Error::state(format!(
                "a change to {id} has {} columns, the table's shape {}",
                values.len(),
                columns.len()
            )));
        }
        for ((builder, value), column) in columns.iter_mut().zip(values).zip(&schema.columns) {
            append(builder, value).map_err(|cause| {
                Error::state(format!("cannot decode column `{}` of a change to {id}", column.name))
                    .caused_by(cause)
                    .for_table(id)
            })?;
        }
        Ok(self.buffer.row_appended(operation))
    }

    /// Appends a TRUNCATE marker, a row of `null`s (the sink ignores its values).
    pub fn push_truncate<V: Clone, E>(
        &mut self,
        null: V,
        append: impl FnMut(&mut S::Columns, &V) -> std::result::Result<(), E>,
    ) -> Result<()>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let nulls = vec![null; self.shape.schema().columns.len()];
        self.push(Operation::Truncate, &nulls, append).map(drop)
    }

    /// Marks column `column` of row `row` unchanged: it keeps the value stored under the key of row `key_row`.
    pub fn mark_unchanged(&mut self, row: usize, column: usize, key_row: usize) {
        self.buffer.mark_unchanged(row, column, key_row);
    }

    /// Switches to a new shape; rows so far keep the old one.
    pub fn reshape(&mut self, shape: S) -> Result<()> {
        self.buffer.reshape(shape.schema().clone(), shape.new_columns())?;
        self.shape = shape;
        Ok(())
    }
}
