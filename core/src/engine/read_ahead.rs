//! Events read while the tables merge. A merge takes seconds; a source not read meanwhile stops sending (its
//! socket fills, the server waits), so the time of every merge would be lost to the stream. The merge runs in
//! its own task, since the Delta writer's work holds its thread (parquet encoding, local files, tables merged
//! side by side on scoped threads), while this task reads; the events read wait here, undecoded, and are
//! handled after the merge in the order they came.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::captured_tables::{CapturedTables, TableChanges};
use super::change_stream::{ChangeStream, EventOf, EventReader, FailureOf};
use super::chunk_rows::Chunk;
use crate::error::{Error, Result};
use crate::position::SourcePosition;

/// A merge of the tables' buffers into Delta.
pub(super) enum Merge {
    /// Every closed transaction (`CapturedTables::commit`).
    Commit,
    /// The closed transactions and the open one's rows so far (`CapturedTables::commit_with_open_part`).
    OpenPart(SourcePosition, DateTime<Utc>),
    /// A chunk of a table's copy, read at `position` (`CapturedTables::apply_chunk`).
    Chunk { table: usize, chunk: Chunk, position: SourcePosition },
    /// Idle tables' cursors moved to `position` (`CapturedTables::advance_idle`).
    IdleCursors(SourcePosition),
}

impl Merge {
    /// Runs the merge; `Ok(false)` when an open part left some table's closed transactions buffered (see
    /// `commit_with_open_part`), else `Ok(true)`.
    async fn run<T: TableChanges>(self, mut tables: CapturedTables<T>) -> (CapturedTables<T>, Result<bool>) {
        let merged = match self {
            Merge::Commit => tables.commit().await.map(|()| true),
            Merge::OpenPart(position, commit_time) => tables.commit_with_open_part((position, commit_time)).await,
            Merge::Chunk { table, chunk, position } => tables.apply_chunk(table, chunk, position).await.map(|()| true),
            Merge::IdleCursors(position) => tables.advance_idle(&position).await.map(|()| true),
        };
        (tables, merged)
    }
}

/// The events read ahead of the stream's handling, bounded by their bytes.
pub(super) struct ReadAhead<S: ChangeStream> {
    events: VecDeque<EventOf<S>>,
    /// A read that failed after `events`: it ends the sync once they are handled.
    failure: Option<FailureOf<S>>,
    bytes: usize,
    limit_bytes: usize,
}

impl<S: ChangeStream> ReadAhead<S> {
    /// Reads ahead up to `limit_bytes` of events (at least one event, however large).
    pub fn new(limit_bytes: usize) -> Self {
        ReadAhead { events: VecDeque::new(), failure: None, bytes: 0, limit_bytes }
    }

    /// The next event: the oldest read ahead, else one read now. Cancel-safe, as the reader is.
    pub async fn next_event(&mut self, stream: &mut S) -> Result<EventOf<S>> {
        if let Some(event) = self.events.pop_front() {
            self.bytes -= S::Reader::event_bytes(&event);
            return Ok(event);
        }
        if let Some(failure) = self.failure.take() {
            return Err(stream.read_failed(failure));
        }
        let read = stream.reader_and_tables().0.next_event().await;
        read.map_err(|failure| stream.read_failed(failure))
    }

    /// Runs `merge` on the stream's tables in a task of its own, reading events meanwhile until the budget is
    /// full or a read fails. The merge is never cancelled: a failed read waits for its turn. The stream's
    /// tables are empty while the merge holds them; only its reader is used meanwhile.
    pub async fn while_merging(&mut self, stream: &mut S, merge: Merge) -> Result<bool> {
        let (reader, tables) = stream.reader_and_tables();
        let lent = std::mem::replace(tables, CapturedTables::new(Vec::new()));
        let mut task = tokio::spawn(merge.run(lent));
        let (returned, merged) = loop {
            let room = self.failure.is_none() && self.bytes < self.limit_bytes;
            tokio::select! {
                biased;
                joined = &mut task => match joined {
                    Ok(done) => break done,
                    // The merge's panic is the engine's, as it was before the merge had a task.
                    Err(failed) => match failed.try_into_panic() {
                        Ok(panic) => std::panic::resume_unwind(panic),
                        Err(failed) => return Err(Error::state(format!("internal: a merge was cancelled: {failed}"))),
                    },
                },
                read = reader.next_event(), if room => match read {
                    Ok(event) => {
                        self.bytes += S::Reader::event_bytes(&event);
                        self.events.push_back(event);
                    }
                    Err(failure) => self.failure = Some(failure),
                },
            }
        };
        *tables = returned;
        merged
    }

    /// How many events wait (a shutdown abandons them: they were never acknowledged).
    pub fn waiting(&self) -> usize {
        self.events.len()
    }
}
