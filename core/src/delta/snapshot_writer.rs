//! Streams a table's snapshot rows into large Parquet files with bounded memory. The connectors commit a
//! table's whole copy at once, so a crash mid-copy leaves nothing visible and the copy starts over; a chunk of a
//! copy in chunks is written on its reader's task ([`SnapshotFiles`]) and committed by the stream when it
//! reaches the chunk's position.

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::DeltaTableError;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, StructType};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::DeltaTableWriter;
use super::column_compression::{ValueEncodings, parquet_properties, parquet_properties_for};
use super::evolution::plan_evolution;
use super::table_rows::{MetadataValues, rows_for_table};
use super::table_writer::CommitSize;
use crate::cursor::TableCursor;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::ingested_file::SourceFile;
use crate::metadata_column::{
    COMMIT_TIME, DELETED, FILE_MODIFIED, FILE_PATH, FILE_ROW, FILE_SIZE, IS_CURRENT, OPERATION, POSITION, SYNCED_AT,
    VALID_FROM,
};
use crate::options::{DeleteMode, TableOptions};
use crate::position::SourcePosition;
use crate::schema::{TableId, TableSchema};

/// Writes snapshot rows of one table. Nothing is visible to readers until [`SnapshotWriter::commit`].
///
/// Rows can be written in parts (key ranges copied in parallel): each part goes to Parquet files of its own,
/// so files stay clustered by key, and one commit adds every part's files.
pub struct SnapshotWriter<'a> {
    table: &'a mut DeltaTableWriter,
    files: SnapshotFiles,
}

impl std::fmt::Debug for SnapshotWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter").field("table", &self.table.table_id).finish_non_exhaustive()
    }
}

impl<'a> SnapshotWriter<'a> {
    pub(super) fn new(
        table: &'a mut DeltaTableWriter,
        position: &SourcePosition,
        taken_at: DateTime<Utc>,
    ) -> Result<Self> {
        let mut files = SnapshotFiles::new(table, taken_at)?;
        files.positioned(position);
        Ok(SnapshotWriter { table, files })
    }

    /// Encoded bytes written since the last commit; callers commit a chunk when this grows large.
    pub fn bytes_since_commit(&self) -> usize {
        self.files.bytes()
    }

    pub fn rows_since_commit(&self) -> u64 {
        self.files.rows
    }

    /// Streams rows (the table's source columns) into the open Parquet file.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        self.files.write_part(0, rows).await
    }

    /// Streams rows of one part (say a key range) into that part's own Parquet files.
    pub async fn write_part(&mut self, part: usize, rows: &RecordBatch) -> Result<()> {
        self.files.write_part(part, rows).await
    }

    /// Finishes the open files and commits them together with `cursor` (which records snapshot progress).
    pub async fn commit(&mut self, cursor: TableCursor) -> Result<()> {
        let written = self.files.finish().await?;
        self.table.commit_snapshot_files(written, cursor).await
    }

    /// Abandons rows written since the last commit; their files stay unreferenced until a VACUUM.
    pub fn abandon(self) {
        self.files.abandon();
    }
}

/// Snapshot rows of a table being written into Parquet files, detached from the table's writer so that it runs
/// on a task of its own (a chunk's reader) while the table goes on taking changes. The files are added to the
/// table by [`DeltaTableWriter::commit_snapshot_files`], provided the table's columns did not change meanwhile.
pub struct SnapshotFiles {
    table: DeltaTable,
    table_id: TableId,
    options: TableOptions,
    /// The Delta table's columns (source and metadata) the files are written with.
    table_schema: SchemaRef,
    /// The same in Delta's terms, and the pipeline writing, to judge whether rows fit.
    delta_schema: StructType,
    pipeline: String,
    /// One writer per part; part 0 is the default.
    writers: Vec<RecordBatchWriter>,
    /// Settings judged from the first rows written (which columns to compress); `None` until then.
    properties: Option<WriterProperties>,
    rows: u64,
    position: String,
    taken_at: DateTime<Utc>,
}

impl std::fmt::Debug for SnapshotFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFiles").field("table", &self.table_id).field("rows", &self.rows).finish_non_exhaustive()
    }
}

/// Files written by [`SnapshotFiles`], to commit.
#[derive(Debug)]
pub struct WrittenFiles {
    pub(super) adds: Vec<Add>,
    pub(super) table_schema: SchemaRef,
    pub rows: u64,
}

