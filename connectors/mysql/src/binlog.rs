//! The MySQL/MariaDB change stream: reads the binlog as a replica does (mysql_async's binlog stream, checksums
//! verified) and decodes each transaction into its tables' change buffers; the engine
//! (`connector_core::engine`) commits them, each commit carrying the binlog position after the transaction as
//! the table's cursor.
//!
//! Reading starts at the oldest cursor of the captured tables; a transaction is applied to a table only if it
//! began after that table's cursor, so a table copied later than another (or resynced) is not given changes
//! its snapshot already holds.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use connector_core::change_buffer::ChangeBuffer;
use connector_core::cursor::TableCursor;
use connector_core::delta::{DeltaSink, DeltaTableWriter};
use connector_core::engine::{
    CapturedTable, CapturedTables, ChangeStream, ChunkedCopy, IdleCursors, SharedChunkReader, Started, StreamStep,
    TableChanges, chunk_key,
};
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::gtid_state::GtidState;
use connector_core::pipeline::SyncMode;
use connector_core::position::{BinlogPosition, SourcePosition};
use connector_core::schema::TableId;
use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{BinlogEventHeader, Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Sid};
use tracing::{debug, info, warn};

use crate::binlog_order::compare;
use crate::catalog::{describe_table, source_error};
use crate::changes::{PendingChanges, TableShape, append_binlog_value};
use crate::codec::ColumnBuilder;
use crate::config::{COPY_HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL, MySqlConfig};
use crate::connection;
use crate::ddl::{TableStatement, classify};
use crate::earlier_rows::fill_earlier_rows;
use crate::event_reader::{BinlogEvents, BinlogReadFailure};
use crate::gtid::{MARIADB_GTID_EVENT, MARIADB_GTID_LIST_EVENT, decode_gtid_event, decode_gtid_list};
use crate::mapped_tables::MappedTables;
use crate::read_buffer::grow_read_buffer;
use crate::row_images::push_rows;
use crate::setup::{Flavor, ServerInfo, mariadb_gtid_at};
use crate::snapshot::copy_table;
use crate::stream_errors::{
    ER_MASTER_FATAL_ERROR_READING_BINLOG, duplicate_server_id, duplicate_server_id_error, foreign_position_error,
    purged_binlog_error,
};
use crate::table_map::{Collations, shape_of};

/// How often a streaming sync reads the binlog's end for the lag metric.
const LAG_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// The binlog's state of one captured table.
#[derive(Debug)]
pub struct BinlogTable {
    pub pending: PendingChanges,
    /// The key configured for the table, replacing the table map's (tables without a primary key).
    key_override: Option<Vec<String>>,
    /// The table map the pending shape was last found equal to: every transaction repeats the map, and an
    /// identical one needs no new look (reading a map's shape is a tenth of the reader's time otherwise).
    checked_map: Option<TableMapEvent<'static>>,
}

impl BinlogTable {
    pub fn new(shape: TableShape, key_override: Option<Vec<String>>) -> Self {
        BinlogTable { pending: PendingChanges::new(shape, ()), key_override, checked_map: None }
    }
}

impl TableChanges for BinlogTable {
    type Columns = ColumnBuilder;

    fn changes(&self) -> &ChangeBuffer<ColumnBuilder> {
        self.pending.changes()
    }

    fn changes_mut(&mut self) -> &mut ChangeBuffer<ColumnBuilder> {
        self.pending.changes_mut()
    }
}

/// The binlog position a table's cursor holds, if it holds one.
fn binlog_cursor(writer: &DeltaTableWriter) -> Option<&BinlogPosition> {
    match writer.cursor().map(|cursor| &cursor.position) {
        Some(SourcePosition::Binlog(position)) => Some(position),
        _ => None,
    }
}

