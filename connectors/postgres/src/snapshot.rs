//! The initial copy of a table: binary COPY under a snapshot exported by a temporary replication slot, so the
//! copy holds exactly the transactions that committed before the slot's consistent point, and the stream
//! applies exactly those after it.

use bytes::{Buf, Bytes, BytesMut};
use chrono::Utc;
use connector_core::arrow::array::RecordBatch;
use connector_core::change_buffer::ColumnRows;
use connector_core::copy_progress::{Copied, CopyProgress};
use connector_core::copy_ranges::split_range;
use connector_core::cursor::TableCursor;
use connector_core::delta::DeltaTableWriter;
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::TableId;
use std::sync::Arc;

use futures::StreamExt;
use indicatif::MultiProgress;
use pgwire_replication::ReplicationClient;
use tokio::sync::Semaphore;
use tokio_postgres::Client;
use tracing::{debug, info, warn};

use crate::catalog::{SourceTable, source_error};
use crate::codec::ColumnBuilder;
use crate::config::PostgresConfig;
use crate::connection::connect;
use crate::setup::{parse_lsn, qualified, quote_identifier};

/// Rows decoded into Arrow before they are handed to the Parquet writer: large enough to amortise the
/// per-batch cost, small enough to keep memory flat.
const ROWS_PER_BATCH: usize = 64 * 1024;
/// Arrow bytes that end a batch early, for wide rows.
const BYTES_PER_BATCH: usize = 32 * 1024 * 1024;
/// Key ranges of one table copied at the same time, each over its own connection.
const PARALLEL_RANGES: usize = 4;
/// Ranges a table is split into at most.
const MAX_RANGES: u64 = 64;

/// A snapshot exported by a temporary slot; it stays valid while this value lives.
pub struct ExportedSnapshot {
    /// Holds the temporary slot and its snapshot: dropping it ends both.
    _session: ReplicationClient,
    pub name: String,
    /// The slot's consistent point: the snapshot holds every transaction that committed at or before it.
    pub position: Lsn,
}

impl std::fmt::Debug for ExportedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedSnapshot").field("name", &self.name).field("position", &self.position).finish()
    }
}

pub(crate) fn replication_error(what: impl Into<String>, cause: pgwire_replication::PgWireError) -> Error {
    let retry = match &cause {
        pgwire_replication::PgWireError::Io(_) => Retry::WithBackoff,
        _ => Retry::No,
    };
    Error::new(ErrorKind::Source, retry, format!("{}: {cause}", what.into()))
}

/// [`replication_error`] for opening a connection, where a TLS failure names the `sslmode` settings to change.
pub(crate) fn replication_connect_error(
    config: &PostgresConfig,
    what: &str,
    cause: pgwire_replication::PgWireError,
) -> Error {
    match cause {
        pgwire_replication::PgWireError::Tls(detail) => config.tls.handshake_failed(what, detail),
        other => replication_error(what, other),
    }
}

/// Creates a temporary logical slot that exports its snapshot. The pipeline's own slot must exist first, so
/// its position is at or before this one and no change falls between the copy and the stream.
pub async fn export_snapshot(config: &PostgresConfig) -> Result<ExportedSnapshot> {
    let slot = format!("connector_snapshot_{}_{}", std::process::id(), fastrand::u32(..));
    let settings = config.replication(&slot, 0).await?;
    let mut session = ReplicationClient::connect_gated(settings.into_inner())
        .await
        .map_err(|cause| replication_connect_error(config, "cannot open a replication connection", cause))?;
    let rows = session
        .simple_query(&format!("CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')"))
        .await
        .map_err(|cause| replication_error("cannot create a temporary slot to export a snapshot", cause))?;
    let row = rows.first().ok_or_else(|| Error::state("CREATE_REPLICATION_SLOT returned no row"))?;
    let text = |index: usize| {
        row.get(index)
            .and_then(|value| value.as_ref())
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .ok_or_else(|| Error::state(format!("CREATE_REPLICATION_SLOT returned no column {index}")))
    };
    let position = parse_lsn(&text(1)?)?;
    let name = text(2)?;
    debug!(snapshot = %name, lsn = %position, "exported a snapshot");
    Ok(ExportedSnapshot { _session: session, name, position })
}

