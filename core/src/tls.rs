//! TLS settings of a database connection as its client spells them in the URL (libpq's `sslmode` and
//! `sslrootcert`, the MySQL client's `ssl-mode` and `ssl-ca`): the five levels both clients share, what each
//! checks of the server's certificate, and the errors and warnings that name the settings as the user wrote
//! them. A connector declares its client's spelling and rules once (a [`TlsDialect`]) and turns the settings
//! into its driver's options; everything else lives here.

use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result, Retry};
use crate::exposed_credentials::{self, Exposure};

/// The levels of protection both libpq and the MySQL client offer, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsMode {
    /// Plaintext.
    Disabled,
    /// TLS if the server offers it, else plaintext.
    Preferred,
    /// TLS or no connection; the certificate is checked only where the client's rules say so.
    Required,
    /// TLS whose certificate chain leads to a trusted CA.
    VerifyCa,
    /// TLS whose certificate chain leads to a trusted CA and names the host connected to.
    VerifyIdentity,
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Encryption only.
    None,
    /// The chain must lead to a trusted root; the name is not checked.
    Chain,
    ChainAndName,
}

/// How one database client spells its TLS settings and the rules it applies, so that the settings read and the
/// messages look like the client's own documentation.
#[derive(Debug)]
pub struct TlsDialect {
    /// The URL parameters that set the mode: the client's own name first (used in messages), then other
    /// spellings accepted.
    pub mode_keys: &'static [&'static str],
    /// The URL parameters that name the CA file, the client's own name first.
    pub ca_keys: &'static [&'static str],
    /// Each mode's name, weakest first, as the client spells it.
    pub mode_names: [&'static str; 5],
    /// Reads a mode's value by the client's rules (case, aliases such as libpq's `allow`).
    pub parse_mode: fn(&str) -> Option<TlsMode>,
    /// Whether `Required` and `Preferred` check the chain when a CA file is given: libpq does (for
    /// compatibility with versions before `verify-ca`), the MySQL client does not.
    pub ca_checks_chain_when_required: bool,
    /// The mode when the URL names a CA file and no mode.
    pub mode_with_ca_alone: TlsMode,
    /// The form of the URL, for the error when it does not parse.
    pub url_form: &'static str,
    /// How to make the server offer TLS, for the error when it does not.
    pub enable_tls_on_server: &'static str,
}

impl TlsDialect {
    fn mode_key(&self) -> &'static str {
        self.mode_keys[0]
    }

    fn ca_key(&self) -> &'static str {
        self.ca_keys[0]
    }

    fn name(&self, mode: TlsMode) -> &'static str {
        self.mode_names[mode as usize]
    }
}

/// TLS settings taken out of the connection URL.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// The CA file to trust instead of the Mozilla roots.
    pub ca: Option<PathBuf>,
    dialect: &'static TlsDialect,
}

