//! A SaaS source profile: which service, where (`base_url`), how to authenticate, how fast to call, and how
//! records are batched into Delta commits. Per-stream choices (delete mode, key) come from the pipeline.
//!
//! ```toml
//! [profiles.billing]
//! kind = "stripe"
//! auth = { type = "bearer", token = { env = "STRIPE_API_KEY" } }
//! requests_per_second = 20
//! lookback = "5m"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::{Error, Result};
use connector_core::options::TableOptions;
use connector_core::schema::TableId;
use connector_core::secret::Secret;
use serde::Deserialize;
use url::Url;

use crate::services::Service;

/// Records gathered before a Delta commit. Each commit is a MERGE with a fixed cost of about a second on a
/// large table, so batches are large; memory stays bounded at about this many records plus the pages read ahead.
pub const DEFAULT_BATCH_RECORDS: usize = 50_000;
/// How far back an incremental read starts before the last record seen: catches records whose update became
/// visible late (search indexes lag, clocks differ) or that changed while the previous sync ran.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(5 * 60);
/// How long continuous mode waits between passes over a stream that is caught up.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// Requests in flight at once across every stream of a pipeline.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4;
/// Attempts of a request failing with a 5xx, a timeout, a dropped connection or a malformed body.
pub const DEFAULT_MAX_RETRIES: u32 = 6;
/// The longest wait between two attempts of a failing request.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one request may take before it counts as timed out (and is retried).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest API answer read, in bytes: far above any page the supported APIs send (Salesforce's 2,000
/// records of wide objects stay under 10 MiB), low enough that a server sending an endless body cannot exhaust
/// memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// The Salesforce REST API version (Summer '24): every org of a supported release serves it, and later versions
/// only add fields, which `api_version` opts into.
pub const DEFAULT_SALESFORCE_API_VERSION: &str = "v61.0";

/// A credential as written in a profile: the value itself (usually `${VAR}`), `{ env = "VAR" }` or
/// `{ file = "/run/secrets/key" }`.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    Value(Secret),
    Environment { env: String },
    File { file: PathBuf },
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("***"),
            SecretSource::Environment { env } => write!(f, "env {env}"),
            SecretSource::File { file } => write!(f, "file {}", file.display()),
        }
    }
}

impl SecretSource {
    /// Where the secret is set, for messages asking the user to fix it: `at` is its place in the profile
    /// (`auth.token`), which an environment variable or file stands in for.
    pub fn describe(&self, at: &str) -> String {
        match self {
            SecretSource::Value(_) => format!("{at} in the profile"),
            SecretSource::Environment { env } => format!("the environment variable {env} ({at})"),
            SecretSource::File { file } => format!("the file {} ({at})", file.display()),
        }
    }

    pub fn resolve(&self, at: &str, environment: &dyn Fn(&str) -> Option<String>) -> Result<Secret> {
        match self {
            SecretSource::Value(secret) => Ok(secret.clone()),
            SecretSource::Environment { env } => environment(env)
                .map(Secret::new)
                .ok_or_else(|| Error::config(format!("{at}: environment variable `{env}` is not set; export it"))),
            SecretSource::File { file } => {
                std::fs::read_to_string(file).map(|text| Secret::new(text.trim())).map_err(|cause| {
                    Error::config(format!("{at}: cannot read the secret file {}", file.display())).caused_by(cause)
                })
            }
        }
    }
}

/// How requests authenticate, as written under `auth = { type = ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSettings {
    /// `Authorization: Bearer <token>` (API keys of Stripe, private-app tokens of HubSpot).
    Bearer { token: SecretSource },
    /// A key in a header (`header = "X-Api-Key"`) or a query parameter (`query = "api_key"`).
    ApiKey {
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        query: Option<String>,
        key: SecretSource,
    },
    /// HTTP basic authentication.
    Basic { username: String, password: SecretSource },
    /// OAuth2 client-credentials grant: a token fetched with the client's own id and secret.
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SecretSource,
        #[serde(default)]
        scopes: Vec<String>,
    },
    /// OAuth2 refresh-token grant. Servers that rotate refresh tokens return a new one with each access
    /// token; it is written to `state_file`, which later runs read before the configured token.
    Oauth2RefreshToken {
        token_url: String,
        client_id: String,
        client_secret: SecretSource,
        refresh_token: SecretSource,
        #[serde(default)]
        state_file: Option<PathBuf>,
    },
}

