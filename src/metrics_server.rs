//! The HTTP endpoints of `connector run --metrics-addr`: `/metrics` (the pipelines' metrics in Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (its pipelines are built and scheduled), for Prometheus and
//! for Kubernetes probes.

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use connector_core::error::{Error, Result};
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
    let router =
        Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok\n" })).route(
            "/readyz",
            get(move || {
                let ready = *ready.borrow();
                async move {
                    if ready { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting\n") }
                }
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
