//! Reads one topic's partitions from given offsets with librdkafka's consumer, assigned by hand (no consumer
//! group decides what is read or where: the offsets come from the Delta table). Its calls block, so each page is
//! read on a blocking thread.
//!
//! A pass reads every partition up to its high watermark as the pass began (the broker's end then): a `once`
//! sync stops there, a continuous one begins the next pass after its poll interval. At a pass's start the
//! partitions are listed again, so partitions added to the topic are read from their first message, and the
//! offsets the table holds are checked against what the broker still keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::metrics::metrics;
use connector_core::schema::TableId;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use crate::client_security::{ClientSecurity, RefusedConnection, refuses_the_connector};
use crate::config::{KafkaConfig, NAMESPACE, StartingOffsets};
use crate::offsets::TopicOffsets;
use crate::schema_registry::RegisteredSchema;

/// How long a metadata or watermark request may take, its attempts together.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one attempt of a request may take: a connection that fails (a refused login) is seen after it.
const REQUEST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// The pause before a request whose connection failed is sent again.
const REQUEST_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How long one poll waits for a message.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Without a message for this long, a page ends, and a pass whose partitions still fall short of the watermarks
/// asks the consumer where it stands (records that are not messages, such as transaction markers, end a
/// partition without a message at its end).
const IDLE_WAIT: Duration = Duration::from_secs(3);
/// How long a partition written to without pause is read past the end it had as the pass began before the pass
/// ends without the consumer having met the broker's end.
const END_GRACE: Duration = Duration::from_secs(2);
/// Messages of one page at most; its bytes at most [`PAGE_BYTES`]. The engine queues up to 16 pages while a batch
/// merges, so pages of 2 MiB keep that queue at 32 MiB (with 16 MiB pages, 1 KB messages took a sync to 700 MiB).
const PAGE_MESSAGES: usize = 20_000;
const PAGE_BYTES: usize = 2 * 1024 * 1024;
/// The consumer's prefetch (librdkafka's `queued.max.messages.kbytes`, for the one queue of a consumer assigned
/// its partitions; its default, 64 MiB, is more than a page needs).
const PREFETCH_KIB: &str = "16384";

/// One message, copied out of the consumer.
#[derive(Debug, Clone)]
pub struct KafkaMessage {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, when the message has a timestamp.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    /// `None`: a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl KafkaMessage {
    /// The bytes of its key, value and headers, as the broker stores them (without the record's framing).
    pub fn stored_bytes(&self) -> usize {
        let header_bytes: usize =
            self.headers.iter().map(|(name, value)| name.len() + value.as_ref().map_or(0, Vec::len)).sum();
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len) + header_bytes
    }

    /// Where the message is, for errors: "offset 12 of partition 3 of `orders`".
    pub fn place(&self, topic: &str) -> String {
        format!("offset {} of partition {} of `{topic}`", self.offset, self.partition)
    }
}

/// The messages read from one set of offsets, and the offsets after them.
#[derive(Debug)]
pub struct MessagePage {
    pub messages: Vec<KafkaMessage>,
    pub offsets: TopicOffsets,
    /// Every partition reached the end the pass set out to read.
    pub caught_up: bool,
    /// The Avro writer schemas of the messages (`--format avro`), by id, fetched before the page is decoded.
    pub schemas: HashMap<u32, Arc<RegisteredSchema>>,
}

impl std::fmt::Debug for TopicConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicConsumer").field("topic", &self.topic).field("assigned", &self.assigned).finish()
    }
}

pub struct TopicConsumer {
    topic: String,
    brokers: String,
    security: ClientSecurity,
    pipeline: String,
    consumer: BaseConsumer<ClientLog>,
    starting_offsets: StartingOffsets,
    fail_on_data_loss: bool,
    /// Messages of one page at most: [`PAGE_MESSAGES`], or fewer if a commit takes fewer.
    page_messages: usize,
    /// The offsets the consumer reads from next, as assigned and advanced by the pages read.
    assigned: Option<TopicOffsets>,
    /// The pass under way; `None` between passes.
    pass: Option<Pass>,
}

