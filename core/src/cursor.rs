//! The per-table cursor committed with the data: where the source stands for this table, and how far an
//! unfinished snapshot got.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::position::SourcePosition;

/// Progress of a table's initial snapshot, committed with each chunk so a crash resumes after the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// The connector's own description of what is done (for example the last key copied per range).
    pub resume_from: serde_json::Value,
    pub rows_copied: u64,
    /// Set once every row of the snapshot is committed.
    pub complete: bool,
    /// When the snapshot was taken at the source.
    pub taken_at: DateTime<Utc>,
}

impl SnapshotProgress {
    /// Progress of a snapshot copied in one piece, which has no resume point of its own.
    fn started(rows_copied: u64, complete: bool, taken_at: DateTime<Utc>) -> Self {
        SnapshotProgress { resume_from: serde_json::Value::Null, rows_copied, complete, taken_at }
    }
}

/// What the Delta log says about a table's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCursor {
    /// Every change at or below this position is in the table; a batch ending at or below it is skipped.
    pub position: SourcePosition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgress>,
    /// Set while the table holds parts of the transaction labelled so (one after `position`, too large to hold
    /// in memory) and not its end: replaying it from `position` may meet rows its committed parts changed or
    /// deleted since (see `DeltaTableWriter::apply_partial_transaction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_of: Option<SourcePosition>,
}

impl TableCursor {
    /// A snapshot starting over (a resync, or a source that lost its history): nothing copied yet.
    pub fn restarting(position: SourcePosition) -> Self {
        TableCursor { position, snapshot: Some(SnapshotProgress::started(0, false, Utc::now())), parts_of: None }
    }

    /// A snapshot taken at `position` and committed whole.
    pub fn copied(position: SourcePosition, rows_copied: u64, taken_at: DateTime<Utc>) -> Self {
        TableCursor { position, snapshot: Some(SnapshotProgress::started(rows_copied, true, taken_at)), parts_of: None }
    }

    pub fn snapshot_complete(&self) -> bool {
        self.snapshot.as_ref().is_none_or(|progress| progress.complete)
    }
}
