//! `connector load --mode merge --key …`: files written by Python's csv module are upserted by key into a table
//! the connector created, in one Delta commit; the table read back equals the upsert Python computes on its own
//! (every column), the rows of other keys untouched; rows of one key keep the last (files in the order given,
//! then rows in file order); a null key, a missing or unknown --key are refused with nothing committed.

use std::path::Path;
use std::process::{Command, Output};

use connector_core::schema::TableId;

use crate::support::delta::{TempLake, delta_commits_under, python_reading, read_rows};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

fn load(args: &[&str]) -> Output {
    Command::new(CONNECTOR).arg("load").args(args).env("CONNECTOR_LOG", "warn").output().expect("run connector")
}

fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3 runs");
    assert!(output.status.success(), "the Python writer failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_loaded(output: &Output) -> String {
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "load failed: {printed}{}", String::from_utf8_lossy(&output.stderr));
    printed
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

/// Writes `base.csv` (ids 100–199) and `update.csv` (every tenth id again with new values in every column, and
/// ids 200–219) as `id,name,amount,day`, names with the delimiter and quotes, an empty amount every seventh id;
/// prints the table a merge of `update.csv` into `base.csv`'s rows on `id` must leave, `id|name|amount|day` by id.
const WRITE_BASE_AND_UPDATE: &str = r#"
import csv, sys
base, update = sys.argv[1], sys.argv[2]
def row(i, version):
    name = f'customer {i} v{version}, "quoted"' if i % 5 == 0 else f"customer {i} v{version}"
    amount = "" if (i + version) % 7 == 0 else f"{i + version}.25"
    return [str(i), name, amount, f"2026-12-{(i + version) % 28 + 1:02d}"]
expected = {}
def write(path, ids, version):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "amount", "day"])
        for i in ids:
            writer.writerow(row(i, version))
            expected[i] = row(i, version)
