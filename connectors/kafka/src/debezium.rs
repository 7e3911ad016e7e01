//! Debezium change events into the rows and operations a merge applies.
//!
//! A Debezium topic holds one table's changes: each message's key is the row's primary key, its value the
//! envelope `{"op", "before", "after", "source", …}`, both JSON, with or without Kafka Connect's schema wrapper
//! (`{"schema": …, "payload": …}`, the JSON converter's `schemas.enable`). `op` is `c` (insert), `r` (a row of
//! the snapshot), `u` (update), `d` (delete), `t` (truncate); `m` (a logical decoding message) is no row. The
//! null value that follows a delete (a tombstone, for compaction) deletes the key again, which changes nothing.
//!
//! With the schema wrapper, each field's schema may name a Kafka Connect logical type (a date as days, a decimal
//! as base64 bytes): such values become the text of their type ([`crate::connect_types`]), and the types are
//! declared for the table's new columns ([`Events::declared`]).
//!
//! The table merges by the key: [`Event::key`] is the key's payload as compact JSON (without the schema
//! wrapper), the same text for the same key values whatever the converter settings, so a row's changes meet in
//! one row whatever the envelope looked like.

use connector_core::arrow::datatypes::DataType;
use connector_core::change::Operation;
use connector_core::error::{Error, Result};
use serde_json::{Map, Value};

use crate::connect_types::LogicalType;
use crate::topic_consumer::KafkaMessage;

/// One change event: its message with the row as value and the compact key as key, ready for the JSON rows
/// reader.
#[derive(Debug)]
pub struct Event {
    pub operation: Operation,
    /// The message, whose value is now the row as a JSON object (`after` for inserts, reads and updates; for
    /// deletes `before`, or the key's fields when the database sent no `before`) and whose key is the key's
    /// payload as compact JSON: what the table merges by.
    pub message: KafkaMessage,
    /// The envelope's `source` block (database, table, log position, snapshot flag) as JSON.
    pub source: Option<String>,
}

/// The change events of a page of messages.
#[derive(Debug, Default)]
pub struct Events {
    pub events: Vec<Event>,
    /// The column types the envelopes' schemas declare for the rows' fields of a logical type (first seen wins).
    pub declared: Vec<(String, DataType)>,
}

/// The events of `messages` in their order; messages that change no row (`op = m`) are left out.
pub fn events(topic: &str, messages: Vec<KafkaMessage>) -> Result<Events> {
    let mut events = Events { events: Vec::with_capacity(messages.len()), declared: Vec::new() };
    for mut message in messages {
        match change(&message).map_err(|reason| not_an_event(topic, &message, &reason))? {
            None => {}
            Some(Change { operation, row, key, source, declared }) => {
                message.value = Some(row);
                message.key = Some(key);
                events.events.push(Event { operation, message, source });
                declare(&mut events.declared, declared);
            }
        }
    }
    Ok(events)
}

/// Adds `declared` column types to `known`, a name's first type kept.
pub fn declare(known: &mut Vec<(String, DataType)>, declared: Vec<(String, DataType)>) {
    for (name, data_type) in declared {
        if !known.iter().any(|(known_name, _)| *known_name == name) {
            known.push((name, data_type));
        }
    }
}

/// What one message changes.
struct Change {
    operation: Operation,
    row: Vec<u8>,
    key: Vec<u8>,
    source: Option<String>,
    /// The row's fields of a logical type, with their column types.
    declared: Vec<(String, DataType)>,
}

