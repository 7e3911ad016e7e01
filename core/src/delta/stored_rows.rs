//! What a merge does to the rows stored in a file it rewrites, per delete mode: a row whose key changed is
//! dropped (its new version is written apart, or it was deleted), marked deleted (soft mode) or closed
//! (history mode); a TRUNCATE in the batch removes, marks or closes every other row too. The same rules as
//! the MERGE clauses in `merge`, applied to one batch of stored rows at a time.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, Scalar, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use deltalake::arrow::compute::kernels::zip::zip;
use deltalake::arrow::compute::{cast, filter_record_batch, take};
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{Row, RowConverter, Rows, SortField};

use super::merge_source::{MergeSource, SOFT_DELETE_COLUMNS};
use crate::change::Operation;
use crate::metadata_column::{DELETED, DELETED_AT, IS_CURRENT, OPERATION, VALID_TO};
use crate::options::DeleteMode;

/// The key columns of a batch of rows, with their values encoded to compare and hash as bytes.
pub(crate) struct EncodedKeys {
    pub arrays: Vec<ArrayRef>,
    pub converter: RowConverter,
    pub rows: Rows,
}

impl EncodedKeys {
    pub fn of(batch: &RecordBatch, key_columns: &[String]) -> Result<Self, ArrowError> {
        let arrays: Vec<ArrayRef> = key_columns
            .iter()
            .map(|name| batch.column_by_name(name).cloned())
            .collect::<Option<_>>()
            .ok_or_else(|| ArrowError::SchemaError(format!("the rows lack a key column of {key_columns:?}")))?;
        let converter =
            RowConverter::new(arrays.iter().map(|keys| SortField::new(keys.data_type().clone())).collect())?;
        let rows = converter.convert_columns(&arrays)?;
        Ok(EncodedKeys { arrays, converter, rows })
    }
}

/// The changed keys of a merge source, to find the stored rows they concern.
pub(crate) struct ChangedKeys<'a> {
    converter: &'a RowConverter,
    /// Source row of each changed key. Rows with a null key part match nothing, as in a MERGE.
    source_row_of_key: HashMap<Row<'a>, u32, foldhash::fast::RandomState>,
}

impl<'a> ChangedKeys<'a> {
    /// `encoded` holds the keys of the source's matching rows, encoded by `converter`; `key_arrays` the same
    /// keys as arrays (to skip nulls).
    pub fn new(converter: &'a RowConverter, encoded: &'a Rows, key_arrays: &[ArrayRef]) -> Self {
        let mut source_row_of_key = HashMap::with_capacity_and_hasher(encoded.num_rows(), Default::default());
        for row in 0..encoded.num_rows() {
            if key_arrays.iter().all(|keys| keys.is_valid(row)) {
                source_row_of_key.insert(encoded.row(row), row as u32);
            }
        }
        ChangedKeys { converter, source_row_of_key }
    }

    pub fn is_empty(&self) -> bool {
        self.source_row_of_key.is_empty()
    }

    /// For each stored row (given by its key columns), the source row changing it.
    pub fn matches(&self, stored_keys: &[ArrayRef]) -> Result<Vec<Option<u32>>, ArrowError> {
        let encoded = self.converter.convert_columns(stored_keys)?;
        Ok((0..encoded.num_rows())
            .map(|row| {
                let valid = stored_keys.iter().all(|keys| keys.is_valid(row));
                if valid { self.source_row_of_key.get(&encoded.row(row)).copied() } else { None }
            })
            .collect())
    }
}

/// Applies a merge source to stored rows, batch by batch, counting what it did.
pub(crate) struct StoredRowRewrite<'a> {
    pub source: &'a MergeSource,
    pub mode: DeleteMode,
    /// Positions of the key columns in the table's schema.
    pub key_positions: Vec<usize>,
    /// Which source rows matched a stored row (the others are inserts).
    pub matched_source_rows: Vec<bool>,
    pub updated: usize,
    pub deleted: usize,
}

impl<'a> StoredRowRewrite<'a> {
    pub fn new(source: &'a MergeSource, mode: DeleteMode, key_positions: Vec<usize>) -> Self {
        let matched_source_rows = vec![false; source.rows.num_rows()];
        StoredRowRewrite { source, mode, key_positions, matched_source_rows, updated: 0, deleted: 0 }
    }

    /// Whether the rows a change concerns must be read to apply it: soft and history modes keep them, marked;
    /// hard mode drops them, so knowing where they are is enough.
    pub fn needs_stored_rows(&self) -> bool {
        self.mode != DeleteMode::Hard
    }

    /// Counts stored rows dropped in hard mode without reading them, given the source row changing each.
    pub fn count_dropped(&mut self, source_rows: &[u32]) {
        for &source_row in source_rows {
            self.matched_source_rows[source_row as usize] = true;
        }
        self.tally_dropped(source_rows.iter().copied());
    }

    /// Counts dropped rows as updated or deleted, by the source row changing each (already marked matched).
    fn tally_dropped(&mut self, source_rows: impl IntoIterator<Item = u32>) {
        for source_row in source_rows {
            if self.source.is_delete(source_row as usize) {
                self.deleted += 1;
            } else {
                self.updated += 1;
            }
        }
    }

