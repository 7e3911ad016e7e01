//! Runs many pipelines on their schedules (`connector run`). Each pipeline is its own task: one failing
//! never stops or delays the others. Failures are retried with backoff; a shutdown lets every running
//! sync finish or abandon its batch, then returns.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::error::{ErrorKind, Retry};
use crate::pipeline::{Pipeline, Shutdown, SyncMode, SyncReport};
use crate::pipeline_control::{PipelineControl, PipelineControls, RunState};
use crate::pipeline_health::{self, Health};
use crate::schedule::Schedule;

/// First retry delay after a failed run: long enough for a restarting server to come back.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(2);
/// Longest wait between retries, so a recovered source is picked up within minutes.
pub const DEFAULT_RETRY_MAXIMUM: Duration = Duration::from_secs(300);
/// How long a continuous pipeline waits after a failure only its user can fix (a refused password, a missing
/// grant, a table to resync) before trying again: retrying every few minutes would lock accounts that lock
/// after repeated failed logins (MySQL's `FAILED_LOGIN_ATTEMPTS`, Salesforce) and fill logs.
pub const PERMANENT_FAILURE_RETRY: Duration = Duration::from_secs(30 * 60);
/// A continuous run that lasted this long before failing was healthy: its failure (a network blip after hours
/// of streaming) starts the backoff over instead of lengthening the last one, so blips spread over days never
/// add up to a wait of minutes.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ScheduledPipeline {
    pub pipeline: Arc<dyn Pipeline>,
    pub schedule: Schedule,
}

/// One finished run, for the event log and status.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub pipeline: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The report, or the error's one-line report.
    pub outcome: Result<SyncReport, String>,
}

#[derive(Debug)]
pub struct Scheduler {
    pipelines: Vec<ScheduledPipeline>,
    controls: PipelineControls,
    retry_initial: Duration,
    retry_maximum: Duration,
}

impl Scheduler {
    pub fn new(pipelines: Vec<ScheduledPipeline>) -> Self {
        let controls = PipelineControls::new(pipelines.iter().map(|scheduled| scheduled.pipeline.name().to_string()));
        Scheduler { pipelines, controls, retry_initial: DEFAULT_RETRY_INITIAL, retry_maximum: DEFAULT_RETRY_MAXIMUM }
    }

    /// The pipelines' controls (run now, pause, resume, hold), for the web console.
    pub fn controls(&self) -> PipelineControls {
        self.controls.clone()
    }

    pub fn with_retry(mut self, initial: Duration, maximum: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_maximum = maximum;
        self
    }

    /// Runs until `shutdown`; every finished run is sent to `events` when given.
    pub async fn run(self, shutdown: Shutdown, events: Option<UnboundedSender<RunEvent>>) {
        let mut tasks = tokio::task::JoinSet::new();
        for scheduled in self.pipelines {
            let backoff = Backoff::new(self.retry_initial, self.retry_maximum);
            let control = self.controls.get(scheduled.pipeline.name()).expect("a control per pipeline").clone();
            tasks.spawn(run_on_schedule(scheduled, control, backoff, shutdown.clone(), events.clone()));
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(panic) = joined {
                error!(error = %panic, "a pipeline task ended abnormally");
            }
        }
    }
}

