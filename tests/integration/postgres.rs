//! `connector sync postgres` end to end against a real PostgreSQL 15: the Delta table must equal the source
//! table after every scenario.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use connector_core::schema::TableId;

use crate::support::certificates::certificate_of_another_authority;
use crate::support::connector_process::{
    CONVERGENCE_DEADLINE, commits_in, difference, has_parquet, resync, terminate, wait_for_column, wait_for_exit,
};
use crate::support::delta::{TempLake, read_rows};
use crate::support::servers::{PostgresDatabase, postgres};
use crate::support::tcp_proxy::TcpProxy;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

fn sync_command(db: &PostgresDatabase, lake: &Path, tables: &str, extra: &[&str]) -> Command {
    pipeline_sync_command(db.url(), "test", lake, tables, extra)
}

/// `connector sync postgres` of `pipeline` from the server at `url`.
fn pipeline_sync_command(url: &str, pipeline: &str, lake: &Path, tables: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(CONNECTOR);
    command
        .args(["sync", "postgres", "--url", url, "--tables", tables, "--dest"])
        .arg(lake)
        .args(["--pipeline", pipeline])
        .args(extra)
        .env("CONNECTOR_LOG", "info");
    command
}

/// Runs `connector sync postgres --once` and returns its output, panicking with stderr if it failed.
fn sync_once(db: &PostgresDatabase, lake: &Path, tables: &str) -> String {
    let output = sync_command(db, lake, tables, &[]).output().expect("run connector");
    assert!(output.status.success(), "connector failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sync_failing(db: &PostgresDatabase, lake: &Path, tables: &str) -> Output {
    let output = sync_command(db, lake, tables, &[]).output().expect("run connector");
    assert!(!output.status.success(), "connector should have failed: {}", String::from_utf8_lossy(&output.stdout));
    output
}

/// The source rows of `columns`, ordered by them, as `a|b|c` with `∅` for NULL (the Delta reader's form).
/// Both sides are sorted as text, so they compare whatever the column types.
async fn source_rows(db: &PostgresDatabase, table: &str, columns: &[&str]) -> Vec<String> {
    let list = columns.iter().map(|column| format!("\"{column}\"::text")).collect::<Vec<_>>().join(", ");
    let mut rows: Vec<String> = db
        .query(&format!("SELECT {list} FROM {table}"))
        .await
        .into_iter()
        .map(|row| row.into_iter().map(|value| value.unwrap_or_else(|| "∅".into())).collect::<Vec<_>>().join("|"))
        .collect();
    rows.sort();
    rows
}

async fn delta_rows(lake: &TempLake, table: &str, columns: &[&str]) -> Vec<String> {
    let id = TableId::parse(table).expect("qualified name");
    let mut rows = read_rows(&lake.table_url(&id), columns).await;
    rows.sort();
    rows
}

/// Polls until the Delta table equals the source, or fails with both after the deadline.
async fn wait_until_equal(db: &PostgresDatabase, lake: &TempLake, table: &str, columns: &[&str]) {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        let expected = source_rows(db, table, columns).await;
        let id = TableId::parse(table).expect("qualified name");
        let landed = if lake.table_url(&id).to_file_path().expect("local").join("_delta_log").exists() {
            delta_rows(lake, table, columns).await
        } else {
            Vec::new()
        };
        if landed == expected {
            return;
        }
        assert!(Instant::now() < deadline, "Delta never caught up with {table}: {}", difference(&expected, &landed));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts that the Delta table holds exactly the source rows.
async fn assert_equal(db: &PostgresDatabase, lake: &TempLake, table: &str, columns: &[&str]) {
    let expected = source_rows(db, table.split_once('.').map_or(table, |(_, name)| name), columns).await;
    let landed = delta_rows(lake, table, columns).await;
    assert!(landed == expected, "{table} differs: {}", difference(&expected, &landed));
}

const ORDERS: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), \
                      note text); \
                      INSERT INTO orders SELECT g, 'customer ' || g, g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' END \
                      FROM generate_series(1, 2000) g;";
const ORDER_COLUMNS: &[&str] = &["id", "customer", "amount", "note"];

#[tokio::test]
async fn postgres_snapshot_then_changes_match_the_source() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();

    let report = sync_once(&db, lake.dir.path(), "public.orders");
    assert!(report.contains("public.orders: 2000 snapshot rows, 0 changes"), "{report}");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;

    db.execute(
        "INSERT INTO orders VALUES (5000, 'new', 1.25, 'x'); \
         UPDATE orders SET amount = amount + 1, note = 'changed' WHERE id <= 10; \
         DELETE FROM orders WHERE id BETWEEN 100 AND 199; \
         UPDATE orders SET id = 9000 WHERE id = 500; \
         BEGIN; UPDATE orders SET note = 'twice' WHERE id = 1; UPDATE orders SET note = 'thrice' WHERE id = 1; COMMIT;",
    )
    .await;
    let report = sync_once(&db, lake.dir.path(), "public.orders");
    // 1 insert, 10 updates, 100 deletes, the key change as a delete plus an insert, 2 updates of row 1.
    assert!(report.contains("public.orders: 0 snapshot rows, 115 changes"), "{report}");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;

    // Nothing new: a sync applies nothing and the table stays equal.
    let report = sync_once(&db, lake.dir.path(), "public.orders");
    assert!(report.contains("public.orders: 0 snapshot rows, 0 changes"), "{report}");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn postgres_once_confirms_the_slot_position_after_committing() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    db.execute("UPDATE orders SET note = 'later' WHERE id < 50").await;
    let before: String = db.query_value("SELECT pg_current_wal_lsn()::text").await;

    sync_once(&db, lake.dir.path(), "public.orders");

    // The slot confirmed at least every change made before the sync, so the server may recycle that WAL.
    let behind = db
        .query_value(&format!(
            "SELECT (confirmed_flush_lsn < '{before}')::text FROM pg_replication_slots WHERE slot_name = 'connector_test'"
        ))
        .await;
    assert_eq!(behind, "false");
}

/// Starts `connector run` on a `pipelines.toml` whose profile `shop` is `db` and whose `pipelines` (each the
/// keys of one `[[pipelines]]`) write to `lake`; its output is discarded, its stderr goes to `stderr`.
fn start_run(db: &PostgresDatabase, lake: &TempLake, pipelines: &[&str], stderr: Stdio) -> Child {
    let config = lake.dir.path().join("pipelines.toml");
    let dest = lake.dir.path().display();
    let mut text = "[profiles.shop]\nkind = \"postgres\"\nurl = \"${SHOP_URL}\"\n".to_string();
    for pipeline in pipelines {
        text.push_str(&format!("\n[[pipelines]]\n{pipeline}\ndest = \"{dest}\"\n"));
    }
    std::fs::write(&config, text).expect("write config");
    Command::new(CONNECTOR)
        .args(["run", "--config"])
        .arg(&config)
        .env("SHOP_URL", db.url())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start connector run")
}

