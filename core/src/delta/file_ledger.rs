//! The files a table's commits landed, kept beside the table so that a file source ingests each file once.
//!
//! Before a commit of transaction `version` that lands the last rows of some files, their records are written
//! to `<table>/_connector/files/<app id>/<version>.jsonl` (JSON lines, one [`IngestedFile`] each), exactly as
//! the cursor is recorded ([`cursor_record`](super::cursor_record)): the `txn` action of the commit, which
//! checkpoints keep, makes the record true. A record whose version is above the committed one belongs to a
//! commit that never happened (a crash between the write and the commit): it is never read, and the next
//! commit of that version overwrites it. Unlike cursor records, ledger records are kept: together they are
//! the set of files ingested, readable by any engine (`read_json('<table>/_connector/files/*/*.jsonl')`).
//!
//! A resync empties the table and voids the ledger with it: its commit of transaction `version` is preceded by a
//! marker `<version>.reset`, and the records at or below the newest committed marker are no longer read, so every
//! file listed is ingested again (a marker above the committed version is an orphan, removed like a record).

use deltalake::DeltaTable;
use deltalake::logstore::object_store::{self, ObjectStore, PutPayload};
use deltalake::{DeltaTableError, Path};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::ingested_file::IngestedFile;

/// The directory of the ledger, relative to the table's root.
const LEDGER_DIRECTORY: &str = "_connector/files";

/// Ledger records read at once when loading.
const PARALLEL_READS: usize = 16;

fn app_directory(app_id: &str) -> Path {
    let mut parts: Vec<object_store::path::PathPart<'_>> = LEDGER_DIRECTORY.split('/').map(Into::into).collect();
    parts.push(app_id.into());
    Path::from_iter(parts)
}

fn record_path(app_id: &str, version: i64) -> Path {
    app_directory(app_id).join(format!("{version:020}.jsonl"))
}

fn reset_path(app_id: &str, version: i64) -> Path {
    app_directory(app_id).join(format!("{version:020}{RESET_SUFFIX}"))
}

/// The name's ending of a resync's marker.
const RESET_SUFFIX: &str = ".reset";

/// What a file of the ledger's directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// The files a commit of this transaction version landed.
    Record(i64),
    /// A resync at this version voided the records at or below it.
    Reset(i64),
}

impl Entry {
    fn of(path: &Path) -> Option<Entry> {
        let name = path.filename()?;
        if let Some(version) = name.strip_suffix(".jsonl") {
            return version.parse().ok().map(Entry::Record);
        }
        name.strip_suffix(RESET_SUFFIX)?.parse().ok().map(Entry::Reset)
    }

    fn version(self) -> i64 {
        match self {
            Entry::Record(version) | Entry::Reset(version) => version,
        }
    }
}

fn store(table: &DeltaTable) -> std::sync::Arc<dyn ObjectStore> {
    table.log_store().object_store(None)
}

fn store_error(table: &DeltaTable, what: &str, cause: object_store::Error) -> Error {
    Error::destination(format!("{what} of {}", table.table_url()), DeltaTableError::ObjectStore { source: cause })
}

/// Records the files whose last rows the commit of transaction `version` is about to land.
pub(crate) async fn write(table: &DeltaTable, app_id: &str, version: i64, files: &[IngestedFile]) -> Result<()> {
    let mut lines = Vec::new();
    for file in files {
        let file = IngestedFile { txn_version: version, ..file.clone() };
        serde_json::to_writer(&mut lines, &file)
            .map_err(|cause| Error::state("cannot serialize an ingested file's record").caused_by(cause))?;
        lines.push(b'\n');
    }
    store(table)
        .put(&record_path(app_id, version), PutPayload::from(lines))
        .await
        .map_err(|cause| store_error(table, "cannot record the ingested files", cause))?;
    Ok(())
}

/// Before the commit of transaction `version` empties the table for a resync, voids the files recorded so far
/// (when there are any: tables no file source writes have no ledger).
pub(crate) async fn void_before_resync(table: &DeltaTable, app_id: &str, version: i64) -> Result<()> {
    let store = store(table);
    let mut listed = store.list(Some(&app_directory(app_id)));
    let any = listed.try_next().await.map_err(|cause| store_error(table, "cannot list the ingested files", cause))?;
    if any.is_some() {
        store
            .put(&reset_path(app_id, version), PutPayload::from_static(b""))
            .await
            .map_err(|cause| store_error(table, "cannot void the ingested files for the resync", cause))?;
    }
    Ok(())
}

