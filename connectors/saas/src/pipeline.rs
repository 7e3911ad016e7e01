//! One sync of a SaaS pipeline: every stream at once, each reading pages ahead while the previous batch is
//! merged, and committing records with the stream state after them in one Delta commit.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use connector_core::arrow::array::{RecordBatch, new_null_array};
use connector_core::arrow::compute::concat_batches;
use connector_core::arrow::datatypes::{Field, Schema};
use connector_core::change::{ChangeBatch, Operation, TransactionSpan};
use connector_core::cursor::TableCursor;
use connector_core::delta::{DeltaSink, DeltaTableWriter, Destination};
use connector_core::deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use connector_core::error::{Error, Result};
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode, SyncReport, TableReport};
use connector_core::position::{ApiCursor, SourcePosition};
use connector_core::schema::{TableId, TableSchema};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::auth::Credentials;
use crate::client::ApiClient;
use crate::codec::record_batch;
use crate::config::SaasConfig;
use crate::excerpt::excerpt;
use crate::schema::StreamSchema;
use crate::stream::{Page, RecordChange, StreamReader};

/// Pages handed over from the reading task at once. The next batch fills while the previous one is merged, so
/// memory stays bounded by two batches plus these pages.
const PAGES_AHEAD: usize = 16;

/// A SaaS source bound to its Delta tables.
#[derive(Debug)]
pub struct SaasPipeline {
    config: Arc<SaasConfig>,
    client: ApiClient,
    streams: Vec<Arc<dyn StreamReader>>,
    sink: DeltaSink,
}

impl SaasPipeline {
    pub fn new(config: SaasConfig) -> Result<Self> {
        let credentials = match &config.auth {
            Some(settings) => Credentials::from_settings(settings, &config.base_url, &|name| std::env::var(name).ok())?,
            None => Credentials::anonymous(),
        };
        let client =
            ApiClient::new(config.service.kind(), config.base_url.clone(), credentials, config.limits.clone())?;
        let streams = config.service.streams(&config)?;
        let sink = DeltaSink::new(Destination::parse(&config.dest)?, config.pipeline.clone(), HashMap::new());
        Ok(SaasPipeline { config: Arc::new(config), client, streams, sink })
    }

    async fn run(&self, mode: SyncMode, shutdown: Shutdown) -> Result<SyncReport> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, reader) in self.streams.iter().enumerate() {
            let stream = StreamSync {
                config: self.config.clone(),
                client: self.client.clone(),
                reader: reader.clone(),
                sink: self.sink.clone(),
            };
            let shutdown = shutdown.clone();
            tasks.spawn(async move { (index, stream.run(mode, shutdown).await) });
        }
        let mut reports = vec![None; self.streams.len()];
        let mut failure: Option<Error> = None;
        while let Some(joined) = tasks.join_next().await {
            let (index, result) =
                joined.map_err(|panic| Error::state(format!("a stream sync ended abnormally: {panic}")))?;
            match result {
                Ok(report) => reports[index] = Some(report),
                Err(error) => {
                    warn!(stream = %self.streams[index].shape().name, error = %error.report(), "stream stopped");
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(SyncReport { tables: reports.into_iter().flatten().collect() }),
        }
    }
}

impl Pipeline for SaasPipeline {
    fn name(&self) -> &str {
        &self.config.pipeline
    }

    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        Box::pin(self.run(mode, shutdown))
    }
}

/// One stream's sync.
struct StreamSync {
    config: Arc<SaasConfig>,
    client: ApiClient,
    reader: Arc<dyn StreamReader>,
    sink: DeltaSink,
}

/// A stream's table and where it stands.
struct StreamTable {
    writer: DeltaTableWriter,
    schema: StreamSchema,
    /// The sequence of the last committed cursor; each commit takes the next one.
    sequence: u64,
    /// The stream state committed last (`None`: never synced).
    state: Option<Value>,
    report: TableReport,
}

