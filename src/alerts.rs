//! The alert webhook of `connector run`: with `CONNECTOR_ALERT_WEBHOOK` set (a URL, kept out of the process's
//! arguments since it carries the hook's secret), a Slack-compatible JSON message, `{"text": …}` (which Slack,
//! Mattermost, Rocket.Chat and most chat tools' incoming webhooks take), each time a pipeline's health changes:
//! it failed and is retried, it needs a person (with the resync command when a source lost history), it
//! recovered. With `CONNECTOR_ALERT_LAG` too (a duration: `5m`), also when a table's newest commit falls further
//! behind its source than that (`connector_source_lag_seconds`), and when it is back within it.

use std::time::Duration;

use connector_core::error::{Error, Result};
use connector_core::pipeline_health::{self, Health, HealthChange, LagChange};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// The environment variable holding the webhook's URL.
pub const WEBHOOK_VARIABLE: &str = "CONNECTOR_ALERT_WEBHOOK";
/// The environment variable holding the lag to alert on.
pub const LAG_VARIABLE: &str = "CONNECTOR_ALERT_LAG";
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
    let lag_threshold = match std::env::var(LAG_VARIABLE) {
        Ok(text) => Some(humantime::parse_duration(&text).map_err(|cause| {
            Error::config(format!("{LAG_VARIABLE}: `{text}` is not a duration (write 30s, 5m, 1h)")).caused_by(cause)
        })?),
        Err(_) => None,
    };
    let mut changes = pipeline_health::subscribe();
    let mut lags = lag_threshold.map(pipeline_health::watch_lag);
    info!(host = webhook.host_str().unwrap_or_default(), "alerts go to the webhook of {WEBHOOK_VARIABLE}");
    tokio::spawn(async move {
        loop {
            let text = tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => message(&change),
                    Err(RecvError::Lagged(missed)) => {
                        warn!(missed, "alerts came faster than the webhook took them");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
                change = next_lag_change(&mut lags) => match change {
                    Some(change) => lag_message(&change),
                    None => continue,
                },
            };
            post(&client, &webhook, &text).await;
        }
    });
    Ok(())
}

/// The next lag crossing, if lag is watched (else never); `None` after a missed one.
async fn next_lag_change(lags: &mut Option<tokio::sync::broadcast::Receiver<LagChange>>) -> Option<LagChange> {
    let Some(receiver) = lags else { return std::future::pending().await };
    match receiver.recv().await {
        Ok(change) => Some(change),
        Err(RecvError::Lagged(missed)) => {
            warn!(missed, "lag alerts came faster than the webhook took them");
            None
        }
        Err(RecvError::Closed) => {
            *lags = None;
            None
        }
    }
}

/// The lag alert's text.
pub fn lag_message(change: &LagChange) -> String {
    let (pipeline, table) = (&change.pipeline, &change.table);
    let behind = humantime::format_duration(Duration::from_secs(change.behind.as_secs()));
    let threshold = humantime::format_duration(change.threshold);
    if change.lagging {
        format!(
            "🐢 connector: pipeline `{pipeline}` table {table} is {behind} behind its source (alerting above {threshold}): \
             the source writes faster than the pipeline lands, or a commit is slow (see connector_commit_duration_seconds)"
        )
    } else {
        format!(
            "✅ connector: pipeline `{pipeline}` table {table} caught up: {behind} behind its source (within {threshold})"
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_alerts_say_which_table_how_far_behind_and_the_threshold() {
        let mut change = LagChange {
            pipeline: "shop".into(),
            table: "public.orders".into(),
            behind: Duration::from_millis(452_600),
            threshold: Duration::from_secs(300),
            lagging: true,
        };
        let lagging = lag_message(&change);
        assert!(
            lagging.contains("`shop` table public.orders is 7m 32s behind") && lagging.contains("above 5m"),
            "{lagging}"
        );
        (change.behind, change.lagging) = (Duration::from_secs(3), false);
        assert!(lag_message(&change).contains("caught up: 3s behind its source (within 5m)"));
    }
}
