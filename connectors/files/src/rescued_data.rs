//! The `_rescued_data` column: values that did not fit their column (a type they do not parse as, a column the
//! table does not take, a line that is not a record) kept as a JSON object per row, with the file they came
//! from, instead of being dropped or replaced by a null.

use serde_json::{Map, Value};

use connector_core::arrow::array::{ArrayRef, StringArray};
use connector_core::arrow::datatypes::Field;

use crate::schema_hints::sql_type_name;

/// The rescued column's name, as Auto Loader names it.
pub const RESCUED_DATA: &str = "_rescued_data";

/// The key a line that is not a JSON object is rescued under (Spark's name for it).
pub const CORRUPT_RECORD: &str = "_corrupt_record";

/// The key naming the file in each rescued object.
const FILE_PATH_KEY: &str = "_file_path";

/// Where a batch's rows come from, and what becomes of values that do not fit.
#[derive(Debug, Clone, Copy)]
pub struct RowOrigin<'a> {
    pub file_path: &'a str,
    /// The number of the batch's first row within its file, from 0.
    pub first_row: u64,
    /// Stop at the first value that does not fit instead of rescuing it.
    pub strict: bool,
}

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

    /// Keeps the first `rows` rows: for a batch counted before it was read.
    pub fn truncate(&mut self, rows: usize) {
        self.rows.truncate(rows);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(Option::is_none)
    }

    /// Puts the rescued values in the `_rescued_data` column of `columns` (a batch's, in `table`'s order), if any
    /// row rescued something. Fails, naming the first such row, its columns and values, in strict mode or when
    /// the table has no such column.
    pub fn place_in(self, columns: &mut [ArrayRef], table: &[Field], origin: RowOrigin<'_>) -> Result<(), String> {
        let index = table.iter().position(|field| field.name() == RESCUED_DATA);
        let Some((row, values)) = self.rows.iter().enumerate().find_map(|(row, values)| Some((row, values.as_ref()?)))
        else {
            return Ok(());
        };
        let why = match index {
            _ if origin.strict => "strict mode stops at the first value that does not fit: fix the file, or sync \
                                   without strict to keep such values in `_rescued_data`"
                .to_string(),
            None => format!("the table has no `{RESCUED_DATA}` column to keep such values"),
            Some(index) => {
                columns[index] = self.into_column(origin.file_path);
                return Ok(());
            }
        };
        let unfit: Vec<String> = values
            .iter()
            .map(|(column, value)| match table.iter().find(|field| field.name() == column) {
                Some(field) => format!("column `{column}` ({}) cannot hold {value}", sql_type_name(field.data_type())),
                None => format!("{value} has no column `{column}` in the table"),
            })
            .collect();
        Err(format!(
            "row {} of {} (counting rows from 1, the header not counted): {}; {why}",
            origin.first_row + row as u64 + 1,
            origin.file_path,
            unfit.join(", ")
        ))
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
