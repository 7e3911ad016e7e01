//! Large CSV and JSON files are parsed in blocks on several tasks at once: every row lands once, with its
//! number within the file, whatever the blocks' edges cut through (quoted line breaks, doubled quotes, a quote
//! inside an unquoted field, `\r\n` line ends, gzip); a row that does not fit, or a line with surplus fields,
//! in a later block is named by its place in the file, not in its block.

use std::collections::BTreeSet;

use tempfile::tempdir;

use crate::files::{assert_synced, python, rows_per_file, sync_files, sync_files_killed_at_random, table_url};
use crate::support::delta::{TempLake, read_rows};

/// Rows written by Python's csv module (`\r\n` line ends): names with line breaks, doubled quotes and
/// delimiters in quotes, and from row `stray` on a quote inside an unquoted field; a row is about 40 bytes, so
/// a few hundred thousand rows span several 4 MiB blocks. Prints `id|name` per row.
const WRITE_AWKWARD_CSV: &str = r#"
import csv, sys
path, count, stray = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "name", "amount"])
    for i in range(count):
        if i % 5 == 0:
            name = f'line one {i}\nline "two", end'
        elif i == stray:
            name = f'a 12" pipe {i}'
        else:
            name = f"customer {i}"
        writer.writerow([i, name, f"{i}.5"])
        print(f"{i}|{name}".replace("\n", "\\n"))
"#;

const ROWS: usize = 400_000;

