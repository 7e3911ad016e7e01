//! SIGINT/SIGTERM: the first asks every pipeline to finish or abandon its batch in flight and stop; the
//! second exits at once (safe: nothing uncommitted was acknowledged, the next run replays it).

use connector_core::pipeline::{Shutdown, ShutdownTrigger};
use tokio::signal::unix::{SignalKind, signal};
use tracing::warn;

/// Exit code after a second signal, as shells report for SIGINT.
const INTERRUPTED_EXIT_CODE: i32 = 130;

pub fn shutdown_on_signals() -> Shutdown {
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(watch_signals(trigger));
    shutdown
}

async fn watch_signals(trigger: ShutdownTrigger) {
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        warn!("cannot listen for SIGINT/SIGTERM; stop the process with SIGKILL if needed");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    warn!("stopping: finishing the batch in flight (signal again to exit now)");
    trigger.request();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    warn!("exiting now; uncommitted changes will be read again on the next run");
    std::process::exit(INTERRUPTED_EXIT_CODE);
}
