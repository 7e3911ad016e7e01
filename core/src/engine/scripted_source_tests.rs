//! The engine driven by a scripted source, no server: a log of transactions replayed like a replication slot
//! (from the last acknowledged position), crashes injected at random events and acknowledgements lost, and
//! the lake compared with the log applied in memory. The keyed table can also be copied in chunks, each read
//! from the table as the log has it at a snapshot the scripted server takes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use deltalake::arrow::array::{Array, ArrayBuilder, ArrayRef, Int64Array, Int64Builder, RecordBatch};
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::SessionContext;

use super::temporary_lake::temporary_lake;
use super::*;
use crate::change::Operation;
use crate::change_buffer::{ChangeBuffer, ColumnRows};
use crate::cursor::TableCursor;
use crate::delta::DeltaSink;
use crate::error::{Error, Result};
use crate::options::TableOptions;
use crate::pipeline::{Shutdown, SyncMode};
use crate::position::{Lsn, SourcePosition};
use crate::schema::{Column, TableId, TableSchema};

/// Table 0 has a key (merged, takes transactions in parts); table 1 has none (an append-only changelog, whose
/// rows a replay would double if the engine let it); table 2 gets no changes at all.
const KEYED: usize = 0;
const CHANGELOG: usize = 1;
const TABLES: usize = 3;

#[derive(Default, Debug)]
struct Numbers(Int64Builder);

impl ColumnRows for Numbers {
    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn buffered_bytes(&self) -> usize {
        self.0.len() * 8
    }
}

#[derive(Debug)]
struct ScriptedTable(ChangeBuffer<Numbers>);

impl TableChanges for ScriptedTable {
    type Columns = Numbers;

    fn changes(&self) -> &ChangeBuffer<Numbers> {
        &self.0
    }

    fn changes_mut(&mut self) -> &mut ChangeBuffer<Numbers> {
        &mut self.0
    }
}

/// One row change: `value` `None` is a cell the source left out as unchanged (keyed table only).
#[derive(Debug, Clone, Copy)]
struct Row {
    table: usize,
    operation: Operation,
    id: i64,
    value: Option<i64>,
}

/// A source transaction committed at `position` (a transaction without rows is a heartbeat).
#[derive(Debug, Clone)]
struct Transaction {
    position: u64,
    rows: Vec<Row>,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Begin(u64),
    Row(Row),
    Commit(u64),
    /// The marker a `once` sync copying a table reads after the log (a real source writes one as the sync
    /// starts): the sync reaches its end, and finishes the copy, even with no transaction left to read.
    End,
}

/// What the source remembers across runs: its acknowledged position, as a slot does, and how far its log got.
#[derive(Debug, Default)]
struct Server {
    confirmed: u64,
    /// The server's log has reached at least every position it sent a stream or took a snapshot at, in any
    /// run: a snapshot is taken there or later, as on a real server (shared with the chunk reads). The stream's
    /// received position is not enough: after lost acknowledgements a restarted stream is behind the tables'
    /// cursors, and a chunk read there would take a table's cursor back over transactions the stream skips for
    /// it; and a table's chunk read before the position of its previous one stalls the engine.
    log_end: Arc<AtomicU64>,
    /// The most events the engine held read but not yet handled, in any run: how far it read ahead.
    most_read_ahead: usize,
}

struct ScriptedStream<'a> {
    log: &'a [Transaction],
    server: &'a mut Server,
    tables: CapturedTables<ScriptedTable>,
    /// Per table: transactions committed at or before this are in the table already.
    skip_through: Vec<u64>,
    reader: ScriptedReader,
    open: Option<u64>,
    received: u64,
    /// Events handled so far in this run.
    handled: usize,
    /// Acknowledgements the server never gets (the connection dropped right after the commit).
    lose_acknowledgements: bool,
    idle: IdleCursors,
    mode: SyncMode,
    /// The reader of the chunks of tables copied while streaming, and the rows per chunk.
    chunks: Option<(SharedChunkReader, u64)>,
}

/// The stream's events as the scripted server sends them.
struct ScriptedReader {
    events: Vec<Event>,
    next: usize,
    /// Events left before the source fails (a crash).
    crash_after: Option<usize>,
    /// Quiet spells between events (paused time passes them at once), so the engine's timer fires between
    /// transactions and inside them, and merges end while a read waits.
    pauses: bool,
    mode: SyncMode,
    /// The server's `log_end`.
    log_end: Arc<AtomicU64>,
}

/// The scripted source's only read failure.
struct Crashed;

