//! Decoding of PostgreSQL's binary wire format (`typsend`, as used by `COPY ... (FORMAT binary)` and by pgoutput
//! with `binary 'true'`) into Arrow arrays, following the type mapping documented in [`crate::schema`].
//!
//! Scalars that land as Arrow primitives are written straight into typed builders; everything that lands as text
//! is rendered into a reused buffer, so the per-value hot path does not allocate. Every read is length-checked:
//! malformed input yields a [`DecodeError`], never a panic, and a failed [`ColumnBuilder::append`] leaves the
//! builder as it was.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use connector_core::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray, NullBufferBuilder, PrimitiveBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use connector_core::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use connector_core::arrow::datatypes::{ArrowPrimitiveType, DataType, Field, FieldRef};
use connector_core::change_buffer::ColumnRows;

use crate::schema::PgType;

/// A value that cannot be decoded: which type and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a {type_name} value: {reason}")]
pub struct DecodeError {
    pub type_name: &'static str,
    pub reason: String,
}

type Result<T> = std::result::Result<T, DecodeError>;

fn error(type_name: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError { type_name, reason: reason.into() }
}

fn wrong_length(type_name: &'static str, expected: usize, actual: usize) -> DecodeError {
    error(type_name, format!("expected {expected} bytes, got {actual}"))
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from the Unix epoch to PostgreSQL's epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// PostgreSQL's MAXDIM.
const MAX_ARRAY_DIMENSIONS: i32 = 6;
/// Arrow's 32-bit offsets cap the bytes of one Utf8/Binary array.
const MAX_OFFSET: usize = i32::MAX as usize;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// numeric_recv rejects display scales outside NUMERIC_DSCALE_MASK.
const NUMERIC_MAX_DSCALE: u16 = 0x3FFF;

/// The name used in errors for values of this type.
fn type_name(pg_type: &PgType) -> &'static str {
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

// ---------------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------------

/// A bounds-checked big-endian cursor over one value's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    type_name: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], type_name: &'static str) -> Self {
        Reader { buf, pos: 0, type_name }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
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

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16> {
        self.array().map(i16::from_be_bytes)
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64> {
        self.array().map(i64::from_be_bytes)
    }

    fn f64(&mut self) -> Result<f64> {
        self.array().map(f64::from_be_bytes)
    }

    /// A length-prefixed (`i32`, −1 for NULL) value, as in arrays, ranges and records.
    fn value(&mut self) -> Result<Option<&'a [u8]>> {
        let len = self.i32()?;
        match len {
            -1 => Ok(None),
            _ => {
                let len = usize::try_from(len).map_err(|_| error(self.type_name, format!("invalid length {len}")))?;
                self.take(len).map(Some)
            }
        }
    }

    fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(error(self.type_name, format!("{} unexpected trailing bytes", self.remaining())))
        }
    }
}

/// The value as exactly `N` bytes.
fn fixed<const N: usize>(bytes: &[u8], type_name: &'static str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| wrong_length(type_name, N, bytes.len()))
}

fn utf8<'a>(bytes: &'a [u8], type_name: &'static str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| error(type_name, format!("invalid UTF-8: {e}")))
}

/// jsonb and jsonpath: a version byte (always 1 so far), then the text.
fn versioned_text<'a>(bytes: &'a [u8], type_name: &'static str) -> Result<&'a str> {
    match bytes.split_first() {
        Some((1, text)) => utf8(text, type_name),
        Some((version, _)) => Err(error(type_name, format!("unsupported version {version}"))),
        None => Err(error(type_name, "empty value")),
    }
}

/// A decoded numeric header and its base-10000 digits (still big-endian pairs, validated to be < 10000).
#[derive(Clone, Copy)]
enum Numeric<'a> {
    Finite { negative: bool, weight: i32, dscale: u16, digits: &'a [u8] },
    NaN,
    Infinity,
    NegativeInfinity,
}

impl Numeric<'_> {
    fn parse(bytes: &[u8]) -> Result<Numeric<'_>> {
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
fn numeric_digit(digits: &[u8], i: i32) -> i32 {
    usize::try_from(i)
        .ok()
        .and_then(|i| digits.get(i * 2..i * 2 + 2))
        .map_or(0, |pair| i32::from(u16::from_be_bytes([pair[0], pair[1]])))
}

