//! Throwaway PostgreSQL and MariaDB servers for tests.
//!
//! [`postgres()`] and [`mariadb()`] each return a fresh, uniquely named database that the test owns. Where that
//! database lives:
//!
//! - **External server**: when `CONNECTOR_TEST_PG_URL` / `CONNECTOR_TEST_MYSQL_URL` is set (e.g. to `docker compose`
//!   servers), that URL is used as the admin connection, the fresh database is created there and its URL keeps the
//!   same user and password. No local server is ever started then. Because such a server outlives the test, dropping
//!   the database handle drops the database (and, on PostgreSQL, its replication slots, which would otherwise pin WAL
//!   forever).
//! - **Local server**: otherwise a server from the Debian packages (`postgresql`, `mariadb-server`) is initialised in
//!   a temp dir and listens on a free loopback port, configured as the connectors need (logical WAL / row binlog with
//!   GTIDs) and tuned for speed over durability. Its log is `server.log` in that temp dir; if it fails to start, the
//!   panic message shows the command and the log's tail.
//!
//! Lifecycle of a local server: every database handle holds an `Arc` of its server, and a static holds only a `Weak`.
//! The first call starts the server, later calls reuse it while any handle is alive, and dropping the last handle
//! stops the server (SIGINT/SIGTERM, then SIGKILL after a grace period) and removes its temp dir. This replaces an
//! exit hook, which a static cannot have (statics are never dropped). Nextest runs each test in its own process, so in
//! practice every test gets its own server; under `cargo test`, tests running at the same time share one, and a later
//! test may start a new one. If the test process is killed (e.g. nextest's timeout), no destructor runs: the servers,
//! which stay in the test's process group, receive nextest's termination signals too, but the temp dir is left behind.
//!
//! Both servers refuse to run as root. As root (e.g. in a CI container) they run as their package's system user
//! (`postgres`, `mysql`), who is given the temp dir.

use std::fmt;
use std::fs::{self, File};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};
use tempfile::TempDir;
use tokio::sync::{Mutex, OnceCell};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use url::Url;

const POSTGRES_URL_VARIABLE: &str = "CONNECTOR_TEST_PG_URL";
const MYSQL_URL_VARIABLE: &str = "CONNECTOR_TEST_MYSQL_URL";
const MYSQL_REPLICA_URL_VARIABLE: &str = "CONNECTOR_TEST_MYSQL_REPLICA_URL";

/// The account local servers create for the connectors; a superuser / `ALL PRIVILEGES` so tests can do anything.
const USER: &str = "connector";
const PASSWORD: &str = "connector-test-password";

const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// A free port found by binding port 0 can be taken by someone else before the server binds it; retrying is cheap.
const PORT_ATTEMPTS: usize = 3;
const LOG_TAIL_LINES: usize = 40;

/// Settings passed as `-c name=value`. `fsync` and `full_page_writes` trade durability, which a throwaway server
/// doesn't need, for speed. `synchronous_commit` stays on: logical decoding only reads flushed WAL, so with it off a
/// committed change reaches slots only when the WAL writer next flushes, up to a second later, which makes CDC
/// tests slow or flaky. With `fsync` off, a synchronous commit costs just a `write()`.
const POSTGRES_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("wal_level", "logical"),
    ("max_replication_slots", "32"),
    ("max_wal_senders", "32"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("ssl", "on"),
];

/// Password authentication everywhere (the connectors' real setup), including replication connections.
const POSTGRES_HBA: &str = "\
local all         all              scram-sha-256
host  all         all 127.0.0.1/32 scram-sha-256
host  replication all 127.0.0.1/32 scram-sha-256
";

/// The binlog the MySQL connector reads: row based with full images and column metadata, with strict GTIDs.
const MARIADB_BINLOG_SETTINGS: &[&str] = &[
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--gtid-strict-mode=ON",
    "--log-slave-updates",
];

/// Speed over durability and a small footprint; given to the bootstrap too so it doesn't write 100 MB of redo log.
const MARIADB_SPEED_SETTINGS: &[&str] = &[
    "--innodb-flush-log-at-trx-commit=2",
    "--sync-binlog=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
];

/// Runs during `mariadb-install-db`, so the account exists before the server first accepts connections and the
/// statements stay out of the binlog. The bootstrap runs without grant tables until `FLUSH PRIVILEGES` loads them.
fn mariadb_bootstrap_sql() -> String {
    let mut sql = String::from("FLUSH PRIVILEGES;\n");
    for host in ["%", "127.0.0.1"] {
        sql += &format!("CREATE USER '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}';\n");
        sql += &format!("GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{host}' WITH GRANT OPTION;\n");
    }
    sql
}

