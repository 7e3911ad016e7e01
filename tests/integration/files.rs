//! `connector sync files`: files written by independent writers (Python's csv, json, gzip modules, pyarrow, the
//! zstd/bzip2/xz tools) land once each, whatever their format and compression, in a local directory or an S3
//! bucket (moto); values that do not fit are rescued with their file; a corrupt file stops its batch with
//! nothing committed; a sync killed at a random moment ingests every file exactly once when run again.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use connector_core::schema::TableId;
use url::Url;

use crate::support::connector_process::{difference, kill_moments, wait_for_exit};
use crate::support::delta::{TempLake, delta_commits_under, read_rows, read_rows_with};
use crate::support::s3::S3Server;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// Runs a Python script with `args`, failing the test with its error; returns what it printed.
pub(crate) fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3 runs");
    assert!(output.status.success(), "the Python writer failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `connector sync files --once` of `landing` into `lake`'s table `raw.<table>`, with `extra` flags.
pub(crate) fn sync_files(landing: &str, lake: &Path, table: &str, extra: &[&str]) -> Output {
    Command::new(CONNECTOR)
        .args(["sync", "files", "--path", landing, "--dest", lake.to_str().expect("utf-8"), "--once"])
        .args(["--table", &format!("raw.{table}")])
        .args(extra)
        .env("CONNECTOR_LOG", "info")
        .output()
        .expect("run connector")
}

/// Runs `sync files --once` of `landing` into `lake`'s table `raw.<table>` (with `extra` flags) `rounds` times,
/// each killed (`kill -9`) after a random time up to what a whole sync of `landing` takes on this machine
/// (timed first, into lakes of their own) unless it ended; returns the seed of those times and how many runs
/// were killed, which the test must see above zero.
pub(crate) async fn sync_files_killed_at_random(
    landing: &str,
    lake: &Path,
    table: &str,
    extra: &[&str],
    rounds: usize,
) -> (u64, usize) {
    assert!(!extra.iter().any(|flag| flag.contains("clean-source")), "the timing sync would clean the landing files");
    // Timed twice, the shorter kept: the first run also pages in the binary and the files.
    let timed_sync = || {
        let timing_lake = tempfile::tempdir().expect("temp dir");
        let started = std::time::Instant::now();
        assert_synced(&sync_files(landing, timing_lake.path(), table, extra));
        started.elapsed().as_millis() as u64
    };
    let whole_sync = timed_sync().min(timed_sync());
    let seed = fastrand::u64(..);
    let (mut kills, mut rounds_seen) = (0, Vec::new());
    for lifetime in kill_moments(&mut fastrand::Rng::with_seed(seed), whole_sync, rounds) {
        let mut child = Command::new(CONNECTOR)
            .args(["sync", "files", "--path", landing, "--table", &format!("raw.{table}"), "--once"])
            .args(["--dest", lake.to_str().expect("utf-8")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run connector");
        tokio::time::sleep(lifetime).await;
        let ended = child.try_wait().expect("poll");
        if ended.is_none() {
            child.kill().expect("kill -9");
            kills += 1;
        }
        rounds_seen.push((lifetime.as_millis(), ended));
        wait_for_exit(&mut child);
    }
    assert!(
        kills > 0,
        "seed {seed}: no run was killed (whole sync {whole_sync} ms; each run's time and end: {rounds_seen:?}), so \
         nothing was tested"
    );
    (seed, kills)
}

pub(crate) fn assert_synced(output: &Output) {
    assert!(
        output.status.success(),
        "sync files failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub(crate) fn table_url(lake: &TempLake, table: &str) -> Url {
    lake.table_url(&TableId::new("raw", table))
}

/// Rows per source file as the table holds them (`_cdc_file_path` → count).
pub(crate) async fn rows_per_file(url: &Url) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for path in read_rows(url, &["_cdc_file_path"]).await {
        *counts.entry(path).or_insert(0) += 1;
    }
    counts
}

/// Writes `count` rows `id,name,amount,day` as CSV from `first` into `path` with Python's csv module: names
/// holding the delimiter, quotes and line breaks, an empty amount (null) every seventh row. Prints `id|name`
/// per row, as the lake is read back.
const WRITE_ORDERS_CSV: &str = r#"
import csv, sys
path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "name", "amount", "day"])
    for i in range(first, first + count):
        name = f'customer {i}, "quoted"\nsecond line' if i % 5 == 0 else f"customer {i}"
        amount = "" if i % 7 == 0 else f"{i}.25"
        writer.writerow([i, name, amount, f"2026-12-{i % 28 + 1:02d}"])
        print(f"{i}|{name}".replace("\n", "\\n"))
"#;

fn expected_rows(printed: &str) -> Vec<String> {
    printed.lines().map(|line| line.replace("\\n", "\n")).collect()
}

/// Python's python-snappy: compresses argv[1] into argv[1] + ".sz" (Snappy's framing format) or, with argv[2]
/// "hadoop", into argv[1] + ".snappy" (Hadoop's blocks), and removes argv[1].
const SNAPPY_COMPRESS: &str = r#"
import os, snappy, sys
hadoop = sys.argv[2] == "hadoop"
with open(sys.argv[1], "rb") as source, open(sys.argv[1] + (".snappy" if hadoop else ".sz"), "wb") as target:
    compressor = snappy.HadoopStreamCompressor() if hadoop else snappy.StreamCompressor()
    target.write(compressor.add_chunk(source.read()))
os.remove(sys.argv[1])
"#;

/// Compresses `path` in place with `tool` (the original removed, as gzip, bzip2 and xz do by default);
/// `snappy-framed` and `snappy-hadoop` are python-snappy's two layouts.
fn compress(tool: &str, path: &Path) {
    if let Some(layout) = tool.strip_prefix("snappy-") {
        python(SNAPPY_COMPRESS, &[path.to_str().expect("utf-8"), layout]);
        return;
    }
    let mut command = Command::new(tool);
    command.arg("-q");
    if tool == "zstd" {
        command.arg("--rm");
    }
    let status = command.arg(path).status().unwrap_or_else(|_| panic!("{tool} runs"));
    assert!(status.success(), "{tool} {} failed", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_csv_file_lands_once_whatever_its_compression() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let mut expected = Vec::new();
    let tools = ["", "gzip", "zstd", "bzip2", "xz", "snappy-framed", "snappy-hadoop"];
    for (index, tool) in tools.into_iter().enumerate() {
        let path = landing.path().join(format!("orders-{index}.csv"));
        let first = (index * 1000).to_string();
        expected.extend(expected_rows(&python(WRITE_ORDERS_CSV, &[path.to_str().expect("utf-8"), &first, "300"])));
        if !tool.is_empty() {
            compress(tool, &path);
        }
    }
    // Not data: hidden files and writers' markers.
    std::fs::write(landing.path().join("_SUCCESS"), "").expect("marker");
    std::fs::write(landing.path().join(".orders-9.csv.crc"), "crc").expect("hidden file");
    let landing_path = landing.path().to_str().expect("utf-8");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &["--max-files-per-batch", "2"]));

    let url = table_url(&lake, "orders");
    let mut landed = read_rows(&url, &["id", "name"]).await;
    let numeric = |row: &String| row.split('|').next().and_then(|id| id.parse::<i64>().ok()).unwrap_or(-1);
    landed.sort_by_key(numeric);
    expected.sort_by_key(numeric);
    assert!(
        landed == expected,
        "the table holds every row of every file, as written: {}",
        difference(&expected, &landed)
    );
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.len(), 7, "seven files landed: {per_file:?}");
    assert!(per_file.values().all(|&rows| rows == 300), "each file once: {per_file:?}");
    let nulls = read_rows(&url, &["id", "amount", "day", "_cdc_file_row"]).await;
    assert!(nulls.contains(&"7|∅|2026-12-08|7".to_string()), "an empty field is null, typed columns parse: {nulls:?}");
    assert_eq!(delta_commits_under(lake.dir.path()).len(), 4, "seven files two at a time: four commits");

    // Listed again: nothing new, nothing committed.
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));
    assert_eq!(delta_commits_under(lake.dir.path()).len(), 4, "a sync with no new file commits nothing");
    assert_eq!(read_rows(&url, &["id"]).await.len(), 2100);

    // A file arriving later is the only one ingested.
    let late = landing.path().join("orders-late.csv");
    python(WRITE_ORDERS_CSV, &[late.to_str().expect("utf-8"), "9000", "10"]);
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.values().sum::<usize>(), 2110, "{per_file:?}");
    assert!(per_file.keys().any(|path| path.ends_with("orders-late.csv")));

    // The ledger is readable by any engine: one JSON line per file, naming the commit that landed it.
    let ledger = python(
        r#"
import glob, json, sys
records = [json.loads(line) for name in glob.glob(sys.argv[1] + "/_connector/files/*/*.jsonl") for line in open(name)]
print(len(records), sum(record["rows"] for record in records))
"#,
        &[url.to_file_path().expect("local").to_str().expect("utf-8")],
    );
    assert_eq!(ledger.trim(), "8 2110");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_and_parquet_from_independent_writers_land_with_their_types() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let events = landing.path().join("events");
    let parquet = landing.path().join("parquet");
    python(
        r#"
import gzip, json, os, sys
import pyarrow as pa, pyarrow.parquet as pq
events, parquet = sys.argv[1], sys.argv[2]
os.makedirs(events); os.makedirs(parquet)
with open(f"{events}/day-1.jsonl", "w") as f:
    for i in range(100):
        f.write(json.dumps({"id": i, "kind": "click", "score": i / 4, "ok": i % 2 == 0,
                            "tags": ["a", "b"], "user": {"name": f"u{i}", "age": 20 + i % 50}}) + "\n")
with gzip.open(f"{events}/day-2.jsonl.gz", "wt") as f:
    for i in range(100, 150):
        f.write(json.dumps({"id": i, "kind": "view", "score": 1.5, "ok": True, "tags": [],
                            "user": {"name": f"u{i}", "age": 30}}) + "\n")
table = pa.table({
    "id": pa.array(range(1000), pa.int32()),
    "price": pa.array([i / 100 for i in range(1000)], pa.float64()),
    "sold": pa.array([1_700_000_000_000_000_000 + i * 1000 for i in range(1000)], pa.timestamp("ns", tz="UTC")),
    "count": pa.array(range(1000), pa.uint32()),
})
pq.write_table(table, f"{parquet}/part-0.parquet", row_group_size=300)
"#,
        &[events.to_str().expect("utf-8"), parquet.to_str().expect("utf-8")],
    );
    assert_synced(&sync_files(events.to_str().expect("utf-8"), lake.dir.path(), "events", &[]));
    let url = table_url(&lake, "events");
    let rows = read_rows(&url, &["id", "kind", "score", "ok", "tags", "user"]).await;
    assert_eq!(rows.len(), 150);
    assert_eq!(rows[3], "3|click|0.75|false|[a, b]|{age: 23, name: u3}", "{:?}", &rows[..4]);
    assert_eq!(read_rows(&url, &["_rescued_data"]).await.iter().filter(|row| *row != "∅").count(), 0);

    assert_synced(&sync_files(parquet.to_str().expect("utf-8"), lake.dir.path(), "sales", &[]));
    let url = table_url(&lake, "sales");
    let rows = read_rows(&url, &["id", "price", "sold", "count"]).await;
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[999], "999|9.99|2023-11-14T22:13:20.000999Z|999", "nanoseconds stored as microseconds, UTC kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_fit_are_rescued_with_their_file_never_dropped() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(
        r#"
