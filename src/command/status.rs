//! `connector status`: per table, the Delta version, size and each pipeline's committed position.

use std::process::ExitCode;

use connector_core::config::{Pipeline as PipelineConfig, PipelinesFile, Profile, command_line_source};
use connector_core::delta::Destination;
use connector_core::engine::FileBacklog;
use connector_core::error::{Error, Result};
use connector_core::event_log::{EventRow, recent_events};
use connector_core::position::{BinlogPosition, SourcePosition};
use connector_core::schema::TableId;
use connector_core::status::{TableStatus, local_tables, table_status};
use connector_mysql::status::BinlogStatus;
use connector_postgres::setup::SlotStatus;
use serde::Serialize;

use crate::cli::StatusArgs;

pub async fn status(args: StatusArgs) -> Result<ExitCode> {
    let mut targets: Vec<(Destination, Vec<TableId>)> = Vec::new();
    if let Some(dest) = &args.dest {
        let path = std::path::Path::new(dest);
        if !path.is_dir() {
            return Err(Error::config(format!("--dest {dest}: no such directory (for object stores use --config)")));
        }
        targets.push((Destination::parse(dest)?, local_tables(path)?));
    }
    // Sources to ask about their side of each pipeline: PostgreSQL slots, MySQL binlog positions.
    let mut sources: Vec<(Profile, PipelineConfig)> = Vec::new();
    if let Some(config) = &args.config {
        let file = PipelinesFile::load(config)?;
        for pipeline in &file.pipelines {
            let profile = &file.profiles[&pipeline.profile];
            let tables = pipeline_tables(profile, pipeline).await?;
            targets.push((Destination::parse(&pipeline.dest)?, tables));
            sources.push((profile.clone(), pipeline.clone()));
        }
    }
    if let (Some(url), Some(name)) = (&args.url, &args.pipeline) {
        let kind = if url.starts_with("mysql://") { connector_mysql::KIND } else { connector_postgres::KIND };
        sources.push(command_line_source(kind, url, name));
    }
    let mut statuses = Vec::new();
    for (destination, tables) in &targets {
        for table in tables {
            if let Some(status) = table_status(destination, table).await? {
                statuses.push(status);
            }
        }
    }
    let events = match &args.since {
        Some(since) => recent_history(&targets, since).await?,
        None => Vec::new(),
    };
    let mut slots = Vec::new();
    let mut binlogs = Vec::new();
    let mut files = Vec::new();
    for (profile, pipeline) in &sources {
        match profile.kind.as_str() {
            connector_files::KIND => files.push(files_status(profile, pipeline).await?),
            connector_postgres::KIND => slots.push(connector_postgres::setup::slot_status(profile, pipeline).await?),
            connector_mysql::KIND => {
                let cursors = binlog_cursors(&statuses, &pipeline.name);
                binlogs.push(connector_mysql::status::binlog_status(profile, pipeline, &cursors).await?);
            }
            _ => {}
        }
    }
    if args.json {
        let document = serde_json::json!({
            "tables": statuses, "slots": slots, "binlogs": binlogs, "files": files, "events": events
        });
        let text = serde_json::to_string_pretty(&document)
            .map_err(|cause| Error::state("cannot encode the status as JSON").caused_by(cause))?;
        println!("{text}");
    } else {
        print_table(&statuses);
        print_slots(&slots);
        print_binlogs(&binlogs);
        print_files(&files);
        if args.since.is_some() {
            print_events(&events);
        }
    }
    let problems = source_problems(&slots, &binlogs);
    for problem in &problems {
        eprintln!("{problem}");
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(super::NEEDS_RESYNC_EXIT_CODE) })
}

/// The tables a pipeline writes, as its configuration names them.
pub(crate) async fn pipeline_tables(profile: &Profile, pipeline: &PipelineConfig) -> Result<Vec<TableId>> {
    // SaaS streams are not `schema.table`: their tables lie under the service (or profile) name.
    if connector_saas::KINDS.contains(&profile.kind.as_str()) {
        connector_saas::config::stream_tables(profile, pipeline)
    } else if profile.kind == connector_kafka::KIND {
        kafka_tables(profile, pipeline).await
    } else {
        pipeline.tables.iter().map(|table| TableId::parse(table).map_err(Error::from)).collect()
    }
}

/// The events of every destination's log since `since` ago (`1h`), oldest first.
async fn recent_history(targets: &[(Destination, Vec<TableId>)], since: &str) -> Result<Vec<EventRow>> {
    let ago = humantime::parse_duration(since).map_err(|cause| {
        Error::config(format!("--since {since}: not a duration (write 30m, 1h, 2d)")).caused_by(cause)
    })?;
    let from = chrono::Utc::now()
        - chrono::Duration::from_std(ago).map_err(|_| Error::config(format!("--since {since}: too long")))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut events = Vec::new();
    for (destination, _) in targets {
        if seen.insert(destination.url().to_string()) {
            events.extend(recent_events(destination, &Default::default(), from).await?);
        }
    }
    events.sort_by_key(|event| event.at);
    Ok(events)
}

