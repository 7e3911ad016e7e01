//! The command line: every command and flag with help a newcomer can act on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use connector_core::options::DeleteMode;

#[derive(Debug, Parser)]
#[command(
    name = "connector",
    version,
    about = "Capture changes from PostgreSQL, MySQL/MariaDB and SaaS APIs into Delta Lake tables, exactly once.",
    long_about = "Capture changes from PostgreSQL, MySQL/MariaDB and SaaS APIs into Delta Lake tables, exactly once.\n\n\
        Each source table lands at <dest>/<schema>/<table> as a Delta table readable by Spark, Databricks, DuckDB, \
        Polars and the deltalake Python package. The first sync copies a consistent snapshot; later syncs apply only \
        the changes since the position committed in the table's own Delta log.",
    after_help = "Examples:\n  \
        connector sync postgres --url postgres://app@db/shop --tables public.orders --dest ./lake\n  \
        connector run --config pipelines.toml\n  \
        connector status --dest ./lake"
)]
pub struct Cli {
    /// Log level of the connector (error, warn, info, debug; dependencies stay at warn), or a full filter
    /// such as `info,deltalake=debug`.
    #[arg(long, global = true, env = "CONNECTOR_LOG", default_value = "info")]
    pub log: String,

    /// Log as human-readable text or as JSON lines (for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync one source now: snapshot new tables, apply changes up to the current position, stop
    /// (or keep streaming with --continuous).
    Sync(SyncArgs),
    /// Run every pipeline of a config file on its schedule (interval, cron or continuous) until stopped.
    Run(RunArgs),
    /// Show each Delta table's version, size and the source position each pipeline committed.
    Status(StatusArgs),
    /// Copy tables again from scratch at the pipeline's next sync (a full reload), e.g. after an incompatible
    /// schema change. Empties the Delta table now, in one commit.
    Resync(ResyncArgs),
    /// Remove what a pipeline created in the source (PostgreSQL: its replication slot and publication), so the
    /// server stops retaining WAL for it. The Delta tables are kept.
    Drop(DropArgs),
}

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// The pipeline whose tables to copy again.
    #[arg(long)]
    pub pipeline: String,

    /// Tables to copy again, schema-qualified (repeatable or comma-separated).
    #[arg(long = "table", value_delimiter = ',', required = true)]
    pub tables: Vec<String>,

    /// The destination holding the tables (as given to `sync --dest`).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub dest: Option<String>,

    /// A pipelines file: the destination is the pipeline's `dest`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DropArgs {
    /// The pipeline whose slot and publication to remove.
    #[arg(long)]
    pub pipeline: String,

    /// PostgreSQL connection URL of the source.
    #[arg(long, env = "CONNECTOR_POSTGRES_URL", hide_env_values = true, required_unless_present = "config")]
    pub url: Option<String>,

    /// A pipelines file: the source is the pipeline's profile.
    #[arg(long, short, conflicts_with = "url")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub source: SyncSource,
}

#[derive(Debug, Subcommand)]
pub enum SyncSource {
    /// PostgreSQL through logical replication (pgoutput). Needs wal_level=logical.
    Postgres(PostgresSyncArgs),
    /// MySQL or MariaDB through the row-based binlog. Needs binlog_format=ROW, binlog_row_image=FULL and
    /// binlog_row_metadata=FULL.
    Mysql(MySqlSyncArgs),
    /// Stripe: list endpoints, then the events API for changes and deletes. Credentials: STRIPE_API_KEY.
    Stripe(SaasSyncArgs),
    /// HubSpot CRM: search by last-modified date, archived objects as deletes. Credentials:
    /// HUBSPOT_ACCESS_TOKEN, or HUBSPOT_CLIENT_ID + HUBSPOT_CLIENT_SECRET + HUBSPOT_REFRESH_TOKEN (OAuth2).
    Hubspot(SaasSyncArgs),
    /// Zendesk Support: cursor-based incremental exports. Credentials: ZENDESK_SUBDOMAIN (or --base-url),
    /// ZENDESK_EMAIL + ZENDESK_API_TOKEN (or ZENDESK_OAUTH_TOKEN).
    Zendesk(SaasSyncArgs),
    /// Salesforce: SOQL over queryAll by SystemModstamp, deleted records (IsDeleted) as deletes; streams are
    /// sObjects (Account,Contact,Invoice__c). Base URL: SALESFORCE_INSTANCE_URL (or --base-url). Credentials:
    /// SALESFORCE_CLIENT_ID + SALESFORCE_CLIENT_SECRET (+ SALESFORCE_REFRESH_TOKEN), or SALESFORCE_ACCESS_TOKEN.
    Salesforce(SaasSyncArgs),
}

