//! A Kafka source profile: the brokers, how messages decode, where a topic seen for the first time starts, how
//! many messages make a commit, SASL and TLS ([`crate::client_security`]), and librdkafka client properties passed
//! through (timeouts, OAUTHBEARER).
//!
//! ```toml
//! [profiles.events]
//! kind = "kafka"
//! brokers = "kafka-1:9092,kafka-2:9092"
//! format = "json"
//! starting_offsets = "earliest"
//! sasl = { mechanism = "SCRAM-SHA-512", username = "connector", password = "${KAFKA_PASSWORD}" }
//! tls = { ca = "/etc/kafka/ca.pem" }
//! properties = { "fetch.max.bytes" = "104857600" }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use connector_core::arrow::datatypes::DataType;
use connector_core::capture_settings::DEFAULT_BATCH_BYTES;
use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::{Error, Result};
use connector_core::options::TableOptions;
use connector_core::schema::TableId;
use connector_core::secret::{ConnectionUrl, Secret};
use connector_files::schema_hints::parse_schema_hints;
use serde::Deserialize;

use crate::client_security::{ClientSecurity, RawTls, SaslSettings};
use crate::schema_registry::RegistryCredentials;

/// The profile kind of this source.
pub const KIND: &str = "kafka";
/// Topics land at `<dest>/kafka/<topic>`.
pub const NAMESPACE: &str = "kafka";
/// Messages gathered before a Delta commit: each commit is an append of about a second's fixed cost, so large.
pub const DEFAULT_MAX_MESSAGES_PER_BATCH: usize = 500_000;
/// Arrow bytes of decoded rows that end a batch in upsert mode (Debezium's too): a merge holds its batch, the
/// batch reduced to a row per key and their key index at once, a few times what an append holds, so its batches
/// are a quarter of the append's ([`DEFAULT_BATCH_BYTES`]). Measured on 1M messages of 1 KB over 100k keys:
/// batches of 64 MiB peaked at 491–551 MiB, of 32 MiB at 361–412 MiB, about 10% slower.
pub const DEFAULT_MERGED_BATCH_BYTES: usize = DEFAULT_BATCH_BYTES / 4;
/// The latency target of a continuous sync: messages read wait at most this long before their commit.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// How often a continuous sync with a topic pattern lists the cluster's topics for new ones.
pub const DEFAULT_TOPIC_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The pause between passes of a continuous sync once a topic is caught up.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How a message's value becomes columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    /// A JSON object per message: its fields become columns, inferred and evolved as JSON files' are.
    Json,
    /// The value as text (UTF-8) in a `value` column.
    String,
    /// The value as bytes in a `value` column.
    Bytes,
    /// Avro in the Confluent Schema Registry's wire format: each value decoded with the writer schema its id
    /// names, fetched from `schema_registry` (`crate::avro_messages`).
    Avro,
    /// Debezium change events (JSON, with or without the schema wrapper): each applies its change to the row of
    /// its key (`crate::debezium`).
    Debezium,
    /// Protobuf in the Confluent Schema Registry's wire format: each value decoded by the `.proto` schema its id
    /// names, its fields becoming columns as a JSON object's do (`crate::protobuf_messages`).
    Protobuf,
}

impl MessageFormat {
    /// Whether values reach their columns through the JSON reader (Debezium's rows and Protobuf's messages are
    /// turned into JSON objects first).
    pub fn reads_json(self) -> bool {
        matches!(self, MessageFormat::Json | MessageFormat::Debezium | MessageFormat::Protobuf)
    }
}

/// How messages become a table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaMode {
    /// Every message a row.
    Append,
    /// A row per message key, the latest message's: the table equals the compacted topic; a tombstone (a null
    /// value) deletes the key's row.
    Upsert,
}

/// Where a topic's partitions start when the table holds no offsets for them yet (a first sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingOffsets {
    /// The oldest message the broker still keeps.
    Earliest,
    /// Only messages produced after the first sync starts.
    Latest,
    /// Each partition's first message whose timestamp is at or after this one (milliseconds since the epoch).
    Timestamp(i64),
}

impl StartingOffsets {
    /// `earliest`, `latest`, an RFC 3339 time (`2026-12-01T00:00:00Z`) or milliseconds since the epoch.
    fn parse(text: &str) -> std::result::Result<Self, String> {
        match text {
            "earliest" => Ok(StartingOffsets::Earliest),
            "latest" => Ok(StartingOffsets::Latest),
            other => match (other.parse::<i64>(), chrono::DateTime::parse_from_rfc3339(other)) {
                (Ok(millis), _) => Ok(StartingOffsets::Timestamp(millis)),
                (_, Ok(time)) => Ok(StartingOffsets::Timestamp(time.timestamp_millis())),
                _ => Err(format!(
                    "starting_offsets = \"{other}\" is not earliest, latest, an RFC 3339 time \
                     (2026-12-01T00:00:00Z) or milliseconds since the epoch"
                )),
            },
        }
    }
}

