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

use crate::rescued_data::{RESCUED_DATA, RescuedValues, RowOrigin};
use crate::text_types::{TimeFormats, cast_text};

/// The key a line that is not a JSON object is rescued under (Spark's name for it).
const CORRUPT_RECORD: &str = "_corrupt_record";

/// Decodes chunks of lines into the table's source columns (`table`, which holds `_rescued_data`).
#[derive(Debug)]
pub struct JsonRows {
    table: SchemaRef,
    /// The table's columns but the rescued one: what the JSON decoder fills, those of `from_text` as text.
    decoded: SchemaRef,
    /// The decimal, date and timestamp columns (by place in `decoded`), which the decoder reads as their text,
    /// converted here by the rules CSV values follow: arrow's JSON decoder drops a number's digits past the
    /// column's scale (1.239 into two decimals gives 1.23), where a value that does not fit must be rescued, and
    /// reads dates and timestamps in its own forms only, where `times` gives the files' patterns.
    from_text: Vec<(usize, DataType)>,
    times: TimeFormats,
}

impl JsonRows {
    pub fn new(table: &[Field], times: TimeFormats) -> Self {
        let mut from_text = Vec::new();
        let decoded: Vec<Field> = table
            .iter()
            .filter(|field| field.name() != RESCUED_DATA)
            .enumerate()
            .map(|(index, field)| match field.data_type() {
                DataType::Decimal128(..) | DataType::Date32 | DataType::Timestamp(..) => {
                    from_text.push((index, field.data_type().clone()));
                    field.clone().with_data_type(DataType::Utf8)
                }
                _ => field.clone(),
            })
            .collect();
        let (table, decoded) = (Arc::new(Schema::new(table.to_vec())), Arc::new(Schema::new(decoded)));
        JsonRows { table, decoded, from_text, times }
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
                    self.keep_decimal_text(line, &mut object);
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

    /// The numbers of `object`'s decimal columns as their text in `line`: `serde_json::Value` holds a number
    /// with a point as a double, which would round it.
    fn keep_decimal_text(&self, line: &[u8], object: &mut Map<String, Value>) {
        if !self.from_text.iter().any(|(_, data_type)| matches!(data_type, DataType::Decimal128(..))) {
            return;
        }
        let Ok(texts) = serde_json::from_slice::<HashMap<String, &RawValue>>(line) else {
            return;
        };
        for (index, _) in self.from_text.iter().filter(|(_, data_type)| matches!(data_type, DataType::Decimal128(..))) {
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
