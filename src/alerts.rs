//! The alert webhook of `connector run`: with `CONNECTOR_ALERT_WEBHOOK` set (a URL, kept out of the process's
//! arguments since it carries the hook's secret), a Slack-compatible JSON message, `{"text": …}` (which Slack,
//! Mattermost, Rocket.Chat and most chat tools' incoming webhooks take), each time a pipeline's health changes:
//! it failed and is retried, it needs a person (with the resync command when a source lost history), it
//! recovered.

use std::time::Duration;

use connector_core::error::{Error, Result};
use connector_core::pipeline_health::{self, Health, HealthChange};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// The environment variable holding the webhook's URL.
pub const WEBHOOK_VARIABLE: &str = "CONNECTOR_ALERT_WEBHOOK";
/// Attempts per alert, a second apart then two: a chat service's blip loses no alert, a long outage holds up
/// only the alerts behind it.
const ATTEMPTS: u32 = 3;

/// Starts sending alerts if the variable is set; a URL that does not parse stops `connector run` at start.
pub fn start_from_environment() -> Result<()> {
    let Ok(text) = std::env::var(WEBHOOK_VARIABLE) else { return Ok(()) };
    let webhook = reqwest::Url::parse(&text).map_err(|cause| {
        Error::config(format!("{WEBHOOK_VARIABLE}: not a URL (write the webhook's https://… address)")).caused_by(cause)
    })?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|cause| Error::config("cannot build the alert webhook's HTTP client").caused_by(cause))?;
    let mut changes = pipeline_health::subscribe();
    info!(host = webhook.host_str().unwrap_or_default(), "alerts go to the webhook of {WEBHOOK_VARIABLE}");
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(change) => post(&client, &webhook, &message(&change)).await,
                Err(RecvError::Lagged(missed)) => warn!(missed, "alerts came faster than the webhook took them"),
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(())
}

/// The alert's text: what happened to which pipeline, and what to do.
pub fn message(change: &HealthChange) -> String {
    let pipeline = &change.pipeline;
    match &change.now {
        Health::Healthy => format!("✅ connector: pipeline `{pipeline}` recovered (its last run finished)"),
        Health::Retrying { error } => {
            format!("⚠️ connector: pipeline `{pipeline}` failed and is retried with backoff: {error}")
        }
        Health::NeedsPerson { error, resync } if !resync.is_empty() => format!(
            "🛑 connector: pipeline `{pipeline}` stopped: its source lost changes its tables need: {error}\n\
             Copy them anew: connector resync --pipeline {pipeline} --table {}",
            resync.join(",")
        ),
        Health::NeedsPerson { error, .. } => {
            format!("🛑 connector: pipeline `{pipeline}` needs attention (retrying will not mend it): {error}")
        }
    }
}

async fn post(client: &reqwest::Client, webhook: &reqwest::Url, text: &str) {
    let body = serde_json::json!({ "text": text });
    for attempt in 1..=ATTEMPTS {
        // Errors are shown without the URL: its path is the hook's secret.
        let failure = match client.post(webhook.clone()).json(&body).send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("the webhook answered {}", response.status()),
            Err(error) => error.without_url().to_string(),
        };
        if attempt == ATTEMPTS {
            warn!(%failure, "could not deliver an alert to the webhook; it is dropped");
            return;
        }
        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
    }
}
