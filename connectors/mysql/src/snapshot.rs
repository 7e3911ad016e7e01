//! A table's initial copy: consistent snapshots whose binlog positions are known exactly, rows streamed (binary
//! protocol) into Parquet and committed once with the earliest position as the table's cursor. The binlog then
//! applies to this table only the transactions committed after that position.
//!
//! MariaDB reports the position of a `START TRANSACTION WITH CONSISTENT SNAPSHOT` itself
//! (`binlog_snapshot_file`/`binlog_snapshot_position`), so no lock is taken. MySQL has no such status: the table is
//! locked against writers (`LOCK TABLES … READ`) for the few milliseconds in which its readers start their
//! snapshots and the position is read.
//!
//! A large table with a single integer key is read in key ranges over several connections, each with a
//! snapshot of its own. On MySQL they all start under the one lock, at one position. MariaDB's start one after
//! another without a lock, so they may sit at different binlog positions. The table's cursor is the earliest of
//! them: the binlog then replays, from there, changes that some ranges already hold. Row events carry whole
//! rows and are applied by key (an insert of a key already present replaces it), so replaying them again
//! leaves each row as the source had it by the latest snapshot; the table is exact once the binlog has been
//! read that far, which the same sync does before it ends. Tables without a key are read whole on one
//! connection, as their rows could not be matched.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use connector_core::arrow::array::{ArrayRef, RecordBatch};
use connector_core::change_buffer::ColumnRows;
use connector_core::copy_progress::{Copied, CopyProgress};
use connector_core::copy_ranges::split_range;
use connector_core::cursor::TableCursor;
use connector_core::delta::DeltaTableWriter;
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::position::{BinlogPosition, SourcePosition};
use connector_core::schema::TableId;
use indicatif::MultiProgress;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::binlog_order::earliest;
use crate::catalog::{SourceTable, qualified, quote, source_error};
use crate::codec::{ColumnBuilder, Origin};
use crate::config::MySqlConfig;
use crate::connection;
use crate::read_buffer::grow_read_buffer;
use crate::setup::{Flavor, ServerInfo, binlog_end, current_position, global};
use crate::types::MySqlType;

/// Rows per Arrow batch handed to the Parquet writer.
pub(crate) const ROWS_PER_BATCH: usize = 16 * 1024;
/// Ranges a table is split into at most.
const MAX_RANGES: u64 = 64;
/// Connections reading one table's ranges at once.
const PARALLEL_RANGES: usize = 4;
/// Seconds a MySQL snapshot waits for open transactions that wrote its table.
const LOCK_WAIT_SECONDS: u32 = 10;

/// What range readers hand the writer: a batch of rows, the reader (the Parquet part) it came from, and the
/// bytes the rows took on the wire.
type Decoded = Result<(usize, RecordBatch, u64)>;

