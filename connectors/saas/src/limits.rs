//! The quota of one credential: a `governor` rate limiter (from the profile, tightened by what the API's
//! rate-limit headers announce) and a pause every request honours after a 429 or an exhausted window.
//! Pipelines using the same credential against the same host share one quota.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tracing::{info, warn};

/// The longest pause a rate-limit header may impose: a bogus reset time must not stall a pipeline for days.
const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);

/// The longest rate-limit window believed: a bogus one must not slow a pipeline to a request a day.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Requests are spaced this much wider than the quota's period: a request that reaches the API late (a busy
/// client or network, up to a tenth of the period) must not put the next one inside the same window as the one
/// before. The cost is a tenth of the rate.
const QUOTA_HEADROOM: f64 = 1.1;

/// A quota's identity: the API's `host:port` and the credential's fingerprint.
type QuotaKey = (String, u64);

/// Every quota in the process.
static QUOTAS: LazyLock<Mutex<HashMap<QuotaKey, Arc<CredentialQuota>>>> = LazyLock::new(Default::default);

/// How fast one credential may call one API.
#[derive(Debug)]
pub struct CredentialQuota {
    limiter: RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
    /// Requests per second currently enforced.
    rate: Mutex<Option<f64>>,
    paused_until: Mutex<Option<Instant>>,
}

impl CredentialQuota {
    /// The quota shared by every client of `host` with credential `fingerprint`. The first caller's
    /// configured rate applies; a lower rate from a later caller or from the API tightens it.
    pub fn shared(host: &str, fingerprint: u64, requests_per_second: Option<f64>) -> Arc<CredentialQuota> {
        let mut quotas = QUOTAS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let quota = quotas
            .entry((host.to_string(), fingerprint))
            .or_insert_with(|| {
                Arc::new(CredentialQuota {
                    limiter: RwLock::new(None),
                    rate: Mutex::new(None),
                    paused_until: Mutex::new(None),
                })
            })
            .clone();
        if let Some(rate) = requests_per_second {
            quota.tighten(rate, "configured");
        }
        quota
    }

    /// Waits until a request may leave: after any pause, then as the rate allows. A pause that began while
    /// waiting for the rate (another stream's 429) is waited for too.
    pub async fn ready(&self) {
        loop {
            while let Some(until) = self.paused_until().filter(|until| *until > Instant::now()) {
                tokio::time::sleep_until(until.into()).await;
            }
            let limiter = self.limiter.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            if let Some(limiter) = limiter {
                limiter.until_ready().await;
            }
            if self.paused_until().is_none_or(|until| until <= Instant::now()) {
                return;
            }
        }
    }

    fn paused_until(&self) -> Option<Instant> {
        *lock(&self.paused_until)
    }

    /// Holds every request of this credential for `duration` (a 429's `Retry-After`, an exhausted window).
    /// Returns how much longer requests are now held than they already were: pauses that overlap add up to the
    /// time requests stood still, not to the sum of what each asked.
    pub fn pause_for(&self, duration: Duration) -> Duration {
        let now = Instant::now();
        let until = now + duration.min(MAX_PAUSE);
        let mut paused = lock(&self.paused_until);
        let held_until = paused.filter(|current| *current > now).unwrap_or(now);
        if until <= held_until {
            return Duration::ZERO;
        }
        *paused = Some(until);
        until - held_until
    }

    /// Applies what the API's rate-limit headers say: a quota lower than ours, or a window with nothing left.
    /// Returns how much longer requests are held for it (see [`CredentialQuota::pause_for`]).
    pub fn observe(&self, headers: &HeaderMap) -> Duration {
        let limits = RateLimitHeaders::parse(headers);
        if let Some(rate) = limits.requests_per_second() {
            self.tighten(rate, "announced by the API");
        }
        match (limits.remaining, limits.reset) {
            (Some(0), Some(reset)) => {
                warn!(seconds = reset.as_secs_f64(), "the API's rate-limit window is used up; pausing requests");
                self.pause_for(reset)
            }
            _ => Duration::ZERO,
        }
    }

    /// The rate currently enforced, requests per second.
    pub fn rate(&self) -> Option<f64> {
        *lock(&self.rate)
    }

