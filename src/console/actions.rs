//! The console's buttons: run now, pause, resume, resync a table (after a confirmation page). Each is logged in
//! the destination's event log with who pressed it.

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use connector_core::delta::{DeltaSink, Destination};
use connector_core::event_log::{Event, EventKind};
use connector_core::schema::TableId;
use maud::html;
use serde::Deserialize;
use tracing::info;

use super::Console;
use super::auth::Actor;
use super::layout::page;
use super::pages::not_found;

/// Back to the pipeline's page with `message` above it.
fn back_to(pipeline: &str, message: &str) -> Response {
    let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("done", message).finish();
    Redirect::to(&format!("/pipelines/{pipeline}?{query}")).into_response()
}

pub async fn run_now(
    State(console): State<Console>,
    Path(name): Path<String>,
    Extension(actor): Extension<Actor>,
) -> Response {
    let Some(control) = console.inner.controls.get(&name).cloned() else { return unknown(&name) };
    control.run_now();
    info!(pipeline = %name, actor = %actor.0, "run requested from the console");
    console.record_for_pipeline(&name, EventKind::RunRequested, &actor.0).await;
    let message =
        if control.is_paused() { "Run requested: it starts once the pipeline is resumed." } else { "Run requested." };
    back_to(&name, message)
}

pub async fn pause(
    State(console): State<Console>,
    Path(name): Path<String>,
    Extension(actor): Extension<Actor>,
) -> Response {
    let Some(control) = console.inner.controls.get(&name).cloned() else { return unknown(&name) };
    control.pause();
    info!(pipeline = %name, actor = %actor.0, "paused from the console");
    console.record_for_pipeline(&name, EventKind::Paused, &actor.0).await;
    back_to(&name, "Paused: a running sync stops at its next commit; none starts until resumed.")
}

pub async fn resume(
    State(console): State<Console>,
    Path(name): Path<String>,
    Extension(actor): Extension<Actor>,
) -> Response {
    let Some(control) = console.inner.controls.get(&name).cloned() else { return unknown(&name) };
    control.resume();
    info!(pipeline = %name, actor = %actor.0, "resumed from the console");
    console.record_for_pipeline(&name, EventKind::Resumed, &actor.0).await;
    back_to(&name, "Resumed.")
}

#[derive(Debug, Deserialize)]
pub struct ResyncQuery {
    table: String,
}

/// The confirmation page: a resync empties the table now, so the person types its name to go on.
pub async fn confirm_resync(
    State(console): State<Console>,
    Path(name): Path<String>,
    Query(query): Query<ResyncQuery>,
) -> Response {
    if console.pipeline(&name).is_none() {
        return unknown(&name);
    }
    let body = html! {
        p { "Resyncing " strong { (query.table) } " empties the Delta table now, in one commit, and the pipeline's next run copies it again from the source. Readers see an empty or partly copied table until the copy commits; earlier versions stay readable by time travel until VACUUM." }
        p { "The pipeline's running sync, if any, stops at its next commit first; then it runs again." }
        form method="post" action=(format!("/pipelines/{name}/resync")) {
            input type="hidden" name="table" value=(query.table);
            p { label { "Type " code { (query.table) } " to confirm: " input type="text" name="confirm" #confirm autocomplete="off" required; } }
            p { button.danger type="submit" #confirm-resync { "Empty and copy again" } " " a href=(format!("/pipelines/{name}")) { "Cancel" } }
        }
    };
    page(&format!("Resync {} of {name}?", query.table), body).into_response()
}

#[derive(Debug, Deserialize)]
pub struct ResyncForm {
    table: String,
    confirm: String,
}

pub async fn resync(
    State(console): State<Console>,
    Path(name): Path<String>,
    Extension(actor): Extension<Actor>,
    Form(form): Form<ResyncForm>,
) -> Response {
    let Some((config, _)) = console.pipeline(&name) else { return unknown(&name) };
    if form.confirm.trim() != form.table {
        let message = format!(
            "Not resynced: the confirmation `{}` is not the table's name `{}`.",
            form.confirm.trim(),
            form.table
        );
        return (
            StatusCode::BAD_REQUEST,
            page(
                "Resync not confirmed",
                html! { p.error { (message) } p { a href=(format!("/pipelines/{name}")) { "Back" } } },
            ),
        )
            .into_response();
    }
    let Some(control) = console.inner.controls.get(&name).cloned() else { return unknown(&name) };
    let outcome = async {
        let table = TableId::parse(&form.table)?;
        let destination = Destination::parse(&config.dest)?;
        // Held still while its table is emptied: the running sync ends at its next commit, none starts.
        let hold = control.hold().await;
        let sink = DeltaSink::new(destination, name.clone(), Default::default());
        let found = sink.request_resync(&table).await?;
        drop(hold);
        Ok::<_, connector_core::error::Error>((table, found))
    }
    .await;
    match outcome {
        Ok((table, true)) => {
            info!(pipeline = %name, table = %table, actor = %actor.0, "table resynced from the console");
            let event = Event::new(&name, EventKind::Resync).table(&table).actor(&actor.0);
            console.record(&config.dest, event).await;
            control.run_now();
            let when = if control.is_paused() { "once resumed" } else { "now" };
            back_to(&name, &format!("{table} emptied; the pipeline copies it again {when}."))
        }
        Ok((table, false)) => back_to(&name, &format!("{table} has no Delta table yet: nothing to resync.")),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            page(
                "Resync failed",
                html! { p.error { (error.report()) } p { a href=(format!("/pipelines/{name}")) { "Back" } } },
            ),
        )
            .into_response(),
    }
}

fn unknown(name: &str) -> Response {
    not_found(&format!("There is no pipeline `{name}` in this console's configuration."))
}
