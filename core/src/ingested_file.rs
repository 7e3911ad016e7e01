//! A source file whose rows a commit lands: what a file source records so that each file is ingested once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One file, as it was when its rows were read. A file listed again with the same `path` is already ingested;
/// `size`, `modified` and `etag` tell a file rewritten in place from the one ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestedFile {
    /// Where the file is, as the source names it (a URL: `file:///…`, `s3://bucket/key`).
    pub path: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// The store's entity tag, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Rows the file gave the table.
    pub rows: u64,
    /// The table's transaction version whose commit landed the file's last rows (filled in when recorded).
    #[serde(default)]
    pub txn_version: i64,
}

impl IngestedFile {
    /// Whether a file listed with this size, modification time and entity tag is the version ingested: the
    /// tags decide when both sides have one, else size and modification time.
    pub fn same_version_as(&self, size: u64, modified: DateTime<Utc>, etag: Option<&str>) -> bool {
        match (self.etag.as_deref(), etag) {
            (Some(ours), Some(theirs)) => ours == theirs && self.size == size,
            _ => self.size == size && self.modified == modified,
        }
    }
}
