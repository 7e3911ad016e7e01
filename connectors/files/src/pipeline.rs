//! A files pipeline: one table fed by the files of one location, through the engine's file loop.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use connector_core::arrow::datatypes::{DataType, Field};
use connector_core::delta::{DeltaSink, Destination};
use connector_core::engine::{
    FileBacklog, FileListing, FileRead, FileRows, FileSettings, FileSource, file_backlog, ingest_files,
};
use connector_core::error::{ErrorKind, Result};
use connector_core::ingested_file::{IngestedFile, SourceFile};
use connector_core::options::TableOptions;
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode};
use connector_core::schema::{TableId, TableSchema};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::config::FilesConfig;
use crate::file_reading::{FileFormat, read_file};
use crate::inference::{merge_sampled, sampled_columns, table_columns};
use crate::listing::{FileFilter, list_files, list_files_after, notified_files};
use crate::location::FileLocation;
use crate::notifications::NotificationQueue;
use crate::row_sink::RowSink;
use crate::schema_hints::parse_schema_hints;
use crate::source_cleaning::SourceCleaning;

/// A files source bound to its Delta table.
#[derive(Debug)]
pub struct FilesPipeline {
    config: Arc<FilesConfig>,
    sources: Vec<Arc<FilesSource>>,
    sink: DeltaSink,
}

impl FilesPipeline {
    pub fn new(config: FilesConfig) -> Result<Self> {
        let location = FileLocation::parse(&config.path)?;
        if config.queue_url.is_some() && location.s3_bucket().is_none() {
            return Err(connector_core::error::Error::config(format!(
                "queue_url (--queue-url) takes the S3 event notifications of a bucket, but {} is not in one; give \
                 --path s3://bucket/prefix/, or remove queue_url",
                config.path
            )));
        }
        let filter = FileFilter::new(config.glob.as_deref(), config.modified_after)?;
        let sink = DeltaSink::new(Destination::parse(&config.dest)?, config.pipeline.clone(), HashMap::new());
        let cleaning = SourceCleaning::new(
            config.clean_source,
            config.clean_source_move_to.as_deref(),
            config.clean_source_retention,
            &location,
        )?;
        let config = Arc::new(config);
        let mut source = FilesSource::new(config.clone(), vec![location], filter)?;
        source.cleaning = cleaning;
        Ok(FilesPipeline { config, sources: vec![Arc::new(source)], sink })
    }
}

impl FilesPipeline {
    /// What the table's ledger holds and what the next sync would ingest, from a full listing.
    pub async fn backlog(&self) -> Result<FileBacklog> {
        let Some(source) = self.sources.first() else {
            return Err(connector_core::error::Error::state("internal: a files pipeline without a source"));
        };
        file_backlog(source.as_ref(), &self.sink, self.config.reingest_changed_files).await
    }
}

impl Pipeline for FilesPipeline {
    fn name(&self) -> &str {
        &self.config.pipeline
    }

    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        let settings = FileSettings {
            max_files_per_batch: self.config.max_files_per_batch,
            max_bytes_per_batch: self.config.max_bytes_per_batch,
            parallel_files: self.config.parallel_files,
            poll_interval: self.config.poll_interval,
            reingest_changed_files: self.config.reingest_changed_files,
            ignore_corrupt_files: self.config.ignore_corrupt_files,
        };
        Box::pin(ingest_files(&self.sources, &self.sink, settings, mode, shutdown))
    }
}

/// The files of a table, as the engine reads them: those of one location for a sync, of each path given for a
/// load.
#[derive(Debug)]
pub struct FilesSource {
    config: Arc<FilesConfig>,
    /// A sync lists the first.
    locations: Vec<FileLocation>,
    filter: FileFilter,
    hints: Vec<(String, DataType)>,
    /// The notification queue's client, from the first pass that receives (`queue_url` set).
    queue: OnceCell<NotificationQueue>,
    /// What happens to ingested files (`clean_source`); a load cleans nothing.
    cleaning: Option<SourceCleaning>,
}

/// What a listing's token records: the newest file listed, where an incremental listing starts, and when the
/// last full listing was (incremental listings and notifications only).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ListingToken {
    newest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_listing_at: Option<DateTime<Utc>>,
}

impl FilesSource {
    pub fn new(config: Arc<FilesConfig>, locations: Vec<FileLocation>, filter: FileFilter) -> Result<Self> {
        let hints =
            config.format_options.schema_hints.as_deref().map(parse_schema_hints).transpose()?.unwrap_or_default();
        Ok(FilesSource { config, locations, filter, hints, queue: OnceCell::new(), cleaning: None })
    }

    /// The location a listed file belongs to.
    fn location_of(&self, file: &SourceFile) -> Result<&FileLocation> {
        self.locations.iter().find(|location| location.holds(&file.path)).ok_or_else(|| {
            connector_core::error::Error::state(format!("internal: {} is under no location of the source", file.path))
        })
    }

