//! MySQL column types and the Delta (Arrow) type each lands as. A type is read either from
//! `information_schema.COLUMNS` (for the snapshot) or from a binlog table map with full row metadata (while
//! streaming); both give the same [`MySqlType`], so snapshot rows and streamed rows share one table shape.

use std::sync::Arc;

use connector_core::arrow::datatypes::{DataType, TimeUnit};
use mysql_async::consts::ColumnType;

/// How a text column's bytes are encoded in the binlog (the snapshot asks the server for UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    /// Any other character set encoding_rs knows (latin1 is windows-1252, as in MySQL).
    Other(&'static encoding_rs::Encoding),
}

impl TextEncoding {
    /// The encoding of a MySQL character set name; `None` when it has no text meaning (`binary`) or is unknown.
    pub fn of_charset(charset: &str) -> Option<TextEncoding> {
        match charset {
            "utf8" | "utf8mb3" | "utf8mb4" | "ascii" => Some(TextEncoding::Utf8),
            "latin1" => Some(TextEncoding::Other(encoding_rs::WINDOWS_1252)),
            "binary" => None,
            other => encoding_rs::Encoding::for_label(mysql_charset_label(other).as_bytes()).map(TextEncoding::Other),
        }
    }
}

/// encoding_rs labels for MySQL character set names that differ from the WHATWG ones.
fn mysql_charset_label(charset: &str) -> &str {
    match charset {
        "cp1250" => "windows-1250",
        "cp1251" => "windows-1251",
        "cp1256" => "windows-1256",
        "cp1257" => "windows-1257",
        "sjis" | "cp932" => "shift_jis",
        "ujis" | "eucjpms" => "euc-jp",
        "euckr" => "euc-kr",
        "gb2312" | "gbk" => "gbk",
        "gb18030" => "gb18030",
        "big5" => "big5",
        "koi8r" => "koi8-r",
        "koi8u" => "koi8-u",
        "greek" => "iso-8859-7",
        "hebrew" => "iso-8859-8",
        "latin2" => "iso-8859-2",
        "latin5" => "iso-8859-9",
        "latin7" => "iso-8859-13",
        other => other,
    }
}

/// A MySQL column type, as far as decoding and the Delta type need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MySqlType {
    /// TINYINT (1 byte) … BIGINT (8 bytes).
    Integer {
        bytes: u8,
        unsigned: bool,
    },
    Decimal {
        precision: u8,
        scale: u8,
    },
    Float,
    Double,
    Bit {
        bits: u16,
    },
    Text(TextEncoding),
    Binary,
    /// `BINARY(n)`: the server pads values to `length` bytes with zeros and reads them back padded, but the binlog
    /// stores them without their trailing zeros.
    FixedBinary {
        length: usize,
    },
    Enum(Arc<[String]>),
    Set(Arc<[String]>),
    Date,
    Time,
    DateTime,
    Timestamp,
    Year,
    Json,
    Geometry,
}

/// Widest DECIMAL MySQL and MariaDB allow.
const MAX_DECIMAL_PRECISION: u8 = 65;

/// Widest DECIMAL that fits Delta's decimal type; wider ones land as exact strings.
const MAX_DELTA_PRECISION: u8 = 38;

impl MySqlType {
    /// The Delta type. Lossless everywhere: unsigned integers widen, BIGINT UNSIGNED becomes decimal(20,0).
    pub fn arrow_type(&self) -> DataType {
        match self {
            MySqlType::Integer { bytes: 1, unsigned: false } => DataType::Int8,
            MySqlType::Integer { bytes: 1, unsigned: true } | MySqlType::Integer { bytes: 2, unsigned: false } => {
                DataType::Int16
            }
            MySqlType::Integer { bytes: 2 | 3, unsigned: true }
            | MySqlType::Integer { bytes: 3 | 4, unsigned: false } => DataType::Int32,
            MySqlType::Integer { bytes: 4, unsigned: true } | MySqlType::Integer { unsigned: false, .. } => {
                DataType::Int64
            }
            MySqlType::Integer { unsigned: true, .. } => DataType::Decimal128(20, 0),
            MySqlType::Decimal { precision, scale } if *precision <= MAX_DELTA_PRECISION => {
                DataType::Decimal128(*precision, *scale as i8)
            }
            MySqlType::Decimal { .. } => DataType::Utf8,
            MySqlType::Float => DataType::Float32,
            MySqlType::Double => DataType::Float64,
            MySqlType::Bit { bits: 1 } => DataType::Boolean,
            MySqlType::Bit { bits } if *bits < 64 => DataType::Int64,
            MySqlType::Bit { .. } => DataType::Decimal128(20, 0),
            MySqlType::Text(_) | MySqlType::Enum(_) | MySqlType::Set(_) | MySqlType::Json | MySqlType::Time => {
                DataType::Utf8
            }
            MySqlType::Binary | MySqlType::FixedBinary { .. } | MySqlType::Geometry => DataType::Binary,
            MySqlType::Date => DataType::Date32,
            MySqlType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            MySqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            MySqlType::Year => DataType::Int16,
        }
    }

