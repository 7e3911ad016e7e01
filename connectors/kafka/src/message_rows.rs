//! Messages into rows: the value's columns (a JSON object's fields, or the value whole as text or bytes) and the
//! message's own columns (topic, partition, offset, timestamp, key, headers).
//!
//! JSON values are read as the files source reads JSON lines (`connector_files::json_rows`), one message a line:
//! the same inference (decimals, dates, timestamps from the values' text), the same evolution (a field seen for
//! the first time adds a column) and the same rescue (a value that does not fit its column, or a message that is
//! not a JSON object, kept in `_rescued_data`, never dropped).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use connector_core::arrow::array::{
    Array, ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use connector_core::arrow::datatypes::{DataType, Field, TimeUnit};
use connector_core::change::Operation;
use connector_core::engine::{DecodedRows, RecordDecoder};
use connector_core::error::{Error, Result};
use connector_core::metadata_column::{
    DEBEZIUM_SOURCE, KAFKA_HEADERS, KAFKA_KEY, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TIMESTAMP, KAFKA_TOPIC,
};
use connector_core::schema::{Column, TableId, TableSchema};
use connector_files::config::SchemaEvolution;
use connector_files::inference::{JSON_SAMPLE_LINES, json_lines_columns, table_columns};
use connector_files::json_rows::JsonRows;
use connector_files::rescued_data::{RESCUED_DATA, RowOrigin};
use connector_files::text_types::TimeFormats;
use serde_json::{Map, Value};

use crate::avro_messages::{avro_rows, columns_with, schema_ids};
use crate::config::{KafkaMode, MessageFormat};
use crate::schema_registry::{RegisteredSchema, wire_format};
use crate::topic_consumer::{KafkaMessage, MessagePage};
use crate::{debezium, debezium_avro, protobuf_messages};

/// The column that holds a value whole (`string` and `bytes` formats).
pub const VALUE: &str = "value";

/// A topic's messages as rows of its columns, which grow as JSON values bring fields not seen before.
#[derive(Debug)]
pub struct MessageRows {
    table: TableId,
    format: MessageFormat,
    mode: KafkaMode,
    /// Stop at a value that does not decode instead of rescuing it.
    strict: bool,
    /// The value's columns, `_rescued_data` among them where values can fail to fit.
    value_fields: Vec<Field>,
    /// The Avro schemas whose fields the value columns hold.
    avro_schemas_learned: HashSet<u32>,
    /// The JSON reader of `value_fields`, once they are known.
    json: Option<JsonRows>,
    /// Column types declared by the user (`schema_hints`) or the messages themselves (Debezium's schemas), for
    /// columns not yet in the table.
    declared: Vec<(String, DataType)>,
    /// In upsert mode, the value columns the table merges by (`key`); empty to merge by the message key.
    value_key: Vec<String>,
    schema: TableSchema,
}

impl MessageRows {
    /// The rows of `table`'s messages, starting from the table's stored value columns (`existing`).
    pub fn new(
        table: TableId,
        format: MessageFormat,
        mode: KafkaMode,
        strict: bool,
        existing: &[Field],
    ) -> Result<Self> {
        let value_fields = match format {
            MessageFormat::Json | MessageFormat::Debezium | MessageFormat::Avro | MessageFormat::Protobuf => {
                let mut fields = existing.to_vec();
                if !fields.iter().any(|field| field.name() == RESCUED_DATA) {
                    fields.push(Field::new(RESCUED_DATA, DataType::Utf8, true));
                }
                fields
            }
            MessageFormat::String => {
                vec![Field::new(VALUE, DataType::Utf8, true), Field::new(RESCUED_DATA, DataType::Utf8, true)]
            }
            MessageFormat::Bytes => vec![Field::new(VALUE, DataType::Binary, true)],
        };
        // A table that holds rows has its JSON columns already; a new one learns them from its first page.
        let json = (format.reads_json() && value_fields.len() > 1)
            .then(|| JsonRows::new(&value_fields, TimeFormats::default()));
        let schema = table_schema(&table, format, mode, &[], &value_fields)?;
        Ok(MessageRows {
            table,
            format,
            mode,
            strict,
            value_fields,
            avro_schemas_learned: HashSet::new(),
            json,
            declared: Vec::new(),
            value_key: Vec::new(),
            schema,
        })
    }

