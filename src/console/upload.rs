//! The upload page: files dropped or chosen in the browser are streamed to a directory of the console's, shown as
//! the columns a load would create and their first 50 rows (`connector preview`), and loaded, with the column types
//! the person chose, into a Delta table at one of the pipelines' destinations (`connector load`, one commit).

use std::collections::HashMap;
use std::path::PathBuf;

use axum::Extension;
use axum::extract::multipart::MultipartError;
use axum::extract::{Form, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use connector_core::arrow::util::display::array_value_to_string;
use connector_core::event_log::{Event, EventKind};
use connector_files::load::{LoadArgs, LoadModeFlag};
use connector_files::preview::{DEFAULT_PREVIEW_ROWS, Preview, PreviewArgs};
use connector_files::rescued_data::RESCUED_DATA;
use connector_files::schema_hints::sql_type_name;
use connector_files::sync_flags::FormatFlags;
use maud::{Markup, PreEscaped, html};
use tokio::io::AsyncWriteExt;
use tracing::info;
use uuid::Uuid;

use super::Console;
use super::auth::Actor;
use super::layout::{count, page};
use super::pages::table_link;

/// The types offered for a column, in the words `--schema-hints` takes.
const TYPES: [&str; 13] = [
    "string",
    "bigint",
    "int",
    "smallint",
    "tinyint",
    "double",
    "float",
    "decimal(38,9)",
    "boolean",
    "date",
    "timestamp",
    "timestamp_ntz",
    "binary",
];
/// The pipeline name upload events are recorded under.
const UPLOAD_PIPELINE: &str = "upload";

/// Lets a file dropped on the zone stand for one chosen with the button, then sends the form.
const DROP_SCRIPT: &str = r#"
const zone = document.getElementById('drop'); const input = document.getElementById('files');
['dragenter','dragover'].forEach(name => zone.addEventListener(name, event => { event.preventDefault(); zone.classList.add('over'); }));
['dragleave','drop'].forEach(name => zone.addEventListener(name, event => { event.preventDefault(); zone.classList.remove('over'); }));
zone.addEventListener('drop', event => { input.files = event.dataTransfer.files; document.getElementById('upload').submit(); });
"#;

pub async fn upload_page() -> Markup {
    page(
        "Upload files",
        html! {
            p { "CSV, TSV, JSON (lines or an array of records), Parquet or Avro files, compressed or not (.gz, .zst, .bz2, .xz). The next page shows the columns a table would get and the first " (DEFAULT_PREVIEW_ROWS) " rows; nothing is written until you load." }
            form #upload method="post" action="/upload" enctype="multipart/form-data" {
                div.drop #drop {
                    p { "Drop files here, or " }
                    input type="file" name="files" #files multiple accept=".csv,.tsv,.tab,.json,.jsonl,.ndjson,.parquet,.avro,.gz,.zst,.bz2,.xz";
                    p { button type="submit" #send { "Upload and preview" } }
                }
            }
            script { (PreEscaped(DROP_SCRIPT)) }
        },
    )
}

/// Streams each uploaded file to disk (never whole in memory) and shows its preview.
pub async fn receive(State(console): State<Console>, mut multipart: Multipart) -> Response {
    let id = Uuid::new_v4();
    let directory = console.inner.uploads.path().join(id.to_string());
    match store_files(&mut multipart, &directory).await {
        Ok(0) => bad_request("No file was sent: choose or drop at least one file."),
        Ok(_) => Redirect::to(&format!("/upload/{id}")).into_response(),
        Err(refusal) => {
            let _ = tokio::fs::remove_dir_all(&directory).await;
            match refusal {
                UploadRefusal::TooLarge => refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "The upload is larger than this console takes ({} MiB a request, --upload-limit-mib); \
                         nothing of it was kept. Load larger files with `connector load`.",
                        console.inner.upload_limit_mib
                    ),
                ),
                UploadRefusal::Failed(message) => bad_request(&message),
            }
        }
    }
}