import json, sys
root = sys.argv[1]
with open(f"{root}/a.csv", "w") as f:
    f.write("id,amount,seen\n1,2.5,2026-12-05T10:00:00Z\n2,oops,2026-12-05T11:00:00Z\n3,NA,not a time\n")
with open(f"{root}/b.jsonl", "w") as f:
    f.write(json.dumps({"id": 10, "amount": 1.5}) + "\n")
    f.write("this is not json\n")
    f.write(json.dumps({"id": "eleven", "amount": 2, "note": "new"}) + "\n")
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    let csv = landing.path().join("a.csv");
    let hints = ["--schema-hints", "amount double, seen timestamp", "--null-value", "NA"];
    assert_synced(&sync_files(csv.to_str().expect("utf-8"), lake.dir.path(), "amounts", &hints));
    let url = table_url(&lake, "amounts");
    let rows = read_rows(&url, &["id", "amount", "seen", "_rescued_data"]).await;
    let path = format!("file://{}", csv.display());
    assert_eq!(
        rows,
        vec![
            "1|2.5|2026-12-05T10:00:00Z|∅".to_string(),
            format!(r#"2|∅|2026-12-05T11:00:00Z|{{"_file_path":"{path}","amount":"oops"}}"#),
            format!(r#"3|∅|∅|{{"_file_path":"{path}","seen":"not a time"}}"#),
        ],
        "a value that does not parse is rescued; the null value is a null"
    );

    // JSON lines: a line that is not JSON, a value of another type and a new field in rescue mode.
    let json = landing.path().join("b.jsonl");
    let json_path = json.to_str().expect("utf-8");
    assert_synced(&sync_files(json_path, lake.dir.path(), "events", &["--schema-hints", "id bigint, amount double"]));
    let url = table_url(&lake, "events");
    let rows = read_rows(&url, &["_cdc_file_row", "id", "amount", "_rescued_data"]).await;
    let path = format!("file://{}", json.display());
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0], "0|10|1.5|∅");
    assert_eq!(rows[1], format!(r#"1|∅|∅|{{"_corrupt_record":"this is not json","_file_path":"{path}"}}"#));
    assert!(rows[2].starts_with("2|∅|2.0|") && rows[2].contains(r#""id":"eleven""#), "{}", rows[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_files_share_few_parquet_files() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(
        r#"
import csv, sys
for file in range(300):
    with open(f"{sys.argv[1]}/event-{file:04d}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "kind"])
        writer.writerows([file * 10 + i, "click"] for i in range(10))
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    let landing_path = landing.path().to_str().expect("utf-8");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "events", &["--parallel-files", "2"]));
    let url = table_url(&lake, "events");
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.len(), 300);
    assert!(per_file.values().all(|&rows| rows == 10), "each file once: {per_file:?}");
    let parquet_files = std::fs::read_dir(url.to_file_path().expect("local"))
        .expect("the table's directory")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".parquet")))
        .count();
    assert!(parquet_files <= 2, "300 files read by two readers land in at most two Parquet files: {parquet_files}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_source_deletes_or_moves_ingested_files_only_after_their_commit_and_retention() {
    let root = tempfile::tempdir().expect("a directory");
    let (landing, archive) = (root.path().join("landing"), root.path().join("archive"));
    std::fs::create_dir_all(landing.join("day=1")).expect("landing/day=1");
    let lake = TempLake::new();
    let landing_path = landing.to_str().expect("utf-8");
    let write = |name: &str, first: &str| {
        python(WRITE_ORDERS_CSV, &[landing.join(name).to_str().expect("utf-8"), first, "10"]);
    };
    let sync = |flags: &[&str]| assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", flags));
    write("a.csv", "0");
    write("day=1/b.csv", "100");
    let delete_now = ["--clean-source", "delete", "--clean-source-retention", "0s"];
    sync(&delete_now);
    assert!(landing.join("a.csv").exists(), "not cleaned in the pass that ingests it");
    sync(&["--clean-source", "delete"]);
    assert!(landing.join("a.csv").exists(), "kept for the default retention of 30 days");
    sync(&delete_now);
    assert!(!landing.join("a.csv").exists() && !landing.join("day=1/b.csv").exists(), "deleted once committed");

    write("c.csv", "200");
    let archive_path = archive.to_str().expect("utf-8");
    let move_now = ["--clean-source", "move", "--clean-source-move-to", archive_path, "--clean-source-retention", "0s"];
    sync(&move_now);
    write("day=1/d.csv", "300");
    sync(&move_now);
    assert!(archive.join("c.csv").exists() && !landing.join("c.csv").exists(), "moved to the archive");
    assert!(landing.join("day=1/d.csv").exists(), "the file ingested by this pass stays until the next");
    sync(&move_now);
    assert!(archive.join("day=1/d.csv").exists(), "its path below the landing kept");

    let per_file = rows_per_file(&table_url(&lake, "orders")).await;
    assert_eq!(per_file.len(), 4, "{per_file:?}");
    assert!(per_file.values().all(|&rows| rows == 10), "each file once: {per_file:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_in_place_is_skipped_unless_changed_files_are_reingested() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let file = landing.path().join("orders.csv");
    let file_path = file.to_str().expect("utf-8");
    python(WRITE_ORDERS_CSV, &[file_path, "0", "10"]);
    let landing_path = landing.path().to_str().expect("utf-8");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));
    python(WRITE_ORDERS_CSV, &[file_path, "100", "20"]);
    let output = sync_files(landing_path, lake.dir.path(), "orders", &[]);
    assert_synced(&output);
    assert!(String::from_utf8_lossy(&output.stderr).contains("was rewritten; it is not ingested again"));
    let url = table_url(&lake, "orders");
    assert_eq!(read_rows(&url, &["id"]).await.len(), 10, "the rewritten file is skipped");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &["--reingest-changed-files"]));
    let ids = read_rows(&url, &["id"]).await;
    assert_eq!(ids.len(), 30, "its new version lands as new rows");
    assert!(ids.contains(&"119".to_string()));
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &["--reingest-changed-files"]));
    assert_eq!(read_rows(&url, &["id"]).await.len(), 30, "and only once");
}

