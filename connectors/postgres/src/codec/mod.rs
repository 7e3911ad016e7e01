//! Decoding of PostgreSQL's binary wire format (`typsend`, as used by `COPY ... (FORMAT binary)` and by pgoutput
//! with `binary 'true'`) into Arrow arrays, following the type mapping documented in [`crate::schema`].
//!
//! Scalars that land as Arrow primitives are written straight into typed builders; everything that lands as text
//! is rendered into a reused buffer, so the per-value hot path does not allocate. Every read is length-checked:
//! malformed input yields a [`DecodeError`], never a panic, and a failed [`ColumnBuilder::append`] leaves the
//! builder as it was.
//!
//! This file holds the column builders ([`ColumnBuilder`]); the rest is split by job:
//! - `wire_reader`: the bounds-checked reader over one value's bytes, the numeric, array and record layouts, the
//!   decode error and the constants the other files share;
//! - `text_form`: PostgreSQL's text output forms ([`text_form()`]), for the types that land as text;
//! - `json_form`: values as JSON, for composites, which land as JSON objects.

mod json_form;
#[cfg(test)]
mod test_values;
mod text_form;
mod wire_reader;

use std::sync::Arc;

use connector_core::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray, NullBufferBuilder, PrimitiveBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use connector_core::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use connector_core::arrow::datatypes::{ArrowPrimitiveType, DataType, Field, FieldRef};
use connector_core::change_buffer::ColumnRows;

use self::json_form::write_composite_json;
pub use self::text_form::text_form;
use self::text_form::{push_bytea, push_numeric, write_text};
pub use self::wire_reader::DecodeError;
use self::wire_reader::{
    Numeric, PG_EPOCH_DAYS, PG_EPOCH_MICROS, Result, error, fixed, numeric_to_i128, parse_array, type_name, utf8,
    versioned_text,
};
use crate::schema::PgType;

/// Arrow's 32-bit offsets cap the bytes of one Utf8/Binary array.
const MAX_OFFSET: usize = i32::MAX as usize;

/// Accumulates one column's values for a batch.
pub struct ColumnBuilder {
    pg_type: PgType,
    kind: Kind,
    /// Whether the once-per-builder warning (lossy numeric, unknown type) was logged.
    warned: bool,
}