/// Where a pass ends.
#[derive(Debug)]
struct Pass {
    /// Per partition, the end offset the broker gave as the pass began.
    end: BTreeMap<i32, i64>,
    /// Partitions whose offset in the table (the value) was past that end, not yet shown to go on by a message.
    past_end: BTreeMap<i32, i64>,
    /// Partitions the consumer found at the broker's end while fetching, during this pass.
    at_end: BTreeSet<i32>,
    /// When each partition got past `end`.
    reached_at: BTreeMap<i32, Instant>,
}

/// Where the client's own reports go. A partition's end is how a pass learns it is caught up
/// (`enable.partition.eof`), which librdkafka also reports as an error; the brokers refusing the connector
/// (credentials, TLS) is kept for the request that then times out; the client retries the others itself (a
/// broker restarting), and those that stop a read come back from `poll` too.
pub(crate) struct ClientLog {
    refused: RefusedConnection,
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, line: &str) {
        self.refused.record_log(facility, line);
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", "{facility} {line}")
            }
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", "{facility} {line}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => info!(target: "librdkafka", "{facility} {line}"),
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", "{facility} {line}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.refused.record(&error, reason) {
            warn!(%error, %reason, "the brokers refuse the connector");
            return;
        }
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::PartitionEOF) => debug!(%reason, "the Kafka client met a partition's end"),
            _ => warn!(%error, %reason, "the Kafka client reports a failure; it retries"),
        }
    }
}

impl ConsumerContext for ClientLog {}

/// A consumer with the connector's settings, the brokers' security and the user's `properties`.
pub(crate) fn consumer(config: &KafkaConfig) -> Result<BaseConsumer<ClientLog>> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        // Only lag tools see the group; nothing is committed to it.
        .set("group.id", format!("connector-{}", config.pipeline))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", PREFETCH_KIB);
    config.security.apply(&mut client);
    for (name, value) in &config.properties {
        client.set(name, value);
    }
    client.create_with_context(ClientLog { refused: RefusedConnection::default() }).map_err(|cause| {
        Error::config(format!("kafka: the client settings are not valid (check `properties`): {cause}"))
    })
}

/// Sends a request to the brokers (`send` given the time an attempt may take), and again while its connection
/// fails for a reason the client has not given, until [`REQUEST_TIMEOUT`]. A refused login fails the request,
/// and the client hands its reason to the context only as the consumer is polled: a consumer with no partitions
/// assigned is polled for it (it has no message to hand over); one reading partitions is not (a message polled
/// here would be lost to the page), so its error names the settings without the reason.
fn request<T>(
    consumer: &BaseConsumer<ClientLog>,
    send: impl Fn(&BaseConsumer<ClientLog>, Duration) -> KafkaResult<T>,
) -> KafkaResult<T> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let attempt = deadline.saturating_duration_since(Instant::now()).min(REQUEST_ATTEMPT_TIMEOUT);
        match send(consumer, attempt) {
            Err(cause) if connection_failed(&cause) => {
                let unassigned = consumer.assignment().is_ok_and(|assigned| assigned.count() == 0);
                if unassigned {
                    // Without partitions, a poll only serves the client's events (its log and errors).
                    while consumer.poll(Duration::ZERO).is_some() {}
                }
                if consumer.context().refused.reason().is_some() || Instant::now() >= deadline {
                    return Err(cause);
                }
                std::thread::sleep(REQUEST_RETRY_PAUSE);
            }
            outcome => return outcome,
        }
    }
}

fn connection_failed(cause: &KafkaError) -> bool {
    matches!(
        cause.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
    )
}