impl StreamSync {
    async fn run(self, mode: SyncMode, mut shutdown: Shutdown) -> Result<TableReport> {
        let mut table = self.open().await?;
        loop {
            let state = self.reader.start_pass(table.state.as_ref(), self.config.lookback)?;
            info!(stream = %table.report.table, "reading");
            self.pass(&mut table, state, &shutdown).await?;
            if mode == SyncMode::Once || shutdown.is_requested() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.requested() => break,
            }
        }
        table.report.position = table.writer.cursor().map(|cursor| cursor.position.clone());
        Ok(table.report)
    }

    async fn open(&self) -> Result<StreamTable> {
        self.reader.prepare(&self.client).await?;
        let shape = self.reader.shape();
        let id = TableId::new(&self.config.namespace, &shape.name);
        let declared = StreamSchema::new(id.clone(), shape, &[]).table_schema()?;
        let mut writer = self.sink.open_table(&declared, self.config.options_for(&shape.name)).await?;
        let existing = source_fields(&writer)?;
        let schema = StreamSchema::new(id.clone(), shape, &existing);
        let committed = writer.cursor().map(|cursor| (cursor.snapshot_complete(), cursor.position.clone()));
        let (sequence, state) = match committed {
            None => (0, None),
            Some((complete, SourcePosition::Api(cursor))) if !complete => {
                (restart_from_scratch(&mut writer, &declared, cursor.sequence).await?, None)
            }
            Some((_, SourcePosition::Api(cursor))) => {
                let state: Value = serde_json::from_str(&cursor.cursor).map_err(|cause| {
                    Error::state(format!(
                        "{id}: the committed API cursor is not JSON; resync the stream (connector resync --pipeline \
                         {} --table {id})",
                        self.config.pipeline
                    ))
                    .caused_by(cause)
                })?;
                // `null`: a resync started the stream over and nothing was read since.
                (cursor.sequence, (!state.is_null()).then_some(state))
            }
            Some((_, other)) => {
                return Err(Error::state(format!(
                    "{id} holds a cursor of another source ({other}); write the stream to another destination"
                )));
            }
        };
        let report = TableReport { table: id, snapshot_rows: 0, changes_applied: 0, position: None };
        Ok(StreamTable { writer, schema, sequence, state, report })
    }

    /// Reads one pass (pages until the stream is caught up), committing every `batch_records` records while
    /// the next batch is read. On a failure, what was read before it is committed first, so the next run
    /// resumes after it.
    async fn pass(&self, table: &mut StreamTable, start: Value, shutdown: &Shutdown) -> Result<()> {
        let key = self.reader.shape().key.clone();
        let mut next = NextBatch::new(table.schema.clone(), key, self.config.batch_records)?;
        let (sender, mut pages) = mpsc::channel(PAGES_AHEAD);
        let reader =
            tokio::spawn(read_pages(self.client.clone(), self.reader.clone(), start, sender, shutdown.clone()));
        loop {
            while next.wants_pages() {
                next.take(pages.recv().await);
            }
            let Some(batch) = next.take_batch() else { break };
            let committed = {
                let commit = self.commit(table, batch);
                tokio::pin!(commit);
                // Pages keep arriving while the batch is merged: reading and writing overlap.
                loop {
                    tokio::select! {
                        result = &mut commit => break result,
                        page = pages.recv(), if next.wants_pages() => next.take(page),
                    }
                }
            };
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
        next.failure.map_or(Ok(()), Err)
    }

    /// Commits a batch's records and the stream state after them in one Delta commit.
    async fn commit(&self, table: &mut StreamTable, batch: ReadBatch) -> Result<()> {
        let ReadBatch { pages, operations, schema, state } = batch;
        if table.state.as_ref() == Some(&state) && operations.is_empty() {
            return Ok(());
        }
        let position = SourcePosition::Api(ApiCursor { sequence: table.sequence + 1, cursor: state.to_string() });
        if operations.is_empty() {
            table.writer.advance_cursor(&position).await?;
        } else {
            table.schema = schema;
            let schema = table.schema.table_schema()?;
            let rows = concat_pages(&schema, &pages)?;
            let records = operations.len();
            let span = TransactionSpan { end_row: records, position, commit_time: Utc::now() };
            let batch = ChangeBatch::new(&schema, rows, operations, vec![span])?;
            table.writer.apply_changes(&schema, &batch).await?;
            table.report.changes_applied += records as u64;
            info!(stream = %table.report.table, records, sequence = table.sequence + 1, "committed");
        }
        table.sequence += 1;
        table.state = Some(state);
        Ok(())
    }
}

/// A resync emptied the table and left its snapshot unfinished: the stream is read again from its start. A
/// stream has no snapshot apart from its first pass, so the restart is recorded at once as an empty, finished
/// snapshot whose API state is `null` (read from the start); every page after it commits as on a first sync.
/// Returns the sequence of that commit.
async fn restart_from_scratch(writer: &mut DeltaTableWriter, declared: &TableSchema, sequence: u64) -> Result<u64> {
    let sequence = sequence + 1;
    let position = SourcePosition::Api(ApiCursor { sequence, cursor: Value::Null.to_string() });
    let taken_at = Utc::now();
    writer
        .snapshot_writer(declared, &position, taken_at)
        .await?
        .commit(TableCursor::copied(position, 0, taken_at))
        .await?;
    info!(stream = %writer.table_id(), "resync requested: reading the stream again from its start");
    Ok(sequence)
}