impl EventReader for ScriptedReader {
    type Event = Event;
    type Failure = Crashed;

    async fn next_event(&mut self) -> std::result::Result<Event, Crashed> {
        loop {
            if let Some(left) = self.crash_after.as_mut() {
                if *left == 0 {
                    return Err(Crashed);
                }
                *left -= 1;
            }
            if self.pauses && fastrand::u8(0..6) == 0 {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(20..3000))).await;
            }
            match self.events.get(self.next) {
                Some(event) => {
                    self.next += 1;
                    if let Event::Begin(position) = event {
                        self.log_end.fetch_max(*position, Ordering::SeqCst);
                    }
                    return Ok(*event);
                }
                // A continuous stream idles at the log's end (chunks still arrive) until its crash comes.
                None if self.mode == SyncMode::Continuous && self.crash_after.is_some() => {
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(10..300))).await;
                }
                None => std::future::pending().await,
            }
        }
    }

    fn event_bytes(_event: &Event) -> usize {
        size_of::<Event>()
    }
}

fn at(position: u64) -> SourcePosition {
    SourcePosition::Postgres { lsn: Lsn(position) }
}

fn lsn_of(position: &SourcePosition) -> u64 {
    match position {
        SourcePosition::Postgres { lsn } => lsn.0,
        other => panic!("a scripted position is an LSN, not {other}"),
    }
}

impl ChangeStream for ScriptedStream<'_> {
    type Table = ScriptedTable;
    type Reader = ScriptedReader;

    fn reader_and_tables(&mut self) -> (&mut ScriptedReader, &mut CapturedTables<ScriptedTable>) {
        (&mut self.reader, &mut self.tables)
    }

    fn read_failed(&self, _failure: Crashed) -> Error {
        Error::state("the scripted source crashed")
    }

    async fn start(&mut self, mode: SyncMode) -> Result<Started> {
        self.mode = mode;
        self.received = self.server.confirmed;
        self.server.log_end.fetch_max(self.server.confirmed, Ordering::SeqCst);
        for transaction in self.log.iter().filter(|transaction| transaction.position > self.server.confirmed) {
            self.reader.events.push(Event::Begin(transaction.position));
            self.reader.events.extend(transaction.rows.iter().copied().map(Event::Row));
            self.reader.events.push(Event::Commit(transaction.position));
        }
        if mode == SyncMode::Once && self.tables.copying().next().is_some() {
            self.reader.events.push(Event::End);
        }
        Ok(if self.reader.events.is_empty() && mode == SyncMode::Once { Started::AtEnd } else { Started::Streaming })
    }

    async fn handle(&mut self, event: Event) -> Result<StreamStep> {
        self.handled += 1;
        self.server.most_read_ahead = self.server.most_read_ahead.max(self.reader.next - self.handled);
        match event {
            Event::Begin(position) => self.open = Some(position),
            Event::Row(row) => {
                let position = self.open.expect("rows come inside a transaction");
                if position > self.skip_through[row.table] {
                    let changes = &mut self.tables.get_mut(row.table).source.0;
                    let columns = changes.columns_mut();
                    columns[0].0.append_value(row.id);
                    columns[1].0.append_option(row.value);
                    let index = changes.row_appended(row.operation);
                    if row.value.is_none() && row.operation == Operation::Update {
                        changes.mark_unchanged(index, 1, index);
                    }
                    self.tables.touch(row.table);
                }
            }
            Event::Commit(position) => {
                self.tables.close_transaction(&at(position), Utc::now());
                self.open = None;
                self.received = position;
                let last = self.log.last().map_or(0, |transaction| transaction.position);
                if self.mode == SyncMode::Once && position >= last {
                    return Ok(StreamStep::ReachedEnd);
                }
            }
            Event::End => return Ok(StreamStep::ReachedEnd),
        }
        Ok(StreamStep::Continue)
    }

    fn open_transaction(&self) -> Option<(SourcePosition, chrono::DateTime<Utc>)> {
        self.open.map(|position| (at(position), Utc::now()))
    }

    fn received(&self) -> SourcePosition {
        at(self.received)
    }

    fn acknowledge(&mut self, position: &SourcePosition) {
        let position = lsn_of(position);
        let committed = self
            .tables
            .iter()
            .filter(|table| table.source.0.rows() > 0)
            .filter_map(|table| table.writer.cursor().map(|cursor| lsn_of(&cursor.position)))
            .min();
        assert!(
            committed.is_none_or(|committed| committed >= position) || position <= self.server.confirmed,
            "acknowledged {position} while a table holding uncommitted changes is at {committed:?}"
        );
        if !(self.lose_acknowledgements && fastrand::bool()) {
            self.server.confirmed = self.server.confirmed.max(position);
        }
    }

    fn idle_cursors(&self) -> IdleCursors {
        self.idle
    }

    async fn on_tick(&mut self) -> Result<()> {
        Ok(())
    }

    fn chunk_reader(&self) -> Option<(SharedChunkReader, u64)> {
        self.chunks.clone()
    }

    /// A snapshot at `P` holds the transactions committed at or before `P` (`keyed_table_at`), and the chunk
    /// read from it commits the cursor `P`, after which a restarted stream skips (`skip_through`, and the
    /// writer's `ChangeBatch::after`) the transactions at or before `P`: exactly those the chunk's rows hold.
    /// So the transaction committed at `p` must place at or after `P` exactly when `p > P`: it begins at
    /// `p - 1` (positions are distinct integers), as a Postgres transaction's commit record begins before the
    /// position it closes at.
    fn transaction_start(&self, event: &Event) -> Option<SourcePosition> {
        match event {
            Event::Begin(position) => Some(at(position - 1)),
            _ => None,
        }
    }

    async fn close(&mut self) {}
}

