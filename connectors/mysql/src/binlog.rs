//! Applies the row events of the binlog to the Delta tables: reads the binlog as a replica does (mysql_async's
//! binlog stream, checksums verified), gathers whole transactions per table, commits them in micro-batches,
//! each commit carrying the binlog position after the transaction as the table's cursor.
//!
//! Reading starts at the oldest cursor of the captured tables; a transaction is applied to a table only if it
//! began after that table's cursor, so a table copied later than another (or resynced) is not given changes
//! its snapshot already holds.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use connector_core::change::{ChangeBatch, Operation};
use connector_core::cursor::TableCursor;
use connector_core::delta::{ApplyOutcome, DeltaSink, DeltaTableWriter, apply_each};
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::gtid_state::GtidState;
use connector_core::pipeline::{Shutdown, SyncMode, commit_check_period};
use connector_core::position::{BinlogPosition, SourcePosition};
use connector_core::schema::{TableId, TableSchema};
use mysql_async::binlog::events::{BinlogEventHeader, Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Sid, Value};
use tracing::{debug, info, warn};

use crate::catalog::{describe_table, source_error};
use crate::changes::{PendingChanges, TableShape};
use crate::codec::Origin;
use crate::config::{HEARTBEAT_INTERVAL, MySqlConfig};
use crate::connection;
use crate::ddl::{TableStatement, classify};
use crate::earlier_rows::fill_earlier_rows;
use crate::event_reader::next_event;
use crate::gtid::{MARIADB_GTID_EVENT, MARIADB_GTID_LIST_EVENT, decode_gtid_event, decode_gtid_list};
use crate::json_text::mysql_json_text;
use crate::mapped_tables::MappedTables;
use crate::read_buffer::grow_read_buffer;
use crate::setup::{Flavor, ServerInfo, mariadb_gtid_at};
use crate::snapshot::copy_table;
use crate::table_map::{Collations, shape_of};

/// The server error when a replica asks for a binlog file or position the server no longer has.
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;

/// A table being streamed.
#[derive(Debug)]
pub struct StreamedTable {
    pub writer: DeltaTableWriter,
    pub pending: PendingChanges,
    /// The key configured for the table, replacing the table map's (tables without a primary key).
    pub key_override: Option<Vec<String>>,
    /// Rows copied while streaming (a table renamed into a captured database).
    pub snapshot_rows: u64,
    pub changes_applied: u64,
    /// The table map the pending shape was last found equal to: every transaction repeats the map, and an
    /// identical one needs no new look (reading a map's shape is a tenth of the reader's time otherwise).
    checked_map: Option<TableMapEvent<'static>>,
}

impl StreamedTable {
    pub fn new(writer: DeltaTableWriter, shape: TableShape, key_override: Option<Vec<String>>) -> Self {
        StreamedTable {
            writer,
            pending: PendingChanges::new(shape),
            key_override,
            snapshot_rows: 0,
            changes_applied: 0,
            checked_map: None,
        }
    }

    fn cursor(&self) -> Option<&BinlogPosition> {
        match self.writer.cursor().map(|cursor| &cursor.position) {
            Some(SourcePosition::Binlog(position)) => Some(position),
            _ => None,
        }
    }
}

pub struct BinlogReader<'a> {
    config: &'a MySqlConfig,
    server: &'a ServerInfo,
    tables: &'a mut Vec<StreamedTable>,
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
    touched: Vec<usize>,
    /// Every transaction up to here was received whole.
    received: BinlogPosition,
    /// The GTID state up to the event being read (empty when the server writes no GTIDs).
    gtids: GtidState,
    /// `gtids` as positions carry it, written once per change rather than for every position.
    gtid_text: Option<String>,
    /// Whether GTID events update `gtids` (see `new`).
    track_gtids: bool,
    oldest_pending: Option<Instant>,
}

impl std::fmt::Debug for BinlogReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogReader").field("received", &self.received).finish_non_exhaustive()
    }
}

/// Orders two binlog positions: by file and offset on one server, by GTID state across servers. Positions that
/// cannot be ordered (diverged GTID histories, file names without a sequence number) stop the sync with the
/// reason: guessing an order would skip or repeat transactions.
pub fn compare(left: &BinlogPosition, right: &BinlogPosition) -> Result<Ordering> {
    left.try_cmp(right).map_err(|reason| incomparable_positions_error(left, right, reason))
}

