//! The HTTP endpoints of `connector run --metrics-addr`: `/metrics` (the pipelines' metrics in Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (its pipelines are built and scheduled, and none needs a
//! person), for Prometheus and for Kubernetes probes.

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use connector_core::error::{Error, Result};
use connector_core::pipeline_health;
use tokio::sync::watch;
use tracing::{info, warn};

/// OpenMetrics text, which Prometheus asks for and reads.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `address` and serves the endpoints until the process ends; `ready` turns true once the pipelines are
/// scheduled. Binding fails at once (a port in use), so a typo stops `connector run` before any pipeline starts.
pub async fn serve(address: SocketAddr, ready: watch::Receiver<bool>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|cause| {
        Error::config(format!("--metrics-addr {address}: cannot listen there (in use, or not this machine's)"))
            .caused_by(cause)
    })?;
    let router = Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok\n" })).route(
        "/readyz",
        get(move || {
            let ready = *ready.borrow();
            async move { readiness(ready) }
        }),
    );
    info!(%address, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            warn!(%error, "the metrics endpoint stopped");
        }
    });
    Ok(())
}

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], connector_core::metrics::metrics().encode())
}

/// `200 ready` once the pipelines are scheduled, unless one needs a person: then `503` naming each with its error
/// (a retried failure keeps the process ready: time may mend it).
fn readiness(scheduled: bool) -> (StatusCode, String) {
    if !scheduled {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string());
    }
    let needing = pipeline_health::needing_a_person();
    if needing.is_empty() {
        return (StatusCode::OK, "ready\n".to_string());
    }
    let mut text = String::from("needs attention\n");
    for (pipeline, error) in needing {
        text.push_str(&format!("{pipeline}: {error}\n"));
    }
    (StatusCode::SERVICE_UNAVAILABLE, text)
}
