//! The rows a batch of changes merges into a keyed table, in the table's delete mode, whichever merge
//! applies them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deltalake::DeltaTableError;
use deltalake::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::row::{RowConverter, SortField};

use super::reduce::{last_change_per_key, rows_after_last_truncate};
use super::table_rows::{MetadataValues, rows_for_table};
use crate::change::{ChangeBatch, Operation};
use crate::metadata_column::{
    COMMIT_TIME, DELETED, DELETED_AT, IS_CURRENT, OPERATION, POSITION, SYNCED_AT, VALID_FROM, VALID_TO,
};
use crate::options::DeleteMode;

/// The columns a soft delete sets on the key's row (the others keep the row's last values).
pub(crate) const SOFT_DELETE_COLUMNS: [&str; 6] = [DELETED, DELETED_AT, OPERATION, POSITION, COMMIT_TIME, SYNCED_AT];

/// Source rows in the table's schema, and what each does to the table.
///
/// Hard and soft mode: one row per changed key (its last change); it replaces the key's row, or deletes it
/// (hard) or marks it deleted (soft) when it is a delete. History mode: first one `close` row per changed
/// key, which ends the key's current version at the key's first change, then one `version` row per insert or
/// update, valid until the key's next change in the batch.
#[derive(Debug)]
pub(crate) struct MergeSource {
    pub rows: RecordBatch,
    /// The first `matching_rows` rows are matched against the table by key; the others only add versions.
    pub matching_rows: usize,
    /// Rows written to the table as new row versions (inserts and updates).
    pub written: BooleanArray,
    /// The commit time of the batch's last TRUNCATE: every row not matched must go (or be marked) too.
    pub truncate_time: Option<DateTime<Utc>>,
}

impl MergeSource {
    pub fn build(
        batch: &ChangeBatch,
        table_schema: &SchemaRef,
        key_columns: &[String],
        mode: DeleteMode,
        synced_at: DateTime<Utc>,
    ) -> Result<MergeSource, DeltaTableError> {
        let key_indices: Vec<usize> = key_columns
            .iter()
            .map(|name| {
                batch.rows().schema().index_of(name).map_err(|_| {
                    DeltaTableError::Generic(format!("key column `{name}` is missing from the change batch"))
                })
            })
            .collect::<Result<_, _>>()?;
        let owners = batch.transaction_of_rows();
        let (start, truncated) = rows_after_last_truncate(batch);
        let truncate_time = truncated.then(|| batch.transactions()[owners[start - 1]].commit_time);
        let context = SourceContext { batch, table_schema, owners: &owners, synced_at };
        let source = match mode {
            DeleteMode::Hard | DeleteMode::Soft => context.last_changes(&key_indices, mode)?,
            DeleteMode::History => context.history(&key_indices, start)?,
        };
        Ok(MergeSource { truncate_time, ..source })
    }

    /// Rows that are deletes (hard and soft mode): matched, but not written.
    pub fn is_delete(&self, row: usize) -> bool {
        row < self.matching_rows && !self.written.value(row)
    }
}

struct SourceContext<'a> {
    batch: &'a ChangeBatch,
    table_schema: &'a SchemaRef,
    /// The transaction of each batch row.
    owners: &'a [usize],
    synced_at: DateTime<Utc>,
}

impl SourceContext<'_> {
    fn position_of(&self, row: usize) -> Option<String> {
        Some(self.batch.transactions()[self.owners[row]].position.to_string())
    }

    fn time_of(&self, row: usize) -> DateTime<Utc> {
        self.batch.transactions()[self.owners[row]].commit_time
    }

    fn operation(&self, row: usize) -> Operation {
        self.batch.operations()[row]
    }

    fn last_changes(&self, key_indices: &[usize], mode: DeleteMode) -> Result<MergeSource, DeltaTableError> {
        let reduced = last_change_per_key(self.batch, key_indices)?;
        let origin = &reduced.origin;
        let mut metadata = MetadataValues::default()
            .text(OPERATION, origin.iter().map(|&row| Some(self.operation(row).as_str().to_string())))
            .text(POSITION, origin.iter().map(|&row| self.position_of(row)))
            .time(COMMIT_TIME, origin.iter().map(|&row| Some(self.time_of(row))))
            .time(SYNCED_AT, origin.iter().map(|_| Some(self.synced_at)));
        let deleted = |row: usize| self.operation(row) == Operation::Delete;
        if mode == DeleteMode::Soft {
            metadata = metadata
                .flag(DELETED, origin.iter().map(|&row| Some(deleted(row))))
                .time(DELETED_AT, origin.iter().map(|&row| deleted(row).then(|| self.time_of(row))));
        }
        Ok(MergeSource {
            rows: rows_for_table(self.table_schema, &reduced.rows, &metadata, vec![])?,
            matching_rows: origin.len(),
            written: origin.iter().map(|&row| Some(!deleted(row))).collect(),
            truncate_time: None,
        })
    }

    fn history(&self, key_indices: &[usize], start: usize) -> Result<MergeSource, DeltaTableError> {
        let rows = self.batch.rows();
        let keys: Vec<ArrayRef> = key_indices.iter().map(|&index| rows.column(index).clone()).collect();
        let converter = RowConverter::new(keys.iter().map(|key| SortField::new(key.data_type().clone())).collect())?;
        let encoded = converter.convert_columns(&keys)?;

        let mut next_change: Vec<Option<usize>> = vec![None; rows.num_rows()];
        let mut first_change_of_key: HashMap<&[u8], usize> = HashMap::new();
        let mut latest_of_key: HashMap<&[u8], usize> = HashMap::new();
        for row in start..rows.num_rows() {
            let key = encoded.row(row).data();
            first_change_of_key.entry(key).or_insert(row);
            if let Some(previous) = latest_of_key.insert(key, row) {
                next_change[previous] = Some(row);
            }
        }
        let mut closers: Vec<usize> = first_change_of_key.into_values().collect();
        closers.sort_unstable();
        let versions: Vec<usize> =
            (start..rows.num_rows()).filter(|&row| self.operation(row) != Operation::Delete).collect();

        let order: Vec<usize> = closers.iter().chain(&versions).copied().collect();
        let is_closer = |index: usize| index < closers.len();
        let indices = UInt32Array::from_iter_values(order.iter().map(|&row| row as u32));
        let selected = take_record_batch(rows, &indices)?;
        let metadata = MetadataValues::default()
            .text(OPERATION, order.iter().map(|&row| Some(self.operation(row).as_str().to_string())))
            .text(POSITION, order.iter().map(|&row| self.position_of(row)))
            .time(COMMIT_TIME, order.iter().map(|&row| Some(self.time_of(row))))
            .time(SYNCED_AT, order.iter().map(|_| Some(self.synced_at)))
            .time(VALID_FROM, order.iter().map(|&row| Some(self.time_of(row))))
            .time(
                VALID_TO,
                order.iter().enumerate().map(|(index, &row)| {
                    if is_closer(index) {
                        Some(self.time_of(row))
                    } else {
                        next_change[row].map(|next| self.time_of(next))
                    }
                }),
            )
            .flag(
                IS_CURRENT,
                order.iter().enumerate().map(|(index, &row)| Some(!is_closer(index) && next_change[row].is_none())),
            );
        Ok(MergeSource {
            rows: rows_for_table(self.table_schema, &selected, &metadata, vec![])?,
            matching_rows: closers.len(),
            written: (0..order.len()).map(|index| Some(!is_closer(index))).collect(),
            truncate_time: None,
        })
    }
}
