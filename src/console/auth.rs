//! Who may use the console. Bound to loopback without a token, it is open to the machine's users; bound to
//! anything else it requires a token (`CONNECTOR_CONSOLE_TOKEN`, or a file of `name:token` lines) for every page
//! and action, given as `Authorization: Bearer …` by scripts or through the login form, which keeps it in an
//! HttpOnly, SameSite=Strict cookie. Every action must come from the console's own pages (same origin), so another
//! site open in the same browser cannot press its buttons.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use connector_core::error::{Error, Result};

use super::layout::page;

/// The environment variable holding the one token of an unnamed user.
pub const TOKEN_VARIABLE: &str = "CONNECTOR_CONSOLE_TOKEN";
const COOKIE: &str = "connector_console";
/// Shorter tokens are refused: they can be guessed.
const MIN_TOKEN_LENGTH: usize = 16;

/// The tokens the console accepts, each with the name its actions are logged under.
#[derive(Clone, Default)]
pub struct Access {
    tokens: Arc<Vec<(String, String)>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Access")
            .field("users", &self.tokens.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .finish()
    }
}

/// Who took an action: a token's name (or `console` on an open loopback console) and the address it came from.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl Access {
    /// The tokens of `token_file` (lines `name:token`, or a bare token; `#` starts a comment), else of
    /// [`TOKEN_VARIABLE`]; refuses to serve anything but loopback without one.
    pub fn configure(address: SocketAddr, token_file: Option<&Path>) -> Result<Access> {
        let mut tokens = Vec::new();
        if let Some(path) = token_file {
            let text = std::fs::read_to_string(path).map_err(|cause| {
                Error::config(format!("--console-token-file {}: cannot read it", path.display())).caused_by(cause)
            })?;
            for (index, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (name, token) = line.split_once(':').unwrap_or(("token", line));
                let place = format!("{} line {}", path.display(), index + 1);
                tokens.push((name.trim().to_string(), checked_token(token.trim(), &place)?));
            }
            if tokens.is_empty() {
                return Err(Error::config(format!(
                    "--console-token-file {} holds no token; write one `name:token` per line",
                    path.display()
                )));
            }
        } else if let Ok(token) = std::env::var(TOKEN_VARIABLE) {
            tokens.push(("token".to_string(), checked_token(token.trim(), TOKEN_VARIABLE)?));
        }
        if tokens.is_empty() && !address.ip().is_loopback() {
            return Err(Error::config(format!(
                "the console on {address} would be open to the network: set {TOKEN_VARIABLE} (e.g. to the output of \
                 `openssl rand -base64 32`) or --console-token-file, or bind it to 127.0.0.1"
            )));
        }
        Ok(Access { tokens: Arc::new(tokens) })
    }

    fn required(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name of the user `token` belongs to; every token is compared, in constant time.
    fn user_of(&self, token: &str) -> Option<String> {
        let mut user = None;
        for (name, expected) in self.tokens.iter() {
            if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
                user = Some(name.clone());
            }
        }
        user
    }

    /// The token a request carries: its bearer token, else its session cookie.
    fn presented(headers: &HeaderMap) -> Option<String> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| token.trim().to_string());
        bearer.or_else(|| {
            headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|value| {
                cookie::Cookie::split_parse(value)
                    .filter_map(|cookie| cookie.ok())
                    .find(|cookie| cookie.name() == COOKIE)
                    .map(|cookie| cookie.value().to_string())
            })
        })
    }
}

/// A token fit for a header and a cookie, long enough not to be guessed.
fn checked_token(token: &str, place: &str) -> Result<String> {
    let allowed = |character: char| character.is_ascii_alphanumeric() || "-_.~+/=".contains(character);
    if token.len() < MIN_TOKEN_LENGTH || !token.chars().all(allowed) {
        return Err(Error::config(format!(
            "{place}: a console token needs at least {MIN_TOKEN_LENGTH} characters of letters, digits and -_.~+/= \
             (e.g. the output of `openssl rand -base64 32`)"
        )));
    }
    Ok(token.to_string())
}

