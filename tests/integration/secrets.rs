//! Credentials never reach output: a distinctive password is planted in each database credential (in the URL on
//! argv and in the URL environment variables), every command runs at debug level, succeeding and failing, and
//! no line of stdout or stderr may hold it.

use std::process::{Command, Output};

use crate::support::delta::TempLake;
use crate::support::servers::{mariadb, postgres};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");
const PLANTED: &str = "Planted-Secret-7f3c9a";
const WRONG: &str = "Wrong-Planted-Secret-2b8e";

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(CONNECTOR);
    command.args(["--log", "debug"]).args(args).env("RUST_LOG", "debug");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run connector")
}

/// Fails naming the command and the line when either stream holds a planted secret.
fn assert_no_secret(what: &str, output: &Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            assert!(!line.contains(PLANTED) && !line.contains(WRONG), "{what}: the secret is in {stream}: {line}");
        }
    }
}

fn with_password(url: &str, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(url).expect("url");
    url.set_username(user).expect("user");
    url.set_password(Some(password)).expect("password");
    url.to_string()
}

#[tokio::test]
async fn postgres_passwords_appear_in_no_output_of_any_command() {
    let db = postgres().await;
    let user = format!("planted_{}", db.name());
    db.execute(&format!(
        "CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{PLANTED}'; \
         CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a')"
    ))
    .await;
    let lake = TempLake::new();
    let dest = lake.dir.path().to_str().expect("path").to_string();
    let url = with_password(db.url(), &user, PLANTED);
    let wrong = with_password(db.url(), &user, WRONG);
    let sync = ["sync", "postgres", "--tables", "public.orders", "--pipeline", "planted", "--dest", &dest];

    let argv_sync = run(&[&sync[..2], &["--url", &url], &sync[2..]].concat(), &[]);
    assert!(argv_sync.status.success(), "{}", String::from_utf8_lossy(&argv_sync.stderr));
    assert_no_secret("sync (URL on argv)", &argv_sync);
    let env_sync = run(&sync, &[("CONNECTOR_POSTGRES_URL", &url)]);
    assert!(env_sync.status.success(), "{}", String::from_utf8_lossy(&env_sync.stderr));
    assert_no_secret("sync (URL in the environment)", &env_sync);
    let failed = run(&sync, &[("CONNECTOR_POSTGRES_URL", &wrong)]);
    assert!(!failed.status.success(), "a wrong password must fail");
    assert_no_secret("sync with a wrong password", &failed);
    let unreachable = with_password("postgres://x@127.0.0.1:1/db", &user, PLANTED);
    let failed = run(&sync, &[("CONNECTOR_POSTGRES_URL", &unreachable)]);
    assert!(!failed.status.success(), "an unreachable server must fail");
    assert_no_secret("sync to an unreachable server", &failed);

    let status = ["status", "--dest", &dest, "--pipeline", "planted", "--json"];
    let shown = run(&status, &[("CONNECTOR_STATUS_URL", &url)]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert_no_secret("status", &shown);
    assert_no_secret("status with a wrong password", &run(&status, &[("CONNECTOR_STATUS_URL", &wrong)]));
    assert_no_secret(
        "resync",
        &run(&["resync", "--pipeline", "planted", "--table", "public.orders", "--dest", &dest], &[]),
    );
    assert_no_secret(
        "drop with a wrong password",
        &run(&["drop", "--pipeline", "planted"], &[("CONNECTOR_POSTGRES_URL", &wrong)]),
    );
    let dropped = run(&["drop", "--pipeline", "planted", "--url", &url], &[]);
    assert!(dropped.status.success(), "{}", String::from_utf8_lossy(&dropped.stderr));
    assert_no_secret("drop", &dropped);
    db.execute(&format!("DROP OWNED BY {user}; DROP ROLE {user}")).await;
}

#[tokio::test]
async fn mysql_passwords_appear_in_no_output_of_any_command() {
    let db = mariadb().await;
    let user = format!("pl_{}", db.name());
    for host in ["%", "127.0.0.1"] {
        db.execute(&format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PLANTED}'; GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}'"
        ))
        .await;
    }
    db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a')").await;
    let lake = TempLake::new();
    let dest = lake.dir.path().to_str().expect("path").to_string();
    let url = with_password(db.url(), &user, PLANTED);
    let wrong = with_password(db.url(), &user, WRONG);
    let tables = format!("{}.orders", db.name());
    let sync = ["sync", "mysql", "--tables", &tables, "--pipeline", "planted", "--dest", &dest];

    let argv_sync = run(&[&sync[..2], &["--url", &url], &sync[2..]].concat(), &[]);
    assert!(argv_sync.status.success(), "{}", String::from_utf8_lossy(&argv_sync.stderr));
    assert_no_secret("sync (URL on argv)", &argv_sync);
    let env_sync = run(&sync, &[("CONNECTOR_MYSQL_URL", &url)]);
    assert!(env_sync.status.success(), "{}", String::from_utf8_lossy(&env_sync.stderr));
    assert_no_secret("sync (URL in the environment)", &env_sync);
    let failed = run(&sync, &[("CONNECTOR_MYSQL_URL", &wrong)]);
    assert!(!failed.status.success(), "a wrong password must fail");
    assert_no_secret("sync with a wrong password", &failed);

    let status = ["status", "--dest", &dest, "--pipeline", "planted", "--json"];
    let shown = run(&status, &[("CONNECTOR_STATUS_URL", &url)]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert_no_secret("status", &shown);
    assert_no_secret("status with a wrong password", &run(&status, &[("CONNECTOR_STATUS_URL", &wrong)]));
    assert_no_secret("resync", &run(&["resync", "--pipeline", "planted", "--table", &tables, "--dest", &dest], &[]));
    db.execute(&format!("DROP USER '{user}'@'%'; DROP USER '{user}'@'127.0.0.1'")).await;
}