    /// The same, with the user's column types (`hints`, which give new columns their types and exist before the
    /// first message) and, in upsert mode, the value columns the table merges by (`key`, which must have a type
    /// when the table is made: hinted, or already the table's).
    pub fn with_value_key(mut self, key: &[String], hints: &[(String, DataType)]) -> Result<Self> {
        if !hints.is_empty() {
            if matches!(self.format, MessageFormat::String | MessageFormat::Bytes) {
                return Err(Error::config(format!(
                    "{}: schema hints type the columns of json and protobuf values (and name avro values' before \
                     the first message); string and bytes values land whole in `{VALUE}`: remove --schema-hints",
                    self.table
                )));
            }
            let mut fields: Vec<Field> =
                self.value_fields.iter().filter(|field| field.name() != RESCUED_DATA).cloned().collect();
            for (name, data_type) in hints {
                if !fields.iter().any(|field| field.name() == name) {
                    fields.push(Field::new(name, data_type.clone(), true));
                }
            }
            fields.push(Field::new(RESCUED_DATA, DataType::Utf8, true));
            self.value_fields = fields;
            self.declared = hints.to_vec();
            if self.format.reads_json() {
                self.json = Some(JsonRows::new(&self.value_fields, TimeFormats::default()));
            }
        }
        if !key.is_empty() {
            if let Some(missing) = key.iter().find(|name| !self.value_fields.iter().any(|field| field.name() == *name))
            {
                return Err(Error::config(format!(
                    "{}: key column `{missing}` has no type before the first message: give it with --schema-hints \
                     \"{missing} bigint\" (`schema_hints` in pipelines.toml), the type its values have",
                    self.table
                )));
            }
            self.value_key = key.to_vec();
        }
        self.schema = table_schema(&self.table, self.format, self.mode, &self.value_key, &self.value_fields)?;
        Ok(self)
    }

    fn value_columns(
        &mut self,
        messages: &[KafkaMessage],
        schemas: &HashMap<u32, Arc<RegisteredSchema>>,
    ) -> Result<Vec<ArrayRef>> {
        match self.format {
            MessageFormat::Avro => {
                self.learn_avro_columns(messages, schemas)?;
                let batch = avro_rows(&self.table.name, messages, schemas, &self.value_fields)?;
                Ok(batch.columns().to_vec())
            }
            MessageFormat::Bytes => {
                let values: BinaryArray = messages.iter().map(|message| message.value.as_deref()).collect();
                Ok(vec![Arc::new(values)])
            }
            MessageFormat::String => {
                let mut rescued = Vec::with_capacity(messages.len());
                let values: StringArray = messages
                    .iter()
                    .map(|message| {
                        let value = message.value.as_deref().map(std::str::from_utf8);
                        rescued.push(match value {
                            Some(Err(_)) => Some(not_text(message)),
                            _ => None,
                        });
                        value.and_then(std::result::Result::ok)
                    })
                    .collect();
                Ok(vec![Arc::new(values), Arc::new(StringArray::from(rescued))])
            }
            MessageFormat::Json | MessageFormat::Debezium | MessageFormat::Protobuf => {
                let batch = self.json_rows(messages)?;
                Ok(self.value_fields.iter().map(|field| column_of(&batch, field)).collect())
            }
        }
    }

