//! The PostgreSQL source profile: where to connect, which tables, and the names of the replication slot and
//! publication derived from the pipeline.

use std::time::Duration;

use connector_core::capture_settings::CaptureSettings;
use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::{Error, Result};
use connector_core::secret::ConnectionUrl;

use crate::tls::LIBPQ;
use connector_core::tls::{Checks, TlsMode, TlsSettings};
use pgwire_replication::{ReplicationConfig, TlsConfig};
use serde::Deserialize;

/// How often continuous mode writes a heartbeat into the WAL, so an idle slot still advances when other
/// databases or tables keep writing (otherwise the slot pins their WAL).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// The profile's own settings, as written under `[profiles.NAME]` with `kind = "postgres"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    url: ConnectionUrl,
    #[serde(default)]
    schemas: Vec<String>,
    #[serde(default)]
    slot: Option<String>,
    #[serde(default)]
    publication: Option<String>,
}

/// A validated PostgreSQL source for one pipeline.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub url: ConnectionUrl,
    pub connection: tokio_postgres::Config,
    pub tls: TlsSettings,
    pub capture: CaptureSettings,
    pub schemas: Vec<String>,
    pub slot: String,
    pub publication: String,
    pub heartbeat_interval: Duration,
}

impl PostgresConfig {
    pub fn from_profile(profile: &Profile, pipeline: &PipelineConfig) -> Result<Self> {
        let config = Self::connection_only(profile, pipeline)?;
        if config.capture.tables.is_empty() && config.schemas.is_empty() {
            return Err(Error::config(format!(
                "pipeline `{}`: name tables (--tables schema.table) or schemas (--schemas public)",
                pipeline.name
            )));
        }
        Ok(config)
    }

    /// The profile without requiring tables: enough to reach the server and name the slot (`connector drop`).
    pub fn connection_only(profile: &Profile, pipeline: &PipelineConfig) -> Result<Self> {
        let at = format!("pipeline `{}` (source `{}`)", pipeline.name, profile.kind);
        let mut settings = profile.settings.clone();
        let capture = CaptureSettings::take_from(&mut settings, pipeline, &at, "PostgreSQL")?;
        let raw: RawProfile = toml::Value::Table(settings)
            .try_into()
            .map_err(|cause| Error::config(format!("{at}: invalid PostgreSQL settings: {cause}")))?;
        let (tls, url_without_tls) = TlsSettings::split_from_url(raw.url.expose(), &LIBPQ)
            .map_err(|error| Error::config(format!("{at}: url `{}`: {}", raw.url.redacted(), error.report())))?;
        let mut connection: tokio_postgres::Config = url_without_tls.parse().map_err(|cause| {
            Error::config(format!(
                "{at}: url `{}` is not a PostgreSQL connection URL (postgres://user:password@host:5432/database)",
                raw.url.redacted()
            ))
            .caused_by(cause)
        })?;
        connection.ssl_mode(match tls.mode {
            TlsMode::Disabled => tokio_postgres::config::SslMode::Disable,
            TlsMode::Preferred => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Required | TlsMode::VerifyCa | TlsMode::VerifyIdentity => tokio_postgres::config::SslMode::Require,
        });
        if connection.get_dbname().is_none() {
            return Err(Error::config(format!(
                "{at}: url `{}` names no database; add it to the path (postgres://user@host:5432/DATABASE)",
                raw.url.redacted()
            )));
        }
        let default_name = format!("connector_{}", pipeline.name.replace('-', "_"));
        let slot = raw.slot.unwrap_or_else(|| default_name.clone());
        check_identifier(&slot).map_err(|reason| Error::config(format!("{at}: slot `{slot}`: {reason}")))?;
        let publication = raw.publication.unwrap_or(default_name);
        Ok(PostgresConfig {
            url: raw.url,
            connection,
            tls,
            capture,
            schemas: raw.schemas,
            slot,
            publication,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
        })
    }

    /// The server's host (a name, an address or a Unix socket directory) and port, as the URL gives them.
    pub fn server(&self) -> (String, u16) {
        let host = match self.connection.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_string(),
        };
        (host, self.connection.get_ports().first().copied().unwrap_or(5432))
    }

    /// The replication connection's settings, from the same URL as the SQL connection, with the same
    /// certificate checks ([`TlsSettings::checks`]).
    /// Streaming starts at `start`, which is also the position reported as durable until the caller confirms more.
    pub async fn replication(&self, slot: &str, start: u64) -> Result<ReplicationSettings> {
        let connection = &self.connection;
        let (host, port) = self.server();
        let password = connection.get_password().map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        if password.is_some() {
            self.tls.warn_if_exposed(&host, port, None).await;
        }
        let root = self.tls.ca.clone();
        let tls = match (self.tls.mode, self.tls.checks()) {
            (TlsMode::Disabled, _) => TlsConfig::disabled(),
            (_, Checks::ChainAndName) => TlsConfig::verify_full(root),
            (_, Checks::Chain) => TlsConfig::verify_ca(root),
            (TlsMode::Preferred, Checks::None) => {
                TlsConfig { mode: pgwire_replication::SslMode::Prefer, ..TlsConfig::disabled() }
            }
            (_, Checks::None) => TlsConfig::require(),
        };
        let config = ReplicationConfig::new(
            host,
            connection.get_user().unwrap_or("postgres"),
            password.unwrap_or_default(),
            connection.get_dbname().unwrap_or("postgres"),
            slot,
            self.publication.as_str(),
        )
        .with_port(port)
        .with_tls(tls)
        .with_binary(true)
        .with_start_lsn(pgwire_replication::Lsn::from_u64(start))
        .with_ack_lsn(pgwire_replication::Lsn::from_u64(start))
        // Confirmed positions reach the server within 200 ms: a stopping `--once` waits for that.
        .with_status_interval(Duration::from_millis(200))
        .with_application_name(format!("connector {}", self.capture.pipeline));
        Ok(ReplicationSettings(config))
    }
}

/// pgwire-replication's settings, which hold the password in clear and whose derived `Debug` prints it: this
/// wrapper's `Debug` shows no settings, and the settings leave it only to open a connection.
pub struct ReplicationSettings(ReplicationConfig);

impl ReplicationSettings {
    /// The settings, for `ReplicationClient::connect` and nothing else.
    pub fn into_inner(self) -> ReplicationConfig {
        self.0
    }
}

impl std::fmt::Debug for ReplicationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationSettings")
            .field("host", &self.0.host)
            .field("port", &self.0.port)
            .field("user", &self.0.user)
            .field("database", &self.0.database)
            .field("slot", &self.0.slot)
            .finish_non_exhaustive()
    }
}

/// Slot names: lower-case letters, digits and underscores, at most 63 bytes (PostgreSQL's rule).
fn check_identifier(name: &str) -> std::result::Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if valid { Ok(()) } else { Err("use 1 to 63 characters of a-z, 0-9 and `_`".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings are logged at debug level and kept in errors' context: neither the configuration nor the
    /// replication settings (whose own `Debug` prints the password) may show it.
    #[tokio::test]
    async fn debug_output_holds_no_password() {
        let url = "postgres://app:hunter2secret@127.0.0.1:5432/shop?sslmode=disable";
        let (profile, pipeline) = connector_core::config::command_line_source("postgres", url, "p");
        let config = PostgresConfig::connection_only(&profile, &pipeline).expect("valid");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
        let replication = config.replication("connector_p", 0).await.expect("settings");
        let shown = format!("{replication:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("connector_p"), "{shown}");
    }
}
