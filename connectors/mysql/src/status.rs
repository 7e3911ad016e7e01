//! What `connector status` shows of a MySQL pipeline's source: the server's binlog position, how far the
//! pipeline's oldest table cursor is behind it, and whether the binlog it needs is still on the server.

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::Result;
use connector_core::position::BinlogPosition;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::Serialize;

use crate::catalog::source_error;
use crate::config::MySqlConfig;
use crate::setup::{Flavor, current_position};

#[derive(Debug, Clone, Serialize)]
pub struct BinlogStatus {
    pub pipeline: String,
    /// The server's current binlog end.
    pub server_position: String,
    /// The oldest table cursor of the pipeline, where its next sync starts reading.
    pub oldest_cursor: Option<String>,
    /// Binlog bytes between the oldest cursor and the server's end.
    pub lag_bytes: Option<u64>,
    /// False when the server no longer has the cursor's binlog file: the tables must be copied again.
    pub cursor_available: bool,
}

/// The status of `pipeline` on its server, given the table cursors its Delta tables hold.
pub async fn binlog_status(
    profile: &Profile,
    pipeline: &PipelineConfig,
    cursors: &[BinlogPosition],
) -> Result<BinlogStatus> {
    let config = MySqlConfig::connection_only(profile, pipeline)?;
    let mut conn = Conn::new(config.connection.clone())
        .await
        .map_err(|cause| source_error("cannot connect to the MySQL server", cause))?;
    let server = current_position(&mut conn, Flavor::MySql).await?;
    let files: Vec<(String, u64)> = conn
        .query_iter("SHOW BINARY LOGS")
        .await
        .map_err(|cause| source_error("cannot list the binary logs (SHOW BINARY LOGS)", cause))?
        .map(|row: mysql_async::Row| (row.get::<String, _>(0).unwrap_or_default(), row.get::<u64, _>(1).unwrap_or(0)))
        .await
        .map_err(|cause| source_error("cannot list the binary logs (SHOW BINARY LOGS)", cause))?;
    let _ = conn.disconnect().await;
    let oldest = cursors.iter().min_by(|left, right| crate::binlog::compare(left, right));
    let (lag_bytes, cursor_available) = match oldest {
        Some(cursor) => lag(&files, cursor, &server),
        None => (None, true),
    };
    Ok(BinlogStatus {
        pipeline: pipeline.name.clone(),
        server_position: format!("{}:{}", server.file, server.offset),
        oldest_cursor: oldest.map(|cursor| format!("{}:{}", cursor.file, cursor.offset)),
        lag_bytes,
        cursor_available,
    })
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
        BinlogPosition { file: file.into(), offset, gtid: None }
    }

    #[test]
    fn lag_spans_binlog_files() {
        let files = vec![("b.000001".to_string(), 1000), ("b.000002".to_string(), 500)];
        assert_eq!(lag(&files, &at("b.000001", 400), &at("b.000002", 300)), (Some(900), true));
        assert_eq!(lag(&files, &at("b.000002", 100), &at("b.000002", 300)), (Some(200), true));
        assert_eq!(lag(&files, &at("b.000000", 100), &at("b.000002", 300)), (None, false));
    }
}
