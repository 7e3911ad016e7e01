//! A table's initial copy: one connection, one consistent snapshot whose binlog position is known exactly,
//! rows streamed (binary protocol) into Parquet and committed once with the position as the table's cursor.
//! The binlog then applies to this table only the transactions committed after that position.
//!
//! MariaDB reports the position of a `START TRANSACTION WITH CONSISTENT SNAPSHOT` itself
//! (`binlog_snapshot_file`/`binlog_snapshot_position`), so no lock is taken. MySQL has no such status: a global
//! read lock is held for the few milliseconds between starting the snapshot and reading the position.

use std::time::{Duration, Instant};

use chrono::Utc;
use connector_core::arrow::array::{ArrayRef, RecordBatch};
use connector_core::cursor::TableCursor;
use connector_core::delta::DeltaTableWriter;
use connector_core::error::{Error, Result};
use connector_core::position::{BinlogPosition, SourcePosition};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tracing::{info, warn};

use crate::catalog::{SourceTable, qualified, quote, source_error};
use crate::codec::{ColumnBuilder, Origin};
use crate::config::MySqlConfig;
use crate::setup::{Flavor, current_position};

/// Rows per Arrow batch handed to the Parquet writer.
const ROWS_PER_BATCH: usize = 16 * 1024;
/// How often a copy without a terminal logs its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Copies `table` under a consistent snapshot into its Delta table in one commit that marks the snapshot
/// complete at the snapshot's binlog position. Returns the rows copied.
pub async fn copy_table(
    config: &MySqlConfig,
    flavor: Flavor,
    table: &SourceTable,
    writer: &mut DeltaTableWriter,
    progress: Option<&MultiProgress>,
) -> Result<u64> {
    let id = &table.schema.id;
    let mut conn = Conn::new(config.connection.clone())
        .await
        .map_err(|cause| source_error(format!("cannot connect to copy {id}"), cause))?;
    let position = start_snapshot(config, &mut conn, flavor).await?;
    info!(table = %id, file = %position.file, offset = position.offset, "copying under a consistent snapshot");

    let columns: Vec<String> = table.schema.columns.iter().map(|column| quote(&column.name)).collect();
    let select = format!("SELECT {} FROM {}", columns.join(", "), qualified(id));
    let taken_at = Utc::now();
    let source_position = SourcePosition::Binlog(position);
    let mut snapshot_writer = writer.snapshot_writer(&source_position, taken_at)?;
    let mut builders: Vec<ColumnBuilder> =
        table.types.iter().map(|mysql_type| ColumnBuilder::new(mysql_type, ROWS_PER_BATCH)).collect();
    let bar = progress.map(|bars| bars.add(progress_bar(&id.to_string(), table.estimated_rows)));
    let started = Instant::now();
    let mut last_report = started;
    let mut rows: u64 = 0;
    let mut pending = 0;
    {
        let mut result = conn
            .exec_iter(select.as_str(), ())
            .await
            .map_err(|cause| source_error(format!("cannot read {id}"), cause))?;
        while let Some(row) =
            result.next().await.map_err(|cause| source_error(format!("reading {id} failed"), cause))?
        {
            append_row(table, &mut builders, &row)?;
            pending += 1;
            if pending == ROWS_PER_BATCH {
                snapshot_writer.write(&finish_batch(table, &mut builders)?).await?;
                rows += pending as u64;
                pending = 0;
                if let Some(bar) = &bar {
                    bar.set_length(bar.length().unwrap_or(0).max(rows));
                    bar.set_position(rows);
                } else if last_report.elapsed() >= PROGRESS_INTERVAL {
                    last_report = Instant::now();
                    let per_second = rows as f64 / started.elapsed().as_secs_f64();
                    info!(table = %id, rows, rows_per_second = per_second as u64, "copying");
                }
            }
        }
    }
    if pending > 0 {
        snapshot_writer.write(&finish_batch(table, &mut builders)?).await?;
        rows += pending as u64;
    }
    snapshot_writer.commit(TableCursor::copied(source_position, rows, taken_at)).await?;
    if let Err(cause) = conn.query_drop("COMMIT").await {
        warn!(table = %id, error = %cause, "closing the snapshot transaction failed");
    }
    let _ = conn.disconnect().await;
    if let Some(bar) = bar {
        bar.finish_with_message("committed");
    }
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    info!(table = %id, rows, seconds = format!("{seconds:.1}"), rows_per_second = (rows as f64 / seconds) as u64, "snapshot committed");
    Ok(rows)
}

/// Starts a consistent-snapshot transaction on `conn` and returns the binlog position it is consistent with.
async fn start_snapshot(config: &MySqlConfig, conn: &mut Conn, flavor: Flavor) -> Result<BinlogPosition> {
    let begin = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";
    conn.query_drop(begin).await.map_err(|cause| source_error("cannot prepare the snapshot transaction", cause))?;
    match flavor {
        Flavor::MariaDb => {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(|cause| source_error("cannot start a consistent snapshot", cause))?;
            let status: Vec<(String, String)> = conn
                .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                .await
                .map_err(|cause| source_error("cannot read the snapshot's binlog position", cause))?;
            let value =
                |name: &str| status.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
            match (value("binlog_snapshot_file"), value("binlog_snapshot_position")) {
                (Some(file), Some(offset)) if !file.is_empty() => Ok(BinlogPosition {
                    file,
                    offset: offset
                        .parse()
                        .map_err(|_| Error::state(format!("binlog_snapshot_position `{offset}` is not a number")))?,
                    gtid: None,
                }),
                _ => Err(Error::config(
                    "the server reports no binlog_snapshot_file: the binary log is off (set log_bin in my.cnf)",
                )),
            }
        }
        Flavor::MySql => {
            // The lock stops commits for the moment between starting the snapshot and reading the position.
            let mut lock = Conn::new(config.connection.clone())
                .await
                .map_err(|cause| source_error("cannot connect to take the snapshot's position", cause))?;
            lock.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(|cause| {
                source_error("cannot hold commits while the snapshot starts (grant RELOAD to the user)", cause)
            })?;
            let started = conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await;
            let position = current_position(&mut lock, flavor).await;
            let unlocked = lock.query_drop("UNLOCK TABLES").await;
            let _ = lock.disconnect().await;
            started.map_err(|cause| source_error("cannot start a consistent snapshot", cause))?;
            unlocked.map_err(|cause| source_error("cannot release the read lock", cause))?;
            position
        }
    }
}

fn append_row(table: &SourceTable, builders: &mut [ColumnBuilder], row: &Row) -> Result<()> {
    for (index, builder) in builders.iter_mut().enumerate() {
        builder.append(row.as_ref(index), Origin::Snapshot).map_err(|cause| {
            Error::state(format!("cannot decode column `{}` of {}", table.schema.columns[index].name, table.schema.id))
                .caused_by(cause)
                .for_table(&table.schema.id)
        })?;
    }
    Ok(())
}

fn finish_batch(table: &SourceTable, builders: &mut [ColumnBuilder]) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(table.schema.arrow_schema(), arrays).map_err(|cause| {
        Error::schema(&table.schema.id, format!("rows of {} do not match its schema", table.schema.id)).caused_by(cause)
    })
}

/// One table's bar: rows against InnoDB's estimate (raised if the table holds more) and ETA.
fn progress_bar(table: &str, estimated_rows: u64) -> ProgressBar {
    let bar = ProgressBar::new(estimated_rows);
    let style = ProgressStyle::with_template(
        "{prefix:<32} [{bar:30}] {human_pos:>11}/{human_len:<11} rows {msg:>12} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(table.to_string());
    bar
}
