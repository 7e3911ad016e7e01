//! One module per command.

mod drop;
mod resync;
mod run;
mod status;
mod sync;

use std::process::ExitCode;

use connector_core::error::Result;

use crate::cli::Command;

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Sync(args) => sync::sync(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Status(args) => status::status(args).await,
        Command::Resync(args) => resync::resync(args).await,
        Command::Drop(args) => drop::drop(args).await,
    }
}
