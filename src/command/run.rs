//! `connector run --config FILE`: every pipeline of the file on its schedule.

use std::process::ExitCode;

use connector_core::config::PipelinesFile;
use connector_core::error::Result;
use connector_core::pipeline::SyncMode;
use connector_core::pipeline_control::{paused_pipelines, restore_pauses};
use connector_core::scheduler::{ScheduledPipeline, Scheduler};
use tracing::{error, info, warn};

use crate::cli::RunArgs;
use crate::signals::shutdown_on_signals;
use crate::source_registry::build_pipeline;

pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let file = PipelinesFile::load(&args.config)?;
    for wanted in &args.pipelines {
        file.pipeline(wanted, &args.config)?;
    }
    let selected: Vec<_> = file
        .pipelines
        .iter()
        .filter(|pipeline| args.pipelines.is_empty() || args.pipelines.contains(&pipeline.name))
        .collect();
    let mut scheduled = Vec::with_capacity(selected.len());
    for pipeline in &selected {
        let runnable = build_pipeline(&file.profiles[&pipeline.profile], pipeline)?;
        scheduled.push(ScheduledPipeline { pipeline: runnable, schedule: pipeline.schedule.clone() });
    }
    if args.check {
        println!("{}: {} pipelines, configuration valid", args.config.display(), scheduled.len());
        return Ok(ExitCode::SUCCESS);
    }
    let (ready, readiness) = tokio::sync::watch::channel(false);
    if let Some(address) = args.metrics_addr {
        crate::metrics_server::serve(address, readiness).await?;
    }
    crate::alerts::start_from_environment()?;
    let shutdown = shutdown_on_signals();
    // Ready: every pipeline is built and about to run.
    ready.send_replace(true);
    if args.once {
        let paused = paused_pipelines(&destinations_of(&selected)).await;
        let mut to_run = Vec::with_capacity(scheduled.len());
        for entry in scheduled {
            match paused.iter().find(|event| event.pipeline == entry.pipeline.name()) {
                Some(event) => {
                    let by = event.actor.as_deref().unwrap_or("someone");
                    warn!(pipeline = %event.pipeline, paused_at = %event.at, by, "not run: the pipeline is paused; resume it in the web console (connector serve)");
                    eprintln!("{}: paused (by {by} at {}), not run", event.pipeline, event.at);
                }
                None => to_run.push(entry),
            }
        }
        return Ok(run_each_once(to_run, shutdown).await);
    }
    let scheduler = Scheduler::new(scheduled);
    for paused in restore_pauses(&scheduler.controls(), &destinations_of(&selected)).await {
        let by = paused.actor.as_deref().unwrap_or("someone");
        let resume = if args.ui.is_some() {
            "press Resume on its console page"
        } else {
            "resume it in the web console (connector serve)"
        };
        warn!(pipeline = %paused.pipeline, paused_at = %paused.at, by, "the pipeline stays paused, as it was left; {resume}");
    }
    if let Some(address) = args.ui {
        let names = selected.iter().map(|pipeline| pipeline.name.clone()).collect();
        let controls = scheduler.controls();
        let console = crate::console::Console::new(&args.config, file.clone(), names, controls, args.upload_limit_mib)?;
        crate::console::serve(address, args.console_token_file.as_deref(), console).await?;
    }
    info!(pipelines = selected.len(), "running pipelines until stopped");
    scheduler.run(shutdown, None).await;
    Ok(ExitCode::SUCCESS)
}

/// Each pipeline's name and destination, where its pauses are recorded.
fn destinations_of(pipelines: &[&connector_core::config::Pipeline]) -> Vec<(String, String)> {
    pipelines.iter().map(|pipeline| (pipeline.name.clone(), pipeline.dest.clone())).collect()
}

/// Runs every pipeline once, concurrently; failures are reported and make the exit code non-zero, the highest a
/// single `sync` of them would exit with: 3 when a source lost history, 2 when one needs a configuration change,
/// else 1.
async fn run_each_once(scheduled: Vec<ScheduledPipeline>, shutdown: connector_core::pipeline::Shutdown) -> ExitCode {
    let mut runs = tokio::task::JoinSet::new();
    for entry in scheduled {
        let shutdown = shutdown.clone();
        runs.spawn(async move {
            let outcome = entry.pipeline.sync(SyncMode::Once, shutdown).await;
            (entry.pipeline.name().to_string(), outcome)
        });
    }
    let mut status = 0;
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok((name, Ok(report))) => print!("{name}:\n{report}"),
            Ok((name, Err(failure))) => {
                status = status.max(crate::exit_status_for(&failure));
                error!(pipeline = %name, error = %failure.report(), "sync failed");
                eprintln!("error: pipeline {name}: {}", failure.report());
            }
            Err(panic) => {
                status = status.max(1);
                eprintln!("error: a pipeline ended abnormally: {panic}");
            }
        }
    }
    ExitCode::from(status)
}