/// `connector resync` of a files table: emptied, then every file listed is ingested again at the next sync, each
/// once, including those ingested before the resync (the ledger is voided with the rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resynced_files_table_ingests_every_file_again_once() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let landing_path = landing.path().to_str().expect("utf-8");
    python(WRITE_ORDERS_CSV, &[landing.path().join("a.csv").to_str().expect("utf-8"), "0", "10"]);
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));
    python(WRITE_ORDERS_CSV, &[landing.path().join("b.csv").to_str().expect("utf-8"), "10", "5"]);
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));
    let url = table_url(&lake, "orders");
    let before = read_rows(&url, &["id"]).await;
    assert_eq!(before.len(), 15);
    let resync = Command::new(CONNECTOR)
        .args([
            "resync",
            "--pipeline",
            "default",
            "--table",
            "raw.orders",
            "--dest",
            lake.dir.path().to_str().expect("utf-8"),
        ])
        .output()
        .expect("run connector");
    assert!(resync.status.success(), "{}", String::from_utf8_lossy(&resync.stderr));
    assert!(read_rows(&url, &["id"]).await.is_empty(), "emptied at once");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));
    assert_eq!(read_rows(&url, &["id"]).await, before, "every file again, each once");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));
    assert_eq!(read_rows(&url, &["id"]).await, before, "and not a third time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_stops_its_batch_naming_the_file_with_nothing_committed() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let good = landing.path().join("a.csv");
    python(WRITE_ORDERS_CSV, &[good.to_str().expect("utf-8"), "0", "100"]);
    compress("gzip", &good);
    let gzipped = landing.path().join("a.csv.gz");
    let bytes = std::fs::read(&gzipped).expect("gzip file");
    std::fs::write(landing.path().join("b.csv.gz"), &bytes[..bytes.len() / 2]).expect("a truncated copy");
    let output = sync_files(landing.path().to_str().expect("utf-8"), lake.dir.path(), "orders", &[]);
    assert!(!output.status.success(), "a truncated gzip file must stop the sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.csv.gz") && stderr.contains("nothing of its batch was committed"), "{stderr}");
    assert!(delta_commits_under(lake.dir.path()).is_empty(), "nothing committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_file_cut_short_stops_its_batch_naming_the_file_with_nothing_committed() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(
        r#"
import pyarrow as pa, pyarrow.parquet as pq, sys
table = pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
for name in ["a", "b"]:
    pq.write_table(table, f"{sys.argv[1]}/{name}.parquet")
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    // Its footer (the schema and where the row groups are) cut off, as by an upload that stopped.
    let broken = landing.path().join("b.parquet");
    let bytes = std::fs::read(&broken).expect("b.parquet");
    std::fs::write(&broken, &bytes[..bytes.len() - 100]).expect("cut short");
    let output = sync_files(landing.path().to_str().expect("utf-8"), lake.dir.path(), "named", &[]);
    assert!(!output.status.success(), "a Parquet file without its footer must stop the sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.parquet") && stderr.contains("Parquet"), "names the file and its format: {stderr}");
    assert!(delta_commits_under(lake.dir.path()).is_empty(), "nothing committed");

    std::fs::remove_file(&broken).expect("the broken file removed");
    assert_synced(&sync_files(landing.path().to_str().expect("utf-8"), lake.dir.path(), "named", &[]));
    assert_eq!(read_rows(&table_url(&lake, "named"), &["id"]).await.len(), 1000, "the good file, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_files_a_pipeline_ingested_and_those_outstanding() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let write = |name: &str, first: &str| {
        python(WRITE_ORDERS_CSV, &[landing.path().join(name).to_str().expect("utf-8"), first, "20"]);
    };
    for (name, first) in [("a.csv", "0"), ("b.csv", "100"), ("c.csv", "200")] {
        write(name, first);
    }
    let config = landing.path().join("pipelines.toml");
    let landing_path = landing.path().join("orders");
    std::fs::create_dir(&landing_path).expect("orders directory");
    for name in ["a.csv", "b.csv", "c.csv"] {
        std::fs::rename(landing.path().join(name), landing_path.join(name)).expect("moved into orders/");
    }
    std::fs::write(
        &config,
        format!(
            "[profiles.landing]\nkind = \"files\"\npath = \"{}\"\n\n[[pipelines]]\nname = \"orders_files\"\n\
             profile = \"landing\"\ntables = [\"raw.orders\"]\ndest = \"{}\"\nschedule = \"every 5m\"\n",
            landing_path.display(),
            lake.dir.path().display()
        ),
    )
    .expect("pipelines.toml");
    let config = config.to_str().expect("utf-8");
    let run = Command::new(CONNECTOR).args(["run", "--config", config, "--once"]).output().expect("run connector");
    assert_synced(&run);

    // Two new files, and one ingested file rewritten in place (skipped by default).
    for (name, first) in [("d.csv", "300"), ("e.csv", "400")] {
        python(WRITE_ORDERS_CSV, &[landing_path.join(name).to_str().expect("utf-8"), first, "20"]);
    }
    python(WRITE_ORDERS_CSV, &[landing_path.join("a.csv").to_str().expect("utf-8"), "500", "30"]);
    let size = |name: &str| std::fs::metadata(landing_path.join(name)).expect("a file").len();
    let status = || {
        let output =
            Command::new(CONNECTOR).args(["status", "--config", config, "--json"]).output().expect("run connector");
        assert_synced(&output);
        let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        document["files"][0].clone()
    };
    let files = status();
    assert_eq!(files["pipeline"], "orders_files", "{files}");
    assert_eq!(files["ingested_files"], 3, "{files}");
    assert_eq!(files["ingested_rows"], 60, "{files}");
    assert_eq!(files["outstanding_files"], 2, "{files}");
    assert_eq!(files["outstanding_bytes"], size("d.csv") + size("e.csv"), "{files}");
    assert_eq!(files["rewritten_files"], 1, "{files}");
    let printed = Command::new(CONNECTOR).args(["status", "--config", config]).output().expect("run connector");
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("files outstanding") && printed.contains("raw.orders"), "{printed}");
    assert!(printed.contains("1 files were rewritten after they were ingested"), "{printed}");

    assert_synced(&Command::new(CONNECTOR).args(["run", "--config", config, "--once"]).output().expect("run"));
    let files = status();
    assert_eq!((files["ingested_files"].as_u64(), files["outstanding_files"].as_u64()), (Some(5), Some(0)), "{files}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_an_s3_bucket_land_once() {
    let server = S3Server::start("landing");
    let lake = TempLake::new();
    python(
        r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test",
                  aws_secret_access_key="test")
for day in range(3):
    body = "id,day\n" + "".join(f"{day * 100 + i},{day}\n" for i in range(100))
    s3.put_object(Bucket="landing", Key=f"orders/day={day}/part-0.csv", Body=body.encode())
s3.put_object(Bucket="landing", Key="other/skip.csv", Body=b"id\n1\n")
"#,
        &[&server.endpoint],
    );
    let sync = || {
        Command::new(CONNECTOR)
            .args(["sync", "files", "--path", "s3://landing/orders/", "--table", "raw.orders", "--once"])
            .args(["--dest", lake.dir.path().to_str().expect("utf-8"), "--glob", "day=*/*.csv"])
            .envs(server.storage_options())
            .output()
            .expect("run connector")
    };
    assert_synced(&sync());
    assert_synced(&sync());
    let url = table_url(&lake, "orders");
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.len(), 3, "{per_file:?}");
    assert!(per_file.keys().all(|path| path.starts_with("s3://landing/orders/day=")), "{per_file:?}");
    assert!(per_file.values().all(|&rows| rows == 100), "each file once: {per_file:?}");
    let ids = read_rows_with(&url, Default::default(), &["id"]).await;
    assert_eq!(ids.len(), 300);

    // `connector load` from object-store URLs: a prefix (every file below) and one key, into a local lake.
    let output = Command::new(CONNECTOR)
        .args(["load", "s3://landing/orders/day=0/", "s3://landing/orders/day=2/part-0.csv", "--table", "raw.loaded"])
        .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
        .envs(server.storage_options())
        .output()
        .expect("run connector");
    assert_synced(&output);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("raw.loaded: 200 rows from 2 files, Delta version 1"), "{printed}");
    let per_file = rows_per_file(&table_url(&lake, "loaded")).await;
    let expected = ["s3://landing/orders/day=0/part-0.csv", "s3://landing/orders/day=2/part-0.csv"];
    assert_eq!(per_file.keys().map(String::as_str).collect::<Vec<_>>(), expected, "{per_file:?}");
}

