//! One module per command.

mod drop;
mod load;
mod maintain;
mod preview;
mod resync;
mod run;
pub(crate) mod status;
mod sync;

use std::process::ExitCode;

use connector_core::error::Result;

use crate::cli::Command;

/// The exit code when a pipeline's source no longer holds what its next sync needs (a replication slot that lost
/// its WAL, a purged binlog): `status` finding it, or a sync stopped by it, so that a cron job or a probe alerts
/// (1 and 2 are the connector's own failures).
pub const NEEDS_RESYNC_EXIT_CODE: u8 = 3;

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Sync(args) => sync::sync(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Serve(mut args) => {
            args.run.ui = Some(args.addr);
            run::run(args.run).await
        }
        Command::Load(args) => load::load(*args).await,
        Command::Preview(args) => preview::preview(*args).await,
        Command::Status(args) => status::status(args).await,
        Command::Resync(args) => resync::resync(args).await,
        Command::Maintain(args) => maintain::maintain(args).await,
        Command::Drop(args) => drop::drop(args).await,
    }
}
