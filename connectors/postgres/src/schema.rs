//! PostgreSQL types and the Arrow/Delta types they land as.
//!
//! | PostgreSQL | Arrow / Delta |
//! |---|---|
//! | `bool` | Boolean / boolean |
//! | `smallint`, `integer`, `bigint` | Int16, Int32, Int64 / short, integer, long |
//! | `oid` | Int64 / long |
//! | `real`, `double precision` | Float32, Float64 / float, double |
//! | `numeric(p,s)` with p ≤ 38 and s ≥ 0 | Decimal128(p,s) / decimal(p,s); `NaN` and `±Infinity` become null |
//! | `numeric` (unconstrained, p > 38 or s < 0) | Utf8 / string, the exact decimal text (`NaN`, `Infinity` kept) |
//! | `money` | Decimal128(19,2) / decimal(19,2) (the amount in a two-decimal currency) |
//! | `text`, `varchar`, `char(n)`, `name`, `"char"`, `citext`, enums | Utf8 / string |
//! | `json`, `jsonb`, `jsonpath`, `xml` | Utf8 / string (the document text) |
//! | `bytea` | Binary / binary |
//! | `date` | Date32 / date; `±infinity` becomes null |
//! | `timestamp` | Timestamp(µs) / timestamp_ntz; `±infinity` becomes null |
//! | `timestamptz` | Timestamp(µs, UTC) / timestamp; `±infinity` becomes null |
//! | `time`, `timetz` | Utf8 / string, `HH:MM:SS[.ffffff][+hh[:mm]]` (Delta has no time-of-day type) |
//! | `interval` | Utf8 / string, ISO 8601 (`P1Y2M3DT4H5M6.5S`) |
//! | `uuid`, `inet`, `cidr`, `macaddr`, `macaddr8`, `bit`, `varbit`, `pg_lsn`, `tsvector`, geometric types | Utf8 / string, PostgreSQL's text form |
//! | ranges | Utf8 / string, PostgreSQL's text form (`[1,10)`) |
//! | composites | Utf8 / string, a JSON object of the fields |
//! | arrays | List of the element type, one level per declared dimension |
//! | domains | as their base type |
//! | anything else (extension types) | Utf8 / string: hex of the binary form (`\x…`), with a warning |

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::arrow::datatypes::{DataType, Field, TimeUnit};

/// How a column's values are decoded from PostgreSQL's binary format, resolved from the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// `numeric(precision, scale)` that fits Decimal128.
    Numeric {
        precision: u8,
        scale: i8,
    },
    /// Unconstrained numeric (or one Decimal128 cannot hold): landed as exact decimal text.
    NumericText,
    Money,
    /// Every type whose binary form is its text (text, varchar, bpchar, name, citext, enums, json, xml).
    Text,
    /// `"char"`: one byte.
    Char,
    /// jsonb: a version byte then the text.
    Jsonb,
    /// jsonpath: a version byte then the text.
    JsonPath,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    /// inet and cidr.
    Inet,
    MacAddr,
    MacAddr8,
    /// bit and varbit.
    Bit,
    PgLsn,
    TsVector,
    Point,
    Line,
    Lseg,
    Box,
    Path,
    Polygon,
    Circle,
    Array {
        element: Box<PgType>,
        /// Declared dimensions (at least 1): each is one level of list nesting.
        dimensions: usize,
    },
    Range(Box<PgType>),
    Composite(Vec<(String, PgType)>),
    /// A type without a known binary form: landed as hex text.
    Unknown {
        name: String,
    },
}

impl PgType {
    /// The built-in type with this OID (the catalog's fixed OIDs), when its decoding needs no catalog lookup.
    pub fn builtin(oid: u32, typmod: i32) -> Option<PgType> {
        Some(match oid {
            16 => PgType::Bool,
            17 => PgType::Bytea,
            18 => PgType::Char,
            19 | 25 | 114 | 142 | 1042 | 1043 => PgType::Text,
            20 => PgType::Int8,
            21 => PgType::Int2,
            23 => PgType::Int4,
            26 => PgType::Oid,
            600 => PgType::Point,
            601 => PgType::Lseg,
            602 => PgType::Path,
            603 => PgType::Box,
            604 => PgType::Polygon,
            628 => PgType::Line,
            650 | 869 => PgType::Inet,
            700 => PgType::Float4,
            701 => PgType::Float8,
            718 => PgType::Circle,
            774 => PgType::MacAddr8,
            790 => PgType::Money,
            829 => PgType::MacAddr,
            1082 => PgType::Date,
            1083 => PgType::Time,
            1114 => PgType::Timestamp,
            1184 => PgType::TimestampTz,
            1186 => PgType::Interval,
            1266 => PgType::TimeTz,
            1560 | 1562 => PgType::Bit,
            1700 => numeric_type(typmod),
            2950 => PgType::Uuid,
            3220 => PgType::PgLsn,
            3614 => PgType::TsVector,
            3802 => PgType::Jsonb,
            4072 => PgType::JsonPath,
            _ => return None,
        })
    }

