//! Applies logical replication changes to the Delta tables: reads pgoutput over the streaming replication
//! protocol, gathers closed transactions per table, commits them in micro-batches and only then confirms the
//! position to the server (`flush_lsn`), so the slot never moves past what Delta holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use connector_core::change::Operation;
use connector_core::delta::{ApplyOutcome, DeltaTableWriter, apply_each};
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::pipeline::{Shutdown, SyncMode, commit_check_period};
use connector_core::position::Lsn;
use connector_core::schema::{Column, TableId, TableSchema};
use pgwire_replication::{ReplicationClient, ReplicationEvent};
use tokio_postgres::Client;
use tracing::{debug, info};

use crate::catalog::{TypeCatalog, source_error};
use crate::changes::{PendingChanges, TableShape, TakenChanges};
use crate::config::PostgresConfig;
use crate::earlier_rows::fill_earlier_rows;
use crate::pgoutput::{self, Change, Relation, TupleValue};
use crate::setup::{parse_lsn, wait_for_slot};
use crate::snapshot::{replication_connect_error, replication_error};
use crate::toast::fill_unchanged;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
/// Prefix of the logical messages the connector writes into the WAL.
const MESSAGE_PREFIX: &str = "connector";
/// How long a stopping sync waits for the server to receive its last confirmed position.
const FEEDBACK_DEADLINE: Duration = Duration::from_secs(5);

/// A table being streamed.
#[derive(Debug)]
pub struct StreamedTable {
    pub writer: DeltaTableWriter,
    pub pending: PendingChanges,
    /// Transactions that committed before this position are already in the table (its snapshot or an
    /// earlier run) and are skipped as they arrive.
    pub skip_before: Lsn,
    pub changes_applied: u64,
}

pub struct ChangeStream<'a> {
    config: &'a PostgresConfig,
    sql: &'a Client,
    tables: &'a mut [StreamedTable],
    catalog: TypeCatalog,
    /// Relation OID → index into `tables`.
    relations: HashMap<u32, usize>,
    /// Begin's commit LSN and time of the open transaction.
    open_transaction: Option<(Lsn, DateTime<Utc>)>,
    /// Tables with rows in the open transaction.
    touched: Vec<usize>,
    /// Every transaction up to here was received whole (committed to Delta if it had our rows, or irrelevant).
    received: Lsn,
    acknowledged: Lsn,
    oldest_pending: Option<Instant>,
    reached_end: bool,
}

impl std::fmt::Debug for ChangeStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream").field("received", &self.received).finish_non_exhaustive()
    }
}

impl<'a> ChangeStream<'a> {
    pub fn new(config: &'a PostgresConfig, sql: &'a Client, tables: &'a mut [StreamedTable], start: Lsn) -> Self {
        ChangeStream {
            config,
            sql,
            tables,
            catalog: TypeCatalog::default(),
            relations: HashMap::new(),
            open_transaction: None,
            touched: Vec::new(),
            received: start,
            acknowledged: start,
            oldest_pending: None,
            reached_end: false,
        }
    }

