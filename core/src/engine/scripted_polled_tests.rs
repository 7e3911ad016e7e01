//! The polling engine driven by a scripted API, no server: a feed of records read in pages from an offset
//! token, two streams at once (one merged by key with deletes, one appended), a field that appears halfway
//! (a new column), failed reads and kills at random pages, and the lake compared after every run with the feed
//! applied up to the token the table committed: never a record missing before it, never one doubled.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deltalake::arrow::array::{Array, ArrayRef, Int64Array, Int64Builder, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field};
use deltalake::datafusion::prelude::SessionContext;
use tokio::sync::Notify;

use super::temporary_lake::temporary_lake;
use super::*;
use crate::change::Operation;
use crate::cursor::TableCursor;
use crate::delta::DeltaSink;
use crate::error::{Error, Result};
use crate::options::TableOptions;
use crate::pipeline::{Shutdown, SyncMode};
use crate::position::{SourcePosition, TokenCursor};
use crate::schema::{Column, TableId, TableSchema};

const PAGE_RECORDS: usize = 7;
/// Records from this index on carry the `note` field.
const NOTE_FROM: usize = 60;

/// One record of the feed: `value` `None` deletes the key (the keyed stream; the appended one never deletes).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Record {
    id: i64,
    value: Option<i64>,
    note: Option<i64>,
}

/// The scripted API: its records and the faults it injects, counted in page reads over every stream and run.
#[derive(Default)]
struct Feed {
    records: Mutex<Vec<Record>>,
    reads: AtomicUsize,
    /// The read that fails with an error.
    fail_read: Mutex<Option<usize>>,
    /// The read that never answers and signals `killed` instead: the test drops the sync there.
    kill_read: Mutex<Option<usize>>,
    killed: Notify,
}

impl Feed {
    fn push(&self, count: usize, keyed: bool) {
        let mut records = self.records.lock().expect("feed");
        for _ in 0..count {
            let index = records.len();
            let id = if keyed { fastrand::i64(0..40) } else { index as i64 };
            let value = (!keyed || fastrand::u8(..) > 40).then(|| fastrand::i64(0..1_000_000));
            records.push(Record { id, value, note: (index >= NOTE_FROM).then_some(index as i64) });
        }
    }
}

struct ScriptedStream {
    name: &'static str,
    keyed: bool,
    feed: Arc<Feed>,
}

impl PolledStream for ScriptedStream {
    type Records = Vec<Record>;
    type Decoder = ScriptedRows;

    fn table_id(&self) -> TableId {
        TableId::new("scripted", self.name)
    }

    async fn prepare(&self) -> Result<TableSchema> {
        schema(self.table_id(), self.keyed, false)
    }

    fn table_options(&self) -> TableOptions {
        TableOptions::default()
    }

    fn decoder(&self, existing: &[Field]) -> Result<ScriptedRows> {
        let has_note = existing.iter().any(|field| field.name() == "note");
        Ok(ScriptedRows { keyed: self.keyed, schema: schema(self.table_id(), self.keyed, has_note)? })
    }

    fn start_pass(&self, committed: Option<&str>) -> Result<String> {
        Ok(committed.unwrap_or("0").to_string())
    }

    async fn next_page(&self, token: &str) -> Result<PolledPage<Vec<Record>>> {
        let read = self.feed.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if *self.feed.kill_read.lock().expect("feed") == Some(read) {
            self.feed.killed.notify_one();
            std::future::pending::<()>().await;
        }
        if *self.feed.fail_read.lock().expect("feed") == Some(read) {
            return Err(Error::state(format!("scripted: read {read} failed")));
        }
        let from: usize = token.parse().map_err(|_| Error::state(format!("scripted: bad token {token}")))?;
        let records = self.feed.records.lock().expect("feed");
        let to = (from + PAGE_RECORDS).min(records.len());
        Ok(PolledPage {
            records: records[from..to].to_vec(),
            token: to.to_string(),
            caught_up: to == records.len(),
            source_time: None,
        })
    }
}

