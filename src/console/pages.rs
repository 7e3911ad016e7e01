//! The console's read-only pages: every pipeline at a glance, one pipeline, one table, the event log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use connector_core::delta::Destination;
use connector_core::event_log::{EventRow, recent_events};
use connector_core::pipeline_control::RunState;
use connector_core::pipeline_health::{self, Health};
use connector_core::schema::TableId;
use connector_core::status::{TableStatus, table_status};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::charts::{Series, bars};
use super::layout::{bytes, count, moment, page};
use crate::command::status::pipeline_tables;

/// How far back the pipeline pages and their charts read the event log.
const RECENT: Duration = Duration::hours(1);
/// Events listed on a pipeline's page, newest first.
const EVENTS_LISTED: usize = 50;

/// A message shown above a page after an action (`?done=…`).
#[derive(Debug, Deserialize)]
pub struct Notice {
    done: Option<String>,
}

/// What a pipeline is doing, as one word and a style, and what it last failed with.
struct Standing {
    label: String,
    class: &'static str,
    detail: Option<String>,
    error: Option<String>,
    resync: Vec<String>,
}

fn standing(console: &Console, name: &str) -> Standing {
    let control = console.inner.controls.get(name);
    let state = control.map(|control| control.state()).unwrap_or(RunState::Stopped);
    let (mut label, mut class) = (state.label().to_string(), "");
    let pausing = control.is_some_and(|control| control.is_paused()) && matches!(state, RunState::Running { .. });
    let detail = match &state {
        RunState::Waiting { next_run_at: Some(at) } => Some(format!("next run {}", moment(Some(*at)))),
        RunState::Running { since } => Some(format!("since {}", moment(Some(*since)))),
        _ => None,
    };
    match state {
        RunState::Running { .. } if pausing => {
            (label, class) = ("pausing: the run stops at its next commit".into(), "paused")
        }
        RunState::Running { .. } => class = "running",
        RunState::Paused => class = "paused",
        RunState::StoppedForResync => class = "needs-person",
        _ => {}
    }
    let (error, resync) = match pipeline_health::health_of(name) {
        Some(Health::Retrying { error }) => {
            (label, class) = (format!("{label} (retrying after a failure)"), "failing");
            (Some(error), Vec::new())
        }
        Some(Health::NeedsPerson { error, resync }) => {
            (label, class) = (format!("{label} (needs attention)"), "needs-person");
            (Some(error), resync)
        }
        _ => (None, Vec::new()),
    };
    Standing { label, class, detail, error, resync }
}

/// The events of the last `since` of the logs of `destinations`, oldest first, and the logs that could not be read.
async fn events_since(destinations: Vec<String>, since: Duration) -> (Vec<EventRow>, Vec<String>) {
    let from = Utc::now() - since;
    let mut events = Vec::new();
    let mut problems = Vec::new();
    for dest in destinations {
        match Destination::parse(&dest) {
            Ok(destination) => match recent_events(&destination, &Default::default(), from).await {
                Ok(found) => events.extend(found),
                Err(error) => problems.push(format!("{dest}: {}", error.report())),
            },
            Err(error) => problems.push(format!("{dest}: {}", error.report())),
        }
    }
    events.sort_by_key(|event| event.at);
    (events, problems)
}

