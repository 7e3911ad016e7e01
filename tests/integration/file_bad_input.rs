//! Files that cannot be read, and values that do not fit, as a user meets them: strict mode stops at the first
//! value that does not fit naming where it is; `ignore_corrupt_files` skips an unreadable file, shows it in
//! status and reads it again once it is fixed; a CSV line the parser refuses names its file. Files written by
//! Python's csv and json modules and gzip.

use std::path::Path;
use std::process::Command;

use crate::files::{assert_synced, python, rows_per_file, sync_files, table_url};
use crate::support::delta::{TempLake, delta_commits_under, read_rows};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// `id,amount` rows `first..first + count` as CSV, written by Python's csv module.
fn write_amounts(path: &Path, first: usize, count: usize) {
    python(
        r#"
import csv, sys
path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "amount"])
    for i in range(first, first + count):
        writer.writerow([i, f"{i}.5"])
"#,
        &[path.to_str().expect("utf-8"), &first.to_string(), &count.to_string()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_stops_at_the_first_value_that_does_not_fit_naming_its_file_row_and_column() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(
        r#"
import csv, json, sys
root = sys.argv[1]
with open(f"{root}/a.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerows([["id", "amount"], [1, "2.5"], [2, "3.5"], [3, "oops"], [4, "bad too"]])
with open(f"{root}/b.jsonl", "w") as f:
    f.write(json.dumps({"id": 1}) + "\n\n")
    f.write(json.dumps({"id": "two"}) + "\n")
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    let csv = landing.path().join("a.csv");
    let hints = ["--schema-hints", "amount double"];
    let strict = [hints.as_slice(), &["--strict"]].concat();
    let output = sync_files(csv.to_str().expect("utf-8"), lake.dir.path(), "amounts", &strict);
    assert!(!output.status.success(), "strict mode must stop at `oops`");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("row 3 of file://{} (counting rows from 1, the header not counted)", csv.display());
    assert!(stderr.contains(&expected), "names the file and the row: {stderr}");
    assert!(stderr.contains(r#"column `amount` (double) cannot hold "oops""#), "and the column and value: {stderr}");
    assert!(stderr.contains("strict mode stops"), "{stderr}");
    assert!(delta_commits_under(lake.dir.path()).is_empty(), "nothing committed");

    // Without --strict the same file lands, the value rescued.
    assert_synced(&sync_files(csv.to_str().expect("utf-8"), lake.dir.path(), "amounts", &hints));
    let rows = read_rows(&table_url(&lake, "amounts"), &["id", "amount"]).await;
    assert_eq!(rows, ["1|2.5", "2|3.5", "3|∅", "4|∅"]);

    // JSON lines: a value of another type, its row counted without the blank line.
    let json = landing.path().join("b.jsonl");
    let flags = ["--strict", "--schema-hints", "id bigint"];
    let output = sync_files(json.to_str().expect("utf-8"), lake.dir.path(), "events", &flags);
    assert!(!output.status.success(), "strict mode must stop at the unknown field");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("row 2 of file://{}", json.display())), "{stderr}");
    assert!(stderr.contains(r#"column `id` (bigint) cannot hold "two""#), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_skipped_with_ignore_corrupt_files_shown_by_status_and_read_again_once_fixed() {
    let root = tempfile::tempdir().expect("a directory");
    let landing = root.path().join("landing");
    std::fs::create_dir(&landing).expect("landing");
    let lake = TempLake::new();
    write_amounts(&landing.join("a.csv"), 0, 500);
    write_amounts(&landing.join("c.csv"), 2000, 500);
    // b.csv.gz: a gzip stream cut in half, as an upload that stopped.
    write_amounts(&landing.join("b.csv"), 1000, 5000);
    assert!(Command::new("gzip").arg("-q").arg(landing.join("b.csv")).status().expect("gzip runs").success());
    let gzipped = landing.join("b.csv.gz");
    let whole = std::fs::read(&gzipped).expect("b.csv.gz");
    std::fs::write(&gzipped, &whole[..whole.len() / 2]).expect("cut short");

    let config = root.path().join("pipelines.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.landing]\nkind = \"files\"\npath = \"{}\"\nignore_corrupt_files = true\n\n[[pipelines]]\n\
             name = \"amounts\"\nprofile = \"landing\"\ntables = [\"raw.amounts\"]\ndest = \"{}\"\n\
             schedule = \"every 5m\"\n",
            landing.display(),
            lake.dir.path().display()
        ),
    )
    .expect("pipelines.toml");
    let config = config.to_str().expect("utf-8");
    let run = || Command::new(CONNECTOR).args(["run", "--config", config, "--once"]).output().expect("run");
    let output = run();
    assert_synced(&output);
    let url = table_url(&lake, "amounts");
    let per_file = rows_per_file(&url).await;
    let landed: Vec<(&str, usize)> =
        per_file.iter().map(|(path, &rows)| (path.rsplit('/').next().expect("a name"), rows)).collect();
    assert_eq!(landed, [("a.csv", 500), ("c.csv", 500)], "the good files whole, nothing of the corrupt one");
    let logged = String::from_utf8_lossy(&output.stderr);
    assert!(logged.contains("b.csv.gz") && logged.contains("skipped"), "the skip is logged: {logged}");

    let status = || {
        let output = Command::new(CONNECTOR).args(["status", "--config", config, "--json"]).output().expect("status");
        assert_synced(&output);
        let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        document["files"][0].clone()
    };
    let files = status();
    assert_eq!(files["ingested_files"], 2, "{files}");
    assert_eq!(files["outstanding_files"], 0, "a skipped file is not outstanding: {files}");
    let skipped = files["skipped_files"].as_array().expect("skipped files").clone();
    assert_eq!(skipped.len(), 1, "{files}");
    assert_eq!(skipped[0]["path"], format!("file://{}", gzipped.display()), "{files}");
    assert!(skipped[0]["reason"].as_str().is_some_and(|reason| reason.contains("CSV")), "{files}");
    let printed = Command::new(CONNECTOR).args(["status", "--config", config]).output().expect("status");
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("skipped, unreadable: ") && printed.contains("b.csv.gz"), "{printed}");

    // Listed again unchanged: not read again. Fixed in place: read, once.
    assert_synced(&run());
    assert_eq!(rows_per_file(&url).await.len(), 2);
    std::fs::write(&gzipped, &whole).expect("the whole file uploaded again");
    assert_synced(&run());
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.values().copied().collect::<Vec<_>>(), [500, 5000, 500], "{per_file:?}");
    let files = status();
    assert_eq!((files["ingested_files"].as_u64(), files["skipped_files"].as_array().map(Vec::len)), (Some(3), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_lines_fields_past_the_header_are_rescued_or_named_in_strict_mode() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(
        r#"
import csv, sys
with open(sys.argv[1], "w", newline="") as f:
    csv.writer(f).writerows([["id", "amount"], [1, "2.5"], [2, "3.5", "surplus", "more, quoted"], [3, "4.5"]])
"#,
        &[landing.path().join("b.csv").to_str().expect("utf-8")],
    );
    let landing_path = landing.path().to_str().expect("utf-8");
    let output = sync_files(landing_path, lake.dir.path(), "amounts", &["--strict"]);
    assert!(!output.status.success(), "strict mode stops at the surplus fields");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("row 2 of") && stderr.contains("has no column `_c2`"), "names the row: {stderr}");
    assert!(delta_commits_under(lake.dir.path()).is_empty(), "nothing committed");

    assert_synced(&sync_files(landing_path, lake.dir.path(), "amounts", &[]));
    let rows = read_rows(&table_url(&lake, "amounts"), &["id", "amount", "_rescued_data"]).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0].as_str(), rows[2].as_str()), ("1|2.5|∅", "3|4.5|∅"));
    let rescued: serde_json::Value =
        serde_json::from_str(rows[1].strip_prefix("2|3.5|").expect("row 2 keeps its columns")).expect("JSON");
    assert_eq!((rescued["_c2"].as_str(), rescued["_c3"].as_str()), (Some("surplus"), Some("more, quoted")));
}
