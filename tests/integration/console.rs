//! The web console (`connector serve`) end to end in headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` by fantoccini): a person signs in with the token, sees the pipelines, resyncs a table (through
//! its confirmation page), asks an hourly pipeline to run now, pauses and resumes one, and uploads a CSV file
//! written by Python's csv module, changing two column types before creating the table; the tables are read back
//! with our reader and delta-rs's Python package, the event log holds each action with who took it.
//!
//! With `CONNECTOR_CONSOLE_SCREENSHOTS=<dir>` the test saves a PNG of each page there (docs/images/console).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connector_core::event_log::recent_events;
use connector_core::schema::TableId;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::event_log::WRITE_PEOPLE_CSV;
use crate::files::python;
use crate::support::delta::{TempLake, python_reading, read_rows};
use crate::support::eventually::eventually;
use crate::support::loopback::{free_port, wait_until_listening};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");
const TOKEN: &str = "console-test-token-0123456789";

/// Kills what it holds when the test ends, passing or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium under chromedriver, and the WebDriver session driving it.
struct Browser {
    client: Client,
    _driver: Running,
    _profile: tempfile::TempDir,
    screenshots: Option<PathBuf>,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = std::env::var("CONNECTOR_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{driver} runs (Debian package chromium-driver): {error}"));
        let driver = Running(child);
        wait_until_listening(port, "chromedriver");
        let profile = tempfile::tempdir().expect("browser profile");
        let chromium = std::env::var("CONNECTOR_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        // Without the background-networking flags Chromium keeps reaching for Google's hosts, which a closed
        // network refuses.
        let arguments = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|argument| argument.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": chromium, "args": arguments }));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let screenshots = std::env::var_os("CONNECTOR_CONSOLE_SCREENSHOTS").map(PathBuf::from);
        Browser { client, _driver: driver, _profile: profile, screenshots }
    }

    async fn text_of(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.expect("text"),
            Err(error) => panic!("{css} is not on the page ({error}); the page says: {}", self.page_text().await),
        }
    }

    async fn page_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(error) => format!("(no page: {error})"),
        }
    }

    /// Clicks `css` (a link or a form's button) and waits for the page it leads to: a click returns before a
    /// form's POST and its redirect have loaded the next page.
    async fn click(&self, css: &str) {
        self.client.execute("window.connectorPageBeforeClick = true;", Vec::new()).await.expect("mark the page");
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{css} on the page: {error}"))
            .click()
            .await
            .expect("click");
        let deadline = Instant::now() + Duration::from_secs(30);
        let loaded = "return window.connectorPageBeforeClick === undefined && document.readyState === 'complete';";
        while self.client.execute(loaded, Vec::new()).await.ok() != Some(serde_json::Value::Bool(true)) {
            assert!(Instant::now() < deadline, "clicking {css} led to no new page within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field =
            self.client.find(Locator::Css(css)).await.unwrap_or_else(|error| panic!("{css} on the page: {error}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Saves the page as `<name>.png` when screenshots are asked for.
    async fn screenshot(&self, name: &str) {
        if let Some(directory) = &self.screenshots {
            std::fs::create_dir_all(directory).expect("screenshot directory");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(directory.join(format!("{name}.png")), png).expect("write screenshot");
        }
    }

    /// Reloads `url` until `css`'s text satisfies `check` (the pipelines work in the background).
    async fn until(&self, url: &str, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.client.goto(url).await.expect("page");
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                let text = element.text().await.unwrap_or_default();
                if check(&text) {
                    return text;
                }
                assert!(Instant::now() < deadline, "never happened: {what} (last seen: {text})");
            } else {
                assert!(Instant::now() < deadline, "never happened: {what} ({css} not on the page)");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Two files pipelines into `lake`: `people` streaming continuously, `orders` once an hour.
fn pipelines_file(people: &Path, orders: &Path, lake: &TempLake) -> PathBuf {
    let config = lake.dir.path().join("pipelines.toml");
    let dest = lake.dir.path().display();
    std::fs::write(
        &config,
        format!(
            "[profiles.people_files]\nkind = \"files\"\npath = \"{}\"\n\n[profiles.order_files]\nkind = \"files\"\n\
             path = \"{}\"\n\n[[pipelines]]\nname = \"people\"\nprofile = \"people_files\"\ntables = [\"raw.people\"]\n\
             dest = \"{dest}\"\nschedule = \"continuous\"\n\n[[pipelines]]\nname = \"orders\"\nprofile = \"order_files\"\n\
             tables = [\"raw.orders\"]\ndest = \"{dest}\"\nschedule = \"1h\"\n",
            people.display(),
            orders.display(),
        ),
    )
    .expect("pipelines.toml");
    config
}

fn serve(config: &Path, address: &str, log: &Path) -> Running {
    let child = Command::new(CONNECTOR)
        .args(["serve", "--config", config.to_str().expect("utf-8"), "--addr", address])
        .env(connector_token_variable(), TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("connector serve");
    Running(child)
}

fn connector_token_variable() -> &'static str {
    "CONNECTOR_CONSOLE_TOKEN"
}

/// The ids in the table at `url`, sorted; none before the table exists.
async fn ids_of(url: &url::Url) -> Vec<i64> {
    if !url.to_file_path().expect("local table").join("_delta_log").is_dir() {
        return Vec::new();
    }
    let mut ids: Vec<i64> = read_rows(url, &["id"]).await.iter().map(|id| id.parse().expect("an id")).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_resyncs_runs_pauses_and_uploads_from_the_console_in_chromium() {
    let people = tempfile::tempdir().expect("people landing");
    let orders = tempfile::tempdir().expect("orders landing");
    let lake = TempLake::new();
    python(WRITE_PEOPLE_CSV, &[people.path().join("a.csv").to_str().expect("utf-8"), "0", "100", ""]);
    python(WRITE_PEOPLE_CSV, &[orders.path().join("a.csv").to_str().expect("utf-8"), "0", "30", ""]);
    let config = pipelines_file(people.path(), orders.path(), &lake);
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let console = serve(&config, &address, &lake.dir.path().join("console.log"));
    wait_until_listening(port, "the console");
    let base = format!("http://{address}");
    let people_table = lake.table_url(&TableId::new("raw", "people"));
    let orders_table = lake.table_url(&TableId::new("raw", "orders"));
    eventually("both pipelines' first syncs", || async {
        ids_of(&people_table).await.len() == 100 && ids_of(&orders_table).await.len() == 30
    })
    .await;

    let browser = Browser::start().await;
    // Signing in: every page needs the token once one is set.
    browser.client.goto(&base).await.expect("console");
    assert!(browser.client.current_url().await.expect("url").path().starts_with("/login"), "asked to sign in");
    browser.screenshot("login").await;
    browser.type_into("input[name=token]", TOKEN).await;
    browser.click("button[type=submit]").await;
    let overview = browser.text_of("#pipelines").await;
    assert!(overview.contains("people") && overview.contains("orders"), "both pipelines listed: {overview}");
    assert!(overview.contains("continuous") && overview.contains("1h"), "with their schedules: {overview}");
    browser
        .until(&base, "tr[data-pipeline=people]", "the overview counting people's commit", |text| text.contains("100"))
        .await;
    browser.screenshot("pipelines").await;

    // Resync: the confirmation page, then the table emptied and copied again, every row once.
    let people_page = format!("{base}/pipelines/people");
    let row = browser
        .until(&people_page, "tr[data-table='raw.people']", "raw.people's 100 rows", |text| text.contains("100"))
        .await;
    assert!(row.contains("complete") || row.contains("—"), "{row}");
    browser.until(&people_page, ".chart rect", "the throughput chart's bar", |_| true).await;
    browser.screenshot("pipeline").await;
    let version_before = connector_core::status::table_status(&lake.destination(), &TableId::new("raw", "people"))
        .await
        .expect("status")
        .expect("table")
        .version;
    browser.click("tr[data-table='raw.people'] a.button").await;
    assert!(browser.text_of("main").await.contains("empties the Delta table now"));
    browser.screenshot("resync-confirmation").await;
    browser.type_into("#confirm", "raw.people").await;
    browser.click("#confirm-resync").await;
    let notice = browser.text_of("#notice").await;
    assert!(notice.contains("raw.people emptied"), "{notice}");
    eventually("raw.people copied again", || async {
        let status = connector_core::status::table_status(&lake.destination(), &TableId::new("raw", "people")).await;
        let version = status.ok().flatten().map_or(0, |status| status.version);
        version >= version_before + 2 && ids_of(&people_table).await == (0..100).collect::<Vec<_>>()
    })
    .await;

    // Run now: the hourly pipeline picks up a new file at once, not in an hour.
    python(WRITE_PEOPLE_CSV, &[orders.path().join("b.csv").to_str().expect("utf-8"), "30", "20", ""]);
    browser.client.goto(&format!("{base}/pipelines/orders")).await.expect("orders page");
    browser.click("#run-now").await;
    assert!(browser.text_of("#notice").await.contains("Run requested"));
    eventually("the orders run asked for", || async { ids_of(&orders_table).await == (0..50).collect::<Vec<_>>() })
        .await;

    // Pause and resume: paused, the pipeline shows it; a file written meanwhile lands once resumed.
    browser.client.goto(&people_page).await.expect("people page");
    browser.click("#pause").await;
    assert!(browser.text_of("#notice").await.contains("Paused"));
    browser.until(&people_page, "#state", "the pipeline paused", |state| state.contains("paused")).await;
    python(WRITE_PEOPLE_CSV, &[people.path().join("b.csv").to_str().expect("utf-8"), "100", "10", ""]);
    browser.click("#resume").await;
    assert!(browser.text_of("#notice").await.contains("Resumed"));
    eventually("the file written while paused", || async {
        ids_of(&people_table).await == (0..110).collect::<Vec<_>>()
    })
    .await;

    // Upload: a CSV written by Python's csv module, two types changed, created as a table.
    let upload = lake.dir.path().join("scores.csv");
    python(
        r#"
import csv, sys
with open(sys.argv[1], "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "player", "score", "played_on"])
    for i in range(200):
        writer.writerow([i, f"player {i}", f"{i}.25", f"2026-12-{1 + i % 28:02d}"])
"#,
        &[upload.to_str().expect("utf-8")],
    );
    browser.client.goto(&format!("{base}/upload")).await.expect("upload page");
    browser.screenshot("upload").await;
    browser
        .client
        .find(Locator::Id("files"))
        .await
        .expect("file input")
        .send_keys(upload.to_str().expect("utf-8"))
        .await
        .expect("choose the file");
    browser.click("#send").await;
    let columns = browser.text_of("#columns").await;
    assert!(columns.contains("played_on") && columns.contains("date"), "inferred columns: {columns}");
    assert!(columns.contains("decimal(5,2)"), "score inferred as a decimal: {columns}");
    assert_eq!(
        browser.client.find_all(Locator::Css("#rows tbody tr")).await.expect("rows").len(),
        50,
        "the first 50 rows"
    );
    browser
        .client
        .find(Locator::Css("select[data-column=score]"))
        .await
        .expect("score's type")
        .select_by_value("double")
        .await
        .expect("double");
    browser
        .client
        .find(Locator::Css("select[data-column=id]"))
        .await
        .expect("id's type")
        .select_by_value("int")
        .await
        .expect("int");
    browser.type_into("#table", "uploads.scores").await;
    browser.screenshot("upload-preview").await;
    browser.click("#load-table").await;
    let loaded = browser.text_of("#loaded").await;
    assert!(loaded.contains("uploads.scores: 200 rows from 1 file"), "{loaded}");
    let loaded_columns = browser.text_of("#loaded-columns").await;
    assert!(loaded_columns.contains("score double") && loaded_columns.contains("id int"), "{loaded_columns}");
    browser.screenshot("upload-loaded").await;
    let scores = lake.table_url(&TableId::new("uploads", "scores"));
    let read_by_delta_rs = python_reading(
        "import sys, polars\nframe = polars.read_delta(sys.argv[1])\n\
         print({name: str(kind) for name, kind in frame.schema.items()}, frame.height)",
        &scores,
        "polars deltalake",
    );
    assert!(
        read_by_delta_rs.contains("'id': 'Int32'") && read_by_delta_rs.contains("'score': 'Float64'"),
        "{read_by_delta_rs}"
    );
    assert!(
        read_by_delta_rs.contains("'played_on': 'Date'") && read_by_delta_rs.trim_end().ends_with(" 200"),
        "{read_by_delta_rs}"
    );
    browser.click("a.button").await;
    assert!(browser.text_of("#row-count").await.contains("200"));
    browser.screenshot("table").await;

    // Every action is in the event log, with who took it.
    let events_page = format!("{base}/events");
    let wanted = ["resync", "run_requested", "paused", "resumed", "upload"];
    eventually("the console's actions in the event log", || async {
        let events =
            recent_events(&lake.destination(), &HashMap::new(), chrono::Utc::now() - chrono::Duration::hours(1))
                .await
                .expect("event log");
        wanted.iter().all(|kind| {
            events.iter().any(|event| event.kind == *kind && event.actor.as_deref() == Some("token from 127.0.0.1"))
        })
    })
    .await;
    browser
        .until(&events_page, "table.events", "the event log page listing the upload", |text| text.contains("upload"))
        .await;
    browser.screenshot("events").await;

    // A pause outlives a restart: the console started again shows the pipeline paused, as it was left.
    browser.client.goto(&people_page).await.expect("people page");
    browser.click("#pause").await;
    drop(console);
    let port = free_port();
    let _console = serve(&config, &format!("127.0.0.1:{port}"), &lake.dir.path().join("console-again.log"));
    wait_until_listening(port, "the console started again");
    let people_page = format!("http://127.0.0.1:{port}/pipelines/people");
    browser
        .until(&people_page, "#state", "the pipeline still paused after the restart", |state| state.contains("paused"))
        .await;
    assert!(browser.text_of("#actions").await.contains("Resume"));
    browser.client.close().await.expect("close the browser");
}

/// Who may use the console: the token on every page and action, actions only from the console's own pages, and
/// no open console on the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_wants_its_token_refuses_other_sites_and_will_not_open_to_the_network_without_one() {
    let people = tempfile::tempdir().expect("people landing");
    let orders = tempfile::tempdir().expect("orders landing");
    let lake = TempLake::new();
    let config = pipelines_file(people.path(), orders.path(), &lake);
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let _console = serve(&config, &address, &lake.dir.path().join("console.log"));
    wait_until_listening(port, "the console");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let page = |token: Option<&str>| {
        let request = client.get(format!("http://{address}/pipelines/people"));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    let anonymous = page(None).await.expect("answer");
    assert_eq!(anonymous.status(), 303);
    assert!(anonymous.headers()["location"].to_str().expect("text").starts_with("/login?next=%2Fpipelines%2Fpeople"));
    assert_eq!(page(Some("console-test-token-0123456780")).await.expect("answer").status(), 303, "a wrong token");
    assert_eq!(page(Some(TOKEN)).await.expect("answer").status(), 200);
    let elsewhere = client.get(format!("http://{address}/tables?dest=%2Fetc&table=a.b")).bearer_auth(TOKEN).send();
    assert_eq!(elsewhere.await.expect("answer").status(), 404, "only the pipelines' destinations are shown");
    let pause = |origin: &'static str| {
        client
            .post(format!("http://{address}/pipelines/people/pause"))
            .bearer_auth(TOKEN)
            .header("origin", origin)
            .send()
    };
    assert_eq!(pause("https://evil.example").await.expect("answer").status(), 403, "another site's button");
    assert_eq!(pause("null").await.expect("answer").status(), 403);
    let own = format!("http://{address}");
    let own: &'static str = Box::leak(own.into_boxed_str());
    assert_eq!(pause(own).await.expect("answer").status(), 303, "the console's own page");
    let unauthenticated_action =
        client.post(format!("http://{address}/pipelines/people/resume")).send().await.expect("answer");
    assert_eq!(unauthenticated_action.status(), 401);

    let open = Command::new(CONNECTOR)
        .args(["serve", "--config", config.to_str().expect("utf-8"), "--addr", &format!("0.0.0.0:{}", free_port())])
        .env_remove(connector_token_variable())
        .output()
        .expect("connector serve");
    assert!(!open.status.success());
    let said = String::from_utf8_lossy(&open.stderr);
    assert!(said.contains("would be open to the network") && said.contains(connector_token_variable()), "{said}");
}

/// A pipeline paused in the console (its newest pause in the event log) is skipped by `connector run --once`,
/// which says so, while the others run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_skips_a_pipeline_left_paused_and_runs_the_others() {
    use connector_core::event_log::{Event, EventKind, EventLog};
    let people = tempfile::tempdir().expect("people landing");
    let orders = tempfile::tempdir().expect("orders landing");
    let lake = TempLake::new();
    python(WRITE_PEOPLE_CSV, &[people.path().join("a.csv").to_str().expect("utf-8"), "0", "10", ""]);
    python(WRITE_PEOPLE_CSV, &[orders.path().join("a.csv").to_str().expect("utf-8"), "0", "20", ""]);
    let config = pipelines_file(people.path(), orders.path(), &lake);
    let log = EventLog::for_destination(&lake.destination(), &HashMap::new());
    log.record(Event::new("people", EventKind::Paused).actor("alice from 127.0.0.1"));
    log.flush().await;
    let output = Command::new(CONNECTOR)
        .args(["run", "--config", config.to_str().expect("utf-8"), "--once"])
        .output()
        .expect("connector run --once");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("people: paused (by alice from 127.0.0.1"), "{said}");
    assert_eq!(ids_of(&lake.table_url(&TableId::new("raw", "orders"))).await, (0..20).collect::<Vec<_>>());
    assert!(ids_of(&lake.table_url(&TableId::new("raw", "people"))).await.is_empty(), "the paused one is not run");
}

/// A multipart body of one file field `files` named `name` holding `content`, and its content type.
fn multipart_file(name: &str, content: &[u8]) -> (Vec<u8>, String) {
    let boundary = "connector-test-boundary-7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// The upload page refuses a request past `--upload-limit-mib` with 413 and keeps none of it, takes one within
/// it, and the uploads' directory (under TMPDIR) goes when the console stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_limit_are_refused_and_the_uploads_go_when_the_console_stops() {
    use crate::support::connector_process::{terminate, wait_for_exit};
    let people = tempfile::tempdir().expect("people landing");
    let orders = tempfile::tempdir().expect("orders landing");
    let lake = TempLake::new();
    let config = pipelines_file(people.path(), orders.path(), &lake);
    let temporary = tempfile::tempdir().expect("TMPDIR of the console");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut console = Command::new(CONNECTOR)
        .args(["serve", "--config", config.to_str().expect("utf-8"), "--addr", &address, "--upload-limit-mib", "1"])
        .env_remove(connector_token_variable())
        .env("TMPDIR", temporary.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("connector serve");
    wait_until_listening(port, "the console");
    let uploads_dirs = || -> Vec<PathBuf> {
        std::fs::read_dir(temporary.path())
            .expect("TMPDIR")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| {
                path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("connector-uploads-"))
            })
            .collect()
    };
    let uploads = uploads_dirs();
    assert_eq!(uploads.len(), 1, "the console's uploads directory: {uploads:?}");
    let stored = || std::fs::read_dir(&uploads[0]).expect("uploads").count();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let upload = |name: &str, content: Vec<u8>| {
        let (body, content_type) = multipart_file(name, &content);
        client.post(format!("http://{address}/upload")).header("content-type", content_type).body(body).send()
    };

    let mut large = b"id,note\n".to_vec();
    while large.len() <= 2 * 1024 * 1024 {
        large.extend_from_slice(format!("{},{}\n", large.len(), "n".repeat(100)).as_bytes());
    }
    let refused = upload("large.csv", large).await.expect("answer");
    assert_eq!(refused.status(), 413);
    let said = refused.text().await.expect("text");
    assert!(said.contains("larger than this console takes (1 MiB a request, --upload-limit-mib)"), "{said}");
    assert!(said.contains("connector load"), "{said}");
    assert_eq!(stored(), 0, "nothing of the refused upload is kept");

    let taken = upload("small.csv", b"id,note\n1,a\n2,b\n".to_vec()).await.expect("answer");
    assert_eq!(taken.status(), 303, "within the limit, on to the preview");
    let preview = taken.headers()["location"].to_str().expect("text").to_string();
    let page = client.get(format!("http://{address}{preview}")).send().await.expect("preview");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("text").contains("note"), "the preview shows the file's columns");
    assert_eq!(stored(), 1);

    terminate(&console);
    let status = wait_for_exit(&mut console);
    assert!(status.success(), "the console stops cleanly on SIGTERM: {status}");
    assert!(uploads_dirs().is_empty(), "the uploads directory is removed when the console stops: {:?}", uploads_dirs());
}
