//! The HTTP layer every stream calls through: credentials, the credential's quota, a limit on requests in
//! flight across streams, and the retry policy.
//!
//! - 2xx: the JSON body (a body that is not JSON is retried like a 5xx: proxies truncate pages);
//! - 429: every request of the credential waits `Retry-After` (or a backoff delay), then this one is retried;
//! - 401 with OAuth2: the token is dropped and fetched again, once per request;
//! - 5xx, 408, timeouts and dropped connections: retried with jittered exponential backoff up to a cap;
//! - 401 and 403 stop the stream as failures only the user can fix, naming the credential's setting;
//! - any other 4xx stops the stream with the API's own message.
//!
//! Credentials go only to the base URL's origin (scheme, host and port): a `next` link or a redirect to another
//! origin stops the stream instead. Bodies are read chunk by chunk up to `max_response_bytes`.

use std::sync::Arc;
use std::time::Duration;

use connector_core::backoff::Backoff;
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::metrics::metrics;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::{debug, warn};
use url::Url;

use crate::auth::Credentials;
use crate::config::LimitSettings;
use crate::excerpt::excerpt;
use crate::limits::{CredentialQuota, retry_after};

/// The first retry delay; later ones double up to the profile's `max_backoff`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// Consecutive 429 answers tolerated for one request: a storm longer than this means the quota is shared with
/// something else that uses it all, which the user must sort out.
const MAX_THROTTLED_ATTEMPTS: u32 = 200;
/// Redirects followed within the base URL's origin, as reqwest's default policy does.
const MAX_REDIRECTS: usize = 10;

/// A request, relative to the service's base URL (or absolute, like a `next` link).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub url: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl ApiRequest {
    pub fn get(url: impl Into<String>) -> Self {
        ApiRequest { method: Method::GET, url: url.into(), query: Vec::new(), body: None }
    }

    pub fn post(url: impl Into<String>, body: Value) -> Self {
        ApiRequest { method: Method::POST, url: url.into(), query: Vec::new(), body: Some(body) }
    }

    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
}

/// A successful answer, its body parsed as `T` (any JSON by default).
#[derive(Debug)]
pub struct ApiResponse<T = Value> {
    pub body: T,
    pub headers: HeaderMap,
}

/// Calls one service for one pipeline.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: Url,
    credentials: Arc<Credentials>,
    quota: Arc<CredentialQuota>,
    in_flight: Arc<Semaphore>,
    limits: LimitSettings,
    service: &'static str,
}

