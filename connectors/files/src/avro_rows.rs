//! Avro object container files: decoded by `apache-avro` a block at a time on a blocking thread (the crate reads
//! `std::io::Read`), its values built into Arrow batches of the file's own columns ([`crate::avro_types`]) and
//! handed over a channel of one batch, so a file of any size holds about two batches in memory.

use std::sync::Arc;

use apache_avro::Reader;
use apache_avro::types::Value;
use connector_core::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, MapArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use connector_core::arrow::buffer::{NullBuffer, OffsetBuffer};
use connector_core::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use connector_core::error::Error;
use connector_core::ingested_file::SourceFile;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

use crate::avro_types::{AvroColumn, avro_columns, fields_of, map_entries, struct_fields};
use crate::avro_values::{avro_json, avro_text, decimal_digits, decimal_text};
use crate::file_bytes::open_decoded;
use crate::location::FileLocation;
use crate::read_errors::{read_error, store_error};

/// Rows built into one batch.
const BATCH_ROWS: usize = 8 * 1024;

/// The rows of an Avro file, a batch at a time.
#[derive(Debug)]
pub struct AvroBatches {
    batches: mpsc::Receiver<Result<RecordBatch, String>>,
    decoder: JoinHandle<()>,
}

impl AvroBatches {
    /// The next rows, in the file's own columns; `None` at the end of the file.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, String> {
        match self.batches.recv().await {
            Some(batch) => batch.map(Some),
            // The decoder ended without an error: make sure it did not end by panicking midway.
            None => match (&mut self.decoder).await {
                Ok(()) => Ok(None),
                Err(cause) => Err(format!("the Avro decoder stopped: {cause}")),
            },
        }
    }
}

/// The bytes of `file` as a blocking reader; `None` when the file is gone since it was listed.
async fn blocking_reader(
    location: &FileLocation,
    file: &SourceFile,
) -> Result<Option<impl std::io::Read + Send + use<>>, Error> {
    let bytes = open_decoded(location, file).await.map_err(|cause| store_error(file, cause))?;
    Ok(bytes.map(SyncIoBridge::new))
}

/// The columns of an Avro file as Delta stores them, from its header; `None` when it is empty or gone.
pub async fn avro_file_columns(location: &FileLocation, file: &SourceFile) -> Result<Option<Vec<Field>>, Error> {
    if file.size == 0 {
        return Ok(None);
    }
    let Some(bytes) = blocking_reader(location, file).await? else { return Ok(None) };
    tokio::task::spawn_blocking(move || {
        let reader = Reader::new(bytes).map_err(|cause| cause.to_string())?;
        avro_columns(reader.writer_schema()).map(|columns| Some(fields_of(&columns)))
    })
    .await
    .map_err(|cause| format!("the Avro decoder stopped: {cause}"))
    .flatten()
    .map_err(|cause| read_error(file, "Avro", cause))
}

/// Opens an Avro file's rows; `None` when it is empty or gone.
pub async fn open_avro(location: &FileLocation, file: &SourceFile) -> Result<Option<AvroBatches>, Error> {
    if file.size == 0 {
        return Ok(None);
    }
    let Some(bytes) = blocking_reader(location, file).await? else { return Ok(None) };
    // One batch waits while the next is built: the reader is never more than a batch ahead.
    let (sender, batches) = mpsc::channel(1);
    let decoder = tokio::task::spawn_blocking(move || {
        if let Err(cause) = decode_batches(bytes, &sender) {
            // The receiver may be gone (the read stopped first): nothing then waits for the error.
            let _ = sender.blocking_send(Err(cause));
        }
    });
    Ok(Some(AvroBatches { batches, decoder }))
}