pub async fn overview(State(console): State<Console>) -> Markup {
    let (events, problems) = events_since(console.destinations(), RECENT).await;
    let body = html! {
        @for problem in &problems { p.error { "Cannot read the event log of " (problem) } }
        table #pipelines {
            thead { tr { th { "Pipeline" } th { "Source" } th { "Schedule" } th { "State" } th { "Destination" } th.number { "Commits (1 h)" } th.number { "Rows (1 h)" } th { "Last commit" } } }
            tbody {
                @for (pipeline, profile) in console.pipelines() {
                    @let standing = standing(&console, &pipeline.name);
                    @let commits: Vec<&EventRow> = events.iter().filter(|event| event.pipeline == pipeline.name && event.kind == "commit").collect();
                    tr data-pipeline=(pipeline.name) {
                        td { a href=(format!("/pipelines/{}", pipeline.name)) { (pipeline.name) } }
                        td { (profile.kind) " " span.muted { "(" (pipeline.profile) ")" } }
                        td { (pipeline.schedule.to_string()) }
                        td { span.state.(standing.class) { (standing.label) } @if let Some(error) = &standing.error { div.muted { (first_line(error)) } } }
                        td.mono { (pipeline.dest) }
                        td.number { (count(commits.len() as u64)) }
                        td.number { (count(commits.iter().filter_map(|event| event.rows).sum::<i64>().max(0) as u64)) }
                        td { (moment(commits.last().map(|event| event.at))) }
                    }
                }
            }
        }
        p.muted { "Configuration: " code { (console.inner.config_path.display()) } ". Counts are from the destinations' event logs." }
    };
    page("Pipelines", body)
}

