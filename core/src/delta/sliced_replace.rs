//! A merge load too large to hold, in one commit: its rows (one per key) come in slices of their keys. Each
//! slice's rows are written to new files at once, and the table rows they replace are found (reading the key
//! columns of the files whose statistics admit a key of the slice) and kept as row positions per file. Once
//! every slice is in, each file holding replaced rows is marked (a deletion vector of those positions) or
//! rewritten without them, and the new files, the marked and rewritten ones and the caller's commit properties
//! (the cursor, the file ledger) go into one commit.
//!
//! Memory is one slice and its key index, a position bitmap per touched file and the files being written,
//! whatever the load's size. Unlike `file_merge` (one change, held whole), new row versions are not routed into
//! the key ranges of the files they replace rows in, and small files are not gathered: a slice's keys are spread
//! over the whole key space (a hash picks them), and a rewritten file is only final once every slice is seen.

use std::collections::BTreeMap;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Add};
use deltalake::logstore::ObjectStoreRef;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use roaring::RoaringTreemap;

use super::column_compression::{ValueEncodings, parquet_properties_for};
use super::deletion_vectors::{self, write_deletion_vectors};
use super::file_merge::{
    ChangedRows, MAX_REWRITTEN_FILE_SIZE, Marking, align_to_schema, deleted_rows, find_changed_rows, new_writer, open,
    with_deletion_vector, without_deleted_rows, write_rows_in_order,
};
use super::file_selection::{TargetFile, select_files};
use super::merge::MergeCounts;
use super::merge_commit::commit_merge;
use super::stored_rows::{ChangedKeys, EncodedKeys};
use crate::options::DeleteMode;

/// Rows replacing the table's rows of their keys, given slice by slice, committed once.
pub(crate) struct SlicedReplace<'a> {
    table: &'a DeltaTable,
    key_columns: &'a [String],
    store: ObjectStoreRef,
    target_file_size: u64,
    /// Whether a touched file is marked rather than rewritten (the table allows deletion vectors, and the
    /// file is large and keeps most of its rows).
    marking: Option<Marking>,
    /// Files holding replaced rows, by path (ordered, so the commit lists them alike on every run).
    touched: BTreeMap<String, TouchedFile>,
    /// Writes the new row versions; made with the first slice, whose values judge the column encodings and
    /// whose schema (the table's columns as the load wrote them) rewritten rows take.
    writer: Option<(RecordBatchWriter, WriterProperties, SchemaRef)>,
    counts: MergeCounts,
}

/// A table file holding rows that the load replaces.
struct TouchedFile {
    file: TargetFile,
    /// The rows its deletion vector removed before the load.
    deleted_before: RoaringTreemap,
    /// The rows the load replaces (positions from 0, deleted rows counted), from every slice.
    replaced: RoaringTreemap,
    /// Rows in the file, deleted ones included.
    file_rows: u64,
}

impl<'a> SlicedReplace<'a> {
    pub fn new(
        table: &'a DeltaTable,
        key_columns: &'a [String],
        target_file_size: u64,
    ) -> Result<Self, DeltaTableError> {
        let state = table.snapshot()?;
        let small_file = target_file_size.min(MAX_REWRITTEN_FILE_SIZE) / 4;
        Ok(SlicedReplace {
            table,
            key_columns,
            store: table.log_store().object_store(None),
            target_file_size,
            marking: deletion_vectors::enabled(state).then_some(Marking { small_file, mode: DeleteMode::Hard }),
            touched: BTreeMap::new(),
            writer: None,
            counts: MergeCounts::default(),
        })
    }

    /// Takes one slice: `rows` in the table's columns, one per key, no key in another slice. Writes them as
    /// new row versions (in key order) and notes the table rows they replace.
    pub async fn add_slice(&mut self, rows: RecordBatch) -> Result<(), DeltaTableError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let state = self.table.snapshot()?;
        let EncodedKeys { arrays: keys, converter, rows: encoded } = EncodedKeys::of(&rows, self.key_columns)?;
        let changed = ChangedKeys::new(&converter, &encoded, &keys);