pub struct BinlogReader<'a> {
    config: &'a MySqlConfig,
    server: &'a ServerInfo,
    tables: CapturedTables<BinlogTable>,
    events: BinlogEvents,
    /// The server's position when the sync started: a `once` sync stops there.
    target: BinlogPosition,
    mode: SyncMode,
    /// Opens the Delta tables of tables created while streaming.
    sink: &'a DeltaSink,
    /// Tables of a captured database whose CREATE TABLE was read: captured from their first rows on (every row
    /// they hold follows their creation in the binlog).
    created: HashSet<TableId>,
    collations: Collations,
    /// Binlog table id → index into `tables` (`None`: a table the pipeline does not capture).
    mapped: MappedTables,
    file: String,
    /// Where the open transaction began (its GTID or BEGIN event); `None` between transactions.
    transaction_start: Option<BinlogPosition>,
    /// A BEGIN opened the transaction: statements inside it (SAVEPOINT) do not end it.
    explicit_transaction: bool,
    /// Every transaction up to here was received whole.
    received: BinlogPosition,
    /// The GTID state up to the event being read (empty when the server writes no GTIDs).
    gtids: GtidState,
    /// `gtids` as positions carry it, written once per change rather than for every position.
    gtid_text: Option<String>,
    /// Whether GTID events update `gtids` (see `new`).
    track_gtids: bool,
    /// Reads chunks of the tables copied while streaming, with the rows per chunk.
    chunk_reader: Option<(SharedChunkReader, u64)>,
    /// When the binlog's end was last read for the lag metric (`None`: not yet).
    last_lag_report: Option<std::time::Instant>,
}

impl std::fmt::Debug for BinlogReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogReader").field("received", &self.received).finish_non_exhaustive()
    }
}

impl<'a> BinlogReader<'a> {
    pub fn new(
        config: &'a MySqlConfig,
        server: &'a ServerInfo,
        tables: Vec<CapturedTable<BinlogTable>>,
        sink: &'a DeltaSink,
        collations: Collations,
        (start, target): (BinlogPosition, BinlogPosition),
    ) -> Self {
        // MySQL's executed set is known only from a position that carries it, and stays right only while every
        // transaction gets a GTID; otherwise positions are file and offset alone (a set grown from nothing, or
        // one that stopped while anonymous transactions went on, would name the wrong place on another server).
        let track_gtids = server.flavor == Flavor::MariaDb || (server.writes_gtids && start.gtid.is_some());
        let gtids = start.gtid_state().filter(|_| track_gtids).unwrap_or_else(|| match server.flavor {
            Flavor::MariaDb => GtidState::MariaDb(Default::default()),
            Flavor::MySql => GtidState::MySql(Default::default()),
        });
        BinlogReader {
            config,
            server,
            tables: CapturedTables::new(tables),
            events: BinlogEvents::default(),
            target,
            mode: SyncMode::Once,
            sink,
            created: HashSet::new(),
            collations,
            mapped: MappedTables::default(),
            file: start.file.clone(),
            transaction_start: None,
            explicit_transaction: false,
            gtid_text: (!gtids.is_empty()).then(|| gtids.to_string()),
            gtids,
            track_gtids,
            received: start,
            chunk_reader: None,
            last_lag_report: None,
        }
    }

    /// Copies the tables marked `CapturedTable::chunked` in chunks of `rows` read by `reader`.
    pub fn with_chunk_reader(mut self, reader: SharedChunkReader, rows: u64) -> Self {
        self.chunk_reader = Some((reader, rows));
        self
    }

    /// The tables, with what the stream committed to them.
    pub fn into_tables(self) -> Vec<CapturedTable<BinlogTable>> {
        self.tables.into_inner()
    }

    /// Where the start was taken: on this server (or by a version that did not record it), or on another.
    fn start_is_elsewhere(&self) -> bool {
        self.received.server.as_ref().is_some_and(|server| *server != self.server.identity)
    }

    /// A start taken on another server of the topology can only be carried over by its GTID state.
    fn check_start_is_readable(&self) -> Result<()> {
        if self.start_is_elsewhere() && self.gtids.is_empty() {
            return Err(Error::config(format!(
                "the tables' binlog position {}:{} was taken on server {}, and this is server {}: without GTIDs \
                 (MySQL: gtid_mode=ON) a position cannot be carried to another server. Copy the tables anew with \
                 `connector resync --pipeline {} --table {}`, or point the pipeline back at that server",
                self.received.file,
                self.received.offset,
                self.received.server.as_deref().unwrap_or_default(),
                self.server.identity,
                self.config.capture.pipeline,
                self.table_names()
            )));
        }
        Ok(())
    }

