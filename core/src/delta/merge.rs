//! Applies reduced changes to a keyed table with one MERGE per batch, in the table's delete mode.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::datatypes::{DataType, Field, SchemaRef};
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::prelude::{Expr, SessionContext, lit};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::merge::MergeBuilder;
use deltalake::{DeltaTable, DeltaTableError};

use super::key_ranges::key_range_predicate;
use super::reduce::{last_change_per_key, rows_after_last_truncate};
use super::table_rows::{MetadataValues, rows_for_table};
use crate::change::{ChangeBatch, Operation};
use crate::metadata_column::{
    COMMIT_TIME, DELETED, DELETED_AT, IS_CURRENT, OPERATION, POSITION, SYNCED_AT, VALID_FROM, VALID_TO,
};
use crate::options::DeleteMode;

const SOURCE: &str = "source";
const TARGET: &str = "target";
/// SCD2 helper column (not stored): `close` rows end the current version, `version` rows insert one.
const MERGE_ROLE: &str = "__merge_role";

/// Counts reported after a merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeCounts {
    pub source_rows: usize,
    pub inserted: usize,
    pub updated: usize,
    pub deleted: usize,
    pub files_added: usize,
    pub files_removed: usize,
    pub files_scanned: usize,
    pub files_skipped: usize,
}

pub(crate) struct MergeRequest<'a> {
    pub table: DeltaTable,
    pub table_schema: SchemaRef,
    pub batch: &'a ChangeBatch,
    pub key_columns: &'a [String],
    pub mode: DeleteMode,
    pub commit: CommitProperties,
    pub synced_at: DateTime<Utc>,
}

pub(crate) async fn merge_changes(request: MergeRequest<'_>) -> Result<(DeltaTable, MergeCounts), DeltaTableError> {
    let batch = request.batch;
    let key_indices: Vec<usize> =
        request
            .key_columns
            .iter()
            .map(|name| {
                batch.rows().schema().index_of(name).map_err(|_| {
                    DeltaTableError::Generic(format!("key column `{name}` is missing from the change batch"))
                })
            })
            .collect::<Result<_, _>>()?;
    let owners = batch.transaction_of_rows();
    let spans = batch.transactions();
    let position_of = |row: usize| Some(spans[owners[row]].position.to_string());
    let time_of = |row: usize| spans[owners[row]].commit_time;
    let (source, truncate_time) = match request.mode {
        DeleteMode::Hard | DeleteMode::Soft => {
            let reduced = last_change_per_key(batch, &key_indices)?;
            let operation = |row: usize| batch.operations()[row];
            let mut metadata = MetadataValues::default()
                .text(OPERATION, reduced.origin.iter().map(|&row| Some(operation(row).as_str().to_string())))
                .text(POSITION, reduced.origin.iter().map(|&row| position_of(row)))
                .time(COMMIT_TIME, reduced.origin.iter().map(|&row| Some(time_of(row))))
                .time(SYNCED_AT, reduced.origin.iter().map(|_| Some(request.synced_at)));
            if request.mode == DeleteMode::Soft {
                let deleted = |row: usize| operation(row) == Operation::Delete;
                metadata = metadata
                    .flag(DELETED, reduced.origin.iter().map(|&row| Some(deleted(row))))
                    .time(DELETED_AT, reduced.origin.iter().map(|&row| deleted(row).then(|| time_of(row))));
            }
            let truncate_time = reduced.truncated.then(|| last_truncate_time(batch, &owners));
            (rows_for_table(&request.table_schema, &reduced.rows, &metadata, vec![])?, truncate_time)
        }
        DeleteMode::History => {
            let truncate_time = rows_after_last_truncate(batch).1.then(|| last_truncate_time(batch, &owners));
            (history_rows(&request, &key_indices, &owners)?, truncate_time)
        }
    };
    let source_rows = source.num_rows();
    // With a TRUNCATE every target row is concerned, so no range may narrow the scan.
    let key_ranges = match (request.key_columns, truncate_time) {
        ([key], None) => source.column_by_name(key).and_then(|keys| key_range_predicate(keys, target(key))),
        _ => None,
    };
    let context = SessionContext::new();
    let frame = context.read_batch(source)?;
    let mut predicate = request
        .key_columns
        .iter()
        .map(|key| target(key).eq(source_column(key)))
        .reduce(Expr::and)
        .ok_or_else(|| DeltaTableError::Generic("a merge needs at least one key column".into()))?;
    if let Some(ranges) = key_ranges {
        predicate = predicate.and(ranges);
    }
    let columns: Vec<String> = request.table_schema.fields().iter().map(|field| field.name().clone()).collect();
    let builder = request
        .table
        .merge(
            frame,
            if request.mode == DeleteMode::History {
                predicate.and(target(IS_CURRENT).eq(lit(true))).and(source_column(MERGE_ROLE).eq(lit("close")))
            } else {
                predicate
            },
        )
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_commit_properties(request.commit)
        // DataFusion's default buffers row groups of a million rows per file being written.
        .with_writer_properties(super::snapshot_writer::parquet_properties());
    let builder = match request.mode {
        DeleteMode::Hard => hard_delete_clauses(builder, &columns, truncate_time.is_some())?,
        DeleteMode::Soft => soft_delete_clauses(builder, &columns, truncate_time)?,
        DeleteMode::History => history_clauses(builder, &columns, truncate_time)?,
    };
    let (table, metrics) = builder.await?;
    Ok((
        table,
        MergeCounts {
            source_rows,
            inserted: metrics.num_target_rows_inserted,
            updated: metrics.num_target_rows_updated,
            deleted: metrics.num_target_rows_deleted,
            files_added: metrics.num_target_files_added,
            files_removed: metrics.num_target_files_removed,
            files_scanned: metrics.num_target_files_scanned,
            files_skipped: metrics.num_target_files_skipped_during_scan,
        },
    ))
}

