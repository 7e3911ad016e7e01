//! Cells a source left out of an UPDATE ([`UnchangedCell`]; PostgreSQL's unchanged TOASTed values, which
//! pgoutput sends as `u` and, with `REPLICA IDENTITY DEFAULT`, no old row carries either). The row must keep the
//! value it has, never null. It is taken from the key's latest earlier change in the same batch, or else from
//! the Delta table itself, which holds the key's current row (the change is newer than anything committed
//! there). An UPDATE that changed the key finds the value under the old key (the source pushes the old key's
//! delete just before the update). The batch merged is then complete, whatever the table's delete mode.
//!
//! One row may be missing for a reason other than a table out of step with its source: the replay of a
//! transaction whose first parts were committed before a crash (`TableCursor::parts_of`). Those parts hold the
//! transaction's later rows too, so a row updated early in it and deleted later is gone when the replay reaches
//! the update. Then the update is applied as the delete that follows it in the same transaction (a row of the
//! replayed transaction's own earlier rows would have been found), and the table ends as the source did.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, ArrayRef, RecordBatch};
use deltalake::arrow::compute::{cast, concat_batches, interleave};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::prelude::{Expr, SessionContext, col, lit};
use deltalake::datafusion::scalar::ScalarValue;

use crate::change::Operation;
use crate::change_buffer::UnchangedCell;
use crate::error::{Error, Result};
use crate::metadata_column::IS_CURRENT;
use crate::schema::TableSchema;

/// Keys looked up in one Delta query.
const KEYS_PER_LOOKUP: usize = 1000;

/// Where an unchanged cell's value comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// Another row of the batch.
    Batch(usize),
    /// A row of the Delta table, found by the key of batch row `key_row`; failing that, by the key of batch row
    /// `row`, the update's own: a replayed transaction whose first part was applied already moved the row there.
    Delta { key_row: usize, row: usize },
}

/// Fills every unchanged cell (nulls in `rows`) with the value the row had. With `replaying_parts` (the table
/// holds parts of a transaction after its cursor), an update whose row is not in the table becomes a delete.
pub(super) async fn fill_unchanged(
    table: &DeltaTable,
    schema: &TableSchema,
    rows: RecordBatch,
    operations: &mut [Operation],
    unchanged: &[UnchangedCell],
    replaying_parts: bool,
) -> Result<RecordBatch> {
    if unchanged.is_empty() {
        return Ok(rows);
    }
    let id = &schema.id;
    let key_indices: Vec<usize> = schema.primary_key.iter().filter_map(|key| schema.column_index(key)).collect();
    if key_indices.is_empty() {
        return Err(Error::schema(
            id,
            format!(
                "an UPDATE of {id} left a value out as unchanged, and {id} has no key to find it by: make the source \
                 send whole rows (PostgreSQL: `ALTER TABLE {id} REPLICA IDENTITY FULL`), then resync the table"
            ),
        ));
    }
    let internal = |cause: deltalake::arrow::error::ArrowError| {
        Error::state(format!("cannot restore unchanged values of {id}")).caused_by(cause)
    };
    let keys: Vec<ArrayRef> = key_indices.iter().map(|&index| rows.column(index).clone()).collect();
    let converter = RowConverter::new(keys.iter().map(|key| SortField::new(key.data_type().clone())).collect())
        .map_err(internal)?;
    let encoded = converter.convert_columns(&keys).map_err(internal)?;

    let mut columns: Vec<String> = unchanged.iter().map(|cell| cell.column.clone()).collect();
    columns.sort();
    columns.dedup();
    // Per unchanged cell (row, column index): the row whose key holds its value.
    let mut unchanged_cells: HashMap<(usize, usize), usize> = HashMap::new();
    for cell in unchanged {
        let column = columns.binary_search(&cell.column).map_err(|_| Error::state("unchanged column lost"))?;
        unchanged_cells.insert((cell.row, column), cell.key_row);
    }
    // Per key and column: where its latest value in the batch comes from.
    let mut latest: HashMap<(&[u8], usize), Origin> = HashMap::new();
    let mut origins: HashMap<(usize, usize), Origin> = HashMap::new();
    let mut delta_keys: Vec<usize> = Vec::new();
    for (row, operation) in operations.iter().enumerate() {
        match operation {
            Operation::Truncate => latest.clear(),
            Operation::Delete => {}
            Operation::Insert | Operation::Update => {
                let key = encoded.row(row).data();
                for column in 0..columns.len() {
                    let origin = match unchanged_cells.get(&(row, column)) {
                        Some(&key_row) => {
                            let origin = match latest.get(&(encoded.row(key_row).data(), column)) {
                                Some(origin) => *origin,
                                None => {
                                    delta_keys.extend([key_row, row]);
                                    Origin::Delta { key_row, row }
                                }
                            };
                            origins.insert((row, column), origin);
                            origin
                        }
                        None => Origin::Batch(row),
                    };
                    latest.insert((key, column), origin);
                }
            }
        }
    }
    delta_keys.sort_unstable();
    delta_keys.dedup();
    let found = current_rows(table, schema, &rows, &key_indices, &delta_keys, &columns).await?;
    // The found keys, encoded by the same converter as the batch's (cast first if Delta widened them).
    let mut found_position: HashMap<Vec<u8>, usize> = HashMap::new();
    if let Some(found_rows) = &found {
        let mut found_keys = Vec::with_capacity(key_indices.len());
        for (position, &index) in key_indices.iter().enumerate() {
            found_keys.push(cast(found_rows.column(position), rows.column(index).data_type()).map_err(internal)?);
        }
        let found_encoded = converter.convert_columns(&found_keys).map_err(internal)?;
        for row in 0..found_rows.num_rows() {
            found_position.insert(found_encoded.row(row).data().to_vec(), row);
        }
    }

    let mut output: Vec<ArrayRef> = rows.columns().to_vec();
    for (column, name) in columns.iter().enumerate() {
        let Some(index) = schema.column_index(name) else { continue };
        let batch_values = rows.column(index).clone();
        let delta_values = match &found {
            Some(found_rows) => {
                let values = found_rows
                    .column_by_name(name)
                    .ok_or_else(|| Error::state(format!("the Delta table of {id} has no column `{name}`")))?;
                cast(values, batch_values.data_type()).map_err(internal)?
            }
            None => deltalake::arrow::array::new_null_array(batch_values.data_type(), 0),
        };
        let mut indices = Vec::with_capacity(rows.num_rows());
        for (row, operation) in operations.iter_mut().enumerate() {
            indices.push(match origins.get(&(row, column)) {
                None => (0, row),
                Some(Origin::Batch(source)) => (0, *source),
                Some(Origin::Delta { key_row, row: updated }) => {
                    let stored = |at: usize| found_position.get(encoded.row(at).data());
                    match stored(*key_row).or_else(|| stored(*updated)) {
                        Some(position) => (1, *position),
                        None if replaying_parts => {
                            *operation = Operation::Delete;
                            (0, row)
                        }
                        None => {
                            return Err(Error::state(format!(
                                "an UPDATE of {id} left `{name}` unchanged, but its row is not in the Delta \
                                 table; resync the table (connector resync --table {id})"
                            ))
                            .for_table(id));
                        }
                    }
                }
            });
        }
        output[index] = interleave(&[batch_values.as_ref(), delta_values.as_ref()], &indices).map_err(internal)?;
    }
    RecordBatch::try_new(rows.schema(), output).map_err(internal)
}