/// The value scaled by 10^scale, rounded half away from zero; `None` when it does not fit an i128.
fn numeric_to_i128(negative: bool, weight: i32, digits: &[u8], scale: i32) -> Option<i128> {
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

// ---------------------------------------------------------------------------------------------------------------
// Text forms
// ---------------------------------------------------------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

/// `\x` and lowercase hex, bytea's text form.
fn push_bytea(out: &mut String, bytes: &[u8]) {
    out.push_str("\\x");
    push_hex(out, bytes);
}

/// numeric_out: the exact decimal with `dscale` fraction digits, never exponent notation.
fn push_numeric(out: &mut String, numeric: Numeric<'_>) {
    let (negative, weight, dscale, digits) = match numeric {
        Numeric::Finite { negative, weight, dscale, digits } => (negative, weight, dscale, digits),
        Numeric::NaN => return out.push_str("NaN"),
        Numeric::Infinity => return out.push_str("Infinity"),
        Numeric::NegativeInfinity => return out.push_str("-Infinity"),
    };
    if negative {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let digit = numeric_digit(digits, i);
            // Only the first group drops its leading zeros.
            let _ = if i == 0 { write!(out, "{digit}") } else { write!(out, "{digit:04}") };
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut remaining = usize::from(dscale);
        let mut i = weight.saturating_add(1);
        while remaining > 0 {
            let digit = numeric_digit(digits, i);
            let group = [digit / 1000, digit / 100 % 10, digit / 10 % 10, digit % 10];
            for decimal in group.iter().take(remaining) {
                out.push(char::from(b'0' + *decimal as u8));
            }
            remaining = remaining.saturating_sub(4);
            i = i.saturating_add(1);
        }
    }
}

/// float4out/float8out: the shortest round-trip digits, in fixed notation when the decimal exponent is in
/// `-4..threshold` (6 for float4, 15 for float8) and as `1.5e+20` otherwise.
fn push_float(out: &mut String, value: f64, single: bool) {
    if value.is_nan() {
        return out.push_str("NaN");
    }
    if value.is_infinite() {
        return out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if value == 0.0 {
        return out.push_str(if value.is_sign_negative() { "-0" } else { "0" });
    }
    let start = out.len();
    // Rust's `{:e}` is the shortest round-trip form (`1.2345e3`); only the layout differs from PostgreSQL's.
    let _ = if single { write!(out, "{:e}", value as f32) } else { write!(out, "{value:e}") };
    let formatted = &out[start..];
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    // At most 17 significant digits; copied out so that `out` can be rewritten.
    let mut digits = [0u8; 24];
    let mut ndigits = 0;
    for (slot, digit) in digits.iter_mut().zip(mantissa.bytes().filter(u8::is_ascii_digit)) {
        *slot = digit;
        ndigits += 1;
    }
    out.truncate(start);
    if negative {
        out.push('-');
    }
    let digits = &digits[..ndigits.max(1)];
    let push_digits = |out: &mut String, digits: &[u8]| digits.iter().for_each(|d| out.push(char::from(*d)));
    let threshold = if single { 6 } else { 15 };
    if (-4..threshold).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            (1..exponent.unsigned_abs()).for_each(|_| out.push('0'));
            push_digits(out, digits);
        } else {
            let integer_len = exponent.unsigned_abs() as usize + 1;
            if digits.len() <= integer_len {
                push_digits(out, digits);
                (digits.len()..integer_len).for_each(|_| out.push('0'));
            } else {
                push_digits(out, &digits[..integer_len]);
                out.push('.');
                push_digits(out, &digits[integer_len..]);
            }
        }
    } else {
        push_digits(out, &digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            push_digits(out, &digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exponent.unsigned_abs());
    }
}

/// `.ffffff` with trailing zeros trimmed; nothing for a zero fraction.
fn push_fraction(out: &mut String, micros: u32) {
    if micros == 0 {
        return;
    }
    let mut value = micros;
    let mut width = 6;
    while value.is_multiple_of(10) {
        value /= 10;
        width -= 1;
    }
    let _ = write!(out, ".{value:0width$}");
}

/// `HH:MM:SS[.ffffff]` for microseconds since midnight (0..=24h).
fn push_time_of_day(out: &mut String, micros: i64) {
    let micros = micros.clamp(0, MICROS_PER_DAY);
    let hours = micros / MICROS_PER_HOUR;
    let minutes = micros % MICROS_PER_HOUR / MICROS_PER_MINUTE;
    let seconds = micros % MICROS_PER_MINUTE / MICROS_PER_SECOND;
    let _ = write!(out, "{hours:02}:{minutes:02}:{seconds:02}");
    push_fraction(out, (micros % MICROS_PER_SECOND) as u32);
}

/// (year, month, day) of the proleptic Gregorian calendar for days since 1970-01-01 (year 0 is 1 BC).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days_from_civil inverse, on 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` for days since 2000-01-01; returns whether the year is BC (PostgreSQL appends ` BC` last).
fn push_date_part(out: &mut String, days: i64) -> bool {
    let (year, month, day) = civil_from_days(days + i64::from(PG_EPOCH_DAYS));
    let (year, bc) = if year <= 0 { (1 - year, true) } else { (year, false) };
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    bc
}

fn push_date(out: &mut String, days: i32) {
    match days {
        i32::MAX => out.push_str("infinity"),
        i32::MIN => out.push_str("-infinity"),
        _ => {
            if push_date_part(out, i64::from(days)) {
                out.push_str(" BC");
            }
        }
    }
}

fn push_timestamp(out: &mut String, micros: i64, utc: bool) {
    match micros {
        i64::MAX => out.push_str("infinity"),
        i64::MIN => out.push_str("-infinity"),
        _ => {
            let bc = push_date_part(out, micros.div_euclid(MICROS_PER_DAY));
            out.push(' ');
            push_time_of_day(out, micros.rem_euclid(MICROS_PER_DAY));
            if utc {
                out.push_str("+00");
            }
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// EncodeTimezone: the offset east of UTC as `+hh`, `+hh:mm` or `+hh:mm:ss`; `seconds_west` is PostgreSQL's sign.
fn push_zone(out: &mut String, seconds_west: i32) {
    let total = seconds_west.unsigned_abs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    out.push(if seconds_west <= 0 { '+' } else { '-' });
    let _ = if seconds != 0 {
        write!(out, "{hours:02}:{minutes:02}:{seconds:02}")
    } else if minutes != 0 {
        write!(out, "{hours:02}:{minutes:02}")
    } else {
        write!(out, "{hours:02}")
    };
}

/// EncodeInterval with `intervalstyle = iso_8601`: each non-zero part with its own sign.
fn push_interval(out: &mut String, micros: i64, days: i32, months: i32) {
    // PostgreSQL 17's infinite intervals set every field to its extreme.
    if micros == i64::MAX && days == i32::MAX && months == i32::MAX {
        return out.push_str("infinity");
    }
    if micros == i64::MIN && days == i32::MIN && months == i32::MIN {
        return out.push_str("-infinity");
    }
    let (years, months) = (months / 12, months % 12);
    let hours = micros / MICROS_PER_HOUR;
    let minutes = micros % MICROS_PER_HOUR / MICROS_PER_MINUTE;
    let seconds = micros % MICROS_PER_MINUTE / MICROS_PER_SECOND;
    let fraction = micros % MICROS_PER_SECOND;
    if years == 0 && months == 0 && days == 0 && micros == 0 {
        return out.push_str("PT0S");
    }
    let part = |out: &mut String, value: i64, unit: char| {
        if value != 0 {
            let _ = write!(out, "{value}{unit}");
        }
    };
    out.push('P');
    part(out, i64::from(years), 'Y');
    part(out, i64::from(months), 'M');
    part(out, i64::from(days), 'D');
    if micros != 0 {
        out.push('T');
    }
    part(out, hours, 'H');
    part(out, minutes, 'M');
    if seconds != 0 || fraction != 0 {
        if seconds < 0 || fraction < 0 {
            out.push('-');
        }
        let _ = write!(out, "{}", seconds.unsigned_abs());
        push_fraction(out, fraction.unsigned_abs() as u32);
        out.push('S');
    }
}

/// The lowercase `8-4-4-4-12` form.
fn push_uuid(out: &mut String, bytes: &[u8; 16]) {
    for (i, chunk) in [&bytes[0..4], &bytes[4..6], &bytes[6..8], &bytes[8..10], &bytes[10..16]].iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        push_hex(out, chunk);
    }
}

/// network_out: inet omits a full-length mask, cidr always shows it.
fn push_inet(out: &mut String, bytes: &[u8]) -> Result<()> {
    let mut reader = Reader::new(bytes, "inet");
    let family = reader.u8()?;
    let bits = reader.u8()?;
    let is_cidr = reader.u8()? != 0;
    let len = reader.u8()?;
    let address = reader.take(usize::from(len))?;
    reader.finish()?;
    let max_bits = match (family, address.len()) {
        (2, 4) => {
            let _ = write!(out, "{}", Ipv4Addr::new(address[0], address[1], address[2], address[3]));
            32
        }
        (3, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(address);
            let ip = Ipv6Addr::from(octets);
            let segments = ip.segments();
            // PostgreSQL (like BIND's inet_ntop) prints an IPv4-compatible address as `::1.2.3.4`.
            if segments[..6].iter().all(|s| *s == 0) && segments[6] != 0 {
                let _ = write!(out, "::{}", Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]));
            } else {
                let _ = write!(out, "{ip}");
            }
            128
        }
        _ => return Err(error("inet", format!("invalid family {family} with {len} address bytes"))),
    };
    if bits > max_bits {
        return Err(error("inet", format!("invalid mask length {bits}")));
    }
    if is_cidr || bits != max_bits {
        let _ = write!(out, "/{bits}");
    }
    Ok(())
}

fn push_mac(out: &mut String, bytes: &[u8]) {
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_hex(out, std::slice::from_ref(byte));
    }
}

