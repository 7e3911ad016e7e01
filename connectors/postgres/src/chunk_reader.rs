//! Chunks of a table copied while its changes stream (the engine's `chunked_copy`): each read under a snapshot
//! exported by a temporary replication slot, which sits at an exact LSN: the transactions that committed
//! before it are in the snapshot, those after it are not. The read ends with a marker written into the WAL, so
//! the stream passes the snapshot's position promptly even when the tables are idle.

use std::sync::Arc;
use std::time::Instant;

use connector_core::engine::{Chunk, ChunkRead, ChunkReader, ChunkRequest, ChunkRows, ChunkStart};
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::position::SourcePosition;
use futures::StreamExt;
use tracing::debug;

use crate::catalog::{describe_table, source_error};
use crate::config::PostgresConfig;
use crate::setup::{qualified, quote_identifier};
use crate::snapshot::{CopyDecoder, export_snapshot, snapshot_session};
use crate::stream::emit_message;

/// Reads chunks of the pipeline's tables (each chunk describes its table inside its own snapshot).
#[derive(Debug)]
pub struct PostgresChunkReader {
    config: Arc<PostgresConfig>,
}

impl PostgresChunkReader {
    pub fn new(config: Arc<PostgresConfig>) -> Self {
        PostgresChunkReader { config }
    }
}

impl ChunkReader for PostgresChunkReader {
    fn read_chunk(&self, request: ChunkRequest, rows: ChunkRows) -> ChunkRead {
        let config = self.config.clone();
        Box::pin(async move { read_chunk(&config, &request, rows).await })
    }
}

async fn read_chunk(config: &PostgresConfig, request: &ChunkRequest, mut rows: ChunkRows) -> Result<Chunk> {
    let id = &request.table;
    let key = &request.key_column;
    let began = Instant::now();
    let snapshot = export_snapshot(config).await?;
    let exported = began.elapsed();
    let position = SourcePosition::Postgres { lsn: snapshot.position };
    let client = snapshot_session(config, &snapshot.name, id).await?;
    // The transaction holds the snapshot now: the temporary slot, which holds back the server's cleanup, goes.
    drop(snapshot);
    // The table's columns as the snapshot has them (they may have changed since the sync began), by the key the
    // copy began with.
    let table = &describe_table(&client, id, Some(std::slice::from_ref(key))).await?;

    let key_column = quote_identifier(key);
    let up_to_query = request.end_query(&key_column, &format!("{key_column}::text"), &qualified(id));
    let up_to = match client
        .query_opt(up_to_query.as_str(), &[])
        .await
        .map_err(|cause| source_error(format!("cannot find where a chunk of {id} ends"), cause))?
    {
        Some(row) => Some(request.parse_key(row.get(0))?),
        None => None,
    };
    rows.positioned(ChunkStart { position, up_to });
    let positioned = began.elapsed();

    let columns: Vec<String> = table.schema.columns.iter().map(|column| quote_identifier(&column.name)).collect();
    let keys = request.chunk_keys(&key_column, up_to);
    let statement =
        format!("COPY (SELECT {} FROM {}{keys}) TO STDOUT (FORMAT binary)", columns.join(", "), qualified(id));
    let stream = client
        .copy_out(statement.as_str())
        .await
        .map_err(|cause| source_error(format!("cannot start copying a chunk of {id}"), cause))?;
    futures::pin_mut!(stream);
    let mut decoder = CopyDecoder::new(table);
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(|cause| source_error(format!("copying a chunk of {id} failed"), cause))?;
        rows.count_bytes(bytes.len() as u64);
        decoder.feed(bytes).map_err(|error| error.for_table(id))?;
        if decoder.batch_full() {
            rows.write(&table.schema, decoder.finish_batch(table)?).await?;
        }
    }
    if !decoder.finished {
        return Err(Error::new(
            ErrorKind::Source,
            Retry::WithBackoff,
            format!("the copy of a chunk of {id} ended without its trailer; the connection was cut"),
        )
        .for_table(id));
    }
    rows.write(&table.schema, decoder.finish_batch(table)?).await?;
    client.batch_execute("COMMIT").await.map_err(|cause| source_error("cannot end a chunk's snapshot", cause))?;
    emit_message(&client, &config.capture.pipeline, "chunk").await?;
    debug!(table = %id, ?exported, ?positioned, read = ?began.elapsed(), "chunk read: snapshot exported, end found, rows copied");

    rows.finish(table.schema.clone()).await
}
