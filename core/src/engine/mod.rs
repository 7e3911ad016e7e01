//! The capture engine: what every source shares, written once so each gets the guarantees by construction.
//!
//! A source with a log of transactions (a replication slot, a binlog) implements [`ChangeStream`] (its
//! protocol: open, read an event, decode it into the tables' buffers, acknowledge); [`stream_changes`] runs the
//! loop: the commit budget (size, age), parts of transactions too large for memory, the tables merging side by
//! side, tables copied in chunks while they stream, acknowledgement only after the Delta commit, idle cursors,
//! heartbeats and shutdown.
//!
//! A source read in pages from a token (an API, a topic) implements [`PolledStream`];
//! [`poll_streams`] runs every stream side by side, reading ahead while a batch merges and committing each
//! batch with the token after it.
//!
//! A source of files (a directory, a bucket) implements [`FileSource`]; [`ingest_files`] lists, skips the files
//! the table's ledger holds and commits each batch of new files whole, with the files recorded in the ledger.
//! `docs/architecture.md` draws the whole design.

mod captured_tables;
mod change_stream;
mod chunk_queue;
mod chunk_rows;
mod chunked_copy;
mod commit_budget;
mod file_backlog;
mod file_load;
mod file_loop;
mod file_source;
mod parallel_copies;
mod parquet_encoder;
mod poll_loop;
mod polled_stream;
mod read_ahead;
#[cfg(test)]
mod scripted_files_tests;
#[cfg(test)]
mod scripted_polled_tests;
#[cfg(test)]
mod scripted_source_tests;
mod shaped_changes;
mod stream_loop;
mod table_copies;
#[cfg(test)]
mod temporary_lake;

pub use captured_tables::{CapturedTable, CapturedTables, TableChanges, report_streamed};
pub use change_stream::{ChangeStream, EventOf, EventReader, FailureOf, IdleCursors, Started, StreamStep};
pub use chunk_rows::{Chunk, ChunkRows};
pub use chunked_copy::{
    ChunkRead, ChunkReader, ChunkRequest, ChunkStart, ChunkedCopy, SharedChunkReader, chunk_key, integer_keys,
};
pub use commit_budget::{CommitBudget, commit_check_period};
pub use file_backlog::{FileBacklog, file_backlog};
pub use file_load::{LoadMode, LoadReport, load_files};
pub use file_loop::{FileSettings, ingest_files};
pub use file_source::{FileListing, FileRead, FileRows, FileSource};
pub use poll_loop::{PollSettings, poll_streams};
pub use polled_stream::{DecodedRows, PolledPage, PolledStream, RecordDecoder};
pub use shaped_changes::{DecodingShape, ShapedChanges};
pub use stream_loop::stream_changes;
pub use table_copies::{TableCopies, copy_whole_tables, open_sync_tables, plan_table_copies};
