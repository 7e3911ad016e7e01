//! Chunks of a table copied while its changes stream (the engine's `chunked_copy`): each read in a consistent
//! snapshot whose binlog position is exact for the table (as the whole copy's are, see `snapshot`): on MySQL
//! the table is locked against writers for the moment the snapshot starts; MariaDB reports the position itself.
//! The stream passes a chunk's position at the next transaction or heartbeat.

use std::sync::Arc;

use connector_core::engine::{Chunk, ChunkRead, ChunkReader, ChunkRequest, ChunkRows, ChunkStart};
use connector_core::error::{Error, Result};
use connector_core::position::SourcePosition;
use mysql_async::prelude::Queryable;
use tracing::{debug, warn};

use crate::catalog::{describe_table, qualified, quote, source_error};
use crate::codec::ColumnBuilder;
use crate::config::MySqlConfig;
use crate::connection;
use crate::read_buffer::grow_read_buffer;
use crate::setup::ServerInfo;
use crate::snapshot::{ROWS_PER_BATCH, append_row, finish_batch, start_snapshots};

/// Reads chunks of the pipeline's tables (each chunk describes its table inside its own snapshot, so a table
/// that joined the pipeline while streaming is read as well).
#[derive(Debug)]
pub struct MySqlChunkReader {
    config: Arc<MySqlConfig>,
    server: ServerInfo,
}

impl MySqlChunkReader {
    pub fn new(config: Arc<MySqlConfig>, server: ServerInfo) -> Self {
        MySqlChunkReader { config, server }
    }
}

impl ChunkReader for MySqlChunkReader {
    fn read_chunk(&self, request: ChunkRequest, rows: ChunkRows) -> ChunkRead {
        let (config, server) = (self.config.clone(), self.server.clone());
        Box::pin(async move { read_chunk(&config, &server, &request, rows).await })
    }
}

/// MySQL's `ER_TABLE_DEF_CHANGED`: the table changed (an `ALTER TABLE`) after the snapshot began and before
/// the snapshot first read it. A new snapshot sees the new definition.
const TABLE_DEFINITION_CHANGED: u16 = 1412;
/// Snapshots a chunk takes before a table that keeps changing stops the sync.
const SNAPSHOT_ATTEMPTS: u32 = 5;

async fn read_chunk(
    config: &MySqlConfig,
    server: &ServerInfo,
    request: &ChunkRequest,
    mut rows: ChunkRows,
) -> Result<Chunk> {
    let id = &request.table;
    let key = &request.key_column;
    let mut conn = connection::connect(config, &format!("cannot connect to copy a chunk of {id}")).await?;
    grow_read_buffer(&mut conn).await?;
    let key_column = quote(key);
    let up_to_query = request.end_query(&key_column, &format!("CAST({key_column} AS CHAR)"), &qualified(id));
    let mut attempt = 1;
    let (position, table, up_to) = loop {
        let position = start_snapshots(config, std::slice::from_mut(&mut conn), server, id)
            .await?
            .pop()
            .ok_or_else(|| Error::state("no snapshot was started"))?;
        // The table's columns now (they may have changed since the sync began), by the key the copy began with.
        let table = describe_table(&mut conn, id, Some(std::slice::from_ref(key))).await?;
        // The first read of the table in the snapshot: from here on the table cannot change until it ends.
        match conn.query_first::<String, _>(up_to_query.as_str()).await {
            Ok(up_to) => break (position, table, up_to.map(|text| request.parse_key(&text)).transpose()?),
            Err(mysql_async::Error::Server(error))
                if error.code == TABLE_DEFINITION_CHANGED && attempt < SNAPSHOT_ATTEMPTS =>
            {
                debug!(table = %id, attempt, "the table changed as the chunk's snapshot began; taking another");
                attempt += 1;
                conn.query_drop("ROLLBACK").await.map_err(|cause| source_error("cannot end a snapshot", cause))?;
            }
            Err(cause) => return Err(source_error(format!("cannot find where a chunk of {id} ends"), cause)),
        }
    };
    let table = &table;
    rows.positioned(ChunkStart { position: SourcePosition::Binlog(position), up_to });

    let columns: Vec<String> = table.schema.columns.iter().map(|column| quote(&column.name)).collect();
    let keys = request.chunk_keys(&key_column, up_to);
    let select = format!("SELECT {} FROM {}{keys}", columns.join(", "), qualified(id));
    let mut builders: Vec<ColumnBuilder> =
        table.types.iter().map(|mysql_type| ColumnBuilder::new(mysql_type, ROWS_PER_BATCH)).collect();
    let mut result =
        conn.exec_iter(select.as_str(), ()).await.map_err(|cause| source_error(format!("cannot read {id}"), cause))?;
    let mut pending = 0;
    while let Some(row) = result.next().await.map_err(|cause| source_error(format!("reading {id} failed"), cause))? {
        rows.count_bytes(append_row(table, &mut builders, &row)?);
        pending += 1;
        if pending == ROWS_PER_BATCH {
            pending = 0;
            rows.write(&table.schema, finish_batch(table, &mut builders)?).await?;
        }
    }
    drop(result);
    rows.write(&table.schema, finish_batch(table, &mut builders)?).await?;
    if let Err(cause) = conn.query_drop("COMMIT").await {
        warn!(table = %id, error = %cause, "closing a chunk's snapshot failed");
    }
    let _ = conn.disconnect().await;

    rows.finish(table.schema.clone()).await
}