/// Talks to moto's S3 and SQS: `python3 -c` with boto3 clients `s3` and `sqs` of `endpoint` (argv[1]).
const WITH_MOTO_CLIENTS: &str = r#"
import boto3, sys
clients = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test",
               aws_secret_access_key="test")
s3, sqs = boto3.client("s3", **clients), boto3.client("sqs", **clients)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_notified_through_sqs_land_once_and_their_notifications_are_deleted_after_the_commit() {
    let server = S3Server::start("landing");
    let lake = TempLake::new();
    let moto = |script: &str| python(&format!("{WITH_MOTO_CLIENTS}{script}"), &[&server.endpoint]);
    let queue = moto(
        r#"
queue = sqs.create_queue(QueueName="landing-events")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
s3.put_bucket_notification_configuration(Bucket="landing", NotificationConfiguration={
    "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
s3.put_object(Bucket="landing", Key="orders/first.csv", Body=b"id\n1\n2\n")
print(queue)
"#,
    );
    let queue = queue.trim();
    let sync = |extra: &[&str]| {
        let output = Command::new(CONNECTOR)
            .args(["sync", "files", "--path", "s3://landing/orders/", "--table", "raw.orders", "--once"])
            .args(["--dest", lake.dir.path().to_str().expect("utf-8"), "--queue-url", queue])
            .args(extra)
            .envs(server.storage_options())
            .output()
            .expect("run connector");
        assert_synced(&output);
    };
    let url = table_url(&lake, "orders");
    // The first pass lists the prefix in full: files written before the queue was read.
    sync(&[]);
    assert_eq!(rows_per_file(&url).await.len(), 1);

    // Notified files, one with a key S3 encodes in its notification, one outside the prefix; then one written
    // with notifications off, which only a full listing finds.
    moto(
        r#"
s3.put_object(Bucket="landing", Key="orders/day=2/a b+c.csv", Body=b"id\n3\n4\n5\n")
s3.put_object(Bucket="landing", Key="orders/second.csv", Body=b"id\n6\n")
s3.put_object(Bucket="landing", Key="elsewhere/skip.csv", Body=b"id\n7\n")
s3.put_bucket_notification_configuration(Bucket="landing", NotificationConfiguration={})
s3.put_object(Bucket="landing", Key="orders/unnotified.csv", Body=b"id\n8\n")
"#,
    );
    sync(&[]);
    let per_file = rows_per_file(&url).await;
    let expected = [
        ("s3://landing/orders/day=2/a b+c.csv", 3),
        ("s3://landing/orders/first.csv", 2),
        ("s3://landing/orders/second.csv", 1),
    ];
    let expected: BTreeMap<String, usize> = expected.into_iter().map(|(path, rows)| (path.to_string(), rows)).collect();
    assert_eq!(per_file, expected, "the notified files of the prefix, each once");
    let waiting = moto(&format!(
        r#"
attributes = sqs.get_queue_attributes(QueueUrl="{queue}", AttributeNames=["All"])["Attributes"]
print(int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]))
"#
    ));
    assert_eq!(waiting.trim(), "0", "every notification deleted once its files were committed");

    sync(&["--full-listing-interval", "0s"]);
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.get("s3://landing/orders/unnotified.csv"), Some(&1), "the full listing: {per_file:?}");
    assert_eq!(per_file.len(), 4, "{per_file:?}");
    assert_eq!(read_rows_with(&url, Default::default(), &["id"]).await.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_moments_ingests_every_file_exactly_once() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(
        r#"
import csv, sys
for file in range(60):
    with open(f"{sys.argv[1]}/part-{file:03d}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "file", "payload"])
        for i in range(2000):
            writer.writerow([file * 2000 + i, file, "x" * 40])
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    let landing_path = landing.path().to_str().expect("utf-8");
    let batches = ["--max-files-per-batch", "3"];
    let (seed, kills) = sync_files_killed_at_random(landing_path, lake.dir.path(), "parts", &batches, 6).await;
    assert_synced(&sync_files(landing_path, lake.dir.path(), "parts", &batches));
    let url = table_url(&lake, "parts");
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.len(), 60, "seed {seed}, {kills} kills: {per_file:?}");
    assert!(per_file.values().all(|&rows| rows == 2000), "seed {seed}: each file exactly once: {per_file:?}");
    let ids = read_rows(&url, &["id"]).await;
    assert_eq!(ids.len(), 120_000, "seed {seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_listing_takes_files_named_after_the_newest_and_late_ones_at_the_full_listing() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let landing_path = landing.path().to_str().expect("utf-8");
    let write = |day: &str, first: &str| {
        python(
            WRITE_ORDERS_CSV,
            &[landing.path().join(format!("orders-{day}.csv")).to_str().expect("utf-8"), first, "10"],
        );
    };
    let sync = |extra: &[&str]| {
        let flags = [&["--incremental-listing"], extra].concat();
        assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &flags));
    };
    let url = table_url(&lake, "orders");
    let days = |per_file: BTreeMap<String, usize>| -> Vec<String> {
        assert!(per_file.values().all(|&rows| rows == 10), "each file once: {per_file:?}");
        per_file.keys().map(|path| path.rsplit('-').take(3).collect::<Vec<_>>().join("-")).collect()
    };
    write("2026-12-01", "0");
    write("2026-12-02", "100");
    sync(&[]);
    assert_eq!(rows_per_file(&url).await.len(), 2, "the first pass lists in full");

    // A file named after the newest one, and a late one named before it.
    write("2026-12-03", "200");
    write("2026-11-30", "300");
    sync(&[]);
    let listed = days(rows_per_file(&url).await);
    assert_eq!(listed.len(), 3, "only the file after the newest: {listed:?}");
    assert!(!listed.iter().any(|day| day.contains("30.csv")), "the late file waits for a full listing: {listed:?}");

    sync(&["--full-listing-interval", "0s"]);
    assert_eq!(rows_per_file(&url).await.len(), 4, "the full listing takes the late file");
    assert_eq!(read_rows(&url, &["id"]).await.len(), 40);
}

