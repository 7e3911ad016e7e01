//! The chunks being read for the tables a stream copies, each on its own task, and when each may be applied.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::chunk_rows::{Chunk, ChunkRows};
use super::chunked_copy::{ChunkRequest, ChunkStart, ChunkedCopy, SharedChunkReader};
use crate::delta::SnapshotFiles;
use crate::error::{Error, Result};
use crate::position::SourcePosition;
use crate::schema::TableId;

/// Chunks read at the same time, across tables. Each holds a snapshot (and on some servers a connection) open
/// while it reads.
const CHUNKS_READ_AT_ONCE: usize = 2;
/// Chunks of one table in flight: the next one is read as soon as the previous one's snapshot has found where it
/// ends, so two chunks of a table are read side by side (or one waits for the stream while the next is read).
const CHUNKS_PER_TABLE: usize = 2;
/// How long the stream waits for a chunk's snapshot to be taken before it gives the chunk up: a snapshot can
/// wait for the source's open transactions (a temporary slot's consistent point, a table lock), and the
/// stream must not stall behind one.
pub(super) const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// A chunk asked for and not yet applied.
#[derive(Debug)]
struct InFlight {
    id: u64,
    table: usize,
    table_id: TableId,
    /// The stream went on without the chunk (its snapshot took too long): the read runs to its end, as
    /// cancelling a snapshot that waits on the server would leave the server waiting, and its rows are dropped
    /// (its error stops the sync); the table's next chunk is asked for once it ends.
    given_up: bool,
    /// Where the chunk's snapshot sits in the stream and the key it reads up to, once the reader knows them.
    start: Option<ChunkStart>,
    /// The rows, once read.
    chunk: Option<Chunk>,
    /// The key the chunk reads after.
    after: Option<i128>,
    /// When the chunk was asked for and when its rows were read, for the debug log of where a copy's time goes.
    asked_at: Instant,
    read_at: Option<Instant>,
}

enum Update {
    Positioned { id: u64, start: ChunkStart },
    Read { id: u64, read: Result<Chunk> },
}

/// What the stream must do about the chunks before it hands the source an event that opens a transaction.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BeforeTransaction {
    /// No chunk lies before the transaction.
    Proceed,
    /// A chunk's snapshot is not taken yet: it may lie before the transaction.
    WaitForSnapshot,
    /// A chunk lies before the transaction and is still being read.
    WaitForRows,
    /// The chunk of this table, read at a position the transaction follows, is to be applied first.
    Apply(usize),
}

pub(super) struct ChunkQueue {
    reader: SharedChunkReader,
    rows_per_chunk: u64,
    in_flight: VecDeque<InFlight>,
    tasks: JoinSet<()>,
    sender: mpsc::UnboundedSender<Update>,
    updates: mpsc::UnboundedReceiver<Update>,
    next_id: u64,
    /// By table: the keys its last chunk read with both ends known spanned, and its rows.
    densities: HashMap<usize, (i128, u64)>,
}