fn push_bits(out: &mut String, bytes: &[u8]) -> Result<()> {
    let mut reader = Reader::new(bytes, "bit");
    let bit_len = reader.i32()?;
    let bit_len = usize::try_from(bit_len).map_err(|_| error("bit", format!("invalid bit length {bit_len}")))?;
    let data = reader.take(bit_len.div_ceil(8))?;
    reader.finish()?;
    out.reserve(bit_len);
    for i in 0..bit_len {
        out.push(if data[i / 8] & (0x80 >> (i % 8)) != 0 { '1' } else { '0' });
    }
    Ok(())
}

/// tsvectorout: `'lexeme':1A,2` entries separated by spaces, quotes and backslashes doubled.
fn push_tsvector(out: &mut String, bytes: &[u8]) -> Result<()> {
    let mut reader = Reader::new(bytes, "tsvector");
    let count = reader.i32()?;
    for i in 0..count {
        let rest = &reader.buf[reader.pos..];
        let nul = rest.iter().position(|b| *b == 0).ok_or_else(|| error("tsvector", "unterminated lexeme"))?;
        let lexeme = utf8(reader.take(nul)?, "tsvector")?;
        reader.take(1)?;
        if i > 0 {
            out.push(' ');
        }
        out.push('\'');
        for ch in lexeme.chars() {
            if ch == '\'' || ch == '\\' {
                out.push(ch);
            }
            out.push(ch);
        }
        out.push('\'');
        let positions = reader.u16()?;
        for p in 0..positions {
            let position = reader.u16()?;
            out.push(if p == 0 { ':' } else { ',' });
            let _ = write!(out, "{}", position & 0x3fff);
            match position >> 14 {
                3 => out.push('A'),
                2 => out.push('B'),
                1 => out.push('C'),
                _ => {}
            }
        }
    }
    reader.finish()
}

fn push_point(out: &mut String, reader: &mut Reader<'_>) -> Result<()> {
    let (x, y) = (reader.f64()?, reader.f64()?);
    out.push('(');
    push_float(out, x, false);
    out.push(',');
    push_float(out, y, false);
    out.push(')');
    Ok(())
}

fn push_points(out: &mut String, reader: &mut Reader<'_>, count: i32) -> Result<()> {
    let count = usize::try_from(count).map_err(|_| error(reader.type_name, format!("invalid point count {count}")))?;
    if reader.remaining() != count.saturating_mul(16) {
        return Err(wrong_length(reader.type_name, count.saturating_mul(16), reader.remaining()));
    }
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        push_point(out, reader)?;
    }
    Ok(())
}

fn push_geometric(out: &mut String, pg_type: &PgType, bytes: &[u8]) -> Result<()> {
    let name = type_name(pg_type);
    let mut reader = Reader::new(bytes, name);
    match pg_type {
        PgType::Point => push_point(out, &mut reader)?,
        PgType::Line => {
            out.push('{');
            for i in 0..3 {
                if i > 0 {
                    out.push(',');
                }
                push_float(out, reader.f64()?, false);
            }
            out.push('}');
        }
        PgType::Lseg => {
            out.push('[');
            push_points(out, &mut reader, 2)?;
            out.push(']');
        }
        PgType::Box => push_points(out, &mut reader, 2)?,
        PgType::Path => {
            let closed = reader.u8()? != 0;
            let count = reader.i32()?;
            out.push(if closed { '(' } else { '[' });
            push_points(out, &mut reader, count)?;
            out.push(if closed { ')' } else { ']' });
        }
        PgType::Polygon => {
            let count = reader.i32()?;
            out.push('(');
            push_points(out, &mut reader, count)?;
            out.push(')');
        }
        PgType::Circle => {
            out.push('<');
            push_point(out, &mut reader)?;
            out.push(',');
            push_float(out, reader.f64()?, false);
            out.push('>');
        }
        _ => return Err(error(name, "not a geometric type")),
    }
    reader.finish()
}

/// Quotes the text written since `start` when it needs it, as the composite output functions do: range_out and
/// record_out double embedded `"` and `\`, array_out backslash-escapes them.
fn quote_tail(out: &mut String, start: usize, special: &[char], backslash_escape: bool, quote_null: bool) {
    let tail = &out[start..];
    let needs_quotes = tail.is_empty()
        || (quote_null && tail.eq_ignore_ascii_case("NULL"))
        || tail.chars().any(|ch| ch == '"' || ch == '\\' || special.contains(&ch) || is_c_space(ch));
    if !needs_quotes {
        return;
    }
    let raw = out.split_off(start);
    out.push('"');
    for ch in raw.chars() {
        if ch == '"' || ch == '\\' {
            out.push(if backslash_escape { '\\' } else { ch });
        }
        out.push(ch);
    }
    out.push('"');
}

