//! The event log: a Delta table of what happened to the pipelines writing to a destination, at
//! `<dest>/_connector/events`, one row per run started or finished, commit (table, rows, Delta version,
//! position, duration), schema change, resync, error (kind and message, which says the fix), lease taken or
//! lost, and maintenance action. Any engine reads it as it reads the tables (`delta_scan`, Spark, Polars), and
//! `connector status --since 1h` shows its recent rows.
//!
//! Events are queued by the pipelines' tasks ([`EventLog::record`] never waits and never fails) and appended by
//! one writer per destination ([`writer`]) in batches, so ingestion never waits for the log; what cannot be
//! appended is logged and dropped, never retried at the cost of the pipelines.

mod reader;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use reader::{EventRow, pauses_and_resumes, recent_events};

use crate::delta::Destination;
use crate::error::Error;
use crate::schema::TableId;

/// Where the log lands in its destination: `<dest>/_connector/events`.
pub fn events_table() -> TableId {
    TableId::new(EVENTS_NAMESPACE, "events")
}

/// The namespace of the connector's own tables, which `connector status --dest` lists apart.
pub const EVENTS_NAMESPACE: &str = "_connector";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    RunFinished,
    /// A run that stopped on an error (`error_kind`, `message`).
    RunFailed,
    /// A Delta commit of a table: rows, Delta version, position, duration.
    Commit,
    /// Columns added or widened (`message` says which).
    SchemaChange,
    /// A table marked to be copied anew (`connector resync`, or a source that lost its history).
    Resync,
    LeaseTaken,
    LeaseLost,
    Maintenance,
    /// A person paused the pipeline (web console; `actor` says who).
    Paused,
    Resumed,
    /// A person asked for a run now.
    RunRequested,
    /// A person loaded uploaded files into a table (`message` names the files and the mode).
    Upload,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::RunFinished => "run_finished",
            EventKind::RunFailed => "run_failed",
            EventKind::Commit => "commit",
            EventKind::SchemaChange => "schema_change",
            EventKind::Resync => "resync",
            EventKind::LeaseTaken => "lease_taken",
            EventKind::LeaseLost => "lease_lost",
            EventKind::Maintenance => "maintenance",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::RunRequested => "run_requested",
            EventKind::Upload => "upload",
        }
    }
}

/// One row of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub pipeline: String,
    pub kind: EventKind,
    pub table: Option<TableId>,
    /// Rows a commit landed (inserted, updated or deleted).
    pub rows: Option<u64>,
    /// Bytes of the files a commit added, where known (snapshots and appends of files).
    pub bytes: Option<u64>,
    /// The table version a commit made.
    pub delta_version: Option<i64>,
    /// The source position a commit recorded.
    pub position: Option<String>,
    pub duration: Option<Duration>,
    /// How far behind its source a commit's newest change was: from when the source wrote it (a transaction's
    /// commit, a Kafka message's timestamp, a file's modification) to this commit.
    pub lag: Option<Duration>,
    /// An error's kind (`config`, `source`, `history_lost`, …).
    pub error_kind: Option<String>,
    /// What happened, in words: an error's message (which says how to fix it), the columns a schema change
    /// added.
    pub message: Option<String>,
    /// Who asked for it (`cli`, a console user), for actions a person takes.
    pub actor: Option<String>,
}

impl Event {
    pub fn new(pipeline: impl Into<String>, kind: EventKind) -> Self {
        Event {
            at: Utc::now(),
            pipeline: pipeline.into(),
            kind,
            table: None,
            rows: None,
            bytes: None,
            delta_version: None,
            position: None,
            duration: None,
            lag: None,
            error_kind: None,
            message: None,
            actor: None,
        }
    }

    pub fn table(mut self, table: &TableId) -> Self {
        self.table = Some(table.clone());
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn error(mut self, error: &Error) -> Self {
        self.error_kind = Some(error.kind().to_string());
        self.message = Some(error.report());
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }
}

/// The event log of one destination: a handle to its writer, cheap to clone.
#[derive(Debug, Clone)]
pub struct EventLog {
    writer: Arc<writer::EventWriter>,
}

impl EventLog {
    /// The log of `destination`, shared by every pipeline of the process writing there; its writer starts with
    /// the first event. `storage_options` reach the object store as the tables' do.
    pub fn for_destination(destination: &Destination, storage_options: &HashMap<String, String>) -> EventLog {
        let mut logs = registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = destination.url().to_string();
        logs.entry(key)
            .or_insert_with(|| EventLog {
                writer: Arc::new(writer::EventWriter::new(destination.clone(), storage_options.clone())),
            })
            .clone()
    }

    /// Counts `event` in the process's metrics and queues it; never waits. When the queue is full (the store has been failing for a while), the event
    /// is dropped with a warning rather than holding up a pipeline.
    pub fn record(&self, event: Event) {
        crate::metrics::metrics().observe(&event);
        self.writer.record(event);
    }