/// Copies `table` into its Delta table in one commit that marks the snapshot complete, at the earliest of the
/// readers' snapshot positions. Returns the rows copied and the bytes they took on the wire.
pub async fn copy_table(
    config: &MySqlConfig,
    server: &ServerInfo,
    table: &SourceTable,
    writer: &mut DeltaTableWriter,
    progress: Option<&MultiProgress>,
) -> Result<Copied> {
    let id = &table.schema.id;
    let ranges = key_ranges(config, table).await?;
    // Every reader starts its snapshot before any row is read, so the earliest position is known up front.
    let mut conns = Vec::new();
    for _ in 0..ranges.len().min(PARALLEL_RANGES) {
        let mut conn = connection::connect(config, &format!("cannot connect to copy {id}")).await?;
        grow_read_buffer(&mut conn).await?;
        conns.push(conn);
    }
    let positions = start_snapshots(config, &mut conns, server, id).await?;
    for position in &positions {
        info!(table = %id, file = %position.file, offset = position.offset, "copying under a consistent snapshot");
    }
    let readers: Vec<RangeReader> =
        conns.into_iter().enumerate().map(|(part, conn)| RangeReader { conn, part, table: table.clone() }).collect();
    let position = earliest(&positions)?.cloned().ok_or_else(|| Error::state("no snapshot was started"))?;
    if ranges.len() > 1 {
        info!(table = %id, ranges = ranges.len(), connections = readers.len(), "copying in ranges");
    }

    let queue = Arc::new(Mutex::new(ranges.into_iter().collect::<VecDeque<_>>()));
    let (sender, mut receiver) = mpsc::channel::<Decoded>(2 * readers.len());
    let mut reading = tokio::task::JoinSet::new();
    for reader in readers {
        let (queue, sender) = (queue.clone(), sender.clone());
        reading.spawn(async move {
            if let Err(error) = reader.run(&queue, &sender).await {
                let _ = sender.send(Err(error)).await;
            }
        });
    }
    drop(sender);

    let taken_at = Utc::now();
    let source_position = SourcePosition::Binlog(position);
    let mut snapshot_writer = writer.snapshot_writer(&table.schema, &source_position, taken_at).await?;
    let mut shown = CopyProgress::start(progress, id, table.estimated_rows);
    while let Some(decoded) = receiver.recv().await {
        let (part, batch, bytes) = decoded?;
        snapshot_writer.write_part(part, &batch).await?;
        shown.advance(batch.num_rows() as u64, bytes);
    }
    while let Some(joined) = reading.join_next().await {
        joined.map_err(|panic| Error::state(format!("copying {id} ended abnormally: {panic}")))?;
    }
    let rows = shown.rows();
    snapshot_writer.commit(TableCursor::copied(source_position, rows, taken_at)).await?;
    Ok(shown.committed())
}

/// The `WHERE` conditions splitting a large table with a single integer key into ranges of about
/// `copy_range_rows` rows (by InnoDB's estimate), over the key's current minimum and maximum; one `None` (the
/// whole table) for any other table.
async fn key_ranges(config: &MySqlConfig, table: &SourceTable) -> Result<Vec<Option<String>>> {
    let whole = vec![None];
    let ranges = table.estimated_rows.div_ceil(config.capture.copy_range_rows).min(MAX_RANGES);
    let integer_key = match table.schema.primary_key.as_slice() {
        [key] => table
            .schema
            .column_index(key)
            .filter(|&index| matches!(table.types[index], MySqlType::Integer { .. }))
            .map(|_| quote(key)),
        _ => None,
    };
    let Some(key) = integer_key.filter(|_| ranges >= 2) else { return Ok(whole) };
    let id = &table.schema.id;
    let mut conn = connection::connect(config, &format!("cannot connect to copy {id}")).await?;
    // As text: an unsigned BIGINT key may not fit a signed integer.
    let bounds: Option<(Option<String>, Option<String>)> = conn
        .query_first(format!("SELECT CAST(MIN({key}) AS CHAR), CAST(MAX({key}) AS CHAR) FROM {}", qualified(id)))
        .await
        .map_err(|cause| source_error(format!("cannot read the key range of {id}"), cause))?;
    let _ = conn.disconnect().await;
    let parse = |bound: Option<String>| bound.and_then(|text| text.parse::<i128>().ok());
    let Some((Some(low), Some(high))) = bounds.map(|(low, high)| (parse(low), parse(high))) else { return Ok(whole) };
    Ok(split_range(
        low,
        high - low + 1,
        i128::from(ranges),
        |bound| format!("{key} >= {bound}"),
        |bound| format!("{key} < {bound}"),
    ))
}

/// One connection inside its own snapshot, reading ranges from a shared queue until none is left.
struct RangeReader {
    conn: Conn,
    /// The Parquet part its rows go to: one reader's ranges are read in key order, so its files stay
    /// clustered by key.
    part: usize,
    table: SourceTable,
}

