//! The PostgreSQL change stream: reads pgoutput over the streaming replication protocol and decodes each
//! transaction into its tables' change buffers; the engine (`connector_core::engine`) commits them and only then
//! has the position confirmed to the server (`flush_lsn`), so the slot never moves past what Delta holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use connector_core::change::Operation;
use connector_core::engine::{
    CapturedTable, CapturedTables, ChangeStream, EventReader, IdleCursors, SharedChunkReader, Started, StreamStep,
};
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::pipeline::SyncMode;
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::{Column, TableId, TableSchema};
use pgwire_replication::{ReplicationClient, ReplicationEvent};
use tokio_postgres::Client;
use tracing::{debug, info};

use crate::catalog::{TypeCatalog, source_error};
use crate::changes::{PendingChanges, TableShape, append_binary_value};
use crate::config::PostgresConfig;
use crate::earlier_rows::fill_earlier_rows;
use crate::pgoutput::{self, Change, Relation, TupleValue};
use crate::setup::{parse_lsn, report_slot_wal, wait_for_slot};
use crate::snapshot::{replication_connect_error, replication_error};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
/// Prefix of the logical messages the connector writes into the WAL.
const MESSAGE_PREFIX: &str = "connector";
/// How long a stopping sync waits for the server to receive its last confirmed position.
const FEEDBACK_DEADLINE: Duration = Duration::from_secs(5);

/// The replication stream of a pipeline's slot, decoded into its tables' change buffers.
pub struct ReplicationStream<'a> {
    config: &'a PostgresConfig,
    sql: &'a Client,
    tables: CapturedTables<PendingChanges>,
    reader: WalReader,
    mode: SyncMode,
    /// The content of the marker a `once` sync stops at.
    end_marker: Option<String>,
    last_heartbeat: Instant,
    /// When the slot's WAL was last read for the metrics (`None`: not yet).
    last_slot_report: Option<Instant>,
    catalog: TypeCatalog,
    /// Relation OID → index into `tables`.
    relations: HashMap<u32, usize>,
    /// Begin's commit LSN and time of the open transaction.
    open_transaction: Option<(Lsn, DateTime<Utc>)>,
    /// Every transaction up to here was received whole (committed to Delta if it had our rows, or irrelevant).
    received: Lsn,
    acknowledged: Lsn,
    /// Reads chunks of the tables copied while streaming, with the rows per chunk.
    chunk_reader: Option<(SharedChunkReader, u64)>,
}

/// The replication connection, read apart from the decoding so the engine reads while the tables merge. The
/// client's worker reads the socket into a channel of its own; this is its receiving end.
#[derive(Default)]
pub struct WalReader {
    client: Option<ReplicationClient>,
}

/// Why the replication stream could not be read.
#[derive(Debug)]
pub enum WalReadFailure {
    NotStarted,
    /// The server ended the stream.
    Ended,
    Wire(pgwire_replication::PgWireError),
}

impl std::fmt::Debug for WalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalReader").field("open", &self.client.is_some()).finish()
    }
}

impl EventReader for WalReader {
    type Event = ReplicationEvent;
    type Failure = WalReadFailure;

    /// Cancel-safe: a receive from the client's channel.
    async fn next_event(&mut self) -> std::result::Result<ReplicationEvent, WalReadFailure> {
        let Some(client) = self.client.as_mut() else { return Err(WalReadFailure::NotStarted) };
        match client.recv().await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(WalReadFailure::Ended),
            Err(cause) => Err(WalReadFailure::Wire(cause)),
        }
    }

    fn event_bytes(event: &ReplicationEvent) -> usize {
        let payload = match event {
            ReplicationEvent::XLogData { data, .. } => data.len(),
            ReplicationEvent::Message { prefix, content, .. } => prefix.len() + content.len(),
            _ => 0,
        };
        size_of::<ReplicationEvent>() + payload
    }
}

impl std::fmt::Debug for ReplicationStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationStream").field("received", &self.received).finish_non_exhaustive()
    }
}

