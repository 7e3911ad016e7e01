//! The MySQL/MariaDB source profile: where to connect, which tables, and the replica server id the binlog
//! connection registers with.

use std::time::Duration;

use connector_core::capture_settings::CaptureSettings;
use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::{Error, Result};
use connector_core::secret::ConnectionUrl;

use crate::tls::{MYSQL_CLIENT, ssl_opts};
use connector_core::tls::TlsSettings;

use mysql_async::{Opts, OptsBuilder};
use serde::Deserialize;

/// How often an idle server sends a heartbeat on the binlog connection, so a dead link is noticed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// The heartbeat while tables are copied in chunks (see `chunk_reader`).
pub const COPY_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// The profile's own settings, as written under `[profiles.NAME]` with `kind = "mysql"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    url: ConnectionUrl,
    #[serde(default)]
    databases: Vec<String>,
    /// The server id the binlog connection registers with; unique among the server's replicas.
    #[serde(default)]
    server_id: Option<u32>,
}

/// A validated MySQL source for one pipeline. `Debug` shows the URL redacted and leaves out `connection`, whose
/// own `Debug` prints the password.
#[derive(Clone)]
pub struct MySqlConfig {
    pub url: ConnectionUrl,
    /// Open connections through [`crate::connection::connect`], which applies `tls` (`ssl-mode=PREFERRED`'s
    /// plaintext fallback, the errors naming the setting).
    pub connection: Opts,
    pub tls: TlsSettings,
    pub capture: CaptureSettings,
    pub databases: Vec<String>,
    pub server_id: u32,
}

impl std::fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("url", &self.url)
            .field("tls", &self.tls)
            .field("pipeline", &self.capture.pipeline)
            .field("dest", &self.capture.dest)
            .field("tables", &self.capture.tables)
            .field("databases", &self.databases)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

impl MySqlConfig {
    pub fn from_profile(profile: &Profile, pipeline: &PipelineConfig) -> Result<Self> {
        let config = Self::connection_only(profile, pipeline)?;
        if config.capture.tables.is_empty() && config.databases.is_empty() {
            return Err(Error::config(format!(
                "pipeline `{}`: name tables (--tables database.table) or databases (--databases shop)",
                pipeline.name
            )));
        }
        Ok(config)
    }

    /// The profile without requiring tables: enough to reach the server (`connector status`).
    pub fn connection_only(profile: &Profile, pipeline: &PipelineConfig) -> Result<Self> {
        let at = format!("pipeline `{}` (source `{}`)", pipeline.name, profile.kind);
        let mut settings = profile.settings.clone();
        let capture = CaptureSettings::take_from(&mut settings, pipeline, &at, "MySQL")?;
        let raw: RawProfile = toml::Value::Table(settings)
            .try_into()
            .map_err(|cause| Error::config(format!("{at}: invalid MySQL settings: {cause}")))?;
        let (tls, url_without_tls) = TlsSettings::split_from_url(raw.url.expose(), &MYSQL_CLIENT)
            .map_err(|error| Error::config(format!("{at}: url `{}`: {}", raw.url.redacted(), error.report())))?;
        let parsed = Opts::from_url(&url_without_tls).map_err(|cause| {
            Error::config(format!(
                "{at}: url `{}` is not a MySQL connection URL (mysql://user:password@host:3306)",
                raw.url.redacted()
            ))
            .caused_by(cause)
        })?;
        // Snapshots read in UTC and UTF-8 so TIMESTAMP and text values need no session context to decode.
        let connection: Opts = OptsBuilder::from_opts(parsed)
            .init(vec!["SET time_zone = '+00:00'", "SET NAMES utf8mb4"])
            .ssl_opts(ssl_opts(&tls))
            .into();
        let server_id = match raw.server_id {
            Some(0) => return Err(Error::config(format!("{at}: server_id must be 1 or more"))),
            Some(id) => id,
            None => default_server_id(&pipeline.name, &pipeline.dest),
        };
        Ok(MySqlConfig { url: raw.url, connection, tls, capture, databases: raw.databases, server_id })
    }
}

/// A server id derived from the pipeline's name and destination, stable across runs, in a range real replicas
/// rarely use. The destination counts: two pipelines of one name writing different lakes (staging and
/// production, say) read the binlog at once, and MySQL drops a replica's stream when another registers the
/// same id.
fn default_server_id(pipeline: &str, dest: &str) -> u32 {
    // FNV-1a: stable across builds, unlike std's hasher.
    let bytes = pipeline.bytes().chain([0]).chain(dest.bytes());
    let hash = bytes.fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    0x4000_0000 | (hash & 0x3fff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_password() {
        let url = "mysql://app:hunter2secret@db.example:3306/shop?ssl-mode=DISABLED";
        let (profile, pipeline) = connector_core::config::command_line_source("mysql", url, "p");
        let config = MySqlConfig::connection_only(&profile, &pipeline).expect("valid");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("db.example"), "{shown}");
    }

    #[test]
    fn default_server_ids_are_stable_and_distinct() {
        assert_eq!(default_server_id("orders", "./lake"), default_server_id("orders", "./lake"));
        assert_ne!(default_server_id("orders", "./lake"), default_server_id("billing", "./lake"));
        assert_ne!(default_server_id("orders", "/lakes/staging"), default_server_id("orders", "/lakes/production"));
        assert!(default_server_id("orders", "./lake") >= 0x4000_0000);
    }
}
