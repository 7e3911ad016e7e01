//! Changes of one table gathered from the binlog until they are committed to Delta: rows decoded from the
//! binlog's values into the column builders of the table's shape ([`ShapedChanges`]).

use connector_core::engine::{DecodingShape, ShapedChanges};
use connector_core::schema::TableSchema;
use mysql_async::Value;

use crate::codec::{ColumnBuilder, Origin, ValueError};
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
pub type PendingChanges = ShapedChanges<TableShape>;

impl DecodingShape for TableShape {
    type Columns = ColumnBuilder;

    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    fn new_columns(&self) -> Vec<ColumnBuilder> {
        self.types.iter().map(|mysql_type| ColumnBuilder::new(mysql_type, 1024)).collect()
    }
}

/// Appends a binlog value (`None` for NULL) to its column, as [`ShapedChanges::push`] asks.
pub fn append_binlog_value(builder: &mut ColumnBuilder, value: &Option<&Value>) -> Result<(), ValueError> {
    builder.append(*value, Origin::Binlog)
}
