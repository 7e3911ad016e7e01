//! Row images of a rows event (before and after each change) decoded into a table's pending changes.

use connector_core::change::Operation;
use connector_core::error::{Error, Result};
use connector_core::schema::TableId;
use mysql_async::Value;
use mysql_async::binlog::events::{RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;

use crate::changes::{PendingChanges, append_binlog_value};
use crate::json_text::mysql_json_text;

/// Decodes a rows event's row images into `pending`, the changes of table `id`, whose table map is `map`:
/// inserts take the after image, deletes the before image, updates the after image, preceded by a delete of the
/// before image when the update changed the key.
///
/// The one decoder of the row images a server sends, public so that the fuzz targets (`fuzz/`) feed it bytes
/// no server would.
pub fn push_rows(
    pending: &mut PendingChanges,
    rows: &RowsEventData<'_>,
    map: &TableMapEvent<'_>,
    id: &TableId,
) -> Result<()> {
    let key_columns: Vec<usize> = {
        let schema = &pending.shape().schema;
        schema.primary_key.iter().filter_map(|key| schema.column_index(key)).collect()
    };
    let operation = match rows {
        RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => Operation::Insert,
        RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => Operation::Update,
        RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Operation::Delete,
        RowsEventData::PartialUpdateRowsEvent(_) => {
            return Err(Error::config(format!(
                "{id} is written with partial JSON updates (binlog_row_value_options=PARTIAL_JSON), which do not \
                 carry whole rows: set binlog_row_value_options='' on the server, then resync the table"
            )));
        }
    };
    for row in rows.rows(map) {
        let (before, after) =
            row.map_err(|cause| Error::state(format!("cannot decode a row of {id}")).caused_by(cause).for_table(id))?;
        let before = before.map(|row| row_values(row, id)).transpose()?;
        let after = after.map(|row| row_values(row, id)).transpose()?;
        match (operation, before, after) {
            (Operation::Delete, Some(before), _) => {
                pending.push(Operation::Delete, &as_refs(&before), append_binlog_value)?;
            }
            (Operation::Update, Some(before), Some(after)) => {
                // A changed key: the row under the old key is gone.
                if key_columns.iter().any(|&column| before.get(column) != after.get(column)) {
                    pending.push(Operation::Delete, &as_refs(&before), append_binlog_value)?;
                }
                pending.push(Operation::Update, &as_refs(&after), append_binlog_value)?;
            }
            (_, _, Some(after)) => {
                pending.push(Operation::Insert, &as_refs(&after), append_binlog_value)?;
            }
            _ => return Err(Error::state(format!("a rows event of {id} lacks a row image"))),
        }
    }
    Ok(())
}

/// A row image's values; MySQL's binary JSON becomes its text.
fn row_values(mut row: BinlogRow, table: &TableId) -> Result<Vec<Option<Value>>> {
    (0..row.len())
        .map(|index| match row.take(index) {
            None | Some(BinlogValue::Value(Value::NULL)) => Ok(None),
            Some(BinlogValue::Value(value)) => Ok(Some(value)),
            Some(BinlogValue::Jsonb(json)) => {
                let text = mysql_json_text(json).map_err(|cause| {
                    Error::state(format!("cannot decode a JSON value of {table}")).caused_by(cause).for_table(table)
                })?;
                Ok(Some(Value::Bytes(text.into_bytes())))
            }
            Some(BinlogValue::JsonDiff(_)) => Err(Error::config(format!(
                "{table} carries partial JSON updates: set binlog_row_value_options='' on the server, then resync it"
            ))),
        })
        .collect()
}

fn as_refs(values: &[Option<Value>]) -> Vec<Option<&Value>> {
    values.iter().map(Option::as_ref).collect()
}
