//! `connector maintain` on tables of hundreds of small commits: an append-only table and a merged one whose
//! files carry deletion vectors. Compaction brings the file count down, the rows read the same through our
//! reader and Polars, deletion vectors stay honoured, VACUUM removes the file a crashed commit left and, once
//! past the retention, the files compaction replaced; a running pipeline's table is left alone.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use connector_core::delta::{ApplyOutcome, DeltaTableWriter};
use connector_core::deltalake::DeltaTable;
use connector_core::event_log::recent_events;
use connector_core::lease::PipelineLease;
use connector_core::options::{DeleteMode, TableOptions};
use connector_core::schema::TableSchema;

use crate::deletion_vectors::{hundred_orders, options};
use crate::support::delta::{Changes, TempLake, orders_shaped, python_reading, read_rows};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");
const PIPELINE: &str = "shop";
/// Commits of the append-only table: more than delta-rs's checkpoint interval (100).
const APPENDS: i64 = 150;
const ROWS_PER_APPEND: i64 = 4;

async fn apply(table: &mut DeltaTableWriter, schema: &TableSchema, changes: Changes<'_>) -> ApplyOutcome {
    table.apply_changes(schema, &changes.build()).await.expect("apply")
}

fn maintain(lake: &TempLake, extra: &[&str]) -> Output {
    Command::new(CONNECTOR)
        .args(["maintain", "--dest", lake.dir.path().to_str().expect("utf-8")])
        .args(extra)
        .output()
        .expect("run connector maintain")
}

fn live_files(table: &DeltaTable) -> usize {
    table.snapshot().expect("loaded").log_data().num_files()
}

fn rows_marked_deleted(table: &DeltaTable) -> i64 {
    let state = table.snapshot().expect("loaded");
    state.log_data().iter().filter_map(|file| file.deletion_vector_descriptor()).map(|dv| dv.cardinality).sum()
}

/// Parquet files in the table's directory (its data files, live or not), outside `_delta_log` and `_connector`.
fn parquet_files_on_disk(table_dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(table_dir)
        .expect("table directory")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "parquet"))
        .collect()
}

async fn reopened(lake: &TempLake, schema: &TableSchema) -> DeltaTable {
    connector_core::deltalake::open_table(lake.table_url(&schema.id)).await.expect("open")
}