impl<'a> ReplicationStream<'a> {
    /// A stream from `start` (the slot's confirmed position) into `tables`.
    pub fn new(
        config: &'a PostgresConfig,
        sql: &'a Client,
        tables: Vec<CapturedTable<PendingChanges>>,
        start: Lsn,
    ) -> Self {
        ReplicationStream {
            config,
            sql,
            tables: CapturedTables::new(tables),
            reader: WalReader::default(),
            mode: SyncMode::Once,
            end_marker: None,
            last_heartbeat: Instant::now(),
            last_slot_report: None,
            catalog: TypeCatalog::default(),
            relations: HashMap::new(),
            open_transaction: None,
            received: start,
            acknowledged: start,
            chunk_reader: None,
        }
    }

    /// Copies the tables marked `CapturedTable::chunked` in chunks of `rows` read by `reader`.
    pub fn with_chunk_reader(mut self, reader: SharedChunkReader, rows: u64) -> Self {
        self.chunk_reader = Some((reader, rows));
        self
    }

    /// The tables, with what the stream committed to them.
    pub fn into_tables(self) -> Vec<CapturedTable<PendingChanges>> {
        self.tables.into_inner()
    }

    /// Waits (bounded) until the server's slot shows the position confirmed last: the walsender applies the
    /// final status update after the connection closes, so a `status` or a check run right after `--once`
    /// returns would otherwise see the slot behind.
    async fn wait_for_slot_confirmation(&self) {
        let deadline = Instant::now() + FEEDBACK_DEADLINE;
        loop {
            let confirmed = self
                .sql
                .query_opt(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.config.slot],
                )
                .await
                .ok()
                .flatten()
                .and_then(|row| row.get::<_, Option<String>>(0))
                .and_then(|text| parse_lsn(&text).ok());
            if confirmed.is_none_or(|lsn| lsn >= self.acknowledged) || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The stream's failure, with the way out when the slot can no longer serve the pipeline.
    fn stream_error(&self, cause: pgwire_replication::PgWireError) -> Error {
        let text = cause.to_string();
        let (pipeline, slot, publication) =
            (&self.config.capture.pipeline, &self.config.slot, &self.config.publication);
        let lost = if text.contains("publication") && text.contains("does not exist") {
            Some(format!(
                "publication {publication} was dropped while slot {slot} still had changes to decode, and PostgreSQL \
                 cannot decode them without it"
            ))
        } else if text.contains("invalidated") || text.contains("can no longer get changes") {
            Some(format!("replication slot {slot} was invalidated (the server removed WAL it needed)"))
        } else {
            None
        };
        match lost {
            Some(reason) => Error::history_lost(
                self.tables.iter().map(|table| table.writer.table_id().clone()),
                format!(
                    "{reason}; the changes in between are lost to the connector: drop the slot and copy every table \
                 anew with `connector drop --pipeline {pipeline} --url …`, then sync again"
                ),
            )
            .caused_by(cause),
            None => replication_error("the replication stream failed", cause),
        }
    }

    async fn emit_message(&self, kind: &str) -> Result<String> {
        emit_message(self.sql, &self.config.capture.pipeline, kind).await
    }

    async fn on_event(&mut self, event: ReplicationEvent) -> Result<StreamStep> {
        match event {
            ReplicationEvent::Begin { final_lsn, commit_time_micros, .. } => {
                self.open_transaction = Some((Lsn(final_lsn.as_u64()), postgres_time(commit_time_micros)));
            }
            ReplicationEvent::Commit { end_lsn, commit_time_micros, .. } => {
                let position = SourcePosition::Postgres { lsn: Lsn(end_lsn.as_u64()) };
                self.tables.close_transaction(&position, postgres_time(commit_time_micros));
                self.open_transaction = None;
                self.received = self.received.max(Lsn(end_lsn.as_u64()));
            }
            ReplicationEvent::XLogData { data, .. } => {
                let change = pgoutput::decode(&data)
                    .map_err(|cause| Error::state("cannot decode the replication stream").caused_by(cause))?;
                self.apply(change, data.len()).await?;
            }
            ReplicationEvent::Message { lsn, prefix, content, transactional } => {
                if !transactional && self.open_transaction.is_none() {
                    self.received = self.received.max(Lsn(lsn.as_u64()));
                }
                let marker = self.end_marker.as_deref();
                if prefix == MESSAGE_PREFIX && marker.is_some_and(|marker| marker.as_bytes() == content.as_ref()) {
                    return Ok(StreamStep::ReachedEnd);
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                if self.open_transaction.is_none() {
                    self.received = self.received.max(Lsn(wal_end.as_u64()));
                }
            }
            ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(StreamStep::Continue)
    }

    /// Takes a change that came in a WAL message of `message_bytes`.
    async fn apply(&mut self, change: Change<'_>, message_bytes: usize) -> Result<()> {
        let (relation, operation, old, new) = match change {
            Change::Relation(relation) => return self.on_relation(relation).await,
            Change::Insert { relation, new } => (relation, Operation::Insert, None, new),
            Change::Update { relation, old, new } => (relation, Operation::Update, old, new),
            Change::Delete { relation, old } => (relation, Operation::Delete, None, old),
            Change::Truncate { relations } => {
                for relation in relations {
                    if let Some(index) = self.table_for(relation) {
                        self.tables.get_mut(index).source.push_truncate(None, append_binary_value)?;
                        self.tables.touch(index);
                        self.tables.count_bytes_read(index, message_bytes);
                    }
                }
                return Ok(());
            }
            Change::Other(_) => return Ok(()),
        };
        let Some(index) = self.table_for(relation) else { return Ok(()) };
        self.tables.count_bytes_read(index, message_bytes);
        let table = &mut self.tables.get_mut(index).source;
        let key_columns: Vec<usize> =
            table.shape().schema.primary_key.iter().filter_map(|key| table.shape().schema.column_index(key)).collect();
        let mut old_key_row = None;
        if let Some(old) = &old {
            // A changed key: the row under the old key is gone.
            let key_changed = !key_columns.is_empty()
                && key_columns.iter().any(|&column| {
                    old.get(column).and_then(TupleValue::bytes) != new.get(column).and_then(TupleValue::bytes)
                });
            if key_changed {
                let values: Vec<Option<&[u8]>> = old.iter().map(TupleValue::bytes).collect();
                old_key_row = Some(table.push(Operation::Delete, &values, append_binary_value)?);
            }
        }
        let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(new.len());
        let mut unchanged = Vec::new();
        for (column, value) in new.iter().enumerate() {
            values.push(match value {
                // The old row (REPLICA IDENTITY FULL) carries the value; otherwise it is restored at commit, from
                // the row stored under the old key when the key changed.
                TupleValue::UnchangedToast => match old.as_ref().and_then(|old| old.get(column)) {
                    Some(TupleValue::Binary(bytes) | TupleValue::Text(bytes)) => Some(*bytes),
                    _ => {
                        unchanged.push(column);
                        None
                    }
                },
                other => other.bytes(),
            });
        }
        let row = table.push(operation, &values, append_binary_value)?;
        for column in unchanged {
            table.mark_unchanged(row, column, old_key_row.unwrap_or(row));
        }
        self.tables.touch(index);
        Ok(())
    }

    /// The table a relation's changes belong to, unless the open transaction is already in that table.
    fn table_for(&self, relation: u32) -> Option<usize> {
        let index = *self.relations.get(&relation)?;
        let (begin, _) = self.open_transaction?;
        (begin >= self.tables.get(index).source.state.0).then_some(index)
    }

    /// Maps a relation to its table and, when its columns changed, gives the table its new shape.
    async fn on_relation(&mut self, relation: Relation) -> Result<()> {
        let id = TableId::new(&relation.namespace, &relation.name);
        let Some(index) = self.tables.position(&id) else {
            debug!(table = %id, "ignoring a relation the pipeline does not capture");
            return Ok(());
        };
        self.relations.insert(relation.oid, index);
        let current = self.tables.get(index).source.shape();
        let names: Vec<&str> = relation.columns.iter().map(|column| column.name.as_str()).collect();
        let wire: Vec<(u32, i32)> = relation.columns.iter().map(|column| (column.type_oid, column.typmod)).collect();
        let same_names = current.schema.columns.iter().map(|column| column.name.as_str()).eq(names.iter().copied());
        if same_names && current.wire_types == wire {
            return Ok(());
        }
        let dimensions = self.array_dimensions(relation.oid).await?;
        let mut columns = Vec::with_capacity(relation.columns.len());
        let mut types = Vec::with_capacity(relation.columns.len());
        for column in &relation.columns {
            let declared = dimensions.get(&column.name).copied().unwrap_or(1);
            let pg_type = self.catalog.resolve(self.sql, column.type_oid, column.typmod, declared).await?;
            let source_type = format_type(self.sql, column.type_oid, column.typmod).await?;
            columns.push(Column::new(&column.name, pg_type.arrow_type(), source_type));
            types.push(pg_type);
        }
        let primary_key: Vec<String> =
            current.schema.primary_key.iter().filter(|key| names.contains(&key.as_str())).cloned().collect();
        if primary_key.len() != current.schema.primary_key.len() {
            return Err(Error::schema(
                &id,
                format!(
                    "a key column of {id} was dropped or renamed while streaming; stop the pipeline and resync the table \
                     (connector resync --pipeline {} --table {id})",
                    self.config.capture.pipeline
                ),
            ));
        }
        fill_earlier_rows(self.sql, relation.oid, &mut columns, &types).await?;
        info!(table = %id, columns = ?names, "table shape changed");
        let schema = TableSchema::new(id, columns, primary_key)?;
        self.tables.get_mut(index).source.reshape(TableShape { schema, types, wire_types: wire })?;
        Ok(())
    }

    async fn array_dimensions(&self, relation: u32) -> Result<HashMap<String, i32>> {
        let rows = self
            .sql
            .query(
                "SELECT attname::text, attndims::int4 FROM pg_attribute WHERE attrelid = $1 AND attnum > 0",
                &[&relation],
            )
            .await
            .map_err(|cause| source_error("cannot read column dimensions", cause))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get::<_, i32>(1))).collect())
    }