/// The profile's settings, as written under `[profiles.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    brokers: String,
    #[serde(default)]
    format: Option<MessageFormat>,
    #[serde(default)]
    starting_offsets: Option<String>,
    #[serde(default)]
    max_messages_per_batch: Option<usize>,
    #[serde(default)]
    max_bytes_per_batch: Option<usize>,
    #[serde(default)]
    commit_interval: Option<String>,
    #[serde(default)]
    poll_interval: Option<String>,
    #[serde(default)]
    fail_on_data_loss: Option<bool>,
    #[serde(default)]
    mode: Option<KafkaMode>,
    #[serde(default)]
    schema_registry: Option<ConnectionUrl>,
    #[serde(default)]
    schema_registry_user: Option<String>,
    #[serde(default)]
    schema_registry_password: Option<Secret>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(default)]
    topic_pattern: Option<String>,
    #[serde(default)]
    topic_refresh_interval: Option<String>,
    #[serde(default)]
    key: Vec<String>,
    #[serde(default)]
    schema_hints: Option<String>,
    #[serde(default)]
    sasl: Option<SaslSettings>,
    #[serde(default)]
    tls: Option<RawTls>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

/// A validated Kafka source for one pipeline.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub pipeline: String,
    pub dest: String,
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    pub topics: Vec<String>,
    pub format: MessageFormat,
    pub mode: KafkaMode,
    pub starting_offsets: StartingOffsets,
    pub max_messages_per_batch: usize,
    /// Arrow bytes of decoded rows that end a batch whatever its message count.
    pub max_bytes_per_batch: usize,
    pub commit_interval: Duration,
    pub poll_interval: Duration,
    /// Stop when offsets the table records are gone from the broker (retention), rather than skip them.
    pub fail_on_data_loss: bool,
    /// Topics whose whole name matches this are synced as well as `topics`, those created later included.
    pub topic_pattern: Option<regex::Regex>,
    /// How often a continuous sync looks for new topics matching `topic_pattern`.
    pub topic_refresh_interval: Duration,
    /// Stop at the first message whose value does not decode into its columns, instead of rescuing it.
    pub strict: bool,
    /// In upsert mode, the value columns the table merges by, instead of the message key.
    pub key: Vec<String>,
    /// Column types that win over inference, and exist before the first message.
    pub schema_hints: Vec<(String, DataType)>,
    /// The Confluent Schema Registry's URL, for `--format avro`.
    pub schema_registry: Option<ConnectionUrl>,
    /// The registry's credentials, when given as settings of their own (else the URL's user info, if any).
    pub schema_registry_credentials: Option<RegistryCredentials>,
    /// SASL credentials and TLS, when the brokers ask for them.
    pub security: ClientSecurity,
    /// librdkafka properties, passed to the client as they are (after `security`, so they win).
    pub properties: BTreeMap<String, String>,
    pub table_options: BTreeMap<String, TableOptions>,
    pub default_options: TableOptions,
}