/// The flags of the sources that capture changes (PostgreSQL, MySQL/MariaDB), each a key of their profile.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Memory for changes gathered before a commit, in MiB (default 128). A transaction larger than this is
    /// applied in parts (in hard and soft delete modes), so memory stays bounded whatever its size.
    #[arg(long, value_name = "MIB")]
    pub batch_mib: Option<usize>,

    /// Rows per range when a large table is copied whole; ranges are read over several connections at once
    /// (default 2000000).
    #[arg(long, value_name = "ROWS")]
    pub copy_range_rows: Option<u64>,

    /// Rows per chunk when a table with an integer key is copied while its changes stream; a crash re-reads at
    /// most the chunks not yet committed (default 250000).
    #[arg(long, value_name = "ROWS")]
    pub copy_chunk_rows: Option<u64>,

    /// Copy every table whole before streaming (one snapshot per table), not tables with an integer key in
    /// chunks while they stream (profile key `copy_in_chunks = false`).
    #[arg(long)]
    pub whole_copies: bool,
}

impl CaptureArgs {
    /// The profile keys these flags set.
    pub fn add_to(self, settings: &mut toml::Table) {
        let count = |value: u64| toml::Value::Integer(i64::try_from(value).unwrap_or(i64::MAX));
        if let Some(mib) = self.batch_mib {
            settings.insert("batch_mib".into(), count(mib as u64));
        }
        if let Some(rows) = self.copy_range_rows {
            settings.insert("copy_range_rows".into(), count(rows));
        }
        if let Some(rows) = self.copy_chunk_rows {
            settings.insert("copy_chunk_rows".into(), count(rows));
        }
        if self.whole_copies {
            settings.insert("copy_in_chunks".into(), false.into());
        }
    }
}

#[derive(Debug, Args)]
pub struct MySqlSyncArgs {
    /// Connection URL, e.g. mysql://user:password@host:3306.
    #[arg(long, env = "CONNECTOR_MYSQL_URL", hide_env_values = true)]
    pub url: String,

    /// Tables to capture, comma-separated, database-qualified: shop.orders,shop.items.
    #[arg(long, value_delimiter = ',', required_unless_present = "databases")]
    pub tables: Vec<String>,

    /// Capture every table of these databases, comma-separated: shop,billing.
    #[arg(long, value_delimiter = ',')]
    pub databases: Vec<String>,

    /// The server id the binlog connection registers with, unique among the server's replicas (default:
    /// derived from the pipeline name).
    #[arg(long, value_name = "N")]
    pub server_id: Option<u32>,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub common: CommonSyncArgs,
}

#[derive(Debug, Args)]
pub struct PostgresSyncArgs {
    /// Connection URL, e.g. postgres://user:password@host:5432/database?sslmode=require.
    #[arg(long, env = "CONNECTOR_POSTGRES_URL", hide_env_values = true)]
    pub url: String,

    /// Tables to capture, comma-separated, schema-qualified: public.orders,public.items.
    #[arg(long, value_delimiter = ',', required_unless_present = "schemas")]
    pub tables: Vec<String>,

    /// Capture every table of these schemas, comma-separated: public,sales.
    #[arg(long, value_delimiter = ',')]
    pub schemas: Vec<String>,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub common: CommonSyncArgs,
}