    /// The Arrow type values of this PostgreSQL type land as (see the module table).
    pub fn arrow_type(&self) -> DataType {
        match self {
            PgType::Bool => DataType::Boolean,
            PgType::Int2 => DataType::Int16,
            PgType::Int4 => DataType::Int32,
            PgType::Int8 | PgType::Oid => DataType::Int64,
            PgType::Float4 => DataType::Float32,
            PgType::Float8 => DataType::Float64,
            PgType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            PgType::Money => DataType::Decimal128(19, 2),
            PgType::Bytea => DataType::Binary,
            PgType::Date => DataType::Date32,
            PgType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            PgType::Array { element, dimensions } => {
                let mut data_type = element.arrow_type();
                for _ in 0..(*dimensions).max(1) {
                    data_type = DataType::List(Arc::new(Field::new("element", data_type, true)));
                }
                data_type
            }
            PgType::NumericText
            | PgType::Text
            | PgType::Char
            | PgType::Jsonb
            | PgType::JsonPath
            | PgType::Time
            | PgType::TimeTz
            | PgType::Interval
            | PgType::Uuid
            | PgType::Inet
            | PgType::MacAddr
            | PgType::MacAddr8
            | PgType::Bit
            | PgType::PgLsn
            | PgType::TsVector
            | PgType::Point
            | PgType::Line
            | PgType::Lseg
            | PgType::Box
            | PgType::Path
            | PgType::Polygon
            | PgType::Circle
            | PgType::Range(_)
            | PgType::Composite(_)
            | PgType::Unknown { .. } => DataType::Utf8,
        }
    }
}

/// Decimal precision Arrow's Decimal128 (and Delta's decimal) can hold.
const MAX_DECIMAL_PRECISION: i32 = 38;

/// `numeric(p,s)` typmod: `((p << 16) | (s & 0x7ff)) + 4`, scale an 11-bit signed number; -1 when unconstrained.
fn numeric_type(typmod: i32) -> PgType {
    if typmod < 4 {
        return PgType::NumericText;
    }
    let packed = typmod - 4;
    let precision = (packed >> 16) & 0xffff;
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    if (1..=MAX_DECIMAL_PRECISION).contains(&precision) && (0..=precision).contains(&scale) {
        // Both fit: precision ≤ 38 and 0 ≤ scale ≤ precision.
        PgType::Numeric { precision: precision as u8, scale: scale as i8 }
    } else {
        PgType::NumericText
    }
}

/// What the catalog says about one type OID, as read by [`crate::catalog`].
#[derive(Debug, Clone)]
pub struct CatalogType {
    pub name: String,
    /// `pg_type.typtype`: b base, c composite, d domain, e enum, r range, m multirange, p pseudo.
    pub kind: u8,
    pub element: u32,
    pub base_type: u32,
    pub base_typmod: i32,
    pub range_subtype: u32,
    /// Composite fields: name, type OID, typmod, declared array dimensions.
    pub fields: Vec<(String, u32, i32, i32)>,
}

/// Resolves type OIDs to [`PgType`]s from catalog entries fetched on demand.
pub fn resolve(
    oid: u32,
    typmod: i32,
    dimensions: i32,
    catalog: &HashMap<u32, CatalogType>,
    depth: usize,
) -> Result<PgType, u32> {
    if let Some(builtin) = PgType::builtin(oid, typmod) {
        return Ok(builtin);
    }
    let entry = catalog.get(&oid).ok_or(oid)?;
    // Recursive types (a composite containing itself through an array) are cut off as text.
    if depth > 8 {
        return Ok(PgType::Unknown { name: entry.name.clone() });
    }
    Ok(match entry.kind {
        b'e' => PgType::Text,
        b'd' => {
            let typmod = if typmod >= 0 { typmod } else { entry.base_typmod };
            resolve(entry.base_type, typmod, dimensions, catalog, depth + 1)?
        }
        b'r' => PgType::Range(Box::new(resolve(entry.range_subtype, -1, 0, catalog, depth + 1)?)),
        b'c' => {
            let mut fields = Vec::with_capacity(entry.fields.len());
            for (name, field_oid, field_typmod, field_dimensions) in &entry.fields {
                fields.push((name.clone(), resolve(*field_oid, *field_typmod, *field_dimensions, catalog, depth + 1)?));
            }
            PgType::Composite(fields)
        }
        b'b' if entry.element != 0 && entry.name.starts_with('_') => PgType::Array {
            element: Box::new(resolve(entry.element, typmod, 0, catalog, depth + 1)?),
            dimensions: usize::try_from(dimensions).unwrap_or(1).max(1),
        },
        b'b' if entry.name == "citext" => PgType::Text,
        _ => PgType::Unknown { name: entry.name.clone() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmods_map_to_decimals_when_they_fit() {
        let typmod = |precision: i32, scale: i32| ((precision << 16) | (scale & 0x7ff)) + 4;
        assert_eq!(numeric_type(typmod(12, 2)), PgType::Numeric { precision: 12, scale: 2 });
        assert_eq!(numeric_type(typmod(38, 38)), PgType::Numeric { precision: 38, scale: 38 });
        assert_eq!(numeric_type(typmod(39, 2)), PgType::NumericText);
        assert_eq!(numeric_type(typmod(5, -2)), PgType::NumericText);
        assert_eq!(numeric_type(-1), PgType::NumericText);
    }

    #[test]
    fn arrays_nest_one_list_per_dimension() {
        let matrix = PgType::Array { element: Box::new(PgType::Int4), dimensions: 2 };
        let DataType::List(outer) = matrix.arrow_type() else { panic!("not a list") };
        let DataType::List(inner) = outer.data_type() else { panic!("not nested") };
        assert_eq!(inner.data_type(), &DataType::Int32);
    }

    #[test]
    fn domains_resolve_to_their_base_type() {
        let mut catalog = HashMap::new();
        let domain = CatalogType {
            name: "positive".into(),
            kind: b'd',
            element: 0,
            base_type: 1700,
            base_typmod: ((10 << 16) | 3) + 4,
            range_subtype: 0,
            fields: vec![],
        };
        catalog.insert(90_000, domain);
        assert_eq!(resolve(90_000, -1, 0, &catalog, 0), Ok(PgType::Numeric { precision: 10, scale: 3 }));
        assert_eq!(resolve(90_001, -1, 0, &catalog, 0), Err(90_001));
    }
}
