//! What a person asks of a scheduled pipeline from the web console (run now, pause, resume, hold it still for a
//! resync) and what the console shows of it (running since, next run, paused). The scheduler owns one
//! [`PipelineControl`] per pipeline and obeys it between runs; a pause or a hold stops a running sync the way a
//! shutdown does, at its next batch boundary, so nothing half-done is left behind.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, watch};

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

/// The handle to one scheduled pipeline.
#[derive(Debug)]
pub struct PipelineControl {
    paused: watch::Sender<bool>,
    /// Holds taken (a resync in progress): the pipeline does not run while any is held.
    holds: watch::Sender<usize>,
    run_now: Notify,
    state: watch::Sender<RunState>,
}

impl Default for PipelineControl {
    fn default() -> Self {
        PipelineControl {
            paused: watch::Sender::new(false),
            holds: watch::Sender::new(0),
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
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
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
        self.holds.send_modify(|holds| *holds += 1);
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
        self.is_paused() || *self.holds.borrow() > 0
    }

    /// Completes once a person asks the pipeline to stop (a pause or a hold).
    pub(crate) async fn stop_requested(&self) {
        let mut paused = self.paused.subscribe();
        let mut holds = self.holds.subscribe();
        tokio::select! {
            _ = paused.wait_for(|paused| *paused) => {}
            _ = holds.wait_for(|holds| *holds > 0) => {}
        }
    }

    /// Completes once neither a pause nor a hold keeps the pipeline from running.
    pub(crate) async fn allowed_to_run(&self) {
        let mut paused = self.paused.subscribe();
        let mut holds = self.holds.subscribe();
        loop {
            let _ = paused.wait_for(|paused| !*paused).await;
            let _ = holds.wait_for(|holds| *holds == 0).await;
            if !self.is_stopped_by_person() {
                return;
            }
        }
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
        self.control.holds.send_modify(|holds| *holds = holds.saturating_sub(1));
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
}