/// C's isspace in the C locale.
fn is_c_space(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// range_out: `empty`, or bounds in brackets, each quoted when it contains range syntax.
fn push_range(out: &mut String, subtype: &PgType, bytes: &[u8]) -> Result<()> {
    const EMPTY: u8 = 0x01;
    const LOWER_INCLUSIVE: u8 = 0x02;
    const UPPER_INCLUSIVE: u8 = 0x04;
    const LOWER_INFINITE: u8 = 0x08;
    const UPPER_INFINITE: u8 = 0x10;
    const LOWER_NULL: u8 = 0x20;
    const UPPER_NULL: u8 = 0x40;
    let mut reader = Reader::new(bytes, "range");
    let flags = reader.u8()?;
    if flags & EMPTY != 0 {
        reader.finish()?;
        out.push_str("empty");
        return Ok(());
    }
    out.push(if flags & LOWER_INCLUSIVE != 0 { '[' } else { '(' });
    if flags & (LOWER_INFINITE | LOWER_NULL) == 0 {
        push_range_bound(out, subtype, &mut reader)?;
    }
    out.push(',');
    if flags & (UPPER_INFINITE | UPPER_NULL) == 0 {
        push_range_bound(out, subtype, &mut reader)?;
    }
    out.push(if flags & UPPER_INCLUSIVE != 0 { ']' } else { ')' });
    reader.finish()
}

fn push_range_bound(out: &mut String, subtype: &PgType, reader: &mut Reader<'_>) -> Result<()> {
    let bound = reader.value()?.ok_or_else(|| error("range", "NULL bound"))?;
    let start = out.len();
    write_text(out, subtype, bound)?;
    quote_tail(out, start, &['(', ')', '[', ']', ','], false, false);
    Ok(())
}

/// The shape and element slices of a binary array (array_send): `dims` gets (length, lower bound) per
/// dimension, `elements` the byte ranges of the elements in row-major order (`None` for NULL).
fn parse_array(bytes: &[u8], dims: &mut Vec<(usize, i32)>, elements: &mut Vec<Option<(usize, usize)>>) -> Result<()> {
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

/// array_out: `{1,2}`, nested braces per dimension, `[2:3]=` when a lower bound is not 1.
fn push_array_literal(out: &mut String, element: &PgType, bytes: &[u8]) -> Result<()> {
    let (mut dims, mut elements) = (Vec::new(), Vec::new());
    parse_array(bytes, &mut dims, &mut elements)?;
    if dims.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    if dims.iter().any(|(_, lower)| *lower != 1) {
        for (len, lower) in &dims {
            let upper = i64::from(*lower) + *len as i64 - 1;
            let _ = write!(out, "[{lower}:{upper}]");
        }
        out.push('=');
    }
    // box is the one built-in type whose array delimiter is not a comma.
    let delimiter = if matches!(element, PgType::Box) { ';' } else { ',' };
    let lengths: Vec<usize> = dims.iter().map(|(len, _)| *len).collect();
    let mut next = 0;
    push_array_level(
        &lengths,
        &mut next,
        &mut |out: &mut String, index: usize| match elements.get(index) {
            Some(Some((start, end))) => {
                let start_len = out.len();
                write_text(out, element, &bytes[*start..*end])?;
                quote_tail(out, start_len, &['{', '}', delimiter], true, true);
                Ok(())
            }
            _ => {
                out.push_str("NULL");
                Ok(())
            }
        },
        out,
        ('{', delimiter, '}'),
    )
}

/// Writes one nesting level of an array (row-major), calling `element` for each leaf in order.
fn push_array_level(
    lengths: &[usize],
    next: &mut usize,
    element: &mut dyn FnMut(&mut String, usize) -> Result<()>,
    out: &mut String,
    (open, delimiter, close): (char, char, char),
) -> Result<()> {
    let Some((len, inner)) = lengths.split_first() else {
        return Ok(());
    };
    out.push(open);
    for i in 0..*len {
        if i > 0 {
            out.push(delimiter);
        }
        if inner.is_empty() {
            element(out, *next)?;
            *next += 1;
        } else {
            push_array_level(inner, next, element, out, (open, delimiter, close))?;
        }
    }
    out.push(close);
    Ok(())
}

/// One field of a binary record: the sender's type OID and the value (`None` for NULL).
type RecordField<'a> = (u32, Option<&'a [u8]>);

/// The fields of a binary record (record_send), checked against the declared field count.
fn parse_record(bytes: &[u8], expected: usize) -> Result<Vec<RecordField<'_>>> {
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

/// record_out: `(1,"a b",)`, empty for NULL, quoting as range bounds do.
fn push_record_literal(out: &mut String, fields: &[(String, PgType)], bytes: &[u8]) -> Result<()> {
    out.push('(');
    for (i, ((_, pg_type), (_, value))) in fields.iter().zip(parse_record(bytes, fields.len())?).enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(value) = value {
            let start = out.len();
            write_text(out, pg_type, value)?;
            quote_tail(out, start, &['(', ')', ','], false, false);
        }
    }
    out.push(')');
    Ok(())
}

fn push_char(out: &mut String, bytes: &[u8]) -> Result<()> {
    match bytes {
        [] | [0] => {}
        // charout (PostgreSQL 13+) escapes non-ASCII bytes as `\ooo`.
        [byte] if *byte >= 0x80 => {
            let _ = write!(out, "\\{byte:03o}");
        }
        [byte] => out.push(char::from(*byte)),
        _ => return Err(wrong_length("\"char\"", 1, bytes.len())),
    }
    Ok(())
}