pub async fn pipeline(
    State(console): State<Console>,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let Some((config, profile)) = console.pipeline(&name) else {
        return not_found(&format!("There is no pipeline `{name}` in this console's configuration."));
    };
    let standing = standing(&console, &name);
    let paused = console.inner.controls.get(&name).is_some_and(|control| control.is_paused());
    let destination = Destination::parse(&config.dest);
    let tables = pipeline_tables(profile, config).await;
    let mut statuses: Vec<(TableId, Result<Option<TableStatus>, String>)> = Vec::new();
    if let (Ok(destination), Ok(tables)) = (&destination, &tables) {
        for table in tables {
            statuses.push((table.clone(), table_status(destination, table).await.map_err(|error| error.report())));
        }
    }
    let (events, problems) = events_since(vec![config.dest.clone()], RECENT).await;
    let mine: Vec<&EventRow> = events.iter().filter(|event| event.pipeline == name).collect();
    let mut rows = Series::ending_now(60, Duration::minutes(1));
    let mut commit_ms = Series::ending_now(60, Duration::minutes(1));
    let mut lag_seconds = Series::ending_now(60, Duration::minutes(1));
    let mut lag_recorded = false;
    for event in mine.iter().filter(|event| event.kind == "commit") {
        rows.add(event.at, event.rows.unwrap_or(0) as f64);
        commit_ms.max(event.at, event.duration_ms.unwrap_or(0) as f64);
        if let Some(lag_ms) = event.lag_ms {
            lag_seconds.max(event.at, lag_ms as f64 / 1000.0);
            lag_recorded = true;
        }
    }
    let body = html! {
        @if let Some(done) = &notice.done { p.notice #notice { (done) } }
        @for problem in &problems { p.error { "Cannot read the event log of " (problem) } }
        dl.facts {
            dt { "State" } dd #state { span.state.(standing.class) { (standing.label) } @if let Some(detail) = &standing.detail { " " span.muted { (detail) } } }
            dt { "Source" } dd { (profile.kind) " (profile " code { (config.profile) } ")" }
            dt { "Schedule" } dd { (config.schedule.to_string()) }
            dt { "Destination" } dd.mono { (config.dest) }
        }
        @if let Some(error) = &standing.error {
            h2 { "Last error" }
            div.error #last-error { (error) }
            @if !standing.resync.is_empty() { p { "The fix: resync " (standing.resync.join(", ")) " (buttons below)." } }
        }
        div.actions #actions {
            form.inline method="post" action=(format!("/pipelines/{name}/run")) { button type="submit" #run-now { "Run now" } }
            " "
            @if paused {
                form.inline method="post" action=(format!("/pipelines/{name}/resume")) { button type="submit" #resume { "Resume" } }
            } @else {
                form.inline method="post" action=(format!("/pipelines/{name}/pause")) { button.secondary type="submit" #pause { "Pause" } }
            }
        }
        h2 { "Tables" }
        @match (&destination, &tables) {
            (Err(error), _) => p.error { (error.report()) },
            (_, Err(error)) => p.error { "Cannot list the pipeline's tables: " (error.report()) },
            _ => (tables_of(&name, &config.dest, &statuses)),
        }
        h2 { "Last hour" }
        div.charts #charts {
            (bars("Rows committed", "rows", &rows))
            (bars("Slowest commit", "ms", &commit_ms))
            @if lag_recorded { (bars("Most lag behind the source", "s", &lag_seconds)) }
        }
        @if !lag_recorded { p.muted { "Lag behind the source is charted once the pipeline commits changes (PostgreSQL, MySQL/MariaDB, Kafka, files; not SaaS APIs)." } }
        h2 { "Recent events" }
        (event_table(mine.iter().rev().take(EVENTS_LISTED).copied()))
    };
    page(&format!("Pipeline {name}"), body).into_response()
}

fn tables_of(pipeline: &str, dest: &str, statuses: &[(TableId, Result<Option<TableStatus>, String>)]) -> Markup {
    html! {
        table #tables {
            thead { tr { th { "Table" } th.number { "Version" } th.number { "Rows" } th.number { "Files" } th.number { "Size" } th { "Position" } th { "Snapshot" } th { "Last commit" } th {} } }
            tbody {
                @for (table, status) in statuses {
                    tr data-table=(table.to_string()) {
                        td { a href=(table_link(dest, &table.to_string())) { (table.to_string()) } }
                        @match status {
                            Ok(Some(status)) => {
                                @let progress = status.pipelines.iter().find(|progress| progress.app_id.split('/').next() == Some(pipeline));
                                td.number { (status.version) }
                                td.number { (status.row_count.map_or("—".into(), count)) }
                                td.number { (count(status.file_count as u64)) }
                                td.number { (bytes(status.byte_count)) }
                                td.mono { (progress.map_or("—".into(), |progress| progress.cursor.position.to_string())) }
                                td { (progress.map_or("—".into(), |progress| snapshot_text(&progress.cursor))) }
                                td { (moment(status.last_commit_at)) }
                            }
                            Ok(None) => { td colspan="7" .muted { "not created yet: the pipeline's first sync creates it" } }
                            Err(error) => { td colspan="7" .error { (error) } }
                        }
                        td { a.button href=(format!("/pipelines/{pipeline}/resync?table={}", table)) { "Resync…" } }
                    }
                }
            }
        }
    }
}

fn snapshot_text(cursor: &connector_core::cursor::TableCursor) -> String {
    match &cursor.snapshot {
        Some(snapshot) if snapshot.complete => "complete".into(),
        Some(snapshot) => format!("in progress ({} rows)", count(snapshot.rows_copied)),
        None => "—".into(),
    }
}

/// The address of the page of `table` (`namespace.name`) at `dest`.
pub(super) fn table_link(dest: &str, table: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("dest", dest)
        .append_pair("table", table)
        .finish();
    format!("/tables?{query}")
}

#[derive(Debug, Deserialize)]
pub struct TableQuery {
    dest: String,
    table: String,
}

pub async fn table(State(console): State<Console>, Query(query): Query<TableQuery>) -> Response {
    // Only the pipelines' destinations: the console is no browser of the machine's directories.
    if !console.destinations().contains(&query.dest) {
        return not_found(&format!("`{}` is not a destination of this console's pipelines.", query.dest));
    }
    let id = match TableId::parse(&query.table) {
        Ok(id) => id,
        Err(error) => return not_found(&error.to_string()),
    };
    let destination = match Destination::parse(&query.dest) {
        Ok(destination) => destination,
        Err(error) => return not_found(&error.report()),
    };
    let status = match table_status(&destination, &id).await {
        Ok(Some(status)) => status,
        Ok(None) => return not_found(&format!("There is no Delta table {id} under {}.", query.dest)),
        Err(error) => return not_found(&error.report()),
    };
    let from = Utc::now() - RECENT;
    let events = recent_events(&destination, &Default::default(), from).await.unwrap_or_default();
    let table_name = id.to_string();
    let mine: Vec<&EventRow> =
        events.iter().filter(|event| event.table.as_deref() == Some(table_name.as_str())).collect();
    let mut rows = Series::ending_now(60, Duration::minutes(1));
    for event in mine.iter().filter(|event| event.kind == "commit") {
        rows.add(event.at, event.rows.unwrap_or(0) as f64);
    }
    let body = html! {
        dl.facts #table-facts {
            dt { "Location" } dd.mono { (status.url) }
            dt { "Version" } dd { (status.version) }
            dt { "Rows" } dd #row-count { (status.row_count.map_or("—".into(), count)) }
            dt { "Files" } dd { (count(status.file_count as u64)) " (" (bytes(status.byte_count)) ")" }
            dt { "Last commit" } dd { (moment(status.last_commit_at)) }
            dt { "Last compaction" } dd { (moment(status.last_compacted_at)) }
            dt { "Newest checkpoint" } dd { (status.checkpoint_version.map_or("—".into(), |version| format!("version {version}"))) }
        }
        h2 { "Pipelines writing it" }
        @if status.pipelines.is_empty() { p.muted { "No pipeline has recorded progress in this table (a load's commits record none)." } }
        @else {
            table {
                thead { tr { th { "Pipeline" } th { "Position" } th { "Snapshot" } th { "Committed" } } }
                tbody { @for progress in &status.pipelines {
                    tr { td { (progress.app_id) } td.mono { (progress.cursor.position.to_string()) } td { (snapshot_text(&progress.cursor)) } td { (moment(progress.committed_at)) } }
                } }
            }
        }
        h2 { "Last hour" }
        div.charts { (bars("Rows committed", "rows", &rows)) }
        h2 { "Recent events" }
        (event_table(mine.iter().rev().take(EVENTS_LISTED).copied()))
    };
    page(&format!("Table {id}"), body).into_response()
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    since: Option<String>,
}

