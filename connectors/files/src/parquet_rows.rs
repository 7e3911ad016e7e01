//! Parquet files: their own schema, read a row group at a time from the store and cast to the table's columns.

use std::sync::Arc;

use connector_core::arrow::array::{Array, ArrayRef, RecordBatch, new_null_array};
use connector_core::arrow::compute::cast;
use connector_core::arrow::datatypes::{Field, Schema};
use connector_core::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::ops::Range;

use bytes::Bytes;
use connector_core::parquet::arrow::arrow_reader::ArrowReaderOptions;
use connector_core::parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use connector_core::parquet::errors::ParquetError;
use connector_core::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryFutureExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Value;

use connector_core::ingested_file::SourceFile;

use crate::location::FileLocation;
use crate::rescued_data::RescuedValues;
use crate::stored_types::stored_field;

/// Rows decoded at once.
const BATCH_ROWS: usize = 16 * 1024;

/// Bytes read past the footer's length when loading a file's metadata: most footers fit, saving a request.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// A Parquet file in a store, read by byte ranges. Written here rather than taken from `parquet`, whose own
/// `ParquetObjectReader` is deprecated in favour of this: it knows the file's size from the listing, so the
/// footer is one ranged read.
#[derive(Debug)]
pub struct StoredParquetFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn store_error(cause: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(cause))
}

impl AsyncFileReader for StoredParquetFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        self.store.get_range(&self.path, range).map_err(store_error).boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>, ParquetError>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(store_error) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Opens a Parquet file's rows; `None` when the file is gone since it was listed.
pub async fn open_parquet(
    location: &FileLocation,
    file: &SourceFile,
) -> Result<Option<ParquetRecordBatchStream<StoredParquetFile>>, ParquetError> {
    let path = location.path_of(&file.path).map_err(|cause| ParquetError::External(Box::new(cause)))?;
    let reader = StoredParquetFile { store: location.store.clone(), path, size: file.size };
    match ParquetRecordBatchStreamBuilder::new(reader).await {
        Ok(builder) => builder.with_batch_size(BATCH_ROWS).build().map(Some),
        Err(ParquetError::External(cause))
            if cause
                .downcast_ref::<object_store::Error>()
                .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })) =>
        {
            Ok(None)
        }
        Err(cause) => Err(cause),
    }
}

/// The columns of a Parquet file as Delta stores them.
pub fn parquet_columns(stream: &ParquetRecordBatchStream<StoredParquetFile>) -> Vec<Field> {
    stream.schema().fields().iter().map(|field| stored_field(field)).collect()
}

/// The next rows of a Parquet file.
pub async fn next_parquet_rows(
    stream: &mut ParquetRecordBatchStream<StoredParquetFile>,
) -> Result<Option<RecordBatch>, ParquetError> {
    stream.next().await.transpose()
}

/// Rows of a Parquet file as the table's source columns: each cast to its column's type, missing ones null, and
/// the values of columns the table lacks kept in `_rescued_data` (as text).
pub fn parquet_rows_for_table(rows: &RecordBatch, table: &[Field], file_path: &str) -> Result<RecordBatch, String> {
    let count = rows.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.len());
    for field in table {
        let column = match rows.column_by_name(field.name()) {
            None => new_null_array(field.data_type(), count),
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => cast(column, field.data_type()).map_err(|cause| {
                format!(
                    "column `{}` of {file_path} is {}, which does not convert to the table's {}: {cause}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                )
            })?,
        };
        columns.push(column);
    }
    let mut rescued = RescuedValues::new(count);
    for (index, field) in rows.schema().fields().iter().enumerate() {
        if table.iter().any(|column| column.name() == field.name()) {
            continue;
        }
        let options = FormatOptions::default().with_null("");
        let formatter = ArrayFormatter::try_new(rows.column(index).as_ref(), &options)
            .map_err(|cause| format!("internal: {cause}"))?;
        for row in (0..count).filter(|&row| rows.column(index).is_valid(row)) {
            rescued.keep(row, field.name(), Value::String(formatter.value(row).to_string()));
        }
    }
    rescued.place_in(&mut columns, table, file_path)?;
    RecordBatch::try_new(Arc::new(Schema::new(table.to_vec())), columns).map_err(|cause| format!("internal: {cause}"))
}