/// Appends PostgreSQL's text form of one non-NULL value.
fn write_text(out: &mut String, pg_type: &PgType, bytes: &[u8]) -> Result<()> {
    let name = type_name(pg_type);
    match pg_type {
        PgType::Bool => out.push_str(if fixed::<1>(bytes, name)?[0] != 0 { "t" } else { "f" }),
        PgType::Int2 => {
            let _ = write!(out, "{}", i16::from_be_bytes(fixed(bytes, name)?));
        }
        PgType::Int4 => {
            let _ = write!(out, "{}", i32::from_be_bytes(fixed(bytes, name)?));
        }
        PgType::Int8 => {
            let _ = write!(out, "{}", i64::from_be_bytes(fixed(bytes, name)?));
        }
        PgType::Oid => {
            let _ = write!(out, "{}", u32::from_be_bytes(fixed(bytes, name)?));
        }
        PgType::Float4 => push_float(out, f64::from(f32::from_be_bytes(fixed(bytes, name)?)), true),
        PgType::Float8 => push_float(out, f64::from_be_bytes(fixed(bytes, name)?), false),
        PgType::Numeric { .. } | PgType::NumericText => push_numeric(out, Numeric::parse(bytes)?),
        PgType::Money => push_money(out, i64::from_be_bytes(fixed(bytes, name)?)),
        PgType::Text => out.push_str(utf8(bytes, name)?),
        PgType::Char => push_char(out, bytes)?,
        PgType::Jsonb | PgType::JsonPath => out.push_str(versioned_text(bytes, name)?),
        PgType::Bytea | PgType::Unknown { .. } => push_bytea(out, bytes),
        PgType::Date => push_date(out, i32::from_be_bytes(fixed(bytes, name)?)),
        PgType::Time => push_time_of_day(out, checked_time(bytes, name)?),
        PgType::TimeTz => {
            let mut reader = Reader::new(bytes, name);
            let micros = reader.i64()?;
            let zone = reader.i32()?;
            reader.finish()?;
            push_time_of_day(out, time_in_range(micros, name)?);
            push_zone(out, zone);
        }
        PgType::Timestamp => push_timestamp(out, i64::from_be_bytes(fixed(bytes, name)?), false),
        PgType::TimestampTz => push_timestamp(out, i64::from_be_bytes(fixed(bytes, name)?), true),
        PgType::Interval => {
            let mut reader = Reader::new(bytes, name);
            let (micros, days, months) = (reader.i64()?, reader.i32()?, reader.i32()?);
            reader.finish()?;
            push_interval(out, micros, days, months);
        }
        PgType::Uuid => push_uuid(out, &fixed(bytes, name)?),
        PgType::Inet => push_inet(out, bytes)?,
        PgType::MacAddr => push_mac(out, &fixed::<6>(bytes, name)?),
        PgType::MacAddr8 => push_mac(out, &fixed::<8>(bytes, name)?),
        PgType::Bit => push_bits(out, bytes)?,
        PgType::PgLsn => {
            let lsn = u64::from_be_bytes(fixed(bytes, name)?);
            let _ = write!(out, "{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff);
        }
        PgType::TsVector => push_tsvector(out, bytes)?,
        PgType::Point | PgType::Line | PgType::Lseg | PgType::Box | PgType::Path | PgType::Polygon | PgType::Circle => {
            push_geometric(out, pg_type, bytes)?
        }
        PgType::Array { element, .. } => push_array_literal(out, element, bytes)?,
        PgType::Range(subtype) => push_range(out, subtype, bytes)?,
        PgType::Composite(fields) => push_record_literal(out, fields, bytes)?,
    }
    Ok(())
}

/// PostgreSQL's text form of one non-NULL value in binary send format: `2024-01-31`, `[1,10)`, `(1,"a b")`…
///
/// Money is rendered as a plain two-decimal number (`-12.34`), since its text form depends on the server locale.
pub fn text_form(pg_type: &PgType, bytes: &[u8]) -> std::result::Result<String, DecodeError> {
    let mut out = String::new();
    write_text(&mut out, pg_type, bytes)?;
    Ok(out)
}

fn push_money(out: &mut String, cents: i64) {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:02}", abs / 100, abs % 100);
}

fn time_in_range(micros: i64, name: &'static str) -> Result<i64> {
    if (0..=MICROS_PER_DAY).contains(&micros) {
        Ok(micros)
    } else {
        Err(error(name, format!("time of day {micros}µs out of range")))
    }
}

fn checked_time(bytes: &[u8], name: &'static str) -> Result<i64> {
    time_in_range(i64::from_be_bytes(fixed(bytes, name)?), name)
}

// ---------------------------------------------------------------------------------------------------------------
// JSON (composites)
// ---------------------------------------------------------------------------------------------------------------

/// The OID of `json`, whose values resolve to [`PgType::Text`] but are embedded in JSON as values.
const JSON_OID: u32 = 114;

fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            ch if u32::from(ch) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
}

/// A JSON document from PostgreSQL, embedded as a value; kept as a string should it somehow not parse.
fn push_raw_json(out: &mut String, text: &str) {
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        out.push_str(text.trim());
    } else {
        push_json_string(out, text);
    }
}

/// One non-NULL value as JSON: numbers and booleans as such, json documents embedded, arrays as (nested) JSON
/// arrays, composites as objects, everything else as the string of its text form. `oid` is the type OID sent
/// with the value, when there is one.
fn write_json(out: &mut String, pg_type: &PgType, oid: Option<u32>, bytes: &[u8]) -> Result<()> {
    let name = type_name(pg_type);
    match pg_type {
        PgType::Bool => out.push_str(if fixed::<1>(bytes, name)?[0] != 0 { "true" } else { "false" }),
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid | PgType::Money => write_text(out, pg_type, bytes)?,
        PgType::Float4 | PgType::Float8 => {
            let value = match pg_type {
                PgType::Float4 => f64::from(f32::from_be_bytes(fixed(bytes, name)?)),
                _ => f64::from_be_bytes(fixed(bytes, name)?),
            };
            if value.is_finite() {
                push_float(out, value, matches!(pg_type, PgType::Float4));
            } else {
                out.push('"');
                push_float(out, value, false);
                out.push('"');
            }
        }
        PgType::Numeric { .. } | PgType::NumericText => {
            let numeric = Numeric::parse(bytes)?;
            let quoted = !matches!(numeric, Numeric::Finite { .. });
            if quoted {
                out.push('"');
            }
            push_numeric(out, numeric);
            if quoted {
                out.push('"');
            }
        }
        PgType::Jsonb => push_raw_json(out, versioned_text(bytes, name)?),
        PgType::Text if oid == Some(JSON_OID) => push_raw_json(out, utf8(bytes, name)?),
        PgType::Array { element, .. } => {
            let (mut dims, mut elements) = (Vec::new(), Vec::new());
            parse_array(bytes, &mut dims, &mut elements)?;
            let element_oid = bytes.get(8..12).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
            if dims.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            let lengths: Vec<usize> = dims.iter().map(|(len, _)| *len).collect();
            let mut next = 0;
            push_array_level(
                &lengths,
                &mut next,
                &mut |out: &mut String, index: usize| match elements.get(index) {
                    Some(Some((start, end))) => write_json(out, element, element_oid, &bytes[*start..*end]),
                    _ => {
                        out.push_str("null");
                        Ok(())
                    }
                },
                out,
                ('[', ',', ']'),
            )?;
        }
        PgType::Composite(fields) => write_composite_json(out, fields, bytes)?,
        _ => {
            let start = out.len();
            write_text(out, pg_type, bytes)?;
            let text = out.split_off(start);
            push_json_string(out, &text);
        }
    }
    Ok(())
}