/// The profile's settings, as written under `[profiles.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    auth: Option<AuthSettings>,
    #[serde(default)]
    requests_per_second: Option<f64>,
    #[serde(default)]
    max_concurrent_requests: Option<usize>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    max_backoff: Option<String>,
    #[serde(default)]
    request_timeout: Option<String>,
    #[serde(default)]
    max_response_bytes: Option<u64>,
    #[serde(default)]
    batch_records: Option<usize>,
    #[serde(default)]
    lookback: Option<String>,
    #[serde(default)]
    poll_interval: Option<String>,
    /// Zendesk: the account's subdomain, when `base_url` is not given.
    #[serde(default)]
    subdomain: Option<String>,
    /// HubSpot: the properties to read per object type (the API returns a default set otherwise).
    #[serde(default)]
    properties: BTreeMap<String, Vec<String>>,
    /// Salesforce: the REST API version, `v61.0`.
    #[serde(default)]
    api_version: Option<String>,
    /// Declarative REST streams (`kind = "rest"`), by name.
    #[serde(default)]
    streams: BTreeMap<String, toml::Table>,
}

/// How hard the pipeline may press on the API.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// The quota of the credential; `None` until the API's headers tell one.
    pub requests_per_second: Option<f64>,
    pub max_concurrent_requests: usize,
    pub max_retries: u32,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
    /// Answers larger than this are refused (read incrementally, so no more is ever held).
    pub max_response_bytes: u64,
}

/// A validated SaaS source for one pipeline.
#[derive(Debug, Clone)]
pub struct SaasConfig {
    pub service: Service,
    /// The directory streams land under: the service (`stripe`), or the profile's name for declarative streams.
    pub namespace: String,
    pub pipeline: String,
    pub dest: String,
    pub base_url: Url,
    pub auth: Option<AuthSettings>,
    pub limits: LimitSettings,
    /// Stream names, without the service prefix.
    pub streams: Vec<String>,
    pub table_options: BTreeMap<String, TableOptions>,
    pub default_options: TableOptions,
    pub batch_records: usize,
    pub lookback: Duration,
    pub poll_interval: Duration,
    pub hubspot_properties: BTreeMap<String, Vec<String>>,
    /// Salesforce: the REST API version, as it appears in paths (`v61.0`).
    pub salesforce_api_version: String,
    pub rest_streams: BTreeMap<String, toml::Table>,
}

impl SaasConfig {
    pub fn from_profile(
        profile: &Profile,
        pipeline: &PipelineConfig,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let service = Service::from_kind(&profile.kind)
            .ok_or_else(|| Error::config(format!("`{}` is not a SaaS source kind", profile.kind)))?;
        let at = format!("pipeline `{}` (source `{}`)", pipeline.name, profile.kind);
        let raw: RawProfile = toml::Value::Table(profile.settings.clone())
            .try_into()
            .map_err(|cause| Error::config(format!("{at}: invalid settings: {cause}")))?;
        let base_url = match raw.base_url.as_deref() {
            Some(text) => text.to_string(),
            None => service.default_base_url(raw.subdomain.as_deref(), environment).ok_or_else(|| {
                Error::config(format!("{at}: set `base_url` (--base-url) or {}", service.base_url_alternatives()))
            })?,
        };
        let base_url =
            parse_base_url(&base_url).map_err(|reason| Error::config(format!("{at}: base_url: {reason}")))?;
        let auth = match raw.auth {
            Some(auth) => Some(auth),
            None => service.auth_from_environment(&base_url, environment)?,
        };
        if auth.is_none() && service.needs_credentials() {
            return Err(Error::config(format!(
                "{at}: no credentials; set {} or an `auth` table in the profile",
                service.credential_variables()
            )));
        }
        let duration = |value: Option<String>, name: &str, default: Duration| -> Result<Duration> {
            match value {
                None => Ok(default),
                Some(text) => humantime::parse_duration(&text).map_err(|cause| {
                    Error::config(format!("{at}: {name} = \"{text}\" is not a duration (write 30s, 5m, 1h)"))
                        .caused_by(cause)
                }),
            }
        };
        if let Some(rate) = raw.requests_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(Error::config(format!("{at}: requests_per_second must be a positive number, not {rate}")));
        }
        if raw.max_response_bytes == Some(0) {
            return Err(Error::config(format!(
                "{at}: max_response_bytes must be a positive number of bytes (default {DEFAULT_MAX_RESPONSE_BYTES})"
            )));
        }
        let limits = LimitSettings {
            requests_per_second: raw.requests_per_second,
            max_concurrent_requests: raw.max_concurrent_requests.unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS).max(1),
            max_retries: raw.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            max_backoff: duration(raw.max_backoff, "max_backoff", DEFAULT_MAX_BACKOFF)?,
            request_timeout: duration(raw.request_timeout, "request_timeout", DEFAULT_REQUEST_TIMEOUT)?,
            max_response_bytes: raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
        };
        let streams: Vec<String> =
            pipeline.tables.iter().map(|table| stream_name(service, table).to_string()).collect();
        if streams.is_empty() {
            return Err(Error::config(format!("{at}: name the streams to sync (--streams customers,invoices)")));
        }
        let table_options = pipeline
            .table_options
            .iter()
            .map(|(table, options)| (stream_name(service, table).to_string(), options.clone()))
            .collect();
        let salesforce_api_version = match raw.api_version.as_deref() {
            None => DEFAULT_SALESFORCE_API_VERSION.to_string(),
            Some(text) => parse_api_version(text).ok_or_else(|| {
                Error::config(format!(
                    "{at}: api_version = \"{text}\" is not a Salesforce API version; write it like \
                     \"{DEFAULT_SALESFORCE_API_VERSION}\""
                ))
            })?,
        };
        let namespace = namespace_of(service, pipeline);
        Ok(SaasConfig {
            service,
            namespace,
            pipeline: pipeline.name.clone(),
            dest: pipeline.dest.clone(),
            base_url,
            auth,
            limits,
            streams,
            table_options,
            default_options: pipeline.default_options.clone(),
            batch_records: raw.batch_records.unwrap_or(DEFAULT_BATCH_RECORDS).max(1),
            lookback: duration(raw.lookback, "lookback", DEFAULT_LOOKBACK)?,
            poll_interval: duration(raw.poll_interval, "poll_interval", DEFAULT_POLL_INTERVAL)?,
            hubspot_properties: raw.properties,
            salesforce_api_version,
            rest_streams: raw.streams,
        })
    }

    pub fn options_for(&self, stream: &str) -> TableOptions {
        self.table_options.get(stream).cloned().unwrap_or_else(|| self.default_options.clone())
    }
}