static LOCAL_POSTGRES: Mutex<Weak<LocalServer>> = Mutex::const_new(Weak::new());
static LOCAL_MARIADB: Mutex<Weak<LocalServer>> = Mutex::const_new(Weak::new());

/// A fresh PostgreSQL database on the local server, or on `CONNECTOR_TEST_PG_URL`'s server when that is set.
pub async fn postgres() -> PostgresDatabase {
    let host = match external_server_url(POSTGRES_URL_VARIABLE) {
        Some(admin_url) => Host::External(admin_url),
        None => Host::Local(shared_local_server(&LOCAL_POSTGRES, start_postgres(&[])).await),
    };
    PostgresDatabase::create(host).await
}

/// A fresh MariaDB database on the local server, or on `CONNECTOR_TEST_MYSQL_URL`'s server when that is set.
pub async fn mariadb() -> MySqlDatabase {
    let host = match external_server_url(MYSQL_URL_VARIABLE) {
        Some(admin_url) => Host::External(admin_url),
        None => Host::Local(shared_local_server(&LOCAL_MARIADB, start_mariadb(1, "mariadb-bin", Tls::Offered)).await),
    };
    MySqlDatabase::create(host).await
}

/// A PostgreSQL server of one test's own, started with settings over the usual ones, for server states the shared
/// server must not be put in (`wal_level = replica`, say).
pub struct PrivatePostgres {
    server: Arc<LocalServer>,
}

impl PrivatePostgres {
    /// `settings` are given as `-c name=value` after the usual ones, so they win.
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        PrivatePostgres { server: Arc::new(start_postgres(settings).await) }
    }

    /// A fresh database on this server.
    pub async fn database(&self) -> PostgresDatabase {
        PostgresDatabase::create(Host::Local(self.server.clone())).await
    }
}

/// A MariaDB server of one test's own, for replication topologies: `server_id` sets it apart from the others.
pub struct PrivateMariaDb {
    server: Arc<LocalServer>,
}

impl PrivateMariaDb {
    /// `binlog` names its binlog files (`<binlog>.000001`, …): servers of a topology usually differ in this.
    pub async fn start(server_id: u32, binlog: &str) -> Self {
        PrivateMariaDb { server: Arc::new(start_mariadb(server_id, binlog, Tls::Offered).await) }
    }

    /// A server that offers no TLS (no certificate configured), as many self-hosted servers are.
    pub async fn start_without_tls(server_id: u32, binlog: &str) -> Self {
        PrivateMariaDb { server: Arc::new(start_mariadb(server_id, binlog, Tls::Absent).await) }
    }

    /// A fresh database on this server.
    pub async fn database(&self) -> MySqlDatabase {
        MySqlDatabase::create(Host::Local(self.server.clone())).await
    }

    /// A database named as `on_another` is, created on this server.
    pub async fn create_database_like(&self, on_another: &MySqlDatabase) -> MySqlDatabase {
        let mut admin = connect_mysql(&self.server.admin_url).await.expect("connect as admin");
        let create = format!("CREATE DATABASE {}", on_another.name);
        admin.query_drop(&create).await.unwrap_or_else(|error| panic!("{create}: {error}"));
        disconnect_mysql(admin).await;
        self.same_database(on_another)
    }

    /// The database `on_another` has, on this server (a replica's copy of it, say).
    pub fn same_database(&self, on_another: &MySqlDatabase) -> MySqlDatabase {
        let name = on_another.name.clone();
        let url = with_database(&self.server.admin_url, &name);
        MySqlDatabase { session: Mutex::new(None), name, url, host: Host::Local(self.server.clone()) }
    }

    /// Makes this server a replica of `primary` by GTID, from the primary's first transaction on.
    pub async fn replicate_from(&self, primary: &PrivateMariaDb) {
        let url = &primary.server.admin_url;
        let sql = format!(
            "CHANGE MASTER TO master_host = '127.0.0.1', master_port = {}, master_user = '{USER}', \
             master_password = '{PASSWORD}', master_use_gtid = slave_pos; START SLAVE",
            url.port().expect("a port")
        );
        let mut admin = connect_mysql(&self.server.admin_url).await.expect("connect to the replica");
        admin.query_drop(&sql).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
        disconnect_mysql(admin).await;
    }

    /// Waits until this replica has applied every transaction `primary` has written so far.
    pub async fn catch_up_with(&self, primary: &PrivateMariaDb) {
        let mut source = connect_mysql(&primary.server.admin_url).await.expect("connect to the primary");
        let position: String = source
            .query_first("SELECT @@gtid_binlog_pos")
            .await
            .expect("read the primary's GTID position")
            .expect("a GTID position");
        disconnect_mysql(source).await;
        let mut admin = connect_mysql(&self.server.admin_url).await.expect("connect to the replica");
        let waited: Option<i64> =
            admin.exec_first("SELECT MASTER_GTID_WAIT(?, 60)", (&position,)).await.expect("wait for the replica");
        disconnect_mysql(admin).await;
        assert_eq!(waited, Some(0), "the replica did not reach {position} within 60 s");
    }
}