    /// Appends everything queued so far; returns once it is in the table (or could not be).
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// Appends what every destination's log has queued: before the process exits.
pub async fn flush_all() {
    let logs: Vec<EventLog> =
        registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect();
    for log in logs {
        log.flush().await;
    }
}

fn registry() -> &'static Mutex<HashMap<String, EventLog>> {
    static LOGS: OnceLock<Mutex<HashMap<String, EventLog>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_land_in_the_destinations_log_and_read_back_from_the_time_asked() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let destination = Destination::parse(directory.path().to_str().expect("utf-8")).expect("destination");
        let log = EventLog::for_destination(&destination, &HashMap::new());
        let mut old = Event::new("shop", EventKind::RunStarted);
        old.at = Utc::now() - chrono::Duration::hours(2);
        log.record(old);
        let orders = TableId::new("public", "orders");
        let mut commit = Event::new("shop", EventKind::Commit).table(&orders).duration(Duration::from_millis(42));
        (commit.rows, commit.delta_version, commit.position) = (Some(5), Some(3), Some("0/16B3748".into()));
        commit.lag = Some(Duration::from_millis(1250));
        log.record(commit);
        log.flush().await;
        let failed = Event::new("shop", EventKind::RunFailed).error(&Error::config("set `url`")).actor("cli");
        log.record(failed);
        log.flush().await;

        let since = Utc::now() - chrono::Duration::hours(1);
        let events = recent_events(&destination, &HashMap::new(), since).await.expect("read back");
        let seen: Vec<(&str, Option<&str>)> =
            events.iter().map(|event| (event.kind.as_str(), event.table.as_deref())).collect();
        assert_eq!(seen, [("commit", Some("public.orders")), ("run_failed", None)], "an hour back, in order");
        assert_eq!((events[0].rows, events[0].delta_version, events[0].duration_ms), (Some(5), Some(3), Some(42)));
        assert_eq!((events[0].position.as_deref(), events[0].lag_ms), (Some("0/16B3748"), Some(1250)));
        assert_eq!(events[1].error_kind.as_deref(), Some("configuration"));
        assert_eq!((events[1].message.as_deref(), events[1].actor.as_deref()), (Some("set `url`"), Some("cli")));
        let all = recent_events(&destination, &HashMap::new(), Utc::now() - chrono::Duration::hours(3)).await;
        assert_eq!(all.expect("read back").len(), 3, "the older event is there too");
    }

    #[tokio::test]
    async fn the_log_maintains_itself_as_its_appends_pass_each_hundred_commits() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let destination = Destination::parse(directory.path().to_str().expect("utf-8")).expect("destination");
        let log = EventLog::for_destination(&destination, &HashMap::new());
        let appends = 105;
        for number in 0..appends {
            log.record(Event::new("shop", EventKind::RunStarted).message(number.to_string()));
            log.flush().await;
        }
        let status = crate::status::table_status(&destination, &events_table()).await.expect("status").expect("log");
        assert!(status.version >= appends, "one commit per append: version {}", status.version);
        assert!(status.file_count < 10, "the small appends compacted: {} files", status.file_count);
        assert!(status.last_compacted_at.is_some() && status.checkpoint_version.is_some(), "{status:?}");
        let events = recent_events(&destination, &HashMap::new(), Utc::now() - chrono::Duration::hours(1)).await;
        let numbers: Vec<String> = events.expect("read back").into_iter().filter_map(|event| event.message).collect();
        assert_eq!(numbers, (0..appends).map(|number| number.to_string()).collect::<Vec<_>>(), "every event once");
    }

    #[tokio::test]
    async fn a_log_made_before_the_lag_column_gains_it_at_the_next_append() {
        use deltalake::kernel::StructType;
        use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
        let directory = tempfile::tempdir().expect("temporary directory");
        let destination = Destination::parse(directory.path().to_str().expect("utf-8")).expect("destination");
        let url = destination.table_url(&events_table()).expect("url");
        std::fs::create_dir_all(url.to_file_path().expect("local")).expect("directory");
        let earlier: Vec<_> =
            writer::event_schema().fields().iter().filter(|field| field.name() != "lag_ms").cloned().collect();
        let columns = StructType::try_from_arrow(&deltalake::arrow::datatypes::Schema::new(earlier)).expect("columns");
        deltalake::DeltaTableBuilder::from_url(url)
            .and_then(|builder| builder.build())
            .expect("table")
            .create()
            .with_columns(columns.fields().cloned())
            .await
            .expect("a log as version 0.1 made it");
        let log = EventLog::for_destination(&destination, &HashMap::new());
        let mut commit = Event::new("shop", EventKind::Commit);
        commit.lag = Some(Duration::from_millis(7));
        log.record(commit);
        log.flush().await;
        let events = recent_events(&destination, &HashMap::new(), Utc::now() - chrono::Duration::hours(1)).await;
        assert_eq!(events.expect("read back").iter().map(|event| event.lag_ms).collect::<Vec<_>>(), [Some(7)]);
    }

    #[tokio::test]
    async fn a_destination_without_a_log_has_no_events() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let destination = Destination::parse(directory.path().to_str().expect("utf-8")).expect("destination");
        let events = recent_events(&destination, &HashMap::new(), Utc::now()).await.expect("no log");
        assert!(events.is_empty());
    }
}