/// An append-only table of [`APPENDS`] one-file commits (pipeline [`PIPELINE`]) and a keyed table of 10 small
/// merges over 100 rows in a file large enough (for its 1 KiB target) to be marked by deletion vectors rather than
/// rewritten (pipeline `p`).
async fn small_commits(lake: &TempLake) -> (TableSchema, TableSchema) {
    let sink = lake.sink(PIPELINE);
    let events = orders_shaped("events", false);
    // Maintained by `connector maintain` alone here, not by their writers.
    let unmaintained = TableOptions { maintenance_every_commits: 0, ..TableOptions::default() };
    let mut appended = sink.open_table(&events, unmaintained).await.expect("open events");
    for commit in 0..APPENDS {
        let mut changes = Changes::new(&events);
        for row in 0..ROWS_PER_APPEND {
            changes = changes.insert(commit * ROWS_PER_APPEND + row, "e", row as i32);
        }
        apply(&mut appended, &events, changes.commit(1000 + commit as u64, commit)).await;
    }

    // 100 rows in one snapshot file (`shop.orders`, pipeline `p` as the deletion-vector tests have it).
    let options = TableOptions { maintenance_every_commits: 0, ..options(DeleteMode::Hard, true) };
    let (orders, mut merged) = hundred_orders(lake, &options).await;
    // Ten merges change a fifth of the file's rows: few enough that it is marked, not rewritten.
    for merge in 1..=10_i64 {
        // Each merge updates one old key, deletes another and adds a new one.
        let changes = Changes::new(&orders)
            .update(merge, "updated", merge as i32)
            .delete(100 - merge)
            .insert(1000 + merge, "new", 7)
            .commit(5000 + merge as u64, merge);
        apply(&mut merged, &orders, changes).await;
    }
    (events, orders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_gathers_small_commits_keeps_every_row_and_vacuums_unused_files() {
    let lake = TempLake::new();
    let (events, orders) = small_commits(&lake).await;
    let events_dir = lake.dir.path().join("shop").join("events");
    // Our commit path checkpoints as Delta's writers do: every 100 commits (delta.checkpointInterval).
    assert!(
        events_dir.join("_delta_log").join(format!("{:020}.checkpoint.parquet", 99)).is_file(),
        "the sink's commits wrote a checkpoint at version 99"
    );
    let before_events = reopened(&lake, &events).await;
    let before_orders = reopened(&lake, &orders).await;
    assert_eq!(live_files(&before_events), APPENDS as usize, "one file per append");
    assert!(rows_marked_deleted(&before_orders) > 0, "the merges marked rows with deletion vectors");
    let columns = ["id", "customer", "amount"];
    let events_rows = read_rows(&lake.table_url(&events.id), &columns).await;
    let orders_rows = read_rows(&lake.table_url(&orders.id), &columns).await;
    assert_eq!(events_rows.len(), (APPENDS * ROWS_PER_APPEND) as usize);
    assert_eq!(orders_rows.len(), 100, "10 deleted, 10 added");

    // A crash between a file's write and its commit leaves a file no commit names; two days old here.
    let orphan = events_dir.join("part-00000-left-by-a-crash.parquet");
    std::fs::copy(parquet_files_on_disk(&events_dir).first().expect("a data file"), &orphan).expect("copy");
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options().write(true).open(&orphan).expect("open").set_modified(two_days_ago).expect("mtime");

    let first =
        maintain(&lake, &["--target-file-size", "1048576", "--min-small-files", "2", "--vacuum-retention", "1h"]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("shop.events: compacted 150 small files into 1"), "{stdout}");
    assert!(stdout.contains("vacuumed 1 unused data files"), "the crashed commit's file: {stdout}");

    let after_events = reopened(&lake, &events).await;
    let after_orders = reopened(&lake, &orders).await;
    assert_eq!(live_files(&after_events), 1, "150 small files became one");
    assert!(live_files(&after_orders) < live_files(&before_orders), "the merged table's files were gathered too");
    assert_eq!(rows_marked_deleted(&after_orders), 0, "rows the vectors marked were left out of the new files");
    assert_eq!(read_rows(&lake.table_url(&events.id), &columns).await, events_rows, "same rows, our reader");
    assert_eq!(read_rows(&lake.table_url(&orders.id), &columns).await, orders_rows, "deleted rows stay deleted");
    assert!(!orphan.exists(), "the file no commit named is vacuumed");
    // The replaced files stay for readers of older versions until the retention passes.
    assert!(parquet_files_on_disk(&events_dir).len() > 1, "replaced files kept within the retention");

    // Another engine reads the same rows: Polars, through its own Delta reader.
    let script = r#"
import os, sys, polars
table = polars.read_delta(sys.argv[1]).sort("id")
print(table.height, table["id"].sum(), table["amount"].sum())
sys.stdout.flush()
os._exit(0)
"#;
    let polars_orders = python_reading(script, &lake.table_url(&orders.id), "polars");
    let column_sum = |index: usize| -> i64 {
        orders_rows
            .iter()
            .map(|row| row.split('|').nth(index).and_then(|cell| cell.parse::<i64>().ok()).unwrap_or(0))
            .sum()
    };
    let (ids, amounts) = (column_sum(0), column_sum(2));
    assert_eq!(polars_orders.trim(), format!("100 {ids} {amounts}"), "Polars reads the merged table as we do");

    // `connector status` shows the table's files, its last compaction and its newest checkpoint.
    let status = Command::new(CONNECTOR)
        .args(["status", "--dest", lake.dir.path().to_str().expect("utf-8"), "--json"])
        .output()
        .expect("run connector status");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let events_status = document["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|table| table["table"]["name"] == "events"))
        .expect("shop.events in status")
        .clone();
    assert_eq!(events_status["file_count"], 1, "{events_status}");
    assert!(events_status["last_compacted_at"].is_string(), "{events_status}");
    assert_eq!(events_status["checkpoint_version"], events_status["version"], "checkpointed at its version");

    // Past the retention (none), the replaced files go too; what is left is what the table uses.
    let second = maintain(&lake, &["--table", "shop.events", "--vacuum-retention", "0s"]);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(parquet_files_on_disk(&events_dir).len(), 1, "only the live file is left");
    assert_eq!(read_rows(&lake.table_url(&events.id), &columns).await, events_rows, "after the vacuum");

    // Each pass is in the event log, with what it did and who asked.
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let logged = recent_events(&lake.destination(), &Default::default(), since).await.expect("event log");
    let passes: Vec<_> = logged.iter().filter(|event| event.kind == "maintenance").collect();
    assert!(
        passes.iter().any(|event| event.table.as_deref() == Some("shop.events")
            && event.message.as_deref().is_some_and(|message| message.contains("compacted 150 small files"))
            && event.actor.as_deref() == Some("cli")
            && event.pipeline == PIPELINE),
        "{passes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_whose_pipeline_is_running_is_left_alone() {
    let lake = TempLake::new();
    let (events, _) = small_commits(&lake).await;
    let lease = PipelineLease::acquire(&lake.destination(), PIPELINE, &Default::default()).await.expect("lease");
    let refused = maintain(&lake, &["--table", "shop.events"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not maintained: pipeline `shop`, which writes it, is running"), "{stderr}");
    assert_eq!(live_files(&reopened(&lake, &events).await), APPENDS as usize, "nothing compacted");
    lease.release().await;
    let done = maintain(&lake, &["--table", "shop.events"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(live_files(&reopened(&lake, &events).await), 1, "compacted once the pipeline stopped");
}

/// The same 60 merges (updates, deletes, inserts, keys coming back) on a table its writer maintains every 5
/// commits and on one never maintained read the same; an append-only table maintained every 10 commits keeps
/// its small files below the compaction threshold plus 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_maintains_its_tables_between_commits_and_they_read_as_never_maintained() {
    let mut lakes = Vec::new();
    for every in [5, 0] {
        let lake = TempLake::new();
        let options = TableOptions { maintenance_every_commits: every, ..TableOptions::default() };
        let (orders, mut table) = hundred_orders(&lake, &options).await;
        // A fixed pseudo-random walk over keys 1..=300: the same for both tables.
        let mut state: u64 = 7;
        for merge in 1..=60_u64 {
            let mut changes = Changes::new(&orders);
            for _ in 0..5 {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let key = (state >> 33) as i64 % 300 + 1;
                changes = match (state >> 20) % 3 {
                    0 => changes.delete(key),
                    1 => changes.update(key, "updated", merge as i32),
                    _ => changes.insert(key + 1000, "new", merge as i32),
                };
            }
            apply(&mut table, &orders, changes.commit(1000 + merge, merge as i64)).await;
        }
        lakes.push((lake, orders));
    }
    let columns = ["id", "customer", "amount"];
    let (maintained, orders) = &lakes[0];
    let (plain, _) = &lakes[1];
    let maintained_rows = read_rows(&maintained.table_url(&orders.id), &columns).await;
    assert_eq!(maintained_rows, read_rows(&plain.table_url(&orders.id), &columns).await, "same rows either way");
    connector_core::event_log::flush_all().await;
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let logged = recent_events(&maintained.destination(), &Default::default(), since).await.expect("event log");
    let passes = logged.iter().filter(|event| event.kind == "maintenance" && event.pipeline == "p").count();
    assert_eq!(passes, 12, "a pass every 5 of the 61 commits: {logged:?}");

    let lake = TempLake::new();
    let events = orders_shaped("events", false);
    let options = TableOptions { maintenance_every_commits: 10, ..TableOptions::default() };
    let mut appended = lake.sink(PIPELINE).open_table(&events, options).await.expect("open events");
    let mut most_files = 0;
    for commit in 0..APPENDS {
        let changes = Changes::new(&events).insert(commit, "e", 1).commit(1000 + commit as u64, commit);
        apply(&mut appended, &events, changes).await;
        most_files = most_files.max(live_files(appended.table()));
    }
    assert!(most_files <= 26, "compacted once 16 small files gathered, checked every 10 commits: {most_files}");
    assert_eq!(read_rows(&lake.table_url(&events.id), &["id"]).await.len(), APPENDS as usize, "every row once");
}