    /// The type of an `information_schema.COLUMNS` row: `DATA_TYPE`, `COLUMN_TYPE` (with `unsigned`, lengths
    /// and enum labels) and `CHARACTER_SET_NAME`. `None` for a type the connector cannot capture.
    pub fn from_catalog(data_type: &str, column_type: &str, charset: Option<&str>) -> Option<MySqlType> {
        let unsigned = column_type.contains("unsigned");
        let integer = |bytes| Some(MySqlType::Integer { bytes, unsigned });
        let text = || match charset {
            Some(charset) => TextEncoding::of_charset(charset).map(MySqlType::Text),
            None => Some(MySqlType::Binary),
        };
        match data_type {
            "tinyint" => integer(1),
            "smallint" => integer(2),
            "mediumint" => integer(3),
            "int" | "integer" => integer(4),
            "bigint" => integer(8),
            "decimal" | "numeric" => {
                let (precision, scale) = parenthesised_pair(column_type).unwrap_or((10, 0));
                Some(MySqlType::Decimal { precision, scale })
            }
            "float" => Some(MySqlType::Float),
            "double" | "real" => Some(MySqlType::Double),
            "bit" => Some(MySqlType::Bit { bits: parenthesised_pair(column_type).map_or(1, |(bits, _)| bits.into()) }),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => text(),
            "binary" => Some(MySqlType::FixedBinary {
                length: parenthesised_pair(column_type).map_or(1, |(length, _)| length.into()),
            }),
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Some(MySqlType::Binary),
            "enum" => Some(MySqlType::Enum(quoted_labels(column_type).into())),
            "set" => Some(MySqlType::Set(quoted_labels(column_type).into())),
            "date" => Some(MySqlType::Date),
            "time" => Some(MySqlType::Time),
            "datetime" => Some(MySqlType::DateTime),
            "timestamp" => Some(MySqlType::Timestamp),
            "year" => Some(MySqlType::Year),
            "json" => Some(MySqlType::Json),
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
            | "geometrycollection" | "geomcollection" => Some(MySqlType::Geometry),
            _ => None,
        }
    }

    /// The type a binlog table map gives a column: its binlog type and metadata, plus the optional metadata of
    /// `binlog_row_metadata=FULL` (signedness, character set, enum and set labels).
    pub fn from_binlog(column: &BinlogColumn<'_>) -> Option<MySqlType> {
        use ColumnType::*;
        let meta = column.metadata;
        let integer = |bytes| Some(MySqlType::Integer { bytes, unsigned: column.unsigned });
        let text_or_binary = || match column.charset {
            Some(charset) => TextEncoding::of_charset(charset).map(MySqlType::Text),
            None => Some(MySqlType::Binary),
        };
        match column.column_type {
            MYSQL_TYPE_TINY => integer(1),
            MYSQL_TYPE_SHORT => integer(2),
            MYSQL_TYPE_INT24 => integer(3),
            MYSQL_TYPE_LONG => integer(4),
            MYSQL_TYPE_LONGLONG => integer(8),
            MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => {
                let (precision, scale) = (*meta.first()?, *meta.get(1)?);
                // MySQL's own bounds. Rows of a map outside them are never decoded: mysql_common would size a
                // buffer from the impossible digit counts (found by fuzzing: an allocation of exabytes).
                let possible = (1..=MAX_DECIMAL_PRECISION).contains(&precision) && scale <= precision.min(30);
                possible.then_some(MySqlType::Decimal { precision, scale })
            }
            MYSQL_TYPE_FLOAT => Some(MySqlType::Float),
            MYSQL_TYPE_DOUBLE => Some(MySqlType::Double),
            MYSQL_TYPE_BIT => Some(MySqlType::Bit { bits: u16::from(*meta.get(1)?) * 8 + u16::from(*meta.first()?) }),
            MYSQL_TYPE_ENUM => Some(MySqlType::Enum(column.enum_labels.clone()?)),
            MYSQL_TYPE_SET => Some(MySqlType::Set(column.set_labels.clone()?)),
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Some(MySqlType::Date),
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Some(MySqlType::Time),
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Some(MySqlType::DateTime),
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Some(MySqlType::Timestamp),
            MYSQL_TYPE_YEAR => Some(MySqlType::Year),
            MYSQL_TYPE_JSON => Some(MySqlType::Json),
            MYSQL_TYPE_GEOMETRY => Some(MySqlType::Geometry),
            MYSQL_TYPE_STRING if column.charset.is_none() => {
                Some(MySqlType::FixedBinary { length: fixed_string_length(meta)? })
            }
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => text_or_binary(),
            _ => None,
        }
    }
}

/// What a binlog table map says about one column.
#[derive(Debug, Clone)]
pub struct BinlogColumn<'a> {
    pub column_type: ColumnType,
    pub metadata: &'a [u8],
    pub unsigned: bool,
    /// Character set name; `None` for binary columns.
    pub charset: Option<&'a str>,
    pub enum_labels: Option<Arc<[String]>>,
    pub set_labels: Option<Arc<[String]>>,
}

