//! A table's columns built value by value from text (a CSV field, a JSON value's literal), by the rules
//! [`crate::text_types::cast_text`] casts whole text columns with, so that a value reads the same whichever
//! decoder took it. For the one-pass decoders of CSV and JSON, which skip building text columns first.

use std::sync::Arc;

use connector_core::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, new_null_array,
};
use connector_core::arrow::compute::cast;
use connector_core::arrow::compute::kernels::cast_utils::Parser;
use connector_core::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, TimeUnit};

use crate::rescued_data::RESCUED_DATA;
use crate::text_types::{TimeFormats, boolean_text};
use crate::text_values::DecimalShape;

/// What a column's values are read as.
#[derive(Debug, Clone)]
pub enum ColumnKind {
    Text,
    /// An integer of `data_type`, within `min..=max`.
    Integer {
        data_type: DataType,
        min: i64,
        max: i64,
    },
    Double,
    Boolean,
    Decimal {
        precision: u8,
        scale: i8,
        shape: DecimalShape,
    },
    Date,
    Timestamp {
        zone: Option<Arc<str>>,
    },
    /// `_rescued_data`, filled once every row is read.
    Rescued,
}

impl ColumnKind {
    /// `None` for a type these builders do not build (nested types, binary, other widths and units).
    pub fn of(field: &Field) -> Option<Self> {
        if field.name() == RESCUED_DATA {
            return Some(ColumnKind::Rescued);
        }
        let integer = |min: i64, max: i64| ColumnKind::Integer { data_type: field.data_type().clone(), min, max };
        Some(match field.data_type() {
            DataType::Utf8 => ColumnKind::Text,
            DataType::Int64 => integer(i64::MIN, i64::MAX),
            DataType::Int32 => integer(i32::MIN.into(), i32::MAX.into()),
            DataType::Int16 => integer(i16::MIN.into(), i16::MAX.into()),
            DataType::Int8 => integer(i8::MIN.into(), i8::MAX.into()),
            DataType::Float64 => ColumnKind::Double,
            DataType::Boolean => ColumnKind::Boolean,
            DataType::Decimal128(precision, scale) => ColumnKind::Decimal {
                precision: *precision,
                scale: *scale,
                shape: DecimalShape::new(*precision, u8::try_from(*scale).ok()?)?,
            },
            DataType::Date32 => ColumnKind::Date,
            DataType::Timestamp(TimeUnit::Microsecond, zone) => ColumnKind::Timestamp { zone: zone.clone() },
            _ => return None,
        })
    }

    /// The kinds of `table`'s columns; `None` if one is not built here.
    pub fn of_table(table: &[Field]) -> Option<Vec<Self>> {
        table.iter().map(ColumnKind::of).collect()
    }
}

/// A column being built.
#[derive(Debug)]
pub enum ColumnBuilder {
    Text(StringBuilder),
    Integer { values: Int64Builder, data_type: DataType, min: i64, max: i64 },
    Double(Float64Builder),
    Boolean(BooleanBuilder),
    Decimal(Decimal128Builder, DecimalShape),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Rescued { rows: usize },
}

impl ColumnBuilder {
    /// A builder with room for `rows` values; `None` for a decimal type arrow refuses.
    pub fn new(kind: &ColumnKind, rows: usize) -> Option<Self> {
        Some(match kind {
            ColumnKind::Text => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 8)),
            ColumnKind::Integer { data_type, min, max } => ColumnBuilder::Integer {
                values: Int64Builder::with_capacity(rows),
                data_type: data_type.clone(),
                min: *min,
                max: *max,
            },
            ColumnKind::Double => ColumnBuilder::Double(Float64Builder::with_capacity(rows)),
            ColumnKind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnKind::Decimal { precision, scale, shape } => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(rows).with_precision_and_scale(*precision, *scale).ok()?,
                *shape,
            ),
            ColumnKind::Date => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
            ColumnKind::Timestamp { zone } => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone_opt(zone.clone()),
            ),
            ColumnKind::Rescued => ColumnBuilder::Rescued { rows: 0 },
        })
    }

    /// Builders for columns of `kinds`.
    pub fn for_columns(kinds: &[ColumnKind], rows: usize) -> Option<Vec<Self>> {
        kinds.iter().map(|kind| ColumnBuilder::new(kind, rows)).collect()
    }

    /// Appends the value `text` is, read as the column's type; `false` (and a null appended) when it is not one.
    pub fn append_text(&mut self, text: &str, times: &TimeFormats) -> bool {
        let appended = match self {
            ColumnBuilder::Text(values) => {
                values.append_value(text);
                true
            }
            ColumnBuilder::Integer { values, min, max, .. } => Int64Type::parse(text)
                .filter(|integer| (*min..=*max).contains(integer))
                .map(|v| values.append_value(v))
                .is_some(),
            ColumnBuilder::Double(values) => Float64Type::parse(text).map(|v| values.append_value(v)).is_some(),
            ColumnBuilder::Boolean(values) => boolean_text(text).map(|v| values.append_value(v)).is_some(),
            ColumnBuilder::Decimal(values, shape) => shape.value(text).map(|v| values.append_value(v)).is_some(),
            ColumnBuilder::Date(values) => times.date_days(text).map(|v| values.append_value(v)).is_some(),
            ColumnBuilder::Timestamp(values) => times.timestamp_micros(text).map(|v| values.append_value(v)).is_some(),
            ColumnBuilder::Rescued { .. } => false,
        };
        if !appended {
            self.append_null();
        }
        appended
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Text(values) => values.append_null(),
            ColumnBuilder::Integer { values, .. } => values.append_null(),
            ColumnBuilder::Double(values) => values.append_null(),
            ColumnBuilder::Boolean(values) => values.append_null(),
            ColumnBuilder::Decimal(values, _) => values.append_null(),
            ColumnBuilder::Date(values) => values.append_null(),
            ColumnBuilder::Timestamp(values) => values.append_null(),
            ColumnBuilder::Rescued { rows } => *rows += 1,
        }
    }

    /// The column; `None` if an integer column cannot be narrowed to its type (its values were checked to fit).
    pub fn finish(self) -> Option<ArrayRef> {
        Some(match self {
            ColumnBuilder::Text(mut values) => Arc::new(values.finish()),
            ColumnBuilder::Integer { mut values, data_type, .. } => {
                let values: ArrayRef = Arc::new(values.finish());
                if data_type == DataType::Int64 { values } else { cast(&values, &data_type).ok()? }
            }
            ColumnBuilder::Double(mut values) => Arc::new(values.finish()),
            ColumnBuilder::Boolean(mut values) => Arc::new(values.finish()),
            ColumnBuilder::Decimal(mut values, _) => Arc::new(values.finish()),
            ColumnBuilder::Date(mut values) => Arc::new(values.finish()),
            ColumnBuilder::Timestamp(mut values) => Arc::new(values.finish()),
            ColumnBuilder::Rescued { rows } => new_null_array(&DataType::Utf8, rows),
        })
    }
}