/// Starts `connector sync postgres --continuous` on `public.orders` and waits until its copy landed.
async fn stream_orders_until_copied(db: &PostgresDatabase, lake: &TempLake) -> Child {
    let child = sync_command(db, lake.dir.path(), "public.orders", &["--continuous"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_equal(db, lake, "public.orders", ORDER_COLUMNS).await;
    child
}

#[tokio::test]
async fn postgres_continuous_streams_until_stopped() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let mut child = stream_orders_until_copied(&db, &lake).await;

    for round in 0..5 {
        db.execute(&format!(
            "INSERT INTO orders VALUES ({}, 'stream', 2.5, NULL); UPDATE orders SET amount = {round} WHERE id = 1; \
             DELETE FROM orders WHERE id = {}",
            10_000 + round,
            20 + round
        ))
        .await;
    }
    wait_until_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;

    terminate(&child);
    let status = wait_for_exit(&mut child);
    assert!(status.success(), "connector did not stop cleanly on SIGTERM: {status}");
}

#[tokio::test]
async fn postgres_kill_mid_stream_then_restart_loses_and_duplicates_nothing() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let mut child = stream_orders_until_copied(&db, &lake).await;
    // Changes keep coming while the connector is killed without warning.
    for batch in 0..20 {
        db.execute(&format!(
            "INSERT INTO orders SELECT g, 'burst', g, NULL FROM generate_series({0}, {0} + 99) g; \
             UPDATE orders SET amount = amount + 1 WHERE id % 7 = {1}",
            100_000 + batch * 100,
            batch % 7
        ))
        .await;
        if batch == 10 {
            child.kill().expect("kill -9");
        }
    }
    let _ = child.wait();

    sync_once(&db, lake.dir.path(), "public.orders");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn postgres_kill_mid_snapshot_then_restart_copies_once() {
    let db = postgres().await;
    db.execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, payload text); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 300000) g;",
    )
    .await;
    let lake = TempLake::new();
    // Copied whole, as tables without an integer key always are.
    let mut child = sync_command(&db, lake.dir.path(), "public.big", &["--whole-copies"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start connector");
    // Kill as soon as the copy has started writing Parquet, before its commit.
    let table_dir = lake.dir.path().join("public").join("big");
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while !has_parquet(&table_dir) && Instant::now() < deadline && child.try_wait().expect("poll").is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();

    db.execute("UPDATE big SET payload = 'after' WHERE id <= 5").await;
    let output = sync_command(&db, lake.dir.path(), "public.big", &["--whole-copies"]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "public.big", &["id", "payload"]).await;
}

/// Random single-row changes all over `big`'s keys (updates, deletes, inserts, key moves in both directions)
/// until `stop` is set, so rows change on both sides of a chunked copy's bound while it runs.
async fn write_all_over_big(client: tokio_postgres::Client, stop: Arc<AtomicBool>) -> u64 {
    let mut written = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = fastrand::i64(1..=BIG_ROWS);
        let statement = match fastrand::u8(0..6) {
            // Rows of every chunk at once: whatever a chunk's bounds, a transaction right after its snapshot
            // changes some of its rows.
            0 => format!("UPDATE big SET payload = 'updated {written}' WHERE id % 211 = {} AND id < 80000", id % 211),
            5 => format!("DELETE FROM big WHERE id % 4999 = {} AND id < 80000", id % 4999),
            1 => format!("DELETE FROM big WHERE id = {id}"),
            2 => format!("INSERT INTO big VALUES ({}, 'inserted') ON CONFLICT DO NOTHING", BIG_ROWS + written as i64),
            3 => format!("UPDATE big SET id = id + {BIG_ROWS} * 3 WHERE id = {id}"),
            _ => format!("UPDATE big SET id = -{written} - 1 WHERE id = {id} + {BIG_ROWS} * 3"),
        };
        client.batch_execute(&statement).await.unwrap_or_else(|error| panic!("{statement}: {error}"));
        written += 1;
    }
    written
}

const BIG_ROWS: i64 = 200_000;

#[tokio::test]
async fn postgres_kill_mid_chunked_copy_resumes_after_the_last_committed_chunk() {
    let db = postgres().await;
    db.execute(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, payload text); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, {BIG_ROWS}) g;"
    ))
    .await;
    let lake = TempLake::new();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = tokio::spawn(write_all_over_big(db.connect().await, stop.clone()));
    let chunk = ["--copy-chunk-rows", "10000"];
    let mut child = sync_command(&db, lake.dir.path(), "public.big", &[&chunk[..], &["--continuous"]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    // Killed at a random moment once a few chunks are committed (each chunk is one commit).
    let log = lake.dir.path().join("public").join("big").join("_delta_log");
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

    let copied_before = delta_rows(&lake, "public.big", &["id"]).await;
    assert!(!copied_before.is_empty(), "the kill came before any chunk was committed");
    let bound = copied_before.iter().map(|id| id.parse::<i64>().expect("an id")).max().expect("rows");
    let left: u64 = db.query_value(&format!("SELECT count(*) FROM big WHERE id > {bound}")).await.parse().expect("n");
    let output = sync_command(&db, lake.dir.path(), "public.big", &chunk).output().expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "connector failed: {stderr}");
    let report = String::from_utf8_lossy(&output.stdout);
    let copied_again: u64 = report
        .split("public.big: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|rows| rows.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot rows in the report: {report}"));
    eprintln!("{written} writes; {} rows copied before the kill, {copied_again} after", copied_before.len());
    // The second run copies only what follows the last committed chunk (keys above the highest copied one,
    // which may be a little below the committed bound when rows near it were deleted): never from the start.
    assert!(copied_again <= left, "copied {copied_again} rows again, only {left} lie past the copied ones: {stderr}");
    assert!(stderr.contains("resuming the copy"), "{stderr}");
    assert_equal(&db, &lake, "public.big", &["id", "payload"]).await;

    db.execute("UPDATE big SET payload = 'streamed' WHERE id % 1000 = 0; DELETE FROM big WHERE id % 999 = 0").await;
    sync_once(&db, lake.dir.path(), "public.big");
    assert_equal(&db, &lake, "public.big", &["id", "payload"]).await;
}