/// The concrete Arrow builder behind a column, so that appending dispatches on a plain enum.
enum Kind {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Oid(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    /// `numeric(p,s)`; `limit` is 10^p, the first magnitude that does not fit.
    Decimal {
        builder: Decimal128Builder,
        scale: i32,
        limit: i128,
    },
    Money(Decimal128Builder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    /// Every type landed as Utf8; `scratch` holds rendered text forms between values.
    Utf8 {
        builder: StringBuilder,
        scratch: String,
    },
    List(Box<ListColumn>),
}

/// A list column with one level of nesting per declared dimension.
struct ListColumn {
    /// Outermost first. Only the outermost level has NULLs: PostgreSQL arrays are rectangular.
    levels: Vec<ListLevel>,
    /// The child field of each level, outermost first.
    fields: Vec<FieldRef>,
    values: ColumnBuilder,
    /// Reused parse buffers.
    dims: Vec<(usize, i32)>,
    elements: Vec<Option<(usize, usize)>>,
    shape: Vec<usize>,
}

struct ListLevel {
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
}

impl ListLevel {
    fn new(capacity: usize) -> Self {
        let mut offsets = Vec::with_capacity(capacity + 1);
        offsets.push(0);
        ListLevel { offsets, validity: NullBufferBuilder::new(capacity) }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn end(&self) -> usize {
        self.offsets.last().map_or(0, |end| *end as usize)
    }

    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.validity.truncate(len);
    }
}

impl ListColumn {
    fn new(element: &PgType, dimensions: usize, capacity: usize) -> Self {
        let dimensions = dimensions.max(1);
        // The same nesting as PgType::arrow_type, innermost first, then flipped.
        let mut fields = Vec::with_capacity(dimensions);
        let mut data_type = element.arrow_type();
        for _ in 0..dimensions {
            let field: FieldRef = Arc::new(Field::new("element", data_type, true));
            data_type = DataType::List(field.clone());
            fields.push(field);
        }
        fields.reverse();
        ListColumn {
            levels: (0..dimensions).map(|_| ListLevel::new(capacity)).collect(),
            fields,
            values: ColumnBuilder::new(element, capacity),
            dims: Vec::new(),
            elements: Vec::new(),
            shape: Vec::with_capacity(dimensions),
        }
    }

    fn len(&self) -> usize {
        self.levels.first().map_or(0, ListLevel::len)
    }

    fn append_null(&mut self) {
        if let Some(outer) = self.levels.first_mut() {
            let end = outer.offsets.last().copied().unwrap_or(0);
            outer.offsets.push(end);
            outer.validity.append_null();
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        parse_array(bytes, &mut self.dims, &mut self.elements)?;
        let dimensions = self.levels.len();
        self.shape.clear();
        if self.dims.is_empty() {
            // An empty array: one empty list at the top, nothing below.
            self.shape.resize(dimensions, 0);
        } else if self.dims.len() == dimensions {
            self.shape.extend(self.dims.iter().map(|(len, _)| *len));
        } else if dimensions == 1 {
            // PostgreSQL does not enforce declared dimensions; a one-dimensional column takes all elements.
            self.shape.push(self.elements.len());
        } else {
            return Err(error(
                "array",
                format!("the value has {} dimensions, the column is declared with {dimensions}", self.dims.len()),
            ));
        }
        let len = self.len();
        let result = self.append_shaped(bytes);
        if result.is_err() {
            self.truncate(len);
        }
        result
    }

    fn append_shaped(&mut self, bytes: &[u8]) -> Result<()> {
        let mut entries = 1usize;
        for (level, children) in self.levels.iter_mut().zip(&self.shape) {
            let mut end = level.end();
            for _ in 0..entries {
                end += children;
                let offset = i32::try_from(end).map_err(|_| error("array", "more than 2^31 elements in a batch"))?;
                level.offsets.push(offset);
            }
            level.validity.append_n_non_nulls(entries);
            entries *= children;
        }
        for element in &self.elements {
            self.values.append(element.map(|(start, end)| &bytes[start..end]))?;
        }
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        let mut len = len;
        for level in &mut self.levels {
            level.truncate(len);
            len = level.end();
        }
        self.values.truncate(len);
    }

    fn buffered_bytes(&self) -> usize {
        self.levels.iter().map(|level| level.len() * 4 + level.len().div_ceil(8)).sum::<usize>()
            + self.values.buffered_bytes()
    }

    fn finish(&mut self) -> ArrayRef {
        let mut array = self.values.finish();
        for (level, field) in self.levels.iter_mut().zip(&self.fields).rev() {
            let mut offsets = Vec::with_capacity(level.offsets.capacity());
            offsets.push(0);
            let offsets = std::mem::replace(&mut level.offsets, offsets);
            let nulls = level.validity.finish();
            // Offsets start at 0, only grow, and end at the child's length: the invariants `new` asserts.
            array =
                Arc::new(ListArray::new(field.clone(), OffsetBuffer::new(ScalarBuffer::from(offsets)), array, nulls));
        }
        array
    }
}

/// Rebuilds a primitive builder with only its first `len` values (the rare rollback path).
fn truncate_primitive<T: ArrowPrimitiveType>(builder: &mut PrimitiveBuilder<T>, len: usize) {
    let array = builder.finish();
    builder.append_array(&array.slice(0, len));
}

/// The change buffer's view of a column builder.
impl ColumnRows for ColumnBuilder {
    /// Whether no value was appended since the last finish.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes buffered (for sizing batches by memory).
    fn buffered_bytes(&self) -> usize {
        let len = self.len();
        let validity = len.div_ceil(8);
        validity
            + match &self.kind {
                Kind::Bool(_) => validity,
                Kind::Int16(_) => len * 2,
                Kind::Int32(_) | Kind::Float32(_) | Kind::Date(_) => len * 4,
                Kind::Int64(_) | Kind::Oid(_) | Kind::Float64(_) | Kind::Timestamp(_) => len * 8,
                Kind::Decimal { .. } | Kind::Money(_) => len * 16,
                Kind::Binary(builder) => builder.values_slice().len() + len * 4,
                Kind::Utf8 { builder, .. } => builder.values_slice().len() + len * 4,
                Kind::List(list) => list.buffered_bytes(),
            }
    }

    /// Returns the values appended since the last finish, as an array of `pg_type.arrow_type()`, and resets.
    fn finish(&mut self) -> ArrayRef {
        match &mut self.kind {
            Kind::Bool(builder) => Arc::new(builder.finish()),
            Kind::Int16(builder) => Arc::new(builder.finish()),
            Kind::Int32(builder) => Arc::new(builder.finish()),
            Kind::Int64(builder) | Kind::Oid(builder) => Arc::new(builder.finish()),
            Kind::Float32(builder) => Arc::new(builder.finish()),
            Kind::Float64(builder) => Arc::new(builder.finish()),
            Kind::Decimal { builder, .. } | Kind::Money(builder) => Arc::new(builder.finish()),
            Kind::Binary(builder) => Arc::new(builder.finish()),
            Kind::Date(builder) => Arc::new(builder.finish()),
            Kind::Timestamp(builder) => Arc::new(builder.finish()),
            Kind::Utf8 { builder, .. } => Arc::new(builder.finish()),
            Kind::List(list) => list.finish(),
        }
    }
}

impl ColumnBuilder {
    /// A builder for values of `pg_type`, with room for `capacity` values.
    pub fn new(pg_type: &PgType, capacity: usize) -> Self {
        let kind = match pg_type {
            PgType::Bool => Kind::Bool(BooleanBuilder::with_capacity(capacity)),
            PgType::Int2 => Kind::Int16(Int16Builder::with_capacity(capacity)),
            PgType::Int4 => Kind::Int32(Int32Builder::with_capacity(capacity)),
            PgType::Int8 => Kind::Int64(Int64Builder::with_capacity(capacity)),
            PgType::Oid => Kind::Oid(Int64Builder::with_capacity(capacity)),
            PgType::Float4 => Kind::Float32(Float32Builder::with_capacity(capacity)),
            PgType::Float8 => Kind::Float64(Float64Builder::with_capacity(capacity)),
            PgType::Numeric { precision, scale } => Kind::Decimal {
                builder: Decimal128Builder::with_capacity(capacity).with_data_type(pg_type.arrow_type()),
                scale: i32::from(*scale),
                limit: 10_i128.checked_pow(u32::from(*precision)).unwrap_or(i128::MAX),
            },
            PgType::Money => {
                Kind::Money(Decimal128Builder::with_capacity(capacity).with_data_type(pg_type.arrow_type()))
            }
            PgType::Bytea => Kind::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            PgType::Date => Kind::Date(Date32Builder::with_capacity(capacity)),
            PgType::Timestamp | PgType::TimestampTz => Kind::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_data_type(pg_type.arrow_type()),
            ),
            PgType::Array { element, dimensions } => {
                Kind::List(Box::new(ListColumn::new(element, *dimensions, capacity)))
            }
            _ => Kind::Utf8 { builder: StringBuilder::with_capacity(capacity, capacity * 16), scratch: String::new() },
        };
        ColumnBuilder { pg_type: pg_type.clone(), kind, warned: false }
    }

    /// Appends one value in binary send format; `None` is SQL NULL.
    ///
    /// On error nothing is appended.
    pub fn append(&mut self, value: Option<&[u8]>) -> std::result::Result<(), DecodeError> {
        let Some(bytes) = value else {
            self.append_null();
            return Ok(());
        };
        let ColumnBuilder { pg_type, kind, warned } = self;
        let name = type_name(pg_type);
        match kind {
            Kind::Bool(builder) => builder.append_value(fixed::<1>(bytes, name)?[0] != 0),
            Kind::Int16(builder) => builder.append_value(i16::from_be_bytes(fixed(bytes, name)?)),
            Kind::Int32(builder) => builder.append_value(i32::from_be_bytes(fixed(bytes, name)?)),
            Kind::Int64(builder) => builder.append_value(i64::from_be_bytes(fixed(bytes, name)?)),
            Kind::Oid(builder) => builder.append_value(i64::from(u32::from_be_bytes(fixed(bytes, name)?))),
            Kind::Float32(builder) => builder.append_value(f32::from_be_bytes(fixed(bytes, name)?)),
            Kind::Float64(builder) => builder.append_value(f64::from_be_bytes(fixed(bytes, name)?)),
            Kind::Decimal { builder, scale, limit } => match Numeric::parse(bytes)? {
                numeric @ Numeric::Finite { negative, weight, digits, .. } => {
                    let value = numeric_to_i128(negative, weight, digits, *scale)
                        .filter(|value| value.unsigned_abs() < limit.unsigned_abs())
                        .ok_or_else(|| {
                            let mut text = String::new();
                            push_numeric(&mut text, numeric);
                            error(name, format!("{text} does not fit {}", pg_type.arrow_type()))
                        })?;
                    builder.append_value(value);
                }
                special => {
                    if !*warned {
                        *warned = true;
                        let mut text = String::new();
                        push_numeric(&mut text, special);
                        tracing::warn!(
                            value = %text,
                            data_type = %pg_type.arrow_type(),
                            "numeric NaN/Infinity has no decimal form; landing NULL (further ones not logged)"
                        );
                    }
                    builder.append_null();
                }
            },
            Kind::Money(builder) => builder.append_value(i128::from(i64::from_be_bytes(fixed(bytes, name)?))),
            Kind::Binary(builder) => {
                if builder.values_slice().len() + bytes.len() > MAX_OFFSET {
                    return Err(error(name, "a batch cannot hold more than 2 GiB of values"));
                }
                builder.append_value(bytes);
            }
            Kind::Date(builder) => match i32::from_be_bytes(fixed(bytes, name)?) {
                i32::MAX | i32::MIN => builder.append_null(),
                days => builder.append_value(
                    days.checked_add(PG_EPOCH_DAYS).ok_or_else(|| error(name, format!("{days} out of range")))?,
                ),
            },
            Kind::Timestamp(builder) => match i64::from_be_bytes(fixed(bytes, name)?) {
                i64::MAX | i64::MIN => builder.append_null(),
                micros => builder.append_value(micros.checked_add(PG_EPOCH_MICROS).ok_or_else(|| {
                    error(name, format!("{micros}µs after 2000-01-01 is beyond Arrow's timestamp range"))
                })?),
            },
            Kind::Utf8 { builder, scratch } => {
                let text = match pg_type {
                    PgType::Text => utf8(bytes, name)?,
                    PgType::Jsonb | PgType::JsonPath => versioned_text(bytes, name)?,
                    _ => {
                        scratch.clear();
                        match pg_type {
                            PgType::Composite(fields) => write_composite_json(scratch, fields, bytes)?,
                            PgType::Unknown { name: unknown } => {
                                if !*warned {
                                    *warned = true;
                                    tracing::warn!(
                                        pg_type = %unknown,
                                        "no binary decoder for this type; landing its bytes as \\x hex text"
                                    );
                                }
                                push_bytea(scratch, bytes);
                            }
                            _ => write_text(scratch, pg_type, bytes)?,
                        }
                        scratch.as_str()
                    }
                };
                if builder.values_slice().len() + text.len() > MAX_OFFSET {
                    return Err(error(name, "a batch cannot hold more than 2 GiB of text"));
                }
                builder.append_value(text);
            }
            Kind::List(list) => list.append(bytes)?,
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match &mut self.kind {
            Kind::Bool(builder) => builder.append_null(),
            Kind::Int16(builder) => builder.append_null(),
            Kind::Int32(builder) => builder.append_null(),
            Kind::Int64(builder) | Kind::Oid(builder) => builder.append_null(),
            Kind::Float32(builder) => builder.append_null(),
            Kind::Float64(builder) => builder.append_null(),
            Kind::Decimal { builder, .. } | Kind::Money(builder) => builder.append_null(),
            Kind::Binary(builder) => builder.append_null(),
            Kind::Date(builder) => builder.append_null(),
            Kind::Timestamp(builder) => builder.append_null(),
            Kind::Utf8 { builder, .. } => builder.append_null(),
            Kind::List(list) => list.append_null(),
        }
    }

    /// Number of values appended since the last finish.
    fn len(&self) -> usize {
        match &self.kind {
            Kind::Bool(builder) => builder.len(),
            Kind::Int16(builder) => builder.len(),
            Kind::Int32(builder) => builder.len(),
            Kind::Int64(builder) | Kind::Oid(builder) => builder.len(),
            Kind::Float32(builder) => builder.len(),
            Kind::Float64(builder) => builder.len(),
            Kind::Decimal { builder, .. } | Kind::Money(builder) => builder.len(),
            Kind::Binary(builder) => builder.len(),
            Kind::Date(builder) => builder.len(),
            Kind::Timestamp(builder) => builder.len(),
            Kind::Utf8 { builder, .. } => builder.len(),
            Kind::List(list) => list.len(),
        }
    }

    /// Drops every value after the first `len`: undoes a list value whose elements failed half-way.
    fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        match &mut self.kind {
            Kind::Bool(builder) => {
                let array = builder.finish();
                builder.append_array(&array.slice(0, len));
            }
            Kind::Int16(builder) => truncate_primitive(builder, len),
            Kind::Int32(builder) => truncate_primitive(builder, len),
            Kind::Int64(builder) | Kind::Oid(builder) => truncate_primitive(builder, len),
            Kind::Float32(builder) => truncate_primitive(builder, len),
            Kind::Float64(builder) => truncate_primitive(builder, len),
            Kind::Decimal { builder, .. } | Kind::Money(builder) => truncate_primitive(builder, len),
            Kind::Date(builder) => truncate_primitive(builder, len),
            Kind::Timestamp(builder) => truncate_primitive(builder, len),
            Kind::Binary(builder) => {
                let array = builder.finish();
                array.iter().take(len).for_each(|value| builder.append_option(value));
            }
            Kind::Utf8 { builder, .. } => {
                let array = builder.finish();
                array.iter().take(len).for_each(|value| builder.append_option(value));
            }
            Kind::List(list) => list.truncate(len),
        }
    }
}

impl std::fmt::Debug for ColumnBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnBuilder")
            .field("pg_type", &self.pg_type)
            .field("len", &self.len())
            .field("buffered_bytes", &self.buffered_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_values::{array, decode, fails, i4, int_list, numeric, text, texts};
    use crate::codec::wire_reader::{NUMERIC_NAN, NUMERIC_NEG, NUMERIC_NINF, NUMERIC_POS};
    use connector_core::arrow::array::{
        Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
        Int16Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use connector_core::arrow::datatypes::TimeUnit;

    #[test]
    fn fixed_width_scalars_and_nulls() {
        let array = decode(&PgType::Bool, &[Some(&[1]), Some(&[0]), None]);
        let array = array.as_any().downcast_ref::<BooleanArray>().expect("bool");
        assert_eq!(array.iter().collect::<Vec<_>>(), [Some(true), Some(false), None]);

        let array = decode(&PgType::Int2, &[Some(&(-2i16).to_be_bytes()), None]);
        assert_eq!(
            array.as_any().downcast_ref::<Int16Array>().expect("i16").iter().collect::<Vec<_>>(),
            [Some(-2), None]
        );
        let array = decode(&PgType::Int4, &[Some(&i32::MIN.to_be_bytes())]);
        assert_eq!(array.as_any().downcast_ref::<Int32Array>().expect("i32").value(0), i32::MIN);
        let array = decode(&PgType::Int8, &[Some(&i64::MAX.to_be_bytes()), None]);
        assert_eq!(array.as_any().downcast_ref::<Int64Array>().expect("i64").value(0), i64::MAX);
        let array = decode(&PgType::Oid, &[Some(&u32::MAX.to_be_bytes())]);
        assert_eq!(array.as_any().downcast_ref::<Int64Array>().expect("oid").value(0), i64::from(u32::MAX));
        let array = decode(&PgType::Float4, &[Some(&1.5f32.to_be_bytes())]);
        assert_eq!(array.as_any().downcast_ref::<Float32Array>().expect("f32").value(0), 1.5);
        let array = decode(&PgType::Float8, &[Some(&f64::NAN.to_be_bytes()), Some(&(-0.25f64).to_be_bytes())]);
        let array = array.as_any().downcast_ref::<Float64Array>().expect("f64");
        assert!(array.value(0).is_nan());
        assert_eq!(array.value(1), -0.25);
    }

    #[test]
    fn constrained_numeric_lands_as_scaled_decimal() {
        let pg_type = PgType::Numeric { precision: 10, scale: 2 };
        let nan = numeric(0, NUMERIC_NAN, 0, &[]);
        let values = [
            numeric(0, NUMERIC_NEG, 2, &[12, 3000]),         // -12.30
            numeric(0, NUMERIC_POS, 0, &[123]),              // 123
            numeric(-2, NUMERIC_POS, 5, &[1000]),            // 0.00001 → rounds to 0.00
            numeric(-1, NUMERIC_POS, 3, &[125]),             // 0.0125 → 0.01
            numeric(-1, NUMERIC_POS, 3, &[1250]),            // 0.125 → 0.13 (half away from zero)
            numeric(-1, NUMERIC_NEG, 3, &[1250]),            // -0.125 → -0.13
            numeric(1, NUMERIC_POS, 2, &[1234, 5678, 9900]), // 12345678.99
            numeric(0, NUMERIC_POS, 0, &[]),                 // 0
        ];
        let mut inputs: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_slice())).collect();
        inputs.push(Some(&nan));
        inputs.push(None);
        let array = decode(&pg_type, &inputs);
        let array = array.as_any().downcast_ref::<Decimal128Array>().expect("decimal");
        assert_eq!((array.precision(), array.scale()), (10, 2));
        assert_eq!(
            array.iter().collect::<Vec<_>>(),
            [Some(-1230), Some(12300), Some(0), Some(1), Some(13), Some(-13), Some(1_234_567_899), Some(0), None, None]
        );
        // 123456789.00 needs 11 digits.
        let error = fails(&pg_type, &numeric(2, NUMERIC_POS, 0, &[1, 2345, 6789]));
        assert!(error.reason.contains("123456789"), "{error}");
        // Infinity is a warning and a NULL, not an error.
        let array = decode(&pg_type, &[Some(&numeric(0, NUMERIC_NINF, 0, &[]))]);
        assert!(array.is_null(0));

        let wide = PgType::Numeric { precision: 38, scale: 0 };
        // 38 nines: the largest numeric(38,0).
        let mut digits = vec![99];
        digits.extend([9999; 9]);
        let array = decode(&wide, &[Some(&numeric(9, NUMERIC_NEG, 0, &digits))]);
        let value = array.as_any().downcast_ref::<Decimal128Array>().expect("decimal").value(0);
        assert_eq!(value, -(10_i128.pow(38) - 1));
        fails(&wide, &numeric(10, NUMERIC_POS, 0, &[1]));
        fails(&wide, &numeric(1000, NUMERIC_POS, 0, &[1]));

        let money = decode(&PgType::Money, &[Some(&(-1234i64).to_be_bytes())]);
        let money = money.as_any().downcast_ref::<Decimal128Array>().expect("decimal");
        assert_eq!((money.precision(), money.scale(), money.value(0)), (19, 2, -1234));
    }

    #[test]
    fn text_like_values() {
        assert_eq!(texts(&PgType::Text, &[b"hello", "żółw".as_bytes(), b""]), ["hello", "żółw", ""]);
        fails(&PgType::Text, &[0xff, 0xfe]);
        assert_eq!(texts(&PgType::Char, &[b"a", &[0], &[], &[0xe9]]), ["a", "", "", "\\351"]);
        fails(&PgType::Char, b"ab");
        assert_eq!(text(&PgType::Jsonb, b"\x01{\"a\": 1}"), "{\"a\": 1}");
        assert_eq!(text(&PgType::JsonPath, b"\x01$.a"), "$.a");
        fails(&PgType::Jsonb, b"\x02{}");
        let array = decode(&PgType::Bytea, &[Some(&[0, 255]), None]);
        let array = array.as_any().downcast_ref::<BinaryArray>().expect("binary");
        assert_eq!(array.value(0), [0, 255]);
        assert!(array.is_null(1));
        assert_eq!(text(&PgType::Unknown { name: "hstore".into() }, &[0xde, 0xad, 0x01]), "\\xdead01");
    }

    #[test]
    fn dates_and_timestamps() {
        let array = decode(
            &PgType::Date,
            &[
                Some(&0i32.to_be_bytes()),
                Some(&8796i32.to_be_bytes()),
                Some(&i32::MAX.to_be_bytes()),
                Some(&i32::MIN.to_be_bytes()),
                None,
            ],
        );
        let array = array.as_any().downcast_ref::<Date32Array>().expect("date");
        assert_eq!(array.iter().collect::<Vec<_>>(), [Some(10_957), Some(10_957 + 8796), None, None, None]);

        let noon = 760_017_600_000_000i64;
        for pg_type in [PgType::Timestamp, PgType::TimestampTz] {
            let array = decode(
                &pg_type,
                &[Some(&noon.to_be_bytes()), Some(&i64::MAX.to_be_bytes()), Some(&i64::MIN.to_be_bytes())],
            );
            let array = array.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("timestamp");
            assert_eq!(array.value(0), 1_706_702_400_000_000); // 2024-01-31T12:00:00Z
            assert!(array.is_null(1) && array.is_null(2));
        }
        assert_eq!(PgType::TimestampTz.arrow_type(), DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        fails(&PgType::Timestamp, &(i64::MAX - 1).to_be_bytes());

        let form = |pg_type: &PgType, bytes: &[u8]| text_form(pg_type, bytes).expect("text form");
        assert_eq!(form(&PgType::Date, &8796i32.to_be_bytes()), "2024-01-31");
        assert_eq!(form(&PgType::Date, &(-730_120i32).to_be_bytes()), "0001-12-31 BC");
        assert_eq!(form(&PgType::Date, &i32::MAX.to_be_bytes()), "infinity");
        assert_eq!(form(&PgType::Timestamp, &noon.to_be_bytes()), "2024-01-31 12:00:00");
        assert_eq!(form(&PgType::Timestamp, &(noon + 500).to_be_bytes()), "2024-01-31 12:00:00.0005");
        assert_eq!(form(&PgType::TimestampTz, &noon.to_be_bytes()), "2024-01-31 12:00:00+00");
        assert_eq!(form(&PgType::TimestampTz, &(-1i64).to_be_bytes()), "1999-12-31 23:59:59.999999+00");
        assert_eq!(form(&PgType::TimestampTz, &i64::MIN.to_be_bytes()), "-infinity");
    }

    #[test]
    fn one_dimensional_arrays() {
        let pg_type = PgType::Array { element: Box::new(PgType::Int4), dimensions: 1 };
        let values = [
            array(&[3], 23, &[Some(i4(1)), None, Some(i4(3))]),
            array(&[], 23, &[]),
            // A two-dimensional value in a column declared with one dimension: flattened, row-major.
            array(&[2, 2], 23, &[Some(i4(1)), Some(i4(2)), Some(i4(3)), Some(i4(4))]),
        ];
        let array = decode(&pg_type, &[Some(&values[0]), None, Some(&values[1]), Some(&values[2])]);
        assert_eq!(
            int_list(&array),
            [Some(vec![Some(1), None, Some(3)]), None, Some(vec![]), Some(vec![Some(1), Some(2), Some(3), Some(4)])]
        );
    }

    #[test]
    fn multi_dimensional_arrays_nest() {
        let pg_type = PgType::Array { element: Box::new(PgType::Int4), dimensions: 2 };
        let matrix = array(&[2, 3], 23, &[Some(i4(1)), Some(i4(2)), Some(i4(3)), Some(i4(4)), None, Some(i4(6))]);
        let empty = array(&[], 23, &[]);
        let array = decode(&pg_type, &[Some(&matrix), None, Some(&empty)]);
        let outer = array.as_list::<i32>();
        assert!(outer.is_null(1));
        assert_eq!(outer.value(2).len(), 0);
        let rows = outer.value(0);
        assert_eq!(int_list(&rows), [Some(vec![Some(1), Some(2), Some(3)]), Some(vec![Some(4), None, Some(6)])]);
        let error = fails(&pg_type, &self::array(&[2], 23, &[Some(i4(1)), Some(i4(2))]));
        assert!(error.reason.contains("1 dimensions") && error.reason.contains("with 2"), "{error}");
    }

    #[test]
    fn arrays_of_other_types_use_the_element_decoder() {
        let decimals = PgType::Array { element: Box::new(PgType::Numeric { precision: 10, scale: 2 }), dimensions: 1 };
        let value = array(&[2], 1700, &[Some(numeric(0, NUMERIC_NEG, 2, &[12, 3000])), None]);
        let array = decode(&decimals, &[Some(&value)]);
        let values = array.as_list::<i32>().value(0);
        let values = values.as_any().downcast_ref::<Decimal128Array>().expect("decimal");
        assert_eq!(values.iter().collect::<Vec<_>>(), [Some(-1230), None]);

        let uuid = [7u8; 16];
        let uuids = PgType::Array { element: Box::new(PgType::Uuid), dimensions: 1 };
        let array = decode(&uuids, &[Some(&self::array(&[1], 2950, &[Some(uuid.to_vec())]))]);
        let values = array.as_list::<i32>().value(0);
        assert_eq!(values.as_string::<i32>().value(0), "07070707-0707-0707-0707-070707070707");

        let dates = PgType::Array { element: Box::new(PgType::Date), dimensions: 1 };
        let array = decode(&dates, &[Some(&self::array(&[2], 1082, &[Some(i4(1)), Some(i4(i32::MAX))]))]);
        let values = array.as_list::<i32>().value(0);
        let values = values.as_any().downcast_ref::<Date32Array>().expect("dates");
        assert_eq!(values.iter().collect::<Vec<_>>(), [Some(10_958), None]);
    }

    #[test]
    fn a_failed_array_leaves_no_partial_elements() {
        let pg_type = PgType::Array { element: Box::new(PgType::Text), dimensions: 2 };
        let mut builder = ColumnBuilder::new(&pg_type, 2);
        let good = array(&[1, 2], 25, &[Some(b"a".to_vec()), Some(b"b".to_vec())]);
        let bad = array(&[2, 2], 25, &[Some(b"c".to_vec()), Some(b"d".to_vec()), Some(vec![0xff]), None]);
        builder.append(Some(&good)).expect("good");
        builder.append(Some(&bad)).expect_err("invalid UTF-8 in the third element");
        assert_eq!(builder.len(), 1);
        builder.append(Some(&good)).expect("good");
        let array = builder.finish();
        let outer = array.as_list::<i32>();
        assert_eq!(outer.len(), 2);
        for row in 0..2 {
            let rows = outer.value(row);
            let inner = rows.as_list::<i32>().value(0);
            let strings: Vec<_> = inner.as_string::<i32>().iter().collect();
            assert_eq!(strings, [Some("a"), Some("b")]);
        }
        assert_eq!(outer.values().as_list::<i32>().values().len(), 4);
    }

    #[test]
    fn builders_reset_and_report_their_size() {
        let mut builder = ColumnBuilder::new(&PgType::Text, 8);
        assert!(builder.is_empty());
        builder.append(Some(b"hello")).expect("text");
        builder.append(None).expect("null");
        assert!(builder.buffered_bytes() >= 5);
        assert!(format!("{builder:?}").contains("Text"));
        let first = builder.finish();
        assert_eq!(first.len(), 2);
        assert_eq!(builder.buffered_bytes(), 0);
        builder.append(Some(b"again")).expect("text");
        let second = builder.finish();
        let second = second.as_any().downcast_ref::<StringArray>().expect("utf8");
        assert_eq!(second.value(0), "again");

        for pg_type in [
            PgType::Bool,
            PgType::Numeric { precision: 4, scale: 1 },
            PgType::Array { element: Box::new(PgType::Int8), dimensions: 3 },
            PgType::Range(Box::new(PgType::Int8)),
            PgType::Composite(vec![]),
            PgType::Unknown { name: "x".into() },
        ] {
            let array = decode(&pg_type, &[None, None]);
            assert_eq!(array.null_count(), 2);
        }
    }
}
