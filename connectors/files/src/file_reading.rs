//! Reads one file into the table's rows, in the file's format.

use connector_core::arrow::datatypes::Field;
use connector_core::engine::{FileRead, FileRows};
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::ingested_file::SourceFile;
use connector_core::schema::TableSchema;

use crate::csv_rows::{CsvBatches, text_rows_for_table};
use crate::file_bytes::open_decoded;
use crate::format::Format;
use crate::format_options::{CsvDialect, FormatOptions};
use crate::json_rows::{JsonLineChunks, JsonRows};
use crate::location::FileLocation;
use crate::parquet_rows::{next_parquet_rows, open_parquet, parquet_rows_for_table};

/// A format with its options, ready to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    Csv(CsvDialect),
    JsonLines,
    Parquet,
}

impl FileFormat {
    /// The format of `file`: the configured one, else the one its extension tells.
    pub fn of(file: &SourceFile, configured: Option<Format>, options: &FormatOptions) -> Result<Self> {
        let format = configured.or_else(|| Format::of_file(&file.path)).ok_or_else(|| {
            Error::config(format!(
                "cannot tell the format of {} from its name; set --format (`format`) to one of {}",
                file.path,
                Format::NAMES
            ))
        })?;
        Ok(match format {
            Format::Csv => FileFormat::Csv(options.csv_dialect(false)?),
            Format::Tsv => FileFormat::Csv(options.csv_dialect(true)?),
            Format::JsonLines => FileFormat::JsonLines,
            Format::Parquet => FileFormat::Parquet,
        })
    }

    /// Whether values are text whose types are inferred.
    pub fn is_text(&self) -> bool {
        !matches!(self, FileFormat::Parquet)
    }
}

/// A file that cannot be read as `format`: nothing of its batch is committed, and the message says which file.
pub fn read_error(file: &SourceFile, format: &str, cause: impl std::fmt::Display) -> Error {
    let what = if format.is_empty() { String::new() } else { format!(" as {format}") };
    Error::new(
        ErrorKind::Source,
        Retry::No,
        format!(
            "cannot read {}{what}: {cause}; nothing of its batch was committed: fix or remove the file (or fix the \
             format options), then sync again",
            file.path
        ),
    )
}

/// Reads every row of `file` into `rows`, in `schema`'s columns.
pub async fn read_file(
    location: &FileLocation,
    file: &SourceFile,
    format: &FileFormat,
    schema: &TableSchema,
    rows: &mut FileRows,
) -> Result<FileRead> {
    let table: Vec<Field> = schema.arrow_schema().fields().iter().map(|field| field.as_ref().clone()).collect();
    match format {
        FileFormat::Csv(dialect) => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| read_error(file, "", cause))? else {
                return Ok(FileRead::Vanished);
            };
            let Some(mut batches) =
                CsvBatches::open(bytes, dialect).await.map_err(|cause| read_error(file, "CSV", cause))?
            else {
                return Ok(FileRead::Complete);
            };
            while let Some(text) = batches.next().await.map_err(|cause| read_error(file, "CSV", cause))? {
                let batch =
                    text_rows_for_table(&text, &table, &file.path).map_err(|cause| read_error(file, "CSV", cause))?;
                rows.write(&batch).await?;
            }
        }
        FileFormat::JsonLines => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| read_error(file, "", cause))? else {
                return Ok(FileRead::Vanished);
            };
            let decoder = JsonRows::new(&table);
            let mut chunks = JsonLineChunks::new(bytes);
            while let Some(lines) = chunks.next().await.map_err(|cause| read_error(file, "JSON lines", cause))? {
                let batch = decoder.decode(lines, &file.path).map_err(|cause| read_error(file, "JSON lines", cause))?;
                rows.write(&batch).await?;
            }
        }
        FileFormat::Parquet => {
            let Some(mut stream) =
                open_parquet(location, file).await.map_err(|cause| read_error(file, "Parquet", cause))?
            else {
                return Ok(FileRead::Vanished);
            };
            while let Some(batch) =
                next_parquet_rows(&mut stream).await.map_err(|cause| read_error(file, "Parquet", cause))?
            {
                let batch = parquet_rows_for_table(&batch, &table, &file.path)
                    .map_err(|cause| read_error(file, "Parquet", cause))?;
                rows.write(&batch).await?;
            }
        }
    }
    Ok(FileRead::Complete)
}
