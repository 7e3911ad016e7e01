//! Connections to the source, with TLS as the MySQL client's `--ssl-mode` asks: `DISABLED`, `PREFERRED` (the
//! default: TLS if the server offers it, else plaintext), `REQUIRED` (encrypted, certificate not checked),
//! `VERIFY_CA` (certificate chain checked) and `VERIFY_IDENTITY` (chain and host name checked); `ssl-ca` names
//! the CA file, else the Mozilla roots are trusted.

use connector_core::error::Result;
use connector_core::tls::{TlsMode, rustls_failure};
use mysql_async::{Conn, DriverError, OptsBuilder, SslOpts};

use crate::catalog::source_error;
use crate::config::MySqlConfig;

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
        let host = config.connection.ip_or_hostname();
        config.tls.warn_if_exposed(host, config.connection.tcp_port(), Some(encrypted)).await;
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

/// Why TLS failed, if it did: a server without TLS where TLS is required, or a refused handshake (a certificate
/// the settings do not trust, say).
fn refused_tls(error: &mysql_async::Error) -> Option<String> {
    if let mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) = error {
        return Some("the server offers no TLS".to_string());
    }
    rustls_failure(error).map(|tls| tls.to_string())
}