#[tokio::test]
async fn postgres_a_column_added_during_a_chunked_copy_lands_with_its_values() {
    let db = postgres().await;
    db.execute(
        "CREATE TABLE grown (id int PRIMARY KEY, label text); \
         INSERT INTO grown SELECT g, 'row ' || g FROM generate_series(1, 30000) g;",
    )
    .await;
    let lake = TempLake::new();
    let mut child = sync_command(&db, lake.dir.path(), "public.grown", &["--copy-chunk-rows", "1000", "--continuous"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    let log = lake.dir.path().join("public").join("grown").join("_delta_log");
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while commits_in(&log) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Rows copied already get the values from the stream; rows not copied yet, from the chunks that read them.
    db.execute("ALTER TABLE grown ADD COLUMN extra int; UPDATE grown SET extra = id % 7").await;
    wait_for_column(&log, "extra").await;
    wait_until_equal(&db, &lake, "public.grown", &["id", "label", "extra"]).await;
    terminate(&child);
    assert!(wait_for_exit(&mut child).success());
}

/// A chunk's snapshot (a temporary slot) waits for the transactions open on the server; one left open must not
/// stall the stream of the other tables: the chunk is given up after a few seconds and tried again later.
#[tokio::test]
async fn postgres_a_chunk_waiting_for_an_open_transaction_does_not_stall_the_other_tables() {
    let db = postgres().await;
    db.execute(&format!("{ORDERS} {ITEMS} CREATE TABLE blocker (id int PRIMARY KEY)")).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    let open = db.connect().await;
    open.batch_execute("BEGIN; INSERT INTO blocker VALUES (1)").await.expect("open a transaction");

    let mut child = sync_command(&db, lake.dir.path(), "public.orders,public.items", &["--continuous"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start connector");
    db.execute("UPDATE orders SET note = 'streamed past the waiting copy' WHERE id <= 10").await;
    wait_until_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    assert!(delta_rows(&lake, "public.items", &["id"]).await.is_empty(), "items was copied past an open transaction");

    open.batch_execute("COMMIT").await.expect("end the transaction");
    wait_until_equal(&db, &lake, "public.items", &["id", "name"]).await;
    terminate(&child);
    let status = wait_for_exit(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("a chunk's snapshot waits for the source"), "{stderr}");
}

#[tokio::test]
async fn postgres_types_land_as_documented_in_snapshot_and_stream() {
    let db = postgres().await;
    db.execute(
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); \
         CREATE DOMAIN positive AS numeric(8,3) CHECK (VALUE > 0); \
         CREATE TYPE pair AS (label text, score int); \
         CREATE TABLE typed (id int PRIMARY KEY, small smallint, big bigint, exact numeric(12,4), free numeric, \
           single real, twice double precision, flag boolean, label varchar(20), fixed char(3), body text, \
           raw bytea, day date, clock time, clock_tz timetz, moment timestamp, instant timestamptz, span interval, \
           ident uuid, doc json, docb jsonb, tags text[], grid int[][], feeling mood, amount positive, couple pair, \
           window_ int4range, addr inet, net cidr, mac macaddr, cash money, bits bit(4), vbits varbit, \
           words tsvector, spot point, markup xml, twice_id bigint GENERATED ALWAYS AS (id * 2) STORED);",
    )
    .await;
    let values = "1, -32768, 9223372036854775807, -12345678.1234, 'NaN', 1.5, -2.25e-10, true, 'héllo', 'ab', \
        'long text', '\\x00ff10', '2024-02-29', '13:45:06.5', '01:02:03+02', '2024-01-31 23:59:59.123456', \
        '2024-01-31 23:59:59+01', '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', \
        '{\"a\": [1, 2]}', '{\"b\": true}', '{x,NULL,\"y z\"}', '{{1,2},{3,4}}', 'happy', 7.125, '(\"lbl\",5)', \
        '[3,7)', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 12.34, B'1010', B'101', 'a fat:2 cat:1', \
        '(1.5,-2)', '<a>x</a>'";
    db.execute(&format!("INSERT INTO typed VALUES ({values}); INSERT INTO typed (id) VALUES (2)")).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.typed");
    // The same values through the stream, and NULLs in every column.
    db.execute(&format!(
        "INSERT INTO typed VALUES ({}); INSERT INTO typed (id) VALUES (4)",
        values.replacen("1,", "3,", 1)
    ))
    .await;
    sync_once(&db, lake.dir.path(), "public.typed");

    let columns = [
        "id", "small", "big", "exact", "free", "single", "twice", "flag", "label", "fixed", "body", "raw", "day",
        "clock", "clock_tz", "moment", "instant", "span", "ident", "doc", "docb", "tags", "grid", "feeling", "amount",
        "couple", "window_", "addr", "net", "mac", "cash", "bits", "vbits", "words", "spot", "markup",
    ];
    let rows = delta_rows(&lake, "public.typed", &columns).await;
    let expected = "-32768|9223372036854775807|-12345678.1234|NaN|1.5|-2.25e-10|true|héllo|ab |long text|00ff10|\
        2024-02-29|13:45:06.5|01:02:03+02|2024-01-31T23:59:59.123456|2024-01-31T22:59:59Z|P1Y2M3DT4H5M6.5S|\
        a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"a\": [1, 2]}|{\"b\": true}|[x, , y z]|[[1, 2], [3, 4]]|happy|7.125|\
        {\"label\":\"lbl\",\"score\":5}|[3,7)|192.168.0.1/24|10.0.0.0/8|08:00:2b:01:02:03|12.34|1010|101|'a' 'cat':1 'fat':2|\
        (1.5,-2)|<a>x</a>";
    let nulls = vec!["∅"; columns.len() - 1].join("|");
    assert_eq!(
        rows,
        vec![format!("1|{expected}"), format!("2|{nulls}"), format!("3|{expected}"), format!("4|{nulls}")]
    );
    // Generated columns are not replicated by PostgreSQL 15, so they are left out rather than left stale.
    let id = TableId::parse("public.typed").expect("name");
    let table = connector_core::deltalake::open_table(lake.table_url(&id)).await.expect("open");
    let schema = table.snapshot().expect("snapshot").schema();
    assert!(schema.field("twice_id").is_none(), "generated column landed");
}

#[tokio::test]
async fn postgres_truncate_and_schema_changes_while_streaming() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");

    db.execute(
        "ALTER TABLE orders ADD COLUMN region text DEFAULT 'eu'; \
         INSERT INTO orders VALUES (7000, 'added', 1, NULL, 'us'); \
         UPDATE orders SET region = 'apac' WHERE id = 2; \
         ALTER TABLE orders DROP COLUMN note; \
         UPDATE orders SET amount = 0 WHERE id = 3;",
    )
    .await;
    sync_once(&db, lake.dir.path(), "public.orders");
    // Rows untouched since the column was added hold its default, as in the source (PostgreSQL keeps it in
    // `attmissingval` and the log never shows those rows).
    assert_equal(&db, &lake, "public.orders", &["id", "customer", "amount", "region"]).await;
    // The dropped column stays, null for rows changed after the drop.
    let notes = delta_rows(&lake, "public.orders", &["id", "note"]).await;
    assert!(notes.contains(&"3|∅".to_string()) && notes.contains(&"4|n".to_string()), "{notes:?}");

    db.execute("TRUNCATE orders; INSERT INTO orders (id, customer) VALUES (1, 'fresh')").await;
    sync_once(&db, lake.dir.path(), "public.orders");
    assert_eq!(delta_rows(&lake, "public.orders", &["id", "customer"]).await, vec!["1|fresh"]);
}

#[tokio::test]
async fn postgres_column_added_with_a_volatile_default_reads_the_rows_back_from_the_source() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");

    // `now()` is stable: PostgreSQL keeps the one value of the ALTER for every earlier row.
    db.execute(
        "ALTER TABLE orders ADD COLUMN stamped timestamptz DEFAULT now(); UPDATE orders SET amount = 1 WHERE id = 2",
    )
    .await;
    sync_once(&db, lake.dir.path(), "public.orders");
    let stamps = delta_rows(&lake, "public.orders", &["id", "stamped"]).await;
    assert!(stamps.iter().all(|row| !row.ends_with("|∅")), "rows without their stamp: {stamps:?}");

    // `random()` is volatile: PostgreSQL rewrites every row with its own value, which the log never shows.
    db.execute(
        "ALTER TABLE orders ADD COLUMN token int DEFAULT (random() * 1000000)::int; \
         UPDATE orders SET amount = 0 WHERE id = 3;",
    )
    .await;
    let output = sync_failing(&db, lake.dir.path(), "public.orders");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`token`") && stderr.contains("the next sync copies it again"), "{stderr}");
    // The rows that lack their values are gone and nothing of the stopped sync landed: the copy brings both.
    assert_eq!(delta_rows(&lake, "public.orders", &["id", "amount"]).await, Vec::<String>::new());

    // No resync by hand: the next sync reads the rows back from the source, with the changes after the ALTER.
    sync_once(&db, lake.dir.path(), "public.orders");
    assert_equal(&db, &lake, "public.orders", &["id", "customer", "amount", "token"]).await;

    // Under `connector run` the pipeline stops at such a column and, retried by itself, copies the table again.
    let pipeline = "name = \"test\"\nprofile = \"shop\"\ntables = [\"public.orders\"]\nschedule = \"continuous\"";
    let mut child = start_run(&db, &lake, &[pipeline], Stdio::null());
    db.execute(
        "ALTER TABLE orders ADD COLUMN lucky int DEFAULT (random() * 1000000)::int; \
         UPDATE orders SET amount = 9 WHERE id = 4; INSERT INTO orders (id, customer) VALUES (9000, 'after')",
    )
    .await;
    // The update and the insert share the ALTER's transaction: they land only with the column, by the copy.
    wait_until_equal(&db, &lake, "public.orders", &["id", "customer", "amount"]).await;
    assert_equal(&db, &lake, "public.orders", &["id", "customer", "amount", "token", "lucky"]).await;
    terminate(&child);
    let status = wait_for_exit(&mut child);
    assert!(status.success(), "connector did not stop cleanly on SIGTERM: {status}");
}

#[tokio::test]
async fn postgres_keyless_tables_need_a_replica_identity_and_become_changelogs() {
    let db = postgres().await;
    db.execute("CREATE TABLE events (kind text, at int); INSERT INTO events VALUES ('a', 1), ('b', 2)").await;
    let lake = TempLake::new();

    let output = sync_failing(&db, lake.dir.path(), "public.events");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ALTER TABLE \"public\".\"events\" REPLICA IDENTITY FULL"), "{stderr}");
    // The check ran before anything was created: the table still accepts updates.
    db.execute("UPDATE events SET at = 3 WHERE kind = 'b'").await;

    db.execute("ALTER TABLE events REPLICA IDENTITY FULL").await;
    sync_once(&db, lake.dir.path(), "public.events");
    db.execute("UPDATE events SET at = 4 WHERE kind = 'a'; DELETE FROM events WHERE kind = 'b'").await;
    sync_once(&db, lake.dir.path(), "public.events");
    let changelog = delta_rows(&lake, "public.events", &["_cdc_op", "kind", "at"]).await;
    assert_eq!(changelog, vec!["delete|b|3", "snapshot|a|1", "snapshot|b|3", "update|a|4"]);
}