/// The topics of the cluster, Kafka's internal ones (`__consumer_offsets`, …) left out. Blocks.
pub fn cluster_topics(config: &KafkaConfig) -> Result<Vec<String>> {
    let consumer = consumer(config)?;
    let metadata = request(&consumer, |consumer, timeout| consumer.fetch_metadata(None, timeout)).map_err(|cause| {
        request_failed(&consumer, &config.brokers, &config.security, "cannot list the topics", cause)
    })?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none() && !topic.name().starts_with("__"))
        .map(|topic| topic.name().to_string())
        .collect())
}

/// A request to the brokers that failed: refused (credentials, TLS), naming the broker's reason and what to
/// check, else unreachable; both retried with backoff by `connector run`.
fn request_failed(
    consumer: &BaseConsumer<ClientLog>,
    brokers: &str,
    security: &ClientSecurity,
    what: &str,
    cause: KafkaError,
) -> Error {
    let refused = consumer.context().refused.reason();
    if let Some(reason) = refused.or_else(|| refuses_the_connector(&cause).then(|| cause.to_string())) {
        // Retried with backoff by `connector run`: credentials rotated on the brokers first, or a login cut
        // short by a broker restarting, succeed later; a `--once` sync stops with this.
        return Error::new(
            ErrorKind::Config,
            Retry::WithBackoff,
            format!(
                "kafka: {brokers} refused the connector ({}): {reason}; check `sasl` (--sasl-mechanism, --sasl-username, \
             KAFKA_SASL_PASSWORD) and `tls` (--tls, --tls-ca) against the brokers' listener",
                security.describe()
            ),
        );
    }
    Error::new(
        ErrorKind::Source,
        Retry::WithBackoff,
        format!(
            "kafka: {what} from {brokers}: {cause}; check that the brokers are reachable and that the security \
             settings (`sasl`, `tls`: {}) match their listener",
            security.describe()
        ),
    )
}

impl TopicConsumer {
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self> {
        let consumer = consumer(config)?;
        Ok(TopicConsumer {
            topic: topic.to_string(),
            brokers: config.brokers.clone(),
            security: config.security.clone(),
            pipeline: config.pipeline.clone(),
            consumer,
            starting_offsets: config.starting_offsets,
            fail_on_data_loss: config.fail_on_data_loss,
            page_messages: config.max_messages_per_batch.clamp(1, PAGE_MESSAGES),
            assigned: None,
            pass: None,
        })
    }

    /// The topic's partitions, checking it exists and the brokers answer.
    pub fn partitions(&self) -> Result<Vec<i32>> {
        let metadata = request(&self.consumer, |consumer, timeout| consumer.fetch_metadata(Some(&self.topic), timeout))
            .map_err(|cause| self.unreachable("cannot read the topic's metadata", cause))?;
        let topic = metadata.topics().iter().find(|topic| topic.name() == self.topic);
        let Some(topic) = topic.filter(|topic| topic.error().is_none() && !topic.partitions().is_empty()) else {
            return Err(Error::new(
                ErrorKind::Config,
                Retry::WithBackoff,
                format!(
                    "kafka: topic `{}` does not exist on {}; create it, or correct --topics",
                    self.topic, self.brokers
                ),
            ));
        };
        Ok(topic.partitions().iter().map(|partition| partition.id()).collect())
    }

