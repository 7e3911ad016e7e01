//! Reads one file into the table's rows, in the file's format.

use std::sync::Arc;

use connector_core::arrow::datatypes::Field;
use connector_core::engine::FileRead;
use connector_core::error::{Error, Result};
use connector_core::ingested_file::SourceFile;
use connector_core::schema::TableSchema;

use crate::avro_rows::open_avro;
use crate::binary_rows::{DEFAULT_MAX_BINARY_FILE_BYTES, binary_row};
use crate::csv_blocks::CsvBlocks;
use crate::csv_rows::{BlockRows, CsvLayout, block_rows, text_rows_for_table};
use crate::file_bytes::open_decoded;
use crate::format::Format;
use crate::format_options::{CsvDialect, FormatOptions};
use crate::json_chunks::JsonChunks;
use crate::json_rows::JsonRows;
use crate::line_chunks::LineChunks;
use crate::location::FileLocation;
use crate::ordered_parses::OrderedParses;
use crate::parquet_rows::{next_parquet_rows, open_parquet};
use crate::read_errors::{decode_error, read_error, store_error};
use crate::rescued_data::RowOrigin;
use crate::row_sink::RowSink;
use crate::text_encoding::in_utf8;
use crate::text_rows::text_rows;
use crate::typed_rows::typed_rows_for_table;

/// A format with its options, ready to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    Csv(CsvDialect),
    /// JSON lines, or an array of records; with `multi_line`, records over several lines.
    Json {
        multi_line: bool,
    },
    Parquet,
    Avro,
    Text,
    /// Files above `max_bytes` are refused.
    Binary {
        max_bytes: u64,
    },
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
            Format::JsonLines => FileFormat::Json { multi_line: options.multi_line.unwrap_or(false) },
            Format::Parquet => FileFormat::Parquet,
            Format::Avro => FileFormat::Avro,
            Format::Text => FileFormat::Text,
            Format::Binary => {
                FileFormat::Binary { max_bytes: options.max_binary_file_bytes.unwrap_or(DEFAULT_MAX_BINARY_FILE_BYTES) }
            }
        })
    }

    /// Whether values are text whose types are inferred.
    pub fn is_text(&self) -> bool {
        !matches!(self, FileFormat::Parquet | FileFormat::Avro | FileFormat::Binary { .. })
    }
}

