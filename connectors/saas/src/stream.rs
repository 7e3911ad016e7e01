//! What a connector tells the engine about one stream, and the contract of reading it.
//!
//! A stream is read page by page. Each page carries the stream's state *after* it: reading from that state
//! again must return what follows the page, so committing the state with the page's records (one Delta
//! commit) makes a sync resumable at any page. Re-reading records is harmless (every change is a keyed
//! upsert or delete), skipping is not: a state must never point past a record that is not in the page.

use std::fmt;
use std::time::Duration;

use connector_core::change::Operation;
use connector_core::error::{Error, Result};
use connector_core::schema::Column;
use futures::future::BoxFuture;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::client::ApiClient;

/// One record read from the API, and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChange {
    /// [`Operation::Insert`] or [`Operation::Update`] upsert the record; [`Operation::Delete`] removes the row
    /// with the record's key (its other fields may be missing).
    pub operation: Operation,
    pub record: Map<String, Value>,
}

impl RecordChange {
    pub fn upsert(operation: Operation, record: Map<String, Value>) -> Self {
        RecordChange { operation, record }
    }

    pub fn delete(record: Map<String, Value>) -> Self {
        RecordChange { operation: Operation::Delete, record }
    }
}

/// One page of a stream.
#[derive(Debug, Clone)]
pub struct Page {
    /// In the order the API reports them; a later change of the same key wins.
    pub changes: Vec<RecordChange>,
    /// Records after `changes`, still as JSON text. A reader that needs only its cursor from a page (say the
    /// last id) leaves the records unparsed: they become [`RecordChange`]s where the page is taken, on
    /// another task, while the reader already waits for the next page.
    pub unparsed: Option<UnparsedRecords>,
    /// The stream's state after this page.
    pub state: Value,
    /// The pass is over: the stream is caught up with the API as of now.
    pub caught_up: bool,
    /// When the service made the page's newest change (microseconds since the epoch), for readers whose
    /// records do not say it in a field (Stripe's events); others name the field in [`StreamShape::modified`].
    pub changed_at: Option<i64>,
}

/// Records of one operation still as JSON text (already checked to be JSON).
#[derive(Debug, Clone)]
pub struct UnparsedRecords {
    pub operation: Operation,
    pub records: Vec<Box<RawValue>>,
}

impl Page {
    pub fn new(changes: Vec<RecordChange>, state: Value, caught_up: bool) -> Self {
        Page { changes, unparsed: None, state, caught_up, changed_at: None }
    }

    /// Every change of the page, its unparsed records parsed (readers hand over JSON objects only).
    pub fn take_changes(&mut self, stream: &str) -> Result<Vec<RecordChange>> {
        let mut changes = std::mem::take(&mut self.changes);
        if let Some(UnparsedRecords { operation, records }) = self.unparsed.take() {
            changes.reserve(records.len());
            for record in records {
                let record = serde_json::from_str(record.get()).map_err(|cause| {
                    Error::state(format!("stream `{stream}`: a record is not a JSON object")).caused_by(cause)
                })?;
                changes.push(RecordChange { operation, record });
            }
        }
        Ok(changes)
    }
}

/// A stream's shape: the Delta table it lands in.
#[derive(Debug, Clone)]
pub struct StreamShape {
    pub name: String,
    /// Fields identifying a record; deletes are matched on them.
    pub key: Vec<String>,
    /// Columns whose type the service documents; other fields are inferred from the records.
    pub declared: Vec<Column>,
    /// Only declared columns land (a declarative stream may list its columns and ignore the rest).
    pub declared_only: bool,
    /// The field telling when the service last changed a record, where records carry one: the lag behind the
    /// source is measured from it.
    pub modified: Option<String>,
}

/// One stream of a service.
pub trait StreamReader: Send + Sync + fmt::Debug {
    /// Asks the API what the stream needs to know before its table is opened (Salesforce describes its object's
    /// fields). Called once per sync, before [`StreamReader::shape`] is used; most streams know their shape
    /// without asking, hence the no-op default.
    fn prepare<'a>(&'a self, _client: &'a ApiClient) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// The stream's table. Streams that [`StreamReader::prepare`] return their full shape only after it.
    fn shape(&self) -> &StreamShape;

    /// The state a pass starts from, given the state committed last (`None`: never synced). A stream that
    /// finished its previous pass starts the next one `lookback` before the newest change it saw.
    fn start_pass(&self, committed: Option<&Value>, lookback: Duration) -> Result<Value>;

    /// Reads the page that follows `state`.
    fn next_page<'a>(&'a self, client: &'a ApiClient, state: &'a Value) -> BoxFuture<'a, Result<Page>>;
}

/// The object at `path` (dot-separated) in `value`.
pub fn value_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |current, segment| current.get(segment))
}

/// The object at `path` (dot-separated) in `value`, for taking it out.
pub fn value_at_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |current, segment| current.get_mut(segment))
}

/// Takes the records (JSON objects) out of `items`, or says what was found instead.
pub fn records_of(items: Option<&mut Value>, what: &str) -> std::result::Result<Vec<Map<String, Value>>, String> {
    match items {
        Some(Value::Array(items)) => std::mem::take(items)
            .into_iter()
            .map(|item| match item {
                Value::Object(record) => Ok(record),
                other => Err(format!("{what} holds a {} where a record (JSON object) was expected", kind_of(&other))),
            })
            .collect(),
        Some(Value::Null) | None => Err(format!("the response has no {what}")),
        Some(other) => Err(format!("{what} is a {}, not a list", kind_of(other))),
    }
}

pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unparsed_records_follow_the_parsed_changes_in_order() {
        let parsed = RecordChange::delete(json!({"id": "a"}).as_object().cloned().expect("object"));
        let raw = |text: &str| RawValue::from_string(text.to_string()).expect("json");
        let mut page = Page::new(vec![parsed.clone()], json!({"after": "c"}), false);
        page.unparsed = Some(UnparsedRecords {
            operation: Operation::Insert,
            records: vec![raw(r#"{"id": "b", "n": 1}"#), raw(r#"{"id": "c", "n": 2}"#)],
        });
        let changes = page.take_changes("customers").expect("changes");
        let ids: Vec<(Operation, &str)> =
            changes.iter().map(|change| (change.operation, change.record["id"].as_str().expect("id"))).collect();
        assert_eq!(ids, vec![(Operation::Delete, "a"), (Operation::Insert, "b"), (Operation::Insert, "c")]);
        assert_eq!(changes[2].record["n"], json!(2));
        // Taken once: the page holds nothing more.
        assert!(page.take_changes("customers").expect("empty").is_empty());

        page.unparsed = Some(UnparsedRecords { operation: Operation::Insert, records: vec![raw("[1, 2]")] });
        let error = page.take_changes("customers").expect_err("a list is not a record");
        assert!(error.to_string().contains("stream `customers`: a record is not a JSON object"), "{error}");
    }
}