pub(crate) fn load(args: &[&str]) -> Output {
    Command::new(CONNECTOR).arg("load").args(args).env("CONNECTOR_LOG", "warn").output().expect("run connector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_creates_a_table_from_files_then_appends_and_overwrites_each_in_one_commit() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let lake_path = lake.dir.path().to_str().expect("utf-8");
    for (name, first) in [("jan.csv", "0"), ("feb.csv", "100"), ("mar.csv", "200")] {
        python(WRITE_ORDERS_CSV, &[landing.path().join(name).to_str().expect("utf-8"), first, "50"]);
    }
    compress("gzip", &landing.path().join("feb.csv"));
    let glob = format!("{}/*.csv*", landing.path().display());
    let mar = landing.path().join("mar.csv");
    let mar = mar.to_str().expect("utf-8");

    let output = load(&[&glob, "--dest", lake_path, "--table", "sales.orders"]);
    assert_synced(&output);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("sales.orders: 150 rows from 3 files, Delta version 1"), "{printed}");
    assert!(printed.contains("  id bigint\n") && printed.contains("  day date\n"), "the columns as SQL: {printed}");
    assert!(printed.contains("  amount decimal(5,2)\n"), "amounts such as 249.25 are exact decimals: {printed}");
    let url = lake.table_url(&TableId::new("sales", "orders"));
    assert_eq!(read_rows(&url, &["id"]).await.len(), 150);

    let refused = load(&[mar, "--dest", lake_path, "--table", "sales.orders"]);
    assert_eq!(refused.status.code(), Some(2), "create refuses an existing table");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists; load with --mode append"));

    assert_synced(&load(&[mar, "--dest", lake_path, "--table", "sales.orders", "--mode", "append"]));
    assert_eq!(read_rows(&url, &["id"]).await.len(), 200, "appended");

    let output = load(&[mar, "--dest", lake_path, "--table", "sales.orders", "--mode", "overwrite"]);
    assert_synced(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("50 rows from 1 files, Delta version 3"));
    let ids = read_rows(&url, &["id"]).await;
    assert_eq!(ids.len(), 50, "the rows replaced in one commit");
    assert!(ids.iter().all(|id| id.parse::<i64>().is_ok_and(|id| (200..250).contains(&id))), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_shows_the_columns_and_first_rows_writing_nothing_and_its_edited_types_load() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    for (name, first) in [("jan.csv", "0"), ("feb.csv", "100")] {
        python(WRITE_ORDERS_CSV, &[landing.path().join(name).to_str().expect("utf-8"), first, "50"]);
    }
    let landing_path = landing.path().to_str().expect("utf-8");
    let preview = |extra: &[&str]| {
        let output = Command::new(CONNECTOR)
            .args(["preview", landing_path, "--rows", "60", "--json"])
            .args(extra)
            .output()
            .expect("run connector");
        assert_synced(&output);
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON")
    };
    let document = preview(&[]);
    let columns: Vec<String> = document["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|column| {
            format!("{} {}", column["name"].as_str().expect("a name"), column["type"].as_str().expect("a type"))
        })
        .collect();
    assert_eq!(columns, ["id bigint", "name string", "amount decimal(5,2)", "day date", "_rescued_data string"]);
    let rows = document["rows"].as_array().expect("rows");
    assert_eq!((document["files"].as_u64(), rows.len()), (Some(2), 60), "the first 60 rows, over both files");
    // Files in path order: feb.csv (ids 100…) first, then jan.csv.
    assert_eq!((rows[0]["id"].as_i64(), rows[50]["id"].as_i64()), (Some(100), Some(0)));
    assert_eq!(rows[5]["name"], "customer 105, \"quoted\"\nsecond line", "values as they will land");
    assert!(rows[5]["amount"].is_null(), "an empty amount is null, named: {}", rows[5]);
    assert!(std::fs::read_dir(lake.dir.path()).expect("the lake").next().is_none(), "nothing written anywhere");

    // The user edits two types, as the upload page lets them, and loads with them.
    let edited = "amount double, day string";
    let document = preview(&["--schema-hints", edited]);
    assert_eq!(document["columns"][2]["type"], "double");
    assert_eq!(document["rows"][1]["day"], "2026-12-18", "{}", document["rows"][1]);
    let lake_path = lake.dir.path().to_str().expect("utf-8");
    let output = load(&[landing_path, "--dest", lake_path, "--table", "sales.orders", "--schema-hints", edited]);
    assert_synced(&output);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("  amount double\n") && printed.contains("  day string\n"), "{printed}");
    assert_eq!(read_rows(&lake.table_url(&TableId::new("sales", "orders")), &["id"]).await.len(), 100);
}