    /// Reads the page after `offsets`.
    pub fn read_page(&mut self, mut offsets: TopicOffsets) -> Result<MessagePage> {
        if self.pass.is_none() {
            self.begin_pass(&mut offsets)?;
        }
        if self.assigned.as_ref() != Some(&offsets) {
            self.assign(&offsets)?;
        }
        let mut messages = Vec::new();
        let mut bytes = 0;
        let mut last_message = Instant::now();
        let mut caught_up = self.pass_done(&offsets);
        while !caught_up && messages.len() < self.page_messages && bytes < PAGE_BYTES {
            match self.consumer.poll(POLL_WAIT) {
                Some(Ok(message)) => {
                    let partition = message.partition();
                    // A message before the assigned offset was fetched ahead of a reassignment.
                    if offsets.next.get(&partition).is_none_or(|next| message.offset() < *next) {
                        continue;
                    }
                    offsets.next.insert(partition, message.offset() + 1);
                    if let Some(pass) = self.pass.as_mut() {
                        pass.past_end.remove(&partition);
                    }
                    let owned = owned_message(&message);
                    bytes += owned.value.as_ref().map_or(0, Vec::len) + owned.key.as_ref().map_or(0, Vec::len);
                    messages.push(owned);
                    last_message = Instant::now();
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(pass) = self.pass.as_mut() {
                        pass.at_end.insert(partition);
                    }
                }
                Some(Err(cause)) => self.poll_failed(cause, &offsets)?,
                None if last_message.elapsed() < IDLE_WAIT => {}
                None => {
                    if !self.pass_done(&offsets) {
                        warn!(topic = %self.topic, ?offsets, pass = ?self.pass,
                              "no message came for a while below the broker's end: the pass ends here");
                    }
                    caught_up = true;
                }
            }
            caught_up |= self.pass_done(&offsets);
        }
        if caught_up && self.check_past_end(&mut offsets)? {
            // A partition is read again from its start: a new pass, from the offsets as they now stand, with the
            // consumer assigned to them anew.
            caught_up = false;
            self.pass = None;
            self.assigned = None;
        } else {
            self.assigned = Some(offsets.clone());
        }
        if caught_up {
            // Read up to the ends the pass began with: nothing behind them is left.
            if let Some(pass) = &self.pass {
                for (partition, end) in &pass.end {
                    let behind = offsets.next.get(partition).map_or(0, |next| (end - next).max(0));
                    metrics().set_kafka_lag(&self.pipeline, &self.topic, *partition, behind);
                }
            }
            self.pass = None;
        }
        Ok(MessagePage { messages, offsets, caught_up, schemas: HashMap::new() })
    }

    /// Whether every partition reached the end of the pass: past the offset the broker gave as its end when the
    /// pass began, and then at the end the broker reports while fetching (or, for a partition written to without
    /// pause, [`END_GRACE`] later: a `once` sync reads what was there as it began, not everything that follows).
    /// Both, because brokers differ: tansu's end offsets (ListOffsets) fall short of its log.
    fn pass_done(&mut self, offsets: &TopicOffsets) -> bool {
        let Some(pass) = self.pass.as_mut() else { return true };
        let now = Instant::now();
        pass.end.iter().all(|(partition, end)| {
            // At the broker's end while fetching: every message before it was handed over. Records that are not
            // messages (transaction markers) may follow the last message, so the offset may fall short of `end`.
            if pass.at_end.contains(partition) {
                return true;
            }
            if offsets.next.get(partition).is_none_or(|next| next < end) {
                return false;
            }
            let reached = *pass.reached_at.entry(*partition).or_insert(now);
            now.duration_since(reached) >= END_GRACE
        })
    }