#[tokio::test]
async fn postgres_partition_changes_land_in_the_root_table() {
    let db = postgres().await;
    db.execute(
        "CREATE TABLE measures (id int, year int, value text, PRIMARY KEY (id, year)) PARTITION BY RANGE (year); \
         CREATE TABLE measures_2023 PARTITION OF measures FOR VALUES FROM (2023) TO (2024); \
         CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM (2024) TO (2025); \
         INSERT INTO measures VALUES (1, 2023, 'a'), (2, 2024, 'b');",
    )
    .await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.measures");
    db.execute("INSERT INTO measures VALUES (3, 2024, 'c'); UPDATE measures SET value = 'z' WHERE id = 1").await;
    sync_once(&db, lake.dir.path(), "public.measures");
    let columns = ["id", "year", "value"];
    assert_eq!(delta_rows(&lake, "public.measures", &columns).await, source_rows(&db, "measures", &columns).await);
}

#[tokio::test]
async fn postgres_without_logical_wal_or_rights_says_what_to_change() {
    let db = postgres().await;
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY); CREATE ROLE reader LOGIN PASSWORD 'pw'; \
         GRANT SELECT ON orders TO reader",
    )
    .await;
    let lake = TempLake::new();
    let mut url = url::Url::parse(db.url()).expect("url");
    url.set_username("reader").expect("user");
    url.set_password(Some("pw")).expect("password");
    let output = Command::new(CONNECTOR)
        .args(["sync", "postgres", "--url", url.as_str(), "--tables", "public.orders", "--dest"])
        .arg(lake.dir.path())
        .output()
        .expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ALTER ROLE \"reader\" WITH REPLICATION"), "{stderr}");
    assert!(!stderr.contains("pw@"), "the password leaked: {stderr}");
    db.execute("DROP OWNED BY reader; DROP ROLE reader").await;
}

#[tokio::test]
async fn postgres_unchanged_toast_values_keep_their_value() {
    let db = postgres().await;
    // Values of ~6 KiB of hex do not compress below the TOAST threshold, so they are stored out of line and
    // an UPDATE of another column does not send them (pgoutput's `u`).
    db.execute(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text, meta jsonb); \
         INSERT INTO docs SELECT g, 'doc ' || g, (SELECT string_agg(md5(i::text || g::text || random()::text), '') FROM generate_series(1, 200) i), \
           jsonb_build_object('blob', (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 200) i)) \
         FROM generate_series(1, 20) g;",
    )
    .await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.docs");
    db.execute(
        "UPDATE docs SET title = 'renamed' WHERE id <= 5; \
         INSERT INTO docs VALUES (100, 'new', (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 200)), '{}'); \
         UPDATE docs SET title = 'new, renamed' WHERE id = 100; \
         UPDATE docs SET title = 'renamed twice' WHERE id = 1;",
    )
    .await;
    sync_once(&db, lake.dir.path(), "public.docs");
    let columns = ["id", "title", "body", "meta"];
    assert_equal(&db, &lake, "public.docs", &columns).await;
}

/// About 10 KiB of hex per row `g`: md5 chains do not compress, so the value is TOASTed out of line and an UPDATE
/// that leaves it alone does not send it.
fn large_text(seed: &str) -> String {
    format!("(SELECT string_agg(md5(i::text || {seed}::text), '') FROM generate_series(1, 320) i)")
}

