//! Reading PostgreSQL's binary send format: a bounds-checked cursor over one value's bytes, the numeric, array
//! and record layouts, the decode error, and the constants the other codec files share.

use crate::schema::PgType;

/// A value that cannot be decoded: which type and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a {type_name} value: {reason}")]
pub struct DecodeError {
    pub type_name: &'static str,
    pub reason: String,
}

pub(super) type Result<T> = std::result::Result<T, DecodeError>;

pub(super) fn error(type_name: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError { type_name, reason: reason.into() }
}

pub(super) fn wrong_length(type_name: &'static str, expected: usize, actual: usize) -> DecodeError {
    error(type_name, format!("expected {expected} bytes, got {actual}"))
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
pub(super) const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from the Unix epoch to PostgreSQL's epoch.
pub(super) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// PostgreSQL's MAXDIM.
const MAX_ARRAY_DIMENSIONS: i32 = 6;

pub(super) const NUMERIC_POS: u16 = 0x0000;
pub(super) const NUMERIC_NEG: u16 = 0x4000;
pub(super) const NUMERIC_NAN: u16 = 0xC000;
pub(super) const NUMERIC_PINF: u16 = 0xD000;
pub(super) const NUMERIC_NINF: u16 = 0xF000;
/// numeric_recv rejects display scales outside NUMERIC_DSCALE_MASK.
const NUMERIC_MAX_DSCALE: u16 = 0x3FFF;

/// The name used in errors for values of this type.
pub(super) fn type_name(pg_type: &PgType) -> &'static str {
    match pg_type {
        PgType::Bool => "bool",
        PgType::Int2 => "int2",
        PgType::Int4 => "int4",
        PgType::Int8 => "int8",
        PgType::Oid => "oid",
        PgType::Float4 => "float4",
        PgType::Float8 => "float8",
        PgType::Numeric { .. } | PgType::NumericText => "numeric",
        PgType::Money => "money",
        PgType::Text => "text",
        PgType::Char => "\"char\"",
        PgType::Jsonb => "jsonb",
        PgType::JsonPath => "jsonpath",
        PgType::Bytea => "bytea",
        PgType::Date => "date",
        PgType::Time => "time",
        PgType::TimeTz => "timetz",
        PgType::Timestamp => "timestamp",
        PgType::TimestampTz => "timestamptz",
        PgType::Interval => "interval",
        PgType::Uuid => "uuid",
        PgType::Inet => "inet",
        PgType::MacAddr => "macaddr",
        PgType::MacAddr8 => "macaddr8",
        PgType::Bit => "bit",
        PgType::PgLsn => "pg_lsn",
        PgType::TsVector => "tsvector",
        PgType::Point => "point",
        PgType::Line => "line",
        PgType::Lseg => "lseg",
        PgType::Box => "box",
        PgType::Path => "path",
        PgType::Polygon => "polygon",
        PgType::Circle => "circle",
        PgType::Array { .. } => "array",
        PgType::Range(_) => "range",
        PgType::Composite(_) => "composite",
        PgType::Unknown { .. } => "extension type",
    }
}

/// A bounds-checked big-endian cursor over one value's bytes.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) type_name: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], type_name: &'static str) -> Self {
        Reader { buf, pos: 0, type_name }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let Some(bytes) = self.pos.checked_add(n).and_then(|end| self.buf.get(self.pos..end)) else {
            return Err(error(
                self.type_name,
                format!("truncated: needs {n} bytes at offset {}, {} left", self.pos, self.remaining()),
            ));
        };
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16> {
        self.array().map(i16::from_be_bytes)
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(super) fn i32(&mut self) -> Result<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(super) fn i64(&mut self) -> Result<i64> {
        self.array().map(i64::from_be_bytes)
    }

    pub(super) fn f64(&mut self) -> Result<f64> {
        self.array().map(f64::from_be_bytes)
    }

    /// A length-prefixed (`i32`, −1 for NULL) value, as in arrays, ranges and records.
    pub(super) fn value(&mut self) -> Result<Option<&'a [u8]>> {
        let len = self.i32()?;
        match len {
            -1 => Ok(None),
            _ => {
                let len = usize::try_from(len).map_err(|_| error(self.type_name, format!("invalid length {len}")))?;
                self.take(len).map(Some)
            }
        }
    }

    pub(super) fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(error(self.type_name, format!("{} unexpected trailing bytes", self.remaining())))
        }
    }
}

/// The value as exactly `N` bytes.
pub(super) fn fixed<const N: usize>(bytes: &[u8], type_name: &'static str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| wrong_length(type_name, N, bytes.len()))
}

pub(super) fn utf8<'a>(bytes: &'a [u8], type_name: &'static str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| error(type_name, format!("invalid UTF-8: {e}")))
}