    /// Sets where the pass ends (each partition's end offset now), places partitions the offsets lack (a first
    /// sync, or partitions added to the topic), and checks the offsets against what the broker keeps.
    fn begin_pass(&mut self, offsets: &mut TopicOffsets) -> Result<()> {
        let first_sync = offsets.next.is_empty();
        let partitions = self.partitions()?;
        if let Some(gone) = offsets.next.keys().find(|partition| !partitions.contains(partition)) {
            return Err(Error::state(format!(
                "kafka: topic `{}` has no partition {gone} any more, which the table has read: the topic was \
                 recreated; resync it (connector resync --pipeline {} --table kafka.{})",
                self.topic, self.pipeline, self.topic
            )));
        }
        let mut end = BTreeMap::new();
        let mut past_end = BTreeMap::new();
        let mut placed_by_time = Vec::new();
        for partition in partitions {
            let (low, high) =
                request(&self.consumer, |consumer, timeout| consumer.fetch_watermarks(&self.topic, partition, timeout))
                    .map_err(|cause| self.unreachable("cannot read the partitions' offsets", cause))?;
            match offsets.next.get(&partition).copied() {
                None => {
                    // New partitions of a topic already read hold only new messages: all are read.
                    let start = match (first_sync, self.starting_offsets) {
                        (true, StartingOffsets::Latest) => high,
                        (true, StartingOffsets::Timestamp(millis)) => {
                            placed_by_time.push((partition, millis, high));
                            low
                        }
                        _ => low,
                    };
                    offsets.next.insert(partition, start);
                }
                Some(next) if next < low => self.data_lost(offsets, partition, next, low)?,
                // The table read past the partition's end: the topic may not be the one it read (deleted and
                // created again, or a broker lost acknowledged messages), and reading on from `next` would skip
                // the messages the new partition holds below it without a word. Checked as the pass ends
                // (`check_past_end`), unless a message at `next` or later shows the partition goes on: brokers
                // whose end offsets lag their log (tansu) give an end below `next` while messages are produced.
                Some(next) if next > high => drop(past_end.insert(partition, next)),
                Some(_) => {}
            }
            let behind = offsets.next.get(&partition).map_or(0, |next| (high - next).max(0));
            metrics().set_kafka_lag(&self.pipeline, &self.topic, partition, behind);
            end.insert(partition, high);
        }
        if !placed_by_time.is_empty() {
            self.place_by_time(offsets, &placed_by_time)?;
        }
        self.pass = Some(Pass { end, past_end, at_end: BTreeSet::new(), reached_at: BTreeMap::new() });
        Ok(())
    }

    /// As a pass ends: a partition that began it past its end, and gave no message since, is asked for its end
    /// again; still below the table's offset, its messages are not the ones the table read. Returns whether the
    /// pass goes on (a partition read again from its start, with `fail_on_data_loss = false`).
    fn check_past_end(&mut self, offsets: &mut TopicOffsets) -> Result<bool> {
        let past_end = self.pass.as_mut().map(|pass| std::mem::take(&mut pass.past_end)).unwrap_or_default();
        let mut restarted = false;
        for (partition, next) in past_end {
            let (low, high) =
                request(&self.consumer, |consumer, timeout| consumer.fetch_watermarks(&self.topic, partition, timeout))
                    .map_err(|cause| self.unreachable("cannot read the partitions' offsets", cause))?;
            if high < next {
                self.data_lost_past_end(offsets, partition, next, low, high)?;
                restarted = true;
            }
        }
        Ok(restarted)
    }

    /// Places each of `partitions` (partition, timestamp, end) at its first message at or after the timestamp, or
    /// at its end when none is that recent.
    fn place_by_time(&self, offsets: &mut TopicOffsets, partitions: &[(i32, i64, i64)]) -> Result<()> {
        let mut wanted = TopicPartitionList::new();
        for (partition, millis, _) in partitions {
            wanted
                .add_partition_offset(&self.topic, *partition, Offset::Offset(*millis))
                .map_err(|cause| Error::state(format!("kafka: cannot place partition {partition}: {cause}")))?;
        }
        let found = request(&self.consumer, |consumer, timeout| consumer.offsets_for_times(wanted.clone(), timeout))
            .map_err(|cause| self.unreachable("cannot find the offsets at --starting-offsets' time", cause))?;
        for (partition, _, high) in partitions {
            let start = match found.find_partition(&self.topic, *partition).map(|element| element.offset()) {
                Some(Offset::Offset(offset)) => offset,
                // No message that recent: only what follows.
                _ => *high,
            };
            offsets.next.insert(*partition, start);
        }
        Ok(())
    }

    /// The broker no longer keeps the messages from `next` to `low` of `partition` (retention, or deleted).
    fn data_lost(&self, offsets: &mut TopicOffsets, partition: i32, next: i64, low: i64) -> Result<()> {
        if self.fail_on_data_loss {
            return Err(Error::history_lost(
                [TableId::new(NAMESPACE, &self.topic)],
                format!(
                    "kafka: partition {partition} of `{}` starts at offset {low}, but the table has read only up to \
                     offset {next}: the broker deleted {} messages the table never received (retention is \
                     shorter than the pipeline's pause). Set fail_on_data_loss = false (--allow-data-loss) to \
                     skip them, or resync the topic (connector resync --pipeline {} --table kafka.{})",
                    self.topic,
                    low - next,
                    self.pipeline,
                    self.topic
                ),
            ));
        }
        warn!(topic = %self.topic, partition, from = next, to = low,
              "messages deleted by the broker before they were read are skipped (fail_on_data_loss = false); \
               the table's offsets count them (connector status)");
        offsets.skip(partition, low);
        Ok(())
    }