/// A record as a JSON object of its fields, in declaration order.
fn write_composite_json(out: &mut String, fields: &[(String, PgType)], bytes: &[u8]) -> Result<()> {
    out.push('{');
    for (i, ((field, pg_type), (oid, value))) in fields.iter().zip(parse_record(bytes, fields.len())?).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, field);
        out.push(':');
        match value {
            Some(value) => write_json(out, pg_type, Some(oid), value)?,
            None => out.push_str("null"),
        }
    }
    out.push('}');
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------------------------

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
    use connector_core::arrow::array::{
        Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
        Int16Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use connector_core::arrow::datatypes::TimeUnit;

    fn decode(pg_type: &PgType, values: &[Option<&[u8]>]) -> ArrayRef {
        let mut builder = ColumnBuilder::new(pg_type, 4);
        for value in values {
            builder.append(*value).expect("decodes");
        }
        assert_eq!(builder.len(), values.len());
        let array = builder.finish();
        assert_eq!(array.data_type(), &pg_type.arrow_type());
        assert_eq!(array.len(), values.len());
        assert!(builder.is_empty());
        array
    }

    fn texts(pg_type: &PgType, values: &[&[u8]]) -> Vec<String> {
        let values: Vec<Option<&[u8]>> = values.iter().map(|v| Some(*v)).collect();
        let array = decode(pg_type, &values);
        array.as_string::<i32>().iter().map(|v| v.expect("not null").to_string()).collect()
    }

    fn text(pg_type: &PgType, value: &[u8]) -> String {
        texts(pg_type, &[value]).remove(0)
    }

    fn fails(pg_type: &PgType, value: &[u8]) -> DecodeError {
        let mut builder = ColumnBuilder::new(pg_type, 1);
        let error = builder.append(Some(value)).expect_err("must not decode");
        assert_eq!(builder.len(), 0, "a failed append leaves nothing behind");
        error
    }

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as i16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(sign.to_be_bytes());
        out.extend(dscale.to_be_bytes());
        digits.iter().for_each(|d| out.extend(d.to_be_bytes()));
        out
    }

    fn array(dims: &[i32], element_oid: u32, elements: &[Option<Vec<u8>>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((dims.len() as i32).to_be_bytes());
        out.extend(i32::from(elements.iter().any(Option::is_none)).to_be_bytes());
        out.extend(element_oid.to_be_bytes());
        for len in dims {
            out.extend(len.to_be_bytes());
            out.extend(1i32.to_be_bytes());
        }
        for element in elements {
            push_len_value(&mut out, element.as_deref());
        }
        out
    }

    fn push_len_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            Some(bytes) => {
                out.extend((bytes.len() as i32).to_be_bytes());
                out.extend(bytes);
            }
            None => out.extend((-1i32).to_be_bytes()),
        }
    }

    fn record(fields: &[(u32, Option<Vec<u8>>)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((fields.len() as i32).to_be_bytes());
        for (oid, value) in fields {
            out.extend(oid.to_be_bytes());
            push_len_value(&mut out, value.as_deref());
        }
        out
    }

    fn range(flags: u8, lower: Option<Vec<u8>>, upper: Option<Vec<u8>>) -> Vec<u8> {
        let mut out = vec![flags];
        for bound in [lower, upper].into_iter().flatten() {
            push_len_value(&mut out, Some(&bound));
        }
        out
    }

    fn i4(v: i32) -> Vec<u8> {
        v.to_be_bytes().to_vec()
    }

    fn int_list(array: &ArrayRef) -> Vec<Option<Vec<Option<i32>>>> {
        array
            .as_list::<i32>()
            .iter()
            .map(|row| {
                row.map(|values| values.as_primitive::<connector_core::arrow::datatypes::Int32Type>().iter().collect())
            })
            .collect()
    }

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
    fn unconstrained_numeric_is_exact_text() {
        let cases = [
            (numeric(-1, NUMERIC_NEG, 4, &[100]), "-0.0100"),
            (numeric(0, NUMERIC_POS, 0, &[123]), "123"),
            (numeric(-2, NUMERIC_POS, 5, &[1000]), "0.00001"),
            (numeric(1, NUMERIC_POS, 1, &[1234, 5678, 9000]), "12345678.9"),
            (numeric(1, NUMERIC_POS, 0, &[1]), "10000"),
            (numeric(0, NUMERIC_POS, 0, &[]), "0"),
            (numeric(0, NUMERIC_POS, 3, &[]), "0.000"),
            (numeric(0, NUMERIC_POS, 6, &[3, 1415, 9265]), "3.141592"),
            (numeric(0, NUMERIC_NAN, 0, &[]), "NaN"),
            (numeric(0, NUMERIC_PINF, 0, &[]), "Infinity"),
            (numeric(0, NUMERIC_NINF, 0, &[]), "-Infinity"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(text(&PgType::NumericText, &bytes), expected);
        }
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
    fn times_and_intervals() {
        let time = |micros: i64| micros.to_be_bytes();
        assert_eq!(
            texts(&PgType::Time, &[&time(49_500_000_000), &time(49_500_500_000), &time(MICROS_PER_DAY), &time(1)]),
            ["13:45:00", "13:45:00.5", "24:00:00", "00:00:00.000001"]
        );
        fails(&PgType::Time, &time(-1));
        let timetz = |micros: i64, zone: i32| [&micros.to_be_bytes()[..], &zone.to_be_bytes()[..]].concat();
        assert_eq!(
            texts(
                &PgType::TimeTz,
                &[
                    &timetz(43_200_000_000, -7200),
                    &timetz(43_200_000_000, 19_800),
                    &timetz(0, 0),
                    &timetz(1_500_000, -20_715)
                ]
            ),
            ["12:00:00+02", "12:00:00-05:30", "00:00:00+00", "00:00:01.5+05:45:15"]
        );
        let interval = |micros: i64, days: i32, months: i32| {
            [&micros.to_be_bytes()[..], &days.to_be_bytes(), &months.to_be_bytes()].concat()
        };
        let hour = MICROS_PER_HOUR;
        assert_eq!(
            texts(
                &PgType::Interval,
                &[
                    &interval(4 * hour + 5 * MICROS_PER_MINUTE + 6_500_000, 3, 14),
                    &interval(0, 0, 0),
                    &interval(0, 0, -14),
                    &interval(-(hour + 30 * MICROS_PER_MINUTE), 0, 0),
                    &interval(-500_000, -1, 0),
                    &interval(hour, 0, 12),
                    &interval(i64::MAX, i32::MAX, i32::MAX),
                ]
            ),
            ["P1Y2M3DT4H5M6.5S", "PT0S", "P-1Y-2M", "PT-1H-30M", "P-1DT-0.5S", "P1YT1H", "infinity"]
        );
    }

    #[test]
    fn identifiers_and_network_types() {
        let uuid = [0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11];
        assert_eq!(text(&PgType::Uuid, &uuid), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");

        let inet = |family: u8, bits: u8, cidr: u8, address: &[u8]| {
            [&[family, bits, cidr, address.len() as u8][..], address].concat()
        };
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let v6_net = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4];
        assert_eq!(
            texts(
                &PgType::Inet,
                &[
                    &inet(2, 24, 0, &[192, 168, 0, 1]),
                    &inet(2, 32, 0, &[10, 0, 0, 1]),
                    &inet(2, 8, 1, &[10, 0, 0, 0]),
                    &inet(2, 32, 1, &[10, 0, 0, 1]),
                    &inet(3, 128, 0, &v6),
                    &inet(3, 64, 0, &v6),
                    &inet(3, 32, 1, &v6_net),
                    &inet(3, 128, 0, &mapped),
                ]
            ),
            [
                "192.168.0.1/24",
                "10.0.0.1",
                "10.0.0.0/8",
                "10.0.0.1/32",
                "2001:db8::1",
                "2001:db8::1/64",
                "2001:db8::/32",
                "::ffff:1.2.3.4"
            ]
        );
        fails(&PgType::Inet, &inet(2, 33, 0, &[1, 2, 3, 4]));
        fails(&PgType::Inet, &inet(3, 8, 0, &[1, 2, 3, 4]));
        fails(&PgType::Inet, &inet(2, 8, 0, &[1, 2, 3, 4])[..6]);

        assert_eq!(text(&PgType::MacAddr, &[0x08, 0x00, 0x2b, 0x01, 0x02, 0x03]), "08:00:2b:01:02:03");
        assert_eq!(
            text(&PgType::MacAddr8, &[0x08, 0x00, 0x2b, 0x01, 0x02, 0x03, 0x04, 0x05]),
            "08:00:2b:01:02:03:04:05"
        );
        assert_eq!(text(&PgType::PgLsn, &0x16_B374_D848u64.to_be_bytes()), "16/B374D848");
        assert_eq!(text(&PgType::PgLsn, &0u64.to_be_bytes()), "0/0");
    }

    #[test]
    fn bit_strings() {
        let bits = |len: i32, data: &[u8]| [&len.to_be_bytes()[..], data].concat();
        assert_eq!(
            texts(&PgType::Bit, &[&bits(10, &[0b1011_0000, 0b0100_0000]), &bits(0, &[]), &bits(8, &[0xff])]),
            ["1011000001", "", "11111111"]
        );
        fails(&PgType::Bit, &bits(9, &[0xff]));
        fails(&PgType::Bit, &bits(-1, &[]));
    }

    #[test]
    fn tsvectors() {
        let mut bytes = 3i32.to_be_bytes().to_vec();
        bytes.extend(b"a\0");
        bytes.extend(2u16.to_be_bytes());
        bytes.extend((1u16 | 3 << 14).to_be_bytes());
        bytes.extend(2u16.to_be_bytes());
        bytes.extend(b"cat\0");
        bytes.extend(1u16.to_be_bytes());
        bytes.extend((3u16 | 1 << 14).to_be_bytes());
        bytes.extend("it's\\".as_bytes());
        bytes.push(0);
        bytes.extend(0u16.to_be_bytes());
        assert_eq!(text(&PgType::TsVector, &bytes), "'a':1A,2 'cat':3C 'it''s\\\\'");
        assert_eq!(text(&PgType::TsVector, &0i32.to_be_bytes()), "");
        fails(&PgType::TsVector, &bytes[..bytes.len() - 1]);
        fails(&PgType::TsVector, &[0, 0, 0, 1, b'a']);
    }

    #[test]
    fn geometric_types() {
        let floats = |values: &[f64]| values.iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(text(&PgType::Point, &floats(&[1.0, 2.5])), "(1,2.5)");
        assert_eq!(text(&PgType::Point, &floats(&[1e20, -1e-5])), "(1e+20,-1e-05)");
        assert_eq!(text(&PgType::Line, &floats(&[1.0, -1.0, 0.0])), "{1,-1,0}");
        assert_eq!(text(&PgType::Lseg, &floats(&[1.0, 2.0, 3.0, 4.0])), "[(1,2),(3,4)]");
        assert_eq!(text(&PgType::Box, &floats(&[3.0, 4.0, 1.0, 2.0])), "(3,4),(1,2)");
        let path = |closed: u8, points: &[f64]| {
            [&[closed][..], &((points.len() / 2) as i32).to_be_bytes(), &floats(points)].concat()
        };
        assert_eq!(text(&PgType::Path, &path(1, &[1.0, 2.0, 3.0, 4.0])), "((1,2),(3,4))");
        assert_eq!(text(&PgType::Path, &path(0, &[1.0, 2.0, 3.0, 4.0])), "[(1,2),(3,4)]");
        fails(&PgType::Path, &path(0, &[1.0, 2.0, 3.0, 4.0])[..20]);
        let polygon = [&2i32.to_be_bytes()[..], &floats(&[1.0, 2.0, 3.0, 4.0])].concat();
        assert_eq!(text(&PgType::Polygon, &polygon), "((1,2),(3,4))");
        assert_eq!(text(&PgType::Circle, &floats(&[1.0, 2.0, 3.0])), "<(1,2),3>");
    }

    #[test]
    fn floats_print_like_postgres() {
        let double = |value: f64| {
            let mut out = String::new();
            push_float(&mut out, value, false);
            out
        };
        let single = |value: f32| {
            let mut out = String::new();
            push_float(&mut out, f64::from(value), true);
            out
        };
        assert_eq!(double(1.0), "1");
        assert_eq!(double(-0.0), "-0");
        assert_eq!(double(0.1), "0.1");
        assert_eq!(double(0.0001), "0.0001");
        assert_eq!(double(0.00001), "1e-05");
        assert_eq!(double(123_456_789_012_345.0), "123456789012345");
        assert_eq!(double(1e15), "1e+15");
        assert_eq!(double(1.5e300), "1.5e+300");
        assert_eq!(double(f64::INFINITY), "Infinity");
        assert_eq!(double(f64::NAN), "NaN");
        assert_eq!(double(100.25), "100.25");
        assert_eq!(single(0.1), "0.1");
        assert_eq!(single(123_456.0), "123456");
        assert_eq!(single(1_000_000.0), "1e+06");
        assert_eq!(single(-1.25e-7), "-1.25e-07");
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
    fn ranges_print_like_range_out() {
        let int4range = PgType::Range(Box::new(PgType::Int4));
        assert_eq!(
            texts(
                &int4range,
                &[
                    &range(0x02, Some(i4(1)), Some(i4(10))),
                    &range(0x08 | 0x04, None, Some(i4(5))),
                    &range(0x01, None, None),
                    &range(0x08 | 0x10, None, None),
                ]
            ),
            ["[1,10)", "(,5]", "empty", "(,)"]
        );
        let daterange = PgType::Range(Box::new(PgType::Date));
        assert_eq!(text(&daterange, &range(0x02 | 0x10, Some(i4(8766)), None)), "[2024-01-01,)");
        let tsrange = PgType::Range(Box::new(PgType::TimestampTz));
        let bound = |micros: i64| micros.to_be_bytes().to_vec();
        assert_eq!(
            text(&tsrange, &range(0x02, Some(bound(0)), Some(bound(86_400_000_000)))),
            "[\"2000-01-01 00:00:00+00\",\"2000-01-02 00:00:00+00\")"
        );
        let textrange = PgType::Range(Box::new(PgType::Text));
        assert_eq!(
            text(&textrange, &range(0x02 | 0x04, Some(b"".to_vec()), Some(b"a\"b\\c".to_vec()))),
            "[\"\",\"a\"\"b\\\\c\"]"
        );
        let numrange = PgType::Range(Box::new(PgType::NumericText));
        assert_eq!(text(&numrange, &range(0x02 | 0x10, Some(numeric(0, NUMERIC_POS, 1, &[1, 5000])), None)), "[1.5,)");
        fails(&int4range, &range(0x02, Some(i4(1)), None));
        fails(&int4range, &range(0x02, Some(vec![0, 1]), Some(i4(1))));
    }

    #[test]
    fn composites_become_json_objects() {
        let address = PgType::Composite(vec![("city".into(), PgType::Text), ("zip".into(), PgType::Int4)]);
        let pg_type = PgType::Composite(vec![
            ("id".into(), PgType::Int8),
            ("name".into(), PgType::Text),
            ("missing".into(), PgType::Text),
            ("ok".into(), PgType::Bool),
            ("amount".into(), PgType::NumericText),
            ("ratio".into(), PgType::Numeric { precision: 5, scale: 2 }),
            ("weird".into(), PgType::NumericText),
            ("score".into(), PgType::Float8),
            ("tags".into(), PgType::Array { element: Box::new(PgType::Text), dimensions: 1 }),
            ("grid".into(), PgType::Array { element: Box::new(PgType::Int4), dimensions: 2 }),
            ("address".into(), address),
            ("doc".into(), PgType::Jsonb),
            ("raw".into(), PgType::Text),
            ("day".into(), PgType::Date),
            ("span".into(), PgType::Range(Box::new(PgType::Int4))),
            ("inf".into(), PgType::Float4),
        ]);
        let value = record(&[
            (20, Some(42i64.to_be_bytes().to_vec())),
            (25, Some(b"say \"hi\"\n".to_vec())),
            (25, None),
            (16, Some(vec![1])),
            (1700, Some(numeric(-1, NUMERIC_NEG, 4, &[100]))),
            (1700, Some(numeric(0, NUMERIC_POS, 2, &[1, 2500]))),
            (1700, Some(numeric(0, NUMERIC_NAN, 0, &[]))),
            (701, Some(1.5f64.to_be_bytes().to_vec())),
            (1009, Some(array(&[2], 25, &[Some(b"a".to_vec()), None]))),
            (1007, Some(array(&[2, 1], 23, &[Some(i4(1)), Some(i4(2))]))),
            (90_000, Some(record(&[(25, Some(b"Oslo".to_vec())), (23, None)]))),
            (3802, Some(b"\x01{\"k\": [1, 2]}".to_vec())),
            (114, Some(b"[true]".to_vec())),
            (1082, Some(i4(8796))),
            (3904, Some(range(0x02, Some(i4(1)), Some(i4(10))))),
            (700, Some(f32::INFINITY.to_be_bytes().to_vec())),
        ]);
        let json = text(&pg_type, &value);
        assert_eq!(
            json,
            concat!(
                r#"{"id":42,"name":"say \"hi\"\n","missing":null,"ok":true,"amount":-0.0100,"ratio":1.25,"#,
                r#""weird":"NaN","score":1.5,"tags":["a",null],"grid":[[1],[2]],"#,
                r#""address":{"city":"Oslo","zip":null},"doc":{"k": [1, 2]},"raw":[true],"day":"2024-01-31","#,
                r#""span":"[1,10)","inf":"Infinity"}"#
            )
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed["amount"], serde_json::json!(-0.01));

        let error = fails(&pg_type, &record(&[(20, Some(42i64.to_be_bytes().to_vec()))]));
        assert!(error.reason.contains("1 fields"), "{error}");
        let point = PgType::Composite(vec![("x".into(), PgType::Int4)]);
        fails(&point, &record(&[(23, Some(vec![1]))]));
        assert_eq!(text(&point, &record(&[(23, None)])), r#"{"x":null}"#);
    }

    #[test]
    fn nested_text_forms() {
        let tags = PgType::Array { element: Box::new(PgType::Text), dimensions: 1 };
        let value = array(&[4], 25, &[Some(b"a b".to_vec()), None, Some(b"null".to_vec()), Some(b"x\"y".to_vec())]);
        assert_eq!(text_form(&tags, &value).expect("array"), r#"{"a b",NULL,"null","x\"y"}"#);
        let matrix = PgType::Array { element: Box::new(PgType::Int4), dimensions: 2 };
        let value = array(&[2, 2], 23, &[Some(i4(1)), Some(i4(2)), Some(i4(3)), Some(i4(4))]);
        assert_eq!(text_form(&matrix, &value).expect("array"), "{{1,2},{3,4}}");
        let pair =
            PgType::Composite(vec![("a".into(), PgType::Int4), ("b".into(), PgType::Text), ("c".into(), PgType::Text)]);
        let value = record(&[(23, Some(i4(1))), (25, Some(b"x,y".to_vec())), (25, None)]);
        assert_eq!(text_form(&pair, &value).expect("record"), r#"(1,"x,y",)"#);
        assert_eq!(text_form(&PgType::Bool, &[1]).expect("bool"), "t");
        assert_eq!(text_form(&PgType::Bytea, &[1, 0xab]).expect("bytea"), "\\x01ab");
        assert_eq!(text_form(&PgType::Money, &(-5i64).to_be_bytes()).expect("money"), "-0.05");
        assert_eq!(text_form(&PgType::Oid, &7u32.to_be_bytes()).expect("oid"), "7");
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