        // Every file is read in full (key columns) to find every replaced row: with `small_file` 0 none is
        // gathered, and without marking a found row does not end the read either.
        let finding = Marking { small_file: 0, mode: DeleteMode::Hard };
        let selection = select_files(state, self.key_columns, &keys, false, 0)?;
        self.counts.files_scanned += selection.candidates.len();
        self.counts.files_skipped += selection.skipped;
        let mut matched = vec![false; rows.num_rows()];
        for file in selection.candidates {
            let path = file.location.to_string();
            let deleted_before = match self.touched.get(&path) {
                Some(touched) => touched.deleted_before.clone(),
                None => deleted_rows(&self.store, &file).await?,
            };
            let found =
                find_changed_rows(&self.store, &file, self.key_columns, &changed, &deleted_before, Some(&finding))
                    .await?;
            if found.positions.is_empty() {
                continue;
            }
            for &source_row in &found.source_rows {
                matched[source_row as usize] = true;
            }
            self.counts.updated += found.positions.len() as usize;
            let file_rows = found.file_rows;
            let touched = self.touched.entry(path).or_insert_with(|| TouchedFile {
                file,
                deleted_before,
                replaced: RoaringTreemap::new(),
                file_rows,
            });
            touched.replaced |= found.positions;
        }
        self.counts.source_rows += rows.num_rows();
        self.counts.inserted += matched.iter().filter(|&&matched| !matched).count();

        let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
        order.sort_unstable_by(|&a, &b| encoded.row(a as usize).cmp(&encoded.row(b as usize)));
        let (writer, ..) = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let properties = parquet_properties_for(&rows, ValueEncodings::for_table(state));
                let writer = new_writer(self.table, self.target_file_size, &properties)?;
                self.writer.insert((writer, properties, rows.schema()))
            }
        };
        write_rows_in_order(writer, &rows, &order).await
    }

    /// Marks or rewrites every touched file and commits it all, with `commit`'s properties, in one commit.
    pub async fn commit(self, commit: CommitProperties) -> Result<(DeltaTable, MergeCounts), DeltaTableError> {
        let SlicedReplace { table, key_columns, store, target_file_size, marking, touched, writer, mut counts } = self;
        let Some((mut writer, properties, schema)) = writer else {
            // No slice had a row: the commit still moves the cursor and records the files.
            let merged = commit_merge(table, Vec::new(), commit, key_columns, None).await?;
            return Ok((merged, counts));
        };
        let mut actions: Vec<Action> = Vec::new();
        let mut adds: Vec<Add> = writer.flush().await?;
        let mut marked: Vec<(TargetFile, RoaringTreemap)> = Vec::new();
        for touched in touched.into_values() {
            let replaced =
                ChangedRows { positions: touched.replaced, source_rows: Vec::new(), file_rows: touched.file_rows };
            if marking
                .as_ref()
                .is_some_and(|marking| marking.worth_it(&touched.file, &touched.deleted_before, &replaced))
            {
                marked.push((touched.file, touched.deleted_before | replaced.positions));
                continue;
            }
            let gone = touched.deleted_before | replaced.positions;
            if gone.len() < touched.file_rows {
                let mut own = new_writer(table, target_file_size, &properties)?;
                let mut stream = open(&store, &touched.file, None).await?;
                let mut position = 0;
                while let Some(stored) = stream.try_next().await? {
                    let kept = without_deleted_rows(stored, &gone, &mut position)?;
                    if kept.num_rows() > 0 {
                        own.write(align_to_schema(&kept, &schema)?).await?;
                    }
                }
                adds.extend(own.flush().await?);
            }
            actions.push(Action::Remove(touched.file.remove));
        }
        counts.files_removed = actions.len();
        counts.files_added = adds.len();
        counts.files_marked = marked.len();
        let vectors: Vec<&RoaringTreemap> = marked.iter().map(|(_, deleted)| deleted).collect();
        let descriptors = write_deletion_vectors(&store, &vectors).await?;
        for ((file, _), descriptor) in marked.into_iter().zip(descriptors) {
            actions.push(Action::Remove(file.remove));
            adds.push(with_deletion_vector(file.add, descriptor)?);
        }
        actions.extend(adds.into_iter().map(Action::Add));
        // The loaded keys are not held together, so the commit says it read every row: a concurrent commit that
        // removed any file fails this one rather than losing a change.
        let merged = commit_merge(table, actions, commit, key_columns, None).await?;
        Ok((merged, counts))
    }
}