#[tokio::test]
async fn postgres_key_change_keeps_an_unchanged_toasted_value() {
    let db = postgres().await;
    db.execute(&format!(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text); \
         INSERT INTO docs SELECT g, 'doc ' || g, {} FROM generate_series(1, 10) g;",
        large_text("g")
    ))
    .await;
    let lake = TempLake::new();
    let columns = ["id", "title", "body"];
    sync_once(&db, lake.dir.path(), "public.docs");

    // Only the key changes: the server sends the old key and, for the body, "unchanged".
    db.execute("UPDATE docs SET id = id + 1000 WHERE id <= 3").await;
    sync_once(&db, lake.dir.path(), "public.docs");
    assert_equal(&db, &lake, "public.docs", &columns).await;
    assert_eq!(db.query_value("SELECT count(*) FROM docs WHERE id <= 3").await, "0");

    // In one batch: a key change and an insert of the old key in the same transaction; one row's key changed
    // twice, in two transactions and within one; a body changed, then its key.
    db.execute(&format!(
        "BEGIN; UPDATE docs SET id = 4000 WHERE id = 4; INSERT INTO docs VALUES (4, 'reborn', {}); COMMIT;",
        large_text("'reborn'")
    ))
    .await;
    db.execute("UPDATE docs SET id = 5000 WHERE id = 5").await;
    db.execute("UPDATE docs SET id = 6000 WHERE id = 5000").await;
    db.execute("BEGIN; UPDATE docs SET id = 7000 WHERE id = 7; UPDATE docs SET id = 7001 WHERE id = 7000; COMMIT;")
        .await;
    db.execute(&format!("UPDATE docs SET body = {} WHERE id = 8", large_text("'new body'"))).await;
    db.execute("UPDATE docs SET id = 8000 WHERE id = 8").await;
    db.execute("UPDATE docs SET id = 1 WHERE id = 1001").await;
    sync_once(&db, lake.dir.path(), "public.docs");
    assert_equal(&db, &lake, "public.docs", &columns).await;
}

#[tokio::test]
async fn postgres_replica_identity_using_index_identifies_rows() {
    let db = postgres().await;
    db.execute(
        "CREATE TABLE accounts (email text NOT NULL, name text); CREATE UNIQUE INDEX accounts_email ON accounts (email); \
         ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_email; \
         INSERT INTO accounts VALUES ('a@x', 'ada'), ('b@x', 'bob');",
    )
    .await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.accounts");
    db.execute("UPDATE accounts SET name = 'ada l.' WHERE email = 'a@x'; DELETE FROM accounts WHERE email = 'b@x'")
        .await;
    sync_once(&db, lake.dir.path(), "public.accounts");
    // Without a primary key the table is a changelog: every change is a row.
    let changelog = delta_rows(&lake, "public.accounts", &["_cdc_op", "email", "name"]).await;
    assert_eq!(changelog, vec!["delete|b@x|∅", "snapshot|a@x|ada", "snapshot|b@x|bob", "update|a@x|ada l."]);
}

#[tokio::test]
async fn postgres_resync_copies_one_table_again() {
    let db = postgres().await;
    db.execute(&format!(
        "{ORDERS} CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'pen')"
    ))
    .await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders,public.items");
    db.execute("UPDATE orders SET note = 'x' WHERE id = 1; INSERT INTO items VALUES (2, 'ink')").await;

    resync(lake.dir.path(), "test", "public.orders");
    assert!(delta_rows(&lake, "public.orders", &["id"]).await.is_empty());

    let report = sync_once(&db, lake.dir.path(), "public.orders,public.items");
    assert!(report.contains("public.orders: 2000 snapshot rows"), "{report}");
    assert!(report.contains("public.items: 0 snapshot rows, 1 changes"), "{report}");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    assert_equal(&db, &lake, "public.items", &["id", "name"]).await;
}

#[tokio::test]
async fn postgres_a_table_added_later_is_copied_while_the_others_stream_on() {
    let db = postgres().await;
    db.execute(&format!(
        "{ORDERS} CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'pen')"
    ))
    .await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    db.execute("UPDATE orders SET note = 'before' WHERE id = 1; INSERT INTO items VALUES (2, 'ink')").await;

    let report = sync_once(&db, lake.dir.path(), "public.orders,public.items");
    assert!(report.contains("public.items: 2 snapshot rows"), "{report}");
    assert!(report.contains("public.orders: 0 snapshot rows, 1 changes"), "{report}");
    db.execute("UPDATE items SET name = 'quill' WHERE id = 1").await;
    sync_once(&db, lake.dir.path(), "public.orders,public.items");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    assert_equal(&db, &lake, "public.items", &["id", "name"]).await;
}

#[tokio::test]
async fn postgres_drop_removes_the_slot_and_publication() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    let output = Command::new(CONNECTOR).args(["drop", "--pipeline", "test", "--url", db.url()]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let left = db
        .query_value(
            "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'connector_test') + \
                    (SELECT count(*) FROM pg_publication WHERE pubname = 'connector_test')",
        )
        .await;
    assert_eq!(left, "0");
}

#[tokio::test]
async fn postgres_status_shows_the_slot_lag_and_retained_wal() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    // 2000 updates the connector has not seen yet: the slot falls behind by their WAL.
    db.execute("UPDATE orders SET note = repeat('x', 100)").await;
    let lag = db
        .query_value(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8::text FROM pg_replication_slots \
             WHERE slot_name = 'connector_test'",
        )
        .await;

    let output = Command::new(CONNECTOR)
        .args(["status", "--json", "--url", db.url(), "--pipeline", "test", "--dest"])
        .arg(lake.dir.path())
        .output()
        .expect("run connector");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON status");
    let slot = &status["slots"][0];
    assert_eq!(slot["slot"], "connector_test");
    assert_eq!(slot["active"], false);
    // WAL only grows, so the lag read after the updates is at least what they wrote.
    let lag: i64 = lag.parse().expect("bytes");
    assert!(lag > 0 && slot["lag_bytes"].as_i64().expect("lag") >= lag, "{slot} vs {lag}");
    assert!(slot["retained_bytes"].as_i64().expect("retained") >= slot["lag_bytes"].as_i64().expect("lag"));
    assert_eq!(status["tables"][0]["table"]["name"], "orders");
}

