//! The table's columns: inferred from the first rows of a sample of files (text formats) or read from their
//! footers (Parquet) or headers (Avro), merged with the table's own columns as the schema evolution mode says, schema hints
//! winning over inference.

use std::collections::HashMap;

use connector_core::arrow::array::{Array, StringArray};
use connector_core::arrow::datatypes::{DataType, Field};
use connector_core::arrow::error::ArrowError;
use connector_core::arrow::json::reader::infer_json_schema_from_iterator;
use connector_core::delta::widens_exactly;
use connector_core::error::{Error, Result};
use connector_core::ingested_file::SourceFile;
use connector_core::schema::{Column, TableId, TableSchema};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::avro_rows::avro_file_columns;
use crate::binary_rows::binary_columns;
use crate::config::SchemaEvolution;
use crate::csv_blocks::CsvBlocks;
use crate::csv_rows::CsvLayout;
use crate::file_bytes::open_decoded;
use crate::file_reading::FileFormat;
use crate::json_chunks::JsonChunks;
use crate::location::FileLocation;
use crate::parquet_rows::ParquetRowGroups;
use crate::read_errors::{decode_error, read_error, store_error};
use crate::rescued_data::RESCUED_DATA;
use crate::stored_types::{common_type, stored_field};
use crate::text_encoding::in_utf8;
use crate::text_rows::text_columns;
use crate::text_types::{TimeFormats, infer_text_type, wider_text_type};

/// Lines of a JSON lines file its columns are inferred from: each becomes a `serde_json::Value` first, which
/// costs about ten times decoding it, so fewer than a CSV file's sampled rows.
pub const JSON_SAMPLE_LINES: usize = 4096;

/// The columns of `file`'s first rows; `None` when the file is empty or gone. `sample_bytes` (the
/// `infer_sample_bytes` setting) widens the sample to the rows within the file's first that many bytes; without it
/// a CSV file's first batch of rows and a JSON lines file's first [`JSON_SAMPLE_LINES`] lines are sampled.
pub async fn sampled_columns(
    location: &FileLocation,
    file: &SourceFile,
    format: &FileFormat,
    sample_bytes: Option<u64>,
) -> Result<Option<Vec<Field>>> {
    match format {
        FileFormat::Csv(dialect) => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))? else {
                return Ok(None);
            };
            let mut text = in_utf8(bytes, dialect.encoding);
            let Some(layout) =
                CsvLayout::open(&mut text, dialect).await.map_err(|cause| decode_error(file, "CSV", cause))?
            else {
                return Ok(None);
            };
            // The header's columns (surplus fields are rescued, not columns), typed by the sampled rows.
            let names: Vec<String> = layout.schema().fields().iter().map(|field| field.name().clone()).collect();
            let mut types: Vec<Option<DataType>> = vec![None; names.len()];
            let mut blocks = CsvBlocks::new(text, dialect);
            let mut sampled: u64 = 0;
            while let Some(block) = blocks.next().await.map_err(|cause| decode_error(file, "CSV", cause))? {
                let first = sampled == 0;
                sampled += block.len() as u64;
                let batches =
                    layout.tolerant_text_rows(&block, first).map_err(|cause| decode_error(file, "CSV", cause))?;
                let taken = if sample_bytes.is_some() { batches.len() } else { 1 };
                for batch in batches.iter().take(taken) {
                    for (index, known) in types.iter_mut().enumerate() {
                        let Some(values) = batch.column(index).as_any().downcast_ref::<StringArray>() else { continue };
                        // Rows without a value say nothing of the column's type.
                        if values.null_count() == values.len() && known.is_some() {
                            continue;
                        }
                        let inferred = infer_text_type(values, &dialect.times);
                        *known = Some(match known.take() {
                            Some(earlier) if values.null_count() < values.len() => wider_text_type(&earlier, &inferred),
                            Some(earlier) => earlier,
                            None => inferred,
                        });
                    }
                }
                if sample_bytes.is_none_or(|limit| sampled >= limit) {
                    break;
                }
            }
            Ok(Some(
                names
                    .iter()
                    .zip(types)
                    .map(|(name, data_type)| Field::new(name, data_type.unwrap_or(DataType::Utf8), true))
                    .collect(),
            ))
        }
        FileFormat::Json { multi_line, encoding, times } => {
            let Some(bytes) = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))? else {
                return Ok(None);
            };
            let mut chunks = JsonChunks::open(in_utf8(bytes, *encoding), *multi_line)
                .await
                .map_err(|cause| decode_error(file, "JSON", cause))?;
            let Some(first) = chunks.next_owned().await.map_err(|cause| decode_error(file, "JSON", cause))? else {
                return Ok(None);
            };
            let Some(limit) = sample_bytes else {
                // Parsing the sample is most of its cost: on a thread of its own, so that samples of several
                // files are parsed at once.
                let times = times.clone();
                let inferred =
                    tokio::task::spawn_blocking(move || json_lines_columns(&first, &times, JSON_SAMPLE_LINES))
                        .await
                        .map_err(|cause| {
                            Error::state(format!("internal: inferring the columns of {}: {cause}", file.path))
                        })?;
                return inferred.map(Some).map_err(|cause| read_error(file, "JSON", cause));
            };
            let mut lines = first;
            while (lines.len() as u64) < limit {
                let Some(chunk) = chunks.next().await.map_err(|cause| decode_error(file, "JSON", cause))? else {
                    break;
                };
                lines.push(b'\n');
                lines.extend_from_slice(chunk);
            }
            let within = lines.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
            json_lines_columns(&lines[..within], times, usize::MAX)
                .map(Some)
                .map_err(|cause| read_error(file, "JSON", cause))
        }
        FileFormat::Text { .. } => Ok(Some(text_columns())),
        FileFormat::Binary { .. } => Ok(Some(binary_columns())),
        FileFormat::Avro => avro_file_columns(location, file).await,
        FileFormat::Parquet => {
            match ParquetRowGroups::open(location, file).await.map_err(|cause| decode_error(file, "Parquet", cause))? {
                None => Ok(None),
                Some(groups) => Ok(Some(groups.columns())),
            }
        }
    }
}