    /// The captured tables, as the resync command takes them.
    fn table_names(&self) -> String {
        self.tables.iter().map(|table| table.writer.table_id().to_string()).collect::<Vec<_>>().join(",")
    }

    /// Asks for the binlog after the start's file and offset on the server that wrote them, and after its GTID
    /// state on another (a replica promoted since, whose files and offsets differ). Reading by GTID makes the
    /// server search its binlog for the position, so it is used only where the file and offset mean nothing.
    async fn open_stream(&mut self) -> Result<BinlogStream> {
        let mut conn = connection::connect(self.config, "cannot connect to read the binlog").await?;
        grow_read_buffer(&mut conn).await?;
        // Heartbeats (in nanoseconds) while the server is idle, so a dead connection is noticed.
        // While tables are copied in chunks, a chunk is applied once the stream passes its position, which an
        // idle server's heartbeat shows: heartbeats come more often then.
        let period = if self.tables.copying().next().is_some() { COPY_HEARTBEAT_INTERVAL } else { HEARTBEAT_INTERVAL };
        let heartbeat = format!("SET @master_heartbeat_period = {}", period.as_nanos());
        conn.query_drop(heartbeat).await.map_err(|cause| source_error("cannot set the binlog heartbeat", cause))?;
        if self.server.flavor == Flavor::MariaDb {
            // A replica announcing GTID support (capability 4) receives MariaDB's GTID events as they are.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|cause| source_error("cannot announce GTID support to the server", cause))?;
            if self.gtids.is_empty() && !self.start_is_elsewhere() {
                // A snapshot taken while the server was busy has no GTID state: the server tells it.
                let state = mariadb_gtid_at(&mut conn, &self.received.file, self.received.offset).await?;
                if let Some(state) = state.and_then(|state| GtidState::parse(&state).ok().flatten()) {
                    self.gtids = state;
                    self.gtids_changed();
                }
            }
        }
        let by_gtid = self.start_is_elsewhere();
        let request = BinlogStreamRequest::new(self.config.server_id);
        let request = match (&self.gtids, by_gtid) {
            (GtidState::MariaDb(_), true) => {
                info!(gtid = %self.gtids, "reading the binlog after the GTID position");
                conn.exec_drop("SET @slave_connect_state = ?", (self.gtids.to_string(),))
                    .await
                    .map_err(|cause| source_error("cannot ask for the binlog by GTID", cause))?;
                // The server finds the file itself; it opens the stream with a rotate to it.
                request.with_filename(b"").with_pos(4u64)
            }
            (GtidState::MySql(_), true) => {
                info!(gtid = %self.gtids, "reading the binlog after the executed GTID set");
                let sids = mysql_sids(&self.gtids)?;
                request.with_gtid().with_gtid_set(sids).with_filename(b"").with_pos(4u64)
            }
            (_, false) => {
                info!(file = %self.received.file, offset = self.received.offset, "reading the binlog");
                request.with_filename(self.received.file.as_bytes()).with_pos(self.received.offset)
            }
        };
        conn.get_binlog_stream(request).await.map_err(|cause| self.stream_error(cause))
    }

    /// The stream's failure; a purged binlog comes with the way out.
    fn stream_error(&self, cause: mysql_async::Error) -> Error {
        if let mysql_async::Error::Server(server) = &cause
            && server.code == ER_MASTER_FATAL_ERROR_READING_BINLOG
        {
            if duplicate_server_id(&server.message) {
                return duplicate_server_id_error(self.config.server_id, &server.message).caused_by(cause);
            }
            let tables = self.table_names();
            if self.start_is_elsewhere() {
                return foreign_position_error(
                    &self.received,
                    &self.server.identity,
                    &self.config.capture.pipeline,
                    &tables,
                )
                .caused_by(cause);
            }
            let ids: Vec<TableId> = self.tables.iter().map(|table| table.writer.table_id().clone()).collect();
            return purged_binlog_error(&self.received, &self.config.capture.pipeline, &ids, &server.message)
                .caused_by(cause);
        }
        source_error("reading the binlog failed", cause)
    }

