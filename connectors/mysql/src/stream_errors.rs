//! Why a server ended or refused the binlog stream, in words that say what was lost and what to do: the
//! server's error 1236 covers a purged binlog, a second reader with the same server id and a GTID position the
//! server cannot serve.

use connector_core::error::Error;
use connector_core::position::BinlogPosition;
use connector_core::schema::TableId;

/// The server error when a replica asks for a binlog file or position the server no longer has.
pub const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;

/// The server no longer has the binlog at `position`: what was lost, and how to recover.
pub fn purged_binlog_error(
    position: &BinlogPosition,
    pipeline: &str,
    tables: &[TableId],
    server_message: &str,
) -> Error {
    let names = tables.iter().map(TableId::to_string).collect::<Vec<_>>().join(",");
    Error::history_lost(
        tables.iter().cloned(),
        format!(
            "the server no longer has binlog {} at {} (purged while the connector was away?): the changes since are lost \
         to the connector. Copy the tables anew with `connector resync --pipeline {pipeline} --table {}`, then sync \
         again; keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days) so it does not happen again. The \
         server said: {server_message}",
            position.file, position.offset, names
        ),
    )
}

/// Whether the server ended the stream because another replica registered with the same server id: MySQL
/// keeps one binlog stream per id (the newest) and ends the older with error 1236.
pub fn duplicate_server_id(server_message: &str) -> bool {
    server_message.contains("same server_uuid/server_id")
}

pub fn duplicate_server_id_error(server_id: u32, server_message: &str) -> Error {
    Error::config(format!(
        "another replica or pipeline connected to the server with server id {server_id}, the id this pipeline reads \
         the binlog with, and the server ended this pipeline's stream (a server keeps one stream per id). Give each \
         pipeline and replica its own id: set `--server-id` (`server_id` in pipelines.toml) to one no other uses. \
         The server said: {server_message}"
    ))
}

/// A server of another topology, or one behind the tables, was asked for the binlog after their GTID position.
pub fn foreign_position_error(position: &BinlogPosition, server: &str, pipeline: &str, tables: &str) -> Error {
    Error::state(format!(
        "server {server} cannot serve the binlog after GTID position {}, which the tables reached on server {}: it \
         is not a replica of that server, has not received those transactions yet, or no longer has the binlog \
         after them. Point the pipeline at a server of that topology which has them, or copy the tables anew from \
         this one with `connector resync --pipeline {pipeline} --table {}`",
        position.gtid.as_deref().unwrap_or("-"),
        position.server.as_deref().unwrap_or("-"),
        tables
    ))
}

#[cfg(test)]
mod tests {
    use connector_core::error::{ErrorKind, Retry};

    use super::*;

    #[test]
    fn a_second_reader_with_the_same_server_id_is_named_with_the_setting_to_change() {
        let message = "A replica with the same server_uuid/server_id as this replica has connected to the source; \
                       the first event 'mysql-bin.000001' at 4";
        assert!(duplicate_server_id(message));
        assert!(!duplicate_server_id("Could not find first log file name in binary log index file"));
        let error = duplicate_server_id_error(1_234_567_890, message);
        assert_eq!(error.retry(), Retry::No);
        let text = error.to_string();
        assert!(text.contains("server id 1234567890") && text.contains("--server-id"), "{text}");
    }

    #[test]
    fn a_purged_binlog_names_the_resync_command() {
        let position = BinlogPosition { file: "mariadb-bin.000003".into(), offset: 4, gtid: None, server: None };
        let tables = [TableId::new("shop", "orders"), TableId::new("shop", "items")];
        let error = purged_binlog_error(
            &position,
            "shop",
            &tables,
            "Could not find first log file name in binary log index file",
        );
        assert_eq!((error.kind(), error.tables_to_resync()), (ErrorKind::HistoryLost, &tables[..]));
        let text = error.to_string();
        assert!(text.contains("connector resync --pipeline shop --table shop.orders,shop.items"), "{text}");
        assert!(text.contains("mariadb-bin.000003 at 4"), "{text}");
        assert!(text.contains("Could not find first log file"), "{text}");
    }
}
