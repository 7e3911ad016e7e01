//! JSON lines files: one object per line. A chunk of lines is decoded by arrow's JSON decoder in strict mode,
//! which fails rather than drop a field the table lacks or a value of another type; a chunk it refuses is decoded
//! again line by line, each value that does not fit its column (and each line that is not an object) kept in
//! `_rescued_data`.

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::arrow::array::{ArrayRef, AsArray, RecordBatch, new_null_array};
use connector_core::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use connector_core::arrow::error::ArrowError;
use connector_core::arrow::json::ReaderBuilder;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::flat_json::FlatJsonRows;
use crate::rescued_data::{CORRUPT_RECORD, RESCUED_DATA, RescuedValues, RowOrigin};
use crate::text_types::{TimeFormats, cast_text};

/// Decodes chunks of lines into the table's source columns (`table`, which holds `_rescued_data`).
#[derive(Debug)]
pub struct JsonRows {
    table: SchemaRef,
    /// The table's columns but the rescued one: what the JSON decoder fills, those of `from_text` as text.
    decoded: SchemaRef,
    /// The decimal, date, timestamp and integer columns (by place in `decoded`), which the decoder reads as
    /// their text, converted here by the rules CSV values follow: arrow's JSON decoder drops a number's digits
    /// past the column's scale (1.239 into two decimals gives 1.23) and past the point into an integer (1.5
    /// gives 1), where a value that does not fit must be rescued, and reads dates and timestamps in its own forms
    /// only, where `times` gives the files' patterns.
    from_text: Vec<(usize, DataType)>,
    times: TimeFormats,
    /// The one-pass decoder, for tables of scalar columns.
    flat: Option<FlatJsonRows>,
}

impl JsonRows {
    pub fn new(table: &[Field], times: TimeFormats) -> Self {
        let flat = FlatJsonRows::new(table, &times);
        let mut from_text = Vec::new();
        let decoded: Vec<Field> = table
            .iter()
            .filter(|field| field.name() != RESCUED_DATA)
            .enumerate()
            .map(|(index, field)| match field.data_type() {
                DataType::Decimal128(..)
                | DataType::Date32
                | DataType::Timestamp(..)
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64 => {
                    from_text.push((index, field.data_type().clone()));
                    field.clone().with_data_type(DataType::Utf8)
                }
                _ => field.clone(),
            })
            .collect();
        let (table, decoded) = (Arc::new(Schema::new(table.to_vec())), Arc::new(Schema::new(decoded)));
        JsonRows { table, decoded, from_text, times, flat }
    }

    /// A decoder of up to `rows` rows at once.
    fn decoder(&self, strict: bool, rows: usize) -> Result<connector_core::arrow::json::reader::Decoder, ArrowError> {
        ReaderBuilder::new(self.decoded.clone())
            .with_batch_size(rows.max(1))
            .with_strict_mode(strict)
            .with_coerce_primitive(true)
            .build_decoder()
    }

    /// The rows of `lines` (complete lines; blank ones are not rows), in the table's columns.
    pub fn decode(&self, lines: &[u8], origin: RowOrigin<'_>) -> Result<RecordBatch, String> {
        if let Some(decoded) = self.flat.as_ref().and_then(|flat| flat.decode(lines, origin)) {
            return decoded;
        }
        match self.decode_strictly(lines) {
            Ok(batch) => self.with_rescued(batch, None, origin),
            Err(_) => self.decode_line_by_line(lines, origin),
        }
    }

