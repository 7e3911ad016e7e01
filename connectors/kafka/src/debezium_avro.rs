//! Debezium change events in Avro (Confluent's Avro converter: key and value in the schema registry's wire
//! format) as the JSON envelopes [`crate::debezium`] reads, with the schema wrapper Kafka Connect's JSON
//! converter writes: each key and value decoded with its writer schema into JSON, and the envelope's Avro schema
//! turned into the Connect schema that names each field's logical type.
//!
//! Avro's own logical types (`decimal`, `date`, `timestamp-*`, `time-*`) map to Connect's. Debezium's
//! (`io.debezium.time.Date` on an `int`, say) are named by the `connect.name` attribute Connect's Avro converter
//! writes beside a field's type, which Avro's parser does not keep: they are read from the schema's JSON
//! ([`RegisteredSchema::json`]). Messages not in the wire format (JSON events) pass unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as AvroValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use connector_core::error::{Error, Result};
use serde_json::{Map, Value, json};

use crate::avro_messages::reader_of;
use crate::schema_registry::{RegisteredSchema, wire_format};
use crate::topic_consumer::KafkaMessage;

/// `messages` with every key and value in the wire format rewritten as JSON: a value as `{"schema", "payload"}`,
/// a key as its payload. A part whose schema is unknown or does not read it stops the sync, naming where it is.
pub fn as_json_envelopes(
    topic: &str,
    messages: Vec<KafkaMessage>,
    schemas: &HashMap<u32, Arc<RegisteredSchema>>,
) -> Result<Vec<KafkaMessage>> {
    let mut readers: HashMap<u32, GenericDatumReader<'_>> = HashMap::new();
    let mut connect_schemas: HashMap<u32, Value> = HashMap::new();
    let mut converted = Vec::with_capacity(messages.len());
    for mut message in messages {
        let place = message.place(topic);
        let failed = |part: &str, reason: String| {
            Error::config(format!(
                "kafka: the {part} at {place} is in the schema registry's wire format but cannot be read: {reason}; \
                 give --schema-registry the registry its producer (Debezium's Avro converter) uses"
            ))
        };
        if let Some((id, payload)) =
            message.key.as_deref().and_then(wire_format).map(|(id, bytes)| (id, bytes.to_vec()))
        {
            let key = decoded(&mut readers, schemas, id, &payload).map_err(|reason| failed("key", reason))?;
            message.key = Some(json_of(key).to_string().into_bytes());
        }
        if let Some((id, payload)) =
            message.value.as_deref().and_then(wire_format).map(|(id, bytes)| (id, bytes.to_vec()))
        {
            let value = decoded(&mut readers, schemas, id, &payload).map_err(|reason| failed("value", reason))?;
            let connect = match connect_schemas.get(&id) {
                Some(connect) => connect.clone(),
                None => {
                    let schema = schemas.get(&id).ok_or_else(|| failed("value", format!("schema {id} not fetched")))?;
                    let json = schema.avro_json().ok_or_else(|| failed("value", format!("schema {id} is not Avro")))?;
                    let connect = connect_schema(json);
                    connect_schemas.insert(id, connect.clone());
                    connect
                }
            };
            let envelope = json!({ "schema": connect, "payload": json_of(value) });
            message.value = Some(envelope.to_string().into_bytes());
        }
        converted.push(message);
    }
    Ok(converted)
}

fn decoded<'s>(
    readers: &mut HashMap<u32, GenericDatumReader<'s>>,
    schemas: &'s HashMap<u32, Arc<RegisteredSchema>>,
    id: u32,
    mut bytes: &[u8],
) -> std::result::Result<AvroValue, String> {
    let reader = reader_of(readers, schemas, id)?;
    reader.read_value(&mut bytes).map_err(|cause| format!("schema {id} does not read it: {cause}"))
}

