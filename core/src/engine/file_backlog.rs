//! What a file source's next sync would take: the files listed now that the table's ledger does not hold, and
//! what the ledger holds (`connector status`).

use serde::Serialize;

use super::file_loop::{FileState, file_state, open};
use super::file_source::FileSource;
use crate::delta::DeltaSink;
use crate::error::Result;
use crate::schema::TableId;

/// A table of files: what its ledger holds and what its source's listing adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileBacklog {
    pub table: TableId,
    /// Files whose rows the table holds (a file ingested again after a rewrite counts once).
    pub ingested_files: u64,
    pub ingested_bytes: u64,
    pub ingested_rows: u64,
    /// Files listed now that the next sync ingests.
    pub outstanding_files: u64,
    pub outstanding_bytes: u64,
    /// Files ingested, then rewritten in place, that the next sync skips because changed files are not
    /// re-ingested (they are counted as outstanding when they are).
    pub rewritten_files: u64,
    /// Files skipped unread because they could not be read (`ignore_corrupt_files`), with the reason; each is
    /// read again once it changes.
    pub skipped_files: Vec<SkippedFile>,
}

/// A file the table's ledger records as skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

/// Lists `source` in full and compares the listing with its table's ledger.
pub async fn file_backlog<S: FileSource>(
    source: &S,
    sink: &DeltaSink,
    reingest_changed_files: bool,
) -> Result<FileBacklog> {
    let table = open(source, sink).await?;
    // A full listing: an incremental one would leave out late files the next full listing takes.
    let listing = source.list(None).await?;
    let read = || table.ingested.values().filter(|file| file.skipped.is_none());
    let mut skipped_files: Vec<SkippedFile> = table
        .ingested
        .values()
        .filter_map(|file| Some(SkippedFile { path: file.file.path.clone(), reason: file.skipped.clone()? }))
        .collect();
    skipped_files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut backlog = FileBacklog {
        table: source.table_id(),
        ingested_files: read().count() as u64,
        ingested_bytes: read().map(|file| file.file.size).sum(),
        ingested_rows: read().map(|file| file.rows).sum(),
        outstanding_files: 0,
        outstanding_bytes: 0,
        rewritten_files: 0,
        skipped_files,
    };
    for file in &listing.files {
        match file_state(&table.ingested, file) {
            FileState::Ingested => {}
            FileState::Rewritten if !reingest_changed_files => backlog.rewritten_files += 1,
            FileState::New | FileState::Rewritten => {
                backlog.outstanding_files += 1;
                backlog.outstanding_bytes += file.size;
            }
        }
    }
    Ok(backlog)
}
