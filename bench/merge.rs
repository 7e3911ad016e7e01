//! Merge benchmark: time per MERGE and bytes rewritten for 10k changes into tables of 100k, 1M and 10M
//! rows, with changed keys (a) clustered in the newest 1% of the key range, (b) uniformly random; then (b)
//! at larger batch sizes to show how batching amortises the fixed cost of a merge.
//!
//! Run: `cargo bench --bench merge` (sizes: `BENCH_MERGE_SIZES=100000,1000000,10000000`).
//! Target (a): the 10M table within 3x of the 100k one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use connector_core::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use connector_core::arrow::datatypes::DataType;
use connector_core::change::{ChangeBatch, Operation, TransactionSpan};
use connector_core::cursor::{SnapshotProgress, TableCursor};
use connector_core::delta::{ApplyOutcome, DeltaSink, DeltaTableWriter, Destination};
use connector_core::options::TableOptions;
use connector_core::position::{Lsn, SourcePosition};
use connector_core::schema::{Column, TableId, TableSchema};

const CHANGES: usize = 10_000;
const SNAPSHOT_BATCH_ROWS: usize = 65_536;

fn schema() -> TableSchema {
    TableSchema::new(
        TableId::new("bench", "orders"),
        vec![
            Column::new("id", DataType::Int64, "bigint"),
            Column::new("customer", DataType::Utf8, "text"),
            Column::new("amount", DataType::Int32, "integer"),
            Column::new("note", DataType::Utf8, "text"),
        ],
        vec!["id".into()],
    )
    .expect("valid schema")
}

fn rows(schema: &TableSchema, ids: &[i64], generation: i32) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(ids.iter().map(|id| Some(format!("customer-{}", id % 9973))).collect::<StringArray>()),
        Arc::new(ids.iter().map(|id| Some((*id % 1000) as i32 + generation)).collect::<Int32Array>()),
        Arc::new(
            ids.iter().map(|id| Some(format!("order note {id:>12} generation {generation}"))).collect::<StringArray>(),
        ),
    ];
    RecordBatch::try_new(schema.arrow_schema(), columns).expect("rows")
}

fn position(lsn: u64) -> SourcePosition {
    SourcePosition::Postgres { lsn: Lsn(lsn) }
}

/// Active files and their sizes, to measure what a merge rewrote.
fn files(table: &DeltaTableWriter) -> HashMap<String, i64> {
    let state = table.table().snapshot().expect("state");
    state.log_data().iter().map(|file| (file.path().to_string(), file.size())).collect()
}

async fn load_table(sink: &DeltaSink, schema: &TableSchema, size: usize) -> (DeltaTableWriter, f64) {
    let mut table = sink.open_table(schema, TableOptions::default()).await.expect("open");
    let started = Instant::now();
    let taken_at = Utc.timestamp_opt(1_700_000_000, 0).single().expect("time");
    let mut writer = table.snapshot_writer(schema, &position(1), taken_at).await.expect("writer");
    let mut next = 0usize;
    while next < size {
        let end = (next + SNAPSHOT_BATCH_ROWS).min(size);
        let ids: Vec<i64> = (next as i64..end as i64).collect();
        writer.write(&rows(schema, &ids, 0)).await.expect("write");
        next = end;
    }
    let progress =
        SnapshotProgress { resume_from: serde_json::json!(null), rows_copied: size as u64, complete: true, taken_at };
    writer
        .commit(TableCursor { position: position(1), snapshot: Some(progress), parts_of: None })
        .await
        .expect("commit");
    (table, started.elapsed().as_secs_f64())
}

struct MergeResult {
    seconds: f64,
    rewritten_bytes: i64,
    added_bytes: i64,
    files_before: usize,
    files_removed: usize,
}