    fn tighten(&self, requests_per_second: f64, origin: &str) {
        let mut rate = lock(&self.rate);
        if rate.is_some_and(|current| current <= requests_per_second) {
            return;
        }
        let Some(period) =
            Duration::try_from_secs_f64(QUOTA_HEADROOM / requests_per_second).ok().filter(|p| !p.is_zero())
        else {
            return;
        };
        let Some(quota) = Quota::with_period(period) else { return };
        // A burst of one spaces requests evenly, so no one-second window sees more than the rate.
        let quota = quota.allow_burst(NonZeroU32::MIN);
        info!(requests_per_second, origin, "request quota");
        *rate = Some(requests_per_second);
        *self.limiter.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Arc::new(RateLimiter::direct(quota)));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The rate-limit headers APIs send: the IETF `RateLimit-*` fields, the common `X-RateLimit-*` ones,
/// Zendesk's `X-Rate-Limit` (per minute) and HubSpot's `X-HubSpot-RateLimit-*` (per interval).
#[derive(Debug, Default, PartialEq)]
pub struct RateLimitHeaders {
    pub limit: Option<u64>,
    pub window: Option<Duration>,
    pub remaining: Option<u64>,
    pub reset: Option<Duration>,
}

impl RateLimitHeaders {
    pub fn parse(headers: &HeaderMap) -> Self {
        let number = |names: &[&str]| {
            names.iter().find_map(|name| headers.get(*name)?.to_str().ok()?.trim().parse::<f64>().ok())
        };
        let mut parsed = RateLimitHeaders {
            remaining: number(&[
                "ratelimit-remaining",
                "x-ratelimit-remaining",
                "x-rate-limit-remaining",
                "x-hubspot-ratelimit-remaining",
            ])
            .map(|value| value as u64),
            reset: number(&["ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset"]).and_then(reset_delay),
            ..Default::default()
        };
        if let Some(max) = number(&["x-hubspot-ratelimit-max"]) {
            parsed.limit = Some(max as u64);
            parsed.window =
                number(&["x-hubspot-ratelimit-interval-milliseconds"]).and_then(|millis| window(millis / 1000.0));
        } else if let Some(per_minute) = number(&["x-rate-limit"]) {
            parsed.limit = Some(per_minute as u64);
            parsed.window = Some(Duration::from_secs(60));
        } else if let Some(limit) = number(&["ratelimit-limit", "x-ratelimit-limit"]) {
            parsed.limit = Some(limit as u64);
            parsed.window = headers
                .get("ratelimit-policy")
                .and_then(|value| value.to_str().ok())
                .and_then(|policy| policy.split(';').find_map(|part| part.trim().strip_prefix("w=")))
                .and_then(|seconds| seconds.trim().parse::<f64>().ok())
                .and_then(window);
        }
        parsed
    }

    /// The sustained rate the limit and window allow.
    pub fn requests_per_second(&self) -> Option<f64> {
        match (self.limit, self.window) {
            (Some(limit), Some(window)) if limit > 0 && !window.is_zero() => Some(limit as f64 / window.as_secs_f64()),
            _ => None,
        }
    }
}

/// A reset given as seconds from now, or (large values) as a Unix time.
fn reset_delay(value: f64) -> Option<Duration> {
    if value > 1.0e9 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        server_wait(value - now.as_secs_f64(), "rate-limit reset")
    } else {
        server_wait(value, "rate-limit reset")
    }
}

/// A wait the API asked for, in seconds, as a duration: none when negative, [`MAX_PAUSE`] at most (saying so in
/// a log line), `None` when it is not a number. By hand because `Duration::from_secs_f64` panics on NaN,
/// infinity and overflow, and a server's header may hold any of them.
fn server_wait(seconds: f64, header: &str) -> Option<Duration> {
    if seconds.is_nan() {
        return None;
    }
    if seconds <= 0.0 {
        return Some(Duration::ZERO);
    }
    match Duration::try_from_secs_f64(seconds) {
        Ok(wait) if wait <= MAX_PAUSE => Some(wait),
        _ => {
            warn!(
                header,
                seconds,
                max_seconds = MAX_PAUSE.as_secs(),
                "the API asked for a longer wait than the longest honoured; waiting the longest"
            );
            Some(MAX_PAUSE)
        }
    }
}

/// A rate-limit window, in seconds, as a duration: `None` unless positive, [`MAX_WINDOW`] at most.
fn window(seconds: f64) -> Option<Duration> {
    if seconds.is_nan() || seconds <= 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(seconds).map_or(MAX_WINDOW, |window| window.min(MAX_WINDOW)))
}

