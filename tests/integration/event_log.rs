//! The event log (`<dest>/_connector/events`): after three syncs of files written by Python's csv module (a
//! first one, one whose file brings a new column, one stopped by a Parquet file cut short), its rows say what
//! happened: each run's start and end or failure (with the error's kind and message), each commit (table,
//! rows, Delta version, position), the schema change. Read by Polars (delta-rs's Python reader, not ours) and
//! by `connector status --since`.

use std::process::Command;

use connector_core::event_log::events_table;
use serde_json::Value;

use crate::files::{python, sync_files};
use crate::support::delta::{TempLake, python_reading};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// Writes `path` with Python's csv module: `id,name` (and `email` when the fourth argument is `email`) for `count`
/// ids from `first`.
pub(crate) const WRITE_PEOPLE_CSV: &str = r#"
import csv, sys
path, first, count, email = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "email"
with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "name"] + (["email"] if email else []))
    for i in range(first, first + count):
        writer.writerow([i, f"person {i}"] + ([f"p{i}@example.com"] if email else []))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_holds_each_runs_commits_schema_changes_and_errors() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let root = landing.path().to_str().expect("utf-8");
    let write = |name: &str, first: &str, count: &str, email: &str| {
        python(WRITE_PEOPLE_CSV, &[landing.path().join(name).to_str().expect("utf-8"), first, count, email]);
    };
    write("a.csv", "0", "100", "");
    assert!(sync_files(root, lake.dir.path(), "people", &[]).status.success(), "first sync");
    write("b.csv", "100", "50", "email");
    assert!(sync_files(root, lake.dir.path(), "people", &[]).status.success(), "a sync adding a column");
    python(
        r#"
import pyarrow as pa, pyarrow.parquet as pq, sys
pq.write_table(pa.table({"id": [1]}), sys.argv[1])
data = open(sys.argv[1], "rb").read()
open(sys.argv[1], "wb").write(data[:-100])
"#,
        &[landing.path().join("c.parquet").to_str().expect("utf-8")],
    );
    let failed = sync_files(root, lake.dir.path(), "people", &[]);
    assert!(!failed.status.success(), "a Parquet file cut short stops the sync");

    // Any engine reads the log: Polars.
    let url = lake.table_url(&events_table());
    let script = r#"
import os, sys, polars
events = polars.read_delta(sys.argv[1]).sort("at")
for row in events.select("kind", "table", "rows", "error_kind").iter_rows():
    print("|".join("" if value is None else str(value) for value in row))
sys.stdout.flush()
os._exit(0)
"#;
    let read: Vec<String> = python_reading(script, &url, "polars").lines().map(str::to_string).collect();
    let kinds: Vec<&str> = read.iter().map(|row| row.split('|').next().unwrap_or_default()).collect();
    let count = |kind: &str| kinds.iter().filter(|seen| **seen == kind).count();
    assert_eq!(
        (count("run_started"), count("run_finished"), count("run_failed"), count("schema_change")),
        (3, 2, 1, 1),
        "three runs, two finished, one failed, one schema change: {read:?}"
    );
    let commits: Vec<&String> = read.iter().filter(|row| row.starts_with("commit|raw.people|")).collect();
    let committed_rows: i64 =
        commits.iter().map(|row| row.split('|').nth(2).and_then(|rows| rows.parse::<i64>().ok()).unwrap_or(0)).sum();
    assert_eq!(committed_rows, 150, "the commits' rows add up to the rows landed: {commits:?}");
    assert!(read.iter().any(|row| row.starts_with("run_failed|") && row.ends_with("|bad input")), "{read:?}");

    // `connector status --since` shows the same history, oldest first, with the failure's message.
    let status = Command::new(CONNECTOR)
        .args(["status", "--dest", lake.dir.path().to_str().expect("utf-8"), "--since", "1h", "--json"])
        .output()
        .expect("run connector status");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let document: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let events = document["events"].as_array().expect("events");
    assert_eq!(events.len(), read.len(), "status shows every event of the last hour");
    let change = events.iter().find(|event| event["kind"] == "schema_change").expect("a schema change");
    assert_eq!(change["table"], "raw.people");
    assert!(change["message"].as_str().is_some_and(|text| text.contains("added email")), "{change}");
    let failure = events.iter().find(|event| event["kind"] == "run_failed").expect("a failure");
    assert!(failure["message"].as_str().is_some_and(|text| text.contains("c.parquet")), "names the file: {failure}");
    let tables = document["tables"].as_array().expect("tables");
    assert!(tables.iter().all(|table| table["table"] != "_connector.events"), "the log is not a pipeline's table");
}

