//! Credentials never reach output: a distinctive password is planted in each database credential (in the URL on
//! argv and in the URL environment variables), the SaaS services' keys, OAuth secrets and tokens, and the object
//! store's secret key; every command runs at debug level (where configurations and requests are logged),
//! succeeding and failing, and no line of stdout or stderr may hold any of them.

use std::process::{Command, Output};

use saas_emulator::{
    Emulator, EmulatorOptions, Fault, FaultKind, HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET, HUBSPOT_REFRESH_TOKEN,
    SALESFORCE_ACCESS_TOKEN, SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET, SALESFORCE_REFRESH_TOKEN, STRIPE_API_KEY,
    Service, ZENDESK_API_TOKEN, ZENDESK_EMAIL,
};

use crate::support::delta::TempLake;
use crate::support::s3::S3Server;
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

/// Fails naming the command and the line when either stream holds one of `secrets`, or an access token the
/// emulators issue (`access-N`).
fn assert_none_of(what: &str, output: &Output, secrets: &[&str]) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            for secret in secrets {
                assert!(!line.contains(secret), "{what}: a secret ({secret}) is in {stream}: {line}");
            }
            assert!(!holds_issued_access_token(line), "{what}: an issued access token is in {stream}: {line}");
        }
    }
}

/// Whether `line` holds `access-` followed by a digit, the emulators' issued access tokens.
fn holds_issued_access_token(line: &str) -> bool {
    line.match_indices("access-").any(|(at, _)| line[at + 7..].starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn saas_and_object_store_secrets_appear_in_no_output_of_any_command() {
    let lake = TempLake::new();
    let dest = lake.dir.path().to_str().expect("path").to_string();
    let token_file = lake.dir.path().join("hubspot-token.json");
    let token_path = token_file.to_str().expect("utf-8").to_string();
    // (service, its name, a stream, its credentials in the environment, the variable a wrong value is planted in)
    type ServiceCase<'a> = (Service, &'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let services: [ServiceCase; 4] = [
        (Service::Stripe, "stripe", "customers", vec![("STRIPE_API_KEY", STRIPE_API_KEY)], "STRIPE_API_KEY"),
        (
            Service::Hubspot,
            "hubspot",
            "contacts",
            vec![
                ("HUBSPOT_CLIENT_ID", HUBSPOT_CLIENT_ID),
                ("HUBSPOT_CLIENT_SECRET", HUBSPOT_CLIENT_SECRET),
                ("HUBSPOT_REFRESH_TOKEN", HUBSPOT_REFRESH_TOKEN),
                ("HUBSPOT_TOKEN_STATE_FILE", &token_path),
            ],
            "HUBSPOT_CLIENT_SECRET",
        ),
        (
            Service::Zendesk,
            "zendesk",
            "tickets",
            vec![("ZENDESK_EMAIL", ZENDESK_EMAIL), ("ZENDESK_API_TOKEN", ZENDESK_API_TOKEN)],
            "ZENDESK_API_TOKEN",
        ),
        (
            Service::Salesforce,
            "salesforce",
            "Account",
            vec![
                ("SALESFORCE_CLIENT_ID", SALESFORCE_CLIENT_ID),
                ("SALESFORCE_CLIENT_SECRET", SALESFORCE_CLIENT_SECRET),
            ],
            "SALESFORCE_CLIENT_SECRET",
        ),
    ];
    let secrets = [
        STRIPE_API_KEY,
        HUBSPOT_CLIENT_SECRET,
        HUBSPOT_REFRESH_TOKEN,
        ZENDESK_API_TOKEN,
        SALESFORCE_CLIENT_SECRET,
        SALESFORCE_REFRESH_TOKEN,
        SALESFORCE_ACCESS_TOKEN,
        PLANTED,
        WRONG,
    ];
    for (service, name, streams, credentials, refused) in &services {
        let api = Emulator::start(EmulatorOptions::new(*service, 40)).expect("start emulator");
        // Expired tokens mid-sync make the OAuth services refresh, so new tokens pass through the logs.
        api.arm(Fault::new(FaultKind::ExpireTokens).after(1));
        let base_url = api.base_url();
        let sync = ["sync", name, "--streams", streams, "--base-url", &base_url, "--dest", &dest, "--pipeline", name];
        let synced = run(&sync, credentials);
        assert!(synced.status.success(), "{name}: {}", String::from_utf8_lossy(&synced.stderr));
        assert_none_of(&format!("{name} sync"), &synced, &secrets);

        let mut wrong = credentials.clone();
        wrong.iter_mut().filter(|(variable, _)| variable == refused).for_each(|(_, value)| *value = WRONG);
        if *name == "hubspot" {
            // The saved token state would be used instead of the (wrong) configured secret.
            std::fs::remove_file(&token_file).expect("remove the token state");
        }
        let failed = run(&sync, &wrong);
        assert!(!failed.status.success(), "{name}: a wrong {refused} must fail");
        assert_none_of(&format!("{name} sync with a wrong {refused}"), &failed, &secrets);
    }
    let status = run(&["status", "--dest", &dest], &[]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_none_of("status", &status, &secrets);

    // The object store's secret key: a sync into S3, and one to an endpoint that does not answer.
    let store = S3Server::start("secrets");
    let api = Emulator::start(EmulatorOptions::new(Service::Stripe, 40)).expect("start emulator");
    let base_url = api.base_url();
    let to_s3 = ["sync", "stripe", "--streams", "customers", "--base-url", &base_url, "--dest", "s3://secrets/lake"];
    let store_environment = |endpoint: &str| {
        vec![
            ("STRIPE_API_KEY", STRIPE_API_KEY.to_string()),
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", PLANTED.to_string()),
            ("AWS_SESSION_TOKEN", WRONG.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    };
    let reached = store_environment(&store.endpoint);
    let reached: Vec<(&str, &str)> = reached.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let synced = run(&to_s3, &reached);
    assert!(synced.status.success(), "sync into S3: {}", String::from_utf8_lossy(&synced.stderr));
    assert_none_of("sync into S3", &synced, &secrets);
    // Creating a table on an object store is not an error (deltalake logged its failed load of the missing
    // table as one, once per table).
    let logged = String::from_utf8_lossy(&synced.stderr);
    assert!(!logged.lines().any(|line| line.contains(" ERROR ")), "sync into S3 logged an error: {logged}");
    let config = lake.dir.path().join("s3-pipelines.toml");
    let pipelines = format!(
        "[profiles.billing]\nkind = \"stripe\"\nbase_url = \"{base_url}\"\n\n[[pipelines]]\nname = \"stripe\"\n\
         profile = \"billing\"\nstreams = [\"customers\"]\ndest = \"s3://secrets/lake\"\nschedule = \"1h\"\n"
    );
    std::fs::write(&config, pipelines).expect("write config");
    let status = run(&["status", "--config", config.to_str().expect("utf-8")], &reached);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_none_of("status of an S3 lake", &status, &secrets);
    let unreachable = store_environment("http://127.0.0.1:1");
    let unreachable: Vec<(&str, &str)> = unreachable.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let failed = run(&to_s3, &unreachable);
    assert!(!failed.status.success(), "an unreachable store must fail");
    assert_none_of("sync into an unreachable S3 endpoint", &failed, &secrets);
}
