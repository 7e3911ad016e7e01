//! Chaos: while a write load runs, the connector is killed with SIGKILL at random moments (during a copy, a
//! merge, a commit) and restarted at once, as a supervisor would; some trials first resync a table so that the
//! next run copies it under load. At the end the load stops, a `--once` sync catches up, and the lake must equal
//! the source row by row, with a keyless table's rows exactly once each.
//!
//! `CONNECTOR_CHAOS_TRIALS` sets the number of kills (default 10, what CI runs; `scripts/chaos.sh` runs 100).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::soak::{connector_sync, run_to_end};
use crate::support::delta::TempLake;
use crate::support::load::{
    PGBENCH_TABLES, StopFlag, assert_mysql_load_landed, assert_pgbench_landed, mysql_load_table_list,
    mysql_load_tables, mysql_write_load, pgbench, pgbench_tables,
};
use crate::support::servers::{mariadb, postgres};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

fn trials() -> usize {
    std::env::var("CONNECTOR_CHAOS_TRIALS").ok().and_then(|text| text.parse().ok()).unwrap_or(10)
}

/// How long a trial lets the connector run before killing it: anywhere from its start-up to a few commits.
fn random_lifetime() -> Duration {
    Duration::from_millis(fastrand::u64(50..3_000))
}

/// Runs `trials()` kill-and-restart trials of `sync`: each starts it with `--continuous`, kills it with SIGKILL
/// after a random lifetime, and every fourth first runs `resync` (so a copy is in flight when the kill comes).
/// Returns the kills made.
async fn kill_and_restart(sync: impl Fn() -> Command, resync: impl Fn() -> Command) -> usize {
    let mut kills = 0;
    for trial in 0..trials() {
        if trial % 4 == 3 {
            let output = resync().output().expect("run resync");
            let stderr = String::from_utf8_lossy(&output.stderr);
            // A table whose first copy was killed before its commit has nothing to resync yet.
            assert!(output.status.success() || stderr.contains("holds no progress"), "resync failed: {stderr}");
        }
        let mut child = sync().arg("--continuous").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start");
        // The random moment of the kill is the point of the test, not a wait for something to happen.
        tokio::time::sleep(random_lifetime()).await;
        if child.try_wait().expect("poll the connector").is_none() {
            child.kill().expect("kill -9");
            kills += 1;
        }
        child.wait().expect("reap the connector");
    }
    kills
}

fn resync_command(lake: &std::path::Path, pipeline: &str, table: &str) -> Command {
    let mut command = Command::new(CONNECTOR);
    command.args(["resync", "--pipeline", pipeline, "--table", table, "--dest"]).arg(lake);
    command
}

#[tokio::test]
async fn mysql_chaos_sigkill_at_random_moments_loses_and_doubles_nothing() {
    let db = mariadb().await;
    let rows = 20_000;
    db.execute(&mysql_load_tables(rows)).await;
    let tables = mysql_load_table_list(&db);
    let sbtest = format!("{}.sbtest", db.name());
    let lake = TempLake::new();
    let source = ["mysql", "--url", db.admin_url(), "--tables", &tables];

    let stop = StopFlag::default();
    let load = tokio::spawn(mysql_write_load(db.connect().await, rows, stop.clone()));
    let kills = kill_and_restart(
        || connector_sync(&source, lake.dir.path(), "chaos", &[]),
        || resync_command(lake.dir.path(), "chaos", &sbtest),
    )
    .await;
    stop.stop();
    let committed = load.await.expect("the load ran");
    run_to_end(connector_sync(&source, lake.dir.path(), "chaos", &["--once"]));
    assert_mysql_load_landed(&db, &lake, committed).await;
    eprintln!("mysql chaos: {} trials, {kills} kills, {committed} transactions, lake equal to the source", trials());
}

#[tokio::test]
async fn postgres_chaos_sigkill_at_random_moments_loses_and_doubles_nothing() {
    let db = postgres().await;
    pgbench_tables(&db).await;
    let lake = TempLake::new();
    let source = ["postgres", "--url", db.url(), "--tables", PGBENCH_TABLES];

    // Longer than the trials can take; killed once they are done.
    let mut load = pgbench(&db, Duration::from_secs(3_600))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pgbench");
    let kills = kill_and_restart(
        || connector_sync(&source, lake.dir.path(), "chaos", &[]),
        || resync_command(lake.dir.path(), "chaos", "public.pgbench_accounts"),
    )
    .await;
    load.kill().expect("stop pgbench");
    load.wait().expect("reap pgbench");
    run_to_end(connector_sync(&source, lake.dir.path(), "chaos", &["--once"]));
    assert_pgbench_landed(&db, &lake).await;
    eprintln!("postgres chaos: {} trials, {kills} kills, lake equal to the source", trials());
}
