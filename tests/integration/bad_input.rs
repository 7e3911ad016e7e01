//! The bad input catalogue (`docs/bad-input.md`): each mistake a user can make in flags, `pipelines.toml`,
//! URLs, server state, API answers and data values ends in one error line that says what is wrong, where, and
//! what to do, with the exit code `docs/configuration.md` documents, and nothing committed to the lake or acknowledged to the
//! source. Each catalogue row names the test below that proves it; table-driven tests name their cases by the
//! row's words.

use std::path::Path;
use std::process::{Command, Output};

use connector_core::deltalake::kernel::{DataType as DeltaType, StructField};
use connector_core::schema::TableId;
use saas_emulator::{Emulator, EmulatorOptions, Fault, FaultKind, STRIPE_API_KEY, Service};

use crate::support::connector_process::assert_refused;
use crate::support::delta::{TempLake, delta_commits_under};
use crate::support::servers::{MySqlDatabase, PostgresDatabase, PrivateMariaDb, PrivatePostgres, postgres};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// Exit code of a mistake the user must fix in the command or configuration.
const FIX_THE_CONFIGURATION: i32 = 2;
/// Exit code of every other failure (the source, the destination, the state of either).
const FAILED: i32 = 1;
/// Exit code when the source no longer holds the changes the tables need: they must be copied anew.
const HISTORY_LOST: i32 = 3;

/// One bad input: the connector's arguments and environment, and what its refusal must say.
struct Case {
    /// What is wrong, in the catalogue's words.
    input: &'static str,
    args: Vec<String>,
    environment: Vec<(&'static str, String)>,
    code: i32,
    says: Vec<String>,
}

impl Case {
    fn new(input: &'static str, args: &[&str], code: i32, says: &[&str]) -> Self {
        Case {
            input,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            environment: Vec::new(),
            code,
            says: says.iter().map(|fragment| fragment.to_string()).collect(),
        }
    }

    fn with_env(mut self, name: &'static str, value: &str) -> Self {
        self.environment.push((name, value.to_string()));
        self
    }

    fn run(&self) -> Output {
        let mut command = Command::new(CONNECTOR);
        command.args(&self.args).env("CONNECTOR_LOG", "warn");
        for variable in ["STRIPE_API_KEY", "CONNECTOR_POSTGRES_URL", "CONNECTOR_MYSQL_URL", "CONNECTOR_STATUS_URL"] {
            command.env_remove(variable);
        }
        command.envs(self.environment.iter().map(|(name, value)| (name, value)));
        command.output().expect("run connector")
    }