    /// The JSON values' rows, after adding the columns of fields seen for the first time (read again then).
    fn json_rows(&mut self, messages: &[KafkaMessage]) -> Result<RecordBatch> {
        let lines = json_lines(messages);
        let undeclared =
            self.declared.iter().any(|(name, _)| !self.value_fields.iter().any(|field| field.name() == name));
        if self.json.is_none() || undeclared {
            self.learn_columns(&lines)?;
        }
        let batch = self.decode_json(&lines, messages)?;
        let rescued = batch.column_by_name(RESCUED_DATA).is_some_and(|column| column.null_count() < column.len());
        // A rescued value may be a field no column holds yet: learn the page's columns, and read it again if any.
        if rescued && self.learn_columns(&lines)? {
            return self.decode_json(&lines, messages);
        }
        Ok(batch)
    }

    /// Adds (or widens) the columns of the Avro schemas first met in `messages`.
    fn learn_avro_columns(
        &mut self,
        messages: &[KafkaMessage],
        schemas: &HashMap<u32, Arc<RegisteredSchema>>,
    ) -> Result<()> {
        let new: Vec<&apache_avro::Schema> = schema_ids(messages)
            .into_iter()
            .filter(|id| self.avro_schemas_learned.insert(*id))
            .filter_map(|id| schemas.get(&id).and_then(|schema| schema.avro()))
            .collect();
        if !new.is_empty() {
            self.value_fields = columns_with(&self.table, &self.value_fields, &new)?;
            self.schema = table_schema(&self.table, self.format, self.mode, &self.value_key, &self.value_fields)?;
        }
        Ok(())
    }

    /// Adds the columns of the fields `lines` bring that the value columns lack; returns whether any was added.
    fn learn_columns(&mut self, lines: &[u8]) -> Result<bool> {
        let times = TimeFormats::default();
        let sampled = json_lines_columns(lines, &times, JSON_SAMPLE_LINES).map_err(|cause| {
            Error::state(format!("{}: cannot infer the columns of the messages' JSON", self.table)).caused_by(cause)
        })?;
        let columns = table_columns(
            &self.table,
            Some(&self.value_fields),
            sampled,
            &self.declared,
            SchemaEvolution::AddNewColumns,
            true,
        )?;
        let added = columns.columns.len() > self.value_fields.len();
        if added || self.json.is_none() {
            self.value_fields =
                columns.columns.iter().map(|column| Field::new(&column.name, column.data_type.clone(), true)).collect();
            self.json = Some(JsonRows::new(&self.value_fields, times));
            self.schema = table_schema(&self.table, self.format, self.mode, &self.value_key, &self.value_fields)?;
        }
        Ok(added)
    }

    /// Reads `lines` (a line per message); should a message make other than one row (two objects on its line),
    /// the messages are read one by one and such a message is kept whole as a corrupt record.
    fn decode_json(&self, lines: &[u8], messages: &[KafkaMessage]) -> Result<RecordBatch> {
        let Some(json) = &self.json else { return Err(Error::state("internal: JSON rows without columns")) };
        let origin = RowOrigin { file_path: &self.table.name, first_row: 0, strict: false };
        let decode = |lines: &[u8]| {
            json.decode(lines, origin)
                .map_err(|reason| Error::state(format!("{}: cannot read the messages' JSON: {reason}", self.table)))
        };
        let batch = decode(lines)?;
        if batch.num_rows() == messages.len() {
            return Ok(batch);
        }
        let mut batches = Vec::with_capacity(messages.len());
        for line in lines.split(|&byte| byte == b'\n') {
            let one = decode(line)?;
            batches.push(if one.num_rows() == 1 {
                one
            } else {
                let whole = Value::String(String::from_utf8_lossy(line).into_owned()).to_string();
                decode(whole.as_bytes())?
            });
        }
        connector_core::arrow::compute::concat_batches(&batch.schema(), &batches).map_err(|cause| {
            Error::state(format!("{}: cannot assemble the messages' rows", self.table)).caused_by(cause)
        })
    }
}

impl RecordDecoder for MessageRows {
    type Records = MessagePage;

