//! Connections to the source, with TLS as the MySQL client's `--ssl-mode` asks: `DISABLED`, `PREFERRED` (the
//! default: TLS if the server offers it, else plaintext), `REQUIRED` (encrypted, certificate not checked),
//! `VERIFY_CA` (certificate chain checked) and `VERIFY_IDENTITY` (chain and host name checked); `ssl-ca` names
//! the CA file, else the Mozilla roots are trusted.

use std::path::PathBuf;

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::exposed_credentials::{self, Exposure};
use mysql_async::{Conn, DriverError, OptsBuilder, SslOpts};

use crate::catalog::source_error;
use crate::config::MySqlConfig;

/// The MySQL client's `--ssl-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl TlsMode {
    /// `ssl-mode`'s value, in any case, with `-` or `_` (`verify-ca`, `VERIFY_CA`).
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" => TlsMode::Disabled,
            "PREFERRED" => TlsMode::Preferred,
            "REQUIRED" => TlsMode::Required,
            "VERIFY_CA" => TlsMode::VerifyCa,
            "VERIFY_IDENTITY" => TlsMode::VerifyIdentity,
            _ => {
                return Err(Error::config(format!(
                    "ssl-mode `{text}` is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "DISABLED",
            TlsMode::Preferred => "PREFERRED",
            TlsMode::Required => "REQUIRED",
            TlsMode::VerifyCa => "VERIFY_CA",
            TlsMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

/// TLS settings taken out of the connection URL.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub ca: Option<PathBuf>,
}

impl TlsSettings {
    /// mysql_async's options for the first attempt (`None`: plaintext).
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        let with_ca = |options: SslOpts| match &self.ca {
            Some(path) => options.with_root_certs(vec![path.clone().into()]).with_disable_built_in_roots(true),
            None => options,
        };
        let unchecked =
            || SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true);
        match self.mode {
            TlsMode::Disabled => None,
            TlsMode::Preferred | TlsMode::Required => Some(unchecked()),
            TlsMode::VerifyCa => Some(with_ca(SslOpts::default().with_danger_skip_domain_validation(true))),
            TlsMode::VerifyIdentity => Some(with_ca(SslOpts::default())),
        }
    }

    /// The settings as the URL gives them, for messages: `ssl-mode=VERIFY_CA, ssl-ca=/etc/ca.pem`.
    fn described(&self) -> String {
        match (&self.ca, self.mode) {
            (Some(path), _) => format!("ssl-mode={}, ssl-ca={}", self.mode.name(), path.display()),
            (None, TlsMode::VerifyCa | TlsMode::VerifyIdentity) => {
                format!("ssl-mode={} (no ssl-ca: the Mozilla roots are trusted)", self.mode.name())
            }
            (None, _) => format!("ssl-mode={}", self.mode.name()),
        }
    }

    /// The error for a TLS handshake these settings made fail, saying which setting asked for what and how to
    /// pass.
    fn handshake_failed(&self, what: &str, detail: impl std::fmt::Display) -> Error {
        let fix = match self.mode {
            TlsMode::VerifyIdentity => {
                "the server's certificate must be signed by a CA in ssl-ca and name the host connected to: set ssl-ca \
                 to the CA file that signed it and connect by a host name it names (or ssl-mode=VERIFY_CA to skip \
                 the name check)"
            }
            TlsMode::VerifyCa => {
                "the server's certificate must be signed by a CA in ssl-ca: set ssl-ca to the CA file that signed it"
            }
            TlsMode::Required => {
                "the server must offer TLS: configure ssl_cert and ssl_key on the server, or set ssl-mode=PREFERRED"
            }
            TlsMode::Disabled | TlsMode::Preferred => "check the server's TLS configuration",
        };
        Error::new(
            ErrorKind::Config,
            Retry::No,
            format!("{what}: TLS failed under {} ({detail}); {fix}", self.described()),
        )
    }
}

/// Opens a connection as the URL's `ssl-mode` asks. `what` says what the connection is for, in errors.
///
/// `PREFERRED` is done here: mysql_async has no such mode (it either requires TLS or never uses it), so a
/// refusal for want of TLS on the server (the server's greeting lacks the TLS capability) is retried in
/// plaintext, as the MySQL client falls back. Any other failure, a bad certificate included, is not retried:
/// the server offered TLS, so a plaintext retry could only help someone in the middle.
pub async fn connect(config: &MySqlConfig, what: &str) -> Result<Conn> {
    let attempt = Conn::new(config.connection.clone()).await;
    let (connected, encrypted) = match attempt {
        Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))
            if config.tls.mode == TlsMode::Preferred =>
        {
            let plaintext = OptsBuilder::from_opts(config.connection.clone()).ssl_opts(None::<SslOpts>);
            (Conn::new(plaintext).await, false)
        }
        other => (other, config.tls.mode != TlsMode::Disabled),
    };
    let conn = connected.map_err(|cause| match refused_tls(&cause) {
        Some(detail) => config.tls.handshake_failed(what, detail),
        None => {
            let fix = connection_fix(&cause);
            let server = format!("{}:{}", config.connection.ip_or_hostname(), config.connection.tcp_port());
            source_error(format!("{what} at {server} ({fix})"), cause)
        }
    })?;
    if config.connection.pass().is_some() {
        warn_if_exposed(config, encrypted).await;
    }
    Ok(conn)
}

/// What to check when a connection fails, by the server's error code; an I/O error means it was not reached.
fn connection_fix(cause: &mysql_async::Error) -> &'static str {
    /// ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_BAD_DB_ERROR.
    const ACCESS_DENIED: u16 = 1045;
    const DATABASE_ACCESS_DENIED: u16 = 1044;
    const UNKNOWN_DATABASE: u16 = 1049;
    match cause {
        mysql_async::Error::Server(server) if server.code == ACCESS_DENIED => {
            "check the user and password in the URL, and the host the account may connect from"
        }
        mysql_async::Error::Server(server)
            if server.code == DATABASE_ACCESS_DENIED || server.code == UNKNOWN_DATABASE =>
        {
            "check the database named in the URL's path and the user's grants on it"
        }
        mysql_async::Error::Server(_) => "see the server's reason",
        _ => "check the host and port in the URL, and that the server is running and accepts connections from here",
    }
}

/// Warns (once per server) when the password went to another machine in plaintext or without certificate checks.
async fn warn_if_exposed(config: &MySqlConfig, encrypted: bool) {
    let exposure = match (encrypted, config.tls.mode) {
        (false, _) => Exposure::Plaintext,
        (true, TlsMode::Disabled | TlsMode::Preferred | TlsMode::Required) => Exposure::Unverified,
        (true, TlsMode::VerifyCa | TlsMode::VerifyIdentity) => return,
    };
    let fix = format!(
        "ssl-mode={} in the URL; set ssl-mode=VERIFY_IDENTITY and ssl-ca=<CA file> to encrypt and check the server",
        config.tls.mode.name()
    );
    let host = config.connection.ip_or_hostname();
    exposed_credentials::warn_once(host, config.connection.tcp_port(), exposure, &fix).await;
}

/// Why TLS failed, if it did: a server without TLS where TLS is required, or a refused handshake (a certificate
/// the settings do not trust, say).
fn refused_tls(error: &mysql_async::Error) -> Option<String> {
    if let mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) = error {
        return Some("the server offers no TLS".to_string());
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
        });
        if let Some(tls) = tls {
            return Some(tls.to_string());
        }
        cause = current.source();
    }
    None
}