/// Whether `SELECT VERSION()` names a MariaDB server (else MySQL).
fn is_mariadb_version(version: &str) -> bool {
    version.contains("MariaDB")
}

/// The MySQL server of `CONNECTOR_TEST_MYSQL_REPLICA_URL`, made a GTID replica of one test database of
/// `CONNECTOR_TEST_MYSQL_URL`'s server (MySQL, not MariaDB), which must reach that server at the URL's host and
/// port (`scripts/test.sh` starts both). Only the test's database is replicated, from the primary's current
/// GTID set on: other tests share the primary, and their earlier databases and users are not on the replica.
/// `REPLICATE_DO_DB` also filters statements by their session's database, which keeps out other tests'
/// `DROP DATABASE` and `DROP USER` (they would stop the replica: the objects are not there).
pub struct MySqlReplica {
    admin_url: Url,
}

impl MySqlReplica {
    /// Makes the server a replica of `on_primary`'s database, which must have no tables yet (the replica starts
    /// empty and replicates from now on).
    pub async fn of(on_primary: &MySqlDatabase) -> Self {
        let admin_url = external_server_url(MYSQL_REPLICA_URL_VARIABLE)
            .unwrap_or_else(|| panic!("{MYSQL_REPLICA_URL_VARIABLE} must name a second MySQL server"));
        let source = on_primary.host.admin_url();
        let executed = on_primary.query_value("SELECT @@GLOBAL.gtid_executed").await.replace('\n', "");
        let mut admin = connect_mysql(&admin_url).await.expect("connect to the replica");
        let version: String = admin.query_first("SELECT VERSION()").await.expect("version").expect("a version");
        // MySQL 8.4 renamed RESET MASTER, which 8.0 still needs.
        let reset = if version.starts_with("8.0.") { "RESET MASTER" } else { "RESET BINARY LOGS AND GTIDS" };
        let name = &on_primary.name;
        let setup = format!(
            "STOP REPLICA; RESET REPLICA ALL; {reset}; SET GLOBAL gtid_purged = '{executed}'; \
             CREATE DATABASE IF NOT EXISTS {name}; \
             CHANGE REPLICATION FILTER REPLICATE_DO_DB = ({name}); \
             CHANGE REPLICATION SOURCE TO SOURCE_HOST = '{}', SOURCE_PORT = {}, SOURCE_USER = '{}', \
             SOURCE_PASSWORD = '{}', SOURCE_AUTO_POSITION = 1, GET_SOURCE_PUBLIC_KEY = 1; START REPLICA",
            source.host_str().expect("a host"),
            source.port().unwrap_or(3306),
            source.username(),
            source.password().unwrap_or_default(),
        );
        admin.query_drop(&setup).await.unwrap_or_else(|error| panic!("{setup}: {error}"));
        disconnect_mysql(admin).await;
        MySqlReplica { admin_url }
    }

    /// The replica's copy of `on_primary` (dropped from the replica at the end of the test).
    pub fn same_database(&self, on_primary: &MySqlDatabase) -> MySqlDatabase {
        let name = on_primary.name.clone();
        let url = with_database(&self.admin_url, &name);
        MySqlDatabase { session: Mutex::new(None), name, url, host: Host::External(self.admin_url.clone()) }
    }

    /// Waits until the replica has applied every transaction `on_primary`'s server has written so far.
    pub async fn catch_up_with(&self, on_primary: &MySqlDatabase) {
        let executed = on_primary.query_value("SELECT @@GLOBAL.gtid_executed").await.replace('\n', "");
        let mut admin = connect_mysql(&self.admin_url).await.expect("connect to the replica");
        let waited: Option<i64> = admin
            .exec_first("SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 60)", (&executed,))
            .await
            .expect("wait for the replica");
        disconnect_mysql(admin).await;
        assert_eq!(waited, Some(0), "the replica did not reach {executed} within 60 s");
    }
}

/// A PostgreSQL database created for one test. Its SQL helpers share one lazily opened session.
pub struct PostgresDatabase {
    // Declared before `host` so the session closes before a local server is stopped.
    session: OnceCell<Client>,
    name: String,
    url: Url,
    host: Host,
}

impl PostgresDatabase {
    async fn create(host: Host) -> Self {
        let name = unique_database_name();
        let admin = connect_postgres(host.admin_url()).await.expect("connect to PostgreSQL as admin");
        let create = format!("CREATE DATABASE {name}");
        admin.batch_execute(&create).await.unwrap_or_else(|error| panic!("{create}: {error}"));
        let url = with_database(host.admin_url(), &name);
        PostgresDatabase { session: OnceCell::new(), name, url, host }
    }

