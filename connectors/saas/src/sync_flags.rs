//! The flags of `connector sync stripe|hubspot|zendesk|salesforce`, each setting the profile key of the same
//! name ([`crate::config`]); credentials come from environment variables.

use clap::Args;
use connector_core::config::Profile;
use connector_core::sync_flags::{CommonSyncFlags, SyncRequest, count};

#[derive(Debug, Args)]
pub struct SaasSyncFlags {
    /// Streams to sync, comma-separated: customers,invoices. Each lands at <dest>/<service>/<stream>.
    #[arg(long, value_delimiter = ',', required = true)]
    pub streams: Vec<String>,

    /// Another host for the API: a sandbox, a proxy, an emulator (default: the service's own).
    #[arg(long)]
    pub base_url: Option<String>,

    /// The credential's quota in requests per second (default: none until the API's rate-limit headers tell one).
    #[arg(long, value_name = "RATE")]
    pub requests_per_second: Option<f64>,

    /// Records per Delta commit (default 50000): bounds memory, and the work redone after a crash.
    #[arg(long, value_name = "COUNT")]
    pub batch_records: Option<usize>,

    #[command(flatten)]
    pub common: CommonSyncFlags,
}

impl SaasSyncFlags {
    /// The sync of service `kind` (one of [`crate::KINDS`]).
    pub fn into_request(self, kind: &str) -> SyncRequest {
        let mut settings = toml::Table::new();
        if let Some(url) = self.base_url {
            settings.insert("base_url".into(), url.into());
        }
        if let Some(rate) = self.requests_per_second {
            settings.insert("requests_per_second".into(), toml::Value::Float(rate));
        }
        if let Some(records) = self.batch_records {
            settings.insert("batch_records".into(), count(records as u64));
        }
        SyncRequest { profile: Profile { kind: kind.into(), settings }, tables: self.streams, common: self.common }
    }
}