/// Every file the commits of `app_id` up to transaction `committed` landed since the last resync, in no
/// particular order. Records of versions above it (commits that never happened) are removed.
pub(crate) async fn read(table: &DeltaTable, app_id: &str, committed: Option<i64>) -> Result<Vec<IngestedFile>> {
    let store = store(table);
    let listed: Vec<_> = store
        .list(Some(&app_directory(app_id)))
        .try_collect()
        .await
        .map_err(|cause| store_error(table, "cannot list the ingested files", cause))?;
    let (kept, orphans): (Vec<_>, Vec<_>) = listed
        .into_iter()
        .filter_map(|meta| Entry::of(&meta.location).map(|entry| (entry, meta.location)))
        .partition(|(entry, _)| committed.is_some_and(|committed| entry.version() <= committed));
    let reset = kept
        .iter()
        .filter_map(|(entry, _)| match entry {
            Entry::Reset(version) => Some(*version),
            Entry::Record(_) => None,
        })
        .max();
    let kept: Vec<_> = kept
        .into_iter()
        .filter(|(entry, _)| matches!(entry, Entry::Record(version) if reset.is_none_or(|reset| *version > reset)))
        .collect();
    for (_, orphan) in orphans {
        if let Err(cause) = store.delete(&orphan).await
            && !matches!(cause, object_store::Error::NotFound { .. })
        {
            return Err(store_error(table, "cannot remove the ingested files of a commit that never happened", cause));
        }
    }
    let records: Vec<Vec<IngestedFile>> = futures::stream::iter(kept)
        .map(|(_, location)| {
            let store = store.clone();
            async move {
                let bytes = store.get(&location).await?.bytes().await?;
                Ok::<_, object_store::Error>((location, bytes))
            }
        })
        .buffer_unordered(PARALLEL_READS)
        .map(|read| {
            let (location, bytes) =
                read.map_err(|cause| store_error(table, "cannot read the ingested files", cause))?;
            parse_record(&bytes).map_err(|cause| {
                Error::state(format!(
                    "the ingested files recorded in {location} of {} cannot be read; remove the table to ingest \
                     every file again",
                    table.table_url()
                ))
                .caused_by(cause)
            })
        })
        .try_collect()
        .await?;
    Ok(records.into_iter().flatten().collect())
}

fn parse_record(bytes: &[u8]) -> serde_json::Result<Vec<IngestedFile>> {
    serde_json::Deserializer::from_slice(bytes).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use deltalake::arrow::datatypes::DataType;

    use crate::delta::{DeltaSink, Destination};
    use crate::ingested_file::{IngestedFile, SourceFile};
    use crate::options::TableOptions;
    use crate::position::{SourcePosition, TokenCursor};
    use crate::schema::{Column, TableId, TableSchema};

    fn file(name: &str, rows: u64) -> IngestedFile {
        let file = SourceFile {
            path: format!("file:///landing/{name}"),
            size: rows * 10,
            modified: Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap(),
            etag: None,
        };
        IngestedFile::new(file, rows)
    }

    fn token(sequence: u64) -> SourcePosition {
        SourcePosition::Token(TokenCursor { sequence, token: Some(format!("after {sequence}")) })
    }

    fn paths(files: &[IngestedFile]) -> Vec<&str> {
        let mut paths: Vec<_> = files.iter().map(|ingested| ingested.file.path.as_str()).collect();
        paths.sort_unstable();
        paths
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_are_ingested_by_the_commit_that_records_them_and_only_by_it() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let destination = Destination::parse(&directory.path().display().to_string()).expect("a destination");
        let id = TableId::new("raw", "orders");
        let schema = TableSchema::new(id.clone(), vec![Column::new("id", DataType::Int64, "bigint")], Vec::new())
            .expect("a schema");
        let sink = DeltaSink::new(destination.clone(), "landing", Default::default());
        let mut writer = sink.open_table(&schema, TableOptions::default()).await.expect("created");
        assert!(writer.ingested_files().await.expect("an empty ledger").is_empty());

        writer.land_files_with_next_commit(vec![file("a.csv", 3), file("b.csv", 0)]);
        assert!(writer.advance_cursor(&token(1)).await.expect("committed"));
        // A commit landing no file records none.
        assert!(writer.advance_cursor(&token(2)).await.expect("committed"));
        writer.land_files_with_next_commit(vec![file("c.csv", 5)]);
        assert!(writer.advance_cursor(&token(3)).await.expect("committed"));
        let ingested = writer.ingested_files().await.expect("the ledger");
        assert_eq!(paths(&ingested), ["file:///landing/a.csv", "file:///landing/b.csv", "file:///landing/c.csv"]);
        let c = ingested.iter().find(|ingested| ingested.file.path.ends_with("c.csv")).expect("c.csv");
        assert_eq!((c.rows, c.txn_version), (5, writer.committed_state().expect("committed").txn_version));

        // A crash between a ledger record's write and its commit: the record of a version never committed.
        let orphan = format!("{:020}.jsonl", c.txn_version + 1);
        let ledger = directory.path().join("raw/orders/_connector/files");
        let app = std::fs::read_dir(&ledger).expect("the ledger").next().expect("an app id").expect("an entry");
        let record =
            std::fs::read_to_string(app.path().join(format!("{:020}.jsonl", c.txn_version))).expect("a record");
        std::fs::write(app.path().join(&orphan), record.replace("c.csv", "d.csv")).expect("an orphan");

        // A new process: the orphan is not ingested, and is removed before the next commit can take its version.
        let sink = DeltaSink::new(destination, "landing", Default::default());
        let mut reopened = sink.open_table(&schema, TableOptions::default()).await.expect("reopened");
        assert_eq!(paths(&reopened.ingested_files().await.expect("the ledger")).len(), 3);
        assert!(!app.path().join(&orphan).exists(), "the orphan record is removed");
        assert!(reopened.advance_cursor(&token(4)).await.expect("committed"));
        assert_eq!(reopened.ingested_files().await.expect("the ledger").len(), 3, "no file came with the commit");
    }
}
