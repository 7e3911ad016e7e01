//! The type a file's column is stored as in Delta, which has no unsigned integers, no nanosecond timestamps, no
//! times of day and no dictionary or view encodings: each becomes the nearest type holding every value.

use std::sync::Arc;

use connector_core::arrow::datatypes::{DataType, Field, TimeUnit};

/// The Delta-storable type of `data_type`, looking into structs and lists.
pub fn stored_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Null => DataType::Utf8,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Float16 => DataType::Float32,
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Time32(_) | DataType::Time64(_) => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => DataType::Binary,
        DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, zone) => {
            DataType::Timestamp(TimeUnit::Microsecond, zone.as_ref().map(|_| Arc::from("UTC")))
        }
        DataType::Dictionary(_, values) => stored_type(values),
        DataType::Decimal32(precision, scale) | DataType::Decimal64(precision, scale) => {
            DataType::Decimal128(*precision, *scale)
        }
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(|field| stored_field(field)).collect()),
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) | DataType::LargeListView(item) => {
            DataType::List(Arc::new(stored_field(item)))
        }
        DataType::FixedSizeList(item, _) => DataType::List(Arc::new(stored_field(item))),
        DataType::Map(entries, sorted) => DataType::Map(Arc::new(stored_field(entries)), *sorted),
        other => other.clone(),
    }
}

/// `field` with its stored type, nullable (a later file may lack a value).
pub fn stored_field(field: &Field) -> Field {
    Field::new(field.name(), stored_type(field.data_type()), true)
}

/// The type two files' columns of the same name are stored as together: integers of any width as 64-bit ones,
/// integers and floats as doubles, anything else that differs as text.
pub fn common_type(a: &DataType, b: &DataType) -> DataType {
    if a == b {
        return a.clone();
    }
    let integer = |t: &DataType| matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64);
    let float = |t: &DataType| matches!(t, DataType::Float32 | DataType::Float64);
    match (a, b) {
        (a, b) if integer(a) && integer(b) => DataType::Int64,
        (a, b) if (integer(a) || float(a)) && (integer(b) || float(b)) => DataType::Float64,
        (DataType::Date32, DataType::Timestamp(_, zone)) | (DataType::Timestamp(_, zone), DataType::Date32) => {
            DataType::Timestamp(TimeUnit::Microsecond, zone.clone())
        }
        _ => DataType::Utf8,
    }
}