/// The earliest of `positions` by [`compare`] (`None` when there are none); positions that cannot be ordered
/// stop, as there.
pub fn earliest<'p>(positions: impl IntoIterator<Item = &'p BinlogPosition>) -> Result<Option<&'p BinlogPosition>> {
    let mut earliest: Option<&BinlogPosition> = None;
    for position in positions {
        let earlier = match earliest {
            Some(kept) => compare(position, kept)?.is_lt(),
            None => true,
        };
        if earlier {
            earliest = Some(position);
        }
    }
    Ok(earliest)
}

fn incomparable_positions_error(left: &BinlogPosition, right: &BinlogPosition, reason: &str) -> Error {
    let describe = |position: &BinlogPosition| {
        format!(
            "{}:{} of server {} (GTID state {})",
            position.file,
            position.offset,
            position.server.as_deref().unwrap_or("-"),
            position.gtid.as_deref().unwrap_or("-")
        )
    };
    Error::state(format!(
        "cannot tell which of binlog positions {} and {} comes first: {reason}. Applying changes by a guessed order \
         would skip or repeat transactions, so the sync stops. Point the pipeline at a server whose GTID history \
         includes the tables' (without errant transactions), or copy the tables anew from this one with \
         `connector resync`",
        describe(left),
        describe(right)
    ))
}

