//! Credentials attached to every request: bearer tokens and API keys, basic authentication, and OAuth2
//! access tokens (client-credentials and refresh-token grants, through the `oauth2` crate) that are cached,
//! refreshed before they expire and again when the API rejects them. A token response without `expires_in`
//! (Salesforce's: the session lasts as the org's policy says) keeps its token until the API answers 401.
//! Secret values never reach a log.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::secret::Secret;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use reqwest::RequestBuilder;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use url::Url;

use crate::config::AuthSettings;

/// Tokens are refreshed this long before they expire (or at four fifths of their life, if shorter), so a
/// request never leaves with a token about to lapse.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

type OAuthClient = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// How requests of one pipeline authenticate.
#[derive(Debug)]
pub struct Credentials {
    method: Method,
    /// Identifies the credential (a hash of its secret) so pipelines sharing it share one quota.
    fingerprint: u64,
    /// Where the credential is set, for the error when the API refuses it (`the environment variable …`).
    setting: String,
}

#[derive(Debug)]
enum Method {
    Anonymous,
    Bearer(Secret),
    Header { name: String, value: Secret },
    Query { name: String, value: Secret },
    Basic { username: String, password: Secret },
    OAuth(Box<OAuthSession>),
}

/// Which token a request carried, so a 401 drops that token and not a newer one another stream fetched.
pub type TokenGeneration = u64;

impl Credentials {
    pub fn anonymous() -> Self {
        Credentials {
            method: Method::Anonymous,
            fingerprint: 0,
            setting: "the profile's `auth` table (none is set)".into(),
        }
    }

