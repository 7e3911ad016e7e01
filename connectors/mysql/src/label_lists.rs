//! The ENUM and SET label lists of a binlog table map, checked before mysql_common reads them: it reserves
//! room for as many labels as a list's count claims (`Vec::with_capacity`), so a damaged or hostile map claiming
//! 2^40 labels in a few bytes aborts the process on a failed allocation, which no error handling can catch
//! (found by the `mysql_binlog` fuzz target). Each count must fit in the bytes that follow it, as real labels
//! (at least a length byte each) do. By hand because mysql_common exposes the optional metadata only through
//! the reader that allocates.

use mysql_async::binlog::events::TableMapEvent;
use mysql_common::proto::MySerialize;

/// `SET_STR_VALUE` and `ENUM_STR_VALUE`, the optional metadata fields holding label lists.
const LABEL_LIST_FIELDS: [u8; 2] = [5, 6];

/// Why a map's label lists cannot be read safely, or `Ok` if they can.
pub fn check_label_lists(map: &TableMapEvent<'_>) -> Result<(), String> {
    let mut encoded = Vec::new();
    map.serialize(&mut encoded);
    let mut fields = optional_metadata(&encoded).ok_or("its fixed part is truncated")?;
    while let Some((&field_type, rest)) = fields.split_first() {
        let (length, rest) = lenenc(rest).ok_or("an optional metadata field's length is truncated")?;
        let value = rest.get(..length).ok_or("an optional metadata field is longer than the map")?;
        fields = &rest[length..];
        if LABEL_LIST_FIELDS.contains(&field_type) {
            check_lists(value)?;
        }
    }
    Ok(())
}

/// Each column's list: a count, then as many length-prefixed labels.
fn check_lists(mut value: &[u8]) -> Result<(), String> {
    while !value.is_empty() {
        let (count, mut rest) = lenenc(value).ok_or("a label count is truncated")?;
        if count > rest.len() {
            return Err(format!("a column claims {count} ENUM or SET labels in {} bytes", rest.len()));
        }
        for _ in 0..count {
            let (length, after) = lenenc(rest).ok_or("a label's length is truncated")?;
            rest = after.get(length..).ok_or("a label is longer than the map")?;
        }
        value = rest;
    }
    Ok(())
}

/// The optional metadata of an encoded table map: what follows table id (6), flags (2), the database and
/// table names (length byte, bytes, a zero), the column count, types and metadata, and the null bitmap.
fn optional_metadata(encoded: &[u8]) -> Option<&[u8]> {
    let mut rest = encoded.get(8..)?;
    for _name in 0..2 {
        let length = usize::from(*rest.first()?);
        rest = rest.get(1 + length + 1..)?;
    }
    let (columns, after) = lenenc(rest)?;
    rest = after.get(columns..)?;
    let (metadata_length, after) = lenenc(rest)?;
    rest = after.get(metadata_length..)?;
    rest.get(columns.div_ceil(8)..)
}

/// A length-encoded integer (1, 3, 4 or 9 bytes) and the bytes after it; `None` if truncated or `0xFF`.
fn lenenc(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    let width = match first {
        0..=0xfa => return Some((usize::from(first), rest)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let mut value = [0u8; 8];
    value[..width].copy_from_slice(rest.get(..width)?);
    Some((usize::try_from(u64::from_le_bytes(value)).unwrap_or(usize::MAX), &rest[width..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_counts_must_fit_in_the_bytes_that_follow() {
        // Two columns: ("a", "bc"), then ("x").
        assert_eq!(check_lists(&[2, 1, b'a', 2, b'b', b'c', 1, 1, b'x']), Ok(()));
        assert!(check_lists(&[0xfe, 0, 0, 0, 0, 0, 1, 0, 0, 1, b'a']).is_err(), "2^40 labels in 2 bytes");
        assert!(check_lists(&[2, 1, b'a']).is_err(), "a second label missing");
        assert!(check_lists(&[1, 5, b'a']).is_err(), "a label longer than the bytes left");
        assert_eq!(lenenc(&[0xfc, 0x01, 0x02]), Some((0x0201, &[][..])));
    }
}