fn schema(table: usize) -> TableSchema {
    let columns = vec![Column::new("id", DataType::Int64, "bigint"), Column::new("value", DataType::Int64, "bigint")];
    let key = if table == KEYED { vec!["id".to_string()] } else { Vec::new() };
    TableSchema::new(TableId::new("scripted", format!("t{table}")), columns, key).expect("a schema")
}

fn builders() -> Vec<Numbers> {
    vec![Numbers::default(), Numbers::default()]
}

/// A random log: transactions of 0–`max_rows` rows over the keyed and changelog tables, keys from a small range
/// so rows are updated and deleted often; some updates leave the value out as unchanged.
fn random_log(transactions: usize, max_rows: usize) -> Vec<Transaction> {
    let mut live: BTreeMap<i64, i64> = BTreeMap::new();
    let mut log = Vec::new();
    let mut position = 100;
    for _ in 0..transactions {
        position += fastrand::u64(1..50);
        let mut rows = Vec::new();
        for _ in 0..fastrand::usize(0..=max_rows) {
            let id = fastrand::i64(0..40);
            let value = fastrand::i64(..);
            if fastrand::bool() {
                rows.push(Row { table: CHANGELOG, operation: Operation::Insert, id, value: Some(value) });
                continue;
            }
            let row = match (live.contains_key(&id), fastrand::u8(0..4)) {
                (false, _) => Row { table: KEYED, operation: Operation::Insert, id, value: Some(value) },
                (true, 0) => Row { table: KEYED, operation: Operation::Delete, id, value: None },
                (true, 1) => Row { table: KEYED, operation: Operation::Update, id, value: None },
                (true, _) => Row { table: KEYED, operation: Operation::Update, id, value: Some(value) },
            };
            match (row.operation, row.value) {
                (Operation::Delete, _) => drop(live.remove(&id)),
                (_, Some(value)) => drop(live.insert(id, value)),
                (_, None) => {}
            }
            rows.push(row);
        }
        log.push(Transaction { position, rows });
    }
    log
}

/// The keyed table's rows and the changelog's (id, value) rows, as the log says they are.
fn expected(log: &[Transaction]) -> (BTreeMap<i64, i64>, Vec<(i64, i64)>) {
    let mut keyed = BTreeMap::new();
    let mut changelog = Vec::new();
    for row in log.iter().flat_map(|transaction| &transaction.rows) {
        match (row.table, row.operation, row.value) {
            (CHANGELOG, _, Some(value)) => changelog.push((row.id, value)),
            (KEYED, Operation::Delete, _) => drop(keyed.remove(&row.id)),
            (KEYED, _, Some(value)) => drop(keyed.insert(row.id, value)),
            _ => {}
        }
    }
    changelog.sort_unstable();
    (keyed, changelog)
}

/// The keyed table in a snapshot at `position`: the transactions committed at or before it applied.
fn keyed_table_at(log: &[Transaction], position: u64) -> BTreeMap<i64, i64> {
    expected(&log[..log.partition_point(|transaction| transaction.position <= position)]).0
}

/// What a run's chunk reads did, to tell what a crash interrupted.
#[derive(Debug, Default)]
struct ChunkReads {
    /// Snapshots taken.
    positioned: usize,
    /// The last key of each chunk read whole (`None`: an empty one).
    returned: Vec<Option<i128>>,
}