/// The Delta tables a SaaS pipeline's streams land in, read from the configuration alone (no credentials, no
/// request): what `connector status` shows for it.
pub fn stream_tables(profile: &Profile, pipeline: &PipelineConfig) -> Result<Vec<TableId>> {
    let service = Service::from_kind(&profile.kind)
        .ok_or_else(|| Error::config(format!("`{}` is not a SaaS source kind", profile.kind)))?;
    let namespace = namespace_of(service, pipeline);
    Ok(pipeline.tables.iter().map(|table| TableId::new(&namespace, stream_name(service, table))).collect())
}

/// The directory a pipeline's streams land under: the service (`stripe`), or the profile's name for declarative
/// streams.
fn namespace_of(service: Service, pipeline: &PipelineConfig) -> String {
    if service == Service::Rest { pipeline.profile.clone() } else { service.kind().to_string() }
}

/// A stream as the pipeline names it (`customers` or `stripe.customers`), without the service prefix.
fn stream_name(service: Service, table: &str) -> &str {
    table.strip_prefix(service.kind()).and_then(|rest| rest.strip_prefix('.')).unwrap_or(table)
}

/// `v61.0` (also written `61.0`), the form Salesforce paths take.
fn parse_api_version(text: &str) -> Option<String> {
    let number = text.strip_prefix('v').unwrap_or(text);
    let (major, minor) = number.split_once('.')?;
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("v{number}"))
}

