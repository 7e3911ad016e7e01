//! The SaaS connectors end to end against the emulators in `fixtures/saas-emulator`: after every scenario the
//! Delta tables hold exactly the emulator's live records, each once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use connector_core::arrow::datatypes::{DataType, Schema, TimeUnit};
use connector_core::deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use connector_core::schema::TableId;

use saas_emulator::{
    Emulator, EmulatorOptions, Fault, FaultKind, HUBSPOT_ACCESS_TOKEN, HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET,
    HUBSPOT_REFRESH_TOKEN, SALESFORCE_ACCESS_TOKEN, SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET,
    SALESFORCE_REFRESH_TOKEN, STRIPE_API_KEY, Service, ZENDESK_API_TOKEN, ZENDESK_EMAIL,
};

use crate::support::connector_process::resync;
use crate::support::delta::TempLake;
use crate::support::saas::{
    assert_keyed_table_matches, assert_table_matches, commit_count, emulator_rows, fail, keyed_table_rows,
    pipelines_file, run_command, succeed, sync_command, table_rows, wait_until_table_matches,
};

const STRIPE_KEY: [(&str, &str); 1] = [("STRIPE_API_KEY", STRIPE_API_KEY)];
const ZENDESK_CREDENTIALS: [(&str, &str); 2] =
    [("ZENDESK_EMAIL", ZENDESK_EMAIL), ("ZENDESK_API_TOKEN", ZENDESK_API_TOKEN)];
const SALESFORCE_CLIENT_CREDENTIALS: [(&str, &str); 2] =
    [("SALESFORCE_CLIENT_ID", SALESFORCE_CLIENT_ID), ("SALESFORCE_CLIENT_SECRET", SALESFORCE_CLIENT_SECRET)];

fn emulator(options: EmulatorOptions) -> Emulator {
    Emulator::start(options).expect("start emulator")
}

/// A `pipelines.toml` profile of the Stripe emulator whose key comes from `TEST_STRIPE_KEY`.
fn stripe_profile(stripe: &Emulator) -> String {
    format!(
        "kind = \"stripe\"\nbase_url = \"{}\"\nauth = {{ type = \"bearer\", token = {{ env = \"TEST_STRIPE_KEY\" }} }}",
        stripe.base_url()
    )
}

#[tokio::test]
async fn saas_stripe_backfill_then_events_match_the_emulator() {
    let stripe = emulator(EmulatorOptions::new(Service::Stripe, 1_200));
    let lake = TempLake::new();
    // While the backfill pages through customers, some change: the events read after it must catch them.
    stripe.arm(
        Fault::new(FaultKind::Change { stream: "customers".into(), updates: 30, deletes: 10, creates: 5 })
            .on_path("/v1/customers")
            .after(4),
    );
    // Transient failures on the way are retried.
    stripe.arm(Fault::new(FaultKind::ServerError).on_path("/v1/invoices").after(1).times(2));
    let output = succeed(&mut sync_command("stripe", &stripe, lake.dir.path(), "customers,invoices", &STRIPE_KEY, &[]));
    assert_eq!(stripe.pending_faults(), 0, "every fault was hit");
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
    assert_table_matches(&lake, &stripe, "stripe", "invoices", "description").await;
    assert!(String::from_utf8_lossy(&output.stdout).contains("stripe.customers:"), "report per stream");

    // Between syncs: updates, deletes, new records.
    stripe.update("customers", 100);
    stripe.delete("customers", 40);
    stripe.create("customers", 25);
    stripe.update("invoices", 20);
    stripe.delete("invoices", 5);
    succeed(&mut sync_command("stripe", &stripe, lake.dir.path(), "customers,invoices", &STRIPE_KEY, &[]));
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
    assert_table_matches(&lake, &stripe, "stripe", "invoices", "description").await;
    // A field only updated records carry became a column.
    let notes = table_rows(&lake, "stripe", "customers", "updated_note").await;
    assert!(notes.iter().any(|row| row.ends_with("|changed 1 times")), "{:?}", &notes[..3]);
}

