//! The one writer of a destination's event log: queued events appended to the Delta table every
//! [`FLUSH_INTERVAL`], or when asked ([`EventWriter::flush`]), each append one Parquet file in one blind Delta
//! commit (appends from several processes never conflict).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder};
use tracing::{debug, warn};

use super::{Event, events_table};
use crate::delta::Destination;
use crate::delta::sink::has_log;
use crate::error::{Error, Result};
use crate::maintenance::{MaintenanceCadence, maintain_or_reload};
use crate::options::DEFAULT_MAINTENANCE_EVERY_COMMITS;

/// How often queued events are appended.
const FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Events queued at most: past it (the store failing for a long while) new ones are dropped, counted.
const MAX_QUEUED: usize = 100_000;

pub(super) struct EventWriter {
    destination: Destination,
    storage_options: HashMap<String, String>,
    queue: Mutex<Vec<Event>>,
    /// One append at a time, whoever asks (the periodic task, a flush before exit), with the log as the last
    /// append left it: opened (its Delta log read) once, not at every append.
    appending: tokio::sync::Mutex<Option<DeltaTable>>,
    periodic_started: AtomicBool,
    dropped: AtomicU64,
    /// Passes of table maintenance on the log itself, whose appends are small files.
    maintenance: Mutex<MaintenanceCadence>,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter").field("destination", &self.destination.url().as_str()).finish()
    }
}

impl EventWriter {
    pub(super) fn new(destination: Destination, storage_options: HashMap<String, String>) -> Self {
        EventWriter {
            destination,
            storage_options,
            queue: Mutex::new(Vec::new()),
            appending: tokio::sync::Mutex::new(None),
            periodic_started: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            maintenance: Mutex::new(MaintenanceCadence::new(DEFAULT_MAINTENANCE_EVERY_COMMITS)),
        }
    }

    pub(super) fn record(self: &Arc<Self>, event: Event) {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if queue.len() >= MAX_QUEUED {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.push(event);
        }
        self.start_periodic_flush();
    }

    /// Starts the task appending the queue every [`FLUSH_INTERVAL`], once, on the runtime of the first event.
    fn start_periodic_flush(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.periodic_started.swap(true, Ordering::SeqCst) {
            return;
        }
        // A weak handle: the task ends with the process's last log.
        let writer = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_INTERVAL).await;
                let Some(writer) = writer.upgrade() else { return };
                writer.flush().await;
            }
        });
    }

    pub(super) async fn flush(&self) {
        let mut opened = self.appending.lock().await;
        let events = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            warn!(dropped, destination = %self.destination.url(), "the event log's queue was full: events dropped");
        }
        if events.is_empty() {
            return;
        }
        if let Err(error) = self.append(&mut opened, &events).await {
            warn!(events = events.len(), error = %error.report(),
                  "could not append to the event log (the pipelines go on; these events are lost)");
        }
    }

    /// Appends `events` to the log, opening it first unless `opened` holds it from the last append; a failed
    /// append leaves it closed, to be opened afresh next time.
    async fn append(&self, opened: &mut Option<DeltaTable>, events: &[Event]) -> Result<()> {
        let mut table = match opened.take() {
            Some(table) => table,
            None => self.open().await?,
        };
        let url = table.table_url().clone();
        // deltalake's plain writer (one Parquet file, one commit), not its DataFusion write: a few events must
        // not cost a pipeline's memory. A commit another process made meanwhile is resolved by the commit itself
        // (blind appends do not conflict).
        let failed = |cause| Error::destination(format!("cannot append to the event log at {url}"), cause);
        let mut writer = RecordBatchWriter::for_table(&table).map_err(failed)?;
        writer.write(event_rows(events)?).await.map_err(failed)?;
        writer.flush_and_commit(&mut table).await.map_err(failed)?;
        *opened = Some(self.maintain_if_due(table).await);
        Ok(())
    }

    /// Compacts, checkpoints and trims the log as its version passes each multiple of
    /// [`DEFAULT_MAINTENANCE_EVERY_COMMITS`] (a continuous pipeline appends a file every 10 s). Appends from
    /// other processes do not conflict with it; a pass that fails is logged, and the next one tries again.
    async fn maintain_if_due(&self, table: DeltaTable) -> DeltaTable {
        let Some(version) = table.version() else { return table };
        let due = self.maintenance.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).after_commit(version);
        let Some(policy) = due else { return table };
        let (table, outcome) = maintain_or_reload(table, &events_table(), &policy).await;
        match outcome {
            Ok(report) => debug!(report = %report.describe(), "maintained the event log"),
            Err(error) => warn!(error = %error.report(), "could not maintain the event log; the next pass tries again"),
        }
        table
    }

    /// The log, loaded, or made when it does not exist yet.
    async fn open(&self) -> Result<DeltaTable> {
        let url = self.destination.table_url(&events_table())?;
        if let Ok(path) = url.to_file_path() {
            std::fs::create_dir_all(&path).map_err(|cause| {
                Error::config(format!("cannot create the event log's directory {}", path.display())).caused_by(cause)
            })?;
        }
        let mut table = DeltaTableBuilder::from_url(url.clone())
            .map(|builder| builder.with_storage_options(self.storage_options.clone()))
            .and_then(|builder| builder.build())
            .map_err(|cause| Error::destination(format!("cannot open the event log at {url}"), cause))?;
        // A log not made yet is made by the first append. Asked by a listing first: deltalake logs a failed
        // load of a missing table as an error.
        let exists = match url.to_file_path() {
            Ok(path) => path.join("_delta_log").is_dir(),
            Err(()) => has_log(&table).await?,
        };
        if exists {
            table
                .load()
                .await
                .map_err(|cause| Error::destination(format!("cannot load the event log at {url}"), cause))?;
            table = add_missing_columns(table).await?;
        } else {
            let columns = event_columns()?;
            table = table
                .create()
                .with_columns(columns.fields().cloned())
                .with_table_name("events")
                .with_comment("what the connector's pipelines did (docs/operations.md#event-log)")
                .await
                .map_err(|cause| Error::destination(format!("cannot create the event log at {url}"), cause))?;
        }
        Ok(table)
    }
}

