//! Chaos: while a write load runs, the connector is killed with SIGKILL at random moments (during a copy, a
//! merge, a commit) and restarted at once, as a supervisor would; some trials first resync a table so that the
//! next run copies it under load. At the end the load stops, a `--once` sync catches up, and the lake must equal
//! the source row by row, with a keyless table's rows exactly once each.
//!
//! The network is broken too: proxies between the connector and the database and object store reset every open
//! connection at random moments, and a supervisor restarts the connector when it stops.
//!
//! The SaaS trial does the same against the Stripe emulator while records are created, updated and deleted.
//!
//! `CONNECTOR_CHAOS_TRIALS` sets the number of kills and cuts (default 10, what CI runs; `scripts/chaos.sh` runs
//! 100).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use connector_core::delta::Destination;
use saas_emulator::{Emulator, EmulatorOptions, STRIPE_API_KEY, Service};

use crate::soak::{connector_sync, run_to_end};
use crate::support::connector_process::{resync_command, terminate, wait_for_exit};
use crate::support::delta::TempLake;
use crate::support::load::{
    LakeToRead, PGBENCH_TABLES, StopFlag, assert_mysql_load_landed, assert_mysql_load_landed_in, assert_pgbench_landed,
    mysql_load_table_list, mysql_load_tables, mysql_write_load, pgbench, pgbench_tables,
};
use crate::support::s3::S3Server;
use crate::support::saas::{assert_table_matches, pipelines_file, run_command, succeed, sync_command};
use crate::support::servers::{mariadb, postgres};
use crate::support::tcp_proxy::{TcpProxy, address_of, mysql_over_tcp};

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

