//! Table shapes from `information_schema`, for the snapshot and for naming what a pipeline captures.

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::options::checked_key_option;
use connector_core::schema::{Column, TableId, TableSchema};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::earlier_rows::fill_earlier_rows;
use crate::types::MySqlType;

/// A captured table: its engine schema plus the decoding type of each column.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub schema: TableSchema,
    pub types: Vec<MySqlType>,
    /// `information_schema.TABLES.TABLE_ROWS`, InnoDB's estimate: the progress bar's total.
    pub estimated_rows: u64,
}

/// A failed statement as a source error: retried when the connection broke, else shown with the server's text.
pub(crate) fn source_error(what: impl Into<String>, cause: mysql_async::Error) -> Error {
    let retry = match &cause {
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Retry::WithBackoff,
        _ => Retry::No,
    };
    match &cause {
        // mysql_async's text of a server error repeats the server's message twice more; the message and its
        // code say all of it once.
        mysql_async::Error::Server(server) => Error::new(
            ErrorKind::Source,
            retry,
            format!("{}: {} (MySQL error {}, SQLSTATE {})", what.into(), server.message, server.code, server.state),
        ),
        _ => Error::new(ErrorKind::Source, retry, what.into()).caused_by(cause),
    }
}

/// Every base table of `databases`, in name order.
pub async fn tables_of_databases(conn: &mut Conn, databases: &[String]) -> Result<Vec<TableId>> {
    let mut tables = Vec::new();
    for database in databases {
        let names: Vec<String> = conn
            .exec(
                "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (database,),
            )
            .await
            .map_err(|cause| source_error(format!("cannot list the tables of database {database}"), cause))?;
        tables.extend(names.into_iter().map(|name| TableId::new(database, name)));
    }
    Ok(tables)
}

/// Reads a table's columns and primary key. `key_override` replaces the primary key (tables without one).
pub async fn describe_table(conn: &mut Conn, table: &TableId, key_override: Option<&[String]>) -> Result<SourceTable> {
    type ColumnRow = (String, String, String, Option<String>);
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
             CAST(CHARACTER_SET_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.namespace, &table.name),
        )
        .await
        .map_err(|cause| source_error(format!("cannot read the columns of {table}"), cause))?;
    if rows.is_empty() {
        return Err(Error::config(format!(
            "table {table} does not exist, or the connector's user may not see it (grant SELECT on it)"
        ))
        .for_table(table));
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut types = Vec::with_capacity(rows.len());
    for (name, data_type, column_type, charset) in rows {
        let mysql_type = MySqlType::from_catalog(&data_type, &column_type, charset.as_deref()).ok_or_else(|| {
            Error::schema(
                table,
                format!(
                    "column `{name}` of {table} has type {column_type}{}, which the connector cannot capture; \
                     leave the table out or change the column",
                    charset.as_deref().map(|charset| format!(" in character set {charset}")).unwrap_or_default()
                ),
            )
        })?;
        columns.push(Column::new(&name, mysql_type.arrow_type(), column_type));
        types.push(mysql_type);
    }
    let primary_key = match key_override {
        Some(key) => checked_key_option(table, key, &columns)?,
        None => conn
            .exec(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (&table.namespace, &table.name),
            )
            .await
            .map_err(|cause| source_error(format!("cannot read the primary key of {table}"), cause))?,
    };
    let estimated_rows: Option<u64> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.namespace, &table.name),
        )
        .await
        .map_err(|cause| source_error(format!("cannot estimate the size of {table}"), cause))?
        .flatten();
    fill_earlier_rows(conn, table, &mut columns).await?;
    let schema = TableSchema::new(table.clone(), columns, primary_key)?;
    Ok(SourceTable { schema, types, estimated_rows: estimated_rows.unwrap_or(0) })
}

/// `name` quoted as a MySQL identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`, quoted.
pub fn qualified(table: &TableId) -> String {
    format!("{}.{}", quote(&table.namespace), quote(&table.name))
}
