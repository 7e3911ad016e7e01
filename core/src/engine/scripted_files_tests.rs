//! The files engine driven by a scripted store, no files: files that vanish between their listing and their
//! read, and files that turn out unreadable after some of their rows were encoded (sharing Parquet files with
//! good ones), with and without `ignore_corrupt_files`. The lake is compared with the files' rows after every
//! sync: each good file once, nothing of a file skipped or gone.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use deltalake::arrow::array::{Array, Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::prelude::SessionContext;

use super::temporary_lake::temporary_lake;
use super::*;
use crate::delta::DeltaSink;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::ingested_file::SourceFile;
use crate::options::{RowsOrigin, TableOptions};
use crate::pipeline::{Shutdown, SyncMode};
use crate::schema::{Column, TableId, TableSchema};

/// Rows per scripted file: enough for several writes per file.
const ROWS_PER_FILE: i64 = 3000;
const ROWS_PER_WRITE: i64 = 1000;

/// A scripted store: file `n` holds ids `n * ROWS_PER_FILE ..` up to `ROWS_PER_FILE` of them, at a version
/// (its size); some files are gone when read, some fail after their first write.
#[derive(Default)]
struct ScriptedStore {
    /// Listed files, by name, at their version.
    files: Mutex<BTreeMap<u32, u64>>,
    /// Listed, but deleted before they are read.
    vanishing: Mutex<HashSet<u32>>,
    /// Unreadable (at their current version): each read fails after its first rows.
    corrupt: Mutex<HashSet<u32>>,
}

impl ScriptedStore {
    fn with_files(names: impl IntoIterator<Item = u32>) -> Arc<Self> {
        let store = ScriptedStore::default();
        store.files.lock().expect("files").extend(names.into_iter().map(|name| (name, 1)));
        Arc::new(store)
    }

    fn source_file(name: u32, version: u64) -> SourceFile {
        SourceFile {
            path: format!("mem://landing/{name:04}.csv"),
            size: version,
            modified: Utc.timestamp_opt(1_700_000_000, 0).single().expect("a time"),
            etag: None,
        }
    }

    fn name_of(file: &SourceFile) -> u32 {
        file.path.trim_start_matches("mem://landing/").trim_end_matches(".csv").parse().expect("a scripted name")
    }
}

fn table_id() -> TableId {
    TableId::new("raw", "scripted")
}

/// A table of files' options, as the engine opens it.
fn files_options() -> TableOptions {
    TableOptions { rows_origin: RowsOrigin::Files, ..TableOptions::default() }
}

fn table_schema() -> TableSchema {
    TableSchema::new(table_id(), vec![Column::new("id", DataType::Int64, "bigint")], Vec::new()).expect("a schema")
}

impl FileSource for ScriptedStore {
    fn table_id(&self) -> TableId {
        table_id()
    }

    fn table_options(&self) -> TableOptions {
        TableOptions::default()
    }

    async fn list(&self, _committed: Option<&str>) -> Result<FileListing> {
        let files = self.files.lock().expect("files");
        let files = files.iter().map(|(&name, &version)| ScriptedStore::source_file(name, version)).collect();
        Ok(FileListing { files, token: String::new(), notifications: Vec::new(), more: false })
    }

    async fn columns_for(&self, _files: &[SourceFile], _existing: Option<&[Field]>) -> Result<TableSchema> {
        Ok(table_schema())
    }

    async fn read(&self, file: &SourceFile, _schema: &TableSchema, rows: &mut FileRows) -> Result<FileRead> {
        let name = ScriptedStore::name_of(file);
        if self.vanishing.lock().expect("vanishing").contains(&name) {
            return Ok(FileRead::Vanished);
        }
        let first = i64::from(name) * ROWS_PER_FILE;
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let mut start = first;
        while start < first + ROWS_PER_FILE {
            let ids = Int64Array::from_iter_values(start..start + ROWS_PER_WRITE);
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).expect("a batch");
            rows.write(&batch).await?;
            start += ROWS_PER_WRITE;
            if self.corrupt.lock().expect("corrupt").contains(&name) {
                // Some rows are in the reader's Parquet file already, beside those of the files it read before.
                tokio::task::yield_now().await;
                return Err(Error::new(
                    ErrorKind::BadInput,
                    Retry::No,
                    format!("cannot read {} as CSV: truncated", file.path),
                ));
            }
        }
        Ok(FileRead::Complete)
    }
}

struct Lake {
    directory: tempfile::TempDir,
    sink: DeltaSink,
}