    /// The table has read up to `next` in `partition`, whose messages now end at `high`.
    fn data_lost_past_end(
        &self,
        offsets: &mut TopicOffsets,
        partition: i32,
        next: i64,
        low: i64,
        high: i64,
    ) -> Result<()> {
        if self.fail_on_data_loss {
            return Err(Error::history_lost(
                [TableId::new(NAMESPACE, &self.topic)],
                format!(
                    "kafka: partition {partition} of `{}` ends at offset {high}, but the table has already read up to \
                     offset {next}: the topic was deleted and created again (or the brokers lost messages they had \
                     acknowledged), so its messages are not the ones the table holds. Resync the topic (connector \
                     resync --pipeline {} --table kafka.{}), or set fail_on_data_loss = false (--allow-data-loss) \
                     to read the partition from its first message, {low}, on top of what the table holds",
                    self.topic, self.pipeline, self.topic
                ),
            ));
        }
        warn!(topic = %self.topic, partition, table_read_up_to = next, partition_ends_at = high,
              "the partition ends before what the table has read (a recreated topic); reading it from its start \
               (fail_on_data_loss = false)");
        offsets.next.insert(partition, low);
        Ok(())
    }

    fn assign(&mut self, offsets: &TopicOffsets) -> Result<()> {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &offsets.next {
            list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .map_err(|cause| Error::state(format!("kafka: cannot place partition {partition}: {cause}")))?;
        }
        self.consumer.assign(&list).map_err(|cause| {
            Error::state(format!("kafka: cannot assign the partitions of `{}`: {cause}", self.topic))
        })?;
        self.assigned = Some(offsets.clone());
        Ok(())
    }

    /// A failed poll: messages gone (retention) stop the pass as a data loss does; the client reconnects by
    /// itself after a broker's failure, so those are logged and polling goes on.
    fn poll_failed(&self, cause: KafkaError, offsets: &TopicOffsets) -> Result<()> {
        match cause.rdkafka_error_code() {
            Some(RDKafkaErrorCode::OffsetOutOfRange) => Err(Error::history_lost(
                [TableId::new(NAMESPACE, &self.topic)],
                format!(
                    "kafka: `{}` does not hold the offsets the table reads next ({offsets:?}): the broker deleted \
                     them (retention; set fail_on_data_loss = false, --allow-data-loss, to skip them), or the topic \
                     was recreated (resync it: connector resync --pipeline {} --table kafka.{})",
                    self.topic, self.pipeline, self.topic
                ),
            )),
            _ if refuses_the_connector(&cause) => Err(self.unreachable("cannot read", cause)),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => Err(Error::new(
                ErrorKind::Config,
                Retry::WithBackoff,
                format!("kafka: topic `{}` was deleted while it was read ({cause})", self.topic),
            )),
            _ => {
                warn!(topic = %self.topic, error = %cause, "the Kafka client reports a failure; it retries");
                Ok(())
            }
        }
    }

    fn unreachable(&self, what: &str, cause: KafkaError) -> Error {
        let what = format!("{what} of `{}`", self.topic);
        request_failed(&self.consumer, &self.brokers, &self.security, &what, cause)
    }
}

fn owned_message<M: Message>(message: &M) -> KafkaMessage {
    let headers = message
        .headers()
        .map(|headers| {
            headers.iter().map(|header| (header.key.to_string(), header.value.map(<[u8]>::to_vec))).collect()
        })
        .unwrap_or_default();
    KafkaMessage {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}