#[tokio::test]
async fn saas_hubspot_oauth_refresh_rotation_token_expiry_and_archived_deletes() {
    let hubspot = emulator(EmulatorOptions { quota: Some(20), ..EmulatorOptions::new(Service::Hubspot, 1_500) });
    let lake = TempLake::new();
    let state_file = lake.dir.path().join("hubspot-token.json");
    let state_path = state_file.to_str().expect("utf-8");
    let credentials = [
        ("HUBSPOT_CLIENT_ID", HUBSPOT_CLIENT_ID),
        ("HUBSPOT_CLIENT_SECRET", HUBSPOT_CLIENT_SECRET),
        ("HUBSPOT_REFRESH_TOKEN", HUBSPOT_REFRESH_TOKEN),
        ("HUBSPOT_TOKEN_STATE_FILE", state_path),
    ];
    // The access token expires in the middle of the sync; records change while it pages.
    hubspot.arm(Fault::new(FaultKind::ExpireTokens).on_path("/search").after(3));
    hubspot.arm(
        Fault::new(FaultKind::Change { stream: "contacts".into(), updates: 40, deletes: 15, creates: 10 })
            .on_path("/search")
            .after(5),
    );
    succeed(&mut sync_command("hubspot", &hubspot, lake.dir.path(), "contacts,companies", &credentials, &[]));
    assert_eq!(hubspot.pending_faults(), 0);
    assert!(hubspot.tokens_issued() >= 2, "a new token after the expiry");
    assert_table_matches(&lake, &hubspot, "hubspot", "contacts", "firstname").await;
    assert_table_matches(&lake, &hubspot, "hubspot", "companies", "name").await;
    // The rotated refresh token was saved: the configured one no longer works, the next run reads the file.
    let saved = std::fs::read_to_string(&state_file).expect("token state file");
    assert!(saved.contains(&hubspot.current_refresh_token()), "{saved}");

    hubspot.update("contacts", 60);
    hubspot.delete("contacts", 25);
    hubspot.create("companies", 30);
    succeed(&mut sync_command("hubspot", &hubspot, lake.dir.path(), "contacts,companies", &credentials, &[]));
    assert_table_matches(&lake, &hubspot, "hubspot", "contacts", "firstname").await;
    assert_table_matches(&lake, &hubspot, "hubspot", "companies", "name").await;
}

#[tokio::test]
async fn saas_zendesk_incremental_exports_apply_updates_and_deleted_tickets() {
    let zendesk = emulator(EmulatorOptions::new(Service::Zendesk, 2_500));
    let lake = TempLake::new();
    succeed(&mut sync_command("zendesk", &zendesk, lake.dir.path(), "tickets,users", &ZENDESK_CREDENTIALS, &[]));
    assert_table_matches(&lake, &zendesk, "zendesk", "tickets", "subject").await;
    assert_table_matches(&lake, &zendesk, "zendesk", "users", "name").await;

    zendesk.update("tickets", 200);
    zendesk.delete("tickets", 50);
    zendesk.create("users", 40);
    let before = zendesk.request_count();
    succeed(&mut sync_command("zendesk", &zendesk, lake.dir.path(), "tickets,users", &ZENDESK_CREDENTIALS, &[]));
    assert_table_matches(&lake, &zendesk, "zendesk", "tickets", "subject").await;
    assert_table_matches(&lake, &zendesk, "zendesk", "users", "name").await;
    // The export resumed from its cursor: one page per stream, not the 3 + 3 of a full read.
    assert_eq!(zendesk.request_count() - before, 2, "an incremental sync reads only what changed");
}