fn schema(id: TableId, keyed: bool, note: bool) -> Result<TableSchema> {
    let mut columns =
        vec![Column::new("id", DataType::Int64, "bigint"), Column::new("value", DataType::Int64, "bigint")];
    if note {
        columns.push(Column::new("note", DataType::Int64, "bigint"));
    }
    TableSchema::new(id, columns, if keyed { vec!["id".to_string()] } else { Vec::new() })
}

struct ScriptedRows {
    keyed: bool,
    schema: TableSchema,
}

impl RecordDecoder for ScriptedRows {
    type Records = Vec<Record>;

    fn decode(&mut self, records: Vec<Record>) -> Result<Option<DecodedRows>> {
        if records.is_empty() {
            return Ok(None);
        }
        if let Some(bad) = records.iter().find(|record| record.id < 0) {
            return Err(Error::schema(&self.schema.id, format!("scripted: id {} cannot land", bad.id)));
        }
        let has_note = self.schema.columns.len() == 3;
        if !has_note && records.iter().any(|record| record.note.is_some()) {
            self.schema = schema(self.schema.id.clone(), self.keyed, true)?;
        }
        let column = |values: &mut dyn Iterator<Item = Option<i64>>| -> ArrayRef {
            let mut builder = Int64Builder::new();
            values.for_each(|value| builder.append_option(value));
            Arc::new(builder.finish())
        };
        let mut columns = vec![
            column(&mut records.iter().map(|record| Some(record.id))),
            column(&mut records.iter().map(|record| record.value)),
        ];
        if self.schema.columns.len() == 3 {
            columns.push(column(&mut records.iter().map(|record| record.note)));
        }
        let rows = RecordBatch::try_new(self.schema.arrow_schema(), columns)
            .map_err(|cause| Error::state(cause.to_string()))?;
        let operations = records
            .iter()
            .map(|record| match (self.keyed, record.value) {
                (false, _) => Operation::Insert,
                (true, Some(_)) => Operation::Update,
                (true, None) => Operation::Delete,
            })
            .collect();
        Ok(Some(DecodedRows { rows, operations }))
    }

    fn schema(&self) -> &TableSchema {
        &self.schema
    }
}

/// A table's rows as `(id, value, note)`, sorted.
type Rows = Vec<(i64, Option<i64>, Option<i64>)>;

/// The feed's first `count` records applied: merged by key, or appended.
fn expected(records: &[Record], count: usize, keyed: bool) -> Rows {
    let applied = &records[..count];
    let mut rows: Rows = if keyed {
        let mut by_key = BTreeMap::new();
        for record in applied {
            match record.value {
                Some(value) => by_key.insert(record.id, (Some(value), record.note)),
                None => by_key.remove(&record.id),
            };
        }
        by_key.into_iter().map(|(id, (value, note))| (id, value, note)).collect()
    } else {
        applied.iter().map(|record| (record.id, record.value, record.note)).collect()
    };
    rows.sort_unstable();
    rows
}

struct Lake {
    directory: tempfile::TempDir,
    sink: DeltaSink,
}

impl Lake {
    fn new() -> Lake {
        let (directory, sink) = temporary_lake("polled");
        Lake { directory, sink }
    }

