//! Moving a table's cursor forward without data: a source that reads from the oldest cursor of its tables (a
//! binlog) then does not read the same history again on every run, nor need history it has purged; an API
//! cursor moves past pages that held no record.

use deltalake::kernel::transaction::CommitBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};

use super::DeltaTableWriter;
use super::table_writer::CommitSize;
use crate::cursor::TableCursor;
use crate::error::{Error, Result};
use crate::position::SourcePosition;

impl DeltaTableWriter {
    /// Records that every change up to `position` is in the table (the source had none for it) in a commit
    /// without data. Does nothing while a snapshot is unfinished or when the cursor is already at or past
    /// `position`. Returns whether it committed.
    pub async fn advance_cursor(&mut self, position: &SourcePosition) -> Result<bool> {
        if let Some(state) = &self.committed {
            if !state.cursor.snapshot_complete() {
                return Ok(false);
            }
            let ahead = position
                .try_cmp(&state.cursor.position)
                .map_err(|cause| Error::state(format!("cannot advance the cursor of {}: {cause}", self.table_id)))?;
            if !ahead.is_gt() {
                return Ok(false);
            }
        }
        let snapshot = self.committed.as_ref().and_then(|state| state.cursor.snapshot.clone());
        let cursor = TableCursor { position: position.clone(), snapshot, parts_of: None };
        let (version, properties) = self.commit_properties_for(&cursor).await?;
        let snapshot =
            self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table state", cause))?;
        let finalized = CommitBuilder::from(properties)
            .with_actions(Vec::new())
            .build(
                Some(snapshot),
                self.table.log_store(),
                DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
            )
            .await
            .map_err(|cause| self.destination_error("cannot record the table's position", cause))?;
        self.table.state = Some(finalized.snapshot());
        self.record_commit(version, cursor, CommitSize { rows: Some(0), bytes: Some(0) }).await;
        Ok(true)
    }
}