/// Decodes every row of `bytes` into batches sent to `sender`, until the end or until the receiver is gone.
fn decode_batches(bytes: impl std::io::Read, sender: &mpsc::Sender<Result<RecordBatch, String>>) -> Result<(), String> {
    let reader = Reader::new(bytes).map_err(|cause| cause.to_string())?;
    let columns = avro_columns(reader.writer_schema())?;
    let schema = Arc::new(Schema::new(fields_of(&columns)));
    let top_level_record = matches!(reader.writer_schema(), apache_avro::Schema::Record(_));
    let mut rows: Vec<Value> = Vec::with_capacity(BATCH_ROWS);
    let mut values = reader.into_iter();
    loop {
        let next = values.next().transpose().map_err(|cause| cause.to_string())?;
        let done = next.is_none();
        rows.extend(next);
        if rows.len() == BATCH_ROWS || (done && !rows.is_empty()) {
            let batch = batch_of(&rows, &columns, top_level_record, schema.clone())?;
            rows.clear();
            if sender.blocking_send(Ok(batch)).is_err() {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// `rows` (records, or single values) as a batch of `columns`: also how a Kafka topic's Avro messages become rows.
pub fn batch_of(
    rows: &[Value],
    columns: &[(String, AvroColumn)],
    top_level_record: bool,
    schema: Arc<Schema>,
) -> Result<RecordBatch, String> {
    let arrays = if top_level_record {
        let records: Vec<Option<&Value>> = rows.iter().map(Some).collect();
        struct_children(&records, columns)?
    } else {
        let values: Vec<Option<&Value>> = rows.iter().map(Some).collect();
        let column = columns.first().map(|(_, column)| column).ok_or("internal: no value column")?;
        vec![array_of(&values, column)?]
    };
    RecordBatch::try_new(schema, arrays).map_err(|cause| format!("internal: {cause}"))
}

/// `value` with its union branch taken; `None` for null.
fn present(value: Option<&Value>) -> Option<&Value> {
    match value? {
        Value::Null => None,
        Value::Union(_, inner) => present(Some(inner)),
        other => Some(other),
    }
}

fn mismatch(value: &Value, data_type: &DataType) -> String {
    format!("a value {value:?} does not match its schema's type {data_type}")
}

/// Builds the array of `values` (`None`: null) as `column` says.
fn array_of(values: &[Option<&Value>], column: &AvroColumn) -> Result<ArrayRef, String> {
    let values: Vec<Option<&Value>> = values.iter().map(|value| present(*value)).collect();
    let nulls = || NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
    match column {
        AvroColumn::Scalar(data_type) => scalar_array(&values, data_type),
        AvroColumn::Json(shape) => {
            let texts: Result<StringArray, String> =
                values.iter().map(|value| value.map(|value| avro_json(value, shape)).transpose()).collect();
            Ok(Arc::new(texts?))
        }
        AvroColumn::DecimalText(scale) => {
            let texts: Result<StringArray, String> = values
                .iter()
                .map(|value| match value {
                    None => Ok(None),
                    Some(Value::Decimal(decimal)) => Ok(Some(decimal_text(decimal, *scale))),
                    Some(other) => Err(mismatch(other, &DataType::Utf8)),
                })
                .collect();
            Ok(Arc::new(texts?))
        }
        AvroColumn::Struct(fields) => {
            let children = struct_children(&values, fields)?;
            let array = StructArray::try_new(struct_fields(fields), children, Some(nulls()))
                .map_err(|cause| format!("internal: {cause}"))?;
            Ok(Arc::new(array))
        }
        AvroColumn::List(item) => {
            let mut items: Vec<Option<&Value>> = Vec::new();
            let mut lengths = Vec::with_capacity(values.len());
            for value in &values {
                match value {
                    None => lengths.push(0),
                    Some(Value::Array(values)) => {
                        lengths.push(values.len());
                        items.extend(values.iter().map(Some));
                    }
                    Some(other) => return Err(mismatch(other, &column.data_type())),
                }
            }
            let field = Arc::new(Field::new("element", item.data_type(), true));
            let items = array_of(&items, item)?;
            let array = ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), items, Some(nulls()))
                .map_err(|cause| format!("internal: {cause}"))?;
            Ok(Arc::new(array))
        }
        AvroColumn::Map(value_column) => {
            let mut keys: Vec<&str> = Vec::new();
            let mut entries: Vec<Option<&Value>> = Vec::new();
            let mut lengths = Vec::with_capacity(values.len());
            for value in &values {
                match value {
                    None => lengths.push(0),
                    Some(Value::Map(map)) => {
                        lengths.push(map.len());
                        for (key, value) in map {
                            keys.push(key);
                            entries.push(Some(value));
                        }
                    }
                    Some(other) => return Err(mismatch(other, &column.data_type())),
                }
            }
            let entries_field = map_entries(value_column.data_type());
            let DataType::Struct(entry_fields) = entries_field.data_type().clone() else {
                return Err("internal: a map's entries are not a struct".into());
            };
            let key_array: ArrayRef = Arc::new(StringArray::from(keys));
            let entries = StructArray::try_new(entry_fields, vec![key_array, array_of(&entries, value_column)?], None)
                .map_err(|cause| format!("internal: {cause}"))?;
            let array = MapArray::try_new(
                Arc::new(entries_field),
                OffsetBuffer::from_lengths(lengths),
                entries,
                Some(nulls()),
                false,
            )
            .map_err(|cause| format!("internal: {cause}"))?;
            Ok(Arc::new(array))
        }
    }
}

/// The arrays of `records`' fields (a null record has null fields).
fn struct_children(records: &[Option<&Value>], fields: &[(String, AvroColumn)]) -> Result<Vec<ArrayRef>, String> {
    let records: Vec<Option<&Vec<(String, Value)>>> = records
        .iter()
        .map(|record| match present(*record) {
            None => Ok(None),
            Some(Value::Record(fields)) => Ok(Some(fields)),
            Some(other) => Err(format!("a value {other:?} is not the record its schema says")),
        })
        .collect::<Result<_, String>>()?;
    fields
        .iter()
        .enumerate()
        .map(|(index, (name, column))| {
            // Fields come in the schema's order; look the name up only if they do not.
            let values: Vec<Option<&Value>> = records
                .iter()
                .map(|record| {
                    record.and_then(|fields| match fields.get(index) {
                        Some((field, value)) if field == name => Some(value),
                        _ => fields.iter().find(|(field, _)| field == name).map(|(_, value)| value),
                    })
                })
                .collect();
            array_of(&values, column)
        })
        .collect()
}

/// Builds an array of scalar `values` (union branches taken) of `data_type`.
fn scalar_array(values: &[Option<&Value>], data_type: &DataType) -> Result<ArrayRef, String> {
    // Each value's conversion; a value of another kind than the schema's is an error, never a silent null.
    fn each<'v, T>(
        values: &[Option<&'v Value>],
        data_type: &DataType,
        convert: impl Fn(&'v Value) -> Option<T>,
    ) -> Result<Vec<Option<T>>, String> {
        values
            .iter()
            .map(|value| value.map(|value| convert(value).ok_or_else(|| mismatch(value, data_type))).transpose())
            .collect()
    }
    let array: ArrayRef = match data_type {
        DataType::Boolean => Arc::new(BooleanArray::from(each(values, data_type, |value| match value {
            Value::Boolean(flag) => Some(*flag),
            _ => None,
        })?)),
        DataType::Int32 => Arc::new(Int32Array::from(each(values, data_type, |value| match value {
            Value::Int(number) => Some(*number),
            _ => None,
        })?)),
        DataType::Int64 => Arc::new(Int64Array::from(each(values, data_type, |value| match value {
            Value::Long(number) => Some(*number),
            Value::Int(number) => Some(i64::from(*number)),
            _ => None,
        })?)),
        DataType::Float32 => Arc::new(Float32Array::from(each(values, data_type, |value| match value {
            Value::Float(number) => Some(*number),
            _ => None,
        })?)),
        DataType::Float64 => Arc::new(Float64Array::from(each(values, data_type, |value| match value {
            Value::Double(number) => Some(*number),
            Value::Float(number) => Some(f64::from(*number)),
            _ => None,
        })?)),
        DataType::Binary => {
            let bytes = each(values, data_type, |value| match value {
                Value::Bytes(bytes) | Value::Fixed(_, bytes) => Some(bytes.as_slice()),
                _ => None,
            })?;
            Arc::new(BinaryArray::from(bytes))
        }
        DataType::Utf8 => Arc::new(StringArray::from(each(values, data_type, avro_text)?)),
        DataType::Date32 => Arc::new(Date32Array::from(each(values, data_type, |value| match value {
            Value::Date(days) => Some(*days),
            _ => None,
        })?)),
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            let micros = each(values, data_type, |value| match value {
                Value::TimestampMillis(millis) | Value::LocalTimestampMillis(millis) => millis.checked_mul(1000),
                Value::TimestampMicros(micros) | Value::LocalTimestampMicros(micros) => Some(*micros),
                Value::TimestampNanos(nanos) | Value::LocalTimestampNanos(nanos) => Some(nanos.div_euclid(1000)),
                _ => None,
            })?;
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone_opt(zone.clone()))
        }
        DataType::Decimal128(precision, scale) => {
            let unscaled = each(values, data_type, |value| match value {
                Value::Decimal(decimal) => i128::try_from(decimal_digits(decimal)).ok(),
                _ => None,
            })?;
            let array = Decimal128Array::from(unscaled)
                .with_precision_and_scale(*precision, *scale)
                .map_err(|cause| format!("internal: {cause}"))?;
            Arc::new(array)
        }
        other => return Err(format!("internal: no Avro values build a {other} column")),
    };
    Ok(array)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use apache_avro::types::Record;
    use apache_avro::{Bzip2Settings, Codec, DeflateSettings, Writer, XzSettings, ZstandardSettings};
    use connector_core::arrow::util::display::array_value_to_string;

    use super::*;

    const SCHEMA: &str = r#"{"type": "record", "name": "row", "fields": [
        {"name": "id", "type": "long"},
        {"name": "attributes", "type": {"type": "map", "values": ["null", "int"]}},
        {"name": "either", "type": ["null", "long", "string"]}
    ]}"#;

    /// `rows` rows written by the crate's own writer with `codec`.
    fn written(codec: Codec, rows: i64) -> Vec<u8> {
        let schema = apache_avro::Schema::parse_str(SCHEMA).expect("schema");
        let mut writer = Writer::with_codec(&schema, Vec::new(), codec).expect("writer");
        for id in 0..rows {
            let mut record = Record::new(&schema).expect("a record schema");
            record.put("id", id);
            let count = Value::Union(1, Box::new(Value::Int(i32::try_from(id).expect("small"))));
            record.put("attributes", Value::Map(HashMap::from([("k".to_string(), count)])));
            let either = if id % 2 == 0 {
                Value::Union(1, Box::new(Value::Long(id)))
            } else {
                Value::Union(2, Box::new(Value::String(format!("s{id}"))))
            };
            record.put("either", either);
            writer.append_value(record).expect("append");
        }
        writer.into_inner().expect("flush")
    }

    fn decoded(bytes: &[u8]) -> Result<Vec<RecordBatch>, String> {
        let (sender, mut receiver) = mpsc::channel(16);
        decode_batches(bytes, &sender)?;
        drop(sender);
        let mut batches = Vec::new();
        while let Some(batch) = receiver.blocking_recv() {
            batches.push(batch?);
        }
        Ok(batches)
    }

    #[test]
    fn every_codec_decodes_into_bounded_batches_of_the_files_columns() {
        let codecs = [
            Codec::Null,
            Codec::Deflate(DeflateSettings::default()),
            Codec::Snappy,
            Codec::Zstandard(ZstandardSettings::default()),
            Codec::Bzip2(Bzip2Settings::default()),
            Codec::Xz(XzSettings::default()),
        ];
        for codec in codecs {
            let batches = decoded(&written(codec, 20_000)).unwrap_or_else(|cause| panic!("{codec:?}: {cause}"));
            let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
            assert_eq!(sizes, [BATCH_ROWS, BATCH_ROWS, 20_000 - 2 * BATCH_ROWS], "{codec:?}");
            let first = &batches[0];
            let cell = |column: usize, row: usize| array_value_to_string(first.column(column), row).expect("display");
            assert_eq!((cell(0, 3), cell(1, 3), cell(2, 3)), ("3".into(), "{k: 3}".into(), r#""s3""#.into()));
            assert_eq!(cell(2, 2), "2", "a union of several types is JSON text");
        }
    }

    #[test]
    fn a_file_cut_short_or_not_avro_is_an_error_not_fewer_rows() {
        let bytes = written(Codec::Deflate(DeflateSettings::default()), 20_000);
        assert!(decoded(&bytes[..bytes.len() / 2]).is_err(), "cut short");
        assert!(decoded(b"id,name\n1,a\n").is_err(), "not Avro");
    }
}