    /// `postgres://user:password@host:port/database` for this database.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The admin URL: the local server's superuser on its `postgres` database, or `CONNECTOR_TEST_PG_URL` as given.
    pub fn admin_url(&self) -> &str {
        self.host.admin_url().as_str()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA certificate that signed a local server's TLS certificate (`None` on an external server).
    pub fn tls_certificate(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Local(server) => Some(server._dir.path().join("data").join("ca.crt")),
            Host::External(_) => None,
        }
    }

    /// A new session, for tests that need their own transaction or connection state.
    pub async fn connect(&self) -> Client {
        connect_postgres(&self.url).await.unwrap_or_else(|error| panic!("connect to {}: {error}", self.name))
    }

    /// Runs one or more `;`-separated statements.
    pub async fn execute(&self, sql: &str) {
        self.session().await.batch_execute(sql).await.unwrap_or_else(|error| panic!("{sql}: {error:?}"));
    }

    /// The rows of all statements in `sql`, every value as PostgreSQL's text form (`None` for NULL).
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let messages = self.session().await.simple_query(sql).await.unwrap_or_else(|error| panic!("{sql}: {error:?}"));
        messages
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|index| row.get(index).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect()
    }

    /// The only value `sql` returns; panics unless that is exactly one non-NULL value.
    pub async fn query_value(&self, sql: &str) -> String {
        single_value(sql, self.query(sql).await)
    }

    async fn session(&self) -> &Client {
        self.session.get_or_init(|| self.connect()).await
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Host::External(admin_url) = &self.host {
            let name = self.name.clone();
            block_on_cleanup(&format!("drop database {name}"), drop_postgres_database(admin_url.clone(), name));
        }
    }
}

impl fmt::Debug for PostgresDatabase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("PostgresDatabase").field("url", &self.url()).finish_non_exhaustive()
    }
}

/// A MariaDB (or MySQL) database created for one test. Its SQL helpers share one lazily opened session.
pub struct MySqlDatabase {
    // Declared before `host` so the session closes before a local server is stopped.
    session: Mutex<Option<Conn>>,
    name: String,
    url: Url,
    host: Host,
}

impl MySqlDatabase {
    async fn create(host: Host) -> Self {
        let name = unique_database_name();
        let mut admin = connect_mysql(host.admin_url()).await.expect("connect to MariaDB as admin");
        let create = format!("CREATE DATABASE {name}");
        admin.query_drop(&create).await.unwrap_or_else(|error| panic!("{create}: {error}"));
        disconnect_mysql(admin).await;
        let url = with_database(host.admin_url(), &name);
        MySqlDatabase { session: Mutex::new(None), name, url, host }
    }

    /// `mysql://user:password@host:port/database` for this database.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The admin URL: the local server's `connector` account without a database, or `CONNECTOR_TEST_MYSQL_URL`.
    pub fn admin_url(&self) -> &str {
        self.host.admin_url().as_str()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA certificate that signed a local server's TLS certificate (`None` on an external server).
    pub fn tls_certificate(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Local(server) => Some(server._dir.path().join("ca.crt")),
            Host::External(_) => None,
        }
    }

    /// A new session over TCP, for tests that need their own transaction, session state or binlog stream.
    pub async fn connect(&self) -> Conn {
        connect_mysql(&self.url).await.unwrap_or_else(|error| panic!("connect to {}: {error}", self.name))
    }

    /// Runs one or more `;`-separated statements.
    pub async fn execute(&self, sql: &str) {
        let mut session = self.session().await;
        let connection = session.as_mut().expect("session was just opened");
        connection.query_drop(sql).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    /// The rows of the first result set of `sql`, every value as text (`None` for NULL).
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut session = self.session().await;
        let connection = session.as_mut().expect("session was just opened");
        let rows: Vec<mysql_async::Row> = connection.query(sql).await.unwrap_or_else(|error| panic!("{sql}: {error}"));
        rows.iter().map(|row| (0..row.len()).map(|index| row.as_ref(index).and_then(mysql_text)).collect()).collect()
    }

    /// The only value `sql` returns; panics unless that is exactly one non-NULL value.
    pub async fn query_value(&self, sql: &str) -> String {
        single_value(sql, self.query(sql).await)
    }

    /// Whether the server is MariaDB (else MySQL), for the statements and limits in which they differ.
    pub async fn is_mariadb(&self) -> bool {
        is_mariadb_version(&self.query_value("SELECT VERSION()").await)
    }

