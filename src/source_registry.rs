//! Builds a runnable pipeline from a source profile: the one place that knows every connector.

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::delta::Destination;
use connector_core::error::{Error, Result};
use connector_core::lease::LeasedPipeline;
use connector_core::pipeline::Pipeline;

/// Source kinds this build can run.
pub const SOURCE_KINDS: &[&str] = &[
    connector_postgres::KIND,
    connector_mysql::KIND,
    connector_saas::services::stripe::KIND,
    connector_saas::services::hubspot::KIND,
    connector_saas::services::zendesk::KIND,
    connector_saas::services::salesforce::KIND,
    connector_saas::services::rest::KIND,
];

/// The pipeline of `profile`, holding its lease in the destination while it syncs (one writer per pipeline).
pub fn build_pipeline(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    let source = build_source(profile, pipeline)?;
    let destination = Destination::parse(&pipeline.dest)?;
    Ok(Arc::new(LeasedPipeline::new(source, destination)))
}

fn build_source(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    match profile.kind.as_str() {
        connector_postgres::KIND => connector_postgres::build(profile, pipeline),
        connector_mysql::KIND => connector_mysql::build(profile, pipeline),
        kind if connector_saas::KINDS.contains(&kind) => connector_saas::build(profile, pipeline),
        other => Err(Error::config(format!(
            "pipeline `{}`: source kind `{other}` is not available in this build (available: {})",
            pipeline.name,
            SOURCE_KINDS.join(", ")
        ))),
    }
}
