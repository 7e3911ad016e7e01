//! Merges a change batch into a keyed table by touching only the data files that hold changed keys, one file
//! at a time, and commits the files replaced or marked, the new ones and the cursor in one Delta commit.
//!
//! delta-rs's MERGE joins the change with every file it scans and holds those files until it has seen a
//! change for each (its `MergeBarrier`), so its memory follows the files a merge touches. Here a file is
//! streamed batch by batch through the mode's rules (`stored_rows`) into a Parquet writer, so memory is the
//! change, its key index and one row group being read and one being written, whatever the files touched.
//!
//! Which files: those whose key min/max statistics admit a changed key (`file_selection`), and of those only
//! the ones where a changed key is actually stored, found by reading their key columns alone. Such a file is
//! marked when the table allows deletion vectors and it is large and keeps most of its rows: its changed rows'
//! positions go into a deletion vector and their new versions into a new file, so the cost follows the change.
//! Otherwise it is rewritten: it keeps its key range, as new versions of its keys are written into its
//! replacement. Keys no file holds go to new files in key order, so files stay clustered; small files share
//! those files, and once a table has enough small files a merge gathers them all.

use std::ops::Range;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use deltalake::arrow::compute::{cast, filter_record_batch, take_record_batch};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor};
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::parquet_reader::ParquetObjectReader;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::RowSelection;
use deltalake::parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use roaring::RoaringTreemap;

use super::column_compression::{ValueEncodings, parquet_properties_for};
use super::deletion_vectors::{self, read_deleted_rows, write_deletion_vectors};
use super::file_selection::{TargetFile, by_first_key, select_files};
use super::merge::MergeCounts;
use super::merge_commit::commit_merge;
use super::merge_source::MergeSource;
use super::stored_rows::{ChangedKeys, StoredRowRewrite};
use crate::metadata_column::IS_CURRENT;
use crate::options::DeleteMode;

/// Rows per batch read from a stored file: small enough that a batch and its rewrite stay a few MiB.
const READ_BATCH_ROWS: usize = 8192;
/// Small files a table may have before a merge gathers them (see `merge_by_file_rewrite`).
const GATHER_SMALL_FILES_AT: usize = 8;
/// New row versions written per batch (taken from the change, so a copy of this many rows at a time).
const WRITE_BATCH_ROWS: usize = 65_536;

pub(crate) struct FileMergeRequest<'a> {
    pub table: &'a DeltaTable,
    pub source: MergeSource,
    pub key_columns: &'a [String],
    pub mode: DeleteMode,
    pub commit: CommitProperties,
    pub target_file_size: u64,
}