    /// The server's current binlog file and offset: `SHOW MASTER STATUS`, which MySQL 8.4 renamed
    /// `SHOW BINARY LOG STATUS` (8.2+; MariaDB and MySQL 8.0 have only the old name).
    pub async fn binlog_status(&self) -> (String, u64) {
        let version = self.query_value("SELECT VERSION()").await;
        let statement = if is_mariadb_version(&version) || version.starts_with("8.0.") {
            "SHOW MASTER STATUS"
        } else {
            "SHOW BINARY LOG STATUS"
        };
        let row = self.query(statement).await.into_iter().next().unwrap_or_else(|| panic!("{statement}: no row"));
        let file = row[0].clone().unwrap_or_else(|| panic!("{statement}: no file"));
        let offset = row[1].as_deref().and_then(|offset| offset.parse().ok());
        (file, offset.unwrap_or_else(|| panic!("{statement}: no offset")))
    }

    async fn session(&self) -> tokio::sync::MutexGuard<'_, Option<Conn>> {
        let mut session = self.session.lock().await;
        if session.is_none() {
            *session = Some(self.connect().await);
        }
        session
    }
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        if let Host::External(admin_url) = &self.host {
            let name = self.name.clone();
            block_on_cleanup(&format!("drop database {name}"), drop_mysql_database(admin_url.clone(), name));
        }
    }
}

impl fmt::Debug for MySqlDatabase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("MySqlDatabase").field("url", &self.url()).finish_non_exhaustive()
    }
}

/// The server a test database lives on.
enum Host {
    /// Started by this process; kept running by this handle.
    Local(Arc<LocalServer>),
    /// Given by an environment variable; its URL has admin rights.
    External(Url),
}

impl Host {
    fn admin_url(&self) -> &Url {
        match self {
            Host::Local(server) => &server.admin_url,
            Host::External(admin_url) => admin_url,
        }
    }
}

/// A running server and the temp dir holding its data, socket and log.
struct LocalServer {
    admin_url: Url,
    // Field order matters: the process is stopped before its temp dir is removed.
    _process: ServerProcess,
    _dir: TempDir,
}

/// A server child process that is stopped when dropped.
struct ServerProcess {
    child: Child,
    /// PostgreSQL's SIGTERM waits for clients to disconnect; SIGINT is its "fast" shutdown.
    stop_signal: &'static str,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if has_exited(&mut self.child) {
            return;
        }
        if send_signal(&self.child, self.stop_signal) && exits_within(&mut self.child, SHUTDOWN_GRACE) {
            return;
        }
        // Best effort: nothing useful can be done in a destructor if even SIGKILL fails.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running server of a kind, starting one unless a live handle already has one.
async fn shared_local_server(
    slot: &Mutex<Weak<LocalServer>>,
    start: impl Future<Output = LocalServer>,
) -> Arc<LocalServer> {
    // Held across the start so that concurrent tests in one process start the server only once.
    let mut running = slot.lock().await;
    if let Some(server) = running.upgrade() {
        return server;
    }
    let server = Arc::new(start.await);
    *running = Arc::downgrade(&server);
    server
}

fn external_server_url(variable: &str) -> Option<Url> {
    let text = std::env::var(variable).ok().filter(|text| !text.trim().is_empty())?;
    Some(Url::parse(text.trim()).unwrap_or_else(|error| panic!("{variable} is not a URL ({error}): {text}")))
}

/// A local PostgreSQL with [`POSTGRES_SETTINGS`], then `overrides`.
async fn start_postgres(overrides: &[(&str, &str)]) -> LocalServer {
    let bin_dir = postgres_bin_dir();
    let account = service_account("postgres");
    let dir = server_dir("postgres", account.as_ref());
    let data_dir = dir.path().join("data");
    let password_file = dir.path().join("password");
    fs::write(&password_file, PASSWORD).expect("write the PostgreSQL password file");

    let mut initdb = as_account(account.as_ref(), bin_dir.join("initdb"));
    initdb.arg("--pgdata").arg(&data_dir).args(["--username", USER, "--auth=scram-sha-256"]);
    initdb.arg("--pwfile").arg(&password_file).args(["--encoding=UTF8", "--no-locale", "--no-sync"]);
    run_setup_step(initdb, &log_path(&dir)).await;
    fs::write(data_dir.join("pg_hba.conf"), POSTGRES_HBA).expect("write pg_hba.conf");
    write_test_certificates(&data_dir, account.as_ref(), &log_path(&dir)).await;

    let postgres_command = |port: u16| {
        let mut command = as_account(account.as_ref(), bin_dir.join("postgres"));
        command.arg("-D").arg(&data_dir).args(["-p", &port.to_string()]);
        command.arg("-c").arg(format!("unix_socket_directories={}", dir.path().display()));
        for (name, value) in POSTGRES_SETTINGS.iter().chain(overrides) {
            command.args(["-c", &format!("{name}={value}")]);
        }
        command
    };
    let accepts_connections = async |port: u16| connect_postgres(&local_postgres_url(port)).await.is_ok();
    let (process, port) = start_server(&dir, postgres_command, accepts_connections, "INT").await;
    LocalServer { admin_url: local_postgres_url(port), _process: process, _dir: dir }
}

