//! One sync of a MySQL/MariaDB pipeline: check the server, copy the tables that have no complete snapshot
//! (several at a time, each under its own consistent snapshot), then apply the binlog from the oldest cursor.

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::delta::{DeltaSink, Destination};
use connector_core::engine::{
    CapturedTable, TableCopies, copy_whole_tables, open_sync_tables, plan_table_copies, report_streamed, stream_changes,
};
use connector_core::error::{Error, Result};
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode, SyncReport};
use connector_core::position::{BinlogPosition, SourcePosition};
use connector_core::schema::TableSchema;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::binlog::{BinlogReader, BinlogTable};
use crate::binlog_order::{compare, earliest};
use crate::catalog::{describe_tables, source_error, tables_of_databases};
use crate::changes::TableShape;
use crate::chunk_reader::MySqlChunkReader;
use crate::config::MySqlConfig;
use crate::connection;
use crate::setup::{check_server, current_position};
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
        let found = tables_of_databases(&mut conn, &config.databases).await?;
        let ids = config.capture.tables_with(found, &format!("databases {}", config.databases.join(", ")))?;
        let sources = describe_tables(&mut conn, &ids, |id| config.capture.options_for(id).key).await?;
        let collations = read_collations(&mut conn).await?;
        let _ = conn.disconnect().await;

        let schemas: Vec<&TableSchema> = sources.iter().map(|source| &source.schema).collect();
        let (mut writers, mut reports) = open_sync_tables(&self.sink, &config.capture, &schemas).await?;
        // The binlog keeps no reader's position, so no table's history is lost to the pipeline unless purged,
        // which the stream reports.
        let copies = plan_table_copies(&mut writers, &schemas, config.capture.copy_in_chunks, |_| None).await?;
        let TableCopies { whole, chunked } = copies;
        let copied = copy_whole_tables(
            writers,
            &whole,
            &mut reports,
            parallel_copies(),
            &shutdown,
            |index, mut writer, bars| {
                let (config, source, server) = (self.config.clone(), sources[index].clone(), server.clone());
                async move {
                    let copied = copy_table(&config, &server, &source, &mut writer, bars.as_ref()).await;
                    (writer, copied)
                }
            },
        );
        let Some(writers) = copied.await? else { return Ok(SyncReport { tables: reports }) };

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
        // Present even when no table starts a copy in chunks: a table renamed into the pipeline while streaming
        // is copied in chunks too.
        if config.capture.copy_in_chunks {
            let chunks = MySqlChunkReader::new(self.config.clone(), server.clone());
            reader = reader.with_chunk_reader(Arc::new(chunks), config.capture.copy_chunk_rows);
        }
        if !shutdown.is_requested() {
            stream_changes(&mut reader, mode, config.capture.budget(), shutdown).await?;
        }
        report_streamed(&mut reports, &reader.into_tables());
        Ok(SyncReport { tables: reports })
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