pub(crate) async fn merge_by_file_rewrite(
    request: FileMergeRequest<'_>,
) -> Result<(DeltaTable, MergeCounts), DeltaTableError> {
    let FileMergeRequest { table, source, key_columns, mode, commit, target_file_size } = request;
    let state = table.snapshot()?;
    let schema = source.rows.schema();
    let key_positions: Vec<usize> = key_columns.iter().map(|key| schema.index_of(key)).collect::<Result<_, _>>()?;
    let source_keys: Vec<ArrayRef> =
        key_positions.iter().map(|&position| source.rows.column(position).clone()).collect();
    let matching_keys: Vec<ArrayRef> = source_keys.iter().map(|keys| keys.slice(0, source.matching_rows)).collect();
    let converter =
        RowConverter::new(source_keys.iter().map(|keys| SortField::new(keys.data_type().clone())).collect())?;
    let encoded_matching = converter.convert_columns(&matching_keys)?;
    let changed = ChangedKeys::new(&converter, &encoded_matching, &matching_keys);

    let truncated = source.truncate_time.is_some();
    let small_file = target_file_size.min(MAX_REWRITTEN_FILE_SIZE) / 4;
    let selection = select_files(state, key_columns, &matching_keys, truncated, small_file)?;
    // Merges leave small files behind (new keys, new versions of marked rows). Once a table has enough of them,
    // a merge gathers them all into the files it writes anyway, so their number stays bounded.
    let small_files =
        selection.small_skipped.len() + selection.candidates.iter().filter(|file| file.size < small_file).count();
    let gathering = !truncated && small_files >= GATHER_SMALL_FILES_AT;
    let store = table.log_store().object_store(None);
    let mut rewrite = StoredRowRewrite::new(&source, mode, key_positions.clone());
    let mut counts = MergeCounts {
        source_rows: source.rows.num_rows(),
        files_scanned: selection.candidates.len(),
        files_skipped: selection.skipped,
        ..MergeCounts::default()
    };
    // A TRUNCATE concerns every row, so no file is worth marking.
    let marking = (deletion_vectors::enabled(state) && !truncated).then_some(Marking { small_file, mode });
    let mut actions: Vec<Action> = Vec::new();
    // Files to read and rewrite (with the rows their deletion vector already removes); in hard mode a TRUNCATE
    // drops every file unread.
    let mut rewritten: Vec<(TargetFile, RoaringTreemap)> = Vec::new();
    let mut marked: Vec<MarkedFile> = Vec::new();
    for file in selection.candidates {
        if mode == DeleteMode::Hard && truncated {
            let already_deleted = file.add.deletion_vector.as_ref().map_or(0, |dv| dv.cardinality as usize);
            rewrite.deleted += file.row_count.unwrap_or(0).saturating_sub(already_deleted);
            actions.push(Action::Remove(file.remove));
            continue;
        }
        let rewritten_whole = truncated || (gathering && file.size < small_file);
        if !rewritten_whole && changed.is_empty() {
            continue;
        }
        let deleted = deleted_rows(&store, &file).await?;
        if rewritten_whole {
            rewritten.push((file, deleted));
        } else {
            let found = find_changed_rows(&store, &file, key_columns, &changed, &deleted, marking.as_ref()).await?;
            if found.positions.is_empty() {
                continue;
            }
            match &marking {
                Some(marking) if marking.worth_it(&file, &deleted, &found) => {
                    marked.push(MarkedFile { file, deleted: deleted | &found.positions, found })
                }
                _ => rewritten.push((file, deleted)),
            }
        }
    }

    if gathering {
        for file in selection.small_skipped {
            let deleted = deleted_rows(&store, &file).await?;
            rewritten.push((file, deleted));
        }
        rewritten.sort_by(|(a, _), (b, _)| by_first_key(a, b));
    }

    let routes = route_written_rows(&source, &source_keys, &rewritten)?;
    // The changed rows stand for the table's values when judging which columns are worth compressing.
    let properties = parquet_properties_for(&source.rows, ValueEncodings::for_table(state));
    let mut adds: Vec<Add> = Vec::new();
    // Small files, the marked rows' new versions and the rows no rewritten file takes share these files.
    let mut writer = new_writer(table, target_file_size, &properties)?;
    for ((file, deleted), rows) in rewritten.into_iter().zip(&routes.per_file) {
        let routed = &routes.order[rows.clone()];
        if file.size < small_file {
            rewrite_file(&mut writer, &store, &file, &deleted, &mut rewrite, &changed, routed).await?;
        } else {
            let mut own = new_writer(table, target_file_size, &properties)?;
            rewrite_file(&mut own, &store, &file, &deleted, &mut rewrite, &changed, routed).await?;
            adds.extend(own.flush().await?);
        }
        actions.push(Action::Remove(file.remove));
    }
    for file in &marked {
        if !rewrite.needs_stored_rows() {
            rewrite.count_dropped(&file.found.source_rows);
            continue;
        }
        let mut stream = open_rows(&store, &file.file, &file.found).await?;
        while let Some(stored) = stream.try_next().await? {
            write_rewritten(&mut writer, &mut rewrite, stored, &changed).await?;
        }
    }
    write_rows_in_order(&mut writer, &source.rows, &routes.order[routes.unrouted.clone()]).await?;
    adds.extend(writer.flush().await?);
    counts.files_removed = actions.len();
    counts.files_added = adds.len();
    counts.files_marked = marked.len();
    let vectors: Vec<&RoaringTreemap> = marked.iter().map(|file| &file.deleted).collect();
    let descriptors = write_deletion_vectors(&store, &vectors).await?;
    for (file, descriptor) in marked.into_iter().zip(descriptors) {
        actions.push(Action::Remove(file.file.remove));
        adds.push(with_deletion_vector(file.file.add, descriptor)?);
    }

    counts.inserted = match mode {
        // Every version is a new row; the rows it replaces were counted as updated.
        DeleteMode::History => routes.order.len(),
        DeleteMode::Hard | DeleteMode::Soft => {
            routes.order.iter().filter(|&&row| !rewrite.matched_source_rows[row as usize]).count()
        }
    };
    counts.updated = rewrite.updated;
    counts.deleted = rewrite.deleted;
    actions.extend(adds.into_iter().map(Action::Add));

    let matched_keys = (!truncated).then_some(matching_keys.as_slice());
    let merged = commit_merge(table, actions, commit, key_columns, matched_keys).await?;
    Ok((merged, counts))
}