/// jsonb and jsonpath: a version byte (always 1 so far), then the text.
pub(super) fn versioned_text<'a>(bytes: &'a [u8], type_name: &'static str) -> Result<&'a str> {
    match bytes.split_first() {
        Some((1, text)) => utf8(text, type_name),
        Some((version, _)) => Err(error(type_name, format!("unsupported version {version}"))),
        None => Err(error(type_name, "empty value")),
    }
}

/// A decoded numeric header and its base-10000 digits (still big-endian pairs, validated to be < 10000).
#[derive(Clone, Copy)]
pub(super) enum Numeric<'a> {
    Finite { negative: bool, weight: i32, dscale: u16, digits: &'a [u8] },
    NaN,
    Infinity,
    NegativeInfinity,
}

impl Numeric<'_> {
    pub(super) fn parse(bytes: &[u8]) -> Result<Numeric<'_>> {
        let mut reader = Reader::new(bytes, "numeric");
        let ndigits = reader.i16()?;
        let weight = reader.i16()?;
        let sign = reader.u16()?;
        let dscale = reader.u16()?;
        let ndigits =
            usize::try_from(ndigits).map_err(|_| error("numeric", format!("invalid digit count {ndigits}")))?;
        let digits = reader.take(ndigits * 2)?;
        reader.finish()?;
        let negative = match sign {
            NUMERIC_POS => false,
            NUMERIC_NEG => true,
            NUMERIC_NAN => return Ok(Numeric::NaN),
            NUMERIC_PINF => return Ok(Numeric::Infinity),
            NUMERIC_NINF => return Ok(Numeric::NegativeInfinity),
            _ => return Err(error("numeric", format!("invalid sign {sign:#06x}"))),
        };
        if dscale > NUMERIC_MAX_DSCALE {
            return Err(error("numeric", format!("invalid display scale {dscale}")));
        }
        if let Some(digit) =
            digits.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).find(|d| *d >= 10_000)
        {
            return Err(error("numeric", format!("invalid base-10000 digit {digit}")));
        }
        Ok(Numeric::Finite { negative, weight: i32::from(weight), dscale, digits })
    }
}

/// Base-10000 digit `i` (0 beyond the stored digits).
pub(super) fn numeric_digit(digits: &[u8], i: i32) -> i32 {
    usize::try_from(i)
        .ok()
        .and_then(|i| digits.get(i * 2..i * 2 + 2))
        .map_or(0, |pair| i32::from(u16::from_be_bytes([pair[0], pair[1]])))
}

/// The value scaled by 10^scale, rounded half away from zero; `None` when it does not fit an i128.
pub(super) fn numeric_to_i128(negative: bool, weight: i32, digits: &[u8], scale: i32) -> Option<i128> {
    let mut acc: i128 = 0;
    let mut round_up = false;
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let digit = i128::from(u16::from_be_bytes([pair[0], pair[1]]));
        // This digit is worth digit × 10^exponent in units of 10^-scale.
        let exponent = 4 * (weight - i32::try_from(i).ok()?) + scale;
        if exponent >= 0 {
            if digit != 0 {
                let power = 10_i128.checked_pow(u32::try_from(exponent).ok()?)?;
                acc = acc.checked_add(digit.checked_mul(power)?)?;
            }
        } else {
            // The first digit (partly) below the scale decides the rounding; later ones cannot change it.
            if exponent >= -4 {
                let divisor = 10_i128.pow(exponent.unsigned_abs());
                acc = acc.checked_add(digit / divisor)?;
                round_up = (digit % divisor) * 2 >= divisor;
            }
            break;
        }
    }
    if round_up {
        acc = acc.checked_add(1)?;
    }
    Some(if negative { -acc } else { acc })
}

/// The shape and element slices of a binary array (array_send): `dims` gets (length, lower bound) per
/// dimension, `elements` the byte ranges of the elements in row-major order (`None` for NULL).
pub(super) fn parse_array(
    bytes: &[u8],
    dims: &mut Vec<(usize, i32)>,
    elements: &mut Vec<Option<(usize, usize)>>,
) -> Result<()> {
    dims.clear();
    elements.clear();
    let mut reader = Reader::new(bytes, "array");
    let ndim = reader.i32()?;
    let flags = reader.i32()?;
    let _element_oid = reader.u32()?;
    if !(0..=MAX_ARRAY_DIMENSIONS).contains(&ndim) {
        return Err(error("array", format!("invalid number of dimensions {ndim}")));
    }
    if flags != 0 && flags != 1 {
        return Err(error("array", format!("invalid flags {flags}")));
    }
    let mut total: usize = if ndim == 0 { 0 } else { 1 };
    for _ in 0..ndim {
        let len = reader.i32()?;
        let lower_bound = reader.i32()?;
        let len = usize::try_from(len).map_err(|_| error("array", format!("invalid dimension length {len}")))?;
        total = total.checked_mul(len).ok_or_else(|| error("array", "too many elements"))?;
        dims.push((len, lower_bound));
    }
    // An array with a zero-length dimension is empty, whatever its other dimensions say (PostgreSQL's array_recv
    // makes it so): expanding them would turn a few bytes into millions of empty lists and braces.
    if total == 0 {
        dims.clear();
    }
    // Every element takes at least its 4-byte length: reject absurd counts before reserving for them.
    if total > reader.remaining() / 4 {
        return Err(error("array", format!("truncated: {total} elements in {} bytes", reader.remaining())));
    }
    elements.reserve(total);
    for _ in 0..total {
        let element = reader.value()?;
        elements.push(element.map(|slice| (reader.pos - slice.len(), reader.pos)));
    }
    reader.finish()
}