pub async fn events(State(console): State<Console>, Query(query): Query<EventsQuery>) -> Response {
    let since_text = query.since.unwrap_or_else(|| "1h".to_string());
    let Some(since) = humantime::parse_duration(&since_text).ok().and_then(|since| Duration::from_std(since).ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            page("Event log", html! { p.error { "`" (since_text) "` is not a duration: write 30m, 1h, 2d." } }),
        )
            .into_response();
    };
    let (events, problems) = events_since(console.destinations(), since).await;
    let body = html! {
        @for problem in &problems { p.error { "Cannot read the event log of " (problem) } }
        p.muted { "The last " (since_text) " of the destinations' event logs (" code { "<dest>/_connector/events" } "), newest first. Other spans: "
            a href="/events?since=15m" { "15 min" } ", " a href="/events?since=1d" { "1 day" } ", " a href="/events?since=7d" { "7 days" } "." }
        (event_table(events.iter().rev().take(1000)))
    };
    page("Event log", body).into_response()
}

fn event_table<'a>(events: impl Iterator<Item = &'a EventRow>) -> Markup {
    html! {
        table.events {
            thead { tr { th { "At" } th { "Pipeline" } th { "Event" } th { "Table" } th.number { "Rows" } th.number { "ms" } th { "Who" } th { "Detail" } } }
            tbody {
                @for event in events {
                    tr data-kind=(event.kind) {
                        td { (moment(Some(event.at))) }
                        td { (event.pipeline) }
                        td { (event.kind) }
                        td { (event.table.as_deref().unwrap_or("")) }
                        td.number { (event.rows.map(|rows| count(rows.max(0) as u64)).unwrap_or_default()) }
                        td.number { (event.duration_ms.map(|ms| ms.to_string()).unwrap_or_default()) }
                        td { (event.actor.as_deref().unwrap_or("")) }
                        td { (event.message.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

pub fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, page("Not found", html! { p.error { (message) } p { a href="/" { "All pipelines" } } }))
        .into_response()
}
