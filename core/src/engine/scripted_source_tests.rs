//! The engine driven by a scripted source, no server: a log of transactions replayed like a replication slot
//! (from the last acknowledged position), crashes injected at random events and acknowledgements lost, and
//! the lake compared with the log applied in memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deltalake::arrow::array::{Array, ArrayBuilder, ArrayRef, Int64Array, Int64Builder};
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::SessionContext;

use super::*;
use crate::change::Operation;
use crate::change_buffer::{ChangeBuffer, ColumnRows};
use crate::delta::{DeltaSink, Destination};
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
}

/// What the source remembers across runs: its acknowledged position, as a slot does.
#[derive(Debug, Default)]
struct Server {
    confirmed: u64,
}

struct ScriptedStream<'a> {
    log: &'a [Transaction],
    server: &'a mut Server,
    tables: CapturedTables<ScriptedTable>,
    /// Per table: transactions committed at or before this are in the table already.
    skip_through: Vec<u64>,
    events: Vec<Event>,
    next: usize,
    open: Option<u64>,
    received: u64,
    /// Events left before the source fails (a crash).
    crash_after: Option<usize>,
    /// Acknowledgements the server never gets (the connection dropped right after the commit).
    lose_acknowledgements: bool,
    /// Quiet spells between events (paused time passes them at once), so the engine's timer fires between
    /// transactions and inside them.
    pauses: bool,
    idle: IdleCursors,
    mode: SyncMode,
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
    type Event = Event;

    fn tables(&mut self) -> &mut CapturedTables<ScriptedTable> {
        &mut self.tables
    }

    async fn start(&mut self, mode: SyncMode) -> Result<Started> {
        self.mode = mode;
        self.received = self.server.confirmed;
        for transaction in self.log.iter().filter(|transaction| transaction.position > self.server.confirmed) {
            self.events.push(Event::Begin(transaction.position));
            self.events.extend(transaction.rows.iter().copied().map(Event::Row));
            self.events.push(Event::Commit(transaction.position));
        }
        Ok(if self.events.is_empty() && mode == SyncMode::Once { Started::AtEnd } else { Started::Streaming })
    }

    async fn next_event(&mut self) -> Result<Event> {
        if let Some(left) = self.crash_after.as_mut() {
            if *left == 0 {
                return Err(Error::state("the scripted source crashed"));
            }
            *left -= 1;
        }
        if self.pauses && fastrand::u8(0..6) == 0 {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(20..3000))).await;
        }
        match self.events.get(self.next) {
            Some(event) => {
                self.next += 1;
                Ok(*event)
            }
            None => std::future::pending().await,
        }
    }

    async fn handle(&mut self, event: Event) -> Result<StreamStep> {
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

struct Lake {
    _directory: tempfile::TempDir,
    sink: DeltaSink,
}

impl Lake {
    fn new() -> Lake {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let destination = Destination::parse(&directory.path().display().to_string()).expect("a destination");
        Lake { sink: DeltaSink::new(destination, "scripted", Default::default()), _directory: directory }
    }

    /// Opens the tables as a pipeline's start does; a new table gets a completed (empty) snapshot at 1.
    async fn open(&self) -> Vec<CapturedTable<ScriptedTable>> {
        let mut tables = Vec::new();
        for table in 0..TABLES {
            let schema = schema(table);
            let mut writer = self.sink.open_table(&schema, TableOptions::default()).await.expect("opened");
            if writer.cursor().is_none() {
                writer.advance_cursor(&at(1)).await.expect("an empty snapshot");
            }
            tables.push(CapturedTable::new(writer, ScriptedTable(ChangeBuffer::new(schema, builders()))));
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
        let writer = self.sink.open_table(&schema(table), TableOptions::default()).await.expect("opened");
        lsn_of(&writer.cursor().expect("a cursor").position)
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
    let tables = lake.open().await;
    let skip_through =
        tables.iter().map(|table| table.writer.cursor().map_or(0, |cursor| lsn_of(&cursor.position))).collect();
    let mut stream = ScriptedStream {
        log,
        server,
        tables: CapturedTables::new(tables),
        skip_through,
        events: Vec::new(),
        next: 0,
        open: None,
        received: 0,
        crash_after: run.crash_after,
        lose_acknowledgements: run.lose_acknowledgements,
        pauses: run.pauses,
        idle: run.idle,
        mode: SyncMode::Once,
    };
    let (_trigger, shutdown) = Shutdown::new();
    match stream_changes(&mut stream, SyncMode::Once, run.budget, shutdown).await {
        Ok(()) => true,
        Err(error) if error.to_string().contains("scripted source crashed") => false,
        Err(error) => panic!("the engine failed: {error}"),
    }
}

async fn assert_lake_equals(lake: &Lake, log: &[Transaction], context: &str) {
    let (keyed, changelog) = expected(log);
    let keyed: Vec<(i64, i64)> = keyed.into_iter().collect();
    assert_eq!(lake.rows(KEYED).await, keyed, "keyed table differs from the log ({context})");
    let changelog_rows = lake.rows(CHANGELOG).await;
    assert_eq!(changelog_rows, changelog, "changelog differs from the log: rows lost or doubled ({context})");
}

fn small_budget() -> CommitBudget {
    // A few rows fill it: commits by size, and transactions in parts, happen all the time.
    CommitBudget { commit_interval: Duration::from_secs(3600), batch_bytes: 96 }
}

/// Paused time: quiet spells pass at once, and the commit interval (1 s) elapses between and inside
/// transactions, so commits by age and acknowledgements between events happen at random places too.
#[tokio::test(start_paused = true)]
async fn crashes_at_random_events_and_lost_acknowledgements_leave_the_lake_equal_to_the_log() {
    let seed = fastrand::u64(..);
    fastrand::seed(seed);
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
        let replay = Run {
            crash_after: None,
            lose_acknowledgements: false,
            pauses: false,
            idle: IdleCursors::Keep,
            budget: small_budget(),
        };
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
    let crashed = Run {
        crash_after: Some(210),
        lose_acknowledgements: false,
        pauses: false,
        idle: IdleCursors::Keep,
        budget: small_budget(),
    };
    assert!(!run_once(&lake, &log, &mut server, crashed).await, "the run crashes");
    let parts = lake.rows(KEYED).await.len();
    assert!(parts > 0, "parts of the transaction are committed before its end");
    assert_eq!(lake.cursor(KEYED).await, 1, "parts keep the table's cursor before the transaction");
    assert!(lake.rows(CHANGELOG).await.is_empty(), "the changelog takes whole transactions only");
    assert_eq!(server.confirmed, 0, "nothing is acknowledged while a transaction is half applied");

    let whole = Run {
        crash_after: None,
        lose_acknowledgements: false,
        pauses: false,
        idle: IdleCursors::Keep,
        budget: small_budget(),
    };
    assert!(run_once(&lake, &log, &mut server, whole).await);
    assert_lake_equals(&lake, &log, "after the replay").await;
    assert_eq!((lake.cursor(KEYED).await, lake.cursor(CHANGELOG).await, server.confirmed), (500, 500, 500));
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
        let run = Run { crash_after: None, lose_acknowledgements: false, pauses: false, idle, budget };
        assert!(run_once(&lake, &log, &mut server, run).await);
        assert_eq!(lake.cursor(KEYED).await, changed, "{idle:?}: the changed table's cursor");
        assert_eq!(lake.cursor(idle_table).await, untouched, "{idle:?}: the idle table's cursor");
        assert_eq!(server.confirmed, 300, "{idle:?}: the source is acknowledged up to what it sent");
    }
}
