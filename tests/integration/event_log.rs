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

const WRITE_PEOPLE_CSV: &str = r#"
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
