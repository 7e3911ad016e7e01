//! Builds a runnable pipeline from a source profile: the one place that knows every connector.

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::{Error, Result};
use connector_core::pipeline::Pipeline;

/// Source kinds this build can run.
pub const SOURCE_KINDS: &[&str] = &[connector_postgres::KIND, connector_mysql::KIND];

pub fn build_pipeline(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    match profile.kind.as_str() {
        connector_postgres::KIND => connector_postgres::build(profile, pipeline),
        connector_mysql::KIND => connector_mysql::build(profile, pipeline),
        other => Err(Error::config(format!(
            "pipeline `{}`: source kind `{other}` is not available in this build (available: {})",
            pipeline.name,
            SOURCE_KINDS.join(", ")
        ))),
    }
}