impl WrittenFiles {
    /// Takes in the files another writer of the same table wrote (another source file's rows), to commit both
    /// at once.
    pub fn absorb(&mut self, other: WrittenFiles) -> Result<()> {
        if other.table_schema != self.table_schema {
            return Err(Error::state("internal: files written with different columns cannot be committed together"));
        }
        self.adds.extend(other.adds);
        self.rows += other.rows;
        Ok(())
    }
}

impl SnapshotFiles {
    pub(super) fn new(table: &DeltaTableWriter, taken_at: DateTime<Utc>) -> Result<Self> {
        Ok(SnapshotFiles {
            table: table.table.clone(),
            table_id: table.table_id.clone(),
            options: table.options.clone(),
            table_schema: table.arrow_schema()?,
            delta_schema: table.delta_schema()?,
            pipeline: table.pipeline().to_string(),
            writers: Vec::new(),
            properties: None,
            rows: 0,
            position: String::new(),
            taken_at,
        })
    }

    /// Sets the source position the rows are consistent with (their metadata column), before they are written.
    pub fn positioned(&mut self, position: &SourcePosition) {
        self.position = position.to_string();
    }

    /// Whether rows of `schema` (the source's columns) fit the Delta table's columns as they were when the
    /// writer was made, with no column to add or widen.
    pub fn fits(&self, schema: &TableSchema) -> Result<bool> {
        Ok(plan_evolution(&self.table_id, &self.pipeline, &self.delta_schema, &schema.arrow_schema())?.is_empty())
    }

    fn bytes(&self) -> usize {
        self.writers.iter().map(RecordBatchWriter::buffer_len).sum()
    }

    /// Streams rows of one part (say a key range) into that part's own Parquet files.
    pub async fn write_part(&mut self, part: usize, rows: &RecordBatch) -> Result<()> {
        let taken_at = self.taken_at;
        let count = rows.num_rows();
        let now = Utc::now();
        let mut metadata = MetadataValues::default()
            .same_text(OPERATION, "snapshot", count)
            .same_text(POSITION, &self.position, count)
            .same_time(COMMIT_TIME, taken_at, count)
            .same_time(SYNCED_AT, now, count);
        match self.options.delete_mode {
            DeleteMode::Hard => {}
            DeleteMode::Soft => metadata = metadata.same_flag(DELETED, false, count),
            DeleteMode::History => {
                metadata = metadata.same_time(VALID_FROM, taken_at, count).same_flag(IS_CURRENT, true, count);
            }
        }
        self.write_with(part, rows, &metadata).await
    }

    /// Streams rows of a source file into the table's files ([`RowsOrigin::Files`](crate::options::RowsOrigin)):
    /// `first_row` is the number of the first of them within `file`.
    pub async fn write_file_rows(&mut self, rows: &RecordBatch, file: &SourceFile, first_row: u64) -> Result<()> {
        let count = rows.num_rows();
        let metadata = MetadataValues::default()
            .same_text(FILE_PATH, &file.path, count)
            .same_number(FILE_SIZE, i64::try_from(file.size).unwrap_or(i64::MAX), count)
            .same_time(FILE_MODIFIED, file.modified, count)
            .counting_from(FILE_ROW, i64::try_from(first_row).unwrap_or(i64::MAX), count)
            .same_time(SYNCED_AT, Utc::now(), count);
        self.write_with(0, rows, &metadata).await
    }

    async fn write_with(&mut self, part: usize, rows: &RecordBatch, metadata: &MetadataValues) -> Result<()> {
        while self.writers.len() <= part {
            let writer = self.new_part_writer(self.properties.clone().unwrap_or_else(parquet_properties))?;
            self.writers.push(writer);
        }
        let count = rows.num_rows();
        let table_schema = self.writers[part].arrow_schema();
        if let Some(field) =
            rows.schema().fields().iter().find(|field| table_schema.field_with_name(field.name()).is_err())
        {
            return Err(Error::state(format!(
                "internal: snapshot rows of {} carry column `{}`, which its Delta table lacks",
                self.table_id,
                field.name()
            )));
        }
        let batch = rows_for_table(&table_schema, rows, metadata, vec![]).map_err(|cause| {
            Error::schema(&self.table_id, format!("snapshot rows of {} do not fit its Delta schema", self.table_id))
                .caused_by(cause)
        })?;
        if self.properties.is_none() {
            // The first rows decide which columns are worth compressing; the writers have written nothing yet.
            let state =
                self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table state", cause))?;
            let properties = parquet_properties_for(&batch, ValueEncodings::for_table(state));
            for part in 0..self.writers.len() {
                self.writers[part] = self.new_part_writer(properties.clone())?;
            }
            self.properties = Some(properties);
        }
        let written = self.writers[part].write(batch).await;
        written.map_err(|cause| self.destination_error("cannot write snapshot rows", cause))?;
        self.rows += count as u64;
        Ok(())
    }