fn print_events(events: &[EventRow]) {
    println!();
    if events.is_empty() {
        println!("no events in that time");
        return;
    }
    println!("{:<24} {:<16} {:<14} {:<28} {:>10} {:>8}  detail", "at", "pipeline", "event", "table", "rows", "ms");
    for event in events {
        let number = |value: Option<i64>| value.map_or(String::new(), |value| value.to_string());
        let detail = match (&event.error_kind, &event.message, &event.position) {
            (Some(kind), Some(message), _) => format!("{kind}: {message}"),
            (None, Some(message), _) => message.replace('\n', "; "),
            (None, None, Some(position)) => format!("at {position}"),
            _ => String::new(),
        };
        println!(
            "{:<24} {:<16} {:<14} {:<28} {:>10} {:>8}  {detail}",
            event.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            event.pipeline,
            event.kind,
            event.table.as_deref().unwrap_or("-"),
            number(event.rows),
            number(event.duration_ms),
        );
    }
}

/// A Kafka pipeline's tables: its named topics', and those of the cluster's topics its pattern matches (asked of
/// the brokers; when they cannot be reached, the named topics' alone, with a warning saying so).
async fn kafka_tables(profile: &Profile, pipeline: &PipelineConfig) -> Result<Vec<TableId>> {
    let named = connector_kafka::config::topic_tables(pipeline);
    let config = connector_kafka::KafkaConfig::from_profile(profile, pipeline)?;
    if config.topic_pattern.is_none() {
        return Ok(named);
    }
    match connector_kafka::KafkaPipeline::new(config)?.topics().await {
        Ok(topics) => Ok(topics.iter().map(|topic| TableId::new(connector_kafka::config::NAMESPACE, topic)).collect()),
        Err(error) => {
            eprintln!(
                "warning: pipeline `{}`: {error}; its topic pattern's tables are not shown, only its named topics'",
                pipeline.name
            );
            Ok(named)
        }
    }
}

/// A files pipeline's table: its ledger and what a listing of its path adds.
#[derive(Debug, Serialize)]
struct FilesStatus {
    pipeline: String,
    path: String,
    #[serde(flatten)]
    backlog: FileBacklog,
}

async fn files_status(profile: &Profile, pipeline: &PipelineConfig) -> Result<FilesStatus> {
    let config = connector_files::FilesConfig::from_profile(profile, pipeline)?;
    let path = config.path.clone();
    let backlog = connector_files::FilesPipeline::new(config)?.backlog().await?;
    Ok(FilesStatus { pipeline: pipeline.name.clone(), path, backlog })
}

fn print_files(files: &[FilesStatus]) {
    if files.is_empty() {
        return;
    }
    let mib = |bytes: u64| format!("{:.1}", bytes as f64 / (1024.0 * 1024.0));
    println!();
    println!(
        "{:<20} {:<32} {:>14} {:>14} {:>18} {:>16}  path",
        "pipeline", "table", "files ingested", "ingested MiB", "files outstanding", "outstanding MiB"
    );
    for status in files {
        let backlog = &status.backlog;
        println!(
            "{:<20} {:<32} {:>14} {:>14} {:>18} {:>16}  {}",
            status.pipeline,
            backlog.table.to_string(),
            backlog.ingested_files,
            mib(backlog.ingested_bytes),
            backlog.outstanding_files,
            mib(backlog.outstanding_bytes),
            status.path
        );
        if backlog.rewritten_files > 0 {
            println!(
                "{:<20} {} files were rewritten after they were ingested and are skipped (reingest_changed_files \
                 ingests them again)",
                "", backlog.rewritten_files
            );
        }
        for skipped in &backlog.skipped_files {
            println!("{:<20} skipped, unreadable: {}: {}", "", skipped.path, skipped.reason);
        }
    }
}

/// Pipelines whose source lost what their next sync needs: a slot whose WAL was removed, a binlog purged.
fn source_problems(slots: &[SlotStatus], binlogs: &[BinlogStatus]) -> Vec<String> {
    let lost_slots = slots.iter().filter(|slot| slot.wal_status.as_deref() == Some("lost")).map(|slot| {
        format!(
            "pipeline {}: replication slot {} lost the WAL it held (max_slot_wal_keep_size): changes are missing; \
             drop the pipeline (connector drop --pipeline {}) and sync again to copy its tables anew",
            slot.pipeline, slot.slot, slot.pipeline
        )
    });
    let purged = binlogs.iter().filter(|binlog| !binlog.cursor_available).map(|binlog| {
        format!(
            "pipeline {}: the server no longer has the binlog its tables need: changes are missing; copy them anew \
             with connector resync --pipeline {} --table …",
            binlog.pipeline, binlog.pipeline
        )
    });
    lost_slots.chain(purged).collect()
}