    /// The table's rows and the number of feed records its token says it holds (`None`: never committed).
    async fn table(&self, stream: &ScriptedStream) -> (Rows, Option<usize>) {
        // Opening a table that does not exist would create it, racing with the sync creating it.
        let first_commit =
            self.directory.path().join("scripted").join(stream.name).join("_delta_log/00000000000000000000.json");
        if !first_commit.exists() {
            return (Vec::new(), None);
        }
        let declared = schema(stream.table_id(), stream.keyed, false).expect("schema");
        let writer = self.sink.open_table(&declared, TableOptions::default()).await.expect("opened");
        let committed = writer.cursor().map(|cursor| match &cursor.position {
            SourcePosition::Token(TokenCursor { token, .. }) => {
                token.as_deref().map_or(0, |token| token.parse().expect("an offset"))
            }
            other => panic!("not a token cursor: {other}"),
        });
        let context = SessionContext::new();
        let provider = writer.table().table_provider().await.expect("a provider");
        let mut rows = Vec::new();
        for batch in context.read_table(provider).expect("readable").collect().await.expect("rows") {
            let number = |name: &str| {
                batch
                    .column_by_name(name)
                    .map(|column| column.as_any().downcast_ref::<Int64Array>().expect(name).clone())
            };
            let (ids, values, notes) = (number("id").expect("id"), number("value").expect("value"), number("note"));
            for row in 0..batch.num_rows() {
                let value = (!values.is_null(row)).then(|| values.value(row));
                let note = notes.as_ref().and_then(|notes| (!notes.is_null(row)).then(|| notes.value(row)));
                rows.push((ids.value(row), value, note));
            }
        }
        rows.sort_unstable();
        (rows, committed)
    }

    /// Every table equals its feed applied up to the token it committed.
    async fn assert_consistent(&self, streams: &[Arc<ScriptedStream>]) -> Vec<Option<usize>> {
        let mut committed = Vec::new();
        for stream in streams {
            let (rows, count) = self.table(stream).await;
            let records = stream.feed.records.lock().expect("feed").clone();
            assert_eq!(rows, expected(&records, count.unwrap_or(0), stream.keyed), "{} at {count:?}", stream.name);
            committed.push(count);
        }
        committed
    }
}