/// The columns of JSON lines (their first `max_lines`), typed as a JSON lines file's are: arrow's inference,
/// decimals, dates and timestamps read from the values' text ([`with_json_text_types`]).
pub fn json_lines_columns(lines: &[u8], times: &TimeFormats, max_lines: usize) -> Result<Vec<Field>, ArrowError> {
    // Lines that are not objects are rescued when read; they say nothing of the columns (nor does a line cut
    // short at the sample's end, which does not parse).
    let sampled: Vec<&[u8]> = lines.split(|&byte| byte == b'\n').take(max_lines).collect();
    let objects: Vec<Value> =
        sampled.iter().filter_map(|line| serde_json::from_slice::<Value>(line).ok()).filter(Value::is_object).collect();
    let schema = infer_json_schema_from_iterator(objects.iter().map(Ok))?;
    let fields = schema.fields().iter().map(|field| stored_field(field)).collect();
    Ok(with_json_text_types(fields, &sampled, times))
}

/// `fields` (arrow's inference of `lines`) with the top-level columns whose values the lines all write as text
/// CSV would type typed as CSV's are: a `double` whose numbers are plain decimals (`12.50`, `-0.125`; not `1e3`)
/// a decimal, since arrow makes every number with a point a double, which would round amounts; a string whose
/// values are dates or timestamps (ISO 8601, or `times`' patterns) a date or timestamp.
fn with_json_text_types(fields: Vec<Field>, lines: &[&[u8]], times: &TimeFormats) -> Vec<Field> {
    let candidates: Vec<(String, bool)> = fields
        .iter()
        .filter(|field| matches!(field.data_type(), DataType::Float64 | DataType::Utf8))
        .map(|field| (field.name().clone(), field.data_type() == &DataType::Utf8))
        .collect();
    if candidates.is_empty() {
        return fields;
    }
    // Each candidate's values as text; `None` once a value is of another kind (a number among strings).
    let mut texts: HashMap<&str, Option<Vec<String>>> = HashMap::new();
    for line in lines {
        let Ok(values) = serde_json::from_slice::<HashMap<String, &RawValue>>(line) else {
            continue;
        };
        for (name, strings) in &candidates {
            let Some(raw) = values.get(name).map(|value| value.get().trim()) else {
                continue;
            };
            let text = match (strings, raw.as_bytes().first()) {
                (_, Some(b'n')) => continue,
                (true, Some(b'"')) => serde_json::from_str::<String>(raw).ok(),
                (false, Some(first)) if *first == b'-' || first.is_ascii_digit() => Some(raw.to_string()),
                _ => None,
            };
            let known = texts.entry(name).or_insert_with(|| Some(Vec::new()));
            match (known.as_mut(), text) {
                (Some(known), Some(text)) => known.push(text),
                _ => *known = None,
            }
        }
    }
    fields
        .into_iter()
        .map(|field| {
            let Some(Some(values)) = texts.get(field.name().as_str()) else {
                return field;
            };
            let inferred = infer_text_type(&StringArray::from_iter_values(values), times);
            match (field.data_type(), inferred) {
                (DataType::Float64, decimal @ DataType::Decimal128(..))
                | (DataType::Utf8, decimal @ (DataType::Date32 | DataType::Timestamp(..))) => {
                    field.with_data_type(decimal)
                }
                _ => field,
            }
        })
        .collect()
}