/// Copies `table` under `snapshot` into its Delta table in one commit that marks the snapshot complete.
/// A large table with an integer key is copied in key ranges over parallel connections, each range into
/// Parquet files of its own (so files stay clustered by key). Returns the rows copied and the COPY bytes read.
pub async fn copy_table(
    config: &PostgresConfig,
    snapshot: &ExportedSnapshot,
    table: &SourceTable,
    writer: &mut DeltaTableWriter,
    progress: Option<&MultiProgress>,
) -> Result<Copied> {
    let id = &table.schema.id;
    let ranges = key_ranges(config, snapshot, table).await?;
    // Each range decodes on its own task and connection, overlapping Parquet encoding here; the channel holds
    // a couple of batches per range, which bounds memory and makes a slow writer slow the copy down.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<(usize, RecordBatch, u64)>>(2 * ranges.len());
    let permits = Arc::new(Semaphore::new(PARALLEL_RANGES));
    let mut copies = tokio::task::JoinSet::new();
    if ranges.len() > 1 {
        info!(table = %id, ranges = ranges.len(), "copying in ranges");
    }
    for (part, filter) in ranges.into_iter().enumerate() {
        let range =
            RangeCopy { config: config.clone(), snapshot: snapshot.name.clone(), table: table.clone(), filter, part };
        let (sender, permits) = (sender.clone(), permits.clone());
        copies.spawn(async move {
            let _permit = permits.acquire_owned().await;
            if let Err(error) = range.run(&sender).await {
                let _ = sender.send(Err(error)).await;
            }
        });
    }
    drop(sender);

    let position = SourcePosition::Postgres { lsn: snapshot.position };
    let taken_at = Utc::now();
    let mut snapshot_writer = writer.snapshot_writer(&table.schema, &position, taken_at).await?;
    let mut shown = CopyProgress::start(progress, id, table.estimated_rows);
    while let Some(decoded) = receiver.recv().await {
        let (part, batch, copied) = decoded?;
        if batch.num_rows() > 0 {
            snapshot_writer.write_part(part, &batch).await?;
        }
        shown.advance(batch.num_rows() as u64, copied);
    }
    while let Some(joined) = copies.join_next().await {
        joined.map_err(|panic| Error::state(format!("copying {id} ended abnormally: {panic}")))?;
    }
    let rows = shown.rows();
    snapshot_writer.commit(TableCursor::copied(position, rows, taken_at)).await?;
    Ok(shown.committed())
}

/// Opens a connection inside the exported snapshot.
pub(crate) async fn snapshot_session(config: &PostgresConfig, snapshot: &str, table: &TableId) -> Result<Client> {
    let client = connect(config).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .await
        .map_err(|cause| source_error(format!("cannot start the snapshot transaction for {table}"), cause))?;
    Ok(client)
}

/// The `WHERE` conditions splitting a large table into ranges of about `copy_range_rows` rows (by the planner's
/// estimate), over its heap blocks; one `None` for the whole table. (Tables with a single integer key are
/// copied in chunks while streaming instead: `chunk_reader`.)
async fn key_ranges(
    config: &PostgresConfig,
    snapshot: &ExportedSnapshot,
    table: &SourceTable,
) -> Result<Vec<Option<String>>> {
    let whole = vec![None];
    let ranges = table.estimated_rows.div_ceil(config.capture.copy_range_rows.max(1)).min(MAX_RANGES);
    if ranges < 2 {
        return Ok(whole);
    }
    let client = snapshot_session(config, &snapshot.name, &table.schema.id).await?;
    block_ranges(&client, table, ranges).await
}

