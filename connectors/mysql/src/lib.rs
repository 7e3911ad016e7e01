//! The MySQL and MariaDB source: a consistent snapshot per table at a known binlog position, then the row
//! events of the binlog, exactly once into Delta.
//!
//! The binlog transport and event parsing (checksums, table maps, row images, MySQL's binary JSON) are
//! mysql_async's binlog stream; MariaDB's GTID events, which it passes through undecoded, are decoded in
//! [`gtid`]; rows become Arrow in [`codec`].

pub mod binlog;
pub mod binlog_order;
pub mod catalog;
pub mod changes;
pub mod chunk_reader;
pub mod codec;
pub mod config;
pub mod connection;
pub mod ddl;
pub mod earlier_rows;
mod event_reader;
pub mod gtid;
pub mod json_text;
mod label_lists;
pub mod mapped_tables;
pub mod pipeline;
mod read_buffer;
pub mod row_images;
pub mod setup;
pub mod snapshot;
pub mod status;
mod stream_errors;
pub mod sync_flags;
pub mod table_map;
pub mod tls;
pub mod types;

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::Result;
use connector_core::pipeline::Pipeline;

pub use config::MySqlConfig;
pub use pipeline::MySqlPipeline;

/// The `kind` of MySQL and MariaDB profiles.
pub const KIND: &str = "mysql";

/// Builds a runnable pipeline from a `kind = "mysql"` profile.
pub fn build(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    Ok(Arc::new(MySqlPipeline::new(MySqlConfig::from_profile(profile, pipeline)?)?))
}