/// What a failed sync printed, checked to have failed.
fn sync_error(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "the sync must stop");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn expected(printed: &str) -> Vec<String> {
    printed.lines().map(|line| line.replace("\\n", "\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_csv_file_parsed_in_blocks_lands_every_row_once_numbered_as_in_the_file() {
    let landing = tempdir().expect("landing");
    let lake = TempLake::new();
    let csv = landing.path().join("orders.csv");
    let csv_path = csv.to_str().expect("utf-8").to_string();
    let printed = python(WRITE_AWKWARD_CSV, &[&csv_path, &ROWS.to_string(), "250003"]);
    assert!(std::fs::metadata(&csv).expect("written").len() > 12 * 1024 * 1024, "several blocks");
    let gzipped = landing.path().join("gzipped");
    std::fs::create_dir(&gzipped).expect("dir");
    let copy = gzipped.join("orders.csv");
    std::fs::copy(&csv, &copy).expect("copy");
    assert!(std::process::Command::new("gzip").arg("-q").arg(&copy).status().expect("gzip").success());

    for (source, table) in [(csv_path.as_str(), "plain"), (gzipped.to_str().expect("utf-8"), "gzipped")] {
        // Amounts past the sample's widest would be rescued from an inferred decimal: a double holds them all.
        assert_synced(&sync_files(source, lake.dir.path(), table, &["--schema-hints", "amount double"]));
        let url = table_url(&lake, table);
        let landed = read_rows(&url, &["id", "name"]).await;
        assert_eq!(landed.len(), ROWS, "{table}: every row once");
        assert!(landed == expected(&printed), "{table}: the rows differ from the file's");
        let numbered = read_rows(&url, &["id", "_cdc_file_row", "amount"]).await;
        let misplaced: Vec<&String> = numbered
            .iter()
            .filter(|row| {
                let cells: Vec<&str> = row.split('|').collect();
                cells[0] != cells[1] || cells[2] != format!("{}.5", cells[0])
            })
            .take(3)
            .collect();
        assert!(misplaced.is_empty(), "{table}: rows not numbered as in the file: {misplaced:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_fit_in_a_later_block_is_named_by_its_place_in_the_file() {
    let landing = tempdir().expect("landing");
    let lake = TempLake::new();
    let write = r#"
import csv, json, sys
directory, count = sys.argv[1], int(sys.argv[2])
with open(f"{directory}/amounts.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "amount"])
    for i in range(count):
        writer.writerow([i, "oops" if i == 300000 else f"{i}.25"])
with open(f"{directory}/fields.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "amount"])
    for i in range(count):
        writer.writerow([i, f"{i}.25", "surplus"] if i == 350000 else [i, f"{i}.25"])
with open(f"{directory}/amounts.jsonl", "w") as f:
    for i in range(count):
        f.write(json.dumps({"id": i, "amount": "oops" if i == 300000 else i + 0.25}) + "\n")
"#;
    let directory = landing.path().to_str().expect("utf-8");
    python(write, &[directory, "400000"]);
    let hints = ["--schema-hints", "id bigint, amount double", "--strict"];

    let amounts = landing.path().join("amounts.csv");
    let output = sync_files(amounts.to_str().expect("utf-8"), lake.dir.path(), "amounts", &hints);
    let error = sync_error(&output);
    assert!(error.contains("row 300001 of"), "the row is named by its place in the file: {error}");
    assert!(error.contains("\"oops\""), "{error}");

    let fields = landing.path().join("fields.csv");
    let output = sync_files(fields.to_str().expect("utf-8"), lake.dir.path(), "fields", &hints);
    let error = sync_error(&output);
    assert!(error.contains("row 350001 of") && error.contains("`_c2`"), "named by its place in the file: {error}");
    assert_synced(&sync_files(fields.to_str().expect("utf-8"), lake.dir.path(), "fields", &hints[..2]));
    let rescued = read_rows(&table_url(&lake, "fields"), &["_rescued_data", "id"]).await;
    assert_eq!(rescued.len(), 400_000);
    // Sorted with nulls first: the one rescued row comes last.
    let (last, before) = (&rescued[rescued.len() - 1], &rescued[rescued.len() - 2]);
    assert!(last.starts_with(r#"{"_c2":"surplus""#) && last.ends_with("|350000"), "{last}");
    assert!(before.starts_with("∅|"), "one row rescued: {before}");

    let json = landing.path().join("amounts.jsonl");
    let output = sync_files(json.to_str().expect("utf-8"), lake.dir.path(), "json_amounts", &hints);
    let error = sync_error(&output);
    assert!(error.contains("row 300001 of"), "the row is named by its place in the file: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_json_lines_file_decoded_in_chunks_lands_every_row_numbered_as_in_the_file() {
    let landing = tempdir().expect("landing");
    let lake = TempLake::new();
    let path = landing.path().join("events.jsonl");
    let write = r#"
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": i, "kind": "click" if i % 3 else "view", "note": f"line\nbreak {i}"}) + "\n")
"#;
    python(write, &[path.to_str().expect("utf-8"), "200000"]);
    assert_synced(&sync_files(path.to_str().expect("utf-8"), lake.dir.path(), "events", &[]));
    let rows = read_rows(&table_url(&lake, "events"), &["id", "_cdc_file_row", "note"]).await;
    assert_eq!(rows.len(), 200_000);
    let misplaced: Vec<&String> = rows
        .iter()
        .filter(|row| {
            let cells: Vec<&str> = row.splitn(3, '|').collect();
            cells[0] != cells[1] || cells[2] != format!("line\nbreak {}", cells[0])
        })
        .take(3)
        .collect();
    assert!(misplaced.is_empty(), "rows not numbered as in the file: {misplaced:?}");
}

/// Files of several blocks (CSV) and chunks (JSON lines) each, two files a batch, the sync killed (`kill -9`)
/// at random moments while blocks are in flight on several tasks: run again, every file lands once, each of its
/// rows once with its own number in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_multi_block_files_killed_at_random_moments_lands_each_row_once() {
    const CSV_ROWS: usize = 150_000;
    const JSON_ROWS: usize = 60_000;
    let landing = tempdir().expect("landing");
    let lake = TempLake::new();
    let write = r#"
import csv, json, sys
directory, csv_rows, json_rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for file in range(3):
    with open(f"{directory}/orders-{file}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "amount"])
        for i in range(csv_rows):
            name = f'line one\nline "two" {i}' if i % 9 == 0 else f"customer {i} of the orders file"
            writer.writerow([file * csv_rows + i, name, f"{i}.5"])
    with open(f"{directory}/orders-{file}.jsonl", "w") as f:
        for i in range(json_rows):
            row = {"id": 1_000_000 + file * json_rows + i, "name": f"customer {i}", "amount": i + 0.5}
            f.write(json.dumps(row) + "\n")
"#;
    let directory = landing.path().to_str().expect("utf-8");
    python(write, &[directory, &CSV_ROWS.to_string(), &JSON_ROWS.to_string()]);
    let first_csv = landing.path().join("orders-0.csv");
    assert!(std::fs::metadata(&first_csv).expect("written").len() > 6 * 1024 * 1024, "several blocks a file");

    let flags = ["--max-files-per-batch", "2", "--schema-hints", "id bigint, name string, amount double"];
    let (seed, kills) = sync_files_killed_at_random(directory, lake.dir.path(), "orders", &flags, 6).await;
    assert_synced(&sync_files(directory, lake.dir.path(), "orders", &flags));

    let url = table_url(&lake, "orders");
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.len(), 6, "seed {seed}, {kills} kills: every file landed: {per_file:?}");
    for (file, rows) in &per_file {
        let expected = if file.ends_with(".csv") { CSV_ROWS } else { JSON_ROWS };
        assert_eq!(*rows, expected, "seed {seed}, {kills} kills: {file} exactly once");
    }
    let placed = read_rows(&url, &["_cdc_file_path", "_cdc_file_row", "id"]).await;
    let distinct: BTreeSet<(&str, &str)> = placed
        .iter()
        .map(|row| {
            let mut cells = row.split('|');
            (cells.next().expect("path"), cells.next().expect("row"))
        })
        .collect();
    assert_eq!(distinct.len(), 3 * (CSV_ROWS + JSON_ROWS), "seed {seed}: each row of each file once");
    let ids: BTreeSet<&str> = placed.iter().filter_map(|row| row.rsplit('|').next()).collect();
    assert_eq!(ids.len(), placed.len(), "seed {seed}: no id twice");
}

/// A Parquet file of many row groups (pyarrow), read a row group per task: every row once with its number in
/// the file, and a value that does not fit, in a late row group, named by its row in the file (strict mode) or
/// rescued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_files_row_groups_read_at_once_land_every_row_numbered_as_in_the_file() {
    let landing = tempdir().expect("landing");
    let lake = TempLake::new();
    let path = landing.path().join("orders.parquet");
    let write = r#"
import pyarrow as pa, pyarrow.parquet as pq, sys
count = int(sys.argv[2])
table = pa.table({
    "id": pa.array(range(count), pa.int64()),
    "amount": pa.array(["oops" if i == 170_000 else f"{i}.5" for i in range(count)]),
})
pq.write_table(table, sys.argv[1], row_group_size=7_000)
print(pq.ParquetFile(sys.argv[1]).num_row_groups)
"#;
    let groups = python(write, &[path.to_str().expect("utf-8"), "200000"]);
    assert_eq!(groups.trim(), "29", "many row groups");
    let file = path.to_str().expect("utf-8");
    let hints = ["--schema-hints", "amount double"];

    let output = sync_files(file, lake.dir.path(), "strict", &[&hints[..], &["--strict"]].concat());
    let error = sync_error(&output);
    assert!(error.contains("row 170001 of") && error.contains("\"oops\""), "named by its row in the file: {error}");

    assert_synced(&sync_files(file, lake.dir.path(), "orders", &hints));
    let rows = read_rows(&table_url(&lake, "orders"), &["id", "_cdc_file_row", "amount", "_rescued_data"]).await;
    assert_eq!(rows.len(), 200_000, "every row once");
    let misplaced: Vec<&String> = rows
        .iter()
        .filter(|row| {
            let cells: Vec<&str> = row.splitn(4, '|').collect();
            let fits = cells[2] == format!("{}.5", cells[0]) && cells[3] == "∅";
            cells[0] != cells[1] || (!fits && cells[0] != "170000")
        })
        .take(3)
        .collect();
    assert!(misplaced.is_empty(), "rows not numbered as in the file: {misplaced:?}");
    let rescued = rows.iter().find(|row| row.starts_with("170000|")).expect("the row that does not fit");
    assert!(rescued.contains(r#""amount":"oops""#), "rescued, not dropped: {rescued}");
}