/// Whether a local server offers TLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    Offered,
    Absent,
}

async fn start_mariadb(server_id: u32, binlog: &str, tls: Tls) -> LocalServer {
    let install_db = find_program("mariadb-install-db");
    let mariadbd = find_program("mariadbd");
    let account = service_account("mysql");
    let dir = server_dir("mariadb", account.as_ref());
    let data_dir = dir.path().join("data");
    let bootstrap_sql = dir.path().join("bootstrap.sql");
    fs::write(&bootstrap_sql, mariadb_bootstrap_sql()).expect("write the MariaDB bootstrap SQL");
    // mariadbd switches to `--user` itself, which also lets the bootstrap give it the data dir.
    let user_option = account.as_ref().map(|account| format!("--user={}", account.name));
    // Every mariadbd deletes all `#sql*` files in its tmpdir at startup, so with the shared /tmp a server starting in
    // one test deletes the temporary tables of another test's bootstrap. The server's own dir has no such files.
    let tmpdir_option = format!("--tmpdir={}", dir.path().display());

    // `--no-defaults` (first, as the script requires) keeps /etc/mysql's paths and settings out.
    let mut install = Command::new(install_db);
    install.arg("--no-defaults").arg(format!("--datadir={}", data_dir.display())).args(&user_option);
    install.arg(&tmpdir_option);
    install.args(["--skip-test-db", "--skip-name-resolve"]).arg(format!("--extra-file={}", bootstrap_sql.display()));
    install.args(MARIADB_SPEED_SETTINGS);
    run_setup_step(install, &log_path(&dir)).await;

    write_test_certificates(dir.path(), account.as_ref(), &log_path(&dir)).await;
    let tls_files: &[&str] = match tls {
        Tls::Offered => &["ssl-ca=ca.crt", "ssl-cert=server.crt", "ssl-key=server.key"],
        Tls::Absent => &[],
    };
    let tls_options: Vec<String> = tls_files
        .iter()
        .map(|option| {
            let (name, file) = option.split_once('=').expect("name=file");
            format!("--{name}={}", dir.path().join(file).display())
        })
        .collect();
    let mariadbd_command = |port: u16| {
        let mut command = Command::new(&mariadbd);
        command.arg("--no-defaults").arg(format!("--datadir={}", data_dir.display())).args(&user_option);
        command.arg(&tmpdir_option);
        command.arg(format!("--socket={}", dir.path().join("mariadb.sock").display()));
        command.arg(format!("--pid-file={}", dir.path().join("mariadb.pid").display()));
        command.args(["--bind-address=127.0.0.1", &format!("--port={port}"), "--skip-name-resolve"]);
        // Without configuration files the server would default to latin1.
        command.args(["--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"]);
        command.arg(format!("--log-bin={binlog}")).arg(format!("--server-id={server_id}"));
        command.args(MARIADB_BINLOG_SETTINGS);
        command.args(MARIADB_SPEED_SETTINGS).args(&tls_options);
        command
    };
    let accepts_connections = async |port: u16| match connect_mysql(&local_mysql_url(port)).await {
        Ok(connection) => {
            disconnect_mysql(connection).await;
            true
        }
        Err(_) => false,
    };
    let (process, port) = start_server(&dir, mariadbd_command, accepts_connections, "TERM").await;
    LocalServer { admin_url: local_mysql_url(port), _process: process, _dir: dir }
}

/// Starts the server on a free port and waits until it accepts connections, retrying with another port if someone
/// else took it first. Panics with the command and the log's tail if the server exits or doesn't become ready.
async fn start_server(
    dir: &TempDir,
    command_for_port: impl Fn(u16) -> Command,
    accepts_connections: impl AsyncFn(u16) -> bool,
    stop_signal: &'static str,
) -> (ServerProcess, u16) {
    let log = log_path(dir);
    let mut attempt = 1;
    loop {
        let port = free_loopback_port();
        let mut command = command_for_port(port);
        let log_start = fs::metadata(&log).map(|metadata| metadata.len()).unwrap_or(0);
        command.stdin(Stdio::null()).stdout(log_file(&log)).stderr(log_file(&log));
        let child = command.spawn().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        // Owned before waiting, so that a panic below still stops the server.
        let mut process = ServerProcess { child, stop_signal };
        let failure = match wait_until_ready(&mut process.child, async || accepts_connections(port).await).await {
            Ok(()) => return (process, port),
            Err(failure) => failure,
        };
        if matches!(failure, NotReady::Exited(_)) && port_was_taken(&log, log_start) && attempt < PORT_ATTEMPTS {
            attempt += 1;
            continue;
        }
        drop(process);
        panic!("{failure}\ncommand: {command:?}\n{}", log_tail(&log));
    }
}