/// The rows the file's deletion vector removes (none without one).
pub(super) async fn deleted_rows(store: &ObjectStoreRef, file: &TargetFile) -> Result<RoaringTreemap, DeltaTableError> {
    match &file.add.deletion_vector {
        Some(descriptor) => read_deleted_rows(store, descriptor).await,
        None => Ok(RoaringTreemap::new()),
    }
}

/// Streams a file's rows, less those its deletion vector removes, through the merge's rules into `writer`,
/// followed by the new row versions `routed` to it.
async fn rewrite_file(
    writer: &mut RecordBatchWriter,
    store: &ObjectStoreRef,
    file: &TargetFile,
    deleted: &RoaringTreemap,
    rewrite: &mut StoredRowRewrite<'_>,
    changed: &ChangedKeys<'_>,
    routed: &[u32],
) -> Result<(), DeltaTableError> {
    let mut stream = open(store, file, None).await?;
    let mut position = 0;
    while let Some(stored) = stream.try_next().await? {
        let stored = without_deleted_rows(stored, deleted, &mut position)?;
        write_rewritten(writer, rewrite, stored, changed).await?;
    }
    write_rows_in_order(writer, &rewrite.source.rows, routed).await
}

/// Writes what the merge's rules keep of `stored` (rows of a data file) to `writer`.
async fn write_rewritten(
    writer: &mut RecordBatchWriter,
    rewrite: &mut StoredRowRewrite<'_>,
    stored: RecordBatch,
    changed: &ChangedKeys<'_>,
) -> Result<(), DeltaTableError> {
    let kept = rewrite.rewrite(align_to_schema(&stored, &rewrite.source.rows.schema())?, changed)?;
    if kept.num_rows() > 0 {
        writer.write(kept).await?;
    }
    Ok(())
}

/// When a merge marks a file's changed rows deleted instead of rewriting it.
pub(super) struct Marking {
    /// Files below this size are rewritten: it costs little and gathers the new rows that land in small
    /// files, instead of leaving one small file per merge.
    pub small_file: u64,
    pub mode: DeleteMode,
}

impl Marking {
    /// A file is marked while at most a quarter of its rows would be deleted: beyond, readers would skip
    /// more than they read, and the rewrite that drops them is due.
    pub fn worth_it(&self, file: &TargetFile, deleted: &RoaringTreemap, found: &ChangedRows) -> bool {
        let stats_count_rows = file.row_count.is_some_and(|rows| rows as u64 == found.file_rows);
        let deleted_after = deleted.len() + found.positions.len();
        stats_count_rows && file.size >= self.small_file && deleted_after * 4 <= found.file_rows
    }

    /// In history mode only a key's current version changes; its older ones stay where they are.
    fn current_versions_only(&self) -> bool {
        self.mode == DeleteMode::History
    }
}

/// A file whose changed rows are marked deleted rather than rewritten.
struct MarkedFile {
    file: TargetFile,
    /// The rows deleted once the merge commits: those deleted before and the changed ones.
    deleted: RoaringTreemap,
    found: ChangedRows,
}

/// Where a file holds rows a change concerns.
#[derive(Debug, Default)]
pub(super) struct ChangedRows {
    /// Positions (from 0, deleted rows counted) of the concerned rows still in the table.
    pub positions: RoaringTreemap,
    /// The source row changing each position, in position order.
    pub source_rows: Vec<u32>,
    /// Rows in the file, deleted ones included (all of them only when every key was read).
    pub file_rows: u64,
}