/// Refuses records without the stream's key: they could not be merged.
fn check_keys(id: &TableId, key: &[String], changes: &[RecordChange]) -> Result<()> {
    for key in key {
        if let Some(change) = changes.iter().find(|change| change.record.get(key).is_none_or(Value::is_null)) {
            let shown = excerpt(Value::Object(change.record.clone()).to_string(), 200);
            return Err(Error::schema(
                id,
                format!("{id}: a record has no `{key}`, the stream's key, so it cannot be merged: {shown}"),
            ));
        }
    }
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

/// What one commit takes: the pages' rows, their operations, the columns they fill and the state after them.
struct ReadBatch {
    pages: Vec<RecordBatch>,
    operations: Vec<Operation>,
    schema: StreamSchema,
    state: Value,
}

/// The records read since the last commit, and whether the pass reads on. Each page becomes Arrow rows as it
/// arrives (a tenth of the memory of its JSON records, which are freed at once) while the previous batch merges.
struct NextBatch {
    /// The stream's columns as of the pages taken; the table's own copy catches up when the batch commits.
    schema: StreamSchema,
    /// `schema` as a table schema, rebuilt only when a page brings a new field.
    columns: TableSchema,
    key: Vec<String>,
    /// Each page's rows, in the columns known when it arrived.
    pages: Vec<RecordBatch>,
    operations: Vec<Operation>,
    /// The stream state after the last page taken; `None` until a page arrives.
    state: Option<Value>,
    /// Records that make a batch worth a commit.
    limit: usize,
    /// Reading stopped: the stream is caught up, or it failed (`failure`), or the reader is gone.
    finished: bool,
    failure: Option<Error>,
}

impl NextBatch {
    fn new(schema: StreamSchema, key: Vec<String>, limit: usize) -> Result<Self> {
        let columns = schema.table_schema()?;
        Ok(NextBatch {
            schema,
            columns,
            key,
            pages: Vec::new(),
            operations: Vec::new(),
            state: None,
            limit,
            finished: false,
            failure: None,
        })
    }

    fn wants_pages(&self) -> bool {
        !self.finished && self.operations.len() < self.limit
    }

    /// Takes a page, or the end of reading. A page whose records cannot land stops the pass like a failed
    /// request: the pages before it are committed, its state is not.
    fn take(&mut self, page: Option<Result<Page>>) {
        let taken = page.map(|page| {
            page.and_then(|mut page| {
                let changes = page.take_changes(&self.schema.id().to_string())?;
                self.add(&changes).map(|()| page)
            })
        });
        match taken {
            Some(Ok(page)) => {
                self.state = Some(page.state);
                self.finished = page.caught_up;
            }
            Some(Err(error)) => {
                self.failure = Some(error);
                self.finished = true;
            }
            None => self.finished = true,
        }
    }

    fn add(&mut self, changes: &[RecordChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        check_keys(self.schema.id(), &self.key, changes)?;
        if self.schema.observe(changes) {
            self.columns = self.schema.table_schema()?;
        }
        self.pages.push(record_batch(&self.columns, changes)?);
        self.operations.extend(changes.iter().map(|change| change.operation));
        Ok(())
    }

    /// The batch read so far, if any page arrived since the last one was taken.
    fn take_batch(&mut self) -> Option<ReadBatch> {
        let state = self.state.take()?;
        Some(ReadBatch {
            pages: std::mem::take(&mut self.pages),
            operations: std::mem::take(&mut self.operations),
            schema: self.schema.clone(),
            state,
        })
    }
}

/// Reads pages from `state` on, sending each (or the error that stopped the reading) until the stream is
/// caught up, the receiver is gone or shutdown is requested.
async fn read_pages(
    client: ApiClient,
    reader: Arc<dyn StreamReader>,
    mut state: Value,
    pages: mpsc::Sender<Result<Page>>,
    mut shutdown: Shutdown,
) {
    loop {
        if shutdown.is_requested() {
            return;
        }
        let page = tokio::select! {
            page = reader.next_page(&client, &state) => page,
            _ = shutdown.requested() => return,
        };
        let stop = page.as_ref().map_or(true, |page| page.caught_up);
        if let Ok(page) = &page {
            state = page.state.clone();
        }
        if pages.send(page).await.is_err() || stop {
            return;
        }
    }
}

/// The source columns of an existing table (its metadata columns left out by [`StreamSchema::new`]).
fn source_fields(writer: &DeltaTableWriter) -> Result<Vec<Field>> {
    let snapshot = writer
        .table()
        .snapshot()
        .map_err(|cause| Error::state(format!("cannot read the schema of {}", writer.table_id())).caused_by(cause))?;
    let schema: Schema = snapshot.schema().as_ref().try_into_arrow().map_err(|cause| {
        Error::state(format!("the Delta schema of {} has no Arrow equivalent", writer.table_id())).caused_by(cause)
    })?;
    Ok(schema.fields().iter().map(|field| field.as_ref().clone()).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn saas_record_without_its_key_is_shown_cut_on_a_character_boundary() {
        let id = TableId::new("rest", "items");
        // `{"name":"ab` is 11 bytes, then two-byte characters: byte 200 falls inside one.
        let record = json!({"name": format!("ab{}", "é".repeat(150))});
        let changes = vec![RecordChange::upsert(Operation::Update, record.as_object().cloned().expect("object"))];
        let error = check_keys(&id, &["id".to_string()], &changes).expect_err("no key");
        assert!(error.to_string().contains("a record has no `id`") && error.to_string().contains("abéé"), "{error}");
    }
}
