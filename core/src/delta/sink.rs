//! Opening a pipeline's Delta tables: loading each (or creating it from the source's schema, with the
//! metadata columns of its mode) and reading the cursor the pipeline committed to it.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::kernel::StructField;
use deltalake::logstore::object_store::ObjectStore;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use futures::{StreamExt, TryStreamExt};
use tracing::info;

use super::commit_state::{self, CommittedState};
use super::evolution::delta_type_of;
use super::known_tables::KnownTables;
use super::location::Destination;
use super::table_writer::DeltaTableWriter;
use crate::cursor::TableCursor;
use crate::error::{Error, Result};
use crate::event_log::EventLog;
use crate::maintenance::MaintenanceCadence;
use crate::metadata_column;
use crate::options::{DeleteMode, RowsOrigin, TableOptions};
use crate::schema::{TableId, TableSchema};

/// Whether the table's `_delta_log/` holds any object: a table whose log is empty does not exist yet.
pub(crate) async fn has_log(table: &DeltaTable) -> Result<bool> {
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
    /// The tables opened so far, kept for the next sync of a long-running process.
    known: KnownTables,
    /// The destination's event log, told of every commit.
    events: EventLog,
}

impl DeltaSink {
    /// `storage_options` reach the object store (for S3 the `AWS_*` environment variables are read too).
    pub fn new(
        destination: Destination,
        pipeline: impl Into<String>,
        storage_options: HashMap<String, String>,
    ) -> Self {
        let events = EventLog::for_destination(&destination, &storage_options);
        DeltaSink {
            destination,
            pipeline: pipeline.into(),
            storage_options,
            object_store: None,
            known: KnownTables::default(),
            events,
        }
    }

    /// Writes through `store` (rooted at `/`) instead of the store derived from the destination URL:
    /// for stores configured in code, or wrappers that inject faults in tests.
    pub fn with_object_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.object_store = Some(store);
        self
    }

    /// The pipeline writing through this sink.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The destination's event log.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Loads the table, or creates it from `schema` if it does not exist yet, and reads the cursor this
    /// pipeline committed to it.
    /// A table this sink opened before (in an earlier sync of `connector run`) that nothing committed to since
    /// is taken as it was known instead.
    pub async fn open_table(&self, schema: &TableSchema, options: TableOptions) -> Result<DeltaTableWriter> {
        let key_columns = options.key.clone().unwrap_or_else(|| schema.primary_key.clone());
        let writer = match self.known.unchanged(&schema.id).await {
            Some((table, committed)) => self.writer_with(table, &schema.id, options, key_columns, committed),
            None => {
                let (url, mut table, exists) = self.load(&schema.id, true).await?;
                if !exists {
                    table = create_table(table, schema, &options).await?;
                    info!(table = %schema.id, url = %url, "created delta table");
                }
                self.writer_for(table, &schema.id, options, key_columns).await?
            }
        };
        writer.check_mode_columns()?;
        Ok(writer)
    }

    /// Loads the table at `table_id` if it exists, with this pipeline's cursor: for a source that learns the
    /// table's columns from its data (files), which a new table is created with
    /// ([`open_table`](Self::open_table)) once there is data.
    pub async fn open_existing(&self, table_id: &TableId, options: TableOptions) -> Result<Option<DeltaTableWriter>> {
        let (_, table, exists) = self.load(table_id, false).await?;
        if !exists {
            return Ok(None);
        }
        let key_columns = options.key.clone().unwrap_or_default();
        let writer = self.writer_for(table, table_id, options, key_columns).await?;
        writer.check_mode_columns()?;
        Ok(Some(writer))
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
        Ok(self.writer_with(table, table_id, options, key_columns, committed))
    }

    fn writer_with(
        &self,
        table: DeltaTable,
        table_id: &TableId,
        options: TableOptions,
        key_columns: Vec<String>,
        committed: Option<CommittedState>,
    ) -> DeltaTableWriter {
        self.known.remember(table_id, &table, committed.as_ref());
        let app_id = format!("{}/{}", self.pipeline, table_id);
        let known = self.known.clone();
        let maintenance = MaintenanceCadence::new(options.maintenance_every_commits);
        DeltaTableWriter {
            maintenance,
            table,
            app_id,
            table_id: table_id.clone(),
            options,
            committed,
            key_columns,
            known,
            landing_files: Vec::new(),
            events: self.events.clone(),
            commit_started: Default::default(),
            source_committed_at: None,
        }
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
pub(super) fn mode_columns(options: &TableOptions, keyed: bool) -> Vec<&'static str> {
    use metadata_column::*;
    if options.rows_origin == RowsOrigin::Files {
        return vec![FILE_PATH, FILE_SIZE, FILE_MODIFIED, FILE_ROW, SYNCED_AT];
    }
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