/// Reads chunks of the keyed table from the scripted server.
struct ScriptedChunkReader {
    log: Arc<Vec<Transaction>>,
    log_end: Arc<AtomicU64>,
    /// Some reads fail after taking their snapshot (the source crashed while a chunk was read).
    failures: bool,
    reads: Arc<Mutex<ChunkReads>>,
}

impl ChunkReader for ScriptedChunkReader {
    fn read_chunk(&self, request: ChunkRequest, mut rows: ChunkRows) -> ChunkRead {
        let (log, log_end, reads, failures) =
            (self.log.clone(), self.log_end.clone(), self.reads.clone(), self.failures);
        Box::pin(async move {
            // The snapshot comes a little later (the stream waits for its position before any transaction), and
            // the rows later still (the stream may reach the snapshot first and wait for them).
            short_wait().await;
            let snapshot = take_snapshot(&log, &log_end);
            let table = keyed_table_at(&log, snapshot);
            let up_to = nth_key_after(&table, request.after, request.rows);
            reads.lock().expect("not poisoned").positioned += 1;
            rows.positioned(ChunkStart { position: at(snapshot), up_to });
            short_wait().await;
            if failures && fastrand::u8(0..10) == 0 {
                return Err(Error::state("the scripted source crashed while reading a chunk"));
            }
            let keyed = schema(KEYED);
            rows.write(&keyed, chunk_of(&table, &request, up_to)).await?;
            let chunk = rows.finish(keyed).await?;
            reads.lock().expect("not poisoned").returned.push(chunk.last_key);
            Ok(chunk)
        })
    }
}

async fn short_wait() {
    match fastrand::u8(0..3) {
        0 => {}
        1 => tokio::task::yield_now().await,
        _ => tokio::time::sleep(Duration::from_millis(fastrand::u64(1..400))).await,
    }
}

/// Takes a snapshot at a transaction boundary at most a few transactions past where the server's log has got
/// (`Server::log_end`), within the log; returns its position.
fn take_snapshot(log: &[Transaction], log_end: &AtomicU64) -> u64 {
    let reached = log_end.load(Ordering::SeqCst);
    let later: Vec<u64> =
        log.iter().map(|transaction| transaction.position).filter(|&position| position > reached).collect();
    let snapshot = match fastrand::usize(0..=later.len().min(6)) {
        0 => reached,
        next => later[next - 1],
    };
    log_end.fetch_max(snapshot, Ordering::SeqCst);
    snapshot
}

fn scripted_key(key: i128) -> i64 {
    i64::try_from(key).expect("a scripted key")
}

/// The `rows`-th key of `table` after `after`, if there are that many.
fn nth_key_after(table: &BTreeMap<i64, i64>, after: Option<i128>, rows: u64) -> Option<i128> {
    let after = after.map(scripted_key).map_or(Bound::Unbounded, Bound::Excluded);
    let skipped = usize::try_from(rows).expect("rows").checked_sub(1)?;
    table.range((after, Bound::Unbounded)).nth(skipped).map(|(id, _)| i128::from(*id))
}

/// The rows of `table` with keys after the request's `after` up to `up_to` (all of them without it).
fn chunk_of(table: &BTreeMap<i64, i64>, request: &ChunkRequest, up_to: Option<i128>) -> RecordBatch {
    let after = request.after.map(scripted_key).map_or(Bound::Unbounded, Bound::Excluded);
    let until = up_to.map(scripted_key).map_or(Bound::Unbounded, Bound::Included);
    let (ids, values): (Vec<i64>, Vec<i64>) = table.range((after, until)).map(|(id, value)| (*id, *value)).unzip();
    let schema = schema(KEYED);
    let columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids)), Arc::new(Int64Array::from(values))];
    RecordBatch::try_new(schema.arrow_schema(), columns).expect("a chunk's rows")
}

struct Lake {
    _directory: tempfile::TempDir,
    sink: DeltaSink,
}

impl Lake {
    fn new() -> Lake {
        let (directory, sink) = temporary_lake("scripted");
        Lake { sink, _directory: directory }
    }

