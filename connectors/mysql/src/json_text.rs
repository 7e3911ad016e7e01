//! MySQL's binary JSON (in binlog row images) as the text MySQL itself prints for it, so a JSON value reads the
//! same whether it came from the snapshot (the server's text) or from the binlog: a space after each `:` and
//! `,`, object keys in MySQL's order (shorter first, then by bytes), DECIMALs as numbers, dates and times as
//! quoted strings (six fraction digits), other opaque values as MySQL prints them (`"base64:type<N>:<data>"`).
//!
//! mysql_common decodes the binary form (into its `JsonDom`); only the printing is ours, because its
//! conversion to `serde_json` prints compactly, orders keys alphabetically and turns DECIMALs into strings.

use std::io;

use mysql_async::binlog::jsonb::{self, JsonContainer, JsonDom, JsonNumber, JsonScalar};
use mysql_async::consts::ColumnType;

/// MySQL's DECIMAL_MAX_PRECISION.
const MAX_DECIMAL_PRECISION: u8 = 65;

/// The text MySQL prints for a binary JSON value; an error for a value no server writes.
pub fn mysql_json_text(value: jsonb::Value<'_>) -> io::Result<String> {
    check_decimals(&value)?;
    let mut text = String::new();
    write_value(&value.parse()?, &mut text);
    Ok(text)
}

/// Checks every DECIMAL of a document for a precision and scale a server writes. mysql_common (0.35) sizes the
/// buffer of a DECIMAL's digits from its precision less its scale, unchecked: a scale above the precision
/// made it allocate exabytes and abort the process.
fn check_decimals(value: &jsonb::Value<'_>) -> io::Result<()> {
    match value {
        jsonb::Value::Opaque(opaque) if opaque.value_type() == ColumnType::MYSQL_TYPE_NEWDECIMAL => {
            match *opaque.data_raw() {
                [precision, scale, ..] if scale <= precision && precision <= MAX_DECIMAL_PRECISION => Ok(()),
                [precision, scale, ..] => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a JSON DECIMAL has precision {precision} and scale {scale}, which no server writes"),
                )),
                _ => Err(io::Error::new(io::ErrorKind::InvalidData, "a JSON DECIMAL lacks its precision and scale")),
            }
        }
        jsonb::Value::SmallArray(array) => array.iter().try_for_each(|item| check_decimals(&item?)),
        jsonb::Value::LargeArray(array) => array.iter().try_for_each(|item| check_decimals(&item?)),
        jsonb::Value::SmallObject(object) => object.iter().try_for_each(|member| check_decimals(&member?.1)),
        jsonb::Value::LargeObject(object) => object.iter().try_for_each(|member| check_decimals(&member?.1)),
        _ => Ok(()),
    }
}

fn write_value(value: &JsonDom, text: &mut String) {
    match value {
        JsonDom::Container(JsonContainer::Array(items)) => {
            text.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    text.push_str(", ");
                }
                write_value(item, text);
            }
            text.push(']');
        }
        JsonDom::Container(JsonContainer::Object(members)) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_by(|(left, _), (right, _)| left.len().cmp(&right.len()).then_with(|| left.cmp(right)));
            text.push('{');
            for (index, (key, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    text.push_str(", ");
                }
                write_string(key, text);
                text.push_str(": ");
                write_value(member, text);
            }
            text.push('}');
        }
        JsonDom::Scalar(scalar) => write_scalar(scalar, text),
    }
}

