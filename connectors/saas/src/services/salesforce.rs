//! Salesforce: SOQL through the REST API's `queryAll` (deleted records come back with `IsDeleted = true` and
//! become deletes), read by key set on (`SystemModstamp`, `Id`) and paged through `nextRecordsUrl`.
//!
//! A stream is an sObject (`Account`, `Contact`, a custom `Invoice__c`); its columns come from describing the
//! object once per sync (`GET services/data/{version}/sobjects/{name}/describe`), and its key is `Id`. Field
//! types map as follows:
//!
//! | Salesforce                                                            | Delta                  |
//! |-----------------------------------------------------------------------|------------------------|
//! | `id`, `string`, `picklist`, `multipicklist`, `textarea`, `email`,     | string                 |
//! | `phone`, `url`, `reference`, `combobox`, `encryptedstring`, `base64`, |                        |
//! | `time`, and any type not listed here                                  |                        |
//! | `boolean`                                                             | boolean                |
//! | `int`, `long`                                                         | bigint                 |
//! | `double`, `currency`, `percent`                                       | double                 |
//! | `datetime`                                                            | timestamp (µs, UTC)    |
//! | `date`                                                                | date                   |
//! | `address`, `location` (compound)                                      | left out: their parts  |
//! |                                                                       | are fields of their own|
//!
//! Each pass asks for the records after a key set, oldest first:
//! `SELECT … FROM Account WHERE SystemModstamp > t OR (SystemModstamp = t AND Id > 'last') ORDER BY
//! SystemModstamp ASC, Id ASC`, and follows the query's `nextRecordsUrl` until `done`. Every page's state is
//! the key set of its last record, so a sync stopped anywhere restarts the query from there: query locators
//! expire (15 minutes idle), key sets do not. The next pass starts `lookback` before the newest change seen.
//! Objects without `SystemModstamp` are read on `LastModifiedDate`; objects without `IsDeleted` through
//! `query` (they have no recycle bin). Records hard-deleted, or purged from the recycle bin (after 15 days),
//! before a sync sees them are not seen as deletes: resync the stream then.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::DateTime;
use connector_core::arrow::datatypes::DataType;
use connector_core::change::Operation;
use connector_core::error::{Error, Result};
use connector_core::schema::Column;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::{debug, warn};

use super::{state_error, unexpected_answer};
use crate::client::{ApiClient, ApiRequest, ApiResponse};
use crate::codec::timestamp;
use crate::config::SaasConfig;
use crate::schema::timestamp_type;
use crate::stream::{Page, RecordChange, StreamReader, StreamShape, records_of};

pub const KIND: &str = "salesforce";

/// Every record's key.
const KEY: &str = "Id";
/// Set on records in the recycle bin, which only `queryAll` returns.
const IS_DELETED: &str = "IsDeleted";
/// The error code of a query locator Salesforce no longer holds.
const EXPIRED_LOCATOR: &str = "INVALID_QUERY_LOCATOR";
/// The fields incremental reads may order by, best first: `SystemModstamp` also moves when the system changes
/// a record (a roll-up, a cascade), `LastModifiedDate` only when a user or integration does.
const MODIFIED_FIELDS: &[&str] = &["SystemModstamp", "LastModifiedDate"];

pub fn stream(name: &str, config: &SaasConfig) -> Result<Arc<dyn StreamReader>> {
    if !is_api_name(name) {
        return Err(Error::config(format!(
            "salesforce stream `{name}` is not an sObject API name (letters, digits and underscores, starting with \
             a letter: Account, Opportunity, Invoice__c)"
        )));
    }
    Ok(Arc::new(SalesforceStream {
        api_version: config.salesforce_api_version.clone(),
        undescribed: StreamShape {
            name: name.to_string(),
            key: vec![KEY.into()],
            declared: vec![Column::new(KEY, DataType::Utf8, "id")],
            declared_only: true,
            modified: None,
        },
        described: OnceLock::new(),
    }))
}

