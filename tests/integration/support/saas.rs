//! Running `connector` against the SaaS emulators and comparing its Delta tables with the emulators' data.

use std::path::Path;
use std::process::{Command, Output};

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
    let mut rows = read_rows(&lake.table_url(&TableId::new(service, stream)), &["id", label]).await;
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
    let expected = emulator_rows(emulator, stream);
    let landed = table_rows(lake, service, stream, label).await;
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