/// Why an upload was not stored.
enum UploadRefusal {
    /// It passed `--upload-limit-mib`.
    TooLarge,
    Failed(String),
}

impl UploadRefusal {
    /// `what` broke off, or passed the limit.
    fn broke_off(what: &str, error: &MultipartError) -> UploadRefusal {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            UploadRefusal::TooLarge
        } else {
            UploadRefusal::Failed(format!("{what} broke off: {error}"))
        }
    }
}

async fn store_files(multipart: &mut Multipart, directory: &std::path::Path) -> Result<usize, UploadRefusal> {
    let cannot_store =
        |what: &str, error: std::io::Error| UploadRefusal::Failed(format!("cannot store {what}: {error}"));
    tokio::fs::create_dir_all(directory).await.map_err(|error| cannot_store("the upload", error))?;
    let mut stored = 0;
    while let Some(mut field) =
        multipart.next_field().await.map_err(|error| UploadRefusal::broke_off("the upload", &error))?
    {
        let Some(name) = field.file_name().map(safe_file_name) else { continue };
        if name.is_empty() {
            continue;
        }
        let path = directory.join(&name);
        let mut file = tokio::fs::File::create(&path).await.map_err(|error| cannot_store(&name, error))?;
        while let Some(chunk) =
            field.chunk().await.map_err(|error| UploadRefusal::broke_off(&format!("the upload of {name}"), &error))?
        {
            file.write_all(&chunk).await.map_err(|error| cannot_store(&name, error))?;
        }
        file.flush().await.map_err(|error| cannot_store(&name, error))?;
        stored += 1;
    }
    Ok(stored)
}

/// The last part of a browser's file name, in characters any file system takes (`../x` is `x`).
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|character| if character.is_alphanumeric() || "._-".contains(character) { character } else { '_' })
        .collect();
    cleaned.trim_start_matches('.').to_string()
}

/// The files of upload `id`, sorted; `None` for an id the console never gave.
fn uploaded_files(console: &Console, id: &str) -> Option<(PathBuf, Vec<String>)> {
    let id = Uuid::parse_str(id).ok()?;
    let directory = console.inner.uploads.path().join(id.to_string());
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.path().display().to_string())
        .collect();
    files.sort();
    (!files.is_empty()).then_some((directory, files))
}

async fn preview_of(files: &[String]) -> connector_core::error::Result<Preview> {
    let args =
        PreviewArgs { paths: files.to_vec(), rows: DEFAULT_PREVIEW_ROWS, json: false, format: FormatFlags::default() };
    connector_files::preview::preview(args).await
}

