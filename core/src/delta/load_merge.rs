//! A merge load (`connector load --mode merge --key …`): the rows a load wrote into Parquet files of the table
//! are read back and applied in one commit that also records the load's files in the ledger. Within a memory
//! budget they are applied by the merge of change batches (`file_merge`: only the files whose key statistics
//! admit a loaded key are read, matched rows are marked deleted or their files rewritten); past it, they are
//! read back in slices of the keys and applied by `sliced_replace`, still in one commit. The written files
//! only stage the rows: they are never committed, and are deleted once the merge is done or failed.

use deltalake::DeltaTableError;
use deltalake::Path;
use std::hash::BuildHasher;

use deltalake::arrow::array::{BooleanArray, RecordBatch};
use deltalake::arrow::compute::{concat_batches, filter_record_batch};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::Add;
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::logstore::parquet_reader::ParquetObjectReader;
use deltalake::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::basic::Type as PhysicalType;
use deltalake::parquet::file::metadata::ColumnChunkMetaData;
use foldhash::fast::FixedState;
use futures::TryStreamExt;
use tracing::{debug, warn};

use super::file_merge::{FileMergeRequest, merge_by_file_rewrite};
use super::file_selection::unreadable_layout;
use super::loaded_rows::last_row_per_key;
use super::merge::MergeCounts;
use super::merge_source::MergeSource;
use super::sliced_replace::SlicedReplace;
use super::snapshot_writer::WrittenFiles;
use super::stored_rows::EncodedKeys;
use super::table_writer::CommitSize;
use super::table_writer::DeltaTableWriter;
use crate::cursor::TableCursor;
use crate::error::{Error, Result};
use crate::options::DeleteMode;

/// Loaded rows (their size uncompressed, as their Parquet files report it) merged in one commit by default: the
/// merge holds them, their keys and an index of them, a few times this.
pub const DEFAULT_MERGE_SLICE_BYTES: u64 = 128 * 1024 * 1024;

impl DeltaTableWriter {
    /// Upserts the rows of `staged` (written by [`snapshot_files`](Self::snapshot_files) from the load's files,
    /// `file_order` their paths in load order) on the table's key, recording `cursor` and the files to land
    /// ([`land_files_with_next_commit`](Self::land_files_with_next_commit)): a loaded row replaces every row of
    /// the table with its key, or is inserted; of the loaded rows of one key, the last one is kept.
    ///
    /// Loaded rows up to `slice_bytes` are held in memory at once (the table's files are streamed). More are
    /// read back in slices of their keys (by a hash of the key, so that every row of a key is in one slice),
    /// each of about `slice_bytes`, written and matched against the table one after the other, and committed
    /// together: whatever the load's size, readers see all of it or none of it.
    pub async fn merge_written_files(
        &mut self,
        staged: WrittenFiles,
        file_order: &[String],
        cursor: TableCursor,
        slice_bytes: u64,
    ) -> Result<MergeCounts> {
        let store = self.table.log_store().object_store(None);
        let merged = self.merge_staged(&store, &staged, file_order, cursor, slice_bytes).await;
        delete_staged(&store, &staged.adds).await;
        merged
    }

    async fn merge_staged(
        &mut self,
        store: &ObjectStoreRef,
        staged: &WrittenFiles,
        file_order: &[String],
        cursor: TableCursor,
        slice_bytes: u64,
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
        let slices = slice_count(store, &staged.adds, slice_bytes)
            .await
            .map_err(|cause| self.destination_error("cannot read back the loaded rows", cause))?;
        let read_slice = |index: usize| {
            let slice = KeySlice { index, of: slices, key_columns: &self.key_columns };
            self.read_staged_slice(store, &staged.adds, &table_schema, slice)
        };
        if slices == 1 {
            let loaded = read_slice(0).await?;
            let counts = self.merge_loaded(loaded, file_order, cursor).await?;
            return Ok(MergeCounts { key_slices: 1, ..counts });
        }
        let mut replace = SlicedReplace::new(&self.table, &self.key_columns, self.options.target_file_size)
            .map_err(|cause| self.destination_error("cannot read the table", cause))?;
        for index in 0..slices {
            let rows = last_row_per_key(read_slice(index).await?, &self.key_columns, file_order)?;
            replace
                .add_slice(rows)
                .await
                .map_err(|cause| self.destination_error("cannot merge the loaded rows", cause))?;
        }
        let (version, properties) = self.commit_properties_for(&cursor).await?;
        let (table, mut counts) = replace
            .commit(properties)
            .await
            .map_err(|cause| self.destination_error("cannot merge the loaded rows", cause))?;
        self.table = table;
        counts.key_slices = slices;
        debug!(table = %self.table_id, version, ?counts, "merged loaded rows in slices");
        self.record_commit(version, cursor, CommitSize::merged(&counts)).await;
        Ok(counts)
    }

