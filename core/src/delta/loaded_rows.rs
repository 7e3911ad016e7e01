//! The rows of a merge load (`connector load --mode merge --key …`) as the one row per key the merge applies:
//! put back in the order of the load's files and of the rows within each, refused when a key is null, and
//! reduced to the last row of each key.

use std::collections::HashMap;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use deltalake::arrow::compute::{cast, take_record_batch};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};

use crate::error::{Error, ErrorKind, Result, Retry};
use crate::metadata_column::{FILE_PATH, FILE_ROW};

/// `rows` (in the table's columns, with each row's file and number in it, in any order) as one row per key:
/// the last in `file_order` (the load's files), then in the file. A later row of a key replaces an earlier one
/// as a later file replaces an earlier load, so loading `jan.csv feb.csv` leaves February's version of an order.
///
/// A null key part is refused rather than inserted: it matches no row (as in a SQL MERGE), so each load of the
/// file would add the row again and the table would stop holding one row per key.
///
/// `rows` is dropped once copied in load order, so that at most two copies of the loaded rows are held at once.
pub(crate) fn last_row_per_key(
    rows: RecordBatch,
    key_columns: &[String],
    file_order: &[String],
) -> Result<RecordBatch> {
    let in_load_order = take_record_batch(&rows, &load_order(&rows, file_order)?).map_err(internal)?;
    drop(rows);
    let keys = key_arrays(&in_load_order, key_columns)?;
    refuse_null_keys(&in_load_order, &keys, key_columns)?;
    let converter = RowConverter::new(keys.iter().map(|keys| SortField::new(keys.data_type().clone())).collect())
        .map_err(internal)?;
    let encoded = converter.convert_columns(&keys).map_err(internal)?;
    let mut last_of_key: HashMap<&[u8], u32> = HashMap::with_capacity(encoded.num_rows());
    for row in 0..encoded.num_rows() {
        last_of_key.insert(encoded.row(row).data(), row as u32);
    }
    if last_of_key.len() == in_load_order.num_rows() {
        return Ok(in_load_order);
    }
    let mut kept: Vec<u32> = last_of_key.into_values().collect();
    kept.sort_unstable();
    take_record_batch(&in_load_order, &UInt32Array::from(kept)).map_err(internal)
}

/// The row indices of `rows` sorted by their file's place in `file_order`, then by their number in the file.
fn load_order(rows: &RecordBatch, file_order: &[String]) -> Result<UInt32Array> {
    let place_of_file: HashMap<&str, usize> =
        file_order.iter().enumerate().map(|(place, path)| (path.as_str(), place)).collect();
    let paths = string_column(rows, FILE_PATH)?;
    let numbers = row_numbers(rows)?;
    let mut places = Vec::with_capacity(rows.num_rows());
    for row in 0..rows.num_rows() {
        let path = paths.is_valid(row).then(|| paths.value(row));
        let place = path.and_then(|path| place_of_file.get(path)).ok_or_else(|| {
            Error::state(format!("internal: a loaded row names file {path:?}, which is not one of the load's files"))
        })?;
        places.push((*place, numbers.value(row), row as u32));
    }
    places.sort_unstable();
    Ok(places.into_iter().map(|(_, _, row)| row).collect())
}

fn key_arrays(rows: &RecordBatch, key_columns: &[String]) -> Result<Vec<ArrayRef>> {
    key_columns
        .iter()
        .map(|name| {
            rows.column_by_name(name)
                .cloned()
                .ok_or_else(|| Error::state(format!("internal: the loaded rows have no key column `{name}`")))
        })
        .collect()
}

/// Fails on the first row (in load order) with a null key part, naming its file and row.
fn refuse_null_keys(rows: &RecordBatch, keys: &[ArrayRef], key_columns: &[String]) -> Result<()> {
    let first_null = keys
        .iter()
        .zip(key_columns)
        .filter_map(|(keys, name)| (0..keys.len()).find(|&row| keys.is_null(row)).map(|row| (row, name)))
        .min();
    let Some((row, name)) = first_null else { return Ok(()) };
    let path = string_column(rows, FILE_PATH)?.value(row).to_string();
    let number = row_numbers(rows)?.value(row);
    Err(Error::new(
        ErrorKind::Source,
        Retry::No,
        format!(
            "{path}, row {number} (from 0, a header not counted): key column `{name}` is empty; a merge load needs \
             a value in every key column of every row, since a row without one would be added again by each load; \
             fill it in, or load with --mode append; nothing was committed"
        ),
    ))
}

