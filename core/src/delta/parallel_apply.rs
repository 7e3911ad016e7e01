//! Applies the batches of several tables at once, one thread each, so a micro-batch touching many tables merges
//! on every core instead of one table after another.
//!
//! A merge is CPU-bound (Parquet decoding, encoding, compression) and runs inside the writer's future, so tokio
//! tasks on the same worker would only interleave; spawned tasks would need owned writers, which a streaming loop
//! holds by reference. Scoped threads borrow them, each driving its table's future on the runtime's handle
//! while the calling task steps aside (`block_in_place`). On a current-thread runtime, which cannot step aside,
//! the tables are applied one after another.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{Error, Result};

/// Runs `apply` on every item, at the same time when there are several; returns the first failure once all
/// have ended (each table's commit stands or falls on its own, as when applied one by one).
pub async fn apply_each<T, F, Fut>(items: Vec<T>, apply: F) -> Result<()>
where
    T: Send,
    F: Fn(T) -> Fut + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    let handle = Handle::current();
    if items.len() < 2 || handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        let mut failure = None;
        for item in items {
            if let Err(error) = apply(item).await {
                failure.get_or_insert(error);
            }
        }
        return failure.map_or(Ok(()), Err);
    }
    let results: Vec<Result<()>> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let threads: Vec<_> = items
                .into_iter()
                .map(|item| {
                    let (handle, apply) = (&handle, &apply);
                    scope.spawn(move || handle.block_on(apply(item)))
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| {
                    thread.join().unwrap_or_else(|_| Err(Error::state("applying a table's changes ended abnormally")))
                })
                .collect()
        })
    });
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_is_applied_at_once_and_the_failure_is_reported() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let mut done = [false; 4];
        let result = apply_each(done.iter_mut().enumerate().collect(), |(index, done): (usize, &mut bool)| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Each waits until all four run together, or gives up: only concurrent applies pass quickly.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while most.load(Ordering::SeqCst) < 4 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                *done = true;
                running.fetch_sub(1, Ordering::SeqCst);
                if index == 2 { Err(Error::state("table 2 failed")) } else { Ok(()) }
            }
        })
        .await;
        assert_eq!(most.load(Ordering::SeqCst), 4, "the applies ran at the same time");
        assert!(done.iter().all(|done| *done), "every item was applied despite the failure");
        assert!(result.expect_err("the failure").to_string().contains("table 2 failed"));
    }

    #[tokio::test]
    async fn a_current_thread_runtime_applies_one_after_another() {
        let mut seen = Vec::new();
        let order = std::sync::Mutex::new(&mut seen);
        apply_each(vec![1, 2, 3], |item| {
            let order = &order;
            async move {
                order.lock().expect("lock").push(item);
                Ok(())
            }
        })
        .await
        .expect("applied");
        assert_eq!(seen, vec![1, 2, 3]);
    }
}
