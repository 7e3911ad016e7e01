//! One sync of a PostgreSQL pipeline: check the server, set up the publication and slot, copy the tables that
//! have no complete snapshot yet, then stream changes.

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::delta::{DeltaSink, Destination};
use connector_core::engine::{
    CapturedTable, TableCopies, copy_whole_tables, open_sync_tables, plan_table_copies, report_streamed, stream_changes,
};
use connector_core::error::{Error, Result};
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode, SyncReport};
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::{TableId, TableSchema};
use futures::{StreamExt, TryStreamExt};
use tracing::warn;

use crate::binding::{self, SlotBinding};
use crate::catalog::{SourceTable, describe_table, tables_of_schemas};
use crate::changes::{PendingChanges, SkipBefore, TableShape};
use crate::chunk_reader::PostgresChunkReader;
use crate::config::PostgresConfig;
use crate::connection::connect;
use crate::setup::{check_server, check_table, create_slot, ensure_publication, existing_slot};
use crate::snapshot::{copy_table, export_snapshot};
use crate::stream::ReplicationStream;

/// Tables copied at the same time, each over its own connection.
const PARALLEL_COPIES: usize = 4;

/// A PostgreSQL source bound to its Delta tables.
#[derive(Debug)]
pub struct PostgresPipeline {
    config: Arc<PostgresConfig>,
    sink: DeltaSink,
    /// The destination as the slot's binding records it: its URL, a local path resolved, no trailing `/`.
    destination: String,
}

impl PostgresPipeline {
    pub fn new(config: PostgresConfig) -> Result<Self> {
        let destination = Destination::parse(&config.capture.dest)?;
        let recorded = destination.url().as_str().trim_end_matches('/').to_string();
        let sink = DeltaSink::new(destination, config.capture.pipeline.clone(), HashMap::new());
        Ok(PostgresPipeline { config: Arc::new(config), sink, destination: recorded })
    }

