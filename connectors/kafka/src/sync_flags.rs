//! The flags of `connector sync kafka`, each setting the profile key of the same name ([`crate::config`]).

use clap::Args;
use connector_core::config::Profile;
use connector_core::sync_flags::{CommonSyncFlags, SyncRequest, count};

/// Where `sync kafka --sasl-mechanism` reads the SASL password.
pub const SASL_PASSWORD_VARIABLE: &str = "KAFKA_SASL_PASSWORD";

#[derive(Debug, Args)]
pub struct KafkaSyncFlags {
    /// Bootstrap brokers: host:9092[,host:9092].
    #[arg(long)]
    pub brokers: String,

    /// Topics to sync, comma-separated: orders,payments. Each lands at <dest>/kafka/<topic>.
    #[arg(long, value_delimiter = ',', required_unless_present = "topic_pattern")]
    pub topics: Vec<String>,

    /// Also every topic whose whole name matches this regular expression ('cdc\..*'), those created later
    /// included.
    #[arg(long, value_name = "REGEX")]
    pub topic_pattern: Option<String>,

    /// How often --continuous looks for new topics matching --topic-pattern (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub topic_refresh_interval: Option<String>,

    /// How values decode: json (an object's fields as columns; the default), avro or protobuf (the schema
    /// registry's wire format), debezium (change events merged by key), string or bytes (a `value` column).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,

    /// append (every message a row; the default) or upsert (a row per message key, the latest; a null value
    /// deletes the key's row).
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,

    /// With --mode upsert, the value columns the table merges by instead of the message key, comma-separated
    /// (--key id); they need a type before the first message: --schema-hints "id bigint". A tombstone then deletes
    /// the row its message key names (a JSON object holding the key columns).
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub key: Vec<String>,

    /// Column types that win over inference, as SQL: "id bigint, amount decimal(12,2)" (json and protobuf values;
    /// with avro values a hinted column only exists before the first message, typed by the schemas after).
    #[arg(long, value_name = "COLUMNS")]
    pub schema_hints: Option<String>,

    /// The Confluent Schema Registry's URL, for --format avro and protobuf (and Debezium's Avro events):
    /// http://registry:8081, or with credentials https://USER:PASSWORD@registry (or schema_registry_user and
    /// schema_registry_password in pipelines.toml).
    #[arg(long, value_name = "URL")]
    pub schema_registry: Option<String>,

    /// Where partitions start on the first sync: earliest (the default), latest, or a time (RFC 3339, or
    /// milliseconds since the epoch): each partition's first message at or after it.
    #[arg(long, value_name = "WHERE")]
    pub starting_offsets: Option<String>,

    /// Messages per Delta commit at most (default 500000).
    #[arg(long, value_name = "COUNT")]
    pub max_messages_per_batch: Option<usize>,

    /// Bytes of decoded rows per Delta commit at most (default 128 MiB; 32 MiB in upsert mode).
    #[arg(long, value_name = "BYTES")]
    pub max_bytes_per_batch: Option<u64>,

    /// The latency target of --continuous: messages wait at most this long for their commit (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub commit_interval: Option<String>,

    /// Stop at the first message whose value does not decode into its columns (naming its partition and offset)
    /// instead of keeping it in _rescued_data.
    #[arg(long)]
    pub strict: bool,

    /// Skip messages the broker deleted before they were read (retention), with a warning, instead of stopping.
    #[arg(long)]
    pub allow_data_loss: bool,

    /// SASL mechanism of the brokers' listener: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with --sasl-username and
    /// the password in KAFKA_SASL_PASSWORD).
    #[arg(long, value_name = "MECHANISM", requires = "sasl_username")]
    pub sasl_mechanism: Option<String>,

    /// The SASL user.
    #[arg(long, value_name = "USER", requires = "sasl_mechanism")]
    pub sasl_username: Option<String>,

    /// Connect over TLS, trusting the system's certificate authorities (or --tls-ca's).
    #[arg(long)]
    pub tls: bool,

    /// PEM file of the authorities the brokers' certificates come from (implies --tls).
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<String>,

    /// PEM file of a client certificate, for brokers that ask for one (mutual TLS; implies --tls), with --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_certificate: Option<String>,

    /// PEM file of the client certificate's private key.
    #[arg(long, value_name = "PATH", requires = "tls_certificate")]
    pub tls_key: Option<String>,

    /// A librdkafka client property, repeatable: --property fetch.max.bytes=104857600.
    #[arg(long = "property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,

    #[command(flatten)]
    pub common: CommonSyncFlags,
}

impl KafkaSyncFlags {
    pub fn into_request(self) -> SyncRequest {
        let mut settings = toml::Table::new();
        settings.insert("brokers".into(), self.brokers.into());
        for (key, value) in [
            ("format", self.format),
            ("mode", self.mode),
            ("schema_registry", self.schema_registry),
            ("topic_pattern", self.topic_pattern),
            ("topic_refresh_interval", self.topic_refresh_interval),
            ("schema_hints", self.schema_hints),
            ("starting_offsets", self.starting_offsets),
            ("commit_interval", self.commit_interval),
        ] {
            if let Some(value) = value {
                settings.insert(key.into(), value.into());
            }
        }
        if let Some(messages) = self.max_messages_per_batch {
            settings.insert("max_messages_per_batch".into(), count(messages as u64));
        }
        if let Some(bytes) = self.max_bytes_per_batch {
            settings.insert("max_bytes_per_batch".into(), count(bytes));
        }
        if self.strict {
            settings.insert("strict".into(), true.into());
        }
        if !self.key.is_empty() {
            settings.insert("key".into(), self.key.into_iter().map(toml::Value::from).collect::<Vec<_>>().into());
        }
        if self.allow_data_loss {
            settings.insert("fail_on_data_loss".into(), false.into());
        }
        if let (Some(mechanism), Some(username)) = (self.sasl_mechanism, self.sasl_username) {
            let mut sasl = toml::Table::new();
            sasl.insert("mechanism".into(), mechanism.into());
            sasl.insert("username".into(), username.into());
            // The password from the environment only: arguments are visible to every user of the machine (`ps`).
            // Missing, it is an empty password, which the brokers refuse naming the user.
            let password = std::env::var(SASL_PASSWORD_VARIABLE).unwrap_or_default();
            sasl.insert("password".into(), password.into());
            settings.insert("sasl".into(), sasl.into());
        }
        let tls_files = [("ca", self.tls_ca), ("certificate", self.tls_certificate), ("key", self.tls_key)];
        let tls: toml::Table =
            tls_files.into_iter().filter_map(|(name, path)| Some((name.to_string(), path?.into()))).collect();
        if !tls.is_empty() {
            settings.insert("tls".into(), tls.into());
        } else if self.tls {
            settings.insert("tls".into(), true.into());
        }
        if !self.properties.is_empty() {
            let mut properties = toml::Table::new();
            for property in self.properties {
                // Checked where the profile is read: a property without `=` has an empty value there.
                let (name, value) = property.split_once('=').unwrap_or((property.as_str(), ""));
                properties.insert(name.to_string(), value.to_string().into());
            }
            settings.insert("properties".into(), properties.into());
        }
        SyncRequest {
            profile: Profile { kind: crate::KIND.into(), settings },
            tables: self.topics,
            common: self.common,
        }
    }
}
