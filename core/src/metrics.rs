//! The pipelines' metrics in Prometheus text: what `connector run --metrics-addr` serves at `/metrics`. What
//! happened (runs, commits, schema changes, errors, maintenance) is counted from the event log's events
//! ([`crate::event_log`]), so the log and the metrics never disagree; where sources stand (Kafka consumer lag,
//! files outstanding) is set by the sources as they learn it.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::event_log::{Event, EventKind};
use crate::schema::TableId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    pipeline: String,
    table: String,
}

impl TableLabels {
    fn of(pipeline: &str, table: &TableId) -> Self {
        TableLabels { pipeline: pipeline.into(), table: table.to_string() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    pipeline: String,
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    service: String,
    /// The HTTP status, or `failed` for a request that got no answer (timeout, connection refused).
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    pipeline: String,
    slot: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    pipeline: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    pipeline: String,
    kind: String,
}

/// The process's metrics.
pub struct PipelineMetrics {
    registry: Registry,
    commits: Family<TableLabels, Counter>,
    rows: Family<TableLabels, Counter>,
    bytes: Family<TableLabels, Counter>,
    last_commit: Family<TableLabels, Gauge<f64, AtomicU64>>,
    commit_seconds: Family<PipelineLabels, Histogram>,
    runs: Family<RunLabels, Counter>,
    running: Family<PipelineLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
    schema_changes: Family<TableLabels, Counter>,
    resyncs: Family<TableLabels, Counter>,
    maintenance_passes: Family<TableLabels, Counter>,
    kafka_lag: Family<PartitionLabels, Gauge>,
    files_outstanding: Family<TableLabels, Gauge>,
    bytes_outstanding: Family<TableLabels, Gauge>,
    api_requests: Family<ApiLabels, Counter>,
    slot_retained_wal: Family<SlotLabels, Gauge>,
    slot_lag: Family<SlotLabels, Gauge>,
    binlog_lag: Family<PipelineLabels, Gauge>,
    rate_limit_waits: Family<ServiceLabels, Counter<f64, AtomicU64>>,
    source_lag: Family<TableLabels, Gauge<f64, AtomicU64>>,
    rows_read: Family<TableLabels, Counter>,
    bytes_read: Family<TableLabels, Counter>,
    retries: Family<PipelineLabels, Counter>,
    api_response_bytes: Family<ServiceLabels, Counter>,
}

impl std::fmt::Debug for PipelineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipelineMetrics")
    }
}

