//! `connector status`: what the Delta log says about each table — version, size, and every pipeline's
//! committed cursor. Read from the log itself, so it is true even when no connector is running.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use deltalake::DeltaTableBuilder;
use futures::TryStreamExt;
use serde::Serialize;

use crate::cursor::TableCursor;
use crate::delta::{APP_ID_KEY, CURSOR_KEY, Destination, read_committed_state, recorded_app_ids};
use crate::error::{Error, Result};
use crate::maintenance::newest_checkpoint;
use crate::schema::TableId;

/// Commits read back when looking for pipeline cursors.
const STATUS_HISTORY_DEPTH: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub table: TableId,
    pub url: String,
    pub version: u64,
    pub last_commit_at: Option<DateTime<Utc>>,
    pub file_count: usize,
    pub byte_count: u64,
    /// Rows according to file statistics (`None` if some file has none).
    pub row_count: Option<u64>,
    /// The newest compaction (an OPTIMIZE commit) among the newest [`STATUS_HISTORY_DEPTH`] commits.
    pub last_compacted_at: Option<DateTime<Utc>>,
    /// The version of the newest checkpoint.
    pub checkpoint_version: Option<u64>,
    pub pipelines: Vec<PipelineProgress>,
}

/// The newest cursor a pipeline committed to the table.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineProgress {
    pub app_id: String,
    pub cursor: TableCursor,
    pub committed_at: Option<DateTime<Utc>>,
}

/// Reads the status of one table; `None` if there is no Delta table at its location.
pub async fn table_status(destination: &Destination, table: &TableId) -> Result<Option<TableStatus>> {
    let url = destination.table_url(table)?;
    let mut delta = DeltaTableBuilder::from_url(url.clone())
        .and_then(|builder| builder.build())
        .map_err(|cause| Error::destination(format!("cannot open {url}"), cause))?;
    match delta.load().await {
        Ok(()) => {}
        Err(deltalake::DeltaTableError::NotATable(_)) => return Ok(None),
        Err(deltalake::DeltaTableError::KernelError(_)) if url.scheme() == "file" => return Ok(None),
        Err(cause) => return Err(Error::destination(format!("cannot load {url}"), cause)),
    }
    let state = delta.snapshot().map_err(|cause| Error::destination(format!("cannot read {url}"), cause))?;
    // A file's record count includes the rows its deletion vector removes.
    let live_rows = |file: &deltalake::kernel::LogicalFileView| {
        let deleted = file.deletion_vector_descriptor().map_or(0, |dv| dv.cardinality as usize);
        file.num_records().map(|rows| rows.saturating_sub(deleted))
    };
    let files: Vec<_> = state.log_data().iter().map(|file| (file.size(), live_rows(&file))).collect();
    let row_count = files.iter().map(|(_, rows)| rows.map(|rows| rows as u64)).sum::<Option<u64>>();
    let mut pipelines: BTreeMap<String, PipelineProgress> = BTreeMap::new();
    let mut last_commit_at = None;
    let mut last_compacted_at = None;
    let mut history = delta.history(Some(STATUS_HISTORY_DEPTH));
    while let Some(commit) = history
        .try_next()
        .await
        .map_err(|cause| Error::destination(format!("cannot read the history of {url}"), cause))?
    {
        let committed_at = commit.timestamp.and_then(|millis| Utc.timestamp_millis_opt(millis).single());
        last_commit_at = last_commit_at.or(committed_at);
        if last_compacted_at.is_none() && commit.operation.as_deref() == Some("OPTIMIZE") {
            last_compacted_at = committed_at;
        }
        let (Some(app_id), Some(cursor)) =
            (commit.info.get(APP_ID_KEY).and_then(|id| id.as_str()), commit.info.get(CURSOR_KEY))
        else {
            continue;
        };
        if pipelines.contains_key(app_id) {
            continue;
        }
        if let Ok(cursor) = serde_json::from_value::<TableCursor>(cursor.clone()) {
            pipelines.insert(app_id.to_string(), PipelineProgress { app_id: app_id.to_string(), cursor, committed_at });
        }
    }
    // Pipelines whose last commit is further back than the history read (other writers' commits since, or the
    // log cleaned up): their cursor is found by the transaction version checkpoints keep.
    for app_id in recorded_app_ids(&delta).await? {
        if pipelines.contains_key(&app_id) {
            continue;
        }
        if let Some(state) = read_committed_state(&delta, &app_id).await? {
            let progress = PipelineProgress { app_id: app_id.clone(), cursor: state.cursor, committed_at: None };
            pipelines.insert(app_id, progress);
        }
    }
    Ok(Some(TableStatus {
        table: table.clone(),
        url: url.to_string(),
        version: delta.version().unwrap_or_default(),
        last_commit_at,
        file_count: files.len(),
        byte_count: files.iter().map(|(size, _)| u64::try_from(*size).unwrap_or_default()).sum(),
        row_count,
        last_compacted_at,
        checkpoint_version: newest_checkpoint(&delta).await?,
        pipelines: pipelines.into_values().collect(),
    }))
}

/// Tables under a local destination: every `<namespace>/<table>` directory holding a `_delta_log`, but the
/// connector's own (the event log, under `_connector`).
pub fn local_tables(root: &Path) -> Result<Vec<TableId>> {
    let mut tables = Vec::new();
    let entries = |dir: &Path| {
        std::fs::read_dir(dir).map_err(|cause| Error::config(format!("cannot list {}", dir.display())).caused_by(cause))
    };
    let own = |entry: &std::fs::DirEntry| entry.file_name() == crate::event_log::EVENTS_NAMESPACE;
    for namespace in entries(root)?.flatten().filter(|entry| entry.path().is_dir() && !own(entry)) {
        for table in entries(&namespace.path())?.flatten() {
            if table.path().join("_delta_log").is_dir() {
                tables.push(TableId::new(namespace.file_name().to_string_lossy(), table.file_name().to_string_lossy()));
            }
        }
    }
    tables.sort();
    Ok(tables)
}