/// Adds the columns a log made by an earlier version lacks (`lag_ms`), null in its earlier rows.
async fn add_missing_columns(table: DeltaTable) -> Result<DeltaTable> {
    let url = table.table_url().clone();
    let present = table
        .snapshot()
        .map_err(|cause| Error::destination(format!("cannot read the event log at {url}"), cause))?
        .schema();
    let columns = event_columns()?;
    let missing: Vec<_> = columns.fields().filter(|field| present.field(field.name()).is_none()).cloned().collect();
    if missing.is_empty() {
        return Ok(table);
    }
    table
        .add_columns()
        .with_fields(missing)
        .await
        .map_err(|cause| Error::destination(format!("cannot add columns to the event log at {url}"), cause))
}

/// The event log's columns, as Delta declares them.
fn event_columns() -> Result<StructType> {
    StructType::try_from_arrow(event_schema().as_ref())
        .map_err(|cause| Error::state("internal: the event log's columns").caused_by(cause))
}

/// The event log's columns.
pub(super) fn event_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let number = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        text("table"),
        number("rows"),
        number("bytes"),
        number("delta_version"),
        text("position"),
        number("duration_ms"),
        text("error_kind"),
        text("message"),
        text("actor"),
        number("lag_ms"),
    ]))
}

fn event_rows(events: &[Event]) -> Result<RecordBatch> {
    let text = |value: fn(&Event) -> Option<String>| -> ArrayRef {
        Arc::new(events.iter().map(value).collect::<StringArray>())
    };
    let number =
        |value: fn(&Event) -> Option<i64>| -> ArrayRef { Arc::new(events.iter().map(value).collect::<Int64Array>()) };
    let at =
        TimestampMicrosecondArray::from(events.iter().map(|event| event.at.timestamp_micros()).collect::<Vec<_>>())
            .with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(at),
        text(|event| Some(event.pipeline.clone())),
        text(|event| Some(event.kind.as_str().to_string())),
        text(|event| event.table.as_ref().map(ToString::to_string)),
        number(|event| event.rows.map(|rows| rows as i64)),
        number(|event| event.bytes.map(|bytes| bytes as i64)),
        number(|event| event.delta_version),
        text(|event| event.position.clone()),
        number(|event| event.duration.map(|duration| duration.as_millis() as i64)),
        text(|event| event.error_kind.clone()),
        text(|event| event.message.clone()),
        text(|event| event.actor.clone()),
        number(|event| event.lag.map(|lag| lag.as_millis() as i64)),
    ];
    RecordBatch::try_new(event_schema(), columns)
        .map_err(|cause| Error::state("internal: the event log's rows do not match its columns").caused_by(cause))
}
