//! Checks that the throwaway servers are configured as the connectors need: logical decoding on PostgreSQL, a
//! full-row GTID binlog on MariaDB, replication rights for the connector account, and one fresh database per call.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use mysql_async::BinlogStreamRequest;
use mysql_async::prelude::Queryable;
use url::Url;

use crate::support::servers::{mariadb, postgres};

#[tokio::test]
async fn postgres_has_logical_wal_and_room_for_slots() {
    let db = postgres().await;

    assert_eq!(db.query_value("SHOW wal_level").await, "logical");
    let slots: u32 = db.query_value("SHOW max_replication_slots").await.parse().expect("a number");
    let senders: u32 = db.query_value("SHOW max_wal_senders").await.parse().expect("a number");
    assert!(slots >= 32 && senders >= 32, "max_replication_slots = {slots}, max_wal_senders = {senders}");
}

#[tokio::test]
async fn postgres_decodes_changes_through_a_pgoutput_slot() {
    let db = postgres().await;
    // Slot names are server-wide, so derive one from the unique database name.
    let slot = format!("{}_slot", db.name());
    db.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text); CREATE PUBLICATION orders_feed FOR TABLE orders",
    )
    .await;
    db.execute(&format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")).await;

    db.execute("INSERT INTO orders VALUES (1, 'ada')").await;

    // pgoutput's message types: Begin, Relation, Insert, Commit.
    let message_types = db
        .query_value(&format!(
            "SELECT string_agg(chr(get_byte(data, 0)), '' ORDER BY position) \
             FROM pg_logical_slot_peek_binary_changes('{slot}', NULL, NULL, \
                  'proto_version', '1', 'publication_names', 'orders_feed') \
                  WITH ORDINALITY AS change(lsn, xid, data, position)"
        ))
        .await;
    assert_eq!(message_types, "BRIC");
}

#[tokio::test]
async fn postgres_accepts_replication_connections_with_the_url_credentials() {
    let db = postgres().await;
    let mut replication_url = Url::parse(db.url()).expect("valid URL");
    replication_url.query_pairs_mut().append_pair("replication", "database");

    // tokio-postgres cannot open replication connections; psql (from the postgresql package) can.
    let output = tokio::process::Command::new("psql")
        .args([replication_url.as_str(), "--no-psqlrc", "--tuples-only", "--no-align", "--command", "IDENTIFY_SYSTEM"])
        .output()
        .await
        .expect("run psql (install the postgresql-client package)");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "IDENTIFY_SYSTEM over a replication connection failed: {stderr}");
    let system = String::from_utf8_lossy(&output.stdout);
    assert!(system.trim_end().ends_with(db.name()), "IDENTIFY_SYSTEM should name the database: {system}");
}

#[tokio::test]
async fn postgres_url_logs_in_to_the_fresh_database() {
    let db = postgres().await;
    let url = Url::parse(db.url()).expect("valid URL");

    let client = db.connect().await;
    let row = client.query_one("SELECT current_user::text, current_database()::text", &[]).await.expect("query");

    assert_eq!(row.get::<_, String>(0), url.username());
    assert_eq!(row.get::<_, String>(1), db.name());
    assert_eq!(url.path(), format!("/{}", db.name()));
}

#[tokio::test]
async fn postgres_databases_are_fresh_and_isolated() {
    let (first, second) = tokio::join!(postgres(), postgres());
    assert_ne!(first.name(), second.name());
    assert_eq!(first.admin_url(), second.admin_url(), "one server per test process");

    first.execute("CREATE TABLE marker (id int); INSERT INTO marker VALUES (1), (2)").await;
    second.execute("CREATE TABLE marker (id int); INSERT INTO marker VALUES (3)").await;

    assert_eq!(
        first.query("SELECT id FROM marker ORDER BY id").await,
        [[Some("1".to_owned())], [Some("2".to_owned())]]
    );
    assert_eq!(second.query("SELECT id FROM marker").await, [[Some("3".to_owned())]]);
    let fresh = postgres().await;
    assert_eq!(fresh.query_value("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").await, "0");
}

#[tokio::test]
async fn mariadb_writes_a_full_row_binlog_with_strict_gtids() {
    let db = mariadb().await;
    // MariaDB's strict GTIDs, or MySQL's GTID mode (a server of CONNECTOR_TEST_MYSQL_URL).
    let gtids = if db.is_mariadb().await { "gtid_strict_mode" } else { "gtid_mode" };

    let variables: BTreeMap<String, String> = db
        .query(&format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata', '{gtids}')"
        ))
        .await
        .into_iter()
        .map(|row| match row.as_slice() {
            [Some(name), Some(value)] => (name.to_lowercase(), value.to_uppercase()),
            other => panic!("unexpected SHOW VARIABLES row {other:?}"),
        })
        .collect();

    let expected = [
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
        (gtids, "ON"),
        ("log_bin", "ON"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    assert_eq!(variables, BTreeMap::from(expected));
}

#[tokio::test]
async fn mariadb_reports_the_current_binlog_file() {
    let db = mariadb().await;

    let (file, position) = db.binlog_status().await;

    assert!(!file.is_empty(), "binlog file {file:?}");
    assert!(position >= 4, "binlog position {position}");
}

#[tokio::test]
async fn mariadb_connector_user_can_stream_the_binlog() {
    let db = mariadb().await;
    let user_grants_replication_slave = "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES \
         WHERE GRANTEE = CONCAT('''', REPLACE(CURRENT_USER(), '@', '''@'''), '''') \
         AND PRIVILEGE_TYPE = 'REPLICATION SLAVE'";
    assert_eq!(db.query_value(user_grants_replication_slave).await, "1");
    db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer text); INSERT INTO orders VALUES (1, 'ada')")
        .await;
    let (file, _) = db.binlog_status().await;

    // Replicas need a server id other than the server's own (1).
    let request = BinlogStreamRequest::new(4242).with_filename(file.as_bytes()).with_pos(4u64).with_non_blocking();
    let mut stream = db.connect().await.get_binlog_stream(request).await.expect("start a binlog stream");
    let first_event = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("an event in time");

    first_event.expect("the binlog is not empty").expect("a readable event");
    stream.close().await.expect("close the binlog stream");
}

#[tokio::test]
async fn mariadb_url_logs_in_to_the_fresh_database() {
    let db = mariadb().await;
    let url = Url::parse(db.url()).expect("valid URL");

    let mut connection = db.connect().await;
    let row: Option<(String, String)> =
        connection.query_first("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), DATABASE()").await.expect("query");

    assert_eq!(row, Some((url.username().to_owned(), db.name().to_owned())));
}

#[tokio::test]
async fn mariadb_databases_are_fresh_and_isolated() {
    let (first, second) = tokio::join!(mariadb(), mariadb());
    assert_ne!(first.name(), second.name());
    assert_eq!(first.admin_url(), second.admin_url(), "one server per test process");

    first.execute("CREATE TABLE marker (id int); INSERT INTO marker VALUES (1), (2)").await;
    second.execute("CREATE TABLE marker (id int); INSERT INTO marker VALUES (3)").await;

    assert_eq!(
        first.query("SELECT id FROM marker ORDER BY id").await,
        [[Some("1".to_owned())], [Some("2".to_owned())]]
    );
    assert_eq!(second.query("SELECT id FROM marker").await, [[Some("3".to_owned())]]);
    let fresh = mariadb().await;
    assert_eq!(
        fresh.query_value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").await,
        "0"
    );
}