/// The binlog positions `pipeline` committed to the tables shown.
fn binlog_cursors(statuses: &[TableStatus], pipeline: &str) -> Vec<BinlogPosition> {
    statuses
        .iter()
        .flat_map(|status| &status.pipelines)
        .filter(|progress| progress.app_id.split('/').next() == Some(pipeline))
        .filter_map(|progress| match &progress.cursor.position {
            SourcePosition::Binlog(position) => Some(position.clone()),
            _ => None,
        })
        .collect()
}

fn print_binlogs(binlogs: &[BinlogStatus]) {
    if binlogs.is_empty() {
        return;
    }
    println!();
    println!("{:<20} {:<28} {:<28} {:>10}", "pipeline", "server binlog", "oldest table cursor", "lag MiB");
    for binlog in binlogs {
        let lag = binlog.lag_bytes.map_or("-".to_string(), |bytes| format!("{:.1}", bytes as f64 / (1024.0 * 1024.0)));
        let cursor = binlog.oldest_cursor.as_deref().unwrap_or("(no table synced yet)");
        print!("{:<20} {:<28} {:<28} {:>10}", binlog.pipeline, binlog.server_position, cursor, lag);
        if binlog.cursor_available {
            println!();
            if let Some(gtid) = &binlog.oldest_cursor_gtid {
                println!(
                    "{:<20} GTIDs: server {}, oldest table cursor {gtid}",
                    "",
                    binlog.server_gtid.as_deref().unwrap_or("-")
                );
            }
        } else {
            println!(
                "  the server no longer has (or never had) the binlog this cursor needs: resync the tables \
                 (connector resync --pipeline {})",
                binlog.pipeline
            );
        }
    }
}

fn print_slots(slots: &[SlotStatus]) {
    if slots.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<20} {:<28} {:<8} {:<12} {:<14} {:>14} {:>14}",
        "pipeline", "slot", "active", "wal status", "confirmed", "retained MiB", "lag MiB"
    );
    let mib =
        |bytes: Option<i64>| bytes.map_or("-".to_string(), |bytes| format!("{:.1}", bytes as f64 / (1024.0 * 1024.0)));
    for slot in slots {
        if !slot.exists {
            println!(
                "{:<20} {:<28} (no slot: the next sync creates it and copies every table)",
                slot.pipeline, slot.slot
            );
            continue;
        }
        println!(
            "{:<20} {:<28} {:<8} {:<12} {:<14} {:>14} {:>14}",
            slot.pipeline,
            slot.slot,
            if slot.active { "yes" } else { "no" },
            slot.wal_status.as_deref().unwrap_or("-"),
            slot.confirmed_flush.as_deref().unwrap_or("-"),
            mib(slot.retained_bytes),
            mib(slot.lag_bytes)
        );
    }
}

fn print_table(statuses: &[TableStatus]) {
    if statuses.is_empty() {
        println!("no Delta tables found");
        return;
    }
    println!(
        "{:<32} {:>7} {:>12} {:>6} {:>10} {:>10} {:>10}  {:<20} {:<24} snapshot",
        "table", "version", "rows", "files", "MiB", "compacted", "checkpoint", "pipeline", "position"
    );
    for status in statuses {
        let rows = status.row_count.map_or("?".to_string(), |rows| rows.to_string());
        let mib = format!("{:.1}", status.byte_count as f64 / (1024.0 * 1024.0));
        let compacted = status.last_compacted_at.map_or("-".to_string(), |at| age(chrono::Utc::now() - at));
        let checkpoint = status.checkpoint_version.map_or("-".to_string(), |version| version.to_string());
        let head = format!(
            "{:<32} {:>7} {:>12} {:>6} {:>10} {:>10} {:>10}",
            status.table.to_string(),
            status.version,
            rows,
            status.file_count,
            mib,
            compacted,
            checkpoint
        );
        if status.pipelines.is_empty() {
            println!("{head}  (no pipeline progress recorded)");
        }
        for progress in &status.pipelines {
            let snapshot = match &progress.cursor.snapshot {
                Some(snapshot) if snapshot.complete => "complete".to_string(),
                Some(snapshot) => format!("in progress ({} rows)", snapshot.rows_copied),
                None => "-".to_string(),
            };
            let pipeline = progress.app_id.split('/').next().unwrap_or_default();
            println!("{head}  {pipeline:<20} {:<24} {snapshot}", progress.cursor.position.to_string());
        }
    }
}

/// How long ago, in the largest whole unit: `45s ago`, `12m ago`, `3h ago`, `2d ago`.
fn age(elapsed: chrono::Duration) -> String {
    let seconds = elapsed.num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86_400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}
