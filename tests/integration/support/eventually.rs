//! Waiting for what a connector running in the background does: poll a check until it holds.

use std::time::{Duration, Instant};

/// Waits up to a minute for `check` to hold, polling every 200 ms; fails the test naming `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