/// A base URL ends with `/` so relative paths join under it, not beside its last segment.
fn parse_base_url(text: &str) -> std::result::Result<Url, String> {
    let mut url = Url::parse(text).map_err(|cause| format!("`{text}` is not a URL ({cause})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` must be an http:// or https:// URL"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::schedule::Schedule;

    fn pipeline(tables: &[&str]) -> PipelineConfig {
        PipelineConfig {
            name: "billing".into(),
            profile: "stripe".into(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            dest: "./lake".into(),
            schedule: Schedule::Continuous,
            table_options: BTreeMap::new(),
            default_options: TableOptions::default(),
        }
    }

    fn profile(kind: &str, text: &str) -> Profile {
        Profile { kind: kind.into(), settings: toml::from_str(text).expect("toml") }
    }

    #[test]
    fn saas_credentials_come_from_the_environment_when_the_profile_has_none() {
        let environment = |name: &str| (name == "STRIPE_API_KEY").then(|| "sk_test_1".to_string());
        let config = SaasConfig::from_profile(&profile("stripe", ""), &pipeline(&["stripe.customers"]), &environment)
            .expect("valid");
        assert_eq!(config.streams, vec!["customers"]);
        assert_eq!(config.base_url.as_str(), "https://api.stripe.com/");
        assert!(matches!(config.auth, Some(AuthSettings::Bearer { .. })));
        assert!(!format!("{config:?}").contains("sk_test_1"), "credentials must not print");

        let error =
            SaasConfig::from_profile(&profile("stripe", ""), &pipeline(&["customers"]), &|_| None).expect_err("no key");
        assert!(error.to_string().contains("STRIPE_API_KEY"), "{error}");
    }

    #[test]
    fn saas_settings_errors_name_the_setting() {
        let environment = |_: &str| Some("key".to_string());
        let bad = profile("stripe", "lookback = \"soon\"");
        let error = SaasConfig::from_profile(&bad, &pipeline(&["customers"]), &environment).expect_err("bad");
        assert!(error.to_string().contains("lookback = \"soon\""), "{error}");
        let bad = profile("stripe", "base_url = \"ftp://x\"");
        let error = SaasConfig::from_profile(&bad, &pipeline(&["customers"]), &environment).expect_err("bad");
        assert!(error.to_string().contains("http:// or https://"), "{error}");
        let typo = profile("stripe", "requests_per_secnd = 3");
        let error = SaasConfig::from_profile(&typo, &pipeline(&["customers"]), &environment).expect_err("bad");
        assert!(error.to_string().contains("requests_per_secnd"), "{error}");
    }

    #[test]
    fn saas_salesforce_takes_its_instance_and_client_credentials_from_the_environment() {
        let environment = |name: &str| match name {
            "SALESFORCE_INSTANCE_URL" => Some("https://acme.my.salesforce.com".to_string()),
            "SALESFORCE_CLIENT_ID" => Some("client".to_string()),
            "SALESFORCE_CLIENT_SECRET" => Some("secret".to_string()),
            _ => None,
        };
        let config =
            SaasConfig::from_profile(&profile("salesforce", ""), &pipeline(&["salesforce.Account"]), &environment)
                .expect("valid");
        assert_eq!(config.base_url.as_str(), "https://acme.my.salesforce.com/");
        assert_eq!(config.streams, vec!["Account"]);
        assert_eq!(config.salesforce_api_version, "v61.0");
        match &config.auth {
            Some(AuthSettings::Oauth2ClientCredentials { token_url, client_id, .. }) => {
                assert_eq!(token_url, "https://acme.my.salesforce.com/services/oauth2/token");
                assert_eq!(client_id, "client");
            }
            other => panic!("client credentials expected, got {other:?}"),
        }

        let versioned = profile("salesforce", "api_version = \"62.0\"");
        let config = SaasConfig::from_profile(&versioned, &pipeline(&["Account"]), &environment).expect("valid");
        assert_eq!(config.salesforce_api_version, "v62.0");
        let bad = profile("salesforce", "api_version = \"latest\"");
        let error = SaasConfig::from_profile(&bad, &pipeline(&["Account"]), &environment).expect_err("bad");
        assert!(error.to_string().contains("write it like \"v61.0\""), "{error}");

        let error = SaasConfig::from_profile(&profile("salesforce", ""), &pipeline(&["Account"]), &|_| None)
            .expect_err("no instance");
        assert!(error.to_string().contains("SALESFORCE_INSTANCE_URL"), "{error}");
        let only_id = |name: &str| (name == "SALESFORCE_CLIENT_ID").then(|| "client".to_string());
        let error = SaasConfig::from_profile(
            &profile("salesforce", "base_url = \"https://acme.my.salesforce.com\""),
            &pipeline(&["Account"]),
            &only_id,
        )
        .expect_err("no secret");
        assert!(error.to_string().contains("SALESFORCE_CLIENT_SECRET"), "{error}");
    }

    #[test]
    fn saas_salesforce_uses_the_refresh_token_flow_or_a_session_when_the_environment_says_so() {
        let profile = profile("salesforce", "base_url = \"https://acme.my.salesforce.com/\"");
        let refresh = |name: &str| match name {
            "SALESFORCE_CLIENT_ID" | "SALESFORCE_CLIENT_SECRET" | "SALESFORCE_REFRESH_TOKEN" => Some("x".to_string()),
            "SALESFORCE_TOKEN_STATE_FILE" => Some("/var/lib/connector/salesforce-token.json".to_string()),
            _ => None,
        };
        let config = SaasConfig::from_profile(&profile, &pipeline(&["Account"]), &refresh).expect("valid");
        match &config.auth {
            Some(AuthSettings::Oauth2RefreshToken { token_url, state_file, .. }) => {
                assert_eq!(token_url, "https://acme.my.salesforce.com/services/oauth2/token");
                assert_eq!(
                    state_file.as_deref(),
                    Some(std::path::Path::new("/var/lib/connector/salesforce-token.json"))
                );
            }
            other => panic!("refresh-token flow expected, got {other:?}"),
        }
        let session = |name: &str| (name == "SALESFORCE_ACCESS_TOKEN").then(|| "00D!x".to_string());
        let config = SaasConfig::from_profile(&profile, &pipeline(&["Account"]), &session).expect("valid");
        assert!(matches!(config.auth, Some(AuthSettings::Bearer { .. })));
        let error = SaasConfig::from_profile(&profile, &pipeline(&["Account"]), &|_| None).expect_err("none");
        assert!(error.to_string().contains("SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET"), "{error}");
    }
}