impl RangeReader {
    async fn run(mut self, queue: &Mutex<VecDeque<Option<String>>>, sender: &mpsc::Sender<Decoded>) -> Result<()> {
        let id = &self.table.schema.id;
        let columns: Vec<String> = self.table.schema.columns.iter().map(|column| quote(&column.name)).collect();
        let mut builders: Vec<ColumnBuilder> =
            self.table.types.iter().map(|mysql_type| ColumnBuilder::new(mysql_type, ROWS_PER_BATCH)).collect();
        loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
            let Some(filter) = next else { break };
            let filter = filter.map(|filter| format!(" WHERE {filter}")).unwrap_or_default();
            let select = format!("SELECT {} FROM {}{filter}", columns.join(", "), qualified(id));
            let mut result = self
                .conn
                .exec_iter(select.as_str(), ())
                .await
                .map_err(|cause| source_error(format!("cannot read {id}"), cause))?;
            let (mut pending, mut bytes) = (0, 0);
            while let Some(row) =
                result.next().await.map_err(|cause| source_error(format!("reading {id} failed"), cause))?
            {
                bytes += append_row(&self.table, &mut builders, &row)?;
                pending += 1;
                if pending == ROWS_PER_BATCH {
                    pending = 0;
                    let batch = finish_batch(&self.table, &mut builders)?;
                    if sender.send(Ok((self.part, batch, std::mem::take(&mut bytes)))).await.is_err() {
                        return Ok(());
                    }
                }
            }
            drop(result);
            if pending > 0 {
                let batch = finish_batch(&self.table, &mut builders)?;
                if sender.send(Ok((self.part, batch, bytes))).await.is_err() {
                    return Ok(());
                }
            }
        }
        if let Err(cause) = self.conn.query_drop("COMMIT").await {
            warn!(table = %id, error = %cause, "closing the snapshot transaction failed");
        }
        let _ = self.conn.disconnect().await;
        Ok(())
    }
}

/// Starts a consistent-snapshot transaction on each of `conns` and returns the binlog positions they are
/// consistent with for `table`. MariaDB says where each snapshot is. MySQL does not: a read lock on `table` holds
/// its writers while every snapshot starts and the position is read, so all share that position for this table.
///
/// Only this table is locked. A global `FLUSH TABLES WITH READ LOCK` would be consistent for every table, but
/// it waits for every running statement, such as another table's copy or a long report, and stalls every write
/// on the server while it waits. `LOCK TABLES … READ` waits only for transactions that wrote this table, and
/// transactions writing other tables may commit meanwhile: they move the position without touching this table.
pub(crate) async fn start_snapshots(
    config: &MySqlConfig,
    conns: &mut [Conn],
    server: &ServerInfo,
    table: &TableId,
) -> Result<Vec<BinlogPosition>> {
    let begin = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";
    for conn in conns.iter_mut() {
        conn.query_drop(begin).await.map_err(|cause| source_error("cannot prepare the snapshot transaction", cause))?;
    }
    match server.flavor {
        Flavor::MariaDb => {
            let mut positions = Vec::new();
            for conn in conns.iter_mut() {
                positions.push(start_mariadb_snapshot(conn, server).await?);
            }
            Ok(positions)
        }
        Flavor::MySql => {
            let mut lock = connection::connect(config, "cannot connect to take the snapshot's position").await?;
            lock_for_snapshot(&mut lock, table).await?;
            let mut started = Ok(());
            for conn in conns.iter_mut() {
                started = conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await;
                if started.is_err() {
                    break;
                }
            }
            let position = current_position(&mut lock, server).await;
            let unlocked = lock.query_drop("UNLOCK TABLES").await;
            let _ = lock.disconnect().await;
            started.map_err(|cause| source_error("cannot start a consistent snapshot", cause))?;
            unlocked.map_err(|cause| source_error("cannot release the read lock", cause))?;
            let position = position?;
            Ok(vec![position; conns.len()])
        }
    }
}

