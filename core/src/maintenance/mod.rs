//! Table maintenance: what keeps a table that a continuous pipeline commits to every second quick to open and
//! to read. One pass ([`maintain_table`]) does, in order:
//!
//! 1. **Compaction** ([`compaction`]): once the table has [`MaintenancePolicy::min_small_files`] files under a
//!    quarter of the target size, delta-rs's OPTIMIZE bin-packs them into files of about the target size, in
//!    one commit that changes no row (`dataChange: false`). Rows a deletion vector marks are left out of the
//!    new files (the rewrite reads through the vectors).
//! 2. **VACUUM** ([`vacuum`]): data files no version within the retention uses (removed by a compaction, a
//!    merge or an overwrite more than `delta.deletedFileRetentionDuration` ago, 7 days by default) and files no
//!    commit ever referenced (left by a crash between a file's write and its commit) older than that, are
//!    deleted. Directories starting with `_` (the connector's `_connector`, `_delta_log`) are left alone.
//! 3. **Checkpoint** ([`log_cleanup`]): a checkpoint at the table's current version, unless the newest one is
//!    there already, so a reader replays the commits after it only. Commits write one themselves every
//!    `delta.checkpointInterval` commits (100 by default; delta-rs's post-commit hook on the commit path).
//! 4. **Expired log clean-up** ([`log_cleanup`]): commit files older than `delta.logRetentionDuration` (30
//!    days by default) and before the newest checkpoint are deleted, as Delta's writers do.

mod cadence;
mod compaction;
mod log_cleanup;
mod vacuum;

pub use cadence::MaintenanceCadence;
pub(crate) use log_cleanup::newest_checkpoint;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use deltalake::{DeltaTable, DeltaTableBuilder};
use serde::Serialize;
use tracing::warn;

use crate::delta::{Destination, recorded_app_ids};
use crate::error::{Error, Result};
use crate::schema::TableId;

/// Compaction's target file size when the table sets none (`delta.targetFileSize`): the size the sink writes.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = crate::options::DEFAULT_TARGET_FILE_SIZE;
/// Small files a table may hold before a pass compacts them.
pub const DEFAULT_MIN_SMALL_FILES: usize = 16;

/// What a pass does and when.
#[derive(Debug, Clone)]
pub struct MaintenancePolicy {
    /// The size compaction aims at; files under a quarter of it are small. `None`: the table's
    /// `delta.targetFileSize`, else [`DEFAULT_TARGET_FILE_BYTES`].
    pub target_file_bytes: Option<u64>,
    /// Small files that make a pass compact; fewer are left as they are.
    pub min_small_files: usize,
    /// How long files no current version uses are kept for readers of older versions (and for time travel)
    /// before VACUUM deletes them. `None`: the table's `delta.deletedFileRetentionDuration` (7 days by default).
    pub vacuum_retention: Option<Duration>,
    /// Whether the pass ends with VACUUM (a full VACUUM lists the table's directory).
    pub vacuum: bool,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        MaintenancePolicy {
            target_file_bytes: None,
            min_small_files: DEFAULT_MIN_SMALL_FILES,
            vacuum_retention: None,
            vacuum: true,
        }
    }
}

/// What one pass did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceReport {
    pub table: TableId,
    pub files_before: usize,
    pub small_files_before: usize,
    pub files_after: usize,
    /// Files compaction removed and the files it wrote in their place (0 and 0: not compacted).
    pub compacted_files: usize,
    pub written_files: usize,
    /// The version a checkpoint was written at, if one was.
    pub checkpoint_version: Option<u64>,
    pub expired_log_files: usize,
    pub vacuumed_files: usize,
    pub duration_ms: u64,
}

impl MaintenanceReport {
    /// The pass in words, for the console and the event log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.compacted_files > 0 {
            parts.push(format!("compacted {} small files into {}", self.compacted_files, self.written_files));
        }
        if let Some(version) = self.checkpoint_version {
            parts.push(format!("checkpoint at version {version}"));
        }
        if self.expired_log_files > 0 {
            parts.push(format!("removed {} expired log files", self.expired_log_files));
        }
        if self.vacuumed_files > 0 {
            parts.push(format!("vacuumed {} unused data files", self.vacuumed_files));
        }
        if parts.is_empty() {
            parts.push("nothing to do".to_string());
        }
        format!("{} (files {} → {})", parts.join("; "), self.files_before, self.files_after)
    }
}

