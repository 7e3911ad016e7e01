//! Reduces a change batch to the last operation per primary key, so one MERGE applies it.

use std::collections::HashMap;

use deltalake::arrow::array::{RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};

use crate::change::{ChangeBatch, Operation};

/// Rows that survive reduction, in source order, with their index in the original batch.
#[derive(Debug)]
pub(crate) struct ReducedChanges {
    pub rows: RecordBatch,
    /// Index into the original batch for each surviving row (to find its operation and transaction).
    pub origin: Vec<usize>,
}

/// Index of the first row after the batch's last TRUNCATE (0 when there is none).
pub(crate) fn rows_after_last_truncate(batch: &ChangeBatch) -> (usize, bool) {
    match batch.operations().iter().rposition(|op| *op == Operation::Truncate) {
        Some(index) => (index + 1, true),
        None => (0, false),
    }
}

/// Keeps, for every key, only its last change; drops everything before the last TRUNCATE.
pub(crate) fn last_change_per_key(batch: &ChangeBatch, key_columns: &[usize]) -> Result<ReducedChanges, ArrowError> {
    let (start, _) = rows_after_last_truncate(batch);
    let rows = batch.rows();
    let keys: Vec<_> = key_columns.iter().map(|&index| rows.column(index).clone()).collect();
    let converter = RowConverter::new(keys.iter().map(|array| SortField::new(array.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(&keys)?;
    let mut last_row_of_key: HashMap<&[u8], usize> = HashMap::with_capacity(rows.num_rows() - start);
    for row in start..rows.num_rows() {
        last_row_of_key.insert(encoded.row(row).data(), row);
    }
    let mut origin: Vec<usize> = last_row_of_key.into_values().collect();
    origin.sort_unstable();
    // Every key changed once (a large UPDATE, say): the rows are the batch's own, without a copy.
    if origin.len() == rows.num_rows() - start {
        return Ok(ReducedChanges { rows: rows.slice(start, origin.len()), origin });
    }
    let indices = UInt32Array::from_iter_values(origin.iter().map(|&row| row as u32));
    Ok(ReducedChanges { rows: take_record_batch(rows, &indices)?, origin })
}
