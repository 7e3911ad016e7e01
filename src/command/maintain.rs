//! `connector maintain`: compaction, checkpoint, expired-log clean-up and VACUUM of a destination's tables,
//! each table while the leases of the pipelines writing it are held, so that no commit of theirs meets it.

use std::collections::HashMap;
use std::process::ExitCode;

use connector_core::delta::Destination;
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::event_log::{Event, EventKind, EventLog, events_table};
use connector_core::lease::PipelineLease;
use connector_core::maintenance::{
    MaintenancePolicy, MaintenanceReport, maintain_table, open_table, writing_pipelines,
};
use connector_core::schema::TableId;
use connector_core::status::local_tables;

use crate::cli::MaintainArgs;

pub async fn maintain(args: MaintainArgs) -> Result<ExitCode> {
    let destination = Destination::parse(&args.dest)?;
    let storage_options = HashMap::new();
    let named = !args.tables.is_empty();
    let tables = if named {
        args.tables.iter().map(|table| TableId::parse(table).map_err(Error::from)).collect::<Result<Vec<_>>>()?
    } else {
        let Ok(root) = destination.url().to_file_path() else {
            return Err(Error::config(format!(
                "--dest {}: name the tables to maintain with --table (an object store's tables are not listed)",
                args.dest
            )));
        };
        let mut tables = local_tables(&root)?;
        tables.push(events_table());
        tables
    };
    let vacuum_retention = match &args.vacuum_retention {
        None => None,
        Some(text) => Some(humantime::parse_duration(text).map_err(|cause| {
            Error::config(format!("--vacuum-retention {text}: not a duration (write 1h, 24h, 7d)")).caused_by(cause)
        })?),
    };
    let policy = MaintenancePolicy {
        target_file_bytes: args.target_file_size,
        min_small_files: args.min_small_files,
        vacuum_retention,
        vacuum: true,
    };
    let events = EventLog::for_destination(&destination, &storage_options);
    let mut failures = 0;
    for table_id in &tables {
        match maintain_one(&destination, table_id, &policy, &storage_options).await {
            Ok(Some((pipelines, report))) => {
                if args.json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    println!("{table_id}: {} in {} ms", report.describe(), report.duration_ms);
                }
                let event = Event::new(pipelines.join(","), EventKind::Maintenance)
                    .table(table_id)
                    .message(report.describe())
                    .duration(std::time::Duration::from_millis(report.duration_ms))
                    .actor("cli");
                events.record(event);
            }
            Ok(None) if named => {
                failures += 1;
                eprintln!("{table_id}: there is no Delta table for it under {}", args.dest);
            }
            Ok(None) => {}
            Err(error) => {
                failures += 1;
                eprintln!("{table_id}: {}", error.report());
                events.record(Event::new("", EventKind::Maintenance).table(table_id).error(&error).actor("cli"));
            }
        }
    }
    events.flush().await;
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Maintains one table under the leases of its pipelines; `None` if there is no such table.
async fn maintain_one(
    destination: &Destination,
    table_id: &TableId,
    policy: &MaintenancePolicy,
    storage_options: &HashMap<String, String>,
) -> Result<Option<(Vec<String>, MaintenanceReport)>> {
    let Some(mut table) = open_table(destination, table_id, storage_options).await? else { return Ok(None) };
    let pipelines = writing_pipelines(&table, table_id).await?;
    let mut leases = Vec::new();
    for pipeline in &pipelines {
        match PipelineLease::acquire(destination, pipeline, storage_options).await {
            Ok(lease) => leases.push(lease),
            Err(refused) => {
                release(leases).await;
                return Err(Error::new(
                    ErrorKind::State,
                    Retry::WithBackoff,
                    format!(
                        "not maintained: pipeline `{pipeline}`, which writes it, is running ({}); maintain it while \
                         the pipeline is stopped or between its scheduled runs",
                        refused.report()
                    ),
                ));
            }
        }
    }
    // The table as it stands once no writer can commit: brought up to date, since a commit may have landed
    // before the leases were taken.
    let outcome = match table.update_state().await {
        Ok(()) => maintain_table(table, table_id, policy).await.map(|(_, report)| Some((pipelines, report))),
        Err(cause) => Err(Error::destination(format!("cannot reload {table_id} under its pipelines' leases"), cause)),
    };
    release(leases).await;
    outcome
}

async fn release(leases: Vec<PipelineLease>) {
    for lease in leases {
        lease.release().await;
    }
}
