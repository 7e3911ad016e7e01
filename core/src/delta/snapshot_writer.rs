//! Streams a table's initial snapshot into large Parquet files with bounded memory. The connectors commit a
//! table's whole copy at once, so a crash mid-copy leaves nothing visible and the copy starts over.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::DeltaTableWriter;
use super::column_compression::{ByteArrayEncoding, parquet_properties, parquet_properties_for};
use super::table_rows::{MetadataValues, rows_for_table};
use crate::cursor::TableCursor;
use crate::error::{Error, Result};
use crate::metadata_column::{COMMIT_TIME, DELETED, IS_CURRENT, OPERATION, POSITION, SYNCED_AT, VALID_FROM};
use crate::options::DeleteMode;
use crate::position::SourcePosition;

/// Writes snapshot rows of one table. Nothing is visible to readers until [`SnapshotWriter::commit`].
///
/// Rows can be written in parts (key ranges copied in parallel): each part goes to Parquet files of its own,
/// so files stay clustered by key, and one commit adds every part's files.
pub struct SnapshotWriter<'a> {
    table: &'a mut DeltaTableWriter,
    /// One writer per part; part 0 is the default.
    writers: Vec<RecordBatchWriter>,
    /// Settings judged from the first rows written (which columns to compress); `None` until then.
    properties: Option<WriterProperties>,
    rows_since_commit: u64,
    position: String,
    taken_at: DateTime<Utc>,
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
        let writer = new_part_writer(table, parquet_properties())?;
        Ok(SnapshotWriter {
            table,
            writers: vec![writer],
            properties: None,
            rows_since_commit: 0,
            position: position.to_string(),
            taken_at,
        })
    }

    /// Encoded bytes written since the last commit; callers commit a chunk when this grows large.
    pub fn bytes_since_commit(&self) -> usize {
        self.writers.iter().map(RecordBatchWriter::buffer_len).sum()
    }

    pub fn rows_since_commit(&self) -> u64 {
        self.rows_since_commit
    }

    /// Streams rows (the table's source columns) into the open Parquet file.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        self.write_part(0, rows).await
    }

    /// Streams rows of one part (say a key range) into that part's own Parquet files.
    pub async fn write_part(&mut self, part: usize, rows: &RecordBatch) -> Result<()> {
        while self.writers.len() <= part {
            let writer = new_part_writer(self.table, self.properties.clone().unwrap_or_else(parquet_properties))?;
            self.writers.push(writer);
        }
        let taken_at = self.taken_at;
        let count = rows.num_rows();
        let now = Utc::now();
        let mut metadata = MetadataValues::default()
            .same_text(OPERATION, "snapshot", count)
            .same_text(POSITION, &self.position, count)
            .same_time(COMMIT_TIME, taken_at, count)
            .same_time(SYNCED_AT, now, count);
        match self.table.options.delete_mode {
            DeleteMode::Hard => {}
            DeleteMode::Soft => metadata = metadata.same_flag(DELETED, false, count),
            DeleteMode::History => {
                metadata = metadata.same_time(VALID_FROM, taken_at, count).same_flag(IS_CURRENT, true, count);
            }
        }
        let table_schema = self.writers[part].arrow_schema();
        if let Some(field) =
            rows.schema().fields().iter().find(|field| table_schema.field_with_name(field.name()).is_err())
        {
            return Err(Error::state(format!(
                "internal: snapshot rows of {} carry column `{}`, which its Delta table lacks",
                self.table.table_id,
                field.name()
            )));
        }
        let batch = rows_for_table(&table_schema, rows, &metadata, vec![]).map_err(|cause| {
            Error::schema(
                &self.table.table_id,
                format!("snapshot rows of {} do not fit its Delta schema", self.table.table_id),
            )
            .caused_by(cause)
        })?;
        if self.properties.is_none() {
            // The first rows decide which columns are worth compressing; the writers have written nothing yet.
            let state = self
                .table
                .table
                .snapshot()
                .map_err(|cause| self.table.destination_error("cannot read the table state", cause))?;
            let properties = parquet_properties_for(&batch, ByteArrayEncoding::for_table(state));
            for writer in &mut self.writers {
                *writer = new_part_writer(self.table, properties.clone())?;
            }
            self.properties = Some(properties);
        }
        self.writers[part]
            .write(batch)
            .await
            .map_err(|cause| self.table.destination_error("cannot write snapshot rows", cause))?;
        self.rows_since_commit += count as u64;
        Ok(())
    }

    /// Finishes the open files and commits them together with `cursor` (which records snapshot progress).
    pub async fn commit(&mut self, cursor: TableCursor) -> Result<()> {
        let mut adds = Vec::new();
        for writer in &mut self.writers {
            adds.extend(
                writer
                    .flush()
                    .await
                    .map_err(|cause| self.table.destination_error("cannot finish snapshot files", cause))?,
            );
        }
        let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        let table = &mut self.table;
        let (version, properties) = table.commit_properties_for(&cursor).await?;
        let snapshot =
            table.table.snapshot().map_err(|cause| table.destination_error("cannot read the table state", cause))?;
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(
                Some(snapshot),
                table.table.log_store(),
                DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
            )
            .await
            .map_err(|cause| table.destination_error("cannot commit snapshot rows", cause))?;
        table.table.state = Some(finalized.snapshot());
        table.record_commit(version, cursor).await;
        self.rows_since_commit = 0;
        Ok(())
    }

    /// Abandons rows written since the last commit; their files stay unreferenced until a VACUUM.
    pub fn abandon(mut self) {
        for writer in &mut self.writers {
            writer.reset();
        }
    }
}

fn new_part_writer(table: &DeltaTableWriter, properties: WriterProperties) -> Result<RecordBatchWriter> {
    Ok(RecordBatchWriter::for_table(&table.table)
        .map_err(|cause| table.destination_error("cannot start the snapshot writer", cause))?
        .with_target_file_size(table.options.target_file_size)
        .with_writer_properties(properties))
}
