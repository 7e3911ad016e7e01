//! Source files as a file source lists them, and as the table's file ledger records them once their rows are
//! committed, so that each file is ingested once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A file as listed in its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Where the file is, as a URL (`file:///…`, `s3://bucket/key`): the same file is always named alike.
    pub path: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// The store's entity tag, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// One file whose rows a commit landed. A file listed again with the same `path` is already ingested;
/// [`same_version_as`](Self::same_version_as) tells a file rewritten in place from the one ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestedFile {
    #[serde(flatten)]
    pub file: SourceFile,
    /// Rows the file gave the table.
    pub rows: u64,
    /// The table's transaction version whose commit landed the file's rows (filled in when recorded).
    #[serde(default)]
    pub txn_version: i64,
    /// When the file was read, just before its commit (what `clean_source`'s retention counts from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingested_at: Option<DateTime<Utc>>,
    /// Why the file was skipped unread (`ignore_corrupt_files`): none of its rows are in the table. A new version
    /// of the file (fixed in place) is read again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl IngestedFile {
    pub fn new(file: SourceFile, rows: u64) -> Self {
        IngestedFile { file, rows, txn_version: 0, ingested_at: Some(Utc::now()), skipped: None }
    }

    /// A file skipped because it could not be read (`reason`), recorded so that it is not read again until it
    /// changes.
    pub fn skipped(file: SourceFile, reason: String) -> Self {
        IngestedFile { skipped: Some(reason), ..IngestedFile::new(file, 0) }
    }

    /// Whether `listed` is the version of the file ingested: the entity tags decide when both sides have one,
    /// else size and modification time.
    pub fn same_version_as(&self, listed: &SourceFile) -> bool {
        let ingested = &self.file;
        match (ingested.etag.as_deref(), listed.etag.as_deref()) {
            (Some(ours), Some(theirs)) => ours == theirs && ingested.size == listed.size,
            _ => ingested.size == listed.size && ingested.modified == listed.modified,
        }
    }
}
