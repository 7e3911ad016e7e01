//! The one place that knows every connector: its `connector sync <source>` command (whose flags the source's
//! crate declares) and how a profile of its kind becomes a runnable pipeline.

use std::sync::Arc;

use clap::Subcommand;
use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::delta::Destination;
use connector_core::error::{Error, Result};
use connector_core::lease::LeasedPipeline;
use connector_core::pipeline::Pipeline;
use connector_core::sync_flags::SyncRequest;
use connector_files::sync_flags::FilesSyncFlags;
use connector_kafka::sync_flags::KafkaSyncFlags;
use connector_mysql::sync_flags::MySqlSyncFlags;
use connector_postgres::sync_flags::PostgresSyncFlags;
use connector_saas::sync_flags::SaasSyncFlags;

/// Source kinds this build can run.
pub const SOURCE_KINDS: &[&str] = &[
    connector_postgres::KIND,
    connector_mysql::KIND,
    connector_saas::services::stripe::KIND,
    connector_saas::services::hubspot::KIND,
    connector_saas::services::zendesk::KIND,
    connector_saas::services::salesforce::KIND,
    connector_saas::services::rest::KIND,
    connector_files::KIND,
    connector_kafka::KIND,
];

/// The pipeline of `profile`, holding its lease in the destination while it syncs (one writer per pipeline).
pub fn build_pipeline(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    let source = build_source(profile, pipeline)?;
    let destination = Destination::parse(&pipeline.dest)?;
    Ok(Arc::new(LeasedPipeline::new(source, destination)))
}

fn build_source(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    match profile.kind.as_str() {
        connector_postgres::KIND => connector_postgres::build(profile, pipeline),
        connector_mysql::KIND => connector_mysql::build(profile, pipeline),
        kind if connector_saas::KINDS.contains(&kind) => connector_saas::build(profile, pipeline),
        connector_files::KIND => connector_files::build(profile, pipeline),
        connector_kafka::KIND => connector_kafka::build(profile, pipeline),
        other => Err(Error::config(format!(
            "pipeline `{}`: source kind `{other}` is not available in this build (available: {})",
            pipeline.name,
            SOURCE_KINDS.join(", ")
        ))),
    }
}

/// `connector sync <source>`: one command per source, its flags declared by the source's crate.
#[derive(Debug, Subcommand)]
pub enum SyncSource {
    /// PostgreSQL through logical replication (pgoutput). Needs wal_level=logical.
    Postgres(PostgresSyncFlags),
    /// MySQL or MariaDB through the row-based binlog. Needs binlog_format=ROW, binlog_row_image=FULL and
    /// binlog_row_metadata=FULL.
    Mysql(MySqlSyncFlags),
    /// Stripe: list endpoints, then the events API for changes and deletes. Credentials: STRIPE_API_KEY.
    Stripe(SaasSyncFlags),
    /// HubSpot CRM: search by last-modified date, archived objects as deletes. Credentials:
    /// HUBSPOT_ACCESS_TOKEN, or HUBSPOT_CLIENT_ID + HUBSPOT_CLIENT_SECRET + HUBSPOT_REFRESH_TOKEN (OAuth2).
    Hubspot(SaasSyncFlags),
    /// Zendesk Support: cursor-based incremental exports. Credentials: ZENDESK_SUBDOMAIN (or --base-url),
    /// ZENDESK_EMAIL + ZENDESK_API_TOKEN (or ZENDESK_OAUTH_TOKEN).
    Zendesk(SaasSyncFlags),
    /// Salesforce: SOQL over queryAll by SystemModstamp, deleted records (IsDeleted) as deletes; streams are
    /// sObjects (Account,Contact,Invoice__c). Base URL: SALESFORCE_INSTANCE_URL (or --base-url). Credentials:
    /// SALESFORCE_CLIENT_ID + SALESFORCE_CLIENT_SECRET (+ SALESFORCE_REFRESH_TOKEN), or SALESFORCE_ACCESS_TOKEN.
    Salesforce(SaasSyncFlags),
    /// Files from a local directory or an object-store prefix (s3://bucket/prefix/): each new file ingested once,
    /// its rows and its record in the table's file ledger in one commit. CSV, TSV, JSON lines, Parquet.
    Files(Box<FilesSyncFlags>),
    /// Kafka topics: every message a row with its topic, partition, offset, timestamp, key and headers; the
    /// offsets committed in the Delta log with the rows. Values: JSON objects, strings or bytes.
    Kafka(Box<KafkaSyncFlags>),
}

impl SyncSource {
    /// The sync the flags ask for, as a profile and the tables to capture.
    pub fn into_request(self) -> SyncRequest {
        match self {
            SyncSource::Postgres(flags) => flags.into_request(),
            SyncSource::Mysql(flags) => flags.into_request(),
            SyncSource::Stripe(flags) => flags.into_request(connector_saas::services::stripe::KIND),
            SyncSource::Hubspot(flags) => flags.into_request(connector_saas::services::hubspot::KIND),
            SyncSource::Zendesk(flags) => flags.into_request(connector_saas::services::zendesk::KIND),
            SyncSource::Salesforce(flags) => flags.into_request(connector_saas::services::salesforce::KIND),
            SyncSource::Files(flags) => (*flags).into_request(),
            SyncSource::Kafka(flags) => (*flags).into_request(),
        }
    }
}
