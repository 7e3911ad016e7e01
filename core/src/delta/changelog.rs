//! Keyless tables: every change is appended as a row of a changelog; a TRUNCATE empties the table.

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

use super::reduce::rows_after_last_truncate;
use super::table_rows::{MetadataValues, rows_for_table};
use crate::change::ChangeBatch;
use crate::metadata_column::{COMMIT_TIME, OPERATION, POSITION, SYNCED_AT};

pub(crate) async fn append_changes(
    table: DeltaTable,
    table_schema: &SchemaRef,
    batch: &ChangeBatch,
    commit: CommitProperties,
    synced_at: DateTime<Utc>,
) -> Result<(DeltaTable, usize), deltalake::DeltaTableError> {
    let (start, truncated) = rows_after_last_truncate(batch);
    let rows = batch.rows().slice(start, batch.len() - start);
    let owners = &batch.transaction_of_rows()[start..];
    let spans = batch.transactions();
    let metadata = MetadataValues::default()
        .text(OPERATION, batch.operations()[start..].iter().map(|op| Some(op.as_str().to_string())))
        .text(POSITION, owners.iter().map(|&owner| Some(spans[owner].position.to_string())))
        .time(COMMIT_TIME, owners.iter().map(|&owner| Some(spans[owner].commit_time)))
        .time(SYNCED_AT, owners.iter().map(|_| Some(synced_at)));
    let appended = rows_for_table(table_schema, &rows, &metadata, vec![])?;
    let count = appended.num_rows();
    let mode = if truncated { SaveMode::Overwrite } else { SaveMode::Append };
    let table = table.write(vec![appended]).with_save_mode(mode).with_commit_properties(commit).await?;
    Ok((table, count))
}
