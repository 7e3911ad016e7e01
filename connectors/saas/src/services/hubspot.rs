//! HubSpot CRM: the search API (`POST /crm/v3/objects/{type}/search`) filtered on the last-modified property
//! and sorted by it, then the archived list (`GET /crm/v3/objects/{type}?archived=true`) for deletes.
//!
//! Search results are read by key set: each page restarts the search at the last modified time seen
//! (`GTE`), so records updated while paging are not skipped and the 10,000-result cap of a search never
//! binds; `after` paging is used only inside a run of records modified in the same millisecond.

use std::sync::Arc;
use std::time::Duration;

use connector_core::arrow::datatypes::DataType;
use connector_core::change::Operation;
use connector_core::error::Result;
use connector_core::schema::Column;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{state_error, unexpected_answer};
use crate::client::{ApiClient, ApiRequest};
use crate::codec::timestamp;
use crate::config::SaasConfig;
use crate::schema::timestamp_type;
use crate::stream::{Page, RecordChange, StreamReader, StreamShape, records_of};

pub const KIND: &str = "hubspot";

/// Results per search page: the most HubSpot allows.
const SEARCH_PAGE_SIZE: u64 = 200;
/// Objects per page of the archived list.
const LIST_PAGE_SIZE: &str = "100";

/// The standard objects; any other name is taken as a custom object type (`p_cars`, `2-123456`).
const STANDARD_OBJECTS: &[&str] = &["contacts", "companies", "deals", "tickets", "products", "line_items"];

pub fn stream(name: &str, config: &SaasConfig) -> Result<Arc<dyn StreamReader>> {
    // Contacts carry `lastmodifieddate`; every other object `hs_lastmodifieddate`.
    let modified = if name == "contacts" { "lastmodifieddate" } else { "hs_lastmodifieddate" };
    if !STANDARD_OBJECTS.contains(&name) {
        tracing::info!(object = name, "not a standard HubSpot object; reading it as a custom object type");
    }
    let shape = StreamShape {
        name: name.to_string(),
        key: vec!["id".into()],
        declared: vec![
            Column::new("id", DataType::Utf8, "string"),
            Column::new("createdAt", timestamp_type(), "datetime"),
            Column::new("updatedAt", timestamp_type(), "datetime"),
            Column::new("archived", DataType::Boolean, "boolean"),
        ],
        declared_only: false,
        modified: Some("updatedAt".into()),
    };
    Ok(Arc::new(HubspotStream {
        shape,
        modified,
        properties: config.hubspot_properties.get(name).cloned().unwrap_or_default(),
    }))
}

/// Where a HubSpot stream stands. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum HubspotState {
    Search { since: i64, after: Option<String>, newest: i64, deletes_since: Option<i64> },
    Archived { after: Option<String>, newest: i64, deletes_since: Option<i64> },
    Done { newest: i64 },
}

#[derive(Debug)]
struct HubspotStream {
    shape: StreamShape,
    modified: &'static str,
    properties: Vec<String>,
}

impl StreamReader for HubspotStream {
    fn shape(&self) -> &StreamShape {
        &self.shape
    }

    fn start_pass(&self, committed: Option<&Value>, lookback: Duration) -> Result<Value> {
        let state = match committed {
            None => HubspotState::Search { since: 0, after: None, newest: 0, deletes_since: None },
            Some(state) => match self.parse(state)? {
                HubspotState::Done { newest } => {
                    let since = newest - lookback.as_millis() as i64;
                    HubspotState::Search { since, after: None, newest, deletes_since: Some(since) }
                }
                unfinished => unfinished,
            },
        };
        serde_json::to_value(state).map_err(|cause| state_error(&self.shape.name, cause))
    }