    pub fn from_settings(
        settings: &AuthSettings,
        base_url: &Url,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let at = "auth";
        let setting = match settings {
            AuthSettings::Bearer { token } => token.describe("auth.token"),
            AuthSettings::ApiKey { key, .. } => key.describe("auth.key"),
            AuthSettings::Basic { password, .. } => format!("auth.username or {}", password.describe("auth.password")),
            AuthSettings::Oauth2ClientCredentials { client_secret, .. }
            | AuthSettings::Oauth2RefreshToken { client_secret, .. } => {
                format!("auth.client_id or {}", client_secret.describe("auth.client_secret"))
            }
        };
        let method = match settings {
            AuthSettings::Bearer { token } => Method::Bearer(token.resolve(&format!("{at}.token"), environment)?),
            AuthSettings::ApiKey { header, query, key } => {
                let value = key.resolve(&format!("{at}.key"), environment)?;
                match (header, query) {
                    (Some(name), None) => Method::Header { name: name.clone(), value },
                    (None, Some(name)) => Method::Query { name: name.clone(), value },
                    _ => {
                        return Err(Error::config(
                            "auth: an api_key needs exactly one of `header = \"X-Api-Key\"` or `query = \"api_key\"`",
                        ));
                    }
                }
            }
            AuthSettings::Basic { username, password } => Method::Basic {
                username: username.clone(),
                password: password.resolve(&format!("{at}.password"), environment)?,
            },
            AuthSettings::Oauth2ClientCredentials { token_url, client_id, client_secret, scopes } => {
                let secret = client_secret.resolve(&format!("{at}.client_secret"), environment)?;
                let client = oauth_client(base_url, token_url, client_id, &secret)?;
                Method::OAuth(Box::new(OAuthSession::new(
                    client,
                    token_url,
                    Grant::ClientCredentials { scopes: scopes.clone() },
                    GrantSettings { client: setting.clone(), grant: None },
                )?))
            }
            AuthSettings::Oauth2RefreshToken { token_url, client_id, client_secret, refresh_token, state_file } => {
                let secret = client_secret.resolve(&format!("{at}.client_secret"), environment)?;
                let client = oauth_client(base_url, token_url, client_id, &secret)?;
                let configured = refresh_token.resolve(&format!("{at}.refresh_token"), environment)?;
                let rotated = match state_file {
                    Some(path) => read_rotated_token(path)?,
                    None => None,
                };
                let grant_setting = match (&rotated, state_file) {
                    (Some(_), Some(path)) => format!(
                        "the rotated refresh token in auth.state_file {} (delete it to use {})",
                        path.display(),
                        refresh_token.describe("auth.refresh_token")
                    ),
                    _ => refresh_token.describe("auth.refresh_token"),
                };
                let current = rotated.unwrap_or(configured);
                Method::OAuth(Box::new(OAuthSession::new(
                    client,
                    token_url,
                    Grant::RefreshToken { current: std::sync::Mutex::new(current), state_file: state_file.clone() },
                    GrantSettings { client: setting.clone(), grant: Some(grant_setting) },
                )?))
            }
        };
        let mut hasher = DefaultHasher::new();
        match &method {
            Method::Anonymous => {}
            Method::Bearer(secret) | Method::Header { value: secret, .. } | Method::Query { value: secret, .. } => {
                secret.expose().hash(&mut hasher)
            }
            Method::Basic { username, .. } => username.hash(&mut hasher),
            Method::OAuth(session) => session.client.client_id().as_str().hash(&mut hasher),
        }
        Ok(Credentials { method, fingerprint: hasher.finish(), setting })
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Where the credential is set, for errors asking the user to fix it.
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// Whether requests carry a secret (which must then go nowhere but the API's own origin).
    pub fn is_anonymous(&self) -> bool {
        matches!(self.method, Method::Anonymous)
    }

    /// Adds the credential to `request`; for OAuth2, fetches or refreshes the access token first.
    pub async fn authorize(&self, request: RequestBuilder) -> Result<(RequestBuilder, Option<TokenGeneration>)> {
        Ok(match &self.method {
            Method::Anonymous => (request, None),
            Method::Bearer(token) => (request.bearer_auth(token.expose()), None),
            Method::Header { name, value } => (request.header(name.as_str(), value.expose()), None),
            Method::Query { name, value } => (request.query(&[(name.as_str(), value.expose())]), None),
            Method::Basic { username, password } => (request.basic_auth(username, Some(password.expose())), None),
            Method::OAuth(session) => {
                let (token, generation) = session.access_token().await?;
                (request.bearer_auth(token.expose()), Some(generation))
            }
        })
    }

    /// The API answered 401 to a request sent with `generation`: whether a new token is worth a retry.
    pub async fn rejected(&self, generation: Option<TokenGeneration>) -> bool {
        match (&self.method, generation) {
            (Method::OAuth(session), Some(generation)) => {
                session.drop_token(generation).await;
                true
            }
            _ => false,
        }
    }
}

fn oauth_client(base_url: &Url, token_url: &str, client_id: &str, secret: &Secret) -> Result<OAuthClient> {
    let url = base_url
        .join(token_url)
        .map_err(|cause| Error::config(format!("auth.token_url: `{token_url}` is not a URL")).caused_by(cause))?;
    let token_url = TokenUrl::from_url(url);
    Ok(BasicClient::new(ClientId::new(client_id.to_string()))
        .set_client_secret(ClientSecret::new(secret.expose().to_string()))
        .set_token_uri(token_url)
        // Credentials in the form body: the style HubSpot, Salesforce and most others accept.
        .set_auth_type(AuthType::RequestBody))
}

#[derive(Debug)]
enum Grant {
    ClientCredentials { scopes: Vec<String> },
    RefreshToken { current: std::sync::Mutex<Secret>, state_file: Option<PathBuf> },
}

struct CachedToken {
    secret: Secret,
    /// `None`: the server gave no lifetime, so the token serves until the API rejects it.
    refresh_at: Option<Instant>,
    generation: TokenGeneration,
}

/// Where the settings of an OAuth2 grant are, for the error when the token endpoint refuses them.
#[derive(Debug)]
struct GrantSettings {
    /// The client id and secret.
    client: String,
    /// The refresh token, for the refresh-token grant.
    grant: Option<String>,
}

/// An OAuth2 client and the access token it holds.
struct OAuthSession {
    client: OAuthClient,
    token_url: String,
    grant: Grant,
    settings: GrantSettings,
    http: reqwest::Client,
    /// One fetch at a time: streams waiting for a token share the one fetched.
    token: tokio::sync::Mutex<Option<CachedToken>>,
    generations: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSession")
            .field("client_id", self.client.client_id())
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl OAuthSession {
    fn new(client: OAuthClient, token_url: &str, grant: Grant, settings: GrantSettings) -> Result<Self> {
        // No redirects: a token endpoint that redirects could send the client secret elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|cause| Error::config("cannot build the OAuth2 HTTP client").caused_by(cause))?;
        Ok(OAuthSession {
            client,
            token_url: token_url.to_string(),
            grant,
            settings,
            http,
            token: tokio::sync::Mutex::new(None),
            generations: std::sync::atomic::AtomicU64::new(0),
        })
    }

    async fn access_token(&self) -> Result<(Secret, TokenGeneration)> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.refresh_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok((token.secret.clone(), token.generation));
        }
        let token = self.fetch().await?;
        let result = (token.secret.clone(), token.generation);
        *cached = Some(token);
        Ok(result)
    }

