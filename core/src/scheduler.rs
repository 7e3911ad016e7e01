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
    retry_initial: Duration,
    retry_maximum: Duration,
}

impl Scheduler {
    pub fn new(pipelines: Vec<ScheduledPipeline>) -> Self {
        Scheduler { pipelines, retry_initial: DEFAULT_RETRY_INITIAL, retry_maximum: DEFAULT_RETRY_MAXIMUM }
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
            tasks.spawn(run_on_schedule(scheduled, backoff, shutdown.clone(), events.clone()));
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
    info!(pipeline = %name, schedule = %scheduled.schedule, "pipeline scheduled");
    loop {
        let now = Utc::now();
        let scheduled_delay = (scheduled.schedule.next_run(previous_start, now) - now).to_std().unwrap_or_default();
        // A retry waits its backoff; a scheduled pipeline also runs if its next slot comes first.
        let delay = match (retry_after, mode) {
            (None, _) => scheduled_delay,
            (Some(retry), SyncMode::Continuous) => retry,
            (Some(retry), SyncMode::Once) => retry.min(scheduled_delay),
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.requested() => break,
        }
        if shutdown.is_requested() {
            break;
        }
        let started_at = Utc::now();
        let began = tokio::time::Instant::now();
        previous_start = Some(started_at);
        let outcome = scheduled.pipeline.sync(mode, shutdown.clone()).await;
        let finished_at = Utc::now();
        // Retrying cannot bring back what the source lost: the pipeline stops until its tables are copied anew.
        let lost = outcome.as_ref().err().filter(|failure| failure.kind() == ErrorKind::HistoryLost).map(|failure| {
            let tables = failure.tables_to_resync().iter().map(ToString::to_string).collect::<Vec<_>>();
            error!(pipeline = %name, error = %failure.report(), tables = %tables.join(","), "the source lost changes the pipeline needs; it stops until its tables are resynced and `connector run` restarts");
        });
        pipeline_health::report(&name, health_after(&outcome));
        retry_after = match &outcome {
            Ok(report) => {
                backoff.reset();
                info!(pipeline = %name, elapsed_ms = (finished_at - started_at).num_milliseconds(), tables = report.tables.len(), "sync finished");
                None
            }
            Err(failure) => match (failure.retry(), mode) {
                (Retry::WithBackoff, _) => {
                    if began.elapsed() >= HEALTHY_RUN {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
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
            break;
        }
    }
    info!(pipeline = %name, "pipeline stopped");
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
        trigger.request();
        running.await.expect("scheduler stops on shutdown");
        assert_eq!(lost.runs.load(Ordering::SeqCst), 1, "a pipeline that lost history is not run again");
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