impl ApiClient {
    pub fn new(service: &'static str, base_url: Url, credentials: Credentials, limits: LimitSettings) -> Result<Self> {
        let origin = base_url.origin();
        // reqwest drops `Authorization` on a redirect to another host, but not an API key in another header or
        // in the query: so no redirect leaves the base URL's origin.
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.url().origin() != origin {
                let target = shown_url(attempt.url());
                attempt.error(format!("redirected to {target}, outside base_url's origin"))
            } else if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!("connector/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects)
            .timeout(limits.request_timeout)
            .build()
            .map_err(|cause| Error::config("cannot build the HTTP client").caused_by(cause))?;
        let host = format!("{}:{}", base_url.host_str().unwrap_or(""), base_url.port_or_known_default().unwrap_or(0));
        let quota = CredentialQuota::shared(&host, credentials.fingerprint(), limits.requests_per_second);
        Ok(ApiClient {
            http,
            base_url,
            credentials: Arc::new(credentials),
            quota,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            limits,
            service,
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Sends `request` for `stream`, retrying what can succeed later; see the module documentation.
    pub async fn send(&self, stream: &str, request: &ApiRequest) -> Result<ApiResponse> {
        self.send_as(stream, request).await
    }

    /// [`ApiClient::send`] with the body parsed as `T`: a body that is not JSON of that shape is retried like
    /// one that is not JSON at all.
    pub async fn send_as<T: DeserializeOwned>(&self, stream: &str, request: &ApiRequest) -> Result<ApiResponse<T>> {
        let url = self.base_url.join(&request.url).map_err(|cause| {
            Error::state(format!("{} stream `{stream}`: `{}` is not a valid URL", self.service, request.url))
                .caused_by(cause)
        })?;
        // Query strings may hold credentials or cursors: name requests by path only.
        let target = format!("{} {}", request.method, url.path());
        if url.origin() != self.base_url.origin() && !self.credentials.is_anonymous() {
            return Err(Error::new(
                ErrorKind::Config,
                Retry::No,
                format!(
                    "{} stream `{stream}`: the API sent the next request to {}, outside the origin of base_url ({}); \
                     credentials go only to base_url's origin, so the stream stopped. If that host serves the same \
                     API, set base_url to it",
                    self.service,
                    shown_url(&url),
                    self.base_url.origin().ascii_serialization()
                ),
            ));
        }
        let mut backoff = Backoff::new(INITIAL_BACKOFF, self.limits.max_backoff);
        let mut token_renewed = false;
        let mut throttled = 0u32;
        loop {
            self.quota.ready().await;
            let permit = self
                .in_flight
                .acquire()
                .await
                .map_err(|cause| Error::state("the request limiter was closed").caused_by(cause))?;
            let mut builder = self.http.request(request.method.clone(), url.clone()).query(&request.query);
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            let (builder, generation) = match self.credentials.authorize(builder).await {
                Ok(authorized) => authorized,
                Err(error) if error.retry() == Retry::WithBackoff => {
                    drop(permit);
                    self.wait_or_fail(stream, &target, &mut backoff, error).await?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let sent = builder.send().await;
            let (status, headers, body) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match read_body(response, self.limits.max_response_bytes).await {
                        Ok(body) => (status, headers, body),
                        Err(BodyError::TooLarge) => {
                            return Err(Error::new(
                                ErrorKind::Source,
                                Retry::No,
                                format!(
                                    "{} stream `{stream}`: the answer to {target} is larger than max_response_bytes \
                                     = {} bytes, so it was refused; raise max_response_bytes in the profile if the \
                                     API's pages are that large, or ask for smaller pages",
                                    self.service, self.limits.max_response_bytes
                                ),
                            ));
                        }
                        Err(BodyError::Cut(cause)) => {
                            drop(permit);
                            let error = self
                                .transient(stream, &target, "the answer was cut off")
                                .caused_by(cause.without_url());
                            self.wait_or_fail(stream, &target, &mut backoff, error).await?;
                            continue;
                        }
                    }
                }
                Err(cause) if cause.is_redirect() => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        Retry::No,
                        format!(
                            "{} stream `{stream}`: {target} was redirected outside the origin of base_url ({}); \
                             credentials go only to base_url's origin, so the stream stopped. If the API moved, set \
                             base_url to its new address",
                            self.service,
                            self.base_url.origin().ascii_serialization()
                        ),
                    )
                    .caused_by(cause.without_url()));
                }
                Err(cause) => {
                    drop(permit);
                    metrics().count_api_request(self.service, None);
                    let what = if cause.is_timeout() { "timed out" } else { "failed to connect or send" };
                    // Without the URL: its query may hold an API key.
                    let error = self.transient(stream, &target, what).caused_by(cause.without_url());
                    self.wait_or_fail(stream, &target, &mut backoff, error).await?;
                    continue;
                }
            };
            drop(permit);
            metrics().count_api_request(self.service, Some(status.as_u16()));
            metrics().count_api_response_bytes(self.service, body.len());
            metrics().add_rate_limit_wait(self.service, self.quota.observe(&headers));
            debug!(service = self.service, stream, request = %target, status = status.as_u16(), "api response");
            if status.is_success() {
                match serde_json::from_slice(&body) {
                    Ok(body) => return Ok(ApiResponse { body, headers }),
                    Err(cause) => {
                        let error = self
                            .transient(stream, &target, &format!("answered {status} with a body that is not JSON"))
                            .caused_by(cause);
                        self.wait_or_fail(stream, &target, &mut backoff, error).await?;
                        continue;
                    }
                }
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                throttled += 1;
                let delay = retry_after(&headers).unwrap_or_else(|| backoff.next_delay());
                if throttled > MAX_THROTTLED_ATTEMPTS {
                    return Err(self.transient(
                        stream,
                        &target,
                        &format!("was throttled (429) {throttled} times in a row; lower requests_per_second"),
                    ));
                }
                warn!(service = self.service, stream, request = %target, wait = ?delay, "throttled by the API (429)");
                metrics().add_rate_limit_wait(self.service, self.quota.pause_for(delay));
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !token_renewed && self.credentials.rejected(generation).await {
                token_renewed = true;
                continue;
            }
            if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                let error = self.transient(stream, &target, &format!("answered {status}: {}", api_message(&body)));
                self.wait_or_fail(stream, &target, &mut backoff, error).await?;
                continue;
            }
            let hint: String = match status {
                StatusCode::FORBIDDEN if api_error_code(&body).as_deref() == Some("REQUEST_LIMIT_EXCEEDED") => {
                    "; the org's API request limit for the last 24 hours is used up (Setup > Company Information > \
                     API Requests); the sync resumes from its last commit once requests free up, or ask Salesforce \
                     for a higher limit"
                        .into()
                }
                StatusCode::UNAUTHORIZED => format!(
                    "; check the credentials: the API refused them; fix {} (see docs/saas.md)",
                    self.credentials.setting()
                ),
                StatusCode::FORBIDDEN => format!(
                    "; check the credentials: {} lacks a permission or scope this stream needs (see docs/saas.md)",
                    self.credentials.setting()
                ),
                StatusCode::NOT_FOUND => "; check --base-url and the stream name".into(),
                _ => String::new(),
            };
            return Err(Error::new(
                ErrorKind::Source,
                Retry::No,
                format!(
                    "{} stream `{stream}`: {target} was refused with {status}: {}{hint}",
                    self.service,
                    api_message(&body)
                ),
            ));
        }
    }

    fn transient(&self, stream: &str, target: &str, what: &str) -> Error {
        Error::new(
            ErrorKind::Source,
            Retry::WithBackoff,
            format!("{} stream `{stream}`: {target} {what}", self.service),
        )
    }

    /// Sleeps before the next attempt, or gives up with `error` once the attempts are spent.
    async fn wait_or_fail(&self, stream: &str, target: &str, backoff: &mut Backoff, error: Error) -> Result<()> {
        if backoff.attempts() >= self.limits.max_retries {
            return Err(Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!(
                    "{} stream `{stream}`: {target} failed {} times; the sync stopped at the last committed page and \
                     resumes there on the next run",
                    self.service,
                    backoff.attempts() + 1
                ),
            )
            .caused_by(error));
        }
        let delay = backoff.next_delay();
        warn!(service = self.service, stream, request = %target, error = %error.report(), retry_in = ?delay, "request failed; retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// Why a body was not read whole.
enum BodyError {
    /// Larger than the cap: reading stopped there.
    TooLarge,
    /// The connection broke or timed out.
    Cut(reqwest::Error),
}

/// Reads a body chunk by chunk up to `cap` bytes: a server announcing or sending more (an endless body) is
/// refused once the cap is passed, never buffered whole.
async fn read_body(mut response: reqwest::Response, cap: u64) -> std::result::Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|length| length > cap) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Cut)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A URL as shown in messages: its origin and path, without the query (which may hold a key or a cursor).
fn shown_url(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// Salesforce's `errorCode` (`[{"message": …, "errorCode": "INVALID_FIELD"}]`), which says what to do more
/// precisely than the status.
pub fn api_error_code(body: &[u8]) -> Option<String> {
    let json = serde_json::from_slice::<Value>(body).ok()?;
    let first = json.as_array().and_then(|items| items.first()).unwrap_or(&json);
    first.get("errorCode").and_then(Value::as_str).map(str::to_string)
}

/// The message an API put in its error body: Stripe's `error.message`, HubSpot's `message`, Zendesk's
/// `error`/`description`, Salesforce's `[{message, errorCode}]`; the raw text otherwise.
pub fn api_message(body: &[u8]) -> String {
    let text = || {
        let text = excerpt(String::from_utf8_lossy(body).trim().to_string(), 300);
        if text.is_empty() { "(empty body)".to_string() } else { text }
    };
    let Ok(json) = serde_json::from_slice::<Value>(body) else { return text() };
    let string = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
    let first = json.as_array().and_then(|items| items.first()).unwrap_or(&json);
    let message_and_code = match (string(first.get("message")), string(first.get("errorCode"))) {
        (Some(message), Some(code)) => Some(format!("{message} ({code})")),
        (message, _) => message,
    };
    string(first.pointer("/error/message"))
        .or(message_and_code)
        .or_else(|| match (string(first.get("error")), string(first.get("description"))) {
            (Some(error), Some(description)) => Some(format!("{error}: {description}")),
            (error, description) => error.or(description),
        })
        .unwrap_or_else(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saas_error_bodies_of_each_api_give_their_message() {
        assert_eq!(
            api_message(br#"{"error":{"message":"No such customer: 'cus_1'","type":"invalid_request_error"}}"#),
            "No such customer: 'cus_1'"
        );
        assert_eq!(
            api_message(br#"{"status":"error","message":"Invalid input JSON","category":"VALIDATION_ERROR"}"#),
            "Invalid input JSON"
        );
        assert_eq!(
            api_message(br#"{"error":"InvalidEndpoint","description":"Not found"}"#),
            "InvalidEndpoint: Not found"
        );
        assert_eq!(
            api_message(br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#),
            "Session expired or invalid (INVALID_SESSION_ID)"
        );
        assert_eq!(
            api_error_code(br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#)
                .as_deref(),
            Some("REQUEST_LIMIT_EXCEEDED")
        );
        assert_eq!(api_message(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
    }
}
