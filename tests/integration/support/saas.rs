//! Running `connector` against the SaaS emulators and comparing its Delta tables with the emulators' data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use connector_core::schema::TableId;
use saas_emulator::Emulator;

use crate::support::delta::{TempLake, read_rows};

pub const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// `connector sync <service> --streams … --dest <lake> --base-url <emulator>` with `environment` set.
pub fn sync_command(
    service: &str,
    emulator: &Emulator,
    lake: &Path,
    streams: &str,
    environment: &[(&str, &str)],
    extra: &[&str],
) -> Command {
    let mut command = Command::new(CONNECTOR);
    command
        .args(["sync", service, "--streams", streams, "--base-url", &emulator.base_url(), "--dest"])
        .arg(lake)
        .args(["--pipeline", "test"])
        .args(extra)
        .env("CONNECTOR_LOG", "info")
        .envs(environment.iter().copied());
    command
}

pub fn succeed(command: &mut Command) -> Output {
    let output = command.output().expect("run connector");
    assert!(
        output.status.success(),
        "connector failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn fail(command: &mut Command) -> Output {
    let output = command.output().expect("run connector");
    assert!(!output.status.success(), "connector should have failed:\n{}", String::from_utf8_lossy(&output.stdout));
    output
}

/// `id|label` of every row of `<lake>/<service>/<stream>`, sorted (duplicates kept, so they show).
pub async fn table_rows(lake: &TempLake, service: &str, stream: &str, label: &str) -> Vec<String> {
    keyed_table_rows(lake, service, stream, "id", label).await
}

/// [`table_rows`] of a stream whose key column is `key` (Salesforce's `Id`).
pub async fn keyed_table_rows(lake: &TempLake, service: &str, stream: &str, key: &str, label: &str) -> Vec<String> {
    let mut rows = read_rows(&lake.table_url(&TableId::new(service, stream)), &[key, label]).await;
    rows.sort();
    rows
}

/// `id|label` of every live record of the emulator's stream, sorted.
pub fn emulator_rows(emulator: &Emulator, stream: &str) -> Vec<String> {
    let mut rows: Vec<String> =
        emulator.expected_rows(stream).into_iter().map(|(id, label)| format!("{id}|{label}")).collect();
    rows.sort();
    rows
}

/// Asserts the table holds exactly the emulator's live records, once each.
pub async fn assert_table_matches(lake: &TempLake, emulator: &Emulator, service: &str, stream: &str, label: &str) {
    assert_keyed_table_matches(lake, emulator, service, stream, "id", label).await;
}

/// [`assert_table_matches`] for a stream whose key column is `key` (Salesforce's `Id`).
pub async fn assert_keyed_table_matches(
    lake: &TempLake,
    emulator: &Emulator,
    service: &str,
    stream: &str,
    key: &str,
    label: &str,
) {
    let expected = emulator_rows(emulator, stream);
    let landed = keyed_table_rows(lake, service, stream, key, label).await;
    if landed != expected {
        let missing: Vec<_> = expected.iter().filter(|row| !landed.contains(row)).take(5).collect();
        let extra: Vec<_> = landed.iter().filter(|row| !expected.contains(row)).take(5).collect();
        panic!(
            "{service}/{stream}: {} records in the emulator, {} rows in Delta; missing {missing:?}; unexpected {extra:?}",
            expected.len(),
            landed.len()
        );
    }
}

/// Number of commits in a table's Delta log.
pub fn commit_count(lake: &TempLake, service: &str, stream: &str) -> usize {
    let log = lake.dir.path().join(service).join(stream).join("_delta_log");
    std::fs::read_dir(log)
        .map(|entries| {
            entries.flatten().filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json")).count()
        })
        .unwrap_or(0)
}

/// Writes `<lake>/pipelines.toml`: the profile `[profiles.<name>]` with `body` (which may add sub-tables such as
/// `[profiles.<name>.streams.x]`), and a pipeline `test` syncing `streams` of it into the lake on `schedule`.
pub fn pipelines_file(lake: &TempLake, name: &str, body: &str, streams: &str, schedule: &str) -> PathBuf {
    let path = lake.dir.path().join("pipelines.toml");
    let text = format!(
        "[profiles.{name}]\n{body}\n\n[[pipelines]]\nname = \"test\"\nprofile = \"{name}\"\nstreams = [{streams}]\n\
         dest = \"{}\"\nschedule = \"{schedule}\"\n",
        lake.dir.path().display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// `connector run --config <config>` with `environment` set (add `--once` for one sync).
pub fn run_command(config: &Path, environment: &[(&str, &str)]) -> Command {
    let mut command = Command::new(CONNECTOR);
    command.args(["run", "--config"]).arg(config).env("CONNECTOR_LOG", "info").envs(environment.iter().copied());
    command
}

/// Polls until the table holds exactly the emulator's live records, or fails after a minute.
pub async fn wait_until_table_matches(lake: &TempLake, emulator: &Emulator, service: &str, stream: &str, label: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if has_column(lake, service, stream, label).await
            && table_rows(lake, service, stream, label).await == emulator_rows(emulator, stream)
        {
            return;
        }
        if Instant::now() > deadline {
            assert_table_matches(lake, emulator, service, stream, label).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the table exists and has `column` (columns appear with the first records that carry them).
async fn has_column(lake: &TempLake, service: &str, stream: &str, column: &str) -> bool {
    if !lake.dir.path().join(service).join(stream).join("_delta_log").is_dir() {
        return false;
    }
    let url = lake.table_url(&TableId::new(service, stream));
    match connector_core::deltalake::open_table(url).await {
        Ok(table) => table.snapshot().is_ok_and(|snapshot| snapshot.schema().field(column).is_some()),
        Err(_) => false,
    }
}
