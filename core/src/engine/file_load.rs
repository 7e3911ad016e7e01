//! A load: given files into a table in one commit (`connector load`, the upload page's "create a table from a
//! file"), creating the table, appending to it, replacing its rows or upserting them by key.

use std::sync::Arc;

use super::file_loop::{file_table_options, read_into_parquet, table_with_columns};
use super::file_source::FileSource;
use crate::cursor::TableCursor;
use crate::delta::{DeltaSink, MergeCounts};
use crate::error::{Error, Result};
use crate::ingested_file::SourceFile;
use crate::position::{SourcePosition, TokenCursor};
use crate::schema::TableSchema;

/// What a load does to its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadMode {
    /// Create the table; refuse if it already holds rows.
    Create,
    /// Add the rows to the table (created if missing), adding the columns it lacks.
    Append,
    /// Replace the table's rows (created if missing); its columns are kept and the new ones added.
    Overwrite,
    /// Upsert the rows on `key` (created if missing, columns added as by `Append`): a row replaces the table's
    /// rows with its key, or is inserted; of the loaded rows with one key, the last (files in load order, then
    /// rows in file order) is kept. A null key is refused. Loaded rows past `slice_bytes` are read back in
    /// slices of their keys, still one commit ([`merge_written_files`](crate::delta::DeltaTableWriter::merge_written_files)).
    Merge { key: Vec<String>, slice_bytes: u64 },
}

/// What a load wrote.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The table's source columns after the load.
    pub schema: TableSchema,
    pub files: usize,
    pub rows: u64,
    /// The Delta version of the load's commit (`None` when the files held no rows and nothing was committed).
    pub version: Option<u64>,
    /// What a merge load did (`None` for the other modes, and when nothing was committed).
    pub merged: Option<MergeCounts>,
}

/// Loads `files` into `source`'s table in one commit, `parallel` files read at once, each streamed into Parquet.
/// The files are recorded in the table's file ledger with the commit.
pub async fn load_files<S: FileSource>(
    source: Arc<S>,
    sink: &DeltaSink,
    files: Vec<SourceFile>,
    mode: LoadMode,
    parallel: usize,
) -> Result<LoadReport> {
    let id = source.table_id();
    if files.is_empty() {
        return Err(Error::config("no file to load: the paths given match no file"));
    }
    let mut options = file_table_options(source.as_ref());
    let mut existing = sink.open_existing(&id, options.clone()).await?;
    if matches!(mode, LoadMode::Create)
        && let Some(writer) = &existing
        && writer.table().version().is_some_and(|version| version > 0)
    {
        return Err(Error::config(format!(
            "{id} already exists; load with --mode append to add rows to it, or --mode overwrite to replace them"
        )));
    }
    let columns = existing.as_ref().map(|writer| writer.source_columns()).transpose()?;
    let mut schema = source.columns_for(&files, columns.as_deref()).await?;
    if let LoadMode::Merge { key, .. } = &mode {
        checked_merge_key(&schema, key)?;
        // The table is merged on the key as a CDC table on its primary key: the writer takes it from the options.
        schema.primary_key = key.clone();
        options.key = Some(key.clone());
        // Opened again with the key, which the writer checks the table has.
        if existing.is_some() {
            existing = sink.open_existing(&id, options.clone()).await?;
        }
    }
    let mut writer = table_with_columns(sink, existing, &schema, &options).await?;
    let (written, ingested) =
        read_into_parquet(&source, &writer, schema.clone(), &files, parallel).await.map_err(|failure| failure.error)?;
    let rows = ingested.iter().map(|file| file.rows).sum();
    let loaded = ingested.len();
    let Some(written) = written else {
        return Ok(LoadReport { schema, files: 0, rows: 0, version: None, merged: None });
    };
    let sequence = match writer.cursor().map(|cursor| &cursor.position) {
        Some(SourcePosition::Token(cursor)) => cursor.sequence + 1,
        _ => 1,
    };
    let cursor = TableCursor {
        position: SourcePosition::Token(TokenCursor { sequence, token: None }),
        snapshot: None,
        parts_of: None,
    };
    let file_order: Vec<String> = files.iter().map(|file| file.path.clone()).collect();
    writer.land_files_with_next_commit(ingested);
    let merged = match mode {
        LoadMode::Overwrite => writer.commit_files_replacing_all(written, cursor).await.map(|()| None)?,
        LoadMode::Create | LoadMode::Append => writer.commit_snapshot_files(written, cursor).await.map(|()| None)?,
        LoadMode::Merge { slice_bytes, .. } => {
            Some(writer.merge_written_files(written, &file_order, cursor, slice_bytes).await?)
        }
    };
    Ok(LoadReport { schema, files: loaded, rows, version: writer.table().version(), merged })
}

/// The key of a merge load must name columns the rows have.
fn checked_merge_key(schema: &TableSchema, key: &[String]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::config("--mode merge needs --key: the columns that identify a row, such as --key id"));
    }
    for name in key {
        if schema.column_index(name).is_none() {
            let names: Vec<&str> = schema.columns.iter().map(|column| column.name.as_str()).collect();
            return Err(Error::config(format!(
                "--key column `{name}` is not a column of the files loaded into {} (columns found: {}); give \
                 --key columns from that list",
                schema.id,
                names.join(", ")
            )));
        }
    }
    Ok(())
}
