//! The `_rescued_data` column: values that did not fit their column (a type they do not parse as, a column the
//! table does not take, a line that is not a record) kept as a JSON object per row, with the file they came
//! from, instead of being dropped or replaced by a null.

use serde_json::{Map, Value};

use connector_core::arrow::array::{ArrayRef, StringArray};
use connector_core::arrow::datatypes::Field;

/// The rescued column's name, as Auto Loader names it.
pub const RESCUED_DATA: &str = "_rescued_data";

/// The key naming the file in each rescued object.
const FILE_PATH_KEY: &str = "_file_path";

/// Rescued values of a batch's rows, gathered column by column.
#[derive(Debug)]
pub struct RescuedValues {
    rows: Vec<Option<Map<String, Value>>>,
}

impl RescuedValues {
    pub fn new(rows: usize) -> Self {
        RescuedValues { rows: vec![None; rows] }
    }

    /// Keeps `value` of `column` for `row`.
    pub fn keep(&mut self, row: usize, column: &str, value: Value) {
        self.rows[row].get_or_insert_with(Map::new).insert(column.to_string(), value);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(Option::is_none)
    }

    /// Puts the rescued values in the `_rescued_data` column of `columns` (a batch's, in `table`'s order), if any
    /// row rescued something; fails when one did and the table has no such column.
    pub fn place_in(self, columns: &mut [ArrayRef], table: &[Field], file_path: &str) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(index) = table.iter().position(|field| field.name() == RESCUED_DATA) else {
            return Err(format!(
                "values of {file_path} do not fit the table's columns, which have no `{RESCUED_DATA}` column to keep them"
            ));
        };
        columns[index] = self.into_column(file_path);
        Ok(())
    }

    /// The column: a JSON object per row that rescued something (with the file's path), else null.
    pub fn into_column(self, file_path: &str) -> ArrayRef {
        let values: StringArray = self
            .rows
            .into_iter()
            .map(|row| {
                row.map(|mut values| {
                    values.insert(FILE_PATH_KEY.into(), Value::String(file_path.into()));
                    Value::Object(values).to_string()
                })
            })
            .collect();
        std::sync::Arc::new(values)
    }
}
