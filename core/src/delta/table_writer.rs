//! One Delta table of a pipeline and the cursor committed to it: snapshots, change batches (merged on a key or
//! appended as a changelog), parts of large transactions, each commit carrying the table's cursor.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::{DeltaTable, DeltaTableError};
use tracing::debug;

use super::commit_state::{self, CommittedState};
use super::cursor_record;
use super::evolution::source_fields;
use super::file_ledger;
use super::known_tables::KnownTables;
use super::merge::MergeCounts;
use super::merge_source::MergeSource;
use super::sink::mode_columns;
use super::snapshot_writer::SnapshotWriter;
use super::{changelog, file_merge, file_selection, merge, unchanged_cells};
use crate::change::ChangeBatch;
use crate::change_buffer::TakenRows;
use crate::cursor::TableCursor;
use crate::engine::ChunkedCopy;
use crate::error::{Error, Result};
use crate::event_log::{Event, EventKind, EventLog};
use crate::ingested_file::IngestedFile;
use crate::maintenance::MaintenanceCadence;
use crate::metadata_column::METADATA_PREFIX;
use crate::options::{DeleteMode, TableOptions};
use crate::position::SourcePosition;
use crate::schema::{TableId, TableSchema};

/// What applying a change batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Every change was at or below the committed cursor: nothing written.
    AlreadyCommitted,
    Merged(MergeCounts),
    Appended {
        rows: usize,
    },
}

/// One Delta table of a pipeline, with the cursor committed to it.
#[derive(Debug)]
pub struct DeltaTableWriter {
    pub(super) table: DeltaTable,
    pub(super) app_id: String,
    pub(super) table_id: TableId,
    pub(super) options: TableOptions,
    pub(super) committed: Option<CommittedState>,
    pub(super) key_columns: Vec<String>,
    /// The sink's record of its tables, told of each commit.
    pub(super) known: KnownTables,
    /// Files whose last rows the next commit lands, recorded in the table's file ledger with it.
    pub(super) landing_files: Vec<IngestedFile>,
    /// Where each commit is told.
    pub(super) events: EventLog,
    /// When the commit under way began (its cursor recorded), for the event log's duration.
    pub(super) commit_started: std::sync::Mutex<Option<Instant>>,
    /// When this writer maintains the table after a commit ([`table_maintenance`](super::table_maintenance)).
    pub(super) maintenance: MaintenanceCadence,
    /// When the source wrote the newest change the next commit lands, for its lag (where the source says).
    pub(super) source_committed_at: Option<DateTime<Utc>>,
}

/// What a commit landed, for the event log: rows, and bytes of new files where known.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CommitSize {
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

impl CommitSize {
    pub(super) fn merged(counts: &MergeCounts) -> Self {
        CommitSize { rows: Some((counts.inserted + counts.updated + counts.deleted) as u64), bytes: None }
    }
}

impl DeltaTableWriter {
    /// The last cursor committed by this pipeline, `None` for a table it never wrote.
    pub fn cursor(&self) -> Option<&TableCursor> {
        self.committed.as_ref().map(|state| &state.cursor)
    }

    pub fn committed_state(&self) -> Option<&CommittedState> {
        self.committed.as_ref()
    }

    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    pub fn table_id(&self) -> &TableId {
        &self.table_id
    }

    /// The table's source columns as Delta stores them now (metadata columns left out): what a source whose
    /// columns grow with its records (an API, a JSON topic) starts from.
    pub fn source_columns(&self) -> Result<Vec<Field>> {
        let arrow_schema = self.arrow_schema()?;
        Ok(arrow_schema
            .fields()
            .iter()
            .filter(|field| !field.name().starts_with(METADATA_PREFIX))
            .map(|field| field.as_ref().clone())
            .collect())
    }

    /// Every file this pipeline's commits landed in the table (see [`land_files_with_next_commit`]). It also
    /// removes the records of commits that never happened, so a file source reads it before its first commit.
    ///
    /// [`land_files_with_next_commit`]: Self::land_files_with_next_commit
    pub async fn ingested_files(&self) -> Result<Vec<IngestedFile>> {
        let committed = self.committed.as_ref().map(|state| state.txn_version);
        file_ledger::read(&self.table, &self.app_id, committed).await
    }

