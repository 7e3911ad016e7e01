//! What a person asks of a scheduled pipeline from the web console (run now, pause, resume, hold it still for a
//! resync) and what the console shows of it (running since, next run, paused). The scheduler owns one
//! [`PipelineControl`] per pipeline and obeys it between runs; a pause or a hold stops a running sync the way a
//! shutdown does, at its next batch boundary, so nothing half-done is left behind.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tracing::warn;

use crate::delta::Destination;
use crate::event_log::{EventKind, EventRow, pauses_and_resumes};

/// Where a pipeline stands between and during runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    /// Not started yet.
    Starting,
    /// Waiting for its next run (`None`: only a person's "run now" starts it).
    Waiting {
        next_run_at: Option<DateTime<Utc>>,
    },
    Running {
        since: DateTime<Utc>,
    },
    Paused,
    /// Its source lost history: it runs again only after its tables are resynced (and "run now" or a restart).
    StoppedForResync,
    /// The process is stopping.
    Stopped,
}

impl RunState {
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Starting => "starting",
            RunState::Waiting { .. } => "waiting",
            RunState::Running { .. } => "running",
            RunState::Paused => "paused",
            RunState::StoppedForResync => "stopped: resync needed",
            RunState::Stopped => "stopped",
        }
    }
}

/// What a person keeps a pipeline from running with.
#[derive(Debug, Clone, Copy, Default)]
struct Stops {
    paused: bool,
    /// Holds taken (a resync in progress): the pipeline does not run while any is held.
    holds: usize,
}

impl Stops {
    fn any(self) -> bool {
        self.paused || self.holds > 0
    }
}

/// The handle to one scheduled pipeline.
#[derive(Debug)]
pub struct PipelineControl {
    stops: watch::Sender<Stops>,
    run_now: Notify,
    state: watch::Sender<RunState>,
}

impl Default for PipelineControl {
    fn default() -> Self {
        PipelineControl {
            stops: watch::Sender::new(Stops::default()),
            run_now: Notify::new(),
            state: watch::Sender::new(RunState::Starting),
        }
    }
}

impl PipelineControl {
    /// Starts a run as soon as the pipeline is not running (now if it waits; right after the current run).
    pub fn run_now(&self) {
        self.run_now.notify_one();
    }

    /// Stops the running sync at its next batch boundary and starts none until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.stops.send_modify(|stops| stops.paused = true);
    }

    pub fn resume(&self) {
        self.stops.send_modify(|stops| stops.paused = false);
    }

    pub fn is_paused(&self) -> bool {
        self.stops.borrow().paused
    }

    pub fn state(&self) -> RunState {
        self.state.borrow().clone()
    }

    /// Every change of [`state`](Self::state) from now on.
    pub fn watch_state(&self) -> watch::Receiver<RunState> {
        self.state.subscribe()
    }

    /// Stops the pipeline's running sync and keeps it from starting another until the returned hold is dropped;
    /// returns once no sync runs, so the caller may change its tables (a resync) without racing it.
    pub async fn hold(self: &Arc<Self>) -> Hold {
        self.stops.send_modify(|stops| stops.holds += 1);
        let hold = Hold { control: self.clone() };
        let mut state = self.state.subscribe();
        let _ = state.wait_for(|state| !matches!(state, RunState::Running { .. })).await;
        hold
    }

    pub(crate) fn set_state(&self, state: RunState) {
        self.state.send_replace(state);
    }

    /// Whether a person keeps the pipeline from running: paused, or held.
    pub(crate) fn is_stopped_by_person(&self) -> bool {
        self.stops.borrow().any()
    }

    /// Completes once a person asks the pipeline to stop (a pause or a hold).
    pub(crate) async fn stop_requested(&self) {
        let _ = self.stops.subscribe().wait_for(|stops| stops.any()).await;
    }

    /// Completes once neither a pause nor a hold keeps the pipeline from running.
    pub(crate) async fn allowed_to_run(&self) {
        let _ = self.stops.subscribe().wait_for(|stops| !stops.any()).await;
    }

    /// Completes at a person's "run now".
    pub(crate) async fn run_requested(&self) {
        self.run_now.notified().await;
    }
}

/// Keeps a pipeline from running while alive (see [`PipelineControl::hold`]).
#[derive(Debug)]
pub struct Hold {
    control: Arc<PipelineControl>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.control.stops.send_modify(|stops| stops.holds = stops.holds.saturating_sub(1));
    }
}

/// Every scheduled pipeline's control, by name. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PipelineControls {
    by_name: Arc<BTreeMap<String, Arc<PipelineControl>>>,
}

impl PipelineControls {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let by_name = names.into_iter().map(|name| (name, Arc::new(PipelineControl::default()))).collect();
        PipelineControls { by_name: Arc::new(by_name) }
    }

    pub fn get(&self, pipeline: &str) -> Option<&Arc<PipelineControl>> {
        self.by_name.get(pipeline)
    }
}

/// Pauses again the pipelines whose newest pause or resume in their destination's event log is a pause, so a
/// pause outlives a restart; returns them with the event that paused them (see [`paused_pipelines`]).
pub async fn restore_pauses(controls: &PipelineControls, pipelines: &[(String, String)]) -> Vec<EventRow> {
    let paused = paused_pipelines(pipelines).await;
    for event in &paused {
        if let Some(control) = controls.get(&event.pipeline) {
            control.pause();
        }
    }
    paused
}

