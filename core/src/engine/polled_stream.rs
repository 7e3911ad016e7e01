//! The contract between a polled source and the engine.
//!
//! A polled source has no log of transactions: it is read page by page from a token only it understands (an
//! API's paging state, a topic's offsets). Each page carries the token *after* it, and
//! the engine commits a batch of pages' rows with the last page's token in one Delta commit
//! ([`TokenCursor`](crate::position::TokenCursor)), so a sync stopped at any instant resumes at the next page
//! after the last commit. Each stream lands in its own table; the streams of a pipeline run side by side.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::arrow::array::RecordBatch;
use crate::arrow::datatypes::Field;
use crate::change::Operation;
use crate::error::Result;
use crate::options::TableOptions;
use crate::schema::{TableId, TableSchema};

/// One stream of a polled source.
///
/// The guarantees rest on these promises:
/// - reading from a page's `token` returns what follows the page: a token never points past a record that is
///   not in its page or an earlier one;
/// - records read again are harmless (the table merges them by key, or the source's tokens never repeat a
///   record for an appended table);
/// - a source never records its progress anywhere but in the tokens the engine commits.
pub trait PolledStream: Send + Sync + 'static {
    /// The records of one page as read. They become rows on the committing task, while the reading task
    /// already waits for the next page.
    type Records: Send + 'static;
    /// Makes records into rows.
    type Decoder: RecordDecoder<Records = Self::Records>;

    /// The table the stream lands in.
    fn table_id(&self) -> TableId;

    /// Learns what the stream needs before its table opens (an API describing its object) and returns the
    /// table's declared schema, which creates it on the first sync.
    fn prepare(&self) -> impl Future<Output = Result<TableSchema>> + Send;

    /// The table's options (delete mode, partitioning, …).
    fn table_options(&self) -> TableOptions;

    /// The decoder of this sync's records, starting from the table's source columns as stored (`existing`).
    fn decoder(&self, existing: &[Field]) -> Result<Self::Decoder>;

    /// The token a pass starts from, given the token committed last (`None`: read from the start).
    fn start_pass(&self, committed: Option<&str>) -> Result<String>;

    /// Reads the page after `token`.
    fn next_page(&self, token: &str) -> impl Future<Output = Result<PolledPage<Self::Records>>> + Send;

    /// Told once `token` is durably committed with the rows before it: where a source may show its progress to
    /// tools outside the table (Kafka's consumer-group offsets, for lag monitors). Never read back, so it cannot
    /// fail the sync.
    fn committed(&self, token: &str) -> impl Future<Output = ()> + Send {
        let _ = token;
        async {}
    }
}

/// One page of a stream.
#[derive(Debug, Clone)]
pub struct PolledPage<R> {
    pub records: R,
    /// Where reading goes on after this page.
    pub token: String,
    /// The pass is over: the stream is caught up with the source as of now.
    pub caught_up: bool,
    /// When the source wrote the newest record of the page, where it says (Kafka's message timestamps): the
    /// commit's lag behind the source is measured from it.
    pub source_time: Option<DateTime<Utc>>,
}

/// Makes a stream's records into rows of its columns, which grow as records bring fields not seen before.
pub trait RecordDecoder: Send + 'static {
    type Records;

    /// The records' rows in the stream's columns, after adding columns for fields seen for the first time, and
    /// each row's operation; `None` for no records. An error stops the pass; the pages before are committed.
    fn decode(&mut self, records: Self::Records) -> Result<Option<DecodedRows>>;

    /// The stream's columns as of the records decoded so far.
    fn schema(&self) -> &TableSchema;
}

/// Rows of one page.
#[derive(Debug, Clone)]
pub struct DecodedRows {
    pub rows: RecordBatch,
    /// One per row: inserts and updates upsert by the table's key, deletes remove the row with its key.
    pub operations: Vec<Operation>,
}
