//! SaaS connector throughput against the Stripe emulator, in one run:
//!
//! 1. the emulator's own serving rate, read by a plain HTTP client paging `/v1/customers` (records/s, MB/s);
//! 2. `connector sync stripe` syncing the same records into Delta (records/s, its peak RSS), with the ratio
//!    to (1) — the target is at least 0.8;
//! 3. requests/s of `connector sync stripe` under a quota, measured by the emulator (never above it).
//!
//! `cargo bench --bench saas` (records: `BENCH_SAAS_RECORDS`, default 200000).

use std::process::Command;
use std::time::{Duration, Instant};

use saas_emulator::{Emulator, EmulatorOptions, STRIPE_API_KEY, Service};
use serde_json::Value;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");
const QUOTA: f64 = 10.0;

fn main() {
    let records: u64 = std::env::var("BENCH_SAAS_RECORDS").ok().and_then(|text| text.parse().ok()).unwrap_or(200_000);
    let emulator = Emulator::start(EmulatorOptions::new(Service::Stripe, records)).expect("start emulator");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    let (read, bytes, read_seconds) = runtime.block_on(read_all_pages(&emulator.base_url()));
    assert_eq!(read, records, "the plain client read every record");
    let serving_rate = read as f64 / read_seconds;
    println!(
        "emulator serving rate (plain HTTP client, 100 records/page): {read} records in {read_seconds:.2} s = \
         {serving_rate:.0} records/s, {:.1} MB/s",
        bytes as f64 / read_seconds / 1e6
    );

    let lake = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let peak = run_measuring_rss(
        Command::new(CONNECTOR)
            .args(["sync", "stripe", "--streams", "customers", "--base-url", &emulator.base_url(), "--dest"])
            .arg(lake.path())
            .args(["--pipeline", "bench"])
            .env("STRIPE_API_KEY", STRIPE_API_KEY)
            .env("CONNECTOR_LOG", "warn"),
    );
    let seconds = started.elapsed().as_secs_f64();
    let rate = records as f64 / seconds;
    println!(
        "connector sync stripe: {records} records into Delta in {seconds:.2} s = {rate:.0} records/s, \
         {:.2} of the serving rate (target >= 0.8); peak RSS {peak:.0} MiB",
        rate / serving_rate
    );

    let limited = Emulator::start(EmulatorOptions::new(Service::Stripe, 3_000)).expect("start emulator");
    let lake = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    run_measuring_rss(
        Command::new(CONNECTOR)
            .args(["sync", "stripe", "--streams", "customers,invoices,products", "--base-url", &limited.base_url()])
            .args(["--requests-per-second", &QUOTA.to_string(), "--dest"])
            .arg(lake.path())
            .args(["--pipeline", "bench"])
            .env("STRIPE_API_KEY", STRIPE_API_KEY)
            .env("CONNECTOR_LOG", "warn"),
    );
    let seconds = started.elapsed().as_secs_f64();
    let requests = limited.request_count();
    println!(
        "under a quota of {QUOTA} requests/s: {requests} requests in {seconds:.2} s = {:.1} requests/s on average, \
         at most {} in any one second",
        requests as f64 / seconds,
        limited.max_requests_per_second()
    );
}

/// Pages through `/v1/customers` like the connector's list requests; returns (records, bytes, seconds).
async fn read_all_pages(base_url: &str) -> (u64, u64, f64) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut starting_after: Option<String> = None;
    loop {
        let mut request =
            client.get(format!("{base_url}v1/customers")).bearer_auth(STRIPE_API_KEY).query(&[("limit", "100")]);
        if let Some(id) = &starting_after {
            request = request.query(&[("starting_after", id)]);
        }
        let body = request.send().await.expect("request").bytes().await.expect("body");
        bytes += body.len() as u64;
        let page: Value = serde_json::from_slice(&body).expect("json");
        let data = page["data"].as_array().expect("data");
        records += data.len() as u64;
        starting_after = data.last().and_then(|object| object["id"].as_str()).map(str::to_string);
        if page["has_more"] != Value::Bool(true) {
            break;
        }
    }
    (records, bytes, started.elapsed().as_secs_f64())
}

/// Runs `command` to success, polling its peak RSS (VmHWM) meanwhile; returns the peak in MiB.
fn run_measuring_rss(command: &mut Command) -> f64 {
    let mut child = command.spawn().expect("start connector");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("poll") {
            assert!(status.success(), "connector failed: {status}");
            return peak_kib as f64 / 1024.0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