/// Whether `name` can name an object in a path and in SOQL without quoting.
fn is_api_name(name: &str) -> bool {
    name.chars().next().is_some_and(|first| first.is_ascii_alphabetic())
        && name.chars().all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// What describing the object told.
#[derive(Debug, Clone)]
struct Description {
    shape: StreamShape,
    /// The fields selected, in the describe's order.
    fields: Vec<String>,
    /// The field incremental reads order and filter by.
    modified: &'static str,
    /// The object has a recycle bin: `queryAll` returns its deleted records too.
    soft_deletes: bool,
}

/// Where a Salesforce stream stands. Times are microseconds since the epoch, UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum SalesforceState {
    /// Reading records after the key set (`since`, `last_id`) in (modified, `Id`) order: everything when `since`
    /// is `None`, every record modified at or after `since` when `last_id` is `None`. `next_records_url`
    /// continues the query that is open; `newest` is the greatest key set seen in the pass.
    Query {
        since: Option<i64>,
        last_id: Option<String>,
        next_records_url: Option<String>,
        newest: Option<i64>,
        newest_id: Option<String>,
    },
    /// The pass read everything up to the key set (`newest`, `newest_id`).
    Done { newest: Option<i64>, newest_id: Option<String> },
}

#[derive(Debug)]
struct SalesforceStream {
    api_version: String,
    /// The shape before the object is described: the name and key are known, the columns are not.
    undescribed: StreamShape,
    described: OnceLock<Description>,
}

impl StreamReader for SalesforceStream {
    fn prepare<'a>(&'a self, client: &'a ApiClient) -> BoxFuture<'a, Result<()>> {
        async move {
            if self.described.get().is_some() {
                return Ok(());
            }
            let path = format!("services/data/{}/sobjects/{}/describe", self.api_version, self.name());
            let response = client.send(self.name(), &ApiRequest::get(path)).await?;
            log_api_usage(self.name(), &response);
            let description = describe(self.name(), &response.body)?;
            // Two syncs of one stream never run at once; if they did, both descriptions are the same object's.
            let _ = self.described.set(description);
            Ok(())
        }
        .boxed()
    }

    fn shape(&self) -> &StreamShape {
        self.described.get().map_or(&self.undescribed, |description| &description.shape)
    }

    fn start_pass(&self, committed: Option<&Value>, lookback: Duration) -> Result<Value> {
        let committed = committed.map(|state| self.parse(state)).transpose()?;
        self.encode(start_state(committed, lookback))
    }

    fn next_page<'a>(&'a self, client: &'a ApiClient, state: &'a Value) -> BoxFuture<'a, Result<Page>> {
        async move {
            let description = self.described.get().ok_or_else(|| {
                Error::state(format!("salesforce stream `{}`: read before its object was described", self.name()))
            })?;
            let (since, last_id, next_records_url, newest) = match self.parse(state)? {
                SalesforceState::Query { since, last_id, next_records_url, newest, newest_id } => {
                    (since, last_id, next_records_url, newest.zip(newest_id))
                }
                done @ SalesforceState::Done { .. } => {
                    return Ok(Page::new(Vec::new(), self.encode(done)?, true));
                }
            };
            let endpoint = if description.soft_deletes { "queryAll" } else { "query" };
            let query = ApiRequest::get(format!("services/data/{}/{endpoint}", self.api_version))
                .query("q", soql(self.name(), description, since, last_id.as_deref()));
            let mut response = match &next_records_url {
                None => client.send(self.name(), &query).await?,
                Some(url) => match client.send(self.name(), &ApiRequest::get(url.clone())).await {
                    // The locator expired (15 minutes idle) or was released (too many open): the key set query
                    // reads what it had left.
                    Err(error) if error.to_string().contains(EXPIRED_LOCATOR) => {
                        warn!(
                            stream = self.name(),
                            "the query locator expired; querying again from the last record read"
                        );
                        client.send(self.name(), &query).await?
                    }
                    answer => answer?,
                },
            };
            log_api_usage(self.name(), &response);
            let records = records_of(response.body.get_mut("records"), "`records` list")
                .map_err(|what| unexpected_answer(KIND, self.name(), what))?;
            let done = response
                .body
                .get("done")
                .and_then(Value::as_bool)
                .ok_or_else(|| unexpected_answer(KIND, self.name(), "the query result has no `done` flag"))?;
            let next_url = response.body.get("nextRecordsUrl").and_then(Value::as_str).map(str::to_string);
            if !done && next_url.is_none() {
                return Err(unexpected_answer(KIND, self.name(), "`done` is false but there is no `nextRecordsUrl`"));
            }
            let mut changes = Vec::with_capacity(records.len());
            let mut keys = Vec::with_capacity(records.len());
            for mut record in records {
                record.remove("attributes");
                keys.push(self.key_set(description, &record)?);
                let deleted = record.get(IS_DELETED).and_then(Value::as_bool) == Some(true);
                changes.push(if deleted {
                    RecordChange::delete(record)
                } else {
                    RecordChange::upsert(Operation::Update, record)
                });
            }
            let position = Position { since, last_id, newest };
            if !in_key_order(&position, &keys) {
                warn!(
                    stream = self.name(),
                    "salesforce answered records out of (modified, Id) order; the page's key set is not trusted, so \
                     a resumed sync reads the page again"
                );
            }
            let next = after_page(position, keys, if done { None } else { next_url });
            let caught_up = matches!(next, SalesforceState::Done { .. });
            Ok(Page::new(changes, self.encode(next)?, caught_up))
        }
        .boxed()
    }
}

