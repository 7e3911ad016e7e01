//! Avro message values (the schema registry's wire format) into rows of the table's columns.
//!
//! Each value is decoded with the writer schema its id names, and becomes a row the way a row of an Avro file
//! does (`connector_files::avro_rows`: logical types as dates, timestamps and decimals). A topic's schema may
//! change from message to message: a schema's fields not in the table add columns, and a field whose type the
//! registry's compatibility rules promote (int to long, float to double) widens its column (Delta type
//! widening), so every version's rows land in one table. A value that cannot be decoded (not in the wire
//! format, or bytes the schema does not read) is kept whole in `_rescued_data`, never dropped.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema as AvroSchema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as AvroValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use connector_core::arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use connector_core::arrow::compute::concat_batches;
use connector_core::arrow::datatypes::{DataType, Field, Schema};
use connector_core::error::{Error, Result};
use connector_core::schema::TableId;
use connector_files::avro_rows::batch_of;
use connector_files::avro_types::{AvroColumn, avro_columns, fields_of};
use connector_files::config::SchemaEvolution;
use connector_files::inference::table_columns;
use connector_files::rescued_data::{RESCUED_DATA, RowOrigin};
use connector_files::typed_rows::typed_rows_for_table;
use serde_json::{Map, Value};

use crate::schema_registry::{RegisteredSchema, wire_format};
use crate::topic_consumer::KafkaMessage;

/// The value columns once the fields of `schemas` (in the order the page met them) land in `value_fields`.
pub fn columns_with(table: &TableId, value_fields: &[Field], schemas: &[&AvroSchema]) -> Result<Vec<Field>> {
    // `_rescued_data` stays the last column: `table_columns` adds it after the others.
    let mut fields: Vec<Field> = value_fields.iter().filter(|field| field.name() != RESCUED_DATA).cloned().collect();
    for schema in schemas {
        let columns = avro_columns(schema)
            .map_err(|reason| Error::config(format!("{table}: a message's Avro schema cannot be stored: {reason}")))?;
        let widened = table_columns(
            table,
            Some(&fields),
            fields_of(&columns),
            &[],
            SchemaEvolution::AddNewColumnsWithTypeWidening,
            false,
        )?;
        fields = widened
            .columns
            .iter()
            .filter(|column| column.name != RESCUED_DATA)
            .map(|column| Field::new(&column.name, column.data_type.clone(), true))
            .collect();
    }
    fields.push(Field::new(RESCUED_DATA, DataType::Utf8, true));
    Ok(fields)
}

/// The ids of the schemas `messages`' values are written with, in the order first met.
pub fn schema_ids(messages: &[KafkaMessage]) -> Vec<u32> {
    ids_in(messages.iter().map(|message| message.value.as_deref()))
}

/// The ids of the schemas `messages`' keys are written with (Debezium's Avro keys), in the order first met.
pub fn key_schema_ids(messages: &[KafkaMessage]) -> Vec<u32> {
    ids_in(messages.iter().map(|message| message.key.as_deref()))
}

