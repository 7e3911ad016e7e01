//! What rows older than a column hold in it. PostgreSQL 11+ adds a column with a constant default without
//! touching the rows: it keeps the value once, in `pg_attribute.attmissingval`, and returns it for every row
//! written before. The log shows no change for those rows, so the sink writes the value into them when it adds
//! the column to the Delta table.

use connector_core::change_buffer::ColumnRows;
use connector_core::error::Result;
use connector_core::schema::{Column, EarlierRows};
use tokio_postgres::Client;

use crate::catalog::source_error;
use crate::codec::ColumnBuilder;
use crate::schema::PgType;

/// Gives each of `columns` (of relation `relation`, decoded as `types`) the value its earlier rows hold.
pub async fn fill_earlier_rows(client: &Client, relation: u32, columns: &mut [Column], types: &[PgType]) -> Result<()> {
    // `array_send` gives the one-element `attmissingval` array in binary send format, so the value decodes
    // exactly as the column's values do in the stream and the snapshot.
    let rows = client
        .query(
            "SELECT a.attname::text, CASE WHEN a.atthasmissing THEN array_send(a.attmissingval) END, \
             EXISTS (SELECT 1 FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) \
             FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&relation],
        )
        .await
        .map_err(|cause| source_error("cannot read the values of columns' earlier rows", cause))?;
    for (column, pg_type) in columns.iter_mut().zip(types) {
        let Some(row) = rows.iter().find(|row| row.get::<_, String>(0) == column.name) else {
            // Dropped since: the source no longer has the column, nothing to match.
            continue;
        };
        let missing: Option<Vec<u8>> = row.get(1);
        let has_default: bool = row.get(2);
        column.earlier_rows = match missing {
            Some(array) => decode_missing_value(&array, pg_type),
            // A default without a kept value: the default was volatile (`now()`, a sequence), which made
            // PostgreSQL rewrite the table, or a later rewrite folded the value into the rows.
            None if has_default => EarlierRows::Unknown(
                "it has a default (volatile, or set after the column was added) whose value PostgreSQL wrote into \
                 the rows by rewriting the table"
                    .to_string(),
            ),
            None => EarlierRows::Null,
        };
    }
    Ok(())
}

/// The only element of a one-dimensional array in binary send format: dimensions, null flag, element type,
/// then per dimension its length and lower bound, then each element as a length and its bytes.
fn decode_missing_value(array: &[u8], pg_type: &PgType) -> EarlierRows {
    let unknown = || EarlierRows::Unknown("its kept default could not be decoded".to_string());
    let word =
        |at: usize| array.get(at..at + 4).map(|bytes| i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    if word(0) != Some(1) || word(12) != Some(1) {
        return unknown();
    }
    let Some(length) = word(20) else { return unknown() };
    let value = match usize::try_from(length) {
        Ok(length) => match array.get(24..24 + length) {
            Some(bytes) => Some(bytes),
            None => return unknown(),
        },
        Err(_) => None,
    };
    let mut builder = ColumnBuilder::new(pg_type, 1);
    if builder.append(value).is_err() {
        return unknown();
    }
    EarlierRows::from_array(&builder.finish()).unwrap_or_else(|_| unknown())
}

#[cfg(test)]
mod tests {
    use connector_core::deltalake::datafusion::scalar::ScalarValue;

    use super::*;

    fn one_element_array(element_type: u32, value: Option<&[u8]>) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(1_i32.to_be_bytes());
        bytes.extend(i32::from(value.is_none()).to_be_bytes());
        bytes.extend(element_type.to_be_bytes());
        bytes.extend(1_i32.to_be_bytes());
        bytes.extend(1_i32.to_be_bytes());
        match value {
            Some(value) => {
                bytes.extend(i32::try_from(value.len()).expect("small").to_be_bytes());
                bytes.extend(value);
            }
            None => bytes.extend((-1_i32).to_be_bytes()),
        }
        bytes
    }

    #[test]
    fn the_kept_value_decodes_as_the_column_type() {
        let array = one_element_array(23, Some(&42_i32.to_be_bytes()));
        assert_eq!(decode_missing_value(&array, &PgType::Int4), EarlierRows::Value(ScalarValue::Int32(Some(42))));
        assert_eq!(decode_missing_value(&one_element_array(23, None), &PgType::Int4), EarlierRows::Null);
    }

    #[test]
    fn malformed_arrays_are_unknown_not_guessed() {
        let array = one_element_array(23, Some(&42_i32.to_be_bytes()));
        assert!(matches!(decode_missing_value(&array[..22], &PgType::Int4), EarlierRows::Unknown(_)));
        assert!(matches!(decode_missing_value(&array, &PgType::Int8), EarlierRows::Unknown(_)));
    }
}
