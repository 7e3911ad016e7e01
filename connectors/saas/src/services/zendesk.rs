//! Zendesk Support: the cursor-based incremental exports (`/api/v2/incremental/{tickets,users}/cursor.json`).
//! The API's own cursor is the stream state: it survives between syncs, so a caught-up stream asks only for
//! what changed since (`end_of_stream` tells when it is caught up). Deleted tickets come back with
//! `status: "deleted"`.

use std::sync::Arc;
use std::time::Duration;

use connector_core::arrow::datatypes::DataType;
use connector_core::change::Operation;
use connector_core::error::Result;
use connector_core::schema::Column;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{state_error, unexpected_answer, unknown_stream};
use crate::client::{ApiClient, ApiRequest};
use crate::schema::timestamp_type;
use crate::stream::{Page, RecordChange, StreamReader, StreamShape, records_of};

pub const KIND: &str = "zendesk";

/// Records per export page: the most Zendesk allows.
const PAGE_SIZE: &str = "1000";

const STREAMS: &[&str] = &["tickets", "users"];

pub fn stream(name: &str) -> Result<Arc<dyn StreamReader>> {
    if !STREAMS.contains(&name) {
        return Err(unknown_stream(KIND, name, STREAMS));
    }
    let shape = StreamShape {
        name: name.to_string(),
        key: vec!["id".into()],
        declared: vec![
            Column::new("id", DataType::Int64, "integer"),
            Column::new("created_at", timestamp_type(), "date"),
            Column::new("updated_at", timestamp_type(), "date"),
        ],
        declared_only: false,
        modified: Some("updated_at".into()),
    };
    Ok(Arc::new(ZendeskStream { shape }))
}

/// The export cursor; before the first page, the start time (epoch seconds) of the export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ZendeskState {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    start_time: i64,
}

#[derive(Debug)]
struct ZendeskStream {
    shape: StreamShape,
}

impl StreamReader for ZendeskStream {
    fn shape(&self) -> &StreamShape {
        &self.shape
    }

    fn start_pass(&self, committed: Option<&Value>, _lookback: Duration) -> Result<Value> {
        // The export cursor already covers late updates: no look-back needed.
        Ok(committed.cloned().unwrap_or_else(|| serde_json::json!({"cursor": null, "start_time": 0})))
    }

    fn next_page<'a>(&'a self, client: &'a ApiClient, state: &'a Value) -> BoxFuture<'a, Result<Page>> {
        async move {
            let state: ZendeskState =
                serde_json::from_value(state.clone()).map_err(|cause| state_error(&self.shape.name, cause))?;
            let mut request = ApiRequest::get(format!("api/v2/incremental/{}/cursor.json", self.shape.name))
                .query("per_page", PAGE_SIZE);
            request = match &state.cursor {
                Some(cursor) => request.query("cursor", cursor.clone()),
                None => request.query("start_time", state.start_time.to_string()),
            };
            let mut response = client.send(&self.shape.name, &request).await?;
            let body = &mut response.body;
            let records = records_of(body.get_mut(self.shape.name.as_str()), &format!("`{}` list", self.shape.name))
                .map_err(|what| unexpected_answer(KIND, &self.shape.name, what))?;
            let end_of_stream = body
                .get("end_of_stream")
                .and_then(Value::as_bool)
                .ok_or_else(|| unexpected_answer(KIND, &self.shape.name, "the export page has no `end_of_stream`"))?;
            let cursor = match body.get("after_cursor") {
                Some(Value::String(cursor)) => Some(cursor.clone()),
                _ if end_of_stream => state.cursor.clone(),
                _ => return Err(unexpected_answer(KIND, &self.shape.name, "the export page has no `after_cursor`")),
            };
            let changes = records
                .into_iter()
                .map(|record| {
                    if record.get("status").and_then(Value::as_str) == Some("deleted") {
                        RecordChange::delete(record)
                    } else {
                        RecordChange::upsert(Operation::Update, record)
                    }
                })
                .collect();
            let next = ZendeskState { cursor, start_time: state.start_time };
            let state = serde_json::to_value(next).map_err(|cause| state_error(&self.shape.name, cause))?;
            Ok(Page::new(changes, state, end_of_stream))
        }
        .boxed()
    }
}
