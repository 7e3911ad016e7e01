//! The contract between a streaming source and the engine.
//!
//! A source reads its log (a replication slot, a binlog, a topic) as a sequence of events. The engine asks
//! for the next event, hands it back to the source to decode into the tables' change buffers, and decides
//! when to commit. Transactions are the unit of exactly-once: every row belongs to a transaction, closed at
//! the source position where it committed; what is committed to Delta carries that position as the table's
//! cursor, and only then is the source told it may forget it.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::captured_tables::{CapturedTables, TableChanges};
use super::chunked_copy::SharedChunkReader;
use crate::error::{Error, Result};
use crate::pipeline::SyncMode;
use crate::position::SourcePosition;

/// How a stream began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The stream is open: the engine reads events.
    Streaming,
    /// A `once` sync found nothing to read (the source is where the tables are): nothing was opened.
    AtEnd,
}

/// What an event meant to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStep {
    Continue,
    /// A `once` sync received everything present at its start: the engine commits and stops as soon as no
    /// transaction is open.
    ReachedEnd,
}

/// Whether tables without changes have their cursor moved forward as the stream moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleCursors {
    /// The source resumes from its tables' oldest cursor (a binlog): an idle table's cursor must follow the
    /// stream, or every run reads its history again and needs it kept.
    Advance,
    /// The source keeps its own position (a replication slot): idle tables' cursors may stay.
    Keep,
}

/// The reading half of a change stream: events off the wire, nothing decoded yet. Lent apart from the tables
/// (see [`ChangeStream::reader_and_tables`]) so the engine keeps reading while the tables merge.
pub trait EventReader: Send {
    /// One event of the source's log, as read from the wire.
    type Event: Send;
    /// Why a read failed; the stream turns it into the sync's error ([`ChangeStream::read_failed`]) once every
    /// event read before it is handled, so the error names the position where reading stopped.
    type Failure: Send;

    /// Waits for the next event. Must be cancel-safe: the engine drops it when a timer fires or a merge ends,
    /// and asks again.
    fn next_event(&mut self) -> impl Future<Output = std::result::Result<Self::Event, Self::Failure>> + Send;

    /// About how much memory `event` holds, to bound the events read ahead during a merge.
    fn event_bytes(event: &Self::Event) -> usize;
}

/// An event of stream `S`.
pub type EventOf<S> = <<S as ChangeStream>::Reader as EventReader>::Event;
/// A read failure of stream `S`.
pub type FailureOf<S> = <<S as ChangeStream>::Reader as EventReader>::Failure;

/// A source's change stream. The engine calls [`start`](Self::start) once, then alternates reading an event
/// ([`EventReader::next_event`]) and [`handle`](Self::handle), committing between them, and ends with
/// [`close`](Self::close). While the tables merge, the engine goes on reading events (up to a memory
/// budget) and handles them after the merge, in order.
///
/// The guarantees rest on these promises:
/// - [`handle`](Self::handle) closes a transaction (`CapturedTables::close_transaction`) only once all its rows
///   are in the buffers, at the position where it committed, and never gives a table a transaction its cursor
///   already covers;
/// - [`received`](Self::received) is a position up to which every transaction was handled whole (its rows
///   buffered, or none were the pipeline's);
/// - the source forgets history only when told by [`acknowledge`](Self::acknowledge), which the engine calls
///   with a position only after every buffered change up to it is committed to Delta. A source must never
///   acknowledge past that position on its own.
pub trait ChangeStream: Send {
    /// The source's state of one captured table, holding its change buffer.
    type Table: TableChanges;
    /// Reads the source's events.
    type Reader: EventReader;

    /// The stream's reader and the tables it decodes into (the pipeline owns them; the engine commits them),
    /// borrowed apart: the engine reads while the tables merge.
    fn reader_and_tables(&mut self) -> (&mut Self::Reader, &mut CapturedTables<Self::Table>);

    /// The tables the stream decodes into.
    fn tables(&mut self) -> &mut CapturedTables<Self::Table> {
        self.reader_and_tables().1
    }

    /// The sync's error for a failed read, asked once every event before the failure is handled.
    fn read_failed(&self, failure: FailureOf<Self>) -> Error;

    /// Opens the stream (for `once`: notes where the source stands now, the end to read to).
    fn start(&mut self, mode: SyncMode) -> impl Future<Output = Result<Started>> + Send;

    /// Decodes an event into the tables' buffers.
    fn handle(&mut self, event: EventOf<Self>) -> impl Future<Output = Result<StreamStep>> + Send;

    /// The open transaction, if any: the position and commit time that label a part of it applied before its
    /// end (see `DeltaTableWriter::apply_partial_transaction`). `None` between transactions.
    fn open_transaction(&self) -> Option<(SourcePosition, DateTime<Utc>)>;

    /// The position up to which every transaction was handled whole.
    fn received(&self) -> SourcePosition;

    /// Everything up to `position` is committed to Delta: the source may forget it. Called after every commit
    /// and on idle ticks, so often with a position the source was already told, which it ignores.
    fn acknowledge(&mut self, position: &SourcePosition);

    /// Whether idle tables' cursors follow the stream.
    fn idle_cursors(&self) -> IdleCursors;

    /// Called between events at the commit check period, for the source's own periodic work (heartbeats).
    fn on_tick(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// The reader of chunks for the tables copied while streaming (`CapturedTable::chunked`), and the rows per
    /// chunk; `None` for a source that copies its tables before streaming.
    fn chunk_reader(&self) -> Option<(SharedChunkReader, u64)> {
        None
    }

    /// Where the transaction `event` opens begins, to place it against a chunk's snapshot position: a
    /// transaction that begins at or after the position is not in the snapshot, one before it is. `None` for
    /// an event that opens no transaction. A source with a [`chunk_reader`](Self::chunk_reader) must say.
    fn transaction_start(&self, _event: &EventOf<Self>) -> Option<SourcePosition> {
        None
    }

    /// Ends the stream after the engine's last commit and acknowledgement.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}
