//! Applies the batches of several tables at once, on threads of their own, so a micro-batch touching many tables
//! merges on more than one core instead of one table after another.
//!
//! A merge is CPU-bound (Parquet decoding, encoding, compression) and runs inside the writer's future, so tokio
//! tasks on the same worker would only interleave; spawned tasks would need owned writers, which a streaming loop
//! holds by reference. Scoped threads borrow them, each driving its table's future on the runtime's handle
//! while the calling task steps aside (`block_in_place`). On a current-thread runtime, which cannot step aside,
//! the tables are applied one after another.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{Error, Result};

/// Merges running at once, at most. Each holds its changed-key index, a row group being read and one being
/// written (about 100 MB on sysbench's tables besides the batch itself): two use two cores and keep a pipeline
/// of many tables near 500 MiB (`bench/mysql.py`), four went to 740 MiB.
const MAX_PARALLEL_APPLIES: usize = 2;

/// Runs `apply` on every item, as many at a time as there are cores up to [`MAX_PARALLEL_APPLIES`]; returns the
/// first failure once all have ended (each table's commit stands or falls on its own, as when applied one by
/// one).
pub async fn apply_each<T, F, Fut>(items: Vec<T>, apply: F) -> Result<()>
where
    T: Send,
    F: Fn(T) -> Fut + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    apply_at_most(items, cores.min(MAX_PARALLEL_APPLIES), apply).await
}

async fn apply_at_most<T, F, Fut>(items: Vec<T>, width: usize, apply: F) -> Result<()>
where
    T: Send,
    F: Fn(T) -> Fut + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    let handle = Handle::current();
    let width = width.min(items.len());
    if width < 2 || handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        let mut failure = None;
        for item in items {
            if let Err(error) = apply(item).await {
                failure.get_or_insert(error);
            }
        }
        return failure.map_or(Ok(()), Err);
    }
    let queue = Mutex::new(items.into_iter());
    let failures: Vec<Option<Error>> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..width)
                .map(|_| {
                    let (handle, apply, queue) = (&handle, &apply, &queue);
                    scope.spawn(move || {
                        let mut failure = None;
                        loop {
                            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                            let Some(item) = next else { break };
                            if let Err(error) = handle.block_on(apply(item)) {
                                failure.get_or_insert(error);
                            }
                        }
                        failure
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker.join().unwrap_or_else(|_| Some(Error::state("applying a table's changes ended abnormally")))
                })
                .collect()
        })
    });
    failures.into_iter().flatten().next().map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_are_applied_as_many_at_a_time_as_allowed_and_the_failure_is_reported() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let mut done = [false; 5];
        let result = apply_at_most(done.iter_mut().enumerate().collect(), 2, |(index, done): (usize, &mut bool)| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Each waits until two run together (or gives up), so a third would show if it could start.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while most.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                *done = true;
                running.fetch_sub(1, Ordering::SeqCst);
                if index == 2 { Err(Error::state("table 2 failed")) } else { Ok(()) }
            }
        })
        .await;
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at a time, never more");
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
