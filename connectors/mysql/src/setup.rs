//! Checks that the server writes a binlog the connector can read and that its user may read it, and says
//! exactly what to change when not. Every problem is reported at once, each with its fix.

use connector_core::error::{Error, Result};
use connector_core::position::BinlogPosition;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tracing::warn;

use crate::catalog::source_error;

/// Which server family: their snapshot and GTID mechanics differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub flavor: Flavor,
    pub version: String,
    /// What tells this server from the others of its topology: MariaDB's `server_id`, MySQL's `server_uuid`.
    pub identity: String,
    /// Whether every transaction it writes has a GTID: always on MariaDB, with `gtid_mode=ON` on MySQL.
    pub writes_gtids: bool,
}

/// Which server `conn` is connected to: family, version and identity.
pub async fn identify(conn: &mut Conn) -> Result<ServerInfo> {
    let version: String = query_one(conn, "SELECT VERSION()").await?.unwrap_or_default();
    let flavor = if version.to_ascii_lowercase().contains("mariadb") { Flavor::MariaDb } else { Flavor::MySql };
    let (identity, writes_gtids) = match flavor {
        Flavor::MariaDb => (global(conn, "server_id").await?, true),
        Flavor::MySql => {
            let mode = global(conn, "gtid_mode").await?;
            (global(conn, "server_uuid").await?, mode.is_some_and(|mode| mode.eq_ignore_ascii_case("ON")))
        }
    };
    Ok(ServerInfo { flavor, version, identity: identity.unwrap_or_default(), writes_gtids })
}

/// Reads the binlog settings and the user's global privileges; errors list every missing one with its fix.
pub async fn check_server(conn: &mut Conn) -> Result<ServerInfo> {
    let server = identify(conn).await?;
    let flavor = server.flavor;
    let mut problems = Vec::new();
    let log_bin = global(conn, "log_bin").await?;
    if !matches!(log_bin.as_deref(), Some("1" | "ON")) {
        problems.push(
            match flavor {
                Flavor::MariaDb => {
                    "the binary log is off: start the server with `log_bin=mariadb-bin` (my.cnf [mariadbd])"
                }
                Flavor::MySql => "the binary log is off: start the server with `log_bin=mysql-bin` (my.cnf [mysqld])",
            }
            .to_string(),
        );
    }
    let expected = [("binlog_format", "ROW"), ("binlog_row_image", "FULL"), ("binlog_row_metadata", "FULL")];
    for (name, wanted) in expected {
        match global(conn, name).await? {
            Some(value) if value.eq_ignore_ascii_case(wanted) => {}
            Some(value) => problems.push(format!(
                "{name} is {value}, the connector needs {wanted}: run `SET PERSIST {name} = '{wanted}'` (MySQL 8) or set \
                 `{name}={wanted}` in my.cnf and restart (MariaDB)"
            )),
            None => problems.push(format!(
                "the server has no {name} setting (MySQL 8.0.1+ and MariaDB 10.5+ have it): upgrade the server"
            )),
        }
    }
    let server_id = global(conn, "server_id").await?;
    if matches!(server_id.as_deref(), None | Some("0")) {
        problems.push(
            "server_id is 0, and a server without an id writes no usable binlog: set `server_id=1` in my.cnf".into(),
        );
    }
    problems.extend(missing_privileges(conn, flavor).await?);
    if !server.writes_gtids {
        warn!("{}", gtid_advice(global(conn, "gtid_mode").await?.as_deref()));
    }
    if !problems.is_empty() {
        return Err(Error::config(format!(
            "the server cannot feed the connector yet:\n  - {}",
            problems.join("\n  - ")
        )));
    }
    Ok(server)
}

/// What to say when MySQL writes no GTIDs (`gtid_mode` other than ON): not a problem on one server (positions
/// are its file and offset), but they cannot follow a failover to a replica. MariaDB always writes GTIDs.
fn gtid_advice(gtid_mode: Option<&str>) -> String {
    format!(
        "gtid_mode is {}: positions are binlog files and offsets of this server only, and cannot follow a failover \
         to a replica. To allow it, set `gtid_mode=ON` and `enforce_gtid_consistency=ON` in my.cnf and restart (or \
         switch online: MySQL's \"Enabling GTID Transactions Online\")",
        gtid_mode.unwrap_or("unknown")
    )
}

/// The server's current binlog end: `--once` reads up to here. Its GTID state is exact on MySQL (the same
/// statement's Executed_Gtid_Set; none unless every transaction gets a GTID, as a set that stopped growing
/// while anonymous transactions go on would name the wrong place); MariaDB's `@@gtid_binlog_pos` is read just
/// after, so it may include a transaction committed in between, which a stop point can.
pub async fn current_position(conn: &mut Conn, server: &ServerInfo) -> Result<BinlogPosition> {
    let (file, offset, executed) = binlog_end(conn).await?;
    let gtid = match server.flavor {
        Flavor::MariaDb => global(conn, "gtid_binlog_pos").await?,
        Flavor::MySql => executed.filter(|_| server.writes_gtids),
    };
    Ok(BinlogPosition { file, offset, gtid: gtid_text(gtid), server: Some(server.identity.clone()) })
}