fn write_scalar(scalar: &JsonScalar, text: &mut String) {
    match scalar {
        JsonScalar::Null => text.push_str("null"),
        JsonScalar::Boolean(flag) => text.push_str(if *flag { "true" } else { "false" }),
        JsonScalar::Number(JsonNumber::Int(number)) => text.push_str(&number.to_string()),
        JsonScalar::Number(JsonNumber::Uint(number)) => text.push_str(&number.to_string()),
        JsonScalar::Number(JsonNumber::Decimal(number)) => text.push_str(&number.to_string()),
        // Shortest round-trip form with a `.0` on whole numbers (`3.0`, `1.5e-10`), as MySQL prints doubles;
        // JSON has no infinities or NaN, which MySQL does not store either.
        JsonScalar::Number(JsonNumber::Double(number)) => match serde_json::Number::from_f64(*number) {
            Some(number) => text.push_str(&number.to_string()),
            None => text.push_str("null"),
        },
        JsonScalar::DateTime(time) => write_string(&format!("{time:.6}"), text),
        JsonScalar::Opaque(opaque) => write_string(&opaque.to_string(), text),
        JsonScalar::String(string) => write_string(string, text),
    }
}

/// A JSON string literal, escaped as MySQL does (quotes, backslashes and control characters).
fn write_string(string: &str, text: &mut String) {
    text.push_str(&serde_json::Value::from(string).to_string());
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mysql_async::binlog::jsonb::{OpaqueValue, Value};

    use super::*;

    fn text_of(value: &JsonDom) -> String {
        let mut text = String::new();
        write_value(value, &mut text);
        text
    }

    fn scalar(scalar: JsonScalar) -> JsonDom {
        JsonDom::Scalar(scalar)
    }

    #[test]
    fn objects_print_keys_shorter_first_with_mysql_spacing() {
        let array = JsonDom::Container(JsonContainer::Array(vec![
            scalar(JsonScalar::Boolean(true)),
            scalar(JsonScalar::Null),
            scalar(JsonScalar::Number(JsonNumber::Int(-3))),
        ]));
        let members = BTreeMap::from([
            ("bb".to_owned(), scalar(JsonScalar::Number(JsonNumber::Uint(1)))),
            ("c".to_owned(), array),
            ("a".to_owned(), JsonDom::Container(JsonContainer::Object(BTreeMap::new()))),
        ]);
        let object = JsonDom::Container(JsonContainer::Object(members));
        assert_eq!(text_of(&object), r#"{"a": {}, "c": [true, null, -3], "bb": 1}"#);
    }

    #[test]
    fn scalars_print_as_mysql_does() {
        let double = |number: f64| text_of(&scalar(JsonScalar::Number(JsonNumber::Double(number))));
        assert_eq!(double(3.0), "3.0");
        assert_eq!(double(-2.25e-10), "-2.25e-10");
        let string = |value: &str| text_of(&scalar(JsonScalar::String(value.to_owned())));
        assert_eq!(string("say \"hi\"\n\u{1}"), r#""say \"hi\"\n\u0001""#);
        assert_eq!(string("café"), r#""café""#);
        let opaque = Value::Opaque(OpaqueValue::new(ColumnType::MYSQL_TYPE_BLOB, vec![1u8, 2]));
        assert_eq!(mysql_json_text(opaque).expect("text"), r#""base64:type252:AQI=""#);
    }

    /// Found by the `mysql_json` fuzz target (fuzz/corpus/mysql_json/crash-decimal-scale-above-precision): a
    /// DECIMAL whose scale exceeds its precision made mysql_common allocate exabytes, aborting the process.
    #[test]
    fn decimals_with_a_scale_above_their_precision_are_errors() {
        let decimal = |data: Vec<u8>| Value::Opaque(OpaqueValue::new(ColumnType::MYSQL_TYPE_NEWDECIMAL, data));
        let error = mysql_json_text(decimal(vec![5, 128, 2, 1, 12])).expect_err("scale 128 > precision 5");
        assert!(error.to_string().contains("precision 5 and scale 128"), "{error}");
        let error = mysql_json_text(decimal(vec![66, 2, 0])).expect_err("precision 66");
        assert!(error.to_string().contains("precision 66"), "{error}");
        assert_eq!(mysql_json_text(decimal(vec![4, 2, 0x80 | 12, 34])).expect("12.34"), "12.34");
    }
}