impl Lake {
    /// Waits until every table committed the feed's first `count` records, checking each state on the way.
    async fn wait_for(&self, streams: &[Arc<ScriptedStream>], count: usize) {
        let mut committed = Vec::new();
        for _ in 0..1000 {
            committed = self.assert_consistent(streams).await;
            if committed.iter().all(|committed| *committed == Some(count)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the tables never reached record {count}: they hold {committed:?}");
    }
}

fn streams() -> Vec<Arc<ScriptedStream>> {
    let keyed = Arc::new(Feed::default());
    keyed.push(150, true);
    let appended = Arc::new(Feed::default());
    appended.push(150, false);
    vec![
        Arc::new(ScriptedStream { name: "keyed", keyed: true, feed: keyed }),
        Arc::new(ScriptedStream { name: "appended", keyed: false, feed: appended }),
    ]
}

fn settings() -> PollSettings {
    PollSettings {
        batch_records: 20,
        batch_bytes: usize::MAX,
        poll_interval: Duration::from_secs(5),
        commit_interval: Duration::from_secs(3600),
    }
}

fn test_seed() -> u64 {
    let seed =
        std::env::var("SCRIPTED_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed}");
    fastrand::seed(seed);
    seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_failed_reads_at_random_pages_leave_each_table_equal_to_its_feed_up_to_its_token() {
    test_seed();
    let lake = Lake::new();
    let streams = streams();
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 60, "the sync never finished");
        for stream in &streams {
            let reads = stream.feed.reads.load(Ordering::SeqCst);
            let fault = Some(reads + fastrand::usize(1..8));
            let (fail, kill) = if fastrand::bool() { (fault, None) } else { (None, fault) };
            *stream.feed.fail_read.lock().expect("feed") = fail.filter(|_| runs < 12);
            *stream.feed.kill_read.lock().expect("feed") = kill.filter(|_| runs < 12);
        }
        let (_trigger, shutdown) = Shutdown::new();
        let sync = poll_streams(&streams, &lake.sink, settings(), SyncMode::Once, shutdown);
        let killed = async {
            tokio::select! {
                _ = streams[0].feed.killed.notified() => {}
                _ = streams[1].feed.killed.notified() => {}
            }
        };
        let finished = tokio::select! {
            result = sync => result.is_ok(),
            _ = killed => false,
        };
        let committed = lake.assert_consistent(&streams).await;
        if finished {
            assert_eq!(committed, vec![Some(150), Some(150)], "a finished once sync read every record");
            break;
        }
    }
    assert!(runs > 1, "no fault was injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_cannot_land_stops_the_stream_after_committing_the_pages_before_it() {
    test_seed();
    let lake = Lake::new();
    let streams = streams();
    // Record 30 is on the fifth page (7 records each): four pages, 28 records, land before the error.
    streams[0].feed.records.lock().expect("feed")[30].id = -1;
    let (_trigger, shutdown) = Shutdown::new();
    let error = poll_streams(&streams, &lake.sink, settings(), SyncMode::Once, shutdown).await.expect_err("bad record");
    assert!(error.to_string().contains("id -1 cannot land"), "{error}");
    assert_eq!(lake.assert_consistent(&streams).await, vec![Some(28), Some(150)]);

    streams[0].feed.records.lock().expect("feed")[30].id = 5;
    let (_trigger, shutdown) = Shutdown::new();
    poll_streams(&streams, &lake.sink, settings(), SyncMode::Once, shutdown).await.expect("fixed");
    assert_eq!(lake.assert_consistent(&streams).await, vec![Some(150), Some(150)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_sync_reads_records_added_between_passes_and_a_resync_reads_the_stream_again() {
    test_seed();
    let lake = Lake::new();
    let streams = streams();
    let (trigger, shutdown) = Shutdown::new();
    let settings = PollSettings { poll_interval: Duration::from_millis(50), ..settings() };
    let sync = tokio::spawn({
        let (streams, sink) = (streams.clone(), lake.sink.clone());
        async move { poll_streams(&streams, &sink, settings, SyncMode::Continuous, shutdown).await }
    });
    lake.wait_for(&streams, 150).await;
    // Records added after the first pass caught up are read by a later one.
    for stream in &streams {
        stream.feed.push(40, stream.keyed);
    }
    lake.wait_for(&streams, 190).await;
    trigger.request();
    let report = sync.await.expect("joined").expect("synced");
    assert_eq!(report.tables.len(), 2);

    // A resync empties the table and leaves its snapshot unfinished: the next sync reads the feed again.
    let declared = schema(streams[1].table_id(), false, false).expect("schema");
    let mut writer = lake.sink.open_table(&declared, TableOptions::default()).await.expect("opened");
    let position = writer.cursor().expect("a cursor").position.clone();
    writer.restart_snapshot(TableCursor::restarting(position)).await.expect("restarted");
    assert_eq!(lake.table(&streams[1]).await.0, Vec::new());
    let (_trigger, shutdown) = Shutdown::new();
    poll_streams(&streams, &lake.sink, settings, SyncMode::Once, shutdown).await.expect("synced again");
    assert_eq!(lake.assert_consistent(&streams).await, vec![Some(190), Some(190)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_at_its_byte_budget_or_latency_target_whatever_its_record_count() {
    test_seed();
    // 150 records in pages of 7: 22 pages; the `note` field adds a column, in a commit of its own. A batch
    // whose first page waited the commit interval (here at once) is committed: one commit per page.
    let hour = Duration::from_secs(3600);
    for (batch_bytes, commit_interval, commits) in
        [(usize::MAX, hour, 2), (1, hour, 23), (usize::MAX, Duration::ZERO, 23)]
    {
        let lake = Lake::new();
        let streams = streams();
        let settings = PollSettings { batch_records: 1000, batch_bytes, commit_interval, ..settings() };
        let (_trigger, shutdown) = Shutdown::new();
        poll_streams(&streams[..1], &lake.sink, settings, SyncMode::Once, shutdown).await.expect("synced");
        assert_eq!(lake.assert_consistent(&streams[..1]).await, vec![Some(150)]);
        let declared = schema(streams[0].table_id(), true, false).expect("schema");
        let writer = lake.sink.open_table(&declared, TableOptions::default()).await.expect("opened");
        // Version 0 created the table; each batch is one commit after it, and the new column one more.
        assert_eq!(writer.table().version(), Some(commits), "batch_bytes {batch_bytes}, {commit_interval:?}");
    }
}
