//! Structured logs on stderr (stdout is for command output), as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The connector's own crates: a bare level (`info`, `debug`) applies to them, while dependencies (deltalake,
/// DataFusion, the drivers) stay at `warn`, so their internals don't drown the connector's own lines.
const OWN_CRATES: &[&str] = &[
    "connector",
    "connector_core",
    "connector_postgres",
    "connector_mysql",
    "connector_saas",
    "connector_files",
    "connector_kafka",
];

pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    let expanded = if filter.contains('=') || filter.contains(',') {
        filter.to_string()
    } else {
        let own: Vec<String> = OWN_CRATES.iter().map(|name| format!("{name}={filter}")).collect();
        // deltalake warns on every MERGE that a scan metric is missing (it derives it), and on every file it
        // writes that a binary column (a Kafka key) gets no statistics, which Delta never keeps for binary: not news.
        format!("warn,deltalake_core::operations::merge=error,deltalake_core::writer::stats=error,{}", own.join(","))
    };
    let filter = EnvFilter::try_new(&expanded).map_err(|error| {
        format!("`--log {filter}` is not a log filter ({error}); try `info` or `connector_core=debug`")
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
