//! Schema hints: column types written as SQL (`id bigint, amount decimal(12,2), seen timestamp`) that win over
//! inference, as Auto Loader's `cloudFiles.schemaHints` do.

use connector_core::arrow::datatypes::DataType;
use connector_core::error::{Error, Result};

use crate::text_types::timestamp_type;

/// Each hinted column and its type, in the order written.
pub fn parse_schema_hints(text: &str) -> Result<Vec<(String, DataType)>> {
    split_top_level(text)
        .into_iter()
        .map(str::trim)
        .filter(|hint| !hint.is_empty())
        .map(|hint| {
            let (name, type_name) =
                name_and_type(hint).filter(|(_, type_name)| !type_name.trim().is_empty()).ok_or_else(|| {
                    Error::config(format!(
                        "schema hint `{hint}` has no type; write `column type`, e.g. `id bigint` (a name with \
                         spaces or commas in backquotes: `` `unit price` double ``)"
                    ))
                })?;
            let data_type = sql_type(type_name.trim()).ok_or_else(|| {
                Error::config(format!(
                    "schema hint `{hint}`: `{}` is not a known type; use one of tinyint, smallint, int, bigint, \
                     float, double, decimal(p,s), boolean, string, date, timestamp (with zone, stored as UTC), \
                     timestamp_ntz, binary",
                    type_name.trim()
                ))
            })?;
            Ok((name, data_type))
        })
        .collect()
}

/// A column type as SQL, in the words schema hints take (Arrow's own name for a type they have none for), so
/// that what `load` prints can be given back as hints.
pub fn sql_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::Decimal128(precision, scale) => format!("decimal({precision},{scale})"),
        DataType::List(item) => format!("array<{}>", sql_type_name(item.data_type())),
        DataType::Struct(fields) => {
            let fields: Vec<String> =
                fields.iter().map(|field| format!("{}: {}", field.name(), sql_type_name(field.data_type()))).collect();
            format!("struct<{}>", fields.join(", "))
        }
        other => other.to_string(),
    }
}

/// A hint's column name and the text of its type. A name in backquotes may hold anything, a doubled backquote
/// standing for one (as in Spark SQL); a bare name ends at the first whitespace.
fn name_and_type(hint: &str) -> Option<(String, &str)> {
    let Some(quoted) = hint.strip_prefix('`') else {
        let (name, type_name) = hint.split_once(char::is_whitespace)?;
        return Some((name.to_string(), type_name));
    };
    let mut name = String::new();
    let mut characters = quoted.char_indices().peekable();
    while let Some((index, character)) = characters.next() {
        if character != '`' {
            name.push(character);
        } else if characters.next_if(|(_, next)| *next == '`').is_some() {
            name.push('`');
        } else {
            return Some((name, &quoted[index + 1..]));
        }
    }
    None
}

/// The hints of `text`: split at the commas outside parentheses (`decimal(12,2)` holds one) and backquoted names.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start, mut quoted) = (Vec::new(), 0usize, 0, false);
    for (index, character) in text.char_indices() {
        match character {
            // A doubled backquote inside a quoted name toggles twice: still quoted.
            '`' => quoted = !quoted,
            _ if quoted => {}
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn sql_type(name: &str) -> Option<DataType> {
    let lower = name.to_ascii_lowercase().replace(' ', "");
    Some(match lower.as_str() {
        "tinyint" | "byte" => DataType::Int8,
        "smallint" | "short" => DataType::Int16,
        "int" | "integer" => DataType::Int32,
        "bigint" | "long" => DataType::Int64,
        "float" | "real" => DataType::Float32,
        "double" => DataType::Float64,
        "boolean" | "bool" => DataType::Boolean,
        "string" | "text" | "varchar" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" => timestamp_type(true),
        "timestamp_ntz" => timestamp_type(false),
        "binary" => DataType::Binary,
        "decimal" => DataType::Decimal128(10, 0),
        _ if lower.starts_with("varchar(") => DataType::Utf8,
        _ => {
            let arguments = lower.strip_prefix("decimal(").or_else(|| lower.strip_prefix("numeric("))?;
            let (precision, scale) = arguments.strip_suffix(')')?.split_once(',')?;
            let (precision, scale): (u8, i8) = (precision.parse().ok()?, scale.parse().ok()?);
            if precision == 0 || precision > 38 || scale < 0 || scale as u8 > precision {
                return None;
            }
            DataType::Decimal128(precision, scale)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_sql_types_split_at_commas_outside_parentheses() {
        let hints =
            parse_schema_hints("id bigint, amount decimal(12, 2),seen TIMESTAMP , `note` string").expect("hints");
        assert_eq!(
            hints,
            vec![
                ("id".to_string(), DataType::Int64),
                ("amount".to_string(), DataType::Decimal128(12, 2)),
                ("seen".to_string(), timestamp_type(true)),
                ("note".to_string(), DataType::Utf8),
            ]
        );
        let error = parse_schema_hints("id bigint, amount money").expect_err("unknown type");
        assert!(error.to_string().contains("`money` is not a known type"), "{error}");
        assert!(parse_schema_hints("id").expect_err("no type").to_string().contains("has no type"));
    }

    #[test]
    fn backquoted_hint_names_may_hold_spaces_commas_and_backquotes() {
        let hints = parse_schema_hints("`unit price` double, `a, b` int, `say ``hi``` string").expect("hints");
        assert_eq!(
            hints,
            vec![
                ("unit price".to_string(), DataType::Float64),
                ("a, b".to_string(), DataType::Int32),
                ("say `hi`".to_string(), DataType::Utf8),
            ]
        );
        assert!(parse_schema_hints("`unit price double").expect_err("unclosed").to_string().contains("has no type"));
        assert!(parse_schema_hints("`unit price`").expect_err("no type").to_string().contains("has no type"));
    }
}
