//! The PostgreSQL source: a consistent snapshot under a snapshot exported by a replication slot, then the
//! changes of logical replication (pgoutput over the streaming replication protocol), exactly once into Delta.
//!
//! The replication transport (START_REPLICATION over CopyBoth, keepalives, standby status updates, SCRAM and
//! TLS) is the `pgwire-replication` crate, as tokio-postgres has none; the pgoutput messages carrying rows are
//! decoded here ([`pgoutput`]), straight into Arrow ([`codec`]).

pub mod binding;
pub mod catalog;
pub mod changes;
pub mod chunk_reader;
pub mod codec;
pub mod config;
pub mod connection;
pub mod earlier_rows;
pub mod pgoutput;
pub mod pipeline;
pub mod schema;
pub mod setup;
pub mod snapshot;
pub mod stream;
pub mod sync_flags;
pub mod tls;

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::Result;
use connector_core::pipeline::Pipeline;

pub use config::PostgresConfig;
pub use pipeline::PostgresPipeline;

/// The `kind` of PostgreSQL profiles.
pub const KIND: &str = "postgres";

/// The profile and pipeline a command names by `--url` and `--pipeline` alone, for commands that reach the
/// server but capture nothing (`drop`, `status`).
pub fn command_line_source(url: &str, pipeline: &str) -> (Profile, PipelineConfig) {
    connector_core::config::command_line_source(KIND, url, pipeline)
}

/// Builds a runnable pipeline from a `kind = "postgres"` profile.
pub fn build(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    Ok(Arc::new(PostgresPipeline::new(PostgresConfig::from_profile(profile, pipeline)?)?))
}