/// The byte length of a `CHAR`/`BINARY` column from its table-map metadata: the real type's byte, whose two
/// unused type bits hold the length's bits 8 and 9 (inverted) for columns longer than 255 bytes, then the
/// length's low byte (MySQL's `Field_string::do_save_field_metadata`).
fn fixed_string_length(meta: &[u8]) -> Option<usize> {
    let (&real_type, &low) = (meta.first()?, meta.get(1)?);
    let high = usize::from((real_type & 0x30) ^ 0x30) << 4;
    Some(high | usize::from(low))
}

/// `(10,2)` in `decimal(10,2)`, or `(8, 0)` for `bit(8)`.
fn parenthesised_pair(column_type: &str) -> Option<(u8, u8)> {
    let inside = column_type.split_once('(')?.1.split_once(')')?.0;
    let mut numbers = inside.split(',').map(|number| number.trim().parse::<u8>().ok());
    let first = numbers.next()??;
    let second = numbers.next().flatten().unwrap_or(0);
    Some((first, second))
}

/// The labels of `enum('a','b''c')` or `set(...)`, unquoted.
fn quoted_labels(column_type: &str) -> Vec<String> {
    let Some((_, inside)) = column_type.split_once('(') else { return Vec::new() };
    let mut labels = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    let mut chars = inside.chars().peekable();
    while let Some(character) = chars.next() {
        match (in_quote, character) {
            (false, '\'') => in_quote = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                current.push('\'');
            }
            (true, '\'') => {
                in_quote = false;
                labels.push(std::mem::take(&mut current));
            }
            (true, '\\') => {
                if let Some(escaped) = chars.next() {
                    current.push(escaped);
                }
            }
            (true, other) => current.push(other),
            (false, _) => {}
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_with_impossible_decimals_are_refused() {
        let decimal = |metadata: &'static [u8]| BinlogColumn {
            column_type: ColumnType::MYSQL_TYPE_NEWDECIMAL,
            metadata,
            unsigned: false,
            charset: None,
            enum_labels: None,
            set_labels: None,
        };
        assert_eq!(MySqlType::from_binlog(&decimal(&[12, 4])), Some(MySqlType::Decimal { precision: 12, scale: 4 }));
        assert_eq!(MySqlType::from_binlog(&decimal(&[65, 30])), Some(MySqlType::Decimal { precision: 65, scale: 30 }));
        for impossible in [&[4_u8, 12][..], &[66, 0], &[0, 0], &[65, 31]] {
            assert_eq!(MySqlType::from_binlog(&decimal(impossible)), None, "{impossible:?}");
        }
    }

    #[test]
    fn catalog_types_map_losslessly() {
        let cases = [
            ("tinyint", "tinyint(4)", None, DataType::Int8),
            ("tinyint", "tinyint(3) unsigned", None, DataType::Int16),
            ("int", "int(10) unsigned", None, DataType::Int64),
            ("bigint", "bigint(20) unsigned", None, DataType::Decimal128(20, 0)),
            ("decimal", "decimal(65,30)", None, DataType::Utf8),
            ("decimal", "decimal(12,4)", None, DataType::Decimal128(12, 4)),
            ("bit", "bit(1)", None, DataType::Boolean),
            ("bit", "bit(12)", None, DataType::Int64),
            ("varchar", "varchar(10)", Some("latin1"), DataType::Utf8),
            ("varbinary", "varbinary(10)", None, DataType::Binary),
            ("timestamp", "timestamp(6)", None, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        ];
        for (data_type, column_type, charset, expected) in cases {
            let mapped = MySqlType::from_catalog(data_type, column_type, charset).expect(column_type);
            assert_eq!(mapped.arrow_type(), expected, "{column_type}");
        }
    }

    #[test]
    fn fixed_binary_lengths_come_from_catalog_and_table_map() {
        assert_eq!(MySqlType::from_catalog("binary", "binary(16)", None), Some(MySqlType::FixedBinary { length: 16 }));
        assert_eq!(MySqlType::from_catalog("binary", "binary", None), Some(MySqlType::FixedBinary { length: 1 }));
        // Real type 0xfe (MYSQL_TYPE_STRING), 16 bytes; and a 300-byte (256 + 44) CHAR whose bit 8 lives in the
        // type byte.
        assert_eq!(fixed_string_length(&[0xfe, 16]), Some(16));
        assert_eq!(fixed_string_length(&[0xfe ^ 0x10, 44]), Some(300));
        assert_eq!(fixed_string_length(&[0xfe]), None);
    }

    #[test]
    fn enum_labels_are_unquoted() {
        assert_eq!(quoted_labels("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
    }

    #[test]
    fn latin1_is_windows_1252() {
        assert_eq!(TextEncoding::of_charset("latin1"), Some(TextEncoding::Other(encoding_rs::WINDOWS_1252)));
        assert_eq!(TextEncoding::of_charset("binary"), None);
    }
}