fn change(message: &KafkaMessage) -> std::result::Result<Option<Change>, String> {
    let (value_schema, value) = match message.value.as_deref() {
        None => (None, None),
        Some(value) => {
            let (schema, payload) = unwrapped(parse(value, "value")?);
            (schema, Some(payload))
        }
    };
    let envelope = match value {
        Some(Value::Object(envelope)) => Some(envelope),
        // A converter with the schema wrapper writes a tombstone as a null payload.
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(format!("its value is not a Debezium envelope (a JSON object): {}", abbreviated(&other)));
        }
    };
    let op = match &envelope {
        None => None,
        Some(envelope) => match envelope.get("op") {
            Some(Value::String(op)) => Some(op.clone()),
            _ => return Err("its value has no `op` (is the topic written by Debezium, unwrapped by no SMT?)".into()),
        },
    };
    // A truncate concerns every row: Debezium gives it no key.
    if op.as_deref() == Some("t") {
        let source = envelope.as_ref().and_then(|envelope| envelope.get("source")).map(Value::to_string);
        return Ok(Some(Change {
            operation: Operation::Truncate,
            row: b"{}".to_vec(),
            key: b"null".to_vec(),
            source,
            declared: Vec::new(),
        }));
    }
    let key = match message.key.as_deref() {
        None => return Err("it has no key: the table's rows are merged by the key Debezium gives each change".into()),
        Some(bytes) => unwrapped(parse(bytes, "key")?).1,
    };
    let Value::Object(key_fields) = &key else {
        return Err(format!("its key is not a JSON object of the row's key columns: {}", abbreviated(&key)));
    };
    let compact_key = key.to_string().into_bytes();
    let (Some(mut envelope), Some(op)) = (envelope, op) else {
        // A tombstone: the delete before it already removed the row; deleting it again changes nothing.
        return Ok(Some(Change {
            operation: Operation::Delete,
            row: compact_key.clone(),
            key: compact_key,
            source: None,
            declared: Vec::new(),
        }));
    };
    let source = envelope.get("source").filter(|source| !source.is_null()).map(Value::to_string);
    let (operation, row) = match op.as_str() {
        "c" | "r" => (Operation::Insert, take_row(&mut envelope, "after")?),
        "u" => (Operation::Update, take_row(&mut envelope, "after")?),
        "d" => {
            let before = match envelope.remove("before") {
                Some(Value::Object(before)) => before,
                _ => Map::new(),
            };
            (Operation::Delete, with_key_fields(before, key_fields))
        }
        "m" => return Ok(None),
        other => return Err(format!("its `op` is `{other}`, not one of c, r, u, d, t, m")),
    };
    let mut row = with_key_fields(row, key_fields);
    let declared = value_schema.as_ref().map(|schema| with_logical_values(&mut row, schema)).unwrap_or_default();
    let row = Value::Object(row).to_string().into_bytes();
    Ok(Some(Change { operation, row, key: compact_key, source, declared }))
}

/// `after` of an insert or update: a change that sets a row names the row.
fn take_row(envelope: &mut Map<String, Value>, field: &str) -> std::result::Result<Map<String, Value>, String> {
    match envelope.remove(field) {
        Some(Value::Object(row)) => Ok(row),
        _ => Err(format!("its `{field}` is not a row (a JSON object)")),
    }
}

/// `row` with the key's fields wherever it lacks them, so a delete without `before` still names its row.
fn with_key_fields(mut row: Map<String, Value>, key: &Map<String, Value>) -> Map<String, Value> {
    for (name, value) in key {
        match row.get(name) {
            Some(present) if !present.is_null() => {}
            _ => drop(row.insert(name.clone(), value.clone())),
        }
    }
    row
}

fn parse(bytes: &[u8], what: &str) -> std::result::Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|cause| format!("its {what} is not JSON ({cause})"))
}

/// The schema and payload of Kafka Connect's JSON converter with `schemas.enable` (`{"schema", "payload"}`),
/// else no schema and the value itself.
fn unwrapped(value: Value) -> (Option<Value>, Value) {
    match value {
        Value::Object(mut wrapped) if wrapped.len() == 2 && wrapped.contains_key("schema") => {
            (wrapped.remove("schema"), wrapped.remove("payload").unwrap_or(Value::Null))
        }
        other => (None, other),
    }
}

/// Rewrites the row's values of a logical type (as the envelope schema's `after`, or `before`, struct names
/// them) into their text, returning those fields with their column types. A value that is not of its type stays
/// as it is, for its column to rescue.
fn with_logical_values(row: &mut Map<String, Value>, envelope_schema: &Value) -> Vec<(String, DataType)> {
    let row_fields = envelope_schema
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|field| matches!(field.get("field").and_then(Value::as_str), Some("after" | "before")))
        .find_map(|field| field.get("fields").and_then(Value::as_array));
    let mut declared = Vec::new();
    for field_schema in row_fields.into_iter().flatten().filter_map(Value::as_object) {
        let (Some(name), Some(logical)) =
            (field_schema.get("field").and_then(Value::as_str), LogicalType::of(field_schema))
        else {
            continue;
        };
        declared.push((name.to_string(), logical.column_type()));
        if let Some(value) = row.get_mut(name).filter(|value| !value.is_null())
            && let Ok(text) = logical.text_of(value)
        {
            *value = Value::String(text);
        }
    }
    declared
}