fn ids_in<'a>(parts: impl Iterator<Item = Option<&'a [u8]>>) -> Vec<u32> {
    let mut ids: Vec<u32> = Vec::new();
    for (id, _) in parts.filter_map(|part| part.and_then(wire_format)) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The rows of `messages` in `table_fields` (the value columns, `_rescued_data` among them), in their order.
pub fn avro_rows(
    topic: &str,
    messages: &[KafkaMessage],
    schemas: &HashMap<u32, Arc<RegisteredSchema>>,
    table_fields: &[Field],
) -> Result<RecordBatch> {
    let table_schema = Arc::new(Schema::new(table_fields.to_vec()));
    let mut rows = AvroRuns {
        topic,
        table_fields,
        table_schema: table_schema.clone(),
        plans: HashMap::new(),
        segments: Vec::new(),
    };
    let mut run: Option<(u32, Vec<AvroValue>)> = None;
    // A reader per schema, made once: making one resolves the schema's names.
    let mut readers: HashMap<u32, GenericDatumReader<'_>> = HashMap::new();
    for message in messages {
        let decoded = match message.value.as_deref() {
            None => Decoded::Null,
            Some(value) => match wire_format(value) {
                None => Decoded::Unreadable(
                    "the value is not in the schema registry's wire format (a zero byte and a schema id)".into(),
                ),
                Some((id, mut bytes)) => match reader_of(&mut readers, schemas, id) {
                    Err(reason) => Decoded::Unreadable(reason),
                    Ok(reader) => match reader.read_value(&mut bytes) {
                        Ok(value) => Decoded::Value(id, value),
                        Err(cause) => Decoded::Unreadable(format!("schema {id} does not read the value: {cause}")),
                    },
                },
            },
        };
        match decoded {
            Decoded::Value(id, value) => match &mut run {
                Some((run_id, values)) if *run_id == id => values.push(value),
                _ => {
                    rows.flush(run.take(), schemas)?;
                    run = Some((id, vec![value]));
                }
            },
            Decoded::Null => {
                rows.flush(run.take(), schemas)?;
                rows.one_row(None)?;
            }
            Decoded::Unreadable(reason) => {
                rows.flush(run.take(), schemas)?;
                rows.one_row(Some(unreadable(message, &reason)))?;
            }
        }
    }
    rows.flush(run.take(), schemas)?;
    concat_batches(&table_schema, &rows.segments)
        .map_err(|cause| Error::state(format!("kafka: cannot assemble the rows of `{topic}`")).caused_by(cause))
}

/// The reader of schema `id`, made on first use.
pub(crate) fn reader_of<'r, 's>(
    readers: &'r mut HashMap<u32, GenericDatumReader<'s>>,
    schemas: &'s HashMap<u32, Arc<RegisteredSchema>>,
    id: u32,
) -> std::result::Result<&'r GenericDatumReader<'s>, String> {
    match readers.entry(id) {
        std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            let schema = schemas.get(&id).ok_or_else(|| format!("schema {id} was not fetched"))?;
            let avro = schema.avro().ok_or_else(|| format!("schema {id} is not an Avro schema"))?;
            let reader = GenericDatumReader::builder(avro)
                .build()
                .map_err(|cause| format!("schema {id} cannot read values: {cause}"))?;
            Ok(entry.insert(reader))
        }
    }
}

enum Decoded {
    Value(u32, AvroValue),
    /// A null value (a tombstone): a row of nulls.
    Null,
    Unreadable(String),
}

/// The rows built so far, a segment per run of messages of one schema (or per message kept whole).
struct AvroRuns<'a> {
    topic: &'a str,
    table_fields: &'a [Field],
    table_schema: Arc<Schema>,
    /// Each schema's columns, planned once.
    plans: HashMap<u32, Arc<Vec<(String, AvroColumn)>>>,
    segments: Vec<RecordBatch>,
}

impl AvroRuns<'_> {
    fn flush(
        &mut self,
        run: Option<(u32, Vec<AvroValue>)>,
        schemas: &HashMap<u32, Arc<RegisteredSchema>>,
    ) -> Result<()> {
        let Some((id, values)) = run else { return Ok(()) };
        let schema = schemas.get(&id).ok_or_else(|| Error::state(format!("internal: schema {id} not fetched")))?;
        let failed =
            |reason: String| Error::state(format!("kafka: `{}`: Avro values of schema {id}: {reason}", self.topic));
        let plan = match self.plans.get(&id) {
            Some(plan) => plan.clone(),
            None => {
                let avro = schema.avro().ok_or_else(|| failed("not an Avro schema".into()))?;
                let plan = Arc::new(avro_columns(avro).map_err(failed)?);
                self.plans.insert(id, plan.clone());
                plan
            }
        };
        let writer_fields = Arc::new(Schema::new(fields_of(&plan)));
        let top_level_record = matches!(schema.avro(), Some(AvroSchema::Record(_)));
        let batch = batch_of(&values, &plan, top_level_record, writer_fields).map_err(failed)?;
        let origin = RowOrigin { file_path: self.topic, first_row: 0, strict: false };
        let rows = typed_rows_for_table(&batch, self.table_fields, origin).map_err(failed)?;
        self.segments.push(rows);
        Ok(())
    }

    /// A row of nulls, with `rescued` in `_rescued_data`.
    fn one_row(&mut self, rescued: Option<String>) -> Result<()> {
        let columns: Vec<ArrayRef> = self
            .table_fields
            .iter()
            .map(|field| match (&rescued, field.name() == RESCUED_DATA) {
                (Some(rescued), true) => Arc::new(StringArray::from(vec![rescued.clone()])) as ArrayRef,
                _ => new_null_array(field.data_type(), 1),
            })
            .collect();
        let row = RecordBatch::try_new(self.table_schema.clone(), columns)
            .map_err(|cause| Error::state(format!("internal: a row of `{}`", self.topic)).caused_by(cause))?;
        self.segments.push(row);
        Ok(())
    }
}