pub async fn preview_page(State(console): State<Console>, Path(id): Path<String>) -> Response {
    let Some((_, files)) = uploaded_files(&console, &id) else {
        return gone();
    };
    let preview = match preview_of(&files).await {
        Ok(preview) => preview,
        Err(error) => return bad_request(&format!("These files cannot be read as a table: {}", error.report())),
    };
    let names: Vec<String> = files.iter().map(|file| file_name_of(file)).collect();
    let suggested = format!("uploads.{}", table_name_from(&names[0]));
    let body = html! {
        p { "Files: " @for (index, name) in names.iter().enumerate() { @if index > 0 { ", " } code { (name) } } }
        form #load method="post" action=(format!("/upload/{id}/load")) {
            h2 { "Columns" }
            p.muted { "Inferred from the files as a load infers them. Change a type to read the column as that type; a value that does not fit lands in " code { "_rescued_data" } "." }
            table #columns {
                thead { tr { th { "Column" } th { "Inferred" } th { "Load as" } } }
                tbody {
                    @for (index, column) in preview.columns.iter().filter(|column| column.name() != RESCUED_DATA).enumerate() {
                        @let inferred = sql_type_name(column.data_type());
                        tr {
                            td { code { (column.name()) } input type="hidden" name=(format!("name_{index}")) value=(column.name()); input type="hidden" name=(format!("inferred_{index}")) value=(inferred); }
                            td { (inferred) }
                            td { select name=(format!("type_{index}")) data-column=(column.name()) {
                                option value=(inferred) selected { (inferred) }
                                @for choice in TYPES.iter().filter(|choice| **choice != inferred) { option value=(choice) { (choice) } }
                            } }
                        }
                    }
                }
            }
            @if preview.columns.iter().any(|column| column.name() == RESCUED_DATA) {
                p.muted { code { (RESCUED_DATA) } " (string) keeps what does not fit its column, as text, with the file it came from." }
            }
            h2 { "Destination" }
            dl.facts {
                dt { "Destination" } dd { select name="dest" #dest { @for dest in console.destinations() { option value=(dest) { (dest) } } } }
                dt { "Table" } dd { input type="text" name="table" #table value=(suggested) required pattern="[^.]+\\.[^.]+" title="namespace.name"; " " span.muted { "namespace.name: lands at <dest>/<namespace>/<name>" } }
                dt { "Mode" } dd #mode {
                    label { input type="radio" name="mode" value="create" checked; " create (refuse if the table exists)" } br;
                    label { input type="radio" name="mode" value="append"; " append" } br;
                    label { input type="radio" name="mode" value="overwrite"; " overwrite (replace its rows, one commit)" }
                }
            }
            p { button type="submit" #load-table { "Create the Delta table" } }
        }
        h2 { "First rows" }
        p.muted { (count(preview.rows.num_rows() as u64)) " rows of " (files_text(preview.files)) ", as they would land." }
        (rows_table(&preview))
    };
    page("Preview upload", body).into_response()
}

fn rows_table(preview: &Preview) -> Markup {
    let rows = &preview.rows;
    html! {
        table #rows {
            thead { tr { @for field in rows.schema().fields() { th { (field.name()) } } } }
            tbody {
                @for row in 0..rows.num_rows() {
                    tr { @for column in rows.columns() {
                        @if column.is_null(row) { td.muted { "null" } }
                        @else { td { (array_value_to_string(column, row).unwrap_or_default()) } }
                    } }
                }
            }
        }
    }
}

/// Loads upload `id` as the form says, then removes its files.
pub async fn load(
    State(console): State<Console>,
    Path(id): Path<String>,
    Extension(actor): Extension<Actor>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some((directory, files)) = uploaded_files(&console, &id) else {
        return gone();
    };
    let fields: HashMap<&str, &str> = form.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let dest = fields.get("dest").copied().unwrap_or_default().to_string();
    if !console.destinations().contains(&dest) {
        return bad_request(&format!("`{dest}` is not a destination of this console's pipelines."));
    }
    let table = fields.get("table").copied().unwrap_or_default().trim().to_string();
    let mode = match fields.get("mode").copied() {
        Some("append") => LoadModeFlag::Append,
        Some("overwrite") => LoadModeFlag::Overwrite,
        _ => LoadModeFlag::Create,
    };
    let hints = chosen_types(&fields);
    let format = FormatFlags { schema_hints: (!hints.is_empty()).then(|| hints.join(", ")), ..FormatFlags::default() };
    let args = LoadArgs {
        paths: files.clone(),
        dest: dest.clone(),
        table: table.clone(),
        mode,
        key: Vec::new(),
        merge_memory: None,
        format,
    };
    match connector_files::load::load(args).await {
        Ok(report) => {
            let names: Vec<String> = files.iter().map(|file| file_name_of(file)).collect();
            let mode_name = format!("{mode:?}").to_lowercase();
            let message = format!("{} ({mode_name}): {} rows from {}", table, report.rows, names.join(", "));
            info!(table = %table, rows = report.rows, actor = %actor.0, "uploaded files loaded");
            let mut event = Event::new(UPLOAD_PIPELINE, EventKind::Upload).message(message).actor(&actor.0);
            if let Ok(id) = connector_core::schema::TableId::parse(&table) {
                event = event.table(&id);
            }
            event.rows = Some(report.rows);
            event.delta_version = report.version.map(|version| version as i64);
            console.record(&dest, event).await;
            let _ = tokio::fs::remove_dir_all(&directory).await;
            let body = html! {
                p.notice #loaded { (table) ": " (count(report.rows)) " rows from " (files_text(report.files))
                    @if let Some(version) = report.version { ", Delta version " (version) } "." }
                h2 { "Columns" }
                table #loaded-columns {
                    thead { tr { th { "Column" } th { "Type" } } }
                    tbody { @for column in &report.schema.columns { tr { td { code { (column.name) } } td { (sql_type_name(&column.data_type)) } } } }
                }
                p { a.button href=(table_link(&dest, &table)) { "Open the table" } " " a href="/upload" { "Upload more" } }
            };
            page("Table loaded", body).into_response()
        }
        Err(error) => {
            let body = html! {
                p.error #load-error { (error.report()) }
                p { "No rows were committed. " a href=(format!("/upload/{id}")) { "Back to the preview" } " to change the table, mode or types." }
            };
            (StatusCode::BAD_REQUEST, page("Not loaded", body)).into_response()
        }
    }
}