/// An Avro value as the JSON converter writes its Connect value: bytes and decimals as base64 of their bytes,
/// dates and times as their numbers, unions as their branch's value.
fn json_of(value: AvroValue) -> Value {
    match value {
        AvroValue::Null => Value::Null,
        AvroValue::Boolean(flag) => Value::Bool(flag),
        AvroValue::Int(number) | AvroValue::Date(number) | AvroValue::TimeMillis(number) => Value::from(number),
        AvroValue::Long(number)
        | AvroValue::TimeMicros(number)
        | AvroValue::TimestampMillis(number)
        | AvroValue::TimestampMicros(number)
        | AvroValue::TimestampNanos(number)
        | AvroValue::LocalTimestampMillis(number)
        | AvroValue::LocalTimestampMicros(number)
        | AvroValue::LocalTimestampNanos(number) => Value::from(number),
        AvroValue::Float(number) => float(f64::from(number)),
        AvroValue::Double(number) => float(number),
        AvroValue::Bytes(bytes) | AvroValue::Fixed(_, bytes) => Value::String(BASE64.encode(bytes)),
        AvroValue::String(text) | AvroValue::Enum(_, text) => Value::String(text),
        AvroValue::Union(_, value) => json_of(*value),
        AvroValue::Array(values) => Value::Array(values.into_iter().map(json_of).collect()),
        AvroValue::Map(entries) => {
            Value::Object(entries.into_iter().map(|(key, value)| (key, json_of(value))).collect())
        }
        AvroValue::Record(fields) => {
            Value::Object(fields.into_iter().map(|(name, value)| (name, json_of(value))).collect::<Map<_, _>>())
        }
        AvroValue::Decimal(decimal) => {
            Vec::<u8>::try_from(&decimal).map_or(Value::Null, |bytes| Value::String(BASE64.encode(bytes)))
        }
        AvroValue::BigDecimal(decimal) => Value::String(decimal.to_string()),
        AvroValue::Uuid(uuid) => Value::String(uuid.to_string()),
        AvroValue::Duration(duration) => Value::String(format!("{duration:?}")),
    }
}

/// A double as JSON: NaN and the infinities, which JSON has no number for, as text.
fn float(number: f64) -> Value {
    serde_json::Number::from_f64(number).map_or_else(|| Value::String(number.to_string()), Value::Number)
}

/// The Connect schema of an envelope's Avro schema, as far as [`crate::debezium`] reads it: the row's fields
/// (`before`/`after`), each with the logical type's `name` and `parameters`.
fn connect_schema(envelope: &Value) -> Value {
    let fields: Vec<Value> = ["before", "after"]
        .iter()
        .find_map(|name| row_record(envelope, name))
        .and_then(|record| record.get("fields"))
        .and_then(Value::as_array)
        .map(|fields| fields.iter().map(connect_field).collect())
        .unwrap_or_default();
    json!({ "type": "struct", "fields": [{ "field": "after", "type": "struct", "fields": fields }] })
}

/// The row's record schema as the envelope's field `name` defines it inline (Debezium defines it in `before`
/// and refers to it by name in `after`).
fn row_record<'a>(envelope: &'a Value, name: &str) -> Option<&'a Value> {
    let field = envelope
        .get("fields")?
        .as_array()?
        .iter()
        .find(|field| field.get("name").is_some_and(|field_name| field_name == name))?;
    let record = |schema: &'a Value| (schema.get("type")? == "record").then_some(schema);
    match field.get("type")? {
        Value::Array(branches) => branches.iter().find_map(record),
        schema => record(schema),
    }
}

