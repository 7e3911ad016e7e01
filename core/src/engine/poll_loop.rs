//! The loop every polled source runs: each stream read page by page on its own task while the previous batch
//! merges, every batch committed with the token after it, passes repeated at the poll interval.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::polled_stream::{DecodedRows, PolledPage, PolledStream, RecordDecoder};
use crate::arrow::array::{RecordBatch, new_null_array};
use crate::arrow::compute::concat_batches;
use crate::change::{ChangeBatch, Operation, TransactionSpan};
use crate::cursor::TableCursor;
use crate::delta::{DeltaSink, DeltaTableWriter};
use crate::error::{Error, Result};
use crate::pipeline::{Shutdown, SyncMode, SyncReport, TableReport};
use crate::position::{SourcePosition, TokenCursor};
use crate::schema::TableSchema;

/// Pages handed over from the reading task at once. The next batch fills while the previous one is merged, so
/// memory stays bounded by two batches plus these pages.
const PAGES_AHEAD: usize = 16;

/// How much a polled stream reads before committing, and how often it looks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// Records that make a batch worth a commit (a batch ends at a page boundary).
    pub batch_records: usize,
    /// Arrow bytes that end a batch whatever its record count, so large records cannot take memory past it.
    pub batch_bytes: usize,
    /// The pause between passes of a continuous sync.
    pub poll_interval: Duration,
    /// The latency target: a batch is committed once its first page has waited this long, however few records
    /// it holds, so a stream that never catches up (a busy topic) still lands its records within it.
    pub commit_interval: Duration,
}

/// Syncs every stream at once; a `once` sync reads one pass of each, a continuous one repeats passes at the
/// poll interval until shut down. A stream that fails returns its error once the others have finished: in a
/// `once` sync they finish their pass, in a continuous one they stop at their next commit, so the failure
/// reaches the scheduler instead of leaving the stream silently stopped.
pub async fn poll_streams<S: PolledStream>(
    streams: &[Arc<S>],
    sink: &DeltaSink,
    settings: PollSettings,
    mode: SyncMode,
    mut shutdown: Shutdown,
) -> Result<SyncReport> {
    let (stop_streams, streams_shutdown) = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, stream) in streams.iter().enumerate() {
        let (stream, sink, shutdown) = (stream.clone(), sink.clone(), streams_shutdown.clone());
        tasks.spawn(async move { (index, sync_stream(stream, sink, settings, mode, shutdown).await) });
    }
    let mut reports = vec![None; streams.len()];
    let mut failure: Option<Error> = None;
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            () = shutdown.requested(), if !streams_shutdown.is_requested() => {
                stop_streams.request();
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let (index, result) =
            joined.map_err(|panic| Error::state(format!("a stream sync ended abnormally: {panic}")))?;
        match result {
            Ok(report) => reports[index] = Some(report),
            Err(error) => {
                warn!(stream = %streams[index].table_id(), error = %error.report(), "stream stopped");
                failure.get_or_insert(error);
                if mode == SyncMode::Continuous {
                    stop_streams.request();
                }
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(SyncReport { tables: reports.into_iter().flatten().collect() }),
    }
}

/// A stream's table and where it stands.
struct StreamTable {
    writer: DeltaTableWriter,
    /// The sequence of the last committed cursor; each commit takes the next one.
    sequence: u64,
    /// The token committed last (`None`: read from the start).
    token: Option<String>,
    report: TableReport,
}

async fn sync_stream<S: PolledStream>(
    stream: Arc<S>,
    sink: DeltaSink,
    settings: PollSettings,
    mode: SyncMode,
    mut shutdown: Shutdown,
) -> Result<TableReport> {
    let (mut table, mut decoder) = open(stream.as_ref(), &sink).await?;
    loop {
        let start = stream.start_pass(table.token.as_deref())?;
        info!(stream = %table.report.table, "reading");
        decoder = pass(&stream, &mut table, decoder, start, settings, &shutdown).await?;
        if mode == SyncMode::Once || shutdown.is_requested() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = shutdown.requested() => break,
        }
    }
    table.report.position = table.writer.cursor().map(|cursor| cursor.position.clone());
    Ok(table.report)
}

async fn open<S: PolledStream>(stream: &S, sink: &DeltaSink) -> Result<(StreamTable, S::Decoder)> {
    let declared = stream.prepare().await?;
    let id = declared.id.clone();
    let mut writer = sink.open_table(&declared, stream.table_options()).await?;
    let decoder = stream.decoder(&writer.source_columns()?)?;
    let committed = writer.cursor().map(|cursor| (cursor.snapshot_complete(), cursor.position.clone()));
    let (sequence, token) = match committed {
        None => (0, None),
        Some((false, SourcePosition::Token(cursor))) => {
            (restart_from_scratch(&mut writer, &declared, cursor.sequence).await?, None)
        }
        Some((true, SourcePosition::Token(cursor))) => (cursor.sequence, cursor.token),
        Some((_, other)) => {
            return Err(Error::state(format!(
                "{id} holds a cursor of another source ({other}); write the stream to another destination"
            )));
        }
    };
    let report = TableReport::new(id);
    Ok((StreamTable { writer, sequence, token, report }, decoder))
}