/// One field of a binary record: the sender's type OID and the value (`None` for NULL).
type RecordField<'a> = (u32, Option<&'a [u8]>);

/// The fields of a binary record (record_send), checked against the declared field count.
pub(super) fn parse_record(bytes: &[u8], expected: usize) -> Result<Vec<RecordField<'_>>> {
    let mut reader = Reader::new(bytes, "composite");
    let count = reader.i32()?;
    if usize::try_from(count).ok() != Some(expected) {
        return Err(error("composite", format!("the value has {count} fields, the type {expected}")));
    }
    let mut fields = Vec::with_capacity(expected);
    for _ in 0..expected {
        let oid = reader.u32()?;
        fields.push((oid, reader.value()?));
    }
    reader.finish()?;
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_values::{array, decode, fails, i4, int_list, numeric};
    use crate::codec::text_form;

    #[test]
    fn short_or_long_buffers_are_errors() {
        for pg_type in [
            PgType::Bool,
            PgType::Int2,
            PgType::Int4,
            PgType::Int8,
            PgType::Oid,
            PgType::Float4,
            PgType::Float8,
            PgType::Money,
            PgType::Date,
            PgType::Time,
            PgType::TimeTz,
            PgType::Timestamp,
            PgType::TimestampTz,
            PgType::Interval,
            PgType::Uuid,
            PgType::MacAddr,
            PgType::MacAddr8,
            PgType::PgLsn,
            PgType::Point,
            PgType::Circle,
        ] {
            fails(&pg_type, &[0; 3]);
            fails(&pg_type, &[0; 33]);
        }
        for pg_type in [
            PgType::NumericText,
            PgType::Numeric { precision: 10, scale: 2 },
            PgType::Jsonb,
            PgType::Inet,
            PgType::Bit,
            PgType::TsVector,
            PgType::Path,
            PgType::Polygon,
            PgType::Range(Box::new(PgType::Int4)),
            PgType::Composite(vec![("a".into(), PgType::Int4)]),
            PgType::Array { element: Box::new(PgType::Int4), dimensions: 1 },
        ] {
            fails(&pg_type, &[]);
            fails(&pg_type, &[0, 0, 0]);
        }
        let error = fails(&PgType::Int4, &[1, 2]);
        assert_eq!(error.to_string(), "cannot decode a int4 value: expected 4 bytes, got 2");
        // A digit count promising more digits than sent, and digits out of base 10000.
        fails(&PgType::NumericText, &numeric(0, NUMERIC_POS, 0, &[1, 2])[..10]);
        fails(&PgType::NumericText, &numeric(0, NUMERIC_POS, 0, &[10_000]));
        fails(&PgType::NumericText, &numeric(0, 0x1234, 0, &[1]));
        // Arrays whose element lengths run past the end, or claim huge dimensions.
        let mut truncated = array(&[2], 23, &[Some(i4(1)), Some(i4(2))]);
        truncated.pop();
        fails(&PgType::Array { element: Box::new(PgType::Int4), dimensions: 1 }, &truncated);
        fails(
            &PgType::Array { element: Box::new(PgType::Int4), dimensions: 1 },
            &array(&[i32::MAX, i32::MAX], 23, &[]),
        );
        fails(&PgType::Array { element: Box::new(PgType::Int4), dimensions: 1 }, &array(&[-1], 23, &[]));
    }

    /// Found by the `postgres_codec` fuzz target (fuzz/corpus/postgres_codec/crash-empty-array-with-huge-dimensions):
    /// a 77-byte array with a zero-length dimension among long ones took over 10 s, its other dimensions
    /// expanded into millions of empty lists and braces. PostgreSQL makes such an array empty (array_recv).
    #[test]
    fn arrays_with_a_zero_length_dimension_are_empty() {
        let pg_type = PgType::Array { element: Box::new(PgType::Int4), dimensions: 1 };
        let value = array(&[655_656, 1, 23, 0], 23, &[]);
        assert_eq!(text_form(&pg_type, &value).expect("an empty array"), "{}");
        let decoded = decode(&pg_type, &[Some(&value)]);
        assert_eq!(int_list(&decoded), [Some(vec![])]);
    }
}
