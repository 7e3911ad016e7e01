//! A Kafka pipeline: each topic is one of the engine's polled streams, read page by page from the offsets its
//! table committed last.

use std::collections::HashMap;
use std::sync::Arc;

use connector_core::delta::{DeltaSink, Destination};
use connector_core::engine::{PollSettings, poll_streams};
use connector_core::error::Result;
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode};

use crate::config::{KafkaConfig, MessageFormat};
use crate::schema_registry::SchemaRegistry;
use crate::topic_stream::TopicStream;

/// A Kafka source bound to its Delta tables.
pub struct KafkaPipeline {
    config: Arc<KafkaConfig>,
    streams: Vec<Arc<TopicStream>>,
    sink: DeltaSink,
}

impl std::fmt::Debug for KafkaPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPipeline")
            .field("pipeline", &self.config.pipeline)
            .field("topics", &self.config.topics)
            .finish()
    }
}

impl KafkaPipeline {
    pub fn new(config: KafkaConfig) -> Result<Self> {
        let sink = DeltaSink::new(Destination::parse(&config.dest)?, config.pipeline.clone(), HashMap::new());
        let registry = match (&config.format, &config.schema_registry) {
            (MessageFormat::Avro, Some(url)) => Some(Arc::new(SchemaRegistry::new(url)?)),
            _ => None,
        };
        let config = Arc::new(config);
        let streams = config
            .topics
            .iter()
            .map(|topic| Arc::new(TopicStream::new(config.clone(), topic.clone(), registry.clone())))
            .collect();
        Ok(KafkaPipeline { config, streams, sink })
    }
}

impl Pipeline for KafkaPipeline {
    fn name(&self) -> &str {
        &self.config.pipeline
    }

    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        let settings = PollSettings {
            batch_records: self.config.max_messages_per_batch,
            batch_bytes: self.config.max_bytes_per_batch,
            poll_interval: self.config.poll_interval,
            commit_interval: self.config.commit_interval,
        };
        Box::pin(poll_streams(&self.streams, &self.sink, settings, mode, shutdown))
    }
}
