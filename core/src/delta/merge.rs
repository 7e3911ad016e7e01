//! Applies a merge source with delta-rs's MERGE, in the table's delete mode: the fallback for tables whose
//! files the file rewrite cannot read as they are (see `file_merge`). MERGE holds every file it reads until it
//! has seen a change for it, so its memory follows the files it touches rather than the change.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::prelude::{Expr, SessionContext, lit};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::merge::MergeBuilder;
use deltalake::{DeltaTable, DeltaTableError};

use super::key_ranges::key_range_predicate;
use super::merge_commit::commit_merge;
use super::merge_source::{MergeSource, SOFT_DELETE_COLUMNS};
use crate::change::Operation;
use crate::metadata_column::{DELETED, DELETED_AT, IS_CURRENT, OPERATION, VALID_TO};
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
    /// Files whose changed rows were marked deleted (a deletion vector) instead of rewriting them.
    pub files_marked: usize,
    pub files_scanned: usize,
    pub files_skipped: usize,
    /// The slices of its keys a merge load read its rows back in, to stay within its memory (0 for other
    /// merges, 1 when held whole).
    pub key_slices: usize,
}

pub(crate) struct MergeRequest<'a> {
    pub table: DeltaTable,
    pub source: MergeSource,
    pub key_columns: &'a [String],
    pub mode: DeleteMode,
    pub commit: CommitProperties,
}

pub(crate) async fn merge_changes(request: MergeRequest<'_>) -> Result<(DeltaTable, MergeCounts), DeltaTableError> {
    let MergeSource { rows, matching_rows, truncate_time, .. } = request.source;
    let source_rows = rows.num_rows();
    // With a TRUNCATE every target row is concerned, so no range may narrow the scan.
    let key_ranges = match (request.key_columns, truncate_time) {
        ([key], None) => rows.column_by_name(key).and_then(|keys| key_range_predicate(keys, target(key))),
        _ => None,
    };
    let columns: Vec<String> = rows.schema().fields().iter().map(|field| field.name().clone()).collect();
    let source = if request.mode == DeleteMode::History {
        let role: ArrayRef = Arc::new(
            (0..source_rows)
                .map(|row| Some(if row < matching_rows { "close" } else { "version" }))
                .collect::<StringArray>(),
        );
        let mut fields: Vec<Field> = rows.schema().fields().iter().map(|field| field.as_ref().clone()).collect();
        fields.push(Field::new(MERGE_ROLE, DataType::Utf8, false));
        let mut arrays = rows.columns().to_vec();
        arrays.push(role);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?
    } else {
        rows
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
    let cursor_commit = request.commit.clone();
    let read_version = request.table.version();
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
        .with_writer_properties(super::column_compression::parquet_properties());
    let builder = match request.mode {
        DeleteMode::Hard => hard_delete_clauses(builder, &columns, truncate_time.is_some())?,
        DeleteMode::Soft => soft_delete_clauses(builder, &columns, truncate_time)?,
        DeleteMode::History => history_clauses(builder, &columns, truncate_time)?,
    };
    let (table, metrics) = builder.await?;
    // MERGE makes no commit when no file changed; the batch's cursor must still be committed.
    let table = if table.version() == read_version {
        commit_merge(&table, Vec::new(), cursor_commit, request.key_columns, None).await?
    } else {
        table
    };
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
            files_marked: 0,
            key_slices: 0,
        },
    ))
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
    let builder = builder
        .when_matched_update(|update| {
            SOFT_DELETE_COLUMNS.iter().fold(update.predicate(is_delete()), |update, name| {
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
