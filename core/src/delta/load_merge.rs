//! A merge load (`connector load --mode merge --key …`): the rows a load wrote into Parquet files of the table
//! are read back and applied by the merge of change batches (`file_merge`: only the files whose key statistics
//! admit a loaded key are read, matched rows are marked deleted or their files rewritten), in one commit that
//! also records the load's files in the ledger. The written files only stage the rows: they are never
//! committed, and are deleted once the merge is done or failed.

use deltalake::DeltaTableError;
use deltalake::Path;
use deltalake::arrow::array::{BooleanArray, RecordBatch};
use deltalake::arrow::compute::concat_batches;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::Add;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::logstore::parquet_reader::ParquetObjectReader;
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use futures::TryStreamExt;
use tracing::{debug, warn};

use super::file_merge::{FileMergeRequest, merge_by_file_rewrite};
use super::file_selection::unreadable_layout;
use super::loaded_rows::last_row_per_key;
use super::merge::MergeCounts;
use super::merge_source::MergeSource;
use super::snapshot_writer::WrittenFiles;
use super::table_writer::DeltaTableWriter;
use crate::cursor::TableCursor;
use crate::error::{Error, Result};
use crate::options::DeleteMode;

impl DeltaTableWriter {
    /// Upserts the rows of `staged` (written by [`snapshot_files`](Self::snapshot_files) from the load's files,
    /// `file_order` their paths in load order) on the table's key, in one commit that also records `cursor` and
    /// the files to land ([`land_files_with_next_commit`](Self::land_files_with_next_commit)): a loaded row
    /// replaces every row of the table with its key, or is inserted; of the loaded rows of one key, the last
    /// one is kept. The loaded rows are held in memory (the table's files are streamed).
    pub async fn merge_written_files(
        &mut self,
        staged: WrittenFiles,
        file_order: &[String],
        cursor: TableCursor,
    ) -> Result<MergeCounts> {
        let store = self.table.log_store().object_store(None);
        let merged = self.merge_staged(&store, &staged, file_order, cursor).await;
        delete_staged(&store, &staged.adds).await;
        merged
    }

    async fn merge_staged(
        &mut self,
        store: &ObjectStoreRef,
        staged: &WrittenFiles,
        file_order: &[String],
        cursor: TableCursor,
    ) -> Result<MergeCounts> {
        if self.key_columns.is_empty() {
            return Err(Error::state(format!("internal: {} has no key to merge loaded rows on", self.table_id)));
        }
        let table_schema = self.arrow_schema()?;
        if table_schema != staged.table_schema {
            return Err(Error::state(format!(
                "the columns of {} changed while the load read its files; nothing was committed: load again",
                self.table_id
            )));
        }
        let state = self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table", cause))?;
        // The merge of change batches falls back on delta-rs's MERGE for these layouts, whose rules need the
        // change's operation column, which a table of files lacks. The connector creates neither.
        if let Some(layout) = unreadable_layout(state) {
            return Err(Error::config(format!(
                "{} has {layout}, which a merge load cannot read; load with --mode append or overwrite",
                self.table_id
            ))
            .for_table(&self.table_id));
        }
        let loaded = read_staged(store, &staged.adds, &table_schema)
            .await
            .map_err(|cause| self.destination_error("cannot read back the loaded rows", cause))?;
        let rows = last_row_per_key(loaded, &self.key_columns, file_order)?;
        let source = MergeSource {
            matching_rows: rows.num_rows(),
            written: BooleanArray::from(vec![true; rows.num_rows()]),
            truncate_time: None,
            rows,
        };
        let (version, properties) = self.commit_properties_for(&cursor).await?;
        let (table, counts) = merge_by_file_rewrite(FileMergeRequest {
            table: &self.table,
            source,
            key_columns: &self.key_columns,
            // Loaded rows replace or add rows, never delete them: hard mode's rules, with no delete among them.
            mode: DeleteMode::Hard,
            commit: properties,
            target_file_size: self.options.target_file_size,
        })
        .await
        .map_err(|cause| self.destination_error("cannot merge the loaded rows", cause))?;
        self.table = table;
        debug!(table = %self.table_id, version, ?counts, "merged loaded rows");
        self.record_commit(version, cursor).await;
        Ok(counts)
    }
}

/// Every row of the staged files, in the table's columns.
async fn read_staged(store: &ObjectStoreRef, adds: &[Add], schema: &SchemaRef) -> Result<RecordBatch, DeltaTableError> {
    let mut batches = Vec::new();
    for add in adds {
        let size = u64::try_from(add.size).unwrap_or_default();
        let reader = ParquetObjectReader::new(store.clone(), staged_path(add)).with_file_size(size);
        let stream = ParquetRecordBatchStreamBuilder::new(reader).await?.build()?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    // The staged files hold the table's columns as the load wrote them (their own schema, field metadata included).
    let schema = batches.first().map_or_else(|| schema.clone(), RecordBatch::schema);
    Ok(concat_batches(&schema, &batches)?)
}

/// Deletes the staged files; one left behind (a failed delete, a crash) is unreferenced, as an abandoned
/// snapshot's files are, until a VACUUM.
async fn delete_staged(store: &ObjectStoreRef, adds: &[Add]) {
    for add in adds {
        let path = staged_path(add);
        if let Err(cause) = store.delete(&path).await {
            warn!(file = %path, error = %cause, "cannot delete a file that staged loaded rows; VACUUM removes it");
        }
    }
}

fn staged_path(add: &Add) -> Path {
    Path::from_url_path(&add.path).unwrap_or_else(|_| Path::from(add.path.as_str()))
}
