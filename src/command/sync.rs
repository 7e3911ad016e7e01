//! `connector sync <source>`: one pipeline from command-line flags, run once or continuously.

use std::collections::BTreeMap;
use std::process::ExitCode;

use connector_core::config::{Pipeline as PipelineConfig, check_pipeline_name};
use connector_core::error::{Error, Result};
use connector_core::options::TableOptions;
use connector_core::pipeline::SyncMode;
use connector_core::schedule::Schedule;
use connector_core::sync_flags::{CommonSyncFlags, SyncRequest};

use crate::cli::SyncArgs;
use crate::signals::shutdown_on_signals;
use crate::source_registry::build_pipeline;

pub async fn sync(args: SyncArgs) -> Result<ExitCode> {
    let SyncRequest { profile, tables, common } = args.source.into_request();
    let metrics_addr = common.metrics_addr;
    let (pipeline, mode) = pipeline_from_flags(tables, common)?;
    let runnable = build_pipeline(&profile, &pipeline)?;
    if let Some(address) = metrics_addr {
        // Ready from the start: the pipeline is built, and a sync has no schedule to wait for.
        crate::metrics_server::serve(address, tokio::sync::watch::channel(true).1).await?;
    }
    let report = runnable.sync(mode, shutdown_on_signals()).await?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn pipeline_from_flags(tables: Vec<String>, common: CommonSyncFlags) -> Result<(PipelineConfig, SyncMode)> {
    check_pipeline_name(&common.pipeline).map_err(|reason| Error::config(format!("--pipeline: {reason}")))?;
    let options = TableOptions {
        delete_mode: common.delete_mode.into(),
        deletion_vectors: !common.no_deletion_vectors,
        maintenance_every_commits: common.maintenance_every_commits,
        ..TableOptions::default()
    };
    let table_options: BTreeMap<String, TableOptions> =
        tables.iter().map(|table| (table.clone(), options.clone())).collect();
    let (mode, schedule) = if common.continuous {
        (SyncMode::Continuous, Schedule::Continuous)
    } else {
        (SyncMode::Once, Schedule::Continuous)
    };
    let pipeline = PipelineConfig {
        name: common.pipeline,
        profile: "command line".into(),
        tables,
        dest: common.dest,
        schedule,
        table_options,
        default_options: options,
    };
    Ok((pipeline, mode))
}