async fn run_on_schedule(
    scheduled: ScheduledPipeline,
    control: Arc<PipelineControl>,
    mut backoff: Backoff,
    mut shutdown: Shutdown,
    events: Option<UnboundedSender<RunEvent>>,
) {
    let name = scheduled.pipeline.name().to_string();
    let mode = match scheduled.schedule {
        Schedule::Continuous => SyncMode::Continuous,
        Schedule::Every(_) | Schedule::Cron(_) => SyncMode::Once,
    };
    let mut previous_start = None;
    let mut retry_after: Option<Duration> = None;
    // A person asked for a run while the pipeline could not wait for one (stopped for lost history).
    let mut run_at_once = false;
    info!(pipeline = %name, schedule = %scheduled.schedule, "pipeline scheduled");
    loop {
        if control.is_stopped_by_person() {
            control.set_state(RunState::Paused);
            tokio::select! {
                () = control.allowed_to_run() => {}
                () = shutdown.requested() => break,
            }
        }
        let now = Utc::now();
        let scheduled_delay = (scheduled.schedule.next_run(previous_start, now) - now).to_std().unwrap_or_default();
        // A retry waits its backoff; a scheduled pipeline also runs if its next slot comes first.
        let delay = match (retry_after, mode) {
            _ if run_at_once => Duration::ZERO,
            (None, _) => scheduled_delay,
            (Some(retry), SyncMode::Continuous) => retry,
            (Some(retry), SyncMode::Once) => retry.min(scheduled_delay),
        };
        run_at_once = false;
        let next_run_at = chrono::Duration::from_std(delay).ok().and_then(|delay| now.checked_add_signed(delay));
        control.set_state(RunState::Waiting { next_run_at });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = control.run_requested() => info!(pipeline = %name, "run requested"),
            // Paused while waiting: back to the top, which waits for the resume.
            () = control.stop_requested() => continue,
            () = shutdown.requested() => break,
        }
        if shutdown.is_requested() {
            break;
        }
        if control.is_stopped_by_person() {
            continue;
        }
        let started_at = Utc::now();
        let began = tokio::time::Instant::now();
        previous_start = Some(started_at);
        control.set_state(RunState::Running { since: started_at });
        let outcome = sync_until_stopped(&scheduled, mode, &control, &mut shutdown).await;
        let finished_at = Utc::now();
        // Retrying cannot bring back what the source lost: the pipeline stops until its tables are copied anew.
        let lost = outcome.as_ref().err().filter(|failure| failure.kind() == ErrorKind::HistoryLost).map(|failure| {
            let tables = failure.tables_to_resync().iter().map(ToString::to_string).collect::<Vec<_>>();
            error!(pipeline = %name, error = %failure.report(), tables = %tables.join(","), "the source lost changes the pipeline needs; it stops until its tables are resynced and a run is asked for (the console's Resync does both) or `connector run` restarts");
        });
        pipeline_health::report(&name, health_after(&outcome));
        retry_after = match &outcome {
            Ok(report) => {
                backoff.reset();
                info!(pipeline = %name, elapsed_ms = (finished_at - started_at).num_milliseconds(), tables = report.tables.len(), "sync finished");
                None
            }
            // Said above: it waits for a person, not for a retry.
            Err(_) if lost.is_some() => None,
            Err(failure) => match (failure.retry(), mode) {
                (Retry::WithBackoff, _) => {
                    if began.elapsed() >= HEALTHY_RUN {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    crate::metrics::metrics().count_retry(&name);
                    warn!(pipeline = %name, error = %failure.report(), retry_in_s = delay.as_secs_f64(), "sync failed; retrying");
                    Some(delay)
                }
                (Retry::No, SyncMode::Continuous) => {
                    error!(pipeline = %name, error = %failure.report(), retry_in_s = PERMANENT_FAILURE_RETRY.as_secs(), "sync failed and needs attention: retrying only after a long wait (restart once fixed)");
                    Some(PERMANENT_FAILURE_RETRY)
                }
                (Retry::No, SyncMode::Once) => {
                    error!(pipeline = %name, error = %failure.report(), "sync failed and needs attention; waiting for the next scheduled run");
                    None
                }
            },
        };
        if let Some(events) = &events {
            let outcome = outcome.map_err(|failure| failure.report());
            let _ = events.send(RunEvent { pipeline: name.clone(), started_at, finished_at, outcome });
        }
        if lost.is_some() {
            // Only a person mends it: a resync from the console (which asks for a run), or a restart.
            control.set_state(RunState::StoppedForResync);
            tokio::select! {
                () = control.run_requested() => run_at_once = true,
                () = shutdown.requested() => break,
            }
        }
    }
    control.set_state(RunState::Stopped);
    info!(pipeline = %name, "pipeline stopped");
}

