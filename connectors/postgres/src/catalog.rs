//! Reads table shapes and type definitions from the PostgreSQL catalog.

use std::collections::HashMap;

use connector_core::error::{Error, Result};
use connector_core::options::checked_key_option;
use connector_core::schema::{Column, TableId, TableSchema};
use tokio_postgres::Client;
use tracing::warn;

use crate::earlier_rows::fill_earlier_rows;
use crate::schema::{CatalogType, PgType, resolve};

/// A captured table: its engine schema plus what decoding its rows needs.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub schema: TableSchema,
    pub oid: u32,
    /// Decoding type of each column of `schema.columns`, in the same order.
    pub types: Vec<PgType>,
    /// Type OID and typmod of each column, to recognise a changed shape in the stream.
    pub wire_types: Vec<(u32, i32)>,
    /// `pg_class.relreplident`: d default (primary key), f full, i index, n nothing.
    pub replica_identity: u8,
    pub partitioned: bool,
    /// The planner's row estimate (`pg_class.reltuples`, summed over partitions): the progress bar's total.
    pub estimated_rows: u64,
}

pub(crate) fn source_error(what: impl Into<String>, cause: tokio_postgres::Error) -> Error {
    let retry = if cause.is_closed() || cause.code().is_none() {
        connector_core::error::Retry::WithBackoff
    } else {
        connector_core::error::Retry::No
    };
    let message = match cause.as_db_error() {
        Some(db) => format!("{}: {}", what.into(), db.message()),
        None => what.into(),
    };
    Error::new(connector_core::error::ErrorKind::Source, retry, message).caused_by(cause)
}

/// Every ordinary or partitioned table of `schemas` (partitions are captured through their root).
pub async fn tables_of_schemas(client: &Client, schemas: &[String]) -> Result<Vec<TableId>> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
             ORDER BY 1, 2",
            &[&schemas],
        )
        .await
        .map_err(|cause| source_error("cannot list the tables of the chosen schemas", cause))?;
    Ok(rows.iter().map(|row| TableId::new(row.get::<_, String>(0), row.get::<_, String>(1))).collect())
}

/// Reads a table's columns, key and replica identity. Generated columns are left out: PostgreSQL 15's
/// logical replication does not publish them, so they could not be kept up to date.
pub async fn describe_table(client: &Client, table: &TableId, key_override: Option<&[String]>) -> Result<SourceTable> {
    let relation = client
        .query_opt(
            "SELECT c.oid, c.relreplident::text, c.relkind::text, \
             (SELECT COALESCE(sum(GREATEST(p.reltuples, 0)), 0)::int8 FROM pg_class p \
              WHERE p.oid = c.oid OR p.oid IN (SELECT relid FROM pg_partition_tree(c.oid))) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            &[&table.namespace, &table.name],
        )
        .await
        .map_err(|cause| source_error(format!("cannot look up {table}"), cause))?
        .ok_or_else(|| {
            Error::config(format!(
                "table {table} does not exist (or this user cannot see it); check the name in --tables and the \
                 user's USAGE privilege on schema {}",
                table.namespace
            ))
            .for_table(table)
        })?;
    let oid: u32 = relation.get(0);
    let replica_identity = relation.get::<_, String>(1).bytes().next().unwrap_or(b'd');
    let kind: String = relation.get(2);
    let estimated_rows = u64::try_from(relation.get::<_, i64>(3)).unwrap_or(0);
    let columns = client
        .query(
            "SELECT a.attname, a.atttypid, a.atttypmod, a.attndims::int4, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.attgenerated = '' ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|cause| source_error(format!("cannot read the columns of {table}"), cause))?;
    let key_rows = client
        .query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1 AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&oid],
        )
        .await
        .map_err(|cause| source_error(format!("cannot read the primary key of {table}"), cause))?;
    let mut catalog = TypeCatalog::default();
    let mut schema_columns = Vec::with_capacity(columns.len());
    let mut types = Vec::with_capacity(columns.len());
    let mut wire_types = Vec::with_capacity(columns.len());
    for row in &columns {
        wire_types.push((row.get(1), row.get(2)));
        let name: String = row.get(0);
        let pg_type = catalog.resolve(client, row.get(1), row.get(2), row.get::<_, i32>(3)).await?;
        if let PgType::Unknown { name: type_name } = &pg_type {
            warn!(table = %table, column = %name, r#type = %type_name, "no decoder for this type; it lands as hex text");
        }
        schema_columns.push(Column::new(name, pg_type.arrow_type(), row.get::<_, String>(4)));
        types.push(pg_type);
    }
    let primary_key: Vec<String> = match key_override {
        Some(key) => checked_key_option(table, key, &schema_columns)?,
        None => key_rows.iter().map(|row| row.get(0)).collect(),
    };
    fill_earlier_rows(client, oid, &mut schema_columns, &types).await?;
    let schema = TableSchema::new(table.clone(), schema_columns, primary_key)?;
    Ok(SourceTable { schema, oid, types, wire_types, replica_identity, partitioned: kind == "p", estimated_rows })
}

/// Type definitions fetched from `pg_type` as columns need them.
#[derive(Debug, Default)]
pub struct TypeCatalog {
    entries: HashMap<u32, CatalogType>,
}

impl TypeCatalog {
    /// Resolves a column type, fetching catalog entries (domains, enums, composites, arrays, ranges) as needed.
    pub async fn resolve(&mut self, client: &Client, oid: u32, typmod: i32, dimensions: i32) -> Result<PgType> {
        loop {
            match resolve(oid, typmod, dimensions, &self.entries, 0) {
                Ok(pg_type) => return Ok(pg_type),
                Err(missing) => self.fetch(client, missing).await?,
            }
        }
    }

    async fn fetch(&mut self, client: &Client, oid: u32) -> Result<()> {
        let row = client
            .query_opt(
                "SELECT t.typname::text, t.typtype::text, t.typelem, t.typbasetype, t.typtypmod, t.typrelid, \
                 COALESCE((SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid), 0::oid) \
                 FROM pg_type t WHERE t.oid = $1",
                &[&oid],
            )
            .await
            .map_err(|cause| source_error(format!("cannot read type {oid} from pg_type"), cause))?
            .ok_or_else(|| Error::state(format!("type {oid} is not in pg_type")))?;
        let relation: u32 = row.get(5);
        let mut fields = Vec::new();
        if relation != 0 {
            let rows = client
                .query(
                    "SELECT attname::text, atttypid, atttypmod, attndims::int4 FROM pg_attribute \
                     WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    &[&relation],
                )
                .await
                .map_err(|cause| source_error(format!("cannot read the fields of type {oid}"), cause))?;
            fields = rows.iter().map(|row| (row.get(0), row.get(1), row.get(2), row.get::<_, i32>(3))).collect();
        }
        let entry = CatalogType {
            name: row.get(0),
            kind: row.get::<_, String>(1).bytes().next().unwrap_or(b'b'),
            element: row.get(2),
            base_type: row.get(3),
            base_typmod: row.get(4),
            range_subtype: row.get(6),
            fields,
        };
        self.entries.insert(oid, entry);
        Ok(())
    }
}