impl KafkaConfig {
    pub fn from_profile(profile: &Profile, pipeline: &PipelineConfig) -> Result<Self> {
        let at = format!("pipeline `{}` (source `{KIND}`)", pipeline.name);
        let raw: RawProfile = toml::Value::Table(profile.settings.clone())
            .try_into()
            .map_err(|cause| Error::config(format!("{at}: invalid settings: {cause}")))?;
        if raw.brokers.trim().is_empty() {
            return Err(Error::config(format!("{at}: set `brokers` (--brokers host:9092[,host:9092])")));
        }
        if matches!(raw.format, Some(MessageFormat::Avro | MessageFormat::Protobuf)) && raw.schema_registry.is_none() {
            return Err(Error::config(format!(
                "{at}: formats avro and protobuf read the schema registry's wire format: set `schema_registry` \
                 (--schema-registry http://registry:8081)"
            )));
        }
        let schema_registry_credentials = match (raw.schema_registry_user, raw.schema_registry_password) {
            (None, None) => None,
            (Some(user), Some(password)) => Some(RegistryCredentials { user, password }),
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::config(format!(
                    "{at}: set both schema_registry_user and schema_registry_password, or neither"
                )));
            }
        };
        let topics: Vec<String> = pipeline.tables.iter().map(|table| topic_name(table).to_string()).collect();
        // Anchored, as Kafka clients match a subscription pattern: `cdc\..*` is not `old.cdc.x`.
        let topic_pattern = match raw.topic_pattern.as_deref() {
            None => None,
            Some(pattern) => Some(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|cause| {
                Error::config(format!("{at}: topic_pattern = \"{pattern}\" is not a regular expression: {cause}"))
            })?),
        };
        if topics.is_empty() && topic_pattern.is_none() {
            return Err(Error::config(format!(
                "{at}: name the topics to sync (--topics orders,payments), or a pattern (--topic-pattern 'cdc\\..*')"
            )));
        }
        let duration = |value: Option<String>, name: &str, default: Duration| -> Result<Duration> {
            match value {
                None => Ok(default),
                Some(text) => humantime::parse_duration(&text).map_err(|cause| {
                    Error::config(format!("{at}: {name} = \"{text}\" is not a duration (write 500ms, 5s, 1m)"))
                        .caused_by(cause)
                }),
            }
        };
        for reserved in ["group.id", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset"] {
            if raw.properties.contains_key(reserved) {
                return Err(Error::config(format!(
                    "{at}: properties: `{reserved}` is the connector's own (offsets live in the Delta log); \
                     remove it"
                )));
            }
        }
        let security = ClientSecurity { sasl: raw.sasl, tls: raw.tls.and_then(RawTls::settings) };
        security.validate(&at).map_err(Error::config)?;
        let table_options = pipeline
            .table_options
            .iter()
            .map(|(table, options)| (topic_name(table).to_string(), options.clone()))
            .collect();
        let format = raw.format.unwrap_or(MessageFormat::Json);
        // Change events are merged unless asked to be kept as a changelog.
        let mode = raw.mode.unwrap_or(match format {
            MessageFormat::Debezium => KafkaMode::Upsert,
            _ => KafkaMode::Append,
        });
        if !raw.key.is_empty() && (mode != KafkaMode::Upsert || format == MessageFormat::Debezium) {
            return Err(Error::config(format!(
                "{at}: `key` (--key) names the value columns an upsert table merges by: it needs mode = \"upsert\" \
                 (--mode upsert), and Debezium events are merged by the key Debezium gives; remove it, or set the mode"
            )));
        }
        let schema_hints = match raw.schema_hints.as_deref() {
            None => Vec::new(),
            Some(text) => parse_schema_hints(text).map_err(|error| Error::config(format!("{at}: {error}")))?,
        };
        let default_batch_bytes = match mode {
            KafkaMode::Append => DEFAULT_BATCH_BYTES,
            KafkaMode::Upsert => DEFAULT_MERGED_BATCH_BYTES,
        };
        Ok(KafkaConfig {
            pipeline: pipeline.name.clone(),
            dest: pipeline.dest.clone(),
            brokers: raw.brokers,
            topics,
            format,
            mode,
            starting_offsets: match raw.starting_offsets.as_deref() {
                None => StartingOffsets::Earliest,
                Some(text) => {
                    StartingOffsets::parse(text).map_err(|reason| Error::config(format!("{at}: {reason}")))?
                }
            },
            max_messages_per_batch: raw.max_messages_per_batch.unwrap_or(DEFAULT_MAX_MESSAGES_PER_BATCH).max(1),
            max_bytes_per_batch: raw.max_bytes_per_batch.unwrap_or(default_batch_bytes).max(1),
            commit_interval: duration(raw.commit_interval, "commit_interval", DEFAULT_COMMIT_INTERVAL)?,
            poll_interval: duration(raw.poll_interval, "poll_interval", DEFAULT_POLL_INTERVAL)?,
            fail_on_data_loss: raw.fail_on_data_loss.unwrap_or(true),
            schema_registry: raw.schema_registry,
            schema_registry_credentials,
            strict: raw.strict.unwrap_or(false),
            key: raw.key,
            schema_hints,
            topic_pattern,
            topic_refresh_interval: duration(
                raw.topic_refresh_interval,
                "topic_refresh_interval",
                DEFAULT_TOPIC_REFRESH_INTERVAL,
            )?,
            security,
            properties: raw.properties,
            table_options,
            default_options: pipeline.default_options.clone(),
        })
    }

    pub fn options_for(&self, topic: &str) -> TableOptions {
        self.table_options.get(topic).cloned().unwrap_or_else(|| self.default_options.clone())
    }
}

/// The Delta tables a Kafka pipeline's topics land in, from the configuration alone: what `connector status`
/// shows for it.
pub fn topic_tables(pipeline: &PipelineConfig) -> Vec<TableId> {
    pipeline.tables.iter().map(|table| TableId::new(NAMESPACE, topic_name(table))).collect()
}

/// A topic as the pipeline names it (`orders` or `kafka.orders`), without the namespace. Topic names may hold
/// dots themselves (`cdc.shop.orders`), so only the namespace is taken off.
fn topic_name(table: &str) -> &str {
    table.strip_prefix(NAMESPACE).and_then(|rest| rest.strip_prefix('.')).unwrap_or(table)
}
