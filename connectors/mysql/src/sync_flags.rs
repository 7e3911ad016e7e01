//! The flags of `connector sync mysql`, each setting the profile key of the same name ([`crate::config`]).

use clap::Args;
use connector_core::config::Profile;
use connector_core::sync_flags::{CaptureFlags, CommonSyncFlags, SyncRequest};

#[derive(Debug, Args)]
pub struct MySqlSyncFlags {
    /// Connection URL, e.g. mysql://user:password@host:3306.
    #[arg(long, env = "CONNECTOR_MYSQL_URL", hide_env_values = true)]
    pub url: String,

    /// Tables to capture, comma-separated, database-qualified: shop.orders,shop.items.
    #[arg(long, value_delimiter = ',', required_unless_present = "databases")]
    pub tables: Vec<String>,

    /// Capture every table of these databases, comma-separated: shop,billing.
    #[arg(long, value_delimiter = ',')]
    pub databases: Vec<String>,

    /// The server id the binlog connection registers with, unique among the server's replicas (default:
    /// derived from the pipeline name).
    #[arg(long, value_name = "N")]
    pub server_id: Option<u32>,

    #[command(flatten)]
    pub capture: CaptureFlags,

    #[command(flatten)]
    pub common: CommonSyncFlags,
}

impl MySqlSyncFlags {
    pub fn into_request(self) -> SyncRequest {
        let mut settings = toml::Table::new();
        settings.insert("url".into(), self.url.into());
        self.capture.add_to(&mut settings);
        if let Some(server_id) = self.server_id {
            settings.insert("server_id".into(), toml::Value::Integer(i64::from(server_id)));
        }
        if !self.databases.is_empty() {
            settings.insert("databases".into(), self.databases.into());
        }
        SyncRequest {
            profile: Profile { kind: crate::KIND.into(), settings },
            tables: self.tables,
            common: self.common,
        }
    }
}