/// Finds the file's rows a change concerns, reading its key columns only (and, in history mode, whether a
/// row is its key's current version). Without `marking` it stops at the first: the file is rewritten whole.
pub(super) async fn find_changed_rows(
    store: &ObjectStoreRef,
    file: &TargetFile,
    key_columns: &[String],
    changed: &ChangedKeys<'_>,
    deleted: &RoaringTreemap,
    marking: Option<&Marking>,
) -> Result<ChangedRows, DeltaTableError> {
    let current_only = marking.is_some_and(Marking::current_versions_only);
    let mut columns = key_columns.to_vec();
    if current_only {
        columns.push(IS_CURRENT.to_string());
    }
    let mut stream = open(store, file, Some(&columns)).await?;
    let mut found = ChangedRows::default();
    while let Some(batch) = stream.try_next().await? {
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|name| {
                batch.column_by_name(name).cloned().ok_or_else(|| {
                    DeltaTableError::Generic(format!("data file {} has no column `{name}`", file.location))
                })
            })
            .collect::<Result<_, _>>()?;
        let current = current_only.then(|| arrays[key_columns.len()].as_boolean_opt().cloned()).flatten();
        let matches = changed.matches(&arrays[..key_columns.len()])?;
        for (row, source_row) in matches.into_iter().enumerate() {
            let position = found.file_rows + row as u64;
            let Some(source_row) = source_row else { continue };
            let is_current = current.as_ref().is_none_or(|flags| flags.is_valid(row) && flags.value(row));
            if is_current && !deleted.contains(position) {
                found.positions.insert(position);
                found.source_rows.push(source_row);
            }
        }
        found.file_rows += batch.num_rows() as u64;
        if marking.is_none() && !found.positions.is_empty() {
            break;
        }
    }
    Ok(found)
}

/// Streams the rows of a file at `found`'s positions, all columns.
async fn open_rows(
    store: &ObjectStoreRef,
    file: &TargetFile,
    found: &ChangedRows,
) -> Result<ParquetRecordBatchStream<ParquetObjectReader>, DeltaTableError> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for position in &found.positions {
        let position = position as usize;
        match ranges.last_mut() {
            Some(range) if range.end == position => range.end += 1,
            _ => ranges.push(position..position + 1),
        }
    }
    let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), found.file_rows as usize);
    let reader = ParquetObjectReader::new(store.clone(), file.location.clone()).with_file_size(file.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?.with_batch_size(READ_BATCH_ROWS);
    Ok(builder.with_row_selection(selection).build()?)
}

/// `stored` without the rows its file's deletion vector removes; `position` is the file row `stored` starts
/// at, moved past it.
pub(super) fn without_deleted_rows(
    stored: RecordBatch,
    deleted: &RoaringTreemap,
    position: &mut u64,
) -> Result<RecordBatch, DeltaTableError> {
    let start = *position;
    *position += stored.num_rows() as u64;
    if deleted.range_cardinality(start..*position) == 0 {
        return Ok(stored);
    }
    let keep: BooleanArray = (start..*position).map(|row| Some(!deleted.contains(row))).collect();
    Ok(filter_record_batch(&stored, &keep)?)
}

/// The file's add action again, now with `deletion_vector`. Its statistics stay those of all its rows, as the
/// protocol asks (`numRecords` counts the deleted rows too), and say that their bounds may be wider than the
/// rows left.
pub(super) fn with_deletion_vector(
    add: Add,
    deletion_vector: DeletionVectorDescriptor,
) -> Result<Add, DeltaTableError> {
    let stats = match add.stats.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(serde_json::Value::Object(mut stats))) => {
            stats.insert("tightBounds".into(), serde_json::Value::Bool(false));
            Some(serde_json::Value::Object(stats).to_string())
        }
        Some(Ok(_) | Err(_)) | None => {
            return Err(DeltaTableError::Generic(format!("data file {} has no readable statistics", add.path)));
        }
    };
    Ok(Add { deletion_vector: Some(deletion_vector), data_change: true, stats, ..add })
}

/// Streams a data file's rows, all columns or only `columns`.
pub(super) async fn open(
    store: &ObjectStoreRef,
    file: &TargetFile,
    columns: Option<&[String]>,
) -> Result<ParquetRecordBatchStream<ParquetObjectReader>, DeltaTableError> {
    let reader = ParquetObjectReader::new(store.clone(), file.location.clone()).with_file_size(file.size);
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader).await?.with_batch_size(READ_BATCH_ROWS);
    if let Some(columns) = columns {
        let roots: Vec<usize> = columns.iter().map(|name| builder.schema().index_of(name)).collect::<Result<_, _>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    Ok(builder.build()?)
}

