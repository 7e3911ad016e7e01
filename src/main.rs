//! `connector`: capture changes from PostgreSQL, MySQL/MariaDB and SaaS APIs into Delta Lake tables.

mod alerts;
mod cli;
mod command;
mod console;
mod logging;
mod memory_reuse;
mod metrics_server;
mod signals;
mod source_registry;

use std::process::ExitCode;

use clap::Parser;
use connector_core::caught_panic;
use connector_core::error::{Error, ErrorKind};

fn main() -> ExitCode {
    install_panic_message();
    memory_reuse::keep_freed_memory();
    let cli = cli::Cli::parse();
    // Both of rustls's crypto providers are linked (dependencies differ in their choice), so TLS clients that
    // ask for the process default (mysql_async's) need one chosen: ring, as the PostgreSQL connections use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(error) = logging::init(&cli.log, cli.log_format) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        let outcome = command::run(cli.command).await;
        // What the command's pipelines and actions queued for the event log lands before the process exits.
        connector_core::event_log::flush_all().await;
        outcome
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error.report());
            exit_code_for(&error)
        }
    }
}

/// 2 when the user must change the command or configuration, 3 when the source lost history the tables need
/// (they must be copied anew), 1 for everything else.
fn exit_code_for(error: &Error) -> ExitCode {
    ExitCode::from(exit_status_for(error))
}

/// [`exit_code_for`] as a number, so that several failures can be compared (`run --once` exits with the
/// most telling).
fn exit_status_for(error: &Error) -> u8 {
    match error.kind() {
        ErrorKind::HistoryLost => command::NEEDS_RESYNC_EXIT_CODE,
        ErrorKind::Config => 2,
        ErrorKind::Source | ErrorKind::Destination | ErrorKind::State | ErrorKind::Schema | ErrorKind::BadInput => 1,
    }
}

/// A panic is a bug: say so in one line instead of a backtrace. Panics a connector catches (`caught_panic`)
/// print nothing: the error they become says what happened.
fn install_panic_message() {
    std::panic::set_hook(Box::new(|info| {
        if caught_panic::is_caught() {
            return;
        }
        let location = info.location().map(|at| format!(" at {}:{}", at.file(), at.line())).unwrap_or_default();
        let message = caught_panic::panic_message(info.payload());
        eprintln!("error: internal error{location}: {message}; this is a bug, please report it with the log");
    }));
}
