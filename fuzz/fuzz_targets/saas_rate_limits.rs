//! A SaaS API's rate-limit answers (`connector_saas::limits`): the `RateLimit-*`, `X-RateLimit-*`,
//! `X-Rate-Limit` and `X-HubSpot-RateLimit-*` headers and `Retry-After`, read from `name: value` lines.
#![no_main]

extern crate connector_fuzz;

use connector_saas::limits::{RateLimitHeaders, retry_after};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&byte| byte == b'\n') {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.trim_ascii()), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let limits = RateLimitHeaders::parse(&headers);
    let _ = limits.requests_per_second();
    let _ = retry_after(&headers);
});