/// Reads every row of `file` into `rows`, in `schema`'s columns.
pub async fn read_file<S: RowSink>(
    location: &FileLocation,
    file: &SourceFile,
    format: &FileFormat,
    schema: &TableSchema,
    strict: bool,
    rows: &mut S,
) -> Result<FileRead> {
    let table: Vec<Field> = schema.arrow_schema().fields().iter().map(|field| field.as_ref().clone()).collect();
    let origin = |rows: &S| RowOrigin { file_path: &file.path, first_row: rows.rows_taken(), strict };
    match format {
        FileFormat::Csv(dialect) => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))? else {
                return Ok(FileRead::Vanished);
            };
            let mut text = in_utf8(bytes, dialect.encoding);
            let Some(layout) =
                CsvLayout::open(&mut text, dialect).await.map_err(|cause| decode_error(file, "CSV", cause))?
            else {
                return Ok(FileRead::Complete);
            };
            let (layout, table, times) = (Arc::new(layout), Arc::new(table), Arc::new(dialect.times.clone()));
            let path: Arc<str> = Arc::from(file.path.as_str());
            let mut blocks = CsvBlocks::new(text, dialect);
            let mut parses = OrderedParses::new();
            let (mut first, mut more) = (true, true);
            loop {
                while more && parses.has_room() {
                    let Some(block) = blocks.next().await.map_err(|cause| decode_error(file, "CSV", cause))? else {
                        more = false;
                        break;
                    };
                    let (layout, table, times, path) = (layout.clone(), table.clone(), times.clone(), path.clone());
                    parses.start(move || block_rows(&layout, &block, first, &table, &times, &path, strict));
                    first = false;
                }
                let Some(parsed) = parses.next().await else { break };
                let block_first_row = rows.rows_taken();
                let parsed = parsed.map_err(|cause| read_error(file, "CSV", cause))?.map_err(|cause| {
                    decode_error(file, "CSV", layout.in_file(cause, block_first_row, block_first_row == 0))
                })?;
                match parsed {
                    BlockRows::Rows(batches) => {
                        for batch in batches {
                            if !rows.take(&batch).await? {
                                return Ok(FileRead::Complete);
                            }
                        }
                    }
                    BlockRows::Unfit { text, rows_before } => {
                        let origin =
                            RowOrigin { file_path: &file.path, first_row: block_first_row + rows_before, strict };
                        let cause = match text_rows_for_table(&text, &table, &times, origin) {
                            Err(cause) => cause,
                            Ok(_) => "internal: rows that did not fit fit when cast again".to_string(),
                        };
                        return Err(read_error(file, "CSV", cause));
                    }
                }
            }
        }
        FileFormat::Json { multi_line } => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))? else {
                return Ok(FileRead::Vanished);
            };
            let decoder = Arc::new(JsonRows::new(&table));
            let path: Arc<str> = Arc::from(file.path.as_str());
            let mut chunks =
                JsonChunks::open(bytes, *multi_line).await.map_err(|cause| decode_error(file, "JSON", cause))?;
            let mut parses = OrderedParses::new();
            let mut more = true;
            loop {
                while more && parses.has_room() {
                    let Some(lines) = chunks.next_owned().await.map_err(|cause| decode_error(file, "JSON", cause))?
                    else {
                        more = false;
                        break;
                    };
                    let (decoder, path) = (decoder.clone(), path.clone());
                    parses.start(move || {
                        // The rows' numbers only name a row that does not fit, which the reader names again.
                        let decoded = decoder.decode(&lines, RowOrigin { file_path: &path, first_row: 0, strict });
                        decoded.map_err(|_| lines)
                    });
                }
                let Some(parsed) = parses.next().await else { break };
                let batch = match parsed.map_err(|cause| read_error(file, "JSON", cause))? {
                    Ok(batch) => batch,
                    Err(lines) => {
                        let cause = match decoder.decode(&lines, origin(rows)) {
                            Err(cause) => cause,
                            Ok(_) => "internal: rows that did not fit fit when decoded again".to_string(),
                        };
                        return Err(read_error(file, "JSON", cause));
                    }
                };
                if !rows.take(&batch).await? {
                    return Ok(FileRead::Complete);
                }
            }
        }
        FileFormat::Binary { max_bytes } => {
            let Some(row) = binary_row(location, file, *max_bytes).await? else {
                return Ok(FileRead::Vanished);
            };
            let batch =
                typed_rows_for_table(&row, &table, origin(rows)).map_err(|cause| read_error(file, "binary", cause))?;
            if !rows.take(&batch).await? {
                return Ok(FileRead::Complete);
            }
        }
        FileFormat::Text => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))? else {
                return Ok(FileRead::Vanished);
            };
            let mut chunks = LineChunks::new(bytes);
            let mut first_line = 1;
            while let Some(lines) = chunks.next().await.map_err(|cause| decode_error(file, "text", cause))? {
                let text = text_rows(lines, first_line).map_err(|cause| read_error(file, "text", cause))?;
                first_line += text.num_rows();
                let batch = typed_rows_for_table(&text, &table, origin(rows))
                    .map_err(|cause| read_error(file, "text", cause))?;
                if !rows.take(&batch).await? {
                    return Ok(FileRead::Complete);
                }
            }
        }
        FileFormat::Parquet => {
            let Some(mut stream) =
                open_parquet(location, file).await.map_err(|cause| decode_error(file, "Parquet", cause))?
            else {
                return Ok(FileRead::Vanished);
            };
            while let Some(batch) =
                next_parquet_rows(&mut stream).await.map_err(|cause| decode_error(file, "Parquet", cause))?
            {
                let batch = typed_rows_for_table(&batch, &table, origin(rows))
                    .map_err(|cause| read_error(file, "Parquet", cause))?;
                if !rows.take(&batch).await? {
                    return Ok(FileRead::Complete);
                }
            }
        }
        FileFormat::Avro => {
            // An empty file has no rows; one gone since its listing has vanished.
            let Some(mut batches) = open_avro(location, file).await? else {
                return Ok(if file.size == 0 { FileRead::Complete } else { FileRead::Vanished });
            };
            while let Some(batch) = batches.next().await.map_err(|cause| read_error(file, "Avro", cause))? {
                let batch = typed_rows_for_table(&batch, &table, origin(rows))
                    .map_err(|cause| read_error(file, "Avro", cause))?;
                if !rows.take(&batch).await? {
                    return Ok(FileRead::Complete);
                }
            }
        }
    }
    Ok(FileRead::Complete)
}
