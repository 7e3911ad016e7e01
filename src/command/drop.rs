//! `connector drop`: remove a pipeline's replication slot and publication from its source.

use std::process::ExitCode;

use connector_core::config::PipelinesFile;
use connector_core::error::{Error, Result};

use crate::cli::DropArgs;

pub async fn drop(args: DropArgs) -> Result<ExitCode> {
    let (profile, pipeline) = match (&args.url, &args.config) {
        (Some(url), _) => connector_postgres::command_line_source(url, &args.pipeline),
        (None, Some(config)) => {
            let file = PipelinesFile::load(config)?;
            let pipeline = file.pipeline(&args.pipeline, config)?;
            (file.profiles[&pipeline.profile].clone(), pipeline.clone())
        }
        (None, None) => return Err(Error::config("name the source with --url or --config")),
    };
    if profile.kind != connector_postgres::KIND {
        return Err(Error::config(format!("`{}` sources keep nothing to drop", profile.kind)));
    }
    let dropped = connector_postgres::setup::drop_pipeline(&profile, &pipeline).await?;
    for line in dropped {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
