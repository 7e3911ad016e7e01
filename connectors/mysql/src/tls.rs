//! TLS settings as the MySQL client takes them (`ssl-mode`, `ssl-ca`, here from the connection URL), what each
//! checks of the server's certificate, mysql_async's options for them and the errors that name them.

use std::path::PathBuf;

use connector_core::error::{Error, ErrorKind, Result, Retry};
use mysql_async::SslOpts;

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

    /// The mode as the MySQL client spells it, for messages.
    pub fn name(self) -> &'static str {
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
    pub fn handshake_failed(&self, what: &str, detail: impl std::fmt::Display) -> Error {
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

/// Takes the MySQL client's `ssl-mode` (see [`crate::connection`]; PREFERRED when absent, as the client
/// does) and `ssl-ca` (a PEM file of the CA to trust instead of the Mozilla roots) out of the URL, which
/// mysql_async does not know. An `ssl-ca` without `ssl-mode` checks the chain (VERIFY_CA): a CA given is meant
/// to be checked against.
pub fn split_tls_settings(url: &str) -> Result<(TlsSettings, String)> {
    let mut parsed = url::Url::parse(url)
        .map_err(|cause| Error::config("not a URL (mysql://user:password@host:3306)").caused_by(cause))?;
    let mut mode = None;
    let mut ca: Option<PathBuf> = None;
    let mut kept = Vec::new();
    for (name, value) in parsed.query_pairs() {
        match name.as_ref() {
            "ssl-mode" | "ssl_mode" | "sslmode" => mode = Some(TlsMode::parse(&value)?),
            "ssl-ca" | "ssl_ca" | "sslrootcert" => ca = Some(PathBuf::from(value.as_ref())),
            _ => kept.push((name.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    if let Some(path) = &ca
        && !path.is_file()
    {
        return Err(Error::config(format!("ssl-ca `{}`: no such file", path.display())));
    }
    let default = if ca.is_some() { TlsMode::VerifyCa } else { TlsMode::Preferred };
    Ok((TlsSettings { mode: mode.unwrap_or(default), ca }, parsed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_preferred_unless_the_url_says_otherwise() {
        let mode = |url: &str| split_tls_settings(url).map(|(tls, _)| tls.mode).expect("valid");
        assert_eq!(mode("mysql://app@db:3306/shop"), TlsMode::Preferred);
        assert_eq!(mode("mysql://app@db:3306/shop?ssl-mode=disabled"), TlsMode::Disabled);
        assert_eq!(mode("mysql://app@db:3306/shop?ssl_mode=REQUIRED"), TlsMode::Required);
        assert_eq!(mode("mysql://app@db:3306/shop?sslmode=verify-identity"), TlsMode::VerifyIdentity);
        let ca = std::env::current_exe().expect("a file that exists");
        assert_eq!(mode(&format!("mysql://app@db:3306/shop?ssl-ca={}", ca.display())), TlsMode::VerifyCa);
        let error = split_tls_settings("mysql://app@db/shop?ssl-mode=ON").expect_err("unknown mode");
        assert!(error.report().contains("DISABLED, PREFERRED, REQUIRED"), "{}", error.report());
        let (_, rest) = split_tls_settings("mysql://app@db/shop?ssl-mode=REQUIRED&prefer_socket=false").expect("ok");
        assert_eq!(rest, "mysql://app@db/shop?prefer_socket=false");
    }
}
