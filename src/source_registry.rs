//! Builds a runnable pipeline from a source profile: the one place that knows every connector.

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::{Error, Result};
use connector_core::pipeline::Pipeline;

/// Source kinds this build can run.
pub const SOURCE_KINDS: &[&str] = &[];

pub fn build_pipeline(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    Err(Error::config(format!(
        "pipeline `{}`: source kind `{}` is not available in this build (available: {})",
        pipeline.name,
        profile.kind,
        if SOURCE_KINDS.is_empty() { "none yet".to_string() } else { SOURCE_KINDS.join(", ") }
    )))
}
