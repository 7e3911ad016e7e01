//! The tables a stream captures, each with its Delta writer and the source's buffer of changes not yet
//! committed, and the commits of those buffers.

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;
use tracing::{debug, info};

use super::chunk_rows::{Chunk, ChunkContent};
use super::chunked_copy::ChunkedCopy;
use crate::change_buffer::{ChangeBuffer, ColumnRows, TakenRows};
use crate::copy_progress::Copied;
use crate::delta::{ApplyOutcome, DeltaTableWriter, apply_each};
use crate::error::{Error, Result};
use crate::metrics::metrics;
use crate::pipeline::TableReport;
use crate::position::SourcePosition;
use crate::schema::TableId;

/// A source's state of one table it streams, holding the table's change buffer in the source's own column
/// builders (and whatever the source needs to decode the table: its shape, types, …).
pub trait TableChanges: Send + 'static {
    type Columns: ColumnRows + Send;

    fn changes(&self) -> &ChangeBuffer<Self::Columns>;
    fn changes_mut(&mut self) -> &mut ChangeBuffer<Self::Columns>;
}

/// One captured table.
#[derive(Debug)]
pub struct CapturedTable<T> {
    pub writer: DeltaTableWriter,
    /// The source's state of the table.
    pub source: T,
    /// The table's copy in chunks, while it lasts: changes to rows not copied yet are dropped.
    pub chunked: Option<ChunkedCopy>,
    /// Rows copied while streaming (chunks, or a table that appeared mid-stream).
    pub snapshot_rows: u64,
    pub changes_applied: u64,
    /// The table's `connector_rows_read_total`, held so that a transaction's count costs no label lookup.
    rows_read: Counter,
    /// The table's `connector_bytes_read_total`: the bytes of the source's messages about it.
    bytes_read: Counter,
}

impl<T: TableChanges> CapturedTable<T> {
    pub fn new(writer: DeltaTableWriter, source: T) -> Self {
        let rows_read = metrics().rows_read(writer.pipeline(), writer.table_id());
        let bytes_read = metrics().bytes_read(writer.pipeline(), writer.table_id());
        CapturedTable { writer, source, chunked: None, snapshot_rows: 0, changes_applied: 0, rows_read, bytes_read }
    }

    /// Counts a whole copy made while streaming (a table that appeared mid-stream) as rows copied and read.
    pub fn count_copy(&mut self, copied: Copied) {
        self.snapshot_rows += copied.rows;
        self.rows_read.inc_by(copied.rows);
        self.bytes_read.inc_by(copied.bytes);
    }

    /// The table, copied in chunks while it streams (`None`: copied already).
    pub fn copied_in_chunks(mut self, copy: Option<ChunkedCopy>) -> Self {
        self.chunked = copy;
        self
    }

    /// Applies taken rows (whole transactions, or with `part` the open one's first rows) and counts them.
    async fn apply(&mut self, taken: TakenRows, part: bool) -> Result<()> {
        let taken = match &self.chunked {
            Some(copy) => match copy.keep_copied(taken)? {
                Some(kept) => kept,
                None => return Ok(()),
            },
            None => taken,
        };
        if part {
            info!(table = %taken.schema.id, rows = taken.operations.len(), "applying part of a large transaction");
        }
        if let Some(span) = taken.spans.last() {
            self.writer.note_source_commit(span.commit_time);
        }
        let (rows, outcome) = self.writer.apply_taken(taken, part).await?;
        debug!(table = %self.writer.table_id(), rows, ?outcome, "committed changes");
        if !matches!(outcome, ApplyOutcome::AlreadyCommitted) {
            self.changes_applied += rows as u64;
        }
        Ok(())
    }

