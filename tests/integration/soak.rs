//! Soak: each database source streams with `--continuous` under a steady write load for longer than every
//! periodic task of the connector (the binlog reader's idle-table advance every 60 s, PostgreSQL's heartbeat every
//! 30 s, the binlog heartbeat every 10 s, commits every second). Then the load stops, the connector is stopped
//! with SIGTERM, a `--once` sync catches up as a user would, and the lake must equal the source row by row and
//! column by column; a keyless table, which lands as a changelog, must hold exactly one row per insert made.
//!
//! `CONNECTOR_SOAK_SECONDS` sets how long the load runs (default 90, the length CI runs; `scripts/soak.sh` runs
//! 300).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::connector_process::{terminate, wait_for_exit};
use crate::support::delta::TempLake;
use crate::support::load::{
    PGBENCH_TABLES, StopFlag, assert_mysql_load_landed, assert_pgbench_landed, mysql_load_table_list,
    mysql_load_tables, mysql_write_load, pgbench, pgbench_tables,
};
use crate::support::servers::{mariadb, postgres};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// How long the write load runs: longer than the connector's longest periodic task (60 s).
fn soak_length() -> Duration {
    let seconds = std::env::var("CONNECTOR_SOAK_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(90);
    Duration::from_secs(seconds)
}

/// `connector sync <source_args> --dest <lake> --pipeline soak <extra>`.
pub fn connector_sync(source_args: &[&str], lake: &Path, pipeline: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(CONNECTOR);
    command
        .arg("sync")
        .args(source_args)
        .arg("--dest")
        .arg(lake)
        .args(["--pipeline", pipeline])
        // A maintenance pass every 5 commits (VACUUM every 50), so kills and cuts land in passes too.
        .args(["--maintenance-every-commits", "5"])
        .args(extra)
        .env("CONNECTOR_LOG", "info");
    command
}

fn spawn_continuous(mut command: Command) -> Child {
    command.arg("--continuous").stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("start connector")
}

fn stop_cleanly(mut child: Child) {
    terminate(&child);
    let status = wait_for_exit(&mut child);
    assert!(status.success(), "connector did not stop cleanly on SIGTERM: {status}");
}

/// Runs `command` to its end, panicking with its stderr if it failed.
pub fn run_to_end(mut command: Command) {
    let output = command.output().expect("run connector");
    assert!(output.status.success(), "connector failed: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn mysql_soak_under_steady_writes_then_catch_up_equals_the_source() {
    let db = mariadb().await;
    let rows = 20_000;
    db.execute(&mysql_load_tables(rows)).await;
    let tables = mysql_load_table_list(&db);
    let lake = TempLake::new();
    let source = ["mysql", "--url", db.admin_url(), "--tables", &tables];

    let stop = StopFlag::default();
    let load = tokio::spawn(mysql_write_load(db.connect().await, rows, stop.clone()));
    let connector = spawn_continuous(connector_sync(&source, lake.dir.path(), "soak", &[]));
    tokio::time::sleep(soak_length()).await;
    stop.stop();
    let committed = load.await.expect("the load ran");
    stop_cleanly(connector);
    run_to_end(connector_sync(&source, lake.dir.path(), "soak", &["--once"]));
    assert_mysql_load_landed(&db, &lake, committed).await;
}

#[tokio::test]
async fn postgres_soak_under_pgbench_then_catch_up_equals_the_source() {
    let db = postgres().await;
    pgbench_tables(&db).await;
    let lake = TempLake::new();
    let source = ["postgres", "--url", db.url(), "--tables", PGBENCH_TABLES];

    let connector = spawn_continuous(connector_sync(&source, lake.dir.path(), "soak", &[]));
    let load = pgbench(&db, soak_length()).output().expect("run pgbench");
    assert!(load.status.success(), "pgbench: {}", String::from_utf8_lossy(&load.stderr));
    stop_cleanly(connector);
    run_to_end(connector_sync(&source, lake.dir.path(), "soak", &["--once"]));
    assert_pgbench_landed(&db, &lake).await;
}
