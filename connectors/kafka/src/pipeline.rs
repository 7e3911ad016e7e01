//! A Kafka pipeline: each topic is one of the engine's polled streams, read page by page from the offsets its
//! table committed last. With a topic pattern, the topics are the named ones and those whose name matches,
//! listed as a sync starts; a continuous sync lists them again every `topic_refresh_interval` and, when new ones
//! appear, lets every stream stop at its next commit and goes on with the larger set, so a topic created later
//! is read from its first message with nothing of the others lost or read twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use connector_core::delta::{DeltaSink, Destination};
use connector_core::engine::{PollSettings, poll_streams};
use connector_core::error::{Error, Result};
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode, SyncReport};
use tracing::{info, warn};

use crate::config::{KafkaConfig, MessageFormat};
use crate::schema_registry::SchemaRegistry;
use crate::topic_consumer::cluster_topics;
use crate::topic_stream::TopicStream;

/// A Kafka source bound to its Delta tables.
pub struct KafkaPipeline {
    config: Arc<KafkaConfig>,
    registry: Option<Arc<SchemaRegistry>>,
    /// Every topic's stream made so far, kept across syncs so its consumer is made once.
    streams: Mutex<BTreeMap<String, Arc<TopicStream>>>,
    sink: DeltaSink,
}

impl std::fmt::Debug for KafkaPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPipeline")
            .field("pipeline", &self.config.pipeline)
            .field("topics", &self.config.topics)
            .field("topic_pattern", &self.config.topic_pattern)
            .finish()
    }
}

impl KafkaPipeline {
    pub fn new(config: KafkaConfig) -> Result<Self> {
        let sink = DeltaSink::new(Destination::parse(&config.dest)?, config.pipeline.clone(), HashMap::new());
        let registry = match (&config.format, &config.schema_registry) {
            (MessageFormat::Avro | MessageFormat::Debezium | MessageFormat::Protobuf, Some(url)) => {
                Some(Arc::new(SchemaRegistry::new(url.expose(), config.schema_registry_credentials.clone())?))
            }
            _ => None,
        };
        Ok(KafkaPipeline { config: Arc::new(config), registry, streams: Mutex::new(BTreeMap::new()), sink })
    }

    /// The topics the pipeline syncs now, sorted: those it names and, with a pattern, the cluster's topics that
    /// match it (listed from the brokers).
    pub async fn topics(&self) -> Result<Vec<String>> {
        let mut topics = self.config.topics.clone();
        if let Some(pattern) = self.config.topic_pattern.clone() {
            let config = self.config.clone();
            let listed = tokio::task::spawn_blocking(move || cluster_topics(&config))
                .await
                .map_err(|panic| Error::state(format!("internal: listing the topics ended abnormally: {panic}")))??;
            topics.extend(listed.into_iter().filter(|topic| pattern.is_match(topic)));
        }
        topics.sort();
        topics.dedup();
        Ok(topics)
    }

    /// The streams of `topics`, made on first use.
    fn streams_of(&self, topics: &[String]) -> Result<Vec<Arc<TopicStream>>> {
        let mut streams = self.streams.lock().map_err(|_| Error::state("internal: a Kafka sync failed midway"))?;
        Ok(topics
            .iter()
            .map(|topic| {
                streams
                    .entry(topic.clone())
                    .or_insert_with(|| {
                        Arc::new(TopicStream::new(self.config.clone(), topic.clone(), self.registry.clone()))
                    })
                    .clone()
            })
            .collect())
    }

    async fn sync_topics(&self, mode: SyncMode, mut shutdown: Shutdown) -> Result<SyncReport> {
        let settings = PollSettings {
            batch_records: self.config.max_messages_per_batch,
            batch_bytes: self.config.max_bytes_per_batch,
            poll_interval: self.config.poll_interval,
            commit_interval: self.config.commit_interval,
        };
        let mut topics = self.topics().await?;
        if topics.is_empty() {
            info!(pipeline = %self.config.pipeline, "no topic matches the pattern yet");
        }
        let mut report = SyncReport { tables: Vec::new() };
        loop {
            let streams = self.streams_of(&topics)?;
            // Without a pattern (or in a `once` sync) the set cannot grow: one run of the streams.
            if mode == SyncMode::Once || self.config.topic_pattern.is_none() {
                return Ok(merged(report, poll_streams(&streams, &self.sink, settings, mode, shutdown).await?));
            }
            let (stop_streams, streams_shutdown) = Shutdown::new();
            let running = poll_streams(&streams, &self.sink, settings, mode, streams_shutdown);
            tokio::pin!(running);
            let mut stopping = Stopping::No;
            let outcome = loop {
                tokio::select! {
                    outcome = &mut running => break outcome,
                    () = shutdown.requested(), if !matches!(stopping, Stopping::ForShutdown) => {
                        stopping = Stopping::ForShutdown;
                        stop_streams.request();
                    }
                    () = tokio::time::sleep(self.config.topic_refresh_interval), if matches!(stopping, Stopping::No) => {
                        // A failed listing is tried again at the next refresh; the streams read on meanwhile.
                        let now = match self.topics().await {
                            Ok(now) => now,
                            Err(error) => {
                                warn!(pipeline = %self.config.pipeline, error = %error.report(), "cannot list the topics");
                                topics.clone()
                            }
                        };
                        if now != topics {
                            info!(pipeline = %self.config.pipeline, topics = now.len(), "new topics match the pattern");
                            stopping = Stopping::ForTopics(now);
                            stop_streams.request();
                        }
                    }
                }
            };
            report = merged(report, outcome?);
            match stopping {
                Stopping::ForTopics(now) if !shutdown.is_requested() => topics = now,
                _ => return Ok(report),
            }
        }
    }
}

/// Why the streams of a continuous sync were asked to stop at their next commit.
enum Stopping {
    No,
    /// The sync was asked to stop.
    ForShutdown,
    /// These topics match the pattern now: the streams go on with them.
    ForTopics(Vec<String>),
}

/// `earlier` with `later`'s tables: a table's counts summed, its position the later one.
fn merged(mut earlier: SyncReport, later: SyncReport) -> SyncReport {
    for table in later.tables {
        match earlier.tables.iter_mut().find(|known| known.table == table.table) {
            Some(known) => {
                known.changes_applied += table.changes_applied;
                known.snapshot_rows += table.snapshot_rows;
                known.position = table.position.or(known.position.take());
            }
            None => earlier.tables.push(table),
        }
    }
    earlier
}

impl Pipeline for KafkaPipeline {
    fn name(&self) -> &str {
        &self.config.pipeline
    }

    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        Box::pin(self.sync_topics(mode, shutdown))
    }
}
