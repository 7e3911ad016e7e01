//! TLS settings as libpq takes them from the connection URL (`sslmode`, `sslrootcert`), what each checks of the
//! server's certificate, and the errors and warnings that name them. The SQL connections
//! ([`crate::connection`]) and the replication connection ([`crate::config::PostgresConfig::replication`]) apply
//! them alike.

use std::path::PathBuf;

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::exposed_credentials::{self, Exposure};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "disable" | "allow" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(Error::config(format!(
                    "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Encryption only (`prefer`, `require` without a root certificate), as libpq does.
    None,
    /// The chain must lead to a trusted root; the name is not checked.
    Chain,
    ChainAndName,
}

/// TLS settings taken out of the connection URL.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub root_cert: Option<PathBuf>,
}

impl TlsSettings {
    /// libpq's checks: `require` (and `prefer`) with a root certificate check the chain like `verify-ca` (libpq
    /// documents this for compatibility with versions before `verify-ca` existed). Where libpq's `prefer` then
    /// retries in plaintext after a failed check, this refuses: tokio-postgres retries only when the server
    /// offers no TLS, and refusing is the safer of the two.
    pub fn checks(&self) -> Checks {
        match self.mode {
            TlsMode::VerifyFull => Checks::ChainAndName,
            TlsMode::VerifyCa => Checks::Chain,
            TlsMode::Require | TlsMode::Prefer if self.root_cert.is_some() => Checks::Chain,
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => Checks::None,
        }
    }

    /// The settings as the URL gives them, for messages: `sslmode=require, sslrootcert=/etc/ca.pem`.
    fn described(&self) -> String {
        match &self.root_cert {
            Some(path) => format!("sslmode={}, sslrootcert={}", self.mode.name(), path.display()),
            None => format!("sslmode={} (no sslrootcert: the Mozilla roots are trusted)", self.mode.name()),
        }
    }

    /// The error for a TLS handshake these settings made fail (a refused certificate, a server without TLS),
    /// saying which setting asked for what and how to pass.
    pub fn handshake_failed(&self, what: &str, detail: impl std::fmt::Display) -> Error {
        let fix = match self.checks() {
            Checks::ChainAndName => {
                "the server's certificate must be signed by a CA in sslrootcert and name the host connected to: set \
                 sslrootcert to the CA file that signed it and connect by a host name it names (or sslmode=verify-ca \
                 to skip the name check)"
            }
            Checks::Chain => {
                "the server's certificate must be signed by a CA in sslrootcert: set sslrootcert to the CA file that \
                 signed it"
            }
            Checks::None => "the server must offer TLS: enable ssl on the server, or set sslmode=prefer",
        };
        Error::new(
            ErrorKind::Config,
            Retry::No,
            format!("{what}: TLS failed under {} ({detail}); {fix}", self.described()),
        )
    }

    /// Warns (once per server) when these settings send the password in plaintext or without certificate checks
    /// to another machine.
    pub async fn warn_if_exposed(&self, host: &str, port: u16) {
        let exposure = match (self.mode, self.checks()) {
            (TlsMode::Disable, _) => Exposure::Plaintext,
            (TlsMode::Prefer, _) => Exposure::UnverifiedOrPlaintext,
            (_, Checks::None) => Exposure::Unverified,
            (_, Checks::Chain | Checks::ChainAndName) => return,
        };
        let fix = format!(
            "sslmode={} in the URL; set sslmode=verify-full and sslrootcert=<CA file> to encrypt and check the server",
            self.mode.name()
        );
        exposed_credentials::warn_once(host, port, exposure, &fix).await;
    }
}

/// Takes libpq's `sslmode` and `sslrootcert` out of the URL (tokio-postgres knows neither `verify-ca` nor
/// `verify-full`). Without `sslmode`, TLS is preferred, as libpq does.
pub fn split_tls_settings(url: &str) -> Result<(TlsSettings, String)> {
    let mut parsed = url::Url::parse(url)
        .map_err(|cause| Error::config("not a URL (postgres://user:password@host:5432/database)").caused_by(cause))?;
    let mut settings = TlsSettings { mode: TlsMode::Prefer, root_cert: None };
    let mut kept = Vec::new();
    for (name, value) in parsed.query_pairs() {
        match name.as_ref() {
            "sslmode" => settings.mode = TlsMode::parse(&value)?,
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(value.as_ref())),
            _ => kept.push((name.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((settings, parsed.to_string()))
}