impl<'a> BinlogReader<'a> {
    pub fn new(
        config: &'a MySqlConfig,
        server: &'a ServerInfo,
        tables: &'a mut Vec<StreamedTable>,
        sink: &'a DeltaSink,
        collations: Collations,
        start: BinlogPosition,
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
            tables,
            sink,
            created: HashSet::new(),
            collations,
            mapped: MappedTables::default(),
            file: start.file.clone(),
            transaction_start: None,
            explicit_transaction: false,
            touched: Vec::new(),
            gtid_text: (!gtids.is_empty()).then(|| gtids.to_string()),
            gtids,
            track_gtids,
            received: start,
            oldest_pending: None,
        }
    }

    /// Reads the binlog until shut down (continuous) or until `target` (the server's position when the sync
    /// started) is reached and committed (once).
    pub async fn run(mut self, mode: SyncMode, target: &BinlogPosition, mut shutdown: Shutdown) -> Result<()> {
        self.check_start_is_readable()?;
        if mode == SyncMode::Once && compare(&self.received, target)?.is_ge() {
            self.advance_idle_tables().await?;
            return Ok(());
        }
        let mut stream = self.open_stream().await?;
        let mut tick = tokio::time::interval(commit_check_period(self.config.commit_interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_idle_advance = Instant::now();
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                _ = tick.tick() => {
                    if self.transaction_start.is_none() && self.due_by_time() {
                        self.commit().await?;
                    }
                    if last_idle_advance.elapsed() >= IDLE_ADVANCE_INTERVAL && self.transaction_start.is_none() {
                        last_idle_advance = Instant::now();
                        self.advance_idle_tables().await?;
                    }
                    continue;
                }
                event = next_event(&mut stream) => event,
            };
            let event = match event.map_err(|malformed| malformed.into_error(&self.received))? {
                Some(Ok(event)) => event,
                Some(Err(cause)) => return Err(self.stream_error(cause)),
                None => {
                    return Err(Error::new(
                        ErrorKind::Source,
                        Retry::WithBackoff,
                        "the server ended the binlog stream",
                    ));
                }
            };
            self.handle(&stream, &event).await?;
            let between = self.transaction_start.is_none();
            let reached = mode == SyncMode::Once && between && compare(&self.received, target)?.is_ge();
            if between && (self.due_by_size() || reached) {
                self.commit().await?;
            } else if !between && self.partial_due_by_size() {
                self.commit_with_open_parts().await?;
            }
            if reached {
                break;
            }
        }
        if self.transaction_start.is_none() {
            self.commit().await?;
            self.advance_idle_tables().await?;
        }
        let _ = stream.close().await;
        Ok(())
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
                self.config.pipeline,
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
        let heartbeat = format!("SET @master_heartbeat_period = {}", HEARTBEAT_INTERVAL.as_nanos());
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
                return foreign_position_error(&self.received, &self.server.identity, &self.config.pipeline, &tables)
                    .caused_by(cause);
            }
            return purged_binlog_error(&self.received, &self.config.pipeline, &tables, &server.message)
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

    async fn handle(&mut self, stream: &BinlogStream, event: &Event) -> Result<()> {
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
            Some(EventData::RowsEvent(rows)) => self.on_rows(stream, &rows)?,
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
        for index in self.touched.drain(..) {
            self.tables[index].pending.close_transaction(&position, commit_time);
        }
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
        self.tables[index].pending.push_truncate()?;
        self.touch(index);
        Ok(())
    }

    /// A table renamed into a captured database brings rows the binlog never showed: it is copied now, under a
    /// snapshot taken at the current binlog position (at or after the rename), and changes the binlog shows
    /// before that position are skipped for it, as for any table copied later than the stream's start.
    async fn copy_renamed(&mut self, id: &TableId) -> Result<()> {
        // Changes read so far land first: the copy may replace a table that was captured before.
        self.commit().await?;
        let options = self.config.options_for(id);
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
        info!(table = %id, "a table was renamed into a captured database; copying it");
        let shape = TableShape { schema: source.schema.clone(), types: source.types.clone() };
        let index = match self.captured(id) {
            Some(index) => {
                self.tables[index].pending = PendingChanges::new(shape);
                self.tables[index].checked_map = None;
                index
            }
            None => {
                let writer = self.sink.open_table(&source.schema, options.clone()).await?;
                self.tables.push(StreamedTable::new(writer, shape, options.key.clone()));
                self.tables.len() - 1
            }
        };
        let table = &mut self.tables[index];
        if let Some(cursor) = table.writer.cursor() {
            let restart = TableCursor::restarting(cursor.position.clone());
            table.writer.restart_snapshot(restart).await?;
        }
        table.snapshot_rows += copy_table(self.config, self.server, &source, &mut table.writer, None).await?;
        Ok(())
    }

    /// Opens the Delta table of a table created while streaming, shaped by its first table map; returns its index.
    async fn capture_created(&mut self, map: &TableMapEvent<'_>, id: &TableId) -> Result<usize> {
        let options = self.config.options_for(id);
        let shape = shape_of(map, &self.collations, options.key.as_deref())?;
        let key_override = options.key.clone();
        let writer = self.sink.open_table(&shape.schema, options).await?;
        self.tables.push(StreamedTable::new(writer, shape, key_override));
        Ok(self.tables.len() - 1)
    }

    fn captured(&self, id: &TableId) -> Option<usize> {
        self.tables.iter().position(|table| table.writer.table_id() == id)
    }

    /// Whether the open transaction began after the table's cursor (else the table already holds it).
    fn begins_after_cursor(&self, index: usize) -> Result<bool> {
        Ok(match (self.tables[index].cursor(), &self.transaction_start) {
            (Some(cursor), Some(start)) => compare(start, cursor)?.is_ge(),
            (None, _) => true,
            (Some(_), None) => false,
        })
    }

    async fn on_table_map(&mut self, map: &TableMapEvent<'_>) -> Result<()> {
        // The map repeated by the table's every transaction: nothing to look up or check again.
        if let Some(Some(index)) = self.mapped.get(map.table_id())
            && self.tables[index].checked_map.as_ref() == Some(map)
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
        let table = &self.tables[index];
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
                        self.config.pipeline
                    ),
                ));
            }
            info!(table = %id, columns = ?shape.schema.columns.iter().map(|column| &column.name).collect::<Vec<_>>(), "table shape changed");
            let mut conn =
                connection::connect(self.config, &format!("cannot connect to read the columns of {id}")).await?;
            let filled = fill_earlier_rows(&mut conn, &id, &mut shape.schema.columns).await;
            let _ = conn.disconnect().await;
            filled?;
            self.tables[index].pending.reshape(shape)?;
        }
        self.tables[index].checked_map = Some(map.clone().into_owned());
        Ok(())
    }

    fn on_rows(&mut self, stream: &BinlogStream, rows: &RowsEventData<'_>) -> Result<()> {
        let Some(Some(index)) = self.mapped.get(rows.table_id()) else { return Ok(()) };
        if !self.begins_after_cursor(index)? {
            return Ok(());
        }
        let map = stream
            .get_tme(rows.table_id())
            .ok_or_else(|| Error::state(format!("a rows event in {} has no table map", self.file)))?;
        let id = self.tables[index].writer.table_id().clone();
        push_rows(&mut self.tables[index].pending, rows, map, &id)?;
        self.touch(index);
        Ok(())
    }

    fn touch(&mut self, index: usize) {
        if !self.touched.contains(&index) {
            self.touched.push(index);
        }
        self.oldest_pending.get_or_insert_with(Instant::now);
    }

    fn due_by_time(&self) -> bool {
        self.oldest_pending.is_some_and(|since| since.elapsed() >= self.config.commit_interval)
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

    /// Commits every closed transaction to Delta, the tables merging side by side (`apply_each`).
    async fn commit(&mut self) -> Result<()> {
        let mut batches = Vec::new();
        for table in self.tables.iter_mut() {
            if let Some((schema, batch)) = table.pending.take_batch()? {
                batches.push((table, schema, batch));
            }
        }
        apply_each(batches, |(table, schema, batch)| async move { apply(table, &schema, &batch, false).await }).await?;
        self.oldest_pending = None;
        Ok(())
    }

    /// Mid-transaction, with the memory budget used up: commits every closed transaction, and the open one's
    /// rows so far as a part (`DeltaTableWriter::apply_partial_transaction`: the cursor stays before the
    /// transaction, so a crash replays it whole and the merge makes the replay harmless). Tables whose mode
    /// needs whole transactions keep buffering.
    async fn commit_with_open_parts(&mut self) -> Result<()> {
        let Some(start) = self.transaction_start.clone() else { return Ok(()) };
        for table in self.tables.iter_mut() {
            let (closed, open_part) = if table.writer.accepts_partial_transactions() {
                table.pending.take_with_open_part(&start)?
            } else if !table.pending.has_open_rows() {
                (table.pending.take_batch()?, None)
            } else {
                continue;
            };
            if let Some((schema, batch)) = closed {
                apply(table, &schema, &batch, false).await?;
            }
            if let Some((schema, batch)) = open_part {
                info!(table = %schema.id, rows = batch.len(), "applying part of a large transaction");
                apply(table, &schema, &batch, true).await?;
            }
        }
        self.oldest_pending = None;
        Ok(())
    }

    /// Moves the cursor of tables without changes up to the received position, so the next run does not read
    /// their part of the binlog again (and does not need it kept). A table holding anything not yet committed,
    /// even closed transactions waiting for the commit interval, keeps its cursor: moving it past them would make
    /// their commit look already done and drop them.
    async fn advance_idle_tables(&mut self) -> Result<()> {
        let position = SourcePosition::Binlog(self.received.clone());
        for table in self.tables.iter_mut() {
            if table.pending.is_empty() {
                table.writer.advance_cursor(&position).await?;
            }
        }
        Ok(())
    }
}