    fn decode(&mut self, page: MessagePage) -> Result<Option<DecodedRows>> {
        let schemas = page.schemas;
        // Protobuf values are read as the JSON objects of their fields.
        let page_messages = match self.format {
            MessageFormat::Protobuf => protobuf_messages::as_json_values(page.messages, &schemas),
            _ => page.messages,
        };
        let (messages, operations, sources) = match (self.format, self.mode) {
            (MessageFormat::Debezium, _) => {
                let messages = debezium_avro::as_json_envelopes(&self.table.name, page_messages, &schemas)?;
                let debezium::Events { events, declared } = debezium::events(&self.table.name, messages)?;
                debezium::declare(&mut self.declared, declared);
                let mut messages = Vec::with_capacity(events.len());
                let mut operations = Vec::with_capacity(events.len());
                let mut sources = Vec::with_capacity(events.len());
                for event in events {
                    messages.push(event.message);
                    operations.push(event.operation);
                    sources.push(event.source);
                }
                (messages, operations, Some(sources))
            }
            (_, KafkaMode::Append) => {
                let operations = vec![Operation::Insert; page_messages.len()];
                (page_messages, operations, None)
            }
            (_, KafkaMode::Upsert) if !self.value_key.is_empty() => {
                let operations = value_key_upserts(&self.table.name, self.format, &page_messages, &self.value_key)?;
                (tombstones_as_their_keys(page_messages), operations, None)
            }
            (_, KafkaMode::Upsert) => {
                let operations = upserts(&self.table.name, &page_messages)?;
                (page_messages, operations, None)
            }
        };
        if messages.is_empty() {
            return Ok(None);
        }
        let mut columns = self.value_columns(&messages, &schemas)?;
        columns.extend(message_columns(&self.table.name, &messages));
        if let Some(sources) = sources {
            columns.push(Arc::new(StringArray::from(sources)));
        }
        let rows = RecordBatch::try_new(self.schema.arrow_schema(), columns).map_err(|cause| {
            Error::state(format!("{}: the messages' rows do not match the table's columns", self.table))
                .caused_by(cause)
        })?;
        if self.strict {
            refuse_rescued(&self.table.name, &rows, &messages)?;
        }
        refuse_null_keys(&self.table.name, &rows, &messages, &self.value_key)?;
        Ok(Some(DecodedRows { rows, operations }))
    }

    fn schema(&self) -> &TableSchema {
        &self.schema
    }
}

/// Strict mode: the first message whose value did not decode into its columns (kept in `_rescued_data`) stops the
/// sync, naming where it is and what did not fit; the pages before it are committed.
fn refuse_rescued(topic: &str, rows: &RecordBatch, messages: &[KafkaMessage]) -> Result<()> {
    let Some(rescued) = rows.column_by_name(RESCUED_DATA) else { return Ok(()) };
    let Some(row) = (0..rescued.len()).find(|&row| rescued.is_valid(row)) else { return Ok(()) };
    let text = rescued.as_any().downcast_ref::<StringArray>().map(|values| values.value(row)).unwrap_or_default();
    Err(Error::config(format!(
        "kafka: the message at {} does not decode into the table's columns (strict mode): {text}. Fix its \
         producer, or sync without --strict to keep such values in {RESCUED_DATA}",
        messages[row].place(topic)
    )))
}

/// Upsert mode by value columns: the first message without a value for a key column stops the sync, naming where
/// it is (the pages before it are committed): its row could not be placed, and a null key part matches no row.
fn refuse_null_keys(topic: &str, rows: &RecordBatch, messages: &[KafkaMessage], key: &[String]) -> Result<()> {
    for name in key {
        let Some(column) = rows.column_by_name(name) else { continue };
        if let Some(row) = (0..column.len()).find(|&row| column.is_null(row)) {
            return Err(Error::config(format!(
                "kafka: the message at {} has no value for key column `{name}`{}; produce it with one, or sync this \
                 topic without --key (by the message key)",
                messages[row].place(topic),
                if messages[row].value.is_none() { "" } else { " (or one that does not fit its type)" }
            )));
        }
    }
    Ok(())
}

