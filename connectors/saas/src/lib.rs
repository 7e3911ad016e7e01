//! SaaS API sources: an engine for incremental REST APIs ([`stream`], [`pipeline`]), the HTTP layer it runs on
//! ([`client`]: authentication, quotas, retries), and connectors for Stripe, HubSpot, Zendesk and Salesforce, plus
//! declarative REST streams written in TOML ([`services::rest`]).
//!
//! Every stream lands in its own Delta table at `<dest>/<service>/<stream>`; the stream's API cursor is
//! committed in the same Delta commit as the records read up to it, so a sync stopped at any instant resumes
//! without losing or duplicating a record.

pub mod auth;
pub mod client;
pub mod codec;
pub mod config;
pub mod excerpt;
pub mod limits;
pub mod pipeline;
pub mod schema;
pub mod services;
pub mod stream;
pub mod sync_flags;

use std::sync::Arc;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::Result;
use connector_core::pipeline::Pipeline;

pub use config::SaasConfig;
pub use pipeline::SaasPipeline;

/// The profile kinds this crate builds, one per service.
pub const KINDS: &[&str] = &[
    services::stripe::KIND,
    services::hubspot::KIND,
    services::zendesk::KIND,
    services::salesforce::KIND,
    services::rest::KIND,
];

/// Builds a runnable pipeline from a profile whose `kind` is one of [`KINDS`].
pub fn build(profile: &Profile, pipeline: &PipelineConfig) -> Result<Arc<dyn Pipeline>> {
    let config = SaasConfig::from_profile(profile, pipeline, &|name| std::env::var(name).ok())?;
    Ok(Arc::new(SaasPipeline::new(config)?))
}
