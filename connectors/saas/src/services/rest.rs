//! Declarative REST streams: a stream written in the profile, without Rust.
//!
//! ```toml
//! [profiles.helpdesk]
//! kind = "rest"
//! base_url = "https://api.example.com/"
//! auth = { type = "bearer", token = "${EXAMPLE_TOKEN}" }
//! requests_per_second = 5
//!
//! [profiles.helpdesk.streams.tickets]
//! path = "v2/tickets"
//! records = "data.items"                      # where the records are in the body ("" = the body is the list)
//! key = ["id"]
//! paging = { style = "cursor", cursor = "meta.next_cursor", param = "cursor", stop = "meta.end" }
//! incremental = { field = "updated_at", param = "updated_since", format = "rfc3339" }
//! delete_when = { field = "status", equals = "deleted" }
//! columns = { id = "int64", updated_at = "timestamp" }
//! query = { per_page = "100" }
//! ```
//!
//! Paging styles: `cursor` (a token from the body), `offset` (`param`, `limit_param`, `limit`), `page` (a page
//! number), `link` (RFC 8288 `Link: <...>; rel="next"` headers), `none`. With `incremental`, each pass asks for
//! records updated since the newest one seen (less the look-back). Without it, cursor-paged streams resume
//! from their last cursor (an incremental export), and other styles re-read everything each pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use connector_core::change::Operation;
use connector_core::error::{Error, Result};
use connector_core::schema::Column;
use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::{state_error, unexpected_answer};
use crate::client::{ApiClient, ApiRequest};
use crate::codec::timestamp;
use crate::config::SaasConfig;
use crate::schema::parse_type_name;
use crate::stream::{Page, RecordChange, StreamReader, StreamShape, records_of, value_at, value_at_mut};