    async fn read_staged_slice(
        &self,
        store: &ObjectStoreRef,
        adds: &[Add],
        schema: &SchemaRef,
        slice: KeySlice<'_>,
    ) -> Result<RecordBatch> {
        read_staged(store, adds, schema, &slice)
            .await
            .map_err(|cause| self.destination_error("cannot read back the loaded rows", cause))
    }

    /// Merges loaded rows (every row of their keys) in one commit.
    async fn merge_loaded(
        &mut self,
        loaded: RecordBatch,
        file_order: &[String],
        cursor: TableCursor,
    ) -> Result<MergeCounts> {
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
        self.record_commit(version, cursor, CommitSize::merged(&counts)).await;
        Ok(counts)
    }
}

/// The rows of one of `of` slices of the keys: those whose key hashes to `index`.
struct KeySlice<'a> {
    index: usize,
    of: usize,
    key_columns: &'a [String],
}

impl KeySlice<'_> {
    /// `rows` of this slice (all of them when there is one slice).
    fn of_rows(&self, rows: RecordBatch) -> Result<RecordBatch, DeltaTableError> {
        if self.of == 1 {
            return Ok(rows);
        }
        let encoded = EncodedKeys::of(&rows, self.key_columns)?.rows;
        // A fixed seed: every batch of every staged file must send a key to the same slice.
        let hasher = FixedState::with_seed(SLICE_SEED);
        let (of, index) = (self.of as u64, self.index as u64);
        let in_slice: BooleanArray =
            (0..encoded.num_rows()).map(|row| Some(hasher.hash_one(encoded.row(row).data()) % of == index)).collect();
        Ok(filter_record_batch(&rows, &in_slice)?)
    }
}

const SLICE_SEED: u64 = 0x51_1ce5;

/// How many slices the staged rows are merged in: their size in memory ([`in_memory_bytes`], from the Parquet
/// footers) over `slice_bytes`, at least one.
async fn slice_count(store: &ObjectStoreRef, adds: &[Add], slice_bytes: u64) -> Result<usize, DeltaTableError> {
    let mut bytes = 0_u64;
    for add in adds {
        let size = u64::try_from(add.size).unwrap_or_default();
        let reader = ParquetObjectReader::new(store.clone(), staged_path(add)).with_file_size(size);
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
        bytes +=
            builder.metadata().row_groups().iter().flat_map(|group| group.columns()).map(in_memory_bytes).sum::<u64>();
    }
    Ok(usize::try_from(bytes.div_ceil(slice_bytes.max(1))).unwrap_or(usize::MAX).max(1))
}

/// About the bytes a column chunk's values take once read, erring high: text and binary as stored uncompressed
/// plus an offset each, other values 8 bytes each (16 for fixed-length ones, which are decimals), whatever
/// their encoding (integers packed as differences store a few bits a value).
fn in_memory_bytes(column: &ColumnChunkMetaData) -> u64 {
    let values = u64::try_from(column.num_values()).unwrap_or(0);
    let stored = u64::try_from(column.uncompressed_size()).unwrap_or(0);
    match column.column_type() {
        PhysicalType::BYTE_ARRAY => stored + values * 4,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => stored.max(values * 16),
        _ => stored.max(values * 8),
    }
}

/// Every row of the staged files in `slice`, in the table's columns.
async fn read_staged(
    store: &ObjectStoreRef,
    adds: &[Add],
    schema: &SchemaRef,
    slice: &KeySlice<'_>,
) -> Result<RecordBatch, DeltaTableError> {
    let mut batches = Vec::new();
    for add in adds {
        let size = u64::try_from(add.size).unwrap_or_default();
        let reader = ParquetObjectReader::new(store.clone(), staged_path(add)).with_file_size(size);
        let mut stream = ParquetRecordBatchStreamBuilder::new(reader).await?.build()?;
        while let Some(batch) = stream.try_next().await? {
            batches.push(slice.of_rows(batch)?);
        }
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