/// Ranges of heap blocks by `ctid`, which PostgreSQL 14 and later read block range by block range (a TID range
/// scan); older servers would scan the whole table for each range, so they copy it whole. The first range has
/// no lower bound and the last no upper one, so rows in blocks added since the size was read are copied too.
async fn block_ranges(client: &Client, table: &SourceTable, ranges: u64) -> Result<Vec<Option<String>>> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4, \
             (pg_relation_size(($1::oid)::regclass) / current_setting('block_size')::int8)::int8",
            &[&table.oid],
        )
        .await
        .map_err(|cause| source_error(format!("cannot read the size of {}", table.schema.id), cause))?;
    let (version, blocks): (i32, i64) = (row.get(0), row.get(1));
    if version < 140_000 || blocks < 2 {
        return Ok(vec![None]);
    }
    Ok(split_range(
        0,
        i128::from(blocks),
        i128::from(ranges),
        |block| format!("ctid >= '({block},0)'::tid"),
        |block| format!("ctid < '({block},0)'::tid"),
    ))
}

/// One key range (or the whole table) copied over its own connection.
struct RangeCopy {
    config: PostgresConfig,
    snapshot: String,
    table: SourceTable,
    filter: Option<String>,
    part: usize,
}

impl RangeCopy {
    async fn run(&self, sender: &tokio::sync::mpsc::Sender<Result<(usize, RecordBatch, u64)>>) -> Result<()> {
        let table = &self.table;
        let id = &table.schema.id;
        let client = snapshot_session(&self.config, &self.snapshot, &table.schema.id).await?;
        let columns = table.schema.columns.iter().map(|column| quote_identifier(&column.name)).collect::<Vec<_>>();
        let filter = self.filter.as_ref().map(|filter| format!(" WHERE {filter}")).unwrap_or_default();
        let statement =
            format!("COPY (SELECT {} FROM {}{filter}) TO STDOUT (FORMAT binary)", columns.join(", "), qualified(id));
        let stream = client
            .copy_out(statement.as_str())
            .await
            .map_err(|cause| source_error(format!("cannot start copying {id}"), cause))?;
        futures::pin_mut!(stream);
        let mut decoder = CopyDecoder::new(table);
        let mut bytes: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|cause| source_error(format!("copying {id} failed"), cause))?;
            bytes += chunk.len() as u64;
            decoder.feed(chunk).map_err(|error| error.for_table(id))?;
            if decoder.batch_full() {
                let batch = decoder.finish_batch(table)?;
                if sender.send(Ok((self.part, batch, std::mem::take(&mut bytes)))).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !decoder.finished {
            return Err(Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!("the copy of {id} ended without its trailer; the connection was cut"),
            )
            .for_table(id));
        }
        let batch = decoder.finish_batch(table)?;
        let _ = sender.send(Ok((self.part, batch, bytes))).await;
        client.batch_execute("COMMIT").await.map_err(|cause| {
            warn!(table = %id, error = %cause, "closing the snapshot transaction failed");
            source_error("closing the snapshot transaction failed", cause)
        })?;
        Ok(())
    }
}

/// Splits the binary COPY stream into rows and decodes their values into column builders.
pub(crate) struct CopyDecoder {
    builders: Vec<ColumnBuilder>,
    /// Bytes of a row that continues in the next chunk.
    carry: BytesMut,
    header_seen: bool,
    pub(crate) finished: bool,
    rows: usize,
}

/// `PGCOPY\n\377\r\n\0`, then the flags and header-extension length (both 32-bit).
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
const COPY_HEADER_LENGTH: usize = COPY_SIGNATURE.len() + 8;

impl CopyDecoder {
    pub(crate) fn new(table: &SourceTable) -> Self {
        CopyDecoder {
            builders: table.types.iter().map(|pg_type| ColumnBuilder::new(pg_type, ROWS_PER_BATCH)).collect(),
            carry: BytesMut::new(),
            header_seen: false,
            finished: false,
            rows: 0,
        }
    }

