//! `connector sync <source>`: one pipeline from command-line flags, run once or continuously.

use std::collections::BTreeMap;
use std::process::ExitCode;

use connector_core::config::{Pipeline as PipelineConfig, Profile, check_pipeline_name};
use connector_core::error::{Error, Result};
use connector_core::options::TableOptions;
use connector_core::pipeline::SyncMode;
use connector_core::schedule::Schedule;

use crate::cli::{CommonSyncArgs, SaasSyncArgs, SyncArgs, SyncSource};
use crate::signals::shutdown_on_signals;
use crate::source_registry::build_pipeline;

pub async fn sync(args: SyncArgs) -> Result<ExitCode> {
    let (profile, tables, common) = match args.source {
        SyncSource::Postgres(postgres) => {
            let mut settings = toml::Table::new();
            settings.insert("url".into(), postgres.url.into());
            postgres.capture.add_to(&mut settings);
            if !postgres.schemas.is_empty() {
                settings.insert("schemas".into(), postgres.schemas.into());
            }
            (Profile { kind: "postgres".into(), settings }, postgres.tables, postgres.common)
        }
        SyncSource::Mysql(mysql) => {
            let mut settings = toml::Table::new();
            settings.insert("url".into(), mysql.url.into());
            mysql.capture.add_to(&mut settings);
            if let Some(server_id) = mysql.server_id {
                settings.insert("server_id".into(), toml::Value::Integer(i64::from(server_id)));
            }
            if !mysql.databases.is_empty() {
                settings.insert("databases".into(), mysql.databases.into());
            }
            (Profile { kind: connector_mysql::KIND.into(), settings }, mysql.tables, mysql.common)
        }
        SyncSource::Stripe(saas) => saas_profile("stripe", saas),
        SyncSource::Hubspot(saas) => saas_profile("hubspot", saas),
        SyncSource::Zendesk(saas) => saas_profile("zendesk", saas),
        SyncSource::Salesforce(saas) => saas_profile(connector_saas::services::salesforce::KIND, saas),
    };
    let (pipeline, mode) = pipeline_from_flags(tables, common)?;
    let runnable = build_pipeline(&profile, &pipeline)?;
    let report = runnable.sync(mode, shutdown_on_signals()).await?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn pipeline_from_flags(tables: Vec<String>, common: CommonSyncArgs) -> Result<(PipelineConfig, SyncMode)> {
    check_pipeline_name(&common.pipeline).map_err(|reason| Error::config(format!("--pipeline: {reason}")))?;
    let options = TableOptions {
        delete_mode: common.delete_mode.into(),
        deletion_vectors: !common.no_deletion_vectors,
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

/// A SaaS profile from flags; credentials are read from the service's environment variables.
fn saas_profile(kind: &str, args: SaasSyncArgs) -> (Profile, Vec<String>, CommonSyncArgs) {
    let mut settings = toml::Table::new();
    if let Some(url) = args.base_url {
        settings.insert("base_url".into(), url.into());
    }
    if let Some(rate) = args.requests_per_second {
        settings.insert("requests_per_second".into(), toml::Value::Float(rate));
    }
    if let Some(records) = args.batch_records {
        settings.insert("batch_records".into(), toml::Value::Integer(records as i64));
    }
    (Profile { kind: kind.into(), settings }, args.streams, args.common)
}
