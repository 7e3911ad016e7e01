//! A topic as one of the engine's polled streams: its token is the next offset of every partition
//! ([`TopicOffsets`]), committed in the Delta commit with the rows of the messages before it.

use std::sync::{Arc, Mutex};

use connector_core::arrow::datatypes::Field;
use connector_core::engine::{PolledPage, PolledStream, RecordDecoder};
use connector_core::error::{Error, Result};
use connector_core::metrics::metrics;
use connector_core::options::TableOptions;
use connector_core::schema::{TableId, TableSchema};

use crate::avro_messages::{key_schema_ids, schema_ids};
use crate::config::{KafkaConfig, MessageFormat, NAMESPACE};
use crate::group_offsets::GroupOffsets;
use crate::message_rows::MessageRows;
use crate::offsets::TopicOffsets;
use crate::schema_registry::SchemaRegistry;
use crate::topic_consumer::{KafkaMessage, MessagePage, TopicConsumer};

#[derive(Debug)]
pub struct TopicStream {
    config: Arc<KafkaConfig>,
    topic: String,
    /// The consumer, used on a blocking thread one page at a time. A page abandoned midway (a stop) leaves it
    /// past the committed token; the next page is read from its own token, which reassigns it.
    consumer: Arc<Mutex<Option<TopicConsumer>>>,
    /// Where `--format avro` (and Debezium's Avro events) find their messages' schemas.
    registry: Option<Arc<SchemaRegistry>>,
    /// Where committed offsets are shown to lag tools.
    group_offsets: Arc<GroupOffsets>,
}

impl TopicStream {
    pub fn new(config: Arc<KafkaConfig>, topic: String, registry: Option<Arc<SchemaRegistry>>) -> Self {
        let group_offsets = Arc::new(GroupOffsets::new(config.clone(), topic.clone()));
        TopicStream { config, topic, consumer: Arc::new(Mutex::new(None)), registry, group_offsets }
    }

    /// Runs `work` with the topic's consumer (created on first use) on a blocking thread.
    async fn with_consumer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut TopicConsumer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (consumer, config, topic) = (self.consumer.clone(), self.config.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || {
            let mut slot = consumer.lock().map_err(|_| Error::state("internal: a Kafka read failed midway"))?;
            if slot.is_none() {
                *slot = Some(TopicConsumer::new(&config, &topic)?);
            }
            let consumer = slot.as_mut().ok_or_else(|| Error::state("internal: no Kafka consumer"))?;
            work(consumer)
        })
        .await
        .map_err(|panic| Error::state(format!("internal: a Kafka read ended abnormally: {panic}")))?
    }
}

impl TopicStream {
    /// The rows of this topic's messages, from the table's stored value columns (`existing`) and the config.
    fn message_rows(&self, existing: &[Field]) -> Result<MessageRows> {
        MessageRows::new(self.table_id(), self.config.format, self.config.mode, self.config.strict, existing)?
            .with_value_key(&self.config.key, &self.config.schema_hints)
    }
}

impl PolledStream for TopicStream {
    type Records = MessagePage;
    type Decoder = MessageRows;

    fn table_id(&self) -> TableId {
        TableId::new(NAMESPACE, &self.topic)
    }

    /// Checks that the brokers answer and the topic exists before its table is created.
    async fn prepare(&self) -> Result<TableSchema> {
        self.with_consumer(|consumer| consumer.partitions().map(drop)).await?;
        Ok(self.message_rows(&[])?.schema().clone())
    }

    fn table_options(&self) -> TableOptions {
        self.config.options_for(&self.topic)
    }

    fn decoder(&self, existing: &[Field]) -> Result<MessageRows> {
        self.message_rows(existing)
    }

    fn start_pass(&self, committed: Option<&str>) -> Result<String> {
        let offsets = match committed {
            Some(token) => TopicOffsets::parse(token, &self.topic, &self.config.pipeline)?,
            None => TopicOffsets::default(),
        };
        Ok(offsets.token())
    }

    async fn next_page(&self, token: &str) -> Result<PolledPage<MessagePage>> {
        let offsets = TopicOffsets::parse(token, &self.topic, &self.config.pipeline)?;
        let mut page = self.with_consumer(move |consumer| consumer.read_page(offsets)).await?;
        let bytes: usize = page.messages.iter().map(KafkaMessage::stored_bytes).sum();
        metrics().bytes_read(&self.config.pipeline, &self.table_id()).inc_by(bytes as u64);
        if let Some(registry) = &self.registry {
            let mut ids = schema_ids(&page.messages);
            // Debezium's Avro converter writes the key in the wire format too; the row is merged by it. With
            // --key, an Avro tombstone's key (in the wire format) is the row it deletes.
            if self.config.format == MessageFormat::Debezium || !self.config.key.is_empty() {
                ids.extend(key_schema_ids(&page.messages));
            }
            page.schemas = registry.schemas(ids).await?;
        }
        let (token, caught_up) = (page.offsets.token(), page.caught_up);
        // Producers stamp messages with their send time (CreateTime) unless the topic says LogAppendTime.
        let source_time = page.messages.iter().filter_map(|message| message.timestamp_ms).max();
        let source_time = source_time.and_then(chrono::DateTime::from_timestamp_millis);
        Ok(PolledPage { records: page, token, caught_up, source_time })
    }

    async fn committed(&self, token: &str) {
        // A token this stream made; one that does not parse has nothing to show.
        if let Ok(offsets) = TopicOffsets::parse(token, &self.topic, &self.config.pipeline) {
            self.group_offsets.report(offsets).await;
        }
    }
}
