//! Which data files of a keyed table can hold changed keys, from the min/max statistics the Delta log keeps
//! per file: a merge reads only those, so its cost follows the change, not the table.
//!
//! A file is kept when, for every key column with usable statistics, some changed key falls between the
//! file's min and max of that column (a necessary condition for holding a changed key). Files without
//! statistics are always kept.

use deltalake::DeltaTableError;
use deltalake::Path;
use deltalake::arrow::array::{Array, ArrayRef};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::row::{OwnedRow, Row, RowConverter, Rows, SortField};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::physical_optimizer::pruning::PruningStatistics;
use deltalake::kernel::LogicalFileView;
use deltalake::kernel::{Add, Remove};
use deltalake::table::state::DeltaTableState;

use super::deletion_vectors::readable;

/// A data file a merge reads, and what it needs to replace it.
#[derive(Debug)]
pub(crate) struct TargetFile {
    pub location: Path,
    pub size: u64,
    pub remove: Remove,
    /// The file as the log adds it (with the deletion vector of the rows already deleted from it, if any), to
    /// add it again with a new one.
    pub add: Add,
    /// Rows in the file, deleted ones included.
    pub row_count: Option<usize>,
    /// The file's min and max of the first key column, encoded in key order, when its statistics tell.
    pub first_key_range: Option<(OwnedRow, OwnedRow)>,
}

#[derive(Debug)]
pub(crate) struct FileSelection {
    /// Files that may hold changed keys, in order of their first key's minimum (files without it last).
    pub candidates: Vec<TargetFile>,
    pub skipped: usize,
    /// The skipped files smaller than the size asked for, to gather with the small candidates.
    pub small_skipped: Vec<TargetFile>,
}

/// Why the table's files cannot be read as plain Parquet (they need delta-rs's own reader), if they cannot.
pub(crate) fn unreadable_layout(state: &DeltaTableState) -> Option<&'static str> {
    let metadata = state.metadata();
    if !metadata.partition_columns().is_empty() {
        return Some("partition columns");
    }
    if metadata.configuration().get("delta.columnMapping.mode").is_some_and(|mode| mode != "none") {
        return Some("column mapping");
    }
    let unreadable = |file: LogicalFileView| file.deletion_vector_descriptor().is_some_and(|dv| !readable(&dv));
    if state.log_data().iter().any(unreadable) {
        return Some("deletion vectors at absolute paths");
    }
    None
}

/// The files that may hold one of `keys` (one array per key column, the changed keys' values), or every
/// file when `every_file` (a TRUNCATE concerns all rows); and the others smaller than `small_file` bytes.
pub(crate) fn select_files(
    state: &DeltaTableState,
    key_columns: &[String],
    keys: &[ArrayRef],
    every_file: bool,
    small_file: u64,
) -> Result<FileSelection, DeltaTableError> {
    let log_data = state.log_data();
    let file_count = log_data.num_containers();
    let mut kept = vec![true; file_count];
    let mut first_key_ranges: Vec<Option<(OwnedRow, OwnedRow)>> = vec![None; file_count];
    for (index, (name, values)) in key_columns.iter().zip(keys).enumerate() {
        let Some(ranges) = FileRanges::of(&log_data, name, values)? else { continue };
        if !every_file {
            let changed = ranges.converter.convert_columns(std::slice::from_ref(values))?;
            let mut sorted: Vec<Row<'_>> =
                (0..values.len()).filter(|&row| values.is_valid(row)).map(|row| changed.row(row)).collect();
            sorted.sort_unstable();
            sorted.dedup();
            for (file, keep) in kept.iter_mut().enumerate() {
                *keep = *keep && ranges.may_hold_any(file, &sorted);
            }
        }
        if index == 0 {
            for (file, range) in first_key_ranges.iter_mut().enumerate() {
                *range = ranges.bounds(file).map(|(min, max)| (min.owned(), max.owned()));
            }
        }
    }
    let mut candidates = Vec::new();
    let mut small_skipped = Vec::new();
    for ((file, keep), first_key_range) in log_data.iter().zip(kept).zip(first_key_ranges) {
        let size = u64::try_from(file.size()).unwrap_or(0);
        if !keep && size >= small_file {
            continue;
        }
        let target = TargetFile {
            location: file.object_store_path(),
            size,
            remove: file.remove_action(true),
            // Deprecated for reading a file's fields; here the whole action is what is wanted.
            #[allow(deprecated)]
            add: file.add_action(),
            row_count: file.num_records(),
            first_key_range,
        };
        if keep { candidates.push(target) } else { small_skipped.push(target) }
    }
    candidates.sort_by(by_first_key);
    Ok(FileSelection { skipped: file_count - candidates.len(), candidates, small_skipped })
}

/// Orders files by the minimum of their first key column, files without one last.
pub(crate) fn by_first_key(a: &TargetFile, b: &TargetFile) -> std::cmp::Ordering {
    match (&a.first_key_range, &b.first_key_range) {
        (Some((a, _)), Some((b, _))) => a.cmp(b),
        (a, b) => b.is_some().cmp(&a.is_some()),
    }
}

/// Per-file min and max of one key column, encoded so they compare like the column's values.
struct FileRanges {
    converter: RowConverter,
    min: Rows,
    max: Rows,
    /// Whether file `i` has both bounds.
    known: Vec<bool>,
}

impl FileRanges {
    /// `None` when the column's statistics cannot bound its values exactly: Delta truncates timestamps to
    /// milliseconds and writes decimals as floating point, so only integers, dates and strings are trusted.
    fn of(
        log_data: &impl PruningStatistics,
        name: &str,
        values: &ArrayRef,
    ) -> Result<Option<FileRanges>, DeltaTableError> {
        let data_type = values.data_type();
        let exact =
            data_type.is_integer() || matches!(data_type, DataType::Date32 | DataType::Utf8 | DataType::LargeUtf8);
        let column = Column::new_unqualified(name);
        let (Some(min), Some(max)) = (log_data.min_values(&column), log_data.max_values(&column)) else {
            return Ok(None);
        };
        if !exact {
            return Ok(None);
        }
        let (min, max) = (cast(&min, values.data_type())?, cast(&max, values.data_type())?);
        let known = (0..min.len()).map(|file| min.is_valid(file) && max.is_valid(file)).collect();
        let converter = RowConverter::new(vec![SortField::new(values.data_type().clone())])?;
        let (min, max) = (converter.convert_columns(&[min])?, converter.convert_columns(&[max])?);
        Ok(Some(FileRanges { converter, min, max, known }))
    }

    fn bounds(&self, file: usize) -> Option<(Row<'_>, Row<'_>)> {
        self.known[file].then(|| (self.min.row(file), self.max.row(file)))
    }

    /// Whether some of `sorted` (distinct, ascending) lies within the file's bounds.
    fn may_hold_any(&self, file: usize, sorted: &[Row<'_>]) -> bool {
        let Some((min, max)) = self.bounds(file) else { return true };
        let first = sorted.partition_point(|key| *key < min);
        sorted.get(first).is_some_and(|key| *key <= max)
    }
}