    /// Opens the tables as a pipeline's start does; a new table gets a completed (empty) snapshot at 1, except
    /// the keyed table when `copy_keyed`: it is copied in chunks, from where its cursor says the copy got.
    async fn open(&self, copy_keyed: bool) -> Vec<CapturedTable<ScriptedTable>> {
        let mut tables = Vec::new();
        for table in 0..TABLES {
            let schema = schema(table);
            let mut writer = self.sink.open_table(&schema, TableOptions::default()).await.expect("opened");
            let copied_in_chunks = copy_keyed && table == KEYED;
            if writer.cursor().is_none() && !copied_in_chunks {
                writer.advance_cursor(&at(1)).await.expect("an empty snapshot");
            }
            let copy =
                copied_in_chunks.then(|| ChunkedCopy::needed(writer.cursor(), "id").expect("a cursor")).flatten();
            let source = ScriptedTable(ChangeBuffer::new(schema, builders()));
            tables.push(CapturedTable::new(writer, source).copied_in_chunks(copy));
        }
        tables
    }

    async fn rows(&self, table: usize) -> Vec<(i64, i64)> {
        let writer = self.sink.open_table(&schema(table), TableOptions::default()).await.expect("opened");
        let context = SessionContext::new();
        let provider = writer.table().table_provider().await.expect("a provider");
        let frame = context.read_table(provider).expect("readable");
        let mut rows = Vec::new();
        for batch in frame.collect().await.expect("rows") {
            let number = |name: &str| {
                batch.column_by_name(name).expect(name).as_any().downcast_ref::<Int64Array>().expect(name).clone()
            };
            let (ids, values) = (number("id"), number("value"));
            for row in 0..batch.num_rows() {
                assert!(!values.is_null(row), "a null value reached table {table}: an unchanged cell was not filled");
                rows.push((ids.value(row), values.value(row)));
            }
        }
        rows.sort_unstable();
        rows
    }

    async fn cursor(&self, table: usize) -> u64 {
        lsn_of(&self.table_cursor(table).await.position)
    }

    async fn table_cursor(&self, table: usize) -> TableCursor {
        let writer = self.sink.open_table(&schema(table), TableOptions::default()).await.expect("opened");
        writer.cursor().expect("a cursor").clone()
    }
}

struct Run {
    crash_after: Option<usize>,
    lose_acknowledgements: bool,
    pauses: bool,
    idle: IdleCursors,
    budget: CommitBudget,
}

/// One run of a pipeline over `log`: opens the tables, streams, and reports whether it ended without a crash.
async fn run_once(lake: &Lake, log: &[Transaction], server: &mut Server, run: Run) -> bool {
    run_stream(log, server, lake.open(false).await, run, SyncMode::Once, None).await.0
}

/// Streams `tables` over `log` in `mode`; reports whether the run ended without a crash, with the tables as it
/// left them.
async fn run_stream(
    log: &[Transaction],
    server: &mut Server,
    tables: Vec<CapturedTable<ScriptedTable>>,
    run: Run,
    mode: SyncMode,
    chunks: Option<(SharedChunkReader, u64)>,
) -> (bool, Vec<CapturedTable<ScriptedTable>>) {
    let skip_through =
        tables.iter().map(|table| table.writer.cursor().map_or(0, |cursor| lsn_of(&cursor.position))).collect();
    let log_end = server.log_end.clone();
    let mut stream = ScriptedStream {
        log,
        server,
        tables: CapturedTables::new(tables),
        skip_through,
        reader: ScriptedReader {
            events: Vec::new(),
            next: 0,
            crash_after: run.crash_after,
            pauses: run.pauses,
            mode,
            log_end,
        },
        open: None,
        received: 0,
        handled: 0,
        lose_acknowledgements: run.lose_acknowledgements,
        idle: run.idle,
        mode,
        chunks,
    };
    let (_trigger, shutdown) = Shutdown::new();
    let ended = match stream_changes(&mut stream, mode, run.budget, shutdown).await {
        Ok(()) => true,
        Err(error) if error.to_string().contains("scripted source crashed") => false,
        Err(error) => panic!("the engine failed: {error}"),
    };
    (ended, stream.tables.into_inner())
}

async fn assert_lake_equals(lake: &Lake, log: &[Transaction], context: &str) {
    let (keyed, changelog) = expected(log);
    let keyed: Vec<(i64, i64)> = keyed.into_iter().collect();
    assert_eq!(lake.rows(KEYED).await, keyed, "keyed table differs from the log ({context})");
    let changelog_rows = lake.rows(CHANGELOG).await;
    assert_eq!(changelog_rows, changelog, "changelog differs from the log: rows lost or doubled ({context})");
}

/// The seed of a randomized test: `SCRIPTED_SEED` to replay a failure, else a new one. Printed (shown when the
/// test fails).
fn test_seed() -> u64 {
    let seed =
        std::env::var("SCRIPTED_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed}");
    fastrand::seed(seed);
    seed
}

