//! What rows older than a column hold in it. MySQL and MariaDB add a column to existing rows without a row
//! event in the binlog (instantly, or by a copy the binlog shows only as the ALTER statement): every earlier
//! row takes the column's default. The sink writes that value into the rows it holds when it adds the column
//! to the Delta table.

use connector_core::arrow::datatypes::DataType;
use connector_core::error::Result;
use connector_core::schema::{Column, EarlierRows, TableId};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::catalog::source_error;

/// Gives each of `columns` of `table` the value its earlier rows hold, from the catalog's current default (a
/// default changed after the column was added is taken as the rows' value: the catalog keeps no other).
pub async fn fill_earlier_rows(conn: &mut Conn, table: &TableId, columns: &mut [Column]) -> Result<()> {
    type DefaultRow = (String, Option<String>, String, bool, bool);
    let rows: Vec<DefaultRow> = conn
        .exec(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_DEFAULT AS CHAR), CAST(EXTRA AS CHAR), \
             IS_NULLABLE = 'YES', VERSION() LIKE '%MariaDB%' FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.namespace, &table.name),
        )
        .await
        .map_err(|cause| source_error(format!("cannot read the column defaults of {table}"), cause))?;
    for column in columns {
        if let Some((_, default, extra, nullable, mariadb)) = rows.iter().find(|row| row.0 == column.name) {
            let catalog = CatalogDefault { text: default.as_deref(), extra, nullable: *nullable, mariadb: *mariadb };
            column.earlier_rows = catalog.earlier_rows(&column.data_type);
        }
    }
    Ok(())
}

/// A column's default as `information_schema.COLUMNS` shows it.
#[derive(Debug)]
pub struct CatalogDefault<'a> {
    /// `COLUMN_DEFAULT`: MySQL shows literals bare and expressions with `DEFAULT_GENERATED` in `EXTRA`;
    /// MariaDB quotes string literals, shows `NULL` as text and expressions bare.
    pub text: Option<&'a str>,
    pub extra: &'a str,
    pub nullable: bool,
    pub mariadb: bool,
}

impl CatalogDefault<'_> {
    /// What rows older than the column hold in it.
    pub fn earlier_rows(&self, data_type: &DataType) -> EarlierRows {
        let expression = |text: &str| {
            EarlierRows::Unknown(format!("its default is the expression `{text}`, evaluated when the column was added"))
        };
        if matches!(data_type, DataType::Binary | DataType::FixedSizeBinary(_) | DataType::LargeBinary) {
            return match self.text {
                None if self.nullable => EarlierRows::Null,
                _ => EarlierRows::Unknown("its default is binary, which the catalog does not show exactly".into()),
            };
        }
        match self.text {
            None if self.nullable => EarlierRows::Null,
            // NOT NULL without a default: the server fills the type's implicit default.
            None => implicit_default(data_type),
            Some("NULL") if self.mariadb => EarlierRows::Null,
            Some(text) if self.mariadb => match text.strip_prefix('\'').and_then(|text| text.strip_suffix('\'')) {
                Some(quoted) => EarlierRows::from_text(&quoted.replace("''", "'"), data_type),
                None if text.parse::<f64>().is_ok() => EarlierRows::from_text(text, data_type),
                None => expression(text),
            },
            Some(text) if self.extra.contains("DEFAULT_GENERATED") => expression(text),
            Some(text) => EarlierRows::from_text(text, data_type),
        }
    }
}

/// What a NOT NULL column added without a default holds in earlier rows: zero or the empty string.
fn implicit_default(data_type: &DataType) -> EarlierRows {
    if data_type.is_numeric() || *data_type == DataType::Boolean {
        EarlierRows::from_text("0", data_type)
    } else if *data_type == DataType::Utf8 {
        EarlierRows::from_text("", data_type)
    } else {
        EarlierRows::Unknown(format!(
            "it is NOT NULL without a default, whose implicit value for {data_type} is not known"
        ))
    }
}

#[cfg(test)]
mod tests {
    use connector_core::deltalake::datafusion::scalar::ScalarValue;

    use super::*;

    fn read(text: Option<&str>, extra: &str, nullable: bool, mariadb: bool, data_type: &DataType) -> EarlierRows {
        CatalogDefault { text, extra, nullable, mariadb }.earlier_rows(data_type)
    }

    fn text(value: &str) -> EarlierRows {
        EarlierRows::Value(ScalarValue::Utf8(Some(value.into())))
    }

    #[test]
    fn mariadb_quotes_strings_and_shows_null_and_expressions_bare() {
        assert_eq!(read(Some("'it''s'"), "", true, true, &DataType::Utf8), text("it's"));
        assert_eq!(read(Some("NULL"), "", true, true, &DataType::Utf8), EarlierRows::Null);
        assert_eq!(read(Some("7"), "", true, true, &DataType::Int32), EarlierRows::Value(ScalarValue::Int32(Some(7))));
        assert!(matches!(read(Some("current_timestamp()"), "", true, true, &DataType::Utf8), EarlierRows::Unknown(_)));
    }

    #[test]
    fn mysql_shows_literals_bare_and_marks_expressions() {
        assert_eq!(read(Some("NULL"), "", true, false, &DataType::Utf8), text("NULL"));
        assert_eq!(read(None, "", true, false, &DataType::Utf8), EarlierRows::Null);
        assert!(matches!(
            read(Some("CURRENT_TIMESTAMP"), "DEFAULT_GENERATED", true, false, &DataType::Utf8),
            EarlierRows::Unknown(_)
        ));
    }

    #[test]
    fn not_null_without_default_is_the_implicit_zero() {
        assert_eq!(read(None, "", false, false, &DataType::Int64), EarlierRows::Value(ScalarValue::Int64(Some(0))));
        assert_eq!(read(None, "", false, true, &DataType::Utf8), text(""));
        assert!(matches!(read(None, "", false, false, &DataType::Date32), EarlierRows::Unknown(_)));
    }
}
