//! A SaaS pipeline: each stream of the service is one of the engine's polled streams, read page by page from
//! its API state, which the engine commits with the records read up to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use connector_core::arrow::datatypes::Field;
use connector_core::capture_settings::DEFAULT_BATCH_BYTES;
use connector_core::change::Operation;
use connector_core::delta::{DeltaSink, Destination};
use connector_core::engine::{DecodedRows, PollSettings, PolledPage, PolledStream, RecordDecoder, poll_streams};
use connector_core::error::{Error, Result};
use connector_core::options::TableOptions;
use connector_core::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode};
use connector_core::schema::{TableId, TableSchema};
use serde_json::Value;

use crate::auth::Credentials;
use crate::client::ApiClient;
use crate::codec::{record_batch, timestamp};
use crate::config::SaasConfig;
use crate::excerpt::excerpt;
use crate::schema::StreamSchema;
use crate::stream::{Page, RecordChange, StreamReader};

/// How long records read from an API may wait before they are committed, in a pass that has not caught up.
/// A pass ends (and commits) when caught up, so this bounds only long passes over slow APIs: long enough that
/// a few pages a second do not make a commit each.
const BATCH_WAIT: Duration = Duration::from_secs(60);

/// A SaaS source bound to its Delta tables.
#[derive(Debug)]
pub struct SaasPipeline {
    config: Arc<SaasConfig>,
    streams: Vec<Arc<SaasStream>>,
    sink: DeltaSink,
}

impl SaasPipeline {
    pub fn new(config: SaasConfig) -> Result<Self> {
        let credentials = match &config.auth {
            Some(settings) => Credentials::from_settings(settings, &config.base_url, &|name| std::env::var(name).ok())?,
            None => Credentials::anonymous(),
        };
        let client =
            ApiClient::new(config.service.kind(), config.base_url.clone(), credentials, config.limits.clone())?;
        let readers = config.service.streams(&config)?;
        let sink = DeltaSink::new(Destination::parse(&config.dest)?, config.pipeline.clone(), HashMap::new());
        let config = Arc::new(config);
        let streams = readers
            .into_iter()
            .map(|reader| {
                let (config, client) = (config.clone(), client.clone());
                Arc::new(SaasStream { config, client, reader, newest_change_seen: Mutex::new(None) })
            })
            .collect();
        Ok(SaasPipeline { config, streams, sink })
    }
}

impl Pipeline for SaasPipeline {
    fn name(&self) -> &str {
        &self.config.pipeline
    }

    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        let settings = PollSettings {
            batch_records: self.config.batch_records,
            batch_bytes: DEFAULT_BATCH_BYTES,
            poll_interval: self.config.poll_interval,
            commit_interval: BATCH_WAIT,
        };
        Box::pin(poll_streams(&self.streams, &self.sink, settings, mode, shutdown))
    }
}

/// One stream of the service, as the engine polls it: its token is the stream's API state as JSON text.
#[derive(Debug)]
struct SaasStream {
    config: Arc<SaasConfig>,
    client: ApiClient,
    reader: Arc<dyn StreamReader>,
    /// The newest change time read, in microseconds since the epoch (see [`SaasStream::newly_changed_at`]).
    newest_change_seen: Mutex<Option<i64>>,
}

impl SaasStream {
    /// When the service changed the page's newest record, if that is later than every change the stream read
    /// since the process started. Records a pass reads again (its look-back) would otherwise pass for lag of
    /// however long the service was quiet; so the first page after a start only sets the mark.
    fn newly_changed_at(&self, page: &Page) -> Option<DateTime<Utc>> {
        let in_records = || {
            let field = self.reader.shape().modified.as_deref()?;
            page.changes.iter().filter_map(|change| change.record.get(field)).filter_map(timestamp).max()
        };
        let newest = page.changed_at.or_else(in_records)?;
        let mut seen = self.newest_change_seen.lock().unwrap_or_else(PoisonError::into_inner);
        let before = *seen;
        *seen = before.max(Some(newest));
        before.filter(|&before| newest > before).and_then(|_| DateTime::from_timestamp_micros(newest))
    }

