//! Where the rows a file's reader decodes go: the table's Parquet files (a sync or a load), or memory (a
//! preview, which wants the first rows only).

use std::future::Future;

use connector_core::arrow::array::RecordBatch;
use connector_core::engine::FileRows;
use connector_core::error::Result;

/// Takes a file's rows in order, in the table's source columns.
pub trait RowSink: Send {
    /// Takes the next rows; `false` once it wants no more, and the reader stops.
    fn take(&mut self, rows: &RecordBatch) -> impl Future<Output = Result<bool>> + Send;

    /// The rows of the file taken so far: the number, from 0, of the next one.
    fn rows_taken(&self) -> u64;
}

impl RowSink for FileRows {
    async fn take(&mut self, rows: &RecordBatch) -> Result<bool> {
        self.write(rows).await.map(|()| true)
    }

    fn rows_taken(&self) -> u64 {
        self.rows_written()
    }
}
