//! One sync of a PostgreSQL pipeline: check the server, set up the publication and slot, copy the tables that
//! have no complete snapshot yet, then stream changes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;

use connector_core::cursor::TableCursor;
use connector_core::delta::{DeltaSink, DeltaTableWriter, Destination, copy_in_parallel};
use connector_core::engine::{CapturedTable, ChunkedCopy, CopyPlan, plan_copy, stream_changes};
use connector_core::error::{Error, Result};
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode, SyncReport, TableReport};
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::TableId;
use futures::{StreamExt, TryStreamExt};
use indicatif::MultiProgress;
use tracing::{info, warn};

use crate::binding::{self, SlotBinding};
use crate::catalog::{SourceTable, describe_table, tables_of_schemas};
use crate::changes::{PendingChanges, TableShape};
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
        let mut ids = config.capture.tables.clone();
        for id in tables_of_schemas(&sql, &config.schemas).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Err(Error::config(format!(
                "pipeline `{}`: schemas {} hold no tables",
                config.capture.pipeline,
                config.schemas.join(", ")
            )));
        }
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

        let opened =
            sources.iter().map(|source| (&source.schema, config.capture.options_for(&source.schema.id))).collect();
        let mut writers = self.sink.open_tables(opened).await?;
        let mut reports: Vec<TableReport> = sources
            .iter()
            .map(|source| TableReport {
                table: source.schema.id.clone(),
                snapshot_rows: 0,
                changes_applied: 0,
                position: None,
            })
            .collect();

        // Tables with a single integer key are copied in chunks while they stream; others whole, before.
        let mut needs_copy = Vec::new();
        let mut chunked: Vec<Option<ChunkedCopy>> = vec![None; writers.len()];
        for (index, writer) in writers.iter_mut().enumerate() {
            let restart = TableCursor::restarting(SourcePosition::Postgres { lsn: slot.confirmed_flush });
            let copy_under_way = writer.cursor().is_some_and(ChunkedCopy::is_under_way);
            let copy = match writer.cursor() {
                None => true,
                Some(cursor) if !cursor.snapshot_complete() && !copy_under_way => true,
                Some(cursor) if slot.created => {
                    // The slot that fed this table is gone, and with it the changes since: copy it again.
                    warn!(
                        table = %writer.table_id(),
                        position = %cursor.position,
                        "the replication slot was created anew; copying the table again"
                    );
                    writer.restart_snapshot(restart.clone()).await?;
                    true
                }
                Some(cursor)
                    if recorded.left_out(writer.table_id()) && behind(&cursor.position, slot.confirmed_flush) =>
                {
                    // Syncs without this table confirmed its changes to the server: the stream cannot bring
                    // them back, a copy can.
                    warn!(
                        table = %writer.table_id(),
                        position = %cursor.position,
                        slot_position = %slot.confirmed_flush,
                        "the table was left out of the pipeline while its slot confirmed later changes; copying \
                         the table again"
                    );
                    writer.restart_snapshot(restart.clone()).await?;
                    true
                }
                Some(_) => copy_under_way,
            };
            if !copy {
                continue;
            }
            match plan_copy(writer.cursor(), &sources[index].schema, config.capture.copy_in_chunks)? {
                CopyPlan::Chunks(copy) => chunked[index] = Some(copy),
                CopyPlan::Whole => {
                    // A copy in chunks begun under another key: the whole copy starts from an empty table.
                    if copy_under_way {
                        writer.restart_snapshot(restart).await?;
                    }
                    needs_copy.push(index);
                }
            }
        }
        // Recorded before the stream confirms anything: from now on the slot's position covers these tables.
        let mut tables = ids;
        tables.sort();
        let bound =
            SlotBinding { pipeline: config.capture.pipeline.clone(), destination: self.destination.clone(), tables };
        binding::record(&sql, &config.publication, &config.slot, &bound).await?;
        if !needs_copy.is_empty() && !shutdown.is_requested() {
            let mut slots: Vec<Option<DeltaTableWriter>> = writers.into_iter().map(Some).collect();
            let mut stop = shutdown.clone();
            // A stop abandons the copies in flight rather than waiting for them (a large table's copy takes
            // hours): each is one commit, so an abandoned copy leaves nothing visible and the next sync copies
            // it again; tables whose copy was committed are not.
            let copied = tokio::select! {
                copied = self.copy_tables(&sources, &mut slots, &needs_copy) => copied,
                _ = stop.requested() => {
                    info!("stopping: abandoned the table copies in flight; the next sync copies them again");
                    return Ok(SyncReport { tables: reports });
                }
            };
            writers = slots.into_iter().flatten().collect();
            for (index, rows) in copied? {
                reports[index].snapshot_rows = rows;
            }
        }

        let copied_in_chunks: Vec<SourceTable> =
            sources.iter().zip(&chunked).filter(|(_, copy)| copy.is_some()).map(|(source, _)| source.clone()).collect();
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
            streamed.push(CapturedTable::new(writer, PendingChanges::new(shape, skip_before)).copied_in_chunks(copy));
        }
        let mut stream = ReplicationStream::new(config, &sql, streamed, slot.confirmed_flush);
        if !copied_in_chunks.is_empty() {
            let reader = PostgresChunkReader::new(self.config.clone(), copied_in_chunks);
            stream = stream.with_chunk_reader(Arc::new(reader), config.capture.copy_chunk_rows);
        }
        if !shutdown.is_requested() {
            stream_changes(&mut stream, mode, config.capture.budget(), shutdown).await?;
        }
        let streamed = stream.into_tables();
        for (report, table) in reports.iter_mut().zip(&streamed) {
            report.snapshot_rows += table.snapshot_rows;
            report.changes_applied = table.changes_applied;
            report.position = table.writer.cursor().map(|cursor| cursor.position.clone());
        }
        Ok(SyncReport { tables: reports })
    }

    /// Copies the tables at `indices` under one exported snapshot, several at a time.
    async fn copy_tables(
        &self,
        sources: &[SourceTable],
        writers: &mut [Option<DeltaTableWriter>],
        indices: &[usize],
    ) -> Result<Vec<(usize, u64)>> {
        let snapshot = Arc::new(export_snapshot(&self.config).await?);
        // Bars when a person watches (stderr is a terminal); logs every 10 s otherwise.
        let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
        copy_in_parallel(writers, indices, PARALLEL_COPIES, |index, mut writer| {
            let (config, snapshot, source, bars) =
                (self.config.clone(), snapshot.clone(), sources[index].clone(), bars.clone());
            async move {
                let copied = copy_table(&config, &snapshot, &source, &mut writer, bars.as_ref()).await;
                (writer, copied)
            }
        })
        .await
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