fn string_column(rows: &RecordBatch, name: &str) -> Result<deltalake::arrow::array::StringArray> {
    let column = rows.column_by_name(name).ok_or_else(|| missing(name))?;
    Ok(cast(column, &DataType::Utf8).map_err(internal)?.as_string::<i32>().clone())
}

fn row_numbers(rows: &RecordBatch) -> Result<deltalake::arrow::array::Int64Array> {
    let column = rows.column_by_name(FILE_ROW).ok_or_else(|| missing(FILE_ROW))?;
    Ok(cast(column, &DataType::Int64).map_err(internal)?.as_primitive::<Int64Type>().clone())
}

fn missing(name: &str) -> Error {
    Error::state(format!("internal: the loaded rows have no `{name}` column"))
}

fn internal(cause: ArrowError) -> Error {
    Error::state("internal: cannot order the loaded rows by key").caused_by(cause)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};

    use super::*;

    /// Rows `(id, name, file, row)` as a load wrote them.
    fn loaded(rows: &[(Option<i64>, &str, &str, i64)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new(FILE_PATH, DataType::Utf8, true),
            Field::new(FILE_ROW, DataType::Int64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(rows.iter().map(|row| row.0).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|row| Some(row.1)).collect::<StringArray>()),
            Arc::new(rows.iter().map(|row| Some(row.2)).collect::<StringArray>()),
            Arc::new(rows.iter().map(|row| Some(row.3)).collect::<Int64Array>()),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
    }

    fn names(rows: &RecordBatch) -> Vec<String> {
        rows.column_by_name("name").expect("name").as_string::<i32>().iter().flatten().map(str::to_string).collect()
    }

    fn key() -> Vec<String> {
        vec!["id".to_string()]
    }

    #[test]
    fn the_last_row_of_a_key_in_file_then_row_order_wins_whatever_order_the_rows_were_written_in() {
        let files = ["file:///jan.csv".to_string(), "file:///feb.csv".to_string()];
        // Written by two readers: February's rows before January's, the rows of a file in order.
        let rows = loaded(&[
            (Some(2), "feb 2", "file:///feb.csv", 0),
            (Some(3), "feb 3", "file:///feb.csv", 1),
            (Some(2), "feb 2 again", "file:///feb.csv", 2),
            (Some(1), "jan 1", "file:///jan.csv", 0),
            (Some(2), "jan 2", "file:///jan.csv", 1),
        ]);
        let kept = last_row_per_key(rows, &key(), &files).expect("reduced");
        assert_eq!(names(&kept), ["jan 1", "feb 3", "feb 2 again"]);
    }

    #[test]
    fn rows_with_distinct_keys_are_all_kept_in_load_order() {
        let files = ["file:///a.csv".to_string()];
        let rows = loaded(&[(Some(5), "five", "file:///a.csv", 1), (Some(4), "four", "file:///a.csv", 0)]);
        assert_eq!(names(&last_row_per_key(rows, &key(), &files).expect("kept")), ["four", "five"]);
    }

    #[test]
    fn a_null_key_is_refused_naming_the_first_such_file_and_row() {
        let files = ["file:///a.csv".to_string(), "file:///b.csv".to_string()];
        let rows = loaded(&[
            (None, "late", "file:///b.csv", 7),
            (Some(1), "one", "file:///a.csv", 0),
            (None, "early", "file:///a.csv", 3),
        ]);
        let error = last_row_per_key(rows, &key(), &files).expect_err("refused");
        let message = error.to_string();
        assert!(message.starts_with("file:///a.csv, row 3 "), "{message}");
        assert!(message.contains("key column `id` is empty"), "{message}");
        assert_eq!(error.retry(), Retry::No);
    }
}