    async fn run(&self, mode: SyncMode, shutdown: Shutdown) -> Result<SyncReport> {
        let config = &self.config;
        let sql = connect(config).await?;
        check_server(&sql).await?;
        let found = tables_of_schemas(&sql, &config.schemas).await?;
        let ids = config.capture.tables_with(found, &format!("schemas {}", config.schemas.join(", ")))?;
        // Described side by side: the client pipelines their queries on the one connection, so a thousand tables
        // cost a few round trips each in parallel rather than one after another. The futures are made before the
        // stream, not by a closure inside it, which would defeat the proof that this future is `Send`.
        let describing: Vec<_> = ids.iter().map(|id| described_and_checked(&sql, id, config)).collect();
        let sources: Vec<SourceTable> =
            futures::stream::iter(describing).buffered(TABLES_DESCRIBED_AT_ONCE).try_collect().await?;
        // Before anything changes on the server: a slot that serves another pipeline or destination is refused.
        let recorded = binding::read(&sql, &config.publication, &config.slot).await?;
        binding::check(&recorded, &config.slot, &config.publication, &config.capture.pipeline, &self.destination)?;
        // A slot that cannot serve the pipeline (another plugin or database, its WAL removed) is refused before
        // the publication is created, so the refusal leaves nothing behind.
        let existing = existing_slot(&sql, &config.slot, &config.capture.pipeline, &ids).await?;
        ensure_publication(&sql, &config.publication, &ids).await?;
        let slot = match existing {
            Some(slot) => slot,
            None => create_slot(&sql, &config.slot).await?,
        };

        let schemas: Vec<&TableSchema> = sources.iter().map(|source| &source.schema).collect();
        let (mut writers, mut reports) = open_sync_tables(&self.sink, &config.capture, &schemas).await?;
        let restart = SourcePosition::Postgres { lsn: slot.confirmed_flush };
        let copies = plan_table_copies(&mut writers, &schemas, config.capture.copy_in_chunks, |writer| {
            let cursor = writer.cursor()?;
            if slot.created {
                // The slot that fed this table is gone, and with it the changes since: copy it again.
                warn!(
                    table = %writer.table_id(),
                    position = %cursor.position,
                    "the replication slot was created anew; copying the table again"
                );
                return Some(restart.clone());
            }
            if recorded.left_out(writer.table_id()) && behind(&cursor.position, slot.confirmed_flush) {
                // Syncs without this table confirmed its changes to the server: the stream cannot bring
                // them back, a copy can.
                warn!(
                    table = %writer.table_id(),
                    position = %cursor.position,
                    slot_position = %slot.confirmed_flush,
                    "the table was left out of the pipeline while its slot confirmed later changes; copying \
                     the table again"
                );
                return Some(restart.clone());
            }
            None
        })
        .await?;
        let copies_in_chunks = copies.chunked.iter().any(Option::is_some);
        let TableCopies { whole, chunked } = copies;
        // Recorded before the stream confirms anything: from now on the slot's position covers these tables.
        let mut tables = ids;
        tables.sort();
        let bound =
            SlotBinding { pipeline: config.capture.pipeline.clone(), destination: self.destination.clone(), tables };
        binding::record(&sql, &config.publication, &config.slot, &bound).await?;
        if !whole.is_empty() && !shutdown.is_requested() {
            // The whole copies read one snapshot, exported now.
            let snapshot = Arc::new(export_snapshot(config).await?);
            let copied = copy_whole_tables(
                writers,
                &whole,
                &mut reports,
                PARALLEL_COPIES,
                &shutdown,
                |index, mut writer, bars| {
                    let (config, snapshot, source) = (self.config.clone(), snapshot.clone(), sources[index].clone());
                    async move {
                        let copied = copy_table(&config, &snapshot, &source, &mut writer, bars.as_ref()).await;
                        (writer, copied)
                    }
                },
            );
            let Some(copied_writers) = copied.await? else { return Ok(SyncReport { tables: reports }) };
            writers = copied_writers;
        }

        let mut streamed = Vec::with_capacity(sources.len());
        for ((source, writer), copy) in sources.into_iter().zip(writers).zip(chunked) {
            let skip_before = match writer.cursor().map(|cursor| &cursor.position) {
                Some(SourcePosition::Postgres { lsn }) => *lsn,
                Some(other) => {
                    return Err(Error::state(format!(
                        "{} holds a cursor of another source ({other}); write it to another destination or resync it",
                        source.schema.id
                    )));
                }
                None => Lsn(0),
            };
            let shape = TableShape { schema: source.schema, types: source.types, wire_types: source.wire_types };
            streamed.push(
                CapturedTable::new(writer, PendingChanges::new(shape, SkipBefore(skip_before))).copied_in_chunks(copy),
            );
        }
        let mut stream = ReplicationStream::new(config, &sql, streamed, slot.confirmed_flush);
        if copies_in_chunks {
            let reader = PostgresChunkReader::new(self.config.clone());
            stream = stream.with_chunk_reader(Arc::new(reader), config.capture.copy_chunk_rows);
        }
        if !shutdown.is_requested() {
            stream_changes(&mut stream, mode, config.capture.budget(), shutdown).await?;
        }
        report_streamed(&mut reports, &stream.into_tables());
        Ok(SyncReport { tables: reports })
    }
}

/// How many tables are described at once on the pipeline's connection.
const TABLES_DESCRIBED_AT_ONCE: usize = 16;

/// The table's shape, once the server's checks of it passed.
async fn described_and_checked(
    sql: &tokio_postgres::Client,
    id: &TableId,
    config: &PostgresConfig,
) -> Result<SourceTable> {
    let options = config.capture.options_for(id);
    let source = describe_table(sql, id, options.key.as_deref()).await?;
    check_table(sql, &source).await?;
    Ok(source)
}

/// Whether a table's committed position lies before the slot's confirmed one: changes in between were
/// confirmed to the server.
fn behind(position: &SourcePosition, confirmed: Lsn) -> bool {
    match position {
        SourcePosition::Postgres { lsn } => *lsn < confirmed,
        // Another source's cursor: the stream reports it with the way out.
        _ => false,
    }
}

impl Pipeline for PostgresPipeline {
    fn name(&self) -> &str {
        &self.config.capture.pipeline
    }

    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        Box::pin(self.run(mode, shutdown))
    }
}