fn abbreviated(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn not_an_event(topic: &str, message: &KafkaMessage, reason: &str) -> Error {
    Error::config(format!(
        "kafka: the message at {} is not a Debezium change event: {reason}. Sync this topic with another \
         --format, or fix its producer",
        message.place(topic)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64, key: &str, value: Option<&str>) -> KafkaMessage {
        KafkaMessage {
            partition: 0,
            offset,
            timestamp_ms: None,
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|value| value.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn envelopes_with_and_without_schemas_become_rows_merged_by_the_same_key() {
        let wrapped_key = r#"{"schema":{"type":"struct","fields":[{"type":"int32","field":"id"}]},"payload":{"id":7}}"#;
        let messages = vec![
            message(
                0,
                r#"{"id":7}"#,
                Some(r#"{"op":"r","before":null,"after":{"id":7,"name":"a"},"source":{"lsn":1}}"#),
            ),
            message(
                1,
                wrapped_key,
                Some(
                    r#"{"schema":{},"payload":{"op":"u","before":null,"after":{"id":7,"name":"b"},"source":{"lsn":2}}}"#,
                ),
            ),
            message(2, r#"{"id":7}"#, Some(r#"{"op":"m","message":{"prefix":"x"}}"#)),
            message(3, r#"{"id":7}"#, Some(r#"{"op":"d","before":null,"after":null,"source":{"lsn":3}}"#)),
            message(4, wrapped_key, None),
        ];
        let events = events("db.t", messages).expect("events").events;
        let offsets: Vec<i64> = events.iter().map(|event| event.message.offset).collect();
        assert_eq!(offsets, [0, 1, 3, 4], "a logical decoding message is no row");
        let operations: Vec<Operation> = events.iter().map(|event| event.operation).collect();
        assert_eq!(operations, [Operation::Insert, Operation::Update, Operation::Delete, Operation::Delete]);
        let keys: Vec<&str> = events.iter().map(|event| text(event.message.key.as_deref().expect("key"))).collect();
        assert!(keys.iter().all(|key| *key == r#"{"id":7}"#), "one key whatever the wrapper: {keys:?}");
        let row = |index: usize| text(events[index].message.value.as_deref().expect("row")).to_string();
        assert_eq!(row(1), r#"{"id":7,"name":"b"}"#);
        assert_eq!(row(2), r#"{"id":7}"#, "a delete without `before` names its row by the key");
        assert_eq!(events[2].source.as_deref(), Some(r#"{"lsn":3}"#));
    }

    #[test]
    fn a_truncate_has_no_key_and_empties_the_table() {
        let truncate = KafkaMessage {
            key: None,
            ..message(9, "", Some(r#"{"op":"t","before":null,"after":null,"source":{"lsn":9}}"#))
        };
        let events = events("db.t", vec![truncate]).expect("events").events;
        assert_eq!(events[0].operation, Operation::Truncate);
        assert_eq!(events[0].source.as_deref(), Some(r#"{"lsn":9}"#));
    }

    #[test]
    fn a_message_that_is_not_a_change_event_is_refused_with_where_it_is() {
        let cases = [
            (message(5, r#"{"id":1}"#, Some(r#"{"id":1,"name":"x"}"#)), "has no `op`"),
            (message(5, "plain", Some(r#"{"op":"c","after":{"id":1}}"#)), "key is not JSON"),
            (message(5, r#"{"id":1}"#, Some(r#"{"op":"c","after":null}"#)), "`after` is not a row"),
            (message(5, r#"{"id":1}"#, Some(r#"{"op":"x"}"#)), "`op` is `x`"),
        ];
        for (message, reason) in cases {
            let error = events("db.t", vec![message]).expect_err(reason).to_string();
            assert!(error.contains(reason) && error.contains("offset 5 of partition 0 of `db.t`"), "{error}");
        }
        let keyless = KafkaMessage { key: None, ..message(6, "", Some(r#"{"op":"c","after":{"id":1}}"#)) };
        let error = events("db.t", vec![keyless]).expect_err("keyless").to_string();
        assert!(error.contains("has no key"), "{error}");
    }
}