    /// Waits (briefly) until the server has been told the last confirmed position, so the slot advances.
    async fn wait_for_feedback(&self, client: &ReplicationClient) {
        let deadline = Instant::now() + FEEDBACK_DEADLINE;
        while client.metrics().last_applied_lsn().as_u64() < self.acknowledged.0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Writes a logical message of `kind` into the WAL, outside any transaction, and returns its unique content.
///
/// The statement also takes a transaction id, so that its commit flushes the WAL, the message with it: a WAL
/// sender sends only flushed WAL, and a message alone waits for the WAL writer, up to `wal_writer_delay`
/// (200 ms by default) later, a wait each chunk of a copy would pay. The transaction holds no change: pgoutput
/// skips it (from PostgreSQL 15; older servers send it empty, and the stream passes over it).
pub(crate) async fn emit_message(sql: &Client, pipeline: &str, kind: &str) -> Result<String> {
    let content = format!("{kind} {pipeline} {}", fastrand::u64(..));
    sql.execute("SELECT pg_logical_emit_message(false, $1, $2), txid_current()", &[&MESSAGE_PREFIX, &content])
        .await
        .map_err(|cause| source_error("cannot write a marker into the WAL", cause))?;
    Ok(content)
}

async fn format_type(sql: &Client, oid: u32, typmod: i32) -> Result<String> {
    let row = sql
        .query_one("SELECT format_type($1, $2)", &[&oid, &typmod])
        .await
        .map_err(|cause| source_error("cannot name a column type", cause))?;
    Ok(row.get(0))
}

fn postgres_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros.saturating_add(POSTGRES_EPOCH_OFFSET_MICROS)).unwrap_or_default()
}