/// `--continuous` with files arriving all along, killed (`kill -9`) at random moments for longer than each of its
/// periodic tasks (the 200 ms poll, the 1 s full listing behind incremental ones, cleaning after a 0 s retention):
/// every file lands exactly once, and no file is deleted before its rows are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_sync_killed_while_files_arrive_ingests_each_once_and_cleans_only_committed_ones() {
    const FILES: usize = 150;
    const ROWS: usize = 50;
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let seed = fastrand::u64(..);
    let landing_dir = landing.path().to_path_buf();
    // Each file written under a hidden name (never taken), then renamed: a file is listed whole or not at all.
    let writer = std::thread::spawn(move || {
        let mut random = fastrand::Rng::with_seed(seed);
        for file in 0..FILES {
            let mut text = String::from("id,file\n");
            for row in 0..ROWS {
                text.push_str(&format!("{},{file}\n", file * ROWS + row));
            }
            let hidden = landing_dir.join(format!(".part-{file:05}.csv"));
            std::fs::write(&hidden, text).expect("a file written");
            std::fs::rename(&hidden, landing_dir.join(format!("part-{file:05}.csv"))).expect("renamed");
            std::thread::sleep(Duration::from_millis(random.u64(20..120)));
        }
    });
    let mut random = fastrand::Rng::with_seed(seed.wrapping_add(1));
    let landing_path = landing.path().to_str().expect("utf-8");
    let lake_path = lake.dir.path().to_str().expect("utf-8");
    let started = std::time::Instant::now();
    let mut kills = 0;
    while !writer.is_finished() || started.elapsed() < Duration::from_secs(12) {
        let mut child = Command::new(CONNECTOR)
            .args(["sync", "files", "--path", landing_path, "--table", "raw.arrivals", "--dest", lake_path])
            .args(["--continuous", "--poll-interval", "200ms", "--max-files-per-batch", "4"])
            .args(["--incremental-listing", "--full-listing-interval", "1s"])
            .args(["--clean-source", "delete", "--clean-source-retention", "0s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run connector");
        tokio::time::sleep(Duration::from_millis(random.u64(300..2500))).await;
        assert!(child.try_wait().expect("poll").is_none(), "seed {seed}: a continuous sync stopped by itself");
        child.kill().expect("kill -9");
        kills += 1;
        wait_for_exit(&mut child);
    }
    writer.join().expect("the writer");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "arrivals", &[]));

    let per_file = rows_per_file(&table_url(&lake, "arrivals")).await;
    assert_eq!(per_file.len(), FILES, "seed {seed}, {kills} kills: every file landed");
    assert!(per_file.values().all(|&rows| rows == ROWS), "seed {seed}, {kills} kills: each once: {per_file:?}");
    let cleaned = (0..FILES).filter(|file| !landing.path().join(format!("part-{file:05}.csv")).exists()).count();
    assert!(cleaned > 0, "seed {seed}: no file was cleaned, so cleaning under kills was not tested");
    let ids = read_rows(&table_url(&lake, "arrivals"), &["id"]).await;
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (FILES * ROWS, FILES * ROWS), "seed {seed}");
}