    /// Finishes the open files, to commit.
    pub async fn finish(&mut self) -> Result<WrittenFiles> {
        let mut adds = Vec::new();
        for part in 0..self.writers.len() {
            let flushed = self.writers[part].flush().await;
            adds.extend(flushed.map_err(|cause| self.destination_error("cannot finish snapshot files", cause))?);
        }
        let rows = std::mem::take(&mut self.rows);
        Ok(WrittenFiles { adds, table_schema: self.table_schema.clone(), rows })
    }

    /// Abandons the rows written; their files stay unreferenced until a VACUUM.
    pub fn abandon(mut self) {
        for writer in &mut self.writers {
            writer.reset();
        }
    }

    fn new_part_writer(&self, properties: WriterProperties) -> Result<RecordBatchWriter> {
        Ok(RecordBatchWriter::for_table(&self.table)
            .map_err(|cause| self.destination_error("cannot start the snapshot writer", cause))?
            .with_target_file_size(self.options.target_file_size)
            .with_writer_properties(properties))
    }

    fn destination_error(&self, what: &str, cause: DeltaTableError) -> Error {
        Error::destination(format!("{what} for {} at {}", self.table_id, self.table.table_url()), cause)
            .for_table(&self.table_id)
    }
}

impl DeltaTableWriter {
    /// A writer of snapshot rows taken at `taken_at` into files of this table, for a task of its own; the rows
    /// must [fit](SnapshotFiles::fits) the table's columns.
    pub fn snapshot_files(&self, taken_at: DateTime<Utc>) -> Result<SnapshotFiles> {
        SnapshotFiles::new(self, taken_at)
    }

    /// Adds `files` to the table in one commit together with `cursor` (which records snapshot progress). The
    /// table's columns must be those the files were written with: if they changed meanwhile, nothing is
    /// committed and the error is retryable (the next sync reads the rows again).
    pub async fn commit_snapshot_files(&mut self, files: WrittenFiles, cursor: TableCursor) -> Result<()> {
        self.commit_written_files(files, cursor, false).await
    }

    /// [`commit_snapshot_files`](Self::commit_snapshot_files) that also removes every file the table holds, in
    /// the same commit: the table's rows are replaced at once, never seen empty or half written.
    pub async fn commit_files_replacing_all(&mut self, files: WrittenFiles, cursor: TableCursor) -> Result<()> {
        self.commit_written_files(files, cursor, true).await
    }

    async fn commit_written_files(&mut self, files: WrittenFiles, cursor: TableCursor, replace: bool) -> Result<()> {
        if self.arrow_schema()? != files.table_schema {
            return Err(Error::new(
                ErrorKind::Schema,
                Retry::WithBackoff,
                format!(
                    "the columns of {} changed while snapshot rows were written for it; nothing was committed and \
                     the next sync reads those rows again",
                    self.table_id
                ),
            )
            .for_table(&self.table_id));
        }
        let snapshot =
            self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table state", cause))?;
        let mut actions: Vec<Action> = Vec::new();
        if replace {
            actions.extend(snapshot.log_data().iter().map(|file| Action::Remove(file.remove_action(true))));
        }
        let size = CommitSize {
            rows: Some(files.rows),
            bytes: Some(files.adds.iter().map(|add| add.size.max(0) as u64).sum()),
        };
        actions.extend(files.adds.into_iter().map(Action::Add));
        let mode = if replace { SaveMode::Overwrite } else { SaveMode::Append };
        let (version, properties) = self.commit_properties_for(&cursor).await?;
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(
                Some(snapshot),
                self.table.log_store(),
                DeltaOperation::Write { mode, partition_by: None, predicate: None },
            )
            .await
            .map_err(|cause| self.destination_error("cannot commit snapshot rows", cause))?;
        self.table.state = Some(finalized.snapshot());
        self.record_commit(version, cursor, size).await;
        Ok(())
    }
}