impl TlsSettings {
    /// Takes the TLS parameters out of the URL (drivers know only some of them) and returns the rest of the URL.
    /// Without a mode, TLS is preferred, as both clients do, unless a CA file alone is given.
    pub fn split_from_url(url: &str, dialect: &'static TlsDialect) -> Result<(TlsSettings, String)> {
        let mut parsed = url::Url::parse(url)
            .map_err(|cause| Error::config(format!("not a URL ({})", dialect.url_form)).caused_by(cause))?;
        let mut mode = None;
        let mut ca: Option<PathBuf> = None;
        let mut kept = Vec::new();
        for (name, value) in parsed.query_pairs() {
            if dialect.mode_keys.contains(&name.as_ref()) {
                mode = Some((dialect.parse_mode)(&value).ok_or_else(|| {
                    Error::config(format!(
                        "{} `{value}` is not one of {}",
                        dialect.mode_key(),
                        dialect.mode_names.join(", ")
                    ))
                })?);
            } else if dialect.ca_keys.contains(&name.as_ref()) {
                ca = Some(PathBuf::from(value.as_ref()));
            } else {
                kept.push((name.into_owned(), value.into_owned()));
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
            return Err(Error::config(format!("{} `{}`: no such file", dialect.ca_key(), path.display())));
        }
        let default = if ca.is_some() { dialect.mode_with_ca_alone } else { TlsMode::Preferred };
        Ok((TlsSettings { mode: mode.unwrap_or(default), ca, dialect }, parsed.to_string()))
    }

    /// What these settings check of the server's certificate. Where libpq's `prefer` retries in plaintext after
    /// a failed check, drivers here refuse: they retry only when the server offers no TLS, the safer of the two.
    pub fn checks(&self) -> Checks {
        match self.mode {
            TlsMode::VerifyIdentity => Checks::ChainAndName,
            TlsMode::VerifyCa => Checks::Chain,
            TlsMode::Required | TlsMode::Preferred
                if self.ca.is_some() && self.dialect.ca_checks_chain_when_required =>
            {
                Checks::Chain
            }
            TlsMode::Disabled | TlsMode::Preferred | TlsMode::Required => Checks::None,
        }
    }

    /// The settings as the URL gives them, for messages: `sslmode=require, sslrootcert=/etc/ca.pem`.
    fn described(&self) -> String {
        let dialect = self.dialect;
        let mode = format!("{}={}", dialect.mode_key(), dialect.name(self.mode));
        match (&self.ca, self.checks()) {
            (Some(path), _) => format!("{mode}, {}={}", dialect.ca_key(), path.display()),
            (None, Checks::None) => mode,
            (None, Checks::Chain | Checks::ChainAndName) => {
                format!("{mode} (no {}: the Mozilla roots are trusted)", dialect.ca_key())
            }
        }
    }

    /// The error for a TLS handshake these settings made fail (a refused certificate, a server without TLS),
    /// saying which setting asked for what and how to pass.
    pub fn handshake_failed(&self, what: &str, detail: impl std::fmt::Display) -> Error {
        let dialect = self.dialect;
        let (mode_key, ca_key) = (dialect.mode_key(), dialect.ca_key());
        let fix = match self.checks() {
            Checks::ChainAndName => format!(
                "the server's certificate must be signed by a CA in {ca_key} and name the host connected to: set \
                 {ca_key} to the CA file that signed it and connect by a host name it names (or {mode_key}={} to \
                 skip the name check)",
                dialect.name(TlsMode::VerifyCa)
            ),
            Checks::Chain => format!(
                "the server's certificate must be signed by a CA in {ca_key}: set {ca_key} to the CA file that signed \
                 it"
            ),
            Checks::None if self.mode == TlsMode::Required => format!(
                "the server must offer TLS: {}, or set {mode_key}={}",
                dialect.enable_tls_on_server,
                dialect.name(TlsMode::Preferred)
            ),
            Checks::None => "check the server's TLS configuration".to_string(),
        };
        Error::new(
            ErrorKind::Config,
            Retry::No,
            format!("{what}: TLS failed under {} ({detail}); {fix}", self.described()),
        )
    }

    /// How a password sent under these settings travels (`None`: encrypted to a checked server). `encrypted`:
    /// whether the connection used TLS, where the driver says; a `Preferred` connection whose driver does not
    /// say may have fallen back to plaintext, whatever a CA file would have checked.
    fn exposure(&self, encrypted: Option<bool>) -> Option<Exposure> {
        match (self.mode, encrypted, self.checks()) {
            (TlsMode::Disabled, _, _) | (_, Some(false), _) => Some(Exposure::Plaintext),
            (TlsMode::Preferred, None, _) => Some(Exposure::UnverifiedOrPlaintext),
            (_, _, Checks::None) => Some(Exposure::Unverified),
            (_, _, Checks::Chain | Checks::ChainAndName) => None,
        }
    }

    /// Warns (once per server) when these settings send the password to another machine in plaintext or
    /// without certificate checks. `encrypted` is whether the connection used TLS, where the driver says.
    pub async fn warn_if_exposed(&self, host: &str, port: u16, encrypted: Option<bool>) {
        let Some(exposure) = self.exposure(encrypted) else { return };
        let dialect = self.dialect;
        let (mode_key, ca_key) = (dialect.mode_key(), dialect.ca_key());
        let ignored_ca = match (&self.ca, self.checks()) {
            (Some(_), Checks::None) => format!(" ({ca_key} is not used under {})", dialect.name(self.mode)),
            _ => String::new(),
        };
        let fix = format!(
            "{mode_key}={} in the URL{ignored_ca}; set {mode_key}={} and {ca_key}=<CA file> to encrypt and check the \
             server",
            dialect.name(self.mode),
            dialect.name(TlsMode::VerifyIdentity)
        );
        exposed_credentials::warn_once(host, port, exposure, &fix).await;
    }
}

/// The rustls error beneath a failed connection, if TLS is why it failed: drivers wrap it in their own error or
/// in an I/O error, somewhere down the chain of sources.
pub fn rustls_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
        });
        if tls.is_some() {
            return tls;
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up client that names its modes by what they ask for, with libpq's rule that a CA file makes
    /// `required` check the chain.
    static DIALECT: TlsDialect = TlsDialect {
        mode_keys: &["tls", "tls_mode"],
        ca_keys: &["tls-ca"],
        mode_names: ["off", "try", "on", "check-ca", "check-host"],
        parse_mode: |text| {
            let modes =
                [TlsMode::Disabled, TlsMode::Preferred, TlsMode::Required, TlsMode::VerifyCa, TlsMode::VerifyIdentity];
            DIALECT.mode_names.iter().position(|name| *name == text).map(|index| modes[index])
        },
        ca_checks_chain_when_required: true,
        mode_with_ca_alone: TlsMode::Preferred,
        url_form: "db://user@host/database",
        enable_tls_on_server: "enable TLS on the server",
    };

    fn settings(url: &str) -> Result<(TlsSettings, String)> {
        TlsSettings::split_from_url(url, &DIALECT)
    }

    #[test]
    fn the_settings_leave_the_url_and_the_rest_stays() {
        let (tls, rest) = settings("db://app@host/shop?tls_mode=on&timeout=5").expect("valid");
        assert_eq!((tls.mode, tls.checks()), (TlsMode::Required, Checks::None));
        assert_eq!(rest, "db://app@host/shop?timeout=5");
        let (tls, rest) = settings("db://app@host/shop").expect("valid");
        assert_eq!(tls.mode, TlsMode::Preferred);
        assert_eq!(rest, "db://app@host/shop");
    }

    #[test]
    fn a_ca_file_checks_the_chain_where_the_client_says_so() {
        let ca = std::env::current_exe().expect("a file that exists");
        let (tls, _) = settings(&format!("db://app@host/shop?tls=on&tls-ca={}", ca.display())).expect("valid");
        assert_eq!(tls.checks(), Checks::Chain);
        let (tls, _) = settings("db://app@host/shop?tls=check-host").expect("valid");
        assert_eq!(tls.checks(), Checks::ChainAndName);
        let missing = settings("db://app@host/shop?tls-ca=/nonexistent/ca.pem").expect_err("no such file");
        assert!(missing.report().contains("tls-ca `/nonexistent/ca.pem`: no such file"), "{}", missing.report());
    }

    #[test]
    fn a_password_is_said_exposed_unless_it_went_encrypted_to_a_checked_server() {
        let ca = std::env::current_exe().expect("a file that exists");
        let exposure = |query: &str, encrypted| {
            settings(&format!("db://app@host/shop?{query}")).expect("valid").0.exposure(encrypted)
        };
        assert_eq!(exposure("tls=off", None), Some(Exposure::Plaintext));
        assert_eq!(exposure("tls=try", None), Some(Exposure::UnverifiedOrPlaintext));
        // A CA file checks the chain only if TLS was used: the driver may have fallen back to plaintext.
        assert_eq!(exposure(&format!("tls=try&tls-ca={}", ca.display()), None), Some(Exposure::UnverifiedOrPlaintext));
        assert_eq!(exposure("tls=try", Some(false)), Some(Exposure::Plaintext));
        assert_eq!(exposure("tls=try", Some(true)), Some(Exposure::Unverified));
        assert_eq!(exposure("tls=on", None), Some(Exposure::Unverified));
        assert_eq!(exposure(&format!("tls=on&tls-ca={}", ca.display()), None), None);
        assert_eq!(exposure("tls=check-host", Some(true)), None);
    }

    #[test]
    fn errors_name_the_settings_as_the_client_spells_them() {
        let unknown = settings("db://app@host/shop?tls=yes").expect_err("unknown mode");
        assert!(unknown.report().contains("tls `yes` is not one of off, try, on"), "{}", unknown.report());
        let (tls, _) = settings("db://app@host/shop?tls=check-host").expect("valid");
        let refused = tls.handshake_failed("cannot connect", "UnknownIssuer").report();
        assert!(refused.contains("TLS failed under tls=check-host (no tls-ca: the Mozilla roots are trusted)"));
        assert!(refused.contains("or tls=check-ca to skip the name check"), "{refused}");
        let (tls, _) = settings("db://app@host/shop?tls=on").expect("valid");
        let refused = tls.handshake_failed("cannot connect", "no TLS").report();
        assert!(refused.contains("enable TLS on the server, or set tls=try"), "{refused}");
    }
}