    /// The rows of `stored` (aligned to the table's schema) as they stay in the table.
    pub fn rewrite(&mut self, stored: RecordBatch, keys: &ChangedKeys<'_>) -> Result<RecordBatch, ArrowError> {
        let stored_keys: Vec<ArrayRef> =
            self.key_positions.iter().map(|&position| stored.column(position).clone()).collect();
        let matches = keys.matches(&stored_keys)?;
        for &source_row in matches.iter().flatten() {
            self.matched_source_rows[source_row as usize] = true;
        }
        match self.mode {
            // With a TRUNCATE every stored row goes: files are dropped without being read.
            DeleteMode::Hard => {
                let keep: BooleanArray = matches.iter().map(|matched| Some(matched.is_none())).collect();
                self.tally_dropped(matches.iter().flatten().copied());
                filter_record_batch(&stored, &keep)
            }
            DeleteMode::Soft => {
                let is_delete = |matched: &Option<u32>| matched.is_some_and(|row| self.source.is_delete(row as usize));
                let marked: Vec<Option<u32>> =
                    matches.iter().map(|matched| matched.filter(|_| is_delete(matched))).collect();
                let mut rows = stored;
                for name in SOFT_DELETE_COLUMNS {
                    rows = replace_from_source(rows, name, &marked, self.source)?;
                }
                let keep: BooleanArray =
                    matches.iter().map(|matched| Some(matched.is_none() || is_delete(matched))).collect();
                self.updated += matches.iter().flatten().count();
                if let Some(time) = self.source.truncate_time {
                    let deleted = flag_column(&rows, DELETED)?;
                    let unmarked: BooleanArray = matches
                        .iter()
                        .enumerate()
                        .map(|(row, matched)| Some(matched.is_none() && !is_true(&deleted, row)))
                        .collect();
                    self.updated += unmarked.true_count();
                    rows = replace_with(rows, DELETED, &unmarked, flag_value(true))?;
                    rows = replace_with(rows, DELETED_AT, &unmarked, time_value(time))?;
                    rows = replace_with(rows, OPERATION, &unmarked, text_value(Operation::Truncate.as_str()))?;
                }
                filter_record_batch(&rows, &keep)
            }
            DeleteMode::History => {
                let current = flag_column(&stored, IS_CURRENT)?;
                let closed: Vec<Option<u32>> = matches
                    .iter()
                    .enumerate()
                    .map(|(row, matched)| matched.filter(|_| is_true(&current, row)))
                    .collect();
                self.updated += closed.iter().flatten().count();
                let closed_mask: BooleanArray = closed.iter().map(|closer| Some(closer.is_some())).collect();
                let mut rows = replace_from_source(stored, VALID_TO, &closed, self.source)?;
                rows = replace_with(rows, IS_CURRENT, &closed_mask, flag_value(false))?;
                if let Some(time) = self.source.truncate_time {
                    let open: BooleanArray = matches
                        .iter()
                        .enumerate()
                        .map(|(row, matched)| Some(matched.is_none() && is_true(&current, row)))
                        .collect();
                    self.updated += open.true_count();
                    rows = replace_with(rows, VALID_TO, &open, time_value(time))?;
                    rows = replace_with(rows, IS_CURRENT, &open, flag_value(false))?;
                }
                Ok(rows)
            }
        }
    }
}

fn flag_column(rows: &RecordBatch, name: &str) -> Result<BooleanArray, ArrowError> {
    let flags = cast(column(rows, name)?, &DataType::Boolean)?;
    Ok(flags.as_boolean().clone())
}

fn is_true(flags: &BooleanArray, row: usize) -> bool {
    flags.is_valid(row) && flags.value(row)
}

fn column<'b>(rows: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, ArrowError> {
    rows.column_by_name(name).ok_or_else(|| ArrowError::SchemaError(format!("the table has no column `{name}`")))
}

/// Sets column `name` of the rows that have a source row to that source row's value.
fn replace_from_source(
    rows: RecordBatch,
    name: &str,
    source_rows: &[Option<u32>],
    source: &MergeSource,
) -> Result<RecordBatch, ArrowError> {
    if source_rows.iter().all(Option::is_none) {
        return Ok(rows);
    }
    let indices: UInt32Array = source_rows.iter().copied().collect();
    let values = take(column(&source.rows, name)?, &indices, None)?;
    let mask: BooleanArray = source_rows.iter().map(|row| Some(row.is_some())).collect();
    replace(rows, name, &mask, &values)
}

/// Sets column `name` of the rows selected by `mask` to `value` (a one-element array).
fn replace_with(
    rows: RecordBatch,
    name: &str,
    mask: &BooleanArray,
    value: ArrayRef,
) -> Result<RecordBatch, ArrowError> {
    if mask.true_count() == 0 {
        return Ok(rows);
    }
    let value = cast(&value, column(&rows, name)?.data_type())?;
    replace(rows, name, mask, &Scalar::new(value))
}

fn replace(
    rows: RecordBatch,
    name: &str,
    mask: &BooleanArray,
    values: &dyn deltalake::arrow::array::Datum,
) -> Result<RecordBatch, ArrowError> {
    let position = rows.schema().index_of(name)?;
    let mut columns = rows.columns().to_vec();
    let replaced = zip(mask, values, &columns[position])?;
    columns[position] = replaced;
    RecordBatch::try_new(rows.schema(), columns)
}

fn flag_value(value: bool) -> ArrayRef {
    Arc::new(BooleanArray::from(vec![value]))
}

fn text_value(value: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![value]))
}

fn time_value(time: DateTime<Utc>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![time.timestamp_micros()]).with_timezone("UTC"))
}