write(base, range(100, 200), 0)
write(update, list(range(105, 200, 10)) + list(range(200, 220)), 1)
for i in sorted(expected):
    print("|".join(value if value != "" else "∅" for value in expected[i]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_load_upserts_the_files_rows_by_key_in_one_commit_leaving_the_other_rows_untouched() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let lake_path = utf8(lake.dir.path());
    let (base, update) = (landing.path().join("base.csv"), landing.path().join("update.csv"));
    let expected: Vec<String> =
        python(WRITE_BASE_AND_UPDATE, &[utf8(&base), utf8(&update)]).lines().map(str::to_string).collect();
    assert_eq!(expected.len(), 120);

    assert_loaded(&load(&[utf8(&base), "--dest", lake_path, "--table", "sales.orders"]));
    let url = lake.table_url(&TableId::new("sales", "orders"));
    let before_merge = read_rows(&url, &["id", "name", "amount", "day", "_cdc_file_path", "_cdc_synced_at"]).await;
    let commits = delta_commits_under(lake.dir.path()).len();

    let printed = assert_loaded(&load(&[
        utf8(&update),
        "--dest",
        lake_path,
        "--table",
        "sales.orders",
        "--mode",
        "merge",
        "--key",
        "id",
    ]));
    assert!(printed.contains("sales.orders: 30 rows from 1 files, Delta version 2"), "one new version: {printed}");
    assert!(printed.contains("merged on id: 10 rows updated, 20 inserted\n"), "{printed}");
    assert_eq!(delta_commits_under(lake.dir.path()).len(), commits + 1, "one commit");

    assert_eq!(read_rows(&url, &["id", "name", "amount", "day"]).await, expected, "the upsert, every column");
    // The rows of keys the file does not hold are the very rows the first load wrote (file and write time too).
    let updated =
        |row: &&String| row.split('|').next().and_then(|id| id.parse::<i64>().ok()).is_some_and(|id| id % 10 == 5);
    let untouched: Vec<&String> = before_merge.iter().filter(|row| !updated(row)).collect();
    let after_merge = read_rows(&url, &["id", "name", "amount", "day", "_cdc_file_path", "_cdc_synced_at"]).await;
    assert_eq!(after_merge.iter().filter(|row| row.contains("base.csv")).collect::<Vec<_>>(), untouched);
    assert_eq!(after_merge.iter().filter(|row| row.contains("update.csv")).count(), 30);

    // The ledger records both files, each with the commit that landed it.
    let ledger = python(
        r#"
import glob, json, sys
records = [json.loads(line) for name in glob.glob(sys.argv[1] + "/_connector/files/*/*.jsonl") for line in open(name)]
print(" ".join(f'{record["path"].rsplit("/", 1)[1]}:{record["rows"]}' for record in sorted(records, key=lambda r: r["txn_version"])))
"#,
        &[utf8(&url.to_file_path().expect("local"))],
    );
    assert_eq!(ledger.trim(), "base.csv:100 update.csv:30");
    // The rows were staged in Parquet files of the table, which the merge deletes: the first load's file, and
    // the merge's own (the first one rewritten, as a small file, with the new rows).
    let parquet_files = std::fs::read_dir(url.to_file_path().expect("local"))
        .expect("table directory")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "parquet")))
        .count();
    assert_eq!(parquet_files, 2, "no staging file left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_one_key_keep_the_last_in_the_files_given_order_then_row_order_and_replace_every_stored_row_of_it() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let lake_path = utf8(lake.dir.path());
    // argv: path, the header (comma-separated), then rows (colon-separated).
    let write = r#"
import csv, sys
with open(sys.argv[1], "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(sys.argv[2].split(","))
    for row in sys.argv[3:]:
        writer.writerow(row.split(":"))
"#;
    let header = "region,id,status";
    let (feb, jan, mar) =
        (landing.path().join("a-feb.csv"), landing.path().join("b-jan.csv"), landing.path().join("c-mar.csv"));
    python(write, &[utf8(&jan), header, "eu:1:jan", "eu:2:jan", "us:1:jan"]);
    python(write, &[utf8(&feb), header, "eu:1:feb", "eu:3:feb first", "eu:3:feb second"]);
    python(write, &[utf8(&mar), "region,id,status,note", "eu:1:mar:late", "eu:4:mar:new"]);
    let merge = |files: &[&Path]| {
        let mut args: Vec<&str> = files.iter().map(|file| utf8(file)).collect();
        args.extend(["--dest", lake_path, "--table", "sales.status", "--mode", "merge", "--key", "region,id"]);
        assert_loaded(&load(&args))
    };

    // January given first: its name sorts after February's, but the order given is the order applied. The
    // table does not exist: the merge creates it.
    let printed = merge(&[&jan, &feb]);
    assert!(printed.contains("sales.status: 6 rows from 2 files, Delta version 1"), "{printed}");
    assert!(
        printed
            .contains("merged on region,id: 0 rows updated, 4 inserted, 2 replaced by a later row with the same key"),
        "{printed}"
    );
    let url = lake.table_url(&TableId::new("sales", "status"));
    assert_eq!(
        read_rows(&url, &["region", "id", "status"]).await,
        ["eu|1|feb", "eu|2|jan", "eu|3|feb second", "us|1|jan"],
        "a key's last row wins; `us|1` is another key than `eu|1`"
    );

    // An append leaves keys twice; a merge replaces every stored row of a key it holds, and adds its new column.
    assert_loaded(&load(&[utf8(&jan), "--dest", lake_path, "--table", "sales.status", "--mode", "append"]));
    let printed = merge(&[&mar]);
    assert!(printed.contains("sales.status: 2 rows from 1 files, Delta version 4"), "columns, then rows: {printed}");
    assert!(printed.contains("merged on region,id: 2 rows updated, 1 inserted\n"), "{printed}");
    assert!(printed.contains("  note string\n"), "{printed}");
    assert_eq!(
        read_rows(&url, &["region", "id", "status", "note"]).await,
        ["eu|1|mar|late", "eu|2|jan|∅", "eu|2|jan|∅", "eu|3|feb second|∅", "eu|4|mar|new", "us|1|jan|∅", "us|1|jan|∅"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_load_mistakes_are_refused_with_what_to_fix_and_nothing_committed() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let lake_path = utf8(lake.dir.path());
    let write = r#"
import csv, sys
with open(sys.argv[1], "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "name"])
    writer.writerows([["1", "one"], ["2", "two"], ["", "no key"], ["4", "four"]])
"#;
    let orders = landing.path().join("orders.csv");
    python(write, &[utf8(&orders)]);
    let refused = |extra: &[&str]| {
        let mut args = vec![utf8(&orders), "--dest", lake_path, "--table", "sales.orders"];
        args.extend_from_slice(extra);
        let output = load(&args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "{extra:?} must be refused");
        (output.status.code(), stderr)
    };

    let (code, stderr) = refused(&["--mode", "merge"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--mode merge needs --key: the columns that identify a row, such as --key id"), "{stderr}");

    let (code, stderr) = refused(&["--mode", "append", "--key", "id"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--key is only for --mode merge"), "{stderr}");

    let (code, stderr) = refused(&["--mode", "merge", "--key", "id,order_id"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(
            "--key column `order_id` is not a column of the files loaded into sales.orders (columns found: id, name"
        ),
        "{stderr}"
    );

    let (code, stderr) = refused(&["--mode", "merge", "--key", "id"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("orders.csv, row 2 (from 0, a header not counted): key column `id` is empty"), "{stderr}");
    assert!(stderr.contains("nothing was committed"), "{stderr}");

    assert!(delta_commits_under(lake.dir.path()).is_empty(), "nothing committed");
    let table = lake.table_url(&TableId::new("sales", "orders")).to_file_path().expect("local");
    let parquet = walkdir(&table).into_iter().filter(|path| path.extension().is_some_and(|ext| ext == "parquet"));
    assert_eq!(parquet.count(), 0, "the staged rows are deleted");

    // A key column the files bring but the table lacks: the table's rows could never match.
    let other_lake = TempLake::new();
    let other_lake_path = utf8(other_lake.dir.path());
    let names = landing.path().join("names.csv");
    let coded = landing.path().join("coded.csv");
    std::fs::write(&names, "id,name\n1,one\n").expect("a CSV file");
    std::fs::write(&coded, "id,name,code\n1,one,A\n").expect("a CSV file with a new column");
    assert_loaded(&load(&[utf8(&names), "--dest", other_lake_path, "--table", "sales.orders"]));
    let commits = delta_commits_under(other_lake.dir.path());
    let output =
        load(&[utf8(&coded), "--dest", other_lake_path, "--table", "sales.orders", "--mode", "merge", "--key", "code"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("key column `code` is not a column of sales.orders"), "{stderr}");
    assert_eq!(delta_commits_under(other_lake.dir.path()), commits, "nothing committed");
}

/// Every file under `dir` (none when it does not exist).
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else { continue };
        for path in entries.flatten().map(|entry| entry.path()) {
            if path.is_dir() { pending.push(path) } else { files.push(path) }
        }
    }
    files
}

/// A merge load larger than `--merge-memory` is read back in slices of its keys, and still lands in one commit:
/// the table equals the upsert Python computes (the last row of each key over both files, duplicates within and
/// across them), each file is in the ledger once, and the same load again leaves the same rows. The table's
/// files are small, so the merge rewrites them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_load_past_its_memory_is_read_in_key_slices_and_lands_in_one_commit() {
    let (printed, ..) = sliced_merge_load(40_000, "300000").await;
    assert!(printed.contains(" rewritten, 0 marked"), "the small files are rewritten: {printed}");
}

/// As above, into a table whose one file is large (random text) and keeps most of its rows: the merge marks
/// the replaced rows deleted (a deletion vector gathered over every slice) rather than rewriting the file,
/// and the table reads the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sliced_merge_load_into_a_large_file_marks_the_rows_of_every_slice_in_one_deletion_vector() {
    let (printed, lake, expected) = sliced_merge_load(300_000, "1000000").await;
    let url = lake.table_url(&TableId::new("sales", "orders"));
    assert!(printed.contains("table files: 0 rewritten, ") && !printed.contains(" 0 marked"), "marked: {printed}");
    // Polars (delta-rs's reader, not ours) reads the rows every slice's deletion vector removes as gone.
    let script = r#"
import os, sys, polars
rows = polars.read_delta(sys.argv[1]).select("id", "name", "amount").sort("id")
for row in rows.iter_rows():
    print(f"{row[0]}|{row[1]}|{row[2]:.2f}")
sys.stdout.flush()
os._exit(0)
"#;
    let polars: Vec<String> = python_reading(script, &url, "polars").lines().map(str::to_string).collect();
    assert!(
        polars == expected,
        "Polars reads the upsert: {}",
        crate::support::connector_process::difference(&expected, &polars)
    );
}

/// Loads `base.csv` (`base_rows` ids, each with a random 128-character name), then merges `first.csv` and
/// `second.csv` (a sixth of the ids again, some twice, and new ones) with `--merge-memory merge_memory`,
/// checking what the tests above promise. Returns what the merge load printed, the lake and the table's rows.
async fn sliced_merge_load(base_rows: usize, merge_memory: &str) -> (String, TempLake, Vec<String>) {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let lake_path = utf8(lake.dir.path());
    let root = utf8(landing.path());
    let write = r#"
import csv, random, sys
root, base_rows = sys.argv[1], int(sys.argv[2])
rnd = random.Random(base_rows)
expected = {}
def write(name, rows):
    with open(f"{root}/{name}", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "amount"])
        for row in rows:
            writer.writerow(row)
            expected[row[0]] = row
write("base.csv", [(i, "%0128x" % rnd.getrandbits(512), f"{i % 1000}.10") for i in range(base_rows)])
top = base_rows + base_rows // 8
write("first.csv", [(i, f"customer {i} first", f"{i % 1000}.20") for i in list(range(0, top, 12)) + list(range(0, top, 36))])
write("second.csv", [(i, f"customer {i} second", f"{i % 1000}.30") for i in range(0, top, 28)])
for i in sorted(expected):
    print("|".join(str(value) for value in expected[i]))
"#;
    let expected: Vec<String> = python(write, &[root, &base_rows.to_string()]).lines().map(str::to_string).collect();
    let path = |name: &str| landing.path().join(name).to_str().expect("utf-8").to_string();
    assert_loaded(&load(&[&path("base.csv"), "--dest", lake_path, "--table", "sales.orders"]));
    let commits = delta_commits_under(lake.dir.path()).len();

    let merge = [
        path("first.csv"),
        path("second.csv"),
        "--dest".into(),
        lake_path.into(),
        "--table".into(),
        "sales.orders".into(),
        "--mode".into(),
        "merge".into(),
        "--key".into(),
        "id".into(),
        "--merge-memory".into(),
        merge_memory.into(),
    ];
    let merge: Vec<&str> = merge.iter().map(String::as_str).collect();
    let printed = assert_loaded(&load(&merge));
    assert!(printed.contains("slices of the keys"), "read in several slices: {printed}");
    assert_eq!(delta_commits_under(lake.dir.path()).len() - commits, 1, "one commit: {printed}");
    let url = lake.table_url(&TableId::new("sales", "orders"));
    let landed = read_rows(&url, &["id", "name", "amount"]).await;
    assert_eq!(landed.len(), expected.len(), "one row per key");
    assert!(landed == expected, "the upsert: {}", crate::support::connector_process::difference(&expected, &landed));

    let ledger = python(
        r#"
import glob, json, sys
records = [json.loads(line) for name in glob.glob(sys.argv[1] + "/_connector/files/*/*.jsonl") for line in open(name)]
print(sorted(record["path"].rsplit("/", 1)[1] for record in records))
"#,
        &[url.to_file_path().expect("local").to_str().expect("utf-8")],
    );
    assert_eq!(ledger.trim(), "['base.csv', 'first.csv', 'second.csv']", "each file recorded once");

    assert_loaded(&load(&merge));
    assert!(read_rows(&url, &["id", "name", "amount"]).await == expected, "merged again: the same rows");
    (printed, lake, expected)
}
