//! Kafka into Delta, exactly once: every message a row, a row per key (upsert), or Debezium change events
//! merged. Each topic is one of the engine's polled streams ([`topic_stream`]): read from the offsets its Delta
//! table committed last ([`offsets`]) with librdkafka's consumer assigned by hand ([`topic_consumer`]), decoded
//! into rows ([`message_rows`]; JSON through the files source's reader, Avro through [`avro_messages`] with
//! schemas from the [`schema_registry`], Protobuf through [`protobuf_messages`], change events through [`debezium`] (in Avro through [`debezium_avro`]) and Connect's
//! logical types through [`connect_types`]), and committed with the offsets
//! after them in one Delta commit.

pub mod avro_messages;
pub mod client_security;
pub mod config;
pub mod connect_types;
pub mod debezium;
pub mod debezium_avro;
pub mod group_offsets;
pub mod message_rows;
pub mod offsets;
pub mod pipeline;
pub mod protobuf_messages;
pub mod schema_registry;
pub mod sync_flags;
pub mod topic_consumer;
pub mod topic_stream;

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::Result;
use connector_core::pipeline::Pipeline;

pub use config::{KIND, KafkaConfig};
pub use pipeline::KafkaPipeline;

/// Builds a runnable pipeline from a profile of kind [`KIND`].
pub fn build(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    Ok(Arc::new(KafkaPipeline::new(KafkaConfig::from_profile(profile, pipeline)?)?))
}