impl Lake {
    fn new() -> Lake {
        let (directory, sink) = temporary_lake("files");
        Lake { directory, sink }
    }

    /// The ids the table holds, sorted, and how many times each file's first id appears.
    async fn ids(&self) -> Vec<i64> {
        let log = self.directory.path().join("raw").join("scripted").join("_delta_log/00000000000000000000.json");
        if !log.exists() {
            return Vec::new();
        }
        let writer = self.sink.open_table(&table_schema(), files_options()).await.expect("opened");
        let provider = writer.table().table_provider().await.expect("a provider");
        let mut ids = Vec::new();
        for batch in SessionContext::new().read_table(provider).expect("readable").collect().await.expect("rows") {
            let column = batch.column_by_name("id").expect("id");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("bigint ids");
            ids.extend((0..column.len()).map(|row| column.value(row)));
        }
        ids.sort_unstable();
        ids
    }

    async fn sync(&self, store: &Arc<ScriptedStore>, ignore_corrupt_files: bool) -> Result<()> {
        let settings = FileSettings {
            max_files_per_batch: 4,
            max_bytes_per_batch: u64::MAX,
            parallel_files: 2,
            poll_interval: Duration::from_secs(3600),
            reingest_changed_files: false,
            ignore_corrupt_files,
        };
        let (_trigger, shutdown) = Shutdown::new();
        ingest_files(std::slice::from_ref(store), &self.sink, settings, SyncMode::Once, shutdown).await?;
        Ok(())
    }
}

/// Every id of `files`, once, sorted.
fn ids_of(files: impl IntoIterator<Item = u32>) -> Vec<i64> {
    let mut ids: Vec<i64> = files
        .into_iter()
        .flat_map(|name| i64::from(name) * ROWS_PER_FILE..(i64::from(name) + 1) * ROWS_PER_FILE)
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_gone_between_listing_and_reading_is_not_recorded_and_lands_once_it_is_back() {
    let lake = Lake::new();
    let store = ScriptedStore::with_files(0..6);
    store.vanishing.lock().expect("vanishing").extend([1, 4]);
    lake.sync(&store, false).await.expect("a vanished file is not an error");
    assert_eq!(lake.ids().await, ids_of([0, 2, 3, 5]), "every file but the vanished ones, once");

    // Back (a retried upload): not in the ledger, so the next sync takes it, and only it.
    store.vanishing.lock().expect("vanishing").clear();
    lake.sync(&store, false).await.expect("synced");
    assert_eq!(lake.ids().await, ids_of(0..6), "each file once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_stops_its_batch_or_with_ignore_corrupt_files_is_skipped_and_recorded() {
    let lake = Lake::new();
    let store = ScriptedStore::with_files(0..10);
    store.corrupt.lock().expect("corrupt").extend([2, 9]);
    let error = lake.sync(&store, false).await.expect_err("an unreadable file stops the sync");
    assert_eq!(error.kind(), ErrorKind::BadInput, "{error}");
    assert!(error.to_string().contains("0002.csv"), "names the file: {error}");
    assert_eq!(lake.ids().await, Vec::<i64>::new(), "its batch (the first) left nothing");

    // Skipped: the rows each corrupt file had handed over before failing, and that its reader had encoded beside
    // good files' rows, are not in the table; every good file is, once.
    lake.sync(&store, true).await.expect("skipped");
    let good: Vec<u32> = (0..10).filter(|name| ![2, 9].contains(name)).collect();
    assert_eq!(lake.ids().await, ids_of(good.clone()), "the good files once, nothing of the skipped ones");
    let ledger = lake.sink.open_existing(&table_id(), files_options()).await.expect("opened");
    let mut skipped: Vec<String> = ledger
        .expect("a table")
        .ingested_files()
        .await
        .expect("the ledger")
        .into_iter()
        .filter(|file| file.skipped.as_deref().is_some_and(|reason| reason.contains("truncated")))
        .map(|file| file.file.path)
        .collect();
    skipped.sort();
    assert_eq!(skipped, ["mem://landing/0002.csv", "mem://landing/0009.csv"], "recorded as skipped, with why");

    // Listed again unchanged: skipped again without a read. Fixed in place (a new version): read, once.
    lake.sync(&store, false).await.expect("nothing to read: the skipped files are recorded");
    store.corrupt.lock().expect("corrupt").clear();
    store.files.lock().expect("files").insert(2, 2);
    lake.sync(&store, false).await.expect("the fixed file is read");
    let mut expected = good;
    expected.push(2);
    assert_eq!(lake.ids().await, ids_of(expected), "the fixed file lands once; the other skipped one waits");
}