async fn merge(
    table: &mut DeltaTableWriter,
    schema: &TableSchema,
    ids: &[i64],
    operations: Vec<Operation>,
    lsn: u64,
) -> MergeResult {
    let before = files(table);
    let span = TransactionSpan { end_row: ids.len(), position: position(lsn), commit_time: Utc::now() };
    let batch =
        ChangeBatch::new(schema, rows(schema, ids, (lsn % 1000) as i32), operations, vec![span]).expect("batch");
    let started = Instant::now();
    let outcome = table.apply_changes(schema, &batch).await.expect("merge");
    let seconds = started.elapsed().as_secs_f64();
    assert!(matches!(outcome, ApplyOutcome::Merged(_)), "{outcome:?}");
    let after = files(table);
    let rewritten_bytes = before.iter().filter(|(path, _)| !after.contains_key(*path)).map(|(_, size)| size).sum();
    let added_bytes = after.iter().filter(|(path, _)| !before.contains_key(*path)).map(|(_, size)| size).sum();
    let files_removed = before.keys().filter(|path| !after.contains_key(*path)).count();
    MergeResult { seconds, rewritten_bytes, added_bytes, files_before: before.len(), files_removed }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_MERGE_SIZES")
        .unwrap_or_else(|_| "100000,1000000,10000000".into())
        .split(',')
        .map(|size| size.trim().parse().expect("BENCH_MERGE_SIZES: comma-separated row counts"))
        .collect();
    let schema = schema();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut clustered_seconds = Vec::new();
    println!(
        "merge benchmark: {CHANGES} changes per merge (70% updates, 30% inserts when clustered; updates when uniform)"
    );
    println!(
        "{:>10} {:>9} {:>6} | {:<9} {:>8} {:>13} {:>10} {:>9}",
        "rows", "load s", "files", "keys", "merge s", "rewritten MiB", "added MiB", "files rw"
    );
    for &size in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = DeltaSink::new(
            Destination::parse(dir.path().to_str().expect("utf-8")).expect("dest"),
            "bench",
            HashMap::new(),
        );
        let (mut table, load_seconds) = load_table(&sink, &schema, size).await;
        let file_count = files(&table).len();
        let mut lsn = 10;
        let mut next_new_id = size as i64;

        // (a) clustered: updates within the newest 1% of keys, inserts just above them.
        let newest = (size as i64 / 100).max(1);
        let mut ids = Vec::with_capacity(CHANGES);
        let mut operations = Vec::with_capacity(CHANGES);
        for index in 0..CHANGES {
            if index % 10 < 7 {
                ids.push(size as i64 - 1 - rng.i64(0..newest));
                operations.push(Operation::Update);
            } else {
                ids.push(next_new_id);
                next_new_id += 1;
                operations.push(Operation::Insert);
            }
        }
        let clustered = merge(&mut table, &schema, &ids, operations, lsn).await;
        lsn += 10;
        clustered_seconds.push(clustered.seconds);

        // (b) uniform: updates anywhere in the key range.
        let ids: Vec<i64> = (0..CHANGES).map(|_| rng.i64(0..size as i64)).collect();
        let uniform = merge(&mut table, &schema, &ids, vec![Operation::Update; CHANGES], lsn).await;
        lsn += 10;
        for (label, result) in [("clustered", &clustered), ("uniform", &uniform)] {
            println!(
                "{:>10} {:>9.2} {:>6} | {:<9} {:>8.2} {:>13.1} {:>10.1} {:>4}/{:<4}",
                size,
                load_seconds,
                file_count,
                label,
                result.seconds,
                mib(result.rewritten_bytes),
                mib(result.added_bytes),
                result.files_removed,
                result.files_before
            );
        }
        // Batching amortises the fixed cost of a merge: uniform updates at larger batch sizes.
        for batch_size in [100_000usize, 1_000_000] {
            if batch_size > size {
                continue;
            }
            let ids: Vec<i64> = (0..batch_size).map(|_| rng.i64(0..size as i64)).collect();
            let result = merge(&mut table, &schema, &ids, vec![Operation::Update; batch_size], lsn).await;
            lsn += 10;
            println!(
                "{:>10} {:>9} {:>6} | uniform {:>7} changes: {:.2} s, {:.1} µs/change, rewritten {:.1} MiB",
                size,
                "",
                "",
                batch_size,
                result.seconds,
                result.seconds * 1e6 / batch_size as f64,
                mib(result.rewritten_bytes)
            );
        }
        println!(
            "{:>10} {:>9} {:>6} | uniform 10k changes: {:.1} µs/change",
            size,
            "",
            "",
            uniform.seconds * 1e6 / CHANGES as f64
        );
    }
    if let (Some(first), Some(last)) = (clustered_seconds.first(), clustered_seconds.last()) {
        println!("clustered merge time, largest vs smallest table: {:.2}x (target at most 3x)", last / first);
    }
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
}
