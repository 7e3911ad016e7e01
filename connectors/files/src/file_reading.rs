//! Reads one file into the table's rows, in the file's format.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use connector_core::arrow::array::RecordBatch;
use connector_core::arrow::datatypes::Field;
use connector_core::engine::FileRead;
use connector_core::error::{Error, Result};
use connector_core::ingested_file::SourceFile;
use connector_core::schema::TableSchema;
use encoding_rs::Encoding;
use futures::StreamExt;
use tokio::io::AsyncBufRead;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::avro_rows::open_avro;
use crate::binary_rows::{DEFAULT_MAX_BINARY_FILE_BYTES, binary_row};
use crate::csv_blocks::CsvBlocks;
use crate::csv_rows::{BlockRows, CsvLayout, block_rows, text_rows_for_table};
use crate::csv_typed_rows::TypedCsvRows;
use crate::file_bytes::open_decoded;
use crate::format::Format;
use crate::format_options::{CsvDialect, FormatOptions};
use crate::json_chunks::JsonChunks;
use crate::json_rows::JsonRows;
use crate::line_chunks::LineChunks;
use crate::location::FileLocation;
use crate::ordered_parses::OrderedParses;
use crate::parquet_rows::ParquetRowGroups;
use crate::read_errors::{decode_error, read_error, store_error};
use crate::rescued_data::RowOrigin;
use crate::row_sink::RowSink;
use crate::text_encoding::in_utf8;
use crate::text_rows::text_rows;
use crate::text_types::TimeFormats;
use crate::typed_rows::typed_rows_for_table;

/// A format with its options, ready to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    Csv(CsvDialect),
    /// JSON lines, or an array of records; with `multi_line`, records over several lines.
    Json {
        multi_line: bool,
        /// `None`: UTF-8, read as it is.
        encoding: Option<&'static Encoding>,
        times: TimeFormats,
    },
    Parquet,
    Avro,
    Text {
        /// `None`: UTF-8, read as it is.
        encoding: Option<&'static Encoding>,
    },
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
            Format::JsonLines => FileFormat::Json {
                multi_line: options.multi_line.unwrap_or(false),
                encoding: options.encoding()?,
                times: options.times()?,
            },
            Format::Parquet => FileFormat::Parquet,
            Format::Avro => FileFormat::Avro,
            Format::Text => FileFormat::Text { encoding: options.encoding()? },
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
            return read_csv(in_utf8(bytes, dialect.encoding), file, dialect, table, strict, rows).await;
        }
        FileFormat::Json { multi_line, encoding, times } => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))? else {
                return Ok(FileRead::Vanished);
            };
            let decoder = JsonRows::new(&table, times.clone());
            return read_json(in_utf8(bytes, *encoding), file, *multi_line, decoder, strict, rows).await;
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
        FileFormat::Text { encoding } => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))? else {
                return Ok(FileRead::Vanished);
            };
            let mut chunks = LineChunks::new(in_utf8(bytes, *encoding));
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
        FileFormat::Parquet => return read_parquet(location, file, table, strict, rows).await,
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

/// A CSV file's rows: cut into blocks ([`CsvBlocks`]) parsed and cast on several tasks at once, handed to `rows`
/// in the file's order.
async fn read_csv<R: AsyncBufRead + Unpin, S: RowSink>(
    mut text: R,
    file: &SourceFile,
    dialect: &CsvDialect,
    table: Vec<Field>,
    strict: bool,
    rows: &mut S,
) -> Result<FileRead> {
    let Some(layout) = CsvLayout::open(&mut text, dialect).await.map_err(|cause| decode_error(file, "CSV", cause))?
    else {
        return Ok(FileRead::Complete);
    };
    let typed = TypedCsvRows::new(&layout, &table, &dialect.times).map(Arc::new);
    let (layout, table, times) = (Arc::new(layout), Arc::new(table), Arc::new(dialect.times.clone()));
    let path: Arc<str> = Arc::from(file.path.as_str());
    let mut blocks = CsvBlocks::new(text, dialect);
    let mut parses = OrderedParses::new();
    let (mut started, mut handed_over, mut more) = (0_usize, 0_usize, true);
    loop {
        while more && parses.has_room() {
            let Some(block) = blocks.next().await.map_err(|cause| decode_error(file, "CSV", cause))? else {
                more = false;
                break;
            };
            let (layout, table, times, path) = (layout.clone(), table.clone(), times.clone(), path.clone());
            let (typed, first) = (typed.clone(), started == 0);
            parses.start(move || block_rows(&layout, typed.as_deref(), &block, first, &table, &times, &path, strict));
            started += 1;
        }
        let Some(parsed) = parses.next().await else { return Ok(FileRead::Complete) };
        let (first, block_first_row) = (handed_over == 0, rows.rows_taken());
        handed_over += 1;
        let parsed = parsed
            .map_err(|cause| read_error(file, "CSV", cause))?
            .map_err(|cause| decode_error(file, "CSV", layout.in_file(cause, block_first_row, first)))?;
        match parsed {
            BlockRows::Rows(batches) => {
                for batch in batches {
                    if !rows.take(&batch).await? {
                        return Ok(FileRead::Complete);
                    }
                }
            }
            BlockRows::Unfit { text, rows_before } => {
                let origin = RowOrigin { file_path: &file.path, first_row: block_first_row + rows_before, strict };
                let cause = match text_rows_for_table(&text, &table, &times, origin) {
                    Err(cause) => cause,
                    Ok(_) => "internal: rows that did not fit fit when cast again".to_string(),
                };
                return Err(read_error(file, "CSV", cause));
            }
        }
    }
}