    fn decode_strictly(&self, lines: &[u8]) -> Result<RecordBatch, ArrowError> {
        // Every line of the chunk in one batch: a line is at most a row.
        // memchr's search, many bytes at a time: a plain count of the line ends took 5% of a JSON load's time.
        let mut decoder = self.decoder(true, memchr::memchr_iter(b'\n', lines).count() + 1)?;
        let mut rest = lines;
        while !rest.is_empty() {
            let decoded = decoder.decode(rest)?;
            if decoded == 0 {
                break;
            }
            rest = &rest[decoded..];
        }
        if decoder.has_partial_record() {
            return Err(ArrowError::JsonError("a record is cut short at the end of the file".into()));
        }
        Ok(decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(self.decoded.clone())))
    }

    fn decode_line_by_line(&self, lines: &[u8], origin: RowOrigin<'_>) -> Result<RecordBatch, String> {
        let mut objects: Vec<Map<String, Value>> = Vec::new();
        let mut rescued_rows: Vec<Map<String, Value>> = Vec::new();
        for line in lines.split(|&byte| byte == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut rescued = Map::new();
            let object = match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(mut object)) => {
                    self.keep_number_text(line, &mut object);
                    let keys: Vec<String> = object.keys().cloned().collect();
                    for key in keys {
                        let fits = self
                            .decoded
                            .field_with_name(&key)
                            .is_ok_and(|field| object.get(&key).is_some_and(|value| fits(value, field.data_type())));
                        if !fits && let Some(value) = object.remove(&key) {
                            rescued.insert(key, value);
                        }
                    }
                    object
                }
                _ => {
                    rescued.insert(CORRUPT_RECORD.into(), Value::String(String::from_utf8_lossy(line).into_owned()));
                    Map::new()
                }
            };
            // A value can still fail where the shallow check passed (a timestamp that does not parse): try the
            // row alone, and rescue all of it if it fails.
            let object = if self.serializes(&object) {
                object
            } else {
                rescued.extend(object);
                Map::new()
            };
            objects.push(object);
            rescued_rows.push(rescued);
        }
        let mut decoder = self.decoder(false, objects.len()).map_err(|cause| format!("internal: {cause}"))?;
        decoder
            .serialize(&objects)
            .map_err(|cause| format!("internal: rows checked one by one fail together: {cause}"))?;
        let batch = decoder
            .flush()
            .map_err(|cause| format!("internal: {cause}"))?
            .unwrap_or_else(|| RecordBatch::new_empty(self.decoded.clone()));
        self.with_rescued(batch, Some(rescued_rows), origin)
    }

    /// The numbers of `object`'s decimal and integer columns as their text in `line`: `serde_json::Value` holds
    /// a number with a point (or past 64 bits) as a double, which would round it.
    fn keep_number_text(&self, line: &[u8], object: &mut Map<String, Value>) {
        let exact = |data_type: &DataType| data_type.is_integer() || matches!(data_type, DataType::Decimal128(..));
        if !self.from_text.iter().any(|(_, data_type)| exact(data_type)) {
            return;
        }
        let Ok(texts) = serde_json::from_slice::<HashMap<String, &RawValue>>(line) else {
            return;
        };
        for (index, _) in self.from_text.iter().filter(|(_, data_type)| exact(data_type)) {
            let name = self.decoded.field(*index).name();
            if let (Some(Value::Number(_)), Some(text)) = (object.get(name), texts.get(name)) {
                object.insert(name.clone(), Value::String(text.get().trim().to_string()));
            }
        }
    }

    fn serializes(&self, object: &Map<String, Value>) -> bool {
        self.decoder(false, 1)
            .is_ok_and(|mut decoder| decoder.serialize(std::slice::from_ref(object)).is_ok() && decoder.flush().is_ok())
    }

    /// `batch` (the decoded columns) with the rescued-data column in its place.
    fn with_rescued(
        &self,
        batch: RecordBatch,
        rescued_rows: Option<Vec<Map<String, Value>>>,
        origin: RowOrigin<'_>,
    ) -> Result<RecordBatch, String> {
        let rows = batch.num_rows();
        let mut rescued = RescuedValues::new(rows);
        for (row, values) in rescued_rows.into_iter().flatten().enumerate() {
            for (key, value) in values {
                rescued.keep(row, &key, value);
            }
        }
        let mut decoded = batch.columns().iter().enumerate();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.table.fields().len());
        for field in self.table.fields() {
            let column = if field.name() == RESCUED_DATA {
                new_null_array(&DataType::Utf8, rows)
            } else {
                let (index, column) =
                    decoded.next().ok_or("internal: the decoder gave fewer columns than the table has")?;
                match self.from_text.iter().find(|(from_text, _)| *from_text == index) {
                    None => column.clone(),
                    Some((_, data_type)) => {
                        let texts = column.as_string::<i32>();
                        let (converted, unfit) = cast_text(texts, data_type, &self.times);
                        for row in unfit {
                            rescued.keep(row, field.name(), Value::String(texts.value(row).to_string()));
                        }
                        converted
                    }
                }
            };
            columns.push(column);
        }
        let table: Vec<Field> = self.table.fields().iter().map(|field| field.as_ref().clone()).collect();
        rescued.place_in(&mut columns, &table, origin)?;
        RecordBatch::try_new(self.table.clone(), columns).map_err(|cause| format!("internal: {cause}"))
    }
}

