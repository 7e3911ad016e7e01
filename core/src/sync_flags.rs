//! The flags every `connector sync <source>` shares, and what a source's own flags become: a profile, as if
//! written in `pipelines.toml`, so the command line and the file cannot drift apart. Each source declares its
//! own flags beside its configuration (`connectors/<name>/src/sync_flags.rs`).

use clap::{Args, ValueEnum};

use crate::config::Profile;
use crate::options::DeleteMode;

/// A sync asked for on the command line: the source's profile, what to capture, and the common flags.
#[derive(Debug)]
pub struct SyncRequest {
    pub profile: Profile,
    /// Tables or streams, as `pipelines.toml` lists them.
    pub tables: Vec<String>,
    pub common: CommonSyncFlags,
}

/// Flags every `sync` source shares.
#[derive(Debug, Args)]
pub struct CommonSyncFlags {
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
    #[arg(long, value_enum, default_value_t = DeleteModeFlag::Hard)]
    pub delete_mode: DeleteModeFlag,

    /// Create tables without deletion vectors: every merge rewrites the files it changes, and readers
    /// limited to Delta reader version 1 (e.g. `deltalake`'s `to_pyarrow_table`) can read them.
    #[arg(long)]
    pub no_deletion_vectors: bool,

    /// Commits between two maintenance passes the sync runs on each table after a commit: small files
    /// compacted, a checkpoint, the expired log trimmed, and every tenth pass a VACUUM (docs/operations.md,
    /// Table maintenance). 0 turns them off.
    #[arg(long, value_name = "COMMITS", default_value_t = crate::options::DEFAULT_MAINTENANCE_EVERY_COMMITS)]
    pub maintenance_every_commits: u64,

    /// Serve /metrics (Prometheus text), /healthz and /readyz on this address while the sync runs (as
    /// `connector run --metrics-addr` does): 127.0.0.1:9464.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeleteModeFlag {
    Hard,
    Soft,
    History,
}

impl From<DeleteModeFlag> for DeleteMode {
    fn from(mode: DeleteModeFlag) -> Self {
        match mode {
            DeleteModeFlag::Hard => DeleteMode::Hard,
            DeleteModeFlag::Soft => DeleteMode::Soft,
            DeleteModeFlag::History => DeleteMode::History,
        }
    }
}

/// The flags of the sources that capture changes from a log (PostgreSQL, MySQL/MariaDB), each a key of their
/// profile (`CaptureSettings`).
#[derive(Debug, Args)]
pub struct CaptureFlags {
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

impl CaptureFlags {
    /// The profile keys these flags set.
    pub fn add_to(self, settings: &mut toml::Table) {
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

/// A count as a profile value (TOML integers are signed).
pub fn count(value: u64) -> toml::Value {
    toml::Value::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}