/// A record field's Connect schema: its name, and the logical type its Avro type names (`connect.name`, else
/// Avro's `logicalType`) with its parameters.
fn connect_field(field: &Value) -> Value {
    let name = field.get("name").cloned().unwrap_or(Value::Null);
    let schema = match field.get("type") {
        Some(Value::Array(branches)) => branches.iter().find(|branch| *branch != "null"),
        other => other,
    };
    let Some(Value::Object(schema)) = schema else { return json!({ "field": name }) };
    let logical = schema.get("logicalType").and_then(Value::as_str);
    let connect_name = schema.get("connect.name").and_then(Value::as_str).or(match logical {
        Some("decimal") => Some("org.apache.kafka.connect.data.Decimal"),
        Some("date") => Some("org.apache.kafka.connect.data.Date"),
        Some("time-millis") => Some("org.apache.kafka.connect.data.Time"),
        Some("time-micros") => Some("io.debezium.time.MicroTime"),
        Some("timestamp-millis" | "local-timestamp-millis") => Some("org.apache.kafka.connect.data.Timestamp"),
        Some("timestamp-micros" | "local-timestamp-micros") => Some("io.debezium.time.MicroTimestamp"),
        Some("timestamp-nanos" | "local-timestamp-nanos") => Some("io.debezium.time.NanoTimestamp"),
        _ => None,
    });
    let parameters = match (schema.get("connect.parameters"), logical) {
        (Some(parameters @ Value::Object(_)), _) => parameters.clone(),
        (_, Some("decimal")) => {
            let attribute = |key: &str| schema.get(key).map(|value| Value::String(value.to_string()));
            let mut parameters = Map::new();
            if let Some(scale) = attribute("scale") {
                parameters.insert("scale".into(), scale);
            }
            if let Some(precision) = attribute("precision") {
                parameters.insert("connect.decimal.precision".into(), precision);
            }
            Value::Object(parameters)
        }
        _ => Value::Null,
    };
    json!({ "field": name, "name": connect_name, "parameters": parameters })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An envelope schema as Confluent's Avro converter writes Debezium's: the row defined in `before`, named
    /// in `after`; a decimal with both Avro's and Connect's attributes, a date Avro knows only as an `int`.
    const ENVELOPE: &str = r#"{"type": "record", "name": "Envelope", "namespace": "db.public.t", "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
            {"name": "id", "type": "int"},
            {"name": "amount", "type": ["null", {"type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
                "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
                "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}], "default": null},
            {"name": "born", "type": ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}],
             "default": null},
            {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-micros"}}
        ], "connect.name": "db.public.t.Value"}], "default": null},
        {"name": "after", "type": ["null", "Value"], "default": null},
        {"name": "op", "type": "string"}]}"#;

    #[test]
    fn the_envelope_schema_names_each_fields_logical_type_as_connect_does() {
        let connect = connect_schema(&serde_json::from_str(ENVELOPE).expect("json"));
        let fields = &connect["fields"][0]["fields"];
        assert_eq!(fields[0], json!({"field": "id"}), "a plain int names no logical type");
        assert_eq!(fields[1]["name"], "org.apache.kafka.connect.data.Decimal");
        assert_eq!(fields[1]["parameters"], json!({"scale": "2", "connect.decimal.precision": "10"}));
        assert_eq!(fields[2]["name"], "io.debezium.time.Date", "from connect.name, which Avro's parser drops");
        assert_eq!(fields[3]["name"], "io.debezium.time.MicroTimestamp", "from Avro's logicalType");
    }

    #[test]
    fn avro_values_become_the_json_the_json_converter_writes() {
        let schema = RegisteredSchema::parse(ENVELOPE).expect("schema");
        let avro = schema.avro().expect("an Avro schema");
        let row = apache_avro::types::Value::Record(vec![
            ("id".into(), AvroValue::Int(7)),
            ("amount".into(), AvroValue::Union(1, Box::new(AvroValue::Decimal(vec![0x30, 0x39].into())))),
            ("born".into(), AvroValue::Union(1, Box::new(AvroValue::Int(20_793)))),
            ("seen".into(), AvroValue::TimestampMicros(1)),
        ]);
        let envelope = AvroValue::Record(vec![
            ("before".into(), AvroValue::Union(0, Box::new(AvroValue::Null))),
            ("after".into(), AvroValue::Union(1, Box::new(row))),
            ("op".into(), AvroValue::String("c".into())),
        ]);
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(avro).build().expect("writer");
        let mut value = vec![0, 0, 0, 0, 5];
        value.extend(writer.write_value_to_vec(envelope).expect("encodes"));
        let message = KafkaMessage {
            partition: 0,
            offset: 3,
            timestamp_ms: None,
            key: Some(br#"{"id":7}"#.to_vec()),
            value: Some(value),
            headers: Vec::new(),
        };
        let schemas: HashMap<u32, Arc<RegisteredSchema>> = [(5, Arc::new(schema))].into();
        let converted = as_json_envelopes("t", vec![message], &schemas).expect("converted");
        let envelope: Value = serde_json::from_slice(converted[0].value.as_deref().expect("value")).expect("json");
        assert_eq!(envelope["payload"]["after"], json!({"id": 7, "amount": "MDk=", "born": 20_793, "seen": 1}));
        assert_eq!(envelope["payload"]["op"], "c");
        assert_eq!(converted[0].key.as_deref(), Some(&br#"{"id":7}"#[..]), "a JSON key passes unchanged");

        let unknown = KafkaMessage { value: Some(vec![0, 0, 0, 0, 9, 1]), ..converted[0].clone() };
        let error = as_json_envelopes("t", vec![unknown], &schemas).expect_err("unknown schema").to_string();
        assert!(error.contains("value at offset 3 of partition 0 of `t`") && error.contains("schema 9"), "{error}");
    }
}