    async fn drop_token(&self, generation: TokenGeneration) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|token| token.generation == generation) {
            info!(token_url = %self.token_url, "the API rejected the access token; fetching a new one");
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<CachedToken> {
        let response = match &self.grant {
            Grant::ClientCredentials { scopes } => self
                .client
                .exchange_client_credentials()
                .add_scopes(scopes.iter().cloned().map(Scope::new))
                .request_async(&self.http)
                .await
                .map_err(|cause| self.token_error(cause))?,
            Grant::RefreshToken { current, .. } => {
                let refresh_token = RefreshToken::new(lock(current).expose().to_string());
                self.client
                    .exchange_refresh_token(&refresh_token)
                    .request_async(&self.http)
                    .await
                    .map_err(|cause| self.token_error(cause))?
            }
        };
        if let (Grant::RefreshToken { current, state_file }, Some(rotated)) = (&self.grant, response.refresh_token()) {
            let rotated = Secret::new(rotated.secret().clone());
            let changed = *lock(current) != rotated;
            if changed {
                if let Some(path) = state_file {
                    write_rotated_token(path, &rotated)?;
                } else {
                    warn!(
                        token_url = %self.token_url,
                        "the server rotated the refresh token but no auth.state_file is set; the new token lives only \
                         in this process"
                    );
                }
                *lock(current) = rotated;
            }
        }
        let lifetime = response.expires_in();
        let refresh_at = lifetime.map(|lifetime| Instant::now() + lifetime - REFRESH_MARGIN.min(lifetime / 5));
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        info!(token_url = %self.token_url, expires_in = ?lifetime, "fetched an OAuth2 access token");
        Ok(CachedToken { secret: Secret::new(response.access_token().secret().clone()), refresh_at, generation })
    }

    fn token_error<E>(&self, cause: RequestTokenError<E, oauth2::basic::BasicErrorResponse>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match cause {
            RequestTokenError::ServerResponse(response) => {
                let description = response.error_description().map(|text| format!(" ({text})")).unwrap_or_default();
                // Permanent (Retry::No): the same grant fails the same way until someone fixes the setting.
                let fix = match (response.error(), &self.settings.grant) {
                    (BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient, _)
                    | (_, None) => format!("fix {}", self.settings.client),
                    (BasicErrorResponseType::InvalidGrant, Some(grant)) => {
                        format!("authorize again and put the new refresh token in {grant}")
                    }
                    (_, Some(grant)) => format!("fix {} or {grant}", self.settings.client),
                };
                Error::config(format!(
                    "the token endpoint {} refused the credentials: {}{description}; {fix}",
                    self.token_url,
                    response.error()
                ))
            }
            RequestTokenError::Request(cause) => Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!("cannot reach the token endpoint {}", self.token_url),
            )
            .caused_by(cause),
            RequestTokenError::Parse(cause, _) => Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!("the token endpoint {} answered something that is not a token response", self.token_url),
            )
            .caused_by(cause),
            RequestTokenError::Other(text) => Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!("the token endpoint {} failed: {text}", self.token_url),
            ),
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The state file keeping the newest refresh token of a rotating server.
#[derive(Serialize, Deserialize)]
struct TokenState {
    refresh_token: String,
}

fn read_rotated_token(path: &Path) -> Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let state: TokenState = serde_json::from_str(&text).map_err(|cause| {
                Error::config(format!(
                    "auth.state_file {} is not a token state file; delete it to start from the configured refresh token",
                    path.display()
                ))
                .caused_by(cause)
            })?;
            Ok(Some(Secret::new(state.refresh_token)))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(Error::config(format!("cannot read auth.state_file {}", path.display())).caused_by(cause)),
    }
}

/// Writes the rotated token atomically (a crash leaves the old file or the new one), readable by the owner only:
/// a fresh temporary file in the same directory (created exclusively with mode 0600, so no planted file or
/// symlink is followed and no old permission kept), synced, renamed over the file, and the directory synced so
/// the rename survives a crash.
fn write_rotated_token(path: &Path, token: &Secret) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string(&TokenState { refresh_token: token.expose().to_string() })
        .map_err(|cause| Error::state("cannot encode the token state").caused_by(cause))?;
    let failed = |cause: std::io::Error| {
        Error::new(
            ErrorKind::State,
            Retry::No,
            format!(
                "cannot save the rotated refresh token to {}; the previous token no longer works, so fix the \
                 file's directory or permissions and authorize again",
                path.display()
            ),
        )
        .caused_by(cause)
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new().prefix(".refresh-token-").tempfile_in(directory).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    }
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|error| failed(error.error))?;
    #[cfg(unix)]
    std::fs::File::open(directory).and_then(|directory| directory.sync_all()).map_err(failed)?;
    info!(path = %path.display(), "saved the rotated refresh token");
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    #[test]
    fn saas_rotated_token_file_is_fresh_private_and_ignores_planted_symlinks() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("token.json");
        // An old file readable by all, and a symlink planted where the old code wrote its temporary file.
        std::fs::write(&path, r#"{"refresh_token":"old"}"#).expect("old file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let victim = directory.path().join("victim");
        std::fs::write(&victim, "untouched").expect("victim");
        symlink(&victim, path.with_extension("tmp")).expect("symlink");

        write_rotated_token(&path, &Secret::new("rotated-1")).expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "untouched", "the symlink was followed");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
        assert_eq!(read_rotated_token(&path).expect("read").expect("token").expose(), "rotated-1");
        // No temporary file is left beside it (the planted symlink aside).
        let names: Vec<_> = std::fs::read_dir(directory.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