/// Lets a request through when it carries a valid token (or none is required) and, for an action, comes from the
/// console's own pages; records its [`Actor`].
pub async fn require_access(
    State(access): State<Access>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD && !same_origin(request.headers()) {
        return (StatusCode::FORBIDDEN, "refused: the request did not come from the console's own pages")
            .into_response();
    }
    let name = if access.required() {
        match Access::presented(request.headers()).and_then(|token| access.user_of(&token)) {
            Some(name) => name,
            None if request.method() == Method::GET => {
                let next = request.uri().path_and_query().map_or("/", |path| path.as_str());
                let target = format!("/login?next={}", urlencoding_of(next));
                return Redirect::to(&target).into_response();
            }
            None => return (StatusCode::UNAUTHORIZED, "a console token is required").into_response(),
        }
    } else {
        "console".to_string()
    };
    request.extensions_mut().insert(Actor(format!("{name} from {}", peer.ip())));
    next.run(request).await
}

/// Whether a state-changing request came from a page of this console: browsers say so in `Sec-Fetch-Site` and
/// `Origin`; scripts (curl) send neither and carry the token instead.
fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|value| value.to_str().ok());
    if fetch_site.is_some_and(|site| site != "same-origin" && site != "none") {
        return false;
    }
    match (headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            host.to_str().is_ok_and(|host| host.eq_ignore_ascii_case(origin_host))
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn urlencoding_of(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    login_form(query.next.as_deref(), None).into_response()
}

pub async fn login(State(access): State<Access>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "refused: the request did not come from the console's own pages")
            .into_response();
    }
    if access.user_of(form.token.trim()).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            login_form(form.next.as_deref(), Some("That token is not one of the console's.")),
        )
            .into_response();
    }
    let session = cookie::Cookie::build((COOKIE, form.token.trim().to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .build();
    let mut response = Redirect::to(safe_next(form.next.as_deref())).into_response();
    if let Ok(value) = session.to_string().parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Only a path of this console: never another site (`//evil.example`, `https://…`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path,
        _ => "/",
    }
}

fn login_form(next: Option<&str>, error: Option<&str>) -> maud::Markup {
    page(
        "Sign in",
        html! {
            @if let Some(error) = error { p.error { (error) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(safe_next(next));
                p { label { "Console token " input type="password" name="token" autofocus required size="48"; } }
                p { button type="submit" { "Sign in" } }
            }
            p.muted { "The token is the value of " code { (TOKEN_VARIABLE) } " or a line of the console's token file." }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_consoles_own_pages_may_act_and_only_its_own_paths_are_followed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().expect("header"));
        assert!(same_origin(&headers), "a script without an Origin");
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().expect("header"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "https://evil.example".parse().expect("header"));
        assert!(!same_origin(&headers));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", "cross-site".parse().expect("header"));
        assert!(!same_origin(&headers));
        assert_eq!(
            (safe_next(Some("/pipelines/shop")), safe_next(Some("//evil.example")), safe_next(None)),
            ("/pipelines/shop", "/", "/")
        );
    }

    #[test]
    fn a_short_token_or_an_open_console_on_the_network_is_refused() {
        let network: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), "alice:short\n").expect("write");
        let refused = Access::configure(network, Some(file.path())).expect_err("too short");
        assert!(refused.to_string().contains("at least 16"), "{refused}");
        std::fs::write(file.path(), "# operators\nalice:0123456789abcdef0123\nbob:fedcba9876543210fedc\n")
            .expect("write");
        let access = Access::configure(network, Some(file.path())).expect("two users");
        assert_eq!(access.user_of("fedcba9876543210fedc").as_deref(), Some("bob"));
        assert_eq!(access.user_of("fedcba9876543210fedd"), None);
    }
}
