//! Stripe: a backfill through the list endpoints (`starting_after` paging, newest first), then the events API
//! (`/v1/events`, oldest first by `ending_before`) for every later change, deletes included (`customer.deleted`).
//!
//! The newest event is noted before the backfill starts, so changes made while the backfill runs are replayed
//! from the events afterwards: the table converges to the object's last state whatever the interleaving.
//! Stripe keeps events for 30 days; a stream left unsynced longer must be resynced.

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
use serde_json::value::RawValue;

use super::{state_error, unexpected_answer, unknown_stream};
use crate::client::{ApiClient, ApiRequest};
use crate::codec::timestamp;
use crate::schema::timestamp_type;
use crate::stream::{Page, RecordChange, StreamReader, StreamShape, UnparsedRecords, records_of};

pub const KIND: &str = "stripe";

/// Objects per page: the most Stripe allows.
const PAGE_SIZE: &str = "100";

/// A Stripe stream: its list endpoint, the `object` its events carry, and whether `*.deleted` removes it.
struct StripeObject {
    stream: &'static str,
    object: &'static str,
    list: &'static str,
    /// The event `type` filter (Stripe accepts one `*` wildcard).
    events: &'static str,
    deleted_by_event: bool,
    list_query: &'static [(&'static str, &'static str)],
}

const OBJECTS: &[StripeObject] = &[
    StripeObject {
        stream: "customers",
        object: "customer",
        list: "v1/customers",
        events: "customer.*",
        deleted_by_event: true,
        list_query: &[],
    },
    StripeObject {
        stream: "invoices",
        object: "invoice",
        list: "v1/invoices",
        events: "invoice.*",
        deleted_by_event: true,
        list_query: &[],
    },
    StripeObject {
        stream: "charges",
        object: "charge",
        list: "v1/charges",
        events: "charge.*",
        deleted_by_event: false,
        list_query: &[],
    },
    StripeObject {
        stream: "products",
        object: "product",
        list: "v1/products",
        events: "product.*",
        deleted_by_event: true,
        list_query: &[],
    },
    StripeObject {
        stream: "subscriptions",
        object: "subscription",
        list: "v1/subscriptions",
        // `customer.subscription.deleted` means the subscription ended; the object stays.
        events: "customer.subscription.*",
        deleted_by_event: false,
        list_query: &[("status", "all")],
    },
];

pub fn stream(name: &str) -> Result<Arc<dyn StreamReader>> {
    let object = OBJECTS
        .iter()
        .find(|object| object.stream == name)
        .ok_or_else(|| unknown_stream(KIND, name, &OBJECTS.iter().map(|object| object.stream).collect::<Vec<_>>()))?;
    let shape = StreamShape {
        name: name.to_string(),
        key: vec!["id".into()],
        declared: vec![
            Column::new("id", DataType::Utf8, "string"),
            Column::new("created", timestamp_type(), "timestamp (epoch seconds)"),
        ],
        declared_only: false,
        // `created` is when an object was made, not changed; Stripe objects carry no modification time.
        modified: None,
    };
    Ok(Arc::new(StripeStream { object, shape }))
}

/// A list page with its objects left as JSON text.
#[derive(Deserialize)]
struct UnparsedList {
    data: Option<Vec<Box<RawValue>>>,
    has_more: Option<bool>,
}

/// The id of a listed object.
#[derive(Deserialize)]
struct ObjectId {
    id: Option<String>,
}

/// Where a Stripe stream stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum StripeState {
    /// Listing every object; `events_after` is the newest event before the listing began.
    Backfill { anchored: bool, starting_after: Option<String>, events_after: Option<String>, since: i64 },
    /// Applying events newer than `events_after`; without one, events created at or after `since`.
    Events { events_after: Option<String>, since: i64 },
}

struct StripeStream {
    object: &'static StripeObject,
    shape: StreamShape,
}

impl std::fmt::Debug for StripeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeStream").field("stream", &self.object.stream).finish()
    }
}