/// Flags every `sync` source shares.
#[derive(Debug, Args)]
pub struct CommonSyncArgs {
    /// Where tables land: a local directory or an object-store URL (s3://bucket/prefix, with AWS_* variables).
    #[arg(long)]
    pub dest: String,

    /// Pipeline name: names the replication slot and the progress recorded in each Delta table. Keep it
    /// stable between runs to resume where the last one stopped.
    #[arg(long, default_value = "default")]
    pub pipeline: String,

    /// Snapshot what is new, apply changes up to the source's position at start, then stop (the default).
    #[arg(long, conflicts_with = "continuous")]
    pub once: bool,

    /// Keep streaming changes in micro-batches until SIGINT/SIGTERM.
    #[arg(long)]
    pub continuous: bool,

    /// How deletes land: hard (remove the row), soft (flag _cdc_deleted), history (SCD type 2 versions).
    #[arg(long, value_enum, default_value_t = DeleteModeArg::Hard)]
    pub delete_mode: DeleteModeArg,

    /// Create tables without deletion vectors: every merge rewrites the files it changes, and readers
    /// limited to Delta reader version 1 (e.g. `deltalake`'s `to_pyarrow_table`) can read them.
    #[arg(long)]
    pub no_deletion_vectors: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeleteModeArg {
    Hard,
    Soft,
    History,
}

impl From<DeleteModeArg> for DeleteMode {
    fn from(mode: DeleteModeArg) -> Self {
        match mode {
            DeleteModeArg::Hard => DeleteMode::Hard,
            DeleteModeArg::Soft => DeleteMode::Soft,
            DeleteModeArg::History => DeleteMode::History,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipelines file (TOML): [profiles.*] for sources, [[pipelines]] for tables, destination, schedule.
    #[arg(long, short)]
    pub config: PathBuf,

    /// Run only these pipelines (repeatable); all by default.
    #[arg(long = "pipeline")]
    pub pipelines: Vec<String>,

    /// Run each selected pipeline once now, then exit (for cron, Airflow or Kubernetes jobs); exits non-zero
    /// if any failed.
    #[arg(long)]
    pub once: bool,

    /// Check the config file and exit without connecting anywhere.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A local destination directory: every table found under it.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub dest: Option<String>,

    /// A pipelines file: the tables of its pipelines, at their destinations.
    #[arg(long, short)]
    pub config: Option<PathBuf>,

    /// Also show this pipeline's side of the source: its replication slot on a PostgreSQL server (retained WAL
    /// and lag), or the binlog position and lag on a MySQL/MariaDB server (mysql://…). Prefer the environment
    /// variable for a URL with a password: arguments are visible to every user of the machine (`ps`).
    #[arg(long, env = "CONNECTOR_STATUS_URL", hide_env_values = true, requires = "pipeline")]
    pub url: Option<String>,

    /// The pipeline whose slot or binlog position `--url` shows.
    #[arg(long, requires = "url")]
    pub pipeline: Option<String>,

    /// Print JSON (`{"tables": [...], "slots": [...], "binlogs": [...]}`) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Flags of the SaaS sources (`sync stripe|hubspot|zendesk|salesforce`); credentials come from environment
/// variables.
#[derive(Debug, Args)]
pub struct SaasSyncArgs {
    /// Streams to sync, comma-separated: customers,invoices. Each lands at <dest>/<service>/<stream>.
    #[arg(long, value_delimiter = ',', required = true)]
    pub streams: Vec<String>,

    /// Another host for the API: a sandbox, a proxy, an emulator (default: the service's own).
    #[arg(long)]
    pub base_url: Option<String>,

    /// The credential's quota in requests per second (default: none until the API's rate-limit headers tell one).
    #[arg(long, value_name = "RATE")]
    pub requests_per_second: Option<f64>,

    /// Records per Delta commit (default 50000): bounds memory, and the work redone after a crash.
    #[arg(long, value_name = "COUNT")]
    pub batch_records: Option<usize>,

    #[command(flatten)]
    pub common: CommonSyncArgs,
}
