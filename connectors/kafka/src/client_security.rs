//! How the connector proves itself to the brokers: SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and TLS, as
//! settings of their own rather than librdkafka properties, so the password is a [`Secret`] (never in a log or
//! a `Debug`), a typo is an error naming the setting, and `security.protocol` follows from what is set.
//!
//! ```toml
//! [profiles.events]
//! kind = "kafka"
//! brokers = "kafka-1:9093"
//! sasl = { mechanism = "SCRAM-SHA-512", username = "connector", password = "${KAFKA_PASSWORD}" }
//! tls = { ca = "/etc/kafka/ca.pem" }   # or tls = true: the system's authorities
//! ```
//!
//! The brokers refusing the credentials is reported by librdkafka to the client's error callback, not to the
//! request that waits for them; [`RefusedConnection`] keeps that reason so the request's error can name it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use connector_core::secret::Secret;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Deserialize;

/// A SASL mechanism librdkafka speaks without a system library (GSSAPI/Kerberos needs Cyrus SASL, which the
/// binary does not link; OAUTHBEARER goes through `properties`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `sasl = { mechanism = "SCRAM-SHA-512", username = "…", password = "${…}" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslSettings {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// `tls = true` (the system's certificate authorities) or `tls = { ca = "…", certificate = "…", key = "…" }`
/// (an authority of one's own; a client certificate and key for brokers that ask for one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the authorities the brokers' certificates must come from, instead of the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM file of the client's certificate (mutual TLS), with `key`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The private key's password, when it is encrypted.
    #[serde(default)]
    pub key_password: Option<Secret>,
}

/// `tls = true | false | { … }` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawTls {
    Enabled(bool),
    Settings(TlsSettings),
}

impl RawTls {
    pub fn settings(self) -> Option<TlsSettings> {
        match self {
            RawTls::Enabled(false) => None,
            RawTls::Enabled(true) => Some(TlsSettings::default()),
            RawTls::Settings(settings) => Some(settings),
        }
    }
}

/// The brokers' security as configured: what the client is told, and what errors name.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    pub sasl: Option<SaslSettings>,
    pub tls: Option<TlsSettings>,
}

impl ClientSecurity {
    /// Checks what cannot be caught by the brokers' answer: a certificate without its key, files that are not
    /// there. `at` names the pipeline in errors.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        let Some(tls) = &self.tls else { return Ok(()) };
        if tls.certificate.is_some() != tls.key.is_some() {
            return Err(format!(
                "{at}: tls: a client certificate needs its key: set both `certificate` and `key`, or neither"
            ));
        }
        for (name, path) in [("ca", &tls.ca), ("certificate", &tls.certificate), ("key", &tls.key)] {
            if let Some(path) = path
                && !path.is_file()
            {
                return Err(format!("{at}: tls: {name} = \"{}\" is not a file", path.display()));
            }
        }
        Ok(())
    }

    /// Sets librdkafka's `security.protocol` and the SASL and TLS properties. The user's `properties` are set
    /// after these, so they can still override any of them.
    pub fn apply(&self, client: &mut ClientConfig) {
        let protocol = match (&self.sasl, &self.tls) {
            (None, None) => return,
            (Some(_), None) => "SASL_PLAINTEXT",
            (None, Some(_)) => "SSL",
            (Some(_), Some(_)) => "SASL_SSL",
        };
        client.set("security.protocol", protocol);
        if let Some(sasl) = &self.sasl {
            client
                .set("sasl.mechanism", sasl.mechanism.name())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
        if let Some(tls) = &self.tls {
            let paths = [
                ("ssl.ca.location", &tls.ca),
                ("ssl.certificate.location", &tls.certificate),
                ("ssl.key.location", &tls.key),
            ];
            for (property, path) in paths {
                if let Some(path) = path {
                    client.set(property, path.to_string_lossy());
                }
            }
            if let Some(password) = &tls.key_password {
                client.set("ssl.key.password", password.expose());
            }
        }
    }

    /// What the connector presented, for an error about the brokers refusing it: "SASL SCRAM-SHA-512 as user
    /// `connector` over TLS". Never the password.
    pub fn describe(&self) -> String {
        let sasl = match &self.sasl {
            Some(sasl) => format!("SASL {} as user `{}`", sasl.mechanism.name(), sasl.username),
            None => "no SASL credentials".to_string(),
        };
        let tls = match &self.tls {
            Some(tls) if tls.certificate.is_some() => "over TLS with a client certificate",
            Some(_) => "over TLS",
            None => "without TLS",
        };
        format!("{sasl} {tls}")
    }
}

