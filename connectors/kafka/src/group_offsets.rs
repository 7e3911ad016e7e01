//! The table's offsets written back to the consumer group `connector-<pipeline>` after each Delta commit, for lag
//! tools (`kafka-consumer-groups --describe`, Burrow, lag exporters). The connector never reads them back: the
//! table is its only checkpoint, so a group offset that is lost or late changes nothing but what a tool shows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector_core::error::{Error, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use crate::config::KafkaConfig;
use crate::offsets::TopicOffsets;
use crate::topic_consumer::{ClientLog, consumer};

/// How long a report may hold up the stream after its commit.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct GroupOffsets {
    config: Arc<KafkaConfig>,
    topic: String,
    /// A client of its own (the topic's consumer is busy reading on another thread), made on the first report.
    client: Mutex<Option<BaseConsumer<ClientLog>>>,
}

impl std::fmt::Debug for GroupOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupOffsets").field("topic", &self.topic).finish()
    }
}

impl GroupOffsets {
    pub fn new(config: Arc<KafkaConfig>, topic: String) -> Self {
        GroupOffsets { config, topic, client: Mutex::new(None) }
    }

    /// Commits `offsets` to the group; a failure, or a report still under way from before, is logged and left.
    pub async fn report(self: &Arc<Self>, offsets: TopicOffsets) {
        let reporter = self.clone();
        let commit = tokio::task::spawn_blocking(move || reporter.commit(&offsets));
        let group = format!("connector-{}", self.config.pipeline);
        match tokio::time::timeout(REPORT_TIMEOUT, commit).await {
            Ok(Ok(Ok(true))) => debug!(topic = %self.topic, %group, "offsets written to the consumer group"),
            Ok(Ok(Ok(false))) => debug!(topic = %self.topic, "the previous group offsets are still being written"),
            Ok(Ok(Err(error))) => warn!(topic = %self.topic, %group, error = %error.report(),
                "could not write the offsets to the consumer group: lag tools show older ones (the table is unaffected)"),
            Ok(Err(_)) | Err(_) => warn!(topic = %self.topic, %group,
                "writing the offsets to the consumer group did not finish: lag tools show older ones"),
        }
    }

    /// Returns `false` when another report holds the client.
    fn commit(&self, offsets: &TopicOffsets) -> Result<bool> {
        let Ok(mut slot) = self.client.try_lock() else { return Ok(false) };
        if slot.is_none() {
            *slot = Some(consumer(&self.config)?);
        }
        let Some(client) = slot.as_ref() else { return Ok(false) };
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &offsets.next {
            list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .map_err(|cause| Error::state(format!("kafka: cannot list partition {partition}: {cause}")))?;
        }
        client
            .commit(&list, CommitMode::Sync)
            .map_err(|cause| Error::state(format!("kafka: the brokers refused the group offsets: {cause}")))?;
        Ok(true)
    }
}