    /// Streams from the slot until shut down (continuous) or until every change present at start is
    /// committed (once).
    pub async fn run(mut self, mode: SyncMode, mut shutdown: Shutdown) -> Result<()> {
        wait_for_slot(self.sql, &self.config.slot, &self.config.pipeline).await?;
        let settings = self.config.replication(&self.config.slot, self.acknowledged.0).await?;
        let mut client = ReplicationClient::connect(settings.into_inner())
            .await
            .map_err(|cause| replication_connect_error(self.config, "cannot open the replication connection", cause))?;
        client.wait_started().await.map_err(|cause| {
            replication_error(format!("cannot start replication from slot {}", self.config.slot), cause)
        })?;
        // `once` stops at a marker written now: everything committed before it is then received.
        let end_marker = match mode {
            SyncMode::Once => Some(self.emit_message("end").await?),
            SyncMode::Continuous => None,
        };
        info!(slot = %self.config.slot, from = %self.acknowledged, "streaming changes");
        let mut tick = tokio::time::interval(commit_check_period(self.config.commit_interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heartbeat = Instant::now();
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                _ = tick.tick() => {
                    if self.open_transaction.is_none() && self.due_by_time() {
                        self.commit(&client).await?;
                    }
                    if mode == SyncMode::Continuous && last_heartbeat.elapsed() >= self.config.heartbeat_interval {
                        last_heartbeat = Instant::now();
                        self.emit_message("heartbeat").await?;
                    }
                    continue;
                }
                event = client.recv() => event,
            };
            let event = event.map_err(|cause| self.stream_error(cause))?;
            let Some(event) = event else {
                return Err(Error::new(
                    ErrorKind::Source,
                    Retry::WithBackoff,
                    "the server ended the replication stream".to_string(),
                ));
            };
            self.handle(event, end_marker.as_deref()).await?;
            if self.open_transaction.is_none() && (self.due_by_size() || self.reached_end) {
                self.commit(&client).await?;
            } else if self.open_transaction.is_some() && self.partial_due_by_size() {
                self.commit_with_open_parts(&client).await?;
            }
            if self.reached_end {
                break;
            }
        }
        if self.open_transaction.is_none() {
            self.commit(&client).await?;
        }
        self.wait_for_feedback(&client).await;
        client.stop();
        let _ = client.shutdown().await;
        self.wait_for_slot_confirmation().await;
        Ok(())
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
        let (pipeline, slot, publication) = (&self.config.pipeline, &self.config.slot, &self.config.publication);
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
            Some(reason) => Error::state(format!(
                "{reason}; the changes in between are lost to the connector: drop the slot and copy every table \
                 anew with `connector drop --pipeline {pipeline} --url …`, then sync again"
            ))
            .caused_by(cause),
            None => replication_error("the replication stream failed", cause),
        }
    }

    /// Writes a logical message into the WAL and returns its unique content.
    async fn emit_message(&self, kind: &str) -> Result<String> {
        let content = format!("{kind} {} {}", self.config.pipeline, fastrand::u64(..));
        self.sql
            .execute("SELECT pg_logical_emit_message(false, $1, $2)", &[&MESSAGE_PREFIX, &content])
            .await
            .map_err(|cause| source_error("cannot write a marker into the WAL", cause))?;
        Ok(content)
    }

    fn due_by_time(&self) -> bool {
        self.oldest_pending.is_some_and(|since| since.elapsed() >= self.config.commit_interval)
            || (self.oldest_pending.is_none() && self.received > self.acknowledged)
    }

    fn due_by_size(&self) -> bool {
        self.tables.iter().map(|table| table.pending.buffered_bytes()).sum::<usize>() >= self.config.batch_bytes
    }

    /// A transaction larger than the memory budget is applied in parts, on tables where that is idempotent.
    fn partial_due_by_size(&self) -> bool {
        self.tables
            .iter()
            .filter(|table| table.writer.accepts_partial_transactions())
            .map(|table| table.pending.buffered_bytes())
            .sum::<usize>()
            >= self.config.batch_bytes
    }

    async fn handle(&mut self, event: ReplicationEvent, end_marker: Option<&str>) -> Result<()> {
        match event {
            ReplicationEvent::Begin { final_lsn, commit_time_micros, .. } => {
                self.open_transaction = Some((Lsn(final_lsn.as_u64()), postgres_time(commit_time_micros)));
            }
            ReplicationEvent::Commit { end_lsn, commit_time_micros, .. } => {
                let commit_time = postgres_time(commit_time_micros);
                for index in self.touched.drain(..) {
                    self.tables[index].pending.close_transaction(Lsn(end_lsn.as_u64()), commit_time);
                }
                self.open_transaction = None;
                self.received = self.received.max(Lsn(end_lsn.as_u64()));
            }
            ReplicationEvent::XLogData { data, .. } => {
                let change = pgoutput::decode(&data)
                    .map_err(|cause| Error::state("cannot decode the replication stream").caused_by(cause))?;
                self.apply(change).await?;
            }
            ReplicationEvent::Message { lsn, prefix, content, transactional } => {
                if !transactional && self.open_transaction.is_none() {
                    self.received = self.received.max(Lsn(lsn.as_u64()));
                }
                if prefix == MESSAGE_PREFIX && end_marker.is_some_and(|marker| marker.as_bytes() == content.as_ref()) {
                    self.reached_end = true;
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                if self.open_transaction.is_none() {
                    self.received = self.received.max(Lsn(wal_end.as_u64()));
                }
            }
            ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    async fn apply(&mut self, change: Change<'_>) -> Result<()> {
        let (relation, operation, old, new) = match change {
            Change::Relation(relation) => return self.on_relation(relation).await,
            Change::Insert { relation, new } => (relation, Operation::Insert, None, new),
            Change::Update { relation, old, new } => (relation, Operation::Update, old, new),
            Change::Delete { relation, old } => (relation, Operation::Delete, None, old),
            Change::Truncate { relations } => {
                for relation in relations {
                    if let Some(index) = self.table_for(relation) {
                        self.tables[index].pending.push_truncate()?;
                        self.touch(index);
                    }
                }
                return Ok(());
            }
            Change::Other(_) => return Ok(()),
        };
        let Some(index) = self.table_for(relation) else { return Ok(()) };
        let table = &mut self.tables[index];
        let id = table.pending.shape().schema.id.clone();
        let key_columns: Vec<usize> = table
            .pending
            .shape()
            .schema
            .primary_key
            .iter()
            .filter_map(|key| table.pending.shape().schema.column_index(key))
            .collect();
        let mut old_key_row = None;
        if let Some(old) = &old {
            // A changed key: the row under the old key is gone.
            let key_changed = !key_columns.is_empty()
                && key_columns.iter().any(|&column| {
                    old.get(column).and_then(TupleValue::bytes) != new.get(column).and_then(TupleValue::bytes)
                });
            if key_changed {
                let values: Vec<Option<&[u8]>> = old.iter().map(TupleValue::bytes).collect();
                old_key_row = Some(table.pending.push(Operation::Delete, &values)?);
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
        if values.len() != table.pending.shape().schema.columns.len() {
            return Err(Error::state(format!(
                "a change to {id} has {} columns, its relation {}",
                values.len(),
                table.pending.shape().schema.columns.len()
            )));
        }
        if unchanged.is_empty() {
            table.pending.push(operation, &values)?;
        } else {
            table.pending.push_update_with_unchanged(&values, &unchanged, old_key_row)?;
        }
        self.touch(index);
        Ok(())
    }

    fn touch(&mut self, index: usize) {
        if !self.touched.contains(&index) {
            self.touched.push(index);
        }
        self.oldest_pending.get_or_insert_with(Instant::now);
    }

    /// The table a relation's changes belong to, unless the open transaction is already in that table.
    fn table_for(&self, relation: u32) -> Option<usize> {
        let index = *self.relations.get(&relation)?;
        let (begin, _) = self.open_transaction?;
        (begin >= self.tables[index].skip_before).then_some(index)
    }

    /// Maps a relation to its table and, when its columns changed, gives the table its new shape.
    async fn on_relation(&mut self, relation: Relation) -> Result<()> {
        let id = TableId::new(&relation.namespace, &relation.name);
        let Some(index) = self.tables.iter().position(|table| table.pending.shape().schema.id == id) else {
            debug!(table = %id, "ignoring a relation the pipeline does not capture");
            return Ok(());
        };
        self.relations.insert(relation.oid, index);
        let current = self.tables[index].pending.shape();
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
                    self.config.pipeline
                ),
            ));
        }
        fill_earlier_rows(self.sql, relation.oid, &mut columns, &types).await?;
        info!(table = %id, columns = ?names, "table shape changed");
        let schema = TableSchema::new(id, columns, primary_key)?;
        self.tables[index].pending.reshape(TableShape { schema, types, wire_types: wire })?;
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

    /// Commits every closed transaction to Delta, the tables merging side by side (`apply_each`), then confirms
    /// the position to the server.
    async fn commit(&mut self, client: &ReplicationClient) -> Result<()> {
        let mut batches = Vec::new();
        for table in self.tables.iter_mut() {
            if let Some(taken) = table.pending.take_batch()? {
                batches.push((table, taken));
            }
        }
        apply_each(batches, |(table, taken)| apply_taken(table, taken, false)).await?;
        self.oldest_pending = None;
        self.confirm_received(client);
        Ok(())
    }

    /// Tells the server every transaction received so far is durable (the caller committed them).
    fn confirm_received(&mut self, client: &ReplicationClient) {
        if self.received > self.acknowledged {
            client.update_applied_lsn(pgwire_replication::Lsn::from_u64(self.received.0));
            self.acknowledged = self.received;
        }
    }

    /// Mid-transaction, with the memory budget used up: commits every closed transaction, and the open one's
    /// rows so far as a part (see `DeltaTableWriter::apply_partial_transaction`). Tables whose mode needs
    /// whole transactions keep buffering; the position is confirmed only if nothing closed is left.
    async fn commit_with_open_parts(&mut self, client: &ReplicationClient) -> Result<()> {
        let Some(open) = self.open_transaction else { return Ok(()) };
        let mut closed_all = true;
        for table in self.tables.iter_mut() {
            let (closed, open_part) = if table.writer.accepts_partial_transactions() {
                table.pending.take_with_open_part(open)?
            } else if !table.pending.has_open_rows() {
                (table.pending.take_batch()?, None)
            } else {
                closed_all = false;
                continue;
            };
            if let Some(taken) = closed {
                apply_taken(table, taken, false).await?;
            }
            if let Some(taken) = open_part {
                let (table_id, rows) = (&taken.taken.schema.id, taken.taken.operations.len());
                info!(table = %table_id, rows, "applying part of a large transaction");
                apply_taken(table, taken, true).await?;
            }
        }
        self.oldest_pending = None;
        if closed_all {
            self.confirm_received(client);
        }
        Ok(())
    }

    /// Waits (briefly) until the server has been told the last confirmed position, so the slot advances.
    async fn wait_for_feedback(&self, client: &ReplicationClient) {
        let deadline = Instant::now() + FEEDBACK_DEADLINE;
        while client.metrics().last_applied_lsn().as_u64() < self.acknowledged.0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Restores unchanged values, then applies the rows (whole transactions, or a part of the open one) and
/// counts them for the report.
async fn apply_taken(table: &mut StreamedTable, taken: TakenChanges, part: bool) -> Result<()> {
    let rows = fill_unchanged(
        table.writer.table(),
        &taken.taken.schema,
        taken.taken.rows.clone(),
        &taken.taken.operations,
        &taken.unchanged,
    )
    .await?;
    let (schema, batch) = taken.into_batch(rows)?;
    let count = batch.len() as u64;
    let outcome = if part {
        table.writer.apply_partial_transaction(&schema, &batch).await?
    } else {
        table.writer.apply_changes(&schema, &batch).await?
    };
    debug!(table = %schema.id, rows = count, ?outcome, "committed changes");
    if !matches!(outcome, ApplyOutcome::AlreadyCommitted) {
        table.changes_applied += count;
    }
    Ok(())
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