/// The last reason the client gave for the brokers refusing it (failed authentication or TLS handshake), shared
/// between the client's error callback and the requests that time out because of it.
#[derive(Debug, Clone, Default)]
pub struct RefusedConnection(Arc<Mutex<Option<String>>>);

impl RefusedConnection {
    /// Keeps `reason` when `error` is the brokers refusing the connector; other failures the client retries.
    /// Returns whether it was kept.
    pub fn record(&self, error: &KafkaError, reason: &str) -> bool {
        if !refuses_the_connector(error) {
            return false;
        }
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason.to_string());
        true
    }

    /// Keeps a line of the client's log that says the brokers refused the connector. librdkafka writes it from
    /// its own threads as the connection fails, before the request it broke returns, whereas its error callback
    /// only runs when the consumer is polled.
    pub fn record_log(&self, facility: &str, line: &str) -> bool {
        // "SASL authentication error: …", "SASL PLAIN mechanism handshake failed: … broker's supported
        // mechanisms: …", "SSL handshake failed: … certificate verify failed", and a TLS alert the listener sends
        // (with TLS 1.3 a missing client certificate is one, after the handshake): "Receive failed: …:SSL
        // routines::tlsv13 alert certificate required".
        let refused = facility == "FAIL"
            && ((line.contains("SASL") && (line.contains("error") || line.contains("failed")))
                || line.contains("SSL handshake failed")
                || (line.contains("SSL routines") && line.contains("alert")));
        if refused {
            *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(line.to_string());
        }
        refused
    }

    pub fn reason(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Whether `error` says the brokers will not have the connector as it presents itself: retrying with the same
/// credentials or certificates cannot succeed.
pub fn refuses_the_connector(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SSL
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(client: &ClientConfig, name: &str) -> Option<String> {
        client.get(name).map(str::to_string)
    }

    #[test]
    fn the_protocol_follows_from_what_is_set_and_the_password_shows_nowhere_but_the_client() {
        let sasl = SaslSettings {
            mechanism: SaslMechanism::ScramSha512,
            username: "connector".into(),
            password: Secret::new("hunter2"),
        };
        let cases = [
            (None, None, None),
            (Some(sasl.clone()), None, Some("SASL_PLAINTEXT")),
            (None, Some(TlsSettings::default()), Some("SSL")),
            (Some(sasl.clone()), Some(TlsSettings::default()), Some("SASL_SSL")),
        ];
        for (sasl, tls, protocol) in cases {
            let security = ClientSecurity { sasl, tls };
            let mut client = ClientConfig::new();
            security.apply(&mut client);
            assert_eq!(property(&client, "security.protocol").as_deref(), protocol);
            assert!(!format!("{security:?}").contains("hunter2"));
            assert!(!security.describe().contains("hunter2"));
            if security.sasl.is_some() {
                assert_eq!(property(&client, "sasl.password").as_deref(), Some("hunter2"));
                assert_eq!(property(&client, "sasl.mechanism").as_deref(), Some("SCRAM-SHA-512"));
            }
        }
    }

    #[test]
    fn tls_is_written_as_a_switch_or_as_settings_and_a_certificate_needs_its_key() {
        #[derive(Deserialize)]
        struct Profile {
            tls: RawTls,
        }
        let read = |text: &str| toml::from_str::<Profile>(text).expect("parses").tls.settings();
        assert!(read("tls = false").is_none());
        assert!(read("tls = true").is_some_and(|tls| tls.ca.is_none()));
        let file = tempfile::NamedTempFile::new().expect("temporary file");
        let path = file.path().display().to_string();
        let own_authority = read(&format!("tls = {{ ca = \"{path}\" }}")).expect("tls");
        assert_eq!(own_authority.ca.as_deref(), Some(file.path()));
        let security = ClientSecurity { sasl: None, tls: Some(own_authority) };
        assert_eq!(security.validate("here"), Ok(()));
        let half = ClientSecurity { sasl: None, tls: read(&format!("tls = {{ certificate = \"{path}\" }}")) };
        assert!(half.validate("here").is_err_and(|error| error.contains("needs its key")));
        let missing = ClientSecurity { sasl: None, tls: read("tls = { ca = \"/nowhere/ca.pem\" }") };
        assert!(missing.validate("here").is_err_and(|error| error.contains("/nowhere/ca.pem")));
        assert!(toml::from_str::<Profile>("tls = { cafile = \"x\" }").is_err());
    }
}