    /// Commits the table's closed transactions (all before the chunk's snapshot), then the chunk's rows with
    /// the cursor `position` (where the chunk was read) and the copy's new bound.
    async fn apply_chunk(&mut self, chunk: Chunk, position: SourcePosition) -> Result<()> {
        if let Some(taken) = self.source.changes_mut().take_closed()? {
            self.apply(taken, false).await?;
        }
        let id = self.writer.table_id().clone();
        let Some(copy) = self.chunked.as_mut() else {
            return Err(Error::state(format!("internal: a chunk of {id} arrived after its copy ended")));
        };
        // A snapshot older than the table's cursor would move the cursor back past changes it skipped.
        if let Some(cursor) = self.writer.cursor()
            && position.try_cmp(&cursor.position).is_ok_and(std::cmp::Ordering::is_lt)
        {
            return Err(Error::state(format!(
                "internal: a chunk of {id} was read at {position}, before the table's cursor {}",
                cursor.position
            )));
        }
        let rows = chunk.row_count;
        if let Some(key) = chunk.last_key {
            copy.copied_up_to = Some(key);
        }
        copy.rows_copied += rows;
        let cursor = copy.cursor_after(position.clone(), chunk.complete);
        let (rows_copied, bound) = (copy.rows_copied, copy.copied_up_to);
        match chunk.rows {
            ChunkContent::Written(files) => self.writer.commit_snapshot_files(files, cursor).await?,
            ChunkContent::Held(batches) => {
                let mut writer = self.writer.snapshot_writer(&chunk.schema, &position, Utc::now()).await?;
                for batch in batches.iter().filter(|batch| batch.num_rows() > 0) {
                    writer.write(batch).await?;
                }
                writer.commit(cursor).await?;
            }
        }
        self.snapshot_rows += rows;
        self.rows_read.inc_by(rows);
        self.bytes_read.inc_by(chunk.byte_count);
        if chunk.complete {
            info!(table = %id, rows = rows_copied, "copied the table");
            self.chunked = None;
        } else {
            info!(table = %id, rows = rows_copied, copied_up_to = ?bound, %position, "copied a chunk");
        }
        Ok(())
    }
}

/// Adds what the stream did to `tables` to their reports (in the same order; tables the stream added, created
/// while it ran, get reports after the others): rows copied while streaming, changes applied, positions.
pub fn report_streamed<T>(reports: &mut Vec<TableReport>, tables: &[CapturedTable<T>]) {
    for table in tables.iter().skip(reports.len()) {
        reports.push(TableReport::new(table.writer.table_id().clone()));
    }
    for (report, table) in reports.iter_mut().zip(tables) {
        report.snapshot_rows += table.snapshot_rows;
        report.changes_applied = table.changes_applied;
        report.position = table.writer.cursor().map(|cursor| cursor.position.clone());
    }
}

/// The tables of a stream, and what they buffer.
#[derive(Debug)]
pub struct CapturedTables<T> {
    tables: Vec<CapturedTable<T>>,
    /// Tables with rows in the open transaction.
    touched: Vec<usize>,
    /// When the oldest change not yet committed was buffered.
    oldest_pending: Option<Instant>,
}

impl<T: TableChanges> CapturedTables<T> {
    pub fn new(tables: Vec<CapturedTable<T>>) -> Self {
        CapturedTables { tables, touched: Vec::new(), oldest_pending: None }
    }

    pub fn get(&self, index: usize) -> &CapturedTable<T> {
        &self.tables[index]
    }

    pub fn get_mut(&mut self, index: usize) -> &mut CapturedTable<T> {
        &mut self.tables[index]
    }

    pub fn iter(&self) -> impl Iterator<Item = &CapturedTable<T>> {
        self.tables.iter()
    }

    /// The index of table `id`, if captured.
    pub fn position(&self, id: &TableId) -> Option<usize> {
        self.tables.iter().position(|table| table.writer.table_id() == id)
    }

    /// Adds a table (one that appeared mid-stream); returns its index.
    pub fn push(&mut self, table: CapturedTable<T>) -> usize {
        self.tables.push(table);
        self.tables.len() - 1
    }

    pub fn into_inner(self) -> Vec<CapturedTable<T>> {
        self.tables
    }

    /// Counts `bytes` of the source's messages about table `index` (a WAL message, a binlog rows event) as read.
    pub fn count_bytes_read(&self, index: usize, bytes: usize) {
        self.tables[index].bytes_read.inc_by(bytes as u64);
    }

    /// Notes that rows of the open transaction were appended to table `index`.
    pub fn touch(&mut self, index: usize) {
        if !self.touched.contains(&index) {
            self.touched.push(index);
        }
        self.oldest_pending.get_or_insert_with(Instant::now);
    }