impl SalesforceStream {
    fn name(&self) -> &str {
        &self.undescribed.name
    }

    fn parse(&self, state: &Value) -> Result<SalesforceState> {
        serde_json::from_value(state.clone()).map_err(|cause| state_error(self.name(), cause))
    }

    fn encode(&self, state: SalesforceState) -> Result<Value> {
        serde_json::to_value(state).map_err(|cause| state_error(self.name(), cause))
    }

    /// The record's (modified time, `Id`), or an error saying which is missing.
    fn key_set(&self, description: &Description, record: &Map<String, Value>) -> Result<(i64, String)> {
        let modified = record.get(description.modified).and_then(timestamp).ok_or_else(|| {
            unexpected_answer(KIND, self.name(), format!("a record has no readable `{}`", description.modified))
        })?;
        let id = record
            .get(KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected_answer(KIND, self.name(), "a record has no `Id`"))?;
        Ok((modified, id.to_string()))
    }
}

/// The state a pass starts from. An open query is never resumed (its locator may have expired): the key set
/// query restarts where the last committed page ended, which reads exactly what that query had left.
fn start_state(committed: Option<SalesforceState>, lookback: Duration) -> SalesforceState {
    match committed {
        None => {
            SalesforceState::Query { since: None, last_id: None, next_records_url: None, newest: None, newest_id: None }
        }
        Some(SalesforceState::Query { since, last_id, newest, newest_id, .. }) => {
            SalesforceState::Query { since, last_id, next_records_url: None, newest, newest_id }
        }
        // An object that was empty: read it whole again (nothing to skip).
        Some(SalesforceState::Done { newest: None, .. }) => start_state(None, lookback),
        Some(SalesforceState::Done { newest: Some(newest), newest_id }) => {
            let lookback = i64::try_from(lookback.as_micros()).unwrap_or(i64::MAX);
            let (since, last_id) =
                if lookback == 0 { (newest, newest_id.clone()) } else { (newest.saturating_sub(lookback), None) };
            SalesforceState::Query {
                since: Some(since),
                last_id,
                next_records_url: None,
                newest: Some(newest),
                newest_id,
            }
        }
    }
}

/// Where a query stood before a page.
struct Position {
    since: Option<i64>,
    last_id: Option<String>,
    newest: Option<(i64, String)>,
}

/// The state after a page whose records have the key sets `keys` (in the page's order), with `next_url` when
/// the query has more. The key set is the page's last record: the query is ordered by it, so every record
/// after the page sorts after it, and restarting from it skips nothing unread. That holds because a query
/// locator serves the result as of the query (records changed since come back in the next pass); a page
/// found out of order shows it did not, and then the key set stays where it was.
fn after_page(position: Position, keys: Vec<(i64, String)>, next_url: Option<String>) -> SalesforceState {
    let ordered = in_key_order(&position, &keys);
    let newest = keys.iter().cloned().chain(position.newest).max();
    let (newest, newest_id) = newest.unzip();
    match next_url {
        None => SalesforceState::Done { newest, newest_id },
        Some(url) => {
            let (since, last_id) = match keys.into_iter().last() {
                Some((since, id)) if ordered => (Some(since), Some(id)),
                _ => (position.since, position.last_id),
            };
            SalesforceState::Query { since, last_id, next_records_url: Some(url), newest, newest_id }
        }
    }
}