/// A resync emptied the table and left its snapshot unfinished: the stream is read again from its start. A
/// polled stream has no snapshot apart from its first pass, so the restart is recorded at once as an empty,
/// finished snapshot whose token is `None` (read from the start); every page after it commits as on a first
/// sync. Returns the sequence of that commit.
async fn restart_from_scratch(writer: &mut DeltaTableWriter, declared: &TableSchema, sequence: u64) -> Result<u64> {
    let sequence = sequence + 1;
    let position = SourcePosition::Token(TokenCursor { sequence, token: None });
    let taken_at = Utc::now();
    writer
        .snapshot_writer(declared, &position, taken_at)
        .await?
        .commit(TableCursor::copied(position, 0, taken_at))
        .await?;
    info!(stream = %writer.table_id(), "resync requested: reading the stream again from its start");
    Ok(sequence)
}

/// Reads one pass (pages until the stream is caught up), committing every `batch_records` records (or
/// `batch_bytes` of rows) while the next batch is read. On a failure, what was read before it is committed
/// first, so the next run resumes after it. Returns the decoder, whose columns carry over to the next pass.
async fn pass<S: PolledStream>(
    stream: &Arc<S>,
    table: &mut StreamTable,
    decoder: S::Decoder,
    start: String,
    settings: PollSettings,
    shutdown: &Shutdown,
) -> Result<S::Decoder> {
    let mut next = NextBatch::new(decoder, settings);
    let (sender, mut pages) = mpsc::channel(PAGES_AHEAD);
    let reader = tokio::spawn(read_pages(stream.clone(), start, sender, shutdown.clone()));
    loop {
        while next.wants_pages() {
            match next.due_at() {
                Some(due) => tokio::select! {
                    page = pages.recv() => next.take(page),
                    () = tokio::time::sleep_until(due) => {}
                },
                None => next.take(pages.recv().await),
            }
        }
        let Some(batch) = next.take_batch() else { break };
        let sequence_before = table.sequence;
        let committed = {
            let commit = commit(table, batch);
            tokio::pin!(commit);
            // Pages keep arriving while the batch is merged: reading and writing overlap.
            loop {
                tokio::select! {
                    result = &mut commit => break result,
                    page = pages.recv(), if next.wants_pages() => next.take(page),
                }
            }
        };
        if committed.is_ok()
            && table.sequence != sequence_before
            && let Some(token) = table.token.as_deref()
        {
            stream.committed(token).await;
        }
        if let Err(error) = committed {
            reader.abort();
            return match next.failure {
                Some(failure) => {
                    warn!(stream = %table.report.table, error = %error.report(), "could not commit the pages read before a failure");
                    Err(failure)
                }
                None => Err(error),
            };
        }
    }
    drop(pages);
    reader.abort();
    match next.failure {
        Some(failure) => Err(failure),
        None => Ok(next.decoder),
    }
}

/// Commits a batch's rows and the token after them in one Delta commit.
async fn commit(table: &mut StreamTable, batch: ReadBatch) -> Result<()> {
    let ReadBatch { pages, operations, schema, token, source_time } = batch;
    if table.token.as_ref() == Some(&token) && operations.is_empty() {
        return Ok(());
    }
    let sequence = table.sequence + 1;
    let position = SourcePosition::Token(TokenCursor { sequence, token: Some(token.clone()) });
    if operations.is_empty() {
        table.writer.advance_cursor(&position).await?;
    } else {
        let rows = concat_pages(&schema, &pages)?;
        let records = operations.len();
        let span = TransactionSpan { end_row: records, position, commit_time: Utc::now() };
        let batch = ChangeBatch::new(&schema, rows, operations, vec![span])?;
        // Counted before the commit, whose event counts them committed: read never trails committed.
        crate::metrics::metrics().rows_read(table.writer.pipeline(), table.writer.table_id()).inc_by(records as u64);
        if let Some(source_time) = source_time {
            table.writer.note_source_commit(source_time);
        }
        table.writer.apply_changes(&schema, &batch).await?;
        table.report.changes_applied += records as u64;
        info!(stream = %table.report.table, records, sequence, "committed");
    }
    table.sequence = sequence;
    table.token = Some(token);
    Ok(())
}

