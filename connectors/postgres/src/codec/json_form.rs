//! Values as JSON, for composites, which land as a JSON object of their fields: numbers, booleans and json
//! documents as such, arrays as JSON arrays, everything else as the string of its text form.

use std::fmt::Write as _;

use super::text_form::{push_array_level, push_float, push_numeric, write_text};
use super::wire_reader::{Numeric, Result, fixed, parse_array, parse_record, type_name, utf8, versioned_text};
use crate::schema::PgType;

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
pub(super) fn write_composite_json(out: &mut String, fields: &[(String, PgType)], bytes: &[u8]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_values::{array, fails, i4, numeric, range, record, text};
    use crate::codec::wire_reader::{NUMERIC_NAN, NUMERIC_NEG, NUMERIC_POS};

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
}
