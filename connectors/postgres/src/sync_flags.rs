//! The flags of `connector sync postgres`, each setting the profile key of the same name ([`crate::config`]).

use clap::Args;
use connector_core::config::Profile;
use connector_core::sync_flags::{CaptureFlags, CommonSyncFlags, SyncRequest};

#[derive(Debug, Args)]
pub struct PostgresSyncFlags {
    /// Connection URL, e.g. postgres://user:password@host:5432/database?sslmode=require.
    #[arg(long, env = "CONNECTOR_POSTGRES_URL", hide_env_values = true)]
    pub url: String,

    /// Tables to capture, comma-separated, schema-qualified: public.orders,public.items.
    #[arg(long, value_delimiter = ',', required_unless_present = "schemas")]
    pub tables: Vec<String>,

    /// Capture every table of these schemas, comma-separated: public,sales.
    #[arg(long, value_delimiter = ',')]
    pub schemas: Vec<String>,

    #[command(flatten)]
    pub capture: CaptureFlags,

    #[command(flatten)]
    pub common: CommonSyncFlags,
}

impl PostgresSyncFlags {
    pub fn into_request(self) -> SyncRequest {
        let mut settings = toml::Table::new();
        settings.insert("url".into(), self.url.into());
        self.capture.add_to(&mut settings);
        if !self.schemas.is_empty() {
            settings.insert("schemas".into(), self.schemas.into());
        }
        SyncRequest {
            profile: Profile { kind: crate::KIND.into(), settings },
            tables: self.tables,
            common: self.common,
        }
    }
}