/// Schema hints for the columns whose type the person changed (`name type`).
fn chosen_types(fields: &HashMap<&str, &str>) -> Vec<String> {
    let mut hints = Vec::new();
    for index in 0.. {
        let (Some(name), Some(chosen)) =
            (fields.get(format!("name_{index}").as_str()), fields.get(format!("type_{index}").as_str()))
        else {
            break;
        };
        if fields.get(format!("inferred_{index}").as_str()) != Some(chosen) {
            hints.push(format!("`{}` {chosen}", name.replace('`', "``")));
        }
    }
    hints
}

fn files_text(files: usize) -> String {
    if files == 1 { "1 file".into() } else { format!("{files} files") }
}

fn file_name_of(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_string(), |name| name.to_string_lossy().into_owned())
}

/// A table name from a file name: `Orders 2026.csv.gz` is `orders_2026`.
fn table_name_from(file: &str) -> String {
    let stem = file.split('.').next().unwrap_or(file);
    let name: String = stem
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() { character.to_ascii_lowercase() } else { '_' })
        .collect();
    if name.is_empty() { "upload".into() } else { name }
}

fn bad_request(message: &str) -> Response {
    refused(StatusCode::BAD_REQUEST, message)
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, page("Upload refused", html! { p.error { (message) } p { a href="/upload" { "Upload again" } } }))
        .into_response()
}

fn gone() -> Response {
    (StatusCode::NOT_FOUND, page("Upload not found", html! { p.error { "This upload is not (or no longer) here: it was loaded, or the console restarted." } p { a href="/upload" { "Upload again" } } })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploaded_names_stay_inside_the_upload_and_changed_types_become_hints() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\Users\\me\\Orders 2026.csv"), "Orders_2026.csv");
        assert_eq!(safe_file_name(".hidden.csv"), "hidden.csv");
        assert_eq!(table_name_from("Orders 2026.csv.gz"), "orders_2026");
        let form = [
            ("name_0", "id"),
            ("inferred_0", "bigint"),
            ("type_0", "bigint"),
            ("name_1", "amount"),
            ("inferred_1", "double"),
            ("type_1", "decimal(38,9)"),
            ("name_2", "unit `net` price, eur"),
            ("inferred_2", "string"),
            ("type_2", "double"),
        ];
        let fields: HashMap<&str, &str> = form.into_iter().collect();
        let hints = chosen_types(&fields);
        assert_eq!(hints, ["`amount` decimal(38,9)", "`unit ``net`` price, eur` double"]);
        // Any column name comes back whole from the hints `connector load` is given.
        let parsed = connector_files::schema_hints::parse_schema_hints(&hints.join(", ")).expect("hints");
        let names: Vec<&str> = parsed.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["amount", "unit `net` price, eur"]);
    }
}
