//! `connector sync mysql` end to end against a real MariaDB 10.11 (or the MySQL server of
//! `CONNECTOR_TEST_MYSQL_URL`): the Delta table must equal the source table after every scenario.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use connector_core::schema::TableId;

use crate::support::binlog_tamperer::BinlogTamperer;
use crate::support::certificates::certificate_of_another_authority;
use crate::support::connector_process::{
    CONVERGENCE_DEADLINE, commits_in, difference, has_parquet, resync, terminate, wait_for_column, wait_for_exit,
};
use crate::support::delta::{TempLake, read_rows};
use crate::support::load::as_sorted_text;
use crate::support::servers::{MySqlDatabase, MySqlReplica, PrivateMariaDb, mariadb};
use crate::support::tcp_proxy::address_of;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

fn sync_command(db: &MySqlDatabase, lake: &Path, tables: &[&str], extra: &[&str]) -> Command {
    let qualified: Vec<String> = tables.iter().map(|table| format!("{}.{table}", db.name())).collect();
    let mut command = Command::new(CONNECTOR);
    command
        .args(["sync", "mysql", "--url", db.admin_url(), "--tables", &qualified.join(","), "--dest"])
        .arg(lake)
        .args(["--pipeline", "test"])
        .args(extra)
        .env("CONNECTOR_LOG", "info");
    command
}

/// `connector sync mysql --databases <the test database>` into `lake` for `pipeline`.
fn sync_databases_command(db: &MySqlDatabase, lake: &TempLake, pipeline: &str) -> Command {
    let mut command = Command::new(CONNECTOR);
    command
        .args(["sync", "mysql", "--url", db.admin_url(), "--databases", db.name(), "--dest"])
        .arg(lake.dir.path())
        .args(["--pipeline", pipeline]);
    command
}

/// Runs `connector sync mysql --once` and returns its output, panicking with stderr if it failed.
fn sync_once(db: &MySqlDatabase, lake: &Path, tables: &[&str]) -> String {
    report_of(&mut sync_command(db, lake, tables, &[]))
}

