//! Panics a connector catches and turns into an error (a third-party parser panicking on a server's bytes):
//! the process's panic message, which calls every panic a bug, stays silent for them, since the error that
//! follows says what happened. Everything else that panics is still reported as a bug.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// Set while a [`Caught`] future is being polled on this thread.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the panic under way on this thread will be caught by [`catching`].
pub fn is_caught() -> bool {
    CATCHING.with(Cell::get)
}

/// `future`, with a panic while polling it returned as `Err(message)` instead of unwinding further. `Unpin`
/// (`Box::pin` one that is not), since the crate has no unsafe code to project the pin.
pub fn catching<F: Future + Unpin>(future: F) -> Caught<F> {
    Caught { future }
}

#[derive(Debug)]
pub struct Caught<F> {
    future: F,
}

impl<F: Future + Unpin> Future for Caught<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let was_catching = CATCHING.with(|catching| catching.replace(true));
        let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut self.future).poll(context)));
        CATCHING.with(|catching| catching.set(was_catching));
        match polled {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        }
    }
}

/// A panic's message (`panic!` with a literal or a formatted string).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_while_polling_becomes_its_message_and_is_marked_caught_only_meanwhile() {
        let seen_as_caught = std::sync::Arc::new(std::sync::Mutex::new(None));
        let hook_saw = seen_as_caught.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |_| *hook_saw.lock().expect("lock") = Some(is_caught())));
        let result = catching(Box::pin(async { panic!("bad bytes at {}", 7) })).await;
        std::panic::set_hook(previous);
        assert_eq!(result, Err::<(), _>("bad bytes at 7".to_string()));
        assert_eq!(*seen_as_caught.lock().expect("lock"), Some(true));
        assert!(!is_caught());
        assert_eq!(catching(Box::pin(async { 5 })).await, Ok(5));
    }
}
