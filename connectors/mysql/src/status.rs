//! What `connector status` shows of a MySQL pipeline's source: the server's binlog position, how far the
//! pipeline's oldest table cursor is behind it, and whether the binlog it needs is still on the server. With
//! GTIDs, availability is judged by them, as the next sync resumes by GTID (on this server or a promoted replica).

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::Result;
use connector_core::gtid_state::GtidState;
use connector_core::metrics::metrics;
use connector_core::position::BinlogPosition;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use tracing::warn;

use crate::catalog::source_error;
use crate::config::MySqlConfig;
use crate::connection;
use crate::setup::{Flavor, ServerInfo, current_position, global, identify, mariadb_gtid_at};

#[derive(Debug, Clone, Serialize)]
pub struct BinlogStatus {
    pub pipeline: String,
    /// The server's current binlog end.
    pub server_position: String,
    /// The server's GTID state (`@@gtid_binlog_pos` on MariaDB, the executed set on MySQL), if it writes GTIDs.
    pub server_gtid: Option<String>,
    /// The oldest table cursor of the pipeline, where its next sync starts reading.
    pub oldest_cursor: Option<String>,
    pub oldest_cursor_gtid: Option<String>,
    /// Binlog bytes between the oldest cursor and the server's end (when the cursor's file is on this server).
    pub lag_bytes: Option<u64>,
    /// False when the server no longer has the binlog the cursor needs: the tables must be copied again.
    pub cursor_available: bool,
}

/// The status of `pipeline` on its server, given the table cursors its Delta tables hold.
pub async fn binlog_status(
    profile: &Profile,
    pipeline: &PipelineConfig,
    cursors: &[BinlogPosition],
) -> Result<BinlogStatus> {
    let config = MySqlConfig::connection_only(profile, pipeline)?;
    let mut conn = connection::connect(&config, "cannot connect to the MySQL server").await?;
    let identity = identify(&mut conn).await?;
    let flavor = identity.flavor;
    let server = current_position(&mut conn, &identity).await?;
    let files = binary_logs(&mut conn).await?;
    let oldest = crate::binlog_order::earliest(cursors)?;
    let (lag_bytes, file_available) = match oldest {
        Some(cursor) => lag(&files, cursor, &server),
        None => (None, true),
    };
    let cursor_available = match (oldest.and_then(BinlogPosition::gtid_state), files.first()) {
        (Some(cursor), Some((first_file, _))) => match oldest_kept(&mut conn, flavor, first_file).await? {
            Some(kept) => cursor.compare(&kept).is_some_and(|ordering| ordering.is_ge()),
            None => true,
        },
        _ => file_available,
    };
    let _ = conn.disconnect().await;
    Ok(BinlogStatus {
        pipeline: pipeline.name.clone(),
        server_position: format!("{}:{}", server.file, server.offset),
        server_gtid: server.gtid.clone(),
        oldest_cursor: oldest.map(|cursor| format!("{}:{}", cursor.file, cursor.offset)),
        oldest_cursor_gtid: oldest.and_then(|cursor| cursor.gtid.clone()),
        lag_bytes,
        cursor_available,
    })
}

/// The server's binlog files, with their sizes.
async fn binary_logs(conn: &mut Conn) -> Result<Vec<(String, u64)>> {
    conn.query_iter("SHOW BINARY LOGS")
        .await
        .map_err(|cause| source_error("cannot list the binary logs (SHOW BINARY LOGS)", cause))?
        .map(|row: mysql_async::Row| (row.get::<String, _>(0).unwrap_or_default(), row.get::<u64, _>(1).unwrap_or(0)))
        .await
        .map_err(|cause| source_error("cannot list the binary logs (SHOW BINARY LOGS)", cause))
}

/// Sets how many binlog bytes lie between `received` (what a streaming sync has read) and the server's end, as a
/// metric; a streaming sync's errand, whose failure is only logged.
pub(crate) async fn report_binlog_lag(config: &MySqlConfig, server: &ServerInfo, received: &BinlogPosition) {
    let lag = async {
        let mut conn = connection::connect(config, "cannot connect to the MySQL server").await?;
        let end = current_position(&mut conn, server).await?;
        let files = binary_logs(&mut conn).await?;
        let _ = conn.disconnect().await;
        Ok::<_, connector_core::error::Error>(lag(&files, received, &end).0)
    };
    match lag.await {
        Ok(Some(bytes)) => metrics().set_mysql_binlog_lag(&config.capture.pipeline, bytes),
        Ok(None) => {}
        Err(error) => warn!(error = %error.report(), "could not read the binlog's end for the metrics"),
    }
}

/// The GTIDs the server no longer has in its binlog: a cursor must include them to be resumed. MySQL says so
/// (`gtid_purged`); on MariaDB it is the position where the oldest binlog file starts.
async fn oldest_kept(conn: &mut Conn, flavor: Flavor, first_file: &str) -> Result<Option<GtidState>> {
    let text = match flavor {
        Flavor::MySql => global(conn, "gtid_purged").await?,
        Flavor::MariaDb => mariadb_gtid_at(conn, first_file, 4).await?,
    };
    Ok(text.and_then(|text| GtidState::parse(&text).ok().flatten()))
}

/// Bytes from `cursor` to `end` over the server's binlog files (name, size), and whether the cursor's file exists.
fn lag(files: &[(String, u64)], cursor: &BinlogPosition, end: &BinlogPosition) -> (Option<u64>, bool) {
    let Some(start) = files.iter().position(|(name, _)| *name == cursor.file) else { return (None, false) };
    let mut bytes = 0_u64;
    for (name, size) in &files[start..] {
        let from = if *name == cursor.file { cursor.offset } else { 0 };
        let to = if *name == end.file { end.offset } else { *size };
        bytes += to.saturating_sub(from);
        if *name == end.file {
            break;
        }
    }
    (Some(bytes), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, offset: u64) -> BinlogPosition {
        BinlogPosition { file: file.into(), offset, gtid: None, server: None }
    }

    #[test]
    fn lag_spans_binlog_files() {
        let files = vec![("b.000001".to_string(), 1000), ("b.000002".to_string(), 500)];
        assert_eq!(lag(&files, &at("b.000001", 400), &at("b.000002", 300)), (Some(900), true));
        assert_eq!(lag(&files, &at("b.000002", 100), &at("b.000002", 300)), (Some(200), true));
        assert_eq!(lag(&files, &at("b.000000", 100), &at("b.000002", 300)), (None, false));
    }
}