/// One sync, stopped at its next batch boundary when the process shuts down or a person pauses or holds the
/// pipeline.
async fn sync_until_stopped(
    scheduled: &ScheduledPipeline,
    mode: SyncMode,
    control: &PipelineControl,
    shutdown: &mut Shutdown,
) -> crate::error::Result<SyncReport> {
    let (stop, run_shutdown) = Shutdown::new();
    let sync = scheduled.pipeline.sync(mode, run_shutdown);
    tokio::pin!(sync);
    let mut stopping = false;
    loop {
        tokio::select! {
            outcome = &mut sync => return outcome,
            () = shutdown.requested(), if !stopping => {
                stop.request();
                stopping = true;
            }
            () = control.stop_requested(), if !stopping => {
                info!(pipeline = %scheduled.pipeline.name(), "stopping the run: paused or held by a person");
                stop.request();
                stopping = true;
            }
        }
    }
}

/// What a run's outcome leaves the pipeline needing: a failure that is not retried with backoff needs a person.
fn health_after<T>(outcome: &crate::error::Result<T>) -> Health {
    match outcome {
        Ok(_) => Health::Healthy,
        Err(failure) if failure.retry() == Retry::WithBackoff => Health::Retrying { error: failure.report() },
        Err(failure) => Health::NeedsPerson {
            error: failure.report(),
            resync: failure.tables_to_resync().iter().map(ToString::to_string).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::Error;
    use crate::pipeline::SyncFuture;

    /// A pipeline whose syncs succeed or fail as told, counting runs.
    #[derive(Debug)]
    struct CountingPipeline {
        name: &'static str,
        fails: bool,
        runs: AtomicU32,
    }

    /// A pipeline whose source lost the history its table needs.
    #[derive(Debug, Default)]
    struct LostHistoryPipeline {
        runs: AtomicU32,
    }

    impl Pipeline for LostHistoryPipeline {
        fn name(&self) -> &str {
            "lost"
        }

        fn sync(&self, _mode: SyncMode, _shutdown: Shutdown) -> SyncFuture<'_> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let table = crate::schema::TableId::new("shop", "orders");
            Box::pin(async move { Err(Error::history_lost([table], "the binlog was purged")) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pipeline_whose_source_lost_history_stops_while_the_others_go_on() {
        let lost = Arc::new(LostHistoryPipeline::default());
        let healthy = Arc::new(CountingPipeline { name: "healthy", fails: false, runs: AtomicU32::new(0) });
        let scheduler = Scheduler::new(vec![
            ScheduledPipeline { pipeline: lost.clone(), schedule: Schedule::Continuous },
            ScheduledPipeline { pipeline: healthy.clone(), schedule: "1m".parse().expect("valid") },
        ]);
        let controls = scheduler.controls();
        let (trigger, shutdown) = Shutdown::new();
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let running = tokio::spawn(scheduler.run(shutdown, Some(sender)));
        let mut healthy_runs = 0;
        // Paused time: a day of schedule passes at once, past the long wait of other permanent failures.
        while healthy_runs < 24 * 60 {
            let event = events.recv().await.expect("scheduler running");
            if event.pipeline == "healthy" {
                healthy_runs += 1;
            }
        }
        assert_eq!(lost.runs.load(Ordering::SeqCst), 1, "a pipeline that lost history is not run again");
        // Until a person resyncs its tables and asks for a run (the console does both): it runs at once, not
        // after the long wait of a failure that needs a person.
        let asked_at = tokio::time::Instant::now();
        controls.get("lost").expect("scheduled").run_now();
        while events.recv().await.expect("scheduler running").pipeline != "lost" {}
        assert_eq!(lost.runs.load(Ordering::SeqCst), 2, "run again when asked");
        assert!(asked_at.elapsed() < Duration::from_secs(1), "ran {:?} after being asked", asked_at.elapsed());
        trigger.request();
        running.await.expect("scheduler stops on shutdown");
    }

    impl Pipeline for CountingPipeline {
        fn name(&self) -> &str {
            self.name
        }

        fn sync(&self, _mode: SyncMode, _shutdown: Shutdown) -> SyncFuture<'_> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let fails = self.fails;
            Box::pin(async move {
                if fails { Err(Error::config("source refused the password")) } else { Ok(SyncReport::default()) }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_continuous_pipeline_failing_permanently_waits_long_between_attempts() {
        let broken = Arc::new(CountingPipeline { name: "broken", fails: true, runs: AtomicU32::new(0) });
        let scheduler =
            Scheduler::new(vec![ScheduledPipeline { pipeline: broken.clone(), schedule: Schedule::Continuous }]);
        let (trigger, shutdown) = Shutdown::new();
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let running = tokio::spawn(scheduler.run(shutdown, Some(sender)));
        events.recv().await.expect("a first run");
        let first = tokio::time::Instant::now();
        events.recv().await.expect("a second run");
        let gap = first.elapsed();
        trigger.request();
        running.await.expect("scheduler stops on shutdown");
        // Paused time: the gap is the scheduler's own wait, not the machine's speed.
        assert!(gap >= PERMANENT_FAILURE_RETRY, "retried after {gap:?}");
    }

    /// A continuous pipeline that streams for ten minutes, then loses its connection.
    #[derive(Debug)]
    struct BlippingPipeline;

    impl Pipeline for BlippingPipeline {
        fn name(&self) -> &str {
            "blipping"
        }

        fn sync(&self, _mode: SyncMode, _shutdown: Shutdown) -> SyncFuture<'_> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Err(Error::new(crate::error::ErrorKind::Source, Retry::WithBackoff, "connection reset by peer"))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_after_healthy_runs_are_retried_at_the_first_delay() {
        let scheduler = Scheduler::new(vec![ScheduledPipeline {
            pipeline: Arc::new(BlippingPipeline),
            schedule: Schedule::Continuous,
        }]);
        let (trigger, shutdown) = Shutdown::new();
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let running = tokio::spawn(scheduler.run(shutdown, Some(sender)));
        events.recv().await.expect("a first run");
        for _ in 0..5 {
            let previous_end = tokio::time::Instant::now();
            events.recv().await.expect("another run");
            // Paused time: the gap is the scheduler's own wait plus the ten-minute run.
            let waited = previous_end.elapsed() - Duration::from_secs(600);
            assert!(waited <= DEFAULT_RETRY_INITIAL + Duration::from_secs(1), "waited {waited:?} after a healthy run");
        }
        trigger.request();
        running.await.expect("scheduler stops on shutdown");
        let retries = crate::metrics::metrics().encode();
        let counted =
            retries.lines().find_map(|line| line.strip_prefix(r#"connector_retries_total{pipeline="blipping"} "#));
        assert!(counted.and_then(|count| count.parse::<u64>().ok()).is_some_and(|count| count >= 5), "{retries}");
    }

    /// A continuous pipeline that streams until told to stop.
    #[derive(Debug, Default)]
    struct StreamingPipeline {
        runs: AtomicU32,
    }

    impl Pipeline for StreamingPipeline {
        fn name(&self) -> &str {
            "streaming"
        }

        fn sync(&self, _mode: SyncMode, mut shutdown: Shutdown) -> SyncFuture<'_> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                shutdown.requested().await;
                Ok(SyncReport::default())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_stops_the_running_sync_a_resume_starts_one_and_run_now_skips_the_wait() {
        let streaming = Arc::new(StreamingPipeline::default());
        let daily = Arc::new(CountingPipeline { name: "daily", fails: false, runs: AtomicU32::new(0) });
        let scheduler = Scheduler::new(vec![
            ScheduledPipeline { pipeline: streaming.clone(), schedule: Schedule::Continuous },
            ScheduledPipeline { pipeline: daily.clone(), schedule: "1d".parse().expect("valid") },
        ]);
        let controls = scheduler.controls();
        let (streaming_control, daily_control) =
            (controls.get("streaming").expect("scheduled").clone(), controls.get("daily").expect("scheduled").clone());
        let (trigger, shutdown) = Shutdown::new();
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let running = tokio::spawn(scheduler.run(shutdown, Some(sender)));
        let mut state = streaming_control.watch_state();
        state.wait_for(|state| matches!(state, RunState::Running { .. })).await.expect("starts streaming");

        streaming_control.pause();
        while events.recv().await.expect("the paused run ends").pipeline != "streaming" {}
        state.wait_for(|state| *state == RunState::Paused).await.expect("paused");
        // Paused time: an hour passes and the paused pipeline starts nothing.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(streaming.runs.load(Ordering::SeqCst), 1);
        streaming_control.resume();
        state.wait_for(|state| matches!(state, RunState::Running { .. })).await.expect("streams again");
        assert_eq!(streaming.runs.load(Ordering::SeqCst), 2);

        // The daily pipeline ran at the start; "run now" runs it again without waiting for tomorrow.
        assert_eq!(daily.runs.load(Ordering::SeqCst), 1);
        let asked_at = tokio::time::Instant::now();
        daily_control.run_now();
        while daily.runs.load(Ordering::SeqCst) < 2 {
            events.recv().await.expect("scheduler running");
        }
        assert!(asked_at.elapsed() < Duration::from_secs(1), "ran {:?} after being asked", asked_at.elapsed());

        trigger.request();
        running.await.expect("scheduler stops on shutdown");
    }

    /// A daily pipeline whose runs take ten minutes.
    #[derive(Debug, Default)]
    struct SlowDailyPipeline {
        runs: AtomicU32,
    }

    impl Pipeline for SlowDailyPipeline {
        fn name(&self) -> &str {
            "slow"
        }

        fn sync(&self, _mode: SyncMode, _shutdown: Shutdown) -> SyncFuture<'_> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(600)).await;
                Ok(SyncReport::default())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_now_during_a_run_starts_another_right_after_it() {
        let slow = Arc::new(SlowDailyPipeline::default());
        let scheduler =
            Scheduler::new(vec![ScheduledPipeline { pipeline: slow.clone(), schedule: "1d".parse().expect("valid") }]);
        let control = scheduler.controls().get("slow").expect("scheduled").clone();
        let (trigger, shutdown) = Shutdown::new();
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let running = tokio::spawn(scheduler.run(shutdown, Some(sender)));
        let mut state = control.watch_state();
        let first = match *state.wait_for(|state| matches!(state, RunState::Running { .. })).await.expect("starts") {
            RunState::Running { since } => since,
            _ => unreachable!("waited for a run"),
        };
        // Pressed while the first run goes on: it is not cut short, and the next run does not wait a day.
        control.run_now();
        events.recv().await.expect("the first run ends");
        let ended_at = tokio::time::Instant::now();
        let second_run = |state: &RunState| matches!(state, RunState::Running { since } if *since != first);
        state.wait_for(second_run).await.expect("a second run starts");
        assert!(ended_at.elapsed() < Duration::from_secs(1), "started {:?} after the first ended", ended_at.elapsed());
        assert_eq!(slow.runs.load(Ordering::SeqCst), 2);
        events.recv().await.expect("the second run ends");
        // Asked once, run once: the third waits for its day.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(slow.runs.load(Ordering::SeqCst), 2, "one press, one extra run");
        trigger.request();
        running.await.expect("scheduler stops on shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_pipeline_never_stops_the_others() {
        let healthy = Arc::new(CountingPipeline { name: "healthy", fails: false, runs: AtomicU32::new(0) });
        let broken = Arc::new(CountingPipeline { name: "broken", fails: true, runs: AtomicU32::new(0) });
        let every_minute: Schedule = "1m".parse().expect("valid");
        let scheduler = Scheduler::new(vec![
            ScheduledPipeline { pipeline: healthy.clone(), schedule: every_minute.clone() },
            ScheduledPipeline { pipeline: broken.clone(), schedule: every_minute },
        ]);
        let (trigger, shutdown) = Shutdown::new();
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let running = tokio::spawn(scheduler.run(shutdown, Some(sender)));
        let mut healthy_runs = 0;
        let mut broken_errors = Vec::new();
        while healthy_runs < 3 {
            let event = events.recv().await.expect("scheduler running");
            match (event.pipeline.as_str(), event.outcome) {
                ("healthy", Ok(_)) => healthy_runs += 1,
                ("broken", Err(message)) => broken_errors.push(message),
                other => panic!("unexpected run {other:?}"),
            }
        }
        trigger.request();
        running.await.expect("scheduler stops on shutdown");
        assert_eq!(healthy.runs.load(Ordering::SeqCst), 3);
        assert!(broken.runs.load(Ordering::SeqCst) >= 2, "the broken pipeline keeps its schedule");
        assert!(broken_errors.iter().all(|message| message.contains("password")));
    }
}
