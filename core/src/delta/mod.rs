//! The Delta Lake sink: one Delta table per source table at `<dest>/<namespace>/<table>`, written exactly
//! once. See `ARCHITECTURE.md` ("Exactly once", "Applying changes") for the contract this implements.

mod changelog;
mod column_compression;
mod commit_state;
mod cursor_advance;
mod deletion_vectors;
mod evolution;
mod file_merge;
mod file_selection;
mod key_ranges;
mod location;
mod merge;
mod merge_commit;
mod merge_source;
mod parallel_apply;
mod reduce;
mod snapshot_writer;
mod stored_rows;
mod table_copies;
mod table_protocol;
mod table_rows;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use deltalake::datafusion::prelude::{SessionContext, cast, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, StructType};
use deltalake::logstore::object_store::ObjectStore;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use futures::{StreamExt, TryStreamExt};
use tracing::{debug, info};

pub use column_compression::{ByteArrayEncoding, parquet_properties_for};
pub use commit_state::CommittedState;
pub(crate) use commit_state::{APP_ID_KEY, CURSOR_KEY};
pub use location::Destination;
pub use merge::MergeCounts;
use merge_source::MergeSource;
pub use parallel_apply::apply_each;
pub use snapshot_writer::SnapshotWriter;
pub use table_copies::copy_in_parallel;

use crate::change::ChangeBatch;
use crate::cursor::TableCursor;
use crate::error::{Error, Result};
use crate::metadata_column;
use crate::options::{DeleteMode, TableOptions};
use crate::position::SourcePosition;
use crate::schema::{EarlierRows, TableId, TableSchema};
use evolution::{EvolutionPlan, delta_type_of, plan_evolution, source_fields};

/// Whether the table's `_delta_log/` holds any object: a table whose log is empty does not exist yet.
async fn has_log(table: &DeltaTable) -> Result<bool> {
    let log_store = table.log_store();
    let first = log_store.object_store(None).list(Some(log_store.log_path())).next().await;
    match first {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(cause)) => Err(Error::destination(
            format!("cannot list the Delta log of {}", table.table_url()),
            DeltaTableError::ObjectStore { source: cause },
        )),
    }
}

/// How many tables [`DeltaSink::open_tables`] opens at once: enough to hide an object store's latency, few
/// enough not to be throttled by it.
const TABLES_OPENED_AT_ONCE: usize = 16;

/// Opens and creates the Delta tables of one pipeline.
#[derive(Debug, Clone)]
pub struct DeltaSink {
    destination: Destination,
    pipeline: String,
    storage_options: HashMap<String, String>,
    /// An object store rooted at `/` of the destination's scheme, replacing the one built from the URL.
    object_store: Option<Arc<dyn ObjectStore>>,
}

impl DeltaSink {
    /// `storage_options` reach the object store (for S3 the `AWS_*` environment variables are read too).
    pub fn new(
        destination: Destination,
        pipeline: impl Into<String>,
        storage_options: HashMap<String, String>,
    ) -> Self {
        DeltaSink { destination, pipeline: pipeline.into(), storage_options, object_store: None }
    }