/// The server no longer has the binlog at `position`: what was lost, and how to recover.
fn purged_binlog_error(position: &BinlogPosition, pipeline: &str, tables: &str, server_message: &str) -> Error {
    Error::state(format!(
        "the server no longer has binlog {} at {} (purged while the connector was away?): the changes since are lost \
         to the connector. Copy the tables anew with `connector resync --pipeline {pipeline} --table {}`, then sync \
         again; keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days) so it does not happen again. The \
         server said: {server_message}",
        position.file, position.offset, tables
    ))
}

/// Whether the server ended the stream because another replica registered with the same server id: MySQL
/// keeps one binlog stream per id (the newest) and ends the older with error 1236.
fn duplicate_server_id(server_message: &str) -> bool {
    server_message.contains("same server_uuid/server_id")
}

fn duplicate_server_id_error(server_id: u32, server_message: &str) -> Error {
    Error::config(format!(
        "another replica or pipeline connected to the server with server id {server_id}, the id this pipeline reads \
         the binlog with, and the server ended this pipeline's stream (a server keeps one stream per id). Give each \
         pipeline and replica its own id: set `--server-id` (`server_id` in pipelines.toml) to one no other uses. \
         The server said: {server_message}"
    ))
}

/// A server of another topology, or one behind the tables, was asked for the binlog after their GTID position.
fn foreign_position_error(position: &BinlogPosition, server: &str, pipeline: &str, tables: &str) -> Error {
    Error::state(format!(
        "server {server} cannot serve the binlog after GTID position {}, which the tables reached on server {}: it \
         is not a replica of that server, has not received those transactions yet, or no longer has the binlog \
         after them. Point the pipeline at a server of that topology which has them, or copy the tables anew from \
         this one with `connector resync --pipeline {pipeline} --table {}`",
        position.gtid.as_deref().unwrap_or("-"),
        position.server.as_deref().unwrap_or("-"),
        tables
    ))
}

/// Applies whole transactions (or a part of the open one) and counts them for the report.
async fn apply(table: &mut StreamedTable, schema: &TableSchema, batch: &ChangeBatch, part: bool) -> Result<()> {
    let count = batch.len() as u64;
    let outcome = if part {
        table.writer.apply_partial_transaction(schema, batch).await?
    } else {
        table.writer.apply_changes(schema, batch).await?
    };
    debug!(table = %schema.id, rows = count, ?outcome, "committed changes");
    if !matches!(outcome, ApplyOutcome::AlreadyCommitted) {
        table.changes_applied += count;
    }
    Ok(())
}