/// `connector run --metrics-addr` while a continuous files pipeline runs: `/readyz` turns ready, `/metrics`
/// parses as Prometheus text and its rows move as a new file lands, `/healthz` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_counts_what_a_running_pipeline_commits() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let write = |name: &str, first: &str, count: &str| {
        python(WRITE_PEOPLE_CSV, &[landing.path().join(name).to_str().expect("utf-8"), first, count, ""]);
    };
    write("a.csv", "0", "100");
    let config = people_pipeline_file(landing.path(), &lake, "continuous");
    let port = crate::support::loopback::free_port();
    let address = format!("127.0.0.1:{port}");
    let mut child = Command::new(CONNECTOR)
        .args(["run", "--config", config.to_str().expect("utf-8"), "--metrics-addr", &address])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run connector");
    let get = |path: &str| {
        let url = format!("http://{address}{path}");
        async move {
            match reqwest::get(&url).await {
                Ok(response) => Some((response.status().as_u16(), response.text().await.unwrap_or_default())),
                Err(_) => None,
            }
        }
    };
    let rows_line = r#"connector_rows_committed_total{pipeline="people",table="raw.people"}"#;
    let rows_of = |text: &str| -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(rows_line)).and_then(|value| value.trim().parse().ok())
    };
    let wait_for_rows = |rows: f64| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some((200, text)) = get("/metrics").await
                && rows_of(&text).is_some_and(|seen| seen >= rows)
            {
                return text;
            }
            assert!(std::time::Instant::now() < deadline, "the metrics never showed {rows} rows committed");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let first = wait_for_rows(100.0).await;
    assert_eq!(get("/readyz").await.map(|(status, _)| status), Some(200), "ready once the pipelines run");
    assert_eq!(get("/healthz").await, Some((200, "ok\n".to_string())));
    write("b.csv", "100", "50");
    let second = wait_for_rows(150.0).await;
    // Files outstanding fall to 0 once the pass that found b.csv has committed it.
    let outstanding_line = r#"connector_files_outstanding{pipeline="people",table="raw.people"} 0"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some((200, text)) = get("/metrics").await
            && text.lines().any(|line| line == outstanding_line)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "files outstanding never came to 0");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    for text in [&first, &second] {
        assert_eq!(text.lines().last(), Some("# EOF"), "OpenMetrics text ends with # EOF");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("a sample is a name and a value");
            assert!(value.parse::<f64>().is_ok(), "a number: {line}");
            assert!(name.starts_with("connector_"), "the connector's own metrics: {line}");
        }
    }
    assert_eq!(rows_of(&second), Some(150.0), "the second file's rows counted once");
    let read_line = r#"connector_rows_read_total{pipeline="people",table="raw.people"} 150"#;
    assert!(second.lines().any(|line| line == read_line), "every row read is committed:\n{second}");
    let file_bytes: u64 =
        ["a.csv", "b.csv"].iter().map(|name| std::fs::metadata(landing.path().join(name)).expect("file").len()).sum();
    let bytes_line = format!(r#"connector_bytes_read_total{{pipeline="people",table="raw.people"}} {file_bytes}"#);
    assert!(second.lines().any(|line| line == bytes_line), "{bytes_line} in:\n{second}");
    // A file's lag runs from its last modification (written just before) to the commit of its rows.
    let lag_prefix = r#"connector_source_lag_seconds{pipeline="people",table="raw.people"} "#;
    let lag = second.lines().find_map(|line| line.strip_prefix(lag_prefix)).and_then(|lag| lag.parse::<f64>().ok());
    assert!(lag.is_some_and(|lag| (0.0..60.0).contains(&lag)), "{second}");
    let commits = |text: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(r#"connector_commits_total{pipeline="people",table="raw.people"} "#))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(commits(&second) > commits(&first), "commits move: {} then {}", commits(&first), commits(&second));
}

/// A `pipelines.toml` in the lake's directory with one files pipeline, `people`, landing `landing`'s files at
/// `raw.people` on `schedule`; returns its path.
pub fn people_pipeline_file(landing: &std::path::Path, lake: &TempLake, schedule: &str) -> std::path::PathBuf {
    let config = lake.dir.path().join("pipelines.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.landing]\nkind = \"files\"\npath = \"{}\"\n\n[[pipelines]]\nname = \"people\"\n\
             profile = \"landing\"\ntables = [\"raw.people\"]\ndest = \"{}\"\nschedule = \"{schedule}\"\n",
            landing.display(),
            lake.dir.path().display()
        ),
    )
    .expect("pipelines.toml");
    config
}

/// `connector sync --continuous --metrics-addr` serves the same endpoint as `connector run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_sync_serves_its_metrics_too() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(WRITE_PEOPLE_CSV, &[landing.path().join("a.csv").to_str().expect("utf-8"), "0", "100", ""]);
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let mut child = Command::new(CONNECTOR)
        .args(["sync", "files", "--path", landing.path().to_str().expect("utf-8"), "--table", "raw.people"])
        .args(["--dest", lake.dir.path().to_str().expect("utf-8"), "--continuous", "--metrics-addr", &address])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run connector");
    let rows_line = r#"connector_rows_committed_total{pipeline="default",table="raw.people"} 100"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = match reqwest::get(format!("http://{address}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.lines().any(|line| line == rows_line) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the sync's metrics never showed 100 rows:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let ready = reqwest::get(format!("http://{address}/readyz")).await.expect("readyz").status().as_u16();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ready, 200);
}