    /// Records `files` in the table's file ledger with the next commit, which lands their last rows: the
    /// commit makes them ingested, or, if it never happens, they are not.
    pub fn land_files_with_next_commit(&mut self, files: Vec<IngestedFile>) {
        self.landing_files = files;
    }

    /// Starts streaming snapshot rows of `schema` taken at `position` (the source position the snapshot is
    /// consistent with), first adding columns the source gained since the Delta table was created.
    pub async fn snapshot_writer(
        &mut self,
        schema: &TableSchema,
        position: &SourcePosition,
        taken_at: DateTime<Utc>,
    ) -> Result<SnapshotWriter<'_>> {
        self.evolve(schema).await?;
        SnapshotWriter::new(self, position, taken_at)
    }

    /// Empties the table and records `cursor` (a snapshot starting over) in one commit: used by resync.
    pub async fn restart_snapshot(&mut self, cursor: TableCursor) -> Result<()> {
        let (version, properties) = self.commit_properties_for(&cursor).await?;
        // A file source's table is copied again by ingesting every file again.
        file_ledger::void_before_resync(&self.table, &self.app_id, version).await?;
        // A DELETE without predicate removes every file in one commit that also carries the new cursor.
        let (table, _) = self
            .table
            .clone()
            .delete()
            .with_commit_properties(properties)
            .await
            .map_err(|cause| self.destination_error("cannot empty the table for a new snapshot", cause))?;
        self.table = table;
        self.record_commit(version, cursor, CommitSize::default()).await;
        Ok(())
    }

    /// Applies a batch of changes in one commit that also records the batch's end position. Transactions
    /// at or below the committed cursor are skipped, so replaying a batch after a crash is harmless.
    pub async fn apply_changes(&mut self, schema: &TableSchema, batch: &ChangeBatch) -> Result<ApplyOutcome> {
        let batch = match &self.committed {
            Some(state) => {
                // A copy in chunks takes the changes to the rows it copied so far; a copy in one piece, none.
                if !state.cursor.snapshot_complete() && !ChunkedCopy::is_under_way(&state.cursor) {
                    return Err(Error::state(format!(
                        "{} still has an unfinished snapshot; changes can only be applied after it completes",
                        self.table_id
                    )));
                }
                match batch.after(schema, &state.cursor.position)? {
                    Some(remaining) => remaining,
                    None => {
                        // Nothing is committed: the batch's source time must not be told of the next commit.
                        self.source_committed_at = None;
                        return Ok(ApplyOutcome::AlreadyCommitted);
                    }
                }
            }
            None => batch.clone(),
        };
        let cursor = TableCursor {
            position: batch.end_position().clone(),
            snapshot: self.committed.as_ref().and_then(|state| state.cursor.snapshot.clone()),
            parts_of: None,
        };
        self.write_changes(schema, &batch, cursor).await
    }

    /// Applies rows taken from a change buffer: whole transactions ([`apply_changes`](Self::apply_changes)) or,
    /// with `part`, the first rows of an open one ([`apply_partial_transaction`](Self::apply_partial_transaction)),
    /// after filling the cells the source left unchanged from the rows the table stores. Returns the number of
    /// rows with the outcome.
    pub async fn apply_taken(&mut self, mut taken: TakenRows, part: bool) -> Result<(usize, ApplyOutcome)> {
        let replaying_parts = self.committed.as_ref().is_some_and(|state| state.cursor.parts_of.is_some());
        let rows = unchanged_cells::fill_unchanged(
            &self.table,
            &taken.schema,
            taken.rows.clone(),
            &mut taken.operations,
            &taken.unchanged,
            replaying_parts,
        )
        .await?;
        let (schema, batch) = TakenRows { rows, unchanged: Vec::new(), ..taken }.into_batch()?;
        let outcome = if part {
            self.apply_partial_transaction(&schema, &batch).await?
        } else {
            self.apply_changes(&schema, &batch).await?
        };
        Ok((batch.len(), outcome))
    }

    /// Whether [`apply_partial_transaction`](Self::apply_partial_transaction) may be used: applying the same
    /// rows twice must leave the same table, which holds for merges in `hard` and `soft` mode, not for
    /// history versions or changelog rows.
    pub fn accepts_partial_transactions(&self) -> bool {
        !self.key_columns.is_empty() && self.options.delete_mode != DeleteMode::History
    }

    /// Applies the first rows of a transaction too large to hold in memory, in a commit that keeps the
    /// committed cursor where it is: until the transaction's last rows are applied with
    /// [`apply_changes`](Self::apply_changes), a crash replays the whole transaction, and the merge makes
    /// the replay harmless. The cursor notes the parts (`TableCursor::parts_of`): a replay may meet an update
    /// of a row that a committed part deleted, which it then applies as that later delete (see
    /// `unchanged_cells`). Readers may see a transaction in parts.
    pub async fn apply_partial_transaction(
        &mut self,
        schema: &TableSchema,
        batch: &ChangeBatch,
    ) -> Result<ApplyOutcome> {
        if !self.accepts_partial_transactions() {
            return Err(Error::state(format!(
                "{} cannot take part of a transaction: its rows are not idempotent in its mode",
                self.table_id
            )));
        }
        let Some(state) = &self.committed else {
            return Err(Error::state(format!("{} has no committed snapshot to apply changes to", self.table_id)));
        };
        let cursor = TableCursor { parts_of: Some(batch.end_position().clone()), ..state.cursor.clone() };
        self.write_changes(schema, batch, cursor).await
    }

    async fn write_changes(
        &mut self,
        schema: &TableSchema,
        batch: &ChangeBatch,
        cursor: TableCursor,
    ) -> Result<ApplyOutcome> {
        self.evolve(schema).await?;
        let (version, properties) = self.commit_properties_for(&cursor).await?;
        let table_schema = self.arrow_schema()?;
        let synced_at = Utc::now();
        let outcome = if self.key_columns.is_empty() {
            let (table, rows) =
                changelog::append_changes(self.table.clone(), &table_schema, batch, properties, synced_at)
                    .await
                    .map_err(|cause| self.destination_error("cannot append changes", cause))?;
            self.table = table;
            ApplyOutcome::Appended { rows }
        } else {
            let source =
                MergeSource::build(batch, &table_schema, &self.key_columns, self.options.delete_mode, synced_at)
                    .map_err(|cause| self.destination_error("cannot prepare the changes to merge", cause))?;
            let state =
                self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table", cause))?;
            let merged = match file_selection::unreadable_layout(state) {
                None => {
                    file_merge::merge_by_file_rewrite(file_merge::FileMergeRequest {
                        table: &self.table,
                        source,
                        key_columns: &self.key_columns,
                        mode: self.options.delete_mode,
                        commit: properties,
                        target_file_size: self.options.target_file_size,
                    })
                    .await
                }
                Some(layout) => {
                    debug!(table = %self.table_id, layout, "merging with delta-rs's MERGE: files need its reader");
                    merge::merge_changes(merge::MergeRequest {
                        table: self.table.clone(),
                        source,
                        key_columns: &self.key_columns,
                        mode: self.options.delete_mode,
                        commit: properties,
                    })
                    .await
                }
            };
            let (table, counts) = merged.map_err(|cause| self.destination_error("cannot merge changes", cause))?;
            self.table = table;
            ApplyOutcome::Merged(counts)
        };
        debug!(table = %self.table_id, version, ?outcome, "applied changes");
        let size = match &outcome {
            ApplyOutcome::Merged(counts) => CommitSize::merged(counts),
            ApplyOutcome::Appended { rows } => CommitSize { rows: Some(*rows as u64), bytes: None },
            ApplyOutcome::AlreadyCommitted => CommitSize::default(),
        };
        self.record_commit(version, cursor, size).await;
        Ok(outcome)
    }

    /// Notes when the source wrote the newest change the next commit lands: that commit's event then says how
    /// far behind the source it was (`lag_ms`, `connector_source_lag_seconds`).
    pub fn note_source_commit(&mut self, written_at: DateTime<Utc>) {
        self.source_committed_at = Some(written_at);
    }

    /// The pipeline writing this table (its app id is `pipeline/table`), for the commands errors suggest.
    pub fn pipeline(&self) -> &str {
        self.app_id.rsplit_once('/').map_or(self.app_id.as_str(), |(pipeline, _)| pipeline)
    }

    pub(super) fn delta_schema(&self) -> Result<StructType> {
        let snapshot =
            self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table schema", cause))?;
        Ok(snapshot.schema().as_ref().clone())
    }

    /// The table's Arrow schema as Delta stores it.
    pub(super) fn arrow_schema(&self) -> Result<SchemaRef> {
        let delta_schema = self.delta_schema()?;
        let schema: Schema = (&delta_schema).try_into_arrow().map_err(|cause| {
            Error::schema(&self.table_id, format!("the Delta schema of {} has no Arrow equivalent", self.table_id))
                .caused_by(cause)
        })?;
        Ok(Arc::new(schema))
    }

    /// The metadata columns of the table's mode must exist (a table created in another mode cannot switch).
    pub(super) fn check_mode_columns(&self) -> Result<()> {
        let delta_schema = self.delta_schema()?;
        let keyed = !self.key_columns.is_empty();
        for name in mode_columns(&self.options, keyed) {
            if delta_schema.field(name).is_none() {
                return Err(Error::config(format!(
                    "{} was created without `{name}`, which delete mode `{:?}` needs; keep the mode the table was \
                     created with, or resync the table into a new destination",
                    self.table_id, self.options.delete_mode
                ))
                .for_table(&self.table_id));
            }
        }
        for key in &self.key_columns {
            if !source_fields(&delta_schema).any(|field| field.name() == key) {
                return Err(Error::config(format!("key column `{key}` is not a column of {}", self.table_id))
                    .for_table(&self.table_id));
            }
        }
        Ok(())
    }

    /// The transaction version and commit properties of the next commit, which will record `cursor`; the cursor
    /// is recorded apart under that version first ([`cursor_record`]), so the commit makes it the table's.
    pub(super) async fn commit_properties_for(&self, cursor: &TableCursor) -> Result<(i64, CommitProperties)> {
        let version = commit_state::next_txn_version(self.committed.as_ref(), cursor);
        let properties = commit_state::commit_properties(&self.app_id, version, cursor)?;
        *self.commit_started.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        cursor_record::write(&self.table, &self.app_id, version, cursor).await?;
        if !self.landing_files.is_empty() {
            file_ledger::write(&self.table, &self.app_id, version, &self.landing_files).await?;
        }
        Ok((version, properties))
    }

    /// Notes a successful commit of transaction `txn_version`, dropping the cursor record of the one before, and
    /// writes it to the event log.
    pub(super) async fn record_commit(&mut self, txn_version: i64, cursor: TableCursor, size: CommitSize) {
        let started = self.commit_started.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let mut event = Event::new(self.pipeline(), EventKind::Commit).table(&self.table_id);
        event.rows = size.rows;
        event.bytes = size.bytes;
        event.delta_version = self.table.version().and_then(|version| i64::try_from(version).ok());
        event.position = Some(cursor.position.to_string());
        event.duration = started.map(|started| started.elapsed());
        event.lag = self.source_committed_at.take().map(|at| (Utc::now() - at).to_std().unwrap_or_default());
        self.events.record(event);
        if let Some(previous) = self.committed.as_ref().map(|state| state.txn_version)
            && previous != txn_version
        {
            cursor_record::forget(&self.table, &self.app_id, previous).await;
        }
        self.committed = Some(CommittedState { txn_version, cursor });
        self.landing_files.clear();
        self.known.remember(&self.table_id, &self.table, self.committed.as_ref());
        self.maintain_if_due().await;
    }

    pub(super) fn destination_error(&self, what: &str, cause: DeltaTableError) -> Error {
        Error::destination(format!("{what} for {} at {}", self.table_id, self.table.table_url()), cause)
            .for_table(&self.table_id)
    }
}
