//! One sync of a MySQL/MariaDB pipeline: check the server, copy the tables that have no complete snapshot
//! (several at a time, each under its own consistent snapshot), then apply the binlog from the oldest cursor.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;

use connector_core::cursor::TableCursor;
use connector_core::delta::{DeltaSink, DeltaTableWriter, Destination, copy_in_parallel};
use connector_core::engine::{CapturedTable, ChunkedCopy, CopyPlan, plan_copy, stream_changes};
use connector_core::error::{Error, Result};
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode, SyncReport, TableReport};
use connector_core::position::{BinlogPosition, SourcePosition};
use indicatif::MultiProgress;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tracing::info;

use crate::binlog::{BinlogReader, BinlogTable};
use crate::binlog_order::{compare, earliest};
use crate::catalog::{SourceTable, describe_table, source_error, tables_of_databases};
use crate::changes::TableShape;
use crate::chunk_reader::MySqlChunkReader;
use crate::config::MySqlConfig;
use crate::connection;
use crate::setup::{ServerInfo, check_server, current_position};
use crate::snapshot::copy_table;
use crate::table_map::Collations;

/// Tables copied at the same time, each over its own connection and snapshot: one per core, two to four. The
/// server shares the machine's cores with the decoding and Parquet encoding, so more copies than cores only
/// add memory (on 2 cores, four copies at once ran no faster than two and peaked 100 MiB higher).
fn parallel_copies() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get).clamp(2, 4)
}

/// A MySQL or MariaDB source bound to its Delta tables.
#[derive(Debug)]
pub struct MySqlPipeline {
    config: Arc<MySqlConfig>,
    sink: DeltaSink,
}

impl MySqlPipeline {
    pub fn new(config: MySqlConfig) -> Result<Self> {
        let destination = Destination::parse(&config.capture.dest)?;
        let sink = DeltaSink::new(destination, config.capture.pipeline.clone(), HashMap::new());
        Ok(MySqlPipeline { config: Arc::new(config), sink })
    }

