//! Text files: a row per line, in one string column `value` (Spark's text source), the line ending (`\n` or
//! `\r\n`) stripped. Lines are UTF-8; a line that is not stops the file with its number rather than altering it.

use std::sync::Arc;

use connector_core::arrow::array::{RecordBatch, StringArray};
use connector_core::arrow::datatypes::{DataType, Field, Schema};

/// The column a line lands in.
pub const TEXT_COLUMN: &str = "value";

/// The columns of a text file.
pub fn text_columns() -> Vec<Field> {
    vec![Field::new(TEXT_COLUMN, DataType::Utf8, true)]
}

/// The lines of `chunk` (complete lines, as [`crate::line_chunks::LineChunks`] gives them) as rows of `value`;
/// `first_line` is the number of the chunk's first line in its file, from 1, for errors.
pub fn text_rows(chunk: &[u8], first_line: usize) -> Result<RecordBatch, String> {
    // A final newline ends the last line; it does not start an empty one.
    let chunk = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let lines: Vec<&str> = chunk
        .split(|&byte| byte == b'\n')
        .enumerate()
        .map(|(index, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            std::str::from_utf8(line).map_err(|cause| {
                format!(
                    "line {} is not UTF-8 ({cause}); text files are read as UTF-8: convert the file (iconv -t UTF-8)",
                    first_line + index
                )
            })
        })
        .collect::<Result<_, String>>()?;
    let schema = Arc::new(Schema::new(text_columns()));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(lines))]).map_err(|cause| format!("internal: {cause}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::arrow::array::Array;

    fn values(batch: &RecordBatch) -> Vec<String> {
        let column = batch.column(0).as_any().downcast_ref::<StringArray>().expect("text");
        (0..column.len()).map(|row| column.value(row).to_string()).collect()
    }

    #[test]
    fn each_line_is_a_row_without_its_line_ending() {
        let batch = text_rows(b"first\r\n\nthird line\nlast without newline", 1).expect("rows");
        assert_eq!(values(&batch), ["first", "", "third line", "last without newline"]);
        assert_eq!(values(&text_rows(b"one\n", 1).expect("rows")), ["one"], "a final newline ends a line");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named_by_its_number() {
        let error = text_rows(b"ok\n\xff\xfe\n", 10).expect_err("latin-1");
        assert!(error.starts_with("line 11 is not UTF-8"), "{error}");
    }
}
