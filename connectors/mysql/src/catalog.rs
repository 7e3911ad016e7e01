//! Table shapes from `information_schema`, for the snapshot and for naming what a pipeline captures.

use std::collections::{BTreeSet, HashMap};

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::options::checked_key_option;
use connector_core::schema::{Column, TableId, TableSchema};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::earlier_rows::CatalogDefault;
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
    let key_override = key_override.map(<[String]>::to_vec);
    let mut described = describe_tables(conn, std::slice::from_ref(table), |_| key_override.clone()).await?;
    described.pop().ok_or_else(|| Error::state(format!("internal: {table} was not described")))
}

/// One row of `information_schema.COLUMNS`: table schema and name, column name, `DATA_TYPE`, `COLUMN_TYPE`,
/// character set, default, `EXTRA`, nullable, and whether the server is MariaDB (how it shows defaults).
type ColumnRow = (String, String, String, String, String, Option<String>, Option<String>, String, bool, bool);

/// Reads the columns, primary keys and size estimates of `tables` in three catalog queries however many tables
/// there are (a query per table costs a round trip each: seconds for a thousand tables over a network).
/// `key_override` gives the key replacing a table's primary key (tables without one).
pub async fn describe_tables(
    conn: &mut Conn,
    tables: &[TableId],
    key_override: impl Fn(&TableId) -> Option<Vec<String>>,
) -> Result<Vec<SourceTable>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    // Both lists filter a superset of the tables (any schema with any name), narrowed below; the catalog
    // finds them by its indexes on schema and name.
    let (schemas, names): (BTreeSet<&str>, BTreeSet<&str>) =
        tables.iter().map(|table| (table.namespace.as_str(), table.name.as_str())).unzip();
    let (schemas, names): (Vec<&str>, Vec<&str>) = (schemas.into_iter().collect(), names.into_iter().collect());
    let within = format!("TABLE_SCHEMA IN ({}) AND TABLE_NAME IN ({})", placeholders(&schemas), placeholders(&names));
    let parameters: Vec<mysql_async::Value> = schemas.iter().chain(&names).map(|text| (*text).into()).collect();
    let what = if tables.len() == 1 { tables[0].to_string() } else { format!("{} tables", tables.len()) };

    let columns: Vec<ColumnRow> = conn
        .exec(
            format!(
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), \
                 CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(CHARACTER_SET_NAME AS CHAR), \
                 CAST(COLUMN_DEFAULT AS CHAR), CAST(EXTRA AS CHAR), IS_NULLABLE = 'YES', \
                 VERSION() LIKE '%MariaDB%' FROM information_schema.COLUMNS WHERE {within} \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
            ),
            parameters.clone(),
        )
        .await
        .map_err(|cause| source_error(format!("cannot read the columns of {what}"), cause))?;
    let keys: Vec<(String, String, String)> = conn
        .exec(
            format!(
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) \
                 FROM information_schema.KEY_COLUMN_USAGE WHERE {within} AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
            ),
            parameters.clone(),
        )
        .await
        .map_err(|cause| source_error(format!("cannot read the primary keys of {what}"), cause))?;
    let sizes: Vec<(String, String, Option<u64>)> = conn
        .exec(
            format!(
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), TABLE_ROWS \
                 FROM information_schema.TABLES WHERE {within}"
            ),
            parameters,
        )
        .await
        .map_err(|cause| source_error(format!("cannot estimate the size of {what}"), cause))?;

    let mut columns_of: HashMap<TableId, Vec<ColumnRow>> = HashMap::new();
    for row in columns {
        columns_of.entry(TableId::new(&row.0, &row.1)).or_default().push(row);
    }
    let mut key_of: HashMap<TableId, Vec<String>> = HashMap::new();
    for (schema, name, column) in keys {
        key_of.entry(TableId::new(schema, name)).or_default().push(column);
    }
    let size_of: HashMap<TableId, u64> =
        sizes.into_iter().map(|(schema, name, rows)| (TableId::new(schema, name), rows.unwrap_or(0))).collect();
    tables
        .iter()
        .map(|table| {
            let rows = columns_of.remove(table).unwrap_or_default();
            let key = match key_override(table) {
                Some(key) => Key::Configured(key),
                None => Key::Primary(key_of.remove(table).unwrap_or_default()),
            };
            let estimated_rows = size_of.get(table).copied().unwrap_or(0);
            source_table(table, rows, key, estimated_rows)
        })
        .collect()
}

/// A table's key: configured (checked against its columns) or its primary key as the catalog has it.
enum Key {
    Configured(Vec<String>),
    Primary(Vec<String>),
}

/// The table `table` from its catalog rows.
fn source_table(table: &TableId, rows: Vec<ColumnRow>, key: Key, estimated_rows: u64) -> Result<SourceTable> {
    if rows.is_empty() {
        return Err(Error::config(format!(
            "table {table} does not exist, or the connector's user may not see it (grant SELECT on it)"
        ))
        .for_table(table));
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut types = Vec::with_capacity(rows.len());
    for (_, _, name, data_type, column_type, charset, default, extra, nullable, mariadb) in rows {
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
        let mut column = Column::new(&name, mysql_type.arrow_type(), column_type);
        let catalog = CatalogDefault { text: default.as_deref(), extra: &extra, nullable, mariadb };
        column.earlier_rows = catalog.earlier_rows(&column.data_type);
        columns.push(column);
        types.push(mysql_type);
    }
    let primary_key = match key {
        Key::Configured(key) => checked_key_option(table, &key, &columns)?,
        Key::Primary(key) => key,
    };
    let schema = TableSchema::new(table.clone(), columns, primary_key)?;
    Ok(SourceTable { schema, types, estimated_rows })
}

/// `?, ?, …`, one per value.
fn placeholders<T>(values: &[T]) -> String {
    vec!["?"; values.len()].join(", ")
}

/// `name` quoted as a MySQL identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`, quoted.
pub fn qualified(table: &TableId) -> String {
    format!("{}.{}", quote(&table.namespace), quote(&table.name))
}