async fn current_rows(
    table: &DeltaTable,
    schema: &TableSchema,
    rows: &RecordBatch,
    key_indices: &[usize],
    key_rows: &[usize],
    columns: &[String],
) -> Result<Option<RecordBatch>> {
    let id = &schema.id;
    if key_rows.is_empty() {
        return Ok(None);
    }
    let failed = |cause: deltalake::datafusion::error::DataFusionError| {
        Error::state(format!("cannot read unchanged values of {id} from its Delta table")).caused_by(cause)
    };
    let context = SessionContext::new();
    let provider = table
        .table_provider()
        .await
        .map_err(|cause| Error::state(format!("cannot read the Delta table of {id}")).caused_by(cause))?;
    let current = table.snapshot().ok().is_some_and(|state| state.schema().field(IS_CURRENT).is_some());
    let key_names: Vec<&str> = key_indices.iter().map(|&index| schema.columns[index].name.as_str()).collect();
    let mut selected: Vec<Expr> = key_names.iter().map(|name| col(quoted(name))).collect();
    selected.extend(columns.iter().map(|name| col(quoted(name))));
    let mut batches = Vec::new();
    for chunk in key_rows.chunks(KEYS_PER_LOOKUP) {
        let mut wanted: Option<Expr> = None;
        for &row in chunk {
            let mut matches: Option<Expr> = None;
            for (&index, name) in key_indices.iter().zip(&key_names) {
                let value = ScalarValue::try_from_array(rows.column(index), row).map_err(failed)?;
                let equal = col(quoted(name)).eq(lit(value));
                matches = Some(match matches {
                    Some(previous) => previous.and(equal),
                    None => equal,
                });
            }
            if let Some(matches) = matches {
                wanted = Some(match wanted {
                    Some(previous) => previous.or(matches),
                    None => matches,
                });
            }
        }
        let Some(mut filter) = wanted else { continue };
        if current {
            filter = filter.and(col(IS_CURRENT).eq(lit(true)));
        }
        let frame = context
            .read_table(provider.clone())
            .and_then(|frame| frame.filter(filter))
            .and_then(|frame| frame.select(selected.clone()))
            .map_err(failed)?;
        batches.extend(frame.collect().await.map_err(failed)?);
    }
    let Some(first) = batches.first() else { return Ok(None) };
    let found = concat_batches(&first.schema(), &batches)
        .map_err(|cause| Error::state(format!("cannot read unchanged values of {id}")).caused_by(cause))?;
    Ok(Some(found))
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