/// Whether `keys` ascend strictly from the key set the query started after, as the query orders them.
fn in_key_order(position: &Position, keys: &[(i64, String)]) -> bool {
    let after_start = match (keys.first(), position.since, position.last_id.as_deref()) {
        (Some((modified, id)), Some(since), Some(last_id)) => (*modified, id.as_str()) > (since, last_id),
        (Some((modified, _)), Some(since), None) => *modified >= since,
        _ => true,
    };
    after_start && keys.windows(2).all(|pair| pair[0] < pair[1])
}

/// The SOQL reading `name`'s records after the key set (`since`, `last_id`), oldest first.
fn soql(name: &str, description: &Description, since: Option<i64>, last_id: Option<&str>) -> String {
    let modified = description.modified;
    let filter = match (since, last_id) {
        (None, _) => String::new(),
        (Some(since), None) => format!(" WHERE {modified} >= {}", soql_datetime(since)),
        (Some(since), Some(id)) => {
            let since = soql_datetime(since);
            format!(" WHERE {modified} > {since} OR ({modified} = {since} AND {KEY} > '{}')", soql_string(id))
        }
    };
    format!("SELECT {} FROM {name}{filter} ORDER BY {modified} ASC, {KEY} ASC", description.fields.join(", "))
}

/// A SOQL datetime literal (unquoted): `2024-05-01T10:00:00.000Z`.
fn soql_datetime(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The inside of a quoted SOQL string.
fn soql_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The object's columns and how to read it, from its describe result.
fn describe(name: &str, body: &Value) -> Result<Description> {
    let fields = body
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| unexpected_answer(KIND, name, "the describe result has no `fields` list"))?;
    let mut declared = Vec::with_capacity(fields.len());
    for field in fields {
        let (Some(field_name), Some(field_type)) =
            (field.get("name").and_then(Value::as_str), field.get("type").and_then(Value::as_str))
        else {
            return Err(unexpected_answer(KIND, name, "a field of the describe result has no `name` or `type`"));
        };
        if let Some(data_type) = column_type(field_type) {
            declared.push(Column::new(field_name, data_type, field_type));
        }
    }
    let has = |field: &str| declared.iter().any(|column| column.name == field);
    if !has(KEY) {
        return Err(Error::config(format!(
            "salesforce stream `{name}`: the object has no `Id` field, so its records cannot be keyed; remove it \
             from the streams"
        )));
    }
    let modified = MODIFIED_FIELDS.iter().copied().find(|field| has(field)).ok_or_else(|| {
        Error::config(format!(
            "salesforce stream `{name}`: the object has neither SystemModstamp nor LastModifiedDate, so it cannot be \
             read incrementally; remove it from the streams"
        ))
    })?;
    Ok(Description {
        fields: declared.iter().map(|column| column.name.clone()).collect(),
        soft_deletes: has(IS_DELETED),
        modified,
        shape: StreamShape {
            name: name.to_string(),
            key: vec![KEY.into()],
            declared,
            declared_only: true,
            modified: Some(modified.into()),
        },
    })
}

/// The column type of a Salesforce field type (see the module documentation); `None` for compound fields.
fn column_type(field_type: &str) -> Option<DataType> {
    Some(match field_type {
        "boolean" => DataType::Boolean,
        "int" | "long" => DataType::Int64,
        "double" | "currency" | "percent" => DataType::Float64,
        "datetime" => timestamp_type(),
        "date" => DataType::Date32,
        "address" | "location" => return None,
        // Text holds every other type's values, including types Salesforce adds later.
        _ => DataType::Utf8,
    })
}

