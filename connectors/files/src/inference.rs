//! The table's columns: inferred from the first rows of a sample of files (text formats) or read from their
//! footers (Parquet) or headers (Avro), merged with the table's own columns as the schema evolution mode says, schema hints
//! winning over inference.

use std::collections::HashMap;

use connector_core::arrow::array::{Array, StringArray};
use connector_core::arrow::datatypes::{DataType, Field};
use connector_core::arrow::json::reader::infer_json_schema_from_iterator;
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
const JSON_SAMPLE_LINES: usize = 4096;

/// The columns of `file`'s first rows (a batch of them); `None` when the file is empty or gone.
pub async fn sampled_columns(
    location: &FileLocation,
    file: &SourceFile,
    format: &FileFormat,
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
            // The header's columns, from the first block's first rows (surplus fields are rescued, not columns).
            let names: Vec<String> = layout.schema().fields().iter().map(|field| field.name().clone()).collect();
            let block = CsvBlocks::new(text, dialect).next().await.map_err(|cause| decode_error(file, "CSV", cause))?;
            let first = match block {
                Some(block) => layout
                    .tolerant_text_rows(&block, true)
                    .map_err(|cause| decode_error(file, "CSV", cause))?
                    .into_iter()
                    .next(),
                None => None,
            };
            Ok(Some(
                names
                    .iter()
                    .enumerate()
                    .map(|(index, name)| {
                        let data_type = first
                            .as_ref()
                            .and_then(|batch| {
                                batch
                                    .column(index)
                                    .as_any()
                                    .downcast_ref::<StringArray>()
                                    .map(|values| infer_text_type(values, &dialect.times))
                            })
                            .unwrap_or(DataType::Utf8);
                        Field::new(name, data_type, true)
                    })
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
            let Some(lines) = chunks.next().await.map_err(|cause| decode_error(file, "JSON", cause))? else {
                return Ok(None);
            };
            // Lines that are not objects are rescued when read; they say nothing of the columns.
            let sampled: Vec<&[u8]> = lines.split(|&byte| byte == b'\n').take(JSON_SAMPLE_LINES).collect();
            let objects: Vec<Value> = sampled
                .iter()
                .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
                .filter(Value::is_object)
                .collect();
            let schema = infer_json_schema_from_iterator(objects.iter().map(Ok))
                .map_err(|cause| read_error(file, "JSON", cause))?;
            let fields = schema.fields().iter().map(|field| stored_field(field)).collect();
            Ok(Some(with_json_text_types(fields, &sampled, times)))
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
/// first, unchanged; the new ones as `evolution` says, with hinted types; `_rescued_data` last.
pub fn table_columns(
    table: &TableId,
    existing: Option<&[Field]>,
    sampled: Vec<Field>,
    hints: &[(String, DataType)],
    evolution: SchemaEvolution,
) -> Result<TableSchema> {
    let mut columns: Vec<Column> = existing
        .unwrap_or_default()
        .iter()
        .map(|field| Column::new(field.name(), field.data_type().clone(), field.data_type().to_string()))
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
    let adds = existing.is_none() || evolution == SchemaEvolution::AddNewColumns;
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

        let added =
            table_columns(&table, Some(&existing), sampled(), &hints, SchemaEvolution::AddNewColumns).expect("columns");
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
            let schema = table_columns(&table, Some(&existing), sampled(), &hints, kept).expect("columns");
            assert_eq!(names(&schema), [("id", &DataType::Int64), (RESCUED_DATA, &DataType::Utf8)], "{kept:?}");
        }
        let refused = table_columns(&table, Some(&existing), sampled(), &hints, SchemaEvolution::FailOnNewColumns)
            .expect_err("new columns refused");
        assert!(refused.to_string().contains("lacks (note, amount)"), "{refused}");

        let created = table_columns(&table, None, sampled(), &[], SchemaEvolution::FailOnNewColumns).expect("new");
        assert_eq!(created.columns.last().map(|column| column.name.as_str()), Some(RESCUED_DATA));
        assert_eq!(created.columns.len(), 4, "a new table takes every sampled column whatever the mode");
    }
}
