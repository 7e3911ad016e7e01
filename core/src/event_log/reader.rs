//! Reading the event log back: what `connector status --since` shows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deltalake::DeltaTableBuilder;
use deltalake::arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::{Expr, SessionContext, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use serde::Serialize;

use super::{EventKind, events_table};
use crate::delta::Destination;
use crate::delta::sink::has_log;
use crate::error::{Error, Result};

/// One event as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub at: DateTime<Utc>,
    pub pipeline: String,
    pub kind: String,
    pub table: Option<String>,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub delta_version: Option<i64>,
    pub position: Option<String>,
    pub duration_ms: Option<i64>,
    pub error_kind: Option<String>,
    pub message: Option<String>,
    pub actor: Option<String>,
    pub lag_ms: Option<i64>,
}

/// The events of `destination`'s log at or after `since`, oldest first; none when it has no log yet.
pub async fn recent_events(
    destination: &Destination,
    storage_options: &HashMap<String, String>,
    since: DateTime<Utc>,
) -> Result<Vec<EventRow>> {
    let since = ScalarValue::TimestampMicrosecond(Some(since.timestamp_micros()), Some("UTC".into()));
    events_where(destination, storage_options, col("at").gt_eq(lit(since))).await
}

/// Every pause and resume of `destination`'s log, oldest first: what the console's Pause and Resume recorded.
pub async fn pauses_and_resumes(
    destination: &Destination,
    storage_options: &HashMap<String, String>,
) -> Result<Vec<EventRow>> {
    let kinds = vec![lit(EventKind::Paused.as_str()), lit(EventKind::Resumed.as_str())];
    events_where(destination, storage_options, col("kind").in_list(kinds, false)).await
}

/// The events of `destination`'s log that `filter` keeps, oldest first; none when it has no log yet.
async fn events_where(
    destination: &Destination,
    storage_options: &HashMap<String, String>,
    filter: Expr,
) -> Result<Vec<EventRow>> {
    let url = destination.table_url(&events_table())?;
    if url.to_file_path().is_ok_and(|path| !path.join("_delta_log").is_dir()) {
        return Ok(Vec::new());
    }
    let mut table = DeltaTableBuilder::from_url(url.clone())
        .map(|builder| builder.with_storage_options(storage_options.clone()))
        .and_then(|builder| builder.build())
        .map_err(|cause| Error::destination(format!("cannot open the event log at {url}"), cause))?;
    if url.scheme() != "file" && !has_log(&table).await? {
        return Ok(Vec::new());
    }
    match table.load().await {
        Ok(()) => {}
        Err(deltalake::DeltaTableError::NotATable(_)) => return Ok(Vec::new()),
        Err(cause) => return Err(Error::destination(format!("cannot load the event log at {url}"), cause)),
    }
    let context = SessionContext::new();
    table.update_datafusion_session(&context.state()).map_err(|cause| Error::destination("event log store", cause))?;
    let unreadable = |cause: deltalake::datafusion::error::DataFusionError| {
        Error::state(format!("cannot read the event log at {url}")).caused_by(cause)
    };
    let provider = table.table_provider().await.map_err(unreadable)?;
    let batches = context
        .read_table(provider)
        .and_then(|frame| frame.filter(filter))
        .and_then(|frame| frame.sort(vec![col("at").sort(true, true)]))
        .map_err(unreadable)?
        .collect()
        .await
        .map_err(unreadable)?;
    let mut events = Vec::new();
    for batch in &batches {
        events.extend(rows_of(batch)?);
    }
    Ok(events)
}

fn rows_of(batch: &RecordBatch) -> Result<Vec<EventRow>> {
    let missing = |name: &str| Error::state(format!("the event log has no column `{name}`"));
    let text = |name: &str| -> Result<StringArray> {
        let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
        let as_text = cast(column, &DataType::Utf8).map_err(|cause| Error::state(name.to_string()).caused_by(cause))?;
        as_text.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| missing(name))
    };
    let number = |name: &str| -> Result<Int64Array> {
        let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
        let as_number =
            cast(column, &DataType::Int64).map_err(|cause| Error::state(name.to_string()).caused_by(cause))?;
        as_number.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| missing(name))
    };
    let at_column = batch.column_by_name("at").ok_or_else(|| missing("at"))?;
    let at = cast(at_column, &DataType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, None))
        .map_err(|cause| Error::state("at").caused_by(cause))?;
    let at = at.as_any().downcast_ref::<TimestampMicrosecondArray>().cloned().ok_or_else(|| missing("at"))?;
    let (pipeline, kind, table, position, error_kind, message, actor) = (
        text("pipeline")?,
        text("kind")?,
        text("table")?,
        text("position")?,
        text("error_kind")?,
        text("message")?,
        text("actor")?,
    );
    let (rows, bytes) = (number("rows")?, number("bytes")?);
    let (delta_version, duration_ms) = (number("delta_version")?, number("duration_ms")?);
    // A log made before the column was added, and not appended to since, lacks it.
    let lag_ms = batch.column_by_name("lag_ms").map(|_| number("lag_ms")).transpose()?;
    let text_at = |array: &StringArray, row: usize| (!array.is_null(row)).then(|| array.value(row).to_string());
    let number_at = |array: &Int64Array, row: usize| (!array.is_null(row)).then(|| array.value(row));
    Ok((0..batch.num_rows())
        .map(|row| EventRow {
            at: DateTime::from_timestamp_micros(at.value(row)).unwrap_or_default(),
            pipeline: pipeline.value(row).to_string(),
            kind: kind.value(row).to_string(),
            table: text_at(&table, row),
            rows: number_at(&rows, row),
            bytes: number_at(&bytes, row),
            delta_version: number_at(&delta_version, row),
            position: text_at(&position, row),
            duration_ms: number_at(&duration_ms, row),
            error_kind: text_at(&error_kind, row),
            message: text_at(&message, row),
            actor: text_at(&actor, row),
            lag_ms: lag_ms.as_ref().and_then(|lag_ms| number_at(lag_ms, row)),
        })
        .collect())
}