/// A GTID state as the server printed it, without the line breaks MySQL puts after each comma of a set;
/// `None` when empty (no GTIDs written).
pub fn gtid_text(printed: Option<String>) -> Option<String> {
    let text: String = printed?.split_whitespace().collect();
    (!text.is_empty()).then_some(text)
}

/// `SHOW MASTER STATUS`: the binlog file, offset and (MySQL) executed GTID set. MySQL 8.4 removed the statement
/// for `SHOW BINARY LOG STATUS` (8.2+), which MySQL 8.0 and MariaDB do not know: the old name is tried first.
pub async fn binlog_end(conn: &mut Conn) -> Result<(String, u64, Option<String>)> {
    const ER_PARSE_ERROR: u16 = 1064;
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Err(mysql_async::Error::Server(server)) if server.code == ER_PARSE_ERROR => {
            conn.query_first("SHOW BINARY LOG STATUS").await
        }
        other => other,
    }
    .map_err(|cause| source_error("cannot read the current binlog position (SHOW MASTER STATUS)", cause))?;
    let row = row.ok_or_else(|| {
        Error::config("SHOW MASTER STATUS returned nothing: the binary log is off (set log_bin in my.cnf)")
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let offset: u64 = row.get(1).unwrap_or_default();
    Ok((file, offset, row.get_opt::<String, _>(4).and_then(Result::ok)))
}

/// MariaDB's GTID position at a binlog file and offset (`BINLOG_GTID_POS`), which the server finds by reading
/// the file from its start up to the offset: up to `max_binlog_size` (1 GiB by default), so asked sparingly.
pub async fn mariadb_gtid_at(conn: &mut Conn, file: &str, offset: u64) -> Result<Option<String>> {
    conn.exec_first::<Option<String>, _, _>("SELECT BINLOG_GTID_POS(?, ?)", (file, offset))
        .await
        .map(Option::flatten)
        .map_err(|cause| source_error(format!("cannot read the GTID position at {file}:{offset}"), cause))
}

async fn query_one(conn: &mut Conn, sql: &str) -> Result<Option<String>> {
    conn.query_first::<Option<String>, _>(sql)
        .await
        .map(Option::flatten)
        .map_err(|cause| source_error(format!("cannot run `{sql}`"), cause))
}

/// A global variable's value, `None` when the server has no such variable.
pub async fn global(conn: &mut Conn, name: &str) -> Result<Option<String>> {
    const UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
    match conn.query_first::<Option<String>, _>(format!("SELECT CAST(@@GLOBAL.{name} AS CHAR)")).await {
        Ok(value) => Ok(value.flatten()),
        Err(mysql_async::Error::Server(server)) if server.code == UNKNOWN_SYSTEM_VARIABLE => Ok(None),
        Err(cause) => Err(source_error(format!("cannot read @@{name}"), cause)),
    }
}

/// REPLICATION SLAVE (stream the binlog) and REPLICATION CLIENT / BINLOG MONITOR (read its position).
async fn missing_privileges(conn: &mut Conn, flavor: Flavor) -> Result<Vec<String>> {
    let grants: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(|cause| source_error("cannot read the connector user's privileges (SHOW GRANTS)", cause))?;
    let global: Vec<String> =
        grants.iter().filter(|grant| grant.contains(" ON *.* ")).map(|grant| grant.to_ascii_uppercase()).collect();
    let has =
        |privilege: &str| global.iter().any(|grant| grant.contains("ALL PRIVILEGES") || grant.contains(privilege));
    let user: String = query_one(conn, "SELECT CURRENT_USER()").await?.unwrap_or_else(|| "the user".into());
    let (account, host) = user.split_once('@').unwrap_or((&user, "%"));
    let mut missing = Vec::new();
    if !has("REPLICATION SLAVE") && !has("REPLICATION REPLICA") {
        missing.push(format!(
            "the user may not stream the binlog: `GRANT REPLICATION SLAVE ON *.* TO '{account}'@'{host}'`"
        ));
    }
    let (monitor, names) = match flavor {
        Flavor::MariaDb => ("BINLOG MONITOR", ["BINLOG MONITOR", "REPLICATION CLIENT"]),
        Flavor::MySql => ("REPLICATION CLIENT", ["REPLICATION CLIENT", "REPLICATION CLIENT"]),
    };
    if !names.iter().any(|name| has(name)) {
        missing.push(format!(
            "the user may not read the binlog position: `GRANT {monitor} ON *.* TO '{account}'@'{host}'`"
        ));
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_without_gtids_is_told_how_to_turn_them_on() {
        let advice = gtid_advice(Some("OFF_PERMISSIVE"));
        assert!(advice.starts_with("gtid_mode is OFF_PERMISSIVE") && advice.contains("`gtid_mode=ON`"), "{advice}");
        assert!(gtid_advice(None).starts_with("gtid_mode is unknown"));
    }

    #[test]
    fn gtid_sets_lose_mysqls_line_breaks() {
        let printed = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n9973979b-e97c-11f1-a490-02fc00000001:1-2";
        assert_eq!(
            gtid_text(Some(printed.into())).as_deref(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,9973979b-e97c-11f1-a490-02fc00000001:1-2")
        );
        assert_eq!(gtid_text(Some(" ".into())), None);
        assert_eq!(gtid_text(None), None);
    }
}
