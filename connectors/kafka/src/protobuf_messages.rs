//! Protobuf message values in the schema registry's wire format (what Confluent's Protobuf serializer writes) as
//! JSON objects for the JSON reader, which infers, evolves and rescues their columns as it does JSON messages'.
//!
//! After the zero byte and the schema id comes the path of the message type within the schema's `.proto` file
//! (Confluent's "message indexes": a zigzag varint count, then that many zigzag varints; a lone zero stands for the
//! file's first message), then the message. The registry holds the `.proto` source, compiled here by `protox` (a
//! protobuf compiler in Rust, no `protoc`) with Google's well-known types importable; `prost-reflect` decodes
//! messages by the compiled descriptors and writes them as protobuf's canonical JSON, with the `.proto` field
//! names, 64-bit integers as numbers, fields at their default value written out, enums by name, bytes in base64
//! and `google.protobuf.Timestamp` as RFC 3339 text (which the JSON reader types as a timestamp).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost_reflect::{DynamicMessage, FileDescriptor, MessageDescriptor, SerializeOptions};
use protox::Compiler;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::Value;

use crate::schema_registry::{RegisteredSchema, wire_format};
use crate::topic_consumer::KafkaMessage;

/// The name the registry's schema is compiled under (imports name other files).
const SCHEMA_FILE: &str = "registered.proto";
/// Message indexes a value may give: deeper nesting than this is not a schema but damage.
const MAX_INDEXES: i64 = 64;

const JSON_OPTIONS: SerializeOptions =
    SerializeOptions::new().stringify_64_bit_integers(false).use_proto_field_name(true).skip_default_fields(false);

/// A `.proto` schema from the registry, compiled.
#[derive(Debug)]
pub struct ProtobufSchema {
    file: FileDescriptor,
}

impl ProtobufSchema {
    /// Compiles `source`, which may import the files of `imports` (by the names it imports them by: the
    /// registry's references) and Google's well-known types; `Err` with the compiler's message (a syntax error, an
    /// import of another file).
    pub fn compile(source: &str, imports: BTreeMap<String, String>) -> Result<Self, String> {
        let mut resolver = ChainFileResolver::new();
        resolver.add(RegisteredFiles { source: source.to_string(), imports });
        resolver.add(GoogleFileResolver::new());
        let mut compiler = Compiler::with_file_resolver(resolver);
        compiler.open_file(SCHEMA_FILE).map_err(|cause| cause.to_string())?;
        let file = compiler.descriptor_pool().get_file_by_name(SCHEMA_FILE).ok_or("the schema compiled to nothing")?;
        Ok(ProtobufSchema { file })
    }

    /// The message type at `indexes` (a top-level message, then nested ones).
    fn message(&self, indexes: &[usize]) -> Option<MessageDescriptor> {
        let (first, nested) = indexes.split_first()?;
        let mut message = self.file.messages().nth(*first)?;
        for index in nested {
            let child = message.child_messages().nth(*index)?;
            message = child;
        }
        Some(message)
    }
}

/// The registry's schema and the registered schemas it imports: the files the compiler may open besides Google's.
struct RegisteredFiles {
    source: String,
    imports: BTreeMap<String, String>,
}

impl FileResolver for RegisteredFiles {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match (name == SCHEMA_FILE, self.imports.get(name)) {
            (true, _) => File::from_source(name, &self.source),
            (false, Some(source)) => File::from_source(name, source),
            (false, None) => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// `messages` with every value a JSON object of its fields; a value that does not decode becomes a JSON string
/// saying why, with its bytes in base64, which the JSON reader keeps whole in `_rescued_data`. Tombstones stay.
pub fn as_json_values(messages: Vec<KafkaMessage>, schemas: &HashMap<u32, Arc<RegisteredSchema>>) -> Vec<KafkaMessage> {
    messages
        .into_iter()
        .map(|mut message| {
            if let Some(value) = message.value.take() {
                message.value = Some(match json_of(&value, schemas) {
                    Ok(json) => json,
                    Err(reason) => Value::String(format!("{reason}; the value in base64: {}", BASE64.encode(&value)))
                        .to_string()
                        .into_bytes(),
                });
            }
            message
        })
        .collect()
}

fn json_of(value: &[u8], schemas: &HashMap<u32, Arc<RegisteredSchema>>) -> Result<Vec<u8>, String> {
    let (id, framed) = wire_format(value)
        .ok_or("the value is not in the schema registry's wire format (a zero byte and a schema id)")?;
    let schema = schemas
        .get(&id)
        .and_then(|schema| schema.protobuf())
        .ok_or_else(|| format!("schema {id} is not a Protobuf schema"))?;
    let (indexes, payload) = message_indexes(framed).ok_or("the message indexes after the schema id are damaged")?;
    let descriptor =
        schema.message(&indexes).ok_or_else(|| format!("schema {id} has no message at indexes {indexes:?}"))?;
    let message = DynamicMessage::decode(descriptor.clone(), payload).map_err(|cause| {
        format!("schema {id}'s message {} does not read the value: {cause}", descriptor.full_name())
    })?;
    let mut json = Vec::with_capacity(payload.len() * 2);
    message
        .serialize_with_options(&mut serde_json::Serializer::new(&mut json), &JSON_OPTIONS)
        .map_err(|cause| format!("the value of message {} has no JSON form: {cause}", descriptor.full_name()))?;
    Ok(json)
}

/// The message type's path and the message's bytes, after the schema id.
fn message_indexes(mut bytes: &[u8]) -> Option<(Vec<usize>, &[u8])> {
    let mut next = || prost::encoding::decode_varint(&mut bytes).ok().map(zigzag);
    let count = next()?;
    if count == 0 {
        return Some((vec![0], bytes));
    }
    if !(1..=MAX_INDEXES).contains(&count) {
        return None;
    }
    let indexes: Option<Vec<usize>> =
        (0..count).map(|_| next().and_then(|index| usize::try_from(index).ok())).collect();
    Some((indexes?, bytes))
}

fn zigzag(encoded: u64) -> i64 {
    ((encoded >> 1) as i64) ^ -((encoded & 1) as i64)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_reflect::Value as ProtoValue;

    use super::*;

    const SCHEMA: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";
        message Order {
            int64 id = 1;
            string customer = 2;
            Status status = 3;
            google.protobuf.Timestamp placed_at = 4;
            message Line { string sku = 1; int32 quantity = 2; }
            repeated Line lines = 5;
            enum Status { NEW = 0; PAID = 1; }
        }
        message Refund { int64 order_id = 1; }
    "#;

    fn registered() -> HashMap<u32, Arc<RegisteredSchema>> {
        let schema = ProtobufSchema::compile(SCHEMA, BTreeMap::new()).expect("compiles");
        [(3, Arc::new(RegisteredSchema::Protobuf(schema)))].into()
    }

    fn framed(indexes: &[u8], message: &DynamicMessage) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0, 0, 3];
        bytes.extend_from_slice(indexes);
        bytes.extend(message.encode_to_vec());
        bytes
    }