/// Commit durations from 10 ms to about 80 s.
fn commit_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl PipelineMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("connector");
        let metrics = PipelineMetrics {
            commits: Family::default(),
            rows: Family::default(),
            bytes: Family::default(),
            last_commit: Family::default(),
            commit_seconds: Family::new_with_constructor(commit_histogram as fn() -> Histogram),
            runs: Family::default(),
            running: Family::default(),
            errors: Family::default(),
            schema_changes: Family::default(),
            resyncs: Family::default(),
            maintenance_passes: Family::default(),
            kafka_lag: Family::default(),
            files_outstanding: Family::default(),
            bytes_outstanding: Family::default(),
            api_requests: Family::default(),
            slot_retained_wal: Family::default(),
            slot_lag: Family::default(),
            binlog_lag: Family::default(),
            rate_limit_waits: Family::default(),
            source_lag: Family::default(),
            rows_read: Family::default(),
            bytes_read: Family::default(),
            retries: Family::default(),
            api_response_bytes: Family::default(),
            registry: Registry::default(),
        };
        registry.register("commits", "Delta commits of a table", metrics.commits.clone());
        registry.register(
            "rows_committed",
            "Rows a table's commits inserted, updated or deleted",
            metrics.rows.clone(),
        );
        registry.register(
            "bytes_committed",
            "Bytes of the files a table's commits added, where known (snapshots, whole files)",
            metrics.bytes.clone(),
        );
        registry.register(
            "last_commit_timestamp_seconds",
            "When a table was last committed to, in seconds since the epoch",
            metrics.last_commit.clone(),
        );
        registry.register(
            "commit_duration_seconds",
            "How long commits took, from recording their position to the commit",
            metrics.commit_seconds.clone(),
        );
        registry.register("runs", "Pipeline runs that ended, by outcome (finished, failed)", metrics.runs.clone());
        registry.register("running", "Whether a pipeline's run is under way (1) or not (0)", metrics.running.clone());
        registry.register("errors", "Runs that stopped on an error, by the error's kind", metrics.errors.clone());
        registry.register("schema_changes", "Columns added or widened in a table", metrics.schema_changes.clone());
        registry.register("resyncs", "Tables marked to be copied anew", metrics.resyncs.clone());
        registry.register(
            "maintenance_passes",
            "Table maintenance passes (compaction, checkpoint, log clean-up, VACUUM) run on a table",
            metrics.maintenance_passes.clone(),
        );
        registry.register(
            "kafka_consumer_lag_messages",
            "Messages of a topic's partition not yet read, as of the last look at the partition's end",
            metrics.kafka_lag.clone(),
        );
        registry.register(
            "files_outstanding",
            "Files listed and not yet ingested into a table",
            metrics.files_outstanding.clone(),
        );
        registry.register(
            "postgres_slot_retained_wal_bytes",
            "WAL the PostgreSQL server keeps for a pipeline's replication slot (read every 30 s while streaming)",
            metrics.slot_retained_wal.clone(),
        );
        registry.register(
            "postgres_slot_lag_bytes",
            "WAL written since the position a pipeline last confirmed to its slot: how far Delta is behind",
            metrics.slot_lag.clone(),
        );
        registry.register(
            "mysql_binlog_lag_bytes",
            "Binlog bytes between what a pipeline's stream has read and the server's binlog end",
            metrics.binlog_lag.clone(),
        );
        registry.register(
            "api_requests",
            "Requests to a SaaS API, by the HTTP status answered (failed: no answer)",
            metrics.api_requests.clone(),
        );
        registry.register(
            "api_rate_limit_wait_seconds",
            "Time requests to an API stood still for 429s' Retry-After and rate-limit windows it said were used up",
            metrics.rate_limit_waits.clone(),
        );
        registry.register(
            "files_outstanding_bytes",
            "Bytes of the files listed and not yet ingested into a table",
            metrics.bytes_outstanding.clone(),
        );
        registry.register(
            "source_lag_seconds",
            "How far a table's newest commit was behind its source: from when the source wrote the newest change it \
             landed (a transaction's commit, a Kafka message's timestamp, a file's or an API record's modification) to \
             the Delta commit",
            metrics.source_lag.clone(),
        );
        registry.register(
            "rows_read",
            "Rows a pipeline took from its source for a table: streamed changes as their transactions end, snapshot \
             rows, files' rows, API records, Kafka messages",
            metrics.rows_read.clone(),
        );
        registry.register(
            "bytes_read",
            "Bytes a pipeline read from its source about a table, as the source holds them: files' sizes, Kafka \
             messages, PostgreSQL WAL messages, MySQL rows events, snapshot copies' rows as they came",
            metrics.bytes_read.clone(),
        );
        registry.register(
            "retries",
            "Failed runs retried with backoff (a dropped connection, a commit conflict, throttling)",
            metrics.retries.clone(),
        );
        registry.register(
            "api_response_bytes",
            "Bytes of the bodies a SaaS API answered with: what the pipelines read from it",
            metrics.api_response_bytes.clone(),
        );
        PipelineMetrics { registry, ..metrics }
    }

    /// Counts `event`.
    pub fn observe(&self, event: &Event) {
        let pipeline = event.pipeline.clone();
        let table_labels = || TableLabels {
            pipeline: pipeline.clone(),
            table: event.table.as_ref().map(ToString::to_string).unwrap_or_default(),
        };
        match event.kind {
            EventKind::Commit => {
                let labels = table_labels();
                self.commits.get_or_create(&labels).inc();
                self.rows.get_or_create(&labels).inc_by(event.rows.unwrap_or(0));
                self.bytes.get_or_create(&labels).inc_by(event.bytes.unwrap_or(0));
                self.last_commit.get_or_create(&labels).set(event.at.timestamp_micros() as f64 / 1e6);
                if let Some(lag) = event.lag {
                    self.set_source_lag(&labels, lag);
                }
                if let Some(duration) = event.duration {
                    self.commit_seconds.get_or_create(&PipelineLabels { pipeline }).observe(duration.as_secs_f64());
                }
            }
            EventKind::RunStarted => {
                self.running.get_or_create(&PipelineLabels { pipeline }).set(1);
            }
            EventKind::RunFinished | EventKind::RunFailed => {
                let failed = event.kind == EventKind::RunFailed;
                let outcome = if failed { "failed" } else { "finished" };
                self.runs.get_or_create(&RunLabels { pipeline: pipeline.clone(), outcome: outcome.into() }).inc();
                self.running.get_or_create(&PipelineLabels { pipeline: pipeline.clone() }).set(0);
                if failed {
                    let kind = event.error_kind.clone().unwrap_or_default().replace(' ', "_");
                    self.errors.get_or_create(&ErrorLabels { pipeline, kind }).inc();
                }
            }
            EventKind::SchemaChange => drop(self.schema_changes.get_or_create(&table_labels()).inc()),
            EventKind::Resync => drop(self.resyncs.get_or_create(&table_labels()).inc()),
            // A failed pass is an error of the table's writer, logged, not a run's: counted as passes only.
            EventKind::Maintenance if event.error_kind.is_none() => {
                self.maintenance_passes.get_or_create(&table_labels()).inc();
            }
            EventKind::LeaseTaken
            | EventKind::LeaseLost
            | EventKind::Maintenance
            | EventKind::Paused
            | EventKind::Resumed
            | EventKind::RunRequested
            | EventKind::Upload => {}
        }
    }

    /// Sets how far `pipeline`'s reading of `topic`'s `partition` is behind the partition's end.
    pub fn set_kafka_lag(&self, pipeline: &str, topic: &str, partition: i32, messages: i64) {
        let labels = PartitionLabels { pipeline: pipeline.into(), topic: topic.into(), partition };
        self.kafka_lag.get_or_create(&labels).set(messages);
    }

    /// Sets the WAL `slot` of `pipeline` retains and how far behind the server's WAL end it is confirmed.
    pub fn set_postgres_slot_wal(&self, pipeline: &str, slot: &str, retained_bytes: i64, lag_bytes: i64) {
        let labels = SlotLabels { pipeline: pipeline.into(), slot: slot.into() };
        self.slot_retained_wal.get_or_create(&labels).set(retained_bytes);
        self.slot_lag.get_or_create(&labels).set(lag_bytes);
    }

    /// Sets how many binlog bytes `pipeline`'s stream is behind the server's end.
    pub fn set_mysql_binlog_lag(&self, pipeline: &str, bytes: u64) {
        let labels = PipelineLabels { pipeline: pipeline.into() };
        self.binlog_lag.get_or_create(&labels).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts a request to `service`'s API and its answer's status (`None`: no answer).
    pub fn count_api_request(&self, service: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "failed".to_string(), |status| status.to_string());
        self.api_requests.get_or_create(&ApiLabels { service: service.into(), status }).inc();
    }

    /// Counts the bytes of an answer's body from `service`'s API.
    pub fn count_api_response_bytes(&self, service: &str, bytes: usize) {
        self.api_response_bytes.get_or_create(&ServiceLabels { service: service.into() }).inc_by(bytes as u64);
    }

    /// Adds a pause that held back every request to `service`'s API.
    pub fn add_rate_limit_wait(&self, service: &str, wait: std::time::Duration) {
        self.rate_limit_waits.get_or_create(&ServiceLabels { service: service.into() }).inc_by(wait.as_secs_f64());
    }

    /// The counter of rows `pipeline` read for `table` (a handle: counting through it costs no label lookup).
    pub fn rows_read(&self, pipeline: &str, table: &TableId) -> Counter {
        self.rows_read.get_or_create(&TableLabels::of(pipeline, table)).clone()
    }

    /// The counter of bytes `pipeline` read for `table`, as the source stores them.
    pub fn bytes_read(&self, pipeline: &str, table: &TableId) -> Counter {
        self.bytes_read.get_or_create(&TableLabels::of(pipeline, table)).clone()
    }

    /// Counts a failed run of `pipeline` that is retried with backoff.
    pub fn count_retry(&self, pipeline: &str) {
        self.retries.get_or_create(&PipelineLabels { pipeline: pipeline.into() }).inc();
    }

    /// Sets how far behind its source a table's newest commit was, and tells the lag alert.
    fn set_source_lag(&self, labels: &TableLabels, behind: std::time::Duration) {
        self.source_lag.get_or_create(labels).set(behind.as_secs_f64());
        crate::pipeline_health::report_lag(&labels.pipeline, &labels.table, behind);
    }

    /// Sets the files (and their bytes) listed for `table` that are not yet ingested.
    pub fn set_files_outstanding(&self, pipeline: &str, table: &TableId, files: u64, bytes: u64) {
        let labels = TableLabels::of(pipeline, table);
        self.files_outstanding.get_or_create(&labels).set(i64::try_from(files).unwrap_or(i64::MAX));
        self.bytes_outstanding.get_or_create(&labels).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The metrics in the Prometheus (OpenMetrics) text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The process's metrics, made on first use.
pub fn metrics() -> &'static PipelineMetrics {
    static METRICS: OnceLock<PipelineMetrics> = OnceLock::new();
    METRICS.get_or_init(PipelineMetrics::new)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    #[test]
    fn events_are_counted_by_pipeline_and_table() {
        let metrics = PipelineMetrics::new();
        let orders = TableId::new("public", "orders");
        metrics.observe(&Event::new("shop", EventKind::RunStarted));
        for rows in [10, 5] {
            let mut commit = Event::new("shop", EventKind::Commit).table(&orders).duration(Duration::from_millis(30));
            commit.rows = Some(rows);
            metrics.observe(&commit);
        }
        metrics.observe(&Event::new("shop", EventKind::RunFailed).error(&Error::config("set `url`")));
        metrics.observe(&Event::new("shop", EventKind::Maintenance).table(&orders).message("compacted"));
        let failed_pass = Error::state("cannot compact");
        metrics.observe(&Event::new("shop", EventKind::Maintenance).table(&orders).error(&failed_pass));
        metrics.set_kafka_lag("shop", "orders", 3, 42);
        let text = metrics.encode();
        for line in [
            r#"connector_commits_total{pipeline="shop",table="public.orders"} 2"#,
            r#"connector_rows_committed_total{pipeline="shop",table="public.orders"} 15"#,
            r#"connector_commit_duration_seconds_count{pipeline="shop"} 2"#,
            r#"connector_runs_total{pipeline="shop",outcome="failed"} 1"#,
            r#"connector_errors_total{pipeline="shop",kind="configuration"} 1"#,
            r#"connector_running{pipeline="shop"} 0"#,
            r#"connector_maintenance_passes_total{pipeline="shop",table="public.orders"} 1"#,
            r#"connector_kafka_consumer_lag_messages{pipeline="shop",topic="orders",partition="3"} 42"#,
        ] {
            assert!(text.lines().any(|seen| seen == line), "{line} in:\n{text}");
        }
    }
}