/// `_rescued_data` of a value that could not be decoded: its bytes in base64, why, and where it is.
fn unreadable(message: &KafkaMessage, reason: &str) -> String {
    let mut rescued = Map::new();
    rescued.insert(
        "_corrupt_value_base64".into(),
        Value::String(BASE64.encode(message.value.as_deref().unwrap_or_default())),
    );
    rescued.insert("_error".into(), Value::String(reason.to_string()));
    rescued.insert("_partition".into(), Value::from(message.partition));
    rescued.insert("_offset".into(), Value::from(message.offset));
    Value::Object(rescued).to_string()
}

#[cfg(test)]
mod tests {
    use connector_core::arrow::array::{Array, AsArray, Int64Array};
    use connector_core::arrow::datatypes::Int64Type;

    use super::*;

    fn encoded(schema: &AvroSchema, id: u32, value: AvroValue) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&id.to_be_bytes());
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema).build().expect("writer");
        bytes.extend(writer.write_value_to_vec(value).expect("encodes"));
        bytes
    }

    fn message(offset: i64, value: Option<Vec<u8>>) -> KafkaMessage {
        KafkaMessage { partition: 0, offset, timestamp_ms: None, key: None, value, headers: Vec::new() }
    }

    #[test]
    fn two_schema_versions_land_in_one_table_with_a_widened_column_and_bad_bytes_rescued() {
        let registered = |text: &str| Arc::new(RegisteredSchema::parse(text).expect("schema"));
        let schemas: HashMap<u32, Arc<RegisteredSchema>> = [
            (1, registered(r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"int"},{"name":"note","type":"string"}]}"#)),
            (2, registered(r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"note","type":"string"},
                {"name":"coupon","type":["null","string"],"default":null}]}"#)),
        ]
        .into();
        let avro = |id: u32| schemas[&id].avro().expect("an Avro schema");
        let (first, second) = (avro(1), avro(2));
        let record = |schema: &AvroSchema, fields: Vec<(&str, AvroValue)>| {
            let mut record = apache_avro::types::Record::new(schema).expect("record");
            for (name, value) in fields {
                record.put(name, value);
            }
            AvroValue::from(record)
        };
        let messages = vec![
            message(0, Some(encoded(first, 1, record(first, vec![("id", AvroValue::Int(1)), ("note", "a".into())])))),
            message(
                1,
                Some(encoded(
                    second,
                    2,
                    record(
                        second,
                        vec![
                            ("id", AvroValue::Long(5_000_000_000)),
                            ("note", "b".into()),
                            ("coupon", AvroValue::Union(1, Box::new("c".into()))),
                        ],
                    ),
                )),
            ),
            message(2, Some(b"not avro".to_vec())),
            message(3, None),
        ];
        let table = TableId::new("kafka", "orders");
        assert_eq!(schema_ids(&messages), [1, 2]);
        let fields = columns_with(&table, &[], &[first, second]).expect("columns");
        let names: Vec<&str> = fields.iter().map(|field| field.name().as_str()).collect();
        assert_eq!(names, ["id", "note", "coupon", RESCUED_DATA]);
        assert_eq!(fields[0].data_type(), &DataType::Int64, "int widened to long");
        let rows = avro_rows("orders", &messages, &schemas, &fields).expect("rows");
        assert_eq!(rows.num_rows(), 4, "a row per message");
        let ids: &Int64Array = rows.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.iter().collect::<Vec<_>>(), [Some(1), Some(5_000_000_000), None, None]);
        let coupons = rows.column(2).as_string::<i32>();
        assert_eq!(coupons.iter().collect::<Vec<_>>(), [None, Some("c"), None, None]);
        let rescued = rows.column(3).as_string::<i32>();
        assert!(rescued.is_null(0) && rescued.is_null(1) && rescued.is_null(3));
        assert!(rescued.value(2).contains("wire format") && rescued.value(2).contains(r#""_offset":2"#));
    }
}