/// Each message's operation in upsert mode by value columns: a value replaces its key columns' row, a tombstone
/// (a null value) deletes the row its message key names, which must then hold the key columns: a JSON object (as
/// Kafka Connect's JSON converter writes keys), or with Avro values an Avro record in the registry's wire format
/// (as Confluent's Avro serializer writes keys), read as a value is.
fn value_key_upserts(
    topic: &str,
    format: MessageFormat,
    messages: &[KafkaMessage],
    key: &[String],
) -> Result<Vec<Operation>> {
    let keyed_as_values = |bytes: &[u8]| match format {
        MessageFormat::Avro => wire_format(bytes).is_some(),
        _ => key_object(bytes, key),
    };
    let expected = match format {
        MessageFormat::Avro => "an Avro record in the schema registry's wire format",
        _ => "a JSON object",
    };
    messages
        .iter()
        .map(|message| match (&message.key, &message.value) {
            (_, Some(_)) => Ok(Operation::Update),
            (Some(bytes), None) if keyed_as_values(bytes) => Ok(Operation::Delete),
            (_, None) => Err(Error::config(format!(
                "kafka: the tombstone at {} deletes by its message key, which is not {expected} holding the key \
                 columns ({}); produce tombstones keyed so, or sync this topic without --key (by the message key)",
                message.place(topic),
                key.join(", ")
            ))),
        })
        .collect()
}

/// Whether a message key is a JSON object holding every key column.
fn key_object(bytes: &[u8], key: &[String]) -> bool {
    matches!(serde_json::from_slice::<Value>(bytes), Ok(Value::Object(fields)) if key.iter().all(|name| fields.contains_key(name)))
}

/// Tombstones with their message key (the key columns, as JSON or Avro) as their value, so that their row names
/// the key the delete removes.
fn tombstones_as_their_keys(messages: Vec<KafkaMessage>) -> Vec<KafkaMessage> {
    messages
        .into_iter()
        .map(|mut message| {
            if message.value.is_none() {
                message.value = message.key.clone();
            }
            message
        })
        .collect()
}

/// Each message's operation in upsert mode: a tombstone (a null value) deletes its key's row, any other message
/// replaces it. A message without a key cannot be placed (a compacted topic refuses them too): the sync stops
/// there, with the pages before committed, rather than guess.
fn upserts(topic: &str, messages: &[KafkaMessage]) -> Result<Vec<Operation>> {
    messages
        .iter()
        .map(|message| match (&message.key, &message.value) {
            (None, _) => Err(Error::config(format!(
                "kafka: the message at {} has no key, which mode upsert merges by; produce keyed messages to this \
                 topic, or sync it with --mode append",
                message.place(topic)
            ))),
            (Some(_), None) => Ok(Operation::Delete),
            (Some(_), Some(_)) => Ok(Operation::Update),
        })
        .collect()
}

/// The table's columns: the value's, then the message's own (and a change event's `source`); in upsert mode the
/// table's key is `value_key` (value columns), or the message key when it is empty.
pub fn table_schema(
    table: &TableId,
    format: MessageFormat,
    mode: KafkaMode,
    value_key: &[String],
    value_fields: &[Field],
) -> Result<TableSchema> {
    let mut columns: Vec<Column> = value_fields
        .iter()
        .map(|field| Column::new(field.name(), field.data_type().clone(), field.data_type().to_string()))
        .collect();
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    for (name, data_type, source_type) in [
        (KAFKA_TOPIC, DataType::Utf8, "topic"),
        (KAFKA_PARTITION, DataType::Int32, "partition"),
        (KAFKA_OFFSET, DataType::Int64, "offset"),
        (KAFKA_TIMESTAMP, utc, "timestamp"),
        (KAFKA_KEY, DataType::Binary, "key"),
        (KAFKA_HEADERS, DataType::Utf8, "headers (JSON)"),
    ] {
        columns.push(Column::new(name, data_type, source_type));
    }
    if format == MessageFormat::Debezium {
        columns.push(Column::new(DEBEZIUM_SOURCE, DataType::Utf8, "source (JSON)"));
    }
    let key = match mode {
        KafkaMode::Append => Vec::new(),
        KafkaMode::Upsert if !value_key.is_empty() => value_key.to_vec(),
        KafkaMode::Upsert => vec![KAFKA_KEY.to_string()],
    };
    TableSchema::new(table.clone(), columns, key)
}

