//! Driving the `connector` binary as a user does: stopping it with SIGTERM, waiting for it, comparing what it
//! wrote with the source.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// How long a test waits for the connector to converge or to exit.
pub const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(60);

/// Sends SIGTERM, as a service manager stopping the connector would.
pub fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success(), "kill -TERM failed");
}

/// Waits for the connector to exit, failing the test after the deadline.
pub fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return status;
        }
        assert!(Instant::now() < deadline, "connector did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a table directory holds Parquet files yet (a copy has started writing).
/// The commits in a Delta log directory.
pub fn commits_in(log: &Path) -> usize {
    std::fs::read_dir(log)
        .map(|entries| {
            entries.flatten().filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json")).count()
        })
        .unwrap_or(0)
}

/// Waits until a commit in the Delta log directory `log` gives the table column `column` (the table's schema is
/// a JSON string inside the log's JSON, hence the escaped quotes).
pub async fn wait_for_column(log: &Path, column: &str) {
    let named = format!("\\\"{column}\\\"");
    let deadline = Instant::now() + CONVERGENCE_DEADLINE;
    let has_column = || {
        std::fs::read_dir(log)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|entry| std::fs::read_to_string(entry.path()).is_ok_and(|text| text.contains(&named)))
            })
            .unwrap_or(false)
    };
    while !has_column() {
        assert!(Instant::now() < deadline, "the Delta table never gained column `{column}`");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn has_parquet(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|entry| entry.path().extension().is_some_and(|ext| ext == "parquet")))
        .unwrap_or(false)
}

/// When to `kill -9` each of `runs` runs of a sync that, run whole, takes `whole_ms`: random moments over the
/// whole sync, except the first, which falls in its first half. Each run resumes what the last committed, so
/// later runs have less to do and may end before their moment; the first kill must land while work is left, or
/// the test tests nothing.
pub fn kill_moments(random: &mut fastrand::Rng, whole_ms: u64, runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|run| {
            let latest = if run == 0 { whole_ms / 2 } else { whole_ms };
            Duration::from_millis(random.u64(10..latest.max(20)))
        })
        .collect()
}

/// The first rows only one side has, for a readable failure.
pub fn difference(expected: &[String], landed: &[String]) -> String {
    // Sets, so a soak's hundred thousand rows compare in linear time.
    let (expected_set, landed_set): (HashSet<&String>, HashSet<&String>) =
        (expected.iter().collect(), landed.iter().collect());
    let missing: Vec<_> = expected.iter().filter(|row| !landed_set.contains(row)).take(5).collect();
    let extra: Vec<_> = landed.iter().filter(|row| !expected_set.contains(row)).take(5).collect();
    format!("{} source rows, {} Delta rows; missing {missing:?}; unexpected {extra:?}", expected.len(), landed.len())
}

/// `connector resync` of `table` (`schema.table`) of `pipeline` in the lake at `lake`.
pub fn resync_command(lake: &Path, pipeline: &str, table: &str) -> Command {
    let mut command = Command::new(CONNECTOR);
    command.args(["resync", "--pipeline", pipeline, "--table", table, "--dest"]).arg(lake);
    command
}

/// Runs [`resync_command`], failing the test with its stderr unless it succeeded.
pub fn resync(lake: &Path, pipeline: &str, table: &str) -> Output {
    let output = resync_command(lake, pipeline, table).output().expect("run resync");
    assert!(output.status.success(), "resync failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// A run of the connector that must be refused: exit code `code`, one `error:` line whose text holds every
/// fragment of `says` (what, where and the fix), and no panic. Returns stderr for further checks.
pub fn assert_refused(what: &str, output: &Output, code: i32, says: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{what}: exit code; stderr: {stderr}");
    assert!(!stderr.contains("internal error") && !stderr.contains("panicked"), "{what}: panicked: {stderr}");
    for fragment in says {
        assert!(stderr.contains(fragment), "{what}: stderr lacks `{fragment}`: {stderr}");
    }
    stderr
}
