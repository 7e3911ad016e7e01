//! Parquet files: their own schema, read a row group at a time from the store and cast to the table's columns.
//! A file of several row groups is read by several tasks at once, each taking the next row group not yet taken
//! (the footer says where each starts, so every row keeps its number in the file whatever order they finish in).

use std::sync::Arc;

use connector_core::arrow::datatypes::Field;
use std::ops::Range;

use bytes::Bytes;
use connector_core::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use connector_core::parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use connector_core::parquet::errors::ParquetError;
use connector_core::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use connector_core::ingested_file::SourceFile;

use crate::location::FileLocation;
use crate::stored_types::stored_field;

/// Rows decoded at once.
const BATCH_ROWS: usize = 16 * 1024;

/// Bytes read past the footer's length when loading a file's metadata: most footers fit, saving a request.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// A Parquet file in a store, read by byte ranges. Written here rather than taken from `parquet`, whose own
/// `ParquetObjectReader` is deprecated in favour of this: it knows the file's size from the listing, so the
/// footer is one ranged read.
#[derive(Debug, Clone)]
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

/// A Parquet file whose footer is read: its row groups can be read on their own.
#[derive(Debug)]
pub struct ParquetRowGroups {
    reader: StoredParquetFile,
    metadata: ArrowReaderMetadata,
    /// The number within the file of each row group's first row.
    first_rows: Vec<u64>,
}

impl ParquetRowGroups {
    /// Reads a Parquet file's footer; `None` when the file is gone since it was listed.
    pub async fn open(location: &FileLocation, file: &SourceFile) -> Result<Option<Self>, ParquetError> {
        let path = location.path_of(&file.path).map_err(|cause| ParquetError::External(Box::new(cause)))?;
        let mut reader = StoredParquetFile { store: location.store.clone(), path, size: file.size };
        let metadata = match ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await {
            Ok(metadata) => metadata,
            Err(ParquetError::External(cause))
                if cause
                    .downcast_ref::<object_store::Error>()
                    .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })) =>
            {
                return Ok(None);
            }
            Err(cause) => return Err(cause),
        };
        let first_rows = metadata
            .metadata()
            .row_groups()
            .iter()
            .scan(0u64, |next, group| {
                let first = *next;
                *next += u64::try_from(group.num_rows()).unwrap_or(0);
                Some(first)
            })
            .collect();
        Ok(Some(ParquetRowGroups { reader, metadata, first_rows }))
    }

    /// The file's columns as Delta stores them.
    pub fn columns(&self) -> Vec<Field> {
        self.metadata.schema().fields().iter().map(|field| stored_field(field)).collect()
    }

    /// The number of row groups.
    pub fn count(&self) -> usize {
        self.first_rows.len()
    }

    /// The number within the file of row group `index`'s first row.
    pub fn first_row(&self, index: usize) -> u64 {
        self.first_rows[index]
    }

    /// The rows of the row groups `indices`, in order.
    pub fn rows(&self, indices: Vec<usize>) -> Result<ParquetRecordBatchStream<StoredParquetFile>, ParquetError> {
        ParquetRecordBatchStreamBuilder::new_with_metadata(self.reader.clone(), self.metadata.clone())
            .with_row_groups(indices)
            .with_batch_size(BATCH_ROWS)
            .build()
    }
}
