//! Secrets that never reach logs: `Debug` and `Display` print a placeholder, and connection URLs print
//! without their password.

use std::fmt;

use serde::{Deserialize, Deserializer};
use url::Url;

const REDACTED: &str = "***";

/// A credential: the value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A connection URL that may hold a password; displays with the password replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(Secret);

impl ConnectionUrl {
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionUrl(Secret::new(url))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with its password (and any `password=` query parameter) replaced by `***`.
    pub fn redacted(&self) -> String {
        match Url::parse(self.0.expose()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some(REDACTED));
                }
                let query: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(key, value)| {
                        let hidden = key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sslpassword");
                        (key.into_owned(), if hidden { REDACTED.to_string() } else { value.into_owned() })
                    })
                    .collect();
                if !query.is_empty() {
                    url.query_pairs_mut().clear().extend_pairs(query);
                }
                url.to_string()
            }
            Err(_) => REDACTED.to_string(),
        }
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for ConnectionUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ConnectionUrl::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let url = ConnectionUrl::new("postgres://app:s3cret@db:5432/shop?sslmode=require&password=other");
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("other"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/shop?sslmode=require"), "{shown}");
        assert_eq!(format!("{:?}", Secret::new("token")), "***");
        assert_eq!(url.expose(), "postgres://app:s3cret@db:5432/shop?sslmode=require&password=other");
    }
}