pub const KIND: &str = "rest";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestStreamSettings {
    path: String,
    #[serde(default)]
    records: String,
    key: Vec<String>,
    #[serde(default)]
    paging: Paging,
    #[serde(default)]
    incremental: Option<Incremental>,
    #[serde(default)]
    delete_when: Option<DeleteWhen>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
    /// Land only the declared `columns`, ignoring other fields.
    #[serde(default)]
    only_declared_columns: bool,
    #[serde(default)]
    query: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
enum Paging {
    #[default]
    None,
    Cursor {
        /// Where the next cursor is in the body.
        cursor: String,
        /// The query parameter that carries it.
        param: String,
        /// A boolean in the body that is true on the last page (the cursor's absence also ends the pass).
        #[serde(default)]
        stop: Option<String>,
    },
    Offset {
        param: String,
        limit_param: String,
        limit: u64,
    },
    Page {
        param: String,
        #[serde(default = "first_page")]
        first: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u64>,
    },
    Link,
}

fn first_page() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Incremental {
    field: String,
    param: String,
    #[serde(default)]
    format: TimeFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TimeFormat {
    #[default]
    Rfc3339,
    Unix,
    UnixMs,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteWhen {
    field: String,
    equals: Value,
}

/// Where a declarative stream stands: the paging token of the next page, and the updated-since window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RestState {
    /// Microseconds since the epoch.
    since: Option<i64>,
    newest: Option<i64>,
    page: Option<Value>,
    done: bool,
}

pub fn stream(name: &str, config: &SaasConfig) -> Result<Arc<dyn StreamReader>> {
    let at = format!("streams.{name}");
    let table = config.rest_streams.get(name).ok_or_else(|| {
        let known: Vec<_> = config.rest_streams.keys().map(String::as_str).collect();
        Error::config(format!(
            "the profile declares no stream `{name}` (declared: {}); add a [profiles.NAME.streams.{name}] table",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    })?;
    let settings: RestStreamSettings = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|cause| Error::config(format!("{at}: invalid stream: {cause}")))?;
    if settings.key.is_empty() {
        return Err(Error::config(format!("{at}.key: name the field(s) identifying a record, e.g. key = [\"id\"]")));
    }
    let mut declared = Vec::new();
    for key in &settings.key {
        if !settings.columns.contains_key(key) {
            declared.push(Column::new(key, connector_core::arrow::datatypes::DataType::Utf8, "string (key)"));
        }
    }
    for (column, type_name) in &settings.columns {
        let data_type = parse_type_name(type_name).ok_or_else(|| {
            Error::config(format!(
                "{at}.columns.{column}: `{type_name}` is not a type (string, int64, double, boolean, timestamp, date, json)"
            ))
        })?;
        declared.push(Column::new(column, data_type, type_name));
    }
    let shape = StreamShape {
        name: name.to_string(),
        key: settings.key.clone(),
        declared,
        declared_only: settings.only_declared_columns,
        modified: settings.incremental.as_ref().map(|incremental| incremental.field.clone()),
    };
    Ok(Arc::new(RestStream { shape, settings }))
}

#[derive(Debug)]
struct RestStream {
    shape: StreamShape,
    settings: RestStreamSettings,
}

impl StreamReader for RestStream {
    fn shape(&self) -> &StreamShape {
        &self.shape
    }

    fn start_pass(&self, committed: Option<&Value>, lookback: Duration) -> Result<Value> {
        let committed = match committed {
            Some(state) => self.parse(state)?,
            None => RestState::default(),
        };
        let state = if !committed.done {
            committed
        } else if self.settings.incremental.is_some() {
            let since = committed.newest.map(|newest| newest - lookback.as_micros() as i64);
            RestState { since, newest: committed.newest, page: None, done: false }
        } else if matches!(self.settings.paging, Paging::Cursor { .. }) {
            RestState { done: false, ..committed }
        } else {
            RestState::default()
        };
        serde_json::to_value(state).map_err(|cause| state_error(&self.shape.name, cause))
    }

    fn next_page<'a>(&'a self, client: &'a ApiClient, state: &'a Value) -> BoxFuture<'a, Result<Page>> {
        async move {
            let state = self.parse(state)?;
            let request = self.request(&state);
            let mut response = client.send(&self.shape.name, &request).await?;
            let records = records_of(value_at_mut(&mut response.body, &self.settings.records), "records list")
                .map_err(|what| {
                    unexpected_answer(KIND, &self.shape.name, format!("{what} (at `{}`)", self.settings.records))
                })?;
            let mut newest = state.newest;
            if let Some(incremental) = &self.settings.incremental {
                for record in &records {
                    if let Some(time) = record.get(&incremental.field).and_then(timestamp) {
                        newest = Some(newest.map_or(time, |newest| newest.max(time)));
                    }
                }
            }
            // Relative `Link` targets resolve against the URL the page came from.
            let page_url = client.base_url().join(&request.url).unwrap_or_else(|_| client.base_url().clone());
            let (token, done) =
                self.next_page_token(&state, &response.body, &response.headers, &page_url, records.len())?;
            let page = match (&self.settings.paging, done) {
                (_, false) => token,
                // A cursor export resumes from its newest cursor once caught up.
                (Paging::Cursor { .. }, true) => token.or(state.page.clone()),
                (_, true) => None,
            };
            let changes = records
                .into_iter()
                .map(|record| match &self.settings.delete_when {
                    Some(rule) if record.get(&rule.field) == Some(&rule.equals) => RecordChange::delete(record),
                    _ => RecordChange::upsert(Operation::Update, record),
                })
                .collect();
            let next = RestState { since: state.since, newest, page, done };
            let state = serde_json::to_value(next).map_err(|cause| state_error(&self.shape.name, cause))?;
            Ok(Page::new(changes, state, done))
        }
        .boxed()
    }
}

impl RestStream {
    fn parse(&self, state: &Value) -> Result<RestState> {
        serde_json::from_value(state.clone()).map_err(|cause| state_error(&self.shape.name, cause))
    }

    fn request(&self, state: &RestState) -> ApiRequest {
        if let (Paging::Link, Some(Value::String(next))) = (&self.settings.paging, &state.page) {
            // A `next` link carries every parameter already.
            return ApiRequest::get(next.clone());
        }
        let mut request = ApiRequest::get(self.settings.path.clone());
        for (name, value) in &self.settings.query {
            request = request.query(name, value);
        }
        if let (Some(incremental), Some(since)) = (&self.settings.incremental, state.since) {
            request = request.query(&incremental.param, format_time(since, incremental.format));
        }
        match &self.settings.paging {
            Paging::None | Paging::Link => {}
            Paging::Cursor { param, .. } => {
                if let Some(cursor) = &state.page {
                    request = request.query(param, text_of(cursor));
                }
            }
            Paging::Offset { param, limit_param, limit } => {
                let offset = state.page.as_ref().and_then(Value::as_u64).unwrap_or(0);
                request = request.query(param, offset.to_string()).query(limit_param, limit.to_string());
            }
            Paging::Page { param, first, size_param, size } => {
                let page = state.page.as_ref().and_then(Value::as_u64).unwrap_or(*first);
                request = request.query(param, page.to_string());
                if let (Some(size_param), Some(size)) = (size_param, size) {
                    request = request.query(size_param, size.to_string());
                }
            }
        }
        request
    }

    /// The paging token of the page after this one, and whether this page was the last of the pass.
    fn next_page_token(
        &self,
        state: &RestState,
        body: &Value,
        headers: &HeaderMap,
        page_url: &Url,
        count: usize,
    ) -> Result<(Option<Value>, bool)> {
        Ok(match &self.settings.paging {
            Paging::None => (None, true),
            Paging::Cursor { cursor, stop, .. } => {
                let stopped = stop.as_deref().and_then(|stop| value_at(body, stop)).and_then(Value::as_bool);
                let next = value_at(body, cursor).filter(|next| !next.is_null() && next.as_str() != Some(""));
                let done = stopped == Some(true) || next.is_none() || count == 0;
                (next.cloned(), done)
            }
            Paging::Offset { limit, .. } => {
                let offset = state.page.as_ref().and_then(Value::as_u64).unwrap_or(0);
                let done = (count as u64) < *limit;
                ((!done).then(|| Value::from(offset + count as u64)), done)
            }
            Paging::Page { first, size, .. } => {
                let page = state.page.as_ref().and_then(Value::as_u64).unwrap_or(*first);
                let done = count == 0 || size.is_some_and(|size| (count as u64) < size);
                ((!done).then(|| Value::from(page + 1)), done)
            }
            Paging::Link => {
                let next =
                    next_link(headers, page_url).map_err(|what| unexpected_answer(KIND, &self.shape.name, what))?;
                let done = next.is_none();
                (next.map(|url| Value::from(url.to_string())), done)
            }
        })
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn format_time(micros: i64, format: TimeFormat) -> String {
    match format {
        TimeFormat::Unix => (micros.div_euclid(1_000_000)).to_string(),
        TimeFormat::UnixMs => (micros.div_euclid(1_000)).to_string(),
        TimeFormat::Rfc3339 => DateTime::<Utc>::from_timestamp_micros(micros)
            .map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default(),
    }
}

/// The `rel="next"` target of RFC 8288 `Link` headers, resolved against `page_url`; a header that is not a
/// list of links is an error rather than the end of the pass, which would silently skip the pages after it.
fn next_link(headers: &HeaderMap, page_url: &Url) -> std::result::Result<Option<Url>, String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let text = value.to_str().map_err(|_| "a Link header is not ASCII text".to_string())?;
        let links = http_link::parse_link_header(text, page_url)
            .map_err(|cause| format!("the Link header `{text}` is not a list of RFC 8288 links ({cause})"))?;
        if let Some(next) = links.into_iter().find(|link| link.rel == "next") {
            return Ok(Some(next.target));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn saas_link_headers_give_the_next_page() {
        let page = Url::parse("https://api.example.com/v2/items?page=2").expect("url");
        let next = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(reqwest::header::LINK, HeaderValue::from_static(value));
            next_link(&headers, &page).map(|next| next.map(String::from))
        };
        assert_eq!(
            next(
                "<https://api.example.com/items?page=1>; rel=\"prev\", <https://api.example.com/items?page=3>; rel=\"next\""
            ),
            Ok(Some("https://api.example.com/items?page=3".to_string()))
        );
        // Commas inside a target, a relation among others, a relative target.
        assert_eq!(
            next("<https://api.example.com/items?fields=id,name&page=3>; rel=\"next last\", <https://x/>; rel=first"),
            Ok(Some("https://api.example.com/items?fields=id,name&page=3".to_string()))
        );
        assert_eq!(next("<items?page=3>; rel=next"), Ok(Some("https://api.example.com/v2/items?page=3".to_string())));
        assert_eq!(next_link(&HeaderMap::new(), &page), Ok(None));
        assert!(next("https://api.example.com/items?page=3; rel=next").is_err());
    }

    #[test]
    fn saas_since_values_format_as_the_api_expects() {
        let micros = 1_714_557_600_123_456;
        assert_eq!(format_time(micros, TimeFormat::Rfc3339), "2024-05-01T10:00:00Z");
        assert_eq!(format_time(micros, TimeFormat::Unix), "1714557600");
        assert_eq!(format_time(micros, TimeFormat::UnixMs), "1714557600123");
    }
}