    /// Closes the open transaction's rows, in every table it touched, at `position` where it committed.
    pub fn close_transaction(&mut self, position: &SourcePosition, commit_time: DateTime<Utc>) {
        for index in self.touched.drain(..) {
            let table = &mut self.tables[index];
            let rows = table.source.changes_mut().close_transaction(position.clone(), commit_time);
            table.rows_read.inc_by(rows as u64);
        }
    }

    /// When the oldest change not yet committed was buffered.
    pub fn oldest_pending(&self) -> Option<Instant> {
        self.oldest_pending
    }

    /// Whether any table buffers changes not yet committed.
    pub fn hold_changes(&self) -> bool {
        self.tables.iter().any(|table| table.source.changes().rows() > 0)
    }

    /// Memory the buffered changes of every table take.
    pub fn buffered_bytes(&self) -> usize {
        self.tables.iter().map(|table| table.source.changes().buffered_bytes()).sum()
    }

    /// Memory the buffered changes of the tables that can take a transaction in parts take.
    pub fn partial_buffered_bytes(&self) -> usize {
        self.tables
            .iter()
            .filter(|table| table.writer.accepts_partial_transactions())
            .map(|table| table.source.changes().buffered_bytes())
            .sum()
    }

    /// Commits every closed transaction to Delta, the tables merging side by side (`apply_each`). Must not be
    /// called inside a transaction.
    pub async fn commit(&mut self) -> Result<()> {
        let mut batches = Vec::new();
        for table in self.tables.iter_mut() {
            if let Some(taken) = table.source.changes_mut().take_closed()? {
                batches.push((table, taken));
            }
        }
        apply_each(batches, |(table, taken)| table.apply(taken, false)).await?;
        self.oldest_pending = None;
        Ok(())
    }

    /// Mid-transaction, with the memory budget used up: commits every closed transaction, and the open one's
    /// rows so far as a part labelled `open` (`DeltaTableWriter::apply_partial_transaction`: the cursor stays
    /// before the transaction, so a crash replays it whole and the merge makes the replay harmless). Tables
    /// whose mode needs whole transactions keep buffering. Returns whether every closed transaction was
    /// committed (only then may the received position be acknowledged).
    pub(super) async fn commit_with_open_part(&mut self, open: (SourcePosition, DateTime<Utc>)) -> Result<bool> {
        let mut closed_all = true;
        for table in self.tables.iter_mut() {
            let changes = table.source.changes_mut();
            let (closed, open_part) = if table.writer.accepts_partial_transactions() {
                changes.take_with_open_part(open.clone())?
            } else if changes.open_rows() == 0 {
                (changes.take_closed()?, None)
            } else {
                closed_all = false;
                continue;
            };
            if let Some(taken) = closed {
                table.apply(taken, false).await?;
            }
            if let Some(taken) = open_part {
                table.apply(taken, true).await?;
            }
        }
        // A table that kept buffering keeps the age of its oldest change: the commit interval still applies.
        if closed_all {
            self.oldest_pending = None;
        }
        Ok(closed_all)
    }

    /// Applies `chunk` of table `index`, read at `position` (see [`CapturedTable::apply_chunk`]). Must not be
    /// called inside a transaction.
    pub(super) async fn apply_chunk(&mut self, index: usize, chunk: Chunk, position: SourcePosition) -> Result<()> {
        self.tables[index].apply_chunk(chunk, position).await
    }

    /// Tables still being copied in chunks.
    pub fn copying(&self) -> impl Iterator<Item = (usize, &ChunkedCopy)> {
        self.tables.iter().enumerate().filter_map(|(index, table)| table.chunked.as_ref().map(|copy| (index, copy)))
    }

    /// Moves the cursor of tables without buffered changes up to `position`. A table holding anything not yet
    /// committed, even closed transactions waiting for the commit interval, keeps its cursor: moving it past
    /// them would make their commit look already done and drop them.
    pub(super) async fn advance_idle(&mut self, position: &SourcePosition) -> Result<()> {
        for table in self.tables.iter_mut() {
            // A table being copied keeps the cursor of its last chunk: a chunk read earlier may still come.
            if table.source.changes().rows() == 0 && table.chunked.is_none() {
                table.writer.advance_cursor(position).await?;
            }
        }
        Ok(())
    }
}
