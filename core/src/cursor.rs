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

/// What the Delta log says about a table's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCursor {
    /// Every change at or below this position is in the table; a batch ending at or below it is skipped.
    pub position: SourcePosition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgress>,
}

impl TableCursor {
    pub fn snapshot_complete(&self) -> bool {
        self.snapshot.as_ref().is_none_or(|progress| progress.complete)
    }
}