/// A run without crashes, lost acknowledgements or pauses.
fn uninterrupted_run(budget: CommitBudget) -> Run {
    Run { crash_after: None, lose_acknowledgements: false, pauses: false, idle: IdleCursors::Keep, budget }
}

fn small_budget() -> CommitBudget {
    // A few rows fill it: commits by size, and transactions in parts, happen all the time.
    CommitBudget { commit_interval: Duration::from_secs(3600), batch_bytes: 96 }
}

/// Paused time: quiet spells pass at once, and the commit interval (1 s) elapses between and inside
/// transactions, so commits by age and acknowledgements between events happen at random places too.
#[tokio::test(start_paused = true)]
async fn crashes_at_random_events_and_lost_acknowledgements_leave_the_lake_equal_to_the_log() {
    let seed = test_seed();
    for log_number in 0..3 {
        let lake = Lake::new();
        let log = random_log(60, 12);
        let events: usize = log.iter().map(|transaction| transaction.rows.len() + 2).sum();
        let mut server = Server::default();
        let (mut crashes, mut runs) = (0, 0);
        loop {
            runs += 1;
            // At least eight runs crash somewhere in the log; after that, one in four is let through.
            let crash_after = (crashes < 8 || fastrand::u8(0..4) != 0).then(|| fastrand::usize(0..events));
            let budget = CommitBudget { commit_interval: Duration::from_secs(1), ..small_budget() };
            let run = Run { crash_after, lose_acknowledgements: true, pauses: true, idle: IdleCursors::Keep, budget };
            if run_once(&lake, &log, &mut server, run).await {
                break;
            }
            crashes += 1;
            assert!(runs < 200, "no run got through (seed {seed})");
        }
        let context = format!("seed {seed}, log {log_number}, {crashes} crashes over {runs} runs");
        assert_lake_equals(&lake, &log, &context).await;
        // The last run's acknowledgements may have been lost too: one more run reads that tail again, adds
        // nothing, and, told it is durable, the source is then at the log's end.
        let replay = uninterrupted_run(small_budget());
        assert!(run_once(&lake, &log, &mut server, replay).await);
        assert_lake_equals(&lake, &log, &format!("{context}, after the replay")).await;
        assert_eq!(server.confirmed, log.last().expect("a log").position, "{context}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_larger_than_the_budget_lands_in_parts_and_a_crash_after_a_part_replays_it_whole() {
    let lake = Lake::new();
    let mut rows = Vec::new();
    for id in 0..200 {
        rows.push(Row { table: KEYED, operation: Operation::Insert, id, value: Some(id * 10) });
    }
    for id in 0..20 {
        rows.push(Row { table: CHANGELOG, operation: Operation::Insert, id, value: Some(id) });
    }
    for id in (0..200).step_by(3) {
        rows.push(Row { table: KEYED, operation: Operation::Update, id, value: None });
    }
    let log = vec![Transaction { position: 500, rows }];
    let mut server = Server::default();
    // The crash comes after the parts were committed and before the transaction's end.
    let crashed = Run { crash_after: Some(210), ..uninterrupted_run(small_budget()) };
    assert!(!run_once(&lake, &log, &mut server, crashed).await, "the run crashes");
    let parts = lake.rows(KEYED).await.len();
    assert!(parts > 0, "parts of the transaction are committed before its end");
    assert_eq!(lake.cursor(KEYED).await, 1, "parts keep the table's cursor before the transaction");
    assert!(lake.rows(CHANGELOG).await.is_empty(), "the changelog takes whole transactions only");
    assert_eq!(server.confirmed, 0, "nothing is acknowledged while a transaction is half applied");

    let whole = uninterrupted_run(small_budget());
    assert!(run_once(&lake, &log, &mut server, whole).await);
    assert_lake_equals(&lake, &log, "after the replay").await;
    assert_eq!((lake.cursor(KEYED).await, lake.cursor(CHANGELOG).await, server.confirmed), (500, 500, 500));
}

/// A transaction in parts that updates a row leaving a value unchanged and then deletes it: the first part,
/// committed, deleted the row, so the replay after a crash meets the update with nothing in the table to take the
/// unchanged value from. The row is deleted later in the same transaction, so the replay applies the update as
/// that delete instead of stopping the sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_transaction_whose_committed_part_deleted_an_updated_row_lands_whole() {
    let lake = Lake::new();
    let insert = |id, value| Row { table: KEYED, operation: Operation::Insert, id, value: Some(value) };
    let log = vec![
        Transaction { position: 400, rows: vec![insert(1, 10), insert(2, 20)] },
        Transaction {
            position: 500,
            rows: vec![
                Row { table: KEYED, operation: Operation::Update, id: 1, value: None },
                Row { table: KEYED, operation: Operation::Delete, id: 1, value: None },
                insert(3, 30),
                insert(4, 40),
                // The budget (six rows) is full, with the first transaction's: the rows above are committed, the
                // first transaction whole and these as a part.
                Row { table: KEYED, operation: Operation::Update, id: 2, value: None },
                insert(5, 50),
                insert(6, 60),
                Row { table: KEYED, operation: Operation::Update, id: 2, value: Some(21) },
            ],
        },
    ];
    let mut server = Server::default();
    // Every event but the transaction's commit: the crash comes after the part and before the end.
    let crashed = Run { crash_after: Some(4 + 1 + 8), ..uninterrupted_run(small_budget()) };
    assert!(!run_once(&lake, &log, &mut server, crashed).await, "the run crashes");
    assert_eq!(lake.rows(KEYED).await, vec![(2, 20), (3, 30), (4, 40)], "the first part is committed");
    assert_eq!(lake.cursor(KEYED).await, 400, "the part keeps the cursor before its transaction");

    let whole = uninterrupted_run(small_budget());
    assert!(run_once(&lake, &log, &mut server, whole).await);
    assert_lake_equals(&lake, &log, "after the replay").await;
    assert_eq!(lake.cursor(KEYED).await, 500);
}

/// While the tables merge, the engine goes on reading events, up to a quarter of the budget, and handles them
/// after, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_read_while_the_tables_merge_up_to_a_quarter_of_the_budget() {
    let lake = Lake::new();
    let log = random_log(60, 12);
    let mut server = Server::default();
    let budget = CommitBudget { commit_interval: Duration::from_secs(3600), batch_bytes: 2048 };
    let run = uninterrupted_run(budget);
    assert!(run_once(&lake, &log, &mut server, run).await);
    assert_lake_equals(&lake, &log, "events read during merges").await;
    // The budget's quarter, and the one event that may cross it.
    let most = budget.batch_bytes / 4 / size_of::<Event>() + 1;
    assert!(
        (1..=most).contains(&server.most_read_ahead),
        "events read ahead: {} (between 1 and {most})",
        server.most_read_ahead
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tables_follow_the_stream_only_when_the_source_resumes_from_table_cursors() {
    let log = vec![
        Transaction {
            position: 200,
            rows: vec![Row { table: KEYED, operation: Operation::Insert, id: 1, value: Some(1) }],
        },
        Transaction { position: 300, rows: Vec::new() },
    ];
    let idle_table = 2;
    // Advance: every table ends where the stream is. Keep: the changed table is at its transaction, the
    // idle one where it was.
    for (idle, changed, untouched) in [(IdleCursors::Advance, 300, 300), (IdleCursors::Keep, 200, 1)] {
        let lake = Lake::new();
        let mut server = Server::default();
        let budget = CommitBudget { commit_interval: Duration::from_secs(3600), batch_bytes: 1 << 20 };
        let run = Run { idle, ..uninterrupted_run(budget) };
        assert!(run_once(&lake, &log, &mut server, run).await);
        assert_eq!(lake.cursor(KEYED).await, changed, "{idle:?}: the changed table's cursor");
        assert_eq!(lake.cursor(idle_table).await, untouched, "{idle:?}: the idle table's cursor");
        assert_eq!(server.confirmed, 300, "{idle:?}: the source is acknowledged up to what it sent");
    }
}

/// The keyed table copied in chunks from an empty lake while the log streams (from partway through it, so the
/// rows written before exist only at the source): continuous runs crash at random events (while a chunk is
/// read, after a chunk is read and before the stream reaches its snapshot, right after one is applied, while
/// the stream idles at the log's end), chunk reads fail and acknowledgements are lost; a last `once` run
/// finishes the copy. The lake ends equal to the log, and each run resumes the copy exactly where the last
/// committed chunk left it, so no row is copied twice.
#[tokio::test(start_paused = true)]
async fn a_table_copied_in_chunks_through_crashes_ends_equal_to_the_log_and_every_run_resumes_the_copy() {
    // Continuous runs while the copy goes on (this many at most), and two more after it; then the once run.
    const MOST_CONTINUOUS_RUNS: usize = 30;
    let seed = test_seed();
    let (mut crashes_while_reading, mut crashes_before_applying) = (0, 0);
    for log_number in 0..3 {
        let lake = Lake::new();
        let log = Arc::new(random_log(60, 12));
        let slot_start = log[fastrand::usize(0..log.len() / 3)].position;
        let mut server = Server { confirmed: slot_start, ..Server::default() };
        // Chunks of a few rows: a copy of 20-odd rows takes many, spread over the log and the runs.
        let rows_per_chunk = fastrand::u64(1..=4);
        // The copy as the last run left it: the key it copied up to, and the rows it copied; `None` once done.
        let mut left_off = Some((None, 0));
        let (mut copied_by_runs, mut runs_after_the_copy) = (0, 0);
        for run_number in 0.. {
            let context = format!("seed {seed}, log {log_number}, run {run_number}");
            let tables = lake.open(true).await;
            let resumed = tables[KEYED].chunked.as_ref().map(|copy| (copy.copied_up_to, copy.rows_copied));
            assert_eq!(resumed, left_off, "the copy does not resume after the last chunk committed ({context})");
            runs_after_the_copy += usize::from(resumed.is_none());
            let last = run_number == MOST_CONTINUOUS_RUNS || runs_after_the_copy > 2;
            let events_left: usize = log
                .iter()
                .filter(|transaction| transaction.position > server.confirmed)
                .map(|transaction| transaction.rows.len() + 2)
                .sum();
            let run = Run {
                // Mostly early in the log, while the copy is under way; past the log's events, the crash comes
                // while the stream idles at its end and the copy goes on.
                crash_after: (!last).then(|| fastrand::usize(0..events_left.min(150) + 30)),
                lose_acknowledgements: true,
                pauses: true,
                idle: if fastrand::bool() { IdleCursors::Keep } else { IdleCursors::Advance },
                budget: CommitBudget { commit_interval: Duration::from_secs(1), ..small_budget() },
            };
            let reads = Arc::new(Mutex::new(ChunkReads::default()));
            let reader = ScriptedChunkReader {
                log: log.clone(),
                log_end: server.log_end.clone(),
                failures: !last,
                reads: reads.clone(),
            };
            let mode = if last { SyncMode::Once } else { SyncMode::Continuous };
            let chunks: Option<(SharedChunkReader, u64)> = Some((Arc::new(reader), rows_per_chunk));
            let (ended, tables) = run_stream(&log, &mut server, tables, run, mode, chunks).await;
            assert_eq!(ended, last, "continuous runs crash, the once run ends ({context})");
            left_off = tables[KEYED].chunked.as_ref().map(|copy| (copy.copied_up_to, copy.rows_copied));
            copied_by_runs += tables[KEYED].snapshot_rows;
            let reads = reads.lock().expect("not poisoned");
            if let Some((bound, _)) = left_off
                && !ended
            {
                crashes_while_reading += usize::from(reads.positioned > reads.returned.len());
                let unapplied = |key: &Option<i128>| key.is_none_or(|key| bound.is_none_or(|bound| key > bound));
                crashes_before_applying += usize::from(reads.returned.iter().any(unapplied));
            }
            if last {
                break;
            }
        }
        let context = format!("seed {seed}, log {log_number}");
        assert_eq!(left_off, None, "the once run ends with the copy complete ({context})");
        let keyed: Vec<(i64, i64)> = expected(&log).0.into_iter().collect();
        assert_eq!(lake.rows(KEYED).await, keyed, "keyed table differs from the log ({context})");
        let streamed = &log[log.partition_point(|transaction| transaction.position <= slot_start)..];
        assert_eq!(lake.rows(CHANGELOG).await, expected(streamed).1, "changelog differs from the log ({context})");
        let progress = lake.table_cursor(KEYED).await.snapshot.expect("the copy's progress");
        assert!(progress.complete, "the cursor records the copy complete ({context})");
        assert_eq!(progress.rows_copied, copied_by_runs, "the cursor counts the rows every run copied ({context})");
        // Chunks hold disjoint key ranges when every run resumes after the last: a key is copied once at most.
        let keys: BTreeSet<i64> = log
            .iter()
            .flat_map(|transaction| &transaction.rows)
            .filter(|row| row.table == KEYED)
            .map(|row| row.id)
            .collect();
        assert!(
            copied_by_runs <= keys.len() as u64,
            "{copied_by_runs} rows copied for {} keys ({context})",
            keys.len()
        );
    }
    assert!(
        crashes_while_reading > 0 && crashes_before_applying > 0,
        "crashes came while a chunk was read ({crashes_while_reading}) and before one read was applied \
         ({crashes_before_applying}) (seed {seed})"
    );
}
