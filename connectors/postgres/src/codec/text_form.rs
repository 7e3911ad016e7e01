//! PostgreSQL's text output forms (`typoutput`) of values in binary send format — `2024-01-31`, `[1,10)`,
//! `(1,"a b")` — for the types that land as text.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::wire_reader::{
    DecodeError, Numeric, PG_EPOCH_DAYS, Reader, Result, error, fixed, numeric_digit, parse_array, parse_record,
    type_name, utf8, versioned_text, wrong_length,
};
use crate::schema::PgType;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

/// `\x` and lowercase hex, bytea's text form.
pub(super) fn push_bytea(out: &mut String, bytes: &[u8]) {
    out.push_str("\\x");
    push_hex(out, bytes);
}

/// numeric_out: the exact decimal with `dscale` fraction digits, never exponent notation.
pub(super) fn push_numeric(out: &mut String, numeric: Numeric<'_>) {
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
pub(super) fn push_float(out: &mut String, value: f64, single: bool) {
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
pub(super) fn push_array_level(
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
pub(super) fn write_text(out: &mut String, pg_type: &PgType, bytes: &[u8]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_values::{array, fails, i4, numeric, range, record, text, texts};
    use crate::codec::wire_reader::{NUMERIC_NAN, NUMERIC_NEG, NUMERIC_NINF, NUMERIC_PINF, NUMERIC_POS};

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
}