/// A stored batch in the table's current schema: columns added since the file was written are null,
/// types widened since are cast.
pub(super) fn align_to_schema(stored: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, DeltaTableError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match stored.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => cast(column, field.data_type()),
            None => Ok(deltalake::arrow::array::new_null_array(field.data_type(), stored.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Files a merge writes are at most this large: the writer holds a file in memory until it is full, and two
/// merges may run at once (`parallel_apply`), so this bounds their memory together.
pub(super) const MAX_REWRITTEN_FILE_SIZE: u64 = 32 * 1024 * 1024;

pub(super) fn new_writer(
    table: &DeltaTable,
    target_file_size: u64,
    properties: &WriterProperties,
) -> Result<RecordBatchWriter, DeltaTableError> {
    Ok(RecordBatchWriter::for_table(table)?
        .with_target_file_size(target_file_size.min(MAX_REWRITTEN_FILE_SIZE))
        .with_writer_properties(properties.clone()))
}

/// Writes the rows of `rows` at `order` (indices into it), in that order, a bounded batch at a time.
pub(super) async fn write_rows_in_order(
    writer: &mut RecordBatchWriter,
    rows: &RecordBatch,
    order: &[u32],
) -> Result<(), DeltaTableError> {
    for chunk in order.chunks(WRITE_BATCH_ROWS) {
        let indices = UInt32Array::from(chunk.to_vec());
        writer.write(take_record_batch(rows, &indices)?).await?;
    }
    Ok(())
}

/// The source rows written as new row versions, in key order, and which go into which rewritten file.
struct Routes {
    /// Written source rows sorted by key (stable: versions of one key stay in source order).
    order: Vec<u32>,
    /// For each rewritten file, the range of `order` whose first key column falls in the file's key range.
    per_file: Vec<Range<usize>>,
    /// The range of `order` that goes to new files: the rows no rewritten file's range holds.
    unrouted: Range<usize>,
}

/// Routes new row versions to the rewritten file whose key range holds them, so rewritten files keep their
/// ranges, and keeps the others together in key order. Overlapping file ranges each take the rows in their
/// range up to where the previous file's share ended.
fn route_written_rows(
    source: &MergeSource,
    source_keys: &[ArrayRef],
    rewritten: &[(TargetFile, RoaringTreemap)],
) -> Result<Routes, DeltaTableError> {
    let converter =
        RowConverter::new(source_keys.iter().map(|keys| SortField::new(keys.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(source_keys)?;
    let mut order: Vec<u32> =
        (0..source.rows.num_rows() as u32).filter(|&row| source.written.value(row as usize)).collect();
    order.sort_by(|&a, &b| encoded.row(a as usize).cmp(&encoded.row(b as usize)));
    let first_key = RowConverter::new(vec![SortField::new(source_keys[0].data_type().clone())])?;
    let first_keys = first_key.convert_columns(&source_keys[..1])?;
    let key_of = |index: usize| first_keys.row(order[index] as usize);

    // Rows in a file's range form a run of `order` (sorted by the first key column first).
    let mut runs: Vec<(usize, Range<usize>)> = Vec::new();
    let mut taken_until = 0;
    for (file, (target, _)) in rewritten.iter().enumerate() {
        let Some((min, max)) = &target.first_key_range else { continue };
        let start = taken_until.max(order_partition(&order, |index| key_of(index) < min.row()));
        let end = order_partition(&order, |index| key_of(index) <= max.row()).max(start);
        runs.push((file, start..end));
        taken_until = end;
    }
    // Files are sorted by minimum, so runs are ascending and disjoint; the rest of `order` is unrouted. Unrouted
    // rows between runs are moved after the runs so that they form one range.
    let mut per_file = vec![0..0; rewritten.len()];
    let mut reordered: Vec<u32> = Vec::with_capacity(order.len());
    let mut unrouted: Vec<u32> = Vec::new();
    let mut next = 0;
    for (file, run) in runs {
        unrouted.extend_from_slice(&order[next..run.start]);
        per_file[file] = reordered.len()..reordered.len() + run.len();
        reordered.extend_from_slice(&order[run.clone()]);
        next = run.end;
    }
    unrouted.extend_from_slice(&order[next..]);
    let unrouted_range = reordered.len()..reordered.len() + unrouted.len();
    reordered.extend(unrouted);
    Ok(Routes { order: reordered, per_file, unrouted: unrouted_range })
}

/// The first index of `order` for which `before` is false (`before` holds for a prefix).
fn order_partition(order: &[u32], before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, order.len());
    while low < high {
        let middle = (low + high) / 2;
        if before(middle) { low = middle + 1 } else { high = middle }
    }
    low
}