/// Takes `LOCK TABLES table READ` on `lock`, waiting at most [`LOCK_WAIT_SECONDS`] for transactions that wrote
/// the table: a pending read lock holds the table's new writers too, so it must not wait long.
async fn lock_for_snapshot(lock: &mut Conn, table: &TableId) -> Result<()> {
    lock.query_drop(format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}"))
        .await
        .map_err(|cause| source_error("cannot prepare the snapshot's table lock", cause))?;
    const LOCK_WAIT_TIMEOUT: u16 = 1205;
    match lock.query_drop(format!("LOCK TABLES {} READ", qualified(table))).await {
        Ok(()) => Ok(()),
        Err(mysql_async::Error::Server(server)) if server.code == LOCK_WAIT_TIMEOUT => {
            let message = format!(
                "cannot start the snapshot of {table}: a transaction that wrote it stayed open for over \
                 {LOCK_WAIT_SECONDS} s, and writes to the table must pause for a moment while its snapshot \
                 starts; end that transaction (see `SHOW PROCESSLIST`) or run the sync again"
            );
            Err(Error::new(ErrorKind::Source, Retry::WithBackoff, message)
                .caused_by(mysql_async::Error::Server(server)))
        }
        Err(cause) => Err(source_error(
            format!(
                "cannot lock {table} while its snapshot starts (the user needs LOCK TABLES on its database: \
                 `GRANT LOCK TABLES ON {}.* TO <user>`)",
                quote(&table.namespace)
            ),
            cause,
        )),
    }
}

/// Starts a MariaDB consistent snapshot on `conn`, which reports its own binlog position: no lock is needed.
async fn start_mariadb_snapshot(conn: &mut Conn, server: &ServerInfo) -> Result<BinlogPosition> {
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|cause| source_error("cannot start a consistent snapshot", cause))?;
    let status: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(|cause| source_error("cannot read the snapshot's binlog position", cause))?;
    let value = |name: &str| status.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    match (value("binlog_snapshot_file"), value("binlog_snapshot_position")) {
        (Some(file), Some(offset)) if !file.is_empty() => {
            let offset = offset
                .parse()
                .map_err(|_| Error::state(format!("binlog_snapshot_position `{offset}` is not a number")))?;
            let gtid = gtid_if_unchanged(conn, &file, offset).await?;
            Ok(BinlogPosition { file, offset, gtid, server: Some(server.identity.clone()) })
        }
        _ => Err(Error::config(
            "the server reports no binlog_snapshot_file: the binary log is off (set log_bin in my.cnf)",
        )),
    }
}

/// The GTID state at a MariaDB snapshot's binlog position, when it can be had without reading the binlog: the
/// server's current state is it if the binlog has not moved since the snapshot began (checked after reading
/// the state, which a commit updates before it releases the binlog). Otherwise `None`, and the binlog reader
/// asks the server for the state where it starts (`BINLOG_GTID_POS`, a read of the file up to there).
async fn gtid_if_unchanged(conn: &mut Conn, file: &str, offset: u64) -> Result<Option<String>> {
    let state = global(conn, "gtid_binlog_pos").await?;
    let (end_file, end_offset, _) = binlog_end(conn).await?;
    Ok(state.filter(|state| !state.is_empty() && end_file == file && end_offset == offset))
}

/// Appends a row of a copy to the column builders; returns its size in the binary result protocol, the bytes
/// it took on the wire (its values, its null bitmap and the packet's header).
pub(crate) fn append_row(table: &SourceTable, builders: &mut [ColumnBuilder], row: &Row) -> Result<u64> {
    // A row packet: 4 bytes of header, a 0x00 marker, then a null bitmap of the columns offset by 2 bits.
    let mut bytes = 5 + (builders.len() as u64 + 9) / 8;
    for (index, builder) in builders.iter_mut().enumerate() {
        let value = row.as_ref(index);
        bytes += value.map_or(0, Value::bin_len);
        builder.append(value, Origin::Snapshot).map_err(|cause| {
            Error::state(format!("cannot decode column `{}` of {}", table.schema.columns[index].name, table.schema.id))
                .caused_by(cause)
                .for_table(&table.schema.id)
        })?;
    }
    Ok(bytes)
}

pub(crate) fn finish_batch(table: &SourceTable, builders: &mut [ColumnBuilder]) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(ColumnRows::finish).collect();
    RecordBatch::try_new(table.schema.arrow_schema(), arrays).map_err(|cause| {
        Error::schema(&table.schema.id, format!("rows of {} do not match its schema", table.schema.id)).caused_by(cause)
    })
}
