//! `connector resync`: empty tables and mark their snapshot undone, so the next sync copies them again.

use std::process::ExitCode;

use connector_core::config::PipelinesFile;
use connector_core::delta::{DeltaSink, Destination};
use connector_core::error::{Error, Result};
use connector_core::event_log::{Event, EventKind};
use connector_core::schema::TableId;

use crate::cli::ResyncArgs;

pub async fn resync(args: ResyncArgs) -> Result<ExitCode> {
    let dest = match (&args.dest, &args.config) {
        (Some(dest), _) => dest.clone(),
        (None, Some(config)) => PipelinesFile::load(config)?.pipeline(&args.pipeline, config)?.dest.clone(),
        (None, None) => return Err(Error::config("name the destination with --dest or --config")),
    };
    let sink = DeltaSink::new(Destination::parse(&dest)?, args.pipeline.clone(), Default::default());
    for table in &args.tables {
        let id = TableId::parse(table)?;
        if !sink.request_resync(&id).await? {
            return Err(Error::config(format!("--table {table}: there is no Delta table for it under {dest}")));
        }
        sink.events().record(Event::new(&args.pipeline, EventKind::Resync).table(&id).actor("cli"));
        println!("{id}: emptied; the next sync of pipeline `{}` copies it again", args.pipeline);
    }
    sink.events().flush().await;
    Ok(ExitCode::SUCCESS)
}
