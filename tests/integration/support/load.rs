//! Steady write loads on a real server while the connector streams: the soak and chaos tests run them and then
//! compare the lake with what the load left in the source.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use connector_core::delta::Destination;
use connector_core::schema::TableId;

use super::connector_process::difference;
use super::delta::{TempLake, read_rows_with};
use super::servers::{MySqlDatabase, PostgresDatabase};

/// Transactions per second the MySQL load aims at: steady, and well within what the connector applies on two
/// cores, so the tests judge correctness rather than throughput.
const MYSQL_TRANSACTIONS_PER_SECOND: u64 = 200;

/// The tables of [`mysql_write_load`]: `sbtest` shaped as sysbench's (keyed), a keyless `ledger` that gains one
/// row per transaction, and a `quiet` table nothing writes to.
pub fn mysql_load_tables(rows: u64) -> String {
    format!(
        "CREATE TABLE sbtest (id bigint PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL, \
           KEY k_1 (k)); \
         CREATE TABLE ledger (tx bigint NOT NULL, amount bigint, note varchar(20), at datetime(6) DEFAULT NOW(6)); \
         CREATE TABLE quiet (id int PRIMARY KEY, v varchar(10)); \
         INSERT INTO quiet VALUES (1, 'idle'); \
         INSERT INTO sbtest SELECT n, n % 1000, CONCAT('c-', n), CONCAT('pad-', n) FROM {}",
        crate::mysql::numbers(1, rows)
    )
}

/// The tables of [`mysql_load_tables`] in `db`, as `--tables` takes them.
pub fn mysql_load_table_list(db: &MySqlDatabase) -> String {
    MYSQL_LOAD_CHECKS.iter().map(|(table, _, _)| format!("{}.{table}", db.name())).collect::<Vec<_>>().join(",")
}

/// A stop flag shared between a test and the load it started.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// sysbench's `oltp_write_only` transaction on `sbtest` of [`mysql_load_tables`] (an index update, a non-index
/// update, a delete and the insert of the same id) plus an insert into the keyless `ledger`, paced at
/// [`MYSQL_TRANSACTIONS_PER_SECOND`] on `conn` until `stop`. Returns the transactions committed.
pub async fn mysql_write_load(mut conn: Conn, rows: u64, stop: StopFlag) -> u64 {
    let mut pace = tokio::time::interval(Duration::from_micros(1_000_000 / MYSQL_TRANSACTIONS_PER_SECOND));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut committed: u64 = 0;
    while !stop.is_set() {
        pace.tick().await;
        let (first, second, third) = (fastrand::u64(1..=rows), fastrand::u64(1..=rows), fastrand::u64(1..=rows));
        let text = format!("{:0>110}", fastrand::u64(..));
        let mut transaction =
            conn.start_transaction(mysql_async::TxOpts::default()).await.expect("start a transaction");
        transaction.exec_drop("UPDATE sbtest SET k = k + 1 WHERE id = ?", (first,)).await.expect("index update");
        transaction.exec_drop("UPDATE sbtest SET c = ? WHERE id = ?", (&text, second)).await.expect("update");
        transaction.exec_drop("DELETE FROM sbtest WHERE id = ?", (third,)).await.expect("delete");
        transaction
            .exec_drop(
                "INSERT INTO sbtest (id, k, c, pad) VALUES (?, ?, ?, ?)",
                (third, committed, &text, "reinserted"),
            )
            .await
            .expect("insert");
        transaction
            .exec_drop("INSERT INTO ledger (tx, amount, note) VALUES (?, ?, ?)", (committed, third, &text[..20]))
            .await
            .expect("ledger insert");
        transaction.commit().await.expect("commit");
        committed += 1;
    }
    let _ = conn.disconnect().await;
    committed
}

/// The source side of the MySQL load's tables, as the Delta side is read: `(table, query, columns)`.
pub const MYSQL_LOAD_CHECKS: &[(&str, &str, &[&str])] = &[
    ("sbtest", "SELECT CAST(id AS CHAR), CAST(k AS CHAR), c, pad FROM sbtest", &["id", "k", "c", "pad"]),
    ("ledger", "SELECT CAST(tx AS CHAR), CAST(amount AS CHAR), note FROM ledger", &["tx", "amount", "note"]),
    ("quiet", "SELECT CAST(id AS CHAR), v FROM quiet", &["id", "v"]),
];

/// Creates pgbench's tables (scale 1: 100,000 accounts) and a `quiet` table nothing writes to; pgbench_history,
/// which has no key, gets `REPLICA IDENTITY FULL` and lands as a changelog.
pub async fn pgbench_tables(db: &PostgresDatabase) {
    let init = Command::new("pgbench").args(["--initialize", "--scale", "1", "--quiet"]).arg(db.url()).output();
    let init = init.expect("run pgbench (Debian's postgresql-client package)");
    assert!(init.status.success(), "pgbench --initialize: {}", String::from_utf8_lossy(&init.stderr));
    db.execute(
        "ALTER TABLE pgbench_history REPLICA IDENTITY FULL; CREATE TABLE quiet (id int PRIMARY KEY); \
         INSERT INTO quiet VALUES (1)",
    )
    .await;
}