impl ChangeStream for ReplicationStream<'_> {
    type Table = PendingChanges;
    type Reader = WalReader;

    fn reader_and_tables(&mut self) -> (&mut WalReader, &mut CapturedTables<PendingChanges>) {
        (&mut self.reader, &mut self.tables)
    }

    fn read_failed(&self, failure: WalReadFailure) -> Error {
        match failure {
            WalReadFailure::NotStarted => Error::state("internal: the replication stream was read before it started"),
            WalReadFailure::Ended => {
                Error::new(ErrorKind::Source, Retry::WithBackoff, "the server ended the replication stream".to_string())
            }
            WalReadFailure::Wire(cause) => self.stream_error(cause),
        }
    }

    async fn start(&mut self, mode: SyncMode) -> Result<Started> {
        wait_for_slot(self.sql, &self.config.slot, &self.config.capture.pipeline).await?;
        let settings = self.config.replication(&self.config.slot, self.acknowledged.0).await?;
        let mut client = ReplicationClient::connect(settings.into_inner())
            .await
            .map_err(|cause| replication_connect_error(self.config, "cannot open the replication connection", cause))?;
        client.wait_started().await.map_err(|cause| {
            replication_error(format!("cannot start replication from slot {}", self.config.slot), cause)
        })?;
        self.reader.client = Some(client);
        self.mode = mode;
        // `once` stops at a marker written now: everything committed before it is then received.
        if mode == SyncMode::Once {
            self.end_marker = Some(self.emit_message("end").await?);
        }
        info!(slot = %self.config.slot, from = %self.acknowledged, "streaming changes");
        Ok(Started::Streaming)
    }

    async fn handle(&mut self, event: ReplicationEvent) -> Result<StreamStep> {
        self.on_event(event).await
    }

    fn open_transaction(&self) -> Option<(SourcePosition, DateTime<Utc>)> {
        self.open_transaction.map(|(lsn, commit_time)| (SourcePosition::Postgres { lsn }, commit_time))
    }

    fn received(&self) -> SourcePosition {
        SourcePosition::Postgres { lsn: self.received }
    }

    /// Tells the server (`flush_lsn`) that the slot may move to `position`.
    fn acknowledge(&mut self, position: &SourcePosition) {
        if let (SourcePosition::Postgres { lsn }, Some(client)) = (position, &self.reader.client)
            && *lsn > self.acknowledged
        {
            client.update_applied_lsn(pgwire_replication::Lsn::from_u64(lsn.0));
            self.acknowledged = *lsn;
        }
    }

    fn idle_cursors(&self) -> IdleCursors {
        IdleCursors::Keep
    }

    fn chunk_reader(&self) -> Option<(SharedChunkReader, u64)> {
        self.chunk_reader.clone()
    }

    /// A transaction is placed by its commit LSN, as a snapshot's consistent point is: the snapshot holds the
    /// transactions that committed before the point.
    fn transaction_start(&self, event: &ReplicationEvent) -> Option<SourcePosition> {
        match event {
            ReplicationEvent::Begin { final_lsn, .. } => {
                Some(SourcePosition::Postgres { lsn: Lsn(final_lsn.as_u64()) })
            }
            _ => None,
        }
    }

    /// In continuous mode, writes a heartbeat into the WAL now and then: the slot then advances (and the server
    /// frees WAL) even while the captured tables do not change.
    async fn on_tick(&mut self) -> Result<()> {
        if self.mode == SyncMode::Continuous && self.last_heartbeat.elapsed() >= self.config.heartbeat_interval {
            self.last_heartbeat = Instant::now();
            self.emit_message("heartbeat").await?;
        }
        // The slot's WAL, for the metrics: as streaming begins, then as often as the heartbeat.
        if self.mode == SyncMode::Continuous
            && self.last_slot_report.is_none_or(|last| last.elapsed() >= self.config.heartbeat_interval)
        {
            self.last_slot_report = Some(Instant::now());
            report_slot_wal(self.sql, self.config).await;
        }
        Ok(())
    }

    async fn close(&mut self) {
        let Some(mut client) = self.reader.client.take() else { return };
        self.wait_for_feedback(&client).await;
        client.stop();
        let _ = client.shutdown().await;
        self.wait_for_slot_confirmation().await;
    }
}