/// The delay a `Retry-After` header asks for: seconds, or an HTTP date; [`MAX_PAUSE`] at most.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return server_wait(seconds, "Retry-After");
    }
    let date = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delay = date.with_timezone(&chrono::Utc).signed_duration_since(chrono::Utc::now());
    server_wait(delay.as_seconds_f64(), "Retry-After")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (HeaderName::from_bytes(name.as_bytes()).expect("name"), HeaderValue::from_str(value).expect("value"))
            })
            .collect()
    }

    #[test]
    fn saas_rate_limit_headers_of_each_style_give_a_rate() {
        let hubspot = RateLimitHeaders::parse(&headers(&[
            ("X-HubSpot-RateLimit-Max", "100"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ("X-HubSpot-RateLimit-Remaining", "42"),
        ]));
        assert_eq!(hubspot.requests_per_second(), Some(10.0));
        assert_eq!(hubspot.remaining, Some(42));
        let zendesk = RateLimitHeaders::parse(&headers(&[("X-Rate-Limit", "700"), ("X-Rate-Limit-Remaining", "0")]));
        assert!((zendesk.requests_per_second().expect("rate") - 700.0 / 60.0).abs() < 1e-9);
        let ietf = RateLimitHeaders::parse(&headers(&[
            ("RateLimit-Limit", "50"),
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", "2"),
            ("RateLimit-Policy", "50;w=5"),
        ]));
        assert_eq!(ietf.requests_per_second(), Some(10.0));
        assert_eq!(ietf.reset, Some(Duration::from_secs(2)));
        assert_eq!(RateLimitHeaders::parse(&HeaderMap::new()), RateLimitHeaders::default());
    }

    #[test]
    fn saas_retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(&headers(&[("Retry-After", "3")])), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers(&[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")])), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("Retry-After", "soon")])), None);
    }

    #[test]
    fn saas_hostile_rate_limit_values_never_panic_and_waits_are_capped() {
        for value in ["NaN", "inf", "-inf", "-1", "1e300", "-1e300", "1e-300", "0"] {
            let parsed = RateLimitHeaders::parse(&headers(&[
                ("X-RateLimit-Reset", value),
                ("X-RateLimit-Remaining", "0"),
                ("X-HubSpot-RateLimit-Max", "100"),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", value),
            ]));
            assert!(parsed.reset.is_none_or(|reset| reset <= MAX_PAUSE), "{value}: {parsed:?}");
            assert!(parsed.requests_per_second().is_none_or(f64::is_finite), "{value}: {parsed:?}");
            let policy = RateLimitHeaders::parse(&headers(&[
                ("RateLimit-Limit", "50"),
                ("RateLimit-Policy", &format!("50;w={value}")),
                ("RateLimit-Reset", value),
            ]));
            assert!(policy.requests_per_second().is_none_or(f64::is_finite), "{value}: {policy:?}");
            assert!(retry_after(&headers(&[("Retry-After", value)])).is_none_or(|wait| wait <= MAX_PAUSE), "{value}");
            let quota = CredentialQuota::shared("hostile.test", 9, None);
            quota.observe(&headers(&[("X-RateLimit-Reset", value), ("X-RateLimit-Remaining", "0")]));
        }
        // A wait beyond the cap is cut to it; a negative one is none; a value that is not a number is ignored.
        assert_eq!(retry_after(&headers(&[("Retry-After", "1e300")])), Some(MAX_PAUSE));
        assert_eq!(retry_after(&headers(&[("Retry-After", "-1")])), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("Retry-After", "NaN")])), None);
        let reset = |value: &str| RateLimitHeaders::parse(&headers(&[("X-RateLimit-Reset", value)])).reset;
        assert_eq!(reset("1e300"), Some(MAX_PAUSE));
        assert_eq!(reset("inf"), Some(MAX_PAUSE));
        assert_eq!(reset("-1"), Some(Duration::ZERO));
        assert_eq!(reset("NaN"), None);
    }

    #[tokio::test]
    async fn saas_quota_spaces_requests_and_pauses() {
        let quota = CredentialQuota::shared("quota.test", 7, Some(20.0));
        let start = Instant::now();
        for _ in 0..5 {
            quota.ready().await;
        }
        // Five requests at 20/s with a burst of one: the last leaves 4 periods (of 55 ms) after the first.
        assert!(start.elapsed() >= Duration::from_millis(215), "{:?}", start.elapsed());
        assert_eq!(quota.rate(), Some(20.0));
        let paused_at = Instant::now();
        quota.pause_for(Duration::from_millis(300));
        quota.ready().await;
        assert!(paused_at.elapsed() >= Duration::from_millis(300), "{:?}", paused_at.elapsed());
        // A lower rate from the API replaces the configured one; a higher one does not.
        quota.observe(&headers(&[("X-Rate-Limit", "60")]));
        assert_eq!(quota.rate(), Some(1.0));
        quota.observe(&headers(&[("X-Rate-Limit", "600")]));
        assert_eq!(quota.rate(), Some(1.0));
    }

    #[test]
    fn saas_overlapping_pauses_count_the_time_requests_stood_still_once() {
        let quota = CredentialQuota::shared("pauses.test", 9, None);
        let used_up = headers(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "60")]);
        let first = quota.observe(&used_up);
        assert!(first > Duration::from_secs(59) && first <= Duration::from_secs(60), "{first:?}");
        // The same window reported again, and a shorter 429 within it, hold nothing longer.
        assert!(quota.observe(&used_up) < Duration::from_secs(1));
        assert_eq!(quota.pause_for(Duration::from_secs(5)), Duration::ZERO);
        // A longer one adds only what passes the current pause.
        let longer = quota.pause_for(Duration::from_secs(90));
        assert!(longer > Duration::from_secs(29) && longer < Duration::from_secs(31), "{longer:?}");
        assert_eq!(quota.observe(&headers(&[("RateLimit-Remaining", "5"), ("RateLimit-Reset", "60")])), Duration::ZERO);
    }
}