/// Merges the sampled files' columns: by name, in the order first seen, a name's types widened together.
pub fn merge_sampled(sampled: impl IntoIterator<Item = Vec<Field>>, text: bool) -> Vec<Field> {
    let mut merged: Vec<Field> = Vec::new();
    for fields in sampled {
        for field in fields {
            match merged.iter_mut().find(|known| known.name() == field.name()) {
                None => merged.push(field),
                Some(known) => {
                    let wider = if text {
                        wider_text_type(known.data_type(), field.data_type())
                    } else {
                        common_type(known.data_type(), field.data_type())
                    };
                    *known = Field::new(known.name(), wider, true);
                }
            }
        }
    }
    merged
}

/// The table's columns once the sampled columns land: the table's own (`existing`, `None` for a new table)
/// first, unchanged (widened to the sampled type where `evolution` widens types: see [`widened_type`]); the
/// new ones as `evolution` says, with hinted types; `_rescued_data` last. `text`: the sampled files are text
/// (CSV, JSON), whose types widen as [`wider_text_type`] says.
pub fn table_columns(
    table: &TableId,
    existing: Option<&[Field]>,
    sampled: Vec<Field>,
    hints: &[(String, DataType)],
    evolution: SchemaEvolution,
    text: bool,
) -> Result<TableSchema> {
    let widening = evolution == SchemaEvolution::AddNewColumnsWithTypeWidening;
    let mut columns: Vec<Column> = existing
        .unwrap_or_default()
        .iter()
        .map(|field| {
            let sampled_type = sampled.iter().find(|column| column.name() == field.name()).map(Field::data_type);
            let data_type = match sampled_type {
                // A hinted column keeps the type it was given.
                Some(sampled) if widening && !hints.iter().any(|(name, _)| name == field.name()) => {
                    widened_type(field.data_type(), sampled, text).unwrap_or_else(|| field.data_type().clone())
                }
                _ => field.data_type().clone(),
            };
            Column::new(field.name(), data_type.clone(), data_type.to_string())
        })
        .collect();
    let hinted = |name: &str, inferred: &DataType| {
        hints.iter().find(|(hint, _)| hint == name).map_or_else(|| inferred.clone(), |(_, data_type)| data_type.clone())
    };
    let mut new: Vec<Field> = sampled
        .into_iter()
        .filter(|field| field.name() != RESCUED_DATA && !columns.iter().any(|column| &column.name == field.name()))
        .collect();
    // Hinted columns are the table's even before a file has them.
    for (name, data_type) in hints {
        if !columns.iter().any(|column| &column.name == name) && !new.iter().any(|field| field.name() == name) {
            new.push(Field::new(name, data_type.clone(), true));
        }
    }
    let adds = existing.is_none() || matches!(evolution, SchemaEvolution::AddNewColumns) || widening;
    if !adds && !new.is_empty() && evolution == SchemaEvolution::FailOnNewColumns {
        let names: Vec<&str> = new.iter().map(|field| field.name().as_str()).collect();
        return Err(Error::schema(
            table,
            format!(
                "files bring columns {table} lacks ({}), and schema_evolution is fail_on_new_columns; set \
                 schema_evolution = \"add_new_columns\" to add them, or \"rescue\" to keep their values in {RESCUED_DATA}",
                names.join(", ")
            ),
        ));
    }
    if adds {
        for field in new {
            let data_type = hinted(field.name(), field.data_type());
            columns.push(Column::new(field.name(), data_type.clone(), data_type.to_string()));
        }
    }
    if !columns.iter().any(|column| column.name == RESCUED_DATA) {
        columns.push(Column::new(RESCUED_DATA, DataType::Utf8, "rescued data (JSON)"));
    }
    TableSchema::new(table.clone(), columns, Vec::new())
}

