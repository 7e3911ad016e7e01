//! The contract between a file source and the engine.
//!
//! A file source lists files in a store (a local directory, a bucket) and reads each into rows. The engine
//! ([`ingest_files`](super::ingest_files)) skips the files the table's ledger says are ingested, reads the new
//! ones in batches, several files at a time, each file parsed on a task of its own and its rows encoded into
//! Parquet on another (the files one task reads in turn share its Parquet files), and commits each batch whole: its rows, its files in the ledger and the listing's token
//! in one Delta commit. A file is thus in the table entirely or not at all, and never twice.

use std::future::Future;
use std::sync::Arc;

use super::parquet_encoder::{EncodedRows, ReaderEncoders};
use crate::arrow::array::RecordBatch;
use crate::arrow::datatypes::Field;
use crate::error::Result;
use crate::ingested_file::{IngestedFile, SourceFile};
use crate::options::TableOptions;
use crate::schema::{TableId, TableSchema};

/// One table fed by files.
///
/// The guarantees rest on these promises:
/// - a file is named by the same `path` every time it is listed, and its size, modification time and entity
///   tag change when it is rewritten;
/// - `read` gives every row of the file, in the order of the file, or fails: rows it could not parse are kept
///   (say in a rescued-data column) or fail the read, never dropped;
/// - a source never records its progress anywhere but in the tokens the engine commits.
pub trait FileSource: Send + Sync + 'static {
    /// The table the files land in.
    fn table_id(&self) -> TableId;

    /// The table's options; the engine marks them as a table of files.
    fn table_options(&self) -> TableOptions;

    /// Lists the files to consider, given the token committed last (`None`: never listed). The engine ingests
    /// those not yet ingested, in the listing's order.
    fn list(&self, committed: Option<&str>) -> impl Future<Output = Result<FileListing>> + Send;

    /// Whether the source deletes or moves ingested files ([`clean_ingested`](Self::clean_ingested)); when not,
    /// the engine does not gather them.
    fn cleans_source(&self) -> bool {
        false
    }

    /// Given the listed files the ledger holds, as committed, a source may delete or move them (`clean_source`).
    /// Called at each pass, after the listing and before its new files are read, when
    /// [`cleans_source`](Self::cleans_source).
    fn clean_ingested(&self, files: &[&IngestedFile]) -> impl Future<Output = Result<()>> + Send {
        let _ = files;
        async { Ok(()) }
    }

    /// Acknowledges the notifications a listing came from ([`FileListing::notifications`]), once every file of
    /// the listing is committed (or was already). Must never be called, nor acknowledge anything, before.
    fn acknowledge(&self, notifications: Vec<String>) -> impl Future<Output = Result<()>> + Send {
        let _ = notifications;
        async { Ok(()) }
    }

    /// The table's source columns once rows of `files` land, given the columns the table has (`None`: the table
    /// does not exist yet, and is created with them). Columns are only ever added or widened.
    fn columns_for(
        &self,
        files: &[SourceFile],
        existing: Option<&[Field]>,
    ) -> impl Future<Output = Result<TableSchema>> + Send;

    /// Reads every row of `file` in `schema`'s columns into `rows`. A file gone since it was listed is
    /// [`FileRead::Vanished`], not an error.
    fn read(
        &self,
        file: &SourceFile,
        schema: &TableSchema,
        rows: &mut FileRows,
    ) -> impl Future<Output = Result<FileRead>> + Send;
}

/// The files a listing found, and where listing goes on from once they are ingested.
#[derive(Debug, Clone)]
pub struct FileListing {
    /// In the order to ingest them.
    pub files: Vec<SourceFile>,
    /// Committed with the last batch of the files this listing found new.
    pub token: String,
    /// The notifications (say, SQS receipt handles) the files came from, for [`FileSource::acknowledge`] once
    /// they are committed. Empty for a listing of the store.
    pub notifications: Vec<String>,
    /// The listing stopped short of what is waiting (a bound on notifications received at once): the engine
    /// lists again as soon as this listing's files are committed, in `--once` mode too.
    pub more: bool,
}

/// How reading a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRead {
    /// Every row was handed over.
    Complete,
    /// The file was deleted between listing and reading: nothing is recorded, so if it comes back it is read.
    Vanished,
}

/// Where a file's rows go: Parquet files of the table, committed with the rest of the batch. The rows are
/// encoded on tasks of their own while the source parses the next ones ([`ReaderEncoders`]); the files one
/// reader takes in turn share its Parquet files, so that small source files do not make small Parquet files.
#[derive(Debug)]
pub struct FileRows {
    encoders: ReaderEncoders,
    file: Arc<SourceFile>,
    rows: u64,
}

impl FileRows {
    /// The rows of `file`, encoded by `encoders` after those of the reader's files before it.
    pub(super) fn new(encoders: ReaderEncoders, file: SourceFile) -> Self {
        FileRows { encoders, file: Arc::new(file), rows: 0 }
    }

    /// Streams rows (the next ones of the file, in the table's source columns) into the table's files.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        self.write_at(rows, self.rows).await
    }

    /// Streams rows whose first is row `first_row` of the file (from 0) into the table's files: for a reader
    /// that reads parts of the file at once and hands them over as they finish.
    pub async fn write_at(&mut self, rows: &RecordBatch, first_row: u64) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let encoded = EncodedRows::OfFile { rows: rows.clone(), file: self.file.clone(), first_row };
        self.encoders.encode(encoded, &self.file.path).await?;
        self.rows += rows.num_rows() as u64;
        Ok(())
    }

    /// The rows of the file handed over so far: when they come in order, the number, from 0, of the next one.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// The encoders, for the reader's next file; the file and the rows handed over.
    pub(super) fn into_parts(self) -> (ReaderEncoders, SourceFile, u64) {
        let FileRows { encoders, file, rows } = self;
        (encoders, Arc::unwrap_or_clone(file), rows)
    }
}