#[tokio::test]
async fn postgres_syncs_over_tls_with_certificate_checks() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let Some(certificate) = db.tls_certificate() else {
        // An external server (CONNECTOR_TEST_PG_URL) presents no certificate we know: check what `require` does.
        let mut url = url::Url::parse(db.url()).expect("url");
        url.query_pairs_mut().append_pair("sslmode", "require");
        let output = Command::new(CONNECTOR)
            .args(["sync", "postgres", "--url", url.as_str(), "--tables", "public.orders", "--dest"])
            .arg(lake.dir.path())
            .output()
            .expect("run connector");
        if db.query_value("SHOW ssl").await == "on" {
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success() && stderr.contains("cannot connect"), "{stderr}");
        }
        return;
    };
    let with_tls = |mode: &str, host: &str| {
        let mut url = url::Url::parse(db.url()).expect("url");
        url.set_host(Some(host)).expect("host");
        url.query_pairs_mut()
            .append_pair("sslmode", mode)
            .append_pair("sslrootcert", certificate.to_str().expect("path"));
        url.to_string()
    };
    let run = |url: &str| {
        Command::new(CONNECTOR)
            .args(["sync", "postgres", "--url", url, "--tables", "public.orders", "--pipeline", "tls", "--dest"])
            .arg(lake.dir.path())
            .output()
            .expect("run connector")
    };

    // The certificate names localhost (the replication transport checks names, not IP addresses).
    let output = run(&with_tls("verify-full", "localhost"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    db.execute("UPDATE orders SET note = 'over tls' WHERE id = 1").await;
    let output = run(&with_tls("require", "127.0.0.1"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;

    // Against a certificate from another authority, verify-full refuses to connect: the handshake is checked.
    let other = tempfile::tempdir().expect("tempdir");
    let status = Command::new("openssl")
        .args(["req", "-new", "-x509", "-days", "1", "-nodes", "-subj", "/CN=localhost", "-keyout"])
        .arg(other.path().join("key.pem"))
        .arg("-out")
        .arg(other.path().join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let mut wrong = url::Url::parse(&with_tls("verify-full", "localhost")).expect("url");
    let other_certificate = other.path().join("cert.pem");
    wrong
        .query_pairs_mut()
        .clear()
        .append_pair("sslmode", "verify-full")
        .append_pair("sslrootcert", other_certificate.to_str().expect("path"));
    let output = run(wrong.as_str());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "connected despite an untrusted certificate");
    assert!(stderr.contains("cannot connect") && stderr.contains("certificate"), "{stderr}");
}

#[tokio::test]
async fn postgres_sslrootcert_makes_require_and_verify_ca_check_the_chain_on_both_connections() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = certificate_of_another_authority(other.path(), "localhost");
    for mode in ["require", "verify-ca"] {
        let mut url = url::Url::parse(db.url()).expect("url");
        url.query_pairs_mut().append_pair("sslmode", mode).append_pair("sslrootcert", other_ca.to_str().expect("path"));
        let output = pipeline_sync_command(url.as_str(), "tls", lake.dir.path(), "public.orders", &[])
            .output()
            .expect("run connector");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "sslmode={mode} with another CA must be refused: {stderr}");
        assert!(stderr.contains(&format!("sslmode={mode}, sslrootcert={}", other_ca.display())), "{stderr}");
        assert!(stderr.contains("set sslrootcert to the CA file that signed it"), "{stderr}");
        assert!(!lake.dir.path().join("public").exists(), "sslmode={mode}: nothing may be written");
    }
    // The replication connection makes the same check: with the right CA the SQL connection passes, and a
    // replication connection that checked nothing would pass too; both pass, and the sync completes.
    let certificate = db.tls_certificate().expect("a local server's CA");
    let mut url = url::Url::parse(db.url()).expect("url");
    url.query_pairs_mut()
        .append_pair("sslmode", "require")
        .append_pair("sslrootcert", certificate.to_str().expect("p"));
    let output =
        pipeline_sync_command(url.as_str(), "tls", lake.dir.path(), "public.orders", &[]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn postgres_uses_tls_by_default_on_every_connection() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let mut child = sync_command(&db, lake.dir.path(), "public.orders", &["--continuous"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    // Once streaming, the connector holds a SQL session and a replication session (walsender) on the database.
    let sessions = format!(
        "SELECT a.backend_type || ':' || s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = '{}' AND a.pid <> pg_backend_pid() ORDER BY 1",
        db.name()
    );
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    let seen = loop {
        let rows: Vec<String> = db.query(&sessions).await.into_iter().filter_map(|row| row[0].clone()).collect();
        if rows.iter().any(|row| row.starts_with("walsender")) && rows.iter().any(|row| row.starts_with("client")) {
            break rows;
        }
        assert!(Instant::now() < deadline, "the connector never started streaming: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    terminate(&child);
    wait_for_exit(&mut child);
    assert!(seen.iter().all(|row| row.ends_with(":true")), "a connection without TLS: {seen:?}");
}

#[tokio::test]
async fn postgres_warns_once_when_the_password_crosses_the_network_unchecked() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let url = url::Url::parse(db.url()).expect("url");
    let upstream = format!("{}:{}", url.host_str().expect("host"), url.port().expect("port"));
    let (address, port) = crate::support::forwarder::forward_from_network_address(upstream);
    let mut remote = url.clone();
    remote.set_host(Some(&address.to_string())).expect("host");
    remote.set_port(Some(port)).expect("port");

    // Several SQL connections and a replication connection, all under the default sslmode=prefer.
    let output = pipeline_sync_command(remote.as_str(), "remote", lake.dir.path(), "public.orders", &[])
        .output()
        .expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let target = format!("{address}:{port}");
    let warnings: Vec<&str> = stderr.lines().filter(|line| line.contains("credentials go to")).collect();
    assert_eq!(warnings.len(), 1, "one warning per server: {stderr}");
    assert!(warnings[0].contains("WARN") && warnings[0].contains(&target), "{stderr}");
    assert!(warnings[0].contains("sslmode=prefer") && warnings[0].contains("sslmode=verify-full"), "{stderr}");

    // On loopback nothing crosses a network: no warning.
    let output =
        pipeline_sync_command(db.url(), "remote", lake.dir.path(), "public.orders", &[]).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("credentials go to"), "{stderr}");
}

#[tokio::test]
async fn postgres_a_transaction_larger_than_memory_is_applied_in_parts() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    let log = lake.dir.path().join("public").join("orders").join("_delta_log");
    let commits_before = std::fs::read_dir(&log).expect("log").count();
    // One transaction of 6000 changes, with room for far fewer in memory.
    db.execute(
        "BEGIN; UPDATE orders SET note = repeat('y', 1000), amount = amount * 2; \
         INSERT INTO orders SELECT g, 'big', 1, repeat('z', 1000) FROM generate_series(3001, 5000) g; \
         DELETE FROM orders WHERE id % 10 = 0; COMMIT;",
    )
    .await;
    let output = sync_command(&db, lake.dir.path(), "public.orders", &["--batch-mib", "1"]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    let commits = std::fs::read_dir(&log).expect("log").count() - commits_before;
    assert!(commits >= 2, "one transaction of 6000 rows in a 1 MiB budget should take several commits, took {commits}");
}

#[tokio::test]
async fn postgres_scheduled_pipelines_run_again_and_a_failing_one_stops_no_other() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let pipelines = [
        "name = \"orders\"\nprofile = \"shop\"\ntables = [\"public.orders\"]\nschedule = \"1s\"",
        "name = \"missing\"\nprofile = \"shop\"\ntables = [\"public.no_such_table\"]\nschedule = \"1s\"",
    ];
    let mut child = start_run(&db, &lake, &pipelines, Stdio::piped());
    wait_until_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    // A later change lands through a later scheduled run, while the other pipeline keeps failing.
    db.execute("UPDATE orders SET note = 'scheduled' WHERE id <= 3; DELETE FROM orders WHERE id = 4").await;
    wait_until_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;

    terminate(&child);
    let status = wait_for_exit(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut stderr).expect("read stderr");
    assert!(status.success(), "connector run did not stop cleanly: {status}\n{stderr}");
    assert!(stderr.contains("no_such_table"), "the failing pipeline's error was not reported:\n{stderr}");
}

#[tokio::test]
async fn postgres_a_dropped_publication_stops_with_the_way_out() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    // While the connector is away, someone drops its publication and changes rows.
    db.execute("DROP PUBLICATION connector_test; UPDATE orders SET note = 'unseen' WHERE id = 1").await;

    let output = sync_failing(&db, lake.dir.path(), "public.orders");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("publication connector_test was dropped"), "{stderr}");
    assert!(stderr.contains("connector drop --pipeline test"), "{stderr}");

    // The way out works: drop, sync again, and the table equals the source.
    let output = Command::new(CONNECTOR).args(["drop", "--pipeline", "test", "--url", db.url()]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    sync_once(&db, lake.dir.path(), "public.orders");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn postgres_kill_between_parts_of_a_large_transaction_then_restart_converges() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders");
    let log = lake.dir.path().join("public").join("orders").join("_delta_log");
    let commits_before = std::fs::read_dir(&log).expect("log").count();
    db.execute(
        "BEGIN; UPDATE orders SET note = repeat('p', 1000), amount = amount + 7; \
         INSERT INTO orders SELECT g, 'part', 2, repeat('q', 1000) FROM generate_series(3001, 6000) g; \
         DELETE FROM orders WHERE id % 9 = 0; COMMIT;",
    )
    .await;
    let mut child = sync_command(&db, lake.dir.path(), "public.orders", &["--batch-mib", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    // Kill as soon as a first part is committed: the transaction is then half applied.
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while std::fs::read_dir(&log).expect("log").count() == commits_before && Instant::now() < deadline {
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(std::fs::read_dir(&log).expect("log").count() > commits_before, "no part was committed before the kill");

    // The restart replays the whole transaction over its applied parts and ends equal to the source.
    sync_once(&db, lake.dir.path(), "public.orders");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn postgres_an_integer_keyed_table_is_copied_in_chunks_and_others_in_ranges_over_parallel_connections() {
    let db = postgres().await;
    // Keys with gaps and negatives, copied in chunks. A text key is split by heap blocks, copied in ranges.
    db.execute(
        "CREATE TABLE wide (id bigint PRIMARY KEY, label text); \
         INSERT INTO wide SELECT g * 7 - 30000, 'row ' || g FROM generate_series(1, 20000) g; ANALYZE wide; \
         CREATE TABLE coded (code text PRIMARY KEY, amount int); \
         INSERT INTO coded SELECT md5(g::text), g FROM generate_series(1, 20000) g; \
         DELETE FROM coded WHERE amount % 5 = 0; ANALYZE coded;",
    )
    .await;
    let lake = TempLake::new();
    let config = lake.dir.path().join("pipelines.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.db]\nkind = \"postgres\"\nurl = \"${{DB_URL}}\"\ncopy_range_rows = 3000\ncopy_chunk_rows = 3000\n\n\
             [[pipelines]]\nname = \"ranges\"\nprofile = \"db\"\ntables = [\"public.wide\", \"public.coded\"]\ndest = \"{}\"\n\
             schedule = \"1h\"\n",
            lake.dir.path().display()
        ),
    )
    .expect("write config");
    let output = Command::new(CONNECTOR)
        .args(["run", "--once", "--config"])
        .arg(&config)
        .env("DB_URL", db.url())
        .env("CONNECTOR_LOG", "info")
        .output()
        .expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // 20,000 rows of `wide` in chunks of 3,000; about 3,000 rows per range of the 16,000 live rows of `coded`.
    assert_eq!(stderr.matches("copied a chunk table=public.wide").count(), 6, "{stderr}");
    assert!(stderr.contains("copied the table table=public.wide rows=20000"), "{stderr}");
    assert!(stderr.contains("copying in ranges table=public.coded ranges=6"), "{stderr}");
    assert_equal(&db, &lake, "public.wide", &["id", "label"]).await;
    assert_equal(&db, &lake, "public.coded", &["code", "amount"]).await;
    // Each chunk wrote files of its own: at least one Parquet file per chunk.
    let files = std::fs::read_dir(lake.dir.path().join("public").join("wide"))
        .expect("table dir")
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "parquet"))
        .count();
    assert!(files >= 7, "{files} files for 7 chunks");
}

const ITEMS: &str =
    "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'pen'), (2, 'ink');";

#[tokio::test]
async fn postgres_a_table_left_out_then_added_back_is_copied_again() {
    let db = postgres().await;
    db.execute(&format!("{ORDERS} {ITEMS}")).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders,public.items");

    // Two syncs without `items` while it changes: the slot passes (and acknowledges) its changes.
    db.execute("UPDATE items SET name = 'quill' WHERE id = 1; INSERT INTO items VALUES (3, 'nib')").await;
    sync_once(&db, lake.dir.path(), "public.orders");
    db.execute("DELETE FROM items WHERE id = 2; UPDATE orders SET note = 'meanwhile' WHERE id = 1").await;
    sync_once(&db, lake.dir.path(), "public.orders");

    let output = sync_command(&db, lake.dir.path(), "public.orders,public.items", &[]).output().expect("run");
    let (report, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(report.contains("public.items: 2 snapshot rows"), "{report}");
    assert!(report.contains("public.orders: 0 snapshot rows, 0 changes"), "{report}");
    assert!(stderr.contains("left out of the pipeline"), "the log should say why items is copied: {stderr}");
    assert_equal(&db, &lake, "public.items", &["id", "name"]).await;
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;

    // From then on it streams, and a table that stayed in the pipeline while idle is not copied again.
    db.execute("UPDATE items SET name = 'fountain pen' WHERE id = 1").await;
    let report = sync_once(&db, lake.dir.path(), "public.orders,public.items");
    assert!(report.contains("public.items: 0 snapshot rows, 1 changes"), "{report}");
    assert!(report.contains("public.orders: 0 snapshot rows, 0 changes"), "{report}");
    assert_equal(&db, &lake, "public.items", &["id", "name"]).await;
}

#[tokio::test]
async fn postgres_a_second_destination_of_the_same_pipeline_is_refused() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let (first, second) = (TempLake::new(), TempLake::new());
    sync_once(&db, first.dir.path(), "public.orders");

    // One slot cannot feed two destinations: each would miss the changes the other acknowledges.
    let output = sync_command(&db, second.dir.path(), "public.orders", &[]).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let first_path = std::fs::canonicalize(first.dir.path()).expect("path");
    assert!(stderr.contains(first_path.to_str().expect("utf-8")), "the error should name the first lake: {stderr}");
    assert!(stderr.contains("another pipeline name"), "the error should name the fix: {stderr}");
    assert!(!second.dir.path().join("public").join("orders").join("_delta_log").exists(), "the refused sync wrote");

    // The first destination goes on as before.
    db.execute("UPDATE orders SET note = 'after the refusal' WHERE id <= 5").await;
    let report = sync_once(&db, first.dir.path(), "public.orders");
    assert!(report.contains("public.orders: 0 snapshot rows, 5 changes"), "{report}");
    assert_equal(&db, &first, "public.orders", ORDER_COLUMNS).await;
}

#[tokio::test]
async fn postgres_a_pipeline_synced_before_destinations_were_recorded_keeps_its_slot() {
    let db = postgres().await;
    db.execute(&format!("{ORDERS} {ITEMS}")).await;
    let lake = TempLake::new();
    sync_once(&db, lake.dir.path(), "public.orders,public.items");
    // What an earlier version left: the slot and publication, nothing recorded on them.
    db.execute("COMMENT ON PUBLICATION connector_test IS NULL").await;
    db.execute("UPDATE orders SET note = 'upgraded' WHERE id <= 3; UPDATE items SET name = 'quill' WHERE id = 1").await;

    let report = sync_once(&db, lake.dir.path(), "public.orders,public.items");
    assert!(report.contains("public.orders: 0 snapshot rows, 3 changes"), "{report}");
    assert!(report.contains("public.items: 0 snapshot rows, 1 changes"), "{report}");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    assert_equal(&db, &lake, "public.items", &["id", "name"]).await;
    // That sync recorded its destination: another one is now refused.
    let other = TempLake::new();
    let output = sync_command(&db, other.dir.path(), "public.orders", &[]).output().expect("run");
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn postgres_pipelines_whose_slot_names_collide_are_refused() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let (lake, other) = (TempLake::new(), TempLake::new());
    let output = pipeline_sync_command(db.url(), "a-b", lake.dir.path(), "public.orders", &[]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // `a_b` would use the slot of `a-b` (a `-` becomes `_`): refused, naming both and the fix.
    for dest in [other.dir.path(), lake.dir.path()] {
        let output = pipeline_sync_command(db.url(), "a_b", dest, "public.orders", &[]).output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("`a-b`") && stderr.contains("`a_b`") && stderr.contains("slot"), "{stderr}");
    }
    let output = Command::new(CONNECTOR).args(["drop", "--pipeline", "a_b", "--url", db.url()]).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("`a-b`"), "dropped another pipeline's slot: {stderr}");

    // `a-b` itself is found by status and drop, and syncs on.
    db.execute("UPDATE orders SET note = 'still a-b' WHERE id = 1").await;
    let output = pipeline_sync_command(db.url(), "a-b", lake.dir.path(), "public.orders", &[]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    let output = Command::new(CONNECTOR)
        .args(["status", "--json", "--url", db.url(), "--pipeline", "a-b", "--dest"])
        .arg(lake.dir.path())
        .output()
        .expect("run connector");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON status");
    assert_eq!(status["slots"][0]["slot"], "connector_a_b");
    assert_eq!(status["slots"][0]["exists"], true);
    let output = Command::new(CONNECTOR).args(["drop", "--pipeline", "a-b", "--url", db.url()]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(db.query_value("SELECT count(*) FROM pg_replication_slots").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_after_a_lost_connection_waits_for_the_slot() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    // The server ends a replication connection whose client stopped answering after this long (default 60 s).
    db.execute(&format!("ALTER DATABASE \"{}\" SET wal_sender_timeout = '5s'", db.name())).await;
    let server = url::Url::parse(db.url()).expect("url");
    let proxy =
        TcpProxy::start(format!("{}:{}", server.host_str().expect("host"), server.port().unwrap_or(5432))).await;
    let lake = TempLake::new();
    let mut child = pipeline_sync_command(
        &proxy.url_through(db.url()),
        "test",
        lake.dir.path(),
        "public.orders",
        &["--continuous"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start connector");
    wait_until_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    let slot_active = "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'connector_test'";
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    while db.query_value(slot_active).await != "true" {
        assert!(Instant::now() < deadline, "the connector never started streaming");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The connection is lost without being closed, and the connector is restarted (as a supervisor would).
    proxy.fall_silent();
    child.kill().expect("kill -9");
    let _ = child.wait();
    db.execute("UPDATE orders SET note = 'after the partition' WHERE id <= 10").await;
    assert_eq!(db.query_value(slot_active).await, "true", "the server should still hold the slot for the lost client");
    let output = sync_command(&db, lake.dir.path(), "public.orders", &[]).output().expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the restarted sync should wait for the slot: {stderr}");
    assert!(stderr.contains("waiting for the server to release it"), "the log should say why it waits: {stderr}");
    assert_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
}

/// `sync postgres --continuous --metrics-addr`: the slot's retained WAL and lag are served as metrics, read as
/// streaming begins (and every heartbeat interval after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_slot_wal_is_served_as_metrics_while_streaming() {
    let db = postgres().await;
    db.execute(ORDERS).await;
    let lake = TempLake::new();
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let mut child = sync_command(&db, lake.dir.path(), "public.orders", &["--continuous", "--metrics-addr", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_equal(&db, &lake, "public.orders", ORDER_COLUMNS).await;
    let gauge = |text: &str, name: &str| -> Option<f64> {
        let prefix = format!(r#"connector_postgres_slot_{name}{{pipeline="test",slot=""#);
        text.lines()
            .find(|line| line.starts_with(&prefix))
            .and_then(|line| line.rsplit_once(' '))
            .and_then(|(_, value)| value.parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = match reqwest::get(format!("http://{address}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if gauge(&text, "retained_wal_bytes").is_some() && gauge(&text, "lag_bytes").is_some() {
            break text;
        }
        assert!(Instant::now() < deadline, "the slot's WAL never showed:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    terminate(&child);
    wait_for_exit(&mut child);
    let retained = gauge(&text, "retained_wal_bytes").unwrap_or(-1.0);
    let lag = gauge(&text, "lag_bytes").unwrap_or(-1.0);
    assert!(retained >= lag && lag >= 0.0, "retained {retained} ≥ lag {lag} ≥ 0:\n{text}");
}

/// A table's initial copy counts the bytes of the COPY it read in `connector_bytes_read_total`, whether it is
/// copied in chunks while streaming (an integer key) or whole before streaming (a text key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_counts_the_bytes_it_read() {
    use crate::support::scraped_metrics::{assert_copy_read, scrape};
    const ROWS: u64 = 2000;
    const NOTE: u64 = 100;
    let db = postgres().await;
    db.execute(&format!(
        "CREATE TABLE by_number (id int PRIMARY KEY, note text); \
         INSERT INTO by_number SELECT g, repeat('n', {NOTE}) FROM generate_series(1, {ROWS}) g; \
         CREATE TABLE by_code (code text PRIMARY KEY, note text); \
         INSERT INTO by_code SELECT 'c' || g, repeat('n', {NOTE}) FROM generate_series(1, {ROWS}) g;"
    ))
    .await;
    let lake = TempLake::new();
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let tables = "public.by_number,public.by_code";
    let mut child = sync_command(&db, lake.dir.path(), tables, &["--continuous", "--metrics-addr", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start connector");
    wait_until_equal(&db, &lake, "public.by_number", &["id", "note"]).await;
    wait_until_equal(&db, &lake, "public.by_code", &["code", "note"]).await;
    let text = scrape(&address).await;
    terminate(&child);
    wait_for_exit(&mut child);
    for table in ["public.by_number", "public.by_code"] {
        // Each row's note, key and COPY framing (a field count, a length per field): more than the notes alone,
        // less than twice them.
        assert_copy_read(&text, table, ROWS, NOTE);
    }
}