/// Whether `value` can be a value of `data_type`, looking into objects and arrays: a field the type lacks, or a
/// scalar of another kind, does not fit.
fn fits(value: &Value, data_type: &DataType) -> bool {
    match (value, data_type) {
        (Value::Null, _) => true,
        (_, DataType::Utf8 | DataType::LargeUtf8) => !value.is_object() && !value.is_array(),
        (Value::Number(number), DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64) => {
            number.is_i64()
        }
        (Value::Number(_), DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..)) => {
            true
        }
        (
            Value::String(_),
            DataType::Decimal128(..) | DataType::Date32 | DataType::Timestamp(..) | DataType::Binary,
        ) => true,
        (Value::Bool(_), DataType::Boolean) => true,
        (Value::Object(object), DataType::Struct(fields)) => fits_struct(object, fields),
        (Value::Array(values), DataType::List(item) | DataType::LargeList(item)) => {
            values.iter().all(|value| fits(value, item.data_type()))
        }
        _ => false,
    }
}

fn fits_struct(object: &Map<String, Value>, fields: &Fields) -> bool {
    object.iter().all(|(key, value)| fields.find(key).is_some_and(|(_, field)| fits(value, field.data_type())))
}

#[cfg(test)]
mod tests {
    use connector_core::arrow::array::Array;

    use super::*;

    fn table() -> Vec<Field> {
        vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("amount", DataType::Decimal128(6, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new("at", DataType::Timestamp(connector_core::arrow::datatypes::TimeUnit::Microsecond, None), true),
            Field::new(RESCUED_DATA, DataType::Utf8, true),
        ]
    }

    #[test]
    fn the_one_pass_decoder_reads_what_the_general_one_reads() {
        let lines = concat!(
            r#"{"id": 1, "name": "a\tb", "score": 1.5, "ok": true, "amount": 12.5, "day": "2026-12-05", "at": "2026-12-05 10:00:00"}"#,
            "\n",
            r#"{"at": "2026-12-05T10:00:00.25Z", "amount": "7", "name": 3.25, "id": -4, "extra": {"x": [1]}}"#,
            "\n",
            r#"{"amount": 1.239, "day": "2026-02-30", "name": {"a": 1}, "score": 1e3, "ok": null}"#,
            "\n",
            "not json\n",
            r#"{"name": "\u00e9\ud83d\ude00", "id": 9223372036854775807}"#,
            "\n",
        );
        let origin = RowOrigin { file_path: "f.jsonl", first_row: 0, strict: false };
        let flat = JsonRows::new(&table(), TimeFormats::default());
        assert!(flat.flat.is_some());
        let mut general = JsonRows::new(&table(), TimeFormats::default());
        general.flat = None;
        let (one_pass, expected) = (flat.decode(lines.as_bytes(), origin), general.decode(lines.as_bytes(), origin));
        assert_eq!(one_pass.expect("one pass"), expected.expect("general"));
    }

    #[test]
    fn a_number_with_a_fraction_into_an_integer_column_is_rescued_not_truncated() {
        let table = vec![
            Field::new("id", DataType::Int64, true),
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
            Field::new(RESCUED_DATA, DataType::Utf8, true),
        ];
        let rows = JsonRows::new(&table, TimeFormats::default());
        assert!(rows.flat.is_none(), "a list column takes the general decoder");
        let origin = RowOrigin { file_path: "f.jsonl", first_row: 0, strict: false };
        let batch = rows.decode(b"{\"id\": 1.5, \"tags\": [\"a\"]}\n{\"id\": 2}", origin).expect("decoded");
        let ids = batch.column(0).as_primitive::<connector_core::arrow::datatypes::Int64Type>();
        assert_eq!((ids.is_null(0), ids.value(1)), (true, 2));
        let rescued = batch.column(2).as_string::<i32>();
        assert!(rescued.value(0).contains("\"id\":\"1.5\""), "{}", rescued.value(0));
    }
}