    pub(crate) fn batch_full(&self) -> bool {
        self.rows >= ROWS_PER_BATCH
            || (self.rows.is_multiple_of(1024)
                && self.builders.iter().map(ColumnRows::buffered_bytes).sum::<usize>() >= BYTES_PER_BATCH)
    }

    pub(crate) fn feed(&mut self, chunk: Bytes) -> Result<()> {
        if self.carry.is_empty() {
            let consumed = self.decode_rows(&chunk)?;
            self.carry.extend_from_slice(&chunk[consumed..]);
        } else {
            self.carry.extend_from_slice(&chunk);
            let carried = std::mem::take(&mut self.carry);
            let consumed = self.decode_rows(&carried)?;
            self.carry.extend_from_slice(&carried[consumed..]);
        }
        Ok(())
    }

    /// Decodes every complete row in `bytes`; returns how many bytes they used.
    fn decode_rows(&mut self, bytes: &[u8]) -> Result<usize> {
        let mut offset = 0;
        if !self.header_seen {
            if bytes.len() < COPY_HEADER_LENGTH {
                return Ok(0);
            }
            if &bytes[..COPY_SIGNATURE.len()] != COPY_SIGNATURE {
                return Err(Error::state("the binary COPY stream has no PGCOPY signature"));
            }
            let mut rest = &bytes[COPY_SIGNATURE.len() + 4..];
            let extension = rest.get_u32() as usize;
            offset = COPY_HEADER_LENGTH + extension;
            if bytes.len() < offset {
                return Ok(0);
            }
            self.header_seen = true;
        }
        while let Some(end) = complete_row_end(&bytes[offset..]) {
            let row = &bytes[offset..offset + end];
            offset += end;
            let mut cursor = row;
            let fields = cursor.get_i16();
            if fields < 0 {
                self.finished = true;
                return Ok(bytes.len());
            }
            if fields as usize != self.builders.len() {
                return Err(Error::state(format!(
                    "the COPY row has {fields} columns, {} were expected",
                    self.builders.len()
                )));
            }
            for builder in &mut self.builders {
                let length = cursor.get_i32();
                let value = if length < 0 {
                    None
                } else {
                    let (value, rest) = cursor.split_at(length as usize);
                    cursor = rest;
                    Some(value)
                };
                builder.append(value).map_err(|cause| Error::state("cannot decode a copied value").caused_by(cause))?;
            }
            self.rows += 1;
        }
        Ok(offset)
    }

    pub(crate) fn finish_batch(&mut self, table: &SourceTable) -> Result<RecordBatch> {
        let arrays = self.builders.iter_mut().map(ColumnRows::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(table.schema.arrow_schema(), arrays).map_err(|cause| {
            Error::schema(&table.schema.id, format!("decoded rows of {} do not match its schema", table.schema.id))
                .caused_by(cause)
        })
    }
}

/// The length of the first row in `bytes` when it is complete (the trailer counts as a row).
fn complete_row_end(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 2 {
        return None;
    }
    let fields = i16::from_be_bytes([bytes[0], bytes[1]]);
    let mut offset = 2;
    for _ in 0..fields.max(0) {
        let header = bytes.get(offset..offset + 4)?;
        let length = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        offset += 4 + usize::try_from(length).unwrap_or(0);
        if offset > bytes.len() {
            return None;
        }
    }
    Some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_across_chunks_wait_for_their_end() {
        let mut row = 2i16.to_be_bytes().to_vec();
        row.extend(4i32.to_be_bytes());
        row.extend(7i32.to_be_bytes());
        row.extend((-1i32).to_be_bytes());
        assert_eq!(complete_row_end(&row), Some(row.len()));
        assert_eq!(complete_row_end(&row[..7]), None);
        assert_eq!(complete_row_end(&(-1i16).to_be_bytes()), Some(2));
    }
}