/// The rows of every page in `schema`'s columns: columns first seen after a page arrived are null in it.
fn concat_pages(schema: &TableSchema, pages: &[RecordBatch]) -> Result<RecordBatch> {
    let arrow_schema = schema.arrow_schema();
    let aligned = pages
        .iter()
        .map(|page| {
            let columns = arrow_schema
                .fields()
                .iter()
                .map(|field| match page.column_by_name(field.name()) {
                    Some(column) => column.clone(),
                    None => new_null_array(field.data_type(), page.num_rows()),
                })
                .collect();
            RecordBatch::try_new(arrow_schema.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .and_then(|aligned| concat_batches(&arrow_schema, &aligned));
    aligned.map_err(|cause| Error::state(format!("cannot assemble the rows of {}", schema.id)).caused_by(cause))
}

/// What one commit takes: the pages' rows, their operations, the columns they fill and the token after them.
struct ReadBatch {
    pages: Vec<RecordBatch>,
    operations: Vec<Operation>,
    schema: TableSchema,
    token: String,
    /// When the source wrote the batch's newest record, where its pages say.
    source_time: Option<DateTime<Utc>>,
}

/// The rows read since the last commit, and whether the pass reads on. Each page becomes Arrow rows as it
/// arrives (for JSON records, a tenth of their memory, which is freed at once) while the previous batch merges.
struct NextBatch<D> {
    decoder: D,
    /// Each page's rows, in the columns known when it arrived.
    pages: Vec<RecordBatch>,
    operations: Vec<Operation>,
    /// The token after the last page taken; `None` until a page arrives.
    token: Option<String>,
    /// Records and bytes that make a batch worth a commit.
    limits: PollSettings,
    /// Arrow bytes of `pages`.
    bytes: usize,
    /// The newest of the pages' source times.
    source_time: Option<DateTime<Utc>>,
    /// When the first page of the batch arrived.
    first_page_at: Option<Instant>,
    /// Reading stopped: the stream is caught up, or it failed (`failure`), or the reader is gone.
    finished: bool,
    failure: Option<Error>,
}

impl<D: RecordDecoder> NextBatch<D> {
    fn new(decoder: D, limits: PollSettings) -> Self {
        NextBatch {
            decoder,
            pages: Vec::new(),
            operations: Vec::new(),
            token: None,
            limits,
            bytes: 0,
            source_time: None,
            first_page_at: None,
            finished: false,
            failure: None,
        }
    }

    fn wants_pages(&self) -> bool {
        !self.finished
            && self.operations.len() < self.limits.batch_records
            && self.bytes < self.limits.batch_bytes
            && self.due_at().is_none_or(|due| Instant::now() < due)
    }

    /// When the batch is due by the latency target; `None` before its first page.
    fn due_at(&self) -> Option<Instant> {
        self.first_page_at.map(|arrived| arrived + self.limits.commit_interval)
    }

    /// Takes a page, or the end of reading. A page whose records cannot land stops the pass like a failed
    /// read: the pages before it are committed, its token is not.
    fn take(&mut self, page: Option<Result<PolledPage<D::Records>>>) {
        let taken = page.map(|page| {
            page.and_then(|page| self.add(page.records).map(|()| (page.token, page.caught_up, page.source_time)))
        });
        match taken {
            Some(Ok((token, caught_up, source_time))) => {
                self.source_time = self.source_time.max(source_time);
                self.first_page_at.get_or_insert_with(Instant::now);
                self.token = Some(token);
                self.finished = caught_up;
            }
            Some(Err(error)) => {
                self.failure = Some(error);
                self.finished = true;
            }
            None => self.finished = true,
        }
    }

    fn add(&mut self, records: D::Records) -> Result<()> {
        if let Some(DecodedRows { rows, operations }) = self.decoder.decode(records)? {
            self.bytes += rows.get_array_memory_size();
            self.pages.push(rows);
            self.operations.extend(operations);
        }
        Ok(())
    }

    /// The batch read so far, if any page arrived since the last one was taken.
    fn take_batch(&mut self) -> Option<ReadBatch> {
        let token = self.token.take()?;
        self.bytes = 0;
        self.first_page_at = None;
        Some(ReadBatch {
            pages: std::mem::take(&mut self.pages),
            operations: std::mem::take(&mut self.operations),
            schema: self.decoder.schema().clone(),
            token,
            source_time: self.source_time.take(),
        })
    }
}

/// Reads pages from `token` on, sending each (or the error that stopped the reading) until the stream is
/// caught up, the receiver is gone or shutdown is requested.
async fn read_pages<S: PolledStream>(
    stream: Arc<S>,
    mut token: String,
    pages: mpsc::Sender<Result<PolledPage<S::Records>>>,
    mut shutdown: Shutdown,
) {
    loop {
        if shutdown.is_requested() {
            return;
        }
        let page = tokio::select! {
            page = stream.next_page(&token) => page,
            _ = shutdown.requested() => return,
        };
        let stop = page.as_ref().map_or(true, |page| page.caught_up);
        if let Ok(page) = &page {
            token.clone_from(&page.token);
        }
        if pages.send(page).await.is_err() || stop {
            return;
        }
    }
}