    async fn run(&self, mode: SyncMode, shutdown: Shutdown) -> Result<SyncReport> {
        let config = &self.config;
        let mut conn = connection::connect(config, "cannot connect to the MySQL server").await?;
        let server = check_server(&mut conn).await?;
        // The position at start: `--once` stops here.
        let target = current_position(&mut conn, &server).await?;
        let mut ids = config.capture.tables.clone();
        for id in tables_of_databases(&mut conn, &config.databases).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Err(Error::config(format!(
                "pipeline `{}`: databases {} hold no tables",
                config.capture.pipeline,
                config.databases.join(", ")
            )));
        }
        let mut sources = Vec::with_capacity(ids.len());
        for id in &ids {
            let options = config.capture.options_for(id);
            sources.push(describe_table(&mut conn, id, options.key.as_deref()).await?);
        }
        let collations = read_collations(&mut conn).await?;
        let _ = conn.disconnect().await;

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
            if writer.cursor().is_some_and(TableCursor::snapshot_complete) {
                continue;
            }
            let copy_under_way = writer.cursor().is_some_and(ChunkedCopy::is_under_way);
            match plan_copy(writer.cursor(), &sources[index].schema, config.capture.copy_in_chunks)? {
                CopyPlan::Chunks(copy) => chunked[index] = Some(copy),
                CopyPlan::Whole => {
                    // A copy in chunks begun under another key: the whole copy starts from an empty table.
                    if let Some(cursor) = writer.cursor().filter(|_| copy_under_way) {
                        writer.restart_snapshot(TableCursor::restarting(cursor.position.clone())).await?;
                    }
                    needs_copy.push(index);
                }
            }
        }
        if !needs_copy.is_empty() && !shutdown.is_requested() {
            let mut slots: Vec<Option<DeltaTableWriter>> = writers.into_iter().map(Some).collect();
            let mut stop = shutdown.clone();
            // A stop abandons the copies in flight rather than waiting for them (a large table's copy takes
            // hours): each is one commit, so an abandoned copy leaves nothing visible and the next sync copies
            // it again; tables whose copy was committed are not.
            let copied = tokio::select! {
                copied = self.copy_tables(&server, &sources, &mut slots, &needs_copy) => copied,
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
        let mut cursors: Vec<BinlogPosition> = Vec::with_capacity(sources.len());
        let mut streamed = Vec::with_capacity(sources.len());
        for ((source, writer), copy) in sources.into_iter().zip(writers).zip(chunked) {
            // A copy in chunks that has copied nothing yet needs no history: its first chunk reads the table.
            let nothing_copied = copy.as_ref().is_some_and(|copy| copy.copied_up_to.is_none());
            match writer.cursor().map(|cursor| &cursor.position) {
                Some(SourcePosition::Binlog(_)) if nothing_copied => {}
                Some(SourcePosition::Binlog(position)) => {
                    // A cursor the server's position cannot be ordered with (a diverged GTID history) stops here,
                    // before anything is read.
                    compare(position, &target)?;
                    cursors.push(position.clone());
                }
                Some(other) => {
                    return Err(Error::state(format!(
                        "{} holds a cursor of another source ({other}); write it to another destination or resync it",
                        source.schema.id
                    )));
                }
                None => {}
            }
            let key_override = config.capture.options_for(&source.schema.id).key;
            let shape = TableShape { schema: source.schema, types: source.types };
            streamed.push(CapturedTable::new(writer, BinlogTable::new(shape, key_override)).copied_in_chunks(copy));
        }
        let start = earliest(&cursors)?.unwrap_or(&target).clone();
        let mut reader = BinlogReader::new(config, &server, streamed, &self.sink, collations, (start, target));
        if !copied_in_chunks.is_empty() {
            let chunks = MySqlChunkReader::new(self.config.clone(), server.clone(), copied_in_chunks);
            reader = reader.with_chunk_reader(Arc::new(chunks), config.capture.copy_chunk_rows);
        }
        if !shutdown.is_requested() {
            stream_changes(&mut reader, mode, config.capture.budget(), shutdown).await?;
        }
        let streamed = reader.into_tables();
        // Tables created while streaming were added after the others.
        for table in streamed.iter().skip(reports.len()) {
            reports.push(TableReport {
                table: table.writer.table_id().clone(),
                snapshot_rows: 0,
                changes_applied: 0,
                position: None,
            });
        }
        for (report, table) in reports.iter_mut().zip(&streamed) {
            report.snapshot_rows += table.snapshot_rows;
            report.changes_applied = table.changes_applied;
            report.position = table.writer.cursor().map(|cursor| cursor.position.clone());
        }
        Ok(SyncReport { tables: reports })
    }

    /// Copies the tables at `indices`, several at a time, each under its own consistent snapshot.
    async fn copy_tables(
        &self,
        server: &ServerInfo,
        sources: &[SourceTable],
        writers: &mut [Option<DeltaTableWriter>],
        indices: &[usize],
    ) -> Result<Vec<(usize, u64)>> {
        let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
        copy_in_parallel(writers, indices, parallel_copies(), |index, mut writer| {
            let (config, source, bars, server) =
                (self.config.clone(), sources[index].clone(), bars.clone(), server.clone());
            async move {
                let copied = copy_table(&config, &server, &source, &mut writer, bars.as_ref()).await;
                (writer, copied)
            }
        })
        .await
    }
}

/// Collation id → character set, to decode text columns in the binlog.
async fn read_collations(conn: &mut Conn) -> Result<Collations> {
    let rows: Vec<(u16, String)> = conn
        .query("SELECT ID, CAST(CHARACTER_SET_NAME AS CHAR) FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
        .await
        .map_err(|cause| source_error("cannot read the server's collations", cause))?;
    Ok(rows.into_iter().collect())
}

impl Pipeline for MySqlPipeline {
    fn name(&self) -> &str {
        &self.config.capture.pipeline
    }

    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        Box::pin(self.run(mode, shutdown))
    }
}