impl StreamReader for StripeStream {
    fn shape(&self) -> &StreamShape {
        &self.shape
    }

    fn start_pass(&self, committed: Option<&Value>, lookback: Duration) -> Result<Value> {
        match committed {
            Some(state) => Ok(state.clone()),
            None => {
                let since = chrono::Utc::now().timestamp() - lookback.as_secs() as i64;
                let state = StripeState::Backfill { anchored: false, starting_after: None, events_after: None, since };
                serde_json::to_value(state).map_err(|cause| state_error(&self.shape.name, cause))
            }
        }
    }

    fn next_page<'a>(&'a self, client: &'a ApiClient, state: &'a Value) -> BoxFuture<'a, Result<Page>> {
        async move {
            let state: StripeState =
                serde_json::from_value(state.clone()).map_err(|cause| state_error(&self.shape.name, cause))?;
            let (changes, unparsed, next, caught_up, changed_at) = match state {
                StripeState::Backfill { anchored, starting_after, mut events_after, since } => {
                    if !anchored {
                        events_after = self.newest_event(client).await?;
                    }
                    let (objects, last, has_more) = self.list_page(client, starting_after.as_deref()).await?;
                    let next = if has_more {
                        StripeState::Backfill { anchored: true, starting_after: last, events_after, since }
                    } else {
                        StripeState::Events { events_after, since }
                    };
                    let unparsed = UnparsedRecords { operation: Operation::Insert, records: objects };
                    (Vec::new(), Some(unparsed), next, false, None)
                }
                StripeState::Events { events_after: Some(after), since } => {
                    let mut response = client
                        .send(&self.shape.name, &self.events_request().query("ending_before", after.clone()))
                        .await?;
                    let (events, has_more) = self.list_of(&mut response.body)?;
                    // Stripe lists newest first: the first event is the newest of the page.
                    let newest = events.first().and_then(|event| event.get("id")).and_then(Value::as_str);
                    let next = StripeState::Events { events_after: Some(newest.unwrap_or(&after).to_string()), since };
                    let changes = events.iter().rev().filter_map(|event| self.change_of(event)).collect();
                    (changes, None, next, !has_more, newest_event_time(&events))
                }
                StripeState::Events { events_after: None, since } => {
                    // No event existed when the backfill began: find the oldest since then, walking back.
                    let mut oldest: Option<serde_json::Map<String, Value>> = None;
                    loop {
                        let mut request = self.events_request().query("created[gte]", since.to_string());
                        if let Some(id) = oldest.as_ref().and_then(|event| event.get("id")).and_then(Value::as_str) {
                            request = request.query("starting_after", id);
                        }
                        let mut response = client.send(&self.shape.name, &request).await?;
                        let (events, has_more) = self.list_of(&mut response.body)?;
                        if let Some(last) = events.into_iter().last() {
                            oldest = Some(last);
                        }
                        if !has_more {
                            break;
                        }
                    }
                    match oldest {
                        None => (Vec::new(), None, StripeState::Events { events_after: None, since }, true, None),
                        Some(event) => {
                            let id = event.get("id").and_then(Value::as_str).map(str::to_string);
                            let changes = self.change_of(&event).into_iter().collect();
                            let changed_at = newest_event_time(std::slice::from_ref(&event));
                            (changes, None, StripeState::Events { events_after: id, since }, false, changed_at)
                        }
                    }
                }
            };
            let state = serde_json::to_value(next).map_err(|cause| state_error(&self.shape.name, cause))?;
            Ok(Page { changes, unparsed, state, caught_up, changed_at })
        }
        .boxed()
    }
}

/// When the newest of `events` happened (their `created`, epoch seconds), in microseconds since the epoch.
fn newest_event_time(events: &[serde_json::Map<String, Value>]) -> Option<i64> {
    events.iter().filter_map(|event| event.get("created")).filter_map(timestamp).max()
}