    fn position(&self, log_pos: u32) -> BinlogPosition {
        BinlogPosition {
            file: self.file.clone(),
            offset: u64::from(log_pos),
            gtid: self.gtid_text.clone(),
            server: Some(self.server.identity.clone()),
        }
    }

    fn gtids_changed(&mut self) {
        self.gtid_text = (!self.gtids.is_empty()).then(|| self.gtids.to_string());
    }

    /// Where an event began: its end position less its size.
    fn event_start(&self, event: &Event) -> BinlogPosition {
        let header = event.header();
        self.position(header.log_pos().saturating_sub(header.event_size()))
    }

    async fn on_event(&mut self, event: &Event) -> Result<()> {
        let header = event.header();
        let raw_type = header.event_type_raw();
        if raw_type == MARIADB_GTID_EVENT {
            let start = self.event_start(event);
            if let Some(event) = decode_gtid_event(event.data(), header.server_id()) {
                let gtid = event.gtid;
                self.gtids.record_mariadb(gtid.domain, gtid.server, gtid.sequence);
                self.gtids_changed();
            }
            self.transaction_start = Some(start);
            return Ok(());
        }
        if raw_type == MARIADB_GTID_LIST_EVENT {
            for gtid in decode_gtid_list(event.data()).unwrap_or_default() {
                self.gtids.learn_mariadb_domain(gtid.domain, gtid.server, gtid.sequence);
            }
            self.gtids_changed();
            self.between_transactions(header.log_pos())?;
            return Ok(());
        }
        if raw_type == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            // The transaction's row events are compressed inside this one (MySQL 8.0.20+): skipping it would lose
            // them, and mysql_common panics on a damaged one (found by fuzzing).
            return Err(Error::new(
                ErrorKind::Source,
                Retry::No,
                format!(
                    "the binlog at {}:{} holds a compressed transaction (binlog_transaction_compression = ON), which the \
                     connector cannot read yet; set it OFF on the server (SET PERSIST \
                     binlog_transaction_compression = OFF), then resync the tables written since it was turned on",
                    self.file,
                    header.log_pos()
                ),
            ));
        }
        let data = event
            .read_data()
            .map_err(|cause| Error::state(format!("cannot decode a binlog event in {}", self.file)).caused_by(cause))?;
        match data {
            Some(EventData::RotateEvent(rotate)) => {
                self.file = rotated_name(header, event.data(), rotate.name_raw());
                if self.transaction_start.is_none() {
                    self.received = BinlogPosition {
                        file: self.file.clone(),
                        offset: rotate.position(),
                        gtid: self.received.gtid.clone(),
                        server: Some(self.server.identity.clone()),
                    };
                }
            }
            Some(EventData::GtidEvent(gtid)) => {
                self.transaction_start = Some(self.event_start(event));
                if self.track_gtids {
                    self.gtids.record_mysql(gtid.sid(), gtid.gno());
                    self.gtids_changed();
                }
            }
            Some(EventData::QueryEvent(query)) => {
                let text = query.query();
                let statement = text.trim();
                if statement.eq_ignore_ascii_case("BEGIN") {
                    if self.transaction_start.is_none() {
                        self.transaction_start = Some(self.event_start(event));
                    }
                    self.explicit_transaction = true;
                } else if statement.eq_ignore_ascii_case("COMMIT") || statement.eq_ignore_ascii_case("ROLLBACK") {
                    // Non-transactional tables end their event group with a COMMIT (or ROLLBACK) statement; the
                    // rows it carries happened either way.
                    self.commit_transaction(header.log_pos(), header.timestamp())?;
                } else if self.explicit_transaction {
                    debug!(statement, "statement inside a transaction");
                } else {
                    let start = self.transaction_start.take().unwrap_or_else(|| self.event_start(event));
                    self.transaction_start = Some(start);
                    self.on_statement(&query.schema(), statement).await?;
                    self.commit_transaction(header.log_pos(), header.timestamp())?;
                }
            }
            Some(EventData::XidEvent(_)) => self.commit_transaction(header.log_pos(), header.timestamp())?,
            Some(EventData::TableMapEvent(map)) => self.on_table_map(&map).await?,
            Some(EventData::RowsEvent(rows)) => self.on_rows(&rows, header.event_size() as usize)?,
            Some(EventData::HeartbeatEvent) | Some(EventData::FormatDescriptionEvent(_)) | None => {
                self.between_transactions(header.log_pos())?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// An event outside any transaction moves the received position.
    fn between_transactions(&mut self, log_pos: u32) -> Result<()> {
        if self.transaction_start.is_none() && log_pos > 0 {
            let position = self.position(log_pos);
            if compare(&position, &self.received)?.is_gt() {
                self.received = position;
            }
        }
        Ok(())
    }

    fn commit_transaction(&mut self, log_pos: u32, timestamp: u32) -> Result<()> {
        let position = self.position(log_pos);
        let commit_time = DateTime::<Utc>::from_timestamp(i64::from(timestamp), 0).unwrap_or_default();
        self.tables.close_transaction(&SourcePosition::Binlog(position.clone()), commit_time);
        self.transaction_start = None;
        self.explicit_transaction = false;
        if compare(&position, &self.received)?.is_gt() {
            self.received = position;
        }
        Ok(())
    }

    /// DDL: column changes arrive with the next table map; the statements that change which tables exist or
    /// what they hold are handled here (see [`TableStatement`]).
    async fn on_statement(&mut self, default_database: &str, statement: &str) -> Result<()> {
        match classify(statement, default_database) {
            TableStatement::Created { table, if_not_exists } => match self.captured(&table) {
                None if self.config.databases.contains(&table.namespace) => {
                    info!(%table, "a table was created in a captured database; capturing it from its first rows");
                    self.created.insert(table);
                }
                // A captured table created anew (after a DROP, or CREATE OR REPLACE) starts empty.
                Some(index) if !if_not_exists && self.begins_after_cursor(index)? => {
                    info!(%table, "a captured table was created anew; its Delta table starts over empty");
                    self.empty_table(index)?;
                }
                _ => {}
            },
            TableStatement::Truncated(table) => {
                if let Some(index) = self.captured(&table)
                    && self.begins_after_cursor(index)?
                {
                    self.empty_table(index)?;
                }
            }
            TableStatement::Renamed(pairs) => {
                for (from, to) in pairs {
                    if self.captured(&from).is_some() {
                        warn!(table = %from, renamed_to = %to, "a captured table was renamed; its Delta table keeps the rows it had");
                    }
                    if self.config.databases.contains(&to.namespace) {
                        self.copy_renamed(&to).await?;
                    }
                }
            }
            TableStatement::Dropped(tables) => {
                for table in tables.iter().filter(|table| self.captured(table).is_some()) {
                    warn!(%table, "a captured table was dropped; its Delta table keeps the rows it had");
                }
            }
            TableStatement::Other => debug!(statement, "statement in the binlog"),
        }
        Ok(())
    }

    fn empty_table(&mut self, index: usize) -> Result<()> {
        self.tables.get_mut(index).source.pending.push_truncate(None, append_binlog_value)?;
        self.tables.touch(index);
        Ok(())
    }

    /// A table renamed into a captured database brings rows the binlog never showed. With a single integer key
    /// (and chunked copies on) it is copied in chunks while the stream goes on, as a table added to the pipeline
    /// is; otherwise it is copied now, under a snapshot taken at the current binlog position (at or after the
    /// rename). Either way the changes the binlog shows before a snapshot's position are skipped for the rows
    /// that snapshot reads.
    async fn copy_renamed(&mut self, id: &TableId) -> Result<()> {
        // Changes read so far land first: the copy may replace a table that was captured before.
        self.tables.commit().await?;
        let options = self.config.capture.options_for(id);
        let mut conn = connection::connect(self.config, &format!("cannot connect to copy {id}")).await?;
        let described = describe_table(&mut conn, id, options.key.as_deref()).await;
        let _ = conn.disconnect().await;
        let source = match described {
            Ok(source) => source,
            // Renamed again or dropped since: the binlog further on says so.
            Err(error) if error.kind() == ErrorKind::Config => {
                warn!(table = %id, %error, "a table renamed into a captured database is gone again; not copying it");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let shape = TableShape { schema: source.schema.clone(), types: source.types.clone() };
        let index = match self.captured(id) {
            Some(index) => {
                self.tables.get_mut(index).source = BinlogTable::new(shape, options.key.clone());
                index
            }
            None => {
                let writer = self.sink.open_table(&source.schema, options.clone()).await?;
                self.tables.push(CapturedTable::new(writer, BinlogTable::new(shape, options.key.clone())))
            }
        };
        let in_chunks = self.chunk_reader.is_some();
        let table = self.tables.get_mut(index);
        if let Some(cursor) = table.writer.cursor() {
            let restart = TableCursor::restarting(cursor.position.clone());
            table.writer.restart_snapshot(restart).await?;
        }
        match chunk_key(&source.schema).filter(|_| in_chunks) {
            Some(key) => {
                info!(table = %id, "a table was renamed into a captured database; copying it in chunks");
                table.chunked = ChunkedCopy::needed(table.writer.cursor(), key)?;
            }
            None => {
                info!(table = %id, "a table was renamed into a captured database; copying it");
                table.chunked = None;
                let copied = copy_table(self.config, self.server, &source, &mut table.writer, None).await?;
                table.count_copy(copied);
            }
        }
        Ok(())
    }

    /// Opens the Delta table of a table created while streaming, shaped by its first table map; returns its index.
    async fn capture_created(&mut self, map: &TableMapEvent<'_>, id: &TableId) -> Result<usize> {
        let options = self.config.capture.options_for(id);
        let shape = shape_of(map, &self.collations, options.key.as_deref())?;
        let key_override = options.key.clone();
        let writer = self.sink.open_table(&shape.schema, options).await?;
        Ok(self.tables.push(CapturedTable::new(writer, BinlogTable::new(shape, key_override))))
    }

    fn captured(&self, id: &TableId) -> Option<usize> {
        self.tables.position(id)
    }

    /// Whether the open transaction began after the table's cursor (else the table already holds it).
    fn begins_after_cursor(&self, index: usize) -> Result<bool> {
        Ok(match (binlog_cursor(&self.tables.get(index).writer), &self.transaction_start) {
            (Some(cursor), Some(start)) => compare(start, cursor)?.is_ge(),
            (None, _) => true,
            (Some(_), None) => false,
        })
    }

    async fn on_table_map(&mut self, map: &TableMapEvent<'_>) -> Result<()> {
        // The map repeated by the table's every transaction: nothing to look up or check again.
        if let Some(Some(index)) = self.mapped.get(map.table_id())
            && self.tables.get(index).source.checked_map.as_ref() == Some(map)
        {
            return Ok(());
        }
        let id = TableId::new(map.database_name(), map.table_name());
        let index = match self.captured(&id) {
            Some(index) => index,
            None if self.created.remove(&id) => self.capture_created(map, &id).await?,
            None => {
                self.mapped.insert(map.table_id(), None);
                return Ok(());
            }
        };
        self.mapped.insert(map.table_id(), Some(index));
        let table = &self.tables.get(index).source;
        let mut shape = shape_of(map, &self.collations, table.key_override.as_deref())?;
        if !shape.same_columns(table.pending.shape()) {
            let previous_key = &table.pending.shape().schema.primary_key;
            if !previous_key.is_empty() && &shape.schema.primary_key != previous_key {
                return Err(Error::schema(
                    &id,
                    format!(
                        "the primary key of {id} changed while streaming ({} → {}); resync the table \
                         (connector resync --pipeline {} --table {id})",
                        previous_key.join(","),
                        shape.schema.primary_key.join(","),
                        self.config.capture.pipeline
                    ),
                ));
            }
            info!(table = %id, columns = ?shape.schema.columns.iter().map(|column| &column.name).collect::<Vec<_>>(), "table shape changed");
            let mut conn =
                connection::connect(self.config, &format!("cannot connect to read the columns of {id}")).await?;
            let filled = fill_earlier_rows(&mut conn, &id, &mut shape.schema.columns).await;
            let _ = conn.disconnect().await;
            filled?;
            self.tables.get_mut(index).source.pending.reshape(shape)?;
        }
        self.tables.get_mut(index).source.checked_map = Some(map.clone().into_owned());
        Ok(())
    }

    /// Takes a rows event of `event_size` bytes.
    fn on_rows(&mut self, rows: &RowsEventData<'_>, event_size: usize) -> Result<()> {
        let Some(Some(index)) = self.mapped.get(rows.table_id()) else { return Ok(()) };
        if !self.begins_after_cursor(index)? {
            return Ok(());
        }
        // The table's map handled last, which its transaction sent before these rows: the stream's own maps
        // may already hold ones read ahead.
        let table = self.tables.get_mut(index);
        let map = table
            .source
            .checked_map
            .as_ref()
            .filter(|map| map.table_id() == rows.table_id())
            .ok_or_else(|| Error::state(format!("a rows event in {} has no table map", self.file)))?;
        let id = table.writer.table_id().clone();
        push_rows(&mut table.source.pending, rows, map, &id)?;
        self.tables.touch(index);
        self.tables.count_bytes_read(index, event_size);
        Ok(())
    }
}

impl ChangeStream for BinlogReader<'_> {
    type Table = BinlogTable;
    type Reader = BinlogEvents;

    fn reader_and_tables(&mut self) -> (&mut BinlogEvents, &mut CapturedTables<BinlogTable>) {
        (&mut self.events, &mut self.tables)
    }

    fn read_failed(&self, failure: BinlogReadFailure) -> Error {
        match failure {
            BinlogReadFailure::NotOpen => Error::state("internal: the binlog was read before its stream opened"),
            BinlogReadFailure::Malformed(malformed) => malformed.into_error(&self.received),
            BinlogReadFailure::Server(cause) => self.stream_error(cause),
            BinlogReadFailure::Ended => {
                Error::new(ErrorKind::Source, Retry::WithBackoff, "the server ended the binlog stream")
            }
        }
    }

    async fn start(&mut self, mode: SyncMode) -> Result<Started> {
        self.check_start_is_readable()?;
        self.mode = mode;
        let copying = self.tables.copying().next().is_some();
        if mode == SyncMode::Once && !copying && compare(&self.received, &self.target)?.is_ge() {
            return Ok(Started::AtEnd);
        }
        self.events.stream = Some(self.open_stream().await?);
        Ok(Started::Streaming)
    }

    async fn handle(&mut self, event: Event) -> Result<StreamStep> {
        self.on_event(&event).await?;
        let between = self.transaction_start.is_none();
        if self.mode == SyncMode::Once && between && compare(&self.received, &self.target)?.is_ge() {
            return Ok(StreamStep::ReachedEnd);
        }
        Ok(StreamStep::Continue)
    }

    /// The open transaction's rows applied as a part are labelled with where it began: parts keep the table's
    /// cursor, so the position only labels the rows.
    fn open_transaction(&self) -> Option<(SourcePosition, DateTime<Utc>)> {
        self.transaction_start.as_ref().map(|start| (SourcePosition::Binlog(start.clone()), Utc::now()))
    }

    fn received(&self) -> SourcePosition {
        SourcePosition::Binlog(self.received.clone())
    }

    /// The binlog keeps no reader's position: where the pipeline stands is its tables' cursors.
    fn acknowledge(&mut self, _position: &SourcePosition) {}

    fn idle_cursors(&self) -> IdleCursors {
        IdleCursors::Advance
    }

    fn chunk_reader(&self) -> Option<(SharedChunkReader, u64)> {
        self.chunk_reader.clone()
    }

    /// Between transactions, any event but those that never open one is taken as a transaction's start, placed
    /// where it begins: a snapshot's position is where the next transaction would begin.
    fn transaction_start(&self, event: &Event) -> Option<SourcePosition> {
        if self.transaction_start.is_some() {
            return None;
        }
        let raw_type = event.header().event_type_raw();
        let never_opens = raw_type == MARIADB_GTID_LIST_EVENT
            || matches!(
                event.header().event_type(),
                Ok(EventType::HEARTBEAT_EVENT
                    | EventType::FORMAT_DESCRIPTION_EVENT
                    | EventType::ROTATE_EVENT
                    | EventType::PREVIOUS_GTIDS_EVENT)
            );
        (!never_opens).then(|| SourcePosition::Binlog(self.event_start(event)))
    }

    /// While streaming, reads how far the server's binlog end is ahead, for the lag metric: as streaming begins,
    /// then every [`LAG_REPORT_INTERVAL`].
    async fn on_tick(&mut self) -> Result<()> {
        if self.mode == SyncMode::Continuous
            && self.last_lag_report.is_none_or(|last| last.elapsed() >= LAG_REPORT_INTERVAL)
        {
            self.last_lag_report = Some(std::time::Instant::now());
            crate::status::report_binlog_lag(self.config, self.server, &self.received).await;
        }
        Ok(())
    }

    async fn close(&mut self) {
        if let Some(stream) = self.events.stream.take() {
            let _ = stream.close().await;
        }
    }
}

/// The file a rotate event names. The artificial rotate (`log_pos` 0) a server sends when a stream opens comes
/// before any format description, so the reader cannot know whether it ends in a checksum, and servers differ
/// (MariaDB adds one in some modes only): the checksum is recognised by its value.
fn rotated_name(header: BinlogEventHeader, body: &[u8], name: &[u8]) -> String {
    let name = if header.log_pos() == 0 && ends_in_checksum(header, body) {
        &name[..name.len().saturating_sub(4)]
    } else {
        name
    };
    String::from_utf8_lossy(name).into_owned()
}

/// Whether an event's last four bytes are the CRC32 of its header and the rest of its body.
fn ends_in_checksum(header: BinlogEventHeader, body: &[u8]) -> bool {
    let Some(split) = body.len().checked_sub(4) else { return false };
    let (content, stored) = body.split_at(split);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header.timestamp().to_le_bytes());
    hasher.update(&[header.event_type_raw()]);
    hasher.update(&header.server_id().to_le_bytes());
    hasher.update(&header.event_size().to_le_bytes());
    hasher.update(&header.log_pos().to_le_bytes());
    hasher.update(&header.flags_raw().to_le_bytes());
    hasher.update(content);
    hasher.finalize().to_le_bytes() == stored
}

/// The executed GTID set in the form of MySQL's `COM_BINLOG_DUMP_GTID`: one `uuid:intervals` part per source,
/// as mysql_common reads them.
fn mysql_sids(executed: &GtidState) -> Result<Vec<Sid<'static>>> {
    executed
        .to_string()
        .split(',')
        .map(|part| {
            part.parse::<Sid<'static>>()
                .map_err(|cause| Error::state(format!("`{part}` is not a MySQL GTID set")).caused_by(cause))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mysql_async::GnoInterval;

    use super::*;

    #[test]
    fn the_artificial_rotate_loses_its_checksum_when_it_has_one() {
        use mysql_async::binlog::{EventFlags, EventType};
        let rotate = |name: &[u8], checksum: bool| {
            let mut body = 4_u64.to_le_bytes().to_vec();
            body.extend(name);
            let size = 19 + body.len() as u32 + if checksum { 4 } else { 0 };
            let header = BinlogEventHeader::new(0, EventType::ROTATE_EVENT, 1, size, 0, EventFlags::empty());
            let mut raw = vec![0; 19];
            raw[4] = 4;
            raw[5..9].copy_from_slice(&1_u32.to_le_bytes());
            raw[9..13].copy_from_slice(&size.to_le_bytes());
            raw.extend(&body);
            if checksum {
                let crc = crc32fast::hash(&raw).to_le_bytes();
                body.extend(crc);
            }
            (header, body)
        };
        for checksum in [true, false] {
            let (header, body) = rotate(b"mariadb-bin.000001", checksum);
            let name = &body[8..];
            assert_eq!(rotated_name(header, &body, name), "mariadb-bin.000001", "checksum: {checksum}");
        }
    }

    #[test]
    fn executed_gtid_sets_become_dump_requests() {
        let executed = GtidState::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7").expect("valid").expect("a set");
        let sids = mysql_sids(&executed).expect("valid UUIDs");
        assert_eq!(sids.len(), 1);
        assert_eq!(sids[0].uuid()[..4], [0x3e, 0x11, 0xfa, 0x47]);
        assert_eq!(sids[0].intervals(), &[GnoInterval::new(1, 6), GnoInterval::new(7, 8)]);
    }
}