/// A JSON file's rows: its record chunks ([`JsonChunks`]) decoded on several tasks at once, handed to `rows` in
/// the file's order.
async fn read_json<R: AsyncBufRead + Unpin, S: RowSink>(
    bytes: R,
    file: &SourceFile,
    multi_line: bool,
    decoder: JsonRows,
    strict: bool,
    rows: &mut S,
) -> Result<FileRead> {
    let decoder = Arc::new(decoder);
    let path: Arc<str> = Arc::from(file.path.as_str());
    let mut chunks = JsonChunks::open(bytes, multi_line).await.map_err(|cause| decode_error(file, "JSON", cause))?;
    let mut parses = OrderedParses::new();
    let mut more = true;
    loop {
        while more && parses.has_room() {
            let Some(lines) = chunks.next_owned().await.map_err(|cause| decode_error(file, "JSON", cause))? else {
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
        let Some(parsed) = parses.next().await else { return Ok(FileRead::Complete) };
        let batch = match parsed.map_err(|cause| read_error(file, "JSON", cause))? {
            Ok(batch) => batch,
            Err(lines) => {
                let origin = RowOrigin { file_path: &file.path, first_row: rows.rows_taken(), strict };
                let cause = match decoder.decode(&lines, origin) {
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

/// A Parquet file's rows: a row group at a time, on as many tasks as cores when the file has several and the
/// sink takes rows in any order (each batch tells its first row's number), else in order on this task. Memory
/// holds a few batches per task: a task waits while its finished batches are not taken.
async fn read_parquet<S: RowSink>(
    location: &FileLocation,
    file: &SourceFile,
    table: Vec<Field>,
    strict: bool,
    rows: &mut S,
) -> Result<FileRead> {
    let Some(groups) =
        ParquetRowGroups::open(location, file).await.map_err(|cause| decode_error(file, "Parquet", cause))?
    else {
        return Ok(FileRead::Vanished);
    };
    let tasks = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).min(groups.count());
    if tasks < 2 || !rows.takes_any_order() {
        let mut stream =
            groups.rows((0..groups.count()).collect()).map_err(|cause| decode_error(file, "Parquet", cause))?;
        while let Some(batch) = stream.next().await.transpose().map_err(|cause| decode_error(file, "Parquet", cause))? {
            let origin = RowOrigin { file_path: &file.path, first_row: rows.rows_taken(), strict };
            let batch =
                typed_rows_for_table(&batch, &table, origin).map_err(|cause| read_error(file, "Parquet", cause))?;
            if !rows.take(&batch).await? {
                break;
            }
        }
        return Ok(FileRead::Complete);
    }

    let (groups, table, file) = (Arc::new(groups), Arc::new(table), Arc::new(file.clone()));
    let next_group = Arc::new(AtomicUsize::new(0));
    let (sender, mut finished) = mpsc::channel::<Result<(RecordBatch, u64)>>(tasks * 2);
    let mut readers = JoinSet::new();
    for _ in 0..tasks {
        let (groups, table, file, next_group, sender) =
            (groups.clone(), table.clone(), file.clone(), next_group.clone(), sender.clone());
        readers.spawn(async move {
            loop {
                let index = next_group.fetch_add(1, Ordering::Relaxed);
                if index >= groups.count() {
                    return;
                }
                if let Err(error) = read_row_group(&groups, index, &table, &file, strict, &sender).await {
                    // The receiver is gone only when the reader stopped early; then nothing is waiting.
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            }
        });
    }
    drop(sender);
    while let Some(batch) = finished.recv().await {
        let (batch, first_row) = batch?;
        if !rows.take_at(&batch, first_row).await? {
            // Dropping the set aborts the readers still running.
            return Ok(FileRead::Complete);
        }
    }
    // Every reader has let go of its sender; one that ended abnormally sent nothing more, so its rows are not
    // all there: that must stop the batch.
    while let Some(ended) = readers.join_next().await {
        ended.map_err(|panic| Error::state(format!("internal: reading {} ended abnormally: {panic}", file.path)))?;
    }
    Ok(FileRead::Complete)
}

/// Sends the rows of row group `index`, cast to the table's columns, with each batch's first row's number.
async fn read_row_group(
    groups: &ParquetRowGroups,
    index: usize,
    table: &[Field],
    file: &SourceFile,
    strict: bool,
    finished: &mpsc::Sender<Result<(RecordBatch, u64)>>,
) -> Result<()> {
    let mut stream = groups.rows(vec![index]).map_err(|cause| decode_error(file, "Parquet", cause))?;
    let mut first_row = groups.first_row(index);
    while let Some(batch) = stream.next().await.transpose().map_err(|cause| decode_error(file, "Parquet", cause))? {
        let origin = RowOrigin { file_path: &file.path, first_row, strict };
        let batch = typed_rows_for_table(&batch, table, origin).map_err(|cause| read_error(file, "Parquet", cause))?;
        let count = batch.num_rows() as u64;
        if finished.send(Ok((batch, first_row))).await.is_err() {
            return Ok(());
        }
        first_row += count;
    }
    Ok(())
}