#[tokio::test]
async fn mysql_chaos_sigkill_at_random_moments_loses_and_doubles_nothing() {
    let db = mariadb().await;
    let rows = 20_000;
    db.execute(&mysql_load_tables(rows)).await;
    let tables = mysql_load_table_list(&db);
    let sbtest = format!("{}.sbtest", db.name());
    let lake = TempLake::new();
    // sbtest (20,000 rows) is copied in chunks of 3,000, so kills land between chunks.
    let source = ["mysql", "--url", db.admin_url(), "--tables", &tables, "--copy-chunk-rows", "3000"];

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
    // pgbench_accounts (100,000 rows) is copied in chunks of 7,000, so kills land between chunks.
    let source = ["postgres", "--url", db.url(), "--tables", PGBENCH_TABLES, "--copy-chunk-rows", "7000"];

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

/// `command` writing to the S3 endpoint at `endpoint` (moto's test credentials).
fn against_store(mut command: Command, endpoint: &str) -> Command {
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
    command
}

/// What [`cut_at_random_moments`] did.
struct NetworkChaos {
    /// Cuts per link, in the order given.
    cuts: Vec<u32>,
    /// Runs of the connector that ended with an error (a supervisor restarted each).
    failed_runs: u32,
}

/// Runs the connector `start`s, resetting every connection of one of `links` (chosen at random) at random
/// moments, [`trials`] times, and restarting the connector whenever it stops, as a supervisor would; then stops
/// the last run with SIGTERM.
async fn cut_at_random_moments(start: impl Fn() -> Child, links: &[&TcpProxy]) -> NetworkChaos {
    let mut chaos = NetworkChaos { cuts: vec![0; links.len()], failed_runs: 0 };
    let mut child = start();
    for _ in 0..trials() {
        // The random moment of the cut is the point of the test, not a wait for something to happen.
        tokio::time::sleep(random_lifetime()).await;
        let link = fastrand::usize(..links.len());
        links[link].cut();
        chaos.cuts[link] += 1;
        if let Some(status) = child.try_wait().expect("poll the connector") {
            chaos.failed_runs += u32::from(!status.success());
            child = start();
        }
    }
    terminate(&child);
    chaos.failed_runs += u32::from(!wait_for_exit(&mut child).success());
    chaos
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_chaos_network_cuts_to_the_server_and_the_object_store_lose_and_double_nothing() {
    let db = mariadb().await;
    let rows = 20_000;
    db.execute(&mysql_load_tables(rows)).await;
    let tables = mysql_load_table_list(&db);
    let store = S3Server::start("chaos");
    // The connector reaches both the database and the object store through proxies that reset connections.
    let server_link = TcpProxy::start(address_of(db.admin_url())).await;
    let store_link = TcpProxy::start(address_of(&store.endpoint)).await;
    let url_through_proxy = mysql_over_tcp(&server_link.url_through(db.admin_url()));
    let store_through_proxy = store_link.url_through(&store.endpoint);
    let lake = Path::new("s3://chaos/lake");
    let through_proxies = ["mysql", "--url", &url_through_proxy, "--tables", &tables];
    let sync = || against_store(connector_sync(&through_proxies, lake, "chaos", &[]), &store_through_proxy);
    let start = || sync().arg("--continuous").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start");

    let stop = StopFlag::default();
    let load = tokio::spawn(mysql_write_load(db.connect().await, rows, stop.clone()));
    let chaos = cut_at_random_moments(start, &[&server_link, &store_link]).await;
    stop.stop();
    let committed = load.await.expect("the load ran");
    assert!(server_link.connections() > 1, "no cut reached the database connections");

    let direct = ["mysql", "--url", db.admin_url(), "--tables", &tables];
    run_to_end(against_store(connector_sync(&direct, lake, "chaos", &["--once"]), &store.endpoint));
    let lake = LakeToRead {
        destination: Destination::parse("s3://chaos/lake").expect("s3 destination"),
        storage_options: store.storage_options(),
    };
    assert_mysql_load_landed_in(&db, &lake, committed).await;
    eprintln!(
        "mysql network chaos: {} database cuts, {} object-store cuts, {} runs ended by them, {committed} \
         transactions, lake equal to the source",
        chaos.cuts[0], chaos.cuts[1], chaos.failed_runs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_chaos_network_cuts_to_the_server_lose_and_double_nothing() {
    let db = postgres().await;
    pgbench_tables(&db).await;
    let lake = TempLake::new();
    // The replication and SQL connections reach the server through a proxy that resets them; the server's
    // walsender then holds the slot until it notices, which a restarted connector waits out.
    let server_link = TcpProxy::start(address_of(db.url())).await;
    let url_through_proxy = server_link.url_through(db.url());
    let through_proxy = ["postgres", "--url", &url_through_proxy, "--tables", PGBENCH_TABLES];
    let start = || {
        connector_sync(&through_proxy, lake.dir.path(), "chaos", &["--continuous"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start")
    };

    // Longer than the trials can take; killed once they are done.
    let mut load = pgbench(&db, Duration::from_secs(3_600))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pgbench");
    let chaos = cut_at_random_moments(start, &[&server_link]).await;
    load.kill().expect("stop pgbench");
    load.wait().expect("reap pgbench");
    assert!(server_link.connections() > 1, "no cut reached the database connections");

    let direct = ["postgres", "--url", db.url(), "--tables", PGBENCH_TABLES];
    run_to_end(connector_sync(&direct, lake.dir.path(), "chaos", &["--once"]));
    assert_pgbench_landed(&db, &lake).await;
    eprintln!(
        "postgres network chaos: {} cuts, {} runs ended by them, lake equal to the source",
        chaos.cuts[0], chaos.failed_runs
    );
}

/// The Stripe emulator with 3,000 records per stream, served 5 ms per page, so that kills and cuts land mid-read.
fn slow_paging_stripe() -> Arc<Emulator> {
    Arc::new(
        Emulator::start(EmulatorOptions {
            page_delay: Duration::from_millis(5),
            ..EmulatorOptions::new(Service::Stripe, 3_000)
        })
        .expect("start emulator"),
    )
}

#[tokio::test]
async fn saas_chaos_sigkill_at_random_moments_loses_and_doubles_nothing() {
    let stripe = slow_paging_stripe();
    let lake = TempLake::new();
    let key = [("STRIPE_API_KEY", STRIPE_API_KEY)];
    let sync =
        || sync_command("stripe", &stripe, lake.dir.path(), "customers,invoices", &key, &["--batch-records", "500"]);

    let stop = Arc::new(AtomicBool::new(false));
    let changes = stripe_changes(stripe.clone(), stop.clone());
    // `--pipeline test` is what sync_command names the pipeline.
    let kills = kill_and_restart(sync, || resync_command(lake.dir.path(), "test", "stripe.customers")).await;
    stop.store(true, Ordering::Relaxed);
    let rounds = changes.join().expect("the changes ran");
    succeed(&mut sync());
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
    assert_table_matches(&lake, &stripe, "stripe", "invoices", "description").await;
    eprintln!("saas chaos: {} trials, {kills} kills, {rounds} rounds of changes, lake equal to the API", trials());
}

/// The Stripe emulator behind a proxy that resets the connector's connections at random moments while records
/// change: requests cut off are retried, a run stopped by a cut is restarted, and the lake must end equal to
/// the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saas_chaos_network_cuts_to_the_api_lose_and_double_nothing() {
    let stripe = slow_paging_stripe();
    let api_link = TcpProxy::start(address_of(&stripe.base_url())).await;
    let lake = TempLake::new();
    // `connector run` polls every 200 ms, so that cuts come while requests are in flight, not between passes.
    let profile = format!(
        "kind = \"stripe\"\nbase_url = \"{}\"\npoll_interval = \"200ms\"\nbatch_records = 500",
        api_link.url_through(&stripe.base_url())
    );
    let config = pipelines_file(&lake, "billing", &profile, "\"customers\", \"invoices\"", "continuous");
    let key = [("STRIPE_API_KEY", STRIPE_API_KEY)];
    let start = || run_command(&config, &key).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start");

    let stop = Arc::new(AtomicBool::new(false));
    let changes = stripe_changes(stripe.clone(), stop.clone());
    let chaos = cut_at_random_moments(start, &[&api_link]).await;
    stop.store(true, Ordering::Relaxed);
    let rounds = changes.join().expect("the changes ran");
    assert!(api_link.connections() > 1, "no cut reached the API connections");

    succeed(&mut sync_command("stripe", &stripe, lake.dir.path(), "customers,invoices", &key, &[]));
    assert_table_matches(&lake, &stripe, "stripe", "customers", "name").await;
    assert_table_matches(&lake, &stripe, "stripe", "invoices", "description").await;
    eprintln!(
        "saas network chaos: {} cuts, {} connections, {} runs ended by them, {rounds} rounds of changes, lake \
         equal to the API",
        chaos.cuts[0],
        api_link.connections(),
        chaos.failed_runs
    );
}

/// Records created, updated and deleted all along until `stop`: the API's side of a write load. Returns the
/// rounds of changes made.
fn stripe_changes(stripe: Arc<Emulator>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            stripe.update("customers", 5);
            stripe.delete("customers", 1);
            stripe.create("customers", 2);
            stripe.update("invoices", 3);
            stripe.delete("invoices", 1);
            rounds += 1;
            // Pacing of the load, not a wait for anything.
            std::thread::sleep(Duration::from_millis(20));
        }
        rounds
    })
}