/// The pipelines whose newest pause or resume in their destination's event log is a pause, with that event.
/// `pipelines` are (name, destination); a log that cannot be read is logged and its pipelines count as running.
pub async fn paused_pipelines(pipelines: &[(String, String)]) -> Vec<EventRow> {
    let mut destinations: Vec<&str> = pipelines.iter().map(|(_, dest)| dest.as_str()).collect();
    destinations.sort_unstable();
    destinations.dedup();
    let mut paused = Vec::new();
    for dest in destinations {
        let events = match Destination::parse(dest) {
            Ok(destination) => pauses_and_resumes(&destination, &Default::default()).await,
            Err(error) => Err(error),
        };
        let events = match events {
            Ok(events) => events,
            Err(error) => {
                warn!(dest, error = %error.report(), "cannot read the event log for paused pipelines; they run");
                continue;
            }
        };
        let mut newest: BTreeMap<&str, &EventRow> = BTreeMap::new();
        for event in &events {
            newest.insert(event.pipeline.as_str(), event);
        }
        for (name, _) in pipelines.iter().filter(|(_, pipeline_dest)| pipeline_dest == dest) {
            if let Some(event) = newest.get(name.as_str()).filter(|event| event.kind == EventKind::Paused.as_str()) {
                paused.push((*event).clone());
            }
        }
    }
    paused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hold_keeps_the_pipeline_still_until_dropped_and_a_pause_until_resumed() {
        let controls = PipelineControls::new(["shop".to_string()]);
        let control = controls.get("shop").expect("scheduled").clone();
        assert!(!control.is_stopped_by_person());
        let hold = control.hold().await;
        assert!(control.is_stopped_by_person());
        control.pause();
        drop(hold);
        assert!(control.is_stopped_by_person(), "still paused");
        control.resume();
        tokio::time::timeout(std::time::Duration::from_secs(5), control.allowed_to_run())
            .await
            .expect("neither paused nor held");
    }

    #[tokio::test]
    async fn a_pipeline_whose_newest_pause_was_not_resumed_starts_paused() {
        use crate::event_log::{Event, EventLog};
        let directory = tempfile::tempdir().expect("temporary directory");
        let dest = directory.path().to_str().expect("utf-8").to_string();
        let log = EventLog::for_destination(&Destination::parse(&dest).expect("destination"), &Default::default());
        for (pipeline, kind) in
            [("shop", EventKind::Paused), ("billing", EventKind::Paused), ("billing", EventKind::Resumed)]
        {
            log.record(Event::new(pipeline, kind).actor("alice from 127.0.0.1"));
        }
        log.flush().await;
        let names = ["shop", "billing", "crm"].map(String::from);
        let controls = PipelineControls::new(names.clone());
        let pipelines: Vec<(String, String)> = names.iter().map(|name| (name.clone(), dest.clone())).collect();
        let paused = restore_pauses(&controls, &pipelines).await;
        assert_eq!(paused.iter().map(|event| event.pipeline.as_str()).collect::<Vec<_>>(), ["shop"]);
        assert_eq!(paused[0].actor.as_deref(), Some("alice from 127.0.0.1"));
        let is_paused = |name: &str| controls.get(name).expect("scheduled").is_paused();
        assert!(is_paused("shop") && !is_paused("billing") && !is_paused("crm"));
    }

    #[tokio::test]
    async fn an_event_log_that_cannot_be_read_leaves_its_pipelines_running_and_the_others_paused() {
        use crate::event_log::{Event, EventLog};
        let (readable, damaged) = (tempfile::tempdir().expect("directory"), tempfile::tempdir().expect("directory"));
        let dest_of = |directory: &tempfile::TempDir| directory.path().to_str().expect("utf-8").to_string();
        for (directory, pipeline) in [(&readable, "shop"), (&damaged, "crm")] {
            let destination = Destination::parse(&dest_of(directory)).expect("destination");
            let log = EventLog::for_destination(&destination, &Default::default());
            log.record(Event::new(pipeline, EventKind::Paused).actor("alice from 127.0.0.1"));
            log.flush().await;
        }
        // Every commit of the second destination's log is damaged: it cannot be read at all.
        let commits = damaged.path().join("_connector/events/_delta_log");
        for entry in std::fs::read_dir(&commits).expect("the event log's commits") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|extension| extension == "json") {
                std::fs::write(&path, "not a commit").expect("damage");
            }
        }
        let pipelines = [("shop".to_string(), dest_of(&readable)), ("crm".to_string(), dest_of(&damaged))];
        let controls = PipelineControls::new(["shop", "crm"].map(String::from));
        let paused = restore_pauses(&controls, &pipelines).await;
        assert_eq!(paused.iter().map(|event| event.pipeline.as_str()).collect::<Vec<_>>(), ["shop"]);
        let is_paused = |name: &str| controls.get(name).expect("scheduled").is_paused();
        assert!(is_paused("shop") && !is_paused("crm"), "the unreadable log's pipeline runs");
    }
}