    /// The stream's API state in a committed token; `None`: read from the start (tables that a resync
    /// restarted before tokens could be absent hold `null`).
    fn committed_state(&self, token: &str) -> Result<Option<Value>> {
        let state: Value = serde_json::from_str(token).map_err(|cause| {
            let id = self.table_id();
            Error::state(format!(
                "{id}: the committed API cursor is not JSON; resync the stream (connector resync --pipeline {} \
                 --table {id})",
                self.config.pipeline
            ))
            .caused_by(cause)
        })?;
        Ok((!state.is_null()).then_some(state))
    }
}

impl PolledStream for SaasStream {
    type Records = Page;
    type Decoder = RecordRows;

    fn table_id(&self) -> TableId {
        TableId::new(&self.config.namespace, &self.reader.shape().name)
    }

    async fn prepare(&self) -> Result<TableSchema> {
        self.reader.prepare(&self.client).await?;
        StreamSchema::new(self.table_id(), self.reader.shape(), &[]).table_schema()
    }

    fn table_options(&self) -> TableOptions {
        self.config.options_for(&self.reader.shape().name)
    }

    fn decoder(&self, existing: &[Field]) -> Result<RecordRows> {
        let shape = self.reader.shape();
        RecordRows::new(StreamSchema::new(self.table_id(), shape, existing), shape.key.clone())
    }

    fn start_pass(&self, committed: Option<&str>) -> Result<String> {
        let state = committed.map(|token| self.committed_state(token)).transpose()?.flatten();
        Ok(self.reader.start_pass(state.as_ref(), self.config.lookback)?.to_string())
    }

    async fn next_page(&self, token: &str) -> Result<PolledPage<Page>> {
        let state: Value = serde_json::from_str(token).map_err(|cause| {
            Error::state(format!("internal: a page state of {} is not JSON", self.table_id())).caused_by(cause)
        })?;
        let page = self.reader.next_page(&self.client, &state).await?;
        let (token, caught_up) = (page.state.to_string(), page.caught_up);
        let source_time = self.newly_changed_at(&page);
        Ok(PolledPage { records: page, token, caught_up, source_time })
    }
}

/// A stream's records as rows of its columns, which gain a column for every field first seen.
#[derive(Debug)]
struct RecordRows {
    schema: StreamSchema,
    /// `schema` as a table schema, rebuilt only when a page brings a new field.
    columns: TableSchema,
    key: Vec<String>,
}

impl RecordRows {
    fn new(schema: StreamSchema, key: Vec<String>) -> Result<Self> {
        let columns = schema.table_schema()?;
        Ok(RecordRows { schema, columns, key })
    }
}

impl RecordDecoder for RecordRows {
    type Records = Page;

    fn decode(&mut self, mut page: Page) -> Result<Option<DecodedRows>> {
        let changes = page.take_changes(&self.schema.id().to_string())?;
        if changes.is_empty() {
            return Ok(None);
        }
        check_keys(self.schema.id(), &self.key, &changes)?;
        if self.schema.observe(&changes) {
            self.columns = self.schema.table_schema()?;
        }
        let rows = record_batch(&self.columns, &changes)?;
        let operations: Vec<Operation> = changes.iter().map(|change| change.operation).collect();
        Ok(Some(DecodedRows { rows, operations }))
    }

    fn schema(&self) -> &TableSchema {
        &self.columns
    }
}

/// Refuses records without the stream's key: they could not be merged.
fn check_keys(id: &TableId, key: &[String], changes: &[RecordChange]) -> Result<()> {
    for key in key {
        if let Some(change) = changes.iter().find(|change| change.record.get(key).is_none_or(Value::is_null)) {
            let shown = excerpt(Value::Object(change.record.clone()).to_string(), 200);
            return Err(Error::schema(
                id,
                format!("{id}: a record has no `{key}`, the stream's key, so it cannot be merged: {shown}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn saas_record_without_its_key_is_shown_cut_on_a_character_boundary() {
        let id = TableId::new("rest", "items");
        // `{"name":"ab` is 11 bytes, then two-byte characters: byte 200 falls inside one.
        let record = json!({"name": format!("ab{}", "é".repeat(150))});
        let changes = vec![RecordChange::upsert(Operation::Update, record.as_object().cloned().expect("object"))];
        let error = check_keys(&id, &["id".to_string()], &changes).expect_err("no key");
        assert!(error.to_string().contains("a record has no `id`") && error.to_string().contains("abéé"), "{error}");
    }
}