impl ChunkQueue {
    pub(super) fn new(reader: SharedChunkReader, rows_per_chunk: u64) -> Self {
        let (sender, updates) = mpsc::unbounded_channel();
        ChunkQueue {
            reader,
            rows_per_chunk: rows_per_chunk.max(1),
            in_flight: VecDeque::new(),
            tasks: JoinSet::new(),
            sender,
            updates,
            next_id: 0,
            densities: HashMap::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Starts reading chunks for the tables being copied, within the limits: the first chunk of a table
    /// without one in flight, or the next after one whose end is known.
    /// `files` gives a table's id and a writer of its files for the chunk's rows.
    pub(super) fn read_more<'a>(
        &mut self,
        copying: impl Iterator<Item = (usize, &'a ChunkedCopy)>,
        files: impl Fn(usize) -> Result<(TableId, SnapshotFiles)>,
    ) -> Result<()> {
        for (table, copy) in copying {
            let reading = self.in_flight.iter().filter(|chunk| chunk.chunk.is_none()).count();
            if reading >= CHUNKS_READ_AT_ONCE {
                return Ok(());
            }
            let mine: Vec<&InFlight> = self.in_flight.iter().filter(|chunk| chunk.table == table).collect();
            let after = match mine.last() {
                None => copy.copied_up_to,
                Some(last) if last.given_up => continue,
                Some(last) if mine.len() < CHUNKS_PER_TABLE => match &last.start {
                    Some(ChunkStart { up_to: Some(key), .. }) => Some(*key),
                    _ => continue,
                },
                Some(_) => continue,
            };
            let (table_id, files) = files(table)?;
            let span = after.and(self.span_of(table));
            let request = ChunkRequest {
                table: table_id,
                key_column: copy.key_column.clone(),
                after,
                rows: self.rows_per_chunk,
                span,
            };
            self.start(table, request, files);
        }
        Ok(())
    }

    fn start(&mut self, table: usize, request: ChunkRequest, files: SnapshotFiles) {
        let id = self.next_id;
        self.next_id += 1;
        let table_id = request.table.clone();
        let after = request.after;
        let (positioned, position) = oneshot::channel();
        let rows = ChunkRows::new(&request, positioned, files);
        let read = self.reader.read_chunk(request, rows);
        let sender = self.sender.clone();
        self.tasks.spawn(async move {
            let forward = async {
                // A read that fails before its snapshot drops the sender: nothing to forward.
                if let Ok(start) = position.await {
                    let _ = sender.send(Update::Positioned { id, start });
                }
            };
            let ((), read) = tokio::join!(forward, read);
            let _ = sender.send(Update::Read { id, read });
        });
        self.in_flight.push_back(InFlight {
            id,
            table,
            table_id,
            given_up: false,
            start: None,
            chunk: None,
            after,
            asked_at: Instant::now(),
            read_at: None,
        });
    }

    /// Gives up the chunks whose snapshot is still not taken, so none of them can lie before the transaction the
    /// stream has waited [`SNAPSHOT_WAIT`] to hand on.
    pub(super) fn give_up_unpositioned(&mut self) {
        for chunk in self.in_flight.iter_mut().filter(|chunk| chunk.start.is_none() && !chunk.given_up) {
            warn!(
                table = %chunk.table_id,
                waited = ?SNAPSHOT_WAIT,
                "a chunk's snapshot waits for the source (open transactions or a lock); the stream goes on, and the \
                 copy tries again once that snapshot is taken"
            );
            chunk.given_up = true;
        }
    }

    /// Waits for the next news of a read (a snapshot taken, or rows read) and records it. Cancel-safe.
    pub(super) async fn next_update(&mut self) -> Result<()> {
        let Some(update) = self.updates.recv().await else {
            return Err(Error::state("internal: the chunk readers' channel closed"));
        };
        match update {
            Update::Positioned { id, start } => {
                let Some(index) = self.in_flight.iter().position(|chunk| chunk.id == id && !chunk.given_up) else {
                    return Ok(());
                };
                // A table's chunks must sit in the stream in the order they were asked for, or the later one
                // would wait on the earlier forever.
                let table = self.in_flight[index].table;
                let earlier = self.in_flight.iter().take(index).filter(|chunk| chunk.table == table && !chunk.given_up);
                for chunk in earlier {
                    if let Some(ChunkStart { position: earlier, .. }) = &chunk.start
                        && start.position.try_cmp(earlier).is_ok_and(std::cmp::Ordering::is_lt)
                    {
                        return Err(Error::state(format!(
                            "internal: a chunk of {} was read at {}, before the chunk asked for ahead of it \
                             ({earlier})",
                            chunk.table_id, start.position
                        )));
                    }
                }
                let chunk = &mut self.in_flight[index];
                debug!(table = %chunk.table_id, chunk = id, position = %start.position, after = ?chunk.asked_at.elapsed(),
                       "chunk snapshot taken");
                chunk.start = Some(start);
            }
            Update::Read { id, read } if self.in_flight.iter().any(|chunk| chunk.id == id && chunk.given_up) => {
                self.in_flight.retain(|chunk| chunk.id != id);
                // Its rows are dropped; its failure (say, a lock that timed out, naming what holds it) is the
                // sync's, as a copy that cannot start must not wait unseen.
                read?;
            }
            Update::Read { id, read } => {
                let chunk = read?;
                if let Some(entry) = self.in_flight.iter_mut().find(|entry| entry.id == id) {
                    if entry.start.is_none() {
                        return Err(Error::state("internal: a chunk was read without reporting its position"));
                    }
                    debug!(table = %entry.table_id, chunk = id, rows = chunk.row_count, after = ?entry.asked_at.elapsed(),
                           "chunk read");
                    if let (Some(after), Some(ChunkStart { up_to: Some(end), .. })) = (entry.after, &entry.start) {
                        self.densities.insert(entry.table, (end - after, chunk.row_count));
                    }
                    entry.chunk = Some(chunk);
                    entry.read_at = Some(Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Before a transaction that begins at `start` (see `ChangeStream::transaction_start`).
    pub(super) fn before_transaction(&self, start: &SourcePosition) -> Result<BeforeTransaction> {
        for chunk in self.in_flight.iter().filter(|chunk| !chunk.given_up) {
            let Some(ChunkStart { position, .. }) = &chunk.start else {
                return Ok(BeforeTransaction::WaitForSnapshot);
            };
            let follows = start.try_cmp(position).map_err(|cause| {
                Error::state(format!("cannot place a transaction against a chunk's snapshot: {cause}"))
            })?;
            if follows.is_ge() {
                if chunk.chunk.is_none() || !self.first_of_its_table(chunk) {
                    return Ok(BeforeTransaction::WaitForRows);
                }
                return Ok(BeforeTransaction::Apply(chunk.table));
            }
        }
        Ok(BeforeTransaction::Proceed)
    }

    /// A chunk read at or before `received` (every transaction before it handled), to apply now.
    pub(super) fn ready(&self, received: &SourcePosition) -> Option<usize> {
        self.in_flight
            .iter()
            .filter(|chunk| chunk.chunk.is_some() && !chunk.given_up && self.first_of_its_table(chunk))
            .find(|chunk| {
                chunk
                    .start
                    .as_ref()
                    .is_some_and(|start| received.try_cmp(&start.position).is_ok_and(std::cmp::Ordering::is_ge))
            })
            .map(|chunk| chunk.table)
    }

    /// Takes table `table`'s oldest chunk, read, with its position.
    pub(super) fn take(&mut self, table: usize) -> Result<(Chunk, SourcePosition)> {
        let index = self
            .in_flight
            .iter()
            .position(|chunk| chunk.table == table && !chunk.given_up)
            .ok_or_else(|| Error::state("internal: no chunk of the table is in flight"))?;
        let entry = self.in_flight.remove(index).expect("found above");
        debug!(table = %entry.table_id, chunk = entry.id, waited_for_the_stream = ?entry.read_at.map(|at| at.elapsed()),
               "chunk applied");
        match (entry.chunk, entry.start) {
            (Some(chunk), Some(start)) => Ok((chunk, start.position)),
            _ => Err(Error::state("internal: a chunk was applied before it was read")),
        }
    }

    /// The keys the next chunk of `table` likely spans, from its last chunk read with both ends known, when that
    /// chunk's row count was near the target (a density from a much smaller or larger chunk is not trusted, and
    /// the next chunk's end is counted instead, which also corrects a wrong guess).
    fn span_of(&self, table: usize) -> Option<i128> {
        let &(span, rows) = self.densities.get(&table)?;
        likely_span(span, rows, self.rows_per_chunk)
    }

    fn first_of_its_table(&self, chunk: &InFlight) -> bool {
        self.in_flight
            .iter()
            .find(|other| other.table == chunk.table && !other.given_up)
            .is_some_and(|first| first.id == chunk.id)
    }
}

/// The keys `target` rows likely span, given that `rows` rows spanned `span` keys; `None` when `rows` is off the
/// target by more than a factor two.
fn likely_span(span: i128, rows: u64, target: u64) -> Option<i128> {
    if rows < target / 2 || rows > target.saturating_mul(2) {
        return None;
    }
    Some((span.saturating_mul(i128::from(target)) / i128::from(rows.max(1))).max(1))
}

#[cfg(test)]
mod tests {
    use super::likely_span;

    #[test]
    fn a_chunk_s_span_follows_the_density_before_it_only_when_that_chunk_was_near_its_target() {
        assert_eq!(likely_span(1000, 500, 500), Some(1000), "evenly spread keys");
        assert_eq!(likely_span(2000, 400, 500), Some(2500), "sparser keys, a wider span");
        assert_eq!(likely_span(1, 300, 500), Some(1), "never an empty span");
        assert_eq!(likely_span(111, 0, 500), None, "a chunk in a gap says nothing");
        assert_eq!(likely_span(5000, 249, 500), None, "under half the target: counted instead");
        assert_eq!(likely_span(5000, 1001, 500), None, "over twice the target: counted instead");
    }
}