    /// Writes through `store` (rooted at `/`) instead of the store derived from the destination URL:
    /// for stores configured in code, or wrappers that inject faults in tests.
    pub fn with_object_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.object_store = Some(store);
        self
    }

    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// Loads the table, or creates it from `schema` if it does not exist yet, and reads the cursor this
    /// pipeline committed to it.
    pub async fn open_table(&self, schema: &TableSchema, options: TableOptions) -> Result<DeltaTableWriter> {
        let (url, mut table, exists) = self.load(&schema.id, true).await?;
        if !exists {
            table = create_table(table, schema, &options).await?;
            info!(table = %schema.id, url = %url, "created delta table");
        }
        let key_columns = options.key.clone().unwrap_or_else(|| schema.primary_key.clone());
        let writer = self.writer_for(table, &schema.id, options, key_columns).await?;
        writer.check_mode_columns()?;
        Ok(writer)
    }

    /// [`open_table`](Self::open_table) for each of `tables`, several at a time, in their order: opening reads
    /// a table's log (on an object store, a listing and a few reads), so a pipeline of a thousand tables would
    /// otherwise spend its start waiting on them one by one.
    pub async fn open_tables(&self, tables: Vec<(&TableSchema, TableOptions)>) -> Result<Vec<DeltaTableWriter>> {
        // The futures are made before the stream, not by a closure inside it: a stream type naming such a
        // closure defeats the compiler's proof that the pipelines' futures are `Send`.
        let opening: Vec<_> = tables.into_iter().map(|(schema, options)| self.open_table(schema, options)).collect();
        futures::stream::iter(opening).buffered(TABLES_OPENED_AT_ONCE).try_collect().await
    }

    /// Empties an existing table and marks its snapshot as not done, in one commit, so the pipeline's next sync
    /// copies it again. Returns false when the table does not exist.
    pub async fn request_resync(&self, table_id: &TableId) -> Result<bool> {
        let (_, table, exists) = self.load(table_id, false).await?;
        if !exists {
            return Ok(false);
        }
        let mut writer = self.writer_for(table, table_id, TableOptions::default(), Vec::new()).await?;
        let position = match writer.cursor() {
            Some(cursor) => cursor.position.clone(),
            None => {
                return Err(Error::config(format!(
                    "{table_id} holds no progress of pipeline `{}`; check --pipeline (see `connector status`)",
                    self.pipeline
                )));
            }
        };
        writer.restart_snapshot(TableCursor::restarting(position)).await?;
        Ok(true)
    }

    /// The table at `table_id`'s location, and whether it exists (creating its directory if asked).
    async fn load(&self, table_id: &TableId, create_directory: bool) -> Result<(url::Url, DeltaTable, bool)> {
        let url = self.destination.table_url(table_id)?;
        if let (true, Ok(path)) = (create_directory, url.to_file_path()) {
            std::fs::create_dir_all(&path).map_err(|cause| {
                Error::config(format!("cannot create the table directory {}", path.display()))
                    .caused_by(cause)
                    .for_table(table_id)
            })?;
        }
        let mut table = DeltaTableBuilder::from_url(url.clone())
            .map(|builder| match &self.object_store {
                Some(store) => builder.with_storage_backend(store.clone(), url.clone()),
                None => builder.with_storage_options(self.storage_options.clone()),
            })
            .and_then(|builder| builder.build())
            .map_err(|cause| Error::destination(format!("cannot open {url}"), cause).for_table(table_id))?;
        // A local table without a log does not exist yet: say so without asking deltalake, which logs the
        // failed load as an error.
        if url.to_file_path().is_ok_and(|path| !path.join("_delta_log").is_dir()) {
            return Ok((url, table, false));
        }
        // The same on an object store, at the cost of one listing (a thousand new tables would otherwise log
        // a thousand errors on a pipeline's first run).
        if url.scheme() != "file" && !has_log(&table).await.map_err(|cause| cause.for_table(table_id))? {
            return Ok((url, table, false));
        }
        match table.load().await {
            Ok(()) => Ok((url, table, true)),
            Err(DeltaTableError::NotATable(_)) => Ok((url, table, false)),
            Err(DeltaTableError::KernelError(_)) if !create_directory && url.scheme() == "file" => {
                Ok((url, table, false))
            }
            Err(cause) => {
                Err(Error::destination(format!("cannot load the Delta table at {url}"), cause).for_table(table_id))
            }
        }
    }

    async fn writer_for(
        &self,
        table: DeltaTable,
        table_id: &TableId,
        options: TableOptions,
        key_columns: Vec<String>,
    ) -> Result<DeltaTableWriter> {
        let app_id = format!("{}/{}", self.pipeline, table_id);
        let committed =
            commit_state::read_committed_state(&table, &app_id).await.map_err(|error| error.for_table(table_id))?;
        Ok(DeltaTableWriter { table, app_id, table_id: table_id.clone(), options, committed, key_columns })
    }
}

async fn create_table(table: DeltaTable, schema: &TableSchema, options: &TableOptions) -> Result<DeltaTable> {
    let mut fields = Vec::with_capacity(schema.columns.len() + 6);
    for column in &schema.columns {
        fields.push(StructField::new(&column.name, delta_type_of(&schema.id, &column.name, &column.data_type)?, true));
    }
    for name in mode_columns(options, schema.has_key() || options.key.is_some()) {
        let field = metadata_column::field(name);
        fields.push(StructField::new(name, delta_type_of(&schema.id, name, field.data_type())?, true));
    }
    let mut create = table.create();
    if options.deletion_vectors {
        create = create.with_configuration_property(TableProperty::EnableDeletionVectors, Some("true"));
    }
    create
        .with_columns(fields)
        .with_table_name(&schema.id.name)
        .with_comment(format!("{} captured by the connector", schema.id))
        .await
        .map_err(|cause| {
            Error::destination(format!("cannot create the Delta table for {}", schema.id), cause).for_table(&schema.id)
        })
}

