//! Files into Delta: the files of a local directory or an object-store prefix, each ingested once, in bounded
//! batches, with its rows and its record in the table's file ledger in one Delta commit ([`pipeline`] over
//! core's file loop). Formats: CSV and TSV, JSON lines, Parquet, Avro, text (compressed or not), and binary files whole.

pub mod avro_rows;
pub mod avro_types;
pub mod avro_values;
pub mod binary_rows;
pub mod column_builders;
pub mod compression;
pub mod config;
pub mod csv_blocks;
pub mod csv_fields;
pub mod csv_rows;
pub mod csv_typed_rows;
pub mod file_bytes;
pub mod file_reading;
pub mod flat_json;
pub mod format;
pub mod format_options;
pub mod inference;
pub mod json_chunks;
pub mod json_rows;
pub mod line_chunks;
pub mod listing;
pub mod load;
pub mod location;
pub mod notifications;
pub mod ordered_parses;
pub mod parquet_rows;
pub mod pipeline;
pub mod preview;
pub mod read_errors;
pub mod rescued_data;
pub mod row_sink;
pub mod schema_hints;
pub mod snappy_stream;
pub mod source_cleaning;
pub mod stored_types;
pub mod sync_flags;
pub mod text_encoding;
pub mod text_rows;
pub mod text_types;
pub mod text_values;
pub mod typed_rows;

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::Result;
use connector_core::pipeline::Pipeline;

pub use config::FilesConfig;
pub use pipeline::FilesPipeline;

/// The profile kind of a files source.
pub const KIND: &str = "files";

/// Builds a runnable pipeline from a profile of kind [`KIND`].
pub fn build(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    let config = FilesConfig::from_profile(profile, pipeline)?;
    Ok(Arc::new(FilesPipeline::new(config)?))
}