    /// Runs the case and checks its refusal, and that `lake` holds no Delta commit afterwards.
    fn assert_refused_writing_nothing(&self, lake: &Path) -> String {
        let says: Vec<&str> = self.says.iter().map(String::as_str).collect();
        let stderr = assert_refused(self.input, &self.run(), self.code, &says);
        assert_eq!(
            delta_commits_under(lake),
            Vec::<std::path::PathBuf>::new(),
            "{}: something was committed",
            self.input
        );
        stderr
    }
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Flags and URLs refused before any connection: no server is involved, so nothing can be acknowledged; the lake
/// must stay without a commit.
#[test]
fn bad_input_command_line_mistakes_name_the_flag_and_write_nothing() {
    let lake = TempLake::new();
    let dest = path_text(lake.dir.path());
    // Nothing listens on port 1: a case reaching the network fails differently from what it asserts.
    let pg = "postgres://app:secret@127.0.0.1:1/shop";
    let my = "mysql://app:secret@127.0.0.1:1";
    let pg_sync = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["sync", "postgres", "--url", pg, "--tables", "public.orders", "--dest", dest]
            .iter()
            .map(|arg| arg.to_string())
            .collect();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let mut cases = vec![
        Case::new(
            "--dest missing",
            &["sync", "postgres", "--url", pg, "--tables", "public.orders"],
            2,
            &["--dest <DEST>"],
        ),
        Case::new(
            "unknown source kind on the command line",
            &["sync", "oracle", "--dest", dest],
            2,
            &["unrecognized subcommand 'oracle'"],
        ),
        Case::new(
            "--tables and --schemas both missing",
            &["sync", "postgres", "--url", pg, "--dest", dest],
            2,
            &["--tables <TABLES>"],
        ),
    ];
    let mut flag_cases: Vec<(&'static str, Vec<&str>, i32, Vec<&str>)> = vec![
        (
            "--batch-mib not a number",
            vec!["--batch-mib", "abc"],
            2,
            vec!["invalid value 'abc' for '--batch-mib <MIB>'"],
        ),
        ("--batch-mib negative", vec!["--batch-mib", "-1"], 2, vec!["unexpected argument '-1'"]),
        (
            "--batch-mib 0",
            vec!["--batch-mib", "0"],
            2,
            vec!["batch_mib (--batch-mib) = 0", "give a number of MiB from 1"],
        ),
        (
            "--batch-mib too large to count in bytes",
            vec!["--batch-mib", "99999999999999"],
            2,
            vec!["batch_mib (--batch-mib) = 99999999999999", "give a number of MiB from 1"],
        ),
        ("--copy-range-rows 0", vec!["--copy-range-rows", "0"], 2, vec!["copy_range_rows (--copy-range-rows) = 0"]),
        ("--copy-chunk-rows 0", vec!["--copy-chunk-rows", "0"], 2, vec!["copy_chunk_rows (--copy-chunk-rows) = 0"]),
        (
            "--delete-mode unknown",
            vec!["--delete-mode", "sometimes"],
            2,
            vec!["invalid value 'sometimes' for '--delete-mode", "[possible values: hard, soft, history]"],
        ),
        (
            "--pipeline name with spaces or capitals",
            vec!["--pipeline", "Shop Orders"],
            2,
            vec!["--pipeline: `Shop Orders` must be 1 to 48 characters of a-z, 0-9, `_` or `-`"],
        ),
        (
            "--once with --continuous",
            vec!["--once", "--continuous"],
            2,
            vec!["'--once' cannot be used with '--continuous'"],
        ),
    ];
    for (input, extra, code, says) in flag_cases.drain(..) {
        cases.push(Case {
            input,
            args: pg_sync(&extra),
            environment: vec![],
            code,
            says: says.iter().map(|s| s.to_string()).collect(),
        });
    }
    let url_cases: Vec<(&'static str, &str, &str, Vec<&str>)> = vec![
        (
            "PostgreSQL URL not a URL",
            "postgres",
            "not-a-url",
            vec!["not a URL (postgres://user:password@host:5432/database)"],
        ),
        (
            "PostgreSQL URL without a database",
            "postgres",
            "postgres://app:secret@127.0.0.1:1",
            vec!["names no database; add it to the path"],
        ),
        (
            "PostgreSQL sslmode unknown",
            "postgres",
            "postgres://app:secret@127.0.0.1:1/shop?sslmode=sometimes",
            vec!["sslmode `sometimes` is not one of disable, prefer, require, verify-ca, verify-full"],
        ),
        (
            "MySQL ssl-mode unknown",
            "mysql",
            "mysql://app:secret@127.0.0.1:1?ssl-mode=sometimes",
            vec!["ssl-mode `sometimes` is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"],
        ),
        (
            "MySQL ssl-ca file missing",
            "mysql",
            "mysql://app:secret@127.0.0.1:1?ssl-mode=VERIFY_CA&ssl-ca=/nonexistent/ca.pem",
            vec!["ssl-ca `/nonexistent/ca.pem`: no such file"],
        ),
        (
            "MySQL URL given a PostgreSQL URL",
            "mysql",
            "postgres://app:secret@127.0.0.1:1/shop",
            vec!["is not a MySQL connection URL (mysql://user:password@host:3306)"],
        ),
    ];
    for (input, kind, url, says) in url_cases {
        let table = if kind == "postgres" { "public.orders" } else { "shop.orders" };
        let mut case = Case::new(input, &["sync", kind, "--url", url, "--tables", table, "--dest", dest], 2, &says);
        case.says.push("url `".into());
        cases.push(case);
    }
    cases.extend([
        Case::new(
            "table name not schema.table (PostgreSQL)",
            &["sync", "postgres", "--url", pg, "--tables", "orders", "--dest", dest],
            2,
            &["`orders` is not a qualified table name: write it as `schema.table` (for example `public.orders`)"],
        ),
        Case::new(
            "table name not database.table (MySQL)",
            &["sync", "mysql", "--url", my, "--tables", "orders", "--dest", dest],
            2,
            &["`orders` is not a qualified table name"],
        ),
        Case::new(
            "MySQL --server-id 0",
            &["sync", "mysql", "--url", my, "--tables", "shop.orders", "--dest", dest, "--server-id", "0"],
            2,
            &["server_id must be 1 or more"],
        ),
        Case::new(
            "Stripe API key not set",
            &["sync", "stripe", "--streams", "customers", "--dest", dest],
            2,
            &["no credentials; set STRIPE_API_KEY"],
        ),
        Case::new(
            "--requests-per-second negative",
            &["sync", "stripe", "--streams", "customers", "--dest", dest, "--requests-per-second=-5"],
            2,
            &["requests_per_second must be a positive number, not -5"],
        )
        .with_env("STRIPE_API_KEY", "sk_test"),
        Case::new(
            "--base-url not http(s)",
            &["sync", "stripe", "--streams", "customers", "--dest", dest, "--base-url", "ftp://example.com/"],
            2,
            &["base_url: `ftp://example.com/` must be an http:// or https:// URL"],
        )
        .with_env("STRIPE_API_KEY", "sk_test"),
        Case::new(
            "--base-url not a URL",
            &["sync", "stripe", "--streams", "customers", "--dest", dest, "--base-url", "not a url"],
            2,
            &["base_url: `not a url` is not a URL"],
        )
        .with_env("STRIPE_API_KEY", "sk_test"),
        Case::new(
            "destination scheme unsupported",
            &["sync", "postgres", "--url", pg, "--tables", "public.orders", "--dest", "ftp://host/lake"],
            2,
            &["destination scheme `ftp://` is not supported; use a local path, file:// or s3://"],
        ),
        Case::new("--log filter invalid", &["--log", "nonsense=[", "status", "--dest", dest], 2, &["--log"]),
        Case::new(
            "status of a directory that does not exist",
            &["status", "--dest", "/nonexistent/lake"],
            2,
            &["--dest /nonexistent/lake: no such directory"],
        ),
        Case::new(
            "status --url without --pipeline",
            &["status", "--dest", dest, "--url", pg],
            2,
            &["--pipeline <PIPELINE>"],
        ),
        Case::new(
            "resync of a table the lake does not hold",
            &["resync", "--dest", dest, "--pipeline", "test", "--table", "public.orders"],
            2,
            &["--table public.orders: there is no Delta table for it under"],
        ),
        Case::new(
            "resync of an unqualified table",
            &["resync", "--dest", dest, "--pipeline", "test", "--table", "orders"],
            2,
            &["`orders` is not a qualified table name"],
        ),
        Case::new("drop without a source URL", &["drop", "--pipeline", "test"], 2, &["--url <URL>"]),
    ]);
    for case in &cases {
        let stderr = case.assert_refused_writing_nothing(lake.dir.path());
        assert!(!stderr.contains("secret@"), "{}: the password was printed: {stderr}", case.input);
    }

    // The destination itself: a file, or a directory nobody may create.
    let file = lake.dir.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write file");
    for (input, dest, says) in [
        ("destination path is a file", file.clone(), "cannot create the destination directory"),
        ("destination under a file", file.join("lake"), "cannot create the destination directory"),
        (
            "destination not writable",
            Path::new("/proc/lake").to_path_buf(),
            "cannot create the destination directory `/proc/lake`",
        ),
    ] {
        let case = Case::new(
            input,
            &["sync", "postgres", "--url", pg, "--tables", "public.orders", "--dest", path_text(&dest)],
            2,
            &[says],
        );
        case.assert_refused_writing_nothing(lake.dir.path());
    }
}

/// `[profiles.db]` of `kind` with `settings`, and one pipeline `shop` of `tables` into `dest` every 15 minutes;
/// `pipeline_extra` adds lines to the pipeline.
fn pipelines_text(kind: &str, settings: &str, tables: &str, dest: &Path, pipeline_extra: &str) -> String {
    format!(
        "[profiles.db]\nkind = \"{kind}\"\n{settings}\n\n[[pipelines]]\nname = \"shop\"\nprofile = \"db\"\n\
         tables = [{tables}]\ndest = \"{}\"\nschedule = \"15m\"\n{pipeline_extra}\n",
        dest.display()
    )
}

/// `connector sync files` mistakes: flags and options refused before anything is written, and a file that cannot
/// be read stopping its batch with nothing committed.
#[test]
fn bad_input_files_mistakes_name_the_flag_or_the_file_and_write_nothing() {
    let lake = TempLake::new();
    let dest = path_text(lake.dir.path());
    let landing = tempfile::tempdir().expect("landing directory");
    std::fs::write(landing.path().join("a.csv"), "id,name\n1,one\n").expect("a CSV file");
    let csv_dir = path_text(landing.path()).to_string();
    let untyped = tempfile::tempdir().expect("a directory with a file of no known format");
    std::fs::write(untyped.path().join("README"), "id\n1\n").expect("a file without extension");
    let corrupt = tempfile::tempdir().expect("a directory with a truncated gzip file");
    let mut gzip = Vec::new();
    {
        let mut encoder = std::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip runs");
        use std::io::Write;
        encoder.stdin.take().expect("stdin").write_all("id\n1\n2\n".repeat(1000).as_bytes()).expect("write");
        gzip.extend(encoder.wait_with_output().expect("gzip output").stdout);
    }
    std::fs::write(corrupt.path().join("b.csv.gz"), &gzip[..gzip.len() / 2]).expect("a truncated gzip file");
    let keyless = tempfile::tempdir().expect("a directory with a row without a key value");
    std::fs::write(keyless.path().join("c.csv"), "id,name\n1,one\n,none\n").expect("a CSV file with an empty id");
    let load = |path: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["load", path, "--table", "raw.orders", "--dest", dest].map(String::from).to_vec();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let a_csv = format!("{csv_dir}/a.csv");
    let files = |path: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> =
            ["sync", "files", "--path", path, "--table", "raw.orders", "--dest", dest].map(String::from).to_vec();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let cases: Vec<(&'static str, Vec<String>, i32, Vec<&str>)> = vec![
        (
            "files: --path that does not exist",
            files("/nonexistent/landing", &[]),
            2,
            vec!["cannot read the files at `/nonexistent/landing`; give --path (`path`) an existing directory or file"],
        ),
        (
            "files: --table without its namespace",
            ["sync", "files", "--path", &csv_dir, "--table", "orders", "--dest", dest].map(String::from).to_vec(),
            2,
            vec!["`orders` is not a qualified table name: write it as `schema.table`"],
        ),
        (
            "files: unknown --format",
            files(&csv_dir, &["--format", "xml"]),
            2,
            vec!["format `xml` is not supported; use one of csv, tsv, json (JSON lines), parquet"],
        ),
        (
            "files: a file whose format its name does not tell",
            files(path_text(untyped.path()), &[]),
            2,
            vec!["cannot tell the format of", "README", "set --format (`format`)"],
        ),
        (
            "files: --delimiter of two characters",
            files(&csv_dir, &["--delimiter", ";;"]),
            2,
            vec!["delimiter `;;` is not one ASCII character"],
        ),
        (
            "files: --glob not a pattern",
            files(&csv_dir, &["--glob", "[a"]),
            2,
            vec!["glob `[a` is not a valid pattern"],
        ),
        (
            "files: --modified-after not a time",
            files(&csv_dir, &["--modified-after", "yesterday"]),
            2,
            vec!["modified_after `yesterday` is not an RFC 3339 time"],
        ),
        (
            "files: --schema-evolution unknown",
            files(&csv_dir, &["--schema-evolution", "sometimes"]),
            2,
            vec!["unknown variant `sometimes`"],
        ),
        (
            "files: --schema-hints with an unknown type",
            files(&csv_dir, &["--schema-hints", "id money"]),
            2,
            vec!["schema hint `id money`: `money` is not a known type"],
        ),
        (
            "files: --poll-interval not a duration",
            files(&csv_dir, &["--poll-interval", "soon"]),
            2,
            vec!["poll_interval `soon` is not a duration"],
        ),
        (
            "files: --full-listing-interval not a duration",
            files(&csv_dir, &["--incremental-listing", "--full-listing-interval", "hourly"]),
            2,
            vec!["full_listing_interval `hourly` is not a duration"],
        ),
        (
            "files: --queue-url for local files",
            files(&csv_dir, &["--queue-url", "http://127.0.0.1:1/queue"]),
            2,
            vec!["queue_url (--queue-url) takes the S3 event notifications of a bucket", "give --path s3://"],
        ),
        (
            "files: --clean-source move without a destination",
            files(&csv_dir, &["--clean-source", "move"]),
            2,
            vec!["clean_source = \"move\" needs clean_source_move_to (--clean-source-move-to)"],
        ),
        (
            "files: --clean-source-move-to inside the path",
            files(&csv_dir, &["--clean-source", "move", "--clean-source-move-to", &format!("{csv_dir}/archive")]),
            2,
            vec!["is inside the path whose files it archives"],
        ),
        (
            "files: a truncated gzip file",
            files(path_text(corrupt.path()), &[]),
            1,
            vec!["cannot read file://", "b.csv.gz", "nothing of its batch was committed: fix or remove the file"],
        ),
        (
            "load: --mode merge without --key",
            load(&a_csv, &["--mode", "merge"]),
            2,
            vec!["--mode merge needs --key: the columns that identify a row, such as --key id"],
        ),
        (
            "load: --key without --mode merge",
            load(&a_csv, &["--mode", "append", "--key", "id"]),
            2,
            vec!["--key is only for --mode merge", "remove --key, or add --mode merge"],
        ),
        (
            "load: --key naming no column of the files",
            load(&a_csv, &["--mode", "merge", "--key", "order_id"]),
            2,
            vec![
                "--key column `order_id` is not a column of the files loaded into raw.orders (columns found: id, name",
            ],
        ),
        (
            "load: a row without a key value in a merge load",
            load(path_text(keyless.path()), &["--mode", "merge", "--key", "id"]),
            1,
            vec!["c.csv, row 1 (from 0, a header not counted): key column `id` is empty", "nothing was committed"],
        ),
    ];
    for (input, args, code, says) in cases {
        let case = Case {
            input,
            args,
            environment: vec![],
            code,
            says: says.iter().map(|fragment| fragment.to_string()).collect(),
        };
        case.assert_refused_writing_nothing(lake.dir.path());
    }
}

/// Mistakes in `pipelines.toml`, refused by `connector run --check` (which connects nowhere) or, for what is
/// only read when a pipeline starts, by `connector run --once`, before anything is written.
#[test]
fn bad_input_pipelines_file_mistakes_name_the_key_and_write_nothing() {
    let lake = TempLake::new();
    let dest = lake.dir.path();
    let config = lake.dir.path().join("pipelines.toml");
    let config_text = path_text(&config).to_string();
    let postgres = "url = \"postgres://app:secret@127.0.0.1:1/shop\"";
    let mysql = "url = \"mysql://app:secret@127.0.0.1:1\"";
    let stripe = "base_url = \"http://127.0.0.1:1/\"\nauth = { type = \"bearer\", token = { env = \"TEST_KEY\" } }";
    let orders = "\"public.orders\"";
    let valid = pipelines_text("postgres", postgres, orders, dest, "");
    // (what is wrong, the file, `--check` or `--once`, what the refusal must say)
    let cases: Vec<(&'static str, String, &str, Vec<&str>)> = vec![
        ("pipelines file not valid TOML", format!("{valid}name = "), "--check", vec!["is not a valid pipelines file"]),
        (
            "unknown top-level section",
            format!("{valid}[pipeline]\nx = 1\n"),
            "--check",
            vec!["unknown field `pipeline`"],
        ),
        (
            "unknown pipeline key",
            pipelines_text("postgres", postgres, orders, dest, "schedul = \"1h\""),
            "--check",
            vec!["unknown field `schedul`"],
        ),
        (
            "pipeline without dest",
            valid.replace(&format!("dest = \"{}\"\n", dest.display()), ""),
            "--check",
            vec!["missing field `dest`"],
        ),
        (
            "unknown source kind in pipelines.toml",
            pipelines_text("oracle", postgres, orders, dest, ""),
            "--check",
            vec!["pipeline `shop`: source kind `oracle` is not available in this build (available: postgres, mysql"],
        ),
        (
            "pipeline names a profile not defined",
            valid.replace("profile = \"db\"", "profile = \"shop_db\""),
            "--check",
            vec!["pipelines[0] (`shop`).profile: no profile `shop_db` (defined: db); add a [profiles.shop_db] section"],
        ),
        (
            "two pipelines with one name",
            format!("{valid}{}", &valid[valid.find("[[pipelines]]").expect("pipeline")..]),
            "--check",
            vec!["pipelines[1] (`shop`).name: another pipeline has this name; names must be unique"],
        ),
        (
            "pipeline name with capitals",
            valid.replace("name = \"shop\"", "name = \"Shop\""),
            "--check",
            vec!["pipelines[0] (`Shop`).name: `Shop` must be 1 to 48 characters"],
        ),
        (
            "pipeline without tables",
            pipelines_text("postgres", postgres, "", dest, ""),
            "--check",
            vec!["(`shop`).tables: list at least one table"],
        ),
        (
            "table in pipelines.toml not schema.table",
            pipelines_text("postgres", postgres, "\"orders\"", dest, ""),
            "--check",
            vec!["`orders` is not a qualified table name"],
        ),
        (
            "schedule not a schedule",
            valid.replace("\"15m\"", "\"sometimes\""),
            "--check",
            vec!["(`shop`).schedule: `sometimes` is not a schedule"],
        ),
        (
            "negative schedule interval",
            valid.replace("\"15m\"", "\"-5m\""),
            "--check",
            vec!["(`shop`).schedule: `-5m` is not a schedule"],
        ),
        (
            "schedule interval under a second",
            valid.replace("\"15m\"", "\"500ms\""),
            "--check",
            vec!["interval `500ms` is shorter than 1s; use `continuous` to stream changes"],
        ),
        (
            "cron pattern invalid",
            valid.replace("\"15m\"", "\"cron: 61 * * * *\""),
            "--check",
            vec!["(`shop`).schedule: `61 * * * *` is not a cron pattern"],
        ),
        (
            "${VAR} not set",
            valid.replace("app:secret@", "app:${NO_SUCH_PASSWORD}@"),
            "--check",
            vec![
                "profiles.db.url: environment variable `NO_SUCH_PASSWORD` is not set; export it or write `${NO_SUCH_PASSWORD:-default}`",
            ],
        ),
        (
            "${ without a closing }",
            valid.replace("app:secret@", "app:${NO_SUCH_PASSWORD@"),
            "--check",
            vec!["profiles.db.url: `${` without a closing `}`"],
        ),
        (
            "unknown table option",
            pipelines_text("postgres", postgres, orders, dest, "options = { delete_mod = \"soft\" }"),
            "--check",
            vec!["(`shop`).options: invalid", "unknown field `delete_mod`"],
        ),
        (
            "delete_mode unknown",
            pipelines_text("postgres", postgres, orders, dest, "options = { delete_mode = \"sometimes\" }"),
            "--check",
            vec!["(`shop`).options: invalid", "unknown variant `sometimes`"],
        ),
        (
            "tables_options for a table not in tables",
            pipelines_text(
                "postgres",
                postgres,
                orders,
                dest,
                "tables_options.\"public.items\" = { delete_mode = \"soft\" }",
            ),
            "--check",
            vec!["(`shop`).tables_options.\"public.items\": `public.items` is not in this pipeline's `tables`"],
        ),
        (
            "unknown PostgreSQL profile key",
            pipelines_text("postgres", &format!("{postgres}\nslots = \"x\""), orders, dest, ""),
            "--check",
            vec!["pipeline `shop` (source `postgres`): invalid PostgreSQL settings", "unknown field `slots`"],
        ),
        (
            "batch_mib negative in pipelines.toml",
            pipelines_text("postgres", &format!("{postgres}\nbatch_mib = -1"), orders, dest, ""),
            "--check",
            vec!["invalid PostgreSQL settings", "batch_mib"],
        ),
        (
            "batch_mib 0 in pipelines.toml",
            pipelines_text("mysql", &format!("{mysql}\nbatch_mib = 0"), "\"shop.orders\"", dest, ""),
            "--check",
            vec!["pipeline `shop` (source `mysql`): batch_mib (--batch-mib) = 0 is not a memory budget"],
        ),
        (
            "PostgreSQL url not a string",
            pipelines_text("postgres", "url = 5432", orders, dest, ""),
            "--check",
            vec!["invalid PostgreSQL settings"],
        ),
        (
            "slot name invalid",
            pipelines_text("postgres", &format!("{postgres}\nslot = \"Bad-Slot\""), orders, dest, ""),
            "--check",
            vec!["slot `Bad-Slot`"],
        ),
        (
            "unknown MySQL profile key",
            pipelines_text("mysql", &format!("{mysql}\nserver-id = 5"), "\"shop.orders\"", dest, ""),
            "--check",
            vec!["invalid MySQL settings", "unknown field `server-id`"],
        ),
        (
            "negative duration",
            pipelines_text("stripe", &format!("{stripe}\nmax_backoff = \"-5s\""), "\"customers\"", dest, ""),
            "--check",
            vec!["max_backoff = \"-5s\" is not a duration (write 30s, 5m, 1h)"],
        ),
        (
            "duration without a unit",
            pipelines_text("stripe", &format!("{stripe}\nrequest_timeout = \"30\""), "\"customers\"", dest, ""),
            "--check",
            vec!["request_timeout = \"30\" is not a duration (write 30s, 5m, 1h)"],
        ),
        (
            "max_response_bytes 0",
            pipelines_text("stripe", &format!("{stripe}\nmax_response_bytes = 0"), "\"customers\"", dest, ""),
            "--check",
            vec!["max_response_bytes must be a positive number of bytes"],
        ),
        (
            "unknown auth type",
            pipelines_text("stripe", &stripe.replace("bearer", "kerberos"), "\"customers\"", dest, ""),
            "--check",
            vec!["invalid settings", "unknown variant `kerberos`"],
        ),
        (
            "secrets file missing",
            pipelines_text(
                "stripe",
                &stripe.replace("{ env = \"TEST_KEY\" }", "{ file = \"/nonexistent/stripe-key\" }"),
                "\"customers\"",
                dest,
                "",
            ),
            "--once",
            vec!["cannot read the secret file /nonexistent/stripe-key"],
        ),
        (
            "Salesforce api_version malformed",
            pipelines_text("salesforce", &format!("{stripe}\napi_version = \"61\""), "\"Account\"", dest, ""),
            "--check",
            vec!["api_version = \"61\" is not a Salesforce API version; write it like \"v61.0\""],
        ),
        (
            "declarative REST profile without base_url",
            pipelines_text(
                "rest",
                "auth = { type = \"bearer\", token = { env = \"TEST_KEY\" } }",
                "\"items\"",
                dest,
                "",
            ),
            "--check",
            vec!["set `base_url`"],
        ),
    ];
    for (input, text, mode, says) in cases {
        std::fs::write(&config, &text).expect("write config");
        let case = Case::new(input, &["run", "--config", &config_text, mode], 2, &says).with_env("TEST_KEY", "sk_test");
        case.assert_refused_writing_nothing(lake.dir.path());
    }

    std::fs::write(&config, &valid).expect("write config");
    for case in [
        Case::new(
            "pipelines file missing",
            &["run", "--config", "/nonexistent/pipelines.toml", "--check"],
            2,
            &["cannot read the config file /nonexistent/pipelines.toml"],
        ),
        Case::new(
            "run --pipeline not in the file",
            &["run", "--config", &config_text, "--pipeline", "nope", "--check"],
            2,
            &["--pipeline nope: no such pipeline in", "(defined: shop)"],
        ),
        Case::new(
            "resync --pipeline not in the file",
            &["resync", "--config", &config_text, "--pipeline", "nope", "--table", "public.orders"],
            2,
            &["--pipeline nope: no such pipeline in"],
        ),
    ] {
        case.assert_refused_writing_nothing(lake.dir.path());
    }
}

/// `db`'s URL with another user, password or database.
fn with_login(url: &str, user: &str, password: &str, database: Option<&str>) -> String {
    let mut url = url::Url::parse(url).expect("url");
    url.set_username(user).expect("user");
    url.set_password(Some(password)).expect("password");
    if let Some(database) = database {
        url.set_path(&format!("/{database}"));
    }
    url.into()
}

/// Every replication slot with its confirmed position, and every publication: what a refused sync must leave
/// as it found it.
async fn postgres_replication_state(db: &PostgresDatabase) -> Vec<Vec<Option<String>>> {
    db.query(
        "SELECT 'slot', slot_name::text, plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots \
         UNION ALL SELECT 'publication', pubname::text, NULL, NULL FROM pg_publication ORDER BY 1, 2",
    )
    .await
}

/// `connector sync <kind> --url … --dest <lake> --pipeline …` and the table `selection` (`--tables …`).
fn database_sync(kind: &str, url: &str, pipeline: &str, lake: &Path, selection: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["sync", kind, "--url", url, "--dest", path_text(lake), "--pipeline", pipeline]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
    args.extend(selection.iter().map(|arg| arg.to_string()));
    args
}

fn postgres_sync(url: &str, pipeline: &str, lake: &Path, selection: &[&str]) -> Vec<String> {
    database_sync("postgres", url, pipeline, lake, selection)
}

/// Server states a sync checks before it creates anything: each refusal leaves no slot, no publication and no
/// Delta commit.
#[tokio::test]
async fn bad_input_postgres_server_states_are_refused_before_a_slot_or_a_table_exists() {
    let db = postgres().await;
    let (reader, blind) = (format!("reader_{}", db.name()), format!("blind_{}", db.name()));
    db.execute(&format!(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a'); \
         CREATE TABLE events (kind text); CREATE TABLE quiet (kind text); ALTER TABLE quiet REPLICA IDENTITY NOTHING; \
         CREATE SCHEMA empty; \
         CREATE ROLE {reader} LOGIN PASSWORD 'pw'; GRANT SELECT ON orders TO {reader}; \
         CREATE ROLE {blind} LOGIN REPLICATION PASSWORD 'pw'"
    ))
    .await;
    let url = db.url().to_string();
    let parsed = url::Url::parse(&url).expect("url");
    let (user, password) = (parsed.username().to_string(), parsed.password().unwrap_or_default().to_string());
    let orders = ["--tables", "public.orders"];
    // (what is wrong, the URL, the table selection, exit code, what the refusal says)
    type ServerCase<'a> = (&'static str, String, Vec<&'a str>, i32, Vec<String>);
    let cases: Vec<ServerCase> = vec![
        (
            "wrong password (PostgreSQL)",
            with_login(&url, &user, "wrong", None),
            orders.to_vec(),
            FAILED,
            vec![format!("password authentication failed for user \"{user}\"")],
        ),
        (
            "user does not exist (PostgreSQL)",
            with_login(&url, "nobody", "pw", None),
            orders.to_vec(),
            FAILED,
            vec!["password authentication failed for user \"nobody\"".into()],
        ),
        (
            "database does not exist (PostgreSQL)",
            with_login(&url, &user, &password, Some("nosuchdb")),
            orders.to_vec(),
            FAILED,
            vec!["database \"nosuchdb\" does not exist".into()],
        ),
        (
            "table does not exist (PostgreSQL)",
            url.clone(),
            vec!["--tables", "public.nosuch"],
            FIX_THE_CONFIGURATION,
            vec!["table public.nosuch does not exist (or this user cannot see it); check the name in --tables".into()],
        ),
        (
            "schema holds no tables",
            url.clone(),
            vec!["--schemas", "empty"],
            FIX_THE_CONFIGURATION,
            vec!["schemas empty hold no tables".into()],
        ),
        (
            "user without REPLICATION",
            with_login(&url, &reader, "pw", None),
            orders.to_vec(),
            FIX_THE_CONFIGURATION,
            vec![format!("user `{reader}` may not use replication; run `ALTER ROLE \"{reader}\" WITH REPLICATION`")],
        ),
        (
            "user without SELECT on the table",
            with_login(&url, &blind, "pw", None),
            orders.to_vec(),
            FIX_THE_CONFIGURATION,
            vec![
                "the connector's user cannot read public.orders; run `GRANT SELECT ON \"public\".\"orders\" TO <user>`"
                    .into(),
            ],
        ),
        (
            "table without key, REPLICA IDENTITY DEFAULT",
            url.clone(),
            vec!["--tables", "public.events"],
            FIX_THE_CONFIGURATION,
            vec![
                "public.events has no primary key and REPLICA IDENTITY DEFAULT".into(),
                "run `ALTER TABLE \"public\".\"events\" REPLICA IDENTITY FULL` (or add a primary key)".into(),
            ],
        ),
        (
            "table without key, REPLICA IDENTITY NOTHING",
            url.clone(),
            vec!["--tables", "public.quiet"],
            FIX_THE_CONFIGURATION,
            vec!["public.quiet has no primary key and REPLICA IDENTITY NOTHING".into()],
        ),
    ];
    let before = postgres_replication_state(&db).await;
    for (input, url, selection, code, says) in &cases {
        let lake = TempLake::new();
        let case = Case {
            input,
            args: postgres_sync(url, "bad", lake.dir.path(), selection),
            environment: vec![],
            code: *code,
            says: says.clone(),
        };
        let stderr = case.assert_refused_writing_nothing(lake.dir.path());
        assert!(!stderr.contains(":pw@") && !stderr.contains(":wrong@"), "{input}: the password was printed: {stderr}");
        assert_eq!(postgres_replication_state(&db).await, before, "{input}: a slot or publication changed");
    }

    // A slot of the pipeline's name that another tool made with another plugin is not taken over.
    db.execute("SELECT pg_create_logical_replication_slot('connector_bad', 'test_decoding')").await;
    let before = postgres_replication_state(&db).await;
    let lake = TempLake::new();
    Case {
        input: "slot of the pipeline's name with another plugin",
        args: postgres_sync(&url, "bad", lake.dir.path(), &orders),
        environment: vec![],
        code: FIX_THE_CONFIGURATION,
        says: vec!["replication slot connector_bad exists but is not a pgoutput logical slot; drop it".into()],
    }
    .assert_refused_writing_nothing(lake.dir.path());
    assert_eq!(postgres_replication_state(&db).await, before, "a slot or publication changed");
    db.execute("SELECT pg_drop_replication_slot('connector_bad')").await;

    // A slot of the pipeline's name in another database of the server.
    let (admin, connection) =
        tokio_postgres::connect(db.admin_url(), tokio_postgres::NoTls).await.expect("connect as admin");
    tokio::spawn(connection);
    admin.batch_execute("SELECT pg_create_logical_replication_slot('connector_bad', 'pgoutput')").await.expect("slot");
    let before = postgres_replication_state(&db).await;
    let lake = TempLake::new();
    Case {
        input: "slot of the pipeline's name in another database",
        args: postgres_sync(&url, "bad", lake.dir.path(), &orders),
        environment: vec![],
        code: FIX_THE_CONFIGURATION,
        says: vec!["replication slot connector_bad belongs to another database; use another pipeline name".into()],
    }
    .assert_refused_writing_nothing(lake.dir.path());
    assert_eq!(postgres_replication_state(&db).await, before, "a slot or publication changed");
    admin.batch_execute("SELECT pg_drop_replication_slot('connector_bad')").await.expect("drop slot");

    // Every slot the server allows is taken (the test server allows 32).
    let free: i64 = db
        .query_value(
            "SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)",
        )
        .await
        .parse()
        .expect("a count");
    db.execute(&format!(
        "SELECT pg_create_physical_replication_slot('filler_' || n) FROM generate_series(1, {free}) n"
    ))
    .await;
    let before = postgres_replication_state(&db).await;
    let lake = TempLake::new();
    Case {
        input: "no free replication slot",
        args: postgres_sync(&url, "bad", lake.dir.path(), &orders),
        environment: vec![],
        code: FIX_THE_CONFIGURATION,
        says: vec!["max_replication_slots is".into(), "raise it (`ALTER SYSTEM SET max_replication_slots =".into()],
    }
    .assert_refused_writing_nothing(lake.dir.path());
    assert_eq!(postgres_replication_state(&db).await, before, "a slot or publication changed");
    db.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'filler_%'")
        .await;
    db.execute(&format!("DROP OWNED BY {reader}; DROP ROLE {reader}; DROP ROLE {blind}")).await;
}

/// The lake's commits and the source's slots and publications, to compare before and after a refused run.
async fn postgres_progress(db: &PostgresDatabase, lake: &Path) -> (Vec<std::path::PathBuf>, Vec<Vec<Option<String>>>) {
    (delta_commits_under(lake), postgres_replication_state(db).await)
}

/// States that arise after pipelines have synced: each refusal moves neither the lake (no new commit) nor any
/// slot's confirmed position, so the changes it did not apply are still there for the fixed run.
#[tokio::test]
async fn bad_input_postgres_broken_state_after_a_sync_moves_neither_the_slot_nor_the_lake() {
    let db = postgres().await;
    db.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders SELECT g, 'n' FROM generate_series(1, 10) g; \
         CREATE TABLE prices (id int PRIMARY KEY, amount bigint); INSERT INTO prices VALUES (1, 5), (2, 7)",
    )
    .await;
    let (lake, other) = (TempLake::new(), TempLake::new());
    let url = db.url().to_string();
    for (pipeline, table) in [("shop-a", "public.orders"), ("typed", "public.prices")] {
        let output = Command::new(CONNECTOR)
            .args(postgres_sync(&url, pipeline, lake.dir.path(), &["--tables", table]))
            .output()
            .expect("run connector");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    // Changes the refused runs must leave unacknowledged.
    db.execute(
        "UPDATE orders SET note = 'unseen' WHERE id = 1; ALTER TABLE prices ALTER COLUMN amount TYPE text; \
         UPDATE prices SET amount = 'many' WHERE id = 1",
    )
    .await;
    let before = postgres_progress(&db, lake.dir.path()).await;
    let dest = path_text(lake.dir.path()).to_string();
    let cases = [
        Case::new(
            "second destination for one pipeline",
            &postgres_sync(&url, "shop-a", other.dir.path(), &["--tables", "public.orders"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            FIX_THE_CONFIGURATION,
            &["another pipeline name"],
        ),
        Case::new(
            "pipeline name whose slot collides with another's",
            &postgres_sync(&url, "shop_a", lake.dir.path(), &["--tables", "public.orders"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            FIX_THE_CONFIGURATION,
            &["`shop-a`", "`shop_a`"],
        ),
        Case::new(
            "column type changed incompatibly (PostgreSQL)",
            &postgres_sync(&url, "typed", lake.dir.path(), &["--tables", "public.prices"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            FAILED,
            &["amount", "connector resync --pipeline typed --table public.prices"],
        ),
        Case::new(
            "resync of a table another pipeline wrote",
            &["resync", "--dest", &dest, "--pipeline", "nope", "--table", "public.orders"],
            FIX_THE_CONFIGURATION,
            &["public.orders holds no progress of pipeline `nope`; check --pipeline"],
        ),
    ];
    for case in &cases {
        let says: Vec<&str> = case.says.iter().map(String::as_str).collect();
        assert_refused(case.input, &case.run(), case.code, &says);
        assert_eq!(postgres_progress(&db, lake.dir.path()).await, before, "{}: the lake or a slot moved", case.input);
        assert_eq!(delta_commits_under(other.dir.path()), Vec::<std::path::PathBuf>::new(), "{}", case.input);
    }

    // The publication dropped behind the pipeline's back, and a change made before it is made again: the slot
    // cannot decode that change.
    db.execute("DROP PUBLICATION connector_shop_a; UPDATE orders SET note = 'after the drop' WHERE id = 2").await;
    let before = postgres_progress(&db, lake.dir.path()).await;
    let case = Case::new(
        "publication dropped",
        &postgres_sync(&url, "shop-a", lake.dir.path(), &["--tables", "public.orders"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        HISTORY_LOST,
        &["publication connector_shop_a was dropped", "connector drop --pipeline shop-a"],
    );
    let says: Vec<&str> = case.says.iter().map(String::as_str).collect();
    assert_refused(case.input, &case.run(), case.code, &says);
    // The refused run may have created the publication again; what matters is that neither the lake nor the
    // slot moved past the change it could not decode.
    let slots_only = |(commits, state): (Vec<std::path::PathBuf>, Vec<Vec<Option<String>>>)| {
        (commits, state.into_iter().filter(|row| row[0].as_deref() == Some("slot")).collect::<Vec<_>>())
    };
    assert_eq!(
        slots_only(postgres_progress(&db, lake.dir.path()).await),
        slots_only(before),
        "{}: the lake or a slot moved",
        case.input
    );
}

/// A Delta table at the table's place that the connector did not write, with columns of its own, is neither
/// merged into nor replaced.
#[tokio::test]
async fn bad_input_postgres_lake_table_written_by_something_else_is_left_alone() {
    let db = postgres().await;
    db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a')").await;
    let lake = TempLake::new();
    let url = lake.table_url(&TableId::new("public", "orders"));
    std::fs::create_dir_all(url.to_file_path().expect("local path")).expect("table directory");
    let table = connector_core::deltalake::DeltaTableBuilder::from_url(url).expect("builder").build().expect("table");
    table
        .create()
        .with_columns(vec![StructField::new("sku", DeltaType::STRING, true)])
        .await
        .expect("create a foreign table");
    let before = delta_commits_under(lake.dir.path());
    let output = Command::new(CONNECTOR)
        .args(postgres_sync(db.url(), "test", lake.dir.path(), &["--tables", "public.orders"]))
        .output()
        .expect("run connector");
    assert_refused("lake table written by something else", &output, FIX_THE_CONFIGURATION, &["public.orders"]);
    assert_eq!(delta_commits_under(lake.dir.path()), before, "the foreign table was written to");
}

fn mysql_sync(url: &str, pipeline: &str, lake: &Path, selection: &[&str]) -> Vec<String> {
    database_sync("mysql", url, pipeline, lake, selection)
}

/// Server states and tables a MySQL/MariaDB sync refuses before it reads a binlog event or writes a table. A
/// server of the test's own, since some cases change global settings.
#[tokio::test]
async fn bad_input_mysql_server_states_are_refused_before_anything_is_written() {
    let server = PrivateMariaDb::start(1, "mariadb-bin").await;
    let db = server.database().await;
    let name = db.name().to_string();
    let limited = format!("lim_{name}");
    db.execute(&format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a'); \
         CREATE TABLE hosts (id int PRIMARY KEY, address inet6); \
         CREATE TABLE labels (id int PRIMARY KEY, label varchar(10) CHARACTER SET utf32); \
         CREATE DATABASE {name}_empty; \
         CREATE USER '{limited}'@'%' IDENTIFIED BY 'pw'; CREATE USER '{limited}'@'127.0.0.1' IDENTIFIED BY 'pw'; \
         GRANT SELECT ON {name}.* TO '{limited}'@'%'; GRANT SELECT ON {name}.* TO '{limited}'@'127.0.0.1'"
    ))
    .await;
    let url = db.admin_url().to_string();
    let user = url::Url::parse(&url).expect("url").username().to_string();
    let orders = format!("{name}.orders");
    let tables = |table: &str| vec!["--tables".to_string(), format!("{name}.{table}")];
    // (what is wrong, the URL, the table selection, exit code, what the refusal says)
    type ServerCase = (&'static str, String, Vec<String>, i32, Vec<String>);
    let cases: Vec<ServerCase> = vec![
        (
            "wrong password (MySQL)",
            with_login(&url, &user, "wrong", None),
            tables("orders"),
            FAILED,
            vec![format!("Access denied for user '{user}'")],
        ),
        (
            "database does not exist (MySQL)",
            url.clone(),
            vec!["--tables".into(), "nosuchdb.orders".into()],
            FIX_THE_CONFIGURATION,
            vec![
                "table nosuchdb.orders does not exist, or the connector's user may not see it (grant SELECT on it)"
                    .into(),
            ],
        ),
        (
            "table does not exist (MySQL)",
            url.clone(),
            tables("nosuch"),
            FIX_THE_CONFIGURATION,
            vec![format!("table {name}.nosuch does not exist")],
        ),
        (
            "database holds no tables",
            url.clone(),
            vec!["--databases".into(), format!("{name}_empty")],
            FIX_THE_CONFIGURATION,
            vec![format!("databases {name}_empty hold no tables")],
        ),
        (
            "user without REPLICATION SLAVE / BINLOG MONITOR",
            with_login(&url, &limited, "pw", None),
            tables("orders"),
            FIX_THE_CONFIGURATION,
            vec![
                format!("GRANT REPLICATION SLAVE ON *.* TO '{limited}'"),
                format!("GRANT BINLOG MONITOR ON *.* TO '{limited}'"),
            ],
        ),
        (
            "column of an uncapturable type (inet6)",
            url.clone(),
            tables("hosts"),
            FAILED,
            vec![format!(
                "column `address` of {name}.hosts has type inet6, which the connector cannot capture; leave the table out or change the column"
            )],
        ),
        (
            "text column in an unsupported character set",
            url.clone(),
            tables("labels"),
            FAILED,
            vec!["in character set utf32, which the connector cannot capture".into()],
        ),
    ];
    for (input, url, selection, code, says) in cases {
        let lake = TempLake::new();
        let selection: Vec<&str> = selection.iter().map(String::as_str).collect();
        let case =
            Case { input, args: mysql_sync(&url, "bad", lake.dir.path(), &selection), environment: vec![], code, says };
        let stderr = case.assert_refused_writing_nothing(lake.dir.path());
        assert!(!stderr.contains(":pw@") && !stderr.contains(":wrong@"), "{input}: the password was printed: {stderr}");
    }

    // Binlog settings the connector cannot read changes from; each is named with its fix.
    for (input, setting, value) in [
        ("binlog_format not ROW", "binlog_format", "STATEMENT"),
        ("binlog_row_image not FULL", "binlog_row_image", "MINIMAL"),
        ("binlog_row_metadata not FULL", "binlog_row_metadata", "MINIMAL"),
    ] {
        db.execute(&format!("SET GLOBAL {setting} = '{value}'")).await;
        let lake = TempLake::new();
        let selection = ["--tables", orders.as_str()];
        let needed = if setting == "binlog_format" { "ROW" } else { "FULL" };
        Case::new(
            input,
            &mysql_sync(&url, "bad", lake.dir.path(), &selection).iter().map(String::as_str).collect::<Vec<_>>(),
            FIX_THE_CONFIGURATION,
            &[
                &format!("{setting} is {value}, the connector needs {needed}"),
                &format!("`{setting}={needed}` in my.cnf"),
            ],
        )
        .assert_refused_writing_nothing(lake.dir.path());
        db.execute(&format!("SET GLOBAL {setting} = '{needed}'")).await;
    }

    // A key named in pipelines.toml that the table lacks.
    let lake = TempLake::new();
    let config = lake.dir.path().join("pipelines.toml");
    let text = pipelines_text(
        "mysql",
        &format!("url = \"{url}\""),
        &format!("\"{orders}\""),
        lake.dir.path(),
        &format!("tables_options.\"{orders}\" = {{ key = [\"nope\"] }}"),
    );
    std::fs::write(&config, text).expect("write config");
    Case::new(
        "key option names a column the table lacks",
        &["run", "--config", path_text(&config), "--once"],
        FIX_THE_CONFIGURATION,
        &["key column `nope` is not a column of", "(its columns: id, note); fix `key` in tables_options"],
    )
    .assert_refused_writing_nothing(lake.dir.path());
    db.execute(&format!("DROP USER '{limited}'@'%'; DROP USER '{limited}'@'127.0.0.1'")).await;
}

/// A binlog the server purged while the pipeline was away: the sync stops naming the resync command, and
/// commits nothing.
#[tokio::test]
async fn bad_input_mysql_purged_binlog_stops_without_a_commit() {
    let server = PrivateMariaDb::start(1, "mariadb-bin").await;
    let db = server.database().await;
    db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a'), (2, 'b')")
        .await;
    let lake = TempLake::new();
    let selection = ["--tables".to_string(), format!("{}.orders", db.name())];
    let selection: Vec<&str> = selection.iter().map(String::as_str).collect();
    let args = mysql_sync(db.admin_url(), "test", lake.dir.path(), &selection);
    let output = Command::new(CONNECTOR).args(&args).output().expect("run connector");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    db.execute("UPDATE orders SET note = 'unread' WHERE id = 1; FLUSH BINARY LOGS").await;
    purge_binlogs_before_the_current(&db).await;

    let before = delta_commits_under(lake.dir.path());
    let way_out = format!("connector resync --pipeline test --table {}.orders", db.name());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let case = Case::new(
        "binlog purged while the pipeline was away",
        &args,
        HISTORY_LOST,
        &["no longer has binlog", &way_out],
    );
    let says: Vec<&str> = case.says.iter().map(String::as_str).collect();
    assert_refused(case.input, &case.run(), case.code, &says);
    assert_eq!(delta_commits_under(lake.dir.path()), before, "a commit was made");
}

/// Purges every binlog file but the current one; the server keeps a file until InnoDB's checkpoint has passed
/// its transactions, so this retries until it is gone.
async fn purge_binlogs_before_the_current(db: &MySqlDatabase) {
    let (current, _) = db.binlog_status().await;
    let deadline = std::time::Instant::now() + crate::support::connector_process::CONVERGENCE_DEADLINE;
    loop {
        db.execute(&format!("PURGE BINARY LOGS TO '{current}'")).await;
        if db.query("SHOW BINARY LOGS").await.len() == 1 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the server kept its old binlogs");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A Stripe profile on `api` with a bearer token from `TEST_KEY`, quick retries and `extra` settings; with
/// `rest_stream`, a declarative stream `items` of kind `rest` instead.
fn stripe_profile(api: &Emulator, extra: &str, rest_stream: Option<&str>) -> (String, String) {
    let auth = "auth = { type = \"bearer\", token = { env = \"TEST_KEY\" } }";
    let base = format!("base_url = \"{}\"\n{auth}\nmax_retries = 1\nmax_backoff = \"100ms\"\n{extra}", api.base_url());
    match rest_stream {
        None => (base, "\"customers\"".into()),
        Some(stream) => (format!("{base}\n\n[profiles.db.streams.items]\n{stream}"), "\"items\"".into()),
    }
}

/// Answers an API may give on the first page: each stops the stream with the status or the problem, where it
/// happened and what to do, and no Delta commit is made.
#[test]
fn bad_input_saas_api_answers_stop_the_stream_committing_nothing() {
    type Arm = fn(&Emulator);
    // (what is wrong, faults to arm, extra profile settings, declarative stream, key, what the refusal says)
    type ApiCase = (&'static str, Arm, &'static str, Option<&'static str>, &'static str, Vec<&'static str>);
    let cases: Vec<ApiCase> = vec![
        (
            "API answers 401 (key refused)",
            |_| {},
            "",
            None,
            "sk_wrong",
            vec!["401", "Invalid API Key provided", "check the credentials", "TEST_KEY"],
        ),
        (
            "API answers 403 (permission missing)",
            |api| api.arm(Fault::new(FaultKind::RequestLimitExceeded).times(100)),
            "",
            None,
            STRIPE_API_KEY,
            vec!["403", "lacks a permission or scope this stream needs", "TEST_KEY"],
        ),
        (
            "API answers 404 (path unknown)",
            |_| {},
            "",
            Some("path = \"v1/nothing\"\nkey = [\"id\"]"),
            STRIPE_API_KEY,
            vec!["stream `items`", "404", "check --base-url and the stream name"],
        ),
        (
            "API answers 500 on every attempt",
            |api| api.arm(Fault::new(FaultKind::ServerError).times(100)),
            "",
            None,
            STRIPE_API_KEY,
            vec!["stream `customers`", "failed 2 times", "resumes there on the next run", "500"],
        ),
        (
            "API answers 429 on every attempt",
            |api| api.arm(Fault::new(FaultKind::TooManyRequests { retry_after: 0 }).times(1000)),
            "",
            None,
            STRIPE_API_KEY,
            vec!["stream `customers`", "throttled (429)", "lower requests_per_second"],
        ),
        (
            "API answers malformed JSON",
            |api| api.arm(Fault::new(FaultKind::Malformed).times(100)),
            "",
            None,
            STRIPE_API_KEY,
            vec!["stream `customers`", "not JSON", "resumes there on the next run"],
        ),
        (
            "API answers an HTML page (not JSON)",
            |api| api.arm(Fault::new(FaultKind::NotJson).times(100)),
            "",
            None,
            STRIPE_API_KEY,
            vec!["stream `customers`", "not JSON", "resumes there on the next run"],
        ),
        (
            "API answer larger than max_response_bytes",
            |_| {},
            "max_response_bytes = 200",
            None,
            STRIPE_API_KEY,
            vec!["stream `customers`", "larger than max_response_bytes = 200 bytes", "raise max_response_bytes"],
        ),
    ];
    for (input, arm, extra, rest_stream, key, says) in cases {
        let api = Emulator::start(EmulatorOptions::new(Service::Stripe, 30)).expect("start emulator");
        arm(&api);
        let lake = TempLake::new();
        let kind = if rest_stream.is_some() { "rest" } else { "stripe" };
        let (settings, streams) = stripe_profile(&api, extra, rest_stream);
        let config = lake.dir.path().join("pipelines.toml");
        std::fs::write(&config, pipelines_text(kind, &settings, &streams, lake.dir.path(), "")).expect("write config");
        let case = Case::new(input, &["run", "--config", path_text(&config), "--once"], FAILED, &says)
            .with_env("TEST_KEY", key);
        let stderr = case.assert_refused_writing_nothing(lake.dir.path());
        assert!(!stderr.contains(key), "{input}: the key was printed: {stderr}");
    }

    // Streams and credentials named wrong on the command line.
    let api = Emulator::start(EmulatorOptions::new(Service::Stripe, 30)).expect("start emulator");
    let lake = TempLake::new();
    let base_url = api.base_url();
    let dest = path_text(lake.dir.path()).to_string();
    for case in [
        Case::new(
            "unknown stream",
            &["sync", "stripe", "--streams", "custmers", "--base-url", &base_url, "--dest", &dest],
            FIX_THE_CONFIGURATION,
            &["no stream `custmers` (available: customers, invoices"],
        )
        .with_env("STRIPE_API_KEY", STRIPE_API_KEY),
        Case::new(
            "API key refused on the command line",
            &["sync", "stripe", "--streams", "customers", "--base-url", &base_url, "--dest", &dest],
            FAILED,
            &["401", "STRIPE_API_KEY"],
        )
        .with_env("STRIPE_API_KEY", "sk_wrong"),
    ] {
        case.assert_refused_writing_nothing(lake.dir.path());
    }
}

/// A server not set up for logical replication: every setting to change is named, with its statement, in one
/// error, and nothing is created.
#[tokio::test]
async fn bad_input_postgres_server_without_logical_wal_names_each_setting() {
    let server = PrivatePostgres::start(&[("wal_level", "replica"), ("max_wal_senders", "1")]).await;
    let db = server.database().await;
    db.execute("CREATE TABLE orders (id int PRIMARY KEY)").await;
    let lake = TempLake::new();
    let before = postgres_replication_state(&db).await;
    Case {
        input: "wal_level not logical; max_wal_senders below 2",
        args: postgres_sync(db.url(), "bad", lake.dir.path(), &["--tables", "public.orders"]),
        environment: vec![],
        code: FIX_THE_CONFIGURATION,
        says: vec![
            "PostgreSQL is not ready for logical replication".into(),
            "wal_level is `replica`; run `ALTER SYSTEM SET wal_level = logical` and restart the server".into(),
            "max_wal_senders is 1; the connector needs 2".into(),
        ],
    }
    .assert_refused_writing_nothing(lake.dir.path());
    assert_eq!(postgres_replication_state(&db).await, before, "a slot or publication changed");
}