/// Metadata columns a table carries in its mode.
fn mode_columns(options: &TableOptions, keyed: bool) -> Vec<&'static str> {
    use metadata_column::*;
    let mut columns = vec![OPERATION, POSITION, COMMIT_TIME, SYNCED_AT];
    if keyed {
        match options.delete_mode {
            DeleteMode::Hard => {}
            DeleteMode::Soft => columns.extend([DELETED, DELETED_AT]),
            DeleteMode::History => columns.extend([VALID_FROM, VALID_TO, IS_CURRENT]),
        }
    }
    columns
}

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
    table: DeltaTable,
    app_id: String,
    table_id: TableId,
    options: TableOptions,
    committed: Option<CommittedState>,
    key_columns: Vec<String>,
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
        let (version, properties) = self.commit_properties_for(&cursor)?;
        // A DELETE without predicate removes every file in one commit that also carries the new cursor.
        let (table, _) = self
            .table
            .clone()
            .delete()
            .with_commit_properties(properties)
            .await
            .map_err(|cause| self.destination_error("cannot empty the table for a new snapshot", cause))?;
        self.table = table;
        self.record_commit(version, cursor);
        Ok(())
    }

    /// Applies a batch of changes in one commit that also records the batch's end position. Transactions
    /// at or below the committed cursor are skipped, so replaying a batch after a crash is harmless.
    pub async fn apply_changes(&mut self, schema: &TableSchema, batch: &ChangeBatch) -> Result<ApplyOutcome> {
        let batch = match &self.committed {
            Some(state) => {
                if !state.cursor.snapshot_complete() {
                    return Err(Error::state(format!(
                        "{} still has an unfinished snapshot; changes can only be applied after it completes",
                        self.table_id
                    )));
                }
                match batch.after(schema, &state.cursor.position)? {
                    Some(remaining) => remaining,
                    None => return Ok(ApplyOutcome::AlreadyCommitted),
                }
            }
            None => batch.clone(),
        };
        let cursor = TableCursor {
            position: batch.end_position().clone(),
            snapshot: self.committed.as_ref().and_then(|state| state.cursor.snapshot.clone()),
        };
        self.write_changes(schema, &batch, cursor).await
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
    /// the replay harmless. Readers may see a transaction in parts.
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
        let cursor = state.cursor.clone();
        self.write_changes(schema, batch, cursor).await
    }

    async fn write_changes(
        &mut self,
        schema: &TableSchema,
        batch: &ChangeBatch,
        cursor: TableCursor,
    ) -> Result<ApplyOutcome> {
        self.evolve(schema).await?;
        let (version, properties) = self.commit_properties_for(&cursor)?;
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
        self.record_commit(version, cursor);
        Ok(outcome)
    }

    /// The pipeline writing this table (its app id is `pipeline/table`), for the commands errors suggest.
    fn pipeline(&self) -> &str {
        self.app_id.rsplit_once('/').map_or(self.app_id.as_str(), |(pipeline, _)| pipeline)
    }

    /// Brings the Delta schema in line with `schema`: adds new columns, widens widened ones (rewriting the
    /// table once), keeps dropped ones. A column added to the source after rows the table holds gets those rows'
    /// value in the same commit ([`EarlierRows`]). Incompatible changes stop the table with an actionable error.
    pub async fn evolve(&mut self, schema: &TableSchema) -> Result<()> {
        let delta_schema = self.delta_schema()?;
        let plan = plan_evolution(&self.table_id, self.pipeline(), &delta_schema, &schema.arrow_schema())?;
        if plan.is_empty() {
            return Ok(());
        }
        let mut filled = Vec::new();
        for field in &plan.added {
            let earlier_rows = schema
                .column_index(field.name())
                .map(|index| &schema.columns[index].earlier_rows)
                .unwrap_or(&EarlierRows::Null);
            match earlier_rows {
                EarlierRows::Null => {}
                EarlierRows::Value(value) => filled.push((field.name().to_string(), value.clone())),
                EarlierRows::Unknown(_) if !self.holds_rows()? => {}
                EarlierRows::Unknown(reason) => {
                    let pipeline = self.pipeline();
                    return Err(Error::schema(
                        &self.table_id,
                        format!(
                            "column `{}` was added to {} after rows the Delta table holds, and {reason}: the \
                             source's log does not show what those rows hold; resync the table \
                             (connector resync --pipeline {pipeline} --table {})",
                            field.name(),
                            self.table_id,
                            self.table_id
                        ),
                    ));
                }
            }
        }
        if plan.widened.is_empty() && filled.is_empty() {
            info!(table = %self.table_id, columns = ?plan.added.iter().map(|f| f.name()).collect::<Vec<_>>(), "adding columns");
            self.table = self
                .table
                .clone()
                .add_columns()
                .with_fields(plan.added.clone())
                .await
                .map_err(|cause| self.destination_error("cannot add columns", cause))?;
            return Ok(());
        }
        self.rewrite(&plan, &filled).await
    }

    /// Whether the table holds any data file (rows the source's log may not describe).
    fn holds_rows(&self) -> Result<bool> {
        let state = self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table", cause))?;
        Ok(state.log_data().num_files() > 0)
    }

    /// Rewrites the table in one commit (Delta readers see old or new, never both) with wider column types and
    /// added columns, those in `filled` holding the given value in every row.
    async fn rewrite(&mut self, plan: &EvolutionPlan, filled: &[(String, ScalarValue)]) -> Result<()> {
        info!(
            table = %self.table_id,
            widened = ?plan.widened.iter().map(|f| f.name()).collect::<Vec<_>>(),
            added = ?plan.added.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "rewriting the table for its new columns"
        );
        let context = SessionContext::new();
        let provider =
            self.table.table_provider().await.map_err(|cause| {
                Error::state(format!("cannot read {} to rewrite it", self.table_id)).caused_by(cause)
            })?;
        let delta_schema = self.delta_schema()?;
        let arrow_type = |field: &StructField| -> Result<ArrowType> {
            let arrow: Field = field.try_into_arrow().map_err(|cause| {
                Error::schema(&self.table_id, format!("column `{}` has no Arrow type", field.name())).caused_by(cause)
            })?;
            Ok(arrow.data_type().clone())
        };
        let mut projection = Vec::new();
        for field in delta_schema.fields() {
            let target = plan.widened.iter().find(|wide| wide.name() == field.name()).unwrap_or(field);
            projection.push(cast(col(quoted_column(field.name())), arrow_type(target)?).alias(field.name()));
        }
        for field in &plan.added {
            let value = filled
                .iter()
                .find(|(name, _)| name == field.name())
                .map_or(ScalarValue::Null, |(_, value)| value.clone());
            projection.push(cast(lit(value), arrow_type(field)?).alias(field.name()));
        }
        let plan = context
            .read_table(provider)
            .and_then(|frame| frame.select(projection))
            .map_err(|cause| Error::state(format!("cannot plan the rewrite of {}", self.table_id)).caused_by(cause))?
            .into_unoptimized_plan();
        let properties = match &self.committed {
            // Keep the cursor on top of the log so it is found without walking far back.
            Some(state) => commit_state::commit_properties(&self.app_id, state.txn_version, &state.cursor)?,
            None => CommitProperties::default(),
        };
        self.table = self
            .table
            .clone()
            .write(vec![])
            .with_input_plan(plan)
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_commit_properties(properties)
            .await
            .map_err(|cause| self.destination_error("cannot rewrite the table with its new columns", cause))?;
        Ok(())
    }

    fn delta_schema(&self) -> Result<StructType> {
        let snapshot =
            self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table schema", cause))?;
        Ok(snapshot.schema().as_ref().clone())
    }

    /// The table's Arrow schema as Delta stores it.
    fn arrow_schema(&self) -> Result<SchemaRef> {
        let delta_schema = self.delta_schema()?;
        let schema: Schema = (&delta_schema).try_into_arrow().map_err(|cause| {
            Error::schema(&self.table_id, format!("the Delta schema of {} has no Arrow equivalent", self.table_id))
                .caused_by(cause)
        })?;
        Ok(Arc::new(schema))
    }

    /// The metadata columns of the table's mode must exist (a table created in another mode cannot switch).
    fn check_mode_columns(&self) -> Result<()> {
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

    fn commit_properties_for(&self, cursor: &TableCursor) -> Result<(i64, CommitProperties)> {
        let version = commit_state::next_txn_version(self.committed.as_ref(), cursor);
        Ok((version, commit_state::commit_properties(&self.app_id, version, cursor)?))
    }

    fn record_commit(&mut self, txn_version: i64, cursor: TableCursor) {
        self.committed = Some(CommittedState { txn_version, cursor });
    }

    fn destination_error(&self, what: &str, cause: DeltaTableError) -> Error {
        Error::destination(format!("{what} for {} at {}", self.table_id, self.table.table_url()), cause)
            .for_table(&self.table_id)
    }
}

/// A column name as a DataFusion expression reads it: quoted, so case and punctuation are kept.
fn quoted_column(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