/// Salesforce reports the org's API usage in every answer (`Sforce-Limit-Info: api-usage=18/15000`).
fn log_api_usage(stream: &str, response: &ApiResponse) {
    if let Some(usage) = response.headers.get("sforce-limit-info").and_then(|value| value.to_str().ok()) {
        debug!(stream, usage, "salesforce api usage");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAY_FIRST: i64 = 1_714_557_600_000_000;

    fn account() -> Description {
        describe(
            "Account",
            &json!({"fields": [
                {"name": "Id", "type": "id"},
                {"name": "IsDeleted", "type": "boolean"},
                {"name": "Name", "type": "string"},
                {"name": "BillingAddress", "type": "address"},
                {"name": "BillingCity", "type": "string"},
                {"name": "AnnualRevenue", "type": "currency"},
                {"name": "NumberOfEmployees", "type": "int"},
                {"name": "LastActivityDate", "type": "date"},
                {"name": "SystemModstamp", "type": "datetime"},
            ]}),
        )
        .expect("describable")
    }

    fn key(micros: i64, id: &str) -> (i64, String) {
        (micros, id.to_string())
    }

    #[test]
    fn saas_salesforce_describe_maps_types_and_leaves_compound_fields_out() {
        let description = account();
        let columns: Vec<_> = description
            .shape
            .declared
            .iter()
            .map(|column| (column.name.as_str(), crate::schema::type_name(&column.data_type)))
            .collect();
        assert_eq!(
            columns,
            vec![
                ("Id", "string"),
                ("IsDeleted", "boolean"),
                ("Name", "string"),
                ("BillingCity", "string"),
                ("AnnualRevenue", "double"),
                ("NumberOfEmployees", "int64"),
                ("LastActivityDate", "date"),
                ("SystemModstamp", "timestamp"),
            ]
        );
        assert_eq!(description.modified, "SystemModstamp");
        assert!(description.soft_deletes);
        assert_eq!(description.shape.key, vec!["Id"]);

        let history = describe(
            "Thing__c",
            &json!({"fields": [{"name": "Id", "type": "id"}, {"name": "LastModifiedDate", "type": "datetime"}]}),
        )
        .expect("describable");
        assert_eq!(history.modified, "LastModifiedDate");
        assert!(!history.soft_deletes, "no IsDeleted: read through `query`");

        let error = describe("Log__x", &json!({"fields": [{"name": "Id", "type": "id"}]})).expect_err("no time");
        assert!(error.to_string().contains("`Log__x`") && error.to_string().contains("cannot be read incrementally"));
    }

    #[test]
    fn saas_salesforce_soql_reads_after_the_key_set_in_order() {
        let description = account();
        let fields =
            "Id, IsDeleted, Name, BillingCity, AnnualRevenue, NumberOfEmployees, LastActivityDate, SystemModstamp";
        assert_eq!(
            soql("Account", &description, None, None),
            format!("SELECT {fields} FROM Account ORDER BY SystemModstamp ASC, Id ASC")
        );
        assert_eq!(
            soql("Account", &description, Some(MAY_FIRST), Some("001000000000042AAA")),
            format!(
                "SELECT {fields} FROM Account WHERE SystemModstamp > 2024-05-01T10:00:00.000Z OR (SystemModstamp = \
                 2024-05-01T10:00:00.000Z AND Id > '001000000000042AAA') ORDER BY SystemModstamp ASC, Id ASC"
            )
        );
        assert_eq!(
            soql("Account", &description, Some(MAY_FIRST + 1_500), None),
            format!(
                "SELECT {fields} FROM Account WHERE SystemModstamp >= 2024-05-01T10:00:00.001Z ORDER BY \
                 SystemModstamp ASC, Id ASC"
            )
        );
        assert_eq!(soql_string("a'b\\c"), "a\\'b\\\\c");
    }

    #[test]
    fn saas_salesforce_pages_move_the_key_set_to_their_last_record() {
        let first = Position { since: None, last_id: None, newest: None };
        let keys = vec![key(MAY_FIRST, "001A"), key(MAY_FIRST, "001B"), key(MAY_FIRST + 1_000, "001C")];
        let state = after_page(first, keys, Some("/services/data/v61.0/query/01g-2000".into()));
        assert_eq!(
            state,
            SalesforceState::Query {
                since: Some(MAY_FIRST + 1_000),
                last_id: Some("001C".into()),
                next_records_url: Some("/services/data/v61.0/query/01g-2000".into()),
                newest: Some(MAY_FIRST + 1_000),
                newest_id: Some("001C".into()),
            }
        );
        // The last page ends the pass at the newest key set seen.
        let last = Position {
            since: Some(MAY_FIRST + 1_000),
            last_id: Some("001C".into()),
            newest: Some(key(MAY_FIRST + 1_000, "001C")),
        };
        let state = after_page(last, vec![key(MAY_FIRST + 2_000, "001D")], None);
        assert_eq!(state, SalesforceState::Done { newest: Some(MAY_FIRST + 2_000), newest_id: Some("001D".into()) });
        // A page out of order (records changed under an open query) leaves the key set where it was.
        let shuffled = Position { since: Some(MAY_FIRST), last_id: Some("001B".into()), newest: None };
        let keys = vec![key(MAY_FIRST + 9_000, "001X"), key(MAY_FIRST + 1_000, "001C")];
        match after_page(shuffled, keys, Some("/next".into())) {
            SalesforceState::Query { since, last_id, newest, .. } => {
                assert_eq!((since, last_id.as_deref()), (Some(MAY_FIRST), Some("001B")));
                assert_eq!(newest, Some(MAY_FIRST + 9_000));
            }
            other => panic!("a query state expected, got {other:?}"),
        }
        let behind = Position { since: Some(MAY_FIRST), last_id: Some("001B".into()), newest: None };
        assert!(!in_key_order(&behind, &[key(MAY_FIRST, "001A")]));
        assert!(in_key_order(&behind, &[key(MAY_FIRST, "001C"), key(MAY_FIRST + 1, "001A")]));
        // An empty last page keeps what the pass had seen.
        let empty = Position { since: Some(MAY_FIRST), last_id: None, newest: Some(key(MAY_FIRST + 5, "001Z")) };
        assert_eq!(
            after_page(empty, Vec::new(), None),
            SalesforceState::Done { newest: Some(MAY_FIRST + 5), newest_id: Some("001Z".into()) }
        );
    }

    #[test]
    fn saas_salesforce_passes_restart_the_key_set_query_and_look_back_after_a_finished_pass() {
        let lookback = Duration::from_secs(300);
        assert_eq!(
            start_state(None, lookback),
            SalesforceState::Query {
                since: None,
                last_id: None,
                next_records_url: None,
                newest: None,
                newest_id: None
            }
        );
        // Killed in the middle of a pass: the locator is dropped, the key set kept.
        let interrupted = SalesforceState::Query {
            since: Some(MAY_FIRST),
            last_id: Some("001C".into()),
            next_records_url: Some("/services/data/v61.0/query/01g-4000".into()),
            newest: Some(MAY_FIRST),
            newest_id: Some("001C".into()),
        };
        let at_the_key = SalesforceState::Query {
            since: Some(MAY_FIRST),
            last_id: Some("001C".into()),
            next_records_url: None,
            newest: Some(MAY_FIRST),
            newest_id: Some("001C".into()),
        };
        assert_eq!(start_state(Some(interrupted), lookback), at_the_key);
        let done = SalesforceState::Done { newest: Some(MAY_FIRST), newest_id: Some("001C".into()) };
        assert_eq!(
            start_state(Some(done.clone()), lookback),
            SalesforceState::Query {
                since: Some(MAY_FIRST - 300_000_000),
                last_id: None,
                next_records_url: None,
                newest: Some(MAY_FIRST),
                newest_id: Some("001C".into()),
            }
        );
        // Without a look-back, the next pass resumes exactly after the newest record.
        assert_eq!(start_state(Some(done), Duration::ZERO), at_the_key);
        assert_eq!(
            start_state(Some(SalesforceState::Done { newest: None, newest_id: None }), lookback),
            start_state(None, lookback)
        );
    }

    #[test]
    fn saas_salesforce_states_serialize_with_their_phase() {
        let state = SalesforceState::Done { newest: Some(1), newest_id: Some("001A".into()) };
        let value = serde_json::to_value(&state).expect("json");
        assert_eq!(value, json!({"phase": "done", "newest": 1, "newest_id": "001A"}));
        assert_eq!(serde_json::from_value::<SalesforceState>(value).expect("parse"), state);
    }

    #[test]
    fn saas_salesforce_stream_names_must_be_api_names() {
        assert!(is_api_name("Account") && is_api_name("Invoice__c"));
        assert!(!is_api_name("Account; DROP") && !is_api_name("1Thing") && !is_api_name(""));
    }
}