impl StripeStream {
    fn events_request(&self) -> ApiRequest {
        ApiRequest::get("v1/events").query("type", self.object.events).query("limit", PAGE_SIZE)
    }

    async fn newest_event(&self, client: &ApiClient) -> Result<Option<String>> {
        let request = ApiRequest::get("v1/events").query("type", self.object.events).query("limit", "1");
        let mut response = client.send(&self.shape.name, &request).await?;
        let (events, _) = self.list_of(&mut response.body)?;
        Ok(events.first().and_then(|event| event.get("id")).and_then(Value::as_str).map(str::to_string))
    }

    /// One page of the list endpoint: its objects (as JSON text), the id to continue after, and whether more
    /// follow. Only the last object's id is parsed here, so the next page is asked for while this one's objects
    /// are parsed where the page is taken.
    async fn list_page(
        &self,
        client: &ApiClient,
        starting_after: Option<&str>,
    ) -> Result<(Vec<Box<RawValue>>, Option<String>, bool)> {
        let mut request = ApiRequest::get(self.object.list).query("limit", PAGE_SIZE);
        for (name, value) in self.object.list_query {
            request = request.query(*name, *value);
        }
        if let Some(id) = starting_after {
            request = request.query("starting_after", id);
        }
        let unexpected = |what: &str| unexpected_answer(KIND, &self.shape.name, what);
        let list = client.send_as::<UnparsedList>(&self.shape.name, &request).await?.body;
        let objects = list.data.ok_or_else(|| unexpected("the list has no `data`"))?;
        let has_more = list.has_more.ok_or_else(|| unexpected("the list has no `has_more`"))?;
        if objects.iter().any(|object| !object.get().starts_with('{')) {
            return Err(unexpected("an item of `data` is not an object"));
        }
        let last = match objects.last() {
            Some(object) => serde_json::from_str::<ObjectId>(object.get()).ok().and_then(|object| object.id),
            None => None,
        };
        if has_more && last.is_none() {
            return Err(unexpected("has_more is true but the page has no object id"));
        }
        Ok((objects, last, has_more))
    }

    /// A Stripe list object: `{"object": "list", "data": [...], "has_more": bool}`.
    fn list_of(&self, body: &mut Value) -> Result<(Vec<serde_json::Map<String, Value>>, bool)> {
        let items = records_of(body.get_mut("data"), "`data` list")
            .map_err(|what| unexpected_answer(KIND, &self.shape.name, what))?;
        let has_more = body
            .get("has_more")
            .and_then(Value::as_bool)
            .ok_or_else(|| unexpected_answer(KIND, &self.shape.name, "the list has no `has_more`"))?;
        Ok((items, has_more))
    }

    /// The change an event describes, if it is about this stream's object.
    fn change_of(&self, event: &serde_json::Map<String, Value>) -> Option<RecordChange> {
        let object = event.get("data")?.get("object")?.as_object()?;
        if object.get("object").and_then(Value::as_str) != Some(self.object.object) {
            return None;
        }
        let kind = event.get("type").and_then(Value::as_str).unwrap_or_default();
        Some(if self.object.deleted_by_event && kind.ends_with(".deleted") {
            RecordChange::delete(object.clone())
        } else if kind.ends_with(".created") {
            RecordChange::upsert(Operation::Insert, object.clone())
        } else {
            RecordChange::upsert(Operation::Update, object.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stripe_events_page_is_dated_by_its_newest_event() {
        // Newest first, as Stripe lists them; `created` in epoch seconds.
        let events: Vec<serde_json::Map<String, Value>> =
            [json!({"id": "evt_2", "created": 1_714_557_600}), json!({"id": "evt_1", "created": 1_714_557_500})]
                .into_iter()
                .filter_map(|event| event.as_object().cloned())
                .collect();
        assert_eq!(newest_event_time(&events), Some(1_714_557_600_000_000));
        assert_eq!(newest_event_time(&[]), None);
    }
}
