//! What every change-capture pipeline is set with, whatever its source: its name and destination, its tables
//! and their options, and the engine's budgets. A connector's configuration holds one beside its own
//! connection settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{self, Pipeline as PipelineConfig};
use crate::engine::CommitBudget;
use crate::error::{Error, Result};
use crate::options::TableOptions;
use crate::schema::TableId;

/// How long changes may wait in memory before a micro-batch is committed in continuous mode. Each commit costs
/// a MERGE (about a second on a large table), so much shorter gains little.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered change bytes (Arrow, across tables) that force a commit: bounds memory whatever the backlog.
pub const DEFAULT_BATCH_BYTES: usize = 128 * 1024 * 1024;
/// A table with more rows (by the source's estimate) and an integer key is copied in key ranges of about this
/// many rows over parallel connections: enough rows per range that each makes large Parquet files, and ranges
/// many enough to spread over the connections.
pub const DEFAULT_COPY_RANGE_ROWS: u64 = 2_000_000;
/// Rows per chunk of a table copied in chunks while it streams: each chunk is written into Parquet files as it is
/// read, then committed once the stream reaches its snapshot, so this sets how much a crash re-reads. Each chunk
/// costs a snapshot (on PostgreSQL a temporary slot and a connection): at 250,000 rows that set-up held
/// PostgreSQL's chunked copies to 0.74 of a whole copy, at 500,000 they reach 0.91 at the same memory.
pub const DEFAULT_COPY_CHUNK_ROWS: u64 = 500_000;

/// The settings every capture pipeline has.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub pipeline: String,
    pub dest: String,
    /// Tables named explicitly (a source may add those of whole schemas or databases when it starts).
    pub tables: Vec<TableId>,
    pub table_options: BTreeMap<TableId, TableOptions>,
    pub default_options: TableOptions,
    pub commit_interval: Duration,
    pub batch_bytes: usize,
    pub copy_range_rows: u64,
    pub copy_chunk_rows: u64,
    /// Whether tables with a single integer key are copied in chunks while they stream (else whole, before).
    pub copy_in_chunks: bool,
}

/// The profile keys every capture source has (`None`: unset, the default applies).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedKeys {
    /// Memory budget for buffered changes, in MiB ([`DEFAULT_BATCH_BYTES`]).
    batch_mib: Option<usize>,
    /// Rows per key range when a large table is copied whole ([`DEFAULT_COPY_RANGE_ROWS`]).
    copy_range_rows: Option<u64>,
    /// Rows per chunk when a table is copied in chunks ([`DEFAULT_COPY_CHUNK_ROWS`]).
    copy_chunk_rows: Option<u64>,
    /// Whether tables with an integer key are copied in chunks while they stream (default true).
    copy_in_chunks: Option<bool>,
}

const SHARED_KEYS: [&str; 4] = ["batch_mib", "copy_range_rows", "copy_chunk_rows", "copy_in_chunks"];

impl CaptureSettings {
    /// The settings of `pipeline`, with the keys every capture source shares taken out of its profile's
    /// `settings` (defaults for those unset), so the source reads the rest and still refuses a key it does not
    /// know. `at` names the pipeline in errors, `source` the kind of settings (`PostgreSQL`).
    pub fn take_from(settings: &mut toml::Table, pipeline: &PipelineConfig, at: &str, source: &str) -> Result<Self> {
        let shared: toml::Table =
            SHARED_KEYS.iter().filter_map(|key| settings.remove(*key).map(|value| (key.to_string(), value))).collect();
        let keys: SharedKeys = toml::Value::Table(shared)
            .try_into()
            .map_err(|cause| Error::config(format!("{at}: invalid {source} settings: {cause}")))?;
        let (tables, table_options) = pipeline.table_ids(at)?;
        Ok(CaptureSettings {
            pipeline: pipeline.name.clone(),
            dest: pipeline.dest.clone(),
            tables,
            table_options,
            default_options: pipeline.default_options.clone(),
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            batch_bytes: config::batch_bytes(keys.batch_mib, DEFAULT_BATCH_BYTES, at)?,
            copy_range_rows: config::row_count("copy_range_rows", keys.copy_range_rows, DEFAULT_COPY_RANGE_ROWS, at)?,
            copy_chunk_rows: config::row_count("copy_chunk_rows", keys.copy_chunk_rows, DEFAULT_COPY_CHUNK_ROWS, at)?,
            copy_in_chunks: keys.copy_in_chunks.unwrap_or(true),
        })
    }

    /// The options of `table`: its own, else the pipeline's.
    pub fn options_for(&self, table: &TableId) -> TableOptions {
        self.table_options.get(table).cloned().unwrap_or_else(|| self.default_options.clone())
    }

    /// The pipeline's tables: those it names, then those `found` in the schemas or databases it names
    /// (`found_in`, as said in the error: `schemas public, sales`), each once. A pipeline without any is an
    /// error.
    pub fn tables_with(&self, found: Vec<TableId>, found_in: &str) -> Result<Vec<TableId>> {
        let mut tables = self.tables.clone();
        for id in found {
            if !tables.contains(&id) {
                tables.push(id);
            }
        }
        if tables.is_empty() {
            return Err(Error::config(format!("pipeline `{}`: {found_in} hold no tables", self.pipeline)));
        }
        Ok(tables)
    }

    /// The engine's commit budget.
    pub fn budget(&self) -> CommitBudget {
        CommitBudget { commit_interval: self.commit_interval, batch_bytes: self.batch_bytes }
    }
}