/// How often continuous mode moves idle tables' cursors forward.
const IDLE_ADVANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Decodes a rows event's row images into `pending`, the changes of table `id`, whose table map is `map`:
/// inserts take the after image, deletes the before image, updates the after image, preceded by a delete of the
/// before image when the update changed the key.
///
/// The one decoder of the row images a server sends, public so that the fuzz targets (`fuzz/`) feed it bytes
/// no server would.
pub fn push_rows(
    pending: &mut PendingChanges,
    rows: &RowsEventData<'_>,
    map: &TableMapEvent<'_>,
    id: &TableId,
) -> Result<()> {
    let key_columns: Vec<usize> = {
        let schema = &pending.shape().schema;
        schema.primary_key.iter().filter_map(|key| schema.column_index(key)).collect()
    };
    let operation = match rows {
        RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => Operation::Insert,
        RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => Operation::Update,
        RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Operation::Delete,
        RowsEventData::PartialUpdateRowsEvent(_) => {
            return Err(Error::config(format!(
                "{id} is written with partial JSON updates (binlog_row_value_options=PARTIAL_JSON), which do not \
                 carry whole rows: set binlog_row_value_options='' on the server, then resync the table"
            )));
        }
    };
    for row in rows.rows(map) {
        let (before, after) =
            row.map_err(|cause| Error::state(format!("cannot decode a row of {id}")).caused_by(cause).for_table(id))?;
        let before = before.map(|row| row_values(row, id)).transpose()?;
        let after = after.map(|row| row_values(row, id)).transpose()?;
        match (operation, before, after) {
            (Operation::Delete, Some(before), _) => {
                pending.push(Operation::Delete, &as_refs(&before), Origin::Binlog)?
            }
            (Operation::Update, Some(before), Some(after)) => {
                // A changed key: the row under the old key is gone.
                if key_columns.iter().any(|&column| before.get(column) != after.get(column)) {
                    pending.push(Operation::Delete, &as_refs(&before), Origin::Binlog)?;
                }
                pending.push(Operation::Update, &as_refs(&after), Origin::Binlog)?;
            }
            (_, _, Some(after)) => pending.push(Operation::Insert, &as_refs(&after), Origin::Binlog)?,
            _ => return Err(Error::state(format!("a rows event of {id} lacks a row image"))),
        }
    }
    Ok(())
}

/// A row image's values; MySQL's binary JSON becomes its text.
fn row_values(mut row: BinlogRow, table: &TableId) -> Result<Vec<Option<Value>>> {
    (0..row.len())
        .map(|index| match row.take(index) {
            None | Some(BinlogValue::Value(Value::NULL)) => Ok(None),
            Some(BinlogValue::Value(value)) => Ok(Some(value)),
            Some(BinlogValue::Jsonb(json)) => {
                let text = mysql_json_text(json).map_err(|cause| {
                    Error::state(format!("cannot decode a JSON value of {table}")).caused_by(cause).for_table(table)
                })?;
                Ok(Some(Value::Bytes(text.into_bytes())))
            }
            Some(BinlogValue::JsonDiff(_)) => Err(Error::config(format!(
                "{table} carries partial JSON updates: set binlog_row_value_options='' on the server, then resync it"
            ))),
        })
        .collect()
}

fn as_refs(values: &[Option<Value>]) -> Vec<Option<&Value>> {
    values.iter().map(Option::as_ref).collect()
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
    fn a_second_reader_with_the_same_server_id_is_named_with_the_setting_to_change() {
        let message = "A replica with the same server_uuid/server_id as this replica has connected to the source; \
                       the first event 'mysql-bin.000001' at 4";
        assert!(duplicate_server_id(message));
        assert!(!duplicate_server_id("Could not find first log file name in binary log index file"));
        let error = duplicate_server_id_error(1_234_567_890, message);
        assert_eq!(error.retry(), Retry::No);
        let text = error.to_string();
        assert!(text.contains("server id 1234567890") && text.contains("--server-id"), "{text}");
    }

    #[test]
    fn a_purged_binlog_names_the_resync_command() {
        let position = BinlogPosition { file: "mariadb-bin.000003".into(), offset: 4, gtid: None, server: None };
        let error = purged_binlog_error(
            &position,
            "shop",
            "shop.orders,shop.items",
            "Could not find first log file name in binary log index file",
        );
        let text = error.to_string();
        assert!(text.contains("connector resync --pipeline shop --table shop.orders,shop.items"), "{text}");
        assert!(text.contains("mariadb-bin.000003 at 4"), "{text}");
        assert!(text.contains("Could not find first log file"), "{text}");
    }

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