fn last_truncate_time(batch: &ChangeBatch, owners: &[usize]) -> DateTime<Utc> {
    let (after, _) = rows_after_last_truncate(batch);
    batch.transactions()[owners[after - 1]].commit_time
}

fn target(name: &str) -> Expr {
    Expr::Column(Column::new(Some(TARGET), name))
}

fn source_column(name: &str) -> Expr {
    Expr::Column(Column::new(Some(SOURCE), name))
}

fn unqualified(name: &str) -> Column {
    Column::new_unqualified(name)
}

fn is_delete() -> Expr {
    source_column(OPERATION).eq(lit(Operation::Delete.as_str()))
}

fn hard_delete_clauses(
    builder: MergeBuilder,
    columns: &[String],
    truncated: bool,
) -> Result<MergeBuilder, DeltaTableError> {
    let builder = builder
        .when_matched_delete(|delete| delete.predicate(is_delete()))?
        .when_matched_update(|update| {
            columns.iter().fold(update.predicate(Expr::Not(Box::new(is_delete()))), |update, name| {
                update.update(unqualified(name), source_column(name))
            })
        })?
        .when_not_matched_insert(|insert| {
            columns.iter().fold(insert.predicate(Expr::Not(Box::new(is_delete()))), |insert, name| {
                insert.set(unqualified(name), source_column(name))
            })
        })?;
    if truncated { builder.when_not_matched_by_source_delete(|delete| delete) } else { Ok(builder) }
}

fn soft_delete_clauses(
    builder: MergeBuilder,
    columns: &[String],
    truncate_time: Option<DateTime<Utc>>,
) -> Result<MergeBuilder, DeltaTableError> {
    let marks_deletion = [DELETED, DELETED_AT, OPERATION, POSITION, COMMIT_TIME, SYNCED_AT];
    let builder = builder
        .when_matched_update(|update| {
            marks_deletion.iter().fold(update.predicate(is_delete()), |update, name| {
                update.update(unqualified(name), source_column(name))
            })
        })?
        .when_matched_update(|update| {
            columns.iter().fold(update.predicate(Expr::Not(Box::new(is_delete()))), |update, name| {
                update.update(unqualified(name), source_column(name))
            })
        })?
        .when_not_matched_insert(|insert| {
            columns.iter().fold(insert.predicate(Expr::Not(Box::new(is_delete()))), |insert, name| {
                insert.set(unqualified(name), source_column(name))
            })
        })?;
    match truncate_time {
        None => Ok(builder),
        Some(time) => builder.when_not_matched_by_source_update(|update| {
            update
                .predicate(target(DELETED).is_not_true())
                .update(unqualified(DELETED), lit(true))
                .update(unqualified(DELETED_AT), timestamp_literal(time))
                .update(unqualified(OPERATION), lit(Operation::Truncate.as_str()))
        }),
    }
}