/// A column of `batch` by `field`'s name; nulls if the batch lacks it.
fn column_of(batch: &RecordBatch, field: &Field) -> ArrayRef {
    batch
        .column_by_name(field.name())
        .cloned()
        .unwrap_or_else(|| connector_core::arrow::array::new_null_array(field.data_type(), batch.num_rows()))
}

/// The messages' values a line each: a null or blank value is an empty object (a row of nulls), and line breaks
/// inside a value, which JSON allows only between tokens, become spaces. A value in the wire format of
/// Confluent's JSON Schema serializer (a zero byte and a schema id before the JSON) is read as its JSON: no JSON
/// text starts with a zero byte, so plain values are never mistaken for it. Its columns are inferred as a plain
/// value's are; the registered JSON Schema is not fetched.
fn json_lines(messages: &[KafkaMessage]) -> Vec<u8> {
    let mut lines =
        Vec::with_capacity(messages.iter().map(|message| message.value.as_ref().map_or(3, Vec::len) + 1).sum());
    for message in messages {
        match message.value.as_deref().map(json_payload) {
            Some(value) if !value.iter().all(u8::is_ascii_whitespace) => {
                lines.extend(value.iter().map(|&byte| if byte == b'\n' || byte == b'\r' { b' ' } else { byte }));
            }
            _ => lines.extend_from_slice(b"{}"),
        }
        lines.push(b'\n');
    }
    lines.pop();
    lines
}

/// The JSON of a value, without the JSON Schema serializer's header when it has one.
fn json_payload(value: &[u8]) -> &[u8] {
    match wire_format(value) {
        Some((_, json))
            if json.iter().find(|byte| !byte.is_ascii_whitespace()).is_some_and(|byte| b"{[".contains(byte)) =>
        {
            json
        }
        _ => value,
    }
}

/// `_rescued_data` of a `string` message whose value is not UTF-8: the bytes, in base64.
fn not_text(message: &KafkaMessage) -> String {
    let mut rescued = Map::new();
    rescued.insert("value_base64".into(), Value::String(BASE64.encode(message.value.as_deref().unwrap_or_default())));
    rescued.insert("_offset".into(), Value::from(message.offset));
    Value::Object(rescued).to_string()
}

fn message_columns(topic: &str, messages: &[KafkaMessage]) -> Vec<ArrayRef> {
    let topics = StringArray::from_iter_values(messages.iter().map(|_| topic));
    let partitions: Int32Array = messages.iter().map(|message| Some(message.partition)).collect();
    let offsets: Int64Array = messages.iter().map(|message| Some(message.offset)).collect();
    let timestamps: TimestampMicrosecondArray =
        messages.iter().map(|message| message.timestamp_ms.and_then(|ms| ms.checked_mul(1000))).collect();
    let keys: BinaryArray = messages.iter().map(|message| message.key.as_deref()).collect();
    let headers: StringArray = messages.iter().map(|message| headers_json(&message.headers)).collect();
    vec![
        Arc::new(topics),
        Arc::new(partitions),
        Arc::new(offsets),
        Arc::new(timestamps.with_timezone("UTC")),
        Arc::new(keys),
        Arc::new(headers),
    ]
}