enum NotReady {
    Exited(ExitStatus),
    TimedOut,
}

impl fmt::Display for NotReady {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Exited(status) => write!(formatter, "the server exited during startup ({status})"),
            NotReady::TimedOut => {
                write!(formatter, "the server did not accept connections within {STARTUP_DEADLINE:?}")
            }
        }
    }
}

/// Polls until a connection succeeds, the server exits or the startup deadline passes.
async fn wait_until_ready(child: &mut Child, accepts_connection: impl AsyncFn() -> bool) -> Result<(), NotReady> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("poll the server process") {
            return Err(NotReady::Exited(status));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(remaining, accepts_connection()).await == Ok(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotReady::TimedOut);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Writes `ca.crt`, `server.crt` and `server.key` into `dir`: a certificate for 127.0.0.1 and localhost signed by a
/// throwaway CA (`ca.crt`, what clients trust), so TLS and its certificate checks can be tested. Made as the server's
/// account, which must own its key.
pub async fn write_test_certificates(dir: &Path, account: Option<&Account>, log: &Path) {
    let openssl = |args: &[&str]| {
        let mut command = as_account(account, PathBuf::from("openssl"));
        command.current_dir(dir).args(args);
        command
    };
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "7",
            "-nodes",
            "-subj",
            "/CN=connector-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        &[
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "7",
            "-copy_extensions",
            "copyall",
            "-out",
            "server.crt",
        ],
    ];
    for step in steps {
        run_setup_step(openssl(step), log).await;
    }
}

/// Runs an initialisation command (initdb, mariadb-install-db) with its output appended to the server log.
async fn run_setup_step(mut command: Command, log: &Path) {
    command.stdin(Stdio::null()).stdout(log_file(log)).stderr(log_file(log));
    let shown = format!("{command:?}");
    let status = tokio::process::Command::from(command)
        .status()
        .await
        .unwrap_or_else(|error| panic!("cannot run {shown}: {error}"));
    assert!(status.success(), "server initialisation failed ({status})\ncommand: {shown}\n{}", log_tail(log));
}

fn port_was_taken(log: &Path, attempt_start: u64) -> bool {
    let written = fs::read(log).unwrap_or_default();
    let this_attempt = written.get(attempt_start as usize..).unwrap_or_default();
    String::from_utf8_lossy(this_attempt).contains("Address already in use")
}

fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port");
    listener.local_addr().expect("read the bound address").port()
}

fn server_dir(kind: &str, account: Option<&Account>) -> TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("connector-{kind}-")).tempdir().expect("create a temp dir");
    if let Some(account) = account {
        std::os::unix::fs::chown(dir.path(), Some(account.uid), Some(account.gid))
            .unwrap_or_else(|error| panic!("give {} to {}: {error}", dir.path().display(), account.name));
    }
    dir
}

fn log_path(dir: &TempDir) -> PathBuf {
    dir.path().join("server.log")
}

fn log_file(path: &Path) -> File {
    File::options().create(true).append(true).open(path).expect("open the server log")
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    format!("last lines of {}:\n{tail}", path.display())
}

fn has_exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