fn history_clauses(
    builder: MergeBuilder,
    columns: &[String],
    truncate_time: Option<DateTime<Utc>>,
) -> Result<MergeBuilder, DeltaTableError> {
    let builder = builder
        .when_matched_update(|update| {
            update.update(unqualified(VALID_TO), source_column(VALID_TO)).update(unqualified(IS_CURRENT), lit(false))
        })?
        .when_not_matched_insert(|insert| {
            columns.iter().fold(insert.predicate(source_column(MERGE_ROLE).eq(lit("version"))), |insert, name| {
                insert.set(unqualified(name), source_column(name))
            })
        })?;
    match truncate_time {
        None => Ok(builder),
        Some(time) => builder.when_not_matched_by_source_update(|update| {
            update
                .predicate(target(IS_CURRENT).is_true())
                .update(unqualified(VALID_TO), timestamp_literal(time))
                .update(unqualified(IS_CURRENT), lit(false))
        }),
    }
}

fn timestamp_literal(time: DateTime<Utc>) -> Expr {
    lit(deltalake::datafusion::scalar::ScalarValue::TimestampMicrosecond(
        Some(time.timestamp_micros()),
        Some(Arc::from("UTC")),
    ))
}

/// SCD type 2 source rows: one `close` row per changed key (ends its current version at the key's first
/// change) and one `version` row per insert or update, valid until the key's next change in the batch.
fn history_rows(
    request: &MergeRequest<'_>,
    key_indices: &[usize],
    owners: &[usize],
) -> Result<RecordBatch, DeltaTableError> {
    let batch = request.batch;
    let (start, _) = rows_after_last_truncate(batch);
    let rows = batch.rows();
    let keys: Vec<ArrayRef> = key_indices.iter().map(|&index| rows.column(index).clone()).collect();
    let converter = RowConverter::new(keys.iter().map(|key| SortField::new(key.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(&keys)?;
    let spans = batch.transactions();
    let time_of = |row: usize| spans[owners[row]].commit_time;

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
        (start..rows.num_rows()).filter(|&row| batch.operations()[row] != Operation::Delete).collect();

    let order: Vec<usize> = closers.iter().chain(&versions).copied().collect();
    let is_closer = |index: usize| index < closers.len();
    let indices = UInt32Array::from_iter_values(order.iter().map(|&row| row as u32));
    let selected = take_record_batch(rows, &indices)?;
    let metadata = MetadataValues::default()
        .text(OPERATION, order.iter().map(|&row| Some(batch.operations()[row].as_str().to_string())))
        .text(POSITION, order.iter().map(|&row| Some(spans[owners[row]].position.to_string())))
        .time(COMMIT_TIME, order.iter().map(|&row| Some(time_of(row))))
        .time(SYNCED_AT, order.iter().map(|_| Some(request.synced_at)))
        .time(VALID_FROM, order.iter().map(|&row| Some(time_of(row))))
        .time(
            VALID_TO,
            order
                .iter()
                .enumerate()
                .map(|(index, &row)| if is_closer(index) { Some(time_of(row)) } else { next_change[row].map(time_of) }),
        )
        .flag(
            IS_CURRENT,
            order.iter().enumerate().map(|(index, &row)| Some(!is_closer(index) && next_change[row].is_none())),
        );
    let role: ArrayRef = Arc::new(
        (0..order.len()).map(|index| Some(if is_closer(index) { "close" } else { "version" })).collect::<StringArray>(),
    );
    Ok(rows_for_table(
        &request.table_schema,
        &selected,
        &metadata,
        vec![(Field::new(MERGE_ROLE, DataType::Utf8, false), role)],
    )?)
}