    fn format_of(&self, file: &SourceFile) -> Result<FileFormat> {
        FileFormat::of(file, self.config.format, &self.config.format_options)
    }

    /// Reads `file`'s rows in `schema`'s columns into `rows`, until it has them all or wants no more.
    pub async fn read_into(
        &self,
        file: &SourceFile,
        schema: &TableSchema,
        rows: &mut impl RowSink,
    ) -> Result<FileRead> {
        let format = self.format_of(file)?;
        read_file(self.location_of(file)?, file, &format, schema, self.config.format_options.strict(), rows).await
    }
}

impl FileSource for FilesSource {
    fn table_id(&self) -> TableId {
        self.config.table.clone()
    }

    fn table_options(&self) -> TableOptions {
        self.config.table_options.clone()
    }

    async fn list(&self, committed: Option<&str>) -> Result<FileListing> {
        let Some(location) = self.locations.first() else {
            return Err(connector_core::error::Error::state("internal: a files source without a location"));
        };
        // A token that does not parse (written by another version) only costs a full listing.
        let committed: ListingToken = committed.and_then(|token| serde_json::from_str(token).ok()).unwrap_or_default();
        let now = Utc::now();
        let full_listing_is_recent = match (self.config.full_listing_interval, committed.full_listing_at) {
            (Some(interval), Some(at)) => now.signed_duration_since(at).to_std().is_ok_and(|since| since < interval),
            _ => false,
        };
        if full_listing_is_recent && let Some(url) = &self.config.queue_url {
            let queue = self.queue.get_or_init(|| NotificationQueue::connect(url)).await;
            let received = queue.receive(self.config.max_files_per_batch).await?;
            let files = notified_files(location, &self.filter, &received.created).await?;
            // The token stays: notifications say nothing of where a listing would start.
            let token = serde_json::to_string(&committed).unwrap_or_default();
            return Ok(FileListing { files, token, notifications: received.receipts, more: received.more });
        }
        let incremental_from = committed.newest.as_deref().filter(|_| full_listing_is_recent);
        let files = match incremental_from {
            Some(newest) => list_files_after(location, &self.filter, Some(&location.path_of(newest)?)).await?,
            None => list_files(location, &self.filter).await?,
        };
        let full_listing_at = match (self.config.full_listing_interval, incremental_from) {
            (None, _) => None,
            (Some(_), Some(_)) => committed.full_listing_at,
            (Some(_), None) => Some(now),
        };
        let newest = files.last().map(|file| file.path.clone()).max(committed.newest);
        let token = serde_json::to_string(&ListingToken { newest, full_listing_at }).unwrap_or_default();
        Ok(FileListing { files, token, notifications: Vec::new(), more: false })
    }

    fn cleans_source(&self) -> bool {
        self.cleaning.is_some()
    }

    async fn clean_ingested(&self, files: &[&IngestedFile]) -> Result<()> {
        match (&self.cleaning, self.locations.first()) {
            (Some(cleaning), Some(location)) => cleaning.clean(location, files).await,
            _ => Ok(()),
        }
    }

    async fn acknowledge(&self, notifications: Vec<String>) -> Result<()> {
        match self.queue.get() {
            Some(queue) if !notifications.is_empty() => queue.acknowledge(notifications).await,
            _ => Ok(()),
        }
    }

    async fn columns_for(&self, files: &[SourceFile], existing: Option<&[Field]>) -> Result<TableSchema> {
        let sample: Vec<&SourceFile> = files.iter().take(self.config.infer_sample_files).collect();
        let mut formats = Vec::with_capacity(sample.len());
        for file in &sample {
            formats.push((self.format_of(file)?, self.location_of(file)?));
        }
        let text = formats.iter().all(|(format, _)| format.is_text());
        // The sampled files are read at once, as many as files are parsed at once (their decoding runs on other
        // threads): one after the other, the sample held every batch's start back by a file read per file.
        let mut reads = Vec::with_capacity(sample.len());
        for (file, (format, location)) in sample.iter().zip(&formats) {
            reads.push(sampled_columns(location, file, format, self.config.infer_sample_bytes));
        }
        let results: Vec<Result<Option<Vec<Field>>>> =
            futures::stream::iter(reads).buffered(self.config.parallel_files.max(1)).collect().await;
        let mut sampled = Vec::new();
        for result in results {
            match result {
                Ok(Some(columns)) => sampled.push(columns),
                Ok(None) => {}
                // The file is skipped when read; it says nothing of the columns.
                Err(error) if self.config.ignore_corrupt_files && error.kind() == ErrorKind::BadInput => {}
                Err(error) => return Err(error),
            }
        }
        let merged = merge_sampled(sampled, text);
        table_columns(&self.config.table, existing, merged, &self.hints, self.config.schema_evolution, text)
    }

    async fn read(&self, file: &SourceFile, schema: &TableSchema, rows: &mut FileRows) -> Result<FileRead> {
        self.read_into(file, schema, rows).await
    }
}
