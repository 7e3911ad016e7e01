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

    /// Whether rows may be handed over in any order ([`take_at`](Self::take_at)), as a reader of several parts at
    /// once finishes them: a sink that keeps every row may; a preview, which wants the first rows, may not.
    fn takes_any_order(&self) -> bool;

    /// Takes rows whose first is row `first_row` of the file (from 0), in any order; only when
    /// [`takes_any_order`](Self::takes_any_order).
    fn take_at(&mut self, rows: &RecordBatch, first_row: u64) -> impl Future<Output = Result<bool>> + Send;
}

impl RowSink for FileRows {
    async fn take(&mut self, rows: &RecordBatch) -> Result<bool> {
        self.write(rows).await.map(|()| true)
    }

    fn rows_taken(&self) -> u64 {
        self.rows_written()
    }

    fn takes_any_order(&self) -> bool {
        true
    }

    async fn take_at(&mut self, rows: &RecordBatch, first_row: u64) -> Result<bool> {
        self.write_at(rows, first_row).await.map(|()| true)
    }
}