/// The type a column of type `existing` widens to so that it also holds values of type `sampled`, when Delta's
/// type widening allows it (every value of the old type kept exactly: [`widens_exactly`]); `None` otherwise,
/// and values that do not fit the column are rescued as before. An integer widens only to a decimal with room
/// for all its digits (`bigint` to `decimal(20 + k, s)`), so a fraction in a `bigint` column makes it
/// `decimal(21,1)` at least, never a `double`, which would round large values.
fn widened_type(existing: &DataType, sampled: &DataType, text: bool) -> Option<DataType> {
    let whole_digits = |data_type: &DataType| -> Option<i16> {
        Some(match data_type {
            DataType::Int8 => 3,
            DataType::Int16 => 5,
            DataType::Int32 => 10,
            DataType::Int64 => 20,
            DataType::Decimal128(precision, scale) => i16::from(*precision) - i16::from(*scale),
            _ => return None,
        })
    };
    let scale_of = |data_type: &DataType| match data_type {
        DataType::Decimal128(_, scale) => i16::from(*scale),
        _ => 0,
    };
    let decimals = matches!(existing, DataType::Decimal128(..)) || matches!(sampled, DataType::Decimal128(..));
    let wide = match (whole_digits(existing), whole_digits(sampled)) {
        (Some(existing_digits), Some(sampled_digits)) if decimals => {
            let scale = scale_of(existing).max(scale_of(sampled));
            let precision = u8::try_from(existing_digits.max(sampled_digits) + scale).ok()?;
            DataType::Decimal128(precision, i8::try_from(scale).ok()?)
        }
        _ if text => wider_text_type(existing, sampled),
        _ => common_type(existing, sampled),
    };
    (wide != *existing && widens_exactly(existing, &wide)).then_some(wide)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[(&str, DataType)]) -> Vec<Field> {
        names.iter().map(|(name, data_type)| Field::new(*name, data_type.clone(), true)).collect()
    }

    fn names(schema: &TableSchema) -> Vec<(&str, &DataType)> {
        schema.columns.iter().map(|column| (column.name.as_str(), &column.data_type)).collect()
    }

    #[test]
    fn new_columns_are_added_rescued_or_refused_as_the_evolution_mode_says() {
        let table = TableId::new("raw", "orders");
        let existing = fields(&[("id", DataType::Int64), (RESCUED_DATA, DataType::Utf8)]);
        let sampled = || fields(&[("id", DataType::Utf8), ("note", DataType::Utf8), ("amount", DataType::Float64)]);
        let hints = vec![("amount".to_string(), DataType::Decimal128(12, 2))];

        let added = table_columns(&table, Some(&existing), sampled(), &hints, SchemaEvolution::AddNewColumns, true)
            .expect("columns");
        assert_eq!(
            names(&added),
            [
                ("id", &DataType::Int64),
                (RESCUED_DATA, &DataType::Utf8),
                ("note", &DataType::Utf8),
                ("amount", &DataType::Decimal128(12, 2)),
            ],
            "the table's columns keep their types; new ones are added, hints winning"
        );
        for kept in [SchemaEvolution::Rescue, SchemaEvolution::None] {
            let schema = table_columns(&table, Some(&existing), sampled(), &hints, kept, true).expect("columns");
            assert_eq!(names(&schema), [("id", &DataType::Int64), (RESCUED_DATA, &DataType::Utf8)], "{kept:?}");
        }
        let refused =
            table_columns(&table, Some(&existing), sampled(), &hints, SchemaEvolution::FailOnNewColumns, true)
                .expect_err("new columns refused");
        assert!(refused.to_string().contains("lacks (note, amount)"), "{refused}");

        let created =
            table_columns(&table, None, sampled(), &[], SchemaEvolution::FailOnNewColumns, true).expect("new");
        assert_eq!(created.columns.last().map(|column| column.name.as_str()), Some(RESCUED_DATA));
        assert_eq!(created.columns.len(), 4, "a new table takes every sampled column whatever the mode");
    }

    #[test]
    fn with_type_widening_a_column_widens_only_where_delta_keeps_every_value() {
        use DataType::*;
        let ntz = Timestamp(connector_core::arrow::datatypes::TimeUnit::Microsecond, None);
        let utc = Timestamp(connector_core::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
        // (existing, sampled, text, widened to)
        let cases = [
            (Int64, Decimal128(2, 1), true, Some(Decimal128(21, 1))),
            (Int32, Int64, false, Some(Int64)),
            (Int32, Float64, false, Some(Float64)),
            (Float32, Float64, false, Some(Float64)),
            (Decimal128(5, 2), Decimal128(7, 3), true, Some(Decimal128(7, 3))),
            (Decimal128(5, 2), Int64, false, Some(Decimal128(22, 2))),
            (Date32, ntz.clone(), true, Some(ntz.clone())),
            // Narrower or equal: nothing to do.
            (Int64, Int32, false, None),
            (Decimal128(7, 3), Decimal128(5, 2), true, None),
            // Not a widening Delta allows (values would round or change kind): rescued instead.
            (Int64, Float64, true, None),
            (Int64, Utf8, true, None),
            (Date32, utc, true, None),
            (Float64, Decimal128(4, 2), true, None),
            // Past 38 digits.
            (Decimal128(38, 0), Decimal128(2, 1), true, None),
        ];
        for (existing, sampled, text, wide) in cases {
            assert_eq!(widened_type(&existing, &sampled, text), wide, "{existing} with {sampled}");
        }

        let table = TableId::new("raw", "orders");
        let existing = fields(&[("id", Int64), ("amount", Int64), ("day", Date32), (RESCUED_DATA, Utf8)]);
        let sampled = fields(&[("id", Decimal128(3, 1)), ("amount", Decimal128(4, 2)), ("day", ntz.clone())]);
        let hints = vec![("id".to_string(), Int64)];
        let widening = SchemaEvolution::AddNewColumnsWithTypeWidening;
        let widened = table_columns(&table, Some(&existing), sampled.clone(), &hints, widening, true).expect("columns");
        assert_eq!(
            names(&widened),
            [("id", &Int64), ("amount", &Decimal128(22, 2)), ("day", &ntz), (RESCUED_DATA, &Utf8)],
            "hinted columns keep their type; others widen"
        );
        let kept = table_columns(&table, Some(&existing), sampled, &hints, SchemaEvolution::AddNewColumns, true)
            .expect("columns");
        assert_eq!(names(&kept)[1], ("amount", &Int64), "add_new_columns never changes a type");
    }
}