/// Runs `command` to its end and returns its report, panicking with stderr if it failed.
fn report_of(command: &mut Command) -> String {
    let output = command.output().expect("run connector");
    assert!(output.status.success(), "connector failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts `command` with `--continuous`, its output discarded.
fn spawn_continuous(mut command: Command) -> Child {
    command.arg("--continuous").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start connector")
}

/// Stops a `--continuous` connector with SIGTERM and checks it ended cleanly.
fn stop_cleanly(mut child: Child) {
    terminate(&child);
    let status = wait_for_exit(&mut child);
    assert!(status.success(), "connector did not stop cleanly on SIGTERM: {status}");
}

fn sync_failing(command: &mut Command) -> Output {
    let output = command.output().expect("run connector");
    assert!(!output.status.success(), "connector should have failed: {}", String::from_utf8_lossy(&output.stdout));
    output
}

/// The source rows of `columns` as `a|b|c` with `∅` for NULL, sorted as text like the Delta side.
async fn source_rows(db: &MySqlDatabase, table: &str, columns: &[&str]) -> Vec<String> {
    let list = columns.iter().map(|column| format!("CAST(`{column}` AS CHAR)")).collect::<Vec<_>>().join(", ");
    let mut rows: Vec<String> = db
        .query(&format!("SELECT {list} FROM `{table}`"))
        .await
        .into_iter()
        .map(|row| row.into_iter().map(|value| value.unwrap_or_else(|| "∅".into())).collect::<Vec<_>>().join("|"))
        .collect();
    rows.sort();
    rows
}

fn table_id(db: &MySqlDatabase, table: &str) -> TableId {
    TableId::new(db.name(), table)
}

async fn delta_rows(db: &MySqlDatabase, lake: &TempLake, table: &str, columns: &[&str]) -> Vec<String> {
    let mut rows = read_rows(&lake.table_url(&table_id(db, table)), columns).await;
    rows.sort();
    rows
}

async fn assert_equal(db: &MySqlDatabase, lake: &TempLake, table: &str, columns: &[&str]) {
    let expected = source_rows(db, table, columns).await;
    let landed = delta_rows(db, lake, table, columns).await;
    assert!(landed == expected, "{table} differs: {}", difference(&expected, &landed));
}

/// Polls until the Delta table equals the source, or fails with both after the deadline.
async fn wait_until_equal(db: &MySqlDatabase, lake: &TempLake, table: &str, columns: &[&str]) {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    let log = lake.table_url(&table_id(db, table)).to_file_path().expect("local").join("_delta_log");
    loop {
        let expected = source_rows(db, table, columns).await;
        let landed = if log.exists() { delta_rows(db, lake, table, columns).await } else { Vec::new() };
        if landed == expected {
            return;
        }
        assert!(Instant::now() < deadline, "Delta never caught up with {table}: {}", difference(&expected, &landed));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A derived table `g(n)` of the numbers `from..=to`, in SQL both MariaDB and MySQL accept (recursive CTEs
/// are capped at 1000 rows by default on both).
pub(crate) fn numbers(from: u64, to: u64) -> String {
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL \
                  SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let places = (to - from + 1).max(1).to_string().len();
    let sum: Vec<String> = (0..places).map(|place| format!("d{place}.d * {}", 10_u64.pow(place as u32))).collect();
    let tables: Vec<String> = (0..places).map(|place| format!("{digits} d{place}")).collect();
    format!("(SELECT {from} + {} AS n FROM {}) g WHERE g.n <= {to}", sum.join(" + "), tables.join(", "))
}

fn orders() -> String {
    format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer varchar(40) NOT NULL, amount decimal(10,2), qty int, \
         note text); \
         INSERT INTO orders SELECT n, CONCAT('customer ', n), n * 1.5, n % 7, IF(n % 3 = 0, NULL, 'n') FROM {};",
        numbers(1, 2000)
    )
}
const ORDER_COLUMNS: &[&str] = &["id", "customer", "amount", "qty", "note"];

#[tokio::test]
async fn mysql_snapshot_then_changes_match_the_source() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();

    let report = sync_once(&db, lake.dir.path(), &["orders"]);
    assert!(report.contains(&format!("{}.orders: 2000 snapshot rows, 0 changes", db.name())), "{report}");
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;

    db.execute(
        "INSERT INTO orders VALUES (5000, 'new', 1.25, 1, 'x'); \
         UPDATE orders SET amount = amount + 1, note = 'changed' WHERE id <= 10; \
         DELETE FROM orders WHERE id BETWEEN 100 AND 199; \
         UPDATE orders SET id = 9000 WHERE id = 500; \
         BEGIN; UPDATE orders SET note = 'twice' WHERE id = 1; UPDATE orders SET note = 'thrice' WHERE id = 1; COMMIT;",
    )
    .await;
    let report = sync_once(&db, lake.dir.path(), &["orders"]);
    // 1 insert, 10 updates, 100 deletes, the key change as a delete plus an update, 2 updates of row 1.
    assert!(report.contains(&format!("{}.orders: 0 snapshot rows, 115 changes", db.name())), "{report}");
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;

    let report = sync_once(&db, lake.dir.path(), &["orders"]);
    assert!(report.contains(&format!("{}.orders: 0 snapshot rows, 0 changes", db.name())), "{report}");
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

/// Starts `connector sync mysql --continuous` on `orders` and waits until its copy landed.
async fn stream_orders_until_copied(db: &MySqlDatabase, lake: &TempLake) -> Child {
    let child = sync_command(db, lake.dir.path(), &["orders"], &["--continuous"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_equal(db, lake, "orders", ORDER_COLUMNS).await;
    child
}

#[tokio::test]
async fn mysql_continuous_streams_until_stopped() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let child = stream_orders_until_copied(&db, &lake).await;

    for round in 0..5 {
        db.execute(&format!(
            "INSERT INTO orders VALUES ({}, 'stream', 2.5, NULL, NULL); UPDATE orders SET amount = {round} WHERE id = 1; \
             DELETE FROM orders WHERE id = {}",
            10_000 + round,
            20 + round
        ))
        .await;
    }
    wait_until_equal(&db, &lake, "orders", ORDER_COLUMNS).await;

    // A second writer of the same pipeline is refused, naming the one running, and commits nothing.
    let version_before =
        std::fs::read_dir(lake.dir.path().join(db.name()).join("orders").join("_delta_log")).expect("log").count();
    let output = sync_failing(&mut sync_command(&db, lake.dir.path(), &["orders"], &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("process {}", child.id())) && stderr.contains("already writing"), "{stderr}");
    let version_after =
        std::fs::read_dir(lake.dir.path().join(db.name()).join("orders").join("_delta_log")).expect("log").count();
    assert_eq!(version_before, version_after, "the refused writer committed");

    stop_cleanly(child);
}

#[tokio::test]
async fn mysql_kill_mid_binlog_then_restart_loses_and_duplicates_nothing() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let mut child = stream_orders_until_copied(&db, &lake).await;
    for batch in 0..20 {
        db.execute(&format!(
            "INSERT INTO orders SELECT n, 'burst', n, NULL, NULL FROM {}; \
             UPDATE orders SET amount = amount + 1 WHERE id % 7 = {}",
            numbers(100_000 + batch * 100, 100_000 + batch * 100 + 99),
            batch % 7
        ))
        .await;
        if batch == 10 {
            child.kill().expect("kill -9");
        }
    }
    let _ = child.wait();
    sync_once(&db, lake.dir.path(), &["orders"]);
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn mysql_kill_mid_chunked_copy_resumes_after_the_last_committed_chunk() {
    let db = mariadb().await;
    db.execute(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, payload varchar(200)); \
         INSERT INTO big SELECT n, REPEAT(SHA2(n, 256), 2) FROM {}; ANALYZE TABLE big;",
        numbers(1, BIG_ROWS as u64)
    ))
    .await;
    let lake = TempLake::new();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = tokio::spawn(write_all_over_big(db.connect().await, stop.clone()));
    let chunk = ["--copy-chunk-rows", "10000"];
    let mut child = sync_command(&db, lake.dir.path(), &["big"], &[&chunk[..], &["--continuous"]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    // Killed at a random moment once a few chunks are committed (each chunk is one commit).
    let log = lake.dir.path().join(db.name()).join("big").join("_delta_log");
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while commits_in(&log) < 4 && Instant::now() < deadline {
        // Not a thread sleep: the writes run on this test's runtime.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..400))).await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writes.await.expect("the writes ran");

    let copied_before = delta_rows(&db, &lake, "big", &["id"]).await;
    assert!(!copied_before.is_empty(), "the kill came before any chunk was committed");
    let bound = copied_before.iter().map(|id| id.parse::<i64>().expect("an id")).max().expect("rows");
    let left: u64 = db.query_value(&format!("SELECT COUNT(*) FROM big WHERE id > {bound}")).await.parse().expect("n");
    let output = sync_command(&db, lake.dir.path(), &["big"], &chunk).output().expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "connector failed: {stderr}");
    let report = String::from_utf8_lossy(&output.stdout);
    let copied_again: u64 = report
        .split(".big: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|rows| rows.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot rows in the report: {report}"));
    eprintln!("{written} writes; {} rows copied before the kill, {copied_again} after", copied_before.len());
    // The second run copies only what follows the last committed chunk: never from the start.
    assert!(copied_again <= left, "copied {copied_again} rows again, only {left} lie past the copied ones: {stderr}");
    assert!(stderr.contains("resuming the copy"), "{stderr}");
    assert_equal(&db, &lake, "big", &["id", "payload"]).await;

    db.execute("UPDATE big SET payload = 'streamed' WHERE id % 1000 = 0; DELETE FROM big WHERE id % 999 = 0").await;
    sync_once(&db, lake.dir.path(), &["big"]);
    assert_equal(&db, &lake, "big", &["id", "payload"]).await;
}

const BIG_ROWS: i64 = 200_000;

/// Random changes all over `big`'s keys (rows of every chunk at once, single rows, inserts, key moves in both
/// directions) until `stop` is set, so rows change on both sides of a chunked copy's bound while it runs.
async fn write_all_over_big(mut conn: mysql_async::Conn, stop: Arc<AtomicBool>) -> u64 {
    let mut written = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = fastrand::i64(1..=BIG_ROWS);
        let statement = match fastrand::u8(0..6) {
            0 => format!("UPDATE big SET payload = 'updated {written}' WHERE id % 211 = {} AND id < 80000", id % 211),
            1 => format!("DELETE FROM big WHERE id = {id}"),
            2 => format!("INSERT IGNORE INTO big VALUES ({}, 'inserted')", BIG_ROWS + written as i64),
            3 => format!("UPDATE big SET id = id + {BIG_ROWS} * 3 WHERE id = {id}"),
            4 => format!("UPDATE big SET id = -{written} - 1 WHERE id = {id} + {BIG_ROWS} * 3"),
            _ => format!("DELETE FROM big WHERE id % 4999 = {} AND id < 80000", id % 4999),
        };
        mysql_async::prelude::Queryable::query_drop(&mut conn, &statement)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
        written += 1;
    }
    written
}

#[tokio::test]
async fn mysql_a_column_added_during_a_chunked_copy_lands_with_its_values() {
    let db = mariadb().await;
    db.execute(&format!(
        "CREATE TABLE grown (id int PRIMARY KEY, label varchar(40)); \
         INSERT INTO grown SELECT n, CONCAT('row ', n) FROM {};",
        numbers(1, 30_000)
    ))
    .await;
    let lake = TempLake::new();
    let child = sync_command(&db, lake.dir.path(), &["grown"], &["--copy-chunk-rows", "1000", "--continuous"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    let log = lake.dir.path().join(db.name()).join("grown").join("_delta_log");
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while commits_in(&log) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Rows copied already get the values from the stream; rows not copied yet, from the chunks that read them.
    db.execute("ALTER TABLE grown ADD COLUMN extra int; UPDATE grown SET extra = id % 7").await;
    wait_for_column(&log, "extra").await;
    wait_until_equal(&db, &lake, "grown", &["id", "label", "extra"]).await;
    stop_cleanly(child);
}

/// A stop during a copy abandons it rather than waiting for it to end: here the copy (its first chunk) is held
/// by a write lock another session keeps on the table, and SIGTERM must still end the sync cleanly, with
/// nothing of the copy committed; the next sync copies the table whole.
#[tokio::test]
async fn mysql_sigterm_abandons_a_copy_in_flight() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let mut holder = db.connect().await;
    mysql_async::prelude::Queryable::query_drop(&mut holder, "LOCK TABLES orders WRITE").await.expect("lock");
    let lake = TempLake::new();
    let mut child = sync_command(&db, lake.dir.path(), &["orders"], &["--continuous"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start connector");
    // The copy has started once one of the connector's sessions waits for the table.
    let waiting = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for table%lock' \
                   AND ID <> CONNECTION_ID()";
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while db.query_value(waiting).await == "0" {
        assert!(Instant::now() < deadline, "the copy never reached the locked table");
        assert!(child.try_wait().expect("poll").is_none(), "the connector exited before copying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    terminate(&child);
    let status = wait_for_exit(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    assert!(status.success(), "the stopped sync failed: {stderr}");
    assert!(stderr.contains("abandoned the chunks being read"), "{stderr}");
    mysql_async::prelude::Queryable::query_drop(&mut holder, "UNLOCK TABLES").await.expect("unlock");
    let _ = holder.disconnect().await;

    let report = sync_once(&db, lake.dir.path(), &["orders"]);
    assert!(report.contains("2000 snapshot rows"), "{report}");
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

/// Whether the statement of session `id` is still running.
async fn still_running(db: &MySqlDatabase, id: u32) -> bool {
    let running = format!("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id} AND INFO IS NOT NULL");
    db.query_value(&running).await == "1"
}

#[tokio::test]
async fn mysql_snapshot_does_not_wait_for_long_statements_on_other_tables() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    db.execute("CREATE TABLE report (id int PRIMARY KEY); INSERT INTO report VALUES (1)").await;
    // A long report on another table. A global read lock (FLUSH TABLES WITH READ LOCK) would wait for it to
    // end, and stall every write on the server meanwhile.
    let mut reporting = db.connect().await;
    let session = reporting.id();
    let report = tokio::spawn(async move {
        let _ = mysql_async::prelude::Queryable::query_drop(&mut reporting, "SELECT SLEEP(120) FROM report").await;
        reporting
    });
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while !still_running(&db, session).await {
        assert!(Instant::now() < deadline, "the report never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let lake = TempLake::new();
    let summary = sync_once(&db, lake.dir.path(), &["orders"]);
    assert!(summary.contains("2000 snapshot rows"), "{summary}");
    assert!(still_running(&db, session).await, "the snapshot waited for the report on another table to end");
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
    db.execute(&format!("KILL QUERY {session}")).await;
    drop(report.await.expect("report task"));
}

#[tokio::test]
async fn mysql_snapshot_behind_an_open_write_transaction_says_what_holds_it() {
    use mysql_async::prelude::Queryable;
    let db = mariadb().await;
    db.execute(&orders()).await;
    let mut writer = db.connect().await;
    writer.query_drop("START TRANSACTION").await.expect("begin");
    writer.query_drop("UPDATE orders SET qty = 0 WHERE id = 1").await.expect("update");
    let lake = TempLake::new();
    if !db.is_mariadb().await {
        // MySQL's snapshot briefly locks the table against writers, which waits for this transaction.
        let output = sync_failing(&mut sync_command(&db, lake.dir.path(), &["orders"], &[]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("a transaction that wrote it stayed open"), "{stderr}");
        assert!(stderr.contains("SHOW PROCESSLIST"), "{stderr}");
    }
    // MariaDB takes no lock; on MySQL the sync succeeds once the transaction ends.
    writer.query_drop("COMMIT").await.expect("commit");
    sync_once(&db, lake.dir.path(), &["orders"]);
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn mysql_types_land_as_documented_in_snapshot_and_stream() {
    let db = mariadb().await;
    db.execute(
        "CREATE TABLE typed (id int PRIMARY KEY, tiny tinyint, utiny tinyint unsigned, small smallint, \
           usmall smallint unsigned, medium mediumint, umedium mediumint unsigned, regular int, uregular int unsigned, \
           big bigint, ubig bigint unsigned, exact decimal(12,4), wide decimal(50,10), single float, twice double, \
           flag bool, bits bit(12), one_bit bit(1), label varchar(20), fixed char(3), \
           latin varchar(20) CHARACTER SET latin1, body mediumtext, raw varbinary(10), lob blob, \
           mood enum('sad','happy'), tags set('a','b','c'), day date, clock time(3), moment datetime(6), \
           instant timestamp(6) NULL, yr year, doc json, shape geometry)",
    )
    .await;
    let values = "-128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, \
        18446744073709551615, -12345678.1234, 1234567890123456789012345678901234567890.0123456789, 1.5, -2.25e-10, \
        true, b'101010101010', b'1', 'héllo', 'ab', 'café', 'long text', x'00ff10', x'0102', 'happy', 'c,a', \
        '2024-02-29', '-838:59:58.500', '2024-01-31 23:59:59.123456', '2024-01-31 22:59:59.123456', 2024, \
        JSON_OBJECT('a', JSON_ARRAY(NULL, 1.50, 'x', 2), 'b', '{}'), ST_GeomFromText('POINT(1 2)')";
    let insert = |id: i32, null_id: i32, zero_id: i32| {
        format!(
            "SET time_zone = '+00:00'; INSERT INTO typed VALUES ({id}, {values}); INSERT INTO typed (id) VALUES ({null_id}); \
             SET SESSION sql_mode = ''; INSERT INTO typed (id, day, moment) VALUES ({zero_id}, '0000-00-00', \
             '0000-00-00 00:00:00'); SET SESSION sql_mode = DEFAULT"
        )
    };
    db.execute(&insert(1, 2, 3)).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["typed"]);
    // The same values through the binlog.
    db.execute(&insert(4, 5, 6)).await;
    let report = sync_once(&db, lake.dir.path(), &["typed"]);
    assert!(report.contains("0 snapshot rows, 3 changes"), "{report}");

    let columns = [
        "id", "tiny", "utiny", "small", "usmall", "medium", "umedium", "regular", "uregular", "big", "ubig", "exact",
        "wide", "single", "twice", "flag", "bits", "one_bit", "label", "fixed", "latin", "body", "raw", "lob", "mood",
        "tags", "day", "clock", "moment", "instant", "yr", "doc", "shape",
    ];
    let rows = delta_rows(&db, &lake, "typed", &columns).await;
    let expected = "-128|255|-32768|65535|-8388608|16777215|-2147483648|4294967295|-9223372036854775808|\
        18446744073709551615|-12345678.1234|1234567890123456789012345678901234567890.0123456789|1.5|-2.25e-10|1|\
        2730|true|héllo|ab|café|long text|00ff10|0102|happy|a,c|2024-02-29|-838:59:58.500000|\
        2024-01-31T23:59:59.123456|2024-01-31T22:59:59.123456Z|2024|{\"a\": [null, 1.50, \"x\", 2], \"b\": \"{}\"}|\
        0101000000000000000000f03f0000000000000040";
    let nulls = vec!["∅"; columns.len() - 1].join("|");
    assert_eq!(
        rows,
        vec![
            format!("1|{expected}"),
            format!("2|{nulls}"),
            format!("3|{nulls}"),
            format!("4|{expected}"),
            format!("5|{nulls}"),
            format!("6|{nulls}"),
        ]
    );
}

/// BINARY(n) values are padded with zeros by the server, but the binlog stores them without their trailing
/// zeros: every fixed-length value must hold the source's bytes whichever way it arrived, and a BINARY key must
/// find the snapshot's row.
#[tokio::test]
async fn mysql_fixed_length_values_keep_their_bytes_in_snapshot_and_stream() {
    let db = mariadb().await;
    db.execute(
        "CREATE TABLE fixed (id binary(4) PRIMARY KEY, b4 binary(4), b1 binary(1), c4 char(4), bits bit(16), \
           d decimal(6,2), y year); \
         INSERT INTO fixed VALUES (x'00000100', x'01000000', x'00', 'a', b'0000000100000000', 1.10, 2001), \
           (x'00000200', x'00000000', x'10', 'ab  ', b'1', 0.00, 1999)",
    )
    .await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["fixed"]);
    db.execute(
        "INSERT INTO fixed VALUES (x'00000300', x'02', x'00', 'x', b'0', 2.00, 2024); \
         UPDATE fixed SET b4 = x'03000000', c4 = 'z ' WHERE id = x'00000100'; \
         UPDATE fixed SET b1 = x'00' WHERE id = x'00000200'; \
         INSERT INTO fixed VALUES (x'00000400', x'00000000', x'00', '', b'0', 0, 2000); \
         DELETE FROM fixed WHERE id = x'00000400'",
    )
    .await;
    let report = sync_once(&db, lake.dir.path(), &["fixed"]);
    assert!(report.contains("0 snapshot rows"), "{report}");

    let columns = ["id", "b4", "b1", "c4", "bits", "d", "y"];
    let source = as_sorted_text(
        db.query("SELECT LOWER(HEX(id)), LOWER(HEX(b4)), LOWER(HEX(b1)), c4, bits + 0, d, y FROM fixed").await,
    );
    assert_eq!(
        source,
        [
            "00000100|03000000|00|z|256|1.10|2001",
            "00000200|00000000|00|ab|1|0.00|1999",
            "00000300|02000000|00|x|0|2.00|2024"
        ]
    );
    assert_eq!(delta_rows(&db, &lake, "fixed", &columns).await, source);
}

/// A pipeline pointed at a server whose GTID history neither includes the tables' nor is included by it (errant
/// transactions, another topology) cannot tell which transactions the tables hold: it stops with the reason,
/// applying nothing, instead of reporting a sync that read nothing.
#[tokio::test]
async fn mysql_diverged_gtid_histories_stop_the_sync_with_the_reason() {
    let first = PrivateMariaDb::start(1, "first-bin").await;
    let other = PrivateMariaDb::start(2, "other-bin").await;
    let db = first.database().await;
    db.execute(&orders()).await;
    // More transactions in domain 0 than the other server will have there.
    for qty in 1..=10 {
        db.execute(&format!("UPDATE orders SET qty = {qty} WHERE id <= 10")).await;
    }
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);
    let expected = delta_rows(&db, &lake, "orders", ORDER_COLUMNS).await;

    // The other server's transactions are in a GTID domain the tables never saw, and it lacks the tables' own.
    let diverged = other.create_database_like(&db).await;
    diverged.execute("SET SESSION gtid_domain_id = 7").await;
    diverged.execute(&orders()).await;
    diverged.execute("UPDATE orders SET note = 'elsewhere'").await;
    let output = sync_failing(&mut sync_command(&diverged, lake.dir.path(), &["orders"], &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GTID states diverge"), "{stderr}");
    assert!(stderr.contains("connector resync"), "{stderr}");
    assert_eq!(delta_rows(&db, &lake, "orders", ORDER_COLUMNS).await, expected, "the Delta table changed");
}

#[tokio::test]
async fn mysql_truncate_and_schema_changes_while_streaming() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);

    db.execute(
        "ALTER TABLE orders ADD COLUMN region varchar(10) DEFAULT 'eu'; \
         INSERT INTO orders VALUES (7000, 'added', 1, 1, NULL, 'us'); \
         UPDATE orders SET region = 'apac' WHERE id = 2; \
         ALTER TABLE orders DROP COLUMN note; \
         ALTER TABLE orders MODIFY qty bigint, MODIFY customer varchar(80) NOT NULL; \
         UPDATE orders SET amount = 0, qty = 5000000000 WHERE id = 3;",
    )
    .await;
    sync_once(&db, lake.dir.path(), &["orders"]);
    // Rows untouched since the column was added hold its default, as in the source (no row event shows them).
    assert_equal(&db, &lake, "orders", &["id", "customer", "amount", "qty", "region"]).await;
    // The dropped column stays, null for rows changed after the drop.
    let notes = delta_rows(&db, &lake, "orders", &["id", "note"]).await;
    assert!(notes.contains(&"3|∅".to_string()) && notes.contains(&"4|n".to_string()), "{notes:?}");

    db.execute("TRUNCATE orders; INSERT INTO orders (id, customer) VALUES (1, 'fresh')").await;
    sync_once(&db, lake.dir.path(), &["orders"]);
    assert_eq!(delta_rows(&db, &lake, "orders", &["id", "customer"]).await, vec!["1|fresh"]);
}

#[tokio::test]
async fn mysql_columns_added_with_defaults_fill_earlier_rows_or_are_read_back_from_the_source() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);

    // A quoted default and a NOT NULL column without one (the server gives earlier rows zero).
    db.execute(
        "ALTER TABLE orders ADD COLUMN label varchar(20) DEFAULT 'it''s new', ADD COLUMN points int NOT NULL; \
         UPDATE orders SET points = 7 WHERE id = 2;",
    )
    .await;
    sync_once(&db, lake.dir.path(), &["orders"]);
    assert_equal(&db, &lake, "orders", &["id", "customer", "label", "points"]).await;

    // An expression default is evaluated when the column is added; the catalog keeps only the expression.
    db.execute("ALTER TABLE orders ADD COLUMN stamped datetime DEFAULT CURRENT_TIMESTAMP; UPDATE orders SET points = 8 WHERE id = 3")
        .await;
    let output = sync_failing(&mut sync_command(&db, lake.dir.path(), &["orders"], &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`stamped`") && stderr.contains("the next sync copies it again"), "{stderr}");
    // The rows that lack their values are gone and nothing of the stopped sync landed: the copy brings both.
    assert_eq!(delta_rows(&db, &lake, "orders", &["id", "points"]).await, Vec::<String>::new());

    // No resync by hand: the next sync reads the rows back from the source, with the changes after the ALTER.
    sync_once(&db, lake.dir.path(), &["orders"]);
    assert_equal(&db, &lake, "orders", &["id", "customer", "label", "points"]).await;
    let stamps = delta_rows(&db, &lake, "orders", &["id", "stamped"]).await;
    assert!(stamps.iter().all(|row| !row.ends_with("|∅")), "rows without their stamp: {stamps:?}");
}

#[tokio::test]
async fn mysql_keyless_tables_become_changelogs() {
    let db = mariadb().await;
    db.execute("CREATE TABLE events (kind varchar(10), at int); INSERT INTO events VALUES ('a', 1), ('b', 2)").await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["events"]);
    db.execute("INSERT INTO events VALUES ('c', 3); DELETE FROM events WHERE kind = 'a'").await;
    sync_once(&db, lake.dir.path(), &["events"]);
    // Without a key, every change is a row of its own: the snapshot rows, then the insert and the delete.
    let rows = delta_rows(&db, &lake, "events", &["kind", "at", "_cdc_op"]).await;
    assert_eq!(rows, vec!["a|1|delete", "a|1|snapshot", "b|2|snapshot", "c|3|insert"]);
}

#[tokio::test]
async fn mysql_databases_option_captures_every_table() {
    let db = mariadb().await;
    db.execute(
        "CREATE TABLE one (id int PRIMARY KEY, v varchar(5)); CREATE TABLE two (id int PRIMARY KEY, v varchar(5)); \
         INSERT INTO one VALUES (1, 'a'); INSERT INTO two VALUES (1, 'b')",
    )
    .await;
    let lake = TempLake::new();
    let mut command = sync_databases_command(&db, &lake, "whole");
    report_of(&mut command);
    db.execute("INSERT INTO one VALUES (2, 'c'); UPDATE two SET v = 'd'").await;
    report_of(&mut command);
    assert_equal(&db, &lake, "one", &["id", "v"]).await;
    assert_equal(&db, &lake, "two", &["id", "v"]).await;
}

#[tokio::test]
async fn mysql_a_table_created_while_streaming_is_captured_from_its_first_rows() {
    let db = mariadb().await;
    db.execute("CREATE TABLE one (id int PRIMARY KEY, v varchar(5)); INSERT INTO one VALUES (1, 'a')").await;
    let lake = TempLake::new();
    let mut command = sync_databases_command(&db, &lake, "created");
    let child = spawn_continuous(sync_databases_command(&db, &lake, "created"));
    wait_until_equal(&db, &lake, "one", &["id", "v"]).await;

    db.execute(
        "CREATE TABLE fresh (id int PRIMARY KEY, v varchar(10)); \
         INSERT INTO fresh VALUES (1, 'x'), (2, 'y'), (3, 'w'); UPDATE fresh SET v = 'z' WHERE id = 1; \
         DELETE FROM fresh WHERE id = 2; INSERT INTO one VALUES (2, 'b')",
    )
    .await;
    wait_until_equal(&db, &lake, "fresh", &["id", "v"]).await;
    wait_until_equal(&db, &lake, "one", &["id", "v"]).await;
    stop_cleanly(child);

    // A later run finds the table in the catalog with its cursor: it streams on, copying nothing again.
    db.execute("INSERT INTO fresh VALUES (4, 'later'); UPDATE fresh SET v = 'again' WHERE id = 3").await;
    let report = report_of(&mut command);
    assert!(report.contains(&format!("{}.fresh: 0 snapshot rows", db.name())), "{report}");
    assert_equal(&db, &lake, "fresh", &["id", "v"]).await;
}

#[tokio::test]
async fn mysql_tables_renamed_or_recreated_while_streaming_are_copied_then_streamed() {
    let db = mariadb().await;
    let outside = format!("{}_outside", db.name());
    db.execute(&format!(
        "CREATE TABLE one (id int PRIMARY KEY, v varchar(20)); INSERT INTO one VALUES (1, 'a'), (2, 'b'); \
         CREATE TABLE two (id int PRIMARY KEY, v varchar(20)); INSERT INTO two VALUES (1, 'old'); \
         CREATE DATABASE `{outside}`; \
         CREATE TABLE `{outside}`.staged (id int PRIMARY KEY, v varchar(20)); \
         INSERT INTO `{outside}`.staged SELECT n, CONCAT('staged ', n) FROM {}; \
         CREATE TABLE `{outside}`.coded (code varchar(10) PRIMARY KEY, v varchar(20)); \
         INSERT INTO `{outside}`.coded SELECT CONCAT('c', n), CONCAT('coded ', n) FROM {};",
        numbers(1, 500),
        numbers(1, 50)
    ))
    .await;
    let lake = TempLake::new();
    let mut command = sync_databases_command(&db, &lake, "renamed");
    let mut continuous = sync_databases_command(&db, &lake, "renamed");
    continuous.args(["--copy-chunk-rows", "100"]);
    let child = spawn_continuous(continuous);
    wait_until_equal(&db, &lake, "one", &["id", "v"]).await;
    wait_until_equal(&db, &lake, "two", &["id", "v"]).await;

    // Rows the binlog never showed arrive by RENAME: from another database, and from a captured table. A table
    // with an integer key is copied in chunks while the others stream; one with a text key is copied whole.
    db.execute(&format!(
        "RENAME TABLE `{outside}`.staged TO moved; \
         UPDATE moved SET v = 'changed' WHERE id <= 10; DELETE FROM moved WHERE id > 490; \
         INSERT INTO moved VALUES (1000, 'after the rename'); \
         RENAME TABLE `{outside}`.coded TO coded; UPDATE coded SET v = 'recoded' WHERE code = 'c7'; \
         ALTER TABLE one RENAME TO one_renamed; INSERT INTO one_renamed VALUES (3, 'c'); \
         DROP TABLE two; CREATE TABLE two (id int PRIMARY KEY, v varchar(20)); INSERT INTO two VALUES (7, 'new');"
    ))
    .await;
    wait_until_equal(&db, &lake, "moved", &["id", "v"]).await;
    wait_until_equal(&db, &lake, "coded", &["code", "v"]).await;
    wait_until_equal(&db, &lake, "one_renamed", &["id", "v"]).await;
    wait_until_equal(&db, &lake, "two", &["id", "v"]).await;
    // 491 rows in chunks of about 100: at least five commits each recording how far the copy got (the keys end
    // with a gap, 490 to 1000, where chunks sized from the density before them read few rows or none).
    let chunk_commits = |table: &str| {
        let log = lake.dir.path().join(db.name()).join(table).join("_delta_log");
        std::fs::read_dir(log)
            .expect("a Delta log")
            .flatten()
            .filter(|entry| std::fs::read_to_string(entry.path()).is_ok_and(|text| text.contains("copied_up_to")))
            .count()
    };
    let commits = chunk_commits("moved");
    assert!((5..=8).contains(&commits), "the renamed table is copied in chunks of about 100 rows: {commits} commits");
    assert_eq!(chunk_commits("coded"), 0, "a table with a text key is copied whole");
    // The renamed table's old Delta table keeps the rows it had.
    assert_eq!(delta_rows(&db, &lake, "one", &["id", "v"]).await, vec!["1|a", "2|b"]);
    stop_cleanly(child);

    // A later run streams on from the copies' cursors: nothing is copied again, later changes land.
    db.execute("UPDATE moved SET v = 'later' WHERE id = 20; INSERT INTO one_renamed VALUES (4, 'd')").await;
    let report = report_of(&mut command);
    assert!(report.contains(&format!("{}.moved: 0 snapshot rows", db.name())), "{report}");
    assert!(report.contains(&format!("{}.one_renamed: 0 snapshot rows", db.name())), "{report}");
    assert!(report.contains(&format!("{}.coded: 0 snapshot rows", db.name())), "{report}");
    assert_equal(&db, &lake, "moved", &["id", "v"]).await;
    assert_equal(&db, &lake, "coded", &["code", "v"]).await;
    assert_equal(&db, &lake, "one_renamed", &["id", "v"]).await;
    db.execute(&format!("DROP DATABASE `{outside}`")).await;
}

#[tokio::test]
async fn mysql_resumes_by_gtid_on_a_promoted_replica() {
    let primary = PrivateMariaDb::start(1, "primary-bin").await;
    let replica = PrivateMariaDb::start(2, "replica-bin").await;
    replica.replicate_from(&primary).await;
    let db = primary.database().await;
    let promoted = replica.same_database(&db);
    let promote = "STOP SLAVE; RESET SLAVE ALL; FLUSH BINARY LOGS; FLUSH BINARY LOGS";
    resumes_after_failover(&db, &promoted, async || replica.catch_up_with(&primary).await, promote).await;
}

#[tokio::test]
#[ignore = "needs CONNECTOR_TEST_MYSQL_URL and CONNECTOR_TEST_MYSQL_REPLICA_URL, two MySQL servers: scripts/test.sh \
            starts them and runs it"]
async fn mysql_resumes_by_gtid_set_on_a_promoted_mysql_replica() {
    let db = mariadb().await;
    let replica = MySqlReplica::of(&db).await;
    let promoted = replica.same_database(&db);
    let promote = "STOP REPLICA; RESET REPLICA ALL; FLUSH BINARY LOGS; FLUSH BINARY LOGS";
    resumes_after_failover(&db, &promoted, async || replica.catch_up_with(&db).await, promote).await;
}

/// A failover: the connector syncs `db` from its server, which then writes changes the connector has not read
/// when it is lost; its replica catches up (`catch_up`), is promoted (`promote`, run on `promoted`, the replica's
/// copy of `db`) and written to. Its binlog files, their names and offsets are its own. The same pipeline
/// pointed at it resumes after the last GTID the tables reached, and the tables equal the new primary's.
async fn resumes_after_failover(
    db: &MySqlDatabase,
    promoted: &MySqlDatabase,
    catch_up: impl AsyncFnOnce(),
    promote: &str,
) {
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(db, lake.dir.path(), &["orders"]);
    db.execute("UPDATE orders SET note = 'on the primary' WHERE id <= 100; DELETE FROM orders WHERE id > 1990").await;
    sync_once(db, lake.dir.path(), &["orders"]);
    assert_equal(db, &lake, "orders", ORDER_COLUMNS).await;

    db.execute("UPDATE orders SET qty = 99 WHERE id BETWEEN 200 AND 300; INSERT INTO orders (id, customer) VALUES (5000, 'late')")
        .await;
    catch_up().await;
    promoted.execute(promote).await;
    promoted
        .execute(
            "UPDATE orders SET customer = 'after failover' WHERE id <= 10; DELETE FROM orders WHERE id = 5000; \
             INSERT INTO orders (id, customer) VALUES (6000, 'on the new primary')",
        )
        .await;
    assert_ne!(source_rows(db, "orders", ORDER_COLUMNS).await, source_rows(promoted, "orders", ORDER_COLUMNS).await);

    let report = sync_once(promoted, lake.dir.path(), &["orders"]);
    assert!(report.contains(&format!("{}.orders: 0 snapshot rows", db.name())), "{report}");
    assert_equal(promoted, &lake, "orders", ORDER_COLUMNS).await;
    // Status judges the cursor by GTID there: the files it was taken in are not on this server.
    let status = binlog_status(promoted, &lake);
    assert_eq!(status["cursor_available"], true, "{status}");
    let (promoted_file, _) = promoted.binlog_status().await;
    assert!(status["oldest_cursor"].as_str().expect("a cursor").starts_with(&promoted_file), "{status}");
    assert_eq!(status["oldest_cursor_gtid"], status["server_gtid"], "{status}");
    let later = "UPDATE orders SET amount = 1 WHERE id = 6000";
    promoted.execute(later).await;
    sync_once(promoted, lake.dir.path(), &["orders"]);
    assert_equal(promoted, &lake, "orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn mysql_a_server_outside_the_topology_is_refused_and_the_tables_kept() {
    let first = PrivateMariaDb::start(1, "first-bin").await;
    let unrelated = PrivateMariaDb::start(2, "other-bin").await;
    let db = first.database().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);
    let expected = delta_rows(&db, &lake, "orders", ORDER_COLUMNS).await;

    // Same names, another history: its binlog knows nothing of the first server's transactions.
    let stranger = unrelated.create_database_like(&db).await;
    stranger.execute(&orders()).await;
    stranger.execute("UPDATE orders SET note = 'elsewhere'").await;
    let output = sync_failing(&mut sync_command(&stranger, lake.dir.path(), &["orders"], &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a replica of that server"), "{stderr}");
    assert!(stderr.contains(&format!("connector resync --pipeline test --table {}.orders", db.name())), "{stderr}");
    assert_eq!(delta_rows(&db, &lake, "orders", ORDER_COLUMNS).await, expected, "the Delta table changed");
}

/// A MariaDB server of the test's own (purging the shared server's binlogs would pull them from under other tests)
/// whose `orders` was synced into the lake, then changed in binlogs purged since: the changes are lost to the
/// pipeline.
async fn orders_synced_then_purged() -> (PrivateMariaDb, MySqlDatabase, TempLake) {
    let server = PrivateMariaDb::start(1, "mariadb-bin").await;
    let db = server.database().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);
    db.execute("UPDATE orders SET note = 'unread' WHERE id <= 10; FLUSH BINARY LOGS").await;
    let (current, _) = db.binlog_status().await;
    // The server keeps a file until InnoDB's checkpoint has passed its transactions: purge until it is gone.
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        db.execute(&format!("PURGE BINARY LOGS TO '{current}'")).await;
        if db.query("SHOW BINARY LOGS").await.len() == 1 {
            return (server, db, lake);
        }
        assert!(Instant::now() < deadline, "the server kept its old binlogs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn mysql_a_binlog_purged_while_away_stops_with_the_resync_command() {
    let (_server, db, lake) = orders_synced_then_purged().await;

    let status = binlog_status(&db, &lake);
    assert_eq!(status["cursor_available"], false, "{status}");
    let output = sync_failing(&mut sync_command(&db, lake.dir.path(), &["orders"], &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let way_out = format!("connector resync --pipeline test --table {}.orders", db.name());
    assert!(stderr.contains("no longer has binlog") && stderr.contains(&way_out), "{stderr}");

    // The way out it names works: the table is copied again and follows the source.
    resync(lake.dir.path(), "test", &format!("{}.orders", db.name()));
    sync_once(&db, lake.dir.path(), &["orders"]);
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn mysql_resync_copies_one_table_again() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);
    let table = format!("{}.orders", db.name());
    resync(lake.dir.path(), "test", &table);
    db.execute("UPDATE orders SET note = 'after resync' WHERE id < 5").await;
    let report = sync_once(&db, lake.dir.path(), &["orders"]);
    assert!(report.contains(&format!("{table}: 2000 snapshot rows")), "{report}");
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

/// A user `{prefix}{database}` (at `%` and `127.0.0.1`, password `pw`) with `grants` (`{user}` stands for the
/// quoted user), and a `sync mysql` of the test database's `orders` as that user into `lake`.
async fn limited_user(db: &MySqlDatabase, prefix: &str, grants: &[&str], lake: &Path) -> (String, Command) {
    // MySQL allows user names of 32 characters at most.
    let user = format!("{prefix}{}", db.name());
    for host in ["%", "127.0.0.1"] {
        db.execute(&format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw'")).await;
        for grant in grants {
            db.execute(&grant.replace("{user}", &format!("'{user}'@'{host}'"))).await;
        }
    }
    // The test database's URL: the user may not see the admin URL's database (an external server's).
    let mut url = url::Url::parse(db.url()).expect("url");
    url.set_username(&user).expect("user");
    url.set_password(Some("pw")).expect("password");
    let mut command = Command::new(CONNECTOR);
    command
        .args(["sync", "mysql", "--url", url.as_str(), "--tables", &format!("{}.orders", db.name()), "--dest"])
        .arg(lake);
    (user, command)
}

async fn drop_user(db: &MySqlDatabase, user: &str) {
    db.execute(&format!("DROP USER '{user}'@'%'; DROP USER '{user}'@'127.0.0.1'")).await;
}

#[tokio::test]
async fn mysql_without_replication_rights_says_what_to_grant() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let select = format!("GRANT SELECT ON {}.* TO {{user}}", db.name());
    let (user, mut command) = limited_user(&db, "lim_", &[&select], lake.dir.path()).await;
    let output = sync_failing(&mut command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("GRANT REPLICATION SLAVE ON *.* TO '{user}'")), "{stderr}");
    let read_position = if db.is_mariadb().await { "BINLOG MONITOR" } else { "REPLICATION CLIENT" };
    assert!(stderr.contains(&format!("GRANT {read_position} ON *.* TO '{user}'")), "{stderr}");
    drop_user(&db, &user).await;
}

#[tokio::test]
async fn mysql_snapshot_without_lock_tables_says_what_to_grant() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let mariadb = db.is_mariadb().await;
    let select = format!("GRANT SELECT ON {}.* TO {{user}}", db.name());
    let replication = if mariadb {
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {user}"
    } else {
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user}"
    };
    let (user, mut command) = limited_user(&db, "nl_", &[&select, replication], lake.dir.path()).await;
    if !mariadb {
        // MySQL's snapshot locks its table against writers for a moment; MariaDB's needs no lock.
        let output = sync_failing(&mut command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("`GRANT LOCK TABLES ON `{}`.* TO <user>`", db.name())), "{stderr}");
        for host in ["%", "127.0.0.1"] {
            db.execute(&format!("GRANT LOCK TABLES ON {}.* TO '{user}'@'{host}'", db.name())).await;
        }
    }
    report_of(&mut command);
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
    drop_user(&db, &user).await;
}

/// `file:offset` as a comparable pair.
fn binlog_coordinates(text: &str) -> (u64, u64) {
    let (file, offset) = text.rsplit_once(':').expect("file:offset");
    let sequence = file.rsplit_once('.').expect("numbered binlog file").1.parse().expect("file number");
    (sequence, offset.parse().expect("offset"))
}

fn binlog_status(db: &MySqlDatabase, lake: &TempLake) -> serde_json::Value {
    let output = Command::new(CONNECTOR)
        .args(["status", "--json", "--pipeline", "test", "--dest"])
        .arg(lake.dir.path())
        // The URL's password stays off the command line.
        .env("CONNECTOR_STATUS_URL", db.admin_url())
        .output()
        .expect("run status");
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("status JSON");
    let binlog = document["binlogs"][0].clone();
    // A monitor running status alerts on its exit code: 3 exactly when the binlog the tables need is gone.
    let expected = if binlog["cursor_available"] == false { Some(3) } else { Some(0) };
    assert_eq!(output.status.code(), expected, "{}", String::from_utf8_lossy(&output.stderr));
    if expected == Some(3) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("connector resync --pipeline test"), "{stderr}");
    }
    binlog
}

#[tokio::test]
async fn mysql_status_shows_the_binlog_position_and_lag() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);
    db.execute("UPDATE orders SET note = REPEAT('x', 200) WHERE id <= 1000").await;

    let behind = binlog_status(&db, &lake);
    assert_eq!(behind["cursor_available"], true, "{behind}");
    // A thousand rows gained a 200-byte note since the cursor.
    assert!(behind["lag_bytes"].as_u64().expect("lag") > 200_000, "{behind}");

    let (file, offset) = db.binlog_status().await;
    let before_sync = (file.rsplit_once('.').expect("numbered").1.parse::<u64>().expect("number"), offset);
    sync_once(&db, lake.dir.path(), &["orders"]);
    let caught_up = binlog_status(&db, &lake);
    let cursor = binlog_coordinates(caught_up["oldest_cursor"].as_str().expect("a cursor"));
    assert!(cursor >= before_sync, "cursor {cursor:?} is behind the position before the sync {before_sync:?}");
}

#[tokio::test]
async fn mysql_syncs_over_tls_with_certificate_checks() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let with_tls = |mode: &str, ca: Option<&Path>| {
        let mut url = url::Url::parse(db.admin_url()).expect("url");
        url.query_pairs_mut().append_pair("ssl-mode", mode);
        if let Some(ca) = ca {
            url.query_pairs_mut().append_pair("ssl-ca", ca.to_str().expect("path"));
        }
        url.to_string()
    };
    let run = |url: &str| {
        Command::new(CONNECTOR)
            .args(["sync", "mysql", "--url", url, "--tables", &format!("{}.orders", db.name()), "--pipeline", "tls"])
            .arg("--dest")
            .arg(lake.dir.path())
            .output()
            .expect("run connector")
    };
    let Some(certificate) = db.tls_certificate() else {
        // An external server presents no certificate we know: encryption without checks must work.
        let output = run(&with_tls("REQUIRED", None));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        return;
    };

    // The certificate names 127.0.0.1, so the host name check passes; snapshot and binlog both go over TLS.
    let output = run(&with_tls("VERIFY_IDENTITY", Some(&certificate)));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    db.execute("UPDATE orders SET note = 'over tls' WHERE id = 1").await;
    let output = run(&with_tls("VERIFY_IDENTITY", Some(&certificate)));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;

    // Against a certificate from another authority, VERIFY_CA refuses to connect: the handshake is checked.
    let other = tempfile::tempdir().expect("tempdir");
    let status = Command::new("openssl")
        .args(["req", "-new", "-x509", "-days", "1", "-nodes", "-subj", "/CN=other", "-keyout"])
        .arg(other.path().join("key.pem"))
        .arg("-out")
        .arg(other.path().join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let output = run(&with_tls("VERIFY_CA", Some(&other.path().join("cert.pem"))));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("cannot connect"), "{stderr}");
}

#[tokio::test]
async fn mysql_uses_tls_by_default_when_the_server_offers_it() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    // The server refuses this account any connection without TLS: the sync works only if it encrypts.
    let grants = ["GRANT ALL PRIVILEGES ON *.* TO {user}", "ALTER USER {user} REQUIRE SSL"];
    let (user, mut command) = limited_user(&db, "tls_", &grants, lake.dir.path()).await;
    let output = command.output().expect("run connector");
    assert!(output.status.success(), "no TLS by default: {}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
    drop_user(&db, &user).await;
}

#[tokio::test]
async fn mysql_verify_modes_refuse_another_authority_naming_the_setting() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = certificate_of_another_authority(other.path(), "another-ca");
    for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
        let mut url = url::Url::parse(db.admin_url()).expect("url");
        url.query_pairs_mut().append_pair("ssl-mode", mode).append_pair("ssl-ca", other_ca.to_str().expect("path"));
        let output = Command::new(CONNECTOR)
            .args(["sync", "mysql", "--url", url.as_str(), "--tables", &format!("{}.orders", db.name()), "--dest"])
            .arg(lake.dir.path())
            .output()
            .expect("run connector");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{mode}: a configuration error, not retried: {stderr}");
        assert!(stderr.contains(&format!("ssl-mode={mode}, ssl-ca={}", other_ca.display())), "{stderr}");
        assert!(stderr.contains("set ssl-ca to the CA file that signed it"), "{stderr}");
        assert!(!lake.dir.path().join(db.name()).exists(), "{mode}: nothing may be written");
    }
}

#[tokio::test]
async fn mysql_preferred_falls_back_to_plaintext_only_where_the_server_has_no_tls() {
    let server = PrivateMariaDb::start_without_tls(7, "plain-bin").await;
    let db = server.database().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let run = |mode: Option<&str>| {
        let mut url = url::Url::parse(db.admin_url()).expect("url");
        if let Some(mode) = mode {
            url.query_pairs_mut().append_pair("ssl-mode", mode);
        }
        Command::new(CONNECTOR)
            .args(["sync", "mysql", "--url", url.as_str(), "--tables", &format!("{}.orders", db.name()), "--dest"])
            .arg(lake.dir.path())
            .output()
            .expect("run connector")
    };

    let output = run(Some("REQUIRED"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "REQUIRED must refuse a server without TLS: {stderr}");
    assert!(stderr.contains("ssl-mode=REQUIRED") && stderr.contains("the server offers no TLS"), "{stderr}");

    // The default (PREFERRED) connects in plaintext, as the MySQL client does.
    let output = run(None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn mysql_warns_once_when_the_password_crosses_the_network_unchecked() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let url = url::Url::parse(db.admin_url()).expect("url");
    let upstream = format!("{}:{}", url.host_str().expect("host"), url.port().expect("port"));
    let (address, port) = crate::support::forwarder::forward_from_network_address(upstream);
    let run = |mode: Option<&str>| {
        let mut remote = url.clone();
        remote.set_host(Some(&address.to_string())).expect("host");
        remote.set_port(Some(port)).expect("port");
        if let Some(mode) = mode {
            remote.query_pairs_mut().append_pair("ssl-mode", mode);
        }
        let output = Command::new(CONNECTOR)
            .args(["sync", "mysql", "--url", remote.as_str(), "--tables", &format!("{}.orders", db.name())])
            .arg("--dest")
            .arg(lake.dir.path())
            .output()
            .expect("run connector");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        stderr
    };
    let target = format!("{address}:{port}");
    for (mode, named) in [(None, "ssl-mode=PREFERRED"), (Some("DISABLED"), "ssl-mode=DISABLED")] {
        let stderr = run(mode);
        let warnings: Vec<&str> = stderr.lines().filter(|line| line.contains("credentials go to")).collect();
        assert_eq!(warnings.len(), 1, "one warning per server: {stderr}");
        assert!(warnings[0].contains("WARN") && warnings[0].contains(&target), "{stderr}");
        assert!(warnings[0].contains(named) && warnings[0].contains("ssl-mode=VERIFY_IDENTITY"), "{stderr}");
    }
    let stderr = run(Some("DISABLED"));
    assert!(stderr.contains("in plaintext"), "{stderr}");
}

#[tokio::test]
async fn mysql_a_transaction_larger_than_memory_is_applied_in_parts() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["orders"]);
    // About 6 MiB of changes in one transaction, against a 1 MiB budget.
    db.execute(&format!(
        "BEGIN; UPDATE orders SET note = REPEAT('y', 300); \
         INSERT INTO orders SELECT n, 'bulk', 1, 1, REPEAT('z', 300) FROM {}; COMMIT;",
        numbers(10_000, 25_000)
    ))
    .await;
    let output = sync_command(&db, lake.dir.path(), &["orders"], &["--batch-mib", "1"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("applying part of a large transaction"), "{stderr}");
    assert_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn mysql_a_large_table_is_copied_in_chunks_while_it_changes() {
    let db = mariadb().await;
    // Keys with gaps and negatives, so chunk bounds fall between keys.
    db.execute(&format!(
        "CREATE TABLE wide (id bigint PRIMARY KEY, label varchar(60)); \
         INSERT INTO wide SELECT n * 7 - 30000, CONCAT('row ', n) FROM {}; ANALYZE TABLE wide;",
        numbers(1, 60_000)
    ))
    .await;
    let lake = TempLake::new();
    let mut child = sync_command(&db, lake.dir.path(), &["wide"], &["--continuous", "--copy-chunk-rows", "8000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start connector");
    // Changes until the copy commits its first chunk, so they commit while chunks are read and applied:
    // updates, deletes, inserts, and keys moved from one end of the table to the other.
    let table_dir = lake.dir.path().join(db.name()).join("wide");
    for round in 0..20_000_i64 {
        if has_parquet(&table_dir) {
            break;
        }
        let low = round * 7 - 30000 + 7;
        db.execute(&format!(
            "UPDATE wide SET label = 'changed {round}' WHERE id = {low} + 70000; \
             DELETE FROM wide WHERE id = {low} + 140000; \
             INSERT INTO wide VALUES ({}, 'new {round}'); \
             UPDATE wide SET id = {} WHERE id = {low};",
            1_000_000 + round,
            -1_000_000 - round
        ))
        .await;
    }
    wait_until_equal(&db, &lake, "wide", &["id", "label"]).await;
    terminate(&child);
    let status = wait_for_exit(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    assert!(status.success(), "{stderr}");
    // 60,000 rows (and the changes' inserts) in chunks of 8,000: 7 chunks, then the last.
    let chunks = stderr.matches(&format!("copied a chunk table={}.wide", db.name())).count();
    assert!(chunks >= 7, "{chunks} chunks: {stderr}");
    assert!(stderr.contains(&format!("copied the table table={}.wide", db.name())), "{stderr}");
}

/// The Delta log's commits of `table`, to check a failed run committed nothing.
fn commits_of(db: &MySqlDatabase, lake: &TempLake, table: &str) -> usize {
    let log = lake.table_url(&table_id(db, table)).to_file_path().expect("local").join("_delta_log");
    std::fs::read_dir(log)
        .expect("the table's log")
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|extension| extension == "json"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_binlog_event_damaged_in_transit_stops_the_sync_without_a_panic_or_a_commit() {
    let db = mariadb().await;
    db.execute("CREATE TABLE damaged (id INT PRIMARY KEY, note VARCHAR(20))").await;
    db.execute("INSERT INTO damaged VALUES (1, 'copied')").await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), &["damaged"]);
    let commits = commits_of(&db, &lake, "damaged");
    db.execute("INSERT INTO damaged VALUES (2, 'streamed')").await;

    // The rows event of that insert reaches the connector claiming 1000 bytes more than its packet holds.
    let tamperer = BinlogTamperer::start(address_of(db.admin_url())).await;
    let mut command = Command::new(CONNECTOR);
    command
        .args(["sync", "mysql", "--url", &tamperer.url_through(db.admin_url()), "--tables"])
        .arg(format!("{}.damaged", db.name()))
        .arg("--dest")
        .arg(lake.dir.path())
        .args(["--pipeline", "test"]);
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "a damaged event must fail the sync as a source error: {stderr}");
    assert!(stderr.contains("malformed binlog event"), "{stderr}");
    assert!(stderr.contains("resumes from its last commit"), "the error must say nothing is lost: {stderr}");
    assert!(!stderr.contains("internal error"), "a server's bytes are no bug of the connector: {stderr}");
    assert_eq!(commits_of(&db, &lake, "damaged"), commits, "the failed run committed: {stderr}");

    // Read undamaged, the same event lands.
    sync_once(&db, lake.dir.path(), &["damaged"]);
    assert_equal(&db, &lake, "damaged", &["id", "note"]).await;
}

/// `sync mysql --continuous --metrics-addr`: how far the stream is behind the server's binlog end is served as a
/// metric, read as streaming begins (and every 30 s after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_binlog_lag_is_served_as_a_metric_while_streaming() {
    let db = mariadb().await;
    db.execute(&orders()).await;
    let lake = TempLake::new();
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let mut child = sync_command(&db, lake.dir.path(), &["orders"], &["--continuous", "--metrics-addr", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
    let bytes_series = format!(r#"connector_bytes_read_total{{pipeline="test",table="{}.orders"}}"#, db.name());
    let copied = crate::support::scraped_metrics::wait_for_value(&address, &bytes_series, |_| true).await;
    // Streamed changes: their rows events are counted as bytes read, after the copy's.
    db.execute("UPDATE orders SET note = 'streamed' WHERE id <= 20").await;
    wait_until_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
    let prefix = r#"connector_mysql_binlog_lag_bytes{pipeline="test"} "#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let lag = loop {
        let text = match reqwest::get(format!("http://{address}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let bytes_read = crate::support::scraped_metrics::value_of(&text, &bytes_series);
        let lag = text.lines().find_map(|line| line.strip_prefix(prefix)).and_then(|v| v.parse::<i64>().ok());
        // 20 rows updated, each with its before and after image: well over 20 × 20 bytes.
        if let (Some(lag), true) = (lag, bytes_read.is_some_and(|bytes| bytes > copied + 400.0)) {
            break lag;
        }
        assert!(Instant::now() < deadline, "the binlog lag and the rows events' bytes never showed:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    terminate(&child);
    wait_for_exit(&mut child);
    assert!(lag >= 0, "{lag}");
}

/// A table's initial copy counts the bytes its rows took on the wire in `connector_bytes_read_total`, whether it
/// is copied in chunks while streaming (an integer key) or whole before streaming (a text key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_counts_the_bytes_it_read() {
    use crate::support::scraped_metrics::{assert_copy_read, scrape};
    const ROWS: u64 = 2000;
    const NOTE: u64 = 100;
    let db = mariadb().await;
    db.execute(&format!(
        "CREATE TABLE by_number (id int PRIMARY KEY, note text); \
         INSERT INTO by_number SELECT n, REPEAT('n', {NOTE}) FROM {numbers}; \
         CREATE TABLE by_code (code varchar(20) PRIMARY KEY, note text); \
         INSERT INTO by_code SELECT CONCAT('c', n), REPEAT('n', {NOTE}) FROM {numbers};",
        numbers = numbers(1, ROWS)
    ))
    .await;
    let lake = TempLake::new();
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let extra = ["--continuous", "--metrics-addr", &address];
    let mut child = sync_command(&db, lake.dir.path(), &["by_number", "by_code"], &extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_equal(&db, &lake, "by_number", &["id", "note"]).await;
    wait_until_equal(&db, &lake, "by_code", &["code", "note"]).await;
    let text = scrape(&address).await;
    terminate(&child);
    wait_for_exit(&mut child);
    for table in ["by_number", "by_code"] {
        // Each row's note, key and packet framing: more than the notes alone, less than twice them.
        assert_copy_read(&text, &format!("{}.{table}", db.name()), ROWS, NOTE);
    }
}

/// `connector run --ui` of a pipeline whose binlog was purged while it was away: the pipeline stops for a resync
/// (its page says so) and runs nothing more; a resync from the console empties the table and asks for a run,
/// which copies the table again: it equals the source, the changes the purged binlog held included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_console_resync_brings_back_a_pipeline_stopped_for_lost_history() {
    let (_server, db, lake) = orders_synced_then_purged().await;

    let table = format!("{}.orders", db.name());
    let config = lake.dir.path().join("pipelines.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.shop]\nkind = \"mysql\"\nurl = \"${{SHOP_URL}}\"\n\n[[pipelines]]\nname = \"test\"\n\
             profile = \"shop\"\ntables = [\"{table}\"]\ndest = \"{}\"\nschedule = \"continuous\"\n",
            lake.dir.path().display()
        ),
    )
    .expect("pipelines.toml");
    let port = crate::support::loopback::free_port();
    let mut child = Command::new(CONNECTOR)
        .args(["run", "--config", config.to_str().expect("utf-8"), "--ui", &format!("127.0.0.1:{port}")])
        .env("SHOP_URL", db.admin_url())
        .env_remove("CONNECTOR_CONSOLE_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("connector run");
    let page = format!("http://127.0.0.1:{port}/pipelines/test");
    crate::support::eventually::eventually("the pipeline stopped for a resync", || {
        let page = page.clone();
        async move {
            match reqwest::get(&page).await {
                Ok(answer) => answer.text().await.unwrap_or_default().contains("stopped: resync needed"),
                Err(_) => false,
            }
        }
    })
    .await;
    assert_ne!(source_rows(&db, "orders", ORDER_COLUMNS).await, delta_rows(&db, &lake, "orders", ORDER_COLUMNS).await);

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let resynced = client
        .post(format!("{page}/resync"))
        .form(&[("table", table.as_str()), ("confirm", table.as_str())])
        .send()
        .await
        .expect("resync");
    assert_eq!(resynced.status(), 303, "{}", resynced.text().await.unwrap_or_default());
    wait_until_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
    // And it streams again: a later change lands too.
    db.execute("UPDATE orders SET note = 'after the resync' WHERE id <= 3").await;
    wait_until_equal(&db, &lake, "orders", ORDER_COLUMNS).await;
    terminate(&child);
    wait_for_exit(&mut child);
}
