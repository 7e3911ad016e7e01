//! A pipeline that needs a person: `connector run` with the alert webhook set tells a local receiver (a stand-in
//! for Slack's incoming webhook) that the pipeline needs attention, `/readyz` answers 503 naming it, and once the
//! bad file is gone the receiver hears it recovered and `/readyz` is 200 again. The hook's URL never shows in
//! the logs.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;

use crate::event_log::people_pipeline_file;
use crate::files::python;
use crate::support::delta::TempLake;
use crate::support::eventually::eventually;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");
/// The part of a webhook URL that is its secret, as in Slack's `/services/T…/B…/<token>`.
const HOOK_SECRET: &str = "hook-token-5ecret";

/// Starts a receiver of webhook posts; returns its URL and the texts posted so far.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = received.clone();
    let router = Router::new().route(
        &format!("/services/{HOOK_SECRET}"),
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let store = store.clone();
            async move {
                let text = body.get("text").and_then(|text| text.as_str()).unwrap_or_default().to_string();
                store.lock().expect("receiver").push(text);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/services/{HOOK_SECRET}"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_needing_a_person_is_alerted_and_unready_until_it_recovers() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    // A Parquet file cut short (pyarrow's, its end removed): bad input no retry mends.
    let bad = landing.path().join("cut.parquet");
    python(
        r#"
import pyarrow as pa, pyarrow.parquet as pq, sys
pq.write_table(pa.table({"id": [1, 2, 3]}), sys.argv[1])
data = open(sys.argv[1], "rb").read()
open(sys.argv[1], "wb").write(data[:-100])
"#,
        &[bad.to_str().expect("utf-8")],
    );
    let config = people_pipeline_file(landing.path(), &lake, "1s");
    let (webhook, received) = webhook_receiver().await;
    let metrics = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let log = lake.dir.path().join("connector.log");
    let mut child = Command::new(CONNECTOR)
        .args(["run", "--config", config.to_str().expect("utf-8"), "--metrics-addr", &metrics])
        .env("CONNECTOR_ALERT_WEBHOOK", &webhook)
        .env("CONNECTOR_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("run connector");
    let readyz = || {
        let url = format!("http://{metrics}/readyz");
        async move {
            match reqwest::get(&url).await {
                Ok(response) => Some((response.status().as_u16(), response.text().await.unwrap_or_default())),
                Err(_) => None,
            }
        }
    };
    let said = |words: &'static [&'static str]| {
        let received = received.clone();
        move || {
            let found =
                received.lock().expect("receiver").iter().any(|text| words.iter().all(|word| text.contains(word)));
            async move { found }
        }
    };

    eventually("an alert that the pipeline needs attention", said(&["`people`", "needs attention", "cut.parquet"]))
        .await;
    eventually("/readyz unready naming the pipeline", || async {
        matches!(readyz().await, Some((503, text)) if text.contains("people: ") && text.contains("cut.parquet"))
    })
    .await;

    std::fs::remove_file(&bad).expect("remove the bad file");
    eventually("an alert that the pipeline recovered", said(&["`people`", "recovered"])).await;
    eventually("/readyz ready again", || async { matches!(readyz().await, Some((200, _))) }).await;
    let _ = child.kill();
    let _ = child.wait();

    let texts = received.lock().expect("receiver").clone();
    let attention = texts.iter().position(|text| text.contains("needs attention"));
    let recovered = texts.iter().position(|text| text.contains("recovered"));
    assert!(attention < recovered, "attention, then recovery: {texts:?}");
    assert_eq!(texts.iter().filter(|text| text.contains("needs attention")).count(), 1, "once, not per run: {texts:?}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(!logged.contains(HOOK_SECRET), "the hook's secret stays out of the logs");
}

/// `CONNECTOR_ALERT_LAG`: a PostgreSQL table whose commits land further behind the source's than the threshold
/// (1 ms here, which every commit passes) is alerted once, not per commit, its lag is served as a metric and
/// charted by the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_behind_its_source_past_the_threshold_is_alerted_once_and_its_lag_served() {
    let db = crate::support::servers::postgres().await;
    db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders VALUES (0, 'first')").await;
    let lake = TempLake::new();
    let config = lake.dir.path().join("pipelines.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.shop]\nkind = \"postgres\"\nurl = \"${{SHOP_URL}}\"\n\n[[pipelines]]\nname = \"shop\"\n\
             profile = \"shop\"\ntables = [\"public.orders\"]\ndest = \"{}\"\nschedule = \"continuous\"\n",
            lake.dir.path().display()
        ),
    )
    .expect("pipelines.toml");
    let (webhook, received) = webhook_receiver().await;
    let metrics = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let console = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let mut child = Command::new(CONNECTOR)
        .args(["run", "--config", config.to_str().expect("utf-8"), "--metrics-addr", &metrics, "--ui", &console])
        .env("SHOP_URL", db.url())
        .env("CONNECTOR_ALERT_WEBHOOK", &webhook)
        .env("CONNECTOR_ALERT_LAG", "1ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run connector");
    let lag_line = r#"connector_source_lag_seconds{pipeline="shop",table="public.orders"} "#;
    let mut next_id = 1;
    let metrics_url = format!("http://{metrics}/metrics");
    eventually("the stream's lag served", || {
        // Changes keep coming: the copy is not streamed, the changes after it are.
        let insert = format!("INSERT INTO orders VALUES ({next_id}, 'streamed')");
        next_id += 1;
        let (db, metrics_url) = (&db, metrics_url.clone());
        async move {
            db.execute(&insert).await;
            let text = match reqwest::get(&metrics_url).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            text.lines().any(|line| line.starts_with(lag_line))
        }
    })
    .await;
    eventually("the lag alert", || {
        let received = received.clone();
        async move { received.lock().expect("receiver").iter().any(|text| text.contains("🐢")) }
    })
    .await;
    for id in next_id..next_id + 5 {
        db.execute(&format!("INSERT INTO orders VALUES ({id}, 'more')")).await;
    }
    eventually("the later rows landed", || {
        let url = lake.table_url(&connector_core::schema::TableId::new("public", "orders"));
        let wanted = (next_id + 5) as usize;
        async move { crate::support::delta::read_rows(&url, &["id"]).await.len() == wanted }
    })
    .await;
    // The console charts the lag from the event log's commits.
    let page = format!("http://{console}/pipelines/shop");
    eventually("the lag chart on the pipeline's page", || {
        let page = page.clone();
        async move {
            let html = match reqwest::get(&page).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            html.contains("Most lag behind the source")
        }
    })
    .await;
    // The copy's row and every streamed insert read (a transaction the stream meets again after the copy's
    // position is read again and skipped as committed, so reads may exceed the rows).
    let read_prefix = r#"connector_rows_read_total{pipeline="shop",table="public.orders"} "#;
    let text = reqwest::get(&metrics_url).await.expect("metrics").text().await.expect("text");
    let read: f64 =
        text.lines().find_map(|line| line.strip_prefix(read_prefix)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    assert!(read >= (next_id + 5) as f64, "{read} rows read of {} in:\n{text}", next_id + 5);
    // Each streamed insert came in a WAL message of its own: at least 20 bytes each, at least 120 for the six or
    // more inserts, which the one-row copy's COPY data (about 45 bytes) cannot make up alone.
    let bytes_prefix = r#"connector_bytes_read_total{pipeline="shop",table="public.orders"} "#;
    let bytes: f64 =
        text.lines().find_map(|line| line.strip_prefix(bytes_prefix)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let streamed = next_id + 4;
    assert!(bytes >= (20 * streamed) as f64, "{bytes} bytes read for {streamed} streamed inserts in:\n{text}");
    let _ = child.kill();
    let _ = child.wait();
    let texts = received.lock().expect("receiver").clone();
    let lag_alerts: Vec<&String> = texts.iter().filter(|text| text.contains("🐢")).collect();
    assert_eq!(lag_alerts.len(), 1, "once while it stays behind, not per commit: {texts:?}");
    assert!(
        lag_alerts[0].contains("`shop` table public.orders is") && lag_alerts[0].contains("above 1ms"),
        "{texts:?}"
    );
}
