//! Changes of one table gathered from the stream until they are committed to Delta: rows decoded from
//! pgoutput's binary values into the column builders of the table's shape ([`ShapedChanges`]), with the cells
//! an UPDATE left unchanged, which the Delta writer fills from the table.

use connector_core::engine::{DecodingShape, ShapedChanges};
use connector_core::position::Lsn;
use connector_core::schema::TableSchema;

use crate::codec::{ColumnBuilder, DecodeError};
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
pub type PendingChanges = ShapedChanges<TableShape, SkipBefore>;

/// Transactions that committed before this position are already in the table (its snapshot or an earlier run)
/// and are skipped as they arrive.
#[derive(Debug, Clone, Copy)]
pub struct SkipBefore(pub Lsn);

impl DecodingShape for TableShape {
    type Columns = ColumnBuilder;

    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    fn new_columns(&self) -> Vec<ColumnBuilder> {
        self.types.iter().map(|pg_type| ColumnBuilder::new(pg_type, 1024)).collect()
    }
}

/// Appends a value in binary form (`None` for NULL) to its column, as [`ShapedChanges::push`] asks.
pub fn append_binary_value(builder: &mut ColumnBuilder, value: &Option<&[u8]>) -> Result<(), DecodeError> {
    builder.append(*value)
}
