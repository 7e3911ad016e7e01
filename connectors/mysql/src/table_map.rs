//! A table's shape as a binlog table map describes it. With `binlog_row_metadata=FULL` the map carries column
//! names, signedness, character sets, ENUM and SET labels and the primary key, so rows decode exactly as
//! they were written, whatever DDL ran since (information_schema only knows the table as it is now).

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::error::{Error, Result};
use connector_core::schema::{Column, TableId, TableSchema};
use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;

use crate::changes::TableShape;
use crate::label_lists::check_label_lists;
use crate::types::{BinlogColumn, MySqlType};

/// Collation id → character set name, from `information_schema.COLLATIONS`.
pub type Collations = HashMap<u16, String>;

/// The shape of the table a map describes. `primary_key` replaces the map's own key when the pipeline
/// configures one.
pub fn shape_of(
    map: &TableMapEvent<'_>,
    collations: &Collations,
    key_override: Option<&[String]>,
) -> Result<TableShape> {
    let id = TableId::new(map.database_name(), map.table_name());
    let count = map.columns_count() as usize;
    let unreadable = |what: &str| {
        Error::schema(
            &id,
            format!(
                "the binlog's table map of {id} lacks {what}: set `binlog_row_metadata=FULL` on the server (it is \
                 MINIMAL), then resync the table"
            ),
        )
    };
    let mut types = Vec::with_capacity(count);
    for index in 0..count {
        let column_type = map
            .get_column_type(index)
            .map_err(|cause| {
                Error::schema(&id, format!("a column of {id} has a type the binlog reader does not know: {cause}"))
            })?
            .ok_or_else(|| unreadable("column types"))?;
        types.push(column_type);
    }
    let mut names: Vec<String> = Vec::new();
    let mut unsigned = vec![false; count];
    let mut charsets: Vec<Option<u16>> = vec![None; count];
    let mut enum_labels: Vec<Option<Arc<[String]>>> = vec![None; count];
    let mut set_labels: Vec<Option<Arc<[String]>>> = vec![None; count];
    let mut primary_key: Vec<usize> = Vec::new();
    let numeric: Vec<usize> = (0..count)
        .filter(|&index| map.get_raw_column_type(index).ok().flatten().is_some_and(|raw| raw.is_numeric_type()))
        .collect();
    let character: Vec<usize> = (0..count).filter(|&index| is_character(types[index])).collect();
    let enums: Vec<usize> = (0..count).filter(|&index| types[index] == ColumnType::MYSQL_TYPE_ENUM).collect();
    let sets: Vec<usize> = (0..count).filter(|&index| types[index] == ColumnType::MYSQL_TYPE_SET).collect();
    let malformed =
        |cause: std::io::Error| Error::state(format!("the binlog's table map of {id} is malformed: {cause}"));
    check_label_lists(map)
        .map_err(|what| Error::state(format!("the binlog's table map of {id} is malformed: {what}")))?;
    for field in map.iter_optional_meta() {
        match field.map_err(malformed)? {
            OptionalMetadataField::Signedness(flags) => {
                for (position, &index) in numeric.iter().enumerate() {
                    unsigned[index] = flags.get(position).is_some_and(|flag| *flag);
                }
            }
            OptionalMetadataField::DefaultCharset(default) => {
                for &index in &character {
                    charsets[index] = Some(default.default_charset());
                }
                for entry in default.iter_non_default() {
                    let entry = entry.map_err(malformed)?;
                    if let Some(&index) = character.get(entry.column_index() as usize) {
                        charsets[index] = Some(entry.charset());
                    }
                }
            }
            OptionalMetadataField::ColumnCharset(list) => {
                for (position, charset) in list.iter_charsets().enumerate() {
                    if let Some(&index) = character.get(position) {
                        charsets[index] = Some(charset.map_err(malformed)?);
                    }
                }
            }
            OptionalMetadataField::ColumnName(list) => {
                for name in list.iter_names() {
                    names.push(name.map_err(malformed)?.name().into_owned());
                }
            }
            OptionalMetadataField::EnumStrValue(list) => {
                for (position, values) in list.iter_values().enumerate() {
                    let values = values.map_err(malformed)?;
                    if let Some(&index) = enums.get(position) {
                        enum_labels[index] =
                            Some(values.values().iter().map(|value| value.value().into_owned()).collect());
                    }
                }
            }
            OptionalMetadataField::SetStrValue(list) => {
                for (position, values) in list.iter_values().enumerate() {
                    let values = values.map_err(malformed)?;
                    if let Some(&index) = sets.get(position) {
                        set_labels[index] =
                            Some(values.values().iter().map(|value| value.value().into_owned()).collect());
                    }
                }
            }
            OptionalMetadataField::SimplePrimaryKey(key) => {
                for index in key.iter_indexes() {
                    primary_key.push(index.map_err(malformed)? as usize);
                }
            }
            OptionalMetadataField::PrimaryKeyWithPrefix(key) => {
                for part in key.iter_keys() {
                    primary_key.push(part.map_err(malformed)?.column_index() as usize);
                }
            }
            _ => {}
        }
    }
    if names.len() != count {
        return Err(unreadable("column names"));
    }
    let mut columns = Vec::with_capacity(count);
    let mut mysql_types = Vec::with_capacity(count);
    for index in 0..count {
        let charset = match charsets[index] {
            Some(collation) => Some(collations.get(&collation).map(String::as_str).ok_or_else(|| {
                Error::schema(
                    &id,
                    format!("column `{}` of {id} uses collation {collation}, unknown to the server", names[index]),
                )
            })?),
            None => None,
        };
        let column = BinlogColumn {
            column_type: types[index],
            metadata: column_metadata(map, index, types[index]).ok_or_else(|| {
                Error::state(format!(
                    "the binlog's table map of {id} is malformed: the type metadata of column `{}` is missing or \
                     shorter than its type needs",
                    names[index]
                ))
            })?,
            unsigned: unsigned[index],
            charset: charset.filter(|name| *name != "binary"),
            enum_labels: enum_labels[index].clone(),
            set_labels: set_labels[index].clone(),
        };
        let mysql_type = MySqlType::from_binlog(&column).ok_or_else(|| {
            Error::schema(
                &id,
                format!(
                    "column `{}` of {id} has binlog type {:?}{}, which the connector cannot capture",
                    names[index],
                    types[index],
                    charset.map(|name| format!(" in character set {name}")).unwrap_or_default()
                ),
            )
        })?;
        columns.push(Column::new(&names[index], mysql_type.arrow_type(), format!("{:?}", types[index])));
        mysql_types.push(mysql_type);
    }
    let key: Vec<String> = match key_override {
        Some(key) => key.to_vec(),
        None => primary_key.iter().filter_map(|&index| names.get(index).cloned()).collect(),
    };
    Ok(TableShape { schema: TableSchema::new(id, columns, key)?, types: mysql_types })
}

/// Columns the table map lists character sets for: text and blob types, not ENUM and SET.
fn is_character(column_type: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        column_type,
        MYSQL_TYPE_STRING
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
    )
}

/// Column `index`'s type metadata, if it holds every byte mysql_common's row reader will index for a column of
/// `column_type` (the real type): that reader indexes the bytes without checking their length, so a map whose
/// metadata is cut short would panic the process at its first row (found by the `mysql_binlog` fuzz target).
fn column_metadata<'a>(map: &'a TableMapEvent<'_>, index: usize, column_type: ColumnType) -> Option<&'a [u8]> {
    use ColumnType::*;
    let read = match column_type {
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_BIT => 2,
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_VECTOR
        | MYSQL_TYPE_DOUBLE
        | MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_JSON
        | MYSQL_TYPE_TYPED_ARRAY => 1,
        _ => 0,
    };
    map.get_column_metadata(index).filter(|metadata| metadata.len() >= read)
}