    fn json(message: &KafkaMessage) -> Value {
        serde_json::from_slice(message.value.as_deref().expect("value")).expect("json")
    }

    #[test]
    fn messages_of_each_type_become_json_objects_of_their_fields() {
        let schemas = registered();
        let schema = schemas[&3].protobuf().expect("protobuf");
        let mut order = DynamicMessage::new(schema.message(&[0]).expect("Order"));
        order.set_field_by_name("id", ProtoValue::I64(9_007_199_254_740_993));
        order.set_field_by_name("customer", ProtoValue::String("ada".into()));
        order.set_field_by_name("status", ProtoValue::EnumNumber(1));
        let mut refund = DynamicMessage::new(schema.message(&[1]).expect("Refund"));
        refund.set_field_by_name("order_id", ProtoValue::I64(7));
        let message = |offset: i64, value: Option<Vec<u8>>| KafkaMessage {
            partition: 0,
            offset,
            timestamp_ms: None,
            key: None,
            value,
            headers: Vec::new(),
        };
        let messages = vec![
            message(0, Some(framed(&[0], &order))),
            // Indexes [1]: a count of 1 (zigzag 2), then index 1 (zigzag 2).
            message(1, Some(framed(&[2, 2], &refund))),
            message(2, None),
            message(3, Some(vec![0, 0, 0, 0, 3, 0, 0xff, 0xff])),
        ];
        let converted = as_json_values(messages, &schemas);
        let first = json(&converted[0]);
        assert_eq!(first["id"], serde_json::json!(9_007_199_254_740_993_i64), "a 64-bit integer as a number");
        assert_eq!((first["customer"].as_str(), first["status"].as_str()), (Some("ada"), Some("PAID")));
        assert_eq!(first["lines"], serde_json::json!([]), "fields at their default value are written out");
        assert_eq!(json(&converted[1]), serde_json::json!({"order_id": 7}));
        assert!(converted[2].value.is_none(), "a tombstone stays one");
        let damaged = json(&converted[3]);
        assert!(damaged.as_str().is_some_and(|text| text.contains("does not read the value")), "{damaged}");
    }

    #[test]
    fn message_indexes_follow_confluents_encoding() {
        assert_eq!(message_indexes(&[0, 9]), Some((vec![0], &[9u8][..])), "a lone zero is the first message");
        assert_eq!(message_indexes(&[4, 2, 0, 7]), Some((vec![1, 0], &[7u8][..])));
        assert_eq!(message_indexes(&[1]), None, "a negative count");
        assert!(ProtobufSchema::compile("syntax = \"proto3\"; import \"other.proto\";", BTreeMap::new()).is_err());
    }

    #[test]
    fn a_schema_compiles_with_the_registered_schemas_it_imports_and_its_own_messages_keep_their_indexes() {
        let money = "syntax = \"proto3\"; package shop; message Money { string currency = 1; int64 cents = 2; }";
        let order = "syntax = \"proto3\"; package shop; import \"shop/money.proto\";\n\
                     message Payment { int64 id = 1; Money amount = 2; }";
        let imports = BTreeMap::from([("shop/money.proto".to_string(), money.to_string())]);
        let schema = ProtobufSchema::compile(order, imports).expect("compiles with its import");
        let payment = schema.message(&[0]).expect("the schema's own first message");
        assert_eq!(payment.full_name(), "shop.Payment");
        assert_eq!(
            payment.get_field_by_name("amount").expect("amount").kind().as_message().map(|m| m.full_name().to_string()),
            Some("shop.Money".to_string())
        );
    }
}