#[tokio::test]
async fn saas_kill_mid_sync_then_resume_loses_and_duplicates_nothing() {
    let stripe = emulator(EmulatorOptions {
        page_delay: Duration::from_millis(25),
        ..EmulatorOptions::new(Service::Stripe, 6_000)
    });
    let lake = TempLake::new();
    let mut child =
        sync_command("stripe", &stripe, lake.dir.path(), "customers", &STRIPE_KEY, &["--batch-records", "500"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start connector");
    // Kill once two batches are committed (the log also holds the table's creation and its added columns).
    let deadline = Instant::now() + Duration::from_secs(60);
    while commit_count(&lake, "stripe", "customers") < 4 {
        assert!(Instant::now() < deadline, "no batch committed within a minute");
        assert!(child.try_wait().expect("poll").is_none(), "the sync ended before it could be killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let partial = table_rows(&lake, "stripe", "customers", "name").await;
    assert!(partial.len() >= 500 && partial.len() < 6_000, "{} rows at the kill", partial.len());

    stripe.update("customers", 300);
    stripe.delete("customers", 100);
    succeed(&mut sync_command(
        "stripe",
        &stripe,
        lake.dir.path(),
        "customers",
        &STRIPE_KEY,
        &["--batch-records", "500"],
    ));
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
}

#[tokio::test]
async fn saas_429_storm_and_quota_keep_requests_under_the_rate() {
    let stripe = emulator(EmulatorOptions { quota: Some(5), ..EmulatorOptions::new(Service::Stripe, 1_500) });
    let lake = TempLake::new();
    stripe.arm(Fault::new(FaultKind::TooManyRequests { retry_after: 1 }).on_path("/v1/customers").after(3).times(4));
    let started = Instant::now();
    succeed(&mut sync_command(
        "stripe",
        &stripe,
        lake.dir.path(),
        "customers,products",
        &STRIPE_KEY,
        &["--requests-per-second", "4"],
    ));
    assert_eq!(stripe.pending_faults(), 0);
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
    assert_table_matches(&lake, &stripe, "stripe", "products", "name").await;
    let most = stripe.max_requests_per_second();
    assert!(most <= 4, "{most} requests arrived within one second; the quota is 4: {:?}", stripe.request_times());
    // Each of the four 429s held every request for its Retry-After second.
    assert!(started.elapsed() >= Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test]
async fn saas_malformed_page_stops_with_a_clear_error_and_loses_nothing() {
    let stripe = emulator(EmulatorOptions::new(Service::Stripe, 3_000));
    let lake = TempLake::new();
    let profile = format!(
        "{}\nbatch_records = 500\nmax_retries = 2\nmax_backoff = \"200ms\"\nrequest_timeout = \"1s\"",
        stripe_profile(&stripe)
    );
    let config = pipelines_file(&lake, "billing", &profile, "\"customers\"", "1h");
    let run = || {
        let mut command = run_command(&config, &[("TEST_STRIPE_KEY", STRIPE_API_KEY)]);
        command.arg("--once");
        command
    };
    // The third page is too slow once (a timeout, retried), then the 13th page is cut in the middle each time.
    stripe.arm(Fault::new(FaultKind::Slow { seconds: 2.0 }).on_path("/v1/customers").after(2));
    stripe.arm(Fault::new(FaultKind::Malformed).on_path("/v1/customers").after(13).times(3));
    let output = fail(&mut run());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stream `customers`") && stderr.contains("not JSON"), "{stderr}");
    assert!(stderr.contains("resumes there on the next run"), "{stderr}");
    // The twelve good pages are committed, nothing of the bad one.
    let landed = table_rows(&lake, "stripe", "customers", "name").await;
    let expected = emulator_rows(&stripe, "customers");
    assert_eq!(landed.len(), 1_200);
    assert!(landed.iter().all(|row| expected.contains(row)));

    succeed(&mut run());
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
}

#[tokio::test]
async fn saas_declarative_rest_stream_reads_a_cursor_export() {
    let zendesk = emulator(EmulatorOptions::new(Service::Zendesk, 1_800));
    let lake = TempLake::new();
    let profile = format!(
        r#"kind = "rest"
base_url = "{base}"
auth = {{ type = "basic", username = "{ZENDESK_EMAIL}/token", password = "${{HELPDESK_TOKEN}}" }}
requests_per_second = 50

[profiles.helpdesk.streams.tickets]
path = "api/v2/incremental/tickets/cursor.json"
records = "tickets"
key = ["id"]
paging = {{ style = "cursor", cursor = "after_cursor", param = "cursor", stop = "end_of_stream" }}
query = {{ start_time = "0", per_page = "500" }}
delete_when = {{ field = "status", equals = "deleted" }}
columns = {{ id = "int64", subject = "string", updated_at = "timestamp" }}"#,
        base = zendesk.base_url()
    );
    let config = pipelines_file(&lake, "helpdesk", &profile, "\"tickets\"", "1h");
    let run = || {
        let mut command = run_command(&config, &[("HELPDESK_TOKEN", ZENDESK_API_TOKEN)]);
        command.arg("--once");
        command
    };
    succeed(&mut run());
    assert_table_matches(&lake, &zendesk, "helpdesk", "tickets", "subject").await;
    zendesk.update("tickets", 100);
    zendesk.delete("tickets", 30);
    succeed(&mut run());
    assert_table_matches(&lake, &zendesk, "helpdesk", "tickets", "subject").await;
}

#[tokio::test]
async fn saas_rejected_credentials_and_unknown_streams_say_what_to_do() {
    let stripe = emulator(EmulatorOptions::new(Service::Stripe, 10));
    let lake = TempLake::new();
    let output = fail(&mut sync_command(
        "stripe",
        &stripe,
        lake.dir.path(),
        "customers",
        &[("STRIPE_API_KEY", "sk_wrong")],
        &[],
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401") && stderr.contains("Invalid API Key provided"), "{stderr}");
    assert!(stderr.contains("check the credentials"), "{stderr}");
    assert!(!stderr.contains("sk_wrong"), "the key must never be printed: {stderr}");

    let output = fail(&mut sync_command("stripe", &stripe, lake.dir.path(), "custmers", &STRIPE_KEY, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no stream `custmers` (available: customers, invoices"), "{stderr}");

    let output =
        fail(&mut sync_command("stripe", &stripe, lake.dir.path(), "customers", &[("STRIPE_API_KEY", "")], &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STRIPE_API_KEY"), "{stderr}");
}

/// `sync stripe --continuous --metrics-addr`: requests to the API are counted by the status answered, and the
/// 429s' Retry-After seconds are added up as the wait they held every request back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saas_requests_and_429_waits_are_served_as_metrics() {
    let stripe = emulator(EmulatorOptions::new(Service::Stripe, 300));
    let lake = TempLake::new();
    stripe.arm(Fault::new(FaultKind::TooManyRequests { retry_after: 1 }).on_path("/v1/customers").after(1).times(2));
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let mut child = sync_command(
        "stripe",
        &stripe,
        lake.dir.path(),
        "customers",
        &STRIPE_KEY,
        &["--continuous", "--metrics-addr", &address],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start connector");
    wait_until_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
    let value = |text: &str, prefix: &str| -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(prefix)).and_then(|value| value.trim().parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = match reqwest::get(format!("http://{address}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if value(&text, r#"connector_api_requests_total{service="stripe",status="429"} "#) == Some(2.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "the two 429s were never counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(stripe.pending_faults(), 0);
    let answered = value(&text, r#"connector_api_requests_total{service="stripe",status="200"} "#).unwrap_or(0.0);
    assert!(answered >= 3.0, "the customers' pages were counted (300 customers): {text}");
    // Three pages of 100 customers, each customer's JSON well over 100 bytes.
    let bytes = value(&text, r#"connector_api_response_bytes_total{service="stripe"} "#).unwrap_or(0.0);
    assert!(bytes > 300.0 * 100.0, "the answers' bytes counted: {text}");
    let waited = value(&text, r#"connector_api_rate_limit_wait_seconds_total{service="stripe"} "#).unwrap_or(0.0);
    assert!((waited - 2.0).abs() < 1e-9, "two waits of the 429s' Retry-After second: {text}");
}

/// `connector run --metrics-addr` of a continuous HubSpot pipeline: the lag behind the API is measured from the
/// records' `updatedAt`, only for records newer than any read before. The passes that read the look-back window
/// again (every contact changed within its 5 minutes) leave it alone; an update moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saas_lag_is_measured_from_changed_records_not_from_look_back_rereads() {
    use crate::support::scraped_metrics::{scrape, value_of, wait_for_value};
    let hubspot = emulator(EmulatorOptions::new(Service::Hubspot, 300));
    let lake = TempLake::new();
    let profile = format!(
        "kind = \"hubspot\"\nbase_url = \"{}\"\npoll_interval = \"100ms\"\n\
         auth = {{ type = \"bearer\", token = {{ env = \"TEST_HUBSPOT_TOKEN\" }} }}",
        hubspot.base_url()
    );
    let config = pipelines_file(&lake, "crm", &profile, "\"contacts\"", "continuous");
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let mut child = run_command(&config, &[("TEST_HUBSPOT_TOKEN", HUBSPOT_ACCESS_TOKEN)])
        .args(["--metrics-addr", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_table_matches(&lake, &hubspot, "hubspot", "contacts", "firstname").await;
    let lag_series = r#"connector_source_lag_seconds{pipeline="test",table="hubspot.contacts"}"#;
    let requests_series = r#"connector_api_requests_total{service="hubspot",status="200"}"#;
    // The backfill's second page holds contacts newer than its first's: the lag of that commit.
    let first = wait_for_value(&address, lag_series, |_| true).await;
    assert!((0.0..60.0).contains(&first), "lag {first} s after a backfill of contacts made just now");
    // Ten more passes, each reading every contact again (all changed within the look-back) and committing them.
    let requests = value_of(&scrape(&address).await, requests_series).unwrap_or(0.0);
    wait_for_value(&address, requests_series, |count| count >= requests + 10.0).await;
    let text = scrape(&address).await;
    assert_eq!(value_of(&text, lag_series), Some(first), "re-read contacts moved the lag:\n{text}");
    hubspot.update("contacts", 20);
    wait_until_table_matches(&lake, &hubspot, "hubspot", "contacts", "firstname").await;
    let after_update = wait_for_value(&address, lag_series, |lag| lag != first).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!((0.0..60.0).contains(&after_update), "lag {after_update} s after an update made just now");
}

/// `sync zendesk --continuous --metrics-addr`: an answer saying the rate-limit window is used up
/// (`ratelimit-remaining: 0`, `ratelimit-reset: 2`) holds every request for those 2 s, counted as rate-limit wait
/// without any 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saas_a_used_up_rate_limit_window_is_waited_for_and_counted() {
    use crate::support::scraped_metrics::{scrape, value_of, wait_for_value};
    // Three pages of tickets: the first answer says the window is used up, the second request waits for it.
    let zendesk = emulator(EmulatorOptions::new(Service::Zendesk, 2_500));
    let lake = TempLake::new();
    zendesk.arm(Fault::new(FaultKind::WindowUsedUp { reset: 2 }).on_path("/tickets").times(1));
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let extra = ["--continuous", "--metrics-addr", &address];
    let mut child = sync_command("zendesk", &zendesk, lake.dir.path(), "tickets", &ZENDESK_CREDENTIALS, &extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_table_matches(&lake, &zendesk, "zendesk", "tickets", "subject").await;
    let waited =
        wait_for_value(&address, r#"connector_api_rate_limit_wait_seconds_total{service="zendesk"}"#, |w| w > 0.0);
    let waited = waited.await;
    let text = scrape(&address).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(zendesk.pending_faults(), 0);
    assert!((1.9..=2.1).contains(&waited), "the window's 2 s counted once: {waited}\n{text}");
    assert_eq!(value_of(&text, r#"connector_api_requests_total{service="zendesk",status="429"}"#), None, "{text}");
    // Requests really stood still: the next one came at least 2 s after the answer that said so.
    let times = zendesk.request_times();
    assert!(times.windows(2).any(|pair| pair[1] - pair[0] >= Duration::from_millis(1_900)), "{times:?}");
}

#[tokio::test]
async fn saas_continuous_run_follows_changes_until_stopped() {
    let zendesk = emulator(EmulatorOptions::new(Service::Zendesk, 300));
    let lake = TempLake::new();
    let profile = format!(
        "kind = \"zendesk\"\nbase_url = \"{}\"\npoll_interval = \"200ms\"\n\
         auth = {{ type = \"basic\", username = \"{ZENDESK_EMAIL}/token\", password = {{ env = \"TEST_ZENDESK_TOKEN\" }} }}",
        zendesk.base_url()
    );
    let config = pipelines_file(&lake, "support", &profile, "\"tickets\"", "continuous");
    let mut child = run_command(&config, &[("TEST_ZENDESK_TOKEN", ZENDESK_API_TOKEN)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_table_matches(&lake, &zendesk, "zendesk", "tickets", "subject").await;
    for _ in 0..3 {
        zendesk.update("tickets", 20);
        zendesk.delete("tickets", 5);
        zendesk.create("tickets", 10);
        wait_until_table_matches(&lake, &zendesk, "zendesk", "tickets", "subject").await;
    }
    let stopped = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll") {
            break status;
        }
        assert!(Instant::now() < deadline, "connector did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "connector did not stop cleanly: {status}");
}

/// Asserts a Salesforce object's table holds exactly the emulator's live records (keyed on `Id`), once each.
async fn assert_salesforce_table_matches(lake: &TempLake, salesforce: &Emulator, object: &str) {
    let label = Service::Salesforce.label_field(object);
    assert_keyed_table_matches(lake, salesforce, "salesforce", object, "Id", label).await;
}

#[tokio::test]
async fn saas_salesforce_full_then_incremental_sync_applies_updates_and_deletes() {
    let salesforce = emulator(EmulatorOptions::new(Service::Salesforce, 4_500));
    let lake = TempLake::new();
    let sync = || {
        sync_command("salesforce", &salesforce, lake.dir.path(), "Account,Contact", &SALESFORCE_CLIENT_CREDENTIALS, &[])
    };
    // A transient failure while following a query locator is retried; an expired locator is replaced by a new
    // query from the last record read.
    salesforce.arm(Fault::new(FaultKind::ServerError).on_path("/query/").after(1));
    salesforce.arm(Fault::new(FaultKind::ExpireQueryLocators).on_path("/query/").after(2));
    let output = succeed(&mut sync());
    assert_eq!(salesforce.pending_faults(), 0, "every fault was hit");
    assert!(String::from_utf8_lossy(&output.stdout).contains("salesforce.Account:"), "report per stream");
    assert_salesforce_table_matches(&lake, &salesforce, "Account").await;
    assert_salesforce_table_matches(&lake, &salesforce, "Contact").await;
    // Described types land as such: dates as dates, datetimes as UTC timestamps, currency as doubles; compound
    // fields and the records' `attributes` are left out.
    let url = lake.table_url(&TableId::new("salesforce", "Account"));
    let table = connector_core::deltalake::open_table(url).await.expect("open table");
    let schema: Schema = table.snapshot().expect("snapshot").schema().as_ref().try_into_arrow().expect("arrow schema");
    let type_of = |name: &str| schema.field_with_name(name).map(|field| field.data_type().clone()).ok();
    assert_eq!(type_of("CustomerSince__c"), Some(DataType::Date32));
    assert_eq!(type_of("SystemModstamp"), Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))));
    assert_eq!(type_of("AnnualRevenue"), Some(DataType::Float64));
    assert_eq!(type_of("NumberOfEmployees"), Some(DataType::Int64));
    assert_eq!(type_of("Active__c"), Some(DataType::Boolean));
    assert_eq!(type_of("Industry"), Some(DataType::Utf8));
    assert_eq!((type_of("BillingAddress"), type_of("attributes")), (None, None));
    let dates = keyed_table_rows(&lake, "salesforce", "Account", "Id", "CustomerSince__c").await;
    assert_eq!(dates[0], "001000000000001AAA|2020-01-02", "{:?}", &dates[..2]);
    let revenue = keyed_table_rows(&lake, "salesforce", "Account", "Id", "AnnualRevenue").await;
    assert_eq!(revenue[0], "001000000000001AAA|1000.5");
    let modified = keyed_table_rows(&lake, "salesforce", "Contact", "Id", "SystemModstamp").await;
    assert!(modified[0].ends_with('Z'), "{}", modified[0]);

    // Between syncs: updates bump SystemModstamp; deletes go to the recycle bin, where queryAll sees them.
    salesforce.update("Account", 300);
    salesforce.delete("Account", 120);
    salesforce.create("Account", 50);
    salesforce.update("Contact", 40);
    salesforce.delete("Contact", 15);
    // And more change while the next sync pages: the sync after it catches them.
    salesforce.arm(
        Fault::new(FaultKind::Change { stream: "Account".into(), updates: 25, deletes: 10, creates: 5 })
            .on_path("/query/"),
    );
    succeed(&mut sync());
    assert_eq!(salesforce.pending_faults(), 0);
    succeed(&mut sync());
    assert_salesforce_table_matches(&lake, &salesforce, "Account").await;
    assert_salesforce_table_matches(&lake, &salesforce, "Contact").await;
}

#[tokio::test]
async fn saas_salesforce_profile_run_reads_only_what_changed() {
    let salesforce = emulator(EmulatorOptions::new(Service::Salesforce, 2_500));
    let lake = TempLake::new();
    let profile = format!(
        "kind = \"salesforce\"\nbase_url = \"{}\"\napi_version = \"v61.0\"\nlookback = \"0s\"\n\
         auth = {{ type = \"bearer\", token = {{ env = \"TEST_SALESFORCE_SESSION\" }} }}",
        salesforce.base_url()
    );
    let config = pipelines_file(&lake, "crm", &profile, "\"Account\"", "1h");
    let run = || {
        let mut command = run_command(&config, &[("TEST_SALESFORCE_SESSION", SALESFORCE_ACCESS_TOKEN)]);
        command.arg("--once");
        command
    };
    succeed(&mut run());
    assert_salesforce_table_matches(&lake, &salesforce, "Account").await;

    salesforce.update("Account", 30);
    salesforce.delete("Account", 12);
    let before = salesforce.request_count();
    succeed(&mut run());
    assert_salesforce_table_matches(&lake, &salesforce, "Account").await;
    // The describe and one query after the key set: not the two batches of a full read.
    assert_eq!(salesforce.request_count() - before, 2, "an incremental sync reads only what changed");
}

#[tokio::test]
async fn saas_salesforce_kill_mid_sync_then_resume_loses_and_duplicates_nothing() {
    let salesforce = emulator(EmulatorOptions {
        page_delay: Duration::from_millis(150),
        ..EmulatorOptions::new(Service::Salesforce, 14_000)
    });
    let lake = TempLake::new();
    let sync = || {
        sync_command(
            "salesforce",
            &salesforce,
            lake.dir.path(),
            "Account",
            &SALESFORCE_CLIENT_CREDENTIALS,
            &["--batch-records", "500"],
        )
    };
    let mut child = sync().stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start connector");
    // Kill once two batches of 2,000 are committed (the log also holds the table's creation).
    let deadline = Instant::now() + Duration::from_secs(120);
    while commit_count(&lake, "salesforce", "Account") < 3 {
        assert!(Instant::now() < deadline, "no batch committed within two minutes");
        assert!(child.try_wait().expect("poll").is_none(), "the sync ended before it could be killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let partial = keyed_table_rows(&lake, "salesforce", "Account", "Id", "Name").await;
    assert!(partial.len() >= 4_000 && partial.len() < 14_000, "{} rows at the kill", partial.len());

    salesforce.update("Account", 400);
    salesforce.delete("Account", 150);
    succeed(&mut sync());
    assert_salesforce_table_matches(&lake, &salesforce, "Account").await;
}

#[tokio::test]
async fn saas_salesforce_expired_session_is_renewed_and_rejected_credentials_say_so() {
    let salesforce = emulator(EmulatorOptions::new(Service::Salesforce, 4_200));
    let lake = TempLake::new();
    let refresh = [
        ("SALESFORCE_CLIENT_ID", SALESFORCE_CLIENT_ID),
        ("SALESFORCE_CLIENT_SECRET", SALESFORCE_CLIENT_SECRET),
        ("SALESFORCE_REFRESH_TOKEN", SALESFORCE_REFRESH_TOKEN),
    ];
    // The session expires while the query locator is followed: a new one is fetched and the sync goes on.
    salesforce.arm(Fault::new(FaultKind::ExpireTokens).on_path("/query/"));
    succeed(&mut sync_command("salesforce", &salesforce, lake.dir.path(), "Account,Contact", &refresh, &[]));
    assert_eq!(salesforce.pending_faults(), 0);
    assert!(salesforce.tokens_issued() >= 2, "a new session after the expiry");
    assert_salesforce_table_matches(&lake, &salesforce, "Account").await;
    assert_salesforce_table_matches(&lake, &salesforce, "Contact").await;

    let wrong_secret = [("SALESFORCE_CLIENT_ID", SALESFORCE_CLIENT_ID), ("SALESFORCE_CLIENT_SECRET", "not-the-secret")];
    let output = fail(&mut sync_command("salesforce", &salesforce, lake.dir.path(), "Account", &wrong_secret, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused the credentials") && stderr.contains("invalid_client"), "{stderr}");
    assert!(!stderr.contains("not-the-secret"), "the secret must never be printed: {stderr}");

    let stale = [("SALESFORCE_ACCESS_TOKEN", "00DSTALE!session")];
    let output = fail(&mut sync_command("salesforce", &salesforce, lake.dir.path(), "Account", &stale, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401") && stderr.contains("Session expired or invalid (INVALID_SESSION_ID)"), "{stderr}");
    assert!(stderr.contains("check the credentials"), "{stderr}");
    assert!(!stderr.contains("00DSTALE"), "the session id must never be printed: {stderr}");
}

#[tokio::test]
async fn saas_salesforce_api_errors_show_the_salesforce_message() {
    let salesforce = emulator(EmulatorOptions::new(Service::Salesforce, 50));
    let lake = TempLake::new();
    let sync = |objects: &str| {
        sync_command("salesforce", &salesforce, lake.dir.path(), objects, &SALESFORCE_CLIENT_CREDENTIALS, &[])
    };
    let output = fail(&mut sync("Invoice__c"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stream `Invoice__c`") && stderr.contains("404"), "{stderr}");
    assert!(stderr.contains("The requested resource does not exist (NOT_FOUND)"), "{stderr}");
    assert!(stderr.contains("check --base-url and the stream name"), "{stderr}");

    // A field described but refused by the query (deleted in between, say): SOQL errors come back verbatim.
    salesforce.describe_unqueryable_field("Account", "Legacy__c", "string");
    let output = fail(&mut sync("Account"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("No such column 'Legacy__c' on entity 'Account'") && stderr.contains("(INVALID_FIELD)"),
        "{stderr}"
    );

    // The org's 24-hour API allowance is used up: no retry helps, and the error says so.
    salesforce.arm(Fault::new(FaultKind::RequestLimitExceeded).on_path("/describe"));
    let output = fail(&mut sync("Contact"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("403") && stderr.contains("(REQUEST_LIMIT_EXCEEDED)"), "{stderr}");
    assert!(stderr.contains("API request limit for the last 24 hours is used up"), "{stderr}");

    let output = fail(&mut sync("Account;Contact"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not an sObject API name"), "{stderr}");

    // SOQL the emulator cannot parse is refused the way Salesforce refuses it.
    let answer = reqwest::Client::new()
        .get(format!("{}services/data/v61.0/queryAll", salesforce.base_url()))
        .bearer_auth(SALESFORCE_ACCESS_TOKEN)
        .query(&[("q", "SELECT Id FROM Account WHERE Name LIKE 'A%'")])
        .send()
        .await
        .expect("query");
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY", "{body}");
}

#[tokio::test]
async fn saas_resync_reads_the_stream_again_from_the_start() {
    let stripe = emulator(EmulatorOptions::new(Service::Stripe, 900));
    let lake = TempLake::new();
    let sync =
        || sync_command("stripe", &stripe, lake.dir.path(), "customers", &STRIPE_KEY, &["--batch-records", "300"]);
    succeed(&mut sync());
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;

    stripe.update("customers", 50);
    stripe.delete("customers", 20);
    stripe.create("customers", 15);
    let output = resync(lake.dir.path(), "test", "stripe.customers");
    assert!(String::from_utf8_lossy(&output.stdout).contains("stripe.customers: emptied"), "{output:?}");
    assert!(table_rows(&lake, "stripe", "customers", "name").await.is_empty(), "resync empties the table");

    // The next sync copies the stream again from the start: exactly the API's records, deletes included.
    succeed(&mut sync());
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
    // And the syncs after it go on from there.
    stripe.update("customers", 30);
    stripe.delete("customers", 10);
    succeed(&mut sync());
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
}

/// A declarative stream over the emulator's `/linked/customers` list (paged by `Link` headers), with a bearer
/// token from `TEST_LINKED_TOKEN`; `extra` adds profile settings.
fn linked_profile(api: &Emulator, extra: &str) -> String {
    format!(
        r#"kind = "rest"
base_url = "{base}"
auth = {{ type = "bearer", token = {{ env = "TEST_LINKED_TOKEN" }} }}
max_retries = 0
{extra}

[profiles.linked.streams.customers]
path = "linked/customers"
key = ["id"]
paging = {{ style = "link" }}
query = {{ per_page = "100", fields = "id,name,email" }}"#,
        base = api.base_url()
    )
}

#[tokio::test]
async fn saas_link_paging_follows_next_links_whose_urls_hold_commas() {
    let api = emulator(EmulatorOptions::new(Service::Stripe, 350));
    let lake = TempLake::new();
    let config = pipelines_file(&lake, "linked", &linked_profile(&api, ""), "\"customers\"", "1h");
    // Each `Link` header lists `first` and `next`, and both URLs hold `fields=id,name,email`.
    succeed(run_command(&config, &[("TEST_LINKED_TOKEN", STRIPE_API_KEY)]).arg("--once"));
    assert_table_matches(&lake, &api, "linked", "customers", "name").await;
    assert_eq!(api.request_count(), 4, "350 records in pages of 100");
}

#[tokio::test]
async fn saas_link_to_another_origin_is_refused_and_gets_no_credentials() {
    let api = emulator(EmulatorOptions::new(Service::Stripe, 350));
    // Same host, another port: another origin, which must never see the token.
    let elsewhere = emulator(EmulatorOptions::new(Service::Stripe, 350));
    api.send_links_to(&elsewhere.base_url());
    let lake = TempLake::new();
    let config = pipelines_file(&lake, "linked", &linked_profile(&api, ""), "\"customers\"", "1h");
    let output = fail(run_command(&config, &[("TEST_LINKED_TOKEN", STRIPE_API_KEY)]).arg("--once"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let foreign = format!("{}linked/customers", elsewhere.base_url());
    assert!(stderr.contains(&foreign) && stderr.contains("base_url"), "{stderr}");
    assert_eq!(elsewhere.request_count(), 0, "the other origin received a request");
    assert!(!stderr.contains(STRIPE_API_KEY), "{stderr}");
    // The first page, read from the configured origin, landed.
    assert_eq!(table_rows(&lake, "linked", "customers", "name").await.len(), 100);
}

#[tokio::test]
async fn saas_endless_response_body_stops_at_the_configured_cap() {
    let api = emulator(EmulatorOptions::new(Service::Stripe, 10));
    let lake = TempLake::new();
    let profile = format!(
        r#"kind = "rest"
base_url = "{base}"
auth = {{ type = "bearer", token = {{ env = "TEST_LINKED_TOKEN" }} }}
max_response_bytes = 1048576
request_timeout = "30s"

[profiles.hostile.streams.items]
path = "endless"
key = ["id"]"#,
        base = api.base_url()
    );
    let config = pipelines_file(&lake, "hostile", &profile, "\"items\"", "1h");
    let started = Instant::now();
    let output = fail(run_command(&config, &[("TEST_LINKED_TOKEN", STRIPE_API_KEY)]).arg("--once"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_response_bytes") && stderr.contains("1048576"), "{stderr}");
    // Refused at the cap, not retried: the same server would send the same body again.
    assert_eq!(api.request_count(), 1, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the body was read until the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn saas_refused_credentials_name_the_setting_and_are_not_retried_in_a_loop() {
    let stripe = emulator(EmulatorOptions::new(Service::Stripe, 10));
    let lake = TempLake::new();
    let profile = stripe_profile(&stripe);
    let config = pipelines_file(&lake, "billing", &profile, "\"customers\"", "continuous");
    let mut child = run_command(&config, &[("TEST_STRIPE_KEY", "sk_wrong")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start connector");
    // Continuous mode: the refusal is a failure only the user can fix, so the next attempt waits long.
    let stderr = child.stderr.take().expect("stderr");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let line = loop {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains("needs attention") => break line,
            Ok(_) => {}
            Err(error) => panic!("no failure reported within a minute: {error}"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("401") && line.contains("auth.token") && line.contains("TEST_STRIPE_KEY"), "{line}");
    assert!(!line.contains("sk_wrong"), "{line}");
    assert_eq!(stripe.request_count(), 1, "a refused credential was tried again");

    // OAuth: a refresh token the server no longer accepts (invalid_grant) names the setting too.
    let hubspot = emulator(EmulatorOptions::new(Service::Hubspot, 10));
    let credentials = [
        ("HUBSPOT_CLIENT_ID", HUBSPOT_CLIENT_ID),
        ("HUBSPOT_CLIENT_SECRET", HUBSPOT_CLIENT_SECRET),
        ("HUBSPOT_REFRESH_TOKEN", "refresh-revoked"),
    ];
    let output = fail(&mut sync_command("hubspot", &hubspot, lake.dir.path(), "contacts", &credentials, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid_grant") && stderr.contains("HUBSPOT_REFRESH_TOKEN"), "{stderr}");
    assert!(!stderr.contains("refresh-revoked"), "{stderr}");
    let wrong_secret = [
        ("HUBSPOT_CLIENT_ID", HUBSPOT_CLIENT_ID),
        ("HUBSPOT_CLIENT_SECRET", "not-the-secret"),
        ("HUBSPOT_REFRESH_TOKEN", HUBSPOT_REFRESH_TOKEN),
    ];
    let output = fail(&mut sync_command("hubspot", &hubspot, lake.dir.path(), "contacts", &wrong_secret, &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid_client") && stderr.contains("HUBSPOT_CLIENT_SECRET"), "{stderr}");
}

#[tokio::test]
async fn saas_status_reports_the_streams_of_a_pipelines_file() {
    let stripe = emulator(EmulatorOptions::new(Service::Stripe, 120));
    let lake = TempLake::new();
    let profile = stripe_profile(&stripe);
    let config = pipelines_file(&lake, "billing", &profile, "\"customers\", \"stripe.invoices\"", "1h");
    succeed(run_command(&config, &[("TEST_STRIPE_KEY", STRIPE_API_KEY)]).arg("--once"));
    // No credentials needed to read the lake's side.
    let output =
        succeed(std::process::Command::new(crate::support::saas::CONNECTOR).args(["status", "--config"]).arg(&config));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("stripe.customers") && stdout.contains("stripe.invoices"), "{stdout}");
    assert!(stdout.contains("120"), "the row count of each stream: {stdout}");
}