/// The tables of [`pgbench_tables`], as `--tables` takes them.
pub const PGBENCH_TABLES: &str =
    "public.pgbench_accounts,public.pgbench_branches,public.pgbench_tellers,public.pgbench_history,public.quiet";

/// pgbench's TPC-B-like transaction (three balance updates and a history insert) from two clients at 200
/// transactions per second in all, for `length`.
pub fn pgbench(db: &PostgresDatabase, length: Duration) -> Command {
    let mut command = Command::new("pgbench");
    command
        .args(["--no-vacuum", "--client", "2", "--rate", "200", "--time"])
        .arg(length.as_secs().max(1).to_string())
        .arg(db.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The source side of pgbench's tables, as the Delta side is read: `(table, query, columns)`. pgbench's
/// `filler` columns are blank-padded `char(n)`, whose text form drops the padding, so they are left out.
pub const PGBENCH_CHECKS: &[(&str, &str, &[&str])] = &[
    (
        "pgbench_accounts",
        "SELECT aid::text, bid::text, abalance::text FROM pgbench_accounts",
        &["aid", "bid", "abalance"],
    ),
    ("pgbench_branches", "SELECT bid::text, bbalance::text FROM pgbench_branches", &["bid", "bbalance"]),
    (
        "pgbench_tellers",
        "SELECT tid::text, bid::text, tbalance::text FROM pgbench_tellers",
        &["tid", "bid", "tbalance"],
    ),
    (
        "pgbench_history",
        "SELECT tid::text, bid::text, aid::text, delta::text FROM pgbench_history",
        &["tid", "bid", "aid", "delta"],
    ),
    ("quiet", "SELECT id::text FROM quiet", &["id"]),
];

/// Rows as `a|b|c` text with `∅` for NULL, sorted as the Delta side is.
pub fn as_sorted_text(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
    let mut rows: Vec<String> = rows
        .into_iter()
        .map(|row| row.into_iter().map(|value| value.unwrap_or_else(|| "∅".into())).collect::<Vec<_>>().join("|"))
        .collect();
    rows.sort();
    rows
}

async fn assert_table_landed(lake: &LakeToRead, table: &TableId, expected: Vec<String>, columns: &[&str]) {
    let url = lake.destination.table_url(table).expect("table url");
    let mut landed = read_rows_with(&url, lake.storage_options.clone(), columns).await;
    landed.sort();
    assert!(landed == expected, "{table} differs from the source: {}", difference(&expected, &landed));
}

/// A lake the tests read back: a local directory, or an object store with its endpoint and credentials.
pub struct LakeToRead {
    pub destination: Destination,
    pub storage_options: HashMap<String, String>,
}

impl From<&TempLake> for LakeToRead {
    fn from(lake: &TempLake) -> Self {
        LakeToRead { destination: lake.destination(), storage_options: HashMap::new() }
    }
}

/// Asserts that the lake holds exactly what the MySQL load left in the source, row by row and column by column
/// (the keyless ledger, a changelog, row for row), and that the ledger holds `committed` rows.
pub async fn assert_mysql_load_landed(db: &MySqlDatabase, lake: &TempLake, committed: u64) {
    assert_mysql_load_landed_in(db, &LakeToRead::from(lake), committed).await;
}

/// [`assert_mysql_load_landed`] for a lake anywhere.
pub async fn assert_mysql_load_landed_in(db: &MySqlDatabase, lake: &LakeToRead, committed: u64) {
    let ledger = db.query_value("SELECT COUNT(*) FROM ledger").await;
    assert_eq!(ledger, committed.to_string(), "the source ledger holds a row per committed transaction");
    for (table, query, columns) in MYSQL_LOAD_CHECKS {
        let expected = as_sorted_text(db.query(query).await);
        assert_table_landed(lake, &TableId::new(db.name(), *table), expected, columns).await;
    }
}

/// Asserts that the lake holds exactly what pgbench left in the source, row by row (pgbench_history, keyless,
/// row for row).
pub async fn assert_pgbench_landed(db: &PostgresDatabase, lake: &TempLake) {
    let history: u64 = db.query_value("SELECT count(*) FROM pgbench_history").await.parse().expect("a count");
    assert!(history > 0, "pgbench committed no transaction");
    for (table, query, columns) in PGBENCH_CHECKS {
        let expected = as_sorted_text(db.query(query).await);
        assert_table_landed(&LakeToRead::from(lake), &TableId::new("public", *table), expected, columns).await;
    }
}