/// A message's headers as a JSON array of `{"key", "value"}` (Kafka allows a name twice, so not an object); a
/// value that is not UTF-8 is given as `value_base64`. `None` without headers.
fn headers_json(headers: &[(String, Option<Vec<u8>>)]) -> Option<String> {
    if headers.is_empty() {
        return None;
    }
    let entries: Vec<Value> = headers
        .iter()
        .map(|(key, value)| {
            let mut entry = Map::new();
            entry.insert("key".into(), Value::String(key.clone()));
            match value.as_deref().map(|bytes| (bytes, std::str::from_utf8(bytes))) {
                None => drop(entry.insert("value".into(), Value::Null)),
                Some((_, Ok(text))) => drop(entry.insert("value".into(), Value::String(text.to_string()))),
                Some((bytes, Err(_))) => drop(entry.insert("value_base64".into(), Value::String(BASE64.encode(bytes)))),
            }
            Value::Object(entry)
        })
        .collect();
    Some(Value::Array(entries).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64, value: Option<&[u8]>) -> KafkaMessage {
        KafkaMessage {
            partition: 1,
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset),
            key: Some(format!("k{offset}").into_bytes()),
            value: value.map(<[u8]>::to_vec),
            headers: vec![("trace".into(), Some(b"t1".to_vec())), ("raw".into(), Some(vec![0xff]))],
        }
    }

    fn page(messages: Vec<KafkaMessage>) -> MessagePage {
        MessagePage { messages, offsets: Default::default(), caught_up: false, schemas: Default::default() }
    }

    fn text(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let column = batch.column_by_name(name).expect(name);
        let strings = column.as_any().downcast_ref::<StringArray>().expect("text");
        strings.iter().map(|value| value.map(str::to_string)).collect()
    }

    #[test]
    fn a_hinted_column_new_to_an_existing_table_is_read_in_every_json_read_format() {
        let existing = [Field::new("id", DataType::Int64, true), Field::new(RESCUED_DATA, DataType::Utf8, true)];
        let hints = [("code".to_string(), DataType::Utf8)];
        let cases: [(MessageFormat, KafkaMode, &[u8]); 2] = [
            (MessageFormat::Json, KafkaMode::Append, br#"{"id": 1, "code": "a"}"#),
            (MessageFormat::Debezium, KafkaMode::Upsert, br#"{"op": "c", "after": {"id": 1, "code": "a"}}"#),
        ];
        for (format, mode, value) in cases {
            let table = TableId::new("kafka", "t");
            let mut rows = MessageRows::new(table, format, mode, false, &existing)
                .and_then(|rows| rows.with_value_key(&[], &hints))
                .expect("rows");
            let mut keyed = message(0, Some(value));
            keyed.key = Some(br#"{"id": 1}"#.to_vec());
            let decoded = rows.decode(page(vec![keyed])).expect("decoded").expect("rows");
            assert_eq!(text(&decoded.rows, "code"), [Some("a".to_string())], "{format:?}");
        }
    }

    #[test]
    fn json_values_in_the_json_schema_serializers_wire_format_are_read_as_their_json() {
        let table = TableId::new("kafka", "orders");
        let mut rows = MessageRows::new(table, MessageFormat::Json, KafkaMode::Append, false, &[]).expect("rows");
        let framed = [&[0u8, 0, 0, 0, 7][..], br#"{"id": 2, "note": "framed"}"#].concat();
        let not_json = [&[0u8, 0, 0, 0, 7][..], b"\x01\x02"].concat();
        let messages = vec![
            message(0, Some(br#"{"id": 1, "note": "plain"}"#)),
            message(1, Some(&framed)),
            message(2, Some(&not_json)),
        ];
        let decoded = rows.decode(page(messages)).expect("decoded").expect("rows");
        assert_eq!(text(&decoded.rows, "note"), [Some("plain".to_string()), Some("framed".to_string()), None]);
        let rescued = text(&decoded.rows, RESCUED_DATA);
        assert!(rescued[0].is_none() && rescued[1].is_none() && rescued[2].is_some(), "{rescued:?}");
    }

    #[test]
    fn json_messages_become_typed_columns_one_row_each_whatever_their_shape() {
        let table = TableId::new("kafka", "orders");
        let mut rows = MessageRows::new(table, MessageFormat::Json, KafkaMode::Append, false, &[]).expect("rows");
        let first = vec![
            message(0, Some(br#"{"id": 1, "amount": 12.50, "note": "a"}"#)),
            message(1, Some(b"{\"id\": 2,\n \"amount\": 3.25}")),
            message(2, None),
            message(3, Some(b"not json")),
            message(4, Some(br#"{"id": 5}{"id": 6}"#)),
        ];
        let decoded = rows.decode(page(first)).expect("decoded").expect("rows");
        assert_eq!(decoded.rows.num_rows(), 5, "a row per message");
        let names: Vec<String> = decoded.rows.schema().fields().iter().map(|field| field.name().clone()).collect();
        assert_eq!(&names[..4], [RESCUED_DATA, "amount", "id", "note"], "JSON fields in arrow's (alphabetical) order");
        assert_eq!(names[4..], [KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_TIMESTAMP, KAFKA_KEY, KAFKA_HEADERS]);
        assert_eq!(decoded.rows.column_by_name("amount").expect("amount").data_type(), &DataType::Decimal128(4, 2));
        let rescued = text(&decoded.rows, RESCUED_DATA);
        assert!(rescued[..3].iter().all(Option::is_none), "{rescued:?}");
        assert!(rescued[3].as_deref().is_some_and(|value| value.contains("not json")), "{rescued:?}");
        assert!(rescued[4].as_deref().is_some_and(|value| value.contains(r#"{\"id\": 5}"#)), "{rescued:?}");
        let headers = text(&decoded.rows, KAFKA_HEADERS);
        assert_eq!(
            headers[0].as_deref(),
            Some(r#"[{"key":"trace","value":"t1"},{"key":"raw","value_base64":"/w=="}]"#)
        );

        // A later page with a new field: a column is added and the field's value lands in it.
        let second = vec![message(5, Some(br#"{"id": 7, "coupon": "x"}"#))];
        let decoded = rows.decode(page(second)).expect("decoded").expect("rows");
        assert_eq!(text(&decoded.rows, "coupon"), [Some("x".to_string())]);
        assert_eq!(text(&decoded.rows, RESCUED_DATA), [None]);
    }

    #[test]
    fn strict_mode_stops_at_the_first_value_that_does_not_decode_naming_where_it_is() {
        let table = TableId::new("kafka", "orders");
        let mut rows = MessageRows::new(table, MessageFormat::Json, KafkaMode::Append, true, &[]).expect("rows");
        let fine = vec![message(0, Some(br#"{"id": 1}"#)), message(1, Some(br#"{"id": 2}"#))];
        assert_eq!(rows.decode(page(fine)).expect("decoded").expect("rows").rows.num_rows(), 2);
        let bad = vec![message(2, Some(br#"{"id": 3}"#)), message(3, Some(br#"{"id": "three"}"#))];
        let error = rows.decode(page(bad)).expect_err("strict").to_string();
        assert!(error.contains("offset 3 of partition 1 of `orders`") && error.contains("three"), "{error}");
    }

    #[test]
    fn string_values_that_are_not_utf8_are_rescued_in_base64() {
        let mut rows =
            MessageRows::new(TableId::new("kafka", "t"), MessageFormat::String, KafkaMode::Append, false, &[])
                .expect("rows");
        let decoded = rows
            .decode(page(vec![message(0, Some(b"hello")), message(1, Some(&[0xff, 0x00])), message(2, None)]))
            .expect("decoded")
            .expect("rows");
        assert_eq!(text(&decoded.rows, VALUE), [Some("hello".to_string()), None, None]);
        let rescued = text(&decoded.rows, RESCUED_DATA);
        assert_eq!(rescued[1].as_deref(), Some(r#"{"_offset":1,"value_base64":"/wA="}"#));
        assert_eq!(rescued[2], None, "a null value is a null, nothing to rescue");
    }
}
