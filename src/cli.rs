//! The command line: every command and flag with help a newcomer can act on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::source_registry::SyncSource;

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
    /// Run every pipeline of a config file, as `run` does, with the web console on --addr: a page per pipeline
    /// and table, run now / pause / resume / resync buttons, and the upload page (files into a Delta table).
    Serve(ServeArgs),
    /// Load files (local files, directories, globs, s3://, gs:// and az:// URLs) into a table in one commit:
    /// infer the columns, create the table (or append, overwrite, or merge on --key), print the columns and the
    /// rows written.
    Load(Box<connector_files::load::LoadArgs>),
    /// Show the columns a load of the files would create and their first rows, writing nothing (the upload
    /// page's preview): edit the types and pass them to load as --schema-hints.
    Preview(Box<connector_files::preview::PreviewArgs>),
    /// Show each Delta table's version, size and the source position each pipeline committed.
    Status(StatusArgs),
    /// Copy tables again from scratch at the pipeline's next sync (a full reload), e.g. after an incompatible
    /// schema change. Empties the Delta table now, in one commit.
    Resync(ResyncArgs),
    /// Compact a destination's small files, checkpoint and trim the Delta log, and VACUUM files no version
    /// within the retention uses, table by table, while the pipelines writing each table are held off (their
    /// leases).
    Maintain(MaintainArgs),
    /// Remove what a pipeline created in the source (PostgreSQL: its replication slot and publication), so the
    /// server stops retaining WAL for it. The Delta tables are kept.
    Drop(DropArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    connector maintain --dest ./lake\n  \
    connector maintain --dest s3://lake/raw --table public.orders --vacuum-retention 24h")]
pub struct MaintainArgs {
    /// The destination holding the tables (a local path, or an s3://, gs:// or az:// URL).
    #[arg(long)]
    pub dest: String,

    /// Tables to maintain, `namespace.table` (repeatable or comma-separated). Default, for a local --dest: every
    /// table under it and its event log; an object store needs them named.
    #[arg(long = "table", value_delimiter = ',')]
    pub tables: Vec<String>,

    /// The size compaction aims at, in bytes; files under a quarter of it are small (default: the table's
    /// delta.targetFileSize, else 64 MiB, the size the connector writes).
    #[arg(long, value_name = "BYTES")]
    pub target_file_size: Option<u64>,

    /// Small files a table holds before it is compacted.
    #[arg(long, value_name = "COUNT", default_value_t = connector_core::maintenance::DEFAULT_MIN_SMALL_FILES)]
    pub min_small_files: usize,

    /// How long data files that no current version uses are kept before VACUUM deletes them: readers of older
    /// versions (time travel, a long query) need them that long (default: the table's
    /// delta.deletedFileRetentionDuration, 7 days). 1h, 24h, 7d.
    #[arg(long, value_name = "DURATION")]
    pub vacuum_retention: Option<String>,

    /// Print each table's report as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
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

    /// Serve /metrics (Prometheus text), /healthz and /readyz on this address while the pipelines run:
    /// 127.0.0.1:9464, or 0.0.0.0:9464 for a pod's probes and scrapes.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Serve the web console on this address while the pipelines run (as `connector serve --addr` does):
    /// 127.0.0.1:8080. Any address but loopback needs a token (CONNECTOR_CONSOLE_TOKEN or --console-token-file).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "once")]
    pub ui: Option<std::net::SocketAddr>,

    /// A file of console users, one `name:token` per line (`#` comments): every page and action then needs one
    /// of the tokens, and actions are logged under the name. Default: the token in CONNECTOR_CONSOLE_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub console_token_file: Option<PathBuf>,

    /// The most the console's upload page takes in one request, in MiB (streamed to disk under TMPDIR, never
    /// held in memory). Larger files load with `connector load`.
    #[arg(long, value_name = "MIB", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_limit_mib: u64,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    connector serve --config pipelines.toml\n  \
    CONNECTOR_CONSOLE_TOKEN=$(openssl rand -base64 32) connector serve --config pipelines.toml --addr 0.0.0.0:8080")]
pub struct ServeArgs {
    /// The web console's address. Any address but loopback needs a token (CONNECTOR_CONSOLE_TOKEN or
    /// --console-token-file).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,

    #[command(flatten)]
    pub run: RunArgs,
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

    /// Also show the destinations' event log (runs, commits, schema changes, errors) since this long ago: 1h,
    /// 30m, 2d.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// Print JSON (`{"tables": [...], "slots": [...], "binlogs": [...], "events": [...]}`) instead of tables.
    #[arg(long)]
    pub json: bool,
}
