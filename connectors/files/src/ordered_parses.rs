//! Blocks of one file parsed on several tasks at once, their results handed over in the file's order: the rows
//! of a file keep their numbers, and memory holds the blocks in flight, a few per core.

use std::collections::VecDeque;

use tokio::task::JoinHandle;

/// Parses running at once, in the order their blocks come in the file.
#[derive(Debug)]
pub struct OrderedParses<T> {
    running: VecDeque<JoinHandle<T>>,
    limit: usize,
}

impl<T: Send + 'static> OrderedParses<T> {
    /// As many parses at once as cores, and one more, so that no core waits while the next block is cut.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        OrderedParses { running: VecDeque::new(), limit: cores + 1 }
    }

    /// Whether another parse may start before the oldest is taken.
    pub fn has_room(&self) -> bool {
        self.running.len() < self.limit
    }

    /// Starts parsing the next block of the file on a task of its own.
    pub fn start(&mut self, parse: impl FnOnce() -> T + Send + 'static) {
        self.running.push_back(tokio::spawn(async move { parse() }));
    }

    /// The result of the oldest parse still running; `None` when none is.
    pub async fn next(&mut self) -> Option<Result<T, String>> {
        let oldest = self.running.pop_front()?;
        Some(oldest.await.map_err(|panic| format!("internal: parsing a block of the file ended abnormally: {panic}")))
    }
}

impl<T: Send + 'static> Default for OrderedParses<T> {
    fn default() -> Self {
        OrderedParses::new()
    }
}

impl<T> Drop for OrderedParses<T> {
    /// A reader that stops early (an error, a preview that has its rows) leaves no parse running.
    fn drop(&mut self) {
        self.running.iter().for_each(JoinHandle::abort);
    }
}
