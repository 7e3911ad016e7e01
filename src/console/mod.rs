//! The web console (`connector serve`, or `connector run --ui`): a page per pipeline and table (state, position,
//! last commit, last error with its fix, charts from the event log), the buttons a person needs (run now, pause,
//! resume, resync a table) and the upload page (files in, inferred columns and first rows shown, types edited,
//! a Delta table out). Server-rendered HTML served by the binary itself; see [`auth`] for who may use it.

mod actions;
mod auth;
mod charts;
mod layout;
mod pages;
mod upload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use connector_core::config::{Pipeline as PipelineConfig, PipelinesFile, Profile};
use connector_core::delta::Destination;
use connector_core::error::{Error, Result};
use connector_core::event_log::{Event, EventKind, EventLog};
use connector_core::pipeline_control::PipelineControls;
use tracing::{info, warn};

/// What every page and action reads: the pipelines file, the scheduler's controls, the uploads waiting.
#[derive(Clone)]
pub struct Console {
    inner: Arc<ConsoleInner>,
}

struct ConsoleInner {
    config_path: PathBuf,
    file: PipelinesFile,
    /// The pipelines this process schedules (`run --pipeline` may pick some of the file's).
    scheduled: Vec<String>,
    controls: PipelineControls,
    /// Where uploaded files wait until loaded; removed when the console stops.
    uploads: tempfile::TempDir,
    /// The most one upload request may carry (`--upload-limit-mib`).
    upload_limit_mib: u64,
}

impl Console {
    pub fn new(
        config_path: &Path,
        file: PipelinesFile,
        scheduled: Vec<String>,
        controls: PipelineControls,
        upload_limit_mib: u64,
    ) -> Result<Console> {
        let uploads = tempfile::Builder::new().prefix("connector-uploads-").tempdir().map_err(|cause| {
            Error::config("cannot create a directory for the console's uploads (is TMPDIR writable?)").caused_by(cause)
        })?;
        Ok(Console {
            inner: Arc::new(ConsoleInner {
                config_path: config_path.to_path_buf(),
                file,
                scheduled,
                controls,
                uploads,
                upload_limit_mib,
            }),
        })
    }

    /// The scheduled pipelines' configurations, in the file's order.
    fn pipelines(&self) -> impl Iterator<Item = (&PipelineConfig, &Profile)> {
        self.inner
            .file
            .pipelines
            .iter()
            .filter(|pipeline| self.inner.scheduled.contains(&pipeline.name))
            .map(|pipeline| (pipeline, &self.inner.file.profiles[&pipeline.profile]))
    }

    fn pipeline(&self, name: &str) -> Option<(&PipelineConfig, &Profile)> {
        self.pipelines().find(|(pipeline, _)| pipeline.name == name)
    }

    /// Every distinct destination of the scheduled pipelines, in the file's order: where uploads may land.
    fn destinations(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for (pipeline, _) in self.pipelines() {
            if !seen.contains(&pipeline.dest) {
                seen.push(pipeline.dest.clone());
            }
        }
        seen
    }

    /// Records a person's action in the event log of `dest`.
    async fn record(&self, dest: &str, event: Event) {
        match Destination::parse(dest) {
            Ok(destination) => {
                let log = EventLog::for_destination(&destination, &Default::default());
                log.record(event);
                log.flush().await;
            }
            Err(error) => warn!(%error, "cannot record a console action in the event log"),
        }
    }

    async fn record_for_pipeline(&self, pipeline: &str, kind: EventKind, actor: &str) {
        if let Some((config, _)) = self.pipeline(pipeline) {
            let dest = config.dest.clone();
            self.record(&dest, Event::new(pipeline, kind).actor(actor)).await;
        }
    }
}

/// Binds `address` and serves the console until the process ends. Binding fails at once (a port in use), as
/// does a non-loopback address without a token.
pub async fn serve(address: SocketAddr, token_file: Option<&Path>, console: Console) -> Result<SocketAddr> {
    let access = auth::Access::configure(address, token_file)?;
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|cause| {
        Error::config(format!("--ui {address}: cannot listen there (in use, or not this machine's)")).caused_by(cause)
    })?;
    let bound = listener.local_addr().map_err(|cause| Error::config("the console's address").caused_by(cause))?;
    let upload_limit =
        usize::try_from(console.inner.upload_limit_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/pipelines/{name}", get(pages::pipeline))
        .route("/pipelines/{name}/run", post(actions::run_now))
        .route("/pipelines/{name}/pause", post(actions::pause))
        .route("/pipelines/{name}/resume", post(actions::resume))
        .route("/pipelines/{name}/resync", get(actions::confirm_resync).post(actions::resync))
        .route("/tables", get(pages::table))
        .route("/events", get(pages::events))
        .route("/upload", get(upload::upload_page).post(upload::receive))
        .route("/upload/{id}", get(upload::preview_page))
        .route("/upload/{id}/load", post(upload::load))
        .layer(DefaultBodyLimit::max(upload_limit))
        .with_state(console)
        .layer(axum::middleware::from_fn_with_state(access.clone(), auth::require_access));
    let router = Router::new().route("/login", get(auth::login_page).post(auth::login)).with_state(access).merge(pages);
    info!(address = %bound, "serving the web console at http://{bound}/");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await {
            warn!(%error, "the web console stopped");
        }
    });
    Ok(bound)
}