    fn next_page<'a>(&'a self, client: &'a ApiClient, state: &'a Value) -> BoxFuture<'a, Result<Page>> {
        async move {
            let (changes, next) = match self.parse(state)? {
                HubspotState::Search { since, after, mut newest, deletes_since } => {
                    let mut body = json!({
                        "filterGroups": [{"filters": [
                            {"propertyName": self.modified, "operator": "GTE", "value": since.to_string()}
                        ]}],
                        "sorts": [{"propertyName": self.modified, "direction": "ASCENDING"}],
                        "limit": SEARCH_PAGE_SIZE,
                    });
                    if !self.properties.is_empty() {
                        body["properties"] = json!(self.properties);
                    }
                    if let Some(after) = &after {
                        body["after"] = json!(after);
                    }
                    let path = format!("crm/v3/objects/{}/search", self.shape.name);
                    let mut response = client.send(&self.shape.name, &ApiRequest::post(path, body)).await?;
                    let results = self.results(&mut response.body)?;
                    let mut last = since;
                    let changes: Vec<RecordChange> = results
                        .into_iter()
                        .map(|result| {
                            let record = flatten(result);
                            last = record.get(self.modified).and_then(timestamp).map_or(last, |micros| micros / 1000);
                            RecordChange::upsert(Operation::Update, record)
                        })
                        .collect();
                    newest = newest.max(last);
                    let next_after = next_after(&response.body);
                    let next = match next_after {
                        None => HubspotState::Archived { after: None, newest, deletes_since },
                        // Restart at the newest time seen; page by `after` only through a run of equal times.
                        Some(_) if last > since => {
                            HubspotState::Search { since: last, after: None, newest, deletes_since }
                        }
                        Some(after) => HubspotState::Search { since, after: Some(after), newest, deletes_since },
                    };
                    (changes, next)
                }
                HubspotState::Archived { after, newest, deletes_since } => {
                    let mut request = ApiRequest::get(format!("crm/v3/objects/{}", self.shape.name))
                        .query("archived", "true")
                        .query("limit", LIST_PAGE_SIZE);
                    if let Some(after) = &after {
                        request = request.query("after", after.clone());
                    }
                    let mut response = client.send(&self.shape.name, &request).await?;
                    let changes = self
                        .results(&mut response.body)?
                        .into_iter()
                        .filter(|result| {
                            let archived_at = result.get("archivedAt").and_then(timestamp).map(|micros| micros / 1000);
                            match (deletes_since, archived_at) {
                                (Some(since), Some(at)) => at >= since,
                                _ => true,
                            }
                        })
                        .map(|result| RecordChange::delete(flatten(result)))
                        .collect();
                    let next = match next_after(&response.body) {
                        Some(after) => HubspotState::Archived { after: Some(after), newest, deletes_since },
                        None => HubspotState::Done { newest },
                    };
                    (changes, next)
                }
                HubspotState::Done { newest } => (Vec::new(), HubspotState::Done { newest }),
            };
            let caught_up = matches!(next, HubspotState::Done { .. });
            let state = serde_json::to_value(next).map_err(|cause| state_error(&self.shape.name, cause))?;
            Ok(Page::new(changes, state, caught_up))
        }
        .boxed()
    }
}

impl HubspotStream {
    fn parse(&self, state: &Value) -> Result<HubspotState> {
        serde_json::from_value(state.clone()).map_err(|cause| state_error(&self.shape.name, cause))
    }

    fn results(&self, body: &mut Value) -> Result<Vec<Map<String, Value>>> {
        records_of(body.get_mut("results"), "`results` list")
            .map_err(|what| unexpected_answer(KIND, &self.shape.name, what))
    }
}

/// `paging.next.after`, when another page follows.
fn next_after(body: &Value) -> Option<String> {
    match body.pointer("/paging/next/after")? {
        Value::String(after) => Some(after.clone()),
        Value::Number(after) => Some(after.to_string()),
        _ => None,
    }
}

/// A CRM object as one row: `id`, `createdAt`, `updatedAt`, `archived`, then each property as a column.
fn flatten(mut result: Map<String, Value>) -> Map<String, Value> {
    let properties = match result.remove("properties") {
        Some(Value::Object(properties)) => properties,
        _ => Map::new(),
    };
    for (name, value) in properties {
        result.entry(name).or_insert(value);
    }
    result
}