fn exits_within(child: &mut Child, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if has_exited(child) {
            return true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    has_exited(child)
}

/// std can only SIGKILL and unsafe code is forbidden, so graceful signals go through `kill(1)`.
fn send_signal(child: &Child, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// An OS account to run a server as.
pub struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

/// The package's system account when running as root (servers refuse root), otherwise `None`: run as ourselves.
fn service_account(name: &str) -> Option<Account> {
    if id(&["-u"]) != "0" {
        return None;
    }
    let parse = |text: String| text.parse().unwrap_or_else(|error| panic!("`id` printed {text:?}: {error}"));
    Some(Account { name: name.to_owned(), uid: parse(id(&["-u", name])), gid: parse(id(&["-g", name])) })
}

fn id(args: &[&str]) -> String {
    let output = Command::new("id").args(args).output().expect("run `id`");
    assert!(
        output.status.success(),
        "`id {}` failed (is the server package installed?): {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `program` run as `account`. `setpriv` execs in place, so the child's pid is the server's and signals reach it.
fn as_account(account: Option<&Account>, program: PathBuf) -> Command {
    let Some(account) = account else {
        return Command::new(program);
    };
    let mut command = Command::new("setpriv");
    command.arg(format!("--reuid={}", account.uid)).arg(format!("--regid={}", account.gid));
    command.arg("--clear-groups").arg("--").arg(program);
    command
}

/// Where `initdb` and `postgres` are: `pg_config --bindir`, else Debian's newest `/usr/lib/postgresql/<version>/bin`,
/// else `PATH`.
fn postgres_bin_dir() -> PathBuf {
    let has_server = |dir: &PathBuf| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    pg_config_bin_dir()
        .into_iter()
        .chain(debian_postgres_bin_dirs())
        .find(has_server)
        .or_else(|| search_path("initdb").and_then(|initdb| initdb.parent().map(Path::to_path_buf)))
        .expect("PostgreSQL server binaries not found: install the `postgresql` package")
}

fn pg_config_bin_dir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    output.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

/// Debian's versioned install dirs, newest first.
fn debian_postgres_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, bin_dir)| bin_dir).collect()
}

/// `PATH`, then the sbin dirs a non-root `PATH` lacks (Debian installs `mariadbd` in /usr/sbin).
fn find_program(name: &str) -> PathBuf {
    search_path(name)
        .or_else(|| {
            ["/usr/sbin", "/usr/local/sbin", "/sbin"]
                .iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| panic!("`{name}` not found: install the `mariadb-server` package"))
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

fn local_postgres_url(port: u16) -> Url {
    loopback_url("postgres", port, "/postgres")
}

fn local_mysql_url(port: u16) -> Url {
    loopback_url("mysql", port, "")
}

fn loopback_url(scheme: &str, port: u16, path: &str) -> Url {
    Url::parse(&format!("{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}{path}")).expect("valid server URL")
}

fn with_database(admin_url: &Url, database: &str) -> Url {
    let mut url = admin_url.clone();
    url.set_path(&format!("/{database}"));
    url
}

/// Unique across processes and runs, so tests can share an external server. Only `[a-z0-9_]`, so it never needs
/// quoting in SQL.
fn unique_database_name() -> String {
    static CREATED: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_millis()).unwrap_or_default();
    let sequence = CREATED.fetch_add(1, Ordering::Relaxed);
    format!("test_{millis}_{}_{sequence}", std::process::id())
}

async fn connect_postgres(url: &Url) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url.as_str(), NoTls).await?;
    // Connection errors also reach the client's calls, so the driver task's own result adds nothing.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Over TCP only: by default mysql_async switches to the server's unix socket, which would bypass the
/// `connector@127.0.0.1` account the connectors use (and doesn't exist for an external server).
async fn connect_mysql(url: &Url) -> Result<Conn, mysql_async::Error> {
    let opts = Opts::from_url(url.as_str())?;
    Conn::new(OptsBuilder::from_opts(opts).prefer_socket(false)).await
}

async fn disconnect_mysql(connection: Conn) {
    // The server cleans up after a dropped connection just the same; a failed goodbye is not worth a failed test.
    let _ = connection.disconnect().await;
}

fn mysql_text(value: &Value) -> Option<String> {
    match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        // The text protocol sends only bytes; other variants come from prepared statements.
        other => Some(other.as_sql(true)),
    }
}

fn single_value(sql: &str, rows: Vec<Vec<Option<String>>>) -> String {
    match <[Vec<Option<String>>; 1]>::try_from(rows) {
        Ok([row]) => match <[Option<String>; 1]>::try_from(row) {
            Ok([Some(value)]) => value,
            Ok([None]) => panic!("{sql}: returned NULL"),
            Err(row) => panic!("{sql}: expected one column, got {row:?}"),
        },
        Err(rows) => panic!("{sql}: expected one row, got {rows:?}"),
    }
}

/// Runs async cleanup from a destructor: on its own thread and runtime, because the caller may be inside a runtime
/// that cannot be blocked on. Failures are reported, not raised, since a destructor may run during a panic.
fn block_on_cleanup(what: &str, cleanup: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
    let outcome = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(cleanup)
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("warning: could not {what}: {error:#}"),
        Err(_) => eprintln!("warning: could not {what}: the cleanup thread panicked"),
    }
}

/// Replication slots must go first: they block `DROP DATABASE` and would otherwise retain WAL on the server forever.
async fn drop_postgres_database(admin_url: Url, name: String) -> anyhow::Result<()> {
    let admin = connect_postgres(&admin_url).await?;
    // Ends walsenders too, whose active slots could not be dropped; waits up to 5 s for each to exit.
    let other_sessions = "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
                          WHERE datname = $1 AND pid <> pg_backend_pid()";
    admin.execute(other_sessions, &[&name]).await?;
    let slots = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1";
    admin.execute(slots, &[&name]).await?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    Ok(())
}

async fn drop_mysql_database(admin_url: Url, name: String) -> anyhow::Result<()> {
    let mut admin = connect_mysql(&admin_url).await?;
    admin.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await?;
    disconnect_mysql(admin).await;
    Ok(())
}