/// Runs one maintenance pass over `table`, loaded at its newest version; returns the table as the pass left it.
/// The caller makes sure no writer of this connector commits to the table meanwhile (the pipeline's lease):
/// Delta's conflict check would refuse a merge that meets a compaction, and the pipeline would retry it.
pub async fn maintain_table(
    table: DeltaTable,
    table_id: &TableId,
    policy: &MaintenancePolicy,
) -> Result<(DeltaTable, MaintenanceReport)> {
    let started = Instant::now();
    let target = compaction::target_file_bytes(&table, policy)?;
    let before = compaction::FileCounts::of(&table, target)?;
    let (table, compacted) = if before.small >= policy.min_small_files.max(2) {
        compaction::compact(table, target).await?
    } else {
        (table, compaction::Compacted::default())
    };
    let (table, vacuumed_files) =
        if policy.vacuum { vacuum::vacuum(table, policy.vacuum_retention).await? } else { (table, 0) };
    // Last, so the checkpoint covers the pass's own commits (compaction's, VACUUM's start and end).
    let (table, checkpoint_version) = log_cleanup::checkpoint(table).await?;
    let expired_log_files = log_cleanup::remove_expired_logs(&table).await?;
    let after = compaction::FileCounts::of(&table, target)?;
    let report = MaintenanceReport {
        table: table_id.clone(),
        files_before: before.all,
        small_files_before: before.small,
        files_after: after.all,
        compacted_files: compacted.removed,
        written_files: compacted.added,
        checkpoint_version,
        expired_log_files,
        vacuumed_files,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok((table, report))
}

/// Runs a pass for a writer that goes on committing to `table`: on success the table as the pass left it, on
/// failure the table reloaded (part of the pass may have committed, and the next commit must build on the table
/// as it now is) with the error, which the caller logs: a failed pass never fails the writer.
pub async fn maintain_or_reload(
    table: DeltaTable,
    table_id: &TableId,
    policy: &MaintenancePolicy,
) -> (DeltaTable, Result<MaintenanceReport>) {
    match maintain_table(table.clone(), table_id, policy).await {
        Ok((maintained, report)) => (maintained, Ok(report)),
        Err(error) => {
            let mut table = table;
            if let Err(cause) = table.update_state().await {
                warn!(table = %table_id, %cause, "could not reload the table after a failed maintenance pass");
            }
            (table, Err(error))
        }
    }
}

/// The Delta table `table_id` of `destination` at its newest version; `None` if there is none.
pub async fn open_table(
    destination: &Destination,
    table_id: &TableId,
    storage_options: &HashMap<String, String>,
) -> Result<Option<DeltaTable>> {
    let url = destination.table_url(table_id)?;
    if url.to_file_path().is_ok_and(|path| !path.join("_delta_log").is_dir()) {
        return Ok(None);
    }
    let mut table = DeltaTableBuilder::from_url(url.clone())
        .map(|builder| builder.with_storage_options(storage_options.clone()))
        .and_then(|builder| builder.build())
        .map_err(|cause| Error::destination(format!("cannot open {url}"), cause))?;
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
        Err(cause) => Err(Error::destination(format!("cannot load the Delta table at {url}"), cause)),
    }
}

/// The pipelines that have committed to `table` (from the cursor records each keeps beside it, named
/// `<pipeline>/<table>`): whose leases keep their writers away while it is maintained.
pub async fn writing_pipelines(table: &DeltaTable, table_id: &TableId) -> Result<Vec<String>> {
    let suffix = format!("/{table_id}");
    let mut pipelines: Vec<String> = recorded_app_ids(table)
        .await?
        .into_iter()
        .filter_map(|app_id| app_id.strip_suffix(&suffix).map(str::to_string))
        .collect();
    pipelines.sort();
    pipelines.dedup();
    Ok(pipelines)
}
